"""The library's news (the error callback's events) reaches Python's
`logging`, logger "spanguard": a backend's warning (an OTLP partial
success rejecting none, with a message) was said on stderr alone, and a
program that routes its logs elsewhere, or whose stderr is thrown away,
never saw it."""

import json
import os
import sys

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
                          "message": f"spanguard: the backend accepted 1 span with a warning: {message}"}
    # The same words as the library's stderr line, which says it first.
    said = [line for line in result.stderr.splitlines() if "with a warning" in line]
    assert [r["message"].removeprefix("spanguard: ") for r in records] == \
        [line.removeprefix("spanguard: warn: ") for line in said]


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
    assert json.loads(result.stdout) == [["WARNING", "spanguard: news from the future", 4242, "UNKNOWN"]]


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


if __name__ == "__main__":
    sys.exit("run with pytest")
