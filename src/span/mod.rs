//! A span's data: the fixed-size record, its limits, ids, clock, sampling
//! and W3C trace context.

pub mod any_value;
pub mod clock;
pub mod environment;
pub mod ids;
pub mod limits;
pub mod passthrough;
pub mod printable;
#[cfg(test)]
mod printable_check;
pub mod proto_reader;
pub mod record;
pub mod sampler;
pub mod short_copy;
pub mod traceparent;
pub mod tracestate;
