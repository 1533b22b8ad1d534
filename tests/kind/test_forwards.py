"""The port-forward watchdog: forwards that exit, and forwards that stall without exiting.

kubernetes/kubernetes#78446: under load a ``kubectl port-forward`` can stop carrying
traffic while its process keeps running and its local port keeps accepting connections.
STAND-IN, NOT A CLUSTER: ``tests/kind/standins.ForwardStandIn`` takes the place of the
kubectl process; it is a real TCP server on the local port kubectl would have bound, and
``stall()`` makes it accept connections without ever answering, as a stalled forward does.
The probes, the failure counting and the restarts are the real code, over real sockets.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import port_for
import pytest
import requests

from scalelab.backends.cluster.forwards import (
    AMQP_HEADER,
    Forward,
    PortForwards,
    probe_forward,
)
from scalelab.procs.rabbitmq import RabbitMQNode
from scalelab.waiting import wait_for
from tests.kind.standins import ForwardStandIn

API = Forward(key="api", namespace="scalelab-ab12cd", service="api", port=8080, probe="http",
              path="/healthz")


class Kubectl:
    """STAND-IN for spawning `kubectl port-forward`: a ForwardStandIn on the local port."""

    def __init__(self) -> None:
        self.spawned: list[tuple[tuple[str, ...], ForwardStandIn]] = []

    def __call__(self, cmd: Sequence[str], *, log_file: Path) -> ForwardStandIn:
        proc = ForwardStandIn(int(str(cmd[-1]).split(":")[0]))
        self.spawned.append((tuple(str(c) for c in cmd), proc))
        return proc

    @property
    def last(self) -> ForwardStandIn:
        return self.spawned[-1][1]

    def stop_all(self) -> None:
        for _, proc in self.spawned:
            proc.stop()


def forwards(tmp_path: Path, kubectl: Kubectl, **kwargs: float) -> PortForwards:
    options = dict(start_timeout=10.0, check_interval=60.0, max_restarts=3,
                   probe_timeout=0.3, probe_failures=3)
    options.update(kwargs)
    return PortForwards(kubectl_cmd=lambda *args: ["kubectl", *args], spawn=kubectl,
                        log_dir=tmp_path, **options)  # type: ignore[arg-type]


def get(port: int) -> int:
    return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code


def test_a_stalled_forward_is_stopped_and_restarted_on_the_same_port(tmp_path: Path) -> None:
    kubectl = Kubectl()
    pf = forwards(tmp_path, kubectl)
    try:
        port = pf.start([API])["api"]
        first_cmd, first = kubectl.spawned[0]
        assert first_cmd[-2:] == ("svc/api", f"{port}:8080")
        assert pf.heal() == [] and first.answered >= 1, "a forward that answers is left alone"
        first.stall()
        assert first.running(), "a stalled kubectl still runs: only a probe can tell"
        assert pf.heal() == [] and pf.heal() == [], "two failed probes are not yet a stall"
        assert pf.heal() == ["api"], "the third failed probe in a row restarts it"
        assert first.stopped, "the stalled process is stopped before the new one binds"
        assert len(kubectl.spawned) == 2 and kubectl.spawned[1][0] == first_cmd
        assert pf.ports == {"api": port}
        assert get(port) == 200, "traffic goes through the restarted forward"
        assert pf.restarts == {"api": 1}
        (reason,) = pf.restart_reasons["api"]
        assert reason.startswith("stalled: 3 probes failed") and "timed out" in reason
    finally:
        pf.stop()
    assert all(proc.stopped for _, proc in kubectl.spawned)


def test_a_probe_that_answers_again_resets_the_count(tmp_path: Path) -> None:
    """Two slow answers and a good one are not a stall (no restart under a passing load)."""
    kubectl = Kubectl()
    pf = forwards(tmp_path, kubectl)
    try:
        pf.start([API])
        proc = kubectl.last
        proc.stall()
        assert pf.heal() == [] and pf.heal() == []
        proc.stalled.clear()
        assert pf.heal() == []
        proc.stall()
        assert pf.heal() == [] and pf.heal() == []
        assert pf.restarts == {} and len(kubectl.spawned) == 1
    finally:
        pf.stop()
        kubectl.stop_all()


def test_an_exited_forward_is_restarted_without_waiting_for_probes(tmp_path: Path) -> None:
    kubectl = Kubectl()
    pf = forwards(tmp_path, kubectl)
    try:
        port = pf.start([API])["api"]
        kubectl.last.stop()    # the pod behind it went away: kubectl exits
        assert pf.heal() == ["api"]
        assert pf.restart_reasons == {"api": ["exited"]}
        assert get(port) == 200
    finally:
        pf.stop()


def test_stalls_count_against_max_restarts(tmp_path: Path) -> None:
    kubectl = Kubectl()
    pf = forwards(tmp_path, kubectl, max_restarts=1, probe_failures=1)
    try:
        pf.start([API])
        kubectl.last.stall()
        assert pf.heal() == ["api"]
        kubectl.last.stall()
        assert pf.heal() == [], "gives up after max_restarts"
        assert pf.restarts == {"api": 1} and len(kubectl.spawned) == 2
    finally:
        pf.stop()
        kubectl.stop_all()


def test_the_watchdog_restarts_a_stalled_forward_by_itself_and_stop_ends_it(
        tmp_path: Path) -> None:
    kubectl = Kubectl()
    pf = forwards(tmp_path, kubectl, check_interval=0.05, probe_timeout=0.2)
    try:
        port = pf.start([API])["api"]
        kubectl.last.stall()
        wait_for(lambda: len(kubectl.spawned), lambda n: n == 2,
                 what="the watchdog to restart the stalled forward", expected=2,
                 timeout=10.0, interval=0.05)
        assert pf.restarts == {"api": 1} and kubectl.spawned[0][1].stopped
        assert get(port) == 200
        watcher = pf.watcher
        assert watcher is not None and watcher.is_alive()
        kubectl.last.stall()   # stop() must not hang on a forward stalled meanwhile
    finally:
        t0 = time.monotonic()
        pf.stop()
    assert time.monotonic() - t0 < 5
    assert not watcher.is_alive()
    assert all(proc.stopped for _, proc in kubectl.spawned)


def test_a_fixed_local_port_is_used(tmp_path: Path) -> None:
    """``scalelab grafana`` forwards to a fixed port (3000 by default)."""
    kubectl = Kubectl()
    pf = forwards(tmp_path, kubectl)
    fixed = port_for.select_random()
    grafana = Forward(key="grafana", namespace="monitoring", service="kps-grafana", port=80,
                      probe="http", path="/api/health", local_port=fixed)
    try:
        assert pf.start([grafana]) == {"grafana": fixed}
        assert kubectl.spawned[0][0][-1] == f"{fixed}:80"
    finally:
        pf.stop()


# -- the probes, against real sockets ------------------------------------------------------
def test_probe_forward_over_http_and_amqp(tmp_path: Path) -> None:
    answering = ForwardStandIn(port_for.select_random())
    stalled = ForwardStandIn(port_for.select_random())
    stalled.stall()
    closed = port_for.select_random()
    try:
        assert probe_forward(API, answering.port, timeout=1.0) is None
        error = probe_forward(API, stalled.port, timeout=0.3)
        assert error is not None and "timed out" in error
        error = probe_forward(API, closed, timeout=0.3)
        assert error is not None and "ConnectionRefused" in error
        amqp = dataclasses.replace(API, key="amqp", probe="amqp")
        assert probe_forward(amqp, answering.port, timeout=1.0) is None
        error = probe_forward(amqp, stalled.port, timeout=0.3)
        assert error is not None and "timed out" in error, \
            f"expected the AMQP header's reply to time out, got {error!r}"
        tcp = dataclasses.replace(API, probe="tcp")
        assert probe_forward(tcp, stalled.port, timeout=0.3) is None, \
            "TCP connect alone cannot see a stall: why HTTP and AMQP forwards get more"
    finally:
        answering.stop()
        stalled.stop()


def test_the_amqp_probe_sends_the_protocol_header_and_needs_a_reply() -> None:
    """A broker answers the AMQP 0-9-1 header with Connection.Start; a forward whose
    pod-side stream is gone closes without a byte."""
    received: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def serve(reply: bytes) -> None:
        conn, _ = server.accept()
        with conn:
            received.append(conn.recv(len(AMQP_HEADER)))
            if reply:
                conn.sendall(reply)

    amqp = dataclasses.replace(API, key="amqp", probe="amqp")
    try:
        for reply, ok in ((b"\x01\x00\x00", True), (b"", False)):
            t = threading.Thread(target=serve, args=(reply,))
            t.start()
            error = probe_forward(amqp, port, timeout=2.0)
            t.join(timeout=5)
            assert (error is None) is ok, error
        assert received == [AMQP_HEADER, AMQP_HEADER]
    finally:
        server.close()



@pytest.mark.slow
def test_the_probes_pass_against_a_real_broker(rabbitmq: RabbitMQNode) -> None:
    """What the forwards reach on a cluster: RabbitMQ answers the AMQP header (with its
    Connection.Start) and its management UI answers the GET, here a real local broker."""
    amqp = Forward(key="amqp", namespace="n", service="rabbitmq", port=5672, probe="amqp")
    management = Forward(key="rabbitmq_management", namespace="n", service="rabbitmq",
                         port=15672, probe="http", path="/")
    assert probe_forward(amqp, rabbitmq.amqp_port, timeout=5.0) is None
    assert probe_forward(management, rabbitmq.management_port, timeout=5.0) is None
