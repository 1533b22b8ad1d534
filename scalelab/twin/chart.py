"""The prediction drawn beside the real run: a standalone HTML page of the report's own SVG
line charts (``scalelab.report.charts.line_chart``): replicas, queue depth and CPU."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from markupsafe import Markup, escape

from scalelab.report.charts import Band, Line, line_chart
from scalelab.twin.predict import Prediction

#: The report's chart styles (scalelab/report/templates/base.html.j2), for a page of its own.
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1rem; color: #1b1f24; }
svg.chart { display: block; margin: .6rem 0; background: #fff; }
svg.chart text { font-family: inherit; font-size: 11px; fill: #1b1f24; }
svg.chart .ct { font-size: 13px; font-weight: 600; }
svg.chart .yt { text-anchor: end; }
svg.chart .xt, svg.chart .xl { text-anchor: middle; }
svg.chart .nd { text-anchor: middle; fill: #57606a; font-size: 13px; }
svg.chart .pl { fill: #57606a; font-size: 10px; }
svg.chart .grid { stroke: #d8dee4; stroke-width: 1; }
svg.chart .axis { stroke: #57606a; stroke-width: 1; }
"""


def _real(record: Mapping[str, Any] | None, key: str) -> list[tuple[float, float | None]]:
    if record is None:
        return []
    t0 = float(record["phases"][0]["start"])
    out: list[tuple[float, float | None]] = []
    for p in record.get("timeline") or []:
        if p.get("t") is None:
            continue
        if key == "queue":
            qr, qu = p.get("queue_ready"), p.get("queue_unacked")
            out.append((float(p["t"]) - t0, None if qr is None else float(qr) + float(qu or 0)))
        else:
            v = p.get(key)
            out.append((float(p["t"]) - t0, None if v is None else float(v)))
    return out


def page(pred: Prediction, record: Mapping[str, Any] | None, *, title: str) -> str:
    """An HTML page: predicted (and, when given, real) replicas, queue and CPU."""
    r = pred.result
    ts = [float(i + 1) for i in range(len(r.spec))]
    t1 = ts[-1] if ts else 1.0
    bands = [Band(name=name, start=a, end=b) for name, a, b in pred.arrivals.phases]
    real = "real" if record is not None else None

    def lines(pred_pts: list[tuple[float, float | None]], key: str, name: str) -> list[Line]:
        out = [Line(name=f"predicted {name}", points=pred_pts, step=True)]
        if real:
            out.append(Line(name=f"real {name}", points=_real(record, key), step=True))
        return out

    charts = [
        line_chart(chart_id="twin-replicas", title="Ready replicas", unit="replicas",
                   lines=lines([(t, float(v)) for t, v in zip(ts, r.ready, strict=True)],
                               "ready", "ready"), t0=0.0, t1=t1, bands=bands),
        line_chart(chart_id="twin-queue", title="Queue depth (ready + unacked)", unit="tasks",
                   lines=lines([(t, a + b) for t, a, b in zip(ts, r.queue_ready,
                                                              r.queue_unacked, strict=True)],
                               "queue", "queue"), t0=0.0, t1=t1, bands=bands),
        line_chart(chart_id="twin-cpu", title="CPU utilization (of requests)", unit="%",
                   lines=lines([(t, v) for t, v in zip(ts, r.cpu_utilization, strict=True)],
                               "cpu_utilization", "cpu"), t0=0.0, t1=t1, bands=bands),
    ]
    body = Markup("").join(charts)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>")
