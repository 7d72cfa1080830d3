//! Dynamic batching: how many ended spans make the exporter wake up.
//!
//! A fixed threshold of `max_export_batch_size` serves a heavy stream well
//! (full batches, the fewest requests) but holds a light one for the whole
//! schedule delay: at 100 spans/s and the default 512 and 5 s, every span
//! waits about 5 s. The exporter therefore measures the rate at which spans
//! arrive and wakes when a batch holds what arrives in an eighth of the
//! schedule delay: full batches under load, small ones sent sooner when the
//! stream is thin, never fewer than a sixteenth of the maximum (so a
//! trickle does not turn into one request per span), never more than the
//! maximum (the OTel setting stays a maximum).

use std::time::{Duration, Instant};

/// The share of the schedule delay a span should wait at most while spans
/// keep coming (a thin stream's last spans still wait for the delay).
const LATENCY_SHARE: u32 = 8;
/// The smallest threshold, as a share of the maximum batch.
const FLOOR_SHARE: u32 = 16;

pub struct BatchSizer {
    floor: u32,
    max: u32,
    latency_goal: Duration,
    /// Spans per second, smoothed over measurements.
    rate: f64,
    /// When the last measurement ended.
    last: Instant,
    /// Spans exported since then, by wake-ups too close together to
    /// measure on their own.
    pending: usize,
}

impl BatchSizer {
    pub fn new(max_batch: u32, schedule_delay: Duration, now: Instant) -> BatchSizer {
        let max = max_batch.max(1);
        BatchSizer {
            floor: Self::first_threshold(max),
            max,
            latency_goal: schedule_delay / LATENCY_SHARE,
            rate: 0.0,
            last: now,
            pending: 0,
        }
    }

    /// The threshold before anything was measured, for a maximum batch of
    /// `max_batch`: the floor, so the first spans of a process go out soon
    /// and give the first measurement.
    pub fn first_threshold(max_batch: u32) -> u32 {
        (max_batch.max(1) / FLOOR_SHARE).max(1)
    }

    /// Records that `taken` spans were exported since the last call, and
    /// returns the new threshold.
    pub fn observe(&mut self, taken: usize, now: Instant) -> u32 {
        self.pending += taken;
        let elapsed = now.saturating_duration_since(self.last);
        // Below a millisecond the rate says nothing (a flush right after a
        // wake-up); keep the estimate, and the spans for the next
        // measurement. Under load the wake-ups come tens of microseconds
        // apart, and each one set the clock going again: the estimate
        // never changed while the load lasted, and stayed what the first
        // wake-up after an idle spell had measured (the Rust benchmark's
        // exporter woke every 193 LLM spans, not 512, for as long as it
        // ran). Measured over every span since the last measurement, a
        // heavy load is seen within a millisecond.
        if elapsed >= Duration::from_millis(1) {
            let measured = self.pending as f64 / elapsed.as_secs_f64();
            self.last = now;
            self.pending = 0;
            // Even weights: a change of load shows within two wake-ups.
            self.rate = if self.rate == 0.0 {
                measured
            } else {
                (self.rate + measured) / 2.0
            };
        }
        self.threshold()
    }

    pub fn threshold(&self) -> u32 {
        let wanted = self.rate * self.latency_goal.as_secs_f64();
        // `as` saturates (and maps NaN to 0), so the clamp is the only bound.
        (wanted as u32).clamp(self.floor, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_secs(5);

    /// Feeds `per_second` spans a second for twenty wake-ups of `every`.
    fn settle(sizer: &mut BatchSizer, t: &mut Instant, per_second: f64, every: Duration) -> u32 {
        let mut threshold = 0;
        for _ in 0..20 {
            *t += every;
            threshold = sizer.observe((per_second * every.as_secs_f64()) as usize, *t);
        }
        threshold
    }

    #[test]
    fn starts_at_the_floor() {
        assert_eq!(BatchSizer::first_threshold(512), 32);
    }

    #[test]
    fn heavy_load_gets_full_batches() {
        let mut t = Instant::now();
        let mut s = BatchSizer::new(512, DELAY, t);
        assert_eq!(
            settle(&mut s, &mut t, 100_000.0, Duration::from_millis(5)),
            512
        );
    }

    #[test]
    fn a_thin_stream_gets_small_batches_sized_to_the_latency_goal() {
        let mut t = Instant::now();
        let mut s = BatchSizer::new(512, DELAY, t);
        // 100 spans/s, an eighth of 5 s: 62 spans.
        assert_eq!(
            settle(&mut s, &mut t, 100.0, Duration::from_millis(600)),
            62
        );
    }

    #[test]
    fn a_trickle_stays_at_the_floor() {
        let mut t = Instant::now();
        let mut s = BatchSizer::new(512, DELAY, t);
        assert_eq!(settle(&mut s, &mut t, 2.0, DELAY), 32);
    }

    #[test]
    fn follows_the_load_both_ways() {
        let mut t = Instant::now();
        let mut s = BatchSizer::new(512, DELAY, t);
        let thin = settle(&mut s, &mut t, 100.0, Duration::from_millis(600));
        let heavy = settle(&mut s, &mut t, 50_000.0, Duration::from_millis(10));
        let thin_again = settle(&mut s, &mut t, 100.0, Duration::from_millis(600));
        assert!(
            thin < heavy && thin_again < heavy,
            "{thin} {heavy} {thin_again}"
        );
        assert_eq!(thin_again, thin);
    }

    #[test]
    fn a_tiny_maximum_is_respected() {
        let mut t = Instant::now();
        let mut s = BatchSizer::new(1, DELAY, t);
        assert_eq!(BatchSizer::first_threshold(1), 1);
        assert_eq!(
            settle(&mut s, &mut t, 100_000.0, Duration::from_millis(5)),
            1
        );
    }

    #[test]
    fn a_heavy_load_woken_every_few_microseconds_gets_full_batches() {
        // A thin stream first (the estimate a first wake-up after an idle
        // spell gives), then a million spans a second, the exporter woken
        // at each threshold's worth: tens of microseconds apart.
        let mut t = Instant::now();
        let mut s = BatchSizer::new(512, DELAY, t);
        let mut threshold = settle(&mut s, &mut t, 100.0, Duration::from_millis(600));
        assert_eq!(threshold, 62);
        for _ in 0..1_000 {
            t += Duration::from_micros(threshold as u64);
            threshold = s.observe(threshold as usize, t);
        }
        assert_eq!(threshold, 512);
    }

    #[test]
    fn a_burst_of_wakeups_within_a_millisecond_keeps_the_estimate() {
        let mut t = Instant::now();
        let mut s = BatchSizer::new(512, DELAY, t);
        let before = settle(&mut s, &mut t, 100.0, Duration::from_millis(600));
        assert_eq!(s.observe(0, t), before);
    }
}
