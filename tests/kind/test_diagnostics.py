"""Diagnostics beyond the namespace on a cluster (``cluster/diagnostics.py``): node logs,
KEDA and metrics-server logs, the HPA flags in force, HPA and ScaledObject conditions.

CONTRACT TEST, NOT A CLUSTER: no cluster can run here. ``DiagApi`` stands in for
``KubeApi`` at the cluster seam with recorded objects (``tests/kind/data``: kubeadm's
kube-controller-manager static pod, KEDA 2.16 and metrics-server 3.12.2 pods with their
charts' labels, a KEDA ScaledObject with its status) and the CLIs are the recorder of
``tests/kind/test_cluster_commands.py``. ``KubeApi.list_custom_objects`` itself runs through
the real ``kubernetes`` client against a fake API server.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from scalelab.backends.cluster import diagnostics as diag
from scalelab.backends.cluster.kube import CommandError, Completed, KubeApi
from scalelab.errors import BackendError
from tests.kind.test_cluster_commands import make
from tests.kind.test_cluster_reuse import PROFILE
from tests.kind.test_kube_api import FakeApiServer

DATA = Path(__file__).parent / "data"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in (t.split("=", 1) for t in selector.split(",")))


class DiagApi:
    """FAKE AT THE CLUSTER SEAM: the reads diagnostics make, answered from recorded JSON."""

    def __init__(self) -> None:
        self.pods = load("pods-addons.json")["items"]
        self.hpas = [load("hpa-agent.json")]
        self.scaledobjects = load("scaledobjects.json")["items"]
        self.fail: dict[str, Exception] = {}
        self.reads: list[tuple[str, ...]] = []

    def _maybe_fail(self, what: str) -> None:
        if what in self.fail:
            raise self.fail[what]

    def list_pods(self, *, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        self.reads.append(("pods", namespace, label_selector))
        self._maybe_fail(f"pods {namespace} {label_selector}")
        return [p for p in self.pods if p["metadata"]["namespace"] == namespace and
                (not label_selector or _selector_matches(label_selector,
                                                         p["metadata"]["labels"]))]

    def pod_log(self, *, namespace: str, name: str, tail_lines: int = 50) -> str:
        self.reads.append(("log", namespace, name, str(tail_lines)))
        return f"I1120 10:05:00.000000       1 main.go:1] {name} log line\n"

    def list_hpas(self, *, namespace: str) -> list[dict[str, Any]]:
        self._maybe_fail("hpas")
        return self.hpas

    def list_custom_objects(self, *, group: str, version: str, namespace: str, plural: str
                            ) -> list[dict[str, Any]]:
        self.reads.append(("custom", group, version, namespace, plural))
        self._maybe_fail("scaledobjects")
        return self.scaledobjects

    # what ClusterBackend.diagnostics reads in the namespace itself
    def list_events(self, *, namespace: str) -> list[dict[str, Any]]:
        return load("events.json")["items"]


def test_every_section_from_recorded_objects(tmp_path: Path) -> None:
    api, runs = DiagApi(), []

    def run(cmd: Any, **kwargs: Any) -> Completed:
        runs.append(tuple(cmd))
        return Completed(args=tuple(cmd), returncode=0, stdout="", stderr="")

    out = diag.collect(api=api, namespace="scalelab", out_dir=tmp_path / "diagnostics", run=run,
                       kind_export=lambda d: ["kind", "export", "logs", str(d), "--name", "lab"],
                       profile=PROFILE)
    assert out["errors"] == []
    dest = tmp_path / "diagnostics" / "kind-logs-001"
    assert runs == [("kind", "export", "logs", str(dest), "--name", "lab")]
    assert out["kind_logs"] == {"dir": str(dest), "command": " ".join(runs[0])}
    logs = out["addon_logs"]
    assert list(logs) == ["keda-operator", "keda-operator-metrics-apiserver", "metrics-server"]
    assert list(logs["keda-operator"]) == ["keda-operator-7b9f8d6c5-9x8kd"]
    assert list(logs["keda-operator-metrics-apiserver"]) == [
        "keda-operator-metrics-apiserver-5c6d8b9f7-k2jzq"]
    assert "metrics-server-6c8d9f7b5-4tqzn log line" in logs["metrics-server"][
        "metrics-server-6c8d9f7b5-4tqzn"]
    assert ("pods", "keda", "app=keda-operator") in api.reads
    assert ("pods", "kube-system", "app.kubernetes.io/name=metrics-server") in api.reads
    assert ("log", "keda", "keda-operator-7b9f8d6c5-9x8kd", "100") in api.reads
    cm = out["controller_manager"]
    assert cm["pod"] == "kube-controller-manager-scalelab-control-plane"
    assert cm["hpa_flags"] == {
        "horizontal-pod-autoscaler-cpu-initialization-period": "300s",
        "horizontal-pod-autoscaler-downscale-stabilization": "300s",
        "horizontal-pod-autoscaler-initial-readiness-delay": "30s",
        "horizontal-pod-autoscaler-sync-period": "5s",
        "horizontal-pod-autoscaler-tolerance": "0.1"}
    # "300s" on the cluster, "5m0s" in the profile: the same duration, no difference
    assert cm["differs_from_profile"] == []
    assert out["hpas"]["agent"]["conditions"][0]["type"] == "AbleToScale"
    so = out["scaledobjects"]["agent"]
    assert so["hpa"] == "keda-hpa-agent" and so["target"] == "agent"
    assert so["external_metrics"] == ["s0-rabbitmq-tasks"]
    assert so["conditions"][0] == {
        "type": "Ready", "status": "False", "reason": "ScaledObjectCheckFailed",
        "message": "error establishing rabbitmq connection: unable to get queue info: "
                   "401 Unauthorized"}
    assert ("custom", "keda.sh", "v1alpha1", "scalelab", "scaledobjects") in api.reads
    assert json.loads(json.dumps(out)) == out, "goes into the run record as is"


def test_hpa_flags_that_differ_from_the_profile_are_named(tmp_path: Path) -> None:
    api = DiagApi()
    profile = {**PROFILE, "hpa_sync_period": "15s"}
    out = diag.collect(api=api, namespace="scalelab", out_dir=tmp_path, profile=profile)
    assert out["controller_manager"]["differs_from_profile"] == [
        "horizontal-pod-autoscaler-sync-period: cluster 5s, profile 15s"]


def test_each_section_fails_on_its_own(tmp_path: Path) -> None:
    api = DiagApi()
    api.fail["scaledobjects"] = BackendError("Kubernetes API: list scaledobjects.keda.sh "
                                             "failed: 403 Forbidden")
    api.fail["pods keda app=keda-operator"] = BackendError("Kubernetes API: 500")

    def run(cmd: Any, **kwargs: Any) -> Completed:
        raise CommandError(Completed(args=tuple(cmd), returncode=1, stdout="",
                                     stderr="ERROR: unknown cluster \"lab\""))

    out = diag.collect(api=api, namespace="scalelab", out_dir=tmp_path, run=run,
                       kind_export=lambda d: ["kind", "export", "logs", str(d)])
    assert len(out["errors"]) == 3
    assert out["errors"][0].startswith("kind_logs: `kind export logs") and \
        "unknown cluster" in out["errors"][0]
    assert out["errors"][1] == "logs of keda-operator: Kubernetes API: 500"
    assert out["errors"][2].startswith("scaledobjects: Kubernetes API")
    assert "kind_logs" not in out and "scaledobjects" not in out
    # every other section is there
    assert set(out["addon_logs"]) == {"keda-operator-metrics-apiserver", "metrics-server"}
    assert out["controller_manager"]["pod"].startswith("kube-controller-manager-")
    assert "agent" in out["hpas"]


def test_missing_addons_and_a_managed_control_plane_are_said_not_failed(tmp_path: Path) -> None:
    api = DiagApi()
    api.pods = []
    out = diag.collect(api=api, namespace="scalelab", out_dir=tmp_path)
    assert out["errors"] == []
    assert out["addon_logs"]["keda-operator"] == {
        "(none)": "no pod labelled app=keda-operator in namespace keda"}
    assert out["controller_manager"]["pod"] is None
    assert "managed control plane" in out["controller_manager"]["note"]
    # a static pod without kubeadm's label is still found by its name
    kcm = copy.deepcopy(load("pods-addons.json")["items"][0])
    kcm["metadata"]["labels"] = {}
    api.pods = [kcm]
    out = diag.collect(api=api, namespace="scalelab", out_dir=tmp_path)
    assert out["controller_manager"]["hpa_flags"]["horizontal-pod-autoscaler-sync-period"] == "5s"


def test_no_kind_logs_when_the_backend_has_no_nodes_of_its_own(tmp_path: Path) -> None:
    runs: list[Any] = []
    out = diag.collect(api=DiagApi(), namespace="scalelab", out_dir=tmp_path,
                       run=lambda cmd, **kw: runs.append(cmd),  # type: ignore[arg-type,func-returns-value]
                       kind_export=lambda d: None)
    assert "kind_logs" not in out and runs == [] and out["errors"] == []


def test_each_collection_exports_into_a_new_directory(tmp_path: Path) -> None:
    made = []

    def run(cmd: Any, **kwargs: Any) -> Completed:
        Path(cmd[3]).mkdir()          # kind creates the directory
        made.append(cmd[3])
        return Completed(args=tuple(cmd), returncode=0, stdout="", stderr="")

    for _ in range(2):
        diag.collect(api=DiagApi(), namespace="scalelab", out_dir=tmp_path, run=run,
                     kind_export=lambda d: ["kind", "export", "logs", str(d)])
    assert [Path(m).name for m in made] == ["kind-logs-001", "kind-logs-002"]


# -- through the backends ------------------------------------------------------------------

def test_kind_backend_diagnostics_export_node_logs_under_its_work_dir(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch)
    before = b.diagnostics()          # not up: no cluster of ours, no export attempted
    assert "kind_logs" not in before and not any("export" in c for c in rec.calls)
    b.up()
    try:
        b.api = DiagApi()             # type: ignore[assignment]
        n = len(rec.calls)
        out = b.diagnostics()
        dest = b.work_dir / "diagnostics" / "kind-logs-001"
        assert rec.calls[n:] == [(str(bin_dir / "kind"), "export", "logs", str(dest),
                                  "--name", "scalelab")]
        assert out["kind_logs"]["dir"] == str(dest)
        assert out["controller_manager"]["differs_from_profile"] == []
        assert out["scaledobjects"]["agent"]["hpa"] == "keda-hpa-agent"
        assert "keda-operator" in out["addon_logs"] and "events" in out
        assert out["backend"] == "kind" and "port_forward_restarts" in out
    finally:
        b.down()


def test_existing_backend_diagnostics_have_no_node_logs(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch, backend="existing")
    b.api = DiagApi()                 # type: ignore[assignment]
    out = b.diagnostics()
    assert "kind_logs" not in out and rec.calls == []
    assert out["scaledobjects"]["agent"]["conditions"][0]["reason"] == "ScaledObjectCheckFailed"


# -- KubeApi.list_custom_objects through the real client ------------------------------------

def test_list_custom_objects_through_the_real_client(
        api_server: tuple[KubeApi, FakeApiServer]) -> None:
    client, server = api_server
    server.routes["/apis/keda.sh/v1alpha1/namespaces/scalelab/scaledobjects"] = \
        load("scaledobjects.json")
    items = client.list_custom_objects(group="keda.sh", version="v1alpha1",
                                       namespace="scalelab", plural="scaledobjects")
    assert [diag.scaledobject_summary(o)["hpa"] for o in items] == ["keda-hpa-agent"]
    # KEDA not installed: the CRD's path is a 404, which is "no ScaledObjects"
    assert client.list_custom_objects(group="keda.sh", version="v1alpha1",
                                      namespace="elsewhere", plural="scaledobjects") == []
