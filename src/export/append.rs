//! Appending bytes to an encoder's output. `Vec::extend_from_slice` of a
//! length known only at run time is a call to libc's memmove, whose call
//! and size dispatch cost more than moving the few bytes most names, keys
//! and values have: in the protobuf encoder those calls (seven a span with
//! three attributes) were a third of the exporter's time in a profile of
//! small spans.

/// Copies `n` bytes from `s` to `d`, `size_of::<T>() <= n <= 2 *
/// size_of::<T>()`, by two loads and two stores of a `T` that overlap.
///
/// # Safety
/// `s` must be readable and `d` writable for `n` bytes.
#[inline(always)]
unsafe fn copy_overlapping<T: Copy>(s: *const u8, d: *mut u8, n: usize) {
    let w = std::mem::size_of::<T>();
    // SAFETY: both pairs lie within the n bytes (w <= n), as the caller
    // promises for s and d.
    unsafe {
        let (a, b) = (
            s.cast::<T>().read_unaligned(),
            s.add(n - w).cast::<T>().read_unaligned(),
        );
        d.cast::<T>().write_unaligned(a);
        d.add(n - w).cast::<T>().write_unaligned(b);
    }
}

/// `out.extend_from_slice(src)`, with short pieces (names, keys, most
/// values, digits) copied inline by two overlapping loads and stores.
#[inline(always)]
pub fn append(out: &mut Vec<u8>, src: &[u8]) {
    let n = src.len();
    if n > 32 {
        out.extend_from_slice(src);
        return;
    }
    out.reserve(n);
    let at = out.len();
    // SAFETY: `reserve` made room for n bytes past `at`; each load reads
    // inside `src` (the two of a pair overlap when n is under twice their
    // size) and each store writes inside the n bytes; set_len then covers
    // exactly the bytes written.
    unsafe {
        let (s, d) = (src.as_ptr(), out.as_mut_ptr().add(at));
        if n >= 16 {
            copy_overlapping::<u128>(s, d, n);
        } else if n >= 8 {
            copy_overlapping::<u64>(s, d, n);
        } else if n >= 4 {
            copy_overlapping::<u32>(s, d, n);
        } else if n > 0 {
            let (a, b, c) = (*s, *s.add(n / 2), *s.add(n - 1));
            *d = a;
            *d.add(n / 2) = b;
            *d.add(n - 1) = c;
        }
        out.set_len(at + n);
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
