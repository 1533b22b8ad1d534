"""One exception tree. Every message says what went wrong *and* how to fix it.

Modelled on esrally's exception hierarchy: callers catch ``ScalelabError`` at the
edge (CLI, pytest driver) and print ``str(err)``; nothing below needs to format.
"""

from __future__ import annotations


class ScalelabError(Exception):
    """Base of every error scalelab raises on purpose."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(message if fix is None else f"{message}\n  fix: {fix}")


class ConfigError(ScalelabError):
    """Bad input (scenario, manifest, option): raised before anything starts."""

    def __init__(
        self, message: str, *, file: str | None = None, field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.file = file
        self.field = field
        where = ""
        if file:
            where += f"{file}: "
        if field:
            where += f"field '{field}': "
        super().__init__(where + message, fix=fix)


class MissingDependencyError(ScalelabError):
    """A binary or package the backend needs is not installed."""


class ProcessStartError(ScalelabError):
    """A process exited or never became ready; the message carries its log tail."""


class WaitTimeout(ScalelabError):
    """A wait ran out. The message names what was expected, what was seen and for how long."""

    def __init__(self, what: str, *, expected: object, actual: object, elapsed: float,
                 fix: str | None = None) -> None:
        self.expected = expected
        self.actual = actual
        self.elapsed = elapsed
        super().__init__(
            f"timed out waiting for {what}: expected {expected}, saw {actual} "
            f"after {elapsed:.1f}s",
            fix=fix,
        )


class BackendError(ScalelabError):
    """The backend failed while the stack was up (apply, scale, query)."""


class ExperimentError(ScalelabError):
    """The experiment could not run to the end (not a failed expectation)."""
