//! Live pipelines by their tracer's number, so that process-wide hooks
//! (signals, exit, crash) reach every tracer's pipeline, and numbers in
//! span handles are never given to two live tracers. Lock-free: the signal
//! handlers read it too.

use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use crate::pipeline::Pipeline;

static PIPELINES: [AtomicPtr<Pipeline>; 256] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; 256];

/// Per number, how many `all` calls are taking a reference to its
/// pipeline right now: `release` waits for none, so that a pipeline `all`
/// read is still alive when its reference count goes up.
static TAKING: [AtomicU32; 256] = [const { AtomicU32::new(0) }; 256];

/// Where the search for a free number starts: after the last one given,
/// so numbers cycle through all 255 before one comes back, and a span
/// handle of a freed tracer names no live tracer for as long as possible
/// (its slot generations, which start at random, cover the rest).
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Claims a free number (1..=255) for a tracer about to start.
pub fn reserve() -> Option<u8> {
    let placeholder = std::ptr::dangling_mut::<Pipeline>();
    // Relaxed: the cursor only spreads numbers; the compare-exchange below
    // is what claims one.
    let start = NEXT.load(Ordering::Relaxed);
    let id = (0..255usize).map(|k| (start + k) % 255 + 1).find(|&i| {
        PIPELINES[i]
            .compare_exchange(
                std::ptr::null_mut(),
                placeholder,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    })?;
    // The next search starts just after this number.
    NEXT.store(id, Ordering::Relaxed);
    Some(id as u8)
}

/// Publishes a started tracer's pipeline under its reserved number. The
/// tracer's `Arc` must be kept until `release` (`all` takes references
/// to it until then).
pub fn publish(id: u8, pipeline: &Arc<Pipeline>) {
    PIPELINES[id as usize].store(Arc::as_ptr(pipeline).cast_mut(), Ordering::SeqCst);
}

/// Frees a number (after a failed start, or before the tracer is dropped).
/// Returns once no `all` may take a reference to the pipeline any more
/// (those taken keep it alive).
pub fn release(id: u8) {
    // SeqCst with `all`'s: either it sees the pointer gone, or this sees
    // its count and waits for its reference to be taken.
    PIPELINES[id as usize].store(std::ptr::null_mut(), Ordering::SeqCst);
    while TAKING[id as usize].load(Ordering::SeqCst) != 0 {
        std::hint::spin_loop();
    }
}

/// In a forked child, before anything is released there: an `all` that
/// another thread of the parent was in at the fork never finishes here.
pub fn forget_takers_in_child() {
    for taking in &TAKING {
        taking.store(0, Ordering::SeqCst);
    }
}

/// The pipeline with this number, if one is live.
#[inline]
fn get(id: u8) -> Option<&'static Pipeline> {
    let ptr = PIPELINES[id as usize].load(Ordering::Acquire);
    if ptr.is_null() || ptr == std::ptr::dangling_mut::<Pipeline>() {
        return None;
    }
    // SAFETY: a published pointer stays valid until `release`, and the C API
    // requires that freeing a tracer does not race with other calls on it.
    Some(unsafe { &*ptr })
}

/// Every live pipeline, for a hook that deals with them all at once on
/// threads of its own and for as long as it takes (`for_each` lends one
/// at a time): each kept alive by the reference returned. A `&Pipeline`
/// was valid only until its tracer was released, and the exit hook and the
/// signal watchdog hold theirs for a whole shutdown: a tracer freed by
/// another thread meanwhile (its exporter ending afterwards dropped the
/// last reference) left them in freed memory.
pub fn all() -> Vec<Arc<Pipeline>> {
    (1..=255usize)
        .filter_map(|id| {
            TAKING[id].fetch_add(1, Ordering::SeqCst);
            let ptr = PIPELINES[id].load(Ordering::SeqCst);
            let taken =
                (!ptr.is_null() && ptr != std::ptr::dangling_mut::<Pipeline>()).then(|| {
                    // SAFETY: published from a live Arc (`publish`), which
                    // `release` (waiting for this count) has not let go yet.
                    unsafe {
                        Arc::increment_strong_count(ptr);
                        Arc::from_raw(ptr)
                    }
                });
            TAKING[id].fetch_sub(1, Ordering::SeqCst);
            taken
        })
        .collect()
}

/// Whether no tracer is live in this process: every number is free or
/// names a pipeline that has been shut down. A number reserved for a
/// tracer being made (or, in a forked child, for one made at its first
/// use) counts as live. Async-signal-safe (atomic loads only).
pub fn none_live() -> bool {
    (1..=255usize).all(|id| {
        let ptr = PIPELINES[id].load(Ordering::Acquire);
        ptr.is_null()
            || (ptr != std::ptr::dangling_mut::<Pipeline>()
                && get(id as u8)
                    .is_some_and(|p| p.lifecycle() == crate::pipeline::LIFECYCLE_SHUT_DOWN))
    })
}

/// Every live pipeline. Async-signal-safe (atomic loads only).
pub fn for_each(mut f: impl FnMut(&Pipeline)) {
    for id in 1..=255u8 {
        if let Some(p) = get(id) {
            f(p);
        }
    }
}
