import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { getJson } from "./api";

export type ScalingState =
  | { control: false; reason: string }
  | { control: true; manifest: string | null; applied: string[]; available: string[]; backend: string };

/** Apply or remove one of manifests/scaling/*.yaml through `scalelab up` (via /api/scaling). */
export function ScalingControl() {
  const client = useQueryClient();
  const q = useQuery({
    queryKey: ["scaling"],
    queryFn: () => getJson<ScalingState>("/api/scaling"),
    refetchInterval: 5000,
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
      {message ? (
        <p className={message.ok ? "muted" : "field-error"} role={message.ok ? "status" : "alert"} data-scaling-message>
          {message.text}
        </p>
      ) : null}
    </div>
  );
}
