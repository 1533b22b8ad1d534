"""KEDA emulation: ScaledObject defaults, trigger parsing, activation, and the generated HPA.

Follows kedacore/keda (cited per function; never copied):

* ``apis/keda/v1alpha1/scaledobject_types.go`` - defaults and ``GetHPAMinReplicas``;
* ``pkg/scaling/executor/scale_scaledobjects.go`` - ``RequestScale``: KEDA moves the
  target between 0/idle and ``max(min, 1)`` itself, everything in between is the HPA's;
* ``pkg/scaling/scale_handler.go`` - ``checkScalers``/``getScaledObjectState``: a
  ScaledObject is active when any trigger is active; errors count as inactive;
* ``controllers/keda/hpa.go`` - ``newHPAForScaledObject``: the HPA KEDA creates
  (``keda-hpa-<name>``, External AverageValue per event trigger, Resource per cpu trigger,
  behavior copied from ``advanced.horizontalPodAutoscalerConfig``);
* ``pkg/scalers/cpu_memory_scaler.go`` - the cpu/memory trigger metadata;
* ``pkg/scaling/resolver/scale_resolvers.go`` - ``ResolveAuthRef``: a trigger's
  ``authenticationRef`` names a TriggerAuthentication in the ScaledObject's namespace whose
  ``env`` (the target container's env) and ``secretTargetRef`` (a Secret's key) entries
  become the scaler's authParams (``auth_params``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scalelab.control import rabbitmq_scaler as rmq
from scalelab.errors import ConfigError
from scalelab.scaling_object import ScalingObject, keda_hpa_name

# KEDA's defaults for fields a ScaledObject leaves out. They belong to the API, not to the
# operator's configuration (no flag changes them), so they stay constants here:
#: apis/keda/v1alpha1/withtriggers_types.go defaultPollingInterval (s)
DEFAULT_POLLING_INTERVAL = 30
#: pkg/scaling/executor/scale_executor.go defaultCooldownPeriod (s)
DEFAULT_COOLDOWN_PERIOD = 300
DEFAULT_MIN_REPLICAS = 0
#: apis/keda/v1alpha1/scaledobject_types.go defaultHPAMaxReplicas
DEFAULT_MAX_REPLICAS = 100
#: scaledobject_types.go defaultHPAMinReplicas
DEFAULT_HPA_MIN_REPLICAS = 1
RESOURCE_TRIGGERS = ("cpu", "memory")
SUPPORTED_TRIGGERS = ("cpu", "memory", "rabbitmq")
TRIGGER_AUTHENTICATION = "TriggerAuthentication"
#: The TriggerAuthentication sources the emulation resolves (others: not emulated).
SUPPORTED_AUTH_SOURCES = ("env", "secretTargetRef")

#: Secret name -> its data (None: no such Secret), as the emulated KEDA operator reads it.
SecretLookup = Callable[[str], Mapping[str, str] | None]


def _no_secrets(name: str) -> Mapping[str, str] | None:
    return None


def trigger_authentications(docs: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The TriggerAuthentication documents among ``docs``, by name."""
    return {str((d.get("metadata") or {}).get("name")): d for d in docs
            if d.get("kind") == TRIGGER_AUTHENTICATION}


def auth_params(trigger: Mapping[str, Any], *, index: int, scaled_object: str,
                auths: Mapping[str, Mapping[str, Any]], env: Mapping[str, str] | None,
                secret: SecretLookup | None, source: str) -> dict[str, str]:
    """A trigger's authParams from its ``authenticationRef`` (``ResolveAuthRef``).

    ``env``/``secret`` None is the offline check: every parameter resolves to "" (it is
    given; its value is known only when the loop runs). Where KEDA logs a missing
    TriggerAuthentication, Secret or key and leaves the parameter empty (the scaler then
    fails to build), the emulation stops with a ``ConfigError`` naming it, before
    anything runs. Only TriggerAuthentications from the same manifest file are seen.
    """
    ref = trigger.get("authenticationRef")
    if not ref:
        return {}
    at = f"spec.triggers[{index}].authenticationRef"
    kind = ref.get("kind") or TRIGGER_AUTHENTICATION
    if kind != TRIGGER_AUTHENTICATION:
        raise ConfigError(f"ScaledObject/{scaled_object}: authenticationRef kind {kind} is not "
                          "emulated by the local backend", file=source, field=f"{at}.kind",
                          fix="reference a TriggerAuthentication defined in the same file")
    name = str(ref.get("name", ""))
    doc = auths.get(name)
    if doc is None:
        raise ConfigError(
            f"ScaledObject/{scaled_object}: authenticationRef names TriggerAuthentication/{name}, "
            "which is not in this file", file=source, field=f"{at}.name",
            fix="add the TriggerAuthentication to the same file, as manifests/scaling/"
                "keda-queue.yaml does (or fix the name)")
    spec = doc.get("spec") or {}
    ta = f"TriggerAuthentication/{name}"
    unsupported = sorted(k for k, v in spec.items() if v and k not in SUPPORTED_AUTH_SOURCES
                         and not (k == "podIdentity" and (v or {}).get("provider") in
                                  (None, "", "none")))
    if unsupported:
        raise ConfigError(f"{ta}: spec.{unsupported[0]} is not emulated by the local backend",
                          file=source, field=f"spec.{unsupported[0]}",
                          fix="use secretTargetRef or env (or run on a real cluster)")
    params: dict[str, str] = {}
    for e in spec.get("env") or []:
        params[str(e["parameter"])] = "" if env is None else env.get(str(e["name"]), "")
    for i, e in enumerate(spec.get("secretTargetRef") or []):
        parameter, secret_name, key = str(e["parameter"]), str(e["name"]), str(e["key"])
        if secret is None:
            params[parameter] = ""
            continue
        data = secret(secret_name)
        if data is None or key not in data:
            missing = (f"Secret {secret_name!r} does not exist" if data is None
                       else f"Secret {secret_name!r} has no key {key!r}")
            raise ConfigError(f"{ta} (used by ScaledObject/{scaled_object}): {missing}",
                              file=source, field=f"spec.secretTargetRef[{i}]",
                              fix="reference the Secret the backend creates, "
                                  "rabbitmq-credentials (keys: scalelab/credentials.py)")
        params[parameter] = data[key]
    return params


@dataclass(frozen=True, kw_only=True)
class ResourceTrigger:
    """A cpu/memory trigger (cpu_memory_scaler.go): a Resource metric in the generated HPA."""

    index: int
    resource: str            # cpu | memory
    metric_type: str         # Utilization | AverageValue
    value: str               # the target: a percentage or a quantity
    container_name: str = ""


def parse_resource_trigger(trigger: Mapping[str, Any], index: int) -> ResourceTrigger:
    """cpu_memory_scaler.go ``parseResourceMetadata``: metricType (or deprecated
    ``metadata.type``) must be Utilization or AverageValue, ``value`` is required."""
    meta = trigger.get("metadata") or {}
    kind = trigger["type"]
    mtype = trigger.get("metricType") or meta.get("type") or ""
    if trigger.get("metricType") and meta.get("type"):
        raise rmq.ScalerError("only one of trigger.metadata.type or trigger.metricType should be "
                              "defined", param="type")
    if mtype not in ("Utilization", "AverageValue"):
        raise rmq.ScalerError(f"unknown metric type: {mtype or '(empty)'}, allowed values are "
                              "'Utilization' or 'AverageValue'", param="metricType")
    value = meta.get("value")
    if not value:
        raise rmq.ScalerError("no value given", param="value")
    if mtype == "Utilization":
        try:
            int(value)
        except ValueError:
            raise rmq.ScalerError(f"invalid utilization value {value!r}: must be an integer "
                                  "percentage", param="value") from None
    return ResourceTrigger(index=index, resource=kind, metric_type=mtype, value=str(value),
                           container_name=meta.get("containerName", ""))


def check_triggers(obj: ScalingObject, *, objects: Sequence[ScalingObject] = ()) -> None:
    """Parse every trigger offline (no env, no Secret): KEDA reports these as ScaledObject
    Ready=False. ``objects`` are the file's other objects (its TriggerAuthentications).

    Raises ``ConfigError`` naming the metadata key, so bad triggers fail before a run.
    """
    auths = trigger_authentications([o.doc for o in objects])
    for i, trig in enumerate(obj.doc["spec"].get("triggers") or []):
        kind = trig.get("type")
        at = f"spec.triggers[{i}]"
        try:
            if kind in RESOURCE_TRIGGERS:
                parse_resource_trigger(trig, i)
            elif kind == "rabbitmq":
                auth = auth_params(trig, index=i, scaled_object=obj.name, auths=auths, env=None,
                                   secret=None, source=str(obj.source))
                meta = rmq.parse_metadata(trig.get("metadata") or {}, resolved_env=None,
                                          auth_params=auth, trigger_index=i,
                                          metric_type=trig.get("metricType"))
                rmq.check_target(meta, metadata=trig.get("metadata") or {})
            else:
                raise ConfigError(
                    f"{obj.ref}: trigger type {kind!r} is not emulated by the local backend",
                    file=str(obj.source), field=f"{at}.type",
                    fix=f"use one of {', '.join(SUPPORTED_TRIGGERS)} (or run on a real cluster)")
        except rmq.ScalerError as err:
            where = f"{at}.metadata.{err.param}" if err.param else f"{at}.metadata"
            if err.param == "metricType":
                where = f"{at}.metricType"
            raise ConfigError(f"{obj.ref}: {kind} trigger: {err}", file=str(obj.source),
                              field=where, fix="see https://keda.sh/docs/latest/scalers/"
                              f"{'rabbitmq-queue' if kind == 'rabbitmq' else kind}/") from None


# -- the ScaledObject -----------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class EventTrigger:
    """A rabbitmq trigger: an External metric in the generated HPA, polled for activity."""

    index: int
    name: str                      # trigger.name or "" (status key falls back to the metric)
    metadata: rmq.RabbitMQMetadata

    @property
    def metric_name(self) -> str:
        return self.metadata.metric_name

    @property
    def scaler(self) -> str:
        """The ``scaler`` label KEDA's Prometheus metrics carry (``<type>Scaler``)."""
        return "rabbitMQScaler"


Trigger = EventTrigger | ResourceTrigger


@dataclass(frozen=True, kw_only=True)
class ScaledObjectSpec:
    """A ScaledObject with KEDA's defaults applied (scaledobject_types.go)."""

    name: str
    namespace: str
    target: str
    polling_interval: float
    cooldown_period: float
    initial_cooldown_period: float
    min_replicas: int | None       # None: unset (KEDA treats it as 0)
    max_replicas: int
    idle_replicas: int | None
    triggers: tuple[Trigger, ...]
    behavior: Mapping[str, Any] | None
    hpa_name: str
    source: str = "<manifest>"

    @property
    def object_ref(self) -> str:
        return f"ScaledObject/{self.name}"

    @property
    def effective_min(self) -> int:
        return self.min_replicas or 0

    @property
    def hpa_min_replicas(self) -> int:
        """``GetHPAMinReplicas``: minReplicaCount when > 0, else 1."""
        return self.min_replicas if self.min_replicas and self.min_replicas > 0 \
            else DEFAULT_HPA_MIN_REPLICAS

    @property
    def only_resource_triggers(self) -> bool:
        return all(isinstance(t, ResourceTrigger) for t in self.triggers)

    @classmethod
    def from_manifest(cls, doc: Mapping[str, Any], *, env: Mapping[str, str],
                      auths: Mapping[str, Mapping[str, Any]] | None = None,
                      secret: SecretLookup = _no_secrets,
                      source: str = "<manifest>", namespace: str = "default") -> ScaledObjectSpec:
        """Parse with the target container's env resolved (``hostFromEnv``) and each
        trigger's ``authenticationRef`` resolved through ``auths`` (TriggerAuthentication
        documents by name) and ``secret`` (``auth_params``).

        The document is assumed to have passed ``scalelab.scaling_manifests.validate_scaling``;
        remaining errors (e.g. the env var or the Secret is missing) raise ``ConfigError``.
        """
        spec = doc["spec"]
        meta = doc.get("metadata", {})
        name = meta["name"]
        triggers: list[Trigger] = []
        for i, t in enumerate(spec["triggers"]):
            try:
                if t["type"] in RESOURCE_TRIGGERS:
                    triggers.append(parse_resource_trigger(t, i))
                elif t["type"] == "rabbitmq":
                    auth = auth_params(t, index=i, scaled_object=name, auths=auths or {},
                                       env=env, secret=secret, source=source)
                    triggers.append(EventTrigger(index=i, name=t.get("name", ""),
                                                 metadata=rmq.parse_metadata(
                                                     t.get("metadata") or {}, resolved_env=env,
                                                     auth_params=auth, trigger_index=i,
                                                     metric_type=t.get("metricType"))))
                else:
                    raise rmq.ScalerError(f"no scaler found for type: {t['type']}", param=None)
            except rmq.ScalerError as err:
                at = f"spec.triggers[{i}].metadata" + (f".{err.param}" if err.param else "")
                raise ConfigError(f"ScaledObject/{name}: {err}", file=source, field=at,
                                  fix="set the env var in the target's container or fix the "
                                  "trigger metadata") from None
        hpa_cfg = (spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}
        return cls(
            name=name, namespace=meta.get("namespace", namespace),
            target=spec["scaleTargetRef"]["name"],
            polling_interval=float(spec.get("pollingInterval", DEFAULT_POLLING_INTERVAL)),
            cooldown_period=float(spec.get("cooldownPeriod", DEFAULT_COOLDOWN_PERIOD)),
            initial_cooldown_period=float(spec.get("initialCooldownPeriod", 0)),
            min_replicas=spec.get("minReplicaCount"),
            max_replicas=int(spec.get("maxReplicaCount", DEFAULT_MAX_REPLICAS)),
            idle_replicas=spec.get("idleReplicaCount"),
            triggers=tuple(triggers), behavior=hpa_cfg.get("behavior"),
            hpa_name=keda_hpa_name(name, spec), source=source,
        )

    def hpa_manifest(self) -> dict[str, Any]:
        """The autoscaling/v2 HPA KEDA creates for this object (controllers/keda/hpa.go
        ``newHPAForScaledObject``; metric specs from each scaler's
        ``GetMetricSpecForScaling``, External targets via ``GetMetricTargetMili``)."""
        metrics: list[dict[str, Any]] = []
        for t in self.triggers:
            if isinstance(t, ResourceTrigger):
                target: dict[str, Any] = {"type": t.metric_type}
                if t.metric_type == "Utilization":
                    target["averageUtilization"] = int(t.value)
                else:
                    target["averageValue"] = t.value
                metrics.append({"type": "Resource",
                                "resource": {"name": t.resource, "target": target}})
            else:
                milli = f"{rmq.target_milli(t.metadata)}m"  # quantityFromFloat64
                key = "averageValue" if t.metadata.metric_type == "AverageValue" else "value"
                metrics.append({"type": "External", "external": {
                    "metric": {"name": t.metric_name, "selector": {"matchLabels": {
                        "scaledobject.keda.sh/name": self.name}}},
                    "target": {"type": t.metadata.metric_type, key: milli}}})
        spec: dict[str, Any] = {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                               "name": self.target},
            "minReplicas": self.hpa_min_replicas, "maxReplicas": self.max_replicas,
            "metrics": metrics,
        }
        if self.behavior:
            spec["behavior"] = dict(self.behavior)
        return {
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": self.hpa_name, "namespace": self.namespace, "labels": {
                "app.kubernetes.io/managed-by": "keda-operator",
                "app.kubernetes.io/name": self.hpa_name,
                "app.kubernetes.io/part-of": self.name,
                "scaledobject.keda.sh/name": self.name}},
            "spec": spec,
        }


# -- activation (the KEDA operator's own scaling: 0/idle <-> min) -----------------------------

@dataclass(frozen=True, kw_only=True)
class TriggerReading:
    """One trigger's poll: the metric in milli-units as KEDA serves it (None on error),
    activity, error text."""

    index: int
    value_milli: int | None
    active: bool
    error: str | None = None

    @property
    def value(self) -> float | None:
        return None if self.value_milli is None else self.value_milli / 1000


@dataclass(frozen=True, kw_only=True)
class KedaState:
    """What KEDA keeps in ScaledObject.status between polls."""

    created: float                       # metadata.creationTimestamp
    last_active_time: float | None = None
    active: str = "Unknown"              # Active condition status
    active_reason: str = ""
    ready: str = "Unknown"               # Ready condition status
    ready_reason: str = ""

    def conditions(self) -> list[dict[str, str]]:
        return [{"type": "Ready", "status": self.ready, "reason": self.ready_reason},
                {"type": "Active", "status": self.active, "reason": self.active_reason}]


@dataclass(frozen=True, kw_only=True)
class KedaAction:
    """The outcome of one poll: ``desired_replicas`` None means "leave the scale alone"."""

    now: float
    current_replicas: int
    desired_replicas: int | None
    active: bool
    error: bool
    reason: str
    conditions: tuple[dict[str, str], ...] = ()


def _idle_or_min(spec: ScaledObjectSpec) -> tuple[bool, int]:
    """executor ``getIdleOrMinimumReplicaCount``."""
    if spec.idle_replicas is not None:
        return True, spec.idle_replicas
    return False, spec.effective_min


def activate(spec: ScaledObjectSpec, *, now: float, current_replicas: int,
             readings: Sequence[TriggerReading], state: KedaState
             ) -> tuple[KedaAction, KedaState]:
    """One KEDA poll for one ScaledObject: scale_handler.go ``getScaledObjectState`` (any
    active trigger makes the object active; only-cpu/memory objects are always active
    unless a scaler errs) followed by scale_scaledobjects.go ``RequestScale``. Pure."""
    active = any(r.active for r in readings)
    error = any(r.error is not None for r in readings)
    if spec.only_resource_triggers and not error:
        active = True
    out = _Poll(last_active=state.last_active_time, act=state.active,
                act_reason=state.active_reason, ready=state.ready,
                ready_reason=state.ready_reason)
    if not error:
        out.ready, out.ready_reason = "True", "ScaledObjectReady"
    if active:
        _when_active(spec, now, current_replicas, readings, error, out)
    else:
        _when_inactive(spec, now, current_replicas, state, error, out)
    desired = None if out.desired == current_replicas else out.desired
    # The Active condition (RequestScale's tail): only set when it disagrees, so the
    # ScalerCooldown reason set while inactive survives.
    if out.act == "Unknown" or (out.act == "True") != active:
        out.act, out.act_reason = ("True", "ScalerActive") if active else (
            "False", "ScalerNotActive")
    new_state = KedaState(created=state.created, last_active_time=out.last_active,
                          active=out.act, active_reason=out.act_reason, ready=out.ready,
                          ready_reason=out.ready_reason)
    action = KedaAction(now=now, current_replicas=current_replicas, desired_replicas=desired,
                        active=active, error=error, reason=out.reason,
                        conditions=tuple(new_state.conditions()))
    return action, new_state


@dataclass(kw_only=True)
class _Poll:
    """What one poll decides: the replicas to set (None: leave them), why, and the
    status it leaves (RequestScale's locals)."""

    last_active: float | None
    act: str
    act_reason: str
    ready: str
    ready_reason: str
    desired: int | None = None
    reason: str = ""


def _when_active(spec: ScaledObjectSpec, now: float, current: int,
                 readings: Sequence[TriggerReading], error: bool, out: _Poll) -> None:
    """``RequestScale`` for an active object: from 0 (or below min with an idle count) to
    ``max(min, 1)`` (scaleFromZeroOrIdle); above it the replicas are the HPA's."""
    if (spec.idle_replicas is not None and current < spec.effective_min) or current == 0:
        out.desired = spec.hpa_min_replicas
        out.last_active = now
        out.reason = (f"KEDAScaleTargetActivated: Scaled Deployment {spec.namespace}/"
                      f"{spec.target} from {current} to {out.desired}, triggered by "
                      + ";".join(_active_names(spec, readings)))
    elif error:
        out.ready, out.ready_reason = "Unknown", "PartialTriggerError"
        out.reason = "Some triggers defined in ScaledObject are not working correctly"
    else:
        out.last_active = now
        out.reason = "triggers active; replicas are the HPA's to set"


def _when_inactive(spec: ScaledObjectSpec, now: float, current: int, state: KedaState,
                   error: bool, out: _Poll) -> None:
    """``RequestScale`` for an inactive object: never on an error; to 0 / idle once the
    cooldown has passed (scaleToZeroOrIdle); up to min when below it."""
    min_r = spec.effective_min
    if error:
        out.ready, out.ready_reason = "False", "TriggerError"
        out.reason = "Triggers defined in ScaledObject are not working correctly"
    elif (spec.idle_replicas is not None and current > spec.idle_replicas) or \
            (current > 0 and min_r == 0):
        last = out.last_active
        cooled = (last is None and state.created + spec.initial_cooldown_period < now) or (
            last is not None and last + spec.cooldown_period < now)
        if cooled:
            idle, out.desired = _idle_or_min(spec)
            out.reason = (f"KEDAScaleTargetDeactivated: Deactivated Deployment "
                          f"{spec.namespace}/{spec.target} from {current} to {out.desired} "
                          f"({'idleReplicaCount' if idle else 'minReplicaCount'})")
            out.act, out.act_reason = "False", "ScalerNotActive"
        else:
            out.reason = "ScalerCooldown: Scaler cooling down because triggers are not active"
            out.act, out.act_reason = "False", "ScalerCooldown"
    elif current < min_r and spec.idle_replicas is None:
        out.desired = min_r
        out.reason = "Successfully set ScaleTarget replicas count to ScaledObject minReplicaCount"
    else:
        out.reason = "ScaleTarget no change"


def _active_names(spec: ScaledObjectSpec, readings: Sequence[TriggerReading]) -> list[str]:
    by_index = {t.index: t for t in spec.triggers}
    names = []
    for r in readings:
        if r.active:
            t = by_index.get(r.index)
            names.append(t.name or t.metric_name if isinstance(t, EventTrigger) else
                         f"s{r.index}-{t.resource if t else '?'}")
    return names or ["forced activation (cpu/memory triggers only)"]
