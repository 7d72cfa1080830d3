//! Deals with every live tracer at once, each on a thread of its own (the
//! calling thread takes one), for the exit hook and the signal watchdog:
//! one whose backend does not answer, or whose exporter is stuck, holds up
//! only itself, not every tracer after it. Threads and joins are fine
//! there: the exit hook runs on the exiting thread, the watchdog on its
//! own thread (the signal handler only wakes it).

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::pipeline::Pipeline;

/// Runs `each` on every live pipeline at once and returns when every call
/// has returned. A call that panics is caught (the others go on). A
/// pipeline no thread could be started for is dealt with on this thread
/// after the first, within whatever deadline `each` keeps.
pub fn for_each_at_once(each: impl Fn(&Pipeline) + Sync) {
    // Each kept alive until every call has returned, whatever another
    // thread frees meanwhile.
    let pipelines = crate::registry::all();
    let Some((first, rest)) = pipelines.split_first() else {
        return;
    };
    let run = |p: &Pipeline| {
        let _ = catch_unwind(AssertUnwindSafe(|| each(p)));
    };
    std::thread::scope(|scope| {
        let mut not_started = Vec::new();
        for p in rest {
            let builder = crate::config::thread_builder("spanguard-flush");
            let started = super::shield::spawn_scoped_shielded(scope, builder, move || run(p));
            if started.is_err() {
                not_started.push(p);
            }
        }
        run(first);
        for p in not_started {
            run(p);
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, mpsc};
    use std::time::Duration;

    use super::*;
    use crate::config::TracerConfig;
    use crate::tracer::Tracer;

    /// A tracer freed by another thread while the exit hook (or the signal
    /// watchdog) deals with it, as a program freeing its tracer on one
    /// thread while another calls exit() does: its pipeline stays valid
    /// until the hook is done with it. It was freed under the hook (when
    /// its exporter, ending, dropped the last reference), which then read
    /// and wrote freed memory for the rest of the shutdown.
    #[test]
    fn a_tracer_freed_meanwhile_stays_valid_until_the_hook_is_done() {
        let dir = std::env::temp_dir().join(format!("sg-at-once-freed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tracer = Tracer::new(TracerConfig {
            endpoint: None,
            sink_dir: dir.join("spans"),
            spool_dir: dir.join("spool"),
            install_signal_handlers: false,
            ..TracerConfig::default()
        })
        .expect("tracer");
        let id = crate::registry::reserve().expect("a number");
        crate::registry::publish(id, tracer.pipeline());
        let ours = Arc::as_ptr(tracer.pipeline()) as usize;
        let weak = Arc::downgrade(tracer.pipeline());
        let (entered, in_hook) = mpsc::channel::<()>();
        let (freed, was_freed) = mpsc::channel::<()>();
        let freer = std::thread::spawn(move || {
            in_hook.recv().expect("the hook runs");
            // As spanguard_tracer_free does: the number, then the tracer
            // (shut down, its exporter gone: its last reference).
            crate::registry::release(id);
            tracer.shutdown(Duration::from_secs(10)).expect("shut down");
            drop(tracer);
            freed.send(()).expect("told");
        });
        let was_freed = Mutex::new(was_freed);
        let alive_after = AtomicBool::new(false);
        for_each_at_once(|p| {
            if std::ptr::from_ref(p) as usize != ours {
                return; // another test's
            }
            entered.send(()).expect("told");
            was_freed.lock().expect("lock").recv().expect("freed");
            alive_after.store(weak.upgrade().is_some(), Ordering::SeqCst);
        });
        freer.join().expect("freer");
        assert!(alive_after.load(Ordering::SeqCst), "freed under the hook");
        assert!(weak.upgrade().is_none(), "let go once the hook is done");
        std::fs::remove_dir_all(&dir).ok();
    }
}
