"""A scenario's ``twin:`` section: predict the run before it starts, compare after it ends.

The prediction is made from the scenario file and its first scaling manifest (as ``scalelab
twin --scenario`` does), calibrated on the newest records of the scenarios the section
names, so the check is the one issue 14 asks of ``scalelab tune``'s recommendation: run
the recommended policy for real and hold it to what the twin said. The record keeps the
prediction (``twin``), the report draws it beside the real series and the expectation
``matches_twin`` judges it.

Where calibration records come from (``calibration_records``): this session's run folder
first (a scenario run earlier in the same ``tox -e scaling``), else the newest run folder
under the reports folder that has the scenario. The pytest driver runs the scenarios a
``twin:`` names before the one that names them, and refuses, before anything starts, a
selection that leaves a name with neither (``missing_calibration``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from scalelab import record as run_record
from scalelab.control.trace_replay import load_manifest
from scalelab.errors import ConfigError
from scalelab.repetitions import REPETITION_SEP
from scalelab.scenario import Scenario
from scalelab.twin.calibrate import Calibration, calibrate, load_runs
from scalelab.twin.compare import compare
from scalelab.twin.predict import Prediction, as_json, fault_notes, run_prediction
from scalelab.twin.workload import plans_from_scenario

#: Records a calibration may use: the run went through (a failed expectation is still a
#: measured run); an errored or interrupted one may lack what calibration reads.
USABLE = ("passed", "failed")


def _records_of(run_dir: Path, name: str) -> list[Path]:
    """The usable records of scenario ``name`` in one run folder (every repetition)."""
    out = []
    for folder in sorted(run_dir.glob(f"{name}*")):
        if folder.name != name and not folder.name.startswith(f"{name}{REPETITION_SEP}"):
            continue
        path = folder / run_record.RUN_FILE
        try:
            status = json.loads(path.read_text()).get("status")
        except (OSError, ValueError):
            continue
        if status in USABLE:
            out.append(folder)
    return out


def _run_folders(reports_dir: Path) -> list[Path]:
    """Run folders, newest first (run ids start with their UTC time)."""
    if not reports_dir.is_dir():
        return []
    return sorted((p for p in reports_dir.iterdir() if p.is_dir()), key=lambda p: p.name,
                  reverse=True)


def find_records(name: str, *, run_dir: Path | None, reports_dir: Path) -> list[Path]:
    """The records of ``name`` to calibrate on: this run's, else the newest run's."""
    if run_dir is not None and run_dir.is_dir():
        here = _records_of(run_dir, name)
        if here:
            return here
    for folder in _run_folders(reports_dir):
        if run_dir is not None and folder.resolve() == run_dir.resolve():
            continue
        found = _records_of(folder, name)
        if found:
            return found
    return []


def calibration_records(scenario: Scenario, *, run_dir: Path | None,
                        reports_dir: Path) -> list[Path]:
    """Every record the scenario's twin calibrates on; a name without one is an error
    naming the file, the field and the fix."""
    out: list[Path] = []
    for name in scenario.twin_calibrate_on:
        found = find_records(name, run_dir=run_dir, reports_dir=reports_dir)
        if not found:
            raise ConfigError(
                f"no record of scenario '{name}' to calibrate the twin on (none in this "
                f"run, none under {reports_dir})", file=str(scenario.file),
                field="twin.calibrate_on",
                fix=f"run '{name}' first or in the same session (pytest experiments -k "
                    f"'{name} or {scenario.name}')")
        out.extend(found)
    return out


def missing_calibration(scenarios: Sequence[Scenario], selected: Iterable[str], *,
                        reports_dir: Path) -> list[str]:
    """Before a session: each ``twin.calibrate_on`` name that neither runs in the session
    nor has a record under ``reports_dir``, as a message with the fix."""
    chosen = set(selected)
    out = []
    for sc in scenarios:
        if sc.name not in chosen:
            continue
        for name in sc.twin_calibrate_on:
            if name in chosen or find_records(name, run_dir=None, reports_dir=reports_dir):
                continue
            out.append(f"{sc.file}: field 'twin.calibrate_on': scenario '{name}' neither runs "
                       f"in this session nor has a record under {reports_dir}\n  fix: select "
                       f"it too (-k '{name} or {sc.name}'), or run it first")
    return out


def calibration_first(names: Sequence[str],
                      needs: Mapping[str, Sequence[str]]) -> list[str]:
    """``names`` reordered so that a scenario runs after those its twin calibrates on
    (stable otherwise; a cycle keeps the given order for the rest)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in visiting:
            return
        visiting.add(name)
        for dep in needs.get(name, ()):
            if dep in names:
                visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in names:
        visit(name)
    return order


def predict(scenario: Scenario, records: Sequence[Path]) -> tuple[Prediction, Calibration]:
    """The twin's prediction of the scenario under its first scaling manifest."""
    calibration = calibrate(load_runs(list(records)))
    manifest = scenario.manifests[0]
    spec, notes = load_manifest(manifest)
    pred = run_prediction(scenario=scenario.name, plans=plans_from_scenario(scenario),
                          batch_size=scenario.workload.batch_size, spec=spec,
                          manifest=str(manifest), calibration=calibration,
                          notes=[*notes, *fault_notes(len(scenario.faults))])
    return pred, calibration


def section(pred: Prediction, calibration: Calibration, *, records: Sequence[Path],
            run: Mapping[str, Any] | None, rel: Any = str) -> dict[str, Any]:
    """The run record's ``twin``: the prediction, what it was calibrated on and, once the
    run is over (``run``: its ``phases`` and ``timeline``), the comparison."""
    comparison = None
    if run is not None and run.get("phases") and run["phases"][0].get("start") is not None:
        comparison = compare(pred.result, run)
    doc = dict(as_json(pred, calibration, comparison))
    doc["calibrated_on"] = [rel(p / run_record.RUN_FILE) for p in records]
    doc["manifest"] = rel(pred.manifest)
    doc["error"] = None
    return doc


def failed_section(err: Exception) -> dict[str, Any]:
    """The record's ``twin`` when no prediction could be made (the reason is the verdict's)."""
    return {"error": str(err), "comparison": None}
