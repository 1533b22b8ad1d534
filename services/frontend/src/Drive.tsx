import { useEffect, useRef, useState } from "react";
import { submit, type Outcome, type Task } from "./api";
import { planBurst, SLOT_MS, streamDue } from "./pace";

type Props = { tools: Record<string, string[]>; batchMax: number };

type Logged = { at: string; what: string; outcome: Outcome };

const MAX_LOG = 40;

/** The argument's text as the API should see it: a number when it reads as one, else the
 * text itself, so the API's own validation answers (and its message is shown). */
function argValue(text: string): unknown {
  return /^-?\d+(\.\d+)?$/.test(text.trim()) ? Number(text.trim()) : text;
}

/** The form field an API error points at: "tasks[3].arguments.cpu_ms" -> "arguments.cpu_ms". */
export function formField(field: string | undefined): string {
  return (field ?? "").replace(/^tasks\[\d+\]\./, "");
}

function describe(o: Outcome): string {
  switch (o.kind) {
    case "accepted":
      return `accepted: ${o.ids.length} task${o.ids.length === 1 ? "" : "s"} queued`;
    case "rejected":
      return `rejected (${o.status}): ${o.message}`;
    case "unavailable":
      return `broker unavailable (503): ${o.message}` +
        (o.published ? `; ${o.published} queued before it` : "") +
        (o.retryAfter ? `; retry after ${o.retryAfter} s` : "");
    case "error":
      return o.message;
  }
}

export function Drive({ tools, batchMax }: Props) {
  const toolNames = Object.keys(tools);
  const [tool, setTool] = useState(toolNames[0] ?? "");
  const [args, setArgs] = useState<Record<string, string>>({ cpu_ms: "50", io_ms: "50" });
  const [count, setCount] = useState("20");
  const [rate, setRate] = useState("0");
  const [streamRate, setStreamRate] = useState("5");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [log, setLog] = useState<Logged[]>([]);
  const [totals, setTotals] = useState({ accepted: 0, rejected: 0, unavailable: 0, error: 0 });
  const [busy, setBusy] = useState(false);
  const [streaming, setStreaming] = useState(false);
  const stream = useRef<{ timer: number; started: number; sent: number; inFlight: boolean } | null>(null);

  const task = (): Task => ({
    tool,
    arguments: Object.fromEntries((tools[tool] ?? []).map((a) => [a, argValue(args[a] ?? "")])),
  });

  const record = (what: string, outcome: Outcome) => {
    const n = outcome.kind === "accepted" ? outcome.ids.length : 1;
    setTotals((t) => ({ ...t, [outcome.kind]: t[outcome.kind] + n }));
    setLog((l) => [{ at: new Date().toLocaleTimeString(), what, outcome }, ...l].slice(0, MAX_LOG));
    if (outcome.kind === "rejected") {
      setErrors({ [formField(outcome.field) || "form"]: outcome.message });
    } else if (outcome.kind === "accepted") {
      setErrors({});
    }
  };

  const send = async (tasks: Task[], what: string) => {
    const outcome = await submit(tasks);
    record(what, outcome);
    return outcome;
  };

  const parseCount = (text: string, field: string, low: number, high: number): number | null => {
    const v = Number(text);
    if (!/^\d+(\.\d+)?$/.test(text.trim()) || v < low || v > high) {
      setErrors({ [field]: `${field} must be a number in [${low}, ${high}], got ${JSON.stringify(text)}` });
      return null;
    }
    return v;
  };

  const submitOne = async () => {
    setBusy(true);
    setErrors({});
    await send([task()], `1 × ${tool}`);
    setBusy(false);
  };

  const submitBurst = async () => {
    const n = parseCount(count, "count", 1, 10000);
    const r = n === null ? null : parseCount(rate, "rate", 0, 1000);
    if (n === null || r === null) return;
    setBusy(true);
    setErrors({});
    const t = task();
    const started = performance.now();
    for (const slot of planBurst(Math.floor(n), r, batchMax)) {
      const wait = slot.at - (performance.now() - started);
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      const outcome = await send(Array(slot.size).fill(t), `burst: ${slot.size} × ${tool}`);
      if (outcome.kind === "rejected") break; // the same task will not pass later either
    }
    setBusy(false);
  };

  const stopStream = () => {
    if (stream.current) window.clearInterval(stream.current.timer);
    stream.current = null;
    setStreaming(false);
  };

  const startStream = () => {
    const r = parseCount(streamRate, "stream rate", 0.1, 1000);
    if (r === null) return;
    setErrors({});
    const t = task();
    const state = { timer: 0, started: performance.now(), sent: 0, inFlight: false };
    state.timer = window.setInterval(async () => {
      if (state.inFlight) return; // never pile requests up behind a slow API
      const due = streamDue(r, performance.now() - state.started, state.sent, batchMax);
      if (due === 0) return;
      state.inFlight = true;
      state.sent += due;
      const outcome = await send(Array(due).fill(t), `stream: ${due} × ${tool}`);
      state.inFlight = false;
      if (outcome.kind === "rejected" && stream.current === state) stopStream();
    }, SLOT_MS);
    stream.current = state;
    setStreaming(true);
  };

  useEffect(() => () => stopStream(), []);

  const fieldError = (name: string) =>
    errors[name] ? (
      <p className="field-error" role="alert" data-error-field={name} id={`err-${name}`}>
        {errors[name]}
      </p>
    ) : null;

  return (
    <section aria-labelledby="drive-title" className="card">
      <h2 id="drive-title">Drive</h2>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void submitOne();
        }}
        noValidate
      >
        <div className="row">
          <label>
            Tool
            <select name="tool" value={tool} onChange={(e) => setTool(e.target.value)}
              aria-invalid={Boolean(errors.tool)}>
              {toolNames.map((t) => (
                <option key={t} value={t}>{t} ({tools[t].join(", ")})</option>
              ))}
            </select>
          </label>
          {(tools[tool] ?? []).map((a) => (
            <label key={a}>
              {a}
              <input name={a} inputMode="numeric" value={args[a] ?? ""}
                aria-invalid={Boolean(errors[`arguments.${a}`])}
                aria-describedby={errors[`arguments.${a}`] ? `err-arguments.${a}` : undefined}
                onChange={(e) => setArgs({ ...args, [a]: e.target.value })} />
            </label>
          ))}
        </div>
        {fieldError("tool")}
        {(tools[tool] ?? []).map((a) => <div key={a}>{fieldError(`arguments.${a}`)}</div>)}
        {fieldError("arguments")}
        {fieldError("form")}
        {fieldError("body")}
        <div className="row">
          <button type="submit" name="submit-one" disabled={busy}>Submit one task</button>
        </div>
        <div className="row">
          <label>
            Count
            <input name="count" inputMode="numeric" value={count} aria-invalid={Boolean(errors.count)}
              onChange={(e) => setCount(e.target.value)} />
          </label>
          <label>
            Rate (tasks/s, 0 = at once)
            <input name="rate" inputMode="decimal" value={rate} aria-invalid={Boolean(errors.rate)}
              onChange={(e) => setRate(e.target.value)} />
          </label>
          <button type="button" name="submit-burst" disabled={busy} onClick={() => void submitBurst()}>
            Submit burst
          </button>
        </div>
        {fieldError("count")}
        {fieldError("rate")}
        <div className="row">
          <label>
            Stream rate (tasks/s)
            <input name="stream-rate" inputMode="decimal" value={streamRate} disabled={streaming}
              onChange={(e) => setStreamRate(e.target.value)} />
          </label>
          {streaming ? (
            <button type="button" name="stream-stop" onClick={stopStream}>Stop stream</button>
          ) : (
            <button type="button" name="stream-start" onClick={startStream}>Start stream</button>
          )}
          <span className="muted" data-metric="stream_running">{streaming ? "streaming" : "stopped"}</span>
        </div>
        {fieldError("stream rate")}
      </form>
      <p className="totals">
        accepted <b data-metric="drive_accepted">{totals.accepted}</b> · rejected{" "}
        <b data-metric="drive_rejected">{totals.rejected}</b> · broker unavailable{" "}
        <b data-metric="drive_unavailable">{totals.unavailable}</b> · errors{" "}
        <b data-metric="drive_errors">{totals.error}</b>
      </p>
      <ol className="log" aria-label="Request outcomes" aria-live="polite">
        {log.map((l, i) => (
          <li key={log.length - i} data-outcome={l.outcome.kind}>
            <time>{l.at}</time> {l.what}: {describe(l.outcome)}
          </li>
        ))}
      </ol>
    </section>
  );
}
