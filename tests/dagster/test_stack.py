"""The stack resource when the bring-up cannot start: every scenario of the run fails with
the bring-up's own message (file / field / fix), the bring-up is tried once, nothing runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dagster.conftest import DATA, SKIP_REASON

dg = pytest.importorskip("dagster", reason=SKIP_REASON)

import scalelab.dagster as sd  # noqa: E402  (its import errors are failures)


def test_a_bring_up_that_cannot_start_fails_every_scenario_with_its_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCALELAB_BRING_UP_TIMEOUT", "soon")
    defs = sd.build_definitions([DATA])
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            list(defs.assets),
            selection=[dg.AssetKey(["scenario", "dagster-short"]),
                       dg.AssetKey(["scenario", "dagster-fails"])],
            resources={sd.RESOURCE_KEY: sd.ScalelabStack(backend="local",
                                                         report_dir=str(tmp_path))},
            instance=instance, raise_on_error=False)
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert not result.success
    failures = result.get_step_failure_events()
    assert len(failures) == 2
    for failure in failures:
        text = failure.step_failure_data.user_failure_data.description
        assert "the stack did not come up" in text
        assert "field 'SCALELAB_BRING_UP_TIMEOUT': 'soon' is not a positive number" in text
        assert "fix: e.g. SCALELAB_BRING_UP_TIMEOUT=" in text
    assert sum("scalelab: backend LOCAL" in line for line in logs) == 1  # tried once
    assert not any("bringing the stack up" in line for line in logs)
    assert not list(tmp_path.iterdir())  # no scenario ran, no record
