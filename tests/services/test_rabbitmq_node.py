"""The private RabbitMQ node: ready means usable, stop leaves nothing behind."""

from __future__ import annotations

import socket
from pathlib import Path

import pika
import psutil
import pytest
import requests
from mirakuru.base_env import processes_with_env

from scalelab.errors import MissingDependencyError, ProcessStartError, WaitTimeout
from scalelab.procs import rabbitmq as rabbitmq_mod
from scalelab.procs.rabbitmq import GUEST, ExistingRabbitMQ, RabbitMQNode
from scalelab.waiting import wait_for


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_node_serves_amqp_management_and_prometheus(rabbitmq: RabbitMQNode) -> None:
    assert rabbitmq.running()
    assert rabbitmq.version().startswith("3.")
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq.amqp_url))
    try:
        ch = conn.channel()
        ch.queue_declare(queue="node-smoke", auto_delete=True)
    finally:
        conn.close()
    overview = requests.get(f"{rabbitmq.management_url}/api/overview", auth=GUEST, timeout=5)
    assert overview.json()["node"] == rabbitmq.node_name
    text = requests.get(f"{rabbitmq.prometheus_url}/metrics", timeout=5).text
    assert "rabbitmq_build_info" in text or "rabbitmq_identity_info" in text
    # private: bound to loopback on our own ports, never the system's 5672
    assert rabbitmq.amqp_port != 5672
    assert rabbitmq.amqp_url.startswith("amqp://guest:guest@127.0.0.1:")
    # every listening socket of the node's processes (beam, epmd) is on loopback,
    # the Erlang distribution port included
    marker = rabbitmq._executor._uuid  # type: ignore[union-attr]
    listening = []
    for pid in processes_with_env("mirakuru_uuid", marker):
        try:
            conns = psutil.Process(pid).net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        listening += [c.laddr for c in conns if c.status == psutil.CONN_LISTEN]
    ports = {addr.port for addr in listening}
    assert {rabbitmq.amqp_port, rabbitmq.dist_port} <= ports, listening
    exposed = [a for a in listening if a.ip not in ("127.0.0.1", "::1")]
    assert exposed == [], f"listening beyond loopback: {exposed}"


@pytest.mark.slow
def test_restart_keeps_messages_and_ports_then_stop_leaves_nothing() -> None:
    node = RabbitMQNode()
    try:
        node.start()
        marker = node._executor._uuid  # type: ignore[union-attr]
        conn = pika.BlockingConnection(pika.URLParameters(node.amqp_url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(queue="durable-q", durable=True)
        for i in range(5):
            ch.basic_publish("", "durable-q", f"m{i}".encode(),
                             pika.BasicProperties(delivery_mode=2))
        conn.close()
        port = node.amqp_port
        node.restart()
        assert node.amqp_port == port
        conn = pika.BlockingConnection(pika.URLParameters(node.amqp_url))
        depth = conn.channel().queue_declare(queue="durable-q", durable=True,
                                             passive=True).method.message_count
        conn.close()
        assert depth == 5
        workdir = node.workdir
        assert workdir is not None and workdir.exists()
        marker = node._executor._uuid  # type: ignore[union-attr]
    finally:
        node.stop()
    node.stop()  # idempotent
    assert not node.running()
    assert not workdir.exists()

    def leftovers() -> list[int]:
        alive = []
        for pid in processes_with_env("mirakuru_uuid", marker):
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                continue
        return alive

    # stop() SIGKILLs what outlives the grace period (epmd): let the kernel reap it
    wait_for(leftovers, lambda pids: pids == [], what="no process of the node after stop",
             expected=[], timeout=10, interval=0.2)
    ports = (node.amqp_port, node.management_port, node.prometheus_port, node.epmd_port)
    wait_for(lambda: [p for p in ports if _port_open(p)], lambda open_: open_ == [],
             what="the node's ports closed after stop", expected=[], timeout=10, interval=0.2)


@pytest.mark.slow
def test_broken_config_fails_fast_with_log_tail() -> None:
    node = RabbitMQNode(extra_config={"listeners.tcp.default": "not-a-listener"},
                        startup_timeout=120)
    with pytest.raises(ProcessStartError) as info:
        node.start()
    node.stop()
    assert "exited with code" in str(info.value)
    assert "rabbit" in str(info.value).lower()  # the log tail is in the message
    assert not node.running()


def test_missing_binary_names_the_package(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setattr(rabbitmq_mod, "SERVER_SCRIPT_CANDIDATES", (str(tmp_path / "none"),))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDependencyError) as info:
        RabbitMQNode().start()
    assert "apt-get install -y rabbitmq-server" in str(info.value)


@pytest.mark.slow
def test_existing_broker_has_the_same_interface(rabbitmq: RabbitMQNode) -> None:
    attached = ExistingRabbitMQ(amqp_url=rabbitmq.amqp_url,
                                management_url=rabbitmq.management_url,
                                prometheus_url=rabbitmq.prometheus_url)
    with attached:
        assert attached.amqp_port == rabbitmq.amqp_port
        assert attached.management_port == rabbitmq.management_port
        assert attached.prometheus_port == rabbitmq.prometheus_port
        assert attached.version() == rabbitmq.version()
        assert attached.running()
    assert rabbitmq.running()  # attaching and detaching never stops someone else's broker


def test_existing_broker_that_is_not_there_times_out_with_details() -> None:
    closed = ExistingRabbitMQ.from_host(amqp_port=1, management_port=1, prometheus_port=1)
    closed.timeout = 0.5
    with pytest.raises(WaitTimeout) as info:
        closed.start()
    assert "amqp" in str(info.value) and "expected" in str(info.value)


@pytest.mark.slow
def test_per_queue_depth_is_exported_as_docs_say(rabbitmq: RabbitMQNode) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq.amqp_url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(queue="depth-doc-q", auto_delete=False)
        ch.basic_publish("", "depth-doc-q", b"x")
        text = requests.get(f"{rabbitmq.prometheus_url}/metrics/detailed",
                            params={"family": "queue_coarse_metrics"}, timeout=5).text
        ch.queue_delete("depth-doc-q")
    finally:
        conn.close()
    assert 'rabbitmq_detailed_queue_messages_ready{vhost="/",queue="depth-doc-q"}' in text
