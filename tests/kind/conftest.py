"""Fixtures shared by the cluster-backend contract tests (no cluster: see each test)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from scalelab.backends.cluster.kube import KubeApi
from tests.kind.test_kube_api import FakeApiServer


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """Empty executables named kind, kubectl, helm and docker: what ``which`` finds."""
    d = tmp_path / "bin"
    d.mkdir()
    for name in ("kind", "kubectl", "helm", "docker"):
        (d / name).touch(mode=0o755)
    return d


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[tuple[KubeApi, FakeApiServer]]:
    """FAKE AT THE CLUSTER SEAM: a small API server on 127.0.0.1 answering recorded JSON,
    reached through the real ``kubernetes`` client with a kubeconfig pointing at it."""
    server = FakeApiServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {
            "server": f"http://127.0.0.1:{server.server_port}"}}],
        "users": [{"name": "fake", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}]}))
    try:
        yield KubeApi(kubeconfig=kubeconfig, context="fake", request_timeout=5), server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
