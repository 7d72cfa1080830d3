//! Preallocated span storage and the lock-free handoff to the exporter.

pub mod aging;
pub mod bias;
pub mod dump;
pub mod ended_queue;
pub mod files;
pub mod free_stack;
pub mod let_go;
pub mod mapping;
pub mod payload_pool;
pub mod prefetch;
pub mod slab;
pub mod slot_cache;
pub mod slot_order;
pub mod wait_hooks;
