"""One document of a scaling manifest (HPA, ScaledObject, TriggerAuthentication), loaded.

``scalelab.scaling_manifests`` loads and validates these and, to check KEDA triggers, calls
``scalelab.control.keda``, which reads them: the type lives here so that neither of the
two has to import the other to name it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, kw_only=True)
class ScalingObject:
    """One scaling document of a manifest file, with its effective replica bounds."""

    kind: str                 # HorizontalPodAutoscaler | ScaledObject | TriggerAuthentication
    name: str
    namespace: str
    target: str | None        # scaleTargetRef.name (a Deployment); None for TriggerAuthentication
    min_replicas: int | None  # effective: KEDA default 0, HPA default 1; None for TriggerAuth
    max_replicas: int | None  # effective: KEDA default 100; None for TriggerAuthentication
    doc: dict[str, Any] = field(repr=False)
    source: Path

    @property
    def ref(self) -> str:
        """``Kind/name`` as ``kubectl apply`` prints it."""
        return f"{self.kind}/{self.name}"


def keda_hpa_name(name: str, spec: Mapping[str, Any]) -> str:
    """The HPA KEDA generates for ScaledObject ``name``: ``keda-hpa-<name>`` unless
    ``spec.advanced.horizontalPodAutoscalerConfig.name`` gives one (kedacore/keda
    ``controllers/keda/hpa.go``, ``getHPAName``). The one place the rule is written: the
    emulated KEDA, the queries and the report all ask it."""
    advanced = spec.get("advanced") or {}
    config = advanced.get("horizontalPodAutoscalerConfig") or {}
    return str(config.get("name") or f"keda-hpa-{name}")
