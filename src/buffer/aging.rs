//! Slots the exporter has given back but not yet put on the free stack:
//! it holds the last few thousand, so that a recording thread takes slots
//! the exporter last touched a few thousand spans ago rather than a few
//! microseconds ago.
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
//! - **Room.** Held slots are free, yet no begin can take them. So only a
//!   large slab holds any (`HOLD_FROM_SLOTS`), at most a sixteenth of it,
//!   and none while fewer than a quarter of its slots look free; and the
//!   exporter gives them all back when it finds nothing to take (a thread
//!   out of slots wakes it: under the default full policy it then waits
//!   for them), before it answers a flush, and when it stops. Under the
//!   drop policy a burst of open spans can meet the stack empty while
//!   these slots are held: at most a sixteenth of the slab.
//! - **Counting.** A held slot was cleared and marked FREE with its next
//!   generation as before (`SpanSlab::clear_all`): stale handles, crash
//!   dumps and the flight recorder see it free; nothing counts it.
//! - **Allocation.** The holder is sized once, for `HOLD_MAX` slots plus a
//!   batch: the exporter allocates nothing per batch.

use std::collections::VecDeque;

/// Slots held at most.
const HOLD_MAX: usize = 4096;

/// The smallest slab that holds any: at a sixteenth of a smaller slab
/// (the default one has 4,096 slots) the exporter would hold too few for
/// their lines to leave its caches, and cost the room for nothing.
const HOLD_FROM_SLOTS: u32 = 16384;

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
            (capacity as usize / 16).min(HOLD_MAX)
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
    fn a_small_slab_holds_none_and_a_large_one_a_sixteenth_up_to_the_most() {
        assert_eq!(AgingSlots::for_slab(4096, 512).limit(), 0);
        assert_eq!(AgingSlots::for_slab(16384, 512).limit(), 1024);
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
