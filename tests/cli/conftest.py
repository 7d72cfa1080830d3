"""Shared paths for the tests of the spanguard command (make test-cli)."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "receiver"))


def built(var: str, default: Path) -> Path:
    path = Path(os.environ.get(var, default))
    if not path.exists():
        pytest.fail(f"{path} is missing: run the tests through `make test-cli`")
    return path


@pytest.fixture(scope="session")
def cli() -> Path:
    """The spanguard command."""
    return built("SPANGUARD_CLI", REPO / "target" / "release" / "spanguard")


@pytest.fixture(scope="session")
def demo() -> Path:
    """The sample agent: 14 spans into the local sink."""
    return built("SPANGUARD_DEMO", REPO / "build" / "examples" / "agent_demo")


@pytest.fixture(scope="session")
def sample() -> Path:
    """Sink files with fixed times: errors, interrupted spans, GenAI tokens."""
    return REPO / "tests" / "cli" / "sample"
