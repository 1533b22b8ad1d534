"""The services' environment: a bad number names the variable, what is wrong and the range."""

from __future__ import annotations

import pytest

from services.common.config import AgentConfig, ApiConfig, ConfigError


@pytest.mark.parametrize(("env", "words"), [
    ({"PREFETCH": "many"}, "environment variable PREFETCH: 'many' is not an integer\n"
                           "  fix: set PREFETCH to an integer in [1, 1000]"),
    ({"PREFETCH": "0"}, "environment variable PREFETCH: 0 is out of range\n"
                        "  fix: set PREFETCH to an integer in [1, 1000]"),
])
def test_a_bad_integer(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError) as err:
        AgentConfig.from_env(env)
    assert str(err.value) == words
    assert err.value.variable == "PREFETCH"


def test_integers_and_defaults() -> None:
    assert AgentConfig.from_env({"PREFETCH": "7"}).prefetch == 7
    assert AgentConfig.from_env({}).prefetch == 1
    assert isinstance(AgentConfig.from_env({"PREFETCH": "7"}).prefetch, int)


def test_a_bad_number_of_seconds() -> None:
    with pytest.raises(ConfigError, match=r"SCRAPE_INTERVAL: 'soon' is not a number\n  fix: "
                                          r"set SCRAPE_INTERVAL to a number of seconds in"):
        ApiConfig.from_env({"SCRAPE_INTERVAL": "soon"})
