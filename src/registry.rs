//! Live tracers by number, so that a span handle alone (which carries its
//! tracer's number) finds its tracer, and process-wide hooks (signals, exit)
//! reach every tracer. Lock-free: the signal handlers read it too.

use std::sync::atomic::{AtomicPtr, Ordering};

use crate::pipeline::Pipeline;
use crate::tracer::Tracer;

static TRACERS: [AtomicPtr<Tracer>; 256] = [const { AtomicPtr::new(std::ptr::null_mut()) }; 256];

/// Claims a free number (1..=255) for a tracer about to start.
pub fn reserve() -> Option<u8> {
    let placeholder = std::ptr::dangling_mut::<Tracer>();
    (1..256usize)
        .find(|&i| {
            TRACERS[i]
                .compare_exchange(
                    std::ptr::null_mut(),
                    placeholder,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        })
        .map(|i| i as u8)
}

/// Publishes a started tracer under its reserved number. The tracer must
/// stay at this address until `release`.
pub fn publish(id: u8, tracer: &Tracer) {
    TRACERS[id as usize].store(tracer as *const Tracer as *mut Tracer, Ordering::Release);
}

/// Frees a number (after a failed start, or before the tracer is dropped).
pub fn release(id: u8) {
    TRACERS[id as usize].store(std::ptr::null_mut(), Ordering::Release);
}

/// The tracer with this number, if one is live.
#[inline]
pub fn get(id: u8) -> Option<&'static Tracer> {
    let ptr = TRACERS[id as usize].load(Ordering::Acquire);
    if ptr.is_null() || ptr == std::ptr::dangling_mut::<Tracer>() {
        return None;
    }
    // SAFETY: a published pointer stays valid until `release`, and the C API
    // requires that freeing a tracer does not race with other calls on it.
    Some(unsafe { &*ptr })
}

/// Every live tracer. Async-signal-safe (atomic loads only).
pub fn for_each(mut f: impl FnMut(&Tracer)) {
    for id in 1..=255u8 {
        if let Some(t) = get(id) {
            f(t);
        }
    }
}

/// Every live tracer's pipeline. Async-signal-safe.
pub fn for_each_pipeline(mut f: impl FnMut(&Pipeline)) {
    for_each(|t| f(t.pipeline()));
}
