"""The report marks faults on the charts and lists their effect (recorded run + fault records)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from scalelab.report.render import build_charts, fault_effects, render_scenario

DATA = Path(__file__).parents[1] / "report" / "data" / "20261127T143137Z-024c9f" / "keda-queue"


def _with_faults(tmp_path: Path) -> tuple[Path, dict]:  # type: ignore[type-arg]
    folder = tmp_path / "keda-queue"
    shutil.copytree(DATA, folder)
    rec = json.loads((folder / "run.json").read_text())
    timeline = sorted(rec["timeline"], key=lambda s: s["t"])
    t_kill = timeline[len(timeline) // 2]["t"]
    t_cut = timeline[len(timeline) // 4]["t"]
    rec["faults"] = [
        {"id": "cut", "phase": "load", "kind": "partition", "target": "agent", "heal": False,
         "planned": 20.0, "t": t_cut, "seconds": 0.01,
         "effect": {"connections_closed": 2, "cut": True}, "error": None},
        {"id": "cut", "phase": "load", "kind": "partition", "target": "agent", "heal": True,
         "planned": 30.0, "t": t_cut + 10, "seconds": 0.01, "effect": {"cut": False},
         "error": None},
        {"id": "kill", "phase": "load", "kind": "kill", "target": "agent", "heal": False,
         "planned": 40.0, "t": t_kill, "seconds": 0.02,
         "effect": {"pods": ["agent-x"], "signal": "KILL", "asked": 1}, "error": None},
    ]
    rec["tasks"]["redelivered"] = 1
    (folder / "run.json").write_text(json.dumps(rec))
    return folder, rec


def test_each_chart_marks_each_fault_and_the_partition_window(tmp_path: Path) -> None:
    folder, rec = _with_faults(tmp_path)
    charts = build_charts(rec, json.loads((folder / "series.json").read_text()))
    for chart in charts:
        svg = str(chart["svg"])
        assert svg.count('<g class="fault">') == 2, chart["key"]
        assert svg.count('fill-opacity="0.35"') == 1, "one strip: the partition"
        assert "kill: kill agent (pods [&#39;agent-x&#39;], signal KILL, asked 1)" in svg
        assert "⚡ fault" in svg


def test_the_page_lists_faults_with_their_effect_and_recovery(tmp_path: Path) -> None:
    folder, rec = _with_faults(tmp_path)
    effects = fault_effects(rec)
    assert [e["fault"]["id"] for e in effects] == ["cut", "kill"]
    cut = effects[0]
    assert cut["end"] == rec["faults"][1]["t"]
    timeline = sorted(rec["timeline"], key=lambda s: s["t"])
    level = [s for s in timeline if s["t"] <= rec["faults"][0]["t"]][-1]["ready"]
    back = next(s["t"] for s in timeline if s["t"] >= cut["end"] and s["ready"] >= level)
    assert cut["ready_before"] == level and cut["recovered_after"] == back - cut["end"]
    page = render_scenario(folder).read_text()
    assert 'id="faults-table"' in page
    assert "connections_closed: 2" in page and "pods: [&#39;agent-x&#39;]" in page
    assert "Tasks redelivered over the run: 1" in page


def test_a_run_without_faults_has_no_fault_section(tmp_path: Path) -> None:
    folder = tmp_path / "keda-queue"
    shutil.copytree(DATA, folder)
    page = render_scenario(folder).read_text()
    assert 'id="faults-table"' not in page and 'class="fault"' not in page
