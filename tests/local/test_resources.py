"""metrics-server-like CPU accounting, with readings and clock injected."""

from __future__ import annotations

import os

from scalelab.backends.local.resources import ResourceAccounting, process_tree_usage
from tests.fakes import FakeClock


def test_metric_published_after_one_window_as_rate_between_scrapes() -> None:
    clock = FakeClock(1000.0)
    cpu = {"p": 0.0}
    acct = ResourceAccounting(window=10.0, read=lambda pid: (cpu["p"], 5_000_000), clock=clock)
    acct.sample({"agent-a": 1})
    assert acct.metric("agent-a") is None          # first scrape: no rate yet
    for _ in range(10):                             # 1 s samples, 0.3 core busy
        clock.now += 1.0
        cpu["p"] += 0.3
        acct.sample({"agent-a": 1})
    metric = acct.metric("agent-a")
    assert metric is not None
    assert metric.cpu_milli == 300
    assert metric.window == 10.0
    assert metric.memory_bytes == 5_000_000
    assert metric.timestamp == clock.now
    # the published value only changes at the next resolution tick, like metrics-server
    clock.now += 1.0
    cpu["p"] += 1.0
    acct.sample({"agent-a": 1})
    assert acct.metric("agent-a") == metric
    latest = acct.latest("agent-a")
    assert latest is not None and abs(latest.cpu_seconds - 4.0) < 1e-9   # the counter moves on


def test_counter_never_goes_backwards_and_gone_pods_are_forgotten() -> None:
    clock = FakeClock(1000.0)
    readings = iter([(5.0, 1), (4.0, 1)])
    acct = ResourceAccounting(window=10.0, read=lambda pid: next(readings), clock=clock)
    acct.sample({"p": 1})
    clock.now += 1
    acct.sample({"p": 1})
    assert acct.latest("p").cpu_seconds == 5.0
    acct.sample({})
    assert acct.latest("p") is None
    assert acct.metrics(["p"]) == {}


def test_process_tree_usage_reads_this_process() -> None:
    usage = process_tree_usage(os.getpid())
    assert usage is not None
    cpu, rss = usage
    assert cpu > 0 and rss > 0
    assert process_tree_usage(2**22 + 12345) is None
