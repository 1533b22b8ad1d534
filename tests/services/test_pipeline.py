"""API -> broker -> agents, all real processes: every task accounted for, counters agree."""

from __future__ import annotations

import json
from collections import Counter

import pika
import pytest
import requests

from scalelab.procs.rabbitmq import RabbitMQNode
from tests.conftest import QueueNames, ServiceFactory, drain_json, metric, queue_depth

pytestmark = pytest.mark.slow


def test_tasks_posted_are_processed_once_and_counted(
        rabbitmq: RabbitMQNode, services: ServiceFactory, queue_names: QueueNames) -> None:
    api = services.api(amqp_url=rabbitmq.amqp_url, task_queue=queue_names.tasks)
    agents = [services.agent(amqp_url=rabbitmq.amqp_url, task_queue=queue_names.tasks,
                             results_queue=queue_names.results, pod_name=f"agent-{i}")
              for i in range(2)]
    ids = []
    for i in range(12):
        tool = ("cpu", "io", "mixed")[i % 3]
        args = {"cpu": {"cpu_ms": 20}, "io": {"io_ms": 20},
                "mixed": {"cpu_ms": 10, "io_ms": 10}}[tool]
        resp = requests.post(f"{api.url}/tasks", json={"tool": tool, "arguments": args},
                             timeout=10)
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["id"])
    resp = requests.post(f"{api.url}/tasks/batch",
                         json={"tasks": [{"tool": "io", "arguments": {"io_ms": 5}}] * 8},
                         timeout=10)
    assert resp.status_code == 202, resp.text
    ids += resp.json()["ids"]
    assert len(set(ids)) == 20

    records = drain_json(rabbitmq.amqp_url, queue_names.results, expected=20, timeout=60)
    assert Counter(r["id"] for r in records) == Counter(ids)  # none lost, none twice
    assert {r["outcome"] for r in records} == {"ok"}
    assert {r["pod"] for r in records} <= {"agent-0", "agent-1"}
    assert all(r["finished_at"] >= r["started_at"] for r in records)
    assert all(r["response"]["jsonrpc"] == "2.0" for r in records)
    assert queue_depth(rabbitmq.amqp_url, queue_names.tasks) == 0

    api_m = api.metrics()
    assert metric(api_m, "scalelab_api_tasks_published_total") == 20
    assert metric(api_m, "scalelab_api_tasks_published_total", tool="io") == 12
    assert metric(api_m, "scalelab_api_request_duration_seconds_count",
                  route="/tasks", status="202") == 12
    processed = [a.metrics() for a in agents]
    assert sum(metric(m, "scalelab_agent_tasks_processed_total") for m in processed) == 20
    assert sum(metric(m, "scalelab_agent_tasks_processed_total", tool="cpu", outcome="ok")
               for m in processed) == 4
    assert sum(metric(m, "scalelab_agent_queue_wait_seconds_count") for m in processed) == 20
    assert sum(metric(m, "scalelab_agent_redeliveries_total") for m in processed) == 0
    assert all(metric(m, "scalelab_agent_tasks_in_progress") == 0 for m in processed)


def test_message_on_the_queue_is_an_mcp_tools_call(
        rabbitmq: RabbitMQNode, services: ServiceFactory, queue_names: QueueNames) -> None:
    api = services.api(amqp_url=rabbitmq.amqp_url, task_queue=queue_names.tasks)
    resp = requests.post(f"{api.url}/tasks",
                         json={"tool": "mixed", "arguments": {"cpu_ms": 5, "io_ms": 7}},
                         timeout=10)
    assert resp.status_code == 202
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq.amqp_url))
    try:
        method, props, body = conn.channel().basic_get(queue_names.tasks, auto_ack=True)
    finally:
        conn.close()
    assert method is not None
    message = json.loads(body)
    assert message["jsonrpc"] == "2.0" and message["method"] == "tools/call"
    assert message["id"] == resp.json()["id"] == props.message_id
    assert message["params"]["name"] == "mixed"
    assert message["params"]["arguments"] == {"cpu_ms": 5, "io_ms": 7}
    assert message["params"]["_meta"]["enqueued_at"] > 0
    assert props.delivery_mode == 2 and props.timestamp > 0


def test_invalid_message_is_dead_lettered_and_counted(
        rabbitmq: RabbitMQNode, services: ServiceFactory, queue_names: QueueNames) -> None:
    agent = services.agent(amqp_url=rabbitmq.amqp_url, task_queue=queue_names.tasks,
                           results_queue=queue_names.results)
    # message id -> (reason, body)
    bad = {
        "bad_json": ("bad_json", b"{not json"),
        # these two made the parser itself raise (RecursionError, ValueError on a
        # 5000-digit integer): the agent died and the message killed the next one
        "too_deep": ("bad_json", b"[" * 20000),
        "huge_int": ("bad_json", b'{"jsonrpc": "2.0", "id": ' + b"9" * 5000 + b"}"),
        "bad_method": ("bad_method", json.dumps({
            "jsonrpc": "2.0", "id": "m1", "method": "tools/list", "params": {}}).encode()),
        "bad_tool": ("bad_tool", json.dumps({
            "jsonrpc": "2.0", "id": "t1", "method": "tools/call",
            "params": {"name": "gpu", "arguments": {}}}).encode()),
        "bad_arguments": ("bad_arguments", json.dumps({
            "jsonrpc": "2.0", "id": "a1", "method": "tools/call",
            "params": {"name": "cpu", "arguments": {"cpu_ms": -1}}}).encode()),
    }
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq.amqp_url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for message_id, (_, body) in bad.items():
            ch.basic_publish("", queue_names.tasks, body,
                             pika.BasicProperties(delivery_mode=2, message_id=message_id))
    finally:
        conn.close()
    dead = drain_json_raw(rabbitmq.amqp_url, queue_names.dead, expected=len(bad))
    # exactly once each, not requeued forever
    assert sorted(dead) == sorted(body for _, body in bad.values())
    records = drain_json(rabbitmq.amqp_url, queue_names.results, expected=len(bad), timeout=30)
    assert {r["id"]: r["reason"] for r in records} == {k: r for k, (r, _) in bad.items()}
    assert {r["outcome"] for r in records} == {"rejected"}
    assert agent.running(), "an invalid message must not kill the agent:\n" + agent.log_tail()
    m = agent.metrics()
    for reason in {r for r, _ in bad.values()}:
        expected = sum(1 for r, _ in bad.values() if r == reason)
        assert metric(m, "scalelab_agent_dead_lettered_total", reason=reason) == expected
    assert metric(m, "scalelab_agent_tasks_processed_total") == 0
    assert queue_depth(rabbitmq.amqp_url, queue_names.tasks) == 0


def drain_json_raw(amqp_url: str, queue: str, *, expected: int) -> list[bytes]:
    from scalelab.waiting import wait_for

    bodies: list[bytes] = []
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()

    def probe() -> int:
        while True:
            method, _p, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return len(bodies)
            bodies.append(body)

    try:
        wait_for(probe, lambda n: n >= expected, what=f"dead letters on {queue}",
                 expected=expected, timeout=30, interval=0.1)
    finally:
        conn.close()
    return bodies
