"""``--keep-stack``: the stack stays up after the last scenario, the report is written before
the session waits, and Ctrl-C tears the stack down. Real pytest in a subprocess, with the
stand-in backend of ``slow_stack_plugin`` (FAKE AT THE BACKEND SEAM: no cluster here; its
``up``/``down`` calls are logged) and a plugin that stores a recorded run record for each
scenario, as ``run_scenario`` would, so there is a report to write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from scalelab.paths import ROOT, SCENARIOS
from scalelab.waiting import wait_for

RECORDED = ROOT / "tests" / "report" / "data" / "20261127T143137Z-024c9f"

#: Each scenario's call stores the recorded run of the same name where the driver's report
#: reads this session's runs (a wrapper: slow_stack_plugin's own call hook answers first).
RECORDS_PLUGIN = f'''
import shutil
from pathlib import Path
import pytest

@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    args = pyfuncitem.funcargs
    name = pyfuncitem.callspec.id
    target = Path(args["report_dir"]) / args["run_id"] / name
    shutil.copytree(Path({str(RECORDED)!r}) / name, target)
    return (yield)
'''

STAYS_UP = "scalelab: --keep-stack: the stack stays up; press Ctrl-C to tear it down"


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], Path, Path, Path]:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "keep_stack_records.py").write_text(RECORDS_PLUGIN)
    log, out, reports = tmp_path / "stack.log", tmp_path / "out.txt", tmp_path / "reports"
    env = {**os.environ, "SLOW_STACK_LOG": str(log), "SLOW_STACK_UP": "0.1",
           "SLOW_STACK_TIMEOUT": "30", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "plugins"), str(ROOT)])}
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", str(ROOT / "experiments"), "-p",
             "tests.harness.slow_stack_plugin", "-p", "keep_stack_records", "-p",
             "no:cacheprovider", "--backend", "local", "--scenarios",
             f"{SCENARIOS / 'hpa-cpu.yaml'},{SCENARIOS / 'keda-queue.yaml'}",
             "--report-dir", str(reports), *extra],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True,
            preexec_fn=_ctrl_c_default)
    return proc, log, out, reports


def _ctrl_c_default() -> None:
    """The child takes Ctrl-C as a terminal's foreground job does, whatever the runner of
    this suite left: a job started in the background of a shell without job control
    (``cmd &`` in a script) inherits SIGINT ignored, and so would pytest in the child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_keep_stack_writes_the_report_keeps_the_stack_up_and_tears_it_down_on_ctrl_c(
        tmp_path: Path) -> None:
    proc, log, out, reports = _start(tmp_path, "--keep-stack")
    try:
        wait_for(lambda: STAYS_UP in out.read_text() or proc.poll() is not None, bool,
                 what="the session to say the stack stays up", expected=STAYS_UP,
                 timeout=120, interval=0.1)
        text = out.read_text()
        assert proc.poll() is None, text
        # the stack is up and stays up: no down() yet, the process waits
        assert _lines(log) == ["up", "scenario hpa-cpu", "scenario keda-queue"], text
        # the report came first, with both scenarios' pages
        assert text.index("scalelab: report ") < text.index(STAYS_UP), text
        index = reports / "index.html"
        assert index.exists(), text
        pages = sorted(p.parent.name for p in reports.glob("*/*/index.html"))
        assert pages == ["hpa-cpu", "keda-queue"], pages
        assert "2 passed" not in text, "the session is not over while the stack is kept"
        proc.send_signal(signal.SIGINT)               # Ctrl-C
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.read_text()
    assert code == 0, text
    assert "2 passed" in text, text
    assert _lines(log) == ["up", "scenario hpa-cpu", "scenario keda-queue", "down"], text


def test_without_keep_stack_the_stack_is_down_before_the_report(tmp_path: Path) -> None:
    proc, log, out, reports = _start(tmp_path)
    try:
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.read_text()
    assert code == 0, text
    assert STAYS_UP not in text, text
    assert (reports / "index.html").exists(), text
    # torn down once right after the scenarios (the second down() is the idempotent guard)
    assert _lines(log) == ["up", "scenario hpa-cpu", "scenario keda-queue", "down", "down"], text
