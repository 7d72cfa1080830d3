//! Live pipelines by their tracer's number, so that process-wide hooks
//! (signals, exit, crash) reach every tracer's pipeline, and numbers in
//! span handles are never given to two live tracers. Lock-free: the signal
//! handlers read it too.

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::pipeline::Pipeline;

static PIPELINES: [AtomicPtr<Pipeline>; 256] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; 256];

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
/// pipeline must stay at this address until `release`.
pub fn publish(id: u8, pipeline: &Pipeline) {
    PIPELINES[id as usize].store(
        pipeline as *const Pipeline as *mut Pipeline,
        Ordering::Release,
    );
}

/// Frees a number (after a failed start, or before the tracer is dropped).
pub fn release(id: u8) {
    PIPELINES[id as usize].store(std::ptr::null_mut(), Ordering::Release);
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
/// threads of its own (`for_each` lends one at a time): each is valid, as
/// there, until its tracer is released.
pub fn all() -> Vec<&'static Pipeline> {
    (1..=255u8).filter_map(get).collect()
}

/// Every live pipeline. Async-signal-safe (atomic loads only).
pub fn for_each(mut f: impl FnMut(&Pipeline)) {
    for id in 1..=255u8 {
        if let Some(p) = get(id) {
            f(p);
        }
    }
}
