"""Typed settings shared by every backend (kopf-style: frozen dataclasses, keyword-only).

The *timing profile* is the one place where scrape interval, controller sync period and
metric windows are set; the local backend's emulated controllers and the kind cluster's
real ones (controller-manager flags, metrics-server args, Prometheus scrape config) are
configured from the same values so results are comparable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

NAMESPACE = "scalelab"
API_DEPLOYMENT = "api"
AGENT_DEPLOYMENT = "agent"
TASK_QUEUE = "agent-tasks"
RESULTS_QUEUE = "agent-results"
DEAD_LETTER_QUEUE = "agent-tasks.dead"


@dataclass(frozen=True, kw_only=True)
class TimingProfile:
    """How fast the control loops and the observation run, in seconds."""

    #: Prometheus scrape interval (both backends).
    scrape_interval: float = 5.0
    #: HPA sync period: kube-controller-manager --horizontal-pod-autoscaler-sync-period
    #: (Kubernetes default 15 s; experiments run faster, the kind cluster gets the same flag).
    hpa_sync_period: float = 5.0
    #: metrics-server --metric-resolution: the window CPU usage is averaged over
    #: (metrics-server default 60 s, minimum 10 s).
    metrics_window: float = 10.0
    #: --horizontal-pod-autoscaler-tolerance (Kubernetes default 0.1).
    hpa_tolerance: float = 0.1
    #: --horizontal-pod-autoscaler-cpu-initialization-period (Kubernetes default 5 m).
    hpa_cpu_initialization_period: float = 300.0
    #: --horizontal-pod-autoscaler-initial-readiness-delay (Kubernetes default 30 s).
    hpa_initial_readiness_delay: float = 30.0
    #: --horizontal-pod-autoscaler-downscale-stabilization (Kubernetes default 5 m);
    #: only used by HPAs without ``behavior``.
    hpa_downscale_stabilization: float = 300.0
    #: Pod terminationGracePeriodSeconds when the manifest does not set one.
    termination_grace_period: float = 30.0
    #: How often the experiment samples replicas and queue depth for its timeline.
    poll_interval: float = 2.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


#: Kubernetes' own defaults, for comparison and for the replay tool.
KUBERNETES_DEFAULTS = TimingProfile(hpa_sync_period=15.0, metrics_window=60.0, scrape_interval=15.0)


@dataclass(frozen=True, kw_only=True)
class StackSettings:
    """What a backend brings up."""

    namespace: str = NAMESPACE
    agent_replicas: int | None = None  # None: the Deployment manifest's spec.replicas
    timing: TimingProfile = field(default_factory=TimingProfile)
    bind: str = "127.0.0.1"
