"""The kind and existing-cluster backends: the stack on real Kubernetes, real HPA and KEDA.

``kind`` creates a cluster with pytest-kind's ``KindCluster`` from a config rendered from the
timing profile (kube-controller-manager HPA flags), builds and loads the two images,
installs metrics-server, kube-prometheus-stack and KEDA with Helm (pinned chart versions,
``manifests/cluster/charts.yaml``), applies ``manifests/base``, waits for the rollouts and
port-forwards the API, Prometheus, RabbitMQ and Grafana to free local ports.
``existing`` does the same against the current kubeconfig context.

Modules, mirroring ``backends/local``: ``settings`` (pins, names, ``SCALELAB_*``),
``render`` (kind config, Helm values, overlay, dashboards), ``events`` (cluster JSON to
replicas and decisions), ``kube`` (the only module that talks to a cluster), ``backend``
(the shared lifecycle), ``kind`` and ``existing``.
"""

from __future__ import annotations

from scalelab.backends.base import Backend
from scalelab.backends.cluster.existing import ExistingBackend
from scalelab.backends.cluster.kind import KindBackend
from scalelab.backends.cluster.settings import ClusterSettings
from scalelab.errors import ConfigError
from scalelab.settings import StackSettings

__all__ = ["ClusterSettings", "ExistingBackend", "KindBackend", "make_cluster_backend"]


def make_cluster_backend(name: str, *, settings: StackSettings) -> Backend:
    """The ``kind`` or ``existing`` backend, configured from ``SCALELAB_*`` variables."""
    cluster = ClusterSettings.from_env()
    if name == "kind":
        return KindBackend(settings=settings, cluster=cluster)
    if name == "existing":
        return ExistingBackend(settings=settings, cluster=cluster)
    raise ConfigError(f"unknown cluster backend {name!r}", field="--backend",
                      fix="use kind or existing")
