"""The emulated HorizontalPodAutoscaler controller: a pure, deterministic core.

``reconcile(spec, inputs, state, settings)`` is one pass of kube-controller-manager's HPA
sync for one HPA: inputs (spec, pods with their readiness facts, metric samples) and the
previous state in, a decision and the next state out. No clock, no I/O: the driver
(``scalelab.control.loop``) reads a ``ClusterView`` every sync period, calls this, and
writes the scale subresource when ``decision.scaled``. ``scalelab replay`` runs the same
core over a recorded trace.

Semantics follow kubernetes ``pkg/controller/podautoscaler/horizontal.go``
(``reconcileAutoscaler``, ``computeReplicasForMetrics``, ``normalizeDesiredReplicas``,
``normalizeDesiredReplicasWithBehaviors``, ``tolerancesForHpa``); the normalization stages
(``stabilizeRecommendation``, ``stabilizeRecommendationWithBehaviors``,
``convertDesiredReplicasWithRules``, ``convertDesiredReplicasWithBehaviorRate``,
``storeScaleEvent``, ...) are pure functions in ``scalelab.control.hpa_normalize`` that
``reconcile`` composes; the per-metric arithmetic lives in ``scalelab.control.hpa_calc``
(``replica_calculator.go``, ``metrics/utilization.go``). Defaults for ``behavior`` are
filled in as the API server does (``pkg/apis/autoscaling/v2/defaults.go``). Per-direction
``behavior.scaleUp/scaleDown.tolerance`` (feature HPAConfigurableTolerance) is honoured
as if the feature gate were on. Metric values arrive as integer milli-units, as the
metrics clients hand them to the controller (``Quantity.MilliValue()``).

Deliberate difference: only the metric types a local stack can produce are accepted
(Resource cpu/memory, Pods, External); Object and ContainerResource metrics are refused at
load time with a ConfigError.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from scalelab.control.hpa_calc import (
    MetricUnavailable,
    Tolerances,
    external_average_replicas,
    external_value_replicas,
    plain_metric_replicas,
    resource_replicas,
)
from scalelab.control.hpa_normalize import (
    DEFAULT_SCALE_DOWN_RULES,
    DEFAULT_SCALE_UP_RULES,
    STABILIZED_MESSAGES,
    NormalizationArg,
    Recommendation,
    ScaleEvent,
    ScalingPolicy,
    ScalingRules,
    convert_desired_replicas_with_behavior_rate,
    convert_desired_replicas_with_rules,
    maybe_init_scale_down_stabilization_window,
    record_initial_recommendation,
    stabilize_recommendation,
    stabilize_recommendation_with_behaviors,
    store_scale_event,
)
from scalelab.control.view import PodFacts, PodMetric
from scalelab.errors import ConfigError
from scalelab.settings import TimingProfile

# --------------------------------------------------------------------------------------
# Controller settings (kube-controller-manager flags)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class HPAControllerSettings:
    """The emulated controller's settings: kube-controller-manager's
    ``--horizontal-pod-autoscaler-*`` flags (cmd/kube-controller-manager/app/options/
    hpacontroller.go; the defaults are Kubernetes') and horizontal.go's constants."""

    #: --horizontal-pod-autoscaler-sync-period (s): how often the driver calls ``reconcile``.
    sync_period: float = 15.0
    #: --horizontal-pod-autoscaler-tolerance: usage ratios within 1 +/- this do not scale.
    tolerance: float = 0.1
    #: --horizontal-pod-autoscaler-cpu-initialization-period (s): CPU samples of pods
    #: younger than this are distrusted unless a full metric window passed since ready.
    cpu_initialization_period: float = 300.0
    #: --horizontal-pod-autoscaler-initial-readiness-delay (s).
    initial_readiness_delay: float = 30.0
    #: --horizontal-pod-autoscaler-downscale-stabilization (s): the legacy path's window
    #: and the default for ``behavior.scaleDown.stabilizationWindowSeconds``.
    downscale_stabilization: float = 300.0
    #: No flag: horizontal.go's package variables ``scaleUpLimitFactor`` and
    #: ``scaleUpLimitMinimum``; an HPA without ``behavior`` grows to at most
    #: max(factor x current, minimum) per sync. (Upstream's own tests set the factor to 8.)
    scale_up_limit_factor: float = 2.0
    scale_up_limit_minimum: float = 4.0

    @classmethod
    def from_timing(cls, timing: TimingProfile) -> HPAControllerSettings:
        """The same values the kind backend passes to kube-controller-manager."""
        return cls(
            sync_period=timing.hpa_sync_period,
            tolerance=timing.hpa_tolerance,
            cpu_initialization_period=timing.hpa_cpu_initialization_period,
            initial_readiness_delay=timing.hpa_initial_readiness_delay,
            downscale_stabilization=timing.hpa_downscale_stabilization,
        )


# --------------------------------------------------------------------------------------
# The HPA spec (autoscaling/v2), defaults filled in as the API server does
# --------------------------------------------------------------------------------------

#: pkg/apis/autoscaling/v2/defaults.go: DefaultCPUUtilization when spec.metrics is empty.
DEFAULT_CPU_UTILIZATION = 80


@dataclass(frozen=True, kw_only=True)
class MetricTarget:
    """autoscaling/v2 MetricTarget. Values are milli-units, as the controller compares them
    (``Quantity.MilliValue()``, which rounds up)."""

    type: str                              # Utilization | Value | AverageValue
    average_utilization: int | None = None  # percent of the request (Resource only)
    value_milli: int | None = None
    average_value_milli: int | None = None


@dataclass(frozen=True, kw_only=True)
class MetricSpec:
    """One entry of ``spec.metrics``.

    ``type`` is Resource, Pods or External; ``name`` is the resource name (cpu, memory)
    for Resource and the metric name otherwise (the key into
    ``HPAInputs.external_metrics_milli`` / ``HPAInputs.pods_metrics_milli``).
    """

    type: str
    name: str
    target: MetricTarget
    selector: Mapping[str, Any] | None = None

    @property
    def key(self) -> str:
        """A stable, human-readable id, e.g. ``resource/cpu`` or ``external/s0-rabbitmq``."""
        return f"{self.type.lower()}/{self.name}"


@dataclass(frozen=True, kw_only=True)
class Behavior:
    scale_up: ScalingRules
    scale_down: ScalingRules


@dataclass(frozen=True, kw_only=True)
class HPASpec:
    """An autoscaling/v2 HorizontalPodAutoscaler, parsed and defaulted."""

    name: str
    namespace: str | None
    target_kind: str
    target_name: str
    min_replicas: int
    max_replicas: int
    metrics: tuple[MetricSpec, ...]
    behavior: Behavior | None = None
    source: str = "<manifest>"

    @property
    def object_ref(self) -> str:
        return f"HorizontalPodAutoscaler/{self.name}"

    @classmethod
    def from_manifest(cls, doc: Mapping[str, Any], *, source: str = "<manifest>") -> HPASpec:
        """Parse a manifest dict; bad input raises ConfigError naming file, field and fix."""
        return _parse_hpa(doc, source)


# --------------------------------------------------------------------------------------
# Inputs, state, decision
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class HPAInputs:
    """What the controller reads in one sync (all as of ``now``)."""

    now: float                                          # unix seconds (or any monotonic base)
    spec_replicas: int                                  # scale subresource spec.replicas
    pods: Sequence[PodFacts] = ()                       # pods selected by the target
    pod_metrics: Mapping[str, PodMetric] = field(default_factory=dict)  # metrics.k8s.io
    #: External metrics: metric name -> values of the matching series in milli-units, as
    #: the metrics client hands them over (``Quantity.MilliValue()``, an int64; summed, as
    #: the controller does). ``None`` or a missing name means the fetch failed.
    external_metrics_milli: Mapping[str, Sequence[int] | None] = field(default_factory=dict)
    #: Pods metrics (custom.metrics.k8s.io): metric name -> pod name -> milli-units.
    pods_metrics_milli: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: scale subresource status.replicas; ``None``: pods that are not terminating and not
    #: Succeeded/Failed (what the Deployment controller counts).
    status_replicas: int | None = None


@dataclass(frozen=True, kw_only=True)
class Condition:
    """An HPA status condition (autoscaling/v2 HorizontalPodAutoscalerCondition)."""

    type: str     # AbleToScale | ScalingActive | ScalingLimited
    status: str   # "True" | "False"
    reason: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "status": self.status, "reason": self.reason,
                "message": self.message}


@dataclass(frozen=True, kw_only=True)
class HPAState:
    """What the controller remembers between syncs for one HPA (in memory, like upstream).

    Start with ``HPAState()``; ``reconcile`` returns the next one and never mutates.
    ``recommendations`` None is upstream's nil slice (an HPA not synced yet: its first
    sync records the current size, ``recordInitialRecommendation``); an empty tuple is an
    existing, empty history, which that sync leaves alone.
    """

    recommendations: tuple[Recommendation, ...] | None = None
    scale_up_events: tuple[ScaleEvent, ...] = ()
    scale_down_events: tuple[ScaleEvent, ...] = ()
    last_scale_time: float | None = None
    #: Status conditions persist across syncs (a sync overwrites only those it sets).
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, kw_only=True)
class MetricStatus:
    """The current value of one metric, as in ``status.currentMetrics`` (plus the proposal).

    For Resource Utilization ``average_utilization`` is the integer percentage the
    controller computed and ``average_value`` the raw milli-average; for External
    ``value`` is the sum (milli) or ``average_value`` the per-pod average (milli).
    """

    metric: str                          # MetricSpec.key
    type: str
    average_utilization: int | None = None
    average_value_milli: int | None = None
    value_milli: int | None = None
    proposal: int | None = None          # this metric's replica proposal
    error: str | None = None             # why the metric is invalid this sync


@dataclass(frozen=True, kw_only=True)
class HPADecision:
    """The outcome of one sync.

    ``desired_replicas`` is what the controller writes (equal to ``current_replicas`` when
    ``scaled`` is false); ``reason`` is the rescale reason the controller logs/events
    ("cpu resource utilization (percentage of request) above target", "All metrics below
    target", ...) or, when nothing changes, the most telling condition.
    """

    now: float
    current_replicas: int
    desired_replicas: int
    scaled: bool
    reason: str
    metric_proposal: int | None          # max over valid metrics before normalization
    conditions: tuple[Condition, ...]
    metric_statuses: tuple[MetricStatus, ...]

    def condition(self, type_: str) -> Condition | None:
        for cond in self.conditions:
            if cond.type == type_:
                return cond
        return None

    def conditions_as_dicts(self) -> list[dict[str, str]]:
        return [c.as_dict() for c in self.conditions]


def reconcile(
    spec: HPASpec, inputs: HPAInputs, state: HPAState, settings: HPAControllerSettings
) -> tuple[HPADecision, HPAState]:
    """One HPA sync (horizontal.go ``reconcileAutoscaler``): decide, and return the next state.

    Pure: the same arguments always give the same result; ``state`` is not modified.
    """
    now, current = inputs.now, inputs.spec_replicas
    conds = {c.type: c for c in state.conditions}
    _set(conds, "AbleToScale", True, "SucceededGetScale",
         "the HPA controller was able to get the target's current scale")
    recommendations = record_initial_recommendation(state.recommendations,
                                                    current_replicas=current, now=now)
    sync = _Sync(recommendations=recommendations)
    if current == 0 and spec.min_replicas != 0:
        _set(conds, "ScalingActive", False, "ScalingDisabled", _DISABLED)
        sync = replace(sync, desired=current, rescale=False,
                       reason=f"ScalingDisabled: {_DISABLED}")
    elif current > spec.max_replicas:
        sync = replace(sync, desired=spec.max_replicas,
                       reason="Current number of replicas above Spec.MaxReplicas")
    elif current < spec.min_replicas:
        sync = replace(sync, desired=spec.min_replicas,
                       reason="Current number of replicas below Spec.MinReplicas")
    else:
        sync = _from_metrics(spec, inputs, state, settings, conds, sync)
        if sync.failure is not None:
            # All metrics invalid, or some invalid and the valid ones say scale down:
            # the controller gives up this sync (event FailedComputeMetricsReplicas).
            return _give_up(inputs, state, conds, sync)
    return _finish(spec, inputs, state, conds, sync)


_DISABLED = "scaling is disabled since the replica count of the target is zero"


@dataclass(frozen=True, kw_only=True)
class _Sync:
    """What one sync has decided so far (the locals of ``reconcileAutoscaler``)."""

    recommendations: tuple[Recommendation, ...]
    desired: int = 0
    rescale: bool = True
    reason: str = ""
    proposal: int | None = None
    statuses: tuple[MetricStatus, ...] = ()
    failure: str | None = None


def _from_metrics(spec: HPASpec, inputs: HPAInputs, state: HPAState,
                  settings: HPAControllerSettings, conds: dict[str, Condition],
                  sync: _Sync) -> _Sync:
    """The metrics' proposal, normalized (the last branch of ``reconcileAutoscaler``)."""
    current = inputs.spec_replicas
    proposal, metric_name, statuses, failure = _compute_replicas_for_metrics(
        spec, inputs, settings, conds)
    if proposal == -1:
        return replace(sync, statuses=statuses, failure=failure)
    desired = max(0, proposal)
    reason = ""
    if desired > current:
        reason = f"{metric_name} above target"
    elif desired < current:
        reason = "All metrics below target"
    if spec.behavior is None:
        desired, recommendations = _normalize_desired_replicas(
            spec, current, desired, inputs.now, sync.recommendations, settings, conds)
    else:
        desired, recommendations = _normalize_desired_replicas_with_behaviors(
            spec.behavior, spec, current, desired, inputs.now, sync.recommendations, state,
            settings, conds)
    return replace(sync, desired=desired, rescale=desired != current, reason=reason,
                   proposal=proposal, statuses=statuses, recommendations=recommendations)


def _give_up(inputs: HPAInputs, state: HPAState, conds: dict[str, Condition],
             sync: _Sync) -> tuple[HPADecision, HPAState]:
    """The sync ends without a scale (the history keeps the initial recommendation)."""
    next_state = replace(state, recommendations=sync.recommendations,
                         conditions=_ordered(conds))
    decision = HPADecision(
        now=inputs.now, current_replicas=inputs.spec_replicas,
        desired_replicas=inputs.spec_replicas, scaled=False,
        reason=f"FailedComputeMetricsReplicas: {sync.failure}", metric_proposal=None,
        conditions=next_state.conditions, metric_statuses=sync.statuses)
    return decision, next_state


def _finish(spec: HPASpec, inputs: HPAInputs, state: HPAState, conds: dict[str, Condition],
            sync: _Sync) -> tuple[HPADecision, HPAState]:
    """Rescale (``storeScaleEvent``, lastScaleTime) or not, and set the status."""
    now, current = inputs.now, inputs.spec_replicas
    up_events, down_events = state.scale_up_events, state.scale_down_events
    last_scale_time = state.last_scale_time
    desired, reason = sync.desired, sync.reason
    if sync.rescale:
        _set(conds, "AbleToScale", True, "SucceededRescale",
             f"the HPA controller was able to update the target scale to {desired}")
        if spec.behavior is not None:  # without a behavior upstream stores no events
            up_events, down_events = store_scale_event(
                scale_up=spec.behavior.scale_up, scale_down=spec.behavior.scale_down,
                prev_replicas=current, new_replicas=desired, up_events=up_events,
                down_events=down_events, now=now)
        last_scale_time = now
    else:
        desired = current
        if not reason.startswith("ScalingDisabled"):
            reason = _quiet_reason(conds)
    conditions = _ordered(conds)
    next_state = HPAState(recommendations=sync.recommendations, scale_up_events=up_events,
                          scale_down_events=down_events, last_scale_time=last_scale_time,
                          conditions=conditions)
    decision = HPADecision(now=now, current_replicas=current, desired_replicas=desired,
                           scaled=sync.rescale, reason=reason, metric_proposal=sync.proposal,
                           conditions=conditions, metric_statuses=sync.statuses)
    return decision, next_state


# --------------------------------------------------------------------------------------
# reconcile internals (horizontal.go)
# --------------------------------------------------------------------------------------

_CONDITION_ORDER = ("AbleToScale", "ScalingActive", "ScalingLimited")


def _set(conds: dict[str, Condition], type_: str, status: bool, reason: str,
         message: str) -> None:
    conds[type_] = Condition(type=type_, status="True" if status else "False",
                             reason=reason, message=message)


def _ordered(conds: Mapping[str, Condition]) -> tuple[Condition, ...]:
    return tuple(conds[t] for t in _CONDITION_ORDER if t in conds)


def _quiet_reason(conds: Mapping[str, Condition]) -> str:
    """Why nothing moved, in the words of the most telling condition."""
    able = conds.get("AbleToScale")
    if able is not None and able.reason.endswith("Stabilized"):
        return f"{able.reason}: {able.message}"
    limited = conds.get("ScalingLimited")
    if limited is not None and limited.status == "True":
        return f"{limited.reason}: {limited.message}"
    return "ReadyForNewScale: recommended size matches current size"


def _tolerances(spec: HPASpec, settings: HPAControllerSettings) -> Tolerances:
    """``tolerancesForHpa``: the flag, overridden per direction by behavior (KEP-4951)."""
    up = down = settings.tolerance
    if spec.behavior is not None:
        if spec.behavior.scale_up.tolerance is not None:
            up = spec.behavior.scale_up.tolerance
        if spec.behavior.scale_down.tolerance is not None:
            down = spec.behavior.scale_down.tolerance
    return Tolerances(scale_down=down, scale_up=up)


def _status_replicas(inputs: HPAInputs) -> int:
    if inputs.status_replicas is not None:
        return inputs.status_replicas
    return sum(1 for p in inputs.pods
               if not p.deleting and p.phase not in ("Succeeded", "Failed"))


def _selector_text(selector: Mapping[str, Any] | None) -> str:
    if not selector:
        return ""
    labels = selector.get("matchLabels") or {}
    return "(" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + ")"


_Proposal = tuple[int, str, MetricStatus]


def _resource_metric(metric: MetricSpec, inputs: HPAInputs, settings: HPAControllerSettings,
                     tolerances: Tolerances) -> _Proposal:
    """``computeStatusForResourceMetric``: Utilization or AverageValue of cpu / memory."""
    target, current = metric.target, inputs.spec_replicas
    if target.type == "Utilization":
        assert target.average_utilization is not None
        replicas, util, raw = resource_replicas(
            current_replicas=current, target_utilization=target.average_utilization,
            pods=inputs.pods, pod_metrics=inputs.pod_metrics, tolerances=tolerances,
            now=inputs.now, cpu_initialization_period=settings.cpu_initialization_period,
            initial_readiness_delay=settings.initial_readiness_delay, resource=metric.name)
        return replicas, f"{metric.name} resource utilization (percentage of request)", \
            MetricStatus(metric=metric.key, type=metric.type, average_utilization=util,
                         average_value_milli=raw, proposal=replicas)
    assert target.average_value_milli is not None
    if not inputs.pod_metrics:
        raise MetricUnavailable(f"unable to get metrics for resource {metric.name}: no "
                                "metrics returned from resource metrics API")
    values = {name: (m.cpu_milli if metric.name == "cpu" else m.memory_bytes * 1000)
              for name, m in inputs.pod_metrics.items()}
    replicas, usage = plain_metric_replicas(
        current_replicas=current, target_usage_milli=target.average_value_milli,
        pods=inputs.pods, metrics=values, tolerances=tolerances, now=inputs.now,
        cpu_samples=inputs.pod_metrics if metric.name == "cpu" else None,
        cpu_initialization_period=settings.cpu_initialization_period,
        initial_readiness_delay=settings.initial_readiness_delay)
    return replicas, f"{metric.name} resource", MetricStatus(
        metric=metric.key, type=metric.type, average_value_milli=usage, proposal=replicas)


def _pods_metric(metric: MetricSpec, inputs: HPAInputs, tolerances: Tolerances) -> _Proposal:
    """``computeStatusForPodsMetric`` (custom.metrics.k8s.io values, milli-units)."""
    samples = inputs.pods_metrics_milli.get(metric.name)
    if not samples:
        raise MetricUnavailable(f"unable to get metric {metric.name}: no metrics returned "
                                "from custom metrics API")
    assert metric.target.average_value_milli is not None
    replicas, usage = plain_metric_replicas(
        current_replicas=inputs.spec_replicas,
        target_usage_milli=metric.target.average_value_milli, pods=inputs.pods,
        metrics=dict(samples), tolerances=tolerances, now=inputs.now)
    return replicas, f"pods metric {metric.name}", MetricStatus(
        metric=metric.key, type=metric.type, average_value_milli=usage, proposal=replicas)


def _external_metric(metric: MetricSpec, inputs: HPAInputs,
                     tolerances: Tolerances) -> _Proposal:
    """``computeStatusForExternalMetric`` (external.metrics.k8s.io values, milli-units)."""
    milli = inputs.external_metrics_milli.get(metric.name)
    if milli is None:
        raise MetricUnavailable(f"unable to get external metric {metric.name}: "
                                "no value for the metric this sync")
    target = metric.target
    name = f"external metric {metric.name}{_selector_text(metric.selector)}"
    if target.type == "AverageValue":
        assert target.average_value_milli is not None
        replicas, average = external_average_replicas(
            status_replicas=_status_replicas(inputs),
            target_average_milli=target.average_value_milli, values_milli=milli,
            tolerances=tolerances)
        return replicas, name, MetricStatus(metric=metric.key, type=metric.type,
                                            average_value_milli=average, proposal=replicas)
    assert target.value_milli is not None
    replicas, usage = external_value_replicas(
        current_replicas=inputs.spec_replicas, target_value_milli=target.value_milli,
        values_milli=milli, pods=inputs.pods, tolerances=tolerances)
    return replicas, name, MetricStatus(metric=metric.key, type=metric.type,
                                        value_milli=usage, proposal=replicas)


def _compute_replicas_for_metric(
    metric: MetricSpec, inputs: HPAInputs, settings: HPAControllerSettings,
    tolerances: Tolerances,
) -> _Proposal:
    """``computeReplicasForMetric``: one metric's proposal, name and status."""
    if metric.type == "Resource":
        return _resource_metric(metric, inputs, settings, tolerances)
    if metric.type == "Pods":
        return _pods_metric(metric, inputs, tolerances)
    return _external_metric(metric, inputs, tolerances)


_FAILED_REASON = {"Resource": "FailedGetResourceMetric", "Pods": "FailedGetPodsMetric",
                  "External": "FailedGetExternalMetric"}


def _compute_replicas_for_metrics(
    spec: HPASpec, inputs: HPAInputs, settings: HPAControllerSettings,
    conds: dict[str, Condition],
) -> tuple[int, str, tuple[MetricStatus, ...], str]:
    """``computeReplicasForMetrics``: the max proposal over metrics, or -1 when the
    controller must not act (all invalid, or some invalid and the rest say scale down)."""
    tolerances = _tolerances(spec, settings)
    replicas = 0
    metric_name = ""
    statuses = []
    invalid = 0
    first_error = ""
    first_reason = ""
    for metric in spec.metrics:
        try:
            proposal, name, status = _compute_replicas_for_metric(
                metric, inputs, settings, tolerances)
        except MetricUnavailable as err:
            statuses.append(MetricStatus(metric=metric.key, type=metric.type, error=str(err)))
            if invalid == 0:
                first_error = str(err)
                first_reason = _FAILED_REASON[metric.type]
            invalid += 1
            continue
        statuses.append(status)
        if replicas == 0 or proposal > replicas:
            replicas = proposal
            metric_name = name
    if invalid >= len(spec.metrics) or (invalid > 0 and replicas < inputs.spec_replicas):
        _set(conds, "ScalingActive", False, first_reason,
             f"the HPA was unable to compute the replica count: {first_error}")
        failure = (f"invalid metrics ({invalid} invalid out of {len(spec.metrics)}), "
                   f"first error is: {first_error}")
        return -1, "", tuple(statuses), failure
    _set(conds, "ScalingActive", True, "ValidMetricFound",
         f"the HPA was able to successfully calculate a replica count from {metric_name}")
    return replicas, metric_name, tuple(statuses), ""


def _stabilized_condition(conds: dict[str, Condition], stabilized: int, prenormalized: int,
                          reason: str) -> None:
    """AbleToScale after stabilization: its reason when it changed the number."""
    if stabilized == prenormalized:
        reason = "ReadyForNewScale"
    _set(conds, "AbleToScale", True, reason, STABILIZED_MESSAGES[reason])


def _normalize_desired_replicas(
    spec: HPASpec, current: int, prenormalized: int, now: float,
    recommendations: tuple[Recommendation, ...], settings: HPAControllerSettings,
    conds: dict[str, Condition],
) -> tuple[int, tuple[Recommendation, ...]]:
    """``normalizeDesiredReplicas`` (no behavior): ``stabilizeRecommendation`` over the
    downscale flag's window, then ``convertDesiredReplicasWithRules``."""
    stabilized, recommendations = stabilize_recommendation(
        recommendations, prenormalized=prenormalized, now=now,
        window=settings.downscale_stabilization)
    _stabilized_condition(conds, stabilized, prenormalized, "ScaleDownStabilized")
    desired, reason, message = convert_desired_replicas_with_rules(
        current_replicas=current, desired_replicas=stabilized,
        min_replicas=spec.min_replicas, max_replicas=spec.max_replicas,
        scale_up_limit_factor=settings.scale_up_limit_factor,
        scale_up_limit_minimum=settings.scale_up_limit_minimum)
    _set(conds, "ScalingLimited", desired != stabilized, reason, message)
    return desired, recommendations


def _normalize_desired_replicas_with_behaviors(
    behavior: Behavior, spec: HPASpec, current: int, prenormalized: int, now: float,
    recommendations: tuple[Recommendation, ...], state: HPAState,
    settings: HPAControllerSettings, conds: dict[str, Condition],
) -> tuple[int, tuple[Recommendation, ...]]:
    """``normalizeDesiredReplicasWithBehaviors``: ``stabilizeRecommendationWithBehaviors``,
    then ``convertDesiredReplicasWithBehaviorRate``."""
    args = NormalizationArg(
        scale_up=behavior.scale_up,
        scale_down=maybe_init_scale_down_stabilization_window(
            behavior.scale_down, downscale_stabilization=settings.downscale_stabilization),
        min_replicas=spec.min_replicas, max_replicas=spec.max_replicas,
        current_replicas=current, desired_replicas=prenormalized)
    stabilized, reason, _, recommendations = stabilize_recommendation_with_behaviors(
        args, recommendations, now=now)
    _stabilized_condition(conds, stabilized, prenormalized, reason)
    desired, reason, message = convert_desired_replicas_with_behavior_rate(
        replace(args, desired_replicas=stabilized), scale_up_events=state.scale_up_events,
        scale_down_events=state.scale_down_events, now=now)
    _set(conds, "ScalingLimited", desired != stabilized, reason, message)
    return desired, recommendations


# --------------------------------------------------------------------------------------
# Manifest parsing
# --------------------------------------------------------------------------------------

_SUPPORTED_API = ("autoscaling/v2", "autoscaling/v2beta2")


def parse_quantity_milli(value: Any, *, source: str, field_: str) -> int:
    """A Kubernetes quantity ("500m", "1k", 30) as milli-units, rounded up like MilliValue()."""
    from kubernetes.utils.quantity import parse_quantity

    try:
        dec = parse_quantity(value)
    except (ValueError, TypeError, InvalidOperation) as err:
        raise ConfigError(
            f"{value!r} is not a Kubernetes quantity ({err})", file=source, field=field_,
            fix="write a number or a quantity such as 250m (CPU), 2, 1k, 128Mi (memory)",
        ) from None
    return int(math.ceil(dec * Decimal(1000)))


def _req(doc: Mapping[str, Any], key: str, source: str, path: str) -> Any:
    if not isinstance(doc, Mapping) or key not in doc or doc[key] is None:
        raise ConfigError("is required", file=source, field=f"{path}.{key}".lstrip("."),
                          fix=f"add '{key}' (see the autoscaling/v2 HorizontalPodAutoscaler API)")
    return doc[key]


def _int(value: Any, source: str, path: str, *, minimum: int | None = None,
         maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"must be an integer, got {value!r}", file=source, field=path,
                          fix="write a whole number")
    if minimum is not None and value < minimum:
        raise ConfigError(f"must be >= {minimum}, got {value}", file=source, field=path,
                          fix=f"use a value of at least {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"must be <= {maximum}, got {value}", file=source, field=path,
                          fix=f"use a value of at most {maximum}")
    return value


def _choice(value: Any, choices: Sequence[str], source: str, path: str) -> str:
    if value not in choices:
        raise ConfigError(f"must be one of {', '.join(choices)}, got {value!r}", file=source,
                          field=path, fix=f"use one of {', '.join(choices)}")
    return str(value)


def _parse_target(doc: Any, source: str, path: str, allowed: Sequence[str]) -> MetricTarget:
    if not isinstance(doc, Mapping):
        raise ConfigError("must be a mapping", file=source, field=path,
                          fix="write e.g. {type: Utilization, averageUtilization: 50}")
    ttype = _choice(_req(doc, "type", source, path), allowed, source, f"{path}.type")
    if ttype == "Utilization":
        util = _int(_req(doc, "averageUtilization", source, path), source,
                    f"{path}.averageUtilization", minimum=1)
        return MetricTarget(type=ttype, average_utilization=util)
    key = "value" if ttype == "Value" else "averageValue"
    milli = parse_quantity_milli(_req(doc, key, source, path), source=source,
                                 field_=f"{path}.{key}")
    if milli <= 0:
        raise ConfigError("must be greater than zero", file=source, field=f"{path}.{key}",
                          fix="use a positive quantity")
    if ttype == "Value":
        return MetricTarget(type=ttype, value_milli=milli)
    return MetricTarget(type=ttype, average_value_milli=milli)


def _parse_metric(doc: Any, source: str, path: str) -> MetricSpec:
    if not isinstance(doc, Mapping):
        raise ConfigError("must be a mapping", file=source, field=path,
                          fix="write e.g. {type: Resource, resource: {name: cpu, target: ...}}")
    mtype = _req(doc, "type", source, path)
    if mtype in ("Object", "ContainerResource"):
        raise ConfigError(
            f"metric type {mtype} is not emulated by the local backend", file=source,
            field=f"{path}.type", fix="use a Resource (cpu), Pods or External metric",
        )
    mtype = _choice(mtype, ("Resource", "Pods", "External"), source, f"{path}.type")
    if mtype == "Resource":
        res = _req(doc, "resource", source, path)
        name = _choice(_req(res, "name", source, f"{path}.resource"), ("cpu", "memory"),
                       source, f"{path}.resource.name")
        target = _parse_target(_req(res, "target", source, f"{path}.resource"), source,
                               f"{path}.resource.target",
                               ("Utilization", "AverageValue"))
        return MetricSpec(type=mtype, name=name, target=target)
    section = "pods" if mtype == "Pods" else "external"
    body = _req(doc, section, source, path)
    metric = _req(body, "metric", source, f"{path}.{section}")
    name = _req(metric, "name", source, f"{path}.{section}.metric")
    if not isinstance(name, str) or not name:
        raise ConfigError("must be a non-empty string", file=source,
                          field=f"{path}.{section}.metric.name", fix="name the metric")
    allowed = ("AverageValue",) if mtype == "Pods" else ("Value", "AverageValue")
    target = _parse_target(_req(body, "target", source, f"{path}.{section}"), source,
                           f"{path}.{section}.target", allowed)
    return MetricSpec(type=mtype, name=name, target=target, selector=metric.get("selector"))




def _parse_rules(doc: Any, source: str, path: str, *, up: bool) -> ScalingRules:
    default = DEFAULT_SCALE_UP_RULES if up else DEFAULT_SCALE_DOWN_RULES
    default_window, default_policies = default.stabilization_window_seconds, default.policies
    if doc is None:
        return default
    if not isinstance(doc, Mapping):
        raise ConfigError("must be a mapping", file=source, field=path,
                          fix="write e.g. {stabilizationWindowSeconds: 60, policies: [...]}")
    window = doc.get("stabilizationWindowSeconds")
    window = default_window if window is None else _int(
        window, source, f"{path}.stabilizationWindowSeconds", minimum=0, maximum=3600)
    select = doc.get("selectPolicy")
    select = "Max" if select is None else _choice(select, ("Max", "Min", "Disabled"), source,
                                                  f"{path}.selectPolicy")
    raw_policies = doc.get("policies")
    if raw_policies is None or raw_policies == []:
        policies = default_policies
    else:
        if not isinstance(raw_policies, list):
            raise ConfigError("must be a list", file=source, field=f"{path}.policies",
                              fix="write a list of {type, value, periodSeconds}")
        parsed = []
        for i, pol in enumerate(raw_policies):
            ppath = f"{path}.policies[{i}]"
            ptype = _choice(_req(pol, "type", source, ppath), ("Pods", "Percent"), source,
                            f"{ppath}.type")
            value = _int(_req(pol, "value", source, ppath), source, f"{ppath}.value", minimum=1)
            period = _int(_req(pol, "periodSeconds", source, ppath), source,
                          f"{ppath}.periodSeconds", minimum=1, maximum=1800)
            parsed.append(ScalingPolicy(type=ptype, value=value, period_seconds=period))
        policies = tuple(parsed)
    tolerance: float | None = None
    if doc.get("tolerance") is not None:
        milli = parse_quantity_milli(doc["tolerance"], source=source,
                                     field_=f"{path}.tolerance")
        if milli < 0:
            raise ConfigError("must not be negative", file=source, field=f"{path}.tolerance",
                              fix="use a fraction such as 0.05 (5%)")
        tolerance = _quantity_float(doc["tolerance"])
    return ScalingRules(stabilization_window_seconds=window, select_policy=select,
                        policies=policies, tolerance=tolerance)


def _quantity_float(value: Any) -> float:
    from kubernetes.utils.quantity import parse_quantity

    return float(parse_quantity(value))


def _parse_hpa(doc: Mapping[str, Any], source: str) -> HPASpec:
    if not isinstance(doc, Mapping):
        raise ConfigError("is not a mapping", file=source, field="(document)",
                          fix="give a HorizontalPodAutoscaler manifest (YAML mapping)")
    api = doc.get("apiVersion")
    if api not in _SUPPORTED_API:
        raise ConfigError(f"must be autoscaling/v2, got {api!r}", file=source,
                          field="apiVersion", fix="write apiVersion: autoscaling/v2")
    if doc.get("kind") != "HorizontalPodAutoscaler":
        raise ConfigError(f"must be HorizontalPodAutoscaler, got {doc.get('kind')!r}",
                          file=source, field="kind",
                          fix="give an HPA manifest (or a KEDA ScaledObject to replay)")
    meta = _req(doc, "metadata", source, "")
    name = _req(meta, "name", source, "metadata")
    spec = _req(doc, "spec", source, "")
    ref = _req(spec, "scaleTargetRef", source, "spec")
    kind = _req(ref, "kind", source, "spec.scaleTargetRef")
    target_name = _req(ref, "name", source, "spec.scaleTargetRef")
    min_r = spec.get("minReplicas")
    min_r = 1 if min_r is None else _int(min_r, source, "spec.minReplicas", minimum=0)
    max_r = _int(_req(spec, "maxReplicas", source, "spec"), source, "spec.maxReplicas",
                 minimum=1)
    if max_r < min_r:
        raise ConfigError(f"maxReplicas ({max_r}) is below minReplicas ({min_r})", file=source,
                          field="spec.maxReplicas", fix="make maxReplicas >= minReplicas")
    raw_metrics = spec.get("metrics")
    if not raw_metrics:
        metrics: tuple[MetricSpec, ...] = (MetricSpec(
            type="Resource", name="cpu",
            target=MetricTarget(type="Utilization", average_utilization=DEFAULT_CPU_UTILIZATION),
        ),)
    else:
        if not isinstance(raw_metrics, list):
            raise ConfigError("must be a list", file=source, field="spec.metrics",
                              fix="write a list of metric specs")
        metrics = tuple(_parse_metric(m, source, f"spec.metrics[{i}]")
                        for i, m in enumerate(raw_metrics))
    behavior = None
    raw_behavior = spec.get("behavior")
    if raw_behavior is not None:
        if not isinstance(raw_behavior, Mapping):
            raise ConfigError("must be a mapping", file=source, field="spec.behavior",
                              fix="write {scaleUp: ..., scaleDown: ...}")
        behavior = Behavior(
            scale_up=_parse_rules(raw_behavior.get("scaleUp"), source,
                                  "spec.behavior.scaleUp", up=True),
            scale_down=_parse_rules(raw_behavior.get("scaleDown"), source,
                                    "spec.behavior.scaleDown", up=False),
        )
    return HPASpec(name=str(name), namespace=meta.get("namespace"), target_kind=str(kind),
                   target_name=str(target_name), min_replicas=min_r, max_replicas=max_r,
                   metrics=metrics, behavior=behavior, source=source)
