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
}
