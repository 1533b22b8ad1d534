"""Interpreting cluster JSON (pure): replicas, rollouts, autoscaler decisions from Events,
and ``kubectl apply -o json`` output. Tested with recorded JSON (tests/kind/data)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml

from scalelab.backends.base import Replicas
from scalelab.decisions import ScalingEvent
from scalelab.errors import BackendError
from scalelab.settings import (
    AGENT_DEPLOYMENT,
)

log = logging.getLogger(__name__)


# -- interpreting cluster JSON (pure) ------------------------------------------------------
def replicas_from_deployment(doc: Mapping[str, Any]) -> Replicas:
    """``Replicas`` from a Deployment as ``kubectl get deploy -o json`` prints it.

    The API server omits zero-valued status fields (``readyReplicas`` of a Deployment with
    no ready pod), and ``spec.replicas`` defaults to 1 (apps/v1 defaults.go).
    """
    spec = doc.get("spec") or {}
    status = doc.get("status") or {}
    return Replicas(spec=int(spec.get("replicas", 1)), current=int(status.get("replicas", 0)),
                    ready=int(status.get("readyReplicas", 0)))


@dataclass(frozen=True, kw_only=True)
class RolloutState:
    """What ``kubectl rollout status`` checks (kubectl pkg/polymorphichelpers/rollout_status.go)."""

    exists: bool
    generation_observed: bool = False
    spec: int = 0
    updated: int = 0
    current: int = 0
    available: int = 0

    @property
    def complete(self) -> bool:
        return (self.exists and self.generation_observed and self.updated == self.spec
                and self.current == self.updated and self.available == self.spec)

    def __str__(self) -> str:
        if not self.exists:
            return "no such Deployment"
        return (f"updated {self.updated}/{self.spec}, available {self.available}/{self.spec}, "
                f"total {self.current}, generation observed: {self.generation_observed}")


def rollout_state(doc: Mapping[str, Any] | None) -> RolloutState:
    if doc is None:
        return RolloutState(exists=False)
    meta, status = doc.get("metadata") or {}, doc.get("status") or {}
    return RolloutState(
        exists=True,
        generation_observed=int(status.get("observedGeneration", 0))
        >= int(meta.get("generation", 1)),
        spec=int((doc.get("spec") or {}).get("replicas", 1)),
        updated=int(status.get("updatedReplicas", 0)),
        current=int(status.get("replicas", 0)),
        available=int(status.get("availableReplicas", 0)))


def parse_time(value: str | None) -> float | None:
    """RFC 3339 (``2024-05-01T10:00:00Z``, micro-time too) to unix seconds."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def event_time(event: Mapping[str, Any]) -> float | None:
    """When an Event last happened: lastTimestamp, else eventTime, else firstTimestamp."""
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        t = parse_time(event.get(key))
        if t is not None:
            return t
    return parse_time((event.get("metadata") or {}).get("creationTimestamp"))


#: kubernetes pkg/controller/podautoscaler/horizontal.go: reason "SuccessfulRescale",
#: message "New size: %d; reason: %s".
_HPA_RESCALE = re.compile(r"New size: (\d+); reason: (.*)", re.S)
#: kubernetes pkg/controller/deployment/sync.go: reason "ScalingReplicaSet",
#: message "Scaled %s replica set %s to %d from %d".
_RS_SCALED = re.compile(r"Scaled (?:up|down) replica set \S+ to (\d+) from (\d+)")
#: kedacore/keda pkg/scaling/executor/scale_scaledobjects.go: KEDAScaleTargetActivated
#: "Scaled %s %s/%s from %d to %d[, triggered by ...]", KEDAScaleTargetDeactivated
#: "Deactivated %s %s/%s from %d to %d".
_KEDA_SCALED = re.compile(r"from (\d+) to (\d+)(?:, (.*))?")
KEDA_REASONS = ("KEDAScaleTargetActivated", "KEDAScaleTargetDeactivated")
#: A ScalingReplicaSet event this close to an HPA rescale is taken as its effect.
MATCH_WINDOW = 10.0


def hpa_conditions(hpa: Mapping[str, Any]) -> list[dict[str, str]]:
    """status.conditions (AbleToScale, ScalingActive, ScalingLimited) as plain strings."""
    out = []
    for c in (hpa.get("status") or {}).get("conditions") or []:
        out.append({k: str(c.get(k, "")) for k in ("type", "status", "reason", "message")})
    return out


def scaling_events_from(*, events: Sequence[Mapping[str, Any]],
                        hpas: Sequence[Mapping[str, Any]], since: float = 0.0
                        ) -> list[ScalingEvent]:
    """Autoscaler decisions from a namespace's Events and HPAs, oldest first.

    HPA rescales come from ``SuccessfulRescale`` events (they carry only the new size: the
    previous size is taken from the Deployment's matching ``ScalingReplicaSet`` event, else
    from the HPA's previous rescale, else -1 for unknown). KEDA's own 0 <-> N activations
    come from ``KEDAScaleTargetActivated``/``Deactivated`` events on the ScaledObject. The
    HPA's current status conditions are attached to its latest event. Repeated identical
    events are aggregated by the API server (count, lastTimestamp): only the last of them
    is seen.
    """
    targets = {str((h.get("metadata") or {}).get("name")):
               str(((h.get("spec") or {}).get("scaleTargetRef") or {}).get("name", ""))
               for h in hpas}
    rs_events = _replica_set_scalings(events)
    found: list[ScalingEvent] = []
    last_size: dict[str, int] = {}
    ordered = sorted((e for e in events if event_time(e) is not None),
                     key=lambda e: event_time(e) or 0.0)
    for e in ordered:
        t = event_time(e) or 0.0
        obj = e.get("involvedObject") or {}
        name = str(obj.get("name", ""))
        message = str(e.get("message", ""))
        if e.get("reason") == "SuccessfulRescale" and obj.get("kind") == "HorizontalPodAutoscaler":
            m = _HPA_RESCALE.match(message)
            if not m:
                continue
            new = int(m.group(1))
            old = _previous_size(rs_events, t=t, new=new,
                                 deployment=targets.get(name, AGENT_DEPLOYMENT))
            if old is None:
                old = last_size.get(name, -1)
            last_size[name] = new   # before `since` too: the next rescale's old size
            if t >= since:
                found.append(ScalingEvent(t=t, controller="hpa",
                                          object=f"HorizontalPodAutoscaler/{name}",
                                          from_replicas=old, to_replicas=new,
                                          reason=m.group(2).strip()))
        elif e.get("reason") in KEDA_REASONS and obj.get("kind") == "ScaledObject":
            keda = _keda_scaling(e, t=t, name=name, message=message)
            if keda is not None and t >= since:
                found.append(keda)
    return _with_conditions(found, {str((h.get("metadata") or {}).get("name")):
                                    hpa_conditions(h) for h in hpas})


def _replica_set_scalings(events: Sequence[Mapping[str, Any]]
                          ) -> list[tuple[float, str, int, int]]:
    """(time, Deployment, to, from) of each ``ScalingReplicaSet`` event."""
    out: list[tuple[float, str, int, int]] = []
    for e in events:
        obj = e.get("involvedObject") or {}
        m = _RS_SCALED.search(str(e.get("message", "")))
        t = event_time(e)
        if e.get("reason") == "ScalingReplicaSet" and m and t is not None:
            out.append((t, str(obj.get("name")), int(m.group(1)), int(m.group(2))))
    return out


def _previous_size(rs_events: Sequence[tuple[float, str, int, int]], *, t: float,
                   deployment: str, new: int) -> int | None:
    """The old size of the Deployment's ScalingReplicaSet to ``new`` nearest ``t`` (within
    MATCH_WINDOW), if any."""
    near = [(abs(rt - t), old) for rt, name, to, old in rs_events
            if name == deployment and to == new and abs(rt - t) <= MATCH_WINDOW]
    return min(near)[1] if near else None


def _keda_scaling(event: Mapping[str, Any], *, t: float, name: str,
                  message: str) -> ScalingEvent | None:
    """A KEDA activation / deactivation event as a decision (None: not "from N to M")."""
    m = _KEDA_SCALED.search(message)
    if not m:
        return None
    return ScalingEvent(t=t, controller="keda", object=f"ScaledObject/{name}",
                        from_replicas=int(m.group(1)), to_replicas=int(m.group(2)),
                        reason=f"{event.get('reason')}: {message}")


def _with_conditions(found: list[ScalingEvent],
                     conditions: Mapping[str, list[dict[str, str]]]) -> list[ScalingEvent]:
    """Each HPA's current status conditions on its latest decision."""
    for hpa_name, conds in conditions.items():
        mine = [i for i, ev in enumerate(found)
                if ev.object == f"HorizontalPodAutoscaler/{hpa_name}"]
        if mine and conds:
            i = mine[-1]
            ev = found[i]
            found[i] = ScalingEvent(t=ev.t, controller=ev.controller, object=ev.object,
                                    from_replicas=ev.from_replicas, to_replicas=ev.to_replicas,
                                    reason=ev.reason, conditions=conds)
    return found


@dataclass(frozen=True, kw_only=True)
class AppliedObject:
    kind: str
    api_version: str
    name: str
    namespace: str

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def resource(self) -> str:
        """``kind.group/name``, unambiguous for ``kubectl delete``."""
        group = self.api_version.split("/")[0] if "/" in self.api_version else ""
        return f"{self.kind.lower()}{'.' + group if group else ''}/{self.name}"


def parse_applied(stdout: str) -> list[AppliedObject]:
    """Objects from ``kubectl apply -o json`` output (one object, or a List of them)."""
    try:
        doc = yaml.safe_load(stdout) if stdout.strip() else None
    except yaml.YAMLError as err:
        raise BackendError(f"cannot read `kubectl apply -o json` output: {err}") from err
    if not isinstance(doc, dict):
        raise BackendError(f"`kubectl apply -o json` printed no object: {stdout[:200]!r}")
    items = doc.get("items") or [] if doc.get("kind") == "List" else [doc]
    return [AppliedObject(kind=str(i.get("kind")), api_version=str(i.get("apiVersion")),
                          name=str((i.get("metadata") or {}).get("name")),
                          namespace=str((i.get("metadata") or {}).get("namespace", "")))
            for i in items]


#: kube-controller-manager flags that carry the timing profile (render.timing_context keys).
HPA_FLAGS = {
    "horizontal-pod-autoscaler-sync-period": "hpa_sync_period",
    "horizontal-pod-autoscaler-tolerance": "hpa_tolerance",
    "horizontal-pod-autoscaler-cpu-initialization-period": "hpa_cpu_initialization_period",
    "horizontal-pod-autoscaler-initial-readiness-delay": "hpa_initial_readiness_delay",
    "horizontal-pod-autoscaler-downscale-stabilization": "hpa_downscale_stabilization",
}


def controller_manager_flags(pod: Mapping[str, Any]) -> dict[str, str]:
    """The ``--horizontal-pod-autoscaler-*`` flags of a kube-controller-manager static pod
    (kubeadm writes them into ``spec.containers[0].command`` as ``--name=value``)."""
    out: dict[str, str] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        for arg in [*(container.get("command") or []), *(container.get("args") or [])]:
            name, sep, value = str(arg).lstrip("-").partition("=")
            if sep and name.startswith("horizontal-pod-autoscaler-"):
                out[name] = value
    return out


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Seconds of a Go ``time.Duration`` string ("15s", "1m0s", "500ms")."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Go duration: {text!r}")
    return sum(float(n) * _GO_UNITS[u] for n, u in parts)


def flag_mismatches(flags: Mapping[str, str], profile: Mapping[str, str]) -> list[str]:
    """Each HPA flag whose value differs from the profile's (``timing_context``), as
    "flag: cluster X, profile Y". A flag the cluster does not set runs at Kubernetes'
    default, which differs from the profile unless the profile is the default."""
    wrong = []
    for flag, key in HPA_FLAGS.items():
        want, have = profile[key], flags.get(flag)
        if have is None:
            wrong.append(f"{flag}: cluster default, profile {want}")
            continue
        if key == "hpa_tolerance":
            same = float(have) == float(want)
        else:
            same = parse_go_duration(have) == parse_go_duration(want)
        if not same:
            wrong.append(f"{flag}: cluster {have}, profile {want}")
    return wrong


@dataclass(frozen=True, kw_only=True)
class MonitorSelection:
    """What a Prometheus (prometheus-operator ``Prometheus`` resource) needs before it
    scrapes a PodMonitor: labels on the PodMonitor, labels on its namespace."""

    pod_monitor_labels: dict[str, str]
    namespace_labels: dict[str, str]
    problems: list[str]


def monitor_selection(prometheus: Mapping[str, Any]) -> MonitorSelection:
    """From ``spec.podMonitorSelector`` / ``spec.podMonitorNamespaceSelector``
    (prometheus-operator pkg/apis/monitoring/v1 prometheus_types.go: a nil selector selects
    no PodMonitor, an empty one every PodMonitor; a nil namespace selector means the
    Prometheus' own namespace only). kube-prometheus-stack's default is
    ``matchLabels: {release: <release>}``; a stack installed by someone else then ignores
    PodMonitors without that label."""
    spec = prometheus.get("spec") or {}
    name = f"{(prometheus.get('metadata') or {}).get('namespace')}/" \
           f"{(prometheus.get('metadata') or {}).get('name')}"
    problems: list[str] = []
    selector = spec.get("podMonitorSelector")
    if selector is None:
        problems.append(f"Prometheus {name} selects no PodMonitor (podMonitorSelector unset)")
        selector = {}
    ns_selector = spec.get("podMonitorNamespaceSelector")
    if ns_selector is None:
        problems.append(f"Prometheus {name} reads PodMonitors of its own namespace only "
                        "(podMonitorNamespaceSelector unset)")
        ns_selector = {}
    for what, sel in (("podMonitorSelector", selector),
                      ("podMonitorNamespaceSelector", ns_selector)):
        if sel.get("matchExpressions"):
            problems.append(f"Prometheus {name} {what} has matchExpressions, which scalelab "
                            "does not satisfy by itself")

    def labels(sel: Mapping[str, Any]) -> dict[str, str]:
        return {str(k): str(v) for k, v in (sel.get("matchLabels") or {}).items()}

    return MonitorSelection(pod_monitor_labels=labels(selector),
                            namespace_labels=labels(ns_selector), problems=problems)
