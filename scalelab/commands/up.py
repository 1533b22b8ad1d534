"""``scalelab up``: bring the stack up and keep it running until Ctrl-C or SIGTERM.

For poking at the stack by hand: the live page (drive the API, watch the dashboards'
panels; served by the API, docs/frontend.md), the Prometheus UI, the RabbitMQ management
UI, curl against the API, and on the cluster backends Grafana (its URL and login are printed).
``--json`` prints one line with the URLs once everything is ready, for scripts. SIGTERM
is turned into the same clean teardown as Ctrl-C, at any point of the bring-up.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from scalelab import paths
from scalelab.accounting import TaskLedger
from scalelab.backends import choose_backend, make_backend
from scalelab.backends.base import Backend
from scalelab.credentials import SECRET_NAME, redact
from scalelab.errors import ConfigError
from scalelab.scaling_control import ENV_VAR as CONTROL_ENV
from scalelab.scaling_control import ControlServer, ScalingControl
from scalelab.settings import AGENT_DEPLOYMENT, StackSettings
from scalelab.signals import interrupt_on


def _scale_arg(text: str) -> tuple[str, int]:
    name, sep, count = text.partition("=")
    if not sep or not name or not count.isdigit():
        raise argparse.ArgumentTypeError(
            f"expected DEPLOYMENT=REPLICAS (e.g. agent=4), got {text!r}")
    return name, int(count)


def password_hint(backend: Backend) -> str:
    """Where the broker's password is: the local broker's loopback-only guest user, or the
    run's Secret on a cluster."""
    if backend.name == "local":
        return "guest (the loopback-only guest user of the private broker)"
    return (f"kubectl -n {backend.settings.namespace} get secret {SECRET_NAME} "
            "-o jsonpath='{.data.password}' | base64 -d")


def grafana_access(backend: Backend) -> tuple[str, str, str] | None:
    """Grafana's URL, user and password, when the backend runs a Grafana (the cluster
    backends with kube-prometheus-stack installed)."""
    url = getattr(backend, "grafana_url", None)
    login = getattr(backend, "grafana_login", None)
    return None if not url or not login else (str(url), str(login[0]), str(login[1]))


def frontend_url(api_url: str) -> str:
    """The live page: the API serves it at its root, on every backend (services/api/live.py)."""
    return api_url.rstrip("/") + "/"


def frontend_note(backend: Backend) -> str:
    """Why the page may not load: locally it is served from services/frontend/dist."""
    if backend.name == "local" and not (paths.ROOT / "services/frontend/dist/index.html").is_file():
        return "  (not built: cd services/frontend && npm ci && npm run build)"
    return ""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "up", help="bring the stack up and keep it running until Ctrl-C",
        description="Start RabbitMQ, Prometheus, the api and the agents; print the URLs; "
                    "stop everything on Ctrl-C or SIGTERM.")
    parser.add_argument("--backend", default="local",
                        help="local (default), kind, existing or auto (kind when Docker answers)")
    parser.add_argument("--scaling", type=Path, metavar="FILE",
                        help="a scaling manifest (HPA / ScaledObject) to apply once up")
    parser.add_argument("--scale", type=_scale_arg, action="append", default=[],
                        metavar="DEPLOYMENT=N", help="set replicas by hand, e.g. agent=4")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line with the URLs once ready")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.scaling is not None and not args.scaling.is_file():
        raise ConfigError("no such file", file=str(args.scaling), field="--scaling",
                          fix="give the path of a scaling manifest, e.g. manifests/scaling/...")
    agent_replicas = None
    for name, count in args.scale:
        if name == AGENT_DEPLOYMENT:
            agent_replicas = count
    settings = StackSettings(agent_replicas=agent_replicas)
    backend = make_backend(choose_backend(args.backend).name, settings=settings)

    # Either signal unwinds whatever the main thread is doing (bring-up or waiting) into the
    # teardown, once: a second Ctrl-C must not abort it. SIGINT too, so Ctrl-C tears down even
    # when we were started with SIGINT ignored (a background job of a non-interactive shell
    # inherits SIG_IGN, and Python then installs no handler).
    with interrupt_on(signal.SIGTERM, signal.SIGINT):
        # The live page's apply/remove of a scaling manifest runs here, in the harness; the
        # api pods the local backend starts inherit CONTROL_URL from this environment.
        control = ScalingControl(backend)
        server = ControlServer(control).start()
        os.environ[CONTROL_ENV] = server.url
        try:
            return _serve(args, backend, control)
        finally:
            os.environ.pop(CONTROL_ENV, None)
            server.close()


def _serve(args: argparse.Namespace, backend: Backend, control: ScalingControl) -> int:
    """Up, print, wait for the signal; the backend's context manager tears down."""
    try:
        with backend:
            for name, count in args.scale:
                if name != AGENT_DEPLOYMENT:
                    backend.scale(name, count)
            applied = backend.apply_scaling(args.scaling) if args.scaling else []
            control.started_with(args.scaling, applied)
            urls = backend.endpoints
            # Nobody else reads the completion records while the stack just stays up: count
            # and drop them, or the results queue (and the broker's memory) grows for hours.
            results = TaskLedger(amqp_url=urls.amqp, keep_ids=False).start()
            grafana = grafana_access(backend)
            if args.json:
                print(json.dumps({**urls.as_dict(), "frontend": frontend_url(urls.api),
                                  **({"grafana": grafana[0]} if grafana else {})}), flush=True)
            else:
                print(f"scalelab stack is up ({backend.name} backend):")
                print(f"  Frontend (live page) {frontend_url(urls.api)}{frontend_note(backend)}")
                print(f"  API                  {urls.api}")
                print(f"  Prometheus           {urls.prometheus}")
                # The broker's password is not printed (a terminal's scrollback and CI logs
                # outlive the run); --json gives the full URLs to scripts.
                print(f"  RabbitMQ management  {redact(urls.rabbitmq_management)}")
                print(f"  AMQP                 {redact(urls.amqp)}")
                print(f"  broker password      {password_hint(backend)}")
                if grafana:
                    print(f"  Grafana              {grafana[0]}  ({grafana[1]}/{grafana[2]})")
                for name in sorted({AGENT_DEPLOYMENT, *(n for n, _ in args.scale)}):
                    r = backend.replicas(name)
                    print(f"  Deployment {name}: {r.ready}/{r.spec} ready")
                print("  scaling objects: " + (", ".join(applied) if applied else "none"))
                print("Press Ctrl-C to stop.", flush=True)
            try:
                while True:
                    time.sleep(1.0)
            finally:
                results.stop()
                t = results.totals()
                if args.json:  # a second JSON line, after the URLs
                    print(json.dumps({"results_drained": t}), flush=True)
                else:
                    print(f"results drained: {t['processed']} completion records counted "
                          f"({t['redelivered']} redelivered)", file=sys.stderr)
    except KeyboardInterrupt:
        if not args.json:
            print("stopped; everything torn down.", file=sys.stderr)
        return 0
