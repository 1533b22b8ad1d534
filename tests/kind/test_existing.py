"""``--backend existing``: several kubeconfig files, addons the cluster already runs, one
namespace per run, scraping without addons, Docker Desktop, a direct API URL, Grafana.

Contract tests, not a cluster. FAKE AT THE CLUSTER SEAM, as in test_cluster_commands.py:
the ``Recorder`` stands in for kubectl / helm / docker and answers with recorded output
(``tests/kind/data``, what ``kubectl get -o json`` and ``helm list -o json`` print);
``kubectl port-forward`` is a STAND-IN real server (tests/kind/standins.py). The
kubernetes client's kubeconfig merging, kustomize (``kubectl kustomize``, the client at
/usr/bin/kubectl) and the commands' argument handling are the real ones.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import port_for
import pytest
import yaml

from scalelab import cli, paths
from scalelab.backends.cluster.existing import ExistingBackend, plan_addons
from scalelab.backends.cluster.kube import KubeApi
from scalelab.backends.cluster.render import (
    BASE_DIR,
    load_charts,
    render_overlay,
    run_namespace,
)
from scalelab.backends.cluster.settings import RUN_ID_LABEL, ClusterSettings
from scalelab.commands import grafana, up
from scalelab.errors import ConfigError
from tests.kind.standins import ForwardStandIn
from tests.kind.test_cluster_commands import DATA, Recorder, make

RUN_ID = "20250101T120000Z-ab12cd"
RUN_NS = "scalelab-ab12cd"
CHARTS = load_charts()


def existing(tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch,
             **cluster: Any) -> tuple[ExistingBackend, Recorder, list[tuple[str, ...]],
                                      list[dict[str, str] | None]]:
    """An existing-cluster backend whose CLI calls (and their environments) are recorded."""
    cluster.setdefault("run_id", RUN_ID)
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch, backend="existing", **cluster)
    assert isinstance(b, ExistingBackend)
    calls: list[tuple[str, ...]] = []
    envs: list[dict[str, str] | None] = []
    recorded = rec.run

    def run(cmd: Any, **kwargs: Any) -> Any:
        calls.append(tuple(str(c) for c in cmd))
        envs.append(kwargs.get("env"))
        return recorded(cmd, **kwargs)

    b._run = run
    return b, rec, calls, envs


# -- KUBECONFIG with several files -----------------------------------------------------------
def kubeconfig(path: Path, name: str, server: str, *, current: bool) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server}}],
        "users": [{"name": name, "user": {"token": f"token-{name}"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        **({"current-context": name} if current else {})}))
    return path


def test_kubeconfig_with_several_files_reaches_kubectl_helm_and_the_client(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = kubeconfig(tmp_path / "a.yaml", "lab-a", "https://10.0.0.1:6443", current=True)
    b_file = kubeconfig(tmp_path / "b.yaml", "lab-b", "https://10.0.0.2:6443", current=False)
    joined = f"{a}{os.pathsep}{b_file}"
    settings = ClusterSettings.from_env({"KUBECONFIG": joined})
    assert settings.kubeconfig == (a, b_file), "one path per file, not one path of both"

    b, rec, calls, envs = existing(tmp_path, bin_dir, monkeypatch, kubeconfig=(a, b_file),
                                   context="lab-b")
    b.up()
    try:
        for call, env in zip(calls, envs, strict=True):
            if Path(call[0]).name in ("kubectl", "helm"):
                assert "--kubeconfig" not in call, "--kubeconfig takes one file only"
                assert env is not None and env["KUBECONFIG"] == joined, call
        assert any(Path(c[0]).name == "helm" for c in calls), f"no helm call in {calls}"
    finally:
        b.down()
    # The kubernetes client merges the files as kubectl does (KubeConfigMerger): the
    # context from the second file, the current-context from the first.
    assert isinstance(b.cluster, ClusterSettings)
    real = ExistingBackend(settings=b.settings, cluster=b.cluster)
    assert real.api.kubeconfig == joined
    client = KubeApi(kubeconfig=joined, context="lab-b")._client()
    assert client.configuration.host == "https://10.0.0.2:6443"
    assert KubeApi(kubeconfig=joined)._client().configuration.host == "https://10.0.0.1:6443"


# -- one namespace per run -------------------------------------------------------------------
def test_each_run_gets_its_own_namespace_labelled_and_deleted_on_exit(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, calls, _ = existing(tmp_path, bin_dir, monkeypatch)
    assert b.settings.namespace == RUN_NS == run_namespace(RUN_ID)
    b.up()
    try:
        overlay = yaml.safe_load((b.work_dir / "stack" / "kustomization.yaml").read_text())
        assert overlay["namespace"] == RUN_NS
        fwd = [c for c in rec.calls if "port-forward" in c]
        assert fwd
        assert all(c[c.index("--namespace") + 1] in (RUN_NS, "monitoring") for c in fwd)
        assert b.details()["namespace"] == RUN_NS and b.details()["run_id"] == RUN_ID
    finally:
        n = len(calls)
        b.down()
    delete = calls[n]
    i = delete.index("delete")
    assert delete[i:i + 3] == ("delete", "namespace", RUN_NS)


def test_two_runs_get_two_namespaces_and_settings_can_name_one(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b1, *_ = existing(tmp_path, bin_dir, monkeypatch, run_id="")
    b2, *_ = existing(tmp_path, bin_dir, monkeypatch, run_id="")
    assert b1.settings.namespace != b2.settings.namespace
    assert b1.settings.namespace.startswith("scalelab-")
    named, *_ = existing(tmp_path, bin_dir, monkeypatch, namespace="team-lab")
    assert named.settings.namespace == "team-lab"
    assert ClusterSettings.from_env({"SCALELAB_NAMESPACE": "team-lab"}).namespace == "team-lab"
    with pytest.raises(ConfigError) as err:
        ClusterSettings.from_env({"SCALELAB_NAMESPACE": "Team_Lab"})
    assert err.value.field == "SCALELAB_NAMESPACE"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (kustomize) on PATH")
def test_the_overlay_moves_every_object_and_service_url_into_the_run_namespace(
        tmp_path: Path) -> None:
    """kustomize's namespace: moves the objects and renames the Namespace; the env's
    in-cluster URLs (<svc>.scalelab.svc...) are moved by patches; manifests/base stays."""
    before = {p.name: p.read_text() for p in BASE_DIR.glob("*.yaml")}
    overlay = tmp_path / "stack"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(render_overlay(
        overlay_dir=overlay, namespace=RUN_NS, run_id=RUN_ID), sort_keys=False))
    out = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    (ns,) = [d for d in docs if d["kind"] == "Namespace"]
    assert ns["metadata"]["name"] == RUN_NS
    assert ns["metadata"]["labels"][RUN_ID_LABEL] == RUN_ID
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == RUN_NS, d["metadata"]["name"]
    assert ".scalelab.svc" not in out.stdout
    base_urls = sum(text.count(".scalelab.svc") for text in before.values())
    assert out.stdout.count(f".{RUN_NS}.svc") == base_urls
    assert {p.name: p.read_text() for p in BASE_DIR.glob("*.yaml")} == before


def test_scaling_manifests_are_applied_into_the_run_namespace(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, calls, _ = existing(tmp_path, bin_dir, monkeypatch)
    for manifest in sorted(paths.SCALING_MANIFESTS.glob("*.yaml")):
        rec.inputs.clear()
        rec.answers["apply"] = (DATA / "apply-keda-hybrid.json").read_text()
        b.apply_scaling(manifest)
        call = calls[-1]
        assert call[-7:] == ("apply", "--namespace", RUN_NS, "-f", "-", "-o", "json")
        docs = list(yaml.safe_load_all(rec.inputs[len(rec.calls) - 1]))
        assert docs and all(d["metadata"]["namespace"] == RUN_NS for d in docs), manifest
        original = [d for d in yaml.safe_load_all(manifest.read_text()) if d]
        assert [d["kind"] for d in docs] == [d["kind"] for d in original]


# -- addons the cluster already runs ----------------------------------------------------------
def apiservices(**served_by: tuple[str, str]) -> dict[str, dict[str, Any]]:
    """APIServices as ``kubectl get apiservice -o json`` prints them (apiregistration.k8s.io/v1,
    the fields detection reads), served by the given ``namespace/name`` Services."""
    out = {}
    for key, (ns, svc) in served_by.items():
        name = key.replace("_", ".")
        group = name.split(".", 1)[1]
        out[name] = {
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": name},
            "spec": {"group": group, "version": "v1beta1", "groupPriorityMinimum": 100,
                     "versionPriority": 100, "insecureSkipTLSVerify": True,
                     "service": {"namespace": ns, "name": svc, "port": 443}},
            "status": {"conditions": [{"type": "Available", "status": "True",
                                       "reason": "Passed"}]}}
    return out


def release(name: str, namespace: str, chart: str) -> dict[str, str]:
    return {"name": name, "namespace": namespace, "chart": chart, "status": "deployed"}


def test_plan_installs_everything_on_a_bare_cluster() -> None:
    plan = plan_addons(CHARTS, apiservices={}, helm_releases=[], crds=set())
    assert [r.name for r in plan.install] == ["metrics-server", "kps", "keda"]
    assert plan.skipped == {}


def test_plan_uses_a_metrics_server_installed_without_helm() -> None:
    """metrics-server from its components.yaml: same Service name as the chart's, no release;
    a helm install would fail on the objects it does not own, or fight over the APIService."""
    plan = plan_addons(CHARTS, helm_releases=[], crds=set(), apiservices=apiservices(
        v1beta1_metrics_k8s_io=("kube-system", "metrics-server")))
    assert [r.name for r in plan.install] == ["kps", "keda"]
    assert "served by kube-system/metrics-server" in plan.skipped["metrics-server"]


def test_plan_upgrades_scalelabs_own_releases_from_an_earlier_run() -> None:
    ours = [release("metrics-server", "kube-system", "metrics-server-3.12.2"),
            release("keda", "keda", "keda-2.16.0")]
    plan = plan_addons(CHARTS, helm_releases=ours, crds=set(), apiservices=apiservices(
        v1beta1_metrics_k8s_io=("kube-system", "metrics-server"),
        v1beta1_external_metrics_k8s_io=("keda", "keda-operator-metrics-apiserver")))
    assert [r.name for r in plan.install] == ["metrics-server", "kps", "keda"]


def test_plan_uses_keda_and_prometheus_the_cluster_has_under_other_names() -> None:
    theirs = [release("autoscaling", "platform", "keda-2.15.1"),
              release("monitoring", "observability", "kube-prometheus-stack-61.0.0")]
    plan = plan_addons(CHARTS, helm_releases=theirs, crds={"prometheuses.monitoring.coreos.com"},
                       apiservices=apiservices(
                           v1beta1_external_metrics_k8s_io=("platform", "keda-operator")))
    assert [r.name for r in plan.install] == ["metrics-server"]
    assert "platform/autoscaling (keda-2.15.1)" in plan.skipped["keda"]
    assert "observability/monitoring" in plan.skipped["kps"]


def test_plan_never_installs_keda_next_to_another_external_metrics_server() -> None:
    plan = plan_addons(CHARTS, helm_releases=[], crds=set(), apiservices=apiservices(
        v1beta1_external_metrics_k8s_io=("custom-metrics", "prometheus-adapter")))
    assert "keda" not in [r.name for r in plan.install]
    assert "custom-metrics/prometheus-adapter" in plan.skipped["keda"]


def test_existing_backend_detects_addons_and_installs_only_the_missing(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, calls, _ = existing(tmp_path, bin_dir, monkeypatch)
    rec.answers["get apiservice"] = json.dumps({"kind": "List", "items": list(apiservices(
        v1beta1_metrics_k8s_io=("kube-system", "metrics-server")).values())})
    b.up()
    try:
        helm = [c[3] for c in calls if c[1:3] == ("upgrade", "--install")]
        assert helm == ["kps", "keda"]
        assert [r.name for r in b.installed_releases] == ["kps", "keda"]
        assert "metrics-server" in b.details()["addons_from_the_cluster"]
        get = next(c for c in calls if "apiservice" in c)
        assert {"v1beta1.metrics.k8s.io", "v1beta1.external.metrics.k8s.io"} <= set(get)
    finally:
        b.down()


def test_a_cluster_prometheus_needs_its_service_named(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, calls, _ = existing(tmp_path, bin_dir, monkeypatch)
    rec.answers["get crd prometheuses"] = "customresourcedefinition.apiextensions.k8s.io/" \
                                          "prometheuses.monitoring.coreos.com\n"
    with pytest.raises(ConfigError) as err:
        b.up()
    assert err.value.field == "SCALELAB_PROMETHEUS_SERVICE"
    assert not [c for c in calls if "upgrade" in c], "nothing installed before the refusal"


def test_with_the_clusters_prometheus_operator_monitors_go_in_and_no_grafana_is_forwarded(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, calls, _ = existing(tmp_path, bin_dir, monkeypatch,
                                prometheus_service="observability/prometheus-operated:9090")
    rec.answers["get crd"] = "".join(  # both CRD queries get this answer
        f"customresourcedefinition.apiextensions.k8s.io/{name}.monitoring.coreos.com\n"
        for name in ("prometheuses", "podmonitors"))
    # a stock kube-prometheus-stack of the cluster's own (release "obs"): it reads only
    # PodMonitors labelled release=obs, in namespaces labelled team=platform
    b.api.custom["prometheuses"] = [{  # type: ignore[attr-defined]
        "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
        "metadata": {"name": "obs-prometheus", "namespace": "observability"},
        "spec": {"podMonitorSelector": {"matchLabels": {"release": "obs"}},
                 "podMonitorNamespaceSelector": {"matchLabels": {"team": "platform"}}}}]
    b.up()
    try:
        assert "kps" in b.skipped_addons
        applied = [c for c in calls if c[-3:] == ("apply", "-f", "-")]
        assert applied and b.monitors_applied
        monitors = [d for i, c in enumerate(rec.calls) if c[-3:] == ("apply", "-f", "-")
                    for d in yaml.safe_load_all(rec.inputs[i]) if d["kind"] == "PodMonitor"]
        assert monitors and all(m["metadata"]["labels"]["release"] == "obs" for m in monitors)
        assert any("label" in c and "namespace" in c and b.settings.namespace in c
                   and "team=platform" in c for c in rec.calls), rec.calls
        fwd = [c for c in rec.calls if "port-forward" in c]
        assert not any("svc/kps-grafana" in c for c in fwd), f"a Grafana forward: {fwd}"
        assert any("svc/prometheus-operated" in c for c in fwd), \
            f"expected a forward to svc/prometheus-operated, saw {fwd}"
        assert b.grafana_url is None
    finally:
        b.down()


def test_without_addons_and_without_an_operator_monitors_are_skipped_with_a_warning(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    b, rec, calls, _ = existing(tmp_path, bin_dir, monkeypatch, install_addons=False,
                                prometheus_service="observability/prometheus:9090")
    with caplog.at_level(logging.WARNING):
        b.up()
    try:
        assert not b.monitors_applied
        assert not [c for c in calls if c[-3:] == ("apply", "-f", "-")]
        assert "prometheus.io/scrape" in caplog.text and "PodMonitor" in caplog.text
        assert [c for c in calls if "podmonitors.monitoring.coreos.com" in c]
        assert not [c for c in calls if Path(c[0]).name == "helm"]
    finally:
        b.down()


# -- Docker Desktop ----------------------------------------------------------------------------
def test_docker_desktop_builds_locally_with_no_registry(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    b, rec, calls, _ = existing(tmp_path, bin_dir, monkeypatch)
    rec.answers["config current-context"] = "docker-desktop\n"
    rec.answers["get nodes"] = "node/docker-desktop\n"
    with caplog.at_level(logging.WARNING):
        b.up()
    try:
        assert b.docker_desktop
        builds = [c for c in calls if c[:2] == ("docker", "build")]
        assert [c[c.index("--tag") + 1] for c in builds] == ["scalelab/api:dev",
                                                            "scalelab/agent:dev"]
        assert not [c for c in calls if Path(c[0]).name == "kind" or "push" in c]
        assert "SCALELAB_IMAGE_PREFIX" not in caplog.text
        # as on kind, metrics-server skips verifying the kubelet's self-signed certificate
        ms = next(c for c in calls if c[1:4] == ("upgrade", "--install", "metrics-server"))
        values = yaml.safe_load(Path(ms[ms.index("--values") + 1]).read_text())
        assert "--kubelet-insecure-tls" in values["args"]
        # manifests/base never pulls an image the node already has
        for path in BASE_DIR.glob("*.yaml"):
            for d in yaml.safe_load_all(path.read_text()):
                if d and d["kind"] == "Deployment":
                    for c in d["spec"]["template"]["spec"]["containers"]:
                        assert c["imagePullPolicy"] == "IfNotPresent"
        assert b.details()["docker_desktop"] is True
    finally:
        b.down()


def test_docker_desktop_with_kind_provisioning_is_warned_about(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    b, rec, calls, _ = existing(tmp_path, bin_dir, monkeypatch, context="docker-desktop")
    rec.answers["get nodes"] = "node/desktop-control-plane\nnode/desktop-worker\n"
    with caplog.at_level(logging.WARNING):
        b.up()
    b.down()
    assert "Kubeadm" in caplog.text and "SCALELAB_IMAGE_PREFIX" in caplog.text


# -- the API without a port-forward ------------------------------------------------------------
def test_an_api_url_replaces_the_api_port_forward(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    api = ForwardStandIn(port_for.select_random())   # stand-in for the user's NodePort/LB
    url = f"http://127.0.0.1:{api.port}"
    try:
        assert ClusterSettings.from_env({"SCALELAB_API_URL": url + "/"}).api_url == url
        b, rec, calls, _ = existing(tmp_path, bin_dir, monkeypatch, api_url=url)
        endpoints = b.up()
        try:
            assert endpoints.api == url
            assert api.answered >= 1, "up() checked the API answers there"
            assert not [c for c in rec.calls if "svc/api" in c]
            assert b.details()["api"] == "direct URL"
        finally:
            b.down()
    finally:
        api.stop()
    with pytest.raises(ConfigError) as err:
        ClusterSettings.from_env({"SCALELAB_API_URL": "api.lab:30080"})
    assert err.value.field == "SCALELAB_API_URL"


def test_the_existing_backend_probes_each_forward_by_its_protocol(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, *_ = existing(tmp_path, bin_dir, monkeypatch)
    b.installed_releases = list(CHARTS)
    probes = {f.key: (f.probe, f.path) for f in b.forwards()}
    assert probes == {"api": ("http", "/healthz"), "prometheus": ("http", "/-/healthy"),
                      "rabbitmq_management": ("http", "/"), "amqp": ("amqp", "/"),
                      "grafana": ("http", "/api/health")}


# -- Grafana -----------------------------------------------------------------------------------
def test_scalelab_grafana_holds_a_forward_on_a_fixed_port_until_stopped(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, *_ = existing(tmp_path, bin_dir, monkeypatch)
    port = port_for.select_random()
    stop = threading.Event()
    said: list[str] = []

    def say(line: str) -> None:
        said.append(line)
        stop.set()   # Ctrl-C as soon as it is up

    grafana.hold(b, port=port, stop=stop, say=say)
    (call,) = [c for c in rec.calls if "port-forward" in c]
    assert call[-4:] == ("--address", "127.0.0.1", "svc/kps-grafana", f"{port}:80")
    assert call[call.index("--namespace") + 1] == "monitoring"
    assert said == [f"Grafana: http://127.0.0.1:{port}  (login admin / scalelab); "
                    "press Ctrl-C to stop"]
    assert all(f.stopped for f in rec.forwards), "the forward ends with the command"


def test_scalelab_grafana_refuses_a_busy_port_and_a_missing_kind_cluster(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, *_ = existing(tmp_path, bin_dir, monkeypatch)
    busy = ForwardStandIn(port_for.select_random())
    try:
        with pytest.raises(ConfigError) as err:
            grafana.hold(b, port=busy.port, stop=threading.Event())
        assert err.value.field == "--port" and "in use" in str(err.value)
        assert rec.calls == []
    finally:
        busy.stop()
    settings = ClusterSettings(work_dir=tmp_path / "nowhere")
    with pytest.raises(ConfigError) as err:
        grafana.cluster_backend("kind", cluster=settings)
    assert err.value.field == "--backend"
    assert grafana.cluster_backend("auto", cluster=settings).name == "existing"
    (tmp_path / "nowhere" / "scalelab").mkdir(parents=True)
    (tmp_path / "nowhere" / "scalelab" / "kubeconfig").write_text("")
    assert grafana.cluster_backend("auto", cluster=settings).name == "kind"


def test_scalelab_grafana_is_a_command() -> None:
    args = cli.build_parser().parse_args(["grafana", "--backend", "existing", "--port", "3001"])
    assert args.func is grafana.run and args.port == 3001 and args.backend == "existing"
    assert cli.build_parser().parse_args(["grafana"]).port == 3000


def test_scalelab_up_prints_grafanas_url_and_login(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, *_ = existing(tmp_path, bin_dir, monkeypatch)
    monkeypatch.setattr(up, "make_backend", lambda name, settings: b)
    monkeypatch.setattr(up, "choose_backend", lambda name: argparse.Namespace(name=name))
    lines: list[str] = []

    def printed(*args: Any, **kwargs: Any) -> None:
        lines.append(" ".join(str(a) for a in args))
        if lines[-1].startswith("Press Ctrl-C"):
            os.kill(os.getpid(), signal.SIGTERM)   # what the user does next

    monkeypatch.setattr(up, "print", printed, raising=False)
    code = up.run(argparse.Namespace(backend="existing", scaling=None, scale=[], json=False))
    assert code == 0
    grafana_line = next(line for line in lines if "Grafana" in line)
    assert grafana_line.split()[1].startswith("http://127.0.0.1:")
    assert "(admin/scalelab)" in grafana_line
    assert up.grafana_access(b) is None, "torn down: no Grafana any more"
    # the run's broker password is never printed; where to find it is
    assert b.credentials is not None
    assert not any(b.credentials.password in line for line in lines), lines
    assert any(line.split()[:2] == ["broker", "password"] and "get secret" in line
               for line in lines), lines


def test_monitor_selection_follows_the_operators_selector_semantics() -> None:
    """prometheus-operator: a nil podMonitorSelector selects nothing, an empty one all; a
    nil namespace selector means the Prometheus' own namespace only."""
    from scalelab.backends.cluster.events import monitor_selection

    stock = monitor_selection({"metadata": {"name": "p", "namespace": "mon"}, "spec": {
        "podMonitorSelector": {"matchLabels": {"release": "kps"}},
        "podMonitorNamespaceSelector": {}}})
    assert stock.pod_monitor_labels == {"release": "kps"} and stock.namespace_labels == {}
    assert stock.problems == []
    bare = monitor_selection({"metadata": {"name": "p", "namespace": "mon"}, "spec": {}})
    assert len(bare.problems) == 2
    assert "selects no PodMonitor" in bare.problems[0]
    assert "own namespace only" in bare.problems[1]
    exprs = monitor_selection({"metadata": {"name": "p", "namespace": "mon"}, "spec": {
        "podMonitorSelector": {"matchExpressions": [{"key": "a", "operator": "Exists"}]},
        "podMonitorNamespaceSelector": {}}})
    assert any("matchExpressions" in p for p in exprs.problems), exprs.problems
