"""Nothing is left behind: after a failed step, a missing binary, Ctrl-C or SIGTERM.

Processes are found by an env marker (see ``leftovers``); temp dirs by pointing TMPDIR
at the test's own directory; ports by trying to connect.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pika
import pytest
import requests
from mirakuru import SimpleExecutor

from scalelab.backends.local.backend import LocalBackend
from scalelab.errors import MissingDependencyError, ProcessStartError
from scalelab.procs import prometheus as prom
from scalelab.procs.rabbitmq import RabbitMQNode
from scalelab.settings import StackSettings
from scalelab.waiting import wait_for
from tests.conftest import QueueNames, amqp_channel, drain_json
from tests.local.leftovers import MARKER, describe, listening, name_of, tagged

pytestmark = pytest.mark.slow


@pytest.fixture
def tag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    value = uuid.uuid4().hex
    monkeypatch.setenv(MARKER, value)
    # the stack's temp dir goes here; traversable, since the broker runs as user rabbitmq
    # when we are root (pytest's tmp_path parents are 0700)
    tmp = Path(tempfile.mkdtemp(prefix="scalelab-teardown-test-"))
    tmp.chmod(0o711)
    (tmp_path / "tmp").symlink_to(tmp)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)   # re-read TMPDIR
    yield value
    shutil.rmtree(tmp, ignore_errors=True)


def _assert_clean(tag: str, tmp: Path) -> None:
    left = wait_for(lambda: tagged(tag), lambda procs: not procs, what="no tagged processes",
                    expected="none", timeout=15, interval=0.2)
    assert not left, describe(left)
    assert not list(tmp.glob("scalelab-*")), list(tmp.iterdir())


def test_missing_prometheus_fails_before_anything_starts(tag: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(prom.BINARY_ENV, str(tmp_path / "nowhere" / "prometheus"))
    backend = LocalBackend(settings=StackSettings())
    with pytest.raises(MissingDependencyError) as err:
        backend.up()
    assert "apt-get install -y prometheus" in str(err.value)
    assert backend.workdir is None
    _assert_clean(tag, tmp_path / "tmp")


def test_failed_step_tears_down_the_broker_too(tag: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "prometheus"
    fake.write_text("#!/bin/sh\necho 'prometheus-boom: cannot start' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv(prom.BINARY_ENV, str(fake))
    backend = LocalBackend(settings=StackSettings())
    with pytest.raises(ProcessStartError) as err:
        backend.up()
    assert "prometheus-boom" in str(err.value)
    _assert_clean(tag, tmp_path / "tmp")
    backend.down()                     # still idempotent


def _scalelab(args: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "scalelab.cli", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[2])


def _stop(proc: subprocess.Popen[str], sig: int, *, timeout: float) -> tuple[int, str]:
    """Send ``sig``; return the exit code and what the process printed."""
    proc.send_signal(sig)
    code = proc.wait(timeout=timeout)
    return code, proc.stdout.read() if proc.stdout else ""


def _reap(proc: subprocess.Popen[str]) -> None:
    """Whatever the test asserted: never leave the child running."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_up_json_prints_urls_and_exits_cleanly_on_sigint(tag: str, tmp_path: Path) -> None:
    proc = _scalelab(["up", "--json"], tmp_path)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        urls = json.loads(line)
        assert set(urls) == {"api", "prometheus", "rabbitmq_management", "amqp", "frontend"}
        assert urls["frontend"] == urls["api"] + "/"   # the API serves the live page
        ports = [urlsplit(u).port for u in urls.values()]
        assert all(p and listening(p) for p in ports)
        assert _stop(proc, signal.SIGINT, timeout=60)[0] == 0
    finally:
        _reap(proc)
    assert not [p for p in ports if p and listening(p)]
    _assert_clean(tag, tmp_path / "tmp")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_bring_up_leaves_nothing(tag: str, tmp_path: Path, sig: int) -> None:
    proc = _scalelab(["up", "--json"], tmp_path)
    try:
        # wait until the broker is being started (its processes carry our tag), epmd
        # included: the daemon outside the broker's process group is the one to miss
        def starting() -> set[str]:
            return {n for p in tagged(tag) for n in ("beam", "epmd") if n in name_of(p)}

        wait_for(starting, lambda names: names == {"beam", "epmd"}, what="broker starting",
                 expected="beam and epmd processes", timeout=30, interval=0.05)
        code, out = _stop(proc, sig, timeout=60)
    finally:
        _reap(proc)
    assert out == ""                   # never got as far as printing the URLs
    assert code in (0, 130)
    _assert_clean(tag, tmp_path / "tmp")


def test_unknown_backend_is_a_clear_error(tmp_path: Path) -> None:
    proc = _scalelab(["up", "--backend", "minikube"], tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "--backend" in err and "minikube" in err


def test_bad_scaling_file_is_refused_before_anything_starts(tag: str, tmp_path: Path) -> None:
    proc = _scalelab(["up", "--scaling", str(tmp_path / "nope.yaml")], tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "nope.yaml" in err and "--scaling" in err
    _assert_clean(tag, tmp_path / "tmp")


SIGTERMED_SESSION = '''
import os, time
from pathlib import Path
import pytest
from scalelab.backends.local.backend import LocalBackend
from scalelab.settings import StackSettings

def _pause_in_teardown(backend):
    """Teardown's Prometheus step first says it has begun (TEARDOWN_FILE) and waits for
    the test's second SIGTERM (SECOND_SENT): that signal lands inside down(), pods and
    exporter already stopped, Prometheus and the broker not yet."""
    stop = backend.prometheus.stop
    def paused():
        Path(os.environ["TEARDOWN_FILE"]).write_text("in down()")
        until = time.monotonic() + 60
        while not Path(os.environ["SECOND_SENT"]).exists() and time.monotonic() < until:
            time.sleep(0.05)
        seen = Path(os.environ["SECOND_SENT"]).exists()
        Path(os.environ["TEARDOWN_FILE"]).write_text("went on after the second signal"
                                                     if seen else "no second signal")
        stop()
    backend.prometheus.stop = paused

@pytest.fixture
def stack():
    backend = LocalBackend(settings=StackSettings())
    backend.up()
    try:
        _pause_in_teardown(backend)
        yield backend
    finally:
        backend.down()

def test_runs_until_killed(stack):
    Path(os.environ["READY_FILE"]).write_text("up")
    time.sleep(300)
'''


def test_sigterm_to_pytest_still_tears_the_stack_down(tag: str, tmp_path: Path) -> None:
    """A cancelled CI job sends SIGTERM: fixture teardown must still run, and a second
    SIGTERM that lands inside the teardown (a runner's follow-up) must not cut it short."""
    test_file = tmp_path / "session" / "test_killed.py"
    test_file.parent.mkdir()
    test_file.write_text(SIGTERMED_SESSION)
    ready, teardown, second = tmp_path / "ready", tmp_path / "teardown", tmp_path / "second"
    env = {**os.environ, "READY_FILE": str(ready), "TEARDOWN_FILE": str(teardown),
           "SECOND_SENT": str(second)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", str(test_file), "-p", "scalelab.pytest_options",
         "-p", "no:cacheprovider", "-q", "--rootdir", str(test_file.parent)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: ready.exists() or proc.poll() is not None, bool,
                 what="the stack up inside the pytest session", expected="ready file",
                 timeout=90, interval=0.2)
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert tagged(tag), "the session's stack carries our tag"
        proc.send_signal(signal.SIGTERM)
        # the teardown the first one began says it is inside down(), and waits for us
        wait_for(lambda: teardown.exists() or proc.poll() is not None, bool,
                 what="the session's teardown to begin", expected="teardown file",
                 timeout=60, interval=0.05)
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        proc.send_signal(signal.SIGTERM)
        second.write_text("sent")
        code = proc.wait(timeout=90)
        out = proc.stdout.read() if proc.stdout else ""
    finally:
        _reap(proc)
    assert code == 2, out          # pytest's "interrupted"
    assert "KeyboardInterrupt" in out and "signal 15" in out, out
    # the second signal landed in down() and down() went on past it to the end
    assert teardown.read_text() == "went on after the second signal", out
    _assert_clean(tag, tmp_path / "tmp")


def test_up_with_scale_and_scaling_prints_the_stack_and_runs_the_controller(
        tag: str, tmp_path: Path) -> None:
    proc = _scalelab(["up", "--scale", "agent=4", "--scaling",
                      "manifests/scaling/hpa-cpu.yaml"], tmp_path)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            line = proc.stdout.readline()
            assert line, "".join(lines) + (proc.stderr.read() if proc.stderr else "")
            lines.append(line.rstrip("\n"))
        text = "\n".join(lines)
        assert lines[0] == "scalelab stack is up (local backend):", text
        # "  API   <url>", "  Prometheus   <url>" among the other lines (Frontend, ...)
        urls = {label: line.split()[-1] for line in lines[1:] for label in ("API", "Prometheus")
                if line.startswith(f"  {label} ")}
        assert urls["API"].startswith("http://127.0.0.1:") and listening(
            urlsplit(urls["API"]).port or 0)
        assert "  Deployment agent: 4/4 ready" in lines, text
        assert "  scaling objects: HorizontalPodAutoscaler/agent" in lines, text
        prom_url = urls["Prometheus"]
        # the emulated HPA runs: its series reach Prometheus
        query = 'kube_horizontalpodautoscaler_spec_max_replicas{horizontalpodautoscaler="agent"}'
        wait_for(lambda: requests.get(f"{prom_url}/api/v1/query", params={"query": query},
                                      timeout=5).json()["data"]["result"], bool,
                 what="the HPA's series in Prometheus", expected="one series", timeout=30,
                 interval=0.5)
        assert _stop(proc, signal.SIGINT, timeout=60)[0] == 0
    finally:
        _reap(proc)
    _assert_clean(tag, tmp_path / "tmp")


# -- the session broker against other processes' exits (a CI flake) -------------------
def _mirakuru_user() -> subprocess.Popen[str]:
    """A Python process that imports mirakuru, as a ``scalelab`` CLI run or a pytest session
    a test starts does; it exits, running mirakuru's atexit sweep, when its stdin closes."""
    return subprocess.Popen([sys.executable, "-c", "import sys, mirakuru; sys.stdin.read()"],
                            stdin=subprocess.PIPE, text=True)


def test_a_python_process_exiting_does_not_kill_a_broker_whose_uuid_holds_its_pid(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The CI flake where the session broker was gone by tests/services: mirakuru's atexit
    sweep, in every exiting Python process that imports it, SIGKILLs each process whose
    marker *contains* that process's pid; the broker's marker held a uuid4, whose digits
    now and then held the pid of a CLI run or pytest session that tests/local started.
    Here the uuid is made to hold the pid, so the hazard is certain, not one run in many."""
    child = _mirakuru_user()
    plain = SimpleExecutor(["sleep", "120"])
    node = RabbitMQNode()
    try:
        with monkeypatch.context() as m:
            held = uuid.UUID(hex=str(child.pid).ljust(32, "a"))
            m.setattr(uuid, "uuid4", lambda: held)
            plain = SimpleExecutor(["sleep", "120"])   # mirakuru's own marker: pid:uuid4
            plain.start()
            node = RabbitMQNode()
            node.start()
        assert child.stdin is not None
        child.stdin.close()
        assert child.wait(timeout=30) == 0
        # the hazard is real for mirakuru's marker ...
        assert plain.process is not None
        assert plain.process.wait(timeout=10) == -signal.SIGKILL
        # ... and not for the broker's
        assert node.died() is None
        connection = pika.BlockingConnection(pika.URLParameters(node.amqp_url))
        connection.close()
    finally:
        _reap(child)
        with contextlib.suppress(OSError):
            plain.kill()
        node.stop()


KILLED_BROKER_SESSION = '''
from scalelab.procs.executor import kill_marked

def test_a_kills_the_session_broker(rabbitmq):
    kill_marked(rabbitmq._executor.marker)
    rabbitmq._executor.process.wait(timeout=30)

def test_b_needs_the_broker(rabbitmq):
    raise AssertionError("ran against a dead broker")

def test_c_needs_no_broker():
    pass
'''


def test_a_dead_session_broker_fails_the_tests_that_need_it_with_its_log(
        tmp_path: Path) -> None:
    """tests/conftest.py's ``rabbitmq``: the test during which the broker died errors in
    teardown, each later test using it errors at setup with how it ended and its log tail
    (not as an agent's /readyz 503 in its body), and tests without it still run."""
    test_file = tmp_path / "session" / "test_broker_gone.py"
    test_file.parent.mkdir()
    test_file.write_text(KILLED_BROKER_SESSION)
    res = subprocess.run(
        [sys.executable, "-m", "pytest", str(test_file), "-p", "tests.conftest", "-p",
         "no:cacheprovider", "-p", "no:cloudcoil", "-q", "--rootdir",
         str(test_file.parent)],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=180,
        check=False)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "2 passed, 2 errors" in out, out     # test_c passed, test_a passed its call
    assert "ERROR at teardown of test_a_kills_the_session_broker" in out, out
    assert "the session's RabbitMQ died during this test: RabbitMQ node" in out, out
    assert "ERROR at setup of test_b_needs_the_broker" in out, out
    assert "the session's RabbitMQ is gone before this test: RabbitMQ node" in out, out
    assert "ran against a dead broker" not in out, out
    assert "exited with signal SIGKILL (killed from outside" in out, out
    assert "rabbit.log (last 40 lines)" in out, out


# -- tests/conftest.py's drain_json: the duplicate window is the broker's state -----------
def test_drain_json_waits_for_a_late_duplicate_while_its_task_is_unacked(
        rabbitmq: RabbitMQNode, queue_names: QueueNames) -> None:
    """A consumer holding a task (as an agent mid-task does) publishes a second result for
    it 1 s after the expected one arrived, then acks: drain_json returns both (its 0.2 s
    window returned one), because it waits until nothing is in flight on the broker."""
    holding = threading.Event()

    def slow_agent() -> None:
        connection, channel = amqp_channel(rabbitmq.amqp_url)
        try:
            method, _props, _body = channel.basic_get(queue=queue_names.tasks, auto_ack=False)
            assert method is not None
            holding.set()
            time.sleep(1.0)            # the slow agent this test is about, not a wait
            channel.confirm_delivery()
            channel.basic_publish("", queue_names.results, json.dumps({"id": "a"}).encode())
            channel.basic_ack(delivery_tag=method.delivery_tag)
        finally:
            connection.close()

    connection, channel = amqp_channel(rabbitmq.amqp_url)
    try:
        for queue in (queue_names.tasks, queue_names.results):
            channel.queue_declare(queue=queue)
        channel.confirm_delivery()
        channel.basic_publish("", queue_names.tasks, b"task a")
        channel.basic_publish("", queue_names.results, json.dumps({"id": "a"}).encode())
        agent = threading.Thread(target=slow_agent, daemon=True)
        agent.start()
        assert holding.wait(timeout=30), "the stand-in agent never took the task"
        records = drain_json(rabbitmq.amqp_url, queue_names.results, expected=1, timeout=30)
        agent.join(timeout=30)
        assert records == [{"id": "a"}, {"id": "a"}]
    finally:
        for queue in (queue_names.tasks, queue_names.results):
            with contextlib.suppress(Exception):
                channel.queue_delete(queue=queue)
        connection.close()
