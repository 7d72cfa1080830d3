//! Crash signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT). The handler runs
//! on an alternate stack and writes every unexported span of every tracer —
//! open ones included — as raw records to that tracer's pre-opened crash
//! file, using only write(2), rename(2) and sigaction(2): no allocation, no
//! lock, no curl, no formatting. Then it chains to the handler that was
//! there before, or restores the default and re-raises, so the process dies
//! as it would have. The next tracer start (or `spanguard recover`) sends
//! what the file holds.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::buffer::dump::{DumpHeader, slot_is_live};
use crate::pipeline::Pipeline;

pub const CRASH_SIGNALS: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

/// A tracer's crash file: created (empty, locked) at start, filled and
/// renamed from `.sgdump-pending` to `.sgdump` by the handler.
pub struct CrashFile {
    file: OwnedFd,
    pending: CString,
    done: CString,
    header: DumpHeader,
    /// For the batch in flight (its slots are already free): becomes an
    /// ordinary spool file.
    batch_file: OwnedFd,
    batch_pending: CString,
    batch_done: CString,
}

impl CrashFile {
    pub fn create(
        dir: &std::path::Path,
        tracer_tag: u64,
        header: DumpHeader,
    ) -> std::io::Result<CrashFile> {
        std::fs::create_dir_all(dir)?;
        let stem = format!(
            "{:020}-{:010}-{tracer_tag:x}",
            crate::span::clock::now_unix_ns(),
            std::process::id()
        );
        let pending = dir.join(format!("{stem}.sgdump-pending"));
        let done = dir.join(format!("{stem}.sgdump"));
        let batch_pending = dir.join(format!("{stem}.sgspool-pending"));
        let batch_done = dir.join(format!("{stem}{}", crate::export::spool::SUFFIX));
        let create = |path: &std::path::Path| {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)?;
            // Held while we live: recovery leaves a locked file alone.
            // SAFETY: flock on our own fd.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            Ok::<_, std::io::Error>(file)
        };
        let file = create(&pending)?;
        let batch_file = create(&batch_pending)?;
        let to_c = |p: std::path::PathBuf| {
            CString::new(p.into_os_string().into_encoded_bytes()).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in spool path")
            })
        };
        Ok(CrashFile {
            file: file.into(),
            pending: to_c(pending)?,
            done: to_c(done)?,
            header,
            batch_file: batch_file.into(),
            batch_pending: to_c(batch_pending)?,
            batch_done: to_c(batch_done)?,
        })
    }

    /// Removes the (empty) file at a clean shutdown.
    pub fn remove(&self) {
        // SAFETY: NUL-terminated paths we own.
        unsafe {
            libc::unlink(self.pending.as_ptr());
            libc::unlink(self.batch_pending.as_ptr());
        }
    }

    /// Writes the live slots and any batch in flight (used by the
    /// termination watchdog after it froze the exporter).
    pub fn dump_now(&self, p: &Pipeline, signal: libc::c_int) {
        if !IN_CRASH.swap(true, Ordering::AcqRel) {
            self.dump(p, signal);
            self.dump_in_flight(p);
            IN_CRASH.store(false, Ordering::Release);
        }
    }

    /// Async-signal-safe: writes the batch in flight, if any, as a spool file.
    fn dump_in_flight(&self, p: &Pipeline) {
        let body = p.in_flight.body.load(Ordering::Acquire);
        if body.is_null() {
            return;
        }
        let len = p.in_flight.len.load(Ordering::Relaxed);
        let flags = p.in_flight.flags.load(Ordering::Relaxed);
        let format = if flags & 1 != 0 {
            crate::export::transport::BodyFormat::Json
        } else {
            crate::export::transport::BodyFormat::Protobuf
        };
        let header = crate::export::spool::encode_header(
            format,
            flags & 2 != 0,
            p.in_flight.spans.load(Ordering::Relaxed),
            len,
        );
        let fd = self.batch_file.as_raw_fd();
        write_all(fd, &header);
        // SAFETY: the exporter keeps this buffer alive and unchanged while
        // the pointer is published.
        write_all(fd, unsafe { std::slice::from_raw_parts(body, len) });
        // SAFETY: async-signal-safe calls on our fd and NUL-terminated paths.
        unsafe {
            libc::fsync(fd);
            libc::rename(self.batch_pending.as_ptr(), self.batch_done.as_ptr());
        }
    }

    /// Async-signal-safe: writes the header and every live slot.
    fn dump(&self, p: &Pipeline, signal: libc::c_int) {
        let fd = self.file.as_raw_fd();
        let mut header = self.header;
        header.signal = signal;
        let mut count = 0u32;
        for i in 0..p.slab.capacity() {
            if slot_is_live(p.slab.slot(i)) {
                count += 1;
            }
        }
        header.record_count = count;
        write_all(fd, header.as_bytes());
        for i in 0..p.slab.capacity() {
            let r = p.slab.slot(i);
            if slot_is_live(r) {
                // SAFETY: the slot is plain memory of the live mapping.
                let bytes = unsafe {
                    std::slice::from_raw_parts(
                        (r as *const crate::span::record::SpanRecord).cast::<u8>(),
                        std::mem::size_of_val(r),
                    )
                };
                write_all(fd, bytes);
            }
        }
        // SAFETY: fsync and rename of our own fd and NUL-terminated paths;
        // both are async-signal-safe.
        unsafe {
            libc::fsync(fd);
            libc::rename(self.pending.as_ptr(), self.done.as_ptr());
        }
    }
}

fn write_all(fd: libc::c_int, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: write from a valid slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            // SAFETY: reading this thread's errno.
            if n < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// The dispositions we replaced, written once before our handlers go in and
/// only read afterwards (from the handler, so no lock).
static mut PREVIOUS: [Option<libc::sigaction>; 32] = [None; 32];
static INSTALL: Once = Once::new();
static IN_CRASH: AtomicBool = AtomicBool::new(false);

extern "C" fn on_crash(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // A crash inside the dump itself must not recurse into another dump.
    if !IN_CRASH.swap(true, Ordering::AcqRel) {
        crate::registry::for_each_pipeline(|p| {
            // Stop the exporter taking more spans and give the batch it holds
            // a moment to finish (bounded: the crashing thread may be the
            // exporter itself), so dumped spans are not also sent.
            p.freeze_recording();
            p.signal.frozen.store(true, Ordering::SeqCst);
            let until = crate::span::clock::monotonic_ns() + 200_000_000;
            while p.signal.busy.load(Ordering::SeqCst) && crate::span::clock::monotonic_ns() < until
            {
                std::hint::spin_loop();
            }
            if let Some(crash) = p.crash_file.as_ref() {
                crash.dump(p, signal);
                crash.dump_in_flight(p);
            }
            p.mark_flight_signal(signal);
        });
    }
    // SAFETY: PREVIOUS was written before this handler was installed and is
    // never written again; sigaction and raise are async-signal-safe.
    unsafe {
        let previous = (*std::ptr::addr_of!(PREVIOUS))[signal as usize];
        if let Some(old) = previous {
            let handler = old.sa_sigaction;
            if handler != libc::SIG_DFL && handler != libc::SIG_IGN {
                libc::sigaction(signal, &old, std::ptr::null_mut());
                if old.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(handler);
                    f(signal, info, context);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
                    f(signal);
                }
                return;
            }
        }
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(signal, &default, std::ptr::null_mut());
        // Pending until the handler returns (the signal is blocked in its
        // own handler): then the default action ends the process with it. A
        // hardware fault would also recur on return; an explicit raise would
        // not, hence the raise.
        libc::raise(signal);
    }
}

/// A thread's alternate signal stack, unmapped when the thread exits.
struct AltStack {
    mem: *mut libc::c_void,
    size: usize,
}

impl AltStack {
    /// Maps and installs one, unless the thread already has one (Go and
    /// other runtimes set their own; those are left alone).
    fn install() -> Option<AltStack> {
        // SAFETY: queries, then maps fresh memory and points this thread's
        // alternate stack at it.
        unsafe {
            let mut current: libc::stack_t = std::mem::zeroed();
            if libc::sigaltstack(std::ptr::null(), &mut current) == 0
                && current.ss_flags & libc::SS_DISABLE == 0
            {
                return None;
            }
            let size = 64 * 1024;
            let mem = libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if mem == libc::MAP_FAILED {
                return None;
            }
            let stack = libc::stack_t {
                ss_sp: mem,
                ss_flags: 0,
                ss_size: size,
            };
            if libc::sigaltstack(&stack, std::ptr::null_mut()) != 0 {
                libc::munmap(mem, size);
                return None;
            }
            Some(AltStack { mem, size })
        }
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: the thread is exiting; it stops using the stack before it
        // is unmapped.
        unsafe {
            let off = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            libc::sigaltstack(&off, std::ptr::null_mut());
            libc::munmap(self.mem, self.size);
        }
    }
}

thread_local! {
    static ALT_STACK: std::cell::OnceCell<Option<AltStack>> = const { std::cell::OnceCell::new() };
}

/// Gives the calling thread an alternate signal stack, so a stack overflow
/// can still run the crash handler. Called on each thread's first span (its
/// warm-up); afterwards one thread-local check.
#[inline]
pub fn ensure_alt_stack() {
    let _ = ALT_STACK.try_with(|cell| {
        cell.get_or_init(AltStack::install);
    });
}

/// Installs the crash handlers once per process.
pub fn ensure_installed() {
    INSTALL.call_once(|| {
        ensure_alt_stack();
        // SAFETY: PREVIOUS is filled before any handler that reads it exists;
        // the handler is written to be async-signal-safe.
        unsafe {
            let previous = &mut *std::ptr::addr_of_mut!(PREVIOUS);
            for &signal in &CRASH_SIGNALS {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, std::ptr::null(), &mut old) != 0
                    || old.sa_sigaction == libc::SIG_IGN
                {
                    continue;
                }
                previous[signal as usize] = Some(old);
            }
            for &signal in &CRASH_SIGNALS {
                if previous[signal as usize].is_none() {
                    continue;
                }
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_crash as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    });
}
