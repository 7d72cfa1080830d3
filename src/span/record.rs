//! The span record: one fixed-size, `repr(C)` slot that holds everything a
//! span carries. Records live in a preallocated slab (see `buffer::slab`), so
//! recording a span never allocates; text is copied into the record's own
//! arena. The layout is plain data so that a crash handler or the flight
//! recorder can write a slot to disk byte for byte and a later process can
//! read it back.

use std::sync::atomic::AtomicU64;

use super::limits::*;

/// Where a piece of text sits inside a record's arena.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct TextRef {
    pub offset: u16,
    pub len: u16,
}

/// The type of an attribute value, as stored in `AttributeRecord::value_kind`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    String = 1,
    Int = 2,
    Double = 3,
    Bool = 4,
}

impl ValueKind {
    pub fn from_u8(v: u8) -> Option<ValueKind> {
        match v {
            1 => Some(ValueKind::String),
            2 => Some(ValueKind::Int),
            3 => Some(ValueKind::Double),
            4 => Some(ValueKind::Bool),
            _ => None,
        }
    }
}

/// `AttributeRecord::owner` for an attribute of the span itself; events use
/// `OWNER_EVENT_BASE + index`, links `OWNER_LINK_BASE + index`.
pub const OWNER_SPAN: u8 = 0;
pub const OWNER_EVENT_BASE: u8 = 1;
pub const OWNER_LINK_BASE: u8 = 0x80;

/// One attribute. Attributes of the span, its events and its links share one
/// table so that a span with many event attributes and one with many span
/// attributes both fit.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct AttributeRecord {
    pub key: TextRef,
    pub value_kind: u8,
    pub owner: u8,
    pub _reserved: [u8; 2],
    /// Int: the i64 bits; Double: the f64 bits; Bool: 0 or 1; String: a
    /// `TextRef` packed as `offset | len << 16`.
    pub value: u64,
}

impl AttributeRecord {
    pub fn text_value(&self) -> TextRef {
        TextRef {
            offset: (self.value & 0xffff) as u16,
            len: ((self.value >> 16) & 0xffff) as u16,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EventRecord {
    pub name: TextRef,
    pub _reserved: u32,
    pub time_unix_ns: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct LinkRecord {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub tracestate: TextRef,
    pub trace_flags: u8,
    pub _reserved: [u8; 3],
}

/// Marks on a span (`SpanRecord::marks`).
pub const MARK_PARENT_REMOTE: u8 = 1;
/// The span was still open at shutdown and was ended by spanguard.
pub const MARK_UNENDED: u8 = 2;
/// The span was still open when the process died; recovered from a crash
/// dump or the flight recorder.
pub const MARK_INTERRUPTED: u8 = 4;
/// The sampler left the span out: it has ids and a tracestate, so it
/// propagates its context (flag 00), but records nothing and is never
/// exported.
pub const MARK_NON_RECORDING: u8 = 8;
/// The span has a tracestate (in `tracestate`). On the first line, so a
/// child learns whether to copy it from the line it reads anyway.
pub const MARK_HAS_TRACESTATE: u8 = 16;

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
/// core or from memory, and fetched again by the exporter.
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
    pub marks: u8,
    pub name: TextRef,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub attribute_count: u16,
    pub arena_used: u16,
    pub event_count: u16,
    pub link_count: u16,
    pub attributes: [AttributeRecord; MAX_ATTRIBUTES],
    /// The signal that interrupted the span, when `MARK_INTERRUPTED`.
    pub signal: i32,
    pub status_message: TextRef,
    pub tracestate: TextRef,
    /// The instrumentation scope that made the span (an OpenTelemetry
    /// tracer's name and version); empty for spanguard's own.
    pub scope_name: TextRef,
    pub scope_version: TextRef,
    pub dropped_attributes: u16,
    pub dropped_events: u16,
    pub dropped_links: u16,
    /// Strings cut at a limit or at the end of the arena.
    pub truncated_values: u16,
    /// Strings whose invalid UTF-8 was replaced with U+FFFD.
    pub replaced_utf8: u16,
    pub _reserved: [u8; 2],
    pub events: [EventRecord; MAX_EVENTS],
    pub links: [LinkRecord; MAX_LINKS],
    /// Puts the arena at the start of a cache line.
    pub _to_line: [u8; 24],
    pub arena: [u8; ARENA_BYTES],
}

/// `dst.copy_from_slice(src)`, with the short copies that names, keys and
/// values mostly are done inline: a copy of unknown length is a call to
/// libc's memmove, whose call and size dispatch cost more than moving a
/// few bytes (perf put memmove at a tenth of a span's time, five calls a
/// span with three attributes). Two overlapping loads and stores cover
/// every length from n to 2n.
#[inline(always)]
fn copy_text(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    assert_eq!(dst.len(), n);
    match n {
        0 => {}
        1..=3 => {
            dst[0] = src[0];
            dst[n / 2] = src[n / 2];
            dst[n - 1] = src[n - 1];
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        8..=15 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        16..=32 => {
            dst[..16].copy_from_slice(&src[..16]);
            dst[n - 16..].copy_from_slice(&src[n - 16..]);
        }
        _ => dst.copy_from_slice(src),
    }
}

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

/// What storing a piece of text did to it.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct TextOutcome {
    pub truncated: bool,
    pub replaced_utf8: bool,
}

impl SpanRecord {
    /// Clears the fields every span sets, ready for a new span: those in
    /// the record's first two lines. Only the slot's current writer may
    /// call it. The rest is clear already: a slot is zero when mapped, and
    /// `reset_rest` clears it when the exporter frees the slot, so a span
    /// that sets no status message, tracestate or limit counter never
    /// writes the line they live on.
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
        // The arena and tables need no clearing: the counts above say what
        // is live.
    }

    /// Clears the fields `reset` leaves: the exporter's part, when it
    /// frees the slot (its encoder has just read them, so the line is in
    /// its cache).
    #[inline]
    pub fn reset_rest(&mut self) {
        self.signal = 0;
        self.status_message = TextRef::default();
        self.tracestate = TextRef::default();
        self.scope_name = TextRef::default();
        self.scope_version = TextRef::default();
        self.dropped_attributes = 0;
        self.dropped_events = 0;
        self.dropped_links = 0;
        self.truncated_values = 0;
        self.replaced_utf8 = 0;
    }

    /// The bytes a `TextRef` names. Text in the arena is always valid UTF-8.
    pub fn text(&self, t: TextRef) -> &str {
        let start = t.offset as usize;
        let end = (start + t.len as usize).min(ARENA_BYTES);
        let bytes = &self.arena[start.min(end)..end];
        // A record read back from disk may be torn or forged: never trust it
        // to be UTF-8 without checking.
        match std::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    /// Copies `input` into the arena as UTF-8, replacing invalid sequences
    /// with U+FFFD and cutting it at `limit` bytes or at the end of the arena,
    /// always on a character boundary. Counts what it did.
    #[inline(always)]
    pub fn store_text(&mut self, input: &[u8], limit: usize) -> (TextRef, TextOutcome) {
        // Names, keys and most values are short ASCII: a few loads that
        // both check and copy, inline. Everything else takes the call.
        // (The general path cost 90 instructions for a 6-byte key.)
        let start = self.arena_used as usize;
        let n = input.len();
        if n <= 32
            && n <= limit
            && n <= ARENA_BYTES - start
            && copy_short_ascii(&mut self.arena[start..start + n], input)
        {
            self.arena_used = (start + n) as u16;
            let text = TextRef {
                offset: start as u16,
                len: n as u16,
            };
            return (text, TextOutcome::default());
        }
        self.store_text_general(input, limit)
    }

    /// `store_text` for any input. A failed fast path may have written
    /// past `arena_used`; that space is unused, and is written again here.
    #[inline(never)]
    fn store_text_general(&mut self, input: &[u8], limit: usize) -> (TextRef, TextOutcome) {
        let start = self.arena_used as usize;
        let room = (ARENA_BYTES - start).min(limit);
        // The common cases are one check and one copy: ASCII (every byte is
        // a character boundary; the check is word-at-a-time), then any valid
        // UTF-8.
        let fast = if input.is_ascii() {
            Some(input.len().min(room))
        } else {
            std::str::from_utf8(input)
                .ok()
                .map(|valid| floor_char_boundary(valid, room))
        };
        if let Some(take) = fast {
            copy_text(&mut self.arena[start..start + take], &input[..take]);
            self.arena_used = (start + take) as u16;
            let outcome = TextOutcome {
                truncated: take < input.len(),
                replaced_utf8: false,
            };
            if outcome.truncated {
                self.truncated_values = self.truncated_values.saturating_add(1);
            }
            return (
                TextRef {
                    offset: start as u16,
                    len: take as u16,
                },
                outcome,
            );
        }
        let mut written = 0usize;
        let mut outcome = TextOutcome::default();
        'chunks: for chunk in input.utf8_chunks() {
            let valid = chunk.valid();
            if !valid.is_empty() {
                let take = floor_char_boundary(valid, room - written);
                self.arena[start + written..start + written + take]
                    .copy_from_slice(&valid.as_bytes()[..take]);
                written += take;
                if take < valid.len() {
                    outcome.truncated = true;
                    break 'chunks;
                }
            }
            if !chunk.invalid().is_empty() {
                outcome.replaced_utf8 = true;
                const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();
                if room - written < REPLACEMENT.len() {
                    outcome.truncated = true;
                    break 'chunks;
                }
                self.arena[start + written..start + written + REPLACEMENT.len()]
                    .copy_from_slice(REPLACEMENT);
                written += REPLACEMENT.len();
            }
        }
        self.arena_used = (start + written) as u16;
        if outcome.truncated {
            self.truncated_values = self.truncated_values.saturating_add(1);
        }
        if outcome.replaced_utf8 {
            self.replaced_utf8 = self.replaced_utf8.saturating_add(1);
        }
        (
            TextRef {
                offset: start as u16,
                len: written as u16,
            },
            outcome,
        )
    }

    /// The raw bytes a `TextRef` names (bounded by the arena), for
    /// comparisons that need no UTF-8 check.
    #[inline]
    pub fn raw(&self, t: TextRef) -> &[u8] {
        let start = (t.offset as usize).min(ARENA_BYTES);
        let end = (start + t.len as usize).min(ARENA_BYTES);
        &self.arena[start..end]
    }

    /// Sets an attribute of `owner`. A key it already has gets the new value
    /// (the OpenTelemetry rule); a new key takes a table entry, and when the
    /// table is full the attribute is counted dropped and None returned.
    #[inline(always)]
    pub fn push_attribute(
        &mut self,
        owner: u8,
        key: &[u8],
        value_kind: ValueKind,
        scalar: u64,
        text: &[u8],
    ) -> Option<TextOutcome> {
        let count = self.attribute_count as usize;
        let existing = (0..count).find(|&i| {
            self.attributes[i].owner == owner && self.raw(self.attributes[i].key) == key
        });
        let index = match existing {
            Some(i) => i,
            None if count >= MAX_ATTRIBUTES => {
                self.dropped_attributes = self.dropped_attributes.saturating_add(1);
                return None;
            }
            None => count,
        };
        let (key_ref, mut outcome) = match existing {
            Some(i) => (self.attributes[i].key, TextOutcome::default()),
            None => self.store_text(key, MAX_KEY_BYTES),
        };
        let value = if value_kind == ValueKind::String {
            let (value_ref, value_outcome) = self.store_text(text, MAX_VALUE_BYTES);
            outcome.truncated |= value_outcome.truncated;
            outcome.replaced_utf8 |= value_outcome.replaced_utf8;
            value_ref.offset as u64 | (value_ref.len as u64) << 16
        } else {
            scalar
        };
        self.attributes[index] = AttributeRecord {
            key: key_ref,
            value_kind: value_kind as u8,
            owner,
            _reserved: [0; 2],
            value,
        };
        if existing.is_none() {
            self.attribute_count += 1;
        }
        Some(outcome)
    }

    /// The attributes that belong to `owner`, in the order they were added.
    pub fn attributes_of(&self, owner: u8) -> impl Iterator<Item = &AttributeRecord> {
        let count = (self.attribute_count as usize).min(MAX_ATTRIBUTES);
        self.attributes[..count]
            .iter()
            .filter(move |a| a.owner == owner)
    }

    pub fn events(&self) -> &[EventRecord] {
        &self.events[..(self.event_count as usize).min(MAX_EVENTS)]
    }

    pub fn links(&self) -> &[LinkRecord] {
        &self.links[..(self.link_count as usize).min(MAX_LINKS)]
    }

    pub fn is_root(&self) -> bool {
        self.parent_span_id == [0; 8]
    }
}

/// The largest index `<= max` that is a character boundary of `s`.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

// The layout the comment on SpanRecord describes.
const _: () = {
    assert!(std::mem::offset_of!(SpanRecord, attributes) + 3 * 16 <= 128);
    assert!(std::mem::offset_of!(SpanRecord, arena).is_multiple_of(64));
    assert!(std::mem::size_of::<SpanRecord>().is_multiple_of(64));
};

#[cfg(test)]
mod tests {
    use super::*;

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
        let ascii: Vec<u8> = (0..40).map(|i| b'a' + i % 26).collect();
        for n in 0..=33 {
            // All ASCII: stored as given, after what is there.
            let mut r = blank();
            r.store_text(b"x", 8);
            let (t, o) = r.store_text(&ascii[..n], 64);
            assert_eq!(r.raw(t), &ascii[..n], "{n}");
            assert_eq!((t.offset, o), (1, TextOutcome::default()), "{n}");
            // One byte that is not ASCII, at each position: the general
            // path replaces it.
            for bad in 0..n {
                let mut input = ascii[..n].to_vec();
                input[bad] = 0xff;
                let mut r = blank();
                let (t, o) = r.store_text(&input, 64);
                let want = [&ascii[..bad], "\u{FFFD}".as_bytes(), &ascii[bad + 1..n]].concat();
                assert_eq!(r.raw(t), &want[..], "{n} {bad}");
                assert!(o.replaced_utf8, "{n} {bad}");
            }
            // Valid UTF-8 that is not ASCII is kept as it is.
            if n >= 2 {
                let input = [&ascii[..n - 2], "é".as_bytes()].concat();
                let mut r = blank();
                let (t, o) = r.store_text(&input, 64);
                assert_eq!(r.raw(t), &input[..], "{n}");
                assert_eq!(o, TextOutcome::default(), "{n}");
            }
        }
        // Short text past the limit or the arena's end is cut, not copied whole.
        let mut r = blank();
        let (t, o) = r.store_text(&ascii[..20], 8);
        assert_eq!((r.raw(t), o.truncated), (&ascii[..8], true));
        r.arena_used = (ARENA_BYTES - 3) as u16;
        let (t, o) = r.store_text(&ascii[..20], 64);
        assert_eq!((r.raw(t), o.truncated), (&ascii[..3], true));
    }

    fn blank() -> Box<SpanRecord> {
        // SAFETY: SpanRecord is plain data for which all-zero bytes are a
        // valid (empty) value.
        unsafe { Box::new(std::mem::zeroed()) }
    }

    #[test]
    fn text_is_replaced_and_counted_when_not_utf8() {
        let mut r = blank();
        let (t, o) = r.store_text(b"ab\xffcd", 64);
        assert_eq!(r.text(t), "ab\u{FFFD}cd");
        assert!(o.replaced_utf8 && !o.truncated);
        assert_eq!(r.replaced_utf8, 1);
    }

    #[test]
    fn text_is_cut_on_a_char_boundary_at_the_limit() {
        let mut r = blank();
        let (t, o) = r.store_text("aé€".as_bytes(), 4);
        assert_eq!(r.text(t), "aé");
        assert!(o.truncated);
        assert_eq!(r.truncated_values, 1);
    }

    #[test]
    fn arena_exhaustion_truncates_instead_of_overflowing() {
        let mut r = blank();
        let big = vec![b'x'; ARENA_BYTES];
        let (a, _) = r.store_text(&big, MAX_VALUE_BYTES);
        let (b, _) = r.store_text(&big, MAX_VALUE_BYTES);
        let (c, oc) = r.store_text(&big, MAX_VALUE_BYTES);
        assert_eq!(a.len as usize + b.len as usize, ARENA_BYTES);
        assert_eq!(c.len, 0);
        assert!(oc.truncated);
    }

    #[test]
    fn setting_a_key_again_replaces_its_value() {
        let mut r = blank();
        r.push_attribute(OWNER_SPAN, b"k", ValueKind::Int, 1, b"");
        r.push_attribute(OWNER_SPAN, b"k", ValueKind::String, 0, b"two");
        r.push_attribute(OWNER_EVENT_BASE, b"k", ValueKind::Int, 3, b"");
        let span: Vec<_> = r.attributes_of(OWNER_SPAN).collect();
        assert_eq!(span.len(), 1);
        assert_eq!(r.text(span[0].text_value()), "two");
        assert_eq!(r.attributes_of(OWNER_EVENT_BASE).count(), 1);
    }

    #[test]
    fn attribute_table_full_drops_and_counts() {
        let mut r = blank();
        for i in 0..MAX_ATTRIBUTES {
            assert!(
                r.push_attribute(
                    OWNER_SPAN,
                    format!("k{i}").as_bytes(),
                    ValueKind::Int,
                    0,
                    b""
                )
                .is_some()
            );
        }
        assert!(
            r.push_attribute(OWNER_SPAN, b"extra", ValueKind::Int, 0, b"")
                .is_none()
        );
        assert_eq!(r.dropped_attributes, 1);
        assert_eq!(r.attributes_of(OWNER_SPAN).count(), MAX_ATTRIBUTES);
    }
}
