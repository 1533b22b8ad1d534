"""The Prometheus config builder and file_sd writer (pure; no server started)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from scalelab.errors import MissingDependencyError
from scalelab.procs import prometheus as prom


def test_duration_formats_seconds_and_milliseconds() -> None:
    assert prom.duration(5) == "5s"
    assert prom.duration(0.5) == "500ms"
    assert prom.duration(4.0 * 0.8) == "3200ms"


def test_build_config_has_static_params_and_file_sd(tmp_path: Path) -> None:
    sd = tmp_path / "agent.json"
    config = prom.build_config(
        scrape_interval=5.0,
        static=[
            prom.StaticTarget(job="rabbitmq", address="127.0.0.1:15692",
                              metrics_path="/metrics/detailed",
                              params={"family": ["queue_coarse_metrics",
                                                 "queue_consumer_count"]}),
            prom.StaticTarget(job="exporter", address="127.0.0.1:9999", honor_labels=True),
        ],
        file_sd=[prom.FileSDJob(job="agent", path=sd, refresh_interval=1.0)],
    )
    assert config["global"]["scrape_interval"] == "5s"
    assert config["global"]["scrape_timeout"] == "4s"   # < interval, or Prometheus refuses
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    rabbit = jobs["rabbitmq"]
    assert rabbit["metrics_path"] == "/metrics/detailed"
    assert rabbit["params"] == {"family": ["queue_coarse_metrics", "queue_consumer_count"]}
    assert rabbit["static_configs"][0]["targets"] == ["127.0.0.1:15692"]
    assert jobs["exporter"]["honor_labels"] is True
    assert "honor_labels" not in rabbit
    assert jobs["agent"]["file_sd_configs"] == [{"files": [str(sd)], "refresh_interval": "1s"}]


def test_scrape_interval_follows_timing_profile() -> None:
    config = prom.build_config(scrape_interval=1.0)
    assert config["global"]["scrape_interval"] == "1s"
    assert config["global"]["scrape_timeout"] == "800ms"


def test_write_file_sd_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "sd" / "agent.json"
    group = prom.file_sd_group(address="127.0.0.1:1234", labels={"pod": "agent-x-y"},
                               metrics_path="/stats")
    prom.write_file_sd(path, [group])
    inode = path.stat().st_ino
    assert json.loads(path.read_text()) == [
        {"targets": ["127.0.0.1:1234"],
         "labels": {"pod": "agent-x-y", "__metrics_path__": "/stats"}}
    ]
    prom.write_file_sd(path, [])
    assert json.loads(path.read_text()) == []
    assert path.stat().st_ino != inode          # a new file renamed over the old one
    assert [p.name for p in path.parent.iterdir()] == ["agent.json"]   # no temp files left


def test_missing_binary_names_the_debian_package(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv(prom.BINARY_ENV, str(tmp_path / "no-such-prometheus"))
    with pytest.raises(MissingDependencyError) as err:
        prom.find_binary()
    assert "apt-get install -y prometheus" in str(err.value)


def test_installed_binary_is_found() -> None:
    if not os.access("/usr/bin/prometheus", os.X_OK):
        pytest.skip("Debian package prometheus not installed on this machine")
    assert prom.find_binary().endswith("prometheus")
