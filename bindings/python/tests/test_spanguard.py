"""The Python binding against the real library: spans go to a sink
directory and are read back as OTLP/JSON lines."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import spanguard  # noqa: E402


def read_spans(sink: Path):
    spans = []
    for f in sink.glob("*.jsonl"):
        for line in f.read_text().splitlines():
            for rs in json.loads(line)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for s in ss.get("spans", []):
                        s["attrs"] = {a["key"]: a["value"] for a in s.get("attributes", [])}
                        spans.append(s)
    return spans


@pytest.fixture
def tracer(tmp_path):
    t = spanguard.Tracer(from_env=False, service_name="py-test", sink_dir=tmp_path / "sink",
                         spool_dir=tmp_path / "spool", schedule_delay_ms=50, install_signal_handlers=False)
    yield t
    t.close()


def test_nested_with_blocks_and_the_decorator_make_one_trace(tracer, tmp_path):
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
    spans = {s["name"]: s for s in read_spans(tmp_path / "sink")}
    assert set(spans) == {"agent.session", "llm.chat",
                          "test_nested_with_blocks_and_the_decorator_make_one_trace.<locals>.tool_call"}
    root = spans["agent.session"]
    assert "parentSpanId" not in root and root["kind"] == spanguard.KIND_SERVER
    for name, s in spans.items():
        assert s["traceId"] == root["traceId"]
        if s is not root:
            assert s["parentSpanId"] == root["spanId"]
    llm = spans["llm.chat"]["attrs"]
    assert llm["gen_ai.usage.input_tokens"] == {"intValue": "12"}
    assert llm["stream"] == {"boolValue": True}
    assert llm["temperature"] == {"doubleValue": 0.5}
    assert llm["gen_ai.request.model"] == {"stringValue": "gpt-4o"}


def test_an_exception_marks_the_span_as_an_error_and_propagates(tracer, tmp_path):
    with pytest.raises(ValueError):
        with tracer.span("tool.call"):
            raise ValueError("upstream timeout")
    tracer.flush(10)
    (span,) = read_spans(tmp_path / "sink")
    assert span["status"] == {"code": spanguard.STATUS_ERROR, "message": "upstream timeout"}
    assert span["events"][0]["name"] == "exception"


def test_traceparent_round_trip_continues_the_trace(tracer):
    with tracer.span("client") as client:
        tp = client.traceparent()
    assert len(tp) == 55 and tp.startswith("00-")
    remote = tracer.start_span_from_traceparent("server", tp)
    assert remote.traceparent()[3:35] == tp[3:35]
    remote.end()
    with pytest.raises(spanguard.SpanguardError) as err:
        tracer.start_span_from_traceparent("bad", "00-nothex-01")
    assert err.value.code == 10  # SPANGUARD_RESULT_INVALID_TRACEPARENT


def test_bad_input_and_lifecycle_errors(tracer):
    span = tracer.start_span("once")
    span.end()
    span.end()  # the binding ends a span once
    with pytest.raises(spanguard.SpanguardError):
        spanguard.Span(span.handle, "again").end()  # already ended
    with pytest.raises(TypeError):
        spanguard.Tracer(from_env=False, no_such_setting=1)
    with pytest.raises(spanguard.SpanguardError) as bad_cap:
        spanguard.Tracer(from_env=False, exporter_max_cpu_percent=101)
    assert bad_cap.value.code == 11  # SPANGUARD_RESULT_INVALID_CONFIG
    # The exception names the field, its variable and the value.
    assert "exporter_max_cpu_percent (SPANGUARD_EXPORTER_MAX_CPU_PERCENT)=101" in str(bad_cap.value)
    assert tracer.shutdown(10)
    assert tracer.shutdown(10)  # twice is fine
    with pytest.raises(spanguard.SpanguardError) as err:
        tracer.start_span("late")
    assert err.value.code == 5  # SPANGUARD_RESULT_SHUT_DOWN


def test_open_spans_are_exported_at_shutdown(tracer, tmp_path):
    tracer.start_span("forgotten")
    assert tracer.shutdown(10)
    (span,) = read_spans(tmp_path / "sink")
    assert span["attrs"]["spanguard.unended"] == {"boolValue": True}
    assert tracer.stats().spans_unended_at_shutdown == 1


def test_the_resource_names_the_python_runtime(tmp_path):
    t = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", install_signal_handlers=False,
                         resource_attributes={"team": "search"})
    t.start_span("one").end()
    assert t.shutdown(10)
    (f,) = (tmp_path / "sink").glob("*.jsonl")
    (rs,) = json.loads(f.read_text().splitlines()[0])["resourceSpans"]
    attrs = {a["key"]: a["value"].get("stringValue") for a in rs["resource"]["attributes"]}
    assert attrs["process.runtime.name"] == sys.implementation.name
    assert attrs["process.runtime.description"] == sys.version.replace("\n", " ")  # commas and all
    assert attrs["team"] == "search"


def test_sink_path_names_the_file_the_spans_arrived_in(tracer, tmp_path):
    tracer.start_span("probe").end()
    assert tracer.flush(10)
    path = Path(tracer.sink_path())
    assert path.parent == tmp_path / "sink"
    assert '"probe"' in path.read_text()


def test_threads_lose_nothing(tracer):
    def work():
        for i in range(500):
            with tracer.span("work", attributes={"i": i}):
                pass

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracer.flush(20)
    stats = tracer.stats()
    assert stats.spans_exported == 2000
    assert stats.dropped_buffer_full == 0


def test_a_wrong_library_path_fails_loudly(tmp_path):
    code = ("import spanguard; spanguard.load_library('/nonexistent/libspanguard.so')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(Path(spanguard.__file__).parents[1])))
    assert run.returncode != 0
    assert "cannot load libspanguard" in run.stderr and "SPANGUARD_LIB" in run.stderr


def test_the_interpreter_exit_flushes(tmp_path):
    code = ("import spanguard\n"
            f"t = spanguard.Tracer(from_env=False, sink_dir={str(tmp_path / 'sink')!r}, "
            f"spool_dir={str(tmp_path / 'spool')!r}, schedule_delay_ms=60000)\n"
            "for i in range(10):\n    t.start_span('exit').end()\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(Path(spanguard.__file__).parents[1])))
    assert run.returncode == 0, run.stderr
    assert len(read_spans(tmp_path / "sink")) == 10


def test_the_python_success_check_agrees_with_the_library():
    lib = spanguard._lib()
    for code in range(256):
        assert (code in spanguard._OK_CODES) == bool(lib.spanguard_result_is_ok(code)), code
