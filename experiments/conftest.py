"""The pytest driver's plumbing: scenarios as parameters, one stack per session, the report.

All experiment logic lives in ``scalelab.experiment``; this file only wires pytest to it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scalelab import backends, preflight, record
from scalelab.backends import choose_backend, make_backend
from scalelab.backends.base import Backend
from scalelab.commands.up import frontend_note, frontend_url
from scalelab.credentials import redact
from scalelab.errors import ConfigError, ScalelabError
from scalelab.experiment import ExperimentSettings
from scalelab.paths import ROOT, SCENARIOS
from scalelab.pytest_options import repetitions, scalelab_option
from scalelab.settings import StackSettings
from scalelab.waiting import deadline


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
    bring_up_timeout(Backend)
    if not (config.option.collectonly or config.option.help):
        # What the chosen backend needs (Docker, kind, helm, packages): one line each.
        choice = choose_backend(str(scalelab_option(config, "backend")))
        try:
            preflight.check_backend(choice.name)
        except ScalelabError as err:
            raise pytest.UsageError(
                f"scalelab preflight ({choice.name} backend): {err}") from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "scenario" not in metafunc.fixturenames:
        return
    scenarios = metafunc.config.stash[_SCENARIOS]
    for tag in sorted({t for s in scenarios for t in s.tags}):
        metafunc.config.addinivalue_line("markers", f"{tag}: scenario tag")
    metafunc.parametrize(
        "scenario",
        [pytest.param(s, id=s.name, marks=[*(getattr(pytest.mark, t) for t in s.tags),
                                           pytest.mark.timeout(
                                               _budget(s) * repetitions(metafunc.config,
                                                                        s.repeat))])
         for s in scenarios],
    )


@pytest.hookimpl(trylast=True)  # after -k / -m deselected what does not run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A scenario whose ``twin:`` calibrates on others runs after them; one naming a
    scenario that neither runs now nor has a record ends the session before anything
    starts (``scalelab.twin.check``)."""
    from scalelab.twin import check as twin

    def scenario_of(item: pytest.Item) -> Any:
        callspec = getattr(item, "callspec", None)
        return None if callspec is None else callspec.params.get("scenario")

    chosen = {sc.name: sc for sc in map(scenario_of, items) if sc is not None}
    if not any(sc.twin_calibrate_on for sc in chosen.values()):
        return
    problems = twin.missing_calibration(list(chosen.values()), chosen,
                                        reports_dir=_report_dir(config))
    if problems and not config.option.collectonly:
        raise pytest.UsageError("the twin has nothing to calibrate on:\n" + "\n".join(problems))
    order = twin.calibration_first(list(chosen), {n: sc.twin_calibrate_on
                                                  for n, sc in chosen.items()})
    rank = {name: i for i, name in enumerate(order)}
    items.sort(key=lambda it: rank.get(getattr(scenario_of(it), "name", ""), -1))


def _budget(scenario) -> float:  # type: ignore[no-untyped-def]
    """pytest-timeout for one run of a scenario: its phases plus every bounded wait of the
    pipeline (reset, settle, Locust start, load grace, drain), so only a real hang trips it;
    a repeated scenario gets it once per repetition. The stack's bring-up is not in it: it
    runs before the first scenario, under its own bound."""
    s = ExperimentSettings(run_id="-")
    return scenario.duration + 120 + s.settle_timeout + 60 + s.load_grace + s.drain_timeout


_RUN_ID = pytest.StashKey[str]()
_STACK = pytest.StashKey["_Stack"]()


@dataclass(kw_only=True)
class _Stack:
    """The session's stack, brought up by ``pytest_runtestloop`` before the first scenario."""

    backend: Backend
    error: Exception | None = None


def _report_dir(config: pytest.Config) -> Path:
    path = Path(str(scalelab_option(config, "report_dir")))
    return path if path.is_absolute() else ROOT / path


def _run_id(config: pytest.Config) -> str:
    if _RUN_ID not in config.stash:
        config.stash[_RUN_ID] = record.new_run_id(time.time())
    return config.stash[_RUN_ID]


def _sayer(config: pytest.Config):  # type: ignore[no-untyped-def]
    """Print a line live, even under output capture (progress belongs in CI logs)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def _say(line: str) -> None:
        # Output capture redirects fd 1 while tests and fixtures run: suspend it per line.
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            if reporter is not None:
                reporter.write_line(line)
            else:
                print(line, flush=True)

    return _say


def bring_up_timeout(backend: Backend | type[Backend],
                     env: Mapping[str, str] = os.environ) -> float:
    """``scalelab.backends.bring_up_timeout``, a bad value as a usage error (before anything
    starts)."""
    try:
        return backends.bring_up_timeout(backend, env)
    except ConfigError as err:
        raise pytest.UsageError(str(err)) from None


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    """Bring the stack up once, before the first scenario and outside every scenario's
    timeout (a cold kind cluster pulls images for many minutes), under its own bound;
    tear it down and write the report after the last one, whatever happened."""
    config = session.config
    if config.option.collectonly or not any(
            "stack" in getattr(item, "fixturenames", ()) for item in session.items):
        return (yield)
    say = _sayer(config)
    report_dir, run_id = _report_dir(config), _run_id(config)
    choice = choose_backend(str(scalelab_option(config, "backend")))
    say(f"scalelab: backend {choice.name.upper()} ({choice.reason})")
    # An existing cluster's run namespace is named after the run, as the report is.
    os.environ.setdefault("SCALELAB_RUN_ID", run_id)
    backend = make_backend(choice.name, settings=StackSettings())
    keep = bool(scalelab_option(config, "keep_stack"))
    limit = bring_up_timeout(backend)
    stack = config.stash[_STACK] = _Stack(backend=backend)
    started = time.monotonic()
    try:
        say(f"scalelab: bringing the stack up (at most {limit:.0f}s, "
            "SCALELAB_BRING_UP_TIMEOUT)")
        try:
            with deadline(limit, what=f"the {backend.name} stack to come up",
                          expected="up", actual=lambda: f"still at step {backend.current_step}",
                          fix="see the log above; raise SCALELAB_BRING_UP_TIMEOUT for a slow "
                              "first pull"):
                backend.up()
        except Exception as err:  # every scenario fails with it; teardown runs below
            stack.error = err
            say(f"scalelab: the stack did not come up after {time.monotonic() - started:.1f}s:"
                f" {err}")
        else:
            steps = ", ".join(f"{k} {v:.1f}s" for k, v in backend.timings.items())
            say(f"scalelab: stack up in {time.monotonic() - started:.1f}s"
                + (f" ({steps})" if steps else "") + ": "
                + ", ".join(f"{k}={redact(v)}" for k, v in backend.urls().items()))
            say(f"scalelab: live page {frontend_url(backend.endpoints.api)}"
                f"{frontend_note(backend)} (watch the scenarios run; --keep-stack keeps it "
                "up after them)")
        return (yield)
    finally:
        try:
            if not keep:
                backend.down()
            try:
                _figures(report_dir / run_id, time.monotonic() - started, say)
            finally:
                _render_report(report_dir, run_id, say)
            if keep and stack.error is None:
                # Our processes die with pytest (their executors' exit-time sweep), so
                # keeping the stack means keeping this process: until Ctrl-C. The report
                # is already written, so it can be read while the stack is explored.
                say("scalelab: --keep-stack: the stack stays up; press Ctrl-C to tear it "
                    "down")
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(1.0)
        finally:
            backend.down()  # idempotent; whatever failed or was interrupted above


@pytest.fixture(scope="session")
def report_dir(pytestconfig: pytest.Config) -> Path:
    return _report_dir(pytestconfig)


@pytest.fixture(scope="session")
def run_id(pytestconfig: pytest.Config) -> str:
    return _run_id(pytestconfig)


@pytest.fixture(scope="session")
def say(pytestconfig: pytest.Config):  # type: ignore[no-untyped-def]
    return _sayer(pytestconfig)


@pytest.fixture(scope="session")
def stack(pytestconfig: pytest.Config) -> Backend:
    """The stack ``pytest_runtestloop`` brought up (its bring-up error, if it failed)."""
    stack = pytestconfig.stash.get(_STACK, None)
    if stack is None:
        raise RuntimeError("the scalelab stack is brought up by pytest_runtestloop; "
                           "run the scenarios through pytest, not by calling the test")
    if isinstance(stack.error, ScalelabError):  # its message says what failed and the fix
        pytest.fail(f"the stack did not come up: {stack.error}", pytrace=False)
    if stack.error is not None:
        raise stack.error
    return stack.backend


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
