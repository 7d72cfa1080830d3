//! The error callback's news (`spanguard_event`), logged through `logging`
//! (logger "spanguard", as the binding's own warnings are): what the
//! library says on stderr of a backend's warning, a setting ignored, spans
//! lost or spooled, a program that routes its logs elsewhere (or runs
//! where stderr is thrown away) had nowhere. Only when the program has
//! configured logging (a handler on the logger or above it): unconfigured,
//! logging's last resort prints to stderr, beside the library's own line.
//! Runs on the library's exporter thread, which enters Python as the
//! signal watchdog's hook does (`enter_python`): never once the exit has
//! shut such threads out, never while the interpreter is finalizing.

use std::ffi::{c_char, c_void};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use spanguard::ffi::types::spanguard_event;

/// `logging`'s levels.
const ERROR: u32 = 40;
const WARNING: u32 = 30;
const INFO: u32 = 20;

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
    let text = String::from_utf8_lossy(bytes);
    log(event as u32, &text);
}

/// Logs `message` as event number `event`; nothing once Python may not be
/// entered. A logging failure is Python's to report (a handler's error is
/// handled by logging itself), never the exporter's.
pub fn log(event: u32, message: &str) {
    if !crate::enter_python(std::time::Duration::from_secs(1)) {
        return;
    }
    let _ = Python::try_attach(|py| {
        let logged = (|| -> PyResult<()> {
            let logger = py
                .import("logging")?
                .call_method1("getLogger", ("spanguard",))?;
            if !logger.call_method0("hasHandlers")?.is_truthy()? {
                return Ok(());
            }
            let (name, level) = name_and_level(event);
            let extra = PyDict::new(py);
            extra.set_item("spanguard_event", event)?;
            extra.set_item("spanguard_event_name", name)?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("extra", extra)?;
            logger.call_method("log", (level, "spanguard: %s", message), Some(&kwargs))?;
            Ok(())
        })();
        if let Err(err) = logged {
            err.write_unraisable(py, None);
        }
    });
    crate::left_python();
}

/// `log`, called from Python: a test's way to hand the logger an event
/// number no library has yet (one of a newer library than this binding).
#[pyfunction]
pub fn _log_event_for_test(event: u32, message: &str) {
    log(event, message);
}
