"""The stored run record: what the experiment writes, the report renders and compare reads.

Layout (esrally's "store" step): ``reports/<run-id>/<scenario>/run.json`` plus
``series.json`` (Prometheus range-query results captured before the stack went down).
The format is the JSON Schema ``scalelab/schemas/run-record.schema.json``; bump
``SCHEMA_VERSION`` on incompatible changes.

run.json, top level (all times are unix seconds, durations seconds):

- ``schema_version`` (int), ``run_id`` (str), ``status``: passed | failed | error | interrupted
- ``scenario``: {name, description, tags, file, spec (the scenario document as loaded)}
- ``backend``: {name: local | kind | existing, details: {...}}
- ``versions``: {scalelab, python, locust, rabbitmq, prometheus, kubernetes, ...}
- ``timing_profile``: ``TimingProfile.as_dict()``
- ``manifests``: [{path, objects: ["Kind/name"], text}]
- ``started_at``, ``ended_at``
- ``phases``: [{name, start, end, planned_duration, load: {...}}]
- ``timeline``: [{t, spec, current, ready, desired, queue_ready, queue_unacked,
  cpu_utilization}] (sampled every ``poll_interval``; null where unknown)
- ``decisions``: [``ScalingEvent.as_dict()``]
- ``locust``: {requests, failures, rps, p50_ms, p95_ms, p99_ms, phases,
  history: [{t, users, rps, p95_ms}]}
- ``tasks``: {published, processed, lost, duplicated, dead_lettered, outcomes, queue_left,
  lost_ids (<=100), duplicate_ids (<=100)}
- ``verdicts``: [{id, kind, phase, passed, expected, observed, at, message}]
- ``error``: null | {type, message}
- ``diagnostics``: {...} (only when status is not passed)
- ``series_file``: "series.json" | null

series.json: {start, end, step, queries: {key: {title, promql, unit, chart, target, error,
series: [{labels, values: [[t, v], ...]}]}}}
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_VERSION = 1
RUN_FILE = "run.json"
SERIES_FILE = "series.json"


def new_run_id(now: float) -> str:
    """Sortable, unique run id: UTC timestamp plus a short random suffix."""
    stamp = datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def schema() -> dict[str, Any]:
    text = resources.files("scalelab.schemas").joinpath("run-record.schema.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


def validate(record: dict[str, Any]) -> None:
    jsonschema.validate(record, schema())


def _atomic_write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=False, default=str)
    os.replace(tmp, path)


def write(scenario_dir: Path, record: dict[str, Any], series: dict[str, Any] | None = None) -> Path:
    """Write run.json (and series.json) atomically; return the run.json path."""
    if series is not None:
        _atomic_write(scenario_dir / SERIES_FILE, series)
        record = {**record, "series_file": SERIES_FILE}
    path = scenario_dir / RUN_FILE
    _atomic_write(path, record)
    return path


def load(path: Path) -> dict[str, Any]:
    """Load a run.json (or the scenario folder holding it) and check it against the schema."""
    if path.is_dir():
        path = path / RUN_FILE
    record: dict[str, Any] = json.loads(path.read_text())
    validate(record)
    return record


def load_series(scenario_dir: Path) -> dict[str, Any] | None:
    path = scenario_dir / SERIES_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def find_runs(reports_dir: Path) -> list[Path]:
    """Run folders under ``reports_dir`` that hold at least one run.json, newest first."""
    runs = {p.parent.parent for p in reports_dir.glob(f"*/*/{RUN_FILE}")}
    return sorted(runs, key=lambda p: p.name, reverse=True)
