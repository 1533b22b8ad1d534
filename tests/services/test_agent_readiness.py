"""The agent's readiness: ``/readyz`` answers 200 only while a consumer of the task queue is
registered at the broker, ``/healthz`` always (issue 9, defect 10).

Real broker, real agent process. The broker itself refuses the agent's consumer: the test
holds an *exclusive* consumer on the task queue, so the agent connects, declares both
queues, sets its prefetch (connected), and then its ``basic.consume`` is refused with
ACCESS_REFUSED ("in exclusive use") until the test lets go.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from scalelab.procs.rabbitmq import RabbitMQNode
from scalelab.waiting import wait_for
from services.agent.metrics import AgentMetrics, make_app
from services.common.amqp import declare_task_queue
from tests.conftest import QueueNames, ServiceFactory, amqp_channel


def _call(app: object, path: str) -> tuple[str, bytes]:
    seen: list[str] = []
    body = b"".join(app(  # type: ignore[operator]
        {"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda status, headers: seen.append(status)))
    return seen[0], body


@pytest.mark.parametrize(("connected", "consuming", "ready"), [
    (False, False, "503"), (True, False, "503"), (False, True, "503"), (True, True, "200")])
def test_readyz_needs_connected_and_consuming_healthz_always_answers(
        connected: bool, consuming: bool, ready: str) -> None:
    """The HTTP contract of both probes, state by state (no broker: the WSGI app alone)."""
    app = make_app(AgentMetrics.create().registry,
                   lambda: {"status": "alive", "connected": connected, "consuming": consuming})
    assert _call(app, "/readyz")[0].startswith(ready)
    assert _call(app, "/healthz")[0].startswith("200")


def _consumers(channel: Any, queue: str) -> int:
    """The broker's own count (queue.declare-ok), not the management API's lagging stats."""
    return int(channel.queue_declare(queue=queue, passive=True).method.consumer_count)


@pytest.mark.slow
def test_agent_is_ready_only_while_the_broker_has_its_consumer(
        rabbitmq: RabbitMQNode, services: ServiceFactory, queue_names: QueueNames) -> None:
    connection, channel = amqp_channel(rabbitmq.amqp_url)
    try:
        declare_task_queue(channel, queue_names.tasks)
        tag = channel.basic_consume(queue_names.tasks, lambda *a: None, exclusive=True)
        agent = services.agent(amqp_url=rabbitmq.amqp_url, task_queue=queue_names.tasks,
                               results_queue=queue_names.results, ready_path="/healthz")
        wait_for(lambda: "ACCESS_REFUSED" in agent.log_tail(), lambda seen: seen,
                 what="the broker to refuse the agent's basic.consume", expected=True,
                 timeout=20)
        answers = set()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:   # several attempts (backoff 0.2 s, 0.4 s, ...)
            answers.add(requests.get(f"{agent.url}/readyz", timeout=2).status_code)
            connection.process_data_events(0.05)
        assert answers == {503}, "ready although the broker refused its consumer"
        health = requests.get(f"{agent.url}/healthz", timeout=2)
        assert health.status_code == 200 and health.json()["consuming"] is False
        assert _consumers(channel, queue_names.tasks) == 1   # the test's own

        channel.basic_cancel(tag)
        # the next attempt (backoff at most 5 s) consumes; then ready, and the broker agrees
        state = wait_for(lambda: requests.get(f"{agent.url}/readyz", timeout=2),
                         lambda r: r.status_code == 200,
                         what="the agent to consume and be ready", expected=200, timeout=20,
                         interval=0.1).json()
        assert state["connected"] is True and state["consuming"] is True
        wait_for(lambda: _consumers(channel, queue_names.tasks), lambda n: n == 1,
                 what="the broker to list the agent's consumer", expected=1, timeout=10)
    finally:
        connection.close()
