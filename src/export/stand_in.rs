//! An exporter stuck for good inside one request, where no timeout of
//! ours reaches: a forked child's first TLS connect waiting on OpenSSL's
//! random-number lock that its parent held at the fork (OpenSSL 3 has no
//! fork handler), a resolver that blocks, a hung file system. Its flushes
//! timed out, the spans recorded after it waited in the slots until a
//! shutdown dumped them (or the slots ran out), and nothing said why.
//!
//! The exporter's delivery marks each request (`RequestMarks`,
//! `pipeline::RequestWatch`). A flush, a shutdown, or a recording thread
//! out of slots that finds it inside one request for longer than the
//! request timeout and a grace takes the queue from it and starts a
//! stand-in exporter (`Exporter::stand_in`), which spools every span the
//! stuck one has not taken, counted spooled with the cause said (the
//! stderr line, `spanguard why`, the error callback's BatchSpooled), for
//! the next process or `spanguard replay` to send. It sends nothing
//! itself: sending is what the stuck thread is stuck in.
//!
//! The batch inside the stuck request stays with the thread that holds
//! it, the only one with its bytes: if its request returns, it settles
//! that batch as always (delivered, or spooled), then ends without taking
//! another span. So it is sent once. Until then a flush is not done
//! (`RequestWatch::replaced_one_holds_a_batch`): those spans are neither
//! delivered nor on disk. Should the process end first, a shutdown leaves
//! it as it leaves any stuck exporter (the crash dump).
//!
//! The file sink (no endpoint) gets no stand-in, although its write can
//! get stuck where no timeout reaches and its requests are marked as any
//! (`Delivery::send`): write(2) or open(2) on a hard-mounted NFS
//! directory whose server is gone, or a FUSE directory whose daemon hangs,
//! waits uninterruptibly. (A FIFO planted at the sink file's name is moved
//! aside, never opened; a full disk answers ENOSPC at once, and the batch
//! is spooled as any failed write.) A stand-in would not help it yet: the
//! spool is by default the sink's sibling (`$XDG_STATE_HOME/spanguard/`),
//! on the same hung file system, so the stand-in would get stuck in its
//! first spool write; and a file-sink process never reads the spool back
//! (`Diagnostics::spool_not_read_back`), while the crash dump it leaves
//! today is recovered into the sink at the next start. Covering it needs
//! the sink's spool files read back into the sink, and a spool checked
//! to be on another file system than the sink.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::pipeline::{EXPORTER_STOP_GRACE, Pipeline};

use super::transport::{Accepted, BodyFormat, SendError, Transport};

/// How long the exporter may be inside one request before it is deemed
/// stuck: its request timeout, and the grace a shutdown gives a stopping
/// exporter (curl's progress callback, which aborts a request, runs at
/// least once a second).
pub fn stuck_after(p: &Pipeline) -> Duration {
    p.config.request_timeout.saturating_add(EXPORTER_STOP_GRACE)
}

/// Why the stand-in spools: the words a user reads (stderr, `spanguard
/// why`, the error callback), with where the stuck thread waits when the
/// kernel says (`wchan`).
pub fn stuck_reason(inside: Duration, target: &str, tid: i32) -> String {
    let wchan = std::fs::read_to_string(format!("/proc/self/task/{tid}/wchan"))
        .ok()
        .filter(|w| !w.is_empty() && w != "0");
    let waiting = match wchan {
        Some(w) if w.contains("futex") => format!(" (its thread {tid} waiting on a lock: {w})"),
        Some(w) => format!(" (its thread {tid} waiting in {w})"),
        None => String::new(),
    };
    format!(
        "the exporter was stuck in a request to {target} for {:.1} s, past its timeout{waiting}; \
         kept for the next process or `spanguard replay` by a stand-in exporter",
        inside.as_secs_f64()
    )
}

/// Marks each request of the exporter's delivery for a watcher
/// (`RequestWatch`; `Delivery::send`, which every request goes through).
/// Once replaced, it sends nothing more: what its exporter still holds of
/// its batch (the parts of a split request) is spooled by it.
pub struct RequestMarks {
    pipeline: Arc<Pipeline>,
    replaced: Arc<AtomicBool>,
}

impl RequestMarks {
    /// Marks for `pipeline`'s watch; `replaced` is set when a stand-in
    /// took over.
    pub fn new(pipeline: Arc<Pipeline>, replaced: Arc<AtomicBool>) -> RequestMarks {
        RequestMarks { pipeline, replaced }
    }

    /// `send`'s answer, the request marked while it runs.
    pub fn marked(
        &self,
        send: impl FnOnce() -> Result<Accepted, SendError>,
    ) -> Result<Accepted, SendError> {
        if self.replaced.load(Ordering::Relaxed) {
            return Err(SendError::Transient {
                reason: "a stand-in exporter took over from this stuck one".to_string(),
                retry_after: None,
            });
        }
        let watch = &self.pipeline.signal.request_watch;
        let seq = watch.begin();
        let sent = send();
        if !watch.end(seq) {
            self.replaced.store(true, Ordering::Relaxed);
        }
        sent
    }
}

/// The stand-in's transport: never sent through (its delivery keeps
/// every request: `Delivery::keep_everything`), it names the stuck one's
/// target and sender, so that its spool files are the ones that sender
/// (the next process set up alike, `spanguard replay`) takes.
pub struct StandInTransport {
    pub target: String,
    pub sender: Option<u64>,
    pub refusal: Option<u64>,
}

impl Transport for StandInTransport {
    fn send(&mut self, _: &[u8], _: BodyFormat, _: bool) -> Result<Accepted, SendError> {
        Err(SendError::Transient {
            reason: "a stand-in exporter sends nothing".to_string(),
            retry_after: None,
        })
    }

    fn describe(&self) -> String {
        self.target.clone()
    }

    fn sender_fingerprint(&self) -> Option<u64> {
        self.sender
    }

    fn refusal_fingerprint(&self) -> Option<u64> {
        self.refusal
    }
}
