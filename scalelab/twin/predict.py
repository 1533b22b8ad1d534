"""Predictions: a scenario (file or as recorded) under a scaling manifest, and the
validation table (each recorded scenario predicted from *other* scenarios' runs)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.control.hpa import HPASpec
from scalelab.control.trace_replay import load_manifest
from scalelab.errors import ConfigError
from scalelab.scenario import load_scenario
from scalelab.twin.calibrate import Calibration, RunData, calibrate, load_runs
from scalelab.twin.compare import Comparison, compare
from scalelab.twin.simulate import TwinParams, TwinResult, simulate
from scalelab.twin.workload import (
    Arrivals,
    PhasePlan,
    arrivals,
    plans_from_record,
    plans_from_scenario,
)


@dataclass(frozen=True, kw_only=True)
class Prediction:
    scenario: str
    manifest: str
    spec: HPASpec
    plans: tuple[PhasePlan, ...]
    arrivals: Arrivals
    params: TwinParams
    result: TwinResult
    notes: tuple[str, ...] = ()

    def timelines(self) -> dict[str, Any]:
        r = self.result
        return {"t": list(range(1, len(r.spec) + 1)), "spec": r.spec, "ready": r.ready,
                "queue_ready": [round(v, 2) for v in r.queue_ready],
                "queue_unacked": [round(v, 2) for v in r.queue_unacked],
                "cpu_utilization": [round(v, 1) for v in r.cpu_utilization]}


def spec_from_text(text: str, name: str) -> tuple[HPASpec, list[str]]:
    """A scaling manifest's text (a run record's ``manifests[].text``) as a spec, through
    the same loader ``scalelab replay`` uses."""
    with tempfile.TemporaryDirectory(prefix="scalelab-twin-") as tmp:
        path = Path(tmp) / Path(name).name
        path.write_text(text)
        spec, notes = load_manifest(path)
    return spec, notes


def recorded_spec(run: RunData) -> tuple[HPASpec, str]:
    """The scaling manifest the run applied (``manifests[0].text``)."""
    manifests = run.record.get("manifests") or []
    if not manifests or not manifests[0].get("text"):
        raise ConfigError("the run stored no scaling manifest", file=str(run.path),
                          field="manifests[0].text",
                          fix="give --manifest, or a run recorded with its manifest")
    spec, _ = spec_from_text(manifests[0]["text"], manifests[0].get("path") or "manifest.yaml")
    return spec, str(manifests[0].get("path"))


def fault_notes(count: int, *, where: str = "in the scenario") -> list[str]:
    """The twin has no faults: a scenario's kills, broker restarts, partitions and
    slowdowns are predicted as if none fired, and the prediction says so."""
    if not count:
        return []
    return [f"faults are not modelled ({count} {where}): predicted as if none fired (not "
            "the pods a kill replaces, nor the tasks a restart or a partition delays)"]


def run_prediction(*, scenario: str, plans: Sequence[PhasePlan], batch_size: int,
                   spec: HPASpec, manifest: str, calibration: Calibration,
                   notes: Sequence[str] = ()) -> Prediction:
    params = calibration.twin_params(plans)
    arr = arrivals(plans, batch_size=batch_size,
                   api_latency_s=calibration.value("api_latency_s") or 0.0,
                   scale=calibration.value("arrival_scale") or 1.0)
    result = simulate(spec, arr, params)
    return Prediction(scenario=scenario, manifest=manifest, spec=spec, plans=tuple(plans),
                      arrivals=arr, params=params, result=result, notes=tuple(notes))


def predict_file(scenario_file: Path, calibration: Calibration, *,
                 manifest: Path | None = None) -> Prediction:
    """A scenario file under its own first scaling manifest (or ``manifest``)."""
    scen = load_scenario(scenario_file)
    path = manifest or (scen.manifests[0] if scen.manifests else None)
    if path is None:
        raise ConfigError("the scenario has no scaling manifest", file=str(scenario_file),
                          field="manifests", fix="give --manifest")
    spec, notes = load_manifest(path)
    return run_prediction(scenario=scen.name, plans=plans_from_scenario(scen),
                          batch_size=scen.workload.batch_size, spec=spec, manifest=str(path),
                          calibration=calibration,
                          notes=[*notes, *fault_notes(len(scen.faults))])


def predict_record(run: RunData, calibration: Calibration) -> Prediction:
    """The scenario as the run recorded it (its phases and manifest), predicted."""
    spec, manifest = recorded_spec(run)
    workload = (run.record["scenario"].get("spec") or {}).get("workload") or {}
    return run_prediction(scenario=run.scenario, plans=plans_from_record(run.record,
                                                                         str(run.path)),
                          batch_size=int(workload.get("batch_size", 1)), spec=spec,
                          manifest=manifest, calibration=calibration,
                          notes=fault_notes(len(run.record.get("faults") or []),
                                            where="fired in the run"))


def same_plan(a: Sequence[PhasePlan], b: Sequence[PhasePlan]) -> bool:
    """Whether a scenario file still describes what a run ran (phases, loads, tools)."""
    def key(plans: Sequence[PhasePlan]) -> list[tuple[Any, ...]]:
        return [(p.name, round(p.duration, 3), p.mode, p.rate, p.tasks, p.users,
                 tuple(sorted((t.name, t.weight, t.cpu_s, t.io_s) for t in p.tools)))
                for p in plans]
    return key(a) == key(b)


@dataclass(frozen=True, kw_only=True)
class ValidationRow:
    scenario: str
    run: str
    calibrated_on: tuple[str, ...]     # "<run>/<scenario>"
    comparison: Comparison
    prediction: Prediction


def validation_table(run_dirs: Sequence[Path]) -> list[ValidationRow]:
    """Every recorded scenario of every run, predicted from *other* scenarios of *another*
    run (the first run folder that is not its own). A parameter only the same scenario
    can give (an io run's overhead when it is the only io scenario) is then taken from
    that scenario's run in the other folder, and the row says so."""
    if len(run_dirs) < 2:
        raise ConfigError("the validation needs two run folders", field="run_dirs",
                          fix="give two runs of the same scenarios")
    rows = []
    for run_dir in run_dirs:
        other = next(d for d in run_dirs if d != run_dir)
        for target in load_runs([run_dir]):
            cal_runs = load_runs([other], exclude=[target.scenario])
            try:
                cal = calibrate(cal_runs)
                pred = predict_record(target, cal)
            except ConfigError:
                cal_runs = load_runs([other])
                cal = calibrate(cal_runs)
                pred = predict_record(target, cal)
            rows.append(ValidationRow(
                scenario=target.scenario, run=run_dir.name,
                calibrated_on=tuple(f"{r.path.parent.parent.name}/{r.scenario}"
                                    for r in cal_runs),
                comparison=compare(pred.result, target.record), prediction=pred))
    return rows


def format_table(rows: Sequence[ValidationRow]) -> str:
    head = (f"{'scenario':<14} {'run':<24} {'+-1':>6} {'exact':>6} {'rs real':>8} "
            f"{'rs pred':>8} {'rs err':>7} {'up err':>7} {'floor err':>9}  calibrated on")
    lines = [head]
    for r in rows:
        c = r.comparison

        def fmt(v: float | None) -> str:
            return "-" if v is None else f"{v:+.1f}s"
        lines.append(
            f"{r.scenario:<14} {r.run:<24} {c.within_one:>6.0%} {c.exact:>6.0%} "
            f"{c.real_replica_seconds:>8.0f} {c.predicted_replica_seconds:>8.0f} "
            f"{c.replica_seconds_error:>+7.1%} {fmt(c.first_scale_up_error):>7} "
            f"{fmt(c.back_to_floor_error):>9}  {', '.join(r.calibrated_on)}")
    met = sum(r.comparison.meets_goal() for r in rows)
    lines.append(f"goal (+-1 replica >= 90 % of samples, replica-seconds within 10 %): "
                 f"met on {met}/{len(rows)}")
    return "\n".join(lines)


def as_json(pred: Prediction, calibration: Calibration,
            comparison: Comparison | None) -> Mapping[str, Any]:
    return {"scenario": pred.scenario, "manifest": pred.manifest,
            "summary": pred.result.summary(), "calibration": calibration.as_dict(),
            "notes": list(pred.notes), "timelines": pred.timelines(),
            "events": [{"t": round(e.t, 3), "controller": e.controller, "from": e.from_replicas,
                        "to": e.to_replicas, "reason": e.reason} for e in pred.result.events],
            "comparison": None if comparison is None else comparison.as_dict()}
