//! Counters a tracer keeps about itself. The hot path bumps only `begun` and
//! `ended`, each in the calling thread's own lane (see `HotCounters`);
//! everything else is counted by the exporter thread, which also sums the
//! per-record counters (truncations, dropped attributes) as it encodes, so
//! recording a span touches no other shared cache line.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::Release};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        #[derive(Default)]
        pub struct Stats {
            /// `spans_begun` and `spans_ended`, counted per thread.
            pub hot: HotCounters,
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
        }

        impl Stats {
            pub fn snapshot(&self, queue_depth: u64) -> StatsSnapshot {
                // Ended first: a span is begun before it is ended, so the
                // later read of `begun` is never the smaller.
                let spans_ended = self.hot.ended();
                let spans_begun = self.hot.begun();
                StatsSnapshot {
                    spans_begun,
                    spans_ended,
                    $($name: self.$name.load(Relaxed),)*
                    queue_depth,
                    spans_open: spans_begun.saturating_sub(spans_ended),
                }
            }
        }
    };
}

counters! {
    /// Spans a backend (or the file sink) accepted on their first trip
    /// (spans delivered from the spool count in `replayed_spans`).
    spans_exported,
    /// Spans never recorded: every slot was taken (see the full policy).
    dropped_buffer_full,
    /// Spans lost because the backend refused them for good and spooling was
    /// not possible.
    dropped_export_failed,
    /// Spans a backend rejected in an OTLP partial success.
    dropped_rejected,
    /// Spans lost when the spool's size cap pushed old batches out.
    dropped_spool_overflow,
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
    /// Attributes (of spans, events, links) that did not fit.
    attributes_dropped,
    /// Events that did not fit.
    events_dropped,
    /// Links that did not fit.
    links_dropped,
    /// Strings cut at a documented limit.
    values_truncated,
    /// Strings whose invalid UTF-8 was replaced.
    utf8_replaced,
    /// Batches written to the spool directory.
    spooled_batches,
    /// Spans in those batches.
    spooled_spans,
    /// Spool files sent and deleted (this process's or an earlier one's).
    replayed_batches,
    /// Spans in those files.
    replayed_spans,
    /// Bytes the spool directory holds now.
    spool_bytes,
    /// Time the exporter rested to stay within its CPU cap.
    exporter_throttled_ns,
    /// Spans recovered from dead processes' crash dumps and flight files
    /// (then exported or spooled like any other).
    recovered_spans,
}

impl Stats {
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

/// How many threads at once get a lane of their own; more share one.
const LANES: usize = 64;

/// One thread's counts, on cache lines of their own (128 bytes: the
/// adjacent-line prefetcher pairs lines).
#[derive(Default)]
#[repr(align(128))]
struct Lane {
    begun: AtomicU64,
    ended: AtomicU64,
}

/// `spans_begun` and `spans_ended`, which every span bumps. One shared
/// counter cost a locked add per bump, on a line every recording thread
/// wrote; a lane belongs to one thread at a time, so its owner bumps it
/// with a plain load and store. Threads beyond `LANES`, and a thread whose
/// lane is already gone at exit, share `shared` with a locked add.
pub struct HotCounters {
    lanes: Box<[Lane]>,
    shared: Lane,
}

impl Default for HotCounters {
    fn default() -> HotCounters {
        HotCounters {
            lanes: (0..LANES).map(|_| Lane::default()).collect(),
            shared: Lane::default(),
        }
    }
}

impl HotCounters {
    #[inline]
    pub fn count_begun(&self) {
        self.bump(|lane| &lane.begun);
    }

    #[inline]
    pub fn count_ended(&self) {
        self.bump(|lane| &lane.ended);
    }

    #[inline]
    fn bump(&self, counter: impl Fn(&Lane) -> &AtomicU64) {
        match THREAD_LANE.try_with(|claim| claim.0) {
            Ok(lane) if lane < LANES => {
                // Only this thread writes this lane (see LaneClaim), so a
                // load and a store do not lose a count.
                let c = counter(&self.lanes[lane]);
                c.store(c.load(Relaxed) + 1, Relaxed);
            }
            _ => {
                counter(&self.shared).fetch_add(1, Relaxed);
            }
        }
    }

    pub fn begun(&self) -> u64 {
        self.sum(|lane| &lane.begun)
    }

    pub fn ended(&self) -> u64 {
        self.sum(|lane| &lane.ended)
    }

    fn sum(&self, counter: impl Fn(&Lane) -> &AtomicU64) -> u64 {
        self.lanes
            .iter()
            .chain(std::iter::once(&self.shared))
            .map(|lane| counter(lane).load(Relaxed))
            .sum()
    }
}

/// Which lanes a live thread owns, process-wide: lane `i` of every tracer
/// belongs to the thread that holds `LANE_TAKEN[i]`.
static LANE_TAKEN: [AtomicBool; LANES] = [const { AtomicBool::new(false) }; LANES];

/// A thread's lane number (`LANES` for none), given back when the thread
/// exits. The next owner continues from the counts left in it.
struct LaneClaim(usize);

impl LaneClaim {
    fn claim() -> LaneClaim {
        let lane = LANE_TAKEN
            .iter()
            // Acquire pairs with the Release in drop: the new owner sees the
            // last owner's final counts before adding to them.
            .position(|taken| {
                taken
                    .compare_exchange(false, true, std::sync::atomic::Ordering::Acquire, Relaxed)
                    .is_ok()
            })
            .unwrap_or(LANES);
        LaneClaim(lane)
    }
}

impl Drop for LaneClaim {
    fn drop(&mut self) {
        if let Some(taken) = LANE_TAKEN.get(self.0) {
            taken.store(false, Release);
        }
    }
}

thread_local! {
    static THREAD_LANE: LaneClaim = LaneClaim::claim();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_all_add_up() {
        let hot = std::sync::Arc::new(HotCounters::default());
        // More threads than lanes, some at once, so that lanes are shared,
        // handed over at exit and reused.
        for _ in 0..3 {
            let handles: Vec<_> = (0..LANES + 8)
                .map(|_| {
                    let hot = hot.clone();
                    std::thread::spawn(move || {
                        for _ in 0..1000 {
                            hot.count_begun();
                            hot.count_ended();
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("thread");
            }
        }
        let expected = 3 * (LANES as u64 + 8) * 1000;
        assert_eq!(hot.begun(), expected);
        assert_eq!(hot.ended(), expected);
    }
}
