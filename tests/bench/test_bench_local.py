"""Local backend figures: bring-up time (goal <= 15 s) and the CPU the harness's own
processes use at steady load (goal <= 20 % of one core). Prints, never asserts speed.

The stack, the load and which processes are the harness: tests/bench/steady.py.
"""

from __future__ import annotations

import time

import pytest

from tests.bench.steady import RATE, cpu_by_group, steady_load

pytestmark = [pytest.mark.bench, pytest.mark.slow]

LOAD_SECONDS = 30.0


def test_bench_local_bringup_and_overhead() -> None:
    with steady_load(seconds=LOAD_SECONDS) as run:
        print(f"\nlocal bring-up: {run.bringup_s:.1f} s (goal <= 15 s); steps: "
              + ", ".join(f"{k} {v:.1f}s" for k, v in run.backend.timings.items()))
        # the emulated controllers run during the measure, as in an experiment: the
        # hybrid ScaledObject polls the management API and syncs its HPA on CPU too
        print(f"controllers running: {', '.join(run.controllers)}")
        before, t0 = cpu_by_group(run.tag), time.monotonic()
        time.sleep(LOAD_SECONDS - 6)
        after, t1 = cpu_by_group(run.tag), time.monotonic()
    wall = t1 - t0
    total = 0.0
    print(f"harness CPU at {RATE} tasks/s over {wall:.0f} s (goal <= 20 % of one core):")
    for group in before:
        share = 100 * (after[group] - before[group]) / wall
        total += share
        print(f"  {group:50s} {share:5.1f} %")
    print(f"  {'total':50s} {total:5.1f} %")
