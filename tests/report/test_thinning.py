"""Chart thinning: a long series is drawn with at most about ``Layout.max_points`` points,
and what thinning must not lose (a spike, a dip, a gap in the data) is still drawn.

Series from real runs are a few hundred points, below the threshold, so these build the
long ones (a 2-hour run at 1 s is 7200 points) and read the SVG path the chart draws.
"""

from __future__ import annotations

import re

import pytest

from scalelab.report.charts import Layout, Line, line_chart

LAYOUT = Layout()
PLOT_TOP = LAYOUT.top
PLOT_BOTTOM = LAYOUT.height - LAYOUT.bottom


def _paths(svg: str) -> list[str]:
    return re.findall(r'<path class="(?:line|target)" d="([^"]*)"', svg)


def _vertices(d: str) -> list[tuple[str, float]]:
    """(command, y) of every vertex of a path: ``M x y``, ``L x y`` or ``H x V y``."""
    return [(m.group(1) or "H", float(m.group(2) or m.group(3)))
            for m in re.finditer(r"([ML])[\d.]+ ([\d.]+)|H[\d.]+V([\d.]+)", d)]


def _chart(points: list[tuple[float, float | None]], *, step: bool = False) -> str:
    t1 = max(t for t, _ in points)
    return str(line_chart(chart_id="c", title="t", unit="u", t0=0.0, t1=t1,
                          lines=[Line(name="series", points=points, step=step)]))


def _y_of(value: float, ymax: float) -> float:
    """Where the chart puts ``value`` when its y axis is [0, ymax] (ymax a round tick)."""
    return PLOT_BOTTOM - value / ymax * (PLOT_BOTTOM - PLOT_TOP)


@pytest.mark.parametrize("step", [False, True])
def test_a_long_series_is_thinned_to_the_layouts_budget(step: bool) -> None:
    points: list[tuple[float, float | None]] = [(float(t), float(t % 10)) for t in range(7200)]
    (d,) = _paths(_chart(points, step=step))
    drawn = _vertices(d)
    buckets = LAYOUT.max_points // 2
    # first, min and max of each of the buckets at most (and a bucket's edge can split one)
    assert 100 < len(drawn) <= 3 * (buckets + 1), len(drawn)
    assert len(drawn) < len(points) / 5


def test_a_short_series_is_drawn_point_for_point() -> None:
    points: list[tuple[float, float | None]] = [(float(t), float(t % 7)) for t in range(500)]
    (d,) = _paths(_chart(points))
    assert len(_vertices(d)) == 500


def test_a_one_sample_spike_and_dip_survive_thinning() -> None:
    points: list[tuple[float, float | None]] = [(float(t), 50.0) for t in range(7200)]
    points[3001] = (3001.0, 100.0)     # a spike between two bucket starts
    points[5002] = (5002.0, 0.0)       # a dip likewise
    (d,) = _paths(_chart(points))
    ys = {round(y, 1) for _, y in _vertices(d)}
    assert round(_y_of(100.0, 100.0), 1) in ys, "the spike was thinned away"
    assert round(_y_of(0.0, 100.0), 1) in ys, "the dip was thinned away"
    assert len(_vertices(d)) < 2000


def test_a_gap_in_a_long_series_stays_a_gap() -> None:
    points: list[tuple[float, float | None]] = [(float(t), 1.0) for t in range(7200)]
    for t in range(4000, 4003):        # three missing samples inside one bucket
        points[t] = (float(t), None)
    (d,) = _paths(_chart(points))
    moves = [cmd for cmd, _ in _vertices(d) if cmd == "M"]
    assert len(moves) == 2, "the line must lift its pen over the gap"
