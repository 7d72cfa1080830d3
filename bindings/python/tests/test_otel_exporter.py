"""The OpenTelemetry span exporter (`spanguard.otel.SpanguardSpanExporter`),
for what takes only an exporter: zero-code instrumentation
(`OTEL_TRACES_EXPORTER=spanguard opentelemetry-instrument python app.py`),
`Traceloop.init(exporter=...)`. What the loopback receiver or the sink
gets must be the spans an in-memory exporter on the same provider got."""

import json
import os
import subprocess
import sys
import textwrap
import threading
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from conftest import read_sink
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_otel_bridge import assert_same

import spanguard
from spanguard.otel import SpanguardSpanExporter

# An LLM-sized prompt: it must arrive whole.
PROMPT = "".join(chr(ord("a") + i % 26) for i in range(100_000))


def spanguard_tracer(receiver, tmp_path, **settings):
    return spanguard.Tracer(from_env=False, endpoint=receiver.traces_url, spool_dir=tmp_path / "spool",
                            schedule_delay_ms=50, install_signal_handlers=False, **settings)


def agent_spans(provider) -> None:
    """An agent's spans, with everything an exporter carries: a remote-less
    parent and child, a 100 KB prompt, arrays, bytes, events, a link, an
    exception, an error status, a renamed span."""
    agent = provider.get_tracer("my.agent", "1.4.0", schema_url="https://opentelemetry.io/schemas/1.28.0")
    with agent.start_as_current_span("agent.session", kind=trace.SpanKind.SERVER,
                                     attributes={"session.id": "s-1", "turn": 3}) as session:
        session.add_event("plan.ready", {"steps": 2, "tools": ("search", "calc")})
        with agent.start_as_current_span("llm.chat", kind=trace.SpanKind.CLIENT,
                                         links=[trace.Link(session.get_span_context(), {"why": "origin"})]) as llm:
            llm.set_attributes({"gen_ai.prompt.0.content": PROMPT, "gen_ai.usage.input_tokens": 25_000,
                                "gen_ai.response.finish_reasons": ("stop",), "raw": b"\x00\xff"})
            llm.update_name("llm.chat gpt-4o")
            llm.set_status(trace.StatusCode.OK)
        with agent.start_as_current_span("tool.search") as tool:
            tool.record_exception(TimeoutError("upstream timeout"))
            tool.set_status(trace.Status(trace.StatusCode.ERROR, "upstream timeout"))


def one_finished_span() -> tuple:
    """One finished SDK span, as a span processor hands it on."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("finished"):
        pass
    provider.shutdown()
    return memory.get_finished_spans()


@pytest.mark.parametrize("processor", [SimpleSpanProcessor, BatchSpanProcessor])
def test_spans_arrive_as_the_sdk_recorded_them(receiver, tmp_path, processor):
    start = len(receiver.spans())
    tracer = spanguard_tracer(receiver, tmp_path, service_name="spanguard-own")
    exporter = SpanguardSpanExporter(tracer)
    provider = TracerProvider(resource=Resource.create({"service.name": "exported-agent", "replicas": 3}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(processor(exporter))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    agent_spans(provider)
    # A processor's force_flush hands its spans to export; the exporter's
    # flushes spanguard.
    assert provider.force_flush()
    assert exporter.force_flush()
    got = {s["span_id"]: s for s in receiver.spans()[start:]}
    finished = memory.get_finished_spans()
    assert len(finished) == 3 and len(got) == 3
    for otel_span in finished:
        sent = got[f"{otel_span.get_span_context().span_id:016x}"]
        assert_same(otel_span, sent)
        assert sent["resource"]["service.name"] == "exported-agent"
        assert sent["resource"]["replicas"] == 3
        assert sent["resource"]["telemetry.sdk.language"] == "python"
    llm = next(s for s in got.values() if s["name"] == "llm.chat gpt-4o")
    assert llm["attributes"]["gen_ai.prompt.0.content"] == PROMPT
    assert tracer.stats().values_truncated == 0
    provider.shutdown()
    tracer.close()


def test_spans_ended_on_many_threads_all_arrive(receiver, tmp_path):
    """The SimpleSpanProcessor exports each span on the thread that ends it."""
    start = len(receiver.spans())
    tracer = spanguard_tracer(receiver, tmp_path)
    exporter = SpanguardSpanExporter(tracer)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel = provider.get_tracer("threads")

    def work(t):
        for i in range(50):
            with otel.start_as_current_span(f"t{t}.{i}", attributes={"i": i}):
                pass
    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert exporter.force_flush()
    got = receiver.spans()[start:]
    assert sorted(s["name"] for s in got) == sorted(f"t{t}.{i}" for t in range(8) for i in range(50))
    provider.shutdown()
    tracer.close()


def test_a_tracer_passed_in_is_left_running_at_shutdown(tmp_path):
    """The exporter's shutdown is the provider's: a spanguard tracer the
    application passed in may hold its other spans, and stays its own."""
    tracer = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", spool_dir=tmp_path / "spool",
                              install_signal_handlers=False)
    exporter = SpanguardSpanExporter(tracer)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("exported"):
        pass
    provider.shutdown()
    with tracer.span("after the provider") as native:
        assert native.is_recording()
    assert exporter.export(one_finished_span()) is SpanExportResult.FAILURE
    assert exporter.force_flush() is False
    assert tracer.shutdown(10)
    assert sorted(s["name"] for s in read_sink(tmp_path / "sink")) == ["after the provider", "exported"]
    tracer.close()


def test_the_providers_shutdown_delivers_what_went_to_a_tracer_passed_in(tmp_path):
    """After the provider's shutdown the spans it exported are at the
    backend (or spooled), as after the SDK's own exporter's and the Node
    and Go exporters': with a tracer passed in they waited in its queue
    (for its schedule, here a minute) and were lost to a process that
    ended then without running its exit hooks (a multiprocessing worker,
    which leaves by os._exit). The tracer stays running, its owner's."""
    tracer = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", spool_dir=tmp_path / "spool",
                              schedule_delay_ms=60_000, install_signal_handlers=False)
    exporter = SpanguardSpanExporter(tracer)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("exported"):
        pass
    provider.shutdown()
    assert [s["name"] for s in read_sink(tmp_path / "sink")] == ["exported"]
    with tracer.span("after the provider") as native:
        assert native.is_recording()
    tracer.close()


def test_a_tracer_of_its_own_comes_from_the_environment_and_is_shut_down(tmp_path, monkeypatch):
    """With no arguments (how the SDK's configurator constructs it) the
    exporter makes a tracer from the SPANGUARD_* and OTEL_* variables, and
    the provider's shutdown delivers its spans (nothing else would before
    the interpreter's exit)."""
    for name in list(os.environ):
        if name.startswith(("OTEL_", "SPANGUARD_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SPANGUARD_SINK_DIR", str(tmp_path / "sink"))
    monkeypatch.setenv("SPANGUARD_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("SPANGUARD_SIGNAL_HANDLERS", "false")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # nothing sent before the shutdown
    exporter = SpanguardSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "env-agent"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("exported"):
        pass
    provider.shutdown()
    (got,) = read_sink(tmp_path / "sink")
    assert (got["name"], got["resource"]["service.name"]) == ("exported", "env-agent")
    assert exporter.export(one_finished_span()) is SpanExportResult.FAILURE


def test_the_exporters_tracer_and_its_counters_are_public(tmp_path, monkeypatch):
    """`exporter.tracer` is the tracer it records into (the one passed in,
    or the one it made), so that a program given only an exporter reads
    its counters as of a tracer of its own: the spans exported, where the
    sink wrote them. Before, it was private (`_tracer`)."""
    tracer = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", spool_dir=tmp_path / "spool",
                              install_signal_handlers=False)
    assert SpanguardSpanExporter(tracer).tracer is tracer
    tracer.close()
    for name in list(os.environ):
        if name.startswith(("OTEL_", "SPANGUARD_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SPANGUARD_SINK_DIR", str(tmp_path / "own"))
    monkeypatch.setenv("SPANGUARD_SPOOL_DIR", str(tmp_path / "own-spool"))
    monkeypatch.setenv("SPANGUARD_SIGNAL_HANDLERS", "false")
    exporter = SpanguardSpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    for name in ("one", "two"):
        with provider.get_tracer("t").start_as_current_span(name):
            pass
    assert provider.force_flush()
    assert exporter.force_flush()
    own = exporter.tracer
    assert isinstance(own, spanguard.Tracer)
    stats = own.stats()
    assert (stats.spans_exported, stats.spooled_spans) == (2, 0)
    assert own.sink_path() is not None
    assert sorted(s["name"] for s in read_sink(tmp_path / "own")) == ["one", "two"]
    provider.shutdown()


def test_export_after_the_tracer_closed_fails_without_raising(tmp_path, caplog):
    """A span the tracer cannot take answers FAILURE, never an exception
    into the SDK, and a closed tracer is not reported as a failure."""
    with spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", spool_dir=tmp_path / "spool",
                          install_signal_handlers=False) as tracer:
        exporter = SpanguardSpanExporter(tracer)
    spans = one_finished_span()
    with caplog.at_level("WARNING", logger="spanguard"):
        assert exporter.export(spans) is SpanExportResult.FAILURE
        assert exporter.force_flush() is False
        exporter.shutdown()
    assert not [r for r in caplog.records if "failed" in r.getMessage()]


def test_a_span_it_cannot_read_fails_the_export_without_raising(tmp_path, caplog):
    tracer = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", spool_dir=tmp_path / "spool",
                              install_signal_handlers=False)
    exporter = SpanguardSpanExporter(tracer)
    with caplog.at_level("WARNING", logger="spanguard"):
        assert exporter.export([object(), *one_finished_span()]) is SpanExportResult.FAILURE
    assert [r for r in caplog.records if "bridge failed in export" in r.getMessage()]
    assert tracer.shutdown(10)
    assert [s["name"] for s in read_sink(tmp_path / "sink")] == ["finished"]  # the one it could read
    tracer.close()


def test_a_span_with_zero_ids_is_refused_saying_so(tmp_path, caplog):
    """A span whose context is invalid (all-zero trace or span id) is
    refused; the warning said "an argument is out of range (a span kind is
    KIND_*...)", sending its user looking at the kind. The other spans of
    the batch are recorded."""
    from opentelemetry.sdk.trace import ReadableSpan
    tracer = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", spool_dir=tmp_path / "spool",
                              install_signal_handlers=False)
    exporter = SpanguardSpanExporter(tracer)
    zero = ReadableSpan(name="zero.ids", context=trace.SpanContext(0, 0, False, trace.TraceFlags(1)),
                        start_time=1, end_time=2)
    with caplog.at_level("WARNING", logger="spanguard"):
        assert exporter.export([zero, *one_finished_span()]) is SpanExportResult.FAILURE
    (record,) = [r for r in caplog.records if "bridge failed in export" in r.getMessage()]
    message = str(record.exc_info[1])
    assert "trace id is all zero" in message and "zero.ids" in message, message
    assert "KIND_" not in message
    assert tracer.shutdown(10)
    assert [s["name"] for s in read_sink(tmp_path / "sink")] == ["finished"]
    tracer.close()


def test_a_span_without_a_scope_warns_of_no_deprecation(tmp_path):
    """A span with no instrumentation scope (instrumentation_scope None, as
    a ReadableSpan made by hand has it) is exported without a warning: the
    exporter fell back to the deprecated instrumentation_info, which said
    DeprecationWarning into the program's output. SDKs that have only
    instrumentation_info (before 1.11.1) still give their scope."""
    import warnings

    from opentelemetry.sdk.trace import ReadableSpan
    tracer = spanguard.Tracer(from_env=False, sink_dir=tmp_path / "sink", spool_dir=tmp_path / "spool",
                              install_signal_handlers=False)
    exporter = SpanguardSpanExporter(tracer)
    unscoped = ReadableSpan(name="unscoped", context=trace.SpanContext(1, 2, False, trace.TraceFlags(1)),
                            start_time=1, end_time=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert exporter.export([unscoped]) is SpanExportResult.SUCCESS
    assert tracer.shutdown(10)
    assert [s["name"] for s in read_sink(tmp_path / "sink")] == ["unscoped"]
    tracer.close()


def test_it_takes_only_a_spanguard_tracer():
    with pytest.raises(TypeError):
        SpanguardSpanExporter("http://localhost:4318")


# What `opentelemetry-instrument python agent.py` runs: the application
# makes its spans through the global API and sets up nothing.
ZERO_CODE_AGENT = textwrap.dedent("""
    import json
    import sys

    from opentelemetry import trace

    tracer = trace.get_tracer("zero.code.agent")
    with tracer.start_as_current_span("agent.session") as session:
        with tracer.start_as_current_span("llm.chat", kind=trace.SpanKind.CLIENT) as llm:
            llm.set_attribute("gen_ai.prompt.0.content", sys.argv[1] * 4000)
    print(json.dumps({"provider": type(trace.get_tracer_provider()).__name__,
                      "trace_id": f"{session.get_span_context().trace_id:032x}",
                      "session": f"{session.get_span_context().span_id:016x}",
                      "llm": f"{llm.get_span_context().span_id:016x}"}))
""")


def zero_code_env(tmp_path: Path, instrumentors: bool = False, **extra) -> dict:
    """The environment of a zero-code run. Without `instrumentors`, every
    instrumentor installed in the venv is left out
    (OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, by their entry-point names): the
    OpenAI ones import openai in every interpreter the run starts, some 10 s
    each on a loaded machine, for programs that make their spans through the
    API. The distro, the configurator and spanguard's exporter run as ever."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANGUARD_"))}
    env.update(OTEL_TRACES_EXPORTER="spanguard", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
               OTEL_SERVICE_NAME="zero-code-agent", SPANGUARD_SINK_DIR=str(tmp_path / "sink"),
               SPANGUARD_SPOOL_DIR=str(tmp_path / "spool"), XDG_STATE_HOME=str(tmp_path / "state"), **extra)
    if not instrumentors:
        env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = ",".join(
            sorted({e.name for e in entry_points(group="opentelemetry_instrumentor")}))
    return env


@pytest.mark.parametrize("protocol", [None, "http/protobuf", "grpc", "--exporter_otlp_protocol=grpc"],
                         ids=["distro-default-protocol", "http-protobuf", "users-grpc", "users-grpc-flag"])
def test_zero_code_instrumentation_delivers_the_spans(tmp_path, protocol):
    """`OTEL_TRACES_EXPORTER=spanguard opentelemetry-instrument python
    agent.py`: the SDK's configurator finds the exporter by its entry point
    and the spans reach the sink under OTEL_SERVICE_NAME at the exit. The
    distro sets OTEL_EXPORTER_OTLP_PROTOCOL to grpc when it is unset, its
    own default: a user who set nothing sees no warning about it (they
    saw one telling them to change a setting they never made). A user who
    set grpc, in the environment or with opentelemetry-instrument's own
    flag, is told on stderr; spanguard still starts and records."""
    (tmp_path / "agent.py").write_text(ZERO_CODE_AGENT)
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    flags = [protocol] if protocol and protocol.startswith("--") else []
    extra = {"OTEL_EXPORTER_OTLP_PROTOCOL": protocol} if protocol and not flags else {}
    proc = subprocess.run([str(instrument), *flags, sys.executable, str(tmp_path / "agent.py"), "tokens "],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=zero_code_env(tmp_path, **extra))
    assert proc.returncode == 0, proc.stderr
    assert "Failed to auto initialize" not in proc.stderr, proc.stderr
    made = json.loads(proc.stdout.splitlines()[-1])
    assert made["provider"] == "TracerProvider", proc.stderr
    got = {s["name"]: s for s in read_sink(tmp_path / "sink")}
    assert sorted(got) == ["agent.session", "llm.chat"], proc.stderr
    session, llm = got["agent.session"], got["llm.chat"]
    assert (session["trace_id"], session["span_id"], session["parent_span_id"]) == \
        (made["trace_id"], made["session"], "")
    assert (llm["trace_id"], llm["span_id"], llm["parent_span_id"]) == \
        (made["trace_id"], made["llm"], made["session"])
    assert llm["attributes"]["gen_ai.prompt.0.content"] == "tokens " * 4000
    for span in got.values():
        assert span["resource"]["service.name"] == "zero-code-agent"
        assert span["resource"]["telemetry.sdk.language"] == "python"
        assert span["scope"] == "zero.code.agent"
    assert ("OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in proc.stderr) == (protocol is not None and "grpc" in protocol), \
        proc.stderr


# An instrumented agent with children: a program of its own run by
# subprocess, and multiprocessing's spawn and forkserver workers. Each child
# is a new interpreter that inherits the environment, the distro's grpc
# default included, and runs opentelemetry-instrument's sitecustomize again.
ZERO_CODE_PARENT = textwrap.dedent("""
    import multiprocessing
    import subprocess
    import sys

    from opentelemetry import trace


    def child(tag):
        with trace.get_tracer("zero.code.child").start_as_current_span("child." + tag):
            pass


    if __name__ == "__main__":
        if sys.argv[1:]:
            child(sys.argv[1])
        else:
            with trace.get_tracer("zero.code.parent").start_as_current_span("parent"):
                subprocess.run([sys.executable, __file__, "popen"], check=True)
                for method in ("spawn", "forkserver"):
                    worker = multiprocessing.get_context(method).Process(target=child, args=(method,))
                    worker.start()
                    worker.join()
                    assert worker.exitcode == 0, (method, worker.exitcode)
""")


@pytest.mark.parametrize("users_grpc", [False, True], ids=["distro-default-protocol", "users-grpc"])
def test_zero_code_children_judge_the_protocol_as_their_parent(tmp_path, users_grpc):
    """A child of an instrumented agent finds the distro's grpc in the
    environment it started with, as if the user had exported it, and
    warned a user who set nothing, once per worker. The parent now names
    the distro's variables for its children: nobody set grpc -> no warning
    in any process; the user exported grpc -> warned in the parent and in
    every child. The spans of every process reach the sink: each of them
    ran spanguard."""
    (tmp_path / "agent.py").write_text(ZERO_CODE_PARENT)
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    extra = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"} if users_grpc else {}
    proc = subprocess.run([str(instrument), sys.executable, str(tmp_path / "agent.py")],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path,
                          env=zero_code_env(tmp_path, **extra))
    assert proc.returncode == 0, proc.stderr
    assert "Failed to auto initialize" not in proc.stderr, proc.stderr
    names = sorted(s["name"] for s in read_sink(tmp_path / "sink"))
    assert names == ["child.forkserver", "child.popen", "child.spawn", "parent"], proc.stderr
    warnings = proc.stderr.count("OTEL_EXPORTER_OTLP_PROTOCOL=grpc")
    if users_grpc:
        # The parent, the popen and spawn children and the forkserver's
        # server at least (multiprocessing's resource tracker is a Python
        # interpreter too, and the forkserver's forked child says it again).
        assert warnings >= 4, proc.stderr
    else:
        assert warnings == 0, proc.stderr


def test_the_distro_set_names_hold_only_while_the_value_does(monkeypatch):
    """_SPANGUARD_DISTRO_SET, inherited from an instrumented parent, names
    the distro's grpc: read as unset while the variable still holds it. A
    child given another value (GRPC, which spanguard reads as grpc too) set
    it on purpose: the user's, and the stale entry is dropped so that this
    process's own children do not inherit it."""
    monkeypatch.setenv("_SPANGUARD_DISTRO_SET", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert spanguard._env_set_by_host() == "OTEL_EXPORTER_OTLP_PROTOCOL"
    assert os.environ["_SPANGUARD_DISTRO_SET"] == "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "GRPC")
    assert spanguard._env_set_by_host() is None
    assert "_SPANGUARD_DISTRO_SET" not in os.environ


def test_the_distro_marker_is_read_by_the_library_itself(monkeypatch, tmp_path, capfd):
    """The library reads _SPANGUARD_DISTRO_SET itself (as a Node, Go or C
    child does), by the table the package reads it by: a tracer given its
    own env_set_by_host, so that the package judges nothing, still reads
    the marked grpc as unset and says nothing; unmarked, grpc is warned of."""
    assert spanguard._DISTRO_DEFAULTS == {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert spanguard._DISTRO_SET_VARIABLE == "_SPANGUARD_DISTRO_SET"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    for marker, warned in (("OTEL_EXPORTER_OTLP_PROTOCOL=grpc", False), (None, True)):
        if marker:
            monkeypatch.setenv("_SPANGUARD_DISTRO_SET", marker)
        else:
            monkeypatch.delenv("_SPANGUARD_DISTRO_SET", raising=False)
        t = spanguard.Tracer(env_set_by_host="", sink_dir=str(tmp_path / "sink"),
                             spool_dir=str(tmp_path / "spool"), install_signal_handlers=False)
        assert t.shutdown(10)
        t.close()
        said = capfd.readouterr().err
        assert ("OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in said) == warned, (marker, said)


# `os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc"` in the program, then
# OpenTelemetry's auto-instrumentation started from code (notebooks, agent
# scripts): the distro is loaded, but the user set grpc before it ran.
CODE_SETS_PROTOCOL = textwrap.dedent("""
    import os
    import sys

    if sys.argv[1] != "unset":
        os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = sys.argv[1]
    from opentelemetry.instrumentation.auto_instrumentation import initialize

    initialize()
    from opentelemetry import trace

    with trace.get_tracer("code.sets.protocol").start_as_current_span("code." + sys.argv[1].replace("/", "-")):
        pass
""")


@pytest.mark.parametrize("protocol", ["grpc", "http/json"])
def test_protocol_set_by_the_users_code_before_the_distro_is_the_users(tmp_path, protocol):
    """grpc set by the program itself before auto-instrumentation runs is
    in no environment the process started with, so it was taken for the
    distro's default and read as unset without a word: the spans went as
    http/protobuf to a user who believed they went as grpc. It is the
    user's: warned; http/json is used as set, without a warning."""
    (tmp_path / "agent.py").write_text(CODE_SETS_PROTOCOL)
    proc = subprocess.run([sys.executable, str(tmp_path / "agent.py"), protocol],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=zero_code_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "Failed to auto initialize" not in proc.stderr, proc.stderr
    assert [s["name"] for s in read_sink(tmp_path / "sink")] == ["code." + protocol.replace("/", "-")], proc.stderr
    assert ("OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in proc.stderr) == (protocol == "grpc"), proc.stderr


# A zero-code agent as a demanding user runs one: 200 traces under the
# SDK's ratio sampler, then an LLM call by the openai client (instrumented
# by whatever opentelemetry-instrument finds installed: here both
# opentelemetry-instrumentation-openai-v2 and OpenInference's) with a 60 KB
# prompt, under a sampled remote parent so that it is kept.
ZERO_CODE_LLM_AGENT = textwrap.dedent("""
    import json
    import sys

    import openai
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    tracer = trace.get_tracer("zero.code.agent")
    sampled = []
    for i in range(200):
        with tracer.start_as_current_span(f"root.{i}") as s:
            if s.get_span_context().trace_flags.sampled:
                sampled.append(f"{s.get_span_context().span_id:016x}")
    parent = trace.set_span_in_context(NonRecordingSpan(SpanContext(
        0x5b8efff798038103d269b633813fc60c, 0xeee19b7ec3c1b174, is_remote=True, trace_flags=TraceFlags(1))))
    with tracer.start_as_current_span("agent.session", context=parent):
        client = openai.OpenAI(base_url=sys.argv[1], api_key="test-key", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": sys.argv[2]}])
    print(json.dumps({"sampled": sampled}))
""")


def test_zero_code_sampler_resource_and_a_60kb_openai_prompt_arrive_as_the_sdk_made_them(tmp_path):
    """Under `opentelemetry-instrument` with OTEL_TRACES_SAMPLER,
    OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES set: every span the
    SDK's sampler kept arrives (spanguard, which reads the same sampler
    variables, samples nothing again) and none it dropped; the resource
    carries each attribute once (the SDK's resource, not the SDK's and
    spanguard's side by side); the OpenAI instrumentations' spans carry
    the 60 KB prompt and its echo whole; and `spanguard show` (the wheel's
    command) prints them whole from the sink."""
    from fake_openai import FakeOpenAI
    from otlp_receiver import JSON, decode_request

    (tmp_path / "agent.py").write_text(ZERO_CODE_LLM_AGENT)
    prompt = "".join(chr(ord("a") + (i * 7) % 26) for i in range(60_000))
    bin_dir = Path(sys.executable).parent
    env = zero_code_env(tmp_path, instrumentors=True,
                        OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0.5",
                        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=prod,team=agents,service.name=not-this",
                        OTEL_SEMCONV_STABILITY_OPT_IN="gen_ai_latest_experimental",
                        OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="SPAN_ONLY")
    with FakeOpenAI() as server:
        proc = subprocess.run([str(bin_dir / "opentelemetry-instrument"), sys.executable, str(tmp_path / "agent.py"),
                               server.base_url, prompt], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                              env=env)
    assert proc.returncode == 0, proc.stderr
    assert "spanguard: warn" not in proc.stderr, proc.stderr
    sampled = set(json.loads(proc.stdout.splitlines()[-1])["sampled"])
    assert 0 < len(sampled) < 200
    spans, resources = [], []
    for f in sorted((tmp_path / "sink").glob("*.jsonl")):
        for line in f.read_text().split("\n"):
            if line.strip():
                request, _ = decode_request(line.encode(), JSON, None, strict=True)
                for rs in request.resource_spans:
                    resources.append([kv.key for kv in rs.resource.attributes])
                    for ss in rs.scope_spans:
                        spans.extend((sp, ss.scope.name) for sp in ss.spans)
    for keys in resources:
        assert sorted(keys) == sorted(set(keys)), keys
    assert {s["name"] for s in read_sink(tmp_path / "sink")} >= {"agent.session"}
    for span in read_sink(tmp_path / "sink"):
        assert (span["resource"]["service.name"], span["resource"]["deployment.environment"],
                span["resource"]["team"]) == ("zero-code-agent", "prod", "agents")
    roots = {sp.span_id.hex() for sp, _ in spans if sp.name.startswith("root.")}
    assert roots == sampled
    attributes = {scope: {a.key: a.value.string_value for a in sp.attributes}
                  for sp, scope in spans if not sp.name.startswith(("root.", "agent."))}
    v2 = attributes["opentelemetry.util.genai.handler"]  # opentelemetry-instrumentation-openai-v2's
    assert json.loads(v2["gen_ai.input.messages"])[0]["parts"][0]["content"] == prompt
    assert json.loads(v2["gen_ai.output.messages"])[0]["parts"][0]["content"] == f"echo: {prompt}"
    openinference = attributes["openinference.instrumentation.openai"]
    assert openinference["llm.input_messages.0.message.content"] == prompt
    assert openinference["llm.output_messages.0.message.content"] == f"echo: {prompt}"
    shown = subprocess.run([str(bin_dir / "spanguard"), "show", str(tmp_path / "sink"), "--color", "never",
                            "--attributes", "--full"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "chat gpt-4o-mini" in shown.stdout
    assert f"echo: {prompt}" in shown.stdout


def thread_of_messages(levels: int, content: str) -> list:
    """An agent's message list `levels` deep (a list, then a dict, in
    turn: each message's replies in its "thread"), the first message's
    content `content`."""
    v = None
    for i in range(levels // 2):
        v = [{"role": "assistant" if i % 2 else "user", "content": f"turn {i}", "thread": v}]
    v[0]["content"] = content
    return v


def cut_at(v, levels: int):
    """`v` as spanguard's depth cut leaves it: lists and dicts past
    `levels` replaced by the empty value (None as received)."""
    if levels == 0:
        return None if isinstance(v, (list, dict)) else v
    if isinstance(v, dict):
        return {k: cut_at(x, levels - 1) for k, x in v.items()}
    if isinstance(v, list):
        return [cut_at(x, levels - 1) for x in v]
    return v


@pytest.mark.parametrize("too_large", [None, 300_000])
def test_a_megabyte_prompt_in_messages_nested_40_deep_arrives_cut_counted_once(receiver, tmp_path, too_large):
    # An agent's message list 40 deep (20 lists, 20 dicts), the first
    # message's content a 1 MB prompt, through the SDK's batch processor
    # and spanguard's exporter to a receiver whose protobuf decoder (upb,
    # 100 messages) refuses it whole. The span arrives, the list emptied
    # past level 16, counted once. With the receiver also answering 413
    # over 300 KB (checked before it decodes): the prompt cut to a size,
    # then the list to the depth; one value cut both ways, counted once.
    import random
    rng = random.Random(38)
    prompt = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(1 << 20))
    messages = thread_of_messages(40, prompt)
    start = len(receiver.spans())
    if too_large is not None:
        receiver.set_mode(f"too_large:{too_large}")
    try:
        tracer = spanguard_tracer(receiver, tmp_path)
        exporter = SpanguardSpanExporter(tracer)
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        with provider.get_tracer("agent").start_as_current_span("llm.chat") as span:
            span.set_attribute("gen_ai.input.messages", messages)
            span.set_attribute("gen_ai.usage.input_tokens", 250_000)
        assert provider.force_flush()
        assert exporter.force_flush()
    finally:
        receiver.reset_mode()
    (got,) = receiver.spans()[start:]
    assert got["name"] == "llm.chat"
    assert got["attributes"]["gen_ai.usage.input_tokens"] == 250_000
    arrived = got["attributes"]["gen_ai.input.messages"]
    content = arrived[0]["content"]
    if too_large is None:
        assert arrived == cut_at(messages, 16)
    else:
        assert 0 < len(content) < len(prompt) and prompt.startswith(content)
        arrived[0]["content"] = prompt
        assert arrived == cut_at(messages, 16)
    stats = tracer.stats()
    assert (stats.spans_exported, stats.dropped_export_failed) == (1, 0)
    assert stats.values_truncated == 1
    provider.shutdown()
    tracer.close()


def test_zero_code_with_the_sdks_otlp_exporter_beside_spanguards_is_warned_once(tmp_path, receiver):
    """`OTEL_TRACES_EXPORTER=otlp,spanguard` with OTEL_EXPORTER_OTLP_ENDPOINT
    set: both exporters send to that backend, which receives every span
    twice (4 for the agent's 2). Said once on stderr, naming the backend;
    before, nothing was said."""
    (tmp_path / "agent.py").write_text(ZERO_CODE_AGENT)
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    start = len(receiver.raw_spans())
    env = zero_code_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    env["OTEL_TRACES_EXPORTER"] = "otlp,spanguard"
    proc = subprocess.run([str(instrument), sys.executable, str(tmp_path / "agent.py"), "tokens "],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("arrives there twice") == 1, proc.stderr
    # Both delivered before the process ended (at its exit hooks).
    names = sorted(s["name"] for s in receiver.raw_spans()[start:])
    assert names == ["agent.session", "agent.session", "llm.chat", "llm.chat"], names
