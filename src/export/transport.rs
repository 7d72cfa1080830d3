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

/// What an accepted answer's warning starts with when the transport could
/// not read its body (a coding not read, a gzip body cut short): the
/// status is taken, and any spans the body rejected are counted delivered.
const UNREAD_HEAD: &str = "its answer came compressed as ";
/// What follows the coding in that warning.
const UNREAD_TAIL: &str = ", which is not read (";

/// The warning a 2xx answer whose body could not be read is taken with:
/// `coding` as it came (`br`, or `gzip, cut short`), `why` it is not read.
/// Its words are read back by `unread_coding_in` (`spanguard why`).
pub fn unread_answer(coding: &str, why: &str) -> String {
    format!(
        "{UNREAD_HEAD}{coding}{UNREAD_TAIL}{why}): any spans it rejected there are counted delivered"
    )
}

/// The coding a warning made by `unread_answer` names; None for any other
/// warning (a backend's own).
pub fn unread_coding_in(warning: &str) -> Option<&str> {
    let (coding, _) = warning.strip_prefix(UNREAD_HEAD)?.split_once(UNREAD_TAIL)?;
    Some(coding)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again (429, 502, 503, 504, connection trouble,
    /// timeouts); `retry_after` is the server's wish, when it said one.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The server refused the request for its size (HTTP 413): smaller
    /// requests may pass.
    TooLarge { reason: String },
    /// The server refused the data for good (other 4xx, 500): sending it
    /// again would be refused again.
    Permanent { reason: String },
    /// The server refused the request for where it went or who sent it
    /// (401, 403, 404, 405, 407: a credential missing or wrong, a URL
    /// without its path; 431: its headers too large), not for what it
    /// holds: final for spans on their first trip, as OTLP asks, but spans
    /// from the spool directory stay there for a sender set up right
    /// (`Delivery::attempt`).
    Misdirected { reason: String },
}

impl SendError {
    pub fn reason(&self) -> &str {
        match self {
            SendError::Transient { reason, .. }
            | SendError::TooLarge { reason }
            | SendError::Permanent { reason }
            | SendError::Misdirected { reason } => reason,
        }
    }

    /// The same error with every secret masked in its reason.
    pub fn scrubbed(self, secrets: &super::redact::Secrets) -> SendError {
        match self {
            SendError::Transient {
                reason,
                retry_after,
            } => SendError::Transient {
                reason: secrets.scrub(&reason),
                retry_after,
            },
            SendError::TooLarge { reason } => SendError::TooLarge {
                reason: secrets.scrub(&reason),
            },
            SendError::Permanent { reason } => SendError::Permanent {
                reason: secrets.scrub(&reason),
            },
            SendError::Misdirected { reason } => SendError::Misdirected {
                reason: secrets.scrub(&reason),
            },
        }
    }
}

/// What a batch's body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    Protobuf,
    Json,
}

/// How a failed request went without an answer (`Transport::silence`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Silence {
    /// A server answered (if badly: a status, a line that is not HTTP, an
    /// answer broken off), or the request did not fail for want of one.
    Answered,
    /// No server took the request: the connection was refused, the name
    /// did not resolve, or the connection was closed or reset before a
    /// byte of answer came (a published port with nothing behind it:
    /// Docker's proxy for a container that is down). It costs
    /// milliseconds, not a timeout, to learn.
    NoServer,
    /// A server took the request and said nothing in the time it was
    /// given: a backend that accepts and never answers (or a hung one).
    /// Learning it again costs that time again.
    TimedOut,
    /// Abandoned at the deadline of the flush or shutdown waiting for it:
    /// there is no time left to try again.
    Deadline,
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

    /// A short name for messages and stats ("http://…", "file:/…"), with
    /// no credentials in it.
    fn describe(&self) -> String;

    /// Files the transport moved out of its way since the last call (the
    /// file sink: something not ours at its file's name), for the
    /// exporter to count and report as it does the spool's.
    fn take_set_aside(&mut self) -> Vec<crate::buffer::files::SetAside> {
        Vec::new()
    }

    /// What the last `send` heard from a server when it failed without an
    /// answer (`Silence::Answered` when it got one, or succeeded): a
    /// flush or shutdown tells a backend that is down from a blip by it
    /// (`Delivery::attempt`).
    fn silence(&self) -> Silence {
        Silence::Answered
    }

    /// The next `send` (only that one) is given at most `limit`, if that
    /// is less than the request timeout: a probe of a backend that gave no
    /// answer, so that one that accepts and never answers costs a probe
    /// and not a whole request timeout again.
    fn limit_next(&mut self, _limit: Duration) {}

    /// What tells this sender from one set up otherwise (another URL,
    /// other headers, other TLS files), the same in every process set up
    /// alike: spans it was refused for who sent them or where
    /// (`SendError::Misdirected`) are kept in spool files naming it, which
    /// it never sends again and a corrected sender does
    /// (`Delivery::attempt`). Never written to disk itself: names carry
    /// it under the spool directory's random key (`sender_key`,
    /// `SpoolDir::sender_mark`), since an unkeyed hash of a header's value
    /// in a file name can be tried against guesses offline. It names too
    /// the files a dead process leaves (spool files, its journal, flight
    /// file and crash dump: `spool::destination_of`), which only a sender
    /// with the same fingerprint recovers. None for a
    /// transport that cannot say what it is set up with (an embedder's
    /// own): its files name no sender, and it takes only those.
    fn sender_fingerprint(&self) -> Option<u64> {
        None
    }

    /// What tells a refusal of this sender (`SendError::Misdirected`)
    /// from one a sender set up otherwise meets: its `sender_fingerprint`
    /// and what else decides such a refusal without changing where its
    /// spans go, the bytes its TLS files held when last read (`renewed`).
    /// A CA file replaced in place by the right one (a renewed bundle at
    /// the same path, a mounted secret rotated) is a sender set up
    /// otherwise, in this process too: it takes the files its path's old
    /// CA was refused (`spool::refused_by`),
    /// and a renewal still finds the files kept for its destination
    /// (`spool::destination_of`, the sender fingerprint's). Never written
    /// to disk itself (names carry it under the directory's key, as the
    /// sender fingerprint).
    fn refusal_fingerprint(&self) -> Option<u64> {
        self.sender_fingerprint()
    }

    /// Whether its `refusal_fingerprint` changed since the last call: what
    /// decides its refusals from outside the process (the TLS files,
    /// renewed while it runs: in place, or by a symlinked directory
    /// swapped, as a Kubernetes secret is) was taken up anew, and its next
    /// request uses it. It looks at each new connection after a failure
    /// and at each refusal by itself, and now too when `look` (a `stat` of
    /// each file, nothing read unless one changed). Never on the recording
    /// path: the exporter asks (`Delivery::sender_renewed`).
    fn renewed(&mut self, _look: bool) -> bool {
        false
    }

    /// What keeps requests from going while a failure is waited out (the
    /// next try later), when it is no backend being down: a local sink
    /// on a full disk, which was said to be "the backend is down". None
    /// when the last `send` succeeded, and for a backend.
    fn not_taking(&self) -> Option<String> {
        None
    }

    /// Whether what it is given reaches a backend. One that drops it (the
    /// `discard:` null sink of benchmarks and tests) takes from the spool
    /// only the files named for it (`SpoolDir::take_only_own`): another
    /// sender's refused spans, kept for its corrected setting, and a file
    /// that names no sender (an older spanguard's, which a sender that
    /// delivers may yet send) were dropped by it, counted delivered.
    fn delivers(&self) -> bool {
        true
    }
}

/// A hash of `parts` that stays the same across processes, builds and
/// Rust versions (FNV-1a, 64 bits; std's `DefaultHasher` promises none of
/// that), each part ended so that ("ab", "c") and ("a", "bc") differ.
pub fn stable_fingerprint<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for part in parts {
        for &b in part.iter().chain((part.len() as u64).to_le_bytes().iter()) {
            h ^= b as u64;
            h = h.wrapping_mul(PRIME);
        }
    }
    h
}
