"""``--backend kind``: a kind cluster created (and deleted) by pytest-kind."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from scalelab import paths
from scalelab.backends.cluster.backend import ClusterBackend
from scalelab.backends.cluster.render import image_ref, render_kind_config
from scalelab.backends.cluster.settings import IMAGES, MIN_KIND_VERSION, _parse_version
from scalelab.errors import ConfigError, MissingDependencyError
from scalelab.settings import (
    AGENT_DEPLOYMENT,
    API_DEPLOYMENT,
)

log = logging.getLogger(__name__)


class KindBackend(ClusterBackend):
    """A kind cluster created (and deleted) by pytest-kind's ``KindCluster``."""

    name: ClassVar[str] = "kind"

    def __init__(self, *, cluster_factory: Callable[..., Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if cluster_factory is None:
            from pytest_kind import KindCluster

            cluster_factory = KindCluster
        self._cluster_factory = cluster_factory
        self._kind: Any = None

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.work_dir / self.cluster.cluster_name / "kubeconfig"

    def _required_binaries(self) -> tuple[str, ...]:
        # kind and kubectl are downloaded by pytest-kind when missing (docs/kind.md).
        return ("docker", "helm")

    def check_inputs(self) -> None:
        super().check_inputs()
        if self.cluster.context:
            raise ConfigError("a kind cluster has its own context", field="SCALELAB_KUBE_CONTEXT",
                              fix="unset SCALELAB_KUBE_CONTEXT or use --backend existing")
        if self._which("kind") is None:
            from pytest_kind import cluster as pk

            if _parse_version(pk.KIND_VERSION) < MIN_KIND_VERSION:
                want = ".".join(map(str, MIN_KIND_VERSION))
                raise MissingDependencyError(
                    f"kind is not on PATH and pytest-kind would download kind "
                    f"{pk.KIND_VERSION}, too old for {self.cluster.node_image}",
                    fix=f"install kind >= v{want} on PATH, or export KIND_VERSION=v{want} "
                        "before starting scalelab")

    def _render(self) -> None:
        super()._render()
        (self.work_dir / "kind-config.yaml").write_text(render_kind_config(
            timing=self.settings.timing, cluster_name=self.cluster.cluster_name,
            node_image=self.cluster.node_image))

    def _provision(self) -> None:
        kind_path, kubectl_path = self._which("kind"), self._which("kubectl")
        self._kind = self._cluster_factory(
            name=self.cluster.cluster_name, kubeconfig=self.kubeconfig,
            kind_path=Path(kind_path) if kind_path else None,
            kubectl_path=Path(kubectl_path) if kubectl_path else None)
        # Creates the cluster, or re-uses one of that name (SCALELAB_KEEP_CLUSTER).
        self._kind.create(config_file=self.work_dir / "kind-config.yaml")
        if kubectl_path is None:
            self._kind.ensure_kubectl()
        self.kubectl = str(kubectl_path or self._kind.kubectl_path)
        for deployment in (API_DEPLOYMENT, AGENT_DEPLOYMENT):
            image = image_ref(deployment, prefix=self.cluster.image_prefix,
                              tag=self.cluster.image_tag)
            self._run(["docker", "build", "--tag", image, "--file", str(IMAGES[deployment][1]),
                       str(paths.ROOT)], timeout=1800)
        for deployment in (API_DEPLOYMENT, AGENT_DEPLOYMENT):
            self._kind.load_docker_image(image_ref(deployment, prefix=self.cluster.image_prefix,
                                                   tag=self.cluster.image_tag))

    def _teardown_cluster(self) -> None:
        kind, self._kind = self._kind, None
        if kind is None:
            return
        if self.cluster.keep_cluster:
            self._delete_namespace()
            return
        self._stack_touched = False
        kind.delete()
