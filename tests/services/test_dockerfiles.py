"""The Dockerfiles cannot be built here (no Docker engine); keep them in step by reading.

Checks: the CMD module exists and has a __main__, EXPOSE matches the default port, every
ENV the image sets is a variable the service reads, the health check hits the health
endpoint on that variable's port, the user is not root, and requirements.txt pins
exactly the third-party packages services/ imports, at versions inside the ranges the
project declares in pyproject.toml (what the tests run with). The pins are compared with the
ranges, not with what is installed: pyproject says ``>=``, so a fresh machine installs
whatever PyPI serves that day, and an equality check would fail CI on the next upstream
release without anything being wrong with the image.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from services.common.config import AGENT_ENV_VARS, API_ENV_VARS, AgentConfig, ApiConfig

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"
#: import name -> distribution name, for what services/ imports
DISTRIBUTIONS = {"flask": "flask", "werkzeug": "werkzeug", "gunicorn": "gunicorn",
                 "pika": "pika", "prometheus_client": "prometheus-client"}


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _env(instr: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in instr:
        if keyword == "ENV":
            env.update(dict(part.split("=", 1) for part in rest.split()))
    return env


CASES = [
    ("api", "services.api", ApiConfig().port, "PORT", API_ENV_VARS),
    ("agent", "services.agent", AgentConfig().metrics_port, "METRICS_PORT", AGENT_ENV_VARS),
]


@pytest.mark.parametrize(("name", "module", "port", "port_var", "env_vars"), CASES,
                         ids=[c[0] for c in CASES])
def test_dockerfile_matches_the_entry_point(name: str, module: str, port: int, port_var: str,
                                            env_vars: tuple[str, ...]) -> None:
    instr = _instructions(SERVICES / name / "Dockerfile")
    keywords = [k for k, _ in instr]
    # the image is the last stage (the api's has a Node stage before it that builds the page)
    assert [rest for keyword, rest in instr if keyword == "FROM"][-1] == "python:3.11-slim"
    cmd = json.loads(dict(instr)["CMD"])
    assert cmd == ["python", "-m", module]
    assert importlib.util.find_spec(f"{module}.__main__") is not None
    assert dict(instr)["EXPOSE"] == str(port)
    env = _env(instr)
    assert set(env) - {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR",
                       "PIP_DISABLE_PIP_VERSION_CHECK"} <= set(env_vars)
    assert env[port_var] == str(port)
    health = dict(instr)["HEALTHCHECK"]
    assert "/healthz" in health and port_var in health
    user = dict(instr)["USER"]
    assert user not in ("root", "0")
    assert keywords.index("USER") < keywords.index("CMD")
    readme = (SERVICES / "README.md").read_text()
    for var in env_vars:
        assert f"`{var}`" in readme, f"{var} is not documented in services/README.md"


def test_from_env_reads_exactly_the_documented_variables() -> None:
    class Spy(dict[str, str]):
        def __init__(self) -> None:
            super().__init__()
            self.asked: set[str] = set()

        def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
            self.asked.add(key)
            return super().get(key, default)

    for config, names in ((ApiConfig, API_ENV_VARS), (AgentConfig, AGENT_ENV_VARS)):
        spy = Spy()
        config.from_env(spy)
        assert spy.asked == set(names)


def _third_party_imports() -> set[str]:
    names: set[str] = set()
    for path in SERVICES.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "__future__"}


#: Pinned distributions pyproject.toml does not name (services/ imports them, they come with
#: another pin): {name: (range, parent, parent's pinned version)}. The range is read from that
#: version's Requires-Dist once, here, not from PyPI at test time.
INDIRECT = {"werkzeug": ("werkzeug>=3.1.0", "flask", "3.1.3")}


def read_pins(text: str) -> dict[str, Version]:
    """requirements.txt as {canonical name: pinned version}; anything but ``name==X.Y`` fails."""
    pins: dict[str, Version] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#")[0].strip()
        if not line:
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as err:
            raise AssertionError(f"requirements.txt line {number}: {err}") from err
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version, (
            f"requirements.txt line {number}: '{line}' is not pinned (write name==X.Y.Z)")
        assert not req.extras and req.marker is None, f"line {number}: '{line}': pin only"
        pins[canonicalize_name(req.name)] = Version(specs[0].version)
    return pins


def project_ranges(pyproject: str) -> dict[str, Requirement]:
    """The runtime dependencies of pyproject.toml as {canonical name: requirement}."""
    deps = tomllib.loads(pyproject)["project"]["dependencies"]
    return {canonicalize_name(r.name): r for r in map(Requirement, deps)}


def pin_violations(pins: dict[str, Version], ranges: dict[str, Requirement]) -> list[str]:
    """Every pin outside the range the project (or, for INDIRECT, its parent) declares."""
    out = []
    for dist, version in sorted(pins.items()):
        if dist in ranges:
            spec, source = ranges[dist].specifier, "pyproject.toml"
        elif dist in INDIRECT:
            range_, parent, parent_version = INDIRECT[dist]
            spec = Requirement(range_).specifier
            source = f"{parent} {parent_version}'s Requires-Dist"
        else:
            out.append(f"{dist}=={version}: no range for it in pyproject.toml")
            continue
        if not spec.contains(version, prereleases=True):
            out.append(f"{dist}=={version} is outside {dist}{spec} ({source})")
    return out


def test_requirements_pin_what_services_import() -> None:
    imported = _third_party_imports() - {"services"}
    assert "scalelab" not in imported  # the image ships services/ only
    assert imported == set(DISTRIBUTIONS)
    pins = read_pins((SERVICES / "requirements.txt").read_text())
    assert set(pins) == {canonicalize_name(d) for d in DISTRIBUTIONS.values()}


def test_pins_fall_inside_the_project_ranges() -> None:
    """The image runs the versions the tests may run with: each pin satisfies pyproject."""
    pins = read_pins((SERVICES / "requirements.txt").read_text())
    ranges = project_ranges((ROOT / "pyproject.toml").read_text())
    assert pin_violations(pins, ranges) == []
    # INDIRECT records one version's metadata: bumping that pin means re-reading it.
    for dist, (_, parent, parent_version) in INDIRECT.items():
        assert dist not in ranges, f"{dist} is now in pyproject.toml: drop it from INDIRECT"
        assert pins[parent] == Version(parent_version), (
            f"{parent} is pinned at {pins[parent]}: re-read its Requires-Dist for {dist} "
            "and update INDIRECT")


@pytest.mark.parametrize(("line", "problem"), [
    ("flask==2.3.3", "flask==2.3.3 is outside flask>=3.0 (pyproject.toml)"),
    ("pika==1.2.1", "pika==1.2.1 is outside pika>=1.3 (pyproject.toml)"),
    ("werkzeug==3.0.6", "werkzeug==3.0.6 is outside werkzeug>=3.1.0 (flask 3.1.3's"),
    ("requests-toolbelt==1.0.0", "requests-toolbelt==1.0.0: no range for it in pyproject"),
])
def test_a_pin_outside_the_range_is_reported(tmp_path: Path, line: str, problem: str) -> None:
    """The check above can fail: a copy of requirements.txt with one pin moved out."""
    dist = line.split("==")[0]
    kept = [raw for raw in (SERVICES / "requirements.txt").read_text().splitlines()
            if not raw.startswith(f"{dist}==")]
    copy = tmp_path / "requirements.txt"
    copy.write_text("\n".join([*kept, line]) + "\n")
    ranges = project_ranges((ROOT / "pyproject.toml").read_text())
    problems = pin_violations(read_pins(copy.read_text()), ranges)
    assert len(problems) == 1 and problems[0].startswith(problem), problems


@pytest.mark.parametrize("line", ["flask>=3.0", "flask==3.*", "flask", "flask[async]==3.1.3"])
def test_a_line_that_is_not_a_pin_is_refused(line: str) -> None:
    with pytest.raises(AssertionError, match="line 1"):
        read_pins(line + "\n")


def test_a_range_raised_past_a_pin_is_reported(tmp_path: Path) -> None:
    """The other side: pyproject.toml moves on (gunicorn>=999) and the image's pin stays."""
    pyproject, found = re.subn(r'"gunicorn[^"]*"', '"gunicorn>=999"',
                               (ROOT / "pyproject.toml").read_text())
    assert found == 1
    copy = tmp_path / "pyproject.toml"
    copy.write_text(pyproject)
    pins = read_pins((SERVICES / "requirements.txt").read_text())
    problems = pin_violations(pins, project_ranges(copy.read_text()))
    assert problems == [f"gunicorn=={pins['gunicorn']} is outside gunicorn>=999 (pyproject.toml)"]
