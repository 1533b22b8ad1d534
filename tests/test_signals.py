"""SIGTERM/SIGINT as KeyboardInterrupt, once (``scalelab.signals``), in ``scalelab up`` and the
pytest plugin. Real signals to this process; the end-to-end checks (a real stack torn down
after SIGTERM, a second SIGTERM during the teardown) are in tests/local/test_teardown.py."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType, SimpleNamespace
from typing import Any

import pytest

from scalelab import pytest_options
from scalelab.signals import interrupt_on


@pytest.fixture
def sigterm_default() -> Iterator[None]:
    """SIGTERM at its default for the test (this session's own handler is put back after)."""
    session = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, session)


def _swallowed(signum: int) -> None:
    """Send ``signum`` to this process; fail the test (not the whole session) if it
    interrupts again."""
    try:
        signal.raise_signal(signum)
    except KeyboardInterrupt:
        pytest.fail(f"signal {signum} interrupted a second time: not one-shot")


def test_the_first_signal_interrupts_and_a_second_cannot_break_into_the_teardown(
        sigterm_default: None) -> None:
    torn_down = []
    with interrupt_on(signal.SIGTERM):
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)
        with pytest.raises(KeyboardInterrupt, match="^signal 15$"):
            try:
                signal.raise_signal(signal.SIGTERM)
                pytest.fail("no KeyboardInterrupt")
            finally:
                _swallowed(signal.SIGTERM)   # lands in the teardown the first one began
                torn_down.append(True)
        _swallowed(signal.SIGTERM)
    assert torn_down == [True]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_one_shot_across_the_signals_it_handles(sigterm_default: None) -> None:
    """``scalelab up``: Ctrl-C after a SIGTERM (or the reverse) does not abort the teardown."""
    before_int = signal.getsignal(signal.SIGINT)
    with interrupt_on(signal.SIGTERM, signal.SIGINT):
        with pytest.raises(KeyboardInterrupt, match="^signal 2$"):
            signal.raise_signal(signal.SIGINT)
        _swallowed(signal.SIGTERM)
        _swallowed(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before_int
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_the_previous_handlers_come_back_whatever_the_block_raises(
        sigterm_default: None) -> None:
    seen: list[int] = []

    def own(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    signal.signal(signal.SIGTERM, own)
    with pytest.raises(RuntimeError), interrupt_on(signal.SIGTERM):
        raise RuntimeError("boom")
    assert signal.getsignal(signal.SIGTERM) is own
    signal.raise_signal(signal.SIGTERM)
    assert seen == [signal.SIGTERM]


def _config() -> Any:
    return SimpleNamespace(stash=pytest.Stash())


def test_the_pytest_plugin_turns_sigterm_into_an_interrupt_for_the_session(
        sigterm_default: None) -> None:
    config = _config()
    pytest_options.pytest_configure(config)
    with pytest.raises(KeyboardInterrupt, match="^signal 15$"):
        signal.raise_signal(signal.SIGTERM)
    _swallowed(signal.SIGTERM)                     # the session's teardown goes on
    pytest_options.pytest_unconfigure(config)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    pytest_options.pytest_unconfigure(config)      # twice: nothing more to restore


def test_the_pytest_plugin_leaves_a_runners_own_handler_alone(sigterm_default: None) -> None:
    def runners(signum: int, frame: FrameType | None) -> None:
        pass

    signal.signal(signal.SIGTERM, runners)
    outer, inner = _config(), _config()
    pytest_options.pytest_configure(outer)
    pytest_options.pytest_unconfigure(outer)
    assert signal.getsignal(signal.SIGTERM) is runners
    # a session inside another (pytester) neither takes nor restores the outer's handler
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    pytest_options.pytest_configure(outer)
    installed = signal.getsignal(signal.SIGTERM)
    pytest_options.pytest_configure(inner)
    pytest_options.pytest_unconfigure(inner)
    assert signal.getsignal(signal.SIGTERM) is installed
    pytest_options.pytest_unconfigure(outer)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
