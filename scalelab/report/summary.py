"""Key figures of one scenario run, derived from its record: shared by the report and compare.

One pure function (``summarize``) so the index page, the history and ``scalelab compare``
can never disagree about what "time to first scale-up" means.

Definitions (times in seconds, from the record's ``timeline`` and ``phases``):

- *load start*: start of the first phase whose ``load`` (``scalelab.scenario.Load.as_dict``)
  is not ``mode: idle`` and asks for users, a rate or tasks > 0 (else the first phase, else
  ``started_at``); *load end*: end of the last such phase.
- *reaction start*: start of the scenario's ``reaction_phase`` when it names one (e.g. the
  backlog after a trickle that must not wake anything), else the load start.
- *floor*: ``spec`` replicas at the reaction start (the last sample at or before it).
- *time to first scale-up*: from the reaction start to the first sample whose ``spec``
  exceeds the floor.
- *peak replicas*: highest ``ready`` count; *time to peak*: from the reaction start to the
  first sample reaching it.
- *time back to the floor*: after load end (and the peak), first sample with
  ``spec <= floor``, measured from load end; None if it never came back.
- *replica changes*: number of times ``spec`` changed (flapping shows up here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_LOAD_KEYS = ("users", "rate", "tasks", "rps")


@dataclass(frozen=True, kw_only=True)
class Metric:
    """A figure on the index and in compare, with the direction that counts as better."""

    key: str
    label: str
    unit: str
    #: "lower", "higher" or None (no direction: shown, never highlighted).
    better: str | None


METRICS: tuple[Metric, ...] = (
    Metric(key="time_to_first_scale_up", label="time to first scale-up", unit="s",
           better="lower"),
    Metric(key="time_to_peak", label="time to peak", unit="s", better="lower"),
    Metric(key="time_back_to_floor", label="time back to floor", unit="s", better="lower"),
    Metric(key="peak_replicas", label="peak replicas", unit="replicas", better=None),
    Metric(key="replica_changes", label="replica changes", unit="", better="lower"),
    Metric(key="tasks_published", label="tasks published", unit="", better=None),
    Metric(key="tasks_processed", label="tasks processed", unit="", better=None),
    Metric(key="tasks_lost", label="tasks lost", unit="", better="lower"),
    Metric(key="tasks_duplicated", label="tasks duplicated", unit="", better="lower"),
    Metric(key="api_p95_ms", label="API p95", unit="ms", better="lower"),
    Metric(key="locust_rps", label="requests/s", unit="req/s", better="higher"),
    Metric(key="locust_failures", label="request failures", unit="", better="lower"),
)


def _is_loaded(phase: dict[str, Any]) -> bool:
    load = phase.get("load") or {}
    if load.get("mode") == "idle":  # scalelab.scenario.Load: idle publishes nothing
        return False
    return any(isinstance(load.get(k), int | float) and load[k] > 0 for k in _LOAD_KEYS)


def load_window(record: dict[str, Any]) -> tuple[float, float | None]:
    """(load start, load end) as defined in the module docstring."""
    phases = [p for p in record.get("phases") or [] if p.get("start") is not None]
    loaded = [p for p in phases if _is_loaded(p)] or phases
    if not loaded:
        return float(record["started_at"]), record.get("ended_at")
    return float(loaded[0]["start"]), loaded[-1].get("end")


def reaction_start(record: dict[str, Any]) -> float:
    """Where the reaction times count from (module docstring)."""
    spec = (record.get("scenario") or {}).get("spec") or {}
    name = spec.get("reaction_phase")
    for phase in record.get("phases") or []:
        if name and phase.get("name") == name and phase.get("start") is not None:
            return float(phase["start"])
    return load_window(record)[0]


def sample_at(timeline: list[dict[str, Any]], t: float) -> dict[str, Any]:
    """The timeline sample in force at ``t``: the last at or before it, else the first."""
    before = [s for s in timeline if s["t"] <= t]
    return before[-1] if before else timeline[0]


def summarize(record: dict[str, Any]) -> dict[str, Any]:
    """The key figures of one scenario run (None where the run does not tell)."""
    timeline = sorted(record.get("timeline") or [], key=lambda s: s["t"])
    _, end = load_window(record)
    start = reaction_start(record)
    out: dict[str, Any] = {m.key: None for m in METRICS}
    verdicts = record.get("verdicts") or []
    out.update(
        status=record.get("status"),
        verdicts_passed=sum(1 for v in verdicts if v.get("passed")),
        verdicts_total=len(verdicts),
        load_start=start,
        load_end=end,
    )
    if timeline:
        at_start = sample_at(timeline, start)
        floor = at_start["spec"]
        out["floor"] = floor
        up = next((s for s in timeline if s["t"] >= start and s["spec"] > floor), None)
        if up is not None:
            out["time_to_first_scale_up"] = up["t"] - start
        peak = max(s["ready"] for s in timeline)
        out["peak_replicas"] = peak
        peak_at = next(s["t"] for s in timeline if s["ready"] == peak)
        if peak > at_start["ready"]:
            out["time_to_peak"] = max(0.0, peak_at - start)
            since = max(end if end is not None else peak_at, peak_at)
            back = next((s for s in timeline if s["t"] >= since and s["spec"] <= floor), None)
            if back is not None:
                out["time_back_to_floor"] = back["t"] - (end if end is not None else peak_at)
        specs = [s["spec"] for s in timeline]
        out["replica_changes"] = sum(1 for a, b in zip(specs, specs[1:], strict=False) if a != b)
    tasks = record.get("tasks") or {}
    for name in ("published", "processed", "lost", "duplicated"):
        out[f"tasks_{name}"] = tasks.get(name)
    locust = record.get("locust") or {}
    out["api_p95_ms"] = locust.get("p95_ms")
    out["locust_rps"] = locust.get("rps")
    out["locust_failures"] = locust.get("failures")
    return out


def format_value(value: Any, unit: str = "") -> str:
    """How a figure is printed on pages and in the compare table."""
    if value is None:
        return "–"
    if isinstance(value, float):
        text = f"{value:.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}".strip() if unit in ("s", "ms") else text
