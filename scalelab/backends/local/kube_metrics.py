"""Kubernetes-compatible metrics for the local stack, so PromQL is the same on both backends.

Series and labels follow kube-state-metrics (docs/metrics/workload/deployment-metrics.md,
pod-metrics.md; internal/store/pod.go) and the kubelet's cAdvisor endpoint:

- ``kube_deployment_spec_replicas``, ``kube_deployment_status_replicas``,
  ``kube_deployment_status_replicas_ready``: {namespace, deployment}
- ``kube_pod_status_ready``: {namespace, pod, uid, condition="true|false|unknown"}
- ``kube_pod_owner``: {namespace, pod, uid, owner_kind, owner_name, owner_is_controller}
- ``kube_pod_container_resource_requests`` / ``_limits``:
  {namespace, pod, uid, container, node, resource="cpu|memory", unit="core|byte"}
- ``kube_pod_container_status_restarts_total``: {namespace, pod, uid, container}
- ``container_cpu_usage_seconds_total``, ``container_memory_working_set_bytes``:
  {namespace, pod, container, image}

Every pod series also carries ``deployment`` (not in upstream: there it comes from a
join with ``kube_pod_owner``); portable queries should select pods by
``pod=~"agent-.*"`` or join on ``kube_pod_owner``.

The registry is shared with the emulated control loop so its ``kube_horizontalpodautoscaler_*``
and ``keda_*`` series are served from the same endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scalelab.backends.local.deployments import DeploymentSpec
from scalelab.backends.local.pods import Pod, Supervisor
from scalelab.backends.local.resources import ResourceAccounting

NODE = "local"


_DEPLOYMENT = ["namespace", "deployment"]
_RESOURCE = ["namespace", "pod", "uid", "container", "node", "resource", "unit", "deployment"]
_CONTAINER = ["namespace", "pod", "container", "image", "deployment"]


@dataclass(frozen=True)
class _Families:
    """One scrape's metric families, in the order they are served."""

    spec: GaugeMetricFamily = field(default_factory=lambda: GaugeMetricFamily(
        "kube_deployment_spec_replicas", "Number of desired pods for a deployment.",
        labels=_DEPLOYMENT))
    status: GaugeMetricFamily = field(default_factory=lambda: GaugeMetricFamily(
        "kube_deployment_status_replicas", "The number of replicas per deployment.",
        labels=_DEPLOYMENT))
    ready: GaugeMetricFamily = field(default_factory=lambda: GaugeMetricFamily(
        "kube_deployment_status_replicas_ready", "The number of ready replicas per deployment.",
        labels=_DEPLOYMENT))
    pod_ready: GaugeMetricFamily = field(default_factory=lambda: GaugeMetricFamily(
        "kube_pod_status_ready", "Describes whether the pod is ready to serve requests.",
        labels=["namespace", "pod", "uid", "condition", "deployment"]))
    owner: GaugeMetricFamily = field(default_factory=lambda: GaugeMetricFamily(
        "kube_pod_owner", "Information about the Pod's owner.",
        labels=["namespace", "pod", "uid", "owner_kind", "owner_name", "owner_is_controller",
                "deployment"]))
    requests: GaugeMetricFamily = field(default_factory=lambda: GaugeMetricFamily(
        "kube_pod_container_resource_requests",
        "The number of requested request resource by a container.", labels=_RESOURCE))
    limits: GaugeMetricFamily = field(default_factory=lambda: GaugeMetricFamily(
        "kube_pod_container_resource_limits",
        "The number of requested limit resource by a container.", labels=_RESOURCE))
    restarts: CounterMetricFamily = field(default_factory=lambda: CounterMetricFamily(
        "kube_pod_container_status_restarts", "The number of container restarts per container.",
        labels=["namespace", "pod", "uid", "container", "deployment"]))
    cpu: CounterMetricFamily = field(default_factory=lambda: CounterMetricFamily(
        "container_cpu_usage_seconds", "Cumulative cpu time consumed in seconds.",
        labels=_CONTAINER))
    memory: GaugeMetricFamily = field(default_factory=lambda: GaugeMetricFamily(
        "container_memory_working_set_bytes",
        "Current working set in bytes (RSS of the pod's processes).", labels=_CONTAINER))

    def all(self) -> tuple[Metric, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))


class KubeStateCollector(Collector):
    """Builds the series above from the supervisors and the accounting at scrape time."""

    def __init__(self, *, namespace: str, supervisors: Callable[[], Sequence[Supervisor]],
                 accounting: ResourceAccounting) -> None:
        self.namespace = namespace
        self._supervisors = supervisors
        self._accounting = accounting

    def collect(self) -> Iterator[Metric]:
        f = _Families()
        for sup in self._supervisors():
            want, current, n_ready = sup.counts()
            for family, value in ((f.spec, want), (f.status, current), (f.ready, n_ready)):
                family.add_metric([self.namespace, sup.spec.name], value)
            for pod in sup.pods():
                self._add_pod(f, sup.spec, pod)
        yield from f.all()

    def _add_pod(self, f: _Families, s: DeploymentSpec, pod: Pod) -> None:
        ns = self.namespace
        for cond in ("true", "false", "unknown"):
            flag = float((cond == "true") == pod.ready) if cond != "unknown" else 0.0
            f.pod_ready.add_metric([ns, pod.name, pod.uid, cond, s.name], flag)
        f.owner.add_metric([ns, pod.name, pod.uid, "ReplicaSet", f"{s.name}-{s.template_hash}",
                            "true", s.name], 1.0)
        resources: list[tuple[GaugeMetricFamily, Any, str, str, float]] = [
            (f.requests, s.cpu_request_milli, "cpu", "core", 1000.0),
            (f.requests, s.memory_request_bytes, "memory", "byte", 1.0),
            (f.limits, s.cpu_limit_milli, "cpu", "core", 1000.0),
            (f.limits, s.memory_limit_bytes, "memory", "byte", 1.0),
        ]
        for family, amount, resource, unit, scale in resources:
            if amount is not None:
                family.add_metric([ns, pod.name, pod.uid, s.container, NODE, resource, unit,
                                   s.name], amount / scale)
        f.restarts.add_metric([ns, pod.name, pod.uid, s.container, s.name], float(pod.restarts))
        sample = self._accounting.latest(pod.name)
        if sample is not None:
            labels = [ns, pod.name, s.container, s.image, s.name]
            f.cpu.add_metric(labels, sample.cpu_seconds)
            f.memory.add_metric(labels, float(sample.memory_bytes))


class Exporter:
    """Serve a registry over HTTP on ``host:port`` (its own thread)."""

    def __init__(self, *, registry: CollectorRegistry, host: str = "127.0.0.1",
                 port: int) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def start(self) -> None:
        self._server, self._thread = start_http_server(self.port, addr=self.host,
                                                       registry=self.registry)

    def stop(self) -> None:
        """Stop serving and release the port; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
