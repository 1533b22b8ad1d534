// The API's answers as the page reads them (services/api/live.py and services/api/app.py).

export type Unavailable = { available: false; unavailable_since: string; error: string };

export type StatusStatic = {
  namespace: string;
  tools: Record<string, string[]>;
  arg_max: number;
  batch_max: number;
  refresh_seconds: number;
  max_minutes: number;
};

export type ScalingRow = {
  name: string;
  current?: number | null;
  desired?: number | null;
  min?: number | null;
  max?: number | null;
};

export type Status = StatusStatic &
  (
    | { available: true; time: string; values: Record<string, number | null>; scaling: ScalingRow[] }
    | Unavailable
  );

export type PanelInfo = {
  name: string;
  dashboard: string;
  dashboard_title: string;
  title: string;
  unit: string;
  refs: string[];
};

export type Series = { ref: string; label: string; metric: string; points: [number, number | null][] };

export type SeriesAnswer = {
  panel: string;
  title: string;
  unit: string;
  minutes: number;
  step: number;
} & ({ available: true; start: number; end: number; series: Series[] } | Unavailable);

/** One request's outcome, as the Drive panel lists it. */
export type Outcome =
  | { kind: "accepted"; ids: string[] }
  | { kind: "rejected"; status: number; message: string; field?: string; index?: number }
  | { kind: "unavailable"; status: number; message: string; retryAfter?: string; published: number }
  | { kind: "error"; message: string };

export async function getJson<T>(url: string): Promise<T> {
  const resp = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await resp.json().catch(() => null);
  if (!resp.ok) {
    const message = body && typeof body.error === "string" ? body.error : `HTTP ${resp.status}`;
    throw new Error(`${url}: ${message}`);
  }
  return body as T;
}

export type Task = { tool: string; arguments: Record<string, unknown> };

/** POST one task (``/tasks``) or a batch (``/tasks/batch``); never throws. */
export async function submit(tasks: Task[]): Promise<Outcome> {
  const one = tasks.length === 1;
  let resp: Response;
  try {
    resp = await fetch(one ? "/tasks" : "/tasks/batch", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(one ? tasks[0] : { tasks }),
    });
  } catch (err) {
    return { kind: "error", message: `API not reachable: ${String(err)}` };
  }
  const body = await resp.json().catch(() => ({}));
  if (resp.status === 202) {
    return { kind: "accepted", ids: one ? [body.id] : body.ids };
  }
  const message = typeof body.error === "string" ? body.error : `HTTP ${resp.status}`;
  if (resp.status === 503) {
    return {
      kind: "unavailable",
      status: 503,
      message: body.reason ? `${message} (${body.reason})` : message,
      retryAfter: resp.headers.get("Retry-After") ?? undefined,
      published: Array.isArray(body.published) ? body.published.length : 0,
    };
  }
  return { kind: "rejected", status: resp.status, message, field: body.field, index: body.index };
}
