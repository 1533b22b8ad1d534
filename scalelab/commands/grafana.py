"""``scalelab grafana``: hold a port-forward to the cluster's Grafana on 127.0.0.1:3000.

For a stack a ``scalelab up`` or an experiment session (``--keep-stack``) brought up on
kind or an existing cluster: Grafana is kube-prometheus-stack's (service
``monitoring/kps-grafana``), with scalelab's dashboards. The forward is the backends' own
``PortForwards``, so a forward that exits or stalls is restarted on the same port. It
runs until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from scalelab.backends.cluster.backend import ClusterBackend
from scalelab.backends.cluster.forwards import parse_service, port_open
from scalelab.backends.cluster.render import grafana_login
from scalelab.backends.cluster.settings import GRAFANA_SERVICE, ClusterSettings
from scalelab.errors import ConfigError
from scalelab.settings import StackSettings

DEFAULT_PORT = 3000


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "grafana", help="port-forward the cluster's Grafana to 127.0.0.1:3000 until Ctrl-C",
        description="Forward 127.0.0.1:PORT to kube-prometheus-stack's Grafana "
                    f"({GRAFANA_SERVICE}) on the kind or existing cluster, print the URL and "
                    "login, and hold the forward (restarted if it exits or stalls) until "
                    "Ctrl-C.")
    parser.add_argument("--backend", choices=("auto", "kind", "existing"), default="auto",
                        help="whose cluster: kind (scalelab's kind cluster), existing (the "
                             "current kubeconfig context), auto (kind when scalelab's kind "
                             "cluster has a kubeconfig, else existing)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"local port (default {DEFAULT_PORT})")
    parser.set_defaults(func=run)


def cluster_backend(name: str, *, cluster: ClusterSettings | None = None) -> ClusterBackend:
    """The kind or existing backend whose kubeconfig and context reach the cluster."""
    from scalelab.backends.cluster.existing import ExistingBackend
    from scalelab.backends.cluster.kind import KindBackend

    cluster = ClusterSettings.from_env() if cluster is None else cluster
    kind_kubeconfig = cluster.work_dir / cluster.cluster_name / "kubeconfig"
    if name == "auto":
        name = "kind" if kind_kubeconfig.is_file() else "existing"
    if name == "kind":
        if not kind_kubeconfig.is_file():
            raise ConfigError(f"no kubeconfig of scalelab's kind cluster at {kind_kubeconfig}",
                              field="--backend",
                              fix="bring it up first: `scalelab up --backend kind` (in "
                                  "another terminal), or use --backend existing")
        return KindBackend(settings=StackSettings(), cluster=cluster)
    return ExistingBackend(settings=StackSettings(), cluster=cluster)


def hold(backend: ClusterBackend, *, port: int, stop: threading.Event,
         say: Callable[[str], None] = print) -> None:
    """Forward ``port`` to Grafana and keep it up until ``stop`` is set."""
    if not 0 < port < 65536:
        raise ConfigError(f"{port} is not a port", field="--port", fix="e.g. --port 3000")
    if port_open(port):
        raise ConfigError(f"127.0.0.1:{port} is already in use", field="--port",
                          fix=f"stop what listens there, or pass another port (--port "
                              f"{port + 1})")
    forward = dataclasses.replace(
        parse_service(GRAFANA_SERVICE, "grafana", probe="http", path="/api/health"),
        local_port=port)
    user, password = grafana_login()
    try:
        backend.port_forwards.start([forward])
        say(f"Grafana: http://127.0.0.1:{port}  (login {user} / {password}); "
            "press Ctrl-C to stop")
        while not stop.wait(1.0):
            pass
    finally:
        backend.port_forwards.stop()


def run(args: argparse.Namespace) -> int:
    backend = cluster_backend(args.backend)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # unwind a forward still starting as well as the wait; hold() stops the forward
        if stop.is_set():
            return
        stop.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_signal)
    previous_int = signal.signal(signal.SIGINT, on_signal)
    try:
        hold(backend, port=args.port, stop=stop)
    except KeyboardInterrupt:
        print("stopped the Grafana port-forward.")
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    return 0
