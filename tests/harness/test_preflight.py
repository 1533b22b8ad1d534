"""Preflight: missing Debian packages are named with the exact command, before anything starts."""

from __future__ import annotations

import pytest

from scalelab import preflight
from scalelab.errors import MissingDependencyError


def _missing() -> str:
    raise MissingDependencyError("not installed")


def test_nothing_missing_on_this_machine(capsys: pytest.CaptureFixture[str]) -> None:
    # The test suite itself needs both packages, so they are installed wherever it runs.
    assert preflight.missing_packages() == []
    assert preflight.main([]) == 0


def test_not_root_prints_the_exact_apt_get_line(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(preflight.LOCAL_PACKAGES, "prometheus", _missing)
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    ran: list[list[str]] = []
    monkeypatch.setattr(preflight.subprocess, "run", lambda cmd, **kw: ran.append(cmd))
    assert preflight.main(["--install"]) == 1
    err = capsys.readouterr().err
    assert "prometheus" in err
    assert ("sudo apt-get update -q && sudo apt-get install -y -q --no-install-recommends "
            "prometheus") in err
    assert ran == []  # never tries to install without root


def test_root_installs_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    state = {"installed": False}

    def probe() -> str:
        if not state["installed"]:
            raise MissingDependencyError("not installed")
        return "/usr/sbin/rabbitmq-server"

    ran: list[list[str]] = []

    def fake_run(cmd: list[str], **_: object) -> None:
        ran.append(cmd)
        if cmd[:2] == ["apt-get", "install"]:
            state["installed"] = True

    # apt-get itself is the seam: the test must not install packages on the machine.
    monkeypatch.setitem(preflight.LOCAL_PACKAGES, "rabbitmq-server", probe)
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    monkeypatch.setattr(preflight.subprocess, "run", fake_run)
    assert preflight.main(["--install"]) == 0
    assert ran == [["apt-get", "update", "-q"],
                   ["apt-get", "install", "-y", "-q", "--no-install-recommends",
                    "rabbitmq-server"]]
