"""An agent served over HTTP, the way users deploy one: gunicorn (prefork,
sync workers) with a Flask app, and uvicorn (one process) with an ASGI
app, each with the OpenTelemetry SDK and spanguard's bridge. Requests are
driven with urllib, then the server is stopped with SIGTERM, as a
supervisor (systemd, Kubernetes, docker stop) stops it: every span of
every request must be in the sink once (decoded by opentelemetry-proto),
and no span left in the spool directory."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from conftest import read_sink

BIN = Path(sys.executable).parent
REQUESTS = 20

FLASK_APP = textwrap.dedent("""
    import os

    from flask import Flask
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    import spanguard
    from spanguard.otel import SpanguardSpanProcessor


    def setup():
        provider = TracerProvider()
        provider.add_span_processor(SpanguardSpanProcessor(spanguard.Tracer(service_name="gunicorn-agent")))
        trace.set_tracer_provider(provider)


    if os.environ["SETUP"] == "import":  # with --preload: in the master, before the fork
        setup()

    app = Flask(__name__)


    @app.route("/ping")
    def ping():
        return "ok"


    @app.route("/work/<int:n>")
    def work(n):
        tracer = trace.get_tracer("agent")
        with tracer.start_as_current_span("request", attributes={"n": n}):
            with tracer.start_as_current_span("llm.chat", attributes={"n": n}):
                pass
        return str(os.getpid())


    @app.route("/stuck")
    def stuck():
        import time
        tracer = trace.get_tracer("agent")
        with tracer.start_as_current_span("stuck"):
            open(os.path.join(os.environ["READY_DIR"], "stuck"), "w").close()
            time.sleep(120)
        return "never"
""")

GUNICORN_CONF = textwrap.dedent("""
    import os
    from pathlib import Path


    def post_fork(server, worker):
        if os.environ["SETUP"] == "post_fork":
            import app
            app.setup()


    def post_worker_init(worker):
        # The worker's own SIGTERM handler is in: a SIGTERM before it goes to
        # the master's handler the worker inherited, and gunicorn itself
        # then waits for graceful_timeout and kills the worker.
        Path(os.environ["READY_DIR"], str(os.getpid())).touch()
""")

ASGI_APP = textwrap.dedent("""
    import os

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import spanguard
    from spanguard.otel import SpanguardSpanExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(SpanguardSpanExporter(spanguard.Tracer(service_name="uvicorn-agent"))))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("agent")


    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = b"ok"
        if scope["path"].startswith("/work/"):
            n = int(scope["path"].rsplit("/", 1)[1])
            with tracer.start_as_current_span("request", attributes={"n": n}):
                with tracer.start_as_current_span("llm.chat", attributes={"n": n}):
                    pass
            body = str(os.getpid()).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(tmp_path: Path, app_source: str, cmd: list[str], **env_extra) -> tuple[subprocess.Popen, int]:
    (tmp_path / "app.py").write_text(app_source)
    (tmp_path / "gunicorn_conf.py").write_text(GUNICORN_CONF)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
    env.update(SPANGUARD_SINK_DIR=str(tmp_path / "sink"), SPANGUARD_SPOOL_DIR=str(tmp_path / "spool"),
               XDG_STATE_HOME=str(tmp_path / "state"), **env_extra)
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([str(BIN / cmd[0]), *[c.format(port=port) for c in cmd[1:]]], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, port


def get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.read().decode()


def wait_until_serving(proc: subprocess.Popen, port: int, tmp_path: Path, workers: int = 0):
    deadline = time.monotonic() + 60
    while True:
        try:
            get(port, "/ping")
            ready = tmp_path / "ready"
            if not workers or (ready.exists() and len(list(ready.iterdir())) >= workers):
                return
        except OSError:
            pass
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        assert time.monotonic() < deadline, "the server did not start:\n" + (tmp_path / "server.log").read_text()
        time.sleep(0.05)


def stop(proc: subprocess.Popen, tmp_path: Path, signum: int) -> int:
    os.kill(proc.pid, signum)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("the server did not stop:\n" + (tmp_path / "server.log").read_text())


def assert_every_request_span_once(tmp_path: Path):
    spans = read_sink(tmp_path / "sink")
    got = Counter((s["name"], s["attributes"]["n"]) for s in spans)
    want = {(name, n) for n in range(REQUESTS) for name in ("request", "llm.chat")}
    missing = want - set(got)
    assert not missing, f"{len(missing)} of {len(want)} spans did not arrive:\n" + (tmp_path / "server.log").read_text()
    assert set(got.values()) == {1}, f"spans arrived twice: {[k for k, v in got.items() if v > 1]}"
    assert len(spans) == len(want), f"spans nobody made: {[s['name'] for s in spans]}"
    # A SIGTERM leaves the watchdog's dump of what was open (nothing here)
    # in the spool directory: no span may be there for a next start to send.
    spool = tmp_path / "spool"
    if spool.exists() and any(spool.iterdir()):
        show = subprocess.run([str(BIN / "spanguard"), "show", str(spool)], capture_output=True, text=True)
        assert "no spans found" in show.stderr, f"spans left in the spool directory:\n{show.stdout}"


@pytest.mark.parametrize("setup", ["post_fork", "preload"])
def test_gunicorn_sigterm_delivers_every_worker_span(tmp_path, setup):
    """Two sync workers, spanguard set up in each by post_fork, or once at
    import in the master with --preload (each forked worker then starts
    its own exporter and watchdog; the master's tracer sends nothing of
    theirs twice): what gunicorn's graceful stop (SIGTERM to the master,
    then to each worker, which leaves through sys.exit) gives is every
    span, once."""
    gunicorn_stopped_by_sigterm_delivers_every_span(tmp_path, setup)


def gunicorn_stopped_by_sigterm_delivers_every_span(tmp_path: Path, setup: str, *worker_args: str) -> None:
    """Two workers (`worker_args`: their class, sync by default) serve
    REQUESTS requests; SIGTERM to the master; every span once."""
    (tmp_path / "ready").mkdir()
    preload = ["--preload"] if setup == "preload" else []
    proc, port = serve(tmp_path, FLASK_APP, ["gunicorn", *worker_args, "-w", "2", "-b", "127.0.0.1:{port}",
                                             "-c", "gunicorn_conf.py", "--graceful-timeout", "30", *preload,
                                             "app:app"],
                       SETUP="import" if preload else "post_fork", READY_DIR=str(tmp_path / "ready"))
    wait_until_serving(proc, port, tmp_path, workers=2)
    for n in range(REQUESTS):
        get(port, f"/work/{n}")
    assert stop(proc, tmp_path, signal.SIGTERM) == 0
    log = (tmp_path / "server.log").read_text()
    assert "SIGKILL" not in log, f"a worker was killed, not stopped:\n{log}"
    assert_every_request_span_once(tmp_path)


def test_uvicorn_sigterm_delivers_the_sdk_queue(tmp_path):
    """One uvicorn process, the SDK's BatchSpanProcessor (5 s schedule
    delay) over SpanguardSpanExporter. uvicorn catches SIGTERM, shuts down,
    puts back the handler Python told it was there (SIG_DFL: Python does
    not know the watchdog's) and re-raises: that killed the process with
    the whole queue unsent. The process still dies of SIGTERM."""
    proc, port = serve(tmp_path, ASGI_APP, ["uvicorn", "--port", "{port}", "--log-level", "warning", "app:app"])
    wait_until_serving(proc, port, tmp_path)
    for n in range(REQUESTS):
        get(port, f"/work/{n}")
    assert stop(proc, tmp_path, signal.SIGTERM) == -signal.SIGTERM
    assert_every_request_span_once(tmp_path)


SWAP_AND_PUT_BACK = textwrap.dedent("""
    import signal
    import sys
    import time

    import spanguard

    tracer = spanguard.Tracer(service_name="swapper", schedule_delay_ms=60000)
    caught = []
    # What uvicorn does around its serving: its own handler in, then what
    # Python said was there put back, then the caught signal raised again.
    before = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(signum))
    for n in range(int(sys.argv[1])):
        with tracer.span("request", attributes={"n": n}):
            pass
    signal.raise_signal(signal.SIGTERM)
    assert caught == [signal.SIGTERM]
    signal.signal(signal.SIGTERM, before)
    signal.raise_signal(signal.SIGTERM)
    time.sleep(30)  # the watchdog flushes, then the signal ends the process
    sys.exit("still alive after SIGTERM")
""")


def test_a_handler_swapped_in_and_put_back_keeps_the_watchdog(tmp_path):
    """The uvicorn pattern without uvicorn: Python reports SIG_DFL for a
    SIGTERM whose disposition is spanguard's watchdog; put back, it was
    SIG_DFL, and the signal raised again killed the process with every
    span still in the buffer (a one-minute schedule delay). The watchdog
    is back over it: every span arrives and the process dies of SIGTERM."""
    (tmp_path / "swap.py").write_text(SWAP_AND_PUT_BACK)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
    env.update(SPANGUARD_SINK_DIR=str(tmp_path / "sink"), SPANGUARD_SPOOL_DIR=str(tmp_path / "spool"),
               XDG_STATE_HOME=str(tmp_path / "state"))
    proc = subprocess.run([sys.executable, str(tmp_path / "swap.py"), "50"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    got = Counter(s["attributes"]["n"] for s in read_sink(tmp_path / "sink"))
    assert got == Counter(range(50)), f"{len(got)} of 50 spans arrived:\n{proc.stderr}"


SIGNAL_DURING_SDK_SHUTDOWN = textwrap.dedent("""
    import os
    import signal
    import sys
    import threading
    import time

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import spanguard
    from spanguard.otel import SpanguardSpanExporter

    flushed_for_the_signal = threading.Event()


    class Provider(TracerProvider):
        def force_flush(self, timeout_millis=30000):
            # The watchdog's flush of the SDK: its processor is shut down
            # already, and answers False at once, the queue not handed over.
            answer = super().force_flush(timeout_millis)
            flushed_for_the_signal.set()
            return answer


    class Exporter(SpanguardSpanExporter):
        def export(self, spans):
            # The SDK's worker thread, handing its queue over for the
            # provider's shutdown (as at exit, after uvicorn raised the
            # SIGTERM it caught): the signal lands now, and the worker gets
            # the interpreter's lock only after the watchdog's flush of the
            # SDK, late (a loaded machine). A watchdog that does not wait
            # for the export has ended the process within the second
            # (freezing tracers with nothing in them, then the default
            # action); one that waits for it waits through the second.
            os.kill(os.getpid(), signal.SIGTERM)
            flushed_for_the_signal.wait(30)
            time.sleep(1)
            return super().export(spans)


    provider = Provider()
    provider.add_span_processor(BatchSpanProcessor(Exporter(spanguard.Tracer(service_name="drain")),
                                                   schedule_delay_millis=60000))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("agent")
    for n in range(int(sys.argv[1])):
        with tracer.start_as_current_span("request", attributes={"n": n}):
            pass
    provider.shutdown()  # what its atexit handler does
    time.sleep(30)  # the watchdog flushes, then the signal ends the process
    sys.exit("still alive after SIGTERM")
""")


def test_a_signal_during_the_sdks_shutdown_waits_for_its_queue(tmp_path):
    """A SIGTERM that lands while the SDK's provider shuts down on the main
    thread (uvicorn raises the SIGTERM it caught, then Python exits and
    runs the SDK's atexit shutdown): the watchdog's flush of the SDK is
    refused (its BatchSpanProcessor is shut down), and its worker hands
    the queue to the exporter only later. The watchdog waited for none of
    it: the process died of the signal with the whole queue (0 of 40
    arrived, under load, in test_uvicorn_sigterm_delivers_the_sdk_queue).
    It now waits for the exporter's shutdown: every span arrives, and the
    process still dies of SIGTERM."""
    (tmp_path / "drain.py").write_text(SIGNAL_DURING_SDK_SHUTDOWN)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
    env.update(SPANGUARD_SINK_DIR=str(tmp_path / "sink"), SPANGUARD_SPOOL_DIR=str(tmp_path / "spool"),
               XDG_STATE_HOME=str(tmp_path / "state"), SPANGUARD_SIGNAL_FLUSH_TIMEOUT_MS="20000")
    proc = subprocess.run([sys.executable, str(tmp_path / "drain.py"), "40"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    got = Counter(s["attributes"]["n"] for s in read_sink(tmp_path / "sink"))
    assert got == Counter(range(40)), f"{len(got)} of 40 spans arrived:\n{proc.stderr}"


def test_gunicorn_worker_killed_at_graceful_timeout_keeps_its_open_span_in_flight(tmp_path):
    """A worker still in a request at graceful_timeout is SIGKILLed by the
    master. With flight_recorder, its open span was in its flight file,
    which the preloaded master's tracer sends (when the worker is gone
    before the master exits) or the next tracer start: once."""
    import threading
    (tmp_path / "ready").mkdir()
    proc, port = serve(tmp_path, FLASK_APP, ["gunicorn", "-w", "1", "-b", "127.0.0.1:{port}", "-c", "gunicorn_conf.py",
                                             "--graceful-timeout", "1", "--preload", "app:app"],
                       SETUP="import", READY_DIR=str(tmp_path / "ready"), SPANGUARD_FLIGHT_RECORDER="1")
    wait_until_serving(proc, port, tmp_path, workers=1)

    def request_that_never_ends():
        try:
            get(port, "/stuck")
        except OSError:  # the worker's SIGKILL closes the connection
            pass

    threading.Thread(target=request_that_never_ends, daemon=True).start()
    deadline = time.monotonic() + 30
    while not (tmp_path / "ready" / "stuck").exists():
        assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
        time.sleep(0.02)
    assert stop(proc, tmp_path, signal.SIGTERM) == 0
    log = (tmp_path / "server.log").read_text()
    assert "Worker exiting" not in log, f"the worker was not killed at graceful_timeout:\n{log}"
    # The master's tracer sends the flight file if the worker is gone
    # before the master's exit; else it waits in the spool directory for
    # the next start, as after a redeploy.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
    env.update(SPANGUARD_SINK_DIR=str(tmp_path / "sink"), SPANGUARD_SPOOL_DIR=str(tmp_path / "spool"),
               XDG_STATE_HOME=str(tmp_path / "state"))
    subprocess.run([sys.executable, "-c", "import spanguard; spanguard.Tracer(service_name='next').close()"],
                   check=True, env=env, timeout=60)
    stuck = [s for s in read_sink(tmp_path / "sink") if s["name"] == "stuck"]
    assert len(stuck) == 1, f"{len(stuck)} stuck spans arrived:\n{log}"
