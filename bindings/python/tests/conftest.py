"""The Python package's tests run against the installed wheel (make
test-python-binding installs it into the test venv). Spans are judged by
what the sink or the loopback receiver got, decoded with PyPI's
opentelemetry-proto (tests/receiver/otlp_receiver.py), never by the
library's counters alone."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "receiver"))
sys.path.insert(0, str(REPO / "tests" / "python"))

from otlp_receiver import JSON, decode_request, span_dicts  # noqa: E402
from suite_state import own_state_directory  # noqa: E402

import spanguard  # noqa: E402

if Path(spanguard.__file__).resolve().is_relative_to(REPO / "bindings"):
    raise RuntimeError("these tests run against the installed wheel, not the source tree: `make test-python-binding`")


# The user's own state directory (spool, default sink, outcomes), where the
# library looks when nothing names another, before the suite moves it.
USERS_STATE = (Path(os.environ["XDG_STATE_HOME"]) if os.environ.get("XDG_STATE_HOME", "").startswith("/")
               else Path.home() / ".local" / "state")


@pytest.fixture(scope="session", autouse=True)
def state_of_the_suite(tmp_path_factory):
    """A state directory of the suite's (each xdist worker's) own, for every
    tracer a test makes without naming a spool or sink, and for the programs
    the tests start (they inherit it). In the user's, a test tracer's start
    sent the user's waiting crash dumps to the test's temporary sink, and a
    dump of anything killed on the machine meanwhile arrived in a test's
    sink as spans it never made (test_suite_isolation.py)."""
    yield from own_state_directory(tmp_path_factory)


def sigint_as_at_a_terminal() -> None:
    """A child's `preexec_fn`: SIGINT with its default disposition, as a
    program started from a terminal has it. Started from a background job
    of a non-interactive shell (`make test &`, some CI runners), the child
    inherits SIGINT ignored: Python then installs no KeyboardInterrupt,
    spanguard leaves an ignored signal alone, and a test of Ctrl-C would
    wait for what the program was told to ignore."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def read_sink(sink: Path) -> list[dict]:
    """Every span in the sink directory, decoded by opentelemetry-proto
    (strict: unknown fields and bad id lengths fail)."""
    spans = []
    for f in sorted(sink.glob("*.jsonl")):
        # Lines end at "\n" only: str.splitlines() also splits at U+2028,
        # U+0085 and others, which JSON leaves unescaped inside strings.
        for line in f.read_text().split("\n"):
            if line.strip():
                request, _ = decode_request(line.encode(), JSON, None, strict=True)
                spans.extend(span_dicts(request))
    return spans


def session_members(session: int) -> list[str]:
    """The live (not zombie) processes of a session, by pid."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # Bytes: a process's name may be any (another test runs one
            # named b"ab\xff\xfe) Z 1 2 3"), and no UTF-8 failed every
            # reader of /proc that took it for text.
            fields = stat.read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != b"Z":
            alive.append(stat.parent.name)
    return alive


def by_name(spans: list[dict]) -> dict:
    out = {}
    for s in spans:
        assert s["name"] not in out, f"two spans named {s['name']}"
        out[s["name"]] = s
    return out


def tracer_settings(tmp_path: Path, **extra) -> dict:
    return dict(from_env=False, service_name="py-test", sink_dir=tmp_path / "sink",
                spool_dir=tmp_path / "spool", schedule_delay_ms=50, install_signal_handlers=False, **extra)


@pytest.fixture
def tracer(tmp_path):
    t = spanguard.Tracer(**tracer_settings(tmp_path))
    yield t
    t.close()


@pytest.fixture(scope="module")
def receiver():
    """The loopback OTLP receiver (tests/receiver), one per test module."""
    from receiver_client import OtlpReceiverProcess
    with OtlpReceiverProcess(sys.executable) as rx:
        yield rx


@pytest.fixture
def sink(tmp_path):
    return tmp_path / "sink"


def run_python(code: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter of this venv (its own process,
    so once-per-process behaviour and exit hooks are its own)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env)
