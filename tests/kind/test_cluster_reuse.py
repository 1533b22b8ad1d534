"""A kind cluster of our name left by another run is refused, recreated, or reused only when
its HPA flags match the timing profile (issue 9, defect 6).

CONTRACT TEST, NOT A CLUSTER: the CLIs are the recorder of test_cluster_commands.py and
the kube-controller-manager static pod is JSON shaped as kubeadm writes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scalelab.backends.cluster.events import (
    controller_manager_flags,
    flag_mismatches,
    parse_go_duration,
)
from scalelab.backends.cluster.render import timing_context
from scalelab.errors import BackendError, ConfigError
from scalelab.settings import TimingProfile
from tests.kind.test_cluster_commands import make, short

#: The default TimingProfile as ``render.timing_context`` must give it to ``flag_mismatches``
#: (written out: 5 s sync, 0.1 tolerance, 5 min CPU initialization, 30 s readiness delay,
#: 5 min downscale stabilization).
PROFILE = {"scrape_interval": "5s", "metrics_window": "10s", "hpa_sync_period": "5s",
           "hpa_tolerance": "0.1", "hpa_cpu_initialization_period": "5m0s",
           "hpa_initial_readiness_delay": "30s", "hpa_downscale_stabilization": "5m0s"}


def controller_manager_pod(flags: dict[str, str]) -> dict[str, Any]:
    """As kubeadm writes /etc/kubernetes/manifests/kube-controller-manager.yaml."""
    return {"metadata": {"name": "kube-controller-manager-scalelab-control-plane",
                         "namespace": "kube-system",
                         "labels": {"component": "kube-controller-manager",
                                    "tier": "control-plane"}},
            "spec": {"containers": [{"name": "kube-controller-manager", "command": [
                "kube-controller-manager", "--allocate-node-cidrs=true",
                "--kubeconfig=/etc/kubernetes/controller-manager.conf",
                *(f"--{k}={v}" for k, v in flags.items())]}]}}


def profile_flags() -> dict[str, str]:
    """The default profile's flags as the kind config gives them to kubeadm."""
    return {"horizontal-pod-autoscaler-sync-period": "5s",
            "horizontal-pod-autoscaler-tolerance": "0.1",
            "horizontal-pod-autoscaler-cpu-initialization-period": "5m0s",
            "horizontal-pod-autoscaler-initial-readiness-delay": "30s",
            "horizontal-pod-autoscaler-downscale-stabilization": "5m0s"}


def test_the_profile_table_is_what_the_renderer_gives_the_default_profile() -> None:
    assert timing_context(TimingProfile()) == PROFILE


def test_flags_are_read_from_the_static_pod_and_compared_as_durations() -> None:
    flags = profile_flags()
    assert controller_manager_flags(controller_manager_pod(flags)) == flags
    assert flag_mismatches(flags, PROFILE) == []
    # the same durations spelled otherwise (as scalelab before Go's String() form wrote
    # them, or by hand) still match: Go's time.ParseDuration reads them all alike
    respelled = {**flags,
                 "horizontal-pod-autoscaler-sync-period": "5000ms",
                 "horizontal-pod-autoscaler-cpu-initialization-period": "300s",
                 "horizontal-pod-autoscaler-initial-readiness-delay": "0.5m",
                 "horizontal-pod-autoscaler-downscale-stabilization": "5m"}
    assert flag_mismatches(respelled, PROFILE) == [], flag_mismatches(respelled, PROFILE)
    assert flag_mismatches({**flags, "horizontal-pod-autoscaler-tolerance": "0.10"},
                           PROFILE) == []
    stale = {**flags, "horizontal-pod-autoscaler-sync-period": "15s"}
    del stale["horizontal-pod-autoscaler-tolerance"]
    wrong = flag_mismatches(stale, PROFILE)
    assert wrong == [
        "horizontal-pod-autoscaler-sync-period: cluster 15s, profile 5s",
        "horizontal-pod-autoscaler-tolerance: cluster default, profile 0.1"], wrong


@pytest.mark.parametrize(("text", "seconds"), [
    ("0s", 0.0), ("15s", 15.0), ("1m0s", 60.0), ("5m0s", 300.0), ("1h2m3.5s", 3723.5),
    ("500ms", 0.5), ("1.5s", 1.5), ("0.5m", 30.0), ("2h", 7200.0), ("1500us", 0.0015),
    ("1500\u00b5s", 0.0015), ("100ns", 1e-7)])
def test_parse_go_duration_reads_go_duration_strings(text: str, seconds: float) -> None:
    """Go's units (go src/time/format.go ``unitMap``: ns, us, \u00b5s, ms, s, m, h), several
    in a row, decimal fractions."""
    assert parse_go_duration(text) == pytest.approx(seconds, rel=1e-12, abs=1e-15), text


@pytest.mark.parametrize("text", ["15", "", "5 s", "1d", "s", "5s5", "-5s"])
def test_parse_go_duration_refuses_what_is_no_go_duration(text: str) -> None:
    with pytest.raises(ValueError, match="not a Go duration"):
        parse_go_duration(text)


def _existing(rec: Any, api: Any, flags: dict[str, str]) -> None:
    rec.answers["get clusters"] = "other\nscalelab\n"
    api.list_pods = lambda *, namespace, label_selector="": (
        [controller_manager_pod(flags)]
        if namespace == "kube-system" and "kube-controller-manager" in label_selector else [])


def test_an_existing_cluster_is_refused_and_left_alone(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, api = make(tmp_path, bin_dir, monkeypatch)
    _existing(rec, api, profile_flags())
    with pytest.raises(BackendError) as err:
        b.up()
    assert "already exists and this run did not create it" in str(err.value)
    assert "SCALELAB_KEEP_CLUSTER=1" in str(err.value) and "kind delete cluster" in str(err.value)
    assert not any(short(c).startswith(("kind delete", "kind create", "kubectl delete"))
                   for c in rec.calls), rec.calls


def test_keep_cluster_reuses_it_when_the_flags_match_and_records_them(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, api = make(tmp_path, bin_dir, monkeypatch, keep_cluster=True)
    _existing(rec, api, profile_flags())
    b.up()
    try:
        calls = [short(c) for c in rec.calls]
        assert "kind export kubeconfig --name" in calls
        assert not any(c.startswith("kind create") for c in calls), calls
        details = b.details()
        assert details["cluster_reused"] is True
        # the API goes where the node really maps the NodePort, not where a work dir says
        assert "docker port scalelab-control-plane 30080/tcp" in calls
        mapped = rec.node_ports[-1].port
        assert b.endpoints.api == f"http://127.0.0.1:{mapped}"
        assert (b.work_dir / "api-host-port").read_text().strip() == str(mapped)
        assert details["controller_manager_flags"] == profile_flags()
    finally:
        b.down()
    assert not any(short(c).startswith("kind delete") for c in rec.calls), "kept"


def test_keep_cluster_refuses_a_cluster_with_other_hpa_flags(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, api = make(tmp_path, bin_dir, monkeypatch, keep_cluster=True)
    _existing(rec, api, {**profile_flags(), "horizontal-pod-autoscaler-sync-period": "15s"})
    with pytest.raises(ConfigError) as err:
        b.up()
    assert "horizontal-pod-autoscaler-sync-period: cluster 15s" in str(err.value)
    assert "SCALELAB_RECREATE_CLUSTER=1" in str(err.value)
    assert not any(short(c).startswith(("kind delete", "kind create")) for c in rec.calls)


def test_recreate_deletes_it_first(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, api = make(tmp_path, bin_dir, monkeypatch, recreate_cluster=True)
    _existing(rec, api, {})
    b.up()
    b.down()
    calls = [short(c) for c in rec.calls]
    deletes = [i for i, c in enumerate(calls) if c.startswith("kind delete cluster --name")]
    creates = [i for i, c in enumerate(calls) if c.startswith("kind create")]
    # the old cluster deleted (by name) before ours is created, ours deleted by down()
    assert len(deletes) == 2 and len(creates) == 1, calls
    assert rec.calls[deletes[0]][-1] == "scalelab", rec.calls[deletes[0]]
    assert deletes[0] < creates[0] < deletes[1], calls


def test_keep_cluster_refuses_a_cluster_without_the_api_port_mapping(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, api = make(tmp_path, bin_dir, monkeypatch, keep_cluster=True)
    _existing(rec, api, profile_flags())
    rec.node_port_mapped = False
    rec.failures["docker port"] = [
        "Error: No public port '30080/tcp' published for scalelab-control-plane"]
    with pytest.raises(ConfigError) as err:
        b.up()
    assert "does not map the API's NodePort 30080/tcp" in str(err.value)
    assert "SCALELAB_RECREATE_CLUSTER=1" in str(err.value)
    assert not any(short(c).startswith(("kind delete", "kind create")) for c in rec.calls)
