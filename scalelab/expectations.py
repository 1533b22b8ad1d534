"""Expectations: a scenario's checks evaluated against a finished run. Pure functions.

Inputs are the run record's parts (``scalelab/record.py``): the replica ``timeline``
(samples ``{t, spec, current, ready, ...}``), the ``phases`` as they ran (``{name, start,
end}``, unix seconds), the ``tasks`` accounting and the ``locust`` summary. Output is one
verdict per expectation, shaped as the record's ``verdicts`` items: ``{id, kind, phase,
passed, expected, observed, at, message}``; ``at`` is when the check was decided (met or
broken), or None.

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
from typing import Any

from scalelab.scenario import Expectation, Scenario

Sample = tuple[float, int]

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


def evaluate(
    scenario: Scenario, *, timeline: Sequence[Mapping[str, Any]],
    phases: Sequence[Mapping[str, Any]], tasks: Mapping[str, Any] | None,
    locust: Mapping[str, Any] | None,
    decisions: Sequence[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
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
                     run_start=run_start, decisions=decisions)
        for e in scenario.expectations
    ]


def evaluate_one(
    exp: Expectation, *, timeline: Sequence[Mapping[str, Any]],
    phases: Mapping[str, Mapping[str, Any]], tasks: Mapping[str, Any] | None,
    locust: Mapping[str, Any] | None, run_start: float | None,
    decisions: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Evaluate one expectation; never raises for missing data (that is a failed verdict)."""
    verdict = _Verdict(exp)
    if exp.kind == "no_task_loss":
        return _no_task_loss(verdict, tasks)
    if exp.kind == "latency_p95_ms":
        return _latency(verdict, locust)

    samples = [(float(s["t"]), int(s[exp.count])) for s in timeline
               if s.get(exp.count) is not None]
    if exp.phase is not None:
        phase = phases.get(exp.phase)
        if phase is None or phase.get("start") is None:
            return verdict.fail(observed="phase did not run",
                                message=f"phase '{exp.phase}' has no start time: it never ran")
        start = float(phase["start"])
        end = float(phase["end"]) if phase.get("end") is not None else float("inf")
    else:
        start = run_start if run_start is not None else float("-inf")
        end = float("inf")
    verdict.origin = start if start != float("-inf") else None

    if exp.kind == "scaled_by":
        return _scaled_by(verdict, decisions, start, end)
    if exp.kind in ("reaches", "at_least", "at_most"):
        return _within(verdict, samples, start, end)
    window = [s for s in samples if start <= s[0] < end]
    if not window:
        where = f"phase '{exp.phase}'" if exp.phase else "the run"
        return verdict.fail(observed="no samples",
                            message=f"no {exp.count} replica samples during {where}")
    if exp.kind == "holds":
        return _holds(verdict, window)
    if exp.kind == "stays":
        return _first_violation(verdict, window, lambda v: v == exp.value)
    if exp.kind == "never_above":
        return _first_violation(verdict, window, lambda v: v <= exp.value)
    if exp.kind == "never_below":
        return _first_violation(verdict, window, lambda v: v >= exp.value)
    if exp.kind == "max_replica_changes":
        return _changes(verdict, window)
    raise ValueError(f"unknown expectation kind {exp.kind!r}")


class _Verdict:
    """Builds the record's verdict dict; knows how to phrase the expectation."""

    def __init__(self, exp: Expectation) -> None:
        self.exp = exp
        self.origin: float | None = None
        self.expected = self._expected()

    def _expected(self) -> str:
        e, n = self.exp, _fmt_num(self.exp.value)
        scope = f" in phase '{e.phase}'" if e.phase else " over the run"
        what = f"{e.count} replicas"
        texts = {
            "reaches": f"{what} == {n} within {_fmt_num(e.within)}s" if e.within
            else f"{what} == {n}",
            "at_least": f"{what} >= {n}" + (f" within {_fmt_num(e.within)}s" if e.within else ""),
            "at_most": f"{what} <= {n}" + (f" within {_fmt_num(e.within)}s" if e.within else ""),
            "holds": f"{what} == {n} for {_fmt_num(e.hold_for)}s without a break",
            "stays": f"{what} == {n} for the whole phase",
            "never_above": f"{what} <= {n} at every sample",
            "never_below": f"{what} >= {n} at every sample",
            "max_replica_changes": f"at most {n} changes of {what}",
            "no_task_loss": "every published task processed, queue empty at the end",
            "latency_p95_ms": f"API p95 latency <= {n} ms",
            "scaled_by": f"a scale-up whose reason names {e.metric}",
        }
        scoped = e.kind not in ("no_task_loss", "latency_p95_ms")
        return texts[e.kind] + (scope if scoped else "")

    def rel(self, t: float) -> str:
        return f"+{t - self.origin:.1f}s" if self.origin is not None else f"t={t:.1f}"

    def _done(self, passed: bool, observed: str, at: float | None, message: str | None
              ) -> dict[str, Any]:
        status = "met" if passed else "NOT met"
        return {
            "id": self.exp.id, "kind": self.exp.kind, "phase": self.exp.phase,
            "passed": passed, "expected": self.expected, "observed": observed, "at": at,
            "message": message or f"{self.exp.id}: {status}: expected {self.expected}; "
                                  f"observed {observed}",
        }

    def ok(self, *, observed: str, at: float | None = None, message: str | None = None
           ) -> dict[str, Any]:
        return self._done(True, observed, at, message)

    def fail(self, *, observed: str, at: float | None = None, message: str | None = None
             ) -> dict[str, Any]:
        return self._done(False, observed, at, message)


def _fmt_num(x: float | None) -> str:
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _summary(samples: Sequence[Sample], count: str) -> str:
    values = [v for _, v in samples]
    return f"{count} ranged {min(values)}..{max(values)}, last {values[-1]}"


def _within(v: _Verdict, samples: Sequence[Sample], start: float, end: float
            ) -> dict[str, Any]:
    e = v.exp
    limit = start + e.within if e.within is not None else end
    window = [s for s in samples if start <= s[0] <= limit]
    test: Callable[[int], bool] = {
        "reaches": lambda x: x == e.value,
        "at_least": lambda x: x >= e.value,
        "at_most": lambda x: x <= e.value,
    }[e.kind]
    for t, value in window:
        if test(value):
            return v.ok(observed=f"{e.count}={value} at {v.rel(t)}", at=t)
    if not window:
        return v.fail(observed="no samples",
                      message=f"no {e.count} replica samples between {v.rel(start)} and "
                              f"{v.rel(limit)} of phase '{e.phase}'")
    cut = "" if window[-1][0] >= limit - 1e-9 or limit == end else \
        f" (samples stop at {v.rel(window[-1][0])})"
    return v.fail(observed=f"{_summary(window, e.count)} by {v.rel(limit)}{cut}",
                  at=min(limit, window[-1][0]) if limit != float("inf") else window[-1][0])


def _holds(v: _Verdict, window: Sequence[Sample]) -> dict[str, Any]:
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


def _first_violation(v: _Verdict, window: Sequence[Sample], good: Callable[[int], bool]
                     ) -> dict[str, Any]:
    for t, value in window:
        if not good(value):
            return v.fail(observed=f"{v.exp.count}={value} at {v.rel(t)}", at=t)
    return v.ok(observed=f"{_summary(window, v.exp.count)} over {len(window)} samples")


def _changes(v: _Verdict, window: Sequence[Sample]) -> dict[str, Any]:
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


def _no_task_loss(v: _Verdict, tasks: Mapping[str, Any] | None) -> dict[str, Any]:
    if not tasks:
        return v.fail(observed="no task accounting", message="no task accounting in the run")
    published = int(tasks.get("published", 0))
    processed = int(tasks.get("processed", 0))
    lost = int(tasks.get("lost", max(0, published - processed)))
    duplicated = int(tasks.get("duplicated", 0))
    left = tasks.get("queue_left")
    if isinstance(left, Mapping):
        queued: int | None = int(left.get("ready") or 0) + int(left.get("unacked") or 0)
    elif isinstance(left, int | float):
        queued = int(left)
    else:
        queued = None
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


def _latency(v: _Verdict, locust: Mapping[str, Any] | None) -> dict[str, Any]:
    p95 = None if not locust else locust.get("p95_ms")
    if p95 is None:
        return v.fail(observed="no Locust results",
                      message=f"{v.exp.id}: no API p95 latency: Locust results are missing")
    observed = f"p95 {_fmt_num(round(float(p95), 1))} ms over {locust.get('requests', '?')} "\
               "requests" if locust else ""
    if float(p95) <= v.exp.value:
        return v.ok(observed=observed)
    return v.fail(observed=observed)


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


def _scaled_by(v: _Verdict, decisions: Sequence[Mapping[str, Any]] | None, start: float,
               end: float) -> dict[str, Any]:
    metric = str(v.exp.metric)
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


def _size(n: Any) -> str:
    return "?" if n is None or int(n) < 0 else str(int(n))
