"""The interface an experiment talks to, whatever runs underneath.

The local backend (processes on this machine, emulated controllers) and the kind /
existing-cluster backends (real Kubernetes, real HPA and KEDA) implement it. An
experiment only ever calls these methods, so the same scenario runs on all of them.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from scalelab.decisions import ScalingEvent
from scalelab.errors import BackendError
from scalelab.faults import FaultInjector
from scalelab.settings import StackSettings


@dataclass(frozen=True, kw_only=True)
class Endpoints:
    """URLs a user or the experiment needs. Keys match ``scalelab up --json``."""

    api: str
    prometheus: str
    rabbitmq_management: str
    amqp: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class Replicas:
    """A Deployment's replica counts as ``kubectl get deploy`` shows them."""

    spec: int      # .spec.replicas (what the autoscaler asked for)
    current: int   # .status.replicas (pods that exist, including not-ready ones)
    ready: int     # .status.readyReplicas


class Backend(abc.ABC):
    """Bring the stack up, drive scaling objects, observe replicas, tear down.

    Implementations must make ``down()`` idempotent and safe after a partial ``up()``;
    the context manager guarantees it is called.
    """

    name: ClassVar[str]
    #: How long ``up()`` may take before the driver stops it (``SCALELAB_BRING_UP_TIMEOUT``
    #: overrides). Bring-up runs outside every scenario's own timeout, under this one.
    bring_up_timeout: ClassVar[float] = 300.0

    def __init__(self, *, settings: StackSettings) -> None:
        self.settings = settings
        #: What ``up()`` is doing now (a bring-up timeout names it).
        self.current_step: str | None = None
        #: Seconds per bring-up step, printed after bring-up.
        self.timings: dict[str, float] = {}

    # -- lifecycle -------------------------------------------------------------------
    @abc.abstractmethod
    def up(self) -> Endpoints:
        """Start everything and return when it is ready (or raise, having cleaned up)."""

    @abc.abstractmethod
    def down(self) -> None:
        """Stop everything; idempotent; never raises for already-stopped parts."""

    def __enter__(self) -> Backend:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- observation -----------------------------------------------------------------
    @property
    @abc.abstractmethod
    def endpoints(self) -> Endpoints:
        """URLs of the running stack (raises if not up)."""

    @abc.abstractmethod
    def replicas(self, deployment: str) -> Replicas:
        """Current replica counts of a Deployment in the stack's namespace."""

    @abc.abstractmethod
    def scaling_events(self, since: float = 0.0) -> list[ScalingEvent]:
        """Autoscaler decisions (HPA and KEDA) since a unix time, oldest first."""

    @abc.abstractmethod
    def diagnostics(self) -> dict[str, Any]:
        """Pods, recent events/decisions and log tails, for a failed scenario's report."""

    def urls(self) -> dict[str, str]:
        """What a person opens while the stack runs (the cluster backends add Grafana and
        its login); printed by ``scalelab up`` and the experiment session."""
        return self.endpoints.as_dict()

    def versions(self) -> dict[str, str]:
        """Versions of the parts this backend runs (broker, Prometheus, Kubernetes...)."""
        return {}

    def details(self) -> dict[str, Any]:
        """What a reader of the run record needs to know about where it ran (the record's
        ``backend.details``): what is real and what is emulated, which cluster."""
        return {}

    def baseline_replicas(self, deployment: str) -> int:
        """The replicas ``deployment`` asks for when nothing scales it: the stack's override
        (``StackSettings.agent_replicas`` for the agent), else the Deployment manifest's
        ``spec.replicas``. A scenario starts from it. Each backend reads the manifests it
        deploys; a stand-in backend that runs no scenario need not implement it."""
        raise BackendError(f"the {self.name} backend does not know {deployment}'s baseline",
                           fix="run scenarios on the local, kind or existing backend")

    # -- control ---------------------------------------------------------------------
    @abc.abstractmethod
    def apply_scaling(self, manifest: Path) -> list[str]:
        """Apply a scaling manifest (HPA or ScaledObject); return ``Kind/name`` of each object."""

    @abc.abstractmethod
    def remove_scaling(self) -> None:
        """Delete every scaling object this backend applied."""

    @abc.abstractmethod
    def scale(self, deployment: str, replicas: int) -> None:
        """Set ``spec.replicas`` by hand (as ``kubectl scale``)."""

    def fault_injector(self) -> FaultInjector:
        """What fires a scenario's ``faults`` on this stack (``scalelab.faults``)."""
        raise BackendError(f"the {self.name} backend cannot inject faults",
                           fix="run fault scenarios on the local, kind or existing backend")

    @abc.abstractmethod
    def purge_queue(self) -> int:
        """Empty the task queue; return the number of messages dropped."""
