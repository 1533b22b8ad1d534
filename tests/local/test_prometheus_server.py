"""A real private Prometheus: readiness, file_sd pickup, fail-fast on a taken port."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from scalelab.errors import ProcessStartError
from scalelab.procs import prometheus as prom
from scalelab.waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[prom.PrometheusServer, Path]]:
    sd = tmp_path / "sd" / "pods.json"
    prom.write_file_sd(sd, [])
    config = prom.build_config(scrape_interval=1.0,
                               file_sd=[prom.FileSDJob(job="pods", path=sd)])
    srv = prom.PrometheusServer(config=config, workdir=tmp_path / "prom")
    srv.start()
    yield srv, sd
    srv.stop()
    assert not srv.running()


def _targets(url: str) -> list[dict[str, object]]:
    data = requests.get(f"{url}/api/v1/targets", timeout=5).json()
    return list(data["data"]["activeTargets"])


def test_file_sd_targets_are_picked_up_and_dropped(
        server: tuple[prom.PrometheusServer, Path]) -> None:
    srv, sd = server
    assert requests.get(f"{srv.url}/-/ready", timeout=5).status_code == 200
    # Prometheus scrapes itself as a "pod": a real target that answers /metrics
    prom.write_file_sd(sd, [prom.file_sd_group(
        address=f"127.0.0.1:{srv.port}", labels={"pod": "agent-abc-12345", "namespace": "x"})])
    started = time.monotonic()
    found = wait_for(lambda: [t for t in _targets(srv.url) if t["health"] == "up"],
                     lambda ts: len(ts) == 1, what="file_sd target up", expected="1 target",
                     timeout=20, interval=0.2)
    print(f"file_sd pickup + first scrape: {time.monotonic() - started:.1f}s")
    assert found[0]["labels"]["pod"] == "agent-abc-12345"  # type: ignore[index]
    prom.write_file_sd(sd, [])
    wait_for(lambda: _targets(srv.url), lambda ts: ts == [], what="target dropped",
             expected="no targets", timeout=20, interval=0.2)


def test_taken_port_fails_fast_with_log_tail(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        srv = prom.PrometheusServer(config=prom.build_config(scrape_interval=5.0),
                                    workdir=tmp_path, port=port, startup_timeout=60)
        started = time.monotonic()
        with pytest.raises(ProcessStartError) as err:
            srv.start()
        assert time.monotonic() - started < 15     # not the 60 s timeout
    assert "address already in use" in str(err.value)
    assert not srv.running()


def test_version() -> None:
    version = prom.PrometheusServer(config={}, workdir=Path()).version()
    assert version[0].isdigit() and "." in version
