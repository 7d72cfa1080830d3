"""The library's news (its error callback's events), logged through
`logging`, logger "spanguard", in the order the library gave them.

The callback, on the library's exporter thread, only queues an event
(`_native`, events.rs: at most `_native._EVENTS_QUEUE_CAPACITY`, the rest
counted and said once) and wakes a pipe; the logging happens here, in
Python: on a reader thread of this process's own, and on the thread of a
flush, shutdown or close (what the library told before those returned is
logged before they return) and of the exit hook (what is queued at exit is
logged before the interpreter finalizes). The exporter never waits for the
interpreter's lock: a thread holding it while it waited on the exporter
hung the process, a logging handler that blocked stopped every export
behind it, and a busy thread slowed each batch with news.

The reader is an OS thread started with the interpreter's own
`_thread.start_new_thread` (gevent's or eventlet's original when they
patched it: a green thread blocked on the pipe would block the hub), and
reads with `posix.read` (never patched). It waits in the interpreter's C
code, so a daemon-like end at finalization ends only CPython frames, and
its OS name is spanguard's, so that it keeps no process alive; it takes
no asynchronous signal (SIGTERM, SIGINT: the main thread's to act on).
Logged only once the program has configured logging (a handler on the
logger or above it): unconfigured, logging's last resort would print to
stderr beside the library's own line.
"""

from __future__ import annotations

import logging
import os
import posix
import sys
import threading
import traceback

from . import _green, _native

_LOGGER = logging.getLogger("spanguard")

# Held while events are taken from the queue and logged, so that two
# threads (the reader, a flush) log them in the library's order.
_delivering = threading.Lock()
_reader_pid = 0
_said_dropped = False

# How long a flush, shutdown or exit waits for another thread logging
# events (a handler that blocks): they return late by this much at most.
WAIT_AT_FLUSH_S = 1.0

_TAKE_AT_ONCE = 64

# The reader's name, in `threading` as for the OS (`_name_events_reader`).
READER_NAME = "spanguard-log"


def deliver(wait_s: float | None = None) -> bool:
    """Logs every queued event, oldest first. Waits for a thread logging
    events already up to `wait_s` (None: as long as it takes); False
    when it gave up."""
    if not _delivering.acquire(timeout=-1 if wait_s is None else max(wait_s, 0.0)):
        return False
    try:
        while True:
            events, dropped = _native._take_events(_TAKE_AT_ONCE)
            if dropped:
                _say_dropped(dropped)
            if not events:
                return True
            for event, name, level, message in events:
                _log(event, name, level, message)
    finally:
        _delivering.release()


def _log(event: int, name: str, level: int, message: str) -> None:
    try:
        if not _LOGGER.hasHandlers():
            return
        # The message alone: the record's logger name ("spanguard") and
        # levelname say who and how bad, and `basicConfig()` printed
        # "WARNING:spanguard:spanguard: ..." with a prefix of its own.
        _LOGGER.log(level, "%s", message,
                    extra={"spanguard_event": event, "spanguard_event_name": name})
    except Exception:  # noqa: BLE001 - a handler's own errors go through handleError; this is the rest
        traceback.print_exc(file=sys.stderr)


def _say_dropped(n: int) -> None:
    """Once per process: events dropped for a full queue (the library
    said each on stderr too)."""
    global _said_dropped
    if _said_dropped:
        return
    _said_dropped = True
    try:
        if _LOGGER.hasHandlers():
            _LOGGER.warning(
                "%d events were not logged: %d were waiting for logging already "
                "(a handler slower than the news); the library's stderr has each", n,
                _native._EVENTS_QUEUE_CAPACITY)
    except Exception:  # noqa: BLE001 - as in _log
        traceback.print_exc(file=sys.stderr)


def start_reader() -> None:
    """Starts this process's reader thread, once per process (a forked
    child has none of its parent's threads)."""
    global _reader_pid
    pid = os.getpid()
    if _reader_pid == pid:
        return
    fd = _native._events_fd()
    if fd < 0:
        return  # no pipe: flushes, shutdowns and the exit still log
    _reader_pid = pid
    # Started with the asynchronous signals blocked (it inherits them), as
    # the library's threads are: the application's threads take them.
    _native._start_events_reader(_green.start_os_thread(), _read, (fd,))


def _read(fd: int) -> None:
    # Named as spanguard's thread: a process whose own threads have all
    # ended exits around it (a child forked from a thread that then ends).
    _native._name_events_reader()
    # The same name in `threading`: the threadName of the records it logs,
    # and what threading.enumerate() lists (a daemon), not "Dummy-1", an
    # unexplained thread that a monkey-patched server's dumps show too.
    threading.current_thread().name = READER_NAME
    while True:
        try:
            posix.read(fd, 512)
        except OSError:
            return  # closed: a forked child's copy of its parent's pipe
        deliver()


def after_fork_in_child() -> None:
    """A lock of the child's own: a thread of the parent logging at the
    fork is not in the child, where the lock stayed taken for good."""
    global _delivering
    _delivering = threading.Lock()
