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
