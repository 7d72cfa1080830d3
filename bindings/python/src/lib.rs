//! `spanguard._native`: the Python extension module. A thin skin over the C
//! ABI of the spanguard crate (the same `spanguard_*` calls every binding
//! makes, linked in statically): it converts Python values, keeps the
//! current span in a `contextvars.ContextVar`, and turns results into what
//! Python code expects. Recording calls never raise; see `report`.

use pyo3::prelude::*;

mod report;
mod span;
mod text;
mod tracer;
mod values;

use spanguard::ffi::types::*;

/// The module: classes, constants and the context variable.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<tracer::Tracer>()?;
    m.add_class::<span::Span>()?;
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
    m.add_function(wrap_pyfunction!(strerror, m)?)?;
    Ok(())
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
