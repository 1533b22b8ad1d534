"""Service throughput figures (printed, never asserted): run with ``tox -e bench``.

- broker bring-up time (the session's private RabbitMQ node)
- tasks/s the API accepts with publisher confirms, single and batch endpoints
- per-task overhead of one agent on tiny io tasks (1 ms of waiting each)
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from scalelab.procs.rabbitmq import RabbitMQNode
from tests.conftest import QueueNames, ServiceFactory, drain_json

pytestmark = [pytest.mark.bench, pytest.mark.slow]

TINY = {"tool": "io", "arguments": {"io_ms": 1}}


def _post_many(url: str, n: int, *, clients: int) -> float:
    """POST ``n`` single tasks from ``clients`` threads; return elapsed seconds."""
    def worker(count: int) -> None:
        with requests.Session() as session:
            for _ in range(count):
                resp = session.post(f"{url}/tasks", json=TINY, timeout=10)
                assert resp.status_code == 202, resp.text

    share = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, share))
    return time.perf_counter() - began


def test_bench_services(rabbitmq: RabbitMQNode, services: ServiceFactory,
                        queue_names: QueueNames) -> None:
    print(f"\n[bench] rabbitmq node ready in {rabbitmq.startup_seconds or float('nan'):.2f} s "
          f"(RabbitMQ {rabbitmq.version()})")
    api = services.api(amqp_url=rabbitmq.amqp_url, task_queue=queue_names.tasks)
    _post_many(api.url, 20, clients=4)  # warm the per-thread connections

    n_single = 600
    for clients in (1, 8):
        elapsed = _post_many(api.url, n_single, clients=clients)
        print(f"[bench] api POST /tasks, {clients} client(s): {n_single / elapsed:.0f} tasks/s "
              f"({elapsed / n_single * 1000:.2f} ms per request)")

    batches, size = 20, 100
    with requests.Session() as session:
        began = time.perf_counter()
        for _ in range(batches):
            resp = session.post(f"{api.url}/tasks/batch", json={"tasks": [TINY] * size},
                                timeout=30)
            assert resp.status_code == 202
        elapsed = time.perf_counter() - began
    print(f"[bench] api POST /tasks/batch ({size} per batch, 1 client): "
          f"{batches * size / elapsed:.0f} tasks/s")

    queued = 20 + 2 * n_single + batches * size
    agent = services.agent(amqp_url=rabbitmq.amqp_url, task_queue=queue_names.tasks,
                           results_queue=queue_names.results)
    records = drain_json(rabbitmq.amqp_url, queue_names.results, expected=queued, timeout=300)
    span = max(r["finished_at"] for r in records) - min(r["started_at"] for r in records)
    per_task = span / len(records)
    print(f"[bench] agent, 1 replica, PREFETCH=1, io_ms=1: {len(records) / span:.0f} tasks/s, "
          f"{per_task * 1000:.2f} ms per task, overhead {(per_task - 0.001) * 1000:.2f} ms "
          f"beyond the 1 ms tool")
    assert agent.running()
