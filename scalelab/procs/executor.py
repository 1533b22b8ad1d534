"""mirakuru's executor with a process marker no other process's exit can match.

mirakuru marks every process an executor starts, and their descendants, with an environment
variable (``mirakuru_uuid=<pid>:<uuid4>``) so it can find daemonized leftovers. It also
registers an atexit hook (mirakuru 3.1 ``base.py``, ``cleanup_subprocesses``) that SIGKILLs
every process whose marker *contains* the exiting interpreter's pid as a substring
(``base_env.py``, ``processes_with_env_psutil``: ``env_value in penv.get(env_name, "")``).
So any Python process that imports mirakuru and exits (a ``scalelab`` CLI run, a pytest
session a test starts, a Locust runner) SIGKILLs a long-lived broker whose marker happens to
hold that pid among the uuid's digits: the session RabbitMQ of the test suite died that way
between two tests, and every later test that needed it failed.

``MarkedExecutor`` gives each executor a marker without a decimal digit, which no pid can be
a substring of, and keeps mirakuru's safety net for its own processes: at interpreter exit
the process that started them SIGKILLs whatever still carries one of its markers (exact
match), as mirakuru would have.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import uuid
from typing import Any

import psutil
from mirakuru import SimpleExecutor
from mirakuru.base import ENV_UUID

#: hex digits 0-9 -> letters g-p: a uuid4's 128 bits, no decimal digit
_NO_DIGITS = str.maketrans("0123456789", "ghijklmnop")

#: markers this interpreter issued (pid that issued them, marker)
_ISSUED: set[tuple[int, str]] = set()


def new_marker() -> str:
    """A fresh marker with no decimal digit in it (see the module docstring)."""
    return "scalelab-" + uuid.uuid4().hex.translate(_NO_DIGITS)


def marked_processes(*markers: str) -> list[int]:
    """Pids of the processes whose marker is exactly one of ``markers`` (those we may
    read)."""
    wanted = set(markers)
    pids = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(ENV_UUID) in wanted:
                pids.append(proc.pid)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError):
            continue
    return pids


def kill_marked(*markers: str, sig: int = signal.SIGKILL) -> list[int]:
    """Send ``sig`` to every process carrying one of ``markers``; return their pids."""
    pids = marked_processes(*markers)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    return pids


class MarkedExecutor(SimpleExecutor):
    """A ``SimpleExecutor`` whose processes carry a digit-free marker (``marker``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # mirakuru reads the marker from this attribute when it starts the process and when
        # it sweeps for descendants (stop, kill)
        self._uuid = new_marker()
        _ISSUED.add((os.getpid(), self._uuid))

    @property
    def marker(self) -> str:
        return self._uuid


@atexit.register
def _kill_leftovers() -> None:
    """mirakuru's exit-time sweep, for our markers only and only in the issuing process
    (a forked child that exits must not kill its parent's broker)."""
    me = os.getpid()
    mine = [marker for pid, marker in _ISSUED if pid == me]
    if mine:
        kill_marked(*mine)
