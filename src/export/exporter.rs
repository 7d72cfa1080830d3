//! The exporter thread: wakes on the schedule, on a full batch or on a
//! flush, drains ended spans in batches, encodes them straight from their
//! slots, and hands each request to the delivery path (`delivery.rs`), which
//! it shares with spool replay and crash recovery. Its buffers, gzip state
//! and transport (with its connection) live as long as the thread. A panic
//! in its work is caught per batch, counted and reported, and the thread
//! goes on.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::buffer::aging::AgingSlots;
use crate::buffer::slot_order::sort_slot_numbers;
use crate::config::{Compression, MAX_SINK_LINE_BYTES, Protocol};
use crate::pipeline::{ExportEvent, ExportSignal, Pipeline};
use crate::span::record::{
    MARK_HAS_REST, MARK_NON_RECORDING, OverflowSource, SpanRecord, SpanView,
};
use crate::stats::Stats;

use super::batch_sizer::BatchSizer;
use super::delivery::{
    Delivery, DeliveryHost, Origin, Outcome, Request, SAFE_VALUE_DEPTH, is_recording,
};
use super::diagnostics::{CutWhenRecorded, Diagnostics, SetAsideNews, count, spans as n_spans};
use super::outcome::{self, Counts, OutcomeFile};
use super::pacer::Pacer;
use super::recovery;
use super::request_encoder::RequestEncoder;
use super::resource::{DepthCounted, ResourceInfo, ScopeAttributes, attr_value};
use super::retry::PROBE_INTERVAL;
use super::spool::SpoolDir;
use super::stand_in::{RequestMarks, StandInTransport};
use super::transport::{BodyFormat, Transport};
use super::value_cut::SharedMsg;

/// How often the exporter looks again for what dead processes left: a
/// file still locked at the last look (a live process, or a forked child
/// that held its dead parent's lock), or a worker process that died since.
const LEFTOVER_RESCAN_INTERVAL: Duration = Duration::from_secs(3);

pub struct Exporter {
    pipeline: Arc<Pipeline>,
    /// Who this tracer's spans say they come from, in every request.
    resource: Arc<ResourceInfo>,
    /// The resource and scopes (`SharedMsg`) the server refused for a
    /// value nested past `SAFE_VALUE_DEPTH` and took cut to it: cut so
    /// before sending from then on, a resource or scope set anew too
    /// (`Tracer::set_resource`, `set_scope_attributes`: the same server
    /// refuses it alike), where it holds a value that deep.
    depth_cut: Vec<SharedMsg>,
    /// The resource last built (`resource` before `depth_cut` cut it): a
    /// resource set anew holding a value it held was counted already.
    resource_given: Arc<ResourceInfo>,
    /// The resource and scope values cut up front or refused and taken
    /// cut, counted: one set again is not counted again.
    depth_counted: DepthCounted,
    encoder: RequestEncoder,
    delivery: Delivery,
    host: ExporterHost,
    indexes: Vec<u32>,
    /// Working space for putting a part's slot numbers in order.
    sort_scratch: Vec<u32>,
    /// The chunks of a batch's spans, given back with their slots.
    chunks: Vec<u32>,
    /// The views a request is encoded from: kept empty between requests
    /// (`ViewBuffer`), so that a batch allocates none once it has grown.
    views: ViewBuffer,
    /// Spans the last batch took from the queues (sampled out or not).
    taken: usize,
    /// Each ended queue's tail when the flush being answered was asked
    /// (`SpanSlab::ended_marks`); kept between flushes, so that answering
    /// one allocates nothing.
    flush_marks: Vec<u64>,
    /// How many of `indexes` were given back to the slab (the rest are
    /// still held: a panic gives them back and counts them lost).
    released: usize,
    /// Slots of the request being sent that are still held, past
    /// `released` (its journal could not be written): a panic counts
    /// their spans lost once, as unsettled, not again as held.
    held_through_send: usize,
    /// The local file sink does not replay the spool (its batches are for
    /// the network); it still recovers crash leftovers.
    replays_spool: bool,
    /// The stop's probe of a backend that gave no answer was sent
    /// (`replay_if_due`): once a stop, not once per pass of the loop.
    stop_probed: bool,
    file_sink: bool,
    /// `dropped_buffer_full` as last seen, to tell of new drops.
    buffer_full_seen: u64,
    /// `payload_waits` as last seen, to tell of new waits.
    payload_waits_seen: u64,
    /// `shared_values_cut_at_depth` as last kept among the places values
    /// were cut (`notice_shared_values_cut`).
    shared_cut_seen: u64,
    /// When to look for dead processes' files again.
    next_leftover_scan: Instant,
    /// What was told of files set aside, and what is held back.
    set_aside_news: SetAsideNews,
    /// How long to sleep before a nudge may wake us.
    pacer: Pacer,
    /// Slots given back and not yet on the free stack (`buffer::aging`).
    aging: AgingSlots,
    /// What this tracer did with its spans, kept on disk for after the
    /// process (`export::outcome`).
    outcome: OutcomeFile,
    /// Set (by its delivery's `RequestMarks`) when a stand-in took the
    /// queue from this exporter, stuck in a request: it settles the batch
    /// it holds and ends, taking no span more.
    replaced: Arc<AtomicBool>,
    /// A stand-in for a stuck exporter (`Exporter::stand_in`): it spools
    /// what it takes, replays and recovers nothing, and leaves the batch
    /// in flight (`Pipeline::in_flight`) to the stuck one, which holds it.
    stand_in: bool,
}

/// How an exporter's body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExporterEnded {
    /// Stopped by the shutdown, every span dealt with.
    Stopped,
    /// A stand-in took over while it was stuck in a request; it settled
    /// the batch it held and left the rest to the stand-in.
    Replaced,
}

impl Exporter {
    pub fn new(
        pipeline: Arc<Pipeline>,
        transport: Box<dyn Transport>,
        file_sink: bool,
    ) -> Exporter {
        let replaced = Arc::new(AtomicBool::new(false));
        let marks = RequestMarks::new(Arc::clone(&pipeline), Arc::clone(&replaced));
        let mut e = Exporter::with_delivery_through(pipeline, transport, file_sink, replaced);
        e.delivery.mark_requests(marks);
        // For a stand-in to carry on, should this one get stuck.
        e.pipeline
            .signal
            .request_watch
            .note_record(e.outcome.path(), e.outcome.started_unix_s());
        e
    }

    /// The stand-in for an exporter stuck in a request (`export::stand_in`):
    /// every span it takes is spooled at once for `reason`, through
    /// `transport` (the stuck one's target and sender, never sent through).
    pub fn stand_in(
        pipeline: Arc<Pipeline>,
        transport: StandInTransport,
        reason: String,
    ) -> Exporter {
        let never = Arc::new(AtomicBool::new(false));
        let record = pipeline.signal.request_watch.record();
        let mut e = Exporter::with_delivery_through(pipeline, Box::new(transport), false, never);
        if let Some((path, started)) = record {
            e.outcome = e.outcome.carrying_on(&path, started);
        }
        e.delivery.keep_everything(reason);
        e.replays_spool = false;
        e.host.spool_pending = false;
        e.host.stand_in = true;
        e.stand_in = true;
        e
    }

    fn with_delivery_through(
        pipeline: Arc<Pipeline>,
        transport: Box<dyn Transport>,
        file_sink: bool,
        replaced: Arc<AtomicBool>,
    ) -> Exporter {
        let config = &pipeline.config;
        // The file sink writes the Collector file exporter's format: plain JSON.
        let format = if file_sink || config.protocol == Protocol::HttpJson {
            BodyFormat::Json
        } else {
            BodyFormat::Protobuf
        };
        let gzip = !file_sink && config.compression == Compression::Gzip;
        // A sink line ends with a newline the body does not hold.
        let budget = if file_sink {
            config.sink_max_line_bytes.saturating_sub(1)
        } else {
            config.max_request_bytes
        };
        let batch = config.max_export_batch_size as usize;
        let spool = SpoolDir::new(&config.spool_dir, config.spool_max_bytes);
        let mut delivery = Delivery::new(transport, spool, config.export_timeout, budget);
        // A long prompt goes whole to a backend that takes it, and on a
        // sink line of its own up to the longest line `spanguard show`
        // reads: batches keep the line limit (the Collector file
        // receiver's), a span alone over it is written whole and said
        // once (`note_long_sink_line`), never cut to it.
        if file_sink {
            delivery.send_lone_spans_whole_up_to(MAX_SINK_LINE_BYTES - 1);
        } else {
            delivery.send_lone_spans_whole();
        }
        let mut outcome = OutcomeFile::new(
            &outcome::dir_in(&config.spool_dir),
            &config.service_name,
            &delivery.target(),
        );
        // The files this tracer leaves if its process dies: a recoverer of
        // one notes in this record what it held and the signal it names.
        if let Some(crash) = &pipeline.crash_file {
            outcome.note_leaves(crash.dump_path());
        }
        for flight in pipeline.flight.iter() {
            outcome.note_leaves(&flight.path);
        }
        let host = ExporterHost {
            pipeline: Arc::clone(&pipeline),
            diagnostics: if file_sink {
                Diagnostics::new(config.log_level).spool_not_read_back()
            } else {
                Diagnostics::new(config.log_level)
            }
            .for_runtime(
                config
                    .resource_attributes
                    .iter()
                    .find(|(k, _)| k == "process.runtime.name")
                    .map(|(_, v)| v.as_str()),
            )
            .telling(Arc::clone(&pipeline)),
            target: delivery.target(),
            spool_dir: config.spool_dir.display().to_string(),
            unsettled: 0,
            // Batches and crash leftovers of earlier processes are sent at start.
            spool_pending: !file_sink,
            pressure: (config.max_queue_size as usize / 2).max(1),
            stand_in: false,
        };
        Exporter {
            encoder: RequestEncoder::new(format, gzip, budget, batch),
            delivery,
            host,
            indexes: Vec::with_capacity(batch),
            sort_scratch: Vec::with_capacity(batch),
            chunks: Vec::new(),
            views: ViewBuffer::default(),
            taken: 0,
            flush_marks: Vec::new(),
            released: 0,
            held_through_send: 0,
            replays_spool: !file_sink,
            stop_probed: false,
            file_sink,
            buffer_full_seen: 0,
            payload_waits_seen: 0,
            shared_cut_seen: 0,
            next_leftover_scan: Instant::now() + LEFTOVER_RESCAN_INTERVAL,
            set_aside_news: SetAsideNews::default(),
            pacer: Pacer::new(),
            aging: AgingSlots::for_slab(pipeline.slab.capacity(), batch),
            outcome,
            resource: Arc::new(ResourceInfo::configured(config)),
            depth_cut: Vec::new(),
            resource_given: Arc::new(ResourceInfo::configured(config)),
            depth_counted: DepthCounted::default(),
            pipeline,
            replaced,
            stand_in: false,
        }
    }

    /// Whether a stand-in took over (see `replaced`).
    fn replaced(&self) -> bool {
        self.replaced.load(Ordering::Relaxed)
    }

    /// The thread's body: runs until the tracer stops it and the queue is
    /// empty, or a stand-in takes over from it (stuck in a request).
    pub fn run(mut self) -> ExporterEnded {
        let p = Arc::clone(&self.pipeline);
        // For the crash handler and a shutdown to know when they run on
        // this very thread (a crash in the error callback, exit() called
        // from it): it will not finish anything they would wait for.
        // SAFETY: gettid has no preconditions.
        p.exporter_tid
            .store(unsafe { libc::gettid() }, Ordering::Relaxed);
        // Timer slack of 1 us, not Linux's default 50 us: the quiet sleep
        // (`export::pacer`) is about as long as a batch takes to fill, tens
        // of microseconds under load, and 50 us late meant batches twice
        // as large and spans held that much longer (with the pacer's margin
        // cut from a quarter to an eighth at once, two recording threads'
        // spans 7% faster, `make bench-threads`, 6 of 6 pairs).
        // SAFETY: prctl on this thread with an integer argument.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
        let mut sizer = BatchSizer::new(
            p.config.batch_ceiling(),
            p.config.schedule_delay,
            Instant::now(),
        );
        // Said once, here rather than where the tracer was made: this
        // thread is the one that writes to stderr (export::diagnostics).
        // (By the first exporter: a stand-in's were said.)
        let ignored_env = if self.stand_in {
            &[][..]
        } else {
            &p.config.ignored_env[..]
        };
        for ignored in ignored_env {
            self.host.diagnostics.setting_ignored(&ignored.as_ignored());
        }
        for (set, meant) in p.config.misspelt_env.iter().filter(|_| !self.stand_in) {
            self.host.diagnostics.setting_ignored(&format!(
                "{set} is set, but spanguard reads no variable of that name: {meant} was meant? \
                 (ignored)"
            ));
        }
        if self.file_sink {
            let path = self.host.target.trim_start_matches("file:").to_string();
            // An endpoint was set but could not be used: where the spans
            // go instead is news to whoever set it (it was said only at
            // info, and the spans seemed to vanish).
            let endpoint_ignored = p
                .config
                .ignored_env
                .iter()
                .any(|e| e.variable.ends_with("_ENDPOINT"))
                || p.config
                    .misspelt_env
                    .iter()
                    .any(|(_, meant)| meant.ends_with("_ENDPOINT"));
            if endpoint_ignored {
                self.host.diagnostics.warn(&format!(
                    "no usable endpoint: writing spans to {path} instead"
                ));
            } else {
                self.host
                    .diagnostics
                    .info(&format!("no endpoint configured: writing spans to {path}"));
            }
        }
        p.slab.populate_shared_queue();
        // Before any request: the crash handler writes the one in flight there.
        // (Not a stand-in's: the stuck exporter's batch may be there.)
        if let Some(crash) = p.crash_file.as_ref().filter(|_| !self.stand_in) {
            let _ = crash.prepare_batch();
        }
        // What earlier processes left: crash dumps and flight files, then the
        // spool.
        self.guarded(|e| e.recover_leftovers());
        self.guarded(|e| e.replay_if_due());
        self.guarded(|e| e.record_outcome(outcome::State::Running));
        crate::buffer::dump::note_alive(&p.slab);
        // When the spans waiting are due to be sent whatever their number
        // (the schedule delay after the last drain); None right after one.
        let mut drain_due: Option<Instant> = None;
        loop {
            let batch = p.signal.batch_target.0.load(Ordering::Relaxed) as usize;
            let now = Instant::now();
            let idle_due =
                crate::span::clock::instant_after(now, self.idle_wait(p.config.schedule_delay));
            let due = drain_due.map_or(idle_due, |d| d.min(idle_due));
            drain_due = Some(due);
            // Woken no later than the next look for what dead processes
            // left: a long schedule delay (a minute) kept a worker's dump
            // or a SIGKILLed worker's flight file unsent for as long.
            let wait = due
                .min(self.next_leftover_scan)
                .saturating_duration_since(now);
            let quiet = self.pacer.quiet(now, p.slab.ended_len(), batch);
            // Holding given-back slots (`buffer::aging`): a thread that
            // found none free woke us for them.
            let holding = !self.aging.is_empty();
            let ready = || {
                p.signal.stop.load(Ordering::Acquire)
                    || p.signal.flush_pending()
                    || p.slab.ended_len() >= batch
                    || holding && p.slab.no_free_slot()
                    || begin_waits_for_ended(&p)
            };
            wait_calibrating(&p.signal, wait, quiet, ready);
            // For a SIGKILL, which leaves no word of when it came: the
            // flight file's spans still open end at the last of these.
            crate::buffer::dump::note_alive(&p.slab);
            if !ready() {
                // Nothing to do: is anyone but us left in the process?
                super::last_thread::exit_if_only_ours_left();
            }
            if p.signal.frozen.load(Ordering::Acquire) {
                // The process is dying and what is left goes to the crash
                // dump: idle (an unanswered flush would otherwise spin us)
                // until the stop, or the thaw of a process that lives on
                // (a host's handler returned: Go's signal.Notify, a
                // server's graceful stop). Idle until the stop alone, the
                // thaw's wake-up went unheeded and a flush or shutdown
                // right after it (the graceful stop's) waited for the rest
                // of the schedule delay: 5 s, or its whole timeout.
                if p.signal.stop.load(Ordering::Acquire) {
                    break;
                }
                p.signal.wait_for_work(p.config.schedule_delay, || {
                    p.signal.stop.load(Ordering::Acquire)
                        || !p.signal.frozen.load(Ordering::Acquire)
                });
                continue;
            }
            if !ready() && Instant::now() < due {
                // Woken only for that look: the spans waiting stay for the
                // rest of the schedule delay, so that a batch is sent no
                // more often than the delay says (nor a benchmark's idle
                // exporter woken to send one).
                if Instant::now() >= self.next_leftover_scan {
                    self.guarded(|e| e.recover_leftovers());
                    self.next_leftover_scan = Instant::now() + LEFTOVER_RESCAN_INTERVAL;
                }
                continue;
            }
            drain_due = None;
            crate::span::clock::recalibrate();
            let (cpu0, wall0) = (thread_cpu_ns(), crate::span::clock::monotonic_ns());
            let taken = self.drain();
            if self.replaced() {
                // Its batch settled, the queue is the stand-in's: the
                // slots it held back go free, and it ends unheard (the
                // stand-in's end is what a shutdown waits for).
                p.slab.give_back_aging(&mut self.aging);
                p.signal.request_watch.let_go();
                return ExporterEnded::Replaced;
            }
            self.pacer.took(taken);
            self.guarded(|e| {
                // News of the start (ignored settings, spans recovered),
                // for a callback set since.
                e.host.diagnostics.tell_held();
                e.notice_buffer_full();
                e.notice_pool_used_up();
                e.notice_sender_renewed();
                e.replay_if_due();
                e.record_outcome_if_due();
            });
            let target = sizer.observe(taken, Instant::now());
            // Every producer reads this line: write it only on a change.
            if target != batch as u32 {
                p.signal.batch_target.0.store(target, Ordering::Relaxed);
            }
            self.throttle(cpu0, wall0);
            if p.signal.stop.load(Ordering::Acquire) && p.slab.ended_len() == 0 {
                // An end caught between its halves (its slot ENDED, so the
                // shutdown's scan passed it, but not queued yet: a thread
                // preempted there) queues its span in a moment: wait for
                // it while the shutdown has time, or the span is counted
                // ended and never exported.
                if p.slab.any_slot_ended()
                    && crate::span::clock::monotonic_ns()
                        < p.signal.stop_deadline_ns.load(Ordering::Relaxed)
                {
                    std::thread::sleep(Duration::from_micros(100));
                    continue;
                }
                // A last look, so that what a worker process left while
                // this one ran is sent before it stops.
                self.guarded(|e| e.recover_leftovers());
                break;
            }
            if Instant::now() >= self.next_leftover_scan {
                self.guarded(|e| e.recover_leftovers());
                self.next_leftover_scan = Instant::now() + LEFTOVER_RESCAN_INTERVAL;
            }
        }
        // The local sink's exporter starts with nothing pending and never
        // replays: pending then means spooled in this run. Pending from the
        // start (what earlier processes left goes first) is no proof that
        // anything waits: with the backend down before that first replay
        // and the spool unusable (a read-only disk, a file in its path),
        // nothing was written, and the stop sent the user to a spool
        // holding none of the spans just said lost. So the spool is looked
        // at, for the files this sender takes (`SpoolDir::takes`): those
        // waiting for another sender are not this run's to send.
        let spool = self.delivery.spool();
        let spool_left = self.host.spool_pending && spool.list().iter().any(|f| spool.takes(f));
        if let Some(message) = self.set_aside_news.untold() {
            self.host.diagnostics.set_aside(&message);
        }
        let host = &mut self.host;
        host.diagnostics
            .stopped(spool_left.then_some(host.spool_dir.as_str()));
        // Stopped for a termination signal (a binding's handler's
        // shutdown): the record names it, as the spans still open then
        // were marked with it.
        let state = match p.signal.stopping_for_signal.load(Ordering::Relaxed) {
            0 => outcome::State::Stopped,
            signal => outcome::State::StoppedAt(signal),
        };
        self.guarded(|e| e.record_outcome(state));
        ExporterEnded::Stopped
    }

    /// Writes the outcome file (`export::outcome`) now: the counts and
    /// each cause of loss as the diagnostics first said it. A file that
    /// cannot be written costs nothing else, nor does pruning old ones:
    /// it gives way to a flush, a filling queue and a shutdown.
    fn record_outcome(&mut self, state: outcome::State) {
        self.notice_shared_values_cut();
        let counts = Counts::of(&self.pipeline.stats.snapshot(&self.pipeline.slab));
        let host = &self.host;
        if let Some(reason) = host.diagnostics.spooled_because() {
            self.outcome.note_spooled_because(reason);
        }
        self.outcome.note_refused(host.diagnostics.refused_own());
        self.outcome.note_cuts(host.diagnostics.values_cut_places());
        self.outcome.note_warnings(host.diagnostics.warnings());
        let _ = self
            .outcome
            .write(state, &counts, host.diagnostics.loss_causes(), || {
                host.busy() || host.stopping()
            });
        if self.outcome.has_set_aside() {
            self.report_set_aside();
        }
    }

    /// Keeps a resource's or scope's values cut to the depth limit as they
    /// were set (`Tracer::set_resource`, counted by the tracer) since the
    /// last look with the place spans' values are cut so, for the record.
    fn notice_shared_values_cut(&mut self) {
        let p = &self.pipeline;
        let shared = p.stats.shared_values_cut_at_depth.load(Ordering::Relaxed);
        if shared > self.shared_cut_seen {
            let cut = CutWhenRecorded {
                depth_limit: shared - self.shared_cut_seen,
                ..CutWhenRecorded::default()
            };
            let (limits, pool_mib) = (&p.config.limits, p.config.payload_pool_mib);
            self.host
                .diagnostics
                .values_cut_when_recorded(&cut, limits, pool_mib);
            self.shared_cut_seen = shared;
        }
    }

    /// `record_outcome` while running, when something changed and the
    /// last write is `outcome::EVERY` old: a process killed leaves a file
    /// at most that old.
    fn record_outcome_if_due(&mut self) {
        // Called every batch: the counts only when the time has come.
        let now = Instant::now();
        if !self.outcome.time_due(now) {
            return;
        }
        let counts = Counts::of(&self.pipeline.stats.snapshot(&self.pipeline.slab));
        if self.outcome.due(&counts, now) {
            self.record_outcome(outcome::State::Running);
        }
    }

    /// How long to sleep with nothing to export: the schedule delay, or
    /// less while spooled batches wait for the backend's next probe.
    fn idle_wait(&self, schedule_delay: Duration) -> Duration {
        if !(self.replays_spool && self.host.spool_pending) {
            return schedule_delay;
        }
        let probe = match self.delivery.replay_held_until() {
            Some(until) => until.saturating_duration_since(Instant::now()),
            None => PROBE_INTERVAL,
        };
        schedule_delay.min(probe.max(Duration::from_millis(10)))
    }

    /// Runs `work`, catching a panic: the thread reports it (callback and
    /// counter), gives back what it held, counts what it lost, and goes on.
    fn guarded(&mut self, work: impl FnOnce(&mut Exporter)) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| work(self))) {
            self.after_panic(payload);
        }
    }

    fn after_panic(&mut self, payload: Box<dyn Any + Send>) {
        let p = Arc::clone(&self.pipeline);
        p.in_flight
            .body
            .store(std::ptr::null_mut(), Ordering::Release);
        self.delivery.let_go_of_journal();
        // A panic inside a recovery's held calls (`DeliveryHost::hold_told`)
        // must not leave every later call held.
        p.callback.let_out();
        let held = &self.indexes[self.released.min(self.indexes.len())..];
        if !held.is_empty() {
            p.slab.release_all(held, &p.pool, &mut self.chunks);
        }
        let counted_as_unsettled = std::mem::take(&mut self.held_through_send).min(held.len());
        let lost =
            (held.len() - counted_as_unsettled) as u64 + std::mem::take(&mut self.host.unsettled);
        self.released = self.indexes.len();
        let what = panic_text(&payload);
        Stats::add(&p.stats.exporter_panics, 1);
        if lost > 0 {
            Stats::add(&p.stats.batches_failed, 1);
            Stats::add(&p.stats.dropped_export_failed, lost);
        }
        let message = format!(
            "the exporter caught an internal error ({what}); {} lost; it goes on",
            n_spans(lost)
        );
        p.report(ExportEvent::ExporterPanicked, &message);
        self.host.diagnostics.error(&message);
        // A spool file that caused it was set aside: tell of it now.
        self.report_set_aside();
    }

    /// Keeps the exporter's CPU share at or below the configured cap: after
    /// a drain that used `cpu` ns of CPU in `wall` ns, it rests long enough
    /// that cpu / (wall + rest) is the cap. Never while the queue is half
    /// full or a flush or stop is waiting, so throttling cannot cost a span
    /// or delay a flush; nor while a begin waits for a free slot: the cap
    /// keeps the exporter off the application's CPU, and an application
    /// blocked on the slots this rest keeps back gains nothing from it
    /// (with the default 4,096 slots, a thread recording flat out waited
    /// out each rest: BENCHMARKS.md, "Default settings"). Counts the rest
    /// taken, not the one planned.
    fn throttle(&self, cpu0: u64, wall0: u64) {
        let p = &self.pipeline;
        let cap = p.config.exporter_max_cpu_percent.clamp(1, 100) as u64;
        if cap >= 100 {
            return;
        }
        let cpu = thread_cpu_ns().saturating_sub(cpu0);
        let wall = crate::span::clock::monotonic_ns().saturating_sub(wall0);
        let rest = (cpu * 100 / cap).saturating_sub(wall).min(10_000_000);
        if rest < 100_000 {
            return; // not worth a sleep
        }
        let pressure = self.host.pressure;
        let rest_began = Instant::now();
        // `full_waiters` is raised before the begin's wake, which takes
        // the mutex `wait_for_work` looks at this under: no waiter is
        // missed.
        p.signal.wait_for_work(Duration::from_nanos(rest), || {
            p.signal.stop.load(Ordering::Acquire)
                || p.signal.flush_pending()
                || p.slab.ended_len() >= pressure
                || p.full_waiters.load(Ordering::Relaxed) > 0
        });
        let rested = u64::try_from(rest_began.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Stats::add(&p.stats.exporter_throttled_ns, rested);
        p.rests_taken.fetch_add(1, Ordering::Relaxed);
        p.rests_planned_ns.fetch_add(rest, Ordering::Relaxed);
        if rested >= rest && p.full_waiters.load(Ordering::Relaxed) > 0 {
            p.rests_run_out_over_a_waiter
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Exports batches while a batch's worth is queued (or a flush or stop
    /// waits), until the process is about to die; answers flush calls on
    /// the way. Returns how many spans it took.
    ///
    /// A flush is answered once the spans ended before it are sent, not when
    /// the queues are empty, which under steady load they may never be. The
    /// epoch is read before the queues' tails, so every span ended before
    /// that flush call is below its queue's mark (`flush_marks`).
    fn drain(&mut self) -> usize {
        let p = Arc::clone(&self.pipeline);
        let mut total = 0;
        let signal = &p.signal;
        let batch = p.config.max_export_batch_size as usize;
        // The flush being answered (its marks are in `flush_marks`).
        let mut answering: Option<u64> = None;
        loop {
            let requested = signal.flush_requested.load(Ordering::Acquire);
            if answering.is_none() && requested > signal.flush_completed.load(Ordering::Acquire) {
                p.slab.ended_marks(&mut self.flush_marks);
                answering = Some(requested);
            }
            if self.replaced() {
                // The stand-in's queue, and `busy` is its to say.
                return total;
            }
            // SeqCst pairs with `watchdog::crash::freeze_and_dump`: either it sees us
            // busy and waits, or we see it frozen and take nothing.
            signal.busy.store(true, Ordering::SeqCst);
            if signal.frozen.load(Ordering::SeqCst) {
                signal.busy.store(false, Ordering::SeqCst);
                return total;
            }
            self.indexes.clear();
            self.released = 0;
            self.taken = 0;
            self.guarded(|e| e.drain_one_batch(batch));
            let taken = self.taken;
            total += taken;
            if self.replaced() {
                // Came back from the request it was stuck in: its batch
                // is settled; the rest (the flush it was answering, `busy`)
                // is the stand-in's.
                return total;
            }
            signal.busy.store(false, Ordering::SeqCst);
            if let Some(epoch) = answering {
                // Nothing taken means every queue was empty, so past its
                // mark too.
                if taken == 0 || p.slab.ended_passed(&self.flush_marks) {
                    // Not taken back at the answer: spans spooled before
                    // a later flush are still only in the spool when it is
                    // answered, until a replay empties the spool.
                    let spooled = signal.spooled_not_replayed.load(Ordering::Relaxed);
                    // The whole slab free again for what follows a flush.
                    p.slab.give_back_aging(&mut self.aging);
                    // The watchdog's flush before the process dies of a
                    // signal: the last record says so, with the counts as
                    // they are now. Left at its last periodic write, `why`
                    // told a process stopped with SIGTERM (docker stop,
                    // Ctrl-C) that it was killed and to stop it with
                    // SIGTERM.
                    let dying_of = signal.flushing_for_signal.load(Ordering::Relaxed);
                    if dying_of != 0 {
                        self.guarded(|e| e.record_outcome(outcome::State::EndingOf(dying_of)));
                    }
                    signal.complete_flush(epoch, spooled);
                    answering = None;
                }
            }
            // Go on while there is a flush to answer, a stop, or another
            // batch's worth: a remainder that arrived during this send
            // waits for the next wake-up, not a request of its own.
            let more = answering.is_some()
                || signal.stop.load(Ordering::Acquire)
                || p.slab.ended_len() >= signal.batch_target.0.load(Ordering::Relaxed) as usize;
            if taken == 0 || signal.stop.load(Ordering::Acquire) {
                // Nothing more to take (a thread out of slots wakes us
                // for these), or stopping: every held slot back.
                p.slab.give_back_aging(&mut self.aging);
            }
            if taken == 0 || !more {
                return total;
            }
        }
    }

    /// Takes up to `batch` ended spans and exports them; leaves how many it
    /// took in `self.taken`.
    fn drain_one_batch(&mut self, batch: usize) {
        let slab = &self.pipeline.slab;
        // Two passes: the first reads only queue cells and asks for every
        // slot's first lines, so their fetches overlap; the second reads
        // each header (there by then, or on its way) and asks for the
        // lines the span wrote past them. One pass waited for each
        // header before asking for the next.
        slab.pop_ended_into(&mut self.indexes, batch);
        for &i in &self.indexes {
            slab.prefetch_for_encoding(i);
        }
        // The second pass also notes, for the whole batch, what two later
        // passes looked for span by span (`BatchLook`): 702 -> 684
        // instructions a span on the exporter (`make bench-compare
        // COMPARE_ARGS=--instructions`, the `export` row), and two fewer
        // reads of every record's first lines.
        let mut look = BatchLook::default();
        for &i in &self.indexes {
            slab.mark_exporting(i);
            slab.prefetch_written(i);
            look.note(slab.slot(i));
        }
        self.taken = self.indexes.len();
        if !self.indexes.is_empty() {
            self.export_taken(look);
        }
    }

    /// Encodes the taken slots in requests within the size limit, gives each
    /// part's slots back once encoded, and delivers it.
    fn export_taken(&mut self, look: BatchLook) {
        let p = Arc::clone(&self.pipeline);
        // Spans the sampler left out are given back unsent.
        if look.any_unsampled() {
            let (recording, unsampled): (Vec<u32>, Vec<u32>) = self
                .indexes
                .iter()
                .partition(|&&i| is_recording(p.slab.slot(i)));
            p.slab.release_all(&unsampled, &p.pool, &mut self.chunks);
            Stats::add(&p.stats.spans_unsampled, unsampled.len() as u64);
            self.indexes = recording;
        }
        if p.resource_changed.swap(false, Ordering::AcqRel) {
            // Set at run time (a bridged provider's resource, over the
            // configured one; its tracers' scope attributes), from this
            // batch on.
            // Read, not taken: a forked child's tracer starts with it.
            let given = p.resource_given.lock().ok().and_then(|g| g.clone());
            let mut resource = match given {
                Some(given) => ResourceInfo::configured(&p.config).overridden(&given),
                // As given (`resource` may be cut: cut again below).
                None => (*self.resource_given).clone(),
            };
            if let Ok(table) = p.scope_table.lock() {
                resource.scopes = table
                    .iter()
                    .map(|s| ScopeAttributes {
                        name: s.name.clone(),
                        version: s.version.clone(),
                        schema_url: s.schema_url.clone(),
                        attributes: s
                            .attributes
                            .iter()
                            .map(|(k, v)| (k.clone(), attr_value(v)))
                            .collect(),
                    })
                    .collect();
            }
            let given = Arc::new(resource.clone());
            let before = std::mem::replace(&mut self.resource_given, given);
            if !self.depth_cut.is_empty() {
                // Cut as the one it replaces was, where it is that deep:
                // one request a batch, not five found out again. A value
                // the one before did not hold is counted now.
                let cut = resource.cut_to_depth(&self.depth_cut, SAFE_VALUE_DEPTH);
                // The values of the one it replaces that are cut were
                // counted (cut up front, or refused and taken cut); a value
                // counted before (set again, carried over when only scopes
                // change, set back after another) is not counted again.
                let before_cut = before.cut_to_depth(&self.depth_cut, SAFE_VALUE_DEPTH);
                for value in before.depth_cut_values(&before_cut) {
                    self.depth_counted.count(value);
                }
                let shared = resource
                    .depth_cut_values(&cut)
                    .into_iter()
                    .filter(|&value| self.depth_counted.count(value))
                    .count() as u64;
                // Said as cut before sending, not as refused: the server
                // never saw it.
                Stats::add(&p.stats.values_truncated, shared);
                self.host
                    .diagnostics
                    .shared_values_cut_up_front(shared, SAFE_VALUE_DEPTH);
                resource = cut;
            }
            self.resource = Arc::new(resource);
        }
        let mut resource = Arc::clone(&self.resource);
        let total = self.indexes.len();
        let mut start = 0;
        while start < total {
            let (n, cut) = {
                // Views of the slots not yet sent, dropped before any of
                // them is released below.
                let pool: &dyn OverflowSource = &p.pool;
                let mut views = self.views.lend();
                views.extend(
                    self.indexes[start..]
                        .iter()
                        .map(|&i| SpanView::new(p.slab.slot(i), pool)),
                );
                if start == 0 && look.any_losses() {
                    // These are every taken span: counted once, from the
                    // views the first request is encoded from.
                    let cut = count_record_losses(&p.stats, &views);
                    let (limits, pool_mib) = (&p.config.limits, p.config.payload_pool_mib);
                    self.host
                        .diagnostics
                        .values_cut_when_recorded(&cut, limits, pool_mib);
                }
                self.encoder.set_lone_limit(self.delivery.lone_span_limit());
                let n = self.encoder.encode_prefix(&resource, &views);
                self.views.give_back(views);
                // Values the span budget cut to make a span fit: counted
                // now, and carried with the request so that a later cut of
                // them (a 413) does not count them again.
                let cut = self.encoder.take_cut_values();
                Stats::add(&p.stats.values_truncated, cut);
                if cut > 0 {
                    let limit = self.cut_limit_text();
                    self.host.diagnostics.values_cut(cut, &limit);
                }
                let attributes = self.encoder.take_resource_attributes_dropped();
                if attributes > 0 {
                    let limit = self.size_limit_text();
                    self.host.record(Outcome::ResourceCut {
                        attributes,
                        limit: &limit,
                    });
                }
                (n, cut)
            };
            if n == 0 {
                // Alone over the limit: nothing to send.
                p.slab
                    .release_all(&self.indexes[start..start + 1], &p.pool, &mut self.chunks);
                self.released = start + 1;
                let reason = self.encoder.nothing_fits_reason(&self.size_limit_text());
                self.host.record(Outcome::Lost {
                    origin: Origin::Fresh,
                    spans: 1,
                    reason: &reason,
                });
                start += 1;
                continue;
            }
            let end = start + n;
            // The flight recorder's journal must hold the bytes before the
            // slots stop holding the spans, or a SIGKILL in between would
            // lose them. Without one (a full disk, a request over the
            // spool's cap), the slots hold them until the answer: given
            // back before it, a SIGKILL during the send lost the batch
            // uncounted.
            let journaled = self.journal_encoded(n as u64, cut);
            if !journaled {
                self.held_through_send = n;
                self.send_encoded(n as u64, cut);
                self.held_through_send = 0;
            }
            // The bytes hold the spans now: the slots can take new spans
            // while this part is sent and retried, however long a hanging
            // backend takes. A crash from here on spools the bytes (crash
            // handler); the parts not yet encoded are still in their slots.
            // Given back in slot order (in place: nothing allocated). The
            // free stack links them in the order given, and a thread's
            // refill walks that chain, each read of `next` waiting for the
            // one before. Refills interleave batches, so in the order taken
            // the chain became a random walk over the array, nearly every
            // step a line fetched from this core (refill: 4.3% of a
            // recording loop's samples with the exporter busy); in slot
            // order it runs through a few lines that the thread asks for
            // ahead (`FreeStack::prefetch_chain`). A radix sort: see
            // `slot_order`.
            sort_slot_numbers(&mut self.indexes[start..end], &mut self.sort_scratch);
            // Held a while before the free stack (`buffer::aging`).
            p.slab.release_aging(
                &self.indexes[start..end],
                &p.pool,
                &mut self.chunks,
                &mut self.aging,
            );
            self.released = end;
            if journaled {
                self.send_encoded(n as u64, cut);
            }
            // A resource or scope value nested too deep for the server,
            // which took its request cut (counted then): cut so from this
            // request on, not found again by refusals in every batch; and
            // so a resource or scope set anew (above).
            let deep = self.delivery.take_shared_depth_cut();
            if !deep.is_empty() {
                for of in &deep {
                    // Bounded as the scopes given attributes are at once
                    // (and the resource); past it, one found out again.
                    let room = crate::span::limits::MAX_SCOPES_WITH_ATTRIBUTES + 1;
                    if !self.depth_cut.contains(of) && self.depth_cut.len() < room {
                        self.depth_cut.push(of.clone());
                    }
                }
                self.resource = Arc::new(self.resource.cut_to_depth(&deep, SAFE_VALUE_DEPTH));
                resource = Arc::clone(&self.resource);
            }
            start = end;
        }
    }

    /// The size limit a span alone must fit, and what sets it, for the
    /// line that says values were cut to fit it: over `max_request_bytes`
    /// a span goes whole in a request of its own up to the lone-span limit
    /// (`Delivery::lone_span_limit`); only beyond it are values cut.
    fn cut_limit_text(&self) -> String {
        // A spool cap small enough leaves a span alone no more room than
        // a line of several: the line limit is what cut it then.
        let line = self.pipeline.config.sink_max_line_bytes;
        if self.file_sink && self.encoder.lone_limit() < line {
            return self.size_limit_text();
        }
        if self.file_sink {
            return format!(
                "one line of the local sink, a span alone ({} bytes: 64 MiB, the longest line \
                 spanguard show reads, or half SPANGUARD_SPOOL_MAX_BYTES if less)",
                self.encoder.lone_limit() + 1
            );
        }
        format!(
            "a request of one span ({} bytes: SPANGUARD_MAX_REQUEST_BYTES or, if larger, 64 MiB \
             or half SPANGUARD_SPOOL_MAX_BYTES, whichever is less; for an hour after the backend \
             refused a larger one with 413, what it took)",
            self.encoder.lone_limit()
        )
    }

    /// The size limit a request must fit, and what raises it, for the
    /// lines that say what was cut or lost to fit it.
    fn size_limit_text(&self) -> String {
        let config = &self.pipeline.config;
        if self.file_sink {
            format!(
                "one line of the local sink ({} bytes; SPANGUARD_SINK_MAX_LINE_BYTES raises it, but a Collector's otlpjsonfile receiver drops lines over its max_log_size, 1 MiB by default)",
                config.sink_max_line_bytes
            )
        } else {
            format!(
                "one request ({} bytes; raise SPANGUARD_MAX_REQUEST_BYTES if the backend takes larger ones)",
                config.max_request_bytes
            )
        }
    }

    /// With the flight recorder, writes the encoded request to the spool
    /// (not fsynced: it must outlive the process, not the machine), locked
    /// while it is in flight; with the values the encoder cut and counted,
    /// so that a replay that cuts them again does not count them again,
    /// and where they are (`RequestEncoder::cut_at`), so that a replay
    /// whose depth rescue empties one does not count it again either.
    /// Returns whether the slots may be given back before the answer: no
    /// flight recorder, or the journal written.
    fn journal_encoded(&mut self, spans: u64, cut_counted: u64) -> bool {
        let Some(flight) = self.pipeline.flight.as_ref() else {
            return true;
        };
        // Named in the journal's name, for recovery to pair them.
        let flight_id = crate::export::spool::flight_id_of(&flight.path);
        let journal = self
            .delivery
            .spool()
            .write_journal(
                self.encoder.format,
                self.encoder.gzip,
                (spans as u32, cut_counted, self.encoder.cut_at()),
                self.encoder.body(),
                flight_id,
            )
            .ok();
        let written = journal.is_some();
        self.delivery.set_journal(journal);
        written
    }

    /// Delivers the encoded request, publishing it for the crash handler
    /// while it is in flight.
    fn send_encoded(&mut self, spans: u64, cut_counted: u64) {
        let p = Arc::clone(&self.pipeline);
        let body = self.encoder.body();
        let inflight = &p.in_flight;
        // A stand-in's request is spooled at once, and the batch published
        // is the stuck exporter's, which holds it still.
        if !self.stand_in {
            inflight.len.store(body.len(), Ordering::Relaxed);
            inflight.spans.store(spans as u32, Ordering::Relaxed);
            inflight.cut_counted.store(cut_counted, Ordering::Relaxed);
            inflight.flags.store(
                (self.encoder.format == BodyFormat::Json) as u32 | (self.encoder.gzip as u32) << 1,
                Ordering::Relaxed,
            );
            inflight
                .body
                .store(body.as_ptr() as *mut u8, Ordering::Release);
        }
        self.host.unsettled = spans;
        let request = Request {
            body,
            format: self.encoder.format,
            gzipped: self.encoder.gzip,
            spans,
            origin: Origin::Fresh,
            cut_counted,
            cut_at: self.encoder.cut_at(),
        };
        if self.file_sink && body.len() >= p.config.sink_max_line_bytes {
            self.host
                .diagnostics
                .long_sink_line(body.len() + 1, p.config.sink_max_line_bytes);
        }
        self.delivery.deliver(&request, &mut self.host);
        if !self.stand_in {
            inflight.body.store(std::ptr::null_mut(), Ordering::Release);
        }
        // A batch spooled is named: the first name may have found the
        // spool's key unusable.
        self.report_unusable_key();
        if self.file_sink {
            // The sink opens its file at its first write, and may have
            // moved something planted at its name out of the way.
            self.report_set_aside();
        }
    }

    /// Sends the spans that dead processes left in crash dumps and flight
    /// files, a batch at a time, through the same delivery path (spooled
    /// when it fails). Files a live process holds are left for a later
    /// call; files that cannot be read are set aside and reported.
    fn recover_leftovers(&mut self) {
        if self.stand_in {
            return; // it sends nothing: the next process recovers them
        }
        let p = Arc::clone(&self.pipeline);
        // Our flight file's record lock, again: a close of it elsewhere in
        // this process, which its `OpenHere` did not keep away (it had no
        // slot), let go of it (`files::try_record_lock`).
        for flight in p.flight.iter() {
            let _ = crate::buffer::files::try_record_lock(flight.file.file());
        }
        let own: Vec<&std::path::Path> = p.flight.iter().map(|f| f.path.as_path()).collect();
        let done = recovery::recover_dir(
            &p.config.spool_dir,
            &own,
            p.config.max_export_batch_size as usize,
            &mut self.delivery,
            &mut self.encoder,
            &mut self.host,
        );
        // A file of nothing to send (a flight file whose process ended
        // with every span delivered) is no news.
        for file in done.files.iter().filter(|f| f.spans > 0) {
            Stats::add(&p.stats.recovered_spans, file.spans);
            let path = file.path.display().to_string();
            self.host
                .diagnostics
                .recovered(file.spans, file.pid, file.signal, &path);
        }
        if done.spool_batches {
            self.host.spool_pending = true;
        }
        self.report_set_aside();
    }

    /// Counts and reports the files the spool, recovery or the file sink
    /// set aside (`SetAsideNews`).
    fn report_set_aside(&mut self) {
        let p = Arc::clone(&self.pipeline);
        let mut set_aside = self.delivery.spool().take_set_aside();
        set_aside.extend(self.delivery.take_transport_set_aside());
        set_aside.extend(self.outcome.take_set_aside());
        set_aside.extend(super::sender_key::take_set_aside(
            self.delivery.spool().dir(),
        ));
        Stats::add(&p.stats.files_set_aside, set_aside.len() as u64);
        // A few by name, the rest summed up: one line and one callback a
        // file was 100,000 of each for a directory of torn or planted files.
        let files = set_aside
            .iter()
            .map(|f| (f.path.as_path(), f.reason.as_str()));
        for message in self.set_aside_news.messages(Instant::now(), files) {
            self.host.diagnostics.set_aside(&message);
            self.outcome.note_set_aside(&message);
        }
        for file in self.delivery.spool().take_miscounted() {
            let path = file.path.display().to_string();
            self.host
                .diagnostics
                .spool_miscounted(&path, file.claimed, file.counted);
        }
        self.report_unusable_key();
    }

    /// Says the spool's sender key that this process could not read or
    /// make (`sender_key::take_untold`: once a process, whichever tracer's
    /// exporter comes first). Its files then wait for `spanguard replay`,
    /// and nothing said so: a restart set up alike left them, unsaid why.
    fn report_unusable_key(&mut self) {
        for message in super::sender_key::take_untold() {
            self.host.diagnostics.warn(&message);
        }
    }

    /// Spans this sender was refused go when what decided the refusal
    /// changed while it runs (its TLS files renewed:
    /// `Delivery::sender_renewed`): the spool is replayed for them now,
    /// not by the next process.
    fn notice_sender_renewed(&mut self) {
        if !self.replays_spool || !self.delivery.sender_renewed() {
            return;
        }
        self.host.spool_pending = true;
        self.host.diagnostics.info(&format!(
            "the TLS files of {} changed: the spans refused under the old ones are sent again",
            self.host.target
        ));
    }

    /// Replays the spool when something waits in it and the backend is not
    /// known to be down: at start, after each wake-up, and about once a
    /// second (the probe) while the backend is down. A stopping exporter
    /// with time left waits for the probe moment, so spans spooled while
    /// the backend was briefly down are not left for the next process.
    fn replay_if_due(&mut self) {
        if !self.replays_spool || !self.host.spool_pending {
            return;
        }
        if let Some(until) = self.delivery.down_until() {
            let wait = until.saturating_duration_since(Instant::now());
            if !self.host.stopping() {
                return;
            }
            if self.delivery.silent() {
                // The backend gave no answer (refused, never answered):
                // no Retry-After to wait for, and waiting for the probe
                // moment tells nothing a probe now does not. The probe
                // is given `PROBE_TIMEOUT` at most (`Delivery::attempt`):
                // a backend that accepts and never answers cost the
                // shutdown a second whole request timeout here (21 s of a
                // 30 s shutdown); one that was a blip during the flush
                // gets the spans it spooled now, not from the next
                // process. Once: the stop's loop passes here again while
                // an end is caught between its halves.
                if self.stop_probed {
                    return;
                }
                self.stop_probed = true;
                self.delivery.probe_now();
            } else if self.host.time_left_after(wait) {
                std::thread::sleep(wait);
            } else {
                return;
            }
        }
        if self.host.busy() {
            return;
        }
        if self.delivery.replay_spool(&mut self.host) {
            self.host.spool_pending = false;
            // What was spooled has been delivered since.
            self.pipeline
                .signal
                .spooled_not_replayed
                .store(false, Ordering::Relaxed);
        }
        self.report_set_aside();
    }

    /// Tells that values were cut for want of pool room since the last
    /// look (noted on the recording path, told here, never there).
    /// And of values that waited for chunks, cut or not.
    fn notice_pool_used_up(&mut self) {
        let mib = self.pipeline.config.payload_pool_mib;
        if self.pipeline.pool.take_ran_out() {
            self.host.diagnostics.pool_used_up(mib);
        }
        let waits = self.pipeline.stats.payload_waits.load(Ordering::Relaxed);
        if waits > self.payload_waits_seen {
            self.host
                .diagnostics
                .pool_waited(waits - self.payload_waits_seen, mib);
            self.payload_waits_seen = waits;
        }
    }

    /// Tells of spans that found no free slot since the last look (counted
    /// on the recording path, told here, never there).
    fn notice_buffer_full(&mut self) {
        let now = self
            .pipeline
            .stats
            .dropped_buffer_full
            .load(Ordering::Relaxed);
        if now > self.buffer_full_seen {
            self.host
                .diagnostics
                .buffer_full(now - self.buffer_full_seen);
            self.buffer_full_seen = now;
        }
    }
}

/// The exporter's side of the delivery path: waits that a stop, queue
/// pressure or a flush cut short; counters, the callback and stderr.
struct ExporterHost {
    pipeline: Arc<Pipeline>,
    diagnostics: Diagnostics,
    target: String,
    spool_dir: String,
    /// Spans of the fresh request being delivered that no outcome has
    /// accounted for yet (a panic counts them lost).
    unsettled: u64,
    /// The spool holds files to replay.
    spool_pending: bool,
    /// Ended spans that make the exporter spool rather than wait.
    pressure: usize,
    /// A stand-in's (`Exporter::stand_in`): the batch in flight published
    /// for a dump is the stuck exporter's, never cleared by it.
    stand_in: bool,
}

impl ExporterHost {
    /// Whether the shutdown under way leaves time for `wait` and then one
    /// more request.
    fn time_left_after(&self, wait: Duration) -> bool {
        let p = &self.pipeline;
        let need = wait.saturating_add(p.config.request_timeout);
        let need_ns = need.as_nanos().min(u64::MAX as u128) as u64;
        crate::span::clock::monotonic_ns().saturating_add(need_ns)
            < p.signal.stop_deadline_ns.load(Ordering::Relaxed)
    }
}

impl DeliveryHost for ExporterHost {
    fn wait(&mut self, wait: Duration) -> bool {
        let p = &self.pipeline;
        let pressure = self.pressure;
        let wait_ns = wait.as_nanos().min(u64::MAX as u128) as u64;
        let ends_at = crate::span::clock::monotonic_ns().saturating_add(wait_ns);
        let cut_short = || {
            p.signal.stop.load(Ordering::Acquire)
                || p.slab.ended_len() >= pressure
                || (p.signal.flush_pending()
                    && p.signal.flush_deadline_ns.load(Ordering::Relaxed) < ends_at)
        };
        p.signal.wait_for_work(wait, cut_short);
        !cut_short()
    }

    fn stopping(&self) -> bool {
        self.pipeline.signal.stop.load(Ordering::Acquire)
    }

    fn hold_told(&mut self) {
        self.pipeline.callback.hold();
    }

    fn let_told_out(&mut self) {
        self.pipeline.callback.let_out();
    }

    /// A flush call waits, or a shutdown has begun (its flushes come
    /// before the stop).
    fn awaited(&self) -> bool {
        let p = &self.pipeline;
        p.signal.flush_pending() || p.lifecycle() != crate::pipeline::LIFECYCLE_RUNNING
    }

    /// Replay gives way to spans waiting (a half-full queue, a flush); once
    /// stopping, it goes on until the shutdown's deadline. (It used to stop
    /// unless a whole request timeout was left, 10 s by default: with the
    /// README's 5 s shutdown a short-lived process replayed almost nothing
    /// at its stop, and spool files piled up. A request still in flight at
    /// the deadline is abandoned, its file kept for the next replay.)
    fn busy(&self) -> bool {
        let p = &self.pipeline;
        if p.signal.flush_pending() || p.slab.ended_len() >= self.pressure {
            return true;
        }
        p.signal.stop.load(Ordering::Acquire)
            && crate::span::clock::monotonic_ns()
                >= p.signal.stop_deadline_ns.load(Ordering::Relaxed)
    }

    fn record(&mut self, outcome: Outcome<'_>) {
        let p = Arc::clone(&self.pipeline);
        let s = &p.stats;
        if let Outcome::Delivered { origin, spans, .. }
        | Outcome::Rejected { origin, spans, .. }
        | Outcome::Lost { origin, spans, .. }
        | Outcome::Kept { origin, spans, .. } = outcome
            && origin.is_fresh()
        {
            // More spans accounted for than the request held is a double
            // count (a span both delivered and lost): the saturation keeps
            // the release build's dump logic sound, the assertion makes
            // every debug test run (make test-rust) a check of it.
            debug_assert!(
                spans <= self.unsettled,
                "{spans} spans accounted for, {} unsettled: counted twice",
                self.unsettled
            );
            self.unsettled = self.unsettled.saturating_sub(spans);
            if self.unsettled == 0 && !self.stand_in {
                // Every span of the request in flight is on record (sent,
                // spooled, counted lost): a dump from now on must not write
                // it again. One was made while the callback told of this
                // very outcome (a shutdown leaving this thread stuck in
                // it, a crash there), and a spooled batch arrived twice.
                p.in_flight
                    .body
                    .store(std::ptr::null_mut(), Ordering::Release);
            }
        }
        match outcome {
            Outcome::Delivered {
                origin,
                spans,
                bytes,
            } => {
                Stats::add(&s.batches_sent, 1);
                Stats::add(&s.bytes_sent, bytes);
                if origin.is_fresh() {
                    Stats::add(&s.spans_exported, spans);
                } else {
                    Stats::add(&s.replayed_batches, 1);
                    Stats::add(&s.replayed_spans, spans);
                    p.report(
                        ExportEvent::BatchReplayed,
                        &format!(
                            "{} from the spool delivered to {}",
                            n_spans(spans),
                            self.target
                        ),
                    );
                }
                self.diagnostics.delivered(&self.target);
            }
            Outcome::Rejected {
                origin,
                spans,
                message,
            } => {
                let counter = if origin.is_fresh() {
                    &s.dropped_rejected
                } else {
                    &s.dropped_replay_rejected
                };
                Stats::add(counter, spans);
                let text = format!("the backend rejected {}: {message}", n_spans(spans));
                p.report(ExportEvent::SpansRejected, &text);
                // Without the count, which the line gives: with it, each
                // rejection was a new cause, said in full every time.
                self.diagnostics
                    .lost(spans, &format!("the backend rejected them: {message}"));
            }
            Outcome::Warned { spans, message, .. } => {
                self.diagnostics.accepted_with_warning(spans, message)
            }
            Outcome::Lost {
                origin,
                spans,
                reason,
            } => {
                Stats::add(&s.batches_failed, 1);
                let (counter, from) = if origin.is_fresh() {
                    (&s.dropped_export_failed, "")
                } else {
                    (&s.dropped_replay_failed, " from the spool")
                };
                Stats::add(counter, spans);
                let text = format!(
                    "{}{from} lost sending to {}: {reason}",
                    n_spans(spans),
                    self.target
                );
                p.report(ExportEvent::BatchFailed, &text);
                self.diagnostics
                    .lost(spans, &format!("{reason} ({})", self.target));
            }
            Outcome::Kept {
                origin,
                spans,
                reason,
                written,
                for_other_sender,
            } => {
                if !written {
                    return; // a spool file left in place: nothing new
                }
                self.spool_pending = true;
                if origin.is_fresh() {
                    Stats::add(&s.spooled_batches, 1);
                    // Set before the count (a Release add): a flush that
                    // sees these spans dealt with sees them spooled
                    // (`Pipeline::nothing_to_flush`).
                    p.signal.spooled_not_replayed.store(true, Ordering::Relaxed);
                    Stats::add(&s.spooled_spans, spans);
                }
                if for_other_sender {
                    self.diagnostics.kept_for_other_sender(
                        spans,
                        !origin.is_fresh(),
                        &self.spool_dir,
                        reason,
                    );
                } else {
                    self.diagnostics
                        .spooled(spans, !origin.is_fresh(), &self.spool_dir, reason);
                }
            }
            Outcome::Cut { values, limit, .. } => {
                Stats::add(&s.values_truncated, values);
                self.diagnostics.values_cut(values, limit);
            }
            Outcome::Emptied {
                values,
                shared,
                depth,
                ..
            } => {
                Stats::add(&s.values_truncated, values + shared);
                self.diagnostics.values_emptied(values, depth);
                self.diagnostics.shared_values_emptied(shared, depth);
            }
            Outcome::ResourceCut { attributes, limit } => {
                Stats::add(&s.attributes_dropped, attributes);
                self.diagnostics.resource_cut(attributes, limit);
            }
            Outcome::Evicted { files, spans } => {
                Stats::add(&s.dropped_spool_overflow, spans);
                let text = format!(
                    "spool over its cap: {} with {} deleted",
                    count(files, "older batch", "older batches"),
                    n_spans(spans)
                );
                p.report(ExportEvent::SpoolOverflow, &text);
                self.diagnostics.lost(spans, &text);
            }
            Outcome::AttemptFailed { reason } => {
                self.diagnostics.attempt_failed(&self.target, reason);
            }
            Outcome::Retrying { .. } => Stats::add(&s.retries, 1),
            Outcome::SpoolSize { bytes } => s.spool_bytes.store(bytes, Ordering::Relaxed),
        }
    }
}

/// What a caught panic said.
fn panic_text(payload: &Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_string()
    }
}

/// CPU time this thread has used, in nanoseconds (the exporter's share
/// of a core; tests' bounds on work that a loaded machine does not move).
pub(crate) fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whether a begin waits for a slot (under the wait policy) while spans
/// it could have are ended and queued: then they are taken now, however
/// few. Waiting for a batch's worth, the exporter ignored the begin's
/// wake whenever fewer slots than `batch_target` could ever be ended at
/// once (the rest held by open spans): with 32 slots, 26 of them open
/// and a target of 16, six ended spans waited for the schedule delay (5 s)
/// while a begin waited out its `full_wait` (200 ms) and dropped its span,
/// and the begins after it dropped theirs at once (the Go binding's
/// slot-wait test, 1 run in 15; 69 runs in 100 of the same sequence in
/// Rust). The waiter counts itself (`full_waiters`) before its wake takes
/// the signal's mutex, under which this is looked at: no wake is missed.
fn begin_waits_for_ended(p: &Pipeline) -> bool {
    p.full_waiters.load(Ordering::Relaxed) > 0 && p.slab.ended_len() > 0
}

/// `signal.wait_for_work_paced(wait, quiet, ready)`, waking on the way only to sample
/// the clock when an anchor is due (`span::clock::anchor_due_in`):
/// the wait ends when it would have, and nothing is drained early (a batch
/// stays whole, an idle exporter idle).
fn wait_calibrating(
    signal: &ExportSignal,
    wait: Duration,
    mut quiet: Duration,
    ready: impl Fn() -> bool,
) {
    let until = crate::span::clock::instant_after(Instant::now(), wait);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        // A millisecond past it, so that the sample is due when taken.
        let due = crate::span::clock::anchor_due_in()
            .map(|d| d + Duration::from_millis(1))
            .filter(|d| *d < left);
        signal.wait_for_work_paced(due.unwrap_or(left), std::mem::take(&mut quiet), &ready);
        if due.is_none() || ready() {
            return;
        }
        crate::span::clock::recalibrate();
    }
}

/// The allocation of a `Vec<SpanView>`, kept between requests. A view
/// borrows the slab for as long as a request is encoded, so the exporter
/// cannot keep the views themselves: it keeps an empty vector's memory and
/// lends it out for each request's lifetime.
#[derive(Default)]
struct ViewBuffer(Vec<SpanView<'static>>);

// SAFETY: the vector is always empty while kept here (`lend` and
// `give_back` clear it), so it shares no view, and so no reference to the
// pool or the slab, with any thread: it is memory only.
unsafe impl Send for ViewBuffer {}

impl ViewBuffer {
    /// The kept memory as an empty vector of views of any lifetime.
    fn lend<'a>(&mut self) -> Vec<SpanView<'a>> {
        let mut kept = std::mem::take(&mut self.0);
        kept.clear();
        let mut kept = std::mem::ManuallyDrop::new(kept);
        // SAFETY: an empty vector holds no view, so no reference outlives
        // anything; lifetimes do not change a type's layout, so the pointer
        // and capacity describe the same allocation for `SpanView<'a>`.
        unsafe { Vec::from_raw_parts(kept.as_mut_ptr().cast(), 0, kept.capacity()) }
    }

    /// Takes the memory back once the views are no longer needed.
    fn give_back(&mut self, mut views: Vec<SpanView<'_>>) {
        views.clear();
        let mut views = std::mem::ManuallyDrop::new(views);
        // SAFETY: as in `lend`: empty, and the same layout.
        self.0 = unsafe { Vec::from_raw_parts(views.as_mut_ptr().cast(), 0, views.capacity()) };
    }
}

/// What a batch's records say as a whole, noted as the exporter marks each
/// one EXPORTING (its first line in hand then): whether any was sampled
/// out, and whether any may have lost something (`count_record_losses`).
/// For nearly every batch both are no, and the passes that looked for them
/// span by span are skipped.
#[derive(Default, Clone, Copy)]
struct BatchLook {
    /// Every record's `marks`, or-ed.
    marks: u8,
    /// Every record's event and link counts, or-ed.
    counts: u16,
}

impl BatchLook {
    #[inline(always)]
    fn note(&mut self, r: &SpanRecord) {
        self.marks |= r.marks;
        self.counts |= r.event_count | r.link_count;
    }

    /// Whether a record of the batch is not recording (sampled out).
    fn any_unsampled(&self) -> bool {
        self.marks & MARK_NON_RECORDING != 0
    }

    /// Whether a record of the batch wrote its rest or has events or
    /// links: the only places `count_record_losses` finds a loss.
    fn any_losses(&self) -> bool {
        self.marks & MARK_HAS_REST != 0 || self.counts != 0
    }
}

/// Adds what each record could not hold to the tracer's counters; says
/// the values cut as they were recorded by the limit that cut them.
fn count_record_losses(stats: &Stats, views: &[SpanView]) -> CutWhenRecorded {
    let (mut attrs, mut events, mut links, mut truncated, mut replaced) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut cut = CutWhenRecorded::default();
    for v in views {
        let r = v.record;
        // Every count below is in the rest's line or an event's or link's
        // entry: a span that wrote none of them (nearly every one) lost
        // nothing. Seven reads and adds of zeros a span otherwise.
        if !r.wrote_rest() && r.event_count == 0 && r.link_count == 0 {
            continue;
        }
        let rest = r.rest();
        attrs += rest.dropped_attributes as u64;
        if r.event_count > 0 {
            attrs += v
                .events()
                .map(|e| e.entry.dropped_attributes as u64)
                .sum::<u64>();
        }
        if r.link_count > 0 {
            attrs += v
                .links()
                .map(|l| l.entry.dropped_attributes as u64)
                .sum::<u64>();
        }
        events += rest.dropped_events as u64;
        links += rest.dropped_links as u64;
        truncated += rest.truncated_values as u64;
        replaced += rest.replaced_utf8 as u64;
        if rest.truncated_values > 0 {
            let by = r.values_cut_by();
            cut.length_limit += by.length_limit as u64;
            cut.pool += by.pool as u64;
            cut.depth_limit += by.depth_limit as u64;
        }
    }
    cut.fixed = truncated - (cut.length_limit + cut.pool + cut.depth_limit);
    Stats::add(&stats.attributes_dropped, attrs);
    Stats::add(&stats.events_dropped, events);
    Stats::add(&stats.links_dropped, links);
    Stats::add(&stats.values_truncated, truncated);
    Stats::add(&stats.utf8_replaced, replaced);
    cut
}
