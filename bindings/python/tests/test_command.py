"""The `spanguard` command as the wheel installs it (the console script, and
`python -m spanguard`) is the spanguard binary's: the same output, exit
statuses and signals, judged against the binary built from the same
sources (SPANGUARD_CLI, set by make test-python-binding). Deadlines only
bound a hang; no timing is asserted."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import sigint_as_at_a_terminal, tracer_settings

import spanguard

# The console script pip wrote beside this venv's python.
SCRIPT = Path(sys.executable).with_name("spanguard")


@pytest.fixture(scope="module")
def binary() -> Path:
    path = Path(os.environ.get("SPANGUARD_CLI", "target/release/spanguard"))
    if not path.exists():
        pytest.fail(f"{path} is missing: run the tests through `make test-python-binding`")
    return path


def clean_env() -> dict:
    """This environment without spanguard's or OpenTelemetry's settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}


def run(program, *args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*program, *map(str, args)], capture_output=True, text=True, timeout=60,
                          env=clean_env(), **kw)


def traced(tmp_path: Path) -> Path:
    """A sink directory holding one trace of two spans, service py-test."""
    tracer = spanguard.Tracer(**tracer_settings(tmp_path))
    with tracer.span("agent.session"):
        with tracer.span("llm.chat") as llm:
            llm.set_attribute("gen_ai.request.model", "gpt-4o")
    tracer.close()
    return tmp_path / "sink"


def spooled(tmp_path: Path) -> Path:
    """A spool directory holding one batch of one span: the backend was down."""
    spool = tmp_path / "spool"
    tracer = spanguard.Tracer(from_env=False, service_name="py-test", endpoint="http://127.0.0.1:9/v1/traces",
                              spool_dir=spool, install_signal_handlers=False)
    with tracer.span("agent.session"):
        pass
    tracer.shutdown(1)
    tracer.close()
    assert list(spool.glob("*.sgspool")), "nothing was spooled"
    return spool


def test_the_console_script_shows_a_trace_as_the_binary_does(tmp_path, binary):
    sink = traced(tmp_path)
    shown = run([SCRIPT], "show", sink, "--color", "never")
    assert shown.returncode == 0, shown.stderr
    assert "py-test" in shown.stdout and "agent.session" in shown.stdout and "llm.chat" in shown.stdout, shown.stdout
    assert "gpt-4o" in shown.stdout, shown.stdout
    assert shown.stdout == run([binary], "show", sink, "--color", "never").stdout


@pytest.mark.parametrize("args", [["--version"], ["no-such-command"], [], ["show", "--help"], ["replay"]],
                         ids=["version", "unknown", "none", "show-help", "replay-without-endpoint"])
def test_the_console_script_answers_as_the_binary_does(binary, args):
    got = run([SCRIPT], *args)
    want = run([binary], *args)
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)


def test_version_and_an_unknown_command(binary):
    assert run([SCRIPT], "--version").stdout == f"spanguard {spanguard.library_version()}\n"
    unknown = run([sys.executable, "-m", "spanguard"], "no-such-command")
    assert unknown.returncode == 2, unknown
    assert "unknown command" in unknown.stderr and "Traceback" not in unknown.stderr, unknown.stderr


def test_python_m_spanguard_says_what_waits_in_the_spool(tmp_path):
    spool = spooled(tmp_path)
    report = run([sys.executable, "-m", "spanguard"], "spool", spool)
    assert report.returncode == 0, report.stderr
    assert "1 span waits to be sent" in report.stdout, report.stdout


def test_why_says_attributes_and_events_that_did_not_fit_not_nothing_lost(tmp_path):
    """A streamed completion recorded an event a chunk (200) on a span
    that holds 128 by default, and 200 attributes: 72 of each dropped,
    counted in stats() and said once on stderr, and `spanguard why` said of
    that process "nothing lost". What did not fit is data the user did not
    get: `why` says how many, and what sets the room for them."""
    tracer = spanguard.Tracer(**tracer_settings(tmp_path))
    with tracer.span("llm.chat") as llm:
        for i in range(200):
            llm.add_event("gen_ai.content.completion.chunk", {"index": i})
        llm.set_attributes({f"tool.{i}": i for i in range(200)})
    tracer.shutdown(10)
    stats = tracer.stats()
    tracer.close()
    assert (stats.spans_exported, stats.attributes_dropped, stats.events_dropped) == (1, 72, 72), stats
    said = run([SCRIPT], "why", "--dir", tmp_path / "spool")
    assert said.returncode == 0, said.stdout + said.stderr
    lines = said.stdout.splitlines()
    assert "  1 span ended: 1 delivered, 0 to the spool, 0 lost" in lines, said.stdout
    assert "  nothing lost" not in lines, said.stdout
    dropped = [line for line in lines if line.startswith("  72 attributes, 72 events dropped: ")]
    assert len(dropped) == 1 and "OTEL_SPAN_EVENT_COUNT_LIMIT" in dropped[0], said.stdout
    assert "  no span lost, but attributes, events or links were dropped (above)" in lines, said.stdout


def test_ctrl_c_ends_a_replay_waiting_on_the_backend_as_it_ends_the_binary(tmp_path, binary):
    """Python notes SIGINT for its own handler, to raise once native code
    returns: the command would wait out the backend's whole timeout."""
    spool = spooled(tmp_path)
    env = clean_env()
    env["OTEL_BSP_EXPORT_TIMEOUT"] = "120000"
    codes = []
    for program in ([binary], [SCRIPT]):
        with socket.socket() as backend:  # accepts, never answers
            backend.bind(("127.0.0.1", 0))
            backend.listen()
            backend.settimeout(60)
            url = f"http://127.0.0.1:{backend.getsockname()[1]}/v1/traces"
            proc = subprocess.Popen([*program, "replay", str(spool), "--endpoint", url, "--timeout-ms", "120000"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                    preexec_fn=sigint_as_at_a_terminal)
            connection, _ = backend.accept()
            with connection:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    pytest.fail(f"{program[0].name} replay went on after Ctrl-C: {proc.communicate()}")
            codes.append(proc.returncode)
    assert codes == [-signal.SIGINT, -signal.SIGINT]


def test_ctrl_c_stops_tail_with_status_0(tmp_path, binary):
    sink = traced(tmp_path)
    for program in ([binary], [SCRIPT]):
        proc = subprocess.Popen([*program, "tail", str(sink), "--from-start", "--color", "never"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(),
                                preexec_fn=sigint_as_at_a_terminal)
        assert proc.stdout.readline(), proc.stderr.read()  # following, and printed the first span
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, (program, err)
        assert "Traceback" not in err, err


def test_output_into_a_closed_pipe_ends_the_command_quietly(tmp_path, binary):
    """`spanguard show | head`: Python starts with SIGPIPE ignored, which
    would turn the closed pipe into a panic of the command."""
    tracer = spanguard.Tracer(**tracer_settings(tmp_path))
    for i in range(400):
        with tracer.span(f"step {i}"):
            pass
    tracer.close()
    for program in ([binary], [SCRIPT]):
        proc = subprocess.Popen([*program, "show", str(tmp_path / "sink"), "--color", "never"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
        proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read().decode()
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGPIPE, (program, err)
        assert err == "", err


def test_an_argument_that_is_not_utf8_is_said_as_the_binary_says_it(tmp_path, binary):
    # A directory name in another encoding: the binary panicked
    # (std::env::args) and the console script raised a traceback.
    odd = os.fsencode(str(tmp_path)) + b"/r\xe9sum\xe9"
    for program in ([SCRIPT], [sys.executable, "-m", "spanguard"]):
        got = subprocess.run([*program, b"show", odd], capture_output=True, timeout=60, env=clean_env())
        want = subprocess.run([binary, b"show", odd], capture_output=True, timeout=60, env=clean_env())
        assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)
        assert got.returncode == 2, got
        assert b"argument 2 is not valid UTF-8" in got.stderr and b"Traceback" not in got.stderr, got.stderr
