"""pytest options for scalelab experiments.

``--backend``, ``--scenarios``, ``--report-dir``, ``--keep-stack``, ``--repeat``.

Each option is also an ini setting (``[tool.pytest.ini_options]`` or ``pytest.ini``) so a
project can pin its defaults; the command line wins.

SIGTERM (a cancelled CI job, ``kill``, tox passing a stop on) becomes KeyboardInterrupt
(``scalelab.signals.interrupt_on``), so pytest stops as on Ctrl-C and runs every fixture's
teardown: without it the process dies on the spot and the broker, Prometheus and the pods
it started keep running. SIGINT is pytest's own already.
"""

from __future__ import annotations

import contextlib
import signal
import threading

import pytest

from scalelab.signals import interrupt_on

OPTIONS = (
    ("backend", "auto", "auto | local | kind | existing (auto: kind when Docker answers)"),
    ("scenarios", "", "scenario files or folders (default: experiments/scenarios/)"),
    ("report_dir", "reports", "where run records and the HTML report are written"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("scalelab")
    for name, default, help_text in OPTIONS:
        flag = "--" + name.replace("_", "-")
        group.addoption(flag, dest=f"scalelab_{name}", default=None, help=help_text)
        parser.addini(f"scalelab_{name}", help_text, default=default)
    group.addoption("--keep-stack", dest="scalelab_keep_stack", action="store_true",
                    default=None, help="leave the stack running after the session")
    parser.addini("scalelab_keep_stack", "leave the stack running", type="bool", default=False)
    group.addoption("--repeat", dest="scalelab_repeat", default=None, type=_repetitions,
                    help="run every scenario N times on the same stack (overrides its repeat:)")
    parser.addini("scalelab_repeat", "repetitions of every scenario (default: its repeat:)",
                  default="")


def _repetitions(text: str) -> int:
    """``--repeat`` / ``scalelab_repeat``: a whole number from 1 to 50."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 50:
        raise pytest.UsageError(f"--repeat / scalelab_repeat: {text!r} is not a number of "
                                "repetitions; give a whole number from 1 to 50")
    return n


def repetitions(config: pytest.Config, scenario_repeat: int) -> int:
    """How many times a scenario runs: ``--repeat``, else the ini value, else its own."""
    value = config.getoption("scalelab_repeat")
    if value is None and str(config.getini("scalelab_repeat")).strip():
        value = _repetitions(str(config.getini("scalelab_repeat")).strip())
    return int(value) if value is not None else scenario_repeat


def scalelab_option(config: pytest.Config, name: str) -> object:
    """The command-line value if given, else the ini value."""
    value = config.getoption(f"scalelab_{name}")
    return config.getini(f"scalelab_{name}") if value is None else value


#: A session's SIGTERM handling, closed (the previous handler back) at its unconfigure; kept
#: per config, so a session run inside another (pytester) restores only its own.
_SIGTERM = pytest.StashKey[contextlib.ExitStack]()


def pytest_configure(config: pytest.Config) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    # A runner that handles SIGTERM itself keeps its handler.
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        stack = contextlib.ExitStack()
        stack.enter_context(interrupt_on(signal.SIGTERM))
        config.stash[_SIGTERM] = stack


def pytest_unconfigure(config: pytest.Config) -> None:
    stack = config.stash.get(_SIGTERM, None)
    if stack is not None and threading.current_thread() is threading.main_thread():
        del config.stash[_SIGTERM]
        stack.close()
