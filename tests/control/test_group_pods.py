"""``groupPods`` cases transcribed from kubernetes
``pkg/controller/podautoscaler/replica_calculator_test.go`` (TestGroupPods; facts, not code),
then the Resource paths that depend on it: cpu AverageValue and memory Utilization.

Upstream runs them with a 2 min CPU initialization period and a 10 s initial readiness
delay. A pod without a PodReady condition has no transition time here (and is not ready);
a metric without a timestamp has timestamp 0 and window 0. Upstream's "ignored" set is
our ``unready`` (deleting and failed pods are skipped by both without being counted).
"""

from __future__ import annotations

from typing import Any

import pytest

from scalelab.control.hpa import HPAControllerSettings, HPAInputs, HPASpec, HPAState, reconcile
from scalelab.control.hpa_calc import Tolerances, group_pods, plain_metric_replicas
from scalelab.control.view import PodFacts, PodMetric

NOW = 1_000_000.0
INIT, DELAY = 120.0, 10.0


def pod(name: str, *, phase: str = "Succeeded", start: float | None = None,
        ready: bool | None = None, transition: float | None = None) -> PodFacts:
    """``ready``/``transition``: the PodReady condition (None: the pod has none)."""
    return PodFacts(name=name, phase=phase, ready=bool(ready), deleting=False,
                    start_time=None if start is None else NOW + start,
                    ready_transition_time=None if transition is None else NOW + transition,
                    cpu_request_milli=1000)


def resource_hpa(resource: str, target: dict[str, Any]) -> HPASpec:
    return HPASpec.from_manifest({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "agent"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "agent"},
                 "minReplicas": 1, "maxReplicas": 10,
                 "metrics": [{"type": "Resource",
                              "resource": {"name": resource, "target": target}}]}})


def metric(name: str, *, at: float | None = None, window: float = 0.0) -> PodMetric:
    return PodMetric(pod=name, cpu_milli=1, memory_bytes=1,
                     timestamp=0.0 if at is None else NOW + at, window=window)


# (name, pods, metrics, cpu?, ready count, unready, missing)
CASES: list[tuple[str, list[PodFacts], list[PodMetric], bool, int, set[str], set[str]]] = [
    ("void", [], [], True, 0, set(), set()),
    ("count in a ready pod - memory", [pod("bentham")],
     [metric("bentham", at=0, window=60)], False, 1, set(), set()),
    ("ignore a pod without ready condition - CPU", [pod("lucretius", start=0)],
     [metric("lucretius")], True, 0, {"lucretius"}, set()),
    ("count in a ready pod with fresh metrics during initialization period - CPU",
     [pod("bentham", start=-60, ready=True, transition=-30)],
     [metric("bentham", at=0, window=30)], True, 1, set(), set()),
    ("ignore a ready pod without fresh metrics during initialization period - CPU",
     [pod("bentham", start=-60, ready=True, transition=-30)],
     [metric("bentham", at=0, window=60)], True, 0, {"bentham"}, set()),
    ("ignore an unready pod during initialization period - CPU",
     [pod("lucretius", start=-600, ready=False, transition=-594)],
     [metric("lucretius")], True, 0, {"lucretius"}, set()),
    ("count in a ready pod without fresh metrics after initialization period - CPU",
     [pod("bentham", start=-180, ready=True, transition=-180)],
     [metric("bentham", at=-120, window=60)], True, 1, set(), set()),
    ("count in an unready pod that was ready after initialization period - CPU",
     [pod("lucretius", start=-600, ready=False, transition=-540)],
     [metric("lucretius")], True, 1, set(), set()),
    # start + 10 s equals the transition: "after" is strict, so the pod counts
    ("ignore pod that has never been ready after initialization period - CPU",
     [pod("lucretius", start=-600, ready=False, transition=-590)],
     [metric("lucretius")], True, 1, set(), set()),
    ("a missing pod", [pod("epicurus", start=-180)], [], True, 0, set(), {"epicurus"}),
    ("several pods",
     [pod("lucretius", start=0), pod("niccolo", start=-180, ready=True, transition=-180),
      pod("epicurus", start=-180)],
     [metric("lucretius"), metric("niccolo")], True, 1, {"lucretius"}, {"epicurus"}),
    ("pending pods are ignored", [pod("unscheduled", phase="Pending")], [], True, 0,
     {"unscheduled"}, set()),
]


@pytest.mark.parametrize(("pods", "metrics", "cpu", "ready", "unready", "missing"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_group_pods(pods: list[PodFacts], metrics: list[PodMetric], cpu: bool, ready: int,
                    unready: set[str], missing: set[str]) -> None:
    samples = {m.pod: m for m in metrics}
    groups = group_pods(pods, {m.pod: m.cpu_milli for m in metrics},
                        cpu_samples=samples if cpu else None, now=NOW,
                        cpu_initialization_period=INIT, initial_readiness_delay=DELAY)
    assert groups.ready_count == ready
    assert set(groups.unready) == unready
    assert set(groups.missing) == missing


def test_cpu_average_value_applies_the_cpu_readiness_rules() -> None:
    """A raw cpu AverageValue target (``GetRawResourceReplicas``) passes the resource name
    into groupPods, so a pod still warming up is left out of a scale-up as for Utilization;
    a Pods metric (no resource) counts it."""
    warm = pod("warm", phase="Running", start=-600, ready=True, transition=-600)
    cold = pod("cold", phase="Running", start=-5, ready=True, transition=-2)
    samples = {"warm": PodMetric(pod="warm", cpu_milli=900, memory_bytes=0, timestamp=NOW,
                                 window=30.0),
               "cold": PodMetric(pod="cold", cpu_milli=900, memory_bytes=0, timestamp=NOW,
                                 window=30.0)}
    values = {k: m.cpu_milli for k, m in samples.items()}
    kw: dict[str, Any] = dict(current_replicas=2, target_usage_milli=300, pods=[warm, cold],
                              metrics=values, tolerances=Tolerances(scale_down=0.1,
                                                                    scale_up=0.1), now=NOW,
                              cpu_initialization_period=INIT, initial_readiness_delay=DELAY)
    as_cpu, _ = plain_metric_replicas(**kw, cpu_samples=samples)
    as_pods_metric, _ = plain_metric_replicas(**kw)
    # cold is unready for cpu: counted as 0 on the scale-up -> ceil((900+0)/300) = 3
    assert as_cpu == 3
    # both count: ceil(2 * 900/300) = 6
    assert as_pods_metric == 6


def test_an_hpa_on_cpu_average_value_leaves_a_warming_pod_out() -> None:
    """The same through the controller: ``reconcile`` on a cpu AverageValue HPA."""
    spec = resource_hpa("cpu", {"type": "AverageValue", "averageValue": "300m"})
    warm = pod("warm", phase="Running", start=-600, ready=True, transition=-600)
    cold = pod("cold", phase="Running", start=-5, ready=True, transition=-2)
    samples = {p.name: PodMetric(pod=p.name, cpu_milli=900, memory_bytes=0, timestamp=NOW,
                                 window=30.0) for p in (warm, cold)}
    settings = HPAControllerSettings(cpu_initialization_period=INIT,
                                     initial_readiness_delay=DELAY)
    decision, _ = reconcile(spec, HPAInputs(now=NOW, spec_replicas=2, pods=[warm, cold],
                                            pod_metrics=samples), HPAState(), settings)
    assert decision.desired_replicas == 3, decision


def test_memory_utilization_uses_memory_requests_and_no_cpu_rules() -> None:
    """``GetResourceReplicas`` for memory: usage / requests of memory; a pod that would be
    unready for cpu (fresh start) counts, since only cpu has readiness rules."""
    spec = resource_hpa("memory", {"type": "Utilization", "averageUtilization": 50})
    mib = 1024 * 1024
    pods = [PodFacts(name=n, phase="Running", ready=True, deleting=False, start_time=NOW - s,
                     ready_transition_time=NOW - s + 1, cpu_request_milli=250,
                     memory_request_bytes=100 * mib) for n, s in (("old", 600), ("new", 5))]
    samples = {p.name: PodMetric(pod=p.name, cpu_milli=1, memory_bytes=150 * mib,
                                 timestamp=NOW, window=30.0) for p in pods}
    settings = HPAControllerSettings(cpu_initialization_period=INIT,
                                     initial_readiness_delay=DELAY)
    decision, _ = reconcile(spec, HPAInputs(now=NOW, spec_replicas=2, pods=pods,
                                            pod_metrics=samples), HPAState(), settings)
    # 150 % of requests against 50 %: ratio 3, both pods count -> 6 proposed, then the
    # legacy scale-up limit max(2 x 2, 4) = 4
    assert decision.metric_statuses[0].proposal == 6, decision
    assert decision.metric_statuses[0].average_utilization == 150
    assert decision.desired_replicas == 4
    no_request = [PodFacts(**{**p.__dict__, "memory_request_bytes": None}) for p in pods]
    decision, _ = reconcile(spec, HPAInputs(now=NOW, spec_replicas=2, pods=no_request,
                                            pod_metrics=samples), HPAState(), settings)
    assert decision.desired_replicas == 2 and "missing request for memory" in str(decision)
