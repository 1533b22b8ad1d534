"""The HPA controller's normalization stages, one pure function per upstream function.

kube-controller-manager turns the metrics' proposal into the size it writes in two
stages: stabilization over the recent *recommendations*, then a rate limit from the
recent *scale events* (with ``spec.behavior``) or a fixed cap (without). Upstream keeps
that history in maps keyed by HPA and mutates it; here each stage takes the history as an
argument and returns the new history, so every stage is tested alone with upstream's own
tables (tests/control/test_hpa_stages.py) and ``scalelab.control.hpa.reconcile`` only
composes them.

Follows kubernetes ``pkg/controller/podautoscaler/horizontal.go`` as on master when read
(2026-11, through the fork omerap12/kubernetes at 060da168: the version with
``recommendationsLock`` whose rate limits count the other direction's events too);
each function names the upstream function it mirrors. Times are seconds on any
monotonic base, as ``HPAInputs.now``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Recommendation:
    """A timestamped unstabilized recommendation (horizontal.go ``timestampedRecommendation``)."""

    t: float
    replicas: int


@dataclass(frozen=True)
class ScaleEvent:
    """A timestamped replica change (horizontal.go ``timestampedScaleEvent``); ``change`` is
    always > 0, the direction is the list it is in. ``outdated``: marked by
    ``markScaleEventsOutdated``, its slot may be reused."""

    t: float
    change: int
    outdated: bool = False


@dataclass(frozen=True, kw_only=True)
class ScalingPolicy:
    """HPAScalingPolicy: at most ``value`` Pods / Percent per ``period_seconds``."""

    type: str              # Pods | Percent
    value: int
    period_seconds: int


@dataclass(frozen=True, kw_only=True)
class ScalingRules:
    """HPAScalingRules after defaulting. ``stabilization_window_seconds`` None (scaleDown
    only: the API server leaves it unset) means the controller's
    ``--horizontal-pod-autoscaler-downscale-stabilization``, filled in by
    ``with_downscale_window`` (``maybeInitScaleDownStabilizationWindow``)."""

    stabilization_window_seconds: int | None
    select_policy: str     # Max | Min | Disabled
    policies: tuple[ScalingPolicy, ...]
    tolerance: float | None = None  # None: the controller's --horizontal-pod-autoscaler-tolerance


# pkg/apis/autoscaling/v2/defaults.go (GenerateHPAScaleUpRules / GenerateHPAScaleDownRules
# with nothing set): what an omitted scaleUp / scaleDown becomes.
DEFAULT_SCALE_UP_RULES = ScalingRules(
    stabilization_window_seconds=0, select_policy="Max",
    policies=(ScalingPolicy(type="Pods", value=4, period_seconds=15),
              ScalingPolicy(type="Percent", value=100, period_seconds=15)))
DEFAULT_SCALE_DOWN_RULES = ScalingRules(
    stabilization_window_seconds=None, select_policy="Max",
    policies=(ScalingPolicy(type="Percent", value=100, period_seconds=15),))

#: The ScalingLimited reasons and messages, as horizontal.go words them.
LIMIT_MESSAGES = {
    "DesiredWithinRange": "the desired count is within the acceptable range",
    "ScaleUpLimit": "the desired replica count is increasing faster than the maximum scale rate",
    "TooManyReplicas": "the desired replica count is more than the maximum replica count",
    "ScaleDownLimit": "the desired replica count is decreasing faster than the maximum scale "
                      "rate",
    "TooFewReplicas": "the desired replica count is less than the minimum replica count",
}
#: The AbleToScale reasons and messages of the stabilization stage.
STABILIZED_MESSAGES = {
    "ScaleUpStabilized": "recent recommendations were lower than current one, applying the "
                         "lowest recent recommendation",
    "ScaleDownStabilized": "recent recommendations were higher than current one, applying the "
                           "highest recent recommendation",
    "ReadyForNewScale": "recommended size matches current size",
}


@dataclass(frozen=True, kw_only=True)
class NormalizationArg:
    """horizontal.go ``NormalizationArg`` without the map key (the history is passed to
    each stage instead). Both rules have their stabilization window set."""

    scale_up: ScalingRules
    scale_down: ScalingRules
    min_replicas: int
    max_replicas: int
    current_replicas: int
    desired_replicas: int


def maybe_init_scale_down_stabilization_window(rules: ScalingRules, *,
                                               downscale_stabilization: float
                                               ) -> ScalingRules:
    """``maybeInitScaleDownStabilizationWindow``: an unset scale-down window becomes the
    ``--horizontal-pod-autoscaler-downscale-stabilization`` flag, in whole seconds."""
    if rules.stabilization_window_seconds is not None:
        return rules
    return replace(rules, stabilization_window_seconds=int(downscale_stabilization))


def _limited(replicas: int, reason: str) -> tuple[int, str, str]:
    return replicas, reason, LIMIT_MESSAGES[reason]


def _record(recommendations: Sequence[Recommendation], old_index: int | None,
            new: Recommendation) -> tuple[Recommendation, ...]:
    """Store ``new`` in the obsolete slot found (upstream keeps the last index it saw), or
    append it: the history never shrinks, obsolete entries are overwritten one per sync."""
    if old_index is None:
        return (*recommendations, new)
    recs = list(recommendations)
    recs[old_index] = new
    return tuple(recs)


def record_initial_recommendation(recommendations: tuple[Recommendation, ...] | None, *,
                                  current_replicas: int, now: float
                                  ) -> tuple[Recommendation, ...]:
    """``recordInitialRecommendation``: a nil history (an HPA this controller has not
    synced yet) starts with the current size, so a new HPA does not scale down before a
    stabilization window has passed; an existing history, even an empty one, is kept."""
    if recommendations is None:
        return (Recommendation(now, current_replicas),)
    return recommendations


def stabilize_recommendation(recommendations: Sequence[Recommendation], *,
                             prenormalized: int, now: float, window: float
                             ) -> tuple[int, tuple[Recommendation, ...]]:
    """``stabilizeRecommendation`` (no behavior): the max of ``prenormalized`` and every
    recommendation not older than the ``--horizontal-pod-autoscaler-downscale-stabilization``
    window (a recommendation exactly on the edge counts); ``prenormalized`` is recorded in
    the last obsolete slot, or appended."""
    cutoff = now - window
    highest = prenormalized
    old_index = None
    for i, rec in enumerate(recommendations):
        if rec.t < cutoff:
            old_index = i
        elif rec.replicas > highest:
            highest = rec.replicas
    return highest, _record(recommendations, old_index, Recommendation(now, prenormalized))


def stabilize_recommendation_with_behaviors(
    args: NormalizationArg, recommendations: Sequence[Recommendation], *, now: float,
) -> tuple[int, str, str, tuple[Recommendation, ...]]:
    """``stabilizeRecommendationWithBehaviors``: the current size brought up to the lowest
    recommendation newer than the scale-up window and down to the highest newer than the
    scale-down window (both including ``desired_replicas``); the desired size is recorded in
    the last slot older than both windows, or appended. Returns the stabilized size, the
    AbleToScale reason and message to use when it differs from ``desired_replicas``, and the
    new history."""
    up_window = args.scale_up.stabilization_window_seconds or 0
    down_window = args.scale_down.stabilization_window_seconds or 0
    up_cutoff, down_cutoff = now - up_window, now - down_window
    lowest = highest = args.desired_replicas
    old_index = None
    for i, rec in enumerate(recommendations):
        if rec.t > up_cutoff:
            lowest = min(rec.replicas, lowest)
        if rec.t > down_cutoff:
            highest = max(rec.replicas, highest)
        if rec.t < up_cutoff and rec.t < down_cutoff:
            old_index = i
    stabilized = min(max(args.current_replicas, lowest), highest)
    history = _record(recommendations, old_index, Recommendation(now, args.desired_replicas))
    reason = ("ScaleUpStabilized" if args.desired_replicas >= args.current_replicas
              else "ScaleDownStabilized")
    return stabilized, reason, STABILIZED_MESSAGES[reason], history


def calculate_scale_up_limit(current_replicas: int, *, factor: float, minimum: float) -> int:
    """``calculateScaleUpLimit``: max(factor x current, minimum), truncated to int32."""
    return int(max(factor * float(current_replicas), minimum))


def convert_desired_replicas_with_rules(
    *, current_replicas: int, desired_replicas: int, min_replicas: int, max_replicas: int,
    scale_up_limit_factor: float, scale_up_limit_minimum: float,
) -> tuple[int, str, str]:
    """``convertDesiredReplicasWithRules`` (no behavior): clamp to [min, max] with a scale-up
    capped at ``calculate_scale_up_limit``. Returns (replicas, ScalingLimited reason,
    message); the reason is the limit that would apply even when it does not bind."""
    scale_up_limit = calculate_scale_up_limit(
        current_replicas, factor=scale_up_limit_factor, minimum=scale_up_limit_minimum)
    if max_replicas > scale_up_limit:
        maximum, reason = scale_up_limit, "ScaleUpLimit"
    else:
        maximum, reason = max_replicas, "TooManyReplicas"
    if desired_replicas < min_replicas:
        return _limited(min_replicas, "TooFewReplicas")
    if desired_replicas > maximum:
        return _limited(maximum, reason)
    return _limited(desired_replicas, "DesiredWithinRange")


def get_replicas_change_per_period(period_seconds: float, events: Sequence[ScaleEvent], *,
                                   now: float) -> int:
    """``getReplicasChangePerPeriod``: the sum of the changes strictly inside the period."""
    cutoff = now - period_seconds
    return sum(e.change for e in events if e.t > cutoff)


def _period_start(current: int, policy: ScalingPolicy, up_events: Sequence[ScaleEvent],
                  down_events: Sequence[ScaleEvent], now: float) -> int:
    """The size at the start of the policy's period: current - added + deleted."""
    return (current - get_replicas_change_per_period(policy.period_seconds, up_events, now=now)
            + get_replicas_change_per_period(policy.period_seconds, down_events, now=now))


def calculate_scale_up_limit_with_scaling_rules(
    current_replicas: int, up_events: Sequence[ScaleEvent], down_events: Sequence[ScaleEvent],
    rules: ScalingRules, *, now: float,
) -> int:
    """``calculateScaleUpLimitWithScalingRules``: the most replicas the policies allow now
    (Percent rounded up in float64, or a small target could never grow)."""
    if rules.select_policy == "Disabled":
        return current_replicas
    proposals = []
    for policy in rules.policies:
        start = _period_start(current_replicas, policy, up_events, down_events, now)
        if policy.type == "Pods":
            proposals.append(start + policy.value)
        else:
            proposals.append(math.ceil(float(start) * (1 + float(policy.value) / 100)))
    if not proposals:   # upstream: math.MinInt32 / MaxInt32, then clamped to current
        return current_replicas
    return min(proposals) if rules.select_policy == "Min" else max(proposals)


def calculate_scale_down_limit_with_behaviors(
    current_replicas: int, up_events: Sequence[ScaleEvent], down_events: Sequence[ScaleEvent],
    rules: ScalingRules, *, now: float,
) -> int:
    """``calculateScaleDownLimitWithBehaviors``: the fewest replicas the policies allow now
    (Percent truncated toward zero, as Go's int32() conversion)."""
    if rules.select_policy == "Disabled":
        return current_replicas
    proposals = []
    for policy in rules.policies:
        start = _period_start(current_replicas, policy, up_events, down_events, now)
        if policy.type == "Pods":
            proposals.append(start - policy.value)
        else:
            proposals.append(int(float(start) * (1 - float(policy.value) / 100)))
    if not proposals:
        return current_replicas
    return max(proposals) if rules.select_policy == "Min" else min(proposals)


def convert_desired_replicas_with_behavior_rate(
    args: NormalizationArg, *, scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent], now: float,
) -> tuple[int, str, str]:
    """``convertDesiredReplicasWithBehaviorRate``: cap a scale-up by the scale-up policies
    (never below the current size) and maxReplicas, a scale-down by the scale-down
    policies (never above the current size) and minReplicas. Returns (replicas,
    ScalingLimited reason, message)."""
    current, desired = args.current_replicas, args.desired_replicas
    if desired > current:
        limit = max(calculate_scale_up_limit_with_scaling_rules(
            current, scale_up_events, scale_down_events, args.scale_up, now=now), current)
        maximum, reason = ((limit, "ScaleUpLimit") if args.max_replicas > limit
                           else (args.max_replicas, "TooManyReplicas"))
        if desired > maximum:
            return _limited(maximum, reason)
    elif desired < current:
        limit = min(calculate_scale_down_limit_with_behaviors(
            current, scale_up_events, scale_down_events, args.scale_down, now=now), current)
        minimum, reason = ((limit, "ScaleDownLimit") if args.min_replicas < limit
                           else (args.min_replicas, "TooFewReplicas"))
        if desired < minimum:
            return _limited(minimum, reason)
    return _limited(desired, "DesiredWithinRange")


def get_longest_policy_period(rules: ScalingRules) -> int:
    """``getLongestPolicyPeriod``."""
    return max((p.period_seconds for p in rules.policies), default=0)


def mark_scale_events_outdated(events: Sequence[ScaleEvent], longest_period: float, *,
                               now: float) -> tuple[ScaleEvent, ...]:
    """``markScaleEventsOutdated``: events older than the longest policy period may be
    overwritten (they still count for the other direction's longer periods until then)."""
    cutoff = now - longest_period
    return tuple(replace(e, outdated=True) if e.t < cutoff else e for e in events)


def store_scale_event(
    *, scale_up: ScalingRules, scale_down: ScalingRules, prev_replicas: int,
    new_replicas: int, up_events: Sequence[ScaleEvent], down_events: Sequence[ScaleEvent],
    now: float,
) -> tuple[tuple[ScaleEvent, ...], tuple[ScaleEvent, ...]]:
    """``storeScaleEvent`` (HPAs with a behavior; without one upstream stores nothing):
    the change goes into its direction's list, in the last outdated slot or appended."""
    up = new_replicas > prev_replicas
    rules, events = (scale_up, up_events) if up else (scale_down, down_events)
    marked = mark_scale_events_outdated(events, get_longest_policy_period(rules), now=now)
    outdated = [i for i, e in enumerate(marked) if e.outdated]
    new = ScaleEvent(now, abs(new_replicas - prev_replicas))
    stored = (*marked, new) if not outdated else (
        marked[:outdated[-1]] + (new,) + marked[outdated[-1] + 1:])
    return (stored, tuple(down_events)) if up else (tuple(up_events), stored)
