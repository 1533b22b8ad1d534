"""The pytest driver (experiments/conftest.py) at collection: real pytest, in a subprocess.

Only collection runs here (nothing is brought up); the scenarios themselves run in
``tox -e scaling`` and, shortened, in tests/experiment.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from scalelab.paths import ROOT, SCENARIOS


def _collect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "experiments"), "--collect-only", "-q",
         "-p", "no:cacheprovider", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def _ids(out: str) -> list[str]:
    return sorted(line.split("[", 1)[1].rstrip("]") for line in out.splitlines()
                  if line.startswith("experiments/test_scaling.py::test_scaling["))


def test_every_shipped_scenario_is_a_test_and_k_selects_by_tag() -> None:
    shipped = sorted(yaml.safe_load(p.read_text())["name"] for p in SCENARIOS.glob("*.yaml"))
    every = _collect()
    assert every.returncode == 0, every.stdout + every.stderr
    assert _ids(every.stdout) == shipped
    keda = _collect("-k", "keda")
    tagged = sorted(yaml.safe_load(p.read_text())["name"] for p in SCENARIOS.glob("*.yaml")
                    if "keda" in yaml.safe_load(p.read_text()).get("tags", []))
    assert _ids(keda.stdout) == tagged and 0 < len(tagged) < len(shipped)


def test_a_bad_scenario_stops_the_session_before_anything_starts(tmp_path: Path) -> None:
    doc = yaml.safe_load((SCENARIOS / "hpa-cpu.yaml").read_text())
    doc["phases"][1]["duration"] = -5
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    for args in (["--scenarios", str(bad)], ["-o", f"scalelab_scenarios={bad}"]):
        res = _collect(*args)
        out = res.stdout + res.stderr
        assert res.returncode == 4, out        # pytest's usage error
        assert str(bad) in out and "phases[1].duration" in out and "fix:" in out, out
        assert "Traceback" not in out and "pluggy" not in out, out


def test_user_scenarios_replace_the_shipped_ones(tmp_path: Path) -> None:
    doc = yaml.safe_load((SCENARIOS / "keda-queue.yaml").read_text())
    doc["name"] = "my-queue"
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(doc))
    res = _collect("--scenarios", str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert _ids(res.stdout) == ["my-queue"]


def _tuned_pair(tmp_path: Path) -> Path:
    """Two scenarios in a folder: 'a-tuned' (first by name) calibrates its twin on
    'z-base'."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    base = yaml.safe_load((SCENARIOS / "keda-queue.yaml").read_text())
    base["name"] = "z-base"
    tuned = yaml.safe_load((SCENARIOS / "keda-queue-tuned.yaml").read_text())
    tuned["name"] = "a-tuned"
    tuned["twin"] = {"calibrate_on": ["z-base"]}
    for doc in (base, tuned):
        doc["manifests"] = [str(ROOT / m) for m in doc["manifests"]]
        (folder / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc))
    return folder


def test_a_twin_scenario_runs_after_the_scenarios_it_calibrates_on(tmp_path: Path) -> None:
    folder = _tuned_pair(tmp_path)
    res = _collect("--scenarios", str(folder), "--report-dir", str(tmp_path / "reports"))
    assert res.returncode == 0, res.stdout + res.stderr
    order = [line.split("[", 1)[1].rstrip("]") for line in res.stdout.splitlines()
             if line.startswith("experiments/test_scaling.py::test_scaling[")]
    assert order == ["z-base", "a-tuned"], res.stdout


def test_a_twin_with_nothing_to_calibrate_on_stops_the_session_before_anything_starts(
        tmp_path: Path) -> None:
    """Selected alone with no earlier record: a usage error naming file, field and fix,
    raised at collection (the local backend's preflight passes here, no stack starts)."""
    folder = _tuned_pair(tmp_path)
    res = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "experiments"), "-q", "-p",
         "no:cacheprovider", "--scenarios", str(folder), "--report-dir",
         str(tmp_path / "reports"), "--backend", "local", "-k", "a-tuned"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    out = res.stdout + res.stderr
    assert res.returncode == 4, out
    assert "a-tuned.yaml: field 'twin.calibrate_on'" in out and "'z-base'" in out, out
    assert "fix: select it too (-k 'z-base or a-tuned')" in out, out
    assert "bringing the stack up" not in out and "Traceback" not in out, out
