"""Replica-calculator cases transcribed from kubernetes
``pkg/controller/podautoscaler/replica_calculator_test.go`` (facts and numbers, not code).

Upstream fixtures, as reproduced here: every pod has two containers with the same request
and the same usage (so a pod's request and usage are twice the per-container figure);
the PodReady condition's lastTransitionTime and the metric timestamp are the zero time,
the metric window is one minute; a pod's start time is the zero time unless the case sets
"hot" (now) or "cool" (now - 3 min); the calculator runs with a 2 min CPU initialization
period and a 10 s initial readiness delay. Times here: zero -> 0.0, now -> NOW.
"""

from __future__ import annotations

import pytest

from scalelab.control.hpa_calc import (
    MetricUnavailable,
    Tolerances,
    external_average_replicas,
    external_value_replicas,
    plain_metric_replicas,
    resource_replicas,
)
from scalelab.control.view import PodFacts, PodMetric

NOW = 1_000_000.0
HOT, COOL = NOW, NOW - 180.0
TOL = Tolerances(scale_down=0.1, scale_up=0.1)
CONTAINERS = 2


def make_pods(n, *, ready=None, start=None, phase=None, deleting=None, request=1000):
    pods = []
    for i in range(n):
        pods.append(PodFacts(
            name=f"test-pod-{i}",
            phase=phase[i] if phase else "Running",
            ready=ready[i] if ready else True,
            deleting=deleting[i] if deleting else False,
            start_time=start[i] if start else 0.0,
            ready_transition_time=0.0,
            cpu_request_milli=None if request is None else CONTAINERS * request,
        ))
    return pods


def cpu_metrics(levels, names=None):
    out = {}
    for i, level in enumerate(levels):
        name = names[i] if names else f"test-pod-{i}"
        out[name] = PodMetric(pod=name, cpu_milli=CONTAINERS * level, memory_bytes=0,
                              timestamp=0.0, window=60.0)
    return out


def run_resource(current, levels, target, *, n=None, **kw):
    names = kw.pop("names", None)
    request = kw.pop("request", 1000)
    pods = make_pods(n if n is not None else current, request=request, **kw)
    return resource_replicas(
        current_replicas=current, target_utilization=target, pods=pods,
        pod_metrics=cpu_metrics(levels, names), tolerances=TOL, now=NOW,
        cpu_initialization_period=120.0, initial_readiness_delay=10.0)


T, F = True, False
RESOURCE_CASES = [
    # id (upstream test name), current, levels, target, kwargs, replicas, utilization, raw
    ("TestReplicaCalcScaleUp", 3, [300, 500, 700], 30, {}, 5, 50, 2 * 500),
    ("TestReplicaCalcScaleUpUnreadyLessScale", 3, [300, 500, 700], 30,
     {"ready": [F, T, T]}, 4, 60, 2 * 600),
    ("TestReplicaCalcScaleUpHotCpuLessScale", 3, [300, 500, 700], 30,
     {"start": [HOT, COOL, COOL]}, 4, 60, 2 * 600),
    ("TestReplicaCalcScaleUpUnreadyNoScale", 3, [400, 500, 700], 30,
     {"ready": [T, F, F]}, 3, 40, 2 * 400),
    ("TestReplicaCalcScaleHotCpuNoScale", 3, [400, 500, 700], 30,
     {"ready": [T, F, F], "start": [COOL, HOT, HOT]}, 3, 40, 2 * 400),
    ("TestReplicaCalcScaleUpIgnoresFailedPods", 2, [500, 700], 30,
     {"n": 4, "ready": [T, T, F, F], "phase": ["Running", "Running", "Failed", "Failed"]},
     4, 60, 2 * 600),
    ("TestReplicaCalcScaleUpIgnoresDeletionPods", 2, [500, 700], 30,
     {"n": 4, "ready": [T, T, F, F], "deleting": [F, F, T, T]}, 4, 60, 2 * 600),
    ("TestReplicaCalcScaleDown", 5, [100, 300, 500, 250, 250], 50, {}, 3, 28, 2 * 280),
    ("TestReplicaCalcScaleDownExcludeUnreadyPods", 5, [100, 300, 500, 250, 250], 50,
     {"ready": [T, T, T, F, F]}, 2, 30, 2 * 300),
    ("TestReplicaCalcScaleDownExcludeUnscheduledPods", 5, [100], 50,
     {"ready": [T, F, F, F, F], "phase": ["Running"] + ["Pending"] * 4}, 1, 10, 2 * 100),
    ("TestReplicaCalcScaleDownIgnoreHotCpuPods", 5, [100, 300, 500, 250, 250], 50,
     {"start": [COOL, COOL, COOL, HOT, HOT]}, 2, 30, 2 * 300),
    ("TestReplicaCalcScaleDownIgnoresFailedPods", 5, [100, 300, 500, 250, 250], 50,
     {"n": 7, "ready": [T] * 5 + [F, F], "phase": ["Running"] * 5 + ["Failed"] * 2},
     3, 28, 2 * 280),
    ("TestReplicaCalcScaleDownIgnoresDeletionPods", 5, [100, 300, 500, 250, 250], 50,
     {"n": 7, "ready": [T] * 5 + [F, F], "deleting": [F] * 5 + [T, T]}, 3, 28, 2 * 280),
    ("TestReplicaCalcTolerance", 3, [1010, 1030, 1020], 100, {"request": None}, 3, 102,
     2 * 1020),
    ("TestReplicaCalcSuperfluousMetrics", 4, [4000, 9500, 3000, 7000, 3200, 2000], 100,
     {"names": None}, 24, 587, 2 * 5875),
    ("TestReplicaCalcMissingMetrics", 4, [400, 95], 100, {}, 3, 24, 495),
    ("TestReplicaCalcMissingMetricsNoChangeEq", 2, [1000], 100, {}, 2, 100, 2 * 1000),
    ("TestReplicaCalcMissingMetricsNoChangeGt", 2, [1900], 100, {}, 2, 190, 2 * 1900),
]


@pytest.mark.parametrize(("current", "levels", "target", "kw", "replicas", "util", "raw"),
                         [c[1:] for c in RESOURCE_CASES], ids=[c[0] for c in RESOURCE_CASES])
def test_resource_replicas_match_upstream(current, levels, target, kw, replicas, util, raw):
    kw = dict(kw)
    if kw.get("request", 1000) is None:
        # TestReplicaCalcTolerance: requests 0.9, 1.0 and 1.1 cpu per container.
        pods = [PodFacts(name=f"test-pod-{i}", phase="Running", ready=True, deleting=False,
                         start_time=0.0, ready_transition_time=0.0,
                         cpu_request_milli=CONTAINERS * r)
                for i, r in enumerate([900, 1000, 1100])]
        got = resource_replicas(current_replicas=current, target_utilization=target,
                                pods=pods, pod_metrics=cpu_metrics(levels), tolerances=TOL,
                                now=NOW, cpu_initialization_period=120.0,
                                initial_readiness_delay=10.0)
    else:
        kw.pop("names", None)
        got = run_resource(current, levels, target, **kw)
    assert got == (replicas, util, raw)


def test_disjoint_resource_metrics_fail():
    # TestReplicaCalcDisjointResourcesMetrics
    with pytest.raises(MetricUnavailable, match="no metrics returned matched known pods"):
        run_resource(1, [100], 100, names=["an-older-pod-name"])


def test_empty_resource_metrics_fail():
    # TestReplicaCalcEmptyMetrics
    with pytest.raises(MetricUnavailable, match="unable to get metrics for resource cpu: no "
                       "metrics returned from resource metrics API"):
        run_resource(4, [], 100, n=3)


def test_missing_cpu_request_fails():
    # TestReplicaCalcEmptyCPURequest
    with pytest.raises(MetricUnavailable, match="missing request for"):
        run_resource(1, [200], 100, request=None)


PLAIN_CASES = [
    # id, current, levels (milli), target (milli), kwargs, replicas, usage
    ("TestReplicaCalcScaleUpCM", 3, [20000, 10000, 30000], 15000, {}, 4, 20000),
    ("TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale", 3, [50000, 10000, 30000], 15000,
     {"ready": [T, T, F], "start": [COOL, COOL, HOT]}, 6, 30000),
    ("TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown", 3, [50000, 15000, 30000],
     15000, {"ready": [F, T, F], "start": [HOT, COOL, HOT]}, 7, 31666),
    ("TestReplicaCalcScaleUpCMExternal (podMetric)", 1, [8600], 4400, {}, 2, 8600),
    ("TestReplicaCalcScaleDownCM", 5, [12000] * 5, 20000, {}, 3, 12000),
    ("TestReplicaCalcToleranceCM", 3, [20000, 21000, 21000], 20000, {}, 3, 20666),
    ("TestPlainMetricReplicaCalcMissingMetricsNoChangeEq", 5, [20000, 19000, 21000], 20000,
     {}, 5, 20000),
]


@pytest.mark.parametrize(("current", "levels", "target", "kw", "replicas", "usage"),
                         [c[1:] for c in PLAIN_CASES], ids=[c[0] for c in PLAIN_CASES])
def test_pods_metric_replicas_match_upstream(current, levels, target, kw, replicas, usage):
    pods = make_pods(current, **kw)
    metrics = {f"test-pod-{i}": v for i, v in enumerate(levels)}
    got = plain_metric_replicas(current_replicas=current, target_usage_milli=target, pods=pods,
                                metrics=metrics, tolerances=TOL, now=NOW)
    assert got == (replicas, usage)


EXTERNAL_VALUE_CASES = [
    ("TestReplicaCalcScaleUpCMExternalIgnoresUnreadyPods", 3, 8600, 4400,
     {"ready": [F, T, F]}, 2, 8600),
    ("TestReplicaCalcScaleDownCMExternal", 5, 8600, 14334, {}, 3, 8600),
    ("TestReplicaCalcToleranceCMExternal", 3, 8600, 8888, {}, 3, 8600),
]


@pytest.mark.parametrize(("current", "level", "target", "kw", "replicas", "usage"),
                         [c[1:] for c in EXTERNAL_VALUE_CASES],
                         ids=[c[0] for c in EXTERNAL_VALUE_CASES])
def test_external_value_replicas_match_upstream(current, level, target, kw, replicas, usage):
    got = external_value_replicas(current_replicas=current, target_value_milli=target,
                                  values_milli=[level], pods=make_pods(current, **kw),
                                  tolerances=TOL)
    assert got == (replicas, usage)


EXTERNAL_AVERAGE_CASES = [
    ("TestReplicaCalcScaleUpPerPodCMExternal", 3, 8600, 2150, 4, 2867),
    ("TestReplicaCalcScaleDownPerPodCMExternal", 5, 8600, 2867, 3, 1720),
    ("TestReplicaCalcTolerancePerPodCMExternal", 3, 8600, 2900, 3, 2867),
]


@pytest.mark.parametrize(("status", "level", "target", "replicas", "usage"),
                         [c[1:] for c in EXTERNAL_AVERAGE_CASES],
                         ids=[c[0] for c in EXTERNAL_AVERAGE_CASES])
def test_external_average_replicas_match_upstream(status, level, target, replicas, usage):
    got = external_average_replicas(status_replicas=status, target_average_milli=target,
                                    values_milli=[level], tolerances=TOL)
    assert got == (replicas, usage)


def test_external_value_scales_from_zero_without_tolerance():
    # replica_calculator.go getUsageRatioReplicaCount: currentReplicas == 0 -> ceil(ratio)
    got = external_value_replicas(current_replicas=0, target_value_milli=10_000,
                                  values_milli=[10_500], pods=[], tolerances=TOL)
    assert got == (2, 10_500)


def test_per_direction_tolerance():
    # KEP-4951 (HPAConfigurableTolerance): ratio 1.05 moves only with a 1% scale-up band.
    args = dict(current_replicas=4, target_usage_milli=1000, pods=make_pods(4),
                metrics={f"test-pod-{i}": 1050 for i in range(4)}, now=NOW)
    assert plain_metric_replicas(tolerances=TOL, **args) == (4, 1050)
    tight = Tolerances(scale_down=0.1, scale_up=0.01)
    assert plain_metric_replicas(tolerances=tight, **args) == (5, 1050)
