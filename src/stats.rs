//! Counters a tracer keeps about itself. Recording a span bumps none: spans
//! begun and ended are read off the slab's queues (see
//! `SpanSlab::spans_begun`), and everything else is counted by the exporter
//! thread, which also sums the per-record counters (truncations, dropped
//! attributes) as it encodes.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::buffer::slab::SpanSlab;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        #[derive(Default)]
        pub struct Stats {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A copy of the counters at one moment.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct StatsSnapshot {
            /// Spans that got a slot.
            pub spans_begun: u64,
            /// Spans ended by the application or, at shutdown, by spanguard.
            pub spans_ended: u64,
            $($(#[$doc])* pub $name: u64,)*
            /// Ended spans waiting for the exporter.
            pub queue_depth: u64,
            /// Spans begun and not yet ended.
            pub spans_open: u64,
            /// Waits of the signal watchdog for a host's handler (the one
            /// spanguard's replaced, delivered after the flush) that ran
            /// out their second while the tracers stayed frozen: it did
            /// not return, end its thread, or get found done (an `exit()`
            /// from it, a `siglongjmp` back into the program).
            /// Process-wide: every tracer reports the same count (filled
            /// in by `Tracer::stats`).
            pub host_handler_waits_ran_out: u64,
        }

        impl Stats {
            pub fn snapshot(&self, slab: &SpanSlab) -> StatsSnapshot {
                // Ended first: a span is begun before it is ended, so the
                // later read of `begun` is never the smaller.
                let spans_ended = slab.spans_ended();
                let spans_begun = slab.spans_begun();
                let queue_depth = slab.ended_len() as u64;
                StatsSnapshot {
                    spans_begun,
                    spans_ended,
                    $($name: self.$name.load(Relaxed),)*
                    queue_depth,
                    spans_open: spans_begun.saturating_sub(spans_ended),
                    host_handler_waits_ran_out: 0,
                }
            }
        }
    };
}

counters! {
    // Where each span this tracer ended went first; once the queue is empty
    // and no batch is in flight, spans_ended = spans_exported +
    // spooled_spans + dropped_export_failed + dropped_rejected +
    // spans_unsampled.
    /// Spans a backend (or the file sink) accepted on their first trip.
    spans_exported,
    /// Spans a first trip wrote to the spool (backend down, retries spent,
    /// or a stop or a full queue that could not wait).
    spooled_spans,
    /// Spans lost on their first trip: the backend refused them for good
    /// (4xx other than 429, 500), a span alone was over the request size
    /// limit, the spool could not be written, or an internal error (see
    /// `exporter_panics`).
    dropped_export_failed,
    /// Spans a backend rejected in an OTLP partial success on their first
    /// trip.
    dropped_rejected,
    /// Spans the sampler left out: ended (they count in `spans_ended`) but
    /// never exported, by design.
    spans_unsampled,
    /// Spans never begun: every slot was taken and the full policy gave up
    /// (not in spans_ended).
    dropped_buffer_full,
    // What became of spool files later, this process's or another's
    // (spool files, crash dumps, flight files): not part of the identity,
    // since their spans were counted where they were ended.
    /// Spans of spool files the spool's size cap deleted.
    dropped_spool_overflow,
    /// Spans from the spool directory that the backend refused for good
    /// (or that were over the size limit) when replayed.
    dropped_replay_failed,
    /// Spans from the spool directory a backend rejected in a partial
    /// success when replayed.
    dropped_replay_rejected,
    /// Spans ended by spanguard at shutdown (marked spanguard.unended).
    spans_unended_at_shutdown,
    /// Requests accepted.
    batches_sent,
    /// Requests that failed for good (after retries).
    batches_failed,
    /// Request bytes accepted, after compression.
    bytes_sent,
    /// Send attempts after a first failure.
    retries,
    /// Attributes (of spans, events, links) that did not fit, and those of
    /// a resource over half the request size limit (once a resource).
    attributes_dropped,
    /// Events that did not fit.
    events_dropped,
    /// Links that did not fit.
    links_dropped,
    /// Strings cut at a documented limit.
    values_truncated,
    /// Of those, values of the resource or an instrumentation scope cut to
    /// the value depth limit as they were set (`spanguard why` says them
    /// with that limit's setting).
    shared_values_cut_at_depth,
    /// Strings whose invalid UTF-8 was replaced.
    utf8_replaced,
    /// Batches written to the spool directory on their first trip.
    spooled_batches,
    /// Requests from the spool directory delivered (spool files, and the
    /// spans of crash dumps and flight files).
    replayed_batches,
    /// Spans in those requests the backend accepted.
    replayed_spans,
    /// Bytes the spool directory holds now.
    spool_bytes,
    /// Time the exporter rested to stay within its CPU cap (the rests
    /// taken, which a flush, the stop, a full queue or a begin waiting for
    /// a slot cut short).
    exporter_throttled_ns,
    /// Spans recovered from dead processes' crash dumps and flight files
    /// (then delivered or spooled; counted in the spool counters).
    recovered_spans,
    /// Panics the exporter thread caught (an internal bug); it went on.
    exporter_panics,
    /// Files in the spool directory that could not be used (not ours, not
    /// a regular file, another version's, torn), renamed `*.unreadable`.
    files_set_aside,
    /// Values (of a begin, attribute, event, link, status message) that
    /// found the payload pool used up and waited for chunks to come back
    /// (`FullPolicy::Wait`), whole or not in the end.
    payload_waits,
    /// Of those, values the wait did not save: cut (in `values_truncated`)
    /// at the end of `full_wait`, or when nothing would give chunks back
    /// (every chunk held by open spans), or at a shutdown.
    payload_waits_cut,
    /// Begins that found every slot taken and waited for the exporter to
    /// give one back (`FullPolicy::Wait`), a slot in the end or not: a
    /// thread recording faster than the exporter exports.
    slot_waits,
    /// Time those begins waited, in all (nanoseconds).
    slot_wait_ns,
    /// Spans still open when a termination signal stopped the process
    /// (`Tracer::shutdown_for_signal`), ended by spanguard and marked
    /// spanguard.interrupted: counted in `spans_exported` (or where their
    /// first trip took them) too, and not in `spans_unended_at_shutdown`.
    spans_interrupted_at_shutdown,
    /// Shutdowns (the application's, the exit hook's, a signal's) that
    /// waited their deadline and the stuck exporter's grace for the
    /// exporter thread to stop, and left it running: it was stuck where
    /// nothing of spanguard's cuts it short (the error callback blocked).
    /// A shutdown on the exporter thread itself (the callback called
    /// `exit()`) leaves it at once, not counted.
    exporter_waits_ran_out,
}

impl Stats {
    /// Release: a flush that reads what became of the spans (Acquire,
    /// `Pipeline::nothing_to_flush`) sees them taken from their queues
    /// too. The same locked add as Relaxed on x86.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, std::sync::atomic::Ordering::Release);
    }
}
