"""The scaling control endpoint of ``scalelab up``: apply or remove one of
``manifests/scaling/*.yaml`` while the stack runs, for the live page.

Why here and not in the API: the autoscalers (the emulated HPA/KEDA loops on the local
backend, kubectl on a cluster) belong to the harness process, through the backend's own
``apply_scaling`` / ``remove_scaling``, the code path experiments use. The API proxies
``/api/scaling`` to this server when its ``CONTROL_URL`` is set; the page never sees this
address. Bound to 127.0.0.1 under a random path (the URL is the credential), so only the
local API (which inherits it) and its owner can reach it.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from scalelab import paths
from scalelab.backends.base import Backend
from scalelab.errors import ConfigError

LOG = logging.getLogger(__name__)
SCALING_DIR = paths.MANIFESTS / "scaling"
#: The env var the api pods read (services/common/config.py ApiConfig.control_url).
ENV_VAR = "CONTROL_URL"


class ScalingControl:
    """One manifest in force at a time: applying another removes the previous first."""

    def __init__(self, backend: Backend, *, directory: Path = SCALING_DIR) -> None:
        self.backend = backend
        self.directory = directory
        self.manifest: str | None = None
        self.applied: list[str] = []
        self._lock = threading.Lock()

    def available(self) -> list[str]:
        return sorted(p.name for p in self.directory.glob("*.yaml"))

    def state(self) -> dict[str, Any]:
        return {"manifest": self.manifest, "applied": list(self.applied),
                "available": self.available(), "backend": self.backend.name,
                "decisions": self.decisions()}

    def decisions(self, *, last: int = 5, minutes: float = 10.0) -> list[dict[str, Any]]:
        """The autoscalers' latest decisions with their reasons (the backend's record of
        them: the emulated controllers' on the local backend), newest first."""
        try:
            events = self.backend.scaling_events(since=time.time() - minutes * 60)
        except Exception as err:  # noqa: BLE001 - the page shows why, the stack keeps running
            return [{"error": f"{type(err).__name__}: {err}"}]
        return [e.as_dict() for e in sorted(events, key=lambda e: e.t)[-last:][::-1]]

    def started_with(self, manifest: Path | None, applied: list[str]) -> None:
        """What ``scalelab up --scaling`` applied before the server started."""
        self.manifest = manifest.name if manifest else None
        self.applied = list(applied)

    def apply(self, name: str) -> dict[str, Any]:
        if name not in self.available():
            raise ConfigError(f"no scaling manifest {name!r}", file=str(self.directory),
                              field="manifest", fix=f"one of {self.available()}")
        with self._lock:
            self.backend.remove_scaling()
            self.manifest, self.applied = None, []
            self.applied = self.backend.apply_scaling(self.directory / name)
            self.manifest = name
            return self.state()

    def remove(self) -> dict[str, Any]:
        with self._lock:
            self.backend.remove_scaling()
            self.manifest, self.applied = None, []
            return self.state()


def _handler(control: ScalingControl, prefix: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: Any) -> None:  # quiet: the terminal is the UI
            LOG.debug(fmt, *args)

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            if self.path != f"{prefix}/scaling":
                self._answer(HTTPStatus.NOT_FOUND, {"error": "not found"})
                return
            try:
                if method == "GET":
                    self._answer(HTTPStatus.OK, control.state())
                elif method == "DELETE":
                    self._answer(HTTPStatus.OK, control.remove())
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(min(length, 4096)) or b"{}")
                    name = body.get("manifest") if isinstance(body, dict) else None
                    self._answer(HTTPStatus.OK, control.apply(str(name)))
            except (ConfigError, ValueError) as err:
                self._answer(HTTPStatus.UNPROCESSABLE_ENTITY,
                             {"error": str(err), "field": "manifest"})
            except Exception as err:  # noqa: BLE001 - the page shows it; up keeps running
                LOG.exception("scaling control")
                self._answer(HTTPStatus.INTERNAL_SERVER_ERROR,
                             {"error": f"{type(err).__name__}: {err}"})

        def do_GET(self) -> None:  # noqa: N802 (http.server's names)
            self._route("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._route("POST")

        def do_DELETE(self) -> None:  # noqa: N802
            self._route("DELETE")

    return Handler


class ControlServer:
    """The HTTP server on 127.0.0.1 (a free port), in a daemon thread; ``close()`` ends it."""

    def __init__(self, control: ScalingControl, *, host: str = "127.0.0.1") -> None:
        prefix = "/" + secrets.token_urlsafe(16)
        self.server = ThreadingHTTPServer((host, 0), _handler(control, prefix))
        self.url = f"http://{host}:{self.server.server_address[1]}{prefix}"
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        name="scaling-control", daemon=True)

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
