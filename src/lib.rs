//! spanguard: a span recorder with a C ABI that gets every span to an
//! OpenTelemetry backend.

pub mod export;
pub mod span;
