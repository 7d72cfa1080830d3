//! What a span kind or a status may be passed as, the one rule of every
//! binding: spanguard's own constants (`KIND_*`, `STATUS_*`, OTLP's
//! numbers), their names in any case (`"server"`, `"error"`), or
//! OpenTelemetry's own `SpanKind`, `StatusCode` and `Status`, so that code
//! written against OpenTelemetry's API, or moved from the Node or Go
//! binding, passes what it has. Anything else is a programming error,
//! raised at the call: `TypeError` for another type, `ValueError` for a
//! number out of range or an unknown name.
//!
//! OpenTelemetry's classes are recognised without importing its API: an
//! object can be one of them only once their module is in `sys.modules`,
//! and only an argument that is neither an int nor a str is looked up.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyString};
use spanguard::ffi::types::*;

const KIND_NAMES: [(&str, u32); 5] = [
    ("internal", SPANGUARD_KIND_INTERNAL),
    ("server", SPANGUARD_KIND_SERVER),
    ("client", SPANGUARD_KIND_CLIENT),
    ("producer", SPANGUARD_KIND_PRODUCER),
    ("consumer", SPANGUARD_KIND_CONSUMER),
];

const STATUS_NAMES: [(&str, u32); 3] = [
    ("unset", SPANGUARD_STATUS_UNSET),
    ("ok", SPANGUARD_STATUS_OK),
    ("error", SPANGUARD_STATUS_ERROR),
];

const KIND_EXPECTED: &str = "a span kind is KIND_* (0 to 5), its name ('internal', 'server', 'client', \
     'producer', 'consumer') or opentelemetry.trace.SpanKind";
const STATUS_EXPECTED: &str = "a status is STATUS_* (0 to 2), its name ('unset', 'ok', 'error'), \
     opentelemetry.trace.StatusCode or opentelemetry.trace.Status";

/// The OTLP kind `kind` names; None (the argument left out) is INTERNAL,
/// OpenTelemetry's default.
pub fn kind_of(kind: Option<&Bound<'_, PyAny>>) -> PyResult<u32> {
    let Some(kind) = kind.filter(|k| !k.is_none()) else {
        return Ok(SPANGUARD_KIND_INTERNAL);
    };
    if let Ok(name) = kind.cast::<PyString>() {
        return named(name, &KIND_NAMES, KIND_EXPECTED);
    }
    if let Some(n) = number(kind, SPANGUARD_KIND_CONSUMER, KIND_EXPECTED)? {
        return Ok(n);
    }
    // OpenTelemetry's SpanKind counts from INTERNAL = 0, OTLP from
    // UNSPECIFIED = 0.
    if let Some(member) = otel_instance(kind, "opentelemetry.trace", "SpanKind")? {
        return Ok(member.getattr("value")?.extract::<u32>()? + 1);
    }
    Err(PyTypeError::new_err(format!(
        "spanguard: {KIND_EXPECTED}, not {}",
        type_name(kind)
    )))
}

/// The OTLP status code `status` names, and the description an
/// OpenTelemetry `Status` carries (which, as in OpenTelemetry's
/// `set_status`, is used in place of a description passed beside it).
pub fn status_of<'py>(status: &Bound<'py, PyAny>) -> PyResult<(u32, Option<Bound<'py, PyAny>>)> {
    if let Ok(name) = status.cast::<PyString>() {
        return Ok((named(name, &STATUS_NAMES, STATUS_EXPECTED)?, None));
    }
    if let Some(n) = number(status, SPANGUARD_STATUS_ERROR, STATUS_EXPECTED)? {
        return Ok((n, None));
    }
    // StatusCode's values are OTLP's (UNSET 0, OK 1, ERROR 2).
    if let Some(code) = otel_instance(status, "opentelemetry.trace.status", "StatusCode")? {
        return Ok((code.getattr("value")?.extract::<u32>()?, None));
    }
    if let Some(whole) = otel_instance(status, "opentelemetry.trace.status", "Status")? {
        let (code, _) = status_of(&whole.getattr("status_code")?)?;
        let description = whole.getattr("description")?;
        return Ok((code, Some(description)));
    }
    Err(PyTypeError::new_err(format!(
        "spanguard: {STATUS_EXPECTED}, not {}",
        type_name(status)
    )))
}

/// An int argument (or one that says it is an integer, `__index__`: a
/// numpy integer), checked against 0..=`max`; None for any other type. A
/// bool is not a kind or a status, though Python counts it an int.
fn number(v: &Bound<'_, PyAny>, max: u32, expected: &str) -> PyResult<Option<u32>> {
    if v.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "spanguard: {expected}, not a bool"
        )));
    }
    if !v.is_instance_of::<PyInt>() && !v.hasattr("__index__")? {
        return Ok(None);
    }
    match v.extract::<u32>() {
        Ok(n) if n <= max => Ok(Some(n)),
        _ => Err(PyValueError::new_err(format!(
            "spanguard: {expected}, not {v}"
        ))),
    }
}

fn named(name: &Bound<'_, PyString>, names: &[(&str, u32)], expected: &str) -> PyResult<u32> {
    let text = name.to_str()?;
    names
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(text))
        .map(|&(_, code)| code)
        .ok_or_else(|| PyValueError::new_err(format!("spanguard: {expected}, not {text:?}")))
}

/// `v` when it is an instance of `module`.`class`, if that module was
/// imported at all (else `v` cannot be one: nothing is imported here).
fn otel_instance<'py>(
    v: &Bound<'py, PyAny>,
    module: &str,
    class: &str,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let modules = v.py().import("sys")?.getattr("modules")?;
    let Ok(loaded) = modules.get_item(module) else {
        return Ok(None);
    };
    let Ok(class) = loaded.getattr(class) else {
        return Ok(None);
    };
    Ok(v.is_instance(&class)?.then(|| v.clone()))
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .qualname()
        .map_or_else(|_| "that".to_owned(), |n| format!("a {n}"))
}
