"""``scalelab tune --scenario FILE --runs RUN_DIR... --objective ... --output FILE``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from scalelab.errors import ConfigError
from scalelab.scenario import load_scenario
from scalelab.twin.calibrate import calibrate, load_runs
from scalelab.twin.predict import spec_from_text
from scalelab.twin.tune import Candidate, Objective, TuneResult, search, write_manifest
from scalelab.twin.workload import arrivals, plans_from_scenario


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "tune", help="search the scaling policy for a scenario with the calibrated twin",
        description="Calibrate the twin from the runs, simulate a grid of variants of the "
        "scenario's scaling manifest (HPA: target, min/max, stabilization windows, scale-up "
        "pods policy; KEDA: value, activation, polling, cooldown, min/max, scale-down "
        "window), print the Pareto front and write the cheapest policy that meets the "
        "objective as a validated manifest. docs/twin.md.")
    p.add_argument("--scenario", type=Path, required=True, metavar="FILE")
    p.add_argument("--runs", type=Path, nargs="+", required=True, metavar="RUN_DIR",
                   help="run folders to calibrate on (reports/<run-id>)")
    p.add_argument("--objective", default="replica-seconds; wait_p95 <= 10; changes <= 6",
                   help="'replica-seconds; wait_p95 <= X; changes <= K' (default: %(default)s)")
    p.add_argument("--output", type=Path, required=True, metavar="FILE",
                   help="where to write the best policy's manifest (YAML)")
    p.add_argument("--budget", type=int, default=1200, metavar="N",
                   help="candidates to simulate (the grid is thinned to N; default 1200)")
    p.add_argument("--phases", type=int, default=4, metavar="N",
                   help="controller phases (spread over one HPA sync period) the "
                        "recommendation must meet the objective at; 1: the calibrated "
                        "phase only (default %(default)s)")
    p.add_argument("--front", type=int, default=15, metavar="N",
                   help="Pareto-front rows to print (default 15)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.budget < 1:
        raise ConfigError("must be at least 1", field="--budget", fix="e.g. --budget 1200")
    if not 1 <= args.phases <= 20:
        raise ConfigError(f"{args.phases} is not a number of phases from 1 to 20",
                          field="--phases", fix="e.g. --phases 4 (1: calibrated phase only)")
    objective = Objective.parse(args.objective)
    scen = load_scenario(args.scenario)
    if not scen.manifests:
        raise ConfigError("the scenario has no scaling manifest", file=str(args.scenario),
                          field="manifests", fix="tune a scenario with an HPA or ScaledObject")
    manifest = scen.manifests[0]
    docs = [d for d in yaml.safe_load_all(manifest.read_text()) if isinstance(d, dict)]
    cal = calibrate(load_runs(args.runs))
    plans = plans_from_scenario(scen)
    params = cal.twin_params(plans)
    arr = arrivals(plans, batch_size=scen.workload.batch_size,
                   api_latency_s=cal.value("api_latency_s") or 0.0,
                   scale=cal.value("arrival_scale") or 1.0)
    started, cpu0 = time.perf_counter(), time.process_time()
    result = search(docs=docs, source=str(manifest), arrivals=arr, params=params,
                    objective=objective, budget=args.budget, phases=args.phases)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    n = len(result.candidates)
    print(f"# tune: {scen.name} ({len(arr.per_second)} s) from {manifest}")
    print(f"# calibrated on: {', '.join(cal.sources)}")
    print(f"# objective: {objective.describe()}")
    print(f"# {n} candidates simulated in {wall:.1f}s ({cpu:.1f}s CPU), "
          f"{len(result.skipped)} skipped (min > max or refused)")
    if result.baseline is not None:
        b = result.baseline
        print(f"as it is ({manifest.name}): {b.replica_seconds:.0f} replica-seconds, wait p95 "
              f"{b.wait_p95:.1f}s, {b.changes} changes "
              f"({'meets' if b.feasible else 'misses'} the objective)")
    _print_front(result, args.front)
    if result.best is None:
        _print_no_best(result)
        return 1
    best = result.best
    robust = _robust_note(result, best)
    header = (f"Recommended by scalelab tune for scenario {scen.name}.\n"
              f"Objective: {objective.describe()} (--objective '{args.objective}').\n"
              f"Predicted: {best.replica_seconds:.0f} replica-seconds, queue wait p95 "
              f"{best.wait_p95:.1f}s, {best.changes} replica changes.\n{robust}"
              f"Base manifest: {_shown(manifest)}\nParameters: {_params(best)}\n"
              f"Calibrated on: {', '.join(cal.sources)}\n")
    write_manifest(args.output, docs, best, header=header)
    spec_from_text(args.output.read_text(), args.output.name)  # loads as replay loads it
    print(f"best: {best.replica_seconds:.0f} replica-seconds, wait p95 {best.wait_p95:.1f}s, "
          f"{best.changes} changes: {_params(best)}")
    print(f"# written (validated): {args.output}")
    return 0


def _print_front(result: TuneResult, rows: int) -> None:
    print(f"Pareto front (replica-seconds, queue wait p95, replica changes), "
          f"{len(result.front)} policies, cheapest first:")
    print(f"  {'rep-s':>7} {'wait p95':>8} {'changes':>7}  ok  parameters")
    for c in result.front[:rows]:
        print(f"  {c.replica_seconds:>7.0f} {c.wait_p95:>7.1f}s {c.changes:>7}  "
              f"{'yes' if c.feasible else 'no ':<3} {_params(c)}")


def _print_no_best(result: TuneResult) -> None:
    nominal = result.nominal_best
    if nominal is not None:
        print(f"no candidate meets the objective at all {result.phases} controller "
              f"phases; the cheapest that meets it at the calibrated phase only: "
              f"{_params(nominal)} ({nominal.replica_seconds:.0f} replica-seconds): "
              "loosen the objective, or --phases 1 to accept a knife-edge")
    else:
        print("no candidate meets the objective: loosen it (--objective) or widen the runs")


def _robust_note(result: TuneResult, best: Candidate) -> str:
    """The header's line on the controller phases checked (and say which knife-edge, if
    any, was skipped)."""
    if result.phases <= 1:
        return ""
    nominal = result.nominal_best
    if nominal is not None and nominal.params != best.params:
        print(f"the cheapest at the calibrated phase ({_params(nominal)}, "
              f"{nominal.replica_seconds:.0f} replica-seconds) misses the objective at "
              "another controller phase: skipped")
    return (f"At {result.phases} controller phases (one HPA sync period): queue wait p95 at "
            f"most {best.worst_wait_p95:.1f}s, at most {best.worst_changes} replica changes.\n")


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


#: Short names of the searched fields, for the table.
_SHORT = {"spec.behavior.scaleDown.stabilizationWindowSeconds": "downWindow",
          "behavior.scaleDown.stabilizationWindowSeconds": "downWindow",
          "spec.behavior.scaleUp.stabilizationWindowSeconds": "upWindow",
          "scaleUp.pods": "upPods"}


def _params(c: Candidate) -> str:
    return " ".join(f"{_SHORT.get(k, k.split('.')[-1])}={v}" for k, v in c.params.items())
