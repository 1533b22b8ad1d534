"""Loading and checking scenario files: the shipped ones pass, every bad input is named."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from scalelab import paths
from scalelab.errors import ConfigError
from scalelab.scenario import load_scenario, load_scenarios

GOOD: dict[str, Any] = {
    "name": "demo",
    "description": "a scenario used by the tests",
    "tags": ["hpa"],
    "manifests": ["manifests/scaling/hpa-cpu.yaml"],
    "workload": {"batch_size": 2, "tools": {"cpu": {"weight": 1, "cpu_ms": 100},
                                            "io": {"weight": 2, "io_ms": 50}}},
    "phases": [
        {"name": "baseline", "duration": 10, "load": {"idle": True}},
        {"name": "load", "duration": 60, "load": {"users": 4, "spawn_rate": 2}},
        {"name": "burst", "duration": 20, "load": {"tasks": 40, "rate": 10}},
    ],
    "expectations": [
        {"phase": "load", "reaches": 4, "within": 60},
        {"phase": "baseline", "stays": 2},
        {"never_above": 4},
        {"no_task_loss": True},
    ],
}


def write(tmp_path: Path, doc: Any, name: str = "demo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


def mutate(fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    fn(doc)
    return doc


def test_good_scenario_loads(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, GOOD))
    assert sc.name == "demo"
    assert sc.replica_bounds == (2, 4)
    assert sc.manifests == ((paths.SCALING_MANIFESTS / "hpa-cpu.yaml").resolve(),)
    assert [p.load.mode for p in sc.phases] == ["idle", "users", "tasks"]
    assert sc.phases[1].load.spawn_rate == 2 and sc.phases[1].load.think_time == 1.0
    assert sc.duration == 90
    assert [e.id for e in sc.expectations] == [
        "reaches-load-4", "stays-baseline-2", "never_above-4", "no_task_loss"]
    assert sc.workload.batch_size == 2
    assert {t.name: t.arguments for t in sc.workload.tools} == {
        "cpu": {"cpu_ms": 100}, "io": {"io_ms": 50}}
    record = sc.to_dict()
    assert record["name"] == "demo" and record["spec"]["phases"][0]["name"] == "baseline"
    assert sc.phases[2].load_dict() == {"mode": "tasks", "rate": 10.0, "tasks": 40}
    assert sc.reaction_phase is None
    timed = load_scenario(write(tmp_path, {**GOOD, "reaction_phase": "burst"}))
    assert timed.reaction_phase == "burst"
    assert timed.to_dict()["spec"]["reaction_phase"] == "burst"  # what the report reads


def test_manifest_relative_to_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(
        (paths.SCALING_MANIFESTS / "keda-queue-zero.yaml").read_text())
    doc = mutate(lambda d: d.update(manifests=["mine.yaml"]))
    doc["expectations"] = [{"phase": "load", "reaches": 0, "within": 30}]
    sc = load_scenario(write(tmp_path, doc))
    assert sc.replica_bounds == (0, 4)
    # the KEDA file carries the TriggerAuthentication its ScaledObject reads the host through
    assert [o.kind for o in sc.scaling_objects] == ["TriggerAuthentication", "ScaledObject"]


def test_shipped_scenarios_load() -> None:
    scenarios = load_scenarios([paths.SCENARIOS])
    names = {s.name for s in scenarios}
    assert {"hpa-cpu", "keda-queue", "hybrid", "keda-scale-to-zero"} <= names
    for sc in scenarios:
        assert sc.duration <= 250, f"{sc.name} is too long for the default timing profile"
        # ids are what `pytest -k` selects on: "keda" in the name means a KEDA scenario
        kinds = {o.kind for o in sc.scaling_objects}
        if "keda" in sc.name:   # with the TriggerAuthentication of its broker URL
            assert kinds == {"ScaledObject", "TriggerAuthentication"}
        if "ScaledObject" in kinds:
            assert "keda" in sc.tags
        if "HorizontalPodAutoscaler" in kinds:
            assert "hpa" in sc.tags and "keda" not in sc.tags
        assert sc.expectations, sc.name


def test_shipped_scenarios_validate_manifests_strictly() -> None:
    """Kubernetes and KEDA schemas from installed packages: runs on every clone."""
    assert load_scenarios([paths.SCENARIOS], strict_manifests=True)


def _tools_zero(d: dict[str, Any]) -> None:
    for t in d["workload"]["tools"].values():
        t["weight"] = 0


# (case id, document or mutation, expected field path, text expected in the message/fix)
BAD: list[tuple[str, Any, str, str]] = [
    ("unknown-top-field", mutate(lambda d: d.update(colour="blue")), "colour", "remove it"),
    ("unknown-nested-field",
     mutate(lambda d: d["phases"][1]["load"].update(userz=3)), "phases[1].load.userz",
     "users"),
    ("wrong-type", mutate(lambda d: d["phases"][1]["load"].update(users="four")),
     "phases[1].load.users", "integer"),
    ("zero-duration", mutate(lambda d: d["phases"][0].update(duration=0)),
     "phases[0].duration", "greater than 0"),
    ("negative-duration", mutate(lambda d: d["phases"][2].update(duration=-5)),
     "phases[2].duration", "greater than 0"),
    ("missing-manifest", mutate(lambda d: d.update(manifests=["manifests/scaling/nope.yaml"])),
     "manifests[0]", "hpa-cpu.yaml"),
    ("reaction-phase-unknown", mutate(lambda d: d.update(reaction_phase="burts")),
     "reaction_phase", "baseline, load, burst"),
    ("expectation-unknown-phase",
     mutate(lambda d: d["expectations"][0].update(phase="lod")), "expectations[0].phase",
     "baseline, load, burst"),
    ("replica-target-above-max",
     mutate(lambda d: d["expectations"][0].update(reaches=5)), "expectations[0].reaches",
     "between 2 and 4"),
    ("replica-target-below-min",
     mutate(lambda d: d["expectations"][1].update(stays=1)), "expectations[1].stays",
     "between 2 and 4"),
    ("within-longer-than-phase",
     mutate(lambda d: d["expectations"][0].update(within=61)), "expectations[0].within",
     "at most 60s"),
    ("duplicate-phase-names",
     mutate(lambda d: d["phases"][2].update(name="load")), "phases[2].name", "unique"),
    ("empty-phases", mutate(lambda d: d.update(phases=[])), "phases", "at least one"),
    ("unknown-tool",
     mutate(lambda d: d["workload"]["tools"].update(gpu={"gpu_ms": 1})),
     "workload.tools.gpu", "cpu, io, mixed"),
    ("tool-weights-all-zero", mutate(_tools_zero), "workload.tools", "weight above 0"),
    ("tool-missing-argument",
     mutate(lambda d: d["workload"]["tools"].update(mixed={"cpu_ms": 5})),
     "workload.tools.mixed.io_ms", "add 'io_ms'"),
    ("tool-argument-too-large",
     mutate(lambda d: d["workload"]["tools"]["cpu"].update(cpu_ms=60001)),
     "workload.tools.cpu.cpu_ms", "at most 60000"),
    ("load-without-mode", mutate(lambda d: d["phases"][1].update(load={})),
     "phases[1].load", "idle"),
    ("tasks-without-rate",
     mutate(lambda d: d["phases"][2].update(load={"tasks": 5})), "phases[2].load.rate",
     "rate"),
    ("tasks-do-not-fit-phase",
     mutate(lambda d: d["phases"][2].update(load={"tasks": 500, "rate": 10})),
     "phases[2].load.tasks", "lengthen the phase"),
    ("idle-with-users",
     mutate(lambda d: d["phases"][0].update(load={"idle": True, "users": 2})),
     "phases[0].load.users", "remove it"),
    ("two-kinds-in-one-expectation",
     mutate(lambda d: d["expectations"][2].update(never_below=2)), "expectations[2]",
     "one per item"),
    ("phase-kind-without-phase",
     mutate(lambda d: d["expectations"][0].pop("phase")), "expectations[0].phase",
     "add 'phase"),
    ("holds-without-for",
     mutate(lambda d: d["expectations"].append({"phase": "load", "holds": 3})),
     "expectations[4].holds", "for"),
    ("duplicate-expectation-id",
     mutate(lambda d: [e.update(id="same") for e in d["expectations"][:2]]),
     "expectations[1].id", "unique"),
    ("bad-name", mutate(lambda d: d.update(name="Demo Scenario")), "name", "lowercase"),
    ("missing-description", mutate(lambda d: d.pop("description")), "description",
     "add 'description'"),
    ("not-a-mapping", "- just\n- a list\n", "<document>", "experiments/scenarios"),
    ("bad-yaml-syntax", "name: demo\nphases:\n  - name: a\n   duration: 3\n", "",
     "line 4"),
    ("spawn-rate-on-rate-phase",
     mutate(lambda d: d["phases"][2]["load"].update(spawn_rate=3)),
     "phases[2].load.spawn_rate", "fixed rate"),
    ("scaled-by-without-phase",
     mutate(lambda d: d["expectations"].append({"scaled_by": "cpu"})),
     "expectations[4].phase", "one phase's scaling decisions"),
    ("scaled-by-unknown-metric",
     mutate(lambda d: d["expectations"].append({"phase": "load", "scaled_by": "queue"})),
     "expectations[4].scaled_by", "cpu, memory, rabbitmq, external"),
    ("scaled-by-metric-the-manifest-lacks",
     mutate(lambda d: d["expectations"].append({"phase": "load", "scaled_by": "rabbitmq"})),
     "expectations[4].scaled_by", "it scales on: cpu"),
    ("matches-twin-without-twin",
     mutate(lambda d: d["expectations"].append({"matches_twin": 10})),
     "expectations[4].matches_twin", "twin: {calibrate_on"),
    ("twin-calibrated-on-itself",
     mutate(lambda d: d.update(twin={"calibrate_on": [d["name"]]})), "twin.calibrate_on",
     "the scenario that ran the policy"),
    ("twin-without-scenarios",
     mutate(lambda d: d.update(twin={"calibrate_on": []})), "twin.calibrate_on",
     "non-empty"),
    ("two-scalers-on-agent",
     mutate(lambda d: d.update(manifests=["manifests/scaling/hpa-cpu.yaml",
                                          "manifests/scaling/keda-queue.yaml"])),
     "manifests", "AmbiguousSelector"),
]


@pytest.mark.parametrize(("doc", "field", "text"), [c[1:] for c in BAD],
                         ids=[c[0] for c in BAD])
def test_bad_scenario_is_named(tmp_path: Path, doc: Any, field: str, text: str) -> None:
    path = write(tmp_path, doc)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    err = info.value
    assert err.file == str(path)
    assert (err.field or "") == field
    assert err.fix, "every error says how to fix it"
    assert text in str(err), str(err)


def test_at_least_fifteen_kinds_of_bad_input() -> None:
    assert len(BAD) >= 15


def test_duplicate_scenario_names_across_files(tmp_path: Path) -> None:
    a = write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD, "b.yaml")
    with pytest.raises(ConfigError) as info:
        load_scenarios([tmp_path])
    assert info.value.field == "name"
    assert info.value.file == str(tmp_path / "b.yaml")
    assert str(a) in str(info.value)


def test_load_scenarios_accepts_files_and_folders(tmp_path: Path) -> None:
    folder = tmp_path / "more"
    folder.mkdir()
    write(folder, mutate(lambda d: d.update(name="other")), "other.yml")
    one = write(tmp_path, GOOD)
    assert [s.name for s in load_scenarios([one, folder])] == ["demo", "other"]
    with pytest.raises(ConfigError, match="no such file"):
        load_scenarios([tmp_path / "missing"])


def test_generated_ids_are_unique(tmp_path: Path) -> None:
    doc = mutate(lambda d: d.update(expectations=[{"never_above": 4}, {"never_above": 4},
                                                  {"never_above": 4}]))
    assert [e.id for e in load_scenario(write(tmp_path, doc)).expectations] == [
        "never_above-4", "never_above-4-2", "never_above-4-3"]


def _good_bytes(description: str = "a scenario used by the tests") -> str:
    return yaml.safe_dump({**GOOD, "description": description}, sort_keys=False,
                          allow_unicode=True)


#: Files that are not UTF-8 YAML text: (id, content, what the message says, what the fix says).
NOT_TEXT = [
    ("latin-1", _good_bytes("un café pour la route").encode("latin-1"),
     "not UTF-8 text: byte 0xe9 at line 2, column 20", "save it as UTF-8"),
    ("png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10",
     "a binary file, not YAML text (a NUL byte at offset 8)", "scenario YAML file"),
    ("nul-in-text", _good_bytes().encode().replace(b"tests", b"te\x00sts"),
     "a binary file, not YAML text (a NUL byte at offset 49)", "scenario YAML file"),
    ("control-character", _good_bytes().encode().replace(b"tests", b"te\x07sts"),
     "character U+0007 at line 2, column 39 is not allowed in YAML", "remove it"),
    ("cp1252-quotes", _good_bytes("“quoted”").encode("cp1252"),
     "not UTF-8 text: byte 0x93 at line 2, column 14", "save it as UTF-8"),
]


@pytest.mark.parametrize(("data", "text", "fix"), [c[1:] for c in NOT_TEXT],
                         ids=[c[0] for c in NOT_TEXT])
def test_a_file_that_is_not_utf8_yaml_is_named(tmp_path: Path, data: bytes, text: str,
                                               fix: str) -> None:
    path = tmp_path / "demo.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    err = info.value
    assert err.file == str(path)
    assert text in str(err), str(err)
    assert err.fix and fix in err.fix, err.fix
    assert isinstance(err.__cause__, UnicodeDecodeError | yaml.YAMLError | type(None))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_non_ascii_text_in_a_yaml_encoding_loads(tmp_path: Path, encoding: str) -> None:
    """UTF-8 (with or without a BOM) and UTF-16 with a BOM are YAML encodings: they load."""
    path = tmp_path / "demo.yaml"
    path.write_bytes(_good_bytes("un café “quoted”").encode(encoding))
    assert load_scenario(path).description == "un café “quoted”"
