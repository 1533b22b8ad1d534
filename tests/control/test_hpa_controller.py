"""Controller-level cases (horizontal.go): clamps, legacy normalization, behaviors,
stabilization, rate policies, invalid metrics, conditions.

Sources: kubernetes ``pkg/controller/podautoscaler/horizontal_test.go`` (TestScalingWithRules,
TestNormalizeDesiredReplicas*, TestScaleUp*, TestScaleDown*, TestMinReplicas,
TestMaxReplicas, TestZeroReplicas, TestScaleUpOneMetricInvalid, TestScaleDownOneMetricInvalid,
TestUpscaleCap) - the facts and numbers, as recalled from the upstream table (the stored
index held no copy of that file); each id names the upstream test it follows. Metric
inputs are built so that the prenormalized recommendation is the case's number: an
External Value metric of ``desired`` against a target of 1 with one
ready pod proposes exactly ``desired`` (replica_calculator.go GetExternalMetricReplicas).
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


def manifest(*, min_r=1, max_r=1000, behavior=None, metrics=None):
    spec = {"scaleTargetRef": {"kind": "Deployment", "name": "agent"},
            "minReplicas": min_r, "maxReplicas": max_r,
            "metrics": metrics or [{"type": "External", "external": {
                "metric": {"name": "qps"}, "target": {"type": "Value", "value": "1"}}}]}
    if behavior is not None:
        spec["behavior"] = behavior
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "agent"}, "spec": spec}


def rules(pods=0, pods_period=0, percent=0, percent_period=0, window=None, select=None):
    """horizontal_test.go generateScalingRules(pods, podsPeriod, percent, percentPeriod, window)."""
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


def pods(n):
    return [PodFacts(name=f"p{i}", phase="Running", ready=True, deleting=False,
                     start_time=0.0, ready_transition_time=1.0, cpu_request_milli=1000)
            for i in range(n)]


def one_ready(n):
    """n pods of which only the first is Running and Ready (the rest Pending), so an
    External Value metric of ``desired`` against target 1 proposes exactly ``desired``."""
    return [p if i == 0 else PodFacts(name=p.name, phase="Pending", ready=False,
                                     deleting=False, start_time=0.0,
                                     ready_transition_time=None, cpu_request_milli=1000)
            for i, p in enumerate(pods(n))]


def sync(spec, current, desired, state=None, now=NOW):
    inputs = HPAInputs(now=now, spec_replicas=current, pods=one_ready(current),
                       external_metrics={"qps": [float(desired)]})
    return reconcile(spec, inputs, state or HPAState(), SETTINGS)


def seeded(recs=(), up=(), down=()):
    """A state with history; the initial recommendation is already recorded."""
    return HPAState(recommendations=tuple(Recommendation(t, r) for t, r in recs) or (
        Recommendation(NOW - 1000, 0),),
        scale_up_events=tuple(ScaleEvent(t, c) for t, c in up),
        scale_down_events=tuple(ScaleEvent(t, c) for t, c in down))


BEHAVIOR_CASES = [
    # id, min, max, behavior, current, prenormalized, expected, ScalingLimited reason
    ("TestScalingWithRules/scaleUp with default behavior", 1, 1000, {}, 10, 50, 20,
     "ScaleUpLimit"),
    ("TestScalingWithRules/scaleUp with pods policy larger than percent policy", 1, 1000,
     {"scaleUp": rules(100, 60, 100, 60, 0)}, 3, 500, 103, "ScaleUpLimit"),
    ("TestScalingWithRules/scaleUp with percent policy larger than pods policy", 1, 1000,
     {"scaleUp": rules(2, 60, 100, 60, 0)}, 3, 500, 6, "ScaleUpLimit"),
    ("TestScalingWithRules/scaleUp with spec MaxReplicas limitation with large pod policy",
     1, 1000, {"scaleUp": rules(100, 60, 0, 0, 0)}, 3, 50, 50, "DesiredWithinRange"),
    ("TestScalingWithRules/scaleUp with pod policy limitation", 1, 1000,
     {"scaleUp": rules(30, 60, 0, 0, 0)}, 3, 50, 33, "ScaleUpLimit"),
    ("TestScalingWithRules/scaleUp with percent policy limitation", 1, 1000,
     {"scaleUp": rules(0, 0, 200, 60, 0)}, 3, 50, 9, "ScaleUpLimit"),
    ("TestScalingWithRules/scaleUp with spec MaxReplicas limitation", 1, 10,
     {"scaleUp": rules(100, 60, 0, 0, 0)}, 3, 50, 10, "TooManyReplicas"),
    ("TestScalingWithRules/scaleUp with Min selectPolicy", 1, 1000,
     {"scaleUp": rules(2, 60, 100, 60, 0, "Min")}, 3, 500, 5, "ScaleUpLimit"),
    ("TestScalingWithRules/scaleUp disabled", 1, 1000,
     {"scaleUp": rules(4, 15, 0, 0, 0, "Disabled")}, 3, 50, 3, "ScaleUpLimit"),
    ("TestScalingWithRules/scaleDown with percent policy larger than pod policy", 1, 1000,
     {"scaleDown": rules(20, 60, 1, 60, 0)}, 100, 2, 80, "ScaleDownLimit"),
    ("TestScalingWithRules/scaleDown with pod policy larger than percent policy", 1, 1000,
     {"scaleDown": rules(2, 60, 1, 60, 0)}, 100, 2, 98, "ScaleDownLimit"),
    ("TestScalingWithRules/scaleDown with spec MinReplicas limitation with large pod policy",
     1, 1000, {"scaleDown": rules(100, 60, 0, 0, 0)}, 10, 0, 1, "TooFewReplicas"),
    ("TestScalingWithRules/scaleDown with pod policy limitation", 1, 1000,
     {"scaleDown": rules(5, 60, 0, 0, 0)}, 10, 0, 5, "ScaleDownLimit"),
    ("TestScalingWithRules/scaleDown with percent policy limitation", 1, 1000,
     {"scaleDown": rules(0, 0, 50, 60, 0)}, 10, 0, 5, "ScaleDownLimit"),
    ("TestScalingWithRules/scaleDown with Min selectPolicy", 1, 1000,
     {"scaleDown": rules(20, 60, 1, 60, 0, "Min")}, 100, 2, 99, "ScaleDownLimit"),
    ("TestScalingWithRules/scaleDown disabled", 1, 1000,
     {"scaleDown": rules(5, 60, 0, 0, 0, "Disabled")}, 10, 0, 10, "ScaleDownLimit"),
]


@pytest.mark.parametrize(("min_r", "max_r", "behavior", "current", "pre", "expected", "why"),
                         [c[1:] for c in BEHAVIOR_CASES], ids=[c[0] for c in BEHAVIOR_CASES])
def test_behavior_rate_policies(min_r, max_r, behavior, current, pre, expected, why):
    spec = HPASpec.from_manifest(manifest(min_r=min_r, max_r=max_r, behavior=behavior))
    decision, _ = sync(spec, current, pre, seeded())
    assert decision.metric_proposal == pre
    assert decision.desired_replicas == expected
    assert decision.condition("ScalingLimited").reason == why


def test_scale_up_policy_counts_events_in_period():
    # horizontal_test.go TestScalingWithRules "scaleUp with pods policy and events": 4 pods
    # per 60 s, 3 added 30 s ago -> the period started at 7, so at most 11.
    spec = HPASpec.from_manifest(manifest(behavior={"scaleUp": rules(4, 60, 0, 0, 0)}))
    d, _ = sync(spec, 10, 50, seeded(up=[(NOW - 30, 3)]))
    assert d.desired_replicas == 11
    # the same event outside the period does not count
    d, _ = sync(spec, 10, 50, seeded(up=[(NOW - 61, 3)]))
    assert d.desired_replicas == 14


def test_scale_down_percent_counts_events_in_period():
    # TestScalingWithRules "scaleDown with percent policy and events": 50 % per 60 s; 10
    # removed 10 s ago from 20 -> the period started at 20, floor is 10: no further removal.
    spec = HPASpec.from_manifest(manifest(behavior={"scaleDown": rules(0, 0, 50, 60, 0)}))
    d, _ = sync(spec, 10, 0, seeded(down=[(NOW - 10, 10)]))
    assert (d.desired_replicas, d.scaled) == (10, False)
    assert d.condition("ScalingLimited").reason == "ScaleDownLimit"


def test_scale_down_stabilization_window_with_behavior():
    # TestNormalizeDesiredReplicasWithBehaviors "scale down stabilization": the max
    # recommendation inside the 300 s window wins; older ones do not count.
    spec = HPASpec.from_manifest(manifest(behavior={"scaleDown": rules(
        0, 0, 100, 15, 300)}))
    d, _ = sync(spec, 10, 3, seeded(recs=[(NOW - 200, 8), (NOW - 400, 10)]))
    assert d.desired_replicas == 8
    assert d.condition("AbleToScale").reason == "SucceededRescale"
    d, _ = sync(spec, 10, 3, seeded(recs=[(NOW - 301, 8)]))
    assert d.desired_replicas == 3


def test_scale_up_stabilization_window():
    # TestNormalizeDesiredReplicasWithBehaviors "scale up stabilization": the min inside
    # the scale-up window bounds the increase.
    spec = HPASpec.from_manifest(manifest(behavior={"scaleUp": rules(0, 0, 1000, 15, 120)}))
    d, _ = sync(spec, 4, 9, seeded(recs=[(NOW - 60, 6), (NOW - 30, 7)]))
    assert d.desired_replicas == 6
    d, _ = sync(spec, 4, 9, seeded(recs=[(NOW - 60, 3)]))
    assert (d.desired_replicas, d.scaled) == (4, False)
    assert d.condition("AbleToScale").reason == "ScaleUpStabilized"


def test_legacy_downscale_stabilization_and_upscale_cap():
    # TestUpscaleCap / normalizeDesiredReplicas: no behavior -> max(2 x current, 4);
    # TestScaleDownIncludeUnreadyPods etc. use the 5 min downscale window (flag default).
    spec = HPASpec.from_manifest(manifest(max_r=100))
    d, _ = sync(spec, 3, 20, seeded())
    assert (d.desired_replicas, d.condition("ScalingLimited").reason) == (6, "ScaleUpLimit")
    d, _ = sync(spec, 1, 20, seeded())
    assert d.desired_replicas == 4
    d, _ = sync(spec, 10, 2, seeded(recs=[(NOW - 100, 7)]))
    assert d.desired_replicas == 7
    assert d.scaled
    d, _ = sync(spec, 10, 2, seeded(recs=[(NOW - 301, 7)]))
    assert d.desired_replicas == 2


def test_new_hpa_records_initial_recommendation():
    # horizontal.go recordInitialRecommendation: a fresh HPA cannot scale down before
    # the downscale window has passed since it first saw the target.
    spec = HPASpec.from_manifest(manifest())
    d, state = sync(spec, 5, 0, HPAState())
    assert (d.desired_replicas, d.scaled) == (5, False)
    assert d.condition("AbleToScale").reason == "ScaleDownStabilized"
    d, _ = sync(spec, 5, 0, state, now=NOW + 301)
    assert (d.desired_replicas, d.condition("ScalingLimited").reason) == (1, "TooFewReplicas")


@pytest.mark.parametrize(("current", "min_r", "max_r", "expected", "reason"), [
    (1, 2, 6, 2, "Current number of replicas below Spec.MinReplicas"),   # TestMinReplicas
    (8, 2, 6, 6, "Current number of replicas above Spec.MaxReplicas"),   # TestMaxReplicas
])
def test_out_of_range_current_is_clamped_without_metrics(current, min_r, max_r, expected,
                                                         reason):
    spec = HPASpec.from_manifest(manifest(min_r=min_r, max_r=max_r))
    inputs = HPAInputs(now=NOW, spec_replicas=current, pods=pods(current))
    d, _ = reconcile(spec, inputs, HPAState(), SETTINGS)
    assert (d.desired_replicas, d.scaled, d.reason) == (expected, True, reason)


def test_zero_replicas_disables_scaling():
    # TestZeroReplicas: spec.replicas 0 with minReplicas > 0 -> ScalingDisabled
    spec = HPASpec.from_manifest(manifest(min_r=3, max_r=5))
    d, _ = sync(spec, 0, 10)
    assert (d.desired_replicas, d.scaled) == (0, False)
    assert d.condition("ScalingActive").reason == "ScalingDisabled"
    assert d.condition("ScalingActive").status == "False"


TWO_METRICS = [
    {"type": "External", "external": {"metric": {"name": "qps"},
                                      "target": {"type": "Value", "value": "1"}}},
    {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 50}}},
]


def test_one_metric_invalid_still_scales_up():
    # TestScaleUpOneMetricInvalid: the valid metric wants more -> scale up
    spec = HPASpec.from_manifest(manifest(metrics=TWO_METRICS))
    d, _ = sync(spec, 3, 4, seeded())   # no pod metrics: cpu is invalid
    assert (d.desired_replicas, d.scaled) == (4, True)
    assert d.condition("ScalingActive").reason == "ValidMetricFound"
    assert [m.error is None for m in d.metric_statuses] == [True, False]


def test_one_metric_invalid_blocks_scale_down():
    # TestScaleDownOneMetricInvalid: some invalid and the rest say down -> do nothing
    spec = HPASpec.from_manifest(manifest(metrics=TWO_METRICS))
    d, _ = sync(spec, 5, 2, seeded())
    assert (d.desired_replicas, d.scaled) == (5, False)
    cond = d.condition("ScalingActive")
    assert (cond.status, cond.reason) == ("False", "FailedGetResourceMetric")
    assert d.reason.startswith("FailedComputeMetricsReplicas: invalid metrics (1 invalid out of 2)")


def test_all_metrics_invalid():
    # TestScaleUpFailsMetricsFetch-style: ScalingActive False with FailedGet...
    spec = HPASpec.from_manifest(manifest())
    inputs = HPAInputs(now=NOW, spec_replicas=3, pods=pods(3), external_metrics={"qps": None})
    d, _ = reconcile(spec, inputs, HPAState(), SETTINGS)
    assert (d.scaled, d.condition("ScalingActive").reason) == (False, "FailedGetExternalMetric")


def test_max_of_metrics_wins_and_cpu_status():
    # computeReplicasForMetrics: proposals combine by max; status carries utilization
    spec = HPASpec.from_manifest(manifest(metrics=TWO_METRICS))
    inputs = HPAInputs(
        now=NOW, spec_replicas=2, pods=pods(2), external_metrics={"qps": [1.0]},
        pod_metrics={f"p{i}": PodMetric(pod=f"p{i}", cpu_milli=900, memory_bytes=0,
                                        timestamp=NOW, window=60.0) for i in range(2)})
    d, _ = reconcile(spec, inputs, seeded(), SETTINGS)
    assert d.desired_replicas == 4
    assert d.metric_statuses[1].average_utilization == 90
    assert d.reason == "cpu resource utilization (percentage of request) above target"


def test_reconcile_is_pure():
    spec = HPASpec.from_manifest(manifest(behavior={}))
    state = seeded(recs=[(NOW - 10, 5)])
    a = sync(spec, 3, 9, state)
    b = sync(spec, 3, 9, state)
    assert a == b
    assert state.recommendations == (Recommendation(NOW - 10, 5),)


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
