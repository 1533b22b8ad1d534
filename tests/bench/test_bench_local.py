"""Local backend figures: bring-up time (goal <= 15 s) and the CPU the harness's own
processes use at steady load (goal <= 20 % of one core). Prints, never asserts speed.

Harness processes: the broker (beam.smp, epmd, erl_child_setup), Prometheus, and this
process (the exporter, the pod supervisors and the resource sampler run in it as
threads). The services (api, agents) and the load generator are the workload, not the
harness; the load generator is a separate process posting tasks to the API.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import psutil
import pytest

from scalelab.backends.local.backend import LocalBackend
from scalelab.paths import SCALING_MANIFESTS
from scalelab.settings import StackSettings, TimingProfile

pytestmark = [pytest.mark.bench, pytest.mark.slow]

MARKER = "SCALELAB_BENCH_TAG"
LOAD_SECONDS = 30.0
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


def _cpu_by_group(tag: str) -> dict[str, float]:
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


def test_bench_local_bringup_and_overhead() -> None:
    tag = uuid.uuid4().hex
    os.environ[MARKER] = tag
    backend = LocalBackend(settings=StackSettings(timing=TimingProfile()))
    try:
        started = time.monotonic()
        backend.up()
        bringup = time.monotonic() - started
        print(f"\nlocal bring-up: {bringup:.1f} s (goal <= 15 s); steps: "
              + ", ".join(f"{k} {v:.1f}s" for k, v in backend.timings.items()))
        # the emulated controllers run during the measure, as in an experiment: the
        # hybrid ScaledObject polls the management API and syncs its HPA on CPU too
        applied = backend.apply_scaling(SCALING_MANIFESTS / "keda-hybrid.yaml")
        print(f"controllers running: {', '.join(applied)}")
        time.sleep(5)  # let the first scrapes settle
        load = subprocess.Popen([sys.executable, "-c", LOAD, backend.endpoints.api, str(RATE),
                                 str(LOAD_SECONDS)])
        try:
            time.sleep(3)
            before, t0 = _cpu_by_group(tag), time.monotonic()
            time.sleep(LOAD_SECONDS - 6)
            after, t1 = _cpu_by_group(tag), time.monotonic()
        finally:
            load.wait(timeout=LOAD_SECONDS + 30)
        wall = t1 - t0
        total = 0.0
        print(f"harness CPU at {RATE} tasks/s over {wall:.0f} s (goal <= 20 % of one core):")
        for group in before:
            share = 100 * (after[group] - before[group]) / wall
            total += share
            print(f"  {group:50s} {share:5.1f} %")
        print(f"  {'total':50s} {total:5.1f} %")
    finally:
        backend.down()
        os.environ.pop(MARKER, None)
