"""``scalelab tune``: search a scaling object's parameters with the twin.

Every candidate is the scenario's own manifest with some fields changed (so what is
written is what was simulated); it is parsed by the same parsers the live loop uses
(``HPASpec.from_manifest``, ``ScaledObjectSpec.from_manifest`` and the HPA KEDA generates
from it) and simulated. The search is a plain grid, deterministically thinned to
``budget`` candidates: the twin is cheap (a few ms a run) and a grid is reproducible and
covers the corners a sampler may skip; 1,000+ candidates fit in seconds on one core
(tests/bench/test_bench_twin.py prints the figure).

The objective: minimize replica-seconds subject to ``queue wait p95 <= X s`` and ``replica
changes <= K``; the Pareto front is over (replica-seconds, wait p95, changes).
"""

from __future__ import annotations

import copy
import itertools
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from scalelab.control.hpa import HPASpec
from scalelab.control.keda import ScaledObjectSpec, trigger_authentications
from scalelab.control.trace_replay import KedaHPASpec, PlaceholderEnv
from scalelab.errors import ConfigError
from scalelab.scaling_manifests import validate_scaling
from scalelab.twin.simulate import TwinParams, simulate
from scalelab.twin.workload import Arrivals

# --------------------------------------------------------------------------------------
# Objective
# --------------------------------------------------------------------------------------

_CONSTRAINT = re.compile(r"^\s*(wait_p95|changes)\s*<=\s*([0-9.]+)\s*$")


@dataclass(frozen=True, kw_only=True)
class Objective:
    """Minimize replica-seconds subject to the constraints that are set."""

    max_wait_p95: float | None = None
    max_changes: int | None = None

    @classmethod
    def parse(cls, text: str) -> Objective:
        """``replica-seconds; wait_p95 <= 10; changes <= 6`` (constraints optional)."""
        parts = [p for p in re.split(r"[;,]", text) if p.strip()]
        fix = "write e.g. 'replica-seconds; wait_p95 <= 10; changes <= 6'"
        if not parts or parts[0].strip() != "replica-seconds":
            raise ConfigError(f"unknown objective {text!r}: the goal is replica-seconds",
                              field="--objective", fix=fix)
        wait: float | None = None
        changes: int | None = None
        for part in parts[1:]:
            m = _CONSTRAINT.match(part)
            if not m:
                raise ConfigError(f"cannot read the constraint {part.strip()!r}",
                                  field="--objective", fix=fix)
            if m.group(1) == "wait_p95":
                wait = float(m.group(2))
            else:
                changes = int(float(m.group(2)))
        return cls(max_wait_p95=wait, max_changes=changes)

    def describe(self) -> str:
        out = ["minimize replica-seconds"]
        if self.max_wait_p95 is not None:
            out.append(f"queue wait p95 <= {self.max_wait_p95:g}s")
        if self.max_changes is not None:
            out.append(f"<= {self.max_changes} replica changes")
        return ", ".join(out)


# --------------------------------------------------------------------------------------
# Candidates: manifest edits
# --------------------------------------------------------------------------------------

#: Field path (in the scaling object's document) -> the values searched.
HPA_SPACE: Mapping[str, Sequence[Any]] = {
    "target": (30, 40, 50, 60, 70, 80),
    "spec.minReplicas": (1, 2, 3),
    "spec.maxReplicas": (4, 6, 8),
    "spec.behavior.scaleDown.stabilizationWindowSeconds": (0, 15, 30, 60, 120),
    "spec.behavior.scaleUp.stabilizationWindowSeconds": (0, 15),
    "scaleUp.pods": (1, 2, 4),
}
KEDA_SPACE: Mapping[str, Sequence[Any]] = {
    "trigger.value": (2, 5, 10, 20),
    "trigger.activationValue": (0, 5, 10),
    "spec.pollingInterval": (5, 15, 30),
    "spec.cooldownPeriod": (30, 60, 120, 300),
    "spec.minReplicaCount": (0, 1, 2),
    "spec.maxReplicaCount": (4, 6, 8),
    "behavior.scaleDown.stabilizationWindowSeconds": (0, 30, 60),
}


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    node = doc
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def _behavior(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]
    if doc["kind"] == "ScaledObject":
        spec = spec.setdefault("advanced", {}).setdefault("horizontalPodAutoscalerConfig", {})
    return spec.setdefault("behavior", {})  # type: ignore[no-any-return]


def apply_candidate(doc: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the scaling object's document with the candidate's values set."""
    out = copy.deepcopy(dict(doc))
    for key, value in params.items():
        if key == "target":
            for metric in out["spec"].get("metrics") or []:
                if metric.get("type") == "Resource":
                    metric["resource"]["target"]["averageUtilization"] = value
                elif metric.get("type") == "External":
                    metric["external"]["target"]["averageValue"] = str(value)
        elif key == "scaleUp.pods":
            up = _behavior(out).setdefault("scaleUp", {})
            pols = [p for p in up.get("policies") or [] if p.get("type") != "Pods"]
            up["policies"] = [*pols, {"type": "Pods", "value": value, "periodSeconds": 15}]
        elif key.startswith("behavior."):
            _set(_behavior(out), key.removeprefix("behavior."), value)
        elif key.startswith("trigger."):
            for trig in out["spec"]["triggers"]:
                if trig.get("type") == "rabbitmq":
                    trig.setdefault("metadata", {})[key.removeprefix("trigger.")] = str(value)
        else:
            _set(out, key, value)
    return out


def spec_of(doc: Mapping[str, Any], auths: Mapping[str, Mapping[str, Any]],
            source: str) -> HPASpec:
    """The spec the live loop would run for the document (KEDA: its generated HPA)."""
    if doc["kind"] == "HorizontalPodAutoscaler":
        return HPASpec.from_manifest(doc, source=source)
    so = ScaledObjectSpec.from_manifest(doc, env=PlaceholderEnv(), auths=auths,
                                        secret=lambda name: PlaceholderEnv(), source=source)
    hpa = HPASpec.from_manifest(so.hpa_manifest(), source=source)
    return KedaHPASpec(**{f.name: getattr(hpa, f.name) for f in fields(hpa)}, scaled_object=so)


def grid(space: Mapping[str, Sequence[Any]], *, budget: int, seed: int = 0
         ) -> list[dict[str, Any]]:
    """Every combination, or ``budget`` of them picked with a fixed seed."""
    keys = list(space)
    combos = [dict(zip(keys, values, strict=True))
              for values in itertools.product(*(space[k] for k in keys))]
    if len(combos) > budget:
        combos = random.Random(seed).sample(combos, budget)
    return combos


# --------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Candidate:
    params: Mapping[str, Any]
    doc: Mapping[str, Any]
    replica_seconds: float
    wait_p95: float
    changes: int
    feasible: bool
    #: Worst queue wait p95 and most changes over every controller phase tried
    #: (``robust_best``); None: checked at the calibrated phase only.
    worst_wait_p95: float | None = None
    worst_changes: int | None = None

    def dominates(self, other: Candidate) -> bool:
        a = (self.replica_seconds, self.wait_p95, self.changes)
        b = (other.replica_seconds, other.wait_p95, other.changes)
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


@dataclass(frozen=True, kw_only=True)
class TuneResult:
    objective: Objective
    candidates: tuple[Candidate, ...]
    best: Candidate | None
    front: tuple[Candidate, ...]
    skipped: tuple[str, ...] = field(default_factory=tuple)
    baseline: Candidate | None = None      # the manifest unchanged
    #: The cheapest feasible candidate at the calibrated phase (``best`` must also hold at
    #: every phase tried); None: none is feasible even there.
    nominal_best: Candidate | None = None
    #: Controller phases every recommendation was checked at (1: the calibrated one only).
    phases: int = 1


def pareto(cands: Sequence[Candidate]) -> list[Candidate]:
    """Non-dominated candidates (one per distinct outcome), cheapest first."""
    seen: dict[tuple[float, float, int], Candidate] = {}
    for c in sorted(cands, key=lambda c: (c.replica_seconds, c.wait_p95, c.changes)):
        key = (round(c.replica_seconds, 3), round(c.wait_p95, 3), c.changes)
        seen.setdefault(key, c)
    unique = list(seen.values())
    front = [c for c in unique if not any(o.dominates(c) for o in unique)]
    return sorted(front, key=lambda c: (c.replica_seconds, c.wait_p95, c.changes))


def scaling_document(docs: Sequence[Mapping[str, Any]], source: str) -> Mapping[str, Any]:
    for doc in docs:
        if doc.get("kind") in ("HorizontalPodAutoscaler", "ScaledObject"):
            return doc
    raise ConfigError("holds no HorizontalPodAutoscaler or ScaledObject", file=source,
                      field="kind", fix="tune a scenario whose manifest has one")


def phase_variants(params: TwinParams, n: int) -> list[TwinParams]:
    """``n`` controller phases spread over one HPA sync period, the calibrated one first.

    In a real run the phase of the HPA's syncs and KEDA's polls against the load is chance
    (they tick from when the controller started, not from the scenario): a policy that
    meets the objective only at the phase one calibration run happened to have is a
    knife-edge, not a recommendation."""
    period = params.settings.sync_period
    return [replace(params, apply_offset=params.apply_offset - k * period / n)
            for k in range(max(n, 1))]


def robust_best(cands: Sequence[Candidate], *, arrivals: Arrivals, params: TwinParams,
                objective: Objective, auths: Mapping[str, Mapping[str, Any]], source: str,
                phases: int, limit: int = 200) -> Candidate | None:
    """The cheapest feasible candidate that stays feasible at every controller phase
    (``phase_variants``), with its worst figures; the first ``limit`` feasible ones are
    tried, cheapest first."""
    variants = phase_variants(params, phases)[1:]
    ok = sorted((c for c in cands if c.feasible),
                key=lambda c: (c.replica_seconds, c.wait_p95, c.changes))
    for cand in ok[:limit]:
        spec = spec_of(cand.doc, auths, source)
        results = [simulate(spec, arrivals, v) for v in variants]
        wait = max([cand.wait_p95, *(r.quantile(0.95) for r in results)])
        changes = max([cand.changes, *(r.replica_changes for r in results)])
        if (objective.max_wait_p95 is None or wait <= objective.max_wait_p95) and \
                (objective.max_changes is None or changes <= objective.max_changes):
            return replace(cand, worst_wait_p95=wait, worst_changes=changes)
    return None


def search(*, docs: Sequence[Mapping[str, Any]], source: str, arrivals: Arrivals,
           params: TwinParams, objective: Objective, budget: int = 1200,
           space: Mapping[str, Sequence[Any]] | None = None, phases: int = 1) -> TuneResult:
    """Simulate every candidate of the grid and pick the cheapest feasible one; with
    ``phases`` > 1 the cheapest that is feasible at that many controller phases."""
    base = scaling_document(docs, source)
    auths = trigger_authentications([d for d in docs if isinstance(d, dict)])
    space = space or (HPA_SPACE if base["kind"] == "HorizontalPodAutoscaler" else KEDA_SPACE)
    out: list[Candidate] = []
    skipped: list[str] = []
    baseline: Candidate | None = None
    # the manifest as it is comes first: the figure every candidate is compared with
    for cand in [{}, *grid(space, budget=budget)]:
        doc = apply_candidate(base, cand)
        spec = doc["spec"]
        lo = spec.get("minReplicas", spec.get("minReplicaCount", 1))
        hi = spec.get("maxReplicas", spec.get("maxReplicaCount", 100))
        if lo is not None and hi is not None and lo > hi:
            skipped.append(f"{cand}: min > max")
            continue
        try:
            res = simulate(spec_of(doc, auths, source), arrivals, params)
        except ConfigError as err:
            skipped.append(f"{cand}: {err.message}")
            continue
        wait = res.quantile(0.95)
        changes = res.replica_changes
        feasible = (objective.max_wait_p95 is None or wait <= objective.max_wait_p95) and \
            (objective.max_changes is None or changes <= objective.max_changes)
        got = Candidate(params=cand, doc=doc, replica_seconds=res.replica_seconds,
                        wait_p95=wait, changes=changes, feasible=feasible)
        if not cand:
            baseline = got
            continue
        out.append(got)
    ok = [c for c in out if c.feasible]
    nominal = min(ok, key=lambda c: (c.replica_seconds, c.wait_p95, c.changes)) if ok else None
    best = nominal if phases <= 1 else robust_best(
        out, arrivals=arrivals, params=params, objective=objective, auths=auths,
        source=source, phases=phases)
    return TuneResult(objective=objective, candidates=tuple(out), best=best,
                      front=tuple(pareto(out)), skipped=tuple(skipped), baseline=baseline,
                      nominal_best=nominal, phases=max(phases, 1))


def write_manifest(path: Path, docs: Sequence[Mapping[str, Any]], best: Candidate, *,
                   header: str) -> None:
    """The scenario's manifest with the best candidate's object, validated as every
    shipped manifest is (``scalelab.scaling_manifests.validate_scaling``)."""
    out = [best.doc if d.get("kind") in ("HorizontalPodAutoscaler", "ScaledObject") else d
           for d in docs]
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    path.write_text(comment + yaml.safe_dump_all(out, sort_keys=False))
    validate_scaling(path)
