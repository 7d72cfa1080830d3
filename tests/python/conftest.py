"""Shared paths for the Python tests that drive the built library."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "receiver"))


@pytest.fixture(scope="session", autouse=True)
def state_of_the_suite(tmp_path_factory):
    """A state directory of the suite's (each xdist worker's) own, for the
    programs the tests start without naming a spool (they inherit it), as
    bindings/python/tests/conftest.py keeps one. In the user's, an
    emitter's start sent what waited in the machine's default spool (crash
    dumps and spool files of anything else run or killed meanwhile) to the
    test's receiver, as spans the test never made (the binding suite saw
    it; test_http_export got 31 spans of 24 sent once in the clean clone
    at fe1816e2, with 90 files of other runs in root's spool: the cause
    there is not proven, 0 of 23 runs after)."""
    before = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    if before is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = before


@pytest.fixture(scope="session")
def emitter() -> Path:
    """The C program that emits a known set of spans (built by make)."""
    path = Path(os.environ.get("SPANGUARD_EMIT_SPANS", REPO / "build" / "tests" / "emit_spans"))
    if not path.exists():
        pytest.fail(f"{path} is missing: run the tests through `make test`")
    return path
