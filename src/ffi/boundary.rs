//! The one wrapper around every exported function: a panic never unwinds
//! into C; it becomes the function's "panic" value instead.

/// Runs `$body`, returning `$on_panic` if it panics.
macro_rules! ffi_boundary {
    ($on_panic:expr, $body:block) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(_) => $on_panic,
        }
    };
}

/// Returns `SPANGUARD_RESULT_NULL_ARGUMENT` from the enclosing function when
/// any of the pointers is NULL.
macro_rules! require_non_null {
    ($($ptr:expr),+) => {
        if $($ptr.is_null())||+ {
            return $crate::ffi::result::spanguard_result::NullArgument;
        }
    };
}

pub(crate) use ffi_boundary;
pub(crate) use require_non_null;
