//! The one path from an encoded request to its fate, for fresh batches,
//! spool files and the spans of crash dumps and flight files alike, in the
//! exporter and in `spanguard replay`: sending, retries with backoff and
//! jitter, Retry-After, the "backend down" state (later requests are kept
//! until a probe about once a second), splitting on 413, spooling, and the
//! outcome of every span, which the host counts, reports and logs. A rule
//! fixed here holds for every kind of request.

use std::time::{Duration, Instant};

use super::gzip::GzipWriter;
use super::request_encoder::RequestEncoder;
use super::resource::{DepthCounted, ResourceInfo};
use super::retry::{Backoff, RetryPolicy, RetryStep};
use super::split::{Part, plain_body, split_in_two};
use super::spool::{HEADER_LEN, Journal, ReplayVerdict, SpoolDir, SpooledBatch};
use super::transport::{Accepted, BodyFormat, SendError, Silence, Transport};
use super::value_cut::{Emptied, SharedMsg, cut_deep, cut_to_fit, longest_value};
use crate::buffer::dump::Recovered;
use crate::span::clock::instant_after;
use crate::span::record::{MARK_NON_RECORDING, SpanRecord, SpanView};

/// Where a request's spans come from, which decides how they are counted
/// and what keeping them means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Spans this tracer ended, on their first trip: kept by writing them
    /// to the spool.
    Fresh,
    /// A spool file: kept by leaving it where it is.
    SpoolFile,
    /// Spans from the spool directory in no file of their own any more
    /// (recovered from a crash dump or flight file, or part of a spool file
    /// that had to be split): kept by writing them to a new spool file.
    Recovered,
}

impl Origin {
    /// The origin of a part of a split request.
    fn of_part(self) -> Origin {
        match self {
            Origin::Fresh => Origin::Fresh,
            Origin::SpoolFile | Origin::Recovered => Origin::Recovered,
        }
    }

    /// Spans this tracer ended (counted in the first-trip counters) rather
    /// than spans taken from the spool directory.
    pub fn is_fresh(self) -> bool {
        self == Origin::Fresh
    }
}

/// One encoded ExportTraceServiceRequest.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub body: &'a [u8],
    pub format: BodyFormat,
    pub gzipped: bool,
    pub spans: u64,
    pub origin: Origin,
    /// Values of it already cut to fit a size limit and counted (the
    /// encoders' span budget, an earlier cut after a 413): a cut leaves
    /// them the longest of their span, so a later cut finds them and
    /// counts only the values it cuts besides (`value_cut::cut_to_fit`).
    /// A spool file keeps it in its header, for the replay.
    pub cut_counted: u64,
    /// Of those, the attribute values of spans, events and links a cut to
    /// a size shortened, by their place in the request (`CutRequest::at`:
    /// the same in the request cut or not): the encoder's cut of a lone
    /// span (`RequestEncoder::cut_at`). A depth rescue that empties one of
    /// them counts it no more: one value cut both ways is one value cut.
    /// Empty when the cuts were of string and bytes attribute values only
    /// (the span budget's: no depth cut empties one). A spool file or a
    /// journal keeps them in its header (`spool::encode_header_with_places`),
    /// for the replay; one of an earlier version, or the crash handler's,
    /// holds the count alone (such a value a replay's depth rescue
    /// empties is counted again).
    pub cut_at: &'a [u64],
}

/// What happened to (some of) a request's spans. Each span of a request
/// ends in exactly one of Delivered, Rejected, Lost or Kept.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// The backend accepted `spans` spans (`bytes` sent).
    Delivered {
        origin: Origin,
        spans: u64,
        bytes: u64,
    },
    /// The backend accepted the request but dropped `spans` of its spans
    /// (OTLP partial success).
    Rejected {
        origin: Origin,
        spans: u64,
        message: &'a str,
    },
    /// The backend accepted all `spans` spans of a request (counted in
    /// `Delivered`) with a warning: an OTLP partial success that rejects
    /// none and carries `message` ("spans older than 1h sampled"). Says
    /// something, counts nothing: those spans end delivered.
    Warned {
        origin: Origin,
        spans: u64,
        message: &'a str,
    },
    /// Lost for good: refused, too large, or could not be kept.
    Lost {
        origin: Origin,
        spans: u64,
        reason: &'a str,
    },
    /// Kept for later: written to the spool (`written`), or a spool file
    /// left where it is.
    Kept {
        origin: Origin,
        spans: u64,
        reason: &'a str,
        written: bool,
        /// Refused to this sender for who sent it or where (401, 403,
        /// 404...): kept for a sender set up otherwise, which this one
        /// never is (`Fate::KeepForOtherSender`).
        for_other_sender: bool,
    },
    /// `values` string and bytes values were cut to make their spans fit
    /// `limit` (`limit` says which and what raises it), counted as
    /// truncated when recorded: a cut `Delivery` makes of a request (a 413,
    /// the spool's cap) is recorded once its spans are delivered or kept,
    /// never for spans lost; a cut made while encoding (a recovered span
    /// over this process's size limit, a dead process's header) when it is
    /// made, whatever then becomes of the spans, as the exporter's encoder
    /// cuts are counted.
    Cut {
        origin: Origin,
        values: u64,
        limit: &'a str,
    },
    /// Arrays and maps nested deeper than `depth` levels were emptied
    /// (replaced by the empty value) in `values` attribute values of
    /// spans, and `shared` of the resource and instrumentation scopes (each
    /// counted once, not once a request), for a server that refused the
    /// spans for them (a decoder's nesting limit): counted as truncated
    /// once the spans holding them were delivered or kept.
    Emptied {
        origin: Origin,
        values: u64,
        shared: u64,
        depth: usize,
    },
    /// A resource took over half of `limit` (which says what raises it):
    /// its requests carry it without `attributes` of its attributes (its
    /// `dropped_attributes_count`). Once a resource, not once a request.
    ResourceCut { attributes: u64, limit: &'a str },
    /// The spool's cap deleted older files to make room.
    Evicted { files: u64, spans: u64 },
    /// An attempt got no acceptable answer, and its spans wait for another
    /// (a final refusal is its `Lost` alone).
    AttemptFailed { reason: &'a str },
    /// An attempt failed and the request is sent again after `wait`.
    Retrying { wait: Duration },
    /// The spool directory now holds this many bytes.
    SpoolSize { bytes: u64 },
}

/// What cuts to a size (`value_cut::cut_to_fit`, for a 413) of a lone
/// span's request shortened and did not count yet: how many values, and
/// which attribute values they were in (`CutRequest::at`), to count a
/// value a depth cut empties too once (`Delivery::count_cuts`).
#[derive(Clone, Debug, Default)]
struct SizeCuts {
    values: u64,
    at: Vec<u64>,
}

impl SizeCuts {
    /// These and `cut`'s, a cut of the request these were cut in.
    fn and(&self, cut: &super::value_cut::CutRequest) -> SizeCuts {
        let mut at = self.at.clone();
        at.extend(cut.at.iter().filter(|i| !self.at.contains(i)));
        SizeCuts {
            values: self.values + cut.values,
            at,
        }
    }
}

/// Whoever runs deliveries: the exporter thread, or the command line.
pub trait DeliveryHost {
    /// Waits `wait` before a retry. False when the request must be kept
    /// instead of waiting (a stop, a half-full queue, a flush that cannot
    /// wait that long).
    fn wait(&mut self, wait: Duration) -> bool;
    /// True while stopping: one attempt per request, no waiting. A host
    /// that runs to the end of its work (the command line) never stops.
    fn stopping(&self) -> bool {
        false
    }
    /// Something else needs the thread (queue pressure, a flush): a spool
    /// replay stops between files. Never, for a host with nothing else to do.
    fn busy(&self) -> bool {
        false
    }
    /// Someone waits for the request being delivered: a flush, a
    /// shutdown. A failure with no answer from a server is then retried
    /// quickly or probed, not backed off until the caller's deadline
    /// (`Delivery::attempt` says the rule): with the backend down, a
    /// shutdown retried for the whole flush timeout, 25 s of Go's 30 s
    /// default at every exit.
    fn awaited(&self) -> bool {
        false
    }
    /// Counts, reports and logs what happened.
    fn record(&mut self, outcome: Outcome<'_>);
    /// Holds what `record` would tell the application (its callback)
    /// until `let_told_out`: recovery tells of a dead process's batch only
    /// once that process's file marks it sent (`recovery::recover_dir`).
    fn hold_told(&mut self) {}
    /// Tells what was held since `hold_told`.
    fn let_told_out(&mut self) {}
}

/// How one attempt at a request ended, inside this module.
enum Fate {
    /// Every span is accounted for.
    Done,
    /// Refused for good: every span is counted lost.
    Refused,
    /// Refused for good for what it holds (HTTP 400 and the other final
    /// answers not about who sends or where), not yet counted: one span the
    /// server cannot take refuses the request it is in
    /// (`Delivery::settle_refused` looks for it).
    RefusedData(String),
    /// Nothing was delivered; keep the request for later.
    Keep(String),
    /// Spans on their first trip refused for who sent them or where
    /// (`SendError::Misdirected`): kept for a sender set up otherwise, in
    /// spool files this sender does not send (`Delivery::refused_by`).
    KeepForOtherSender(String),
    /// The request must go as two smaller ones.
    Split(Part, Part),
    /// The server refused the request for its size and it holds one span:
    /// it goes again with the span's values cut.
    TooLarge(String),
}

/// How long a spool replay waits after the server refused a spool file for
/// who sent it or where (401, 403, 404, 405, 407: `SendError::Misdirected`):
/// a token missing or a wrong path is not set right within a second, and
/// each of the exporter's wake-ups sent the first file again (a request
/// wasted and a failure on stderr each time). Backs off, with jitter, from
/// 2 s to 5 min; a request accepted ends it.
const REPLAY_AFTER_REFUSAL: Backoff = Backoff {
    initial: Duration::from_secs(2),
    max: Duration::from_secs(300),
    multiplier: 2,
};

/// How many times a spool file may be set back for a transient failure
/// (502, 503, 504, no answer) while the backend took the probe sent right
/// after (`Delivery::probe`) before it is taken for what it holds: a
/// gateway in front of the backend that times out (504) or dies (502) on
/// one huge request while it takes the others, an upstream that crashes on
/// one span. At the next such failure it is split as a 400 is
/// (`Delivery::settle_refused`): its other spans go, and the part the
/// server never takes is counted lost (`dropped_replay_failed`), saying
/// why. Five: a backend that went down for the file's request and came
/// back for the probe (a restart between the two) sets it back once,
/// unfairly; five in a row are no coincidence.
const MAX_SETBACKS: u32 = 5;

/// The probe (`Delivery::probe`): an ExportTraceServiceRequest with no
/// spans, as each encoding writes it. OTLP receivers take it (the
/// Collector answers 200 with an empty response).
const EMPTY_PROTOBUF_REQUEST: &[u8] = b"";
const EMPTY_JSON_REQUEST: &[u8] = b"{}";

/// The largest request of one span sent whole when the span alone is
/// over `max_request_bytes` (its values are cut to fit beyond), unless half
/// the spool's cap is less (`Delivery::send_lone_spans_whole`). Above what
/// common backends take (the Collector's OTLP/HTTP receiver: 20 MiB by
/// default), and a bound on memory: while it is sent the exporter holds
/// the request encoded and gzipped, and a 413 a plain copy and its cut.
const LONE_SPAN_CEILING: usize = 64 << 20;

/// How deep (levels of an attribute value, as `value_depth_limit` counts
/// them) the values of a span a server refused for good are cut before it
/// is sent once more (`Delivery::rescue_deep`). Measured
/// (tests/value_depth_bodies.rs, tests/python/value_depth_limit.py):
/// Python's protobuf (upb; Java's and C++'s alike, 100 messages) takes a
/// span attribute nested 31 maps or 47 arrays deep, refuses 32 or 48. 16
/// maps leave the emptied 17th level at message 54 of the request (55 in
/// an event's attributes), and at JSON nesting 74 (76): under 100, and
/// under serde_json's 128, with room left for a decoder that counts a
/// little differently; 16 levels still keep any structure a person reads.
pub(super) const SAFE_VALUE_DEPTH: usize = 16;

/// What a cut made for a 413 made the span fit, as `Outcome::Cut` says it.
const TOO_LARGE_LIMIT: &str = "what the server takes (it answered 413, Payload Too Large)";

/// How long what 413s taught about one-span requests holds
/// (`LoneSpanLesson`). A backend's size limit is configuration, changed
/// rarely (a Collector redeployed with a larger max_request_body_size, a
/// proxy in front of it replaced): forgotten after an hour, a strict
/// backend costs one refused request an hour (that span still arrives, cut
/// by the 413 path), and a raised limit is used within the hour.
const LONE_LESSON_HOLDS: Duration = Duration::from_secs(3600);

/// What the server's 413s said about requests of one span, in bytes
/// before compression (a server that limits what is sent, gzipped, refuses
/// a smaller size; a wrong guess costs one more 413, which cuts then).
#[derive(Clone, Copy, Debug)]
struct LoneSpanLesson {
    /// The smallest one-span request it refused.
    refused: usize,
    /// The largest one-span request under `refused` it took once one was
    /// refused (0: none yet).
    accepted: usize,
    /// When it last refused one: the lesson is forgotten
    /// `LONE_LESSON_HOLDS` after.
    at: Instant,
}

pub struct Delivery {
    transport: Box<dyn Transport>,
    spool: SpoolDir,
    policy: RetryPolicy,
    /// The most bytes one request's body may have; a spooled request over it
    /// is split before it is sent (a request of one span is sent as it is).
    max_request_bytes: usize,
    /// The most bytes (before compression) a request of one span may have
    /// when the span alone is over `max_request_bytes`: that limit itself
    /// until `send_lone_spans_whole`.
    lone_ceiling: usize,
    /// What 413s on one-span requests taught, while it holds.
    lone_lesson: Option<LoneSpanLesson>,
    rng: u64,
    /// While in the future, the backend counts as down: requests are kept
    /// without being sent, at a stop too (the server's Retry-After holds).
    down_until: Option<Instant>,
    /// The flight recorder's copy of the fresh request being delivered.
    journal: Option<Journal>,
    /// The attempt under way is of the whole request `journal` copies (not
    /// of a part of it): its acceptance settles every span the journal
    /// holds.
    attempting_journaled: bool,
    /// For gzipping the parts of a split request; made when first needed.
    gzip: Option<GzipWriter>,
    /// A spool file was kept because the server refused who sent it or
    /// where (`SendError::Misdirected`), since `replay_spool` began.
    misdirected: bool,
    /// Replays the server refused so in a row, and when the next may
    /// start (`REPLAY_AFTER_REFUSAL`); reset by any request accepted.
    replay_refusals: u32,
    replay_held_until: Option<Instant>,
    /// Requests the backend accepted, ever (fresh, spooled, recovered):
    /// a replay compares it to know whether parts of a split got through.
    accepted_requests: u64,
    /// The last transient failure came with the server's Retry-After: no
    /// probe goes before the time it asked (`replay_spool`).
    asked_to_wait: bool,
    /// Why the last request kept was kept (`attempt`), for the replay.
    kept_for: Option<KeptFor>,
    /// A stand-in exporter's delivery (`export::stand_in`): every request
    /// is kept in the spool at once, for this reason, never sent.
    keep_all: Option<String>,
    /// The exporter's: each request marked for a watcher that may find it
    /// stuck (`export::stand_in`).
    marks: Option<super::stand_in::RequestMarks>,
    /// While a request refused for who sent it or where is kept
    /// (`Fate::KeepForOtherSender`): this sender's fingerprint, which the
    /// names of the spool files it is written to carry, so that this
    /// sender (in this process or a next one with the same settings)
    /// never sends them again, and one set up otherwise does.
    refused_by: Option<u64>,
    /// Spans this sender was refused wait in the spool under its refusal
    /// fingerprint (`Fate::KeepForOtherSender`, or files left so by an
    /// earlier process: `SpoolDir::holds_refused_to_sender`, looked at
    /// once, as first needed): while they do, `sender_renewed` looks at
    /// what decides its refusals (its TLS files) once a `PROBE_INTERVAL`.
    /// None until known.
    refused_waiting: Option<bool>,
    /// When `sender_renewed` looks next.
    next_renewal_look: Option<Instant>,
    /// Send one attempt, no retries (a spool file set back already, or
    /// one sent right after another failed).
    one_attempt: bool,
    /// The last request sent (a replay's probe too: `send` records it)
    /// got no answer (`Transport::silence`: `NoServer` or `TimedOut`): a
    /// flush or shutdown gives its next request `PROBE_TIMEOUT` at most.
    silent: bool,
    /// A fresh request of spans (a batch of this process, not a spool
    /// file, which may be a gateway's poison) got no answer in its time,
    /// and no request of spans was answered since.
    fresh_hung: bool,
    /// That, and the backend then took an empty request (a probe): it
    /// answers, and hangs on spans. A flush or shutdown gives its next
    /// request `PROBE_TIMEOUT` at most and does not retry it unanswered,
    /// as while `silent`: each flush cost a whole request timeout (capped
    /// by its deadline) again, the probe taken between them having said
    /// the backend was fine. Ends at the first request of spans answered.
    spans_hang: bool,
    /// While a spool file set back `MAX_SETBACKS` times is split: a
    /// transient failure refuses the part sent for what it holds, as a
    /// 400 does, and says so (`never_taken`).
    transient_refuses: Option<u32>,
    /// Fingerprints of the resource and scope messages (as given) whose
    /// deep values `rescue_deep` emptied and counted: each of their
    /// requests is cut alike, counted once (the oldest forgotten first).
    shared_counted: DepthCounted,
    /// The exporter's own resource and scope messages (in fresh requests)
    /// that a request cut to `SAFE_VALUE_DEPTH` got taken with, not yet
    /// told (`take_shared_depth_cut`): it cuts them before sending from
    /// then on, one request a batch instead of five.
    shared_to_cut: Vec<SharedMsg>,
    /// The probes a replay sent (`probe`), and how many the backend took.
    probes: ProbeCount,
    /// A replay's probe found the backend down (no answer, 502, 503,
    /// 504), or a spool file failed with the server's Retry-After, and
    /// nothing was taken since: the next replay sends a probe in this
    /// encoding before any file, and no file until one is taken.
    probe_first: Option<BodyFormat>,
    /// The spool file that failed with the server's Retry-After, no probe
    /// sent after it yet (none goes before the time asked): the probe
    /// first at the next replay, or any request taken after the wait,
    /// says whether it is the problem.
    judged: Option<Judged>,
    /// That file, the backend found up after its failure: its set-back is
    /// counted when the replay meets it.
    vouched: Option<Judged>,
}

/// A spool file whose failure for now awaits the backend's word.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Judged {
    /// Its device and inode (`ReplayedFile::id`), and its body's
    /// fingerprint (`body_fingerprint`): a file made after it was deleted
    /// may be given its inode, and a batch of spans alike its length.
    file: (u64, u64),
    body: u64,
    /// The failure's reason.
    reason: String,
}

/// What a probe (`Delivery::probe`) learnt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProbeAnswer {
    /// The backend read it and answered (200; a 400 or 413 from one that
    /// takes no empty request): it is up.
    Taken,
    /// No answer, 502, 503, 504: it may be down.
    Failed,
    /// It refused the sender or the URL (401, 403, 404, ...): up, but the
    /// files would be refused alike.
    Misdirected,
}

/// The empty requests a replay sent to learn whether the backend is up
/// (`Delivery::probe`), and how many it took (the others failed: no
/// answer, 502, 503, 504, or a refusal of the sender).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeCount {
    pub sent: u64,
    pub taken: u64,
}

/// How many resource and scope messages cut to a depth wait for the
/// exporter to cut them up front (`take_shared_depth_cut`, each batch):
/// a process has one resource and a few scopes; past it, one is found
/// out again by a refusal.
const MAX_SHARED_TO_CUT: usize = 64;

/// What `Delivery::silence_at_flush` decided.
enum AtFlush {
    /// Send the request again now.
    Retry,
    /// The backend is down: keep the request, and the later ones of the
    /// flush without an attempt until the probe.
    Down,
    /// A quick retry's wait was cut short (a stop, the flush's deadline,
    /// queue pressure): kept, the backend down until the wait's end.
    KeptInsteadOfWaiting(Instant),
    /// As any failed attempt: the retry policy decides.
    AsAnyFailure,
}

/// Why a request was kept rather than sent or settled.
#[derive(Clone, Debug, PartialEq, Eq)]
enum KeptFor {
    /// It failed and its retries ran out (or it had one attempt): the
    /// backend's reason.
    Failed(String),
    /// Anything else: not sent (the backend counted down), kept instead of
    /// waiting, stopping, refused for who sent it.
    Other,
}

impl Delivery {
    pub fn new(
        transport: Box<dyn Transport>,
        spool: SpoolDir,
        export_timeout: Duration,
        max_request_bytes: usize,
    ) -> Delivery {
        let mut spool = spool;
        spool.set_sender(transport.sender_fingerprint());
        spool.set_refusal_fingerprint(transport.refusal_fingerprint());
        if !transport.delivers() {
            spool.take_only_own();
        }
        Delivery {
            transport,
            spool,
            policy: RetryPolicy::new(export_timeout),
            max_request_bytes,
            lone_ceiling: max_request_bytes,
            lone_lesson: None,
            rng: crate::span::clock::monotonic_ns() | 1,
            down_until: None,
            journal: None,
            attempting_journaled: false,
            gzip: None,
            misdirected: false,
            replay_refusals: 0,
            replay_held_until: None,
            accepted_requests: 0,
            asked_to_wait: false,
            kept_for: None,
            keep_all: None,
            marks: None,
            refused_by: None,
            refused_waiting: None,
            next_renewal_look: None,
            one_attempt: false,
            silent: false,
            fresh_hung: false,
            spans_hang: false,
            transient_refuses: None,
            shared_counted: DepthCounted::default(),
            shared_to_cut: Vec::new(),
            probes: ProbeCount::default(),
            probe_first: None,
            judged: None,
            vouched: None,
        }
    }

    /// Lets a span that alone is over `max_request_bytes` go whole in a
    /// request of its own, up to `LONE_SPAN_CEILING` or half the spool's
    /// cap (less its file header) if that is less: a request within half
    /// the cap is kept whole when the backend is away (`keep` writes larger
    /// ones in parts of half the cap and cuts a lone span to it), and
    /// keeping it evicts no more than half the spool.
    pub fn send_lone_spans_whole(&mut self) {
        self.send_lone_spans_whole_up_to(LONE_SPAN_CEILING);
    }

    /// `send_lone_spans_whole` with another ceiling: for the file sink,
    /// the longest line `spanguard show` reads, less its newline.
    pub fn send_lone_spans_whole_up_to(&mut self, ceiling: usize) {
        let half_cap = (self.spool.max_bytes() / 2).min(usize::MAX as u64) as usize;
        self.lone_ceiling = half_cap
            .saturating_sub(HEADER_LEN)
            .min(ceiling)
            .max(self.max_request_bytes);
    }

    /// How large (before compression) a request of one span over
    /// `max_request_bytes` may be encoded (`RequestEncoder::set_lone_limit`):
    /// the ceiling, or, while the server's 413s are remembered, the largest
    /// it took once it refused one (never under `max_request_bytes`), so
    /// that a strict backend is not sent, and refused, every long span
    /// whole before it is cut.
    pub fn lone_span_limit(&mut self) -> usize {
        self.lone_lesson = self
            .lone_lesson
            .filter(|l| l.at.elapsed() < LONE_LESSON_HOLDS);
        match self.lone_lesson {
            None => self.lone_ceiling,
            Some(l) => l
                .accepted
                .max(self.max_request_bytes)
                .min(self.lone_ceiling),
        }
    }

    /// The server refused a request of one span of `plain` bytes for its
    /// size. A size it took before and refuses now (its limit lowered)
    /// is no longer known to pass.
    fn learn_refused(&mut self, plain: usize) {
        let lesson = match self.lone_lesson {
            Some(l) if l.at.elapsed() < LONE_LESSON_HOLDS => LoneSpanLesson {
                refused: l.refused.min(plain),
                accepted: if l.accepted >= plain { 0 } else { l.accepted },
                at: Instant::now(),
            },
            _ => LoneSpanLesson {
                refused: plain,
                accepted: 0,
                at: Instant::now(),
            },
        };
        self.lone_lesson = Some(lesson);
    }

    /// The server took a request of one span of `plain` bytes, cut after a
    /// refusal.
    fn learn_accepted(&mut self, plain: usize) {
        if let Some(l) = &mut self.lone_lesson
            && plain < l.refused
        {
            l.accepted = l.accepted.max(plain);
        }
    }

    /// The destination, with no credentials in it.
    pub fn target(&self) -> String {
        self.transport.describe()
    }

    /// The last request sent got no answer from any server (refused,
    /// unresolved, closed unanswered, timed out), and none came since.
    pub fn silent(&self) -> bool {
        self.silent
    }

    /// Lets the next request go now, though the backend counts as down
    /// for a moment still: a stopping exporter's one probe of a backend
    /// that gave no answer (no Retry-After to honour), sent at once and
    /// given at most `PROBE_TIMEOUT` (`attempt`), rather than after a wait
    /// that a refused connection does not need.
    pub fn probe_now(&mut self) {
        if self.silent {
            self.down_until = None;
        }
    }

    pub fn spool(&self) -> &SpoolDir {
        &self.spool
    }

    /// The probes sent so far (a replay's, or before a batch while the
    /// backend gave no answer), and how many were taken.
    pub fn probes(&self) -> ProbeCount {
        self.probes
    }

    /// What the transport moved out of its way since the last call
    /// (`Transport::take_set_aside`).
    pub fn take_transport_set_aside(&mut self) -> Vec<crate::buffer::files::SetAside> {
        self.transport.take_set_aside()
    }

    /// When the backend may be tried again, while it counts as down.
    pub fn down_until(&self) -> Option<Instant> {
        self.down_until.filter(|&t| t > Instant::now())
    }

    /// When a replay may judge the spool file that failed with the
    /// server's Retry-After (`judged`): the end of that wait, the probe
    /// then sent first. None when no failure awaits the backend's word.
    /// The exporter replays again anyway; a one-shot replay (`spanguard
    /// replay`) has no next replay unless it waits for this and makes one.
    pub fn judged_after(&self) -> Option<Instant> {
        self.judged.as_ref().and(self.down_until)
    }

    /// When the spool may be replayed next, while that is later than now:
    /// the backend is down, or it refused the last replay for who sent it
    /// or where (`REPLAY_AFTER_REFUSAL`).
    pub fn replay_held_until(&self) -> Option<Instant> {
        let held = self.replay_held_until.filter(|&t| t > Instant::now());
        self.down_until().max(held)
    }

    /// From now on every request is kept in the spool at once, for
    /// `reason`, and none is sent: a stand-in exporter's, whose transport
    /// is what the stuck exporter is stuck in (`export::stand_in`).
    pub fn keep_everything(&mut self, reason: String) {
        self.keep_all = Some(reason);
    }

    /// Marks each request from now on (`export::stand_in`).
    pub fn mark_requests(&mut self, marks: super::stand_in::RequestMarks) {
        self.marks = Some(marks);
    }

    /// Gives the delivery the flight recorder's journal of the next fresh
    /// request: kept as its spool file if the request is kept, deleted
    /// otherwise.
    pub fn set_journal(&mut self, journal: Option<Journal>) {
        self.journal = journal;
    }

    /// Lets go of the journal of a request whose delivery ended midway (a
    /// panic caught): left for a replay, as an ordinary spool file.
    pub fn let_go_of_journal(&mut self) {
        if let Some(journal) = self.journal.take() {
            self.spool.let_go_of_journal(journal);
        }
    }

    /// Delivers one request, or keeps or splits it, and records the fate of
    /// every span. For a spool file, true means the file is done with (it
    /// may be deleted); false that it stays.
    pub fn deliver(&mut self, request: &Request, host: &mut dyn DeliveryHost) -> bool {
        self.deliver_with(request, host, false)
    }

    /// `deliver`, with one attempt and no retries if `one_attempt`. Every
    /// request starts with the modes of a replay's split (`one_attempt`,
    /// `transient_refuses`) set as they must be, whatever a panic left.
    fn deliver_with(
        &mut self,
        request: &Request,
        host: &mut dyn DeliveryHost,
        one_attempt: bool,
    ) -> bool {
        self.one_attempt = one_attempt;
        self.transient_refuses = None;
        let done = self.settle(request, host, true);
        self.one_attempt = false;
        if let Some(journal) = self.journal.take() {
            // Not kept as a spool file: its spans went elsewhere.
            self.spool.forget(journal);
        }
        done
    }

    fn settle(&mut self, request: &Request, host: &mut dyn DeliveryHost, whole: bool) -> bool {
        self.attempting_journaled = whole;
        let fate = self.attempt(request, host);
        self.attempting_journaled = false;
        // A part settled whole (not split further): the first spans of
        // what the journal still holds, parts going in their order.
        let settled_part = !whole && !matches!(fate, Fate::Split(..));
        let done = self.follow(fate, request, host, whole);
        if settled_part {
            self.journal_settled(request.spans);
        }
        done
    }

    /// Takes the first `spans` spans, settled (delivered, kept in a spool
    /// file of their own, or lost and counted), out of the journal of the
    /// request being delivered in parts (a 413 splits it): the journal
    /// held the whole request until every part was settled, and a SIGKILL
    /// after the first part was acknowledged sent that part again from
    /// it. Replaced in one rename (`SpoolDir::replace_journal`), or
    /// deleted once nothing is left. When it cannot be rewritten (the
    /// disk full), it keeps what it held: spans sent twice after a kill,
    /// never lost.
    fn journal_settled(&mut self, spans: u64) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        let gzip = self.gzip.get_or_insert_with(GzipWriter::new);
        let Some(rest) = super::spool::read_journal(&journal, self.spool.read_limit())
            .and_then(|batch| rest_after(&batch, spans, gzip).map(|rest| (batch, rest)))
        else {
            self.journal = Some(journal);
            return;
        };
        let (batch, rest) = match rest {
            (_, None) => {
                self.spool.forget(journal);
                return;
            }
            (batch, Some(rest)) => (batch, rest),
        };
        let counted = rest.1;
        self.journal = match self.spool.replace_journal(
            journal,
            batch.format,
            batch.gzipped,
            (rest.0.spans.min(u32::MAX as u64) as u32, counted),
            &rest.0.body,
        ) {
            Ok(replaced) => Some(replaced),
            Err((kept, _)) => Some(kept),
        };
    }

    /// Does what an attempt's fate asks of the request.
    fn follow(
        &mut self,
        fate: Fate,
        request: &Request,
        host: &mut dyn DeliveryHost,
        whole: bool,
    ) -> bool {
        match fate {
            Fate::Done | Fate::Refused => true,
            Fate::RefusedData(reason) => {
                self.settle_refused(request, reason, host);
                true
            }
            Fate::TooLarge(reason) => {
                self.settle_cut(request, reason, host, None, &SizeCuts::default())
            }
            Fate::Split(first, second) => {
                let counted = counted_in_parts(request, &first, &second);
                for (part, cut_counted) in [first, second].iter().zip(counted) {
                    let piece = Request {
                        body: &part.body,
                        spans: part.spans,
                        origin: request.origin.of_part(),
                        cut_counted,
                        ..*request
                    };
                    self.settle(&piece, host, false);
                }
                true
            }
            Fate::Keep(reason) => self.keep(request, &reason, host, whole),
            Fate::KeepForOtherSender(reason) => {
                self.refused_by = self.transport.refusal_fingerprint();
                let done = self.keep(request, &reason, host, whole);
                self.refused_by = None;
                self.refused_waiting = Some(true);
                done
            }
        }
    }

    /// A one-span request the server refused for its size goes again with
    /// its values cut, to half the size refused each time, until it is
    /// accepted (or kept, or refused otherwise) or nothing is left to cut:
    /// ids, times and small attributes arrive, as for a span over
    /// `max_request_bytes`. Each cut is made from the request as it came,
    /// so a value is counted cut once however many tries it took, and once
    /// too when it came cut (`Request::cut_counted`). `emptied`: values a
    /// depth cut emptied in `request` before (`rescue_deep`), counted
    /// with the values cut now, when the span is delivered or kept; and
    /// `cut_before` what an earlier cut to a size shortened and did not
    /// count (a 413, then a refusal for the depth). A cut piece refused
    /// for good, not yet cut to a depth, goes through `rescue_deep`: a
    /// span too large and too deep for the server is both. So does the
    /// request when no cut to a size is small enough: its deep value may
    /// be what makes it too large, and emptied past `SAFE_VALUE_DEPTH`,
    /// then cut to a size, it may fit. True: a spool file it came from is
    /// done with (its span went elsewhere).
    fn settle_cut(
        &mut self,
        request: &Request,
        mut reason: String,
        host: &mut dyn DeliveryHost,
        emptied: Option<&Emptied>,
        cut_before: &SizeCuts,
    ) -> bool {
        let plain = plain_body(request.body, request.gzipped);
        let mut last = plain.as_ref().map_or(0, Vec::len);
        let lone = request.spans == 1 && last > 0;
        if lone {
            self.learn_refused(last);
        }
        // The smallest request of it the server refused, as sent: the
        // nearest this side knows of the server's limit, said when even
        // that was too large.
        let mut smallest_refused = request.body.len();
        loop {
            let cut = plain
                .as_deref()
                .and_then(|p| cut_to_fit(p, request.format, last / 2, request.cut_counted))
                .filter(|c| c.body.len() < last);
            let Some(cut) = cut else {
                let reason = format!(
                    "{reason} (one span, or a request that cannot be split, is over the \
                     backend's size limit even with its values cut: the limit is under \
                     {smallest_refused} bytes, the smallest of its requests refused)"
                );
                // Not yet cut to a depth: the request as it came, cut so
                // (and to a size again if need be), counting only the cuts
                // of what arrives.
                let lost = match emptied {
                    None => self.rescue_deep(request, reason, host, cut_before),
                    Some(_) => Some(reason),
                };
                if let Some(reason) = lost {
                    host.record(Outcome::Lost {
                        origin: request.origin,
                        spans: request.spans,
                        reason: &reason,
                    });
                }
                return true;
            };
            last = cut.body.len();
            let size = cut_before.and(&cut);
            let body = if request.gzipped {
                let mut packed = Vec::new();
                self.gzip
                    .get_or_insert_with(GzipWriter::new)
                    .compress(&cut.body, &mut packed);
                packed
            } else {
                cut.body
            };
            let piece = Request {
                body: &body,
                origin: request.origin.of_part(),
                cut_counted: cut.shortened,
                ..*request
            };
            match self.attempt(&piece, host) {
                Fate::TooLarge(again) => {
                    if lone {
                        self.learn_refused(last);
                    }
                    smallest_refused = smallest_refused.min(body.len());
                    reason = again
                }
                // A lost span's values are not counted as cut.
                Fate::Refused => return true,
                // Refused for good, maybe for a value too deep for the
                // server's decoder (the whole span was too large to say):
                // cut to the depth too, its values counted if it goes.
                Fate::RefusedData(reason) if emptied.is_none() => {
                    if let Some(why) = self.rescue_deep(&piece, reason, host, &size) {
                        host.record(Outcome::Lost {
                            origin: piece.origin,
                            spans: piece.spans,
                            reason: &why,
                        });
                    }
                    return true;
                }
                Fate::RefusedData(reason) => {
                    host.record(Outcome::Lost {
                        origin: piece.origin,
                        spans: piece.spans,
                        reason: &reason,
                    });
                    return true;
                }
                fate => {
                    if lone && matches!(fate, Fate::Done) {
                        self.learn_accepted(last);
                    }
                    let taken = matches!(fate, Fate::Done);
                    self.count_cuts(&piece, &size, emptied, taken, host);
                    // Kept, its spool file names the values counted cut
                    // now as well as before, for its replay's depth rescue.
                    let at = places_and(request.cut_at, &size.at);
                    let piece = Request {
                        cut_at: &at,
                        ..piece
                    };
                    self.follow(fate, &piece, host, false);
                    return true;
                }
            }
        }
    }

    /// A request the server refused for good for what it holds (HTTP 400,
    /// 500, ...). A server may refuse a whole request for one span it cannot
    /// take: a protobuf decoder's nesting limit (Python's, Java's and C++'s
    /// stop at 100 messages deep, and an attribute value nested 64 deep,
    /// the default `attribute_value_depth_limit`, goes past it) or a
    /// check of its own on each span. Counted lost whole, that span cost
    /// the other spans of its batch, and of every batch it landed in.
    ///
    /// So a request of more than one span is split in two and each half
    /// sent; a half refused while the other is taken is split again, until
    /// the span refused is alone: one such span in n costs about 2 log2(n)
    /// requests more. When both halves are refused, the server refuses more
    /// than one span of them, or all it is sent (a wrong kind of server):
    /// both are counted lost, not split further, which bounds what a server
    /// refusing everything costs to three requests a batch, not 2n.
    ///
    /// OTLP/HTTP says a client must not retry a request answered 400 (nor
    /// any final answer): none is. Each half is another request, holding
    /// other data; the refused request itself is never sent again.
    ///
    /// Every span ends delivered, kept, rejected or lost as its part did;
    /// the lost are counted last, saying how many of the others arrived.
    fn settle_refused(&mut self, request: &Request, reason: String, host: &mut dyn DeliveryHost) {
        let mut losses: Vec<Refusal> = Vec::new();
        let mut tally = Tally {
            host: &mut *host,
            delivered: 0,
        };
        self.bisect_refused(request, reason, &mut tally, &mut losses);
        let delivered = tally.delivered;
        let lost: u64 = losses.iter().map(|l| l.spans).sum();
        let others = request.spans.saturating_sub(lost);
        let note = match (others, delivered) {
            (0, _) => String::new(),
            (o, d) if o == d => {
                format!(" (the other {o} of its request delivered after splitting it)")
            }
            (o, d) => {
                format!(" (of the other {o} of its request, {d} delivered after splitting it)")
            }
        };
        for loss in losses {
            let both = if loss.both_halves {
                " (sent again as two halves, both refused: more than one span it cannot \
                 take, or it takes none of them, so not split further)"
            } else {
                ""
            };
            host.record(Outcome::Lost {
                origin: loss.origin,
                spans: loss.spans,
                reason: &format!("{}{both}{note}", loss.reason),
            });
        }
    }

    /// `settle_refused`'s search: `request` was refused for `reason`; what
    /// is to be counted lost goes to `losses` (one entry a reason, summed).
    fn bisect_refused(
        &mut self,
        request: &Request,
        reason: String,
        host: &mut dyn DeliveryHost,
        losses: &mut Vec<Refusal>,
    ) {
        let halves = if request.spans > 1 {
            self.split(request)
        } else {
            None
        };
        let Some((a, b)) = halves else {
            // One span (or a body that cannot be read to split it).
            if let Some(reason) = self.rescue_deep(request, reason, host, &SizeCuts::default()) {
                add_loss(losses, request.origin, request.spans, reason, false);
            }
            return;
        };
        let counted = counted_in_parts(request, &a, &b);
        let mut refused = Vec::new();
        for (part, cut_counted) in [a, b].into_iter().zip(counted) {
            let piece = Request {
                body: &part.body,
                spans: part.spans,
                origin: request.origin.of_part(),
                cut_counted,
                ..*request
            };
            match self.attempt(&piece, host) {
                Fate::RefusedData(why) => refused.push((part, cut_counted, why)),
                fate => {
                    self.follow(fate, &piece, host, false);
                }
            }
        }
        if refused.len() == 2 && self.transient_refuses.is_some() {
            // Both halves failed for now: the backend may have gone down
            // just now, or each holds a span it never takes. Kept (new
            // spool files, each counted again), not lost on a guess.
            for (part, cut_counted, why) in refused {
                let piece = Request {
                    body: &part.body,
                    spans: part.spans,
                    origin: request.origin.of_part(),
                    cut_counted,
                    ..*request
                };
                self.keep(&piece, &why, host, false);
            }
        } else if refused.len() == 2 {
            for (part, cut_counted, why) in refused {
                let piece = Request {
                    body: &part.body,
                    spans: part.spans,
                    origin: request.origin.of_part(),
                    cut_counted,
                    ..*request
                };
                if let Some(why) = self.rescue_deep(&piece, why, host, &SizeCuts::default()) {
                    add_loss(losses, piece.origin, part.spans, why, true);
                }
            }
        } else if let Some((part, cut_counted, why)) = refused.pop() {
            let piece = Request {
                body: &part.body,
                spans: part.spans,
                origin: request.origin.of_part(),
                cut_counted,
                ..*request
            };
            self.bisect_refused(&piece, why, host, losses);
        }
    }

    /// Spans `bisect_refused` is about to count lost (a lone span, or a
    /// part refused along with the other half) that hold arrays or maps
    /// nested deeper than `SAFE_VALUE_DEPTH` are sent once more with
    /// those replaced by the empty value, as a tracer whose
    /// `value_depth_limit` were that low stores them: a receiver whose
    /// protobuf decoder stops at 100 messages (Python's, Java's, C++'s)
    /// refuses a value nested past about 31 maps or 47 arrays, which
    /// OpenTelemetry's default depth limit of 64 lets through. The
    /// resource's and scopes' values too: every request carries them, so
    /// one that deep had every request refused, and the spans of none
    /// could be found to blame. Taken, they are delivered and the values
    /// cut counted as truncated, once each as the depth limit counts them
    /// (a resource's or scope's once, not once a request); refused again,
    /// lost as before. A part with no value that deep costs no request
    /// more, any other one request more at most (and what a 413 on it
    /// asks). None: counted (delivered, kept, or lost); otherwise the
    /// reason to count `request` lost for. `cut_before`: values of a lone
    /// span a 413 cut to a size (`settle_cut`) before it was refused for
    /// the depth, counted with the emptied ones (a value cut both ways
    /// once).
    fn rescue_deep(
        &mut self,
        request: &Request,
        reason: String,
        host: &mut dyn DeliveryHost,
        cut_before: &SizeCuts,
    ) -> Option<String> {
        let cut = plain_body(request.body, request.gzipped)
            .and_then(|plain| cut_deep(&plain, request.format, SAFE_VALUE_DEPTH));
        let Some(cut) = cut else {
            return Some(reason);
        };
        let body = if request.gzipped {
            let mut packed = Vec::new();
            self.gzip
                .get_or_insert_with(GzipWriter::new)
                .compress(&cut.body, &mut packed);
            packed
        } else {
            cut.body
        };
        let piece = Request {
            body: &body,
            // Kept, it is written to a spool file of its own: a spool
            // file it came from is done with once refused.
            origin: request.origin.of_part(),
            ..*request
        };
        match self.attempt(&piece, host) {
            Fate::RefusedData(again) => Some(format!(
                "{again} (sent again with its values' arrays and maps nested deeper than \
                 {SAFE_VALUE_DEPTH} levels emptied, for a decoder's nesting limit: refused \
                 again)"
            )),
            // Lost for who sends or where, counted by `attempt`.
            Fate::Refused => None,
            // One span over the server's size limit: its 413 path cuts
            // its values to a size, and counts these with its own once
            // the span is delivered or kept (a span it loses has no value
            // counted cut).
            Fate::TooLarge(why) => {
                self.settle_cut(&piece, why, host, Some(&cut.emptied), cut_before);
                None
            }
            // Spans over the server's size limit: each half of `request`
            // goes as it came, cut to the depth on its own, so that each
            // half counts the values it holds, once it is delivered.
            Fate::Split(..) => {
                let Some((a, b)) = self.split(request) else {
                    return Some(reason);
                };
                let counted = counted_in_parts(request, &a, &b);
                for (part, cut_counted) in [a, b].iter().zip(counted) {
                    let half = Request {
                        body: &part.body,
                        spans: part.spans,
                        origin: request.origin.of_part(),
                        cut_counted,
                        ..*request
                    };
                    let deep = plain_body(half.body, half.gzipped)
                        .and_then(|plain| cut_deep(&plain, half.format, SAFE_VALUE_DEPTH));
                    if deep.is_none() {
                        // Nothing that deep in it: refused, it is split
                        // for what it holds as any request is.
                        self.settle(&half, host, false);
                    } else if let Some(why) =
                        self.rescue_deep(&half, reason.clone(), host, &SizeCuts::default())
                    {
                        host.record(Outcome::Lost {
                            origin: half.origin,
                            spans: half.spans,
                            reason: &why,
                        });
                    }
                }
                None
            }
            // Taken or kept (`Done`, `Keep`): its values are counted cut.
            // Kept, no later step counts them: a spool file holds them cut.
            fate => {
                let taken = matches!(fate, Fate::Done);
                self.count_cuts(&piece, cut_before, Some(&cut.emptied), taken, host);
                self.follow(fate, &piece, host, false);
                None
            }
        }
    }

    /// Counts the cuts of spans delivered or kept: `size`, the values cuts
    /// to a size shortened (a 413's), and `emptied`, those a depth cut
    /// emptied arrays or maps in. One attribute value cut both ways (a
    /// prompt and a list 40 deep in one map) is one value cut, counted
    /// once, as the tracer counts a value its length and depth limits
    /// both cut: with the values emptied, said as such (the values cut to
    /// a size are the strings cut, maybe several a value). A value the
    /// encoders' cut before (`Request::cut_at`, counted then) is counted
    /// no more when emptied; so is one a cut to a size shortened again
    /// without counting it (none of this cut's strings to take it from).
    fn count_cuts(
        &mut self,
        request: &Request,
        size: &SizeCuts,
        emptied: Option<&Emptied>,
        taken: bool,
        host: &mut dyn DeliveryHost,
    ) {
        let origin = request.origin;
        // Emptied values the encoder's cut counted, and of the others
        // those a cut to a size shortened too.
        let (before, both) = emptied.map_or((0, 0), |e| {
            let before = e.at.iter().filter(|at| request.cut_at.contains(at));
            let others = e.at.iter().filter(|at| !request.cut_at.contains(at));
            let both = others.filter(|at| size.at.contains(at)).count() as u64;
            (before.count() as u64, both)
        });
        let from_size = both.min(size.values);
        if size.values > from_size || emptied.is_none() {
            host.record(Outcome::Cut {
                origin,
                values: size.values - from_size,
                limit: TOO_LARGE_LIMIT,
            });
        }
        if let Some(emptied) = emptied {
            self.count_emptied(origin, emptied, before + both - from_size, taken, host);
        }
    }

    /// Counts the values a depth cut emptied in spans delivered or kept:
    /// the spans' own, and the resource's and scopes' not counted before.
    /// `taken`: the server took them so; a fresh request's resource and
    /// scopes are then the exporter's, to cut before sending from now on.
    fn count_emptied(
        &mut self,
        origin: Origin,
        emptied: &Emptied,
        counted: u64,
        taken: bool,
        host: &mut dyn DeliveryHost,
    ) {
        let mut shared = 0;
        for cut in &emptied.shared {
            if self.shared_counted.count(cut.key) {
                shared += cut.values;
            }
            if taken
                && origin.is_fresh()
                && !self.shared_to_cut.contains(&cut.of)
                && self.shared_to_cut.len() < MAX_SHARED_TO_CUT
            {
                self.shared_to_cut.push(cut.of.clone());
            }
        }
        host.record(Outcome::Emptied {
            origin,
            values: emptied.values.saturating_sub(counted),
            shared,
            depth: SAFE_VALUE_DEPTH,
        });
    }

    /// The exporter's resource and scope messages (`SharedMsg`) that the
    /// server refused for values nested past `SAFE_VALUE_DEPTH` and took
    /// cut to it since last asked (counted already): the exporter cuts
    /// them so before encoding (`ResourceInfo::cut_to_depth`), so that a
    /// batch costs one request, not the refusals that found them.
    pub fn take_shared_depth_cut(&mut self) -> Vec<SharedMsg> {
        std::mem::take(&mut self.shared_to_cut)
    }

    /// Sends until accepted, refused, or there is no point waiting longer.
    fn attempt(&mut self, request: &Request, host: &mut dyn DeliveryHost) -> Fate {
        // A spooled request from a run with a larger limit goes in parts.
        // One span goes as it is (not decoded to learn it cannot be split):
        // only a 413 cuts it.
        if request.body.len() > self.max_request_bytes
            && request.spans != 1
            && let Some((a, b)) = self.split(request)
        {
            return Fate::Split(a, b);
        }
        self.kept_for = Some(KeptFor::Other);
        if let Some(reason) = &self.keep_all {
            return Fate::Keep(reason.clone());
        }
        if let Some(until) = self.down_until() {
            let left = until.saturating_duration_since(Instant::now());
            let why = self.transport.not_taking();
            return Fate::Keep(format!(
                "{}; next try in {} ms",
                why.as_deref().unwrap_or("the backend is down"),
                left.as_millis()
            ));
        }
        // A probe found the backend silent (no answer, nothing taken
        // since: `probe_first`), and its probe interval is over. A
        // background batch went with a whole request timeout (retried
        // within the export budget) to a backend that accepts and never
        // answers: seconds of the exporter thread at every probe moment,
        // before the replay's probe (1 s) learnt the same. The probe goes
        // first, as before a replay's files: taken, the batch gets its
        // whole timeout (a slow but healthy backend answers in it); not,
        // the batch is kept without an attempt. A flush's or shutdown's
        // batch is that probe itself already (`PROBE_TIMEOUT`, `silent`).
        if self.silent
            && !host.awaited()
            && let Some(format) = self.probe_first
            && self.probe(format) == ProbeAnswer::Failed
        {
            return Fate::Keep(
                "the backend gave no answer to the probe before this request".to_string(),
            );
        }
        let started = Instant::now();
        let mut attempt = 0u32;
        // At a flush or shutdown (`host.awaited()`), the quick retries of
        // a request no server took so far, and whether a request that got
        // no answer was probed (see `silence_at_flush`). A backend already
        // silent before this request is probed by its first attempt.
        let mut quick = 0usize;
        let mut probed = self.silent || self.spans_hang;
        loop {
            attempt += 1;
            if (self.silent || self.spans_hang) && host.awaited() {
                self.transport.limit_next(super::retry::PROBE_TIMEOUT);
            }
            let (sent, silence) = self.send(request.body, request.format, request.gzipped);
            match silence {
                Silence::Answered => {
                    self.fresh_hung = false;
                    self.spans_hang = false;
                }
                Silence::TimedOut if request.origin.is_fresh() => self.fresh_hung = true,
                _ => {}
            }
            match sent {
                Ok(accepted) => {
                    self.down_until = None;
                    self.backend_took();
                    self.accepted_requests += 1;
                    // The server takes what this sender sends (a token set
                    // right, the path fixed): the spool may go now.
                    self.replay_refusals = 0;
                    self.replay_held_until = None;
                    let rejected = accepted.rejected_spans.min(request.spans);
                    if self.attempting_journaled
                        && let Some(journal) = self.journal.take()
                    {
                        // Acknowledged, every span (taken or rejected for
                        // good): marked delivered in the flight recorder
                        // before anyone is told, since the telling runs
                        // the application's callback and writes stderr,
                        // which may take their time. A SIGKILL meanwhile
                        // sent the batch again from this journal. (The
                        // batch's slots were freed when it was encoded.)
                        self.spool.forget(journal);
                    }
                    host.record(Outcome::Delivered {
                        origin: request.origin,
                        spans: request.spans - rejected,
                        bytes: request.body.len() as u64,
                    });
                    if rejected > 0 {
                        host.record(Outcome::Rejected {
                            origin: request.origin,
                            spans: rejected,
                            message: &accepted.message,
                        });
                    } else if !accepted.message.is_empty() {
                        // The spec's warning: the server wants it seen
                        // (OTel's SDKs log it); it was dropped in silence.
                        host.record(Outcome::Warned {
                            origin: request.origin,
                            spans: request.spans,
                            message: &accepted.message,
                        });
                    }
                    return Fate::Done;
                }
                Err(SendError::Misdirected { reason })
                    if request.origin != Origin::SpoolFile
                        && self.transport.sender_fingerprint().is_some() =>
                {
                    // A real answer: the backend is up, and this sender
                    // sending this data again would be refused again (and
                    // OTLP forbids it). But the refusal is of the sender,
                    // not of the spans: a first run with the API key
                    // missing, or a URL without /v1/traces, lost all its
                    // spans. They are kept in spool files that name this
                    // sender's fingerprint: it never sends them, in this
                    // process or a next one set up alike; one set up
                    // otherwise (the key or the URL fixed, `spanguard
                    // replay --endpoint ... --headers ...`) does. Recorded
                    // as kept alone, not also as a failed attempt (the
                    // one cause said twice), and the answer starts no
                    // outage streak. Refused for who sends or where, it
                    // refuses any part alike: never split. The reason as
                    // the server gave it: the line that tells of it says
                    // where they are kept and for what (with "; kept for a
                    // sender set up otherwise" here, it said so twice).
                    // Spans recovered from a crash dump, or parts of a
                    // spool file, are kept so too: written to the spool
                    // as a plain batch, they were said "kept until the
                    // backend answers" (it had: it refused), and this
                    // sender sent them again to be refused again.
                    self.down_until = None;
                    return Fate::KeepForOtherSender(reason);
                }
                Err(SendError::Misdirected { reason }) if !request.origin.is_fresh() => {
                    // A spool file refused for who sent it or where, not
                    // for what it holds: a token missing or expired,
                    // `spanguard replay` run without its --headers or with
                    // a base URL. It stays where it is for a sender set up
                    // right; deleted, every spooled span was lost to a
                    // forgotten flag.
                    self.down_until = None;
                    self.misdirected = true;
                    host.record(Outcome::AttemptFailed { reason: &reason });
                    return Fate::Keep(format!(
                        "{reason}; spans from the spool kept for a sender set up right"
                    ));
                }
                Err(SendError::Misdirected { reason }) => {
                    // A sender with nothing to tell it from a corrected
                    // one (no fingerprint): kept, this sender would send
                    // them again. Recorded as the loss alone, not also as
                    // a failed attempt: stderr said the one cause twice
                    // ("export failed: HTTP 404", then "13 spans lost:
                    // HTTP 404"), and the answer starts no outage streak.
                    // Refused for who sends or where, it refuses any part
                    // alike: never split.
                    self.down_until = None;
                    host.record(Outcome::Lost {
                        origin: request.origin,
                        spans: request.spans,
                        reason: &reason,
                    });
                    return Fate::Refused;
                }
                Err(SendError::Permanent { reason }) => {
                    // As above, but perhaps for one span of the request:
                    // counted by `settle_refused`, which looks for it.
                    self.down_until = None;
                    return Fate::RefusedData(reason);
                }
                Err(SendError::TooLarge { reason }) => {
                    self.down_until = None;
                    host.record(Outcome::AttemptFailed { reason: &reason });
                    if let Some((a, b)) = self.split(request) {
                        return Fate::Split(a, b);
                    }
                    return Fate::TooLarge(reason);
                }
                Err(SendError::Transient {
                    reason,
                    retry_after,
                }) => {
                    if let Some(setbacks) = self.transient_refuses {
                        return Fate::RefusedData(never_taken(&reason, setbacks));
                    }
                    self.asked_to_wait = retry_after.is_some();
                    host.record(Outcome::AttemptFailed { reason: &reason });
                    if host.stopping() {
                        self.down_until =
                            Some(instant_after(Instant::now(), super::retry::PROBE_INTERVAL));
                        return Fate::Keep(format!("{reason}; stopping"));
                    }
                    if host.awaited() && !self.one_attempt {
                        match self.silence_at_flush(silence, &mut quick, &mut probed, host) {
                            AtFlush::Retry => continue,
                            AtFlush::Down => {
                                self.down_until = Some(instant_after(
                                    Instant::now(),
                                    super::retry::PROBE_INTERVAL,
                                ));
                                self.kept_for = Some(KeptFor::Failed(reason.clone()));
                                return Fate::Keep(reason);
                            }
                            AtFlush::KeptInsteadOfWaiting(until) => {
                                self.down_until = Some(until);
                                self.kept_for = Some(KeptFor::Failed(reason.clone()));
                                return Fate::Keep(format!("{reason}; kept instead of waiting"));
                            }
                            AtFlush::AsAnyFailure => {}
                        }
                    }
                    let random = self.next_random();
                    let step = match self.one_attempt {
                        // Past any budget: give up now, the server's
                        // Retry-After honoured as after the last retry.
                        true => {
                            self.policy
                                .after_failure(attempt, retry_after, Duration::MAX, random)
                        }
                        false => self.policy.after_failure(
                            attempt,
                            retry_after,
                            started.elapsed(),
                            random,
                        ),
                    };
                    match step {
                        RetryStep::Wait(wait) => {
                            let wait_started = Instant::now();
                            if host.wait(wait) {
                                host.record(Outcome::Retrying { wait });
                                continue;
                            }
                            // Kept rather than waited for; later requests
                            // are kept too until the wait would have ended.
                            // A failure all the same: a spool file so kept
                            // (a half-full queue while it hung until its
                            // timeout) is set back as any other, not left
                            // first for the next replay to send first.
                            self.down_until = Some(instant_after(wait_started, wait));
                            self.kept_for = Some(KeptFor::Failed(reason.clone()));
                            return Fate::Keep(format!("{reason}; kept instead of waiting"));
                        }
                        RetryStep::GiveUp { down_for } => {
                            self.down_until = Some(instant_after(Instant::now(), down_for));
                            self.kept_for = Some(KeptFor::Failed(reason.clone()));
                            return Fate::Keep(reason);
                        }
                    }
                }
            }
        }
    }

    /// What a flush or shutdown waiting for a request does after it failed
    /// with `silence` (no answer, or an answer that was a failure): the
    /// rule that tells a backend that is down from a blip.
    ///
    /// - No server took the request (`NoServer`: refused, unresolved,
    ///   closed before a byte of answer). Learning it costs milliseconds:
    ///   retried at once after 50, 100, 200 and 400 ms (`QUICK_RETRIES`,
    ///   0.75 s in all), not backed off until the caller's deadline. A
    ///   blip (a collector restarting, one dropped connection) is over by
    ///   then and the spans are delivered; still no server, the backend is
    ///   down: the request is kept in the spool and the backend counted
    ///   down for `PROBE_INTERVAL`, so the later requests of the flush are
    ///   kept without an attempt and it returns.
    /// - A server took it and did not answer in time (`TimedOut`). Sent
    ///   again once at once, given `PROBE_TIMEOUT` (1 s) at most, not a
    ///   whole request timeout: a hang that was a blip answers it and the
    ///   spans are delivered; a backend that accepts and never answers has
    ///   cost one request timeout and a probe, then is down as above.
    /// - Abandoned at the caller's deadline (`Deadline`), or answered
    ///   (a 503, an answer broken off): as any failure, by the retry
    ///   policy, which a flush's deadline or a stop cuts short.
    ///
    /// While the last request got no answer (`silent`), the next one of a
    /// flush or shutdown is the probe, given `PROBE_TIMEOUT`, and it is not
    /// retried: the stop's one replay of the spool (`Exporter::
    /// replay_if_due`) still delivers what a blip during the flush spooled,
    /// at the cost of one probe.
    fn silence_at_flush(
        &mut self,
        silence: Silence,
        quick: &mut usize,
        probed: &mut bool,
        host: &mut dyn DeliveryHost,
    ) -> AtFlush {
        match silence {
            Silence::Answered | Silence::Deadline => AtFlush::AsAnyFailure,
            Silence::NoServer if *probed => AtFlush::Down,
            Silence::NoServer => {
                let Some(&wait) = super::retry::QUICK_RETRIES.get(*quick) else {
                    return AtFlush::Down;
                };
                *quick += 1;
                let wait_started = Instant::now();
                if !host.wait(wait) {
                    return AtFlush::KeptInsteadOfWaiting(instant_after(wait_started, wait));
                }
                host.record(Outcome::Retrying { wait });
                AtFlush::Retry
            }
            Silence::TimedOut if *probed => AtFlush::Down,
            Silence::TimedOut => {
                *probed = true;
                host.record(Outcome::Retrying {
                    wait: Duration::ZERO,
                });
                AtFlush::Retry
            }
        }
    }

    fn split(&mut self, request: &Request) -> Option<(Part, Part)> {
        let gzip = self.gzip.get_or_insert_with(GzipWriter::new);
        split_in_two(request.body, request.format, request.gzipped, gzip)
    }

    /// Keeps a request that could not be delivered now. Returns whether a
    /// spool file it came from may be deleted.
    fn keep(
        &mut self,
        request: &Request,
        reason: &str,
        host: &mut dyn DeliveryHost,
        whole: bool,
    ) -> bool {
        if request.origin == Origin::SpoolFile {
            host.record(Outcome::Kept {
                origin: request.origin,
                spans: request.spans,
                reason,
                written: false,
                for_other_sender: false,
            });
            return false;
        }
        let written = match self.journal.take() {
            // The flight recorder journaled this request already: its file
            // becomes the spool file (its lock goes when `journal` drops).
            Some(journal) if whole => match self.refused_by {
                Some(sender) => self.spool.keep_refused(journal, sender),
                None => Ok(self.spool.keep_journal(journal)),
            },
            journal => {
                self.journal = journal;
                // Larger than the spool's cap (max_request_bytes above it):
                // kept in parts rather than every span lost for the size of
                // the whole. Parts of at most half the cap, so that the cap's
                // eviction (the parts cannot all stay) takes as few spans as
                // it can: four 20 MB spans under 64 MiB keep three, not two.
                if !self.spool.fits(request.body.len())
                    && let Some((a, b)) = self.split(request)
                {
                    let counted = counted_in_parts(request, &a, &b);
                    for (part, cut_counted) in [a, b].iter().zip(counted) {
                        let piece = Request {
                            body: &part.body,
                            spans: part.spans,
                            origin: request.origin.of_part(),
                            cut_counted,
                            ..*request
                        };
                        self.keep_in_parts(&piece, reason, host);
                    }
                    return true;
                }
                if !self.spool.fits(request.body.len()) {
                    // One span: kept cut, not lost.
                    self.keep_cut(request, reason, host);
                    return true;
                }
                self.spool.write_refused(
                    &SpooledBatch {
                        format: request.format,
                        gzipped: request.gzipped,
                        spans: request.spans.min(u32::MAX as u64) as u32,
                        cut_counted: request.cut_counted,
                        cut_at: request.cut_at.to_vec(),
                        body: request.body.to_vec(),
                    },
                    self.refused_by,
                )
            }
        };
        self.record_written(request, reason, written, host);
        true
    }

    /// A span alone over the spool's cap (it cannot be split) is kept with
    /// its values cut, as after a 413, to half the cap, as a part of a
    /// request over the cap is (`keep`); counted cut once kept. Lost when
    /// even its values emptied do not make it fit the cap.
    fn keep_cut(&mut self, request: &Request, reason: &str, host: &mut dyn DeliveryHost) {
        let half = (self.spool.max_bytes() / 2) as usize;
        let cut = plain_body(request.body, request.gzipped).and_then(|plain| {
            cut_to_fit(
                &plain,
                request.format,
                half.saturating_sub(HEADER_LEN),
                request.cut_counted,
            )
        });
        let Some(cut) = cut else {
            return self.lost_over_cap(request, reason, host);
        };
        let body = if request.gzipped {
            let mut packed = Vec::new();
            self.gzip
                .get_or_insert_with(GzipWriter::new)
                .compress(&cut.body, &mut packed);
            packed
        } else {
            cut.body
        };
        if !self.spool.fits(body.len()) {
            return self.lost_over_cap(request, reason, host);
        }
        let batch = SpooledBatch {
            format: request.format,
            gzipped: request.gzipped,
            spans: request.spans.min(u32::MAX as u64) as u32,
            // Those counted before and those counted now: all of them.
            cut_counted: cut.shortened,
            cut_at: places_and(request.cut_at, &cut.at),
            body,
        };
        let written = self.spool.write_refused(&batch, self.refused_by);
        if written.is_ok() {
            // A lost span's values are not counted as cut.
            host.record(Outcome::Cut {
                origin: request.origin,
                values: cut.values,
                limit: "the spool's cap (raise SPANGUARD_SPOOL_MAX_BYTES to keep them whole while the backend is away)",
            });
        }
        self.record_written(request, reason, written, host);
    }

    fn lost_over_cap(&mut self, request: &Request, reason: &str, host: &mut dyn DeliveryHost) {
        host.record(Outcome::Lost {
            origin: request.origin,
            spans: request.spans,
            reason: &format!(
                "{reason}; one span is larger than the spool's cap ({} bytes) even with its \
                 values cut",
                self.spool.max_bytes()
            ),
        });
    }

    /// Records what became of a request written to the spool.
    fn record_written(
        &mut self,
        request: &Request,
        reason: &str,
        written: std::io::Result<super::spool::Eviction>,
        host: &mut dyn DeliveryHost,
    ) {
        match written {
            Ok(eviction) => {
                host.record(Outcome::Kept {
                    origin: request.origin,
                    spans: request.spans,
                    reason,
                    written: true,
                    for_other_sender: self.refused_by.is_some(),
                });
                if eviction.files > 0 {
                    host.record(Outcome::Evicted {
                        files: eviction.files,
                        spans: eviction.spans,
                    });
                }
                host.record(Outcome::SpoolSize {
                    bytes: self.spool.total_bytes(),
                });
            }
            Err(e) => host.record(Outcome::Lost {
                origin: request.origin,
                spans: request.spans,
                // Which directory, and what sets it: "Read-only file
                // system" alone left the user to guess where.
                reason: &format!(
                    "{reason}; the spool ({}) could not take it: {e} (SPANGUARD_SPOOL_DIR sets \
                     where it is)",
                    self.spool.dir().display()
                ),
            }),
        }
    }

    /// Keeps a part of a request over the spool's cap: in halves while
    /// over half the cap and more than one span (`keep`).
    fn keep_in_parts(&mut self, request: &Request, reason: &str, host: &mut dyn DeliveryHost) {
        let halves = if request.spans > 1 && !self.spool.fits(request.body.len().saturating_mul(2))
        {
            self.split(request)
        } else {
            None
        };
        let Some((a, b)) = halves else {
            self.keep(request, reason, host, false);
            return;
        };
        let counted = counted_in_parts(request, &a, &b);
        for (part, cut_counted) in [a, b].iter().zip(counted) {
            let piece = Request {
                body: &part.body,
                spans: part.spans,
                cut_counted,
                ..*request
            };
            self.keep_in_parts(&piece, reason, host);
        }
    }

    /// Whether spans this sender was refused may go now: what decides its
    /// refusals from outside the process (its TLS files: a CA bundle
    /// renewed while it runs, a mounted secret rotated) changed
    /// (`Transport::renewed`). The transport looks at each new connection
    /// after a failure and at each refusal; while refused spans wait here
    /// it is also asked to look (a `stat` a file) once a `PROBE_INTERVAL`
    /// at most, so that they go with no new span to send. Renewed, the
    /// spool takes the files refused under the old files (its refusal
    /// fingerprint told anew: `SpoolDir::takes`) and a replay held after
    /// refusals (`REPLAY_AFTER_REFUSAL`) is no longer: true, and the
    /// caller replays the spool. Unchanged, nothing is sent: a refusal is
    /// not tried again by the sender it refused. They waited for the next
    /// process, or `spanguard replay`.
    pub fn sender_renewed(&mut self) -> bool {
        let now = Instant::now();
        let due = self.next_renewal_look.is_none_or(|at| now >= at);
        let waiting = due
            && *self
                .refused_waiting
                .get_or_insert_with(|| self.spool.holds_refused_to_sender());
        if waiting {
            self.next_renewal_look = Some(instant_after(now, super::retry::PROBE_INTERVAL));
        }
        if !self.transport.renewed(waiting) {
            return false;
        }
        self.spool
            .set_refusal_fingerprint(self.transport.refusal_fingerprint());
        // The files refused are the spool's to send now; any refused
        // under the new files are marked anew as they come.
        self.refused_waiting = Some(false);
        self.replay_refusals = 0;
        self.replay_held_until = None;
        true
    }

    /// Sends the spool's files, oldest first, while the backend takes them
    /// and nothing else needs the thread. True when the spool was emptied
    /// (of files not locked by another replayer).
    ///
    /// After the server refused a replay for who sent it or where, the
    /// next waits (`REPLAY_AFTER_REFUSAL`), unless a request is accepted
    /// meanwhile: false, nothing sent.
    ///
    /// A file that fails for now (its retries ran out or were cut short:
    /// 502, 503, 504, no answer, a timeout) is set back behind the others,
    /// so that one file a server never takes holds no other back
    /// (`SpoolDir::set_back`). Then an empty request asks the backend
    /// (`probe`): what vouches for it must come after the failure judged
    /// (live batches taken before it say nothing of an outage that starts
    /// just then, and a file alone with no traffic has nothing else). The
    /// probe taken, the backend is up and the file is the problem: the
    /// set-back is counted (once a replay), the backend is not counted
    /// down for it, the replay goes on with the next file (one attempt: a
    /// second failure in a row stops it), and at `MAX_SETBACKS` the file is
    /// split for what it holds (`settle_refused`). The probe failing too
    /// (or not sent: the exporter is stopping), the backend may be down:
    /// the replay stops there, uncounted, and the next one starts with
    /// another file, after a probe sent first (`probe_first`): no file
    /// goes until one is taken. A backend that is down costs the first
    /// replay one file's attempts and one probe, each one after a probe
    /// (`PROBE_TIMEOUT` at most, where a file cost a whole request
    /// timeout to a backend that never answers), and splits nothing.
    /// After a failure with the server's Retry-After no probe goes before
    /// the time it asked (`down_until`, clamped as a retry's wait): the
    /// file is set back uncounted, the next replay probes first, and the
    /// probe taken (or any request taken after the wait) counts that
    /// set-back when the replay meets the file, without sending it again
    /// then (split there at the last). A file set back before gets one
    /// attempt, no retries.
    pub fn replay_spool(&mut self, host: &mut dyn DeliveryHost) -> bool {
        if self.replay_held_until.is_some_and(|t| t > Instant::now()) {
            return false;
        }
        self.misdirected = false;
        if let Some(format) = self.probe_first {
            // Not before the time the server asked, nor a second probe
            // before the probe interval's end; and not while something
            // else needs the thread.
            if self.down_until().is_some() || host.busy() {
                return false;
            }
            if self.probe(format) == ProbeAnswer::Failed {
                return false;
            }
            // Refused for who sends: the files say so too (and the replay
            // is held, `REPLAY_AFTER_REFUSAL`), not a probe every second.
            self.probe_first = None;
        }
        let spool = self.spool.clone();
        let mut drained = true;
        // The file before failed for now, its probe taken.
        let mut after_failure = false;
        let pass = spool.replay_counting_setbacks(
            &mut *host,
            |h| h.busy(),
            |host, batch, file| {
                let request = Request {
                    body: &batch.body,
                    format: batch.format,
                    gzipped: batch.gzipped,
                    spans: batch.spans as u64,
                    origin: Origin::SpoolFile,
                    // Counted when they were cut (by this process or the one
                    // that spooled them): a 413 now cuts them again, uncounted.
                    cut_counted: batch.cut_counted,
                    // Which they were, by place, as the file's header says
                    // (none in an earlier version's): a depth rescue now that
                    // empties one counts it no more.
                    cut_at: &batch.cut_at,
                };
                // Its last failure came with a Retry-After, and the backend
                // was found up after the wait: counted now, not sent again
                // until the next replay (it failed for now; the files behind
                // it go), split at the last set-back.
                let vouched = self.vouched.take_if(|v| {
                    file.id == Some(v.file) && v.body == body_fingerprint(&batch.body)
                });
                if let Some(vouched) = vouched {
                    drained = false;
                    let setbacks = file.setbacks.saturating_add(1);
                    if setbacks < MAX_SETBACKS {
                        return ReplayVerdict::SetBack {
                            counted: true,
                            stop: false,
                        };
                    }
                    after_failure =
                        !self.split_never_taken(&request, &vouched.reason, setbacks, host);
                    return ReplayVerdict::Delivered;
                }
                if after_failure {
                    // The backend counted down by the file before: this one
                    // tells whether it is, or that file was the problem.
                    self.down_until = None;
                }
                self.asked_to_wait = false;
                let done = self.deliver_with(&request, host, file.setbacks > 0 || after_failure);
                if done {
                    after_failure = false;
                    return ReplayVerdict::Delivered;
                }
                drained = false;
                let Some(KeptFor::Failed(reason)) = self.kept_for.take() else {
                    return ReplayVerdict::Stop;
                };
                if std::mem::take(&mut self.asked_to_wait) {
                    // No probe against the server's Retry-After: after the
                    // wait (`down_until`), the next replay probes first, and
                    // its word (or any request taken after the wait) judges
                    // this failure. Set back uncounted until then.
                    self.judged = file.id.map(|id| Judged {
                        file: id,
                        body: body_fingerprint(&batch.body),
                        reason: reason.clone(),
                    });
                    self.probe_first = Some(batch.format);
                    return ReplayVerdict::SetBack {
                        counted: false,
                        stop: true,
                    };
                }
                // Asked after the failure: what was accepted before it (live
                // batches just before an outage) says nothing of it.
                let backend_up = !host.stopping() && self.probe(batch.format) == ProbeAnswer::Taken;
                if !backend_up {
                    // The backend may be down. Behind the others, so that the
                    // next replay starts with another file.
                    return ReplayVerdict::SetBack {
                        counted: false,
                        stop: true,
                    };
                }
                // Two in a row: counted each on its probe's word, but no third
                // request is sent (each failure may have cost a timeout).
                let stop = after_failure;
                after_failure = true;
                let setbacks = file.setbacks.saturating_add(1);
                if setbacks < MAX_SETBACKS {
                    return ReplayVerdict::SetBack {
                        counted: true,
                        stop,
                    };
                }
                // Parts taken: the backend is up; none: as after a failure.
                after_failure = !self.split_never_taken(&request, &reason, setbacks, host);
                ReplayVerdict::Delivered
            },
        );
        drained &= !pass.gave_way;
        // Kept by the replay but gone: not written again after another
        // batch took its file's name (`SpoolDir::keep_if_renamed_over`).
        for lost in spool.take_lost() {
            host.record(Outcome::Lost {
                origin: Origin::SpoolFile,
                spans: lost.spans,
                reason: &lost.reason,
            });
        }
        if std::mem::take(&mut self.misdirected) {
            self.replay_refusals = self.replay_refusals.saturating_add(1);
            let hold = REPLAY_AFTER_REFUSAL.delay(self.replay_refusals, self.next_random());
            self.replay_held_until = Some(instant_after(Instant::now(), hold));
        }
        host.record(Outcome::SpoolSize {
            bytes: self.spool.total_bytes(),
        });
        drained
    }

    /// A spool file set back `setbacks` times while the backend was up,
    /// taken for what it holds: split as a 400 is, a failure for now of a
    /// part its refusal. True if a part was taken.
    fn split_never_taken(
        &mut self,
        request: &Request,
        reason: &str,
        setbacks: u32,
        host: &mut dyn DeliveryHost,
    ) -> bool {
        let accepted_before_split = self.accepted_requests;
        self.transient_refuses = Some(setbacks);
        self.settle_refused(request, never_taken(reason, setbacks), host);
        self.transient_refuses = None;
        self.accepted_requests != accepted_before_split
    }

    /// The backend took a request: it is up. No probe first at the next
    /// replay, and a file that failed with a Retry-After before is the
    /// problem (what vouches comes after its wait: requests are kept
    /// without an attempt until then).
    fn backend_took(&mut self) {
        self.probe_first = None;
        if let Some(judged) = self.judged.take() {
            self.vouched = Some(judged);
        }
    }

    /// Sends the backend an empty request (no spans: nothing counted
    /// delivered), once: right after a spool file failed for now, or
    /// first in a replay (`probe_first`): whether it is up, and so whether
    /// that file is the problem. Any answer of a server that read the
    /// request says so (200; a 400 from one that takes no empty request);
    /// a transient failure, or a refusal of who sends, does not. Up, the
    /// backend is no longer counted down (live batches are not held a
    /// probe interval for the file's failure). Failing, it is counted down
    /// for the probe interval (or the probe's Retry-After, as a retry
    /// honours it), the file judged is not counted, and the next replay
    /// probes first: a backend that accepts connections and never answers
    /// costs a replay a probe (`PROBE_TIMEOUT`), not a file's request
    /// timeout.
    fn probe(&mut self, format: BodyFormat) -> ProbeAnswer {
        let body = match format {
            BodyFormat::Protobuf => EMPTY_PROTOBUF_REQUEST,
            BodyFormat::Json => EMPTY_JSON_REQUEST,
        };
        // An empty request is answered at once by a server that is up:
        // given `PROBE_TIMEOUT`, not a whole request timeout, so that a
        // backend that accepts and never answers costs each replay one
        // request timeout (the file's), not two.
        self.transport.limit_next(super::retry::PROBE_TIMEOUT);
        self.probes.sent += 1;
        match self.send(body, format, false).0 {
            Ok(_) | Err(SendError::Permanent { .. } | SendError::TooLarge { .. }) => {
                self.probes.taken += 1;
                self.spans_hang |= self.fresh_hung;
                self.down_until = None;
                self.backend_took();
                ProbeAnswer::Taken
            }
            Err(SendError::Transient { retry_after, .. }) => {
                let random = self.next_random();
                let down_for =
                    match self
                        .policy
                        .after_failure(1, retry_after, Duration::MAX, random)
                    {
                        RetryStep::GiveUp { down_for } => down_for,
                        RetryStep::Wait(wait) => wait,
                    };
                self.down_until = Some(instant_after(Instant::now(), down_for));
                self.probe_first = Some(format);
                self.judged = None;
                ProbeAnswer::Failed
            }
            Err(SendError::Misdirected { .. }) => ProbeAnswer::Misdirected,
        }
    }

    /// Sends one request, and records whether a server answered it
    /// (`silent`): every request goes through here, a replay's probe too,
    /// so that `silent` says what the last one sent heard. A probe taken
    /// after a request that got no answer clears it (a flush's next
    /// request gets its whole timeout, not `PROBE_TIMEOUT` and no retry:
    /// a slow but healthy backend's batch was spooled); a probe that got
    /// none sets it (the flush's next request is the probe).
    fn send(
        &mut self,
        body: &[u8],
        format: BodyFormat,
        gzipped: bool,
    ) -> (Result<Accepted, SendError>, Silence) {
        let transport = &mut self.transport;
        let sent = match &self.marks {
            Some(marks) => marks.marked(|| transport.send(body, format, gzipped)),
            None => transport.send(body, format, gzipped),
        };
        let silence = self.transport.silence();
        self.silent = matches!(silence, Silence::NoServer | Silence::TimedOut);
        (sent, silence)
    }

    /// A new pseudo-random number, for jitter.
    fn next_random(&mut self) -> u64 {
        self.rng = self
            .rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.rng >> 11
    }

    /// Delivers (or keeps in the spool) the spans a dead process left in a
    /// crash dump or flight file, in requests within the encoder's budget.
    pub fn deliver_recovered(
        &mut self,
        recovered: &Recovered,
        encoder: &mut RequestEncoder,
        host: &mut dyn DeliveryHost,
    ) {
        let resource = ResourceInfo::new(
            &recovered.header.service_name(),
            &recovered.header.resource_attributes(),
        );
        let records: Vec<SpanView> = recovered
            .records
            .iter()
            .filter(|(r, _)| is_recording(r))
            .map(|(r, overflow)| SpanView::from_disk(r, overflow))
            .collect();
        let mut start = 0;
        while start < records.len() {
            encoder.set_lone_limit(self.lone_span_limit());
            let n = encoder.encode_prefix(&resource, &records[start..]);
            // Cut to today's limit (the dead process may have had a larger
            // one): counted now, not with the next batch that encoder makes.
            let values = encoder.take_cut_values();
            let attributes = encoder.take_resource_attributes_dropped();
            if attributes > 0 {
                host.record(Outcome::ResourceCut {
                    attributes,
                    limit: "one request of this process's size limit (a recovered span's resource)",
                });
            }
            if values > 0 {
                host.record(Outcome::Cut {
                    origin: Origin::Recovered,
                    values,
                    limit: "one request of this process's size limit (a recovered span)",
                });
            }
            if n == 0 {
                host.record(Outcome::Lost {
                    origin: Origin::Recovered,
                    spans: 1,
                    reason: &encoder.nothing_fits_reason(&format!(
                        "the request size limit ({} bytes)",
                        encoder.budget()
                    )),
                });
                start += 1;
                continue;
            }
            let request = Request {
                body: encoder.body(),
                format: encoder.format,
                gzipped: encoder.gzip,
                spans: n as u64,
                origin: Origin::Recovered,
                cut_counted: values,
                cut_at: encoder.cut_at(),
            };
            self.deliver(&request, host);
            start += n;
        }
    }
}

/// Why spans of a spool file set back `setbacks` times are lost: the
/// server's answer to them, and that it gave it while it took the others.
fn never_taken(reason: &str, setbacks: u32) -> String {
    format!(
        "{reason}: a spool file answered so at {setbacks} replays while the backend took \
         other requests, and the spans of it the server never takes are counted lost"
    )
}

/// Spans a server refused for good, to be counted lost once
/// `Delivery::settle_refused` has found them.
struct Refusal {
    origin: Origin,
    spans: u64,
    reason: String,
    /// Refused along with the other half of a request split for a refusal.
    both_halves: bool,
}

/// Adds `spans` refused for `reason` to `losses`, to the entry with the
/// same reason if there is one (one line, not one per part).
fn add_loss(
    losses: &mut Vec<Refusal>,
    origin: Origin,
    spans: u64,
    reason: String,
    both_halves: bool,
) {
    match losses
        .iter_mut()
        .find(|l| l.origin == origin && l.reason == reason && l.both_halves == both_halves)
    {
        Some(l) => l.spans += spans,
        None => losses.push(Refusal {
            origin,
            spans,
            reason,
            both_halves,
        }),
    }
}

/// A host that counts the spans delivered as it passes everything on.
struct Tally<'h> {
    host: &'h mut dyn DeliveryHost,
    delivered: u64,
}

impl DeliveryHost for Tally<'_> {
    fn wait(&mut self, wait: Duration) -> bool {
        self.host.wait(wait)
    }
    fn stopping(&self) -> bool {
        self.host.stopping()
    }
    fn busy(&self) -> bool {
        self.host.busy()
    }
    fn record(&mut self, outcome: Outcome<'_>) {
        if let Outcome::Delivered { spans, .. } = outcome {
            self.delivered += spans;
        }
        self.host.record(outcome);
    }
}

/// What tells a spool file's body from another's (`Judged::body`).
fn body_fingerprint(body: &[u8]) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    h.write(body);
    h.finish()
}

/// The places of values cut and counted (`Request::cut_at`): `before`'s
/// and those of `now` not among them.
fn places_and(before: &[u64], now: &[u64]) -> Vec<u64> {
    let mut at = before.to_vec();
    at.extend(now.iter().filter(|p| !before.contains(p)));
    at
}

/// How a request's `cut_counted` goes to its two parts: whole to the part
/// with the longest value. The values were cut to fit one span alone in a
/// request, which leaves them the longest, and room for little else: two
/// such spans do not fit one request.
fn counted_in_parts(request: &Request, first: &Part, second: &Part) -> [u64; 2] {
    // Places are `request`'s, in neither part, and are dropped here: only
    // a lone span's request, never split, has any from our encoder
    // (`RequestEncoder::cut_at`). A spool file's header (SGSPOOL3) names
    // them for whatever body it holds, so a file made elsewhere may hold
    // several spans and places: its count then goes as a count alone
    // (a debug build asserted here, and panicked on such a file).
    if request.cut_counted == 0 {
        return [0, 0];
    }
    let longest = |part: &Part| {
        plain_body(&part.body, request.gzipped)
            .and_then(|plain| longest_value(&plain, request.format))
            .unwrap_or(0)
    };
    if longest(second) > longest(first) {
        [0, request.cut_counted]
    } else {
        [request.cut_counted, 0]
    }
}

/// What is left of `batch` (a journal) without its first `settled`
/// spans, with the count of its values cut (as `counted_in_parts` shares
/// it); Some(None) when nothing is left, None when it cannot be read.
fn rest_after(
    batch: &SpooledBatch,
    settled: u64,
    gzip: &mut GzipWriter,
) -> Option<Option<(Part, u64)>> {
    let (head, rest) =
        super::split::split_at(&batch.body, batch.format, batch.gzipped, settled, gzip)?;
    let Some(rest) = rest else {
        return Some(None);
    };
    let request = Request {
        body: &batch.body,
        format: batch.format,
        gzipped: batch.gzipped,
        spans: batch.spans as u64,
        origin: Origin::Fresh,
        cut_counted: batch.cut_counted,
        cut_at: &[],
    };
    let [_, counted] = counted_in_parts(&request, &head, &rest);
    Some(Some((rest, counted)))
}

/// Whether a record is exported: the sampler did not leave it out.
pub fn is_recording(r: &SpanRecord) -> bool {
    r.marks & MARK_NON_RECORDING == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Answers from a script, recording each request's size.
    struct Scripted {
        answers: Arc<Mutex<Vec<Result<Accepted, SendError>>>>,
        sent: Arc<Mutex<Vec<usize>>>,
    }

    impl Transport for Scripted {
        fn send(&mut self, body: &[u8], _: BodyFormat, _: bool) -> Result<Accepted, SendError> {
            self.sent.lock().unwrap().push(body.len());
            let mut answers = self.answers.lock().unwrap();
            if answers.is_empty() {
                Ok(Accepted::default())
            } else {
                answers.remove(0)
            }
        }
        fn describe(&self) -> String {
            "scripted:".to_string()
        }
    }

    #[derive(Default)]
    struct Host {
        waits: Vec<Duration>,
        interrupt_waits: bool,
        /// A flush or shutdown waits for what is delivered.
        awaited: bool,
        delivered: u64,
        kept: u64,
        lost: u64,
        cut: u64,
        /// Of `cut`: values a depth cut emptied.
        emptied: u64,
        evicted: u64,
        /// Why spans were lost, as the host was told.
        lost_reasons: Vec<String>,
        /// Spans accepted with a warning, and the warnings.
        warned: u64,
        warnings: Vec<String>,
        /// Why spans were kept, as the host was told, and whether for a
        /// sender set up otherwise.
        kept_reasons: Vec<(String, bool)>,
        /// Failed attempts' reasons, as the host was told.
        failed: Vec<String>,
    }

    impl DeliveryHost for Host {
        fn wait(&mut self, wait: Duration) -> bool {
            self.waits.push(wait);
            !self.interrupt_waits
        }
        fn awaited(&self) -> bool {
            self.awaited
        }
        fn record(&mut self, outcome: Outcome<'_>) {
            match outcome {
                Outcome::Delivered { spans, .. } => self.delivered += spans,
                Outcome::Kept {
                    spans,
                    reason,
                    for_other_sender,
                    ..
                } => {
                    self.kept += spans;
                    self.kept_reasons
                        .push((reason.to_string(), for_other_sender));
                }
                Outcome::AttemptFailed { reason } => self.failed.push(reason.to_string()),
                Outcome::Lost { spans, reason, .. } => {
                    self.lost += spans;
                    self.lost_reasons.push(reason.to_string());
                }
                Outcome::Rejected { spans, .. } => self.lost += spans,
                Outcome::Warned { spans, message, .. } => {
                    self.warned += spans;
                    self.warnings.push(message.to_string());
                }
                Outcome::Cut { values, .. } => self.cut += values,
                Outcome::Emptied { values, shared, .. } => {
                    self.cut += values + shared;
                    self.emptied += values + shared;
                }
                Outcome::Evicted { spans, .. } => self.evicted += spans,
                _ => {}
            }
        }
    }

    fn delivery(
        name: &str,
        answers: Vec<Result<Accepted, SendError>>,
    ) -> (Delivery, Arc<Mutex<Vec<usize>>>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("sg-delivery-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let transport = Scripted {
            answers: Arc::new(Mutex::new(answers)),
            sent: Arc::clone(&sent),
        };
        let d = Delivery::new(
            Box::new(transport),
            SpoolDir::new(&dir, 1 << 20),
            Duration::from_secs(30),
            1 << 20,
        );
        (d, sent, dir)
    }

    /// A request of spans 1..=`n` (span id `[i; 8]`, trace 5).
    fn request_of_ids(n: u8) -> Vec<u8> {
        use crate::span::proto_reader::write_len_field;
        let mut scope = Vec::new();
        for i in 1..=n {
            let mut span = Vec::new();
            write_len_field(&mut span, 1, &[5; 16]);
            write_len_field(&mut span, 2, &[i; 8]);
            write_len_field(&mut scope, 2, &span);
        }
        let mut resource = Vec::new();
        write_len_field(&mut resource, 2, &scope);
        let mut body = Vec::new();
        write_len_field(&mut body, 1, &resource);
        body
    }

    /// Refuses the whole request for its size (413), takes what is sent
    /// after (its span ids kept in `got`), and dies (panics) at the
    /// `dies_at`th request: a tracer SIGKILLed while its request went in
    /// parts.
    struct TakesPartsThenDies {
        requests: usize,
        dies_at: usize,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Transport for TakesPartsThenDies {
        fn send(&mut self, body: &[u8], _: BodyFormat, _: bool) -> Result<Accepted, SendError> {
            self.requests += 1;
            if self.requests == self.dies_at {
                panic!("the tracer is killed here");
            }
            if self.requests == 1 {
                return Err(SendError::TooLarge {
                    reason: "HTTP 413".to_string(),
                });
            }
            let spans = crate::export::otlp_decode::decode_proto(body).expect("protobuf");
            self.got
                .lock()
                .unwrap()
                .extend(spans.iter().map(|s| s.span_id[0]));
            Ok(Accepted::default())
        }
        fn describe(&self) -> String {
            "parts:".to_string()
        }
    }

    /// A fresh request refused for its size goes in two parts; the flight
    /// recorder's journal held the whole request until both were settled,
    /// so a SIGKILL after the first part was acknowledged left it whole,
    /// and its replay sent the first part again. The journal now holds
    /// only what is not settled: killed before the second part, or while
    /// it went, each span arrives once; both taken, nothing is left.
    #[test]
    fn a_request_killed_after_its_first_part_was_acknowledged_sends_it_once() {
        for dies_at in [3, usize::MAX] {
            let dir = std::env::temp_dir().join(format!(
                "sg-delivery-parts-{dies_at}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let got = Arc::new(Mutex::new(Vec::new()));
            let transport = TakesPartsThenDies {
                requests: 0,
                dies_at,
                got: Arc::clone(&got),
            };
            let mut d = Delivery::new(
                Box::new(transport),
                SpoolDir::new(&dir, 1 << 20),
                Duration::from_secs(30),
                1 << 20,
            );
            let body = request_of_ids(6);
            let journal = d
                .spool()
                .write_journal(BodyFormat::Protobuf, false, (6, 0, &[]), &body, Some(7))
                .expect("journal");
            d.set_journal(Some(journal));
            let request = fresh_body(&body, (BodyFormat::Protobuf, false), 6, 0);
            let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                d.deliver(&request, &mut Host::default())
            }))
            .is_err();
            assert_eq!(killed, dies_at != usize::MAX);
            // Killed: the journal's lock goes with the process.
            drop(d);
            SpoolDir::new(&dir, 1 << 20).replay(|batch| {
                let spans = crate::export::otlp_decode::decode_proto(&batch.body).expect("pb");
                got.lock()
                    .unwrap()
                    .extend(spans.iter().map(|s| s.span_id[0]));
                ReplayVerdict::Delivered
            });
            let mut got = got.lock().unwrap().clone();
            got.sort();
            assert_eq!(got, (1..=6).collect::<Vec<u8>>(), "killed at {dies_at}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    fn busy(retry_after: Option<u64>) -> Result<Accepted, SendError> {
        Err(SendError::Transient {
            reason: "HTTP 503".to_string(),
            retry_after: retry_after.map(Duration::from_secs),
        })
    }

    const BODY: &[u8] = b"not really protobuf";

    /// The bodies a request can be (format, gzipped) that the cutting tests
    /// go through: protobuf, JSON, and gzipped protobuf.
    const BODY_FORMATS: [(BodyFormat, bool); 3] = [
        (BodyFormat::Protobuf, false),
        (BodyFormat::Json, false),
        (BodyFormat::Protobuf, true),
    ];

    fn fresh(spans: u64) -> Request<'static> {
        fresh_body(BODY, (BodyFormat::Protobuf, false), spans, 0)
    }

    /// A protobuf request of `n` empty spans: what a replay counts.
    fn proto_spans(n: u32) -> Vec<u8> {
        crate::export::spool::tests::proto_body(n, 0)
    }

    /// A 2xx whose partial success rejects no span but carries a message
    /// (the spec's warning): every span delivered, none lost, and the
    /// host told of the warning with the request's spans, to say it. It
    /// was dropped here, so never said. A rejection's message is told as
    /// the rejection (not twice), and an answer without one tells nothing.
    #[test]
    fn a_warning_with_nothing_rejected_is_told_and_every_span_delivered() {
        let warned = |rejected_spans: u64, message: &str| {
            Ok(Accepted {
                rejected_spans,
                message: message.to_string(),
            })
        };
        let answers = vec![warned(0, "sampled"), warned(2, "too old"), warned(0, "")];
        let (mut d, _, dir) = delivery("warned", answers);
        let mut host = Host::default();
        for _ in 0..3 {
            assert!(d.deliver(&fresh(5), &mut host));
        }
        assert_eq!((host.delivered, host.lost), (13, 2));
        assert_eq!(
            (host.warned, host.warnings),
            (5, vec!["sampled".to_string()])
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Spool files left by someone else whose headers say 0 spans, or 4
    /// billion, over bodies of 4: replayed, the host was told "0 spans
    /// delivered" (the exporter's replayed_spans, its "N spans from the
    /// spool delivered", `spanguard replay`'s summary) or 4 billion lost
    /// when the server refused them. It is told the 4 each file held.
    #[test]
    fn a_replay_tells_the_spans_a_file_held_whatever_its_header_says() {
        let refused = Err(SendError::Permanent {
            reason: "HTTP 400".to_string(),
        });
        for (answer, delivered, lost) in [(Ok(Accepted::default()), 8, 0), (refused, 0, 8)] {
            // A refusal of the whole file, then of both its halves.
            let (mut d, _, dir) = delivery("miscounted", vec![answer; 6]);
            std::fs::create_dir_all(&dir).expect("dir");
            let body = proto_spans(4);
            for (tag, claimed) in [("000001", 0u32), ("000002", u32::MAX)] {
                let header = super::super::spool::encode_header(
                    BodyFormat::Protobuf,
                    false,
                    claimed,
                    0,
                    body.len(),
                );
                std::fs::write(
                    dir.join(super::super::spool::spool_file_name(tag)),
                    [header.as_bytes(), &body].concat(),
                )
                .expect("plant");
            }
            let mut host = Host::default();
            assert!(d.replay_spool(&mut host), "drained");
            assert_eq!((host.delivered, host.lost), (delivered, lost));
            assert_eq!(d.spool().take_miscounted().len(), 2);
            std::fs::remove_dir_all(&dir).ok();
        }
    }

    /// A request of this process's spans: `body` in `format`, gzipped or
    /// not, with `cut_counted` of its values cut and counted already.
    fn fresh_body(
        body: &[u8],
        (format, gzipped): (BodyFormat, bool),
        spans: u64,
        cut_counted: u64,
    ) -> Request<'_> {
        Request {
            body,
            format,
            gzipped,
            spans,
            origin: Origin::Fresh,
            cut_counted,
            cut_at: &[],
        }
    }

    /// A local sink on a full disk (a tmpfs of 64 KiB filled, in a mount
    /// namespace of this test's own: root only; elsewhere said, and
    /// passed): the requests kept while the next try was waited for said
    /// "the backend is down; next try in N ms" of a local file. They say
    /// the disk is full, and where: the first, tried and kept rather than
    /// its retry waited for ("kept instead of waiting"), and the second,
    /// kept untried until that retry's time ("next try in").
    ///
    /// The retry waits minutes here, not the default backoff's first 50
    /// to 100 ms: on a loaded machine the spool write of the first request
    /// outlasted that wait, the second request was tried in its turn and
    /// said "kept instead of waiting", and the test failed on words that
    /// were right. Both paths are asserted, neither left to the clock.
    #[test]
    fn a_local_sink_on_a_full_disk_is_said_full_not_down() {
        use std::os::unix::ffi::OsStrExt;
        if !crate::forking_tests::run_alone(
            module_path!(),
            "a_local_sink_on_a_full_disk_is_said_full_not_down",
        ) {
            return;
        }
        let dir = std::env::temp_dir().join(format!("sg-delivery-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sink_dir = dir.join("sink");
        std::fs::create_dir_all(&sink_dir).expect("dir");
        let target = std::ffi::CString::new(sink_dir.as_os_str().as_bytes()).expect("path");
        // SAFETY: plain calls on this process, which runs this test alone;
        // its mounts are made private first, so none shows outside it.
        let mounted = unsafe {
            libc::unshare(libc::CLONE_NEWNS) == 0
                && libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) == 0
                && libc::mount(
                    c"tmpfs".as_ptr(),
                    target.as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    c"size=64k,mode=0700".as_ptr().cast(),
                ) == 0
        };
        if !mounted {
            eprintln!("no mount namespace of its own here (root only): not tested");
            std::fs::remove_dir_all(&dir).ok();
            return;
        }
        // The disk filled by something else.
        let mut filler = std::fs::File::create(sink_dir.join("filler")).expect("filler");
        while std::io::Write::write_all(&mut filler, &[0u8; 4096]).is_ok() {}
        let mut d = Delivery::new(
            Box::new(super::super::file_sink::FileSink::new(&sink_dir, "svc")),
            SpoolDir::new(&dir.join("spool"), 1 << 20),
            Duration::from_secs(3600),
            1 << 20,
        );
        // A first retry 5 to 10 minutes off, within the hour's budget.
        d.policy.backoff = Backoff {
            initial: Duration::from_secs(600),
            max: Duration::from_secs(600),
            multiplier: 2,
        };
        let mut host = Host {
            interrupt_waits: true,
            ..Host::default()
        };
        let body = named_spans(BodyFormat::Json, false, &["llm.chat"; 8]);
        for _ in 0..2 {
            d.deliver(
                &fresh_body(&body, (BodyFormat::Json, false), 8, 0),
                &mut host,
            );
        }
        assert_eq!((host.delivered, host.kept, host.lost), (0, 16, 0));
        let full = format!(
            "the disk is full where the local sink writes: writing {}/svc-",
            sink_dir.display()
        );
        assert_eq!(host.kept_reasons.len(), 2, "{:?}", host.kept_reasons);
        for (said, then) in host
            .kept_reasons
            .iter()
            .zip(["; kept instead of waiting", "; next try in "])
        {
            let said = &said.0;
            assert!(said.starts_with(&full) && said.contains(then), "{said}");
            assert!(!said.contains("backend"), "{said}");
        }
        drop(d);
        // SAFETY: the tmpfs mounted above, in this process's namespace.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Spans recovered from a crash dump (or parts of a spool file)
    /// refused for who sent them (401, 403, 404): their kept line said
    /// "spooled (HTTP 401...; spans from the spool kept for a sender set
    /// up right)", the stderr line "keeping spans in the spool until the
    /// backend answers" (the backend did answer: it refused), and a failed
    /// attempt besides. Kept for a corrected setting as first-trip spans
    /// so refused are, and said once, in the same words.
    #[test]
    fn recovered_spans_refused_for_the_sender_are_said_kept_for_a_corrected_setting() {
        /// A sender that can be told from one set up otherwise, as HTTP's.
        struct Fingerprinted(Scripted);
        impl Transport for Fingerprinted {
            fn send(
                &mut self,
                body: &[u8],
                f: BodyFormat,
                gz: bool,
            ) -> Result<Accepted, SendError> {
                self.0.send(body, f, gz)
            }
            fn describe(&self) -> String {
                self.0.describe()
            }
            fn sender_fingerprint(&self) -> Option<u64> {
                Some(7)
            }
        }
        let dir = std::env::temp_dir().join(format!(
            "sg-delivery-recovered-refused-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let mut d = Delivery::new(
            Box::new(Fingerprinted(Scripted {
                answers: Arc::new(Mutex::new(vec![Err(SendError::Misdirected {
                    reason: "HTTP 401: no token".to_string(),
                })])),
                sent: Arc::default(),
            })),
            SpoolDir::new(&dir, 1 << 20),
            Duration::from_secs(30),
            1 << 20,
        );
        let body = named_spans(BodyFormat::Protobuf, false, &["llm.chat"; 3]);
        let mut host = Host::default();
        let request = Request {
            origin: Origin::Recovered,
            ..fresh_body(&body, (BodyFormat::Protobuf, false), 3, 0)
        };
        assert!(d.deliver(&request, &mut host));
        assert_eq!(
            host.kept_reasons,
            [("HTTP 401: no token".to_string(), true)]
        );
        assert_eq!(host.failed, Vec::<String>::new(), "said once");
        // Kept for a sender set up otherwise: this one never sends them.
        let kept = d.spool().list();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            super::super::spool::refused_by(&kept[0]),
            d.spool().sender_mark()
        );
        assert!(d.spool().sender_mark().is_some_and(|m| m != 7));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_spool_its_server_refuses_for_the_sender_is_not_replayed_at_every_wake_up() {
        // A server answering 401 (no token yet) to every request: each of
        // the exporter's wake-ups replayed the first spool file, a request
        // and a failure each time.
        let dir = std::env::temp_dir().join(format!("sg-delivery-401-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let answers = Arc::new(Mutex::new(vec![busy(None)]));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let mut d = Delivery::new(
            Box::new(Scripted {
                answers: Arc::clone(&answers),
                sent: Arc::clone(&sent),
            }),
            SpoolDir::new(&dir, 1 << 20),
            Duration::from_secs(30),
            1 << 20,
        );
        let mut host = Host {
            interrupt_waits: true,
            ..Host::default()
        };
        let body = proto_spans(3);
        d.deliver(
            &fresh_body(&body, (BodyFormat::Protobuf, false), 3, 0),
            &mut host,
        );
        assert_eq!((host.kept, d.spool().list().len()), (3, 1), "spooled");
        // The outage is over; the server now wants a token.
        d.down_until = None;
        let refused = || {
            Err(SendError::Misdirected {
                reason: "HTTP 401".to_string(),
            })
        };
        *answers.lock().unwrap() = (0..20).map(|_| refused()).collect();
        let before = sent.lock().unwrap().len();
        for _ in 0..10 {
            assert!(!d.replay_spool(&mut host), "the file stays");
        }
        assert_eq!(
            sent.lock().unwrap().len() - before,
            1,
            "one request for ten wake-ups"
        );
        let held = d.replay_held_until().expect("replays wait");
        assert!(held >= Instant::now() + Duration::from_millis(500));
        assert!(d.down_until().is_none(), "fresh spans still go");
        assert_eq!(d.spool().list().len(), 1, "kept");
        // The token set right: a fresh request is accepted, and the spool
        // goes at the next wake-up, not after the wait.
        answers.lock().unwrap().clear();
        assert!(d.deliver(&fresh(2), &mut host));
        assert!(d.replay_held_until().is_none());
        assert!(d.replay_spool(&mut host), "drained");
        assert_eq!(host.delivered, 5);
        assert!(d.spool().list().is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A sender whose TLS files can be renewed while it runs: its
    /// refusal fingerprint is `files` (shared with the test), and each
    /// look (`Transport::renewed` asked to look) is counted.
    struct Renewable {
        inner: Scripted,
        files: Arc<Mutex<u64>>,
        looks: Arc<Mutex<u64>>,
        /// The `files` the last look saw.
        seen: u64,
    }

    impl Transport for Renewable {
        fn send(&mut self, body: &[u8], f: BodyFormat, gz: bool) -> Result<Accepted, SendError> {
            self.inner.send(body, f, gz)
        }
        fn describe(&self) -> String {
            self.inner.describe()
        }
        fn sender_fingerprint(&self) -> Option<u64> {
            Some(7)
        }
        fn refusal_fingerprint(&self) -> Option<u64> {
            Some(self.seen)
        }
        fn renewed(&mut self, look: bool) -> bool {
            if !look {
                return false;
            }
            *self.looks.lock().unwrap() += 1;
            let now = *self.files.lock().unwrap();
            std::mem::replace(&mut self.seen, now) != now
        }
    }

    /// Spans refused for the sender's TLS files are never sent again by
    /// it while the files stay as they were, however often the exporter
    /// asks (each batch, each wake-up), and go at the first ask after the
    /// files changed: the running process renewed its CA file, and they
    /// waited for the next one.
    #[test]
    fn spans_refused_go_once_the_senders_tls_files_change_and_not_before() {
        let dir = std::env::temp_dir().join(format!("sg-delivery-renewed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let answers = Arc::new(Mutex::new(vec![Err(SendError::Misdirected {
            reason: "TLS certificate verification failed".to_string(),
        })]));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let files = Arc::new(Mutex::new(1u64));
        let looks = Arc::new(Mutex::new(0u64));
        let mut d = Delivery::new(
            Box::new(Renewable {
                inner: Scripted {
                    answers: Arc::clone(&answers),
                    sent: Arc::clone(&sent),
                },
                files: Arc::clone(&files),
                looks: Arc::clone(&looks),
                seen: 1,
            }),
            SpoolDir::new(&dir, 1 << 20),
            Duration::from_secs(30),
            1 << 20,
        );
        let mut host = Host::default();
        let body = proto_spans(3);
        let request = fresh_body(&body, (BodyFormat::Protobuf, false), 3, 0);
        assert!(d.deliver(&request, &mut host));
        assert_eq!(host.kept_reasons.len(), 1, "kept for another sender");
        assert_eq!(d.spool().list().len(), 1);
        // The exporter asks after every batch and wake-up; nothing changed.
        for _ in 0..100 {
            assert!(!d.sender_renewed());
            assert!(d.replay_spool(&mut host), "nothing this sender sends");
        }
        assert_eq!(sent.lock().unwrap().len(), 1, "the refusal alone");
        assert!(*looks.lock().unwrap() >= 1, "the files looked at");
        assert_eq!(d.spool().list().len(), 1, "kept");
        // The CA file renewed: looked at again a probe interval later.
        *files.lock().unwrap() = 2;
        d.next_renewal_look = None;
        assert!(d.sender_renewed());
        assert!(d.replay_spool(&mut host), "drained");
        assert_eq!(host.delivered, 3);
        assert_eq!(sent.lock().unwrap().len(), 2, "the file sent once");
        assert!(d.spool().list().is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_servers_retry_after_is_the_wait_before_the_next_attempt() {
        let (mut d, sent, dir) = delivery("wait", vec![busy(Some(3)), busy(Some(7))]);
        let mut host = Host::default();
        assert!(d.deliver(&fresh(5), &mut host));
        assert_eq!(host.waits, [Duration::from_secs(3), Duration::from_secs(7)]);
        assert_eq!(sent.lock().unwrap().len(), 3);
        assert_eq!(host.delivered, 5);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_retry_after_beyond_the_budget_keeps_the_request_and_the_backend_is_probed_soon() {
        let (mut d, sent, dir) = delivery("huge", vec![busy(Some(u64::MAX))]);
        let mut host = Host::default();
        let before = Instant::now();
        d.deliver(&fresh(4), &mut host);
        assert!(host.waits.is_empty(), "no wait for a server's absurd wish");
        assert_eq!((host.kept, host.delivered), (4, 0));
        let until = d.down_until().expect("down for a moment");
        assert!(
            until <= before + crate::export::retry::PROBE_INTERVAL + Duration::from_millis(500)
        );
        // While down, the next request is kept without being sent.
        d.deliver(&fresh(2), &mut host);
        assert_eq!(sent.lock().unwrap().len(), 1);
        assert_eq!(host.kept, 6);
        assert_eq!(d.spool().list().len(), 2);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_interrupted_wait_keeps_the_request_until_the_server_said() {
        let (mut d, _sent, dir) = delivery("interrupt", vec![busy(Some(20))]);
        let mut host = Host {
            interrupt_waits: true,
            ..Host::default()
        };
        let before = Instant::now();
        d.deliver(&fresh(3), &mut host);
        assert_eq!(host.kept, 3);
        let until = d.down_until().expect("down");
        assert!(until >= before + Duration::from_secs(20));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_spool_file_refused_for_good_is_done_with_and_one_kept_stays() {
        let (mut d, _sent, dir) = delivery(
            "spoolfile",
            vec![
                Err(SendError::Permanent {
                    reason: "HTTP 400".to_string(),
                }),
                busy(None),
            ],
        );
        let mut host = Host {
            interrupt_waits: true,
            ..Host::default()
        };
        let file = Request {
            origin: Origin::SpoolFile,
            ..fresh(2)
        };
        assert!(d.deliver(&file, &mut host));
        assert!(!d.deliver(&file, &mut host));
        assert_eq!((host.lost, host.kept), (2, 2));
        assert!(
            d.spool().list().is_empty(),
            "a kept spool file is not copied"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Refuses for good (a final answer, `refusal`) every request that holds
    /// a span named "poison", as a server whose decoder cannot take one
    /// span refuses the request it is in; takes the rest. Counts requests.
    struct PoisonRefusing {
        refusal: fn() -> SendError,
        everything: bool,
        accepted: Arc<Mutex<Vec<Vec<u8>>>>,
        requests: Arc<Mutex<u64>>,
    }

    impl Transport for PoisonRefusing {
        fn send(
            &mut self,
            body: &[u8],
            format: BodyFormat,
            gzipped: bool,
        ) -> Result<Accepted, SendError> {
            *self.requests.lock().unwrap() += 1;
            let spans = crate::export::otlp_decode::decode_body(body, format, gzipped)
                .expect("a body the server reads");
            if self.everything || spans.iter().any(|s| s.name == "poison") {
                return Err((self.refusal)());
            }
            self.accepted
                .lock()
                .unwrap()
                .push(plain_body(body, gzipped).unwrap());
            Ok(Accepted::default())
        }
        fn describe(&self) -> String {
            "poison-refusing:".to_string()
        }
    }

    fn bad_request() -> SendError {
        SendError::Permanent {
            reason: "HTTP 400: proto: exceeded maximum recursion depth".to_string(),
        }
    }

    /// A request of spans with these names (ids by position), encoded as
    /// the exporter would.
    fn named_spans(format: BodyFormat, gzip: bool, names: &[&str]) -> Vec<u8> {
        let pool = crate::buffer::payload_pool::PayloadPool::with_mib(4).expect("pool");
        let records: Vec<Box<SpanRecord>> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                // SAFETY: all-zero bytes are an empty record.
                let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
                r.trace_id = [7; 16];
                r.span_id = (i as u64 + 1).to_be_bytes();
                r.start_unix_ns = 1_700_000_000_000_000_000;
                r.end_unix_ns = r.start_unix_ns + 5;
                r.name = r.store_text(name.as_bytes(), 256, &pool).0;
                r
            })
            .collect();
        let views: Vec<SpanView> = records.iter().map(|r| SpanView::new(r, &pool)).collect();
        let mut enc = RequestEncoder::new(format, gzip, 100_000_000, names.len());
        let n = enc.encode_prefix(&ResourceInfo::new("poison", &[]), &views);
        assert_eq!(n, names.len());
        enc.body().to_vec()
    }

    /// Delivers `names` as one request of `origin` to a `PoisonRefusing`
    /// server: the host, the span names it took (in order), and how many
    /// requests were sent.
    fn deliver_to_poison_refusing(
        name: &str,
        (format, gzip): (BodyFormat, bool),
        names: &[&str],
        refusal: fn() -> SendError,
        everything: bool,
    ) -> (Host, Vec<String>, u64) {
        let body = named_spans(format, gzip, names);
        let (host, taken, requests) = deliver_one_request(
            name,
            (format, gzip),
            &body,
            names.len(),
            |accepted, requests| {
                Box::new(PoisonRefusing {
                    refusal,
                    everything,
                    accepted,
                    requests,
                })
            },
        );
        (host, taken.into_iter().map(|s| s.name).collect(), requests)
    }

    /// Delivers `body` (`spans` spans) as one fresh request to the
    /// transport `server` makes, given where to put the bodies it takes
    /// and its count of requests: the host, the spans taken (in order),
    /// and how many requests were sent. Nothing may be left spooled.
    fn deliver_one_request(
        name: &str,
        (format, gzip): (BodyFormat, bool),
        body: &[u8],
        spans: usize,
        server: impl FnOnce(Arc<Mutex<Vec<Vec<u8>>>>, Arc<Mutex<u64>>) -> Box<dyn Transport>,
    ) -> (Host, Vec<crate::export::otlp_decode::DecodedSpan>, u64) {
        let (mut d, _sent, dir) = delivery(name, vec![]);
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(0));
        d.transport = server(Arc::clone(&accepted), Arc::clone(&requests));
        let mut host = Host::default();
        assert!(d.deliver(
            &fresh_body(body, (format, gzip), spans as u64, 0),
            &mut host
        ));
        assert!(d.spool().list().is_empty(), "{name}: nothing spooled");
        std::fs::remove_dir_all(&dir).ok();
        let taken = accepted
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| crate::export::otlp_decode::decode_body(b, format, false).unwrap())
            .collect();
        let requests = *requests.lock().unwrap();
        (host, taken, requests)
    }

    #[test]
    fn one_span_a_server_refuses_costs_that_span_not_its_request() {
        // 511 spans and one the server cannot take (a value nested past its
        // decoder's limit): the server refuses the request, and all 512
        // were counted lost. Split in halves until the span is alone, the
        // 511 arrive, once each, in about 2 log2(512) requests more.
        for (format, gzip) in BODY_FORMATS {
            let what = format!("{format:?} gzip={gzip}");
            for poison_at in [0, 200, 511] {
                let mut names = vec!["llm.chat"; 512];
                names[poison_at] = "poison";
                let name = format!("poison-{format:?}-{gzip}-{poison_at}");
                let (host, taken, requests) =
                    deliver_to_poison_refusing(&name, (format, gzip), &names, bad_request, false);
                assert_eq!(
                    (host.delivered, host.lost),
                    (511, 1),
                    "{what} at {poison_at}"
                );
                assert_eq!(taken.len(), 511, "{what}: each once");
                assert!(taken.iter().all(|n| n == "llm.chat"), "{what}");
                assert!(requests <= 1 + 2 * 9, "{what}: {requests} requests");
                assert_eq!(
                    host.lost_reasons,
                    [
                        "HTTP 400: proto: exceeded maximum recursion depth (the other 511 of its \
                      request delivered after splitting it)"
                    ],
                    "{what}"
                );
            }
        }
    }

    #[test]
    fn a_server_refusing_every_span_costs_three_requests_a_batch_not_one_a_span() {
        let names = vec!["llm.chat"; 512];
        let (host, taken, requests) = deliver_to_poison_refusing(
            "refuses-all",
            (BodyFormat::Protobuf, false),
            &names,
            bad_request,
            true,
        );
        assert_eq!((host.delivered, host.lost, taken.len()), (0, 512, 0));
        assert_eq!(requests, 3, "the request and its two halves");
        assert_eq!(
            host.lost_reasons.len(),
            1,
            "one line: {:?}",
            host.lost_reasons
        );
        assert!(
            host.lost_reasons[0].contains("both refused"),
            "{:?}",
            host.lost_reasons
        );
    }

    #[test]
    fn a_request_refused_for_who_sends_it_or_where_is_not_split() {
        // 401, 403, 404: the server refuses any request from this sender.
        let misdirected = || SendError::Misdirected {
            reason: "HTTP 401: no token".to_string(),
        };
        let names = vec!["llm.chat"; 64];
        let (host, _, requests) = deliver_to_poison_refusing(
            "refuses-sender",
            (BodyFormat::Protobuf, false),
            &names,
            misdirected,
            true,
        );
        assert_eq!((host.delivered, host.lost, requests), (0, 64, 1));
    }

    #[test]
    fn two_spans_a_server_refuses_cost_the_smallest_part_split_off_that_holds_both() {
        // Spans 260 and 300 of 512: 256..512 refused, 256..384 refused,
        // 256..320 refused, and its halves (one poison span each) refused
        // both: 64 lost, 448 delivered, in 9 requests.
        let mut names = vec!["llm.chat"; 512];
        names[260] = "poison";
        names[300] = "poison";
        let (host, taken, requests) = deliver_to_poison_refusing(
            "two-poisons",
            (BodyFormat::Protobuf, false),
            &names,
            bad_request,
            false,
        );
        assert_eq!((host.delivered, host.lost, taken.len()), (448, 64, 448));
        assert_eq!(requests, 9);
        assert!(
            host.lost_reasons[0].contains("both refused")
                && host.lost_reasons[0].contains("the other 448 of its request delivered"),
            "{:?}",
            host.lost_reasons
        );
    }

    #[test]
    fn a_spool_file_with_one_span_a_server_refuses_delivers_the_others() {
        // A file spooled through an outage, one span of it refused when it
        // is replayed: the file is done with, its other spans delivered.
        let dir =
            std::env::temp_dir().join(format!("sg-delivery-poison-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut names = vec!["llm.chat"; 100];
        names[37] = "poison";
        let body = named_spans(BodyFormat::Protobuf, true, &names);
        let spool = SpoolDir::new(&dir, 1 << 20);
        spool
            .write(&SpooledBatch {
                format: BodyFormat::Protobuf,
                gzipped: true,
                spans: 100,
                cut_counted: 0,
                cut_at: Vec::new(),
                body,
            })
            .expect("spooled");
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let mut d = Delivery::new(
            Box::new(PoisonRefusing {
                refusal: bad_request,
                everything: false,
                accepted: Arc::clone(&accepted),
                requests: Arc::default(),
            }),
            spool,
            Duration::from_secs(30),
            1 << 20,
        );
        let mut host = Host::default();
        assert!(d.replay_spool(&mut host), "drained");
        assert_eq!((host.delivered, host.lost, host.kept), (99, 1, 0));
        let taken: Vec<String> = accepted
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| {
                crate::export::otlp_decode::decode_body(b, BodyFormat::Protobuf, false).unwrap()
            })
            .map(|s| s.name)
            .collect();
        assert_eq!(taken.len(), 99);
        assert!(taken.iter().all(|n| n == "llm.chat"));
        assert!(d.spool().list().is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A host that something else needs from its `free`th look on (a
    /// flush called, the queue filling) while a replay goes on.
    struct NeededAfter {
        looks: std::cell::Cell<u32>,
        free: u32,
        inner: Host,
    }

    impl DeliveryHost for NeededAfter {
        fn wait(&mut self, wait: Duration) -> bool {
            self.inner.wait(wait)
        }
        fn busy(&self) -> bool {
            self.looks.set(self.looks.get() + 1);
            self.looks.get() > self.free
        }
        fn record(&mut self, outcome: Outcome<'_>) {
            self.inner.record(outcome);
        }
    }

    /// Torn files (a disk that filled mid-write, files planted by a
    /// program of this user) are set aside, not sent: no send, so the
    /// pass asked nobody whether to give way, and one through 100,000 of
    /// them held the exporter (a flush, a shutdown's deadline, the
    /// filling queue) until it had set them all aside. It gives way
    /// between them, and the next pass goes on where it stopped.
    #[test]
    fn a_replay_through_torn_files_gives_way_between_them() {
        let (mut d, sent, dir) = delivery("torn-give-way", vec![]);
        let torn = 200;
        for _ in 0..=torn {
            d.spool()
                .write(&SpooledBatch {
                    format: BodyFormat::Protobuf,
                    gzipped: false,
                    spans: 1,
                    cut_counted: 0,
                    cut_at: Vec::new(),
                    body: crate::export::spool::tests::proto_body(1, 0),
                })
                .expect("spooled");
        }
        let files = d.spool().list();
        for path in &files[..torn] {
            let bytes = std::fs::read(path).expect("read");
            std::fs::write(path, &bytes[..bytes.len() - 1]).expect("tear");
        }
        let mut host = NeededAfter {
            looks: std::cell::Cell::new(0),
            free: 10,
            inner: Host::default(),
        };
        assert!(!d.replay_spool(&mut host), "gave way: not drained");
        let first = d.spool().take_set_aside().len();
        assert!(
            first <= 10,
            "{first} files set aside in a pass needed after 10 looks"
        );
        assert!(sent.lock().unwrap().is_empty());
        let mut host = Host::default();
        assert!(
            d.replay_spool(&mut host),
            "the next pass goes on to the end"
        );
        let rest = d.spool().take_set_aside().len();
        assert_eq!(first + rest, torn, "each torn file set aside once");
        assert_eq!((host.delivered, sent.lock().unwrap().len()), (1, 1));
        std::fs::remove_dir_all(&dir).ok();
    }

    fn gateway_timeout() -> SendError {
        SendError::Transient {
            reason: "HTTP 504".to_string(),
            retry_after: None,
        }
    }

    fn unavailable() -> SendError {
        SendError::Transient {
            reason: "HTTP 503".to_string(),
            retry_after: None,
        }
    }

    /// A delivery replaying the spool in `dir` to `transport`, one attempt
    /// a request (a retry budget of zero: no waits in a test).
    fn replaying(dir: &std::path::Path, transport: PoisonRefusing) -> Delivery {
        Delivery::new(
            Box::new(transport),
            SpoolDir::new(dir, 1 << 20),
            Duration::ZERO,
            1 << 20,
        )
    }

    fn spool_names(spool: &SpoolDir, names: &[&str]) {
        spool
            .write(&SpooledBatch {
                format: BodyFormat::Protobuf,
                gzipped: false,
                spans: names.len() as u32,
                cut_counted: 0,
                cut_at: Vec::new(),
                body: named_spans(BodyFormat::Protobuf, false, names),
            })
            .expect("spooled");
    }

    /// One spool file a gateway answers 503 or 504 at every replay (it
    /// times out, or dies, on that one request and takes the others): it
    /// stayed at the head of the spool for good, and every file behind
    /// it, and every batch spooled while each failure counted the backend
    /// down, waited until the cap evicted them (3 files, 5 replays: none
    /// delivered). Set back behind the others, they go at the next
    /// replay; after `MAX_SETBACKS` failures while its probes were taken, the
    /// file is split: its other spans delivered, the marked one counted
    /// lost saying why. Between replays, a batch is spooled (spans ended
    /// while the backend counted down).
    #[test]
    fn a_spool_file_a_gateway_never_takes_holds_no_other_back() {
        for (refusal, code) in [
            (unavailable as fn() -> SendError, "503"),
            (gateway_timeout, "504"),
        ] {
            let dir =
                std::env::temp_dir().join(format!("sg-delivery-hol-{code}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let spool = SpoolDir::new(&dir, 1 << 20);
            spool_names(&spool, &["llm.chat", "poison", "llm.chat"]);
            spool_names(&spool, &["llm.chat"; 3]);
            spool_names(&spool, &["llm.chat"; 4]);
            let (accepted, requests) = (Arc::new(Mutex::new(Vec::new())), Arc::default());
            let mut d = replaying(
                &dir,
                PoisonRefusing {
                    refusal,
                    everything: false,
                    accepted: Arc::clone(&accepted),
                    requests: Arc::clone(&requests),
                },
            );
            let mut host = Host::default();
            // The first replay meets the file first: the probe after its
            // failure is taken (the backend is up), so the rest go at once.
            assert!(!d.replay_spool(&mut host));
            assert_eq!(host.delivered, 3 + 4, "{code}: the files behind it went");
            assert_eq!(d.spool().list().len(), 1, "{code}");
            let mut spooled = 0;
            let mut replays = 1;
            while d.spool().list().iter().any(|p| {
                let spans = crate::export::spool::read_spool_file(p, 1 << 20).expect("a batch");
                let names = crate::export::otlp_decode::decode_body(
                    &spans.body,
                    BodyFormat::Protobuf,
                    false,
                );
                names.expect("decoded").iter().any(|s| s.name == "poison")
            }) {
                assert!(replays < 4 * MAX_SETBACKS, "{code}: still there");
                spool_names(&spool, &["llm.chat"; 2]);
                spooled += 2;
                d.down_until = None;
                d.replay_spool(&mut host);
                replays += 1;
            }
            d.down_until = None;
            assert!(d.replay_spool(&mut host), "{code}: drained");
            let taken: Vec<String> = accepted
                .lock()
                .unwrap()
                .iter()
                .flat_map(|b| {
                    crate::export::otlp_decode::decode_body(b, BodyFormat::Protobuf, false).unwrap()
                })
                .map(|s| s.name)
                .collect();
            assert_eq!(taken.len() as u64, 2 + 3 + 4 + spooled, "{code}: each once");
            assert!(taken.iter().all(|n| n == "llm.chat"), "{code}");
            // Every span delivered once or lost once, none left.
            assert_eq!(
                (host.delivered, host.lost),
                (2 + 3 + 4 + spooled, 1),
                "{code}"
            );
            assert!(d.spool().list().is_empty(), "{code}");
            assert_eq!(
                host.lost_reasons,
                [format!(
                    "HTTP {code}: a spool file answered so at 5 replays while the backend took \
                     other requests, and the spans of it the server never takes are counted lost \
                     (the other 2 of its request delivered after splitting it)"
                )],
                "{code}"
            );
            std::fs::remove_dir_all(&dir).ok();
        }
    }

    /// A backend that is down (it answers 503 to everything): the first
    /// replay costs one request and one probe, not one a file, and each
    /// one after a probe alone (sent first: no file until one is taken);
    /// nothing is counted set back, split or lost, and every file stays.
    #[test]
    fn a_backend_that_is_down_costs_a_replay_a_request_and_a_probe_not_one_a_file() {
        let dir = std::env::temp_dir().join(format!("sg-delivery-down-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let spool = SpoolDir::new(&dir, 1 << 20);
        for _ in 0..10 {
            spool_names(&spool, &["llm.chat"; 3]);
        }
        let requests = Arc::new(Mutex::new(0));
        let mut d = replaying(
            &dir,
            PoisonRefusing {
                refusal: unavailable,
                everything: true,
                accepted: Arc::default(),
                requests: Arc::clone(&requests),
            },
        );
        let mut host = Host::default();
        for replay in 1..=3 * MAX_SETBACKS as u64 {
            d.down_until = None;
            assert!(!d.replay_spool(&mut host));
            assert_eq!(
                *requests.lock().unwrap(),
                1 + replay,
                "a file and a probe at the first replay, a probe at each after"
            );
            // Counted down: a replay before the probe sends nothing.
            assert!(!d.replay_spool(&mut host));
            assert_eq!(*requests.lock().unwrap(), 1 + replay);
        }
        let files = d.spool().list();
        assert_eq!(files.len(), 10);
        assert!(files.iter().all(|f| crate::export::spool::setbacks(f) == 0));
        assert_eq!((host.delivered, host.lost), (0, 0));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A batch of live traffic (two spans) delivered as the exporter
    /// delivers it: sent, or spooled while the backend counts down.
    fn live(d: &mut Delivery, host: &mut Host) {
        let body = named_spans(BodyFormat::Protobuf, false, &["llm.chat"; 2]);
        d.deliver(
            &fresh_body(&body, (BodyFormat::Protobuf, false), 2, 0),
            host,
        );
    }

    /// Whether the spool still holds the file with the span "poison", and
    /// how many set-backs its name counts.
    fn poison_file(spool: &SpoolDir) -> Option<u32> {
        spool.list().iter().find_map(|p| {
            let batch = crate::export::spool::read_spool_file(p, 1 << 20).expect("a batch");
            let spans =
                crate::export::otlp_decode::decode_body(&batch.body, BodyFormat::Protobuf, false);
            spans
                .expect("decoded")
                .iter()
                .any(|s| s.name == "poison")
                .then(|| crate::export::spool::setbacks(p))
        })
    }

    /// A spool dir `name` holding one file with a span "poison" between
    /// two others, replayed to a server answering `refusal` to it.
    fn lone_poison(
        name: &str,
        refusal: fn() -> SendError,
        everything: bool,
    ) -> (Delivery, std::path::PathBuf, Arc<Mutex<u64>>) {
        let dir = std::env::temp_dir().join(format!("sg-delivery-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        spool_names(
            &SpoolDir::new(&dir, 1 << 20),
            &["llm.chat", "poison", "llm.chat"],
        );
        let requests = Arc::new(Mutex::new(0));
        let d = replaying(
            &dir,
            PoisonRefusing {
                refusal,
                everything,
                accepted: Arc::default(),
                requests: Arc::clone(&requests),
            },
        );
        (d, dir, requests)
    }

    /// A poison file alone in the spool (or the last one left): no other
    /// file is ever delivered in its replay, so its set-back was never
    /// counted and it was tried once a probe until the cap evicted it, its
    /// good spans with it. The probe after each failure says the backend
    /// is up: each replay under traffic counts once, and the fifth splits
    /// it (its 2 other spans delivered, 1 lost).
    #[test]
    fn a_poison_file_alone_is_split_after_five_replays_while_live_batches_get_through() {
        for (refusal, code) in [
            (unavailable as fn() -> SendError, "503"),
            (gateway_timeout, "504"),
        ] {
            let (mut d, dir, _) = lone_poison(&format!("alone-{code}"), refusal, false);
            let mut host = Host::default();
            for replay in 1..=MAX_SETBACKS {
                // No probe interval waited for: a set-back counted leaves
                // the backend up for live batches (counted down, they were
                // spooled, and nothing told of the backend at the next
                // replay).
                live(&mut d, &mut host);
                assert_eq!(
                    d.spool().list().len(),
                    1,
                    "{code}: live batches go straight"
                );
                d.replay_spool(&mut host);
                let left = poison_file(d.spool());
                if replay < MAX_SETBACKS {
                    assert_eq!(left, Some(replay), "{code}: counted at replay {replay}");
                } else {
                    assert_eq!(left, None, "{code}: split at replay {replay}");
                }
            }
            assert_eq!(
                (host.delivered, host.lost),
                (2 * MAX_SETBACKS as u64 + 2, 1),
                "{code}"
            );
            assert!(d.spool().list().is_empty(), "{code}");
            std::fs::remove_dir_all(&dir).ok();
        }
    }

    /// Two poison files alone: the second fails right after the first
    /// (two in a row, so the replay stops there), and was not counted:
    /// each counted every second replay, as they swapped places. Each is
    /// counted on its own probe's word.
    #[test]
    fn two_poison_files_alone_are_each_counted_at_every_replay() {
        let (mut d, dir, _) = lone_poison("two-alone", gateway_timeout, false);
        spool_names(d.spool(), &["poison", "llm.chat"]);
        let mut host = Host::default();
        for replay in 1..MAX_SETBACKS {
            d.down_until = None; // the probe interval passed
            live(&mut d, &mut host);
            d.replay_spool(&mut host);
            let mut counts: Vec<u32> = d
                .spool()
                .list()
                .iter()
                .map(|f| crate::export::spool::setbacks(f))
                .collect();
            counts.sort();
            assert_eq!(counts, [replay, replay], "at replay {replay}");
        }
        d.down_until = None;
        live(&mut d, &mut host);
        d.replay_spool(&mut host);
        assert!(d.spool().list().is_empty(), "both split at the fifth");
        assert_eq!(
            (host.delivered, host.lost),
            (2 * MAX_SETBACKS as u64 + 3, 2)
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Spans spooled while a poison file's failure counted the backend
    /// down (steady traffic): the next replay met the poison file first,
    /// nothing delivered before it in that replay, and did not count it;
    /// the one after did. A set-back counted every second replay, the
    /// split took 10. Each failure is counted on its probe's word: the
    /// split comes at the fifth replay.
    #[test]
    fn under_steady_traffic_each_replay_the_poison_file_fails_counts_once() {
        let dir = std::env::temp_dir().join(format!("sg-delivery-steady-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let spool = SpoolDir::new(&dir, 1 << 20);
        spool_names(&spool, &["llm.chat"; 3]);
        spool_names(&spool, &["llm.chat", "poison", "llm.chat"]);
        let mut d = replaying(
            &dir,
            PoisonRefusing {
                refusal: gateway_timeout,
                everything: false,
                accepted: Arc::default(),
                requests: Arc::default(),
            },
        );
        let mut host = Host::default();
        for replay in 1..=MAX_SETBACKS {
            // Ended while the backend counted down: spooled.
            spool_names(&spool, &["llm.chat"; 2]);
            d.down_until = None;
            d.replay_spool(&mut host);
            let left = poison_file(d.spool());
            if replay < MAX_SETBACKS {
                assert_eq!(left, Some(replay), "counted at replay {replay}");
            } else {
                assert_eq!(left, None, "split at replay {replay}");
            }
        }
        assert_eq!(
            (host.delivered, host.lost),
            (3 + 2 * MAX_SETBACKS as u64 + 2, 1)
        );
        assert!(d.spool().list().is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A backend that is down: live batches fail too (and are spooled),
    /// and so does the probe after the poison file's failure: nothing says
    /// the file is the problem. The first replay costs one request and one
    /// probe, each after a probe alone; nothing is counted set back, split
    /// or lost.
    #[test]
    fn a_lone_file_to_a_backend_that_is_down_is_never_split() {
        let (mut d, dir, requests) = lone_poison("alone-down", unavailable, true);
        let mut host = Host::default();
        for interval in 1..=3 * MAX_SETBACKS as u64 {
            d.down_until = None;
            live(&mut d, &mut host); // fails: spooled
            d.down_until = None;
            let before = *requests.lock().unwrap();
            assert!(!d.replay_spool(&mut host));
            assert_eq!(
                *requests.lock().unwrap(),
                before + if interval == 1 { 2 } else { 1 },
                "a file and a probe at the first replay, a probe at each after"
            );
            assert_eq!(d.spool().list().len() as u64, 1 + interval);
        }
        let files = d.spool().list();
        assert!(files.iter().all(|f| crate::export::spool::setbacks(f) == 0));
        assert_eq!(poison_file(d.spool()), Some(0));
        assert_eq!((host.delivered, host.lost), (0, 0));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A backend answering `refusal` to any request with a span "poison",
    /// or to everything while `down`; it counts the requests it sees and,
    /// of them, the empty ones (a replay's probes), the probes sent with
    /// no `limit_next` of `PROBE_TIMEOUT` before them, and the requests of
    /// spans sent so (each a whole request timeout to a black hole).
    struct Probed {
        refusal: fn() -> SendError,
        down: Arc<std::sync::atomic::AtomicBool>,
        requests: Arc<Mutex<u64>>,
        probes: Arc<Mutex<u64>>,
        limit: Option<Duration>,
        unlimited_probes: Arc<Mutex<u64>>,
        whole_timeouts: Arc<Mutex<u64>>,
    }

    impl Transport for Probed {
        fn send(
            &mut self,
            body: &[u8],
            format: BodyFormat,
            gzipped: bool,
        ) -> Result<Accepted, SendError> {
            *self.requests.lock().unwrap() += 1;
            let spans = crate::export::otlp_decode::decode_body(body, format, gzipped)
                .expect("a body the server reads");
            let limit = self.limit.take();
            if spans.is_empty() {
                *self.probes.lock().unwrap() += 1;
                if limit != Some(super::super::retry::PROBE_TIMEOUT) {
                    *self.unlimited_probes.lock().unwrap() += 1;
                }
            } else if limit.is_none() {
                *self.whole_timeouts.lock().unwrap() += 1;
            }
            if self.down.load(std::sync::atomic::Ordering::Relaxed)
                || spans.iter().any(|s| s.name == "poison")
            {
                return Err((self.refusal)());
            }
            Ok(Accepted::default())
        }
        fn describe(&self) -> String {
            "probed:".to_string()
        }
        fn limit_next(&mut self, limit: Duration) {
            self.limit = Some(limit);
        }
    }

    /// What a test of `Probed` looks at.
    struct ProbedSpool {
        d: Delivery,
        dir: std::path::PathBuf,
        down: Arc<std::sync::atomic::AtomicBool>,
        requests: Arc<Mutex<u64>>,
        probes: Arc<Mutex<u64>>,
        unlimited_probes: Arc<Mutex<u64>>,
        whole_timeouts: Arc<Mutex<u64>>,
    }

    /// A spool dir `name` holding files of spans with these names, in
    /// `format`, replayed (no retries) to a `Probed` answering `refusal`.
    fn probed(
        name: &str,
        format: BodyFormat,
        refusal: fn() -> SendError,
        files: &[&[&str]],
    ) -> ProbedSpool {
        let dir = std::env::temp_dir().join(format!("sg-delivery-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let spool = SpoolDir::new(&dir, 1 << 20);
        for names in files {
            spool
                .write(&SpooledBatch {
                    format,
                    gzipped: false,
                    spans: names.len() as u32,
                    cut_counted: 0,
                    cut_at: Vec::new(),
                    body: named_spans(format, false, names),
                })
                .expect("spooled");
        }
        let (down, requests, probes) = (Arc::default(), Arc::default(), Arc::default());
        let (unlimited_probes, whole_timeouts) = (Arc::default(), Arc::default());
        let d = Delivery::new(
            Box::new(Probed {
                refusal,
                down: Arc::clone(&down),
                requests: Arc::clone(&requests),
                probes: Arc::clone(&probes),
                limit: None,
                unlimited_probes: Arc::clone(&unlimited_probes),
                whole_timeouts: Arc::clone(&whole_timeouts),
            }),
            SpoolDir::new(&dir, 1 << 20),
            Duration::ZERO,
            1 << 20,
        );
        ProbedSpool {
            d,
            dir,
            down,
            requests,
            probes,
            unlimited_probes,
            whole_timeouts,
        }
    }

    /// The set-backs each spool file's name counts, sorted.
    fn setback_counts(spool: &SpoolDir) -> Vec<u32> {
        let mut counts: Vec<u32> = spool
            .list()
            .iter()
            .map(|f| crate::export::spool::setbacks(f))
            .collect();
        counts.sort();
        counts
    }

    /// A poison file alone in the spool with no live traffic at all (an
    /// agent restarted with one bad batch spooled, idle): nothing was ever
    /// accepted, so its set-backs were never counted and it was tried once
    /// a probe interval until the cap evicted it, its good spans with it.
    /// After its failure an empty request (the probe) asks the backend:
    /// taken, the file is the problem and the set-back counts; the fifth
    /// replay splits it. Each replay costs the file's request and one
    /// probe; a probe is never counted delivered. Both encodings.
    #[test]
    fn a_poison_file_alone_with_no_traffic_is_split_on_a_probe_s_word() {
        for (format, refusal, code) in [
            (
                BodyFormat::Protobuf,
                unavailable as fn() -> SendError,
                "503",
            ),
            (BodyFormat::Json, gateway_timeout, "504"),
        ] {
            let mut t = probed(
                &format!("probe-alone-{code}"),
                format,
                refusal,
                &[&["llm.chat", "poison", "llm.chat"]],
            );
            let mut host = Host::default();
            for replay in 1..MAX_SETBACKS {
                t.d.down_until = None; // the probe interval passed
                let before = *t.requests.lock().unwrap();
                assert!(!t.d.replay_spool(&mut host));
                assert_eq!(
                    *t.requests.lock().unwrap(),
                    before + 2,
                    "{code}: the file and one probe"
                );
                assert_eq!(
                    setback_counts(t.d.spool()),
                    [replay],
                    "{code}: replay {replay}"
                );
            }
            t.d.down_until = None;
            t.d.replay_spool(&mut host);
            assert!(t.d.spool().list().is_empty(), "{code}: split at the fifth");
            assert_eq!(*t.probes.lock().unwrap(), MAX_SETBACKS as u64, "{code}");
            assert_eq!(
                *t.unlimited_probes.lock().unwrap(),
                0,
                "{code}: each probe given PROBE_TIMEOUT"
            );
            assert_eq!((host.delivered, host.lost), (2, 1), "{code}");
            std::fs::remove_dir_all(&t.dir).ok();
        }
    }

    /// Live batches taken just before the backend went down (503 to
    /// everything) said "accepted since" at the outage's first replay: the
    /// first file was counted set back, and the next, a second failure in
    /// a row, too (two files that are fine, each a fifth of the way to
    /// their split). What vouches for the backend must come after the
    /// failure judged: the probe, which fails too. Nothing counted; a file
    /// and a probe at the first replay, then a probe alone (sent first, no
    /// file until one is taken); back up, everything goes.
    #[test]
    fn files_that_are_fine_are_not_counted_set_back_at_an_outage_s_start() {
        let mut t = probed(
            "outage-start",
            BodyFormat::Protobuf,
            unavailable,
            &[&["llm.chat"; 3], &["llm.chat"; 4]],
        );
        let mut host = Host::default();
        live(&mut t.d, &mut host);
        assert_eq!(host.delivered, 2, "taken while the backend was up");
        t.down.store(true, std::sync::atomic::Ordering::Relaxed);
        for replay in 1..=2 * MAX_SETBACKS {
            t.d.down_until = None; // the probe interval passed
            let before = *t.requests.lock().unwrap();
            assert!(!t.d.replay_spool(&mut host));
            assert_eq!(setback_counts(t.d.spool()), [0, 0], "replay {replay}");
            assert_eq!(
                *t.requests.lock().unwrap(),
                before + if replay == 1 { 2 } else { 1 },
                "a file and a probe at the first replay, a probe at each after"
            );
        }
        t.down.store(false, std::sync::atomic::Ordering::Relaxed);
        t.d.down_until = None;
        assert!(t.d.replay_spool(&mut host));
        assert_eq!((host.delivered, host.lost), (2 + 3 + 4, 0));
        std::fs::remove_dir_all(&t.dir).ok();
    }

    fn busy_for_a_second() -> SendError {
        SendError::Transient {
            reason: "HTTP 503".to_string(),
            retry_after: Some(Duration::from_secs(1)),
        }
    }

    /// A server that asked to be left alone (503 with Retry-After) is not
    /// sent a probe right after: the file is set back uncounted, and
    /// nothing goes, probe or file, before the time it asked.
    #[test]
    fn no_probe_goes_against_a_retry_after() {
        let mut t = probed(
            "probe-retry-after",
            BodyFormat::Protobuf,
            busy_for_a_second,
            &[&["llm.chat", "poison", "llm.chat"]],
        );
        let mut host = Host::default();
        assert!(!t.d.replay_spool(&mut host));
        assert_eq!(*t.requests.lock().unwrap(), 1, "no probe");
        assert_eq!(setback_counts(t.d.spool()), [0]);
        assert!(t.d.down_until().is_some(), "the server's wish holds");
        assert!(!t.d.replay_spool(&mut host));
        assert_eq!(
            *t.requests.lock().unwrap(),
            1,
            "nothing before the wait's end"
        );
        std::fs::remove_dir_all(&t.dir).ok();
    }

    /// The file that failed with a Retry-After was known by its device,
    /// inode and body length. Once it is gone (evicted, taken by another
    /// replayer) the file system hands its inode to the next file made,
    /// and a batch spooled during the wait, of spans alike (same length),
    /// was taken for it: its set-back counted, unsent, though it never
    /// failed (five such splits it as poison). Here the inode keeps its
    /// length and takes other spans (written in place: what a reuse
    /// gives): it is sent and delivered, nothing counted against it.
    #[test]
    fn another_file_at_the_inode_of_one_that_failed_is_not_taken_for_it() {
        let mut t = probed(
            "probe-inode-reused",
            BodyFormat::Protobuf,
            busy_for_a_second,
            &[&["llm.chat", "poison", "llm.chat"]],
        );
        let mut host = Host::default();
        assert!(!t.d.replay_spool(&mut host));
        assert_eq!(setback_counts(t.d.spool()), [0]);
        let file = t.d.spool().list()[0].clone();
        let mut bytes = std::fs::read(&file).expect("read");
        while let Some(at) = bytes.windows(6).position(|w| w == b"poison") {
            bytes[at..at + 6].copy_from_slice(b"benign");
        }
        // In place: the same device and inode, the same length.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
            .expect("rewritten");
        assert_eq!(poison_file(t.d.spool()), None);
        t.d.down_until = None; // the server's wait passed
        t.d.replay_spool(&mut host);
        assert_eq!(
            (host.delivered, host.lost, setback_counts(t.d.spool())),
            (3, 0, vec![]),
            "the other file delivered, no set-back counted against it"
        );
        std::fs::remove_dir_all(&t.dir).ok();
    }

    /// A gateway answering 503 with Retry-After to one spool file only,
    /// and 200 to everything else (the probe too): no probe went after a
    /// Retry-After, so the file was never counted set back, never split,
    /// tried every replay until the cap evicted it, its good spans with
    /// it. The wait honoured, a probe goes first at the next replay:
    /// taken, the failure counts; the fifth splits the file. One probe a
    /// set-back counted, none counted delivered.
    #[test]
    fn a_poison_file_behind_a_retry_after_is_split_on_a_probe_after_the_wait() {
        let mut t = probed(
            "probe-after-wait",
            BodyFormat::Protobuf,
            busy_for_a_second,
            &[&["llm.chat", "poison", "llm.chat"], &["llm.chat"; 2]],
        );
        let mut host = Host::default();
        let mut replays = 0;
        while poison_file(t.d.spool()).is_some() {
            replays += 1;
            assert!(
                replays <= 4 * MAX_SETBACKS,
                "never split: set-backs {:?}",
                setback_counts(t.d.spool())
            );
            t.d.down_until = None; // the server's wait passed
            t.d.replay_spool(&mut host);
        }
        assert_eq!((host.delivered, host.lost), (2 + 2, 1));
        assert!(t.d.spool().list().is_empty());
        assert_eq!(*t.probes.lock().unwrap(), MAX_SETBACKS as u64);
        assert_eq!(*t.unlimited_probes.lock().unwrap(), 0);
        assert_eq!(
            t.d.probes(),
            ProbeCount {
                sent: MAX_SETBACKS as u64,
                taken: MAX_SETBACKS as u64
            }
        );
        assert_eq!(
            host.lost_reasons,
            [
                "HTTP 503: a spool file answered so at 5 replays while the backend took other \
              requests, and the spans of it the server never takes are counted lost (the \
              other 2 of its request delivered after splitting it)"
            ]
        );
        std::fs::remove_dir_all(&t.dir).ok();
    }

    /// The wait before that probe is the server's Retry-After as a retry
    /// honours it: 0 is a second (no probe back to back with the refusal,
    /// no spinning), one within the retry budget is waited for, one of
    /// days is a second too (the backend is not left unasked, and the
    /// file uncounted, for days). The file already set back once, so that
    /// it gets one attempt.
    #[test]
    fn the_probe_after_a_retry_after_neither_spins_nor_starves() {
        fn right_away() -> SendError {
            SendError::Transient {
                reason: "HTTP 503".to_string(),
                retry_after: Some(Duration::ZERO),
            }
        }
        fn in_three_seconds() -> SendError {
            SendError::Transient {
                reason: "HTTP 503".to_string(),
                retry_after: Some(Duration::from_secs(3)),
            }
        }
        fn in_days() -> SendError {
            SendError::Transient {
                reason: "HTTP 503".to_string(),
                retry_after: Some(Duration::from_secs(u64::MAX)),
            }
        }
        for (refusal, waited, case) in [
            (right_away as fn() -> SendError, 1, "0"),
            (in_three_seconds, 3, "3"),
            (in_days, 1, "u64::MAX"),
        ] {
            let mut t = probed(
                &format!("probe-wait-{waited}-{}", case.len()),
                BodyFormat::Protobuf,
                refusal,
                &[&["llm.chat", "poison", "llm.chat"]],
            );
            t.d.policy = RetryPolicy::new(Duration::from_secs(5));
            let file = t.d.spool().list()[0].clone();
            std::fs::rename(
                &file,
                t.dir
                    .join(crate::export::spool::spool_file_name("000001-setback1")),
            )
            .expect("rename");
            let mut host = Host::default();
            let before = Instant::now();
            assert!(!t.d.replay_spool(&mut host));
            let after = Instant::now();
            let until = t.d.down_until().expect("a wait");
            let wait = Duration::from_secs(waited);
            assert!(
                until >= before + wait && until <= after + wait,
                "Retry-After {case}: waits {wait:?}"
            );
            for _ in 0..3 {
                assert!(!t.d.replay_spool(&mut host));
            }
            assert_eq!(*t.requests.lock().unwrap(), 1, "{case}: nothing before it");
            t.d.down_until = None; // the wait passed
            t.d.replay_spool(&mut host);
            assert_eq!(*t.probes.lock().unwrap(), 1, "{case}: a probe after it");
            assert_eq!(setback_counts(t.d.spool()), [2], "{case}: counted");
            std::fs::remove_dir_all(&t.dir).ok();
        }
    }

    fn timed_out() -> SendError {
        SendError::Transient {
            reason: "no answer within the request timeout".to_string(),
            retry_after: None,
        }
    }

    /// A backend that accepts connections and never answers: each replay
    /// sent a spool file, given a whole request timeout (10 s by default),
    /// then the probe (1 s): eleven seconds of the exporter thread a probe
    /// interval while ended spans queued. Once a probe found it down, the
    /// next replay probes first and sends no file until a probe is taken:
    /// one request timeout in all, then a probe a replay. Back up, every
    /// file goes.
    #[test]
    fn a_black_hole_costs_a_replay_a_probe_not_a_request_timeout() {
        let mut t = probed(
            "black-hole",
            BodyFormat::Protobuf,
            timed_out,
            &[&["llm.chat"; 3], &["llm.chat"; 4], &["llm.chat"; 2]],
        );
        t.down.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut host = Host::default();
        for replay in 1..=10 {
            t.d.down_until = None; // the probe interval passed
            assert!(!t.d.replay_spool(&mut host));
            assert_eq!(*t.probes.lock().unwrap(), replay, "one probe a replay");
            // Counted down: a replay before the probe moment sends nothing.
            assert!(!t.d.replay_spool(&mut host));
            assert_eq!(*t.probes.lock().unwrap(), replay);
        }
        assert_eq!(
            *t.whole_timeouts.lock().unwrap(),
            1,
            "a whole request timeout at the first replay alone"
        );
        assert_eq!(*t.requests.lock().unwrap(), 1 + 10);
        assert_eq!(*t.unlimited_probes.lock().unwrap(), 0);
        assert_eq!(t.d.probes(), ProbeCount { sent: 10, taken: 0 });
        assert_eq!(setback_counts(t.d.spool()), [0, 0, 0]);
        t.down.store(false, std::sync::atomic::Ordering::Relaxed);
        t.d.down_until = None;
        assert!(t.d.replay_spool(&mut host));
        assert_eq!((host.delivered, host.lost), (9, 0));
        assert_eq!(t.d.probes(), ProbeCount { sent: 11, taken: 1 });
        std::fs::remove_dir_all(&t.dir).ok();
    }

    /// After a spool file's failure with Retry-After, a live batch taken
    /// after the wait says the backend is up as a probe does: the next
    /// replay sends no probe, and counts the file set back.
    #[test]
    fn a_batch_taken_after_the_wait_vouches_as_a_probe() {
        let mut t = probed(
            "vouched-by-live",
            BodyFormat::Protobuf,
            busy_for_a_second,
            &[&["llm.chat", "poison", "llm.chat"]],
        );
        let mut host = Host::default();
        assert!(!t.d.replay_spool(&mut host));
        t.d.down_until = None; // the wait passed
        live(&mut t.d, &mut host);
        assert_eq!(host.delivered, 2);
        assert!(!t.d.replay_spool(&mut host));
        assert_eq!(*t.probes.lock().unwrap(), 0, "no probe needed");
        assert_eq!(*t.requests.lock().unwrap(), 2, "the file, then the batch");
        assert_eq!(setback_counts(t.d.spool()), [1]);
        std::fs::remove_dir_all(&t.dir).ok();
    }

    /// A spool file that fails while something else needs the thread (a
    /// half-full queue cuts the wait before a retry short, as while a
    /// request hangs until its timeout): it was kept without being set
    /// back, and the replay stopped at it, so it stayed first and was
    /// tried first at every replay, holding the files behind it. It is a
    /// failure of that file like any other: set back, and the next file
    /// goes.
    #[test]
    fn a_spool_file_whose_retry_wait_is_cut_short_is_set_back() {
        let dir = std::env::temp_dir().join(format!("sg-delivery-cut-wait-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let spool = SpoolDir::new(&dir, 1 << 20);
        spool_names(&spool, &["llm.chat"; 3]);
        spool_names(&spool, &["llm.chat", "poison", "llm.chat"]);
        spool_names(&spool, &["llm.chat"; 4]);
        let mut d = Delivery::new(
            Box::new(PoisonRefusing {
                refusal: gateway_timeout,
                everything: false,
                accepted: Arc::default(),
                requests: Arc::default(),
            }),
            SpoolDir::new(&dir, 1 << 20),
            Duration::from_secs(30), // retries would wait
            1 << 20,
        );
        let mut host = Host {
            interrupt_waits: true,
            ..Host::default()
        };
        d.replay_spool(&mut host);
        assert_eq!(host.delivered, 3 + 4, "the file behind it went");
        assert_eq!(poison_file(d.spool()), Some(1));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// How many arrays or maps a decoded value holds one in the other.
    fn nesting(v: &crate::export::otlp_decode::Value) -> usize {
        use crate::export::otlp_decode::Value;
        match v {
            Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
            Value::Map(members) => 1 + members.iter().map(|(_, v)| nesting(v)).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// A server whose protobuf decoder stops at 100 messages (Python's
    /// upb): it refuses for good any request with a value nested past 31
    /// maps (measured: tests/python/value_depth_limit.py), judged by
    /// decoding the request, and any with a span named "poison"; takes
    /// the rest. Counts requests.
    struct NestingLimited {
        accepted: Arc<Mutex<Vec<Vec<u8>>>>,
        requests: Arc<Mutex<u64>>,
        /// Past its nesting check, a body over this many bytes is
        /// answered 413.
        limit: usize,
        /// The size checked before the nesting (a proxy's or a receiver's
        /// body limit, read before the decoder runs).
        size_first: bool,
    }

    impl Transport for NestingLimited {
        fn send(
            &mut self,
            body: &[u8],
            format: BodyFormat,
            gzipped: bool,
        ) -> Result<Accepted, SendError> {
            *self.requests.lock().unwrap() += 1;
            let too_large = || SendError::TooLarge {
                reason: "HTTP 413".to_string(),
            };
            if self.size_first && body.len() > self.limit {
                return Err(too_large());
            }
            let spans = crate::export::otlp_decode::decode_body(body, format, gzipped)
                .expect("a body the server reads");
            let deepest = spans
                .iter()
                .flat_map(|s| {
                    let events = s.events.iter().flat_map(|e| e.attributes.iter());
                    s.attributes.iter().chain(events)
                })
                .map(|(_, v)| nesting(v))
                .max()
                .unwrap_or(0);
            if deepest > 31 {
                return Err(bad_request());
            }
            if spans.iter().any(|s| s.name == "poison") {
                return Err(SendError::Permanent {
                    reason: "HTTP 500: span refused".to_string(),
                });
            }
            if body.len() > self.limit {
                return Err(too_large());
            }
            self.accepted
                .lock()
                .unwrap()
                .push(plain_body(body, gzipped).unwrap());
            Ok(Accepted::default())
        }
        fn describe(&self) -> String {
            "nesting-limited:".to_string()
        }
    }

    /// A map nested `levels` deep (`{"k": {"k": ... "x"}}`).
    fn nested_maps(levels: usize) -> Vec<u8> {
        use crate::span::any_value::tests::{map, string};
        let mut v = string("x");
        for _ in 0..levels {
            v = map(&[("k", v)]);
        }
        v
    }

    /// A request of spans with these names, each with an attribute
    /// "tokens" (7) and, where given, "deep": a map nested that deep (in
    /// an event's attributes for the span named "in.event"), set as a
    /// tracer with the default limits (depth 64) sets it.
    fn spans_with_nested_maps(
        format: BodyFormat,
        gzip: bool,
        spans: &[(&str, Option<usize>)],
    ) -> Vec<u8> {
        let values: Vec<Option<Vec<u8>>> = spans.iter().map(|(_, d)| d.map(nested_maps)).collect();
        spans_with_values(format, gzip, spans, &values)
    }

    /// `spans_with_nested_maps` with these values as "deep".
    fn spans_with_values(
        format: BodyFormat,
        gzip: bool,
        spans: &[(&str, Option<usize>)],
        values: &[Option<Vec<u8>>],
    ) -> Vec<u8> {
        use crate::span::any_value::AnyValueRef;
        use crate::span::limits::SpanLimits;
        use crate::span::record::ValueInput;
        let pool = crate::buffer::payload_pool::PayloadPool::with_mib(4).expect("pool");
        let limits = SpanLimits::default();
        let records: Vec<Box<SpanRecord>> = spans
            .iter()
            .zip(values)
            .enumerate()
            .map(|(i, ((name, _), value))| {
                // SAFETY: all-zero bytes are an empty record.
                let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
                r.trace_id = [7; 16];
                r.span_id = (i as u64 + 1).to_be_bytes();
                r.start_unix_ns = 1_700_000_000_000_000_000;
                r.end_unix_ns = r.start_unix_ns + 5;
                r.name = r.store_text(name.as_bytes(), 256, &pool).0;
                r.set_attribute(b"tokens", &ValueInput::Int(7), &limits, &pool)
                    .expect("set");
                if let Some(value) = value {
                    let any = ValueInput::AnyValue(AnyValueRef::check(value).expect("well formed"));
                    if *name == "in.event" {
                        let at = r.start_unix_ns;
                        r.add_event(b"e", at, &[(&b"deep"[..], any)], &limits, &pool)
                            .expect("event");
                    } else {
                        r.set_attribute(b"deep", &any, &limits, &pool).expect("set");
                    }
                }
                r
            })
            .collect();
        let views: Vec<SpanView> = records.iter().map(|r| SpanView::new(r, &pool)).collect();
        let mut enc = RequestEncoder::new(format, gzip, 100_000_000, spans.len());
        let n = enc.encode_prefix(&ResourceInfo::new("deep", &[]), &views);
        assert_eq!(n, spans.len());
        enc.body().to_vec()
    }

    /// Delivers `spans` as one fresh request to a `NestingLimited` server:
    /// the host, the spans it took, and how many requests were sent.
    fn deliver_to_nesting_limited(
        name: &str,
        (format, gzip): (BodyFormat, bool),
        spans: &[(&str, Option<usize>)],
    ) -> (Host, Vec<crate::export::otlp_decode::DecodedSpan>, u64) {
        let body = spans_with_nested_maps(format, gzip, spans);
        deliver_one_request(
            name,
            (format, gzip),
            &body,
            spans.len(),
            |accepted, requests| {
                Box::new(NestingLimited {
                    accepted,
                    requests,
                    limit: usize::MAX,
                    size_first: false,
                })
            },
        )
    }

    #[test]
    fn a_span_cut_to_a_depth_then_answered_413_counts_its_emptied_value_once_delivered() {
        // A lone span whose map holds a prompt and a map 40 deep: refused
        // for the depth, sent again cut to 16 levels, and that answered
        // 413: the 413 path cut the prompt and the span arrived, and the
        // value emptied was not counted (`values_truncated` one short).
        // Now counted with the prompt's cut once the span is delivered;
        // not at all when no cut fits and the span is lost. The prompt
        // and the map 40 deep are one attribute value, cut both ways:
        // counted once (it was twice, (1, 0, 2, 1)), as emptied.
        use crate::span::any_value::tests::{map, string};
        let value = map(&[
            ("prompt", string(&"a".repeat(5000))),
            ("deep", nested_maps(40)),
        ]);
        // Not gzipped: the prompt, one letter repeated, takes a few bytes
        // gzipped, and no size refuses the cut while taking the prompt cut.
        for (format, gzip) in [(BodyFormat::Protobuf, false), (BodyFormat::Json, false)] {
            let body = spans_with_values(
                format,
                gzip,
                &[("llm.chat", Some(41))],
                &[Some(value.clone())],
            );
            for (limit, delivered) in [(3000, true), (50, false)] {
                let what = format!("{format:?} gzip={gzip} limit {limit}");
                let (host, taken, _) = deliver_one_request(
                    &format!("deep-413-{format:?}-{gzip}-{limit}"),
                    (format, gzip),
                    &body,
                    1,
                    |accepted, requests| {
                        Box::new(NestingLimited {
                            accepted,
                            requests,
                            limit,
                            size_first: false,
                        })
                    },
                );
                let want = if delivered {
                    (1, 0, 1, 1)
                } else {
                    (0, 1, 0, 0)
                };
                assert_eq!(
                    (host.delivered, host.lost, host.cut, host.emptied),
                    want,
                    "{what}: {:?}",
                    host.lost_reasons
                );
                assert_eq!(taken.len(), usize::from(delivered), "{what}");
            }
        }
    }

    #[test]
    fn a_span_answered_413_then_refused_for_a_depth_arrives_cut_to_both() {
        // A lone span whose map holds a prompt and a map 40 deep, to a
        // server that checks the size first (413), then the nesting: the
        // 413 path cut the prompt, the cut span was refused for the depth,
        // and the span was counted lost without the depth ever cut. Now
        // the cut span goes once more cut to 16 levels too, and arrives,
        // its one value, cut both ways, counted once (not once for the
        // prompt's cut and once for the emptying: (1, 0, 2, 1)).
        use crate::export::otlp_decode::Value;
        use crate::span::any_value::tests::{map, string};
        let value = map(&[
            ("prompt", string(&"a".repeat(5000))),
            ("deep", nested_maps(40)),
        ]);
        for format in [BodyFormat::Protobuf, BodyFormat::Json] {
            let body = spans_with_values(
                format,
                false,
                &[("llm.chat", Some(41))],
                &[Some(value.clone())],
            );
            let what = format!("{format:?}");
            let (host, taken, requests) = deliver_one_request(
                &format!("413-then-deep-{format:?}"),
                (format, false),
                &body,
                1,
                |accepted, requests| {
                    Box::new(NestingLimited {
                        accepted,
                        requests,
                        limit: 4000,
                        size_first: true,
                    })
                },
            );
            assert_eq!(
                (host.delivered, host.lost, host.cut, host.emptied),
                (1, 0, 1, 1),
                "{what}: {} bytes: {:?}",
                body.len(),
                host.lost_reasons
            );
            // Whole (413), cut to a size (400), cut to the depth too.
            assert_eq!(requests, 3, "{what}");
            assert_eq!(taken.len(), 1, "{what}");
            let deep_value = taken[0].attributes.iter().find(|(k, _)| k == "deep");
            let Some((_, outer @ Value::Map(members))) = deep_value else {
                panic!("{what}: {:?}", taken[0].attributes);
            };
            // The map itself is level 1: 15 of the 40 inside are kept.
            assert_eq!(nesting(outer), SAFE_VALUE_DEPTH, "{what}");
            let prompt = members.iter().find(|(k, _)| k == "prompt").expect("prompt");
            assert!(
                matches!(&prompt.1, Value::Str(s) if s.len() < 5000),
                "{what}: the prompt cut: {:?}",
                prompt.1
            );
        }
    }

    /// A map `levels` deep, each level holding 30 ints beside the map one
    /// level in: bytes no cut to a size shortens, most of them past level
    /// 16.
    fn wide_nested_maps(levels: usize) -> Vec<u8> {
        use crate::span::any_value::tests::{int, map, string};
        let keys: Vec<String> = (0..30).map(|i| format!("n{i}")).collect();
        let mut v = string("x");
        for level in 0..levels {
            let mut members: Vec<(&str, Vec<u8>)> = keys
                .iter()
                .map(|k| (k.as_str(), int(1000 + level as i64)))
                .collect();
            members.push(("k", v));
            v = map(&members);
        }
        v
    }

    #[test]
    fn a_lone_span_too_large_until_its_deep_value_is_emptied_arrives_cut_to_both() {
        // A lone span whose map holds a prompt and a map 40 deep with 30
        // ints a level, to a server with a size limit no cut of the
        // prompt meets (the ints past level 16 alone are over it), and a
        // nesting limit. Size checked first: 413, the prompt cut and cut
        // again until nothing was left to cut, and the span was lost; the
        // depth cut, which empties the levels that made it too large, was
        // never tried. Now it is: cut to 16 levels, still over the limit
        // with the prompt, cut to a size too, and the span arrives; its
        // one value, cut both ways, counted once. The nesting checked
        // first (400, then the depth cut, then 413) ends alike.
        use crate::export::otlp_decode::Value;
        use crate::span::any_value::tests::{map, string};
        let value = map(&[
            ("prompt", string(&"a".repeat(5000))),
            ("deep", wide_nested_maps(40)),
        ]);
        for format in [BodyFormat::Protobuf, BodyFormat::Json] {
            let body = spans_with_values(
                format,
                false,
                &[("llm.chat", Some(41))],
                &[Some(value.clone())],
            );
            let emptied_deep = cut_deep(&body, format, SAFE_VALUE_DEPTH).expect("deep");
            let stripped = cut_to_fit(&body, format, 0, 0).expect("strings to cut");
            // Between the depth cut with its prompt emptied and the span
            // with every string emptied but its depth kept.
            let limit = emptied_deep.body.len() - 4000;
            assert!(
                stripped.body.len() > limit && limit > emptied_deep.body.len() - 5000 + 100,
                "{format:?}: {} {} {limit}",
                stripped.body.len(),
                emptied_deep.body.len()
            );
            for size_first in [true, false] {
                let what = format!("{format:?} size first: {size_first}");
                let (host, taken, _) = deliver_one_request(
                    &format!("wide-deep-{format:?}-{size_first}"),
                    (format, false),
                    &body,
                    1,
                    |accepted, requests| {
                        Box::new(NestingLimited {
                            accepted,
                            requests,
                            limit,
                            size_first,
                        })
                    },
                );
                assert_eq!(
                    (host.delivered, host.lost, host.cut, host.emptied),
                    (1, 0, 1, 1),
                    "{what}: one value cut, counted once: {:?}",
                    host.lost_reasons
                );
                assert_eq!(taken.len(), 1, "{what}");
                let Some((_, outer @ Value::Map(members))) =
                    taken[0].attributes.iter().find(|(k, _)| k == "deep")
                else {
                    panic!("{what}: {:?}", taken[0].attributes);
                };
                assert_eq!(nesting(outer), SAFE_VALUE_DEPTH, "{what}");
                let prompt = members.iter().find(|(k, _)| k == "prompt").expect("prompt");
                assert!(
                    matches!(&prompt.1, Value::Str(s) if s.len() < 5000),
                    "{what}: the prompt cut: {:?}",
                    prompt.1
                );
            }
        }
    }

    /// A lone span with `values` (attribute keys and complex values, each
    /// as a tracer with the default limits stores it) encoded as the
    /// exporter encodes it under a `budget`: the body, the values the
    /// encoder's cuts counted, and where (`RequestEncoder::cut_at`).
    fn encoded_under(
        (format, gzip): (BodyFormat, bool),
        values: &[(&[u8], Vec<u8>)],
        budget: usize,
    ) -> (Vec<u8>, u64, Vec<u64>) {
        use crate::span::any_value::AnyValueRef;
        use crate::span::limits::SpanLimits;
        use crate::span::record::ValueInput;
        let pool = crate::buffer::payload_pool::PayloadPool::with_mib(4).expect("pool");
        // SAFETY: all-zero bytes are an empty record.
        let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
        r.trace_id = [7; 16];
        r.span_id = 1u64.to_be_bytes();
        r.name = r.store_text(b"llm.chat", 256, &pool).0;
        for (key, value) in values {
            let any = ValueInput::AnyValue(AnyValueRef::check(value).expect("well formed"));
            r.set_attribute(key, &any, &SpanLimits::default(), &pool)
                .expect("set");
        }
        let views = [SpanView::new(&r, &pool)];
        let mut enc = RequestEncoder::new(format, gzip, budget, 1);
        assert_eq!(
            enc.encode_prefix(&ResourceInfo::new("deep", &[]), &views),
            1
        );
        let cut = enc.take_cut_values();
        (enc.body().to_vec(), cut, enc.cut_at().to_vec())
    }

    #[test]
    fn a_value_the_encoder_cut_and_a_depth_rescue_empties_is_counted_once() {
        // A lone span over the request size limit whose one value is a map
        // of a prompt and a map 40 deep: the encoder cuts the prompt to
        // fit (counted then, values_truncated 1), the server refuses the
        // request for the depth, and the depth rescue empties the same
        // value past level 16: counted again, values_truncated 2 for one
        // value. The request carried how many values the encoder counted,
        // not which. Now it carries where (`Request::cut_at`): one value,
        // counted once. A prompt and a deep map in two values are two.
        use crate::span::any_value::tests::{map, string};
        let prompt = || string(&"a".repeat(5000));
        for (format, gzip) in BODY_FORMATS {
            for one_value in [true, false] {
                let what = format!("{format:?} gzip={gzip} one value: {one_value}");
                let values: Vec<(&[u8], Vec<u8>)> = if one_value {
                    vec![(
                        b"deep",
                        map(&[("prompt", prompt()), ("deep", nested_maps(40))]),
                    )]
                } else {
                    vec![
                        (b"prompt", map(&[("text", prompt())])),
                        (b"deep", nested_maps(40)),
                    ]
                };
                let (body, cut, cut_at) = encoded_under((format, gzip), &values, 3000);
                assert_eq!(cut, 1, "{what}: the encoder cut the prompt");
                let name = format!("encoder-cut-deep-{format:?}-{gzip}-{one_value}");
                let (mut d, _sent, dir) = delivery(&name, vec![]);
                let accepted = Arc::new(Mutex::new(Vec::new()));
                d.transport = Box::new(NestingLimited {
                    accepted: Arc::clone(&accepted),
                    requests: Arc::default(),
                    limit: usize::MAX,
                    size_first: false,
                });
                let mut host = Host {
                    cut,
                    ..Host::default()
                };
                let request = Request {
                    cut_at: &cut_at,
                    ..fresh_body(&body, (format, gzip), 1, cut)
                };
                assert!(d.deliver(&request, &mut host));
                std::fs::remove_dir_all(&dir).ok();
                let want = if one_value {
                    (1, 0, 1, 0)
                } else {
                    (1, 0, 2, 1)
                };
                assert_eq!(
                    (host.delivered, host.lost, host.cut, host.emptied),
                    want,
                    "{what}: {:?}",
                    host.lost_reasons
                );
                let taken: Vec<_> = accepted
                    .lock()
                    .unwrap()
                    .iter()
                    .flat_map(|b| {
                        crate::export::otlp_decode::decode_body(b, format, false).unwrap()
                    })
                    .collect();
                assert_eq!(taken.len(), 1, "{what}");
                let deepest = taken[0].attributes.iter().map(|(_, v)| nesting(v)).max();
                assert_eq!(deepest, Some(SAFE_VALUE_DEPTH), "{what}: emptied past 16");
            }
        }
    }

    /// A server that is down (503) while `down` says so, refuses a body
    /// over `limit` bytes for its size (413) first, and is otherwise
    /// `inner`.
    struct DownOrLimited {
        down: Arc<std::sync::atomic::AtomicBool>,
        limit: usize,
        inner: NestingLimited,
    }

    impl Transport for DownOrLimited {
        fn send(
            &mut self,
            body: &[u8],
            format: BodyFormat,
            gzipped: bool,
        ) -> Result<Accepted, SendError> {
            if body.len() > self.limit {
                return Err(SendError::TooLarge {
                    reason: "HTTP 413".to_string(),
                });
            }
            if self.down.load(std::sync::atomic::Ordering::Relaxed) {
                return busy(None);
            }
            self.inner.send(body, format, gzipped)
        }
        fn describe(&self) -> String {
            "down-or-limited:".to_string()
        }
    }

    #[test]
    fn a_value_cut_to_a_size_then_kept_and_emptied_at_the_replay_is_counted_once() {
        // A lone span whose value holds a prompt and a map 40 deep, cut to
        // a size by this delivery (counted), then kept while the backend
        // is down: after a 413 (`settle_cut`), or to fit the spool's cap
        // (`keep_cut`). The replay, refused for the depth, empties the same
        // value: counted again, as the spool file named how many values
        // were cut, not which. A prompt and a deep map in two values are
        // two values cut, each counted once.
        use crate::span::any_value::tests::{map, string};
        use std::sync::atomic::AtomicBool;
        // Letters no gzip makes much smaller: sent gzipped, it is over the
        // limit too.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let text: String = (0..8000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (b'!' + (x % 90) as u8) as char
            })
            .collect();
        let prompt = || string(&text);
        for (format, gzip) in BODY_FORMATS {
            for by_413 in [true, false] {
                for one_value in [true, false] {
                    let what = format!(
                        "{format:?} gzip={gzip} after a 413: {by_413}, one value: {one_value}"
                    );
                    let values: Vec<(&[u8], Vec<u8>)> = if one_value {
                        vec![(
                            b"deep",
                            map(&[("prompt", prompt()), ("deep", nested_maps(40))]),
                        )]
                    } else {
                        vec![
                            (b"prompt", map(&[("text", prompt())])),
                            (b"deep", nested_maps(40)),
                        ]
                    };
                    let (body, cut, _) = encoded_under((format, gzip), &values, 1 << 20);
                    assert_eq!(cut, 0, "{what}: sent whole");
                    let name = format!("size-cut-kept-{format:?}-{gzip}-{by_413}-{one_value}");
                    let (mut d, _sent, dir) = delivery(&name, vec![]);
                    if !by_413 {
                        d.spool = SpoolDir::new(&dir, 6000);
                    }
                    let down = Arc::new(AtomicBool::new(true));
                    let accepted = Arc::new(Mutex::new(Vec::new()));
                    d.transport = Box::new(DownOrLimited {
                        down: Arc::clone(&down),
                        limit: if by_413 { 4500 } else { usize::MAX },
                        inner: NestingLimited {
                            accepted: Arc::clone(&accepted),
                            requests: Arc::default(),
                            limit: usize::MAX,
                            size_first: false,
                        },
                    });
                    let mut host = Host {
                        interrupt_waits: true,
                        ..Host::default()
                    };
                    assert!(d.deliver(&fresh_body(&body, (format, gzip), 1, 0), &mut host));
                    assert_eq!(
                        (host.kept, host.lost, host.cut),
                        (1, 0, 1),
                        "{what}: kept, the prompt cut: {:?}",
                        host.lost_reasons
                    );
                    down.store(false, std::sync::atomic::Ordering::Relaxed);
                    // Back up, as its probe would find.
                    d.down_until = None;
                    let mut replay = Host::default();
                    assert!(d.replay_spool(&mut replay), "{what}");
                    std::fs::remove_dir_all(&dir).ok();
                    assert_eq!(
                        (replay.delivered, replay.lost, replay.cut),
                        (1, 0, if one_value { 0 } else { 1 }),
                        "{what}: {:?}",
                        replay.lost_reasons
                    );
                    assert_eq!(accepted.lock().unwrap().len(), 1, "{what}");
                }
            }
        }
    }

    /// The value `levels` maps deep ends in the empty value after
    /// `SAFE_VALUE_DEPTH` maps: what a tracer with that depth limit sends.
    fn assert_cut_at_the_safe_depth(what: &str, v: &crate::export::otlp_decode::Value) {
        use crate::export::otlp_decode::Value;
        let mut v = v;
        for level in 0..SAFE_VALUE_DEPTH {
            match v {
                Value::Map(members) if members.len() == 1 && members[0].0 == "k" => {
                    v = &members[0].1
                }
                other => panic!("{what}: level {level}: {other:?}"),
            }
        }
        assert_eq!(v, &Value::Empty, "{what}: the empty value past it");
    }

    #[test]
    fn a_span_refused_for_a_value_nested_past_the_decoders_limit_arrives_with_it_cut() {
        // 100 spans and one with a map 40 deep (kept whole by the default
        // depth limit of 64): a Python receiver refuses the request, the
        // split finds the span, and it was lost. Sent once more with its
        // value cut at 16 levels, it arrives, its cut counted once; the
        // others arrive once each, in about 2 log2(101) + 1 requests more.
        for (format, gzip) in BODY_FORMATS {
            for (deep_at, name) in [(0, "llm.chat"), (37, "llm.chat"), (100, "in.event")] {
                let what = format!("{format:?} gzip={gzip} at {deep_at} ({name})");
                let mut spans = vec![("llm.chat", None); 101];
                spans[deep_at] = (name, Some(40));
                let (host, taken, requests) = deliver_to_nesting_limited(
                    &format!("deep-{format:?}-{gzip}-{deep_at}"),
                    (format, gzip),
                    &spans,
                );
                assert_eq!(
                    (host.delivered, host.lost, host.cut),
                    (101, 0, 1),
                    "{what}: {:?}",
                    host.lost_reasons
                );
                assert_eq!(taken.len(), 101, "{what}: each once");
                let mut ids: Vec<[u8; 8]> = taken.iter().map(|s| s.span_id).collect();
                ids.sort();
                ids.dedup();
                assert_eq!(ids.len(), 101, "{what}: each once");
                assert!(requests <= 1 + 2 * 7 + 1, "{what}: {requests} requests");
                let deep = taken
                    .iter()
                    .find(|s| s.span_id == (deep_at as u64 + 1).to_be_bytes())
                    .expect("the deep span");
                let value = if name == "in.event" {
                    deep.events[0].attributes.iter().find(|(k, _)| k == "deep")
                } else {
                    deep.attributes.iter().find(|(k, _)| k == "deep")
                };
                assert_cut_at_the_safe_depth(&what, &value.expect("the deep value").1);
                assert_eq!(
                    deep.attribute("tokens").and_then(|v| v.as_i64()),
                    Some(7),
                    "{what}: the rest as it was"
                );
            }
        }
    }

    #[test]
    fn a_span_refused_for_another_reason_costs_one_request_more_if_deep_and_none_otherwise() {
        // A span the server refuses whatever its values ("poison"): with
        // no value past 16 levels (none, or a map 10 deep) it is lost
        // after as many requests as before; with one (a map 40 deep) it
        // is sent once more, cut, refused again, and lost, the line saying
        // so.
        let mut counts = Vec::new();
        for deep in [None, Some(10), Some(40)] {
            let mut spans = vec![("llm.chat", None); 101];
            spans[37] = ("poison", deep);
            let (host, taken, requests) = deliver_to_nesting_limited(
                &format!("poison-deep-{deep:?}"),
                (BodyFormat::Protobuf, false),
                &spans,
            );
            assert_eq!(
                (host.delivered, host.lost, host.cut, taken.len()),
                (100, 1, 0, 100),
                "{deep:?}: a lost span's values are not counted cut"
            );
            assert_eq!(host.lost_reasons.len(), 1, "{deep:?}");
            assert_eq!(
                host.lost_reasons[0].contains("refused again"),
                deep == Some(40),
                "{deep:?}: {:?}",
                host.lost_reasons
            );
            counts.push(requests);
        }
        assert_eq!(counts[1], counts[0], "no value that deep: no request more");
        assert_eq!(counts[2], counts[0] + 1, "one request more");
    }

    #[test]
    fn spans_all_refused_for_deep_values_arrive_cut_in_two_requests_more() {
        // Every span with a map 40 deep (an instrumentation that records
        // the same deep structure each time): both halves are refused, and
        // were lost whole; each half goes once more cut and arrives.
        for (format, gzip) in BODY_FORMATS {
            for n in [2, 256] {
                let what = format!("{format:?} gzip={gzip} {n} spans");
                let spans = vec![("llm.chat", Some(40)); n];
                let (host, taken, requests) = deliver_to_nesting_limited(
                    &format!("all-deep-{format:?}-{gzip}-{n}"),
                    (format, gzip),
                    &spans,
                );
                assert_eq!(
                    (host.delivered, host.lost, host.cut),
                    (n as u64, 0, n as u64),
                    "{what}: {:?}",
                    host.lost_reasons
                );
                assert_eq!(requests, 5, "{what}: the request, its halves, each cut");
                for span in &taken {
                    assert_cut_at_the_safe_depth(&what, span.attribute("deep").expect("deep"));
                }
            }
        }
    }

    /// Refuses (400, as a decoder's nesting limit) any request holding an
    /// array or map past `SAFE_VALUE_DEPTH`, in spans, resource or scopes;
    /// takes the others.
    struct DepthRefusing;

    impl Transport for DepthRefusing {
        fn send(
            &mut self,
            body: &[u8],
            format: BodyFormat,
            gzipped: bool,
        ) -> Result<Accepted, SendError> {
            let plain = plain_body(body, gzipped).expect("a body the server reads");
            match cut_deep(&plain, format, SAFE_VALUE_DEPTH) {
                Some(_) => Err(bad_request()),
                None => Ok(Accepted::default()),
            }
        }
        fn describe(&self) -> String {
            "depth-refusing:".to_string()
        }
    }

    /// An attribute "deep" (`KeyValue`) holding maps nested `levels` deep
    /// around the string `tail`.
    fn deep_key_value(levels: usize, tail: &str) -> Vec<u8> {
        use crate::span::any_value::tests::{map, string};
        let mut v = string(tail);
        for _ in 0..levels {
            v = map(&[("k", v)]);
        }
        let mut kv = Vec::new();
        crate::span::proto_reader::write_len_field(&mut kv, 1, b"deep");
        crate::span::proto_reader::write_len_field(&mut kv, 2, &v);
        kv
    }

    /// A protobuf request whose resource holds a map 40 deep around
    /// `resource_tail` (none: no attribute), and a scope named
    /// "scope-{i}" for each `i` of `scopes` holding one too (around "x"),
    /// each with one span: the request and its spans.
    fn shared_deep_request(
        resource_tail: Option<&str>,
        scopes: std::ops::Range<usize>,
    ) -> (Vec<u8>, u64) {
        use crate::span::proto_reader::write_len_field;
        let mut resource = Vec::new();
        if let Some(tail) = resource_tail {
            write_len_field(&mut resource, 1, &deep_key_value(40, tail));
        }
        let mut resource_spans = Vec::new();
        write_len_field(&mut resource_spans, 1, &resource);
        let mut spans = 0u64;
        for i in scopes.chain(resource_tail.map(|_| usize::MAX)) {
            let mut span = Vec::new();
            write_len_field(&mut span, 1, &[7; 16]);
            write_len_field(&mut span, 2, &(spans + 1).to_be_bytes());
            write_len_field(&mut span, 5, b"llm.chat");
            let mut scope_spans = Vec::new();
            if i != usize::MAX {
                let mut scope = Vec::new();
                write_len_field(&mut scope, 1, format!("scope-{i}").as_bytes());
                write_len_field(&mut scope, 2, b"1.0");
                write_len_field(&mut scope, 3, &deep_key_value(40, "x"));
                write_len_field(&mut scope_spans, 1, &scope);
            }
            write_len_field(&mut scope_spans, 2, &span);
            write_len_field(&mut resource_spans, 2, &scope_spans);
            spans += 1;
        }
        let mut request = Vec::new();
        write_len_field(&mut request, 1, &resource_spans);
        (request, spans)
    }

    /// Delivers each request (`shared_deep_request`) to a `DepthRefusing`
    /// server, from `origin`: each is refused, then taken cut. The values
    /// the delivery counted emptied after each.
    fn emptied_by_request(
        d: &mut Delivery,
        origin: Origin,
        requests: &[(Vec<u8>, u64)],
    ) -> Vec<u64> {
        requests
            .iter()
            .map(|(body, spans)| {
                let mut host = Host::default();
                let request = Request {
                    origin,
                    ..fresh_body(body, (BodyFormat::Protobuf, false), *spans, 0)
                };
                assert!(d.deliver(&request, &mut host));
                assert_eq!((host.delivered, host.lost), (*spans, 0));
                host.emptied
            })
            .collect()
    }

    #[test]
    fn many_deep_scope_messages_are_each_counted_once_not_again() {
        // 300 scopes each holding a value 40 deep (a long outage's spool
        // of many instrumentations, replayed): each message's value is
        // counted once as emptied. The delivery remembered 64 messages,
        // then forgot all of them: past 64, every one was counted again
        // (the second round counted 300 more). One request of 256 scopes
        // and the resource, sent twice, alike.
        for origin in [Origin::Fresh, Origin::SpoolFile, Origin::Recovered] {
            let (mut d, _, dir) = delivery(&format!("shared-many-{origin:?}"), vec![]);
            d.transport = Box::new(DepthRefusing);
            let requests: Vec<_> = (0..3)
                .map(|r| shared_deep_request(None, r * 100..(r + 1) * 100))
                .collect();
            let first = emptied_by_request(&mut d, origin, &requests);
            assert_eq!(first, [100, 100, 100], "{origin:?}: each counted once");
            let again = emptied_by_request(&mut d, origin, &requests);
            assert_eq!(again, [0, 0, 0], "{origin:?}: not counted again");
            std::fs::remove_dir_all(&dir).ok();

            let (mut d, _, dir) = delivery(&format!("shared-full-{origin:?}"), vec![]);
            d.transport = Box::new(DepthRefusing);
            let full = [shared_deep_request(Some("x"), 1000..1256)];
            let counts = [
                emptied_by_request(&mut d, origin, &full),
                emptied_by_request(&mut d, origin, &full),
            ];
            assert_eq!(counts, [[257], [0]], "{origin:?}: a full request, twice");
            std::fs::remove_dir_all(&dir).ok();
        }
    }

    #[test]
    fn two_resources_apart_only_below_the_safe_depth_are_each_counted_once() {
        // Two resources whose deep value differs only at level 41 (past
        // `SAFE_VALUE_DEPTH`): cut, both are the same bytes. The delivery
        // knew a message by its bytes as cut, so the second resource's
        // value was never counted. Each is counted once; set back, A is
        // not counted again.
        let (mut d, _, dir) = delivery("shared-apart-below", vec![]);
        d.transport = Box::new(DepthRefusing);
        let a = shared_deep_request(Some("a"), 0..0);
        let b = shared_deep_request(Some("b"), 0..0);
        let counts = emptied_by_request(&mut d, Origin::Fresh, &[a.clone(), b.clone(), a, b]);
        assert_eq!(counts, [1, 1, 0, 0]);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Refuses with 413 every body over `limit` bytes, keeps those it takes.
    struct SizeLimited {
        limit: usize,
        accepted: Arc<Mutex<Vec<Vec<u8>>>>,
        refused: Arc<Mutex<u64>>,
    }

    impl Transport for SizeLimited {
        fn send(&mut self, body: &[u8], _: BodyFormat, _: bool) -> Result<Accepted, SendError> {
            if body.len() > self.limit {
                *self.refused.lock().unwrap() += 1;
                return Err(SendError::TooLarge {
                    reason: "HTTP 413".to_string(),
                });
            }
            self.accepted.lock().unwrap().push(body.to_vec());
            Ok(Accepted::default())
        }
        fn describe(&self) -> String {
            "size-limited:".to_string()
        }
    }

    /// A delivery to a backend that refuses (413) any body over `limit`,
    /// spooling into `dir`, with what it accepted and how many it refused.
    #[allow(clippy::type_complexity)]
    fn size_limited_delivery(
        dir: &std::path::Path,
        limit: usize,
    ) -> (Delivery, Arc<Mutex<Vec<Vec<u8>>>>, Arc<Mutex<u64>>) {
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(0));
        let transport = SizeLimited {
            limit,
            accepted: Arc::clone(&accepted),
            refused: Arc::clone(&refused),
        };
        let d = Delivery::new(
            Box::new(transport),
            SpoolDir::new(dir, 1 << 30),
            Duration::from_secs(30),
            100_000_000,
        );
        (d, accepted, refused)
    }

    /// One span with a prompt of `prompt` bytes (and a small attribute),
    /// encoded under a 100 MB budget as the exporter would.
    fn one_big_span(format: BodyFormat, gzip: bool, prompt: usize) -> Vec<u8> {
        big_spans(format, gzip, prompt, 1)
    }

    /// `count` such spans in one request.
    fn big_spans(format: BodyFormat, gzip: bool, prompt: usize, count: u8) -> Vec<u8> {
        let prompts = vec![prompt; count as usize];
        let (body, n, cut) = spans_with_prompts(format, gzip, &prompts, 100_000_000);
        assert_eq!((n, cut), (count as usize, 0));
        body
    }

    /// A request of the first spans with these prompt lengths that fit in
    /// `budget` bytes, as the exporter encodes it: its body, its spans and
    /// the values the encoder cut.
    fn spans_with_prompts(
        format: BodyFormat,
        gzip: bool,
        prompts: &[usize],
        budget: usize,
    ) -> (Vec<u8>, usize, u64) {
        let pool = crate::buffer::payload_pool::PayloadPool::with_mib(32).expect("pool");
        let records = prompt_records(&pool, prompts);
        let views: Vec<SpanView> = records.iter().map(|r| SpanView::new(r, &pool)).collect();
        let mut enc = RequestEncoder::new(format, gzip, budget, prompts.len());
        let n = enc.encode_prefix(&ResourceInfo::new("cut", &[]), &views);
        let cut = enc.take_cut_values();
        (enc.body().to_vec(), n, cut)
    }

    /// Spans with prompts of these lengths (a repeated alphabet) and a
    /// small attribute. Boxed: made zeroed in place, as slots are, rather
    /// than moved through the stack.
    #[allow(clippy::vec_box)]
    fn prompt_records(
        pool: &crate::buffer::payload_pool::PayloadPool,
        prompts: &[usize],
    ) -> Vec<Box<SpanRecord>> {
        use crate::span::limits::SpanLimits;
        use crate::span::record::ValueInput;
        prompts
            .iter()
            .enumerate()
            .map(|(i, &prompt)| {
                let text: Vec<u8> = (0..prompt).map(|i| b'a' + (i % 26) as u8).collect();
                // SAFETY: all-zero bytes are an empty record.
                let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
                r.trace_id = [7; 16];
                r.span_id = [9 + i as u8; 8];
                r.start_unix_ns = 1_700_000_000_000_000_000;
                r.end_unix_ns = r.start_unix_ns + 5;
                r.name = r.store_text(b"llm.chat", 256, pool).0;
                for (k, v) in [
                    (&b"gen_ai.prompt"[..], ValueInput::Str(&text)),
                    (b"gen_ai.usage.input_tokens", ValueInput::Int(42)),
                ] {
                    r.set_attribute(k, &v, &SpanLimits::default(), pool)
                        .expect("set");
                }
                r
            })
            .collect()
    }

    /// Delivers `body` (`spans` spans, `cut_counted` values cut by the
    /// encoder) to a backend that answers 413 over `limit` bytes; returns
    /// what the host counted and the prompt lengths that arrived.
    fn deliver_to_size_limited(
        name: &str,
        body: &[u8],
        format: BodyFormat,
        gzip: bool,
        (spans, cut_counted): (u64, u64),
        limit: usize,
    ) -> (Host, Vec<usize>) {
        let (mut d, _sent, dir) = delivery(name, vec![]);
        let accepted = Arc::new(Mutex::new(Vec::new()));
        d.transport = Box::new(SizeLimited {
            limit,
            accepted: Arc::clone(&accepted),
            refused: Arc::default(),
        });
        let mut host = Host::default();
        d.deliver(
            &fresh_body(body, (format, gzip), spans, cut_counted),
            &mut host,
        );
        std::fs::remove_dir_all(&dir).ok();
        let prompts = prompt_lengths(&accepted.lock().unwrap(), format, gzip);
        (host, prompts)
    }

    /// The lengths of the prompts in these request bodies.
    fn prompt_lengths(bodies: &[Vec<u8>], format: BodyFormat, gzip: bool) -> Vec<usize> {
        bodies
            .iter()
            .flat_map(|b| crate::export::otlp_decode::decode_body(b, format, gzip).unwrap())
            .filter_map(|s| {
                s.attribute("gen_ai.prompt")
                    .and_then(|v| v.as_str())
                    .map(str::len)
            })
            .collect()
    }

    /// Spools `request` (`cut_counted` as it says) with the backend down,
    /// then replays the spool through another delivery (another process's,
    /// or this one's later) to a backend that answers 413 over `limit`
    /// bytes, or over half the spooled body when `limit` is 0. Returns what
    /// spooling counted, what the replay counted and the prompt lengths
    /// that arrived. `answers`: the backend's answers before it is down.
    fn spool_then_replay_to_size_limited(
        name: &str,
        request: &Request,
        answers: Vec<Result<Accepted, SendError>>,
        limit: usize,
    ) -> (Host, Host, Vec<usize>) {
        let answers = [answers, vec![busy(None)]].concat();
        let (mut d, _sent, dir) = delivery(name, answers);
        let mut spooling = Host {
            interrupt_waits: true,
            ..Host::default()
        };
        d.deliver(request, &mut spooling);
        let files = d.spool().list();
        assert_eq!(files.len(), 1, "{name}: spooled");
        let file = std::fs::File::open(&files[0]).expect("open");
        let spooled = crate::export::spool::read_batch(&file, 1 << 20).expect("a batch");
        let limit = if limit == 0 {
            spooled.body.len() / 2
        } else {
            limit
        };
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let mut replayer = Delivery::new(
            Box::new(SizeLimited {
                limit,
                accepted: Arc::clone(&accepted),
                refused: Arc::default(),
            }),
            SpoolDir::new(&dir, 1 << 20),
            Duration::from_secs(30),
            1 << 20,
        );
        let mut replaying = Host::default();
        assert!(replayer.replay_spool(&mut replaying), "{name}: drained");
        std::fs::remove_dir_all(&dir).ok();
        let prompts = prompt_lengths(&accepted.lock().unwrap(), request.format, request.gzipped);
        (spooling, replaying, prompts)
    }

    #[test]
    fn a_value_the_encoder_cut_cut_again_on_replay_is_counted_once() {
        // A 300 KB prompt cut by the encoder to fit 100 KB (counted then),
        // spooled while the backend was down. Replayed to a backend that
        // answers 413 over 40 KB, the prompt is cut again: the spool file
        // did not say it was counted, and the replay counted it again.
        for (format, gzip) in BODY_FORMATS {
            let what = format!("{format:?} gzip={gzip}");
            let (body, n, cut) = spans_with_prompts(format, gzip, &[300_000], 100_000);
            assert_eq!((n, cut), (1, 1), "{what}: the prompt cut to fit");
            let request = fresh_body(&body, (format, gzip), 1, cut);
            let limit = if gzip { 0 } else { 40_000 };
            let name = format!("encoder-cut-spooled-{format:?}-{gzip}");
            let (spooling, replaying, prompts) =
                spool_then_replay_to_size_limited(&name, &request, vec![], limit);
            assert_eq!((spooling.kept, spooling.cut), (1, 0), "{what}");
            assert_eq!((replaying.delivered, replaying.lost), (1, 0), "{what}");
            assert!(prompts[0] < 90_000, "{what}: cut again ({prompts:?})");
            assert_eq!(replaying.cut, 0, "{what}: the prompt was counted already");
        }
    }

    #[test]
    fn a_value_cut_before_it_was_spooled_cut_again_on_replay_is_counted_once() {
        // A 600 KB prompt that a 413 cuts (counted), the cut request then
        // finding the backend down: spooled cut. Or a 3 MB prompt, the
        // backend down at once: the span, alone over the spool's cap (1
        // MiB), is spooled cut (counted). Replayed to a backend that takes
        // half of what was spooled, it is cut again, and was counted a
        // second time.
        let too_large = || {
            Err(SendError::TooLarge {
                reason: "HTTP 413".to_string(),
            })
        };
        for (format, gzip) in BODY_FORMATS {
            for (how, prompt, answers) in [
                ("a 413", 600_000, vec![too_large()]),
                ("the spool's cap", 3_000_000, vec![]),
            ] {
                if gzip && answers.is_empty() {
                    continue; // 3 MB of the alphabet gzipped is well under the cap
                }
                let what = format!("{format:?} gzip={gzip}, cut for {how}");
                let body = one_big_span(format, gzip, prompt);
                let request = fresh_body(&body, (format, gzip), 1, 0);
                let name = format!("cut-spooled-{format:?}-{gzip}-{prompt}");
                let (spooling, replaying, prompts) =
                    spool_then_replay_to_size_limited(&name, &request, answers, 0);
                assert_eq!((spooling.kept, spooling.cut), (1, 1), "{what}");
                assert_eq!((replaying.delivered, replaying.lost), (1, 0), "{what}");
                assert!(
                    prompts[0] > 0 && prompts[0] < prompt / 2,
                    "{what}: cut again ({prompts:?})"
                );
                assert_eq!(replaying.cut, 0, "{what}: the prompt was counted already");
            }
        }
    }

    #[test]
    fn a_value_the_encoder_cut_and_a_413_cuts_again_is_counted_once() {
        // A 300 KB prompt cut by the encoder to fit 100 KB (counted then);
        // a backend that takes 40 KB cuts it again after its 413: it was
        // counted a second time.
        for (format, gzip) in BODY_FORMATS {
            let what = format!("{format:?} gzip={gzip}");
            let (body, n, cut) = spans_with_prompts(format, gzip, &[300_000], 100_000);
            assert_eq!((n, cut), (1, 1), "{what}: the prompt cut to fit");
            let limit = if gzip { body.len() / 2 } else { 40_000 };
            let name = format!("cut-twice-{format:?}-{gzip}");
            let (host, prompts) =
                deliver_to_size_limited(&name, &body, format, gzip, (1, cut), limit);
            assert_eq!((host.delivered, host.lost), (1, 0), "{what}");
            assert!(prompts[0] < 90_000, "{what}: cut again ({prompts:?})");
            assert_eq!(host.cut, 0, "{what}: the prompt was counted already");
        }
    }

    #[test]
    fn a_split_request_counts_a_cut_value_with_the_part_that_holds_it() {
        // A small span, then a span whose prompt the encoder cut, in one
        // request (two requests' bodies, one after the other: a protobuf
        // request of both). The 413 splits it; the part with the prompt is
        // cut again, and the prompt counted once.
        let (small, _, _) = spans_with_prompts(BodyFormat::Protobuf, false, &[10], 100_000);
        let (big, _, cut) = spans_with_prompts(BodyFormat::Protobuf, false, &[300_000], 100_000);
        let plain = [small, big].concat();
        for gzip in [false, true] {
            let body = if gzip {
                let mut packed = Vec::new();
                GzipWriter::new().compress(&plain, &mut packed);
                packed
            } else {
                plain.clone()
            };
            let limit = if gzip { body.len() / 2 } else { 40_000 };
            let name = format!("cut-split-{gzip}");
            let (host, mut prompts) =
                deliver_to_size_limited(&name, &body, BodyFormat::Protobuf, gzip, (2, cut), limit);
            prompts.sort();
            assert_eq!((host.delivered, host.lost), (2, 0), "gzip={gzip}");
            assert!(prompts[0] == 10 && prompts[1] < 90_000, "{prompts:?}");
            assert_eq!(host.cut, 0, "gzip={gzip}: the prompt was counted already");
        }
    }

    #[test]
    fn a_split_request_with_cut_places_of_a_file_goes_by_its_count() {
        // A spool file's header names cut places for a body of two spans
        // (our writer names them for a lone span only; a file from
        // elsewhere may): the 413 splits it, the places go with neither
        // part, and the count with the part of the longest value, once.
        let (small, _, _) = spans_with_prompts(BodyFormat::Protobuf, false, &[10], 100_000);
        let (big, _, cut) = spans_with_prompts(BodyFormat::Protobuf, false, &[300_000], 100_000);
        let body = [small, big].concat();
        let (mut d, _sent, dir) = delivery("cut-places-split", vec![]);
        let accepted = Arc::new(Mutex::new(Vec::new()));
        d.transport = Box::new(SizeLimited {
            limit: 40_000,
            accepted: Arc::clone(&accepted),
            refused: Arc::default(),
        });
        let mut host = Host::default();
        let places = [3u64, 77, u64::MAX];
        let request = Request {
            body: &body,
            format: BodyFormat::Protobuf,
            gzipped: false,
            spans: 2,
            origin: Origin::SpoolFile,
            cut_counted: cut,
            cut_at: &places,
        };
        d.deliver(&request, &mut host);
        std::fs::remove_dir_all(&dir).ok();
        let mut prompts = prompt_lengths(&accepted.lock().unwrap(), BodyFormat::Protobuf, false);
        prompts.sort();
        assert_eq!((host.delivered, host.lost), (2, 0));
        assert!(prompts[0] == 10 && prompts[1] < 90_000, "{prompts:?}");
        assert_eq!(host.cut, 0, "the prompt was counted already");
    }

    #[test]
    fn a_413_on_one_span_sends_it_again_with_its_values_cut() {
        // A backend that takes at most 1,000,000 bytes, a span with a 3 MB
        // prompt: it was lost whole; now it arrives, its prompt cut.
        for (format, gzip) in BODY_FORMATS {
            for origin in [Origin::Fresh, Origin::SpoolFile, Origin::Recovered] {
                let body = one_big_span(format, gzip, 3_000_000);
                let dir = std::env::temp_dir().join(format!(
                    "sg-delivery-cut-{format:?}-{gzip}-{origin:?}-{}",
                    std::process::id()
                ));
                let _ = std::fs::remove_dir_all(&dir);
                // Gzipped, 3 MB of a repeated alphabet is small: the limit
                // is on what is sent, as a server sees it.
                let limit = if gzip { body.len() / 3 } else { 1_000_000 };
                let (mut d, accepted, refused) = size_limited_delivery(&dir, limit);
                let mut host = Host::default();
                let request = Request {
                    body: &body,
                    format,
                    gzipped: gzip,
                    spans: 1,
                    origin,
                    cut_counted: 0,
                    cut_at: &[],
                };
                let what = format!("{format:?} gzip={gzip} {origin:?}");
                assert!(d.deliver(&request, &mut host), "{what}: done with");
                assert_eq!((host.delivered, host.lost, host.kept), (1, 0, 0), "{what}");
                assert_eq!(host.cut, 1, "{what}: the prompt, counted once");
                assert!(*refused.lock().unwrap() >= 2, "{what}: the 413s");
                let accepted = accepted.lock().unwrap();
                assert_eq!(accepted.len(), 1, "{what}");
                assert!(accepted[0].len() <= limit, "{what}");
                let spans = crate::export::otlp_decode::decode_body(&accepted[0], format, gzip)
                    .expect("a request that decodes");
                assert_eq!(spans.len(), 1, "{what}");
                let span = &spans[0];
                assert_eq!((span.trace_id, span.span_id), ([7; 16], [9; 8]), "{what}");
                assert_eq!(span.name, "llm.chat", "{what}");
                assert_eq!(span.end_unix_ns - span.start_unix_ns, 5, "{what}");
                assert_eq!(
                    span.attribute("gen_ai.usage.input_tokens")
                        .and_then(|v| v.as_i64()),
                    Some(42),
                    "{what}: small attributes whole"
                );
                let prompt = span
                    .attribute("gen_ai.prompt")
                    .and_then(|v| v.as_str())
                    .expect("the prompt, cut");
                let whole: String = (0..3_000_000)
                    .map(|i| (b'a' + (i % 26) as u8) as char)
                    .collect();
                assert!(whole.starts_with(prompt), "{what}: its beginning");
                assert!(
                    prompt.len() > 100_000 && prompt.len() < 1_000_000,
                    "{what}: cut, not emptied ({} bytes)",
                    prompt.len()
                );
                assert!(d.spool().list().is_empty(), "{what}");
                std::fs::remove_dir_all(&dir).ok();
            }
        }
    }

    /// One span whose prompt is inside a complex value (a map: the prompt
    /// of `prompt` bytes, a count), and a small attribute, encoded under
    /// `budget` bytes as the exporter would: the body, the spans it holds
    /// (0: the span was lost) and the values the encoder cut.
    fn span_with_a_map(
        format: BodyFormat,
        gzip: bool,
        prompt: usize,
        budget: usize,
    ) -> (Vec<u8>, usize, u64) {
        use crate::span::any_value::AnyValueRef;
        use crate::span::any_value::tests::{int, map, string};
        use crate::span::limits::SpanLimits;
        use crate::span::record::ValueInput;
        let pool = crate::buffer::payload_pool::PayloadPool::with_mib(32).expect("pool");
        let text: String = (0..prompt)
            .map(|i| (b'a' + (i % 26) as u8) as char)
            .collect();
        let value = map(&[("prompt", string(&text)), ("n", int(7))]);
        // SAFETY: all-zero bytes are an empty record.
        let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
        r.trace_id = [7; 16];
        r.span_id = [9; 8];
        r.start_unix_ns = 1_700_000_000_000_000_000;
        r.end_unix_ns = r.start_unix_ns + 5;
        r.name = r.store_text(b"llm.chat", 256, &pool).0;
        let any = ValueInput::AnyValue(AnyValueRef::check(&value).expect("well formed"));
        for (k, v) in [
            (&b"gen_ai.input"[..], any),
            (b"gen_ai.usage.input_tokens", ValueInput::Int(42)),
        ] {
            r.set_attribute(k, &v, &SpanLimits::default(), &pool)
                .expect("set");
        }
        let views = [SpanView::new(&r, &pool)];
        let mut enc = RequestEncoder::new(format, gzip, budget, 1);
        let n = enc.encode_prefix(&ResourceInfo::new("cut", &[]), &views);
        let cut = enc.take_cut_values();
        (enc.body().to_vec(), n, cut)
    }

    /// Delivers `span_with_a_map`'s request (`cut` values cut by the
    /// encoder) to a backend that answers 413 over `limit` bytes; checks
    /// that it arrived, a valid request, the map's prompt cut and its
    /// other member and the span's small attribute whole (the prompt under
    /// its `whole` length, not emptied). Returns what the
    /// delivery counted cut.
    fn deliver_the_map(
        what: &str,
        body: &[u8],
        (format, gzip): (BodyFormat, bool),
        (cut, limit): (u64, usize),
        whole: usize,
    ) -> u64 {
        let name = format!("cut-map-{format:?}-{gzip}-{limit}");
        let (mut d, _sent, dir) = delivery(&name, vec![]);
        let accepted = Arc::new(Mutex::new(Vec::new()));
        d.transport = Box::new(SizeLimited {
            limit,
            accepted: Arc::clone(&accepted),
            refused: Arc::default(),
        });
        let mut host = Host::default();
        d.deliver(&fresh_body(body, (format, gzip), 1, cut), &mut host);
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(
            (host.delivered, host.lost),
            (1, 0),
            "{what}: {:?}",
            host.lost_reasons
        );
        let accepted = accepted.lock().unwrap();
        assert_eq!(accepted.len(), 1, "{what}");
        let spans = crate::export::otlp_decode::decode_body(&accepted[0], format, gzip)
            .expect("a request that decodes");
        let span = &spans[0];
        assert_eq!(
            span.attribute("gen_ai.usage.input_tokens")
                .and_then(|v| v.as_i64()),
            Some(42),
            "{what}"
        );
        let Some(crate::export::otlp_decode::Value::Map(members)) = span.attribute("gen_ai.input")
        else {
            panic!("{what}: the map ({:?})", span.attribute("gen_ai.input"));
        };
        assert_eq!(members.len(), 2, "{what}");
        assert_eq!(
            (members[1].0.as_str(), members[1].1.as_i64()),
            ("n", Some(7)),
            "{what}"
        );
        let prompt = members[0].1.as_str().expect("the prompt");
        assert!(
            prompt.len() > 10_000 && prompt.len() < whole,
            "{what}: cut, not emptied ({} bytes)",
            prompt.len()
        );
        host.cut
    }

    #[test]
    fn a_413_on_one_span_cuts_inside_its_complex_value() {
        // A map holding a 2 MB prompt, to a backend that takes at most
        // 1,000,000 bytes (a third of it gzipped): sent whole, refused,
        // then cut inside the map and counted once.
        for (format, gzip) in BODY_FORMATS {
            let what = format!("{format:?} gzip={gzip}");
            let (body, n, cut) = span_with_a_map(format, gzip, 2_000_000, 100_000_000);
            assert_eq!((n, cut), (1, 0), "{what}: whole under the budget");
            let limit = if gzip { body.len() / 3 } else { 1_000_000 };
            let cut = deliver_the_map(&what, &body, (format, gzip), (cut, limit), 2_000_000);
            assert_eq!(cut, 1, "{what}: the prompt, counted once");
        }
    }

    #[test]
    fn a_lone_span_over_the_limit_is_cut_inside_its_complex_value() {
        // A map holding a 300 KB prompt, the span alone over a lone-span
        // limit of 100 KB: the encoders write a complex value as it came,
        // so the span budget, which cuts strings and bytes, found nothing
        // to cut and the span was lost ("a span alone is larger than the
        // size limit"). Now it is cut inside the map to fit, counted by
        // the encoder, and taken by a backend that takes 100 KB.
        for (format, gzip) in BODY_FORMATS {
            let what = format!("{format:?} gzip={gzip}");
            let (body, n, cut) = span_with_a_map(format, gzip, 300_000, 100_000);
            assert_eq!((n, cut), (1, 1), "{what}: one span, its prompt cut");
            let limit = 100_000;
            assert_eq!(
                deliver_the_map(&what, &body, (format, gzip), (cut, limit), 300_000),
                0,
                "{what}: counted by the encoder"
            );
        }
    }

    #[test]
    fn a_span_with_nothing_left_to_cut_is_lost_and_no_cut_counted() {
        let body = one_big_span(BodyFormat::Protobuf, false, 3_000_000);
        let (mut d, _sent, dir) = delivery("nothing-to-cut", vec![]);
        d.transport = Box::new(SizeLimited {
            limit: 10,
            accepted: Arc::default(),
            refused: Arc::default(),
        });
        let mut host = Host::default();
        d.deliver(
            &fresh_body(&body, (BodyFormat::Protobuf, false), 1, 0),
            &mut host,
        );
        assert_eq!((host.delivered, host.lost, host.cut), (0, 1, 0));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn values_cut_in_recovered_spans_are_counted_when_cut() {
        // A dead process's span, over today's limit: its value is cut to
        // fit. The cut was never counted here, and the shared encoder's
        // count went to the next batch of fresh spans.
        use crate::buffer::dump::{DumpHeader, Recovered};
        use crate::buffer::payload_pool::PayloadPool;
        use crate::span::limits::SpanLimits;
        use crate::span::record::{OwnedOverflow, ValueInput};
        let pool = PayloadPool::with_mib(8).expect("pool");
        // SAFETY: all-zero bytes are an empty record.
        let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
        r.trace_id = [3; 16];
        r.span_id = [4; 8];
        r.name = r.store_text(b"llm.chat", 256, &pool).0;
        r.set_attribute(
            b"gen_ai.prompt",
            &ValueInput::Str(&[b'p'; 600]),
            &SpanLimits::default(),
            &pool,
        )
        .expect("set");
        assert_eq!(r.rest().chunk_count, 0, "in the arena: no chunks to carry");
        let recovered = Recovered {
            header: DumpHeader::new(*b"SGDUMP02", 1, "svc", &[]),
            records: vec![(r, OwnedOverflow(Vec::new()))],
        };
        let (mut d, sent, dir) = delivery("recovered-cut", vec![]);
        // Today's limit, the delivery's as the encoder's (as the exporter
        // makes them): a span alone goes no larger.
        (d.max_request_bytes, d.lone_ceiling) = (1200, 1200);
        let mut encoder = RequestEncoder::new(BodyFormat::Protobuf, false, 1200, 8);
        let mut host = Host::default();
        d.deliver_recovered(&recovered, &mut encoder, &mut host);
        assert_eq!(sent.lock().unwrap().len(), 1);
        assert_eq!((host.delivered, host.cut), (1, 1), "cut, and counted then");
        assert_eq!(
            encoder.take_cut_values(),
            0,
            "nothing left for the next batch"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_request_larger_than_the_spool_cap_is_spooled_in_parts() {
        // max_request_bytes above the spool's cap (here 1 MiB): a request
        // of four 400 KB spans, the backend down. All four were lost ("batch
        // larger than the spool cap") though each alone fits. In parts of
        // at most half the cap (one span each here), the spool keeps what
        // its cap holds: the two newest, the older evicted and counted as
        // the cap's.
        let body = big_spans(BodyFormat::Protobuf, false, 400_000, 4);
        assert!(body.len() > 1 << 20);
        let (_, sent, dir) = delivery("spool-cap", vec![]);
        let mut d = Delivery::new(
            Box::new(Scripted {
                answers: Arc::new(Mutex::new(vec![busy(None)])),
                sent,
            }),
            SpoolDir::new(&dir, 1 << 20),
            Duration::from_secs(30),
            100_000_000,
        );
        let mut host = Host {
            interrupt_waits: true,
            ..Host::default()
        };
        d.deliver(
            &fresh_body(&body, (BodyFormat::Protobuf, false), 4, 0),
            &mut host,
        );
        assert_eq!((host.kept, host.lost, host.evicted), (4, 0, 2));
        assert_eq!(d.spool().list().len(), 2, "the two newest spans");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A lone span over what a strict backend takes even with its values
    /// cut (ids and times alone are over the limit): it must end, neither
    /// retried nor kept for ever (not spooled, a spool file of it done
    /// with), counted lost, with a message that says how near the limit
    /// it came, after few requests (each cut halves the size).
    #[test]
    fn a_lone_span_no_cut_fits_is_lost_after_few_requests_naming_the_limit() {
        for (format, gzip) in BODY_FORMATS {
            for origin in [Origin::Fresh, Origin::SpoolFile, Origin::Recovered] {
                let what = format!("{format:?} gzip={gzip} {origin:?}");
                let body = one_big_span(format, gzip, 300_000);
                let dir = std::env::temp_dir().join(format!(
                    "sg-delivery-no-cut-fits-{format:?}-{gzip}-{origin:?}-{}",
                    std::process::id()
                ));
                let _ = std::fs::remove_dir_all(&dir);
                let (mut d, accepted, refused) = size_limited_delivery(&dir, 20);
                let mut host = Host::default();
                let request = Request {
                    body: &body,
                    format,
                    gzipped: gzip,
                    spans: 1,
                    origin,
                    cut_counted: 0,
                    cut_at: &[],
                };
                assert!(d.deliver(&request, &mut host), "{what}: done with");
                assert_eq!(
                    (host.delivered, host.lost, host.kept, host.cut),
                    (0, 1, 0, 0),
                    "{what}"
                );
                assert!(d.spool().list().is_empty(), "{what}: not spooled");
                assert!(accepted.lock().unwrap().is_empty(), "{what}");
                let requests = *refused.lock().unwrap();
                assert!((2..=40).contains(&requests), "{what}: {requests} requests");
                let [reason] = &host.lost_reasons[..] else {
                    panic!("{what}: {:?}", host.lost_reasons)
                };
                let smallest = reason
                    .split("the limit is under ")
                    .nth(1)
                    .and_then(|r| r.split(' ').next())
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or_else(|| panic!("{what}: {reason}"));
                assert!(reason.starts_with("HTTP 413 ("), "{what}: {reason}");
                assert!(
                    smallest > 20 && smallest < 1_000,
                    "{what}: the smallest refused, {smallest} bytes: {reason}"
                );
                std::fs::remove_dir_all(&dir).ok();
            }
        }
    }

    #[test]
    fn a_cut_span_then_refused_is_lost_and_its_cut_not_counted() {
        let body = one_big_span(BodyFormat::Protobuf, false, 300_000);
        let too_large = Err(SendError::TooLarge {
            reason: "HTTP 413".to_string(),
        });
        let refused = Err(SendError::Permanent {
            reason: "HTTP 400".to_string(),
        });
        let (mut d, sent, dir) = delivery("cut-refused", vec![too_large, refused]);
        let mut host = Host::default();
        d.deliver(
            &fresh_body(&body, (BodyFormat::Protobuf, false), 1, 0),
            &mut host,
        );
        assert_eq!(sent.lock().unwrap().len(), 2);
        assert_eq!((host.delivered, host.lost, host.cut), (0, 1, 0));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_span_alone_over_the_spool_cap_is_kept_cut_to_half_the_cap() {
        for (format, gzip) in BODY_FORMATS {
            let what = format!("{format:?} gzip={gzip}");
            let body = one_big_span(format, gzip, 300_000);
            let (_, sent, dir) = delivery(&format!("spool-cut-{format:?}-{gzip}"), vec![]);
            // Gzipped, the repeated alphabet is small: a cap just under it.
            let cap = if gzip { body.len() as u64 } else { 64 << 10 };
            let mut d = Delivery::new(
                Box::new(Scripted {
                    answers: Arc::new(Mutex::new(vec![busy(None)])),
                    sent,
                }),
                SpoolDir::new(&dir, cap),
                Duration::from_secs(30),
                100_000_000,
            );
            let mut host = Host {
                interrupt_waits: true,
                ..Host::default()
            };
            d.deliver(&fresh_body(&body, (format, gzip), 1, 0), &mut host);
            assert_eq!((host.kept, host.lost, host.cut), (1, 0, 1), "{what}");
            let files = d.spool().list();
            assert_eq!(files.len(), 1, "{what}");
            let file = std::fs::File::open(&files[0]).expect("open");
            let batch = crate::export::spool::read_batch(&file, cap).expect("a batch");
            assert!(batch.body.len() as u64 <= cap / 2, "{what}");
            let spans = crate::export::otlp_decode::decode_body(&batch.body, format, gzip)
                .expect("decodes");
            let prompt = spans[0]
                .attribute("gen_ai.prompt")
                .and_then(|v| v.as_str())
                .expect("the prompt");
            assert!(!prompt.is_empty(), "{what}: cut, not emptied");
            assert!(
                gzip || prompt.len() > 16_000,
                "{what}: {} bytes",
                prompt.len()
            );
            std::fs::remove_dir_all(&dir).ok();
        }
    }

    /// A delivery, the bodies its backend took, how many it refused (413),
    /// and its spool directory.
    type WholeSpanDelivery = (
        Delivery,
        Arc<Mutex<Vec<Vec<u8>>>>,
        Arc<Mutex<u64>>,
        std::path::PathBuf,
    );

    /// A delivery with lone spans sent whole (`send_lone_spans_whole`), a
    /// `max_request_bytes` of 1,000,000 and a spool capped at `cap`, to a
    /// backend that answers 413 over `limit` bytes.
    fn whole_span_delivery(name: &str, cap: u64, limit: usize) -> WholeSpanDelivery {
        let dir = std::env::temp_dir().join(format!("sg-whole-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(0));
        let mut d = Delivery::new(
            Box::new(SizeLimited {
                limit,
                accepted: Arc::clone(&accepted),
                refused: Arc::clone(&refused),
            }),
            SpoolDir::new(&dir, cap),
            Duration::from_secs(30),
            1_000_000,
        );
        d.send_lone_spans_whole();
        (d, accepted, refused, dir)
    }

    /// Sends spans with these prompt lengths as the exporter does: each
    /// request encoded under the delivery's `max_request_bytes` and the
    /// lone-span limit it gives, the encoder's cuts counted (in `host.cut`,
    /// as values_truncated counts them) and carried with the request.
    fn send_as_the_exporter(
        d: &mut Delivery,
        (format, gzip): (BodyFormat, bool),
        prompts: &[usize],
        host: &mut Host,
    ) {
        let pool = crate::buffer::payload_pool::PayloadPool::with_mib(32).expect("pool");
        let records = prompt_records(&pool, prompts);
        let views: Vec<SpanView> = records.iter().map(|r| SpanView::new(r, &pool)).collect();
        let mut enc = RequestEncoder::new(format, gzip, d.max_request_bytes, prompts.len());
        let resource = ResourceInfo::new("whole", &[]);
        let mut start = 0;
        while start < views.len() {
            enc.set_lone_limit(d.lone_span_limit());
            let n = enc.encode_prefix(&resource, &views[start..]);
            assert!(n > 0, "{format:?}: sent");
            let cut = enc.take_cut_values();
            host.cut += cut;
            let request = fresh_body(enc.body(), (format, gzip), n as u64, cut);
            d.deliver(&request, host);
            start += n;
        }
    }

    #[test]
    fn a_span_alone_over_max_request_bytes_arrives_whole_where_the_backend_takes_it() {
        // A 1.5 MB prompt, max_request_bytes 1,000,000, a backend that
        // takes 20 MiB (the Collector's OTLP/HTTP default): the prompt
        // arrived cut to 1 MB, counted in values_truncated.
        for (format, gzip) in BODY_FORMATS {
            let what = format!("{format:?} gzip={gzip}");
            let (mut d, accepted, refused, dir) =
                whole_span_delivery(&format!("whole-{format:?}-{gzip}"), 64 << 20, 20 << 20);
            let mut host = Host::default();
            send_as_the_exporter(&mut d, (format, gzip), &[200, 1_500_000, 300], &mut host);
            assert_eq!((host.delivered, host.lost, host.cut), (3, 0, 0), "{what}");
            assert_eq!(*refused.lock().unwrap(), 0, "{what}");
            let accepted = accepted.lock().unwrap();
            let mut prompts = prompt_lengths(&accepted, format, gzip);
            prompts.sort();
            assert_eq!(prompts, [200, 300, 1_500_000], "{what}: whole");
            // The long span in a request of its own.
            for body in accepted.iter() {
                let spans = crate::export::otlp_decode::decode_body(body, format, gzip).unwrap();
                let long = spans.iter().any(|s| {
                    s.attribute("gen_ai.prompt")
                        .and_then(|v| v.as_str())
                        .is_some_and(|p| p.len() == 1_500_000)
                });
                assert!(!long || spans.len() == 1, "{what}: alone");
            }
            std::fs::remove_dir_all(&dir).ok();
        }
    }

    #[test]
    fn after_a_413_on_a_lone_span_the_next_is_cut_up_front() {
        // A backend that answers 413 over 1,000,000 bytes: the first long
        // span is refused once and sent again cut (counted); the second is
        // cut before it is sent, not refused first.
        for format in [BodyFormat::Protobuf, BodyFormat::Json] {
            let what = format!("{format:?}");
            let (mut d, accepted, refused, dir) =
                whole_span_delivery(&format!("strict-{format:?}"), 64 << 20, 1_000_000);
            let mut host = Host::default();
            send_as_the_exporter(&mut d, (format, false), &[1_500_000], &mut host);
            assert_eq!((host.delivered, host.lost, host.cut), (1, 0, 1), "{what}");
            assert_eq!(*refused.lock().unwrap(), 1, "{what}: one 413");
            send_as_the_exporter(&mut d, (format, false), &[1_500_000], &mut host);
            assert_eq!((host.delivered, host.lost, host.cut), (2, 0, 2), "{what}");
            assert_eq!(*refused.lock().unwrap(), 1, "{what}: no second 413");
            let accepted = accepted.lock().unwrap();
            assert_eq!(accepted.len(), 2, "{what}: three requests, one refused");
            assert!(accepted.iter().all(|b| b.len() <= 1_000_000), "{what}");
            let prompts = prompt_lengths(&accepted, format, false);
            assert!(
                prompts[1] >= prompts[0] && prompts[1] > 900_000,
                "{what}: cut to max_request_bytes, no more ({prompts:?})"
            );
            // Forgotten after a while: a raised limit is tried again.
            let lesson = d.lone_lesson.as_mut().expect("learned");
            lesson.at = Instant::now()
                .checked_sub(LONE_LESSON_HOLDS + Duration::from_secs(1))
                .expect("an hour ago");
            assert_eq!(d.lone_span_limit(), d.lone_ceiling, "{what}");
            std::fs::remove_dir_all(&dir).ok();
        }
    }

    #[test]
    fn a_batch_is_still_split_at_max_request_bytes_around_a_lone_span() {
        // Ten 100 KB prompts around a 1.5 MB one: requests of many spans
        // stay within max_request_bytes; only the long span's is over it.
        for (format, gzip) in BODY_FORMATS {
            let what = format!("{format:?} gzip={gzip}");
            let (mut d, accepted, _refused, dir) =
                whole_span_delivery(&format!("batch-{format:?}-{gzip}"), 64 << 20, 20 << 20);
            let mut host = Host::default();
            let mut prompts = vec![100_000; 5];
            prompts.push(1_500_000);
            prompts.extend([100_000; 5]);
            send_as_the_exporter(&mut d, (format, gzip), &prompts, &mut host);
            assert_eq!((host.delivered, host.lost, host.cut), (11, 0, 0), "{what}");
            let accepted = accepted.lock().unwrap();
            assert!(accepted.len() >= 3, "{what}: {} requests", accepted.len());
            for body in accepted.iter() {
                let plain = plain_body(body, gzip).expect("plain");
                let spans = crate::export::otlp_decode::decode_body(body, format, gzip).unwrap();
                assert!(
                    plain.len() <= 1_000_000 || spans.len() == 1,
                    "{what}: {} spans in {} bytes",
                    spans.len(),
                    plain.len()
                );
            }
            std::fs::remove_dir_all(&dir).ok();
        }
    }

    #[test]
    fn a_span_over_the_lone_span_ceiling_is_cut_before_it_is_sent() {
        // The ceiling is half the spool's cap (here 4 MiB) when that is
        // under 64 MiB: a 3 MB prompt is cut to fit 2 MiB before it is
        // sent, even to a backend that would take it, and counted.
        let (mut d, accepted, refused, dir) = whole_span_delivery("ceiling", 4 << 20, 20 << 20);
        let ceiling = (2 << 20) - HEADER_LEN;
        assert_eq!(d.lone_span_limit(), ceiling);
        let mut host = Host::default();
        send_as_the_exporter(
            &mut d,
            (BodyFormat::Protobuf, false),
            &[3_000_000],
            &mut host,
        );
        assert_eq!((host.delivered, host.lost, host.cut), (1, 0, 1));
        assert_eq!(*refused.lock().unwrap(), 0);
        let accepted = accepted.lock().unwrap();
        assert_eq!(accepted.len(), 1);
        assert!(accepted[0].len() <= ceiling);
        assert!(
            accepted[0].len() > ceiling - 4096,
            "cut to the ceiling, no more"
        );
        std::fs::remove_dir_all(&dir).ok();
        // With a larger spool, the fixed ceiling.
        let (mut d, _, _, dir) = whole_span_delivery("ceiling-fixed", 1 << 30, 20 << 20);
        assert_eq!(d.lone_span_limit(), LONE_SPAN_CEILING);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_lone_span_over_max_request_bytes_is_spooled_and_replayed_whole() {
        for (format, gzip) in BODY_FORMATS {
            let what = format!("{format:?} gzip={gzip}");
            let (mut d, accepted, _refused, dir) =
                whole_span_delivery(&format!("spool-{format:?}-{gzip}"), 64 << 20, 20 << 20);
            let accepted_by_the_backend = accepted;
            // The backend away: kept whole, one file.
            let sent = Arc::new(Mutex::new(Vec::new()));
            let up = std::mem::replace(
                &mut d.transport,
                Box::new(Scripted {
                    answers: Arc::new(Mutex::new(vec![busy(None)])),
                    sent,
                }),
            );
            let mut host = Host {
                interrupt_waits: true,
                ..Host::default()
            };
            send_as_the_exporter(&mut d, (format, gzip), &[1_500_000], &mut host);
            assert_eq!((host.kept, host.lost, host.cut), (1, 0, 0), "{what}");
            assert_eq!(d.spool().list().len(), 1, "{what}");
            // Back: replayed whole.
            d.transport = up;
            d.down_until = None;
            let mut host = Host::default();
            assert!(d.replay_spool(&mut host), "{what}");
            assert_eq!((host.delivered, host.lost, host.cut), (1, 0, 0), "{what}");
            let prompts = prompt_lengths(&accepted_by_the_backend.lock().unwrap(), format, gzip);
            assert_eq!(prompts, [1_500_000], "{what}");
            std::fs::remove_dir_all(&dir).ok();
        }
    }

    /// How `Answering` answers a request.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Heard {
        /// 200 at once.
        Taken,
        /// 503 at once: an answer, a failure.
        Busy,
        /// Taken, never answered: times out (`Silence::TimedOut`).
        Hang,
        /// 200 after `SLOW_ANSWER`: times out unanswered if given less
        /// (`limit_next`).
        Slow,
    }

    /// More than `PROBE_TIMEOUT`, less than a request timeout: a backend
    /// slow but healthy (a loaded collector) answers in it.
    const SLOW_ANSWER: Duration = Duration::from_secs(3);

    /// Each request `Answering` saw: whether it held spans (a probe holds
    /// none), and the time it was given (None: a whole request timeout).
    type AnswerLog = Arc<Mutex<Vec<(bool, Option<Duration>)>>>;

    /// A backend answering each request as its script says (in turn; 200
    /// once it is done), telling `Silence` as the HTTP transport does. It
    /// logs each request: whether it held spans (a probe holds none) and
    /// the time it was given (`limit_next`; None: a whole request timeout).
    struct Answering {
        script: Arc<Mutex<Vec<Heard>>>,
        log: AnswerLog,
        limit: Option<Duration>,
        silence: Silence,
    }

    impl Transport for Answering {
        fn send(
            &mut self,
            body: &[u8],
            format: BodyFormat,
            gzipped: bool,
        ) -> Result<Accepted, SendError> {
            let spans = crate::export::otlp_decode::decode_body(body, format, gzipped)
                .expect("a body the server reads");
            let limit = self.limit.take();
            self.log.lock().unwrap().push((!spans.is_empty(), limit));
            let mut script = self.script.lock().unwrap();
            let heard = if script.is_empty() {
                Heard::Taken
            } else {
                script.remove(0)
            };
            let timed_out = match heard {
                Heard::Taken => false,
                Heard::Busy => {
                    self.silence = Silence::Answered;
                    return Err(SendError::Transient {
                        reason: "HTTP 503".to_string(),
                        retry_after: None,
                    });
                }
                Heard::Hang => true,
                Heard::Slow => limit.is_some_and(|l| l < SLOW_ANSWER),
            };
            if timed_out {
                self.silence = Silence::TimedOut;
                return Err(SendError::Transient {
                    reason: "no answer in time".to_string(),
                    retry_after: None,
                });
            }
            self.silence = Silence::Answered;
            Ok(Accepted::default())
        }
        fn describe(&self) -> String {
            "answering:".to_string()
        }
        fn silence(&self) -> Silence {
            self.silence
        }
        fn limit_next(&mut self, limit: Duration) {
            self.limit = Some(limit);
        }
    }

    /// A spool dir `name` with one file of a span, replayed (no retries)
    /// to a `Answering` following `script`; the requests' log.
    fn heard(name: &str, script: &[Heard]) -> (Delivery, std::path::PathBuf, AnswerLog) {
        let dir = std::env::temp_dir().join(format!("sg-delivery-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        spool_names(&SpoolDir::new(&dir, 1 << 20), &["llm.chat"]);
        let log = Arc::default();
        let d = Delivery::new(
            Box::new(Answering {
                script: Arc::new(Mutex::new(script.to_vec())),
                log: Arc::clone(&log),
                limit: None,
                silence: Silence::Answered,
            }),
            SpoolDir::new(&dir, 1 << 20),
            Duration::ZERO,
            1 << 20,
        );
        (d, dir, log)
    }

    /// A spool file the backend never answered (a gateway hung on it),
    /// then the replay's probe taken: the backend answered the last
    /// request sent. A flush's next batch, to that backend slow but
    /// healthy (3 s), was given `PROBE_TIMEOUT` and not retried, as after
    /// a request with no answer (the probe went around the bookkeeping of
    /// `silent`): spooled, delivered a replay later, sent twice. It is
    /// given a whole request timeout and delivered.
    #[test]
    fn a_probe_taken_after_a_file_with_no_answer_leaves_a_flush_its_whole_timeout() {
        let (mut d, dir, log) = heard("probe-answered", &[Heard::Hang, Heard::Taken, Heard::Slow]);
        let mut host = Host::default();
        assert!(!d.replay_spool(&mut host));
        assert_eq!(d.probes(), ProbeCount { sent: 1, taken: 1 });
        assert_eq!(
            setback_counts(d.spool()),
            [1],
            "the file, on the probe's word"
        );
        assert!(!d.silent(), "the probe was answered");
        let mut flush = Host {
            awaited: true,
            ..Host::default()
        };
        live(&mut d, &mut flush);
        assert_eq!(
            (flush.delivered, flush.kept),
            (2, 0),
            "the flush's batch: {:?}",
            log.lock().unwrap()
        );
        assert_eq!(
            log.lock().unwrap()[2..],
            [(true, None)],
            "one request, a whole timeout"
        );
        assert_eq!(d.spool().list().len(), 1, "nothing spooled");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The other way: a file answered 503, then the replay's probe got no
    /// answer (the backend gone silent since). The last request sent got
    /// none: the next request of a flush is the probe, given
    /// `PROBE_TIMEOUT` and not retried (exitdown38's rule), not a whole
    /// request timeout and then a probe to a backend that never answers.
    #[test]
    fn a_probe_with_no_answer_makes_a_flush_s_next_request_the_probe() {
        let (mut d, dir, log) = heard(
            "probe-unanswered",
            &[Heard::Busy, Heard::Hang, Heard::Hang, Heard::Hang],
        );
        let mut host = Host::default();
        assert!(!d.replay_spool(&mut host));
        assert_eq!(d.probes(), ProbeCount { sent: 1, taken: 0 });
        assert_eq!(
            setback_counts(d.spool()),
            [0],
            "not counted: the backend may be down"
        );
        assert!(d.silent(), "the probe got no answer");
        d.down_until = None; // the probe interval passed
        let mut flush = Host {
            awaited: true,
            ..Host::default()
        };
        live(&mut d, &mut flush);
        assert_eq!((flush.delivered, flush.kept), (0, 2));
        assert_eq!(
            log.lock().unwrap()[2..],
            [(true, Some(super::super::retry::PROBE_TIMEOUT))],
            "one request, given PROBE_TIMEOUT"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A backend that accepts connections and never answers, found so by
    /// a replay's probe (the file, then the probe, unanswered). Once the
    /// probe interval was over, each background batch (the exporter's
    /// live traffic, no flush waiting) went with a whole request timeout
    /// before the replay's probe learnt the same in 1 s: 10 s of the
    /// exporter thread a probe moment. The probe now goes first: failed,
    /// the batch is kept without an attempt; taken (the backend back),
    /// the batch goes with its whole timeout and is delivered.
    #[test]
    fn a_live_batch_to_a_black_hole_found_silent_costs_a_probe_not_a_request_timeout() {
        let (mut d, dir, log) = heard(
            "live-black-hole",
            &[Heard::Hang, Heard::Hang, Heard::Hang, Heard::Hang],
        );
        let mut host = Host::default();
        assert!(!d.replay_spool(&mut host));
        assert_eq!(d.probes(), ProbeCount { sent: 1, taken: 0 });
        assert!(d.silent());
        let probe = (false, Some(super::super::retry::PROBE_TIMEOUT));
        let mut host = Host::default();
        for _ in 0..2 {
            d.down_until = None; // the probe interval passed
            live(&mut d, &mut host);
        }
        assert_eq!((host.delivered, host.kept), (0, 4));
        assert_eq!(
            log.lock().unwrap()[2..],
            [probe, probe],
            "a probe a batch, no whole request timeout"
        );
        d.down_until = None; // the backend is back
        live(&mut d, &mut host);
        assert_eq!(host.delivered, 2);
        assert_eq!(log.lock().unwrap()[4..], [probe, (true, None)]);
        assert_eq!(d.probes(), ProbeCount { sent: 4, taken: 1 });
        // A flush's batch is the probe itself (exitdown38), as before.
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A backend that takes empty requests and hangs on spans: a flush's
    /// batch got no answer (its whole timeout, then the retry given
    /// `PROBE_TIMEOUT`), and the replay after it found the probe taken,
    /// which said the backend answered: every later flush paid a whole
    /// request timeout again (capped by its deadline). The flush after
    /// that is given `PROBE_TIMEOUT` and not retried; a batch of spans
    /// answered ends it (the next flush gets its whole timeout).
    #[test]
    fn a_backend_that_hangs_on_spans_costs_a_second_flush_a_probe_not_a_request_timeout() {
        let (mut d, dir, log) = heard(
            "hangs-on-spans",
            &[
                Heard::Hang,  // the first flush's batch
                Heard::Hang,  // its retry, given PROBE_TIMEOUT
                Heard::Hang,  // the replay: the older file
                Heard::Taken, // its probe
                Heard::Hang,  // the flush's batch, spooled
                Heard::Taken, // its probe: two in a row, the replay stops
                Heard::Hang,  // the second flush's batch
            ],
        );
        let mut flush = Host {
            awaited: true,
            ..Host::default()
        };
        live(&mut d, &mut flush);
        assert_eq!(flush.kept, 2);
        let whole = |spans| (spans, None);
        let probe = |spans| (spans, Some(super::super::retry::PROBE_TIMEOUT));
        assert_eq!(log.lock().unwrap()[..], [whole(true), probe(true)]);
        d.down_until = None; // the probe interval passed
        let mut host = Host::default();
        assert!(!d.replay_spool(&mut host));
        assert_eq!(d.probes(), ProbeCount { sent: 2, taken: 2 });
        assert!(!d.silent(), "the probe was answered");
        d.down_until = None;
        let mut flush = Host {
            awaited: true,
            ..Host::default()
        };
        live(&mut d, &mut flush);
        assert_eq!(
            log.lock().unwrap()[6..],
            [probe(true)],
            "the second flush: one request, given PROBE_TIMEOUT"
        );
        assert_eq!((flush.delivered, flush.kept), (0, 2));
        // A background batch answered: spans are taken again.
        d.down_until = None;
        live(&mut d, &mut host);
        assert_eq!(host.delivered, 2);
        live(&mut d, &mut flush);
        assert_eq!(flush.delivered, 2);
        assert_eq!(log.lock().unwrap()[7..], [whole(true), whole(true)]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
