"""Compare two runs scenario by scenario, as ``esrally compare`` does for races.

Every figure comes from ``scalelab.report.summary.summarize`` (the same numbers the index
shows). A difference is highlighted only beyond the noise margin, and each metric knows
which direction is better, so "time to peak went from 54 s to 81 s" reads as a
regression while "tasks processed went up" reads as an improvement.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scalelab.errors import ConfigError
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


def _read(run: Path, side: str) -> dict[str, ScenarioRun]:
    """A run's scenarios by name; an unreadable record refuses the comparison (a partial one
    would read as "scenario only in the other run"), naming the run, the file and why."""
    try:
        return {s.name: s for s in load_run(run)}
    except ConfigError as err:
        raise ConfigError(f"the {side} run {run.name} cannot be read: {err.message}",
                          fix=err.fix) from err


def compare_runs(baseline: Path, contender: Path, *, margin: float = DEFAULT_MARGIN) -> Comparison:
    """Compare two run folders; scenarios are matched by name."""
    base = _read(baseline, "baseline")
    cont = _read(contender, "contender")
    rows: list[Row] = []
    statuses: dict[str, tuple[str | None, str | None]] = {}
    pages: dict[str, tuple[Path | None, Path | None]] = {}
    for name in [n for n in base if n in cont]:
        b, c = base[name].summary, cont[name].summary
        statuses[name] = (b["status"], c["status"])
        pages[name] = (base[name].path / "index.html", cont[name].path / "index.html")
        for m in METRICS:
            bv, cv = b.get(m.key), c.get(m.key)
            diff = pct = None
            if isinstance(bv, int | float) and isinstance(cv, int | float):
                diff = cv - bv
                pct = diff / abs(bv) * 100.0 if bv else None
            rows.append(Row(scenario=name, metric=m, baseline=bv, contender=cv, diff=diff,
                            pct=pct, verdict=classify(m, bv, cv, margin=margin)))
    return Comparison(
        baseline=baseline.name, contender=contender.name, margin=margin, rows=rows,
        statuses=statuses, pages=pages,
        only_in_baseline=[n for n in base if n not in cont],
        only_in_contender=[n for n in cont if n not in base],
    )


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
                      "REGRESSION" if bs == "passed" and cs != "passed" else ""])
    for r in comp.rows:
        diff, pct = _diff_text(r)
        lines.append([r.scenario, r.metric.label, format_value(r.baseline, r.metric.unit),
                      format_value(r.contender, r.metric.unit), diff, pct, _MARKS[r.verdict]])
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
    out.append(f"{len(comp.regressions)} regression(s) beyond the margin.")
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
