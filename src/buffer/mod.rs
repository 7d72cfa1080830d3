//! Preallocated span storage and the lock-free handoff to the exporter.

pub mod dump;
pub mod slab;
