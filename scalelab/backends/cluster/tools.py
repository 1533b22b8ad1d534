"""The CLIs the cluster backends run, the versions accepted, and one line per problem.

Each tool is a ``ToolRequirement``: the command that prints its version, how to read it,
the range accepted (pinned in ``settings``) and where to get it. ``python -m
scalelab.preflight`` and the cluster backends' ``check_inputs`` ask the same functions, so
both refuse the same things, with the same lines, before anything starts.

Probes never raise: a missing binary, a crash or a timeout is a ``Finding`` (what, the
problem, how to fix it), and a run lists every finding at once instead of one per attempt.
``cli_errors`` turns what third-party code that runs these CLIs raises (pytest-kind's
``subprocess.CalledProcessError``) into the same ``CommandError`` ``kube.run`` raises.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from scalelab.backends.cluster.kube import DOCKER_GET_IT, CommandError, Completed, fix_for
from scalelab.backends.cluster.settings import (
    DEFAULT_NODE_IMAGE,
    HELM_VERSIONS,
    KIND_VERSION,
    KIND_VERSIONS,
    KUBECTL_MIN_VERSION,
)
from scalelab.errors import MissingDependencyError

Version = tuple[int, int, int]
Which = Callable[[str], str | None]

#: How long a version or reachability probe may take (a hung daemon must not hang preflight).
PROBE_TIMEOUT = 15.0
#: How much of a probe's or a failed CLI's output goes into a one-line finding.
LINE_TAIL = 300


def parse_version(text: str) -> Version | None:
    """The first ``[v]X.Y.Z`` in a tool's version output (``kind v0.25.0 go1.22.9 ...``,
    ``v3.16.2+g13654a5``, ``Client Version: v1.32.4``), or None."""
    found = re.search(r"\bv?(\d+)\.(\d+)\.(\d+)", text)
    if found is None:
        return None
    major, minor, patch = (int(g) for g in found.groups())
    return major, minor, patch


def show(version: Version) -> str:
    return "v" + ".".join(map(str, version))


def tail_line(text: str, limit: int = LINE_TAIL) -> str:
    """The end of a CLI's output on one line (a finding is one line)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else "..." + flat[-limit:]


@dataclass(frozen=True, kw_only=True)
class ToolRequirement:
    """A CLI a backend runs: how to ask its version and which versions are accepted."""

    #: The executable looked up on PATH.
    name: str
    #: Arguments that make it print its version (appended to the resolved path).
    version_args: tuple[str, ...]
    #: Where to get it (a URL, and the version to pick when it matters).
    get_it: str
    #: Lowest accepted version (inclusive), or None.
    minimum: Version | None = None
    #: First version no longer accepted (exclusive), or None.
    below: Version | None = None
    #: Reads the version out of the output of ``version_args``.
    parse: Callable[[str], Version | None] = parse_version

    def allowed(self) -> str:
        parts = []
        if self.minimum is not None:
            parts.append(f">= {show(self.minimum)}")
        if self.below is not None:
            parts.append(f"< {show(self.below)}")
        return ", ".join(parts) or "any version"

    def accepts(self, version: Version) -> bool:
        return ((self.minimum is None or version >= self.minimum)
                and (self.below is None or version < self.below))


def kind_requirement(node_image: str = DEFAULT_NODE_IMAGE) -> ToolRequirement:
    """kind in the range the pinned node image was published for; with another node image
    (SCALELAB_KIND_NODE_IMAGE) only the lower bound holds: that image names its own kind."""
    pinned = node_image == DEFAULT_NODE_IMAGE
    return ToolRequirement(
        name="kind", version_args=("version",), minimum=KIND_VERSIONS[0],
        below=KIND_VERSIONS[1] if pinned else None,
        get_it=f"install kind {KIND_VERSION} (https://kind.sigs.k8s.io/docs/user/quick-start/"
               f"#installation; binaries: https://github.com/kubernetes-sigs/kind/releases/tag/"
               f"{KIND_VERSION})")


KUBECTL = ToolRequirement(
    name="kubectl", version_args=("version", "--client"), minimum=KUBECTL_MIN_VERSION,
    get_it="install kubectl 1.29 - 1.31 (https://kubernetes.io/docs/tasks/tools/#kubectl)")
HELM = ToolRequirement(
    name="helm", version_args=("version", "--short"), minimum=HELM_VERSIONS[0],
    below=HELM_VERSIONS[1],
    get_it="install helm 3 (https://helm.sh/docs/intro/install/; "
           "https://github.com/helm/helm/releases)")


@dataclass(frozen=True, kw_only=True)
class Finding:
    """Something a backend needs and does not have: what, what is wrong, how to fix it."""

    what: str
    problem: str
    fix: str

    def line(self) -> str:
        return f"{self.what}: {self.problem}; fix: {self.fix}"


class Probe(Protocol):
    def __call__(self, cmd: Sequence[str], *, timeout: float = PROBE_TIMEOUT) -> Completed: ...


def probe(cmd: Sequence[str], *, timeout: float = PROBE_TIMEOUT) -> Completed:
    """Run a read-only CLI check; never raises: failures come back as a non-zero code."""
    args = tuple(str(a) for a in cmd)
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)
    except OSError as err:
        return Completed(args=args, returncode=127, stdout="", stderr=str(err))
    except subprocess.TimeoutExpired:
        return Completed(args=args, returncode=124, stdout="",
                         stderr=f"no answer within {timeout:g}s")
    return Completed(args=args, returncode=done.returncode, stdout=done.stdout,
                     stderr=done.stderr)


@dataclass(frozen=True, kw_only=True)
class ToolStatus:
    """One tool on this machine: its path and version, or what is wrong with it."""

    path: str | None
    version: Version | None
    finding: Finding | None


def check_tool(req: ToolRequirement, *, which: Which, probe: Probe = probe) -> ToolStatus:
    """Not on PATH, does not run, unreadable or outside the range: a finding."""
    path = which(req.name)
    if path is None:
        return ToolStatus(path=None, version=None, finding=Finding(
            what=req.name, problem="not found on PATH", fix=req.get_it))
    done = probe([path, *req.version_args])
    out = done.stdout + "\n" + done.stderr
    if done.returncode != 0:
        return ToolStatus(path=path, version=None, finding=Finding(
            what=req.name,
            problem=f"`{req.name} {' '.join(req.version_args)}` failed "
                    f"(exit {done.returncode}): {tail_line(out)}",
            fix=req.get_it))
    version = req.parse(out)
    if version is None:
        return ToolStatus(path=path, version=None, finding=Finding(
            what=req.name, problem=f"cannot read a version from {tail_line(out)!r}",
            fix=req.get_it))
    if not req.accepts(version):
        return ToolStatus(path=path, version=version, finding=Finding(
            what=req.name,
            problem=f"{path} is {show(version)}, scalelab needs {req.allowed()}",
            fix=req.get_it))
    return ToolStatus(path=path, version=version, finding=None)


def check_docker(*, which: Which, probe: Probe = probe) -> Finding | None:
    """A Docker daemon that answers, not merely the CLI (kind runs its node in it)."""
    path = which("docker")
    if path is None:
        return Finding(what="Docker", problem="the docker CLI is not on PATH",
                       fix="install Docker: https://docs.docker.com/get-docker/")
    done = probe([path, "info", "--format", "{{.ServerVersion}}"])
    if done.returncode != 0 or not done.stdout.strip():
        return Finding(
            what="Docker daemon",
            problem=f"does not answer (`docker info`: "
                    f"{tail_line(done.stderr or done.stdout) or 'no server version'})",
            fix=DOCKER_GET_IT)
    return None


def check_context(*, kubectl: str, context: str | None = None, probe: Probe = probe,
                  timeout_s: int = 10) -> tuple[dict[str, object], Finding | None]:
    """The kubeconfig context answers (``kubectl version``, short request timeout).

    kubectl reads ``KUBECONFIG`` itself (several paths included). Returns kubectl's
    version JSON (clientVersion, serverVersion) for a skew check, or a finding.
    """
    cmd = [kubectl, *(["--context", context] if context else []), "version",
           "--output=json", f"--request-timeout={timeout_s}s"]
    done = probe(cmd, timeout=timeout_s + 5.0)
    which_ctx = f"context {context!r}" if context else "the current kubeconfig context"
    if done.returncode != 0:
        return {}, Finding(
            what="Kubernetes cluster",
            problem=f"{which_ctx} does not answer (`kubectl version`: "
                    f"{tail_line(done.stderr or done.stdout)})",
            fix="check `kubectl config get-contexts` and `kubectl cluster-info`; pick one "
                "with SCALELAB_KUBE_CONTEXT or KUBECONFIG")
    try:
        versions = json.loads(done.stdout)
    except ValueError:
        versions = {}
    return versions if isinstance(versions, dict) else {}, None


def skew_warning(*, client: str, server: str) -> str | None:
    """kubectl more than one minor version away from the server (version-skew policy,
    kubernetes.io/releases/version-skew-policy/#kubectl): a warning, most commands work."""
    c, s = parse_version(client), parse_version(server)
    if c is None or s is None or c[0] != s[0] or abs(c[1] - s[1]) <= 1:
        return None
    return (f"kubectl {show(c)} is more than one minor version away from the cluster's "
            f"{show(s)}; kubectl supports +/-1 (https://kubernetes.io/releases/"
            "version-skew-policy/#kubectl)")


def node_version(node_image: str) -> str | None:
    """``v1.30.6`` of ``kindest/node:v1.30.6@sha256:...``."""
    found = re.search(r":(v\d+\.\d+\.\d+)", node_image)
    return found.group(1) if found else None


def requirements(backend: str, *, install_addons: bool = True,
                 node_image: str = DEFAULT_NODE_IMAGE) -> list[ToolRequirement]:
    """The CLIs a cluster backend runs: kind needs kind, kubectl, helm; existing needs
    kubectl, and helm when it installs the addons."""
    reqs = [kind_requirement(node_image)] if backend == "kind" else []
    reqs.append(KUBECTL)
    if install_addons:
        reqs.append(HELM)
    return reqs


@dataclass(frozen=True, kw_only=True)
class ToolReport:
    """What ``check_cluster_tools`` found: resolved paths, problems, warnings."""

    paths: dict[str, str]
    findings: list[Finding]
    warnings: list[str]


def check_cluster_tools(backend: str, *, install_addons: bool = True,
                        node_image: str = DEFAULT_NODE_IMAGE, context: str | None = None,
                        reach_cluster: bool = False, which: Which, probe: Probe = probe
                        ) -> ToolReport:
    """Everything the ``kind`` or ``existing`` backend needs on this machine, every problem
    at once. ``reach_cluster`` (existing) also asks the context's API server."""
    findings: list[Finding] = []
    warnings: list[str] = []
    paths: dict[str, str] = {}
    versions: dict[str, Version] = {}
    if backend == "kind":
        docker = check_docker(which=which, probe=probe)
        if docker is not None:
            findings.append(docker)
    for req in requirements(backend, install_addons=install_addons, node_image=node_image):
        status = check_tool(req, which=which, probe=probe)
        if status.finding is not None:
            findings.append(status.finding)
        elif status.path is not None and status.version is not None:
            paths[req.name], versions[req.name] = status.path, status.version
    node = node_version(node_image)
    if backend == "kind" and "kubectl" in versions and node:
        warning = skew_warning(client=show(versions["kubectl"]), server=node)
        if warning:
            warnings.append(warning)
    if reach_cluster and "kubectl" in paths:
        answer, finding = check_context(kubectl=paths["kubectl"], context=context, probe=probe)
        if finding is not None:
            findings.append(finding)
        server = answer.get("serverVersion")
        if isinstance(server, dict) and "kubectl" in versions:
            warning = skew_warning(client=show(versions["kubectl"]),
                                   server=str(server.get("gitVersion", "")))
            if warning:
                warnings.append(warning)
    return ToolReport(paths=paths, findings=findings, warnings=warnings)


def raise_for(findings: Sequence[Finding], *, backend: str) -> None:
    """One ``MissingDependencyError`` listing every finding, one line each."""
    if not findings:
        return
    lines = "\n".join(f"  - {f.line()}" for f in findings)
    raise MissingDependencyError(
        f"the {backend} backend cannot start on this machine:\n{lines}",
        fix="install or start what is listed (docs/kind.md, Prerequisites), "
            "or use --backend local")


# -- errors of CLIs that third-party code runs ------------------------------------------------
def _flush_stderr() -> None:
    """Python's buffered stderr goes out before fd 2 is swapped (there may be none)."""
    if sys.stderr is not None:
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.flush()


class _StderrTee:
    """Copy what child processes write to fd 2 through to it, and keep the tail.

    pytest-kind runs kind with stderr inherited (not captured), so kind's own error only
    reaches the terminal: the tee keeps it visible live and gives the error message its
    tail. The tail is complete once the block has exited (the pipe is drained then).
    """

    def __init__(self, *, limit: int = 8000) -> None:
        self._limit = limit
        self._kept = bytearray()
        self._saved = -1
        self._read_end = -1
        self._reader: threading.Thread | None = None

    def tail(self) -> str:
        return self._kept.decode(errors="replace")

    def _pump(self) -> None:
        while chunk := os.read(self._read_end, 4096):
            os.write(self._saved, chunk)
            self._kept.extend(chunk)
            del self._kept[:-self._limit]

    def __enter__(self) -> _StderrTee:
        _flush_stderr()
        try:
            self._saved = os.dup(2)
        except OSError:   # no stderr at all (closed): nothing to tee, nothing to keep
            self._saved = -1
            return self
        self._read_end, write_end = os.pipe()
        self._reader = threading.Thread(target=self._pump, name="stderr-tee", daemon=True)
        self._reader.start()
        os.dup2(write_end, 2)
        os.close(write_end)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved < 0:
            return
        _flush_stderr()
        os.dup2(self._saved, 2)   # the pipe's last write end closes: the reader sees EOF
        assert self._reader is not None
        self._reader.join(timeout=5.0)   # a grandchild holding the pipe must not hang us
        if not self._reader.is_alive():
            os.close(self._read_end)
        os.close(self._saved)


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")


@contextlib.contextmanager
def cli_errors(what: str, *, fix: str | None = None) -> Iterator[None]:
    """Run third-party code that calls CLIs (pytest-kind's ``KindCluster``); its
    ``CalledProcessError`` becomes a ``CommandError`` naming what failed, the command, its
    stderr tail and a fix; a binary that cannot run becomes a ``MissingDependencyError``."""
    tee = _StderrTee()
    try:
        with tee:
            yield
    except subprocess.CalledProcessError as err:
        cmd = err.cmd if isinstance(err.cmd, (list, tuple)) else [err.cmd]
        completed = Completed(args=tuple(str(a) for a in cmd), returncode=err.returncode,
                              stdout=_text(err.output), stderr=_text(err.stderr) or tee.tail())
        raise CommandError(completed, what=what, fix=fix or fix_for(completed)) from err
    except OSError as err:
        name = os.path.basename(str(err.filename or "")) or what
        raise MissingDependencyError(
            f"{what}: cannot run {err.filename or 'the command'}: {err.strerror or err}",
            fix=f"check that {name} is installed and executable (docs/kind.md)") from err
