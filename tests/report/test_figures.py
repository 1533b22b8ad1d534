"""The run figures (scalelab.figures) on the committed records of real runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalelab import record
from scalelab.figures import format_figures, scenario_figures

DATA = Path(__file__).parent / "data"
RECORDS = sorted(DATA.glob(f"*/*/{record.RUN_FILE}"))


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_figures_follow_the_definitions(path: Path) -> None:
    rec = record.load(path.parent)
    f = scenario_figures(rec)
    phases = sum(p["planned_duration"] for p in rec["phases"])
    assert f["phases_s"] == phases
    assert f["wall_ratio"] == pytest.approx((rec["ended_at"] - rec["started_at"]) / phases)
    # every committed scenario scales out under load
    assert f["reaction_s"] is not None and f["reaction_s"] > 0
    t = rec["timing_profile"]
    loop = t["scrape_interval"] + t["hpa_sync_period"] + t["metrics_window"]
    assert loop <= f["bound_s"] < loop + 60, "bound = loop + the pod start seen in the run"
    assert f["reaction_ratio"] == pytest.approx(f["reaction_s"] / f["bound_s"])
    # the reaction is the first ready increase after the load start, read off the timeline
    start = min(p["start"] for p in rec["phases"] if p["load"].get("mode") != "idle")
    first_up = next(s["t"] for s in rec["timeline"]
                    if s["t"] >= start and s["ready"] > rec["timeline"][0]["ready"])
    assert f["reaction_s"] == pytest.approx(first_up - start)


def test_the_table_prints_every_scenario_and_the_total() -> None:
    recs = [record.load(p.parent) for p in RECORDS]
    text = format_figures(recs)
    assert all(r["scenario"]["name"] in text for r in recs)
    assert "goal <= 1.15x" in text.splitlines()[-1]
    assert format_figures([]) == "no scenario records"


def test_no_scale_up_gives_no_reaction() -> None:
    rec = record.load(RECORDS[0].parent)
    floor = rec["timeline"][0]
    rec["timeline"] = [{**s, "spec": floor["spec"], "ready": floor["ready"]}
                       for s in rec["timeline"]]
    f = scenario_figures(rec)
    assert f["reaction_s"] is None and f["reaction_ratio"] is None
    assert f["wall_ratio"] is not None
