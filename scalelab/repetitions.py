"""Repeated runs of one scenario: "k of N" verdicts, the spread of each figure, and whether a
change between two sets of repetitions is more than noise.

With a single run per side, ``scalelab compare`` can only use a fixed noise margin. With
repetitions it uses their spread: a one-sided Mann-Whitney U test (scipy.stats.mannwhitneyu,
exact for small samples) asks whether the contender's values are stochastically worse (or
better) than the baseline's. It makes no normality assumption (timings of a control loop
are lumpy: multiples of the sync period) and needs at least ``MIN_FOR_TEST`` values per
side: with 4 and 4 the smallest one-sided p-value is 1/70 ≈ 0.014, below ``ALPHA``; with 3
and 3 it is 0.05, which can never be below it. Fewer values fall back to the margin on
the medians, and the comparison says so.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy.stats import mannwhitneyu

#: Significance level of the one-sided test.
ALPHA = 0.05
#: Fewest values per side for the test (see the module docstring).
MIN_FOR_TEST = 4
#: How a repetition's folder is named: ``<scenario>.r<k>`` (k >= 2; scenario names cannot
#: contain a dot, so the suffix cannot collide with a name).
REPETITION_SEP = ".r"

Better = str | None  # "lower", "higher" or None (no direction): Metric.better


def folder_name(scenario: str, index: int) -> str:
    """Repetition ``index`` (1-based) of ``scenario``: the first keeps the plain name."""
    return scenario if index <= 1 else f"{scenario}{REPETITION_SEP}{index}"


@dataclass(frozen=True, kw_only=True)
class Spread:
    """Median, min, max and coefficient of variation (stdev / mean) of one figure."""

    n: int
    median: float
    low: float
    high: float
    #: None when the mean is 0 or there is a single value.
    cv: float | None

    @classmethod
    def of(cls, values: Iterable[float | int | None]) -> Spread | None:
        xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if not xs:
            return None
        mean = statistics.fmean(xs)
        cv = statistics.stdev(xs) / abs(mean) if len(xs) > 1 and mean else None
        return cls(n=len(xs), median=statistics.median(xs), low=min(xs), high=max(xs), cv=cv)

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "median": self.median, "min": self.low, "max": self.high,
                "cv": self.cv}


def k_of_n(verdicts: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, tuple[int, int]]:
    """Per expectation id: (repetitions where it held, repetitions that judged it)."""
    out: dict[str, list[int]] = {}
    for rep in verdicts:
        for v in rep:
            held = out.setdefault(str(v["id"]), [0, 0])
            held[1] += 1
            held[0] += 1 if v.get("passed") else 0
    return {k: (v[0], v[1]) for k, v in out.items()}


@dataclass(frozen=True, kw_only=True)
class Change:
    """How the contender's values of one figure compare with the baseline's."""

    #: better / worse / changed (no direction) / same / n/a
    verdict: str
    #: "mann-whitney" or "margin" (too few values for the test, or no values).
    method: str
    #: The one-sided p-value in the direction of the move (test only).
    p_value: float | None = None


def classify_spread(baseline: Sequence[float], contender: Sequence[float], *, better: Better,
                    margin: float, alpha: float = ALPHA) -> Change:
    """better / worse / same for two sets of repetitions of one figure."""
    if not baseline or not contender:
        return Change(verdict="n/a", method="margin")
    b_med, c_med = statistics.median(baseline), statistics.median(contender)
    if min(len(baseline), len(contender)) < MIN_FOR_TEST:
        return Change(verdict=_by_margin(b_med, c_med, better=better, margin=margin),
                      method="margin")
    if len(set(baseline) | set(contender)) == 1:
        return Change(verdict="same", method="mann-whitney", p_value=1.0)
    p_up = float(mannwhitneyu(contender, baseline, alternative="greater").pvalue)
    p_down = float(mannwhitneyu(contender, baseline, alternative="less").pvalue)
    up, p = (True, p_up) if p_up <= p_down else (False, p_down)
    if p >= alpha:
        return Change(verdict="same", method="mann-whitney", p_value=p)
    if better is None:
        return Change(verdict="changed", method="mann-whitney", p_value=p)
    improved = (not up) if better == "lower" else up
    return Change(verdict="better" if improved else "worse", method="mann-whitney", p_value=p)


def _by_margin(b: float, c: float, *, better: Better, margin: float) -> str:
    diff = c - b
    if diff == 0 or (b != 0 and abs(diff) / abs(b) <= margin):
        return "same"
    if better is None:
        return "changed"
    improved = diff < 0 if better == "lower" else diff > 0
    return "better" if improved else "worse"
