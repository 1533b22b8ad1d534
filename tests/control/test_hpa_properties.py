"""Property tests for the HPA core (hypothesis), checked against facts, not the code under test.

The rate and stabilization rules come from kubernetes/kubernetes
``pkg/controller/podautoscaler/horizontal.go`` (read at commit
003e86297d18a8538c9da3619871393f9703bf70, the version tests/control/test_hpa_controller.py
cites): ``calculateScaleUpLimitWithScalingRules`` / ``calculateScaleDownLimitWithBehaviors``
take the replica count at the start of each policy period as ``current - added + deleted``,
summing the scale events ``getReplicasChangePerPeriod`` finds strictly after ``now -
periodSeconds`` (``storeScaleEvent`` records one per rescale); Pods adds/removes ``value``,
Percent multiplies by ``1 +/- value/100`` in float64 (rounded up for scale-up, truncated
for scale-down); selectPolicy Max takes the largest change, Min the smallest, Disabled
none. Stabilization (``stabilizeRecommendationWithBehaviors``) keeps the size between the
min of the recommendations newer than ``now - scaleUp.stabilizationWindowSeconds`` and the
max of those newer than ``now - scaleDown.stabilizationWindowSeconds``; the legacy path
(``stabilizeRecommendation``, ``convertDesiredReplicasWithRules``) takes the max of the
recommendations not older than ``--horizontal-pod-autoscaler-downscale-stabilization`` and
caps a scale-up at max(2 x current, 4).

The checks below rebuild those numbers from what a test can see: the replica trajectory it
drove and the recommendations it fed, never the controller's own events or limits.

Metric inputs: an External AverageValue target of 1 with ``status_replicas`` = current and
a tolerance of 0 proposes exactly the fed value ``r`` (replica_calculator.go
``GetExternalPerPodMetricReplicas``: ceil(r / 1), or ``status.replicas`` when the ratio is
exactly 1, which is then also ``r``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalelab.control.hpa import (
    HPAControllerSettings,
    HPAInputs,
    HPASpec,
    HPAState,
    Recommendation,
    reconcile,
)
from scalelab.control.view import PodFacts

SETTINGS = HPAControllerSettings()
# Tolerance 0: the fed value is the proposal. A short downscale flag (the scaleDown window
# when a behavior leaves it unset) keeps the trajectories moving.
EXACT = HPAControllerSettings(tolerance=0.0, downscale_stabilization=40.0)
NOW = 10_000.0

Rules = dict[str, Any]   # a behavior.scaleUp / scaleDown manifest fragment

AVERAGE_OF_ONE = [{"type": "External", "external": {
    "metric": {"name": "q"}, "target": {"type": "AverageValue", "averageValue": "1"}}}]
VALUE_OF_TEN = [{"type": "External", "external": {
    "metric": {"name": "q"}, "target": {"type": "Value", "value": "10"}}}]


def spec_for(min_r: int, max_r: int, behavior: dict[str, Rules] | None = None,
             metrics: list[dict[str, Any]] | None = None) -> HPASpec:
    spec: dict[str, Any] = {"scaleTargetRef": {"kind": "Deployment", "name": "a"},
                            "minReplicas": min_r, "maxReplicas": max_r,
                            "metrics": metrics or AVERAGE_OF_ONE}
    if behavior is not None:
        spec["behavior"] = behavior
    return HPASpec.from_manifest({"apiVersion": "autoscaling/v2",
                                  "kind": "HorizontalPodAutoscaler",
                                  "metadata": {"name": "a"}, "spec": spec})


def ready_pods(n: int) -> list[PodFacts]:
    return [PodFacts(name=f"p{i}", phase="Running", ready=True, deleting=False,
                     start_time=0.0, ready_transition_time=1.0, cpu_request_milli=100)
            for i in range(n)]


def sync(spec: HPASpec, now: float, current: int, rec: int, state: HPAState,
         ctl: HPAControllerSettings = EXACT) -> tuple[int, HPAState]:
    """One sync that proposes exactly ``rec``; returns the size written and the next state."""
    d, state = reconcile(spec, HPAInputs(now=now, spec_replicas=current,
                                         status_replicas=current,
                                         external_metrics_milli={"q": [rec * 1000]}), state, ctl)
    assert d.metric_proposal == rec   # the input convention holds
    return d.desired_replicas, state


# --------------------------------------------------------------------------------------
# An independent reading of the rate policies, from a replica trajectory
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    t: float
    before: int
    after: int
    rec: int


def replicas_at(start: int, steps: Sequence[Step], t: float) -> int:
    """The size in force at ``t``: after every change made at or before ``t``.

    A change made exactly ``periodSeconds`` ago is therefore already in the reference (the
    controller counts only events strictly after ``now - periodSeconds``)."""
    n = start
    for s in steps:
        if s.t <= t:
            n = s.after
    return n


def policy_bound(rules: Rules, *, up: bool, start: int, steps: Sequence[Step],
                 t: float) -> int | None:
    """The furthest size the policies allow at ``t`` (most for up, fewest for down), each
    policy measured from the size at the start of its own period; None when Disabled.

    Percent is float64 arithmetic as in horizontal.go, so 25 replicas +12 % allow 29
    (25 * 1.12 = 28.000000000000004, rounded up), not 28."""
    select = rules.get("selectPolicy", "Max")
    if select == "Disabled":
        return None
    allowed: list[int] = []
    for p in rules["policies"]:
        ref = replicas_at(start, steps, t - p["periodSeconds"])
        if p["type"] == "Pods":
            allowed.append(ref + p["value"] if up else ref - p["value"])
        elif up:
            allowed.append(math.ceil(ref * (1 + p["value"] / 100)))
        else:
            allowed.append(int(ref * (1 - p["value"] / 100)))   # truncates toward zero
    # Max = the largest change: the highest ceiling up, the lowest floor down.
    largest_change = select == "Max"
    return max(allowed) if largest_change == up else min(allowed)


def drive(spec: HPASpec, start: int, plan: Sequence[tuple[int, int]]) -> list[Step]:
    """Feed ``(gap seconds, recommendation)`` pairs one sync at a time, applying every
    decision, and record the trajectory."""
    state, current, now, steps = HPAState(), start, NOW, []
    for gap, rec in plan:
        now += gap
        desired, state = sync(spec, now, current, rec, state)
        steps.append(Step(now, current, desired, rec))
        current = desired
    return steps


# --------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------


def policies(periods: st.SearchStrategy[int]) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(st.fixed_dictionaries({"type": st.sampled_from(["Pods", "Percent"]),
                                           "value": st.integers(1, 200),
                                           "periodSeconds": periods}),
                    min_size=1, max_size=3)


@st.composite
def rules_st(draw: st.DrawFn, policy_list: st.SearchStrategy[list[dict[str, Any]]],
             windows: st.SearchStrategy[int | None]) -> Rules:
    out: Rules = {"policies": draw(policy_list)}
    window = draw(windows)
    if window is not None:       # omitted: 0 for scaleUp, the controller flag for scaleDown
        out["stabilizationWindowSeconds"] = window
    select = draw(st.sampled_from([None, "Max", "Max", "Min", "Min", "Disabled"]))
    if select is not None:
        out["selectPolicy"] = select
    return out


WINDOWS = st.sampled_from([None, 0, 0, 0, 0, 10, 15, 30, 60])
ANY_RULES = rules_st(policies(st.integers(1, 120)), WINDOWS)
BEHAVIOR = st.fixed_dictionaries({"scaleUp": ANY_RULES, "scaleDown": ANY_RULES})
# Gaps around and across the periods, so events fall inside, outside and exactly on a
# period's edge; recommendations wander up and down.
PLAN = st.lists(st.tuples(st.sampled_from([1, 5, 10, 15, 15, 15, 20, 30, 45, 60]),
                          st.integers(0, 60)), min_size=1, max_size=30)


@st.composite
def equal_longest_behavior(draw: st.DrawFn) -> dict[str, Rules]:
    """Behaviors whose longest scale-up and scale-down periods are equal.

    Then every event inside any policy period is still remembered, by upstream and by
    scalelab alike, and the controller's reference equals the trajectory's (see
    test_dropped_opposite_events_upstream_counterexample for what differs otherwise)."""
    longest = draw(st.integers(1, 120))
    behavior = {}
    for key in ("scaleUp", "scaleDown"):
        rules = draw(rules_st(policies(st.integers(1, longest)), WINDOWS))
        rules["policies"][0]["periodSeconds"] = longest
        behavior[key] = rules
    return behavior


def bounds(min_r: int, extra: int, start: int) -> tuple[int, int, int]:
    """(minReplicas, maxReplicas, a starting size between them)."""
    max_r = min_r + extra
    return min_r, max_r, max(min_r, min(start, max_r))


# --------------------------------------------------------------------------------------
# Rate policies
# --------------------------------------------------------------------------------------


@settings(max_examples=150)
@given(min_r=st.integers(1, 5), extra=st.integers(0, 60), start=st.integers(1, 60),
       behavior=BEHAVIOR, plan=PLAN)
def test_rate_policies_bound_the_trajectory(min_r: int, extra: int, start: int,
                                            behavior: dict[str, Rules],
                                            plan: list[tuple[int, int]]) -> None:
    """Every scale-up/-down stays within what the policies allow over each policy period
    ending at it, measured from the size at the start of that period."""
    min_r, max_r, start = bounds(min_r, extra, start)
    steps = drive(spec_for(min_r, max_r, behavior), start, plan)
    for i, s in enumerate(steps):
        assert min_r <= s.after <= max_r
        earlier = steps[:i]
        if s.after > s.before:
            ceiling = policy_bound(behavior["scaleUp"], up=True, start=start, steps=earlier,
                                   t=s.t)
            assert ceiling is not None, f"scaled up at {s.t} with scaleUp Disabled: {s}"
            assert s.after <= ceiling, f"{s}: policies allow at most {ceiling}"
        elif s.after < s.before:
            floor = policy_bound(behavior["scaleDown"], up=False, start=start,
                                 steps=earlier, t=s.t)
            assert floor is not None, f"scaled down at {s.t} with scaleDown Disabled: {s}"
            assert s.after >= floor, f"{s}: policies allow no fewer than {floor}"


def expected_with_behavior(behavior: dict[str, Rules], min_r: int, max_r: int, start: int,
                           steps: Sequence[Step], recs: Sequence[tuple[float, int]],
                           t: float, current: int, rec: int,
                           downscale_flag: float) -> int:
    """The size the controller should write, from the history the test itself kept:
    stabilize between the scale-up window's min and the scale-down window's max
    (recommendations strictly newer than the cutoff), then cap by the policies."""
    up_rules, down_rules = behavior["scaleUp"], behavior["scaleDown"]
    up_w = up_rules.get("stabilizationWindowSeconds", 0)
    down_w = down_rules.get("stabilizationWindowSeconds", downscale_flag)
    lowest = min([rec] + [r for rt, r in recs if rt > t - up_w])
    highest = max([rec] + [r for rt, r in recs if rt > t - down_w])
    stabilized = min(max(current, lowest), highest)
    if stabilized > current:
        ceiling = policy_bound(up_rules, up=True, start=start, steps=steps, t=t)
        return min(stabilized, max_r, max(current, current if ceiling is None else ceiling))
    if stabilized < current:
        floor = policy_bound(down_rules, up=False, start=start, steps=steps, t=t)
        return max(stabilized, min_r, min(current, current if floor is None else floor))
    return current


@settings(max_examples=150)
@given(min_r=st.integers(1, 5), extra=st.integers(0, 60), start=st.integers(1, 60),
       behavior=equal_longest_behavior(), plan=PLAN)
def test_behavior_trajectory_matches_independent_model(min_r: int, extra: int, start: int,
                                                       behavior: dict[str, Rules],
                                                       plan: list[tuple[int, int]]) -> None:
    """Not only within the bounds: each sync writes exactly what stabilization plus the
    policies give (so a controller that is too timid fails too)."""
    min_r, max_r, start = bounds(min_r, extra, start)
    steps = drive(spec_for(min_r, max_r, behavior), start, plan)
    # recordInitialRecommendation: the first sync remembers the size it found.
    recs: list[tuple[float, int]] = [(steps[0].t, start)]
    for i, s in enumerate(steps):
        want = expected_with_behavior(behavior, min_r, max_r, start, steps[:i], recs, s.t,
                                      s.before, s.rec, EXACT.downscale_stabilization)
        assert s.after == want, f"sync {i} {s}: expected {want}; trajectory {steps[:i + 1]}"
        recs.append((s.t, s.rec))


def test_percent_is_float64_like_upstream() -> None:
    # Pins the rounding the model assumes: float64 25 * (1 + 12/100) is a hair above 28,
    # so upstream's math.Ceil allows 29; 10 * (1 - 90/100) is a hair below 1, int32()
    # truncates it to 0. A 10 s period, one sync: the reference is the current size.
    up = {"stabilizationWindowSeconds": 0,
          "policies": [{"type": "Percent", "value": 12, "periodSeconds": 10}]}
    down = {"stabilizationWindowSeconds": 0,
            "policies": [{"type": "Percent", "value": 90, "periodSeconds": 10}]}
    spec = spec_for(0, 100, {"scaleUp": up, "scaleDown": down})
    assert sync(spec, NOW, 25, 60, HPAState())[0] == 29
    assert sync(spec, NOW, 10, 0, HPAState(recommendations=(Recommendation(0.0, 10),)))[0] == 0


@pytest.mark.parametrize(("down_pods", "floor"), [(5, 1), (1, 5)])
def test_outdated_scale_events_still_count_for_the_other_direction(down_pods: int,
                                                                   floor: int) -> None:
    # Upstream trace (horizontal.go storeScaleEvent / markScaleEventsOutdated /
    # calculateScaleDownLimitWithBehaviors), 15 s syncs, scaleUp Pods 100 per 20 s,
    # scaleDown Pods N per 75 s, no stabilization:
    #   t=0  2 -> 4   up events [0:+2]
    #   t=15 4 -> 8   up events [0:+2, 15:+4]        (nothing older than 15 - 20)
    #   t=30 stays 8
    #   t=45 8 -> 16  0 and 15 are outdated (< 25); the loop keeps the LAST outdated index,
    #                 so 15:+4 is replaced: up events [0:+2 (outdated, kept), 45:+8]
    #   t=60 metric says 1: the 75 s period counts the up events after -15, 0 and 45:
    #        start = 16 - 10 = 6, floor 6 - N: N=5 -> 1, N=1 -> 5. (Dropping 0:+2 would
    #        floor at 16 - 8 - N; reusing the first slot would keep 15:+4 instead: 16 - 12 - N.)
    behavior = {"scaleUp": {"stabilizationWindowSeconds": 0, "policies": [
                    {"type": "Pods", "value": 100, "periodSeconds": 20}]},
                "scaleDown": {"stabilizationWindowSeconds": 0, "policies": [
                    {"type": "Pods", "value": down_pods, "periodSeconds": 75}]}}
    steps = drive(spec_for(1, 100, behavior), 2, [(0, 4), (15, 8), (15, 8), (15, 16),
                                                  (15, 1)])
    assert [s.after for s in steps] == [4, 8, 8, 16, floor]


# --------------------------------------------------------------------------------------
# Stabilization
# --------------------------------------------------------------------------------------

# Recommendation ages straddle the windows (integers, so an age equal to the window, the
# edge, is drawn too); values go above and below the current size.
HISTORY = st.lists(st.tuples(st.integers(0, 700), st.integers(0, 60)), max_size=8)
# Rate policies that never bind here, so the stabilized number is what gets written.
WIDE_OPEN = [{"type": "Pods", "value": 1000, "periodSeconds": 1}]


@settings(max_examples=200)
@given(current=st.integers(1, 40), pre=st.integers(0, 60), history=HISTORY,
       up_w=st.integers(0, 600), down_w=st.one_of(st.none(), st.integers(0, 600)),
       flag=st.integers(0, 600))
def test_stabilization_with_behavior(current: int, pre: int,
                                     history: list[tuple[int, int]], up_w: int,
                                     down_w: int | None, flag: int) -> None:
    """A scale-down never goes below the highest recommendation inside
    scaleDown.stabilizationWindowSeconds (the controller flag when unset), a scale-up never
    above the lowest inside scaleUp.stabilizationWindowSeconds; with no binding rate
    policy the result is exactly the current size brought between the two."""
    down: Rules = {"policies": WIDE_OPEN}
    if down_w is not None:
        down["stabilizationWindowSeconds"] = down_w
    behavior = {"scaleUp": {"stabilizationWindowSeconds": up_w, "policies": WIDE_OPEN},
                "scaleDown": down}
    ctl = HPAControllerSettings(tolerance=0.0, downscale_stabilization=float(flag))
    recs = [(NOW - age, r) for age, r in history] or [(NOW, current)]  # initial rec
    state = HPAState(recommendations=tuple(Recommendation(t, r) for t, r in recs))
    desired, _ = sync(spec_for(1, 100, behavior), NOW, current, pre, state, ctl)

    window = flag if down_w is None else down_w
    in_down = [r for t, r in recs if t > NOW - window] + [pre]
    in_up = [r for t, r in recs if t > NOW - up_w] + [pre]
    if desired < current:
        assert desired >= max(in_down), (desired, in_down)
    if desired > current:
        assert desired <= min(in_up), (desired, in_up)
    assert desired == max(1, min(max(current, min(in_up)), max(in_down)))


@settings(max_examples=200)
@given(current=st.integers(1, 40), pre=st.integers(0, 60), history=HISTORY,
       flag=st.integers(0, 600), min_r=st.integers(1, 5), max_r=st.integers(5, 100))
def test_stabilization_legacy(current: int, pre: int, history: list[tuple[int, int]],
                              flag: int, min_r: int, max_r: int) -> None:
    """No behavior: the highest recommendation not older than the controller's downscale
    stabilization window wins (a window edge counts), a scale-up is capped at
    max(2 x current, 4) and maxReplicas, and minReplicas is a floor."""
    current = max(min_r, min(current, max_r))
    ctl = HPAControllerSettings(tolerance=0.0, downscale_stabilization=float(flag))
    recs = [(NOW - age, r) for age, r in history] or [(NOW, current)]  # initial rec
    state = HPAState(recommendations=tuple(Recommendation(t, r) for t, r in recs))
    desired, _ = sync(spec_for(min_r, max_r), NOW, current, pre, state, ctl)

    highest = max([r for t, r in recs if t >= NOW - flag] + [pre])
    cap = min(max_r, max(2 * current, 4))
    if desired < current:
        assert desired >= min(highest, cap), (desired, highest)
    if desired > current:
        assert desired <= max(2 * current, 4)
    assert desired == (min_r if highest < min_r else min(highest, cap))


# --------------------------------------------------------------------------------------
# Tolerance
# --------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(current=st.integers(1, 50), usage_milli=st.integers(8_500, 11_500))
def test_tolerance_band_decides_from_the_inputs(current: int, usage_milli: int) -> None:
    """An External Value target of 10 (10000m) against ``usage_milli`` on ``current`` ready
    pods: the usage ratio is usage_milli / 10000, computed here from the inputs in float64
    as replica_calculator.go ``GetExternalMetricReplicas`` does. Inside [1 - 0.1, 1 + 0.1]
    (edges included, ``tolerances.isWithin``) nothing moves; outside, the size is
    ceil(ratio x ready pods). Both outcomes are drawn on every run: the band is about a
    third of the range. No stabilization or cap applies: the only recommendation is from
    long ago and the ratio stays under 2."""
    spec = spec_for(1, 100, metrics=VALUE_OF_TEN)
    d, _ = reconcile(spec, HPAInputs(now=1000.0, spec_replicas=current,
                                     pods=ready_pods(current),
                                     external_metrics_milli={"q": [usage_milli]}),
                     HPAState(recommendations=(Recommendation(0.0, current),)), SETTINGS)
    ratio = float(usage_milli) / 10_000.0
    if 1.0 - 0.1 <= ratio <= 1.0 + 0.1:
        assert (d.desired_replicas, d.scaled) == (current, False)
    else:
        expected = math.ceil(ratio * float(current))
        assert (d.desired_replicas, d.scaled) == (expected, expected != current)
    assert d.metric_statuses[0].value_milli == usage_milli


@pytest.mark.parametrize(("current", "usage_milli", "desired"), [
    (10, 9_000, 10), (10, 8_999, 9), (10, 11_000, 10), (10, 11_001, 12),
    # float64, not exact arithmetic: 1.12 x 25 = 28.000000000000004, rounded up to 29
    (25, 11_200, 29)])
def test_tolerance_band_edges(current: int, usage_milli: int, desired: int) -> None:
    """Pinned numbers: the band's edges (1 - 0.1 and 1 + 0.1 are the float64s 0.9 and 1.1,
    which 9000/10000 and 11000/10000 hit exactly), and a product exact arithmetic gets
    wrong (11200/10000 x 25 is exactly 28)."""
    spec = spec_for(1, 100, metrics=VALUE_OF_TEN)
    d, _ = reconcile(spec, HPAInputs(now=1000.0, spec_replicas=current,
                                     pods=ready_pods(current),
                                     external_metrics_milli={"q": [usage_milli]}),
                     HPAState(recommendations=(Recommendation(0.0, current),)), SETTINGS)
    assert d.desired_replicas == desired
