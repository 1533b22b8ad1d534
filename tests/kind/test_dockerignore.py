"""The Docker build context: ``.dockerignore`` keeps what the Dockerfiles COPY, drops the rest.

Offline (no Docker engine here): the Dockerfiles are parsed with ``dockerfile`` (BuildKit's
own Go parser) and ``.dockerignore`` is matched with the Docker SDK's ``PatternMatcher``
(docker-py, ``docker/utils/build.py``), which implements the engine's rules: patterns are
anchored at the context root, a pattern matching a parent directory matches what is under
it, and the last matching line (``!`` re-includes) wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import dockerfile
import pytest
from docker.utils.build import PatternMatcher

from scalelab import paths
from scalelab.backends.cluster.settings import IMAGES

DOCKERIGNORE = paths.ROOT / ".dockerignore"
#: Never sent to the builder: big, private, or generated (a .venv alone is hundreds of MB).
MUST_BE_EXCLUDED = [
    ".git/HEAD", ".venv/bin/python", ".tox/py/bin/python", "reports/index.html",
    ".scalelab/cluster/scalelab/kubeconfig", ".pytest-kind/scalelab/kubeconfig",
    "node_modules/x/index.js", "tests/conftest.py", "docs/kind.md", "experiments/conftest.py",
    ".ci/venv/bin/python", ".mypy_cache/3.11/x.json",
    "services/api/__pycache__/app.cpython-311.pyc", "services/agent/worker.pyc",
]


def ignore_patterns(text: str) -> list[str]:
    """The pattern lines of a .dockerignore, as docker-py's ``build`` reads them."""
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def copied_sources(dockerfile_path: Path) -> list[str]:
    """Context paths a Dockerfile's COPY/ADD read (not ``--from`` a stage or image)."""
    sources = []
    for cmd in dockerfile.parse_file(str(dockerfile_path)):
        if cmd.cmd.upper() not in ("COPY", "ADD") or cmd.heredocs:
            continue
        if any(flag.startswith("--from") for flag in cmd.flags):
            continue
        sources += list(cmd.value[:-1])
    return sources


def files_under(root: Path, source: str) -> list[str]:
    """The files a COPY source names, relative to the context root (caches left out)."""
    found = sorted(root.glob(source.rstrip("/"))) if source.strip("/") else [root]
    out = []
    for path in found:
        walk = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        out += [p.relative_to(root).as_posix() for p in walk
                if "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return out


def context_problems(*, root: Path, ignore_text: str, dockerfiles: Iterable[Path],
                     must_be_excluded: Iterable[str] = MUST_BE_EXCLUDED) -> list[str]:
    """What is wrong with a build context: COPY sources missing or excluded, private or
    generated paths included, top-level entries no Dockerfile needs. Empty when fine."""
    matcher = PatternMatcher(ignore_patterns(ignore_text))
    problems = []
    needed: set[str] = set()
    for path in dockerfiles:
        for source in copied_sources(path):
            files = files_under(root, source)
            if not files:
                problems.append(f"{path.name}: COPY {source}: nothing in the context matches")
            needed |= {source.strip("/").split("/")[0]}
            problems += [f"{path.relative_to(root)}: COPY {source}: {f} is excluded"
                         for f in files if matcher.matches(f)]
    problems += [f"{p} is sent to the builder" for p in must_be_excluded
                 if not matcher.matches(p)]
    problems += [f"{entry.name} is sent to the builder but no Dockerfile COPYs it"
                 for entry in sorted(root.iterdir())
                 if entry.name not in needed and entry.name != ".dockerignore"
                 and not matcher.matches(entry.name)]
    return problems


def dockerfiles() -> list[Path]:
    return [dockerfile_path for _, dockerfile_path in IMAGES.values()]


def test_the_dockerfiles_are_the_ones_the_backend_builds_and_copy_services() -> None:
    assert sorted(p.relative_to(paths.ROOT).as_posix() for p in dockerfiles()) == \
        ["services/agent/Dockerfile", "services/api/Dockerfile"]
    api_extra = [  # the page's build stage and the dashboards its panels are read from
        "services/frontend/package.json", "services/frontend/package-lock.json",
        "services/frontend/", "manifests/grafana/"]
    for path in dockerfiles():
        extra = api_extra if path.parent.name == "api" else []
        assert sorted(copied_sources(path)) == sorted(
            ["services/requirements.txt", "services/", *extra])


def test_dockerignore_keeps_every_copied_path_and_drops_the_rest() -> None:
    assert context_problems(root=paths.ROOT, ignore_text=DOCKERIGNORE.read_text(),
                            dockerfiles=dockerfiles()) == []
    # The services' code is really in: every module the images run.
    matcher = PatternMatcher(ignore_patterns(DOCKERIGNORE.read_text()))
    for module in ("services/api/app.py", "services/agent/worker.py",
                   "services/common/config.py", "services/requirements.txt"):
        assert (paths.ROOT / module).is_file()
        assert not matcher.matches(module), module


@pytest.mark.parametrize(("broken", "expected"), [
    ("*\n!services/\nservices/requirements.txt\n",
     "COPY services/requirements.txt: services/requirements.txt is excluded"),
    ("*\n!services/\n**/common\n", "COPY services/: services/common/config.py is excluded"),
    ("*\n", "COPY services/: services/api/app.py is excluded"),
    ("*\n!services/\n!.venv\n", ".venv/bin/python is sent to the builder"),
    ("!services/\n.git\n", "reports/index.html is sent to the builder"),
    ("*\n!services/\n!scalelab\n", "scalelab is sent to the builder but no Dockerfile COPYs"),
    ("# everything\n", ".git/HEAD is sent to the builder"),
], ids=["requirements", "a-package", "all", "venv", "denylist-gap", "harness", "empty"])
def test_a_broken_dockerignore_is_caught(tmp_path: Path, broken: str, expected: str) -> None:
    problems = context_problems(root=paths.ROOT, ignore_text=broken, dockerfiles=dockerfiles())
    assert any(expected in p for p in problems), problems


def test_a_copy_of_a_missing_path_is_caught(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nCOPY --chown=1:1 service/ /app/\n"
                   "COPY --from=build /out /out\n")
    assert copied_sources(bad) == ["service/"]
    problems = context_problems(root=paths.ROOT, ignore_text=DOCKERIGNORE.read_text(),
                                dockerfiles=[bad], must_be_excluded=[])
    assert any("COPY service/: nothing in the context matches" in p for p in problems), \
        problems
