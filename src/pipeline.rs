//! State shared by the threads that record spans and the exporter thread:
//! the slab, the counters, and the signalling between them.

use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::buffer::dump::CrashFile;
use crate::buffer::payload_pool::PayloadPool;
use crate::buffer::slab::{STATE_OPEN, STATE_WRITING, SpanSlab, header_generation, header_state};
use crate::config::TracerConfig;
use crate::span::record::{MARK_INTERRUPTED, MARK_UNENDED};
use crate::stats::Stats;

pub(crate) const LIFECYCLE_RUNNING: u32 = 0;
pub(crate) const LIFECYCLE_SHUTTING_DOWN: u32 = 1;
pub(crate) const LIFECYCLE_SHUT_DOWN: u32 = 2;
/// The process is dying (a fatal signal): recording calls fail so that no
/// span is reported ended after its tracer's last dump.
pub(crate) const LIFECYCLE_FROZEN: u32 = 3;

/// Why a shutdown ends the spans still open, which says how they are
/// marked: the same event must read the same way whichever part of the
/// process saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenSpansEnd {
    /// The program shut down with spans it never ended:
    /// `spanguard.unended`, counted in `spans_unended_at_shutdown`.
    Unended,
    /// A termination signal (this number) that a binding's own handler
    /// caught is stopping the process: `spanguard.interrupted` and
    /// `spanguard.signal`, as the watchdog's dump marks the spans it finds
    /// open, counted in `spans_interrupted_at_shutdown`. Not counted as
    /// unended: the program forgot nothing. Marked
    /// unended, a Node agent's span open at `docker stop` read as a bug in
    /// the agent's code, where a Python agent's read "interrupted by
    /// SIGTERM".
    Interrupted(i16),
}

/// What the exporter tells the application about (the error callback).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExportEvent {
    /// A batch failed for good; its spans are lost.
    BatchFailed = 1,
    /// A batch was written to the spool after failing.
    BatchSpooled = 2,
    /// The spool's cap made it delete older batches; their spans are lost.
    SpoolOverflow = 3,
    /// A spooled batch was sent and deleted.
    BatchReplayed = 4,
    /// The backend rejected some spans of an accepted batch.
    SpansRejected = 5,
    /// The exporter thread caught a panic (an internal bug); the spans it
    /// was working on are counted lost, and it goes on exporting.
    ExporterPanicked = 6,
    /// A file in the spool directory could not be used and was renamed
    /// `*.unreadable`, unread.
    FileSetAside = 7,
    /// The backend accepted every span of a request with a warning (an
    /// OTLP partial success rejecting none, with a message).
    BackendWarning = 8,
    /// A variable was ignored: a value spanguard cannot use, or a name it
    /// does not read.
    SettingIgnored = 9,
    /// Spans were not recorded: every span slot was taken.
    BufferFull = 10,
    /// Values or resource attributes were cut to fit a limit before
    /// sending.
    ValuesCut = 11,
    /// Values waited for the payload pool's chunks: their recording calls
    /// stalled (counted in `payload_waits`).
    ValuesWaited = 12,
    /// A spool file's header miscounted its spans: counted as its body
    /// holds them.
    FileMiscounted = 13,
    /// Spans of a dead process were recovered from its crash dump or
    /// flight file (counted in `recovered_spans`).
    SpansRecovered = 14,
}

/// How long past its deadline a shutdown waits for the exporter to stop
/// before it leaves it running (`Pipeline::shutdown`): a request in flight
/// is abandoned within a second of the deadline (curl's progress callback
/// runs at least once a second), then its batch is spooled.
pub const EXPORTER_STOP_GRACE: Duration = Duration::from_millis(1500);

/// What a shutdown does with a pipeline whose exporter it left stuck
/// (frozen, taking no more spans), told whether some span was not dealt
/// with: the caller's, as the crash dump and stderr are not shared state's
/// to know (`watchdog::crash::leave_stuck_exporter`).
pub type LeftStuck = fn(&Pipeline, bool);

/// Held by the exporter thread for its whole body: dropped as the body
/// returns or unwinds, it tells a waiting shutdown (`await_exporter_end`).
/// Its Arc keeps the pipeline alive until then too.
pub struct ExporterEnd(pub Arc<Pipeline>);

impl ExporterEnd {
    /// For an exporter a stand-in replaced (`RequestWatch`): its end tells
    /// no one, as the stand-in's will.
    pub fn replaced(self) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: read once from a value that is never dropped, so the Arc
        // is dropped once, here, and `mark_exporter_ended` is not called.
        drop(unsafe { std::ptr::read(&this.0) });
    }
}

impl Drop for ExporterEnd {
    fn drop(&mut self) {
        self.0.signal.mark_exporter_ended();
    }
}

/// The exporter's request under way, watched from other threads: one
/// stuck inside it for good where no timeout reaches (a lock in a TLS
/// library a fork left held, a resolver that blocks) is replaced by a
/// stand-in that spools what it has not taken (`export::stand_in`).
/// The exporter marks each request (`begin`, `end`), two atomic stores
/// a request, not on the recording path. Who owns what is decided by one
/// compare-exchange on `state`: whichever of the exporter's `end` and a
/// watcher's `take_over_if_stuck` moves it out of IN_REQUEST first wins.
/// The batch inside the request stays the exporter's either way (it alone
/// holds its bytes, and settles it when the request returns: delivered
/// once, or spooled); what a replaced exporter gives up is the queue.
#[derive(Default)]
pub struct RequestWatch {
    /// The request's number (<< 2) and its phase (`WATCH_*`).
    state: AtomicU64,
    /// When the request under way began (`clock::monotonic_ns`).
    since_ns: AtomicU64,
    /// The replaced exporter holds a batch of spans ended here (it was
    /// stuck sending one), until it has settled it (`let_go`).
    holding: AtomicBool,
    /// The exporter's outcome record and when it started
    /// (`export::outcome`): a stand-in carries it on.
    record: Mutex<Option<(std::path::PathBuf, u64)>>,
}

const WATCH_IDLE: u64 = 0;
const WATCH_IN_REQUEST: u64 = 1;
const WATCH_REPLACED: u64 = 2;
const WATCH_PHASE: u64 = 3;

impl RequestWatch {
    /// The exporter begins a request; its number, for `end`.
    pub fn begin(&self) -> u64 {
        let seq = (self.state.load(Ordering::Relaxed) >> 2).wrapping_add(1);
        self.since_ns
            .store(crate::span::clock::monotonic_ns(), Ordering::Relaxed);
        // SeqCst: the watcher reads `since_ns` after this (of this request
        // or a later one: never older than it, so never stuck too soon).
        self.state
            .store(seq << 2 | WATCH_IN_REQUEST, Ordering::SeqCst);
        seq
    }

    /// The exporter's request `seq` returned: false when a watcher took
    /// the queue from it meanwhile (it takes no span from then on).
    pub fn end(&self, seq: u64) -> bool {
        let ended = self.state.compare_exchange(
            seq << 2 | WATCH_IN_REQUEST,
            seq << 2 | WATCH_IDLE,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        if ended.is_err() {
            // Replaced: no one is stuck in a request any more.
            self.state.store(seq << 2 | WATCH_IDLE, Ordering::SeqCst);
        }
        ended.is_ok()
    }

    /// Whether the exporter has been inside one request for longer than
    /// `longer_than`: two loads, for callers to look before they lock.
    pub fn looks_stuck(&self, longer_than: Duration) -> bool {
        self.state.load(Ordering::SeqCst) & WATCH_PHASE == WATCH_IN_REQUEST
            && crate::span::clock::monotonic_ns()
                .saturating_sub(self.since_ns.load(Ordering::Relaxed))
                > longer_than.as_nanos().min(u64::MAX as u128) as u64
    }

    /// When (`clock::monotonic_ns`) the request under way will have been
    /// under way for `longer_than`; None when the exporter is in none. For
    /// a watcher that wakes then (`watchdog::stuck_exporter`).
    pub fn stuck_at_ns(&self, longer_than: Duration) -> Option<u64> {
        (self.state.load(Ordering::SeqCst) & WATCH_PHASE == WATCH_IN_REQUEST).then(|| {
            self.since_ns
                .load(Ordering::Relaxed)
                .saturating_add(longer_than.as_nanos().min(u64::MAX as u128) as u64)
        })
    }

    /// When the exporter has been inside one request for longer than
    /// `longer_than`: takes the queue from it (at most once a tracer: the
    /// stand-in sends nothing) and says for how long it has been there;
    /// None otherwise. `holds_batch`: it is stuck sending spans ended
    /// here (not replaying the spool).
    pub fn take_over_if_stuck(&self, longer_than: Duration, holds_batch: bool) -> Option<Duration> {
        let state = self.state.load(Ordering::SeqCst);
        if state & WATCH_PHASE != WATCH_IN_REQUEST {
            return None;
        }
        let since = self.since_ns.load(Ordering::Relaxed);
        let inside = Duration::from_nanos(crate::span::clock::monotonic_ns().saturating_sub(since));
        if inside <= longer_than {
            return None;
        }
        self.state
            .compare_exchange(
                state,
                state & !WATCH_PHASE | WATCH_REPLACED,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .ok()?;
        self.holding.store(holds_batch, Ordering::Release);
        Some(inside)
    }

    /// Whether a replaced exporter still holds a batch no one else has
    /// (inside its request, or settling it).
    pub fn replaced_one_holds_a_batch(&self) -> bool {
        self.holding.load(Ordering::Acquire)
    }

    /// The replaced exporter has settled what it held, and ends.
    pub fn let_go(&self) {
        // Release: its counts of that batch are seen by whoever sees this.
        self.holding.store(false, Ordering::Release);
    }

    /// The exporter's outcome record is at `path`, started at `started`.
    pub fn note_record(&self, path: &std::path::Path, started: u64) {
        if let Ok(mut record) = self.record.lock() {
            *record = Some((path.to_path_buf(), started));
        }
    }

    /// The replaced exporter's outcome record, for its stand-in.
    pub fn record(&self) -> Option<(std::path::PathBuf, u64)> {
        self.record.lock().ok().and_then(|r| r.clone())
    }
}

/// The transport's target, sender and refusal fingerprints as read at the
/// tracer's start, for a stand-in's spool files (`export::stand_in`).
pub struct StandInFor {
    pub target: String,
    pub sender: Option<u64>,
    pub refusal: Option<u64>,
}

/// How a flush (or shutdown) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushOutcome {
    /// Every span ended before the call was delivered (or refused for good,
    /// which is counted and reported).
    Delivered,
    /// Done, but some of those spans were only written to the spool: they
    /// are safe on disk and will be sent when the backend answers.
    Spooled,
    /// Time ran out first; the export goes on in the background.
    TimedOut,
}

impl FlushOutcome {
    /// Whether the flush finished (delivered or spooled).
    pub fn is_done(self) -> bool {
        self != FlushOutcome::TimedOut
    }

    /// The weaker of two outcomes of one call's steps.
    fn and(self, other: FlushOutcome) -> FlushOutcome {
        use FlushOutcome::*;
        match (self, other) {
            (TimedOut, _) | (_, TimedOut) => TimedOut,
            (Spooled, _) | (_, Spooled) => Spooled,
            _ => Delivered,
        }
    }
}

/// The application's error callback: a C function and its pointer.
pub type EventCallback = Box<dyn Fn(ExportEvent, &str) + Send + Sync>;

/// The callback as the slot keeps it: shared, so the exporter calls it
/// without holding the lock that replaces it.
pub type SharedCallback = std::sync::Arc<dyn Fn(ExportEvent, &str) + Send + Sync>;

/// The error callback and the rules for replacing it while it may run.
/// The exporter takes `calling` for each call and copies the callback out
/// of `current`, which is locked only for that copy; a replacement waits on
/// `calling` for a call in progress, unless it is made from inside that
/// very call (a one-shot callback removing itself), which would otherwise
/// wait for itself. So after a replacement returns (on another thread) the
/// old callback neither runs nor starts, and from inside a call it returns
/// at once. A callback set where there was none waits for nothing: a call
/// in progress then is one of the new callback (the exporter tells held
/// news, an ignored setting, the moment one is set), and waiting for it
/// deadlocked a setter holding a lock that callback takes: Python's
/// binding sets its callback holding the GIL, and its callback takes the
/// GIL (CI, a zero-code agent with an ignored setting: hung 120 s).
#[derive(Default)]
pub struct CallbackSlot {
    /// Read by a forked child's tracer too (`Tracer::given_at_run_time`).
    pub(crate) current: Mutex<Option<SharedCallback>>,
    calling: Mutex<()>,
    /// The thread running a call (its kernel id), 0 when none.
    calling_thread: AtomicI32,
    /// Calls held back (`hold`) until `let_out`: the exporter's, while
    /// what they tell of is not yet on disk everywhere it must be.
    held: Mutex<Option<Vec<(ExportEvent, String)>>>,
}

/// At most this many calls are held at once (a recovered batch makes a
/// few); past it, one is dropped rather than memory grown without bound.
const HELD_CALLS_MAX: usize = 64;

fn this_thread() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

impl CallbackSlot {
    pub fn set(&self, cb: Option<EventCallback>) {
        self.set_shared(cb.map(SharedCallback::from));
    }

    /// `set` for a callback as a slot keeps it: a forked child's tracer
    /// gets its parent's (`Tracer::given_at_run_time`).
    pub fn set_shared(&self, cb: Option<SharedCallback>) {
        let old = {
            let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *current, cb)
        };
        // Relaxed: only equality with this thread's own id matters, and
        // this thread wrote it if it is equal.
        if old.is_some() && self.calling_thread.load(Ordering::Relaxed) != this_thread() {
            drop(self.calling.lock().unwrap_or_else(|p| p.into_inner()));
        }
        drop(old);
    }

    /// Removes the callback without waiting for a call in progress (which
    /// keeps its own copy): for a shutdown that leaves the exporter stuck
    /// in that very call. Nothing calls it from then on.
    pub fn detach(&self) {
        let old = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(old);
    }

    /// Whether a callback is set now: news kept for the first callback
    /// (`Diagnostics::setting_ignored`) waits until one is.
    pub fn is_set(&self) -> bool {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Holds every call from now until `let_out`. For recovery, which
    /// tells of a dead process's batch (spooled, delivered) before it marks
    /// the batch sent in that process's file: a callback that blocked
    /// there (or a kill while it ran) left the batch both in the spool and
    /// unmarked in the file, and the next recoverer sent it twice
    /// (tests/c/test_exit_many_stuck.c). Held, the marks are on disk first.
    pub fn hold(&self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get_or_insert_with(Vec::new);
    }

    /// Makes the calls held since `hold`, in order, and stops holding.
    pub fn let_out(&self) {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner()).take();
        for (event, message) in held.into_iter().flatten() {
            self.call_now(event, &message);
        }
    }

    /// Calls the callback, if any, on this thread (or holds the call:
    /// `hold`).
    pub fn call(&self, event: ExportEvent, message: &str) {
        {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(held) = held.as_mut() {
                if held.len() < HELD_CALLS_MAX {
                    held.push((event, message.to_string()));
                }
                return;
            }
        }
        self.call_now(event, message);
    }

    fn call_now(&self, event: ExportEvent, message: &str) {
        let _calling = self.calling.lock().unwrap_or_else(|p| p.into_inner());
        let cb = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(cb) = cb {
            self.calling_thread.store(this_thread(), Ordering::Relaxed);
            // The callback is the application's code: a panic in a Rust
            // closure must not kill the exporter.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(event, message)));
            self.calling_thread.store(0, Ordering::Relaxed);
        }
    }
}

pub struct Pipeline {
    pub config: TracerConfig,
    pub slab: SpanSlab,
    /// Where spans keep what does not fit their slots.
    pub pool: PayloadPool,
    pub stats: Stats,
    pub lifecycle: AtomicU32,
    pub signal: ExportSignal,
    pub callback: CallbackSlot,
    /// Where the crash handler writes this tracer's spans (signal handlers
    /// on, flight recorder off).
    pub crash_file: Option<CrashFile>,
    /// The flight recorder's file, when the slab lives in one.
    pub flight: Option<FlightFile>,
    /// The encoded batch being sent right now, for the crash handler.
    pub in_flight: InFlightBatch,
    /// The exporter thread, joined by `shutdown`.
    pub exporter_thread: Mutex<Option<JoinHandle<()>>>,
    /// What a stand-in for an exporter stuck in a request names its spool
    /// files for (`export::stand_in`). None for the file sink, whose spool
    /// nothing replays.
    pub stand_in_for: Option<StandInFor>,
    /// The exporter thread's kernel id (0 until it runs), so the crash
    /// handler knows when the crashing thread is the one it would wait for.
    pub exporter_tid: AtomicI32,
    /// The thread that froze recording and will thaw it if the process
    /// lives on (its kernel id); 0 when a crash froze it for good.
    pub frozen_by: AtomicI32,
    /// The lifecycle `thaw` puts back (running or shutting down).
    pub frozen_from: AtomicU32,
    /// `end` looks at the queue's length when its slot's number plus
    /// generation has none of these bits set (`end_check_mask`).
    pub end_check_mask: u32,
    /// One more than the exporter's take count (`SpanSlab::exporter_taken`)
    /// when a begin last waited for a slot in vain (0: never): until the
    /// exporter takes spans again, waiting cannot help, and a begin that
    /// finds the slots full does not wait (see `Tracer::take_slot_when_full`).
    pub full_wait_in_vain_at: std::sync::atomic::AtomicU64,
    /// Begins waiting for a free slot now (`Tracer::take_slot_when_full`),
    /// for a test to start a shutdown once one is past its lifecycle
    /// check and waiting (`Tracer::begins_waiting_for_slot_for_test`).
    /// Written on that slow path only.
    pub full_waiters: AtomicU32,
    /// Rests the exporter took for its CPU cap (`Exporter::throttle`), for
    /// a test that no begin waits out a rest
    /// (`Tracer::exporter_rests_for_test`). Written after a rest only.
    pub rests_taken: AtomicU64,
    /// Of those, the rests that ran their planned length with a begin
    /// waiting for a slot as they ended.
    pub rests_run_out_over_a_waiter: AtomicU64,
    /// The rests' planned lengths, in all (ns): against
    /// `exporter_throttled_ns`, the rests taken.
    pub rests_planned_ns: AtomicU64,
    /// Resource attributes set at run time over the configured ones
    /// (`Tracer::set_resource`), the last set given: the exporter reads
    /// them at its next batch (`resource_changed` says there is a new
    /// set), and a forked child's tracer starts with them
    /// (`Tracer::given_at_run_time`).
    pub resource_given: Mutex<Option<Vec<(String, crate::config::ResourceValue)>>>,
    /// Instrumentation scopes given attributes (`Tracer::set_scope_attributes`),
    /// the whole table, which the exporter copies when `resource_changed`.
    pub scope_table: Mutex<Vec<ScopeGiven>>,
    /// Set by `set_resource` and `set_scope_attributes`.
    pub resource_changed: AtomicBool,
}

/// An instrumentation scope (its name, version and schema URL, as spans
/// are grouped) and the attributes its OpenTelemetry tracer was given.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeGiven {
    pub name: String,
    pub version: String,
    pub schema_url: String,
    pub attributes: Vec<(String, crate::config::ResourceValue)>,
}

/// One end in a power of two up to 16 looks whether a batch is ready: the
/// batch size over 32, rounded down to a power of two; as a mask. Fixed by
/// the configuration, so computed once rather than on every end.
pub fn end_check_mask(max_export_batch_size: u32) -> u32 {
    (1u32 << (max_export_batch_size / 32).clamp(1, 16).ilog2()) - 1
}

/// The batch the exporter is sending. Its slots were already given back, so
/// if the process crashes now the crash handler writes these bytes to the
/// spool. `body` is published last (Release) and cleared first, so a reader
/// that sees it non-null (Acquire) sees the matching length and flags.
#[derive(Default)]
pub struct InFlightBatch {
    pub body: AtomicPtr<u8>,
    pub len: AtomicUsize,
    pub spans: AtomicU32,
    /// Values of it the encoder cut and counted (`Request::cut_counted`),
    /// for the spool file's header.
    pub cut_counted: AtomicU64,
    /// Bit 0: JSON (else protobuf); bit 1: gzipped.
    pub flags: AtomicU32,
}

/// The file the slab is mapped from. Its lock is held while the process
/// lives, so recovery knows a dead owner's file from a live one's.
pub struct FlightFile {
    pub path: std::path::PathBuf,
    pub file: crate::buffer::files::LockedFile,
    /// Known as open here, so that no other part of this process opens
    /// (and closes) it: its record lock would go (`files::OpenHere`).
    /// None when another file had its slot.
    pub here: Option<crate::buffer::files::OpenHere>,
}

impl Pipeline {
    pub fn lifecycle(&self) -> u32 {
        self.lifecycle.load(Ordering::Acquire)
    }

    /// Waits until every span ended before this call is exported (or failed
    /// for good, or spooled), or `timeout` passes; for the application, so
    /// after a thaw (see `await_thaw`). None when the tracer is shut down,
    /// or was shut down while this flush waited (its spans went with the
    /// shutdown's); TimedOut when it is still frozen at `timeout` (a
    /// signal's flush and dump under way, a crash) with spans to wait for:
    /// not shut down, they go out after the thaw (or with the dump).
    pub fn flush_running(&self, timeout: Duration) -> Option<FlushOutcome> {
        let deadline = crate::span::clock::instant_after(Instant::now(), timeout);
        self.await_thaw(deadline);
        match self.lifecycle() {
            LIFECYCLE_SHUT_DOWN => return None,
            // A flush given no time (Go's Flush(0) at the signal) or less
            // than the freeze lasted: it answered "shut down", and the
            // program's next calls on the same tracer succeeded. With
            // nothing to wait for, it answers as when running.
            LIFECYCLE_FROZEN => {
                return Some(self.nothing_to_flush().unwrap_or(FlushOutcome::TimedOut));
            }
            _ => {}
        }
        let outcome = self
            .signal
            .request_flush_unless_gone(deadline.saturating_duration_since(Instant::now()));
        // A stand-in answered (`export::stand_in`), but the exporter it took
        // over from still holds the batch of the request it is stuck in:
        // neither delivered nor on disk, so the flush is not done until
        // that request returns (then settled: delivered, or spooled).
        if outcome.is_some_and(FlushOutcome::is_done) {
            let watch = &self.signal.request_watch;
            while watch.replaced_one_holds_a_batch() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if watch.replaced_one_holds_a_batch() {
                return Some(FlushOutcome::TimedOut);
            }
        }
        // Out of time with nothing to wait for (a flush with no timeout
        // while nothing is pending, as OpenTelemetry SDKs' force_flush
        // answers true then): done, not timed out.
        if outcome == Some(FlushOutcome::TimedOut)
            && let Some(settled) = self.nothing_to_flush()
        {
            return Some(settled);
        }
        outcome
    }

    /// When every span ended so far has been dealt with (delivered,
    /// spooled, refused, left out by the sampler): what a flush answers
    /// then, Spooled while spans spooled since the last answer are still
    /// only in the spool. None while any is still queued or in the
    /// exporter's hands.
    fn nothing_to_flush(&self) -> Option<FlushOutcome> {
        let s = &self.stats;
        // The spans dealt with first, then the spans ended: a span is taken
        // from its queue (counted in `spans_ended_at_least`) before the
        // exporter counts what became of it (Release adds, read here with
        // Acquire), so every span counted here is counted in `ended` too.
        // Read the other way round, a span ended after the first read and
        // sent at once (another thread's queue drained first) could stand
        // in for one still queued, and a flush would say delivered with a
        // span waiting. spooled_spans too: the exporter sets
        // `spooled_not_replayed` before it adds to it, so it is seen set here.
        let settled = [
            &s.spans_exported,
            &s.spooled_spans,
            &s.dropped_export_failed,
            &s.dropped_rejected,
            &s.spans_unsampled,
        ]
        .iter()
        .map(|c| c.load(Ordering::Acquire))
        .sum::<u64>();
        let ended = self.slab.spans_ended_at_least();
        if settled < ended {
            return None;
        }
        Some(
            if self.signal.spooled_not_replayed.load(Ordering::Relaxed) {
                FlushOutcome::Spooled
            } else {
                FlushOutcome::Delivered
            },
        )
    }

    /// Flush, then end and export the spans still open (marked as `open`
    /// says), then stop the exporter, in that order, so no span is lost to
    /// ordering. None when another call shut it down already.
    pub fn shutdown(
        &self,
        timeout: Duration,
        stuck: LeftStuck,
        open: OpenSpansEnd,
    ) -> Option<FlushOutcome> {
        let deadline = crate::span::clock::instant_after(Instant::now(), timeout);
        self.await_thaw(deadline);
        if self
            .lifecycle
            .compare_exchange(
                LIFECYCLE_RUNNING,
                LIFECYCLE_SHUTTING_DOWN,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // Another caller is shutting down (a signal's flush beside the
            // program's own Close, an exit hook beside a watchdog): wait
            // for it, within this call's timeout. Returning at once let the
            // program exit while the open spans were still being exported
            // (Go: FlushOnSignals' shutdown and a graceful Close lost them).
            while self.lifecycle.load(Ordering::Acquire) == LIFECYCLE_SHUTTING_DOWN
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            return None;
        }
        if let OpenSpansEnd::Interrupted(signal) = open {
            self.signal
                .stopping_for_signal
                .store(i32::from(signal), Ordering::Relaxed);
        }
        let left = || deadline.saturating_duration_since(Instant::now());
        // Called on the exporter thread itself: the application's error
        // callback called exit() (the exit hook runs there) or, against
        // its contract, shut the tracer down. Nothing the exporter does
        // can happen while this waits for it: the exit took the whole
        // timeout and the stuck exporter's grace (4.5 s by default) for
        // nothing. It is left stuck at once, as one would be at the end.
        let on_exporter = self.exporter_tid.load(Ordering::Relaxed) == this_thread();
        let mut outcome = FlushOutcome::TimedOut;
        if !on_exporter {
            outcome = self.signal.request_flush_and_wait(left());
        }
        let ended = self.end_open_spans(deadline, open);
        match open {
            OpenSpansEnd::Unended => Stats::add(&self.stats.spans_unended_at_shutdown, ended),
            OpenSpansEnd::Interrupted(_) => {
                Stats::add(&self.stats.spans_interrupted_at_shutdown, ended)
            }
        }
        if !on_exporter {
            outcome = outcome.and(self.signal.request_flush_and_wait(left()));
        }
        // What the exporter spools once stopped (it no longer waits for
        // anything) makes the outcome "spooled" too.
        let spooled_before = self.stats.spooled_spans.load(Ordering::Relaxed);
        let left_ns = left().as_nanos().min(u64::MAX as u128) as u64;
        self.signal.stop_deadline_ns.store(
            crate::span::clock::monotonic_ns().saturating_add(left_ns),
            Ordering::Relaxed,
        );
        // A request still in flight at the deadline is abandoned (its batch
        // spooled), so a backend that never answers holds this up by a
        // second at most past the timeout (curl's progress callback).
        self.signal
            .abort_requests_from(crate::span::clock::monotonic_ns().saturating_add(left_ns));
        // Release: the deadline is read by whoever sees `stop`.
        self.signal.stop.store(true, Ordering::Release);
        self.signal.wake();
        // The exporter stops retrying once `stop` is set, and a request in
        // flight is abandoned at the deadline (within a second: curl's
        // progress callback), so it ends by the deadline plus the grace.
        // One that does not is stuck where nothing of ours cuts it short:
        // the application's error callback blocked, a write to a stderr
        // pipe nobody reads, a resolver that blocks, a hung file system.
        // Joined without a bound, it held the shutdown (a container's
        // SIGTERM hook, a binding's close, the exit hook) for good; it is
        // left running instead, and what it did not deal with goes to
        // the crash dump (`leave_stuck_exporter`).
        let stopped = !on_exporter
            && self
                .signal
                .await_exporter_end(crate::span::clock::instant_after(
                    deadline,
                    EXPORTER_STOP_GRACE,
                ));
        if stopped {
            if let Ok(mut guard) = self.exporter_thread.lock()
                && let Some(handle) = guard.take()
            {
                // It has ended (or is about to return from its body).
                let _ = handle.join();
            }
            // A stand-in stopped (`export::stand_in`), but the exporter it
            // took over from is still inside its request, the batch there
            // its alone: left as a stuck exporter is.
            if self.signal.request_watch.replaced_one_holds_a_batch()
                && self.leave_stuck_exporter(stuck)
            {
                outcome = FlushOutcome::TimedOut;
            }
        } else {
            if !on_exporter {
                Stats::add(&self.stats.exporter_waits_ran_out, 1);
            }
            // Not joined: the JoinHandle stays in the pipeline and is
            // dropped (detaching the thread) with its last Arc, which the
            // thread itself holds.
            if self.leave_stuck_exporter(stuck) {
                outcome = FlushOutcome::TimedOut;
            }
        }
        self.signal.mark_exporter_gone();
        self.lifecycle.store(LIFECYCLE_SHUT_DOWN, Ordering::Release);
        // Out of time for the flushes (a timeout of 0), but the exporter,
        // stopped and joined, dealt with every span on its way out: done,
        // as with a longer timeout (and the crash file goes below). A stuck
        // exporter may still have dealt with every span (stuck in the
        // callback telling of the last batch spooled): done too.
        if outcome == FlushOutcome::TimedOut
            && let Some(settled) = self.nothing_to_flush()
        {
            outcome = settled;
        }
        if self.stats.spooled_spans.load(Ordering::Relaxed) != spooled_before {
            outcome = outcome.and(FlushOutcome::Spooled);
        }
        if outcome.is_done() {
            // Everything is delivered or spooled: nothing left to recover.
            if let Some(c) = &self.crash_file {
                c.remove();
            }
            if let Some(f) = &self.flight {
                let _ = std::fs::remove_file(&f.path);
            }
        }
        Some(outcome)
    }

    /// For a shutdown whose exporter did not stop in time (see `shutdown`):
    /// takes the application's callback from it, stops it from taking more
    /// spans when they go to the crash dump, then hands the pipeline to
    /// `stuck` (`LeftStuck`) with whether some span was not dealt with,
    /// which it also returns.
    fn leave_stuck_exporter(&self, stuck: LeftStuck) -> bool {
        // The shutdown returns and the application may free what its
        // callback uses (its user_data, with `spanguard_tracer_free`): the
        // exporter, once let go, must not call it again.
        self.callback.detach();
        // With a crash dump, what is left is written there: SeqCst pairs
        // with the exporter's busy/frozen handshake, so it takes no span
        // from now on and none is both dumped and sent. Without one (signal
        // handlers off) nothing else holds them: frozen, an exporter let go
        // took none of them, and they were neither sent, spooled nor
        // counted. It deals with them then, as a stopping exporter does.
        if self.crash_file.is_some() {
            self.signal.frozen.store(true, Ordering::SeqCst);
        }
        let left = self.nothing_to_flush().is_none();
        stuck(self, left);
        left
    }

    /// Ends every open span as of now, marked as `open` says. Returns how
    /// many.
    fn end_open_spans(&self, deadline: Instant, open: OpenSpansEnd) -> u64 {
        // Calls that passed their lifecycle check before it moved finish
        // what they write first (as `freeze_recording` lets them): a begin
        // then shows its slot to the scan below, or sees the lifecycle
        // moved after publishing and takes its span back
        // (`Tracer::taken_back`).
        std::thread::sleep(Duration::from_millis(2));
        let now = crate::span::clock::now_unix_ns();
        let mut ended = 0;
        for slot in 0..self.slab.used_slots() {
            let h = self.slab.slot(slot).header.load(Ordering::Acquire);
            // A span being written (a begin not yet published, an attribute
            // call, an end) is waited for, not skipped: skipped, it was
            // left open for good when that call returned. `lock_open`
            // waits for the writer; ended or reused meanwhile, it fails.
            let state = header_state(h);
            if state != STATE_OPEN && !(state == STATE_WRITING && Instant::now() < deadline) {
                continue;
            }
            let generation = header_generation(h);
            if self.slab.lock_open(slot, generation).is_err() {
                continue; // ended or reused meanwhile: not open any more
            }
            // SAFETY: lock_open moved the slot to WRITING for us.
            let r = unsafe { self.slab.slot_mut(slot) };
            match open {
                OpenSpansEnd::Unended => r.marks |= MARK_UNENDED,
                OpenSpansEnd::Interrupted(signal) => {
                    r.marks |= MARK_INTERRUPTED;
                    r.signal = signal;
                }
            }
            r.end_unix_ns = now.max(r.start_unix_ns);
            self.slab.publish_ended(slot, generation);
            ended += 1;
        }
        ended
    }

    /// Stops recording for a dying process, then waits a moment for calls
    /// already past their lifecycle check to publish. Async-signal-safe
    /// (atomics and the vDSO clock).
    pub fn freeze_recording(&self) {
        self.frozen_by.store(0, Ordering::Relaxed);
        // What it was is kept for `thaw`: the program's own crash handler
        // may return from a signal that ends nothing (`crash::on_crash`).
        // Relaxed: read after the lifecycle (SeqCst) says frozen.
        let mut from = self.lifecycle.load(Ordering::SeqCst);
        while from != LIFECYCLE_FROZEN {
            self.frozen_from.store(from, Ordering::Relaxed);
            match self.lifecycle.compare_exchange(
                from,
                LIFECYCLE_FROZEN,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(now) => from = now,
            }
        }
        Self::let_recording_calls_finish();
    }

    /// `freeze_recording` for a tracer that is running or shutting down
    /// (a worker process whose exit hook is shutting it down when its pool
    /// terminates it), on behalf of `thawer` (a kernel thread id), the
    /// thread that will `thaw` it if the process lives on; one already shut
    /// down stays so. True when it froze it.
    pub fn try_freeze_recording(&self, thawer: i32) -> bool {
        // Relaxed: both are read after the lifecycle (SeqCst) says frozen.
        self.frozen_by.store(thawer, Ordering::Relaxed);
        let mut frozen = false;
        for from in [LIFECYCLE_RUNNING, LIFECYCLE_SHUTTING_DOWN] {
            self.frozen_from.store(from, Ordering::Relaxed);
            if self
                .lifecycle
                .compare_exchange(from, LIFECYCLE_FROZEN, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                frozen = true;
                break;
            }
        }
        if frozen {
            Self::let_recording_calls_finish();
        }
        frozen
    }

    /// Waits (until `deadline`) for a tracer frozen by a thread that may
    /// thaw it: a host's signal handler that returned may have told the
    /// application to shut down before that thread got to thaw. Not for a
    /// tracer frozen by a crash, nor on the freezing thread itself (a host
    /// handler calling exit, whose exit hook shuts down: the dump stays).
    pub(crate) fn await_thaw(&self, deadline: Instant) {
        while self.lifecycle() == LIFECYCLE_FROZEN {
            let by = self.frozen_by.load(Ordering::Relaxed);
            if by == 0 || by == this_thread() || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn let_recording_calls_finish() {
        let until = crate::span::clock::monotonic_ns() + 2_000_000;
        while crate::span::clock::monotonic_ns() < until {
            std::hint::spin_loop();
        }
    }

    /// Undoes `try_freeze_recording` and the dump for a process that was
    /// to die of a signal and lives on: the dump is taken back (its spans
    /// are still in the slots, and this exporter sends them), recording and
    /// the exporter resume. Not while a crash handler ends the process
    /// with the dump (`CrashFile::hold_for_crash`): it stays frozen.
    pub fn thaw(&self) {
        if self.lifecycle() != LIFECYCLE_FROZEN {
            return;
        }
        if let Some(c) = &self.crash_file
            && !c.unpublish()
        {
            return;
        }
        self.mark_flight_signal(0);
        self.signal.flushing_for_signal.store(0, Ordering::Relaxed);
        // SeqCst pairs with the exporter's busy/frozen handshake.
        self.signal.frozen.store(false, Ordering::SeqCst);
        // Back to what it was: running, or shutting down (that shutdown, on
        // another thread, goes on). A shutdown that finished meanwhile
        // stored SHUT_DOWN, so this finds it not frozen and leaves it.
        let _ = self.lifecycle.compare_exchange(
            LIFECYCLE_FROZEN,
            self.frozen_from.load(Ordering::Relaxed),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.signal.wake();
    }

    /// Records the fatal signal in the flight recorder's header.
    /// Async-signal-safe: one store into the mapping.
    pub fn mark_flight_signal(&self, signal: i32) {
        if self.flight.is_some() {
            let header = self
                .slab
                .mapping_start()
                .cast::<crate::buffer::dump::DumpHeader>();
            // SAFETY: a flight slab's mapping starts with its DumpHeader.
            unsafe { std::ptr::addr_of_mut!((*header).signal).write_volatile(signal) };
        }
    }

    /// Sets the resource that a crash dump or the flight file names for
    /// the spans in it (`Tracer::set_resource`), so that spans recovered
    /// from them arrive under the resource the live ones are sent with.
    /// Callers serialize their calls (one writer at a time).
    pub fn set_dump_resource(&self, service_name: &str, resource: &[(String, String)]) {
        use crate::buffer::dump::DumpHeader;
        if let Some(c) = &self.crash_file {
            c.set_resource(service_name, resource);
        }
        if self.flight.is_some() {
            let header = self.slab.mapping_start().cast::<DumpHeader>();
            // SAFETY: a flight slab's mapping starts with its DumpHeader;
            // this header is read whole, then its resource written back
            // (the only writer of those fields).
            unsafe {
                let mut next = header.read_volatile();
                next.set_resource(service_name, resource);
                next.write_resource_into(header);
            }
        }
    }

    /// Tells the application, from the exporter thread only.
    pub fn report(&self, event: ExportEvent, message: &str) {
        self.callback
            .call(event, &crate::span::printable::printable(message));
    }
}

/// Wakes the exporter and lets flushers wait for it.
#[derive(Default)]
pub struct ExportSignal {
    mutex: Mutex<()>,
    work: Condvar,
    done: Condvar,
    /// Bumped by each flush call; the exporter answers by storing the value
    /// it saw before draining into `flush_completed`.
    pub flush_requested: AtomicU64,
    pub flush_completed: AtomicU64,
    /// The highest epoch answered with spans that were only spooled.
    pub flush_spooled: AtomicU64,
    /// Spans this tracer ended were spooled, and no replay has emptied the
    /// spool since: what a flush answers (Spooled: every span ended before
    /// it is dealt with, some only on disk), read by the exporter when it
    /// answers and by a flush with nothing to wait for. Cleared by a
    /// replay alone: cleared at each answer, it made the flush after a
    /// Spooled one (or after one that gave up, answered all the same)
    /// say Delivered with those spans still only in the spool.
    pub spooled_not_replayed: AtomicBool,
    /// When the most impatient pending flush gives up (`clock::monotonic_ns`),
    /// u64::MAX when none waits: the exporter spools rather than wait out a
    /// retry past it.
    pub flush_deadline_ns: AtomicU64,
    /// Set when a producer already nudged the exporter for a full batch, so
    /// that the hot path makes at most one wake-up call per batch.
    pub wake_pending: AtomicBool,
    pub stop: AtomicBool,
    /// Set once the stopped exporter has been joined (or left stuck): no
    /// flush will be answered any more (`mark_exporter_gone`).
    exporter_gone: AtomicBool,
    /// Set as the exporter thread's body returns (or unwinds): what the
    /// shutdown waits for, with a deadline, before it joins.
    exporter_ended: AtomicBool,
    /// When the shutdown that set `stop` gives up (`clock::monotonic_ns`):
    /// the exporter replays the spool after a stop only while time is left.
    pub stop_deadline_ns: AtomicU64,
    /// Shared with the HTTP transport (`HttpTransport::abort_at`): the
    /// earliest deadline someone waits on (`clock::monotonic_ns`; u64::MAX:
    /// none), a pending flush's (one given some time: a flush(0) waits on
    /// nothing) or the stop's. A request is given no more time than is
    /// left until it: a backend that accepts and never answers held a
    /// flush(1 s) up for a whole request timeout (10 s by default), its
    /// spans in flight, and the shutdown after it waited for that too.
    /// Past it the request is abandoned and its batch spooled (no time is
    /// left to try it again: `Delivery::silence_at_flush`).
    pub abort_requests_at: Arc<AtomicU64>,
    /// The stop's deadline for requests (u64::MAX until `shutdown` sets
    /// it): what `abort_requests_at` goes back to once the flushes are
    /// answered.
    stop_abort_ns: AtomicU64,
    /// Set when the process is about to die: the exporter takes no more
    /// spans, so what is left can be dumped without being sent twice.
    pub frozen: AtomicBool,
    /// The termination signal the watchdog flushes for (0: none), set
    /// before its flush request and cleared at a thaw: the exporter
    /// answering that flush leaves a record that says the process is
    /// ending of it (`export::outcome`). Relaxed: published by the flush
    /// request's Release, read after its Acquire.
    pub flushing_for_signal: AtomicI32,
    /// The termination signal a shutdown stopped the tracer for (0: none,
    /// or a plain stop): `OpenSpansEnd::Interrupted`, set before the
    /// shutdown's flush, so that the exporter's last record says which
    /// signal its spans still open were interrupted by (`export::outcome`,
    /// `spanguard why`). Relaxed: published by `stop`'s Release store,
    /// read after its Acquire load.
    pub stopping_for_signal: AtomicI32,
    /// The exporter holds spans it took (encoding or sending them).
    pub busy: AtomicBool,
    /// The exporter's request under way (`RequestWatch`).
    pub request_watch: RequestWatch,
    /// Ended spans that make a batch worth waking the exporter for, set by
    /// the exporter as the load changes (`export::batch_sizer`).
    pub batch_target: ReadMostly,
}

/// An atomic on cache lines of its own: producers read it while the
/// exporter writes `busy` and the flush counters beside it twice a batch,
/// which would otherwise make each read a transfer between cores. 128
/// bytes, because the CPU fetches lines in adjacent pairs.
#[repr(align(128))]
#[derive(Default)]
pub struct ReadMostly(pub AtomicU32);

impl ExportSignal {
    /// The stopped exporter is joined: flushes still waiting (called as the
    /// shutdown ran) return instead of waiting out their timeouts.
    pub fn mark_exporter_gone(&self) {
        let _guard = match self.mutex.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // Under the mutex: a waiter checks the flag and waits on `done`
        // under it too, so it cannot miss this wake-up.
        self.exporter_gone.store(true, Ordering::Release);
        self.done.notify_all();
    }

    /// The exporter thread's body has returned or unwound (`ExporterEnd`).
    fn mark_exporter_ended(&self) {
        let _guard = match self.mutex.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // Under the mutex, as `mark_exporter_gone`: the waiter cannot miss it.
        self.exporter_ended.store(true, Ordering::Release);
        self.done.notify_all();
    }

    /// Waits until the exporter thread's body has ended or `deadline`
    /// passes; whether it ended (std has no join with a timeout).
    pub fn await_exporter_end(&self, deadline: Instant) -> bool {
        let mut guard = match self.mutex.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        loop {
            if self.exporter_ended.load(Ordering::Acquire) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = match self.done.wait_timeout(guard, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// A signal whose exporter is first woken by `batch_target` ended spans.
    pub fn new(batch_target: u32) -> ExportSignal {
        ExportSignal {
            batch_target: ReadMostly(AtomicU32::new(batch_target)),
            flush_deadline_ns: AtomicU64::new(u64::MAX),
            abort_requests_at: Arc::new(AtomicU64::new(u64::MAX)),
            stop_abort_ns: AtomicU64::new(u64::MAX),
            ..ExportSignal::default()
        }
    }

    /// This signal, with `abort_requests_at` the transport's `at` (which
    /// is reset to none).
    pub fn sharing_abort_with(mut self, at: Arc<AtomicU64>) -> ExportSignal {
        at.store(u64::MAX, Ordering::Relaxed);
        self.abort_requests_at = at;
        self
    }

    /// Requests are abandoned at `at` (`clock::monotonic_ns`) from now on,
    /// or at a waiting flush's deadline if sooner: the stop's deadline.
    pub fn abort_requests_from(&self, at: u64) {
        let _guard = match self.mutex.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // Under the mutex, as `complete_flush` puts it back.
        self.stop_abort_ns.store(at, Ordering::Relaxed);
        self.abort_requests_at.fetch_min(at, Ordering::Relaxed);
    }

    /// A flush call waits for the exporter.
    pub fn flush_pending(&self) -> bool {
        self.flush_requested.load(Ordering::Acquire) > self.flush_completed.load(Ordering::Acquire)
    }

    /// Wakes the exporter. Takes the mutex so that a wake-up between the
    /// exporter's check and its wait is not lost.
    pub fn wake(&self) {
        let _guard = self.mutex.lock();
        self.work.notify_one();
    }

    /// The hot path's nudge: at most one wake call until the exporter runs.
    #[inline]
    pub fn nudge_for_batch(&self) {
        // Load first: while a wake is pending, ends only read the flag
        // instead of all writing one line.
        if !self.wake_pending.load(Ordering::Relaxed)
            && !self.wake_pending.swap(true, Ordering::AcqRel)
        {
            self.wake();
        }
    }

    /// The exporter's sleep: returns when `ready()` holds, the timeout passes
    /// or someone wakes it.
    pub fn wait_for_work(&self, timeout: Duration, ready: impl Fn() -> bool) {
        self.wait_for_work_paced(timeout, Duration::ZERO, ready);
    }

    /// `wait_for_work`, whose first `quiet` (at most the timeout) no nudge
    /// interrupts: the exporter looks at `ready()` when it ends, as if it
    /// had been woken then. What still wakes it at once is what calls
    /// `wake` itself (a flush, the stop, a thread out of slots).
    ///
    /// Why: a nudge that wakes a sleeping exporter is a system call on the
    /// recording thread, and waking a thread on an idle CPU takes an
    /// interrupt sent to that CPU (in a VM, an exit to the hypervisor).
    /// With an exporter faster than the threads it serves, that was one
    /// each batch: `make bench-compare` put the one-thread rows of regime
    /// (b) 5-15% slower once the exporter got faster (043d1fe against
    /// f109fc6), with twice the futex calls. When spans come steadily the
    /// exporter knows about when the next batch is due (`export::pacer`)
    /// and sleeps until then on its own timer, and the recording thread
    /// calls no one.
    pub fn wait_for_work_paced(
        &self,
        timeout: Duration,
        quiet: Duration,
        ready: impl Fn() -> bool,
    ) {
        let now = std::time::Instant::now();
        let deadline = crate::span::clock::instant_after(now, timeout);
        let quiet_until = crate::span::clock::instant_after(now, quiet.min(timeout));
        let mut guard = match self.mutex.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // Cleared as a wait begins, under the mutex: a nudge made while the
        // exporter was busy set the flag, and clearing it only after the
        // wait (as once) let every nudge during the wait see it set and
        // call no one, so a full batch waited for the schedule delay (or
        // for a thread out of slots). The first nudge from then on sees it
        // clear and wakes us (its wake takes the mutex, so it cannot fall
        // between the look at `ready` and the wait); later ones during
        // this wait do not, so a wait costs the hot path one wake at most.
        // It is left set after a wait: a nudge while the exporter is busy
        // would wake no one (the exporter looks for another batch before
        // it sleeps) and only cost the recording thread a system call.
        //
        // A quiet stretch sets it instead, so that no nudge calls anyone;
        // a nudge that saw it clear just before calls `wake`, which waits
        // for the mutex and then wakes us early (harmless).
        let mut in_quiet = !quiet.is_zero();
        self.wake_pending.store(in_quiet, Ordering::Release);
        let mut until = if in_quiet { quiet_until } else { deadline };
        loop {
            if ready() {
                break;
            }
            let now = std::time::Instant::now();
            if now >= until {
                if !in_quiet {
                    break;
                }
                // The quiet stretch is over and the batch is not there (the
                // spans slowed down): wait as usual for the rest.
                in_quiet = false;
                until = deadline;
                self.wake_pending.store(false, Ordering::Release);
                continue;
            }
            guard = match self.work.wait_timeout(guard, until - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        drop(guard);
    }

    /// A sleep of the exporter's that `stop` cuts short (retry backoff).
    pub fn sleep_unless_stopped(&self, duration: Duration) {
        self.wait_for_work(duration, || self.stop.load(Ordering::Acquire));
    }

    /// The exporter has drained everything requested up to `epoch`;
    /// `spooled`: some of it was only written to the spool.
    pub fn complete_flush(&self, epoch: u64, spooled: bool) {
        if spooled {
            // Before the Release below, so a flusher that sees its epoch
            // completed sees this too.
            self.flush_spooled.fetch_max(epoch, Ordering::Relaxed);
        }
        self.flush_completed.fetch_max(epoch, Ordering::AcqRel);
        let _guard = self.mutex.lock();
        // Under the mutex, which a new flush holds while it sets its
        // deadline: no pending flush loses its deadline here.
        if self.flush_requested.load(Ordering::Acquire) <= epoch {
            self.flush_deadline_ns.store(u64::MAX, Ordering::Relaxed);
            // No flush waits: requests get their whole timeout again (up
            // to the stop's deadline, once set).
            self.abort_requests_at.store(
                self.stop_abort_ns.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
        }
        self.done.notify_all();
    }

    /// Asks for a flush and waits until it is done or `timeout` passes.
    pub fn request_flush_and_wait(&self, timeout: Duration) -> FlushOutcome {
        self.request_flush_unless_gone(timeout)
            .unwrap_or(FlushOutcome::TimedOut)
    }

    /// `request_flush_and_wait`, whose deadline leaves the request in
    /// flight to finish: the signal watchdog's flush, which waits for that
    /// request a while longer before its dump (a batch abandoned there
    /// would be spooled and dumped both, sent twice).
    pub fn request_flush_and_wait_leaving_requests(&self, timeout: Duration) -> FlushOutcome {
        self.request_flush(timeout, false)
            .unwrap_or(FlushOutcome::TimedOut)
    }

    /// `request_flush_and_wait`, or None when the exporter stopped for good
    /// before answering: a flush that raced a shutdown, whose own flushes
    /// and final drain took this caller's spans. Without it such a flush
    /// waited out its whole timeout for an answer that never came.
    pub fn request_flush_unless_gone(&self, timeout: Duration) -> Option<FlushOutcome> {
        self.request_flush(timeout, true)
    }

    /// `request_flush_unless_gone`; `abandon_requests`: a request still in
    /// flight at the deadline is abandoned (`abort_requests_at`).
    fn request_flush(&self, timeout: Duration, abandon_requests: bool) -> Option<FlushOutcome> {
        // AcqRel: every span this caller ended happened before this bump, and
        // the exporter's Acquire load of the epoch sees them queued.
        let epoch = self.flush_requested.fetch_add(1, Ordering::AcqRel) + 1;
        let deadline = crate::span::clock::instant_after(std::time::Instant::now(), timeout);
        let mut guard = match self.mutex.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let deadline_ns = crate::span::clock::monotonic_ns()
            .saturating_add(timeout.as_nanos().min(u64::MAX as u128) as u64);
        self.flush_deadline_ns
            .fetch_min(deadline_ns, Ordering::Relaxed);
        if abandon_requests && !timeout.is_zero() {
            // A request in flight, or sent for this flush, is abandoned
            // at its deadline (`abort_requests_at`). Not for a flush(0):
            // it only wakes the exporter, no one waits for the answer.
            self.abort_requests_at
                .fetch_min(deadline_ns, Ordering::Relaxed);
        }
        self.work.notify_one();
        loop {
            if self.flush_completed.load(Ordering::Acquire) >= epoch {
                return Some(if self.flush_spooled.load(Ordering::Relaxed) >= epoch {
                    FlushOutcome::Spooled
                } else {
                    FlushOutcome::Delivered
                });
            }
            if self.exporter_gone.load(Ordering::Acquire) {
                return None;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Some(FlushOutcome::TimedOut);
            }
            guard = match self.done.wait_timeout(guard, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A callback set where there was none, while a call is in progress
    /// (the exporter telling held news with the new callback, blocked in
    /// it on a lock the setter holds, as Python's GIL): the set returns.
    /// It waited for that call, which waited for the setter: a deadlock.
    #[test]
    fn a_first_callback_does_not_wait_for_a_call_in_progress() {
        let slot = Arc::new(CallbackSlot::default());
        let in_progress = slot.calling.lock().unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let setter = {
            let slot = Arc::clone(&slot);
            std::thread::spawn(move || {
                slot.set(Some(Box::new(|_, _| {})));
                done_tx.send(()).unwrap();
            })
        };
        let returned = done_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .is_ok();
        drop(in_progress);
        setter.join().unwrap();
        assert!(returned, "the first set waited for a call in progress");
        assert!(slot.is_set());
    }

    /// A replacement still waits for a call in progress, which may be of
    /// the old callback (its user_data may be freed once the set returns).
    #[test]
    fn a_replacement_waits_for_a_call_in_progress() {
        let slot = Arc::new(CallbackSlot::default());
        slot.set(Some(Box::new(|_, _| {})));
        let in_progress = slot.calling.lock().unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let setter = {
            let slot = Arc::clone(&slot);
            std::thread::spawn(move || {
                slot.set(None);
                done_tx.send(()).unwrap();
            })
        };
        let early = done_rx
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_ok();
        drop(in_progress);
        setter.join().unwrap();
        assert!(!early, "the replacement returned during a call in progress");
        assert!(!slot.is_set());
    }

    #[test]
    fn one_end_in_a_power_of_two_up_to_16_looks_at_the_queue() {
        for (batch, mask) in [
            (1, 0),
            (32, 0),
            (63, 0),
            (64, 1),
            (100, 1),
            (128, 3),
            (512, 15),
            (100_000, 15),
        ] {
            assert_eq!(end_check_mask(batch), mask, "batch of {batch}");
        }
    }

    /// A nudge made while the exporter was busy must not silence the
    /// nudges of its next wait. Before the flag was cleared as a wait
    /// began, this wait lasted its whole 60 s; the bound below is a
    /// liveness check (woken at all), not a timing.
    #[test]
    fn a_nudge_made_while_the_exporter_was_busy_does_not_silence_the_next_wait() {
        let signal = Arc::new(ExportSignal::new(1));
        let ready = Arc::new(AtomicBool::new(false));
        signal.nudge_for_batch(); // the exporter is busy: nobody waits
        let waiter = {
            let (signal, ready) = (Arc::clone(&signal), Arc::clone(&ready));
            std::thread::spawn(move || {
                let start = std::time::Instant::now();
                signal.wait_for_work(Duration::from_secs(60), || ready.load(Ordering::Acquire));
                start.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        ready.store(true, Ordering::Release);
        signal.nudge_for_batch();
        let waited = waiter.join().expect("waiter");
        assert!(waited < Duration::from_secs(30), "woken after {waited:?}");
    }

    /// A waiter on its own thread: `wait_for_work_paced(timeout, quiet)`
    /// until `ready`; returns how long it waited.
    fn paced_waiter(
        signal: &Arc<ExportSignal>,
        ready: &Arc<AtomicBool>,
        timeout: Duration,
        quiet: Duration,
    ) -> std::thread::JoinHandle<Duration> {
        let (signal, ready) = (Arc::clone(signal), Arc::clone(ready));
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            signal.wait_for_work_paced(timeout, quiet, || ready.load(Ordering::Acquire));
            start.elapsed()
        })
    }

    /// Nudges in the quiet stretch call no one: the batch there after 20 ms
    /// is taken when the stretch ends, at 300 ms. (Without the stretch the
    /// nudge woke the waiter at once.)
    #[test]
    fn nudges_during_the_quiet_stretch_wake_no_one() {
        let signal = Arc::new(ExportSignal::new(1));
        let ready = Arc::new(AtomicBool::new(false));
        let quiet = Duration::from_millis(300);
        // The batch comes once the waiter has looked and found none (its
        // first look at `ready`): a batch there before its wait began is
        // taken at once, stretch or not, and a sleep of 20 ms for "it has
        // begun" failed on a loaded machine whose waiter started later.
        let looked = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (signal, ready, looked) =
                (Arc::clone(&signal), Arc::clone(&ready), Arc::clone(&looked));
            std::thread::spawn(move || {
                let start = std::time::Instant::now();
                signal.wait_for_work_paced(Duration::from_secs(60), quiet, || {
                    looked.store(true, Ordering::Release);
                    ready.load(Ordering::Acquire)
                });
                start.elapsed()
            })
        };
        while !looked.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        ready.store(true, Ordering::Release);
        for _ in 0..10 {
            signal.nudge_for_batch();
        }
        let waited = waiter.join().expect("waiter");
        assert!(
            waited >= quiet,
            "woken after {waited:?}, in the quiet stretch"
        );
        assert!(waited < Duration::from_secs(30), "woken after {waited:?}");
    }

    /// What calls `wake` itself (a flush, the stop, a thread out of slots)
    /// still wakes the exporter in a quiet stretch; the bound is a liveness
    /// check against the stretch's 60 s.
    #[test]
    fn a_wake_cuts_the_quiet_stretch_short() {
        let signal = Arc::new(ExportSignal::new(1));
        let ready = Arc::new(AtomicBool::new(false));
        let waiter = paced_waiter(
            &signal,
            &ready,
            Duration::from_secs(120),
            Duration::from_secs(60),
        );
        std::thread::sleep(Duration::from_millis(50));
        ready.store(true, Ordering::Release);
        signal.wake();
        let waited = waiter.join().expect("waiter");
        assert!(waited < Duration::from_secs(30), "woken after {waited:?}");
    }

    /// A stretch that ends with no batch (the spans slowed down) goes on
    /// as a plain wait, which the next nudge wakes; before the flag was
    /// cleared as the stretch ended, this waited the whole 60 s.
    #[test]
    fn after_the_quiet_stretch_a_nudge_wakes_the_exporter() {
        let signal = Arc::new(ExportSignal::new(1));
        let ready = Arc::new(AtomicBool::new(false));
        let waiter = paced_waiter(
            &signal,
            &ready,
            Duration::from_secs(60),
            Duration::from_millis(50),
        );
        std::thread::sleep(Duration::from_millis(300));
        ready.store(true, Ordering::Release);
        signal.nudge_for_batch();
        let waited = waiter.join().expect("waiter");
        assert!(waited < Duration::from_secs(30), "woken after {waited:?}");
    }
}
