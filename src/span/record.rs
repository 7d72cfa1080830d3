//! The span record: one fixed-size, `repr(C)` slot that holds everything a
//! small span carries, and a chain of payload-pool chunks for what does not
//! fit. Records live in a preallocated slab and chunks in a preallocated
//! pool (see `buffer::slab`, `buffer::payload_pool`), so recording a span
//! never allocates. The layout is plain data so that a crash handler or the
//! flight recorder can write a slot and its chunks to disk byte for byte
//! and a later process can read them back.
//!
//! # Where a span's data lives
//!
//! A span's text sits in one *virtual* byte space of 32-bit offsets:
//! `0..ARENA_BYTES` is the slot's own arena; from `OVERFLOW_BASE` on, byte
//! `OVERFLOW_BASE + k * CHUNK_BYTES + j` is byte `j` of the span's `k`-th
//! chunk. The slot lists its first `DIRECT_CHUNKS` chunks itself; the rest
//! are listed in index chunks (1023 entries each, linked), so any offset
//! resolves in one step for the first 64 KiB and one more per 4 MiB after.
//! A `TextRef` is an offset and a length in that space, so the encoders
//! read a 100 KB prompt the same way as a 6-byte model name, as a few
//! pieces.
//!
//! - Names, keys and values that fit go to the arena (the hot path: a few
//!   loads and stores, as before chunks existed); anything else goes to
//!   the chunks, which the span takes from the pool as it needs them (a
//!   lock-free pop each). Text never straddles the arena and the chunks,
//!   but may cross from chunk to chunk.
//! - The first `INLINE_ATTRIBUTES` span attributes sit in the slot's table;
//!   later ones are 24-byte nodes in the virtual space, linked in order.
//! - Events and links never change once added, so each is one entry in the
//!   virtual space with its attributes right after it, linked in order;
//!   each carries its own dropped-attributes count.
//!
//! When the pool has no chunk left, text is cut on a character boundary
//! and counted (the caller hears TRUNCATED); an attribute whose key cannot
//! be stored whole is dropped and counted, never stored without its key.
//! The exporter gives the chunks back with the slot (`owned_chunks`), never
//! earlier: a value set again goes over the old one's room instead
//! (`store_replacing`), so a crash dump or the flight file, which read a
//! live span's chunks, never show another span's data as this one's; one
//! that must move takes room to grow into with it, so values set again in
//! turn as they grow take room in proportion to their size.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering, fence};

use super::any_value::{self, AnyValueRef};
use super::limits::*;
use super::short_copy::copy_short;

/// Where a piece of text sits in a span's virtual byte space.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct TextRef {
    pub offset: u32,
    pub len: u32,
}

/// The first virtual offset past the arena: byte 0 of the span's first
/// chunk.
pub const OVERFLOW_BASE: u32 = ARENA_BYTES as u32;
/// Entries of an index chunk; its last word links the next index chunk.
const INDEX_ENTRIES: usize = CHUNK_BYTES / 4 - 1;

/// A list link in the virtual space: offset + 1, 0 for none (a zeroed slot
/// is then a span with empty lists).
type Link = u32;

/// Where a span's chunks come from: the payload pool. Implemented in
/// `buffer::payload_pool`; the record only needs these two calls.
pub trait ChunkStore {
    /// A chunk no one else owns, or None when the pool is used up.
    /// Lock-free; no allocation or system call.
    fn take_chunk(&self) -> Option<u32>;
    /// The `CHUNK_BYTES` bytes of chunk `index`; None out of range. Only
    /// the chunk's owner (the span's writer, then the exporter) may touch
    /// them.
    fn chunk_ptr(&self, index: u32) -> Option<NonNull<u8>>;
}

/// Where a reader finds a span's chunks by their place in the span (0 =
/// its first): the pool for live spans, a buffer for spans read back from
/// disk.
pub trait OverflowSource {
    fn chunk<'a>(&'a self, record: &SpanRecord, ordinal: u32) -> Option<&'a [u8]>;
}

/// A span's chunks copied out of a crash dump or flight file, in order.
pub struct OwnedOverflow(pub Vec<u8>);

impl OverflowSource for OwnedOverflow {
    fn chunk<'a>(&'a self, _record: &SpanRecord, ordinal: u32) -> Option<&'a [u8]> {
        let start = ordinal as usize * CHUNK_BYTES;
        self.0.get(start..start + CHUNK_BYTES)
    }
}

/// No chunks at all (a span that never overflowed, or a test).
pub struct NoOverflow;

impl OverflowSource for NoOverflow {
    fn chunk<'a>(&'a self, _record: &SpanRecord, _ordinal: u32) -> Option<&'a [u8]> {
        None
    }
}

/// The type of an attribute value, as stored in `AttributeRecord::value_kind`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    String = 1,
    Int = 2,
    Double = 3,
    Bool = 4,
    Bytes = 5,
    StringArray = 6,
    IntArray = 7,
    DoubleArray = 8,
    BoolArray = 9,
    /// An encoded OTLP `AnyValue` message (a map, a mixed or nested array,
    /// the empty value: `span::any_value`), stored as bytes are.
    AnyValue = 10,
}

impl ValueKind {
    pub fn from_u8(v: u8) -> Option<ValueKind> {
        Some(match v {
            1 => ValueKind::String,
            2 => ValueKind::Int,
            3 => ValueKind::Double,
            4 => ValueKind::Bool,
            5 => ValueKind::Bytes,
            6 => ValueKind::StringArray,
            7 => ValueKind::IntArray,
            8 => ValueKind::DoubleArray,
            9 => ValueKind::BoolArray,
            10 => ValueKind::AnyValue,
            _ => return None,
        })
    }
}

/// One string of a string array as a C caller passes it: a pointer and a
/// length (the layout of `spanguard_string`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawStr<'a> {
    ptr: *const u8,
    len: usize,
    _borrow: std::marker::PhantomData<&'a [u8]>,
}

impl<'a> RawStr<'a> {
    pub fn new(bytes: &'a [u8]) -> RawStr<'a> {
        RawStr {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
            _borrow: std::marker::PhantomData,
        }
    }

    /// The bytes; a NULL pointer reads as empty only with length 0 (callers
    /// from C are checked before a `RawStr` is made of their data).
    pub fn bytes(&self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            &[]
        } else {
            // SAFETY: made from a slice living for 'a (`new`), or from C
            // memory the caller vouched for for 'a (`ffi`).
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// An attribute value to record.
#[derive(Clone, Copy, Debug)]
pub enum ValueInput<'a> {
    Str(&'a [u8]),
    Int(i64),
    Double(f64),
    Bool(bool),
    Bytes(&'a [u8]),
    StrArray(&'a [RawStr<'a>]),
    IntArray(&'a [i64]),
    DoubleArray(&'a [f64]),
    /// One byte per element: 0 is false, anything else true (C's bool
    /// arrives as bytes).
    BoolArray(&'a [u8]),
    /// A complex value, checked (`AnyValueRef::check`) before it comes
    /// here.
    AnyValue(AnyValueRef<'a>),
}

/// A string value (UTF-8, invalid bytes replaced), as its own type: a
/// setter that passes it to `Tracer::set_attribute` gets a copy of the
/// locked section made for strings (see there).
#[derive(Clone, Copy, Debug)]
pub struct StrInput<'a>(pub &'a [u8]);

impl<'a> From<StrInput<'a>> for ValueInput<'a> {
    #[inline(always)]
    fn from(v: StrInput<'a>) -> Self {
        ValueInput::Str(v.0)
    }
}

impl From<i64> for ValueInput<'_> {
    #[inline(always)]
    fn from(v: i64) -> Self {
        ValueInput::Int(v)
    }
}

impl From<f64> for ValueInput<'_> {
    #[inline(always)]
    fn from(v: f64) -> Self {
        ValueInput::Double(v)
    }
}

impl From<bool> for ValueInput<'_> {
    #[inline(always)]
    fn from(v: bool) -> Self {
        ValueInput::Bool(v)
    }
}

/// One attribute: its key and value. For strings and bytes `value` is a
/// `TextRef` packed as `offset | len << 32`; for arrays, the offset of the
/// elements and their count (elements: `TextRef`s, i64s, f64 bits, or one
/// byte per bool); for scalars the i64 or f64 bits, or 0/1.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct AttributeRecord {
    pub key: u32,
    pub key_len: u16,
    pub value_kind: u8,
    /// The room a string or bytes value in the chunks owns, when a set
    /// again moved it and reserved room after it (`store_replacing`): its
    /// log2 (the room is `1 << room` bytes from the value's offset); 0 for
    /// exactly the value's own bytes. Only the span's writer reads it: a
    /// reader of a crash dump or flight file (which a build before it left
    /// zero, a spare byte then) needs only the value's offset and length.
    pub room: u8,
    pub value: u64,
}

impl AttributeRecord {
    pub fn key_ref(&self) -> TextRef {
        TextRef {
            offset: self.key,
            len: self.key_len as u32,
        }
    }

    /// The packed offset and length (or count) of a string, bytes or array.
    pub fn text_value(&self) -> TextRef {
        unpack(self.value)
    }
}

fn pack(t: TextRef) -> u64 {
    t.offset as u64 | (t.len as u64) << 32
}

/// `pack`'s inverse: a packed word back into its offset and length.
#[inline(always)]
fn unpack(word: u64) -> TextRef {
    TextRef {
        offset: word as u32,
        len: (word >> 32) as u32,
    }
}

/// A span attribute past the slot's table, in the virtual space.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
struct AttributeNode {
    attribute: AttributeRecord,
    next: Link,
    _reserved: u32,
}

/// Where an attribute node's value word is, from the node's start.
const NODE_VALUE_AT: u32 = (std::mem::offset_of!(AttributeNode, attribute)
    + std::mem::offset_of!(AttributeRecord, value)) as u32;

/// An event, in the virtual space; its `attribute_count` attributes
/// (`AttributeRecord`s) follow it at `attributes`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EventEntry {
    pub name: TextRef,
    pub time_unix_ns: u64,
    pub attributes: u32,
    pub attribute_count: u16,
    pub dropped_attributes: u16,
    pub next: Link,
    pub _reserved: u32,
}

/// A link, in the virtual space, like an event.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct LinkEntry {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub tracestate: TextRef,
    pub attributes: u32,
    pub attribute_count: u16,
    pub dropped_attributes: u16,
    pub trace_flags: u8,
    /// `LINK_HAS_IS_REMOTE` and `LINK_IS_REMOTE`: once spare bytes, zero in
    /// a file an older build wrote, which reads as "not known".
    pub remote: u8,
    pub _reserved: [u8; 2],
    pub next: Link,
}

/// `LinkEntry::remote`: whether the linked context was remote is known.
const LINK_HAS_IS_REMOTE: u8 = 1;
/// `LinkEntry::remote`: the linked context came from another process.
const LINK_IS_REMOTE: u8 = 2;

/// What a link points at: the linked span's ids and W3C trace flags, and
/// whether its context came from another process (`None`: not known, as
/// for a link given as a traceparent). The ids may be all zero: a link
/// with an invalid context is kept when it has attributes or a
/// tracestate (the caller decides, as OpenTelemetry's SDK spec asks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub trace_flags: u8,
    pub remote: Option<bool>,
}

impl LinkContext {
    /// The `LinkEntry::remote` byte.
    fn remote_bits(&self) -> u8 {
        match self.remote {
            None => 0,
            Some(false) => LINK_HAS_IS_REMOTE,
            Some(true) => LINK_HAS_IS_REMOTE | LINK_IS_REMOTE,
        }
    }
}

impl LinkEntry {
    /// Whether the linked context was remote, if known. Reads only the two
    /// defined bits, so a torn file's stray bits say nothing.
    pub fn is_remote(&self) -> Option<bool> {
        (self.remote & LINK_HAS_IS_REMOTE != 0).then_some(self.remote & LINK_IS_REMOTE != 0)
    }
}

/// Plain-data values that may be copied to and from the virtual space as
/// bytes.
///
/// # Safety
/// Implementors are `repr(C)` plain data for which every bit pattern is a
/// valid value.
unsafe trait Plain: Copy + Default {}
// SAFETY: repr(C) integers only.
unsafe impl Plain for AttributeNode {}
// SAFETY: as above.
unsafe impl Plain for AttributeRecord {}
// SAFETY: as above.
unsafe impl Plain for EventEntry {}
// SAFETY: as above.
unsafe impl Plain for LinkEntry {}
// SAFETY: as above.
unsafe impl Plain for TextRef {}

/// An entry of a list in the virtual space.
trait ListEntry: Plain {
    fn next(&self) -> Link;
}

impl ListEntry for EventEntry {
    fn next(&self) -> Link {
        self.next
    }
}

impl ListEntry for LinkEntry {
    fn next(&self) -> Link {
        self.next
    }
}

fn as_bytes<T: Plain>(v: &T) -> &[u8] {
    // SAFETY: T is plain data (see `Plain`).
    unsafe { std::slice::from_raw_parts((v as *const T).cast(), std::mem::size_of::<T>()) }
}

fn as_bytes_mut<T: Plain>(v: &mut T) -> &mut [u8] {
    // SAFETY: T is plain data, any bytes are a valid T (see `Plain`).
    unsafe { std::slice::from_raw_parts_mut((v as *mut T).cast(), std::mem::size_of::<T>()) }
}

/// Marks on a span (`SpanRecord::marks`).
pub const MARK_PARENT_REMOTE: u8 = 1;
/// The span was still open at shutdown and was ended by spanguard.
pub const MARK_UNENDED: u8 = 2;
/// The span was still open when the process died; recovered from a crash
/// dump or the flight recorder, or ended by a shutdown for a termination
/// signal a binding's handler caught.
pub const MARK_INTERRUPTED: u8 = 4;
/// The sampler left the span out: it has ids and a tracestate, so it
/// propagates its context (flag 00), but records nothing and is never
/// exported.
pub const MARK_NON_RECORDING: u8 = 8;
/// The span has a tracestate (in `tracestate`). On the first line, so a
/// child learns whether to copy it from the line it reads anyway.
pub const MARK_HAS_TRACESTATE: u8 = 16;
/// The span wrote its `SpanRest` line (`SpanRecord::rest_mut`); when clear,
/// that line is all zero and nobody needs to read it.
pub const MARK_HAS_REST: u8 = 32;
/// Another SDK applied its span limits before the span reached spanguard
/// (a bridge's span): the tracer's own do not apply (`SpanLimits::widest`).
pub const MARK_LIMITED_BY_CALLER: u8 = 64;

/// What a span rarely sets, on a line of its own past the attribute table:
/// the counters of what it could not hold, its status message, tracestate,
/// scope and chunk count. A span that sets none of them never writes the
/// line, and `MARK_HAS_REST`, on the first line, says whether one did: the
/// exporter then neither reads nor clears it. That is one line fewer a
/// small span fetched by the exporter from the recording core, where line
/// fetches are what the exporter waits for (a profile of the CPU-per-span
/// bench: the stall moves to whichever pass reads a slot's lines first).
/// The field is private to the record, so every write goes through
/// `rest_mut`, which sets the mark: a field can never be set unseen.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SpanRest {
    /// Chunks the span owns (data chunks, not index chunks).
    pub chunk_count: u32,
    pub dropped_attributes: u16,
    pub dropped_events: u16,
    pub dropped_links: u16,
    /// Strings cut at a limit or because the pool ran out.
    pub truncated_values: u16,
    /// Strings whose invalid UTF-8 was replaced with U+FFFD.
    pub replaced_utf8: u16,
    /// The scope's schema URL (an OpenTelemetry tracer's `schema_url`):
    /// its length; its bytes follow `scope_version`'s in the arena (both
    /// stored together at begin), so this line keeps its size.
    pub scope_schema_url_len: u16,
    pub status_message: TextRef,
    /// The W3C tracestate (`MARK_HAS_TRACESTATE` says it is set); stored
    /// first at begin, so always in the arena.
    pub tracestate: TextRef,
    /// The instrumentation scope that made the span (an OpenTelemetry
    /// tracer's name and version); empty for spanguard's own. Stored at
    /// begin before anything long, so always in the arena.
    pub scope_name: TextRef,
    pub scope_version: TextRef,
}

impl SpanRest {
    /// Where the scope's schema URL is (see `scope_schema_url_len`).
    /// Saturating: a record read back from disk may hold anything, and
    /// an offset past the arena is checked as any other then.
    #[inline]
    pub fn scope_schema_url(&self) -> TextRef {
        TextRef {
            offset: self
                .scope_version
                .offset
                .saturating_add(self.scope_version.len),
            len: self.scope_schema_url_len as u32,
        }
    }

    const NONE: TextRef = TextRef { offset: 0, len: 0 };
    /// What a span that never wrote the line holds there.
    pub const CLEAR: SpanRest = SpanRest {
        chunk_count: 0,
        dropped_attributes: 0,
        dropped_events: 0,
        dropped_links: 0,
        truncated_values: 0,
        replaced_utf8: 0,
        scope_schema_url_len: 0,
        status_message: Self::NONE,
        tracestate: Self::NONE,
        scope_name: Self::NONE,
        scope_version: Self::NONE,
    };
}

/// Status codes, numbered as in OTLP.
pub const STATUS_UNSET: u8 = 0;
pub const STATUS_OK: u8 = 1;
pub const STATUS_ERROR: u8 = 2;

/// The layout puts what every span writes together: the fields below up to
/// `attributes`, and the first attributes, share the record's first two
/// cache lines, and the arena starts on a line of its own, so a span with
/// three attributes and short text writes three lines (it wrote six when
/// the rarely used fields sat before the table and records were not
/// line-aligned). Every line a span writes is fetched from the exporter's
/// core or from memory, and fetched again by the exporter. The fields
/// between the table and the arena (status, counters, the chunk map and
/// list heads) are written only by spans that use them, and read and
/// cleared by the exporter only for those (`SpanRest`, `reset_rest`): a
/// small span's export reads three lines.
#[repr(C, align(64))]
pub struct SpanRecord {
    /// `generation << 32 | state`: the slot's commit marker. See
    /// `buffer::slab` for the state machine.
    pub header: AtomicU64,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// All zero for a root span.
    pub parent_span_id: [u8; 8],
    pub trace_flags: u8,
    /// OTLP SpanKind (0 unspecified .. 5 consumer).
    pub kind: u8,
    pub status_code: u8,
    /// `MARK_*` bits. Add them with `|=` once the span has begun: one of
    /// them (`MARK_HAS_REST`) says which lines were written, and clearing
    /// it would leave a written line unread and uncleared.
    pub marks: u8,
    /// Span attributes, in the slot's table and past it.
    pub attribute_count: u16,
    /// Bytes of the arena in use.
    pub arena_used: u16,
    pub name: TextRef,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub event_count: u16,
    pub link_count: u16,
    /// The signal that interrupted the span, when `MARK_INTERRUPTED` (set
    /// on records read back from disk, and by a shutdown for a signal,
    /// `OpenSpansEnd::Interrupted`; `reset_rest` clears it).
    pub signal: i16,
    /// Which of the slab's ended queues the span goes to when it ends:
    /// the number of the cache of free slots its slot came from (see
    /// `buffer::slab`). Written as the slot is taken; meaningless in a
    /// record read back from disk.
    pub ended_queue: u8,
    /// The cache of free slots whose claiming thread may write this span
    /// with no locked instruction (`buffer::bias`), 0 for none. Written as
    /// the slot is taken, cleared by the first other caller; meaningless
    /// in a record read back from disk.
    pub bias: AtomicU8,
    pub attributes: [AttributeRecord; INLINE_ATTRIBUTES],
    /// One line from here: read through `rest` and written through
    /// `rest_mut` only (see `SpanRest`).
    rest: SpanRest,
    // Lines only a span with chunks, nodes, events or links touches.
    /// Bytes of the chunks in use.
    pub overflow_used: u32,
    /// The span's first chunks, in order.
    pub direct_chunks: [u32; DIRECT_CHUNKS],
    /// Index chunks listing chunks past the direct ones: the first and the
    /// last (pool index + 1, 0 for none).
    pub index_head: u32,
    pub index_tail: u32,
    /// Span attributes past the table, events and links: lists in the
    /// virtual space (first, last).
    pub overflow_attributes: [Link; 2],
    pub events: [Link; 2],
    pub links: [Link; 2],
    /// The room `name` and the status message own past their text, as
    /// `AttributeRecord::room` notes an attribute's (see "Replacing a
    /// stored value"); meaningful only while the text is in the chunks,
    /// cleared with the chunk map. Taken from the padding below: the
    /// record's layout, and so a dump's, is unchanged.
    pub name_room: u8,
    pub status_room: u8,
    /// Of `SpanRest::truncated_values`, those cut at a limit a setting
    /// raises, by limit (`ValuesCutBy`): so that a prompt cut as it was
    /// recorded is said with the setting that keeps it whole. Written
    /// only when a value is cut, read (`values_cut_by`) and cleared
    /// (`reset_rest`) only when `truncated_values` counts one. Taken from
    /// the padding below, as `name_room`: the record's layout, and so a
    /// dump's, is unchanged, and a dump of a version before reads as none
    /// of them (its padding is zero).
    cut_by: ValuesCutBy,
    /// Puts the arena at the start of a cache line.
    pub _to_line: [u8; 20],
    pub arena: [u8; ARENA_BYTES],
}

/// Adds one to a span's counter of something it could not hold.
#[inline]
pub fn count_one(counter: &mut u16) {
    *counter = counter.saturating_add(1);
}

/// Of a span's values cut as they were recorded (`truncated_values`),
/// those cut at each limit a setting raises; the rest were cut at a fixed
/// limit (a name or key over 1 KiB, a tracestate, a scope's name).
/// Saturating at u16::MAX, as `truncated_values` does.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValuesCutBy {
    /// At the value length limit (`SpanLimits::value_len`).
    pub length_limit: u16,
    /// Where the payload pool ran out.
    pub pool: u16,
    /// Past the value depth limit (`SpanLimits::value_depth`).
    pub depth_limit: u16,
}

/// A limit a setting raises that cut a value (`SpanRecord::count_cut`).
#[derive(Clone, Copy)]
enum CutAt {
    LengthLimit,
    Pool,
    DepthLimit,
}

/// What a text's limit is (`store_text_at`): a value's, the value length
/// limit, or a fixed one (a name's, a key's, a scope's, a tracestate's;
/// a status message has none).
#[derive(Clone, Copy, PartialEq, Eq)]
enum LimitOf {
    Value,
    Text,
}

/// Where a record's `SpanRest` line starts, and its chunk count within it.
pub const REST_AT: usize = std::mem::offset_of!(SpanRecord, rest);
pub const CHUNK_COUNT_AT: usize = REST_AT + std::mem::offset_of!(SpanRest, chunk_count);

/// `dst.copy_from_slice(src)`, with the short copies that names, keys and
/// values mostly are done inline (`short_copy`).
#[inline(always)]
fn copy_text(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len());
    // SAFETY: dst is a slice of src's length, and a &mut slice cannot
    // overlap the & slice src.
    unsafe { copy_short(dst.as_mut_ptr(), src) }
}

/// The longest text `store_text` copies inline (`copy_short_ascii`).
const SHORT_TEXT: usize = 32;

/// Copies `src` (at most 32 bytes) into `dst` (of the same length) and
/// says whether every byte was ASCII. The same loads serve the check and
/// the copy; two overlapping words cover every length from n to 2n, as in
/// `copy_text`. `dst` is written even when the answer is no.
#[inline(always)]
fn copy_short_ascii(dst: &mut [u8], src: &[u8]) -> bool {
    #[inline(always)]
    fn word(b: &[u8], at: usize) -> u64 {
        u64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"))
    }
    #[inline(always)]
    fn put(b: &mut [u8], at: usize, w: u64) {
        b[at..at + 8].copy_from_slice(&w.to_ne_bytes());
    }
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let n = src.len();
    assert!(n <= 32 && dst.len() == n);
    match n {
        0 => true,
        1..=3 => {
            let (a, b, c) = (src[0], src[n / 2], src[n - 1]);
            dst[0] = a;
            dst[n / 2] = b;
            dst[n - 1] = c;
            (a | b | c) < 0x80
        }
        4..=7 => {
            let a = u32::from_ne_bytes(src[..4].try_into().expect("4 bytes"));
            let b = u32::from_ne_bytes(src[n - 4..].try_into().expect("4 bytes"));
            dst[..4].copy_from_slice(&a.to_ne_bytes());
            dst[n - 4..].copy_from_slice(&b.to_ne_bytes());
            (a | b) & HIGH_BITS as u32 == 0
        }
        8..=16 => {
            let (a, b) = (word(src, 0), word(src, n - 8));
            put(dst, 0, a);
            put(dst, n - 8, b);
            (a | b) & HIGH_BITS == 0
        }
        _ => {
            let (a, b) = (word(src, 0), word(src, 8));
            let (c, d) = (word(src, n - 16), word(src, n - 8));
            put(dst, 0, a);
            put(dst, 8, b);
            put(dst, n - 16, c);
            put(dst, n - 8, d);
            (a | b | c | d) & HIGH_BITS == 0
        }
    }
}

/// Copies `src` into `dst` (of the same length) while checking that every
/// byte is ASCII: one read of a long value where a check and then a copy
/// read it twice. Returns how many bytes from the start it copied and found
/// ASCII: `src.len()` when all are. Stops at the first run of `RUN` bytes
/// (then of 64, past the last whole run) that is not ASCII (the count is
/// that run's start, less than `RUN` bytes before the first high byte), so
/// text that is not pays for at most one run copied in vain past its ASCII
/// prefix; `dst` is then partly written.
fn copy_long_ascii(dst: &mut [u8], src: &[u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: this CPU has AVX2 (std caches the answer: a load and a
        // test a value).
        return unsafe { copy_long_ascii_avx2(dst, src) };
    }
    copy_long_ascii_sse2(dst, src)
}

/// `copy_long_ascii` with AVX2: a run is eight 32-byte loads and stores
/// and one mask of their high bits, where SSE2 takes sixteen of each and
/// twice the ORs (an LLM-sized span: 4,134 instructions with SSE2). Past
/// the last whole run, the SSE2 path's blocks and tail.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn copy_long_ascii_avx2(dst: &mut [u8], src: &[u8]) -> usize {
    use std::arch::x86_64::{
        __m256i, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256, _mm256_storeu_si256,
    };
    assert_eq!(dst.len(), src.len());
    let mut done = 0;
    while src.len() - done >= RUN {
        // SAFETY: RUN (8 * 32) bytes from `done` lie inside both slices
        // (of the same length, checked above); unaligned loads and stores.
        let high = unsafe {
            let s = src.as_ptr().add(done).cast::<__m256i>();
            let d = dst.as_mut_ptr().add(done).cast::<__m256i>();
            let v: [__m256i; 8] = [
                _mm256_loadu_si256(s),
                _mm256_loadu_si256(s.add(1)),
                _mm256_loadu_si256(s.add(2)),
                _mm256_loadu_si256(s.add(3)),
                _mm256_loadu_si256(s.add(4)),
                _mm256_loadu_si256(s.add(5)),
                _mm256_loadu_si256(s.add(6)),
                _mm256_loadu_si256(s.add(7)),
            ];
            _mm256_storeu_si256(d, v[0]);
            _mm256_storeu_si256(d.add(1), v[1]);
            _mm256_storeu_si256(d.add(2), v[2]);
            _mm256_storeu_si256(d.add(3), v[3]);
            _mm256_storeu_si256(d.add(4), v[4]);
            _mm256_storeu_si256(d.add(5), v[5]);
            _mm256_storeu_si256(d.add(6), v[6]);
            _mm256_storeu_si256(d.add(7), v[7]);
            let (a, b) = (_mm256_or_si256(v[0], v[1]), _mm256_or_si256(v[2], v[3]));
            let (c, e) = (_mm256_or_si256(v[4], v[5]), _mm256_or_si256(v[6], v[7]));
            _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, e))
        };
        if _mm256_movemask_epi8(high) != 0 {
            return done;
        }
        done += RUN;
    }
    done + copy_long_ascii_sse2(&mut dst[done..], &src[done..])
}

/// `copy_long_ascii` with SSE2 (every x86-64) or plain Rust.
fn copy_long_ascii_sse2(dst: &mut [u8], src: &[u8]) -> usize {
    assert_eq!(dst.len(), src.len());
    let mut to = dst.chunks_exact_mut(RUN);
    let mut from = src.chunks_exact(RUN);
    let mut done = 0;
    for (d, s) in (&mut to).zip(&mut from) {
        if !copy_run_ascii(d, s) {
            return done;
        }
        done += RUN;
    }
    let (dst, src) = (to.into_remainder(), from.remainder());
    let mut to = dst.chunks_exact_mut(64);
    let mut from = src.chunks_exact(64);
    for (d, s) in (&mut to).zip(&mut from) {
        if !copy_block_ascii(d, s) {
            return done;
        }
        done += 64;
    }
    let (d, s) = (to.into_remainder(), from.remainder());
    d.copy_from_slice(s);
    if s.is_ascii() { done + s.len() } else { done }
}

/// The bytes `copy_long_ascii` checks at once: 4 blocks of 64, their high
/// bits gathered in one register and tested once. A test for each block
/// of 64 (and the loop around it) was a third of the copy's 20
/// instructions a block: an LLM-sized span (8 KB + 2 KB of ASCII) took
/// 4,579 instructions on the recording path, 3,250 of them in the copy.
/// Text that is not ASCII copies at most this much in vain.
const RUN: usize = 256;

/// One run of `copy_long_ascii`: four blocks of 64 bytes, their high bits
/// tested once.
#[inline(always)]
fn copy_run_ascii(dst: &mut [u8], src: &[u8]) -> bool {
    assert!(dst.len() == RUN && src.len() == RUN);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: both slices are RUN (4 * 64) bytes, checked above; SSE2 is
    // part of x86-64.
    unsafe {
        use std::arch::x86_64::{__m128i, _mm_movemask_epi8, _mm_or_si128};
        let s = src.as_ptr().cast::<__m128i>();
        let d = dst.as_mut_ptr().cast::<__m128i>();
        // Written out, not a loop: LLVM made a loop of loads and stores a
        // call to memcpy, then loaded the run again for its high bits
        // (4,885 instructions an LLM-sized span against 4,579).
        let (a, b) = (copy_block_sse2(d, s), copy_block_sse2(d.add(4), s.add(4)));
        let (c, e) = (
            copy_block_sse2(d.add(8), s.add(8)),
            copy_block_sse2(d.add(12), s.add(12)),
        );
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, e))) == 0
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        dst.copy_from_slice(src);
        src.is_ascii()
    }
}

/// One block of `copy_long_ascii` past its runs: 64 bytes.
#[inline(always)]
fn copy_block_ascii(dst: &mut [u8], src: &[u8]) -> bool {
    assert!(dst.len() == 64 && src.len() == 64);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: both slices are 64 bytes, checked above; SSE2 is part of
    // x86-64.
    unsafe {
        use std::arch::x86_64::{__m128i, _mm_movemask_epi8};
        let high = copy_block_sse2(dst.as_mut_ptr().cast::<__m128i>(), src.as_ptr().cast());
        _mm_movemask_epi8(high) == 0
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        dst.copy_from_slice(src);
        src.is_ascii()
    }
}

/// Copies 64 bytes from `s` to `d` with four 16-byte loads and stores
/// (SSE2, every x86-64), and returns the four ORed together: a high bit
/// set in it is a byte that is not ASCII. The same block in plain Rust
/// compiled to eight 8-byte loads and stores: an LLM-sized span took 0.89
/// of b3b3908's time with it, 0.85 with this.
///
/// # Safety
/// `s` must be valid for reading and `d` for writing 64 bytes (unaligned).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn copy_block_sse2(
    d: *mut std::arch::x86_64::__m128i,
    s: *const std::arch::x86_64::__m128i,
) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::{_mm_loadu_si128, _mm_or_si128, _mm_storeu_si128};
    // SAFETY: the caller's contract: 64 bytes at each.
    unsafe {
        let (a, b, c, e) = (
            _mm_loadu_si128(s),
            _mm_loadu_si128(s.add(1)),
            _mm_loadu_si128(s.add(2)),
            _mm_loadu_si128(s.add(3)),
        );
        _mm_storeu_si128(d, a);
        _mm_storeu_si128(d.add(1), b);
        _mm_storeu_si128(d.add(2), c);
        _mm_storeu_si128(d.add(3), e);
        _mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, e))
    }
}

/// What storing a piece of text did to it.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct TextOutcome {
    pub truncated: bool,
    pub replaced_utf8: bool,
    /// Of `truncated`: cut where the payload pool ran out (whatever the
    /// limit would have kept).
    pub pool_ran_out: bool,
}

impl TextOutcome {
    /// The three flags in one byte, for a result returned in registers.
    #[inline(always)]
    fn bits(self) -> u8 {
        self.truncated as u8 | (self.replaced_utf8 as u8) << 1 | (self.pool_ran_out as u8) << 2
    }

    #[inline(always)]
    fn from_bits(bits: u8) -> TextOutcome {
        TextOutcome {
            truncated: bits & 1 != 0,
            replaced_utf8: bits & 2 != 0,
            pool_ran_out: bits & 4 != 0,
        }
    }

    #[inline(always)]
    pub(crate) fn merge(&mut self, o: TextOutcome) {
        self.truncated |= o.truncated;
        self.replaced_utf8 |= o.replaced_utf8;
        self.pool_ran_out |= o.pool_ran_out;
    }
}

/// Why an attribute, event or link was not recorded (counted either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStored {
    /// A count limit was reached.
    Limit,
    /// Its key (or its entry) did not fit: the pool ran out.
    NoRoom,
    /// Its key is empty: "the attribute key MUST be a non-null and
    /// non-empty string" (OpenTelemetry's common spec).
    EmptyKey,
}

/// The sanitized form of some input text: how long it is once invalid
/// UTF-8 is replaced and it is cut at `limit` on a character boundary.
struct TextPlan {
    out_len: usize,
    replaced_utf8: bool,
    /// The limit cut the sanitized text.
    cut: bool,
    /// The input is valid UTF-8 (one copy of a prefix writes it).
    valid: bool,
}

const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

fn plan_text(input: &[u8], limit: usize) -> TextPlan {
    // One pass over valid text: ASCII is checked word by word and any
    // byte is a character boundary; other text is validated once.
    // Checking ASCII and then validating again to find the boundary read
    // a 10 KB prompt twice (`from_utf8` was 6% of an LLM-sized span's
    // samples, perf). Validated with simdutf8 (it accepts exactly what
    // `std::str::from_utf8` does): model output often holds a curly quote
    // or a dash every few dozen bytes, and std's check, which speeds up
    // only over aligned runs of ASCII, then went byte by byte: 53% of a
    // span with such an 8 KB prompt and 2 KB completion (perf).
    let valid_len = if input.is_ascii() {
        Some(input.len().min(limit))
    } else {
        simdutf8::basic::from_utf8(input)
            .ok()
            .map(|valid| floor_char_boundary(valid, limit))
    };
    if let Some(out_len) = valid_len {
        return TextPlan {
            out_len,
            replaced_utf8: false,
            cut: out_len < input.len(),
            valid: true,
        };
    }
    let mut out_len = 0usize;
    let mut replaced = false;
    let mut cut = false;
    for chunk in input.utf8_chunks() {
        let valid = chunk.valid();
        let take = floor_char_boundary(valid, limit - out_len);
        out_len += take;
        if take < valid.len() {
            cut = true;
            break;
        }
        if !chunk.invalid().is_empty() {
            if out_len == limit {
                // The kept text ends where the invalid bytes begin: they
                // lie past the limit, so they are cut, not replaced (as
                // any byte past the limit is).
                cut = true;
                break;
            }
            replaced = true;
            if limit - out_len < REPLACEMENT.len() {
                cut = true;
                break;
            }
            out_len += REPLACEMENT.len();
        }
    }
    TextPlan {
        out_len,
        replaced_utf8: replaced,
        cut,
        valid: false,
    }
}

/// The byte limit under which `store_text` keeps the first `chars`
/// characters of `input` once sanitized (each invalid UTF-8 sequence
/// replaced by U+FFFD, one character): OpenTelemetry counts a string
/// value's length limit in characters ("counting any character in it as
/// 1"), so that a limit of 1,000 keeps 1,000 characters of Chinese or of
/// emoji, as the SDKs do, not a third or a quarter of them; the store
/// counts bytes. No input byte makes more than one character, so text no
/// longer in bytes than the limit needs no cut (`usize::MAX`): one compare
/// for every value when no limit is set.
#[inline(always)]
fn value_byte_limit(input: &[u8], chars: usize) -> usize {
    if input.len() <= chars {
        usize::MAX
    } else {
        char_prefix_bytes(input, chars)
    }
}

/// The sanitized byte length of `input`'s first `chars` characters (all of
/// it when it has fewer). `input` is longer than `chars` bytes.
#[cold]
#[inline(never)]
fn char_prefix_bytes(input: &[u8], chars: usize) -> usize {
    if input[..chars].is_ascii() {
        // Byte `chars` begins the next character, whatever it is.
        return chars;
    }
    let (mut out, mut left) = (0usize, chars);
    for chunk in input.utf8_chunks() {
        let valid = chunk.valid();
        let mut seen = 0usize;
        for (at, _) in valid.char_indices() {
            if seen == left {
                return out + at;
            }
            seen += 1;
        }
        out += valid.len();
        left -= seen;
        if !chunk.invalid().is_empty() {
            if left == 0 {
                return out;
            }
            out += REPLACEMENT.len();
            left -= 1;
        }
    }
    out
}

/// Calls `emit` with the sanitized text's pieces, at most `budget` bytes
/// in all and ending on a character boundary. Returns the bytes emitted.
fn emit_text(input: &[u8], plan: &TextPlan, budget: usize, mut emit: impl FnMut(&[u8])) -> usize {
    let budget = budget.min(plan.out_len);
    if plan.valid {
        // A valid input's prefix, cut on a character boundary (found from
        // the bytes: the pool ran short; the text was validated once).
        let take = if budget == plan.out_len {
            budget
        } else {
            floor_boundary_of_valid(input, budget)
        };
        emit(&input[..take]);
        return take;
    }
    let mut written = 0usize;
    for chunk in input.utf8_chunks() {
        let valid = chunk.valid();
        let take = floor_char_boundary(valid, budget - written);
        emit(&valid.as_bytes()[..take]);
        written += take;
        if take < valid.len() {
            break;
        }
        if !chunk.invalid().is_empty() {
            if budget - written < REPLACEMENT.len() {
                break;
            }
            emit(REPLACEMENT);
            written += REPLACEMENT.len();
        }
    }
    written
}

impl SpanRecord {
    /// The span's rarely set fields: all zero, without reading their line,
    /// when the span never wrote them.
    #[inline(always)]
    pub fn rest(&self) -> &SpanRest {
        if self.wrote_rest() {
            &self.rest
        } else {
            &SpanRest::CLEAR
        }
    }

    /// Whether the span wrote its `SpanRest` line (`MARK_HAS_REST`).
    #[inline(always)]
    pub fn wrote_rest(&self) -> bool {
        self.marks & MARK_HAS_REST != 0
    }

    /// The chunk count as stored, whether the mark is set or not, read
    /// once: for a crash dump copying a slot that a thread the signal did
    /// not stop may still be writing.
    #[inline]
    pub fn stored_chunk_count(&self) -> u32 {
        // SAFETY: a plain u32 of this record.
        unsafe { std::ptr::read_volatile(&self.rest.chunk_count) }
    }

    /// The tracestate as stored, read once: for a child reading its
    /// parent's while the parent's thread may write it (`MARK_HAS_TRACESTATE`,
    /// read first, says whether it is there).
    #[inline]
    pub fn stored_tracestate(&self) -> TextRef {
        // SAFETY: a plain TextRef of this record.
        unsafe { std::ptr::read_volatile(&self.rest.tracestate) }
    }

    /// The span's rarely set fields, for writing: marks them written.
    #[inline(always)]
    pub fn rest_mut(&mut self) -> &mut SpanRest {
        self.marks |= MARK_HAS_REST;
        &mut self.rest
    }

    /// Clears the fields every span sets, ready for a new span: those in
    /// the record's first two lines. Only the slot's current writer may
    /// call it. The rest is clear already: a slot is zero when mapped, and
    /// `reset_rest` clears it when the exporter frees the slot, so a span
    /// that sets no status message, tracestate, limit counter or large
    /// value never writes the lines they live on.
    #[inline]
    pub fn reset(&mut self) {
        self.trace_id = [0; 16];
        self.span_id = [0; 8];
        self.parent_span_id = [0; 8];
        self.trace_flags = 0;
        self.kind = 0;
        self.status_code = STATUS_UNSET;
        self.marks = 0;
        self.name = TextRef::default();
        self.start_unix_ns = 0;
        self.end_unix_ns = 0;
        self.attribute_count = 0;
        self.arena_used = 0;
        self.event_count = 0;
        self.link_count = 0;
        // The arena and table need no clearing: the counts above say what
        // is live.
    }

    /// Whether the span wrote anything `owned_chunks` or `reset_rest`
    /// look at: chunks (in the rest), the rest, a signal, attribute nodes,
    /// events or links. Nearly every span wrote none, and one test of
    /// them all, without branches, replaces their checks one by one
    /// (each of `rest`'s reads a select of the rest or a blank one).
    #[inline(always)]
    pub fn wrote_past_first_lines(&self) -> bool {
        let counts = self.event_count | self.link_count | self.signal as u16;
        (counts != 0) | self.wrote_rest() | (self.attribute_count as usize > INLINE_ATTRIBUTES)
    }

    /// Clears the fields `reset` leaves: the exporter's part, when it
    /// frees the slot (its encoder has just read those the span wrote, so
    /// their lines are in its cache). Call after the chunks were given back.
    #[inline]
    pub fn reset_rest(&mut self) {
        // On the first line, which the exporter only reads: written only in
        // the rare case (a record from disk) that it is set.
        if self.signal != 0 {
            self.signal = 0;
        }
        // The chunk map and list heads sit on lines a small span never
        // touches: cleared only when the counts say they were used (an
        // index chunk exists only past the direct chunks, a list only with
        // its count above zero). The rest's line only when it was written.
        if self.wrote_rest() {
            if self.rest.chunk_count != 0 {
                self.overflow_used = 0;
                self.index_head = 0;
                self.index_tail = 0;
                // Room is noted only for text in the chunks.
                self.name_room = 0;
                self.status_room = 0;
            }
            if self.rest.truncated_values != 0 {
                self.cut_by = ValuesCutBy::default();
            }
            self.rest = SpanRest::CLEAR;
        }
        if self.attribute_count as usize > INLINE_ATTRIBUTES {
            self.overflow_attributes = [0; 2];
        }
        if self.event_count != 0 {
            self.events = [0; 2];
        }
        if self.link_count != 0 {
            self.links = [0; 2];
        }
    }

    // ---- The chunk map ----

    /// The pool index of the span's `ordinal`-th chunk. `bytes_of` reads an
    /// index chunk; None when the map is broken (a record from disk).
    fn chunk_index(
        &self,
        ordinal: u32,
        bytes_of: impl Fn(u32) -> Option<*const u8>,
    ) -> Option<u32> {
        if ordinal >= self.rest().chunk_count {
            return None;
        }
        let k = ordinal as usize;
        if k < DIRECT_CHUNKS {
            return Some(self.direct_chunks[k]);
        }
        let (mut hops, slot) = (
            (k - DIRECT_CHUNKS) / INDEX_ENTRIES,
            (k - DIRECT_CHUNKS) % INDEX_ENTRIES,
        );
        let mut index = self.index_head.checked_sub(1)?;
        loop {
            let words = bytes_of(index)?.cast::<u32>();
            if hops == 0 {
                // SAFETY: an index chunk holds CHUNK_BYTES / 4 words.
                return Some(unsafe { words.add(slot).read_unaligned() });
            }
            // SAFETY: as above; the last word links the next index chunk.
            index = unsafe { words.add(INDEX_ENTRIES).read_unaligned() }.checked_sub(1)?;
            hops -= 1;
        }
    }

    /// The pool indexes of every chunk the span owns, index chunks too,
    /// for the exporter to give back.
    #[inline(always)]
    pub fn owned_chunks<S: ChunkStore + ?Sized>(&self, store: &S, f: impl FnMut(u32)) {
        // The check inline, the walk out of line: as one function too large
        // to inline, a span with no chunk (nearly all) paid a call for the
        // check alone, 22 instructions a span on the exporter (callgrind).
        if self.rest().chunk_count == 0 {
            return; // and the map's lines stay untouched
        }
        self.owned_chunks_listed(store, f);
    }

    /// `owned_chunks` for a span that has chunks.
    #[inline(never)]
    fn owned_chunks_listed<S: ChunkStore + ?Sized>(&self, store: &S, mut f: impl FnMut(u32)) {
        let direct = (self.rest().chunk_count as usize).min(DIRECT_CHUNKS);
        for &c in &self.direct_chunks[..direct] {
            f(c);
        }
        let mut left = (self.rest().chunk_count as usize).saturating_sub(DIRECT_CHUNKS);
        let mut index = self.index_head;
        while index != 0 {
            let Some(ptr) = store.chunk_ptr(index - 1) else {
                return;
            };
            f(index - 1);
            let words = ptr.as_ptr().cast::<u32>();
            for slot in 0..left.min(INDEX_ENTRIES) {
                // SAFETY: an index chunk holds CHUNK_BYTES / 4 words.
                f(unsafe { words.add(slot).read_unaligned() });
            }
            left = left.saturating_sub(INDEX_ENTRIES);
            // SAFETY: as above.
            index = unsafe { words.add(INDEX_ENTRIES).read_unaligned() };
        }
    }

    /// Takes one more chunk from `store` for the span. False when the pool
    /// is used up (or the span's virtual space is).
    fn add_chunk<S: ChunkStore + ?Sized>(&mut self, store: &S) -> bool {
        let k = self.rest().chunk_count as usize;
        if (k + 1) * CHUNK_BYTES > (u32::MAX - OVERFLOW_BASE) as usize {
            return false;
        }
        if k < DIRECT_CHUNKS {
            let Some(c) = store.take_chunk() else {
                return false;
            };
            self.direct_chunks[k] = c;
            self.rest_mut().chunk_count += 1;
            return true;
        }
        let slot = (k - DIRECT_CHUNKS) % INDEX_ENTRIES;
        if slot == 0 {
            // A new index chunk first, linked at the end of the list.
            let Some(ix) = store.take_chunk() else {
                return false;
            };
            let Some(ptr) = store.chunk_ptr(ix) else {
                return false;
            };
            // SAFETY: the chunk is ours; its last word is the link.
            unsafe {
                ptr.as_ptr()
                    .cast::<u32>()
                    .add(INDEX_ENTRIES)
                    .write_unaligned(0)
            };
            if let Some(tail) = self
                .index_tail
                .checked_sub(1)
                .and_then(|t| store.chunk_ptr(t))
            {
                // SAFETY: the tail index chunk is ours.
                unsafe {
                    tail.as_ptr()
                        .cast::<u32>()
                        .add(INDEX_ENTRIES)
                        .write_unaligned(ix + 1)
                };
            } else {
                self.index_head = ix + 1;
            }
            self.index_tail = ix + 1;
        }
        let Some(c) = store.take_chunk() else {
            // The index chunk stays listed (and owned) for the next try.
            return false;
        };
        let Some(tail) = self
            .index_tail
            .checked_sub(1)
            .and_then(|t| store.chunk_ptr(t))
        else {
            return false;
        };
        // SAFETY: the tail index chunk is ours; slot < INDEX_ENTRIES.
        unsafe { tail.as_ptr().cast::<u32>().add(slot).write_unaligned(c) };
        self.rest_mut().chunk_count += 1;
        true
    }

    /// Reserves up to `want` bytes at the end of the chunks, taking chunks
    /// as needed: the virtual offset and how many bytes it got (fewer when
    /// the pool ran out).
    fn reserve_overflow<S: ChunkStore + ?Sized>(&mut self, want: usize, store: &S) -> (u32, usize) {
        let start = self.overflow_used as usize;
        let mut have = self.rest().chunk_count as usize * CHUNK_BYTES - start;
        while have < want && self.add_chunk(store) {
            have += CHUNK_BYTES;
        }
        let got = want.min(have);
        self.overflow_used = (start + got) as u32;
        (OVERFLOW_BASE + start as u32, got)
    }

    /// Where a value that may be cut goes, once `reserve_overflow` (called
    /// with `overflow_used` at `before`) got `got` bytes at `at`: there, or,
    /// when the pool ran out and gave less than half the arena's room, in
    /// that half of the arena instead, reserved (the chunks' bytes given
    /// back). A prompt arrived as "" when the pool was used up, which reads
    /// as an empty prompt; the other half stays for the attributes set
    /// after it (token counts, the completion), whose keys need room too.
    fn arena_if_the_pool_ran_out(&mut self, before: u32, at: u32, got: usize) -> (u32, usize) {
        let start = self.arena_used as usize;
        let half = (ARENA_BYTES - start) / 2;
        if got >= half {
            return (at, got);
        }
        self.overflow_used = before;
        self.arena_used = (start + half) as u16;
        (start as u32, half)
    }

    /// Reserves exactly `n` bytes, in the arena when they fit, else in the
    /// chunks; None (and nothing reserved) when they do not fit.
    fn alloc<S: ChunkStore + ?Sized>(&mut self, n: usize, store: &S) -> Option<u32> {
        let start = self.arena_used as usize;
        if n <= ARENA_BYTES - start {
            self.arena_used = (start + n) as u16;
            return Some(start as u32);
        }
        let before = self.overflow_used;
        let (at, got) = self.reserve_overflow(n, store);
        if got < n {
            self.overflow_used = before;
            return None;
        }
        Some(at)
    }

    /// Writes `bytes` at virtual offset `at`, which the span reserved.
    fn write_at<S: ChunkStore + ?Sized>(&mut self, at: u32, bytes: &[u8], store: &S) {
        self.copy_at(at, bytes, store, |dst, src| {
            copy_text(dst, src);
            true
        });
    }

    /// Copies `bytes` to virtual offset `at`, which the span reserved, a
    /// piece at a time (the arena's, or each chunk's) with `copy`, which
    /// may refuse a piece: then the copy stops there, and the answer is
    /// false.
    fn copy_at<S: ChunkStore + ?Sized>(
        &mut self,
        at: u32,
        bytes: &[u8],
        store: &S,
        mut copy: impl FnMut(&mut [u8], &[u8]) -> bool,
    ) -> bool {
        if (at as usize) < ARENA_BYTES {
            let at = at as usize;
            return copy(&mut self.arena[at..at + bytes.len()], bytes);
        }
        let mut pos = (at - OVERFLOW_BASE) as usize;
        let mut rest = bytes;
        while !rest.is_empty() {
            let (ordinal, within) = (pos / CHUNK_BYTES, pos % CHUNK_BYTES);
            let n = rest.len().min(CHUNK_BYTES - within);
            let index = self.chunk_index(ordinal as u32, |i| {
                store.chunk_ptr(i).map(|p| p.as_ptr() as *const u8)
            });
            if let Some(ptr) = index.and_then(|i| store.chunk_ptr(i)) {
                // SAFETY: the chunk is the span's, written only by whoever
                // holds the span (a crash dump reads it as it reads the
                // arena, a torn write and all); within + n <= CHUNK_BYTES.
                let dst = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr().add(within), n) };
                if !copy(dst, &rest[..n]) {
                    return false;
                }
            }
            rest = &rest[n..];
            pos += n;
        }
        true
    }

    fn write_plain<T: Plain, S: ChunkStore + ?Sized>(&mut self, at: u32, v: &T, store: &S) {
        self.write_at(at, as_bytes(v), store);
    }

    /// A copy of what the span holds at `at`, through `store` (the writer's
    /// own view of its chunks).
    fn read_plain_own<T: Plain, S: ChunkStore + ?Sized>(&self, at: u32, store: &S) -> Option<T> {
        let src = StoreSource(store);
        read_plain(self, &src, at)
    }

    // ---- Text ----

    /// Copies `input` as UTF-8 (invalid sequences replaced with U+FFFD),
    /// cut at `limit` bytes on a character boundary: into the arena when
    /// it fits, else into the span's chunks, cut where the pool runs out.
    /// Counts what it did.
    #[inline(always)]
    pub fn store_text<S: ChunkStore + ?Sized>(
        &mut self,
        input: &[u8],
        limit: usize,
        store: &S,
    ) -> (TextRef, TextOutcome) {
        self.store_text_at(input, limit, LimitOf::Text, store)
    }

    /// `store_text`, its limit `of` what (said where a cut is counted).
    #[inline(always)]
    fn store_text_at<S: ChunkStore + ?Sized>(
        &mut self,
        input: &[u8],
        limit: usize,
        of: LimitOf,
        store: &S,
    ) -> (TextRef, TextOutcome) {
        // Names, keys and most values are short ASCII: a few loads that
        // both check and copy, inline. Everything else takes the call.
        // (The general path cost 90 instructions for a 6-byte key.)
        let start = self.arena_used as usize;
        let n = input.len();
        // One bounds check, as in `store_key`.
        if n <= SHORT_TEXT
            && n <= limit
            && let Some(dst) = self.arena.get_mut(start..start + n)
            && copy_short_ascii(dst, input)
        {
            self.arena_used = (start + n) as u16;
            let text = TextRef {
                offset: start as u32,
                len: n as u32,
            };
            return (text, TextOutcome::default());
        }
        let (word, outcome) = self.store_text_in_registers(input, limit, of, store);
        (unpack(word), TextOutcome::from_bits(outcome))
    }

    /// `store_text` for a string value (an attribute's, an array
    /// element's): its limit, `value_length_limit`, counts characters
    /// (`value_byte_limit`).
    #[inline(always)]
    pub fn store_value_text<S: ChunkStore + ?Sized>(
        &mut self,
        input: &[u8],
        char_limit: usize,
        store: &S,
    ) -> (TextRef, TextOutcome) {
        let limit = value_byte_limit(input, char_limit);
        self.store_text_at(input, limit, LimitOf::Value, store)
    }

    /// `store_text_general` (cutting) with its result in two registers.
    /// Returned as a struct it came back through the stack, and the fast
    /// path above then wrote the two halves of its `TextRef` there for the
    /// value's word to be read back whole: a store-forwarding stall that
    /// perf put at a quarter of `spanguard_span_set_string`'s cycles.
    /// A value cut at its limit is counted there (`ValuesCutBy`).
    #[inline(never)]
    fn store_text_in_registers<S: ChunkStore + ?Sized>(
        &mut self,
        input: &[u8],
        limit: usize,
        of: LimitOf,
        store: &S,
    ) -> (u64, u8) {
        let (t, o) = match input.len() > SHORT_TEXT {
            true => self.store_long_ascii(input, limit, store),
            false => None,
        }
        .unwrap_or_else(|| self.store_text_general(input, limit, store, true));
        if o.truncated && !o.pool_ran_out && of == LimitOf::Value {
            self.count_cut(CutAt::LengthLimit);
        }
        (pack(t), o.bits())
    }

    /// `store_text_general` for long text that is ASCII, as nearly every
    /// prompt and completion is: checked as it is copied (`copy_long_ascii`),
    /// where the general path reads it once to plan and once to copy. Cut
    /// at `limit` on any byte (every one is a character boundary). Text
    /// that turns out not to be ASCII (English with a curly quote or a
    /// dash somewhere, as model output often has) keeps the ASCII prefix
    /// copied so far: when the whole input is valid UTF-8 and the limit
    /// falls on a character boundary, the rest is copied after it, read
    /// twice (validated, copied) instead of the whole text three times.
    /// None, with nothing kept, when the input is not valid UTF-8, the
    /// limit would cut inside a character, or the pool cannot hold it: the
    /// general path then stores it, in the space given back here.
    fn store_long_ascii<S: ChunkStore + ?Sized>(
        &mut self,
        input: &[u8],
        limit: usize,
        store: &S,
    ) -> Option<(TextRef, TextOutcome)> {
        let text = &input[..input.len().min(limit)];
        let (arena_before, overflow_before) = (self.arena_used, self.overflow_used);
        let at = self.alloc(text.len(), store)?;
        let mut ascii = 0;
        let all_ascii = self.copy_at(at, text, store, |dst, src| {
            let n = copy_long_ascii(dst, src);
            ascii += n;
            n == src.len()
        });
        if !all_ascii {
            // As plan_text decides: valid means the whole input is (the
            // ASCII prefix is); a cut at the limit must then not split a
            // character (`store_text_general` keeps less then).
            let at_boundary = floor_boundary_of_valid(input, text.len()) == text.len();
            if !at_boundary || simdutf8::basic::from_utf8(&input[ascii..]).is_err() {
                (self.arena_used, self.overflow_used) = (arena_before, overflow_before);
                return None;
            }
            self.write_at(at + ascii as u32, &text[ascii..], store);
        }
        let truncated = text.len() < input.len();
        if truncated {
            count_one(&mut self.rest_mut().truncated_values);
        }
        Some((
            TextRef {
                offset: at,
                len: text.len() as u32,
            },
            TextOutcome {
                truncated,
                replaced_utf8: false,
                pool_ran_out: false,
            },
        ))
    }

    /// `store_text` for any input; with `cut` false it stores the whole
    /// text or nothing (keys: an attribute is kept with its whole key or
    /// not at all). A failed fast path may have written past `arena_used`;
    /// that space is unused, and is written again here.
    #[inline(never)]
    fn store_text_general<S: ChunkStore + ?Sized>(
        &mut self,
        input: &[u8],
        limit: usize,
        store: &S,
        cut: bool,
    ) -> (TextRef, TextOutcome) {
        let plan = plan_text(input, limit);
        let start = self.arena_used as usize;
        let (at, room) = if plan.out_len <= ARENA_BYTES - start {
            (start as u32, plan.out_len)
        } else {
            let before = self.overflow_used;
            let (at, got) = self.reserve_overflow(plan.out_len, store);
            if !cut && got < plan.out_len {
                self.overflow_used = before;
                return (
                    TextRef::default(),
                    TextOutcome {
                        truncated: true,
                        replaced_utf8: false,
                        pool_ran_out: true,
                    },
                );
            }
            self.arena_if_the_pool_ran_out(before, at, got)
        };
        let mut pos = at;
        let written = emit_text(input, &plan, room, |piece| {
            self.write_at(pos, piece, store);
            pos += piece.len() as u32;
        });
        if (at as usize) < ARENA_BYTES {
            self.arena_used = (at as usize + written) as u16;
        } else {
            // Give back what the cut did not use.
            self.overflow_used = at - OVERFLOW_BASE + written as u32;
        }
        let outcome = TextOutcome {
            truncated: plan.cut || written < plan.out_len,
            replaced_utf8: plan.replaced_utf8,
            pool_ran_out: written < plan.out_len,
        };
        if outcome.truncated {
            count_one(&mut self.rest_mut().truncated_values);
        }
        if outcome.pool_ran_out {
            self.count_cut(CutAt::Pool);
        }
        if outcome.replaced_utf8 {
            count_one(&mut self.rest_mut().replaced_utf8);
        }
        (
            TextRef {
                offset: at,
                len: written as u32,
            },
            outcome,
        )
    }

    /// The text `t` names, when it lies whole in the arena (nearly every
    /// name, key and short value); None when any of it is in chunks.
    #[inline(always)]
    pub fn arena_text(&self, t: TextRef) -> Option<&[u8]> {
        let start = t.offset as usize;
        let end = start.checked_add(t.len as usize)?;
        (end <= ARENA_BYTES).then(|| &self.arena[start..end])
    }

    /// The raw bytes a `TextRef` names, bounded by the arena: for text
    /// known to be there (tracestate, scope), compared without a UTF-8
    /// check.
    #[inline]
    pub fn raw(&self, t: TextRef) -> &[u8] {
        let start = (t.offset as usize).min(ARENA_BYTES);
        let end = (start + t.len as usize).min(ARENA_BYTES);
        &self.arena[start..end]
    }

    /// Copies raw bytes (a bytes value: no UTF-8 rule), cut at `limit` and
    /// where the pool runs out, counted.
    #[inline(never)]
    fn store_bytes<S: ChunkStore + ?Sized>(
        &mut self,
        input: &[u8],
        limit: usize,
        store: &S,
    ) -> (TextRef, TextOutcome) {
        let want = input.len().min(limit);
        let start = self.arena_used as usize;
        let (at, got) = if want <= ARENA_BYTES - start {
            self.arena_used = (start + want) as u16;
            (start as u32, want)
        } else {
            let before = self.overflow_used;
            let (at, got) = self.reserve_overflow(want, store);
            self.arena_if_the_pool_ran_out(before, at, got)
        };
        self.write_at(at, &input[..got], store);
        let truncated = got < input.len();
        if truncated {
            count_one(&mut self.rest_mut().truncated_values);
        }
        let pool_ran_out = got < want;
        if pool_ran_out {
            self.count_cut(CutAt::Pool);
        }
        (
            TextRef {
                offset: at,
                len: got as u32,
            },
            TextOutcome {
                truncated,
                replaced_utf8: false,
                pool_ran_out,
            },
        )
    }

    /// Copies a complex value's message whole: cut inside at the value
    /// length limit (each string's characters, each bytes value's bytes)
    /// and each array or map deeper than the depth limit replaced by the
    /// empty value, as OpenTelemetry's attribute limits ask (TRUNCATED,
    /// counted in `truncated_values`, once for the value). Never cut
    /// where the pool runs out, which would leave a broken message: a
    /// value that does not fit whole is stored as the empty value instead,
    /// counted in `truncated_values` and said (TRUNCATED) as any cut is.
    #[cold]
    #[inline(never)]
    fn store_any_value<S: ChunkStore + ?Sized>(
        &mut self,
        value: AnyValueRef,
        limits: &SpanLimits,
        store: &S,
    ) -> (TextRef, TextOutcome) {
        let (limit, depth) = (limits.value_len(), limits.value_depth());
        let limited = value.limited_by(limit, depth);
        let cut_inside;
        let bytes = if limited {
            cut_inside = value.limited(limit, depth);
            &cut_inside[..]
        } else {
            value.bytes()
        };
        let (mut t, mut outcome) = self.store_bytes(bytes, usize::MAX, store);
        if outcome.truncated {
            // Counted by `store_bytes`.
            t.len = 0;
        } else if limited {
            count_one(&mut self.rest_mut().truncated_values);
            // Once, for the limit that keeps it whole only when raised:
            // the depth's, when both cut it.
            self.count_cut(match value.deeper_than(depth) {
                true => CutAt::DepthLimit,
                false => CutAt::LengthLimit,
            });
            outcome.truncated = true;
        }
        (t, outcome)
    }

    /// Stores a value: the packed word and what happened to its text.
    /// Strings and scalars, what most attributes are, inline; bytes and
    /// arrays out of line, so that the attribute path a small span takes
    /// stays short (each array arm inlined here cost the scalar setters
    /// registers and instructions).
    #[inline(always)]
    fn store_value<S: ChunkStore + ?Sized>(
        &mut self,
        value: &ValueInput,
        limits: &SpanLimits,
        store: &S,
    ) -> (ValueKind, u64, TextOutcome) {
        let none = TextOutcome::default();
        match *value {
            ValueInput::Str(s) => {
                let (t, o) = self.store_value_text(s, limits.value_len(), store);
                (ValueKind::String, pack(t), o)
            }
            ValueInput::Int(i) => (ValueKind::Int, i as u64, none),
            ValueInput::Double(d) => (ValueKind::Double, d.to_bits(), none),
            ValueInput::Bool(b) => (ValueKind::Bool, b as u64, none),
            _ => self.store_sequence_value(value, limits, store),
        }
    }

    /// `store_value`'s out-of-line part: bytes and arrays. (Strings and
    /// scalars never come here; they go back to `store_value` only so that
    /// the match names every kind.)
    #[inline(never)]
    fn store_sequence_value<S: ChunkStore + ?Sized>(
        &mut self,
        value: &ValueInput,
        limits: &SpanLimits,
        store: &S,
    ) -> (ValueKind, u64, TextOutcome) {
        let limit = limits.value_len();
        match *value {
            ValueInput::Str(_)
            | ValueInput::Int(_)
            | ValueInput::Double(_)
            | ValueInput::Bool(_) => self.store_value(value, limits, store),
            ValueInput::Bytes(b) => {
                let (t, o) = self.store_bytes(b, limit, store);
                if o.truncated && !o.pool_ran_out {
                    self.count_cut(CutAt::LengthLimit);
                }
                (ValueKind::Bytes, pack(t), o)
            }
            ValueInput::AnyValue(v) => {
                let (t, o) = self.store_any_value(v, limits, store);
                (ValueKind::AnyValue, pack(t), o)
            }
            ValueInput::IntArray(v) => {
                let (t, o) = self.store_array(v.len(), 8, store, |i| v[i].to_le_bytes());
                (ValueKind::IntArray, pack(t), o)
            }
            ValueInput::DoubleArray(v) => {
                let (t, o) = self.store_array(v.len(), 8, store, |i| v[i].to_bits().to_le_bytes());
                (ValueKind::DoubleArray, pack(t), o)
            }
            ValueInput::BoolArray(v) => {
                let (t, o) = self.store_array(v.len(), 1, store, |i| [(v[i] != 0) as u8; 8]);
                (ValueKind::BoolArray, pack(t), o)
            }
            ValueInput::StrArray(v) => {
                // The element table first, then each element's text; an
                // element that no longer fits is kept cut (or empty).
                let (t, mut o) = self.store_array(v.len(), 8, store, |_| [0; 8]);
                for (i, s) in v.iter().enumerate().take(t.len as usize) {
                    let (e, eo) = self.store_value_text(s.bytes(), limit, store);
                    o.merge(eo);
                    self.write_plain(t.offset + 8 * i as u32, &e, store);
                }
                (ValueKind::StringArray, pack(t), o)
            }
        }
    }

    /// Reserves and fills an array of `n` elements of `size` bytes; as many
    /// as fit when the pool runs out (counted as truncated).
    #[inline(never)]
    fn store_array<S: ChunkStore + ?Sized>(
        &mut self,
        n: usize,
        size: usize,
        store: &S,
        element: impl Fn(usize) -> [u8; 8],
    ) -> (TextRef, TextOutcome) {
        let want = n * size;
        let start = self.arena_used as usize;
        let (at, got) = if want <= ARENA_BYTES - start {
            self.arena_used = (start + want) as u16;
            (start as u32, want)
        } else {
            let (at, got) = self.reserve_overflow(want, store);
            let whole = got / size * size;
            self.overflow_used -= (got - whole) as u32;
            (at, whole)
        };
        let kept = got / size;
        for i in 0..kept {
            self.write_at(at + (i * size) as u32, &element(i)[..size], store);
        }
        let truncated = kept < n;
        if truncated {
            count_one(&mut self.rest_mut().truncated_values);
            self.count_cut(CutAt::Pool);
        }
        (
            TextRef {
                offset: at,
                len: kept as u32,
            },
            TextOutcome {
                truncated,
                replaced_utf8: false,
                pool_ran_out: truncated,
            },
        )
    }

    // ---- Replacing a stored value ----
    //
    // A span's storage is bumped, never freed while the span lives: a
    // value set again would otherwise leave the old one's bytes (and
    // chunks) behind, and a completion re-set as it streams in used up
    // the shared pool (a 400 KB completion in 1 KB steps held 80 MB). The
    // old value's chunks are not given back to the pool: a crash dump
    // copying this span from another thread, or the flight file a SIGKILL
    // leaves, could then show another span's data as this one's. Instead
    // the new value is written over the old one when it fits in the room
    // the old one owns, or when that room is the last thing the span
    // stored (the streaming case: it may grow past it); otherwise it
    // takes fresh room (the old one's stays unused until export), and
    // when the pool cuts it shorter than the old one, the old one is kept.
    //
    // A value that takes fresh room when set again (two values set again
    // in turn as they grow, a prompt and a completion: neither is the
    // last thing stored when its turn comes) also takes room after it,
    // up to the next power of two above its length, and the attribute
    // notes that room (`AttributeRecord::room`): the next versions are
    // written over it until they outgrow it, and the one that does takes
    // twice the room. Each room at least twice the one before, the last
    // at most twice the value, a value's rooms add up to at most about
    // four times its longest version, as a Vec's growth, where fresh room
    // for every version added up to the square (two 200 KB values set in
    // turn in 1 KB steps took 40 MB; 1 MB now). The price: a value in the
    // chunks set again once, longer, with something stored after it, holds
    // up to twice its length of the pool until export. A value that leaves
    // the arena, or is cut, takes no room to grow into (see below). Room
    // reserved for a value counts in `overflow_used`, which the exporter's
    // first guess at a span's size reads (`estimated_len`): a guess a
    // little high, never a value cut. The room is the value's alone:
    // nothing else is stored in it and no reader is pointed at its unused
    // bytes, so a dump shows what it showed before. A power of two, so
    // that one byte notes it where the attribute has a spare byte: the
    // dump's layout is the same. A span's name and status message
    // (`replace_name`, `set_status_message`) note theirs the same way, in
    // `name_room` and `status_room`, bytes of the record's padding: a
    // status description set as it streams in, or a name set as an
    // agent's step becomes known, in turn with each other or with
    // anything stored between, took fresh room for every version and used
    // up the shared pool, so that other spans' values were cut. Freeing
    // the old version's chunk instead is not an option (a chunk is the
    // span's until export, see above), nor is the arena (bumped, never
    // freed, for the same reason): the doubling room is the bound.

    /// Stores a value in place of `old` (a kind byte and its packed word)
    /// with `put`, and says the kind, word and room (`AttributeRecord::room`)
    /// to keep, and what happened to the text. `room` is the room `old`
    /// owns, None when the caller cannot keep a note of room (then none is
    /// reserved). `new` is the new value's input when it is text of the old
    /// one's kind (`NewText::of`). `publish` writes a word where readers
    /// find the value (a crash dump, the flight file): before the old bytes
    /// are written over, it is given the old value cut to the bytes the new
    /// one starts with, which both share, so a reader sees the old value,
    /// that prefix of it, or the new one, and never text half old and half
    /// new.
    #[inline(never)]
    fn store_replacing<S: ChunkStore + ?Sized>(
        &mut self,
        old: (u8, u64),
        room: Option<u8>,
        new: Option<NewText>,
        store: &S,
        publish: impl FnOnce(&mut Self, u64, &S),
        put: impl FnOnce(&mut Self, &S) -> (u8, u64, TextOutcome),
    ) -> (u8, u64, u8, TextOutcome) {
        let extent = stored_extent(old.0, old.1);
        let (noted, room) = (room.is_some(), room.unwrap_or(0));
        let owned = extent.map(|t| owned_room(t, room));
        // Over the old value when the new one ends inside the room it owns
        // (the end of what is used is put back after, so what follows, the
        // rest of that room included, stays as it is), or when that room is
        // the last thing stored (the new one may grow past it; the end of
        // what is used is then the new value's, and its room just its own).
        let fits = new.is_some_and(|n| owned.is_some_and(|t| n.fits_in(t)));
        let last = owned.is_some_and(|t| self.is_last_stored(t));
        let at_the_end = last && !(fits && room != 0);
        if let Some(at) = extent.filter(|_| fits || last) {
            let shared = new.map_or(0, |n| self.shared_prefix(at, n, store));
            publish(
                self,
                pack(TextRef {
                    offset: at.offset,
                    len: shared,
                }),
                store,
            );
            // Release: the cut word is in place before the bytes past it
            // change (pairs with nothing in-process; it orders the stores
            // that a crash dump or a dead process's file shows).
            fence(Ordering::Release);
            let in_arena = (at.offset as usize) < ARENA_BYTES;
            let ends = (self.arena_used, self.overflow_used);
            if in_arena {
                self.arena_used = at.offset as u16;
            } else {
                self.overflow_used = at.offset - OVERFLOW_BASE;
            }
            let (kind, word, outcome) = put(self, store);
            // Put back only the end that was moved: the text may have gone
            // to the arena's free end instead of the chunks (and left the
            // room it owned).
            let kept_room = match (at_the_end, in_arena) {
                (true, _) => 0,
                (false, true) => {
                    self.arena_used = ends.0;
                    0
                }
                (false, false) => {
                    self.overflow_used = ends.1;
                    if unpack(word).offset == at.offset {
                        room
                    } else {
                        0
                    }
                }
            };
            // Release: the new bytes before the word that names them.
            fence(Ordering::Release);
            return (kind, word, kept_room, outcome);
        }
        let before = (self.arena_used, self.overflow_used);
        let (kind, word, outcome) = put(self, store);
        let mut new_room = 0;
        if let (Some(n), Some(at)) = (new, extent) {
            let got = unpack(word).len as usize;
            // Cut by room (the limit would have kept more) to less than
            // the old value held: keep the old one, and the space back.
            if outcome.truncated && got < at.len as usize && got + 4 <= n.limit_bytes {
                (self.arena_used, self.overflow_used) = before;
                return (old.0, old.1, room, outcome);
            }
            // Moved, whole, from the chunks: room for it to grow into. Not
            // for a value cut (it reached its limit or the pool's end, and
            // grows no more), nor for one that leaves the arena: a value set
            // once more, as a placeholder filled in later, then takes no
            // more than its own room; one that keeps growing moves once
            // more, from the chunks.
            if noted && !outcome.truncated && at.offset >= OVERFLOW_BASE {
                new_room = self.reserve_room_after(unpack(word), store);
            }
        }
        fence(Ordering::Release);
        (kind, word, new_room, outcome)
    }

    /// Reserves room after text `t`, just stored at the end of the chunks,
    /// up to the next power of two above its length, all of it or none;
    /// says the power (`AttributeRecord::room`), 0 for none. (A chunk taken
    /// for room that could not be had whole stays the span's, for what it
    /// stores next.)
    fn reserve_room_after<S: ChunkStore + ?Sized>(&mut self, t: TextRef, store: &S) -> u8 {
        if (t.offset as usize) < ARENA_BYTES || !self.is_last_stored(t) {
            return 0;
        }
        let room = (t.len as u64 + 1).next_power_of_two();
        let spare = (room - t.len as u64) as usize;
        let before = self.overflow_used;
        let (_, got) = self.reserve_overflow(spare, store);
        if got < spare {
            self.overflow_used = before;
            return 0;
        }
        room.trailing_zeros() as u8
    }

    /// Whether `t` ends where the arena's or the chunks' used bytes end:
    /// the last thing stored there, which nothing else refers to.
    fn is_last_stored(&self, t: TextRef) -> bool {
        let end = t.offset as u64 + t.len as u64;
        if t.len == 0 {
            false
        } else if (t.offset as usize) < ARENA_BYTES {
            end == self.arena_used as u64
        } else {
            end == OVERFLOW_BASE as u64 + self.overflow_used as u64
        }
    }

    /// How many leading bytes of the stored `old` the new text begins
    /// with, cut back to a character boundary for UTF-8 text: those bytes
    /// are the same in both values (the new text is sanitized only past
    /// them), so rewriting them changes nothing a reader sees.
    fn shared_prefix<S: ChunkStore + ?Sized>(&self, old: TextRef, new: NewText, store: &S) -> u32 {
        let src = StoreSource(store);
        let (mut same, mut last_start, mut next_byte) = (0usize, 0usize, None);
        for_each_piece(self, &src, old, |piece| {
            if next_byte.is_some() {
                return;
            }
            let rest = new.input.get(same..).unwrap_or(&[]);
            let n = piece.iter().zip(rest).take_while(|(a, b)| a == b).count();
            for (k, &b) in piece[..n].iter().enumerate() {
                if b & 0xC0 != 0x80 {
                    last_start = same + k;
                }
            }
            same += n;
            if n < piece.len() {
                next_byte = Some(piece[n]);
            }
        });
        let at_boundary = match next_byte {
            None => same == old.len as usize,
            Some(b) => b & 0xC0 != 0x80,
        };
        if !new.utf8 || at_boundary {
            same.min(old.len as usize) as u32
        } else {
            last_start as u32
        }
    }

    /// Renames the span (OpenTelemetry's `updateName`), the name cut at
    /// `MAX_NAME_BYTES` as at begin; the old name's room is used again
    /// when the new one fits in it or it was the last thing stored, and a
    /// name that must move from the chunks takes room to grow into, noted
    /// in `name_room` (`store_replacing`).
    pub fn replace_name<S: ChunkStore + ?Sized>(&mut self, name: &[u8], store: &S) -> TextOutcome {
        let new = NewText {
            input: name,
            utf8: true,
            limit_bytes: MAX_NAME_BYTES,
        };
        // The room's line is read only for a name in the chunks: a small
        // span renamed in its arena touches no line more than before.
        let room = if self.name.offset >= OVERFLOW_BASE {
            self.name_room
        } else {
            0
        };
        let (_, word, room, outcome) = self.store_replacing(
            (ValueKind::String as u8, pack(self.name)),
            Some(room),
            Some(new),
            store,
            // SAFETY: a field of this record; volatile so that the store is
            // made before the bytes it guards (only `len` changes).
            |r, w, _| unsafe { std::ptr::addr_of_mut!(r.name).write_volatile(unpack(w)) },
            |r, s| {
                let (t, o) = r.store_text(name, MAX_NAME_BYTES, s);
                (ValueKind::String as u8, pack(t), o)
            },
        );
        self.name = unpack(word);
        if self.name_room != room {
            self.name_room = room;
        }
        outcome
    }

    /// Sets the status message (not cut at a limit: OpenTelemetry's limits
    /// "apply only to attribute collections"; the pool bounds it), over
    /// a message set before as `replace_name` does, its room noted in
    /// `status_room`.
    pub fn set_status_message<S: ChunkStore + ?Sized>(
        &mut self,
        message: &[u8],
        store: &S,
    ) -> TextOutcome {
        let new = NewText {
            input: message,
            utf8: true,
            limit_bytes: usize::MAX,
        };
        let old = self.rest().status_message;
        let room = if old.offset >= OVERFLOW_BASE {
            self.status_room
        } else {
            0
        };
        let (_, word, room, outcome) = self.store_replacing(
            (ValueKind::String as u8, pack(old)),
            Some(room),
            Some(new),
            store,
            // SAFETY: as in `replace_name`.
            |r, w, _| unsafe {
                std::ptr::addr_of_mut!(r.rest_mut().status_message).write_volatile(unpack(w))
            },
            |r, s| {
                let (t, o) = r.store_text(message, usize::MAX, s);
                (ValueKind::String as u8, pack(t), o)
            },
        );
        self.rest_mut().status_message = unpack(word);
        if self.status_room != room {
            self.status_room = room;
        }
        outcome
    }

    // ---- Attributes ----

    /// The raw bytes of a key stored in the arena, for the fast compare;
    /// None for one in the chunks.
    #[inline]
    fn arena_bytes(&self, t: TextRef) -> Option<&[u8]> {
        let start = t.offset as usize;
        let end = start.checked_add(t.len as usize)?;
        (end <= ARENA_BYTES).then(|| &self.arena[start..end])
    }

    /// Whether stored text `t` equals `bytes`.
    fn text_equals<S: ChunkStore + ?Sized>(&self, t: TextRef, bytes: &[u8], store: &S) -> bool {
        if t.len as usize != bytes.len() {
            return false;
        }
        if let Some(own) = self.arena_bytes(t) {
            return own == bytes;
        }
        let src = StoreSource(store);
        let mut at = 0usize;
        let mut same = true;
        for_each_piece(self, &src, t, |piece| {
            same &= bytes.get(at..at + piece.len()) == Some(piece);
            at += piece.len();
        });
        same && at == bytes.len()
    }

    /// Sets a span attribute. A key it already has gets the new value (the
    /// OpenTelemetry rule); a new key takes an entry of the slot's table,
    /// or a node in the chunks once the table is full. Past `count_limit`
    /// attributes, or when the key does not fit whole, the attribute is
    /// dropped and counted.
    #[inline(always)]
    pub fn set_attribute<S: ChunkStore + ?Sized>(
        &mut self,
        key: &[u8],
        value: &ValueInput,
        limits: &SpanLimits,
        store: &S,
    ) -> Result<TextOutcome, NotStored> {
        if key.is_empty() {
            // Never exported keyless; counted as dropped, as the Go SDK
            // counts an attribute with an invalid key.
            count_one(&mut self.rest_mut().dropped_attributes);
            return Err(NotStored::EmptyKey);
        }
        let count = self.attribute_count as usize;
        let key = cut_key(key);
        if count >= INLINE_ATTRIBUTES {
            return self.set_attribute_past_inline(key, *value, limits, store);
        }
        if let Some(i) = self.inline_attribute_index(count, key, store) {
            return Ok(self.replace_attribute_value(i, *value, limits, store));
        }
        if count < limits.attribute_count as usize {
            // The common case: a new key, and room in the slot's table.
            // Nothing is reserved before the key, so a key that does not
            // fit leaves nothing to undo.
            let (key_ref, key_outcome) = self.store_key(key, store);
            let Some(key_ref) = key_ref else {
                count_one(&mut self.rest_mut().dropped_attributes);
                return Err(NotStored::NoRoom);
            };
            let (kind, word, mut outcome) = self.store_value(value, limits, store);
            outcome.merge(key_outcome);
            self.attributes[count] = AttributeRecord {
                key: key_ref.offset,
                key_len: key_ref.len as u16,
                value_kind: kind as u8,
                room: 0,
                value: word,
            };
            self.attribute_count += 1;
            return Ok(outcome);
        }
        self.set_attribute_past_table(key, *value, limits, store)
    }

    /// Whether `n` attributes whose keys and string values come to at most
    /// `text_bytes` bytes surely fit the arena, so that setting them takes
    /// no chunk from the pool (and so never waits for one): each text, cut
    /// or not, stores at most 3 bytes per input byte (an invalid byte
    /// becomes U+FFFD), in the arena while it has room, and an attribute
    /// past the slot's table takes a node there too. A value set again
    /// over its old place, or its room, takes no more than a new one.
    /// Conservative: false may still have fitted.
    #[inline(always)]
    pub fn surely_fits_the_arena(&self, text_bytes: usize, n: usize) -> bool {
        let past_table = (self.attribute_count as usize + n)
            .saturating_sub(INLINE_ATTRIBUTES)
            .min(n);
        let need = text_bytes
            .saturating_mul(3)
            .saturating_add(past_table * std::mem::size_of::<AttributeNode>());
        need <= ARENA_BYTES - self.arena_used as usize
    }

    /// Makes sure `need` bytes can be stored without taking a chunk: true
    /// when the arena has the room, or the chunks the span holds past
    /// `overflow_used` do, or once it took the chunks they lack from
    /// `store`. Those are the span's from then on, used by what it stores
    /// next and given back at export with the rest (`owned_chunks`): a
    /// dump reads no more of them than `overflow_used`, as of any chunk's
    /// unused end. False when `store` gave no chunk before that (the
    /// chunks taken so far stay the span's, for the next try).
    pub fn make_room<S: ChunkStore + ?Sized>(&mut self, need: usize, store: &S) -> bool {
        if need <= ARENA_BYTES - self.arena_used as usize {
            return true;
        }
        let held = |r: &SpanRecord| {
            (r.rest().chunk_count as usize * CHUNK_BYTES).saturating_sub(r.overflow_used as usize)
        };
        while held(self) < need {
            if !self.add_chunk(store) {
                return false;
            }
        }
        true
    }

    /// `set_attribute`'s common case with no call in it, for a setter
    /// whose other cases go out of line (`Tracer::set_attribute`): a new
    /// ASCII key of at most 32 bytes, with room in the slot's table and
    /// under the count limit, and a scalar value or an ASCII string of at
    /// most 32 bytes within the value length limit, stored in the arena.
    /// Stores what `set_attribute` would have stored (the same bytes in
    /// the same places) and returns true; else returns false having
    /// stored nothing (bytes written past `arena_used` are unused, as
    /// after `store_key`'s own failed fast path), for `set_attribute`.
    #[inline(always)]
    pub fn try_set_short_attribute(
        &mut self,
        key: &[u8],
        value: &ValueInput,
        limits: &SpanLimits,
    ) -> bool {
        let count = self.attribute_count as usize;
        let n = key.len();
        if n == 0
            || n > SHORT_TEXT
            || count >= INLINE_ATTRIBUTES
            || count >= limits.attribute_count as usize
        {
            return false;
        }
        // A key of the same length may be this one: `set_attribute`
        // compares the bytes and replaces its value.
        if self.attributes[..count]
            .iter()
            .any(|a| a.key_len as usize == n)
        {
            return false;
        }
        let start = self.arena_used as usize;
        let Some(dst) = self.arena.get_mut(start..start + n) else {
            return false;
        };
        if !copy_short_ascii(dst, key) {
            return false;
        }
        let mut used = start + n;
        let (kind, word) = match *value {
            ValueInput::Int(i) => (ValueKind::Int, i as u64),
            ValueInput::Double(d) => (ValueKind::Double, d.to_bits()),
            ValueInput::Bool(b) => (ValueKind::Bool, b as u64),
            ValueInput::Str(text) => {
                let m = text.len();
                // Within the limit in bytes, so in characters too.
                if m > SHORT_TEXT || m > limits.value_len() {
                    return false;
                }
                let Some(dst) = self.arena.get_mut(used..used + m) else {
                    return false;
                };
                if !copy_short_ascii(dst, text) {
                    return false;
                }
                let at = used;
                used += m;
                (
                    ValueKind::String,
                    pack(TextRef {
                        offset: at as u32,
                        len: m as u32,
                    }),
                )
            }
            _ => return false,
        };
        self.arena_used = used as u16;
        self.attributes[count] = AttributeRecord {
            key: start as u32,
            key_len: n as u16,
            value_kind: kind as u8,
            room: 0,
            value: word,
        };
        self.attribute_count += 1;
        true
    }

    /// Counts a key cut to `MAX_KEY_BYTES`: `set_attribute` cuts it, and
    /// its caller, which answers TRUNCATED, counts it here (out of the
    /// record's common path). A key cut in silence could take another long
    /// key's value with none the wiser (found by the LLM-sized data audit).
    #[cold]
    #[inline(never)]
    pub fn note_cut_key(&mut self) {
        count_one(&mut self.rest_mut().truncated_values);
    }

    /// Counts a value cut `at` a limit a setting raises (`ValuesCutBy`),
    /// beside `truncated_values`, which its caller counts. Out of the
    /// common path: only a cut comes here.
    #[cold]
    #[inline(never)]
    fn count_cut(&mut self, at: CutAt) {
        let c = &mut self.cut_by;
        count_one(match at {
            CutAt::LengthLimit => &mut c.length_limit,
            CutAt::Pool => &mut c.pool,
            CutAt::DepthLimit => &mut c.depth_limit,
        });
    }

    /// Of the values the span cut as it recorded them (`truncated_values`),
    /// those cut at each limit a setting raises; none read when it cut
    /// none. Each at most `truncated_values` (a record from disk may hold
    /// anything), their sum too.
    #[inline]
    pub fn values_cut_by(&self) -> ValuesCutBy {
        let mut left = self.rest().truncated_values;
        if left == 0 {
            return ValuesCutBy::default();
        }
        let mut take = |n: u16| {
            let n = n.min(left);
            left -= n;
            n
        };
        let c = self.cut_by;
        ValuesCutBy {
            length_limit: take(c.length_limit),
            pool: take(c.pool),
            depth_limit: take(c.depth_limit),
        }
    }

    /// Which of the first `n` entries of the slot's table has `key`.
    /// Lengths first, inline; the bytes of a key of the same length out
    /// of line (rare: a key set twice, or two keys of one length), so the
    /// loop holds few registers.
    #[inline(always)]
    fn inline_attribute_index<S: ChunkStore + ?Sized>(
        &self,
        n: usize,
        key: &[u8],
        store: &S,
    ) -> Option<usize> {
        (0..n).find(|&i| {
            let a = &self.attributes[i];
            a.key_len as usize == key.len() && self.inline_key_is(a.key_ref(), key, store)
        })
    }

    /// `set_attribute` once the slot's table is full: a key in the table
    /// gets the new value, any other goes past it. Out of line: the table
    /// holds most spans' attributes.
    #[inline(never)]
    fn set_attribute_past_inline<S: ChunkStore + ?Sized>(
        &mut self,
        key: &[u8],
        value: ValueInput,
        limits: &SpanLimits,
        store: &S,
    ) -> Result<TextOutcome, NotStored> {
        if let Some(i) = self.inline_attribute_index(INLINE_ATTRIBUTES, key, store) {
            return Ok(self.replace_attribute_value(i, value, limits, store));
        }
        self.set_attribute_past_table(key, value, limits, store)
    }

    /// Whether a key of the slot's table, `t`, is `key`. Out of line (see
    /// `inline_attribute_index`).
    #[inline(never)]
    fn inline_key_is<S: ChunkStore + ?Sized>(&self, t: TextRef, key: &[u8], store: &S) -> bool {
        self.text_equals(t, key, store)
    }

    /// `set_attribute` for a key the table already has: the new value
    /// replaces the old one. Out of line: a key set twice is rare, and
    /// inlined this took registers from the common path. The value comes
    /// by value, as in `set_attribute_past_table`: its copy is made here,
    /// on this rare path; given by reference, every attribute of an array
    /// (`spanguard_span_set_attributes`, begin with attributes) wrote its
    /// value to the stack for these two calls alone, about 16 instructions.
    #[inline(never)]
    fn replace_attribute_value<S: ChunkStore + ?Sized>(
        &mut self,
        i: usize,
        value: ValueInput,
        limits: &SpanLimits,
        store: &S,
    ) -> TextOutcome {
        let a = self.attributes[i];
        let limit = limits.value_len();
        let (kind, word, room, outcome) = self.store_replacing(
            (a.value_kind, a.value),
            Some(a.room),
            NewText::of(a.value_kind, &value, limit),
            store,
            // SAFETY: a field of this record; volatile so that the store is
            // made, whole (an aligned word), before the bytes it guards.
            |r, w, _| unsafe { std::ptr::addr_of_mut!(r.attributes[i].value).write_volatile(w) },
            |r, s| {
                let (kind, word, outcome) = r.store_value(&value, limits, s);
                (kind as u8, word, outcome)
            },
        );
        let a = &mut self.attributes[i];
        a.value = word;
        a.value_kind = kind;
        a.room = room;
        outcome
    }

    /// `set_attribute` once the slot's table is full (or the limit is
    /// reached): the nodes in the chunks. The value by value: see
    /// `replace_attribute_value`.
    #[inline(never)]
    fn set_attribute_past_table<S: ChunkStore + ?Sized>(
        &mut self,
        key: &[u8],
        value: ValueInput,
        limits: &SpanLimits,
        store: &S,
    ) -> Result<TextOutcome, NotStored> {
        let count = self.attribute_count as usize;
        if count > INLINE_ATTRIBUTES
            && let Some((at, node)) = self.find_overflow_attribute(key, store)
        {
            let limit = limits.value_len();
            let old = (node.attribute.value_kind, node.attribute.value);
            let value_at = at + NODE_VALUE_AT;
            let (kind, word, room, outcome) = self.store_replacing(
                old,
                Some(node.attribute.room),
                NewText::of(old.0, &value, limit),
                store,
                |r, w, s| r.write_at(value_at, &w.to_ne_bytes(), s),
                |r, s| {
                    let (kind, word, outcome) = r.store_value(&value, limits, s);
                    (kind as u8, word, outcome)
                },
            );
            let mut node = node;
            node.attribute.value_kind = kind;
            node.attribute.value = word;
            node.attribute.room = room;
            self.write_plain(at, &node, store);
            return Ok(outcome);
        }
        if count >= limits.attribute_count as usize || count >= MAX_COUNT_LIMIT as usize {
            count_one(&mut self.rest_mut().dropped_attributes);
            return Err(NotStored::Limit);
        }
        let arena_before = self.arena_used;
        let overflow_before = self.overflow_used;
        let (key_ref, key_outcome) = self.store_key(key, store);
        let Some(key_ref) = key_ref else {
            count_one(&mut self.rest_mut().dropped_attributes);
            return Err(NotStored::NoRoom);
        };
        // The node before the value, so a value that takes the last of the
        // pool cannot leave the key without its entry.
        let Some(node_at) = self.alloc(std::mem::size_of::<AttributeNode>(), store) else {
            self.arena_used = arena_before;
            self.overflow_used = overflow_before;
            count_one(&mut self.rest_mut().dropped_attributes);
            return Err(NotStored::NoRoom);
        };
        let (kind, word, mut outcome) = self.store_value(&value, limits, store);
        outcome.merge(key_outcome);
        let node = AttributeNode {
            attribute: AttributeRecord {
                key: key_ref.offset,
                key_len: key_ref.len as u16,
                value_kind: kind as u8,
                room: 0,
                value: word,
            },
            next: 0,
            _reserved: 0,
        };
        self.write_plain(node_at, &node, store);
        self.append_to_list(ListName::Attributes, node_at, store);
        self.attribute_count += 1;
        Ok(outcome)
    }

    /// Stores a key whole or not at all (None: the pool ran out).
    #[inline(always)]
    fn store_key<S: ChunkStore + ?Sized>(
        &mut self,
        key: &[u8],
        store: &S,
    ) -> (Option<TextRef>, TextOutcome) {
        let start = self.arena_used as usize;
        let n = key.len();
        // One bounds check: through `get_mut` the compiler knows the
        // range is in the arena, where `n <= ARENA_BYTES - start` (which
        // wraps past a full arena) left the slice's own check after it.
        if n <= 32
            && let Some(dst) = self.arena.get_mut(start..start + n)
            && copy_short_ascii(dst, key)
        {
            self.arena_used = (start + n) as u16;
            let text = TextRef {
                offset: start as u32,
                len: n as u32,
            };
            return (Some(text), TextOutcome::default());
        }
        let (t, o) = self.store_text_general(key, MAX_KEY_BYTES, store, false);
        if o.truncated && t.len == 0 && !key.is_empty() {
            return (None, o);
        }
        (Some(t), o)
    }

    /// The overflow node holding `key`, if any.
    fn find_overflow_attribute<S: ChunkStore + ?Sized>(
        &self,
        key: &[u8],
        store: &S,
    ) -> Option<(u32, AttributeNode)> {
        let mut link = self.overflow_attributes[0];
        let mut hops = 0usize;
        while link != 0 && hops < MAX_COUNT_LIMIT as usize {
            let at = link - 1;
            let node: AttributeNode = self.read_plain_own(at, store)?;
            let a = node.attribute;
            if a.key_len as usize == key.len() && self.text_equals(a.key_ref(), key, store) {
                return Some((at, node));
            }
            link = node.next;
            hops += 1;
        }
        None
    }

    /// Links the entry at `at` (whose own link is 0) at the end of a list.
    fn append_to_list<S: ChunkStore + ?Sized>(&mut self, list: ListName, at: u32, store: &S) {
        let ends = match list {
            ListName::Attributes => self.overflow_attributes,
            ListName::Events => self.events,
            ListName::Links => self.links,
        };
        if ends[1] != 0 {
            let tail = ends[1] - 1;
            let offset = match list {
                ListName::Attributes => std::mem::offset_of!(AttributeNode, next),
                ListName::Events => std::mem::offset_of!(EventEntry, next),
                ListName::Links => std::mem::offset_of!(LinkEntry, next),
            };
            self.write_at(tail + offset as u32, &(at + 1).to_ne_bytes(), store);
        }
        let ends = match list {
            ListName::Attributes => &mut self.overflow_attributes,
            ListName::Events => &mut self.events,
            ListName::Links => &mut self.links,
        };
        if ends[0] == 0 {
            ends[0] = at + 1;
        }
        ends[1] = at + 1;
    }

    /// Stores the attributes of an event or link at a fresh array: distinct
    /// keys (the last value of a repeated key wins), at most `limit`. The
    /// array's offset, the count kept, the count dropped, and what
    /// happened to the text.
    fn store_item_attributes<S: ChunkStore + ?Sized>(
        &mut self,
        attributes: &[(&[u8], ValueInput)],
        limit: u32,
        limits: &SpanLimits,
        store: &S,
    ) -> (u32, u16, u16, TextOutcome) {
        let key_of = |k: &[u8]| -> usize { cut_key(k).len() };
        // An empty key is dropped and counted (OpenTelemetry: a key is a
        // non-empty string), never stored.
        let empty = attributes.iter().filter(|(k, _)| k.is_empty()).count();
        let distinct: usize = (0..attributes.len())
            .filter(|&i| {
                let k = &attributes[i].0[..key_of(attributes[i].0)];
                !k.is_empty()
                    && !attributes[i + 1..]
                        .iter()
                        .any(|(later, _)| &later[..key_of(later)] == k)
            })
            .count();
        let keep = distinct.min(limit as usize).min(MAX_COUNT_LIMIT as usize);
        let mut dropped = distinct - keep + empty;
        let size = std::mem::size_of::<AttributeRecord>();
        let mut outcome = TextOutcome::default();
        let Some(table) = self.alloc(keep * size, store) else {
            return (0, 0, (distinct.min(u16::MAX as usize)) as u16, outcome);
        };
        let mut kept = 0usize;
        for (i, (key, value)) in attributes.iter().enumerate() {
            if kept == keep {
                break;
            }
            let key = &key[..key_of(key)];
            if key.is_empty()
                || attributes[i + 1..]
                    .iter()
                    .any(|(later, _)| &later[..key_of(later)] == key)
            {
                continue; // dropped (counted above), or a later value wins
            }
            let (key_ref, key_outcome) = self.store_key(key, store);
            let Some(key_ref) = key_ref else {
                dropped += 1;
                continue;
            };
            let (kind, word, o) = self.store_value(value, limits, store);
            if key.len() < attributes[i].0.len() {
                // A key past MAX_KEY_BYTES, cut: said and counted, as for
                // a span's attributes (`note_cut_key`).
                self.note_cut_key();
                outcome.truncated = true;
            }
            outcome.merge(o);
            outcome.merge(key_outcome);
            let record = AttributeRecord {
                key: key_ref.offset,
                key_len: key_ref.len as u16,
                value_kind: kind as u8,
                room: 0,
                value: word,
            };
            self.write_plain(table + (kept * size) as u32, &record, store);
            kept += 1;
        }
        (
            table,
            kept as u16,
            dropped.min(u16::MAX as usize) as u16,
            outcome,
        )
    }

    /// Adds an event with its attributes. Err when the event count limit
    /// is reached or its entry does not fit (counted). Ok says what
    /// happened to its text and whether attributes were dropped (counted on
    /// the event).
    pub fn add_event<S: ChunkStore + ?Sized>(
        &mut self,
        name: &[u8],
        time_unix_ns: u64,
        attributes: &[(&[u8], ValueInput)],
        limits: &SpanLimits,
        store: &S,
    ) -> Result<(TextOutcome, bool), NotStored> {
        self.add_event_with_dropped(name, time_unix_ns, attributes, 0, limits, store)
    }

    /// `add_event` for an event that already lost `dropped_before`
    /// attributes (another SDK's limit, before it reached spanguard): the
    /// event's dropped count is theirs plus spanguard's own, saturating.
    /// The bool says whether spanguard itself dropped any.
    pub fn add_event_with_dropped<S: ChunkStore + ?Sized>(
        &mut self,
        name: &[u8],
        time_unix_ns: u64,
        attributes: &[(&[u8], ValueInput)],
        dropped_before: u32,
        limits: &SpanLimits,
        store: &S,
    ) -> Result<(TextOutcome, bool), NotStored> {
        let item = ItemText {
            list: ListName::Events,
            text: name,
            text_limit: MAX_NAME_BYTES,
            attribute_limit: limits.event_attribute_count,
            dropped_before,
        };
        self.add_item(
            item,
            attributes,
            limits,
            store,
            |name, attributes, kept, dropped| EventEntry {
                name,
                time_unix_ns,
                attributes,
                attribute_count: kept,
                dropped_attributes: dropped,
                next: 0,
                _reserved: 0,
            },
        )
    }

    /// Adds a link with its attributes, like `add_event`.
    pub fn add_link<S: ChunkStore + ?Sized>(
        &mut self,
        to: LinkContext,
        tracestate: &[u8],
        attributes: &[(&[u8], ValueInput)],
        limits: &SpanLimits,
        store: &S,
    ) -> Result<(TextOutcome, bool), NotStored> {
        self.add_link_with_dropped(to, tracestate, attributes, 0, limits, store)
    }

    /// `add_link` for a link that already lost `dropped_before`
    /// attributes, like `add_event_with_dropped`.
    pub fn add_link_with_dropped<S: ChunkStore + ?Sized>(
        &mut self,
        to: LinkContext,
        tracestate: &[u8],
        attributes: &[(&[u8], ValueInput)],
        dropped_before: u32,
        limits: &SpanLimits,
        store: &S,
    ) -> Result<(TextOutcome, bool), NotStored> {
        let item = ItemText {
            list: ListName::Links,
            text: tracestate,
            text_limit: MAX_TRACESTATE_BYTES,
            attribute_limit: limits.link_attribute_count,
            dropped_before,
        };
        self.add_item(
            item,
            attributes,
            limits,
            store,
            |tracestate, attributes, kept, dropped| LinkEntry {
                trace_id: to.trace_id,
                span_id: to.span_id,
                tracestate,
                attributes,
                attribute_count: kept,
                dropped_attributes: dropped,
                trace_flags: to.trace_flags,
                remote: to.remote_bits(),
                _reserved: [0; 2],
                next: 0,
            },
        )
    }

    /// The body of `add_event` and `add_link`: the count limit, the entry's
    /// room (taken before its text and attributes, so an item is whole or
    /// absent), its text, its attributes, then the entry `make` builds from
    /// them, linked at the end of its list.
    fn add_item<E: Plain, S: ChunkStore + ?Sized>(
        &mut self,
        item: ItemText,
        attributes: &[(&[u8], ValueInput)],
        limits: &SpanLimits,
        store: &S,
        make: impl FnOnce(TextRef, u32, u16, u16) -> E,
    ) -> Result<(TextOutcome, bool), NotStored> {
        let (count, limit) = match item.list {
            ListName::Links => (self.link_count, limits.link_count),
            _ => (self.event_count, limits.event_count),
        };
        let refuse = |r: &mut SpanRecord, why: NotStored| {
            match item.list {
                ListName::Links => count_one(&mut r.rest_mut().dropped_links),
                _ => count_one(&mut r.rest_mut().dropped_events),
            }
            Err(why)
        };
        if count as u32 >= limit.min(MAX_COUNT_LIMIT) {
            return refuse(self, NotStored::Limit);
        }
        let Some(at) = self.alloc(std::mem::size_of::<E>(), store) else {
            return refuse(self, NotStored::NoRoom);
        };
        let (text, mut outcome) = self.store_text(item.text, item.text_limit, store);
        let (table, kept, dropped, o) =
            self.store_item_attributes(attributes, item.attribute_limit, limits, store);
        outcome.merge(o);
        // Saturating at u16::MAX, as the span's own dropped counts do.
        let counted = (dropped as u32)
            .saturating_add(item.dropped_before)
            .min(u16::MAX as u32) as u16;
        self.write_plain(at, &make(text, table, kept, counted), store);
        self.append_to_list(item.list, at, store);
        match item.list {
            ListName::Links => self.link_count += 1,
            _ => self.event_count += 1,
        }
        Ok((outcome, dropped > 0))
    }

    /// Drops the span's `events` oldest events and `links` oldest links
    /// (fewer when it holds fewer), counting them in its dropped counts:
    /// what an OpenTelemetry SDK does past its limit, for a bridge whose
    /// SDK evicted events or links it had already passed on. Their room in
    /// the span's chunks stays taken until the span is freed.
    pub fn drop_oldest<S: ChunkStore + ?Sized>(&mut self, events: u32, links: u32, store: &S) {
        self.unlink_oldest(ItemList::Events, events, true, store);
        self.unlink_oldest(ItemList::Links, links, true, store);
    }

    /// `drop_oldest` without counting them: for a bridge that counted
    /// them dropped already (`add_dropped`) as its SDK evicted them, so
    /// that a span killed open carried the count.
    pub fn drop_oldest_uncounted<S: ChunkStore + ?Sized>(
        &mut self,
        events: u32,
        links: u32,
        store: &S,
    ) {
        self.unlink_oldest(ItemList::Events, events, false, store);
        self.unlink_oldest(ItemList::Links, links, false, store);
    }

    /// Takes the first `n` entries off a list (events or links; fewer when
    /// it holds fewer), one at a time, each in the stores of
    /// `UnlinkStore::IN_ORDER`, counting them dropped when `counted`. A
    /// list whose entry cannot be read ends there.
    fn unlink_oldest<S: ChunkStore + ?Sized>(
        &mut self,
        list: ItemList,
        n: u32,
        counted: bool,
        store: &S,
    ) {
        for _ in 0..n {
            let Some(next) = self.first_entry_next(list, store) else {
                return;
            };
            for step in UnlinkStore::IN_ORDER {
                if counted || step != UnlinkStore::CountDropped {
                    self.unlink_first_store(list, step, next);
                }
            }
        }
    }

    /// The link of the first entry of `list` to the one after it: 0 for
    /// none, and for the last one its count says it holds (the list is
    /// then left empty, whatever a broken link says). None when the list
    /// is empty or the entry cannot be read.
    pub(crate) fn first_entry_next<S: ChunkStore + ?Sized>(
        &self,
        list: ItemList,
        store: &S,
    ) -> Option<Link> {
        let (head, count) = match list {
            ItemList::Links => (self.links[0], self.link_count),
            ItemList::Events => (self.events[0], self.event_count),
        };
        if count == 0 || head == 0 {
            return None;
        }
        let next = match list {
            ItemList::Links => self.read_plain_own::<LinkEntry, S>(head - 1, store)?.next(),
            ItemList::Events => self
                .read_plain_own::<EventEntry, S>(head - 1, store)?
                .next(),
        };
        Some(if count == 1 { 0 } else { next })
    }

    /// Makes one store (`step`) of taking the first entry off `list`, whose
    /// link to the entry after it is `next`. The stores are made in the
    /// order of `UnlinkStore::IN_ORDER`, each whole (volatile) and ordered
    /// before the next (a Release fence, as `store_replacing` orders its
    /// stores): a crash dump or a flight file holds the record as it was
    /// at the instant the process died, and reads the list as the entries
    /// from the head on, at most the count (`SpanView::entries`), and the
    /// dropped count beside it. In this order every such instant reads as
    /// a list whose every entry is either there or counted dropped:
    /// - dropped + 1 first: the entry is then both there and counted, one
    ///   dropped event or link too many. The other order (the head moved
    ///   first) would lose it from both: a dump may over-count one entry,
    ///   never lose one, since a count one high is a number a person can
    ///   live with, and an event that vanishes with nothing said breaks
    ///   the promise that every one is delivered or counted;
    /// - then the head (and, the list left empty, the tail): the list
    ///   reads from the next entry, its count one high, which the walk
    ///   never reaches (the last entry links none): exact;
    /// - then the count, one lower: exact.
    ///
    /// A list left empty has no ends: `append_to_list` would link a new
    /// entry after a stale tail, and `reset_rest` clears the ends only of
    /// a list its count says is used. (A copy made while another thread,
    /// one the signal did not stop, keeps dropping entries reads the
    /// fields at different instants and is not covered: a dump copies a
    /// record as it is, see `CrashFile::dump_slots`.)
    pub(crate) fn unlink_first_store(&mut self, list: ItemList, step: UnlinkStore, next: Link) {
        match step {
            UnlinkStore::CountDropped => {
                let rest = self.rest_mut();
                let counter = match list {
                    ItemList::Links => &mut rest.dropped_links,
                    ItemList::Events => &mut rest.dropped_events,
                };
                let dropped = counter.saturating_add(1);
                // SAFETY: a field of this record.
                unsafe { std::ptr::write_volatile(counter, dropped) };
            }
            UnlinkStore::Head => {
                let ends = match list {
                    ItemList::Links => &mut self.links,
                    ItemList::Events => &mut self.events,
                };
                // SAFETY: fields of this record.
                unsafe { std::ptr::write_volatile(&mut ends[0], next) };
                if next == 0 {
                    // SAFETY: as above.
                    unsafe { std::ptr::write_volatile(&mut ends[1], 0) };
                }
            }
            UnlinkStore::Length => {
                let count = match list {
                    ItemList::Links => &mut self.link_count,
                    ItemList::Events => &mut self.event_count,
                };
                let left = if next == 0 {
                    0
                } else {
                    count.saturating_sub(1)
                };
                // SAFETY: a field of this record.
                unsafe { std::ptr::write_volatile(count, left) };
            }
        }
        // Release: this store is in place before the next one is made
        // (pairs with nothing in-process; it orders what a crash dump or a
        // dead process's file shows).
        fence(Ordering::Release);
    }

    pub fn is_root(&self) -> bool {
        self.parent_span_id == [0; 8]
    }

    /// The chunks' bytes in use, for the crash dump: how many whole chunks
    /// hold the span's data.
    pub fn chunks_in_use(&self) -> u32 {
        self.rest().chunk_count
    }

    /// Calls `f` with each of the span's chunks, in order (the crash dump
    /// writes them after the slot). Async-signal-safe: reads only.
    pub fn for_each_chunk<S: ChunkStore + ?Sized>(&self, store: &S, mut f: impl FnMut(&[u8])) {
        let src = StoreSource(store);
        for ordinal in 0..self.rest().chunk_count {
            match src.chunk(self, ordinal) {
                Some(bytes) => f(bytes),
                None => f(&[0u8; CHUNK_BYTES]),
            }
        }
    }
}

/// The new value's text, when it replaces text of its kind
/// (`SpanRecord::store_replacing`).
#[derive(Clone, Copy)]
struct NewText<'a> {
    input: &'a [u8],
    /// UTF-8 text (cut and shared on character boundaries), not bytes.
    utf8: bool,
    /// The bytes the limit alone would keep of it (`usize::MAX`: all).
    limit_bytes: usize,
}

impl<'a> NewText<'a> {
    /// Whether the stored text is sure to be no longer than `old`: valid
    /// UTF-8 (nothing replaced, which could make it longer) or bytes, no
    /// longer than `old` once the limit cut it. (A check of the whole
    /// input, on the rare path of a value set again.)
    fn fits_in(&self, old: TextRef) -> bool {
        self.input.len().min(self.limit_bytes) <= old.len as usize
            && (!self.utf8 || simdutf8::basic::from_utf8(self.input).is_ok())
    }

    /// The text of `value` when the old value (`old_kind`) is text of the
    /// same kind.
    fn of(old_kind: u8, value: &ValueInput<'a>, char_limit: usize) -> Option<NewText<'a>> {
        match *value {
            ValueInput::Str(s) if old_kind == ValueKind::String as u8 => Some(NewText {
                input: s,
                utf8: true,
                limit_bytes: value_byte_limit(s, char_limit),
            }),
            ValueInput::Bytes(b) if old_kind == ValueKind::Bytes as u8 => Some(NewText {
                input: b,
                utf8: false,
                limit_bytes: char_limit,
            }),
            _ => None,
        }
    }
}

/// The bytes a stored value takes in its span's virtual space: a string's
/// or a bytes value's, a scalar array's elements; None for scalars, and
/// for string arrays, whose elements' text follows their table anywhere.
fn stored_extent(kind: u8, word: u64) -> Option<TextRef> {
    let t = unpack(word);
    let size = match ValueKind::from_u8(kind)? {
        ValueKind::String | ValueKind::Bytes | ValueKind::AnyValue | ValueKind::BoolArray => 1,
        ValueKind::IntArray | ValueKind::DoubleArray => 8,
        _ => return None,
    };
    Some(TextRef {
        offset: t.offset,
        len: t.len.checked_mul(size)?,
    })
}

/// The bytes a stored value `t` (`stored_extent`) owns: its own, or the
/// room a set again reserved with it (`AttributeRecord::room`), which only
/// a value in the chunks has. A room byte no power fits reads as none.
fn owned_room(t: TextRef, room: u8) -> TextRef {
    let reserved = match 1u32.checked_shl(room as u32) {
        Some(bytes) if room != 0 && t.offset >= OVERFLOW_BASE => bytes,
        _ => 0,
    };
    TextRef {
        offset: t.offset,
        len: t.len.max(reserved),
    }
}

/// What `add_item` stores for an event or a link besides its attributes.
struct ItemText<'a> {
    list: ListName,
    /// The event's name or the link's tracestate.
    text: &'a [u8],
    text_limit: usize,
    attribute_limit: u32,
    /// Attributes the item lost before it reached spanguard (a bridged
    /// SDK's limit), added to the count spanguard drops itself.
    dropped_before: u32,
}

#[derive(Clone, Copy)]
enum ListName {
    Attributes,
    Events,
    Links,
}

/// The lists `drop_oldest` takes entries off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ItemList {
    Events,
    Links,
}

/// The stores that take the first entry off an event or link list
/// (`SpanRecord::unlink_first_store`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnlinkStore {
    /// The list's dropped count, one higher.
    CountDropped,
    /// The head, to the entry after the first (both ends, to none, when
    /// there is none).
    Head,
    /// The list's count, one lower.
    Length,
}

impl UnlinkStore {
    /// The order they are made in: see `unlink_first_store`.
    pub(crate) const IN_ORDER: [UnlinkStore; 3] = [
        UnlinkStore::CountDropped,
        UnlinkStore::Head,
        UnlinkStore::Length,
    ];
}

/// Reads a span's chunks through a `ChunkStore` (the pool, or any store).
pub struct StoreSource<'s, S: ChunkStore + ?Sized>(pub &'s S);

impl<S: ChunkStore + ?Sized> OverflowSource for StoreSource<'_, S> {
    fn chunk<'a>(&'a self, record: &SpanRecord, ordinal: u32) -> Option<&'a [u8]> {
        let index = record.chunk_index(ordinal, |i| {
            self.0.chunk_ptr(i).map(|p| p.as_ptr() as *const u8)
        })?;
        let ptr = self.0.chunk_ptr(index)?;
        // SAFETY: a chunk is CHUNK_BYTES bytes of the pool's mapping, which
        // outlives the store; only its owner writes it.
        Some(unsafe { std::slice::from_raw_parts(ptr.as_ptr(), CHUNK_BYTES) })
    }
}

/// Calls `f` with the pieces of the bytes `t` names: one for the arena,
/// one per chunk crossed. Stops early at a chunk it cannot find.
#[inline]
fn for_each_piece(
    record: &SpanRecord,
    src: &dyn OverflowSource,
    t: TextRef,
    mut f: impl FnMut(&[u8]),
) {
    let (start, len) = (t.offset as usize, t.len as usize);
    if start < ARENA_BYTES {
        let end = start.saturating_add(len).min(ARENA_BYTES);
        f(&record.arena[start..end]);
        return;
    }
    let mut pos = start - ARENA_BYTES;
    let mut left = len;
    while left > 0 {
        let (ordinal, within) = (pos / CHUNK_BYTES, pos % CHUNK_BYTES);
        let Some(chunk) = src.chunk(record, ordinal as u32) else {
            return;
        };
        let n = left.min(CHUNK_BYTES - within);
        f(&chunk[within..within + n]);
        left -= n;
        pos += n;
    }
}

/// A copy of the plain value at `at`; None past what the span holds.
fn read_plain<T: Plain>(record: &SpanRecord, src: &dyn OverflowSource, at: u32) -> Option<T> {
    let mut v = T::default();
    let want = std::mem::size_of::<T>();
    let buf = as_bytes_mut(&mut v);
    let mut got = 0usize;
    for_each_piece(
        record,
        src,
        TextRef {
            offset: at,
            len: want as u32,
        },
        |piece| {
            buf[got..got + piece.len()].copy_from_slice(piece);
            got += piece.len();
        },
    );
    (got == want).then_some(v)
}

/// The width of the UTF-8 character that `first` starts; 0 if none does.
fn utf8_width(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 0,
    }
}

/// Text read from a span: its pieces, cut to the longest valid UTF-8
/// prefix (a record read back from disk may be torn or forged; a live one
/// always is valid).
#[derive(Clone, Copy)]
pub struct Text<'a> {
    record: &'a SpanRecord,
    src: &'a dyn OverflowSource,
    text: TextRef,
}

impl<'a> Text<'a> {
    /// The text `t` names; with `checked`, cut to its longest valid UTF-8
    /// prefix and to what exists (a record read back from disk).
    #[inline]
    fn new(
        record: &'a SpanRecord,
        src: &'a dyn OverflowSource,
        t: TextRef,
        checked: bool,
    ) -> Text<'a> {
        if !checked {
            // Written by this process: whole, and UTF-8 by construction.
            return Text {
                record,
                src,
                text: t,
            };
        }
        Text::checked(record, src, t)
    }

    #[inline(never)]
    fn checked(record: &'a SpanRecord, src: &'a dyn OverflowSource, t: TextRef) -> Text<'a> {
        let mut text = t;
        let mut carry = [0u8; 4];
        let mut carried = 0usize;
        let mut valid = 0usize;
        let mut seen = 0usize;
        let mut broken = false;
        for_each_piece(record, src, t, |piece| {
            if broken {
                return;
            }
            seen += piece.len();
            let mut p = piece;
            if carried > 0 {
                let width = utf8_width(carry[0]);
                let need = (width - carried).min(p.len());
                carry[carried..carried + need].copy_from_slice(&p[..need]);
                carried += need;
                p = &p[need..];
                if carried < width {
                    return;
                }
                if std::str::from_utf8(&carry[..width]).is_err() {
                    broken = true;
                    return;
                }
                valid += width;
                carried = 0;
            }
            match std::str::from_utf8(p) {
                Ok(_) => valid += p.len(),
                Err(e) => {
                    valid += e.valid_up_to();
                    let rest = &p[e.valid_up_to()..];
                    if e.error_len().is_some() || utf8_width(rest[0]) == 0 {
                        broken = true;
                    } else {
                        carry[..rest.len()].copy_from_slice(rest);
                        carried = rest.len();
                    }
                }
            }
        });
        let _ = seen;
        text.len = valid as u32;
        Text { record, src, text }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.text.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.text.len == 0
    }

    /// The text as one slice when it lies whole in the record's arena:
    /// names, keys and short values, nearly all text. The encoders write
    /// it at once instead of piece by piece.
    #[inline]
    pub fn in_arena(&self) -> Option<&'a [u8]> {
        self.record.arena_text(self.text)
    }

    /// Calls `f` with each piece, in order.
    #[inline]
    pub fn for_each_piece(&self, f: impl FnMut(&[u8])) {
        for_each_piece(self.record, self.src, self.text, f);
    }

    /// The text as one String (tests, the CLI).
    pub fn to_string_lossy(&self) -> String {
        let mut bytes = Vec::with_capacity(self.len());
        self.for_each_piece(|p| bytes.extend_from_slice(p));
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A scalar or a string that lies whole in its record's arena
/// (`SpanView::small_attribute`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SmallValue<'a> {
    Str(&'a [u8]),
    Int(i64),
    Double(f64),
    Bool(bool),
}

/// Raw bytes read from a span (a bytes value).
#[derive(Clone, Copy)]
pub struct Bytes<'a> {
    record: &'a SpanRecord,
    src: &'a dyn OverflowSource,
    bytes: TextRef,
}

impl<'a> Bytes<'a> {
    /// Bytes present (a torn record's reference is cut to what exists).
    pub fn len(&self) -> usize {
        let mut n = 0;
        for_each_piece(self.record, self.src, self.bytes, |p| n += p.len());
        n
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn for_each_piece(&self, f: impl FnMut(&[u8])) {
        for_each_piece(self.record, self.src, self.bytes, f);
    }

    /// The bytes in one slice: borrowed when they lie in one piece (the
    /// arena, or one chunk), else copied.
    pub fn contiguous(&self) -> std::borrow::Cow<'a, [u8]> {
        let (start, len) = (self.bytes.offset as usize, self.bytes.len as usize);
        if start < ARENA_BYTES {
            let end = start.saturating_add(len).min(ARENA_BYTES);
            return std::borrow::Cow::Borrowed(&self.record.arena[start..end]);
        }
        let within = (start - ARENA_BYTES) % CHUNK_BYTES;
        if within + len <= CHUNK_BYTES {
            let ordinal = ((start - ARENA_BYTES) / CHUNK_BYTES) as u32;
            let piece = self.src.chunk(self.record, ordinal);
            return std::borrow::Cow::Borrowed(piece.map_or(&[][..], |c| &c[within..within + len]));
        }
        let mut all = Vec::with_capacity(len);
        self.for_each_piece(|p| all.extend_from_slice(p));
        std::borrow::Cow::Owned(all)
    }
}

/// An array value read from a span.
#[derive(Clone, Copy)]
pub struct ArrayRef<'a> {
    record: &'a SpanRecord,
    src: &'a dyn OverflowSource,
    at: u32,
    count: u32,
    kind: ValueKind,
    checked: bool,
}

/// One element of an array value.
#[derive(Clone, Copy)]
pub enum Element<'a> {
    Str(Text<'a>),
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl<'a> ArrayRef<'a> {
    fn element_size(&self) -> u32 {
        match self.kind {
            ValueKind::BoolArray => 1,
            _ => 8,
        }
    }

    /// The elements that can be read, in order.
    pub fn elements(&self) -> impl Iterator<Item = Element<'a>> + use<'a> {
        let this = *self;
        let size = this.element_size();
        (0..this.count).map_while(move |i| {
            let at = this.at.checked_add(i.checked_mul(size)?)?;
            let mut word = [0u8; 8];
            let mut got = 0usize;
            for_each_piece(
                this.record,
                this.src,
                TextRef {
                    offset: at,
                    len: size,
                },
                |p| {
                    word[got..got + p.len()].copy_from_slice(p);
                    got += p.len();
                },
            );
            if got != size as usize {
                return None;
            }
            let w = u64::from_le_bytes(word);
            Some(match this.kind {
                ValueKind::IntArray => Element::Int(w as i64),
                ValueKind::DoubleArray => Element::Double(f64::from_bits(w)),
                ValueKind::BoolArray => Element::Bool(word[0] != 0),
                _ => {
                    let t = TextRef {
                        offset: u32::from_le_bytes(word[..4].try_into().expect("4")),
                        len: u32::from_le_bytes(word[4..].try_into().expect("4")),
                    };
                    Element::Str(Text::new(this.record, this.src, t, this.checked))
                }
            })
        })
    }
}

/// One attribute value read from a span.
#[derive(Clone, Copy)]
pub enum Value<'a> {
    Str(Text<'a>),
    Int(i64),
    Double(f64),
    Bool(bool),
    Bytes(Bytes<'a>),
    Array(ArrayRef<'a>),
    /// A complex value: its encoded OTLP `AnyValue` message
    /// (`span::any_value`), well formed.
    AnyValue(Bytes<'a>),
}

/// An event read from a span.
#[derive(Clone, Copy)]
pub struct EventView<'a> {
    pub entry: EventEntry,
    view: SpanView<'a>,
}

impl<'a> EventView<'a> {
    pub fn name(&self) -> Text<'a> {
        self.view.text(self.entry.name)
    }

    pub fn attributes(&self) -> impl Iterator<Item = (Text<'a>, Value<'a>)> + use<'a> {
        self.view
            .table(self.entry.attributes, self.entry.attribute_count as u32)
    }
}

/// A link read from a span.
#[derive(Clone, Copy)]
pub struct LinkView<'a> {
    pub entry: LinkEntry,
    view: SpanView<'a>,
}

impl<'a> LinkView<'a> {
    pub fn tracestate(&self) -> Text<'a> {
        self.view.text(self.entry.tracestate)
    }

    pub fn attributes(&self) -> impl Iterator<Item = (Text<'a>, Value<'a>)> + use<'a> {
        self.view
            .table(self.entry.attributes, self.entry.attribute_count as u32)
    }
}

/// The attribute records of a span (`SpanView::attribute_records`).
pub struct AttributeRecords<'a> {
    table: std::slice::Iter<'a, AttributeRecord>,
    link: Link,
    nodes_left: usize,
    view: SpanView<'a>,
}

impl AttributeRecords<'_> {
    /// The most records this walk yields: fixed when the walk was made,
    /// whatever the record says later (the protobuf encoder writes small
    /// attributes into room it reserved from this count, unchecked).
    #[inline]
    pub fn most(&self) -> usize {
        self.table.len() + self.nodes_left
    }
}

impl Iterator for AttributeRecords<'_> {
    type Item = AttributeRecord;

    #[inline]
    fn next(&mut self) -> Option<AttributeRecord> {
        if let Some(a) = self.table.next() {
            return Some(*a);
        }
        if self.link == 0 || self.nodes_left == 0 {
            return None;
        }
        let node: AttributeNode = read_plain(self.view.record, self.view.chunks, self.link - 1)?;
        self.link = node.next;
        self.nodes_left -= 1;
        Some(node.attribute)
    }
}

/// A span as a reader sees it: its record and where its chunks are. The
/// encoders read spans only through this, never through raw offsets.
#[derive(Clone, Copy)]
pub struct SpanView<'a> {
    pub record: &'a SpanRecord,
    pub chunks: &'a dyn OverflowSource,
    /// Read text with every check (a record from disk may be torn or
    /// forged); a live span's text needs none.
    checked: bool,
}

impl<'a> SpanView<'a> {
    /// A span this process recorded: its text is UTF-8 and its chunks are
    /// where its map says.
    pub fn new(record: &'a SpanRecord, chunks: &'a dyn OverflowSource) -> SpanView<'a> {
        SpanView {
            record,
            chunks,
            checked: false,
        }
    }

    /// A span read back from a crash dump or flight file: every text is
    /// cut to the valid UTF-8 that exists.
    pub fn from_disk(record: &'a SpanRecord, chunks: &'a dyn OverflowSource) -> SpanView<'a> {
        SpanView {
            record,
            chunks,
            checked: true,
        }
    }

    pub fn text(&self, t: TextRef) -> Text<'a> {
        Text::new(self.record, self.chunks, t, self.checked)
    }

    pub fn name(&self) -> Text<'a> {
        self.text(self.record.name)
    }

    /// A decoded attribute; None when its kind byte is unknown (a torn or
    /// forged record read back from disk).
    #[inline]
    pub fn attribute(&self, a: &AttributeRecord) -> Option<(Text<'a>, Value<'a>)> {
        let (record, src) = (self.record, self.chunks);
        let value = match ValueKind::from_u8(a.value_kind)? {
            ValueKind::String => Value::Str(self.text(a.text_value())),
            ValueKind::Int => Value::Int(a.value as i64),
            ValueKind::Double => Value::Double(f64::from_bits(a.value)),
            ValueKind::Bool => Value::Bool(a.value != 0),
            ValueKind::Bytes => Value::Bytes(Bytes {
                record,
                src,
                bytes: a.text_value(),
            }),
            ValueKind::AnyValue => {
                let b = Bytes {
                    record,
                    src,
                    bytes: a.text_value(),
                };
                // Read back from disk (a crash dump, the flight recorder),
                // its bytes may be torn: sent as they are, a broken
                // message would break the whole request. Unreadable then.
                if self.checked && !any_value::is_well_formed(&b.contiguous()) {
                    return None;
                }
                Value::AnyValue(b)
            }
            kind => Value::Array(ArrayRef {
                record,
                src,
                at: a.text_value().offset,
                count: a.text_value().len,
                kind,
                checked: self.checked,
            }),
        };
        Some((self.text(a.key_ref()), value))
    }

    /// An attribute whose key, and string value if it has one, lie whole
    /// in the record's arena, with a scalar or string value, read straight
    /// from its record for the encoders' fast path; None for anything
    /// else, and for every attribute of a span read back from disk (its
    /// text must be checked: `attribute`). The same key and value as
    /// `attribute` where it answers.
    #[inline(always)]
    pub fn small_attribute(&self, a: &AttributeRecord) -> Option<(&'a [u8], SmallValue<'a>)> {
        self.with_small_attribute(a, |key, value| (key, value))
    }

    /// `f` of what `small_attribute` reads, called in the arm of the one
    /// match on the stored kind: once inlined, `f` sees a value whose
    /// variant is known, so its own match on it folds away. Returning the
    /// value for `f` to match again cost the protobuf encoder two more
    /// jump-table dispatches an attribute (callgrind).
    #[inline(always)]
    pub fn with_small_attribute<R>(
        &self,
        a: &AttributeRecord,
        f: impl FnOnce(&'a [u8], SmallValue<'a>) -> R,
    ) -> Option<R> {
        if self.checked {
            return None;
        }
        let record: &'a SpanRecord = self.record;
        let key = record.arena_text(a.key_ref())?;
        // The stored kind matched once: through `ValueKind::from_u8` it
        // was matched twice.
        const STRING: u8 = ValueKind::String as u8;
        const INT: u8 = ValueKind::Int as u8;
        const DOUBLE: u8 = ValueKind::Double as u8;
        const BOOL: u8 = ValueKind::Bool as u8;
        Some(match a.value_kind {
            STRING => f(key, SmallValue::Str(record.arena_text(a.text_value())?)),
            INT => f(key, SmallValue::Int(a.value as i64)),
            DOUBLE => f(key, SmallValue::Double(f64::from_bits(a.value))),
            BOOL => f(key, SmallValue::Bool(a.value != 0)),
            _ => return None,
        })
    }

    /// The span's attribute records: the table's, then the nodes', in the
    /// order they were added. Bounded by the count, so a broken list ends.
    pub fn attribute_records(&self) -> AttributeRecords<'a> {
        let count = self.record.attribute_count as usize;
        let inline = count.min(INLINE_ATTRIBUTES);
        AttributeRecords {
            table: self.record.attributes[..inline].iter(),
            // The list's head is read only for a span that has nodes: its
            // line is one a small span never touches.
            link: if count > INLINE_ATTRIBUTES {
                self.record.overflow_attributes[0]
            } else {
                0
            },
            nodes_left: count - inline,
            view: *self,
        }
    }

    /// The span's readable attributes.
    pub fn attributes(&self) -> impl Iterator<Item = (Text<'a>, Value<'a>)> + use<'a> {
        let this = *self;
        self.attribute_records()
            .filter_map(move |a| this.attribute(&a))
    }

    /// Attributes the span dropped, including unreadable ones (an unknown
    /// kind, or a broken list: records read back from disk).
    pub fn dropped_attributes(&self) -> u32 {
        let (mut seen, mut unreadable) = (0u32, 0u32);
        for a in self.attribute_records() {
            seen += 1;
            unreadable += (ValueKind::from_u8(a.value_kind).is_none()
                || (self.checked
                    && a.value_kind == ValueKind::AnyValue as u8
                    && self.attribute(&a).is_none())) as u32;
        }
        let lost = (self.record.attribute_count as u32).saturating_sub(seen);
        self.record.rest().dropped_attributes as u32 + unreadable + lost
    }

    /// An attribute table of an event or link.
    fn table(&self, at: u32, count: u32) -> impl Iterator<Item = (Text<'a>, Value<'a>)> + use<'a> {
        let this = *self;
        let size = std::mem::size_of::<AttributeRecord>() as u32;
        (0..count)
            .map_while(move |i| {
                let a: AttributeRecord =
                    read_plain(this.record, this.chunks, at.checked_add(i * size)?)?;
                Some(this.attribute(&a))
            })
            .flatten()
    }

    /// The entries of a list (events or links) in the order they were
    /// added: `count` at most, so a broken list ends.
    fn entries<E: ListEntry>(
        &self,
        head: Link,
        count: u16,
    ) -> impl Iterator<Item = E> + use<'a, E> {
        let this = *self;
        // The head is read only when the count says there is one: its line
        // is one a small span never touches.
        let mut link = if count > 0 { head } else { 0 };
        std::iter::from_fn(move || {
            if link == 0 {
                return None;
            }
            let entry: E = read_plain(this.record, this.chunks, link - 1)?;
            link = entry.next();
            Some(entry)
        })
        .take(count as usize)
    }

    pub fn events(&self) -> impl Iterator<Item = EventView<'a>> + use<'a> {
        let view = *self;
        self.entries::<EventEntry>(self.record.events[0], self.record.event_count)
            .map(move |entry| EventView { entry, view })
    }

    pub fn links(&self) -> impl Iterator<Item = LinkView<'a>> + use<'a> {
        let view = *self;
        self.entries::<LinkEntry>(self.record.links[0], self.record.link_count)
            .map(move |entry| LinkView { entry, view })
    }
}

/// A key cut to `MAX_KEY_BYTES`, before a UTF-8 continuation byte, so
/// that the key compared and the key stored are the same.
#[inline(always)]
fn cut_key(key: &[u8]) -> &[u8] {
    if key.len() <= MAX_KEY_BYTES {
        return key;
    }
    cut_long_key(key)
}

#[cold]
#[inline(never)]
fn cut_long_key(key: &[u8]) -> &[u8] {
    let mut end = MAX_KEY_BYTES;
    while end > 0 && key[end] & 0xc0 == 0x80 {
        end -= 1;
    }
    &key[..end]
}

/// The largest index `<= max` that is a character boundary of `text`,
/// bytes known to be valid UTF-8 (or whose prefix up to the next character
/// after `max` is): a character begins at any byte that does not continue
/// one (`10xxxxxx`), so it looks at most three bytes back instead of
/// validating the text again.
fn floor_boundary_of_valid(text: &[u8], max: usize) -> usize {
    if max >= text.len() {
        return text.len();
    }
    let mut i = max;
    while i > 0 && text[i] & 0xC0 == 0x80 {
        i -= 1;
    }
    i
}

/// `floor_boundary_of_valid` for a `str`.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    floor_boundary_of_valid(s.as_bytes(), max)
}

// The layout the comment on SpanRecord describes.
const _: () = {
    // What the exporter reads and clears of every span: one line.
    assert!(CHUNK_COUNT_AT == 848);
    assert!(REST_AT + std::mem::size_of::<SpanRest>() <= 896);
    assert!(std::mem::offset_of!(SpanRecord, attributes) + 3 * 16 <= 128);
    assert!(std::mem::offset_of!(SpanRecord, arena).is_multiple_of(64));
    // Counters taken from the padding: the arena, and so a dump's layout,
    // where it was.
    assert!(std::mem::offset_of!(SpanRecord, arena) == 1024);
    assert!(std::mem::offset_of!(SpanRecord, cut_by) == 998);
    assert!(std::mem::size_of::<SpanRecord>().is_multiple_of(64));
    assert!(std::mem::size_of::<AttributeRecord>() == 16);
    assert!(std::mem::size_of::<AttributeNode>() == 24);
    assert!(std::mem::size_of::<EventEntry>() == 32);
    assert!(std::mem::size_of::<LinkEntry>() == 48);
};

/// A record's bytes as a crash dump or flight file holds them, for tests
/// that write such files by hand: trace id all `trace`, span id all
/// `span`, the header `header`, start 10 and end 20, the rest zero.
#[cfg(test)]
pub(crate) fn record_bytes_for_test(trace: u8, span: u8, header: u64) -> Vec<u8> {
    // SAFETY: all-zero bytes are an empty record.
    let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
    r.header = header.into();
    r.trace_id = [trace; 16];
    r.span_id = [span; 8];
    r.start_unix_ns = 10;
    r.end_unix_ns = 20;
    // SAFETY: the record's own bytes.
    unsafe {
        std::slice::from_raw_parts(
            (&*r as *const SpanRecord).cast::<u8>(),
            std::mem::size_of::<SpanRecord>(),
        )
    }
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    #[test]
    fn a_span_that_wrote_nothing_past_its_first_lines_needs_no_reset() {
        // The exporter skips `owned_chunks` and `reset_rest` for a span
        // `wrote_past_first_lines` says no to: for each shape, either it
        // says yes, or those two would change nothing and give no chunk.
        use crate::buffer::payload_pool::PayloadPool;
        use crate::span::limits::SpanLimits;
        let pool = PayloadPool::with_mib(1).expect("pool");
        let limits = SpanLimits::default();
        let long = vec![b'x'; 3 * CHUNK_BYTES];
        let to = LinkContext {
            trace_id: [3; 16],
            span_id: [4; 8],
            trace_flags: 1,
            remote: None,
        };
        let mut said = Vec::new();
        for shape in 0..8 {
            // SAFETY: all-zero bytes are an empty record.
            let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
            r.name = r.store_text(b"op", 256, &pool).0;
            r.set_attribute(b"k", &ValueInput::Int(7), &limits, &pool)
                .expect("set");
            match shape {
                0 => {}
                1 => {
                    r.set_attribute(b"prompt", &ValueInput::Str(&long), &limits, &pool)
                        .expect("set");
                }
                2 => r.rest_mut().dropped_links = 1,
                3 => r.signal = -1,
                4 => {
                    for i in 0..=INLINE_ATTRIBUTES as i64 {
                        let key = format!("k{i}");
                        r.set_attribute(key.as_bytes(), &ValueInput::Int(i), &limits, &pool)
                            .expect("set");
                    }
                }
                5 => {
                    r.add_event(b"e", 15, &[], &limits, &pool).expect("event");
                }
                6 => {
                    r.add_link(to, b"", &[], &limits, &pool).expect("link");
                }
                _ => r.status_code = STATUS_ERROR,
            }
            let wrote = r.wrote_past_first_lines();
            said.push(wrote);
            let bytes = |r: &SpanRecord| {
                // SAFETY: the record's own bytes, read while borrowed.
                unsafe {
                    std::slice::from_raw_parts(
                        r as *const SpanRecord as *const u8,
                        std::mem::size_of::<SpanRecord>(),
                    )
                }
                .to_vec()
            };
            let before = bytes(&r);
            let mut chunks = Vec::new();
            r.owned_chunks(&pool, |c| chunks.push(c));
            r.reset_rest();
            if !wrote {
                assert!(chunks.is_empty(), "shape {shape}");
                assert!(before == bytes(&r), "shape {shape}: reset changed it");
            } else {
                assert!(!chunks.is_empty() || before != bytes(&r), "shape {shape}");
            }
        }
        // A status code lies on the first line, as do the attribute and
        // its name: only those two shapes wrote nothing past it.
        assert_eq!(said, [false, true, true, true, true, true, true, false]);
    }

    /// A store of `n` chunks on the heap, for tests below the pool.
    struct TestStore {
        chunks: RefCell<Vec<Box<[u8; CHUNK_BYTES]>>>,
        next: Cell<u32>,
    }

    impl TestStore {
        fn new(n: u32) -> TestStore {
            TestStore {
                chunks: RefCell::new((0..n).map(|_| Box::new([0xAAu8; CHUNK_BYTES])).collect()),
                next: Cell::new(0),
            }
        }
    }

    impl ChunkStore for TestStore {
        fn take_chunk(&self) -> Option<u32> {
            let n = self.next.get();
            (n < self.chunks.borrow().len() as u32).then(|| {
                self.next.set(n + 1);
                n
            })
        }
        fn chunk_ptr(&self, index: u32) -> Option<NonNull<u8>> {
            let mut chunks = self.chunks.borrow_mut();
            chunks
                .get_mut(index as usize)
                .map(|c| NonNull::new(c.as_mut_ptr()).expect("boxed"))
        }
    }

    fn blank() -> Box<SpanRecord> {
        // SAFETY: SpanRecord is plain data for which all-zero bytes are a
        // valid (empty) value.
        unsafe { Box::new(std::mem::zeroed()) }
    }

    fn string(view: &SpanView, key: &str) -> Option<String> {
        view.attributes().find_map(|(k, v)| match v {
            Value::Str(t) if k.to_string_lossy() == key => Some(t.to_string_lossy()),
            _ => None,
        })
    }

    /// The record's bytes with the arena past `arena_used` left out: what
    /// a failed fast path may have written there is unused.
    fn used_bytes(r: &SpanRecord) -> Vec<u8> {
        // SAFETY: the record's own bytes, read while borrowed.
        let mut b = unsafe {
            std::slice::from_raw_parts(
                r as *const SpanRecord as *const u8,
                std::mem::size_of::<SpanRecord>(),
            )
        }
        .to_vec();
        let arena = std::mem::offset_of!(SpanRecord, arena);
        b[arena + r.arena_used as usize..arena + ARENA_BYTES].fill(0);
        b
    }

    #[test]
    fn the_short_attribute_path_stores_what_set_attribute_stores() {
        // Each attribute set on one record by `set_attribute` and on
        // another as `Tracer::set_attribute` sets it (the short path, else
        // `set_attribute`): the two records stay the same, byte for byte,
        // and the short path takes only what `set_attribute` would have
        // stored with nothing to say.
        let long_key = [b'k'; 40];
        let keys: Vec<Vec<u8>> = [
            &b"k\xff"[..],
            b"a",
            b"ab",
            b"abc",
            b"key7bts",
            b"eight_by",
            b"sixteen_bytes_ok",
            b"seventeen_bytes_x",
            b"gen_ai.usage.input_tokens",
            b"thirty_two_bytes_of_key_exactly!",
            b"thirty_three_bytes_of_key_exactly",
            &long_key,
            b"",
            b"caf\xc3\xa9",
            b"b",
            b"a",
            b"gen_ai.usage.input_tokens",
            b"gen_ai.request.model",
        ]
        .iter()
        .map(|k| k.to_vec())
        .collect();
        let text32 = [b't'; 32];
        let text33 = [b't'; 33];
        let values = [
            ValueInput::Int(-7),
            ValueInput::Double(2.5),
            ValueInput::Bool(true),
            ValueInput::Str(b""),
            ValueInput::Str(b"gpt-4o"),
            ValueInput::Str(&text32),
            ValueInput::Str(&text33),
            ValueInput::Str(b"na\xc3\xafve"),
            ValueInput::Str(b"bad\xff"),
            ValueInput::Bytes(b"raw"),
        ];
        let limited = SpanLimits {
            attribute_count: 5,
            attribute_value_length: 5,
            ..SpanLimits::default()
        };
        let (mut short, mut other) = (0, 0);
        for limits in [SpanLimits::default(), limited] {
            for shift in 0..values.len() {
                let (mut a, mut b) = (blank(), blank());
                // One store each: they take the same chunks in turn.
                let (store_a, store_b) = (TestStore::new(64), TestStore::new(64));
                // Past the slot's table too: the keys again with a number.
                for round in 0..5 {
                    for (i, key) in keys.iter().enumerate() {
                        let mut key = key.clone();
                        if round > 0 && !key.is_empty() {
                            key.extend_from_slice(format!(".{round}").as_bytes());
                        }
                        let value = &values[(i + shift) % values.len()];
                        let want = a.set_attribute(&key, value, &limits, &store_a);
                        if b.try_set_short_attribute(&key, value, &limits) {
                            short += 1;
                            assert_eq!(want, Ok(TextOutcome::default()), "{key:?}");
                        } else {
                            other += 1;
                            assert_eq!(b.set_attribute(&key, value, &limits, &store_b), want);
                        }
                        assert!(used_bytes(&a) == used_bytes(&b), "{key:?} {value:?}");
                    }
                }
            }
        }
        assert!(short > 100 && other > 100, "{short} {other}");
    }

    #[test]
    fn short_copies_copy_every_byte_and_nothing_else() {
        let src: Vec<u8> = (1..=80).collect();
        for n in 0..=80 {
            let mut dst = [0u8; 82];
            copy_text(&mut dst[1..1 + n], &src[..n]);
            assert_eq!(dst[0], 0, "{n}");
            assert_eq!(&dst[1..1 + n], &src[..n], "{n}");
            assert!(dst[1 + n..].iter().all(|&b| b == 0), "{n}");
        }
    }

    #[test]
    fn the_short_ascii_path_checks_every_byte_of_every_length() {
        let store = TestStore::new(0);
        let ascii: Vec<u8> = (0..40).map(|i| b'a' + i % 26).collect();
        for n in 0..=33 {
            let mut r = blank();
            r.store_text(b"x", 8, &store);
            let (t, o) = r.store_text(&ascii[..n], 64, &store);
            assert_eq!(r.arena_bytes(t), Some(&ascii[..n]), "{n}");
            assert_eq!((t.offset, o), (1, TextOutcome::default()), "{n}");
            for bad in 0..n {
                let mut input = ascii[..n].to_vec();
                input[bad] = 0xff;
                let mut r = blank();
                let (t, o) = r.store_text(&input, 64, &store);
                let want = [&ascii[..bad], "\u{FFFD}".as_bytes(), &ascii[bad + 1..n]].concat();
                assert_eq!(r.arena_bytes(t), Some(&want[..]), "{n} {bad}");
                assert!(o.replaced_utf8 && !o.truncated, "{n} {bad}");
            }
        }
        let mut r = blank();
        let (t, o) = r.store_text(&ascii[..20], 8, &store);
        assert_eq!((r.arena_bytes(t), o.truncated), (Some(&ascii[..8]), true));
        assert_eq!(r.rest().truncated_values, 1);
    }

    #[test]
    fn copy_long_ascii_copies_every_byte_and_finds_any_high_bit() {
        // The copy this CPU takes (AVX2 where it has it), and the SSE2
        // one every x86-64 without AVX2 takes.
        type Copy = fn(&mut [u8], &[u8]) -> usize;
        let copies: [(&str, Copy); 2] = [
            ("this CPU's", copy_long_ascii),
            ("sse2", copy_long_ascii_sse2),
        ];
        let src: Vec<u8> = (0..1100).map(|i| b' ' + (i % 90) as u8).collect();
        // Within a block, a run, past the runs (blocks, then a tail).
        for (path, copy) in copies {
            for n in [
                0, 1, 15, 16, 63, 64, 65, 127, 128, 200, 255, 256, 257, 300, 511, 512, 575, 1100,
            ] {
                let mut dst = vec![0u8; n];
                assert_eq!(copy(&mut dst, &src[..n]), n, "{path}");
                assert_eq!(dst, src[..n], "{path}");
                for bad in [0, n / 3, n / 2, n.saturating_sub(1)] {
                    if bad >= n {
                        continue;
                    }
                    for high in [0x80, 0xc3, 0xff] {
                        let mut input = src[..n].to_vec();
                        input[bad] = high;
                        let mut dst = vec![0u8; n];
                        let ascii = copy(&mut dst, &input);
                        // The ASCII prefix it reports is copied, and ends
                        // less than a run before the high byte.
                        assert!(
                            ascii <= bad && bad - ascii < RUN,
                            "{path} {n} {bad} {high}: {ascii}"
                        );
                        assert_eq!(dst[..ascii], input[..ascii], "{path} {n} {bad} {high}");
                    }
                }
            }
        }
    }

    /// A small deterministic generator (xorshift64), so that a failure of
    /// a randomized test repeats.
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// Stores `name` and then `input` in two spans, each with a pool of
    /// `pool` chunks: through `store_text` (the long ASCII path, where it
    /// applies) and through the general path. Both must keep the same
    /// text, say and count the same, and use the same space.
    fn assert_long_path_matches_general(
        name: &[u8],
        input: &[u8],
        limit: usize,
        pool: u32,
        what: &str,
        left_to_general: bool,
    ) {
        let (fast_store, general_store) = (TestStore::new(pool), TestStore::new(pool));
        let (mut fast, mut general) = (blank(), blank());
        fast.store_text(name, usize::MAX, &fast_store);
        general.store_text(name, usize::MAX, &general_store);
        let (ft, fo) = fast.store_text(input, limit, &fast_store);
        let (gt, go) = general.store_text_general(input, limit, &general_store, true);
        assert_eq!((ft, fo), (gt, go), "{what}");
        let (fs, gs) = (StoreSource(&fast_store), StoreSource(&general_store));
        assert_eq!(
            SpanView::new(&fast, &fs).text(ft).to_string_lossy(),
            SpanView::new(&general, &gs).text(gt).to_string_lossy(),
            "{what}"
        );
        let space = |r: &SpanRecord| (r.arena_used, r.overflow_used);
        assert_eq!(space(&fast), space(&general), "{what}");
        // The chunks: as many, or (`left_to_general`, the edge cases'
        // test) one more where a try of the long path
        // took a second chunk for text it then left to the general path
        // (not ASCII, a limit inside a character), which kept less. The
        // span keeps it for its next values; it goes back with the span.
        let (fc, gc) = (fast.rest().chunk_count, general.rest().chunk_count);
        let extra = if left_to_general { 1 } else { 0 };
        assert!(
            fc == gc || fc == gc + extra,
            "{what}: {fc} chunks against {gc}"
        );
        let counts = |r: &SpanRecord| (r.rest().truncated_values, r.rest().replaced_utf8);
        assert_eq!(counts(&fast), counts(&general), "{what}");
    }

    #[test]
    fn long_text_at_the_edges_of_the_copys_runs_stores_as_the_general_path_does() {
        // The long ASCII path copies and checks a run of RUN bytes at
        // once, then blocks of 64, then a tail; values past the arena go
        // to chunks of CHUNK_BYTES. A byte that is not ASCII at the first,
        // a middle and the last byte of a value, of a run and of a chunk,
        // a character across a run's or a chunk's edge, and limits at,
        // just under and inside such a character: each as the general
        // path stores it (replaced, cut, counted alike).
        let n = 2 * CHUNK_BYTES;
        let ascii: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
        let with = |at: usize, bytes: &[u8]| {
            let mut t = ascii.clone();
            t.splice(at..at + bytes.len(), bytes.iter().copied());
            t
        };
        let mut inputs = vec![ascii.clone()];
        for at in [
            0,
            1,
            RUN - 1,
            RUN,
            CHUNK_BYTES / 2 + 7,
            CHUNK_BYTES - 1,
            CHUNK_BYTES,
            n - RUN - 1,
            n - 64,
            n - 1,
        ] {
            inputs.push(with(at, b"\xff"));
            inputs.push(with(at, b"\x80"));
        }
        // A character across a run's edge, a chunk's edge, the last
        // block's, and one that ends the value.
        for at in [RUN - 2, CHUNK_BYTES - 1, n - 65, n - 4] {
            inputs.push(with(at, "😀".as_bytes()));
        }
        // Values past the runs: a tail, blocks and a tail.
        inputs.push(ascii[..RUN + 63].to_vec());
        inputs.push(with(RUN + 64 + 70, "é".as_bytes())[..RUN + 64 + 100].to_vec());
        for input in &inputs {
            let len = input.len();
            for limit in [
                len,
                len - 1,
                RUN,
                RUN - 1,
                CHUNK_BYTES,
                CHUNK_BYTES + 1,
                usize::MAX,
            ] {
                for pool in [0, 2, 3, 8] {
                    let what = format!("{len} bytes, limit {limit}, pool {pool}");
                    assert_long_path_matches_general(b"name", input, limit, pool, &what, true);
                }
            }
        }
        // And the text kept is the input's, whole, where nothing cut it.
        let store = TestStore::new(3);
        let mut r = blank();
        let (t, o) = r.store_text(&ascii, n, &store);
        assert_eq!(o, TextOutcome::default());
        let src = StoreSource(&store);
        assert_eq!(
            SpanView::new(&r, &src).text(t).to_string_lossy(),
            String::from_utf8_lossy(&ascii)
        );
    }

    #[test]
    fn long_text_stores_as_the_general_path_does() {
        // The long ASCII path (copy and check in one pass) against the
        // general one (plan, then copy) for every kind of long text: in
        // the arena or the chunks, cut by the limit or by the pool, and
        // text that is not ASCII before the limit, after it, or at all.
        let ascii: Vec<u8> = (0..9000).map(|i| b'a' + (i % 26) as u8).collect();
        let with = |at: usize, bytes: &[u8]| {
            let mut t = ascii.clone();
            t.splice(at..at + bytes.len(), bytes.iter().copied());
            t
        };
        let inputs: Vec<Vec<u8>> = vec![
            ascii[..33].to_vec(),
            ascii[..400].to_vec(),
            ascii.clone(),
            with(0, "é".as_bytes()),
            with(4100, "😀".as_bytes()),
            with(8990, b"\xff"),
            "ab€😀ü".repeat(900).into_bytes(),
            // A dash late in English text (the prefix is kept, the rest
            // copied after it), one the limit cuts through, and one with
            // an invalid byte after it (the general path's).
            with(5000, "\u{2014}".as_bytes()),
            with(4094, "😀".as_bytes()),
            {
                let mut t = with(8990, b"\xff");
                t.splice(5000..5003, "\u{2014}".bytes());
                t
            },
        ];
        for input in &inputs {
            for limit in [40, 100, 4096, 8995, usize::MAX] {
                for pool in [0, 1, 3] {
                    let what = format!("{} bytes, limit {limit}, pool {pool}", input.len());
                    assert_long_path_matches_general(b"name", input, limit, pool, &what, false);
                }
            }
        }
    }

    #[test]
    fn random_long_text_stores_as_the_general_path_does() {
        // Mostly ASCII with a few bytes of anything (valid characters cut
        // anywhere, stray continuation bytes, 0xff) at random places, any
        // limit, any pool: the long path must give what the general one
        // gives, or leave the text to it.
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        let odd: [&[u8]; 6] = [
            b"\xff",
            b"\x80",
            "é".as_bytes(),
            "€".as_bytes(),
            "😀".as_bytes(),
            &[0xf0, 0x9f],
        ];
        for case in 0..3000 {
            let len = 33 + (next() % 12_000) as usize;
            let mut input: Vec<u8> = (0..len).map(|_| b' ' + (next() % 95) as u8).collect();
            for _ in 0..(next() % 3) {
                let bytes = odd[(next() % odd.len() as u64) as usize];
                let at = (next() as usize) % len;
                let end = (at + bytes.len()).min(len);
                input[at..end].copy_from_slice(&bytes[..end - at]);
            }
            let limit = match next() % 3 {
                0 => usize::MAX,
                _ => (next() % (len as u64 + 10)) as usize,
            };
            let pool = (next() % 5) as u32;
            let name = vec![b'n'; (next() % 2000) as usize];
            let what = format!(
                "case {case}: {len} bytes, limit {limit}, pool {pool}, name {}",
                name.len()
            );
            assert_long_path_matches_general(&name, &input, limit, pool, &what, false);
        }
    }

    #[test]
    fn text_is_valid_exactly_when_std_says_so() {
        // simdutf8 decides what plan_text keeps as is: the edge cases of
        // UTF-8 (overlong forms, surrogates, past U+10FFFF, cut sequences)
        // and random bytes, alone and after a long ASCII run.
        let edges: [&[u8]; 12] = [
            b"\xc0\xaf",
            b"\xe0\x80\xaf",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\xf5\x80\x80\x80",
            b"\xe2\x82",
            b"\xf0\x9f\x98",
            b"\x80",
            "é€😀".as_bytes(),
            b"\xef\xbf\xbf",
            b"\xf4\x8f\xbf\xbf",
            b"\xc2\x80",
        ];
        let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for e in edges {
            inputs.push(e.to_vec());
            inputs.push([&[b'a'; 70][..], e, b"z"].concat());
        }
        for _ in 0..5000 {
            let len = (next() % 80) as usize;
            let mut v: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if next().is_multiple_of(2) {
                v = [vec![b'x'; (next() % 100) as usize], v].concat();
            }
            inputs.push(v);
        }
        for input in &inputs {
            let plan = plan_text(input, usize::MAX);
            let std_ok = std::str::from_utf8(input).is_ok();
            assert_eq!(plan.valid, std_ok, "{input:?}");
            assert_eq!(plan.replaced_utf8, !std_ok, "{input:?}");
        }
    }

    #[test]
    fn invalid_utf8_that_is_also_too_long_counts_both() {
        // Both cut points of the invalid-UTF-8 path: a valid run past the
        // limit, and a replacement character that no longer fits.
        let store = TestStore::new(0);
        let cases: [(&[u8], &[u8]); 2] = [
            (b"ab\xffcdefghijkl", "ab\u{FFFD}cde".as_bytes()),
            (b"abcdef\xffgh", b"abcdef"),
        ];
        for (input, want) in cases {
            let mut r = blank();
            let (t, o) = r.store_text(input, 8, &store);
            assert_eq!(r.arena_bytes(t), Some(want), "{input:?}");
            assert!(o.truncated && o.replaced_utf8, "{input:?} {o:?}");
            assert_eq!(
                (r.rest().truncated_values, r.rest().replaced_utf8),
                (1, 1),
                "{input:?}"
            );
        }
    }

    #[test]
    fn text_is_cut_on_a_char_boundary_at_the_limit() {
        let store = TestStore::new(0);
        let mut r = blank();
        let (t, o) = r.store_text("aé€".as_bytes(), 4, &store);
        assert_eq!(
            SpanView::new(&r, &StoreSource(&store))
                .text(t)
                .to_string_lossy(),
            "aé"
        );
        assert!(o.truncated);
    }

    /// What OpenTelemetry keeps of `input` under a value length limit of
    /// `chars`: its first `chars` characters once invalid UTF-8 is
    /// replaced (as `String::from_utf8_lossy` replaces it).
    fn first_chars(input: &[u8], chars: usize) -> String {
        String::from_utf8_lossy(input).chars().take(chars).collect()
    }

    /// Stores `input` as a string value under `chars`, in the arena or the
    /// chunks, and checks the text, the outcome and the counters against
    /// `first_chars`.
    fn assert_value_keeps_first_chars(input: &[u8], chars: usize, store: &TestStore) {
        let mut r = blank();
        let (t, o) = r.store_value_text(input, chars, store);
        let want = first_chars(input, chars);
        let cut = String::from_utf8_lossy(input).chars().count() > chars;
        let got = SpanView::new(&r, &StoreSource(store))
            .text(t)
            .to_string_lossy();
        let case = format!(
            "{} bytes from {:?}, limit {chars}",
            input.len(),
            &input[..input.len().min(24)]
        );
        assert!(
            got == want,
            "{case}: kept {} bytes, want {}",
            got.len(),
            want.len()
        );
        assert_eq!(o.truncated, cut, "{case}");
        assert_eq!(o.replaced_utf8, want.contains('\u{FFFD}'), "{case}");
        assert_eq!(r.rest().truncated_values, cut as u16, "{case}");
    }

    #[test]
    fn a_value_limit_counts_characters_as_opentelemetry_does() {
        // "counting any character in it as 1" (OpenTelemetry's attribute
        // limits): 5 keeps "héllo" (6 bytes), five CJK characters (15
        // bytes), five emoji (20 bytes); each invalid sequence is one
        // character, its U+FFFD.
        let store = TestStore::new(64);
        let cases: [&[u8]; 9] = [
            b"hello world",
            "héllo wörld".as_bytes(),
            "日本語のテキストです".as_bytes(),
            "😀😁😂🤣😃😄".as_bytes(),
            "héllo".as_bytes(),
            b"ab\xffcdefgh",
            b"\xff\xfe\xfd\xfc\xfb\xfa\xf9",
            b"abcde\xff",
            "abcdé\u{1F600}".as_bytes(),
        ];
        for input in cases {
            for chars in [0, 1, 4, 5, 6, 7, 64, usize::MAX] {
                assert_value_keeps_first_chars(input, chars, &store);
            }
        }
        let mut r = blank();
        let (t, o) = r.store_value_text("日本語のテキストです".as_bytes(), 5, &store);
        assert_eq!(r.arena_bytes(t), Some("日本語のテ".as_bytes()));
        assert!(o.truncated);
        // Long text in the chunks, cut by characters there too.
        let prompt = "ab€😀ü".repeat(3_000);
        assert_value_keeps_first_chars(prompt.as_bytes(), 10_001, &store);
        assert_value_keeps_first_chars(prompt.repeat(2).as_bytes(), 15_000, &store);
    }

    /// `surely_fits_the_arena` is what lets a setter that must not wait
    /// (Go's, on its thread's own C stack) set values without the pool: a
    /// batch it passes takes no chunk, whatever the span holds already
    /// (values in the chunks, keys set again, the table full, invalid UTF-8
    /// that grows threefold). Batches it refuses are set anyway, with
    /// chunks, as the waiting setter would.
    #[test]
    fn a_batch_that_surely_fits_the_arena_takes_no_chunk() {
        let limits = SpanLimits::default();
        let mut next = xorshift(0x5eed_0041);
        let (mut passed, mut refused) = (0, 0);
        for _ in 0..300 {
            let store = TestStore::new(512);
            let mut r = blank();
            for _ in 0..40 {
                let n = 1 + (next() % 4) as usize;
                let batch: Vec<(Vec<u8>, Vec<u8>, bool)> = (0..n)
                    .map(|_| {
                        let text = |len: usize, next: &mut dyn FnMut() -> u64| -> Vec<u8> {
                            (0..len)
                                .map(|_| match next() % 8 {
                                    0 => 0xff,
                                    1 => 0xe2,
                                    _ => b'a' + (next() % 3) as u8,
                                })
                                .collect()
                        };
                        let key_len = 1 + (next() % 3) as usize;
                        let key = text(key_len, &mut next);
                        let value_len = match next() % 10 {
                            0 => (next() % 5000) as usize,
                            _ => (next() % 40) as usize,
                        };
                        (key, text(value_len, &mut next), next().is_multiple_of(5))
                    })
                    .collect();
                let text_bytes: usize = batch
                    .iter()
                    .map(|(k, v, int)| k.len() + if *int { 0 } else { v.len() })
                    .sum();
                let fits = r.surely_fits_the_arena(text_bytes, n);
                let taken = store.next.get();
                for (k, v, int) in &batch {
                    let value = if *int {
                        ValueInput::Int(v.len() as i64)
                    } else {
                        ValueInput::Str(v)
                    };
                    let _ = r.set_attribute(k, &value, &limits, &store);
                }
                if fits {
                    passed += 1;
                    assert_eq!(store.next.get(), taken, "a batch that fits took a chunk");
                } else {
                    refused += 1;
                }
            }
        }
        assert!(
            passed > 1000 && refused > 1000,
            "{passed} passed, {refused} refused"
        );
    }

    #[test]
    fn an_empty_key_is_never_stored_and_is_counted() {
        let store = TestStore::new(0);
        let limits = SpanLimits::default();
        let mut r = blank();
        assert_eq!(
            r.set_attribute(b"", &ValueInput::Int(1), &limits, &store),
            Err(NotStored::EmptyKey)
        );
        assert_eq!(r.attribute_count, 0);
        assert_eq!(r.rest().dropped_attributes, 1);
        assert_eq!(r.arena_used, 0, "nothing reserved for it");
    }

    #[test]
    fn a_key_past_the_key_limit_is_cut_and_an_items_cut_key_counted() {
        // Two keys that differ only past MAX_KEY_BYTES are cut to one key:
        // the second replaces the first's value (the tracer says and counts
        // each cut, tests/long_keys.rs). An event's attribute is cut, said
        // and counted here.
        let store = TestStore::new(4);
        let limits = SpanLimits::default();
        let mut r = blank();
        let long =
            |tail: &str| -> Vec<u8> { format!("{}{tail}", "k".repeat(MAX_KEY_BYTES)).into_bytes() };
        for (key, value) in [(long("first"), 1), (long("second"), 2)] {
            r.set_attribute(&key, &ValueInput::Int(value), &limits, &store)
                .expect("set");
        }
        assert_eq!(r.attribute_count, 1);
        let key = long("event");
        let (o, _) = r
            .add_event(b"e", 5, &[(&key[..], ValueInput::Int(3))], &limits, &store)
            .expect("event");
        assert!(o.truncated);
        assert_eq!(r.rest().truncated_values, 1);
        let (o, _) = r
            .add_event(
                b"e",
                5,
                &[(&key[..MAX_KEY_BYTES], ValueInput::Int(3))],
                &limits,
                &store,
            )
            .expect("event");
        assert!(!o.truncated, "a key of exactly MAX_KEY_BYTES is whole");
    }

    #[test]
    fn the_byte_boundary_of_valid_text_is_the_char_boundary() {
        for text in [
            "",
            "a",
            "héllo wörld",
            "日本語のテキスト",
            "😀a😁bc€",
            "ab€😀ü",
        ] {
            for max in 0..text.len() + 3 {
                // std's own boundary test, independent of ours.
                let want = (0..=max.min(text.len()))
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .expect("0 is a boundary");
                assert_eq!(
                    floor_boundary_of_valid(text.as_bytes(), max),
                    want,
                    "{text} at {max}"
                );
            }
        }
    }

    #[test]
    fn random_values_keep_their_first_characters() {
        // Any mix of ASCII, 2- to 4-byte characters and invalid bytes,
        // under any limit: the kept text is always the first characters.
        let mut next = xorshift(0x5eed_c4a2);
        let pieces: [&[u8]; 7] = [
            b"a",
            b"xyz ",
            "é".as_bytes(),
            "€".as_bytes(),
            "😀".as_bytes(),
            b"\xff",
            b"\xe2\x82",
        ];
        let store = TestStore::new(64);
        for _ in 0..3_000 {
            let n = (next() % 200) as usize;
            let input: Vec<u8> = (0..n)
                .flat_map(|_| {
                    pieces[(next() % pieces.len() as u64) as usize]
                        .iter()
                        .copied()
                })
                .collect();
            let chars = (next() % (n as u64 + 8)) as usize;
            assert_value_keeps_first_chars(&input, chars, &store);
        }
    }

    #[test]
    fn large_text_crosses_chunks_and_reads_back_whole() {
        let store = TestStore::new(200);
        let mut r = blank();
        let limits = SpanLimits::default();
        // Multi-byte characters land on chunk boundaries somewhere.
        let prompt: String = "ab€😀ü".repeat(30_000);
        let (t, o) = r.store_text(prompt.as_bytes(), usize::MAX, &store);
        assert_eq!(o, TextOutcome::default());
        assert!(t.offset >= OVERFLOW_BASE, "large text goes to the chunks");
        r.set_attribute(b"later", &ValueInput::Int(812), &limits, &store)
            .expect("set");
        let src = StoreSource(&store);
        let view = SpanView::new(&r, &src);
        assert_eq!(view.text(t).to_string_lossy(), prompt);
        assert!(
            r.rest().chunk_count as usize > DIRECT_CHUNKS,
            "index chunks in use"
        );
        // Every chunk owned once: data chunks plus one index chunk.
        let mut owned = Vec::new();
        r.owned_chunks(&store, |c| owned.push(c));
        owned.sort();
        owned.dedup();
        assert_eq!(owned.len(), r.rest().chunk_count as usize + 1);
        assert_eq!(owned.len() as u32, store.next.get());
    }

    #[test]
    fn attributes_past_the_table_keep_their_keys_and_take_new_values() {
        let store = TestStore::new(16);
        let mut r = blank();
        let limits = SpanLimits::default();
        for i in 0..100 {
            let key = format!("key.{i}");
            r.set_attribute(key.as_bytes(), &ValueInput::Int(i), &limits, &store)
                .expect("fits");
        }
        // Past the table: a node; set again, it keeps its place.
        r.set_attribute(b"key.70", &ValueInput::Str(b"seventy"), &limits, &store)
            .expect("replace");
        r.set_attribute(b"key.3", &ValueInput::Str(b"three"), &limits, &store)
            .expect("replace");
        let src = StoreSource(&store);
        let view = SpanView::new(&r, &src);
        let keys: Vec<String> = view
            .attributes()
            .map(|(k, _)| k.to_string_lossy())
            .collect();
        let want: Vec<String> = (0..100).map(|i| format!("key.{i}")).collect();
        assert_eq!(keys, want);
        assert_eq!(string(&view, "key.70").as_deref(), Some("seventy"));
        assert_eq!(string(&view, "key.3").as_deref(), Some("three"));
        assert_eq!(r.attribute_count, 100);
    }

    #[test]
    fn the_count_limit_drops_and_counts() {
        let store = TestStore::new(4);
        let mut r = blank();
        let limits = SpanLimits {
            attribute_count: 2,
            ..SpanLimits::default()
        };
        r.set_attribute(b"a", &ValueInput::Int(1), &limits, &store)
            .expect("1");
        r.set_attribute(b"b", &ValueInput::Int(2), &limits, &store)
            .expect("2");
        assert_eq!(
            r.set_attribute(b"c", &ValueInput::Int(3), &limits, &store),
            Err(NotStored::Limit)
        );
        // An existing key still takes a new value at the limit.
        r.set_attribute(b"a", &ValueInput::Int(9), &limits, &store)
            .expect("replace");
        assert_eq!(r.rest().dropped_attributes, 1);
    }

    /// Each value cut as it is recorded is counted by the limit that cut
    /// it (`values_cut_by`): the value length limit (a short string, a
    /// long ASCII one, one that is not ASCII, bytes, an array's element, a
    /// string inside a complex value), the depth limit, the payload pool;
    /// those cut at a fixed limit (a name) in none, so that `spanguard
    /// why` says which setting keeps each whole. The exporter's reset
    /// clears them, and a record from disk says no more than it counts.
    #[test]
    fn values_cut_as_recorded_are_counted_by_the_limit_that_cut_them() {
        use crate::span::any_value::tests::{array, deep_arrays, string};
        let store = TestStore::new(2);
        let mut r = blank();
        let limits = SpanLimits {
            attribute_value_length: 10,
            attribute_value_depth: 2,
            ..SpanLimits::default()
        };
        let long = "x".repeat(100);
        let accents = "é".repeat(100);
        let elements = [RawStr::new(b"whole"), RawStr::new(long.as_bytes())];
        let inside = array(&[string(&long)]);
        let deep = deep_arrays(3, &string("x"));
        let at_the_length_limit = [
            ValueInput::Str(b"eleven byte"),
            ValueInput::Str(long.as_bytes()),
            ValueInput::Str(accents.as_bytes()),
            ValueInput::Bytes(long.as_bytes()),
            ValueInput::StrArray(&elements),
            ValueInput::AnyValue(AnyValueRef::check(&inside).expect("well formed")),
        ];
        for (i, value) in at_the_length_limit.iter().enumerate() {
            let o = r
                .set_attribute(format!("k{i}").as_bytes(), value, &limits, &store)
                .expect("set");
            assert!(o.truncated && !o.pool_ran_out, "{value:?}");
        }
        let whole = ValueInput::Str(b"ten bytes!");
        assert!(
            !r.set_attribute(b"w", &whole, &limits, &store)
                .expect("set")
                .truncated
        );
        let deep = ValueInput::AnyValue(AnyValueRef::check(&deep).expect("well formed"));
        r.set_attribute(b"deep", &deep, &limits, &store)
            .expect("set");
        // A fixed limit: a name over MAX_NAME_BYTES.
        assert!(
            r.replace_name(&[b'n'; MAX_NAME_BYTES + 1], &store)
                .truncated
        );
        assert_eq!(r.rest().truncated_values, 8);
        let by = ValuesCutBy {
            length_limit: 6,
            pool: 0,
            depth_limit: 1,
        };
        assert_eq!(r.values_cut_by(), by);
        // The pool's two chunks and the arena's room used up: no length
        // limit, and still cut.
        let big = "é".repeat(10_000);
        let o = r
            .set_attribute(
                b"prompt",
                &ValueInput::Str(big.as_bytes()),
                &SpanLimits::default(),
                &store,
            )
            .expect("set, cut");
        assert!(o.truncated && o.pool_ran_out);
        assert_eq!(r.values_cut_by(), ValuesCutBy { pool: 1, ..by });

        // A record from disk counting fewer than its counters say.
        let mut forged = blank();
        forged.rest_mut().truncated_values = 3;
        forged.cut_by = ValuesCutBy {
            length_limit: 2,
            pool: 9,
            depth_limit: 9,
        };
        let said = forged.values_cut_by();
        assert_eq!((said.length_limit, said.pool, said.depth_limit), (2, 1, 0));

        // The exporter's reset clears them with the count.
        let mut chunks = Vec::new();
        r.owned_chunks(&store, |c| chunks.push(c));
        r.reset_rest();
        assert_eq!(r.cut_by, ValuesCutBy::default());
        assert_eq!(r.values_cut_by(), ValuesCutBy::default());
    }

    #[test]
    fn a_used_up_pool_cuts_values_and_drops_whole_attributes_never_keys() {
        let store = TestStore::new(2);
        let mut r = blank();
        let limits = SpanLimits::default();
        let big = "é".repeat(10_000);
        let o = r
            .set_attribute(b"prompt", &ValueInput::Str(big.as_bytes()), &limits, &store)
            .expect("set, cut");
        assert!(o.truncated);
        // Keys and values keep coming until nothing fits; none is keyless.
        let mut dropped = 0;
        for i in 0..400 {
            let key = format!("a.fairly.long.attribute.key.number.{i}");
            match r.set_attribute(key.as_bytes(), &ValueInput::Str(b"v"), &limits, &store) {
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e, NotStored::NoRoom);
                    dropped += 1;
                }
            }
        }
        assert!(dropped > 0, "the pool and the arena ran out");
        let src = StoreSource(&store);
        let view = SpanView::new(&r, &src);
        let kept = string(&view, "prompt").expect("prompt kept, cut");
        assert!(
            big.starts_with(&kept) && kept.len() <= 2 * CHUNK_BYTES,
            "{}",
            kept.len()
        );
        for (k, _) in view.attributes() {
            assert!(!k.is_empty(), "an attribute without its key");
        }
        assert_eq!(view.attributes().count(), r.attribute_count as usize);
        assert_eq!(r.rest().dropped_attributes as usize, dropped);
    }

    #[test]
    fn events_and_links_hold_large_bodies_and_count_their_own_drops() {
        let store = TestStore::new(64);
        let mut r = blank();
        let limits = SpanLimits {
            event_attribute_count: 1,
            ..SpanLimits::default()
        };
        let body = "x".repeat(50_000);
        let (o, dropped) = r
            .add_event(
                b"gen_ai.content.prompt",
                5,
                &[
                    (b"gen_ai.prompt", ValueInput::Str(body.as_bytes())),
                    (b"extra", ValueInput::Int(1)),
                ],
                &limits,
                &store,
            )
            .expect("event");
        assert!(!o.truncated && dropped);
        r.add_link(
            LinkContext {
                trace_id: [1; 16],
                span_id: [2; 8],
                trace_flags: 1,
                remote: Some(true),
            },
            b"k=v",
            &[(b"l", ValueInput::Bool(true))],
            &limits,
            &store,
        )
        .expect("link");
        let src = StoreSource(&store);
        let view = SpanView::new(&r, &src);
        let events: Vec<_> = view.events().collect();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].entry.dropped_attributes, 1);
        assert_eq!(events[0].name().to_string_lossy(), "gen_ai.content.prompt");
        let attrs: Vec<_> = events[0].attributes().collect();
        assert_eq!(attrs.len(), 1);
        match attrs[0].1 {
            Value::Str(t) => assert_eq!(t.len(), 50_000),
            _ => panic!("not a string"),
        }
        let links: Vec<_> = view.links().collect();
        assert_eq!(links[0].tracestate().to_string_lossy(), "k=v");
        assert_eq!(links[0].entry.is_remote(), Some(true));
        assert_eq!(r.rest().dropped_attributes, 0, "not counted on the span");
    }

    #[test]
    fn drop_oldest_keeps_the_last_events_and_links_and_counts_the_rest() {
        // What a bridge does when its SDK evicted what it had passed on:
        // the last ones stay, in order, and a list emptied takes new ones.
        let store = TestStore::new(8);
        let mut r = blank();
        let limits = SpanLimits::default();
        let link = |n: u8| LinkContext {
            trace_id: [1; 16],
            span_id: [n; 8],
            trace_flags: 1,
            remote: None,
        };
        for i in 0..5u8 {
            r.add_event(format!("e{i}").as_bytes(), 1, &[], &limits, &store)
                .expect("event");
            r.add_link(link(i + 1), b"", &[], &limits, &store)
                .expect("link");
        }
        let names = |r: &SpanRecord| -> Vec<String> {
            let src = StoreSource(&store);
            let view = SpanView::new(r, &src);
            let names = view.events().map(|e| e.name().to_string_lossy());
            names.collect()
        };
        let link_ids = |r: &SpanRecord| -> Vec<u8> {
            let src = StoreSource(&store);
            let view = SpanView::new(r, &src);
            view.links().map(|l| l.entry.span_id[0]).collect()
        };
        r.drop_oldest(3, 1, &store);
        assert_eq!(names(&r), ["e3", "e4"]);
        assert_eq!(link_ids(&r), [2, 3, 4, 5]);
        assert_eq!((r.rest().dropped_events, r.rest().dropped_links), (3, 1));
        r.add_event(b"e5", 1, &[], &limits, &store).expect("event");
        assert_eq!(names(&r), ["e3", "e4", "e5"]);
        // More than it holds: all of them, counted as many as there were.
        r.drop_oldest(10, 0, &store);
        assert_eq!((r.event_count, r.events), (0, [0, 0]));
        assert_eq!(r.rest().dropped_events, 6);
        r.add_event(b"e6", 1, &[], &limits, &store).expect("event");
        assert_eq!(names(&r), ["e6"]);
        // Uncounted (a bridge counted them as its SDK evicted them): taken
        // off the same way, the counts as they were.
        r.add_event(b"e7", 1, &[], &limits, &store).expect("event");
        r.drop_oldest_uncounted(1, 2, &store);
        assert_eq!(names(&r), ["e7"]);
        assert_eq!(link_ids(&r), [4, 5]);
        assert_eq!((r.rest().dropped_events, r.rest().dropped_links), (6, 1));
    }

    #[test]
    fn a_torn_record_reads_as_far_as_it_is_whole() {
        let store = TestStore::new(8);
        let mut r = blank();
        let limits = SpanLimits::default();
        let big = "ü".repeat(5_000);
        r.set_attribute(b"big", &ValueInput::Str(big.as_bytes()), &limits, &store)
            .expect("set");
        // Only the first chunk survived, and it ends inside a character.
        let mut first = vec![0u8; CHUNK_BYTES];
        let src = StoreSource(&store);
        first.copy_from_slice(src.chunk(&r, 0).expect("chunk"));
        let owned = OwnedOverflow(first);
        let view = SpanView::from_disk(&r, &owned);
        let kept = string(&view, "big").expect("readable");
        assert!(big.starts_with(&kept) && kept.len() < big.len());
        // A forged kind byte and broken lists end, they do not loop.
        r.events = [0x7fff_fff0, 0x7fff_fff0];
        r.event_count = 3;
        assert_eq!(SpanView::from_disk(&r, &NoOverflow).events().count(), 0);
    }

    #[test]
    fn a_small_attribute_is_what_attribute_reads_and_a_disk_record_has_none() {
        use crate::buffer::payload_pool::PayloadPool;
        let pool = PayloadPool::with_mib(4).expect("pool");
        let limits = SpanLimits::default();
        // SAFETY: all-zero bytes are an empty record.
        let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
        let long = "x".repeat(5_000);
        let inputs: [(&[u8], ValueInput); 7] = [
            (b"i", ValueInput::Int(-7)),
            (b"d", ValueInput::Double(1.5)),
            (b"b", ValueInput::Bool(true)),
            (b"s", ValueInput::Str(b"short")),
            (b"long", ValueInput::Str(long.as_bytes())),
            (b"bytes", ValueInput::Bytes(b"ab")),
            (b"arr", ValueInput::IntArray(&[1])),
        ];
        for (k, v) in &inputs {
            r.set_attribute(k, v, &limits, &pool).expect("set");
        }
        let view = SpanView::new(&r, &pool);
        let mut answered = 0;
        for a in view.attribute_records() {
            let Some((key, value)) = view.small_attribute(&a) else {
                continue;
            };
            answered += 1;
            let (k, v) = view.attribute(&a).expect("readable");
            assert_eq!(key, k.in_arena().expect("key in the arena"));
            match (value, v) {
                (SmallValue::Str(s), Value::Str(t)) => assert_eq!(Some(s), t.in_arena()),
                (SmallValue::Int(x), Value::Int(y)) => assert_eq!(x, y),
                (SmallValue::Double(x), Value::Double(y)) => assert_eq!(x.to_bits(), y.to_bits()),
                (SmallValue::Bool(x), Value::Bool(y)) => assert_eq!(x, y),
                (s, _) => panic!("{s:?} read as another kind"),
            }
        }
        // The three scalars and the short string; not the long string (in
        // chunks), the bytes or the array.
        assert_eq!(answered, 4);
        let disk = SpanView::from_disk(&r, &pool);
        assert!(
            disk.attribute_records()
                .all(|a| disk.small_attribute(&a).is_none())
        );
    }

    /// A text of `n` bytes that shows a byte put in the wrong place.
    fn growing(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| b'a' + ((i * 7 + i / 4093) % 26) as u8)
            .collect()
    }

    #[test]
    fn a_value_set_again_as_it_grows_takes_the_room_of_its_longest() {
        // 8 chunks (32 KB): far less than the 30 versions' 465 KB.
        let store = TestStore::new(8);
        let limits = SpanLimits::default();
        let mut r = blank();
        let text = growing(30_000);
        for n in (1_000..=30_000).step_by(1_000) {
            let o = r
                .set_attribute(
                    b"gen_ai.completion",
                    &ValueInput::Str(&text[..n]),
                    &limits,
                    &store,
                )
                .expect("set");
            assert!(!o.truncated, "cut at {n}");
            r.set_attribute(b"tokens", &ValueInput::Int(n as i64), &limits, &store)
                .expect("set");
        }
        let src = StoreSource(&store);
        let view = SpanView::new(&r, &src);
        assert_eq!(
            string(&view, "gen_ai.completion").expect("set").as_bytes(),
            &text[..]
        );
        assert_eq!(r.rest().truncated_values, 0);
        assert_eq!(r.rest().chunk_count, 8);
    }

    #[test]
    fn a_value_set_again_past_the_table_takes_the_room_of_its_longest() {
        let store = TestStore::new(8);
        let limits = SpanLimits::default();
        let mut r = blank();
        for i in 0..INLINE_ATTRIBUTES {
            r.set_attribute(
                format!("k{i}").as_bytes(),
                &ValueInput::Int(1),
                &limits,
                &store,
            )
            .expect("set");
        }
        let text = growing(25_000);
        for n in (500..=25_000).step_by(500) {
            let o = r
                .set_attribute(
                    b"gen_ai.completion",
                    &ValueInput::Str(&text[..n]),
                    &limits,
                    &store,
                )
                .expect("set");
            assert!(!o.truncated, "cut at {n}");
        }
        let src = StoreSource(&store);
        let view = SpanView::new(&r, &src);
        assert_eq!(
            string(&view, "gen_ai.completion").expect("set").as_bytes(),
            &text[..]
        );
        assert_eq!(r.attribute_count as usize, INLINE_ATTRIBUTES + 1);
    }

    #[test]
    fn a_key_set_again_is_found_wherever_it_is_and_at_any_count() {
        // The table's first and last entries, one past it, and keys of one
        // length set in turn: each set again replaces its value, whether
        // the table is full or not, and adds nothing.
        let store = TestStore::new(8);
        let limits = SpanLimits::default();
        let mut r = blank();
        let key = |i: usize| format!("key{i:02}");
        let n = INLINE_ATTRIBUTES + 2;
        for i in 0..n {
            r.set_attribute(key(i).as_bytes(), &ValueInput::Str(b"old"), &limits, &store)
                .expect("set");
            if i == 0 || i == INLINE_ATTRIBUTES - 1 || i == n - 1 {
                r.set_attribute(key(i).as_bytes(), &ValueInput::Str(b"new"), &limits, &store)
                    .expect("set again");
            }
        }
        for i in [0, INLINE_ATTRIBUTES - 1, INLINE_ATTRIBUTES, n - 1] {
            r.set_attribute(
                key(i).as_bytes(),
                &ValueInput::Str(b"newer"),
                &limits,
                &store,
            )
            .expect("set again");
        }
        assert_eq!(r.attribute_count as usize, n);
        assert_eq!(r.rest().dropped_attributes, 0);
        let src = StoreSource(&store);
        let view = SpanView::new(&r, &src);
        let again = [0, INLINE_ATTRIBUTES - 1, INLINE_ATTRIBUTES, n - 1];
        for i in 0..n {
            let want = if again.contains(&i) { "newer" } else { "old" };
            assert_eq!(string(&view, &key(i)).as_deref(), Some(want), "{}", key(i));
        }
        assert_eq!(view.attributes().count(), n);

        // Under a count limit below the table's size: a key set again is
        // still replaced at the limit, and a new one dropped and counted.
        let limits = SpanLimits {
            attribute_count: 3,
            ..SpanLimits::default()
        };
        let mut r = blank();
        for k in [&b"a"[..], b"b", b"c"] {
            r.set_attribute(k, &ValueInput::Int(1), &limits, &store)
                .expect("set");
        }
        r.set_attribute(b"c", &ValueInput::Str(b"again"), &limits, &store)
            .expect("set again at the limit");
        assert!(matches!(
            r.set_attribute(b"d", &ValueInput::Int(1), &limits, &store),
            Err(NotStored::Limit)
        ));
        assert_eq!(r.attribute_count, 3);
        assert_eq!(r.rest().dropped_attributes, 1);
        let src = StoreSource(&store);
        let view = SpanView::new(&r, &src);
        assert_eq!(string(&view, "c").as_deref(), Some("again"));
    }

    #[test]
    fn a_value_that_no_longer_fits_keeps_the_longer_one_set_before() {
        // 4 chunks: "a" (6000 bytes), then "b" after it; "a" set again
        // longer finds 4384 bytes left: less than it held.
        let store = TestStore::new(4);
        let limits = SpanLimits::default();
        let mut r = blank();
        let text = growing(8_000);
        let set = |r: &mut SpanRecord, k: &[u8], n: usize| {
            r.set_attribute(k, &ValueInput::Str(&text[..n]), &limits, &store)
                .expect("set")
        };
        assert!(!set(&mut r, b"a", 6_000).truncated);
        assert!(!set(&mut r, b"b", 6_000).truncated);
        let o = set(&mut r, b"a", 8_000);
        assert!(o.truncated, "the caller hears it was cut");
        assert_eq!(r.rest().truncated_values, 1, "and it is counted");
        {
            let src = StoreSource(&store);
            let view = SpanView::new(&r, &src);
            assert_eq!(string(&view, "a").expect("set").as_bytes(), &text[..6_000]);
            assert_eq!(string(&view, "b").expect("set").as_bytes(), &text[..6_000]);
        }
        // A shorter value that fits replaces it, in the room given back.
        assert!(!set(&mut r, b"a", 4_000).truncated);
        let src = StoreSource(&store);
        let view = SpanView::new(&r, &src);
        assert_eq!(string(&view, "a").expect("set").as_bytes(), &text[..4_000]);
    }

    #[test]
    fn a_name_and_a_status_message_set_again_take_no_more_room() {
        let store = TestStore::new(2);
        let mut r = blank();
        let text = growing(3_000);
        for i in 0..200 {
            let name = &text[i % 7..1_000];
            assert!(!r.replace_name(name, &store).truncated, "name cut at {i}");
            let message = &text[..2_000 + i];
            assert!(
                !r.set_status_message(message, &store).truncated,
                "message cut at {i}"
            );
        }
        let src = StoreSource(&store);
        let view = SpanView::new(&r, &src);
        assert_eq!(
            view.text(r.name).to_string_lossy().as_bytes(),
            &text[199 % 7..1_000]
        );
        assert_eq!(
            view.text(r.rest().status_message)
                .to_string_lossy()
                .as_bytes(),
            &text[..2_199]
        );
    }

    #[test]
    fn a_name_and_a_status_message_growing_in_turn_take_room_in_proportion_to_their_size() {
        // A status description set as it streams in, 200 bytes longer
        // each time, and the name set as an agent's step becomes known, 5
        // bytes longer: each moves past the other every time. Fresh room
        // for every version would need 4 MB; they take a few times their
        // final 41 KB.
        const STEPS: usize = 200;
        let text = growing(200 * STEPS + 7);
        let store = TestStore::new(64);
        let mut r = blank();
        for i in 1..=STEPS {
            let name = &text[3..3 + 5 * i];
            assert!(!r.replace_name(name, &store).truncated, "name cut at {i}");
            let message = &text[..200 * i];
            let o = r.set_status_message(message, &store);
            assert!(!o.truncated, "message cut at {i}");
        }
        assert_eq!(r.rest().truncated_values, 0);
        let final_len = 5 * STEPS + 200 * STEPS;
        let used = r.overflow_used as usize;
        assert!(used <= 4 * final_len, "{used} bytes used for {final_len}");
        // As written and as a dump reads them back.
        let mut copied = Vec::new();
        r.for_each_chunk(&store, |c| copied.extend_from_slice(c));
        let (src, disk) = (StoreSource(&store), OwnedOverflow(copied));
        for view in [SpanView::new(&r, &src), SpanView::from_disk(&r, &disk)] {
            assert!(view.name().to_string_lossy().as_bytes() == &text[3..3 + 5 * STEPS]);
            let message = view.text(r.rest().status_message).to_string_lossy();
            assert!(message.as_bytes() == &text[..200 * STEPS]);
        }
        // The rooms are cleared with the chunks, for the slot's next span.
        assert_ne!((r.name_room, r.status_room), (0, 0));
        r.reset_rest();
        assert_eq!((r.name_room, r.status_room), (0, 0));
    }

    #[test]
    fn the_bytes_kept_while_a_value_is_written_over_are_shared_whole_characters() {
        let store = TestStore::new(2);
        let limits = SpanLimits::default();
        let mut r = blank();
        // Across the arena's end into a chunk and across chunks.
        let old = "x".repeat(5_000) + "aé€b";
        r.set_attribute(b"v", &ValueInput::Str(old.as_bytes()), &limits, &store)
            .expect("set");
        let at = r.attributes[0].text_value();
        let shared = |new: &str, utf8: bool| {
            let n = NewText {
                input: new.as_bytes(),
                utf8,
                limit_bytes: usize::MAX,
            };
            r.shared_prefix(at, n, &store)
        };
        assert_eq!(shared(&old, true), old.len() as u32);
        assert_eq!(shared(&(old.clone() + "more"), true), old.len() as u32);
        // "é" (c3 a9) against "ê" (c3 aa): the shared c3 is half a character.
        assert_eq!(shared(&("x".repeat(5_000) + "aê"), true), 5_001);
        assert_eq!(shared(&("x".repeat(5_000) + "aê"), false), 5_002);
        assert_eq!(shared("xx", true), 2);
        assert_eq!(shared("", true), 0);
        assert_eq!(shared(&("x".repeat(4_999) + "y"), true), 4_999);
    }

    /// A store that dies at its `calls_left`-th touch of a chunk, as a
    /// process killed mid-update: what the record then holds is what a
    /// crash dump or the flight file shows.
    struct DyingStore {
        inner: TestStore,
        calls_left: Cell<u32>,
    }

    struct Died;

    impl ChunkStore for DyingStore {
        fn take_chunk(&self) -> Option<u32> {
            self.inner.take_chunk()
        }
        fn chunk_ptr(&self, index: u32) -> Option<NonNull<u8>> {
            let left = self.calls_left.get();
            if left == 0 {
                // resume_unwind: no panic message for each death.
                std::panic::resume_unwind(Box::new(Died));
            }
            self.calls_left.set(left - 1);
            self.inner.chunk_ptr(index)
        }
    }

    impl DyingStore {
        fn new(chunks: u32) -> DyingStore {
            DyingStore {
                inner: TestStore::new(chunks),
                calls_left: Cell::new(u32::MAX),
            }
        }

        /// Sets "v" to `new` with the store dying at its `n`th chunk touch:
        /// true when the set ran to its end, false when it died there.
        fn set_v_dying_at(
            &self,
            r: &mut SpanRecord,
            n: u32,
            new: &[u8],
            limits: &SpanLimits,
        ) -> bool {
            self.calls_left.set(n);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                r.set_attribute(b"v", &ValueInput::Str(new), limits, self)
            }));
            self.calls_left.set(u32::MAX);
            match result {
                Ok(_) => true,
                Err(e) => {
                    assert!(e.is::<Died>());
                    false
                }
            }
        }

        /// What "v" reads, after dying at chunk touch `n` or not: a prefix
        /// of the old value or of the new one, never a mix.
        fn assert_v_reads_a_prefix(&self, r: &SpanRecord, old: &[u8], new: &[u8], n: u32) {
            let src = StoreSource(self);
            let view = SpanView::new(r, &src);
            let got = string(&view, "v").expect("set");
            assert!(
                old.starts_with(got.as_bytes()) || new.starts_with(got.as_bytes()),
                "died after {n} chunk touches: {} bytes, neither value's",
                got.len()
            );
        }
    }

    #[test]
    fn a_value_cut_off_while_written_over_reads_as_a_prefix_of_old_or_new() {
        let limits = SpanLimits::default();
        let x = growing(24_000);
        let old = &x[..20_000];
        // The same first 9000 bytes, then other text: longer, written over
        // the old value at the end of the chunks; or shorter, written over
        // it with another value after it.
        let mut new = x[..9_000].to_vec();
        new.extend(x[9_000..24_000].iter().map(|b| b.to_ascii_uppercase()));
        let (mut died, mut lived) = (0, 0);
        for (n, shorter) in (0..64).flat_map(|n| [(n, false), (n, true)]) {
            let new = &new[..if shorter { 15_000 } else { 24_000 }];
            let store = DyingStore::new(8);
            let mut r = blank();
            r.set_attribute(b"v", &ValueInput::Str(old), &limits, &store)
                .expect("set");
            if shorter {
                r.set_attribute(b"after", &ValueInput::Str(&x[..3_000]), &limits, &store)
                    .expect("set");
            }
            let used = r.overflow_used;
            if store.set_v_dying_at(&mut r, n, new, &limits) {
                lived += 1;
                // The shorter one over the old value, in its room.
                assert!(!shorter || r.overflow_used == used);
            } else {
                died += 1;
            }
            store.assert_v_reads_a_prefix(&r, old, new, n);
        }
        assert!(died > 5 && lived > 0, "{died} died, {lived} lived");
    }

    #[test]
    fn a_value_set_again_no_longer_than_before_takes_its_own_room() {
        // "a" in the chunks and "b" after it: "a" set again, no longer,
        // 100 times is written over itself, as is "s" in the arena (with
        // keys after it). Without that, 100 versions of "a" would need
        // 100 times the three chunks the store has.
        let store = TestStore::new(3);
        let limits = SpanLimits::default();
        let mut r = blank();
        let text = growing(6_000);
        let set = |r: &mut SpanRecord, k: &[u8], v: &[u8]| {
            r.set_attribute(k, &ValueInput::Str(v), &limits, &store)
                .expect("set")
        };
        set(&mut r, b"s", &text[..300]);
        set(&mut r, b"a", &text[..6_000]);
        set(&mut r, b"b", &text[..3_000]);
        let used = (r.arena_used, r.overflow_used, r.rest().chunk_count);
        for i in 0..100 {
            assert!(!set(&mut r, b"a", &text[i..6_000 - i * 7]).truncated);
            assert!(!set(&mut r, b"s", &text[i..300]).truncated);
        }
        assert_eq!((r.arena_used, r.overflow_used, r.rest().chunk_count), used);
        let src = StoreSource(&store);
        let view = SpanView::new(&r, &src);
        assert_eq!(
            string(&view, "a").expect("set").as_bytes(),
            &text[99..6_000 - 693]
        );
        assert_eq!(string(&view, "s").expect("set").as_bytes(), &text[99..300]);
        assert_eq!(string(&view, "b").expect("set").as_bytes(), &text[..3_000]);
    }

    #[test]
    fn values_set_again_in_turn_as_they_grow_take_room_in_proportion_to_their_size() {
        // A prompt and a completion (or two keys for one completion) set
        // again in turn, 1 KB longer each time, up to 200 KB each: neither
        // is ever the last thing stored when it is set again. Had each
        // version taken fresh room, they would need 40 MB; the store holds
        // three times their final 400 KB.
        const FINAL: usize = 200_000;
        const STEP: usize = 1_000;
        let chunks = (3 * 2 * FINAL / CHUNK_BYTES) as u32;
        let store = TestStore::new(chunks);
        let limits = SpanLimits::default();
        let mut r = blank();
        let text = growing(FINAL + 7);
        let keys: [&[u8]; 2] = [
            b"gen_ai.completion",
            b"llm.output_messages.0.message.content",
        ];
        for n in (STEP..=FINAL).step_by(STEP) {
            for (k, key) in keys.iter().enumerate() {
                let o = r
                    .set_attribute(key, &ValueInput::Str(&text[k..k + n]), &limits, &store)
                    .expect("set");
                assert!(!o.truncated, "{} cut at {n}", k);
            }
        }
        assert_eq!(r.rest().truncated_values, 0);
        let src = StoreSource(&store);
        let view = SpanView::new(&r, &src);
        for (k, key) in keys.iter().enumerate() {
            let got = string(&view, std::str::from_utf8(key).expect("ascii")).expect("set");
            assert!(got.as_bytes() == &text[k..k + FINAL], "{k} arrived changed");
        }
        // As a crash dump or the flight file reads them back: the chunks
        // copied in order, the record checked.
        let mut copied = Vec::new();
        r.for_each_chunk(&store, |c| copied.extend_from_slice(c));
        let disk = OwnedOverflow(copied);
        let view = SpanView::from_disk(&r, &disk);
        for (k, key) in keys.iter().enumerate() {
            let got = string(&view, std::str::from_utf8(key).expect("ascii")).expect("set");
            assert!(
                got.as_bytes() == &text[k..k + FINAL],
                "{k} read back changed"
            );
        }
        // The room used: a few times the final values, as a Vec's growth
        // (each version that must move takes twice the room it needs).
        let used = r.overflow_used as usize;
        assert!(used <= 4 * 2 * FINAL, "{used} bytes used for 2 x {FINAL}");
    }

    #[test]
    fn a_value_cut_off_while_written_in_the_room_it_owns_reads_as_a_prefix_of_old_or_new() {
        let limits = SpanLimits::default();
        let x = growing(24_000);
        // The same first 9000 bytes, then other text, longer than the old
        // value: written in the room "v" took when it moved, with "b" after
        // that room.
        let mut new = x[..9_000].to_vec();
        new.extend(x[9_000..24_000].iter().map(|b| b.to_ascii_uppercase()));
        let old = &x[..20_000];
        let (mut died, mut lived) = (0, 0);
        for n in 0..64 {
            let store = DyingStore::new(16);
            let mut r = blank();
            let set = |r: &mut SpanRecord, k: &[u8], v: &[u8]| {
                r.set_attribute(k, &ValueInput::Str(v), &limits, &store)
                    .expect("set")
            };
            set(&mut r, b"v", &x[..10_000]);
            set(&mut r, b"a", &x[..3_000]);
            // Moved past "a", with room after it; then "b" after that room.
            set(&mut r, b"v", old);
            assert_ne!(r.attributes[0].room, 0, "no room reserved");
            set(&mut r, b"b", &x[..3_000]);
            let used = r.overflow_used;
            if store.set_v_dying_at(&mut r, n, &new, &limits) {
                lived += 1;
                // Written in its room: nothing more used.
                assert_eq!(r.overflow_used, used);
            } else {
                died += 1;
            }
            store.assert_v_reads_a_prefix(&r, old, &new, n);
            let src = StoreSource(&store);
            let view = SpanView::new(&r, &src);
            for k in ["a", "b"] {
                assert_eq!(string(&view, k).expect("set").as_bytes(), &x[..3_000]);
            }
        }
        assert!(died > 5 && lived > 0, "{died} died, {lived} lived");
    }

    #[test]
    fn a_value_that_leaves_the_arena_or_is_cut_takes_only_its_own_room() {
        // A placeholder filled in later, with another value between: the
        // prompt moves to the chunks once and grows no more.
        let store = TestStore::new(8);
        let limits = SpanLimits::default();
        let mut r = blank();
        let text = growing(20_000);
        let set = |r: &mut SpanRecord, k: &[u8], v: &[u8]| {
            r.set_attribute(k, &ValueInput::Str(v), &limits, &store)
                .expect("set")
        };
        set(&mut r, b"prompt", b"");
        set(&mut r, b"model", b"gpt");
        set(&mut r, b"prompt", &text[..10_000]);
        assert_eq!((r.attributes[0].room, r.overflow_used), (0, 10_000));
        // Moved from the chunks but cut by the pool: no room either.
        set(&mut r, b"after", &text[..5_000]);
        let o = set(&mut r, b"prompt", &text[..20_000]);
        assert!(o.truncated);
        assert_eq!(r.attributes[0].room, 0);
        assert_eq!(r.overflow_used as usize, 8 * CHUNK_BYTES);
    }
}
