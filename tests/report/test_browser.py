"""The pages in a real headless Chromium (Debian package ``chromium``), from disk.

Asserts: the charts are drawn (SVG paths with a real rendered length), no console errors,
uncaught exceptions, failed loads or network requests, every link resolves, and a
``<script>`` in a label stays text. Screenshots go to ``test-artifacts/report/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from scalelab.comparison import compare_runs, render_html
from scalelab.report.render import render_reports, render_scenario

from .chromium import Chromium, find_chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "report"
CHROMIUM = find_chromium()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None,
                       reason="chromium is not installed (apt-get install -y chromium)"),
]

PROBES = {
    "charts": "document.querySelectorAll('svg.chart').length",
    "drawn": "Array.from(document.querySelectorAll('svg.chart path.line'))"
             ".filter(p => p.getTotalLength() > 10 && p.getBBox().width > 10).length",
    "links": "Array.from(document.querySelectorAll('a[href]')).map(a => a.href)",
    "title": "document.title",
    "pwned": "window.__pwned === true",
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    assert CHROMIUM is not None
    with Chromium(CHROMIUM) as chromium:
        yield chromium


def _check_links(page: Path, links: list[str]) -> None:
    for href in links:
        url = urlparse(href)
        assert url.scheme == "file", f"{page}: non-local link {href}"
        if url.path == page.as_posix():
            continue  # in-page anchor
        assert Path(unquote(url.path)).exists(), f"{page}: broken link {href}"


def test_pages_render_without_errors(browser: Chromium, reports: Path,
                                     run_ids: list[str]) -> None:
    render_reports(reports)
    comp = render_html(compare_runs(reports / run_ids[-1], reports / run_ids[0]),
                       reports / "compare.html", reports_dir=reports)
    pages = [reports / "index.html", comp, *sorted((reports / run_ids[0]).glob("*/index.html"))]
    for page in pages:
        name = "-".join(page.relative_to(reports).with_suffix("").parts)
        result = browser.open(page.as_uri(), evaluate=PROBES,
                              screenshot=ARTIFACTS / f"{name}.png")
        assert result.errors == [], f"{page}: {result.errors}"
        _check_links(page, result.values["links"])
        if page.parent.parent.parent == reports:  # a scenario page
            assert result.values["charts"] >= 6
            assert result.values["drawn"] >= 6, f"{page}: charts not drawn"
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000


def test_script_in_a_label_is_shown_as_text(browser: Chromium, reports: Path,
                                            run_ids: list[str]) -> None:
    scenario = sorted((reports / run_ids[0]).glob("*/run.json"))[0].parent
    rec = json.loads((scenario / "run.json").read_text())
    rec["scenario"]["description"] = "evil <script>window.__pwned = true</script> desc"
    rec["scenario"]["name"] = "<script>window.__pwned = true</script>"
    (scenario / "run.json").write_text(json.dumps(rec))
    page = render_scenario(scenario)
    probes = {**PROBES, "description": "document.querySelector('.description').textContent"}
    result = browser.open(page.as_uri(), evaluate=probes,
                          screenshot=ARTIFACTS / "escaped-script.png")
    assert result.errors == []
    assert result.values["pwned"] is False
    assert "<script>window.__pwned = true</script>" in result.values["description"]
    assert result.values["title"].startswith("<script>")
