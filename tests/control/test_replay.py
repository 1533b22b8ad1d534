"""``scalelab replay``: trace loading, the simulation and the CLI (pure; no processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from scalelab.cli import main
from scalelab.control.hpa import HPAControllerSettings
from scalelab.control.trace_replay import KedaHPASpec, load_manifest, load_trace, replay
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
    assert all("keda" not in line for line in lines)  # an HPA replay keeps its format


def test_cli_reports_config_error(tmp_path, capsys):
    trace = write(tmp_path, "t.csv", "cpu\n1\n")
    assert main(["replay", str(HPA), str(trace)]) == 2
    assert "has no 't' column" in capsys.readouterr().err


def test_keda_scaled_object(tmp_path):
    manifest = SCALING_MANIFESTS / "keda-queue.yaml"
    trace = write(tmp_path, "t.csv", "t,queue_length\n0,0\n30,200\n")
    spec, notes = load_manifest(manifest)
    assert any("KEDA's own scaling" in n for n in notes)
    result = replay(spec, load_trace(trace), settings=HPAControllerSettings())
    assert result.steps[-1].decision.desired_replicas > result.steps[0].decision.desired_replicas
    # minReplicaCount 2: an idle queue is not KEDA's business (no activation events)
    assert all(not s.keda for s in result.steps)


# -- KEDA's own scaling (keda.activate on pollingInterval, interleaved with the HPA) ---------

ZERO = SCALING_MANIFESTS / "keda-queue-zero.yaml"  # poll 5 s, cooldown 30 s, activation 10


def keda_events(result):
    """(t, from, to) of every replica change KEDA made, in order."""
    return [(e.t, e.action.current_replicas, e.action.desired_replicas)
            for s in result.steps for e in s.keda]


def replicas_at_syncs(result):
    return {s.t: s.decision.current_replicas for s in result.steps}


def test_keda_scale_to_zero_trace(tmp_path):
    """Idle -> 0 at once; a backlog of activationValue (10, not more) does not wake it; 50
    does (KEDA 0 -> 1, then the HPA); 0 again only after cooldownPeriod of inactivity."""
    trace = write(tmp_path, "t.csv", "t,queue_length\n0,0\n20,10\n40,50\n100,0\n200,0\n")
    spec, _ = load_manifest(ZERO)
    result = replay(spec, load_trace(trace), settings=HPAControllerSettings(sync_period=15))
    # Starts at the HPA's minReplicas (1). Never active: KEDA scales in at its first poll,
    # before the HPA's first sync (KEDA polls first at a shared instant, as the live loop).
    # The backlog of 10 at t=20..35 is not above activationValue: no event until t=40.
    # Last active poll t=95 (the 50 holds until t=100); 95 + 30 = 125 is not *before* 125,
    # so the scale to zero is at the poll after, t=130.
    assert keda_events(result) == [(0.0, 1, 0), (40.0, 0, 1), (130.0, 1, 0)]
    first, woke, slept = (e for s in result.steps for e in s.keda)
    assert first.action.reason.startswith("KEDAScaleTargetDeactivated")
    assert woke.action.reason.startswith("KEDAScaleTargetActivated")
    assert slept.action.reason.endswith("(minReplicaCount)")
    at = replicas_at_syncs(result)
    assert at[0.0] == at[15.0] == at[30.0] == 0
    step0 = result.steps[0]
    assert step0.keda and step0.decision.reason.startswith("ScalingDisabled")
    # after KEDA's 0 -> 1, the HPA scales on queue length (50 / 5 per pod; +2 pods policy)
    step45 = next(s for s in result.steps if s.t == 45.0)
    assert step45.decision.current_replicas == 1 and step45.decision.desired_replicas == 3
    assert "external metric s0-rabbitmq-agent-tasks" in step45.decision.reason
    assert max(at.values()) == 4
    # held above zero through the cooldown (the HPA alone only goes down to its min, 1)
    assert all(n >= 1 for t, n in at.items() if 45.0 <= t <= 120.0)
    assert at[135.0] == 0 and result.steps[-1].decision.current_replicas == 0
    assert all(s.decision.reason.startswith("ScalingDisabled") for s in result.steps
               if s.t >= 135.0)


@pytest.mark.parametrize(("backlog", "wakes"), [(10, False), (11, True)])
def test_keda_activation_value_is_a_strict_threshold(tmp_path, backlog, wakes):
    """rabbitmq QueueLength is active when messages > activationValue (10 here)."""
    trace = write(tmp_path, "t.csv", f"t,queue_length\n0,0\n20,{backlog}\n60,{backlog}\n")
    spec, _ = load_manifest(ZERO)
    result = replay(spec, load_trace(trace), settings=HPAControllerSettings(sync_period=15))
    events = keda_events(result)
    assert events[0] == (0.0, 1, 0)
    assert events[1:] == ([(20.0, 0, 1)] if wakes else [])
    assert (result.steps[-1].decision.current_replicas > 0) is wakes


def test_keda_missing_trace_value_is_a_failed_poll(tmp_path):
    """No queue value: the trigger errs; KEDA never scales in on an error (TriggerError)."""
    trace = write(tmp_path, "t.csv", "t,cpu_utilization\n0,10\n120,10\n")
    spec, _ = load_manifest(ZERO)
    result = replay(spec, load_trace(trace), settings=HPAControllerSettings(sync_period=15))
    assert keda_events(result) == []
    assert all(s.decision.current_replicas == 1 for s in result.steps)
    assert result.steps[0].decision.reason.startswith("FailedComputeMetricsReplicas")


SO_IDLE = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: agent}
spec:
  scaleTargetRef: {name: agent}
  pollingInterval: 10
  cooldownPeriod: 60
  initialCooldownPeriod: 30
  idleReplicaCount: 0
  minReplicaCount: 2
  maxReplicaCount: 6
  triggers:
    - type: rabbitmq
      metadata: {protocol: http, hostFromEnv: URL, queueName: q, mode: QueueLength,
                 value: "5"}
"""


def test_keda_idle_replica_count_and_initial_cooldown(tmp_path):
    """idleReplicaCount 0 with min 2: idle after initialCooldownPeriod (counted from the
    first sample), woken to minReplicaCount (not 1), back to idle after cooldownPeriod."""
    manifest = write(tmp_path, "so.yaml", SO_IDLE)
    trace = write(tmp_path, "t.csv", "t,queue_length\n0,0\n50,1\n60,0\n300,0\n")
    spec, _ = load_manifest(manifest)
    assert spec.min_replicas == 2
    result = replay(spec, load_trace(trace), settings=HPAControllerSettings(sync_period=10))
    # idle at the first poll past 30 s; active at t=50 only (last active 50, +60 -> 120)
    assert keda_events(result) == [(30.0, 2, 0), (50.0, 0, 2), (120.0, 2, 0)]
    assert "(idleReplicaCount)" in next(
        e.action.reason for s in result.steps for e in s.keda if e.t == 120.0)
    at = replicas_at_syncs(result)
    assert at[20.0] == 2 and at[40.0] == 0 and at[110.0] == 2 and at[130.0] == 0


def test_cli_json_carries_keda_events(tmp_path, capsys):
    trace = write(tmp_path, "t.csv", "t,queue_length\n0,0\n20,30\n60,30\n")
    assert main(["replay", str(ZERO), str(trace), "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    keda = [(e["t"], e["from"], e["to"]) for line in lines for e in line.get("keda", [])]
    assert keda == [(0.0, 1, 0), (20.0, 0, 1)]
    assert lines[0]["current"] == 0 and "keda" not in lines[1]
    assert main(["replay", str(ZERO), str(trace)]) == 0
    table = capsys.readouterr().out
    assert "KEDA's own scaling" in table
    # the table has a row per KEDA scale change too, marked as KEDA's
    rows = [line.split() for line in table.splitlines() if "(KEDA)" in line]
    assert [(r[0], r[1]) for r in rows] == [("0.0", "1->0"), ("20.0", "0->1")]
    assert table.rstrip().endswith("2 by KEDA itself")


def test_a_rate_mode_scaled_object_loads_for_replay(tmp_path):
    """hostFromEnv resolves to a management URL, so http-only modes parse (MessageRate)."""
    doc = ZERO.read_text().replace("mode: QueueLength", "mode: MessageRate")
    doc = "\n".join(line for line in doc.splitlines() if "protocol:" not in line)  # auto
    assert "MessageRate" in doc and "protocol" not in doc.split("triggers:")[1]
    spec, notes = load_manifest(write(tmp_path, "rate.yaml", doc))
    assert spec.max_replicas == 4 and any("KEDA" in n for n in notes)


def test_a_memory_metric_is_refused_before_anything_runs(tmp_path):
    doc = yaml.safe_load(HPA.read_text())
    doc["spec"]["metrics"] = [{"type": "Resource", "resource": {
        "name": "memory", "target": {"type": "Utilization", "averageUtilization": 50}}}]
    path = write(tmp_path, "mem.yaml", yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        load_manifest(path)
    assert err.value.field == "spec.metrics[0]" and "memory" in str(err.value)


@pytest.mark.parametrize("name", ["keda-queue.yaml", "keda-queue-zero.yaml", "keda-hybrid.yaml"])
def test_shipped_scaled_objects_with_a_trigger_authentication_load(name):
    """The shipped ScaledObjects read their host through a TriggerAuthentication's Secret
    (authenticationRef); the replay resolves it to a placeholder, as it does hostFromEnv."""
    path = ZERO.parent / name
    assert "authenticationRef" in path.read_text()
    spec, notes = load_manifest(path)
    assert spec.max_replicas == 4 and any("KEDA" in n for n in notes)
    assert isinstance(spec, KedaHPASpec)
    (trigger,) = [t for t in spec.scaled_object.triggers if hasattr(t, "metadata")]
    assert trigger.metadata.host.startswith("http://replay:replay@")
