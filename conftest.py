"""Root conftest: scalelab's pytest options and SIGTERM handling (``scalelab.pytest_options``)."""

from scalelab.pytest_options import (  # noqa: F401
    pytest_addoption,
    pytest_configure,
    pytest_unconfigure,
)
