"""``kubectl kustomize`` on manifests/base and on the overlays the cluster backends render,
every object it outputs validated strictly against the Kubernetes OpenAPI schema.

Contract test, not a cluster: this is what ``kubectl apply -k`` would send to the API
server, built by the real kubectl (its built-in kustomize) and checked with
kubernetes-validate (strict: unknown fields fail, as ``kubectl apply --validate=strict``
would) at the node image's Kubernetes minor version. kubectl is a client-only install
here and on CI (the machine image's ``kubectl`` package).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from scalelab.backends.cluster.backend import ClusterBackend
from scalelab.backends.cluster.existing import ExistingBackend
from scalelab.backends.cluster.kind import KindBackend
from scalelab.backends.cluster.render import render_overlay
from scalelab.backends.cluster.settings import BASE_DIR, ClusterSettings
from scalelab.settings import StackSettings

KUBECTL = shutil.which("kubectl")
#: The Kubernetes minor of the pinned kind node image (settings.DEFAULT_NODE_IMAGE).
K8S = "1.30"
#: Kinds manifests/base ships; anything else coming out of kustomize is a surprise.
BASE_KINDS = {"Namespace", "ConfigMap", "Service", "Deployment"}

pytestmark = pytest.mark.skipif(
    KUBECTL is None and not os.environ.get("CI"),
    reason="kubectl is not on PATH (client only is enough: https://kubernetes.io/docs/tasks/"
           "tools/#kubectl); on CI it is part of the machine image and this test must run")


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize DIR``: the objects ``kubectl apply -k DIR`` would apply."""
    assert KUBECTL is not None, "kubectl is not on PATH (the machine image installs it)"
    done = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True,
                          text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed:\n{done.stderr}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def invalid(objects: list[dict[str, Any]]) -> list[str]:
    """Every object kubernetes-validate refuses (strict), as kind/name: error."""
    out = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, K8S, strict=True)
        except kubernetes_validate.ValidationError as err:
            out.append(f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}: "
                       f"{err.message}")
    return out


def backend_overlay(kind: type[ClusterBackend], tmp_path: Path, **cluster: Any) -> Path:
    """The overlay a backend's own render step writes (``_render``, first step of up())."""
    kwargs: dict[str, Any] = dict(
        settings=StackSettings(agent_replicas=3),
        cluster=ClusterSettings(work_dir=tmp_path / "work", **cluster),
        which=lambda name: None, api=object())
    if kind is KindBackend:
        kwargs["cluster_factory"] = lambda **_: None
    backend = kind(**kwargs)
    backend._render()
    overlay = backend.work_dir / "stack"
    assert (overlay / "kustomization.yaml").is_file()
    return overlay


def _namespaced(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] != "Namespace"]


def test_base_builds_and_every_object_is_valid() -> None:
    objects = kustomize(BASE_DIR)
    assert {o["kind"] for o in objects} == BASE_KINDS
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"} == \
        {"rabbitmq", "api", "agent"}
    assert invalid(objects) == []


def test_the_kind_overlay_builds_and_every_object_is_valid(tmp_path: Path) -> None:
    overlay = backend_overlay(KindBackend, tmp_path)
    objects = kustomize(overlay)
    assert invalid(objects) == []
    assert {o["kind"] for o in objects} == BASE_KINDS
    (api,) = [o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "api"]
    assert api["spec"]["type"] == "NodePort"
    assert all("nodePort" in p for p in api["spec"]["ports"]), api["spec"]["ports"]
    (agent,) = [o for o in objects if o["kind"] == "Deployment"
                and o["metadata"]["name"] == "agent"]
    assert agent["spec"]["replicas"] == 3


def test_the_existing_overlay_builds_and_every_object_is_valid(tmp_path: Path) -> None:
    overlay = backend_overlay(ExistingBackend, tmp_path, image_prefix="ghcr.io/me",
                              image_tag="v1")
    objects = kustomize(overlay)
    assert invalid(objects) == []
    (ns,) = [o for o in objects if o["kind"] == "Namespace"]
    assert {o["metadata"]["namespace"] for o in _namespaced(objects)} == \
        {ns["metadata"]["name"]}, "every object lands in the run's namespace"
    images = {c["image"] for o in objects if o["kind"] == "Deployment"
              for c in o["spec"]["template"]["spec"]["containers"]}
    assert {"ghcr.io/me/scalelab/api:v1", "ghcr.io/me/scalelab/agent:v1"} <= images


def _api_env(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (api,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "api"]
    return {e["name"]: e.get("value") for e in api["spec"]["template"]["spec"]["containers"][0]
            ["env"]}


def test_the_api_reads_the_prometheus_the_cluster_backend_is_pointed_at(tmp_path: Path) -> None:
    """An existing cluster with its own Prometheus (SCALELAB_PROMETHEUS_SERVICE): the api's
    live view queries that one, not the kps release scalelab would have installed."""
    overlay = backend_overlay(ExistingBackend, tmp_path / "own",
                              prometheus_service="observability/prometheus-server:80")
    objects = kustomize(overlay)
    assert invalid(objects) == []
    assert _api_env(objects)["PROMETHEUS_URL"] == "http://prometheus-server.observability.svc:80"
    default = kustomize(backend_overlay(KindBackend, tmp_path / "kind"))
    assert _api_env(default)["PROMETHEUS_URL"] == "http://kps-prometheus.monitoring.svc:9090"
    # a patch tests the old value first: the default needs none (the base names kps)
    assert "kps-prometheus" in (overlay / "kustomization.yaml").read_text()
    assert "kps-prometheus" not in (backend_overlay(KindBackend, tmp_path / "k2")
                                    / "kustomization.yaml").read_text()


def test_a_broken_overlay_fails_to_build(tmp_path: Path) -> None:
    overlay = tmp_path / "stack"
    overlay.mkdir()
    doc = render_overlay(overlay_dir=overlay)
    doc["resources"] = ["../no-such-base"]
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(AssertionError, match="kubectl kustomize .* failed"):
        kustomize(overlay)


@pytest.mark.parametrize(("patch", "expected"), [
    ({"op": "replace", "path": "/spec/replicas", "value": "two"}, "Deployment/agent"),
    ({"op": "add", "path": "/spec/template/spec/containers/0/imagePullPolicy2",
      "value": "Always"}, "imagePullPolicy2"),
], ids=["wrong-type", "unknown-field"])
def test_an_invalid_object_from_a_built_overlay_is_caught(
        tmp_path: Path, patch: dict[str, Any], expected: str) -> None:
    overlay = tmp_path / "stack"
    overlay.mkdir()
    doc = render_overlay(overlay_dir=overlay)
    doc["patches"] = [*doc.get("patches", []), {
        "target": {"kind": "Deployment", "name": "agent"}, "patch": yaml.safe_dump([patch])}]
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(doc))
    problems = invalid(kustomize(overlay))
    assert any(expected in p for p in problems), problems
