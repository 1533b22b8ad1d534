"""One page in headless Chromium that a test can type into, click and read, on top of the
suite's DevTools-pipe driver (tests/report/chromium.py): no WebDriver, no download.

Console errors, uncaught exceptions and failed loads are collected for the whole life of
the page, so a test can fail on any of them.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from tests.report.chromium import Chromium, _error_of


class Page:
    def __init__(self, browser: Chromium, url: str, *, width: int = 1280,
                 height: int = 720) -> None:
        self.browser = browser
        self.target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.send("Target.attachToTarget",
                                    {"targetId": self.target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        self.send("Page.navigate", {"url": url})
        browser._wait_event("Page.loadEventFired", self.session)

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.send(method, params, session=self.session)

    def errors(self) -> list[str]:
        """Console errors, exceptions and failed loads seen so far (network requests to
        the page's own origin are the point here, so those are not counted)."""
        out = []
        for ev in self.browser._events:
            if ev.get("sessionId") == self.session and ev.get("method") != \
                    "Network.requestWillBeSent":
                out += _error_of(ev)
        return out

    def eval(self, expression: str) -> Any:
        out = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": True})
        if "exceptionDetails" in out:
            raise AssertionError(f"{expression}: {out['exceptionDetails']}")
        return out.get("result", {}).get("value")

    def wait(self, expression: str, *, what: str, timeout: float = 20.0,
             interval: float = 0.25) -> Any:
        """Poll a JS expression until it is truthy; fail naming what, expected, last value."""
        started = time.monotonic()
        value = None
        while time.monotonic() - started < timeout:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"{what}: expected a true value of {expression}, last {value!r} "
                             f"after {time.monotonic() - started:.1f} s")

    def metric(self, name: str) -> str | None:
        """The text of the element carrying data-metric=name (None when absent)."""
        return self.eval(  # type: ignore[no-any-return]
            f"document.querySelector('[data-metric={json.dumps(name)}]')?.textContent ?? null")

    def fill(self, name: str, value: str) -> None:
        """Type into the input or select named ``name`` as React sees a user's input."""
        self.eval(f"""(() => {{
            const el = document.querySelector('[name={json.dumps(name)}]');
            const select = el.tagName === 'SELECT';
            const proto = select ? HTMLSelectElement : HTMLInputElement;
            Object.getOwnPropertyDescriptor(proto.prototype, 'value')
                .set.call(el, {json.dumps(value)});
            el.dispatchEvent(new Event(select ? 'change' : 'input', {{bubbles: true}}));
        }})()""")

    def click(self, name: str) -> None:
        self.eval(f"document.querySelector('[name={json.dumps(name)}]').click()")

    def screenshot(self, path: Path) -> None:
        shot = self.send("Page.captureScreenshot", {"format": "png"})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        self.browser.send("Target.closeTarget", {"targetId": self.target})
