"""Shared fixtures: a private RabbitMQ for the session and the services as real processes.

Everything started here is torn down by a finalizer, whatever the test does. Tests get
unique queue names (``queue_names``) so they never see each other's messages.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import hypothesis
import pika
import port_for
import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from scalelab.errors import ProcessStartError
from scalelab.procs.executor import MarkedExecutor
from scalelab.procs.rabbitmq import RabbitMQNode
from scalelab.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
logging.getLogger("pika").setLevel(logging.CRITICAL)

# Property tests check behaviour, not speed: hypothesis' 200 ms deadline would turn a GC
# pause on a busy CI machine into a failure ("speed goals live in benchmarks").
hypothesis.settings.register_profile("scalelab", deadline=None)
hypothesis.settings.load_profile("scalelab")


# -- the broker ------------------------------------------------------------------------
#: The brokers the session fixture started, by AMQP URL (``drain_json`` asks them).
_BROKERS: dict[str, RabbitMQNode] = {}


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQNode]:
    """One private broker for the whole session (about 5 s to start)."""
    node = RabbitMQNode()
    try:
        node.start()
        _BROKERS[node.amqp_url] = node
        yield node
    finally:
        _BROKERS.pop(node.amqp_url, None)
        node.stop()


@pytest.fixture(autouse=True)
def _session_broker_alive(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test using the session broker fails at once, naming how the broker ended and its
    log tail, if the broker is gone; the test during which it died errors in teardown.

    Without this, a dead session broker showed up as every later service test failing
    obscurely (agent /readyz 503, API 503), far from the cause.
    """
    if "rabbitmq" not in request.fixturenames:
        yield
        return
    node = request.getfixturevalue("rabbitmq")
    died = node.died() if isinstance(node, RabbitMQNode) else None
    if died:
        pytest.fail(f"the session's RabbitMQ is gone before this test: {died}", pytrace=False)
    yield
    died = node.died() if isinstance(node, RabbitMQNode) else None
    if died:
        pytest.fail(f"the session's RabbitMQ died during this test: {died}", pytrace=False)


@dataclass(frozen=True, kw_only=True)
class QueueNames:
    tasks: str
    results: str

    @property
    def dead(self) -> str:
        return f"{self.tasks}.dead"


@pytest.fixture
def queue_names(request: pytest.FixtureRequest) -> QueueNames:
    """Queue names unique to this test."""
    tag = f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
    return QueueNames(tasks=f"t-{tag}", results=f"r-{tag}")


# -- services as processes ---------------------------------------------------------------
@dataclass(kw_only=True)
class ServiceProcess:
    """A service started with ``python -m``; its output goes to ``log_path``."""

    name: str
    executor: MarkedExecutor
    log_path: Path
    url: str                 # the HTTP base URL (API, or agent metrics server)
    env: dict[str, str] = field(default_factory=dict)
    _log: IO[str] | None = None

    @property
    def pid(self) -> int:
        assert self.executor.process is not None
        return int(self.executor.process.pid)

    def running(self) -> bool:
        return self.executor.running()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit by itself; return its exit code."""
        assert self.executor.process is not None
        return int(self.executor.process.wait(timeout=timeout))

    def terminate(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait, SIGKILL whatever is left (with its descendants). Idempotent."""
        process = self.executor.process
        code: int | None = None
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = process.wait(timeout=timeout)
            else:
                code = process.returncode
            # SIGKILL the group and anything carrying mirakuru's marker; as non-root the
            # marker sweep can meet other users' processes (AccessDenied): the group is
            # killed before that sweep, which is what matters for our services.
            with contextlib.suppress(psutil.Error):
                self.executor.kill()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return parse_metrics(requests.get(f"{self.url}/metrics", timeout=5).text)


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text -> {(sample name, labels): value}."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def metric(samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels`` (0 if none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def start_service(module: str, *, env: Mapping[str, str], url: str, ready_path: str,
                  log_dir: Path, timeout: float = 30.0) -> ServiceProcess:
    """Start ``python -m module``; return once ``url + ready_path`` answers 200.

    Fails fast with the log tail if the process exits while starting.
    """
    name = module.rsplit(".", 1)[-1]
    log_path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed by terminate()
    full_env = {"PYTHONUNBUFFERED": "1", **env}
    executor = MarkedExecutor([sys.executable, "-m", module], cwd=str(ROOT), envvars=full_env,
                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              timeout=30)
    proc = ServiceProcess(name=name, executor=executor, log_path=log_path, url=url,
                          env=dict(env), _log=log)
    executor.start()

    def probe() -> str:
        code = executor.process.poll() if executor.process else None
        if code is not None:
            raise ProcessStartError(f"{module} exited with {code} while starting:\n"
                                    f"{proc.log_tail()}")
        try:
            resp = requests.get(url + ready_path, timeout=2)
        except requests.RequestException as err:
            return type(err).__name__
        return "ready" if resp.status_code == 200 else f"HTTP {resp.status_code}"

    try:
        wait_for(probe, lambda r: r == "ready", what=f"{module} at {url}{ready_path}",
                 expected="HTTP 200", timeout=timeout, interval=0.1)
    except BaseException:
        proc.terminate(timeout=5)
        raise
    return proc


class ServiceFactory:
    """Start API / agent processes for one test and stop them all afterwards."""

    def __init__(self, *, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[ServiceProcess] = []

    def api(self, *, amqp_url: str, task_queue: str, ready_path: str = "/healthz",
            **extra_env: str) -> ServiceProcess:
        port = port_for.select_random()
        env = {"AMQP_URL": amqp_url, "TASK_QUEUE": task_queue, "PORT": str(port),
               "BIND": "127.0.0.1", **extra_env}
        proc = start_service("services.api", env=env, url=f"http://127.0.0.1:{port}",
                             ready_path=ready_path, log_dir=self.log_dir)
        self.started.append(proc)
        return proc

    def agent(self, *, amqp_url: str, task_queue: str, results_queue: str,
              pod_name: str | None = None, ready_path: str = "/readyz",
              **extra_env: str) -> ServiceProcess:
        port = port_for.select_random()
        env = {"AMQP_URL": amqp_url, "TASK_QUEUE": task_queue, "RESULTS_QUEUE": results_queue,
               "METRICS_PORT": str(port), "METRICS_BIND": "127.0.0.1",
               "POD_NAME": pod_name or f"agent-{uuid.uuid4().hex[:5]}", **extra_env}
        proc = start_service("services.agent", env=env, url=f"http://127.0.0.1:{port}",
                             ready_path=ready_path, log_dir=self.log_dir)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.terminate(timeout=10)
        self.started.clear()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ServiceFactory]:
    """``services.api(...)`` / ``services.agent(...)``; all stopped after the test."""
    factory = ServiceFactory(log_dir=tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


# -- broker helpers ---------------------------------------------------------------------
def amqp_channel(amqp_url: str) -> tuple[pika.BlockingConnection, Any]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    return connection, connection.channel()


def queue_depth(amqp_url: str, queue: str) -> int:
    connection, channel = amqp_channel(amqp_url)
    try:
        return int(channel.queue_declare(queue=queue, passive=True).method.message_count)
    finally:
        connection.close()


def broker_settled(node: RabbitMQNode, *, timeout: float) -> None:
    """Wait until no queue of ``node`` has messages in flight (unacknowledged, or ready with
    a consumer to take them).

    The agent acks a task only after its result is confirmed on the results queue, so once
    nothing is in flight no result, and no duplicate, can still arrive.
    """
    wait_for(lambda: [q for q in node.queues() if q.in_flight], lambda busy: not busy,
             what=f"every message handed out by {node.node_name} acked",
             expected="no queue with messages in flight", timeout=timeout, interval=0.1)


def drain_json(amqp_url: str, queue: str, *, expected: int, timeout: float) -> list[dict[str, Any]]:
    """Take (and ack) JSON messages from ``queue`` until ``expected`` arrived or timeout,
    then, once the broker has nothing in flight (``broker_settled``), any beyond: the
    duplicates a test must see."""
    records: list[dict[str, Any]] = []
    connection, channel = amqp_channel(amqp_url)
    try:
        def probe() -> int:
            while True:
                method, _props, body = channel.basic_get(queue=queue, auto_ack=True)
                if method is None:
                    return len(records)
                records.append(json.loads(body))

        began = time.monotonic()
        wait_for(probe, lambda n: n >= expected, what=f"{expected} messages on {queue}",
                 expected=expected, timeout=timeout, interval=0.1)
        node = _BROKERS.get(amqp_url)
        if node is not None:  # else a broker that is not the session's: what arrived so far
            broker_settled(node, timeout=max(10.0, timeout - (time.monotonic() - began)))
        probe()  # anything beyond expected (duplicates) is collected too
    finally:
        connection.close()
    return records
