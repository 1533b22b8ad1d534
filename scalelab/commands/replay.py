"""``scalelab replay MANIFEST TRACE``: what the HPA would have decided, sync by sync."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scalelab.control.hpa import HPAControllerSettings, MetricStatus
from scalelab.control.trace_replay import load_manifest, load_trace, replay, step_as_dict
from scalelab.errors import ConfigError
from scalelab.settings import KUBERNETES_DEFAULTS, TimingProfile


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "replay", help="run the emulated HPA over a recorded metrics trace",
        description="Replay a trace (CSV, JSONL or a run's run.json) through the emulated "
        "HPA controller and print the replica decision of every sync with its reason. "
        "Trace format: docs/replay.md.")
    p.add_argument("manifest", type=Path, help="HPA manifest or KEDA ScaledObject (YAML)")
    p.add_argument("trace", type=Path, help="trace: .csv, .jsonl, or run.json / its folder")
    p.add_argument("--json", action="store_true", help="print one JSON object per sync")
    p.add_argument("--pod-start", type=float, default=0.0, metavar="SECONDS",
                   help="new pods stay Pending this long (default 0: ready at once)")
    p.add_argument("--timing", choices=("kubernetes", "local"), default="kubernetes",
                   help="controller flags: Kubernetes defaults (15 s sync) or scalelab's "
                   "local timing profile")
    p.add_argument("--sync-period", type=float, default=None, metavar="SECONDS",
                   help="override the HPA sync period")
    p.add_argument("--initial-replicas", type=int, default=None, metavar="N",
                   help="replicas at the start (default: the HPA's minReplicas)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    timing = KUBERNETES_DEFAULTS if args.timing == "kubernetes" else TimingProfile()
    settings = HPAControllerSettings.from_timing(timing)
    if args.sync_period is not None:
        if args.sync_period <= 0:
            raise ConfigError("must be positive", field="--sync-period",
                              fix="give the sync period in seconds, e.g. 15")
        settings = HPAControllerSettings(
            sync_period=args.sync_period, tolerance=settings.tolerance,
            cpu_initialization_period=settings.cpu_initialization_period,
            initial_readiness_delay=settings.initial_readiness_delay,
            downscale_stabilization=settings.downscale_stabilization)
    if args.pod_start < 0:
        raise ConfigError("must not be negative", field="--pod-start",
                          fix="give seconds >= 0")
    spec, notes = load_manifest(args.manifest)
    samples = load_trace(args.trace)
    result = replay(spec, samples, settings=settings, pod_start=args.pod_start,
                    metrics_window=timing.metrics_window,
                    initial_replicas=args.initial_replicas)
    if args.json:
        for step in result.steps:
            print(json.dumps(step_as_dict(step)))
        return 0
    print(f"# {spec.object_ref} -> {spec.target_kind}/{spec.target_name} "
          f"(min {spec.min_replicas}, max {spec.max_replicas}), sync every "
          f"{settings.sync_period:g}s")
    for note in [*notes, *result.notes]:
        print(f"# note: {note}")
    print(f"{'t':>8}  {'replicas':>9}  {'metrics':<28}  reason")
    for step in result.steps:
        for event in step.keda:  # KEDA's own scaling (activation, cooldown), before the sync
            a = event.action
            print(f"{event.t:>8.1f}  {f'{a.current_replicas}->{a.desired_replicas}':>9}  "
                  f"{'(KEDA)':<28}  {a.reason}")
        d = step.decision
        change = (f"{d.current_replicas}->{d.desired_replicas}" if d.scaled
                  else f"{d.current_replicas}")
        metrics = ", ".join(_metric_text(m) for m in d.metric_statuses)
        print(f"{step.t:>8.1f}  {change:>9}  {metrics:<28}  {d.reason}")
    scaled = sum(1 for s in result.steps if s.decision.scaled)
    activations = sum(len(s.keda) for s in result.steps)
    print(f"# {len(result.steps)} syncs, {scaled} scaling actions"
          + (f", {activations} by KEDA itself" if activations else ""))
    return 0


def _metric_text(m: MetricStatus) -> str:
    if m.error is not None:
        return f"{m.metric}=?"
    if m.average_utilization is not None:
        return f"{m.metric}={m.average_utilization}%"
    if m.value_milli is not None:
        return f"{m.metric}={m.value_milli / 1000:g}"
    if m.average_value_milli is not None:
        return f"{m.metric}={m.average_value_milli / 1000:g}/pod"
    return m.metric
