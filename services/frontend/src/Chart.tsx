import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Series } from "./api";
import { formatValue } from "./format";

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];

/** Prometheus range answers share start/end/step, so the x axis is that grid. */
export function align(series: Series[], start: number, end: number, step: number): uPlot.AlignedData {
  const xs: number[] = [];
  for (let t = start; t <= end + 1e-9; t += step) xs.push(t);
  const index = new Map(xs.map((t, i) => [Math.round(t), i]));
  const ys = series.map((s) => {
    const col: (number | null)[] = new Array(xs.length).fill(null);
    for (const [t, v] of s.points) {
      const i = index.get(Math.round(t));
      if (i !== undefined) col[i] = v;
    }
    return col;
  });
  return [xs, ...ys] as uPlot.AlignedData;
}

type Props = { title: string; unit: string; series: Series[]; start: number; end: number; step: number };

/** One uPlot chart; rebuilt when the set of series changes, else only its data is set. */
export function Chart({ title, unit, series, start, end, step }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = series.map((s) => s.label).join("\u0000");

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const opts: uPlot.Options = {
      title: undefined,
      width: Math.max(240, el.clientWidth),
      height: 180,
      legend: { show: false },
      scales: { x: { time: true } },
      axes: [{}, { values: (_u, ticks) => ticks.map((v) => formatValue(v, unit)), size: 70 }],
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.label,
          stroke: COLORS[i % COLORS.length],
          width: 1.5,
          spanGaps: false,
        })),
      ],
    };
    const u = new uPlot(opts, align(series, start, end, step), el);
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: Math.max(240, el.clientWidth), height: 180 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
    // rebuilt only when the series set or the unit changes
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape, unit]);

  useEffect(() => {
    plot.current?.setData(align(series, start, end, step));
  }, [series, start, end, step]);

  return <div className="chart" ref={box} role="img" aria-label={`chart: ${title}`} />;
}
