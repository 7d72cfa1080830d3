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

    /// Nothing it takes arrives anywhere: it sends nothing from the spool
    /// but what a discarding tracer left.
    fn delivers(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::delivery::{Delivery, DeliveryHost, Outcome};
    use crate::export::spool::{self, SpoolDir, SpooledBatch};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    /// Counts the spans delivered.
    #[derive(Default)]
    struct Delivered(u64);

    impl DeliveryHost for Delivered {
        fn wait(&mut self, _: Duration) -> bool {
            true
        }
        fn record(&mut self, outcome: Outcome<'_>) {
            if let Outcome::Delivered { spans, .. } = outcome {
                self.0 += spans;
            }
        }
    }

    /// Writes a batch of `spans` in `dir` as a spool whose sender is
    /// `sender` writes it, refused to that sender when `refused`.
    fn written(dir: &Path, sender: Option<u64>, spans: u32, refused: bool) -> PathBuf {
        let mut spool = SpoolDir::new(dir, 64 << 20);
        spool.set_sender(sender);
        let batch = SpooledBatch {
            format: BodyFormat::Protobuf,
            gzipped: false,
            spans,
            cut_counted: 0,
            cut_at: Vec::new(),
            body: spool::tests::proto_body(spans, 0),
        };
        let before = spool.list();
        spool
            .write_refused(&batch, sender.filter(|_| refused))
            .expect("write");
        let mut after = spool.list();
        after.retain(|f| !before.contains(f));
        after.pop().expect("the file written")
    }

    /// A discarding tracer (a benchmark's, a test's) sends from the spool
    /// only what a discarding tracer left there: spans another sender
    /// was refused, kept for its corrected setting, and a file that names
    /// no sender (an older spanguard's, which a sender that delivers may
    /// yet send), were taken and dropped, counted delivered.
    #[test]
    fn a_discarding_sender_takes_only_what_a_discarding_one_left() {
        let dir = std::env::temp_dir().join(format!("sg-discard-takes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let discard = DiscardTransport.sender_fingerprint();
        let refused = written(&dir, Some(0xa), 3, true);
        let unmarked = written(&dir, None, 5, false);
        let own = written(&dir, discard, 7, false);
        let mut delivery = Delivery::new(
            Box::new(DiscardTransport),
            SpoolDir::new(&dir, 64 << 20),
            Duration::from_secs(1),
            1 << 20,
        );
        let mut host = Delivered::default();
        delivery.replay_spool(&mut host);
        assert_eq!(host.0, 7, "only the discarding sender's own");
        assert!(refused.exists() && unmarked.exists() && !own.exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
