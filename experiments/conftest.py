"""The pytest driver's plumbing: scenarios as parameters, one stack per session, the report.

All experiment logic lives in ``scalelab.experiment``; this file only wires pytest to it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scalelab import record
from scalelab.backends import choose_backend, make_backend
from scalelab.backends.base import Backend
from scalelab.errors import ScalelabError
from scalelab.experiment import ExperimentSettings
from scalelab.paths import ROOT, SCENARIOS
from scalelab.pytest_options import scalelab_option
from scalelab.settings import StackSettings


def _scenario_paths(config: pytest.Config) -> list[Path]:
    raw = str(scalelab_option(config, "scenarios") or "")
    if not raw:
        return [SCENARIOS]
    return [Path(p) if Path(p).is_absolute() else Path.cwd() / p for p in raw.split(",") if p]


_SCENARIOS = pytest.StashKey[list[Any]]()


def pytest_configure(config: pytest.Config) -> None:
    """Load and validate every scenario before anything starts; bad input ends the session
    with the file, the field and the fix (exit code 4, no traceback)."""
    from scalelab.scenario import load_scenarios

    try:
        config.stash[_SCENARIOS] = load_scenarios(_scenario_paths(config))
    except ScalelabError as err:
        raise pytest.UsageError(f"invalid scenario: {err}") from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "scenario" not in metafunc.fixturenames:
        return
    scenarios = metafunc.config.stash[_SCENARIOS]
    for tag in sorted({t for s in scenarios for t in s.tags}):
        metafunc.config.addinivalue_line("markers", f"{tag}: scenario tag")
    metafunc.parametrize(
        "scenario",
        [pytest.param(s, id=s.name, marks=[*(getattr(pytest.mark, t) for t in s.tags),
                                           pytest.mark.timeout(_budget(s))])
         for s in scenarios],
    )


def _budget(scenario) -> float:  # type: ignore[no-untyped-def]
    """pytest-timeout for one scenario: its phases plus every bounded wait of the pipeline
    (stack bring-up, settle, Locust start, load grace, drain), so only a real hang trips it."""
    s = ExperimentSettings(run_id="-")
    return scenario.duration + 120 + s.settle_timeout + 60 + s.load_grace + s.drain_timeout


@pytest.fixture(scope="session")
def report_dir(pytestconfig: pytest.Config) -> Path:
    path = Path(str(scalelab_option(pytestconfig, "report_dir")))
    return path if path.is_absolute() else ROOT / path


@pytest.fixture(scope="session")
def run_id() -> str:
    return record.new_run_id(time.time())


@pytest.fixture(scope="session")
def say(pytestconfig: pytest.Config):  # type: ignore[no-untyped-def]
    """Print a line live, even under output capture (progress belongs in CI logs)."""
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")

    def _say(line: str) -> None:
        # Output capture redirects fd 1 while tests and fixtures run: suspend it per line.
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            if reporter is not None:
                reporter.write_line(line)
            else:
                print(line, flush=True)

    return _say


@pytest.fixture(scope="session")
def stack(pytestconfig: pytest.Config, say, report_dir: Path, run_id: str  # type: ignore[no-untyped-def]
          ) -> Iterator[Backend]:
    """The stack, up once per session; torn down at the end unless --keep-stack."""
    choice = choose_backend(str(scalelab_option(pytestconfig, "backend")))
    say(f"scalelab: backend {choice.name.upper()} ({choice.reason})")
    backend = make_backend(choice.name, settings=StackSettings())
    keep = bool(scalelab_option(pytestconfig, "keep_stack"))
    started = time.monotonic()
    try:
        endpoints = backend.up()
        say(f"scalelab: stack up in {time.monotonic() - started:.1f}s: "
            + ", ".join(f"{k}={v}" for k, v in endpoints.as_dict().items()))
        yield backend
    finally:
        try:
            if not keep:
                backend.down()
            try:
                _figures(report_dir / run_id, time.monotonic() - started, say)
            finally:
                _render_report(report_dir, run_id, say)
            if keep:
                # Our processes die with pytest (mirakuru reaps its children at exit), so
                # keeping the stack means keeping this process: until Ctrl-C. The report
                # is already written, so it can be read while the stack is explored.
                say("scalelab: --keep-stack: the stack stays up; press Ctrl-C to tear it "
                    "down")
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(1.0)
        finally:
            backend.down()  # idempotent; whatever failed or was interrupted above


def _figures(run_dir: Path, session_wall: float, say) -> None:  # type: ignore[no-untyped-def]
    """The benchmark figures of this run (scalelab.figures), printed at the end."""
    from scalelab.figures import format_figures

    records = [record.load(p.parent) for p in sorted(run_dir.glob(f"*/{record.RUN_FILE}"))]
    if not records:
        return
    phases = sum(p["planned_duration"] for r in records for p in r["phases"])
    say("scalelab: figures (seconds)\n" + format_figures(records))
    if phases:
        say(f"scalelab: session wall time {session_wall:.0f}s (bring-up and teardown "
            f"included) for {phases:.0f}s of phases: {session_wall / phases:.2f}x")


def _render_report(report_dir: Path, run_id: str, say) -> None:  # type: ignore[no-untyped-def]
    if not (report_dir / run_id).exists():
        return
    try:
        from scalelab.report.render import render_reports

        written = render_reports(report_dir, runs=[run_id])
        say(f"scalelab: report {written[-1]} (this run: {report_dir / run_id})")
    except Exception as err:  # the records are safe on disk; `scalelab report` re-renders
        say(f"scalelab: could not render the report ({err}); run `scalelab report`")
