"""Nothing is left behind: after a failed step, a missing binary, Ctrl-C or SIGTERM.

Processes are found by an env marker (see ``leftovers``); temp dirs by pointing TMPDIR
at the test's own directory; ports by trying to connect.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from scalelab.backends.local.backend import LocalBackend
from scalelab.errors import MissingDependencyError, ProcessStartError
from scalelab.procs import prometheus as prom
from scalelab.settings import StackSettings
from scalelab.waiting import wait_for
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
        # wait until the broker is being started (its processes carry our tag)
        wait_for(lambda: [p for p in tagged(tag) if "beam" in name_of(p)], bool,
                 what="broker starting", expected="a beam process", timeout=30, interval=0.05)
        time.sleep(0.5)
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
import requests
from scalelab.backends.local.backend import LocalBackend
from scalelab.settings import StackSettings

@pytest.fixture
def stack():
    backend = LocalBackend(settings=StackSettings())
    backend.up()
    try:
        yield backend
    finally:
        backend.down()

def test_runs_until_killed(stack):
    Path(os.environ["READY_FILE"]).write_text("up")
    time.sleep(300)
'''


def test_sigterm_to_pytest_still_tears_the_stack_down(tag: str, tmp_path: Path) -> None:
    """A cancelled CI job sends SIGTERM: fixture teardown must still run."""
    test_file = tmp_path / "session" / "test_killed.py"
    test_file.parent.mkdir()
    test_file.write_text(SIGTERMED_SESSION)
    ready = tmp_path / "ready"
    env = {**os.environ, "READY_FILE": str(ready)}
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
        time.sleep(0.3)                # a second one lands in the teardown the first began
        code, out = _stop(proc, signal.SIGTERM, timeout=90)
    finally:
        _reap(proc)
    assert code == 2, out          # pytest's "interrupted"
    assert "KeyboardInterrupt" in out and "signal 15" in out, out
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
        urls = dict(line.split(None, 1) for line in lines[1:3])
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
