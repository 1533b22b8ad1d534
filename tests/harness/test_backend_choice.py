"""Backend selection: auto falls back to local loudly; bad names fail with the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scalelab import backends
from scalelab.errors import ConfigError
from scalelab.settings import StackSettings


def test_auto_without_docker_is_local_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "docker_answers", lambda **_: False)
    choice = backends.choose_backend("auto")
    assert choice.name == "local"
    assert "no Docker daemon" in choice.reason


def test_auto_with_docker_and_kind_is_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "docker_answers", lambda **_: True)
    monkeypatch.setattr(backends.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert backends.choose_backend("auto").name == "kind"


def test_docker_cli_without_daemon_does_not_count(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    # A docker CLI that is installed but finds no engine (`docker info` exits 1), as on
    # machines with the client package only.
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert backends.shutil.which("docker") == str(fake)
    assert backends.docker_answers(timeout=10) is False


def test_unknown_backend_names_the_option_and_the_choices() -> None:
    with pytest.raises(ConfigError) as info:
        backends.choose_backend("minikube")
    assert "--backend" in str(info.value) and "local" in str(info.value)


def test_explicit_local_makes_a_local_backend() -> None:
    backend = backends.make_backend("local", settings=StackSettings())
    assert backend.name == "local"
