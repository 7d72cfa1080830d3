//! A transport that accepts and discards every batch: the "null sink" that
//! benchmarks measure against (everything but the network is still done:
//! batching, encoding, compression). Chosen with the endpoint `discard:`.

use super::transport::{Accepted, BodyFormat, SendError, Transport};

#[derive(Default)]
pub struct DiscardTransport;

impl Transport for DiscardTransport {
    fn send(
        &mut self,
        _body: &[u8],
        _format: BodyFormat,
        _gzipped: bool,
    ) -> Result<Accepted, SendError> {
        Ok(Accepted::default())
    }

    fn describe(&self) -> String {
        "discard:".to_string()
    }

    /// Its own: a benchmark's tracer recovers only what a discarding
    /// tracer left, never a dead agent's spans (which it would drop).
    fn sender_fingerprint(&self) -> Option<u64> {
        Some(super::transport::stable_fingerprint([&b"discard:"[..]]))
    }
}
