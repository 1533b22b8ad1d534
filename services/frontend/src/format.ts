// Values as the page shows them, by the Grafana unit of their panel.

export function formatValue(value: number | null | undefined, unit: string): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  switch (unit) {
    case "bytes": {
      const units = ["B", "KiB", "MiB", "GiB", "TiB"];
      let v = value;
      let i = 0;
      while (Math.abs(v) >= 1024 && i < units.length - 1) {
        v /= 1024;
        i += 1;
      }
      return `${round(v)} ${units[i]}`;
    }
    case "percent":
      return `${round(value)} %`;
    case "s":
      return Math.abs(value) < 1 ? `${round(value * 1000)} ms` : `${round(value)} s`;
    case "reqps":
    case "ops":
      return `${round(value)}/s`;
    case "cores":
      return `${round(value)} cores`;
    default:
      return round(value);
  }
}

function round(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return v.toFixed(digits);
}

/** The last non-null value of a series' points. */
export function latest(points: [number, number | null][]): number | null {
  for (let i = points.length - 1; i >= 0; i -= 1) {
    const v = points[i][1];
    if (v !== null) return v;
  }
  return null;
}

/** "unavailable since 20:31:05 (Prometheus not reachable: ...)" in the reader's time zone. */
export function unavailableText(since: string, error: string): string {
  const at = new Date(since);
  const when = Number.isNaN(at.getTime()) ? since : at.toLocaleTimeString();
  return `unavailable since ${when}${error ? ` (${error})` : ""}`;
}
