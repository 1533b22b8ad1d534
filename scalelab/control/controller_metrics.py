"""Prometheus series of the emulated controllers, named as on a real cluster.

HPA series as kube-state-metrics exposes them (kubernetes/kube-state-metrics
``docs/horizontalpodautoscaler-metrics.md``, ``internal/store/hpa.go``): labels
``namespace`` and ``horizontalpodautoscaler``; ``metric_target_type`` is
``value|utilization|average``; ``status_condition`` emits one series per status
``true|false|unknown`` with 1 on the current one. KEDA series as the KEDA operator's
Prometheus endpoint exposes them (kedacore/keda ``pkg/metricscollector/prommetrics.go``):
``keda_scaler_metrics_value``, ``keda_scaler_active``, ``keda_scaler_errors_total`` with
labels ``namespace, metric, scaledObject, scaler, triggerIndex, type``.

So the same PromQL works in reports whichever backend ran the experiment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

HPA_LABELS = ["namespace", "horizontalpodautoscaler"]
KEDA_LABELS = ["namespace", "metric", "scaledObject", "scaler", "triggerIndex", "type"]


@dataclass(frozen=True, kw_only=True)
class HPAStatus:
    """What kube-state-metrics reads from one HPA object."""

    name: str
    namespace: str
    min_replicas: int
    max_replicas: int
    current_replicas: int | None = None   # None before the first sync
    desired_replicas: int | None = None
    #: (metric_name, value|utilization|average, target value)
    spec_targets: Sequence[tuple[str, str, float]] = ()
    #: (metric_name, value|utilization|average, current value) from status.currentMetrics
    status_targets: Sequence[tuple[str, str, float]] = ()
    #: status.conditions as {"type", "status", ...}
    conditions: Sequence[dict[str, str]] = ()


@dataclass(frozen=True, kw_only=True)
class ScalerStatus:
    """One trigger of one ScaledObject as the KEDA operator reports it."""

    namespace: str
    scaled_object: str
    scaler: str
    trigger_index: int
    metric: str
    value: float | None = None
    active: bool = False
    errors: int = 0


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    hpas: Sequence[HPAStatus] = ()
    scalers: Sequence[ScalerStatus] = field(default_factory=tuple)


class ControlCollector(Collector):
    """A custom collector: reads a consistent snapshot from the control loop on each scrape."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        # No samples at registration time: the registry must not call collect() then,
        # since the loop may not be ready.
        return []

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        yield from _hpa_families(snap)
        yield from _keda_families(snap)


def _hpa_families(snap: Snapshot) -> Iterator[Metric]:
    """kube-state-metrics' ``kube_horizontalpodautoscaler_*`` series for the HPAs."""
    p = "kube_horizontalpodautoscaler_"
    cur = GaugeMetricFamily(p + "status_current_replicas",
                            "Current number of replicas of pods managed by this autoscaler.",
                            labels=HPA_LABELS)
    des = GaugeMetricFamily(p + "status_desired_replicas",
                            "Desired number of replicas of pods managed by this autoscaler.",
                            labels=HPA_LABELS)
    lo = GaugeMetricFamily(p + "spec_min_replicas",
                           "Lower limit for the number of pods that can be set by the "
                           "autoscaler, default 1.", labels=HPA_LABELS)
    hi = GaugeMetricFamily(p + "spec_max_replicas",
                           "Upper limit for the number of pods that can be set by the "
                           "autoscaler; cannot be smaller than MinReplicas.",
                           labels=HPA_LABELS)
    tl = [*HPA_LABELS, "metric_name", "metric_target_type"]
    spec_t = GaugeMetricFamily(p + "spec_target_metric",
                               "The metric specifications used by this autoscaler when "
                               "calculating the desired replica count.", labels=tl)
    stat_t = GaugeMetricFamily(p + "status_target_metric",
                               "The current metric status used by this autoscaler when "
                               "calculating the desired replica count.", labels=tl)
    cond = GaugeMetricFamily(p + "status_condition",
                             "The condition of this autoscaler.",
                             labels=[*HPA_LABELS, "condition", "status"])
    for h in snap.hpas:
        key: list[str] = [h.namespace, h.name]
        lo.add_metric(key, h.min_replicas)
        hi.add_metric(key, h.max_replicas)
        if h.current_replicas is not None:
            cur.add_metric(key, h.current_replicas)
        if h.desired_replicas is not None:
            des.add_metric(key, h.desired_replicas)
        for name, ttype, value in h.spec_targets:
            spec_t.add_metric([*key, name, ttype], value)
        for name, ttype, value in h.status_targets:
            stat_t.add_metric([*key, name, ttype], value)
        for c in h.conditions:
            status = c.get("status", "Unknown").lower()
            for st in ("true", "false", "unknown"):
                cond.add_metric([*key, c["type"], st], 1.0 if st == status else 0.0)
    yield from (cur, des, lo, hi, spec_t, stat_t, cond)


def _keda_families(snap: Snapshot) -> Iterator[Metric]:
    """The KEDA operator's ``keda_scaler_*`` series for the triggers."""
    val = GaugeMetricFamily("keda_scaler_metrics_value",
                            "The current value for each scaler's metric that would be used "
                            "by the HPA in computing the target average.", labels=KEDA_LABELS)
    act = GaugeMetricFamily("keda_scaler_active",
                            "Indicates whether a scaler is active (1), or not (0).",
                            labels=KEDA_LABELS)
    err = CounterMetricFamily("keda_scaler_errors",
                              "The number of errors that have occurred for each scaler.",
                              labels=KEDA_LABELS)
    for s in snap.scalers:
        labels = [s.namespace, s.metric, s.scaled_object, s.scaler, str(s.trigger_index),
                  "scaledobject"]
        if s.value is not None:
            val.add_metric(labels, s.value)
        act.add_metric(labels, 1.0 if s.active else 0.0)
        err.add_metric(labels, s.errors)
    yield from (val, act, err)


def hpa_status_targets(metric_statuses: Sequence[object]) -> list[tuple[str, str, float]]:
    """status.currentMetrics as kube-state-metrics labels them, from C1's ``MetricStatus``."""
    out: list[tuple[str, str, float]] = []
    for m in metric_statuses:
        name = str(getattr(m, "metric", "")).split("/", 1)[-1]
        util = getattr(m, "average_utilization", None)
        avg = getattr(m, "average_value_milli", None)
        value = getattr(m, "value_milli", None)
        if util is not None:
            out.append((name, "utilization", float(util)))
        if avg is not None:
            out.append((name, "average", avg / 1000))
        if value is not None:
            out.append((name, "value", value / 1000))
    return out
