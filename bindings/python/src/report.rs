//! What the binding does with a result code. Recording calls never raise
//! (OpenTelemetry's API rule): what they could not record is counted (by
//! the library, or by the tracer's `values_rejected` for what the binding
//! itself refused) and warned once per kind through `logging` (logger
//! "spanguard"). Calls that configure or manage a tracer raise
//! `SpanguardError`; programming errors (a wrong type, an unknown kind or
//! status) raise `TypeError` / `ValueError` at the call.

use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use spanguard::ffi::result::spanguard_result;

// Named in module `spanguard`, where users import and catch it: under
// `_native` tracebacks printed `_native.SpanguardError: ...`, a module no
// one imports, and pickle (multiprocessing, concurrent.futures) could not
// find the class to carry the error across.
create_exception!(
    spanguard,
    SpanguardError,
    PyException,
    "A spanguard call that manages a tracer failed; `code` is the spanguard_result."
);

/// The library's text for `code`.
pub fn describe(code: u32) -> String {
    let ptr = spanguard::ffi::result::spanguard_strerror(code);
    // SAFETY: spanguard_strerror returns a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// A `SpanguardError` for `code`, with `.code` set.
pub fn error(py: Python<'_>, code: u32, what: &str) -> PyErr {
    let err = SpanguardError::new_err(format!(
        "{what}: {} (spanguard_result {code})",
        describe(code)
    ));
    // An exception instance takes attributes; failing that, the message
    // still carries the code.
    let _ = err.value(py).setattr("code", code);
    err
}

/// Why a recording call did not record everything, one bit each, so that
/// each kind is warned once per process.
#[derive(Clone, Copy)]
#[repr(u8)]
pub enum Problem {
    Truncated = 0,
    Utf8Replaced,
    LimitReached,
    EndedSpan,
    ShutDown,
    BufferFull,
    BadValue,
    BadComplexValue,
    BadTraceparent,
    Internal,
    EmptyKey,
    BadTime,
    EndedAfterShutDown,
    SetAfterShutDown,
}

static WARNED: AtomicU64 = AtomicU64::new(0);

impl Problem {
    fn message(self) -> &'static str {
        match self {
            Problem::Truncated => {
                "a value was cut: longer than its length limit, or the payload pool (payload_pool_mib) was used up by the spans in flight (counted in stats().values_truncated)"
            }
            Problem::Utf8Replaced => {
                "a string was not valid UTF-8; the bad bytes were replaced (counted in stats().utf8_replaced)"
            }
            Problem::LimitReached => {
                "a span's attribute, event or link limit was reached; the rest were dropped (counted in stats().attributes_dropped, events_dropped, links_dropped)"
            }
            Problem::EndedSpan => {
                "a span was used after it ended (spans end once), or in a forked child after it began in the parent (the child's tracer is a new one; such a span is the parent's to end); the call did nothing"
            }
            Problem::ShutDown => "the tracer is shut down; spans begun now are not recorded",
            Problem::SetAfterShutDown => {
                "a value was set on a span after its tracer shut down (an attribute, event, link, status or name; a stream's wrapper finishing at exit, say): the shutdown had exported the span marked spanguard.unended, without it. Said once"
            }
            Problem::BufferFull => {
                "every span slot was taken; spans are not recorded (counted in stats().dropped_buffer_full; raise max_open_spans)"
            }
            Problem::BadValue => {
                "an attribute value was not a str, bool, int (64-bit), float, bytes, None, or a list, tuple or dict (str keys) of them; it was left out (counted in stats().values_rejected and, a span's own attribute, in the span's dropped attributes count). Said once; later ones are only counted"
            }
            Problem::BadComplexValue => {
                "an attribute value was a list, tuple or dict holding something spanguard cannot carry (a dict key that is not a str; a value not a str, bool, int (64-bit), float, bytes, None, list, tuple or dict); it was left out (counted in stats().values_rejected and, a span's own attribute, in the span's dropped attributes count). Maps, mixed and nested lists and None are otherwise sent whole, as OpenTelemetry's complex attribute values (AnyValue); a list or dict nested deeper than the depth limit (64) is replaced by None, counted in stats().values_truncated. Said once; later ones are only counted"
            }
            Problem::EmptyKey => {
                "an attribute had an empty key, which OpenTelemetry forbids; it was left out (counted in stats().attributes_dropped)"
            }
            Problem::BadTraceparent => {
                "a traceparent was not valid W3C text; the span began a new trace / the link was left out (counted in stats().values_rejected)"
            }
            Problem::Internal => "spanguard hit an internal error; the call was abandoned safely",
            Problem::BadTime => {
                "a time was not an int or float of Unix nanoseconds or a datetime (or was negative); now was used instead (counted in stats().values_rejected)"
            }
            Problem::EndedAfterShutDown => {
                "an OpenTelemetry span ended after the spanguard tracer shut down (a signal, the exit hook, or its owner's shutdown, not the provider's): the shutdown had exported it marked spanguard.unended, without its end and what was set on it since (counted in SpanguardSpanProcessor.failures). Said once; later ones are only counted"
            }
        }
    }

    /// Logs this kind of problem the first time it happens in the process.
    pub fn warn_once(self, py: Python<'_>) {
        self.warn_once_about(py, || None);
    }

    /// `warn_once`, naming what the problem was about (`attribute
    /// "gen_ai.prompt" (a dict)`): said once a process, the first one
    /// seen is all a user has to find the call that made it. `about` runs
    /// only when the warning is logged.
    pub fn warn_once_about(self, py: Python<'_>, about: impl FnOnce() -> Option<String>) {
        let bit = 1u64 << (self as u8);
        // Relaxed: the bit only decides who logs; it orders nothing else.
        if WARNED.fetch_or(bit, Ordering::Relaxed) & bit != 0 {
            return;
        }
        let text = match about() {
            Some(about) => format!("spanguard: {about}: {}", self.message()),
            None => format!("spanguard: {}", self.message()),
        };
        let logged = (|| -> PyResult<()> {
            let logger = py
                .import("logging")?
                .call_method1("getLogger", ("spanguard",))?;
            logger.call_method1("warning", (text,))?;
            Ok(())
        })();
        // Logging must not make a recording call raise either.
        drop(logged);
    }
}

/// The result of a recording call on a span: never an exception, except
/// for an argument the caller got wrong (`SPANGUARD_RESULT_INVALID_ARGUMENT`:
/// an unknown kind or status code), which is a programming error.
pub fn recording(py: Python<'_>, code: spanguard_result) -> PyResult<()> {
    use spanguard_result as R;
    let problem = match code {
        R::Ok | R::ParentStale | R::NonRecording => return Ok(()),
        R::Truncated => Problem::Truncated,
        R::Utf8Replaced => Problem::Utf8Replaced,
        R::LimitReached => Problem::LimitReached,
        R::EmptyKey => Problem::EmptyKey,
        R::StaleSpan | R::AlreadyEnded => Problem::EndedSpan,
        // A begin's SHUT_DOWN is said by `span::began`: here it answers a
        // call on a span the shutdown had already exported.
        R::ShutDown => Problem::SetAfterShutDown,
        R::BufferFull => Problem::BufferFull,
        R::InvalidTraceparent => Problem::BadTraceparent,
        R::InvalidArgument => {
            return Err(PyValueError::new_err(
                "spanguard: an argument is out of range (a span kind is KIND_*, a status STATUS_*)",
            ));
        }
        _ => Problem::Internal,
    };
    problem.warn_once(py);
    Ok(())
}

/// `recording` for a call that adds one event or link, with what became
/// of it: Some(true) when the span holds it (whole, or its text cut),
/// Some(false) when it was refused and counted in the span's dropped
/// events or links (its count limit, or no room left in the payload pool
/// for its entry), None when it was neither held nor counted (a link with
/// nothing to record, an ended span, a shut-down tracer, a span that
/// records nothing). What an OpenTelemetry bridge needs to know which of
/// those it passed on spanguard holds.
pub fn held(py: Python<'_>, code: spanguard_result) -> PyResult<Option<bool>> {
    use spanguard_result as R;
    recording(py, code)?;
    Ok(match code {
        R::Ok | R::Truncated | R::Utf8Replaced => Some(true),
        R::LimitReached => Some(false),
        _ => None,
    })
}
