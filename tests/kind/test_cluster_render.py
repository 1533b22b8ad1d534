"""What the cluster backends render: kind config, Helm values, monitors, Grafana dashboards.

Offline: the files are parsed and checked against the upstream types/schemas we have here
(kind v1alpha4 field names, the Kubernetes OpenAPI schemas of kubernetes-validate), and
every number that comes from the timing profile is checked to come from it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from scalelab.backends.cluster.render import (
    dashboard_files,
    go_duration,
    grafana_configmaps,
    load_charts,
    render_kind_config,
    render_overlay,
    render_values,
)
from scalelab.backends.cluster.settings import (
    BASE_DIR,
    CLUSTER_DIR,
    DASHBOARD_LABEL,
    DEFAULT_PROMETHEUS_SERVICE,
    GRAFANA_DIR,
    MONITORING_NAMESPACE,
)
from scalelab.errors import ConfigError
from scalelab.settings import KUBERNETES_DEFAULTS, TimingProfile

PROFILES = [TimingProfile(), KUBERNETES_DEFAULTS,
            TimingProfile(scrape_interval=2.5, hpa_sync_period=1.5, metrics_window=12,
                          hpa_tolerance=0.05, hpa_cpu_initialization_period=60,
                          hpa_initial_readiness_delay=7, hpa_downscale_stabilization=45)]

#: Field names of sigs.k8s.io/kind pkg/apis/config/v1alpha4/types.go (Cluster, Node);
#: kind decodes its config strictly, so any other key is an error at `kind create cluster`.
KIND_CLUSTER_FIELDS = {"kind", "apiVersion", "name", "nodes", "networking", "featureGates",
                       "runtimeConfig", "kubeadmConfigPatches", "kubeadmConfigPatchesJSON6902",
                       "containerdConfigPatches", "containerdConfigPatchesJSON6902"}
KIND_NODE_FIELDS = {"role", "image", "labels", "extraMounts", "extraPortMappings", "gpus",
                    "kubeadmConfigPatches", "kubeadmConfigPatchesJSON6902"}

#: The metric names the dashboards may query (kube-state-metrics, cAdvisor, KEDA,
#: rabbitmq_prometheus, the services).
ALLOWED_METRICS = {
    "kube_deployment_spec_replicas", "kube_deployment_status_replicas",
    "kube_deployment_status_replicas_ready", "kube_pod_container_resource_requests",
    "container_cpu_usage_seconds_total",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_status_desired_replicas",
    "kube_horizontalpodautoscaler_spec_min_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas",
    "keda_scaler_metrics_value", "keda_scaler_active",
    "rabbitmq_detailed_queue_messages_ready", "rabbitmq_detailed_queue_messages_unacked",
    "rabbitmq_detailed_queue_consumers", "rabbitmq_consumers", "rabbitmq_connections",
    "rabbitmq_channels", "rabbitmq_global_messages_received_total",
    "rabbitmq_global_messages_confirmed_total", "rabbitmq_global_messages_delivered_total",
    "rabbitmq_global_messages_acknowledged_total",
    "container_memory_working_set_bytes", "kube_pod_container_status_restarts_total",
    "scalelab_api_tasks_published_total", "scalelab_api_request_duration_seconds_bucket",
    "scalelab_agent_tasks_processed_total", "scalelab_agent_task_duration_seconds_bucket",
    "scalelab_agent_queue_wait_seconds_bucket",
}
PROMQL_WORDS = {"sum", "rate", "irate", "increase", "avg", "max", "min", "count",
                "histogram_quantile", "by", "without", "on", "ignoring", "group_left",
                "group_right", "and", "or", "unless", "offset", "clamp_min", "clamp_max",
                "label_replace", "vector", "scalar", "abs", "topk", "bottomk"}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label matchers, ranges, groupings removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)         # strings
    text = re.sub(r"\{[^}]*\}", "", text)                     # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)                    # range selectors
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return {w for w in words if w not in PROMQL_WORDS and not re.fullmatch(r"e\d*", w)}


def test_metric_name_extraction_sees_through_matchers_and_groupings() -> None:
    expr = ('100 * sum by (pod) (rate(container_cpu_usage_seconds_total{pod=~"a-.*",'
            'container!=""}[$__rate_interval])) / sum(kube_pod_container_resource_requests'
            '{resource="cpu"})')
    assert metric_names(expr) == {"container_cpu_usage_seconds_total",
                                  "kube_pod_container_resource_requests"}
    assert metric_names("histogram_quantile(0.95, sum by (le) (rate(x_bucket[1m])))") == \
        {"x_bucket"}


# -- kind config ---------------------------------------------------------------------------
def _controller_manager_args(config: dict[str, Any]) -> dict[str, str]:
    (node,) = config["nodes"]
    (patch,) = [yaml.safe_load(p) for p in node["kubeadmConfigPatches"]]
    assert patch["kind"] == "ClusterConfiguration"
    args = patch["controllerManager"]["extraArgs"]
    assert all(isinstance(v, str) for v in args.values()), "kubeadm v1beta3 wants strings"
    return dict(args)


@pytest.mark.parametrize("timing", PROFILES, ids=["default", "kubernetes", "odd"])
def test_kind_config_carries_the_timing_profile(timing: TimingProfile) -> None:
    config = yaml.safe_load(render_kind_config(timing=timing, cluster_name="exp1",
                                                    node_image="kindest/node:v1.30.4"))
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["kind"] == "Cluster"
    assert config["name"] == "exp1"
    assert set(config) <= KIND_CLUSTER_FIELDS
    for node in config["nodes"]:
        assert set(node) <= KIND_NODE_FIELDS
        assert node["role"] in ("control-plane", "worker")
    args = _controller_manager_args(config)
    assert args == {
        "horizontal-pod-autoscaler-sync-period": go_duration(timing.hpa_sync_period),
        "horizontal-pod-autoscaler-tolerance": f"{timing.hpa_tolerance:g}",
        "horizontal-pod-autoscaler-cpu-initialization-period":
            go_duration(timing.hpa_cpu_initialization_period),
        "horizontal-pod-autoscaler-initial-readiness-delay":
            go_duration(timing.hpa_initial_readiness_delay),
        "horizontal-pod-autoscaler-downscale-stabilization":
            go_duration(timing.hpa_downscale_stabilization),
    }


def test_go_durations_parse_back_to_the_profile_seconds() -> None:
    def parse(d: str) -> float:
        m = re.fullmatch(r"(\d+)(ms|s)", d)
        assert m, d
        return int(m.group(1)) / (1000 if m.group(2) == "ms" else 1)

    for seconds in (5.0, 15.0, 300.0, 1.5, 0.25, 2.5):
        assert parse(go_duration(seconds)) == seconds
    assert go_duration(1.5) == "1500ms"
    assert go_duration(300.0) == "300s"


def test_a_metrics_window_below_ten_seconds_is_refused_before_anything_starts() -> None:
    with pytest.raises(ConfigError) as err:
        render_kind_config(timing=TimingProfile(metrics_window=5))
    assert err.value.field == "timing.metrics_window"
    assert "10s" in str(err.value)


# -- Helm ----------------------------------------------------------------------------------
def test_charts_are_pinned_to_exact_versions_from_public_repos() -> None:
    charts = {r.chart: r for r in load_charts()}
    assert set(charts) == {"metrics-server", "kube-prometheus-stack", "keda"}
    assert charts["keda"].repo == "https://kedacore.github.io/charts"
    for release in charts.values():
        assert re.fullmatch(r"\d+\.\d+\.\d+", release.version)
        assert release.repo.startswith("https://")
        assert (CLUSTER_DIR / release.values).is_file()


def test_an_unpinned_chart_is_a_config_error_naming_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "charts.yaml"
    bad.write_text("releases:\n  - {name: keda, namespace: keda, repo: https://x, chart: keda,"
                   " version: '2.x', values: v.j2}\n")
    with pytest.raises(ConfigError) as err:
        load_charts(bad)
    assert err.value.file == str(bad)
    assert err.value.field == "releases[0].version"


def _values(chart: str, timing: TimingProfile) -> dict[str, Any]:
    (release,) = [r for r in load_charts() if r.chart == chart]
    return yaml.safe_load(render_values(release, timing=timing))


@pytest.mark.parametrize("timing", PROFILES, ids=["default", "kubernetes", "odd"])
def test_metrics_server_values(timing: TimingProfile) -> None:
    values = _values("metrics-server", timing)
    args = values["defaultArgs"] + values["args"]
    assert "--kubelet-insecure-tls" in args
    resolution = [a for a in args if a.startswith("--metric-resolution=")]
    assert resolution == [f"--metric-resolution={go_duration(timing.metrics_window)}"]


@pytest.mark.parametrize("timing", PROFILES, ids=["default", "kubernetes", "odd"])
def test_kube_prometheus_stack_values(timing: TimingProfile) -> None:
    values = _values("kube-prometheus-stack", timing)
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["scrapeInterval"] == go_duration(timing.scrape_interval)
    # PodMonitors/ServiceMonitors outside the release (KEDA's, scalelab's) are selected.
    assert spec["podMonitorSelectorNilUsesHelmValues"] is False
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    sidecar = values["grafana"]["sidecar"]["dashboards"]
    assert sidecar["enabled"] is True
    assert (sidecar["label"], sidecar["labelValue"]) == (DASHBOARD_LABEL, "1")
    # The services the backend port-forwards are named from fullnameOverride.
    prometheus_service = f"monitoring/{values['fullnameOverride']}-prometheus:9090"
    assert prometheus_service == DEFAULT_PROMETHEUS_SERVICE


def test_keda_values_export_the_scaler_metrics() -> None:
    values = _values("keda", TimingProfile(scrape_interval=3))
    for part in ("operator", "metricServer"):
        monitor = values["prometheus"][part]["serviceMonitor"]
        assert values["prometheus"][part]["enabled"] is True
        assert (monitor["enabled"], monitor["interval"]) == (True, "3s")
        # kedacore/charts#434: the series' own namespace back from exported_namespace
        # (tests/kind/test_label_contract.py checks what Prometheus stores with it)
        restore, drop = monitor["metricRelabelings"]
        assert restore["sourceLabels"] == ["exported_namespace"]
        assert restore["targetLabel"] == "namespace"
        assert drop == {"regex": "exported_namespace", "action": "labeldrop"}


# -- monitors and dashboards ----------------------------------------------------------------
def test_pod_monitors_select_the_stack_and_rabbitmq_detailed_queue_metrics() -> None:
    docs = list(yaml.safe_load_all((CLUSTER_DIR / "monitors.yaml").read_text()))
    assert {d["kind"] for d in docs} == {"PodMonitor"}
    base = {}
    for path in BASE_DIR.glob("*.yaml"):
        for d in yaml.safe_load_all(path.read_text()):
            if d and d["kind"] == "Deployment":
                base[d["metadata"]["name"]] = d
    for monitor in docs:
        assert monitor["metadata"]["namespace"] == "scalelab"
        ports = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
        sel = monitor["spec"]["selector"]
        names = (sel["matchExpressions"][0]["values"] if "matchExpressions" in sel
                 else [sel["matchLabels"]["app.kubernetes.io/name"]])
        for name in names:  # every selected Deployment exposes one of the scraped ports
            pod_ports = {p["name"] for c in base[name]["spec"]["template"]["spec"]["containers"]
                         for p in c.get("ports", [])}
            assert pod_ports & ports, (name, pod_ports, ports)
    (rabbit,) = [d for d in docs if d["metadata"]["name"] == "scalelab-rabbitmq"]
    detailed, aggregated = rabbit["spec"]["podMetricsEndpoints"]
    assert detailed["path"] == "/metrics/detailed"
    assert "queue_coarse_metrics" in detailed["params"]["family"]
    # the aggregated /metrics too (global rates, connections, channels, consumers)
    assert aggregated["path"] == "/metrics" and aggregated["port"] == detailed["port"]


def _dashboards() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, json.loads(p.read_text())) for p in dashboard_files()]


def test_four_dashboards_with_distinct_uids() -> None:
    dashboards = _dashboards()
    assert {p.stem for p, _ in dashboards} == {"pods", "rabbitmq", "throughput", "autoscaling"}
    assert len({d["uid"] for _, d in dashboards}) == 4


@pytest.mark.parametrize("stem", ["pods", "rabbitmq", "throughput", "autoscaling"])
def test_dashboard_panels_query_only_known_metrics(stem: str) -> None:
    dashboard = json.loads((GRAFANA_DIR / f"{stem}.json").read_text())
    assert dashboard["panels"], "a dashboard without panels"
    used: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["type"] == "prometheus"
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, target["expr"]
            assert names <= ALLOWED_METRICS, (panel["title"], names - ALLOWED_METRICS)
            used |= names
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert "datasource" in variables
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for var in re.findall(r"\$(\w+)", target["expr"]):
                assert var in variables or var.startswith("__"), var


def test_the_dashboards_together_cover_every_metric_of_the_list() -> None:
    used = set()
    for _, d in _dashboards():
        for panel in d["panels"]:
            for target in panel["targets"]:
                used |= metric_names(target["expr"])
    assert used == ALLOWED_METRICS


def test_dashboard_configmaps_are_valid_and_labelled_for_the_grafana_sidecar() -> None:
    maps = grafana_configmaps()
    assert len(maps) == 4
    for cm in maps:
        kubernetes_validate.validate(cm, "1.30", strict=True)
        assert cm["metadata"]["labels"][DASHBOARD_LABEL] == "1"
        assert cm["metadata"]["namespace"] == MONITORING_NAMESPACE
        ((key, text),) = cm["data"].items()
        assert key.endswith(".json")
        assert json.loads(text)["panels"]
        # last-applied/managed-fields must stay well under the 1 MiB object limit
        assert len(text) < 256 * 1024


def test_an_invalid_configmap_would_be_caught() -> None:
    cm = grafana_configmaps()[0]
    cm["metadata"]["labels"] = {DASHBOARD_LABEL: 1}   # not a string
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(cm, "1.30", strict=True)


def test_overlay_points_at_base_and_rewrites_images_for_a_registry(tmp_path: Path) -> None:
    overlay = tmp_path / "stack"
    overlay.mkdir()
    plain = render_overlay(overlay_dir=overlay)
    assert (overlay / plain["resources"][0]).resolve() == BASE_DIR.resolve()
    assert "images" not in plain and "replicas" not in plain
    custom = render_overlay(overlay_dir=overlay, image_prefix="ghcr.io/me/",
                                 image_tag="abc123", agent_replicas=3)
    assert {"name": "scalelab/agent", "newName": "ghcr.io/me/scalelab/agent",
            "newTag": "abc123"} in custom["images"]
    assert custom["replicas"] == [{"name": "agent", "count": 3}]
    # the names rewritten are the images manifests/base actually uses
    base_images = set()
    for path in BASE_DIR.glob("*.yaml"):
        for d in yaml.safe_load_all(path.read_text()):
            if d and d["kind"] == "Deployment":
                base_images |= {c["image"].split(":")[0]
                                for c in d["spec"]["template"]["spec"]["containers"]}
    assert {i["name"] for i in custom["images"]} <= base_images
