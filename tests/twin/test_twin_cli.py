"""``scalelab twin`` on the recorded runs: the summary, the comparison with the real run, the
JSON it writes, and what it says when the scenario file no longer matches the run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scalelab import cli
from scalelab.paths import SCENARIOS

DATA = Path(__file__).parents[1] / "report" / "data"
RUN_A = sorted(DATA.iterdir())[0]


def test_twin_predicts_and_compares_with_the_real_run(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "twin.json"
    chart = tmp_path / "twin.html"
    code = cli.main(["twin", str(RUN_A), "--scenario", str(SCENARIOS / "hpa-cpu.yaml"),
                     "--holdout", "--output", str(out), "--chart", str(chart)])
    text = capsys.readouterr().out
    assert code == 0
    assert "hpa-cpu/run.json" not in text.split("# calibrated on:")[1].splitlines()[0]
    assert "34.7s  hpa  2->4" in text and "hpa  4->2" in text
    assert "real vs predicted: 100% of 110 samples within +-1 replica" in text
    doc = json.loads(out.read_text())
    assert doc["scenario"] == "hpa-cpu"
    assert doc["comparison"]["meets_goal"] is True
    assert doc["calibration"]["params"]["cpu_request_cores"]["fields"].startswith("scenario.")
    html = chart.read_text()
    assert html.count("<svg") == 3
    for name in ("ready", "queue", "cpu"):
        assert f"<title>predicted {name}</title>" in html
        assert f"<title>real {name}</title>" in html
    n = doc["summary"]["seconds"]
    assert n == 220 and all(len(doc["timelines"][k]) == n for k in ("spec", "ready",
                                                                     "queue_ready"))


def test_a_changed_scenario_file_is_predicted_but_not_compared(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]):
    # experiments/scenarios/hpa-flapping.yaml dips to 1 task/s for 35 s since these runs
    # (2 tasks/s for 25 s): comparing would measure the change, not the model
    code = cli.main(["twin", str(RUN_A), "--scenario", str(SCENARIOS / "hpa-flapping.yaml"),
                     "--output", str(tmp_path / "t.json")])
    text = capsys.readouterr().out
    assert code == 0
    assert "the scenario file changed since that run" in text
    assert json.loads((tmp_path / "t.json").read_text())["comparison"] is None


def test_a_folder_without_records_is_one_clear_error(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]):
    code = cli.main(["twin", str(tmp_path), "--scenario", str(SCENARIOS / "hpa-cpu.yaml"),
                     "--output", str(tmp_path / "t.json")])
    err = capsys.readouterr().err
    assert code == 2
    assert "holds no run record" in err and "fix:" in err and "Traceback" not in err


def test_holdout_never_falls_back_to_the_scenarios_own_record(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    only = tmp_path / "run"
    shutil.copytree(RUN_A / "hpa-cpu", only / "hpa-cpu")
    code = cli.main(["twin", str(only), "--scenario", str(SCENARIOS / "hpa-cpu.yaml"),
                     "--holdout", "--output", str(tmp_path / "t.json")])
    err = capsys.readouterr().err
    assert code == 2 and "--holdout leaves no record" in err
    assert not (tmp_path / "t.json").exists()


def test_a_scenario_with_faults_is_predicted_saying_they_are_not_modelled(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["twin", str(RUN_A), "--scenario", str(SCENARIOS / "keda-agent-kills.yaml"),
                     "--output", str(tmp_path / "t.json")])
    text = capsys.readouterr().out
    assert code == 0
    assert "faults are not modelled (1 in the scenario): predicted as if none fired" in text
    notes = json.loads((tmp_path / "t.json").read_text())["notes"]
    assert any(n.startswith("faults are not modelled") for n in notes), notes
    # and a scenario without faults says nothing of them
    cli.main(["twin", str(RUN_A), "--scenario", str(SCENARIOS / "keda-queue.yaml"),
              "--output", str(tmp_path / "k.json")])
    assert "faults are not modelled" not in capsys.readouterr().out
