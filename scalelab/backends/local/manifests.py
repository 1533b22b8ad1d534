"""Read the Deployment manifests the cluster applies, so both backends run the same spec.

The local backend takes from ``manifests/base/<name>.yaml``: replicas, the first container's
env (``value`` and ``fieldRef``), CPU/memory requests and limits, the readiness probe, the
termination grace period and the Prometheus scrape annotations. Bad input is a
``ConfigError`` naming the file and the field, raised before anything starts.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes.utils import parse_quantity

from scalelab import paths
from scalelab.control.hpa import parse_quantity_milli
from scalelab.errors import ConfigError

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

    def resolve_env(self, *, pod: str, overrides: Mapping[str, str] | None = None
                    ) -> dict[str, str]:
        """The container's env as the kubelet resolves it (``value`` and the downward API
        ``metadata.name``/``metadata.namespace``), then ``overrides`` (the local
        backend's addresses replace in-cluster service names)."""
        resolved: dict[str, str] = {}
        for index, entry in enumerate(self.env):
            name = str(entry["name"])
            if "value" in entry:
                resolved[name] = str(entry["value"])
                continue
            ref = (entry.get("valueFrom") or {}).get("fieldRef") or {}
            path = ref.get("fieldPath")
            if path == "metadata.name":
                resolved[name] = pod
            elif path == "metadata.namespace":
                resolved[name] = self.namespace
            else:
                raise ConfigError(
                    f"env {name!r} uses a source the local backend cannot resolve",
                    file=str(self.file), field=f"spec.template.spec.containers[0].env[{index}]",
                    fix="use a literal value or fieldRef metadata.name / metadata.namespace",
                )
        resolved.update(overrides or {})
        return resolved


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
