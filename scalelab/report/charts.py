"""Static inline SVG line charts, generated in Python.

Why not a JS charting library: the page must open from disk with no network, a bundled
library would add ~200 KB per page plus a JS toolchain to vet, and these charts need no
interaction beyond tooltips (SVG ``<title>``). Every string that reaches the SVG goes
through ``markupsafe.escape``; the caller's Jinja template (autoescape on) embeds the
returned ``Markup`` as is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

Point = tuple[float, float | None]

PALETTE = ("#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#e377c2",
           "#7f7f7f", "#bcbd22")
TARGET_COLOR = "#d62728"
PREDICTED_COLOR = "#24292f"
BAND_COLORS = ("#f3f6fa", "#e6edf5")


@dataclass(frozen=True, kw_only=True)
class Line:
    """One series on a chart; ``target`` lines are drawn dashed in red, ``predicted``
    ones (the twin's, beside the real run) dotted in black."""

    name: str
    points: Sequence[Point]
    step: bool = False
    target: bool = False
    predicted: bool = False
    #: Optional second y axis is not supported on purpose: one unit per chart.
    color: str | None = None


@dataclass(frozen=True, kw_only=True)
class Band:
    """A shaded time range (a scenario phase)."""

    name: str
    start: float
    end: float


@dataclass(frozen=True, kw_only=True)
class Marker:
    """A vertical mark where an expectation was met (passed) or failed."""

    t: float
    passed: bool
    label: str


@dataclass(frozen=True, kw_only=True)
class FaultMark:
    """A fault fired at ``t`` (a scenario's ``faults``); a timed one lasts until ``end``."""

    t: float
    end: float | None
    label: str


#: The faults' color (purple: apart from the series palette's reds and greens).
FAULT_COLOR = "#7b2cbf"


@dataclass(frozen=True, kw_only=True)
class Layout:
    """Pixel geometry of a chart."""

    width: int = 900
    height: int = 270
    left: int = 64
    right: int = 16
    top: int = 28
    bottom: int = 40
    legend_row: int = 18
    #: At most this many points per line are drawn (min/max kept per bucket).
    max_points: int = 800


def nice_ticks(lo: float, hi: float, *, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 2.5, 5 x 10^n steps)."""
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def downsample(points: Sequence[Point], *, t0: float, t1: float, buckets: int) -> list[Point]:
    """Keep the first, min and max point per time bucket so spikes survive thinning."""
    if len(points) <= buckets * 2:
        return list(points)
    width = (t1 - t0) / buckets or 1.0
    out: list[Point] = []
    current: list[Point] = []
    index = None
    for p in points:
        i = int((p[0] - t0) / width)
        if i != index and current:
            out.extend(_extremes(current))
            current = []
        index = i
        current.append(p)
    out.extend(_extremes(current))
    return out


def _extremes(bucket: list[Point]) -> list[Point]:
    vals = [(t, v) for t, v in bucket if v is not None]
    keep: set[Point] = {bucket[0]}
    if vals:
        keep.add(min(vals, key=lambda p: p[1]))
        keep.add(max(vals, key=lambda p: p[1]))
    gap = next((p for p in bucket if p[1] is None), None)
    if gap is not None:
        keep.add(gap)  # a gap in the data stays a gap in the line
    return sorted(keep, key=lambda p: p[0])


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


@dataclass(frozen=True, kw_only=True)
class _Frame:
    """Where things go on one chart: the plot area, the axes' ranges, the legend grid."""

    lay: Layout
    t0: float
    t1: float
    ylo: float
    yhi: float
    cols: int
    height: int

    @property
    def pw(self) -> int:
        return self.lay.width - self.lay.left - self.lay.right

    @property
    def ph(self) -> int:
        return self.lay.height - self.lay.top - self.lay.bottom

    @property
    def span(self) -> float:
        return max(self.t1 - self.t0, 1e-9)

    def x(self, t: float) -> float:
        return self.lay.left + (min(max(t, self.t0), self.t1) - self.t0) / self.span * self.pw

    def y(self, v: float) -> float:
        return self.lay.top + self.ph - (v - self.ylo) / (self.yhi - self.ylo) * self.ph

    def legend_cell(self, i: int) -> tuple[float, float]:
        """Where legend entry ``i`` goes (left x, baseline y)."""
        lx = self.lay.left + (i % self.cols) * (self.pw / self.cols)
        return lx, self.lay.height + 4 + (i // self.cols) * self.lay.legend_row


def _frame(lay: Layout, drawn: Sequence[Line], *, t0: float, t1: float,
           yticks: Sequence[float], markers: bool) -> _Frame:
    pw = lay.width - lay.left - lay.right
    longest = max([len(ln.name) for ln in drawn] + [28 if markers else 0])
    cols = max(1, min(4, int(pw // (longest * 6.2 + 40))))
    legend_rows = math.ceil((len(drawn) + (1 if markers else 0)) / cols) or 1
    return _Frame(lay=lay, t0=t0, t1=t1, ylo=yticks[0], yhi=yticks[-1], cols=cols,
                  height=lay.height + legend_rows * lay.legend_row)


def _y_ticks(drawn: Sequence[Line]) -> list[float]:
    values = [v for ln in drawn for _, v in ln.points if v is not None]
    ymax = max(values) if values else 1.0
    ymin = min(0.0, min(values)) if values else 0.0
    return nice_ticks(ymin, ymax if ymax > ymin else ymin + 1)


def line_chart(
    *,
    chart_id: str,
    title: str,
    unit: str,
    lines: Sequence[Line],
    t0: float,
    t1: float,
    bands: Sequence[Band] = (),
    markers: Sequence[Marker] = (),
    note: str | None = None,
    layout: Layout | None = None,
    faults: Sequence[FaultMark] = (),
) -> Markup:
    """An SVG line chart: x = seconds since ``t0``, y = ``unit``; legend below."""
    lay = layout or Layout()
    drawn = [ln for ln in lines if any(v is not None for _, v in ln.points)]
    yticks = _y_ticks(drawn)
    legend_extra = bool(markers) or bool(faults)
    f = _frame(lay, drawn, t0=t0, t1=t1, yticks=yticks, markers=legend_extra)
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" '
        f'data-lines="{len(drawn)}" viewBox="0 0 {lay.width} {f.height}" '
        f'width="{lay.width}" height="{f.height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)} ({escape(unit)})</title>",
        f'<text x="{lay.left}" y="18" class="ct">{escape(title)}</text>',
    ]
    out += _bands(f, bands)
    out += _axes(f, yticks, unit)
    colors = _colors(drawn)
    out += [_series(f, ln, color) for ln, color in zip(drawn, colors, strict=True)]
    out += [_marker(f, m) for m in markers]
    out += [_fault(f, m) for m in faults]
    if not drawn:
        out.append(
            f'<text x="{lay.left + f.pw / 2:.1f}" y="{lay.top + f.ph / 2:.1f}" class="nd">'
            f"{escape(note or 'no data')}</text>"
        )
    out += _legend(f, drawn, colors, markers=legend_extra,
                   what=_legend_text(markers=bool(markers), faults=bool(faults)))
    out.append("</svg>")
    return Markup("".join(out))


def _bands(f: _Frame, bands: Sequence[Band]) -> list[str]:
    out = []
    for i, band in enumerate(bands):
        bx0, bx1 = f.x(band.start), f.x(band.end)
        out.append(
            f'<rect class="phase" x="{bx0:.1f}" y="{f.lay.top}" '
            f'width="{max(bx1 - bx0, 0):.1f}" height="{f.ph}" fill="{BAND_COLORS[i % 2]}">'
            f"<title>phase {escape(band.name)}</title></rect>"
            f'<text x="{bx0 + 3:.1f}" y="{f.lay.top + 11}" class="pl">{escape(band.name)}</text>'
        )
    return out


def _axes(f: _Frame, yticks: Sequence[float], unit: str) -> list[str]:
    """Grid lines with the y ticks, the x ticks (seconds), both axes and their labels."""
    lay, pw, ph = f.lay, f.pw, f.ph
    out = [
        f'<line x1="{lay.left}" x2="{lay.left + pw}" y1="{f.y(v):.1f}" y2="{f.y(v):.1f}" '
        f'class="grid"/><text x="{lay.left - 6}" y="{f.y(v) + 4:.1f}" class="yt">'
        f"{_fmt(v)}</text>"
        for v in yticks
    ]
    for v in nice_ticks(0, f.span, count=8):
        if v > f.span + 1e-9:
            break
        xv = f.x(f.t0 + v)
        out.append(
            f'<line x1="{xv:.1f}" x2="{xv:.1f}" y1="{lay.top + ph}" '
            f'y2="{lay.top + ph + 4}" class="axis"/><text x="{xv:.1f}" '
            f'y="{lay.top + ph + 16}" class="xt">{_fmt(v)}</text>'
        )
    out.append(
        f'<line x1="{lay.left}" x2="{lay.left}" y1="{lay.top}" y2="{lay.top + ph}" class="axis"/>'
        f'<line x1="{lay.left}" x2="{lay.left + pw}" y1="{lay.top + ph}" y2="{lay.top + ph}" '
        f'class="axis"/>'
        f'<text x="{lay.left + pw / 2:.1f}" y="{lay.top + ph + 32}" class="xl">'
        f"time since start (s)</text>"
        f'<text transform="translate(14 {lay.top + ph / 2:.1f}) rotate(-90)" class="xl">'
        f"{escape(unit)}</text>"
    )
    return out


def _colors(drawn: Sequence[Line]) -> list[str]:
    """Each line's color: its own, else red for targets and the palette in turn for the
    others (targets do not use up a palette color)."""
    colors: list[str] = []
    series_i = 0
    for ln in drawn:
        if ln.target:
            colors.append(ln.color or TARGET_COLOR)
        elif ln.predicted:
            colors.append(ln.color or PREDICTED_COLOR)
        else:
            colors.append(ln.color or PALETTE[series_i % len(PALETTE)])
            series_i += 1
    return colors


def _series(f: _Frame, ln: Line, color: str) -> str:
    pts = downsample(sorted(ln.points, key=lambda p: p[0]), t0=f.t0, t1=f.t1,
                     buckets=f.lay.max_points // 2)
    d = _path(pts, f.x, f.y, step=ln.step)
    dash = ' stroke-dasharray="6 4"' if ln.target else \
        ' stroke-dasharray="2 3"' if ln.predicted else ""
    cls = "target" if ln.target else "predicted" if ln.predicted else "line"
    return (
        f'<path class="{cls}" d="{d}" stroke="{color}" fill="none" stroke-width="1.8"{dash}>'
        f"<title>{escape(ln.name)}</title></path>"
    )


def _marker(f: _Frame, m: Marker) -> str:
    mx, top = f.x(m.t), f.lay.top
    color = "#2ca02c" if m.passed else TARGET_COLOR
    sign = "✓" if m.passed else "✗"
    return (
        f'<g class="marker {"met" if m.passed else "failed"}"><line x1="{mx:.1f}" '
        f'x2="{mx:.1f}" y1="{top}" y2="{top + f.ph}" stroke="{color}" '
        f'stroke-width="1.2" stroke-dasharray="2 2"/><circle cx="{mx:.1f}" '
        f'cy="{top - 6}" r="6" fill="{color}"/><text x="{mx:.1f}" y="{top - 2}" '
        f'class="mk">{sign}</text><title>{escape(m.label)}</title></g>'
    )


def _fault(f: _Frame, m: FaultMark) -> str:
    """A dotted line at the fault, a strip along the time axis while a timed one lasts."""
    mx, base = f.x(m.t), f.lay.top + f.ph
    strip = ""
    if m.end is not None and m.end > m.t:
        strip = (f'<rect x="{mx:.1f}" y="{base - 6}" width="{max(f.x(m.end) - mx, 1):.1f}" '
                 f'height="6" fill="{FAULT_COLOR}" fill-opacity="0.35"/>')
    return (
        f'<g class="fault">{strip}<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{f.lay.top}" '
        f'y2="{base}" stroke="{FAULT_COLOR}" stroke-width="1.2" stroke-dasharray="1 3"/>'
        f'<text x="{mx:.1f}" y="{base - 8}" class="mk" fill="{FAULT_COLOR}">⚡</text>'
        f"<title>{escape(m.label)}</title></g>"
    )


def _legend_text(*, markers: bool, faults: bool) -> str:
    parts = (["✓ met / ✗ failed expectation"] if markers else []) + (
        ["⚡ fault"] if faults else [])
    return " · ".join(parts)


def _legend(f: _Frame, drawn: Sequence[Line], colors: Sequence[str], *,
            markers: bool, what: str = "✓ met / ✗ failed expectation") -> list[str]:
    out = []
    for i, (ln, color) in enumerate(zip(drawn, colors, strict=True)):
        lx, row = f.legend_cell(i)
        dash = ' stroke-dasharray="6 4"' if ln.target else ""
        out.append(
            f'<line x1="{lx:.1f}" x2="{lx + 22:.1f}" y1="{row - 4}" y2="{row - 4}" '
            f'stroke="{color}" stroke-width="2.5"{dash}/><text x="{lx + 28:.1f}" y="{row}" '
            f'class="lg">{escape(ln.name)}</text>'
        )
    if markers:
        lx, row = f.legend_cell(len(drawn))
        out.append(f'<text x="{lx:.1f}" y="{row}" class="lg">{escape(what)}</text>')
    return out


def _path(pts: Sequence[Point], x, y, *, step: bool) -> str:  # type: ignore[no-untyped-def]
    parts: list[str] = []
    pen = False
    for t, v in pts:
        if v is None:
            pen = False
            continue
        px, py = x(t), y(v)
        if not pen:
            parts.append(f"M{px:.1f} {py:.1f}")
            pen = True
        elif step:
            parts.append(f"H{px:.1f}V{py:.1f}")
        else:
            parts.append(f"L{px:.1f} {py:.1f}")
    return "".join(parts)
