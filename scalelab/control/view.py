"""What the emulated controllers may see of a cluster: the seam between core and backend.

The local backend implements ``ClusterView`` from its process supervisor and its
metrics-server-like accounting. Facts mirror the Kubernetes objects the real controllers
read (Pod status, metrics.k8s.io PodMetrics, the scale subresource).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, kw_only=True)
class PodFacts:
    """A pod as the HPA controller sees it (kubernetes replica_calculator.go groupPods)."""

    name: str
    phase: str                           # Pending | Running | Succeeded | Failed
    ready: bool                          # PodReady condition status
    deleting: bool                       # metadata.deletionTimestamp set
    start_time: float | None             # status.startTime (unix s)
    ready_transition_time: float | None  # PodReady condition lastTransitionTime (unix s)
    cpu_request_milli: int | None        # sum of containers' requests.cpu; None if unset
    memory_request_bytes: int | None = None  # sum of containers' requests.memory


@dataclass(frozen=True, kw_only=True)
class PodMetric:
    """metrics.k8s.io PodMetrics for one pod: CPU averaged over ``window`` up to ``timestamp``."""

    pod: str
    cpu_milli: int
    memory_bytes: int
    timestamp: float
    window: float


class ClusterView(Protocol):
    def pods(self, deployment: str) -> list[PodFacts]:
        """Pods selected by the Deployment, including Pending and Terminating ones."""
        ...

    def pod_metrics(self, deployment: str) -> dict[str, PodMetric]:
        """metrics-server view: pod name -> metric; pods without a sample are absent."""
        ...

    def spec_replicas(self, deployment: str) -> int:
        """The scale subresource's spec.replicas."""
        ...

    def scale(self, deployment: str, replicas: int) -> None:
        """Write the scale subresource (the controller's only action)."""
        ...

    def container_env(self, deployment: str) -> dict[str, str]:
        """Resolved env of the target's first container (KEDA's ``*FromEnv`` reads it)."""
        ...

    def secret(self, name: str) -> Mapping[str, str] | None:
        """A Secret's data in the stack's namespace, None if there is none (what KEDA's
        TriggerAuthentication ``secretTargetRef`` reads)."""
        ...
