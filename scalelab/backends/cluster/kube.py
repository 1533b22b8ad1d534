"""The Kubernetes API and the cluster CLIs behind one small module (kopf-style).

Two seams, and only these talk to a cluster:

* ``KubeApi``: reads and writes through the official ``kubernetes`` Python client and hands
  back plain JSON dicts of the same shape ``kubectl get -o json`` prints (camelCase keys,
  RFC 3339 times), so the code that interprets them is pure and testable with recorded JSON.
* ``run`` / ``spawn``: the CLIs (kind, kubectl, helm, docker), one-shot and long-running
  (``kubectl port-forward``). Tests replace them with recorders.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from scalelab.errors import BackendError, MissingDependencyError, WaitTimeout
from scalelab.procs.executor import MarkedExecutor

log = logging.getLogger(__name__)

#: How much of a failed command's stderr goes into the error message.
TAIL_CHARS = 2000
#: What to do when the Docker daemon does not answer (kind runs its node in it).
DOCKER_GET_IT = ("start the Docker daemon (Linux: `sudo systemctl start docker`; macOS and "
                 "Windows: start Docker Desktop), or install Docker: "
                 "https://docs.docker.com/engine/install/")


@dataclass(frozen=True, kw_only=True)
class Completed:
    """A finished command: what ran and what it printed."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def fix_for(completed: Completed) -> str:
    """The fix to print under a failed CLI, from what it said (CommandError's default)."""
    prog = os.path.basename(completed.args[0]) if completed.args else ""
    said = (completed.stderr + "\n" + completed.stdout).lower()
    if "cannot connect to the docker daemon" in said or "is the docker daemon running" in said:
        return DOCKER_GET_IT + "; check with `docker info`"
    if "current-context is not set" in said or "no configuration has been provided" in said:
        return ("pick a cluster: `kubectl config use-context NAME` or SCALELAB_KUBE_CONTEXT "
                "(`kubectl config get-contexts` lists them)")
    if ("unable to connect to the server" in said or "connection refused" in said
            or "was refused" in said):
        return ("the cluster's API server does not answer: check `kubectl cluster-info`"
                + ("; for kind, `docker ps` shows whether the node container runs"
                   if prog in ("kind", "docker") else ""))
    if prog == "kind":
        return ("check `docker info` and `kind get clusters`; `kind export logs` collects "
                "the node's logs; `scalelab down` removes a half-built stack")
    if prog == "helm":
        if "another operation (install/upgrade/rollback) is in progress" in said:
            # a helm killed mid-install (Ctrl-C, the bring-up bound) leaves its release in
            # a pending-* state that blocks every later upgrade
            args = list(completed.args)
            name = args[args.index("--install") + 1] if "--install" in args else "RELEASE"
            ns = args[args.index("--namespace") + 1] if "--namespace" in args else "NAMESPACE"
            return (f"an earlier helm run was cut off and left release {name} pending: "
                    f"`helm history {name} -n {ns}` shows it; `helm rollback {name} -n {ns}` "
                    f"(or `helm uninstall {name} -n {ns}` if it never installed), then re-run")
        if "context deadline exceeded" in said or "timed out waiting" in said:
            return ("the release did not become ready in time: `kubectl get pods -A` shows "
                    "which pod waits (image pulls on a cold cluster); raise "
                    "SCALELAB_HELM_TIMEOUT or re-run")
        return ("check the chart repository is reachable (`helm repo add` / network) and "
                "`helm version` is 3.x; `scalelab down` removes a half-built stack")
    return "read the output above; `scalelab down` removes a half-built stack"


class CommandError(BackendError):
    """A CLI exited non-zero; the message carries what failed, the command, its stderr tail
    and a fix (by default one read from what the CLI said: ``fix_for``)."""

    def __init__(self, completed: Completed, *, what: str | None = None,
                 fix: str | None = None) -> None:
        self.completed = completed
        tail = completed.stderr.strip()[-TAIL_CHARS:] or completed.stdout.strip()[-TAIL_CHARS:]
        super().__init__(
            (f"{what} failed: " if what else "")
            + f"`{' '.join(completed.args)}` exited with {completed.returncode}:\n{tail}",
            fix=fix or fix_for(completed),
        )


class Runner(Protocol):
    def __call__(self, cmd: Sequence[str], *, input: str | None = None,
                 timeout: float = 600.0, env: Mapping[str, str] | None = None) -> Completed:
        ...


def run(cmd: Sequence[str], *, input: str | None = None, timeout: float = 600.0,
        env: Mapping[str, str] | None = None) -> Completed:
    """Run a CLI to completion; raise ``CommandError`` on a non-zero exit.

    ``timeout`` bounds commands that could hang (a helm install waiting on an image pull)
    so a broken cluster fails with a message instead of a silent stall.
    """
    args = tuple(str(a) for a in cmd)
    log.info("$ %s", " ".join(args))
    start = time.monotonic()
    try:
        done = subprocess.run(args, input=input, capture_output=True, text=True,
                              timeout=timeout, check=False,
                              env=None if env is None else dict(env))
    except FileNotFoundError as err:
        raise MissingDependencyError(f"{args[0]} is not installed",
                                     fix=f"install {args[0]} (see docs/kind.md)") from err
    except subprocess.TimeoutExpired as err:
        raise WaitTimeout(f"`{' '.join(args)}` to finish", expected="exit",
                          actual="still running", elapsed=time.monotonic() - start) from err
    completed = Completed(args=args, returncode=done.returncode, stdout=done.stdout,
                          stderr=done.stderr)
    if done.returncode != 0:
        raise CommandError(completed)
    return completed


class Process(Protocol):
    """A long-running CLI (``kubectl port-forward``)."""

    def running(self) -> bool: ...

    def stop(self) -> None: ...


class Spawner(Protocol):
    def __call__(self, cmd: Sequence[str], *, log_file: Path) -> Process: ...


class _Spawned:
    """A mirakuru executor whose output goes to a file (a full pipe would block kubectl).

    ``MarkedExecutor``: another Python process's exit cannot SIGKILL it (procs/executor.py).
    """

    def __init__(self, cmd: Sequence[str], *, log_file: Path) -> None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self._out: IO[Any] = log_file.open("ab")
        self._executor = MarkedExecutor([str(a) for a in cmd], stdout=self._out,
                                        stderr=subprocess.STDOUT, timeout=30)
        self.log_file = log_file
        self._executor.start()

    def running(self) -> bool:
        return bool(self._executor.running())

    def stop(self) -> None:
        try:
            self._executor.stop()
        finally:
            self._out.close()


def spawn(cmd: Sequence[str], *, log_file: Path) -> Process:
    """Start a long-running CLI; stopping it is the caller's job (``Process.stop``)."""
    log.info("$ %s &", " ".join(str(a) for a in cmd))
    return _Spawned(cmd, log_file=log_file)


class KubeApi:
    """Reads and writes through the ``kubernetes`` client; results are kubectl-shaped JSON.

    The client is built on first use: a kind cluster's kubeconfig only exists once the
    cluster does.
    """

    def __init__(self, *, kubeconfig: Path | str | None = None, context: str | None = None,
                 request_timeout: float = 30.0) -> None:
        #: One file, or several joined with os.pathsep as in KUBECONFIG: the client's
        #: KubeConfigMerger (kubernetes/config/kube_config.py) merges them as kubectl does.
        self.kubeconfig = kubeconfig
        self.context = context
        self.request_timeout = request_timeout
        self._api_client: Any = None

    def _client(self) -> Any:
        if self._api_client is None:
            from kubernetes import config

            self._api_client = config.new_client_from_config(
                config_file=None if self.kubeconfig is None else str(self.kubeconfig),
                context=self.context)
        return self._api_client

    def _json(self, obj: Any) -> Any:
        return self._client().sanitize_for_serialization(obj)

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, _request_timeout=self.request_timeout, **kwargs)
        except ApiException as err:
            if err.status == 404:
                return None
            raise BackendError(f"Kubernetes API: {what} failed: {err.status} {err.reason}",
                               fix="check the cluster is up (`kubectl get nodes`)") from err

    def _apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self._client())

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self._client())

    def get_deployment(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        """The Deployment (spec and status), or None when it does not exist."""
        obj = self._call(f"get deployment {namespace}/{name}",
                         self._apps().read_namespaced_deployment, name, namespace)
        return None if obj is None else self._json(obj)

    def list_deployments(self, *, namespace: str, label_selector: str = ""
                         ) -> list[dict[str, Any]]:
        obj = self._call(f"list deployments in {namespace}",
                         self._apps().list_namespaced_deployment, namespace,
                         label_selector=label_selector)
        return [] if obj is None else list(self._json(obj).get("items") or [])

    def scale_deployment(self, *, namespace: str, name: str, replicas: int) -> None:
        """Write ``spec.replicas`` through the scale subresource, as ``kubectl scale`` does."""
        done = self._call(f"scale deployment {namespace}/{name}",
                          self._apps().patch_namespaced_deployment_scale, name, namespace,
                          {"spec": {"replicas": replicas}})
        if done is None:
            raise BackendError(f"Deployment {namespace}/{name} does not exist",
                               fix="bring the stack up first (`scalelab up`)")

    def list_hpas(self, *, namespace: str) -> list[dict[str, Any]]:
        from kubernetes import client

        api = client.AutoscalingV2Api(self._client())
        obj = self._call(f"list HPAs in {namespace}",
                         api.list_namespaced_horizontal_pod_autoscaler, namespace)
        return [] if obj is None else list(self._json(obj).get("items") or [])

    def list_events(self, *, namespace: str) -> list[dict[str, Any]]:
        """core/v1 Events of a namespace (what ``kubectl get events -o json`` lists)."""
        obj = self._call(f"list events in {namespace}",
                         self._core().list_namespaced_event, namespace)
        return [] if obj is None else list(self._json(obj).get("items") or [])

    def list_pods(self, *, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        obj = self._call(f"list pods in {namespace}", self._core().list_namespaced_pod,
                         namespace, label_selector=label_selector)
        return [] if obj is None else list(self._json(obj).get("items") or [])

    def pod_log(self, *, namespace: str, name: str, tail_lines: int = 50) -> str:
        text = self._call(f"log of {namespace}/{name}",
                          self._core().read_namespaced_pod_log, name, namespace,
                          tail_lines=tail_lines)
        return text or ""

    def server_version(self) -> dict[str, Any]:
        from kubernetes import client

        obj = self._call("server version", client.VersionApi(self._client()).get_code)
        return {} if obj is None else dict(self._json(obj))

    def get_apiservice(self, *, name: str) -> dict[str, Any] | None:
        """An apiregistration.k8s.io/v1 APIService (e.g. ``v1beta1.metrics.k8s.io``), or None."""
        from kubernetes import client

        obj = self._call(f"get APIService {name}",
                         client.ApiregistrationV1Api(self._client()).read_api_service, name)
        return None if obj is None else self._json(obj)

    def list_custom_objects(self, *, group: str, version: str, namespace: str, plural: str
                            ) -> list[dict[str, Any]]:
        """Custom resources of a namespace (e.g. keda.sh/v1alpha1 scaledobjects); [] when the
        CRD is not installed (404)."""
        from kubernetes import client

        obj = self._call(f"list {plural}.{group} in {namespace}",
                         client.CustomObjectsApi(self._client()).list_namespaced_custom_object,
                         group, version, namespace, plural)
        return [] if obj is None else list(self._json(obj).get("items") or [])

    # -- faults (scalelab/backends/cluster/faults.py) ---------------------------------------
    def delete_pod(self, *, namespace: str, name: str, grace_period_seconds: int | None = None
                   ) -> bool:
        """Delete a pod (``kubectl delete pod [--grace-period=N]``); False if it was gone."""
        kwargs = {} if grace_period_seconds is None else {
            "grace_period_seconds": grace_period_seconds}
        done = self._call(f"delete pod {namespace}/{name}",
                          self._core().delete_namespaced_pod, name, namespace, **kwargs)
        return done is not None

    def exec_in_pod(self, *, namespace: str, name: str, command: list[str],
                    container: str | None = None) -> str:
        """Run ``command`` in a pod's container (``kubectl exec``); its stdout and stderr."""
        from kubernetes.stream import stream

        kwargs: dict[str, Any] = {"command": command, "stderr": True, "stdin": False,
                                  "stdout": True, "tty": False}
        if container:
            kwargs["container"] = container
        out = self._call(f"exec in pod {namespace}/{name}", stream,
                         self._core().connect_get_namespaced_pod_exec, name, namespace,
                         **kwargs)
        return str(out or "")

    def create_network_policy(self, *, namespace: str, body: dict[str, Any]) -> None:
        """Create a networking.k8s.io/v1 NetworkPolicy (replacing one of the same name)."""
        from kubernetes import client

        api = client.NetworkingV1Api(self._client())
        name = body["metadata"]["name"]
        self._call(f"delete NetworkPolicy {namespace}/{name}",
                   api.delete_namespaced_network_policy, name, namespace)
        self._call(f"create NetworkPolicy {namespace}/{name}",
                   api.create_namespaced_network_policy, namespace, body)

    def delete_network_policy(self, *, namespace: str, name: str) -> bool:
        from kubernetes import client

        api = client.NetworkingV1Api(self._client())
        return self._call(f"delete NetworkPolicy {namespace}/{name}",
                          api.delete_namespaced_network_policy, name, namespace) is not None
