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
from scalelab.paths import SCALING_MANIFESTS
from scalelab.scaling_manifests import (
    HPA,
    SCALED_OBJECT,
    ScalingObject,
    load_scaling,
    validate_scaling,
)

SHIPPED = ["hpa-cpu.yaml", "hpa-cpu-nostab.yaml", "hpa-cpu-window60.yaml", "keda-queue.yaml",
           "keda-queue-zero.yaml", "keda-hybrid.yaml"]


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((SCALING_MANIFESTS / name).read_text()) if d]


def _doc(name: str) -> dict[str, Any]:
    """The HPA or ScaledObject of a shipped file (a KEDA file also holds its
    TriggerAuthentication, which ``_write`` puts back)."""
    (doc,) = [d for d in _docs(name) if d["kind"] != "TriggerAuthentication"]
    return doc


TRIGGER_AUTH = next(d for d in _docs("keda-queue.yaml") if d["kind"] == "TriggerAuthentication")


def _write(tmp_path: Path, *docs: dict[str, Any], name: str = "m.yaml") -> Path:
    """The docs as one file; a ScaledObject referencing the shipped TriggerAuthentication
    gets it in front, as in the shipped files."""
    refs = {(t.get("authenticationRef") or {}).get("name") for d in docs
            if d.get("kind") == "ScaledObject" for t in d["spec"].get("triggers") or []}
    if TRIGGER_AUTH["metadata"]["name"] in refs and TRIGGER_AUTH not in docs:
        docs = (TRIGGER_AUTH, *docs)
    p = tmp_path / name
    p.write_text(yaml.safe_dump_all(docs))
    return p


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_manifests_validate(name: str) -> None:
    objs = validate_scaling(SCALING_MANIFESTS / name)
    auth = [o for o in objs if o.kind == "TriggerAuthentication"]
    (obj,) = [o for o in objs if o.kind != "TriggerAuthentication"]
    # a KEDA file carries the TriggerAuthentication its ScaledObject reads the broker's
    # management URL through (no credentials in the manifest; defect 11)
    assert [a.name for a in auth] == (["rabbitmq-management"] if name.startswith("keda")
                                      else [])
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
    objs = load_scaling(_write(tmp_path, so, hpa))[1:]   # after the TriggerAuthentication
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


def test_a_trigger_authentication_must_be_in_the_same_file(tmp_path: Path) -> None:
    """The shipped ScaledObjects take their host from the TriggerAuthentication next to
    them; without it (or without any host) the file is refused before anything runs."""
    so = _doc("keda-queue.yaml")
    alone = tmp_path / "alone.yaml"
    alone.write_text(yaml.safe_dump(so))
    _expect(alone, "spec.triggers[0].authenticationRef.name", "not in this file")
    del so["spec"]["triggers"][0]["authenticationRef"]
    _expect(_write(tmp_path, so), "spec.triggers[0].metadata.host",
            'missing required parameter "host"')
    so = _doc("keda-queue.yaml")
    so["spec"]["triggers"][0]["authenticationRef"]["kind"] = "ClusterTriggerAuthentication"
    _expect(_write(tmp_path, so), "spec.triggers[0].authenticationRef.kind", "not emulated")
