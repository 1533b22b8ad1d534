"""Load and validate the scaling manifests (HPA, KEDA ScaledObject, TriggerAuthentication).

Every backend applies the same files; the local backend feeds them to its emulated
controllers. Validation runs *before* anything starts and stands in for what a cluster
would refuse at ``kubectl apply`` time:

* HorizontalPodAutoscaler: the Kubernetes OpenAPI schema (kubernetes-validate, strict, so
  unknown fields fail as with ``kubectl apply --validate=strict``) plus the API server's
  semantic checks from kubernetes ``pkg/apis/autoscaling/validation/validation.go``.
* ScaledObject / TriggerAuthentication: KEDA 2.16's CRD schema from an installed package
  (``scalelab.crds``: cloudcoil-models-keda, no ``../shared`` needed) with unknown fields
  reported the way structural pruning with strict field validation reports them, plus
  the rules of KEDA's admission webhook
  (kedacore/keda ``apis/keda/v1alpha1/scaledobject_webhook.go``,
  ``scaledobject_types.go`` ``CheckReplicaCountBoundsAreValid``/``CheckFallbackValid``,
  ``scaletriggers_types.go`` ``ValidateTriggers``) and the trigger metadata parsing
  KEDA does when it builds the scalers (``scalelab.control.keda``).

Every problem is a ``ConfigError`` naming the file, the field (a JSON path such as
``spec.triggers[1].metadata.mode``) and a fix.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from scalelab import crds
from scalelab.control.keda import check_triggers
from scalelab.errors import ConfigError
from scalelab.scaling_object import ScalingObject
from scalelab.schema_errors import schema_error
from scalelab.settings import NAMESPACE

HPA = "HorizontalPodAutoscaler"
SCALED_OBJECT = "ScaledObject"
TRIGGER_AUTHENTICATION = "TriggerAuthentication"
KINDS = {HPA: "autoscaling/v2", SCALED_OBJECT: "keda.sh/v1alpha1",
         TRIGGER_AUTHENTICATION: "keda.sh/v1alpha1"}

#: The Kubernetes version whose schemas (shipped by kubernetes-validate) HPAs are checked
#: against; autoscaling/v2 has been stable since 1.23, 1.30 is what kind ships by default.
KUBERNETES_VERSION = "1.30"

#: KEDA defaults (kedacore/keda ``apis/keda/v1alpha1/scaledobject_types.go`` and
#: ``controllers/keda/scaledobject_controller.go``).
KEDA_DEFAULT_POLLING_INTERVAL = 30
KEDA_DEFAULT_COOLDOWN_PERIOD = 300
KEDA_DEFAULT_MIN_REPLICAS = 0
KEDA_DEFAULT_MAX_REPLICAS = 100
#: autoscaling/v2 ``minReplicas`` default (kubernetes ``pkg/apis/autoscaling/v2/defaults.go``).
HPA_DEFAULT_MIN_REPLICAS = 1


# -- loading ------------------------------------------------------------------------------

def _read_docs(path: Path) -> list[dict[str, Any]]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read scaling manifest: {exc}", file=str(path),
                          fix="pass an existing file, e.g. manifests/scaling/hpa-cpu.yaml") from exc
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=str(path),
                          fix="fix the YAML syntax (indentation, quoting)") from exc
    if not docs:
        raise ConfigError("no documents in the file", file=str(path),
                          fix="add an HPA or a ScaledObject")
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            raise ConfigError(f"document {i} is a {type(d).__name__}, not a mapping",
                              file=str(path), fix="each YAML document must be a Kubernetes object")
    return docs


def _object(doc: dict[str, Any], *, source: Path, namespace: str) -> ScalingObject:
    file = str(source)
    kind = doc.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"unsupported kind {kind!r}", file=file, field="kind",
                          fix=f"use one of {', '.join(KINDS)}")
    if doc.get("apiVersion") != KINDS[kind]:
        raise ConfigError(f"apiVersion {doc.get('apiVersion')!r} is not served for {kind}",
                          file=file, field="apiVersion", fix=f"use apiVersion: {KINDS[kind]}")
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{kind} without a name", file=file, field="metadata.name",
                          fix="set metadata.name")
    ns = meta.get("namespace", namespace) if isinstance(meta, dict) else namespace
    if ns != namespace:
        raise ConfigError(f"{kind}/{name} is in namespace {ns!r} but the stack runs in "
                          f"{namespace!r}", file=file, field="metadata.namespace",
                          fix=f"set metadata.namespace: {namespace} or remove it")
    raw_spec = doc.get("spec")
    spec: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else {}
    target: str | None = None
    lo: int | None = None
    hi: int | None = None
    if kind != TRIGGER_AUTHENTICATION:
        ref = spec.get("scaleTargetRef")
        target = ref.get("name") if isinstance(ref, dict) else None
        if kind == HPA:
            lo = spec.get("minReplicas", HPA_DEFAULT_MIN_REPLICAS)
            hi = spec.get("maxReplicas")
        else:
            lo = spec.get("minReplicaCount", KEDA_DEFAULT_MIN_REPLICAS)
            hi = spec.get("maxReplicaCount", KEDA_DEFAULT_MAX_REPLICAS)
    return ScalingObject(kind=kind, name=name, namespace=ns, target=target,
                         min_replicas=lo, max_replicas=hi, doc=doc, source=Path(source))


def load_scaling(path: Path, *, namespace: str = NAMESPACE) -> list[ScalingObject]:
    """Parse a multi-document scaling manifest (no schema validation: see ``validate_scaling``)."""
    return [_object(d, source=Path(path), namespace=namespace) for d in _read_docs(Path(path))]


# -- schema validation --------------------------------------------------------------------

#: The first schema with ``behavior.scaleUp/scaleDown.tolerance`` (KEP-4951, alpha, feature
#: gate HPAConfigurableTolerance).
TOLERANCE_VERSION = "1.33"


def _validate_hpa(obj: ScalingObject) -> None:
    behavior = (obj.doc.get("spec") or {}).get("behavior") or {}
    tolerant = any(isinstance(behavior.get(d), dict) and "tolerance" in behavior[d]
                   for d in ("scaleUp", "scaleDown"))
    version = TOLERANCE_VERSION if tolerant else KUBERNETES_VERSION
    if tolerant:
        warnings.warn(
            f"{obj.source}: {obj.kind}/{obj.name} sets behavior tolerance, which a cluster "
            f"honours only from Kubernetes {TOLERANCE_VERSION} with the feature gate "
            "HPAConfigurableTolerance (the local emulation always does); checked against "
            f"the {TOLERANCE_VERSION} schema", UserWarning, stacklevel=3)
    try:
        kubernetes_validate.validate(obj.doc, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        raise schema_error(err, file=str(obj.source), kind=obj.kind, name=obj.name) from None


def _validate_crd(obj: ScalingObject) -> None:
    """The pinned KEDA release's CRD schema, strict (``scalelab.crds``)."""
    crds.validate_resource(obj.doc, file=obj.source, name=obj.name)


# -- semantic rules -----------------------------------------------------------------------

def _fail(obj: ScalingObject, field_: str, message: str, fix: str) -> ConfigError:
    return ConfigError(f"{obj.ref}: {message}", file=str(obj.source), field=field_, fix=fix)


def _check_behavior(obj: ScalingObject, behavior: Any, at: str) -> None:
    """kubernetes validation.go validateBehavior: window 0..3600 s, period 1..1800 s, value > 0."""
    if not isinstance(behavior, dict):
        return
    for direction in ("scaleUp", "scaleDown"):
        rules = behavior.get(direction)
        if not isinstance(rules, dict):
            continue
        here = f"{at}.{direction}"
        window = rules.get("stabilizationWindowSeconds")
        if window is not None and not 0 <= window <= 3600:
            raise _fail(obj, f"{here}.stabilizationWindowSeconds",
                        f"must be between 0 and 3600, got {window}", "use 0..3600 seconds")
        select = rules.get("selectPolicy")
        if select is not None and select not in ("Max", "Min", "Disabled"):
            raise _fail(obj, f"{here}.selectPolicy", f"unsupported value {select!r}",
                        "use Max, Min or Disabled")
        for i, pol in enumerate(rules.get("policies") or []):
            if pol.get("type") not in ("Pods", "Percent"):
                raise _fail(obj, f"{here}.policies[{i}].type",
                            f"unsupported policy type {pol.get('type')!r}", "use Pods or Percent")
            if not 0 < pol.get("periodSeconds", 0) <= 1800:
                raise _fail(obj, f"{here}.policies[{i}].periodSeconds",
                            f"must be in 1..1800, got {pol.get('periodSeconds')}",
                            "use a period between 1 and 1800 seconds")
            if pol.get("value", 0) <= 0:
                raise _fail(obj, f"{here}.policies[{i}].value",
                            f"must be greater than 0, got {pol.get('value')}",
                            "use a positive number of pods or percent")


def _check_hpa(obj: ScalingObject) -> None:
    """Semantic checks of kubernetes ``pkg/apis/autoscaling/validation/validation.go``."""
    spec = obj.doc["spec"]
    lo, hi = obj.min_replicas or 0, obj.max_replicas or 0
    if lo < 1:
        raise _fail(obj, "spec.minReplicas", f"must be at least 1, got {lo} (scale to zero "
                    "needs the HPAScaleToZero alpha gate)", "use minReplicas >= 1, or KEDA")
    if hi < lo:
        raise _fail(obj, "spec.maxReplicas", f"must be >= minReplicas ({lo}), got {hi}",
                    "raise maxReplicas or lower minReplicas")
    for i, metric in enumerate(spec.get("metrics") or []):
        source = metric.get(_metric_key(metric.get("type", "")), {})
        target = source.get("target", {}) if isinstance(source, dict) else {}
        kind = target.get("type")
        field_ = {"Utilization": "averageUtilization", "AverageValue": "averageValue",
                  "Value": "value"}.get(kind or "")
        at = f"spec.metrics[{i}].{_metric_key(metric.get('type', ''))}.target"
        if field_ is None:
            raise _fail(obj, f"{at}.type", f"unsupported target type {kind!r}",
                        "use Utilization, AverageValue or Value")
        if target.get(field_) is None:
            raise _fail(obj, f"{at}.{field_}", f"target type {kind} needs {field_}",
                        f"set {field_}")
        if kind == "Utilization" and target[field_] <= 0:
            raise _fail(obj, f"{at}.{field_}", "must be greater than 0",
                        "use a positive percentage of the request, e.g. 50")
    _check_behavior(obj, spec.get("behavior"), "spec.behavior")


def _metric_key(metric_type: str) -> str:
    return {"Resource": "resource", "Pods": "pods", "Object": "object", "External": "external",
            "ContainerResource": "containerResource"}.get(metric_type, metric_type.lower())


def _requests(workload: Mapping[str, Any], resource: str, container_name: str
              ) -> list[tuple[str, bool]]:
    containers = (workload.get("spec", {}).get("template", {}).get("spec", {})
                  .get("containers", []))
    out = []
    for c in containers:
        if container_name and c.get("name") != container_name:
            continue
        res = c.get("resources") or {}
        has = resource in (res.get("requests") or {}) or resource in (res.get("limits") or {})
        out.append((c.get("name", "?"), has))
    return out


def _check_scaled_object(obj: ScalingObject, workloads: Mapping[str, Mapping[str, Any]] | None,
                         objects: Sequence[ScalingObject] = ()) -> None:
    """KEDA admission webhook rules that need no cluster (plus the target's pod spec if given)."""
    spec = obj.doc["spec"]
    triggers = spec.get("triggers") or []
    _check_replica_bounds(obj, spec)
    _check_cpu_memory_triggers(obj, spec, triggers, workloads)
    _check_fallback(obj, spec, triggers)
    _check_trigger_list(obj, triggers)
    behavior = ((spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}
                ).get("behavior")
    _check_behavior(obj, behavior, "spec.advanced.horizontalPodAutoscalerConfig.behavior")
    # The scalers' own metadata parsing (KEDA reports these as ScaledObject Ready=False).
    check_triggers(obj, objects=objects)  # objects: the file's TriggerAuthentications


def _check_replica_bounds(obj: ScalingObject, spec: Mapping[str, Any]) -> None:
    """scaledobject_types.go CheckReplicaCountBoundsAreValid (minReplicaCount 0 counts as 1
    through GetHPAMinReplicas only when it is set and > 0)."""
    lo = spec.get("minReplicaCount")
    eff_min = 0 if lo is None else (lo if lo > 0 else 1)
    hi = obj.max_replicas or KEDA_DEFAULT_MAX_REPLICAS
    if eff_min > hi:
        raise _fail(obj, "spec.minReplicaCount",
                    f"MinReplicaCount={eff_min} must be less than MaxReplicaCount={hi}",
                    "lower minReplicaCount or raise maxReplicaCount")
    idle = spec.get("idleReplicaCount")
    if idle is not None and idle >= eff_min:
        raise _fail(obj, "spec.idleReplicaCount",
                    f"IdleReplicaCount={idle} must be less than MinReplicaCount={eff_min}",
                    "use idleReplicaCount 0 with minReplicaCount >= 1, or drop idleReplicaCount")


def _check_cpu_memory_triggers(obj: ScalingObject, spec: Mapping[str, Any],
                               triggers: Sequence[Mapping[str, Any]],
                               workloads: Mapping[str, Mapping[str, Any]] | None) -> None:
    """scaledobject_webhook.go verifyCPUMemoryScalers: no scale to zero on cpu/memory alone,
    and (given the target's pod spec) each container has the trigger's resource request."""
    types = [t.get("type") for t in triggers]
    if not any(t in ("cpu", "memory") for t in types):
        return
    if all(t in ("cpu", "memory") for t in types) and not spec.get("minReplicaCount"):
        raise _fail(obj, "spec.minReplicaCount",
                    "scaledobject has only cpu/memory triggers AND minReplica is 0 "
                    "(scale to zero doesn't work in this case)",
                    "set minReplicaCount >= 1 or add an event trigger such as rabbitmq")
    workload = (workloads or {}).get(obj.target or "")
    if workload is None:
        return
    for i, t in enumerate(triggers):
        if t.get("type") not in ("cpu", "memory"):
            continue
        cname = (t.get("metadata") or {}).get("containerName", "")
        for container, has in _requests(workload, t["type"], cname):
            if not has:
                raise _fail(
                    obj, f"spec.triggers[{i}]",
                    f"the scaledobject has a {t['type']} trigger but the container "
                    f"{container} doesn't have the {t['type']} request defined",
                    f"set resources.requests.{t['type']} on container {container} "
                    f"of Deployment {obj.target}")


def _check_fallback(obj: ScalingObject, spec: Mapping[str, Any],
                    triggers: Sequence[Mapping[str, Any]]) -> None:
    """scaledobject_types.go CheckFallbackValid."""
    if spec.get("fallback") is None:
        return
    for i, t in enumerate(triggers):
        if t.get("type") in ("cpu", "memory"):
            raise _fail(obj, "spec.fallback", f"type is {t['type']}, but fallback it is "
                        "not supported by the CPU & memory scalers",
                        "remove spec.fallback or the cpu/memory trigger")
        if t.get("metricType", "AverageValue") != "AverageValue":
            raise _fail(obj, f"spec.triggers[{i}].metricType",
                        f"MetricType={t.get('metricType')}, but Fallback can only be enabled "
                        "for triggers with metric of type AverageValue",
                        "use metricType AverageValue or remove spec.fallback")


def _check_trigger_list(obj: ScalingObject, triggers: Sequence[Mapping[str, Any]]) -> None:
    """scaletriggers_types.go ValidateTriggers: useCachedMetrics where supported, unique
    trigger names."""
    seen: set[str] = set()
    for i, t in enumerate(triggers):
        if t.get("useCachedMetrics") and t.get("type") in ("cpu", "memory", "cron"):
            raise _fail(obj, f"spec.triggers[{i}].useCachedMetrics",
                        f'property "useCachedMetrics" is not supported for "{t["type"]}" scaler',
                        "remove useCachedMetrics")
        name = t.get("name")
        if name:
            if name in seen:
                raise _fail(obj, f"spec.triggers[{i}].name",
                            f'triggerName "{name}" is defined multiple times in the '
                            "ScaledObject, but it must be unique", "give each trigger its own name")
            seen.add(name)


def _check_together(objects: Sequence[ScalingObject]) -> None:
    """Cross-object rules: what KEDA's webhook and the HPA controller refuse."""
    by_target: dict[str, list[ScalingObject]] = {}
    for o in objects:
        if o.target is not None:
            by_target.setdefault(o.target, []).append(o)
    for target, objs in by_target.items():
        hpas = [o for o in objs if o.kind == HPA]
        sos = [o for o in objs if o.kind == SCALED_OBJECT]
        if hpas and sos:
            raise _fail(sos[0], "spec.scaleTargetRef.name",
                        f"the workload '{target}' of type 'apps/v1.Deployment' is already "
                        f"managed by the hpa '{hpas[0].name}' (KEDA's admission webhook rejects "
                        "a ScaledObject on a target another HPA scales)",
                        "put the CPU target into the ScaledObject as a cpu trigger "
                        "(see manifests/scaling/keda-hybrid.yaml) and drop the HPA")
        if len(sos) > 1:
            raise _fail(sos[1], "spec.scaleTargetRef.name",
                        f"the workload '{target}' of type 'apps/v1.Deployment' is already "
                        f"managed by the ScaledObject '{sos[0].name}'",
                        "use one ScaledObject with several triggers")
        if len(hpas) > 1:
            raise _fail(hpas[1], "spec.scaleTargetRef.name",
                        f"HPAs {', '.join(h.name for h in hpas)} select the same pods of "
                        f"'{target}': both would stop with ScalingActive=False, reason "
                        "AmbiguousSelector", "keep one HPA per Deployment with several metrics")
    names: set[str] = set()
    for o in objects:
        if o.ref in names:
            raise _fail(o, "metadata.name", "defined twice in the file",
                        "give each object its own name")
        names.add(o.ref)


def validate_scaling(
    path: Path, *, namespace: str = NAMESPACE,
    workloads: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[ScalingObject]:
    """Validate a scaling manifest file as a cluster would on apply; return its objects.

    ``workloads`` maps Deployment name -> Deployment manifest; when given, the webhook's
    "cpu trigger needs CPU requests" rule is checked too.
    """
    objects = load_scaling(path, namespace=namespace)
    for obj in objects:
        if obj.kind == HPA:
            _validate_hpa(obj)
            _check_hpa(obj)
        else:
            _validate_crd(obj)
            if obj.kind == SCALED_OBJECT:
                _check_scaled_object(obj, workloads, objects)
    _check_together(objects)
    return objects
