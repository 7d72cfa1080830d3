"""Shared paths for the Python tests that drive the built library."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "receiver"))


@pytest.fixture(scope="session")
def emitter() -> Path:
    """The C program that emits a known set of spans (built by make)."""
    path = Path(os.environ.get("SPANGUARD_EMIT_SPANS", REPO / "build" / "tests" / "emit_spans"))
    if not path.exists():
        pytest.fail(f"{path} is missing: run the tests through `make test`")
    return path
