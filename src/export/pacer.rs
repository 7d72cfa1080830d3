//! When the next batch is due, for the exporter's quiet sleep
//! (`ExportSignal::wait_for_work_paced`).
//!
//! A recording thread that fills a batch nudges the exporter, and when the
//! exporter sleeps that nudge is a system call on the recording thread and
//! an interrupt to the exporter's CPU. An exporter faster than the threads
//! it serves sleeps after every batch, so the threads paid it once a batch
//! (5-15% of a span in `make bench-compare`'s regime (b) on this project's
//! VMs). While spans come steadily, the time the next batch takes is about
//! what the last ones took: the exporter sleeps that long, an eighth more
//! so the batch is there when it wakes, on its own timer (its timer slack
//! is 1 us, see `Exporter::run`), and nudges wake
//! no one meanwhile. A stream that is thin (a batch takes longer than
//! `MAX_QUIET`) or stops is served as before, nudge by nudge.

use std::time::{Duration, Instant};

/// The longest quiet sleep: past it, a nudge a batch costs the recording
/// threads too little to matter (one system call every few milliseconds),
/// and a rate measured over a longer stretch says less about the next one.
pub const MAX_QUIET: Duration = Duration::from_millis(5);

#[derive(Debug, Default)]
pub struct Pacer {
    /// Spans taken from the queues so far.
    taken: u64,
    /// When the last look was, and how many spans had ended by then
    /// (taken, plus waiting in the queues).
    last: Option<(Instant, u64)>,
}

impl Pacer {
    pub fn new() -> Pacer {
        Pacer::default()
    }

    /// The exporter took `n` spans from the queues.
    pub fn took(&mut self, n: usize) {
        self.taken += n as u64;
    }

    /// How long the exporter, about to wait for a batch of `batch` with
    /// `pending` spans in the queues, should sleep before a nudge may wake
    /// it: the time the spans missing from the batch take at the rate they
    /// came at since the last look, and an eighth more. (A quarter more, with
    /// Linux's default timer slack, left two recording threads' spans 7%
    /// slower than an eighth with 1 us of slack, the two changed at once:
    /// `make bench-threads`, 6 of 6 pairs.) Zero (wait for the nudge) when
    /// the batch is there, nothing came, or that time would
    /// pass `MAX_QUIET`.
    pub fn quiet(&mut self, now: Instant, pending: usize, batch: usize) -> Duration {
        let ended = self.taken + pending as u64;
        let Some((then, ended_then)) = self.last.replace((now, ended)) else {
            return Duration::ZERO;
        };
        let came = ended.saturating_sub(ended_then) as u128;
        let missing = batch.saturating_sub(pending) as u128;
        let elapsed = now.saturating_duration_since(then).as_nanos();
        if missing == 0 || came == 0 || elapsed == 0 {
            return Duration::ZERO;
        }
        let ns = elapsed * missing * 9 / (came * 8);
        if ns > MAX_QUIET.as_nanos() {
            return Duration::ZERO;
        }
        Duration::from_nanos(ns as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn a_steady_stream_sleeps_an_eighth_past_the_next_batch() {
        let mut p = Pacer::new();
        let t0 = Instant::now();
        assert_eq!(p.quiet(t0, 0, 512), Duration::ZERO, "nothing measured yet");
        // 512 spans in 100 us, all taken; 12 waiting: 500 to come at 5.12
        // spans a microsecond, 97.66 us, and an eighth more.
        p.took(500);
        let q = p.quiet(t0 + 100 * US, 12, 512);
        assert_eq!(q.as_nanos(), 100_000 * 500 * 9 / (512 * 8));
        // The same rate again.
        p.took(512);
        let q2 = p.quiet(t0 + 200 * US, 12, 512);
        assert_eq!(q2, q);
    }

    #[test]
    fn a_full_batch_an_idle_stream_or_a_thin_one_waits_for_the_nudge() {
        let mut p = Pacer::new();
        let t0 = Instant::now();
        p.quiet(t0, 0, 512);
        // A batch already waiting.
        p.took(512);
        assert_eq!(p.quiet(t0 + 100 * US, 600, 512), Duration::ZERO);
        // Nothing came since.
        p.took(600);
        assert_eq!(p.quiet(t0 + 200 * US, 0, 512), Duration::ZERO);
        // 10 spans in 10 ms: a batch would take half a second.
        p.took(10);
        assert_eq!(p.quiet(t0 + 200 * US + 10_000 * US, 0, 512), Duration::ZERO);
        // The same instant twice.
        p.took(10);
        let t = t0 + 200 * US + 10_000 * US;
        assert_eq!(p.quiet(t, 0, 512), Duration::ZERO);
    }

    #[test]
    fn the_sleep_never_passes_the_cap() {
        let mut p = Pacer::new();
        let t0 = Instant::now();
        p.quiet(t0, 0, 512);
        // 512 spans in 4.4 ms: the next batch, an eighth more, is 4.95 ms.
        p.took(512);
        let q = p.quiet(t0 + 4_400 * US, 0, 512);
        assert!(q > Duration::ZERO && q <= MAX_QUIET, "{q:?}");
        // 512 in 4.5 ms: 5.06 ms, over the cap.
        p.took(512);
        assert_eq!(p.quiet(t0 + 8_900 * US, 0, 512), Duration::ZERO);
    }
}
