"""spanguard tail follows the sink as spans arrive: spans of a process that
starts after it, of a second process's new file, a line written in two
pieces printed once whole; Ctrl-C ends it with status 0. Deadlines are
generous and only bound a hang; no timing is asserted."""

import json
import os
import signal
import subprocess
import threading
import time

import pytest


class Follower:
    def __init__(self, cli, sink, *extra, env=None):
        self.proc = subprocess.Popen([str(cli), "tail", str(sink), "--color", "never", "--interval", "50", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        # Its first line is said once it knows where the sink's files end:
        # what is written after it is followed. A fixed pause here lost
        # the spans written before a slow start (a loaded machine) got
        # that far, and the test waited for them in vain.
        first = self.proc.stderr.readline()
        assert first.startswith("spanguard: following "), first + self.proc.stderr.read()
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, n, what, timeout=60):
        deadline = time.monotonic() + timeout
        while len(self.lines) < n:
            assert self.proc.poll() is None, self.proc.stderr.read()
            assert time.monotonic() < deadline, f"{what}: {len(self.lines)} lines of {n}: {self.lines}"
            time.sleep(0.05)
        return self.lines

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=30)
        self.reader.join(timeout=10)
        return code


def run_demo(demo, sink):
    env = dict(os.environ, SPANGUARD_SINK_DIR=str(sink), SPANGUARD_SPOOL_DIR=str(sink / "spool"))
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    subprocess.run([str(demo)], env=env, check=True, capture_output=True, timeout=60)


def test_tail_follows_new_spans_and_new_files_and_stops_cleanly(cli, demo, sample, tmp_path):
    sink = tmp_path / "sink"
    sink.mkdir()
    # Spans there before tail starts are not shown (it follows, like tail -f).
    (sink / "old.jsonl").write_text((sample / "billing-api-7120.jsonl").read_text())
    f = Follower(cli, sink)
    run_demo(demo, sink)
    lines = f.wait_for(14, "the first run's spans")
    assert not any("POST /refunds" in l for l in lines)
    assert sum("demo-agent" in l for l in lines) == 14
    assert any("tool.call" in l and "ERROR upstream timeout after 30s" in l for l in lines)
    assert any("background.prefetch" in l and "UNENDED" in l for l in lines)
    run_demo(demo, sink)  # another process: another file
    f.wait_for(28, "the second run's spans")
    # A line written in two pieces is printed once, when whole.
    whole = (sample / "support-agent-41990.jsonl").read_text()
    with open(sink / "old.jsonl", "a") as out:
        out.write(whole[:100])
        out.flush()
        time.sleep(0.3)
        assert len(f.lines) == 28, f.lines[28:]
        out.write(whole[100:])
    lines = f.wait_for(31, "the line completed later")
    assert sum("retrieval.embed" in l for l in lines) == 1
    assert f.stop() == 0
    assert len(f.lines) == 31


def test_trees_draw_a_trace_once_its_root_arrives(cli, sample, tmp_path):
    sink = tmp_path / "sink"
    sink.mkdir()
    f = Follower(cli, sink, "--trees")
    lines = (sample / "support-agent-41872.jsonl").read_text().splitlines()
    with open(sink / "agent.jsonl", "w") as out:
        out.write(lines[0] + "\n")  # children only: nothing to draw yet
    time.sleep(0.5)
    assert f.lines == []
    with open(sink / "agent.jsonl", "a") as out:
        out.write(lines[1] + "\n")  # the rest, root included
    drawn = f.wait_for(3, "the trace")
    assert drawn[0].startswith("trace 4bf92f3577b34da6a3ce929d0e0e4736")
    f.wait_for(12, "its spans")
    assert f.stop() == 0
    assert sum("├─" in l or "└─" in l for l in f.lines) == 7


def test_tail_without_a_sink_yet_waits_for_it(cli, demo, tmp_path):
    sink = tmp_path / "not-yet"
    f = Follower(cli, sink)
    run_demo(demo, sink)
    f.wait_for(14, "spans in a directory made after tail started")
    proc = f.proc
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_a_file_named_to_drive_the_terminal_is_named_cleanly(cli, tmp_path):
    # Anyone who can write in the sink directory names its files: a name
    # holding an escape sequence went raw to stderr in tail's complaint
    # about the file's line (and in show's), where it could recolour or
    # clear the terminal.
    sink = tmp_path / "sink"
    sink.mkdir()
    f = Follower(cli, sink)
    (sink / "x\x1b[2Jy.jsonl").write_text("{not json}\n")
    complaints = []
    threading.Thread(target=lambda: complaints.extend(f.proc.stderr), daemon=True).start()
    deadline = time.monotonic() + 60
    while not any("not OTLP/JSON" in c for c in complaints):
        assert f.proc.poll() is None and time.monotonic() < deadline, "no complaint about the line"
        time.sleep(0.1)
    complaint = next(c for c in complaints if "not OTLP/JSON" in c)
    assert "\x1b" not in complaint, repr(complaint)
    assert "x\\x1b[2Jy.jsonl" in complaint, complaint
    assert f.stop() == 0
    shown = subprocess.run([str(cli), "show", str(sink)], capture_output=True, text=True, timeout=60)
    assert "x\\x1b[2Jy.jsonl" in shown.stderr and "\x1b" not in shown.stderr, repr(shown.stderr)


def test_a_sink_file_whose_name_is_no_utf8_is_followed(cli, sample, tmp_path):
    # A name in another encoding (a copy, a hostname of Latin-1): tail
    # skipped the file for good without a word, as show did.
    sink = tmp_path / "sink"
    sink.mkdir()
    f = Follower(cli, sink)
    with open(os.fsencode(str(sink)) + b"/billing-\xe9.jsonl", "w") as out:
        out.write((sample / "billing-api-7120.jsonl").read_text())
    lines = f.wait_for(1, "the spans of the file named in Latin-1")
    assert f.stop() == 0
    assert any("POST /refunds" in l for l in lines), lines


def first_line(cli, *args):
    proc = subprocess.Popen([str(cli), "tail", *args, "--interval", "50"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        return proc.stderr.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


def test_the_first_line_says_what_tail_shows_and_that_a_directory_is_missing(cli, tmp_path):
    # After `make demo`, `spanguard tail build/demo-spans` printed nothing
    # (it shows the spans that arrive from then on) and did not say so; a
    # misspelt directory was followed without a word.
    sink = tmp_path / "sink"
    sink.mkdir()
    assert first_line(cli, str(sink)) == (
        f"spanguard: following {sink}: spans from now on (--from-start first shows those already "
        "there; Ctrl-C stops)\n")
    assert first_line(cli, str(sink), "--from-start") == f"spanguard: following {sink} (Ctrl-C stops)\n"
    missing = tmp_path / "no-such-sink"
    assert first_line(cli, str(missing)) == (
        f"spanguard: following {missing}, which does not exist yet: a program traced with spanguard "
        "makes it when it writes its first spans there (Ctrl-C stops)\n")


def test_tail_of_the_default_sink_says_an_endpoint_sends_the_spans_elsewhere(cli, tmp_path):
    """An agent pointed at a collector (OTEL_EXPORTER_OTLP_ENDPOINT) writes
    nothing to the local sink: `spanguard tail` in that shell waited on the
    sink for good without a word, where `show` says why it finds nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANGUARD_"))}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    note = ("spanguard: an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): "
            "spans go there, not to the local sink")

    def first_lines(env):
        proc = subprocess.Popen([str(cli), "tail", "--interval", "50"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        try:
            return proc.stderr.readline() + proc.stderr.readline()
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0

    said = first_lines(dict(env, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318"))
    assert said.startswith(f"spanguard: following {tmp_path}/state/spanguard/spans, which does not exist yet"), said
    assert said.splitlines()[1].startswith(note), said
    # Without one, the sink is where the spans go: nothing more said.
    assert note not in first_lines(env)

def sink_line(trace_id, spans):
    """One OTLP/JSON request: `spans` (span id, name, prompt) under a root
    of span id 5e3f0c2a9d8e7f61 in trace `trace_id`, service svc."""
    t0 = 1796029200000000000
    root = {"traceId": trace_id, "spanId": "5e3f0c2a9d8e7f61", "name": "invoke_agent", "kind": 1,
            "startTimeUnixNano": str(t0), "endTimeUnixNano": str(t0 + 20_000_000)}
    calls = [{"traceId": trace_id, "spanId": span_id, "parentSpanId": "5e3f0c2a9d8e7f61", "name": name,
              "kind": 3, "startTimeUnixNano": str(t0 + 1_000_000), "endTimeUnixNano": str(t0 + 5_000_000),
              "attributes": [{"key": "gen_ai.prompt", "value": {"stringValue": prompt}}]}
             for span_id, name, prompt in spans]
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"scope": {"name": "s"}, "spans": calls + [root]}]}]}) + "\n"


def id_on(lines, name):
    """The span id tail printed on `name`'s line: the word after its
    duration (two words, 4.00 ms, after the name)."""
    line = next(l for l in lines if f" {name} " in l)
    words = line.split()
    return words[words.index(name) + 3]


def test_each_line_shows_the_span_id_that_show_span_takes(cli, tmp_path):
    # tail printed no span id: one LLM call seen going by could not be
    # opened whole with `show --span ID`. Each line shows the id as show
    # does after each bar: 8 digits, more when two ids seen start alike.
    sink = tmp_path / "sink"
    sink.mkdir()
    f = Follower(cli, sink)
    with open(sink / "svc-1.jsonl", "a") as out:
        out.write(sink_line("0af7651916cd43dd8448eb211c80319c", [
            ("b7ad6b7169203331", "plan", "PROMPT-OF-plan " * 40),
            ("0c41f7a29b3e5d18", "search", "PROMPT-OF-search " * 40)]))
    lines = f.wait_for(3, "the first trace")
    assert id_on(lines, "plan") == "b7ad6b71", lines
    assert id_on(lines, "search") == "0c41f7a2", lines
    assert id_on(lines, "invoke_agent") == "5e3f0c2a", lines
    # A later span whose id starts with the same 8 digits as one seen: 9.
    with open(sink / "svc-1.jsonl", "a") as out:
        out.write(sink_line("1b2c3d4e5f60718293a4b5c6d7e8f901", [
            ("b7ad6b71f0000002", "answer", "PROMPT-OF-answer " * 40)]))
    lines = f.wait_for(5, "the second trace")
    assert f.stop() == 0
    assert id_on(lines, "answer") == "b7ad6b71f", lines
    # The ids printed, given to show --span, draw that span whole.
    for name in ("search", "answer"):
        shown = subprocess.run([str(cli), "show", "--span", id_on(lines, name), "--color", "never", str(sink)],
                               capture_output=True, text=True, timeout=60, env=dict(os.environ, COLUMNS="100"))
        assert shown.returncode == 0, shown.stderr
        assert f"PROMPT-OF-{name} " * 40 in shown.stdout.replace("\n", ""), shown.stdout
        assert not any(f"PROMPT-OF-{other}" in shown.stdout for other in ("plan", "search", "answer")
                       if other != name), shown.stdout


def test_trees_show_each_spans_id_that_show_span_takes(cli, tmp_path):
    # --trees draws show's waterfall: each span's id right of its bar, the
    # id that `show --span` opens whole (8 digits, 9 once two ids seen
    # start with the same 8).
    sink = tmp_path / "sink"
    sink.mkdir()
    f = Follower(cli, sink, "--trees", env=dict(os.environ, COLUMNS="100"))
    with open(sink / "svc-1.jsonl", "a") as out:
        out.write(sink_line("1b2c3d4e5f60718293a4b5c6d7e8f901", [("b7ad6b71f0000002", "answer", "PROMPT-OF-answer")]))
    lines = f.wait_for(6, "the first tree and the blank line after it")
    with open(sink / "svc-1.jsonl", "a") as out:
        out.write(sink_line("0af7651916cd43dd8448eb211c80319c", [
            ("b7ad6b7169203331", "plan", "PROMPT-OF-plan"), ("0c41f7a29b3e5d18", "search", "PROMPT-OF-search")]))
    lines = f.wait_for(12, "the second tree and the blank line after it")
    assert f.stop() == 0

    def id_right_of_bar(name):
        line = next(l for l in lines if f" {name} " in l and "│" in l)
        return line.rsplit("│", 1)[1].split()[0]

    assert id_right_of_bar("answer") == "b7ad6b71", lines
    assert id_right_of_bar("invoke_agent") == "5e3f0c2a", lines
    # Drawn once an id that starts with the same 8 digits was seen: 9.
    assert id_right_of_bar("plan") == "b7ad6b716", lines
    assert id_right_of_bar("search") == "0c41f7a29", lines
    for name in ("plan", "search"):
        shown = subprocess.run([str(cli), "show", "--span", id_right_of_bar(name), "--color", "never", str(sink)],
                               capture_output=True, text=True, timeout=60, env=dict(os.environ, COLUMNS="100"))
        assert shown.returncode == 0, shown.stderr
        assert f"gen_ai.prompt = PROMPT-OF-{name}\n" in shown.stdout, shown.stdout


def test_from_start_shows_the_past_in_the_order_the_spans_ended(cli, tmp_path):
    # --from-start printed the sink file by file, in the order of their
    # names: three processes' spans came out as 13:19:04, 13:19:17,
    # 13:18:40. The past comes in the order the spans ended (the sink
    # writes each when it ends), as a tail running then would have shown
    # it, whichever file holds each.
    sink = tmp_path / "sink"
    sink.mkdir()
    t0 = 1796029200000000000

    def line(service, ended):
        spans = [{"traceId": f"{s + 1:032x}", "spanId": f"{s + 1:016x}", "name": f"at-{s:02d}s",
                  "kind": 1, "startTimeUnixNano": str(t0 + s * 10**9 - 10**6),
                  "endTimeUnixNano": str(t0 + s * 10**9)} for s in ended]
        return json.dumps({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"scope": {"name": "s"}, "spans": spans}]}]}) + "\n"

    # Each file in the order its process ended the spans; the names sort
    # otherwise than the times do.
    (sink / "alpha-300.jsonl").write_text(line("alpha", [4, 17]))
    (sink / "beta-200.jsonl").write_text(line("beta", [9]) + line("beta", [30]))
    (sink / "gamma-100.jsonl").write_text(line("gamma", [0, 12, 25]))
    f = Follower(cli, sink, "--from-start")
    lines = f.wait_for(7, "the spans already there")
    names = [next(w for w in l.split() if w.startswith("at-")) for l in lines]
    assert names == ["at-00s", "at-04s", "at-09s", "at-12s", "at-17s", "at-25s", "at-30s"], lines
    # Then the live ones, as they come.
    with open(sink / "alpha-300.jsonl", "a") as out:
        out.write(line("alpha", [2]))
    lines = f.wait_for(8, "the span written later")
    assert f.stop() == 0
    assert "at-02s" in lines[7], lines


def test_the_time_column_is_when_each_span_ended_the_order_lines_come_in(cli, tmp_path):
    # Lines come in the order the spans ended, and their time column was
    # when each started: a long span's line, printed after a short one
    # that started after it, showed an earlier time, and the column went
    # backwards down the screen. The column is when each ended, and its
    # head (on stderr, the lines on stdout staying data) says so.
    sink = tmp_path / "sink"
    sink.mkdir()
    t0 = 1796029200000000000
    ms = 1_000_000
    # A long span from 0 ms to 900 ms, and a short one from 100 to 200 ms:
    # the short one ended first.
    spans = [{"traceId": f"{1:032x}", "spanId": f"{i + 1:016x}", "name": name, "kind": 1,
              "startTimeUnixNano": str(t0 + start * ms), "endTimeUnixNano": str(t0 + end * ms)}
             for i, (name, start, end) in enumerate([("long-one", 0, 900), ("short-one", 100, 200)])]
    (sink / "svc-1.jsonl").write_text(json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"scope": {"name": "s"}, "spans": spans}]}]}) + "\n")
    f = Follower(cli, sink, "--from-start")
    lines = f.wait_for(2, "the two spans")
    assert f.stop() == 0
    assert [l.split()[0] for l in lines] == ["09:00:00.200Z", "09:00:00.900Z"], lines
    assert "short-one" in lines[0] and "long-one" in lines[1], lines
    # The first line was read by the Follower; the heads come next.
    heads = f.proc.stderr.read().splitlines()[0]
    assert heads.split("  ")[0] == "ended (UTC)", heads
    # The heads stand over their columns.
    assert heads.index("name") == lines[0].index("short-one"), (heads, lines)
    assert heads.index("service") == lines[0].index("svc"), (heads, lines)


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))


def test_from_start_prints_a_big_sink_in_bounded_memory(cli, tmp_path):
    # --from-start decoded the sink's whole past into memory before its
    # first line (a sink of many GB: as many GB, or more, decoded). It
    # reads each file a piece at a time and merges them: three files of
    # 24 MiB of spans (a 4 KiB prompt each), whose spans ended interleaved,
    # are printed in the order they ended with the peak memory (VmHWM, a
    # count of pages, not a timing) far under what they hold.
    sink = tmp_path / "sink"
    sink.mkdir()
    t0 = 1796029200000000000
    prompt = "x" * 4096
    per_file = 6000
    for f_index, service in enumerate(["alpha", "beta", "gamma"]):
        with open(sink / f"{service}-{f_index + 1}.jsonl", "w") as out:
            for first in range(0, per_file, 100):
                spans = []
                for k in range(first, first + 100):
                    n = k * 3 + f_index  # the files' spans ended in turn
                    spans.append({"traceId": f"{n + 1:032x}", "spanId": f"{n + 1:016x}", "name": f"s{n:06d}",
                                  "kind": 1, "startTimeUnixNano": str(t0 + n * 1_000_000),
                                  "endTimeUnixNano": str(t0 + n * 1_000_000 + 1),
                                  "attributes": [{"key": "gen_ai.prompt", "value": {"stringValue": prompt}}]})
                out.write(json.dumps({"resourceSpans": [{
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                    "scopeSpans": [{"scope": {"name": "s"}, "spans": spans}]}]}) + "\n")
    held = sum(p.stat().st_size for p in sink.iterdir())
    assert held > 70 << 20, held
    f = Follower(cli, sink, "--from-start")
    lines = f.wait_for(3 * per_file, "the past", timeout=300)
    peak = peak_rss_kib(f.proc.pid)
    assert f.stop() == 0
    names = [next(w for w in l.split() if w.startswith("s0")) for l in lines]
    assert names == [f"s{n:06d}" for n in range(3 * per_file)], [n for i, n in enumerate(names) if n != f"s{i:06d}"][:5]
    # Decoded whole, the past took more than the files hold; a piece of
    # each file at a time, a few MiB.
    assert peak < 40 << 10, (peak, held)
