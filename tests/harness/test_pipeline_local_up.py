"""The local backend's bring-up is named steps: timings per step, and a failure leaves
``current_step`` naming where it happened, with everything started so far torn down.

The broker is a stand-in whose start fails (what a broken Erlang install does); Prometheus
is the real one, started concurrently by the same step and stopped by the teardown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scalelab.backends.local.backend import LocalBackend
from scalelab.errors import ProcessStartError
from scalelab.procs import rabbitmq
from scalelab.settings import StackSettings


class BrokenBroker:
    """A RabbitMQ node whose ``start`` fails after its ports were chosen."""

    stopped = False

    def __init__(self, *, host: str, workdir: Path, startup_timeout: float,
                 exclude_ports: set[int]) -> None:
        self.amqp_port, self.management_port, self.prometheus_port = 1, 2, 3
        self.dist_port, self.epmd_port = 4, 5
        self.amqp_url = f"amqp://guest:guest@{host}:1/%2F"
        self.management_url = f"http://{host}:2"

    def start(self) -> None:
        raise ProcessStartError("rabbitmq-server exited with code 1", fix="read its log")

    def stop(self) -> None:
        BrokenBroker.stopped = True

    def log_tail(self) -> str:
        return ""


def test_a_failed_step_is_named_and_what_started_is_stopped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rabbitmq, "RabbitMQNode", BrokenBroker)
    backend = LocalBackend(settings=StackSettings())
    assert [name for name, _ in backend.steps(BrokenBroker)] == [
        "prepare", "rabbitmq+prometheus", "exporter", "pods", "scraping"]
    started: list[Any] = []
    real_prepare = backend._prepare

    def prepare(node_class: Any) -> None:
        real_prepare(node_class)
        started.append((backend.workdir, backend.prometheus))

    monkeypatch.setattr(backend, "_prepare", prepare)
    with pytest.raises(ProcessStartError, match="rabbitmq-server exited"):
        backend.up()
    assert backend.current_step == "rabbitmq+prometheus"
    assert list(backend.timings) == ["prepare"], "only the steps that ended are timed"
    assert BrokenBroker.stopped and backend.prometheus is None and backend.rabbitmq is None
    ((workdir, prometheus),) = started
    assert not prometheus.running(), "Prometheus, started by the failed step, is stopped"
    assert workdir is not None and not Path(workdir).exists(), "the work dir is removed"
