"""The HPA normalization stages alone (scalelab.control.hpa_normalize), with upstream's tables.

Source: kubernetes/kubernetes ``pkg/controller/podautoscaler/horizontal_test.go`` (master,
read 2026-11 through a fork tracking it, omerap12/kubernetes at
060da1681551ba64d82dad3c8d4246ab81760d4d): TestNormalizeDesiredReplicas,
TestNormalizeDesiredReplicasWithBehavior, TestScalingWithRules,
TestConvertDesiredReplicasWithRules, TestCalculateScaleUpLimitWithScalingRules,
TestCalculateScaleDownLimitWithBehaviors, TestStoreScaleEvents, TestScaleDown and
TestScaleDownStabilizeInitialSize. Each table entry below is transcribed as data (its
name is the test id); upstream's Go test code is not.

Times: upstream writes ``time.Now().Add(-2 * time.Minute)``; here an entry holds the age
in seconds and the test places it before ``NOW``. Upstream's
``generateEventsUniformDistribution(events, period)`` puts event i at the centre of the
i-th of ``len(events)`` equal slices of the last ``period`` seconds, the first slice the
oldest; ``uniform`` below computes the same ages from the same arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from scalelab.control.hpa import (
    HPAControllerSettings,
    HPAInputs,
    HPASpec,
    HPAState,
    reconcile,
)
from scalelab.control.hpa_normalize import (
    DEFAULT_SCALE_DOWN_RULES,
    DEFAULT_SCALE_UP_RULES,
    NormalizationArg,
    Recommendation,
    ScaleEvent,
    ScalingPolicy,
    ScalingRules,
    calculate_scale_down_limit_with_behaviors,
    calculate_scale_up_limit,
    calculate_scale_up_limit_with_scaling_rules,
    convert_desired_replicas_with_behavior_rate,
    convert_desired_replicas_with_rules,
    get_replicas_change_per_period,
    maybe_init_scale_down_stabilization_window,
    record_initial_recommendation,
    stabilize_recommendation,
    stabilize_recommendation_with_behaviors,
    store_scale_event,
)
from scalelab.control.view import PodFacts, PodMetric

NOW = 100_000.0


def recs(*pairs: tuple[float, int]) -> tuple[Recommendation, ...]:
    """(seconds ago, replicas) pairs -> a recommendation history."""
    return tuple(Recommendation(NOW - age, r) for age, r in pairs)


def uniform(changes: Sequence[int], period: float) -> tuple[ScaleEvent, ...]:
    """generateEventsUniformDistribution(changes, period) of horizontal_test.go (whose
    time.Duration(float64) conversion truncates the age to whole seconds)."""
    segment = period / len(changes)
    return tuple(ScaleEvent(NOW - int(period - segment * (i + 1) + segment / 2), change)
                 for i, change in enumerate(changes))


def generate_scaling_rules(pods: int, pods_period: int, percent: int, percent_period: int,
                           window: int) -> ScalingRules:
    """generateScalingRules(pods, podsPeriod, percent, percentPeriod, stabilizationWindow):
    a Pods policy when pods != 0, a Percent policy when percent != 0, selectPolicy Max."""
    policies = []
    if pods:
        policies.append(ScalingPolicy(type="Pods", value=pods, period_seconds=pods_period))
    if percent:
        policies.append(ScalingPolicy(type="Percent", value=percent,
                                      period_seconds=percent_period))
    return ScalingRules(stabilization_window_seconds=window, select_policy="Max",
                        policies=tuple(policies))


def test_uniform_matches_the_upstream_comment() -> None:
    # generateEventsUniformDistribution's own doc: [1, 2, 3, 4] over 120 s sit at -105,
    # -75, -45 and -15 s.
    assert [NOW - e.t for e in uniform([1, 2, 3, 4], 120)] == [105, 75, 45, 15]


# --------------------------------------------------------------------------------------
# stabilizeRecommendation (no behavior)
# --------------------------------------------------------------------------------------

# name, history (age s, replicas), prenormalized, stabilized, log length:
# TestNormalizeDesiredReplicas
# (downscaleStabilisationWindow 5 minutes).
NORMALIZE_DESIRED_REPLICAS = [
    ("empty log", (), 5, 5, 1),
    ("stabilize", ((120, 4), (60, 5)), 3, 5, 3),
    ("no stabilize", ((120, 1), (60, 2)), 3, 3, 3),
    ("no stabilize - old recommendations", ((600, 10), (540, 9)), 3, 3, 2),
    ("stabilize - old recommendations", ((600, 10), (60, 4), (120, 5), (540, 9)), 3, 5, 4),
]


@pytest.mark.parametrize(("history", "pre", "expected", "length"),
                         [c[1:] for c in NORMALIZE_DESIRED_REPLICAS],
                         ids=[f"TestNormalizeDesiredReplicas/{c[0]}"
                              for c in NORMALIZE_DESIRED_REPLICAS])
def test_stabilize_recommendation(history: tuple[tuple[int, int], ...], pre: int,
                                  expected: int, length: int) -> None:
    got, log = stabilize_recommendation(recs(*history), prenormalized=pre, now=NOW,
                                        window=300)
    assert got == expected
    assert len(log) == length
    assert Recommendation(NOW, pre) in log


def test_stabilize_recommendation_counts_the_window_edge() -> None:
    # scalelab case (no upstream counterpart): stabilizeRecommendation drops only what is
    # Before(cutoff), so a recommendation exactly one window old still counts.
    assert stabilize_recommendation(recs((300, 9)), prenormalized=3, now=NOW,
                                    window=300)[0] == 9
    assert stabilize_recommendation(recs((301, 9)), prenormalized=3, now=NOW,
                                    window=300)[0] == 3


# --------------------------------------------------------------------------------------
# stabilizeRecommendationWithBehaviors
# --------------------------------------------------------------------------------------

# name, history, current, prenormalized, stabilized, stored recommendation values (None:
# upstream does not check them), scaleUp window, scaleDown window:
# TestNormalizeDesiredReplicasWithBehavior (an unset window is 0 there).
WITH_BEHAVIOR = [
    ("empty recommendations for scaling down", (), 100, 5, 5, [5], 0, 0),
    ("simple scale down stabilization", ((120, 4), (60, 5)), 100, 3, 5, [4, 5, 3], 0, 180),
    ("simple scale up stabilization", ((120, 4), (60, 5)), 1, 7, 4, [4, 5, 7], 300, 0),
    ("no scale down stabilization", ((120, 1), (60, 2)), 100, 3, 3, [1, 2, 3], 300, 0),
    ("no scale up stabilization", ((120, 4), (60, 5)), 1, 3, 3, [4, 5, 3], 0, 300),
    ("no scale down stabilization, reuse recommendation element",
     ((600, 10), (540, 9)), 100, 3, 3, [10, 3], 0, 0),
    ("no scale up stabilization, reuse recommendation element",
     ((600, 10), (540, 9)), 1, 100, 100, [10, 100], 0, 0),
    ("scale down stabilization, reuse one of obsolete recommendation element",
     ((600, 10), (60, 4), (120, 5), (540, 9)), 100, 3, 5, [10, 4, 5, 3], 0, 180),
    ("scale up stabilization, reuse one of obsolete recommendation element",
     ((6000, 10), (60, 6), (120, 5), (180, 9)), 1, 100, 5, [100, 6, 5, 9], 300, 0),
    ("scale up and down stabilization, do not scale up when prenormalized rec goes down",
     ((6000, 2), (180, 3)), 2, 1, 2, None, 300, 300),
    ("scale up and down stabilization, do not scale down when prenormalized rec goes up",
     ((6000, 2), (180, 1)), 2, 3, 2, None, 300, 300),
]


def windows(up: int, down: int) -> tuple[ScalingRules, ScalingRules]:
    return (replace(DEFAULT_SCALE_UP_RULES, stabilization_window_seconds=up),
            replace(DEFAULT_SCALE_DOWN_RULES, stabilization_window_seconds=down))


@pytest.mark.parametrize(
    ("history", "current", "pre", "expected", "stored", "up_window", "down_window"),
    [c[1:] for c in WITH_BEHAVIOR],
    ids=[f"TestNormalizeDesiredReplicasWithBehavior/{c[0]}" for c in WITH_BEHAVIOR])
def test_stabilize_recommendation_with_behaviors(
    history: tuple[tuple[int, int], ...], current: int, pre: int, expected: int,
    stored: list[int] | None, up_window: int, down_window: int,
) -> None:
    up, down = windows(up_window, down_window)
    args = NormalizationArg(scale_up=up, scale_down=down, min_replicas=1, max_replicas=1000,
                            current_replicas=current, desired_replicas=pre)
    got, reason, message, log = stabilize_recommendation_with_behaviors(
        args, recs(*history), now=NOW)
    assert got == expected
    if stored is not None:
        assert [r.replicas for r in log] == stored
    assert reason == ("ScaleUpStabilized" if pre >= current else "ScaleDownStabilized")
    assert message.startswith("recent recommendations were")


def test_unset_scale_down_window_is_the_controller_flag() -> None:
    # maybeInitScaleDownStabilizationWindow: only an unset window takes the flag (whole s).
    assert maybe_init_scale_down_stabilization_window(
        DEFAULT_SCALE_DOWN_RULES, downscale_stabilization=300.0
    ).stabilization_window_seconds == 300
    set_to_60 = replace(DEFAULT_SCALE_DOWN_RULES, stabilization_window_seconds=60)
    assert maybe_init_scale_down_stabilization_window(
        set_to_60, downscale_stabilization=300.0) is set_to_60


# --------------------------------------------------------------------------------------
# convertDesiredReplicasWithRules (no behavior)
# --------------------------------------------------------------------------------------

# name, current, desired, min, max, converted, condition: TestConvertDesiredReplicasWithRules.
# Upstream's test file sets scaleUpLimitFactor = 8 in init(), and the last entry expects
# calculateScaleUpLimit(3) = max(8 x 3, 4) = 24; the factor is a setting here, so the
# table runs with 8 as upstream's does.
CONVERT_WITH_RULES = [
    ("prenormalized desired replicas within range", 5, 7, 3, 8, 7, "DesiredWithinRange"),
    ("prenormalized desired replicas < minReplicas", 3, 1, 2, 8, 2, "TooFewReplicas"),
    ("prenormalized desired zeroed replicas within range", 1, 0, 0, 10, 0,
     "DesiredWithinRange"),
    ("maxReplicas is the limit because maxReplicas < scaleUpLimit", 20, 1000, 1, 10, 10,
     "TooManyReplicas"),
    ("scaleUpLimit is the limit because scaleUpLimit < maxReplicas", 3, 1000, 1, 2000, 24,
     "ScaleUpLimit"),
]


@pytest.mark.parametrize(("current", "desired", "min_r", "max_r", "expected", "condition"),
                         [c[1:] for c in CONVERT_WITH_RULES],
                         ids=[f"TestConvertDesiredReplicasWithRules/{c[0]}"
                              for c in CONVERT_WITH_RULES])
def test_convert_desired_replicas_with_rules(current: int, desired: int, min_r: int,
                                             max_r: int, expected: int,
                                             condition: str) -> None:
    got, reason, message = convert_desired_replicas_with_rules(
        current_replicas=current, desired_replicas=desired, min_replicas=min_r,
        max_replicas=max_r, scale_up_limit_factor=8.0, scale_up_limit_minimum=4.0)
    assert (got, reason) == (expected, condition)
    assert message


def test_scale_up_limit_uses_the_controller_settings() -> None:
    # scalelab case: the production factor is 2 (horizontal.go scaleUpLimitFactor), so the
    # same entry caps at max(2 x 3, 4) = 6; the minimum 4 wins for one replica.
    ctl = HPAControllerSettings()
    assert (ctl.scale_up_limit_factor, ctl.scale_up_limit_minimum) == (2.0, 4.0)
    assert calculate_scale_up_limit(3, factor=ctl.scale_up_limit_factor,
                                    minimum=ctl.scale_up_limit_minimum) == 6
    assert calculate_scale_up_limit(1, factor=2.0, minimum=4.0) == 4
    spec = HPASpec.from_manifest({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "a"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "a"}, "maxReplicas": 2000,
                 "metrics": [{"type": "External", "external": {"metric": {"name": "q"},
                              "target": {"type": "AverageValue", "averageValue": "1"}}}]}})
    inputs = HPAInputs(now=NOW, spec_replicas=3, status_replicas=3,
                       external_metrics_milli={"q": [1_000_000]})
    for factor, expected in ((2.0, 6), (8.0, 24)):
        d, _ = reconcile(spec, inputs, HPAState(), HPAControllerSettings(
            scale_up_limit_factor=factor))
        assert (d.desired_replicas, d.condition("ScalingLimited").reason) == (
            expected, "ScaleUpLimit")


# --------------------------------------------------------------------------------------
# convertDesiredReplicasWithBehaviorRate and the limits it uses
# --------------------------------------------------------------------------------------

UP_1_5_9 = uniform([1, 5, 9], 120)
UP_8_12_9_11 = uniform([8, 12, 9, 11], 120)
G = generate_scaling_rules

# name, min, max, scaleUp rules, scaleDown rules (None: the API defaults,
# GenerateHPAScaleUpRules / GenerateHPAScaleDownRules(nil)), current, prenormalized,
# expected, condition, scale-up events, scale-down events: every TestScalingWithRules entry.
SCALING_WITH_RULES = [
    ("prenormalized desired replicas within range", 3, 8, None, None, 5, 7, 7,
     "DesiredWithinRange", (), ()),
    ("prenormalized desired replicas < minReplicas", 2, 8, None, None, 3, 1, 2,
     "TooFewReplicas", (), ()),
    ("prenormalized desired replicas within range when minReplicas is 0", 0, 10, None, None,
     1, 0, 0, "DesiredWithinRange", (), ()),
    ("maxReplicas is the limit because maxReplicas < scaleUpLimit", 1, 10, None, None,
     20, 1000, 10, "TooManyReplicas", (), ()),
    ("desired replica count is more than the maximum replica count", 100, 150, None, None,
     100, 1000, 150, "TooManyReplicas", (), ()),
    ("scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies",
     1, 2000, G(0, 0, 1, 60, 0), None, 3, 1000, 4, "ScaleUpLimit", (), ()),
    ("scaleUp with default behavior", 1, 1000, None, None, 10, 50, 20, "ScaleUpLimit",
     (), ()),
    ("scaleUp with pods policy larger than percent policy", 1, 1000,
     G(100, 60, 100, 60, 0), None, 10, 500, 110, "ScaleUpLimit", (), ()),
    ("scaleUp with percent policy larger than pods policy", 1, 1000,
     G(2, 60, 100, 60, 0), None, 10, 500, 20, "ScaleUpLimit", (), ()),
    ("scaleUp with spec MaxReplicas limitation with large pod policy", 1, 1000,
     G(100, 60, 0, 0, 0), None, 10, 50, 50, "DesiredWithinRange", (), ()),
    ("scaleUp with spec MaxReplicas limitation with large percent policy", 1, 1000,
     G(10000, 60, 0, 0, 0), None, 10, 50, 50, "DesiredWithinRange", (), ()),
    ("scaleUp with pod policy limitation", 1, 1000, G(30, 60, 0, 0, 0), None, 10, 50, 40,
     "ScaleUpLimit", (), ()),
    ("scaleUp with percent policy limitation", 1, 1000, G(0, 0, 200, 60, 0), None, 10, 50,
     30, "ScaleUpLimit", (), ()),
    ("scaleDown with percent policy larger than pod policy", 1, 1000, None,
     G(20, 60, 1, 60, 300), 100, 2, 80, "ScaleDownLimit", (), ()),
    ("scaleDown with pod policy larger than percent policy", 1, 1000, None,
     G(2, 60, 1, 60, 300), 100, 2, 98, "ScaleDownLimit", (), ()),
    ("scaleDown with spec MinReplicas limitation with large pod policy", 1, 1000, None,
     G(100, 60, 0, 0, 300), 10, 0, 1, "TooFewReplicas", (), ()),
    ("scaleDown with spec MinReplicas limitation with large percent policy", 5, 1000, None,
     G(0, 0, 100, 60, 300), 10, 2, 5, "TooFewReplicas", (), ()),
    ("scaleDown with pod policy limitation", 1, 1000, None, G(5, 60, 0, 0, 300), 10, 2, 5,
     "ScaleDownLimit", (), ()),
    ("scaleDown with percent policy limitation", 1, 1000, None, G(0, 0, 50, 60, 300), 10, 5,
     5, "DesiredWithinRange", (), ()),
    ("scaleUp with spec MaxReplicas limitation with large pod policy and events", 1, 200,
     G(300, 60, 0, 0, 0), None, 100, 500, 200, "TooManyReplicas", UP_1_5_9, ()),
    ("scaleUp with spec MaxReplicas limitation with large percent policy and events", 1, 200,
     G(0, 0, 10000, 60, 0), None, 100, 500, 200, "TooManyReplicas", UP_1_5_9, ()),
    ("scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent "
     "scale up events", 1, 1000, G(5, 120, 0, 0, 0), None, 100, 500, 100, "ScaleUpLimit",
     UP_1_5_9, ()),
    ("scaleUp with pod policy and previous scale up events", 1, 1000, G(150, 120, 0, 0, 0),
     None, 100, 500, 235, "ScaleUpLimit", UP_1_5_9, ()),
    ("scaleUp with percent policy and previous scale up events", 1, 1000,
     G(0, 0, 200, 120, 0), None, 100, 500, 255, "ScaleUpLimit", UP_1_5_9, ()),
    ("scaleUp with percent policy and previous scale up and down events", 1, 1000,
     G(0, 0, 300, 300, 0), None, 6, 24, 16, "ScaleUpLimit", uniform([4], 120),
     uniform([2], 120)),
    ("scaleDown with default policy and previous events", 1, 1000, None, None, 10, 5, 5,
     "DesiredWithinRange", (), uniform([1, 5, 9], 120)),
    ("scaleDown with spec MinReplicas=nil limitation with large pod policy and previous "
     "events", 1, 1000, None, G(115, 120, 0, 0, 300), 100, 0, 1, "TooFewReplicas", (),
     uniform([1, 5, 9], 120)),
    ("scaleDown with spec MinReplicas limitation with large pod policy and previous events",
     5, 1000, None, G(130, 120, 0, 0, 300), 100, 0, 5, "TooFewReplicas", (),
     uniform([1, 5, 9], 120)),
    ("scaleDown with spec MinReplicas limitation with large percent policy and previous "
     "events", 5, 1000, None, G(0, 0, 100, 120, 300), 100, 2, 5, "TooFewReplicas", (),
     uniform([1, 5, 9], 120)),
    ("scaleDown with pod policy limitation and previous events", 1, 1000, None,
     G(5, 120, 0, 0, 300), 100, 2, 100, "ScaleDownLimit", (), uniform([1, 5, 9], 120)),
    ("scaleDown with percent policy limitation and previous events", 1, 1000, None,
     G(0, 0, 50, 120, 300), 100, 0, 56, "ScaleDownLimit", (), uniform([2, 4, 6], 120)),
    ("scaleDown with percent policy and previous scale up and down events", 1, 1000, None,
     G(0, 0, 50, 180, 0), 10, 1, 6, "ScaleDownLimit", uniform([2], 120), uniform([4], 120)),
    ("scaleDown with previous events preventing further scale down", 1, 1000, None,
     G(0, 0, 10, 120, 300), 100, 0, 100, "ScaleDownLimit", (), uniform([10, 10, 10], 120)),
    ("scaleDown with with previous events still allowing more scale down", 1, 1000, None,
     G(0, 0, 1000, 120, 300), 10, 5, 5, "DesiredWithinRange", (),
     uniform([10, 10, 10], 120)),
    ("check 'outdated' flag for events for one behavior for up", 1, 1000,
     G(1000, 60, 0, 0, 0), None, 100, 200, 200, "DesiredWithinRange", UP_8_12_9_11, ()),
    ("check that events were not marked 'outdated' for two different policies in the "
     "behavior for up", 1, 1000, G(1000, 120, 100, 60, 0), None, 100, 200, 200,
     "DesiredWithinRange", UP_8_12_9_11, ()),
    ("check that events were marked 'outdated' for two different policies in the behavior "
     "for up", 1, 1000, G(1000, 30, 100, 60, 0), None, 100, 200, 200, "DesiredWithinRange",
     UP_8_12_9_11, ()),
    ("check 'outdated' flag for events for one behavior for down", 1, 1000, None,
     G(1000, 60, 0, 0, 300), 100, 5, 5, "DesiredWithinRange", (), UP_8_12_9_11),
    ("check that events were not marked 'outdated' for two different policies in the "
     "behavior for down", 1, 1000, None, G(1000, 120, 100, 60, 300), 100, 5, 5,
     "DesiredWithinRange", (), UP_8_12_9_11),
    ("check that events were marked 'outdated' for two different policies in the behavior "
     "for down", 1, 1000, None, G(1000, 30, 100, 60, 300), 100, 5, 5, "DesiredWithinRange",
     (), UP_8_12_9_11),
]


@pytest.mark.parametrize(
    ("min_r", "max_r", "up", "down", "current", "pre", "expected", "condition", "up_events",
     "down_events"),
    [c[1:] for c in SCALING_WITH_RULES],
    ids=[f"TestScalingWithRules/{c[0]}" for c in SCALING_WITH_RULES])
def test_convert_desired_replicas_with_behavior_rate(
    min_r: int, max_r: int, up: ScalingRules | None, down: ScalingRules | None,
    current: int, pre: int, expected: int, condition: str,
    up_events: tuple[ScaleEvent, ...], down_events: tuple[ScaleEvent, ...],
) -> None:
    args = NormalizationArg(scale_up=up or DEFAULT_SCALE_UP_RULES,
                            scale_down=down or DEFAULT_SCALE_DOWN_RULES, min_replicas=min_r,
                            max_replicas=max_r, current_replicas=current,
                            desired_replicas=pre)
    got, reason, message = convert_desired_replicas_with_behavior_rate(
        args, scale_up_events=up_events, scale_down_events=down_events, now=NOW)
    assert (got, reason) == (expected, condition)
    assert message


def test_scaling_with_rules_covers_upstream_table() -> None:
    # The upstream table has 40 entries; every one is above, named as upstream names it.
    assert len(SCALING_WITH_RULES) == len({c[0] for c in SCALING_WITH_RULES}) == 40


def _pods_2_or_50_percent() -> ScalingRules:
    return ScalingRules(stabilization_window_seconds=300, select_policy="Min", policies=(
        ScalingPolicy(type="Pods", value=2, period_seconds=60),
        ScalingPolicy(type="Percent", value=50, period_seconds=60)))


def test_calculate_scale_up_limit_with_scaling_rules() -> None:
    # TestCalculateScaleUpLimitWithScalingRules: selectPolicy Min of (Pods 2, 50 %) per
    # 60 s from 1 replica, no events -> 2.
    assert calculate_scale_up_limit_with_scaling_rules(
        1, (), (), _pods_2_or_50_percent(), now=NOW) == 2


def test_calculate_scale_down_limit_with_behaviors() -> None:
    # TestCalculateScaleDownLimitWithBehaviors: the smaller change of (Pods 2, 50 %) per
    # 60 s from 5 replicas, no events -> 3.
    assert calculate_scale_down_limit_with_behaviors(
        5, (), (), _pods_2_or_50_percent(), now=NOW) == 3


# --------------------------------------------------------------------------------------
# storeScaleEvent / getReplicasChangePerPeriod
# --------------------------------------------------------------------------------------

# name, previous events (age s, change), stored events (change, outdated), rules, change in
# the last 60 s before storing: the TestStoreScaleEvents entries with a behavior (without
# one, reconcile stores nothing: test_no_behavior_stores_no_events). Replica change 5.
STORE_SCALE_EVENTS = [
    ("empty entries with two-policy-behavior", (), ((5, False),), G(10, 60, 100, 60, 0), 0),
    ("one outdated entry to be replaced with behavior", ((61, 7),), ((5, False),),
     G(10, 60, 100, 60, 0), 0),
    ("one actual entry to be not touched with behavior", ((58, 7),), ((7, False), (5, False)),
     G(10, 60, 100, 60, 0), 7),
    ("two entries, one of them to be replaced", ((61, 7), (59, 6)), ((5, False), (6, False)),
     G(10, 60, 0, 0, 0), 6),
    ("replace one entry, use policies with different periods",
     ((29, 8), (59, 6), (61, 7), (61, 9)), ((8, False), (6, False), (7, True), (5, False)),
     G(10, 60, 100, 30, 0), 14),
    ("two entries, both actual", ((58, 7), (59, 6)), ((7, False), (6, False), (5, False)),
     G(10, 120, 100, 30, 0), 13),
]


@pytest.mark.parametrize(("previous", "stored", "rules", "change"),
                         [c[1:] for c in STORE_SCALE_EVENTS],
                         ids=[f"TestStoreScaleEvents/{c[0]}" for c in STORE_SCALE_EVENTS])
def test_store_scale_event(previous: tuple[tuple[int, int], ...],
                           stored: tuple[tuple[int, bool], ...], rules: ScalingRules,
                           change: int) -> None:
    events = tuple(ScaleEvent(NOW - age, c) for age, c in previous)
    assert get_replicas_change_per_period(60, events, now=NOW) == change
    up, down = store_scale_event(scale_up=rules, scale_down=rules, prev_replicas=10,
                                 new_replicas=15, up_events=events, down_events=(), now=NOW)
    assert [(e.change, e.outdated) for e in up] == list(stored) and down == ()
    up, down = store_scale_event(scale_up=rules, scale_down=rules, prev_replicas=10,
                                 new_replicas=5, up_events=(), down_events=events, now=NOW)
    assert [(e.change, e.outdated) for e in down] == list(stored) and up == ()


# --------------------------------------------------------------------------------------
# Nil versus empty recommendation history (recordInitialRecommendation)
# --------------------------------------------------------------------------------------

def test_record_initial_recommendation_only_for_a_nil_history() -> None:
    assert record_initial_recommendation(None, current_replicas=5, now=NOW) == (
        Recommendation(NOW, 5),)
    assert record_initial_recommendation((), current_replicas=5, now=NOW) == ()
    old = recs((30, 7))
    assert record_initial_recommendation(old, current_replicas=5, now=NOW) is old


def _cpu_spec() -> HPASpec:
    return HPASpec.from_manifest({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "a"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "a"},
                 "minReplicas": 2, "maxReplicas": 6,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                     "type": "Utilization", "averageUtilization": 50}}}]}})


def _five_pods_at(levels: Sequence[int]) -> HPAInputs:
    pods = [PodFacts(name=f"p{i}", phase="Running", ready=True, deleting=False,
                     start_time=NOW - 3600, ready_transition_time=NOW - 3590,
                     cpu_request_milli=1000) for i in range(len(levels))]
    metrics = {p.name: PodMetric(pod=p.name, cpu_milli=level, memory_bytes=0,
                                 timestamp=NOW, window=60.0)
               for p, level in zip(pods, levels, strict=True)}
    return HPAInputs(now=NOW, spec_replicas=5, pods=pods, pod_metrics=metrics)


def test_empty_history_scales_down_at_once_nil_history_waits() -> None:
    # TestScaleDown (recommendations: []timestampedRecommendation{}, an empty slice): 5
    # replicas, min 2 / max 6, 100/300/500/250/250m of 1-core requests against 50 % ->
    # scales to 3 in the first sync. TestScaleDownStabilizeInitialSize (recommendations
    # left nil): the same HPA's first sync records 5 and stays there, ScaleDownStabilized.
    inputs = _five_pods_at([100, 300, 500, 250, 250])
    d, state = reconcile(_cpu_spec(), inputs, HPAState(recommendations=()),
                         HPAControllerSettings())
    assert (d.desired_replicas, d.scaled) == (3, True)
    assert state.recommendations == (Recommendation(NOW, 3),)
    d, state = reconcile(_cpu_spec(), inputs, HPAState(), HPAControllerSettings())
    assert (d.desired_replicas, d.scaled) == (5, False)
    assert d.condition("AbleToScale").reason == "ScaleDownStabilized"
    assert state.recommendations == (Recommendation(NOW, 5), Recommendation(NOW, 3))


def test_no_behavior_stores_no_events() -> None:
    # TestStoreScaleEvents "... without behavior": storeScaleEvent returns at once, so an
    # HPA without behavior keeps no scale events.
    d, state = reconcile(_cpu_spec(), _five_pods_at([100, 300, 500, 250, 250]),
                         HPAState(recommendations=()), HPAControllerSettings())
    assert d.scaled
    assert (state.scale_up_events, state.scale_down_events) == ((), ())
