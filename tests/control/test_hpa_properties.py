"""Property tests for the HPA core (hypothesis): invariants that hold for any input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from scalelab.control.hpa import (
    HPAControllerSettings,
    HPAInputs,
    HPASpec,
    HPAState,
    Recommendation,
    reconcile,
    scale_down_limit,
    scale_up_limit,
)
from scalelab.control.view import PodFacts

SETTINGS = HPAControllerSettings()


def spec_for(min_r, max_r, behavior=None):
    spec = {"scaleTargetRef": {"kind": "Deployment", "name": "a"}, "minReplicas": min_r,
            "maxReplicas": max_r, "metrics": [{"type": "External", "external": {
                "metric": {"name": "q"}, "target": {"type": "Value", "value": "10"}}}]}
    if behavior is not None:
        spec["behavior"] = behavior
    return HPASpec.from_manifest({"apiVersion": "autoscaling/v2",
                                  "kind": "HorizontalPodAutoscaler",
                                  "metadata": {"name": "a"}, "spec": spec})


def ready_pods(n):
    return [PodFacts(name=f"p{i}", phase="Running", ready=True, deleting=False,
                     start_time=0.0, ready_transition_time=1.0, cpu_request_milli=100)
            for i in range(n)]


policy = st.fixed_dictionaries({"type": st.sampled_from(["Pods", "Percent"]),
                                "value": st.integers(1, 200),
                                "periodSeconds": st.integers(1, 120)})
rule = st.fixed_dictionaries({
    "stabilizationWindowSeconds": st.integers(0, 600),
    "selectPolicy": st.sampled_from(["Max", "Min", "Disabled"]),
    "policies": st.lists(policy, min_size=1, max_size=3)})
behavior = st.one_of(st.none(), st.fixed_dictionaries({"scaleUp": rule, "scaleDown": rule}))


@settings(max_examples=200, deadline=None)
@given(min_r=st.integers(1, 5), extra=st.integers(0, 20), beh=behavior,
       loads=st.lists(st.floats(0, 1000), min_size=1, max_size=30),
       start=st.integers(1, 30))
def test_never_outside_min_max_and_rates_respected(min_r, extra, beh, loads, start):
    max_r = min_r + extra
    spec = spec_for(min_r, max_r, beh)
    state = HPAState()
    current = max(min_r, min(start, max_r))
    now = 0.0
    for load in loads:
        now += 15.0
        before = state
        d, state = reconcile(spec, HPAInputs(now=now, spec_replicas=current,
                                             pods=ready_pods(current),
                                             external_metrics={"q": [load]}),
                             state, SETTINGS)
        assert min_r <= d.desired_replicas <= max_r
        if spec.behavior is not None and d.scaled:
            if d.desired_replicas > current:
                limit = scale_up_limit(current, before.scale_up_events,
                                       before.scale_down_events, spec.behavior.scale_up, now)
                assert d.desired_replicas <= max(limit, current)
            else:
                limit = scale_down_limit(current, before.scale_up_events,
                                         before.scale_down_events, spec.behavior.scale_down,
                                         now)
                assert d.desired_replicas >= min(limit, current)
        current = d.desired_replicas


@settings(max_examples=200, deadline=None)
@given(current=st.integers(1, 50), ratio=st.floats(0.9, 1.1))
def test_within_tolerance_nothing_moves(current, ratio):
    spec = spec_for(1, 100)
    value = 10.0 * ratio  # usage / target == ratio
    d, _ = reconcile(spec, HPAInputs(now=1000.0, spec_replicas=current,
                                     pods=ready_pods(current),
                                     external_metrics={"q": [value]}),
                     HPAState(recommendations=(Recommendation(0.0, current),)), SETTINGS)
    usage_ratio = (d.metric_statuses[0].value_milli or 0) / 10_000
    assert 0.89 <= usage_ratio <= 1.11
    if 0.9 <= usage_ratio <= 1.1:
        assert d.desired_replicas == current and not d.scaled


@settings(max_examples=200, deadline=None)
@given(current=st.integers(2, 30), higher=st.integers(0, 30), age=st.floats(0, 299),
       window=st.integers(1, 600))
def test_stabilization_never_goes_below_recent_recommendation(current, higher, age, window):
    spec = spec_for(1, 100, {"scaleDown": {"stabilizationWindowSeconds": window}})
    now = 10_000.0
    rec = min(current, higher)
    state = HPAState(recommendations=(Recommendation(now - min(age, window - 0.5), rec),))
    d, _ = reconcile(spec, HPAInputs(now=now, spec_replicas=current,
                                     pods=ready_pods(current),
                                     external_metrics={"q": [0.0]}), state, SETTINGS)
    assert d.desired_replicas >= max(rec, 1)
