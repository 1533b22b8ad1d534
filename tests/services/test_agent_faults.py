"""Agent under faults: SIGTERM mid-task, SIGKILL mid-task, broker restart. Nothing is lost."""

from __future__ import annotations

import signal
from collections import Counter

import pytest
import requests

from scalelab.procs.rabbitmq import RabbitMQNode
from scalelab.waiting import wait_for
from tests.conftest import (
    QueueNames,
    ServiceFactory,
    ServiceProcess,
    drain_json,
    metric,
    queue_depth,
)

pytestmark = pytest.mark.slow


def _current_task(agent: ServiceProcess) -> str | None:
    try:
        task: str | None = requests.get(f"{agent.url}/healthz", timeout=2).json()["current_task"]
    except requests.RequestException:
        return None
    return task


def _post(api: ServiceProcess, tool: str, **args: int) -> str:
    resp = requests.post(f"{api.url}/tasks", json={"tool": tool, "arguments": args}, timeout=10)
    assert resp.status_code == 202, resp.text
    task_id: str = resp.json()["id"]
    return task_id


def test_sigterm_finishes_and_acks_the_task_in_hand_then_exits_0(
        rabbitmq: RabbitMQNode, services: ServiceFactory, queue_names: QueueNames) -> None:
    api = services.api(amqp_url=rabbitmq.amqp_url, task_queue=queue_names.tasks)
    agent = services.agent(amqp_url=rabbitmq.amqp_url, task_queue=queue_names.tasks,
                           results_queue=queue_names.results)
    # long enough that the signal surely lands mid-task on a slow machine
    task_id = _post(api, "io", io_ms=5000)
    wait_for(lambda: _current_task(agent), lambda t: t == task_id,
             what="the agent to start the 5 s task", expected=task_id, timeout=15)
    agent.signal(signal.SIGTERM)
    assert agent.wait_exit(timeout=20) == 0
    records = drain_json(rabbitmq.amqp_url, queue_names.results, expected=1, timeout=10)
    assert [(r["id"], r["outcome"], r["redelivered"]) for r in records] == [
        (task_id, "ok", False)]
    assert records[0]["finished_at"] - records[0]["started_at"] >= 4.9
    assert queue_depth(rabbitmq.amqp_url, queue_names.tasks) == 0  # acked, not requeued
    assert "signal 15" in agent.log_tail()


def test_sigkill_mid_task_is_redelivered_to_another_agent_and_counted(
        rabbitmq: RabbitMQNode, services: ServiceFactory, queue_names: QueueNames) -> None:
    api = services.api(amqp_url=rabbitmq.amqp_url, task_queue=queue_names.tasks)
    agents = {name: services.agent(amqp_url=rabbitmq.amqp_url, task_queue=queue_names.tasks,
                                   results_queue=queue_names.results, pod_name=name)
              for name in ("agent-a", "agent-b")}
    task_id = _post(api, "io", io_ms=5000)  # still running when the kill lands

    def holder() -> str | None:
        return next((n for n, a in agents.items() if _current_task(a) == task_id), None)

    victim = wait_for(holder, lambda h: h is not None, what="an agent to take the task",
                      expected="agent-a or agent-b", timeout=15)
    assert victim is not None
    survivor = "agent-b" if victim == "agent-a" else "agent-a"
    agents[victim].signal(signal.SIGKILL)
    assert agents[victim].wait_exit(timeout=10) == -signal.SIGKILL
    records = drain_json(rabbitmq.amqp_url, queue_names.results, expected=1, timeout=30)
    assert [(r["id"], r["pod"], r["redelivered"], r["outcome"]) for r in records] == [
        (task_id, survivor, True, "ok")]
    assert metric(agents[survivor].metrics(), "scalelab_agent_redeliveries_total") == 1


def test_broker_restart_with_tasks_queued_loses_none(
        rabbitmq: RabbitMQNode, services: ServiceFactory, queue_names: QueueNames) -> None:
    api = services.api(amqp_url=rabbitmq.amqp_url, task_queue=queue_names.tasks)
    agent = services.agent(amqp_url=rabbitmq.amqp_url, task_queue=queue_names.tasks,
                           results_queue=queue_names.results)
    # 1 s each: one agent cannot drain them while they are posted, even on a slow disk
    before = [_post(api, "io", io_ms=1000) for _ in range(10)]
    assert queue_depth(rabbitmq.amqp_url, queue_names.tasks) >= 5  # still queued
    rabbitmq.restart()
    # the API reconnects on the next request (one retry inside the request, then backoff)
    after = []
    for _ in range(5):
        resp = wait_for(
            lambda: requests.post(f"{api.url}/tasks",
                                  json={"tool": "io", "arguments": {"io_ms": 10}}, timeout=10),
            lambda r: r.status_code == 202, what="the API to publish after the restart",
            expected=202, timeout=30, interval=0.5)
        after.append(resp.json()["id"])
    records = drain_json(rabbitmq.amqp_url, queue_names.results, expected=15, timeout=60)
    seen = Counter(r["id"] for r in records)
    assert set(before + after) <= set(seen)  # none lost
    duplicates = sum(seen.values()) - len(seen)
    redelivered = sum(1 for r in records if r["redelivered"])
    assert duplicates <= redelivered  # any duplicate is a redelivery the agent counted
    wait_for(lambda: requests.get(f"{agent.url}/readyz", timeout=2).status_code,
             lambda s: s == 200, what="the agent to be reconnected", expected=200, timeout=30)
