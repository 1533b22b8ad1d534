"""Every panel of the four Grafana dashboards returns data, and every PromQL expression parses.

The panels are run as Grafana runs them (``$namespace`` from the dashboard's variable,
``$__rate_interval`` from the scrape interval, a range query over the dashboard's time span)
against the local backend's real Prometheus, after a short scenario: a KEDA ScaledObject
with a CPU and a queue trigger (keda-hybrid.yaml: it yields the generated HPA's series and
KEDA's) and a few dozen tasks through the real API. The harness' own queries (queries.py)
must return data there too.

promtool (Debian package prometheus, as the server) parses every expression as a recording
rule: the parser Prometheus itself uses, at the version CI runs.
"""

from __future__ import annotations

import contextlib
import math
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from scalelab import paths, queries
from scalelab.backends.local.backend import LocalBackend
from scalelab.errors import WaitTimeout
from scalelab.settings import StackSettings, TimingProfile
from scalelab.waiting import wait_for
from tests.grafana import Expression, all_expressions, dashboard_expressions, rate_interval

TIMING = TimingProfile(scrape_interval=1.0, hpa_sync_period=1.0, metrics_window=2.0)
SCALING = paths.ROOT / "manifests" / "scaling" / "keda-hybrid.yaml"
TASKS = 36


# -- promtool -------------------------------------------------------------------------------
def _promtool() -> str:
    found = shutil.which("promtool") or "/usr/bin/promtool"
    assert Path(found).exists(), ("promtool is not installed: it comes with the Debian "
                                  "package prometheus (sudo apt-get install -y prometheus)")
    return found


def promtool_failures(expressions: list[Expression], tmp_path: Path) -> list[str]:
    """Each expression as a recording rule; the ones ``promtool check rules`` rejects."""
    rules = [{"record": f"scalelab:expression_{i}",
              "expr": e.promql(rate_interval=rate_interval(TIMING.scrape_interval))}
             for i, e in enumerate(expressions)]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "scalelab", "rules": rules}]}))
    done = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    if done.returncode == 0:
        return []
    output = done.stdout + done.stderr
    named = sorted({int(i) for i in re.findall(r'"scalelab:expression_(\d+)"', output)})
    lines = output.strip().splitlines()
    if not named:
        return [f"promtool check rules exited {done.returncode}: {output}"]
    return [f"{expressions[i].where()}\n    " + next(
        (line for line in lines if f'"scalelab:expression_{i}"' in line), "")
        for i in named]


def test_every_expression_parses_with_promtool(tmp_path: Path) -> None:
    expressions = all_expressions()
    assert len(expressions) >= 40
    failures = promtool_failures(expressions, tmp_path)
    assert not failures, "\n".join(failures)


def test_promtool_names_a_broken_expression(tmp_path: Path) -> None:
    broken = Expression(origin="test", name="broken", raw="sum(rate(x[$__rate_interval])")
    good = Expression(origin="test", name="good", raw="sum(rate(x[$__rate_interval]))")
    (failure,) = promtool_failures([good, broken], tmp_path)
    assert failure.startswith("test: broken: sum(rate(x[") and "parse error" in failure


# -- panels return data ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack() -> Iterator[LocalBackend]:
    with LocalBackend(settings=StackSettings(timing=TIMING)) as backend:
        yield backend


def _post_tasks(api: str, count: int) -> None:
    for i in range(count):
        tool = ("cpu", "io")[i % 2]
        arguments = {"cpu_ms": 50} if tool == "cpu" else {"io_ms": 200}
        resp = requests.post(f"{api}/tasks", json={"tool": tool, "arguments": arguments},
                             timeout=5)
        assert resp.status_code == 202, resp.text


def _has_data(prometheus: str, promql: str, *, start: float) -> str | None:
    """None when the range query has a series with a number in it, else what it returned."""
    resp = requests.get(f"{prometheus}/api/v1/query_range", timeout=10, params={
        "query": promql, "start": start, "end": time.time(),
        "step": f"{TIMING.scrape_interval:g}s"})
    body = resp.json()
    if body.get("status") != "success":
        return f"error {body.get('errorType')}: {body.get('error')}"
    series = body["data"]["result"]
    if any(not math.isnan(float(v)) for s in series for _, v in s["values"]):
        return None
    return f"{len(series)} series, no number in them" if series else "no series"


@pytest.mark.slow
def test_every_panel_and_harness_query_returns_data(stack: LocalBackend) -> None:
    start = time.time()
    refs = stack.apply_scaling(SCALING)
    assert refs
    _post_tasks(stack.endpoints.api, TASKS)
    rate = rate_interval(TIMING.scrape_interval)
    expressions = dashboard_expressions() + [
        Expression(origin="scalelab/queries.py", name=q.key, raw=q.promql)
        for q in queries.build_queries(hpas=("keda-hpa-agent",), scaled_objects=("agent",),
                                       rate_window=rate)]

    def empty() -> dict[str, str]:
        out = {}
        for e in expressions:
            problem = _has_data(stack.endpoints.prometheus, e.promql(rate_interval=rate),
                                start=start)
            if problem:
                out[e.where()] = problem
        return out

    # the assertion below names each empty panel, dashboard and expression
    with contextlib.suppress(WaitTimeout):
        wait_for(empty, lambda missing: not missing, what="every panel and query with data",
                 expected="none empty", timeout=90, interval=2.0)
    missing = empty()
    assert not missing, "panels/queries without data on the local backend:\n" + "\n".join(
        f"{where}\n    {problem}" for where, problem in missing.items())
    assert time.time() - start < 120
