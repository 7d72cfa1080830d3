//! The ended queue: slot numbers handed from the threads that end spans
//! to the exporter, first in, first out.
//!
//! A bounded queue after Dmitry Vyukov's, in the form this handoff needs:
//! many producers, one consumer, and never full (every slot number is in
//! it at most once and it has a cell for each slot), so a push claims its
//! position with one fetch-add, where crossbeam's `ArrayQueue` it replaces
//! loaded the cell and retried a compare-exchange.
//!
//! Each cell holds a sequence number and a slot number, 8 bytes, so a
//! cache line holds 8 cells (4 with `ArrayQueue`'s 16-byte cells). The
//! consumer writes every cell it takes, so each line moves back and forth
//! between the exporter's core and the recording core: a push prefetches,
//! for writing, its lane's line in the next pair of lines, so that its
//! successors find it here instead of waiting for it.
//!
//! Two lanes: positions go to lines in pairs, even positions on one line
//! and odd ones on the next, 8 of each (`cell`). Two threads ending spans
//! by turns then each write a line of their own instead of taking one
//! line from each other on every push: with two recording threads and the
//! exporter asleep, a span took 125-127 ns instead of 138-141, 144-160
//! instead of 164-167 with it busy (`make bench-threads`, 3 runs each).
//! One thread still fills a line per 8 pushes, as before: begin + 3
//! attributes + end measured the same (`make bench-compare`, 5 pairs,
//! 0.99 to 1.00), begin + end alone 1.03 with the exporter busy. (One
//! line per position in turn, a full stride, did as well for two threads
//! but cost one thread 1-4%: 8 times the lines for the exporter to take
//! back.) The cells start on a page (a slab's queues share one mapping,
//! each from a page boundary), so that a line of cells is one line of the
//! cache.
//!
//! A cell at position `p` (counting every push ever made) is free for the
//! push of `p` when it holds `lap(p)`, the position its lap starts at, and
//! full when it holds `lap(p) + 1`; the consumer frees it for the push one
//! lap later by storing `lap(p) + cells`. (Vyukov's cells hold `p` itself;
//! counting from the lap's start instead makes all-zero memory a queue
//! whose every cell is free for the first lap, so a fresh mapping is a
//! queue with nothing written: its pages are resident only once used.)
//! Sequences are kept modulo 2^32: only equality is tested, and a lap is
//! far shorter than 2^32.
//!
//! A slab has one such queue for each thread's cache of free slots and one
//! shared (`SpanSlab::ended`): see there for why.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::prefetch::prefetch;

struct Cell {
    sequence: AtomicU32,
    slot: AtomicU32,
}

/// Cells on one cache line: the mapping starts on a page, so that a line
/// of cells is a line of the cache.
const LINE_BYTES: usize = 64;

/// Each queue starts on a page: `populate` advises whole pages.
const PAGE_BYTES: usize = 4096;

/// A counter on a cache line of its own (two lines: the adjacent-line
/// prefetcher pulls pairs).
#[repr(align(128))]
struct Line(AtomicU64);

pub struct EndedQueue {
    /// `mask + 1` cells, `map_len` bytes from a page boundary of a private
    /// anonymous mapping.
    cells: NonNull<Cell>,
    map_len: usize,
    /// Bytes to unmap from `cells` when dropped: the whole mapping for the
    /// queue that starts it, 0 for the others of `EndedQueue::many`.
    owned_len: usize,
    /// The number of cells - 1 (a power of two minus one).
    mask: u64,
    /// Whether `populate` has run (or is running).
    populated: AtomicBool,
    /// Positions claimed by pushes. Written by producers; the consumer
    /// reads it only when the cell at its head is not yet full.
    tail: Line,
    /// Positions taken by the consumer; read by `len`.
    head: Line,
}

/// Cells per 64-byte line.
const CELLS_PER_LINE: u64 = 8;

/// Positions in one pair of lanes (two lines), less one.
const LANES_MASK: u64 = 2 * CELLS_PER_LINE - 1;

/// `EndedQueue::index` for a queue whose mask is `mask`.
#[inline(always)]
fn index_of(mask: u64, position: u64) -> u64 {
    let i = position & mask;
    let k = i & LANES_MASK;
    i & !LANES_MASK | (k & 1) << 3 | k >> 1
}

impl EndedQueue {
    /// A queue for slot numbers of a slab of `capacity` slots: mapped, not
    /// written (see the module comment), so nothing of it is resident
    /// until it is used or `populate` asks for it.
    #[cfg(test)]
    pub fn new(capacity: u32) -> io::Result<EndedQueue> {
        let mut one = EndedQueue::many(1, capacity)?.into_vec();
        Ok(one.remove(0))
    }

    /// `count` (> 0) queues for a slab of `capacity` slots in one mapping,
    /// each from a page boundary: one mmap where a slab's 17 queues took
    /// 17, about 27 us of `spanguard_tracer_new` on a VM.
    pub fn many(count: usize, capacity: u32) -> io::Result<Box<[EndedQueue]>> {
        let len = (capacity.max(1) as usize)
            .next_power_of_two()
            .max(4 * CELLS_PER_LINE as usize);
        let map_len = len * std::mem::size_of::<Cell>();
        let stride = map_len.next_multiple_of(PAGE_BYTES);
        let count = count.max(1);
        let total = stride * count;
        // MAP_NORESERVE: the cells take memory as they are first used
        // (a large queue's many cells must not fail the tracer's start;
        // see `SpanSlab::new`).
        let start = super::mapping::map(
            total,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )?;
        debug_assert_eq!(start.as_ptr() as usize % LINE_BYTES, 0);
        Ok((0..count)
            .map(|i| EndedQueue {
                // SAFETY: i * stride + map_len <= total, inside the mapping.
                cells: unsafe { start.add(i * stride) }.cast(),
                map_len,
                owned_len: if i == 0 { total } else { 0 },
                mask: len as u64 - 1,
                populated: AtomicBool::new(false),
                tail: Line(AtomicU64::new(0)),
                head: Line(AtomicU64::new(0)),
            })
            .collect())
    }

    /// Faults the queue's pages in now, once, so that pushes do not take
    /// a page fault each time they reach a new page in the first lap: for
    /// the thread that will use it, on its first span (a cold path), as
    /// the slab populates slots before they are used. Later calls return
    /// at once.
    pub fn populate(&self) {
        if self.populated.load(Ordering::Relaxed) || self.populated.swap(true, Ordering::Relaxed) {
            return;
        }
        // The whole mapping made in `new`.
        super::mapping::populate(self.cells.as_ptr().cast(), self.map_len);
    }

    /// The sequence that makes a cell free for `position`: where its lap
    /// starts (modulo 2^32).
    #[inline(always)]
    fn lap(&self, position: u64) -> u32 {
        (position & !self.mask) as u32
    }

    /// Where the cell of `position` is: in each pair of lines (16
    /// positions), the even positions on the first line and the odd ones
    /// on the second. Below len: a permutation of 0..len (a multiple of 16).
    #[inline(always)]
    fn index(&self, position: u64) -> u64 {
        index_of(self.mask, position)
    }

    #[inline(always)]
    fn cell_at(&self, index: u64) -> &Cell {
        let index = (index & self.mask) as usize;
        // SAFETY: masked below the number of cells in the mapping.
        unsafe { &*self.cells.as_ptr().add(index) }
    }

    #[inline(always)]
    fn cell(&self, position: u64) -> &Cell {
        self.cell_at(self.index(position))
    }

    /// Adds `slot`. The caller guarantees no more than `capacity` slot
    /// numbers are in the queue at once (each slot at most once), so
    /// there is always a cell.
    #[inline]
    pub fn push(&self, slot: u32) {
        let position = self.tail.0.fetch_add(1, Ordering::Relaxed);
        let index = self.index(position);
        let cell = self.cell_at(index);
        // The consumer frees a cell as it takes it, before it gives the
        // slot back, so this wait is for a consumer still between the
        // two stores: in practice never.
        let lap = self.lap(position);
        while cell.sequence.load(Ordering::Acquire) != lap {
            std::hint::spin_loop();
        }
        cell.slot.store(slot, Ordering::Relaxed);
        // Release pairs with the consumer's Acquire: the slot number, and
        // what the slot's header said before the push.
        cell.sequence.store(lap.wrapping_add(1), Ordering::Release);
        // Its lane's line in the next pair: 16 cells on.
        prefetch(
            self.cell_at(index + 2 * CELLS_PER_LINE) as *const Cell as *const i8,
            true,
        );
    }

    /// The consumer's side: the oldest slot number, or None when the
    /// queue is empty. Only one thread may pop (the exporter; shutdown
    /// and tests after it has stopped).
    pub fn pop(&self) -> Option<u32> {
        let position = self.head.0.load(Ordering::Relaxed);
        let cell = self.cell(position);
        let lap = self.lap(position);
        if cell.sequence.load(Ordering::Acquire) != lap.wrapping_add(1)
            && !self.wait_filled(cell, lap, position)
        {
            return None;
        }
        let slot = cell.slot.load(Ordering::Relaxed);
        // Release pairs with the wait in `push`: the push one lap later
        // writes this cell only after this read.
        cell.sequence
            .store(lap.wrapping_add(self.mask as u32 + 1), Ordering::Release);
        self.head.0.store(position + 1, Ordering::Relaxed);
        Some(slot)
    }

    /// `pop` many times over, up to `max` slot numbers appended to `out`,
    /// with one store of the head for all of them: the head's line is the
    /// one `len` reads (flushes, stats, the recording path's check of the
    /// queue's length), and a store a span was a store a span to a line
    /// other cores read. Returns how many it took. Until that store the
    /// taken slots still count as queued (`len`), as they did between a
    /// pop's freeing of its cell and its store; their headers say ENDED
    /// all along (a crash dump finds them by their headers). Waits, as
    /// `pop` does, for a push that claimed a position and has not filled
    /// it yet. Only the one consumer may call it.
    ///
    /// Out of line: inlined into the exporter's loop, its values lived on
    /// the stack.
    #[inline(never)]
    pub fn pop_into(&self, out: &mut Vec<u32>, max: usize) -> usize {
        // Room for all of them first, each written through a pointer and
        // the length set once at the end; and the mask and cells read
        // once: `self` holds atomics, so the compiler read them again
        // after each cell's Release store, and `out.push` checked the
        // capacity and stored the length for each one, the length kept in
        // memory across that store.
        out.reserve(max);
        let filled = out.len();
        let dst = out.as_mut_ptr();
        let mask = self.mask;
        let cells = self.cells.as_ptr();
        let start = self.head.0.load(Ordering::Relaxed);
        let mut taken = 0;
        while taken < max {
            let position = start + taken as u64;
            // SAFETY: masked below the number of cells in the mapping.
            let cell = unsafe { &*cells.add((index_of(mask, position) & mask) as usize) };
            let lap = (position & !mask) as u32;
            if cell.sequence.load(Ordering::Acquire) != lap.wrapping_add(1)
                && !self.wait_filled(cell, lap, position)
            {
                break;
            }
            // SAFETY: `max` more were reserved above and `taken < max`;
            // the length is set past them only below.
            unsafe {
                dst.add(filled + taken)
                    .write(cell.slot.load(Ordering::Relaxed))
            };
            // Release pairs with the wait in `push`, as in `pop`.
            cell.sequence
                .store(lap.wrapping_add(mask as u32 + 1), Ordering::Release);
            taken += 1;
        }
        // SAFETY: the `taken` numbers past `filled` were written above.
        unsafe { out.set_len(filled + taken) };
        self.taken_to(start, start + taken as u64)
    }

    /// Waits for the cell of `position` to be filled by a push that
    /// claimed it (`pop`, `pop_into`); false when no push has (the queue
    /// is empty there). Out of line and cold: with its calls in
    /// `pop_into`'s loop, that loop kept its values on the stack.
    #[cold]
    #[inline(never)]
    fn wait_filled(&self, cell: &Cell, lap: u32, position: u64) -> bool {
        let mut spins = 0u32;
        while cell.sequence.load(Ordering::Acquire) != lap.wrapping_add(1) {
            // Not full: empty, or a push claimed it and has not filled it
            // yet (a few instructions away, unless that thread was
            // preempted between the two): wait for that one, as the
            // queue is first in, first out, and a flush waits for the
            // head to pass the tail it saw (`SpanSlab::ended_marks`).
            if self.tail.0.load(Ordering::Acquire) <= position {
                return false;
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        true
    }

    /// `pop_into`'s one store of the head; how many it took.
    #[inline(always)]
    fn taken_to(&self, start: u64, position: u64) -> usize {
        if position != start {
            self.head.0.store(position, Ordering::Relaxed);
        }
        (position - start) as usize
    }

    /// Positions claimed by pushes so far (a push may still be filling the
    /// last ones).
    pub fn tail(&self) -> u64 {
        self.tail.0.load(Ordering::Acquire)
    }

    /// Positions taken by the consumer so far.
    pub fn head(&self) -> u64 {
        self.head.0.load(Ordering::Acquire)
    }

    /// Whether nothing is pushed (or being pushed) and not yet taken.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slot numbers pushed (or being pushed) and not yet taken.
    pub fn len(&self) -> usize {
        // Head first: a pop between the two reads then makes the length
        // read larger than it was, never smaller (spans_ended counts on it);
        // the tail is never behind a head read before it.
        let head = self.head.0.load(Ordering::Relaxed);
        let tail = self.tail.0.load(Ordering::Relaxed);
        tail.saturating_sub(head) as usize
    }
}

// SAFETY: the cells are atomics in a mapping the queue owns; the protocol
// above is what makes pushes and pops on several threads correct.
unsafe impl Send for EndedQueue {}
// SAFETY: as above.
unsafe impl Sync for EndedQueue {}

impl Drop for EndedQueue {
    fn drop(&mut self) {
        if self.owned_len > 0 {
            // SAFETY: the mapping made in `many`, unmapped once, by the
            // queue it starts with. The others' cells lie in it too: a
            // slab drops them all together, and none is used once dropped.
            unsafe { libc::munmap(self.cells.as_ptr().cast(), self.owned_len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::free_stack::FreeStack;
    use std::sync::Arc;

    #[test]
    fn queues_of_one_mapping_start_on_pages_and_keep_to_their_own_cells() {
        // 100 slots: 128 cells, 1 KiB, each queue still on a page of its own.
        let queues = EndedQueue::many(5, 100).expect("map");
        for (i, q) in queues.iter().enumerate() {
            assert_eq!(q.cells.as_ptr() as usize % PAGE_BYTES, 0, "queue {i}");
            q.populate();
            // A full lap on each, then the next queue's.
            for slot in 0..100 {
                q.push(slot * 10 + i as u32);
            }
        }
        for (i, q) in queues.iter().enumerate() {
            assert_eq!(q.len(), 100, "queue {i}");
            let got: Vec<u32> = std::iter::from_fn(|| q.pop()).collect();
            let want: Vec<u32> = (0..100).map(|slot| slot * 10 + i as u32).collect();
            assert_eq!(got, want, "queue {i}");
        }
    }

    #[test]
    fn every_position_of_a_lap_has_a_cell_of_its_own_ready_for_it() {
        let q = EndedQueue::new(100).expect("map"); // 128 cells
        let mut seen = std::collections::HashSet::new();
        for position in 0..128u64 {
            let cell = q.cell(position);
            assert!(
                seen.insert(cell as *const Cell as usize),
                "position {position}"
            );
            assert_eq!(cell.sequence.load(Ordering::Relaxed), q.lap(position));
        }
        // Even and odd positions of a pair of lines on lines of their own,
        // lines of the cache.
        assert_eq!(q.cells.as_ptr() as usize % 64, 0);
        let line = |p: u64| (q.cell(p) as *const Cell as usize - q.cells.as_ptr() as usize) / 64;
        assert_eq!((line(0), line(2), line(14)), (0, 0, 0));
        assert_eq!((line(1), line(3), line(15)), (1, 1, 1));
        assert_eq!((line(16), line(17)), (2, 3));
    }

    #[test]
    fn first_in_first_out_over_many_laps() {
        let q = EndedQueue::new(5).expect("map"); // 32 cells
        assert_eq!((q.pop(), q.len()), (None, 0));
        let mut next_in = 0u32;
        let mut next_out = 0u32;
        for round in 0..1000u32 {
            // At most 5 queued, as the caller guarantees; 1000 rounds go
            // round the 32 cells many times.
            while next_in - next_out < (round % 5) + 1 {
                q.push(next_in);
                next_in += 1;
            }
            assert_eq!(q.len() as u32, next_in - next_out);
            for _ in 0..(round % 3) + 1 {
                match q.pop() {
                    Some(v) => {
                        assert_eq!(v, next_out);
                        next_out += 1;
                    }
                    None => assert_eq!(next_in, next_out),
                }
            }
        }
        while let Some(v) = q.pop() {
            assert_eq!(v, next_out);
            next_out += 1;
        }
        assert_eq!(next_out, next_in);
        assert!(q.is_empty());
    }

    #[test]
    fn producers_on_threads_lose_nothing_and_keep_their_order() {
        // Four producers push 0..N tagged with their number; the consumer
        // sees every value once, each producer's in order.
        const N: u32 = 200_000;
        const THREADS: u32 = 4;
        // Room for every value at once: the caller's guarantee.
        let q = Arc::new(EndedQueue::new(N * THREADS).expect("map"));
        let producers: Vec<_> = (0..THREADS)
            .map(|t| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..N {
                        q.push(t << 28 | i);
                    }
                })
            })
            .collect();
        let mut next = [0u32; THREADS as usize];
        let mut seen = 0;
        while seen < N * THREADS {
            if let Some(v) = q.pop() {
                let (t, i) = ((v >> 28) as usize, v & ((1 << 28) - 1));
                assert_eq!(i, next[t], "producer {t} out of order");
                next[t] += 1;
                seen += 1;
            }
        }
        for p in producers {
            p.join().expect("producer");
        }
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn a_small_queue_reused_by_threads_at_its_bound() {
        // Slots circulate as in the slab: a producer may push only a slot
        // the consumer gave back, so at most `capacity` are ever queued,
        // and the queue wraps thousands of times.
        const CAPACITY: u32 = 64;
        let q = Arc::new(EndedQueue::new(CAPACITY).expect("map"));
        let free = Arc::new(FreeStack::full(CAPACITY));
        let producers: Vec<_> = (0..3)
            .map(|_| {
                let (q, free) = (q.clone(), free.clone());
                std::thread::spawn(move || {
                    let mut pushed = 0;
                    while pushed < 100_000 {
                        if let Some(slot) = free.pop() {
                            q.push(slot);
                            pushed += 1;
                        } else {
                            // Nothing to push until the consumer gives a
                            // slot back: let it run. Four threads spinning
                            // on two loaded cores took 80 s in a debug build.
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut taken = 0;
        while taken < 300_000 {
            if let Some(slot) = q.pop() {
                assert!(slot < CAPACITY);
                free.push_all(&[slot]);
                taken += 1;
            } else {
                std::thread::yield_now();
            }
        }
        for p in producers {
            p.join().expect("producer");
        }
        assert_eq!(q.len(), 0);
    }
}
