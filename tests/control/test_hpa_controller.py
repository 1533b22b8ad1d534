"""Controller-level cases (horizontal.go): clamps, legacy normalization, behaviors,
stabilization, rate policies, invalid metrics, conditions.

Source of the cited cases: kubernetes/kubernetes
``pkg/controller/podautoscaler/horizontal_test.go``, read at commit
003e86297d18a8538c9da3619871393f9703bf70 (the autoscaling/v2 version of the file). Each
id/comment names the upstream test function and, for table tests, the table entry's name;
the facts and numbers carry over, the code does not. Cases marked "scalelab case (no
upstream counterpart)" are ours; they name the horizontal.go function whose semantics they
follow.

Metric inputs are built so that the prenormalized recommendation is the case's number: an
External Value metric of ``desired`` against a target of 1 with one ready pod proposes
exactly ``desired`` (replica_calculator.go GetExternalMetricReplicas). Where ``desired`` is
1 (a usage ratio of 1 is within tolerance there) the External AverageValue form is used:
``desired`` against an average of 1 over ``current`` replicas proposes ``desired``
(GetExternalPerPodMetricReplicas). Upstream table tests that call one normalization
function directly (TestScalingWithRules -> convertDesiredReplicasWithBehaviorRate,
TestNormalizeDesiredReplicasWithBehavior -> stabilizeRecommendationWithBehaviors) run alone
against those functions in tests/control/test_hpa_stages.py, and here through the whole
``reconcile``; the history is seeded so that the other step does not change the number.
Upstream scale events placed by generateEventsUniformDistribution(events, 120) sit at the
centres of equal slices of the last 120 s (3 events: -100, -60, -20 s; 1 event: -60 s).
"""

from __future__ import annotations

import pytest

from scalelab.control.hpa import (
    HPAControllerSettings,
    HPAInputs,
    HPASpec,
    HPAState,
    Recommendation,
    ScaleEvent,
    reconcile,
)
from scalelab.control.view import PodFacts, PodMetric
from scalelab.errors import ConfigError

NOW = 10_000.0
SETTINGS = HPAControllerSettings()
HORIZONTAL_TEST = "kubernetes pkg/controller/podautoscaler/horizontal_test.go"

QPS_VALUE = [{"type": "External", "external": {
    "metric": {"name": "qps"}, "target": {"type": "Value", "value": "1"}}}]
QPS_AVERAGE = [{"type": "External", "external": {
    "metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1"}}}]


def manifest(*, min_r=1, max_r=1000, behavior=None, metrics=None):
    spec = {"scaleTargetRef": {"kind": "Deployment", "name": "agent"},
            "minReplicas": min_r, "maxReplicas": max_r,
            "metrics": metrics or QPS_VALUE}
    if behavior is not None:
        spec["behavior"] = behavior
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "agent"}, "spec": spec}


def rules(pods=0, pods_period=0, percent=0, percent_period=0, window=None, select=None):
    """The same arguments as horizontal_test.go generateScalingRules(pods, podsPeriod,
    percent, percentPeriod, stabilizationWindow), as a manifest fragment."""
    policies = []
    if pods:
        policies.append({"type": "Pods", "value": pods, "periodSeconds": pods_period})
    if percent:
        policies.append({"type": "Percent", "value": percent, "periodSeconds": percent_period})
    out = {"policies": policies}
    if window is not None:
        out["stabilizationWindowSeconds"] = window
    if select is not None:
        out["selectPolicy"] = select
    return out


def pods(n, *, cpu_request_milli=1000):
    return [PodFacts(name=f"p{i}", phase="Running", ready=True, deleting=False,
                     start_time=0.0, ready_transition_time=1.0,
                     cpu_request_milli=cpu_request_milli)
            for i in range(n)]


def cpu_metrics(levels):
    """metrics.k8s.io samples (milli-CPU per pod), fresh and long past initialization."""
    return {f"p{i}": PodMetric(pod=f"p{i}", cpu_milli=level, memory_bytes=0,
                               timestamp=NOW, window=60.0)
            for i, level in enumerate(levels)}


def one_ready(n):
    """n pods of which only the first is Running and Ready (the rest Pending), so an
    External Value metric of ``desired`` against target 1 proposes exactly ``desired``."""
    return [p if i == 0 else PodFacts(name=p.name, phase="Pending", ready=False,
                                     deleting=False, start_time=0.0,
                                     ready_transition_time=None, cpu_request_milli=1000)
            for i, p in enumerate(pods(n))]


def sync(spec, current, desired, state=None, now=NOW):
    inputs = HPAInputs(now=now, spec_replicas=current, pods=one_ready(current),
                       external_metrics_milli={"qps": [desired * 1000]})
    return reconcile(spec, inputs, state or HPAState(), SETTINGS)


def seeded(recs=(), up=(), down=()):
    """A state with history; the initial recommendation is already recorded."""
    return HPAState(recommendations=tuple(Recommendation(t, r) for t, r in recs) or (
        Recommendation(NOW - 1000, 0),),
        scale_up_events=tuple(ScaleEvent(t, c) for t, c in up),
        scale_down_events=tuple(ScaleEvent(t, c) for t, c in down))


def ago(*pairs):
    """(seconds ago, value) pairs -> (timestamp, value) pairs."""
    return [(NOW - s, v) for s, v in pairs]


# generateEventsUniformDistribution([1, 5, 9], 120) and ([2, 4, 6], 120), ([10]*3, 120)
EVENTS_1_5_9 = ago((100, 1), (60, 5), (20, 9))
EVENTS_2_4_6 = ago((100, 2), (60, 4), (20, 6))
EVENTS_10_10_10 = ago((100, 10), (60, 10), (20, 10))


# --------------------------------------------------------------------------------------
# Rate policies (convertDesiredReplicasWithBehaviorRate)
# --------------------------------------------------------------------------------------

# id, min, max, behavior, current, prenormalized, expected, ScalingLimited reason, up/down
# events. Every entry is a TestScalingWithRules table entry; the id is its name.
SCALING_WITH_RULES = [
    ("scaleUp with default behavior", 1, 1000, {}, 10, 50, 20, "ScaleUpLimit", (), ()),
    ("scaleUp with pods policy larger than percent policy", 1, 1000,
     {"scaleUp": rules(100, 60, 100, 60, 0)}, 10, 500, 110, "ScaleUpLimit", (), ()),
    ("scaleUp with percent policy larger than pods policy", 1, 1000,
     {"scaleUp": rules(2, 60, 100, 60, 0)}, 10, 500, 20, "ScaleUpLimit", (), ()),
    ("scaleUp with spec MaxReplicas limitation with large pod policy", 1, 1000,
     {"scaleUp": rules(100, 60, 0, 0, 0)}, 10, 50, 50, "DesiredWithinRange", (), ()),
    ("scaleUp with pod policy limitation", 1, 1000,
     {"scaleUp": rules(30, 60, 0, 0, 0)}, 10, 50, 40, "ScaleUpLimit", (), ()),
    ("scaleUp with percent policy limitation", 1, 1000,
     {"scaleUp": rules(0, 0, 200, 60, 0)}, 10, 50, 30, "ScaleUpLimit", (), ()),
    ("scaleDown with percent policy larger than pod policy", 1, 1000,
     {"scaleDown": rules(20, 60, 1, 60, 300)}, 100, 2, 80, "ScaleDownLimit", (), ()),
    ("scaleDown with pod policy larger than percent policy", 1, 1000,
     {"scaleDown": rules(2, 60, 1, 60, 300)}, 100, 2, 98, "ScaleDownLimit", (), ()),
    ("scaleDown with spec MinReplicas limitation with large pod policy", 1, 1000,
     {"scaleDown": rules(100, 60, 0, 0, 300)}, 10, 0, 1, "TooFewReplicas", (), ()),
    ("scaleDown with pod policy limitation", 1, 1000,
     {"scaleDown": rules(5, 60, 0, 0, 300)}, 10, 2, 5, "ScaleDownLimit", (), ()),
    ("scaleDown with percent policy limitation", 1, 1000,
     {"scaleDown": rules(0, 0, 50, 60, 300)}, 10, 5, 5, "DesiredWithinRange", (), ()),
    # with earlier scale events (the period's start is current - ups + downs)
    ("scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent "
     "scale up events", 1, 1000, {"scaleUp": rules(5, 120, 0, 0, 0)}, 100, 500, 100,
     "ScaleUpLimit", EVENTS_1_5_9, ()),
    ("scaleUp with percent policy and previous scale up and down events", 1, 1000,
     {"scaleUp": rules(0, 0, 300, 300, 0)}, 6, 24, 16, "ScaleUpLimit",
     ago((60, 4)), ago((60, 2))),
    ("scaleDown with percent policy limitation and previous events", 1, 1000,
     {"scaleDown": rules(0, 0, 50, 120, 300)}, 100, 0, 56, "ScaleDownLimit",
     (), EVENTS_2_4_6),
    ("scaleDown with previous events preventing further scale down", 1, 1000,
     {"scaleDown": rules(0, 0, 10, 120, 300)}, 100, 0, 100, "ScaleDownLimit",
     (), EVENTS_10_10_10),
]


@pytest.mark.parametrize(
    ("min_r", "max_r", "behavior", "current", "pre", "expected", "why", "up", "down"),
    [c[1:] for c in SCALING_WITH_RULES],
    ids=[f"TestScalingWithRules/{c[0]}" for c in SCALING_WITH_RULES])
def test_scaling_with_rules(min_r, max_r, behavior, current, pre, expected, why, up, down):
    # horizontal_test.go TestScalingWithRules (the table entry named in the test id)
    spec = HPASpec.from_manifest(manifest(min_r=min_r, max_r=max_r, behavior=behavior))
    decision, _ = sync(spec, current, pre, seeded(up=up, down=down))
    assert decision.metric_proposal == pre
    assert decision.desired_replicas == expected
    assert decision.scaled == (expected != current)
    assert decision.condition("ScalingLimited").reason == why


# scalelab cases (no upstream counterpart), following calculateScaleUpLimitWithScalingRules,
# calculateScaleDownLimitWithBehaviors and convertDesiredReplicasWithBehaviorRate in
# horizontal.go: the spec maxReplicas under a pod policy, selectPolicy Min and Disabled.
SCALELAB_RATE_CASES = [
    ("scaleUp with spec MaxReplicas limitation", 1, 10,
     {"scaleUp": rules(100, 60, 0, 0, 0)}, 3, 50, 10, "TooManyReplicas"),
    ("scaleUp with Min selectPolicy", 1, 1000,
     {"scaleUp": rules(2, 60, 100, 60, 0, "Min")}, 3, 500, 5, "ScaleUpLimit"),
    ("scaleUp disabled", 1, 1000,
     {"scaleUp": rules(4, 15, 0, 0, 0, "Disabled")}, 3, 50, 3, "ScaleUpLimit"),
    ("scaleDown with Min selectPolicy", 1, 1000,
     {"scaleDown": rules(20, 60, 1, 60, 0, "Min")}, 100, 2, 99, "ScaleDownLimit"),
    ("scaleDown disabled", 1, 1000,
     {"scaleDown": rules(5, 60, 0, 0, 0, "Disabled")}, 10, 0, 10, "ScaleDownLimit"),
]


@pytest.mark.parametrize(("min_r", "max_r", "behavior", "current", "pre", "expected", "why"),
                         [c[1:] for c in SCALELAB_RATE_CASES],
                         ids=[f"scalelab/{c[0]}" for c in SCALELAB_RATE_CASES])
def test_select_policy_and_max_replicas(min_r, max_r, behavior, current, pre, expected, why):
    spec = HPASpec.from_manifest(manifest(min_r=min_r, max_r=max_r, behavior=behavior))
    decision, _ = sync(spec, current, pre, seeded())
    assert decision.metric_proposal == pre
    assert decision.desired_replicas == expected
    assert decision.condition("ScalingLimited").reason == why


def test_scale_up_policy_counts_events_in_period():
    # scalelab case (no upstream counterpart), following getReplicasChangePerPeriod and
    # calculateScaleUpLimitWithScalingRules in horizontal.go: 4 pods per 60 s, 3 added 30 s
    # ago -> the period started at 7, so at most 11.
    spec = HPASpec.from_manifest(manifest(behavior={"scaleUp": rules(4, 60, 0, 0, 0)}))
    d, _ = sync(spec, 10, 50, seeded(up=[(NOW - 30, 3)]))
    assert d.desired_replicas == 11
    # the same event outside the period does not count
    d, _ = sync(spec, 10, 50, seeded(up=[(NOW - 61, 3)]))
    assert d.desired_replicas == 14


def test_scale_down_percent_counts_events_in_period():
    # scalelab case (no upstream counterpart), following getReplicasChangePerPeriod and
    # calculateScaleDownLimitWithBehaviors in horizontal.go: 50 % per 60 s; 10 removed 10 s
    # ago from 20 -> the period started at 20, floor is 10: no further removal.
    spec = HPASpec.from_manifest(manifest(behavior={"scaleDown": rules(0, 0, 50, 60, 0)}))
    d, _ = sync(spec, 10, 0, seeded(down=[(NOW - 10, 10)]))
    assert (d.desired_replicas, d.scaled) == (10, False)
    assert d.condition("ScalingLimited").reason == "ScaleDownLimit"


def cpu_hpa(*, min_r, max_r, target, behavior=None):
    return HPASpec.from_manifest(manifest(
        min_r=min_r, max_r=max_r, behavior=behavior,
        metrics=[{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": target}}}]))


@pytest.mark.parametrize(("test", "max_r", "expected", "why"), [
    ("TestUpscaleCap", 100, 24, "ScaleUpLimit"),
    ("TestUpscaleCapGreaterThanMaxReplicas", 20, 20, "TooManyReplicas"),
])
def test_upscale_cap(test, max_r, expected, why):
    # horizontal_test.go TestUpscaleCap / TestUpscaleCapGreaterThanMaxReplicas: scaleUp
    # 700 % per 60 s from 3 pods (100m requests, 100/200/300m used, target 10 % -> 60
    # proposed): at most 3 x 8 = 24, or maxReplicas when that is lower.
    spec = cpu_hpa(min_r=1, max_r=max_r, target=10,
                   behavior={"scaleUp": rules(0, 0, 700, 60, 0)})
    inputs = HPAInputs(now=NOW, spec_replicas=3, pods=pods(3, cpu_request_milli=100),
                       pod_metrics=cpu_metrics([100, 200, 300]))
    d, _ = reconcile(spec, inputs, seeded(), SETTINGS)
    assert d.metric_proposal == 60
    assert (d.desired_replicas, d.scaled) == (expected, True)
    assert d.condition("ScalingLimited").reason == why
    assert d.condition("ScalingActive").reason == "ValidMetricFound"


# --------------------------------------------------------------------------------------
# Stabilization
# --------------------------------------------------------------------------------------

# id, behavior, history (seconds ago, replicas), current, prenormalized, expected,
# AbleToScale reason, metric form. TestNormalizeDesiredReplicasWithBehavior table entries;
# the unset window of the upstream entry is 0 there and is written out as 0 here. (A sync
# that rescales reports AbleToScale SucceededRescale, as reconcileAutoscaler does; the
# stabilization reason is visible only when the size stays.)
WITH_BEHAVIOR = [
    ("simple scale down stabilization",
     {"scaleUp": {"stabilizationWindowSeconds": 0},
      "scaleDown": {"stabilizationWindowSeconds": 180}},
     ((120, 4), (60, 5)), 100, 3, 5, "SucceededRescale", QPS_VALUE),
    ("simple scale up stabilization",
     {"scaleUp": {"stabilizationWindowSeconds": 300},
      "scaleDown": {"stabilizationWindowSeconds": 0}},
     ((120, 4), (60, 5)), 1, 7, 4, "SucceededRescale", QPS_VALUE),
    ("scale up and down stabilization, do not scale up when prenormalized rec goes down",
     {"scaleUp": {"stabilizationWindowSeconds": 300},
      "scaleDown": {"stabilizationWindowSeconds": 300}},
     ((6000, 2), (180, 3)), 2, 1, 2, "ScaleDownStabilized", QPS_AVERAGE),
]


@pytest.mark.parametrize(("behavior", "history", "current", "pre", "expected", "able", "metrics"),
                         [c[1:] for c in WITH_BEHAVIOR],
                         ids=[f"TestNormalizeDesiredReplicasWithBehavior/{c[0]}"
                              for c in WITH_BEHAVIOR])
def test_normalize_desired_replicas_with_behavior(behavior, history, current, pre, expected,
                                                  able, metrics):
    # horizontal_test.go TestNormalizeDesiredReplicasWithBehavior (the entry named in the
    # test id). The default rate policies (100 % / 4 pods per 15 s up, 100 % down) do not
    # limit any of these entries, so the stabilized number is what gets written.
    spec = HPASpec.from_manifest(manifest(behavior=behavior, metrics=metrics))
    d, _ = sync(spec, current, pre, seeded(recs=ago(*history)))
    assert d.metric_proposal == pre
    assert (d.desired_replicas, d.scaled) == (expected, expected != current)
    assert d.condition("AbleToScale").reason == able
    assert d.condition("ScalingLimited").reason == "DesiredWithinRange"


def test_scale_down_stabilization_window_with_behavior():
    # scalelab case (no upstream counterpart), following stabilizeRecommendationWithBehaviors
    # in horizontal.go: the max recommendation inside the 300 s window wins; older ones
    # do not count.
    spec = HPASpec.from_manifest(manifest(behavior={"scaleDown": rules(
        0, 0, 100, 15, 300)}))
    d, _ = sync(spec, 10, 3, seeded(recs=[(NOW - 200, 8), (NOW - 400, 10)]))
    assert d.desired_replicas == 8
    assert d.condition("AbleToScale").reason == "SucceededRescale"
    d, _ = sync(spec, 10, 3, seeded(recs=[(NOW - 301, 8)]))
    assert d.desired_replicas == 3


def test_scale_up_stabilization_window():
    # scalelab case (no upstream counterpart), following stabilizeRecommendationWithBehaviors
    # in horizontal.go: the min inside the scale-up window bounds the increase.
    spec = HPASpec.from_manifest(manifest(behavior={"scaleUp": rules(0, 0, 1000, 15, 120)}))
    d, _ = sync(spec, 4, 9, seeded(recs=[(NOW - 60, 6), (NOW - 30, 7)]))
    assert d.desired_replicas == 6
    d, _ = sync(spec, 4, 9, seeded(recs=[(NOW - 60, 3)]))
    assert (d.desired_replicas, d.scaled) == (4, False)
    assert d.condition("AbleToScale").reason == "ScaleUpStabilized"


# id, history (seconds ago, replicas), prenormalized, stabilized: TestNormalizeDesiredReplicas
# (stabilizeRecommendation with the 5 min --horizontal-pod-autoscaler-downscale-stabilization).
NORMALIZE_LEGACY = [
    ("stabilize", ((120, 4), (60, 5)), 3, 5),
    ("no stabilize", ((120, 1), (60, 2)), 3, 3),
    ("no stabilize - old recommendations", ((600, 10), (540, 9)), 3, 3),
    ("stabilize - old recommendations", ((600, 10), (60, 4), (120, 5), (540, 9)), 3, 5),
]


@pytest.mark.parametrize(("history", "pre", "expected"), [c[1:] for c in NORMALIZE_LEGACY],
                         ids=[f"TestNormalizeDesiredReplicas/{c[0]}" for c in NORMALIZE_LEGACY])
def test_normalize_desired_replicas_legacy(history, pre, expected):
    # horizontal_test.go TestNormalizeDesiredReplicas (no behavior: the legacy path). The
    # upstream entries call stabilizeRecommendation alone; here 5 replicas with min 1 /
    # max 10 keep convertDesiredReplicasWithRules out of the way. (The length of the
    # recommendation log upstream also checks: tests/control/test_hpa_stages.py.)
    spec = HPASpec.from_manifest(manifest(max_r=10))
    d, _ = sync(spec, 5, pre, seeded(recs=ago(*history)))
    assert d.metric_proposal == pre
    assert (d.desired_replicas, d.scaled) == (expected, expected != 5)
    assert d.condition("AbleToScale").reason == (
        "ScaleDownStabilized" if expected == 5 else "SucceededRescale")


# current, prenormalized, min, max, expected, ScalingLimited reason: the entries of
# TestConvertDesiredReplicasWithRules (named by their annotation). Upstream's test init()
# sets scaleUpLimitFactor to 8 and expects calculateScaleUpLimit(3); with the production
# factor 2 that is max(2 x 3, 4) = 6. Left out: "maxReplicas is the limit because
# maxReplicas < scaleUpLimit" (current 20 > maxReplicas 10), which a whole sync never
# hands to this function: reconcileAutoscaler clamps an out-of-range current size first
# (see test_out_of_range_current_is_clamped_without_metrics).
CONVERT_WITH_RULES = [
    ("prenormalized desired replicas within range", 5, 7, 3, 8, 7, "DesiredWithinRange",
     QPS_VALUE),
    ("prenormalized desired replicas < minReplicas", 3, 1, 2, 8, 2, "TooFewReplicas",
     QPS_AVERAGE),
    ("scaleUpLimit is the limit because scaleUpLimit < maxReplicas", 3, 1000, 1, 2000, 6,
     "ScaleUpLimit", QPS_VALUE),
]


@pytest.mark.parametrize(("current", "pre", "min_r", "max_r", "expected", "why", "metrics"),
                         [c[1:] for c in CONVERT_WITH_RULES],
                         ids=[f"TestConvertDesiredReplicasWithRules/{c[0]}"
                              for c in CONVERT_WITH_RULES])
def test_convert_desired_replicas_with_rules(current, pre, min_r, max_r, expected, why,
                                             metrics):
    # horizontal_test.go TestConvertDesiredReplicasWithRules (legacy path, no behavior);
    # the seeded history is older than the downscale window, so nothing is stabilized.
    spec = HPASpec.from_manifest(manifest(min_r=min_r, max_r=max_r, metrics=metrics))
    d, _ = sync(spec, current, pre, seeded())
    assert d.metric_proposal == pre
    assert d.desired_replicas == expected
    limited = d.condition("ScalingLimited")
    assert (limited.reason, limited.status) == (why, "False" if expected == pre else "True")


def test_stabilize_downscale():
    # horizontal_test.go TestStabilizeDownscale: 4 replicas, min 1 / max 5, metrics say 2
    # (CPU 50m of 100m against 100 %), recommendations 10 (10 min ago, outside the window)
    # and 4 (1 min ago) -> stays 4, AbleToScale ScaleDownStabilized.
    spec = cpu_hpa(min_r=1, max_r=5, target=100)
    inputs = HPAInputs(now=NOW, spec_replicas=4, pods=pods(3, cpu_request_milli=100),
                       pod_metrics=cpu_metrics([50, 50, 50]), status_replicas=4)
    d, _ = reconcile(spec, inputs, seeded(recs=ago((600, 10), (60, 4))), SETTINGS)
    assert (d.desired_replicas, d.scaled) == (4, False)
    assert d.condition("AbleToScale").reason == "ScaleDownStabilized"


def test_new_hpa_records_initial_recommendation():
    # horizontal_test.go TestScaleDownStabilizeInitialSize: min 2 / max 6, 5 replicas, the
    # metrics say 3, no recommendations yet (recordInitialRecommendation) -> stays 5 with
    # AbleToScale ScaleDownStabilized. scalelab addition: once the downscale window has
    # passed, the same metrics scale it down.
    spec = HPASpec.from_manifest(manifest(min_r=2, max_r=6))
    d, state = sync(spec, 5, 3, HPAState())
    assert (d.desired_replicas, d.scaled) == (5, False)
    assert d.condition("AbleToScale").reason == "ScaleDownStabilized"
    d, _ = sync(spec, 5, 3, state, now=NOW + 301)
    assert (d.desired_replicas, d.scaled) == (3, True)
    assert d.condition("ScalingLimited").reason == "DesiredWithinRange"


# --------------------------------------------------------------------------------------
# Out-of-range current size, zero replicas
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("current", "min_r", "max_r", "expected", "reason"), [
    pytest.param(2, 3, 5, 3, "Current number of replicas below Spec.MinReplicas",
                 id="TestTooFewReplicas"),
    pytest.param(10, 3, 5, 5, "Current number of replicas above Spec.MaxReplicas",
                 id="TestTooManyReplicas"),
])
def test_out_of_range_current_is_clamped_without_metrics(current, min_r, max_r, expected,
                                                         reason):
    # horizontal_test.go TestTooFewReplicas / TestTooManyReplicas: no metrics are read;
    # the only condition set is AbleToScale SucceededRescale.
    spec = HPASpec.from_manifest(manifest(min_r=min_r, max_r=max_r))
    inputs = HPAInputs(now=NOW, spec_replicas=current, pods=pods(current))
    d, _ = reconcile(spec, inputs, HPAState(), SETTINGS)
    assert (d.desired_replicas, d.scaled, d.reason) == (expected, True, reason)
    assert [(c.type, c.status, c.reason) for c in d.conditions] == [
        ("AbleToScale", "True", "SucceededRescale")]


def test_zero_replicas_disables_scaling():
    # horizontal_test.go TestZeroReplicas: min 3 / max 5, spec.replicas 0 -> stays 0,
    # AbleToScale SucceededGetScale, ScalingActive False ScalingDisabled.
    spec = HPASpec.from_manifest(manifest(min_r=3, max_r=5))
    d, _ = sync(spec, 0, 10)
    assert (d.desired_replicas, d.scaled) == (0, False)
    assert [(c.type, c.status, c.reason) for c in d.conditions] == [
        ("AbleToScale", "True", "SucceededGetScale"),
        ("ScalingActive", "False", "ScalingDisabled")]


# --------------------------------------------------------------------------------------
# Invalid metrics
# --------------------------------------------------------------------------------------

CPU_50 = {"type": "Resource", "resource": {"name": "cpu", "target": {
    "type": "Utilization", "averageUtilization": 50}}}
TWO_METRICS = [QPS_VALUE[0], CPU_50]


def test_one_metric_invalid_still_scales_up():
    # horizontal_test.go TestScaleUpOneMetricEmpty (and TestScaleUpOneMetricInvalid):
    # min 2 / max 6, 3 replicas, one metric unavailable, the valid one says 4 -> scale to 4
    # with ScalingActive ValidMetricFound. Here the valid metric is External and the
    # unavailable one CPU (no pod metrics); upstream has them the other way round.
    spec = HPASpec.from_manifest(manifest(min_r=2, max_r=6, metrics=TWO_METRICS))
    d, _ = sync(spec, 3, 4, seeded())   # no pod metrics: cpu is invalid
    assert (d.desired_replicas, d.scaled) == (4, True)
    assert d.condition("ScalingActive").reason == "ValidMetricFound"
    assert d.condition("AbleToScale").reason == "SucceededRescale"
    assert [m.error is None for m in d.metric_statuses] == [True, False]


def test_one_metric_invalid_blocks_scale_down():
    # horizontal_test.go TestNoScaleDownOneMetricEmpty: min 2 / max 6, 5 replicas, CPU
    # (target 50 %, 100/300/500/250/250m of 1 CPU each) says 3, the External metric fetch
    # fails -> no scale down; AbleToScale SucceededGetScale, ScalingActive False
    # FailedGetExternalMetric.
    spec = HPASpec.from_manifest(manifest(min_r=2, max_r=6, metrics=[CPU_50, QPS_VALUE[0]]))
    inputs = HPAInputs(now=NOW, spec_replicas=5, pods=pods(5),
                       pod_metrics=cpu_metrics([100, 300, 500, 250, 250]),
                       external_metrics_milli={"qps": None})
    d, _ = reconcile(spec, inputs, seeded(), SETTINGS)
    assert (d.desired_replicas, d.scaled) == (5, False)
    assert d.metric_statuses[0].proposal == 3
    assert [(c.type, c.status, c.reason) for c in d.conditions] == [
        ("AbleToScale", "True", "SucceededGetScale"),
        ("ScalingActive", "False", "FailedGetExternalMetric")]
    assert d.reason.startswith("FailedComputeMetricsReplicas: invalid metrics (1 invalid out of 2)")


def test_all_metrics_invalid():
    # horizontal_test.go TestConditionFailedGetMetrics, entry FailedGetExternalMetric:
    # min 1 / max 100, 3 replicas, the only (External) metric cannot be fetched -> stays 3;
    # AbleToScale SucceededGetScale, ScalingActive False FailedGetExternalMetric.
    spec = HPASpec.from_manifest(manifest(min_r=1, max_r=100))
    inputs = HPAInputs(now=NOW, spec_replicas=3, pods=pods(3), external_metrics_milli={"qps": None})
    d, _ = reconcile(spec, inputs, HPAState(), SETTINGS)
    assert (d.desired_replicas, d.scaled) == (3, False)
    assert [(c.type, c.status, c.reason) for c in d.conditions] == [
        ("AbleToScale", "True", "SucceededGetScale"),
        ("ScalingActive", "False", "FailedGetExternalMetric")]


def test_max_of_metrics_wins_and_cpu_status():
    # scalelab case (no upstream counterpart), following computeReplicasForMetrics in
    # horizontal.go: proposals combine by max; the status carries the utilization.
    spec = HPASpec.from_manifest(manifest(metrics=TWO_METRICS))
    inputs = HPAInputs(now=NOW, spec_replicas=2, pods=pods(2),
                       external_metrics_milli={"qps": [1000]}, pod_metrics=cpu_metrics([900, 900]))
    d, _ = reconcile(spec, inputs, seeded(), SETTINGS)
    assert d.desired_replicas == 4
    assert d.metric_statuses[1].average_utilization == 90
    assert d.reason == "cpu resource utilization (percentage of request) above target"


def test_reconcile_is_pure():
    # scalelab case: reconcile neither mutates its state argument nor depends on anything
    # but its arguments.
    spec = HPASpec.from_manifest(manifest(behavior={}))
    state = seeded(recs=[(NOW - 10, 5)])
    a = sync(spec, 3, 9, state)
    b = sync(spec, 3, 9, state)
    assert a == b
    assert state.recommendations == (Recommendation(NOW - 10, 5),)


# --------------------------------------------------------------------------------------
# Manifest parsing (scalelab cases; defaults follow pkg/apis/autoscaling/v2/defaults.go)
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("doc_patch", "field"), [
    ({"apiVersion": "autoscaling/v1"}, "apiVersion"),
    ({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "a"}, "maxReplicas": 0}},
     "spec.maxReplicas"),
    ({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "a"}, "minReplicas": 5,
               "maxReplicas": 2}}, "spec.maxReplicas"),
    ({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "a"}, "maxReplicas": 3,
               "metrics": [{"type": "Object"}]}}, "spec.metrics[0].type"),
    ({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "a"}, "maxReplicas": 3,
               "behavior": {"scaleUp": {"selectPolicy": "Fastest"}}}},
     "spec.behavior.scaleUp.selectPolicy"),
    ({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "a"}, "maxReplicas": 3,
               "metrics": [{"type": "External", "external": {"metric": {"name": "q"},
                            "target": {"type": "Value", "value": "lots"}}}]}},
     "spec.metrics[0].external.target.value"),
])
def test_bad_manifest_names_field(doc_patch, field):
    doc = {**manifest(), **doc_patch}
    with pytest.raises(ConfigError) as err:
        HPASpec.from_manifest(doc, source="hpa.yaml")
    assert err.value.file == "hpa.yaml"
    assert err.value.field == field
    assert err.value.fix


def test_defaults_filled_as_api_server():
    spec = HPASpec.from_manifest({**manifest(behavior={"scaleDown": {}}),
                                  "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "a"},
                                           "maxReplicas": 3, "behavior": {"scaleDown": {}}}})
    assert spec.min_replicas == 1
    assert spec.metrics[0].target.average_utilization == 80
    up = spec.behavior.scale_up
    assert (up.stabilization_window_seconds, up.select_policy) == (0, "Max")
    assert [(p.type, p.value, p.period_seconds) for p in up.policies] == [
        ("Pods", 4, 15), ("Percent", 100, 15)]
    assert spec.behavior.scale_down.stabilization_window_seconds is None


def test_per_direction_tolerance_from_the_manifest_decides(tmp_path) -> None:
    """behavior.scaleUp/scaleDown.tolerance (KEP-4951), from a manifest file through the
    validator (the 1.33 schema, where the field exists) to reconcile."""
    import yaml

    from scalelab.scaling_manifests import validate_scaling

    cpu = [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]
    doc = manifest(min_r=1, max_r=40, metrics=cpu,
                   behavior={"scaleUp": {"tolerance": "0.5"}, "scaleDown": {"tolerance": 0.01}})
    doc["metadata"]["namespace"] = "scalelab"
    path = tmp_path / "hpa.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.warns(UserWarning, match="HPAConfigurableTolerance"):
        (obj,) = validate_scaling(path)
    tuned = HPASpec.from_manifest(obj.doc)
    default = HPASpec.from_manifest(manifest(min_r=1, max_r=40, metrics=cpu))

    def proposal(spec: HPASpec, n: int, milli: int) -> int | None:
        inputs = HPAInputs(now=NOW, spec_replicas=n, pods=pods(n),
                           pod_metrics=cpu_metrics([milli] * n))
        return reconcile(spec, inputs, HPAState(), SETTINGS)[0].metric_proposal

    # 70 % against 50 %: ratio 1.4 is inside the 0.5 scale-up tolerance
    assert (proposal(tuned, 4, 700), proposal(default, 4, 700)) == (4, 6)
    # 47.5 %: ratio 0.95 is outside the 0.01 scale-down tolerance: ceil(20 x 0.95) = 19
    assert (proposal(tuned, 20, 475), proposal(default, 20, 475)) == (19, 20)


def test_pods_metric_in_milli_units():
    # horizontal_test.go TestScaleUpCM: a Pods metric "qps" with an AverageValue target of
    # 15 on 3 pods (min 2 / max 6) reporting 20000m, 10000m and 30000m (the custom metrics
    # API hands the controller milli-quantities) -> an average of 20, ratio 4/3 -> 4.
    spec = HPASpec.from_manifest(manifest(min_r=2, max_r=6, metrics=[
        {"type": "Pods", "pods": {"metric": {"name": "qps"},
                                  "target": {"type": "AverageValue", "averageValue": "15.0"}}}]))
    inputs = HPAInputs(now=NOW, spec_replicas=3, pods=pods(3),
                       pods_metrics_milli={"qps": {"p0": 20000, "p1": 10000, "p2": 30000}})
    d, _ = reconcile(spec, inputs, seeded(), SETTINGS)
    assert (d.desired_replicas, d.scaled) == (4, True)
    assert d.metric_statuses[0].average_value_milli == 20000
    assert d.reason == "pods metric qps above target"
