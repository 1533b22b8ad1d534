"""Sampling what the experiment watches: replicas, queue depth and CPU utilization.

Replicas come from the backend (as ``kubectl get deploy``); queue depth from the RabbitMQ
management API; CPU utilization and the autoscaler's desired replicas from Prometheus with
the same PromQL on every backend (the local backend exports Kubernetes' metric names).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from scalelab import queries
from scalelab.backends.base import Backend
from scalelab.settings import AGENT_DEPLOYMENT, NAMESPACE, TASK_QUEUE


@dataclass(frozen=True, kw_only=True)
class QueueDepth:
    ready: int
    unacked: int


def management_session(url: str) -> tuple[requests.Session, str]:
    """A session for the management API; credentials from the URL, else guest/guest."""
    parts = urlsplit(url)
    session = requests.Session()
    session.auth = (parts.username or "guest", parts.password or "guest")
    netloc = parts.hostname or "127.0.0.1"
    if parts.port:
        netloc += f":{parts.port}"
    return session, f"{parts.scheme}://{netloc}"


def queue_depth(session: requests.Session, base: str, queue: str = TASK_QUEUE,
                vhost: str = "/") -> QueueDepth | None:
    try:
        resp = session.get(f"{base}/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}",
                           timeout=3)
    except requests.RequestException:
        return None
    if resp.status_code != 200:
        return None
    doc = resp.json()
    return QueueDepth(ready=int(doc.get("messages_ready", 0)),
                      unacked=int(doc.get("messages_unacknowledged", 0)))


def prom_scalar(session: requests.Session, prometheus_url: str, query: str) -> float | None:
    """One instant query reduced to a number, or None when there is no sample."""
    try:
        resp = session.get(f"{prometheus_url}/api/v1/query", params={"query": query}, timeout=3)
        result = resp.json()["data"]["result"]
    except (requests.RequestException, ValueError, KeyError):
        return None
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value  # NaN -> None


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One point of the run's timeline (the record's ``timeline[]``); None where unknown."""

    #: Unix seconds (wall clock): the report and the expectations compare it with phases.
    t: float
    spec: int
    current: int
    ready: int
    desired: int | None
    queue_ready: int | None
    queue_unacked: int | None
    cpu_utilization: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Observer:
    """Takes one timeline sample per call; the experiment calls it every poll interval."""

    def __init__(self, *, backend: Backend, metrics_window: float,
                 deployment: str = AGENT_DEPLOYMENT, namespace: str = NAMESPACE,
                 hpas: Sequence[str] = (),
                 clock: Callable[[], float] = time.time) -> None:
        """``hpas``: the scenario's HPAs, so a removed one's last sample is not read.
        ``clock``: wall time (the samples' ``t``)."""
        self._backend = backend
        self._deployment = deployment
        self._clock = clock
        endpoints = backend.endpoints
        self._mgmt, self._mgmt_base = management_session(endpoints.rabbitmq_management)
        self._prom = requests.Session()
        self._prom_url = endpoints.prometheus.rstrip("/")
        # rate() needs at least two samples in its range: never shorter than 2 scrapes.
        window = max(int(metrics_window), 20)
        self._cpu_query = queries.cpu_utilization(namespace=namespace, deployment=deployment,
                                                  window=f"{window}s")
        self._desired_query = queries.desired_replicas(namespace=namespace, hpas=hpas)

    def sample(self) -> Sample:
        replicas = self._backend.replicas(self._deployment)
        depth = queue_depth(self._mgmt, self._mgmt_base)
        cpu = prom_scalar(self._prom, self._prom_url, self._cpu_query)
        desired = prom_scalar(self._prom, self._prom_url, self._desired_query)
        return Sample(
            t=self._clock(), spec=replicas.spec, current=replicas.current, ready=replicas.ready,
            desired=None if desired is None else int(desired),
            queue_ready=None if depth is None else depth.ready,
            queue_unacked=None if depth is None else depth.unacked,
            cpu_utilization=None if cpu is None else round(cpu, 1),
        )


def progress_line(*, scenario: str, phase: str, phase_elapsed: float, phase_duration: float,
                  total_elapsed: float, total_duration: float,
                  sample: Sample | Mapping[str, Any]) -> str:
    """One human line per poll, readable in a terminal and in CI logs (``sample``: a
    ``Sample`` or a stored timeline entry)."""
    s = sample.as_dict() if isinstance(sample, Sample) else sample

    def fmt(v: object, suffix: str = "") -> str:
        return "-" if v is None else f"{v}{suffix}"

    return (
        f"[{scenario}] {phase} {phase_elapsed:5.0f}/{phase_duration:.0f}s"
        f" (total {total_elapsed:.0f}/{total_duration:.0f}s, "
        f"{max(0.0, total_duration - total_elapsed):.0f}s left)"
        f" replicas cur={s['current']} desired={fmt(s['desired'])}"
        f" ready={s['ready']} spec={s['spec']}"
        f" queue={fmt(s['queue_ready'])}+{fmt(s['queue_unacked'])}unacked"
        f" cpu={fmt(s['cpu_utilization'], '%')}"
    )
