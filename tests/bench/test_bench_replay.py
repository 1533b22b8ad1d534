"""Benchmark: how many HPA syncs per second the pure core replays (goal >= 10,000/s).

Prints the figure; no pass/fail on speed (tox -e bench).
"""

from __future__ import annotations

import time

import pytest

from scalelab.control.hpa import HPAControllerSettings
from scalelab.control.trace_replay import TraceSample, load_manifest, replay
from scalelab.paths import SCALING_MANIFESTS


@pytest.mark.bench
def test_bench_replay_syncs_per_second():
    spec, _ = load_manifest(SCALING_MANIFESTS / "hpa-cpu.yaml")
    samples = [TraceSample(t=float(t), cpu_utilization=20.0 + (t // 300 % 2) * 70.0)
               for t in range(0, 200_000, 60)]
    settings = HPAControllerSettings(sync_period=5.0)
    start = time.perf_counter()
    result = replay(spec, samples, settings=settings)
    elapsed = time.perf_counter() - start
    syncs = len(result.steps)
    scaled = sum(1 for s in result.steps if s.decision.scaled)
    print(f"\nreplay: {syncs} syncs in {elapsed:.2f}s = {syncs / elapsed:,.0f} syncs/s "
          f"({scaled} scaling actions; goal >= 10,000 syncs/s)")
    assert syncs > 0 and scaled > 0
