"""``python -m services.agent``: one worker plus its metrics/health server.

SIGTERM (Kubernetes' pod termination) finishes and acks the task in hand, then exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

from prometheus_client import disable_created_metrics

from services.agent.metrics import AgentMetrics, make_app, serve
from services.agent.worker import Worker
from services.common.config import AgentConfig, ConfigError


def main() -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s agent %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)
    try:
        config = AgentConfig.from_env(os.environ)
    except ConfigError as err:
        print(f"scalelab agent: {err}", file=sys.stderr)
        return 2
    disable_created_metrics()  # *_created series: noise for every dashboard
    metrics = AgentMetrics.create()
    worker = Worker(config=config, metrics=metrics)
    try:
        server = serve(make_app(metrics.registry, worker.health),
                       host=config.metrics_bind, port=config.metrics_port)
    except OSError as err:
        print(f"scalelab agent: cannot serve metrics on {config.metrics_bind}:"
              f"{config.metrics_port}: {err}\n  fix: set METRICS_PORT to a free port",
              file=sys.stderr)
        return 2

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("signal %d: finishing the task in hand", signum)
        worker.request_stop()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        return worker.run()
    finally:
        server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
