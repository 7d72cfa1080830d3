//! A span's data: the fixed-size record, its limits, ids, clock and W3C
//! trace context.

pub mod clock;
pub mod ids;
pub mod limits;
pub mod record;
pub mod traceparent;
