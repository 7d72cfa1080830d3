"""Shared paths for the Python tests that drive the built library."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "receiver"))

from suite_state import own_state_directory  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def state_of_the_suite(tmp_path_factory):
    """A state directory of the suite's own (suite_state.py), as the binding
    suite keeps one: test_http_export got 31 spans of 24 sent once in the
    clean clone at fe1816e2, with 90 files of other runs in root's spool
    (the cause there is not proven, 0 of 23 runs after)."""
    yield from own_state_directory(tmp_path_factory)


@pytest.fixture(scope="session")
def emitter() -> Path:
    """The C program that emits a known set of spans (built by make)."""
    path = Path(os.environ.get("SPANGUARD_EMIT_SPANS", REPO / "build" / "tests" / "emit_spans"))
    if not path.exists():
        pytest.fail(f"{path} is missing: run the tests through `make test`")
    return path
