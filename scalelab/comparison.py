"""Compare two runs scenario by scenario, as ``esrally compare`` does for races.

Every figure comes from ``scalelab.report.summary.summarize`` (the same numbers the index
shows). A difference is highlighted only beyond the noise margin, and each metric knows
which direction is better, so "time to peak went from 54 s to 81 s" reads as a
regression while "tasks processed went up" reads as an improvement.

A scenario repeated (``--repeat N``) has one record per repetition; its figures compare as
medians, and when both sides have enough repetitions the call is the spread's, not the
margin's (``scalelab.repetitions.classify_spread``: a one-sided Mann-Whitney U test).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scalelab.errors import ConfigError
from scalelab.repetitions import MIN_FOR_TEST, Spread, classify_spread
from scalelab.report.render import ScenarioRun, environment, load_run
from scalelab.report.summary import METRICS, Metric, format_value

#: Default noise margin: differences within 5 % are not highlighted.
DEFAULT_MARGIN = 0.05


@dataclass(frozen=True, kw_only=True)
class Row:
    """One scenario x metric line of the comparison."""

    scenario: str
    metric: Metric
    baseline: Any
    contender: Any
    #: contender - baseline (None when either is missing).
    diff: float | None
    #: diff as a percentage of the baseline (None when the baseline is 0 or missing).
    pct: float | None
    #: "better" | "worse" (beyond the margin, in the metric's direction), "changed"
    #: (beyond the margin, metric without direction), "same" or "n/a".
    verdict: str
    #: How the verdict was reached: "margin" or "mann-whitney" (repetitions on both sides).
    method: str = "margin"
    p_value: float | None = None
    #: The spread of each side's repetitions (None: one run or no value).
    baseline_spread: Spread | None = None
    contender_spread: Spread | None = None


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """The result of ``compare_runs``: rows plus which scenarios only one run has."""

    baseline: str
    contender: str
    margin: float
    rows: list[Row]
    statuses: dict[str, tuple[str | None, str | None]]
    only_in_baseline: list[str] = field(default_factory=list)
    only_in_contender: list[str] = field(default_factory=list)
    pages: dict[str, tuple[Path | None, Path | None]] = field(default_factory=dict)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "worse"]


def classify(metric: Metric, baseline: Any, contender: Any, *, margin: float) -> str:
    """better / worse / changed / same / n/a for one pair of values."""
    if not isinstance(baseline, int | float) or not isinstance(contender, int | float):
        return "same" if baseline == contender else "n/a"
    diff = contender - baseline
    if diff == 0:
        return "same"
    if baseline != 0 and abs(diff) / abs(baseline) <= margin:
        return "same"
    if metric.better is None:
        return "changed"
    improved = diff < 0 if metric.better == "lower" else diff > 0
    return "better" if improved else "worse"


def _read(run: Path, side: str) -> dict[str, list[ScenarioRun]]:
    """A run's scenarios by name, each with its repetitions in the order they ran; an
    unreadable record refuses the comparison (a partial one would read as "scenario only in
    the other run"), naming the run, the file and why."""
    try:
        runs = load_run(run)
    except ConfigError as err:
        raise ConfigError(f"the {side} run {run.name} cannot be read: {err.message}",
                          fix=err.fix) from err
    out: dict[str, list[ScenarioRun]] = {}
    for s in runs:
        out.setdefault(s.name, []).append(s)
    return out


def _numbers(runs: list[ScenarioRun], key: str) -> list[float]:
    return [float(r.summary[key]) for r in runs
            if isinstance(r.summary.get(key), int | float)]


def _row(name: str, m: Metric, base: list[ScenarioRun], cont: list[ScenarioRun], *,
         margin: float) -> Row:
    """One metric of one scenario: single runs by value, repetitions by their spread."""
    if len(base) == 1 and len(cont) == 1:
        bv, cv = base[0].summary.get(m.key), cont[0].summary.get(m.key)
        diff = pct = None
        if isinstance(bv, int | float) and isinstance(cv, int | float):
            diff = cv - bv
            pct = diff / abs(bv) * 100.0 if bv else None
        return Row(scenario=name, metric=m, baseline=bv, contender=cv, diff=diff, pct=pct,
                   verdict=classify(m, bv, cv, margin=margin))
    bs, cs = Spread.of(_numbers(base, m.key)), Spread.of(_numbers(cont, m.key))
    b_med = bs.median if bs else None
    c_med = cs.median if cs else None
    diff = c_med - b_med if b_med is not None and c_med is not None else None
    pct = diff / abs(b_med) * 100.0 if diff is not None and b_med else None
    change = classify_spread(_numbers(base, m.key), _numbers(cont, m.key), better=m.better,
                             margin=margin)
    return Row(scenario=name, metric=m, baseline=b_med, contender=c_med, diff=diff, pct=pct,
               verdict=change.verdict, method=change.method, p_value=change.p_value,
               baseline_spread=bs, contender_spread=cs)


def compare_runs(baseline: Path, contender: Path, *, margin: float = DEFAULT_MARGIN) -> Comparison:
    """Compare two run folders; scenarios are matched by name."""
    base = _read(baseline, "baseline")
    cont = _read(contender, "contender")
    rows: list[Row] = []
    statuses: dict[str, tuple[str | None, str | None]] = {}
    pages: dict[str, tuple[Path | None, Path | None]] = {}
    for name in [n for n in base if n in cont]:
        statuses[name] = (_status(base[name]), _status(cont[name]))
        pages[name] = (base[name][0].path / "index.html", cont[name][0].path / "index.html")
        rows.extend(_row(name, m, base[name], cont[name], margin=margin) for m in METRICS)
    return Comparison(
        baseline=baseline.name, contender=contender.name, margin=margin, rows=rows,
        statuses=statuses, pages=pages,
        only_in_baseline=[n for n in base if n not in cont],
        only_in_contender=[n for n in cont if n not in base],
    )


def _status(runs: list[ScenarioRun]) -> str:
    """A scenario's status; over repetitions "passed 4/5" unless all agree."""
    statuses = [str(r.summary["status"]) for r in runs]
    if len(set(statuses)) == 1:
        return statuses[0] if len(runs) == 1 else f"{statuses[0]} {len(runs)}/{len(runs)}"
    return f"passed {statuses.count('passed')}/{len(runs)}"


def _value_text(value: Any, spread: Spread | None, unit: str) -> str:
    """A value, or over repetitions its median with n and the coefficient of variation."""
    if spread is None or spread.n < 2:
        return format_value(value, unit)
    cv = f", cv {spread.cv * 100:.0f} %" if spread.cv is not None else ""
    return f"{format_value(value, unit)} (median of {spread.n}{cv})"


def all_passed(status: str | None) -> bool:
    """``passed``, or ``passed N/N`` over repetitions."""
    if status is None:
        return False
    word, _, count = status.partition(" ")
    if word != "passed":
        return False
    if not count:
        return True
    k, _, n = count.partition("/")
    return k == n


def _diff_text(row: Row) -> tuple[str, str]:
    if row.diff is None:
        return "–", "–"
    sign = "+" if row.diff > 0 else ""
    diff = f"{sign}{format_value(row.diff, row.metric.unit)}"
    if row.pct is None:
        return diff, "–" if row.diff == 0 else "new"
    return diff, f"{'+' if row.pct > 0 else ''}{row.pct:.1f} %"


_MARKS = {"better": "improved", "worse": "REGRESSION", "changed": "changed", "same": "",
          "n/a": ""}


def format_table(comp: Comparison) -> str:
    """The comparison as a plain-text table (what ``scalelab compare`` prints)."""
    header = ["scenario", "metric", "baseline", "contender", "diff", "%", ""]
    lines = [header]
    for name, (bs, cs) in comp.statuses.items():
        lines.append([name, "verdict", bs or "–", cs or "–", "", "",
                      "REGRESSION" if all_passed(bs) and not all_passed(cs) else ""])
    for r in comp.rows:
        diff, pct = _diff_text(r)
        mark = _MARKS[r.verdict]
        if r.method == "mann-whitney" and r.p_value is not None:
            mark = f"{mark} (U test p={r.p_value:.3f})".strip()
        lines.append([r.scenario, r.metric.label, _value_text(r.baseline, r.baseline_spread,
                                                                 r.metric.unit),
                      _value_text(r.contender, r.contender_spread, r.metric.unit), diff, pct,
                      mark])
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(header))]
    out = [f"Comparing baseline {comp.baseline} with contender {comp.contender} "
           f"(noise margin {comp.margin * 100:g} %)", ""]
    for i, row in enumerate(lines):
        out.append("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    for label, names in (("only in baseline", comp.only_in_baseline),
                         ("only in contender", comp.only_in_contender)):
        if names:
            out.append(f"{label}: {', '.join(names)}")
    tested = any(r.method == "mann-whitney" for r in comp.rows)
    out.append(f"{len(comp.regressions)} regression(s) beyond the margin"
               + (f" or, with >= {MIN_FOR_TEST} repetitions a side, significant in a one-sided "
                  "Mann-Whitney U test (p < 0.05)." if tested else "."))
    return "\n".join(out)


def render_html(comp: Comparison, out: Path, *, reports_dir: Path | None = None) -> Path:
    """Write the comparison page; links point at both runs' scenario pages if rendered."""
    out.parent.mkdir(parents=True, exist_ok=True)

    def rel(p: Path | None) -> str | None:
        return os.path.relpath(p, out.parent) if p is not None and p.exists() else None

    rows = []
    for r in comp.rows:
        diff, pct = _diff_text(r)
        rows.append({"row": r, "diff": diff, "pct": pct, "mark": _MARKS[r.verdict]})
    page = environment().get_template("compare.html.j2").render(
        comp=comp, rows=rows,
        links={n: (rel(b), rel(c)) for n, (b, c) in comp.pages.items()},
        generated=datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        root=(os.path.relpath(reports_dir, out.parent) + "/"
              if reports_dir is not None and (reports_dir / "index.html").exists() else None),
    )
    out.write_text(page)
    return out


def parse_margin(text: str) -> float:
    """A margin in percent (``5`` or ``5%``) as a fraction (0.05)."""
    value = float(text.strip().rstrip("%"))
    if value < 0:
        raise ValueError("the margin cannot be negative")
    return value / 100.0
