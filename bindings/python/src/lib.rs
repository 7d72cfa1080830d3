//! `spanguard._native`: the Python extension module. A thin skin over the C
//! ABI of the spanguard crate (the same `spanguard_*` calls every binding
//! makes, linked in statically): it converts Python values, keeps the
//! current span in a `contextvars.ContextVar`, and turns results into what
//! Python code expects. Recording calls never raise; see `report`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyList;

// The `spanguard` command (show, tail, spool, replay), compiled in from
// the binary's own sources rather than shipped as a second binary: the
// wheel then carries one copy of the library and of OpenSSL, and `pip
// install` users get the command the README describes. Mounted by path,
// its modules stay the binary's (src/bin/spanguard), where the library's
// core modules cannot reach them.
mod bridge;
#[path = "../../../src/bin/spanguard/cli.rs"]
mod cli;
mod events;
mod green;
mod kinds;
mod report;
mod span;
mod text;
mod tracer;
mod values;

use spanguard::ffi::types::*;

unsafe extern "C" {
    /// CPython's since 3.4, outside the limited API's list (pyo3's abi3
    /// declarations leave it out), in every CPython this wheel loads in.
    fn PyGILState_Check() -> std::ffi::c_int;
}

/// The library's wait hooks (`spanguard::tracer::WaitHooks`): a begin that
/// waits for a free slot, or a value that waits for payload chunks
/// (`SPANGUARD_FULL_POLICY=wait`, up to `full_wait_ms`), lets go of the
/// GIL while it sleeps. Held, every other Python thread stopped for the
/// wait: the asyncio loop, a watchdog, the handler Python runs for a
/// signal, and the very thread whose span's end would give the chunks
/// back. Run only on a call that waits, never on the common path; the
/// library calls `after` once the call holds no span, so a thread that
/// takes the GIL meanwhile and waits on the same span (setting or ending
/// it) lets the waiter finish before it needs the GIL back.
///
/// What the call reads stays valid without the GIL: its keys and values
/// point into `str` and `bytes` objects (immutable, referenced by the
/// caller's frame) or into copies (`bytearray`, arrays). Every call this
/// module makes holds the GIL but those in `py.detach` (flush, shutdown,
/// close, the command), none of which waits; the check keeps any other
/// thread's wait out of it.
fn gil_let_go_for_wait() -> usize {
    // A wait is where a kept answer to "is a green library loaded?" that
    // is wrong would stop a hub: the next setter looks again.
    green::look_again();
    // SAFETY: PyGILState_Check may be called from any thread at any time;
    // PyEval_SaveThread only with the GIL held, which it said.
    unsafe {
        if PyGILState_Check() == 0 {
            return 0;
        }
        pyo3::ffi::PyEval_SaveThread() as usize
    }
}

fn gil_taken_back_after_wait(token: usize) {
    // SAFETY: the thread state `gil_let_go_for_wait` saved (never 0: the
    // library calls this only for another token), on the same thread
    // (the library's promise), taken back once.
    unsafe { pyo3::ffi::PyEval_RestoreThread(token as *mut pyo3::ffi::PyThreadState) };
}

/// The module: classes, constants and the context variable.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<tracer::Tracer>()?;
    m.add_class::<span::Span>()?;
    m.add_class::<bridge::SdkSpanHooks>()?;
    m.add("SpanguardError", py.get_type::<report::SpanguardError>())?;
    m.add("CURRENT_SPAN", span::current_span_var(py)?)?;
    for (name, value) in [
        ("KIND_UNSPECIFIED", SPANGUARD_KIND_UNSPECIFIED),
        ("KIND_INTERNAL", SPANGUARD_KIND_INTERNAL),
        ("KIND_SERVER", SPANGUARD_KIND_SERVER),
        ("KIND_CLIENT", SPANGUARD_KIND_CLIENT),
        ("KIND_PRODUCER", SPANGUARD_KIND_PRODUCER),
        ("KIND_CONSUMER", SPANGUARD_KIND_CONSUMER),
        ("STATUS_UNSET", SPANGUARD_STATUS_UNSET),
        ("STATUS_OK", SPANGUARD_STATUS_OK),
        ("STATUS_ERROR", SPANGUARD_STATUS_ERROR),
    ] {
        m.add(name, value)?;
    }
    m.add("LIBRARY_VERSION", library_version())?;
    // The library's one table of opentelemetry-distro's defaults and the
    // name of the marker it reads: the package writes the marker for its
    // children from these, so that what it writes is what every binding's
    // library reads (a copy of its own kept in step by a comment drifted
    // nowhere yet, but nothing would have said so).
    let defaults = pyo3::types::PyDict::new(py);
    for (name, value) in spanguard::config::DISTRO_DEFAULTS {
        defaults.set_item(*name, *value)?;
    }
    m.add("DISTRO_DEFAULTS", defaults)?;
    m.add(
        "DISTRO_SET_VARIABLE",
        spanguard::config::DISTRO_SET_VARIABLE,
    )?;
    m.add_function(wrap_pyfunction!(strerror, m)?)?;
    m.add_function(wrap_pyfunction!(span_kind, m)?)?;
    m.add_function(wrap_pyfunction!(events::_log_event_for_test, m)?)?;
    m.add_function(wrap_pyfunction!(events::_queue_event_for_test, m)?)?;
    m.add_function(wrap_pyfunction!(events::_take_events, m)?)?;
    m.add_function(wrap_pyfunction!(green::_green_looks, m)?)?;
    m.add_function(wrap_pyfunction!(events::_events_fd, m)?)?;
    m.add_function(wrap_pyfunction!(events::_name_events_reader, m)?)?;
    m.add_function(wrap_pyfunction!(events::_start_events_reader, m)?)?;
    m.add("_EVENTS_QUEUE_CAPACITY", events::QUEUE_CAPACITY)?;
    m.add_function(wrap_pyfunction!(run_command, m)?)?;
    m.add_function(wrap_pyfunction!(set_before_signal_flush, m)?)?;
    before_signal_flush_slot(py)?;
    m.add_function(wrap_pyfunction!(reclaim_signal_from_default, m)?)?;
    m.add_function(wrap_pyfunction!(settle_signals_at_exit, m)?)?;
    // Set once: a second import (a subinterpreter's) finds them set.
    let _ = spanguard::tracer::set_wait_hooks(spanguard::tracer::WaitHooks {
        before: gil_let_go_for_wait,
        after: gil_taken_back_after_wait,
    });
    Ok(())
}

/// Puts the signal watchdog's handler back over `signum`'s default
/// disposition, which Python code just set over it (`signal.signal(signum,
/// SIG_DFL)`: Python reports SIG_DFL where the watchdog is, and a server
/// restoring "what was there" took it away). Whether it did; nothing for
/// a signal the watchdog does not handle or a process without it.
#[pyfunction]
fn reclaim_signal_from_default(signum: i32) -> bool {
    spanguard::watchdog::signals::reclaim_from_default(signum)
}

/// The Python callable the signal watchdog runs before its flush (see
/// `set_before_signal_flush`), as the one item of a Python list (None: no
/// hook), read and written only under the interpreter's lock; whether one
/// is set, for the watchdog's wait outside it. No lock of ours: it was a
/// `Mutex`, which the watchdog's thread took as it waited for the hook to
/// be taken away and a setter as it dropped the hook it replaced (which
/// may run Python code, and let another thread in), and a fork by another
/// thread at such a moment (a pre-fork server starting a worker,
/// multiprocessing) gave the child the mutex taken by a thread it does not
/// have: its first `set_before_signal_flush` (the binding arming the flush
/// for the worker's exporter, or taking it away at its shutdown) waited
/// for good.
static BEFORE_SIGNAL_FLUSH: PyOnceLock<Py<PyList>> = PyOnceLock::new();
static BEFORE_SIGNAL_FLUSH_SET: AtomicBool = AtomicBool::new(false);

/// The list holding the hook (made at the module's import, before any fork).
fn before_signal_flush_slot(py: Python<'_>) -> PyResult<&Bound<'_, PyList>> {
    BEFORE_SIGNAL_FLUSH
        .get_or_try_init(py, || PyList::new(py, [py.None()]).map(Bound::unbind))
        .map(|list| list.bind(py))
}

/// Sets `hook`, a callable taking the flush deadline in seconds, for the
/// library's signal watchdog to call when a termination signal arrives,
/// before it flushes and freezes the tracers (None takes it away):
/// `spanguard.otel` flushes the OpenTelemetry SDK there, so that the spans
/// its BatchSpanProcessor holds for spanguard's exporter reach spanguard
/// first, and sets it while an exporter is live. The watchdog waits for it
/// up to the deadline (the interpreter's lock may not come: a thread stuck
/// in native code holding it). A hook that answers true is waited for
/// until it is taken away (no exporter is live), within the deadline: an
/// SDK shutting down on another thread hands its queue over later.
#[pyfunction]
#[pyo3(signature = (hook))]
fn set_before_signal_flush(py: Python<'_>, hook: Option<Py<PyAny>>) -> PyResult<()> {
    let set = hook.is_some();
    let slot = before_signal_flush_slot(py)?;
    // Held until the end: the hook replaced is let go of (and whatever its
    // finalizer runs) once the new one is set and said to be.
    let _replaced = slot.get_item(0)?;
    slot.set_item(0, hook)?;
    BEFORE_SIGNAL_FLUSH_SET.store(set, Ordering::Release);
    spanguard::watchdog::signals::set_before_signal_flush(set.then_some(run_before_signal_flush));
    Ok(())
}

/// The watchdog's side (on a thread of its own): the Python hook, under
/// the interpreter's lock. Not at all once the interpreter is shutting
/// down (it cannot be entered then; the SDK's own atexit shutdown ran).
/// When the hook answers true, waits, out of the interpreter, until it is
/// taken away or the deadline: waiting inside it (a Python condition), the
/// thread was woken as the main thread went on to finalize the
/// interpreter, and taking the interpreter's lock back then ended it
/// (`PyThread_exit_thread` on a thread Python did not start): the process
/// aborted instead of dying of its signal.
fn run_before_signal_flush(deadline: std::time::Duration) {
    let started = std::time::Instant::now();
    if !enter_python(deadline) {
        return;
    }
    // Counted out once out of the interpreter, a panic (caught by the
    // watchdog's thread) as well.
    struct LeftPython;
    impl Drop for LeftPython {
        fn drop(&mut self) {
            left_python();
        }
    }
    let in_python = LeftPython;
    let wait = Python::try_attach(|py| {
        let Ok(hook) = before_signal_flush_slot(py).and_then(|slot| slot.get_item(0)) else {
            return false;
        };
        if hook.is_none() {
            return false;
        }
        // The hook logs its own failures; one that raises anyway is
        // said on stderr, as Python says an exception no caller gets.
        match hook.call1((deadline.as_secs_f64(),)) {
            Ok(answer) => answer.is_truthy().unwrap_or(false),
            Err(err) => {
                err.write_unraisable(py, None);
                false
            }
        }
    })
    .unwrap_or(false);
    drop(in_python);
    if !wait {
        return;
    }
    // Polled: a lock and condition variable here were what a fork could
    // leave taken (`BEFORE_SIGNAL_FLUSH`).
    while BEFORE_SIGNAL_FLUSH_SET.load(Ordering::Acquire) {
        let left = deadline.saturating_sub(started.elapsed());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(std::time::Duration::from_millis(1)));
    }
}

/// The process whose exit closed the way into Python to the watchdog's
/// hook (`settle_signals_at_exit`): a process id, as a forked child's is
/// open again (0: none).
static HOOKS_SHUT_OUT_IN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The longest deadline a hook was given, in milliseconds: how long the
/// exit waits for one (`settle_signals_at_exit`).
static HOOK_DEADLINE_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The watchdog's hooks inside Python or on their way in: the process id
/// in the high half (a forked child has none of its parent's threads),
/// their number in the low. Atomics, not a lock a fork could leave taken.
static HOOKS_IN_PYTHON: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts the hook in, unless this process's exit shut it out: then it
/// must not enter Python, whose finalization may have begun (a thread
/// Python did not start, entering or caught inside then, is ended taking
/// the interpreter's lock and the process aborts). Counted first, then
/// checked, as the exit shuts out first, then counts (both sequentially
/// consistent): either the hook sees the exit, or the exit sees it. (The
/// error callback never enters Python: `events` queues its news.)
pub(crate) fn enter_python(deadline: std::time::Duration) -> bool {
    use std::sync::atomic::Ordering::SeqCst;
    let pid = std::process::id();
    HOOK_DEADLINE_MS.fetch_max(
        u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
        SeqCst,
    );
    let _ = HOOKS_IN_PYTHON.fetch_update(SeqCst, SeqCst, |v| {
        Some(if (v >> 32) as u32 == pid {
            v + 1
        } else {
            (u64::from(pid) << 32) | 1
        })
    });
    if HOOKS_SHUT_OUT_IN.load(SeqCst) == pid {
        left_python();
        return false;
    }
    true
}

/// Counts the hook out, once it has let go of the interpreter.
pub(crate) fn left_python() {
    use std::sync::atomic::Ordering::SeqCst;
    let pid = std::process::id();
    let _ = HOOKS_IN_PYTHON.fetch_update(SeqCst, SeqCst, |v| {
        ((v >> 32) as u32 == pid && v as u32 > 0).then(|| v - 1)
    });
}

/// How many hooks of this process are inside Python or on their way in.
fn hooks_in_python() -> u32 {
    let v = HOOKS_IN_PYTHON.load(std::sync::atomic::Ordering::SeqCst);
    if (v >> 32) as u32 == std::process::id() {
        v as u32
    } else {
        0
    }
}

/// The end of `spanguard._shutdown_all` (at exit: atexit, a worker's
/// finalizer): shuts the watchdog's hook out of Python from now on, then
/// waits, without the interpreter's lock, for a hook inside Python (or on
/// its way in) to let go of it, within twice the hook's deadline (the
/// watchdog's whole flush deadline: by then it has acted on the signal,
/// and a signal's default action ends the process during this wait). The
/// interpreter's finalization comes after the atexit callbacks: begun
/// while the hook's thread, one the library started, was inside Python,
/// it ended that thread as it took the interpreter's lock back, and the
/// process aborted (SIGABRT: a crash, for a supervisor) instead of dying
/// of its SIGTERM. A signal after this reaches the tracers (shut down)
/// without the hook; `_shutdown_all` flushed the SDK. Whether no hook was
/// left inside Python.
#[pyfunction]
fn settle_signals_at_exit(py: Python<'_>) -> bool {
    use std::sync::atomic::Ordering::SeqCst;
    HOOKS_SHUT_OUT_IN.store(std::process::id(), SeqCst);
    if hooks_in_python() == 0 {
        return true;
    }
    let within = std::time::Duration::from_millis(HOOK_DEADLINE_MS.load(SeqCst).saturating_mul(2));
    let until = std::time::Instant::now() + within;
    py.detach(|| {
        loop {
            if hooks_in_python() == 0 {
                return true;
            }
            if std::time::Instant::now() >= until {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    })
}

/// The version of the spanguard library inside this module.
fn library_version() -> String {
    let ptr = spanguard::ffi::tracer::spanguard_version();
    // SAFETY: spanguard_version returns a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// The library's description of a `spanguard_result` code.
#[pyfunction]
fn strerror(code: u32) -> String {
    report::describe(code)
}

/// The OTLP kind a `kind` argument names (`kinds::kind_of`): what
/// `@tracer.traced(kind=...)` checks once, where it is written, rather
/// than at every call of the function it wraps.
#[pyfunction]
#[pyo3(signature = (kind=None))]
fn span_kind(kind: Option<&Bound<'_, PyAny>>) -> PyResult<u32> {
    kinds::kind_of(kind)
}

/// Runs the `spanguard` command line `args` (without the program name) and
/// returns its exit status: `python -m spanguard` and the console script.
/// The process is the command from then on: it takes SIGPIPE back to its
/// default, and `tail` takes SIGINT and SIGTERM.
///
/// `args` are the arguments' bytes (`os.fsencode`): one that is not UTF-8
/// is said as the binary says it (`cli::not_utf8`), exit status 2.
#[pyfunction]
fn run_command(py: Python<'_>, args: Vec<Vec<u8>>) -> u8 {
    let mut text = Vec::with_capacity(args.len());
    for (i, arg) in args.into_iter().enumerate() {
        match String::from_utf8(arg) {
            Ok(a) => text.push(a),
            Err(e) => {
                eprintln!(
                    "{}",
                    cli::not_utf8(i + 1, &String::from_utf8_lossy(e.as_bytes()))
                );
                return 2;
            }
        }
    }
    let args = text;
    let version = library_version();
    // Without the GIL: `tail` runs until Ctrl-C.
    let code = py.detach(|| cli::run(&args, &version));
    // Rust's stdout keeps an unfinished line until the process's Rust
    // runtime exits, which in an extension module it never does.
    let _ = std::io::stdout().flush();
    exit_status(code)
}

/// The number an `ExitCode` holds. The standard library keeps it private
/// (its getter is unstable), but every status the command returns is
/// `ExitCode::from(n)` or SUCCESS (0) or FAILURE (1), which compare equal
/// to the one made from the same number.
fn exit_status(code: std::process::ExitCode) -> u8 {
    (0..=u8::MAX)
        .find(|&n| std::process::ExitCode::from(n) == code)
        .unwrap_or(1)
}
