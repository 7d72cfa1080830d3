//! Where an encoded batch goes: the trait both sinks implement and the
//! outcome the retry logic reads.

use std::time::Duration;

/// The backend accepted the request. `rejected_spans` > 0 is an OTLP partial
/// success: the backend dropped that many spans of the batch on purpose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    pub rejected_spans: u64,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again (429, 502, 503, 504, connection trouble,
    /// timeouts); `retry_after` is the server's wish, when it said one.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Sending it again would fail again (other 4xx, a bad URL, a full disk).
    Permanent { reason: String },
}

impl SendError {
    pub fn reason(&self) -> &str {
        match self {
            SendError::Transient { reason, .. } | SendError::Permanent { reason } => reason,
        }
    }
}

/// What a batch's body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    Protobuf,
    Json,
}

pub trait Transport: Send {
    /// Sends one encoded ExportTraceServiceRequest. `gzipped` says whether
    /// `body` is gzip-compressed.
    fn send(
        &mut self,
        body: &[u8],
        format: BodyFormat,
        gzipped: bool,
    ) -> Result<Accepted, SendError>;

    /// A short name for messages and stats ("http://…", "file:/…").
    fn describe(&self) -> String;
}
