"""The named queries, the step choice, target lines and capture against a real Prometheus."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import port_for
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from scalelab import queries
from scalelab.control.keda import ScaledObjectSpec
from scalelab.procs import prometheus as prom
from scalelab.scaling_manifests import load_scaling
from scalelab.scaling_object import ScalingObject
from scalelab.waiting import wait_for


def test_every_query_has_key_title_unit_and_a_known_chart() -> None:
    charts = {c.key for c in queries.CHARTS}
    keys = [q.key for q in queries.QUERIES]
    assert len(keys) == len(set(keys))
    for q in queries.QUERIES:
        assert q.title and q.unit and q.promql
        assert q.chart in charts, q.key
        assert q.target in (None, "replica_bounds", "cpu_target", "queue_target")


def test_queries_scope_to_the_stack_names() -> None:
    by_key = {q.key: q.promql for q in queries.build_queries(namespace="ns1", deployment="w")}
    assert 'namespace="ns1",deployment="w"' in by_key["replicas_spec"]
    # CPU usage is joined with requests per pod, as the HPA computes utilization.
    assert "sum by (namespace, pod)" in by_key["cpu_utilization_by_pod"]
    assert 'pod=~"w-.*"' in by_key["cpu_utilization"]


@given(span=st.floats(min_value=1, max_value=30 * 86400),
       scrape=st.floats(min_value=0.5, max_value=60))
def test_step_keeps_under_the_point_limit_and_not_finer_than_scrapes(
        span: float, scrape: float) -> None:
    step = queries.choose_step(start=1000.0, end=1000.0 + span, scrape_interval=scrape)
    assert step >= scrape
    assert span / step + 1 <= queries.MAX_POINTS


HPA = """apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: agent}
spec:
  minReplicas: 2
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
"""
KEDA = """apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: agent}
spec:
  minReplicaCount: 1
  maxReplicaCount: 6
  triggers:
  - type: rabbitmq
    metadata: {queueName: agent-tasks, mode: QueueLength, value: "20"}
"""


def test_targets_from_hpa_and_scaledobject() -> None:
    t = queries.targets_from_manifests([{"path": "a", "objects": [], "text": HPA}])
    assert (t.cpu_target_percent, t.queue_value, t.min_replicas, t.max_replicas) == \
        (50.0, None, 2, 4)
    t = queries.targets_from_manifests([{"path": "b", "objects": [], "text": KEDA}])
    assert (t.cpu_target_percent, t.queue_value, t.min_replicas, t.max_replicas) == \
        (None, 20.0, 1, 6)
    assert queries.targets_from_manifests([{"path": "c", "objects": []}]) == queries.Targets()


def _objects(tmp_path: Path, *texts: str) -> list[ScalingObject]:
    out: list[ScalingObject] = []
    for i, text in enumerate(texts):
        (tmp_path / f"m{i}.yaml").write_text(text)
        out += load_scaling(tmp_path / f"m{i}.yaml")
    return out


def test_scaling_names_scope_the_autoscaler_queries(tmp_path: Path) -> None:
    named = KEDA.replace("spec:\n", "spec:\n  advanced: {horizontalPodAutoscalerConfig: "
                         "{name: custom}}\n", 1).replace("name: agent", "name: other")
    names = queries.scaling_names(_objects(tmp_path, HPA, KEDA, named))
    assert names.hpas == ("agent", "keda-hpa-agent", "custom")
    assert names.scaled_objects == ("agent", "other")
    by_key = {q.key: q.promql for q in queries.build_queries(
        hpas=names.hpas, scaled_objects=names.scaled_objects)}
    assert 'horizontalpodautoscaler=~"agent|custom|keda-hpa-agent"' in by_key["replicas_desired"]
    assert 'scaledObject=~"agent|other"' in by_key["keda_metric"]
    unscoped = {q.key: q.promql for q in queries.QUERIES}
    assert "horizontalpodautoscaler=~" not in unscoped["replicas_desired"]


def test_the_scenario_names_its_autoscalers_as_the_keda_emulation_does(tmp_path: Path) -> None:
    """The queries' ``keda-hpa-<name>`` rule and the emulated KEDA's HPA name agree (the
    name the controller exports its series under is the one the report scopes to)."""
    keda = KEDA.replace("spec:\n", "spec:\n  scaleTargetRef: {name: agent}\n", 1).replace(
        "value: \"20\"}", "value: \"20\", hostFromEnv: RABBITMQ_HOST}")
    named = keda.replace("spec:\n", "spec:\n  advanced: {horizontalPodAutoscalerConfig: "
                         "{name: custom}}\n", 1)
    for text in (keda, named):
        (obj,) = _objects(tmp_path, text)
        spec = ScaledObjectSpec.from_manifest(obj.doc, env={"RABBITMQ_HOST": "amqp://h"})
        assert queries.scaling_names([obj]).hpas == (spec.hpa_name,)


def test_the_observer_and_report_cpu_queries_are_one_expression() -> None:
    """The timeline's cpu_utilization and the report's chart read the same PromQL."""
    chart = next(q for q in queries.build_queries(namespace="ns1", deployment="w")
                 if q.key == "cpu_utilization")
    assert chart.promql == queries.cpu_utilization(namespace="ns1", deployment="w",
                                                   window="20s")
    assert queries.cpu_utilization(namespace="ns1", deployment="w", window="20s",
                                   by=("pod",)).startswith("100 * sum by (pod) (rate(")
    assert queries.desired_replicas(namespace="ns1", hpas=["a.b"]) == (
        'max(kube_horizontalpodautoscaler_status_desired_replicas{namespace="ns1",'
        'horizontalpodautoscaler=~"a\\\\.b"})')


def test_unreachable_prometheus_is_recorded_not_raised() -> None:
    port = port_for.select_random()
    out = queries.capture_series(f"http://127.0.0.1:{port}", start=0.0, end=60.0, timeout=2)
    assert set(out["queries"]) == {q.key for q in queries.QUERIES}
    assert all(e["error"] and e["series"] == [] for e in out["queries"].values())


@pytest.fixture
def exporter() -> Iterator[tuple[str, Gauge]]:
    """A real /metrics endpoint speaking kube-state-metrics' replica gauge."""
    registry = CollectorRegistry()
    gauge = Gauge("kube_deployment_spec_replicas", "spec.replicas",
                  ["namespace", "deployment"], registry=registry)
    gauge.labels("scalelab", "agent").set(3)
    desired = Gauge("kube_horizontalpodautoscaler_status_desired_replicas", "desired",
                    ["namespace", "horizontalpodautoscaler"], registry=registry)
    # the scenario's HPA, a previous scenario's, and a dotted name with a near miss
    for hpa, value in (("keda-hpa-agent", 2), ("agent", 4), ("old.one", 9), ("oldxone", 7)):
        desired.labels("scalelab", hpa).set(value)
    port = port_for.select_random()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{port}", gauge
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.slow
def test_capture_series_from_a_real_prometheus(tmp_path: Path,
                                               exporter: tuple[str, Gauge]) -> None:
    address, _ = exporter
    config = prom.build_config(scrape_interval=1.0,
                               static=[prom.StaticTarget(job="ksm", address=address,
                                                         honor_labels=True)])
    server = prom.PrometheusServer(config=config, workdir=tmp_path / "prom")
    server.start()
    try:
        start = time.time()
        spec = next(q for q in queries.QUERIES if q.key == "replicas_spec")
        bad = queries.Query(key="bad", title="broken", promql="sum(", unit="x",
                            chart="replicas")

        def samples() -> int:
            out = queries.capture_series(server.url, start=start - 5, end=time.time(),
                                         scrape_interval=1.0, queries=(spec,))
            series = out["queries"]["replicas_spec"]["series"]
            return sum(1 for s in series for _, v in s["values"] if v is not None)

        wait_for(samples, lambda n: n >= 3, what="3 scraped replica samples", expected=">= 3",
                 timeout=30, interval=0.5)
        end = time.time()
        out = queries.capture_series(server.url, start=start, end=end,
                                     scenario={"name": "s1", "timing_profile":
                                               {"scrape_interval": 1.0}},
                                     queries=(spec, bad))
        # scoped to the scenario's autoscalers, Prometheus returns only theirs (the dotted
        # name is matched literally, and the escaping parses)
        scoped = {}
        for hpas in (("keda-hpa-agent",), ("old.one", "keda-hpa-agent")):
            desired = next(q for q in queries.build_queries(hpas=hpas)
                           if q.key == "replicas_desired")
            scoped[hpas] = queries.capture_series(
                server.url, start=start, end=end, scrape_interval=1.0,
                queries=(desired,))["queries"]["replicas_desired"]
    finally:
        server.stop()
    assert out["scenario"] == "s1" and out["step"] == 1.0
    entry = out["queries"]["replicas_spec"]
    assert entry["promql"] == spec.promql and "error" not in entry
    (series,) = entry["series"]
    assert series["labels"]["deployment"] == "agent"
    assert {v for _, v in series["values"]} == {3.0}
    assert "parse error" in out["queries"]["bad"]["error"], out["queries"]["bad"]["error"]
    assert out["queries"]["bad"]["series"] == []
    for hpas, expected in ((("keda-hpa-agent",), {"keda-hpa-agent": 2.0}),
                           (("old.one", "keda-hpa-agent"), {"keda-hpa-agent": 2.0,
                                                            "old.one": 9.0})):
        got = scoped[hpas]
        assert "error" not in got, got
        assert {s["labels"]["horizontalpodautoscaler"]: s["values"][-1][1]
                for s in got["series"]} == expected
