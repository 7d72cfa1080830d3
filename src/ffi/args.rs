//! Reading the (pointer, length) arguments of the entry points, which
//! every module of them does: its own module, so that none of them takes
//! it from another (span.rs and tracer.rs each used the other's).

use std::ffi::c_char;

use super::result::spanguard_result;

/// Bytes of a (pointer, length) pair; an empty slice for length 0.
///
/// # Safety
/// `p` must be valid for `len` bytes when `len > 0`.
#[inline]
pub(super) unsafe fn bytes<'a>(p: *const c_char, len: usize) -> &'a [u8] {
    if len == 0 {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(p.cast(), len) }
    }
}

/// `bytes` of a pointer checked not NULL: the slice made straight from
/// it, with no test of the length (which `bytes` makes so as to never
/// make one from NULL). Through `bytes`, a setter kept both the caller's
/// key pointer and the one chosen by that test in registers, and spilled
/// one.
///
/// # Safety
/// `p` must not be NULL, and be valid for `len` bytes.
#[inline(always)]
pub(super) unsafe fn bytes_non_null<'a>(p: *const c_char, len: usize) -> &'a [u8] {
    debug_assert!(!p.is_null());
    // SAFETY: the caller's contract; a non-NULL pointer to u8 is aligned,
    // so a length of 0 is a valid empty slice too.
    unsafe { std::slice::from_raw_parts(p.cast(), len) }
}

/// The bytes of a (pointer, length) argument (text, or a packed buffer);
/// a NULL pointer is refused unless the length is 0.
///
/// # Safety
/// `p` must be valid for `len` bytes when it is not NULL.
#[inline]
pub(super) unsafe fn text_arg<'a>(
    p: *const c_char,
    len: usize,
) -> Result<&'a [u8], spanguard_result> {
    if p.is_null() && len > 0 {
        return Err(spanguard_result::NullArgument);
    }
    // SAFETY: the caller's contract.
    Ok(unsafe { bytes(p, len) })
}
