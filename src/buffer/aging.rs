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
//!   least `HOLD_LEAST`, and none while fewer than a quarter of its slots
//!   look free; and the exporter gives them all back when it finds nothing
//!   to take (a thread out of slots wakes it: under the default full
//!   policy it then waits for them), before it answers a flush, and when
//!   it stops. Under the drop policy a burst of open spans can meet the
//!   stack empty while these slots are held: at most 1,024 of the default
//!   slab, a sixteenth of a slab of 16,384 or more.
//! - **Memory.** A slot is resident once first used. Without a hold a
//!   steady trickle of spans reuses the few slots of its last batches;
//!   with one it cycles through the hold's slots too: 1,024 more slots
//!   resident, about 3 MiB of records and more once past the slab's first
//!   2 MiB (huge pages: 1 span a millisecond for 3 s kept 4.3 MiB more),
//!   for a tracer that records steadily; none for an idle one. A thread
//!   recording flat out uses the whole default slab either way.
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

/// The exporter's slots given back and not yet on the free stack, oldest
/// first.
pub struct AgingSlots {
    slots: VecDeque<u32>,
    limit: usize,
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
    pub(super) fn add(&mut self, indexes: &[u32]) {
        self.slots.extend(indexes.iter().copied());
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
