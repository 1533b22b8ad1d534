"""The metric derivations shared by the index and compare (pure, no files)."""

from __future__ import annotations

from typing import Any

from scalelab.report.summary import format_value, load_window, summarize


def _record(specs: list[int], *, ready_lag: int = 1, loaded: tuple[float, float] = (10, 30),
            **extra: Any) -> dict[str, Any]:
    timeline = []
    for i, spec in enumerate(specs):
        ready = specs[max(0, i - ready_lag)]
        timeline.append({"t": 100.0 + 2 * i, "spec": spec, "current": spec, "ready": ready})
    start, end = loaded
    return {
        "started_at": 100.0, "ended_at": 100.0 + 2 * len(specs), "status": "passed",
        "phases": [
            {"name": "idle", "start": 100.0, "end": 100.0 + start, "planned_duration": start,
             "load": {"users": 0}},
            {"name": "burst", "start": 100.0 + start, "end": 100.0 + end,
             "planned_duration": end - start, "load": {"users": 10, "spawn_rate": 2}},
            {"name": "cool", "start": 100.0 + end, "end": 200.0, "planned_duration": 70,
             "load": {"users": 0, "spawn_rate": 2}},
        ],
        "timeline": timeline, "tasks": {"published": 5, "processed": 5, "lost": 0,
                                        "duplicated": 0},
        "verdicts": [{"passed": True}, {"passed": False}], "locust": {"p95_ms": 12.5},
        **extra,
    }


def test_load_window_is_the_loaded_phases() -> None:
    assert load_window(_record([2, 2])) == (110.0, 130.0)
    rec = _record([2, 2])
    rec["phases"][1]["load"] = {"mode": "idle", "users": 3}
    rec["phases"][2]["load"] = {"mode": "rate", "rate": 5.0}
    assert load_window(rec) == (130.0, 200.0)


def test_first_scale_up_peak_and_back_to_floor() -> None:
    #         t=100 102 104 106 108 110 112 114 116 118 120 ... 130 132 134 136
    specs = [2, 2, 2, 2, 2, 2, 2, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 3, 2, 2]
    m = summarize(_record(specs))
    assert m["time_to_first_scale_up"] == 4.0      # spec 3 at t=114, load from 110
    assert m["peak_replicas"] == 4
    assert m["time_to_peak"] == 10.0               # ready 4 at t=120 (one sample lag)
    assert m["time_back_to_floor"] == 6.0          # spec 2 at t=136, load ended 130
    assert m["replica_changes"] == 4
    assert (m["verdicts_passed"], m["verdicts_total"]) == (1, 2)
    assert m["api_p95_ms"] == 12.5 and m["tasks_lost"] == 0


def test_no_scale_up_leaves_timings_empty() -> None:
    m = summarize(_record([2] * 10))
    assert m["time_to_first_scale_up"] is None
    assert m["time_to_peak"] is None
    assert m["time_back_to_floor"] is None
    assert m["replica_changes"] == 0


def test_never_back_to_floor_is_none() -> None:
    m = summarize(_record([2, 2, 2, 2, 2, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]))
    assert m["time_to_first_scale_up"] == 2.0
    assert m["time_back_to_floor"] is None


def test_format_value() -> None:
    assert format_value(None) == "–"
    assert format_value(3.0, "s") == "3.0 s"
    assert format_value(12345) == "12,345"


def test_reaction_phase_moves_the_start_and_the_floor() -> None:
    """A scale-to-zero run: load that must not wake it, then the phase it reacts to."""
    #         t=100 102 ... 110 ... 130 132 134 136 138 140 142
    specs = [2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, 4, 4, 0]
    rec = _record(specs)
    default = summarize(rec)
    assert default["floor"] == 0                    # spec at the load start (t=110)
    assert default["time_to_first_scale_up"] == 22.0  # 1 at t=132, counted from 110
    rec["scenario"] = {"name": "zero", "spec": {"reaction_phase": "cool"}}
    m = summarize(rec)
    assert m["floor"] == 0
    assert m["time_to_first_scale_up"] == 2.0       # from the cool phase's start (130)
    assert m["time_to_peak"] == 10.0                # ready 4 at t=140 (one sample lag)
    rec["scenario"]["spec"]["reaction_phase"] = "idle"
    assert summarize(rec)["floor"] == 2             # the first sample, at t=100
