"""Monkey-patched processes: gevent's `patch_all()` and eventlet's
`monkey_patch()` (gunicorn -k gevent / -k eventlet, celery -P gevent /
-P eventlet), where `threading` makes greenlets that share one OS thread
and take turns at a hub.

A call that waits in native code (a flush, shutdown or close waiting for
the backend) lets go of the GIL, which frees the other OS threads but not
the other greenlets of its own thread: the hub cannot run until the call
returns, and every request of the worker stood still for as long as the
backend took to answer. Such calls are run here on the green library's own
pool of OS threads while the calling greenlet waits at the hub. The
library is never imported here: a process that has not loaded it is not
patched by it.
"""

from __future__ import annotations

import _thread
import sys


def start_os_thread():
    """The interpreter's own thread start, not a green one: a green thread
    blocked reading a pipe blocks the hub."""
    for module, original in (
            ("gevent.monkey", lambda m: m.get_original("_thread", "start_new_thread")),
            ("eventlet.patcher", lambda m: m.original("_thread").start_new_thread)):
        patcher = sys.modules.get(module)
        if patcher is not None:
            try:
                return original(patcher)
            except Exception:  # noqa: BLE001 - an older patcher: the module's own then
                pass
    return _thread.start_new_thread


def off_the_hub(fn, *args):
    """`fn(*args)`, run on an OS thread of gevent's or eventlet's pool when
    the caller is a greenlet of a hub that other greenlets share, so that
    they run while it waits; called directly otherwise (no green library,
    not patched, an OS thread of its own, the hub itself, a thread of the
    pool). Its result or exception is the caller's."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and gevent_monkey.is_module_patched("threading"):
        pool = _gevent_pool()
        if pool is not None:
            return pool.apply(fn, args)
    eventlet_patcher = sys.modules.get("eventlet.patcher")
    if eventlet_patcher is not None and eventlet_patcher.is_monkey_patched("thread"):
        from eventlet import tpool  # loaded with eventlet; its threads start at first use
        # tpool.execute runs `fn` directly when called from one of its own
        # threads (or under the import lock).
        return tpool.execute(fn, *args)
    return fn(*args)


def _gevent_pool():
    """The thread pool of the hub this greenlet runs under, or None when
    waiting here would block no other greenlet (no hub in this OS thread,
    or this is the hub itself, which must never wait)."""
    import gevent  # loaded: gevent.monkey is
    try:
        from gevent._hub_local import get_hub_if_exists
    except ImportError:  # another gevent's layout: a hub made here is harmless
        get_hub_if_exists = gevent.get_hub
    hub = get_hub_if_exists()
    if hub is None or gevent.getcurrent() is hub:
        return None
    return hub.threadpool


# Between a green begin's tries for a span slot: long enough that a hub
# with nothing else to run does not spin, short beside full_wait_ms.
_TRY_AGAIN_AFTER_S = 0.001


def yield_to_hub():
    """A callable that lets the hub run the other greenlets for a moment,
    when the caller is a greenlet of a hub that others share (as
    `off_the_hub` decides); None otherwise (not patched, an OS thread of
    its own, the hub itself), where a native wait stops no greenlet. A
    begin that finds every span slot taken tries again after each call,
    rather than wait in native code, which stopped the whole worker."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and gevent_monkey.is_module_patched("threading"):
        if _gevent_pool() is not None:
            import gevent
            return lambda: gevent.sleep(_TRY_AGAIN_AFTER_S)
        return None
    eventlet_patcher = sys.modules.get("eventlet.patcher")
    if eventlet_patcher is not None and eventlet_patcher.is_monkey_patched("thread"):
        import eventlet
        from eventlet import hubs
        greenlet = sys.modules.get("greenlet")
        hub = hubs.get_hub()
        if greenlet is None or greenlet.getcurrent() is hub.greenlet:
            return None
        return lambda: eventlet.sleep(_TRY_AGAIN_AFTER_S)
    return None
