"""The replicas a scenario starts from come from the backend's agent Deployment, not a
constant, and every backend answers from the manifests it deploys."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from scalelab.backends.base import Backend
from scalelab.backends.cluster.kind import KindBackend
from scalelab.backends.cluster.settings import ClusterSettings
from scalelab.backends.local.backend import LocalBackend
from scalelab.errors import BackendError, ConfigError
from scalelab.experiment import ExperimentSettings, baseline_replicas
from scalelab.paths import ROOT
from scalelab.settings import AGENT_DEPLOYMENT, StackSettings


def _spec_replicas(path: Path, name: str = AGENT_DEPLOYMENT) -> int:
    docs = yaml.safe_load_all(path.read_text())
    doc = next(d for d in docs if d and d.get("kind") == "Deployment"
               and d["metadata"]["name"] == name)
    return int(doc["spec"]["replicas"])


def _local(tmp_path: Path, **stack: object) -> LocalBackend:
    return LocalBackend(settings=StackSettings(**stack))  # type: ignore[arg-type]


def _kind(tmp_path: Path, **stack: object) -> KindBackend:
    """Contract test, not a cluster: the backend is built, never brought up."""
    return KindBackend(settings=StackSettings(**stack),  # type: ignore[arg-type]
                       cluster=ClusterSettings(work_dir=tmp_path / "w"),
                       cluster_factory=lambda **kw: None)


@pytest.mark.parametrize("make", [_local, _kind], ids=["local", "kind"])
def test_baseline_is_the_manifest_spec_unless_overridden(
        tmp_path: Path, make: Callable[..., Backend]) -> None:
    spec = _spec_replicas(ROOT / "manifests" / "base" / "agent.yaml")
    run = ExperimentSettings(run_id="r")
    assert baseline_replicas(make(tmp_path), run) == spec
    assert baseline_replicas(make(tmp_path, agent_replicas=spec + 3), run) == spec + 3
    pinned = ExperimentSettings(run_id="r", baseline_replicas=1)
    assert baseline_replicas(make(tmp_path, agent_replicas=3), pinned) == 1


def test_the_local_backend_reads_its_own_manifests(tmp_path: Path) -> None:
    """A LocalBackend on other manifests starts scenarios from their replicas."""
    base = ROOT / "manifests" / "base"
    other = tmp_path / "manifests"
    other.mkdir()
    for path in base.glob("*.yaml"):
        text = path.read_text()
        if path.name == "agent.yaml":
            spec = _spec_replicas(path)
            text = text.replace(f"replicas: {spec}", f"replicas: {spec + 5}", 1)
        (other / path.name).write_text(text)
    backend = LocalBackend(settings=StackSettings(), manifests=other)
    assert backend.baseline_replicas(AGENT_DEPLOYMENT) == spec + 5
    with pytest.raises(ConfigError, match="nope.yaml: cannot read manifest"):
        backend.baseline_replicas("nope")


def test_a_backend_without_a_baseline_says_so() -> None:
    class Bare(Backend):
        name = "bare"
        up = down = replicas = scaling_events = diagnostics = None  # type: ignore[assignment]
        apply_scaling = remove_scaling = scale = purge_queue = None  # type: ignore[assignment]
        endpoints = None  # type: ignore[assignment]

    with pytest.raises(BackendError, match="does not know agent's baseline"):
        baseline_replicas(Bare(settings=StackSettings()), ExperimentSettings(run_id="r"))
