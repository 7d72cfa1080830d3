"""spanguard spool says what waits to be sent, and it is what a replay
then delivers: spans spooled while the backend was down, a flight file
held by a live process (not waiting: its own exporter sends it) and the
same file once that process was killed, files set aside as unreadable."""

import os
import re
import signal
import struct
import subprocess
import sys

import pytest

from receiver_client import OtlpReceiverProcess

from conftest import REPO


def spool_report(cli, spool, env=None):
    run = subprocess.run([str(cli), "spool", str(spool)], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    return run.stdout


def waiting(report):
    return int(re.search(r"; (\d+) spans? waits? to be sent", report).group(1))


def spool_while_down(tmp_path, count, *args):
    """`count` spans emitted (tests/c/emit_spans, `args` added) while the
    backend is down: every one of them in the spool it returns."""
    spool = tmp_path / "spool"
    run = subprocess.run([str(REPO / "build" / "tests" / "emit_spans"), "--endpoint", "http://127.0.0.1:9/v1/traces",
                          "--run-id", "down", "--manifest", str(tmp_path / "m.json"), "--count", str(count),
                          "--spool-dir", str(spool), *args, "--export-timeout-ms", "200", "--allow-loss"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return spool


def test_what_spool_reports_waiting_is_what_a_replay_delivers(cli, tmp_path):
    spool = spool_while_down(tmp_path, 37)
    (spool / "old.corrupt").write_bytes(b"\x00" * 10)
    report = spool_report(cli, spool)
    assert waiting(report) == 37, report
    assert "1 unreadable (never sent)" in report
    assert re.search(r"^set aside .* old\.corrupt$", report, re.M), report
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        replay = subprocess.run([str(cli), "replay", str(spool), "--endpoint", rx.endpoint],
                                capture_output=True, text=True, timeout=120)
        assert replay.returncode == 0, replay.stderr
        assert len(rx.wait_for_spans(37)) == 37
    assert waiting(spool_report(cli, spool)) == 0


def recording_child(spool, flight):
    """A process recording spans into a tracer (tests/kill/kill_child, one
    thread, the flight recorder on or off), its backend down, once its
    first span has ended: its tracer is up, its files made and locked."""
    child = subprocess.Popen([str(REPO / "build" / "tests" / "kill_child"), "http://127.0.0.1:9/v1/traces",
                              str(spool), "1", "1" if flight else "0", "none", "0", "spool-test", "20000"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if len(child.stdout.read(4)) != 4:
        child.kill()
        pytest.fail(f"kill_child reported no span: {child.stderr.read()}")
    return child


def test_a_live_flight_file_is_held_and_a_killed_ones_spans_wait(cli, tmp_path):
    spool = tmp_path / "spool"
    child = recording_child(spool, flight=True)
    try:
        report = spool_report(cli, spool)
        line = next(l for l in report.splitlines() if l.startswith("flight file"))
        assert f"pid {child.pid} (live)" in line, report
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    report = spool_report(cli, spool)
    line = next(l for l in report.splitlines() if l.startswith("flight file"))
    assert "(live)" not in line and f"pid {child.pid}, killed" in line, report
    spans = int(line.split()[2])
    assert spans > 0
    # show reads the same file: its open spans come back interrupted.
    show = subprocess.run([str(cli), "show", str(spool), "--color", "never"], capture_output=True, text=True,
                          timeout=60)
    assert show.returncode == 0, show.stderr
    assert "INTERRUPTED (process killed)" in show.stdout


def test_a_process_killed_without_the_flight_recorder_is_said_to_have_lost_its_spans(cli, tmp_path):
    """A newcomer killed an agent (SIGKILL, as the OOM killer does) in the
    middle of a call: `show` drew nothing of that run and said nothing,
    and `spool` listed its two empty crash files as "prepared", as a live
    tracer's. Its tracer prepared them and the process is gone: both say
    now that it ended without a word, that what it had not exported is
    lost, and what keeps it (the flight recorder). A live process's files
    stay "prepared", unremarked."""
    spool = tmp_path / "spool"
    child = recording_child(spool, flight=False)
    try:
        report = spool_report(cli, spool)
        assert re.search(r"^prepared .*\.sgdump-pending$", report, re.M), report
        assert "left empty" not in report and "ended without" not in report, report
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    report = spool_report(cli, spool)
    said = f"1 process ended without shutting its tracer down (pid {child.pid}: SIGKILL, the OOM killer?)"
    assert said in report.splitlines()[0], report
    rows = [l for l in report.splitlines() if l.startswith("left empty")]
    assert len(rows) == 2 and all(f"-{child.pid:010}-" in l for l in rows), report
    assert "prepared" not in report, report
    show = subprocess.run([str(cli), "show", str(spool), "--color", "never"], capture_output=True, text=True,
                          timeout=60)
    told = [l for l in show.stderr.splitlines() if f"pid {child.pid} ended without shutting its tracer down" in l]
    assert len(told) == 1, show.stderr
    assert "the spans it had not yet exported are lost" in told[0], show.stderr
    assert "SPANGUARD_FLIGHT_RECORDER=true" in told[0], show.stderr


def test_an_empty_or_missing_spool_is_not_an_error(cli, tmp_path):
    assert "does not exist, so nothing waits" in spool_report(cli, tmp_path / "none")
    (tmp_path / "empty").mkdir()
    assert waiting(spool_report(cli, tmp_path / "empty")) == 0
    env = dict(os.environ, SPANGUARD_SPOOL_DIR=str(tmp_path / "empty"))
    run = subprocess.run([str(cli), "spool"], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0 and str(tmp_path / "empty") in run.stdout


def test_a_hostile_file_name_is_shown_on_one_line_without_its_escapes(cli, tmp_path):
    """Whoever made a file in the spool directory named it: a line break and
    an escape sequence in the name are shown as escapes, by `spool` and by
    `replay`, never acted on by the terminal nor starting a line."""
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    name = "00000000000000000001-0000000001-a\n\x1b[2Jforged.sgspool"
    (spool / name).write_bytes(b"garbage")
    report = spool_report(cli, spool)
    assert "\x1b" not in report and "forged" not in report.replace("a\\n\\x1b[2Jforged", ""), report
    assert re.search(r"^batch .* 00000000000000000001-0000000001-a\\n\\x1b\[2Jforged\.sgspool", report, re.M), report
    replay = subprocess.run([str(cli), "replay", str(spool), "--endpoint", "http://127.0.0.1:9/v1/traces"],
                            capture_output=True, text=True, timeout=60)
    assert replay.returncode == 0, replay.stderr
    told = [line for line in replay.stderr.splitlines() if "set aside" in line]
    assert len(told) == 1 and "\x1b" not in replay.stderr, replay.stderr
    assert "-a\\n\\x1b[2Jforged.sgspool.unreadable set aside" in told[0], replay.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_replay_leaves_another_users_spool_to_them(cli, tmp_path):
    """Root draining a user's spool: every file there is the user's, and
    read by root each would be set aside unread, sent by nobody ever. The
    directory is refused whole and left as it was."""
    spool = spool_while_down(tmp_path, 5)
    before = sorted(p.name for p in spool.iterdir())
    assert before
    for p in [spool, *spool.iterdir()]:
        os.chown(p, 65534, 65534)
    # Looking is fine: root sees what the user's tracers will send (each
    # batch used to be "unreadable (never sent)" for not being root's).
    listing = subprocess.run([str(cli), "spool", str(spool)], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    assert "5 spans wait to be sent" in listing.stdout and "unreadable" not in listing.stdout, listing.stdout
    shown = subprocess.run([str(cli), "show", "--color", "never", str(spool)], capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0 and not shown.stderr, shown.stdout + shown.stderr
    replay = subprocess.run([str(cli), "replay", str(spool), "--endpoint", "http://127.0.0.1:9/v1/traces"],
                            capture_output=True, text=True, timeout=60)
    assert replay.returncode == 2, replay.stdout + replay.stderr
    assert "65534" in replay.stderr and "as the user who owns it" in replay.stderr, replay.stderr
    assert sorted(p.name for p in spool.iterdir()) == before, "the user's files were touched"


@pytest.mark.parametrize("protocol,compression", [("http/protobuf", "none"), ("http/protobuf", "gzip"),
                                                  ("http/json", "none"), ("http/json", "gzip")])
def test_spans_are_counted_in_the_files_not_taken_from_their_headers(cli, tmp_path, protocol, compression):
    """Spool files whose headers say 0 spans, or 4 billion, over what they
    hold (an older build, a disk error that kept the length, another
    user): `spanguard spool` said "4294967295 spans wait to be sent" and
    `spanguard replay` "replayed 3 requests (4294967297 spans)" for the 21
    that arrived. Both count what the files hold and say which header said
    otherwise; a whole file whose body is no OTLP request is unreadable,
    set aside unsent rather than sent to a 400."""
    spool = spool_while_down(tmp_path, 21, "--protocol", protocol, "--compression", compression)
    files = sorted(spool.glob("*.sgspool"))
    assert len(files) >= 2, files
    # The span count sits after the magic, the format and the gzip flag.
    for path, claimed in zip(files, [0, 0xFFFFFFFF]):
        data = bytearray(path.read_bytes())
        data[10:14] = struct.pack("<I", claimed)
        path.write_bytes(bytes(data))
    header = bytes(files[0].read_bytes()[:10]) + struct.pack("<IQ", 7, 12)
    junk = spool / "00000000000000000001-0000000001-junk.sgspool"
    junk.write_bytes(header + b"\xff" * 12)
    junk.chmod(0o600)
    report = spool_report(cli, spool)
    assert waiting(report) == 21, report
    assert "its header says 0 spans" in report and "its header says 4294967295 spans" in report, report
    # Gzipped, the junk is no gzip stream, and said so.
    not_request = "its body is no whole gzip stream" if compression == "gzip" else "its body is not an OTLP request"
    assert re.search(r"junk\.sgspool  \(unreadable: " + not_request + r" .*says 7 spans\)$", report,
                     re.M), report
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        replay = subprocess.run([str(cli), "replay", str(spool), "--endpoint", rx.endpoint],
                                capture_output=True, text=True, timeout=120)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert len(rx.wait_for_spans(21)) == 21
    assert re.search(r"replayed \d+ requests? \(21 spans\)", replay.stdout), replay.stdout
    told = [line for line in replay.stderr.splitlines() if "said" in line and "spans and holds" in line]
    assert len(told) == 2, replay.stderr
    assert any("junk.sgspool.unreadable set aside, unread: " + not_request in line
               for line in replay.stderr.splitlines()), replay.stderr
    assert waiting(spool_report(cli, spool)) == 0


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_a_cut_gzip_file_is_said_to_be_cut(cli, tmp_path, protocol):
    """A gzipped spool file cut short (a full disk, a copy torn off): `spanguard
    spool` and `spanguard replay` said its body was "not an OTLP request", and
    an OTLP/JSON one cut in its gzip trailer was counted as spans waiting and
    sent to a server that cannot inflate it. Both say the gzip stream ends
    early, and replay sets it aside; the other files' spans arrive."""
    spool = spool_while_down(tmp_path, 21, "--protocol", protocol, "--compression", "gzip")
    files = sorted(spool.glob("*.sgspool"))
    assert len(files) >= 2, files
    cut = files[0]
    # The body ends the file; its length sits after the span count (as the
    # test above writes it): 3 bytes of the gzip trailer go, and the header
    # agrees, so the file is not torn but its gzip stream cut.
    data = bytearray(cut.read_bytes()[:-3])
    body_len = struct.unpack("<Q", data[14:22])[0]
    data[14:22] = struct.pack("<Q", body_len - 3)
    cut.write_bytes(bytes(data))
    report = spool_report(cli, spool)
    said = "its body is no whole gzip stream (the stream ends early: the file was cut short)"
    assert re.search(re.escape(cut.name) + r"  \(unreadable: " + re.escape(said), report), report
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        replay = subprocess.run([str(cli), "replay", str(spool), "--endpoint", rx.endpoint],
                                capture_output=True, text=True, timeout=120)
        assert replay.returncode == 0, replay.stdout + replay.stderr
    assert any(cut.name + ".unreadable set aside, unread: " + said in line
               for line in replay.stderr.splitlines()), replay.stderr


def test_what_is_no_file_but_named_like_one_is_listed_as_replay_sets_it_aside(cli, tmp_path):
    """A FIFO, a symbolic link and a directory named like spool files (made
    by a dead version, a mistake, or another local user where they could
    write): `spanguard replay` sets each aside and says so, and `spanguard
    spool` said nothing of them, before or after: "0 files" over a
    directory that held six. Each is listed now, with what it is, and
    counted with what is never sent."""
    spool = spool_while_down(tmp_path, 4)
    os.mkfifo(spool / "00000000000000000001-0000000001-a.sgspool")
    (spool / "00000000000000000002-0000000002-b.sgspool").symlink_to(tmp_path / "m.json")
    (spool / "00000000000000000003-0000000003-c.sgspool").mkdir()
    os.mkfifo(spool / "9-9-x.sgflight")
    (spool / "9-9-y.sgdump").symlink_to("/nonexistent")
    (spool / "unrelated").mkdir()
    os.mkfifo(spool / ".tmp-unrelated")
    os.mkfifo(spool / ".hidden.sgspool")
    planted = {"00000000000000000001-0000000001-a.sgspool": "a FIFO",
               "00000000000000000002-0000000002-b.sgspool": "a symbolic link",
               "00000000000000000003-0000000003-c.sgspool": "a directory",
               "9-9-x.sgflight": "a FIFO", "9-9-y.sgdump": "a symbolic link"}
    report = spool_report(cli, spool)
    assert waiting(report) == 4, report
    assert f"; {len(planted)} unreadable (never sent)" in report, report
    for name, what in planted.items():
        assert re.search(rf"^not a file .* {re.escape(name)}  \({what}: never read; a replay sets it aside\)$",
                         report, re.M), report
    assert "unrelated" not in report and "hidden" not in report, report
    replay = subprocess.run([str(cli), "replay", str(spool), "--endpoint", "http://127.0.0.1:9/v1/traces",
                             "--timeout-ms", "200"], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, OTEL_BSP_EXPORT_TIMEOUT="500"))
    told = [line for line in replay.stderr.splitlines() if "set aside, unread" in line]
    assert len(told) == len(planted), replay.stderr
    # Set aside, they are still there for a person to look at: listed as such.
    report = spool_report(cli, spool)
    assert f"; {len(planted)} unreadable (never sent)" in report, report
    for name, what in planted.items():
        assert re.search(rf"^set aside .* {re.escape(name)}\.unreadable  \({what}\)$", report, re.M), report


def test_a_hidden_spool_file_is_not_counted_as_waiting_since_no_replay_reads_it(cli, tmp_path):
    """A tracer start and `spanguard replay` never read a hidden name (but
    a writer's `.tmp-*`): a regular `.x.sgspool` (a copy someone made, an
    editor's backup) is never sent. `spanguard spool` listed it as a batch
    and counted its spans as waiting; it is listed as an other file now,
    its spans not in the figure a replay then delivers."""
    spool = spool_while_down(tmp_path, 5)
    batches = sorted(p for p in spool.iterdir() if p.name.endswith(".sgspool"))
    assert batches, list(spool.iterdir())
    (spool / ".copy.sgspool").write_bytes(batches[0].read_bytes())
    report = spool_report(cli, spool)
    assert waiting(report) == 5, report
    assert re.search(r"^other .* \.copy\.sgspool", report, re.M), report
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        replay = subprocess.run([str(cli), "replay", str(spool), "--endpoint", rx.endpoint],
                                capture_output=True, text=True, timeout=120)
        assert replay.returncode == 0, replay.stderr
        assert len(rx.wait_for_spans(5)) == 5
    assert (spool / ".copy.sgspool").exists()
    assert waiting(spool_report(cli, spool)) == 0


def test_a_batch_under_two_names_waits_once_and_is_delivered_once(cli, tmp_path):
    """A spool file with a second name in the spool (`ln`, a restore with
    `cp -al` or `rsync -H`): a replay sent it under one name, deleted that
    name, then sent it again under the other, and `spanguard spool` said
    its spans waited twice. It is listed once, the other name said as
    such, and a replay delivers each span once, leaving neither name; a
    name outside the spool (a backup) stays."""
    spool = spool_while_down(tmp_path, 5, "--batch", "5")
    batches = sorted(p for p in spool.iterdir() if p.name.endswith(".sgspool"))
    assert len(batches) == 1, batches
    second = spool / "99999999999999999999-0000000001-second.sgspool"
    os.link(batches[0], second)
    os.link(batches[0], tmp_path / "backup.sgspool")
    report = spool_report(cli, spool)
    assert waiting(report) == 5, report
    # Its bytes are on the disk once, and count against the cap once.
    size = batches[0].stat().st_size
    shown = f"{size} B" if size < 1024 else f"{size / 1024:.1f} KiB"
    assert f": 2 files, {shown};" in report.splitlines()[0], (size, report)
    assert re.search(rf"^batch +- .* {second.name}  \(another name of {batches[0].name}: a replay sends "
                     r"that batch once and deletes this name\)$", report, re.M), report
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        replay = subprocess.run([str(cli), "replay", str(spool), "--endpoint", rx.endpoint],
                                capture_output=True, text=True, timeout=120)
        assert replay.returncode == 0, replay.stderr
        assert "(5 spans)" in replay.stdout, replay.stdout
        assert len(rx.wait_for_spans(5)) == 5
        assert rx.duplicate_spans() == {}, rx.duplicate_spans()
    assert not [p for p in spool.iterdir() if p.name.endswith(".sgspool")], list(spool.iterdir())
    assert (tmp_path / "backup.sgspool").exists()


def run_measured(argv, env=None):
    """Runs `argv`, returning its result and its peak resident memory in
    bytes (measured by a wrapper of its own: RUSAGE_CHILDREN of this
    process would give the largest of every child the session ran)."""
    wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
               "sys.stderr.write('\\nmaxrss=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
               "sys.exit(r.returncode)")
    run = subprocess.run([sys.executable, "-c", wrapper, *map(str, argv)], capture_output=True, text=True,
                         timeout=120, env=env)
    rss = int(re.search(r"^maxrss=(\d+)$", run.stderr, re.M).group(1)) * 1024
    return run, rss


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def test_a_huge_spool_file_is_refused_unread_not_held_in_memory(cli, tmp_path):
    """A spool file of 768 MiB (sparse) whose header truthfully says so:
    `spanguard spool`, `show` and `replay` read it whole into memory (a
    3 GiB one took 3.1 GB and 90 s to list), where no tracer writes or
    reads a spool file over its cap (64 MiB by default). `spool` and
    `show` now name it and say why, unread; a listing under a cap that
    allows it counts it as it reads it, in little memory."""
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    size = 768 << 20
    # A request holding one unknown field (9) of `size` zero bytes: a
    # valid OTLP request of 0 spans.
    field = bytes([0x4a]) + varint(size)
    big = spool / "00000000000000000001-0000000001-big.sgspool"
    with open(big, "wb") as f:
        f.write(b"SGSPOOL1" + bytes([0, 0]) + struct.pack("<IQ", 0, len(field) + size) + field)
        f.truncate(22 + len(field) + size)
    big.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
    bound = 200 << 20
    refused = "more than a batch can have (67108864 bytes"

    run, rss = run_measured([cli, "spool", spool], env)
    assert run.returncode == 0, run.stderr
    assert re.search(r"big\.sgspool  \(unreadable: its header claims a body of \d+ bytes, " + re.escape(refused),
                     run.stdout, re.M), run.stdout
    assert rss < bound, rss

    run, rss = run_measured([cli, "show", "--color", "never", spool], env)
    assert "big.sgspool" in run.stderr and refused in run.stderr, run.stderr
    assert rss < bound, rss
    assert big.exists()

    # Under a cap that takes it, it is a batch: counted as it is read.
    run, rss = run_measured([cli, "spool", spool], {**env, "SPANGUARD_SPOOL_MAX_BYTES": str(1 << 30)})
    assert run.returncode == 0, run.stderr
    assert re.search(r"big\.sgspool  \(protobuf\)", run.stdout), run.stdout
    assert rss < bound, rss

    # `replay` evicts nothing and sets aside no batch that a tracer wrote
    # under a larger cap than this shell's: a file over the default cap
    # (80 MiB here) is read and kept when the backend is away, not renamed
    # unreadable, where no tracer or replay would take it again.
    big.unlink()
    size = 80 << 20
    field = bytes([0x4a]) + varint(size)
    with open(big, "wb") as f:
        f.write(b"SGSPOOL1" + bytes([0, 0]) + struct.pack("<IQ", 0, len(field) + size) + field)
        f.truncate(22 + len(field) + size)
    big.chmod(0o600)
    run, _ = run_measured([cli, "replay", spool, "--endpoint", "http://127.0.0.1:9"], env)
    assert "set aside" not in run.stderr, run.stderr
    assert [p.name for p in spool.iterdir()] == [big.name]


def test_a_count_of_one_is_said_in_the_singular(cli, tmp_path):
    """"1 spans wait to be sent", "replayed 1 requests (1 spans)": read as
    a template no one finished, on the lines a person reads to learn what
    is left. Whole lines compared."""
    spool = spool_while_down(tmp_path, 1)
    [path] = spool.glob("*.sgspool")
    size = path.stat().st_size
    assert size < 1024, size
    # Listed where tracers send where the spans' writer did: none waits
    # for another sender.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://127.0.0.1:9/v1/traces"
    [summary] = [l for l in spool_report(cli, spool, env).splitlines() if l.startswith("spool ")]
    assert summary == f"spool {spool}: 1 file, {size} B; 1 span waits to be sent (1 batch)", summary
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        replay = subprocess.run([str(cli), "replay", str(spool), "--endpoint", rx.endpoint],
                                capture_output=True, text=True, timeout=120)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert replay.stdout.splitlines() == [
            f"replayed 1 request (1 span) to {rx.traces_url}; 0 spans refused; 0 spans kept; "
            f"0 values cut; 0 probes sent; 0 files left in {spool}"], replay.stdout


def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_file_its_dead_writer_left_is_said_to_be_left_and_replay_removes_it(cli, tmp_path):
    """A process killed while it made a crash dump or flight file
    (`.NAME.PID-N.tmp`) or wrote a batch (`.tmp-*.sgspool`) leaves that
    file: the next tracer start or replay removes it (the library's
    recovery). `spanguard spool` listed it as "being written", as if a
    process still wrote it; now as left behind, with what happens to it,
    and that is what a replay then does. A file whose writer lives is
    still being written, and left alone."""
    spool = spool_while_down(tmp_path, 3)
    dead = dead_pid()
    left = [f".a.sgdump.{dead}-1.tmp", f".b.sgflight.{dead}-2.tmp",
            f".tmp-00000000000000000001-{dead:010}-000001.sgspool"]
    for name in left:
        (spool / name).write_bytes(b"")
    live = f".c.sgflight.{os.getpid()}-3.tmp"
    (spool / live).write_bytes(b"")
    report = spool_report(cli, spool)
    for name in left:
        assert re.search(rf"^left behind .* {re.escape(name)}  \(its writer, pid {dead}, is gone: the next tracer "
                         r"start or spanguard replay deletes it\)$", report, re.M), report
    assert re.search(rf"^being written .* {re.escape(live)}$", report, re.M), report
    assert ("; 3 files left by writers that died (the next tracer start or spanguard replay removes them)"
            in report.splitlines()[0]), report
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        replay = subprocess.run([str(cli), "replay", str(spool), "--endpoint", rx.endpoint],
                                capture_output=True, text=True, timeout=120)
        assert replay.returncode == 0, replay.stderr
        assert len(rx.wait_for_spans(3)) == 3
    assert [n for n in left if (spool / n).exists()] == []
    assert (spool / live).exists()
    assert "left" not in spool_report(cli, spool).splitlines()[0]


def test_files_set_aside_are_said_against_the_cap_and_go_first(cli, tmp_path):
    """Files set aside count against SPANGUARD_SPOOL_MAX_BYTES and are the
    first a tracer deletes when it needs room (the library's spool):
    `spanguard spool` listed them "never sent" and no more, so a user
    whose spool was full of them could not tell why batches went. The
    summary says how much of the cap they take; over the cap, what the
    next batch spooled deletes, and a tracer spooling then does that."""
    spool = spool_while_down(tmp_path, 2)
    (spool / "old.corrupt").write_bytes(b"\x00" * 5000)
    report = spool_report(cli, spool).splitlines()[0]
    assert ("; 1 file set aside (4.9 KiB) counts against its 64.0 MiB cap: a tracer that needs room deletes it first"
            in report), report
    batches = sum(p.stat().st_size for p in spool.iterdir() if p.name.endswith(".sgspool"))
    cap = batches + 4096
    env = {**os.environ, "SPANGUARD_SPOOL_MAX_BYTES": str(cap)}
    over = subprocess.run([str(cli), "spool", str(spool)], capture_output=True, text=True, timeout=60, env=env)
    assert over.returncode == 0, over.stderr
    assert re.search(r"; over its [0-9.]+ KiB cap \(SPANGUARD_SPOOL_MAX_BYTES\) by 904 B: the next batch a tracer "
                     r"spools deletes files set aside, oldest first", over.stdout), over.stdout
    # A tracer spooling with that cap deletes the file set aside, keeps the batches.
    run = subprocess.run([str(REPO / "build" / "tests" / "emit_spans"), "--endpoint", "http://127.0.0.1:9/v1/traces",
                          "--run-id", "down2", "--manifest", str(tmp_path / "m2.json"), "--count", "1",
                          "--spool-dir", str(spool), "--export-timeout-ms", "200", "--allow-loss", "--from-env"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert not (spool / "old.corrupt").exists()
    assert waiting(spool_report(cli, spool)) >= 2


def test_many_files_set_aside_are_said_in_a_few_lines_by_cause(cli, tmp_path):
    """A spool directory of torn or planted files (a full disk, a copy
    gone wrong, another local user): `spanguard replay` said one line a
    file, 100,000 lines for 100,000 files. It says the first 5 by name,
    then the rest counted by cause, as the library's exporter does; the
    counts add up, the spans beside them are delivered, the exit status is
    what it was."""
    spool = spool_while_down(tmp_path, 3)
    junk, fifos = 700, 300
    for i in range(junk):
        (spool / f"{i + 1:020}-0000000001-junk.sgspool").write_bytes(b"not a spool file")
    for i in range(fifos):
        os.mkfifo(spool / f"{i + 1:020}-0000000002-fifo.sgspool")
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        replay = subprocess.run([str(cli), "replay", str(spool), "--endpoint", rx.endpoint],
                                capture_output=True, text=True, timeout=300)
        assert len(rx.spans()) == 3, replay.stderr
    assert replay.returncode == 0, replay.stdout + replay.stderr
    told = [line for line in replay.stderr.splitlines() if "set aside" in line]
    assert len(told) == 6, replay.stderr[:3000]
    for line in told[:5]:
        assert re.match(rf"^spanguard replay: {re.escape(str(spool))}/\d{{20}}-\d{{10}}-(junk|fifo)\.sgspool"
                        r"\.unreadable set aside, unread: ", line), line
    summary = re.match(rf"^spanguard replay: (\d+) more files set aside, unread: (.*)$", told[5])
    assert summary and int(summary.group(1)) == junk + fifos - 5, told[5]
    groups = re.findall(rf"(\d+) in {re.escape(str(spool))} \(([^)]*)\)", summary.group(2))
    assert len(groups) == 2 and sum(int(n) for n, _ in groups) == junk + fifos - 5, told[5]
    # Every one of them is still there, set aside, for a person to look at.
    assert len(list(spool.glob("*.unreadable"))) == junk + fifos
    assert f"; {junk + fifos} unreadable (never sent)" in spool_report(cli, spool)


def test_a_batch_written_for_another_sender_is_said_to_wait_for_it(cli, tmp_path):
    """A tracer sends only the spool files a sender set up like its own
    wrote (their names say whose: `-for<fingerprint>`); `spool` says which
    wait for another sender than this environment's settings name, and how
    to send them by hand. A file that names no sender (an older
    spanguard's) is anyone's, as before."""
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    body = bytes([0x0A, 0x04, 0x12, 0x02, 0x12, 0x00])  # one span
    batch = b"SGSPOOL1" + bytes([0, 0]) + struct.pack("<IQ", 1, len(body)) + body
    theirs = spool / "00000000000000000001-0000000001-000001-for00000000000000aa.sgspool"
    anyones = spool / "00000000000000000002-0000000001-000002.sgspool"
    for f in (theirs, anyones):
        f.write_bytes(batch)
        f.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://127.0.0.1:9/v1/traces"
    run = subprocess.run([cli, "spool", spool], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    summary = run.stdout.splitlines()[0]
    assert "2 spans wait to be sent" in summary, summary
    assert "1 span of them for another sender than this environment's tracers send to" in summary, summary
    assert f"spanguard replay {spool} --sender 00000000000000aa" in summary, summary
    assert re.search(r"-for00000000000000aa\.sgspool  \(protobuf; waits for the sender that wrote it, not this "
                     r"environment's: 00000000000000aa\)", run.stdout), run.stdout
    assert re.search(r"000002\.sgspool  \(protobuf\)$", run.stdout, re.M), run.stdout


def test_the_command_spool_says_sends_that_senders_files_and_no_others(cli, tmp_path):
    """A tracer whose API key was rotated between a crash and the restart
    (the same URL, a new key) is another sender to its own leftovers: they
    waited for a sender that never comes again, and `spanguard replay`
    alone sends every file, another project's too, to the endpoint it is
    given. `spool` says the command that sends one sender's files with this
    environment's endpoint and headers; that command sends those and
    leaves the rest."""
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)

    def one_span(n):
        """A spool file of one span, its ids its own."""
        span = (b"\x0a\x10" + bytes([n]) * 16 + b"\x12\x08" + bytes([n]) * 8 + b"\x2a\x01s"
                + b"\x39" + struct.pack("<Q", 10**18) + b"\x41" + struct.pack("<Q", 10**18 + 1))
        scope = b"\x12" + bytes([len(span)]) + span
        resource = b"\x12" + bytes([len(scope)]) + scope
        body = b"\x0a" + bytes([len(resource)]) + resource
        return b"SGSPOOL1" + bytes([0, 0]) + struct.pack("<IQ", 1, len(body)) + body

    rotated = spool / "00000000000000000001-0000000001-000001-for00000000000000aa.sgspool"
    rotated_dump_batch = spool / "00000000000000000002-0000000001-000002-for00000000000000aa-refusedby00000000000000aa.sgspool"
    another_project = spool / "00000000000000000003-0000000001-000003-for00000000000000bb.sgspool"
    unmarked = spool / "00000000000000000004-0000000001-000004.sgspool"
    for n, f in enumerate((rotated, rotated_dump_batch, another_project, unmarked), 1):
        f.write_bytes(one_span(n))
        f.chmod(0o600)
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = rx.traces_url
        env["OTEL_EXPORTER_OTLP_HEADERS"] = "api-key=rotated"
        run = subprocess.run([cli, "spool", spool], env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        summary = run.stdout.splitlines()[0]
        said = re.findall(rf"spanguard replay {re.escape(str(spool))} --sender [0-9a-f]{{16}}", summary)
        assert sorted(said) == [f"spanguard replay {spool} --sender 00000000000000aa",
                                f"spanguard replay {spool} --sender 00000000000000bb"], summary
        sent = subprocess.run([cli, *said[0].split()[1:]], env=env, capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        rx.wait_for_spans(2)
        assert len(rx.spans()) == 2, rx.spans()
    left = sorted(p.name for p in spool.glob("*.sgspool"))
    assert left == [another_project.name, unmarked.name], left
    bad = subprocess.run([cli, "replay", spool, "--sender", "aa"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "16 hex digits" in bad.stderr, bad.stderr



def test_a_recovered_batch_a_replay_is_refused_is_kept_marked_refused(cli, tmp_path):
    """`spanguard replay` refused (401: its --headers forgotten) for the
    spans it recovered from a killed process's flight file writes them
    back as a batch marked refused to the replay's sender, as a tracer
    marks what it is refused (`-refusedby`): marked only for the replay's
    setting, the same replay, or a tracer set up as it, sent them again
    to be refused again, and `spool` counted them as waiting for it."""
    spool = tmp_path / "spool"
    child = recording_child(spool, flight=True)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert list(spool.glob("*.sgflight"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
    with OtlpReceiverProcess(workdir=tmp_path / "rx", mode="status:401") as rx:
        out = subprocess.run([cli, "replay", spool, "--endpoint", rx.endpoint], env=env,
                             capture_output=True, text=True, timeout=120)
        # 3: refused to this sender (the spans kept for a corrected one).
        assert out.returncode == 3, out.stdout + out.stderr
        assert re.search(r"; (\d+) spans? kept \(\1 refused to this sender or URL\);", out.stdout), out.stdout
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = rx.traces_url
        kept = sorted(p.name for p in spool.glob("*.sgspool"))
        assert len(kept) == 1, kept
        marks = re.search(r"-for([0-9a-f]{16})-refusedby([0-9a-f]{16})\.sgspool$", kept[0])
        assert marks and marks.group(1) == marks.group(2), kept
        report = spool_report(cli, spool, env)
        assert "refused to its sender, kept for a corrected endpoint or headers" in report, report
        assert rx.spans() == []


def test_the_sender_key_is_said_to_be_one(cli, tmp_path):
    """The spool's key of sender marks (`.sender-key`, made by the first
    tracer) was listed as "other" with no word: something left behind, to
    delete, and deleted it leaves every file named under it to replay."""
    spool = spool_while_down(tmp_path, 3)
    key = spool / ".sender-key"
    assert key.stat().st_mode & 0o777 == 0o600
    line = next(l for l in spool_report(cli, spool).splitlines() if l.endswith(")") and ".sender-key" in l)
    assert "the key of the sender marks in these names, never sent" in line, line


def test_a_sender_key_that_cannot_be_used_is_said_once_and_kept_for_the_process(tmp_path):
    """A `.sender-key` others may read (or another user's, or the wrong
    length) is not used: the process names its files under a key of its
    own. It did so silently, tried the key file again at every name it
    made or looked at, and drew a new key each time: its own spool files
    named with a new mark each, none its own a moment later. Now it is
    said once, with the path, why and what to do, and every file the
    process writes there carries the one mark."""
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    key = spool / ".sender-key"
    key.write_bytes(b"k" * 16)
    key.chmod(0o644)
    run = subprocess.run([str(REPO / "build" / "tests" / "emit_spans"), "--endpoint", "http://127.0.0.1:9/v1/traces",
                          "--run-id", "down", "--manifest", str(tmp_path / "m.json"), "--count", "40",
                          "--batch", "4", "--spool-dir", str(spool), "--export-timeout-ms", "200",
                          "--allow-loss"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    said = [line for line in run.stderr.splitlines() if ".sender-key" in line]
    assert len(said) == 1, run.stderr
    assert said[0].startswith(f"spanguard: warn: the spool's sender key {key} cannot be used (mode 0644: others "
                              "may read it)"), said[0]
    assert f"`spanguard replay {spool}` does" in said[0] and f"remove {key}" in said[0], said[0]
    marks = {re.search(r"-for([0-9a-f]{16})", f.name).group(1) for f in spool.glob("*.sgspool")}
    assert len(list(spool.glob("*.sgspool"))) > 1 and len(marks) == 1, sorted(spool.iterdir())
    assert key.read_bytes() == b"k" * 16, "left as it was"
