"""The native API against the real library: spans go to a sink directory
and are read back with opentelemetry-proto."""

import gc
import os
import pickle
import threading
import time
import traceback
from pathlib import Path

import pytest
from conftest import by_name, read_sink, run_python, tracer_settings

import spanguard


def test_nested_with_blocks_and_the_decorator_make_one_trace(tracer, sink):
    @tracer.traced()
    def tool_call(query):
        spanguard.current_span().set_attribute("tool.query", query)
        return query.upper()

    with tracer.span("agent.session", kind=spanguard.KIND_SERVER) as session:
        with tracer.span("llm.chat", kind=spanguard.KIND_CLIENT,
                         attributes={"gen_ai.usage.input_tokens": 12, "stream": True,
                                     "temperature": 0.5, "gen_ai.request.model": "gpt-4o"}):
            pass
        assert tool_call("lisbon") == "LISBON"
        assert spanguard.current_span() is session
    assert spanguard.current_span() is None
    assert tracer.flush(10)
    spans = by_name(read_sink(sink))
    tool = "test_nested_with_blocks_and_the_decorator_make_one_trace.<locals>.tool_call"
    assert set(spans) == {"agent.session", "llm.chat", tool}
    root = spans["agent.session"]
    assert root["parent_span_id"] == "" and root["kind"] == spanguard.KIND_SERVER
    for s in spans.values():
        assert s["trace_id"] == root["trace_id"]
        if s is not root:
            assert s["parent_span_id"] == root["span_id"]
    assert spans["llm.chat"]["attributes"] == {"gen_ai.usage.input_tokens": 12, "stream": True,
                                               "temperature": 0.5, "gen_ai.request.model": "gpt-4o"}
    assert spans[tool]["attributes"] == {"tool.query": "lisbon"}


def test_values_arrive_with_their_types_and_unsupported_ones_stay_out(tracer, sink):
    with tracer.span("typed") as span:
        span.set_attribute("s", "text")
        span.set_attribute("i", -7)
        span.set_attribute("f", 2.5)
        span.set_attribute("b", False)
        span.set_attribute("big", 2 ** 63 - 1)
        span.set_attributes({"finish_reasons": ("stop",), "ids": [1, 2], "none": None, "obj": object(),
                             "huge": 2 ** 70, "kept": "yes"})
    assert tracer.flush(10)
    (span,) = read_sink(sink)
    # A tuple arrives as an array, never as its repr ("('stop',)"); what
    # spanguard cannot record stays out, counted and warned.
    # None is the empty value (OpenTelemetry's AnyValue).
    assert span["attributes"] == {"s": "text", "i": -7, "f": 2.5, "b": False, "big": 2 ** 63 - 1, "kept": "yes",
                                  "finish_reasons": ["stop"], "ids": [1, 2], "none": None}
    assert tracer.stats().values_rejected == 2


def test_an_exception_is_recorded_the_opentelemetry_way_and_propagates(tracer, sink):
    with pytest.raises(ValueError, match="upstream timeout"):
        with tracer.span("tool.call"):
            raise ValueError("upstream timeout")
    assert tracer.flush(10)
    (span,) = read_sink(sink)
    assert span["status_code"] == spanguard.STATUS_ERROR
    assert span["status_message"] == "ValueError: upstream timeout"
    (event,) = span["events"]
    assert event["name"] == "exception"
    attrs = event["attributes"]
    assert attrs["exception.type"] == "ValueError"
    assert attrs["exception.message"] == "upstream timeout"
    assert attrs["exception.stacktrace"].startswith("Traceback (most recent call last)")
    assert 'raise ValueError("upstream timeout")' in attrs["exception.stacktrace"]


def test_record_exception_takes_the_opentelemetry_signature(tracer, sink):
    # Code written for OpenTelemetry's Span.record_exception works on a
    # spanguard span: attributes over the recorded ones, a timestamp, escaped.
    import json.decoder

    with tracer.span("parsing") as span:
        try:
            json.loads("{")
        except json.decoder.JSONDecodeError as e:
            span.record_exception(e, {"exception.message": "bad reply", "retry": 2}, 1_700_000_000_000_000_000, True)
        span.record_exception(KeyError("k"), set_status=False)
    assert tracer.flush(10)
    (span,) = read_sink(sink)
    first, second = span["events"]
    # Module-qualified, as the SDK names a type outside builtins.
    assert first["attributes"]["exception.type"] == "json.decoder.JSONDecodeError"
    assert first["attributes"]["exception.message"] == "bad reply"
    assert first["attributes"]["retry"] == 2
    assert "exception.escaped" not in first["attributes"]
    assert first["time"] == 1_700_000_000_000_000_000
    assert second["attributes"]["exception.type"] == "KeyError"
    assert span["status_code"] == spanguard.STATUS_ERROR
    assert span["status_message"].startswith("json.decoder.JSONDecodeError: Expecting")


def test_traceparent_round_trip_continues_the_trace(tracer, sink):
    with tracer.span("client") as client:
        tp = client.traceparent()
    assert len(tp) == 55 and tp.startswith("00-")
    with tracer.span("server", kind=spanguard.KIND_SERVER, traceparent=tp, tracestate="vendor=1") as server:
        assert server.tracestate() == "vendor=1"
    assert tracer.flush(10)
    spans = by_name(read_sink(sink))
    assert spans["server"]["trace_id"] == spans["client"]["trace_id"] == tp[3:35]
    assert spans["server"]["parent_span_id"] == spans["client"]["span_id"] == tp[36:52]
    assert spans["server"]["trace_state"] == "vendor=1"


def test_recording_never_raises(tracer, sink):
    span = tracer.start_span("once")
    span.end()
    span.end()  # a second end does nothing
    span.set_attribute("late", 1)  # on an ended span: nothing, no exception
    span.add_event("late")
    with tracer.span("full") as full:
        for i in range(200):
            full.set_attribute(f"k{i}", i)  # past the attribute limit: counted
        full.add_link("not a traceparent")  # invalid: left out, counted
    bad_parent = tracer.start_span("bad-parent", traceparent="00-nothex-01")  # a new trace instead
    assert bad_parent.is_recording()
    bad_parent.end()
    assert tracer.flush(10)
    stats = tracer.stats()
    assert stats.attributes_dropped > 0
    assert stats.values_rejected == 2  # the link and the traceparent
    spans = by_name(read_sink(sink))
    assert set(spans) == {"once", "full", "bad-parent"}
    assert spans["once"]["attributes"] == {} and spans["once"]["events"] == []
    assert spans["full"]["attributes"]["k0"] == 0
    assert spans["bad-parent"]["parent_span_id"] == ""
    assert tracer.shutdown(10)
    late = tracer.start_span("after shutdown")  # records nothing, raises nothing
    assert not late.is_recording()
    late.set_attribute("k", "v")
    late.end()
    # A call that configures the tracer says so, as set_scope_attributes
    # does (it answered OK and set a resource no batch would carry).
    with pytest.raises(spanguard.SpanguardError) as shut:
        tracer.set_resource({"service.name": "late"})
    assert shut.value.code == 5  # SPANGUARD_RESULT_SHUT_DOWN


def test_the_error_is_named_where_it_is_caught(tmp_path):
    # Tracebacks said `_native.SpanguardError: ...`, and a pickle (a
    # worker process of multiprocessing or ProcessPoolExecutor sending the
    # error back) looked for a module `_native` that does not exist.
    tracer = spanguard.Tracer(**tracer_settings(tmp_path))
    assert tracer.shutdown(10)
    with pytest.raises(spanguard.SpanguardError) as shut:
        tracer.set_resource({"service.name": "late"})
    error = shut.value
    kind = type(error)
    assert (kind.__module__, kind.__qualname__) == ("spanguard", "SpanguardError")
    told = "".join(traceback.format_exception_only(kind, error))
    assert told.startswith("spanguard.SpanguardError: set_resource"), told
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is spanguard.SpanguardError
    assert (back.args, back.code) == (error.args, 5)


def test_a_span_under_another_tracers_span_is_recorded(tmp_path):
    a = spanguard.Tracer(**tracer_settings(tmp_path / "a"))
    b = spanguard.Tracer(**tracer_settings(tmp_path / "b"))
    with a.span("outer"):
        with b.span("inner") as inner:  # the current span is a's: b begins a new trace
            assert inner.is_recording()
        with b.span("inner-with-attributes", attributes={"k": 1}) as inner2:
            assert inner2.is_recording()
    a.close()
    b.close()
    assert [s["name"] for s in read_sink(tmp_path / "a" / "sink")] == ["outer"]
    inner = by_name(read_sink(tmp_path / "b" / "sink"))
    assert set(inner) == {"inner", "inner-with-attributes"}
    assert all(s["parent_span_id"] == "" for s in inner.values())


def test_each_kind_of_problem_is_warned_once():
    run = run_python("""
        import logging, spanguard, tempfile
        logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
        d = tempfile.mkdtemp()
        t = spanguard.Tracer(from_env=False, sink_dir=d, spool_dir=d + "/spool", install_signal_handlers=False)
        for i in range(5):
            with t.span("s") as s:
                s.set_attribute("list", [i, "mixed", object()])
                s.set_attribute("obj", object())
            s.end()
            s.set_attribute("after", 1)
        t.close()
    """)
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("spanguard ")]
    assert len(warnings) == 3, run.stderr  # bad complex value, bad value, ended span: once each
    assert any("a list, tuple or dict holding something spanguard cannot carry" in w for w in warnings)


def test_a_value_left_out_is_named_by_its_key_and_type_and_why():
    """OpenTelemetry's Python SDK keeps a dict (and None, and mixed or
    nested lists) as an attribute value since attributes may be complex;
    spanguard sends them whole, but not what is in them that no AnyValue
    holds (an object, a non-str key), which is left out, counted. The
    warning names the first one's key and type (never its value) and says
    why."""
    run = run_python("""
        import logging, spanguard, tempfile
        logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
        d = tempfile.mkdtemp()
        t = spanguard.Tracer(from_env=False, sink_dir=d, spool_dir=d + "/spool", install_signal_handlers=False)
        with t.span("s", attributes={"llm.request": {"api_key": "sk-secret", 1: "int key"}}) as s:
            s.set_attribute("llm.tools", [{"name": "search"}, "x"])
            s.set_attribute("llm.other", {"k": "later"})
            s.set_attribute("llm.client", object())
        t.close()
    """)
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("spanguard ")]
    assert len(warnings) == 2, run.stderr  # the dict with an int key, the object: the first of each
    dict_warning = next(w for w in warnings if "cannot carry" in w)
    assert 'attribute "llm.request" (a dict)' in dict_warning, dict_warning
    assert "complex attribute values" in dict_warning
    object_warning = next(w for w in warnings if "value was not a str" in w)
    assert 'attribute "llm.client" (a object)' in object_warning, object_warning
    assert "sk-secret" not in run.stderr and "search" not in run.stderr


def test_programming_errors_raise_where_they_are_made(tmp_path):
    with pytest.raises(TypeError):
        spanguard.Tracer(from_env=False, no_such_setting=1)
    with pytest.raises(spanguard.SpanguardError) as bad_cap:
        spanguard.Tracer(**tracer_settings(tmp_path, exporter_max_cpu_percent=101))
    assert bad_cap.value.code == 11  # SPANGUARD_RESULT_INVALID_CONFIG
    # The exception names the field, its variable and the value.
    assert "exporter_max_cpu_percent (SPANGUARD_EXPORTER_MAX_CPU_PERCENT)=101" in str(bad_cap.value)
    t = spanguard.Tracer(**tracer_settings(tmp_path))
    with pytest.raises(TypeError):
        t.start_span("s", kind=b"server")
    with pytest.raises(ValueError):
        t.start_span("s", kind=9)
    with t.span("s") as s, pytest.raises(ValueError):
        s.set_status(7)
    with pytest.raises(TypeError):
        t.start_span("s", parent="not a span")
    t.close()
    t.close()  # twice is fine
    with pytest.raises(spanguard.SpanguardError) as closed:
        t.start_span("late")
    assert closed.value.code == 5  # SPANGUARD_RESULT_SHUT_DOWN


def test_a_kind_and_a_status_are_taken_as_constants_names_or_opentelemetrys_own(tracer, sink):
    """One rule in every binding: spanguard's constants, their names (any
    case), or OpenTelemetry's own SpanKind / StatusCode / Status, so code
    written against OpenTelemetry's API, or moved from Node (which took
    names), passes what it has. A name or an OpenTelemetry member raised
    TypeError here before."""
    from opentelemetry.trace import SpanKind, Status, StatusCode

    @tracer.traced("traced.consumer", kind=SpanKind.CONSUMER)
    def consume():
        pass

    consume()
    tracer.start_span("const", kind=spanguard.KIND_SERVER).end()
    tracer.start_span("default").end()
    tracer.start_span("none", kind=None).end()
    with tracer.span("name", kind="client") as s:
        s.set_status("error", "by name")
    with tracer.span("upper", kind="PRODUCER") as s:
        s.set_status("OK")
    with tracer.span("otel.internal", kind=SpanKind.INTERNAL) as s:
        s.set_status(StatusCode.ERROR, "by StatusCode")
    with tracer.span("otel.server", kind=SpanKind.SERVER) as s:
        # OpenTelemetry's Status carries its description; one passed beside
        # it is left, as OpenTelemetry's set_status leaves it.
        s.set_status(Status(StatusCode.ERROR, "by Status"), "ignored")
    with tracer.span("otel.ok") as s:
        s.set_status(Status(StatusCode.OK))
    with tracer.span("const.status") as s:
        s.set_status(spanguard.STATUS_ERROR, "by constant")
    assert tracer.flush(10)
    got = {name: (s["kind"], s["status_code"], s["status_message"]) for name, s in by_name(read_sink(sink)).items()}
    server, client, producer, consumer, internal = 2, 3, 4, 5, 1  # OTLP's numbers
    assert got == {
        "traced.consumer": (consumer, 0, ""), "const": (server, 0, ""), "default": (internal, 0, ""),
        "none": (internal, 0, ""), "name": (client, 2, "by name"), "upper": (producer, 1, ""),
        "otel.internal": (internal, 2, "by StatusCode"), "otel.server": (server, 2, "by Status"),
        "otel.ok": (internal, 1, ""), "const.status": (internal, 2, "by constant"),
    }


def test_a_kind_or_status_in_no_form_of_the_rule_raises_at_the_call(tracer):
    """Anything else is a programming error: TypeError for another type,
    ValueError for a number out of range or an unknown name, nothing
    begun; a decorator's kind raises where it is written."""
    from opentelemetry.trace import SpanKind, StatusCode

    for kind in (6, -1, 2 ** 70, "sideways", "unspecified", ""):
        with pytest.raises(ValueError, match="a span kind is"):
            tracer.start_span("never", kind=kind)
    for kind in (1.5, b"server", True, object(), StatusCode.OK, [2]):
        with pytest.raises(TypeError, match="a span kind is"):
            tracer.start_span("never", kind=kind)
    with pytest.raises(ValueError, match="a span kind is"):
        tracer.traced("never", kind="bogus")
    assert tracer.stats().spans_begun == 0
    with tracer.span("odd") as s:
        for status in (3, -1, "broken", "ERRORS"):
            with pytest.raises(ValueError, match="a status is"):
                s.set_status(status)
        for status in (1.5, None, False, SpanKind.SERVER, {"code": 2}):
            with pytest.raises(TypeError, match="a status is"):
                s.set_status(status)


def test_flush_after_shutdown_or_close_says_false_not_raises(tmp_path):
    """A late flush (an exit path, a request handler, a library's own
    cleanup after the program's) raised SpanguardError once the tracer had
    shut down: the OpenTelemetry SDK's force_flush answers False after its
    shutdown (the specification: calls after Shutdown are ignored
    gracefully). Shutdown and close stay safe to call again."""
    t = spanguard.Tracer(**tracer_settings(tmp_path))
    with t.span("before"):
        pass
    assert t.shutdown(10)
    assert t.flush(1) is False
    assert t.shutdown(1)  # twice: nothing left, no error
    t.close()
    assert t.flush(1) is False
    assert t.shutdown(1)
    t.close()
    assert len(read_sink(tmp_path / "sink")) == 1


def test_close_while_other_threads_record_and_flush_loses_nothing(tmp_path):
    """close() shuts down and keeps the memory until the tracer object goes:
    a flush detached from the GIL and span calls on other threads, running
    as close() runs, meet a shut-down tracer, never freed memory (before,
    close() freed it: those calls found no tracer, and the spans' later
    calls were logged as "used after it ended"). Every span begun arrives.
    In its own interpreter: the log says each problem once a process."""
    result = run_python(f"""
        import threading, time
        import spanguard
        from conftest import read_sink, tracer_settings
        from pathlib import Path
        for round_ in range(8):
            settings = {{**tracer_settings(Path({str(tmp_path)!r}) / f"round{{round_}}"), "schedule_delay_ms": 5}}
            t = spanguard.Tracer(**settings)
            begun, errors = [], []

            def record():
                while True:
                    try:
                        s = t.start_span("racing")
                    except spanguard.SpanguardError as e:
                        if e.code != 5:
                            errors.append(e)
                        return
                    begun.append(s)
                    s.set_attribute("n", len(begun))
                    s.end()
                    # Fewer spans to read back, still racing: close() lands
                    # in this slowed phase at 1000 as it did at 6000 (each
                    # round begun just past the bound), with a sixth of the
                    # spans to decode.
                    if len(begun) > 1000:
                        time.sleep(0.0005)

            def flush():
                # After close() a flush says False (no exception).
                while not t.closed:
                    try:
                        t.flush(5)
                    except spanguard.SpanguardError as e:
                        errors.append(e)
                        return

            threads = [threading.Thread(target=record) for _ in range(3)] + [threading.Thread(target=flush)]
            for th in threads:
                th.start()
            time.sleep(0.002 * (1 + round_ % 5))
            t.close()
            for th in threads:
                th.join()
            assert not errors, errors
            assert t.closed
            arrived = len(read_sink(settings["sink_dir"]))
            assert arrived == len(begun), (arrived, len(begun))
            for s in begun[-3:]:
                s.set_attribute("late", True)  # recording calls never raise
                s.end()
        print("ok")
        """, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert "used after it ended" not in result.stderr, result.stderr


def test_a_resource_and_a_scope_of_many_attributes_arrive_whole(tmp_path):
    # Past 128 attributes (one call's worth) the binding cut them, silently:
    # a provider's detectors together can give more.
    t = spanguard.Tracer(**tracer_settings(tmp_path))
    t.set_resource({f"detected.{i}": i for i in range(300)})
    t.set_scope_attributes("lib", attributes={f"lib.{i}": str(i) for i in range(200)})
    with t.span("op"):
        pass
    t.close()
    lines = [line for f in (tmp_path / "sink").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert len(lines) == 1
    assert all(f'"key":"detected.{i}","value":{{"intValue":"{i}"}}' in lines[0] for i in range(300))


def test_a_span_of_the_parent_ended_in_a_forked_child_is_said_to_be_the_parents(tmp_path):
    # A span begun before a fork and ended in the child (a worker that
    # inherited it) does nothing there: the child's tracer is a new one.
    # The warning said "used after it ended", which it had not been.
    result = run_python(f"""
        import os
        import spanguard
        from conftest import tracer_settings
        from pathlib import Path
        t = spanguard.Tracer(**tracer_settings(Path({str(tmp_path)!r})))
        inherited = t.start_span("begun-in-parent")
        pid = os.fork()
        if pid == 0:
            inherited.end()
            os._exit(0)
        os.waitpid(pid, 0)
        inherited.end()
        t.close()
        print("ok")
        """, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert "in a forked child after it began in the parent" in result.stderr, result.stderr


def test_open_spans_are_exported_at_shutdown(tracer, sink):
    still_open = tracer.start_span("still-open")  # noqa: F841 - kept open until the shutdown
    assert tracer.shutdown(10)
    (span,) = read_sink(sink)
    assert span["attributes"]["spanguard.unended"] is True
    assert tracer.stats().spans_unended_at_shutdown == 1


def test_a_span_collected_open_is_ended_and_marked(tmp_path):
    # Spans started and dropped without end (an exception path that skips
    # it, a generator never run to its end) each held a slot for the life
    # of the process: after 4,096 of them nothing more was recorded. One
    # collected open is ended then, marked unended; one whose handle was
    # read is its holder's to end, and stays open.
    t = spanguard.Tracer(**tracer_settings(tmp_path))
    for i in range(5000):
        t.start_span(f"dropped-{i}")
    handed = t.start_span("handed-out")
    handle = handed.handle
    del handed
    gc.collect()
    with t.span("afterwards"):
        pass
    assert t.stats().spans_open == 1, "only the one whose handle was read"
    assert t.flush(10)
    spans = by_name(read_sink(tmp_path / "sink"))
    assert "afterwards" in spans
    assert all(spans[f"dropped-{i}"]["attributes"]["spanguard.unended"] is True for i in range(5000))
    assert "handed-out" not in spans
    assert handle != 0
    t.close()
    assert by_name(read_sink(tmp_path / "sink"))["handed-out"]["attributes"]["spanguard.unended"] is True


def test_the_resource_names_the_python_runtime(tmp_path):
    import sys
    t = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", spool_dir=tmp_path / "spool",
                         install_signal_handlers=False, resource_attributes={"team": "search"})
    t.start_span("one").end()
    assert t.shutdown(10)
    (span,) = read_sink(tmp_path / "sink")
    attrs = span["resource"]
    assert attrs["process.runtime.name"] == sys.implementation.name
    assert attrs["process.runtime.description"] == sys.version.replace("\n", " ")  # commas and all
    assert attrs["team"] == "search"
    t.close()


def test_sink_path_names_the_file_the_spans_arrived_in(tracer, sink):
    tracer.start_span("probe").end()
    assert tracer.flush(10)
    path = Path(tracer.sink_path())
    assert path.parent == sink
    assert [s["name"] for s in read_sink(sink)] == ["probe"]


def test_threads_lose_nothing(tracer, sink):
    def work(t):
        for i in range(500):
            with tracer.span(f"work-{t}", attributes={"i": i}):
                pass

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracer.flush_status(20) is spanguard.FlushStatus.DELIVERED
    spans = read_sink(sink)
    assert len(spans) == 2000
    assert len({(s["name"], s["attributes"]["i"]) for s in spans}) == 2000


def test_the_interpreter_exit_flushes(tmp_path):
    run = run_python(f"""
        import spanguard
        t = spanguard.Tracer(from_env=False, sink_dir={str(tmp_path / 'sink')!r},
                             spool_dir={str(tmp_path / 'spool')!r}, schedule_delay_ms=60000)
        for i in range(10):
            t.start_span('exit').end()
        t.start_span('open at exit')
    """)
    assert run.returncode == 0, run.stderr
    spans = read_sink(tmp_path / "sink")
    assert sorted(s["name"] for s in spans) == ["exit"] * 10 + ["open at exit"]


def test_a_disabled_sdk_records_nothing_and_raises_nothing(tmp_path):
    settings = tracer_settings(tmp_path)
    settings["from_env"] = True
    os.environ["OTEL_SDK_DISABLED"] = "true"
    try:
        t = spanguard.Tracer(**settings)
    finally:
        del os.environ["OTEL_SDK_DISABLED"]
    with t.span("nothing") as s:
        s.set_attribute("k", "v")
    assert not s.is_recording()
    t.close()
    assert read_sink(tmp_path / "sink") == []


_HELD_PORTS = []  # sockets that hold closed_port()'s ports until the tests end


def closed_port():
    """A loopback port nothing listens on: bound, never listened on, and kept
    bound, so that no other test's server is given it (make test runs two
    lanes at once) and answers what was meant to find the backend down."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _HELD_PORTS.append(s)
    return s.getsockname()[1]


def test_flush_tells_delivered_from_spooled(tmp_path):
    t = spanguard.Tracer(from_env=False, service_name="py-spool", endpoint=f"http://127.0.0.1:{closed_port()}/v1/traces",
                         spool_dir=tmp_path / "spool", export_timeout_ms=200, install_signal_handlers=False)
    try:
        for _ in range(3):
            t.start_span("kept").end()
        assert t.flush_status(10) is spanguard.FlushStatus.SPOOLED
        assert list((tmp_path / "spool").glob("*.sgspool")), "the spans are on disk"
    finally:
        t.close()


def test_a_flush_without_time_is_true_when_nothing_is_pending(tracer):
    # OpenTelemetry SDKs' force_flush answers True with nothing to flush;
    # flush(0) answered False (timed out) whatever was pending.
    assert tracer.flush(0) is True
    assert tracer.flush_status(0) is spanguard.FlushStatus.DELIVERED
    tracer.start_span("sent").end()
    assert tracer.flush(10) is True
    assert tracer.flush(0) is True
