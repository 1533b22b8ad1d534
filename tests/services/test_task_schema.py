"""Task schema and env config, without processes: the agent re-validates what the API built."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.config import AgentConfig, ApiConfig, ConfigError
from services.common.tasks import TaskError, make_request, parse_request, validate_submission

ms = st.integers(min_value=1, max_value=60_000)
submissions = st.one_of(
    st.builds(lambda c: {"tool": "cpu", "arguments": {"cpu_ms": c}}, ms),
    st.builds(lambda i: {"tool": "io", "arguments": {"io_ms": i}}, ms),
    st.builds(lambda c, i: {"tool": "mixed", "arguments": {"cpu_ms": c, "io_ms": i}}, ms, ms),
)


@given(submissions)
def test_what_the_api_accepts_the_agent_accepts(body: dict[str, object]) -> None:
    tool, arguments = validate_submission(body)
    wire = json.dumps(make_request("id-1", tool, arguments, enqueued_at=12.5)).encode()
    assert parse_request(wire) == ("id-1", tool, arguments, 12.5)


@given(st.integers().filter(lambda n: not 0 < n <= 60_000))
def test_out_of_range_is_refused_naming_the_field(n: int) -> None:
    with pytest.raises(TaskError) as info:
        validate_submission({"tool": "cpu", "arguments": {"cpu_ms": n}})
    assert info.value.field == "arguments.cpu_ms"


@pytest.mark.parametrize(("body", "reason", "field"), [
    (b"\xff\xfe", "bad_json", "body"),
    (b'{"jsonrpc": "1.0"}', "bad_envelope", "jsonrpc"),
    (b'{"jsonrpc": "2.0", "id": true, "method": "tools/call"}', "bad_envelope", "id"),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": []}', "bad_envelope",
     "params"),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x"}}',
     "bad_tool", "params.name"),
])
def test_agent_side_rejections_carry_reason_and_field(body: bytes, reason: str,
                                                      field: str) -> None:
    with pytest.raises(TaskError) as info:
        parse_request(body)
    assert (info.value.reason, info.value.field) == (reason, field)


@pytest.mark.parametrize(("config", "env", "variable"), [
    (ApiConfig, {"PORT": "eighty"}, "PORT"),
    (ApiConfig, {"PORT": "70000"}, "PORT"),
    (ApiConfig, {"AMQP_URL": "http://broker"}, "AMQP_URL"),
    (ApiConfig, {"BATCH_MAX": "0"}, "BATCH_MAX"),
    (AgentConfig, {"PREFETCH": "-1"}, "PREFETCH"),
    (AgentConfig, {"METRICS_PORT": "x"}, "METRICS_PORT"),
])
def test_bad_env_names_the_variable_and_the_fix(config: type[ApiConfig] | type[AgentConfig],
                                                env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.from_env(env)
    assert info.value.variable == variable
    assert variable in str(info.value) and "fix:" in str(info.value)


def test_defaults_match_the_issue() -> None:
    api, agent = ApiConfig.from_env({}), AgentConfig.from_env({"POD_NAME": "p"})
    assert (api.port, api.bind, api.task_queue, api.batch_max) == (
        8080, "127.0.0.1", "agent-tasks", 100)
    assert (agent.prefetch, agent.metrics_port, agent.results_queue, agent.pod_name) == (
        1, 9100, "agent-results", "p")
    assert api.amqp_url == agent.amqp_url == "amqp://guest:guest@127.0.0.1:5672/%2F"
