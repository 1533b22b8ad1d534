"""The steady load the local benchmarks measure under: a tagged local stack running the
hybrid ScaledObject (its controllers poll and sync as in an experiment) and a separate
process posting ``RATE`` tasks/s to the API. Shared by test_bench_local (harness CPU) and
test_bench_frontend (what open pages add to it).

Harness processes: the broker (beam.smp, epmd, erl_child_setup), Prometheus, and this
process (the exporter, the pod supervisors and the resource sampler run in it as
threads). The services (api, agents) and the load generator are the workload.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psutil

from scalelab.backends.local.backend import LocalBackend
from scalelab.paths import SCALING_MANIFESTS
from scalelab.settings import StackSettings, TimingProfile

#: Env var every process the stack starts inherits, to find them (psutil) by its value.
MARKER = "SCALELAB_BENCH_TAG"
RATE = 20  # tasks per second

LOAD = """
import sys, time, requests
url, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
session = requests.Session()
end = time.monotonic() + seconds
next_t = time.monotonic()
while time.monotonic() < end:
    session.post(url + "/tasks", json={"tool": "mixed", "arguments": {"cpu_ms": 5, "io_ms": 20}},
                 timeout=5)
    next_t += 1.0 / rate
    time.sleep(max(0.0, next_t - time.monotonic()))
"""


def _group(proc: psutil.Process) -> str | None:
    name = proc.name()
    if name in ("beam.smp", "epmd", "erl_child_setup", "inet_gethost", "erl"):
        return "broker"
    if name == "prometheus":
        return "prometheus"
    return None


def cpu_by_group(tag: str) -> dict[str, float]:
    """CPU seconds so far of the harness' processes started under ``tag``, by group."""
    totals = {"broker": 0.0, "prometheus": 0.0}
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARKER) != tag:
                continue
            group = _group(proc)
            if group:
                t = proc.cpu_times()
                totals[group] += t.user + t.system
        except psutil.Error:
            continue
    me = psutil.Process().cpu_times()
    totals["backend process (exporter, supervisors, controllers)"] = me.user + me.system
    return totals


@dataclass(frozen=True, kw_only=True)
class Steady:
    backend: LocalBackend
    tag: str
    bringup_s: float
    controllers: list[str]


@contextlib.contextmanager
def steady_load(*, seconds: float) -> Iterator[Steady]:
    """The stack up, its controllers running and ``seconds`` of load started; on exit the
    load is waited for and the stack torn down, whatever happened."""
    tag = uuid.uuid4().hex
    os.environ[MARKER] = tag          # inherited by every process the stack starts
    backend = LocalBackend(settings=StackSettings(timing=TimingProfile()))
    try:
        started = time.monotonic()
        backend.up()
        bringup = time.monotonic() - started
        applied = backend.apply_scaling(SCALING_MANIFESTS / "keda-hybrid.yaml")
        time.sleep(5)  # let the first scrapes settle
        load = subprocess.Popen([sys.executable, "-c", LOAD, backend.endpoints.api, str(RATE),
                                 str(seconds)])
        try:
            time.sleep(3)
            yield Steady(backend=backend, tag=tag, bringup_s=bringup, controllers=applied)
        finally:
            load.wait(timeout=seconds + 30)
    finally:
        backend.down()
        os.environ.pop(MARKER, None)
