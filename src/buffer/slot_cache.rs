//! Free slots, shared and per thread: the free stack, plus a small cache of
//! slots for each recording thread, refilled from the stack several at a
//! time with one compare-exchange.
//!
//! Why: the stack's head is one cache line that every begin wrote with a
//! compare-exchange. With two threads recording, perf put 38% of
//! `spanguard_span_begin` on that compare-exchange (the line moving
//! between the two cores, and retries), 47% with the exporter asleep. A
//! thread now takes slots from its own cache, a line only it writes, and
//! touches the stack's head once every `CACHE_SLOTS` spans.
//!
//! A thread finds its cache in a small table of the stack's, indexed by a
//! hash of its thread pointer and checked against the cache's owner
//! (`hinted_cache`), and falls back to its thread-local only when the
//! table does not name it: from a shared library, a thread-local is a call
//! to `__tls_get_addr`. A begin with its attributes took 0.92 of the time
//! (`make bench-compare`, 7 pairs, 7 of 7 faster), other rows unchanged.
//! An entry is taken over unless another live thread of that entry holds
//! it: one left naming a cache another thread claimed since sent two
//! threads to each other's cache lines on every span (two threads' spans
//! 114-122 ns with the exporter idle, against 75-80; `make bench-threads`).
//!
//! What a cache must not break:
//! - **Counting.** `spans_begun` was the stack's pop count. A slot in a
//!   cache is popped but not begun, so the count is now pops, less the
//!   slots sitting in caches (each cache's length, on its own line, read by
//!   whoever asks for statistics), less the slots caches gave back unused.
//! - **Slots stranded.** A slot in one thread's cache is not free for
//!   another: a burst on one thread may find the stack empty while others
//!   hold a few. So caches are few (at most one per `8 * CACHE_SLOTS`
//!   slots of the slab, at most `MAX_CACHES`: an eighth of the slab at
//!   most), and a slab too small for one has none. Threads past that take
//!   from the stack as before.
//! - **Exiting threads.** A thread's caches go back to their stacks when
//!   it exits (its thread-local destructor), if their tracer still lives.
//! - **Tracers freed.** A thread keeps a `Weak` to each stack it caches
//!   for, and a number that names that stack for good (`id`); it touches a
//!   cache only under a live handle to its stack. A cached slot is FREE in
//!   its header, so crash dumps and the flight recorder see nothing
//!   different.
//!
//! A cache also holds its thread's id generator (`ids::IdState`), seeded
//! by each claim: a begin has the cache in hand, where a thread-local
//! generator was a call to `__tls_get_addr` a span.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use super::bias::{self, Owner};
use super::free_stack::FreeStack;
use crate::span::ids::IdState;

/// Slots a refill takes at most (one is used at once, the rest cached).
/// A refill walks that many links of the stack (lines the exporter wrote
/// as it gave the slots back) and then compare-exchanges its head, which
/// other threads' refills write too: with two threads recording, 16 put
/// 15 times as many samples per span in `refill` as one thread had. 32
/// halves that; with the exporter idle, two threads' spans took 91-96 ns
/// against 105-107 with 16 (64: 87-92), `make bench-threads`. More would
/// mean fewer caches for as many slots sitting in them.
pub(crate) const CACHE_SLOTS: usize = 32;

/// Caches a stack hands out at most.
const MAX_CACHES: usize = 64;

/// Caches a thread keeps at once, for as many tracers: a thread that
/// alternates between two tracers keeps both.
const CACHES_PER_THREAD: usize = 2;

/// One thread's cache, on lines of its own: the first holds what changes
/// only as threads claim and give it back (`claimed`, `owner.thread`),
/// read by other threads; the rest what its thread writes per span.
#[repr(C, align(128))]
struct Cache {
    /// Whether a thread has claimed it.
    claimed: AtomicU32,
    /// The claiming thread, and what it writes under a span's bias
    /// (`bias`): slots taken from this cache are biased to it.
    owner: Owner,
    /// Slots in `slots[..len]`; the next one taken is `slots[len - 1]`.
    /// Written only by the thread that claimed the cache.
    len: AtomicU32,
    /// The claiming thread's id generator, seeded by each claim: next to
    /// `len`, on the line every take writes.
    ids: IdState,
    slots: [AtomicU32; CACHE_SLOTS],
}

impl Cache {
    fn new() -> Cache {
        Cache {
            claimed: AtomicU32::new(0),
            len: AtomicU32::new(0),
            owner: Owner::default(),
            ids: IdState::unseeded(),
            slots: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

/// Entries of the hint table (`FreeSlots::hints`).
const HINTS: usize = 256;

/// A thread's entry in the hint table: thread pointers are the addresses
/// of thread control blocks, at least a page apart, and the high bits of a
/// Fibonacci product spread them.
#[inline(always)]
fn hint_index(thread: usize) -> usize {
    ((thread as u64 >> 12).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize % HINTS
}

/// The hint table, on lines of its own: every begin reads it, so it must
/// share no line with memory another thread writes per span.
#[repr(align(128))]
struct Hints([std::sync::atomic::AtomicU8; HINTS]);

/// The free slots of one slab.
pub struct FreeSlots {
    pub stack: FreeStack,
    caches: Box<[Cache]>,
    /// Cache number + 1 by thread pointer (`hint_index`), 0 for none: a
    /// recording thread finds its cache here. Read by every begin, written
    /// when a thread first records (or its entry's cache was given back).
    hints: Box<Hints>,
    /// Slots caches gave back unused: pops that began no span.
    returned: AtomicU64,
    /// Names this stack for the life of the process (an address may be
    /// reused by the next tracer's).
    id: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl FreeSlots {
    /// The free slots of a slab of `capacity` slots, all free.
    pub fn full(capacity: u32) -> Arc<FreeSlots> {
        let caches = (capacity as usize / (8 * CACHE_SLOTS)).min(MAX_CACHES);
        Arc::new(FreeSlots {
            stack: FreeStack::full(capacity),
            caches: (0..caches).map(|_| Cache::new()).collect(),
            hints: Box::new(Hints(std::array::from_fn(|_| Default::default()))),
            returned: AtomicU64::new(0),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Slots taken for spans: popped, less what sits in caches and what
    /// caches gave back. Exact when no thread is taking slots. The caches
    /// are read first: a refill between the reads (pops first, then the
    /// cache's length) then makes the count larger, never smaller, so that
    /// it stays at least the ended count read before it.
    pub fn taken(&self) -> u64 {
        let cached: u64 = self
            .caches
            .iter()
            .map(|c| c.len.load(Ordering::Relaxed) as u64)
            .sum();
        let returned = self.returned.load(Ordering::Relaxed);
        self.stack
            .pops()
            .saturating_sub(returned)
            .saturating_sub(cached)
    }

    /// Gives the slots of `cache` back to the stack and frees the cache
    /// for another thread (the claiming thread, when it leaves it).
    fn release(&self, cache: &Cache) {
        let len = cache.len.load(Ordering::Relaxed) as usize;
        let mut slots = [0u32; CACHE_SLOTS];
        for (out, slot) in slots.iter_mut().zip(&cache.slots[..len]) {
            *out = slot.load(Ordering::Relaxed);
        }
        // Next taken first: on top of the stack, as it was in the cache.
        slots[..len].reverse();
        // Emptied first: a count taken meanwhile is then too large by
        // these slots, not too small.
        cache.len.store(0, Ordering::Relaxed);
        self.stack.push_all(&slots[..len]);
        self.returned.fetch_add(len as u64, Ordering::Relaxed);
        // No thread owns the spans biased to it until the next claim: a
        // thread whose pointer is this one's (once it has exited) must not.
        cache.owner.thread.store(0, Ordering::Relaxed);
        cache.claimed.store(0, Ordering::Release);
    }

    /// Gives back a slot taken for a span that was then not begun (a begin
    /// that met a shutdown): free again, and not counted as begun.
    pub fn give_back_unbegun(&self, index: u32) {
        self.stack.push_all(&[index]);
        self.returned.fetch_add(1, Ordering::Relaxed);
    }

    /// How many caches threads can claim (0 for a small slab).
    pub fn cache_count(&self) -> usize {
        self.caches.len()
    }

    /// The owner of the spans biased to cache `number` (1-based, as in
    /// `Taken::cache`); None for 0 or a number past the caches.
    #[inline(always)]
    pub fn owner(&self, number: u8) -> Option<&Owner> {
        self.numbered(number).map(|c| &c.owner)
    }

    /// Cache `number` (1-based, 0 for none), as spans and the hint table
    /// name caches.
    #[inline(always)]
    fn numbered(&self, number: u8) -> Option<&Cache> {
        self.caches.get((number as usize).wrapping_sub(1))
    }

    /// The cache this thread claimed, if the hint table names it: one
    /// entry read and the cache's owner compared with this thread, in
    /// place of the thread-local lookup (a call to `__tls_get_addr` from a
    /// shared library).
    #[inline(always)]
    fn hinted_cache(&self, thread: usize) -> Option<usize> {
        let number = self.hints.0[hint_index(thread)].load(Ordering::Relaxed);
        let cache = self.numbered(number)?;
        // Only the claiming thread stores its pointer there, and clears it
        // before giving the cache back: a match is this thread's claim.
        (thread != 0 && cache.owner.thread.load(Ordering::Relaxed) == thread)
            .then_some(number as usize - 1)
    }

    /// Names cache `i` for `thread` in the hint table, unless the entry
    /// names the cache of another live thread whose entry it is too (two
    /// threads sharing an entry would otherwise take it from each other on
    /// every span: the second keeps the thread-local lookup). An entry
    /// left by a thread that exited, or naming a cache claimed since by a
    /// thread of another entry, is taken over: kept, it would send this
    /// thread to its thread-local, and to another cache's line, every span.
    fn hint(&self, thread: usize, i: usize) {
        let index = hint_index(thread);
        let entry = &self.hints.0[index];
        let current = entry.load(Ordering::Relaxed);
        let shared = self
            .numbered(current)
            .map(|c| c.owner.thread.load(Ordering::Relaxed))
            .is_some_and(|owner| owner != 0 && owner != thread && hint_index(owner) == index);
        if !shared && thread != 0 {
            entry.store(i as u8 + 1, Ordering::Relaxed);
        }
    }

    /// Claims a free cache for this thread, which then owns the spans
    /// biased to it.
    fn claim(&self) -> Option<usize> {
        let i = self.caches.iter().position(|c| {
            c.claimed.load(Ordering::Relaxed) == 0
                && c.claimed
                    .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
        })?;
        // Before the thread is named: no take from it draws ids unseeded.
        self.caches[i].ids.reseed();
        self.caches[i]
            .owner
            .thread
            .store(bias::this_thread(), Ordering::Relaxed);
        Some(i)
    }
}

/// What a thread holds in one stack: which cache (None when every cache
/// was claimed: the thread then takes from the stack).
struct Held {
    id: Cell<u64>,
    cache: Cell<Option<usize>>,
    stack: RefCell<Weak<FreeSlots>>,
}

impl Held {
    const fn none() -> Held {
        Held {
            id: Cell::new(0),
            cache: Cell::new(None),
            stack: RefCell::new(Weak::new()),
        }
    }

    /// Gives the cache back, if its stack still lives.
    fn release(&self) {
        let stack = self.stack.replace(Weak::new());
        if let (Some(stack), Some(i)) = (stack.upgrade(), self.cache.get()) {
            stack.release(&stack.caches[i]);
        }
        self.id.set(0);
        self.cache.set(None);
    }
}

struct ThreadCaches([Held; CACHES_PER_THREAD]);

impl Drop for ThreadCaches {
    fn drop(&mut self) {
        for held in &self.0 {
            held.release();
        }
    }
}

thread_local! {
    static THREAD: ThreadCaches = const { ThreadCaches([const { Held::none() }; CACHES_PER_THREAD]) };
}

/// What a take asks to prefetch the slots its thread will most likely take
/// soon (the slab's lines of them): the next two, or from a cache that was
/// not just refilled only the one after next (the next one was the one
/// after next of the take before, and is on its way already). Called by
/// each path of `take` itself, not given back in `Taken`: the three paths'
/// answers met on the stack, stored by one and loaded by the caller.
pub trait Prefetch {
    fn slot_soon(&self, index: u32);
}

/// Nothing to prefetch (tests).
impl Prefetch for () {
    fn slot_soon(&self, _: u32) {}
}

/// A slot taken for a span (`take`).
pub struct Taken<'a> {
    pub index: u32,
    /// The cache it came from, plus one; 0 when this thread has none. The
    /// slab hands the span, once ended, to the queue of that number.
    pub cache: u8,
    /// That cache's id generator, this thread's (None: no cache).
    pub ids: Option<&'a IdState>,
}

/// Takes a free slot of `slots` for a span: from this thread's cache,
/// refilled from the stack when empty; None when the stack is empty too.
///
/// `thread_setup` is what a thread must have done before it records into
/// `slots` (the crash handler's alternate stack): run on every take that
/// does not come through the hint table, never on one that does. A thread
/// is named there only by its own take through its thread-local
/// (`take_by_thread_local`, which runs it first), and only for the cache
/// it claimed from `slots` and still holds (`hinted_cache` compares the
/// owner): so a thread's first take from a stack runs it, and a thread
/// without a cache, or exiting, runs it on each take. A forked child
/// records into a new tracer's stack (its hint table empty) and inherits
/// its thread's alternate stack with the thread-local that says so.
/// Always inline: with the closure, `#[inline]` left it a call of its own
/// (4 instructions a span more).
#[inline(always)]
pub fn take<'a>(
    slots: &'a Arc<FreeSlots>,
    thread_setup: impl FnOnce(),
    prefetch: &impl Prefetch,
) -> Option<Taken<'a>> {
    let thread = bias::this_thread();
    if let Some(i) = slots.hinted_cache(thread) {
        return take_from(slots, Some(i), prefetch);
    }
    take_by_thread_local(slots, thread, thread_setup, prefetch)
}

/// `take` for a thread the hint table did not name: its cache through its
/// thread-local, which it then names in the table (`hint` says when not).
#[cold]
#[inline(never)]
fn take_by_thread_local<'a>(
    slots: &'a Arc<FreeSlots>,
    thread: usize,
    thread_setup: impl FnOnce(),
    prefetch: &impl Prefetch,
) -> Option<Taken<'a>> {
    thread_setup();
    THREAD
        .try_with(|t| {
            let held = &t.0[0];
            if held.id.get() != slots.id {
                return take_switching(slots, t, prefetch);
            }
            if let Some(i) = held.cache.get() {
                slots.hint(thread, i);
            }
            take_from(slots, held.cache.get(), prefetch)
        })
        // This thread is exiting (a span begun by another thread-local's
        // destructor): straight from the stack.
        .unwrap_or_else(|_| take_from(slots, None, prefetch))
}

#[inline(always)]
fn take_from<'a>(
    slots: &'a FreeSlots,
    cache: Option<usize>,
    prefetch: &impl Prefetch,
) -> Option<Taken<'a>> {
    let Some(i) = cache else {
        let index = slots.stack.pop()?;
        if let Some(next) = slots.stack.peek() {
            prefetch.slot_soon(next);
            if let Some(below) = slots.stack.below(next) {
                prefetch.slot_soon(below);
            }
        }
        return Some(Taken {
            index,
            cache: 0,
            ids: None,
        });
    };
    // Below MAX_CACHES (64), so the number fits.
    let number = i as u8 + 1;
    let cache = &slots.caches[i];
    let mut len = cache.len.load(Ordering::Relaxed) as usize;
    if len == 0 {
        // Refilled in place, then taken from as any other time: a refill
        // that answered the take itself met this path's answer on the
        // stack.
        len = refill(slots, cache, prefetch);
        if len == 0 {
            return None;
        }
    }
    let index = cache.slots[len - 1].load(Ordering::Relaxed);
    cache.len.store(len as u32 - 1, Ordering::Relaxed);
    // Only the one after next: each take prefetching both fetched every
    // slot twice, at 20-odd instructions a slot (1,230 -> 1,207 a span).
    // Past the cache's last, the stack's top, which the refill will take.
    if len > 2 {
        prefetch.slot_soon(cache.slots[len - 3].load(Ordering::Relaxed));
    } else if let Some(top) = slots.stack.peek() {
        slots.stack.prefetch_chain(top);
        prefetch.slot_soon(top);
    }
    Some(Taken {
        index,
        cache: number,
        ids: Some(&cache.ids),
    })
}

#[cold]
#[inline(never)]
fn refill(slots: &FreeSlots, cache: &Cache, prefetch: &impl Prefetch) -> usize {
    // Straight into the cache (empty: nobody reads its slots), the
    // stack's top last, where it is taken next: popped into an array and
    // copied over, a refill cost 27 instructions a slot.
    let n = slots.stack.pop_many_from_end(&cache.slots);
    if n < CACHE_SLOTS {
        move_to_front(cache, n);
    }
    cache.len.store(n as u32, Ordering::Relaxed);
    // The take prefetches the one after next; the next one here.
    if n > 1 {
        prefetch.slot_soon(cache.slots[n - 2].load(Ordering::Relaxed));
    }
    n
}

/// A refill that found fewer than `CACHE_SLOTS` free (the slab nearly
/// full): its `n` slots, at the end of the array, moved to its front in
/// the same order.
#[cold]
#[inline(never)]
fn move_to_front(cache: &Cache, n: usize) {
    for k in 0..n {
        let slot = cache.slots[CACHE_SLOTS - n + k].load(Ordering::Relaxed);
        cache.slots[k].store(slot, Ordering::Relaxed);
    }
}

/// The first take from `slots` on this thread, or after another tracer's:
/// its cache moves to the front, claimed now if new (the least recent
/// one given back to make room).
#[cold]
#[inline(never)]
fn take_switching<'a>(
    slots: &'a Arc<FreeSlots>,
    t: &ThreadCaches,
    prefetch: &impl Prefetch,
) -> Option<Taken<'a>> {
    let [front, back] = &t.0;
    if back.id.get() != slots.id {
        back.release();
        back.id.set(slots.id);
        back.cache.set(slots.claim());
        *back.stack.borrow_mut() = Arc::downgrade(slots);
    }
    // Swap the two: the cache just used is looked at first.
    front.id.swap(&back.id);
    front.cache.swap(&back.cache);
    front.stack.swap(&back.stack);
    take_from(slots, front.cache.get(), prefetch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::ids::IdSource;
    use std::collections::HashSet;

    #[test]
    fn a_thread_takes_every_slot_once_and_counts_only_what_it_took() {
        let slots = FreeSlots::full(1024); // 4 caches
        let mut seen = HashSet::new();
        for n in 1..=100u64 {
            let i = take(&slots, || {}, &()).expect("slot").index;
            assert!(seen.insert(i), "slot {i} twice");
            assert_eq!(slots.taken(), n);
        }
        // Give them back as the exporter does; the cache's are still its.
        let back: Vec<u32> = seen.iter().copied().collect();
        slots.stack.push_all(&back);
        assert_eq!(slots.taken(), 100);
        let mut all = HashSet::new();
        while let Some(Taken { index: i, .. }) = take(&slots, || {}, &()) {
            assert!(all.insert(i), "slot {i} twice");
        }
        assert_eq!(all.len(), 1024);
        assert_eq!(slots.taken(), 1124);
    }

    #[test]
    fn a_short_refill_gives_its_slots_in_the_stacks_order() {
        // 300 slots, one cache: nine refills of CACHE_SLOTS, then one of
        // 12, which the stack holds fewer of than the cache has room for.
        // Every take still gives the stack's next slot (0 on top, then 1,
        // ...), the short refill's included, each once.
        let slots = FreeSlots::full(300);
        let mut order = Vec::new();
        while let Some(Taken { index, .. }) = take(&slots, || {}, &()) {
            order.push(index);
        }
        assert_eq!(order, (0..300).collect::<Vec<u32>>());
        assert_eq!(slots.taken(), 300);
        // Given back, a short refill again, then a full one.
        slots.stack.push_all(&[7, 3, 250]);
        let again: Vec<u32> =
            std::iter::from_fn(|| take(&slots, || {}, &()).map(|t| t.index)).collect();
        assert_eq!(again, [7, 3, 250]);
    }

    /// Records the slots a take asks to prefetch.
    #[derive(Default)]
    struct Asked(RefCell<HashSet<u32>>);

    impl Prefetch for Asked {
        fn slot_soon(&self, index: u32) {
            self.0.borrow_mut().insert(index);
        }
    }

    #[test]
    fn every_slot_taken_was_asked_for_by_an_earlier_take() {
        // From a cache, across refills (1024 slots, 4 caches), and from the
        // stack (64 slots, no cache): each take after a thread's first
        // asks for the slots it takes next, so none arrives unprefetched.
        for capacity in [1024, 64] {
            let slots = FreeSlots::full(capacity);
            let asked = Asked::default();
            let first = take(&slots, || {}, &asked).expect("slot").index;
            assert!(!asked.0.borrow().contains(&first));
            for _ in 1..capacity.min(4 * CACHE_SLOTS as u32) {
                let i = take(&slots, || {}, &asked).expect("slot").index;
                assert!(asked.0.borrow().contains(&i), "slot {i} not asked for");
            }
        }
    }

    #[test]
    fn thread_setup_runs_on_a_threads_first_take_and_off_the_fast_path_only() {
        let runs = Cell::new(0);
        let setup = || runs.set(runs.get() + 1);
        let slots = FreeSlots::full(1024);
        take(&slots, setup, &()).expect("slot"); // claims a cache
        take(&slots, setup, &()).expect("slot"); // names it in the table
        assert_eq!(runs.get(), 2);
        // From the cache the table names, refills included: never.
        for _ in 0..3 * CACHE_SLOTS {
            take(&slots, setup, &()).expect("slot");
        }
        assert_eq!(runs.get(), 2);
        // Another stack's first take on this thread: again.
        let other = FreeSlots::full(1024);
        take(&other, setup, &()).expect("slot");
        assert_eq!(runs.get(), 3);
        // A thread without a cache: on every take.
        let small = FreeSlots::full(64);
        for n in 1..=10 {
            take(&small, setup, &()).expect("slot");
            assert_eq!(runs.get(), 3 + n);
        }
    }

    /// A made-up thread pointer with the same hint entry as `thread`.
    fn sharing_an_entry_with(thread: usize) -> usize {
        (1..)
            .map(|k: usize| thread.wrapping_add(k << 12))
            .find(|&t| hint_index(t) == hint_index(thread))
            .expect("one")
    }

    #[test]
    fn a_thread_finds_its_cache_by_the_hint_table_and_no_other_thread_does() {
        let slots = FreeSlots::full(1024);
        let here = bias::this_thread();
        assert_eq!(slots.hinted_cache(here), None);
        take(&slots, || {}, &()).expect("slot"); // claims a cache
        take(&slots, || {}, &()).expect("slot"); // names it in the table
        let mine = slots.hinted_cache(here).expect("named");
        assert_eq!(
            slots.caches[mine].owner.thread.load(Ordering::Relaxed),
            here
        );
        // Another thread on the same entry is not given this cache, and
        // does not take the entry from a live owner.
        let other = sharing_an_entry_with(here);
        assert_eq!(slots.hinted_cache(other), None);
        slots.hint(other, (mine + 1) % slots.cache_count());
        assert_eq!(slots.hinted_cache(here), Some(mine));
        // Taking through the table is taking from this thread's cache.
        let len = slots.caches[mine].len.load(Ordering::Relaxed);
        take(&slots, || {}, &()).expect("slot");
        assert_eq!(slots.caches[mine].len.load(Ordering::Relaxed), len - 1);
    }

    #[test]
    fn an_exited_threads_entry_names_no_cache_and_goes_to_the_next_thread() {
        let slots = FreeSlots::full(1024);
        let s = Arc::clone(&slots);
        let gone = std::thread::spawn(move || {
            take(&s, || {}, &()).expect("slot");
            take(&s, || {}, &()).expect("slot");
            let here = bias::this_thread();
            assert!(s.hinted_cache(here).is_some());
            here
        })
        .join()
        .expect("thread");
        // Its cache was given back: a thread that gets its pointer (or one
        // that shares its entry) is not given that cache.
        assert_eq!(slots.hinted_cache(gone), None);
        let entry = hint_index(gone);
        assert_ne!(slots.hints.0[entry].load(Ordering::Relaxed), 0);
        // This thread's cache, named for a pointer on that entry.
        take(&slots, || {}, &()).expect("slot");
        let here = bias::this_thread();
        take(&slots, || {}, &()).expect("slot");
        let mine = slots.hinted_cache(here).expect("named");
        let next = sharing_an_entry_with(gone);
        slots.hint(next, mine);
        assert_eq!(
            slots.hints.0[entry].load(Ordering::Relaxed) as usize,
            mine + 1
        );
    }

    #[test]
    fn an_entry_naming_a_cache_now_claimed_by_a_thread_of_another_entry_is_taken_over() {
        let slots = FreeSlots::full(1024);
        let s = Arc::clone(&slots);
        // A thread names its cache (0) in its entry, and exits.
        let gone = std::thread::spawn(move || {
            take(&s, || {}, &()).expect("slot");
            take(&s, || {}, &()).expect("slot");
            bias::this_thread()
        })
        .join()
        .expect("thread");
        let entry = hint_index(gone);
        assert_eq!(slots.hints.0[entry].load(Ordering::Relaxed), 1);
        // This thread claims that cache, and names it in its own entry.
        take(&slots, || {}, &()).expect("slot");
        take(&slots, || {}, &()).expect("slot");
        let here = bias::this_thread();
        assert_eq!(slots.hinted_cache(here), Some(0));
        if hint_index(here) == entry {
            return; // the two share an entry: the case of the test above
        }
        // A thread of the old entry is not kept from it by this thread's
        // claim: else it would read this cache's line on every span.
        let next = sharing_an_entry_with(gone);
        slots.hint(next, 1);
        assert_eq!(slots.hints.0[entry].load(Ordering::Relaxed), 2);
    }

    #[test]
    fn an_exiting_thread_gives_its_cache_back() {
        let slots = FreeSlots::full(1024);
        let s = Arc::clone(&slots);
        std::thread::spawn(move || {
            take(&s, || {}, &()).expect("slot");
            // Its cache holds the rest of the refill.
            assert_eq!(
                s.caches
                    .iter()
                    .map(|c| c.len.load(Ordering::Relaxed))
                    .sum::<u32>(),
                CACHE_SLOTS as u32 - 1
            );
        })
        .join()
        .expect("thread");
        assert_eq!(slots.taken(), 1);
        assert!(
            slots
                .caches
                .iter()
                .all(|c| c.claimed.load(Ordering::Relaxed) == 0)
        );
        let mut n = 0;
        while slots.stack.pop().is_some() {
            n += 1;
        }
        assert_eq!(n, 1023, "every slot but the one taken is free again");
    }

    #[test]
    fn a_small_slab_has_no_caches_and_a_freed_one_is_left_alone() {
        let small = FreeSlots::full(64);
        assert!(small.caches.is_empty());
        for _ in 0..64 {
            take(&small, || {}, &()).expect("slot");
        }
        assert!(take(&small, || {}, &()).is_none());
        assert_eq!(small.taken(), 64);
        // A tracer freed while this thread caches for it: the next take
        // from another stack must not touch the freed one.
        let first = FreeSlots::full(1024);
        take(&first, || {}, &()).expect("slot");
        drop(first);
        let second = FreeSlots::full(1024);
        let third = FreeSlots::full(1024);
        for _ in 0..3 {
            take(&second, || {}, &()).expect("slot");
            take(&third, || {}, &()).expect("slot");
        }
        assert_eq!((second.taken(), third.taken()), (3, 3));
    }

    #[test]
    fn no_slot_is_held_twice_while_threads_take_and_a_consumer_gives_back() {
        use std::sync::atomic::AtomicBool;
        use std::sync::mpsc;
        // 1024 slots, 4 caches: three recording threads (each with a cache)
        // and a fourth that returns slots in batches, as the exporter does.
        let slots = FreeSlots::full(1024);
        let held: Arc<Vec<AtomicBool>> =
            Arc::new((0..1024).map(|_| AtomicBool::new(false)).collect());
        let (tx, rx) = mpsc::channel::<u32>();
        const PER_THREAD: u64 = 20_000;
        let recorders: Vec<_> = (0..3)
            .map(|_| {
                let (s, held, tx) = (Arc::clone(&slots), Arc::clone(&held), tx.clone());
                std::thread::spawn(move || {
                    let mut done = 0;
                    while done < PER_THREAD {
                        let Some(Taken { index: i, .. }) = take(&s, || {}, &()) else {
                            std::thread::yield_now();
                            continue;
                        };
                        assert!(
                            !held[i as usize].swap(true, Ordering::Relaxed),
                            "slot {i} taken twice"
                        );
                        tx.send(i).expect("send");
                        done += 1;
                    }
                })
            })
            .collect();
        drop(tx);
        let consumer = {
            let (s, held) = (Arc::clone(&slots), Arc::clone(&held));
            std::thread::spawn(move || {
                let mut batch = Vec::new();
                let flush = |batch: &mut Vec<u32>| {
                    for &i in batch.iter() {
                        held[i as usize].store(false, Ordering::Relaxed);
                    }
                    s.stack.push_all(batch);
                    batch.clear();
                };
                for i in rx {
                    batch.push(i);
                    if batch.len() == 32 {
                        flush(&mut batch);
                    }
                }
                flush(&mut batch);
            })
        };
        for r in recorders {
            r.join().expect("recorder");
        }
        consumer.join().expect("consumer");
        // Every recorder exited and gave its cache back.
        assert_eq!(slots.taken(), 3 * PER_THREAD);
        let mut free = 0;
        while slots.stack.pop().is_some() {
            free += 1;
        }
        assert_eq!(free, 1024);
    }

    #[test]
    fn threads_on_caches_of_one_stack_draw_no_common_id() {
        // Two threads, each on its own cache, drawing as begins do (from
        // the cache's generator), while a third gives the slots back: a
        // common id would mean two caches on one sequence (a claim that
        // did not seed its cache's generator). 2 x 20,000 root spans' ids.
        let slots = FreeSlots::full(1024);
        // Both hold their caches at once: one that exited first would give
        // its cache to the other.
        let both = Arc::new(std::sync::Barrier::new(2));
        let draw = |s: Arc<FreeSlots>| {
            let both = Arc::clone(&both);
            move || {
                let mut ids = Vec::new();
                let mut cache = None;
                while ids.len() < 20_000 {
                    if ids.len() == 1 {
                        both.wait();
                    }
                    let Some(t) = take(&s, || {}, &()) else {
                        std::thread::yield_now();
                        continue;
                    };
                    assert!(t.cache != 0, "a thread with a cache");
                    cache.get_or_insert(t.cache);
                    let (trace, span) = IdSource(t.ids).root_ids();
                    ids.push((u128::from_be_bytes(trace), u64::from_be_bytes(span)));
                    s.stack.push_all(&[t.index]);
                }
                (cache, ids)
            }
        };
        let a = std::thread::spawn(draw(Arc::clone(&slots)));
        let b = std::thread::spawn(draw(Arc::clone(&slots)));
        let (ca, a) = a.join().expect("thread");
        let (cb, b) = b.join().expect("thread");
        assert_ne!(ca, cb, "one cache each");
        let traces: HashSet<u128> = a.iter().chain(&b).map(|i| i.0).collect();
        let spans: HashSet<u64> = a.iter().chain(&b).map(|i| i.1).collect();
        assert_eq!(traces.len(), a.len() + b.len());
        assert_eq!(spans.len(), a.len() + b.len());
        assert!(!traces.contains(&0) && !spans.contains(&0));
    }

    #[test]
    fn threads_past_the_last_cache_take_from_the_stack() {
        let slots = FreeSlots::full(512); // 2 caches
        assert_eq!(slots.caches.len(), 2);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let s = Arc::clone(&slots);
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for _ in 0..20 {
                        mine.push(take(&s, || {}, &()).expect("slot").index);
                    }
                    // Hold on until every thread took its share.
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    mine
                })
            })
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            for i in h.join().expect("thread") {
                assert!(all.insert(i), "slot {i} twice");
            }
        }
        assert_eq!(all.len(), 80);
        assert_eq!(slots.taken(), 80);
    }
}
