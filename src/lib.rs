//! spanguard: a span recorder with a C ABI that gets every span to an
//! OpenTelemetry backend.

pub mod buffer;
pub mod config;
pub mod export;
pub mod ffi;
#[cfg(test)]
mod forking_tests;
pub mod pipeline;
pub mod registry;
pub mod span;
pub mod stats;
pub mod tracer;
pub mod watchdog;
