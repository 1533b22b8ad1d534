"""The progress line (README: "a progress line per poll shows the phase, elapsed/remaining
time, replicas (current / desired / ready / spec), queue depth and CPU utilization"): what
it says, and that the driver prints it live, under pytest's output capture, while the
scenario still runs (CI logs show it as it happens, not after the test)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from scalelab.observe import Sample, progress_line
from scalelab.paths import ROOT, SCENARIOS
from scalelab.waiting import wait_for


def _line(sample: Sample) -> str:
    return progress_line(scenario="keda-queue", phase="burst", phase_elapsed=12.4,
                         phase_duration=60, total_elapsed=72.6, total_duration=180,
                         sample=sample)


def test_the_line_says_phase_time_replicas_queue_and_cpu() -> None:
    sample = Sample(t=1.0, spec=4, current=3, ready=2, desired=5, queue_ready=120,
                    queue_unacked=3, cpu_utilization=87.5)
    assert _line(sample) == (
        "[keda-queue] burst    12/60s (total 73/180s, 107s left)"
        " replicas cur=3 desired=5 ready=2 spec=4 queue=120+3unacked cpu=87.5%")


def test_unknown_values_are_dashes_and_the_time_left_never_negative() -> None:
    sample = Sample(t=1.0, spec=1, current=1, ready=0, desired=None, queue_ready=None,
                    queue_unacked=None, cpu_utilization=None)
    line = progress_line(scenario="s", phase="idle", phase_elapsed=65, phase_duration=60,
                         total_elapsed=190, total_duration=180, sample=sample)
    assert line == ("[s] idle    65/60s (total 190/180s, 0s left) replicas cur=1 desired=- "
                    "ready=0 spec=1 queue=-+-unacked cpu=-")


def test_a_stored_timeline_entry_reads_as_its_sample() -> None:
    sample = Sample(t=1.0, spec=2, current=2, ready=2, desired=2, queue_ready=0,
                    queue_unacked=0, cpu_utilization=12.0)
    assert _line(sample.as_dict()) == _line(sample)  # type: ignore[arg-type]


#: Each scenario's call says a progress line through the driver's ``say`` and then waits
#: until the outer test has read it in the session's output: only a line printed live,
#: through the capture, lets the scenario finish (else the session times out).
LIVE_PLUGIN = '''
import os, time
from pathlib import Path
import pytest
from scalelab.observe import Sample, progress_line

@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    name = pyfuncitem.callspec.id
    sample = Sample(t=0.0, spec=1, current=1, ready=1, desired=2, queue_ready=7,
                    queue_unacked=1, cpu_utilization=55.0)
    pyfuncitem.funcargs["say"](progress_line(
        scenario=name, phase="steady", phase_elapsed=1, phase_duration=2, total_elapsed=1,
        total_duration=2, sample=sample))
    seen = Path(os.environ["SEEN_DIR"]) / name
    until = time.monotonic() + 60
    while not seen.exists() and time.monotonic() < until:
        time.sleep(0.05)
    assert seen.exists(), "the outer test never saw the progress line"
    return (yield)
'''


def test_the_driver_prints_progress_live_under_output_capture(tmp_path: Path) -> None:
    plugins, seen = tmp_path / "plugins", tmp_path / "seen"
    plugins.mkdir()
    seen.mkdir()
    (plugins / "live_progress.py").write_text(LIVE_PLUGIN)
    out = tmp_path / "out.txt"
    env = {**os.environ, "SLOW_STACK_LOG": str(tmp_path / "stack.log"), "SLOW_STACK_UP": "0.1",
           "SLOW_STACK_TIMEOUT": "90", "PYTHONUNBUFFERED": "1", "SEEN_DIR": str(seen),
           "PYTHONPATH": os.pathsep.join([str(plugins), str(ROOT)])}
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", str(ROOT / "experiments"), "-p",
             "tests.harness.slow_stack_plugin", "-p", "live_progress", "-p",
             "no:cacheprovider", "--capture=fd", "--backend", "local", "--scenarios",
             f"{SCENARIOS / 'hpa-cpu.yaml'},{SCENARIOS / 'keda-queue.yaml'}",
             "--report-dir", str(tmp_path / "reports")],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        for name in ("hpa-cpu", "keda-queue"):
            expected = (f"[{name}] steady     1/2s (total 1/2s, 1s left) replicas cur=1 "
                        "desired=2 ready=1 spec=1 queue=7+1unacked cpu=55.0%")

            def printed(line: str = expected) -> bool:
                return line in out.read_text() or proc.poll() is not None

            wait_for(printed, bool, what=f"{name}'s progress line while it runs",
                     expected=expected, timeout=90, interval=0.05)
            assert proc.poll() is None, out.read_text()
            (seen / name).write_text("seen")
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, out.read_text()
    assert "2 passed" in out.read_text()
