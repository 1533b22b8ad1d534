"""Soak benchmark: a stack left up under steady load keeps its memory flat (prints figures).

``scalelab up`` on the local backend, 20 tasks/s posted to its API for
``SCALELAB_SOAK_MINUTES`` (default 30); the resident memory of each component (broker,
Prometheus, api and agent pods, the harness itself) and the results queue's depth, at
minute 5 (or half way, for a shorter soak) and at the end. Nothing asserts on the figures
except that the results queue did not grow (the harness drains it). ``tox -e bench -- -k soak``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest
import requests

from scalelab.paths import ROOT
from scalelab.settings import RESULTS_QUEUE
from tests.conftest import queue_depth

RATE = 20.0
#: The soak's length; the test's pytest timeout follows it (the suite's default is 600 s).
MINUTES = float(os.environ.get("SCALELAB_SOAK_MINUTES", "30"))


def _component(proc: psutil.Process) -> str:
    cmd = " ".join(proc.cmdline())
    for key, name in (("beam", "rabbitmq"), ("prometheus", "prometheus"),
                      ("services.api", "api"), ("services.agent", "agent"),
                      ("scalelab.cli", "harness")):
        if key in cmd or key in proc.name():
            return name
    return "other"


def _memory(root: psutil.Process) -> dict[str, float]:
    out: dict[str, float] = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            name, rss = _component(proc), proc.memory_info().rss / 2**20
        except psutil.Error:
            continue
        out[name] = out.get(name, 0.0) + rss
    return out


@pytest.mark.bench
@pytest.mark.timeout(MINUTES * 60 + 600)   # the soak, plus bring-up and teardown
def test_bench_soak() -> None:
    minutes = MINUTES
    proc = subprocess.Popen([sys.executable, "-m", "scalelab.cli", "up", "--json"], text=True,
                            stdout=subprocess.PIPE, cwd=ROOT)
    stop = threading.Event()
    try:
        assert proc.stdout is not None
        urls = json.loads(proc.stdout.readline())
        root = psutil.Process(proc.pid)

        def drive() -> None:
            due = time.monotonic()
            while not stop.is_set():
                requests.post(f"{urls['api']}/tasks/batch", timeout=10, json={
                    "tasks": [{"tool": "io", "arguments": {"io_ms": 50}}] * 10})
                due += 10 / RATE
                stop.wait(max(0.0, due - time.monotonic()))

        threading.Thread(target=drive, daemon=True).start()
        first_at = min(300.0, minutes * 30)
        time.sleep(first_at)
        early, q_early = _memory(root), queue_depth(urls["amqp"], RESULTS_QUEUE)
        time.sleep(max(0.0, minutes * 60 - first_at))
        late, q_late = _memory(root), queue_depth(urls["amqp"], RESULTS_QUEUE)
    finally:
        stop.set()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    print(f"\nsoak: {minutes:g} min at {RATE:g} tasks/s; resident memory (MiB) at "
          f"{first_at / 60:g} min and at the end")
    for name in sorted(set(early) | set(late)):
        a, b = early.get(name, 0.0), late.get(name, 0.0)
        print(f"  {name:<11} {a:8.1f} {b:8.1f}  ({(b - a) / a * 100 if a else 0:+.1f} %)")
    print(f"  results queue depth: {q_early} -> {q_late}")
    assert q_late < 1000, "the results queue grew: nothing drained it"
