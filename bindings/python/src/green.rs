//! Setters under gevent or eventlet: a value that finds the payload pool
//! used up waits in native code for chunks (up to `full_wait_ms`) with the
//! GIL let go of, which frees the other OS threads but not the other
//! greenlets of the caller's: the hub stood still meanwhile, every request
//! of the worker with it. A setter whose values may take chunks runs on the
//! green library's pool of OS threads (`spanguard._green.off_the_hub`)
//! while its greenlet waits at the hub. A short one runs in place when the
//! span has the room for it without waiting, as nearly every one has
//! (`spanguard_span_try_make_room`: no system call or allocation), and on
//! the pool too where it would wait (its span's slot full and the pool
//! used up, or another caller holding the span): there, a short value
//! stopped the hub as a long one did.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyCFunction, PyDict, PyString, PyTuple};
use spanguard::ffi::result::spanguard_result;
use spanguard::ffi::span::spanguard_span_try_make_room;
use spanguard::ffi::types::spanguard_span;

/// Bytes a call stores (`Attributes::stored_bytes`) from which it runs on
/// the pool whatever the room: a span's own arena holds 2 KiB
/// (`span::limits::ARENA_BYTES`), and a value of a third of the room left
/// or less goes there. Shorter ones take a chunk only once earlier values
/// filled the arena, and `spanguard_span_try_make_room` takes it for them
/// then, where the pool has one (the room it makes is a bound six times
/// the bytes: no more for a long value).
pub const MAY_TAKE_CHUNKS: usize = 512;

/// `sys.modules`, and the names of the modules whose presence says a
/// green library patches threads, made once: the names interned, each
/// hashed once, so that a lookup is a probe of the dict. Made at every
/// call, each name was a new string to allocate, hash and free, twice for
/// each short setter of every program, green or not.
static GREEN_MODULES: PyOnceLock<(Py<PyDict>, [Py<PyString>; 2])> = PyOnceLock::new();

/// What `loaded` last found: the length `sys.modules` had then, plus one,
/// shifted left a bit, the answer in that bit (1: loaded); 0 before the
/// first look, or once a call waited (`look_again`). Every setter of
/// every program asks, and the two probes of `sys.modules` were most of
/// what a short setter cost beyond its call into the library (a program
/// without gevent or eventlet paid them for nothing).
static LAST_LOOK: AtomicUsize = AtomicUsize::new(0);

/// How many times `loaded` looked in `sys.modules` (`_green_looks`).
static LOOKS: AtomicU64 = AtomicU64::new(0);

/// Whether a green library that patches threads is loaded. Looked up in
/// `sys.modules` again whenever its length changed since the last look
/// (a program may import gevent after spanguard: the import adds
/// gevent.monkey, and with it gevent's other modules), else the answer
/// of that look: one call to read a length, a program that imported
/// nothing since paying nothing more. A program that removes as many
/// modules as an import of gevent.monkey adds, between two calls, would
/// keep the old answer: only until a call waits (`look_again`).
pub fn loaded(py: Python<'_>) -> bool {
    let looked_up = GREEN_MODULES.get_or_try_init(py, || -> PyResult<_> {
        let modules = py
            .import("sys")?
            .getattr("modules")?
            .cast_into::<PyDict>()?
            .unbind();
        let names = ["gevent.monkey", "eventlet.patcher"].map(|m| PyString::intern(py, m).unbind());
        Ok((modules, names))
    });
    let Ok((modules, names)) = looked_up else {
        return false;
    };
    let modules = modules.bind(py);
    let seen = modules.len().wrapping_add(1) << 1;
    // Relaxed: read and written with the GIL held; one word, so a look
    // never pairs one length with another look's answer.
    let last = LAST_LOOK.load(Ordering::Relaxed);
    if last & !1 == seen {
        return last & 1 == 1;
    }
    LOOKS.fetch_add(1, Ordering::Relaxed);
    let found = names
        .iter()
        .any(|m| modules.contains(m.bind(py)).unwrap_or(false));
    LAST_LOOK.store(seen | usize::from(found), Ordering::Relaxed);
    found
}

/// How many times this process looked in `sys.modules` for a green
/// library: a test's way to see that setters do not look each time.
#[pyfunction]
pub fn _green_looks() -> u64 {
    // Relaxed: a count, read with no ordering to keep.
    LOOKS.load(Ordering::Relaxed)
}

/// Has the next `loaded` look in `sys.modules` again: called as a call
/// of the library is about to wait (its wait hook), where a kept answer
/// that missed a green library would have the wait stop the hub; the
/// next call then finds it. Any thread, GIL or not.
pub fn look_again() {
    LAST_LOOK.store(0, Ordering::Relaxed);
}

/// Whether a call on the span `span` that stores at most `bytes()` bytes
/// (counted only where a green library is loaded) in `count` attributes,
/// events or links (its text, keys and names) runs here: no green library
/// loaded, or the call is short and the span has the room for it without
/// waiting (taken now where the pool has it).
/// Otherwise it may wait for payload chunks, or for another caller
/// holding the span, and runs `elsewhere`. The room is kept: no other
/// Python thread calls into the span before the caller's call, which
/// holds the GIL from here.
pub fn runs_here(
    py: Python<'_>,
    span: spanguard_span,
    bytes: impl FnOnce() -> usize,
    count: usize,
) -> bool {
    if !loaded(py) {
        return true;
    }
    let bytes = bytes();
    bytes < MAY_TAKE_CHUNKS
        && spanguard_span_try_make_room(span, bytes, count) != spanguard_result::WouldWait
}

/// `call`, where a wait in it stops no other greenlet: on the green
/// library's pool when the caller is a greenlet of a shared hub (as
/// `off_the_hub` decides), here otherwise. Its result or exception is the
/// caller's. `call` holds what it needs (a span handle, owned Python
/// objects): it may run on another OS thread.
pub fn elsewhere<F>(py: Python<'_>, call: F) -> PyResult<Option<bool>>
where
    F: Fn(Python<'_>) -> PyResult<Option<bool>> + Send + Sync + 'static,
{
    let run = PyCFunction::new_closure(
        py,
        None,
        None,
        move |args: &Bound<'_, PyTuple>, _: Option<&Bound<'_, PyDict>>| call(args.py()),
    )?;
    off_the_hub(run)?.extract()
}

/// `call` (a call on a span that waits for another caller holding it,
/// such as an end after its `try_` form answered WOULD_WAIT), where the
/// wait stops no other greenlet: on the green library's pool when the
/// caller is a greenlet of a shared hub, here otherwise (no green library
/// loaded, an OS thread of its own). The other holder may hold the span up
/// to `full_wait_ms` (a setter waiting for payload chunks on the pool):
/// on the hub's own thread that wait stopped every greenlet of the
/// worker. `call` holds only what it needs by value (a span handle).
pub fn result_where_no_greenlet_waits<F>(py: Python<'_>, call: F) -> PyResult<spanguard_result>
where
    F: Fn() -> spanguard_result + Send + Sync + 'static,
{
    if !loaded(py) {
        return Ok(call());
    }
    let run = PyCFunction::new_closure(
        py,
        None,
        None,
        move |_: &Bound<'_, PyTuple>, _: Option<&Bound<'_, PyDict>>| -> PyResult<u32> {
            Ok(call() as u32)
        },
    )?;
    let code: u32 = off_the_hub(run)?.extract()?;
    // A number `call` returned: always one of the enum's.
    Ok(spanguard_result::from_code(code).unwrap_or(spanguard_result::Panic))
}

/// `run()` through `spanguard._green.off_the_hub`.
fn off_the_hub<'py>(run: Bound<'py, PyCFunction>) -> PyResult<Bound<'py, PyAny>> {
    run.py()
        .import("spanguard._green")?
        .call_method1("off_the_hub", (run,))
}
