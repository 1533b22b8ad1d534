"""Cancelling a materialization mid-scenario tears the stack down.

Dagster cancels a run by interrupting its run worker: the run's cancellation thread (or
``dagster asset materialize`` under Ctrl-C) sends SIGINT to the process, and Dagster maps
SIGTERM (a pod's stop) to the same handler. The test runs the real CLI on the local backend
and interrupts it while the scenario's load phase runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from tests.dagster.conftest import DATA, SKIP_REASON
from tests.local.leftovers import describe, tagged

pytest.importorskip("dagster", reason=SKIP_REASON)

from scalelab import record  # noqa: E402
from scalelab.paths import ROOT  # noqa: E402
from scalelab.waiting import wait_for  # noqa: E402

pytestmark = pytest.mark.slow


class _Output:
    """A child's merged output, read by a thread so the pipe never fills."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def join(self) -> str:
        self._thread.join(timeout=10)
        return self.text


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cancel_mid_scenario_tears_the_stack_down(tag: str, tmp_path: Path, sig: int) -> None:
    home = tmp_path / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    reports = tmp_path / "reports"
    env = {**os.environ, "DAGSTER_HOME": str(home), "SCALELAB_SCENARIOS": str(DATA),
           "SCALELAB_BACKEND": "local", "SCALELAB_REPORT_DIR": str(reports),
           "PYTHONUNBUFFERED": "1"}
    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.Popen(
        [str(dagster), "asset", "materialize", "-m", "scalelab.dagster",
         "--select", "scenario/dagster-short"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = _Output(proc)
    try:
        wait_for(lambda: "[dagster-short] load" in out.text or proc.poll() is not None, bool,
                 what="the scenario's load phase under Dagster", expected="a load progress line",
                 timeout=240, interval=0.5)
        assert proc.poll() is None, out.text
        assert tagged(tag), "the run's stack carries our tag"
        proc.send_signal(sig)
        code = proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.join()
    assert code != 0, text
    assert "tearing the local stack down" in text, text
    left = wait_for(lambda: tagged(tag), lambda procs: not procs, what="no tagged processes",
                    expected="none", timeout=20, interval=0.2)
    assert not left, describe(left)
    assert not list(Path(tempfile.gettempdir()).glob("scalelab-*"))
    # the record of the interrupted scenario was written, saying so
    (run_dir,) = record.find_runs(reports)
    rec = record.load(run_dir / "dagster-short")
    assert rec["status"] == "interrupted", rec["error"]
