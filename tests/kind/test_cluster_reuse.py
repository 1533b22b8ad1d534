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

PROFILE = timing_context(TimingProfile())


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
    return {"horizontal-pod-autoscaler-sync-period": PROFILE["hpa_sync_period"],
            "horizontal-pod-autoscaler-tolerance": PROFILE["hpa_tolerance"],
            "horizontal-pod-autoscaler-cpu-initialization-period":
                PROFILE["hpa_cpu_initialization_period"],
            "horizontal-pod-autoscaler-initial-readiness-delay":
                PROFILE["hpa_initial_readiness_delay"],
            "horizontal-pod-autoscaler-downscale-stabilization":
                PROFILE["hpa_downscale_stabilization"]}


def test_flags_are_read_from_the_static_pod_and_compared_as_durations() -> None:
    flags = profile_flags()
    assert controller_manager_flags(controller_manager_pod(flags)) == flags
    assert flag_mismatches(flags, PROFILE) == []
    # the same durations spelled otherwise still match ("1m0s" is Go's own spelling)
    respelled = {k: (f"{parse_go_duration(v) * 1000:g}ms" if k.endswith("period") else v)
                 for k, v in flags.items()}
    assert flag_mismatches(respelled, PROFILE) == []
    assert parse_go_duration("1m0s") == 60 and parse_go_duration("1h2m3.5s") == 3723.5
    with pytest.raises(ValueError):
        parse_go_duration("15")
    stale = {**flags, "horizontal-pod-autoscaler-sync-period": "15s"}
    del stale["horizontal-pod-autoscaler-tolerance"]
    wrong = flag_mismatches(stale, PROFILE)
    assert wrong == [
        f"horizontal-pod-autoscaler-sync-period: cluster 15s, profile "
        f"{PROFILE['hpa_sync_period']}",
        f"horizontal-pod-autoscaler-tolerance: cluster default, profile "
        f"{PROFILE['hpa_tolerance']}"], wrong


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
    assert calls[calls.index("kind delete cluster --name"):][:1] == ["kind delete cluster --name"]
    assert calls.index("kind delete cluster --name") < next(
        i for i, c in enumerate(calls) if c.startswith("kind create")), calls


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
