"""Benchmarks of the twin (issue 14): the validation table on the recorded runs, and how
many candidate policies ``scalelab tune`` simulates per second on one core for a 5-minute
scenario (goal: >= 1,000 in <= 10 s). Prints the figures; no pass/fail on speed
(tox -e bench)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from scalelab.paths import SCALING_MANIFESTS
from scalelab.scenario import load_scenario
from scalelab.twin.calibrate import calibrate, load_runs
from scalelab.twin.predict import format_table, validation_table
from scalelab.twin.tune import Objective, search
from scalelab.twin.workload import arrivals, plans_from_scenario

DATA = Path(__file__).parents[1] / "report" / "data"
RUNS = sorted(DATA.iterdir())


@pytest.mark.bench
def test_bench_twin_validation_table():
    rows = validation_table(RUNS)
    print("\ntwin validation: each recorded scenario predicted from other scenarios' runs "
          "(another run folder)\n" + format_table(rows))
    assert len(rows) == 6


@pytest.mark.bench
@pytest.mark.parametrize("manifest", ["hpa-cpu.yaml", "keda-queue.yaml"])
def test_bench_tune_candidates_per_second(manifest: str, tmp_path: Path):
    tool = "{cpu: {weight: 1, cpu_ms: 200}}" if "hpa" in manifest else \
        "{io: {weight: 1, io_ms: 1000}}"
    scenario = tmp_path / "five-minutes.yaml"
    scenario.write_text(f"""
name: five-minutes
description: a 5-minute scenario for the tune benchmark
manifests: [{SCALING_MANIFESTS / manifest}]
workload: {{batch_size: 4, tools: {tool}}}
phases:
  - {{name: idle, duration: 30, load: {{idle: true}}}}
  - {{name: high, duration: 90, load: {{rate: 6}}}}
  - {{name: low, duration: 60, load: {{rate: 2}}}}
  - {{name: drain, duration: 120, load: {{idle: true}}}}
""")
    scen = load_scenario(scenario)
    cal = calibrate(load_runs([RUNS[0]]))
    plans = plans_from_scenario(scen)
    arr = arrivals(plans, batch_size=4, scale=cal.value("arrival_scale") or 1.0)
    docs = list(yaml.safe_load_all(scen.manifests[0].read_text()))
    wall, cpu = time.perf_counter(), time.process_time()
    res = search(docs=docs, source=manifest, arrivals=arr, params=cal.twin_params(plans),
                 objective=Objective(max_wait_p95=30.0, max_changes=6), budget=1000)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = len(res.candidates)
    print(f"\ntune {manifest}, {len(arr.per_second)} s scenario: {n} candidates in "
          f"{wall:.1f}s wall, {cpu:.1f}s CPU (one core) = {n / cpu:,.0f} candidates per "
          f"CPU-second (goal: 1,000 in <= 10 s); Pareto front {len(res.front)}, best "
          f"{res.best.replica_seconds if res.best else None} replica-seconds")
    assert n + len(res.skipped) == 1000
