import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { getJson } from "./api";

export type ScalingState =
  | { control: false; reason: string }
  | {
      control: true;
      manifest: string | null;
      applied: string[];
      available: string[];
      backend: string;
      decisions: Decision[];
    };

export type Decision = {
  t?: number;
  controller?: string;
  object?: string;
  from_replicas?: number;
  to_replicas?: number;
  reason?: string;
  error?: string;
};

export function describeDecision(d: Decision): string {
  if (d.error) return `decisions not readable: ${d.error}`;
  const at = d.t ? new Date(d.t * 1000).toLocaleTimeString() : "?";
  return `${at} ${d.object ?? d.controller ?? "?"}: ${d.from_replicas} → ${d.to_replicas} (${d.reason ?? "no reason given"})`;
}

/** Apply or remove one of manifests/scaling/*.yaml through `scalelab up` (via /api/scaling). */
export function ScalingControl() {
  const client = useQueryClient();
  const q = useQuery({
    queryKey: ["scaling"],
    queryFn: () => getJson<ScalingState>("/api/scaling"),
    refetchInterval: 2000,
  });
  const [choice, setChoice] = useState("");
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);

  if (q.error) return <p className="unavailable">{(q.error as Error).message}</p>;
  if (!q.data) return null;
  if (!q.data.control) {
    return <p className="muted" data-metric="scaling_control" data-value="off">{q.data.reason}</p>;
  }
  const state = q.data;
  const selected = choice || state.manifest || state.available[0] || "";

  const call = async (method: "POST" | "DELETE") => {
    setBusy(true);
    setMessage(null);
    try {
      const resp = await fetch("/api/scaling", {
        method,
        headers: { "Content-Type": "application/json" },
        body: method === "POST" ? JSON.stringify({ manifest: selected }) : undefined,
      });
      const body = await resp.json().catch(() => ({}));
      if (resp.ok) {
        setMessage({ ok: true, text: method === "POST" ? `applied ${selected}: ${body.applied.join(", ")}` : "removed" });
      } else {
        setMessage({ ok: false, text: body.error ?? `HTTP ${resp.status}` });
      }
    } catch (err) {
      setMessage({ ok: false, text: String(err) });
    }
    setBusy(false);
    await client.invalidateQueries({ queryKey: ["scaling"] });
    await client.invalidateQueries({ queryKey: ["status"] });
  };

  return (
    <div className="row">
      <label>
        Scaling manifest
        <select name="scaling-manifest" value={selected} onChange={(e) => setChoice(e.target.value)}>
          {state.available.map((m) => <option key={m} value={m}>{m}</option>)}
        </select>
      </label>
      <button type="button" name="scaling-apply" disabled={busy} onClick={() => void call("POST")}>Apply</button>
      <button type="button" name="scaling-remove" disabled={busy || !state.manifest} onClick={() => void call("DELETE")}>
        Remove
      </button>
      <span data-metric="scaling_manifest" className="muted">{state.manifest ?? "none applied"}</span>
      <div className="decisions">
        <h3>Latest scaling decisions</h3>
        {state.decisions.length === 0 ? (
          <p className="muted" data-metric="scaling_decision" data-value="">none in the last 10 minutes</p>
        ) : (
          <ol aria-label="Latest scaling decisions">
            {state.decisions.map((d, i) => (
              <li key={`${d.t}-${i}`} data-metric={i === 0 ? "scaling_decision" : undefined}
                data-value={i === 0 ? d.to_replicas : undefined}>{describeDecision(d)}</li>
            ))}
          </ol>
        )}
      </div>
      {message ? (
        <p className={message.ok ? "muted" : "field-error"} role={message.ok ? "status" : "alert"} data-scaling-message>
          {message.text}
        </p>
      ) : null}
    </div>
  );
}
