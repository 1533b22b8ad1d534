"""``--backend kind``: a kind cluster created (and deleted) by pytest-kind."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from scalelab import paths
from scalelab.backends.cluster.backend import ClusterBackend
from scalelab.backends.cluster.render import image_ref, render_kind_config
from scalelab.backends.cluster.settings import IMAGES
from scalelab.backends.cluster.tools import cli_errors
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

    def check_inputs(self) -> None:
        """Also: a Docker daemon that answers, kind in the pinned range, kubectl and helm
        (``tools.check_cluster_tools``). kind and kubectl must be on PATH: pytest-kind would
        otherwise download its own (kind v0.17, kubectl 1.25, amd64 only)."""
        if self.cluster.context:
            raise ConfigError("a kind cluster has its own context", field="SCALELAB_KUBE_CONTEXT",
                              fix="unset SCALELAB_KUBE_CONTEXT or use --backend existing")
        super().check_inputs()

    def _tool_path(self, name: str) -> Path:
        """The CLI check_inputs version-checked; never let pytest-kind pick one."""
        path = self.tool_paths.get(name) or self._which(name)
        if path is None:
            raise MissingDependencyError(f"{name} is not on PATH",
                                         fix="see docs/kind.md, Prerequisites")
        return Path(path)

    def _render(self) -> None:
        super()._render()
        (self.work_dir / "kind-config.yaml").write_text(render_kind_config(
            timing=self.settings.timing, cluster_name=self.cluster.cluster_name,
            node_image=self.cluster.node_image))

    def _provision(self) -> None:
        # Both paths always given: KindCluster downloads whatever it is not given.
        kind_path, kubectl_path = self._tool_path("kind"), self._tool_path("kubectl")
        self._kind = self._cluster_factory(
            name=self.cluster.cluster_name, kubeconfig=self.kubeconfig,
            kind_path=kind_path, kubectl_path=kubectl_path)
        # Creates the cluster, or re-uses one of that name (SCALELAB_KEEP_CLUSTER).
        with cli_errors(f"creating the kind cluster {self.cluster.cluster_name!r}"):
            self._kind.create(config_file=self.work_dir / "kind-config.yaml")
        self.kubectl = str(kubectl_path)
        for deployment in (API_DEPLOYMENT, AGENT_DEPLOYMENT):
            image = image_ref(deployment, prefix=self.cluster.image_prefix,
                              tag=self.cluster.image_tag)
            self._run(["docker", "build", "--tag", image, "--file", str(IMAGES[deployment][1]),
                       str(paths.ROOT)], timeout=1800)
        for deployment in (API_DEPLOYMENT, AGENT_DEPLOYMENT):
            image = image_ref(deployment, prefix=self.cluster.image_prefix,
                              tag=self.cluster.image_tag)
            with cli_errors(f"loading {image} into the kind cluster"):
                self._kind.load_docker_image(image)

    def _teardown_cluster(self) -> None:
        kind, self._kind = self._kind, None
        if kind is None:
            return
        if self.cluster.keep_cluster:
            self._delete_namespace()
            return
        self._stack_touched = False
        with cli_errors(f"deleting the kind cluster {self.cluster.cluster_name!r}"):
            kind.delete()
