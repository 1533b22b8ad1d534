"""The expectation registry (``scalelab.expectations.KINDS``) is the one definition of a kind:
the schema is held to it, and the checker, the evaluator and the verdicts the report shows
all read it, so a kind added to the registry works without touching other code."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from scalelab import expectations, scenario
from scalelab.errors import ConfigError
from scalelab.expectations import KINDS, Expectation, Kind, RunData, VerdictBuilder
from scalelab.report.render import verdict_markers

T0 = 1_700_000_000.0
PHASES = [{"name": "baseline", "duration": 20, "load": {"idle": True}},
          {"name": "load", "duration": 60, "load": {"rate": 5}}]
RAN = [{"name": "baseline", "start": T0, "end": T0 + 20},
       {"name": "load", "start": T0 + 20, "end": T0 + 80}]
# A value that each kind's schema accepts and the hpa-cpu manifest (1..10 replicas) allows.
VALUES: dict[str, Any] = {"no_task_loss": True, "latency_p95_ms": 500, "scaled_by": "cpu",
                          "max_replica_changes": 4, "queue_wait_p95_s": 30, "matches_twin": 10}


def item_schema() -> dict[str, Any]:
    return copy.deepcopy(scenario.schema()["$defs"]["expectation"])


def write(tmp_path: Path, exps: list[dict[str, Any]]) -> Path:
    doc = {"name": "kinds", "description": "registry tests",
           "manifests": ["manifests/scaling/hpa-cpu.yaml"],
           "workload": {"tools": {"cpu": {"cpu_ms": 100}}},
           "phases": PHASES, "expectations": exps,
           "twin": {"calibrate_on": ["another"]}}  # matches_twin needs it
    path = tmp_path / "kinds.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def one_of_each() -> list[dict[str, Any]]:
    """One expectation of every registered kind, with a phase where the kind allows one."""
    out = []
    for name, kind in KINDS.items():
        raw: dict[str, Any] = {name: VALUES.get(name, 2)}
        if kind.phase != "refused":
            raw["phase"] = "load"
        if kind.takes_for:
            raw["for"] = 10
        out.append(raw)
    return out


# -- the schema and the registry -------------------------------------------------------------


def test_schema_and_registry_agree() -> None:
    assert expectations.schema_mismatches(item_schema()) == []


@pytest.mark.parametrize("name", list(KINDS))
def test_a_kind_missing_from_the_schema_is_found(name: str) -> None:
    sch = item_schema()
    del sch["properties"][name]
    assert expectations.schema_mismatches(sch) == [
        f"kind '{name}' is in the registry but not in the schema"]


def test_a_schema_kind_missing_from_the_registry_is_found() -> None:
    sch = item_schema()
    sch["properties"]["p99_ms"] = {"type": "number"}
    assert expectations.schema_mismatches(sch) == [
        "schema property 'p99_ms' is not a registered kind"]
    fewer = {k: v for k, v in KINDS.items() if k != "stays"}
    assert expectations.schema_mismatches(item_schema(), fewer) == [
        "schema property 'stays' is not a registered kind"]


def test_a_kind_whose_value_schema_differs_is_found() -> None:
    sch = item_schema()
    sch["properties"]["scaled_by"]["enum"] = ["cpu", "memory"]
    [problem] = expectations.schema_mismatches(sch)
    assert problem.startswith("kind 'scaled_by': schema ")


def test_every_kind_loads_from_a_scenario(tmp_path: Path) -> None:
    sc = scenario.load_scenario(write(tmp_path, one_of_each()))
    assert [e.kind for e in sc.expectations] == list(KINDS)


# -- the evaluator dispatches through the registry -------------------------------------------


def test_every_kind_is_evaluated_through_its_own_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sc = scenario.load_scenario(write(tmp_path, one_of_each()))
    calls: list[tuple[str, str]] = []

    def spy_for(name: str) -> Any:
        def spy(v: VerdictBuilder, run: RunData) -> dict[str, Any]:
            calls.append((name, v.exp.kind))
            return v.ok(observed=f"checked by {name}'s check")
        return spy

    for name, kind in KINDS.items():
        monkeypatch.setitem(KINDS, name, dataclasses.replace(kind, check=spy_for(name)))
    verdicts = expectations.evaluate(sc, timeline=[], phases=RAN, tasks=None, locust=None)
    assert calls == [(name, name) for name in KINDS]
    assert [v["observed"] for v in verdicts] == [f"checked by {n}'s check" for n in KINDS]


def test_each_verdict_is_phrased_by_its_kind(tmp_path: Path) -> None:
    sc = scenario.load_scenario(write(tmp_path, one_of_each()))
    verdicts = expectations.evaluate(sc, timeline=[], phases=RAN, tasks=None, locust=None)
    for exp, v in zip(sc.expectations, verdicts, strict=True):
        assert v["expected"].startswith(KINDS[exp.kind].phrase(exp)), v


def test_an_unregistered_kind_is_refused() -> None:
    exp = Expectation(id="x", kind="p99_ms", value=1.0)
    with pytest.raises(ValueError, match="unknown expectation kind 'p99_ms'"):
        expectations.evaluate_one(exp, timeline=[], phases={}, tasks=None, locust=None,
                                  run_start=T0)


# -- a new kind is one entry (plus its schema property) ---------------------------------------


def _median(v: VerdictBuilder, run: RunData) -> dict[str, Any]:
    values = sorted(x for _, x in run.window)
    if not values:
        return v.fail(observed="no samples")
    median = values[len(values) // 2]
    observed = f"median {median} over {len(values)} samples"
    return v.ok(observed=observed) if median == v.exp.value else v.fail(observed=observed)


MEDIAN = Kind(name="median_ready", phase="required", replica_valued=True, takes_count=True,
              schema={"$ref": "#/$defs/replicas"}, check=_median,
              phrase=lambda e: f"median {e.count} replicas == {e.value:g}")


@pytest.fixture
def median_kind(monkeypatch: pytest.MonkeyPatch) -> Kind:
    """Register a kind the code does not know, in the registry and the schema only."""
    monkeypatch.setitem(KINDS, MEDIAN.name, MEDIAN)
    props = scenario.schema()["$defs"]["expectation"]["properties"]
    monkeypatch.setitem(props, MEDIAN.name, dict(MEDIAN.schema))
    assert expectations.schema_mismatches(scenario.schema()["$defs"]["expectation"]) == []
    return MEDIAN


def test_a_new_kind_is_checked_evaluated_and_reported(tmp_path: Path, median_kind: Kind
                                                      ) -> None:
    sc = scenario.load_scenario(write(tmp_path, [{"median_ready": 3, "phase": "load"}]))
    [exp] = sc.expectations
    assert (exp.id, exp.kind, exp.value, exp.phase) == ("median_ready-load-3", "median_ready",
                                                        3.0, "load")
    timeline = [{"t": T0 + t, "ready": 3 if 30 <= t < 70 else 1} for t in range(0, 80, 5)]
    [verdict] = expectations.evaluate(sc, timeline=timeline, phases=RAN, tasks=None,
                                      locust=None)
    assert verdict["passed"], verdict
    assert verdict["expected"] == "median ready replicas == 3 in phase 'load'"
    assert verdict["observed"] == "median 3 over 12 samples"
    [marker] = verdict_markers({"phases": RAN, "verdicts": [verdict]}, end=T0 + 80)
    assert "expected median ready replicas == 3 in phase 'load'" in marker.label


@pytest.mark.parametrize(("raw", "field", "text"), [
    ({"median_ready": 3}, "expectations[0].phase", "is measured from a phase's start"),
    ({"median_ready": 30, "phase": "load"}, "expectations[0].median_ready",
     "outside the manifest's replica range"),
    ({"median_ready": 3, "phase": "load", "within": 5}, "expectations[0].within",
     "does not apply to 'median_ready'"),
    ({"median_ready": 3, "phase": "load", "stays": 2}, "expectations[0]",
     "found stays, median_ready"),
])
def test_the_checker_applies_a_new_kinds_rules(tmp_path: Path, median_kind: Kind,
                                               raw: dict[str, Any], field: str, text: str
                                               ) -> None:
    with pytest.raises(ConfigError) as info:
        scenario.load_scenario(write(tmp_path, [raw]))
    assert info.value.field == field
    assert text in str(info.value), str(info.value)


def test_a_kind_in_the_registry_but_not_the_schema_is_refused_by_the_schema(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without its schema property a registered kind is an unknown field, and the schema
    test above names the gap."""
    monkeypatch.setitem(KINDS, MEDIAN.name, MEDIAN)
    with pytest.raises(ConfigError, match="unknown field 'median_ready'"):
        scenario.load_scenario(write(tmp_path, [{"median_ready": 3, "phase": "load"}]))
    assert expectations.schema_mismatches(item_schema()) == [
        "kind 'median_ready' is in the registry but not in the schema"]
