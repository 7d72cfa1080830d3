"""spanguard show on a sink file that a tracer keeps writing: show reads the
file as it was when show opened it (the line a writer was in the middle of
then read whole), ends, and leaves the lines written since to tail. It
used to read until it caught up with the writer, which a writer faster
than show kept from ever happening."""

import json
import os
import signal
import subprocess
import threading
import time

T0 = 1796029200_000_000_000
BEFORE = 2000  # lines there when show opens the file, 20 KB each
CAP = 256 << 20  # the most the writer appends, should show never end


def line(name: str, i: int, pad: int = 20_000) -> bytes:
    span = {"traceId": f"{i + 1:032x}", "spanId": f"{i + 1:016x}", "name": name, "kind": 1,
            "startTimeUnixNano": str(T0 + i * 1000), "endTimeUnixNano": str(T0 + i * 1000 + 500),
            "attributes": [{"key": "pad", "value": {"stringValue": "p" * pad}}], "status": {}}
    request = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "grow"}}]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": [span]}]}]}
    return (json.dumps(request, separators=(",", ":")) + "\n").encode()


def wait_until(what, test, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        got = test()
        if got is not None:
            return got
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def open_fd(pid: int, path: str):
    """The descriptor under which process pid has path open, if any."""
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                return fd
    except OSError:
        pass
    return None


def read_offset(pid: int, fd: str) -> int:
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        return int(f.readline().split()[1])  # "pos:\t<offset>"


def test_show_reads_a_growing_sink_file_as_it_was_opened_and_ends(cli, tmp_path):
    path = tmp_path / "grow-1.jsonl"
    straddle = line("straddle", BEFORE)
    half = len(straddle) // 2
    with open(path, "wb") as f:
        for i in range(BEFORE):
            f.write(line(f"before-{i}", i))
        # The writer is in the middle of a line when show opens the file.
        f.write(straddle[:half])
    size = path.stat().st_size
    after = b"".join(line(f"after-{i}", BEFORE + 1 + i, pad=1000) for i in range(1000))

    show = subprocess.Popen([str(cli), "show", "--color", "never", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    writer = None
    try:
        # Stopped once it has opened the file and begun reading it (so it
        # has seen the file's size), before it read all of it.
        fd = wait_until("show never opened the file", lambda: open_fd(show.pid, str(path)))
        wait_until("show never read the file", lambda: read_offset(show.pid, fd) > 0 or None)
        show.send_signal(signal.SIGSTOP)
        assert read_offset(show.pid, fd) < size, "show read it all before the test wrote more"
        with open(path, "ab") as f:
            f.write(straddle[half:])
            f.write(after)
        show.send_signal(signal.SIGCONT)

        def keep_writing():
            written = 0
            with open(path, "ab") as f:
                while show.poll() is None and written < CAP:
                    f.write(after)
                    f.flush()
                    written += len(after)

        writer = threading.Thread(target=keep_writing, daemon=True)
        writer.start()
        out, err = show.communicate(timeout=120)
    finally:
        if show.poll() is None:
            show.send_signal(signal.SIGCONT)
            show.kill()
            show.wait()
        if writer is not None:
            writer.join(timeout=30)
        path.unlink()  # up to CAP: not left for pytest to keep
    out, err = out.decode(), err.decode()
    assert show.returncode == 0, err
    assert "not an OTLP/JSON request" not in err, err  # the straddling line was read whole
    assert "after-" not in out, "show read lines written after it opened the file"
    names = {w for l in out.splitlines() for w in l.split() if w.startswith(("before-", "straddle"))}
    assert names == {f"before-{i}" for i in range(BEFORE)} | {"straddle"}
    assert f"{BEFORE + 1} spans" in out
