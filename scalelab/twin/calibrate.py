"""Calibration: every parameter of the twin, read from named fields of run records.

- controller settings, metrics window: ``timing_profile.*``
- pod start-to-ready delay: ``decisions[].t`` of scale-ups and the first
  ``timeline[].ready`` reaching the new count
- prefetch (unacked per pod): ``timeline[].queue_unacked / timeline[].ready`` while
  ``queue_ready > 0``
- CPU request per pod: ``scenario.spec.workload.tools.*.cpu_ms`` x ``tasks.processed``
  over the integral of ``timeline[].cpu_utilization`` x ``timeline[].current``
- idle CPU: ``timeline[].cpu_utilization`` in idle phases with an empty queue
- cpu tool stretch (wall / CPU seconds): series ``task_duration_p50`` (the agent's
  histogram) / ``cpu_ms``
- io tool overhead: saturated stretches of ``timeline[]`` (queue_ready > 0): pod-seconds
  per task processed, minus ``io_ms``
- the controllers' phase: ``decisions[].t - phases[0].start`` modulo the sync period
  (else ``started_at``)
- initial replicas: ``timeline[0].spec``
- arrival scale: ``tasks.published`` / the schedule of ``phases[].load``
- API latency (users phases): ``locust.p50_ms``

The queue statistics refresh (RabbitMQ's ``collect_statistics_interval``, 5 s by default)
is not in a record: it is a stated constant. A parameter no given record provides is
refused only when the predicted scenario needs it (ConfigError: the records, the field,
which run would provide it).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab import record as run_record
from scalelab.control.hpa import HPAControllerSettings
from scalelab.errors import ConfigError
from scalelab.settings import TimingProfile
from scalelab.twin.simulate import TwinParams
from scalelab.twin.workload import Arrivals, PhasePlan, arrivals, plans_from_record

#: RabbitMQ management statistics refresh (``collect_statistics_interval``, default 5000 ms).
QUEUE_STATS_INTERVAL = 5.0


@dataclass(frozen=True, kw_only=True)
class Param:
    """One calibrated value and where it was read."""

    name: str
    value: float | None
    fields: str                        # the record fields it comes from
    records: tuple[str, ...] = ()      # the run.json files that gave it
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "fields": self.fields, "records": list(self.records),
                "note": self.note}


@dataclass(frozen=True, kw_only=True)
class RunData:
    """One loaded run record (with its series), the unit of calibration."""

    path: Path                         # the run.json
    record: Mapping[str, Any]
    series: Mapping[str, Any] | None

    @property
    def scenario(self) -> str:
        return str(self.record["scenario"]["name"])

    @property
    def t0(self) -> float:
        return float(self.record["phases"][0]["start"]) if self.record["phases"] else \
            float(self.record["started_at"])


def load_run(scenario_dir: Path) -> RunData:
    """A scenario folder (or its run.json) as calibration data."""
    path = scenario_dir / run_record.RUN_FILE if scenario_dir.is_dir() else scenario_dir
    record = run_record.load(path)
    if not record.get("phases"):
        raise ConfigError("the run has no phases", file=str(path), field="phases",
                          fix="calibrate with a run that got past its first phase")
    return RunData(path=path, record=record, series=run_record.load_series(path.parent))


def load_runs(run_dirs: Sequence[Path], *, exclude: Sequence[str] = ()) -> list[RunData]:
    """Every scenario record under the run folders (or scenario folders), minus ``exclude``."""
    out: list[RunData] = []
    for run_dir in run_dirs:
        if (run_dir / run_record.RUN_FILE).exists() or run_dir.suffix == ".json":
            candidates = [run_dir]
        else:
            candidates = sorted(p.parent for p in run_dir.glob(f"*/{run_record.RUN_FILE}"))
        if not candidates:
            raise ConfigError("holds no run record (no */run.json)", file=str(run_dir),
                              fix="give a run folder written by tox -e scaling "
                              "(reports/<run-id>)")
        for c in candidates:
            data = load_run(c)
            if data.scenario not in exclude:
                out.append(data)
    if not out:
        raise ConfigError("no record left to calibrate on", file=", ".join(map(str, run_dirs)),
                          fix="give runs of other scenarios (or drop --exclude)")
    return out


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """The calibrated parameters; ``params`` names each one's source."""

    timing: TimingProfile
    params: Mapping[str, Param] = field(default_factory=dict)
    sources: tuple[str, ...] = ()

    def value(self, name: str) -> float | None:
        return self.params[name].value

    def need(self, name: str, why: str) -> float:
        param = self.params[name]
        if param.value is None:
            raise ConfigError(
                f"no calibration record provides {name} ({why}): {param.note}",
                file=", ".join(self.sources), field=param.fields,
                fix="add a run record that has it (see docs/twin.md, 'Calibration')")
        return param.value

    def twin_params(self, plans: Sequence[PhasePlan]) -> TwinParams:
        """The model for a scenario: refuses a parameter it needs that no record gave."""
        tools = [t for p in plans for t in p.tools]
        has_cpu = any(t.cpu_s > 0 for t in tools)
        has_io = any(t.io_s > 0 for t in tools)
        return TwinParams(
            settings=HPAControllerSettings.from_timing(self.timing),
            metrics_window=self.timing.metrics_window,
            pod_start_s=self.need("pod_start_s", "every scale-up waits for it"),
            prefetch=int(self.need("prefetch", "the queue depth KEDA reads")),
            cpu_request_cores=self.need("cpu_request_cores", "the scenario burns CPU")
            if has_cpu else 1.0,
            cpu_stretch=self.need("cpu_stretch", "the scenario has cpu tools")
            if has_cpu else 1.0,
            io_overhead_s=self.need("io_overhead_s", "the scenario has io tools")
            if has_io else 0.0,
            idle_utilization=self.value("idle_utilization") or 0.0,
            queue_stats_interval=QUEUE_STATS_INTERVAL,
            apply_offset=self.need("apply_offset", "when the controllers run"),
            initial_replicas=int(self.need("initial_replicas", "the Deployment's replicas")),
        )

    def as_dict(self) -> dict[str, Any]:
        return {"timing_profile": self.timing.as_dict(), "sources": list(self.sources),
                "params": {k: v.as_dict() for k, v in self.params.items()}}


# --------------------------------------------------------------------------------------
# Per-parameter estimators (each returns (value or None, records used))
# --------------------------------------------------------------------------------------


def _timeline(run: RunData) -> list[Mapping[str, Any]]:
    return [p for p in run.record.get("timeline") or [] if p.get("t") is not None]


def _plans(run: RunData) -> list[PhasePlan]:
    return plans_from_record(run.record, str(run.path))


def _arrivals(run: RunData, scale: float = 1.0) -> Arrivals:
    locust = run.record.get("locust") or {}
    spec = run.record["scenario"].get("spec") or {}
    batch = int((spec.get("workload") or {}).get("batch_size", 1))
    return arrivals(_plans(run), batch_size=batch,
                    api_latency_s=float(locust.get("p50_ms") or 0.0) / 1000.0, scale=scale)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _pod_start(runs: Sequence[RunData]) -> tuple[float | None, list[str]]:
    found: list[float] = []
    used: list[str] = []
    for run in runs:
        tl = _timeline(run)
        got = False
        for d in run.record.get("decisions") or []:
            if d.get("to_replicas") is None or d.get("from_replicas") is None or \
                    d["to_replicas"] <= d["from_replicas"]:
                continue
            prev_t = float(d["t"])
            for point in tl:
                if point["t"] < d["t"]:
                    continue
                if point.get("ready") is not None and point["ready"] >= d["to_replicas"]:
                    found.append(max(0.0, (prev_t + point["t"]) / 2 - d["t"]))
                    got = True
                    break
                prev_t = float(point["t"])
        if got:
            used.append(str(run.path))
    return _median(found), used


def _prefetch(runs: Sequence[RunData]) -> tuple[float | None, list[str]]:
    ratios: list[float] = []
    used: list[str] = []
    for run in runs:
        vals = [p["queue_unacked"] / p["ready"] for p in _timeline(run)
                if p.get("queue_ready") and p.get("ready") and p.get("queue_unacked") is not None]
        if vals:
            ratios.append(max(vals))
            used.append(str(run.path))
    return (float(max(1, round(max(ratios)))) if ratios else None), used


def _idle(runs: Sequence[RunData]) -> tuple[float | None, list[str]]:
    vals: list[float] = []
    used: list[str] = []
    for run in runs:
        idle_spans = [(ph["start"], ph["end"]) for ph in run.record["phases"]
                      if (ph.get("load") or {}).get("mode") == "idle"]
        got = [float(p["cpu_utilization"]) for p in _timeline(run)
               if p.get("cpu_utilization") is not None and not p.get("queue_ready")
               and not p.get("queue_unacked")
               and any(a + 30 <= p["t"] <= b for a, b in idle_spans)]
        if got:
            vals.extend(got)
            used.append(str(run.path))
    return _median(vals), used


def _cpu_request(runs: Sequence[RunData]) -> tuple[float | None, list[str]]:
    """CPU-seconds the tasks asked for / request-seconds the pods showed (integral)."""
    work = shown = 0.0
    used: list[str] = []
    idle = _idle(runs)[0] or 0.0
    for run in runs:
        arr = _arrivals(run)
        if not any(t.cpu_s > 0 for t in arr.tools) or arr.total <= 0:
            continue
        processed = float((run.record.get("tasks") or {}).get("processed") or 0)
        per_tool = [sum(row[k] for row in arr.per_second) for k in range(len(arr.tools))]
        cpu_s = processed * sum(n * t.cpu_s for n, t in zip(per_tool, arr.tools, strict=True)) \
            / arr.total
        tl = [p for p in _timeline(run) if p.get("cpu_utilization") is not None
              and p.get("current") is not None]
        area = 0.0
        for a, b in zip(tl, tl[1:], strict=False):
            ua = max(0.0, a["cpu_utilization"] - idle) / 100 * a["current"]
            ub = max(0.0, b["cpu_utilization"] - idle) / 100 * b["current"]
            area += (ua + ub) / 2 * (b["t"] - a["t"])
        if cpu_s > 0 and area > 0:
            work += cpu_s
            shown += area
            used.append(str(run.path))
    return (work / shown if shown > 0 else None), used


def _series_values(run: RunData, key: str) -> list[float]:
    queries = (run.series or {}).get("queries") or {}
    out: list[float] = []
    for ser in (queries.get(key) or {}).get("series") or []:
        for _, v in ser.get("values") or []:
            if v is not None:
                try:
                    out.append(float(v))
                except (TypeError, ValueError):
                    continue
    return out


def _cpu_stretch(runs: Sequence[RunData]) -> tuple[float | None, list[str]]:
    """Agent histogram p50 task duration / the cpu tool's cpu_ms, in cpu-only runs."""
    vals: list[float] = []
    used: list[str] = []
    for run in runs:
        tools = {t.name: t for p in _plans(run) for t in p.tools}
        if not tools or any(t.io_s > 0 or t.cpu_s <= 0 for t in tools.values()):
            continue
        mean_cpu = statistics.fmean(t.cpu_s for t in tools.values())
        p50 = _series_values(run, "task_duration_p50")
        if p50:
            vals.append(statistics.median(p50) / mean_cpu)
            used.append(str(run.path))
    med = _median(vals)
    return (None if med is None else max(1.0, med)), used


def _depth(point: Mapping[str, Any]) -> float:
    return float(point["queue_ready"]) + float(point["queue_unacked"])


def _io_overhead(runs: Sequence[RunData], scale: float) -> tuple[float | None, list[str]]:
    """Saturated stretches (tasks waiting throughout): pod-seconds per task processed."""
    busy = done = 0.0
    nominal: list[float] = []
    used: list[str] = []
    for run in runs:
        arr = _arrivals(run, scale)
        if not arr.tools or any(t.cpu_s > 0 or t.io_s <= 0 for t in arr.tools):
            continue
        cum = [0.0]
        for row in arr.per_second:
            cum.append(cum[-1] + sum(row))

        def published(at: float, cum: list[float] = cum) -> float:
            i = min(max(int(at), 0), len(cum) - 1)
            return cum[i]

        tl = [p for p in _timeline(run) if p.get("queue_ready") is not None
              and p.get("queue_unacked") is not None and p.get("ready")]
        got = False
        # contiguous stretches with tasks waiting and a constant ready count, judged by
        # their ends: the broker's statistics lag (up to a refresh) cancels over a stretch
        stretch: list[Mapping[str, Any]] = []
        for point in [*tl, None]:
            if point is not None and point["queue_ready"] > 0 and (
                    not stretch or point["ready"] == stretch[0]["ready"]):
                stretch.append(point)
                continue
            # a sample showing a new depth is at most one poll after the broker's refresh;
            # the first such sample may predate the stretch (the backlog was building)
            fresh = [q for i, q in enumerate(stretch) if i == 0 or _depth(q) !=
                     _depth(stretch[i - 1])][1:]
            if len(fresh) >= 2:
                a, b = fresh[0], fresh[-1]
                ta, tb = a["t"] - run.t0, b["t"] - run.t0
                processed = (published(tb) - published(ta)) - (_depth(b) - _depth(a))
                if processed > 0:
                    busy += a["ready"] * (tb - ta)
                    done += processed
                    got = True
            stretch = [point] if point is not None and point["queue_ready"] > 0 else []
        if got:
            nominal.append(statistics.fmean(t.io_s for t in arr.tools))
            used.append(str(run.path))
    if done <= 0:
        return None, used
    return busy / done - statistics.fmean(nominal), used


def _apply_offset(runs: Sequence[RunData], sync: float) -> tuple[float | None, list[str]]:
    vals: list[float] = []
    used: list[str] = []
    for run in runs:
        times = [float(d["t"]) for d in run.record.get("decisions") or []
                 if d.get("controller") == "hpa"]
        if times:
            vals.extend(((t - run.t0) % sync) - sync for t in times)
        else:
            vals.append(min(0.0, float(run.record["started_at"]) - run.t0))
        used.append(str(run.path))
    return _median(vals), used


def _arrival_scale(runs: Sequence[RunData]) -> tuple[float | None, list[str], str]:
    ratios: list[float] = []
    used: list[str] = []
    notes: list[str] = []
    for run in runs:
        planned = _arrivals(run).total
        published = (run.record.get("tasks") or {}).get("published")
        if planned > 0 and published:
            ratios.append(float(published) / planned)
            used.append(str(run.path))
            notes.append(f"{run.scenario}: {published}/{planned:.0f}")
    return _median(ratios), used, "; ".join(notes)


def _timing_of(runs: Sequence[RunData]) -> TimingProfile:
    """The one timing profile the records share (refused when incomplete or mixed)."""
    profiles = {tuple(sorted((r.record.get("timing_profile") or {}).items())) for r in runs}
    first = runs[0]
    raw = first.record.get("timing_profile") or {}
    known = {f for f in TimingProfile.__dataclass_fields__}
    missing = sorted(known - set(raw))
    if missing:
        raise ConfigError("the record has no complete timing profile", file=str(first.path),
                          field=f"timing_profile.{missing[0]}",
                          fix="calibrate with a record written by this scalelab version")
    if len(profiles) > 1:
        raise ConfigError("the records were taken with different timing profiles",
                          file=", ".join(str(r.path) for r in runs), field="timing_profile",
                          fix="calibrate with runs of one timing profile")
    return TimingProfile(**{k: float(v) for k, v in raw.items() if k in known})


def calibrate(runs: Sequence[RunData]) -> Calibration:
    """Calibrate the twin from run records (all must share one timing profile)."""
    if not runs:
        raise ConfigError("no run record to calibrate on", fix="give at least one run folder")
    timing = _timing_of(runs)
    first = runs[0]
    scale, scale_used, scale_note = _arrival_scale(runs)
    params: dict[str, Param] = {}

    def put(name: str, got: tuple[float | None, list[str]], fields: str, note: str) -> None:
        value, used = got
        params[name] = Param(name=name, value=None if value is None else round(value, 4),
                             fields=fields, records=tuple(used), note=note)

    put("pod_start_s", _pod_start(runs), "decisions[].t, timeline[].ready",
        "median delay from a scale-up decision to the ready count reaching it (midpoint "
        "of the two timeline samples around it); needs a run that scaled up")
    put("prefetch", _prefetch(runs), "timeline[].queue_unacked, timeline[].ready",
        "unacked per ready pod while tasks wait; needs a run with a backlog")
    put("idle_utilization", _idle(runs), "timeline[].cpu_utilization",
        "median CPU of idle phases (after 30 s) with an empty queue")
    put("cpu_request_cores", _cpu_request(runs),
        "scenario.spec.workload.tools.*.cpu_ms, tasks.processed, "
        "timeline[].cpu_utilization, timeline[].current",
        "CPU-seconds the processed tasks asked for / request-seconds the pods showed; "
        "needs a run with cpu tools")
    put("cpu_stretch", _cpu_stretch(runs), "series task_duration_p50, "
        "scenario.spec.workload.tools.*.cpu_ms",
        "wall seconds per CPU second of a cpu task (agent histogram p50); needs a run "
        "whose tools are all cpu with its series.json")
    put("io_overhead_s", _io_overhead(runs, scale or 1.0),
        "timeline[].queue_ready, timeline[].queue_unacked, timeline[].ready, phases[].load, "
        "scenario.spec.workload.tools.*.io_ms",
        "pod-seconds per task processed while tasks waited, minus io_ms; needs an io-only "
        "run with a backlog")
    put("apply_offset", _apply_offset(runs, timing.hpa_sync_period),
        "decisions[].t, phases[0].start (else started_at)",
        "when the controllers first ran, s from the first phase")
    params["initial_replicas"] = Param(
        name="initial_replicas", value=float(_timeline(first)[0]["spec"])
        if _timeline(first) and _timeline(first)[0].get("spec") is not None else None,
        fields="timeline[0].spec", records=(str(first.path),),
        note="the Deployment's replicas when the scenario starts")
    params["arrival_scale"] = Param(name="arrival_scale",
                                    value=None if scale is None else round(scale, 4),
                                    fields="tasks.published, phases[].load",
                                    records=tuple(scale_used), note=scale_note)
    locust_p50 = [float((r.record.get("locust") or {}).get("p50_ms") or 0) / 1000 for r in runs
                  if (r.record.get("locust") or {}).get("p50_ms") is not None]
    params["api_latency_s"] = Param(name="api_latency_s", value=_median(locust_p50),
                                    fields="locust.p50_ms",
                                    records=tuple(str(r.path) for r in runs),
                                    note="users phases: each user waits for the answer")
    params["queue_stats_interval"] = Param(
        name="queue_stats_interval", value=QUEUE_STATS_INTERVAL, fields="(none: a constant)",
        note="RabbitMQ's collect_statistics_interval default; not recorded")
    return Calibration(timing=timing, params=params,
                       sources=tuple(str(r.path) for r in runs))
