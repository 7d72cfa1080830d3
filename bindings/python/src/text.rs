//! Python text as the UTF-8 bytes the C ABI takes (pointer + length).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

/// UTF-8 bytes of a Python object: borrowed from a `str` (CPython keeps
/// its UTF-8 form), or owned for the rare rest.
pub enum Utf8<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl Utf8<'_> {
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Utf8::Borrowed(b) => b,
            Utf8::Owned(v) => v,
        }
    }
}

/// A `str` as UTF-8. Lone surrogates, which UTF-8 cannot hold, are passed
/// through as bytes for the library to replace (and count); anything not a
/// `str` is given by its `str()`. Never fails: recording never raises.
#[inline]
pub fn utf8<'a>(obj: &'a Bound<'_, PyAny>) -> Utf8<'a> {
    match obj.cast::<PyString>() {
        Ok(s) => str_utf8(s),
        Err(_) => match obj.str() {
            Ok(s) => Utf8::Owned(str_utf8(&s).as_bytes().to_vec()),
            Err(_) => Utf8::Owned(b"<unprintable>".to_vec()),
        },
    }
}

/// A `str` (known to be one) as UTF-8.
#[inline]
pub fn str_utf8<'a>(s: &'a Bound<'_, PyString>) -> Utf8<'a> {
    match s.to_str() {
        Ok(t) => Utf8::Borrowed(t.as_bytes()),
        Err(_) => Utf8::Owned(surrogates_passed(s)),
    }
}

fn surrogates_passed(s: &Bound<'_, PyString>) -> Vec<u8> {
    s.call_method1("encode", ("utf-8", "surrogatepass"))
        .ok()
        .and_then(|b| b.cast_into::<PyBytes>().ok().map(|b| b.as_bytes().to_vec()))
        .unwrap_or_else(|| "\u{fffd}".as_bytes().to_vec())
}
