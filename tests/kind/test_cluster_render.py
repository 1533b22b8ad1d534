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
    prometheus_duration,
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
PROFILE_IDS = ["default", "kubernetes", "odd"]
PROFILE_CASES = list(zip(PROFILES, PROFILE_IDS, strict=True))

#: The kube-controller-manager flags each profile must give the cluster, written out.
#: Durations as Go's time.Duration.String() prints them; for "kubernetes" they are the
#: defaults the kube-controller-manager reference lists (kubernetes.io/docs/reference/
#: command-line-tools-reference/kube-controller-manager: sync-period 15s, tolerance 0.1,
#: cpu-initialization-period 5m0s, initial-readiness-delay 30s, downscale-stabilization 5m0s).
EXPECTED_HPA_FLAGS = {
    "default": {
        "horizontal-pod-autoscaler-sync-period": "5s",
        "horizontal-pod-autoscaler-tolerance": "0.1",
        "horizontal-pod-autoscaler-cpu-initialization-period": "5m0s",
        "horizontal-pod-autoscaler-initial-readiness-delay": "30s",
        "horizontal-pod-autoscaler-downscale-stabilization": "5m0s",
    },
    "kubernetes": {
        "horizontal-pod-autoscaler-sync-period": "15s",
        "horizontal-pod-autoscaler-tolerance": "0.1",
        "horizontal-pod-autoscaler-cpu-initialization-period": "5m0s",
        "horizontal-pod-autoscaler-initial-readiness-delay": "30s",
        "horizontal-pod-autoscaler-downscale-stabilization": "5m0s",
    },
    "odd": {
        "horizontal-pod-autoscaler-sync-period": "1.5s",
        "horizontal-pod-autoscaler-tolerance": "0.05",
        "horizontal-pod-autoscaler-cpu-initialization-period": "1m0s",
        "horizontal-pod-autoscaler-initial-readiness-delay": "7s",
        "horizontal-pod-autoscaler-downscale-stabilization": "45s",
    },
}
#: Prometheus' scrape interval (integer units only: 2.5 s is "2500ms") and metrics-server's
#: --metric-resolution (a Go duration) of each profile, written out.
EXPECTED_SCRAPE = {"default": "5s", "kubernetes": "15s", "odd": "2500ms"}
EXPECTED_RESOLUTION = {"default": "10s", "kubernetes": "1m0s", "odd": "12s"}
#: The values documents of the default profile (tests/kind/data/helm-values/README.md).
EXPECTED_VALUES_DIR = Path(__file__).parent / "data" / "helm-values"

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


@pytest.mark.parametrize(("timing", "profile"), PROFILE_CASES, ids=PROFILE_IDS)
def test_kind_config_carries_the_timing_profile(timing: TimingProfile, profile: str) -> None:
    config = yaml.safe_load(render_kind_config(timing=timing, cluster_name="exp1",
                                                    node_image="kindest/node:v1.30.4"))
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["kind"] == "Cluster"
    assert config["name"] == "exp1"
    assert set(config) <= KIND_CLUSTER_FIELDS, set(config) - KIND_CLUSTER_FIELDS
    for node in config["nodes"]:
        assert set(node) <= KIND_NODE_FIELDS, set(node) - KIND_NODE_FIELDS
        assert node["role"] in ("control-plane", "worker")
        assert node["image"] == "kindest/node:v1.30.4"
    args = _controller_manager_args(config)
    assert args == EXPECTED_HPA_FLAGS[profile], \
        f"expected {EXPECTED_HPA_FLAGS[profile]}, rendered {args}"


#: Go's own table (go src/time/time_test.go, ``durationTests``, the positive entries a float
#: of seconds holds exactly enough), then the profile values scalelab renders.
GO_DURATION_STRINGS = [
    (0.0, "0s"),
    (1e-9, "1ns"),
    (1.1e-6, "1.1\u00b5s"),
    (2.2e-3, "2.2ms"),
    (3.3, "3.3s"),
    (4 * 60 + 5, "4m5s"),
    (4 * 60 + 5.001, "4m5.001s"),
    (5 * 3600 + 6 * 60 + 7.001, "5h6m7.001s"),
    (8 * 60 + 1e-9, "8m0.000000001s"),
    (0.5, "500ms"),
    (1.5, "1.5s"),
    (5.0, "5s"),
    (59.0, "59s"),
    (60.0, "1m0s"),
    (90.0, "1m30s"),
    (300.0, "5m0s"),
    (600.0, "10m0s"),
    (3600.0, "1h0m0s"),
    (3661.0, "1h1m1s"),
    (2400.0, "40m0s"),
]


@pytest.mark.parametrize(("seconds", "expected"), GO_DURATION_STRINGS,
                         ids=[e for _, e in GO_DURATION_STRINGS])
def test_go_duration_prints_what_go_time_duration_string_prints(
        seconds: float, expected: str) -> None:
    """Go's rules (src/time/time.go, ``func (d Duration) String``): h, m, s with leading
    zero units left out ("1m30s", "5m0s", "1h0m0s"), fractions of a second without trailing
    zeros ("1.5s"), below a second the largest of ms/\u00b5s/ns with a non-zero leading digit
    ("500ms"), and "0s" for zero."""
    assert go_duration(seconds) == expected, \
        f"go_duration({seconds!r}): expected {expected!r}, got {go_duration(seconds)!r}"


def test_go_duration_refuses_a_negative_duration() -> None:
    with pytest.raises(ValueError, match="negative"):
        go_duration(-1.0)


#: Prometheus' duration grammar (the prometheus-operator ``Duration`` pattern; integer units).
PROMETHEUS_DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?"
                                 r"(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")


@pytest.mark.parametrize(("seconds", "expected"), [
    (5.0, "5s"), (15.0, "15s"), (300.0, "300s"), (2.5, "2500ms"), (0.25, "250ms"),
    (1.5, "1500ms")])
def test_prometheus_duration_has_integer_units_only(seconds: float, expected: str) -> None:
    got = prometheus_duration(seconds)
    assert got == expected, f"prometheus_duration({seconds}): expected {expected!r}, got {got!r}"
    assert PROMETHEUS_DURATION.fullmatch(got), f"{got!r} is not a Prometheus duration"


def test_a_go_duration_with_a_fraction_is_no_prometheus_duration() -> None:
    """Why the scrape interval is not rendered with go_duration."""
    assert go_duration(2.5) == "2.5s"
    assert PROMETHEUS_DURATION.fullmatch("2.5s") is None
    assert PROMETHEUS_DURATION.fullmatch("2500ms") and PROMETHEUS_DURATION.fullmatch("5m0s")


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


def _expected_values(chart: str, profile: str) -> dict[str, Any]:
    """The default profile's document (data/helm-values) with the profile's timing strings
    (the literal tables above) at the paths that carry them."""
    doc: dict[str, Any] = yaml.safe_load((EXPECTED_VALUES_DIR / f"{chart}.yaml").read_text())
    if chart == "metrics-server":
        doc["defaultArgs"][3] = f"--metric-resolution={EXPECTED_RESOLUTION[profile]}"
    elif chart == "kube-prometheus-stack":
        spec = doc["prometheus"]["prometheusSpec"]
        spec["scrapeInterval"] = spec["evaluationInterval"] = EXPECTED_SCRAPE[profile]
    else:
        for part in ("operator", "metricServer"):
            doc["prometheus"][part]["serviceMonitor"]["interval"] = EXPECTED_SCRAPE[profile]
    return doc


@pytest.mark.parametrize("chart", ["metrics-server", "kube-prometheus-stack", "keda"])
@pytest.mark.parametrize(("timing", "profile"), PROFILE_CASES, ids=PROFILE_IDS)
def test_helm_values_are_the_expected_documents(timing: TimingProfile, profile: str,
                                                chart: str) -> None:
    expected, rendered = _expected_values(chart, profile), _values(chart, timing)
    assert rendered == expected, f"{chart} values, profile {profile}:\nexpected " \
        f"{yaml.safe_dump(expected)}\nrendered {yaml.safe_dump(rendered)}"


@pytest.mark.parametrize(("timing", "profile"), PROFILE_CASES, ids=PROFILE_IDS)
def test_metrics_server_values(timing: TimingProfile, profile: str) -> None:
    values = _values("metrics-server", timing)
    args = values["defaultArgs"] + values["args"]
    assert "--kubelet-insecure-tls" in args
    resolution = [a for a in args if a.startswith("--metric-resolution=")]
    assert resolution == [f"--metric-resolution={EXPECTED_RESOLUTION[profile]}"], resolution


@pytest.mark.parametrize(("timing", "profile"), PROFILE_CASES, ids=PROFILE_IDS)
def test_kube_prometheus_stack_values(timing: TimingProfile, profile: str) -> None:
    values = _values("kube-prometheus-stack", timing)
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["scrapeInterval"] == EXPECTED_SCRAPE[profile], spec["scrapeInterval"]
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
