//! The exporter thread: wakes on the schedule, on a full batch or on a
//! flush, drains ended spans in batches, encodes them straight from their
//! slots, and sends them with retries. Its buffers, gzip state and transport
//! (with its connection) live as long as the thread.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::config::{Compression, Protocol};
use crate::pipeline::{ExportEvent, Pipeline};
use crate::span::record::{MARK_NON_RECORDING, OverflowSource, SpanRecord, SpanView};
use crate::stats::Stats;

use super::batch_sizer::BatchSizer;
use super::gzip::GzipWriter;
use super::otlp_json::OtlpJsonEncoder;
use super::otlp_proto::OtlpProtoEncoder;
use super::recovery::{self, Claim, Leftover};
use super::resource::ResourceInfo;
use super::retry::Backoff;
use super::spool::{ReplayVerdict, SpoolDir, SpooledBatch};
use super::transport::{BodyFormat, SendError, Transport};

/// After a batch gives up, later batches go straight to the spool until this
/// much time has passed; then one is tried again (a probe).
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// How often the exporter looks again for what dead processes left: a
/// file still locked at the last look (a live process, or a forked child
/// that held its dead parent's lock), or a worker process that died since.
const LEFTOVER_RESCAN_INTERVAL: Duration = Duration::from_secs(3);

pub struct Exporter {
    pipeline: Arc<Pipeline>,
    /// Who this tracer's spans say they come from, in every request.
    resource: Arc<ResourceInfo>,
    transport: Box<dyn Transport>,
    format: BodyFormat,
    gzip: bool,
    proto: OtlpProtoEncoder,
    json: OtlpJsonEncoder,
    gzip_writer: GzipWriter,
    indexes: Vec<u32>,
    /// The chunks of a batch's spans, given back with their slots.
    chunks: Vec<u32>,
    encoded: Vec<u8>,
    compressed: Vec<u8>,
    backoff: Backoff,
    rng: u64,
    spool: SpoolDir,
    /// While set and in the future, the backend is taken to be down.
    backend_down_until: Option<Instant>,
    /// Something was spooled since the last replay: replay after the next
    /// success.
    spool_pending: bool,
    /// After a replay stalled, the next one waits until then, so that a
    /// spool the transport cannot take is not re-read after every batch.
    next_replay: Instant,
    /// The local file sink does not replay the spool (its batches are for
    /// the network); it still recovers crash leftovers.
    replays_spool: bool,
    /// The flight recorder's copy of the batch in flight, in the spool.
    journal: Option<super::spool::Journal>,
    /// When to look for dead processes' files again.
    next_leftover_scan: Instant,
}

impl Exporter {
    pub fn new(
        pipeline: Arc<Pipeline>,
        transport: Box<dyn Transport>,
        file_sink: bool,
    ) -> Exporter {
        let config = &pipeline.config;
        // The file sink writes the Collector file exporter's format: plain JSON.
        let format = if file_sink || config.protocol == Protocol::HttpJson {
            BodyFormat::Json
        } else {
            BodyFormat::Protobuf
        };
        let gzip = !file_sink && config.compression == Compression::Gzip;
        let batch = config.max_export_batch_size as usize;
        Exporter {
            transport,
            format,
            gzip,
            proto: OtlpProtoEncoder::new(),
            json: OtlpJsonEncoder::new(),
            gzip_writer: GzipWriter::new(),
            indexes: Vec::with_capacity(batch),
            chunks: Vec::new(),
            encoded: Vec::with_capacity(batch * 512),
            compressed: Vec::with_capacity(batch * 128),
            backoff: Backoff::default(),
            rng: crate::span::clock::monotonic_ns() | 1,
            spool: SpoolDir::new(&config.spool_dir, config.spool_max_bytes),
            backend_down_until: None,
            // Batches and crash leftovers of earlier processes are sent at start.
            spool_pending: !file_sink,
            next_replay: Instant::now(),
            replays_spool: !file_sink,
            journal: None,
            next_leftover_scan: Instant::now() + LEFTOVER_RESCAN_INTERVAL,
            resource: Arc::new(ResourceInfo::new(&config.service_name, &config.resource())),
            pipeline,
        }
    }

    /// The thread's body: runs until the tracer stops it and the queue is
    /// empty.
    pub fn run(mut self) {
        let p = Arc::clone(&self.pipeline);
        // SAFETY: gettid has no preconditions.
        p.exporter_tid
            .store(unsafe { libc::gettid() }, Ordering::Relaxed);
        let mut sizer = BatchSizer::new(
            p.config.batch_ceiling(),
            p.config.schedule_delay,
            Instant::now(),
        );
        // What earlier processes left: crash dumps and flight files, then the
        // spool.
        self.recover_leftovers();
        if self.spool_pending {
            self.replay_spool();
        }
        loop {
            let batch = p.signal.batch_target.0.load(Ordering::Relaxed) as usize;
            p.signal.wait_for_work(p.config.schedule_delay, || {
                p.signal.stop.load(Ordering::Acquire)
                    || p.signal.flush_pending()
                    || p.slab.ended_len() >= batch
            });
            if p.signal.frozen.load(Ordering::Acquire) {
                // The process is dying and what is left goes to the crash
                // dump: idle (an unanswered flush would otherwise spin us).
                if p.signal.stop.load(Ordering::Acquire) {
                    break;
                }
                p.signal.sleep_unless_stopped(p.config.schedule_delay);
                continue;
            }
            crate::span::clock::recalibrate();
            let (cpu0, wall0) = (thread_cpu_ns(), crate::span::clock::monotonic_ns());
            let taken = self.drain();
            let target = sizer.observe(taken, Instant::now());
            // Every producer reads this line: write it only on a change.
            if target != batch as u32 {
                p.signal.batch_target.0.store(target, Ordering::Relaxed);
            }
            self.throttle(cpu0, wall0);
            if p.signal.stop.load(Ordering::Acquire) && p.slab.ended_len() == 0 {
                // A last look, so that what a worker process left while
                // this one ran is sent before it stops.
                self.recover_leftovers();
                break;
            }
            if Instant::now() >= self.next_leftover_scan {
                self.recover_leftovers();
                self.next_leftover_scan = Instant::now() + LEFTOVER_RESCAN_INTERVAL;
            }
        }
    }

    /// Keeps the exporter's CPU share at or below the configured cap: after
    /// a drain that used `cpu` ns of CPU in `wall` ns, it rests long enough
    /// that cpu / (wall + rest) is the cap. Never while the queue is half
    /// full or a flush or stop is waiting, so throttling cannot cost a span
    /// or delay a flush.
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
        let pressure = (p.config.max_queue_size as usize / 2).max(1);
        Stats::add(&p.stats.exporter_throttled_ns, rest);
        p.signal.wait_for_work(Duration::from_nanos(rest), || {
            p.signal.stop.load(Ordering::Acquire)
                || p.signal.flush_pending()
                || p.slab.ended_len() >= pressure
        });
    }

    /// Exports batches while a batch's worth is queued (or a flush or stop
    /// waits), until the process is about to die; answers flush calls on
    /// the way. Returns how many spans it took.
    ///
    /// A flush is answered once the spans ended before it are sent, not when
    /// the queue is empty, which under steady load it may never be. The
    /// epoch is read before the queue's length, so every span ended before
    /// that flush call is among the first `owed` spans of the (FIFO) queue.
    fn drain(&mut self) -> usize {
        let p = Arc::clone(&self.pipeline);
        let mut total = 0;
        let signal = &p.signal;
        let batch = p.config.max_export_batch_size as usize;
        // The flush being answered, and how many queued spans it waits for.
        let mut answering: Option<(u64, usize)> = None;
        loop {
            let requested = signal.flush_requested.load(Ordering::Acquire);
            if answering.is_none() && requested > signal.flush_completed.load(Ordering::Acquire) {
                answering = Some((requested, p.slab.ended_len()));
            }
            // SeqCst pairs with `watchdog::crash::freeze_and_dump`: either it sees us
            // busy and waits, or we see it frozen and take nothing.
            signal.busy.store(true, Ordering::SeqCst);
            if signal.frozen.load(Ordering::SeqCst) {
                signal.busy.store(false, Ordering::SeqCst);
                return total;
            }
            self.drain_one_batch(batch);
            let taken = self.indexes.len();
            total += taken;
            signal.busy.store(false, Ordering::SeqCst);
            if let Some((epoch, owed)) = answering {
                let owed = owed.saturating_sub(taken);
                answering = if owed == 0 || taken == 0 {
                    signal.complete_flush(epoch);
                    None
                } else {
                    Some((epoch, owed))
                };
            }
            // Go on while there is a flush to answer, a stop, or another
            // batch's worth: a remainder that arrived during this send
            // waits for the next wake-up, not a request of its own.
            let more = answering.is_some()
                || signal.stop.load(Ordering::Acquire)
                || p.slab.ended_len() >= signal.batch_target.0.load(Ordering::Relaxed) as usize;
            if taken == 0 || !more {
                return total;
            }
        }
    }

    /// Takes up to `batch` ended spans and exports them; leaves the taken
    /// indexes in `self.indexes` (empty when there was nothing).
    fn drain_one_batch(&mut self, batch: usize) {
        self.indexes.clear();
        while self.indexes.len() < batch {
            match self.pipeline.slab.take_ended() {
                Some(i) => {
                    self.pipeline.slab.prefetch_for_encoding(i);
                    self.indexes.push(i);
                }
                None => break,
            }
        }
        if !self.indexes.is_empty() {
            self.export_taken();
        }
    }

    /// Encodes the taken slots, gives them back, and sends the bytes.
    fn export_taken(&mut self) {
        let p = Arc::clone(&self.pipeline);
        let spans = {
            let pool: &dyn OverflowSource = &p.pool;
            let views: Vec<SpanView> = self
                .indexes
                .iter()
                .map(|&i| SpanView::new(p.slab.slot(i), pool))
                .filter(|v| is_recording(v.record))
                .collect();
            Stats::add(
                &p.stats.spans_unsampled,
                (self.indexes.len() - views.len()) as u64,
            );
            count_record_losses(&p.stats, &views);
            let resource = Arc::clone(&self.resource);
            if !views.is_empty() {
                self.encode(&resource, &views);
            }
            views.len() as u64
        };
        if spans == 0 {
            // Only unsampled spans: nothing to send.
            p.slab.release_all(&self.indexes, &p.pool, &mut self.chunks);
            return;
        }
        // The flight recorder's journal must hold the bytes before the slots
        // stop holding the spans, or a SIGKILL in between would lose them.
        self.journal_encoded(spans);
        // The bytes hold the spans now: the slots can take new spans while
        // this batch is sent and retried, however long a hanging backend
        // takes. A crash from here on spools the bytes (crash handler).
        p.slab.release_all(&self.indexes, &p.pool, &mut self.chunks);
        self.send_encoded(spans);
    }

    fn encode_and_send(&mut self, resource: &ResourceInfo, records: &[SpanView]) {
        self.encode(resource, records);
        self.journal_encoded(records.len() as u64);
        self.send_encoded(records.len() as u64);
    }

    /// With the flight recorder, writes the encoded batch to the spool (not
    /// fsynced: it must outlive the process, not the machine), locked while
    /// it is in flight.
    fn journal_encoded(&mut self, spans: u64) {
        if self.pipeline.flight.is_none() {
            return;
        }
        let body = if self.gzip {
            &self.compressed
        } else {
            &self.encoded
        };
        self.journal = self
            .spool
            .write_journal(self.format, self.gzip, spans as u32, body)
            .ok();
    }

    fn encode(&mut self, resource: &ResourceInfo, records: &[SpanView]) {
        match self.format {
            BodyFormat::Protobuf => self.proto.encode(resource, records, &mut self.encoded),
            BodyFormat::Json => self.json.encode(resource, records, &mut self.encoded),
        }
        if self.gzip {
            self.gzip_writer
                .compress(&self.encoded, &mut self.compressed);
        }
    }

    /// Sends the encoded batch, publishing it for the crash handler while it
    /// is in flight.
    fn send_encoded(&mut self, spans: u64) {
        // Moved out and back so the send can borrow self mutably; the
        // buffer's capacity is kept.
        let body = std::mem::take(if self.gzip {
            &mut self.compressed
        } else {
            &mut self.encoded
        });
        let p = Arc::clone(&self.pipeline);
        let inflight = &p.in_flight;
        inflight.len.store(body.len(), Ordering::Relaxed);
        inflight.spans.store(spans as u32, Ordering::Relaxed);
        inflight.flags.store(
            (self.format == BodyFormat::Json) as u32 | (self.gzip as u32) << 1,
            Ordering::Relaxed,
        );
        inflight
            .body
            .store(body.as_ptr() as *mut u8, Ordering::Release);
        self.send_with_retries(&body, spans);
        inflight.body.store(std::ptr::null_mut(), Ordering::Release);
        if let Some(journal) = self.journal.take() {
            // Still here: delivered or dropped (a spooled batch took it over).
            self.spool.forget(journal);
        }
        *(if self.gzip {
            &mut self.compressed
        } else {
            &mut self.encoded
        }) = body;
    }

    /// Sends the spans that dead processes left in crash dumps and flight
    /// files. Counted as recovered; failures spool like any batch. Files a
    /// live process holds are left for a later call; files that cannot be
    /// read are set aside and reported.
    fn recover_leftovers(&mut self) {
        let p = Arc::clone(&self.pipeline);
        let own: Vec<&std::path::Path> = p.flight.iter().map(|f| f.path.as_path()).collect();
        let batch = p.config.max_export_batch_size as usize;
        self.spool.remove_dead_temp_files();
        for path in recovery::leftover_files(&p.config.spool_dir, &own) {
            let claimed = match recovery::claim(&path, p.config.spool_max_bytes) {
                Claim::Claimed(c) => c,
                Claim::Busy | Claim::Skip => continue,
                Claim::Foreign(why) => {
                    self.spool.put_aside(&path, &why);
                    continue;
                }
            };
            match claimed.content {
                Leftover::Spans(mut reader) => {
                    let resource = ResourceInfo::new(
                        &reader.header().service_name(),
                        &reader.header().resource_attributes(),
                    );
                    let read_whole = loop {
                        match reader.next_records(batch) {
                            Ok(chunk) if chunk.is_empty() => break true,
                            Ok(chunk) => {
                                // Unsampled spans are kept only to be
                                // propagated: never exported.
                                let refs: Vec<SpanView> = chunk
                                    .iter()
                                    .filter(|(r, _)| is_recording(r))
                                    .map(|(r, overflow)| SpanView::from_disk(r, overflow))
                                    .collect();
                                if refs.is_empty() {
                                    continue;
                                }
                                Stats::add(&p.stats.recovered_spans, refs.len() as u64);
                                self.encode_and_send(&resource, &refs);
                            }
                            Err(e) => {
                                // What was read is sent; the rest stays on
                                // disk for a person, never sent twice.
                                self.spool
                                    .put_aside(&path, &format!("reading failed: {e:?}"));
                                break false;
                            }
                        }
                    };
                    // Deleted while still locked, so no one else sends it.
                    if read_whole {
                        let _ = std::fs::remove_file(&claimed.path);
                    }
                    drop(reader);
                }
                Leftover::SpoolBatch(ref name) => {
                    if std::fs::rename(&claimed.path, name).is_ok() {
                        self.spool_pending = self.replays_spool;
                    }
                }
                Leftover::Nothing => claimed.finish(),
                Leftover::Unreadable(ref why) => self.spool.put_aside(&claimed.path, why),
            }
        }
        self.report_set_aside();
    }

    /// Counts and reports the files the spool or recovery set aside.
    fn report_set_aside(&mut self) {
        let p = &self.pipeline;
        for file in self.spool.take_set_aside() {
            Stats::add(&p.stats.files_set_aside, 1);
            p.report(
                ExportEvent::FileSetAside,
                &format!("{} set aside, unread: {}", file.path.display(), file.reason),
            );
        }
    }

    fn send_with_retries(&mut self, body: &[u8], spans: u64) {
        let p = Arc::clone(&self.pipeline);
        if let Some(until) = self.backend_down_until
            && Instant::now() < until
            && !p.signal.stop.load(Ordering::Acquire)
        {
            self.spool_or_drop(body, spans, "the backend is down");
            return;
        }
        let started = Instant::now();
        let budget = p.config.export_timeout;
        // Half the queue waiting means retrying longer would make the
        // application's spans wait for slots: spool instead.
        let pressure = (p.config.max_queue_size as usize / 2).max(1);
        let mut attempt = 0u32;
        loop {
            match self.transport.send(body, self.format, self.gzip) {
                Ok(accepted) => {
                    let rejected = accepted.rejected_spans.min(spans);
                    Stats::add(&p.stats.spans_exported, spans - rejected);
                    Stats::add(&p.stats.batches_sent, 1);
                    Stats::add(&p.stats.bytes_sent, body.len() as u64);
                    if rejected > 0 {
                        Stats::add(&p.stats.dropped_rejected, rejected);
                        p.report(
                            ExportEvent::SpansRejected,
                            &format!(
                                "backend rejected {rejected} of {spans} spans: {}",
                                accepted.message
                            ),
                        );
                    }
                    self.backend_down_until = None;
                    if self.spool_pending && Instant::now() >= self.next_replay {
                        self.replay_spool();
                    }
                    return;
                }
                Err(SendError::Transient {
                    reason,
                    retry_after,
                }) => {
                    attempt += 1;
                    self.rng = self
                        .rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let wait =
                        retry_after.unwrap_or_else(|| self.backoff.delay(attempt, self.rng >> 11));
                    let stopping = p.signal.stop.load(Ordering::Acquire);
                    if stopping
                        || started.elapsed() + wait > budget
                        || p.slab.ended_len() >= pressure
                    {
                        self.backend_down_until = Some(Instant::now() + wait.max(PROBE_INTERVAL));
                        self.spool_or_drop(body, spans, &reason);
                        return;
                    }
                    Stats::add(&p.stats.retries, 1);
                    p.signal.sleep_unless_stopped(wait);
                }
                Err(SendError::Permanent { reason }) => {
                    // The backend refused this data; sending it again, now or
                    // from the spool, would be refused again.
                    self.drop_batch(spans, &reason);
                    return;
                }
            }
        }
    }

    /// Keeps a batch that could not be sent now for a later replay; drops and
    /// counts it only when the spool cannot take it.
    fn spool_or_drop(&mut self, body: &[u8], spans: u64, reason: &str) {
        let p = Arc::clone(&self.pipeline);
        let written = match self.journal.take() {
            // The flight recorder journaled this batch already: keep that file.
            Some(journal) => Ok(self.spool.keep(&journal.path)),
            None => self.spool.write(&SpooledBatch {
                format: self.format,
                gzipped: self.gzip,
                spans: spans as u32,
                body: body.to_vec(),
            }),
        };
        match written {
            Ok(eviction) => {
                self.spool_pending = self.replays_spool;
                Stats::add(&p.stats.spooled_batches, 1);
                Stats::add(&p.stats.spooled_spans, spans);
                p.report(
                    ExportEvent::BatchSpooled,
                    &format!(
                        "{spans} spans spooled to {} ({reason})",
                        self.spool.dir().display()
                    ),
                );
                if eviction.files > 0 {
                    Stats::add(&p.stats.dropped_spool_overflow, eviction.spans);
                    p.report(
                        ExportEvent::SpoolOverflow,
                        &format!(
                            "spool over its cap: {} older batches with {} spans deleted",
                            eviction.files, eviction.spans
                        ),
                    );
                }
                p.stats
                    .spool_bytes
                    .store(self.spool.total_bytes(), Ordering::Relaxed);
            }
            Err(e) => self.drop_batch(spans, &format!("{reason}; spooling failed: {e}")),
        }
    }

    fn drop_batch(&mut self, spans: u64, reason: &str) {
        let p = &self.pipeline;
        Stats::add(&p.stats.batches_failed, 1);
        Stats::add(&p.stats.dropped_export_failed, spans);
        p.report(
            ExportEvent::BatchFailed,
            &format!(
                "{spans} spans lost sending to {}: {reason}",
                self.transport.describe()
            ),
        );
    }

    /// Sends what the spool holds, oldest first, until it is empty or the
    /// backend fails again.
    fn replay_spool(&mut self) {
        let p = Arc::clone(&self.pipeline);
        let transport = &mut self.transport;
        let mut stalled = false;
        let (batches, spans) = self.spool.replay(|batch| {
            match transport.send(&batch.body, batch.format, batch.gzipped) {
                Ok(accepted) => {
                    // Replayed spans count in replayed_spans only (they were
                    // counted as spooled when they failed), so that
                    // ended = exported + spooled + dropped holds.
                    let rejected = accepted.rejected_spans.min(batch.spans as u64);
                    Stats::add(&p.stats.dropped_rejected, rejected);
                    Stats::add(&p.stats.batches_sent, 1);
                    Stats::add(&p.stats.bytes_sent, batch.body.len() as u64);
                    ReplayVerdict::Delivered
                }
                Err(SendError::Permanent { reason }) => {
                    Stats::add(&p.stats.dropped_export_failed, batch.spans as u64);
                    p.report(
                        ExportEvent::BatchFailed,
                        &format!(
                            "spooled batch of {} spans refused for good: {reason}",
                            batch.spans
                        ),
                    );
                    ReplayVerdict::Discard
                }
                Err(SendError::Transient { .. }) => {
                    stalled = true;
                    ReplayVerdict::Stop
                }
            }
        });
        self.spool_pending = stalled;
        if stalled {
            self.next_replay = Instant::now() + PROBE_INTERVAL;
        }
        if batches > 0 {
            Stats::add(&p.stats.replayed_batches, batches);
            Stats::add(&p.stats.replayed_spans, spans);
            p.report(
                ExportEvent::BatchReplayed,
                &format!("{batches} spooled batches with {spans} spans delivered"),
            );
        }
        p.stats
            .spool_bytes
            .store(self.spool.total_bytes(), Ordering::Relaxed);
        self.report_set_aside();
    }
}

/// CPU time this thread has used, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whether a record is exported: the sampler did not leave it out.
fn is_recording(r: &SpanRecord) -> bool {
    r.marks & MARK_NON_RECORDING == 0
}

/// Adds what each record could not hold to the tracer's counters.
fn count_record_losses(stats: &Stats, views: &[SpanView]) {
    let (mut attrs, mut events, mut links, mut truncated, mut replaced) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for v in views {
        let r = v.record;
        attrs += r.dropped_attributes as u64;
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
        events += r.dropped_events as u64;
        links += r.dropped_links as u64;
        truncated += r.truncated_values as u64;
        replaced += r.replaced_utf8 as u64;
    }
    Stats::add(&stats.attributes_dropped, attrs);
    Stats::add(&stats.events_dropped, events);
    Stats::add(&stats.links_dropped, links);
    Stats::add(&stats.values_truncated, truncated);
    Stats::add(&stats.utf8_replaced, replaced);
}
