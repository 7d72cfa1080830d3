//! The error callback's news (`spanguard_event`), for `logging` (logger
//! "spanguard", as the binding's own warnings are): what the library says
//! on stderr of a backend's warning, a setting ignored, spans lost or
//! spooled, a program that routes its logs elsewhere (or runs where
//! stderr is thrown away) had nowhere.
//!
//! The callback runs on the library's exporter thread and only copies the
//! event into a bounded queue, then wakes the Python side through a pipe;
//! Python code (`spanguard._events`, on a thread of its own and at each
//! flush, shutdown and exit) takes the events and logs them. The exporter
//! never waits for the interpreter's lock: it did, entering Python for
//! every event, and a thread holding that lock while it waited on the
//! exporter hung the process (CI's zero-code agent, 120 s: the callback
//! set holding the lock while the library waited for a call in progress),
//! a logging handler that blocked (a network handler, a full pipe) stopped
//! every export behind it, and a busy Python thread, handing the lock over
//! every 5 ms at best, slowed each batch that had news.
//!
//! The queue is the process's: a forked child (whose exporter is its own)
//! makes a fresh one the first time it is used, whatever lock the fork
//! caught its parent's in; the parent's news stays the parent's.

use std::collections::VecDeque;
use std::ffi::{c_char, c_void};
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use pyo3::prelude::*;
use spanguard::ffi::types::spanguard_event;

/// `logging`'s levels.
const ERROR: u32 = 40;
const WARNING: u32 = 30;
const INFO: u32 = 20;

/// Events waiting for Python at most: past that (a handler slower than
/// the news, for long) new ones are counted and dropped, not kept without
/// bound. The library says each on stderr as well.
pub const QUEUE_CAPACITY: usize = 1024;

/// An event's name (as in the header, without `SPANGUARD_EVENT_`) and the
/// level it is logged at: spans lost at ERROR, as the library's stderr says
/// them; a spooled batch delivered and spans recovered from a dead process
/// at INFO (good news); the rest, and an event of a newer library than
/// this table, at WARNING.
pub fn name_and_level(event: u32) -> (&'static str, u32) {
    match event {
        1 => ("BATCH_FAILED", ERROR),
        2 => ("BATCH_SPOOLED", WARNING),
        3 => ("SPOOL_OVERFLOW", ERROR),
        4 => ("BATCH_REPLAYED", INFO),
        5 => ("SPANS_REJECTED", ERROR),
        6 => ("EXPORTER_PANICKED", ERROR),
        7 => ("FILE_SET_ASIDE", WARNING),
        8 => ("BACKEND_WARNING", WARNING),
        9 => ("SETTING_IGNORED", WARNING),
        10 => ("BUFFER_FULL", WARNING),
        11 => ("VALUES_CUT", WARNING),
        12 => ("VALUES_WAITED", WARNING),
        13 => ("FILE_MISCOUNTED", WARNING),
        14 => ("SPANS_RECOVERED", INFO),
        _ => ("UNKNOWN", WARNING),
    }
}

/// This process's events on their way to Python, and the pipe that says
/// some are there.
struct EventQueue {
    /// The process it belongs to.
    pid: u32,
    /// Locked only to push or pop: never while Python code runs, never
    /// while waiting for anything.
    events: Mutex<VecDeque<(u32, String)>>,
    /// Events dropped because the queue was full, not yet said.
    dropped: AtomicU64,
    /// Read by Python (`_events_fd`, blocking); one byte written when the
    /// queue goes from empty to not, non-blocking (a full pipe has bytes
    /// enough).
    wake_read: i32,
    wake_write: i32,
}

/// The queue, made at first use in each process (see the module's doc).
static QUEUE: AtomicPtr<EventQueue> = AtomicPtr::new(std::ptr::null_mut());

/// This process's queue; None only when no pipe could be made.
fn queue() -> Option<&'static EventQueue> {
    let pid = std::process::id();
    let seen = QUEUE.load(Ordering::Acquire);
    // SAFETY: a published queue is never freed in the process that made
    // it (one another process made is closed, not freed, below).
    if let Some(q) = unsafe { seen.as_ref() }
        && q.pid == pid
    {
        return Some(q);
    }
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    // The exporter's end never blocks; Python's reader blocks on its end.
    // SAFETY: fcntl on the descriptor just made.
    unsafe { libc::fcntl(fds[1], libc::F_SETFL, libc::O_NONBLOCK) };
    let fresh = Box::into_raw(Box::new(EventQueue {
        pid,
        events: Mutex::new(VecDeque::new()),
        dropped: AtomicU64::new(0),
        wake_read: fds[0],
        wake_write: fds[1],
    }));
    // AcqRel pairs with the Acquire load above: whoever sees the pointer
    // sees the queue it points to.
    match QUEUE.compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            // SAFETY: the parent's queue, copied by the fork: no thread of
            // this process uses it (its exporter and Python reader stayed
            // in the parent) and nothing frees it; its pipe is closed so
            // that forks do not pile descriptors up. Leaked, not freed: its
            // lock may be held by a thread the child does not have.
            if let Some(old) = unsafe { seen.as_ref() } {
                // SAFETY: descriptors of the parent's pipe, unused here.
                unsafe {
                    libc::close(old.wake_read);
                    libc::close(old.wake_write);
                }
            }
            // SAFETY: just published, never freed (see above).
            Some(unsafe { &*fresh })
        }
        Err(_) => {
            // Another thread of this process made one first: ours goes.
            // SAFETY: `fresh` was never published; its descriptors are ours.
            unsafe {
                let fresh = Box::from_raw(fresh);
                libc::close(fresh.wake_read);
                libc::close(fresh.wake_write);
            }
            queue()
        }
    }
}

/// Queues `message` as event number `event` for Python, and wakes its
/// reader when the queue was empty. Takes no interpreter lock and waits
/// for nothing but the queue's own lock (held for a push or a pop).
pub fn queue_event(event: u32, message: &str) {
    let Some(q) = queue() else {
        return;
    };
    let was_empty = {
        let mut events = q.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.len() >= QUEUE_CAPACITY {
            q.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        events.push_back((event, message.to_string()));
        events.len() == 1
    };
    if was_empty {
        let byte = 1u8;
        // SAFETY: one byte from a live local to our own non-blocking pipe;
        // EAGAIN (full: the reader has bytes enough) is fine.
        let _ = unsafe { libc::write(q.wake_write, (&byte as *const u8).cast(), 1) };
    }
}

/// The error callback every tracer of this module is given.
///
/// # Safety
/// The library's: `message` holds `len` bytes, valid for the call.
pub unsafe extern "C" fn log_event(
    event: spanguard_event,
    message: *const c_char,
    len: usize,
    _user_data: *mut c_void,
) {
    // SAFETY: the library passes `len` bytes at `message`, live for the call.
    let bytes = unsafe { std::slice::from_raw_parts(message.cast::<u8>(), len) };
    queue_event(event as u32, &String::from_utf8_lossy(bytes));
}

/// An event as Python logs it: number, name, level, message.
type EventForLogging = (u32, &'static str, u32, String);

/// Up to `most` queued events, oldest first, and how many were dropped
/// (queue full) since the last call: what `spanguard._events` logs.
#[pyfunction]
pub fn _take_events(most: usize) -> (Vec<EventForLogging>, u64) {
    let Some(q) = queue() else {
        return (Vec::new(), 0);
    };
    let taken: Vec<(u32, String)> = {
        let mut events = q.events.lock().unwrap_or_else(|p| p.into_inner());
        let n = most.min(events.len());
        events.drain(..n).collect()
    };
    let dropped = q.dropped.swap(0, Ordering::Relaxed);
    let taken = taken
        .into_iter()
        .map(|(event, message)| {
            let (name, level) = name_and_level(event);
            (event, name, level, message)
        })
        .collect();
    (taken, dropped)
}

/// The descriptor Python's reader waits on (a byte: events are queued);
/// -1 when no pipe could be made.
#[pyfunction]
pub fn _events_fd() -> i32 {
    queue().map_or(-1, |q| q.wake_read)
}

/// Starts Python's reader of the queue: `start(function, args)` (the
/// interpreter's `_thread.start_new_thread`) with every asynchronous
/// signal blocked here, which the thread inherits, as the library's own
/// threads are started (`watchdog::shield`). Taking them, it was where the
/// kernel sent a SIGTERM the main thread sleeping in `time.sleep` was to
/// act on: CPython acts on a signal promptly only on the main thread, and
/// the signal watchdog hands the host's handler to the thread the signal
/// came to; the main thread slept on.
#[pyfunction]
pub fn _start_events_reader(
    start: &Bound<'_, PyAny>,
    function: &Bound<'_, PyAny>,
    args: &Bound<'_, PyAny>,
) -> PyResult<()> {
    spanguard::watchdog::shield::with_async_signals_blocked(|| {
        start.call1((function, args)).map(drop)
    })
}

/// Names the calling thread (Python's reader of the queue) as one of
/// spanguard's ("spanguard-log", its `comm`): a process whose own threads
/// have all ended exits (`export::last_thread`) with it still waiting on
/// the pipe. Unnamed, it was the process's thread: a child forked from a
/// thread that then ended stayed alive for good, its parent waiting.
#[pyfunction]
pub fn _name_events_reader() {
    // SAFETY: names this thread; the name is NUL-terminated and within
    // the kernel's 16 bytes.
    unsafe { libc::pthread_setname_np(libc::pthread_self(), c"spanguard-log".as_ptr()) };
}

/// Queues an event as the callback does, then logs what is queued
/// (`spanguard._events.deliver`): a test's way to hand the logger an
/// event number no library has yet (one of a newer library than this
/// binding), or many at once.
#[pyfunction]
pub fn _log_event_for_test(py: Python<'_>, event: u32, message: &str) -> PyResult<()> {
    queue_event(event, message);
    py.import("spanguard._events")?
        .call_method0("deliver")
        .map(drop)
}

/// Queues an event as the callback does, and nothing more.
#[pyfunction]
pub fn _queue_event_for_test(event: u32, message: &str) {
    queue_event(event, message);
}
