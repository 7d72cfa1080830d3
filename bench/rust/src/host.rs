//! How much of its core the benchmark thread has, measured rather than
//! guessed: independent additions retired per cycle of a dependent chain.
//!
//! A core retires one addition of a dependent chain per cycle whatever
//! runs beside it, but independent additions as fast as it has ALUs (4 on
//! an idle AMD Zen 3 core). The additions add a register, not a constant:
//! some newer Intel cores (the Xeon of runs 55 and 56 among them) fold a
//! chain of constant additions at rename, so that chain ran as fast as
//! four independent ones and the probe read 1.0 whatever the core's state. A dependent addition taking one cycle,
//! the chain also gives the core's clock. When the core's other hardware thread is busy
//! (on these VMs, often work of another tenant, invisible from inside),
//! the two threads share the ALUs and the figure drops to 2-3. The
//! recording path retires several instructions a cycle and loses about
//! half its speed then; the SDK, which waits on memory more, loses less
//! (BENCHMARKS.md, "What the host's slow state is").

use std::time::Instant;

/// What the probe measured: independent additions per cycle, and the
/// core's clock in GHz (one dependent addition a cycle).
#[derive(Clone, Copy)]
pub struct Probe {
    pub width: f64,
    pub ghz: f64,
}

/// The two parts in turn, 16 times (about 3 ms: the neighbour's load
/// changes within milliseconds), then the ratio of their totals; None
/// where the probe has no code (not x86-64).
pub fn probe() -> Option<Probe> {
    #[cfg(target_arch = "x86_64")]
    {
        let (mut chain, mut wide) = (0.0, 0.0);
        for _ in 0..16 {
            chain += chain_secs();
            wide += wide_secs();
        }
        Some(Probe {
            width: chain / wide,
            ghz: 16.0 / chain / 1e9,
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

#[cfg(target_arch = "x86_64")]
const ROUNDS: u32 = 2_000;

/// Seconds an addition of a dependent chain takes.
#[cfg(target_arch = "x86_64")]
fn chain_secs() -> f64 {
    let mut a = 1u64;
    let one = std::hint::black_box(1u64);
    let t = Instant::now();
    for _ in 0..ROUNDS {
        // 64 additions, each waiting for the one before.
        // SAFETY: register arithmetic only.
        unsafe {
            std::arch::asm!(
                ".rept 64", "add {a}, {one}", ".endr",
                a = inout(reg) a,
                one = in(reg) one,
                options(nomem, nostack)
            );
        }
    }
    std::hint::black_box(a);
    t.elapsed().as_secs_f64() / (ROUNDS as f64 * 64.0)
}

/// Seconds an addition takes in four independent chains.
#[cfg(target_arch = "x86_64")]
fn wide_secs() -> f64 {
    let (mut a, mut b, mut c, mut d) = (1u64, 2u64, 3u64, 4u64);
    let one = std::hint::black_box(1u64);
    let t = Instant::now();
    for _ in 0..ROUNDS {
        // 256 additions in four independent chains.
        // SAFETY: register arithmetic only.
        unsafe {
            std::arch::asm!(
                ".rept 64", "add {a}, {one}", "add {b}, {one}", "add {c}, {one}", "add {d}, {one}", ".endr",
                a = inout(reg) a,
                b = inout(reg) b,
                c = inout(reg) c,
                d = inout(reg) d,
                one = in(reg) one,
                options(nomem, nostack)
            );
        }
    }
    std::hint::black_box((a, b, c, d));
    t.elapsed().as_secs_f64() / (ROUNDS as f64 * 256.0)
}
