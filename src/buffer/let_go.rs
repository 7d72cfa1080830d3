//! Where a call waiting for a span another thread holds sleeps
//! (`LetGo`), and what wakes it.
//!
//! Why: a recording call that meets a span held past a short spin ran the
//! wait hooks (Python's binding lets go of the GIL) and then looked at the
//! span again after every `yield_now`, for as long as the holder held it.
//! A holder may hold it long: a setter waiting for payload chunks holds its
//! span up to `full_wait` (200 ms by default). On a machine with a core
//! or two (a container), the waiter burned one for all that time.
//!
//! How: a few yields (a holder preempted mid-write comes back at once),
//! then futex sleeps on a counter, `epoch` (`SPANS`, one for the
//! process), each no longer than `longest` (from 50 us, doubling). A
//! setter whose pool wait ends (it held its span all along) adds one to
//! `epoch` and wakes the sleepers, if any (`wake`); a sleeper woken starts
//! its sleeps over from the shortest, so it finds the span let go of soon
//! after the setter finishes its value. The wake is made there, not where
//! a span is let go of: the recording path's releases (a plain store
//! each, counted in instructions by `make bench-compare`) and the drop
//! after them do nothing new (a wake in that drop cost begin or
//! set_attributes an instruction, by how the compiler laid them out). A
//! waiter for a holder that does not wake it finds the span let go of
//! when its sleep runs out: those holds are copies, short beside the
//! sleep. A wake is never missed (see `wait_while` and `wake`), and a long
//! hold costs the waiter one wake-up a `longest` at most, not a core.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Yields before the first sleep.
const YIELDS: u32 = 8;

/// The first sleep of `SPANS`; each later one twice the last, up to `longest`.
pub const FIRST_SLEEP: Duration = Duration::from_micros(50);

/// The longest sleep of `SPANS`: a waiter for a holder that does
/// not wake it (a copy that outlasted the spin, a preempted holder) wakes
/// at most this late, and a long hold costs it about one wake-up a
/// millisecond.
pub const LONGEST_SLEEP: Duration = Duration::from_millis(1);

/// Where recording calls waiting for a span sleep, for every tracer of
/// the process: one word, so that a long holder's wake needs nothing in
/// hand. A wake wakes every sleeper, of any tracer; each looks at its own
/// span again.
pub static SPANS: LetGo = LetGo::new(FIRST_SLEEP, LONGEST_SLEEP);

/// Sleepers and the counter they sleep on, on a line of their own: written
/// only by waiters and by long holders letting go.
#[repr(align(128))]
pub struct LetGo {
    /// Long holds ended so far (modulo 2^32): what a sleeper sleeps on.
    epoch: AtomicU32,
    /// Threads in `wait_while` past their yields: a holder wakes no one
    /// (no system call) while there are none.
    sleepers: AtomicU32,
    first: Duration,
    longest: Duration,
}

impl LetGo {
    /// Sleeps from `first`, doubling, up to `longest` each.
    pub const fn new(first: Duration, longest: Duration) -> LetGo {
        LetGo {
            epoch: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            first,
            longest,
        }
    }

    /// Returns once `held()` is false: yields a few times, then sleeps
    /// until a long holder wakes it or the sleep runs out, and looks again.
    /// `held` reads the word the holder's release writes (a span's header,
    /// its owner's `busy`), with Acquire if the caller reads what the
    /// holder wrote.
    #[cold]
    #[inline(never)]
    pub fn wait_while(&self, held: impl Fn() -> bool) {
        self.wait_while_until(held, None);
    }

    /// `wait_while`, giving up at `deadline` (no sleep runs past it).
    #[cold]
    #[inline(never)]
    pub fn wait_while_until(&self, held: impl Fn() -> bool, deadline: Option<Instant>) {
        let mut yields = 0;
        let mut sleep = self.first;
        while held() {
            if yields < YIELDS {
                yields += 1;
                std::thread::yield_now();
                continue;
            }
            let sleep_now = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => sleep.min(left),
                    _ => return,
                },
                None => sleep,
            };
            // SeqCst, with `wake`'s two: either the holder's load of
            // `sleepers` sees this one, and it wakes us, or it came first
            // in their single order and so did its increment of `epoch`,
            // which our load then reads (and, its release, makes `held`
            // see the holder's release: no sleep). A wake between our load
            // and our sleep changed `epoch`, and the futex wait, seeing it
            // changed, does not sleep.
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            let seen = self.epoch.load(Ordering::SeqCst);
            if held() {
                futex_wait(&self.epoch, seen, sleep_now);
            }
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
            // Woken (or a long wait ended meanwhile): the holder is about
            // to let go, its sleeps start over from the shortest.
            sleep = if self.epoch.load(Ordering::Relaxed) != seen {
                self.first
            } else {
                (sleep * 2).min(self.longest)
            };
        }
    }

    /// For a holder whose long wait ended (it lets go of its span soon):
    /// wakes every thread sleeping in `wait_while` (each looks at its own
    /// span again, then sleeps from the shortest), with no system call
    /// when none sleeps. Returns how many it woke.
    #[cold]
    #[inline(never)]
    pub fn wake(&self) -> usize {
        // SeqCst: see `wait_while`. The increment comes after the caller's
        // release of its span (its own program order, and release here).
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return 0;
        }
        futex_wake_all(&self.epoch)
    }

    /// Threads now in `wait_while` past their yields (tests).
    #[cfg(test)]
    pub fn sleepers(&self) -> u32 {
        self.sleepers.load(Ordering::SeqCst)
    }
}

/// Sleeps while `word` holds `expected`, at most `timeout`; returns early
/// on a wake, a signal, or a word already changed.
#[cfg(target_os = "linux")]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned u32 for the call; the kernel only
    // reads it and the timespec (a relative timeout for FUTEX_WAIT).
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &timeout as *const libc::timespec,
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    if word.load(Ordering::SeqCst) == expected {
        std::thread::sleep(timeout);
    }
}

/// Wakes every thread in `futex_wait` on `word`; how many.
#[cfg(target_os = "linux")]
pub(crate) fn futex_wake_all(word: &AtomicU32) -> usize {
    // SAFETY: as in `futex_wait`; a wake reads nothing.
    let woken = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        )
    };
    usize::try_from(woken).unwrap_or(0)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn futex_wake_all(_: &AtomicU32) -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    /// A sleeper whose sleep would not run out within the test is woken by
    /// the holder's `wake`: without it, the waiter would still sleep.
    #[test]
    fn a_long_holders_wake_ends_the_sleep_of_its_waiter() {
        let hour = Duration::from_secs(3600);
        let let_go = Arc::new(LetGo::new(hour, hour));
        let held = Arc::new(AtomicBool::new(true));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let waiter = {
            let (let_go, held) = (Arc::clone(&let_go), Arc::clone(&held));
            std::thread::spawn(move || {
                let_go.wait_while(|| held.load(Ordering::Acquire));
                done_tx.send(()).expect("send");
            })
        };
        // Past its yields, asleep or about to be (either way the wake
        // below must reach it; 100 ms make it most likely asleep). The
        // waits here are guards, not measures: without the wake, the
        // waiter sleeps an hour and the guard fails.
        while let_go.sleepers() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(100));
        held.store(false, Ordering::Release);
        let_go.wake();
        done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the wake ended the wait");
        waiter.join().expect("waiter");
        assert_eq!(let_go.sleepers(), 0);
        // Nobody sleeps: no system call, nobody woken.
        assert_eq!(let_go.wake(), 0);
    }

    /// A waiter that met nothing held neither yields nor sleeps.
    #[test]
    fn nothing_held_returns_at_once() {
        let let_go = LetGo::new(FIRST_SLEEP, LONGEST_SLEEP);
        let looks = std::cell::Cell::new(0);
        let_go.wait_while(|| {
            looks.set(looks.get() + 1);
            false
        });
        assert_eq!(looks.get(), 1);
        assert_eq!(let_go.sleepers(), 0);
    }
}
