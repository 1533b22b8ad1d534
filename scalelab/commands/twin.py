"""``scalelab twin RUN_DIR --scenario FILE``: predict a scenario from calibrated run records."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scalelab.errors import ConfigError
from scalelab.scenario import load_scenario
from scalelab.twin.calibrate import Calibration, RunData, calibrate, load_runs
from scalelab.twin.chart import page
from scalelab.twin.compare import Comparison, compare
from scalelab.twin.predict import Prediction, as_json, predict_file, same_plan
from scalelab.twin.workload import plans_from_record


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "twin", help="predict a scenario's replicas, queue and latency from recorded runs",
        description="Calibrate the twin (a model of queue, pods and CPU driving the emulated "
        "HPA/KEDA cores) from the run records in RUN_DIR, predict the scenario, and compare "
        "with the real run when RUN_DIR holds one. docs/twin.md.")
    p.add_argument("run_dir", type=Path, nargs="+", metavar="RUN_DIR",
                   help="run folder(s) written by tox -e scaling (reports/<run-id>)")
    p.add_argument("--scenario", type=Path, required=True, metavar="FILE",
                   help="the scenario to predict (experiments/scenarios/*.yaml)")
    p.add_argument("--manifest", type=Path, default=None, metavar="M",
                   help="scaling manifest to predict with (default: the scenario's)")
    p.add_argument("--holdout", action="store_true",
                   help="do not calibrate on the scenario's own records (validation)")
    p.add_argument("--output", type=Path, default=None, metavar="FILE",
                   help="write the prediction as JSON (default: twin-<scenario>.json)")
    p.add_argument("--chart", type=Path, default=None, metavar="FILE.html",
                   help="also draw the prediction (and the real run) as an HTML page")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    scenario_name = load_scenario(args.scenario).name
    everything = load_runs(args.run_dir)
    exclude = [scenario_name] if args.holdout else []
    kept = [r for r in everything if r.scenario not in exclude]
    if not kept:
        raise ConfigError(f"--holdout leaves no record: the run folders hold only "
                          f"{scenario_name}", file=", ".join(map(str, args.run_dir)),
                          field="--holdout",
                          fix="add a run folder with other scenarios, or drop --holdout")
    cal = calibrate(kept)
    pred = predict_file(args.scenario, cal, manifest=args.manifest)
    comparison, note = _compare(pred, everything)
    _print(pred, cal, comparison, note)
    out = args.output or Path(f"twin-{pred.scenario}.json")
    out.write_text(json.dumps(as_json(pred, cal, comparison), indent=1))
    print(f"# written: {out}")
    if args.chart is not None:
        real = target.record if (target := _real_run(pred, everything)) and comparison else None
        args.chart.write_text(page(pred, real, title=f"twin: {pred.scenario} under "
                                   f"{Path(pred.manifest).name}"))
        print(f"# chart: {args.chart}")
    return 0


def _real_run(pred: Prediction, runs: list[RunData]) -> RunData | None:
    return next((r for r in runs if r.scenario == pred.scenario), None)


def _compare(pred: Prediction, runs: list[RunData]) -> tuple[Comparison | None, str]:
    real = [r for r in runs if r.scenario == pred.scenario]
    if not real:
        return None, "no real run of this scenario in RUN_DIR: nothing to compare"
    target = real[0]
    if not same_plan(pred.plans, plans_from_record(target.record, str(target.path))):
        return None, (f"{target.path}: the scenario file changed since that run (phases, "
                      "loads or tools differ): not compared")
    return compare(pred.result, target.record), f"compared with {target.path}"


def _print(pred: Prediction, cal: Calibration, comparison: Comparison | None,
           note: str) -> None:
    print(f"# twin: {pred.scenario} under {pred.manifest}")
    print(f"# calibrated on: {', '.join(cal.sources)}")
    for name, param in cal.params.items():
        print(f"#   {name:<22} {param.value!s:<10} from {param.fields}")
    for n in pred.notes:
        print(f"# note: {n}")
    s = pred.result.summary()
    print(f"predicted: {s['replica_seconds']:.0f} replica-seconds, max {s['max_replicas']} "
          f"replicas, {s['replica_changes']} replica changes, queue wait p95 "
          f"{s['queue_wait_p95_s']:.1f}s, latency p95 {s['latency_p95_s']:.1f}s, max queue "
          f"{s['max_queue']:.0f}, first scale-up {_t(s['first_scale_up_s'])}, back to floor "
          f"{_t(s['back_to_floor_s'])}")
    for e in pred.result.events:
        print(f"  {e.t:>7.1f}s  {e.controller:<4} {e.from_replicas}->{e.to_replicas}  {e.reason}")
    print(f"# {note}")
    if comparison is not None:
        c = comparison
        print(f"real vs predicted: {c.within_one:.0%} of {c.samples} samples within +-1 "
              f"replica ({c.exact:.0%} exact), replica-seconds {c.real_replica_seconds:.0f} "
              f"vs {c.predicted_replica_seconds:.0f} ({c.replica_seconds_error:+.1%}), first "
              f"scale-up {_t(c.first_scale_up_real)} vs {_t(c.first_scale_up_predicted)}, back "
              f"to floor {_t(c.back_to_floor_real)} vs {_t(c.back_to_floor_predicted)}")


def _t(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}s"
