"""``scalelab replay``: trace loading, the simulation and the CLI (pure; no processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalelab.cli import main
from scalelab.control.hpa import HPAControllerSettings
from scalelab.control.replay import load_manifest, load_trace, replay
from scalelab.errors import ConfigError
from scalelab.paths import SCALING_MANIFESTS

HPA = SCALING_MANIFESTS / "hpa-cpu.yaml"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_trace_scales_up_then_down(tmp_path):
    trace = write(tmp_path, "t.csv", "t,cpu_utilization,ready\n0,30,2\n30,90,2\n120,10,2\n"
                  "600,10,2\n")
    spec, _ = load_manifest(HPA)
    result = replay(spec, load_trace(trace), settings=HPAControllerSettings())
    replicas = [s.decision.desired_replicas for s in result.steps]
    assert replicas[0] == 2 and max(replicas) == 4 and replicas[-1] == 2
    up = next(s for s in result.steps if s.decision.scaled)
    assert "above target" in up.decision.reason
    # work is conserved: 90 % on 2 pods reads as 45 % on 4
    after = result.steps[result.steps.index(up) + 1]
    assert after.decision.metric_statuses[0].average_utilization == 45


def test_pod_start_delays_readiness(tmp_path):
    trace = write(tmp_path, "t.jsonl", "\n".join(json.dumps(r) for r in [
        {"t": 0, "cpu_utilization": 100, "ready": 2}, {"t": 120, "cpu_utilization": 100,
                                                       "ready": 2}]))
    spec, _ = load_manifest(HPA)
    result = replay(spec, load_trace(trace), settings=HPAControllerSettings(), pod_start=60)
    assert any("Pending for 60s" in n for n in result.notes)
    assert result.steps[0].decision.desired_replicas == 4


def test_run_record_timeline(tmp_path):
    record = {"timeline": [{"t": 100.0 + 5 * i, "spec": 2, "current": 2, "ready": 2,
                            "cpu_utilization": 80.0, "queue_ready": 3, "queue_unacked": 1}
                           for i in range(10)]}
    trace = write(tmp_path, "run.json", json.dumps(record))
    samples = load_trace(trace)
    assert samples[0].queue_length == 4.0 and samples[0].ready == 2


def test_bad_trace_names_line_and_field(tmp_path):
    trace = write(tmp_path, "t.csv", "t,cpu_utilization\n0,abc\n")
    with pytest.raises(ConfigError) as err:
        load_trace(trace)
    assert err.value.file == str(trace) and err.value.field == "line 2.cpu_utilization"


def test_cli_table_and_json(tmp_path, capsys):
    trace = write(tmp_path, "t.csv", "t,cpu_utilization\n0,90\n60,90\n")
    assert main(["replay", str(HPA), str(trace)]) == 0
    out = capsys.readouterr().out
    assert "pods are Running and Ready as soon as they are created" in out
    assert "2->4" in out
    assert main(["replay", str(HPA), str(trace), "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["scaled"] and lines[0]["desired"] == 4


def test_cli_reports_config_error(tmp_path, capsys):
    trace = write(tmp_path, "t.csv", "cpu\n1\n")
    assert main(["replay", str(HPA), str(trace)]) == 2
    assert "has no 't' column" in capsys.readouterr().err


def test_keda_scaled_object(tmp_path):
    manifest = SCALING_MANIFESTS / "keda-queue.yaml"
    trace = write(tmp_path, "t.csv", "t,queue_length\n0,0\n30,200\n")
    spec, notes = load_manifest(manifest)
    assert any("KEDA" in n for n in notes)
    result = replay(spec, load_trace(trace), settings=HPAControllerSettings())
    assert result.steps[-1].decision.desired_replicas > result.steps[0].decision.desired_replicas
