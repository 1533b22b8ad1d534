"""The agent's Prometheus metrics and its small /metrics + /healthz + /readyz HTTP server.

Metric names are an interface (dashboards, reports): see docs/metrics.md.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from services.common.tasks import TOOLS

TASK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass(frozen=True, kw_only=True)
class AgentMetrics:
    registry: CollectorRegistry
    processed: Counter
    duration: Histogram
    queue_wait: Histogram
    in_progress: Gauge
    redeliveries: Counter
    dead_lettered: Counter

    @classmethod
    def create(cls) -> AgentMetrics:
        """The metrics, with every known tool's series present at zero from the first
        scrape: ``rate()`` ignores what a series' first sample already holds, so a series
        born with the first task would hide that task (Prometheus' instrumentation
        guidance: initialise the label values you know)."""
        r = CollectorRegistry()
        metrics = cls(
            registry=r,
            processed=Counter("scalelab_agent_tasks_processed_total",
                              "Tasks run to the end and acked, by tool and outcome.",
                              ["tool", "outcome"], registry=r),
            duration=Histogram("scalelab_agent_task_duration_seconds",
                               "Wall time to run a task's tool.", ["tool"],
                               buckets=TASK_BUCKETS, registry=r),
            queue_wait=Histogram("scalelab_agent_queue_wait_seconds",
                                 "Time from enqueue (API) to start (agent).",
                                 buckets=WAIT_BUCKETS, registry=r),
            in_progress=Gauge("scalelab_agent_tasks_in_progress",
                              "Tasks being run right now.", registry=r),
            redeliveries=Counter("scalelab_agent_redeliveries_total",
                                 "Tasks received with the broker's redelivered flag set.",
                                 registry=r),
            dead_lettered=Counter("scalelab_agent_dead_lettered_total",
                                  "Invalid messages rejected to the dead-letter queue.",
                                  ["reason"], registry=r),
        )
        for tool in TOOLS:
            metrics.duration.labels(tool=tool)
            metrics.processed.labels(tool=tool, outcome="ok")
        return metrics


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


StartResponse = Callable[..., Any]


def make_app(registry: CollectorRegistry,
             health: Callable[[], dict[str, Any]]) -> Callable[[dict[str, Any], StartResponse],
                                                             Iterable[bytes]]:
    """``/metrics`` (Prometheus); ``/healthz`` (the process answers: always 200, with the
    connection state, for the liveness probe); ``/readyz`` (200 only while connected to the
    broker *and* consuming the task queue, else 503: the readiness probe, so a pod counts
    as ready, for the HPA and for the harness, only when it takes tasks); else 404."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path in ("/healthz", "/readyz"):
            state = health()
            ok = path == "/healthz" or bool(state.get("connected") and state.get("consuming"))
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "application/json")])
            return [json.dumps(state).encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics, /healthz or /readyz\n"]

    return app


def serve(app: Callable[..., Iterable[bytes]], *, host: str, port: int) -> WSGIServer:
    """Serve ``app`` from a daemon thread; the caller calls ``shutdown()`` on exit."""
    server = make_server(host, port, app, server_class=_ThreadingWSGIServer,
                         handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
