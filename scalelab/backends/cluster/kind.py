"""``--backend kind``: a kind cluster created (and deleted) by pytest-kind."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from scalelab import paths
from scalelab.backends.cluster.backend import ClusterBackend
from scalelab.backends.cluster.events import controller_manager_flags, flag_mismatches
from scalelab.backends.cluster.kube import CommandError
from scalelab.backends.cluster.render import (
    API_HOST_PORT_FILE,
    api_host_port,
    image_ref,
    render_kind_config,
    timing_context,
)
from scalelab.backends.cluster.settings import API_NODE_PORT, IMAGES
from scalelab.backends.cluster.tools import cli_errors, tail_line
from scalelab.errors import BackendError, ConfigError, MissingDependencyError
from scalelab.settings import (
    AGENT_DEPLOYMENT,
    API_DEPLOYMENT,
)

log = logging.getLogger(__name__)

#: What `kind load docker-image` says when the node's `ctr images import` misses a blob of
#: an image index that Docker's containerd image store exported (kubernetes-sigs/kind#3795,
#: e.g. "ctr: content digest sha256:82014a...: not found").
CONTAINERD_STORE_FAILURE = re.compile(r"content digest sha256:[0-9a-f]+: not found")
#: `kind load` and `docker save` of one service image (a few hundred MB).
IMAGE_LOAD_TIMEOUT = 600.0


class KindBackend(ClusterBackend):
    """A kind cluster created (and deleted) by pytest-kind's ``KindCluster``."""

    name: ClassVar[str] = "kind"
    #: A cold start pulls the node image (~1 GB) and every chart's images.
    bring_up_timeout: ClassVar[float] = 2400.0

    def __init__(self, *, cluster_factory: Callable[..., Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if cluster_factory is None:
            from pytest_kind import KindCluster

            cluster_factory = KindCluster
        self._cluster_factory = cluster_factory
        self._kind: Any = None
        self._api_host_port: int | None = None
        self._reused = False
        #: The kube-controller-manager's --horizontal-pod-autoscaler-* flags of a reused
        #: cluster, as it runs them (in the record's backend details).
        self.controller_manager_flags: dict[str, str] = {}

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.work_dir / self.cluster.cluster_name / "kubeconfig"

    @property
    def api_node_port(self) -> int:
        """The API Service is a NodePort, mapped to the host by the kind config."""
        return API_NODE_PORT

    @property
    def direct_api_url(self) -> str | None:
        """Locust's load reaches the API through kind's port mapping, not a port-forward
        (the host port is chosen, or read back for a reused cluster, by ``_render``)."""
        port = self._api_host_port
        return None if port is None else f"http://127.0.0.1:{port}"

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
        self._api_host_port = api_host_port(self.work_dir)
        (self.work_dir / "kind-config.yaml").write_text(render_kind_config(
            timing=self.settings.timing, cluster_name=self.cluster.cluster_name,
            node_image=self.cluster.node_image, api_host_port=self._api_host_port,
            api_node_port=self.api_node_port))

    def _claim_cluster(self) -> None:
        """A cluster of our name that this run did not create is refused, recreated, or
        (``SCALELAB_KEEP_CLUSTER=1``) reused once its HPA flags match the timing profile.

        Silently reusing it would run the experiment under its old controller-manager flags
        and next to its old pods; the flags actually in force are recorded either way.
        """
        kind = str(self._tool_path("kind"))
        name = self.cluster.cluster_name
        listed = self._run([kind, "get", "clusters"], timeout=60).stdout.split()
        if name not in listed:
            return
        if self.cluster.recreate_cluster:
            log.warning("kind cluster %s exists: deleting it (SCALELAB_RECREATE_CLUSTER)", name)
            self._run([kind, "delete", "cluster", "--name", name], timeout=300)
            return
        if not self.cluster.keep_cluster:
            raise BackendError(
                f"a kind cluster named {name!r} already exists and this run did not create "
                "it: its controller-manager flags and pods may be another run's",
                fix=f"`kind delete cluster --name {name}`; or SCALELAB_RECREATE_CLUSTER=1 to "
                    "recreate it; or SCALELAB_KEEP_CLUSTER=1 to reuse it (its HPA flags are "
                    "checked against the timing profile)")
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        self._run([kind, "export", "kubeconfig", "--name", name,
                   "--kubeconfig", str(self.kubeconfig)], timeout=60)
        pods = self.api.list_pods(namespace="kube-system",
                                  label_selector="component=kube-controller-manager")
        flags = controller_manager_flags(pods[0]) if pods else {}
        self.controller_manager_flags = flags
        wrong = flag_mismatches(flags, timing_context(self.settings.timing))
        if wrong:
            raise ConfigError(
                f"the kind cluster {name!r} runs with other HPA flags than the timing "
                f"profile: {'; '.join(wrong)}", field="SCALELAB_KEEP_CLUSTER",
                fix=f"SCALELAB_RECREATE_CLUSTER=1 (or `kind delete cluster --name {name}`) "
                    "so the cluster is created with the profile's flags")
        self._api_host_port = self._mapped_api_port(name)
        (self.work_dir / API_HOST_PORT_FILE).write_text(f"{self._api_host_port}\n")
        self._reused = True
        log.info("kind cluster %s reused; its HPA flags match the timing profile", name)

    def _mapped_api_port(self, name: str) -> int:
        """The host port a reused cluster's node really maps to the API's NodePort
        (``docker port``), not the one the work dir remembers: after a cleaned work dir, or
        for a cluster created without the mapping, Locust's load would go nowhere."""
        node = f"{name}-control-plane"   # kind's node container name
        where = f"{self.api_node_port}/tcp"
        try:
            out = self._run([str(self._tool_path("docker")), "port", node, where],
                            timeout=30).stdout
        except CommandError as err:
            out = err.completed.stdout
        for line in out.splitlines():
            host, _, port = line.strip().rpartition(":")
            if host in ("127.0.0.1", "0.0.0.0", "[::]", "::") and port.isdigit():
                return int(port)
        raise ConfigError(
            f"the kind cluster {name!r} does not map the API's NodePort {where} to the host "
            f"(`docker port {node} {where}` printed {out.strip()!r})",
            field="SCALELAB_KEEP_CLUSTER",
            fix=f"SCALELAB_RECREATE_CLUSTER=1 (or `kind delete cluster --name {name}`): "
                "scalelab creates the cluster with that mapping")

    def _provision(self) -> None:
        self._claim_cluster()
        # Both paths always given: KindCluster downloads whatever it is not given.
        kind_path, kubectl_path = self._tool_path("kind"), self._tool_path("kubectl")
        self._kind = self._cluster_factory(
            name=self.cluster.cluster_name, kubeconfig=self.kubeconfig,
            kind_path=kind_path, kubectl_path=kubectl_path)
        if not self._reused:  # a reused cluster's kubeconfig is exported by _claim_cluster
            with cli_errors(f"creating the kind cluster {self.cluster.cluster_name!r}"):
                self._kind.create(config_file=self.work_dir / "kind-config.yaml")
        self.kubectl = str(kubectl_path)
        for deployment in (API_DEPLOYMENT, AGENT_DEPLOYMENT):
            image = image_ref(deployment, prefix=self.cluster.image_prefix,
                              tag=self.cluster.image_tag)
            self._run(["docker", "build", "--tag", image, "--file", str(IMAGES[deployment][1]),
                       str(paths.ROOT)], timeout=1800)
        for deployment in (API_DEPLOYMENT, AGENT_DEPLOYMENT):
            self._load_image(str(kind_path), image_ref(
                deployment, prefix=self.cluster.image_prefix, tag=self.cluster.image_tag))

    def _load_image(self, kind: str, image: str) -> None:
        """``kind load docker-image``; when that fails, ``docker save`` + ``kind load
        image-archive``, the workaround kind documents for kubernetes-sigs/kind#3795.

        With Docker's containerd image store (Docker Desktop's default, Docker Engine 29's),
        ``docker save`` exports the image's whole index and the node's ``ctr images import
        --all-platforms`` stops at a blob that was never pulled (``ctr: content digest
        sha256:...: not found``). Saving only the platform the image was built for
        (``docker save --platform``, Docker >= 28) gives an archive that imports cleanly.
        Run here rather than through pytest-kind so the output is captured and every
        command is one the contract tests record.
        """
        name = self.cluster.cluster_name
        try:
            self._run([kind, "load", "docker-image", "--name", name, image],
                      timeout=IMAGE_LOAD_TIMEOUT)
            return
        except CommandError as err:
            first = err
        said = first.completed.stderr + first.completed.stdout
        why = ("Docker's containerd image store (kubernetes-sigs/kind#3795)"
               if CONTAINERD_STORE_FAILURE.search(said) else "an unrecognised failure")
        log.warning("`kind load docker-image %s` failed (%s): loading it from `docker save` "
                    "with `kind load image-archive` instead", image, why)
        archive = self.work_dir / "images" / (re.sub(r"[^A-Za-z0-9_.-]+", "_", image) + ".tar")
        archive.parent.mkdir(parents=True, exist_ok=True)
        try:
            platform = self._run(["docker", "image", "inspect", "--format",
                                  "{{.Os}}/{{.Architecture}}{{if .Variant}}/{{.Variant}}{{end}}",
                                  image], timeout=60).stdout.strip()
            save = ["docker", "save", "--output", str(archive), image]
            try:
                self._run([*save[:-1], *(["--platform", platform] if platform else []), image],
                          timeout=IMAGE_LOAD_TIMEOUT)
            except CommandError as err:
                if not platform or "--platform" not in err.completed.stderr:
                    raise
                # Docker < 28 has no `save --platform`: its archive is single-platform anyway
                # unless the containerd store is on, where kind's own load already failed.
                self._run(save, timeout=IMAGE_LOAD_TIMEOUT)
            self._run([kind, "load", "image-archive", str(archive), "--name", name],
                      timeout=IMAGE_LOAD_TIMEOUT)
        except CommandError as err:
            raise BackendError(
                f"loading {image} into the kind cluster {name!r} failed both ways: "
                f"`kind load docker-image`: {tail_line(said)}; then "
                f"`{' '.join(err.completed.args)}`: "
                f"{tail_line(err.completed.stderr + err.completed.stdout)}",
                fix="check `docker image ls` shows the image and `docker ps` shows the node "
                    "container; on Docker Desktop, turning off 'Use containerd for pulling and "
                    "storing images' also avoids kubernetes-sigs/kind#3795") from err
        finally:
            archive.unlink(missing_ok=True)   # an image archive is hundreds of MB

    def details(self) -> dict[str, Any]:
        out = super().details()
        out["cluster_reused"] = self._reused
        if self.controller_manager_flags:
            out["controller_manager_flags"] = dict(self.controller_manager_flags)
        return out

    def _kind_logs_command(self, dest: Path) -> list[str] | None:
        """``kind export logs``: every node's kubelet, containerd and pod logs (diagnostics)."""
        if self._kind is None:
            return None   # no cluster of ours to export from
        return [str(self._tool_path("kind")), "export", "logs", str(dest),
                "--name", self.cluster.cluster_name]

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
        # the next cluster of this name maps a port free then
        (self.work_dir / API_HOST_PORT_FILE).unlink(missing_ok=True)
