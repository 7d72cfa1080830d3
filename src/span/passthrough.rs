//! Contexts a disabled tracer (`OTEL_SDK_DISABLED=true`) passes on. Such a
//! tracer records nothing, but OpenTelemetry's API still propagates the
//! incoming context: a span begun under a remote parent is a non-recording
//! span carrying that parent's context, so the traceparent and tracestate
//! that come in go out unchanged to the next service.
//!
//! The contexts live in one process-wide ring, made on first use (a
//! disabled tracer that never sees a remote parent costs nothing). A handle
//! names an entry and the entry's generation; when the ring comes round
//! and reuses an entry, older handles to it are stale (they then propagate
//! nothing, as a root span of a disabled tracer does). Writers and readers
//! take no lock: each entry is a seqlock.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering, fence};

use super::tracestate::Tracestate;

/// Contexts kept at once; a handle stays good until this many later remote
/// begins have come round.
pub(crate) const RING_ENTRIES: u32 = 1024;

/// What a disabled tracer propagates for one span: its parent's context.
#[derive(Clone, Copy, Debug)]
pub struct PassThroughContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub trace_flags: u8,
    pub tracestate: Tracestate,
}

impl PassThroughContext {
    /// No context: nothing to propagate.
    pub fn none() -> PassThroughContext {
        PassThroughContext {
            trace_id: [0; 16],
            span_id: [0; 8],
            trace_flags: 0,
            tracestate: Tracestate::default(),
        }
    }
}

struct Entry {
    /// `generation << 1 | writing`.
    seq: AtomicU64,
    context: UnsafeCell<PassThroughContext>,
}

// SAFETY: `context` is written only by the writer that set the writing bit
// with a compare-exchange, and read as a copy checked against `seq`.
unsafe impl Sync for Entry {}

struct Ring {
    entries: Box<[Entry]>,
    next: AtomicU32,
}

/// The ring, once made: never freed. Not a `OnceLock`: a child forked
/// while another thread was making it kept it "being made" for good, and
/// its first span under a remote parent waited for it forever. Here every
/// thread that finds none makes one and the first to publish it wins (the
/// others free theirs): a fork can catch none half made.
static RING: AtomicPtr<Ring> = AtomicPtr::new(std::ptr::null_mut());

fn ring() -> &'static Ring {
    let ring = RING.load(Ordering::Acquire);
    if !ring.is_null() {
        // SAFETY: published once, never freed.
        return unsafe { &*ring };
    }
    let made = Box::into_raw(Box::new(Ring {
        entries: (0..RING_ENTRIES)
            .map(|_| Entry {
                seq: AtomicU64::new(0),
                context: UnsafeCell::new(PassThroughContext::none()),
            })
            .collect(),
        next: AtomicU32::new(0),
    }));
    match RING.compare_exchange(
        std::ptr::null_mut(),
        made,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        // SAFETY: just published, never freed.
        Ok(_) => unsafe { &*made },
        Err(theirs) => {
            // SAFETY: `made` was never shared; `theirs` is published for good.
            unsafe {
                drop(Box::from_raw(made));
                &*theirs
            }
        }
    }
}

/// Keeps `context`; returns the entry's index and generation for a handle.
/// The generation is never 0.
pub fn store(context: &PassThroughContext) -> (u32, u32) {
    let ring = ring();
    loop {
        let index = ring.next.fetch_add(1, Ordering::Relaxed) % RING_ENTRIES;
        let entry = &ring.entries[index as usize];
        let seq = entry.seq.load(Ordering::Relaxed);
        if seq & 1 != 0 {
            continue; // another writer has it right now: take the next
        }
        // Acquire: our writes below stay after the claim.
        if entry
            .seq
            .compare_exchange(seq, seq | 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        // The next generation, skipping 0 (never a valid handle's).
        let mut generation = ((seq >> 1) as u32).wrapping_add(1);
        if generation == 0 {
            generation = 1;
        }
        // SAFETY: the writing bit we set gives us the entry alone.
        unsafe { entry.context.get().write(*context) };
        // Release pairs with the reader's Acquire load of `seq`.
        entry.seq.store((generation as u64) << 1, Ordering::Release);
        return (index, generation);
    }
}

/// The context an entry holds, if it still has `generation`.
pub fn load(index: u32, generation: u32) -> Option<PassThroughContext> {
    let entry = ring().entries.get(index as usize)?;
    let before = entry.seq.load(Ordering::Acquire);
    if before & 1 != 0 || (before >> 1) as u32 != generation || generation == 0 {
        return None;
    }
    // SAFETY: a plain-data copy; a writer racing with it is detected by the
    // second look at `seq` below and the copy thrown away.
    let context = unsafe { std::ptr::read_volatile(entry.context.get()) };
    fence(Ordering::Acquire);
    (entry.seq.load(Ordering::Relaxed) == before).then_some(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(n: u8) -> PassThroughContext {
        PassThroughContext {
            trace_id: [n; 16],
            span_id: [n; 8],
            trace_flags: n & 1,
            tracestate: Tracestate::parse(format!("k=v{n}").as_bytes()).expect("valid"),
        }
    }

    #[test]
    fn a_stored_context_comes_back_until_its_entry_is_reused() {
        let (index, generation) = store(&context(7));
        let back = load(index, generation).expect("live");
        assert_eq!(
            (back.trace_id, back.span_id, back.trace_flags),
            ([7; 16], [7; 8], 1)
        );
        assert_eq!(back.tracestate.as_bytes(), b"k=v7");
        assert!(load(index, generation.wrapping_add(1)).is_none());
        assert!(load(index, 0).is_none());
        assert!(load(RING_ENTRIES, generation).is_none());
        for _ in 0..RING_ENTRIES {
            store(&context(9));
        }
        assert!(
            load(index, generation).is_none(),
            "reused: stale, never aliased"
        );
    }

    #[test]
    fn concurrent_writers_and_readers_never_see_a_torn_context() {
        let handles: Vec<_> = (1..=4u8)
            .map(|t| {
                std::thread::spawn(move || {
                    for _ in 0..5_000 {
                        let (i, g) = store(&context(t));
                        if let Some(c) = load(i, g) {
                            assert!(c.trace_id.iter().all(|&b| b == c.trace_id[0]));
                            assert_eq!(c.span_id[0], c.trace_id[0]);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
    }
}
