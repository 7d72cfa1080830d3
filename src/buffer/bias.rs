//! Biased span locks: the thread that began a span writes it with no
//! locked instruction, and any other caller takes it away first.
//!
//! Why: every call on a span (an attribute, an event, the end) took the
//! slot's lock with a compare-exchange, a locked instruction that drains
//! the core's store buffer. Nearly every span is written only by the thread
//! that began it, so that thread never met another there, but paid for it
//! four times in begin + 3 attributes + end: with the two locked
//! instructions made plain stores (a single-thread experiment, not a lock),
//! that span took 102.8 ns instead of 124.2 (`make bench-compare`, 5 pairs,
//! exporter busy), the floor of what removing them can give.
//!
//! How (an asymmetric Dekker handshake, as in biased locking and RCU):
//! - A slot begun from a thread's cache of free slots is *biased* to that
//!   cache (`SpanRecord::bias`, the cache's number), whose claiming thread
//!   is the owner (`Owner::thread`, its thread pointer).
//! - The owner enters by storing the slot's number in its cache's `busy`
//!   word, then reads the slot's header (still OPEN, same generation) and
//!   bias (still set): a compiler fence between, no locked instruction.
//!   It leaves by clearing `busy`. Its header stays OPEN meanwhile, except
//!   that an end stores ENDED before leaving.
//! - Anyone else (another thread, the shutdown's scan) takes the slot as
//!   before, with a compare-exchange to WRITING, and then, if the slot is
//!   still biased, clears the bias, runs `heavy_barrier` (the membarrier
//!   system call: every running thread of the process passes a full
//!   barrier) and waits while the owner's `busy` names the slot. After the
//!   barrier, either the owner's `busy` store is visible (it entered before
//!   the compare-exchange: wait for it to leave) or the owner's reads come
//!   after the compare-exchange and the cleared bias (it sees WRITING and
//!   takes the slow path, now and for good). The taker then checks that
//!   the header still says WRITING for it: an owner's end may have stored
//!   ENDED over it, and then the span is ended.
//! - A slot whose bias is already clear needs none of that: whoever cleared
//!   it held WRITING until the owner had left, and an owner entering after
//!   that reads the clear bias.
//!
//! Costs: a span ended or written on another thread costs that call a
//! system call (microseconds), once per span. A tracer stops biasing new
//! spans when more than one span in 64 needed it (`SpanSlab`), so a
//! program whose spans move between threads (goroutines, thread pools)
//! keeps the plain lock. Without membarrier's private expedited command
//! (Linux before 4.14, or a seccomp filter that refuses it) nothing is
//! biased.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicUsize, Ordering};

/// The part of a thread's cache of free slots that the biased lock uses.
/// `thread` is written only by the claim and the release, and read by
/// other threads (one whose entry in the slot cache's hint table names
/// this cache, a caller on a biased span), so it has a line to itself
/// (with the cache's claim word): `busy`, written on every call, would
/// make each such read a transfer between cores.
#[repr(C)]
pub struct Owner {
    /// The claiming thread's pointer (`this_thread`), 0 while unclaimed.
    pub thread: AtomicUsize,
    _to_line: [u8; 56],
    /// The slot number + 1 the owner is writing under its bias, 0 for none.
    /// Written only by the claiming thread.
    pub busy: AtomicU32,
}

/// The owner a slot biased to no cache leads to (`SpanSlab`'s owner
/// table): its thread is a value `this_thread` never gives (a thread
/// pointer is an aligned address; 0 where it is not read), so no caller is
/// ever its thread, and nothing is written to it.
pub static NO_OWNER: Owner = Owner {
    thread: AtomicUsize::new(usize::MAX),
    _to_line: [0; 56],
    busy: AtomicU32::new(0),
};

impl Default for Owner {
    fn default() -> Owner {
        Owner {
            thread: AtomicUsize::new(0),
            _to_line: [0; 56],
            busy: AtomicU32::new(0),
        }
    }
}

/// This thread's identity: its thread pointer (the address of its thread
/// control block), one instruction. Unique among live threads; 0 on
/// targets where it is not read here (nothing is biased there).
#[inline(always)]
pub fn this_thread() -> usize {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        let tp: usize;
        // SAFETY: on x86-64 Linux the first word of the thread control
        // block, at %fs:0, is its own address (the TLS ABI requires it).
        unsafe {
            std::arch::asm!(
                "mov {}, qword ptr fs:[0]",
                out(reg) tp,
                options(nostack, preserves_flags, readonly, pure)
            )
        };
        tp
    }
    #[cfg(all(target_arch = "aarch64", target_os = "linux"))]
    {
        let tp: usize;
        // SAFETY: reads the thread pointer register; no memory access.
        unsafe {
            std::arch::asm!(
                "mrs {}, tpidr_el0",
                out(reg) tp,
                options(nomem, nostack, preserves_flags, pure)
            )
        };
        tp
    }
    #[cfg(not(all(
        any(target_arch = "x86_64", target_arch = "aarch64"),
        target_os = "linux"
    )))]
    {
        0
    }
}

const UNKNOWN: u8 = 0;
const AVAILABLE: u8 = 1;
const UNAVAILABLE: u8 = 2;

/// Whether this process may bias spans: membarrier registered (once).
static BARRIER: AtomicU8 = AtomicU8::new(UNKNOWN);

fn membarrier(cmd: libc::c_int) -> libc::c_long {
    // SAFETY: membarrier takes two integers and touches no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    }
}

/// Whether spans may be biased in this process: the first call registers
/// for membarrier's private expedited command; later ones read the answer.
/// `SPANGUARD_NO_BIAS` set (to anything) turns biasing off, for comparing.
pub fn available() -> bool {
    match BARRIER.load(Ordering::Acquire) {
        AVAILABLE => return true,
        UNAVAILABLE => return false,
        _ => {}
    }
    let wanted =
        (libc::MEMBARRIER_CMD_PRIVATE_EXPEDITED | libc::MEMBARRIER_CMD_GLOBAL) as libc::c_long;
    let ok = this_thread() != 0
        && crate::config::env_var_os("SPANGUARD_NO_BIAS").is_none()
        && membarrier(libc::MEMBARRIER_CMD_QUERY) & wanted == wanted
        && membarrier(libc::MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
    BARRIER.store(if ok { AVAILABLE } else { UNAVAILABLE }, Ordering::Release);
    ok
}

/// A full memory barrier on every thread of the process now running (and,
/// by the scheduler, on every other before it runs again): the heavy side
/// of the handshake. Called only after `available` said yes.
#[cold]
#[inline(never)]
pub fn heavy_barrier() {
    #[cfg(test)]
    BARRIERS_HERE.with(|n| n.set(n.get() + 1));
    if membarrier(libc::MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0 {
        return;
    }
    // Refused: a child of fork whose kernel did not carry the registration
    // over. Register again, else the global command (slower, no
    // registration, and present wherever the query above found it).
    if membarrier(libc::MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0
        && membarrier(libc::MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0
    {
        return;
    }
    let _ = membarrier(libc::MEMBARRIER_CMD_GLOBAL);
}

#[cfg(test)]
thread_local! {
    /// `heavy_barrier` calls made on this thread (tests).
    pub static BARRIERS_HERE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The owner's side, entering: says it is writing `slot` under the bias,
/// then returns whether the slot's header is still `open` and its bias
/// still `number` (else it has left again, and the caller takes the slot
/// the usual way). See the module comment for why no fence is needed.
#[inline(always)]
pub fn enter(
    owner: &Owner,
    slot: u32,
    header: &std::sync::atomic::AtomicU64,
    open: u64,
    bias: &AtomicU8,
    number: u8,
) -> bool {
    owner.busy.store(slot + 1, Ordering::Relaxed);
    // The light side of the handshake: the compiler keeps the store above
    // before the loads below; `heavy_barrier` orders them on the CPU.
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
    // Acquire: the body as the last writer under the plain lock left it.
    if header.load(Ordering::Acquire) == open && bias.load(Ordering::Relaxed) == number {
        return true;
    }
    owner.busy.store(0, Ordering::Release);
    false
}

/// The owner's side, leaving: Release publishes what it wrote to a taker
/// waiting in `wait_for_owner`.
#[inline(always)]
pub fn leave(owner: &Owner) {
    owner.busy.store(0, Ordering::Release);
}

/// The taker's side, after clearing the slot's bias: waits until the owner
/// is not writing `slot`.
#[cold]
#[inline(never)]
pub fn wait_for_owner(owner: &Owner, slot: u32) {
    if !owner_left_at_once(owner, slot) {
        wait_while_busy(owner, slot);
    }
}

/// `wait_for_owner`'s first part: whether the owner, if it was writing
/// `slot`, left within a short spin (a copy).
#[cold]
#[inline(never)]
pub fn owner_left_at_once(owner: &Owner, slot: u32) -> bool {
    heavy_barrier();
    for _ in 0..128 {
        if owner.busy.load(Ordering::Acquire) != slot + 1 {
            return true;
        }
        std::hint::spin_loop();
    }
    false
}

/// `wait_for_owner`'s second part, after `owner_left_at_once` said no:
/// yields until the owner has left `slot`.
#[cold]
#[inline(never)]
fn wait_while_busy(owner: &Owner, slot: u32) {
    while owner.busy.load(Ordering::Acquire) == slot + 1 {
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_have_distinct_nonzero_pointers() {
        let here = this_thread();
        assert_ne!(here, 0);
        assert_eq!(here, this_thread());
        let there = std::thread::spawn(this_thread).join().expect("thread");
        assert_ne!(there, 0);
        assert_ne!(here, there);
    }

    #[test]
    fn membarrier_is_there_on_this_host() {
        // The test hosts run Linux 4.14 or later with no seccomp filter:
        // if this fails, nothing is biased and the benchmarks say so.
        if std::env::var_os("SPANGUARD_NO_BIAS").is_none() {
            assert!(available());
            heavy_barrier();
        }
    }
}
