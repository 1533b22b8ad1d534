"""The cluster CLIs' version checks, the pins, and errors of CLIs as one clear message.

Contract tests, not a cluster: no Docker daemon, kind or helm runs here. FAKE AT THE
CLUSTER SEAM: the CLIs are small shell scripts printing what the real ones print (their
version lines, their error messages, quoted in each test) and exiting as they do; they run
as real processes through the real probe, ``kube.run`` and pytest-kind's ``KindCluster``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_kind.cluster
import yaml
from pytest_kind import KindCluster

from scalelab.backends.cluster import kube, tools
from scalelab.backends.cluster.kind import KindBackend
from scalelab.backends.cluster.render import render_kind_config
from scalelab.backends.cluster.settings import (
    DEFAULT_NODE_IMAGE,
    KIND_VERSION,
    KIND_VERSIONS,
    ClusterSettings,
)
from scalelab.errors import MissingDependencyError
from scalelab.settings import StackSettings, TimingProfile

DATA = Path(__file__).parent / "data"
DOCKER_DOWN = ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
               "Is the docker daemon running?")


def tool(bin_dir: Path, name: str, body: str) -> Path:
    """A fake CLI: a POSIX shell script (the cluster seam), logging its arguments."""
    path = bin_dir / name
    path.write_text(f'#!/bin/sh\necho "$0 $*" >> "{bin_dir}/calls.log"\n{body}\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def which_in(bin_dir: Path):  # type: ignore[no-untyped-def]
    return lambda name: shutil.which(name, path=str(bin_dir))


@pytest.fixture
def good_tools(tmp_path: Path) -> Path:
    """docker (daemon up), kind v0.25.0, kubectl 1.30, helm 3.16, as the real ones answer."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool(bin_dir, "docker", 'case "$1" in info) echo 27.3.1;; *) exit 0;; esac')
    tool(bin_dir, "kind", 'case "$1" in version) echo "kind v0.25.0 go1.22.9 linux/amd64";;'
                          ' get) exit 0;; *) exit 0;; esac')
    tool(bin_dir, "kubectl", 'echo "Client Version: v1.30.6"; echo "Kustomize Version: v5.0.4"')
    tool(bin_dir, "helm", 'echo "v3.16.2+g13654a5"')
    return bin_dir


# -- versions and pins ------------------------------------------------------------------------
@pytest.mark.parametrize(("output", "version"), [
    ("kind v0.25.0 go1.22.9 linux/amd64", (0, 25, 0)),
    ("kind version 0.9.0", (0, 9, 0)),
    ("v3.16.2+g13654a5", (3, 16, 2)),
    ("Client Version: v1.32.4-dispatcher\nKustomize Version: v5.5.0", (1, 32, 4)),
    ("Client Version: version.Info{Major:\"1\", Minor:\"25\", GitVersion:\"v1.25.3\"}",
     (1, 25, 3)),
    ("command not found", None),
])
def test_parse_version_reads_what_each_cli_prints(output: str, version: object) -> None:
    assert tools.parse_version(output) == version


def test_the_node_image_is_a_digest_kinds_pinned_release_published() -> None:
    published = yaml.safe_load((DATA / "kind-release-images.yaml").read_text())
    assert DEFAULT_NODE_IMAGE in published[KIND_VERSION], \
        "the node image must be one the pinned kind release lists, digest included"
    assert re.fullmatch(r"kindest/node:v1\.\d+\.\d+@sha256:[0-9a-f]{64}", DEFAULT_NODE_IMAGE)
    kind_version = tools.parse_version(KIND_VERSION)
    assert kind_version is not None and KIND_VERSIONS[0] <= kind_version < KIND_VERSIONS[1]
    node = tools.parse_version(DEFAULT_NODE_IMAGE)
    assert node is not None and (1, 29) <= node[:2] <= (1, 31), "KEDA 2.16: Kubernetes 1.29-1.31"
    # kubeadm v1beta3 (a string map of extraArgs, kind-config.yaml.j2) ends with 1.30
    assert node[:2] <= (1, 30)
    assert ClusterSettings().node_image == DEFAULT_NODE_IMAGE
    rendered = yaml.safe_load(render_kind_config(
        timing=TimingProfile(), cluster_name="scalelab", node_image=DEFAULT_NODE_IMAGE))
    assert [n["image"] for n in rendered["nodes"]] == [DEFAULT_NODE_IMAGE]


@pytest.mark.parametrize(("version", "ok"), [
    ((0, 17, 0), False), ((0, 24, 0), False), ((0, 25, 0), True), ((0, 25, 9), True),
    ((0, 26, 0), False), ((1, 0, 0), False)])
def test_kind_must_be_the_release_the_node_image_was_built_for(
        version: tools.Version, ok: bool) -> None:
    assert tools.kind_requirement().accepts(version) is ok


def test_another_node_image_keeps_only_kinds_lower_bound() -> None:
    other = tools.kind_requirement("kindest/node:v1.33.1@sha256:" + "0" * 64)
    assert other.accepts((0, 29, 0)) and not other.accepts((0, 24, 0))
    assert other.allowed() == ">= v0.25.0"


@pytest.mark.parametrize(("version", "ok"), [
    ((3, 7, 3), False), ((3, 8, 0), True), ((3, 16, 2), True), ((4, 0, 0), False)])
def test_helm_must_be_major_version_3(version: tools.Version, ok: bool) -> None:
    assert tools.HELM.accepts(version) is ok


# -- probes against real executables ---------------------------------------------------------
def test_check_tool_names_what_is_wrong_and_how_to_get_it(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    which = which_in(bin_dir)
    missing = tools.check_tool(tools.kind_requirement(), which=which)
    assert missing.path is None and missing.finding is not None
    assert missing.finding.line().startswith("kind: not found on PATH; fix: install kind v0.25.0")
    assert "https://kind.sigs.k8s.io/docs/user/quick-start/#installation" in \
        missing.finding.line()

    tool(bin_dir, "kind", 'echo "kind v0.17.0 go1.19.2 linux/amd64"')
    old = tools.check_tool(tools.kind_requirement(), which=which)
    assert old.finding is not None and old.version == (0, 17, 0)
    assert f"{bin_dir / 'kind'} is v0.17.0, scalelab needs >= v0.25.0, < v0.26.0" in \
        old.finding.problem

    tool(bin_dir, "kind", 'echo "kind v0.25.0 go1.22.9 linux/amd64"')
    good = tools.check_tool(tools.kind_requirement(), which=which)
    assert good == tools.ToolStatus(path=str(bin_dir / "kind"), version=(0, 25, 0),
                                    finding=None)

    tool(bin_dir, "helm", 'echo "Error: unknown flag: --short" >&2; exit 1')
    crash = tools.check_tool(tools.HELM, which=which)
    assert crash.finding is not None
    assert crash.finding.problem == \
        "`helm version --short` failed (exit 1): Error: unknown flag: --short"

    tool(bin_dir, "helm", "echo garbage")
    unreadable = tools.check_tool(tools.HELM, which=which)
    assert unreadable.finding is not None and "cannot read a version" in unreadable.finding.problem


def test_the_probe_never_raises(tmp_path: Path) -> None:
    gone = tools.probe([str(tmp_path / "nope"), "version"])
    assert gone.returncode == 127 and "nope" in gone.stderr
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    slow = tool(bin_dir, "docker", "sleep 5")
    hung = tools.probe([str(slow), "info"], timeout=0.3)
    assert hung.returncode == 124 and hung.stderr == "no answer within 0.3s"


def test_docker_must_answer_not_merely_exist(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    which = which_in(bin_dir)
    absent = tools.check_docker(which=which)
    assert absent is not None and "https://docs.docker.com/get-docker/" in absent.fix
    # what `docker info` prints when the CLI is installed and the daemon is stopped
    tool(bin_dir, "docker", f'echo "{DOCKER_DOWN}" >&2; exit 1')
    down = tools.check_docker(which=which)
    assert down is not None
    assert down.line().startswith(f"Docker daemon: does not answer (`docker info`: {DOCKER_DOWN})")
    assert "sudo systemctl start docker" in down.fix and "Docker Desktop" in down.fix
    tool(bin_dir, "docker", "echo 27.3.1")
    assert tools.check_docker(which=which) is None


def test_kind_lists_every_problem_at_once(good_tools: Path) -> None:
    tool(good_tools, "docker", f'echo "{DOCKER_DOWN}" >&2; exit 1')
    tool(good_tools, "kind", 'echo "kind v0.24.0 go1.22.6 linux/amd64"')
    (good_tools / "helm").unlink()
    report = tools.check_cluster_tools("kind", which=which_in(good_tools))
    assert [f.what for f in report.findings] == ["Docker daemon", "kind", "helm"]
    assert report.paths == {"kubectl": str(good_tools / "kubectl")}
    with pytest.raises(MissingDependencyError) as err:
        tools.raise_for(report.findings, backend="kind")
    lines = str(err.value).splitlines()
    assert lines[0] == "the kind backend cannot start on this machine:"
    assert [line.split(":")[0] for line in lines[1:4]] == [
        "  - Docker daemon", "  - kind", "  - helm"]
    assert "https://helm.sh/docs/intro/install/" in lines[3]


def test_kind_all_present_and_a_skewed_kubectl_is_a_warning(good_tools: Path) -> None:
    report = tools.check_cluster_tools("kind", which=which_in(good_tools))
    assert report.findings == [] and report.warnings == []
    assert set(report.paths) == {"kind", "kubectl", "helm"}
    tool(good_tools, "kubectl", 'echo "Client Version: v1.32.4"')
    skewed = tools.check_cluster_tools("kind", which=which_in(good_tools))
    assert skewed.findings == []
    assert skewed.warnings == [
        "kubectl v1.32.4 is more than one minor version away from the cluster's v1.30.6; "
        "kubectl supports +/-1 (https://kubernetes.io/releases/version-skew-policy/#kubectl)"]
    # without the addons, helm is not needed (existing backend, SCALELAB_INSTALL_ADDONS=0)
    (good_tools / "helm").unlink()
    assert tools.check_cluster_tools("existing", install_addons=False,
                                     which=which_in(good_tools)).findings == []


def test_existing_asks_the_context_with_a_short_timeout(good_tools: Path) -> None:
    # what kubectl prints without a kubeconfig
    refused = ("The connection to the server localhost:8080 was refused - did you specify "
               "the right host or port?")
    tool(good_tools, "kubectl", f'''case "$*" in
  *"version --client"*) echo "Client Version: v1.30.6";;
  *) echo "{refused}" >&2; exit 1;;
esac''')
    report = tools.check_cluster_tools("existing", context="lab", reach_cluster=True,
                                       which=which_in(good_tools))
    assert [f.what for f in report.findings] == ["Kubernetes cluster"]
    assert report.findings[0].problem == (
        f"context 'lab' does not answer (`kubectl version`: {refused})")
    calls = (good_tools / "calls.log").read_text().splitlines()
    assert f"{good_tools / 'kubectl'} --context lab version --output=json " \
           "--request-timeout=10s" in calls
    answer = {"clientVersion": {"gitVersion": "v1.30.6"},
              "serverVersion": {"gitVersion": "v1.27.16"}}
    tool(good_tools, "kubectl", f'''case "$*" in
  *"version --client"*) echo "Client Version: v1.30.6";;
  *) echo '{json.dumps(answer)}';;
esac''')
    ok = tools.check_cluster_tools("existing", reach_cluster=True, which=which_in(good_tools))
    assert ok.findings == []
    assert ok.warnings and "cluster's v1.27.16" in ok.warnings[0]


# -- errors of the CLIs -----------------------------------------------------------------------
@pytest.mark.parametrize(("prog", "stderr", "fix"), [
    ("kind", "ERROR: failed to list clusters: command \"docker ps -a --filter "
             "label=io.x-k8s.kind.cluster --format '{{.Label \"io.x-k8s.kind.cluster\"}}'\" "
             f"failed with error: exit status 1\nCommand Output: {DOCKER_DOWN}",
     "sudo systemctl start docker"),
    ("kubectl", "error: current-context is not set", "kubectl config use-context"),
    ("kubectl", "Unable to connect to the server: dial tcp 127.0.0.1:6443: connect: "
                "connection refused", "kubectl cluster-info"),
    ("helm", "Error: INSTALLATION FAILED: context deadline exceeded", "SCALELAB_HELM_TIMEOUT"),
    ("helm", "Error: looks like \"https://kedacore.github.io/charts\" is not a valid chart "
             "repository", "chart repository is reachable"),
    ("kind", "ERROR: failed to create cluster: node(s) already exist", "kind export logs"),
])
def test_a_failed_cli_says_how_to_fix_it(prog: str, stderr: str, fix: str) -> None:
    err = kube.CommandError(kube.Completed(args=(f"/usr/bin/{prog}", "x"), returncode=1,
                                           stdout="", stderr=stderr))
    assert fix in (err.fix or "")
    assert stderr.splitlines()[-1] in str(err)


def test_kube_run_of_a_failing_helm_is_one_message(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helm = tool(bin_dir, "helm",
                'echo "Release \\"keda\\" does not exist. Installing it now.";'
                ' echo "Error: INSTALLATION FAILED: context deadline exceeded" >&2; exit 1')
    with pytest.raises(kube.CommandError) as err:
        kube.run([str(helm), "upgrade", "--install", "keda"], timeout=30)
    text = str(err.value)
    assert text.startswith(f"`{helm} upgrade --install keda` exited with 1:\n"
                           "Error: INSTALLATION FAILED: context deadline exceeded\n  fix: ")
    assert "SCALELAB_HELM_TIMEOUT" in text


def test_cli_errors_gives_pytest_kinds_uncaptured_stderr_a_tail(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """pytest-kind runs kind with stderr inherited: the message still carries its tail, and
    the output still reaches the terminal as it is written."""
    script = ("echo 'Creating cluster \"scalelab\" ...' >&2; "
              "echo 'ERROR: failed to create cluster: no space left on device' >&2; exit 1")
    creating = "creating the kind cluster 'scalelab'"
    with pytest.raises(kube.CommandError) as err, tools.cli_errors(creating):
        subprocess.run(["sh", "-c", script], check=True)
    text = str(err.value)
    assert text.startswith("creating the kind cluster 'scalelab' failed: `sh -c ")
    assert "exited with 1:\n" in text
    assert "ERROR: failed to create cluster: no space left on device" in text
    assert "fix: " in text
    assert "Creating cluster" in capfd.readouterr().err
    # the same for check_output (what `kind get clusters` goes through), and stdout is kept
    with pytest.raises(kube.CommandError) as err2, tools.cli_errors("listing kind clusters"):
        subprocess.check_output(["sh", "-c", "echo partial; echo boom >&2; exit 2"],
                                encoding="utf-8")
    assert err2.value.completed.stdout == "partial\n"
    assert err2.value.completed.stderr.strip() == "boom"
    # a binary that cannot run
    with pytest.raises(MissingDependencyError, match="cannot run"), tools.cli_errors(creating):
        subprocess.run([str(tmp_path / "kind"), "create"], check=True)
    # stderr is back where it was
    print("after", file=sys.stderr, flush=True)
    os.write(2, b"fd2 after\n")
    err_out = capfd.readouterr().err
    assert "after" in err_out and "fd2 after" in err_out


def test_cli_errors_without_a_stderr_still_raises_the_command_error() -> None:
    code = ("import subprocess, sys\n"
            "from scalelab.backends.cluster import kube, tools\n"
            "try:\n"
            "    with tools.cli_errors('x'):\n"
            "        subprocess.run(['sh', '-c', 'exit 3'], check=True)\n"
            "except kube.CommandError as err:\n"
            "    print(err.completed.returncode)\n")
    done = subprocess.run(f"{shlex.quote(sys.executable)} -c {shlex.quote(code)} 2>&-",
                          shell=True, capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip() == "3"


def test_pytest_kinds_kind_cluster_with_docker_down_is_one_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real ``KindCluster.create`` against a kind that fails as kind v0.25 does when the
    Docker daemon is stopped: a CommandError with kind's message and Docker's fix."""
    def no_download(*args: object, **kwargs: object) -> object:
        raise AssertionError("pytest-kind tried to download")

    monkeypatch.setattr(pytest_kind.cluster.requests, "get", no_download)
    monkeypatch.chdir(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kind = tool(bin_dir, "kind",
                "echo 'ERROR: failed to list clusters: command \"docker ps -a\" failed with "
                f"error: exit status 1' >&2; echo 'Command Output: {DOCKER_DOWN}' >&2; exit 1")
    kubectl = tool(bin_dir, "kubectl", "exit 0")
    cluster = KindCluster(name="scalelab", kubeconfig=tmp_path / "kubeconfig",
                          kind_path=kind, kubectl_path=kubectl)
    creating = "creating the kind cluster 'scalelab'"
    with pytest.raises(kube.CommandError) as err, tools.cli_errors(creating):
        cluster.create()
    text = str(err.value)
    assert f"`{kind} get clusters` exited with 1" in text
    assert DOCKER_DOWN in text
    assert err.value.fix is not None and "start the Docker daemon" in err.value.fix
    assert (bin_dir / "calls.log").read_text().splitlines() == [f"{kind} get clusters"]


def test_scalelab_up_with_a_failing_kind_is_one_message_and_no_traceback(
        good_tools: Path, tmp_path: Path) -> None:
    """``scalelab up --backend kind`` end to end (real CLI, real subprocesses), with Docker
    answering but ``kind get clusters`` failing: one message, exit 2, nothing created."""
    tool(good_tools, "kind", f'''case "$1" in
  version) echo "kind v0.25.0 go1.22.9 linux/amd64";;
  *) echo "ERROR: failed to list clusters: exit status 1" >&2;
     echo "Command Output: {DOCKER_DOWN}" >&2; exit 1;;
esac''')
    env = {**os.environ, "PATH": f"{good_tools}{os.pathsep}{os.environ['PATH']}",
           "SCALELAB_CLUSTER_WORKDIR": str(tmp_path / "work")}
    env.pop("KUBECONFIG", None)
    scalelab = Path(sys.executable).parent / "scalelab"
    done = subprocess.run([str(scalelab), "up", "--backend", "kind"], capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "scalelab up: error: " in done.stderr
    assert f"`{good_tools / 'kind'} get clusters` exited with 1" in done.stderr
    assert DOCKER_DOWN in done.stderr
    assert "fix: start the Docker daemon" in done.stderr
    calls = (good_tools / "calls.log").read_text()
    assert "create cluster" not in calls and " build " not in calls


def test_a_kind_backend_never_lets_pytest_kind_pick_binaries(
        good_tools: Path, tmp_path: Path) -> None:
    given: dict[str, object] = {}

    class Stop(Exception):
        pass

    def factory(**kwargs: object) -> object:
        given.update(kwargs)
        raise Stop

    b = KindBackend(settings=StackSettings(), cluster=ClusterSettings(work_dir=tmp_path / "w"),
                    which=which_in(good_tools), cluster_factory=factory,
                    run=lambda cmd, **kw: kube.Completed(args=tuple(cmd), returncode=0,
                                                         stdout="", stderr=""))
    b.check_inputs()
    with pytest.raises(Stop):
        b._provision()
    assert given["kind_path"] == good_tools / "kind"
    assert given["kubectl_path"] == good_tools / "kubectl"



def test_a_helm_release_left_pending_by_a_cut_off_run_names_the_rollback() -> None:
    """helm 3's answer to an upgrade of a release stuck in pending-install/-upgrade."""
    err = kube.CommandError(kube.Completed(
        args=("/usr/bin/helm", "upgrade", "--install", "keda", "keda", "--repo", "r",
              "--namespace", "keda", "--wait"), returncode=1, stdout="",
        stderr="Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in "
               "progress"))
    assert "`helm rollback keda -n keda`" in (err.fix or "")
    assert "helm history keda -n keda" in (err.fix or "")
