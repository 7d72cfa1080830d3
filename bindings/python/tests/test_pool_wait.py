"""A value that waits for payload chunks (the payload pool used up, the
default full policy `wait`) lets go of the GIL while it waits: the other
Python threads go on (the asyncio loop, a watchdog, the very code that would
let the backend answer). Held, every Python thread stopped for up to
`full_wait_ms` on each such value.

Counts, not timings: a backend holds the exporter's first request until the
main thread has run its N iterations, so the chunks a queued span holds come
back only after them. The waiting setter reads the main thread's count when
it returns: N with the GIL let go of; 0 with it held (the main thread never
ran, the wait ran out, the value was cut)."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import spanguard

N = 1000
KB = 1000


class HeldBackend:
    """An OTLP/HTTP endpoint whose first request is answered once `release`
    is set (later ones at once); with keep_spans, it keeps the spans it got
    (`spans`, as dicts)."""

    def __init__(self, keep_spans: bool = False):
        self.got_first = threading.Event()
        self.release = threading.Event()
        self.spans = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if keep_spans:
                    from otlp_receiver import decode_request, span_dicts
                    req, _ = decode_request(body, self.headers.get("Content-Type"),
                                            self.headers.get("Content-Encoding"), strict=True)
                    outer.spans.extend(span_dicts(req))
                if not outer.got_first.is_set():
                    outer.got_first.set()
                    outer.release.wait(120)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def waits(t: spanguard.Tracer) -> int:
    return t.stats().payload_waits


def tracer_with_its_pool_held(tmp_path, backend: HeldBackend, service_name: str) -> spanguard.Tracer:
    """A tracer with a 1 MiB payload pool whose exporter sent a first span
    to `backend` and is held there, and a queued 900 KB span that holds
    most of the pool: its chunks come back once the backend is released
    and the exporter encodes it."""
    t = spanguard.Tracer(from_env=False, service_name=service_name, endpoint=backend.endpoint,
                         spool_dir=tmp_path / "spool", schedule_delay_ms=20, install_signal_handlers=False,
                         payload_pool_mib=1, full_wait_ms=30_000, export_timeout_ms=120_000,
                         request_timeout_ms=120_000, compression="none")
    try:
        t.start_span("first").end()
        assert backend.got_first.wait(30), "the exporter never sent"
        filler = t.start_span("filler")
        filler.set_attribute("input.value", "f" * (900 * KB))
        filler.end()
    except BaseException:
        t.close()
        backend.close()
        raise
    return t


def test_a_value_waiting_for_the_payload_pool_lets_other_python_threads_run(tmp_path, capfd):
    backend = HeldBackend()
    t = tracer_with_its_pool_held(tmp_path, backend, "pool-wait")
    try:
        count = [0]
        seen = []

        def setter():
            with t.start_span("waiter") as s:
                s.set_attribute("output.value", "w" * (300 * KB))
                seen.append(count[0])

        waiter = threading.Thread(target=setter)
        waiter.start()
        # Runs only while the setter waits with the GIL let go of.
        for _ in range(100_000):
            if waits(t) or not waiter.is_alive():
                break
            backend.got_first.wait(0.001)
        for _ in range(N):
            count[0] += 1
        backend.release.set()
        waiter.join(60)
        assert not waiter.is_alive()
        assert seen == [N], "the main thread did not run while the setter waited"
        stats = t.stats()
        assert (stats.payload_waits, stats.payload_waits_cut, stats.values_truncated) == (1, 0, 0), stats
        assert t.flush(30)
    finally:
        t.close()
        backend.close()
    # Said on stderr too, with what to raise.
    err = capfd.readouterr().err
    assert "values waited for the payload pool (1 MiB) 1 time" in err, err
    assert "SPANGUARD_PAYLOAD_POOL_MIB" in err, err


def test_another_thread_on_the_waiting_span_does_not_deadlock(tmp_path):
    # While the setter waits (the GIL let go of, its span held), the main
    # thread takes the GIL and sets an attribute of the same span: it waits
    # for the span, GIL held. The setter's wait runs out (the backend is
    # held), and it must finish its value and let go of the span BEFORE it
    # takes the GIL back; taking it back at the wait's end, it would wait
    # for the main thread, which waits for it: for ever. In a child
    # process, so that a deadlock fails the test rather than hanging it.
    code = f"""
import threading, sys
sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent)!r})
from test_pool_wait import HeldBackend
import spanguard
backend = HeldBackend()
t = spanguard.Tracer(from_env=False, service_name="pool-wait", endpoint=backend.endpoint,
                     spool_dir={str(tmp_path / "spool")!r}, schedule_delay_ms=20,
                     install_signal_handlers=False, payload_pool_mib=1, full_wait_ms=1000,
                     export_timeout_ms=120_000, request_timeout_ms=120_000, compression="none")
t.start_span("first").end()
assert backend.got_first.wait(30)
filler = t.start_span("filler")
filler.set_attribute("input.value", "f" * 900_000)
filler.end()
span = t.start_span("waiter")
waiter = threading.Thread(target=lambda: span.set_attribute("output.value", "w" * 300_000), daemon=True)
waiter.start()
while not t.stats().payload_waits:
    backend.got_first.wait(0.001)
span.set_attribute("main", 1)
span.end()
waiter.join()
stats = t.stats()
print("waits", stats.payload_waits, stats.payload_waits_cut, flush=True)
backend.release.set()
t.close()
backend.close()
"""
    from conftest import run_python
    import subprocess
    try:
        done = run_python(code, timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("deadlocked: the setter took the GIL back while it held its span") from None
    assert done.returncode == 0, done.stderr
    # The wait ran out (the backend held): the value was cut, and said so.
    assert "waits 1 1" in done.stdout, done.stdout + done.stderr
