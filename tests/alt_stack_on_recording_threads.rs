//! With signal handlers installed, every thread that records spans has an
//! alternate signal stack, so that a stack overflow on it still runs the
//! crash handler (tests/python/test_kill.py's "stack overflow" cases need
//! it end to end). The check is made where a thread's begin leaves the
//! slot cache's fast path (`slot_cache::take`), not on every begin: these
//! ask that it is made on a thread's first span, stays through the spans
//! that follow (refills included), and is made for a tracer with handlers
//! on even when the thread recorded into one without them before.

use spanguard::config::{Protocol, TracerConfig};
use spanguard::tracer::{Parent, Tracer};

fn tracer(name: &str, handlers: bool) -> Tracer {
    let dir = std::env::temp_dir().join(format!("sg-alt-stack-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Tracer::new(TracerConfig {
        protocol: Protocol::HttpJson,
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: handlers,
        ..TracerConfig::default()
    })
    .expect("tracer")
}

/// Whether this thread has an alternate signal stack.
fn has_alt_stack() -> bool {
    // SAFETY: only reads this thread's setting into a local.
    unsafe {
        let mut current: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(std::ptr::null(), &mut current) == 0
            && current.ss_flags & libc::SS_DISABLE == 0
    }
}

/// Runs `f` on a thread made by pthread_create, as a C program's are:
/// Rust's own threads get an alternate stack from the standard library
/// (its stack overflow message), which would hide a missing one here.
fn on_c_thread(f: &(dyn Fn() + Sync)) {
    extern "C" fn run(arg: *mut libc::c_void) -> *mut libc::c_void {
        // SAFETY: `arg` is the `&&dyn Fn` below, alive until the join.
        let f = unsafe { &*(arg as *const &(dyn Fn() + Sync)) };
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok();
        ok as usize as *mut libc::c_void
    }
    let arg: *const &(dyn Fn() + Sync) = &f;
    // SAFETY: the thread is joined before `f` goes out of scope.
    unsafe {
        let mut thread: libc::pthread_t = std::mem::zeroed();
        assert_eq!(
            libc::pthread_create(&mut thread, std::ptr::null(), run, arg as *mut _),
            0
        );
        let mut ok = std::ptr::null_mut();
        assert_eq!(libc::pthread_join(thread, &mut ok), 0);
        assert!(!ok.is_null(), "the thread's checks failed (see above)");
    }
}

fn record(t: &Tracer, spans: usize) {
    for _ in 0..spans {
        let (s, _) = t.begin(b"op", Parent::None, 1).expect("begin");
        t.end(s, 0).expect("end");
    }
}

#[test]
fn a_recording_thread_has_an_alternate_stack_from_its_first_span_on() {
    let with = tracer("with", true);
    let without = tracer("without", false);
    on_c_thread(&|| {
        assert!(!has_alt_stack(), "a new thread has none yet");
        record(&with, 1);
        assert!(has_alt_stack(), "after its first span");
        // Past several refills of its slot cache.
        record(&with, 1000);
        assert!(has_alt_stack(), "after a thousand spans");
    });
    on_c_thread(&|| {
        // Spans of a tracer without handlers first: no alternate stack
        // (nothing would use it), and this thread's slot cache for that
        // tracer is warm.
        record(&without, 1000);
        assert!(!has_alt_stack(), "a tracer without handlers sets none");
        record(&with, 1);
        assert!(has_alt_stack(), "its first span with handlers on");
        record(&without, 100);
        record(&with, 100);
        assert!(has_alt_stack());
    });
    let _ = with.shutdown(std::time::Duration::from_secs(1));
    let _ = without.shutdown(std::time::Duration::from_secs(1));
}
