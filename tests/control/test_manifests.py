"""Offline validation of the scaling manifests: what a cluster would refuse on apply.

The KEDA CRD schema comes from an installed package (``scalelab.crds``, KEDA 2.16 as the
pinned chart; tests/control/test_crd_schemas.py checks the package itself); the HPA schema
from kubernetes-validate. Everything here runs everywhere, no ``../shared`` needed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from scalelab.errors import ConfigError
from scalelab.manifests import (
    HPA,
    SCALED_OBJECT,
    ScalingObject,
    load_scaling,
    validate_scaling,
)
from scalelab.paths import SCALING_MANIFESTS

SHIPPED = ["hpa-cpu.yaml", "hpa-cpu-nostab.yaml", "hpa-cpu-window60.yaml", "keda-queue.yaml",
           "keda-queue-zero.yaml", "keda-hybrid.yaml"]


def _doc(name: str) -> dict[str, Any]:
    return yaml.safe_load((SCALING_MANIFESTS / name).read_text())


def _write(tmp_path: Path, *docs: dict[str, Any], name: str = "m.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump_all(docs))
    return p


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_manifests_validate(name: str) -> None:
    objs = validate_scaling(SCALING_MANIFESTS / name)
    assert len(objs) == 1
    (obj,) = objs
    assert obj.target == "agent"
    assert obj.namespace == "scalelab"
    assert obj.max_replicas == 4
    assert obj.min_replicas == (0 if "zero" in name else 2)
    assert obj.kind == (HPA if name.startswith("hpa") else SCALED_OBJECT)


def test_effective_defaults(tmp_path: Path) -> None:
    so = _doc("keda-queue.yaml")
    del so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]
    hpa = _doc("hpa-cpu.yaml")
    del hpa["spec"]["minReplicas"]
    hpa["spec"]["scaleTargetRef"]["name"] = "other"
    objs = load_scaling(_write(tmp_path, so, hpa))
    assert isinstance(objs[0], ScalingObject)
    assert (objs[0].min_replicas, objs[0].max_replicas) == (0, 100)  # KEDA defaults
    assert objs[1].min_replicas == 1  # autoscaling/v2 default
    assert objs[0].ref == "ScaledObject/agent"


def _expect(path: Path, field: str, *words: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        validate_scaling(path)
    err = info.value
    assert err.file == str(path)
    assert err.field == field, str(err)
    assert err.fix, "every error says how to fix it"
    for w in words:
        assert w in str(err), str(err)
    return err


def test_hpa_unknown_field(tmp_path: Path) -> None:
    d = _doc("hpa-cpu.yaml")
    d["spec"]["behavior"]["scaleUp"]["stabilisationWindowSeconds"] = 5
    _expect(_write(tmp_path, d), "spec.behavior.scaleUp.stabilisationWindowSeconds", "unknown")


def test_hpa_wrong_type(tmp_path: Path) -> None:
    d = _doc("hpa-cpu.yaml")
    d["spec"]["maxReplicas"] = "4"
    _expect(_write(tmp_path, d), "spec.maxReplicas", "not of type")


def test_hpa_semantics(tmp_path: Path) -> None:
    d = _doc("hpa-cpu.yaml")
    d["spec"]["maxReplicas"] = 1
    _expect(_write(tmp_path, d), "spec.maxReplicas", "minReplicas")
    d = _doc("hpa-cpu.yaml")
    d["spec"]["behavior"]["scaleDown"]["policies"][0]["periodSeconds"] = 3600
    _expect(_write(tmp_path, d), "spec.behavior.scaleDown.policies[0].periodSeconds", "1800")


def test_scaledobject_unknown_field(tmp_path: Path) -> None:
    d = _doc("keda-queue.yaml")
    d["spec"]["pollingIntervall"] = 5
    _expect(_write(tmp_path, d), "spec.pollingIntervall", "unknown")


def test_scaledobject_wrong_type(tmp_path: Path) -> None:
    d = _doc("keda-queue.yaml")
    d["spec"]["triggers"][0]["metadata"]["value"] = 5  # metadata values are strings
    _expect(_write(tmp_path, d), "spec.triggers[0].metadata.value", "not of type")


def test_hpa_and_scaledobject_on_same_target(tmp_path: Path) -> None:
    err = _expect(_write(tmp_path, _doc("hpa-cpu.yaml"), _doc("keda-queue.yaml")),
                  "spec.scaleTargetRef.name", "already managed by the hpa 'agent'", "webhook")
    assert "keda-hybrid" in (err.fix or "")


def test_two_hpas_ambiguous(tmp_path: Path) -> None:
    other = copy.deepcopy(_doc("hpa-cpu.yaml"))
    other["metadata"]["name"] = "agent-2"
    _expect(_write(tmp_path, _doc("hpa-cpu.yaml"), other), "spec.scaleTargetRef.name",
            "AmbiguousSelector")


def test_cpu_only_scale_to_zero_rejected(tmp_path: Path) -> None:
    d = _doc("keda-hybrid.yaml")
    d["spec"]["triggers"] = [d["spec"]["triggers"][0]]
    d["spec"]["minReplicaCount"] = 0
    _expect(_write(tmp_path, d), "spec.minReplicaCount",
            "only cpu/memory triggers AND minReplica is 0")


def test_cpu_trigger_needs_requests(tmp_path: Path) -> None:
    deployment = {"spec": {"template": {"spec": {"containers": [
        {"name": "agent", "resources": {"limits": {"memory": "1Gi"}}}]}}}}
    p = SCALING_MANIFESTS / "keda-hybrid.yaml"
    with pytest.raises(ConfigError) as info:
        validate_scaling(p, workloads={"agent": deployment})
    assert "container agent doesn't have the cpu request defined" in str(info.value)
    assert info.value.field == "spec.triggers[0]"
    deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] = {
        "cpu": "100m"}
    assert validate_scaling(p, workloads={"agent": deployment})


def test_replica_bounds(tmp_path: Path) -> None:
    d = _doc("keda-queue.yaml")
    d["spec"]["minReplicaCount"] = 5
    _expect(_write(tmp_path, d), "spec.minReplicaCount",
            "MinReplicaCount=5 must be less than MaxReplicaCount=4")
    d = _doc("keda-queue.yaml")
    d["spec"]["idleReplicaCount"] = 2
    _expect(_write(tmp_path, d), "spec.idleReplicaCount",
            "IdleReplicaCount=2 must be less than MinReplicaCount=2")


def test_bad_trigger_metadata(tmp_path: Path) -> None:
    d = _doc("keda-queue.yaml")
    d["spec"]["triggers"][0]["metadata"]["mode"] = "QueueSize"
    _expect(_write(tmp_path, d), "spec.triggers[0].metadata.mode", "trigger mode QueueSize")
    d = _doc("keda-queue.yaml")
    d["spec"]["triggers"][0]["metadata"]["protocol"] = "amqp"
    d["spec"]["triggers"][0]["metadata"]["excludeUnacknowledged"] = "true"
    _expect(_write(tmp_path, d), "spec.triggers[0].metadata.excludeUnacknowledged",
            "only with HTTP protocol")
    d = _doc("keda-queue.yaml")
    d["spec"]["triggers"][0]["type"] = "kafka"
    _expect(_write(tmp_path, d), "spec.triggers[0].type", "not emulated")


def test_duplicate_trigger_names(tmp_path: Path) -> None:
    d = _doc("keda-hybrid.yaml")
    for t in d["spec"]["triggers"]:
        t["name"] = "same"
    _expect(_write(tmp_path, d), "spec.triggers[1].name", "defined multiple times")


def test_load_errors(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("kind: Deployment\napiVersion: apps/v1\nmetadata: {name: x}\n")
    _expect(p, "kind", "unsupported kind")
    p.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_scaling(p)
    d = _doc("hpa-cpu.yaml")
    d["metadata"]["namespace"] = "default"
    _expect(_write(tmp_path, d), "metadata.namespace", "scalelab")


def test_keda_schema_needs_no_shared_reference(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    """A user's clone has no ../shared: the CRD schema is still checked, nothing warns."""
    monkeypatch.setattr("scalelab.paths.SHARED_REFERENCE", tmp_path / "absent")
    d = _doc("keda-queue.yaml")
    d["spec"]["pollingIntervall"] = 5
    _expect(_write(tmp_path, d), "spec.pollingIntervall", "unknown field")


def test_trigger_authentication_schema(tmp_path: Path) -> None:
    ta = {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
          "metadata": {"name": "rabbit", "namespace": "scalelab"},
          "spec": {"secretTargetRef": [{"parameter": "host", "name": "rmq", "key": "url"}]}}
    objs = validate_scaling(_write(tmp_path, ta))
    assert objs[0].ref == "TriggerAuthentication/rabbit" and objs[0].target is None
    ta["spec"]["secretTargetRef"][0]["secret"] = "typo"
    _expect(_write(tmp_path, ta), "spec.secretTargetRef[0].secret", "unknown")
