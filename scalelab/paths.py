"""Where the project's data lives. The harness runs from a checkout (editable install)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
SCALING_MANIFESTS = MANIFESTS / "scaling"
SCENARIOS = ROOT / "experiments" / "scenarios"
REPORTS = ROOT / "reports"
SHARED_REFERENCE = ROOT.parent / "shared" / "reference"
