//! Copies of a few bytes without a call to libc. Names, keys and values
//! are mostly short, and a copy of a length known only at run time is a
//! call to memmove whose entry and size dispatch cost more than moving
//! them: perf put those calls at a tenth of a span's time when the record
//! stored its text, and at a third of the exporter's time in the protobuf
//! encoder. Two overlapping loads and stores of one word size cover every
//! length from that size to twice it.

/// The longest copy done inline; longer ones go to `copy_nonoverlapping`.
pub(crate) const SHORT: usize = 32;

/// Copies `src` to `dst`, inline up to `SHORT` bytes.
///
/// # Safety
/// `dst` must be valid for writes of `src.len()` bytes and must not
/// overlap `src`.
#[inline(always)]
pub unsafe fn copy_short(dst: *mut u8, src: &[u8]) {
    let (s, n) = (src.as_ptr(), src.len());
    // SAFETY: every load below reads inside `src` and every store writes
    // inside the n bytes at `dst` (the two of a pair overlap when n is
    // under twice their size), as the caller promises for dst.
    unsafe {
        match n {
            0 => {}
            1..=3 => {
                let (a, b, c) = (*s, *s.add(n / 2), *s.add(n - 1));
                *dst = a;
                *dst.add(n / 2) = b;
                *dst.add(n - 1) = c;
            }
            4..=7 => copy_overlapping::<u32>(s, dst, n),
            8..=15 => copy_overlapping::<u64>(s, dst, n),
            16..=SHORT => copy_overlapping::<u128>(s, dst, n),
            _ => std::ptr::copy_nonoverlapping(s, dst, n),
        }
    }
}

/// Copies `n` bytes, `size_of::<T>() <= n <= 2 * size_of::<T>()`, by two
/// loads and two stores of a `T` that overlap.
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
