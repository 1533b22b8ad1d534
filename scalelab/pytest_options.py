"""pytest options for scalelab experiments.

``--backend``, ``--scenarios``, ``--report-dir``, ``--keep-stack``.

Each option is also an ini setting (``[tool.pytest.ini_options]`` or ``pytest.ini``) so a
project can pin its defaults; the command line wins.
"""

from __future__ import annotations

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
