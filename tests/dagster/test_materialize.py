"""Materializing scenario assets in process on the local backend (real broker, Prometheus,
services and Locust), then the report and the comparison: what Dagster shows is what the
run record says, a failed expectation fails its asset after the record is written, and the
stack is gone at the end of the run."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.dagster.conftest import DATA, SKIP_REASON
from tests.local.leftovers import describe, tagged

dg = pytest.importorskip("dagster", reason=SKIP_REASON)

import scalelab.dagster as sd  # noqa: E402  (its import errors are failures)
from scalelab import record  # noqa: E402
from scalelab.figures import scenario_figures  # noqa: E402
from scalelab.report.summary import summarize  # noqa: E402
from scalelab.waiting import wait_for  # noqa: E402

pytestmark = pytest.mark.slow

SHORT = dg.AssetKey(["scenario", "dagster-short"])
FAILS = dg.AssetKey(["scenario", "dagster-fails"])


@dataclass(frozen=True, kw_only=True)
class Materialized:
    result: Any
    instance: Any
    reports: Path
    defs: Any

    def stack(self) -> Any:
        return sd.ScalelabStack(backend="local", report_dir=str(self.reports))

    def materialize(self, *keys: Any) -> Any:
        return dg.materialize(list(self.defs.assets), selection=list(keys),
                              resources={sd.RESOURCE_KEY: self.stack()},
                              instance=self.instance, raise_on_error=False)

    def logs(self, result: Any) -> list[str]:
        return [e.user_message for e in self.instance.all_logs(result.run_id)]


def _assert_clean(tag: str) -> None:
    left = wait_for(lambda: tagged(tag), lambda procs: not procs, what="no tagged processes",
                    expected="none", timeout=20, interval=0.2)
    assert not left, describe(left)
    assert not list(Path(tempfile.gettempdir()).glob("scalelab-*"))


@pytest.fixture(scope="module")
def run(tag: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Materialized]:
    """One Dagster run of both test scenarios (and the report, which the failure skips)."""
    reports = tmp_path_factory.mktemp("reports")
    with dg.DagsterInstance.ephemeral() as instance:
        m = Materialized(result=None, instance=instance, reports=reports,
                         defs=sd.build_definitions([DATA]))
        result = m.materialize(SHORT, FAILS, sd.REPORT_KEY)
        _assert_clean(tag)  # the stack went down with the run
        yield Materialized(result=result, instance=instance, reports=reports, defs=m.defs)


def _record(run: Materialized, name: str) -> dict[str, Any]:
    (run_dir,) = record.find_runs(run.reports)
    return record.load(run_dir / name)


def _materialization(result: Any, key: Any) -> dict[str, Any]:
    (event,) = [e for e in result.get_asset_materialization_events()
                if e.asset_key == key]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_metadata_is_what_the_record_says(run: Materialized) -> None:
    rec = _record(run, "dagster-short")
    assert rec["status"] == "passed", sd.explain(rec)
    meta = _materialization(run.result, SHORT)
    summary, figures = summarize(rec), scenario_figures(rec)
    assert meta["verdict"] == "passed"
    assert meta["run id"] == rec["run_id"]
    assert meta["expectations passed"] == len(rec["verdicts"]) == 4
    for v in rec["verdicts"]:
        assert meta[f"expectation {v['id']}"] == "passed"
        assert v["id"] in meta["expectations"]
    assert meta["time to first scale-up (s)"] == summary["time_to_first_scale_up"]
    assert meta["time back to floor (s)"] == summary["time_back_to_floor"]
    assert meta["reaction (s)"] == figures["reaction_s"]
    assert meta["reaction bound (s)"] == figures["bound_s"]
    assert meta["tasks published"] == rec["tasks"]["published"] > 0
    assert meta["tasks processed"] == rec["tasks"]["processed"] == rec["tasks"]["published"]
    assert meta["backend"] == "local"
    assert meta["backend details"] == rec["backend"]["details"]
    assert "KEDA operator" in json.dumps(meta["backend details"])
    page = Path(meta["report page"].removeprefix("file://"))
    assert page == (run.reports / rec["run_id"] / "dagster-short" / "index.html").resolve()
    assert page.is_file() and "dagster-short" in page.read_text()
    assert Path(meta["run record"]) == run.reports / rec["run_id"] / "dagster-short" / "run.json"


def test_the_progress_lines_go_to_dagsters_log(run: Materialized) -> None:
    logs = "\n".join(run.logs(run.result))
    assert "scalelab: backend LOCAL" in logs
    assert "[dagster-short] reset:" in logs
    assert "[dagster-short] applied manifests/scaling/hpa-cpu.yaml" in logs
    assert "[dagster-short] load" in logs  # a sample's progress line during the load phase
    assert "tearing the local stack down" in logs
    assert logs.count("bringing the stack up") == 1  # once for both scenarios


def test_a_failed_expectation_fails_the_asset_after_writing_the_record(
        run: Materialized) -> None:
    rec = _record(run, "dagster-fails")
    assert rec["status"] == "failed"
    assert [v["id"] for v in rec["verdicts"] if not v["passed"]] == ["impossible"]
    assert not run.result.success
    (failure,) = run.result.get_step_failure_events()
    assert failure.step_key == "scenario__dagster_fails"
    # the pytest driver's message (test_definitions checks it is the same text)
    assert failure.step_failure_data.user_failure_data.description == sd.explain(rec)
    assert not [e for e in run.result.get_asset_materialization_events() if e.asset_key == FAILS]
    # its figures are kept as an observation, and the report waits for a green run
    observed = [e for e in run.result.all_events
                if e.event_type_value == "ASSET_OBSERVATION"
                and e.asset_observation_data.asset_observation.asset_key == FAILS]
    assert observed and observed[0].asset_observation_data.asset_observation.metadata[
        "verdict"].value == "failed"
    assert sd.REPORT_KEY not in {e.asset_key for e in
                                 run.result.get_asset_materialization_events()}


def test_no_task_lost_is_checked_for_every_scenario(run: Materialized) -> None:
    evaluations = {e.asset_check_key.asset_key: e for e in
                   run.result.get_asset_check_evaluations()}
    for key in (SHORT, FAILS):
        assert evaluations[key].asset_check_key.name == "no_task_lost"
        assert evaluations[key].passed, evaluations[key].metadata
        name = key.path[-1]
        assert f"published {_record(run, name)['tasks']['published']}" in \
            evaluations[key].metadata["observed"].value


def test_the_stack_renders_the_run_even_when_dagster_skips_the_report(
        run: Materialized) -> None:
    rec = _record(run, "dagster-fails")
    index = (run.reports / "index.html").read_text()
    assert rec["run_id"] in index
    assert (run.reports / rec["run_id"] / "dagster-fails" / "index.html").is_file()


def test_after_a_failed_run_the_sensor_asks_for_the_report_and_comparison(
        run: Materialized) -> None:
    sensor = run.defs.resolve_sensor_def(sd.AFTER_FAILURE_SENSOR)
    context = dg.build_run_status_sensor_context(
        sensor_name=sd.AFTER_FAILURE_SENSOR, dagster_instance=run.instance,
        dagster_run=run.result.dagster_run,
        dagster_event=run.result.get_run_failure_event()).for_run_failure()
    request = sensor(context)
    assert request.run_key == run.result.run_id
    assert request.tags["scalelab/after-run"] == run.result.run_id


def test_report_asset_renders_the_index_without_a_stack(run: Materialized, tag: str) -> None:
    (run.reports / "index.html").unlink()
    result = run.materialize(sd.REPORT_KEY)
    assert result.success
    meta = _materialization(result, sd.REPORT_KEY)
    rec = _record(run, "dagster-short")
    assert meta["run id"] == rec["run_id"]
    assert meta["scenarios"] == {"dagster-short": "passed", "dagster-fails": "failed"}
    assert meta["scenarios passed"] == 1
    index = run.reports / "index.html"
    assert meta["index"] == index.resolve().as_uri() and index.is_file()
    assert "dagster-short" in index.read_text()
    logs = "\n".join(run.logs(result))
    assert "bringing the stack up" not in logs and not tagged(tag)


def test_comparison_flags_regressions_against_the_previous_run(run: Materialized) -> None:
    first = run.materialize(sd.COMPARISON_KEY)
    assert first.success
    assert _materialization(first, sd.COMPARISON_KEY)["baseline"] == "none"

    # An earlier run in which the API answered twice as fast: this run's p95 regressed.
    (current,) = record.find_runs(run.reports)
    earlier = run.reports / "20000101T000000Z-000000"
    shutil.copytree(current, earlier)
    for path in earlier.glob(f"*/{record.RUN_FILE}"):
        rec = json.loads(path.read_text())
        rec["run_id"] = earlier.name
        rec["locust"]["p95_ms"] = rec["locust"]["p95_ms"] / 2
        rec["status"] = "passed"  # dagster-fails passed then: a verdict regression now
        path.write_text(json.dumps(rec))
    try:
        result = run.materialize(sd.COMPARISON_KEY)
        assert result.success
        meta = _materialization(result, sd.COMPARISON_KEY)
        assert (meta["baseline"], meta["contender"]) == (earlier.name, current.name)
        assert meta["regressions"] >= 2, meta["table"]
        assert "dagster-short: API p95" in meta["regressed"]
        assert meta["verdict regressions"] == ["dagster-fails"]
        (check,) = result.get_asset_check_evaluations()
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        page = Path(meta["page"].removeprefix("file://"))
        assert page.is_file()
        assert page.name in (run.reports / "index.html").read_text()
    finally:
        shutil.rmtree(earlier)
