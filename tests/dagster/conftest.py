"""The Dagster tests run in their own tox env (``tox -e dagster``, extra ``dagster``); the
default env ignores this folder. Run by hand without the extra, every module skips saying so.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local.leftovers import MARKER

DATA = Path(__file__).parent / "data"
SKIP_REASON = "dagster extra not installed (pip install -e '.[dagster]', or tox -e dagster)"


@pytest.fixture(scope="module")
def tag(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Every process the module starts carries ``MARKER=<tag>`` (tests.local.leftovers), and
    the stack's temp dirs go to a folder of its own (traversable: the broker runs as user
    rabbitmq when we are root)."""
    tmp_path_factory.getbasetemp()  # pytest's tmp_path root stays where TMPDIR said before
    mp = pytest.MonkeyPatch()
    value = uuid.uuid4().hex
    tmp = Path(tempfile.mkdtemp(prefix="scalelab-dagster-test-"))
    tmp.chmod(0o711)
    mp.setenv(MARKER, value)
    mp.setenv("TMPDIR", str(tmp))
    mp.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    try:
        yield value
    finally:
        mp.undo()
        shutil.rmtree(tmp, ignore_errors=True)
