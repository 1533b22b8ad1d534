"""Render the HTML report from stored run records (no stack needed, nothing re-run).

Pages: ``reports/index.html`` (latest run + history) and one page per scenario at
``reports/<run-id>/<scenario>/index.html`` with inline SVG charts, the tables and the
raw series as CSV (``series/<key>.csv``) next to it. Jinja2 renders with autoescape on, so
labels, descriptions and log lines from a run can never inject markup.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from scalelab import record as records
from scalelab.errors import ConfigError
from scalelab.queries import CHARTS, QUERIES, Targets, targets_from_manifests
from scalelab.repetitions import Spread, k_of_n
from scalelab.report import charts
from scalelab.report.summary import METRICS, format_value, summarize

INDEX = "index.html"
SERIES_DIR = "series"

BACKEND_NOTES = {
    "local": "processes on this machine; HPA and KEDA control loops emulated from the "
             "same manifests",
    "kind": "real Kubernetes (kind cluster): real HPA controller and KEDA",
    "existing": "real Kubernetes (existing cluster): real HPA controller and KEDA",
}


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("scalelab.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = format_value
    env.filters["clock"] = _clock
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=1, sort_keys=True,
                                                        default=str)
    return env


def _clock(t: float | None) -> str:
    if t is None:
        return "–"
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True, kw_only=True)
class ScenarioRun:
    """One scenario's stored record, where it lives and its key figures."""

    path: Path
    record: dict[str, Any]
    summary: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.record["scenario"]["name"])


@dataclass(frozen=True, kw_only=True)
class Skipped:
    """A stored file the report could not read: where it is and why (field, problem, fix)."""

    path: Path
    reason: str

    @classmethod
    def of(cls, err: ConfigError, path: Path) -> Skipped:
        where = Path(err.file) if err.file else path
        return cls(path=where, reason=str(err).removeprefix(f"{where}: "))


def read_run(run_dir: Path, *, strict: bool = False
             ) -> tuple[list[ScenarioRun], list[Skipped]]:
    """The readable scenario records of one run folder, in the order they ran, and the
    unreadable ones with the reason (another schema version, a damaged file). ``strict``
    raises the first unreadable one's ``ConfigError`` instead."""
    runs, skipped = [], []
    for path in sorted(run_dir.glob(f"*/{records.RUN_FILE}")):
        try:
            rec = records.load(path)
        except ConfigError as err:
            if strict:
                raise
            skipped.append(Skipped.of(err, path))
            continue
        runs.append(ScenarioRun(path=path.parent, record=rec, summary=summarize(rec)))
    return sorted(runs, key=lambda r: (r.record["started_at"], r.name)), skipped


def load_run(run_dir: Path) -> list[ScenarioRun]:
    """Every scenario record of one run folder, in the order they ran; the first unreadable
    one is a ``ConfigError`` (for callers that need the whole run, such as compare)."""
    return read_run(run_dir, strict=True)[0]


def resolve_run(run: str, *, reports_dir: Path) -> Path:
    """A run id under ``reports_dir`` or a path to a run folder."""
    for candidate in (Path(run), reports_dir / run):
        if candidate.is_dir() and any(candidate.glob(f"*/{records.RUN_FILE}")):
            return candidate
    known = ", ".join(p.name for p in records.find_runs(reports_dir)[:5]) or "none"
    raise ConfigError(
        f"no run records ({records.RUN_FILE}) found for '{run}'",
        field="RUN",
        fix=f"pass a run id under {reports_dir} (latest: {known}) or a run folder's path",
    )


# -- scenario page ---------------------------------------------------------------------


def _points(values: list[list[Any]]) -> list[charts.Point]:
    return [(float(t), None if v is None else float(v)) for t, v in values]


def _label_suffix(labels: dict[str, str], varying: list[str]) -> str:
    return ", ".join(f"{k}={labels.get(k, '')}" for k in varying)


def _query_lines(entry: dict[str, Any], *, step: bool) -> list[charts.Line]:
    series = entry.get("series") or []
    keys = sorted({k for s in series for k in s["labels"]} - {"__name__"})
    varying = [k for k in keys if len({s["labels"].get(k) for s in series}) > 1]
    return [
        charts.Line(
            name=entry["title"] + (f" ({_label_suffix(s['labels'], varying)})" if varying else ""),
            points=_points(s["values"]), step=step)
        for s in series
    ]


def _timeline_lines(timeline: list[dict[str, Any]], chart: str) -> list[charts.Line]:
    """Fallback when Prometheus series are missing: the experiment's own samples."""
    fields = {
        "replicas": [("spec", "spec"), ("current", "current"), ("ready", "ready"),
                     ("desired", "HPA desired")],
        "cpu": [("cpu_utilization", "average (HPA view)")],
        "queue": [("queue_ready", "ready"), ("queue_unacked", "unacked")],
    }.get(chart, [])
    return [
        charts.Line(name=f"{label} (timeline)", step=chart == "replicas",
                    points=[(s["t"], s.get(f)) for s in timeline])
        for f, label in fields
    ]


def _target_lines(*, kind: str | None, targets: Targets, t0: float, t1: float,
                  replicas: list[charts.Point]) -> list[charts.Line]:
    if kind == "replica_bounds":
        out = []
        if targets.min_replicas is not None:
            out.append(charts.Line(name=f"min replicas {targets.min_replicas}", target=True,
                                   points=[(t0, targets.min_replicas), (t1, targets.min_replicas)]))
        if targets.max_replicas is not None:
            out.append(charts.Line(name=f"max replicas {targets.max_replicas}", target=True,
                                   color="#7b2d26",
                                   points=[(t0, targets.max_replicas), (t1, targets.max_replicas)]))
        return out
    if kind == "cpu_target" and targets.cpu_target_percent is not None:
        v = targets.cpu_target_percent
        return [charts.Line(name=f"target {v:g} %", target=True, points=[(t0, v), (t1, v)])]
    if kind == "queue_target" and targets.queue_value is not None and replicas:
        v = targets.queue_value
        return [charts.Line(name=f"target {v:g} x replicas", target=True, step=True,
                            points=[(t, None if r is None else r * v) for t, r in replicas])]
    return []


def verdict_markers(rec: dict[str, Any], *, end: float) -> list[charts.Marker]:
    """One marker per expectation: where it was met or failed (its ``at``), else, for a
    check over a whole phase or run that held, at the end of what it covered."""
    phase_end = {p["name"]: p.get("end") for p in rec.get("phases") or []}
    out = []
    for v in rec.get("verdicts") or []:
        label = f"{v['id']}: expected {v['expected']}, observed {v['observed']}"
        t = v.get("at")
        if t is None:
            covered = v.get("phase")
            t = phase_end.get(covered) if covered else None
            t = end if t is None else t
            label += f" (checked over {'phase ' + covered if covered else 'the run'})"
        out.append(charts.Marker(t=float(t), passed=bool(v["passed"]), label=label))
    return out


def fault_marks(rec: dict[str, Any]) -> list[charts.FaultMark]:
    """One mark per fault fired (not per heal); a timed fault ends at its heal."""
    records = rec.get("faults") or []
    out = []
    for f in records:
        if f.get("heal"):
            continue
        heal = next((h for h in records if h.get("heal") and h.get("id") == f.get("id")
                     and h["t"] >= f["t"]), None)
        effect = ", ".join(f"{k} {v}" for k, v in (f.get("effect") or {}).items())
        label = f"{f['id']}: {f['kind']} {f['target']}" + (f" ({effect})" if effect else "") \
            + (f"; error: {f['error']}" if f.get("error") else "")
        out.append(charts.FaultMark(t=float(f["t"]), label=label,
                                    end=None if heal is None else float(heal["t"])))
    return out


def fault_effects(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """Per fault fired: when, what, its effect, and the seconds until the ready count was
    back to where it was before the fault (None: it never was)."""
    timeline = sorted(rec.get("timeline") or [], key=lambda s: s["t"])
    out = []
    for mark, f in zip(fault_marks(rec), [f for f in rec.get("faults") or []
                                          if not f.get("heal")], strict=True):
        before = [s for s in timeline if s["t"] <= mark.t]
        level = before[-1]["ready"] if before else None
        end = mark.end if mark.end is not None else mark.t + float(f.get("seconds") or 0)
        back = next((s["t"] for s in timeline if s["t"] >= end and level is not None
                     and s["ready"] >= level), None)
        out.append({"fault": f, "end": end, "ready_before": level,
                    "recovered_after": None if back is None else back - end})
    return out


def build_charts(rec: dict[str, Any], series: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every chart of a scenario page: SVG plus the queries and CSV files behind it."""
    timeline = sorted(rec.get("timeline") or [], key=lambda s: s["t"])
    t0 = float(rec["started_at"])
    ends = [rec.get("ended_at"), timeline[-1]["t"] if timeline else None,
            series.get("end") if series else None]
    t1 = max([float(e) for e in ends if e is not None] + [t0 + 1.0])
    targets = targets_from_manifests(rec.get("manifests") or [])
    bands = [charts.Band(name=p["name"], start=p["start"], end=p["end"] or t1)
             for p in rec.get("phases") or [] if p.get("start") is not None]
    markers = verdict_markers(rec, end=t1)
    faults = fault_marks(rec)
    queries = (series or {}).get("queries") or {}
    replicas: list[charts.Point] = []
    cur = (queries.get("replicas_current") or {}).get("series") or []
    if cur:
        replicas = _points(cur[0]["values"])
    elif timeline:
        replicas = [(s["t"], float(s["current"])) for s in timeline]
    history = sorted((rec.get("locust") or {}).get("history") or [], key=lambda h: h["t"])
    out = []
    for chart in CHARTS:
        if chart.key in ("load", "load_p95"):
            drawn = _ChartData(lines=_load_lines(chart.key, history),
                               note="no Locust history in the run record")
        else:
            drawn = _prometheus_chart(chart.key, queries, timeline)
        lines = drawn.lines + twin_lines(rec, chart.key) + _target_lines(
            kind=chart.target, targets=targets, t0=t0, t1=t1, replicas=replicas)
        svg = charts.line_chart(chart_id=f"chart-{chart.key}", title=chart.title,
                                unit=chart.unit, lines=lines, t0=t0, t1=t1, bands=bands,
                                markers=markers, note=drawn.note, faults=faults)
        out.append({"key": chart.key, "title": chart.title, "svg": svg,
                    "queries": drawn.used, "errors": drawn.errors})
    return out


#: Chart key -> the twin's per-second series drawn on it, with their names.
TWIN_LINES: Mapping[str, tuple[tuple[str, str], ...]] = {
    "replicas": (("ready", "predicted ready (twin)"),),
    "cpu": (("cpu_utilization", "predicted average (twin)"),),
    "queue": (("queue_ready", "predicted ready (twin)"),
              ("queue_unacked", "predicted unacked (twin)")),
}


def twin_lines(rec: Mapping[str, Any], chart: str) -> list[charts.Line]:
    """The twin's prediction of the run (the record's ``twin``), dotted beside the real
    series; its time 0 is the first phase's actual start."""
    twin = rec.get("twin") or {}
    series = twin.get("timelines") or {}
    phases = rec.get("phases") or []
    if not series or not phases or phases[0].get("start") is None:
        return []
    t0 = float(phases[0]["start"])
    ts = [t0 + float(t) for t in series.get("t") or []]
    out = [charts.Line(name=name, predicted=True, step=chart == "replicas",
                       points=list(zip(ts, (float(v) for v in series[key]), strict=False)))
           for key, name in TWIN_LINES.get(chart, ()) if series.get(key)]
    if chart == "replicas" and out:
        # What the prediction is compared with: the harness's own samples. Prometheus'
        # series above trail them by up to a scrape plus a query step.
        out.append(charts.Line(name="ready, the run's samples (compared with the twin)",
                               step=True, color="#6e7781",
                               points=[(float(s["t"]), None if s.get("ready") is None
                                        else float(s["ready"]))
                                       for s in rec.get("timeline") or []]))
    return out


@dataclass(kw_only=True)
class _ChartData:
    """What one chart draws (before its target lines) and what its page lists below it."""

    lines: list[charts.Line]
    note: str | None = None
    used: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _load_lines(key: str, history: list[dict[str, Any]]) -> list[charts.Line]:
    """The Locust charts, from the history in the run record."""
    if key == "load":
        return [charts.Line(name="users", step=True,
                            points=[(h["t"], h.get("users")) for h in history]),
                charts.Line(name="requests/s", points=[(h["t"], h.get("rps")) for h in history])]
    return [charts.Line(name="p95 response time",
                        points=[(h["t"], h.get("p95_ms")) for h in history])]


def _has_data(lines: list[charts.Line]) -> bool:
    return any(any(v is not None for _, v in ln.points) for ln in lines)


def _prometheus_chart(key: str, queries: dict[str, Any],
                      timeline: list[dict[str, Any]]) -> _ChartData:
    """A chart from its captured Prometheus queries; when none has data, from the run's own
    timeline, with a note saying why (the queries' errors) if that has none either."""
    data = _ChartData(lines=[])
    for q in QUERIES:
        entry = queries.get(q.key) if q.chart == key else None
        if entry is None:
            continue
        data.used.append({"key": q.key, "title": entry.get("title", q.title),
                          "promql": entry.get("promql", q.promql),
                          "csv": f"{SERIES_DIR}/{q.key}.csv", "error": entry.get("error")})
        if entry.get("error"):
            data.errors.append(f"{q.key}: {entry['error']}")
        if q.draw:
            data.lines += _query_lines(entry, step=key == "replicas")
    if not _has_data(data.lines):
        data.lines = _timeline_lines(timeline, key)
        if not _has_data(data.lines):
            data.note = "; ".join(data.errors) or "no Prometheus series captured"
    return data


def write_csvs(scenario_dir: Path, rec: dict[str, Any], series: dict[str, Any] | None) -> None:
    """The raw data behind every chart, one CSV per query (plus Locust and timeline)."""
    folder = scenario_dir / SERIES_DIR
    folder.mkdir(exist_ok=True)
    for key, entry in ((series or {}).get("queries") or {}).items():
        rows = entry.get("series") or []
        labels = sorted({k for s in rows for k in s["labels"]})
        with (folder / f"{key}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["unix_time", *labels, "value"])
            for s in rows:
                for t, v in s["values"]:
                    w.writerow([t, *(s["labels"].get(k, "") for k in labels),
                                "" if v is None else v])
    tables = {
        "timeline": (["t", "spec", "current", "ready", "desired", "queue_ready",
                      "queue_unacked", "cpu_utilization"], rec.get("timeline") or []),
        "locust_history": (["t", "users", "rps", "p95_ms"],
                           (rec.get("locust") or {}).get("history") or []),
    }
    for name, (cols, items) in tables.items():
        with (folder / f"{name}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            for item in items:
                w.writerow(["" if item.get(c) is None else item.get(c) for c in cols])


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and 1e9 < value < 1e10:  # a unix time: say when
        return datetime.fromtimestamp(value, tz=UTC).strftime("%H:%M:%S.%f")[:-5]
    if isinstance(value, str | int | float | bool):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)


def _is_text(value: Any, key: str = "") -> bool:
    """A log tail or message block: shown as its own <pre>, not in a table cell."""
    return isinstance(value, str) and ("tail" in key or "\n" in value or len(value) > 200)


def diagnostic_blocks(value: Any, title: str = "", depth: int = 0) -> list[dict[str, Any]]:
    """Turn a backend's diagnostics into readable blocks: tables for lists of records
    (pods, events, decisions), one <pre> per log tail, key/value rows for small mappings.

    The shapes differ between backends (``LocalBackend.diagnostics``,
    ``ClusterBackend.diagnostics``), so this walks the data instead of naming fields.
    """
    blocks: list[dict[str, Any]] = []
    if isinstance(value, str):
        blocks.append({"kind": "pre", "title": title, "text": value})
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        columns: list[str] = []
        texts: list[dict[str, Any]] = []
        for row in value:
            for key, cell in row.items():
                if _is_text(cell, str(key)):
                    label = row.get("name") or row.get("pod") or f"row {len(texts) + 1}"
                    texts.append({"kind": "pre", "title": f"{label}: {key}", "text": cell})
                elif key not in columns:
                    columns.append(key)
        rows = [[_cell(row.get(c)) for c in columns] for row in value]
        blocks.append({"kind": "table", "title": title, "columns": columns, "rows": rows})
        blocks.extend(texts)
    elif isinstance(value, dict) and value:
        plain = {k: v for k, v in value.items()
                 if not isinstance(v, dict | list) and not _is_text(v, str(k))}
        if plain:
            blocks.append({"kind": "kv", "title": title,
                           "rows": [[str(k), _cell(v)] for k, v in plain.items()]})
        for key, sub in value.items():
            if key in plain:
                continue
            name = f"{title} / {key}" if title else str(key)
            blocks.extend(diagnostic_blocks(sub, name, depth + 1))
    elif isinstance(value, list):
        blocks.append({"kind": "kv", "title": title,
                       "rows": [[str(i), _cell(v)] for i, v in enumerate(value)] or
                               [["", "(none)"]]})
    else:
        blocks.append({"kind": "kv", "title": title, "rows": [["", _cell(value)]]})
    return blocks


def render_scenario(scenario_dir: Path, *, env: jinja2.Environment | None = None) -> Path:
    """Write ``index.html`` and ``series/*.csv`` for one scenario folder; return the page."""
    env = env or environment()
    rec = records.load(scenario_dir)
    series = records.load_series(scenario_dir)
    write_csvs(scenario_dir, rec, series)
    t0 = float(rec["started_at"])
    summary = summarize(rec)
    page = env.get_template("scenario.html.j2").render(
        rec=rec,
        t0=t0,
        summary=summary,
        metrics=METRICS,
        charts=build_charts(rec, series),
        faults=fault_effects(rec),
        targets=targets_from_manifests(rec.get("manifests") or []),
        backend_note=BACKEND_NOTES.get(rec["backend"]["name"], ""),
        diagnostics=diagnostic_blocks(rec.get("diagnostics") or {}),
        has_series=series is not None,
        step=(series or {}).get("step"),
        generated=_clock(datetime.now(tz=UTC).timestamp()),
        root="../../",
    )
    out = scenario_dir / INDEX
    out.write_text(page)
    return out


# -- index -----------------------------------------------------------------------------


def render_index(reports_dir: Path, *, env: jinja2.Environment | None = None,
                 skipped: list[Skipped] | None = None) -> Path:
    """``reports/index.html``: the latest run in full, earlier runs as history.

    Unreadable records are left out and listed with their reason; ``skipped`` holds the
    ones already found (scenario pages that could not be rendered) and gets the new ones.
    """
    env = env or environment()
    skipped = [] if skipped is None else skipped
    runs = []
    for run_dir in records.find_runs(reports_dir):
        scenarios, unread = read_run(run_dir)
        skipped.extend(s for s in unread if s.path not in {k.path for k in skipped})
        if not scenarios:
            continue
        pages = {s.path.name: (s.path / INDEX).exists() for s in scenarios}
        runs.append({"id": run_dir.name, "scenarios": scenarios, "pages": pages,
                     "backend": scenarios[0].record["backend"]["name"] if scenarios else "",
                     "status": _run_status(scenarios),
                     "repetitions": repetition_groups(scenarios),
                     "started": min(s.record["started_at"] for s in scenarios)})
    page = env.get_template("index.html.j2").render(
        latest=runs[0] if runs else None, history=runs[1:], metrics=METRICS,
        backend_notes=BACKEND_NOTES,
        skipped=[{"path": os.path.relpath(s.path, reports_dir), "reason": s.reason}
                 for s in skipped],
        compares=sorted(p.name for p in reports_dir.glob("compare-*.html")),
        generated=_clock(datetime.now(tz=UTC).timestamp()),
        root="",
    )
    out = reports_dir / INDEX
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out


#: The figures whose spread over repetitions the index shows.
SPREAD_KEYS = ("time_to_first_scale_up", "time_to_peak", "time_back_to_floor", "peak_replicas")


def repetition_groups(scenarios: list[ScenarioRun]) -> list[dict[str, Any]]:
    """Per repeated scenario: passed k of N against min_pass, each expectation's k of N and
    the spread (median, min, max, CV) of the timing figures."""
    by_name: dict[str, list[ScenarioRun]] = {}
    for sc in scenarios:
        by_name.setdefault(sc.name, []).append(sc)
    out = []
    for name, runs in by_name.items():
        if len(runs) < 2:
            continue
        n = len(runs)
        need = int((runs[0].record.get("repetition") or {}).get("min_pass") or n)
        passed = sum(1 for r in runs if r.record["status"] == "passed")
        metrics = {m.key: m for m in METRICS}
        out.append({
            "name": name, "n": n, "passed": passed, "min_pass": need,
            "status": "passed" if passed >= need else "failed",
            "expectations": k_of_n([r.record.get("verdicts") or [] for r in runs]),
            "spreads": [(metrics[k], Spread.of(r.summary.get(k) for r in runs))
                        for k in SPREAD_KEYS],
        })
    return out


def _run_status(scenarios: list[ScenarioRun]) -> str:
    groups = {g["name"]: g for g in repetition_groups(scenarios)}
    if groups:  # a repeated scenario counts once, passed when min_pass repetitions did
        singles = [s for s in scenarios if s.name not in groups]
        states = [s.record["status"] for s in singles] + [g["status"] for g in groups.values()]
        for worst in ("error", "interrupted", "failed"):
            if worst in states:
                return worst
        return "passed"
    states = [s.record["status"] for s in scenarios]
    for worst in ("error", "interrupted", "failed"):
        if worst in states:
            return worst
    return "passed" if states else "empty"


def render_reports(reports_dir: Path, *, runs: list[str] | None = None,
                   skipped: list[Skipped] | None = None) -> list[Path]:
    """Render the given runs (ids or folders; default: every run) and the index.

    A record (or its series.json) that cannot be read does not stop the others: it is
    left out, named on the index with the reason, and added to ``skipped`` for the caller.
    """
    env = environment()
    skipped = [] if skipped is None else skipped
    run_dirs = ([resolve_run(r, reports_dir=reports_dir) for r in runs] if runs
                else records.find_runs(reports_dir))
    written = []
    for run_dir in run_dirs:
        scenarios, unread = read_run(run_dir)
        skipped.extend(unread)
        for s in scenarios:
            try:
                written.append(render_scenario(s.path, env=env))
            except ConfigError as err:  # its series.json
                skipped.append(Skipped.of(err, s.path))
    written.append(render_index(reports_dir, env=env, skipped=skipped))
    return written
