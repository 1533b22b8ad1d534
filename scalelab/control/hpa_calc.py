"""Per-metric replica proposals, with the HPA controller's arithmetic.

Follows kubernetes ``pkg/controller/podautoscaler/replica_calculator.go``
(``GetResourceReplicas``, ``calcPlainMetricReplicas``, ``GetExternalMetricReplicas``,
``GetExternalPerPodMetricReplicas``, ``getUsageRatioReplicaCount``, ``groupPods``,
``calculateRequests``) and ``metrics/utilization.go`` (``GetResourceUtilizationRatio``,
``GetMetricUsageRatio``). Quantities are milli-units in Python ints, so the integer
divisions (utilization percent, average usage) truncate exactly as int64 division does,
and ratios are IEEE doubles as in Go: the same inputs give the same replica counts.

Every function is pure; a metric that cannot be computed raises ``MetricUnavailable``
with the message the controller would put in its ScalingActive condition.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from scalelab.control.view import PodFacts, PodMetric

MAX_INT32 = 2**31 - 1


class MetricUnavailable(Exception):
    """The metric gives no proposal this sync (fetch failed, no ready pods, ...)."""


@dataclass(frozen=True, slots=True)
class Tolerances:
    """Usage-ratio band in which nothing moves: [1 - scale_down, 1 + scale_up], inclusive."""

    scale_down: float
    scale_up: float

    def is_within(self, ratio: float) -> bool:
        return (1.0 - self.scale_down) <= ratio <= (1.0 + self.scale_up)


def _div_trunc(num: int, den: int) -> int:
    """int64 division (truncates toward zero, unlike Python's floor division)."""
    q = abs(num) // abs(den)
    return q if (num >= 0) == (den > 0) else -q


def _ceil_int32(x: float) -> int:
    if x != x:  # NaN: Go's int32(NaN) is unspecified; the only path here is 0/0.
        return 0
    if x > MAX_INT32:
        return MAX_INT32
    return math.ceil(x)


@dataclass(frozen=True, slots=True)
class PodGroups:
    ready_count: int
    unready: frozenset[str]
    missing: frozenset[str]
    ignored: frozenset[str]


def group_pods(
    pods: Sequence[PodFacts],
    metrics: Mapping[str, int],
    *,
    cpu_samples: Mapping[str, PodMetric] | None,
    now: float,
    cpu_initialization_period: float,
    initial_readiness_delay: float,
) -> PodGroups:
    """Sort pods as ``groupPods`` does: ignored (deleting/Failed), unready (Pending, or for
    CPU a sample that cannot be trusted yet), missing (no sample), the rest ready.

    ``cpu_samples`` is given only for the cpu resource: its readiness rules need the
    sample's timestamp and window.
    """
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        if pod.deleting or pod.phase == "Failed":
            ignored.add(pod.name)
            continue
        if pod.phase == "Pending":
            unready.add(pod.name)
            continue
        if pod.name not in metrics:
            missing.add(pod.name)
            continue
        if cpu_samples is not None:
            sample = cpu_samples[pod.name]
            transition = pod.ready_transition_time
            if transition is None or pod.start_time is None:
                is_unready = True
            elif pod.start_time + cpu_initialization_period > now:
                # Within the initialization period: distrust a sample that does not cover
                # one full metric window since the last readiness transition.
                is_unready = (not pod.ready) or sample.timestamp < transition + sample.window
            else:
                # Afterwards: ignore only a pod that is unready and has never been ready.
                is_unready = (not pod.ready) and (
                    pod.start_time + initial_readiness_delay > transition)
            if is_unready:
                unready.add(pod.name)
                continue
        ready += 1
    return PodGroups(ready, frozenset(unready), frozenset(missing), frozenset(ignored))


def resource_utilization_ratio(
    metrics: Mapping[str, int], requests: Mapping[str, int], target_utilization: int
) -> tuple[float, int, int]:
    """``GetResourceUtilizationRatio``: (ratio, utilization %, raw average milli).

    The percentage is int64 division of the totals, so 149.9% is 149%.
    """
    metrics_total = 0
    requests_total = 0
    entries = 0
    for name, value in metrics.items():
        request = requests.get(name)
        if request is None:
            continue
        metrics_total += value
        requests_total += request
        entries += 1
    if requests_total == 0:
        raise MetricUnavailable("no metrics returned matched known pods")
    utilization = _div_trunc(metrics_total * 100, requests_total)
    return utilization / target_utilization, utilization, _div_trunc(metrics_total, entries)


def metric_usage_ratio(metrics: Mapping[str, int], target_usage: int) -> tuple[float, int]:
    """``GetMetricUsageRatio``: (ratio, average usage milli), the average truncated."""
    usage = _div_trunc(sum(metrics.values()), len(metrics))
    return usage / target_usage, usage


def _requests(pods: Iterable[PodFacts], resource: str = "cpu") -> dict[str, int]:
    """``calculatePodRequests`` in milli-units (memory bytes x 1000, as MilliValue)."""
    requests = {}
    for pod in pods:
        value = (pod.cpu_request_milli if resource == "cpu" else
                 None if pod.memory_request_bytes is None else pod.memory_request_bytes * 1000)
        if value is None:
            raise MetricUnavailable(f"missing request for {resource} in Pod {pod.name}")
        requests[pod.name] = value
    return requests


def resource_replicas(
    *,
    current_replicas: int,
    target_utilization: int,
    pods: Sequence[PodFacts],
    pod_metrics: Mapping[str, PodMetric],
    tolerances: Tolerances,
    now: float,
    cpu_initialization_period: float,
    initial_readiness_delay: float,
    resource: str = "cpu",
) -> tuple[int, int, int]:
    """``GetResourceReplicas`` for a Utilization target: (replicas, utilization %, raw avg
    milli). ``resource`` cpu or memory; only cpu has the readiness rules in groupPods."""
    if not pod_metrics:
        raise MetricUnavailable(
            f"unable to get metrics for resource {resource}: no metrics returned from "
            "resource metrics API")
    if not pods:
        raise MetricUnavailable("no pods returned by selector while calculating replica count")
    metrics = {name: (m.cpu_milli if resource == "cpu" else m.memory_bytes * 1000)
               for name, m in pod_metrics.items()}
    groups = group_pods(pods, metrics, cpu_samples=pod_metrics if resource == "cpu" else None,
                        now=now, cpu_initialization_period=cpu_initialization_period,
                        initial_readiness_delay=initial_readiness_delay)
    for name in groups.ignored | groups.unready:
        metrics.pop(name, None)
    if not metrics:
        raise MetricUnavailable("did not receive metrics for targeted pods (pods might be unready)")
    requests = _requests(pods, resource)
    ratio, utilization, raw = resource_utilization_ratio(metrics, requests, target_utilization)

    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerances.is_within(ratio):
            return current_replicas, utilization, raw
        return _ceil_int32(ratio * groups.ready_count), utilization, raw

    if groups.missing:
        if ratio < 1.0:
            # scale-down: a pod without a sample counts as using max(100%, target) of request
            fallback = max(100, target_utilization)
            for name in groups.missing:
                metrics[name] = requests[name] * fallback // 100
        elif ratio > 1.0:
            for name in groups.missing:   # scale-up: a pod without a sample counts as 0
                metrics[name] = 0
    if scale_up_with_unready:
        for name in groups.unready:       # scale-up: unready pods count as 0
            metrics[name] = 0

    new_ratio, _, _ = resource_utilization_ratio(metrics, requests, target_utilization)
    return _settle(ratio, new_ratio, len(metrics), current_replicas, tolerances), \
        utilization, raw


def _settle(ratio: float, new_ratio: float, considered: int, current: int,
            tolerances: Tolerances) -> int:
    """The tail of the recomputation: do not move if within tolerance or if filling in the
    missing/unready pods flipped the direction (of the ratio or of the replica count)."""
    if (tolerances.is_within(new_ratio) or (ratio < 1.0 < new_ratio)
            or (ratio > 1.0 > new_ratio)):
        return current
    new_replicas = _ceil_int32(new_ratio * considered)
    if (new_ratio < 1.0 and new_replicas > current) or (new_ratio > 1.0 and new_replicas < current):
        return current
    return new_replicas


def plain_metric_replicas(
    *,
    current_replicas: int,
    target_usage_milli: int,
    pods: Sequence[PodFacts],
    metrics: Mapping[str, int],
    tolerances: Tolerances,
    now: float,
    cpu_samples: Mapping[str, PodMetric] | None = None,
    cpu_initialization_period: float = 0.0,
    initial_readiness_delay: float = 0.0,
) -> tuple[int, int]:
    """``calcPlainMetricReplicas`` (Pods metrics, raw resource AverageValue):
    (replicas, average usage milli). Missing pods count as the target on a scale-down.

    ``cpu_samples``: given for a cpu AverageValue target, whose pods are grouped with the
    CPU readiness rules (upstream passes the resource name into ``groupPods``)."""
    if not pods:
        raise MetricUnavailable("no pods returned by selector while calculating replica count")
    work = dict(metrics)
    groups = group_pods(pods, work, cpu_samples=cpu_samples, now=now,
                        cpu_initialization_period=cpu_initialization_period,
                        initial_readiness_delay=initial_readiness_delay)
    for name in groups.ignored | groups.unready:
        work.pop(name, None)
    if not work:
        raise MetricUnavailable("did not receive metrics for targeted pods (pods might be unready)")
    ratio, usage = metric_usage_ratio(work, target_usage_milli)

    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerances.is_within(ratio):
            return current_replicas, usage
        return _ceil_int32(ratio * groups.ready_count), usage

    if groups.missing:
        if ratio < 1.0:
            for name in groups.missing:
                work[name] = target_usage_milli
        elif ratio > 1.0:
            for name in groups.missing:
                work[name] = 0
    if scale_up_with_unready:
        for name in groups.unready:
            work[name] = 0
    new_ratio, _ = metric_usage_ratio(work, target_usage_milli)
    return _settle(ratio, new_ratio, len(work), current_replicas, tolerances), usage


def ready_pod_count(pods: Sequence[PodFacts]) -> int:
    """``getReadyPodsCount``: Running and Ready."""
    if not pods:
        raise MetricUnavailable(
            "unable to calculate ready pods: no pods returned by selector while calculating "
            "replica count")
    return sum(1 for p in pods if p.phase == "Running" and p.ready)


def external_value_replicas(
    *,
    current_replicas: int,
    target_value_milli: int,
    values_milli: Sequence[int],
    pods: Sequence[PodFacts],
    tolerances: Tolerances,
) -> tuple[int, int]:
    """``GetExternalMetricReplicas`` (target type Value): (replicas, summed usage milli).

    The ratio multiplies the *ready* pod count; at 0 current replicas it is ceil(ratio)
    (scale from zero), without tolerance.
    """
    usage = sum(values_milli)
    ratio = usage / target_value_milli
    if current_replicas != 0:
        if tolerances.is_within(ratio):
            return current_replicas, usage
        return _ceil_int32(ratio * ready_pod_count(pods)), usage
    return _ceil_int32(ratio), usage


def external_average_replicas(
    *,
    status_replicas: int,
    target_average_milli: int,
    values_milli: Sequence[int],
    tolerances: Tolerances,
) -> tuple[int, int | None]:
    """``GetExternalPerPodMetricReplicas`` (target type AverageValue):
    (replicas, per-pod average milli). Divides by status.replicas, not by ready pods."""
    usage = sum(values_milli)
    denominator = float(target_average_milli) * float(status_replicas)
    # Go float division: x/0 is +Inf (never within tolerance), 0/0 is NaN (neither).
    ratio = (math.inf if usage > 0 else math.nan) if denominator == 0.0 else usage / denominator
    replicas = status_replicas
    if not tolerances.is_within(ratio):
        replicas = _ceil_int32(usage / target_average_milli)
    average = math.ceil(usage / status_replicas) if status_replicas else None
    return replicas, average
