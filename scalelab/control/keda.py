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
* ``pkg/scalers/cpu_memory_scaler.go`` - the cpu/memory trigger metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scalelab.control import rabbitmq_scaler as rmq
from scalelab.errors import ConfigError

if TYPE_CHECKING:
    from scalelab.manifests import ScalingObject

DEFAULT_POLLING_INTERVAL = 30
DEFAULT_COOLDOWN_PERIOD = 300
DEFAULT_MIN_REPLICAS = 0
DEFAULT_MAX_REPLICAS = 100
#: scaledobject_types.go defaultHPAMinReplicas
DEFAULT_HPA_MIN_REPLICAS = 1
RESOURCE_TRIGGERS = ("cpu", "memory")
SUPPORTED_TRIGGERS = ("cpu", "memory", "rabbitmq")


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


def check_triggers(obj: ScalingObject) -> None:
    """Parse every trigger offline (no env): KEDA reports these as ScaledObject Ready=False.

    Raises ``ConfigError`` naming the metadata key, so bad triggers fail before a run.
    """
    for i, trig in enumerate(obj.doc["spec"].get("triggers") or []):
        kind = trig.get("type")
        at = f"spec.triggers[{i}]"
        try:
            if kind in RESOURCE_TRIGGERS:
                parse_resource_trigger(trig, i)
            elif kind == "rabbitmq":
                rmq.parse_metadata(trig.get("metadata") or {}, resolved_env=None,
                                   trigger_index=i, metric_type=trig.get("metricType"))
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
