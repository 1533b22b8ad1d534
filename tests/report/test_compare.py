"""scalelab compare: direction-aware, margin-aware differences between two runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scalelab import cli
from scalelab.comparison import classify, compare_runs, format_table, parse_margin, render_html
from scalelab.report.summary import METRICS

TIME_TO_PEAK = next(m for m in METRICS if m.key == "time_to_peak")
PROCESSED = next(m for m in METRICS if m.key == "tasks_processed")
RPS = next(m for m in METRICS if m.key == "locust_rps")


def test_classify_follows_direction_and_margin() -> None:
    assert classify(TIME_TO_PEAK, 40.0, 50.0, margin=0.05) == "worse"
    assert classify(TIME_TO_PEAK, 40.0, 41.0, margin=0.05) == "same"
    assert classify(TIME_TO_PEAK, 40.0, 30.0, margin=0.05) == "better"
    assert classify(RPS, 10.0, 12.0, margin=0.05) == "better"
    assert classify(PROCESSED, 10, 20, margin=0.05) == "changed"  # no direction
    assert classify(TIME_TO_PEAK, None, 3.0, margin=0.05) == "n/a"
    assert classify(TIME_TO_PEAK, 0, 1, margin=0.5) == "worse"  # from zero: always beyond


def test_parse_margin() -> None:
    assert parse_margin("5") == 0.05
    assert parse_margin("2.5%") == 0.025
    with pytest.raises(ValueError):
        parse_margin("-1")


def _shift_run(src: Path, dst: Path, *, factor: float) -> Path:
    """A copy of ``src`` whose timeline runs ``factor`` times slower after load start."""
    shutil.copytree(src, dst)
    for path in dst.glob("*/run.json"):
        rec = json.loads(path.read_text())
        rec["run_id"] = dst.name
        t0 = rec["phases"][0]["start"]
        for s in rec["timeline"]:
            s["t"] = t0 + (s["t"] - t0) * factor
        for p in rec["phases"]:
            p["start"] = t0 + (p["start"] - t0) * factor
            p["end"] = t0 + (p["end"] - t0) * factor
        path.write_text(json.dumps(rec))
    return dst


@pytest.mark.parametrize(("factor", "flagged"), [(1.5, True), (1.02, False)])
def test_slower_contender_is_flagged_only_beyond_the_margin(
        reports: Path, run_ids: list[str], tmp_path: Path, factor: float,
        flagged: bool) -> None:
    base = reports / run_ids[-1]
    slower = _shift_run(base, tmp_path / "contender", factor=factor)
    comp = compare_runs(base, slower, margin=0.05)
    peaks = [r for r in comp.rows if r.metric.key == "time_to_peak" and r.baseline]
    assert peaks, "the baseline needs a scenario that scaled up"
    for row in peaks:
        assert row.contender > row.baseline
        assert (row.verdict == "worse") is flagged
    assert ("REGRESSION" in format_table(comp)) is flagged


def test_compare_page_and_cli(reports: Path, run_ids: list[str],
                              capsys: pytest.CaptureFixture[str]) -> None:
    base, cont = run_ids[-1], run_ids[0]
    assert cli.main(["compare", base, cont, "--reports-dir", str(reports),
                     "--margin", "5"]) == 0
    out = capsys.readouterr().out
    assert f"baseline {base}" in out and "time to first scale-up" in out
    page = reports / f"compare-{base}-vs-{cont}.html"
    html = page.read_text()
    assert 'id="metrics"' in html and "noise margin" in html.lower()
    comp = compare_runs(reports / base, reports / cont)
    other = render_html(comp, reports / "sub" / "c.html", reports_dir=reports)
    assert other.exists()
    assert cli.main(["compare", base, cont, "--reports-dir", str(reports),
                     "--margin", "lots"]) == 2
    assert "--margin" in capsys.readouterr().err
