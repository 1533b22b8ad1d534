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
- ``steps``: [{name, started, seconds, outcome: ok | failed | interrupted}], the pipeline's
  steps that ran (reset, apply, start load, drive, drain, account, evaluate, store)
- ``phases``: [{name, start, end, planned_duration, load: {...}}]
- ``timeline``: [{t, spec, current, ready, desired, queue_ready, queue_unacked,
  cpu_utilization}] (sampled every ``poll_interval``; null where unknown)
- ``decisions``: [``ScalingEvent.as_dict()``]
- ``locust``: {requests, failures, rps, p50_ms, p95_ms, p99_ms, phases,
  history: [{t, users, rps, p95_ms}]}
- ``tasks``: {published, processed, lost, duplicated, dead_lettered, outcomes, queue_left,
  lost_ids (<=100), duplicate_ids (<=100)}
- ``verdicts``: [{id, kind, phase, passed, expected, observed, at, message}]
- ``error``: null | {type, message, step (the step it happened in)}
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

from scalelab.errors import ConfigError

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


#: What to do about a record this scalelab cannot read.
_STALE_FIX = ("the record was written by another scalelab version or edited by hand: re-run "
              "the scenario, render it with the version that wrote it, or move its run folder "
              "out of the reports folder")
_DAMAGED_FIX = ("the file is damaged (a write cut off, a bad edit): re-run the scenario, or "
                "move its run folder out of the reports folder")


def _read_json(path: Path) -> Any:
    """A stored JSON file's content, or a ``ConfigError`` naming the file and what is wrong."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read it: {err.strerror}", file=str(path),
                          fix="check that the file exists and is readable") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"not UTF-8 text (byte {err.start}: {err.reason})", file=str(path),
                          fix=_DAMAGED_FIX) from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"not valid JSON at line {err.lineno}, column {err.colno}: {err.msg}",
                          file=str(path), fix=_DAMAGED_FIX) from err


_JSON_TYPES = {list: "list", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


def _schema_field(err: jsonschema.ValidationError) -> str | None:
    """The record field an error is about (``scenario.name``), the missing one for required."""
    where = err.json_path.removeprefix("$").removeprefix(".")  # "phases[0].name"
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = next(str(n) for n in err.validator_value if n not in err.instance)
        where = f"{where}.{missing}" if where else missing
    return where or None


def load(path: Path) -> dict[str, Any]:
    """Load a run.json (or the scenario folder holding it) and check it against the schema.

    A file that is not a record of this schema (another version, damaged, edited) is a
    ``ConfigError`` naming the file, the field and the fix, so ``report`` can skip it with
    that reason and ``compare`` refuse with it, instead of a traceback.
    """
    if path.is_dir():
        path = path / RUN_FILE
    record = _read_json(path)
    if not isinstance(record, dict):
        raise ConfigError(f"a run record is a JSON object, this file holds a "
                          f"{_JSON_TYPES.get(type(record), type(record).__name__)}",
                          file=str(path), fix=_DAMAGED_FIX)
    version = record.get("schema_version")
    if isinstance(version, int) and version != SCHEMA_VERSION:
        raise ConfigError(
            f"written with run-record schema version {version}; this scalelab reads "
            f"{SCHEMA_VERSION}", file=str(path), field="schema_version", fix=_STALE_FIX)
    errors = list(jsonschema.Draft202012Validator(schema()).iter_errors(record))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise ConfigError(f"does not match the run-record schema: {best.message}",
                          file=str(path), field=_schema_field(best), fix=_STALE_FIX)
    return record


def load_series(scenario_dir: Path) -> dict[str, Any] | None:
    """series.json of a scenario folder (None when the run stored none)."""
    path = scenario_dir / SERIES_FILE
    if not path.exists():
        return None
    series = _read_json(path)
    if not isinstance(series, dict):
        raise ConfigError("series.json holds a JSON object (start, end, step, queries)",
                          file=str(path), fix=_DAMAGED_FIX)
    return series


def find_runs(reports_dir: Path) -> list[Path]:
    """Run folders under ``reports_dir`` that hold at least one run.json, newest first."""
    runs = {p.parent.parent for p in reports_dir.glob(f"*/*/{RUN_FILE}")}
    return sorted(runs, key=lambda p: p.name, reverse=True)
