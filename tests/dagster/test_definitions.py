"""Loading ``scalelab.dagster``: one asset per scenario file, keys, groups, checks, the job and
the schedule; bad scenario files fail the load with ``scalelab validate``'s message."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.dagster.conftest import DATA, SKIP_REASON

dg = pytest.importorskip("dagster", reason=SKIP_REASON)

import scalelab.dagster as sd  # noqa: E402  (its import errors are failures)
from scalelab.commands import validate  # noqa: E402
from scalelab.errors import ConfigError  # noqa: E402
from scalelab.paths import ROOT, SCENARIOS  # noqa: E402
from scalelab.scenario import load_scenario, scenario_files  # noqa: E402


def _graph(defs: Any) -> Any:
    return defs.resolve_asset_graph()


def test_one_asset_per_scenario_file_keyed_by_name_grouped_by_first_tag() -> None:
    defs = sd.build_definitions([DATA])
    graph = _graph(defs)
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"scenario/dagster-short", "scenario/dagster-fails", "scalelab/report",
                    "scalelab/comparison"}
    assert graph.get(dg.AssetKey(["scenario", "dagster-short"])).group_name == "hpa"
    # a tag that is not a Dagster name ("smoke-test") becomes one
    assert graph.get(dg.AssetKey(["scenario", "dagster-fails"])).group_name == "smoke_test"
    assert graph.get(sd.REPORT_KEY).group_name == "reports"
    # the report waits for every scenario, the comparison for the report
    assert set(graph.get(sd.REPORT_KEY).parent_keys) == {
        dg.AssetKey(["scenario", "dagster-short"]), dg.AssetKey(["scenario", "dagster-fails"])}
    assert set(graph.get(sd.COMPARISON_KEY).parent_keys) == {sd.REPORT_KEY}


def test_the_shipped_scenarios_are_the_default() -> None:
    graph = _graph(sd.defs)
    files = scenario_files([SCENARIOS])
    assert files
    for file in files:
        scenario = load_scenario(file)
        node = graph.get(dg.AssetKey(["scenario", scenario.name]))
        assert node.group_name == scenario.tags[0]
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {"hpa", "keda", "reports"}
    scenario_keys = [k for k in graph.get_all_asset_keys() if k.path[0] == "scenario"]
    assert len(scenario_keys) == len(files)
    # a scenario whose twin calibrates on another runs after it in a job
    assert set(graph.get(dg.AssetKey(["scenario", "keda-queue-tuned"])).parent_keys) == {
        dg.AssetKey(["scenario", "keda-queue"])}


def test_checks_job_schedule_resource_and_executor() -> None:
    defs = sd.build_definitions([DATA], env={"SCALELAB_BACKEND": "local",
                                             "SCALELAB_REPORT_DIR": "/somewhere/reports"})
    checks = {(k.asset_key.to_user_string(), k.name) for k in _graph(defs).asset_check_keys}
    assert checks == {("scenario/dagster-short", "no_task_lost"),
                      ("scenario/dagster-fails", "no_task_lost"),
                      ("scalelab/comparison", "no_regression")}
    job = defs.resolve_job_def(sd.ALL_SCENARIOS_JOB)
    selected = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert selected == {"scenario/dagster-short", "scenario/dagster-fails", "scalelab/report",
                        "scalelab/comparison"}
    assert job.executor_def.name == "in_process"  # one stack for every scenario of a run
    schedule = defs.resolve_schedule_def(sd.NIGHTLY_SCHEDULE)
    assert schedule.job_name == sd.ALL_SCENARIOS_JOB
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    report_job = defs.resolve_job_def(sd.REPORT_JOB)
    assert {k.to_user_string() for k in report_job.asset_layer.selected_asset_keys} == {
        "scalelab/report", "scalelab/comparison"}
    sensor = defs.resolve_sensor_def(sd.AFTER_FAILURE_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.job_name == sd.REPORT_JOB
    stack = defs.resources[sd.RESOURCE_KEY]
    assert (stack.backend, stack.report_dir) == ("local", "/somewhere/reports")


def test_scenarios_env_follows_the_pytest_rule(tmp_path: Path) -> None:
    assert sd.scenario_paths({}) == [SCENARIOS]
    got = sd.scenario_paths({"SCALELAB_SCENARIOS": f"a.yaml,{tmp_path},sub/"}, cwd=tmp_path)
    assert got == [tmp_path / "a.yaml", tmp_path, tmp_path / "sub/"]


BAD = """name: bad
description: x
tags: [hpa]
manifests: [manifests/scaling/hpa-cpu.yaml]
workload: {tools: {cpu: {weight: 1, cpu_ms: 10}}}
phases:
  - {name: load, duration: 10, load: {rate: 1, userz: 3}}
expectations: []
"""


def test_a_bad_scenario_file_fails_the_load_with_the_validate_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ok.yaml").write_text((DATA / "dagster-short.yaml").read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    with pytest.raises(ConfigError) as err:
        sd.build_definitions([tmp_path])
    assert str(bad) in str(err.value) and "userz" in str(err.value) and "fix:" in str(err.value)
    assert validate.run(argparse.Namespace(paths=[tmp_path], quick=True)) == 1
    assert f"ERROR {err.value}" in capsys.readouterr().err


def test_no_scenario_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no scenario files") as err:
        sd.build_definitions([tmp_path])
    assert "SCALELAB_SCENARIOS" in str(err.value)


def test_dagster_cli_refuses_to_load_bad_scenarios(tmp_path: Path) -> None:
    """What ``dagster dev -m scalelab.dagster`` shows: the file, the field and the fix."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    dagster = Path(sys.executable).parent / "dagster"
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "SCALELAB_SCENARIOS": str(tmp_path), "DAGSTER_HOME": str(home)}
    done = subprocess.run([str(dagster), "definitions", "validate", "-m", "scalelab.dagster"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    with pytest.raises(ConfigError) as err:
        load_scenario(bad)
    assert "field 'phases[0].load.userz'" in str(err.value)
    assert str(err.value) in done.stdout + done.stderr
    env["SCALELAB_SCENARIOS"] = str(DATA)
    done = subprocess.run([str(dagster), "definitions", "validate", "-m", "scalelab.dagster"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _pytest_explain() -> Any:
    spec = importlib.util.spec_from_file_location(
        "scalelab_test_scaling", ROOT / "experiments" / "test_scaling.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._explain


def _record(**changes: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "run_id": "r1", "status": "failed", "started_at": 100.0,
        "scenario": {"name": "s"}, "backend": {"name": "local", "details": {}},
        "error": None,
        "verdicts": [
            {"id": "a", "passed": True, "expected": "x", "observed": "x", "at": 101.0},
            {"id": "b", "passed": False, "expected": "4 replicas", "observed": "2",
             "at": 130.0}],
        "timeline": [{"t": 100.0, "spec": 2, "current": 2, "ready": 2, "queue_ready": 0,
                      "cpu_utilization": 10.0}],
        "tasks": {"published": 10, "processed": 10, "lost": 0, "duplicated": 0,
                  "queue_left": 0},
    }
    rec.update(changes)
    return rec


def test_the_failure_message_is_the_pytest_drivers() -> None:
    explain = _pytest_explain()
    for rec in (_record(), _record(error={"type": "X", "message": "boom"}, status="error")):
        assert sd.explain(rec) == explain(rec)
    assert "FAILED b: expected 4 replicas, observed 2 (at +30s)" in sd.explain(_record())


def test_no_task_lost_check_reads_the_task_accounting() -> None:
    ok = sd.task_check(_record())
    assert ok.passed and "lost 0" in ok.metadata["observed"].value
    lost = sd.task_check(_record(tasks={"published": 10, "processed": 8, "lost": 2,
                                        "duplicated": 0, "queue_left": 0,
                                        "lost_ids": ["t1", "t2"]}))
    assert not lost.passed
    assert "NOT met" in lost.metadata["message"].value and "t1" in lost.metadata["message"].value
    leftover = sd.task_check(_record(tasks={"published": 10, "processed": 10, "lost": 0,
                                            "duplicated": 0, "queue_left": 3}))
    assert not leftover.passed


def test_bring_up_timeout_from_the_environment() -> None:
    from scalelab.backends.local.backend import LocalBackend

    assert sd.bring_up_timeout(LocalBackend, {}) == LocalBackend.bring_up_timeout
    assert sd.bring_up_timeout(LocalBackend, {"SCALELAB_BRING_UP_TIMEOUT": "12"}) == 12.0
    with pytest.raises(ConfigError, match="SCALELAB_BRING_UP_TIMEOUT"):
        sd.bring_up_timeout(LocalBackend, {"SCALELAB_BRING_UP_TIMEOUT": "soon"})


def test_metadata_of_a_record() -> None:
    rec = _record(timeline=[
        {"t": 100.0, "spec": 2, "current": 2, "ready": 2},
        {"t": 110.0, "spec": 4, "current": 4, "ready": 2},
        {"t": 115.0, "spec": 4, "current": 4, "ready": 4},
        {"t": 160.0, "spec": 2, "current": 2, "ready": 2}],
        phases=[{"name": "load", "start": 100.0, "end": 140.0, "planned_duration": 40,
                 "load": {"mode": "rate", "rate": 4}}],
        timing_profile={"scrape_interval": 5, "hpa_sync_period": 5, "metrics_window": 10})
    meta = sd.scenario_metadata(rec, run_json=Path("/r/run.json"), page=None)
    assert meta["verdict"] == "failed"
    assert meta["expectation a"] == "passed"
    assert meta["expectation b"] == "FAILED: expected 4 replicas, observed 2"
    assert meta["time to first scale-up (s)"] == 10.0
    assert meta["time back to floor (s)"] == 20.0
    assert meta["reaction (s)"] == 15.0
    assert meta["tasks published"] == 10 and meta["tasks processed"] == 10
    assert json.loads(json.dumps(meta["backend details"].data)) == {}
    assert "report page" not in meta
