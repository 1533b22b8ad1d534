"""Expectations: what each kind means (one registry) and its evaluation against a finished run.

``KINDS`` is the one place an expectation kind is defined: its name, whether it needs,
takes or refuses a ``phase``, whether its value is a replica count, which modifiers it
takes, the JSON Schema of its value, how it is phrased and the function that checks it.
The scenario checker (``scalelab/scenario.py``), the evaluator below, the verdicts the
report shows (their ``expected`` text) and the scenario schema test all read it; the
schema file (``scalelab/schemas/scenario.schema.json``) is held to it by
``schema_mismatches``. A new kind is one ``Kind`` entry (plus its schema property).

Inputs are the run record's parts (``scalelab/record.py``): the replica ``timeline``
(samples ``{t, spec, current, ready, ...}``), the ``phases`` as they ran (``{name, start,
end}``, unix seconds), the ``tasks`` accounting and the ``locust`` summary. Output is one
verdict per expectation, shaped as the record's ``verdicts`` items: ``{id, kind, phase,
passed, expected, observed, at, message}``; ``at`` is when the check was decided (met or
broken), or None. Pure functions.

Semantics follow KEDA's e2e helpers (kedacore/keda ``tests/helper/helper.go``):
``reaches`` is ``WaitForDeploymentReplicaReadyCount`` (ready replicas equal the target
within a time), ``stays`` is ``AssertReplicaCountNotChangeDuringTimePeriod`` (the count
does not move for the whole period). Times are relative to the phase's actual start.
Windows for ``within`` are closed (a sample exactly at ``start + within`` counts); a
phase's own samples are ``start <= t < end`` (the sample at the boundary belongs to the
next phase).

``scaled_by`` reads the run's scaling ``decisions`` (``ScalingEvent.as_dict()`` items:
``{t, controller, object, from_replicas, to_replicas, reason, conditions}``) instead of
the timeline: it passes when a scale-up made inside the phase names the metric in its
reason (see ``REASON_MARKS``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Sample = tuple[float, int]
CountField = Literal["ready", "current", "spec"]
#: How a kind treats ``phase``: it needs one, may take one (run-wide without) or refuses it.
PhaseRule = Literal["required", "optional", "refused"]
Verdict = dict[str, Any]

#: Metrics ``scaled_by`` can name: a resource trigger/metric (cpu, memory), the rabbitmq
#: trigger, or any External metric (every KEDA event trigger is one in the HPA it drives).
SCALED_BY_METRICS = ("cpu", "memory", "rabbitmq", "external")

#: What a scale-up's reason contains (lowercased) when that metric drove it. The HPA names
#: the metric with the largest proposal (kubernetes pkg/controller/podautoscaler/
#: horizontal.go, computeReplicasForMetric): "cpu resource utilization (percentage of
#: request)" or "cpu resource" for Resource metrics, "external metric <name>(<selector>)"
#: for External ones; the reason is "<that> above target", as in the emulation
#: (``scalelab.control.hpa``) and the real ``SuccessfulRescale`` events ("New size: N;
#: reason: ..."). KEDA names a rabbitmq trigger's metric ``s<i>-rabbitmq-<queue>``, which
#: its activation events repeat ("..., triggered by s1-rabbitmq-agent-tasks").
REASON_MARKS: Mapping[str, tuple[str, ...]] = {
    "cpu": ("cpu resource",),
    "memory": ("memory resource",),
    "rabbitmq": ("rabbitmq",),
    "external": ("external metric",),
}


@dataclass(frozen=True, kw_only=True)
class Expectation:
    """One check against the run. ``id`` is stable (given, or derived from kind/phase/value)."""

    id: str
    kind: str
    #: The kind's number (replica count, change bound, ms); 0 for kinds without one.
    value: float
    phase: str | None = None
    #: The metric a scale-up must name (``scaled_by`` only: one of ``SCALED_BY_METRICS``).
    metric: str | None = None
    #: Seconds after the phase start by which the target must be seen (reaches/at_*).
    within: float | None = None
    #: Seconds the count must hold without a break (holds).
    hold_for: float | None = None
    #: Which replica count the check reads: ready (default, as KEDA's e2e helpers), current
    #: (pods that exist) or spec (what the autoscaler asked for).
    count: CountField = "ready"
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class RunData:
    """What a check reads: the expectation's samples and window, and the run's accounting."""

    #: ``(t, value)`` of the expectation's ``count`` over the whole run.
    samples: Sequence[Sample]
    #: The phase's actual start and end (the run's start and +inf without a phase).
    start: float
    end: float
    tasks: Mapping[str, Any] | None = None
    locust: Mapping[str, Any] | None = None
    decisions: Sequence[Mapping[str, Any]] | None = None
    #: The run's fault records (``scalelab.faults.FaultRecord.as_dict()``); None: no faults.
    faults: Sequence[Mapping[str, Any]] | None = None
    #: The twin's prediction of this run (the record's ``twin``); None: the scenario has none.
    twin: Mapping[str, Any] | None = None

    @property
    def window(self) -> list[Sample]:
        """The samples of the phase (or run): ``start <= t < end``."""
        return [s for s in self.samples if self.start <= s[0] < self.end]


Check = Callable[["VerdictBuilder", RunData], Verdict]


@dataclass(frozen=True, kw_only=True)
class Kind:
    """One expectation kind: everything the checker, the evaluator and the schema need."""

    name: str
    phase: PhaseRule
    #: Why a phase is needed (the checker's message when it is missing).
    phase_why: str = "is measured from a phase's start"
    #: The value is a replica count (checked against the manifest's min/max).
    replica_valued: bool = False
    #: Reads a replica timeline, so ``count`` (ready/current/spec) applies.
    takes_count: bool = False
    #: Takes ``within`` (seconds after the phase start) / ``for`` (seconds held).
    takes_within: bool = False
    takes_for: bool = False
    #: The value names a metric the scaling object must offer (``SCALED_BY_METRICS``).
    metric_valued: bool = False
    #: The value is the constant ``true`` (it carries no number and is left out of the id).
    flag: bool = False
    #: JSON Schema of the value (the scenario schema's property must equal it).
    schema: Mapping[str, Any]
    #: What the expectation asks, without its scope ("ready replicas == 4 within 60s").
    phrase: Callable[[Expectation], str]
    check: Check


class _HasExpectations(Protocol):
    @property
    def expectations(self) -> Sequence[Expectation]: ...


def evaluate(
    scenario: _HasExpectations, *, timeline: Sequence[Mapping[str, Any]],
    phases: Sequence[Mapping[str, Any]], tasks: Mapping[str, Any] | None,
    locust: Mapping[str, Any] | None,
    decisions: Sequence[Mapping[str, Any]] | None = None,
    faults: Sequence[Mapping[str, Any]] | None = None,
    twin: Mapping[str, Any] | None = None,
) -> list[Verdict]:
    """One verdict per expectation of ``scenario``, in scenario order.

    ``decisions`` are the run's scaling decisions; only ``scaled_by`` reads them (None: they
    were not collected, and a ``scaled_by`` check fails saying so).
    """
    by_name = {p["name"]: p for p in phases}
    run_start = next((p["start"] for p in phases if p.get("start") is not None), None)
    if run_start is None and timeline:
        run_start = timeline[0]["t"]
    return [
        evaluate_one(e, timeline=timeline, phases=by_name, tasks=tasks, locust=locust,
                     run_start=run_start, decisions=decisions, faults=faults, twin=twin)
        for e in scenario.expectations
    ]


def evaluate_one(
    exp: Expectation, *, timeline: Sequence[Mapping[str, Any]],
    phases: Mapping[str, Mapping[str, Any]], tasks: Mapping[str, Any] | None,
    locust: Mapping[str, Any] | None, run_start: float | None,
    decisions: Sequence[Mapping[str, Any]] | None = None,
    kinds: Mapping[str, Kind] | None = None,
    faults: Sequence[Mapping[str, Any]] | None = None,
    twin: Mapping[str, Any] | None = None,
) -> Verdict:
    """Evaluate one expectation through its kind's check; never raises for missing data
    (that is a failed verdict). ``kinds`` defaults to the registry ``KINDS``."""
    kind = (KINDS if kinds is None else kinds).get(exp.kind)
    if kind is None:
        raise ValueError(f"unknown expectation kind {exp.kind!r}")
    verdict = VerdictBuilder(exp, kind)
    start, end = run_start if run_start is not None else float("-inf"), float("inf")
    if exp.phase is not None and kind.phase != "refused":
        phase = phases.get(exp.phase)
        if phase is None or phase.get("start") is None:
            return verdict.fail(observed="phase did not run",
                                message=f"phase '{exp.phase}' has no start time: it never ran")
        start = float(phase["start"])
        end = float(phase["end"]) if phase.get("end") is not None else float("inf")
    verdict.origin = start if start != float("-inf") else None
    samples = [(float(s["t"]), int(s[exp.count])) for s in timeline
               if s.get(exp.count) is not None] if kind.takes_count else []
    data = RunData(samples=samples, start=start, end=end, tasks=tasks, locust=locust,
                   decisions=decisions, faults=faults, twin=twin)
    return kind.check(verdict, data)


class VerdictBuilder:
    """Builds the record's verdict dict, phrased by the expectation's kind."""

    def __init__(self, exp: Expectation, kind: Kind) -> None:
        self.exp = exp
        self.origin: float | None = None
        e = exp
        scope = "" if kind.phase == "refused" else (
            f" in phase '{e.phase}'" if e.phase else " over the run")
        self.expected = kind.phrase(exp) + scope

    def rel(self, t: float) -> str:
        return f"+{t - self.origin:.1f}s" if self.origin is not None else f"t={t:.1f}"

    def _done(self, passed: bool, observed: str, at: float | None, message: str | None
              ) -> Verdict:
        status = "met" if passed else "NOT met"
        return {
            "id": self.exp.id, "kind": self.exp.kind, "phase": self.exp.phase,
            "passed": passed, "expected": self.expected, "observed": observed, "at": at,
            "message": message or f"{self.exp.id}: {status}: expected {self.expected}; "
                                  f"observed {observed}",
        }

    def ok(self, *, observed: str, at: float | None = None, message: str | None = None
           ) -> Verdict:
        return self._done(True, observed, at, message)

    def fail(self, *, observed: str, at: float | None = None, message: str | None = None
             ) -> Verdict:
        return self._done(False, observed, at, message)


def _fmt_num(x: float | None) -> str:
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _summary(samples: Sequence[Sample], count: str) -> str:
    values = [v for _, v in samples]
    return f"{count} ranged {min(values)}..{max(values)}, last {values[-1]}"


# -- checks (one per kind, or one factory per family) ---------------------------------------


def _within(test: Callable[[int, float], bool]) -> Check:
    """reaches / at_least / at_most: the first sample from the phase start up to ``within``
    (else the phase end) that passes ``test(sample, value)``."""

    def check(v: VerdictBuilder, run: RunData) -> Verdict:
        e, start, end = v.exp, run.start, run.end
        limit = start + e.within if e.within is not None else end
        window = [s for s in run.samples if start <= s[0] <= limit]
        for t, value in window:
            if test(value, e.value):
                return v.ok(observed=f"{e.count}={value} at {v.rel(t)}", at=t)
        if not window:
            return v.fail(observed="no samples",
                          message=f"no {e.count} replica samples between {v.rel(start)} and "
                                  f"{v.rel(limit)} of phase '{e.phase}'")
        cut = "" if window[-1][0] >= limit - 1e-9 or limit == end else \
            f" (samples stop at {v.rel(window[-1][0])})"
        return v.fail(observed=f"{_summary(window, e.count)} by {v.rel(limit)}{cut}",
                      at=min(limit, window[-1][0]) if limit != float("inf") else window[-1][0])

    return check


def _over_window(body: Callable[[VerdictBuilder, Sequence[Sample]], Verdict]) -> Check:
    """A check over the phase's (or run's) own samples; none is a failed verdict."""

    def check(v: VerdictBuilder, run: RunData) -> Verdict:
        window = run.window
        if not window:
            where = f"phase '{v.exp.phase}'" if v.exp.phase else "the run"
            return v.fail(observed="no samples",
                          message=f"no {v.exp.count} replica samples during {where}")
        return body(v, window)

    return check


def _holds(v: VerdictBuilder, window: Sequence[Sample]) -> Verdict:
    """Longest unbroken run of samples at the target; its length is last - first sample."""
    e = v.exp
    need = float(e.hold_for or 0.0)
    best: tuple[float, float] | None = None
    run_start: float | None = None
    for t, value in window:
        if value == e.value:
            if run_start is None:
                run_start = t
            if t - run_start >= need:
                return v.ok(observed=f"{e.count}={_fmt_num(e.value)} from {v.rel(run_start)} "
                                     f"to {v.rel(t)}", at=t)
            if best is None or t - run_start > best[1] - best[0]:
                best = (run_start, t)
        else:
            run_start = None
    if best is None:
        return v.fail(observed=f"never {_fmt_num(e.value)}; {_summary(window, e.count)}")
    return v.fail(observed=f"longest run {best[1] - best[0]:.1f}s ({v.rel(best[0])} to "
                           f"{v.rel(best[1])})", at=best[1])


def _every_sample(good: Callable[[int, float], bool]
                  ) -> Callable[[VerdictBuilder, Sequence[Sample]], Verdict]:
    """stays / never_above / never_below: the first sample that breaks ``good`` fails."""

    def body(v: VerdictBuilder, window: Sequence[Sample]) -> Verdict:
        for t, value in window:
            if not good(value, v.exp.value):
                return v.fail(observed=f"{v.exp.count}={value} at {v.rel(t)}", at=t)
        return v.ok(observed=f"{_summary(window, v.exp.count)} over {len(window)} samples")

    return body


def _changes(v: VerdictBuilder, window: Sequence[Sample]) -> Verdict:
    limit = int(v.exp.value)
    changes = 0
    broke_at: float | None = None
    steps: list[str] = []
    for (_, a), (t, b) in zip(window, window[1:], strict=False):
        if a != b:
            changes += 1
            if len(steps) < 12:
                steps.append(f"{a}->{b}@{v.rel(t)}")
            if changes == limit + 1:
                broke_at = t
    observed = f"{changes} changes" + (f" ({', '.join(steps)})" if steps else "")
    if broke_at is not None:
        return v.fail(observed=observed, at=broke_at)
    return v.ok(observed=observed)


def _queued(left: Any) -> int | None:
    """Messages left in the queue at the end (ready + unacked), or None when unknown."""
    if isinstance(left, Mapping):
        return int(left.get("ready") or 0) + int(left.get("unacked") or 0)
    if isinstance(left, int | float):
        return int(left)
    return None


def _no_task_loss(v: VerdictBuilder, run: RunData) -> Verdict:
    tasks = run.tasks
    if not tasks:
        return v.fail(observed="no task accounting", message="no task accounting in the run")
    published = int(tasks.get("published", 0))
    processed = int(tasks.get("processed", 0))
    lost = int(tasks.get("lost", max(0, published - processed)))
    duplicated = int(tasks.get("duplicated", 0))
    queued = _queued(tasks.get("queue_left"))
    parts = [f"published {published}", f"processed {processed}", f"lost {lost}",
             f"duplicated {duplicated}"]
    if tasks.get("dead_lettered"):
        parts.append(f"dead-lettered {tasks['dead_lettered']}")
    parts.append(f"queue left {queued if queued is not None else 'unknown'}")
    observed = ", ".join(parts)
    if lost or (queued is not None and queued > 0):
        ids = list(tasks.get("lost_ids") or [])[:5]
        more = f"; e.g. {', '.join(ids)}" if ids else ""
        return v.fail(observed=observed, message=f"{v.exp.id}: NOT met: {observed}{more}")
    note = " (nothing was published)" if published == 0 else ""
    return v.ok(observed=observed + note)


def _latency(v: VerdictBuilder, run: RunData) -> Verdict:
    locust = run.locust
    p95 = None if not locust else locust.get("p95_ms")
    if p95 is None:
        return v.fail(observed="no Locust results",
                      message=f"{v.exp.id}: no API p95 latency: Locust results are missing")
    observed = f"p95 {_fmt_num(round(float(p95), 1))} ms over {locust.get('requests', '?')} "\
               "requests" if locust else ""
    if float(p95) <= v.exp.value:
        return v.ok(observed=observed)
    return v.fail(observed=observed)


def _queue_wait(v: VerdictBuilder, run: RunData) -> Verdict:
    waits = (run.tasks or {}).get("queue_wait_s")
    if not waits:
        return v.fail(observed="no queue waits recorded",
                      message=f"{v.exp.id}: the task accounting has no queue waits (the "
                              "agents' completion records carry none: agents older than "
                              "the harness?)")
    observed = f"p95 {_fmt_num(waits['p95'])}s (p50 {_fmt_num(waits['p50'])}s, max " \
               f"{_fmt_num(waits['max'])}s) over {waits['tasks']} tasks"
    return v.ok(observed=observed) if float(waits["p95"]) <= v.exp.value \
        else v.fail(observed=observed)


def _matches_twin(v: VerdictBuilder, run: RunData) -> Verdict:
    twin = run.twin
    if not twin or twin.get("error") or not twin.get("comparison"):
        why = (twin or {}).get("error") or "the run has no twin prediction"
        return v.fail(observed="no prediction", message=f"{v.exp.id}: NOT met: {why}")
    c = twin["comparison"]
    real, pred = float(c["real_replica_seconds"]), float(c["predicted_replica_seconds"])
    err = (real - pred) / pred if pred > 0 else float("inf")
    observed = (f"{real:.0f} replica-seconds, predicted {pred:.0f} ({err:+.1%} of the "
                f"prediction); ready replicas within +-1 of the prediction at "
                f"{float(c['within_one']):.0%} of {c['samples']} samples")
    return v.ok(observed=observed) if abs(err) * 100 <= v.exp.value \
        else v.fail(observed=observed)


def is_scale_up(decision: Mapping[str, Any]) -> bool:
    """A decision that adds replicas.

    A cluster's HPA events carry only the new size; when the previous one is unknown
    (``from_replicas`` -1) the reason decides: the HPA says "... above target" only when it
    scales up.
    """
    before, after = decision.get("from_replicas"), decision.get("to_replicas")
    if before is None or after is None:
        return False
    if int(before) < 0:
        return "above target" in str(decision.get("reason", "")).lower()
    return int(after) > int(before)


def names_metric(decision: Mapping[str, Any], metric: str) -> bool:
    """Whether the decision's reason names ``metric`` (one of ``REASON_MARKS``)."""
    reason = str(decision.get("reason", "")).lower()
    return any(mark in reason for mark in REASON_MARKS[metric])


def short_reason(reason: str, limit: int = 72) -> str:
    """The reason without label selectors and boilerplate, cut to ``limit`` characters."""
    text = re.sub(r"(external metric [^\s(]+)\([^()]*\)", r"\1", reason)
    text = text.replace(" (percentage of request)", "")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _scaled_by(v: VerdictBuilder, run: RunData) -> Verdict:
    metric, decisions, start, end = str(v.exp.metric), run.decisions, run.start, run.end
    if decisions is None:
        return v.fail(observed="no decisions recorded",
                      message=f"{v.exp.id}: NOT met: no decisions recorded: the run did not "
                              "collect the autoscalers' scaling decisions")
    ups = sorted((d for d in decisions
                  if start <= float(d["t"]) < end and is_scale_up(d)),
                 key=lambda d: float(d["t"]))
    if not ups:
        seen = sum(1 for d in decisions if start <= float(d["t"]) < end)
        observed = "no scale-up in the phase" + (
            f" ({seen} other decision{'s' if seen != 1 else ''})" if seen else "")
        return v.fail(observed=observed)
    shown = [f"{v.rel(float(d['t']))} {_size(d['from_replicas'])}->{d['to_replicas']} "
             f"({short_reason(str(d.get('reason', '')))})" for d in ups[:8]]
    if len(ups) > 8:
        shown.append(f"+{len(ups) - 8} more")
    observed = "; ".join(shown)
    first = next((d for d in ups if names_metric(d, metric)), None)
    if first is None:
        return v.fail(observed=observed)
    return v.ok(observed=observed, at=float(first["t"]))


def fault_ends(faults: Sequence[Mapping[str, Any]], *, phase: str | None
               ) -> list[tuple[str, float]]:
    """(fault id, when it ended) of each fault that fired (in ``phase``, if given): a kill at
    its firing, a restart once the broker was back, a partition or slowdown at its heal."""
    out = []
    for f in faults:
        if f.get("heal") or (phase is not None and f.get("phase") != phase):
            continue
        if f.get("kind") in ("partition", "slow"):
            heal = next((h for h in faults if h.get("heal") and h.get("id") == f.get("id")
                         and float(h["t"]) >= float(f["t"])), None)
            end = float(heal["t"]) if heal is not None else float("inf")
        else:
            end = float(f["t"]) + float(f.get("seconds") or 0.0)
        out.append((str(f.get("id")), end))
    return out


def _recovers(v: VerdictBuilder, run: RunData) -> Verdict:
    """After every fault (of the phase) ended, the count is back to at least N within
    ``within`` seconds (else before the phase ends)."""
    e = v.exp
    ends = fault_ends(run.faults or [], phase=e.phase)
    if not ends:
        where = f" in phase '{e.phase}'" if e.phase else ""
        return v.fail(observed="no fault fired",
                      message=f"{e.id}: no fault fired{where}: a recovery cannot be judged "
                              "(check the phase's faults)")
    seen, worst = [], None
    for fid, end in ends:
        if end == float("inf"):
            return v.fail(observed=f"{fid} was never healed", at=None)
        limit = end + e.within if e.within is not None else run.end
        back = next((t for t, x in run.samples if end <= t <= limit and x >= e.value), None)
        if back is None:
            return v.fail(observed=f"after {fid} (ended {v.rel(end)}): not back to "
                                   f"{_fmt_num(e.value)} by {v.rel(limit)}",
                          at=min(limit, run.samples[-1][0]) if run.samples else None)
        seen.append(f"{fid} +{back - end:.0f}s")
        worst = back if worst is None else max(worst, back)
    return v.ok(observed="recovered: " + ", ".join(seen), at=worst)


def _max_redeliveries(v: VerdictBuilder, run: RunData) -> Verdict:
    tasks = run.tasks or {}
    if "redelivered" not in tasks:
        return v.fail(observed="no redelivery count",
                      message=f"{v.exp.id}: the task accounting has no redelivery count")
    n = int(tasks["redelivered"])
    observed = f"{n} task(s) redelivered"
    return v.ok(observed=observed) if n <= v.exp.value else v.fail(observed=observed)


def _size(n: Any) -> str:
    return "?" if n is None or int(n) < 0 else str(int(n))


# -- the registry ---------------------------------------------------------------------------


def _count(e: Expectation, op: str) -> str:
    """``ready replicas >= 3`` (plus `` within 60s`` when the expectation has one)."""
    within = f" within {_fmt_num(e.within)}s" if e.within else ""
    return f"{e.count} replicas {op} {_fmt_num(e.value)}{within}"


_REPLICAS = {"$ref": "#/$defs/replicas"}


def _replica_kind(name: str, *, phrase: Callable[[Expectation], str], check: Check,
                  phase: PhaseRule = "required", **more: Any) -> Kind:
    """A kind whose value is a replica count read from the timeline."""
    return Kind(name=name, phase=phase, replica_valued=True, takes_count=True,
                schema=_REPLICAS, phrase=phrase, check=check, **more)


def _registry(*kinds: Kind) -> Mapping[str, Kind]:
    out = {k.name: k for k in kinds}
    if len(out) != len(kinds):
        raise ValueError("two expectation kinds share a name")
    return out


#: Every expectation kind, in the order errors list them. The one place a kind is defined.
KINDS: Mapping[str, Kind] = _registry(
    _replica_kind("reaches", takes_within=True, phrase=lambda e: _count(e, "=="),
                  check=_within(lambda x, n: x == n)),
    _replica_kind("at_least", takes_within=True, phrase=lambda e: _count(e, ">="),
                  check=_within(lambda x, n: x >= n)),
    _replica_kind("at_most", takes_within=True, phrase=lambda e: _count(e, "<="),
                  check=_within(lambda x, n: x <= n)),
    _replica_kind("holds", takes_for=True, check=_over_window(_holds),
                  phrase=lambda e: f"{e.count} replicas == {_fmt_num(e.value)} for "
                                   f"{_fmt_num(e.hold_for)}s without a break"),
    _replica_kind("stays", check=_over_window(_every_sample(lambda x, n: x == n)),
                  phrase=lambda e: f"{e.count} replicas == {_fmt_num(e.value)} for the "
                                   "whole phase"),
    _replica_kind("never_above", phase="optional",
                  check=_over_window(_every_sample(lambda x, n: x <= n)),
                  phrase=lambda e: f"{e.count} replicas <= {_fmt_num(e.value)} at every "
                                   "sample"),
    _replica_kind("never_below", phase="optional",
                  check=_over_window(_every_sample(lambda x, n: x >= n)),
                  phrase=lambda e: f"{e.count} replicas >= {_fmt_num(e.value)} at every "
                                   "sample"),
    Kind(name="max_replica_changes", phase="optional", takes_count=True,
         schema={"type": "integer", "minimum": 0}, check=_over_window(_changes),
         phrase=lambda e: f"at most {_fmt_num(e.value)} changes of {e.count} replicas"),
    _replica_kind("recovers", phase="optional", takes_within=True, check=_recovers,
                  phase_why="is judged after the faults of a phase",
                  phrase=lambda e: f"{e.count} replicas back to >= {_fmt_num(e.value)}"
                                   + (f" within {_fmt_num(e.within)}s" if e.within else "")
                                   + " after every fault"),
    Kind(name="max_redeliveries", phase="refused", schema={"type": "integer", "minimum": 0},
         check=_max_redeliveries,
         phrase=lambda e: f"at most {_fmt_num(e.value)} task(s) redelivered"),
    Kind(name="no_task_loss", phase="refused", flag=True, schema={"const": True},
         check=_no_task_loss,
         phrase=lambda e: "every published task processed, queue empty at the end"),
    Kind(name="latency_p95_ms", phase="refused",
         schema={"type": "number", "exclusiveMinimum": 0}, check=_latency,
         phrase=lambda e: f"API p95 latency <= {_fmt_num(e.value)} ms"),
    Kind(name="queue_wait_p95_s", phase="refused",
         schema={"type": "number", "exclusiveMinimum": 0}, check=_queue_wait,
         phrase=lambda e: f"queue wait p95 <= {_fmt_num(e.value)} s (publish to start, "
                          "every processed task)"),
    Kind(name="matches_twin", phase="refused",
         schema={"description": "replica-seconds within this many percent of the twin's "
                                "prediction (needs the scenario's twin: section)",
                 "type": "number", "exclusiveMinimum": 0, "maximum": 100},
         check=_matches_twin,
         phrase=lambda e: f"replica-seconds within +-{_fmt_num(e.value)} % of the twin's "
                          "prediction"),
    Kind(name="scaled_by", phase="required", metric_valued=True, check=_scaled_by,
         phase_why="is checked among one phase's scaling decisions",
         schema={"description": "a scale-up inside the phase whose reason names this metric",
                 "enum": list(SCALED_BY_METRICS)},
         phrase=lambda e: f"a scale-up whose reason names {e.metric}"),
)

#: Properties of a scenario's expectation item that are not kinds (they qualify one).
MODIFIERS = ("id", "description", "phase", "count", "within", "for")


def schema_mismatches(item_schema: Mapping[str, Any],
                      kinds: Mapping[str, Kind] | None = None) -> list[str]:
    """Where the scenario schema's expectation item and the registry disagree (empty: none).

    Every kind must be a property whose schema is the kind's ``schema``; every property
    that is not a modifier (``MODIFIERS``) must be a kind.
    """
    kinds = KINDS if kinds is None else kinds
    props: Mapping[str, Any] = item_schema.get("properties", {})
    out = [f"kind '{k}' is in the registry but not in the schema" for k in kinds
           if k not in props]
    out += [f"schema property '{p}' is not a registered kind" for p in props
            if p not in kinds and p not in MODIFIERS]
    out += [f"kind '{k}': schema {props[k]} differs from the registry's {dict(kind.schema)}"
            for k, kind in kinds.items() if k in props and props[k] != kind.schema]
    return out
