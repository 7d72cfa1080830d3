"""The library's news (the error callback's events) reaches Python's
`logging`, logger "spanguard": a backend's warning (an OTLP partial
success rejecting none, with a message) was said on stderr alone, and a
program that routes its logs elsewhere, or whose stderr is thrown away,
never saw it."""

import json
import os
import subprocess
import sys
import textwrap
import time
from importlib.metadata import entry_points
from pathlib import Path

from conftest import run_python

# A program that configured logging: every record of the "spanguard"
# logger, as JSON lines on stdout at the end.
PROGRAM = """
    import json, logging, sys
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append({{"level": record.levelname, "message": record.getMessage(),
                             "event": getattr(record, "spanguard_event", None),
                             "name": getattr(record, "spanguard_event_name", None)}})

    logging.basicConfig(level=logging.INFO, handlers=[Keep()])
    import spanguard
    t = spanguard.Tracer(from_env={from_env}, service_name="events", {destination},
                         spool_dir={spool!r}, schedule_delay_ms=50, install_signal_handlers=False)
    for i in range(3):
        with t.span(f"op{{i}}"):
            pass
        t.flush(10)
    t.shutdown(10)
    for r in records:
        print(json.dumps(r))
"""


def logged(result):
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_a_backends_warning_is_logged_at_warning_with_its_words(receiver, tmp_path):
    receiver.set_mode("partial:0")
    try:
        result = run_python(PROGRAM.format(from_env=False, destination=f"endpoint={receiver.traces_url!r}",
                                           spool=str(tmp_path / "spool")))
    finally:
        receiver.reset_mode()
    records = [r for r in logged(result) if r["name"] == "BACKEND_WARNING"]
    message = "test receiver mode partial:0: the last 0 spans were rejected"
    assert records, result.stdout + result.stderr
    assert records[0] == {"level": "WARNING", "event": 8, "name": "BACKEND_WARNING",
                          "message": f"the backend accepted 1 span with a warning: {message}"}
    # The same words as the library's stderr line, which says it first
    # with its own prefix and level word (the record has them apart).
    said = [line for line in result.stderr.splitlines() if "with a warning" in line]
    assert [r["message"] for r in records] == [line.removeprefix("spanguard: warn: ") for line in said]


def test_an_ignored_variable_is_logged(tmp_path):
    """Set before the program could give the tracer a callback (the
    variables are read as it is made), and logged all the same."""
    env = dict(os.environ, OTEL_BSP_MAX_QUEUE_SIZE="lots")
    result = run_python(PROGRAM.format(from_env=True, destination=f"sink_dir={str(tmp_path / 'sink')!r}",
                                       spool=str(tmp_path / "spool")), env=env)
    records = [r for r in logged(result) if r["name"] == "SETTING_IGNORED"]
    assert len(records) == 1, result.stdout + result.stderr
    assert records[0]["level"] == "WARNING" and records[0]["event"] == 9
    assert "OTEL_BSP_MAX_QUEUE_SIZE" in records[0]["message"], records


def test_an_event_this_binding_does_not_know_is_logged_not_dropped():
    """A newer library's event (a number past the binding's table) is
    logged at WARNING with its number and message, never dropped or
    raised on."""
    result = run_python("""
        import json, logging
        records = []

        class Keep(logging.Handler):
            def emit(self, record):
                records.append([record.levelname, record.getMessage(), record.spanguard_event,
                                record.spanguard_event_name])

        logging.basicConfig(level=logging.INFO, handlers=[Keep()])
        from spanguard import _native
        _native._log_event_for_test(4242, "news from the future")
        print(json.dumps(records))
    """)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [["WARNING", "news from the future", 4242, "UNKNOWN"]]


def test_logging_basic_config_says_spanguard_and_the_level_once():
    """`logging.basicConfig()`'s format is LEVEL:LOGGER:MESSAGE: the
    message carried the library's own "spanguard: " too, and a line read
    `WARNING:spanguard:spanguard: the backend accepted ...`."""
    result = run_python("""
        import logging
        logging.basicConfig()
        from spanguard import _native
        _native._log_event_for_test(8, "the backend accepted 1 span with a warning: sampled")
        _native._log_event_for_test(1, "3 spans lost sending to http://x/v1/traces: HTTP 400")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "WARNING:spanguard:the backend accepted 1 span with a warning: sampled",
        "ERROR:spanguard:3 spans lost sending to http://x/v1/traces: HTTP 400",
    ], result.stderr


HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "include", "spanguard.h")


def test_every_event_of_the_header_is_logged_by_its_name():
    """An event the binding's table lacked was logged as UNKNOWN, at
    WARNING: spans recovered from a dead process (good news, INFO), values
    that waited for the payload pool, a spool file's miscounted header."""
    import re
    text = open(HEADER).read()
    body = text[text.index("enum spanguard_event"):text.index("typedef enum spanguard_event")]
    events = {int(n): name for name, n in re.findall(r"SPANGUARD_EVENT_(\w+) = (\d+)", body)}
    assert len(events) >= 14 and events[14] == "SPANS_RECOVERED", events
    result = run_python(f"""
        import json, logging
        records = []

        class Keep(logging.Handler):
            def emit(self, record):
                records.append([record.spanguard_event, record.spanguard_event_name, record.levelname])

        logging.basicConfig(level=logging.INFO, handlers=[Keep()])
        from spanguard import _native
        for n in {sorted(events)!r}:
            _native._log_event_for_test(n, "news")
        print(json.dumps(records))
    """)
    assert result.returncode == 0, result.stderr
    logged = {n: (name, level) for n, name, level in json.loads(result.stdout)}
    assert {n: name for n, (name, _) in logged.items()} == events
    assert logged[14][1] == "INFO" and logged[4][1] == "INFO"
    assert logged[12][1] == "WARNING" and logged[13][1] == "WARNING"


def test_nothing_is_logged_where_logging_is_not_configured(receiver, tmp_path):
    """Unconfigured, logging's last resort would print each event on stderr
    beside the library's own line: the library's line alone is said."""
    receiver.set_mode("partial:0")
    try:
        result = run_python(f"""
            import spanguard
            t = spanguard.Tracer(from_env=False, service_name="events", endpoint={receiver.traces_url!r},
                                 spool_dir={str(tmp_path / "spool")!r}, install_signal_handlers=False)
            with t.span("op"):
                pass
            t.shutdown(10)
        """)
    finally:
        receiver.reset_mode()
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "with a warning" in line]
    assert len(said) == 1 and said[0].startswith("spanguard: warn: "), result.stderr



# --- the exporter never waits for Python -------------------------------------
#
# The callback only queues an event; Python code logs it (spanguard._events).
# When the exporter thread logged each event itself, it waited for the GIL
# and then for the handlers: a handler that blocked stopped the export, and
# a thread holding the GIL stopped it too.

def reached(receiver) -> int:
    """Spans the receiver got so far (delivered or rejected by it)."""
    spans = receiver.stats()["spans"]
    return spans["delivered"] + spans["partial_rejected"]


def test_a_logging_handler_that_blocks_does_not_stall_the_export(receiver, tmp_path):
    """A handler that blocks (a network handler, one writing to a full
    pipe: here, one waiting on an Event) on the first event: the 20 spans
    ended while it blocks reach the receiver all the same, each batch with
    news of its own (the receiver rejects its last span); and once it lets
    go, every event is logged, one per batch, by the time shutdown
    returns."""
    receiver.set_mode("partial:1")
    try:
        result = run_python(f"""
            import json, logging, threading, urllib.request
            import spanguard

            def reached():
                with urllib.request.urlopen({receiver.control_url + "/stats"!r}) as r:
                    spans = json.loads(r.read())["spans"]
                return spans["delivered"] + spans["partial_rejected"]

            entered, release, records = threading.Event(), threading.Event(), []

            class Blocks(logging.Handler):
                def emit(self, record):
                    entered.set()
                    release.wait(60)
                    records.append(record.spanguard_event_name)

            logging.basicConfig(level=logging.INFO, handlers=[Blocks()])
            t = spanguard.Tracer(from_env=False, service_name="blocked-handler",
                                 endpoint={receiver.traces_url!r}, schedule_delay_ms=10,
                                 max_export_batch_size=1, install_signal_handlers=False,
                                 spool_dir={str(tmp_path / "spool")!r})
            before = reached()
            with t.span("first"):
                pass
            assert entered.wait(30), "no event logged"
            for i in range(20):
                with t.span(f"op{{i}}"):
                    pass
            flushed = t.flush(10)
            while_blocked = reached() - before
            release.set()
            t.shutdown(10)
            print(json.dumps({{"flushed": flushed, "while_blocked": while_blocked, "records": records}}))
        """)
    finally:
        receiver.reset_mode()
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["while_blocked"] == 21 and out["flushed"], out
    assert out["records"] == ["SPANS_REJECTED"] * 21, out


def test_a_thread_holding_the_gil_does_not_stall_the_export(receiver, tmp_path):
    """50 spans ended, each its own batch with news (the receiver rejects
    it), then the main thread holds the GIL in a C call (ctypes.PyDLL keeps
    it) until the test lets it go: all 50 reach the receiver meanwhile.
    The exporter stopped at the first event it had to tell (waiting for
    the GIL) and the rest waited for the C call to end."""
    receiver.set_mode("partial:1")
    before = reached(receiver)
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import ctypes, json, logging
        import spanguard
        records = []

        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record.spanguard_event_name)

        logging.basicConfig(level=logging.INFO, handlers=[Keep()])
        t = spanguard.Tracer(from_env=False, service_name="gil-held", endpoint={receiver.traces_url!r},
                             schedule_delay_ms=10, max_export_batch_size=1, install_signal_handlers=False,
                             spool_dir={str(tmp_path / "spool")!r})
        for i in range(50):
            with t.span(f"op{{i}}"):
                pass
        print("ended", flush=True)
        # read(2) through PyDLL: the GIL stays held until the test writes.
        ctypes.PyDLL(None).read(0, ctypes.create_string_buffer(1), 1)
        t.shutdown(10)
        print(json.dumps(records))
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ended"
        deadline = time.monotonic() + 30
        while reached(receiver) - before < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        while_held = reached(receiver) - before
        out, err = child.communicate("x", timeout=60)
    finally:
        child.kill()
        receiver.reset_mode()
    assert child.returncode == 0, err
    assert while_held == 50, err
    assert json.loads(out.splitlines()[-1]) == ["SPANS_REJECTED"] * 50, out + err


def test_many_tracers_with_an_ignored_setting_under_zero_code_do_not_hang(tmp_path):
    """CI's hang (2626f05, 120 s): `opentelemetry-instrument` with the
    user's grpc, an ignored setting the exporter tells the moment the
    callback is set, which was set holding the GIL while the callback
    waited for it. Here 100 tracers more, each with that news, and a
    logging handler: done within the timeout, each tracer's news logged
    once by the time it is closed. (Not deterministic on the old code: the
    window was a few instructions.)"""
    (tmp_path / "agent.py").write_text(textwrap.dedent("""
        import json, logging
        import spanguard
        records = []

        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record.spanguard_event_name)

        logging.basicConfig(level=logging.INFO, handlers=[Keep()])
        for i in range(100):
            spanguard.Tracer(service_name=f"zero{i}", install_signal_handlers=False).close()
        print(json.dumps(records.count("SETTING_IGNORED")))
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANGUARD_"))}
    env.update(OTEL_TRACES_EXPORTER="spanguard", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
               SPANGUARD_SINK_DIR=str(tmp_path / "sink"), SPANGUARD_SPOOL_DIR=str(tmp_path / "spool"),
               XDG_STATE_HOME=str(tmp_path / "state"), OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=",".join(
                   sorted({e.name for e in entry_points(group="opentelemetry_instrumentor")})))
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    proc = subprocess.run([str(instrument), "--exporter_otlp_protocol=grpc", sys.executable,
                           str(tmp_path / "agent.py")], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    # The 100 tracers' news, each once; the zero-code configurator's own
    # tracer says the same before the agent runs, logged only when the
    # reader gets to it after basicConfig has put the handler in (a clean
    # clone's run saw 101).
    assert json.loads(proc.stdout.splitlines()[-1]) in (100, 101), proc.stdout + proc.stderr


def test_events_past_the_queue_are_counted_and_said_once():
    """The queue holds 1,024 events: past that, while nothing logs them,
    they are dropped and said once, with their number, never kept without
    bound."""
    result = run_python("""
        import json, logging
        from spanguard import _events, _native
        records = []

        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record.getMessage())

        logging.basicConfig(level=logging.INFO, handlers=[Keep()])
        for i in range(_native._EVENTS_QUEUE_CAPACITY + 10):
            _native._queue_event_for_test(8, f"news {i}")
        _events.deliver()
        _native._queue_event_for_test(8, "later")
        _events.deliver()
        print(json.dumps(records))
    """)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert records[0] == "10 events were not logged: 1024 were waiting for logging already " \
        "(a handler slower than the news); the library's stderr has each", records[:2]
    assert records[1:] == [f"news {i}" for i in range(1024)] + ["later"]


if __name__ == "__main__":
    sys.exit("run with pytest")
