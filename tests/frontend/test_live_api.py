"""``/api/panels``, ``/api/status``, ``/api/series`` and the served page (services/api/live.py):
the Flask app against a real Prometheus that scrapes a real exporter of the series the
dashboards read; Prometheus down, slow and not configured; the bounds of the endpoint."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import port_for
import pytest
import requests
import yaml
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from scalelab import paths
from scalelab.backends.cluster.settings import DEFAULT_PROMETHEUS_SERVICE
from scalelab.decisions import ScalingEvent
from scalelab.procs import prometheus as prom
from scalelab.scaling_control import ControlServer, ScalingControl
from scalelab.waiting import wait_for
from services.api.app import create_app
from services.api.live import Prometheus
from services.common.config import ApiConfig, ConfigError

DASHBOARDS = paths.ROOT / "manifests" / "grafana"


class NoBroker:
    """The live endpoints never publish: a publisher that fails if they ever do."""

    def publish(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the live view must not publish")

    def ready(self) -> str | None:
        return None


def client(**settings: Any) -> FlaskClient:
    app = create_app(ApiConfig(**settings), publisher=NoBroker())  # type: ignore[arg-type]
    return app.test_client()


def dashboard_panels(directory: Path = DASHBOARDS) -> dict[tuple[str, str], list[str]]:
    """(dashboard, panel title) -> its PromQL targets, read straight from the JSON."""
    out = {}
    for path in sorted(directory.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            exprs = [t["expr"] for t in panel.get("targets", []) if t.get("expr")]
            if exprs:
                out[(path.stem, panel["title"])] = exprs
    return out


# -- one source: the dashboards ---------------------------------------------------------
def test_every_dashboard_panel_is_served_and_nothing_else() -> None:
    c = client(prometheus_url="")
    listed = c.get("/api/panels").get_json()["panels"]
    want = dashboard_panels()
    assert len(want) >= 20 and {p["dashboard"] for p in listed} == {
        "pods", "rabbitmq", "throughput", "autoscaling"}
    assert {(p["dashboard"], p["title"]) for p in listed} == set(want)
    live = c.application.extensions["scalelab"]["live"]
    for p in listed:
        assert [t.expr for t in live.panels[p["name"]].targets] == want[
            (p["dashboard"], p["title"])], p["name"]
        assert c.get("/api/series", query_string={"panel": p["name"]}).status_code == 200
    for name in ("rabbitmq", "rabbitmq/", "up", 'sum(up{job="x"})', "../etc/passwd"):
        resp = c.get("/api/series", query_string={"panel": name})
        assert resp.status_code == 404 and resp.get_json()["field"] == "panel", name


def test_a_panel_added_to_or_removed_from_a_dashboard_is_what_the_api_serves(
        tmp_path: Path) -> None:
    boards = tmp_path / "grafana"
    shutil.copytree(DASHBOARDS, boards)
    rabbit = json.loads((boards / "rabbitmq.json").read_text())
    removed = rabbit["panels"].pop(3)["title"]
    rabbit["panels"].append({"type": "timeseries", "title": "Scrape health", "targets": [
        {"refId": "A", "expr": 'up{namespace="$namespace"}', "legendFormat": "{{job}}"}]})
    (boards / "rabbitmq.json").write_text(json.dumps(rabbit))
    c = client(dashboards_dir=str(boards))
    titles = {p["title"] for p in c.get("/api/panels").get_json()["panels"]}
    assert "Scrape health" in titles and removed not in titles
    assert {("rabbitmq", t) for t in titles} >= {("rabbitmq", "Scrape health")}
    assert c.get("/api/series?panel=rabbitmq/scrape-health").status_code == 200


def test_a_dashboard_with_a_variable_the_api_cannot_fill_stops_the_start(
        tmp_path: Path) -> None:
    boards = tmp_path / "grafana"
    shutil.copytree(DASHBOARDS, boards)
    pods = json.loads((boards / "pods.json").read_text())
    pods["panels"][0]["targets"][0]["expr"] = 'up{cluster="$cluster"}'
    (boards / "pods.json").write_text(json.dumps(pods))
    with pytest.raises(Exception, match=r"\$cluster"):
        client(dashboards_dir=str(boards))


# -- bounds ---------------------------------------------------------------------------
@pytest.mark.parametrize(("query", "field"), [
    ("minutes=0", "minutes"), ("minutes=61", "minutes"), ("minutes=ten", "minutes"),
    ("minutes=-5", "minutes"), ("step=0", "step"), ("step=601", "step"),
    ("minutes=60&step=4", "step"), ("query=up", "query"),
])
def test_series_refuses_out_of_bounds_requests(query: str, field: str) -> None:
    resp = client(scrape_interval=1.0).get(
        f"/api/series?panel=rabbitmq/consumers&{query}")
    assert resp.status_code == 422
    assert resp.get_json()["field"] == field and resp.get_json()["error"]


def test_configuration_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="PROMETHEUS_URL"):
        ApiConfig.from_env({"PROMETHEUS_URL": "prometheus:9090"})
    with pytest.raises(ConfigError, match="SCRAPE_INTERVAL"):
        ApiConfig.from_env({"SCRAPE_INTERVAL": "fast"})
    config = ApiConfig.from_env({"PROMETHEUS_URL": "http://p:9090", "NAMESPACE": "ns",
                                 "SCRAPE_INTERVAL": "2.5"})
    assert (config.prometheus_url, config.namespace, config.scrape_interval) == \
        ("http://p:9090", "ns", 2.5)


# -- Prometheus missing, down, slow ---------------------------------------------------------
def test_not_configured_says_so() -> None:
    body = client(prometheus_url="").get("/api/status").get_json()
    assert body["available"] is False and "PROMETHEUS_URL" in body["error"]
    assert body["tools"] == {"cpu": ["cpu_ms"], "io": ["io_ms"], "mixed": ["cpu_ms", "io_ms"]}


def test_prometheus_down_is_an_answer_with_since_when_not_a_500() -> None:
    port = port_for.select_random()  # nothing listens there
    c = client(prometheus_url=f"http://127.0.0.1:{port}")
    for path in ("/api/status", "/api/series?panel=pods/cpu-usage-per-pod"):
        resp = c.get(path)
        assert resp.status_code == 200
        body = resp.get_json()
        assert body["available"] is False and "not reachable" in body["error"]
        assert body["unavailable_since"].endswith("Z")


def test_unavailable_since_is_the_first_failure_until_a_success() -> None:
    now = [1000.0]
    p = Prometheus(url="http://127.0.0.1:1", timeout=1.0, clock=lambda: now[0])
    p.record("down")
    now[0] = 1060.0
    p.record("still down")
    assert p.unavailable()["unavailable_since"] == "1970-01-01T00:16:40Z"
    assert p.unavailable()["error"] == "still down"
    p.record(None)
    now[0] = 1100.0
    p.record("down again")
    assert p.unavailable()["unavailable_since"] == "1970-01-01T00:18:20Z"


def test_a_prometheus_that_never_answers_is_cut_off_within_the_budget() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        c = client(prometheus_url=f"http://127.0.0.1:{silent.getsockname()[1]}")
        started = time.monotonic()
        body = c.get("/api/series?panel=autoscaling/hpa-replicas").get_json()
        elapsed = time.monotonic() - started
    assert body["available"] is False and "slower than 1 s" in body["error"]
    assert elapsed < 2.0, f"answered after {elapsed:.2f} s, the budget is 1 s"


# -- against a real Prometheus ----------------------------------------------------------
@dataclass
class Exported:
    queue_ready: Gauge
    url: str


NS = "scalelab"


@pytest.fixture(scope="module")
def real_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Exported]]:
    """A real Prometheus scraping, every second, an exporter of series the panels read."""
    registry = CollectorRegistry()

    def gauge(name: str, labels: dict[str, str], value: float) -> Gauge:
        g = Gauge(name, name, list(labels), registry=registry)
        g.labels(**labels).set(value)
        return g

    queue = {"namespace": NS, "queue": "agent-tasks"}
    ready = gauge("rabbitmq_detailed_queue_messages_ready", queue, 7)
    gauge("rabbitmq_detailed_queue_messages_unacked", queue, 2)
    gauge("rabbitmq_detailed_queue_consumers", queue, 3)
    agent = {"namespace": NS, "deployment": "agent"}
    gauge("kube_deployment_spec_replicas", agent, 4)
    gauge("kube_deployment_status_replicas_ready", agent, 3)
    hpa = {"namespace": NS, "horizontalpodautoscaler": "keda-hpa-agent"}
    for name, value in (("spec_min_replicas", 1), ("spec_max_replicas", 6),
                        ("status_current_replicas", 3), ("status_desired_replicas", 4)):
        gauge(f"kube_horizontalpodautoscaler_{name}", hpa, value)
    Counter("rabbitmq_global_messages_received", "x", ["namespace"],
            registry=registry).labels(namespace=NS).inc(5)
    port = port_for.select_random()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    config = prom.build_config(scrape_interval=1.0, static=[prom.StaticTarget(
        job="exporter", address=f"127.0.0.1:{port}")])
    server_p = prom.PrometheusServer(config=config,
                                     workdir=tmp_path_factory.mktemp("prom"))
    server_p.start()
    try:
        def has(query: str) -> int:
            r = requests.get(f"{server_p.url}/api/v1/query", params={"query": query}, timeout=5)
            return len(r.json()["data"]["result"])
        wait_for(lambda: has("rabbitmq_detailed_queue_messages_ready"), lambda n: n > 0,
                 what="the exporter's series in Prometheus", expected="1 series", timeout=30)
        yield server_p.url, Exported(queue_ready=ready, url=f"http://127.0.0.1:{port}")
    finally:
        server_p.stop()
        server.shutdown()
        thread.join(timeout=5)


@pytest.mark.slow
def test_status_reads_the_headline_values_and_the_autoscalers(
        real_prometheus: tuple[str, Exported]) -> None:
    url, _ = real_prometheus
    body = client(prometheus_url=url, scrape_interval=1.0).get("/api/status").get_json()
    assert body["available"] is True, body
    values = body["values"]
    assert values["queue_unacked"] == 2 and values["queue_consumers"] == 3
    assert (values["agent_replicas_spec"], values["agent_replicas_ready"]) == (4, 3)
    assert body["scaling"] == [{"name": "keda-hpa-agent", "min": 1, "max": 6, "current": 3,
                                "desired": 4}]


@pytest.mark.slow
def test_series_follow_the_exported_value_with_the_dashboard_legend(
        real_prometheus: tuple[str, Exported]) -> None:
    url, exported = real_prometheus
    c = client(prometheus_url=url, scrape_interval=1.0)
    # the answer ends at the last whole step: wait until that is past the first scrape
    body = wait_for(lambda: c.get("/api/series?panel=autoscaling/hpa-replicas&minutes=5")
                    .get_json(), lambda b: len(b.get("series", [])) == 4,
                    what="the HPA panel's four series", expected="4 series", timeout=15,
                    interval=0.5)
    assert body["available"] is True and body["step"] == 2 and body["minutes"] == 5
    labels = {s["label"]: s for s in body["series"]}
    assert set(labels) == {"keda-hpa-agent current", "keda-hpa-agent desired",
                           "keda-hpa-agent min", "keda-hpa-agent max"}
    assert labels["keda-hpa-agent max"]["points"][-1][1] == 6
    assert labels["keda-hpa-agent max"]["metric"] == "autoscaling/hpa-replicas/keda-hpa-agent max"
    assert all(len(s["points"]) <= 5 * 60 // 2 + 1 for s in body["series"])

    exported.queue_ready.labels(namespace=NS, queue="agent-tasks").set(11)

    def last_ready() -> float | None:
        answer = c.get("/api/series?panel=rabbitmq/messages-ready-agent-tasks&minutes=1")
        series = answer.get_json()["series"]
        return series[0]["points"][-1][1] if series else None
    wait_for(last_ready, lambda v: v == 11, what="the panel's last point after the change",
             expected="11", timeout=15, interval=0.5)
    exported.queue_ready.labels(namespace=NS, queue="agent-tasks").set(7)


@pytest.mark.slow
def test_every_panel_is_valid_promql_for_a_real_prometheus(
        real_prometheus: tuple[str, Exported]) -> None:
    url, _ = real_prometheus
    c = client(prometheus_url=url, scrape_interval=1.0)
    for p in c.get("/api/panels").get_json()["panels"]:
        body = c.get("/api/series", query_string={"panel": p["name"], "minutes": 60}).get_json()
        assert body["available"] is True, (p["name"], body.get("error"))


def _query_range_requests(prometheus_url: str) -> float:
    text = requests.get(f"{prometheus_url}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("prometheus_http_requests_total{")
               and 'handler="/api/v1/query_range"' in line)


@pytest.mark.slow
def test_ten_tabs_asking_at_once_cost_one_query_per_target(
        real_prometheus: tuple[str, Exported]) -> None:
    """Prometheus' own request counter: ten identical asks within the one-second cache
    reach it once per target of the panel (four for the HPA panel)."""
    url, _ = real_prometheus
    c = client(prometheus_url=url, scrape_interval=1.0)
    before = _query_range_requests(url)
    for _ in range(10):
        assert c.get("/api/series?panel=autoscaling/hpa-replicas").get_json()["available"]
    assert _query_range_requests(url) - before in (4, 8)  # 8: a second boundary crossed


# -- the page -------------------------------------------------------------------------
def test_the_built_page_and_its_assets_are_served(built_frontend: Path) -> None:
    c = client(frontend_dir=str(built_frontend))
    page = c.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    asset = html.split('src="', 1)[1].split('"', 1)[0]
    assert asset.startswith("/assets/")
    js = c.get(asset)
    assert js.status_code == 200 and b"/api/series" in js.get_data()


def test_an_unbuilt_page_answers_with_the_fix(tmp_path: Path) -> None:
    resp = client(frontend_dir=str(tmp_path)).get("/")
    assert resp.status_code == 404 and "npm run build" in resp.get_json()["error"]


# -- the scaling control, proxied ---------------------------------------------------------
class RecordingBackend:
    """Stands in for a backend behind the control server (the local backend's real
    apply/remove from the page is in test_page.py); records the calls in order."""

    name = "local"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def apply_scaling(self, manifest: Path) -> list[str]:
        self.calls.append(f"apply {manifest.name}")
        return [f"ScaledObject/{manifest.stem}"]

    def remove_scaling(self) -> None:
        self.calls.append("remove")

    def scaling_events(self, since: float = 0.0) -> list[ScalingEvent]:
        return [ScalingEvent(t=since + 60, controller="keda", object="ScaledObject/agent",
                             from_replicas=2, to_replicas=4, reason="queue length 80 > 20")]


def test_scaling_without_the_harness_says_how_to_get_it() -> None:
    c = client(control_url="")
    assert c.get("/api/scaling").get_json()["control"] is False
    resp = c.post("/api/scaling", json={"manifest": "keda-queue.yaml"})
    assert resp.status_code == 409 and "scalelab up" in resp.get_json()["error"]


def test_scaling_requests_reach_scalelab_ups_control_one_manifest_at_a_time() -> None:
    backend = RecordingBackend()
    server = ControlServer(ScalingControl(backend)).start()  # type: ignore[arg-type]
    try:
        c = client(control_url=server.url)
        state = c.get("/api/scaling").get_json()
        assert state["control"] is True and state["manifest"] is None
        (decision,) = state["decisions"]
        assert (decision["to_replicas"], decision["reason"]) == (4, "queue length 80 > 20")
        assert "keda-queue.yaml" in state["available"] and "hpa-cpu.yaml" in state["available"]
        bad = c.post("/api/scaling", json={"manifest": "../../etc/passwd"})
        assert bad.status_code == 422 and "keda-queue.yaml" in bad.get_json()["error"]
        assert c.post("/api/scaling", json={}).status_code == 422
        ok = c.post("/api/scaling", json={"manifest": "hpa-cpu.yaml"}).get_json()
        assert (ok["manifest"], ok["applied"]) == ("hpa-cpu.yaml", ["ScaledObject/hpa-cpu"])
        c.post("/api/scaling", json={"manifest": "keda-queue.yaml"})
        assert c.delete("/api/scaling").get_json()["manifest"] is None
        assert backend.calls == ["remove", "apply hpa-cpu.yaml", "remove",
                                 "apply keda-queue.yaml", "remove"]
        # the control's address is a credential: a wrong path is refused
        wrong = requests.get(server.url.rsplit("/", 1)[0] + "/x/scaling", timeout=5)
        assert wrong.status_code == 404
    finally:
        server.close()
    gone = client(control_url=server.url).get("/api/scaling")
    assert gone.status_code == 503 and "not answering" in gone.get_json()["error"]


def test_the_cluster_api_reads_the_prometheus_the_kind_backend_installs() -> None:
    """manifests/base/api.yaml's PROMETHEUS_URL is the kps release's Service (what the
    cluster backends forward to as DEFAULT_PROMETHEUS_SERVICE), and its NAMESPACE the
    pod's own."""
    api = next(d for d in yaml.safe_load_all((paths.MANIFESTS / "base" / "api.yaml")
                                             .read_text()) if d["kind"] == "Deployment")
    env = {e["name"]: e for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    namespace, _, service = DEFAULT_PROMETHEUS_SERVICE.partition("/")
    name, _, port = service.partition(":")
    assert env["PROMETHEUS_URL"]["value"] == f"http://{name}.{namespace}.svc:{port}"
    assert env["NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    ApiConfig.from_env({"PROMETHEUS_URL": env["PROMETHEUS_URL"]["value"]})


def test_the_api_process_refuses_to_start_without_its_dashboards(tmp_path: Path) -> None:
    """``python -m services.api`` with no dashboards: one clear line and exit 2, before
    gunicorn binds anything."""
    env = {**os.environ, "DASHBOARDS_DIR": str(tmp_path), "PORT": str(port_for.select_random())}
    done = subprocess.run([sys.executable, "-m", "services.api"], cwd=paths.ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "no dashboard (*.json) found" in done.stderr and "DASHBOARDS_DIR" in done.stderr
    assert "Traceback" not in done.stderr
