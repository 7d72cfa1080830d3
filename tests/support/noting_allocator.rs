//! A global allocator for the allocation tests: it forwards to the
//! system's and tells the test's `note` the size of every allocation (a
//! realloc's new size), so that a test counts allocations rather than
//! timing them. A test binary sets it as its own:
//!
//! ```ignore
//! #[path = "support/noting_allocator.rs"]
//! mod noting_allocator;
//! #[global_allocator]
//! static GLOBAL: noting_allocator::NotingAllocator = noting_allocator::NotingAllocator {
//!     note: noting_allocator::count_on_this_thread, // or a function of its own
//! };
//! ```
//!
//! `note` runs inside the allocator: it must not allocate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct NotingAllocator {
    pub note: fn(usize),
}

// SAFETY: forwards to the system allocator; only notes sizes.
unsafe impl GlobalAlloc for NotingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        (self.note)(layout.size());
        // SAFETY: same layout contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        (self.note)(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// A `note` that counts each allocation on the thread that makes it
/// (`allocations_on_this_thread` reads the count).
#[allow(dead_code)] // the tests that watch another thread note otherwise
pub fn count_on_this_thread(_size: usize) {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

/// How many allocations `count_on_this_thread` counted on this thread.
#[allow(dead_code)]
pub fn allocations_on_this_thread() -> u64 {
    ALLOCATIONS.with(|c| c.get())
}
