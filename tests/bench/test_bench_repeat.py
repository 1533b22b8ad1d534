"""Benchmark: how repeatable are the timings? hpa-cpu and keda-queue, 5 repetitions each.

Prints, per scenario, the median, min, max and coefficient of variation of the first
scale-up and back-to-floor times over the repetitions (issue 13's goal: CV <= 15 %; this
prints what it measures, it asserts nothing about it). About 35 minutes on the local
backend: ``tox -e bench -- -k repeat``. ``SCALELAB_BENCH_REPEAT`` changes N.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scalelab.paths import ROOT
from scalelab.repetitions import Spread
from scalelab.report.render import read_run

SCENARIOS = ("hpa-cpu", "keda-queue")
FIGURES = ("time_to_first_scale_up", "time_back_to_floor")


@pytest.mark.bench
@pytest.mark.timeout(4 * 3600 + 120)  # the session below has its own bound: 4 hours
def test_bench_repeat(tmp_path: Path) -> None:
    n = int(os.environ.get("SCALELAB_BENCH_REPEAT", "5"))
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "experiments"), "-p", "no:cacheprovider",
         "--scenarios", ",".join(str(ROOT / "experiments" / "scenarios" / f"{name}.yaml")
                                 for name in SCENARIOS),
         "--repeat", str(n), "--report-dir", str(reports),
         "-q"], cwd=ROOT, capture_output=True, text=True, timeout=4 * 3600, check=False)
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir()]
    runs = read_run(run_dir)[0]
    print(f"\nrepeatability over {n} repetitions per scenario (local backend, run "
          f"{run_dir.name}; pytest exit {done.returncode}); goal CV <= 15 %")
    print(f"{'scenario':<12} {'figure':<24} {'n':>2} {'median':>8} {'min':>7} {'max':>7} "
          f"{'CV':>6}  passed")
    for name in SCENARIOS:
        mine = [r for r in runs if r.name == name]
        passed = sum(1 for r in mine if r.record["status"] == "passed")
        for key in FIGURES:
            sp = Spread.of(r.summary.get(key) for r in mine)
            if sp is None:
                print(f"{name:<12} {key:<24}  no values")
                continue
            cv = f"{sp.cv * 100:5.1f}%" if sp.cv is not None else "    –"
            print(f"{name:<12} {key:<24} {sp.n:>2} {sp.median:7.1f}s {sp.low:6.1f}s "
                  f"{sp.high:6.1f}s {cv}  {passed}/{len(mine)}")
    assert len(runs) == n * len(SCENARIOS), done.stdout[-3000:] + done.stderr[-3000:]
