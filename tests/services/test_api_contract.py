"""The API's error contract over real HTTP: every bad-input class gets its status code."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import port_for
import pytest
import requests

from scalelab.procs.rabbitmq import GUEST, RabbitMQNode
from scalelab.waiting import wait_for
from tests.conftest import ServiceFactory, ServiceProcess, metric, queue_depth

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(rabbitmq: RabbitMQNode, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[ServiceProcess]:
    factory = ServiceFactory(log_dir=Path(tmp_path_factory.mktemp("api")))
    try:
        yield factory.api(amqp_url=rabbitmq.amqp_url, task_queue="contract-tasks",
                          BATCH_MAX="5", ready_path="/readyz")
    finally:
        factory.stop_all()


def _ok(**args: int) -> dict[str, Any]:
    return {"tool": "cpu", "arguments": {"cpu_ms": 10, **args}}


# (case id, route, raw body, status, field in the answer)
CASES: list[tuple[str, str, bytes, int, str | None]] = [
    ("malformed json", "/tasks", b'{"tool": "cpu", ', 400, "body"),
    ("empty body", "/tasks", b"", 400, "body"),
    ("not an object", "/tasks", b"[1, 2]", 422, "body"),
    ("unknown tool", "/tasks", json.dumps({"tool": "gpu", "arguments": {}}).encode(), 422,
     "tool"),
    ("missing tool", "/tasks", json.dumps({"arguments": {"cpu_ms": 1}}).encode(), 422, "tool"),
    ("unknown top-level key", "/tasks",
     json.dumps({**_ok(), "priority": 1}).encode(), 422, "priority"),
    ("arguments not object", "/tasks", json.dumps({"tool": "io", "arguments": 5}).encode(),
     422, "arguments"),
    ("missing argument", "/tasks", json.dumps({"tool": "io", "arguments": {}}).encode(), 422,
     "arguments.io_ms"),
    ("mixed missing io_ms", "/tasks",
     json.dumps({"tool": "mixed", "arguments": {"cpu_ms": 5}}).encode(), 422,
     "arguments.io_ms"),
    ("unknown argument", "/tasks", json.dumps(_ok(gpu_ms=3)).encode(), 422, "arguments.gpu_ms"),
    ("string argument", "/tasks",
     json.dumps({"tool": "cpu", "arguments": {"cpu_ms": "10"}}).encode(), 422,
     "arguments.cpu_ms"),
    ("float argument", "/tasks",
     json.dumps({"tool": "cpu", "arguments": {"cpu_ms": 1.5}}).encode(), 422,
     "arguments.cpu_ms"),
    ("bool argument", "/tasks",
     json.dumps({"tool": "cpu", "arguments": {"cpu_ms": True}}).encode(), 422,
     "arguments.cpu_ms"),
    ("zero", "/tasks", json.dumps({"tool": "cpu", "arguments": {"cpu_ms": 0}}).encode(), 422,
     "arguments.cpu_ms"),
    ("too large", "/tasks",
     json.dumps({"tool": "io", "arguments": {"io_ms": 60_001}}).encode(), 422,
     "arguments.io_ms"),
    ("body over 64 KiB", "/tasks", b'{"tool": "cpu", "pad": "' + b"x" * 70_000 + b'"}', 413,
     "body"),
    ("batch not object", "/tasks/batch", b"[]", 422, "tasks"),
    ("batch empty", "/tasks/batch", b'{"tasks": []}', 422, "tasks"),
    ("batch over BATCH_MAX", "/tasks/batch",
     json.dumps({"tasks": [_ok()] * 6}).encode(), 422, "tasks"),
    ("batch bad item", "/tasks/batch",
     json.dumps({"tasks": [_ok(), _ok(), {"tool": "io", "arguments": {"io_ms": -4}}]}).encode(),
     422, "tasks[2].arguments.io_ms"),
    ("batch malformed", "/tasks/batch", b'{"tasks": [', 400, "body"),
    # the parser itself gives up (RecursionError; ValueError past 4300 digits): still 400
    ("nested too deeply", "/tasks", b"[" * 20_000, 400, "body"),
    ("integer too long", "/tasks",
     b'{"tool": "cpu", "arguments": {"cpu_ms": ' + b"9" * 5000 + b"}}", 400, "body"),
]


@pytest.mark.parametrize(("route", "body", "status", "field"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_its_status_and_publishes_nothing(
        api: ServiceProcess, rabbitmq: RabbitMQNode, route: str, body: bytes, status: int,
        field: str | None) -> None:
    before = queue_depth(rabbitmq.amqp_url, "contract-tasks")
    resp = requests.post(f"{api.url}{route}", data=body,
                         headers={"Content-Type": "application/json"}, timeout=10)
    assert resp.status_code == status, resp.text
    answer = resp.json()
    assert answer["error"]
    assert answer.get("field") == field
    if field and field.startswith("tasks["):
        assert answer["index"] == 2
    assert queue_depth(rabbitmq.amqp_url, "contract-tasks") == before  # all-or-nothing


def test_good_input_is_accepted_and_the_counters_show_it(api: ServiceProcess,
                                                         rabbitmq: RabbitMQNode) -> None:
    before = queue_depth(rabbitmq.amqp_url, "contract-tasks")
    resp = requests.post(f"{api.url}/tasks", json=_ok(), timeout=10)
    assert resp.status_code == 202 and resp.json()["id"]
    resp = requests.post(f"{api.url}/tasks/batch", json={"tasks": [_ok()] * 5}, timeout=10)
    assert resp.status_code == 202 and len(resp.json()["ids"]) == 5
    assert queue_depth(rabbitmq.amqp_url, "contract-tasks") == before + 6
    m = api.metrics()
    assert metric(m, "scalelab_api_tasks_published_total", tool="cpu") >= 6
    assert metric(m, "scalelab_api_request_duration_seconds_count",
                  route="/tasks", status="422") >= 1
    assert metric(m, "scalelab_api_request_duration_seconds_count",
                  route="/tasks", status="413") >= 1
    assert requests.get(f"{api.url}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{api.url}/readyz", timeout=5).status_code == 200
    assert requests.get(f"{api.url}/nope", timeout=5).status_code == 404


def test_broker_unreachable_answers_503_with_retry_after(services: ServiceFactory) -> None:
    closed = port_for.select_random()
    api = services.api(amqp_url=f"amqp://guest:guest@127.0.0.1:{closed}/%2F",
                       task_queue="nowhere")
    assert requests.get(f"{api.url}/healthz", timeout=5).status_code == 200
    ready = requests.get(f"{api.url}/readyz", timeout=10)
    assert ready.status_code == 503
    for route, body in (("/tasks", _ok()), ("/tasks/batch", {"tasks": [_ok()] * 3})):
        resp = requests.post(f"{api.url}{route}", json=body, timeout=10)
        assert resp.status_code == 503, resp.text
        assert int(resp.headers["Retry-After"]) >= 1
        assert resp.json()["published"] == []
    m = api.metrics()
    assert metric(m, "scalelab_api_publish_failures_total", reason="connect") == 4
    assert metric(m, "scalelab_api_tasks_published_total") == 0


def test_unroutable_publish_is_503_then_the_queue_is_redeclared(
        rabbitmq: RabbitMQNode, services: ServiceFactory) -> None:
    api = services.api(amqp_url=rabbitmq.amqp_url, task_queue="unroutable-tasks",
                       THREADS="1")  # one thread: the request reuses the connection
    assert requests.post(f"{api.url}/tasks", json=_ok(), timeout=10).status_code == 202
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq.amqp_url))
    conn.channel().queue_delete("unroutable-tasks")
    conn.close()
    resp = requests.post(f"{api.url}/tasks", json=_ok(), timeout=10)
    assert resp.status_code == 503, resp.text
    assert resp.json()["reason"] == "unroutable" and "Retry-After" in resp.headers
    assert metric(api.metrics(), "scalelab_api_publish_failures_total",
                  reason="unroutable") == 1
    resp = requests.post(f"{api.url}/tasks", json=_ok(), timeout=10)
    assert resp.status_code == 202  # reconnected and declared the queue again
    assert queue_depth(rabbitmq.amqp_url, "unroutable-tasks") == 1


def test_a_publish_the_broker_refuses_is_503_and_counted_as_nack(
        rabbitmq: RabbitMQNode, services: ServiceFactory) -> None:
    """A full queue with overflow reject-publish makes the broker nack the publish: the
    client must hear 503 with Retry-After, not 202 for a task that was never stored."""
    queue = f"full-{uuid.uuid4().hex[:8]}"
    policy = f"{rabbitmq.management_url}/api/policies/%2F/{queue}"
    resp = requests.put(policy, auth=GUEST, timeout=10, json={
        "pattern": f"^{queue}$", "apply-to": "queues", "priority": 10,
        "definition": {"max-length": 0, "overflow": "reject-publish"}})
    assert resp.status_code in (201, 204), resp.text
    try:
        api = services.api(amqp_url=rabbitmq.amqp_url, task_queue=queue)
        # policies apply a moment after the queue exists: retry until the nack shows
        resp = wait_for(lambda: requests.post(f"{api.url}/tasks", json=_ok(), timeout=10),
                        lambda r: r.status_code == 503, what="a refused publish",
                        expected=503, timeout=30, interval=0.5)
        assert resp.json()["reason"] == "nack" and int(resp.headers["Retry-After"]) >= 1
        assert resp.json()["published"] == []
        assert metric(api.metrics(), "scalelab_api_publish_failures_total", reason="nack") >= 1
        assert queue_depth(rabbitmq.amqp_url, queue) == 0
    finally:
        requests.delete(policy, auth=GUEST, timeout=10)
