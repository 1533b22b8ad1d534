"""The readiness step of a cluster ``up()``: the metrics APIServices Available, Prometheus
scraping every expected target with a stored sample (``cluster/readiness.py``).

CONTRACT TEST, NOT A CLUSTER: no cluster can run here. The interpretation of Prometheus'
``/api/v1/targets`` and ``/api/v1/query`` answers and of APIService objects is checked
against recorded JSON in ``tests/kind/data`` written to the documented shapes of the real
APIs (prometheus.io/docs/prometheus/latest/querying/api/ "Targets" and "Instant queries";
apiregistration.k8s.io/v1 APIService, as ``kubectl get apiservice -o json`` prints it),
with the pool names the Prometheus operator gives PodMonitor/ServiceMonitor endpoints.
The targets parsing and the wait are ALSO run against a REAL local Prometheus (the Debian
package) scraping real targets under the operator's pool names, and ``KubeApi
.get_apiservice`` through the real ``kubernetes`` client against a fake API server.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import port_for
import pytest
import yaml

from scalelab.backends.cluster import readiness as rd
from scalelab.backends.cluster.kube import KubeApi
from scalelab.backends.cluster.render import load_charts, render_values
from scalelab.backends.cluster.settings import BASE_DIR, CLUSTER_DIR, ClusterSettings
from scalelab.errors import ConfigError, WaitTimeout
from scalelab.procs import prometheus as prom
from scalelab.settings import TimingProfile
from tests.fakes import FakeClock
from tests.kind.test_cluster_commands import Boom, make, short
from tests.kind.test_kube_api import FakeApiServer

DATA = Path(__file__).parent / "data"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def base_workloads() -> list[dict[str, Any]]:
    return [d for p in sorted(BASE_DIR.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())
            if d]


def installed_charts() -> list[rd.InstalledChart]:
    return [rd.InstalledChart(chart=r.chart, release=r.name, namespace=r.namespace,
                              values=yaml.safe_load(render_values(r, timing=TimingProfile())))
            for r in load_charts()]


#: The monitors of manifests/cluster/monitors.yaml as of this test (two endpoints on the
#: services' PodMonitor, one on RabbitMQ's), so the pool names below are exact.
MONITORS: list[dict[str, Any]] = [
    {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
     "metadata": {"name": "scalelab-services", "namespace": "scalelab"},
     "spec": {"selector": {"matchExpressions": [
         {"key": "app.kubernetes.io/name", "operator": "In", "values": ["api", "agent"]}]},
         "podMetricsEndpoints": [{"port": "metrics"}, {"port": "http"}]}},
    {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
     "metadata": {"name": "scalelab-rabbitmq", "namespace": "scalelab"},
     "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "rabbitmq"}},
              "podMetricsEndpoints": [{"port": "prometheus", "path": "/metrics/detailed"}]}},
]
SCALELAB_POOLS = [
    rd.ExpectedPool(name="agent", pool="podMonitor/scalelab/scalelab-services/0"),
    rd.ExpectedPool(name="api", pool="podMonitor/scalelab/scalelab-services/1"),
    rd.ExpectedPool(name="rabbitmq", pool="podMonitor/scalelab/scalelab-rabbitmq/0"),
]
ADDON_POOLS = [
    rd.ExpectedPool(name="kube-state-metrics",
                    pool="serviceMonitor/monitoring/kps-kube-state-metrics/0"),
    rd.ExpectedPool(name="keda-operator", pool="serviceMonitor/keda/keda-operator/0"),
    rd.ExpectedPool(name="keda-operator-metrics-apiserver",
                    pool="serviceMonitor/keda/keda-operator-metrics-apiserver/0"),
]


# -- the plan follows the rendered config ---------------------------------------------------
def test_plan_with_addons_expects_each_podmonitor_endpoint_and_the_installed_charts() -> None:
    plan = rd.build_plan(monitors=MONITORS, workloads=base_workloads(), namespace="scalelab",
                         installed=installed_charts())
    assert list(plan.pools) == SCALELAB_POOLS + ADDON_POOLS
    assert plan.apiservices == (rd.METRICS_APISERVICE, rd.EXTERNAL_METRICS_APISERVICE)
    assert plan.optional_apiservices == () and plan.detect == ()


def test_plan_from_the_shipped_monitors_names_api_agent_and_rabbitmq() -> None:
    """Whatever endpoints monitors.yaml gains, each is a pool named after what it scrapes."""
    shipped = list(yaml.safe_load_all((CLUSTER_DIR / "monitors.yaml").read_text()))
    plan = rd.build_plan(monitors=shipped, workloads=base_workloads(), namespace="scalelab",
                         installed=installed_charts())
    endpoints = [(d["metadata"]["name"], i) for d in shipped if d and d["kind"] == "PodMonitor"
                 for i, _ in enumerate(d["spec"]["podMetricsEndpoints"])]
    pod_pools = [p for p in plan.pools if p.pool.startswith("podMonitor/")]
    assert [p.pool for p in pod_pools] == [f"podMonitor/scalelab/{n}/{i}" for n, i in endpoints]
    assert {p.name for p in pod_pools} == {"agent", "api", "rabbitmq"}


def test_plan_without_addons_detects_instead_and_makes_apiservices_optional() -> None:
    plan = rd.build_plan(monitors=[], workloads=base_workloads(), namespace="scalelab",
                         installed=[])
    assert plan.pools == () and plan.apiservices == ()
    assert plan.optional_apiservices == (rd.METRICS_APISERVICE, rd.EXTERNAL_METRICS_APISERVICE)
    assert [name for name, _ in plan.detect] == [
        "kube-state-metrics", "keda-operator-metrics-apiserver", "keda-operator"]
    # only KEDA installed by scalelab: kube-state-metrics is still detected, KEDA expected
    keda = [c for c in installed_charts() if c.chart == "keda"]
    plan = rd.build_plan(monitors=[], workloads=[], namespace="scalelab", installed=keda)
    assert [p.name for p in plan.pools] == ["keda-operator", "keda-operator-metrics-apiserver"]
    assert [name for name, _ in plan.detect] == ["kube-state-metrics"]
    assert plan.apiservices == (rd.EXTERNAL_METRICS_APISERVICE,)
    assert plan.optional_apiservices == (rd.METRICS_APISERVICE,)


def test_keda_pools_follow_the_values() -> None:
    values = {"operator": {"name": "kedaop"}, "prometheus": {
        "operator": {"enabled": True, "serviceMonitor": {"enabled": True, "namespace": "mon"}},
        "metricServer": {"enabled": True, "serviceMonitor": {"enabled": False}}}}
    assert rd.keda_pools(values, release_namespace="keda") == [
        rd.ExpectedPool(name="kedaop", pool="serviceMonitor/mon/kedaop/0")]
    assert rd.keda_pools({}, release_namespace="keda") == [], "chart default: no monitors"
    assert rd.kube_state_metrics_pools({"kubeStateMetrics": {"enabled": False}}, release="kps",
                                       release_namespace="monitoring") == []


def test_an_endpoint_no_workload_serves_is_still_expected_and_named_by_its_port() -> None:
    monitors: list[dict[str, Any]] = copy.deepcopy(MONITORS)
    monitors[1]["spec"]["podMetricsEndpoints"].append({"port": "nope"})
    pools = rd.pod_monitor_pools(monitors, base_workloads(), namespace="scalelab")
    assert pools[-1] == rd.ExpectedPool(name="scalelab-rabbitmq port nope",
                                        pool="podMonitor/scalelab/scalelab-rabbitmq/1")


def test_a_workload_scaled_to_zero_is_not_waited_for() -> None:
    workloads = base_workloads()
    next(w for w in workloads if w["metadata"]["name"] == "agent")["spec"]["replicas"] = 0
    pools = rd.pod_monitor_pools(MONITORS, workloads, namespace="scalelab")
    assert pools == SCALELAB_POOLS[1:], "the agent's pool is not expected at 0 replicas"


def test_the_backend_plan_follows_agent_replicas(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch)
    b.settings = dataclasses.replace(b.settings, agent_replicas=0)
    b.up()
    try:
        assert b.readiness is not None
        assert "podMonitor/scalelab/scalelab-services/0" not in b.readiness.pools
        assert "podMonitor/scalelab/scalelab-services/1" in b.readiness.pools
    finally:
        b.down()


# -- interpreting recorded answers --------------------------------------------------------
def test_pool_states_from_recorded_targets_and_samples() -> None:
    targets = rd.active_targets(load("prometheus-targets.json"))
    sampled = rd.jobs_with_samples(load("prometheus-query-samples.json"))
    assert sampled == {"scalelab/scalelab-services", "kube-state-metrics", "kps-prometheus",
                       "kubelet"}
    states = {s.name: s for s in rd.pool_states(targets, SCALELAB_POOLS + ADDON_POOLS, sampled)}
    assert (states["agent"].up, states["agent"].total, states["agent"].ready) == (2, 2, True)
    assert states["api"].ready and states["kube-state-metrics"].ready
    rabbit = states["rabbitmq"]
    assert (rabbit.up, rabbit.total, rabbit.ready) == (0, 1, False)
    assert "connect: connection refused" in rabbit.errors[0]
    keda = states["keda-operator"]
    assert keda.up == 1 and keda.jobs == ("keda-operator",) and not keda.sampled
    assert str(keda).endswith("1/1 up, no sample stored yet")
    assert str(states["keda-operator-metrics-apiserver"]).endswith("no targets")
    status = rd.ScrapeStatus(pools=tuple(states.values()))
    assert not status.ready
    assert "agent" not in str(status) and "rabbitmq (podMonitor/scalelab/scalelab-rabbitmq/0): " \
        "0/1 up, lastError 'Get " in str(status)


def test_detected_pools_tell_keda_operator_from_its_metrics_apiserver() -> None:
    targets = rd.active_targets(load("prometheus-targets.json"))
    targets.append({**targets[5], "scrapePool":
                    "serviceMonitor/keda/keda-operator-metrics-apiserver/0"})
    assert rd.detected_pools(targets, rd.DETECT_PATTERNS) == [   # sorted by pool
        rd.ExpectedPool(name="keda-operator-metrics-apiserver",
                        pool="serviceMonitor/keda/keda-operator-metrics-apiserver/0"),
        rd.ExpectedPool(name="keda-operator", pool="serviceMonitor/keda/keda-operator/0"),
        rd.ExpectedPool(name="kube-state-metrics",
                        pool="serviceMonitor/monitoring/kps-kube-state-metrics/0"),
    ]


def test_error_answers_are_not_ready_not_crashes() -> None:
    with pytest.raises(rd.PrometheusUnavailable, match="bad_data"):
        rd.active_targets({"status": "error", "errorType": "bad_data", "error": "bad_data: x"})
    with pytest.raises(rd.PrometheusUnavailable, match="parse error"):
        rd.jobs_with_samples({"status": "error", "errorType": "bad_data",
                              "error": "1:7: parse error: unexpected"})


def test_apiservice_state_reads_the_available_condition() -> None:
    metrics, external = load("apiservices.json")["items"]
    assert rd.apiservice_state(rd.METRICS_APISERVICE, metrics).available
    state = rd.apiservice_state(rd.EXTERNAL_METRICS_APISERVICE, external)
    assert not state.available and state.reason == "FailedDiscoveryCheck"
    assert str(state).startswith("v1beta1.external.metrics.k8s.io: not Available "
                                 "(FailedDiscoveryCheck: failing or missing response from")
    assert str(rd.apiservice_state("x", None)) == "x: not found"
    fresh = copy.deepcopy(external)
    del fresh["status"]
    assert str(rd.apiservice_state("x", fresh)) == "x: not Available (no Available condition yet)"


# -- the waits, with recorded answers and a fake clock ------------------------------------
class RecordedPrometheus:
    """Answers from tests/kind/data; ``heal()`` turns every target up with a sample."""

    def __init__(self) -> None:
        self.targets = load("prometheus-targets.json")
        self.samples = load("prometheus-query-samples.json")
        self.calls: list[tuple[str, dict[str, str]]] = []

    def get(self, path: str, params: Mapping[str, str]) -> Any:
        self.calls.append((path, dict(params)))
        return self.targets if path == "/api/v1/targets" else self.samples

    def heal(self) -> None:
        for t in self.targets["data"]["activeTargets"]:
            t.update(health="up", lastError="")
        self.targets["data"]["activeTargets"].append(
            {**self.targets["data"]["activeTargets"][5],
             "scrapePool": "serviceMonitor/keda/keda-operator-metrics-apiserver/0",
             "labels": {"job": "keda-operator-metrics-apiserver"}})
        for job in ("scalelab/scalelab-rabbitmq", "keda-operator",
                    "keda-operator-metrics-apiserver"):
            self.samples["data"]["result"].append({"metric": {"job": job},
                                                   "value": [1732096920.0, "1"]})


PLAN = rd.ReadinessPlan(pools=tuple(SCALELAB_POOLS + ADDON_POOLS),
                        apiservices=(rd.METRICS_APISERVICE, rd.EXTERNAL_METRICS_APISERVICE))


def test_scrape_wait_times_out_naming_what_is_missing() -> None:
    p, clock = RecordedPrometheus(), FakeClock()
    with pytest.raises(WaitTimeout) as err:
        rd.wait_scraping(plan=PLAN, get=p.get, timeout=60, interval=2, clock=clock,
                         sleep=clock.sleep)
    msg = str(err.value)
    assert "timed out waiting for Prometheus to scrape the stack" in msg
    assert "expected a target with health 'up' and a stored sample in each of: agent " \
           "(podMonitor/scalelab/scalelab-services/0), api" in msg
    assert "rabbitmq (podMonitor/scalelab/scalelab-rabbitmq/0): 0/1 up, lastError" in msg
    assert "keda-operator (serviceMonitor/keda/keda-operator/0): 1/1 up, no sample" in msg
    assert "keda-operator-metrics-apiserver (serviceMonitor/keda/keda-operator-metrics-" \
           "apiserver/0): no targets" in msg
    assert "kube-state-metrics (" not in msg.split("saw", 1)[1], "ready ones are not listed"
    assert err.value.elapsed >= 60
    assert p.calls[:2] == [("/api/v1/targets", {"state": "active"}),
                           ("/api/v1/query", {"query": rd.SAMPLES_QUERY})]


def test_scrape_wait_returns_once_everything_is_up_with_a_sample() -> None:
    p, clock = RecordedPrometheus(), FakeClock()
    calls = 0

    def get(path: str, params: Mapping[str, str]) -> Any:
        nonlocal calls
        calls += 1
        if calls == 5:       # the third probe sees the healed cluster
            p.heal()
        return p.get(path, params)

    pools = rd.wait_scraping(plan=PLAN, get=get, timeout=60, interval=2, clock=clock,
                             sleep=clock.sleep)
    assert pools == tuple(x.pool for x in PLAN.pools)
    assert clock.now == 4.0


def test_prometheus_not_answering_keeps_waiting_and_says_so() -> None:
    clock = FakeClock()

    def get(path: str, params: Mapping[str, str]) -> Any:
        raise rd.PrometheusUnavailable("http://127.0.0.1:1/api/v1/targets: refused")

    with pytest.raises(WaitTimeout, match="saw Prometheus did not answer: .*refused") as err:
        rd.wait_scraping(plan=PLAN, get=get, timeout=10, clock=clock, sleep=clock.sleep)
    assert err.value.elapsed >= 10, f"gave up after {err.value.elapsed} s, before the timeout"


def test_detected_pools_are_waited_for_too() -> None:
    p, clock = RecordedPrometheus(), FakeClock()
    plan = rd.ReadinessPlan(detect=rd.DETECT_PATTERNS)   # an existing cluster, no addons
    with pytest.raises(WaitTimeout) as err:
        rd.wait_scraping(plan=plan, get=p.get, timeout=10, clock=clock, sleep=clock.sleep)
    assert "keda-operator (serviceMonitor/keda/keda-operator/0): 1/1 up, no sample" in \
        str(err.value)
    p.heal()
    assert rd.wait_scraping(plan=plan, get=p.get, timeout=10, clock=clock,
                            sleep=clock.sleep) == (
        "serviceMonitor/keda/keda-operator-metrics-apiserver/0",
        "serviceMonitor/keda/keda-operator/0",
        "serviceMonitor/monitoring/kps-kube-state-metrics/0")


def test_apiservice_wait_times_out_with_expected_actual_elapsed() -> None:
    docs = {d["metadata"]["name"]: d for d in load("apiservices.json")["items"]}
    clock = FakeClock()
    with pytest.raises(WaitTimeout) as err:
        rd.wait_apiservices(plan=PLAN, get_apiservice=docs.get, timeout=30, clock=clock,
                            sleep=clock.sleep)
    msg = str(err.value)
    assert "expected v1beta1.metrics.k8s.io Available=True, " \
           "v1beta1.external.metrics.k8s.io Available=True" in msg
    assert "saw v1beta1.external.metrics.k8s.io: not Available (FailedDiscoveryCheck" in msg
    assert "v1beta1.metrics.k8s.io: " not in msg.split("saw", 1)[1]
    assert err.value.elapsed >= 30
    # becomes Available on the 3rd read: the wait returns
    reads = 0

    def get(name: str) -> Any:
        nonlocal reads
        reads += 1
        doc = copy.deepcopy(docs[name])
        if reads >= 5:
            doc["status"]["conditions"][0].update(status="True", reason="Passed")
        return doc

    assert rd.wait_apiservices(plan=PLAN, get_apiservice=get, timeout=30, clock=clock,
                               sleep=clock.sleep) == PLAN.apiservices


def test_optional_apiservices_are_waited_for_only_when_they_exist() -> None:
    docs = {d["metadata"]["name"]: d for d in load("apiservices.json")["items"]}
    plan = rd.ReadinessPlan(optional_apiservices=(rd.METRICS_APISERVICE,
                                                  rd.EXTERNAL_METRICS_APISERVICE))
    clock = FakeClock()
    only_metrics = {rd.METRICS_APISERVICE: docs[rd.METRICS_APISERVICE]}
    assert rd.wait_apiservices(plan=plan, get_apiservice=only_metrics.get, timeout=5,
                               clock=clock, sleep=clock.sleep) == (rd.METRICS_APISERVICE,)
    with pytest.raises(WaitTimeout, match="FailedDiscoveryCheck"):
        rd.wait_apiservices(plan=plan, get_apiservice=docs.get, timeout=5, clock=clock,
                            sleep=clock.sleep)


def test_timeouts_are_settings() -> None:
    s = ClusterSettings.from_env({"SCALELAB_APISERVICE_TIMEOUT": "60",
                                  "SCALELAB_SCRAPE_READY_TIMEOUT": "90"})
    assert (s.apiservice_timeout, s.scrape_ready_timeout) == (60.0, 90.0)
    with pytest.raises(ConfigError) as err:
        ClusterSettings.from_env({"SCALELAB_SCRAPE_READY_TIMEOUT": "soon"})
    assert err.value.field == "SCALELAB_SCRAPE_READY_TIMEOUT"


# -- the step in up() (the recorder of test_cluster_commands at the cluster seam) ----------

def test_up_waits_for_readiness_after_the_port_forwards(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch)
    assert [name for name, _ in b.steps()][-2:] == ["port-forward", "readiness"]
    endpoints = b.up()
    try:
        url = endpoints.prometheus
        assert rec.readiness == [
            ("api", "get", "apiservice", rd.METRICS_APISERVICE),
            ("api", "get", "apiservice", rd.EXTERNAL_METRICS_APISERVICE),
            ("prometheus", url, "/api/v1/targets"),
            ("prometheus", url, "/api/v1/query")]
        # the forwards were up when Prometheus was asked: its URL is the forwarded one
        assert url.endswith(":" + next(c for c in rec.calls if "port-forward" in c and
                                       any("prometheus" in a for a in c))[-1].split(":")[0])
        assert list(b.timings)[-1] == "readiness"
        assert b.readiness is not None
        pools = b.readiness.pools
        for pool in ("podMonitor/scalelab/scalelab-services/0",
                     "podMonitor/scalelab/scalelab-services/1",
                     "podMonitor/scalelab/scalelab-rabbitmq/0",
                     "serviceMonitor/monitoring/kps-kube-state-metrics/0",
                     "serviceMonitor/keda/keda-operator/0",
                     "serviceMonitor/keda/keda-operator-metrics-apiserver/0"):
            assert pool in pools
        assert b.readiness.apiservices == (rd.METRICS_APISERVICE,
                                           rd.EXTERNAL_METRICS_APISERVICE)
    finally:
        b.down()


def test_a_scrape_that_never_gets_ready_fails_up_and_cleans_up(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch, scrape_ready_timeout=120.0)
    rec.prometheus_answers = {"/api/v1/targets": load("prometheus-targets.json"),
                              "/api/v1/query": load("prometheus-query-samples.json")}
    with pytest.raises(WaitTimeout) as err:
        b.up()
    assert "rabbitmq (podMonitor/scalelab/scalelab-rabbitmq/0): 0/1 up" in str(err.value)
    assert err.value.elapsed >= 120.0
    assert short(rec.calls[-1]) == "kind delete cluster --name=scalelab"
    assert all(f.stopped for f in rec.forwards)


def test_an_apiservice_that_never_gets_available_fails_up_and_cleans_up(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, api = make(tmp_path, bin_dir, monkeypatch, backend="existing",
                       apiservice_timeout=60.0)
    failing = {d["metadata"]["name"]: d for d in load("apiservices.json")["items"]}
    monkeypatch.setattr(api, "get_apiservice", lambda *, name: failing.get(name),
                        raising=False)
    with pytest.raises(WaitTimeout) as err:
        b.up()
    msg = str(err.value)
    assert "v1beta1.external.metrics.k8s.io: not Available (FailedDiscoveryCheck" in msg
    assert err.value.elapsed >= 60.0
    assert not any(r[0] == "prometheus" for r in rec.readiness), "Prometheus is not asked"
    assert any("delete" in c and "namespace" in c for c in rec.calls[-3:]), \
        "down() ran: the run's namespace is deleted"
    assert all(f.stopped for f in rec.forwards)


def test_a_failure_inside_readiness_is_not_swallowed(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch)

    def broken(url: str) -> Any:
        def get(path: str, params: Mapping[str, str]) -> Any:
            raise Boom("injected")
        return get

    b._prometheus = broken
    with pytest.raises(Boom):
        b.up()
    assert short(rec.calls[-1]) == "kind delete cluster --name=scalelab"


def test_existing_without_addons_detects_and_waits_only_for_what_exists(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, api = make(tmp_path, bin_dir, monkeypatch, backend="existing",
                       install_addons=False, prometheus_service="observability/prometheus:9090")
    only_metrics, reads = load("apiservices.json")["items"][0], []

    def get_apiservice(*, name: str) -> Any:
        reads.append(name)
        return only_metrics if name == rd.METRICS_APISERVICE else None

    monkeypatch.setattr(api, "get_apiservice", get_apiservice, raising=False)
    rec.prometheus_answers = {"/api/v1/targets": load("prometheus-targets.json"),
                              "/api/v1/query": load("prometheus-query-samples.json")}
    # The cluster's own KEDA operator is detected and has no sample yet: waited for
    with pytest.raises(WaitTimeout, match="keda-operator .*no sample stored yet"):
        b.up()
    plan = b.readiness_plan()   # what up() waited for (the stack's monitors, if applied)
    assert not any(p.pool.startswith("serviceMonitor/") for p in plan.pools), plan.pools
    assert plan.apiservices == ()
    assert plan.optional_apiservices == (rd.METRICS_APISERVICE, rd.EXTERNAL_METRICS_APISERVICE)
    # each optional one looked up once; then only the existing one is waited for
    assert reads == [rd.METRICS_APISERVICE, rd.EXTERNAL_METRICS_APISERVICE,
                     rd.METRICS_APISERVICE]


# -- KubeApi.get_apiservice through the real client -----------------------------------------

def test_get_apiservice_round_trips_to_kubectl_shaped_json(
        api_server: tuple[KubeApi, FakeApiServer]) -> None:
    client, server = api_server
    for doc in load("apiservices.json")["items"]:
        server.routes[f"/apis/apiregistration.k8s.io/v1/apiservices/{doc['metadata']['name']}"] \
            = doc
    got = client.get_apiservice(name=rd.EXTERNAL_METRICS_APISERVICE)
    assert got is not None
    assert got["spec"]["service"]["name"] == "keda-operator-metrics-apiserver"
    assert got["status"]["conditions"][0]["lastTransitionTime"].startswith("2024-11-20T10:00:12")
    assert rd.apiservice_state(rd.EXTERNAL_METRICS_APISERVICE, got).reason == \
        "FailedDiscoveryCheck"
    assert rd.apiservice_state(rd.METRICS_APISERVICE, client.get_apiservice(
        name=rd.METRICS_APISERVICE)).available
    assert client.get_apiservice(name="v1beta1.custom.metrics.k8s.io") is None


# -- a REAL Prometheus ----------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pool_job(pool: str, job: str, address: str) -> dict[str, Any]:
    """A scrape job named like the operator's pool, relabelling ``job`` as it does."""
    return {"job_name": pool, "metrics_path": "/metrics",
            "static_configs": [{"targets": [address]}],
            "relabel_configs": [{"target_label": "job", "replacement": job}]}


@pytest.fixture
def real_prometheus(tmp_path: Path) -> Iterator[prom.PrometheusServer]:
    """A real Prometheus scraping itself under the operator's pool names, plus a pool whose
    target refuses connections (a RabbitMQ whose plugin is not listening yet)."""
    port = port_for.select_random()
    config = prom.build_config(scrape_interval=1.0)
    self_addr = f"127.0.0.1:{port}"
    config["scrape_configs"] = [
        _pool_job("podMonitor/scalelab/scalelab-services/0", "scalelab/scalelab-services",
                  self_addr),
        _pool_job("serviceMonitor/monitoring/kps-kube-state-metrics/0", "kube-state-metrics",
                  self_addr),
        _pool_job("serviceMonitor/keda/keda-operator/0", "keda-operator", self_addr),
        _pool_job("podMonitor/scalelab/scalelab-rabbitmq/0", "scalelab/scalelab-rabbitmq",
                  f"127.0.0.1:{_closed_port()}"),
    ]
    srv = prom.PrometheusServer(config=config, workdir=tmp_path / "prom", port=port)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.slow
def test_real_prometheus_targets_are_read_and_waited_for(
        real_prometheus: prom.PrometheusServer) -> None:
    get = rd.http_prometheus(real_prometheus.url)
    agent = rd.ExpectedPool(name="agent", pool="podMonitor/scalelab/scalelab-services/0")
    ksm = rd.ExpectedPool(name="kube-state-metrics",
                          pool="serviceMonitor/monitoring/kps-kube-state-metrics/0")
    rabbit = rd.ExpectedPool(name="rabbitmq", pool="podMonitor/scalelab/scalelab-rabbitmq/0")
    started = time.monotonic()
    pools = rd.wait_scraping(plan=rd.ReadinessPlan(pools=(agent, ksm), detect=rd.DETECT_PATTERNS),
                             get=get, timeout=30, interval=0.5)
    print(f"scraped with a sample after {time.monotonic() - started:.1f}s")
    # keda-operator was not in the plan: detected among the real pools, and waited for
    assert pools == (agent.pool, ksm.pool, "serviceMonitor/keda/keda-operator/0")
    # the real answer's jobs carry the relabelled job, and samples were stored for them
    targets = rd.active_targets(get("/api/v1/targets", {"state": "active"}))
    states = {s.name: s for s in rd.pool_states(
        targets, [agent, ksm, rabbit],
        rd.jobs_with_samples(get("/api/v1/query", {"query": rd.SAMPLES_QUERY})))}
    assert states["agent"].jobs == ("scalelab/scalelab-services",) and states["agent"].ready
    assert states["kube-state-metrics"].ready
    # the refusing target: down, with Prometheus' own lastError, and the wait says so
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as err:
        rd.wait_scraping(plan=rd.ReadinessPlan(pools=(agent, rabbit)), get=get, timeout=4,
                         interval=0.5)
    assert time.monotonic() - started < 15
    msg = str(err.value)
    assert "rabbitmq (podMonitor/scalelab/scalelab-rabbitmq/0): 0/1 up, lastError" in msg
    assert "connection refused" in msg
    assert "agent (" not in msg.split("saw", 1)[1]
    assert err.value.elapsed >= 4


def test_http_prometheus_on_a_closed_port_is_unavailable_not_an_exception() -> None:
    get = rd.http_prometheus(f"http://127.0.0.1:{_closed_port()}", timeout=2)
    status = rd.scrape_status(get, PLAN)
    assert not status.ready
    assert str(status).startswith("Prometheus did not answer: http://127.0.0.1:")
