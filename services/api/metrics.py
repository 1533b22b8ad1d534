"""The API's Prometheus metrics (documented in docs/metrics.md; the names are an interface)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from services.common.tasks import TOOLS

#: Buckets for request latency: a confirmed publish is ~1 ms; a slow broker, seconds.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, kw_only=True)
class ApiMetrics:
    registry: CollectorRegistry
    tasks_published: Counter
    publish_failures: Counter
    request_duration: Histogram

    @classmethod
    def create(cls) -> ApiMetrics:
        """One registry per app, so tests can build several apps in one process; every
        known tool's published series is there at zero from the first scrape (``rate()``
        ignores what a series' first sample holds: a series born with its first task would
        hide that task)."""
        registry = CollectorRegistry()
        metrics = cls(
            registry=registry,
            tasks_published=Counter(
                "scalelab_api_tasks_published_total",
                "Tasks published to the task queue and confirmed by the broker.",
                ["tool"], registry=registry),
            publish_failures=Counter(
                "scalelab_api_publish_failures_total",
                "Tasks not published (answered 503), by reason.",
                ["reason"], registry=registry),
            request_duration=Histogram(
                "scalelab_api_request_duration_seconds",
                "HTTP request duration, by route template and status code.",
                ["route", "status"], buckets=REQUEST_BUCKETS, registry=registry),
        )
        for tool in TOOLS:
            metrics.tasks_published.labels(tool=tool)
        return metrics
