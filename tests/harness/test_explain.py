"""The failure explanation of ``experiments/test_scaling.py`` (README: "a failure lists each
failed expectation (expected, observed, when) and the replica timeline"): what it says for a
recorded failed run and for a run that ended in an error, and that pytest prints it as the
failure, without a traceback."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from experiments.test_scaling import _explain
from scalelab.paths import ROOT, SCENARIOS

FAILED_RUN = (ROOT / "tests" / "report" / "data" / "20261127T143137Z-024c9f" / "hpa-flapping"
              / "run.json")


def _failed() -> dict[str, Any]:
    record: dict[str, Any] = json.loads(FAILED_RUN.read_text())
    return record


def test_a_failed_run_lists_the_failed_expectation_with_when_and_the_timeline() -> None:
    record = _failed()
    lines = _explain(record).splitlines()
    assert lines[:3] == [
        "scenario hpa-flapping on backend local: failed",
        "FAILED follows-dip: expected spec replicas <= 3 within 25s in phase 'low-2', "
        "observed spec ranged 4..4, last 4 by +25.0s (at +109s)",
        "replica timeline (t, spec/current/ready, queue, cpu%):",
    ]
    # the five expectations that held are not listed
    assert not [ln for ln in lines if ln.startswith("FAILED") and "follows-dip" not in ln]
    timeline = lines[3:]
    assert len(timeline) == len(record["timeline"]) == 81
    assert timeline[0] == "  +   0.5s 2/2/2 q=0 cpu=0.8"
    assert timeline[8] == "  +  16.5s 4/4/2 q=0 cpu=49.9"     # the scale-out, pods not ready
    assert timeline[-1] == "  + 160.4s 4/4/4 q=0 cpu=43.3"


def test_a_run_that_ended_in_an_error_says_the_error_and_unknowns_as_none() -> None:
    record = _failed()
    record.update(status="error", verdicts=[], error={
        "message": "step drain failed after 183 s: 3 tasks never processed"})
    record["timeline"] = [dict(record["timeline"][0], queue_ready=None, cpu_utilization=None)]
    assert _explain(record).splitlines() == [
        "scenario hpa-flapping on backend local: error",
        "error: step drain failed after 183 s: 3 tasks never processed",
        "replica timeline (t, spec/current/ready, queue, cpu%):",
        "  +   0.5s 2/2/2 q=None cpu=None",
    ]


def test_a_failed_expectation_checked_over_a_phase_has_no_time() -> None:
    record = _failed()
    bound = copy.deepcopy(next(v for v in record["verdicts"] if v["id"] == "flapping-bound"))
    bound.update(passed=False, at=None, observed="7 direction changes")
    record["verdicts"] = [bound]
    record["timeline"] = []
    failed = [ln for ln in _explain(record).splitlines() if ln.startswith("FAILED")]
    assert failed == [f"FAILED flapping-bound: expected {bound['expected']}, observed 7 "
                      "direction changes"]


#: Runs test_scaling's own body with ``run_scenario`` answering the recorded failed run
#: (under the stand-in backend of slow_stack_plugin, whose call hook would skip the body).
FAILING_PLUGIN = f'''
import json
from pathlib import Path
import pytest

def _recorded(scenario, stack, *, settings, progress):
    return json.loads(Path({str(FAILED_RUN)!r}).read_text())

@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    pyfuncitem.module.run_scenario = _recorded
    names = pyfuncitem._fixtureinfo.argnames
    pyfuncitem.obj(**{{n: pyfuncitem.funcargs[n] for n in names}})
    return True
'''


def test_pytest_prints_the_explanation_as_the_failure_without_a_traceback(
        tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "recorded_failure.py").write_text(FAILING_PLUGIN)
    env = {**os.environ, "SLOW_STACK_LOG": str(tmp_path / "stack.log"), "SLOW_STACK_UP": "0.1",
           "SLOW_STACK_TIMEOUT": "60",
           "PYTHONPATH": os.pathsep.join([str(plugins), str(ROOT)])}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "experiments"), "-p",
         "tests.harness.slow_stack_plugin", "-p", "recorded_failure", "-p",
         "no:cacheprovider", "--backend", "local", "--scenarios",
         str(SCENARIOS / "hpa-flapping.yaml"), "--report-dir", str(tmp_path / "reports")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "1 failed" in out, out
    assert "scenario hpa-flapping on backend local: failed" in out, out
    assert "FAILED follows-dip: expected spec replicas <= 3 within 25s" in out, out
    assert "  +  16.5s 4/4/2 q=0 cpu=49.9" in out, out
    assert "Traceback" not in out and "def test_scaling" not in out, out
