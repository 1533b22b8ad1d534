"""An autoscaler decision, as every part of scalelab records it.

The emulated controllers (``scalelab.control``) make them, the cluster backends read them
off Kubernetes Events (``scalelab.backends.cluster.events``), the run record stores them
(``decisions``) and the expectations check them. The type lives here, below all of them,
so the controller cores do not import a backend to name what they produce.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class ScalingEvent:
    """One autoscaler decision, with the reason the controller gave."""

    t: float                 # unix time
    controller: str          # "hpa" | "keda"
    object: str              # e.g. "HorizontalPodAutoscaler/agent"
    from_replicas: int
    to_replicas: int
    reason: str
    conditions: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
