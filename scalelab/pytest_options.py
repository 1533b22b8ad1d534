"""pytest options for scalelab experiments.

``--backend``, ``--scenarios``, ``--report-dir``, ``--keep-stack``.

Each option is also an ini setting (``[tool.pytest.ini_options]`` or ``pytest.ini``) so a
project can pin its defaults; the command line wins.

SIGTERM (a cancelled CI job, ``kill``, tox passing a stop on) becomes KeyboardInterrupt, so
pytest stops as on Ctrl-C and runs every fixture's teardown: without it the process dies
on the spot and the broker, Prometheus and the pods it started keep running.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import pytest

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


def scalelab_option(config: pytest.Config, name: str) -> object:
    """The command-line value if given, else the ini value."""
    value = config.getoption(f"scalelab_{name}")
    return config.getini(f"scalelab_{name}") if value is None else value


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # One-shot: a second SIGTERM (CI runners follow a cancel's SIGINT with one) must not
    # break into the teardown the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


_previous: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        _previous["term"] = signal.signal(signal.SIGTERM, _interrupt)


def pytest_unconfigure(config: pytest.Config) -> None:
    if "term" in _previous and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _previous.pop("term"))
