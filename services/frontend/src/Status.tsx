import type { Status } from "./api";
import { formatValue, unavailableText } from "./format";

const HEADLINE: [string, string, string][] = [
  ["agent_replicas_ready", "agent pods ready", "short"],
  ["agent_replicas_spec", "agent pods wanted", "short"],
  ["queue_ready", "queue ready", "short"],
  ["queue_unacked", "queue unacked", "short"],
  ["queue_consumers", "consumers", "short"],
  ["publish_rate", "published", "ops"],
  ["deliver_rate", "delivered", "ops"],
];

/** The headline values and the autoscalers in force (from /api/status). */
export function StatusView({ status, error }: { status: Status | undefined; error: Error | null }) {
  if (error) return <p className="unavailable" role="status">API not answering: {error.message}</p>;
  if (!status) return <p className="muted">loading…</p>;
  if (!status.available) {
    return (
      <p className="unavailable" role="status" data-state="unavailable" data-metric="status_unavailable_since">
        Prometheus {unavailableText(status.unavailable_since, status.error)}
      </p>
    );
  }
  return (
    <>
      <dl className="headline">
        {HEADLINE.map(([key, label, unit]) => (
          <div key={key}>
            <dt>{label}</dt>
            <dd data-metric={key} data-value={status.values[key] ?? ""}>{formatValue(status.values[key], unit)}</dd>
          </div>
        ))}
      </dl>
      <h3>Scaling objects in force</h3>
      {status.scaling.length === 0 ? (
        <p className="muted" data-metric="scaling_objects" data-value="0">none (the agent Deployment keeps its replicas)</p>
      ) : (
        <table data-metric="scaling_objects" data-value={status.scaling.length}>
          <thead>
            <tr><th scope="col">HPA (KEDA: keda-hpa-&lt;ScaledObject&gt;)</th><th scope="col">min</th><th scope="col">max</th><th scope="col">current</th><th scope="col">desired</th></tr>
          </thead>
          <tbody>
            {status.scaling.map((row) => (
              <tr key={row.name}>
                <th scope="row">{row.name}</th>
                {(["min", "max", "current", "desired"] as const).map((f) => (
                  <td key={f} data-metric={`scaling/${row.name}/${f}`}>{formatValue(row[f], "short")}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
