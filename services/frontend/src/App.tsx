import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { getJson, type PanelInfo, type Status } from "./api";
import { Drive } from "./Drive";
import { Panel } from "./Panel";
import { ScalingControl } from "./Scaling";
import { StatusView } from "./Status";

const ORDER = ["pods", "rabbitmq", "throughput", "autoscaling"];
const REFRESH_SECONDS = 2;

export function App() {
  const status = useQuery({
    queryKey: ["status"],
    queryFn: () => getJson<Status>("/api/status"),
    refetchInterval: REFRESH_SECONDS * 1000,
  });
  const panels = useQuery({
    queryKey: ["panels"],
    queryFn: () => getJson<{ panels: PanelInfo[] }>("/api/panels"),
    staleTime: Infinity,
  });
  const [board, setBoard] = useState("autoscaling");
  const [minutes, setMinutes] = useState(10);

  const list = panels.data?.panels ?? [];
  const boards = [...new Set(list.map((p) => p.dashboard))].sort(
    (a, b) => (ORDER.indexOf(a) + 99) % 99 - (ORDER.indexOf(b) + 99) % 99,
  );
  const titles = Object.fromEntries(list.map((p) => [p.dashboard, p.dashboard_title]));

  return (
    <>
      <header>
        <h1>scalelab live</h1>
        <span className="muted">
          namespace {status.data?.namespace ?? "…"} · refreshed every {REFRESH_SECONDS} s
        </span>
      </header>
      <main>
        <div className="top">
          {status.data ? (
            <Drive tools={status.data.tools} batchMax={status.data.batch_max} />
          ) : (
            <section className="card"><h2>Drive</h2><p className="muted">waiting for the API…</p></section>
          )}
          <section className="card" aria-labelledby="now-title">
            <h2 id="now-title">Now</h2>
            <StatusView status={status.data} error={status.error} />
            <ScalingControl />
          </section>
        </div>
        <section aria-labelledby="watch-title">
          <div className="row">
            <h2 id="watch-title">Watch</h2>
            <div role="tablist" aria-label="Dashboards" className="tabs">
              {boards.map((b) => (
                <button key={b} role="tab" type="button" aria-selected={b === board} data-board={b}
                  onClick={() => setBoard(b)}>
                  {titles[b]?.replace(/^scalelab \/ /, "") ?? b}
                </button>
              ))}
              <button role="tab" type="button" aria-selected={board === "*"} data-board="*"
                onClick={() => setBoard("*")}>All</button>
            </div>
            <label>
              Last
              <select value={minutes} onChange={(e) => setMinutes(Number(e.target.value))} name="minutes">
                {[5, 10, 30, 60].map((m) => <option key={m} value={m}>{m} minutes</option>)}
              </select>
            </label>
          </div>
          {panels.error ? <p className="unavailable">{(panels.error as Error).message}</p> : null}
          <div className="grid" role="tabpanel">
            {list
              .filter((p) => board === "*" || p.dashboard === board)
              .map((p) => <Panel key={p.name} info={p} minutes={minutes} refresh={REFRESH_SECONDS} />)}
          </div>
        </section>
      </main>
    </>
  );
}
