"""Preflight: what the chosen backend needs is checked before anything starts; every missing
thing is one line naming how to get it; no traceback.

The local checks run against this machine's real packages (apt-get itself is faked: the
tests must not install packages). The kind checks run for real here, where a docker CLI
may exist but no Docker daemon answers and kind and helm are not installed; the
"everything present" cases put fake CLIs first on PATH (FAKE AT THE CLUSTER SEAM: shell
scripts printing the real tools' version lines; contract tests, not a cluster).
"""

from __future__ import annotations

import configparser
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from scalelab import paths, preflight
from scalelab.backends import docker_answers
from scalelab.errors import MissingDependencyError

PYTHON = sys.executable
SCALELAB = str(Path(sys.executable).parent / "scalelab")


def _missing() -> str:
    raise MissingDependencyError("not installed")


def _tool(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def cluster_tools(tmp_path: Path) -> Path:
    """FAKE AT THE CLUSTER SEAM: docker (daemon up), kind v0.25.0, kubectl 1.30, helm 3."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _tool(bin_dir, "docker", "echo 27.3.1")
    _tool(bin_dir, "kind", 'echo "kind v0.25.0 go1.22.9 linux/amd64"')
    _tool(bin_dir, "kubectl", 'echo "Client Version: v1.30.6"')
    _tool(bin_dir, "helm", 'echo "v3.16.2+g13654a5"')
    return bin_dir


def _run(args: list[str], *, cwd: Path = paths.ROOT, path_first: Path | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env['PATH']}"
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout, check=False)


needs_no_docker = pytest.mark.skipif(
    docker_answers(), reason="a Docker daemon answers on this machine: the no-Docker path "
                             "cannot be exercised here")


# -- local -----------------------------------------------------------------------------------
def test_local_nothing_missing_on_this_machine() -> None:
    # The test suite itself needs both packages, so they are installed wherever it runs.
    assert preflight.missing_packages() == []
    assert preflight.main(["--backend", "local"]) == 0


def test_local_not_root_prints_the_exact_apt_get_line(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(preflight.LOCAL_PACKAGES, "prometheus", _missing)
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    ran: list[list[str]] = []
    monkeypatch.setattr(preflight.subprocess, "run", lambda cmd, **kw: ran.append(cmd))
    assert preflight.main(["--install", "--backend", "local"]) == 1
    err = capsys.readouterr().err
    assert "prometheus" in err
    assert ("sudo apt-get update -q && sudo apt-get install -y -q --no-install-recommends "
            "prometheus") in err
    assert ran == []  # never tries to install without root


def test_local_root_installs_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    state = {"installed": False}

    def probe() -> str:
        if not state["installed"]:
            raise MissingDependencyError("not installed")
        return "/usr/sbin/rabbitmq-server"

    ran: list[list[str]] = []

    def fake_run(cmd: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        ran.append(cmd)
        if cmd[:2] == ["apt-get", "install"]:
            state["installed"] = True
        return subprocess.CompletedProcess(cmd, 0)

    # apt-get itself is the seam: the test must not install packages on the machine.
    monkeypatch.setitem(preflight.LOCAL_PACKAGES, "rabbitmq-server", probe)
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    monkeypatch.setattr(preflight.subprocess, "run", fake_run)
    assert preflight.main(["--install", "--backend", "local"]) == 0
    assert ran == [["apt-get", "update", "-q"],
                   ["apt-get", "install", "-y", "-q", "--no-install-recommends",
                    "rabbitmq-server"]]


def test_local_root_a_failing_apt_get_is_a_message_not_a_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(preflight.LOCAL_PACKAGES, "prometheus", _missing)
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    monkeypatch.setattr(preflight.subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 100))
    assert preflight.main(["--install", "--backend", "local"]) == 1
    assert "`apt-get update -q` failed (exit 100)" in capsys.readouterr().err


# -- which backend: the arguments tox forwards, the ini default ----------------------------
@pytest.mark.parametrize(("argv", "expected"), [
    (["--backend", "kind"], ("kind", "--backend kind")),
    (["-x", "--backend=existing", "-k", "keda", "experiments/scenarios"],
     ("existing", "--backend existing")),
    (["-o", "scalelab_backend=kind", "-q"], ("kind", "-o scalelab_backend=kind")),
    (["--override-ini=scalelab_backend=local"], ("local", "-o scalelab_backend=local")),
    (["--backend", "local", "-o", "scalelab_backend=kind"], ("local", "--backend local")),
    (["-k", "keda", "--report-dir", "out", "--keep-stack"], ("auto", "default auto")),
])
def test_the_backend_comes_from_the_pytest_arguments(
        tmp_path: Path, argv: list[str], expected: tuple[str, str]) -> None:
    args, _ = preflight._parser().parse_known_args(argv)
    assert preflight.requested_backend(args, cwd=tmp_path) == expected


@pytest.mark.parametrize(("name", "text"), [
    ("pytest.ini", "[pytest]\nscalelab_backend = kind\n"),
    ("pyproject.toml", "[tool.pytest.ini_options]\nscalelab_backend = \"kind\"\n"),
    ("pyproject.toml", "[tool.pytest]\nscalelab_backend = \"kind\"\n"),
    ("tox.ini", "[tox]\nenv_list = py\n[pytest]\nscalelab_backend = kind\n"),
    ("setup.cfg", "[tool:pytest]\nscalelab_backend = kind\n"),
    ("pytest.toml", "[pytest]\nscalelab_backend = \"kind\"\n"),
])
def test_the_ini_default_is_read_as_pytest_reads_it(tmp_path: Path, name: str,
                                                     text: str) -> None:
    (tmp_path / name).write_text(text)
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    args, _ = preflight._parser().parse_known_args(["-q"])
    assert preflight.requested_backend(args, cwd=sub) == ("kind", "ini scalelab_backend = kind")
    # the command line wins over the ini value
    args, _ = preflight._parser().parse_known_args(["--backend", "local"])
    assert preflight.requested_backend(args, cwd=sub)[0] == "local"


def test_the_first_config_pytest_would_use_wins(tmp_path: Path) -> None:
    # pytest.ini counts even without the key (pytest stops looking there); a pyproject.toml
    # without pytest settings does not.
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -q\n")
    (tmp_path / "tox.ini").write_text("[pytest]\nscalelab_backend = kind\n")
    assert preflight.ini_backend(tmp_path) is None
    (tmp_path / "pytest.ini").unlink()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert preflight.ini_backend(tmp_path) == "kind"
    cfg = tmp_path / "other.ini"
    cfg.write_text("[pytest]\nscalelab_backend = existing\n")
    assert preflight.ini_backend(tmp_path, config_file=cfg) == "existing"


def test_this_repositorys_ini_leaves_the_default_to_auto() -> None:
    args, _ = preflight._parser().parse_known_args([])
    assert preflight.requested_backend(args, cwd=paths.ROOT) == ("auto", "default auto")


def test_tox_forwards_the_pytest_arguments_to_preflight() -> None:
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(paths.ROOT / "tox.ini")
    pre = tox["testenv:scaling"]["commands_pre"].strip()
    assert pre == "python -m scalelab.preflight --install {posargs}"
    assert tox["testenv:scaling"]["commands"].strip() == "pytest experiments {posargs}"


# -- kind, for real on this machine ------------------------------------------------------------
@needs_no_docker
def test_preflight_kind_without_docker_names_what_is_missing() -> None:
    done = _run([PYTHON, "-m", "scalelab.preflight", "--install", "--backend", "kind", "-x",
                 "-k", "keda"])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    err = done.stderr.splitlines()
    assert err[0] == ("scalelab preflight: kind backend (--backend kind): the kind backend "
                      "cannot start on this machine:")
    docker = [line for line in err if line.startswith("  - Docker")]
    assert len(docker) == 1
    assert "https://docs.docker.com/" in docker[0]
    if shutil.which("kind") is None:
        assert any(line.startswith("  - kind: not found on PATH; fix: install kind v0.25.0")
                   for line in err)
    if shutil.which("helm") is None:
        assert any(line.startswith("  - helm: not found on PATH; fix: install helm 3")
                   for line in err)
    assert "apt-get" not in done.stderr


def test_preflight_kind_with_everything_present_is_ready(cluster_tools: Path) -> None:
    done = _run([PYTHON, "-m", "scalelab.preflight", "--install", "--backend=kind"],
                path_first=cluster_tools)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("scalelab preflight: kind backend (--backend kind): ready;")
    assert f"kind {cluster_tools / 'kind'}" in done.stdout


def test_preflight_kind_with_an_old_kind_is_refused(cluster_tools: Path) -> None:
    _tool(cluster_tools, "kind", 'echo "kind v0.17.0 go1.19.2 linux/amd64"')
    done = _run([PYTHON, "-m", "scalelab.preflight", "--backend", "kind"],
                path_first=cluster_tools)
    assert done.returncode == 1
    assert (f"  - kind: {cluster_tools / 'kind'} is v0.17.0, scalelab needs >= v0.25.0, "
            "< v0.26.0; fix: install kind v0.25.0") in done.stderr


def test_preflight_existing_without_a_cluster_names_the_context(
        cluster_tools: Path, tmp_path: Path) -> None:
    # what kubectl prints when no kubeconfig names a server
    _tool(cluster_tools, "kubectl", '''case "$*" in
  *"--client"*) echo "Client Version: v1.30.6";;
  *) echo "The connection to the server localhost:8080 was refused - did you specify the \
right host or port?" >&2; exit 1;;
esac''')
    done = _run([PYTHON, "-m", "scalelab.preflight", "--backend", "existing"],
                path_first=cluster_tools)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert ("  - Kubernetes cluster: the current kubeconfig context does not answer "
            "(`kubectl version`: The connection to the server localhost:8080 was refused")\
        in done.stderr


def test_preflight_bad_backend_is_a_usage_message() -> None:
    done = _run([PYTHON, "-m", "scalelab.preflight", "--backend", "kindd"])
    assert done.returncode == 2
    assert done.stderr.startswith("scalelab preflight: error: field '--backend': unknown "
                                  "backend 'kindd'")
    assert "Traceback" not in done.stderr


@needs_no_docker
def test_scalelab_up_kind_without_docker_stops_before_anything_starts(tmp_path: Path) -> None:
    env_dir = tmp_path / "work"
    done = subprocess.run([SCALELAB, "up", "--backend", "kind"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, check=False,
                          env={**os.environ, "SCALELAB_CLUSTER_WORKDIR": str(env_dir)})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "scalelab up: error: the kind backend cannot start on this machine:" in done.stderr
    assert any(line.startswith("  - Docker") and "https://docs.docker.com/" in line
               for line in done.stderr.splitlines())
    assert not env_dir.exists(), "nothing rendered, nothing started"
    assert not (tmp_path / ".pytest-kind").exists()


@needs_no_docker
def test_pytest_experiments_kind_without_docker_stops_before_anything_starts(
        tmp_path: Path) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "pytest", "experiments", "--backend", "kind", "-p", "no:cacheprovider",
         "--report-dir", str(tmp_path / "reports")],
        capture_output=True, text=True, timeout=300, cwd=paths.ROOT, check=False,
        env={**os.environ, "SCALELAB_CLUSTER_WORKDIR": str(tmp_path / "work")})
    out = done.stdout + done.stderr
    assert done.returncode == 4, out   # pytest's usage error: nothing ran
    assert "Traceback" not in out and "\nE  " not in out
    assert "the kind backend cannot start on this machine:" in out
    assert any(line.startswith("  - Docker") and "https://docs.docker.com/" in line
               for line in out.splitlines())
    assert not (tmp_path / "work").exists()
