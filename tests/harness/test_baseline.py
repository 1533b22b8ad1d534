"""The replicas a scenario starts from come from the agent Deployment, not a constant."""

from __future__ import annotations

from types import SimpleNamespace

import yaml

from scalelab.experiment import ExperimentSettings, baseline_replicas
from scalelab.paths import ROOT
from scalelab.settings import StackSettings


def _backend(**stack: object) -> SimpleNamespace:
    return SimpleNamespace(settings=StackSettings(**stack))  # type: ignore[arg-type]


def test_baseline_is_the_manifest_spec_unless_overridden() -> None:
    docs = yaml.safe_load_all((ROOT / "manifests" / "base" / "agent.yaml").read_text())
    spec = next(d for d in docs if d and d.get("kind") == "Deployment")["spec"]["replicas"]
    run = ExperimentSettings(run_id="r")
    assert baseline_replicas(_backend(), run) == spec  # type: ignore[arg-type]
    assert baseline_replicas(_backend(agent_replicas=3), run) == 3  # type: ignore[arg-type]
    pinned = ExperimentSettings(run_id="r", baseline_replicas=1)
    assert baseline_replicas(_backend(agent_replicas=3), pinned) == 1  # type: ignore[arg-type]
