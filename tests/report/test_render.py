"""Rendering pages from stored run records (files only; the browser tests open them)."""

from __future__ import annotations

import csv
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from scalelab import cli, record
from scalelab.errors import ConfigError
from scalelab.queries import CHARTS
from scalelab.report.render import render_reports, render_scenario, resolve_run


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)
        if tag == "script":
            self.scripts += 1


def links_of(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text())
    return parser


def test_render_all_pages_and_every_link_resolves(reports: Path, run_ids: list[str]) -> None:
    written = render_reports(reports)
    index = reports / "index.html"
    assert index in written
    scenario_pages = sorted(reports.glob("*/*/index.html"))
    assert len(scenario_pages) == len(list(reports.glob("*/*/run.json")))
    for page in [index, *scenario_pages]:
        parsed = links_of(page)
        assert parsed.scripts == 0, f"{page} must not need JavaScript"
        for href in parsed.hrefs:
            if href.startswith("#"):
                continue
            assert not re.match(r"^[a-z]+://", href), f"{page}: external link {href}"
            assert (page.parent / href).exists(), f"{page}: broken link {href}"


def test_index_shows_latest_run_and_history(reports: Path, run_ids: list[str]) -> None:
    render_reports(reports)
    html = (reports / "index.html").read_text()
    latest, *earlier = run_ids
    assert html.index(latest) < html.index(earlier[0])  # latest first, history after
    latest_names = [r["scenario"]["name"] for r in map(record.load,
                    sorted((reports / latest).glob("*/run.json")))]
    table = html[html.index('id="latest"'):html.index("</table>", html.index('id="latest"'))]
    for name in latest_names:
        assert name in table
    for heading in ("time to first scale-up", "time to peak", "time back to floor",
                    "peak replicas", "replica changes", "lost", "duplicated", "API p95"):
        assert heading in table
    assert 'id="history"' in html


def test_scenario_page_has_charts_tables_csv_and_promql(reports: Path,
                                                       run_ids: list[str]) -> None:
    scenario = sorted((reports / run_ids[0]).glob("*/run.json"))[0].parent
    page = render_scenario(scenario).read_text()
    rec = record.load(scenario)
    for chart in CHARTS:
        assert f'id="chart-{chart.key}"' in page
    assert page.count('class="line"') >= 5
    assert f"Backend: {rec['backend']['name']}" in page
    for section in ('id="verdicts"', 'id="decisions-table"', 'id="tasks-table"',
                    'id="versions"', 'id="timing"'):
        assert section in page
    for verdict in rec["verdicts"]:
        assert verdict["id"] in page
    # every expectation is marked on the replica chart, met or failed
    chart = page[page.index('id="chart-replicas"'):]
    chart = chart[:chart.index("</svg>")]
    marks = re.findall(r'<g class="marker (met|failed)">.*?<title>(.*?)</title>', chart)
    assert len(marks) == len(rec["verdicts"])
    for verdict in rec["verdicts"]:
        (state,) = [m for m, label in marks if label.startswith(html.escape(verdict["id"]) + ":")]
        assert state == ("met" if verdict["passed"] else "failed")
    series = record.load_series(scenario)
    if series is not None:
        for key, entry in series["queries"].items():
            csv_path = scenario / "series" / f"{key}.csv"
            assert csv_path.exists()
            rows = list(csv.reader(csv_path.open()))
            assert rows[0][0] == "unix_time" and rows[0][-1] == "value"
            assert len(rows) - 1 == sum(len(s["values"]) for s in entry["series"])
            # the PromQL is shown (escaped) so it can be re-run in Grafana
            assert entry["promql"].replace('"', "&#34;") in page


def test_failed_scenario_shows_diagnostics(reports: Path) -> None:
    failed = [p.parent for p in reports.glob("*/*/run.json")
              if record.load(p)["status"] != "passed"]
    assert failed, "tests/report/data must hold a failed scenario's record"
    rec = record.load(failed[0])
    page = render_scenario(failed[0]).read_text()
    assert 'id="diagnostics"' in page
    body = page[page.index('id="diagnostics-body"'):page.index('id="environment"')]
    # each pod's log tail is its own block, readable (not an escaped string in JSON)
    agent = rec["diagnostics"]["deployments"]["agent"]
    for pod in agent["pods"]:
        line = next(x for x in reversed(pod["log_tail"].splitlines()) if x.strip())
        assert html.escape(line, quote=False) in body, line
        assert f"{pod['name']}: log_tail</summary><pre>" in body
    # pods and scaling decisions are tables with their fields as columns
    assert "<th>name</th><th>phase</th><th>ready</th>" in body
    event = rec["diagnostics"]["scaling_events"][0]
    assert f"<td>{html.escape(event['reason'], quote=True)}</td>" in body
    assert "\\n" not in body, "no escaped newlines left in the diagnostics"


def test_script_in_description_and_labels_is_text(reports: Path, run_ids: list[str]) -> None:
    scenario = sorted((reports / run_ids[0]).glob("*/run.json"))[0].parent
    rec = json.loads((scenario / "run.json").read_text())
    evil = "<script>document.title='pwned'</script>"
    rec["scenario"]["description"] = f"desc {evil}"
    rec["verdicts"][0]["id"] = f"v {evil}"
    rec["phases"][0]["name"] = f"p {evil}"
    (scenario / "run.json").write_text(json.dumps(rec))
    series = json.loads((scenario / "series.json").read_text())
    first = next(e for e in series["queries"].values() if e["series"])
    first["series"][0]["labels"] = {"pod": evil, "x": "1"}
    first["series"].append({"labels": {"pod": "other", "x": "2"},
                            "values": first["series"][0]["values"]})
    (scenario / "series.json").write_text(json.dumps(series))
    page = render_scenario(scenario).read_text()
    assert "<script" not in page
    assert "&lt;script&gt;document.title=" in page


def test_missing_series_falls_back_to_the_timeline(reports: Path, run_ids: list[str]) -> None:
    scenario = sorted((reports / run_ids[0]).glob("*/run.json"))[0].parent
    (scenario / "series.json").unlink()
    page = render_scenario(scenario).read_text()
    assert "spec (timeline)" in page and "ready (timeline)" in page


def test_unknown_run_is_a_config_error_naming_the_fix(reports: Path) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_run("no-such-run", reports_dir=reports)
    assert "RUN" in str(err.value) and "fix:" in str(err.value)


def test_three_scenarios_stay_under_3_mb(reports: Path, run_ids: list[str]) -> None:
    render_reports(reports, runs=[run_ids[0]])
    run = reports / run_ids[0]
    pages = sorted(run.glob("*/index.html"))[:3]
    assert sum(p.stat().st_size for p in pages) <= 3 * 1024 * 1024


def test_cli_report_regenerates(reports: Path, run_ids: list[str],
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", run_ids[-1], "--reports-dir", str(reports)]) == 0
    assert (reports / "index.html").exists()
    assert list((reports / run_ids[-1]).glob("*/index.html"))
    assert not list((reports / run_ids[0]).glob("*/index.html"))
    assert "wrote" in capsys.readouterr().out
    assert cli.main(["report", "--reports-dir", str(reports / "missing")]) == 2


def test_a_twin_prediction_is_drawn_beside_the_real_series(reports: Path,
                                                           run_ids: list[str]) -> None:
    """A record with a ``twin`` section (scenario ``twin:``): the replicas, queue and CPU
    charts carry the prediction dotted, from the first phase's start, and the page lists
    predicted against real figures."""
    from scalelab.paths import SCENARIOS
    from scalelab.scenario import load_scenario
    from scalelab.twin import check

    newest, older = run_ids[0], run_ids[1]
    folder = reports / newest / "keda-queue"
    rec = json.loads((folder / record.RUN_FILE).read_text())
    calibrate_on = [reports / older / "keda-queue"]
    pred, cal = check.predict(load_scenario(SCENARIOS / "keda-queue.yaml"), calibrate_on)
    rec["twin"] = check.section(pred, cal, records=calibrate_on, run=rec)
    record.validate(rec)  # the run record's schema holds the section
    (folder / record.RUN_FILE).write_text(json.dumps(rec))
    page = render_scenario(folder).read_text()
    predicted = re.findall(r'<path class="predicted" d="M([0-9.]+) [^"]*"[^>]*>'
                           r"<title>([^<]+)</title>", page)
    names = [name for _, name in predicted]
    assert names == ["predicted ready (twin)", "predicted average (twin)",
                     "predicted ready (twin)", "predicted unacked (twin)"], names
    assert 'stroke-dasharray="2 3"' in page
    assert "<title>ready, the run&#39;s samples (compared with the twin)</title>" in page
    c = rec["twin"]["comparison"]
    table = page.split('id="twin-table"', 1)[1].split("</table>", 1)[0]
    assert f"{c['real_replica_seconds']:g}" in html.unescape(table) or \
        str(round(c["real_replica_seconds"])) in table
    assert "within ±1" in html.unescape(table) and f"of {c['samples']} samples" in table
    assert str(reports / older / "keda-queue" / record.RUN_FILE) in page
    # a record without one draws none
    plain = render_scenario(reports / older / "keda-queue").read_text()
    assert 'class="predicted"' not in plain and 'id="twin-table"' not in plain
