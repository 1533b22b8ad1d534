"""Benchmark: how long rendering takes and how big the pages are (prints figures only).

Goals from the issue: rendering <= 2 s, three scenario pages <= 3 MB. Run with
``tox -e bench``; nothing here asserts on speed.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from scalelab import record
from scalelab.report.render import render_index, render_reports, render_scenario

DATA = Path(__file__).resolve().parents[1] / "report" / "data"


@pytest.mark.bench
def test_bench_render(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    shutil.copytree(DATA, reports)
    runs = record.find_runs(reports)
    started = time.perf_counter()
    written = render_reports(reports)
    total = time.perf_counter() - started
    scenarios = sorted(runs[0].glob("*/run.json"))
    per_page = []
    for path in scenarios:
        t = time.perf_counter()
        render_scenario(path.parent)
        per_page.append(time.perf_counter() - t)
    t = time.perf_counter()
    render_index(reports)
    index_s = time.perf_counter() - t
    sizes = [p.parent.joinpath("index.html").stat().st_size for p in scenarios]
    print(f"\nreport: {len(written)} pages from {len(runs)} runs in {total:.3f} s "
          f"(goal <= 2 s)")
    print(f"report: scenario page render {min(per_page):.3f}-{max(per_page):.3f} s each, "
          f"index {index_s:.3f} s")
    print(f"report: latest run's {len(sizes)} scenario pages {sum(sizes) / 1e6:.2f} MB "
          f"(goal <= 3 MB for three), largest {max(sizes) / 1e3:.0f} kB")


@pytest.mark.bench
def test_bench_render_at_the_point_limit(tmp_path: Path) -> None:
    """Worst case: every series at Prometheus' 11,000-point limit (downsampled to draw)."""
    import json

    from scalelab.queries import MAX_POINTS

    src = sorted(DATA.glob("*/*/run.json"))[0].parent
    dst = tmp_path / "run" / src.name
    shutil.copytree(src, dst)
    series = json.loads((dst / "series.json").read_text())
    start, end = series["start"], series["end"]
    step = (end - start) / (MAX_POINTS - 1)
    for entry in series["queries"].values():
        for s in entry["series"]:
            vals = [v for _, v in s["values"]] or [0.0]
            s["values"] = [[start + i * step, vals[i * len(vals) // MAX_POINTS]]
                           for i in range(MAX_POINTS)]
    (dst / "series.json").write_text(json.dumps(series))
    t = time.perf_counter()
    page = render_scenario(dst)
    took = time.perf_counter() - t
    print(f"\nreport: scenario page with {MAX_POINTS}-point series: {took:.3f} s, "
          f"{page.stat().st_size / 1e3:.0f} kB page")
