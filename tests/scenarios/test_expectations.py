"""Expectation evaluation over hand-built timelines (pure logic: no processes needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from scalelab import record
from scalelab.expectations import evaluate
from scalelab.scenario import Scenario, load_scenario

T0 = 1_700_000_000.0

PHASES = [
    {"name": "baseline", "duration": 20, "load": {"idle": True}},
    {"name": "load", "duration": 60, "load": {"rate": 5}},
    {"name": "cooldown", "duration": 60, "load": {"idle": True}},
]


def scenario(tmp_path: Path, expectations: list[dict[str, Any]], *,
             manifest: str = "manifests/scaling/hpa-cpu.yaml") -> Scenario:
    doc = {
        "name": "exp", "description": "expectation tests",
        "manifests": [manifest],
        "workload": {"tools": {"cpu": {"cpu_ms": 100}}},
        "phases": PHASES, "expectations": expectations,
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_scenario(path)


def ran_phases(*, skip: str | None = None) -> list[dict[str, Any]]:
    out, t = [], T0
    for p in PHASES:
        ran = p["name"] != skip
        out.append({"name": p["name"], "start": t if ran else None,
                    "end": t + p["duration"] if ran else None,
                    "planned_duration": p["duration"]})
        t += p["duration"]
    return out


def timeline(points: list[tuple[float, int]], *, spec: dict[float, int] | None = None
             ) -> list[dict[str, Any]]:
    """Samples every 2 s from T0; ``points`` = (offset, ready) steps (held until the next)."""
    out = []
    for i in range(0, 141, 2):
        ready = [r for off, r in points if off <= i][-1]
        s = spec.get(i, ready) if spec else ready
        out.append({"t": T0 + i, "spec": s, "current": ready, "ready": ready})
    return out


TASKS_OK = {"published": 100, "processed": 100, "lost": 0, "duplicated": 2,
            "queue_left": {"ready": 0, "unacked": 0}}

# 2 replicas; 3 at +30 (load +10); 4 at +44 (load +24); back to 2 at +110 (cooldown +30)
STEPS = [(0, 2), (30, 3), (44, 4), (110, 2)]


def run(tmp_path: Path, exps: list[dict[str, Any]], *, tl: list[dict[str, Any]] | None = None,
        phases: list[dict[str, Any]] | None = None, tasks: dict[str, Any] | None = None,
        locust: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    verdicts = evaluate(scenario(tmp_path, exps),
                        timeline=timeline(STEPS) if tl is None else tl,
                        phases=ran_phases() if phases is None else phases,
                        tasks=TASKS_OK if tasks is None else tasks, locust=locust)
    item_schema = record.schema()["properties"]["verdicts"]["items"]
    for v in verdicts:
        jsonschema.validate(v, item_schema)
        assert set(v) == {"id", "kind", "phase", "passed", "expected", "observed", "at",
                          "message"}
    return verdicts


# (expectation, passed, at offset from T0 or None)
CASES = [
    ({"phase": "load", "reaches": 4, "within": 30}, True, 44),
    ({"phase": "load", "reaches": 4, "within": 24}, True, 44),   # exactly at the boundary
    ({"phase": "load", "reaches": 4, "within": 22}, False, 42),  # just short of it
    ({"phase": "load", "at_least": 3, "within": 10}, True, 30),
    ({"phase": "load", "at_least": 3, "within": 8}, False, 28),
    ({"phase": "cooldown", "at_most": 2, "within": 30}, True, 110),
    ({"phase": "cooldown", "reaches": 2, "within": 28}, False, 108),
    ({"phase": "load", "holds": 4, "for": 30}, True, 74),
    # 4 is held from +44 to +78 in the load phase (the sample at +80 is the cooldown's): 34 s
    ({"phase": "load", "holds": 4, "for": 34}, True, 78),
    ({"phase": "load", "holds": 4, "for": 36}, False, 78),
    ({"phase": "load", "holds": 4, "for": 40}, False, 78),
    ({"phase": "baseline", "stays": 2}, True, None),
    ({"phase": "load", "stays": 2}, False, 30),
    ({"never_above": 4}, True, None),
    ({"phase": "load", "never_below": 3}, False, 20),
    ({"phase": "cooldown", "never_below": 2}, True, None),
    ({"max_replica_changes": 3}, True, None),
    ({"max_replica_changes": 2}, False, 110),
    ({"phase": "load", "max_replica_changes": 2}, True, None),
]


@pytest.mark.parametrize(("exp", "passed", "at"), CASES,
                         ids=[str(c[0]) for c in CASES])
def test_replica_expectations(tmp_path: Path, exp: dict[str, Any], passed: bool,
                              at: float | None) -> None:
    (v,) = run(tmp_path, [exp])
    assert v["passed"] is passed, v
    assert v["at"] == (None if at is None else T0 + at), v
    assert ("NOT met" in v["message"]) is (not passed)


def test_count_field_spec(tmp_path: Path) -> None:
    # spec jumps 2 -> 4 at +26 although ready lags behind
    tl = timeline(STEPS, spec={i: (4 if 26 <= i < 110 else 2) for i in range(0, 141, 2)})
    v_spec, v_ready = run(tmp_path, [
        {"phase": "load", "reaches": 4, "within": 6, "count": "spec"},
        {"phase": "load", "reaches": 4, "within": 6},
    ], tl=tl)
    assert v_spec["passed"] and v_spec["at"] == T0 + 26
    assert not v_ready["passed"]
    assert "spec replicas" in v_spec["expected"]


def test_phase_that_did_not_run(tmp_path: Path) -> None:
    (v,) = run(tmp_path, [{"phase": "cooldown", "reaches": 2, "within": 30}],
               phases=ran_phases(skip="cooldown"))
    assert not v["passed"] and v["observed"] == "phase did not run"


def test_phase_without_samples(tmp_path: Path) -> None:
    tl = [s for s in timeline(STEPS) if s["t"] < T0 + 80]   # sampling stopped at cooldown
    v1, v2 = run(tmp_path, [{"phase": "cooldown", "reaches": 2, "within": 30},
                            {"phase": "cooldown", "stays": 2}], tl=tl)
    assert not v1["passed"] and v1["observed"] == "no samples"
    assert not v2["passed"] and "no ready replica samples" in v2["message"]


def test_no_task_loss(tmp_path: Path) -> None:
    (ok,) = run(tmp_path, [{"no_task_loss": True}])
    assert ok["passed"] and "duplicated 2" in ok["observed"]
    lost = {"published": 10, "processed": 8, "lost": 2, "duplicated": 0,
            "lost_ids": ["a", "b"], "queue_left": {"ready": 0, "unacked": 0}}
    (bad,) = run(tmp_path, [{"no_task_loss": True}], tasks=lost)
    assert not bad["passed"] and "lost 2" in bad["observed"] and "a, b" in bad["message"]
    left = {**TASKS_OK, "queue_left": {"ready": 3, "unacked": 1}}
    (queued,) = run(tmp_path, [{"no_task_loss": True}], tasks=left)
    assert not queued["passed"] and "queue left 4" in queued["observed"]
    (empty,) = run(tmp_path, [{"no_task_loss": True}], tasks={})
    assert not empty["passed"]


def test_latency(tmp_path: Path) -> None:
    exps = [{"latency_p95_ms": 100}]
    (fast,) = run(tmp_path, exps, locust={"p95_ms": 80.0, "requests": 500})
    (slow,) = run(tmp_path, exps, locust={"p95_ms": 120.0, "requests": 500})
    (boundary,) = run(tmp_path, exps, locust={"p95_ms": 100.0, "requests": 500})
    (missing,) = run(tmp_path, exps, locust=None)
    assert fast["passed"] and boundary["passed"]
    assert not slow["passed"] and "p95 120 ms" in slow["observed"]
    assert not missing["passed"] and missing["observed"] == "no Locust results"


def test_ids_are_stable_and_in_order(tmp_path: Path) -> None:
    vs = run(tmp_path, [{"id": "scale-out", "phase": "load", "reaches": 4, "within": 30},
                        {"never_above": 4}, {"no_task_loss": True}])
    assert [v["id"] for v in vs] == ["scale-out", "never_above-4", "no_task_loss"]
    assert vs[0]["phase"] == "load" and vs[1]["phase"] is None


# -- scaled_by: which metric drove the scale-ups of a phase ----------------------------------
# Reasons as the HPA words them (emulated and real SuccessfulRescale events alike).
CPU_UP = "cpu resource utilization (percentage of request) above target"
QUEUE_UP = ("external metric s1-rabbitmq-agent-tasks(&LabelSelector{MatchLabels:map[string]"
            "string{scaledobject.keda.sh/name: agent,},MatchExpressions:[]"
            "LabelSelectorRequirement{},}) above target")
DOWN = "All metrics below target"
HYBRID = "manifests/scaling/keda-hybrid.yaml"


def decision(offset: float, before: int, after: int, reason: str,
             controller: str = "hpa") -> dict[str, Any]:
    return {"t": T0 + offset, "controller": controller,
            "object": "HorizontalPodAutoscaler/keda-hpa-agent", "from_replicas": before,
            "to_replicas": after, "reason": reason, "conditions": []}


def scaled_by(tmp_path: Path, exps: list[dict[str, Any]],
              decisions: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    verdicts = evaluate(scenario(tmp_path, exps, manifest=HYBRID), timeline=timeline(STEPS),
                        phases=ran_phases(), tasks=TASKS_OK, locust=None, decisions=decisions)
    item_schema = record.schema()["properties"]["verdicts"]["items"]
    for v in verdicts:
        jsonschema.validate(v, item_schema)
    return verdicts


# load phase: +20 .. +80; cooldown: +80 .. +140
RUN = [decision(30, 2, 3, CPU_UP), decision(44, 3, 4, QUEUE_UP), decision(110, 4, 2, DOWN)]


def test_scaled_by_met(tmp_path: Path) -> None:
    cpu, queue = scaled_by(tmp_path, [{"phase": "load", "scaled_by": "cpu"},
                                      {"phase": "load", "scaled_by": "rabbitmq"}], RUN)
    assert cpu["passed"] and cpu["at"] == T0 + 30, cpu
    assert queue["passed"] and queue["at"] == T0 + 44, queue
    # observed: both scale-ups of the phase, offsets from its start, reasons shortened
    assert cpu["observed"] == ("+10.0s 2->3 (cpu resource utilization above target); "
                               "+24.0s 3->4 (external metric s1-rabbitmq-agent-tasks above "
                               "target)"), cpu
    assert cpu["id"] == "scaled_by-load-cpu" and cpu["kind"] == "scaled_by"
    assert "names cpu in phase 'load'" in cpu["expected"]


def test_scaled_by_missed_and_wrong_metric(tmp_path: Path) -> None:
    only_queue = [decision(30, 2, 3, QUEUE_UP), decision(44, 3, 4, QUEUE_UP)]
    cpu, external = scaled_by(tmp_path, [{"phase": "load", "scaled_by": "cpu"},
                                         {"phase": "load", "scaled_by": "external"}],
                              only_queue)
    assert not cpu["passed"] and cpu["at"] is None
    assert "NOT met" in cpu["message"] and "s1-rabbitmq-agent-tasks" in cpu["observed"]
    assert external["passed"] and external["at"] == T0 + 30
    # a cpu scale-up does not count for rabbitmq
    (queue,) = scaled_by(tmp_path, [{"phase": "load", "scaled_by": "rabbitmq"}],
                         [decision(30, 2, 4, CPU_UP)])
    assert not queue["passed"] and "cpu resource" in queue["observed"]


def test_scaled_by_ignores_scale_downs(tmp_path: Path) -> None:
    # a scale-down whose text mentions cpu must not count (nor a no-op decision)
    downs = [decision(110, 4, 3, DOWN), decision(120, 3, 2, "cpu resource below target"),
             decision(125, 2, 2, CPU_UP)]
    (v,) = scaled_by(tmp_path, [{"phase": "cooldown", "scaled_by": "cpu"}], downs)
    assert not v["passed"]
    assert v["observed"] == "no scale-up in the phase (3 other decisions)"


def test_scaled_by_only_inside_the_phase(tmp_path: Path) -> None:
    # cpu scale-ups just before the load phase (+19) and at its end (+80 belongs to the
    # cooldown, as a sample there would): neither counts for 'load'
    around = [decision(19, 2, 3, CPU_UP), decision(50, 3, 4, QUEUE_UP),
              decision(80, 2, 3, CPU_UP)]
    load, cool = scaled_by(tmp_path, [{"phase": "load", "scaled_by": "cpu"},
                                      {"phase": "cooldown", "scaled_by": "cpu"}], around)
    assert not load["passed"] and load["observed"].startswith("+30.0s 3->4"), load
    assert cool["passed"] and cool["at"] == T0 + 80


def test_scaled_by_without_decisions(tmp_path: Path) -> None:
    exps = [{"phase": "load", "scaled_by": "cpu"}]
    (none,) = scaled_by(tmp_path, exps, None)
    assert not none["passed"] and none["observed"] == "no decisions recorded"
    (empty,) = scaled_by(tmp_path, exps, [])
    assert not empty["passed"] and empty["observed"] == "no scale-up in the phase"
    (skipped,) = evaluate(scenario(tmp_path, exps, manifest=HYBRID), timeline=[],
                          phases=ran_phases(skip="load"), tasks=None, locust=None,
                          decisions=RUN)
    assert not skipped["passed"] and skipped["observed"] == "phase did not run"


def test_scaled_by_cluster_events_and_keda_activation(tmp_path: Path) -> None:
    # A cluster's SuccessfulRescale may lack the previous size (-1): "above target" is an
    # increase. KEDA's 0 -> N activation names the trigger that woke the target.
    unknown = [decision(30, -1, 3, CPU_UP)]
    (cpu,) = scaled_by(tmp_path, [{"phase": "load", "scaled_by": "cpu"}], unknown)
    assert cpu["passed"] and cpu["observed"].startswith("+10.0s ?->3"), cpu
    woke = [decision(25, 0, 2, "KEDAScaleTargetActivated: Scaled Deployment scalelab/agent "
                               "from 0 to 2, triggered by s1-rabbitmq-agent-tasks", "keda")]
    (queue,) = scaled_by(tmp_path, [{"phase": "load", "scaled_by": "rabbitmq"}], woke)
    assert queue["passed"] and queue["at"] == T0 + 25
