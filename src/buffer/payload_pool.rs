//! The payload pool: fixed-size chunks for what does not fit a span's slot
//! (long prompts and completions, many attributes, events, links), shared
//! by all spans of a tracer.
//!
//! The pool is reserved when the tracer starts (`MAP_NORESERVE`, not
//! populated), so a tracer that records no large value pays for it in
//! address space only: a chunk costs memory from the first time a span
//! writes it. Chunks never used are handed out by a bump index; chunks
//! given back sit on a lock-free LIFO stack (`FreeStack`, the slab's), so
//! a returned chunk, still in memory and maybe in cache, is used again
//! before a new one is touched. Taking a chunk is a pop or a fetch-add:
//! no lock, allocation or system call (the page fault on a chunk's first
//! use is the only kernel entry).
//!
//! A chunk belongs to one span from `take` until the exporter, having
//! encoded the span, gives it back with the slot (`give_back`, one update
//! of the stack per batch). When the pool is used up, `take` says so and
//! the span cuts what does not fit; it never takes another span's chunk.
//! A setter of an open span under `FullPolicy::Wait` first waits for
//! chunks to come back (`Tracer`'s `wait_for_chunk`, by the rules of a
//! begin that waits for a slot): `returns` counts the give-backs it
//! watches, and after a wait in vain (`note_wait_in_vain`) values do not
//! wait again until chunks came back.
//!
//! In the flight recorder's file, chunks never used get their disk blocks
//! a mebibyte at a time as the bump index reaches them (`reserve_through`,
//! off the common path), never by the store that first writes a page: on
//! a full disk that store would be a SIGBUS, the end of the program. A
//! reservation that fails is a pool used up (values cut, counted) until
//! the exporter gives chunks back, when it is tried again.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::free_stack::FreeStack;
use crate::span::limits::CHUNK_BYTES;
use crate::span::record::{ChunkStore, OverflowSource, SpanRecord, StoreSource};

/// Where the pool's memory comes from.
pub enum PoolBacking {
    /// Private anonymous memory.
    Anonymous,
    /// A region of a file mapped MAP_SHARED (the flight recorder), from
    /// `offset` (a multiple of the page size); the file is sparse there
    /// until chunks are written.
    File(std::fs::File, u64),
}

pub struct PayloadPool {
    base: NonNull<u8>,
    capacity: u32,
    map_len: usize,
    free: FreeStack,
    /// Chunks never used start here; on a line of its own, as producers
    /// bump it while others pop the stack.
    bump: BumpLine,
    /// The file and the pool's offset in it (the flight recorder), whose
    /// blocks `reserve_through` reserves; None for memory.
    file: Option<(std::fs::File, u64)>,
    /// The last reservation failed (a full disk): not tried again, a
    /// system call per large value, until chunks come back.
    reserve_failed: AtomicBool,
    /// A `take` found no chunk since the exporter last looked
    /// (`take_ran_out`): values were cut, which it tells a person. Written
    /// only on that (cold) path, and only when not set already.
    ran_out: AtomicBool,
    /// Gives back that returned chunks, ever (once per exported batch):
    /// what a value waiting for a chunk watches (`Tracer`'s
    /// `wait_for_chunk`), and what ends the no-waiting after a wait in
    /// vain.
    returns: AtomicU64,
    /// One more than `returns` when a value last waited for a chunk in
    /// vain (0: never): until chunks come back, waiting cannot help.
    wait_in_vain_at: AtomicU64,
    /// Waits for a chunk that slept at least once, ever (tests count them).
    waits: AtomicU64,
}

/// Chunks reserved on disk at a time: a mebibyte.
const RESERVE_CHUNKS: u32 = (1 << 20) / CHUNK_BYTES as u32;

#[repr(align(128))]
#[derive(Default)]
struct BumpLine {
    next: AtomicU32,
    /// Chunks below this have their disk blocks (all of them, in memory):
    /// beside `next`, which is read with it.
    reserved: AtomicU32,
}

// SAFETY: chunks are handed out under the ownership protocol above; the
// stack and bump index are atomics.
unsafe impl Send for PayloadPool {}
// SAFETY: as above.
unsafe impl Sync for PayloadPool {}

impl PayloadPool {
    /// Reserves `capacity` chunks (0: a pool that is always used up).
    pub fn new(capacity: u32, backing: PoolBacking) -> io::Result<PayloadPool> {
        let map_len = capacity as usize * CHUNK_BYTES;
        let mut file = None;
        let base = if map_len == 0 {
            NonNull::dangling()
        } else {
            let (flags, fd, offset) = match &backing {
                PoolBacking::Anonymous => (
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                ),
                PoolBacking::File(f, offset) => {
                    if f.metadata()?.len() < offset + map_len as u64 {
                        f.set_len(offset + map_len as u64)?;
                    }
                    // Each mapping keeps its own reference to the file.
                    file = Some((f.try_clone()?, *offset));
                    (
                        libc::MAP_SHARED | libc::MAP_NORESERVE,
                        std::os::fd::AsRawFd::as_raw_fd(f),
                        *offset,
                    )
                }
            };
            // No MAP_POPULATE: pages come as chunks are first written.
            super::mapping::map(map_len, flags, fd, offset)?
        };
        let reserved = if file.is_some() { 0 } else { capacity };
        Ok(PayloadPool {
            base,
            capacity,
            map_len,
            free: FreeStack::empty(capacity),
            bump: BumpLine {
                next: AtomicU32::new(0),
                reserved: AtomicU32::new(reserved),
            },
            file,
            reserve_failed: AtomicBool::new(false),
            ran_out: AtomicBool::new(false),
            returns: AtomicU64::new(0),
            wait_in_vain_at: AtomicU64::new(0),
            waits: AtomicU64::new(0),
        })
    }

    /// A pool of `mib` MiB, anonymous.
    pub fn with_mib(mib: u32) -> io::Result<PayloadPool> {
        PayloadPool::new(chunks_for_mib(mib), PoolBacking::Anonymous)
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Takes a chunk: a returned one if any, else one never used. None
    /// when every chunk is taken (noted for `take_ran_out`). Lock-free.
    #[inline]
    pub fn take(&self) -> Option<u32> {
        let c = self.take_unnoted();
        if c.is_none() {
            self.note_ran_out();
        }
        c
    }

    /// `take` for a caller that may wait for a chunk: a None is not noted
    /// (no value was cut yet); it calls `note_ran_out` if it cuts.
    #[inline]
    pub fn take_unnoted(&self) -> Option<u32> {
        if let Some(c) = self.free.pop() {
            return Some(c);
        }
        let mut next = self.bump.next.load(Ordering::Relaxed);
        while next < self.capacity {
            // Acquire: the disk blocks of the chunks below it were reserved
            // before it was raised.
            if next >= self.bump.reserved.load(Ordering::Acquire) && !self.reserve_through(next) {
                return None;
            }
            // Relaxed: the chunk's memory is fresh (zero, never handed out);
            // the slot header's Release publishes what the span writes.
            match self.bump.next.compare_exchange_weak(
                next,
                next + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(next),
                Err(now) => next = now,
            }
        }
        None
    }

    /// A value was cut for want of a chunk: the exporter tells a person.
    #[cold]
    #[inline(never)]
    pub fn note_ran_out(&self) {
        // A load first: a pool that stays used up is not a line every
        // recording thread writes on every value.
        if !self.ran_out.load(Ordering::Relaxed) {
            self.ran_out.store(true, Ordering::Relaxed);
        }
    }

    /// Whether a `take` found the pool used up since the last call.
    pub fn take_ran_out(&self) -> bool {
        self.ran_out.load(Ordering::Relaxed) && self.ran_out.swap(false, Ordering::Relaxed)
    }

    /// Reserves the disk blocks of the file-backed chunks from the
    /// reserved frontier through the mebibyte that holds chunk `next`.
    /// False when that failed (the disk is full), or failed before and no
    /// chunk came back since. Two threads may reserve the same range: the
    /// second call finds the blocks there.
    #[cold]
    #[inline(never)]
    fn reserve_through(&self, next: u32) -> bool {
        let Some((file, offset)) = &self.file else {
            return false;
        };
        if self.reserve_failed.load(Ordering::Relaxed) {
            return false;
        }
        let from = self.bump.reserved.load(Ordering::Acquire);
        if next < from {
            return true;
        }
        let end = (next / RESERVE_CHUNKS + 1)
            .saturating_mul(RESERVE_CHUNKS)
            .min(self.capacity);
        let chunk = CHUNK_BYTES as u64;
        match super::files::reserve(
            file,
            offset + from as u64 * chunk,
            (end - from) as u64 * chunk,
        ) {
            Ok(()) => {
                self.bump.reserved.fetch_max(end, Ordering::Release);
                true
            }
            Err(_) => {
                self.reserve_failed.store(true, Ordering::Relaxed);
                false
            }
        }
    }

    /// Gives chunks back, with one update of the stack for all of them.
    pub fn give_back(&self, chunks: &[u32]) {
        debug_assert!(chunks.iter().all(|&c| c < self.capacity));
        if !chunks.is_empty() {
            self.free.push_all(chunks);
            // Release: a waiter that sees the count moved finds the chunks
            // on the stack (the push's own Release orders them before it).
            self.returns.fetch_add(1, Ordering::Release);
        }
        // Space may have come back too: the next chunk never used tries
        // its reservation again.
        if self.reserve_failed.load(Ordering::Relaxed) {
            self.reserve_failed.store(false, Ordering::Relaxed);
        }
    }

    /// Gives back that returned chunks, ever.
    pub fn returns(&self) -> u64 {
        self.returns.load(Ordering::Acquire)
    }

    /// Whether a value that finds the pool used up may wait: not after a
    /// wait in vain, until chunks came back since.
    pub fn may_wait(&self) -> bool {
        self.wait_in_vain_at.load(Ordering::Relaxed) != self.returns() + 1
    }

    /// A wait found nothing that would give chunks back (or ran out of
    /// time): the next values do not wait until chunks come back.
    pub fn note_wait_in_vain(&self, returns_then: u64) {
        self.wait_in_vain_at
            .store(returns_then + 1, Ordering::Relaxed);
    }

    /// A wait for a chunk slept (counted for tests).
    pub fn note_waited(&self) {
        self.waits.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits for a chunk that slept, ever.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// Chunks ever handed out for the first time (the pool's touched part).
    pub fn touched(&self) -> u32 {
        self.bump.next.load(Ordering::Relaxed).min(self.capacity)
    }

    /// The chunks' memory, for the flight recorder's reader and tests.
    pub fn base(&self) -> *const u8 {
        self.base.as_ptr()
    }
}

/// The chunks in a pool of `mib` MiB.
pub fn chunks_for_mib(mib: u32) -> u32 {
    ((mib as u64) << 20)
        .div_ceil(CHUNK_BYTES as u64)
        .min(u32::MAX as u64 - 1) as u32
}

impl ChunkStore for PayloadPool {
    #[inline]
    fn take_chunk(&self) -> Option<u32> {
        self.take()
    }

    #[inline]
    fn chunk_ptr(&self, index: u32) -> Option<NonNull<u8>> {
        if index >= self.capacity {
            return None;
        }
        // SAFETY: index < capacity, so the chunk lies inside the mapping.
        Some(unsafe { self.base.add(index as usize * CHUNK_BYTES) })
    }
}

impl OverflowSource for PayloadPool {
    fn chunk<'a>(&'a self, record: &SpanRecord, ordinal: u32) -> Option<&'a [u8]> {
        StoreSource(self).chunk(record, ordinal).map(|c| {
            // SAFETY: the slice points into this pool's mapping, which lives
            // as long as self; StoreSource only borrowed the reference.
            unsafe { std::slice::from_raw_parts(c.as_ptr(), c.len()) }
        })
    }
}

impl Drop for PayloadPool {
    fn drop(&mut self) {
        if self.map_len > 0 {
            // SAFETY: the mapping was made in `new` with this start and
            // length and is unmapped once.
            unsafe { libc::munmap(self.base.as_ptr().cast(), self.map_len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn chunks_come_from_the_bump_index_first_then_the_stack() {
        let p = PayloadPool::new(3, PoolBacking::Anonymous).expect("map");
        assert_eq!(p.touched(), 0);
        assert_eq!((p.take(), p.take()), (Some(0), Some(1)));
        assert_eq!(p.touched(), 2);
        p.give_back(&[0]);
        // The returned chunk before the never-used one.
        assert_eq!(p.take(), Some(0));
        assert_eq!(p.take(), Some(2));
        assert_eq!(p.touched(), 3);
        assert_eq!(p.take(), None, "exhausted");
        p.give_back(&[2, 1]);
        assert_eq!((p.take(), p.take(), p.take()), (Some(2), Some(1), None));
    }

    #[test]
    fn an_empty_pool_gives_nothing_and_maps_nothing() {
        let p = PayloadPool::new(0, PoolBacking::Anonymous).expect("no map");
        assert_eq!(p.take(), None);
        assert_eq!(p.chunk_ptr(0), None);
    }

    #[test]
    fn chunks_are_separate_and_writable_end_to_end() {
        let p = PayloadPool::new(4, PoolBacking::Anonymous).expect("map");
        let chunks: Vec<u32> = (0..4).map(|_| p.take().expect("chunk")).collect();
        for &c in &chunks {
            let ptr = p.chunk_ptr(c).expect("in range");
            // SAFETY: the chunk is ours; CHUNK_BYTES long.
            unsafe { std::ptr::write_bytes(ptr.as_ptr(), c as u8 + 1, CHUNK_BYTES) };
        }
        for &c in &chunks {
            let ptr = p.chunk_ptr(c).expect("in range");
            // SAFETY: as above.
            let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), CHUNK_BYTES) };
            assert!(
                bytes.iter().all(|&b| b == c as u8 + 1),
                "chunk {c} overlapped"
            );
        }
        assert_eq!(p.chunk_ptr(4), None);
    }

    #[test]
    fn threads_taking_and_returning_never_share_a_chunk() {
        let p = Arc::new(PayloadPool::new(96, PoolBacking::Anonymous).expect("map"));
        let owners: Arc<Vec<AtomicU32>> = Arc::new((0..96).map(|_| AtomicU32::new(0)).collect());
        let handles: Vec<_> = (1..=4u32)
            .map(|t| {
                let (p, owners) = (p.clone(), owners.clone());
                std::thread::spawn(move || {
                    let mut held = Vec::with_capacity(32);
                    for round in 0..5_000u32 {
                        // Up to 32 at a time: four threads can use up the pool.
                        while held.len() < (round % 32) as usize + 1 {
                            let Some(c) = p.take() else {
                                break;
                            };
                            assert_eq!(
                                owners[c as usize].swap(t, Ordering::SeqCst),
                                0,
                                "chunk taken twice"
                            );
                            held.push(c);
                        }
                        for &c in &held {
                            owners[c as usize].store(0, Ordering::SeqCst);
                        }
                        p.give_back(&held);
                        held.clear();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        let mut seen = HashSet::new();
        while let Some(c) = p.take() {
            assert!(seen.insert(c), "chunk {c} twice on the stack");
        }
        assert_eq!(seen.len(), 96, "none lost");
    }

    #[test]
    fn the_pool_is_reserved_not_resident() {
        // Counted by the kernel for the pool's own pages (mincore), so
        // other tests' memory cannot blur it.
        fn resident_pages(p: &PayloadPool) -> usize {
            let pages = p.map_len / 4096;
            let mut vec = vec![0u8; pages];
            // SAFETY: the range is the pool's mapping; vec has a byte per page.
            let rc = unsafe { libc::mincore(p.base.as_ptr().cast(), p.map_len, vec.as_mut_ptr()) };
            assert_eq!(rc, 0);
            vec.iter().filter(|&&b| b & 1 != 0).count()
        }
        let p = PayloadPool::with_mib(64).expect("map");
        assert_eq!(p.capacity(), 16_384);
        assert_eq!(resident_pages(&p), 0, "mapping the pool made it resident");
        let c = p.take().expect("chunk");
        let ptr = p.chunk_ptr(c).expect("in range");
        // SAFETY: the chunk is ours.
        unsafe { ptr.as_ptr().write(1) };
        assert_eq!(
            resident_pages(&p),
            1,
            "one chunk written, one page resident"
        );
    }
}
