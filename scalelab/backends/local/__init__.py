"""The local backend: real RabbitMQ and Prometheus, the services as processes ("pods"),
metrics-server-like accounting and a kube-state-metrics-like exporter on this machine.

See ``backend.LocalBackend``. Modules: ``manifests`` (read the Deployment manifests the
cluster applies), ``pods`` (the ReplicaSet-like supervisor), ``resources`` (CPU and memory
accounting), ``exporter`` (Kubernetes-compatible metrics), ``backend`` (wiring).
"""

from scalelab.backends.local.backend import LocalBackend

__all__ = ["LocalBackend"]
