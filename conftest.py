"""Root conftest: registers scalelab's pytest options (see ``scalelab.pytest_options``)."""

from scalelab.pytest_options import pytest_addoption  # noqa: F401
