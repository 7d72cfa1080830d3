//! The one place the buffers map memory: fresh, readable and writable,
//! private anonymous or a shared region of a file.

use std::io;
use std::ptr::NonNull;

/// Maps `len` (> 0) bytes with `flags` (`MAP_PRIVATE | MAP_ANONYMOUS` with
/// `fd` -1, or `MAP_SHARED` over `fd` from `offset`), plus what the caller
/// adds (`MAP_POPULATE`, `MAP_NORESERVE`). The pages read as zero until
/// written (anonymous memory, or a file extended by `set_len`).
pub fn map(
    len: usize,
    flags: libc::c_int,
    fd: libc::c_int,
    offset: u64,
) -> io::Result<NonNull<u8>> {
    // SAFETY: a fresh mapping of len bytes; no existing memory is touched.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd,
            offset as libc::off_t,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    if fd >= 0 {
        // A fault in a file mapping reads around it (readahead): the
        // flight recorder header's first write zeroed and mapped megabytes
        // of the sparse file, about 2 ms of spanguard_tracer_new, and a
        // payload chunk's first write would do the same on the recording
        // path. Our pages are populated where and when we choose instead.
        // SAFETY: advice on the fresh mapping above; changes no byte.
        unsafe { libc::madvise(ptr, len, libc::MADV_RANDOM) };
    }
    // SAFETY: mmap succeeded, so ptr is non-null and page aligned.
    Ok(unsafe { NonNull::new_unchecked(ptr.cast::<u8>()) })
}

/// Faults in, writable, the pages of `[start, start + len)`, which must
/// be page-aligned and inside one of our mappings, with one call rather
/// than a fault per page later. Changes no byte. Kernels before 5.14
/// refuse MADV_POPULATE_WRITE: their pages then fault as first written.
pub fn populate(start: *mut u8, len: usize) {
    // SAFETY: advice on the caller's page-aligned range of its own mapping;
    // MADV_POPULATE_WRITE only faults pages in.
    unsafe { libc::madvise(start.cast(), len, libc::MADV_POPULATE_WRITE) };
}

/// The size of a transparent huge page on x86-64 and most arm64 kernels.
pub(crate) const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Asks the kernel for transparent huge pages over the part of a private
/// anonymous mapping that starts at least `small` bytes past `start`
/// (rounded up to a huge page boundary). A hint: where THP is off
/// ("never") or no huge page is free, the pages stay 4 KiB.
///
/// Why: a span slot is 3 KiB, so a thread that walks more slots than the
/// TLB maps (a burst, or the slots a flush gave back) takes a TLB miss, a
/// page walk (two-dimensional in a VM), on nearly every span. Huge pages
/// took 4-15% off the four small-span cases with the exporter idle
/// (`make bench-compare`, 5 pairs: 0.853 to 0.963). The first `small`
/// bytes keep 4 KiB pages so that a tracer that records little stays
/// small: a huge page is resident whole once any byte of it is written.
pub fn prefer_huge_pages_past(start: NonNull<u8>, len: usize, small: usize) {
    let begin = start.as_ptr() as usize;
    let Some(from) = begin
        .checked_add(small)
        .and_then(|b| b.checked_next_multiple_of(HUGE_PAGE_BYTES))
    else {
        return;
    };
    let end = begin.saturating_add(len);
    if from.saturating_add(HUGE_PAGE_BYTES) > end {
        return; // no whole huge page fits: nothing to gain
    }
    // SAFETY: advice on [from, end), page-aligned and inside the caller's
    // mapping; MADV_HUGEPAGE changes no byte. Its result is ignored on
    // purpose: kernels without THP refuse it and keep 4 KiB pages.
    unsafe { libc::madvise(from as *mut libc::c_void, end - from, libc::MADV_HUGEPAGE) };
}
