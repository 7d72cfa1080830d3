//! The process's environment, as every read of the library's takes it:
//! through std's lock in a process that was not forked, without it in a
//! forked child (`var_os`). A leaf: the settings (config.rs) and the clock
//! both read through it.

/// Set by a forked child's fork handler (`after_fork_in_child`), and so
/// in every process forked from one.
static IN_FORKED_CHILD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// In a forked child, from its fork handler: the environment is read
/// without std's lock from now on (`var_os`).
pub fn after_fork_in_child() {
    IN_FORKED_CHILD.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The environment variable `name`, as `std::env::var_os` gives it, which
/// every read of the library's goes through. In a forked child, read with
/// glibc's getenv, which takes no lock: std's reads take std's environment
/// lock, which `std::env::set_var` holds across glibc's setenv and which
/// no fork handler resets, so a child forked while another thread of its
/// parent was in set_var (a Rust program, a binding's runtime sharing our
/// std) found it held for good by a thread it does not have, and its
/// first tracer waited forever for its settings. In such a child no Rust
/// set_var can finish either (it waits for that lock); a C setenv never
/// took it, so the read is as safe as std's was against one.
pub fn var_os(name: &str) -> Option<std::ffi::OsString> {
    if !IN_FORKED_CHILD.load(std::sync::atomic::Ordering::Relaxed) {
        return std::env::var_os(name);
    }
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a NUL-terminated name; getenv returns NULL or a pointer to a
    // NUL-terminated value in the environment, copied at once.
    let value = unsafe { libc::getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated (getenv's answer).
    let bytes = unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes();
    Some(std::os::unix::ffi::OsStringExt::from_vec(bytes.to_vec()))
}

/// The names of the environment's variables (`std::env::vars_os`'s), read
/// as `var_os` reads a value.
pub fn names() -> Vec<std::ffi::OsString> {
    if !IN_FORKED_CHILD.load(std::sync::atomic::Ordering::Relaxed) {
        return std::env::vars_os().map(|(n, _)| n).collect();
    }
    unsafe extern "C" {
        static environ: *const *const libc::c_char;
    }
    let mut names = Vec::new();
    // SAFETY: glibc's environ: NULL or a NULL-terminated array of
    // NUL-terminated "NAME=value" strings, read as getenv reads it.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let bytes = std::ffi::CStr::from_ptr(*entry).to_bytes();
            // As std: a name may begin with '=' (skip it when seeking one).
            if let Some(at) = bytes.iter().skip(1).position(|&b| b == b'=') {
                names.push(std::os::unix::ffi::OsStringExt::from_vec(
                    bytes[..at + 1].to_vec(),
                ));
            }
            entry = entry.add(1);
        }
    }
    names
}
