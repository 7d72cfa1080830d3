//! Appending bytes to an encoder's output. `Vec::extend_from_slice` of a
//! length known only at run time is a call to libc's memmove: in the
//! protobuf encoder those calls (seven a span with three attributes) were
//! a third of the exporter's time in a profile of small spans.

use crate::span::short_copy::{SHORT, copy_short};

/// `out.extend_from_slice(src)`, with short pieces (names, keys, most
/// values, digits) copied inline (`span::short_copy`).
#[inline(always)]
pub fn append(out: &mut Vec<u8>, src: &[u8]) {
    if src.len() > SHORT {
        out.extend_from_slice(src);
        return;
    }
    out.reserve(src.len());
    let at = out.len();
    // SAFETY: `reserve` made room for src.len() bytes past `at`, in memory
    // `src` (borrowed elsewhere) cannot share; set_len then covers exactly
    // the bytes written.
    unsafe {
        copy_short(out.as_mut_ptr().add(at), src);
        out.set_len(at + src.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_copy_every_byte_at_every_length() {
        let src: Vec<u8> = (1..=80).collect();
        for n in 0..=src.len() {
            let mut out = vec![0xee];
            append(&mut out, &src[..n]);
            append(&mut out, &src[..n]);
            let mut want = vec![0xee];
            want.extend_from_slice(&src[..n]);
            want.extend_from_slice(&src[..n]);
            assert_eq!(out, want, "{n}");
        }
    }
}
