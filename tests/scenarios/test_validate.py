"""``scalelab validate``: OK per good file, every error listed, exit code 0/1."""

from __future__ import annotations

import subprocess
import sys
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


def _not_text(folder: Path) -> tuple[Path, Path]:
    """A Latin-1 copy of a shipped scenario and a binary file, both named *.yaml."""
    latin1 = folder / "latin1.yaml"
    text = (paths.SCENARIOS / "hpa-cpu.yaml").read_text()
    latin1.write_bytes(text.replace("name: hpa-cpu", "name: café").encode("latin-1"))
    binary = folder / "image.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    return latin1, binary


def test_files_that_are_not_utf8_text_are_listed_not_raised(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    latin1, binary = _not_text(tmp_path)
    (tmp_path / "good.yaml").write_text((paths.SCENARIOS / "hpa-cpu.yaml").read_text())
    assert main(["validate", "--quick", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "1 of 3 scenario files valid" in captured.out
    assert f"{latin1}: not UTF-8 text: byte 0xe9 at line 4, column 10" in captured.err
    assert f"{binary}: a binary file, not YAML text" in captured.err
    assert captured.err.count("fix: ") == 2 and "Traceback" not in captured.err


def test_the_pytest_driver_names_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    """experiments/conftest.py loads scenarios with the same loader: a usage error, no
    traceback (collection only, in a subprocess: nothing is brought up)."""
    for bad in _not_text(tmp_path):
        res = subprocess.run(
            [sys.executable, "-m", "pytest", str(paths.ROOT / "experiments"), "--collect-only",
             "-q", "-p", "no:cacheprovider", "--scenarios", str(bad)],
            cwd=paths.ROOT, capture_output=True, text=True, timeout=120, check=False)
        out = res.stdout + res.stderr
        assert res.returncode == 4, out  # pytest's usage error
        assert f"invalid scenario: {bad}: " in out and "fix:" in out, out
        assert "Traceback" not in out and "UnicodeDecodeError" not in out, out
