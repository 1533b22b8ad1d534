"""Stored records that no longer read (schema drift, a hand edit, a cut-off write).

``scalelab report`` names each unreadable record with the reason, skips it and renders the
rest; ``scalelab compare`` refuses with the run, the file and the reason. Never a traceback.
The broken records are copies of the committed runs in tests/report/data, edited here.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scalelab import cli, record
from scalelab.comparison import compare_runs
from scalelab.errors import ConfigError
from scalelab.report.render import Skipped, load_run, read_run, render_reports


def _edit(path: Path, change: Callable[[dict[str, Any]], object]) -> None:
    rec = json.loads(path.read_text())
    change(rec)
    path.write_text(json.dumps(rec))


def _first(run_dir: Path) -> Path:
    return sorted(run_dir.glob(f"*/{record.RUN_FILE}"))[0]


#: (id, how the file is broken, field named, text of the message)
BROKEN: list[tuple[str, Callable[[Path], None], str | None, str]] = [
    ("missing-field", lambda p: _edit(p, lambda r: r.pop("started_at")),
     "started_at", "does not match the run-record schema: 'started_at' is a required property"),
    ("missing-nested-field", lambda p: _edit(p, lambda r: r["scenario"].pop("name")),
     "scenario.name", "'name' is a required property"),
    ("missing-in-a-list", lambda p: _edit(p, lambda r: r["phases"][1].pop("name")),
     "phases[1].name", "'name' is a required property"),
    ("wrong-type", lambda p: _edit(p, lambda r: r.update(status="maybe")),
     "status", "'maybe' is not one of"),
    ("newer-schema", lambda p: _edit(p, lambda r: r.update(schema_version=2)),
     "schema_version", "written with run-record schema version 2; this scalelab reads 1"),
    ("truncated", lambda p: p.write_text(p.read_text()[:500]),
     None, "not valid JSON at line 15, column 4: Unterminated string"),
    ("not-utf8", lambda p: p.write_bytes(p.read_bytes().replace(b'"run_id"', b'"run_\xe9d"')),
     None, "not UTF-8 text"),
    ("not-an-object", lambda p: p.write_text("[1, 2]"),
     None, "a run record is a JSON object, this file holds a list"),
]


@pytest.mark.parametrize(("breaks", "field", "text"), [c[1:] for c in BROKEN],
                         ids=[c[0] for c in BROKEN])
def test_record_load_names_the_file_the_field_and_the_fix(
        reports: Path, run_ids: list[str], breaks: Callable[[Path], None], field: str | None,
        text: str) -> None:
    path = _first(reports / run_ids[0])
    breaks(path)
    for given in (path, path.parent):
        with pytest.raises(ConfigError) as info:
            record.load(given)
        err = info.value
        assert err.file == str(path)
        assert err.field == field
        assert text in err.message, err.message
        assert err.fix


def test_a_broken_series_file_is_named(reports: Path, run_ids: list[str]) -> None:
    scenario = _first(reports / run_ids[0]).parent
    (scenario / record.SERIES_FILE).write_text('{"start": 1, "queries": {')
    with pytest.raises(ConfigError) as info:
        record.load_series(scenario)
    assert info.value.file == str(scenario / record.SERIES_FILE)
    assert "not valid JSON" in info.value.message and info.value.fix


def test_report_skips_the_unreadable_record_and_renders_the_others(
        reports: Path, run_ids: list[str]) -> None:
    latest = reports / run_ids[0]
    broken = _first(latest)
    _edit(broken, lambda r: r.pop("started_at"))
    good = [p for p in sorted(latest.glob(f"*/{record.RUN_FILE}")) if p != broken]
    assert good, "the latest committed run needs two scenarios"

    skipped: list[Skipped] = []
    written = render_reports(reports, skipped=skipped)

    assert [s.path for s in skipped] == [broken]
    assert "'started_at' is a required property" in skipped[0].reason
    assert not (broken.parent / "index.html").exists()
    for path in good:
        assert path.parent / "index.html" in written
    # the earlier run is untouched and rendered in full
    assert len(list((reports / run_ids[-1]).glob("*/index.html"))) == len(
        list((reports / run_ids[-1]).glob(f"*/{record.RUN_FILE}")))
    page = (reports / "index.html").read_text()
    section = page[page.index('id="skipped"'):]
    section = section[:section.index("</table>")]
    assert f"{run_ids[0]}/{broken.parent.name}/{record.RUN_FILE}" in section
    assert "'started_at' is a required property" in html.unescape(section)
    latest_table = page[page.index('id="latest"'):]
    latest_table = latest_table[:latest_table.index("</table>")]
    for path in good:
        assert f"{path.parent.name}/index.html" in latest_table
    assert f"{broken.parent.name}/index.html" not in latest_table


def test_a_run_with_no_readable_record_leaves_the_index_and_the_others(
        reports: Path, run_ids: list[str]) -> None:
    latest = reports / run_ids[0]
    every = sorted(latest.glob(f"*/{record.RUN_FILE}"))
    for path in every:
        path.write_text("{")
    skipped: list[Skipped] = []
    render_reports(reports, skipped=skipped)
    assert sorted(s.path for s in skipped) == every
    page = (reports / "index.html").read_text()
    assert f"Latest run {run_ids[1]}" in page  # the newest readable run leads
    assert page.count('<tr class="skipped">') == len(every)


def test_read_run_splits_readable_from_unreadable_and_load_run_refuses(
        reports: Path, run_ids: list[str]) -> None:
    run = reports / run_ids[0]
    broken = _first(run)
    _edit(broken, lambda r: r.update(schema_version=2))
    scenarios, skipped = read_run(run)
    assert broken.parent not in [s.path for s in scenarios] and scenarios
    assert skipped == [Skipped(path=broken, reason=skipped[0].reason)]
    with pytest.raises(ConfigError, match="schema version 2"):
        load_run(run)


def test_cli_report_names_the_skipped_record_and_exits_1(
        reports: Path, run_ids: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    broken = _first(reports / run_ids[-1])
    _edit(broken, lambda r: r["scenario"].pop("name"))
    assert cli.main(["report", "--reports-dir", str(reports)]) == 1
    out, err = capsys.readouterr()
    assert "wrote" in out and (reports / "index.html").exists()
    assert f"skipped {broken}: " in err and "field 'scenario.name'" in err
    assert "fix: " in err and "Traceback" not in err
    assert "1 record could not be read" in err


def test_cli_report_on_a_named_run_also_reports_other_unreadable_runs(
        reports: Path, run_ids: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """The index lists every run, so a broken record in another run is named too."""
    broken = _first(reports / run_ids[-1])
    broken.write_text("")
    assert cli.main(["report", run_ids[0], "--reports-dir", str(reports)]) == 1
    assert f"skipped {broken}: " in capsys.readouterr().err


@pytest.mark.parametrize("side", ["baseline", "contender"])
def test_compare_names_the_unreadable_run_and_exits_non_zero(
        reports: Path, run_ids: list[str], side: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    base, cont = run_ids[-1], run_ids[0]
    run = base if side == "baseline" else cont
    broken = _first(reports / run)
    _edit(broken, lambda r: r.pop("timeline"))
    with pytest.raises(ConfigError) as info:
        compare_runs(reports / base, reports / cont)
    assert isinstance(info.value.__cause__, ConfigError)
    assert info.value.__cause__.file == str(broken) and info.value.__cause__.field == "timeline"

    assert cli.main(["compare", base, cont, "--reports-dir", str(reports)]) == 2
    captured = capsys.readouterr()
    assert (f"scalelab compare: error: the {side} run {run} cannot be read: {broken}: "
            "field 'timeline': does not match the run-record schema: 'timeline' is a "
            "required property") in captured.err
    assert "fix: " in captured.err and "Traceback" not in captured.err
    assert not list(reports.glob("compare-*.html"))


def test_a_damaged_series_file_skips_that_page_only(reports: Path, run_ids: list[str]) -> None:
    latest = reports / run_ids[0]
    scenario = _first(latest).parent
    series = scenario / record.SERIES_FILE
    series.write_text(series.read_text()[:-100])
    skipped: list[Skipped] = []
    written = render_reports(reports, skipped=skipped)
    assert [s.path for s in skipped] == [series]
    assert "not valid JSON" in skipped[0].reason
    assert not (scenario / "index.html").exists()
    others = [p.parent for p in latest.glob(f"*/{record.RUN_FILE}") if p.parent != scenario]
    assert others and all(p / "index.html" in written for p in others)
    page = (reports / "index.html").read_text()
    assert f"{run_ids[0]}/{scenario.name}/{record.SERIES_FILE}" in page
    # the run.json is readable: the scenario keeps its row (no link: no page)
    latest_table = page[page.index('id="latest"'):]
    latest_table = latest_table[:latest_table.index("</table>")]
    assert html.escape(record.load(scenario)["scenario"]["name"]) in latest_table
    assert f"{scenario.name}/index.html" not in latest_table
