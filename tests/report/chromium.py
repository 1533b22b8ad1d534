"""A minimal headless-Chromium driver over ``--remote-debugging-pipe`` (Chrome DevTools
Protocol, NUL-delimited JSON on fds 3/4): no network port, no selenium download.

Used by the browser tests to load a page from disk, collect console errors, failed loads
and uncaught exceptions, evaluate JavaScript in the page and take a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--mute-audio",
    "--remote-debugging-pipe", "--window-size=1200,900",
)


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass(kw_only=True)
class PageResult:
    errors: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)


class Chromium:
    """One headless browser process; ``close()`` (or the context manager) ends it."""

    def __init__(self, binary: str, *, timeout: float = 30.0,
                 stderr: Any = subprocess.DEVNULL) -> None:
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="scalelab-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        # Chromium expects the pipe on fds 3 (in) and 4 (out); the shell moves them there
        # (subprocess closes fds it does not know about after any preexec hook).
        # Lift both ends above 10 first so the redirections cannot collide with 3/4.
        r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD_CLOEXEC, 10)
        w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._proc = subprocess.Popen(
            ["/bin/bash", "-c", f'exec "$@" 3<&{r} 4>&{w} {r}<&- {w}>&-', "sh", binary, *FLAGS,
             f"--user-data-dir={self._profile}", "about:blank"],
            pass_fds=(r, w), stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
        )
        os.close(r)
        os.close(w)
        self._buf = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already gone: fall through to kill
            self.send("Browser.close")
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        for fd in (self._to_chrome, self._from_chrome):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    # -- protocol --------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium over the DevTools pipe")
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 16)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)  # type: ignore[no-any-return]

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})  # type: ignore[no-any-return]
            self._events.append(reply)

    def _wait_event(self, method: str, session: str) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, ev in enumerate(self._events):
                if ev.get("method") == method and ev.get("sessionId") == session:
                    del self._events[i]
                    return
            self._events.append(self._read_message(deadline))

    # -- what the tests use ------------------------------------------------------------
    def open(self, url: str, *, evaluate: dict[str, str], screenshot: Path | None = None,
             full_height: bool = True) -> PageResult:
        """Load ``url``; return console/load errors and the value of each JS expression."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        self._wait_event("Page.loadEventFired", session)
        result = PageResult()
        for key, expr in evaluate.items():
            out = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True},
                            session=session)
            if "exceptionDetails" in out:
                result.errors.append(f"evaluate {key}: {out['exceptionDetails']}")
            result.values[key] = out.get("result", {}).get("value")
        if screenshot is not None:
            params: dict[str, Any] = {"format": "png"}
            if full_height:
                metrics = self.send("Page.getLayoutMetrics", session=session)
                size = metrics.get("cssContentSize") or metrics["contentSize"]
                params["clip"] = {"x": 0, "y": 0, "width": size["width"],
                                  "height": size["height"], "scale": 1}
                params["captureBeyondViewport"] = True
            shot = self.send("Page.captureScreenshot", params, session=session)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        # Drain whatever else arrived, then keep this page's errors.
        for ev in [e for e in self._events if e.get("sessionId") == session]:
            result.errors.extend(_error_of(ev))
        self._events = [e for e in self._events if e.get("sessionId") != session]
        self.send("Target.closeTarget", {"targetId": target})
        return result


def _error_of(ev: dict[str, Any]) -> list[str]:
    method, params = ev.get("method"), ev.get("params") or {}
    if method == "Runtime.exceptionThrown":
        return [f"exception: {params.get('exceptionDetails')}"]
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        return [f"console.{params['type']}: {params.get('args')}"]
    if method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        return [f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}"]
    if method == "Network.requestWillBeSent":
        url = (params.get("request") or {}).get("url", "")
        if not url.startswith(("file:", "data:", "about:")):
            return [f"network request (page must be self-contained): {url}"]
    if method == "Network.loadingFailed":
        return [f"load failed: {params.get('errorText')}"]
    return []
