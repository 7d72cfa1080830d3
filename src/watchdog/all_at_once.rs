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
    let pipelines = crate::registry::all();
    let Some((&first, rest)) = pipelines.split_first() else {
        return;
    };
    let run = |p: &Pipeline| {
        let _ = catch_unwind(AssertUnwindSafe(|| each(p)));
    };
    std::thread::scope(|scope| {
        let mut not_started = Vec::new();
        for &p in rest {
            let builder = std::thread::Builder::new().name("spanguard-flush".to_string());
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
