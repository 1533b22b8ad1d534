"""The Dockerfiles cannot be built here (no Docker engine); keep them in step by reading.

Checks: the CMD module exists and has a __main__, EXPOSE matches the default port, every
ENV the image sets is a variable the service reads, the health check hits the health
endpoint on that variable's port, the user is not root, and requirements.txt pins
exactly the third-party packages services/ imports, at the versions the tests ran with.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from services.common.config import AGENT_ENV_VARS, API_ENV_VARS, AgentConfig, ApiConfig

SERVICES = Path(__file__).resolve().parents[2] / "services"
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
    assert instr[0] == ("FROM", "python:3.11-slim")
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


def test_requirements_pin_what_services_import() -> None:
    imported = _third_party_imports() - {"services"}
    assert "scalelab" not in imported  # the image ships services/ only
    assert imported == set(DISTRIBUTIONS)
    pins = {}
    for line in (SERVICES / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            dist, sep, version = line.partition("==")
            assert sep == "==", f"not pinned: {line}"
            pins[dist.lower()] = version
    assert set(pins) == set(DISTRIBUTIONS.values())
    for dist, version in pins.items():
        assert importlib.metadata.version(dist) == version, f"{dist}: tests ran another version"
