"""``--repeat N``: every scenario runs N times; the test passes on min_pass, says k of N.

Real pytest sessions over experiments/ with the stand-in backend (slow_stack_plugin) and
``run_scenario`` answering a recorded run, failed in chosen repetitions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scalelab.paths import ROOT

DATA = ROOT / "tests" / "report" / "data" / "20261127T143137Z-024c9f" / "hpa-cpu" / "run.json"
SCENARIO = ROOT / "experiments" / "scenarios" / "hpa-cpu.yaml"

#: run_scenario answering the recorded run, "failed" in the repetitions listed in FAIL_IN;
#: each call is logged (its repetition argument) to CALLS.
PLUGIN = f'''
import copy, json, os
from pathlib import Path
import pytest

RECORD = json.loads(Path({str(DATA)!r}).read_text())

def _recorded(scenario, stack, *, settings, progress, repetition=None):
    with open(os.environ["CALLS"], "a") as fh:
        fh.write(json.dumps(repetition) + "\\n")
    rec = copy.deepcopy(RECORD)
    k = repetition[0] if repetition else 1
    if k in {{int(x) for x in os.environ.get("FAIL_IN", "").split(",") if x}}:
        rec["status"] = "failed"
        rec["verdicts"][1]["passed"] = False
    if repetition:
        rec["repetition"] = {{"index": k, "of": repetition[1]}}
    return rec

@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    pyfuncitem.module.run_scenario = _recorded
    names = pyfuncitem._fixtureinfo.argnames
    pyfuncitem.obj(**{{n: pyfuncitem.funcargs[n] for n in names}})
    return True
'''


def _session(tmp_path: Path, *args: str, fail_in: str = "", scenario: Path = SCENARIO
             ) -> tuple[int, str, list[object]]:
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "recorded_repeats.py").write_text(PLUGIN)
    calls = tmp_path / "calls.jsonl"
    calls.unlink(missing_ok=True)
    env = {**os.environ, "SLOW_STACK_LOG": str(tmp_path / "stack.log"), "SLOW_STACK_UP": "0.1",
           "SLOW_STACK_TIMEOUT": "60", "CALLS": str(calls), "FAIL_IN": fail_in,
           "PYTHONPATH": os.pathsep.join([str(plugins), str(ROOT)])}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "experiments"), "-p",
         "tests.harness.slow_stack_plugin", "-p", "recorded_repeats", "-p",
         "no:cacheprovider", "--backend", "local", "--scenarios", str(scenario),
         "--report-dir", str(tmp_path / "reports"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    made = [json.loads(x) for x in calls.read_text().splitlines()] if calls.exists() else []
    return res.returncode, res.stdout + res.stderr, made


def test_repeat_runs_each_scenario_n_times_and_all_must_pass(tmp_path: Path) -> None:
    code, out, calls = _session(tmp_path, "--repeat", "3")
    assert code == 0, out
    assert calls == [[1, 3], [2, 3], [3, 3]]
    code, out, calls = _session(tmp_path, "--repeat", "3", fail_in="2")
    assert code == 1, out
    assert "hpa-cpu: 2 of 3 repetitions passed, 3 needed (min_pass)" in out, out
    assert "scale-out: held in 2 of 3" in out and "baseline-at-min: held in 3 of 3" in out, out
    assert "first failed repetition (2 of 3):" in out, out
    assert "Traceback" not in out


def test_min_pass_lets_some_repetitions_fail(tmp_path: Path) -> None:
    scenario = tmp_path / "hpa-cpu.yaml"
    scenario.write_text(SCENARIO.read_text().replace(
        "manifests: [manifests/scaling/hpa-cpu.yaml]",
        f"manifests: [{ROOT / 'manifests/scaling/hpa-cpu.yaml'}]") + "repeat: 4\nmin_pass: 3\n")
    code, out, calls = _session(tmp_path, fail_in="4", scenario=scenario)
    assert code == 0, out
    assert calls == [[k, 4] for k in range(1, 5)], "the scenario's repeat: applies"
    code, out, _ = _session(tmp_path, fail_in="1,4", scenario=scenario)
    assert code == 1 and "2 of 4 repetitions passed, 3 needed" in out, out
    code, out, calls = _session(tmp_path, "--repeat", "2", scenario=scenario)
    assert code == 1 and "min_pass 3 is more than the 2 repetitions" in out, out
    assert calls == [], "nothing runs when min_pass cannot be met"


def test_one_run_by_default_and_a_bad_repeat_is_a_usage_error(tmp_path: Path) -> None:
    code, out, calls = _session(tmp_path)
    assert code == 0 and calls == [None], out
    code, out, calls = _session(tmp_path, "--repeat", "0")
    assert code == 4, out
    assert "--repeat / scalelab_repeat: '0' is not a number of repetitions" in out, out
    assert calls == []


@pytest.mark.parametrize("value", ["2"])
def test_the_ini_setting_applies_and_the_command_line_wins(tmp_path: Path, value: str) -> None:
    ini = tmp_path / "pytest.ini"
    ini.write_text(f"[pytest]\nscalelab_repeat = {value}\n")
    code, out, calls = _session(tmp_path, "-c", str(ini), "--rootdir", str(ROOT))
    assert code == 0 and calls == [[1, 2], [2, 2]], out
    code, out, calls = _session(tmp_path, "-c", str(ini), "--rootdir", str(ROOT),
                                "--repeat", "1")
    assert code == 0 and calls == [None], out
