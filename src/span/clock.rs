//! Wall-clock time for span timestamps.
//!
//! `clock_gettime(CLOCK_REALTIME)` is served by the vDSO, so it is not a
//! system call, but it still cost 23 ns here against 10 ns for the
//! time-stamp counter it reads underneath, and every span reads the clock
//! twice. Where the kernel itself keeps time with the TSC (so it has checked
//! that the counter is invariant and in step across CPUs), spans read the
//! TSC and convert it with an anchor: a (TSC, wall-clock ns) pair and the
//! ns per tick measured between two such pairs.
//!
//! The exporter threads re-anchor (`recalibrate`) from `clock_gettime` as
//! they wake, at most once a second (an idle one wakes at least every
//! schedule delay), so the converted time follows the system clock: NTP's
//! rate changes within an interval, a step at the next re-anchor. A
//! re-anchor whose prediction missed the system clock by more than
//! `MAX_MISS_NS` (a step, or a TSC that is not what the kernel said) drops
//! back to `clock_gettime` until the next interval has been measured.
//!
//! The first anchor is provisional: measured over `FIRST_INTERVAL_NS`
//! (10 ms), a few parts in a million off, then refined over
//! `MIN_INTERVAL_NS` from the same first sample. Spans read
//! `clock_gettime` only until it is out: a first anchor that waited for
//! the long interval left a process's first 200 ms on the system clock,
//! and a process that lives that long (a command-line agent, a test)
//! never used the TSC at all. Until then, and everywhere the TSC is not
//! the kernel's clocksource, `now_unix_ns` is plain `clock_gettime`; an
//! exporter with nothing to do wakes when an anchor is due
//! (`anchor_due_in`), so an idle tracer does not stay on it.

/// Nanoseconds since the Unix epoch: converted from the TSC when it is
/// anchored, else from `clock_gettime`. Async-signal-safe: it never waits
/// (a torn anchor read falls back to the system clock).
#[inline]
pub fn now_unix_ns() -> u64 {
    #[cfg(target_arch = "x86_64")]
    if let Some(ns) = tsc::now() {
        return ns;
    }
    realtime_ns()
}

/// The system's wall clock, always through `clock_gettime`.
#[inline]
pub fn realtime_ns() -> u64 {
    read_clock(libc::CLOCK_REALTIME)
}

/// Nanoseconds on a clock that never jumps, for deadlines.
#[inline]
pub fn monotonic_ns() -> u64 {
    read_clock(libc::CLOCK_MONOTONIC)
}

/// `now + d`, or a moment so far ahead that it never comes when that would
/// overflow (an `Instant` holds less than a `Duration` can say; a timeout
/// or a server's Retry-After may be anything).
pub fn instant_after(now: std::time::Instant, d: std::time::Duration) -> std::time::Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(std::time::Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

#[inline]
fn read_clock(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both clocks always exist.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Takes a (TSC, wall-clock) sample and, when an interval long enough has
/// passed since the last one, re-anchors the TSC conversion. Cheap when not
/// due (one sample); called by each exporter thread as it wakes.
pub fn recalibrate() {
    #[cfg(target_arch = "x86_64")]
    tsc::recalibrate();
}

/// How long until a sample would give the TSC its first anchor (its next
/// one, after a miss withdrew it), while spans read `clock_gettime` for
/// want of one, or refine a provisional one; None when the anchor is a
/// full one or the TSC is not used. An exporter whose schedule would let
/// it sleep past that wakes then, only to take the sample: a tracer whose
/// exporter is idle (a long schedule delay, a quiet start) otherwise read
/// the system clock, 23 ns against 10, twice a span until its first
/// batch, and kept a provisional anchor's few parts in a million for as
/// long.
pub fn anchor_due_in() -> Option<std::time::Duration> {
    #[cfg(target_arch = "x86_64")]
    return tsc::anchor_due_in().map(std::time::Duration::from_nanos);
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// For a forked child, which has only the forking thread: the calibrator,
/// which another parent thread may have held at the fork (and left half
/// written), starts over from the parent's anchor (the same counter and
/// clock), renewing it as the parent would have, unless the fork caught
/// it being written.
/// (The child used to give up the TSC for good: a worker of a pre-fork
/// server then read `clock_gettime` twice a span for its whole life.)
pub fn after_fork_in_child() {
    #[cfg(target_arch = "x86_64")]
    tsc::reset_in_child();
}

// The anchor logic from here to mod tsc serves the x86-64 TSC reader
// alone (elsewhere spans read clock_gettime); the tests run it on every
// architecture.

/// The interval a first, provisional anchor is measured over: with each
/// sample read to within `MAX_SPREAD_TICKS` (usually about a tenth of
/// that), a few parts in a million, at worst a few tens.
#[cfg(any(target_arch = "x86_64", test))]
const FIRST_INTERVAL_NS: u64 = 10_000_000;
/// Shortest interval a full anchor's tick rate is measured over: the two
/// samples' reading error (tens of ns) over it stays below a part in a
/// million.
#[cfg(any(target_arch = "x86_64", test))]
const MIN_INTERVAL_NS: u64 = 200_000_000;
/// How often the anchor is renewed at most.
#[cfg(any(target_arch = "x86_64", test))]
const RENEW_INTERVAL_NS: u64 = 1_000_000_000;
/// A prediction further off than this from the system clock means the
/// clock was stepped or the TSC is not steady: start over.
#[cfg(any(target_arch = "x86_64", test))]
const MAX_MISS_NS: u64 = 1_000_000;

/// How a TSC reading becomes wall-clock ns: `ns + (tsc_now - tsc) * mult >> 32`.
#[cfg(any(target_arch = "x86_64", test))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Anchor {
    tsc: u64,
    ns: u64,
    /// Nanoseconds per tick in 32.32 fixed point.
    mult: u64,
}

#[cfg(any(target_arch = "x86_64", test))]
impl Anchor {
    #[inline]
    fn convert(&self, tsc: u64) -> u64 {
        // Signed: another CPU's counter may read a few ticks behind the
        // anchor's.
        let ticks = tsc.wrapping_sub(self.tsc) as i64 as i128;
        let ns = (ticks * self.mult as i128) >> 32;
        self.ns.wrapping_add_signed(ns as i64)
    }
}

/// The anchor logic, apart from the hardware and the shared state, so that
/// it can be tested with made-up samples.
#[cfg(any(target_arch = "x86_64", test))]
#[derive(Default)]
struct Calibrator {
    /// The sample the next interval is measured from.
    last: Option<(u64, u64)>,
    anchor: Option<Anchor>,
    /// The anchor was measured over less than `MIN_INTERVAL_NS`; `last` is
    /// still the sample it was measured from, so that refining it
    /// measures the longer interval from there.
    provisional: bool,
}

/// What `Calibrator::observe` decided.
#[cfg(any(target_arch = "x86_64", test))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    /// Nothing to change.
    Keep,
    /// Convert with this anchor from now on.
    Publish(Anchor),
    /// Stop converting: use the system clock until re-anchored.
    Withdraw,
}

#[cfg(any(target_arch = "x86_64", test))]
impl Calibrator {
    /// Starting from `anchor` (a full one), or from nothing.
    const fn starting_from(anchor: Option<Anchor>) -> Calibrator {
        Calibrator {
            last: None,
            anchor,
            provisional: false,
        }
    }

    /// How long after `last` a sample changes the anchor: makes the first
    /// (provisional) one, refines it, or renews a full one.
    fn interval(&self) -> u64 {
        match self.anchor {
            None => FIRST_INTERVAL_NS,
            Some(_) if self.provisional => MIN_INTERVAL_NS,
            Some(_) => RENEW_INTERVAL_NS,
        }
    }

    fn observe(&mut self, tsc: u64, ns: u64) -> Decision {
        let Some((tsc0, ns0)) = self.last else {
            self.last = Some((tsc, ns));
            return Decision::Keep;
        };
        let due = self.interval();
        if ns < ns0 || tsc <= tsc0 {
            // The clock went back (a step) or the counter did: start over.
            return self.restart(tsc, ns);
        }
        let elapsed = ns - ns0;
        if elapsed < due {
            return Decision::Keep;
        }
        if let Some(a) = self.anchor
            && a.convert(tsc).abs_diff(ns) > MAX_MISS_NS
        {
            return self.restart(tsc, ns);
        }
        // Rounded to the nearest: 2^-32 ns per tick is then at most a third
        // of a ns per second at 3 GHz.
        let ticks = (tsc - tsc0) as u128;
        let mult = ((((ns - ns0) as u128) << 32) + ticks / 2) / ticks;
        let Ok(mult) = u64::try_from(mult) else {
            return self.restart(tsc, ns);
        };
        let anchor = Anchor { tsc, ns, mult };
        self.provisional = elapsed < MIN_INTERVAL_NS;
        if !self.provisional {
            self.last = Some((tsc, ns));
        }
        self.anchor = Some(anchor);
        Decision::Publish(anchor)
    }

    /// Nanoseconds from `now_ns` until a sample would publish the first
    /// anchor or refine a provisional one: None once there is a full one.
    fn anchor_due(&self, now_ns: u64) -> Option<u64> {
        if self.anchor.is_some() && !self.provisional {
            return None;
        }
        Some(match self.last {
            None => 0,
            Some((_, ns0)) => ns0.saturating_add(self.interval()).saturating_sub(now_ns),
        })
    }

    fn restart(&mut self, tsc: u64, ns: u64) -> Decision {
        self.last = Some((tsc, ns));
        self.provisional = false;
        match self.anchor.take() {
            Some(_) => Decision::Withdraw,
            None => Decision::Keep,
        }
    }
}

/// The most a (TSC before, clock_gettime, TSC after) reading may spread and
/// still be used: clock_gettime takes a hundred or two ticks, so a wider
/// spread means an interrupt or preemption came between the reads, and the
/// pair could be tens of microseconds apart, enough to skew the measured
/// rate. (Half of it over `FIRST_INTERVAL_NS`, at 3 GHz: 17 parts in a
/// million; it was 20,000 ticks while the shortest interval was 200 ms.)
#[cfg(any(target_arch = "x86_64", test))]
const MAX_SPREAD_TICKS: u64 = 1_000;

/// From (TSC before, wall ns, TSC after) readings, the pair with the
/// narrowest spread, the TSC taken halfway; None when every reading was
/// interrupted.
#[cfg(any(target_arch = "x86_64", test))]
fn pick_sample(readings: &[(u64, u64, u64)]) -> Option<(u64, u64)> {
    readings
        .iter()
        .map(|&(before, ns, after)| (after.wrapping_sub(before), before, ns))
        .filter(|&(spread, _, _)| spread <= MAX_SPREAD_TICKS)
        .min_by_key(|&(spread, _, _)| spread)
        .map(|(spread, before, ns)| (before + spread / 2, ns))
}

#[cfg(target_arch = "x86_64")]
mod tsc {
    use std::cell::UnsafeCell;
    use std::sync::atomic::AtomicBool;
    use std::sync::atomic::{AtomicU8, AtomicU64, Ordering, fence};

    use super::*;

    /// The anchor the hot path reads, under a sequence lock: odd while it
    /// is being written; 0 (or `mult` 0) when there is none.
    #[repr(align(128))]
    struct Shared {
        seq: AtomicU64,
        tsc: AtomicU64,
        ns: AtomicU64,
        mult: AtomicU64,
    }

    static SHARED: Shared = Shared {
        seq: AtomicU64::new(0),
        tsc: AtomicU64::new(0),
        ns: AtomicU64::new(0),
        mult: AtomicU64::new(0),
    };

    /// Whether the kernel keeps time with the TSC: 0 not checked yet, 1 yes, 2 no.
    static USABLE: AtomicU8 = AtomicU8::new(0);
    /// The re-anchoring state; a thread that finds it taken skips its turn.
    static CALIBRATOR: CalibratorCell = CalibratorCell::new();

    /// The calibrator behind a try-lock that a forked child can take back:
    /// a `Mutex` held by a parent thread at the fork stays taken in the
    /// child for good.
    pub(super) struct CalibratorCell {
        busy: AtomicBool,
        state: UnsafeCell<Calibrator>,
    }

    // SAFETY: `state` is only reached through `try_with`, which `busy`
    // keeps to one thread at a time (and `reset_in_child`, in a process of
    // one thread).
    unsafe impl Sync for CalibratorCell {}

    impl CalibratorCell {
        pub(super) const fn new() -> CalibratorCell {
            CalibratorCell {
                busy: AtomicBool::new(false),
                state: UnsafeCell::new(Calibrator::starting_from(None)),
            }
        }

        /// Runs `f` on the calibrator; None when another thread has it.
        pub(super) fn try_with<R>(&self, f: impl FnOnce(&mut Calibrator) -> R) -> Option<R> {
            if self.busy.swap(true, Ordering::Acquire) {
                return None;
            }
            // SAFETY: `busy` was false and is ours now: no other thread is
            // in here until we store false.
            let r = f(unsafe { &mut *self.state.get() });
            self.busy.store(false, Ordering::Release);
            Some(r)
        }

        /// In a forked child, the only thread: whoever held the
        /// calibrator at the fork is not here to finish; start it over
        /// from `anchor`, the one in use (renewed a second after the
        /// child's first sample, as any full anchor), or from nothing.
        pub(super) fn reset_in_child(&self, anchor: Option<Anchor>) {
            // SAFETY: one thread in this process, not inside `try_with`
            // (an atfork handler runs outside any spanguard call).
            unsafe { *self.state.get() = Calibrator::starting_from(anchor) };
            self.busy.store(false, Ordering::Release);
        }
    }

    #[inline]
    fn rdtsc() -> u64 {
        // SAFETY: RDTSC has no preconditions; usable() checked that the
        // counter is the kernel's clocksource before any anchor exists.
        unsafe { std::arch::x86_64::_rdtsc() }
    }

    #[inline]
    pub fn now() -> Option<u64> {
        read_anchor().map(|anchor| anchor.convert(rdtsc()))
    }

    /// The published anchor (seqlock read): None when there is none, it
    /// was withdrawn, or a writer is at it.
    #[inline]
    fn read_anchor() -> Option<Anchor> {
        let seq = SHARED.seq.load(Ordering::Acquire);
        if seq == 0 || seq & 1 == 1 {
            return None;
        }
        let anchor = Anchor {
            tsc: SHARED.tsc.load(Ordering::Relaxed),
            ns: SHARED.ns.load(Ordering::Relaxed),
            mult: SHARED.mult.load(Ordering::Relaxed),
        };
        // Orders the loads above before the check below (seqlock read).
        fence(Ordering::Acquire);
        if SHARED.seq.load(Ordering::Relaxed) != seq || anchor.mult == 0 {
            return None;
        }
        Some(anchor)
    }

    pub(super) fn usable() -> bool {
        match USABLE.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => {
                // The kernel picks the TSC as its clocksource only once it
                // has found it invariant and synchronised across CPUs.
                let ok = std::fs::read_to_string(
                    "/sys/devices/system/clocksource/clocksource0/current_clocksource",
                )
                .is_ok_and(|s| s.trim() == "tsc")
                    && crate::span::environment::var_os("SPANGUARD_CLOCK")
                        .is_none_or(|v| v != "system");
                USABLE.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
                ok
            }
        }
    }

    /// A (TSC, wall ns) pair read close together (see `pick_sample`).
    fn sample() -> Option<(u64, u64)> {
        let readings: [(u64, u64, u64); 4] = std::array::from_fn(|_| {
            let before = rdtsc();
            let ns = realtime_ns();
            (before, ns, rdtsc())
        });
        pick_sample(&readings)
    }

    pub fn recalibrate() {
        if !usable() {
            return;
        }
        CALIBRATOR.try_with(|calibrator| {
            let Some((tsc, ns)) = sample() else {
                return; // interrupted every time: try at the next wake-up
            };
            match calibrator.observe(tsc, ns) {
                Decision::Keep => {}
                Decision::Publish(a) => publish(a),
                Decision::Withdraw => publish(Anchor {
                    tsc: 0,
                    ns: 0,
                    mult: 0,
                }),
            }
        });
    }

    pub fn anchor_due_in() -> Option<u64> {
        if !usable() {
            return None;
        }
        // Taken: another thread is sampling right now; ask again later.
        CALIBRATOR
            .try_with(|calibrator| calibrator.anchor_due(realtime_ns()))
            .flatten()
    }

    pub fn reset_in_child() {
        // Caught being written (odd): none. A reader seeing 0 falls back
        // to the system clock; the next anchor comes from the child's own
        // samples.
        if SHARED.seq.load(Ordering::Relaxed) & 1 == 1 {
            SHARED.seq.store(0, Ordering::Release);
        }
        // The anchor in use goes on as a full one: a fresh calibrator
        // would replace it with a provisional one 10 ms on.
        CALIBRATOR.reset_in_child(read_anchor());
    }

    /// Seqlock write: odd, the fields, even again.
    fn publish(a: Anchor) {
        let seq = SHARED.seq.load(Ordering::Relaxed);
        SHARED.seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        SHARED.tsc.store(a.tsc, Ordering::Relaxed);
        SHARED.ns.store(a.ns, Ordering::Relaxed);
        SHARED.mult.store(a.mult, Ordering::Relaxed);
        SHARED.seq.store(seq + 2, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up counter at 2.5 GHz (0.4 ns per tick).
    fn tick(ns: u64) -> u64 {
        1_000_000 + ns * 5 / 2
    }

    const T0: u64 = 1_700_000_000_000_000_000;

    /// A calibrator fed samples from T0: no anchor before an interval of
    /// `MIN_INTERVAL_NS` is measured, then its first one, returned.
    fn first_anchor() -> (Calibrator, Anchor) {
        let mut c = Calibrator::default();
        assert_eq!(c.observe(tick(0), T0), Decision::Keep);
        assert_eq!(c.observe(tick(1_000_000), T0 + 1_000_000), Decision::Keep);
        let Decision::Publish(a) = c.observe(tick(MIN_INTERVAL_NS), T0 + MIN_INTERVAL_NS) else {
            panic!("no anchor after {MIN_INTERVAL_NS} ns");
        };
        (c, a)
    }

    #[test]
    fn no_anchor_until_an_interval_is_measured_then_it_converts() {
        let (_, a) = first_anchor();
        for later in [0, 1, 999, 123_456_789, 30_000_000_000] {
            let want = T0 + MIN_INTERVAL_NS + later;
            // The fixed point's rounding: within a ns per second from the anchor.
            let allowed = 1 + later / 1_000_000_000;
            assert!(
                a.convert(tick(MIN_INTERVAL_NS + later)).abs_diff(want) <= allowed,
                "{later}"
            );
        }
        // A counter a few ticks behind the anchor's still converts.
        assert_eq!(a.convert(a.tsc - 5), a.ns - 2);
    }

    #[test]
    fn the_first_anchor_is_due_a_short_interval_after_the_first_sample() {
        let mut c = Calibrator::default();
        assert_eq!(c.anchor_due(T0), Some(0), "no sample yet: now");
        c.observe(tick(0), T0);
        assert_eq!(c.anchor_due(T0 + 50), Some(FIRST_INTERVAL_NS - 50));
        assert_eq!(c.anchor_due(T0 + FIRST_INTERVAL_NS + 1), Some(0));
        // A sample at the time it said publishes a provisional anchor; its
        // refinement is due the long interval after the first sample.
        let due = T0 + FIRST_INTERVAL_NS;
        assert!(matches!(
            c.observe(tick(FIRST_INTERVAL_NS), due),
            Decision::Publish(_)
        ));
        assert_eq!(c.anchor_due(due), Some(MIN_INTERVAL_NS - FIRST_INTERVAL_NS));
        assert!(matches!(
            c.observe(tick(MIN_INTERVAL_NS), T0 + MIN_INTERVAL_NS),
            Decision::Publish(_)
        ));
        assert_eq!(c.anchor_due(T0 + MIN_INTERVAL_NS + 1), None);
        // A step withdraws it: due again a short interval after the new
        // sample.
        let t = MIN_INTERVAL_NS + RENEW_INTERVAL_NS;
        let hour = 3_600_000_000_000;
        assert_eq!(c.observe(tick(t), T0 + t + hour), Decision::Withdraw);
        assert_eq!(c.anchor_due(T0 + t + hour), Some(FIRST_INTERVAL_NS));
    }

    #[test]
    fn a_provisional_anchor_is_refined_over_the_long_interval_from_the_first_sample() {
        let mut c = Calibrator::default();
        c.observe(tick(0), T0);
        // The provisional anchor's second sample read the clock 300 ns
        // late (within a reading's spread): its rate is 30 ppm fast.
        let Decision::Publish(rough) =
            c.observe(tick(FIRST_INTERVAL_NS), T0 + FIRST_INTERVAL_NS + 300)
        else {
            panic!("no provisional anchor after {FIRST_INTERVAL_NS} ns");
        };
        let second = 1_000_000_000;
        let off = rough
            .convert(tick(FIRST_INTERVAL_NS + second))
            .abs_diff(T0 + FIRST_INTERVAL_NS + second);
        assert!((25_000..=35_000).contains(&off), "{off}");
        // Samples before the long interval is up keep it.
        let t = MIN_INTERVAL_NS / 2;
        assert_eq!(c.observe(tick(t), T0 + t), Decision::Keep);
        // The refinement measures from the first sample, not from the late
        // one, over the whole interval: within a ns a second.
        let Decision::Publish(fine) = c.observe(tick(MIN_INTERVAL_NS), T0 + MIN_INTERVAL_NS) else {
            panic!("not refined after {MIN_INTERVAL_NS} ns");
        };
        let later = MIN_INTERVAL_NS + second;
        assert!(fine.convert(tick(later)).abs_diff(T0 + later) <= 1);
        // Then renewed at most once a second, as any full anchor.
        let t = MIN_INTERVAL_NS + RENEW_INTERVAL_NS / 2;
        assert_eq!(c.observe(tick(t), T0 + t), Decision::Keep);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_forked_child_takes_back_a_calibrator_held_at_the_fork() {
        let cell = tsc::CalibratorCell::new();
        assert_eq!(
            cell.try_with(|c| c.observe(tick(0), T0)),
            Some(Decision::Keep)
        );
        // As if a parent thread held it when the process forked: taken,
        // half way through.
        let held = cell.try_with(|_| cell.try_with(|_| ()));
        assert_eq!(held, Some(None), "taken while held");
        cell.try_with(|c| {
            c.provisional = true;
            // The child's reset runs in place of the holder's exit.
            cell.reset_in_child(None);
        });
        assert_eq!(
            cell.try_with(|c| (c.last, c.anchor, c.provisional)),
            Some((None, None, false)),
            "started over"
        );
        // With the parent's anchor: nothing due; the child's first sample
        // starts its renewal interval, and a second later it is renewed
        // (checked against the parent's, not withdrawn).
        let (_, parent) = first_anchor();
        let now = MIN_INTERVAL_NS + 5 * RENEW_INTERVAL_NS;
        cell.reset_in_child(Some(parent));
        let renewed = cell.try_with(|c| {
            assert_eq!(c.anchor_due(T0 + now), None);
            assert_eq!(c.observe(tick(now), T0 + now), Decision::Keep);
            let t = now + RENEW_INTERVAL_NS / 2;
            assert_eq!(c.observe(tick(t), T0 + t), Decision::Keep);
            let t = now + RENEW_INTERVAL_NS;
            c.observe(tick(t), T0 + t)
        });
        assert!(matches!(renewed, Some(Decision::Publish(_))), "{renewed:?}");
    }

    #[test]
    fn the_anchor_is_renewed_at_most_once_a_second_and_follows_a_rate_change() {
        let (mut c, _) = first_anchor();
        let t = MIN_INTERVAL_NS + RENEW_INTERVAL_NS / 2;
        assert_eq!(c.observe(tick(t), T0 + t), Decision::Keep);
        // NTP slews the system clock 100 ppm fast for the next second.
        let t2 = MIN_INTERVAL_NS + RENEW_INTERVAL_NS;
        let slewed = T0 + t2 + 100_000;
        let Decision::Publish(a) = c.observe(tick(t2), slewed) else {
            panic!("not renewed");
        };
        assert_eq!(a.ns, slewed);
    }

    #[test]
    fn a_clock_step_withdraws_the_anchor_until_measured_again() {
        let (mut c, _) = first_anchor();
        // Someone sets the clock an hour ahead.
        let t = MIN_INTERVAL_NS + RENEW_INTERVAL_NS;
        let hour = 3_600_000_000_000;
        assert_eq!(c.observe(tick(t), T0 + t + hour), Decision::Withdraw);
        let t2 = t + MIN_INTERVAL_NS;
        let Decision::Publish(a) = c.observe(tick(t2), T0 + t2 + hour) else {
            panic!("not anchored again");
        };
        assert!(a.convert(tick(t2 + 10)).abs_diff(T0 + t2 + hour + 10) <= 1);
        // And one back.
        let t3 = t2 + 10;
        assert_eq!(c.observe(tick(t3), T0), Decision::Withdraw);
    }

    #[test]
    fn an_interrupted_reading_is_not_used_for_calibration() {
        let ns = T0;
        // The narrowest reading wins, its TSC taken halfway.
        assert_eq!(
            pick_sample(&[(1000, ns, 1900), (5000, ns + 1, 5100), (9000, ns + 2, 9400)]),
            Some((5050, ns + 1))
        );
        // A reading interrupted in the middle (a preemption) is never used,
        // even when it is the only one.
        assert_eq!(
            pick_sample(&[(1000, ns, 1000 + MAX_SPREAD_TICKS + 1)]),
            None
        );
        assert_eq!(pick_sample(&[]), None);
    }

    #[test]
    fn the_live_clock_agrees_with_the_system_clock() {
        // Whatever path now_unix_ns takes on this machine, it tells the
        // system's time: anchored or not, before and after re-anchoring.
        recalibrate();
        #[cfg(target_arch = "x86_64")]
        if tsc::usable() {
            // Another test's exporter may hold the calibrator at a given
            // moment; it cannot at all of them.
            for _ in 0..20 {
                std::thread::sleep(std::time::Duration::from_millis(
                    MIN_INTERVAL_NS / 1_000_000 + 20,
                ));
                recalibrate();
                if tsc::now().is_some() {
                    break;
                }
            }
            assert!(tsc::now().is_some(), "the TSC clock was never anchored");
        }
        for _ in 0..1000 {
            let before = realtime_ns();
            let now = now_unix_ns();
            let after = realtime_ns();
            assert!(
                now + MAX_MISS_NS >= before && now <= after + MAX_MISS_NS,
                "{before} {now} {after}"
            );
        }
    }
}
