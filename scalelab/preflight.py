"""Preflight for ``tox -e scaling``: what the chosen backend needs, before anything starts.

tox runs ``python -m scalelab.preflight --install {posargs}`` with the arguments meant for
pytest. Preflight reads only the backend from them (``--backend X``, ``--backend=X``,
``-o scalelab_backend=X``, else the ``scalelab_backend`` ini value, as pytest would), resolves
``auto`` as the session will (``scalelab.backends.choose_backend``) and checks:

* local: the Debian packages rabbitmq-server and prometheus; run as root with ``--install``
  it installs what is missing, run as anyone else it prints the exact command;
* kind: a Docker daemon that answers, kind in the range the pinned node image was published
  for, kubectl, helm 3 (``scalelab.backends.cluster.tools``, as the backend's check_inputs);
* existing: kubectl, a kubeconfig context that answers, and helm 3 when the addons are
  installed (``SCALELAB_INSTALL_ADDONS``).

Every missing thing is one line naming how to get it; exit 1 (2 for bad input), no traceback.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import iniconfig

from scalelab.backends import BACKEND_NAMES, choose_backend
from scalelab.errors import ConfigError, MissingDependencyError, ScalelabError
from scalelab.procs import prometheus, rabbitmq

if TYPE_CHECKING:
    from scalelab.backends.cluster.tools import Probe

#: Debian package -> the probe that raises MissingDependencyError when it is absent.
LOCAL_PACKAGES: dict[str, Callable[[], str]] = {
    rabbitmq.DEBIAN_PACKAGE: rabbitmq.find_server_script,
    prometheus.DEBIAN_PACKAGE: prometheus.find_binary,
}
#: The ini key of pytest's ``--backend`` (scalelab.pytest_options) and its default.
INI_KEY = "scalelab_backend"
DEFAULT_BACKEND = "auto"
#: Config files pytest discovers, in its precedence order (pytest 9,
#: _pytest/config/findpaths.py CONFIG_LOADERS_BY_NAME).
CONFIG_NAMES = ("pytest.toml", ".pytest.toml", "pytest.ini", ".pytest.ini", "pyproject.toml",
                "tox.ini", "setup.cfg")


def missing_packages() -> list[str]:
    missing = []
    for package, probe in LOCAL_PACKAGES.items():
        try:
            probe()
        except MissingDependencyError:
            missing.append(package)
    return missing


def install_command(packages: Sequence[str]) -> list[list[str]]:
    return [["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]]


# -- which backend pytest will use -----------------------------------------------------------
def _pytest_config(path: Path) -> dict[str, object] | None:
    """The pytest settings ``path`` holds, or None when it holds none (then pytest looks
    further); follows pytest's loaders: pytest.ini/pytest.toml count even when empty."""
    name = path.name
    if path.suffix == ".toml":
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        if name in ("pytest.toml", ".pytest.toml") or (
                name != "pyproject.toml" and "pytest" in doc):
            table = doc.get("pytest")
            return dict(table) if isinstance(table, dict) else {}
        tool = doc.get("tool", {}).get("pytest")
        if not isinstance(tool, dict):
            return None
        native = {k: v for k, v in tool.items() if k != "ini_options"}
        if native:
            return native
        ini = tool.get("ini_options")
        return dict(ini) if isinstance(ini, dict) else None
    parsed = iniconfig.IniConfig(str(path))
    section = "tool:pytest" if path.suffix == ".cfg" else "pytest"
    if section in parsed:
        return dict(parsed[section].items())
    return {} if name in ("pytest.ini", ".pytest.ini") else None


def ini_backend(start: Path, *, config_file: Path | None = None) -> str | None:
    """``scalelab_backend`` from the config file pytest would read: ``-c FILE``, else the
    first of CONFIG_NAMES holding pytest settings in ``start`` or a parent directory."""
    if config_file is not None:
        found = _pytest_config(config_file)
        value = None if found is None else found.get(INI_KEY)
        return None if value is None else str(value)
    for base in (start, *start.parents):
        for name in CONFIG_NAMES:
            path = base / name
            if not path.is_file():
                continue
            found = _pytest_config(path)
            if found is not None:
                value = found.get(INI_KEY)
                return None if value is None else str(value)
    return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scalelab.preflight", allow_abbrev=False,
        description="Check (and, for the local backend as root, install) what the chosen "
                    "backend needs. Other arguments (pytest's) are ignored.")
    parser.add_argument("--install", action="store_true",
                        help="local backend: install missing Debian packages when root")
    parser.add_argument("--backend", help=f"{' | '.join(BACKEND_NAMES)} (as pytest's)")
    parser.add_argument("-o", "--override-ini", action="append", default=[],
                        help=f"pytest's; {INI_KEY}=X is read")
    parser.add_argument("-c", "--config-file", type=Path, help="pytest's ini file")
    return parser


def requested_backend(args: argparse.Namespace, *, cwd: Path) -> tuple[str, str]:
    """The backend pytest will be asked for, and where that came from."""
    if args.backend:
        return args.backend, f"--backend {args.backend}"
    for override in reversed(args.override_ini):
        key, sep, value = override.partition("=")
        if sep and key.strip() == INI_KEY:
            return value.strip(), f"-o {INI_KEY}={value.strip()}"
    value = ini_backend(cwd, config_file=args.config_file)
    if value:
        return value, f"ini {INI_KEY} = {value}"
    return DEFAULT_BACKEND, f"default {DEFAULT_BACKEND}"


# -- the checks ------------------------------------------------------------------------------
def check_backend(name: str, *, env: Mapping[str, str] | None = None,
                  which: Callable[[str], str | None] = shutil.which,
                  probe: Probe | None = None) -> list[str]:
    """Raise ``MissingDependencyError`` (every missing thing, one line each) unless this
    machine can run the resolved backend ``name``; return warnings and what was found.

    For the pytest driver too (``pytest_configure``: turn the error into a UsageError).
    """
    if name == "local":
        missing = missing_packages()
        if missing:
            line = " && ".join("sudo " + " ".join(cmd) for cmd in install_command(missing))
            raise MissingDependencyError(
                f"the local backend needs the Debian package(s) {', '.join(missing)}, "
                "which are not installed", fix=line)
        return ["rabbitmq-server and prometheus are installed"]
    from scalelab.backends.cluster import tools
    from scalelab.backends.cluster.settings import ClusterSettings

    cluster = ClusterSettings.from_env(os.environ if env is None else env)
    report = tools.check_cluster_tools(
        name, install_addons=cluster.install_addons, node_image=cluster.node_image,
        context=cluster.context, reach_cluster=name == "existing", which=which,
        probe=tools.probe if probe is None else probe)
    tools.raise_for(report.findings, backend=name)
    found = ", ".join(f"{tool} {path}" for tool, path in report.paths.items())
    return [*report.warnings, f"found {found}"]


def _install_local(missing: Sequence[str]) -> int:
    print(f"scalelab preflight: installing {' '.join(missing)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in install_command(missing):
        done = subprocess.run(cmd, check=False, env=env)
        if done.returncode != 0:
            print(f"scalelab preflight: `{' '.join(cmd)}` failed (exit {done.returncode}); "
                  "see apt's output above\n  fix: run it by hand and fix what apt reports",
                  file=sys.stderr)
            return 1
    still = missing_packages()
    if still:
        print(f"scalelab preflight: still missing after install: {' '.join(still)}",
              file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args, _pytest_args = _parser().parse_known_args(argv)
    try:
        requested, source = requested_backend(args, cwd=Path.cwd())
        choice = choose_backend(requested)
    except (ScalelabError, OSError, ValueError) as err:
        print(f"scalelab preflight: error: {err}", file=sys.stderr)
        return 2
    head = f"scalelab preflight: {choice.name} backend ({source}"
    head += f": {choice.reason})" if requested == "auto" else ")"
    if choice.name == "local" and args.install and os.geteuid() == 0:
        missing = missing_packages()
        if missing:
            return _install_local(missing)
    try:
        notes = check_backend(choice.name)
    except MissingDependencyError as err:
        print(f"{head}: {err}", file=sys.stderr)
        return 1
    except ConfigError as err:
        print(f"{head}: error: {err}", file=sys.stderr)
        return 2
    print(f"{head}: ready; " + "; ".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
