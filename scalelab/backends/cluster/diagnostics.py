"""What a failed run on a cluster needs beyond the stack's namespace: the node logs, the
autoscalers' own logs and state, and the HPA flags the control plane really runs with.

Each section is collected on its own and a failing one lands in ``errors``: diagnostics are
read after something already went wrong and must never fail the report. Reads go through
``KubeApi`` and commands through the backend's runner (``kube.py`` seams), so the sections
are tested with recorded API objects.

Upstream names followed:

* KEDA chart v2.16.0 (kedacore/charts ``keda/templates/manager/deployment.yaml``,
  ``metrics-server/deployment.yaml``): pods labelled ``app: keda-operator`` and
  ``app: keda-operator-metrics-apiserver`` in the release namespace.
* metrics-server chart 3.12.2 (kubernetes-sigs/metrics-server
  ``charts/metrics-server/templates/_helpers.tpl``): ``app.kubernetes.io/name: metrics-server``.
* kubeadm's static pods (kubernetes ``cmd/kubeadm/app/phases/controlplane/manifests.go``):
  ``kube-controller-manager-<node>`` in kube-system, labelled
  ``component: kube-controller-manager``, flags in ``spec.containers[0].command``.
* KEDA ScaledObject status (kedacore/keda ``apis/keda/v1alpha1/scaledobject_types.go``):
  ``status.conditions`` Ready / Active / Fallback / Paused, ``hpaName``,
  ``externalMetricNames``, ``lastActiveTime``.
* ``kind export logs <dir> --name <cluster>`` (kind ``pkg/cmd/kind/export/logs``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from scalelab.backends.cluster import kube
from scalelab.backends.cluster.events import (
    controller_manager_flags,
    flag_mismatches,
    hpa_conditions,
)


class DiagnosticsApi(Protocol):
    """The ``KubeApi`` reads diagnostics use."""

    def list_pods(self, *, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        ...

    def pod_log(self, *, namespace: str, name: str, tail_lines: int = 50) -> str: ...

    def list_hpas(self, *, namespace: str) -> list[dict[str, Any]]: ...

    def list_custom_objects(self, *, group: str, version: str, namespace: str, plural: str
                            ) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, kw_only=True)
class PodLogs:
    """A group of pods whose logs go into the diagnostics."""

    key: str
    namespace: str
    selector: str


def default_pod_logs(*, keda_namespace: str = "keda") -> tuple[PodLogs, ...]:
    return (
        PodLogs(key="keda-operator", namespace=keda_namespace, selector="app=keda-operator"),
        PodLogs(key="keda-operator-metrics-apiserver", namespace=keda_namespace,
                selector="app=keda-operator-metrics-apiserver"),
        PodLogs(key="metrics-server", namespace="kube-system",
                selector="app.kubernetes.io/name=metrics-server"),
    )


# -- pure interpretation -------------------------------------------------------------------
def scaledobject_summary(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A ScaledObject's target, conditions and generated HPA, as plain strings."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    return {
        "target": (spec.get("scaleTargetRef") or {}).get("name"),
        "hpa": status.get("hpaName"),
        "conditions": hpa_conditions(obj),
        "external_metrics": list(status.get("externalMetricNames") or []),
        "last_active": status.get("lastActiveTime"),
        "paused_replicas": status.get("pausedReplicaCount"),
    }


def hpa_summary(hpa: Mapping[str, Any]) -> dict[str, Any]:
    status = hpa.get("status") or {}
    return {"current": status.get("currentReplicas"), "desired": status.get("desiredReplicas"),
            "conditions": hpa_conditions(hpa)}


# -- the sections --------------------------------------------------------------------------
def next_dir(parent: Path, stem: str) -> Path:
    """``parent/stem-001``, ``-002``...: one per collection, none overwritten."""
    n = len(list(parent.glob(f"{stem}-*"))) + 1
    return parent / f"{stem}-{n:03d}"


def collect(
    *, api: DiagnosticsApi, namespace: str, out_dir: Path, run: kube.Runner | None = None,
    kind_export: Callable[[Path], Sequence[str] | None] | None = None,
    pod_logs: Sequence[PodLogs] | None = None, tail_lines: int = 100,
    profile: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Every section that can be read; a failing one is reported in ``errors``.

    ``profile`` (``render.timing_context``) adds the HPA flags that differ from the timing
    profile the run asked for.

    ``kind_export`` builds the ``kind export logs`` command for a directory (None when the
    backend has no nodes of its own); the logs go under ``out_dir``, ``kind_logs.dir`` says
    where.
    """
    out: dict[str, Any] = {"errors": []}

    def section(name: str, fn: Callable[[], Any]) -> None:
        try:
            value = fn()
        except Exception as err:  # noqa: BLE001 - diagnostics must not fail the report
            out["errors"].append(f"{name}: {err}")
            return
        if value is not None:
            out[name] = value

    if kind_export is not None and run is not None:
        section("kind_logs", lambda: export_kind_logs(run=run, kind_export=kind_export,
                                                      out_dir=out_dir))
    out["addon_logs"] = addon_logs(
        api=api, groups=default_pod_logs() if pod_logs is None else pod_logs,
        tail_lines=tail_lines, errors=out["errors"])
    section("controller_manager", lambda: controller_manager(api=api, profile=profile))
    section("hpas", lambda: {h["metadata"]["name"]: hpa_summary(h)
                             for h in api.list_hpas(namespace=namespace)})
    section("scaledobjects", lambda: {
        o["metadata"]["name"]: scaledobject_summary(o)
        for o in api.list_custom_objects(group="keda.sh", version="v1alpha1",
                                         namespace=namespace, plural="scaledobjects")})
    return out


def export_kind_logs(*, run: kube.Runner, kind_export: Callable[[Path], Sequence[str] | None],
                     out_dir: Path) -> dict[str, str] | None:
    """``kind export logs`` into the next ``kind-logs-NNN`` under ``out_dir`` (None: the
    backend has no nodes of its own to export)."""
    dest = next_dir(out_dir, "kind-logs")
    cmd = kind_export(dest)
    if cmd is None:
        return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    run(list(cmd), timeout=300.0)
    return {"dir": str(dest), "command": " ".join(cmd)}


def addon_logs(*, api: DiagnosticsApi, groups: Sequence[PodLogs], tail_lines: int,
               errors: list[str]) -> dict[str, dict[str, str]]:
    """The last ``tail_lines`` of each pod of each group, by group key and pod name; a group
    that cannot be read goes to ``errors`` and the others are still read."""
    logs: dict[str, dict[str, str]] = {}
    for group in groups:
        try:
            pods = api.list_pods(namespace=group.namespace, label_selector=group.selector)
            logs[group.key] = {
                p["metadata"]["name"]: api.pod_log(namespace=group.namespace,
                                                   name=p["metadata"]["name"],
                                                   tail_lines=tail_lines) for p in pods
            } or {"(none)": f"no pod labelled {group.selector} in namespace {group.namespace}"}
        except Exception as err:  # noqa: BLE001 - diagnostics must not fail the report
            errors.append(f"logs of {group.key}: {err}")
    return logs


def controller_manager(*, api: DiagnosticsApi,
                       profile: Mapping[str, str] | None) -> dict[str, Any]:
    """The kube-controller-manager pod's HPA flags (and, given the profile, those that differ
    from it); a managed control plane shows no such pod."""
    pods = api.list_pods(namespace="kube-system",
                         label_selector="component=kube-controller-manager")
    if not pods:   # not a kubeadm cluster label: look for the static pod's name
        pods = [p for p in api.list_pods(namespace="kube-system")
                if str(p["metadata"]["name"]).startswith("kube-controller-manager-")]
    if not pods:
        return {"pod": None, "note": "no kube-controller-manager pod visible "
                                     "(a managed control plane): its HPA flags are unknown"}
    flags = controller_manager_flags(pods[0])
    found: dict[str, Any] = {"pod": pods[0]["metadata"]["name"], "hpa_flags": flags}
    if profile is not None:
        found["differs_from_profile"] = flag_mismatches(flags, profile)
    return found
