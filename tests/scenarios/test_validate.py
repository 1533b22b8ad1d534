"""``scalelab validate``: OK per good file, every error listed, exit code 0/1."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalelab import paths
from scalelab.cli import main


def test_default_folder_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    shipped = sorted(paths.SCENARIOS.glob("*.yaml"))
    assert out.count("OK ") == len(shipped) >= 4
    assert f"{len(shipped)} of {len(shipped)} scenario files valid" in out


def test_all_errors_are_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = (paths.SCENARIOS / "hpa-cpu.yaml").read_text()
    (tmp_path / "good.yaml").write_text(good)
    (tmp_path / "target.yaml").write_text(
        good.replace("name: hpa-cpu", "name: other").replace("reaches: 4, within: 75",
                                                             "reaches: 9, within: 75"))
    (tmp_path / "syntax.yaml").write_text("name: x\n  bad: [\n")
    (tmp_path / "dup.yaml").write_text(good)
    assert main(["validate", "--quick", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "OK    " in captured.out and "1 of 4 scenario files valid" in captured.out
    err = captured.err
    assert f"{tmp_path / 'target.yaml'}: field 'expectations[1].reaches'" in err
    assert f"{tmp_path / 'syntax.yaml'}: bad YAML at line 2" in err
    assert "duplicate scenario name 'hpa-cpu'" in err
    assert err.count("fix: ") == 3


def test_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    assert "no such file" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["validate", str(empty)]) == 1
