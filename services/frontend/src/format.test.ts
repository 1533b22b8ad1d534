import { describe, expect, it } from "vitest";
import { formatValue, latest, unavailableText } from "./format";
import { planBurst, streamDue } from "./pace";

describe("formatValue", () => {
  it("formats by the Grafana unit of the panel", () => {
    expect(formatValue(3 * 1024 * 1024, "bytes")).toBe("3 MiB");
    expect(formatValue(0.25, "s")).toBe("250 ms");
    expect(formatValue(2.5, "s")).toBe("2.50 s");
    expect(formatValue(12.345, "reqps")).toBe("12.3/s");
    expect(formatValue(55.5, "percent")).toBe("55.5 %");
    expect(formatValue(4, "short")).toBe("4");
  });
  it("shows a dash for no value", () => {
    expect(formatValue(null, "short")).toBe("–");
    expect(formatValue(Number.NaN, "bytes")).toBe("–");
  });
});

describe("latest", () => {
  it("is the last non-null point", () => {
    expect(latest([[1, 3], [2, 5], [3, null]])).toBe(5);
    expect(latest([])).toBeNull();
  });
});

describe("unavailableText", () => {
  it("says since when and why", () => {
    const text = unavailableText("2026-01-01T10:00:00Z", "Prometheus not reachable");
    expect(text.startsWith("unavailable since ")).toBe(true);
    expect(text).toContain("(Prometheus not reachable)");
  });
});

describe("planBurst", () => {
  it("sends everything at once in batches of at most BATCH_MAX when rate is 0", () => {
    expect(planBurst(250, 0, 100)).toEqual([
      { at: 0, size: 100 }, { at: 0, size: 100 }, { at: 0, size: 50 },
    ]);
  });
  it("spreads tasks over time at the rate, never losing or adding one", () => {
    const slots = planBurst(45, 20, 100);
    expect(slots.reduce((n, s) => n + s.size, 0)).toBe(45);
    expect(slots[slots.length - 1].at).toBe(2200); // task 44 is due at 2.2 s
    expect(slots.every((s) => s.size <= 2)).toBe(true);
  });
  it("caps a slot at BATCH_MAX", () => {
    expect(Math.max(...planBurst(1000, 5000, 100).map((s) => s.size))).toBe(100);
  });
});

describe("streamDue", () => {
  it("owes what the rate says minus what was sent", () => {
    expect(streamDue(10, 1000, 4, 100)).toBe(6);
    expect(streamDue(10, 1000, 12, 100)).toBe(0);
    expect(streamDue(1000, 10_000, 0, 100)).toBe(100);
  });
});
