"""What the local backend's Prometheus scrapes, and the labels each job puts on its series.

The jobs mirror a cluster's scrape paths (manifests/cluster/monitors.yaml, the charts'
ServiceMonitors) so that the same PromQL selects the same series on both backends:

- ``rabbitmq``: RabbitMQ's per-queue family (``/metrics/detailed``), as the
  ``scalelab-rabbitmq`` PodMonitor's first endpoint;
- ``rabbitmq-aggregated``: RabbitMQ's aggregated ``/metrics`` (global message rates,
  connections, channels, consumers), as that PodMonitor's second endpoint;
- ``scalelab-exporter``: the backend's kube-state-metrics / cAdvisor / KEDA series, with
  ``honor_labels`` as kube-state-metrics' ServiceMonitor has it (its ``namespace`` is the
  object's, not the exporter's);
- one ``file_sd`` job per Deployment (``api``, ``agent``): a pod's target carries
  ``namespace``, ``pod`` and ``container``, the labels the Prometheus operator puts on a
  PodMonitor target (prometheus-operator pkg/prometheus/promcfg.go), plus ``deployment``.

Pure functions, so the label-contract test (tests/kind/test_label_contract.py) reads the
same config the backend runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scalelab.procs import prometheus as prom

#: RabbitMQ's per-queue series (the default /metrics endpoint aggregates all queues).
RABBITMQ_FAMILIES = ("queue_coarse_metrics", "queue_consumer_count")
#: Both RabbitMQ endpoints serve ``rabbitmq_build_info`` / ``rabbitmq_identity_info``; the
#: per-queue job keeps only its own family, as the PodMonitor's endpoint does (there both
#: endpoints share one ``job`` label, and the same series from two jobs would collide).
RABBITMQ_DETAILED_ONLY = ({"source_labels": ["__name__"], "regex": "rabbitmq_detailed_.+",
                           "action": "keep"},)
#: Job names (the ``job`` label) of the fixed targets.
RABBITMQ_JOB = "rabbitmq"
RABBITMQ_AGGREGATED_JOB = "rabbitmq-aggregated"
EXPORTER_JOB = "scalelab-exporter"


def pod_target_labels(*, namespace: str, pod: str, deployment: str,
                      container: str) -> dict[str, str]:
    """Target labels of one pod's scrape target (its file_sd group)."""
    return {"namespace": namespace, "pod": pod, "deployment": deployment,
            "container": container}


def scrape_config(
    *,
    scrape_interval: float,
    namespace: str,
    bind: str,
    rabbitmq_prometheus_port: int,
    exporter_port: int,
    sd_paths: Mapping[str, Path],
) -> dict[str, Any]:
    """The Prometheus config of the local stack; ``sd_paths`` maps a Deployment to its file."""
    rabbit = f"{bind}:{rabbitmq_prometheus_port}"
    return prom.build_config(
        scrape_interval=scrape_interval,
        static=[
            prom.StaticTarget(job=RABBITMQ_JOB, address=rabbit,
                              metrics_path="/metrics/detailed",
                              params={"family": list(RABBITMQ_FAMILIES)},
                              labels={"namespace": namespace},
                              metric_relabel_configs=RABBITMQ_DETAILED_ONLY),
            prom.StaticTarget(job=RABBITMQ_AGGREGATED_JOB, address=rabbit,
                              metrics_path="/metrics", labels={"namespace": namespace}),
            prom.StaticTarget(job=EXPORTER_JOB, address=f"{bind}:{exporter_port}",
                              honor_labels=True),
        ],
        file_sd=[prom.FileSDJob(job=name, path=path, refresh_interval=1.0)
                 for name, path in sd_paths.items()],
    )
