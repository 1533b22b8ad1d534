"""The scaling run's own figures: harness overhead and reaction time against the loop bound.

- *wall/phases*: a scenario's wall time (reset, Locust boot, drain, capture included) over
  the sum of its planned phase durations (goal ≤ 1.15×).
- *reaction*: from the reaction start (``scalelab.report.summary``: the scenario's
  ``reaction_phase``, else the load start) to the first sample with more ready replicas
  than at that start. *bound*: what the control loop allows: scrape interval + HPA sync
  period + metrics window + pod start (seen in the run: first spec increase → first ready
  increase). Goal reaction/bound ≤ 1.0×. The reaction is read from samples taken every
  ``poll_interval``, so it may be late by up to one poll. For queue-driven scenarios the
  reaction also includes the time the backlog needs to pass the target, so a ratio above
  1 there is about the load, not the loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from scalelab.report.summary import reaction_start, sample_at


def scenario_figures(record: dict[str, Any]) -> dict[str, Any]:
    phases_sum = sum(float(p["planned_duration"]) for p in record["phases"])
    wall = (record.get("ended_at") or record["started_at"]) - record["started_at"]
    out: dict[str, Any] = {
        "scenario": record["scenario"]["name"], "status": record["status"],
        "wall_s": wall, "phases_s": phases_sum,
        "wall_ratio": wall / phases_sum if phases_sum else None,
        "reaction_s": None, "bound_s": None, "reaction_ratio": None,
    }
    timeline = sorted(record.get("timeline") or [], key=lambda s: s["t"])
    if not timeline:
        return out
    start = reaction_start(record)
    floor = sample_at(timeline, start)["ready"]
    spec_up = next((s["t"] for s in timeline if s["t"] >= start and s["spec"] > floor), None)
    ready_up = next((s["t"] for s in timeline if s["t"] >= start and s["ready"] > floor), None)
    if spec_up is None or ready_up is None:
        return out
    timing = record["timing_profile"]
    bound = (timing["scrape_interval"] + timing["hpa_sync_period"] + timing["metrics_window"]
             + max(0.0, ready_up - spec_up))
    out.update(reaction_s=ready_up - start, bound_s=bound,
               reaction_ratio=(ready_up - start) / bound)
    return out


def format_figures(records: Iterable[dict[str, Any]]) -> str:
    rows = [scenario_figures(r) for r in records]
    if not rows:
        return "no scenario records"

    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    lines = [f"{'scenario':<22} {'status':<8} {'wall':>7} {'phases':>7} {'ratio':>6} "
             f"{'reaction':>9} {'bound':>6} {'ratio':>6}"]
    for r in rows:
        lines.append(
            f"{r['scenario']:<22} {r['status']:<8} {num(r['wall_s'], '7.1f')} "
            f"{num(r['phases_s'], '7.1f')} {num(r['wall_ratio'], '6.2f')} "
            f"{num(r['reaction_s'], '9.1f')} {num(r['bound_s'], '6.1f')} "
            f"{num(r['reaction_ratio'], '6.2f')}")
    wall = sum(r["wall_s"] for r in rows)
    phases = sum(r["phases_s"] for r in rows)
    lines.append(f"total: wall {wall:.0f}s for {phases:.0f}s of phases "
                 f"({wall / phases:.2f}x; goal <= 1.15x)" if phases else "total: no phases")
    return "\n".join(lines)
