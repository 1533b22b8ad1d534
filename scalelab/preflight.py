"""Preflight for ``tox -e scaling``: the local backend's Debian packages, installed or named.

Run as root it installs what is missing (``apt-get update`` then ``apt-get install``); run as
anyone else it stops and prints the exact command, before anything starts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Sequence

from scalelab.errors import MissingDependencyError
from scalelab.procs import prometheus, rabbitmq

#: Debian package -> the probe that raises MissingDependencyError when it is absent.
LOCAL_PACKAGES: dict[str, Callable[[], str]] = {
    rabbitmq.DEBIAN_PACKAGE: rabbitmq.find_server_script,
    prometheus.DEBIAN_PACKAGE: prometheus.find_binary,
}


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scalelab.preflight", description=__doc__)
    parser.add_argument("--install", action="store_true",
                        help="install missing packages when running as root")
    args = parser.parse_args(argv)
    missing = missing_packages()
    if not missing:
        print("scalelab preflight: rabbitmq-server and prometheus are installed")
        return 0
    commands = install_command(missing)
    if args.install and os.geteuid() == 0:
        print(f"scalelab preflight: installing {' '.join(missing)}", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in commands:
            subprocess.run(cmd, check=True, env=env)
        still = missing_packages()
        if still:
            print(f"scalelab preflight: still missing after install: {' '.join(still)}",
                  file=sys.stderr)
            return 1
        return 0
    line = " && ".join("sudo " + " ".join(cmd) for cmd in commands)
    print("scalelab preflight: the local backend needs the Debian package(s) "
          f"{', '.join(missing)}, which are not installed.\n  fix: {line}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
