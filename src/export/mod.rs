//! Everything after a span ends: batching, OTLP encoding, transport.

pub mod resource;
