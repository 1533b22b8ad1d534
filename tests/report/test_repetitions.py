"""Repetitions: spread, "k of N", and a regression call that uses the spread."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from scalelab.comparison import compare_runs, format_table
from scalelab.repetitions import Spread, classify_spread, folder_name, k_of_n
from scalelab.report.render import read_run, render_index, repetition_groups


def test_spread_of_a_figure() -> None:
    s = Spread.of([10, 12, 14, None, 16])
    assert s is not None
    assert (s.n, s.median, s.low, s.high) == (4, 13.0, 10.0, 16.0)
    # stdev of 10,12,14,16 = 2.582; mean 13
    assert s.cv == pytest.approx(0.19861, rel=1e-4)
    assert Spread.of([5]) == Spread(n=1, median=5.0, low=5.0, high=5.0, cv=None)
    assert Spread.of([None]) is None


def test_k_of_n_counts_each_expectation_over_the_repetitions() -> None:
    reps = [[{"id": "up", "passed": True}, {"id": "loss", "passed": True}],
            [{"id": "up", "passed": False}, {"id": "loss", "passed": True}],
            [{"id": "up", "passed": True}]]
    assert k_of_n(reps) == {"up": (2, 3), "loss": (2, 2)}


def test_folder_names_keep_the_first_repetition_plain() -> None:
    assert [folder_name("hpa-cpu", k) for k in (1, 2, 3)] == ["hpa-cpu", "hpa-cpu.r2",
                                                              "hpa-cpu.r3"]


def test_a_clear_shift_is_a_regression_with_enough_repetitions() -> None:
    base = [30.0, 31.0, 29.0, 28.0, 32.0]  # no ties: scipy computes the exact p
    worse = [45.0, 46.0, 44.0, 47.0, 43.0]
    change = classify_spread(base, worse, better="lower", margin=0.05)
    assert (change.verdict, change.method) == ("worse", "mann-whitney")
    # exact one-sided p for complete separation of 5 vs 5: 1 / C(10, 5) = 1/252
    assert change.p_value == pytest.approx(1 / 252)
    assert classify_spread(worse, base, better="lower", margin=0.05).verdict == "better"
    assert classify_spread(base, worse, better=None, margin=0.05).verdict == "changed"


def test_noise_beyond_the_margin_is_not_called_a_regression_when_the_spread_covers_it(
) -> None:
    # medians 30 vs 33 (+10 %, beyond a 5 % margin) but the values interleave
    base = [25.0, 30.0, 36.0, 28.0, 34.0]
    cont = [27.0, 33.0, 38.0, 24.0, 35.0]
    change = classify_spread(base, cont, better="lower", margin=0.05)
    assert change.verdict == "same" and change.method == "mann-whitney"
    assert change.p_value is not None and change.p_value >= 0.05


def test_too_few_repetitions_fall_back_to_the_margin_and_say_so() -> None:
    change = classify_spread([30.0, 31.0, 29.0], [45.0, 46.0, 44.0], better="lower",
                             margin=0.05)
    assert (change.verdict, change.method, change.p_value) == ("worse", "margin", None)
    assert classify_spread([30.0], [31.0], better="lower", margin=0.05).verdict == "same"
    assert classify_spread([], [31.0], better="lower", margin=0.05).verdict == "n/a"


# -- compare over stored repetitions ------------------------------------------------------

DATA = Path(__file__).parent / "data" / "20261127T143137Z-024c9f" / "hpa-cpu"


def _run_with_repetitions(root: Path, name: str, p95s: list[float]) -> Path:
    """A run folder holding one repetition per value, each a copy of a real stored record
    whose API p95 is that value (series.json is optional for compare)."""
    record = json.loads((DATA / "run.json").read_text())
    run = root / name
    for k, p95 in enumerate(p95s, start=1):
        rec = copy.deepcopy(record)
        rec["locust"]["p95_ms"] = p95
        rec["started_at"] = record["started_at"] + k
        folder = run / folder_name(rec["scenario"]["name"], k)
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps(rec))
    return run


def test_compare_calls_a_regression_from_the_spread_of_repetitions(tmp_path: Path) -> None:
    base = _run_with_repetitions(tmp_path, "base", [100, 102, 98, 101, 99])
    worse = _run_with_repetitions(tmp_path, "worse", [130, 128, 131, 127, 126])
    comp = compare_runs(base, worse)
    row = next(r for r in comp.rows if r.metric.key == "api_p95_ms")
    assert (row.verdict, row.method) == ("worse", "mann-whitney")
    assert row.baseline == 100.0 and row.contender == 128.0
    assert row.baseline_spread is not None and row.baseline_spread.n == 5
    status = comp.statuses["hpa-cpu"][0]
    assert status is not None and status.endswith("5/5")
    text = format_table(comp)
    assert "100.0 ms (median of 5, cv 2 %)" in text
    assert "REGRESSION (U test p=0.004)" in text
    # figures identical in every repetition are "same", not a regression
    same = next(r for r in comp.rows if r.metric.key == "peak_replicas")
    assert same.verdict == "same"


def test_interleaved_repetitions_are_noise_even_beyond_the_margin(tmp_path: Path) -> None:
    base = _run_with_repetitions(tmp_path, "base", [90, 100, 120, 95, 115])
    cont = _run_with_repetitions(tmp_path, "cont", [92, 110, 125, 88, 118])
    row = next(r for r in compare_runs(base, cont).rows if r.metric.key == "api_p95_ms")
    assert row.pct is not None and row.pct > 5, "the medians differ beyond the 5 % margin"
    assert (row.verdict, row.method) == ("same", "mann-whitney")


def test_the_index_shows_k_of_n_and_the_spread_of_a_repeated_scenario(tmp_path: Path) -> None:
    run = _run_with_repetitions(tmp_path, "20261130T000000Z-aaaaaa", [100, 101, 99, 102])
    # one repetition failed one expectation; min_pass 3 of 4 tolerates it
    for k in range(1, 5):
        path = run / folder_name("hpa-cpu", k) / "run.json"
        rec = json.loads(path.read_text())
        rec["repetition"] = {"index": k, "of": 4, "min_pass": 3}
        rec["timeline"] = [{**s, "t": s["t"] + 5 * k} if s["t"] > rec["phases"][1]["start"]
                           else s for s in rec["timeline"]]
        if k == 2:
            rec["status"] = "failed"
            rec["verdicts"][1]["passed"] = False
        path.write_text(json.dumps(rec))
    scenarios = read_run(run)[0]
    (group,) = repetition_groups(scenarios)
    assert (group["n"], group["passed"], group["min_pass"], group["status"]) == (4, 3, 3,
                                                                                 "passed")
    failed_id = scenarios[0].record["verdicts"][1]["id"]
    assert group["expectations"][failed_id] == (3, 4)
    first_up = dict((m.key, sp) for m, sp in group["spreads"])["time_to_first_scale_up"]
    assert first_up is not None and first_up.n == 4 and first_up.high - first_up.low == 15
    page = render_index(tmp_path).read_text()
    assert 'id="repetitions"' in page and "3 of 4 (min_pass 3)" in page
    assert f"{failed_id}: 3/4" in page
    assert "Latest run 20261130T000000Z-aaaaaa" in page
    latest = page[page.index("Latest run"):page.index('id="latest"')]
    assert "passed" in latest and "failed" not in latest, "min_pass met: the run passed"
