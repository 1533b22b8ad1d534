"""Find processes a test started, by an env marker every descendant inherits.

Other engineers' tests run brokers and Prometheus servers on the same machine at the same
time, so counting all ``beam.smp``/``prometheus`` processes would be wrong; mirakuru and
``subprocess`` pass our environment down (the broker's ``epmd`` daemon included).
"""

from __future__ import annotations

import socket

import psutil

MARKER = "SCALELAB_TEST_TAG"


def tagged(tag: str) -> list[psutil.Process]:
    """Processes alive (not zombies) whose environment carries ``MARKER=tag``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(MARKER) == tag:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def name_of(proc: psutil.Process) -> str:
    """The process name, or "" if it is already gone (short-lived shells come and go)."""
    try:
        return str(proc.name())
    except psutil.Error:
        return ""


def describe(procs: list[psutil.Process]) -> list[str]:
    out = []
    for proc in procs:
        try:
            out.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.Error:
            out.append(str(proc.pid))
    return out


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
