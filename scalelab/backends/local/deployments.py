"""Read the Deployment manifests the cluster applies, so both backends run the same spec.

The local backend takes from ``manifests/base/<name>.yaml``: replicas, the first container's
env (``value``, ``fieldRef`` and ``secretKeyRef``), CPU/memory requests and limits, the
readiness probe, the termination grace period and the Prometheus scrape annotations. Bad
input is a ``ConfigError`` naming the file and the field, raised before anything starts.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from kubernetes.utils import parse_quantity

from scalelab import paths
from scalelab.control.hpa import parse_quantity_milli
from scalelab.credentials import AMQP_URL_KEY, SECRET_NAME, BrokerCredentials
from scalelab.errors import ConfigError
from scalelab.procs.rabbitmq import GUEST

BASE = paths.MANIFESTS / "base"

#: The alphabet Kubernetes uses for generated names (no vowels, no confusable digits):
#: apimachinery/pkg/util/rand/rand.go (``alphanums``).
ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def safe_encode(text: str) -> str:
    """apimachinery rand.SafeEncodeString: map each byte onto ``ALPHANUMS``."""
    return "".join(ALPHANUMS[ord(ch) % len(ALPHANUMS)] for ch in text)


def fnv32a(data: bytes) -> int:
    """32-bit FNV-1a, the hash Kubernetes uses for pod-template-hash."""
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def pod_template_hash(template: Mapping[str, Any]) -> str:
    """A pod-template-hash in the style of kubernetes pkg/controller/controller_utils.go
    ``ComputeHash`` (fnv32a of the template, safe-encoded). Not bit-identical to the
    cluster's (which hashes Go's spew dump of the object), only the same shape."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    return safe_encode(str(fnv32a(canonical)))


def pod_name(deployment: str, template_hash: str, *, rng: random.Random | None = None) -> str:
    """``<deployment>-<hash>-<5 chars>`` as the ReplicaSet controller names pods."""
    pick = (rng or random.SystemRandom()).choice
    return f"{deployment}-{template_hash}-{''.join(pick(ALPHANUMS) for _ in range(5))}"


@dataclass(frozen=True, kw_only=True)
class Probe:
    """An httpGet probe (path, port number, period, thresholds)."""

    path: str
    port: int
    period: float = 10.0
    initial_delay: float = 0.0
    failure_threshold: int = 3
    timeout: float = 1.0


@dataclass(frozen=True, kw_only=True)
class DeploymentSpec:
    """What the supervisor needs from a Deployment manifest."""

    file: Path
    name: str
    namespace: str
    replicas: int
    container: str
    image: str
    env: tuple[Mapping[str, Any], ...]          # the manifest's env entries, in order
    cpu_request_milli: int | None
    cpu_limit_milli: int | None
    memory_request_bytes: int | None
    memory_limit_bytes: int | None
    termination_grace_period: float | None
    readiness: Probe | None
    liveness: Probe | None
    template_hash: str
    scrape_port: int | None = None
    scrape_path: str = "/metrics"
    labels: Mapping[str, str] = field(default_factory=dict)

    def resolve_env(self, *, pod: str, secrets: Mapping[str, Mapping[str, str]] | None = None,
                    overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """The container's env as the kubelet resolves it (``value``, the downward API
        ``metadata.name``/``metadata.namespace``, ``secretKeyRef`` from ``secrets``: Secret
        name -> data), then ``overrides`` (the local backend's own ports).

        ``secretKeyRef`` follows kubernetes ``pkg/kubelet/kubelet_pods.go``
        ``makeEnvironmentVariables``: a missing Secret or key leaves the variable out when
        the reference is ``optional``, and otherwise stops the container from starting
        (CreateContainerConfigError), here a ``ConfigError`` before any pod starts.
        """
        resolved: dict[str, str] = {}
        for index, entry in enumerate(self.env):
            name = str(entry["name"])
            at = f"spec.template.spec.containers[0].env[{index}]"
            if "value" in entry:
                resolved[name] = str(entry["value"])
                continue
            source = entry.get("valueFrom") or {}
            if "secretKeyRef" in source:
                value = self._secret_value(source["secretKeyRef"], secrets or {}, env=name,
                                           at=f"{at}.valueFrom.secretKeyRef")
                if value is not None:
                    resolved[name] = value
                continue
            path = (source.get("fieldRef") or {}).get("fieldPath")
            if path == "metadata.name":
                resolved[name] = pod
            elif path == "metadata.namespace":
                resolved[name] = self.namespace
            else:
                raise ConfigError(
                    f"env {name!r} uses a source the local backend cannot resolve",
                    file=str(self.file), field=at,
                    fix="use a literal value, fieldRef metadata.name / metadata.namespace, "
                        "or secretKeyRef",
                )
        resolved.update(overrides or {})
        return resolved

    def _secret_value(self, ref: Mapping[str, Any], secrets: Mapping[str, Mapping[str, str]],
                      *, env: str, at: str) -> str | None:
        secret, key = str(ref.get("name", "")), str(ref.get("key", ""))
        data = secrets.get(secret)
        if data is not None and key in data:
            return data[key]
        if ref.get("optional"):
            return None
        missing = (f"Secret {secret!r} does not exist" if data is None
                   else f"Secret {secret!r} has no key {key!r}")
        provided = "; ".join(f"{n} (keys {', '.join(sorted(d))})" for n, d in secrets.items())
        raise ConfigError(
            f"env {env!r}: {missing} (the kubelet would not start the container)",
            file=str(self.file), field=at,
            fix=f"reference a Secret and key the backend provides: {provided or 'none'}")


def local_secret_data(rabbit: Any) -> dict[str, str]:
    """The data of the Secret ``manifests/base`` reads (``scalelab.credentials``) for the
    local backend's private broker: its ``guest`` user, which that broker admits from
    loopback only (``scalelab.procs.rabbitmq`` sets ``loopback_users.guest = true``), so
    no password is made up and none is written anywhere: the data lives in memory."""
    user, password = GUEST
    creds = BrokerCredentials(username=user, password=password)
    mgmt = urlsplit(rabbit.management_url)
    return creds.secret_data(
        amqp_url=rabbit.amqp_url,
        management_url=creds.management_url(host=str(mgmt.hostname), port=int(mgmt.port or 80)))


def check_broker_env(spec: DeploymentSpec) -> None:
    """The local pods reach the private broker only through the Secret's ``amqp-url``: a
    literal ``AMQP_URL`` (say, an in-cluster service name) would leave them retrying
    forever, so refuse it before anything starts."""
    for index, entry in enumerate(spec.env):
        if entry.get("name") != "AMQP_URL":
            continue
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef") or {}
        if ref.get("name") == SECRET_NAME and ref.get("key") == AMQP_URL_KEY:
            return
        raise ConfigError(
            "env AMQP_URL does not come from the broker Secret, so the local pods would not "
            "reach the private broker", file=str(spec.file),
            field=f"spec.template.spec.containers[0].env[{index}]",
            fix=f"valueFrom: {{secretKeyRef: {{name: {SECRET_NAME}, key: {AMQP_URL_KEY}}}}} "
                "(as manifests/base does)")
    raise ConfigError("env AMQP_URL is missing", file=str(spec.file),
                      field="spec.template.spec.containers[0].env",
                      fix=f"add AMQP_URL from secretKeyRef {SECRET_NAME}/{AMQP_URL_KEY}")


def _quantity(value: Any, *, file: Path, field_: str, milli: bool) -> int | None:
    if value is None:
        return None
    if milli:  # the same conversion as the HPA emulation (Quantity.MilliValue rounds up)
        return parse_quantity_milli(value, source=str(file), field_=field_)
    try:
        number = parse_quantity(value)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"not a Kubernetes quantity: {value!r} ({err})", file=str(file),
                          field=field_, fix="write e.g. 250m or 1 (CPU), 128Mi (memory)") from None
    return int(number)


def _probe(raw: Any, ports: Mapping[str, int], *, file: Path, field_: str) -> Probe | None:
    if not raw:
        return None
    http = raw.get("httpGet")
    if not http:
        raise ConfigError("only httpGet probes are supported by the local backend",
                          file=str(file), field=field_, fix="use an httpGet probe")
    port = http.get("port")
    if isinstance(port, str):
        if port not in ports:
            raise ConfigError(f"probe port {port!r} is not a named container port",
                              file=str(file), field=f"{field_}.httpGet.port",
                              fix=f"use one of {sorted(ports)} or a number")
        port = ports[port]
    return Probe(
        path=str(http.get("path", "/")), port=int(port),
        period=float(raw.get("periodSeconds", 10)),
        initial_delay=float(raw.get("initialDelaySeconds", 0)),
        failure_threshold=int(raw.get("failureThreshold", 3)),
        timeout=float(raw.get("timeoutSeconds", 1)),
    )


def load_documents(path: Path) -> list[dict[str, Any]]:
    """All YAML documents of a manifest file (empty documents dropped)."""
    try:
        docs = list(yaml.safe_load_all(Path(path).read_text()))
    except OSError as err:
        raise ConfigError(f"cannot read manifest: {err.strerror}", file=str(path),
                          fix="check the path") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"not valid YAML: {err}", file=str(path),
                          fix="fix the YAML syntax") from None
    out = []
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc:
            raise ConfigError(f"document {index} is not a Kubernetes object",
                              file=str(path), field="kind", fix="each document needs a kind")
        out.append(doc)
    return out


def load_deployment(name: str, *, path: Path | None = None) -> DeploymentSpec:
    """Read Deployment ``name`` from ``path`` (default ``manifests/base/<name>.yaml``)."""
    file = Path(path) if path else BASE / f"{name}.yaml"
    docs = [d for d in load_documents(file)
            if d.get("kind") == "Deployment" and (d.get("metadata") or {}).get("name") == name]
    if not docs:
        raise ConfigError(f"no Deployment named {name!r}", file=str(file), field="metadata.name",
                          fix=f"add a Deployment with metadata.name: {name}")
    doc = docs[0]
    meta = doc.get("metadata") or {}
    spec = doc.get("spec") or {}
    template = spec.get("template") or {}
    pod_spec = template.get("spec") or {}
    containers = pod_spec.get("containers") or []
    if not containers:
        raise ConfigError("the pod template has no containers", file=str(file),
                          field="spec.template.spec.containers", fix="add the container")
    container = containers[0]
    prefix = "spec.template.spec.containers[0]"
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        raise ConfigError(f"replicas must be a non-negative integer, got {replicas!r}",
                          file=str(file), field="spec.replicas", fix="e.g. replicas: 2")
    ports = {p["name"]: int(p["containerPort"]) for p in container.get("ports") or []
             if "name" in p}
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    scrape_port = annotations.get("prometheus.io/port")
    grace = pod_spec.get("terminationGracePeriodSeconds")
    return DeploymentSpec(
        file=file,
        name=name,
        namespace=str(meta.get("namespace", "default")),
        replicas=replicas,
        container=str(container.get("name", name)),
        image=str(container.get("image", "")),
        env=tuple(container.get("env") or ()),
        cpu_request_milli=_quantity(requests.get("cpu"), file=file,
                                    field_=f"{prefix}.resources.requests.cpu", milli=True),
        cpu_limit_milli=_quantity(limits.get("cpu"), file=file,
                                  field_=f"{prefix}.resources.limits.cpu", milli=True),
        memory_request_bytes=_quantity(requests.get("memory"), file=file,
                                       field_=f"{prefix}.resources.requests.memory", milli=False),
        memory_limit_bytes=_quantity(limits.get("memory"), file=file,
                                     field_=f"{prefix}.resources.limits.memory", milli=False),
        termination_grace_period=float(grace) if grace is not None else None,
        readiness=_probe(container.get("readinessProbe"), ports, file=file,
                         field_=f"{prefix}.readinessProbe"),
        liveness=_probe(container.get("livenessProbe"), ports, file=file,
                        field_=f"{prefix}.livenessProbe"),
        template_hash=pod_template_hash(template),
        scrape_port=int(scrape_port) if scrape_port else None,
        scrape_path=str(annotations.get("prometheus.io/path", "/metrics")),
        labels=dict((template.get("metadata") or {}).get("labels") or {}),
    )
