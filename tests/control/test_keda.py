"""KEDA emulation: executor cases transcribed from kedacore/keda
``pkg/scaling/executor/scale_scaledobjects_test.go``, the generated HPA
(``controllers/keda/hpa.go``), and hypothesis properties of activation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from scalelab.control import rabbitmq_scaler as rmq
from scalelab.control.hpa import HPAControllerSettings, HPAInputs, HPASpec, HPAState, reconcile
from scalelab.control.keda import (
    EventTrigger,
    KedaState,
    ScaledObjectSpec,
    TriggerReading,
    activate,
    trigger_authentications,
)
from scalelab.credentials import MANAGEMENT_URL_KEY, SECRET_NAME
from scalelab.errors import ConfigError
from scalelab.paths import SCALING_MANIFESTS
from scalelab.scaling_manifests import validate_scaling

ENV = {"RABBITMQ_MGMT_URL": "http://guest:guest@127.0.0.1:15672/"}
SECRETS = {SECRET_NAME: {MANAGEMENT_URL_KEY: "http://run:s3cret@rabbitmq:15672"}}


def _shipped(name: str, secrets: dict[str, dict[str, str]] | None = None,
             **kwargs: Any) -> ScaledObjectSpec:
    """A shipped KEDA file's ScaledObject, its TriggerAuthentication resolved against
    ``secrets`` (default: the broker Secret with a management URL)."""
    docs = [d for d in yaml.safe_load_all((SCALING_MANIFESTS / name).read_text()) if d]
    (so,) = [d for d in docs if d["kind"] == "ScaledObject"]
    data = SECRETS if secrets is None else secrets
    return ScaledObjectSpec.from_manifest(so, env={}, auths=trigger_authentications(docs),
                                          secret=data.get, source=name, **kwargs)


def _so(*, min_r: int | None = None, max_r: int | None = 10, idle: int | None = None,
        cooldown: int = 300, triggers: list[dict[str, Any]] | None = None) -> ScaledObjectSpec:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"name": "name"}, "cooldownPeriod": cooldown,
        "triggers": triggers or [{"type": "rabbitmq", "metadata": {
            "queueName": "q", "hostFromEnv": "RABBITMQ_MGMT_URL", "mode": "QueueLength",
            "value": "5"}}]}
    if min_r is not None:
        spec["minReplicaCount"] = min_r
    if max_r is not None:
        spec["maxReplicaCount"] = max_r
    if idle is not None:
        spec["idleReplicaCount"] = idle
    doc = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
           "metadata": {"name": "name", "namespace": "namespace"}, "spec": spec}
    return ScaledObjectSpec.from_manifest(doc, env=ENV)


def _reading(active: bool, error: str | None = None) -> list[TriggerReading]:
    return [TriggerReading(index=0, value_milli=None if error else (9000 if active else 0),
                           active=active, error=error)]


# scale_scaledobjects_test.go: (test name, min, idle, current, active, expected replicas,
# expected Active condition status)
EXECUTOR_CASES = [
    ("TestScaleToMinReplicasWhenNotActive", 0, None, 10, False, 0, "False"),
    ("TestScaleToMinReplicasFromLowerInitialReplicaCount", 5, None, 1, False, 5, "False"),
    ("TestScaleFromMinReplicasWhenActive", 0, None, 0, True, 1, "True"),
    ("TestScaleToIdleReplicasWhenNotActive", 5, 0, 10, False, 0, "False"),
    ("TestScaleFromIdleToMinReplicasWhenActive", 5, 0, 0, True, 5, "True"),
    ("TestEventWitTriggerInfo", 5, 0, 2, True, 5, "True"),
]


@pytest.mark.parametrize(("name", "min_r", "idle", "current", "active", "expected", "cond"),
                         EXECUTOR_CASES, ids=[c[0] for c in EXECUTOR_CASES])
def test_executor_upstream_cases(name: str, min_r: int, idle: int | None, current: int,
                                 active: bool, expected: int, cond: str) -> None:
    spec = _so(min_r=min_r, idle=idle)
    # A fresh object (no lastActiveTime, created before now): initialCooldownPeriod 0.
    action, state = activate(spec, now=100.0, current_replicas=current,
                             readings=_reading(active), state=KedaState(created=0.0))
    assert action.desired_replicas == expected
    assert state.active == cond
    if active:
        assert state.active_reason == "ScalerActive"
        assert state.last_active_time == 100.0  # "assert.NotNil(t, result.LastActiveTime)"
    if name == "TestEventWitTriggerInfo":
        assert action.reason == ("KEDAScaleTargetActivated: Scaled Deployment namespace/name "
                                 "from 2 to 5, triggered by s0-rabbitmq-q")


def test_cooldown_is_respected() -> None:
    """scaleToZeroOrIdle: no scale-in until lastActiveTime + cooldownPeriod has passed."""
    spec = _so(min_r=0, cooldown=30)
    _, state = activate(spec, now=10.0, current_replicas=3, readings=_reading(True),
                        state=KedaState(created=0.0))
    action, state = activate(spec, now=39.0, current_replicas=3, readings=_reading(False),
                             state=state)
    assert action.desired_replicas is None
    assert (state.active, state.active_reason) == ("False", "ScalerCooldown")
    action, state = activate(spec, now=40.5, current_replicas=3, readings=_reading(False),
                             state=state)
    assert action.desired_replicas == 0
    assert action.reason.startswith("KEDAScaleTargetDeactivated")


def test_active_with_replicas_leaves_scaling_to_hpa() -> None:
    action, _ = activate(_so(min_r=0), now=1.0, current_replicas=3, readings=_reading(True),
                         state=KedaState(created=0.0))
    assert action.desired_replicas is None and action.active


def test_trigger_error_never_scales_in() -> None:
    """RequestScale: inactive + error (no fallback) -> Ready False / TriggerError, no scale."""
    spec = _so(min_r=0, cooldown=0)
    action, state = activate(spec, now=1000.0, current_replicas=3,
                             readings=_reading(False, error="boom"), state=KedaState(created=0))
    assert action.desired_replicas is None and action.error
    assert (state.ready, state.ready_reason) == ("False", "TriggerError")


def test_cpu_only_is_always_active() -> None:
    """scale_handler.go getScaledObjectState: only cpu/memory triggers -> active."""
    spec = _so(min_r=1, triggers=[{"type": "cpu", "metricType": "Utilization",
                                   "metadata": {"value": "50"}}])
    action, state = activate(spec, now=1.0, current_replicas=0, readings=[],
                             state=KedaState(created=0.0))
    assert action.active and action.desired_replicas == 1 and state.active == "True"


def test_generated_hpa_for_hybrid() -> None:
    """controllers/keda/hpa.go newHPAForScaledObject, as the one replica calculation."""
    so = _shipped("keda-hybrid.yaml")
    doc = next(d for d in yaml.safe_load_all((SCALING_MANIFESTS / "keda-hybrid.yaml")
                                             .read_text()) if d["kind"] == "ScaledObject")
    hpa = so.hpa_manifest()
    assert hpa["metadata"]["name"] == "keda-hpa-agent"
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 4
    assert hpa["spec"]["behavior"] == doc["spec"]["advanced"]["horizontalPodAutoscalerConfig"][
        "behavior"]
    cpu, ext = hpa["spec"]["metrics"]
    assert cpu == {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 50}}}
    assert ext["external"]["metric"]["name"] == "s1-rabbitmq-agent-tasks"
    assert ext["external"]["target"] == {"type": "AverageValue", "averageValue": "5000m"}
    kubernetes_validate.validate(hpa, "1.30", strict=True)  # a valid autoscaling/v2 object
    spec = HPASpec.from_manifest(hpa, source="generated")
    assert [m.key for m in spec.metrics] == ["resource/cpu", "external/s1-rabbitmq-agent-tasks"]
    assert spec.metrics[1].target.average_value_milli == 5000


def _value_so(value: str) -> dict[str, Any]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "so", "namespace": "scalelab"},
            "spec": {"scaleTargetRef": {"name": "agent"}, "triggers": [{
                "type": "rabbitmq", "metadata": {"queueName": "q", "host": "http://h:15672/",
                                                 "mode": "QueueLength", "value": value}}]}}


@pytest.mark.parametrize(("value", "target"), [
    ("5", "5000m"), ("3.0005", "3001m"), ("0.0625", "62m"), ("1e16", f"{10**19}m"),
    ("NaN", "0m"), ("Inf", "0m"), ("-5", "0m"),
])
def test_generated_hpa_target_is_quantity_from_float64(value: str, target: str) -> None:
    """rabbitmq_scaler.go GetMetricSpecForScaling -> scaler.go GetMetricTargetMili ->
    quantityFromFloat64: 3 decimals, Go-rounded; NaN, Inf and negatives become 0 (which the
    HPA parser then refuses, as the API server refuses KEDA's HPA)."""
    hpa = ScaledObjectSpec.from_manifest(_value_so(value), env={}).hpa_manifest()
    assert hpa["spec"]["metrics"][0]["external"]["target"] == {"type": "AverageValue",
                                                               "averageValue": target}
    if target == "0m":
        with pytest.raises(ConfigError, match="greater than zero"):
            HPASpec.from_manifest(hpa, source="generated")
    else:
        assert HPASpec.from_manifest(hpa, source="generated").metrics[0].target \
            .average_value_milli == int(target[:-1])


@pytest.mark.parametrize(("rate", "target", "tolerance", "milli", "replicas"), [
    # KEDA serves 2.0004 as 2.000 (2000m, %.3f), twice the 1000m target on one pod -> 2.
    # Rounding the float up to a milli instead (2001m) would make it 3.
    (2.0004, "1", 0.1, 2000, 2),
    # 1.2345 is 1.234499999...: 1234m against the 1234m target is a ratio of exactly 1, so
    # even with no tolerance nothing moves; 1235m would scale to 2.
    (1.2345, "1.234", 0.0, 1234, 1),
])
def test_scaler_value_reaches_the_hpa_as_integer_milli(rate: float, target: str,
                                                       tolerance: float, milli: int,
                                                       replicas: int) -> None:
    """The metric KEDA serves is a resource.Quantity (scaler.go GenerateMetricInMili ->
    quantityFromFloat64) that the HPA reads as MilliValue(): the scaler's value travels as
    an integer milli-quantity to the generated HPA's computation, never through a float."""
    doc = _value_so(target)
    doc["spec"]["triggers"][0]["metadata"]["mode"] = "MessageRate"
    so = ScaledObjectSpec.from_manifest(doc, env={})
    (trig,) = so.triggers
    assert isinstance(trig, EventTrigger)
    res = rmq.compute(trig.metadata, rmq.QueueStatus(messages=0, publish_rate=rate))
    assert res.value_milli == milli and isinstance(res.value_milli, int)
    hpa = HPASpec.from_manifest(so.hpa_manifest(), source="generated")
    inputs = HPAInputs(now=100.0, spec_replicas=1, status_replicas=1,
                       external_metrics_milli={trig.metric_name: [res.value_milli]})
    d, _ = reconcile(hpa, inputs, HPAState(recommendations=()),
                     HPAControllerSettings(tolerance=tolerance))
    assert d.metric_statuses[0].average_value_milli == milli
    assert d.desired_replicas == replicas


@pytest.mark.parametrize("value", ["NaN", "-Inf", "-5", "0.0004"])
def test_a_value_whose_target_is_zero_fails_offline(tmp_path: Path, value: str) -> None:
    """Refused by ``validate_scaling`` with the key to fix, before anything starts."""
    path = tmp_path / "so.yaml"
    path.write_text(yaml.safe_dump(_value_so(value)))
    with pytest.raises(ConfigError, match="must be positive") as err:
        validate_scaling(path)
    assert err.value.field == "spec.triggers[0].metadata.value" and err.value.fix
    path.write_text(yaml.safe_dump(_value_so("0.0005")))  # a 1m target: positive
    assert [o.ref for o in validate_scaling(path)] == ["ScaledObject/so"]


def test_generated_hpa_min_is_at_least_one() -> None:
    """scaledobject_types.go GetHPAMinReplicas: minReplicaCount 0 -> HPA minReplicas 1."""
    so = _shipped("keda-queue-zero.yaml")
    assert so.hpa_manifest()["spec"]["minReplicas"] == 1
    assert so.polling_interval == 5 and so.cooldown_period == 30


def test_defaults() -> None:
    so = _so(max_r=None)
    assert (so.polling_interval, so.cooldown_period, so.effective_min, so.max_replicas) == (
        30, 300, 0, 100)
    assert so.hpa_name == "keda-hpa-name"


def test_from_manifest_needs_the_env() -> None:
    """hostFromEnv still works: the env var must be set in the target's container."""
    assert _so().triggers  # parses with ENV
    with pytest.raises(ConfigError, match="RABBITMQ_MGMT_URL") as err:
        ScaledObjectSpec.from_manifest({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "so"},
            "spec": {"scaleTargetRef": {"name": "agent"}, "triggers": [{
                "type": "rabbitmq", "metadata": {"queueName": "q", "mode": "QueueLength",
                                                 "hostFromEnv": "RABBITMQ_MGMT_URL",
                                                 "value": "5"}}]}}, env={})
    assert err.value.field == "spec.triggers[0].metadata.hostFromEnv"


def test_host_comes_from_the_secret_through_the_trigger_authentication() -> None:
    """scale_resolvers.go ResolveAuthRef: authenticationRef -> TriggerAuthentication ->
    secretTargetRef -> the Secret's key, as the rabbitmq scaler's ``host`` (authParams)."""
    for name in ("keda-queue.yaml", "keda-queue-zero.yaml", "keda-hybrid.yaml"):
        (trigger,) = [t for t in _shipped(name).triggers if hasattr(t, "metadata")]
        assert trigger.metadata.host == "http://run:s3cret@rabbitmq:15672", name


def test_a_missing_secret_or_key_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as err:
        _shipped("keda-queue.yaml", secrets={})
    assert f"Secret {SECRET_NAME!r} does not exist" in str(err.value)
    assert err.value.field == "spec.secretTargetRef[0]" and err.value.fix
    with pytest.raises(ConfigError, match=f"has no key {MANAGEMENT_URL_KEY!r}"):
        _shipped("keda-queue.yaml", secrets={SECRET_NAME: {"password": "x"}})


def _so_with(auth: dict[str, Any], *, ref: dict[str, Any] | None = None,
             env: dict[str, str] | None = None) -> ScaledObjectSpec:
    ta = {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
          "metadata": {"name": "ta"}, "spec": auth}
    so = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "so"},
          "spec": {"scaleTargetRef": {"name": "agent"}, "triggers": [{
              "type": "rabbitmq", "authenticationRef": ref or {"name": "ta"},
              "metadata": {"queueName": "q", "protocol": "http", "mode": "QueueLength",
                           "value": "5"}}]}}
    return ScaledObjectSpec.from_manifest(so, env=env or {}, secret=SECRETS.get,
                                          auths=trigger_authentications([ta, so]))


def test_trigger_authentication_sources() -> None:
    """env entries read the target container's env; other sources are refused by name."""
    (t,) = _so_with({"env": [{"parameter": "host", "name": "MGMT"}]},
                    env={"MGMT": "http://e:e@h:15672"}).triggers
    assert t.metadata.host == "http://e:e@h:15672"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="hashiCorpVault is not emulated") as err:
        _so_with({"hashiCorpVault": {"address": "http://vault"}})
    assert err.value.field == "spec.hashiCorpVault"
    with pytest.raises(ConfigError, match="not in this file") as err:
        _so_with({}, ref={"name": "other"})
    assert err.value.field == "spec.triggers[0].authenticationRef.name"
    with pytest.raises(ConfigError, match="ClusterTriggerAuthentication is not emulated"):
        _so_with({}, ref={"name": "ta", "kind": "ClusterTriggerAuthentication"})


# -- properties ---------------------------------------------------------------------------

@st.composite
def specs(draw: st.DrawFn) -> ScaledObjectSpec:
    min_r = draw(st.integers(0, 5))
    max_r = draw(st.integers(max(min_r, 1), 8))
    idle = draw(st.one_of(st.none(), st.integers(0, min_r - 1))) if min_r >= 1 else None
    return _so(min_r=min_r, max_r=max_r, idle=idle, cooldown=draw(st.integers(0, 60)))


@settings(max_examples=200, deadline=None)
@given(spec=specs(), start=st.integers(0, 8),
       polls=st.lists(st.tuples(st.floats(0.5, 20), st.booleans(), st.booleans()),
                      min_size=1, max_size=30))
def test_activation_never_leaves_bounds(spec: ScaledObjectSpec, start: int,
                                        polls: list[tuple[float, bool, bool]]) -> None:
    """Whatever KEDA itself writes lies in [idle-or-min, max]."""
    lower = spec.idle_replicas if spec.idle_replicas is not None else spec.effective_min
    current, now, state = min(start, spec.max_replicas), 0.0, KedaState(created=0.0)
    for dt, active, err in polls:
        now += dt
        action, state = activate(spec, now=now, current_replicas=current,
                                 readings=_reading(active, "e" if err else None), state=state)
        if action.desired_replicas is not None:
            assert lower <= action.desired_replicas <= spec.max_replicas
            current = action.desired_replicas


@settings(max_examples=200, deadline=None)
@given(spec=specs(), start=st.integers(0, 8), active_polls=st.integers(0, 5))
def test_inactivity_returns_to_idle_or_min(spec: ScaledObjectSpec, start: int,
                                           active_polls: int) -> None:
    """After cooldownPeriod without activity the target sits at idle/min (scale to zero or
    idle), or - with min >= 1 and no idle - at least at min (the rest is the HPA's job)."""
    current, now, state = min(start, spec.max_replicas), 0.0, KedaState(created=0.0)
    for _ in range(active_polls):
        now += 5
        action, state = activate(spec, now=now, current_replicas=current,
                                 readings=_reading(True), state=state)
        current = action.desired_replicas if action.desired_replicas is not None else current
    end = now + spec.cooldown_period + 10
    while now < end:
        now += 5
        action, state = activate(spec, now=now, current_replicas=current,
                                 readings=_reading(False), state=state)
        current = action.desired_replicas if action.desired_replicas is not None else current
    if spec.idle_replicas is not None:
        if active_polls == 0 and start < spec.idle_replicas:
            # RequestScale only scales *in* to idle (current > idle); a target someone put
            # below idle stays there until a trigger activates it.
            assert current == start
        else:
            assert current == spec.idle_replicas
    elif spec.effective_min == 0:
        assert current == 0
    else:
        assert current >= spec.effective_min
        if start <= spec.effective_min:
            assert current == spec.effective_min
