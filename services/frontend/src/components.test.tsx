import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { PanelInfo, SeriesAnswer } from "./api";
import { Drive } from "./Drive";
import { PanelView } from "./Panel";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const info: PanelInfo = {
  name: "rabbitmq/messages-ready-agent-tasks", dashboard: "rabbitmq",
  dashboard_title: "scalelab / RabbitMQ", title: "Messages ready (agent-tasks)", unit: "short",
  refs: ["A"],
};
const head = { panel: info.name, title: info.title, unit: "bytes", minutes: 10, step: 5 };

describe("PanelView", () => {
  it("shows unavailable since when Prometheus is down", () => {
    const answer: SeriesAnswer = { ...head, available: false, unavailable_since: "2026-01-01T10:00:00Z",
      error: "Prometheus slower than 1 s" };
    const { container } = render(<PanelView info={info} answer={answer} error={null} />);
    const el = container.querySelector(`[data-metric="${info.name}/unavailable_since"]`);
    expect(el?.textContent).toMatch(/^unavailable since .*\(Prometheus slower than 1 s\)$/);
  });
  it("shows each series' latest value, formatted, under its data-metric", () => {
    const answer: SeriesAnswer = { ...head, available: true, start: 0, end: 10, series: [
      { ref: "A", label: "agent-1", metric: "pods/mem/agent-1", points: [[0, 1024], [5, 2048], [10, null]] },
    ] };
    const { container } = render(<PanelView info={info} answer={answer} error={null} />);
    const el = container.querySelector('[data-metric="pods/mem/agent-1"]');
    expect(el?.textContent).toBe("2 KiB");
    expect(el?.getAttribute("data-value")).toBe("2048");
  });
  it("says when there is no data", () => {
    const answer: SeriesAnswer = { ...head, available: true, start: 0, end: 10, series: [] };
    render(<PanelView info={info} answer={answer} error={null} />);
    expect(screen.getByText(/no data in the last 10 min/)).toBeTruthy();
  });
});

describe("Drive", () => {
  const tools = { cpu: ["cpu_ms"], io: ["io_ms"] };

  it("shows the API's own validation message at the field it names", async () => {
    const message = "cpu_ms must be in (0, 60000], got 70000";
    const fetchMock = vi.fn(async () => new Response(
      JSON.stringify({ error: message, field: "arguments.cpu_ms" }), { status: 422 }));
    vi.stubGlobal("fetch", fetchMock);
    const { container } = render(<Drive tools={tools} batchMax={100} />);
    fireEvent.change(container.querySelector('[name="cpu_ms"]')!, { target: { value: "70000" } });
    fireEvent.click(screen.getByText("Submit one task"));
    await waitFor(() => expect(container.querySelector('[data-error-field="arguments.cpu_ms"]')?.textContent).toBe(message));
    expect(container.querySelector('[name="cpu_ms"]')?.getAttribute("aria-invalid")).toBe("true");
    const [url, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/tasks");
    expect(JSON.parse(String(init.body))).toEqual({ tool: "cpu", arguments: { cpu_ms: 70000 } });
    expect(container.querySelector('[data-outcome="rejected"]')?.textContent).toContain(message);
  });

  it("lets the API judge text it cannot read as a number", async () => {
    const fetchMock = vi.fn(async () => new Response(
      JSON.stringify({ error: "cpu_ms must be an integer (milliseconds), got 'abc'", field: "arguments.cpu_ms" }),
      { status: 422 }));
    vi.stubGlobal("fetch", fetchMock);
    const { container } = render(<Drive tools={tools} batchMax={100} />);
    fireEvent.change(container.querySelector('[name="cpu_ms"]')!, { target: { value: "abc" } });
    fireEvent.click(screen.getByText("Submit one task"));
    await waitFor(() => expect(container.querySelector('[data-error-field="arguments.cpu_ms"]')).not.toBeNull());
    const init = (fetchMock.mock.calls[0] as unknown as [string, RequestInit])[1];
    expect(JSON.parse(String(init.body)).arguments.cpu_ms).toBe("abc");
  });

  it("refuses a bad count in the form without calling the API", () => {
    const fetchMock = vi.fn();
    vi.stubGlobal("fetch", fetchMock);
    const { container } = render(<Drive tools={tools} batchMax={100} />);
    fireEvent.change(container.querySelector('[name="count"]')!, { target: { value: "0" } });
    fireEvent.click(screen.getByText("Submit burst"));
    expect(container.querySelector('[data-error-field="count"]')?.textContent).toMatch(/count must be/);
    expect(fetchMock).not.toHaveBeenCalled();
  });

  it("sends a burst in batches of BATCH_MAX and counts what was accepted", async () => {
    const fetchMock = vi.fn(async (_url: string, init: RequestInit) => {
      const n = JSON.parse(String(init.body)).tasks.length;
      return new Response(JSON.stringify({ ids: Array.from({ length: n }, (_, i) => `id${i}`) }), { status: 202 });
    });
    vi.stubGlobal("fetch", fetchMock);
    const { container } = render(<Drive tools={tools} batchMax={100} />);
    fireEvent.change(container.querySelector('[name="count"]')!, { target: { value: "250" } });
    fireEvent.click(screen.getByText("Submit burst"));
    await waitFor(() => expect(container.querySelector('[data-metric="drive_accepted"]')?.textContent).toBe("250"));
    expect(fetchMock.mock.calls.map((c) => JSON.parse(String((c[1] as RequestInit).body)).tasks.length))
      .toEqual([100, 100, 50]);
  });

  it("shows a broker outage as unavailable with the API's reason", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => new Response(
      JSON.stringify({ error: "task not queued: broker down", reason: "connection", published: [] }),
      { status: 503, headers: { "Retry-After": "1" } })));
    const { container } = render(<Drive tools={tools} batchMax={100} />);
    fireEvent.click(screen.getByText("Submit one task"));
    await waitFor(() => expect(container.querySelector('[data-outcome="unavailable"]')?.textContent)
      .toContain("broker unavailable (503): task not queued: broker down (connection); retry after 1 s"));
  });
});
