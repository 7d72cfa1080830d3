//! Cache hints for the recording path and the exporter: one function, so
//! that the slab and the ended queue ask for lines the same way.

/// Asks the CPU to bring the cache line at `address` here, ready for
/// writing when `for_write`. A hint: no effect on what the program
/// computes, and a no-op where the architecture has no stable intrinsic
/// for it.
///
/// For writing, PREFETCHW, written out: `_mm_prefetch::<_MM_HINT_ET0>`
/// compiles to a plain PREFETCHT0 unless the build enables the `prfchw`
/// target feature, which a generic x86-64 build does not. A read prefetch
/// of a line the exporter's core holds brings it here shared, and the
/// write then waits for a second trip to take it over; PREFETCHW takes
/// it over at once: with the exporter encoding while a thread records,
/// begin+end took 0.71 and begin+3 attrs+end 0.79 of the time they took
/// with PREFETCHT0 (`make bench-compare`, 5 pairs, 306ac39). CPUs without
/// PREFETCHW (Intel before Broadwell) run its encoding as a NOP.
#[inline(always)]
pub(super) fn prefetch(address: *const i8, for_write: bool) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address, and changes
    // no register, flag or memory.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        if for_write {
            std::arch::asm!(
                "prefetchw [{0}]",
                in(reg) address,
                options(nostack, preserves_flags, readonly)
            );
        } else {
            _mm_prefetch::<_MM_HINT_T0>(address)
        }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (address, for_write);
}
