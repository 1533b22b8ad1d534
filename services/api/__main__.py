"""``python -m services.api``: the app under gunicorn (one worker, gthread threads).

One worker keeps the Prometheus counters in one process (no multiprocess mode needed);
threads give the concurrency, each with its own AMQP connection.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from prometheus_client import disable_created_metrics

from services.api.app import create_app
from services.api.panels import PanelError
from services.common.config import ApiConfig, ConfigError


class GunicornApp(BaseApplication):  # type: ignore[misc]
    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def main() -> int:
    try:
        config = ApiConfig.from_env(os.environ)
    except ConfigError as err:
        print(f"scalelab api: {err}", file=sys.stderr)
        return 2
    disable_created_metrics()  # *_created series: noise for every dashboard
    options = {
        "bind": f"{config.bind}:{config.port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": config.threads,
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "scalelab-api",
    }
    try:
        app = create_app(config)
    except PanelError as err:  # the live view's dashboards: say which and how to fix
        print(f"scalelab api: {err}", file=sys.stderr)
        return 2
    GunicornApp(app, options).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
