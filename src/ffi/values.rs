//! Attribute values as the C ABI gives them (`spanguard_attribute`'s
//! bytes and arrays, `spanguard_string` arrays): checked and read as the
//! record's input for spans, or copied as a resource's or scope's value.

use std::ffi::c_char;

use super::args::bytes;
use super::result::spanguard_result;
use super::types::*;
use crate::span::any_value::AnyValueCopy;
use crate::tracer::{AttrInput, RawStr};

/// A C string array as the record's input, after checking its elements.
pub(super) fn string_array<'a>(items: &'a [spanguard_string]) -> Option<AttrInput<'a>> {
    if items.iter().any(|s| s.ptr.is_null() && s.len > 0) {
        return None;
    }
    // SAFETY: spanguard_string and RawStr are both repr(C) { pointer,
    // length } (a test checks the sizes), and the caller vouched for the
    // strings for the call.
    let raw =
        unsafe { std::slice::from_raw_parts(items.as_ptr().cast::<RawStr<'a>>(), items.len()) };
    Some(AttrInput::StrArray(raw))
}

/// An encoded OTLP `AnyValue` message from the caller, copied and the copy
/// checked (`AnyValueCopy`): the record's input is `copy.value()`, never
/// the caller's bytes, which another thread may change meanwhile.
#[cold]
#[inline(never)]
pub(super) fn any_value(message: &[u8]) -> Result<AnyValueCopy, spanguard_result> {
    AnyValueCopy::of(message).map_err(|_| spanguard_result::InvalidAnyValue)
}

/// A bytes or array value of a `spanguard_attribute`: `n` elements at
/// `data`, of the type `type_` names. Not a complex value
/// (`SPANGUARD_VALUE_ANY`), which is copied first (`any_value`).
#[inline(never)]
pub(super) fn other_value<'a>(
    type_: u32,
    data: *const c_char,
    n: usize,
) -> Result<AttrInput<'a>, spanguard_result> {
    if data.is_null() && n > 0 {
        return Err(spanguard_result::NullArgument);
    }
    // SAFETY (every slice below): data points at n elements of the type
    // `type_` names, as documented.
    Ok(match type_ {
        SPANGUARD_VALUE_BYTES => AttrInput::Bytes(unsafe { bytes(data, n) }),
        SPANGUARD_VALUE_STRING_ARRAY => {
            match string_array(unsafe { elements(data.cast::<spanguard_string>(), n) }) {
                Some(v) => v,
                None => return Err(spanguard_result::NullArgument),
            }
        }
        SPANGUARD_VALUE_INT_ARRAY => AttrInput::IntArray(unsafe { elements(data.cast(), n) }),
        SPANGUARD_VALUE_DOUBLE_ARRAY => AttrInput::DoubleArray(unsafe { elements(data.cast(), n) }),
        SPANGUARD_VALUE_BOOL_ARRAY => AttrInput::BoolArray(unsafe { elements(data.cast(), n) }),
        _ => return Err(spanguard_result::InvalidArgument),
    })
}

/// A resource's or scope's array attribute (`spanguard_tracer_set_resource`):
/// the elements at `data`, of the array type `type_` names, strings as
/// UTF-8 with invalid bytes replaced. Refused as a span's attribute is
/// (`other_value`): `InvalidArgument` for a type that is no array (or
/// none at all), `NullArgument` for a NULL with a count.
pub(super) fn array_value(
    type_: u32,
    data: *const c_char,
    n: usize,
) -> Result<crate::config::ResourceValue, spanguard_result> {
    use crate::config::ResourceValue as V;
    let elements: Vec<V> = match other_value(type_, data, n)? {
        AttrInput::StrArray(v) => v
            .iter()
            .map(|s| V::Str(String::from_utf8_lossy(s.bytes()).into_owned()))
            .collect(),
        AttrInput::IntArray(v) => v.iter().map(|&i| V::Int(i)).collect(),
        AttrInput::DoubleArray(v) => v.iter().map(|&d| V::Double(d)).collect(),
        AttrInput::BoolArray(v) => v.iter().map(|&b| V::Bool(b != 0)).collect(),
        _ => return Err(spanguard_result::InvalidArgument),
    };
    Ok(V::Array(elements))
}

/// `n` elements at `p`; empty for n == 0 (whatever `p` is).
///
/// # Safety
/// `p` must be valid for `n` elements when `n > 0`.
pub(super) unsafe fn elements<'a, T>(p: *const T, n: usize) -> &'a [T] {
    if n == 0 {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}
