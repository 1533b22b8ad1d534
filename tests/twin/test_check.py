"""A scenario's ``twin:`` section (scalelab/twin/check.py): where its calibration records
come from, the order and the refusal the pytest driver applies, and the record's ``twin``
made from the recorded local runs in tests/report/data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from scalelab import expectations
from scalelab.errors import ConfigError
from scalelab.paths import SCENARIOS
from scalelab.scenario import load_scenario
from scalelab.twin import check

DATA = Path(__file__).parents[1] / "report" / "data"
RUN_A, RUN_B = sorted(DATA.iterdir())
TUNED = SCENARIOS / "keda-queue-tuned.yaml"


def _copy(src: Path, reports: Path, run_id: str, folder: str, *, status: str = "passed"
          ) -> Path:
    dst = reports / run_id / folder
    shutil.copytree(src, dst)
    rec = json.loads((dst / "run.json").read_text())
    rec["status"] = status
    (dst / "run.json").write_text(json.dumps(rec))
    return dst


def test_records_come_from_this_run_first_else_the_newest_run_with_the_scenario(
        tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    old = _copy(RUN_A / "keda-queue", reports, "20261101T000000Z-aaaaaa", "keda-queue")
    newer = _copy(RUN_B / "keda-queue", reports, "20261102T000000Z-bbbbbb", "keda-queue")
    _copy(RUN_A / "keda-queue", reports, "20261103T000000Z-cccccc", "keda-queue",
          status="error")                    # newest, but errored: not usable
    _copy(RUN_A / "hpa-cpu", reports, "20261104T000000Z-dddddd", "hpa-cpu")
    # no run of this session yet: the newest usable one
    assert check.find_records("keda-queue", run_dir=reports / "20261104T000000Z-dddddd",
                              reports_dir=reports) == [newer]
    # this session's own run wins over a newer folder; repetitions come together
    here = reports / "20261030T000000Z-eeeeee"
    first = _copy(RUN_A / "keda-queue", reports, here.name, "keda-queue")
    second = _copy(RUN_B / "keda-queue", reports, here.name, "keda-queue.r2")
    _copy(RUN_B / "keda-queue", reports, here.name, "keda-queue-tuned")  # another scenario
    assert check.find_records("keda-queue", run_dir=here, reports_dir=reports) == \
        [first, second]
    assert old.exists()
    assert check.find_records("hpa-flapping", run_dir=here, reports_dir=reports) == []


def test_a_scenario_without_a_record_to_calibrate_on_is_refused_with_file_field_fix(
        tmp_path: Path) -> None:
    scen = load_scenario(TUNED)
    with pytest.raises(ConfigError) as err:
        check.calibration_records(scen, run_dir=tmp_path / "run", reports_dir=tmp_path)
    e = err.value
    assert e.file == str(scen.file) and e.field == "twin.calibrate_on"
    assert "keda-queue" in e.message and "-k 'keda-queue or keda-queue-tuned'" in (e.fix or "")
    problems = check.missing_calibration([scen], ["keda-queue-tuned"], reports_dir=tmp_path)
    assert len(problems) == 1 and "twin.calibrate_on" in problems[0]
    # selected together, or recorded earlier: nothing missing
    assert check.missing_calibration([scen], ["keda-queue", "keda-queue-tuned"],
                                      reports_dir=tmp_path) == []
    _copy(RUN_A / "keda-queue", tmp_path, "20261101T000000Z-aaaaaa", "keda-queue")
    assert check.missing_calibration([scen], ["keda-queue-tuned"], reports_dir=tmp_path) == []


def test_scenarios_run_after_those_their_twin_calibrates_on() -> None:
    needs = {"a-tuned": ("z-base",), "m": (), "z-base": (), "b-tuned": ("a-tuned", "missing")}
    assert check.calibration_first(["a-tuned", "b-tuned", "m", "z-base"], needs) == \
        ["z-base", "a-tuned", "b-tuned", "m"]
    # a cycle does not loop forever: every name once
    cyc = check.calibration_first(["x", "y"], {"x": ("y",), "y": ("x",)})
    assert sorted(cyc) == ["x", "y"]


def test_the_record_section_predicts_before_and_compares_after_the_run() -> None:
    """keda-queue predicted from the other folder's keda-queue run, compared with its real
    run: the section the record stores and ``matches_twin`` reads."""
    scen = load_scenario(SCENARIOS / "keda-queue.yaml")
    records = [RUN_A / "keda-queue"]
    pred, cal = check.predict(scen, records)
    before = check.section(pred, cal, records=records, run=None)
    assert before["comparison"] is None and before["error"] is None
    assert before["calibrated_on"] == [str(RUN_A / "keda-queue" / "run.json")]
    assert len(before["timelines"]["ready"]) == int(scen.duration)
    real = json.loads((RUN_B / "keda-queue" / "run.json").read_text())
    after = check.section(pred, cal, records=records, run=real)
    c = after["comparison"]
    assert c["samples"] > 80 and c["within_one"] >= 0.9
    assert abs(c["replica_seconds_error"]) <= 0.10
    verdict = expectations.evaluate_one(
        expectations.Expectation(id="as-predicted", kind="matches_twin", value=10),
        timeline=[], phases={}, tasks=None, locust=None, run_start=None, twin=after)
    assert verdict["passed"], verdict
    assert "predicted" in verdict["observed"] and "replica-seconds" in verdict["observed"]
    # held to 1 %, the same run is not as predicted
    strict = expectations.evaluate_one(
        expectations.Expectation(id="as-predicted", kind="matches_twin", value=0.1),
        timeline=[], phases={}, tasks=None, locust=None, run_start=None, twin=after)
    assert not strict["passed"] and strict["observed"] == verdict["observed"]


def test_the_shipped_proof_scenario_predicts_its_objective_from_a_keda_queue_run() -> None:
    """keda-queue-tuned, predicted from a recorded keda-queue run, meets the objective the
    manifest's header names (the constraints its expectations check)."""
    scen = load_scenario(TUNED)
    assert scen.twin_calibrate_on == ("keda-queue",)
    header = scen.manifests[0].read_text().splitlines()[:6]
    assert any("queue wait p95 <= 20s, <= 4 replica changes" in line for line in header)
    pred, _ = check.predict(scen, [RUN_B / "keda-queue"])
    s = pred.result.summary()
    assert s["queue_wait_p95_s"] <= 20 and s["replica_changes"] <= 4
    doc = yaml.safe_load(TUNED.read_text())
    wait = next(e for e in doc["expectations"] if "queue_wait_p95_s" in e)
    changes = next(e for e in doc["expectations"] if "max_replica_changes" in e)
    assert (wait["queue_wait_p95_s"], changes["max_replica_changes"]) == (20, 4)


def test_a_failed_prediction_is_a_failed_matches_twin_saying_why() -> None:
    section = check.failed_section(ConfigError("no record", field="twin.calibrate_on"))
    verdict = expectations.evaluate_one(
        expectations.Expectation(id="as-predicted", kind="matches_twin", value=10),
        timeline=[], phases={}, tasks=None, locust=None, run_start=None, twin=section)
    assert not verdict["passed"] and "no record" in verdict["message"]
    none = expectations.evaluate_one(
        expectations.Expectation(id="as-predicted", kind="matches_twin", value=10),
        timeline=[], phases={}, tasks=None, locust=None, run_start=None, twin=None)
    assert not none["passed"] and "no twin prediction" in none["message"]
