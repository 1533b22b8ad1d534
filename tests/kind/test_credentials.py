"""Broker credentials (issue 9, defect 11): a per-run Secret instead of guest/guest.

Contract tests, not a cluster: the kubectl calls go to the ``Recorder`` of
``test_cluster_commands`` (FAKE AT THE CLUSTER SEAM). What is real: the manifests as
shipped and as ``kubectl kustomize`` renders them, their Kubernetes schemas
(kubernetes-validate), KEDA's CRD schemas from the shared reference (skipped, saying so,
when it is absent), and the Secret objects the backend builds.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from scalelab.backends.cluster import secrets
from scalelab.credentials import (
    AMQP_URL_KEY,
    MANAGEMENT_URL_KEY,
    SECRET_KEYS,
    SECRET_NAME,
    BrokerCredentials,
)
from scalelab.errors import BackendError
from scalelab.paths import MANIFESTS, SCALING_MANIFESTS, SHARED_REFERENCE
from tests.kind.test_cluster_commands import Boom, make, short

CLUSTER_MANIFESTS = sorted(p for d in ("base", "scaling", "cluster")
                           for p in (MANIFESTS / d).glob("*.yaml*"))


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# -- the manifests ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", CLUSTER_MANIFESTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_cluster_manifest_carries_a_password(path: Path) -> None:
    """No guest/guest, no userinfo in a URL, no literal RabbitMQ default user/password."""
    text = path.read_text()
    assert not re.search(r"guest\s*[:/]\s*guest", text)
    assert "loopback_users = none" not in text, "loopback-only users stay the default"
    assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text), "credentials in a URL"
    if path.suffix == ".yaml":
        for node in _walk(_docs(path)):
            if node.get("name") in ("RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS",
                                    "AMQP_URL", "RABBITMQ_MGMT_URL"):
                assert "value" not in node, f"{node['name']} is a literal in {path.name}"


def _secret_refs() -> list[tuple[str, str, str]]:
    """(file, Secret name, key) of every secretKeyRef and secretTargetRef shipped."""
    refs = []
    for path in CLUSTER_MANIFESTS:
        if path.suffix != ".yaml":
            continue
        for node in _walk(_docs(path)):
            if "secretKeyRef" in node:
                refs.append((path.name, node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
            for ref in node.get("secretTargetRef") or []:
                refs.append((path.name, ref["name"], ref["key"]))
    return refs


def test_every_secret_reference_names_the_broker_secret_and_one_of_its_keys() -> None:
    refs = _secret_refs()
    assert {(f, k) for f, _, k in refs} >= {
        ("rabbitmq.yaml", "username"), ("rabbitmq.yaml", "password"),
        ("api.yaml", AMQP_URL_KEY), ("agent.yaml", AMQP_URL_KEY),
        ("keda-queue.yaml", MANAGEMENT_URL_KEY), ("keda-queue-zero.yaml", MANAGEMENT_URL_KEY),
        ("keda-hybrid.yaml", MANAGEMENT_URL_KEY)}
    for file, name, key in refs:
        assert name == SECRET_NAME and key in SECRET_KEYS, (file, name, key)


def test_every_shipped_scaled_object_reads_its_host_through_the_trigger_authentication() -> None:
    for path in sorted(SCALING_MANIFESTS.glob("keda-*.yaml")):
        docs = _docs(path)
        auths = {d["metadata"]["name"]: d for d in docs if d["kind"] == "TriggerAuthentication"}
        for so in (d for d in docs if d["kind"] == "ScaledObject"):
            for trigger in so["spec"]["triggers"]:
                if trigger["type"] != "rabbitmq":
                    continue
                assert "hostFromEnv" not in trigger["metadata"], path.name
                auth = auths[trigger["authenticationRef"]["name"]]
                assert {(r["parameter"], r["key"]) for r in auth["spec"]["secretTargetRef"]} \
                    == {("host", MANAGEMENT_URL_KEY)}, path.name


def _strict(schema: Any) -> Any:
    """additionalProperties: false where a CRD schema lists properties (strict field
    validation as the API server applies it to structural schemas)."""
    schema = copy.deepcopy(schema)
    for node in _walk(schema):
        if isinstance(node.get("properties"), dict) and "additionalProperties" not in node \
                and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
    return schema


KEDA_REFERENCE = SHARED_REFERENCE / "keda"


@pytest.mark.skipif(not KEDA_REFERENCE.is_dir(),
                    reason=f"{KEDA_REFERENCE} absent (the shared reference is not cloned here)")
@pytest.mark.parametrize("name", ["keda-queue.yaml", "keda-queue-zero.yaml", "keda-hybrid.yaml"])
def test_shipped_keda_objects_validate_against_the_upstream_crds(name: str) -> None:
    """Cross-check against kedacore/keda's CRDs (config/crd/bases) in the shared reference."""
    crds = {"ScaledObject": "keda.sh_scaledobjects.yaml",
            "TriggerAuthentication": "keda.sh_triggerauthentications.yaml"}
    kinds = []
    for doc in _docs(SCALING_MANIFESTS / name):
        crd = yaml.safe_load((KEDA_REFERENCE / crds[doc["kind"]]).read_text())
        (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
        schema = _strict(version["schema"]["openAPIV3Schema"])
        schema["properties"]["metadata"] = {"type": "object"}
        jsonschema.Draft7Validator(schema).validate(doc)
        kinds.append(doc["kind"])
    assert kinds == ["TriggerAuthentication", "ScaledObject"]


@pytest.mark.skipif(not KEDA_REFERENCE.is_dir(),
                    reason=f"{KEDA_REFERENCE} absent (the shared reference is not cloned here)")
@pytest.mark.parametrize(("where", "key"), [
    ("spec", "minReplicas"),                  # the HPA's name, not KEDA's minReplicaCount
    ("authenticationRef", "nam"),             # a typo inside a trigger's reference
], ids=["hpa-field-name", "typo-in-trigger"])
def test_the_crd_check_catches_a_misspelled_field(where: str, key: str) -> None:
    """The validation above could fail: a misspelled field is an error naming it."""
    crd = yaml.safe_load((KEDA_REFERENCE / "keda.sh_scaledobjects.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object"}
    (doc,) = [d for d in _docs(SCALING_MANIFESTS / "keda-queue.yaml")
              if d["kind"] == "ScaledObject"]
    target = doc["spec"] if where == "spec" else doc["spec"]["triggers"][0][where]
    target[key] = 1
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    assert any(repr(key) in m for m in errors), \
        f"expected an error naming {key!r}, got {errors}"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (kustomize) on PATH")
def test_the_rendered_stack_reads_every_credential_from_the_secret(tmp_path: Path) -> None:
    """``kubectl kustomize`` of the base (what ``kubectl apply -k`` sends): valid objects,
    no credential in them, every broker credential from the Secret."""
    out = subprocess.run(["kubectl", "kustomize", str(MANIFESTS / "base")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)
    assert not re.search(r"guest\s*[:/]\s*guest", out.stdout)
    assert "loopback_users.guest = true" in out.stdout
    env = {(d["metadata"]["name"], e["name"]): e for d in docs if d["kind"] == "Deployment"
           for e in d["spec"]["template"]["spec"]["containers"][0].get("env", [])}
    for where in (("rabbitmq", "RABBITMQ_DEFAULT_USER"), ("rabbitmq", "RABBITMQ_DEFAULT_PASS"),
                  ("api", "AMQP_URL"), ("agent", "AMQP_URL")):
        assert env[where]["valueFrom"]["secretKeyRef"]["name"] == SECRET_NAME, where
    assert not any(d["kind"] == "Secret" for d in docs), "the Secret comes from the backend"


# -- the Secret the backend builds -------------------------------------------------------------
def test_generated_passwords_are_random_url_safe_and_never_printed() -> None:
    a, b = BrokerCredentials.generate(), BrokerCredentials.generate()
    assert a.password != b.password and len(a.password) >= 32
    assert re.fullmatch(r"[A-Za-z0-9_-]+", a.password)
    assert a.password not in repr(a)


def test_the_secret_objects_are_valid_kubernetes_and_name_the_run_namespace() -> None:
    creds = BrokerCredentials(username="scalelab", password="p4ss_w-rd")
    objects = secrets.credentials_objects(creds, namespace="scalelab-ab12cd", run_id="run-1")
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30", strict=True)
    namespace, secret = objects
    assert namespace["metadata"]["labels"]["scalelab.io/run-id"] == "run-1"
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    host = "rabbitmq.scalelab-ab12cd.svc.cluster.local"
    assert data[AMQP_URL_KEY] == f"amqp://scalelab:p4ss_w-rd@{host}:5672/%2F"
    assert data[MANAGEMENT_URL_KEY] == f"http://scalelab:p4ss_w-rd@{host}:15672"
    assert secrets.read_credentials(json.dumps(secret), namespace="scalelab-ab12cd") == creds


def test_a_secret_scalelab_did_not_write_is_refused_with_a_fix() -> None:
    with pytest.raises(BackendError) as err:
        secrets.read_credentials(json.dumps({"data": {"password": "eA=="}}), namespace="ns")
    assert "lacks username" in str(err.value) and "delete secret" in (err.value.fix or "")
    other = secrets.credentials_objects(BrokerCredentials(username="u", password="p"),
                                        namespace="elsewhere")[1]
    with pytest.raises(BackendError, match="does not hold the URLs"):
        secrets.read_credentials(json.dumps(other), namespace="ns")
    assert secrets.read_credentials("", namespace="ns") is None


# -- the bring-up step (contract tests, not a cluster) -----------------------------------------
def _applied_secret(rec: Any) -> dict[str, str]:
    (index,) = [i for i, text in rec.inputs.items() if f"name: {SECRET_NAME}" in text]
    secret = list(yaml.safe_load_all(rec.inputs[index]))[1]
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_existing_backend_puts_the_secret_into_the_run_namespace_before_the_stack(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch, backend="existing", context="lab")
    b.up()
    try:
        ns = b.settings.namespace
        verbs = [c[3:5] for c in rec.calls if Path(c[0]).name == "kubectl"]
        read = verbs.index(("get", "secret"))
        assert verbs[read + 1] == ("apply", "--server-side")
        assert verbs[read + 2] == ("apply", "-k"), "the Secret before the stack"
        data = _applied_secret(rec)
        assert b.credentials is not None and data["password"] == b.credentials.password
        assert f"@rabbitmq.{ns}.svc.cluster.local:" in data[AMQP_URL_KEY]
        assert not [c for c in rec.calls if any(b.credentials.password in a for a in c)]
        assert b.endpoints.amqp.startswith(f"amqp://scalelab:{b.credentials.password}@")
    finally:
        b.down()


def test_a_stack_left_running_keeps_its_password(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """RabbitMQ creates its default user on first boot only: when the namespace still has
    the Secret (an interrupted run), its password is reused, not replaced."""
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch, backend="existing", context="lab")
    old = BrokerCredentials(username="scalelab", password="from-the-last-run")
    rec.answers["get secret"] = json.dumps(
        secrets.credentials_objects(old, namespace=b.settings.namespace)[1])
    b.up()
    try:
        assert b.credentials == old
        assert _applied_secret(rec)["password"] == "from-the-last-run"
    finally:
        b.down()


def test_failing_to_apply_the_secret_removes_the_namespace(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch, backend="existing", context="lab")
    b.up()
    at = next(i for i, c in enumerate(rec.calls) if c[3:5] == ("apply", "--server-side"))
    b.down()
    b2, rec2, _ = make(tmp_path, bin_dir, monkeypatch, backend="existing", context="lab",
                       fail_at=at)
    with pytest.raises(Boom):
        b2.up()
    after = [short(c) for c in rec2.calls[at + 1:]]
    assert after[0] == "kubectl --context lab delete"
    assert rec2.calls[at + 1][3:6] == ("delete", "namespace", b2.settings.namespace)


def test_redact_hides_the_password_and_keeps_the_rest() -> None:
    from scalelab.credentials import BrokerCredentials, redact

    creds = BrokerCredentials.generate()
    url = creds.amqp_url(host="127.0.0.1", port=5672)
    shown = redact(url)
    assert creds.password not in shown
    assert shown == "amqp://scalelab:***@127.0.0.1:5672/%2F"
    assert redact("http://127.0.0.1:9090") == "http://127.0.0.1:9090"
    assert redact(creds.management_url(host="h")) == "http://scalelab:***@h:15672"


def test_scrub_removes_the_password_from_what_keda_216_logs(tmp_path: Path) -> None:
    """KEDA 2.16's rabbitmq scaler puts its management URL, password included, into its
    error (rabbitmq_scaler.go: "error requesting rabbitMQ API status: %s, response: %s,
    from: %s", kedacore/keda#2040); it reaches Events, conditions and logs."""
    from scalelab.credentials import BrokerCredentials, scrub, scrub_tree

    creds = BrokerCredentials.generate()
    url = creds.management_url(host="rabbitmq.scalelab.svc.cluster.local")
    message = (f"error requesting rabbitMQ API status: 404 Not Found, response: "
               f"{{\"error\":\"Object Not Found\"}}, from: {url}/api/queues/%2F/agent-tasks")
    doc = {"events": [{"message": message, "count": 3}], "n": 1,
           "logs": {"keda-operator-0": f"ERROR scaler failed {message}\nnext line"}}
    clean = scrub(doc)
    assert creds.password not in json.dumps(clean)
    assert clean["events"][0]["message"].endswith(
        "from: http://scalelab:***@rabbitmq.scalelab.svc.cluster.local:15672"
        "/api/queues/%2F/agent-tasks")
    assert clean["n"] == 1 and clean["logs"]["keda-operator-0"].endswith("\nnext line")
    logs = tmp_path / "kind-logs" / "scalelab-control-plane" / "pods"
    logs.mkdir(parents=True)
    (logs / "keda-operator.log").write_text(message)
    (logs / "other.log").write_text("nothing secret here")
    (logs / "binary").write_bytes(b"\xff\xfe\x00")
    assert scrub_tree(tmp_path / "kind-logs") == 1
    assert creds.password not in (logs / "keda-operator.log").read_text()


def test_diagnostics_and_the_bring_up_failure_file_hold_no_password(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CONTRACT TEST, NOT A CLUSTER: a KEDA Event carrying the run's password (as 2.16
    writes it) reaches diagnostics() and the bring-up failure file scrubbed."""
    b, rec, api = make(tmp_path, bin_dir, monkeypatch)
    b.up()
    try:
        assert b.credentials is not None
        password = b.credentials.password
        api.events = [{"type": "Warning", "reason": "KEDAScalerFailed",
                       "involvedObject": {"kind": "ScaledObject", "name": "agent"},
                       "lastTimestamp": "2026-11-30T18:00:00Z",
                       "message": "error requesting rabbitMQ API status: 401, from: "
                                  f"http://scalelab:{password}@rabbitmq:15672/api"}]
        doc = b.diagnostics()
        assert password not in json.dumps(doc, default=str)
        assert any("scalelab:***@rabbitmq" in str(e.get("message")) for e in doc["events"]), \
            f"expected the redacted URL in an event message, saw {doc['events']}"
        b.current_step = "readiness"
        saved = b._save_failure_diagnostics(
            RuntimeError(f"GET http://scalelab:{password}@127.0.0.1:1/api failed"))
        assert saved is not None and password not in saved.read_text()
    finally:
        b.down()
