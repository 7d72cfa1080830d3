//! Who notices an exporter stuck inside one request (`export::stand_in`)
//! and starts its stand-in: a flush, a shutdown, a begin out of slots,
//! and, for a program that calls none of them (a long-lived worker that
//! records a few spans and idles), the watchdog thread, which wakes when
//! a request under way would be past its timeout and grace. Asked only by
//! those, its spans sat in the slots until the shutdown's crash dump, or
//! for good under SIGKILL without the flight recorder.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::export::exporter::{Exporter, ExporterEnded};
use crate::export::stand_in::{StandInTransport, stuck_after, stuck_reason};
use crate::pipeline::{ExporterEnd, LIFECYCLE_RUNNING, Pipeline};

/// The watchdog's byte (`pipe::ask_watchdog`) for "a tracer was made":
/// it looks at when its exporter could next be stuck. Neither a signal's
/// number (1 to 64) nor the crash handler's requests (0, 0xff).
pub(super) const LOOK_REQUEST: u8 = 0xfe;

/// Starts `exporter`'s thread, whose end a shutdown waits for
/// (`ExporterEnd`), unless a stand-in took over from it.
pub fn spawn_exporter(
    pipeline: &Arc<Pipeline>,
    exporter: Exporter,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let end = ExporterEnd(Arc::clone(pipeline));
    super::shield::spawn_shielded(
        crate::config::thread_builder("spanguard-export"),
        move || {
            if exporter.run() == ExporterEnded::Replaced {
                end.replaced();
            }
        },
    )
}

/// When the exporter has been inside one request for longer than its
/// timeout and a grace (stuck where no timeout reaches: a lock a fork
/// left held in the TLS library, a resolver), starts a stand-in that
/// spools the spans it has not taken (`export::stand_in`); true then.
/// Asked by a flush, a shutdown, a begin that found no free slot, and the
/// watchdog thread (`look_at_every_tracer`): never on the recording
/// path's fast lane. Once a tracer at most.
#[cold]
pub fn stand_in_if_stuck(p: &Arc<Pipeline>) -> bool {
    let Some(for_whom) = &p.stand_in_for else {
        return false;
    };
    let stuck_after = stuck_after(p);
    // Loads alone unless it is stuck: a begin out of slots asks each time.
    if !p.signal.request_watch.looks_stuck(stuck_after) {
        return false;
    }
    // Under the handle's lock, which a shutdown takes to join the
    // exporter: it joins the stand-in, never the stuck thread.
    let Ok(mut slot) = p.exporter_thread.lock() else {
        return false;
    };
    if p.lifecycle() != LIFECYCLE_RUNNING || p.signal.frozen.load(Ordering::Acquire) {
        return false;
    }
    let tid = p.exporter_tid.load(Ordering::Relaxed);
    // Stuck sending a batch of spans ended here (published for a dump),
    // not replaying the spool.
    let holds_batch = !p.in_flight.body.load(Ordering::Acquire).is_null();
    let Some(inside) = p
        .signal
        .request_watch
        .take_over_if_stuck(stuck_after, holds_batch)
    else {
        return false;
    };
    let reason = stuck_reason(inside, &for_whom.target, tid);
    let transport = StandInTransport {
        target: for_whom.target.clone(),
        sender: for_whom.sender,
        refusal: for_whom.refusal,
    };
    let exporter = Exporter::stand_in(Arc::clone(p), transport, reason);
    match spawn_exporter(p, exporter) {
        // The stuck thread's handle is dropped: detached, it ends on its
        // own if its request ever returns.
        Ok(handle) => *slot = Some(handle),
        Err(e) => {
            // No thread: the spans stay in the slots (the stuck one takes
            // none now), for the shutdown's dump, as before.
            crate::export::diagnostics::write_to_stderr_if_room(
                format!(
                    "spanguard: error: the exporter is stuck in a request and no stand-in \
                     thread could be started to spool its spans: {e}\n"
                )
                .as_bytes(),
            );
        }
    }
    true
}

/// On the watchdog thread, when its wait ran out: starts the stand-in of
/// every tracer whose exporter is stuck in a request, then says how long
/// to wait before looking again (None: no tracer could get stuck, wait
/// for a byte). A request that has not begun yet is stuck no sooner than
/// its timeout and grace from now, so a look that often, and one at the
/// moment a request under way would be stuck, finds every stuck exporter
/// within its timeout and grace of its getting stuck: one wake-up each
/// (10 s + 1.5 s by default) while they are idle, none for the file sink.
pub(super) fn look_at_every_tracer() -> Option<Duration> {
    let now = crate::span::clock::monotonic_ns();
    let mut next: Option<u64> = None;
    for p in crate::registry::all() {
        if p.stand_in_for.is_none() || p.lifecycle() != LIFECYCLE_RUNNING {
            continue;
        }
        let after = stuck_after(&p);
        let watch = &p.signal.request_watch;
        let due = match watch.stuck_at_ns(after) {
            Some(at) if at < now => {
                // Stuck, and no stand-in could start (its thread): look
                // again in a while.
                if !stand_in_if_stuck(&p) && watch.looks_stuck(after) {
                    now.saturating_add(RETRY_NS)
                } else {
                    now.saturating_add(duration_ns(after))
                }
            }
            Some(at) => at.saturating_add(1),
            None => now.saturating_add(duration_ns(after)),
        };
        next = Some(next.map_or(due, |n| n.min(due)));
    }
    next.map(|at| Duration::from_nanos(at.saturating_sub(now)))
}

/// How soon the watchdog looks again at a stuck exporter whose stand-in
/// could not start.
const RETRY_NS: u64 = 100_000_000;

fn duration_ns(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

/// Tells the watchdog thread a tracer was made, so that it looks at when
/// its exporter could get stuck (it waits for nothing else while no
/// tracer could). Nothing when this process has no watchdog.
pub fn look_at_new_tracer() {
    if super::pipe::pipe_is_this_process() {
        super::pipe::ask_watchdog(LOOK_REQUEST);
    }
}
