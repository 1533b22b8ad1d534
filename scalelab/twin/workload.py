"""What a scenario publishes: a per-second arrival rate per tool, from its phases.

The same plan is read from a scenario file (``scalelab.scenario.Scenario``, for a
prediction) and from a run record (``phases[].load`` + ``scenario.spec``, for calibrating
against what the load generator really published, ``tasks.published``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scalelab.errors import ConfigError
from scalelab.scenario import Scenario


@dataclass(frozen=True, kw_only=True)
class ToolCost:
    """One tool of the mix: its share of the tasks and what one task asks for (from the
    tool's arguments: ``cpu_ms`` burns CPU, ``io_ms`` waits)."""

    name: str
    weight: float
    cpu_s: float
    io_s: float


@dataclass(frozen=True, kw_only=True)
class PhasePlan:
    """One phase as the twin needs it (``scalelab.scenario.Load`` semantics)."""

    name: str
    duration: float
    mode: str                      # rate | tasks | users | idle
    rate: float = 0.0              # tasks/s (rate, tasks)
    tasks: int | None = None       # tasks mode: stop after this many
    users: int = 0                 # users mode (closed loop)
    spawn_rate: float = 0.0
    think_time: float = 1.0
    tools: tuple[ToolCost, ...] = ()


def _tools(raw: Any, where: str, source: str) -> tuple[ToolCost, ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError("has no tools", file=source, field=where,
                          fix="give the workload's tools (name: {weight, cpu_ms/io_ms})")
    out = []
    for name, args in raw.items():
        args = args if isinstance(args, Mapping) else {}
        out.append(ToolCost(name=str(name), weight=float(args.get("weight", 1)),
                            cpu_s=float(args.get("cpu_ms", 0)) / 1000.0,
                            io_s=float(args.get("io_ms", 0)) / 1000.0))
    return tuple(out)


def plans_from_scenario(scenario: Scenario) -> list[PhasePlan]:
    """The phases of a loaded scenario file."""
    base = tuple(ToolCost(name=t.name, weight=t.weight,
                          cpu_s=float(t.arguments.get("cpu_ms", 0)) / 1000.0,
                          io_s=float(t.arguments.get("io_ms", 0)) / 1000.0)
                 for t in scenario.workload.tools)
    plans = []
    for p in scenario.phases:
        tools = base if p.tools is None else tuple(
            ToolCost(name=t.name, weight=t.weight,
                     cpu_s=float(t.arguments.get("cpu_ms", 0)) / 1000.0,
                     io_s=float(t.arguments.get("io_ms", 0)) / 1000.0) for t in p.tools)
        load = p.load
        plans.append(PhasePlan(
            name=p.name, duration=p.duration, mode=load.mode, rate=float(load.rate or 0.0),
            tasks=load.tasks, users=int(load.users or 0),
            spawn_rate=float(load.spawn_rate or load.users or 0), think_time=load.think_time,
            tools=tools))
    return plans


def plans_from_record(record: Mapping[str, Any], source: str) -> list[PhasePlan]:
    """The phases a run record says ran: ``phases[].load`` and ``planned_duration``, the
    tool mix from ``scenario.spec.workload.tools`` (or the phase's own ``tools``)."""
    spec = record["scenario"].get("spec") or {}
    workload = spec.get("workload") or {}
    base = _tools(workload.get("tools"), "scenario.spec.workload.tools", source)
    spec_phases = spec.get("phases") or []
    plans = []
    for i, ph in enumerate(record["phases"]):
        load = ph.get("load") or {}
        mode = str(load.get("mode", "idle"))
        raw_tools = spec_phases[i].get("tools") if i < len(spec_phases) else None
        tools = base if raw_tools is None else _tools(
            raw_tools, f"scenario.spec.phases[{i}].tools", source)
        plans.append(PhasePlan(
            name=str(ph["name"]), duration=float(ph.get("planned_duration") or
                                                 (ph["end"] - ph["start"])),
            mode=mode, rate=float(load.get("rate") or 0.0), tasks=load.get("tasks"),
            users=int(load.get("users") or 0),
            spawn_rate=float(load.get("spawn_rate") or load.get("users") or 0),
            think_time=float(load.get("think_time", 1.0)), tools=tools))
    return plans


@dataclass(frozen=True, kw_only=True)
class Arrivals:
    """Tasks published in each second ``[t, t+1)``, per tool (index into ``tools``)."""

    tools: tuple[ToolCost, ...]
    per_second: tuple[tuple[float, ...], ...]
    phases: tuple[tuple[str, float, float], ...]   # name, start, end (s from the first)

    @property
    def total(self) -> float:
        return sum(sum(row) for row in self.per_second)


def arrivals(plans: Sequence[PhasePlan], *, batch_size: int = 1, api_latency_s: float = 0.0,
             scale: float = 1.0) -> Arrivals:
    """Per-second arrivals of a phase plan.

    ``rate``/``tasks``: the fixed schedule (open loop). ``users``: each user posts a batch of
    ``batch_size`` tasks and waits ``think_time`` after the answer (``api_latency_s``),
    ramped at ``spawn_rate``. ``scale`` is the calibrated ratio of what the load generator
    really published to what its schedule asked for.
    """
    names: list[str] = []
    tools: list[ToolCost] = []
    for plan in plans:
        for tool in plan.tools:
            if tool.name not in names:
                names.append(tool.name)
                tools.append(tool)
    rows: list[tuple[float, ...]] = []
    bounds: list[tuple[str, float, float]] = []
    start = 0.0
    for plan in plans:
        seconds = int(math.ceil(plan.duration - 1e-9))
        weights = [0.0] * len(tools)
        total_w = sum(t.weight for t in plan.tools) or 1.0
        for tool in plan.tools:
            weights[names.index(tool.name)] = tool.weight / total_w
        published = 0.0
        for s in range(seconds):
            span = min(1.0, plan.duration - s)
            if plan.mode in ("rate", "tasks"):
                n = plan.rate * span
                if plan.tasks is not None:
                    n = max(0.0, min(n, plan.tasks - published))
            elif plan.mode == "users":
                users = plan.users if plan.spawn_rate <= 0 else min(plan.users,
                                                                    plan.spawn_rate * (s + 1))
                n = users * batch_size / max(plan.think_time + api_latency_s, 1e-3) * span
            else:
                n = 0.0
            published += n
            rows.append(tuple(n * scale * w for w in weights))
        bounds.append((plan.name, start, start + plan.duration))
        start += plan.duration
    return Arrivals(tools=tuple(tools), per_second=tuple(rows), phases=tuple(bounds))
