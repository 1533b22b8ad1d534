"""The ReplicaSet-like supervisor, with real processes as pods.

The "container" here is ``python -m http.server`` serving a directory that holds a
``healthz`` file: a real HTTP process for the probes, without needing the services.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import port_for
import psutil
import pytest

from scalelab.backends.local.deployments import Probe, load_deployment
from scalelab.backends.local.pods import RUNNING, Launch, Pod, Supervisor, deletion_rank
from scalelab.errors import ProcessStartError
from scalelab.waiting import wait_for

pytestmark = pytest.mark.slow


def _spec(**changes: object):  # type: ignore[no-untyped-def]
    spec = load_deployment("agent")
    fast = Probe(path="/healthz", port=9100, period=0.2, failure_threshold=3)
    return dataclasses.replace(spec, readiness=fast, liveness=None, **changes)


def _launch(pod: str) -> Launch:
    port = port_for.select_random()
    return Launch(env={"METRICS_PORT": str(port), "POD_NAME": pod}, ports={9100: port})


def _server(root: Path, *, ignore_term: bool = False) -> list[str]:
    (root / "www").mkdir(exist_ok=True)
    (root / "www" / "healthz").write_text("ok\n")
    trap = "trap '' TERM; " if ignore_term else ""
    return ["sh", "-c", f'{trap}exec {sys.executable} -m http.server "$METRICS_PORT" '
            f"--bind 127.0.0.1 --directory {root / 'www'}"]


def _children() -> set[int]:
    """Our pod processes (the session's broker, also a descendant, forks shells of its own)."""
    pids = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            if "http.server" in " ".join(proc.cmdline()):
                pids.add(proc.pid)
        except psutil.Error:
            continue
    return pids


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    before = _children()
    sup = Supervisor(spec=_spec(), command=_server(tmp_path), launch=_launch,
                     workdir=tmp_path, replicas=2, grace_period=5.0, tick=0.05)
    sup.start()
    yield sup
    sup.shutdown()
    assert _children() <= before, "a pod process outlived shutdown()"


def _wait_counts(sup: Supervisor, want: tuple[int, int, int]) -> None:
    wait_for(sup.counts, lambda c: c == want, what="pod counts (spec, current, ready)",
             expected=want, timeout=20, interval=0.05)


def test_pods_become_ready_with_transition_times(supervisor: Supervisor) -> None:
    supervisor.wait_ready(timeout=20)
    facts = supervisor.facts()
    assert len(facts) == 2
    for pod in facts:
        assert pod.phase == RUNNING and pod.ready and not pod.deleting
        assert pod.start_time is not None and pod.ready_transition_time is not None
        assert pod.ready_transition_time >= pod.start_time
        assert pod.cpu_request_milli == 250
        assert pod.name.startswith(f"agent-{supervisor.spec.template_hash}-")
    assert len({p.name for p in facts}) == 2


def test_scale_up_then_down_deletes_newest_pods(supervisor: Supervisor) -> None:
    supervisor.wait_ready(timeout=20)
    first = {p.name for p in supervisor.pods()}
    supervisor.scale(4)
    _wait_counts(supervisor, (4, 4, 4))
    newest = {p.name for p in supervisor.pods()} - first
    pids = {p.name: p.pid for p in supervisor.pods()}
    supervisor.scale(2)
    assert supervisor.counts()[:2] == (2, 2)          # terminating pods are not counted
    deleting = {p.name for p in supervisor.pods() if p.deleting}
    # ready for less time goes first (a fast one may already be gone from the list)
    assert deleting <= newest, (deleting, newest)
    wait_for(lambda: {p.name for p in supervisor.pods()}, lambda names: names == first,
             what="terminated pods removed", expected=first, timeout=15, interval=0.05)
    for name in newest:
        assert not psutil.pid_exists(pids[name]) or \
            psutil.Process(pids[name]).status() == psutil.STATUS_ZOMBIE


def test_killed_pod_is_replaced_and_restart_counted(supervisor: Supervisor) -> None:
    supervisor.wait_ready(timeout=20)
    victim = supervisor.pods()[0]
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    wait_for(lambda: {p.name for p in supervisor.pods()},
             lambda names: victim.name not in names and len(names) == 2,
             what="a replacement pod", expected="victim gone, 2 pods", timeout=15,
             interval=0.05)
    _wait_counts(supervisor, (2, 2, 2))
    assert supervisor.restarts_total == 1
    replacement = [p for p in supervisor.pods() if p.restarts == 1]
    assert len(replacement) == 1 and replacement[0].name != victim.name
    assert supervisor.deaths[0]["pod"] == victim.name
    assert supervisor.deaths[0]["exit_code"] == -signal.SIGKILL


def test_grace_period_then_sigkill(tmp_path: Path) -> None:
    sup = Supervisor(spec=_spec(), command=_server(tmp_path, ignore_term=True),
                     launch=_launch, workdir=tmp_path, replicas=1, grace_period=1.0, tick=0.05)
    sup.start()
    try:
        sup.wait_ready(timeout=20)
        pid = sup.pods()[0].pid
        assert pid is not None
        started = time.monotonic()
        sup.scale(0)
        facts = sup.facts()
        assert [f.deleting for f in facts] == [True]   # Terminating, still listed
        wait_for(sup.pods, lambda pods: pods == [], what="pod gone after grace period",
                 expected="no pods", timeout=10, interval=0.05)
        took = time.monotonic() - started
        assert took >= 0.9, f"a process ignoring SIGTERM was gone after {took:.2f}s"
        assert not psutil.pid_exists(pid)
    finally:
        sup.shutdown()


def test_pod_exiting_during_start_fails_fast_with_its_log(tmp_path: Path) -> None:
    sup = Supervisor(spec=_spec(), command=["sh", "-c", "echo boom-marker >&2; exit 3"],
                     launch=_launch, workdir=tmp_path, replicas=1, grace_period=1.0, tick=0.05)
    sup.start()
    try:
        started = time.monotonic()
        with pytest.raises(ProcessStartError) as err:
            sup.wait_ready(timeout=30)
        assert time.monotonic() - started < 10
        assert "boom-marker" in str(err.value) and "code 3" in str(err.value)
    finally:
        sup.shutdown()


def _pod(name: str, **kw: object) -> Pod:
    return Pod(name=name, uid=name, deployment="agent", created=kw.pop("created", 0.0),  # type: ignore[arg-type]
               log_path=Path("/dev/null"), launch=Launch(env={}, ports={}), **kw)  # type: ignore[arg-type]


def test_deletion_rank_follows_replicaset_order() -> None:
    pods = [
        _pod("old-ready", phase=RUNNING, ready=True, ready_transition_time=10.0, created=1.0),
        _pod("new-ready", phase=RUNNING, ready=True, ready_transition_time=50.0, created=2.0),
        _pod("not-ready", phase=RUNNING, ready=False, created=0.5),
        _pod("pending", created=0.1),
        _pod("crashy", phase=RUNNING, ready=True, ready_transition_time=10.0, created=1.0,
             restarts=3),
    ]
    order = [p.name for p in sorted(pods, key=deletion_rank)]
    assert order == ["pending", "not-ready", "new-ready", "crashy", "old-ready"]
