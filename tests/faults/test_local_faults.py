"""The local fault injector against real processes: a partition stalls a real agent on a
real broker and loses nothing; a "slow" fault makes a real agent burn more CPU per task."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from scalelab.backends.local.faults import LocalFaults, victims
from scalelab.faults import Partition, Slow
from scalelab.procs.rabbitmq import RabbitMQNode
from scalelab.procs.tcp_proxy import TcpProxy
from scalelab.waiting import wait_for
from tests.conftest import QueueNames, ServiceFactory, amqp_channel, drain_json

pytestmark = pytest.mark.slow


def _via(proxy: TcpProxy, amqp_url: str) -> str:
    parts = urlsplit(amqp_url)
    netloc = f"{parts.username}:{parts.password}@{proxy.host}:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _post(api_url: str, n: int, **args: int) -> list[str]:
    ids = []
    for _ in range(n):
        resp = requests.post(f"{api_url}/tasks", json={"tool": "io", "arguments": args or
                                                       {"io_ms": 10}}, timeout=10)
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["id"])
    return ids


def _take_all(amqp_url: str, queue: str) -> list[bytes]:
    """Whatever is on ``queue`` right now (drain_json would wait for in-flight acks)."""
    connection, channel = amqp_channel(amqp_url)
    try:
        out: list[bytes] = []
        while True:
            method, _props, body = channel.basic_get(queue=queue, auto_ack=True)
            if method is None:
                return out
            out.append(body)
    finally:
        connection.close()


def _injector(**parts: object) -> LocalFaults:
    base: dict[str, object] = {"supervisor": lambda d: None, "broker": None, "proxies": {},
                               "fault_files": {}}
    return LocalFaults(**{**base, **parts})  # type: ignore[arg-type]


def test_a_partition_cuts_the_agent_off_and_loses_nothing(
        rabbitmq: RabbitMQNode, queue_names: QueueNames, services: ServiceFactory) -> None:
    upstream = urlsplit(rabbitmq.amqp_url)
    with TcpProxy(upstream=(upstream.hostname or "127.0.0.1", upstream.port or 5672)) as proxy:
        faults = _injector(proxies={"agent": proxy})
        api = services.api(amqp_url=rabbitmq.amqp_url, task_queue=queue_names.tasks)
        agent = services.agent(amqp_url=_via(proxy, rabbitmq.amqp_url),
                               task_queue=queue_names.tasks, results_queue=queue_names.results)
        in_hand = _post(api.url, 1, io_ms=3000)[0]
        wait_for(lambda: requests.get(f"{agent.url}/healthz", timeout=2).json()["current_task"],
                 lambda t: t == in_hand, what="the agent to hold the slow task",
                 expected=in_hand, timeout=30, interval=0.05)
        effect = faults.partition(Partition(deployment="agent", seconds=5), heal=False)
        assert effect == {"connections_closed": 1, "cut": True}
        during = _post(api.url, 5)
        time.sleep(4.0)  # the claim under test is that nothing is processed in this window
        stalled = _take_all(rabbitmq.amqp_url, queue_names.results)
        assert stalled == [], f"expected no result while cut off, saw {stalled!r}"
        assert faults.partition(Partition(deployment="agent", seconds=5), heal=True) == {
            "cut": False}
        after = drain_json(rabbitmq.amqp_url, queue_names.results, expected=6, timeout=60)
        assert sorted(r["id"] for r in after) == sorted([in_hand, *during])
        redelivered = {r["id"] for r in after if r["redelivered"]}
        assert redelivered == {in_hand}, "the task held at the cut comes back redelivered"
        assert proxy.connections_total >= 2, "the agent reconnected after the heal"


def test_a_slow_fault_adds_cpu_to_every_task_until_healed(
        rabbitmq: RabbitMQNode, queue_names: QueueNames, services: ServiceFactory,
        tmp_path: Path) -> None:
    fault_file = tmp_path / "faults" / "agent.json"
    faults = _injector(fault_files={"agent": fault_file})
    api = services.api(amqp_url=rabbitmq.amqp_url, task_queue=queue_names.tasks)
    services.agent(amqp_url=rabbitmq.amqp_url, task_queue=queue_names.tasks,
                   results_queue=queue_names.results, FAULT_FILE=str(fault_file))

    def took(n: int) -> list[float]:
        _post(api.url, n)
        done = drain_json(rabbitmq.amqp_url, queue_names.results, expected=n, timeout=60)
        return [r["finished_at"] - r["started_at"] for r in done]

    assert max(took(2)) < 0.25
    faults.slow(Slow(deployment="agent", cpu_ms_extra=400, seconds=60), heal=False)
    # the agent re-reads its fault file at most every 0.5 s: wait for the first slowed task
    wait_for(lambda: took(1)[0], lambda d: d >= 0.38, what="a task slowed by the fault",
             expected=">= 0.4 s", timeout=15, interval=0)
    slowed = took(2)
    assert min(slowed) >= 0.38, f"expected >= 0.4 s per task while slowed, saw {slowed}"
    faults.slow(Slow(deployment="agent", cpu_ms_extra=400, seconds=60), heal=True)
    assert not fault_file.exists()
    wait_for(lambda: took(1)[0], lambda d: d < 0.25, what="a task at full speed again",
             expected="< 0.25 s", timeout=15, interval=0)
    assert max(took(2)) < 0.25


def test_a_kill_takes_running_pods_ready_and_oldest_first() -> None:
    def pod(name: str, *, ready: bool, created: float, phase: str = "Running",
            deleting: bool = False, pid: int | None = 1) -> SimpleNamespace:
        return SimpleNamespace(name=name, ready=ready, created=created, phase=phase,
                               deleting=deleting, pid=pid)

    pods = [pod("young", ready=True, created=30), pod("old", ready=True, created=10),
            pod("starting", ready=False, created=5), pod("pending", ready=False, created=1,
                                                        phase="Pending", pid=None),
            pod("leaving", ready=True, created=0, deleting=True)]
    assert [p.name for p in victims(pods, 2)] == ["old", "young"]
    assert [p.name for p in victims(pods, 5)] == ["old", "young", "starting"]
