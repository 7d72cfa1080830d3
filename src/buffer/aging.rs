//! Slots the exporter has given back but not yet put on the free stack:
//! it holds the last thousand or few thousand, so that a recording thread
//! takes slots the exporter last touched that many spans ago rather than a
//! few microseconds ago.
//!
//! Why: the free stack is last in, first out, so with the exporter
//! encoding beside a recording thread (regime (b)) every refill took the
//! slots of the part the exporter had just given back. Their first line
//! (the header, which the exporter writes as it takes and frees a slot)
//! and the lines it read to encode them then sat in the exporter's core,
//! and the recording thread's begin waited for each to come over, despite
//! asking for them two spans ahead: `perf record -e cpu-clock` of
//! bench/c/regime_loop.c put 20.8% of `spanguard_span_begin`'s samples in
//! (b) on the load of the slot's header (4.5% in (a)). Slots given back a
//! few thousand spans ago have left the exporter's private caches, and
//! they come as they do in (a), where a sample takes slots freed up to
//! 50,000 spans before. BENCHMARKS.md ("Slots given back later") has the
//! figures.
//!
//! What it must not break:
//! - **Room.** Held slots are free, yet no begin can take them. So a slab
//!   smaller than the default one holds none (`HOLD_FROM_SLOTS`), the
//!   default one (4,096 slots) a quarter, a larger one a sixteenth but at
//!   least `HOLD_LEAST` (the default one only once all its slots have been
//!   used: "Memory"), and none while fewer than a quarter of its slots
//!   look free; and the exporter gives them all back when it finds nothing
//!   to take (a thread out of slots wakes it: under the default full
//!   policy it then waits for them), before it answers a flush, and when
//!   it stops. Under the drop policy a burst of open spans can meet the
//!   stack empty while these slots are held: at most 1,024 of the default
//!   slab, a sixteenth of a slab of 16,384 or more.
//! - **Memory.** A slot is resident once first used, and the free stack
//!   gives the slots used before first (the never-used ones lie below
//!   them). A hold drawn from any free slot made a steady trickle of spans
//!   cycle through the held slots besides the few of its last batches:
//!   1,024 slots never used before, 4.3 MiB more resident for 1 span a
//!   millisecond for 3 s (defrow45, BENCHMARKS.md). So a slab under
//!   `HOLD_ANY_FROM_SLOTS` slots (the default one) holds none until every
//!   one of its slots has been used (`SpanSlab::used_slots`): until then
//!   its threads take exactly the slots they would without a hold, so they
//!   use no slot more, whatever they record; from then on no slot is left
//!   for the hold to make resident. A thread recording flat out uses every
//!   slot in its first fill (it outruns the exporter and waits for slots)
//!   and then gets the whole hold; a trickle, or bursts the slab holds,
//!   get none. (Holding out of the used slots no thread needs before the
//!   next give back was tried: with a reserve of a batch and a cache's
//!   refill for what the threads take meanwhile, bursts of 1,000 spans a
//!   wake used 2,048 slots against 1,024 without the hold; with the most
//!   they had ever taken between two give backs, it held nothing short of
//!   a full slab in slab.rs's tests, the first give back counting all a
//!   tracer took since its start.) A larger slab holds from any free
//!   slot, as timed (runs 112 and 113): a trickle through it still cycles
//!   through its hold.
//! - **Counting.** A held slot was cleared and marked FREE with its next
//!   generation as before (`SpanSlab::clear_all`): stale handles, crash
//!   dumps and the flight recorder see it free; nothing counts it.
//! - **Allocation.** The holder is sized once, for `HOLD_MAX` slots plus a
//!   batch: the exporter allocates nothing per batch.

use std::collections::VecDeque;

/// Slots held at most.
const HOLD_MAX: usize = 4096;

/// The smallest slab that holds any: the default one (4,096 slots). Its
/// recording thread meets the exporter's latest slots the most: a thread
/// recording flat out refills the slab 12 times in 50,000 spans, and
/// without a hold took a third of its slots from the exporter's last 1,024
/// given back, a fifth from the last 512 (against 1.4% and 0.7% with the bench's
/// 69,632-slot slab and its hold; BENCHMARKS.md, "The default settings'
/// (b) row: slots the exporter had just freed").
const HOLD_FROM_SLOTS: u32 = 4096;

/// Slots held at least, when any: a sixteenth of the default slab (256)
/// is half a batch, whose lines are likely still in the exporter's caches
/// when a thread takes them; 1,024 is two default batches, a quarter of
/// that slab. Not timed on a quiet host (BENCHMARKS.md).
const HOLD_LEAST: usize = 1024;

/// The smallest slab that holds before all its slots have been used (see
/// "Memory"): the bench's 69,632-slot slab was timed so (runs 112-113).
const HOLD_ANY_FROM_SLOTS: u32 = 16384;

/// The exporter's slots given back and not yet on the free stack, oldest
/// first.
pub struct AgingSlots {
    slots: VecDeque<u32>,
    limit: usize,
    /// Whether it holds only once every slot has been used (a slab under
    /// `HOLD_ANY_FROM_SLOTS`).
    once_all_used: bool,
}

/// The slab's counts as the exporter gives slots back
/// (`AgingSlots::receive`).
pub struct SlabNow {
    pub capacity: u32,
    /// Slots used so far (`SpanSlab::used_slots`): each one resident, the
    /// rest never touched.
    pub used: u32,
    /// Spans open, or ended and not yet taken by the exporter.
    pub busy: u64,
}

impl AgingSlots {
    /// For a slab of `capacity` slots whose exporter gives back at most
    /// `batch` at once.
    pub fn for_slab(capacity: u32, batch: usize) -> AgingSlots {
        let limit = if capacity >= HOLD_FROM_SLOTS {
            (capacity as usize / 16).clamp(HOLD_LEAST, HOLD_MAX)
        } else {
            0
        };
        AgingSlots {
            slots: if limit > 0 {
                VecDeque::with_capacity(limit + batch)
            } else {
                VecDeque::new()
            },
            limit,
            once_all_used: capacity < HOLD_ANY_FROM_SLOTS,
        }
    }

    /// How many it may hold.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// How many it holds.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Adds slots just given back, newest last.
    fn add(&mut self, indexes: &[u32]) {
        self.slots.extend(indexes.iter().copied());
    }

    /// Takes `indexes`, just given back (newest last), and says how many
    /// of the oldest held go on the free stack now (`take_oldest`).
    pub(super) fn receive(&mut self, indexes: &[u32], now: &SlabNow) -> usize {
        self.add(indexes);
        self.slots.len() - self.keep(now).min(self.slots.len())
    }

    /// How many to hold (see "Room" and "Memory" above).
    fn keep(&self, now: &SlabNow) -> usize {
        if self.once_all_used && now.used < now.capacity {
            return 0;
        }
        // Neither open, nor ended and not yet given back, nor held: the
        // slots the stack and the threads' caches hold, give or take the
        // batch being exported.
        let capacity = u64::from(now.capacity);
        let free = capacity
            .saturating_sub(now.busy)
            .saturating_sub(self.slots.len() as u64);
        if free >= capacity / 4 { self.limit } else { 0 }
    }

    /// Takes the `n` oldest out, oldest first, into `give` (one call for
    /// each contiguous run, older runs last: `FreeStack::push_all` puts its
    /// first on top, so the oldest slot ends on top of the stack).
    pub(super) fn take_oldest(&mut self, n: usize, mut give: impl FnMut(&[u32])) {
        let n = n.min(self.slots.len());
        if n == 0 {
            return;
        }
        let (front, back) = self.slots.as_slices();
        if n <= front.len() {
            give(&front[..n]);
        } else {
            give(&back[..n - front.len()]);
            give(front);
        }
        self.slots.drain(..n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_the_default_slab_none_is_held_in_it_a_quarter_past_it_a_sixteenth_up_to_the_most() {
        assert_eq!(AgingSlots::for_slab(4095, 512).limit(), 0);
        // The default slab: a quarter (the least held).
        assert_eq!(AgingSlots::for_slab(4096, 512).limit(), 1024);
        assert_eq!(AgingSlots::for_slab(8192, 512).limit(), 1024);
        assert_eq!(AgingSlots::for_slab(16384, 512).limit(), 1024);
        assert_eq!(AgingSlots::for_slab(32768, 512).limit(), 2048);
        assert_eq!(AgingSlots::for_slab(69632, 512).limit(), 4096);
        assert_eq!(AgingSlots::for_slab(1 << 20, 512).limit(), 4096);
    }

    #[test]
    fn the_default_slab_holds_once_every_slot_has_been_used_a_larger_one_at_once() {
        let now = |capacity: u32, used: u32| SlabNow {
            capacity,
            used,
            busy: 0,
        };
        let mut default = AgingSlots::for_slab(4096, 512);
        let batch: Vec<u32> = (0..512).collect();
        // 4,032 of 4,096 used: all given back at once.
        assert_eq!(default.receive(&batch, &now(4096, 4032)), 512);
        default.take_oldest(512, |_| {});
        // All used: held up to the limit, then the oldest go on.
        assert_eq!(default.receive(&batch, &now(4096, 4096)), 0);
        assert_eq!(default.receive(&batch, &now(4096, 4096)), 0);
        assert_eq!(default.receive(&batch, &now(4096, 4096)), 512);
        // A slab of 16,384 slots holds from its first give back.
        let mut large = AgingSlots::for_slab(16384, 512);
        assert_eq!(large.receive(&batch, &now(16384, 576)), 0);
        // Fewer than a quarter free: none held, whatever was used.
        let busy = SlabNow {
            capacity: 4096,
            used: 4096,
            busy: 3072,
        };
        assert_eq!(default.receive(&batch, &busy), default.len());
    }

    #[test]
    fn the_oldest_come_out_first_across_the_ring_s_wrap() {
        let mut a = AgingSlots::for_slab(16384, 4);
        let mut out = Vec::new();
        // Wrap the ring: add and take until the front lies at its end.
        for round in 0..300u32 {
            a.add(&[round * 4, round * 4 + 1, round * 4 + 2, round * 4 + 3]);
            a.take_oldest(4, |s| out.push(s.to_vec()));
            // What would end up on top: the first of the last run given.
            let top = out.iter().rev().flat_map(|s| s.first()).next().copied();
            let mut given: Vec<u32> = Vec::new();
            for s in out.drain(..).rev() {
                given.extend(s);
            }
            given.sort_unstable();
            assert_eq!(
                given,
                vec![round * 4, round * 4 + 1, round * 4 + 2, round * 4 + 3]
            );
            assert_eq!(top, Some(round * 4), "the oldest on top");
        }
        assert!(a.is_empty());
    }
}
