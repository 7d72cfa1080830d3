//! Random sequences of C ABI calls on one tracer, with bad input where a C
//! caller could pass it: NULL with a length, invalid UTF-8, values up to
//! about 100 KB, out-of-range kinds and codes, malformed traceparents and
//! packed buffers, ends twice, stale, forged and foreign handles, calls
//! after shutdown. The tracer is small (a few slots, a 1 MiB pool, low
//! count limits) so that every limit is reached, and sends to `discard:`.
//!
//! The promise checked is the brief's: bad input gets a clear error code,
//! never a panic across the boundary (`SPANGUARD_RESULT_PANIC`) or a
//! crash, and no span is lost. Concretely:
//! - each call answers a code that its documentation allows (a set per
//!   call, below), never PANIC;
//! - a call given an argument it documents as refused (NULL with a
//!   length, a bad kind, status code or value type, an unparsable
//!   traceparent, too many attributes) does not succeed;
//! - a failed begin does not write `*out`; a successful one hands out a
//!   handle never seen before in this tracer;
//! - a handle is followed from begin to end: a live span's handle is never
//!   called stale or ended, an ended one never succeeds again (no double
//!   end), and a handle no begin returned never ends a span;
//! - SHUT_DOWN is answered only after shutdown, and then to every begin,
//!   end and recording call on this tracer's spans whose other arguments
//!   are fine;
//! - the counters agree with the calls, while running (at each flush) and
//!   after shutdown: spans_begun = the begins that succeeded,
//!   dropped_buffer_full = the begins refused BUFFER_FULL, spans_ended =
//!   the ends that succeeded plus the spans still open at shutdown, which
//!   is spans_unended_at_shutdown (while running, at most the ends: see
//!   `check_counters`), spans_open = spans_begun - spans_ended; after shutdown
//!   spans_open = 0, queue_depth = 0 and the identity of
//!   `spanguard_counters` (include/spanguard.h, README "Counters") holds:
//!   spans_ended = spans_exported + spooled_spans + dropped_export_failed
//!   + dropped_rejected + spans_unsampled; exporter_panics = 0 (each is an
//!   internal bug); calls after shutdown change none of it;
//! - a complex value (`spanguard_span_set_anyvalue`, `SPANGUARD_VALUE_ANY`
//!   in an attribute array: any bytes, or well formed from the input,
//!   nested past the depth limits up to 100,000 levels, or broken by one
//!   byte) is refused INVALID_ANY_VALUE exactly when the reference reader
//!   (`any_ref`, independent of spanguard's checker) refuses it: by
//!   `set_anyvalue` with that code, by the calls that take arrays with
//!   some refusal; no call answers INVALID_ANY_VALUE unless it was given
//!   a value the reference refuses;
//! - `spanguard_span_ids` agrees with the traceparent's text, and
//!   `spanguard_span_end_keeping_ids` keeps a live span's ids (none for
//!   `SPANGUARD_SPAN_NONE`) and ends as the other ends do.
#![no_main]

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::c_char;
use std::ptr::{null, null_mut};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use spanguard::ffi::packed::*;
use spanguard::ffi::result::spanguard_result;
use spanguard::ffi::span::*;
use spanguard::ffi::tracer::*;
use spanguard::ffi::types::*;
use spanguard::span::traceparent;

use spanguard_result as R;

mod any_ref;
mod input;
use any_ref::Node;
use input::Input;

thread_local! {
    /// Whether the current step was given a complex value the reference
    /// refuses: only then may a call answer INVALID_ANY_VALUE.
    static MALFORMED_ANY: Cell<bool> = const { Cell::new(false) };
}

/// This target's readings of the input, beside `input`'s bytes.
impl Input<'_> {
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let got = self.bytes(8);
        b[..got.len()].copy_from_slice(got);
        u64::from_le_bytes(b)
    }

    /// Up to 63 bytes of the input (any bytes: invalid UTF-8 too), now and
    /// then repeated to about 100 KB (names and keys are cut, values fill
    /// the pool); one in 32 is NULL with its length.
    fn text(&mut self) -> Text {
        let mode = self.byte();
        let n = (self.byte() % 64) as usize;
        let base = self.bytes(n);
        let bytes = if mode >= 0xe0 {
            base.repeat(1 + self.byte() as usize * 6)
        } else {
            base.to_vec()
        };
        Text {
            bytes,
            null: mode % 32 == 1,
        }
    }

    /// A traceparent: one a span of this tracer gave, one well formed from
    /// input bytes (any version, ids and flags, zero ids too), or any bytes.
    fn traceparent(&mut self, seen: &[Vec<u8>]) -> Text {
        let bytes = match self.byte() % 4 {
            0 if !seen.is_empty() => seen[self.byte() as usize % seen.len()].clone(),
            1 | 2 => {
                let version = if self.byte() < 0xc0 { 0 } else { self.byte() };
                let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
                let trace_id = hex(&self.id_bytes::<16>());
                let span_id = hex(&self.id_bytes::<8>());
                let flags = self.byte();
                format!("{version:02x}-{trace_id}-{span_id}-{flags:02x}").into_bytes()
            }
            _ => return self.text(),
        };
        Text { bytes, null: false }
    }

    /// Id bytes: from the input, or all zero (which the spec forbids).
    fn id_bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut id = [0u8; N];
        if self.byte() != 0 {
            let got = self.bytes(N);
            id[..got.len()].copy_from_slice(got);
        }
        id
    }

    /// A tracestate: any bytes, or well-formed members, sometimes more
    /// than the 512 bytes kept (cut by whole members).
    fn tracestate(&mut self) -> Text {
        if self.byte() % 2 == 0 {
            return self.text();
        }
        let members: Vec<String> = (0..self.byte() % 64)
            .map(|i| format!("k{i}=v{}", self.byte()))
            .collect();
        Text {
            bytes: members.join(",").into_bytes(),
            null: false,
        }
    }

    /// A packed attribute buffer: any bytes, or well formed (sometimes cut
    /// short, sometimes over `SPANGUARD_MAX_ATTRIBUTES` entries).
    fn packed(&mut self) -> Text {
        // Bits 0-1: any bytes (0), cut short (1), whole; bits 2-4: the
        // count. 0xfe: NULL with its length; 0xff: one entry too many.
        let mode = self.byte();
        if mode % 4 == 0 {
            return self.text();
        }
        let count = if mode == 0xff {
            SPANGUARD_MAX_ATTRIBUTES as usize + 1
        } else {
            (mode >> 2) as usize % 8
        };
        let mut buf = Vec::new();
        let put_text = |buf: &mut Vec<u8>, t: &[u8]| {
            buf.extend_from_slice(&(t.len() as u32).to_le_bytes());
            buf.extend_from_slice(t);
        };
        for _ in 0..count {
            let kind = match self.byte() % 6 {
                0 => SPANGUARD_VALUE_STRING as u8,
                5 => self.byte(),
                k => k,
            };
            buf.push(kind);
            put_text(&mut buf, &self.text().bytes);
            match kind as u32 {
                SPANGUARD_VALUE_INT | SPANGUARD_VALUE_DOUBLE => {
                    buf.extend_from_slice(&self.u64().to_le_bytes())
                }
                SPANGUARD_VALUE_BOOL => buf.push(self.byte()),
                _ => put_text(&mut buf, &self.text().bytes),
            }
        }
        if mode % 4 == 1 {
            let keep = self.u64() as usize % (buf.len() + 1);
            buf.truncate(keep);
        }
        Text {
            bytes: buf,
            null: mode == 0xfe,
        }
    }

    /// An array of `spanguard_attribute`s of every value type, and the
    /// data they point at.
    fn attributes(&mut self) -> Attributes {
        let mut a = Attributes::default();
        let c = self.byte();
        let n = if c == 0xff {
            SPANGUARD_MAX_ATTRIBUTES as usize + 1
        } else {
            (c % 6) as usize
        };
        // NULL with a count: refused.
        a.null = c == 0xfe;
        a.too_many = n > SPANGUARD_MAX_ATTRIBUTES as usize;
        a.refused = a.null && n > 0;
        for _ in 0..n {
            let key = self.text();
            // Any NULL key is refused, with a length or not.
            a.refused |= key.null;
            let mut attr = spanguard_attribute {
                key: key.ptr(),
                key_len: key.len(),
                type_: 0,
                bool_value: false,
                int_value: 0,
                double_value: 0.0,
                string_value: null(),
                string_len: 0,
            };
            a.texts.push(key);
            match self.byte() % 12 {
                1 => {
                    attr.type_ = SPANGUARD_VALUE_INT;
                    attr.int_value = self.u64() as i64;
                }
                2 => {
                    attr.type_ = SPANGUARD_VALUE_DOUBLE;
                    attr.double_value = f64::from_bits(self.u64());
                }
                3 => {
                    attr.type_ = SPANGUARD_VALUE_BOOL;
                    attr.bool_value = self.byte() & 1 != 0;
                }
                t @ (0 | 4 | 8 | 10) => {
                    // A string, bytes, or bools as bytes (any byte is a
                    // defined C bool to spanguard: 0 false, else true).
                    attr.type_ = match t {
                        4 => SPANGUARD_VALUE_BYTES,
                        8 => SPANGUARD_VALUE_BOOL_ARRAY,
                        _ => SPANGUARD_VALUE_STRING,
                    };
                    let value = self.text();
                    a.refused |= value.refused();
                    attr.string_value = value.ptr();
                    attr.string_len = value.len();
                    a.texts.push(value);
                }
                5 => {
                    attr.type_ = SPANGUARD_VALUE_STRING_ARRAY;
                    let (strings, refused) = self.strings(&mut a.texts);
                    a.refused |= refused;
                    attr.string_value = strings.as_ptr().cast();
                    attr.string_len = strings.len();
                    a.strings.push(strings);
                }
                6 => {
                    attr.type_ = SPANGUARD_VALUE_INT_ARRAY;
                    let ints: Vec<i64> = (0..self.byte() % 8).map(|_| self.u64() as i64).collect();
                    (attr.string_value, attr.string_len) = self.array_ptr(&ints, &mut a.refused);
                    a.ints.push(ints);
                }
                7 => {
                    attr.type_ = SPANGUARD_VALUE_DOUBLE_ARRAY;
                    let doubles: Vec<f64> = (0..self.byte() % 8)
                        .map(|_| f64::from_bits(self.u64()))
                        .collect();
                    (attr.string_value, attr.string_len) = self.array_ptr(&doubles, &mut a.refused);
                    a.doubles.push(doubles);
                }
                11 => {
                    attr.type_ = SPANGUARD_VALUE_ANY;
                    let (value, error) = self.any_message();
                    a.refused |= error.is_some();
                    attr.string_value = value.ptr();
                    attr.string_len = value.len();
                    a.texts.push(value);
                }
                _ => {
                    // No such value type: 0, or past the last kind
                    // (SPANGUARD_VALUE_ANY since complex values came; 10
                    // with an empty value is the empty AnyValue, taken).
                    attr.type_ = match self.byte() {
                        0 => 0,
                        b => SPANGUARD_VALUE_ANY + b as u32,
                    };
                    a.refused = true;
                }
            }
            a.list.push(attr);
        }
        a
    }

    /// A complex value's message: any bytes (NULL now and then), or a
    /// value built from the input and encoded, now and then nested in
    /// arrays past the depth limits (up to 100,000 levels) or broken by
    /// one byte; and the code it must be refused with, as the reference
    /// reader (`any_ref`) has it (NULL with a length: NULL_ARGUMENT).
    fn any_message(&mut self) -> (Text, Option<R>) {
        let mode = self.byte();
        let text = if mode % 4 == 0 {
            self.text()
        } else {
            let node = self.any_node(1);
            let mut bytes = any_ref::encode(&node);
            if mode & 0x10 != 0 {
                let levels = [63, 64, 65, 127, 128, 129, 1000, 100_000][(mode >> 5) as usize];
                bytes = any_ref::nest(levels, &bytes);
            }
            if mode % 4 == 3 && !bytes.is_empty() {
                let at = self.u64() as usize % bytes.len();
                match self.byte() % 3 {
                    0 => bytes.truncate(at),
                    1 => bytes[at] ^= 1 << (self.byte() % 8),
                    _ => bytes.insert(at, self.byte()),
                }
            }
            Text {
                bytes,
                null: mode == 0xfd,
            }
        };
        let error = if text.refused() {
            Some(R::NullArgument)
        } else if !text.null && any_ref::read(&text.bytes).is_none() {
            MALFORMED_ANY.set(true);
            Some(R::InvalidAnyValue)
        } else {
            None
        };
        (text, error)
    }

    /// A value of every kind, nested up to 6 levels.
    fn any_node(&mut self, level: usize) -> Node {
        match self.byte() % 10 {
            0 => Node::Empty,
            1 => Node::Str(String::from_utf8_lossy(&self.text().bytes).into_owned()),
            2 => Node::Bool(self.byte() & 1 != 0),
            3 => Node::Int(self.u64() as i64),
            4 => Node::Double(self.u64()),
            5 => Node::Bytes(self.text().bytes),
            6 | 7 if level < 6 => {
                let n = self.byte() % 4;
                Node::Array((0..n).map(|_| self.any_node(level + 1)).collect())
            }
            8 | 9 if level < 6 => {
                let n = self.byte() % 4;
                Node::Map(
                    (0..n)
                        .map(|_| {
                            let key = String::from_utf8_lossy(&self.text().bytes).into_owned();
                            (key, self.any_node(level + 1))
                        })
                        .collect(),
                )
            }
            _ => Node::Int(level as i64),
        }
    }

    /// A string array's elements (their bytes kept in `texts`), and whether
    /// one is NULL with a length.
    fn strings(&mut self, texts: &mut Vec<Text>) -> (Vec<spanguard_string>, bool) {
        let mut refused = false;
        let strings = (0..self.byte() % 5)
            .map(|_| {
                let t = self.text();
                refused |= t.refused();
                let s = spanguard_string {
                    ptr: t.ptr(),
                    len: t.len(),
                };
                texts.push(t);
                s
            })
            .collect();
        (strings, refused)
    }

    /// An array's pointer and length, now and then NULL with its length.
    fn array_ptr<T>(&mut self, items: &[T], refused: &mut bool) -> (*const c_char, usize) {
        if self.byte() == 1 {
            *refused |= !items.is_empty();
            (null(), items.len())
        } else {
            (items.as_ptr().cast(), items.len())
        }
    }
}

/// `p`, or NULL for an argument the input passes as NULL.
fn null_or<T>(null: bool, p: *const T) -> *const T {
    if null { std::ptr::null() } else { p }
}

/// Text for a pointer-and-length argument.
struct Text {
    bytes: Vec<u8>,
    /// Passed as NULL with the bytes' length.
    null: bool,
}

impl Text {
    fn ptr(&self) -> *const c_char {
        null_or(self.null, self.bytes.as_ptr().cast())
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    /// NULL with a length: documented as refused wherever text is taken.
    fn refused(&self) -> bool {
        self.null && !self.bytes.is_empty()
    }
}

/// A `spanguard_attribute` array and everything it points at (each Vec's
/// heap buffer stays put when the Vec is moved into these lists).
#[derive(Default)]
struct Attributes {
    list: Vec<spanguard_attribute>,
    texts: Vec<Text>,
    strings: Vec<Vec<spanguard_string>>,
    ints: Vec<Vec<i64>>,
    doubles: Vec<Vec<f64>>,
    /// The array itself passed as NULL.
    null: bool,
    /// The call must refuse this array.
    refused: bool,
    /// More than one call takes, but for an event's or a link's.
    too_many: bool,
}

impl Attributes {
    /// A call that takes at most `SPANGUARD_MAX_ATTRIBUTES` must refuse it.
    fn refused_in_one_call(&self) -> bool {
        self.refused || self.too_many
    }

    fn ptr(&self) -> *const spanguard_attribute {
        null_or(self.null, self.list.as_ptr())
    }

    fn len(&self) -> usize {
        self.list.len()
    }
}

/// What the target knows of a call's arguments other than the span.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Args {
    /// All documented as taken: the call fails only for its span or
    /// tracer (or a limit).
    Fine,
    /// One is documented as refused: the call must not succeed.
    Refused,
    /// A packed buffer, whose parse the target does not repeat: it may be
    /// refused (INVALID_ARGUMENT) before the span is looked at.
    Unchecked,
}

impl From<bool> for Args {
    fn from(refused: bool) -> Args {
        if refused { Args::Refused } else { Args::Fine }
    }
}

/// What the target knows of a handle a begin returned.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Span {
    Live,
    Ended,
}

/// The codes each kind of call documents (include/spanguard.h).
const SPAN_CALL: &[R] = &[
    R::Ok,
    R::NullArgument,
    R::InvalidArgument,
    R::StaleSpan,
    R::AlreadyEnded,
    R::ShutDown,
    R::LimitReached,
    R::EmptyKey,
    R::Truncated,
    R::Utf8Replaced,
    R::NonRecording,
];
const LINK_CALL: &[R] = &[
    R::Ok,
    R::NullArgument,
    R::InvalidArgument,
    R::StaleSpan,
    R::AlreadyEnded,
    R::ShutDown,
    R::LimitReached,
    R::Truncated,
    R::Utf8Replaced,
    R::NonRecording,
    R::InvalidTraceparent,
];
const BEGIN: &[R] = &[
    R::Ok,
    R::NullArgument,
    R::InvalidArgument,
    R::StaleSpan,
    R::ShutDown,
    R::BufferFull,
    R::LimitReached,
    R::InvalidTraceparent,
    R::Truncated,
    R::Utf8Replaced,
    R::ParentStale,
    R::NonRecording,
];
const END: &[R] = &[
    R::Ok,
    R::StaleSpan,
    R::AlreadyEnded,
    R::ShutDown,
    R::NonRecording,
];
const PROPAGATE: &[R] = &[
    R::Ok,
    R::NullArgument,
    R::BufferTooSmall,
    R::StaleSpan,
    R::AlreadyEnded,
    R::ShutDown,
    R::NonRecording,
];
const FLUSH: &[R] = &[R::Ok, R::Timeout, R::Spooled];

/// Panics unless `rc` is a code of the enum, not PANIC, and one `call`
/// documents.
fn check(call: &str, rc: R, allowed: &[R]) {
    if trace() {
        eprintln!("{call}: {rc:?}");
    }
    assert!(rc != R::Panic, "{call}: a panic was caught in the library");
    assert_eq!(
        R::from_code(rc as u32),
        Some(rc),
        "{call}: not a result code"
    );
    if rc == R::InvalidAnyValue {
        assert!(
            MALFORMED_ANY.get(),
            "{call}: INVALID_ANY_VALUE with no malformed complex value"
        );
        return;
    }
    assert!(allowed.contains(&rc), "{call}: undocumented result {rc:?}");
}

/// SPANGUARD_FUZZ_TRACE=1 prints each call's result to stderr: what an
/// input that fails did, call by call (run the target on that one file).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("SPANGUARD_FUZZ_TRACE").is_some())
}

/// A well-formed handle, nearly always of a tracer that does not exist
/// (id 254: one tracer lives at a time, and ids take turns over 1..=255).
const FOREIGN: u64 = 0xfe << 56 | 1 << 32 | 1;

/// The tracer of one input, and what its calls answered so far: the model
/// every answer and counter is checked against.
struct Harness {
    tracer: *mut spanguard_tracer,
    /// Every handle a begin returned, and what became of its span.
    spans: HashMap<u64, Span>,
    /// Recent handles the next calls pick from.
    held: Vec<u64>,
    /// Traceparents the tracer wrote, as remote parents and links.
    traceparents: Vec<Vec<u8>>,
    /// Contexts `spanguard_span_begin_packed_keeping_ids` wrote, as kept
    /// parents.
    contexts: Vec<spanguard_span_context>,
    /// Begins that succeeded; begins refused BUFFER_FULL; ends that
    /// succeeded.
    begun: u64,
    buffer_full: u64,
    ended: u64,
    /// Spans open at shutdown (which it ends).
    unended: u64,
    shut: bool,
    /// The counters right after shutdown.
    at_shutdown: Option<spanguard_counters>,
    full_policy_wait: bool,
}

impl Harness {
    fn handle(&mut self, input: &mut Input) -> u64 {
        let b = input.byte();
        let pick = |held: &[u64], i: u8| {
            if held.is_empty() {
                SPANGUARD_SPAN_NONE
            } else {
                held[i as usize % held.len()]
            }
        };
        match b % 16 {
            0 => SPANGUARD_SPAN_NONE,
            1 => input.u64(),
            2 => FOREIGN,
            // A held handle one generation off (stale, or not yet used).
            3 => pick(&self.held, input.byte()) ^ 1,
            // Another slot (perhaps past the slab), same generation.
            4 => pick(&self.held, input.byte()).wrapping_add((input.byte() as u64) << 32),
            // Another tracer's id (a freed one's, or none's).
            5 => pick(&self.held, input.byte()) ^ (input.byte() as u64) << 56,
            _ => pick(&self.held, b >> 4),
        }
    }

    fn hold(&mut self, h: u64) {
        if self.held.len() < 16 {
            self.held.push(h);
        } else {
            let i = (h as usize ^ self.held.len()) % 16;
            self.held[i] = h;
        }
    }

    fn stats(&self) -> spanguard_counters {
        let mut c = spanguard_counters {
            struct_size: std::mem::size_of::<spanguard_counters>() as u32,
            ..Default::default()
        };
        // SAFETY: the tracer is live; c is a whole struct of its size.
        let rc = unsafe { spanguard_stats(self.tracer, &mut c) };
        check("stats", rc, &[R::Ok]);
        c
    }

    /// The counters agree with what the calls answered. While the tracer
    /// runs, spans_ended may miss a span the exporter is taking off the
    /// queue (read as "taken plus queued", never twice: `SpanSlab::
    /// spans_ended`), so it is only checked not to exceed the ends; once
    /// the tracer is shut down nothing moves and it is exact. Begins are
    /// exact throughout: only this thread takes slots
    /// (`FreeSlots::taken`).
    fn check_counters(&self, c: &spanguard_counters) {
        let ended = self.ended + self.unended;
        assert_eq!(c.spans_begun, self.begun, "spans_begun");
        assert_eq!(
            c.dropped_buffer_full, self.buffer_full,
            "dropped_buffer_full"
        );
        if self.shut {
            assert_eq!(c.spans_ended, ended, "spans_ended");
        } else {
            assert!(c.spans_ended <= ended, "spans_ended counted twice");
        }
        assert_eq!(c.spans_open, c.spans_begun - c.spans_ended, "spans_open");
        assert_eq!(c.exporter_panics, 0, "the exporter caught a panic");
    }

    /// After a begin of any kind: the code, `*out`, the handle's novelty.
    fn begun(&mut self, call: &str, rc: R, out: u64, args: Args, parent: u64, extra: &[R]) {
        check(call, rc, &[BEGIN, extra].concat());
        if args == Args::Refused {
            assert!(!rc.is_ok(), "{call}: succeeded with a refused argument");
        }
        // Shutdown is told as SHUT_DOWN, and only after it; a parent of
        // another tracer is told first (STALE_SPAN).
        let own_parent = parent == SPANGUARD_SPAN_NONE || self.spans.contains_key(&parent);
        if !self.shut {
            assert!(rc != R::ShutDown, "{call}: SHUT_DOWN before shutdown");
        } else if args == Args::Fine && own_parent {
            assert_eq!(rc, R::ShutDown, "{call} after shutdown");
        } else {
            assert!(!rc.is_ok(), "{call}: succeeded after shutdown");
        }
        if parent != SPANGUARD_SPAN_NONE && self.spans.get(&parent) == Some(&Span::Live) {
            assert!(
                rc != R::ParentStale && rc != R::StaleSpan,
                "{call}: a live parent called stale ({rc:?})"
            );
        }
        if rc == R::BufferFull {
            self.buffer_full += 1;
        }
        if !rc.is_ok() {
            assert_eq!(out, UNWRITTEN, "{call}: failed ({rc:?}) but wrote *out");
            return;
        }
        assert_ne!(out, SPANGUARD_SPAN_NONE, "{call}: succeeded with no span");
        assert!(
            !self.spans.contains_key(&out),
            "{call}: handed out a handle already used ({out:#x})"
        );
        self.spans.insert(out, Span::Live);
        self.begun += 1;
        self.hold(out);
    }

    /// `spanguard_span_begin_packed_keeping_ids` under `parent` and a kept
    /// context: none, all zero, one a begin wrote (its span live, ended
    /// or exported), or random bytes. A kept context never leaves a
    /// parent stale; what the call writes is the new span's context.
    #[allow(clippy::too_many_arguments)]
    fn begin_keeping_ids(
        &mut self,
        input: &mut Input,
        name: &Text,
        parent: u64,
        kind: u32,
        buf: &Text,
        try_begin: bool,
        out: &mut u64,
    ) -> R {
        let kept = match input.byte() % 4 {
            0 => None,
            1 => Some(spanguard_span_context::default()),
            2 if !self.contexts.is_empty() => {
                Some(self.contexts[input.byte() as usize % self.contexts.len()])
            }
            _ => {
                let mut c = spanguard_span_context::default();
                c.trace_id
                    .copy_from_slice(input.bytes(16).get(..16).unwrap_or(&[7; 16]));
                c.span_id
                    .copy_from_slice(input.bytes(8).get(..8).unwrap_or(&[7; 8]));
                c.trace_flags = input.byte();
                Some(c)
            }
        };
        let mut written = spanguard_span_context {
            trace_flags: 0xee,
            ..Default::default()
        };
        // SAFETY: every pointer is NULL or valid for its length.
        let rc = unsafe {
            spanguard_span_begin_packed_keeping_ids(
                self.tracer,
                name.ptr(),
                name.len(),
                parent,
                kept.as_ref().map_or(null(), |k| k as *const _),
                kind,
                buf.ptr().cast(),
                buf.len(),
                !try_begin,
                out,
                &mut written,
            )
        };
        if kept.is_some_and(|k| k.trace_id != [0; 16]) {
            assert!(
                rc != R::ParentStale && rc != R::StaleSpan,
                "begin_keeping_ids: stale ({rc:?}) with a kept context"
            );
        }
        if !rc.is_ok() {
            assert_eq!(
                written,
                spanguard_span_context::default(),
                "begin_keeping_ids: failed ({rc:?}) but wrote a context"
            );
            return rc;
        }
        let (mut trace_id, mut span_id, mut flags) = ([0u8; 16], [0u8; 8], 0u8);
        // SAFETY: the buffers hold 16, 8 and 1 bytes.
        let ids = unsafe {
            spanguard_span_ids(
                *out,
                trace_id.as_mut_ptr(),
                span_id.as_mut_ptr(),
                &mut flags,
            )
        };
        if ids == R::Ok {
            assert_eq!(
                (written.trace_id, written.span_id, written.trace_flags),
                (trace_id, span_id, flags),
                "begin_keeping_ids: the context written is not the span's"
            );
            if self.contexts.len() == 16 {
                self.contexts.remove(0);
            }
            self.contexts.push(written);
        }
        rc
    }

    /// After a call on a span that is not an end.
    fn on_span(&self, call: &str, h: u64, rc: R, args: Args, allowed: &[R]) {
        check(call, rc, allowed);
        if args == Args::Refused {
            assert!(!rc.is_ok(), "{call}: succeeded with a refused argument");
        }
        if !self.shut {
            assert!(rc != R::ShutDown, "{call}: SHUT_DOWN before shutdown");
        } else if args == Args::Fine && self.spans.contains_key(&h) {
            assert_eq!(rc, R::ShutDown, "{call} after shutdown");
        }
        match self.spans.get(&h) {
            Some(Span::Live) => assert!(
                rc != R::StaleSpan && rc != R::AlreadyEnded,
                "{call}: a live span called {rc:?}"
            ),
            Some(Span::Ended) => {
                assert!(!rc.is_ok(), "{call}: succeeded on an ended span ({rc:?})")
            }
            // No handle a begin returned: nothing to write to.
            None if h != SPANGUARD_SPAN_NONE && h >> 56 != 0 => {
                assert!(!rc.is_ok(), "{call}: succeeded on a forged handle {h:#x}")
            }
            None => {}
        }
    }

    fn on_end(&mut self, call: &str, h: u64, rc: R) {
        check(call, rc, END);
        if !self.shut {
            assert!(rc != R::ShutDown, "{call}: SHUT_DOWN before shutdown");
        } else if self.spans.contains_key(&h) {
            assert_eq!(rc, R::ShutDown, "{call} after shutdown");
        }
        match self.spans.get(&h) {
            Some(Span::Live) => {
                assert_eq!(rc, R::Ok, "{call}: a live span not ended");
                self.spans.insert(h, Span::Ended);
                self.ended += 1;
            }
            Some(Span::Ended) => {
                assert!(!rc.is_ok(), "{call}: ended twice ({rc:?})")
            }
            None => assert!(
                rc != R::Ok,
                "{call}: a handle no begin returned ended a span ({h:#x})"
            ),
        }
    }

    fn shutdown(&mut self, close: bool, timeout_ms: u32) {
        let rc = if close {
            spanguard_tracer_close(self.tracer)
        } else {
            spanguard_shutdown(self.tracer, timeout_ms)
        };
        if self.shut {
            check("second shutdown", rc, &[R::ShutDown]);
            return;
        }
        check("shutdown", rc, FLUSH);
        self.shut = true;
        // Shutdown ends every span still open, marked unended.
        for state in self.spans.values_mut() {
            if *state == Span::Live {
                *state = Span::Ended;
                self.unended += 1;
            }
        }
        let c = self.stats();
        self.check_counters(&c);
        assert_eq!(c.spans_open, 0, "spans open after shutdown");
        assert_eq!(c.queue_depth, 0, "spans queued after shutdown");
        assert_eq!(
            c.spans_unended_at_shutdown, self.unended,
            "spans_unended_at_shutdown"
        );
        assert_eq!(
            c.spans_ended,
            c.spans_exported
                + c.spooled_spans
                + c.dropped_export_failed
                + c.dropped_rejected
                + c.spans_unsampled,
            "spans_ended ({}) = exported ({}) + spooled ({}) + export_failed ({}) + \
             rejected ({}) + unsampled ({})",
            c.spans_ended,
            c.spans_exported,
            c.spooled_spans,
            c.dropped_export_failed,
            c.dropped_rejected,
            c.spans_unsampled
        );
        self.at_shutdown = Some(c);
    }

    /// One call, chosen by the input.
    fn step(&mut self, input: &mut Input) {
        let t = self.tracer as *const spanguard_tracer;
        MALFORMED_ANY.set(false);
        match input.byte() % 26 {
            // Begins, the commonest call (as in a program).
            0..=3 => {
                let name = input.text();
                let parent = self.handle(input);
                let kind = input.byte() as u32 % 7;
                let (tracer, out_null) = match input.byte() {
                    0xff => (null(), false),
                    0xfe => (t, true),
                    _ => (t, false),
                };
                let mut out = UNWRITTEN;
                let out_ptr = if out_null { null_mut() } else { &mut out };
                // SAFETY: every pointer is NULL or valid for its length.
                let rc = unsafe {
                    spanguard_span_begin(tracer, name.ptr(), name.len(), parent, kind, out_ptr)
                };
                let refused = tracer.is_null() || out_null || name.refused() || kind > 5;
                self.begun("begin", rc, out, refused.into(), parent, &[]);
            }
            4 => {
                let name = input.text();
                let parent = self.handle(input);
                let kind = input.byte() as u32 % 7;
                let attrs = input.attributes();
                let mut out = UNWRITTEN;
                // SAFETY: every pointer is NULL or valid for its length.
                let rc = unsafe {
                    spanguard_span_begin_with_attributes(
                        t,
                        name.ptr(),
                        name.len(),
                        parent,
                        kind,
                        attrs.ptr(),
                        attrs.len(),
                        &mut out,
                    )
                };
                let refused = name.refused() || kind > 5 || attrs.refused_in_one_call();
                self.begun(
                    "begin_with_attributes",
                    rc,
                    out,
                    refused.into(),
                    parent,
                    &[],
                );
            }
            5 => {
                let name = input.text();
                let parent = self.handle(input);
                let kind = input.byte() as u32 % 7;
                let buf = input.packed();
                let try_begin = input.byte() % 2 == 0;
                let keeping_ids = input.byte() % 2 == 0;
                let mut out = UNWRITTEN;
                let rc = if keeping_ids {
                    self.begin_keeping_ids(input, &name, parent, kind, &buf, try_begin, &mut out)
                } else {
                    // SAFETY: every pointer is NULL or valid for its length.
                    unsafe {
                        let f = if try_begin {
                            spanguard_span_try_begin_packed
                        } else {
                            spanguard_span_begin_packed
                        };
                        f(
                            t,
                            name.ptr(),
                            name.len(),
                            parent,
                            kind,
                            buf.ptr().cast(),
                            buf.len(),
                            &mut out,
                        )
                    }
                };
                let args = if name.refused() || kind > 5 || buf.refused() {
                    Args::Refused
                } else if buf.len() > 0 {
                    Args::Unchecked
                } else {
                    Args::Fine
                };
                // Only the try begin of a tracer that waits refuses to wait.
                let extra: &[R] = if try_begin && self.full_policy_wait {
                    &[R::WouldWait]
                } else {
                    &[]
                };
                self.begun("begin_packed", rc, out, args, parent, extra);
            }
            6 => {
                let name = input.text();
                let tp = input.traceparent(&self.traceparents);
                let kind = input.byte() as u32 % 7;
                let mut out = UNWRITTEN;
                // SAFETY: every pointer is NULL or valid for its length.
                let rc = unsafe {
                    spanguard_span_begin_remote(
                        t,
                        name.ptr(),
                        name.len(),
                        tp.ptr(),
                        tp.len(),
                        kind,
                        &mut out,
                    )
                };
                let refused = name.refused()
                    || kind > 5
                    || tp.null
                    || traceparent::parse(&tp.bytes).is_none();
                self.begun(
                    "begin_remote",
                    rc,
                    out,
                    refused.into(),
                    SPANGUARD_SPAN_NONE,
                    &[],
                );
            }
            7 => self.begin_ex(input),
            8 => {
                let h = self.handle(input);
                let key = input.text();
                let value = input.text();
                // SAFETY: every pointer is NULL or valid for its length.
                let rc = unsafe {
                    spanguard_span_set_string(h, key.ptr(), key.len(), value.ptr(), value.len())
                };
                let refused = key.null || value.refused();
                self.on_span("set_string", h, rc, refused.into(), SPAN_CALL);
            }
            9 => {
                let h = self.handle(input);
                let key = input.text();
                let v = input.u64();
                // SAFETY: every pointer is NULL or valid for its length.
                let rc = unsafe {
                    match input.byte() % 3 {
                        0 => spanguard_span_set_int(h, key.ptr(), key.len(), v as i64),
                        1 => spanguard_span_set_double(h, key.ptr(), key.len(), f64::from_bits(v)),
                        _ => spanguard_span_set_bool(h, key.ptr(), key.len(), v & 1 != 0),
                    }
                };
                self.on_span("set_scalar", h, rc, key.null.into(), SPAN_CALL);
            }
            10 => self.set_array(input),
            11 => {
                let h = self.handle(input);
                let attrs = input.attributes();
                // SAFETY: every pointer is NULL or valid for its length.
                let rc = unsafe { spanguard_span_set_attributes(h, attrs.ptr(), attrs.len()) };
                self.on_span(
                    "set_attributes",
                    h,
                    rc,
                    attrs.refused_in_one_call().into(),
                    SPAN_CALL,
                );
            }
            12 => {
                let h = self.handle(input);
                let buf = input.packed();
                // SAFETY: every pointer is NULL or valid for its length.
                let rc =
                    unsafe { spanguard_span_set_attributes_packed(h, buf.ptr().cast(), buf.len()) };
                let args = match (buf.refused(), buf.len()) {
                    (true, _) => Args::Refused,
                    (false, 0) => Args::Fine,
                    (false, _) => Args::Unchecked,
                };
                self.on_span("set_attributes_packed", h, rc, args, SPAN_CALL);
            }
            13 => {
                let h = self.handle(input);
                let name = input.text();
                let time = if input.byte() % 2 == 0 {
                    0
                } else {
                    input.u64()
                };
                let attrs = input.attributes();
                // Half the time as a bridge adds it, with what its SDK
                // dropped (any count: it saturates).
                let dropped = (input.byte() % 2 == 1).then(|| input.u64() as u32);
                // SAFETY: every pointer is NULL or valid for its length.
                let rc = unsafe {
                    match dropped {
                        None => spanguard_span_add_event(
                            h,
                            name.ptr(),
                            name.len(),
                            time,
                            attrs.ptr(),
                            attrs.len(),
                        ),
                        Some(dropped) => spanguard_span_add_event_with_dropped(
                            h,
                            name.ptr(),
                            name.len(),
                            time,
                            attrs.ptr(),
                            attrs.len(),
                            dropped,
                        ),
                    }
                };
                let refused = name.refused() || attrs.refused;
                self.on_span("add_event", h, rc, refused.into(), SPAN_CALL);
            }
            14 if input.byte() % 4 == 0 => {
                // A bridge's link: ids as bytes (zero ids too, which are
                // kept only with attributes or a tracestate), any flags
                // (both remote bits, or an unknown one, are refused).
                let h = self.handle(input);
                let trace_id = input.id_bytes::<16>();
                let span_id = input.id_bytes::<8>();
                let null_ids = input.byte();
                let trace_flags = input.byte();
                let link_flags = input.byte() as u32 % 5;
                let state = input.tracestate();
                let attrs = input.attributes();
                let id_ptr = |null: bool, id: &[u8]| null_or(null, id.as_ptr());
                // Half the time with what the bridge's SDK dropped.
                let dropped = (input.byte() % 2 == 1).then(|| input.u64() as u32);
                // SAFETY: every pointer is NULL or valid for its length;
                // the ids for 16 and 8 bytes.
                let rc = unsafe {
                    match dropped {
                        None => spanguard_span_add_link_ids(
                            h,
                            id_ptr(null_ids == 1, &trace_id),
                            id_ptr(null_ids == 2, &span_id),
                            trace_flags,
                            state.ptr(),
                            state.len(),
                            link_flags,
                            attrs.ptr(),
                            attrs.len(),
                        ),
                        Some(dropped) => spanguard_span_add_link_ids_with_dropped(
                            h,
                            id_ptr(null_ids == 1, &trace_id),
                            id_ptr(null_ids == 2, &span_id),
                            trace_flags,
                            state.ptr(),
                            state.len(),
                            link_flags,
                            attrs.ptr(),
                            attrs.len(),
                            dropped,
                        ),
                    }
                };
                let invalid = trace_id == [0; 16] || span_id == [0; 8];
                let refused = null_ids == 1
                    || null_ids == 2
                    || link_flags > SPANGUARD_LINK_LOCAL
                    || state.refused()
                    || attrs.refused
                    || (invalid && attrs.len() == 0 && state.bytes.is_empty());
                // An invalid context with only a tracestate is kept when
                // the tracestate is: the target does not repeat its parse.
                let args = if !refused && invalid && attrs.len() == 0 {
                    Args::Unchecked
                } else {
                    refused.into()
                };
                self.on_span("add_link_ids", h, rc, args, LINK_CALL);
            }
            14 => {
                let h = self.handle(input);
                let tp = input.traceparent(&self.traceparents);
                let with_state = input.byte() % 2 == 0;
                let state = input.tracestate();
                let attrs = input.attributes();
                // SAFETY: every pointer is NULL or valid for its length.
                let rc = unsafe {
                    if with_state {
                        spanguard_span_add_link_with_tracestate(
                            h,
                            tp.ptr(),
                            tp.len(),
                            state.ptr(),
                            state.len(),
                            attrs.ptr(),
                            attrs.len(),
                        )
                    } else {
                        spanguard_span_add_link(h, tp.ptr(), tp.len(), attrs.ptr(), attrs.len())
                    }
                };
                let refused = tp.null
                    || traceparent::parse(&tp.bytes).is_none()
                    || (with_state && state.refused())
                    || attrs.refused;
                self.on_span("add_link", h, rc, refused.into(), LINK_CALL);
            }
            15 => {
                let h = self.handle(input);
                let code = input.byte() as u32 % 4;
                let message = input.text();
                // SAFETY: every pointer is NULL or valid for its length.
                let rc =
                    unsafe { spanguard_span_set_status(h, code, message.ptr(), message.len()) };
                let refused = message.refused() || code > SPANGUARD_STATUS_ERROR;
                self.on_span("set_status", h, rc, refused.into(), SPAN_CALL);
            }
            16 => {
                let h = self.handle(input);
                let name = input.text();
                // SAFETY: every pointer is NULL or valid for its length.
                let rc = unsafe { spanguard_span_update_name(h, name.ptr(), name.len()) };
                self.on_span("update_name", h, rc, name.refused().into(), SPAN_CALL);
            }
            17 => {
                let h = self.handle(input);
                let rc = match input.byte() % 4 {
                    0 => spanguard_span_set_start_time(h, input.u64()),
                    1 => {
                        let n = input.u64();
                        spanguard_span_add_dropped_counts(
                            h,
                            n as u32,
                            (n >> 32) as u32,
                            n as u32 >> 7,
                        )
                    }
                    // Small counts mostly: a span's lists are short.
                    2 => spanguard_span_drop_oldest(
                        h,
                        (input.byte() % 8).into(),
                        (input.byte() % 8).into(),
                    ),
                    // What a bridge calls at the end for what it counted
                    // as its SDK evicted it: the same answers, and the
                    // span still ends (counted in the identity) whatever
                    // it took off, counts included.
                    _ => spanguard_span_drop_oldest_uncounted(
                        h,
                        (input.byte() % 8).into(),
                        (input.byte() % 8).into(),
                    ),
                };
                self.on_span(
                    "set_start_time/add_dropped/drop_oldest(_uncounted)",
                    h,
                    rc,
                    Args::Fine,
                    SPAN_CALL,
                );
            }
            // Ends: a program ends what it begins.
            18..=20 => {
                let h = self.handle(input);
                let rc = spanguard_span_end(h);
                self.on_end("end", h, rc);
                // Ended twice at once, now and then.
                if input.byte() % 4 == 0 {
                    let rc = spanguard_span_end(h);
                    self.on_end("end twice", h, rc);
                }
            }
            21 => {
                let h = self.handle(input);
                if input.byte() % 2 == 0 {
                    let rc = spanguard_span_end_at(h, input.u64());
                    self.on_end("end_at", h, rc);
                } else {
                    let live = self.spans.get(&h) == Some(&Span::Live) && !self.shut;
                    let (mut trace_id, mut span_id, mut flags, mut kept) =
                        ([0u8; 16], [0u8; 8], 0u8, true);
                    let at = [0, 1, input.u64()][input.byte() as usize % 3];
                    // SAFETY: the buffers hold 16, 8 and 1 bytes; kept is a bool.
                    let rc = unsafe {
                        spanguard_span_end_keeping_ids(
                            h,
                            at,
                            trace_id.as_mut_ptr(),
                            span_id.as_mut_ptr(),
                            &mut flags,
                            &mut kept,
                        )
                    };
                    self.on_end("end_keeping_ids", h, rc);
                    // A live span has a context to keep (valid ids); no
                    // handle at all has none.
                    if live {
                        assert!(kept, "end_keeping_ids: a live span kept nothing");
                        assert!(
                            trace_id != [0; 16] && span_id != [0; 8],
                            "end_keeping_ids: zero ids"
                        );
                    }
                    if h == SPANGUARD_SPAN_NONE {
                        assert!(!kept, "end_keeping_ids: SPAN_NONE kept ids");
                    }
                }
            }
            22 => self.propagate(input),
            23 => {
                let timeout_ms = [0, 1, 20][input.byte() as usize % 3];
                let rc = spanguard_flush(t, timeout_ms);
                if self.shut {
                    check("flush after shutdown", rc, &[R::ShutDown]);
                } else {
                    check("flush", rc, FLUSH);
                    self.check_counters(&self.stats());
                }
            }
            24 => {
                // Not the commonest: most inputs end without it (shut down
                // after their last call).
                if input.byte() % 4 == 0 {
                    let close = input.byte() % 4 == 0;
                    let timeout_ms = SHUTDOWN_TIMEOUTS_MS[input.byte() as usize % 4];
                    self.shutdown(close, timeout_ms);
                }
            }
            _ => {
                // A bridged provider's resource (any attributes: NULL text
                // and empty keys are skipped, never read).
                if input.byte() % 4 == 0 {
                    let attrs = input.attributes();
                    // SAFETY: every pointer is NULL or valid for its length.
                    let rc = unsafe { spanguard_tracer_set_resource(t, attrs.ptr(), attrs.len()) };
                    check(
                        "set_resource",
                        rc,
                        &[R::Ok, R::NullArgument, R::InvalidArgument, R::ShutDown],
                    );
                }
                // A bridged tracer's scope attributes (any scope text: NULL
                // with a length is refused; up to the scope table's limit).
                if input.byte() % 4 == 0 {
                    let (name, version, url) = (input.text(), input.text(), input.text());
                    let attrs = input.attributes();
                    // SAFETY: every pointer is NULL or valid for its length.
                    let rc = unsafe {
                        spanguard_tracer_set_scope_attributes(
                            t,
                            name.ptr(),
                            name.len(),
                            version.ptr(),
                            version.len(),
                            url.ptr(),
                            url.len(),
                            attrs.ptr(),
                            attrs.len(),
                        )
                    };
                    check(
                        "set_scope_attributes",
                        rc,
                        &[
                            R::Ok,
                            R::NullArgument,
                            R::InvalidArgument,
                            R::LimitReached,
                            R::ShutDown,
                        ],
                    );
                }
                // Calls that only read: the sink path, the counters.
                let mut buf = [0u8; 64];
                let mut len = 0usize;
                let cap = input.byte() as usize % 65;
                let ptr = if cap == 0 {
                    null_mut()
                } else {
                    buf.as_mut_ptr()
                };
                // SAFETY: buf holds cap bytes; len is a usize.
                let rc = unsafe { spanguard_tracer_sink_path(t, ptr.cast(), cap, &mut len) };
                // An endpoint: no sink file, so the empty path, which
                // needs one byte for its NUL.
                check("sink_path", rc, &[R::Ok, R::BufferTooSmall]);
                assert_eq!(rc == R::Ok, cap > 0, "sink_path: {rc:?} for {cap} bytes");
                assert_eq!(len, 0, "a sink path with an endpoint");
                let c = self.stats();
                if self.shut {
                    assert_eq!(Some(c.spans_begun), self.at_shutdown.map(|s| s.spans_begun));
                } else {
                    self.check_counters(&c);
                }
            }
        }
    }

    fn begin_ex(&mut self, input: &mut Input) {
        // SAFETY: all-zero is a valid value of the plain C struct.
        let mut o: spanguard_span_options = unsafe { std::mem::zeroed() };
        // SAFETY: o is a whole struct.
        let rc = unsafe {
            spanguard_span_options_init_sized(&mut o, std::mem::size_of::<spanguard_span_options>())
        };
        check("options_init", rc, &[R::Ok]);
        let name = input.text();
        let kind = input.byte() as u32 % 7;
        let parent = if input.byte() % 2 == 0 {
            self.handle(input)
        } else {
            SPANGUARD_SPAN_NONE
        };
        let tp = input.traceparent(&self.traceparents);
        let state = input.tracestate();
        let scope_name = input.text();
        let scope_version = input.text();
        let trace_id = input.id_bytes::<16>();
        let span_id = input.id_bytes::<8>();
        let parent_span_id = input.id_bytes::<8>();
        let attrs = input.attributes();
        let which = input.byte();
        let start = if which & 0x80 != 0 { input.u64() } else { 0 };
        o.kind = kind;
        o.name = name.ptr();
        o.name_len = name.len();
        o.parent = parent;
        // Bits of `which`: a remote parent, explicit ids, their span id
        // NULL, their parent span id set, the remote-parent flag.
        let remote = which & 1 != 0;
        let explicit = which & 2 != 0;
        if remote {
            o.traceparent = tp.ptr();
            o.traceparent_len = tp.len();
        }
        o.tracestate = state.ptr();
        o.tracestate_len = state.len();
        if explicit {
            o.trace_id = trace_id.as_ptr();
            o.span_id = if which & 4 != 0 {
                null()
            } else {
                span_id.as_ptr()
            };
            o.parent_span_id = if which & 8 != 0 {
                parent_span_id.as_ptr()
            } else {
                null()
            };
            o.trace_flags = input.byte() as u32;
            o.flags = (which as u32 >> 4) & 1;
        }
        o.start_time_unix_ns = start;
        o.scope_name = scope_name.ptr();
        o.scope_name_len = scope_name.len();
        o.scope_version = scope_version.ptr();
        o.scope_version_len = scope_version.len();
        o.attributes = attrs.ptr();
        o.attribute_count = attrs.len();
        let min_size = std::mem::offset_of!(spanguard_span_options, traceparent) as u32;
        // An older caller's struct (only kind, name and parent), or one
        // too small to be any version.
        let short = match input.byte() % 8 {
            0 => Some(min_size),
            1 => Some(min_size - 8),
            _ => None,
        };
        let mut refused = name.refused() || kind > 5;
        match short {
            Some(size) if size < min_size => refused = true,
            Some(_) => {}
            None => {
                refused |= state.refused() || scope_name.refused() || scope_version.refused();
                // More than one parent; a traceparent that is NULL with a
                // length, or given and unparsable.
                refused |= (explicit as u8 + (remote && !tp.null) as u8) + (parent != 0) as u8 > 1;
                refused |= remote && tp.refused();
                refused |= remote && !tp.null && traceparent::parse(&tp.bytes).is_none();
                refused |=
                    explicit && (o.span_id.is_null() || trace_id == [0; 16] || span_id == [0; 8]);
                refused |= attrs.refused_in_one_call();
            }
        }
        if let Some(size) = short {
            o.struct_size = size;
        }
        let mut out = UNWRITTEN;
        // SAFETY: o is a whole struct (at least struct_size bytes); every
        // pointer in it is NULL or valid for its length (ids: 16 and 8
        // bytes).
        let rc = unsafe { spanguard_span_begin_ex(self.tracer, &o, &mut out) };
        let local = if short.is_none() && (explicit || remote) {
            SPANGUARD_SPAN_NONE
        } else {
            parent
        };
        self.begun("begin_ex", rc, out, refused.into(), local, &[]);
    }

    fn set_array(&mut self, input: &mut Input) {
        let h = self.handle(input);
        let key = input.text();
        let mut refused = key.null;
        let kind = input.byte() % 6;
        if kind == 5 {
            return self.set_anyvalue(h, key, input);
        }
        let data = input.text();
        let mut texts = Vec::new();
        // SAFETY (each call): every pointer is NULL or valid for its
        // length; bools are passed as bytes, which spanguard reads as bytes.
        let rc = match kind {
            0 => {
                refused |= data.refused();
                unsafe {
                    spanguard_span_set_bytes(h, key.ptr(), key.len(), data.ptr().cast(), data.len())
                }
            }
            1 => {
                refused |= data.refused();
                unsafe {
                    spanguard_span_set_bool_array(
                        h,
                        key.ptr(),
                        key.len(),
                        data.ptr().cast(),
                        data.len(),
                    )
                }
            }
            2 => {
                let (strings, bad) = input.strings(&mut texts);
                refused |= bad;
                let (p, n) = input.array_ptr(&strings, &mut refused);
                unsafe { spanguard_span_set_string_array(h, key.ptr(), key.len(), p.cast(), n) }
            }
            3 => {
                let ints: Vec<i64> = data.bytes.chunks(8).map(|c| c.len() as i64).collect();
                let (p, n) = input.array_ptr(&ints, &mut refused);
                unsafe { spanguard_span_set_int_array(h, key.ptr(), key.len(), p.cast(), n) }
            }
            _ => {
                let doubles: Vec<f64> = data.bytes.iter().map(|&b| b as f64 / 3.0).collect();
                let (p, n) = input.array_ptr(&doubles, &mut refused);
                unsafe { spanguard_span_set_double_array(h, key.ptr(), key.len(), p.cast(), n) }
            }
        };
        self.on_span("set_array", h, rc, refused.into(), SPAN_CALL);
    }

    /// `spanguard_span_set_anyvalue`: refused exactly as the reference
    /// reader refuses, with its code, before the span is looked at.
    fn set_anyvalue(&mut self, h: u64, key: Text, input: &mut Input) {
        let (value, error) = input.any_message();
        // SAFETY: every pointer is NULL or valid for its length.
        let rc = unsafe {
            spanguard_span_set_anyvalue(h, key.ptr(), key.len(), value.ptr().cast(), value.len())
        };
        let refused = key.null || error.is_some();
        self.on_span("set_anyvalue", h, rc, refused.into(), SPAN_CALL);
        if key.null {
            assert_eq!(rc, R::NullArgument, "set_anyvalue: NULL key");
        } else if let Some(want) = error {
            assert_eq!(rc, want, "set_anyvalue: a value the reference refuses");
        } else {
            assert!(
                rc != R::InvalidAnyValue,
                "set_anyvalue: a value the reference reads refused"
            );
        }
    }

    /// The traceparent and tracestate calls (what a program injects).
    fn propagate(&mut self, input: &mut Input) {
        let h = self.handle(input);
        let mut buf = [0xaau8; 600];
        let cap = [0, 1, 55, 56, 100, 513, 600][input.byte() as usize % 7];
        let null_buf = input.byte() == 1;
        let ptr = if null_buf {
            null_mut()
        } else {
            buf.as_mut_ptr().cast()
        };
        let which = input.byte() % 3;
        if which == 2 {
            // The ids as bytes agree with the traceparent's text.
            let (mut trace_id, mut span_id, mut flags) = ([0u8; 16], [0u8; 8], 0u8);
            // SAFETY: the buffers hold 16, 8 and 1 bytes.
            let rc = unsafe {
                spanguard_span_ids(h, trace_id.as_mut_ptr(), span_id.as_mut_ptr(), &mut flags)
            };
            self.on_propagate("span_ids", h, rc, false);
            if rc == R::Ok {
                let mut text = [0u8; 56];
                // SAFETY: text holds 56 bytes.
                let tp = unsafe { spanguard_span_traceparent(h, text.as_mut_ptr().cast(), 56) };
                if tp == R::Ok {
                    let hex: String = trace_id
                        .iter()
                        .chain(&span_id)
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    let want = format!("00-{}-{}-{flags:02x}", &hex[..32], &hex[32..]);
                    assert_eq!(&text[..55], want.as_bytes(), "span_ids against traceparent");
                }
            }
        } else if which == 0 {
            // SAFETY: buf holds cap bytes, or is NULL.
            let rc = unsafe { spanguard_span_traceparent(h, ptr, cap) };
            self.on_propagate("traceparent", h, rc, null_buf);
            if rc == R::Ok {
                let text = &buf[..55];
                assert_eq!(buf[55], 0, "traceparent: not NUL-terminated");
                assert!(
                    traceparent::parse(text).is_some(),
                    "traceparent: wrote one that does not parse"
                );
                if self.traceparents.len() < 8 {
                    self.traceparents.push(text.to_vec());
                }
            }
        } else {
            let mut len = usize::MAX;
            // SAFETY: buf holds cap bytes, or is NULL; len is a usize.
            let rc = unsafe { spanguard_span_tracestate(h, ptr, cap, &mut len) };
            self.on_propagate("tracestate", h, rc, null_buf);
            if rc.is_ok() {
                assert!(len <= SPANGUARD_MAX_TRACESTATE_BYTES as usize);
                assert!(len < cap && buf[len] == 0, "tracestate: not NUL-terminated");
            }
        }
    }

    fn on_propagate(&self, call: &str, h: u64, rc: R, null_buf: bool) {
        check(call, rc, PROPAGATE);
        if !self.shut {
            assert!(rc != R::ShutDown, "{call}: SHUT_DOWN before shutdown");
        }
        if null_buf {
            assert_eq!(rc, R::NullArgument, "{call}: NULL buffer");
        }
        // An ended span still has its context until it is exported, so
        // only a live one is checked: never stale. After shutdown, its
        // slot may be exported and gone.
        if !self.shut && self.spans.get(&h) == Some(&Span::Live) {
            assert!(rc != R::StaleSpan, "{call}: a live span called stale");
        }
    }

    /// Calls after shutdown: each must be refused, and count nothing.
    fn after_shutdown(&mut self, input: &mut Input) {
        let held = self.held.clone();
        for &h in &held {
            let key = c"k";
            // SAFETY: key is valid for 1 byte.
            let rc = unsafe { spanguard_span_set_int(h, key.as_ptr(), 1, 7) };
            self.on_span("set_int after shutdown", h, rc, Args::Fine, SPAN_CALL);
            assert_eq!(rc, R::ShutDown, "set_int after shutdown");
            let rc = spanguard_span_end(h);
            self.on_end("end after shutdown", h, rc);
            assert_eq!(rc, R::ShutDown, "end after shutdown");
        }
        let parent = held.first().copied().unwrap_or(SPANGUARD_SPAN_NONE);
        for parent in [SPANGUARD_SPAN_NONE, parent] {
            let mut out = UNWRITTEN;
            // SAFETY: the name is valid for 1 byte; out is a u64.
            let rc =
                unsafe { spanguard_span_begin(self.tracer, c"s".as_ptr(), 1, parent, 1, &mut out) };
            self.begun("begin after shutdown", rc, out, Args::Fine, parent, &[]);
            assert_eq!(rc, R::ShutDown, "begin after shutdown");
        }
        check(
            "flush after shutdown",
            spanguard_flush(self.tracer, 10),
            &[R::ShutDown],
        );
        self.shutdown(false, 10);
        self.shutdown(true, 0);
        // And what the input has left, on the shut-down tracer.
        for _ in 0..8 {
            if input.0.is_empty() {
                break;
            }
            self.step(input);
        }
        let c = self.stats();
        self.check_counters(&c);
        let s = self.at_shutdown.expect("shut down");
        for (what, now, then) in [
            ("spans_begun", c.spans_begun, s.spans_begun),
            ("spans_ended", c.spans_ended, s.spans_ended),
            ("spans_exported", c.spans_exported, s.spans_exported),
            (
                "dropped_buffer_full",
                c.dropped_buffer_full,
                s.dropped_buffer_full,
            ),
            ("queue_depth", c.queue_depth, s.queue_depth),
            ("spans_unsampled", c.spans_unsampled, s.spans_unsampled),
        ] {
            assert_eq!(now, then, "{what} changed after shutdown");
        }
    }
}

/// A shutdown's time: enough (the first, which a zero byte picks, as
/// past the input's end), none, or too little to export everything.
const SHUTDOWN_TIMEOUTS_MS: [u32; 4] = [2000, 0, 1, 50];

/// What a failed begin must leave in `*out`.
const UNWRITTEN: u64 = 0x5eed_5eed_5eed_5eed;

/// This process's spool directory: never the user's, and no other
/// process's batches to replay into the counters' way.
fn spool_dir() -> &'static std::ffi::CString {
    static DIR: OnceLock<std::ffi::CString> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("spanguard-fuzz-c-abi-{}", std::process::id()));
        std::ffi::CString::new(dir.into_os_string().into_encoded_bytes()).expect("no NUL")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    // SAFETY: all-zero is a valid value of the plain C struct.
    let mut cfg: spanguard_config = unsafe { std::mem::zeroed() };
    // SAFETY: cfg is a whole struct of that size.
    let rc = unsafe { spanguard_config_init(&mut cfg, std::mem::size_of::<spanguard_config>()) };
    check("config_init", rc, &[R::Ok]);
    cfg.endpoint = c"discard:".as_ptr();
    cfg.spool_dir = spool_dir().as_ptr();
    cfg.log_level = c"none".as_ptr();
    cfg.install_signal_handlers = 0;
    cfg.exporter_max_cpu_percent = 100;
    cfg.payload_pool_mib = 1;
    cfg.export_timeout_ms = 2000;
    let c = [input.byte(), input.byte(), input.byte(), input.byte()];
    // Mostly DROP, so no begin waits; now and then WAIT, briefly, for
    // the try begin's WOULD_WAIT.
    let full_policy_wait = c[0] % 8 == 7;
    cfg.full_policy = if full_policy_wait {
        SPANGUARD_FULL_POLICY_WAIT
    } else {
        SPANGUARD_FULL_POLICY_DROP
    };
    cfg.full_wait_ms = 1;
    // Unsampled spans count in the identity too.
    cfg.sampler = [
        SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_ON,
        SPANGUARD_SAMPLER_ALWAYS_ON,
        SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_OFF,
        SPANGUARD_SAMPLER_PARENTBASED_TRACEIDRATIO,
    ][(c[0] >> 3) as usize % 4];
    cfg.sampler_ratio = 0.5;
    cfg.schedule_delay_ms = 1 + (c[0] >> 5) as u32;
    // A few slots, so that BUFFER_FULL comes.
    cfg.max_open_spans = 1 + c[1] as u32 % 8;
    cfg.max_queue_size = 1 + (c[1] >> 3) as u32 % 8;
    cfg.max_export_batch_size = 1 + (c[1] >> 6) as u32;
    // Low count limits (0: the default, 128).
    let limit = |b: u8| if b >= 0xf0 { 0 } else { 1 + b as u32 % 4 };
    cfg.attribute_count_limit = limit(c[2]);
    cfg.event_count_limit = limit(c[2].rotate_left(2));
    cfg.link_count_limit = limit(c[2].rotate_left(4));
    cfg.event_attribute_count_limit = limit(c[3]);
    cfg.link_attribute_count_limit = limit(c[3].rotate_left(2));
    cfg.value_length_limit = if c[3] < 0x80 { 1 + c[3] as u32 % 16 } else { 0 };
    let mut tracer = null_mut();
    // SAFETY: cfg is whole; tracer is a pointer to fill.
    let rc = unsafe { spanguard_tracer_new(&cfg, &mut tracer) };
    check("tracer_new", rc, &[R::Ok]);
    let mut h = Harness {
        tracer,
        spans: HashMap::new(),
        held: Vec::new(),
        traceparents: Vec::new(),
        contexts: Vec::new(),
        begun: 0,
        buffer_full: 0,
        ended: 0,
        unended: 0,
        shut: false,
        at_shutdown: None,
        full_policy_wait,
    };
    let mut steps = 0;
    while !input.0.is_empty() && steps < 256 && !h.shut {
        h.step(&mut input);
        steps += 1;
    }
    if !h.shut {
        let timeout_ms = SHUTDOWN_TIMEOUTS_MS[input.byte() as usize % 4];
        h.shutdown(false, timeout_ms);
    }
    h.after_shutdown(&mut input);
    // SAFETY: made by tracer_new, freed once, no call on it running.
    unsafe { spanguard_tracer_free(tracer) };
});
