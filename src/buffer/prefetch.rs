//! Cache hints for the recording path and the exporter: one function, so
//! that the slab and the ended queue ask for lines the same way.

#[cfg(target_arch = "x86_64")]
use super::slab::FIRST_LINES;

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

/// `prefetch(record + offset, true)` for each offset of `FIRST_LINES` (a
/// slot's first lines), in one block that addresses every line from
/// `record`: as one `prefetch` each, every line's address took a register
/// and an instruction or two of its own (5 instructions more a begin).
#[inline(always)]
pub(super) fn prefetch_first_lines_for_write(record: *const i8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `prefetch`: a prefetch never faults and changes no
    // register, flag or memory.
    unsafe {
        std::arch::asm!(
            "prefetchw [{r} + {a}]",
            "prefetchw [{r} + {b}]",
            "prefetchw [{r} + {c}]",
            "prefetchw [{r} + {d}]",
            r = in(reg) record,
            a = const FIRST_LINES[0],
            b = const FIRST_LINES[1],
            c = const FIRST_LINES[2],
            d = const FIRST_LINES[3],
            options(nostack, preserves_flags, readonly)
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = record;
}
