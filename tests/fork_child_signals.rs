//! A forked child of a Rust process (this test binary: libtest's threads
//! around it, the standard library's 8 KiB alternate signal stack on each
//! thread) records spans with its parent's tracer, made through the C API
//! with every signal handler on, then a signal ends it. Every span it
//! recorded reaches the sink once: ended ones flushed by its watchdog or
//! sent from its crash dump by the next tracer over the spool directory.
//!
//! The SIGSEGV case lost them all: the crash handler ran on the standard
//! library's 8 KiB stack, which it overflowed (in this debug build; a
//! release build has under 2 KiB to spare there), and the kernel killed
//! the child at the guard page with nothing dumped: an empty
//! `.sgdump-pending`, 0 spans recovered. A crash handler now gets a stack
//! of its own on such a thread (`watchdog::crash`).
//!
//! The standard library's SIGSEGV handler (its stack overflow message)
//! resets the default and returns for a signal that was raised rather
//! than a fault: a Rust process lives on past one `raise(SIGSEGV)`, with
//! or without spanguard. Such a child that then waited hung; this one
//! ends its open span, flushes and leaves by `_exit` once the raise
//! returns: a crash signal the process lives through thaws the tracers
//! and takes the dump back (its spans went out twice, or, with the child
//! leaving by `_exit` alone, not at all).
//!
//! The "small stack" case is SIGSEGV once the child, having recorded, swaps
//! in a smaller alternate stack of its own (8 KiB, as a runtime's
//! per-thread stacks may be: Go's, a JIT's), over the one the crash
//! handler gave the thread at its first span. The handler dumped on it,
//! overflowed it and the kernel killed the child with nothing dumped; it
//! now finds itself short of stack at the signal and has the watchdog
//! thread write the dump.
//!
//! Each case runs in a copy of this binary (its only test), which forks.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spanguard::ffi::span::{spanguard_span_begin, spanguard_span_end};
use spanguard::ffi::tracer::{
    spanguard_config_init, spanguard_flush, spanguard_shutdown, spanguard_tracer,
    spanguard_tracer_free, spanguard_tracer_new,
};
use spanguard::ffi::types::{SPANGUARD_SPAN_NONE, spanguard_config};

const CASE: &str = "SPANGUARD_TEST_FORK_CHILD_SIGNAL";
/// Ended spans the child records, and one more left open.
const ENDED: usize = 3;
const NAME: &[u8] = b"forked-child-span";

fn c_path(p: PathBuf) -> CString {
    CString::new(p.into_os_string().into_encoded_bytes()).expect("no NUL")
}

/// A tracer through the C API over `base`'s spool, writing to `sink`.
fn tracer(base: &Path, sink: &str, handlers: u32) -> *mut spanguard_tracer {
    let (sink, spool) = (c_path(base.join(sink)), c_path(base.join("spool")));
    // SAFETY: config_init fills the zeroed struct.
    let mut cfg: spanguard_config = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<spanguard_config>();
    assert_eq!(unsafe { spanguard_config_init(&mut cfg, size) } as u32, 0);
    cfg.service_name = c"fork-child-signals".as_ptr();
    cfg.sink_dir = sink.as_ptr();
    cfg.spool_dir = spool.as_ptr();
    cfg.schedule_delay_ms = 60_000; // nothing goes out before the signal
    cfg.install_signal_handlers = handlers;
    cfg.log_level = c"error".as_ptr();
    let mut t = std::ptr::null_mut();
    // SAFETY: the strings outlive the call, which copies them.
    assert_eq!(unsafe { spanguard_tracer_new(&cfg, &mut t) } as u32, 0);
    t
}

/// Spans named `NAME` in the .jsonl files of `dir`.
fn spans_in(dir: &Path) -> usize {
    let needle = format!("\"name\":\"{}\"", String::from_utf8_lossy(NAME));
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
                .map(|e| {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    text.matches(&needle).count()
                })
                .sum()
        })
        .unwrap_or(0)
}

/// What a runtime may do on a thread that recorded already: an alternate
/// stack of its own, 8 KiB, with a guard page below it so that an
/// overflow faults rather than writes past it. In the child: `_exit(4)`
/// if it cannot.
fn swap_in_small_alt_stack() {
    // SAFETY: fresh memory of our own becomes this thread's alternate
    // stack, and stays mapped until the child ends.
    unsafe {
        let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
        let size = 8 * 1024;
        let mem = libc::mmap(
            std::ptr::null_mut(),
            page + size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if mem == libc::MAP_FAILED || libc::mprotect(mem, page, libc::PROT_NONE) != 0 {
            libc::_exit(4);
        }
        let stack = libc::stack_t {
            ss_sp: mem.cast::<u8>().add(page).cast(),
            ss_flags: 0,
            ss_size: size,
        };
        if libc::sigaltstack(&stack, std::ptr::null_mut()) != 0 {
            libc::_exit(4);
        }
    }
}

/// Forks a child that records with `t` and raises `signal` (after a
/// smaller alternate stack is swapped in, with `small_stack`), and waits
/// for it (30 s at most: then it hung, and is killed). What ended it.
fn child_raises(t: *const spanguard_tracer, signal: i32, small_stack: bool) -> String {
    // SAFETY: this test is its binary's only one, run alone in a copy; the
    // child records, raises and leaves by `_exit` or the signal.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: C calls with a live tracer; `_exit` ends the child.
        unsafe {
            libc::alarm(20);
            let mut open = SPANGUARD_SPAN_NONE;
            for i in 0..=ENDED {
                let mut s = SPANGUARD_SPAN_NONE;
                let name = NAME.as_ptr().cast();
                if spanguard_span_begin(t, name, NAME.len(), SPANGUARD_SPAN_NONE, 0, &mut s) as u32
                    != 0
                    || (i < ENDED && spanguard_span_end(s) as u32 != 0)
                {
                    libc::_exit(3);
                }
                open = s;
            }
            if small_stack {
                swap_in_small_alt_stack();
            }
            libc::raise(signal);
            // SIGTERM's watchdog flushes meanwhile, then ends it.
            if signal == libc::SIGSEGV {
                // Lived on past it (the standard library's handler reset
                // the default and returned): the tracers were thawed and
                // the dump taken back, so the child goes on as any
                // process does, ending its span and flushing before
                // `_exit`. (A tracer left frozen refuses both, and its
                // dump is recovered: once each either way.)
                let _ = spanguard_span_end(open);
                let _ = spanguard_flush(t, 10_000);
                libc::_exit(42);
            }
            loop {
                libc::pause();
            }
        }
    }
    let until = Instant::now() + Duration::from_secs(30);
    let mut status = 0;
    // SAFETY: waits for our own child, without blocking.
    while unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } != pid {
        if Instant::now() > until {
            // SAFETY: our own child, stuck.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return "hung".to_string();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("exit {}", libc::WEXITSTATUS(status))
    }
}

/// One case ("15", "11", "small stack"), in this process (a copy of the
/// binary): what ended the child, the spans it delivered, and those
/// recovered after it.
fn run_case(case: &str) {
    let small_stack = case == "small stack";
    let signal = if small_stack {
        libc::SIGSEGV
    } else {
        case.parse().expect("a signal")
    };
    let base = std::env::temp_dir().join(format!(
        "sg-fork-child-{}-{}",
        case.replace(' ', "-"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&base);
    let parent = tracer(&base, "sink", 1);
    let ended = child_raises(parent, signal, small_stack);
    let delivered = spans_in(&base.join("sink"));
    spanguard_shutdown(parent, 10_000);
    // SAFETY: made above, freed once.
    unsafe { spanguard_tracer_free(parent) };
    // The parent's shutdown may have sent the dump already: into "sink".
    let next = tracer(&base, "recovered", 0);
    assert_eq!(spanguard_shutdown(next, 10_000) as u32, 0);
    // SAFETY: made above, freed once.
    unsafe { spanguard_tracer_free(next) };
    let all = spans_in(&base.join("sink")) + spans_in(&base.join("recovered"));
    let want = if signal == libc::SIGSEGV {
        "exit 42".to_string()
    } else {
        format!("signal {signal}")
    };
    assert_eq!(ended, want, "how the child ended");
    assert_eq!(
        all,
        ENDED + 1,
        "the child's spans, once each ({delivered} delivered by the child)"
    );
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn a_forked_childs_spans_survive_the_signal_that_ends_it() {
    if let Some(case) = std::env::var_os(CASE) {
        run_case(&case.to_string_lossy());
        return;
    }
    let cases = [
        libc::SIGTERM.to_string(),
        libc::SIGSEGV.to_string(),
        "small stack".to_string(),
    ];
    for case in cases {
        let out = std::process::Command::new(std::env::current_exe().expect("this binary"))
            .args([
                "--exact",
                "a_forked_childs_spans_survive_the_signal_that_ends_it",
                "--nocapture",
            ])
            .env(CASE, &case)
            .output()
            .expect("run the case");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "case {case}: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
