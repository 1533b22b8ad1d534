"""The stack's bring-up runs before the first scenario, outside every scenario's timeout,
under its own bound (issue 9, defect 3). Real pytest in a subprocess, with the stand-in
backend of ``slow_stack_plugin`` (FAKE AT THE BACKEND SEAM: no cluster here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from scalelab.paths import ROOT, SCENARIOS


def _session(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    log = tmp_path / "stack.log"
    res = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "experiments"), "-p",
         "tests.harness.slow_stack_plugin", "-p", "no:cacheprovider", "--backend", "local",
         "--scenarios", f"{SCENARIOS / 'hpa-cpu.yaml'},{SCENARIOS / 'keda-queue.yaml'}",
         "--report-dir", str(tmp_path / "reports")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "SLOW_STACK_LOG": str(log), **env})
    return res, log.read_text().splitlines() if log.exists() else []


def test_a_bring_up_longer_than_a_scenarios_timeout_does_not_fail_the_scenario(
        tmp_path: Path) -> None:
    # bring-up 3 s, per-scenario timeout 1 s: before, the first scenario timed out in setup
    res, log = _session(tmp_path, SLOW_STACK_UP="3", SLOW_STACK_TIMEOUT="1")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "2 passed" in out and "Timeout" not in out, out
    assert log == ["up", "scenario hpa-cpu", "scenario keda-queue", "down", "down"], log
    assert "stack up in" in out and "pulling images 3.0s" in out, out
    # the live page's address, printed at the start (issue 11)
    assert "scalelab: live page http://127.0.0.1:9/" in out, out


def test_a_bring_up_past_its_own_bound_fails_every_scenario_with_the_step_and_tears_down(
        tmp_path: Path) -> None:
    res, log = _session(tmp_path, SLOW_STACK_UP="30", SLOW_STACK_TIMEOUT="100",
                        SCALELAB_BRING_UP_TIMEOUT="1")
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "2 errors" in out, out
    assert ("timed out waiting for the slow stack to come up: expected up, saw still at "
            "step pulling images after 1.0s") in out, out
    assert "up" not in log and log[0] == "down", "torn down, no scenario ran"
    assert not any(line.startswith("scenario") for line in log), log


def test_a_bad_bring_up_bound_is_a_usage_error(tmp_path: Path) -> None:
    res, _ = _session(tmp_path, SCALELAB_BRING_UP_TIMEOUT="soon")
    out = res.stdout + res.stderr
    assert res.returncode == 4, out
    assert "field 'SCALELAB_BRING_UP_TIMEOUT': 'soon' is not a positive number" in out, out
    assert "fix: e.g. SCALELAB_BRING_UP_TIMEOUT=" in out, out
