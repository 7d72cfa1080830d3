"""`spanguard why`: what the last processes' tracers did with their spans,
after the fact. A process that ended (or was killed) left only its stderr
lines, often lost with its container: a backend short of spans had nothing
else to say why. Each tracer keeps a small record in the outcomes/
directory of its spool directory (src/export/outcome.rs); `why` reads it."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from receiver_client import OtlpReceiverProcess

from conftest import REPO


def env_with_state(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANGUARD_"))}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return env


def why(cli, env, *args):
    return subprocess.run([str(cli), "why", *args], capture_output=True, text=True, env=env, timeout=60)


@contextlib.contextmanager
def agent_with_a_record(env, spool, service, under=(), record_pid=None, flight="0",
                        endpoint="http://127.0.0.1:9/v1/traces", pause_us="20000"):
    """kill_child running as `service` (under `under`, a wrapper such as
    unshare; with the flight recorder if `flight` is "1"), its spans bound
    for a backend that is down and its spool in `spool`, once it has
    written its first record (named by `record_pid`, its own pid by
    default); `endpoint` "" for the local sink; a span every `pause_us`.
    Killed (SIGKILL) on the way out if it runs."""
    child = subprocess.Popen([*under, str(REPO / "build" / "tests" / "kill_child"), endpoint,
                              str(spool), "1", flight, "none", "0", service, pause_us],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert len(child.stdout.read(4)) == 4, child.stderr.read()
        outcomes = spool / "outcomes"
        deadline = time.monotonic() + 30
        pid = child.pid if record_pid is None else record_pid
        while not any(outcomes.glob(f"{pid}-*.sgoutcome")) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)


# What refuses a sender its spans, as `spool` and `why` say it: a
# permanent redirect refuses the URL as a 404 does.
REFUSALS = ("401, 403, 404, a permanent redirect (301, 308)...: a key missing or wrong, "
            "a URL without /v1/traces or moved for good")


def emit_spans(tmp_path, env, endpoint, spool, count, run_id):
    """emit_spans's run: `count` spans sent to `endpoint`, their spool in
    `spool`, losses allowed."""
    emit = subprocess.run([str(REPO / "build" / "tests" / "emit_spans"), "--endpoint", endpoint,
                           "--manifest", str(tmp_path / "m.json"), "--count", str(count), "--run-id", run_id,
                           "--spool-dir", str(spool), "--allow-loss"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert emit.returncode == 0, emit.stderr
    return emit


def emit_404(tmp_path, env, rx, spool, count):
    """`count` spans sent to a URL the receiver answers 404, spooled in `spool`."""
    return emit_spans(tmp_path, env, f"{rx.endpoint}/wrong", spool, count, "why404")


def test_a_process_that_hit_a_404_is_said_with_its_cause_and_what_to_do(cli, tmp_path):
    env = env_with_state(tmp_path)
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        emit = emit_404(tmp_path, env, rx, tmp_path / "spool", 40)
    records = list((tmp_path / "spool" / "outcomes").iterdir())
    assert len(records) == 1, records
    assert records[0].stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "spool" / "outcomes").stat().st_mode & 0o777 == 0o700
    run = why(cli, env, "--dir", str(tmp_path / "spool"))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("spanguard why: what the last process traced here did with its spans"), run.stdout
    assert "stopped its tracer" in lines[2], run.stdout
    assert f"  spans went to {rx.endpoint}/wrong/v1/traces" in lines, run.stdout
    # Refused for where they went, not lost: kept for a corrected URL, and
    # said so, with how to send them.
    assert "  40 spans ended: 0 delivered, 40 to the spool, 0 lost" in lines, run.stdout
    # The process's own lines say what became of them and why: they said
    # "went to the spool: a process set up as this one sends them at its
    # next run", which it never does (the paragraph below said so), and
    # gave no reason, where a backend that is down gets one.
    assert not any("a process set up as this one sends them" in l for l in lines), run.stdout
    assert ("  40 spans were refused to their sender, kept in the spool for a corrected setting: "
            "a process set up as this one never sends them, one with the key or the URL fixed does") in lines, \
        run.stdout
    because = [l for l in lines if l.startswith("  why they went to the spool: ")]
    assert len(because) == 1 and "HTTP 404" in because[0] and "OTEL_EXPORTER_OTLP_ENDPOINT is a base URL" \
        in because[0], run.stdout
    kept = [l for l in lines if l.startswith(f"40 spans in {tmp_path}/spool were refused to their sender")]
    assert len(kept) == 1, run.stdout
    assert "kept for a corrected setting" in kept[0] and "spanguard replay --endpoint URL" in kept[0], run.stdout
    # What refuses a sender, a permanent redirect among it (as a 404).
    assert f" were refused to their sender ({REFUSALS}) and are kept" in kept[0], run.stdout
    assert "nothing takes traces at this URL: OTEL_EXPORTER_OTLP_ENDPOINT is a base URL" in emit.stderr, emit.stderr
    # `spool` lists them as kept for a corrected sender, each file and in all.
    listing = subprocess.run([str(cli), "spool", str(tmp_path / "spool")], capture_output=True, text=True,
                             env=env, timeout=60)
    assert listing.returncode == 0, listing.stderr
    head, *rows = listing.stdout.splitlines()
    assert f"; 40 spans refused to their sender ({REFUSALS}), kept" in head, listing.stdout
    batches = [r for r in rows if r.startswith("batch ")]
    assert batches and all(r.endswith("; refused to its sender, kept for a corrected endpoint or headers)")
                           for r in batches), listing.stdout


def test_spans_spooled_for_a_backend_that_is_down_are_said_with_why(cli, tmp_path):
    """A newcomer's first run against a collector not started yet (or an
    https:// endpoint on a plain-HTTP port): every span went to the spool,
    and `why` said "14 spans went to the spool" and "nothing lost" without
    the one thing its name promises, why; the stderr line that said it was
    gone with the terminal. The record keeps the failed export's first
    reason, and `why` says it under the spooled count."""
    env = env_with_state(tmp_path)
    spool = tmp_path / "spool"
    # Port 9 (discard) on loopback: nothing listens there, so the
    # connection is refused at once.
    emit = emit_spans(tmp_path, env, "http://127.0.0.1:9", spool, 12, "whydown")
    assert "connection refused" in emit.stderr, emit.stderr
    run = why(cli, env, "--dir", str(spool))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert "  12 spans ended: 0 delivered, 12 to the spool, 0 lost" in lines, run.stdout
    because = [l for l in lines if l.startswith("  why they went to the spool: ")]
    assert len(because) == 1, run.stdout
    assert because[0].startswith("  why they went to the spool: export to http://127.0.0.1:9/v1/traces failed: "
                                 "connection refused or unreachable: "), run.stdout


def emit_to_sink(tmp_path, env, name, *args):
    """emit_spans's run into the local sink (its spool in tmp_path/spool),
    losses allowed; its stats (`spanguard_stats`) as it ended."""
    stats = tmp_path / f"{name}.json"
    emit = subprocess.run([str(REPO / "build" / "tests" / "emit_spans"), "--endpoint", "sink",
                           "--sink-dir", str(tmp_path / "spans"), "--spool-dir", str(tmp_path / "spool"),
                           "--manifest", str(tmp_path / f"{name}.manifest.json"), "--run-id", name,
                           "--stats-json", str(stats), "--allow-loss", *args],
                          capture_output=True, text=True, timeout=300, env=env)
    assert emit.returncode == 0, emit.stderr
    return emit, json.loads(stats.read_text())


def test_values_cut_are_said_with_where_and_what_keeps_them_whole_not_as_nothing_lost(cli, tmp_path):
    """A Node program sent 1 MB and 3 MB prompts to the local sink: the sink
    cut them to its 1 MiB line limit, counted them (values_truncated) and
    said so on stderr, and `why` ended "nothing lost". A value cut is data
    the user did not get: `why` says how many, where, and the setting that
    keeps them whole; those cut as they were recorded (an attribute value
    length limit) as such."""
    env = env_with_state(tmp_path)
    # 3 MB prompts: each span alone over the sink's 1 MiB line, written
    # whole up to half the spool's cap, here 2 MiB (read with --from-env):
    # its prompt cut.
    env["SPANGUARD_SPOOL_MAX_BYTES"] = str(4 << 20)
    emit, stats = emit_to_sink(tmp_path, env, "big", "--from-env", "--count", "3", "--prompt-bytes", "3000000")
    assert "SPANGUARD_SPOOL_MAX_BYTES" in emit.stderr, emit.stderr
    assert stats["values_truncated"] == 3 and stats["spans_exported"] == 3, stats
    run = why(cli, env, "--dir", str(tmp_path / "spool"))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert "  3 spans ended: 3 delivered, 0 to the spool, 0 lost" in lines, run.stdout
    assert "  nothing lost" not in lines, run.stdout
    assert ("  3 values cut: their spans were sent without all of what the program gave them "
            "(values_truncated counts them)") in lines, run.stdout
    where = [l for l in lines
             if l.startswith("    3 values cut to fit their spans into one line of the local sink, a span alone (")]
    assert len(where) == 1 and "half SPANGUARD_SPOOL_MAX_BYTES" in where[0], run.stdout
    assert "  no span lost, but values were cut (above)" in lines, run.stdout



def values_cut_lines(run):
    """The lines of the one record `why` said that say values cut where:
    those under its "N values cut: ..." line."""
    assert run.returncode == 0, run.stdout + run.stderr
    return [l for l in run.stdout.splitlines() if l.startswith("    ") and " cut " in l]


def test_values_cut_as_they_were_recorded_are_said_with_the_limit_that_cut_them_and_its_setting(cli, tmp_path):
    """An LLM prompt longer than the attribute value length limit, or than
    what the payload pool had left, is cut as it is recorded
    (spanguard_span_set_string), and counted in values_truncated; `why`
    said of it only every limit that cuts values when recorded, in one
    list: the user could not tell which setting cut their prompt. Each
    cause is counted apart now, and said with its size and the setting
    that raises it, and no other."""
    env = env_with_state(tmp_path)
    spool = tmp_path / "spool"

    # 5000-byte prompts, OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=100.
    limited = dict(env, OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="100")
    _, stats = emit_to_sink(tmp_path, limited, "limited", "--count", "2", "--prompt-bytes", "5000", "--from-env")
    assert stats["values_truncated"] == 2, stats
    run = why(cli, env, "--dir", str(spool), "--last", "1")
    assert ("  2 values cut: their spans were sent without all of what the program gave them "
            "(values_truncated counts them)") in run.stdout.splitlines(), run.stdout
    assert values_cut_lines(run) == [
        "    2 values cut when recorded, at the attribute value length limit (100 characters; "
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT or OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT raises it, "
        "value_length_limit in the config; unset, there is none)"], run.stdout
    assert "  no span lost, but values were cut (above)" in run.stdout.splitlines(), run.stdout

    # A 3 MB prompt and a payload pool of 1 MiB that may not wait: cut
    # where the pool ran out (the sink's line raised past it, so that the
    # sink cuts nothing more).
    small_pool = dict(env, SPANGUARD_PAYLOAD_POOL_MIB="1", SPANGUARD_FULL_POLICY="drop",
                      SPANGUARD_SINK_MAX_LINE_BYTES=str(8 << 20))
    _, stats = emit_to_sink(tmp_path, small_pool, "pool", "--count", "1", "--prompt-bytes", "3000000", "--from-env")
    assert stats["values_truncated"] == 1 and stats["spans_exported"] == 1, stats
    run = why(cli, env, "--dir", str(spool), "--last", "1")
    assert values_cut_lines(run) == [
        "    1 value cut when recorded, where the payload pool (1 MiB) was used up "
        "(SPANGUARD_PAYLOAD_POOL_MIB raises it, payload_pool_mib in the config)"], run.stdout


def test_records_live_in_the_spool_directory_the_user_chose_and_why_finds_them_there(cli, tmp_path):
    """A container whose one writable volume is the spool directory, two
    services on one machine with a spool directory each: the records went
    to the default state directory whatever the spool directory (lost with
    the container, or mixed), and `why` looked only there. Each tracer's
    record is in its own spool directory's outcomes/ now; `why --dir`, or
    `why` with the same SPANGUARD_SPOOL_DIR, finds it, and `why` finding
    none says where it looked."""
    env = env_with_state(tmp_path)
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        emit_404(tmp_path, env, rx, tmp_path / "a-spool", 40)
        emit_404(tmp_path, env, rx, tmp_path / "b-spool", 7)
    # Nothing in the default state directory: it is not the user's choice.
    assert not (tmp_path / "state" / "spanguard" / "outcomes").exists()
    for spool, n in (("a-spool", 40), ("b-spool", 7)):
        for run in (why(cli, env, "--dir", str(tmp_path / spool)),
                    why(cli, dict(env, SPANGUARD_SPOOL_DIR=str(tmp_path / spool))),
                    why(cli, env, str(tmp_path / spool / "outcomes"))):
            assert run.returncode == 0, run.stdout + run.stderr
            # Its own process alone, not the other service's.
            ended = [l for l in run.stdout.splitlines() if l.endswith(" lost") and " spans ended: " in l]
            assert ended == [f"  {n} spans ended: 0 delivered, {n} to the spool, 0 lost"], run.stdout
    # None where it looked: said, with where that was and why there.
    run = why(cli, env)
    assert run.returncode == 1, run.stdout + run.stderr
    default = tmp_path / "state" / "spanguard" / "spool"
    assert run.stdout.startswith(
        f"spanguard why: no process has left a record in {default}/outcomes, the outcomes/ directory of "
        f"the default spool directory (SPANGUARD_SPOOL_DIR is not set), {default}: "), run.stdout
    assert "spanguard why --dir DIR" in run.stdout, run.stdout
    run = why(cli, dict(env, SPANGUARD_SPOOL_DIR=str(tmp_path / "c-spool")))
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"record in {tmp_path}/c-spool/outcomes, the outcomes/ directory of the spool directory " \
           f"SPANGUARD_SPOOL_DIR names, {tmp_path}/c-spool: " in run.stdout, run.stdout


def test_a_killed_process_is_said_to_have_ended_without_stopping(cli, tmp_path):
    env = env_with_state(tmp_path)
    spool = tmp_path / "spool"
    # Killed (SIGKILL) as the block ends.
    with agent_with_a_record(env, spool, "why-test") as child:
        run = why(cli, env, "--dir", str(spool))
        head = next(l for l in run.stdout.splitlines() if l.startswith(f"pid {child.pid} "))
        assert ": running since " in head, run.stdout
    run = why(cli, env, "--dir", str(spool))
    assert run.returncode == 0, run.stdout + run.stderr
    head = next(l for l in run.stdout.splitlines() if l.startswith(f"pid {child.pid} "))
    # Nothing it left names a signal: its crash dump was never written.
    assert ", died without a word (SIGKILL, the out-of-memory killer or power loss: nothing it left names a " \
           "signal): its last record is from" in head, run.stdout
    assert "were lost with the process unless a crash dump or flight file holds them" in run.stdout, run.stdout


def sink_spans_of(sink, pid):
    """The spans process `pid` wrote to the local sink directory `sink`
    (its resource's process.pid), read as any OTLP/JSON reader reads the
    lines: a line still being written is not counted."""
    count = 0
    for path in sink.glob(f"*-{pid}.jsonl"):
        for line in path.read_text().splitlines():
            try:
                request = json.loads(line)
            except ValueError:
                continue
            for rs in request.get("resourceSpans", []):
                attrs = {a["key"]: a["value"] for a in rs.get("resource", {}).get("attributes", [])}
                if attrs.get("process.pid", {}).get("intValue") in (pid, str(pid)):
                    count += sum(len(ss.get("spans", [])) for ss in rs.get("scopeSpans", []))
    return count


def test_a_killed_process_is_said_with_the_spans_its_sink_holds_not_its_stale_record(cli, tmp_path):
    """SIGKILL a process writing to the local sink less than 5 s after its
    start: its record is the one written at the start (a record is
    written at most every 5 s), and `why` said "0 spans ended: 0
    delivered" while its sink file held its spans. `why` reads the sink
    file its record names and counts the spans of that process there."""
    env = env_with_state(tmp_path)
    spool = tmp_path / "spool"
    sink = tmp_path / "state" / "spanguard" / "spans"
    with agent_with_a_record(env, spool, "why-sink-kill", endpoint="") as child:
        # Spans end every 20 ms; killed once its sink holds some, in the
        # record's first 5 s.
        assert len(child.stdout.read(4 * 20)) == 4 * 20, child.stderr.read()
        deadline = time.monotonic() + 30
        while sink_spans_of(sink, child.pid) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        child.kill()
        assert child.wait(timeout=30) == -signal.SIGKILL
    written = sink_spans_of(sink, child.pid)
    assert written >= 20, list(sink.iterdir())
    run = why(cli, env, "--dir", str(spool))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    at = next(i for i, l in enumerate(lines) if l.startswith(f"pid {child.pid} "))
    head, body = lines[at], lines[at + 1:]
    assert "died without a word (SIGKILL" in head, run.stdout
    counts = next(re.search(r"(\d+) spans? ended: (\d+) delivered, ", l) for l in body if " delivered, " in l)
    ended, delivered = int(counts[1]), int(counts[2])
    # Every span in its sink file is delivered, and ended: said so, not 0.
    assert delivered == written and ended >= written, (written, run.stdout)
    sink_file = next(sink.glob(f"*-{child.pid}.jsonl"))
    assert any(f"{written} spans of it are in its sink file {sink_file}" in l for l in body), run.stdout


def test_a_killed_process_its_parent_has_not_reaped_yet_is_said_dead_not_running(cli, tmp_path):
    """A process killed whose parent has not waited for it yet (a harness
    that spawned the agent and looks first, a container's PID 1 that
    reaps nothing) is a zombie: its /proc entry stays, with its start, and
    `why` said it was "running since" while nothing of it could run. A
    process whose /proc state says it exited is taken as ended."""
    env = env_with_state(tmp_path)
    spool = tmp_path / "spool"
    with agent_with_a_record(env, spool, "why-zombie") as child:
        child.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 30
        state = ""
        while state != "Z" and time.monotonic() < deadline:
            with open(f"/proc/{child.pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            time.sleep(0.01)
        assert state == "Z", state
        run = why(cli, env, "--dir", str(spool))
        assert run.returncode == 0, run.stdout + run.stderr
        head = next(l for l in run.stdout.splitlines() if l.startswith(f"pid {child.pid} "))
        assert ": running since " not in head, run.stdout
        assert ", died without a word (SIGKILL" in head, run.stdout


def record_of(spool, pid):
    """The text of process `pid`'s record in `spool`."""
    (record,) = (spool / "outcomes").glob(f"{pid}-*.sgoutcome")
    return record.read_text()


def recovered_by_a_successor(env, spool, dead_pid, **setup):
    """Starts kill_child again beside `spool` (set up alike, so its tracer
    recovers what `dead_pid` left at its start), waits until the dead
    process's record says what the recovery found, then kills it."""
    with agent_with_a_record(env, spool, "successor", **setup):
        deadline = time.monotonic() + 60
        while "\ndied " not in record_of(spool, dead_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    return record_of(spool, dead_pid)


def test_a_process_that_crashed_is_said_with_its_signal_before_and_after_its_dump_is_sent(cli, tmp_path):
    """A SIGSEGV: the crash handler wrote every span not sent (the one held
    open from the start among them) to a crash dump naming the signal,
    and `why` said only "ended without stopping its tracer (killed, or it
    crashed)", the dump's word unheard; once the next process had sent the
    dump it was gone, and with it the only trace of the signal. The record
    names the dump its tracer leaves; `why` reads its signal while it
    waits, and its recoverer notes it in the record before deleting it."""
    env = env_with_state(tmp_path)
    spool = tmp_path / "spool"
    # Sent once its record is written (a fault's handling is the same: the
    # handler dumps a SIGSEGV sent by kill as it dumps a fault).
    with agent_with_a_record(env, spool, "why-segv") as child:
        child.send_signal(signal.SIGSEGV)
        assert child.wait(timeout=60) == -signal.SIGSEGV, child.stderr.read()
    assert list(spool.glob("*.sgdump")), list(spool.iterdir())
    run = why(cli, env, "--dir", str(spool))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    head = next(l for l in lines if l.startswith(f"pid {child.pid} "))
    assert ", died of SIGSEGV (11) at " in head and " without stopping its tracer: what it held then was kept " \
           "in the spool" in head, run.stdout
    assert "killed, or it crashed" not in run.stdout and "stop it with SIGTERM" not in run.stdout, run.stdout
    waiting = [l for l in lines if " it left in its crash dump wait in the spool: " in l]
    assert len(waiting) == 1, run.stdout
    # The span held open from the start, and the child open at the crash.
    still_open = [l for l in lines if " still open at SIGSEGV: to be sent marked spanguard.interrupted" in l]
    assert len(still_open) == 1 and int(still_open[0].split()[0]) >= 1, run.stdout
    # The next process set up alike sends the dump, and deletes it.
    record = recovered_by_a_successor(env, spool, child.pid)
    assert "\ndied 11 " in record, record
    assert not list(spool.glob("*.sgdump")), list(spool.iterdir())
    run = why(cli, env, "--dir", str(spool))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    head = next(l for l in lines if l.startswith(f"pid {child.pid} "))
    assert ", died of SIGSEGV (11) at " in head, run.stdout
    assert any(" it left in its crash dump were sent by a later process or spanguard replay" in l for l in lines), \
        run.stdout
    assert any(" still open at SIGSEGV: sent marked spanguard.interrupted" in l for l in lines), run.stdout


def test_a_crash_dump_for_the_local_sink_is_said_as_its_next_run_recovers_it(cli, tmp_path):
    """With no endpoint (the local sink), a crash dump waits for the next
    run of the program set up alike, which recovers it into its sink; `why`
    said it "waits for another sender" whenever its own shell's sink was
    another directory (a program given its own sink directory, another
    XDG_STATE_HOME), and "spanguard replay does", which sends to an endpoint
    only. It says what happens for the setup the record names, and the
    command that sends them now."""
    env = env_with_state(tmp_path)
    spool = tmp_path / "spool"
    with agent_with_a_record(env, spool, "why-sink", endpoint="") as child:
        child.send_signal(signal.SIGSEGV)
        assert child.wait(timeout=60) == -signal.SIGSEGV, child.stderr.read()
    (dump,) = spool.glob("*.sgdump")
    mark = dump.name.split("-for")[1][:16]
    sink = tmp_path / "state" / "spanguard" / "spans"
    # Read from this shell, and from one whose sink is another directory.
    for shell in (env, dict(env, XDG_STATE_HOME=str(tmp_path / "elsewhere"))):
        run = why(cli, shell, "--dir", str(spool))
        assert run.returncode == 0, run.stdout + run.stderr
        assert "another sender" not in run.stdout and "other senders" not in run.stdout, run.stdout
        waiting = [l for l in run.stdout.splitlines() if " it left in its crash dump wait in the spool " in l]
        assert len(waiting) == 1, run.stdout
        assert (f" for the next run of a program set up as this one (no endpoint: the local sink in {sink}, "
                f"this spool directory), which recovers them into that sink at its start; to a backend now "
                f"instead: spanguard replay --endpoint URL --sender {mark} {spool}") in waiting[0], run.stdout
    # As said: the next run alike recovers it into the sink.
    record = recovered_by_a_successor(env, spool, child.pid, endpoint="")
    assert "\ndied 11 " in record, record
    assert not list(spool.glob("*.sgdump")), list(spool.iterdir())


def test_a_killed_processs_flight_file_is_said_with_no_signal_named(cli, tmp_path):
    """SIGKILL with the flight recorder: the spans are in its file, which
    names no signal (no handler ran). `why` says it died without a word,
    and once the next process sent the file, what it held and that those
    open were sent marked interrupted."""
    env = env_with_state(tmp_path)
    spool = tmp_path / "spool"
    with agent_with_a_record(env, spool, "why-flight", flight="1") as child:
        pass
    assert child.returncode == -signal.SIGKILL
    assert list(spool.glob("*.sgflight")), list(spool.iterdir())
    record = recovered_by_a_successor(env, spool, child.pid)
    assert "\ndied 0 " in record, record
    run = why(cli, env, "--dir", str(spool))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    head = next(l for l in lines if l.startswith(f"pid {child.pid} "))
    assert ", died without a word (SIGKILL, the out-of-memory killer or power loss: nothing it left names a " \
           "signal)" in head, run.stdout
    assert any(" it left in its flight file were sent by a later process or spanguard replay" in l for l in lines), \
        run.stdout
    assert any(" still open when it died: sent marked spanguard.interrupted" in l for l in lines), run.stdout


def sink_spans_named(sink, name, pid):
    """The spans called `name` of process `pid` (its resource's process.pid)
    in the local sink directory `sink`, as OTLP/JSON dicts."""
    found = []
    for path in sink.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            for rs in json.loads(line).get("resourceSpans", []):
                attrs = {a["key"]: a["value"] for a in rs.get("resource", {}).get("attributes", [])}
                if attrs.get("process.pid", {}).get("intValue") not in (pid, str(pid)):
                    continue
                found += [s for ss in rs.get("scopeSpans", []) for s in ss.get("spans", []) if s["name"] == name]
    return found


def test_a_span_open_at_a_sigkill_ends_when_its_process_was_last_known_alive(cli, tmp_path):
    """A span still open when its process was SIGKILLed comes back from
    the flight file ended at the file's modification time, which the
    kernel sets only when a clean page of the mapping is first written:
    a process that had touched its pages early and then went on quietly
    (waiting on an LLM, say) had its open spans end seconds before it
    died, as if they had finished then. The exporter notes in the flight
    file when it last ran, and recovery ends open spans at the later of
    that and the modification time."""
    env = env_with_state(tmp_path)
    spool = tmp_path / "spool"
    sink = tmp_path / "state" / "spanguard" / "spans"
    # One span every 0.9 s: the same slot pages, written again.
    with agent_with_a_record(env, spool, "why-alive", flight="1", endpoint="", pause_us="900000") as child:
        assert len(child.stdout.read(4 * 4)) == 4 * 4, child.stderr.read()
        alive_ns = time.time_ns()
        child.kill()
        assert child.wait(timeout=30) == -signal.SIGKILL
        killed_ns = time.time_ns()
    recovered_by_a_successor(env, spool, child.pid, endpoint="")
    (held,) = sink_spans_named(sink, "held", child.pid)
    attrs = {a["key"]: a["value"] for a in held["attributes"]}
    assert attrs.get("spanguard.interrupted") == {"boolValue": True}, held["attributes"][-3:]
    end = int(held["endTimeUnixNano"])
    # Its exporter woke every 20 ms until the kill: ended within a second
    # of the last moment the test saw it alive, not at its first pages.
    assert alive_ns - 1_000_000_000 <= end <= killed_ns, (alive_ns, end, killed_ns)


def test_a_process_stopped_with_sigterm_is_said_so_not_told_to_use_sigterm(cli, tmp_path):
    """docker stop, a Kubernetes rollout, Ctrl-C: the watchdog flushes the
    tracer and the process dies of the signal. Its last record was the
    periodic one, so `why` said it was "killed, or it crashed" and told the
    user to "stop it with SIGTERM", which is what they had done. The
    watchdog's flush now leaves a record that names the signal."""
    env = env_with_state(tmp_path)
    spool = tmp_path / "spool"
    with agent_with_a_record(env, spool, "why-term") as child:
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == -signal.SIGTERM, child.stderr.read()
    run = why(cli, env, "--dir", str(spool))
    assert run.returncode == 0, run.stdout + run.stderr
    head = next(l for l in run.stdout.splitlines() if l.startswith(f"pid {child.pid} "))
    assert ", ended by SIGTERM (15): its tracer dealt with what had ended first" in head, run.stdout
    assert "killed, or it crashed" not in run.stdout, run.stdout
    assert "stop it with SIGTERM" not in run.stdout, run.stdout
    # The span held open from the start went to the watchdog's dump, which
    # names the signal too: said with it.
    assert any(l.endswith(" still open at SIGTERM: to be sent marked spanguard.interrupted")
               for l in run.stdout.splitlines()), run.stdout


def test_what_is_no_record_of_ours_is_skipped_not_read(cli, tmp_path):
    """The records' directory is input from outside: a link there (to a
    record elsewhere, or any file) is not followed, a FIFO not waited on,
    text that is no record not shown, a huge file not read whole."""
    env = env_with_state(tmp_path)
    # The default spool directory's: `why` without --dir looks there.
    outcomes = tmp_path / "state" / "spanguard" / "spool" / "outcomes"
    outcomes.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere.sgoutcome"
    elsewhere.write_text("spanguard-outcome 1\npid 4242\nservice forged\nstate stopped\nended 9\n")
    (outcomes / "4242-0.sgoutcome").symlink_to(elsewhere)
    os.mkfifo(outcomes / "4243-0.sgoutcome")
    (outcomes / "4244-0.sgoutcome").write_text("pid 4244\nstate stopped\n")
    (outcomes / "4245-0.sgoutcome").write_bytes(b"spanguard-outcome 1\n" + b"x" * (1 << 20))
    (outcomes / "4247-0.sgoutcome").mkdir()
    (outcomes / "4246-0.sgoutcome").write_text("spanguard-outcome 1\npid 4246\nservice real\x1b[2J\nstate stopped\n"
                                              "ended 3\nexported 3\n")
    run = why(cli, env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "forged" not in run.stdout and "4242" not in run.stdout, run.stdout
    assert "pid 4246 real\\x1b[2J: ran" in run.stdout, run.stdout
    assert "  nothing lost" in run.stdout, run.stdout
    for pid in (4242, 4243, 4244, 4245):
        assert f"{pid}-0.sgoutcome: " in run.stderr and "skipped" in run.stderr, run.stderr
    # A directory under a record's name is said as what it is.
    assert "4247-0.sgoutcome: not a regular file, skipped" in run.stderr, run.stderr
    # Nothing there: said, exit 1.
    run = why(cli, env, str(tmp_path / "none"))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "no process has left a record" in run.stdout, run.stdout


def test_a_directory_filled_by_someone_else_is_said_in_a_few_lines_and_read_in_bounded_memory(cli, tmp_path):
    """Another local user can fill the shared records' directory: 100,000
    files that are no records were 100,000 lines on stderr, and 20,000
    records of 4 KiB were all held (80 MB) to show the newest 20. The first
    few skipped are said by name, the rest in one line by reason; only the
    newest records are kept while reading."""
    env = env_with_state(tmp_path)
    outcomes = tmp_path / "outcomes"
    outcomes.mkdir()
    for i in range(100_000):
        (outcomes / f"{i}-9.sgoutcome").write_bytes(b"planted")
    cause = "cause 1 " + "r" * 4000 + "\n"
    for i in range(20_000):
        (outcomes / f"{i}-0.sgoutcome").write_text(
            f"spanguard-outcome 1\npid {i + 1}\nservice s{i}\nstarted {1_000_000 + i}\n"
            f"updated {1_000_000 + i}\nstate stopped\nended 1\nlost 1\n{cause}")
    # The command's own peak memory: a fresh parent with it alone as child.
    measure = ("import resource, subprocess, sys\n"
               "run = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "sys.stdout.write(run.stdout)\n"
               "sys.stderr.write(run.stderr)\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
               "sys.exit(run.returncode)\n")
    run = subprocess.run([sys.executable, "-c", measure, str(cli), "why", str(outcomes)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    *out, peak_kib = run.stdout.splitlines()
    # The newest 20, newest first.
    heads = [l for l in out if l.startswith("pid ")]
    assert [h.split()[1] for h in heads] == [str(20_000 - i) for i in range(20)], heads
    assert "(19980 older records not shown: spanguard why --last 20000)" in out, out[-3:]
    errs = run.stderr.splitlines()
    assert len(errs) == 6, errs[:10]
    assert all(e.endswith(".sgoutcome: not a record of spanguard's, skipped") for e in errs[:5]), errs
    assert errs[5] == f"spanguard why: 99995 more files skipped in {outcomes}: 99995 not a record of spanguard's", errs
    # 20,000 records of 4 KiB held were 80 MB and more; the spool's files
    # listed whole, twice (for refused spans, for another sender's), were
    # 32 MB; about 8 MB now. A bound with room for another libc or allocator.
    assert int(peak_kib) < 16_000, f"{peak_kib} KiB at its peak"


def pid_namespaces_work() -> bool:
    probe = subprocess.run(["unshare", "--pid", "--fork", "sh", "-c", "test $$ = 1"], capture_output=True)
    return probe.returncode == 0


def child_of(parent: int) -> int:
    children = f"/proc/{parent}/task/{parent}/children"
    for _ in range(1000):
        with open(children) as f:
            found = f.read().split()
        if found:
            return int(found[0])
        time.sleep(0.01)
    raise RuntimeError(f"unshare {parent} started no program")


@pytest.mark.skipif(not pid_namespaces_work(), reason="no PID namespace here (`unshare --pid --fork` fails)")
def test_a_containers_process_is_told_from_outside_its_pid_namespace(cli, tmp_path):
    """A host operator reads a container's spool volume: the record says
    pid 1, which on the host is its init (always alive, never the
    record's process). The process is found by its start and its pid in
    its own namespace: running while it runs (with its pid here), ended
    once killed. Read from another container, which sees none of its
    processes: said that it cannot be told from there. From the host it
    was called dead while it ran (host pid 1 started at another tick),
    and from a sibling container too."""
    env = env_with_state(tmp_path)
    spool = tmp_path / "spool"
    # --kill-child: the agent dies with unshare, killed as the block ends.
    with agent_with_a_record(env, spool, "why-pid1", under=("unshare", "--pid", "--fork", "--kill-child"),
                             record_pid=1) as unshare:
        agent = child_of(unshare.pid)
        run = why(cli, env, "--dir", str(spool))
        head = next(l for l in run.stdout.splitlines() if l.startswith("pid 1 "))
        assert head.startswith(f"pid 1 (pid {agent} here) kill-child: running since "), run.stdout
        # From a sibling namespace (another container sharing the volume).
        sibling = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", str(cli), "why", "--dir", str(spool)],
                                 capture_output=True, text=True, env=env, timeout=60)
        head = next(l for l in sibling.stdout.splitlines() if l.startswith("pid 1 "))
        assert "whether it runs still cannot be told from here: it ran in another PID namespace" in head, \
            sibling.stdout + sibling.stderr
        assert "ended without stopping" not in sibling.stdout and "died" not in sibling.stdout, sibling.stdout
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{agent}") and time.monotonic() < deadline:
        time.sleep(0.01)
    run = why(cli, env, "--dir", str(spool))
    assert run.returncode == 0, run.stdout + run.stderr
    head = next(l for l in run.stdout.splitlines() if l.startswith("pid 1 "))
    assert head.startswith("pid 1 kill-child: started "), run.stdout
    assert "died without a word (SIGKILL, the out-of-memory killer or power loss" in head, run.stdout


@contextlib.contextmanager
def answering_200(head, body):
    """An OTLP/HTTP endpoint on loopback that takes every request with a
    200 whose headers hold `head` and whose body is `body`; its URL."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            for line in head:
                name, value = line.split(": ", 1)
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def gzip_cut_short(data):
    import gzip
    whole = gzip.compress(data)
    return whole[: len(whole) // 2]


def partial_success_warning(message):
    """An ExportTraceServiceResponse whose partial_success rejects none and
    says `message` (the OTLP spec's warning)."""
    inner = b"\x12" + bytes([len(message)]) + message.encode()
    return b"\x0a" + bytes([len(inner)]) + inner


def why_after_answers(cli, tmp_path, head, body, count, said):
    """`why`'s lines after `count` spans sent to a server answering every
    request with a 200 of `head` and `body`, whose stderr said `said`."""
    env = env_with_state(tmp_path)
    spool = tmp_path / "spool"
    with answering_200(head, body) as url:
        emit = emit_spans(tmp_path, env, url, spool, count, "whyanswers")
    assert said in emit.stderr, emit.stderr
    run = why(cli, env, "--dir", str(spool))
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout.splitlines()


@pytest.mark.parametrize("head,body,said", [
    # A proxy compressing with what spanguard does not read: the 200 is
    # taken, but any spans it rejected in its body are counted delivered.
    (["Content-Encoding: br"], b"\x1b\x03\x00\x80\x01\x02compressed", "br"),
    # A gzip answer cut short: it does not inflate, so it says nothing
    # readable either.
    (["Content-Encoding: gzip"], None, "gzip, cut short"),
])
def test_answers_that_could_not_be_read_are_said_by_why(cli, tmp_path, head, body, said):
    """`spanguard why` answers "did everything arrive?": a backend's answer
    that could not be read was a warning on stderr alone (gone with the
    terminal) and `why` said "12 spans delivered ... nothing lost"."""
    if body is None:
        body = gzip_cut_short(partial_success_warning("3 spans were too old") * 20)
    lines = why_after_answers(cli, tmp_path, head, body, 12, "with a warning")
    assert "  12 spans ended: 12 delivered, 0 to the spool, 0 lost" in lines, run.stdout
    assert (f"  12 spans delivered, but the server's answer for 12 of them was unreadable ({said}): any it "
            "rejected are counted delivered") in lines, run.stdout
    assert "  nothing lost" not in lines, run.stdout


def test_a_backend_warning_is_said_by_why(cli, tmp_path):
    """An OTLP partial success that rejects none and says why (the spec's
    warning: "accepted, but sampled") was said on stderr alone."""
    lines = why_after_answers(cli, tmp_path, [], partial_success_warning("older than 1h: sampled"), 7,
                              "older than 1h: sampled")
    assert "  7 spans ended: 7 delivered, 0 to the spool, 0 lost" in lines, run.stdout
    assert "  the backend accepted 7 of them with a warning: older than 1h: sampled" in lines, run.stdout
