"""The spool directory is input from outside: whatever sits in it (a FIFO, a
socket, links, sparse files with lying headers, other users' files, another
version's dumps, torn files, temporary files of dead and of live writers),
a tracer starts, recovers what is readable exactly once, sets the rest aside
(renamed *.unreadable, counted, reported) and shuts down within its timeout
with bounded memory. Files and directories it makes are private whatever
the umask, and it refuses directories another user controls.

Each case first spools a known batch set (an emitter whose backend is down),
plants its hostile files beside it, then runs a second emitter against a
healthy receiver (and `spanguard replay` for what that short-lived process
left) and judges by what the receiver decoded."""

import json
import re
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import time
import fcntl
from pathlib import Path

import pytest

from receiver_client import OtlpReceiverProcess

REPO = Path(__file__).resolve().parents[2]
CLI = Path(os.environ.get("SPANGUARD_CLI", REPO / "target" / "release" / "spanguard"))
IS_ROOT = os.geteuid() == 0
# Far above what a tracer needs (its slots are about 20 MiB), far below
# what reading any hostile file whole would take (1 GiB and more).
MAX_RSS_KIB = 256 * 1024
SPOOL_HEADER = 22


def spool_header(body_len, spans=3, fmt=0, gzipped=0):
    return b"SGSPOOL1" + bytes([fmt, gzipped]) + struct.pack("<IQ", spans, body_len)


def dump_header(magic, record_size, count, chunk_size=4096, pool_chunks=0, pool_offset=0):
    """A header laid out as buffer::dump::DumpHeader (repr(C)): magic,
    record_size, record_count, pid, signal, name and resource lengths,
    chunk_size, pool_chunks, pool_offset, then the name and resource text."""
    return (magic + struct.pack("<IIIiIIIIQ", record_size, count, 12345, 0, 3, 0, chunk_size, pool_chunks,
                                pool_offset) + b"svc".ljust(256, b"\0") + bytes(1024))


def run_emitter(emitter, endpoint, tmp_path, name, spool, count=3, extra=(), env=None, umask=None):
    """Runs the emitter to its end (or kills it after a minute: a hang is a
    failure) and returns (exit status, stats, stderr, peak RSS in KiB). The
    peak is the emitter's own (VmHWM, in its stats): wait4's ru_maxrss
    charges a child started with vfork, as subprocess starts it, with this
    process's peak at its exec."""
    stats = tmp_path / f"{name}.stats.json"
    manifest = tmp_path / f"{name}.manifest.json"
    args = [str(emitter), "--endpoint", endpoint, "--run-id", name, "--manifest", str(manifest),
            "--count", str(count), "--spool-dir", str(spool), "--stats-json", str(stats),
            "--shutdown-timeout-ms", "3000", "--allow-loss", *extra]
    errors = tmp_path / f"{name}.stderr"
    with open(errors, "w") as err:
        child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, env=env,
                                 preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)
    # wait4, for this child's own peak RSS. A minute is far beyond any
    # shutdown timeout here: only a hang reaches it.
    deadline = time.monotonic() + 60
    while True:
        pid, status, _ = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            child.kill()
            os.wait4(child.pid, 0)
            child.returncode = -9
            pytest.fail(f"{name}: the emitter hung (no shutdown within a minute)")
        time.sleep(0.05)
    child.returncode = os.waitstatus_to_exitcode(status)
    st = json.loads(stats.read_text()) if stats.exists() else None
    rss = st["peak_rss_kib"] if st else None
    man = json.loads(manifest.read_text()) if manifest.exists() else None
    return child.returncode, st, errors.read_text(), rss, man


@pytest.fixture(scope="module")
def legit_spool(tmp_path_factory, emitter):
    """A spool of real batches (the backend was down) and their spans."""
    work = tmp_path_factory.mktemp("legit")
    spool = work / "spool"
    # Nothing listens on port 1: every batch is spooled after its short budget.
    status, stats, err, _, man = run_emitter(
        emitter, "http://127.0.0.1:1", work, "legit", spool, count=30,
        extra=("--export-timeout-ms", "100", "--request-timeout-ms", "100", "--batch", "6"))
    assert status == 0, err
    files = sorted(spool.glob("*.sgspool"))
    assert len(files) >= 3 and stats["spooled_spans"] == 30, (files, stats)
    return spool, {(s["trace_id"], s["span_id"]) for s in man["spans"]}


def spans_of_files(files):
    """How many spans each spool file holds (its header says)."""
    return {f.name: struct.unpack("<I", f.read_bytes()[10:14])[0] for f in files}


class Case:
    """A spool directory with the legit batches and a case's hostile files."""

    def __init__(self, tmp_path, legit_spool):
        src, self.legit_keys = legit_spool
        self.tmp = tmp_path
        self.spool = tmp_path / "spool"
        shutil.copytree(src, self.spool)
        self.files = sorted(self.spool.glob("*.sgspool"))
        self.outside = tmp_path / "outside"
        self.outside.mkdir()

    def take_one(self):
        """Moves one legit batch out of the expected set (returns its path)."""
        path = self.files.pop(0)
        return path

    def run(self, emitter, receiver, name="recover", **kw):
        status, stats, err, rss, man = run_emitter(emitter, receiver.endpoint, self.tmp, name, self.spool, **kw)
        assert status == 0, err
        assert stats is not None, err
        assert stats["shutdown_result"] == 0, f"shutdown did not finish in time: {stats}"
        assert 0 < rss < MAX_RSS_KIB, f"the tracer grew to {rss} KiB reading the spool"
        own = {(s["trace_id"], s["span_id"]) for s in man["spans"]}
        # A short-lived process replays the spool only while nothing else
        # needs its exporter: `spanguard replay` sends what it left, past
        # the same hostile files.
        replay = subprocess.run([str(CLI), "replay", str(self.spool), "--endpoint", receiver.endpoint],
                                capture_output=True, text=True, timeout=60)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        # What either set aside, counted by the tracer or told by the command.
        stats["files_set_aside"] += replay.stderr.count("set aside, unread")
        return stats, err, own

    def expect_delivered(self, receiver, own, legit_keys):
        receiver.wait_for_spans(len(own) + len(legit_keys), timeout_s=20)
        assert receiver.duplicate_spans() == {}, "a span arrived twice"
        got = {(s["trace_id"], s["span_id"]) for s in receiver.spans()}
        assert got == own | legit_keys, (
            f"{len(got - own - legit_keys)} unexpected spans, {len(own | legit_keys - got)} missing")

    def set_aside(self):
        return sorted(p.name for p in self.spool.iterdir() if p.name.endswith(".unreadable"))

    def left(self):
        # outcomes/ holds the tracers' records (`spanguard why`), and
        # .sender-key the key of the files' sender marks: no spans.
        return sorted(p.name for p in self.spool.iterdir()
                      if not p.name.endswith(".unreadable") and p.name not in ("outcomes", ".sender-key"))


@pytest.fixture
def receiver(tmp_path):
    with OtlpReceiverProcess(workdir=tmp_path) as rx:
        yield rx


def keys_in(path, legit):
    """The legit spans a spool file holds, found by decoding it."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    req = ExportTraceServiceRequest()
    req.ParseFromString(path.read_bytes()[SPOOL_HEADER:])
    keys = {(s.trace_id.hex(), s.span_id.hex()) for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans}
    assert keys <= legit
    return keys


NAMES = ["00000000000000000001-0000000001-a.sgdump", "00000000000000000001-0000000001-b.sgspool",
         "00000000000000000001-0000000001-c.sgflight", "00000000000000000001-0000000001-d.sgdump-pending",
         "00000000000000000001-0000000001-e.sgspool-pending"]


def test_fifos_are_set_aside_and_never_block(emitter, receiver, tmp_path, legit_spool):
    case = Case(tmp_path, legit_spool)
    for name in NAMES:
        os.mkfifo(case.spool / name)
    stats, err, own = case.run(emitter, receiver)
    case.expect_delivered(receiver, own, case.legit_keys)
    assert case.set_aside() == sorted(n + ".unreadable" for n in NAMES)
    assert stats["files_set_aside"] == len(NAMES)
    # The callback is told of each, once it is set: emit_spans sets it just
    # after the tracer started, and the exporter may already have looked.
    told = [json.loads(line) for line in err.splitlines() if line.startswith('{"event": 7,')]
    assert len(told) <= len(NAMES)
    for event in told:
        assert any(name in event["message"] for name in case.set_aside()), event


def test_sockets_are_set_aside(emitter, receiver, tmp_path, legit_spool):
    case = Case(tmp_path, legit_spool)
    socks = []
    # Short names: a socket's path has a length limit.
    for name in ["s.sgdump", "t.sgspool"]:
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(case.spool / name))
        s.listen()
        socks.append(s)
    stats, _, own = case.run(emitter, receiver)
    case.expect_delivered(receiver, own, case.legit_keys)
    assert stats["files_set_aside"] == 2 and len(case.set_aside()) == 2
    for s in socks:
        s.close()


def test_links_are_never_followed(emitter, receiver, tmp_path, legit_spool):
    case = Case(tmp_path, legit_spool)
    os.symlink("/dev/zero", case.spool / NAMES[0])
    os.symlink("/dev/zero", case.spool / NAMES[2])
    # A real batch outside the spool, reachable only through a link: not sent,
    # not deleted.
    moved = case.take_one()
    elsewhere = case.outside / "batch.sgspool"
    shutil.move(moved, elsewhere)
    hidden = keys_in(elsewhere, case.legit_keys)
    os.symlink(elsewhere, case.spool / "00000000000000000002-0000000001-f.sgspool")
    stats, _, own = case.run(emitter, receiver)
    case.expect_delivered(receiver, own, case.legit_keys - hidden)
    assert elsewhere.exists()
    assert stats["files_set_aside"] == 3 and len(case.set_aside()) == 3


def test_sparse_files_with_lying_headers_cost_neither_memory_nor_a_crash(emitter, receiver, tmp_path, legit_spool):
    case = Case(tmp_path, legit_spool)
    huge_spool = case.spool / "00000000000000000002-0000000001-g.sgspool"
    with open(huge_spool, "wb") as f:
        f.write(spool_header(64 << 30))
        f.truncate(SPOOL_HEADER + (64 << 30))
    # Headers of this build's dumps with absurd counts, over 1 GiB holes.
    this = this_builds_dumps(tmp_path)
    for name, kind, count in [("h.sgdump", "crash", 0xFFFFFFFF),
                              ("i.sgflight", "flight", 1 << 23),
                              ("j.sgdump", "crash", 0)]:
        with open(case.spool / f"00000000000000000002-0000000001-{name}", "wb") as f:
            f.write(dump_header(this[kind], this["record_size"], count, this["chunk_size"]))
            f.truncate(1 << 30)
    stats, _, own = case.run(emitter, receiver)
    case.expect_delivered(receiver, own, case.legit_keys)
    # The spool file claims more than a batch can be, and a count past the
    # most slots a tracer has is a lie: both kept for a person to look at.
    assert stats["files_set_aside"] == 2, case.set_aside()
    assert sorted(case.set_aside()) == sorted([huge_spool.name + ".unreadable",
                                               "00000000000000000002-0000000001-h.sgdump.unreadable"])


def this_builds_dumps(tmp_path):
    """This build's magics, record size and chunk size, read from a real
    crash dump (a child ended by SIGTERM) and a real flight file (a child
    killed with the flight recorder on)."""
    found = {}
    for flight, sig, suffix in [(0, signal.SIGTERM, ".sgdump"), (1, signal.SIGKILL, ".sgflight")]:
        spool = tmp_path / f"probe-spool-{flight}"
        child = subprocess.Popen([str(REPO / "build" / "tests" / "kill_child"), "http://127.0.0.1:1/v1/traces",
                                  str(spool), "1", str(flight), "none", "10", "probe", "1000"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        child.stdout.read(4)  # a span has ended: the tracer runs
        child.send_signal(sig)
        child.wait(timeout=60)
        # The header only: a flight file is as large as the tracer's pool.
        with open(next(spool.glob("*" + suffix)), "rb") as f:
            head = f.read(48)
        found["flight" if flight else "crash"] = head[:8]
        found["record_size"], found["chunk_size"] = struct.unpack("<I", head[8:12])[0], \
            struct.unpack("<I", head[32:36])[0]
        shutil.rmtree(spool)
    return found


@pytest.mark.skipif(not IS_ROOT, reason="giving a file to another user needs root")
def test_another_users_files_are_set_aside_unread(emitter, receiver, tmp_path, legit_spool):
    case = Case(tmp_path, legit_spool)
    theirs = case.take_one()
    hidden = keys_in(theirs, case.legit_keys)
    os.chown(theirs, 65534, 65534)
    dump = case.spool / NAMES[0]
    dump.write_bytes(b"x" * 100)
    os.chown(dump, 65534, 65534)
    stats, _, own = case.run(emitter, receiver)
    case.expect_delivered(receiver, own, case.legit_keys - hidden)
    assert case.set_aside() == sorted([theirs.name + ".unreadable", dump.name + ".unreadable"])
    assert stats["files_set_aside"] == 2


def test_a_directory_others_may_write_is_made_private(emitter, receiver, tmp_path, legit_spool):
    case = Case(tmp_path, legit_spool)
    os.chmod(case.spool, 0o777)
    stats, _, own = case.run(emitter, receiver)
    case.expect_delivered(receiver, own, case.legit_keys)
    assert stat.S_IMODE(os.stat(case.spool).st_mode) == 0o700
    assert stats["files_set_aside"] == 0


@pytest.mark.skipif(not IS_ROOT, reason="giving a directory to another user needs root")
def test_another_users_directory_is_refused(emitter, receiver, tmp_path, legit_spool):
    case = Case(tmp_path, legit_spool)
    os.chown(case.spool, 65534, 65534)
    status, _, err, _, _ = run_emitter(emitter, receiver.endpoint, tmp_path, "refused", case.spool)
    assert status != 0
    # The library's sentence names the setting, the directory and its owner.
    assert "SPANGUARD_SPOOL_DIR" in err and "65534" in err and str(case.spool) in err, err
    assert receiver.spans() == []


def plant_many_records(outcomes):
    outcomes.mkdir(mode=0o700)
    for i in range(100_000):
        (outcomes / f"{1_000_000 + i}-0.sgoutcome").touch()


def ours_and_private(p) -> bool:
    """Whether `p` is a directory (not a link) of this user's, 0700."""
    st = os.lstat(p)
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o700


# What may stand where a tracer keeps its outcome records (`spanguard why`),
# <spool>/outcomes/, and what must be left of it: records are diagnostics,
# so none of these may cost a span, hold the shutdown past its deadline,
# block, or lead a write outside the spool.
OUTCOMES_IN_PLACE = {
    # open() of a FIFO waits for a writer. It, and a file of the user's own,
    # are set aside unread as outcomes.unreadable and a private directory of
    # ours made (hostfiles57: left in place, they kept every record from
    # being written).
    "fifo": (lambda p, outside: os.mkfifo(p),
             lambda p, outside: (stat.S_ISFIFO(os.lstat(p.with_name("outcomes.unreadable")).st_mode)
                                 and ours_and_private(p))),
    "regular file": (lambda p, outside: p.write_text("not a directory"),
                     lambda p, outside: (p.with_name("outcomes.unreadable").read_text() == "not a directory"
                                         and ours_and_private(p))),
    # Another user's link (to a directory of theirs, made 0777 for us to
    # fill): not followed, nothing written there; set aside unread as
    # outcomes.unreadable and a private directory of ours made (hostile53:
    # left in place, it kept every record from being written).
    "another user's link": (
        lambda p, outside: (os.chmod(outside, 0o777), os.chown(outside, 65534, 65534),
                            os.symlink(outside, p), os.lchown(p, 65534, 65534)),
        lambda p, outside: (os.path.islink(p.with_name("outcomes.unreadable")) and os.listdir(outside) == []
                            and ours_and_private(p))),
    # A directory another user made, open to all: set aside as it was.
    "another user's directory": (
        lambda p, outside: (p.mkdir(), os.chmod(p, 0o777), os.chown(p, 65534, 65534)),
        lambda p, outside: (os.listdir(p.with_name("outcomes.unreadable")) == []
                            and stat.S_IMODE(os.stat(p.with_name("outcomes.unreadable")).st_mode) == 0o777
                            and ours_and_private(p))),
    # 100,000 files: pruning them held the spans of this short process past
    # its shutdown's deadline (exported 0 of 10, spooled instead).
    "100,000 files": (lambda p, outside: plant_many_records(p),
                      lambda p, outside: len(os.listdir(p)) > 0),
}

# What each of them counts in files_set_aside.
OUTCOMES_SET_ASIDE = {"fifo": 1, "regular file": 1, "another user's link": 1, "another user's directory": 1,
                      "100,000 files": 0}


@pytest.mark.skipif(not IS_ROOT, reason="giving files to another user needs root")
@pytest.mark.parametrize("what", OUTCOMES_IN_PLACE)
def test_whatever_stands_in_place_of_the_outcomes_directory_costs_no_span(
        emitter, receiver, tmp_path, legit_spool, what):
    case = Case(tmp_path, legit_spool)
    outcomes = case.spool / "outcomes"
    shutil.rmtree(outcomes, ignore_errors=True)
    plant, still_there = OUTCOMES_IN_PLACE[what]
    plant(outcomes, case.outside)
    # Run as Case.run does, which also requires a shutdown within its
    # timeout, bounded memory and exit status 0.
    stats, err, own = case.run(emitter, receiver, count=10)
    case.expect_delivered(receiver, own, case.legit_keys)
    assert stats["spans_exported"] == 10, stats
    # What is set aside is counted as every file set aside is (count55;
    # event 7 tells it too): the many records are not.
    assert stats["files_set_aside"] == OUTCOMES_SET_ASIDE[what], err
    assert still_there(outcomes, case.outside), what


def test_wrong_and_other_versions_magic_and_torn_files_are_set_aside(emitter, receiver, tmp_path, legit_spool):
    case = Case(tmp_path, legit_spool)
    planted = {
        "00000000000000000002-0000000001-k.sgdump": os.urandom(4000),
        "00000000000000000002-0000000001-l.sgspool": os.urandom(100),
        # The previous record layout's dump and flight file.
        "00000000000000000002-0000000001-m.sgdump": dump_header(b"SGDUMP01", 2880, 1) + bytes(2880),
        "00000000000000000002-0000000001-n.sgflight": dump_header(b"SGFLITE1", 2880, 1) + bytes(2880),
        "00000000000000000002-0000000001-o.sgdump": b"SGDUMP",
    }
    for name, data in planted.items():
        (case.spool / name).write_bytes(data)
    torn = case.take_one()
    hidden = keys_in(torn, case.legit_keys)
    torn.write_bytes(torn.read_bytes()[:-5])
    stats, _, own = case.run(emitter, receiver)
    case.expect_delivered(receiver, own, case.legit_keys - hidden)
    assert case.set_aside() == sorted([n + ".unreadable" for n in planted] + [torn.name + ".unreadable"])
    assert stats["files_set_aside"] == len(planted) + 1


def test_temporary_files_of_dead_writers_go_and_live_writers_stay(emitter, receiver, tmp_path, legit_spool):
    case = Case(tmp_path, legit_spool)
    # Whole batches under temporary names: sent, they would arrive twice.
    dead = case.spool / ".tmp-00000000000000000002-2147483647-000001.sgspool"
    shutil.copy(case.files[0], dead)
    live = case.spool / f".tmp-00000000000000000002-{os.getpid():010}-000002.sgspool"
    shutil.copy(case.files[1], live)
    with open(live, "rb") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        stats, _, own = case.run(emitter, receiver)
        case.expect_delivered(receiver, own, case.legit_keys)
        assert not dead.exists(), "a dead writer's temporary file was kept"
        assert live.exists(), "a live writer's temporary file was taken"
    assert stats["files_set_aside"] == 0 and case.set_aside() == []
    assert case.left() == [live.name]


def test_files_and_directories_are_private_whatever_the_umask(emitter, tmp_path):
    spool = tmp_path / "state" / "spool"
    # Nothing listens on port 1: the batches are spooled.
    status, stats, err, _, _ = run_emitter(
        emitter, "http://127.0.0.1:1", tmp_path, "umask", spool, count=10, umask=0,
        extra=("--export-timeout-ms", "100", "--request-timeout-ms", "100"))
    assert status == 0 and stats["spooled_spans"] == 10, err
    sink = tmp_path / "sink"
    demo = os.environ.get("SPANGUARD_DEMO", str(REPO / "build" / "examples" / "agent_demo"))
    env = dict(os.environ, SPANGUARD_SINK_DIR=str(sink / "spans"), SPANGUARD_SPOOL_DIR=str(sink / "spool"))
    subprocess.run([demo], env=env, check=True, capture_output=True, timeout=60,
                   preexec_fn=lambda: os.umask(0))
    made = [p for root in (spool.parent, sink) for p in [root, *root.rglob("*")]]
    assert any(p.name.endswith(".sgspool") for p in made) and any(p.name.endswith(".jsonl") for p in made)
    wide = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in made
            if stat.S_IMODE(p.stat().st_mode) & 0o077}
    assert wide == {}, f"readable by others: {wide}"


@pytest.mark.skipif(not IS_ROOT, reason="a directory of another user needs root")
def test_the_fallback_state_directory_of_another_user_is_refused(tmp_path):
    """With HOME and XDG_STATE_HOME unset, the state lives in
    $TMPDIR/spanguard-<uid>: another user who made that directory first
    must not receive the spans."""
    theirs = tmp_path / f"spanguard-{os.geteuid()}"
    theirs.mkdir(mode=0o777)
    os.chown(theirs, 65534, 65534)
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "XDG_STATE_HOME") and not k.startswith("SPANGUARD_")}
    env["TMPDIR"] = str(tmp_path)
    demo = os.environ.get("SPANGUARD_DEMO", str(REPO / "build" / "examples" / "agent_demo"))
    run = subprocess.run([demo], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0, run.stdout
    assert "invalid configuration" in run.stderr, run.stderr
    assert list(theirs.rglob("*")) == [], "spans were written into another user's directory"


@pytest.mark.skipif(not IS_ROOT, reason="a link of another user needs root")
def test_another_users_link_in_place_of_the_fallback_state_directory_is_not_followed(tmp_path):
    """Another user who put a symbolic link where $TMPDIR/spanguard-<uid> goes
    (in a shared /tmp, where protected_symlinks may be off) must not lead the
    tracer into a directory of the user's: it would make it 0700 and write
    spans there."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    link = shared / f"spanguard-{os.geteuid()}"
    link.symlink_to(home)
    os.lchown(link, 65534, 65534)
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "XDG_STATE_HOME") and not k.startswith("SPANGUARD_")}
    env["TMPDIR"] = str(shared)
    demo = os.environ.get("SPANGUARD_DEMO", str(REPO / "build" / "examples" / "agent_demo"))
    run = subprocess.run([demo], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0, run.stdout
    assert "invalid configuration" in run.stderr, run.stderr
    assert list(home.rglob("*")) == [], "spans were written where another user's link led"
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o755, "the directory the link led to was changed"


def test_headers_that_miscount_their_spans_change_no_count(emitter, receiver, tmp_path, legit_spool):
    """Spool files whose headers say 0 spans, or 4 billion, over the legit
    spans they hold: a tracer replaying them counted 0, or 4 billion,
    replayed spans. What arrived is what is counted, the tracer's own
    identity (spans ended = exported + spooled + dropped + unsampled) is
    untouched by another process's files, and the miscount is said."""
    case = Case(tmp_path, legit_spool)
    for path, claimed in zip(case.files, [0, 0xFFFFFFFF]):
        data = bytearray(path.read_bytes())
        data[10:14] = struct.pack("<I", claimed)
        path.write_bytes(bytes(data))
    status, stats, err, _, man = run_emitter(emitter, receiver.endpoint, tmp_path, "miscounted", case.spool)
    assert status == 0 and stats["shutdown_result"] == 0, err
    identity = (stats["spans_exported"] + stats["spooled_spans"] + stats["dropped_export_failed"]
                + stats["dropped_rejected"] + stats["spans_unsampled"])
    assert identity == stats["spans_ended"] == len(man["spans"]), stats
    # What the tracer left, `spanguard replay` sends (and counts) the same way.
    replay = subprocess.run([str(CLI), "replay", str(case.spool), "--endpoint", receiver.endpoint],
                            capture_output=True, text=True, timeout=60)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    by_cli = int(re.search(r"replayed \d+ requests? \((\d+) spans?\)", replay.stdout).group(1))
    own = {(s["trace_id"], s["span_id"]) for s in man["spans"]}
    case.expect_delivered(receiver, own, case.legit_keys)
    assert stats["replayed_spans"] + by_cli == len(case.legit_keys), (stats, replay.stdout)
    assert stats["dropped_replay_failed"] == stats["dropped_spool_overflow"] == 0, stats
    told = err + replay.stderr
    assert "miscounted" in told or "spans and holds" in told, told
    assert ("said 0 spans and holds" in told) and ("said 4294967295 spans and holds" in told), told
