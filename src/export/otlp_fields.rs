//! The OTLP view of a span that the protobuf and JSON encoders share:
//! typed attribute values, the span flags word, the status rule and the
//! attributes spanguard adds for marks. Keeping these in one place means the
//! two wire formats cannot disagree about what a span says. Spans are read
//! through `SpanView` (record plus chunks): text comes in pieces, one per
//! chunk it crosses, and the encoders write the pieces as they come.

use super::resource::{AttrValue, ResourceInfo};
use crate::span::record::{
    ArrayRef, AttributeRecords, Bytes, LinkEntry, MARK_INTERRUPTED, MARK_PARENT_REMOTE,
    MARK_UNENDED, SmallValue, SpanView, Text, Value,
};

/// `Span.flags` bit: the is-remote bit below is meaningful.
pub(crate) const FLAG_HAS_IS_REMOTE: u32 = 0x100;
/// `Span.flags` bit: the parent span context came from another process.
pub(crate) const FLAG_IS_REMOTE: u32 = 0x200;

/// Text an encoder writes: a plain string (resource, marks), a span's
/// text in pieces, or a span's text that lies whole in its record's arena.
#[derive(Clone, Copy)]
pub enum Str<'a> {
    Plain(&'a str),
    Span(Text<'a>),
    /// The bytes of a `Text` that `in_arena` found in one piece (UTF-8, as
    /// every `Text` is). A slice is two registers; a `Text` is a 32-byte
    /// aggregate that the compiler moved through the stack on its way to
    /// the encoder, written 8 and 4 bytes at a time and read back 16 at
    /// a time: a store-forwarding stall that perf put at a third of
    /// `put_span`'s time on small spans.
    Arena(&'a [u8]),
}

impl<'a> Str<'a> {
    /// Span text, as `Arena` when it lies whole in the record's arena
    /// (nearly every name, key and short value).
    #[inline]
    pub fn of_span(t: Text<'a>) -> Str<'a> {
        match t.in_arena() {
            Some(b) => Str::Arena(b),
            None => Str::Span(t),
        }
    }
}

impl Str<'_> {
    #[inline]
    pub fn len(&self) -> usize {
        match self {
            Str::Plain(s) => s.len(),
            Str::Span(t) => t.len(),
            Str::Arena(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole text as one slice, when it is one: a plain string, or
    /// span text that lies in the record's arena.
    #[inline]
    pub fn contiguous(&self) -> Option<&[u8]> {
        match self {
            Str::Plain(s) => Some(s.as_bytes()),
            Str::Span(t) => t.in_arena(),
            Str::Arena(b) => Some(b),
        }
    }

    /// Calls `f` with the text's pieces, at most `cap` bytes in all and
    /// ending on a character boundary (the encoders' byte budget).
    #[inline]
    pub fn for_each_piece(&self, cap: usize, mut f: impl FnMut(&[u8])) {
        let end = self.cut_len(cap);
        let mut left = end;
        let mut each = |p: &[u8]| {
            let n = p.len().min(left);
            if n > 0 {
                f(&p[..n]);
            }
            left -= n;
        };
        match self {
            Str::Plain(s) => each(s.as_bytes()),
            Str::Span(t) => t.for_each_piece(each),
            Str::Arena(b) => each(b),
        }
    }

    /// The length kept under `cap`, cut on a character boundary.
    #[inline]
    pub fn cut_len(&self, cap: usize) -> usize {
        let len = self.len();
        if cap >= len {
            return len;
        }
        // The byte at `cap` must start a character: look back at most 3.
        let mut end = cap;
        while end > 0 && self.byte_at(end).is_some_and(|b| b & 0xc0 == 0x80) {
            end -= 1;
        }
        end
    }

    /// Whether the text is `want`, byte for byte.
    pub fn equals(&self, want: &str) -> bool {
        if self.len() != want.len() {
            return false;
        }
        let (want, mut at, mut same) = (want.as_bytes(), 0usize, true);
        self.for_each_piece(usize::MAX, |p| {
            same &= want[at..at + p.len()] == *p;
            at += p.len();
        });
        same
    }

    fn byte_at(&self, at: usize) -> Option<u8> {
        match self {
            Str::Plain(s) => s.as_bytes().get(at).copied(),
            Str::Arena(b) => b.get(at).copied(),
            Str::Span(t) => {
                let mut seen = 0usize;
                let mut found = None;
                t.for_each_piece(|p| {
                    if found.is_none() && at < seen + p.len() {
                        found = Some(p[at - seen]);
                    }
                    seen += p.len();
                });
                found
            }
        }
    }
}

/// One attribute value as OTLP's `AnyValue` carries it, borrowed from a
/// span or a resource so encoding copies nothing.
#[derive(Clone, Copy)]
pub enum OtlpValue<'a> {
    Str(Str<'a>),
    Int(i64),
    Double(f64),
    Bool(bool),
    Bytes(Bytes<'a>),
    Array(ArrayRef<'a>),
    /// A resource's or scope's array (`AttrValue::Array`).
    List(&'a [AttrValue]),
    /// A complex value: an encoded, well-formed OTLP `AnyValue`
    /// (`span::any_value`). Written as it came, never cut by the span
    /// budget (a cut of its bytes would break the message): a lone span
    /// that is still over the limit is cut inside its complex values by
    /// `value_cut` (`RequestEncoder::cut_lone_span`).
    AnyValue(Bytes<'a>),
    /// A resource's or scope's complex value (`AttrValue::Any`): an
    /// encoded, well-formed OTLP `AnyValue`, written as it is.
    Encoded(&'a [u8]),
}

impl<'a> OtlpValue<'a> {
    pub fn from_resource(v: &'a AttrValue) -> OtlpValue<'a> {
        match v {
            AttrValue::Str(s) => OtlpValue::Str(Str::Plain(s)),
            AttrValue::Int(i) => OtlpValue::Int(*i),
            AttrValue::Double(d) => OtlpValue::Double(*d),
            AttrValue::Bool(b) => OtlpValue::Bool(*b),
            AttrValue::Array(elements) => OtlpValue::List(elements),
            AttrValue::Any(message) => OtlpValue::Encoded(message),
        }
    }

    #[inline]
    pub fn from_span(v: Value<'a>) -> OtlpValue<'a> {
        match v {
            Value::Str(t) => OtlpValue::Str(Str::of_span(t)),
            Value::Int(i) => OtlpValue::Int(i),
            Value::Double(d) => OtlpValue::Double(d),
            Value::Bool(b) => OtlpValue::Bool(b),
            Value::Bytes(b) => OtlpValue::Bytes(b),
            Value::Array(a) => OtlpValue::Array(a),
            Value::AnyValue(b) => OtlpValue::AnyValue(b),
        }
    }

    /// The bytes of text (or bytes) this value carries: what a byte budget
    /// can cut.
    pub fn payload_len(&self) -> usize {
        match self {
            OtlpValue::Str(s) => s.len(),
            OtlpValue::Bytes(b) => b.len(),
            _ => 0,
        }
    }
}

/// Attributes as the encoders write them: key and value.
pub type KeyValue<'a> = (Str<'a>, OtlpValue<'a>);

/// Calls `f` with each of the span's own attributes, in order. A plain
/// loop over the records: through `filter_map` each step was a call whose
/// large result came back through memory (a store-forwarding stall that
/// perf put at a quarter of encoding a small span).
///
/// Returns the span's dropped attribute count, as
/// `SpanView::dropped_attributes` (those it dropped, and records it has
/// that cannot be read): counted in this loop, not in a second one over
/// the records.
#[inline]
pub fn for_each_span_attribute<'a>(view: &SpanView<'a>, mut f: impl FnMut(KeyValue<'a>)) -> u32 {
    each_span_attribute(
        view,
        view.attribute_records(),
        &mut (),
        None::<fn(&mut (), &[u8], SmallValue) -> bool>,
        |_, kv| f(kv),
    )
}

/// `for_each_span_attribute`, offering each attribute that
/// `SpanView::small_attribute` reads (nearly all) to `small` first, as
/// its key's and value's bytes: building the general views of key and
/// value cost the protobuf encoder a third of a small attribute's
/// instructions (callgrind). An attribute `small` declines (false) goes
/// to `f`. Both get `out`, which both write. `records` is the span's
/// walk, made by the caller (`view.attribute_records()`), which may size
/// its output by it (`AttributeRecords::most`).
#[inline]
pub fn for_each_of_span_attributes_small_first<'a, O>(
    view: &SpanView<'a>,
    records: AttributeRecords<'a>,
    out: &mut O,
    small: impl FnMut(&mut O, &'a [u8], SmallValue<'a>) -> bool,
    f: impl FnMut(&mut O, KeyValue<'a>),
) -> u32 {
    each_span_attribute(view, records, out, Some(small), f)
}

#[inline(always)]
fn each_span_attribute<'a, O>(
    view: &SpanView<'a>,
    records: AttributeRecords<'a>,
    out: &mut O,
    mut small: Option<impl FnMut(&mut O, &'a [u8], SmallValue<'a>) -> bool>,
    mut f: impl FnMut(&mut O, KeyValue<'a>),
) -> u32 {
    let mut readable = 0u32;
    for a in records {
        if let Some(small) = &mut small
            && view.with_small_attribute(
                &a,
                #[inline(always)]
                |k, v| small(out, k, v),
            ) == Some(true)
        {
            readable += 1;
            continue;
        }
        if let Some((k, v)) = view.attribute(&a) {
            readable += 1;
            f(out, (Str::of_span(k), OtlpValue::from_span(v)));
        }
    }
    // Every record not read, whether unreadable or past a broken list.
    let unread = (view.record.attribute_count as u32).saturating_sub(readable);
    // The rest read only when written, as in `in_tracer_scope`.
    let record = view.record;
    let dropped = if record.wrote_rest() {
        record.rest().dropped_attributes as u32
    } else {
        0
    };
    dropped + unread
}

/// Converts attributes read from a span.
pub fn from_span<'a>(
    items: impl Iterator<Item = (Text<'a>, Value<'a>)>,
) -> impl Iterator<Item = KeyValue<'a>> {
    items.map(|(k, v)| (Str::of_span(k), OtlpValue::from_span(v)))
}

/// Every string and bytes value of a span (its attributes, its events' and
/// links' attributes and string array elements, the status message): the
/// values a byte budget may cut. Calls `f` with each one's length.
pub fn for_each_value_len(view: &SpanView, mut f: impl FnMut(usize)) {
    let mut value = |v: OtlpValue| match v {
        OtlpValue::Array(a) => {
            for e in a.elements() {
                if let crate::span::record::Element::Str(t) = e {
                    f(t.len());
                }
            }
        }
        v => f(v.payload_len()),
    };
    for (_, v) in span_attributes(view) {
        value(v);
    }
    for e in view.events() {
        for (_, v) in from_span(e.attributes()) {
            value(v);
        }
    }
    for l in view.links() {
        for (_, v) in from_span(l.attributes()) {
            value(v);
        }
    }
    value(OtlpValue::Str(Str::Span(
        view.text(view.record.rest().status_message),
    )));
}

/// How a span too large for the byte budget is cut: the cap on each value's
/// length, found by bisection over `fits(cap)` (which encodes the span with
/// that cap and says whether it fits), and how many values it cuts. The
/// largest values are cut first, and no more than needed; a span that does
/// not fit even with every value emptied gets cap 0.
pub fn budget_cap(view: &SpanView, mut fits: impl FnMut(usize) -> bool) -> (usize, u64) {
    let mut largest = 0usize;
    for_each_value_len(view, |n| largest = largest.max(n));
    let (mut lo, mut hi) = (0usize, largest);
    // Invariant: cap `hi` does not fit (the whole span did not), `lo` is
    // the best known cap that fits (or 0).
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let mut cut = 0u64;
    for_each_value_len(view, |n| cut += (n > lo) as u64);
    (lo, cut)
}

/// The most bytes one encoded span may take, and the values cut so far to
/// keep spans within it: both encoders' (`set_span_budget`).
#[derive(Debug, Default)]
pub struct SpanBudget {
    pub bytes: Option<usize>,
    pub cut_values: u64,
}

impl SpanBudget {
    /// Writes one span with `put`, then, when the span alone is over the
    /// budget, writes it again cut to fit (`fit_span`), counting the cuts.
    #[inline]
    pub fn put(
        &mut self,
        out: &mut Vec<u8>,
        span: &SpanView,
        put: fn(&mut Vec<u8>, &SpanView, usize),
    ) {
        let start = out.len();
        put(out, span, usize::MAX);
        if let Some(budget) = self.bytes
            && out.len() - start > budget
        {
            self.cut_values += fit_span(out, start, span, budget, put);
        }
    }
}

/// Re-encodes the span written at `out[start..]` (by `put`) with its
/// values capped so that it takes at most `budget` bytes. Returns how many
/// values were cut. Allocates nothing: each try writes over the last.
pub fn fit_span(
    out: &mut Vec<u8>,
    start: usize,
    span: &SpanView,
    budget: usize,
    put: fn(&mut Vec<u8>, &SpanView, usize),
) -> u64 {
    let (cap, cut) = budget_cap(span, |cap| {
        out.truncate(start);
        put(out, span, cap);
        out.len() - start <= budget
    });
    out.truncate(start);
    put(out, span, cap);
    cut
}

/// `Span.flags`: W3C trace flags in the low byte; we always know whether the
/// parent was remote, so HAS_IS_REMOTE is always set.
pub fn span_flags(view: &SpanView) -> u32 {
    let mut flags = view.record.trace_flags as u32 | FLAG_HAS_IS_REMOTE;
    if view.record.marks & MARK_PARENT_REMOTE != 0 {
        flags |= FLAG_IS_REMOTE;
    }
    flags
}

/// `Span.Link.flags`: the linked context's W3C trace flags in the low byte,
/// HAS_IS_REMOTE and IS_REMOTE when the caller said whether it was remote
/// (a bridge does; a link given as a traceparent leaves it unknown).
pub fn link_flags(link: &LinkEntry) -> u32 {
    let flags = link.trace_flags as u32;
    match link.is_remote() {
        None => flags,
        Some(false) => flags | FLAG_HAS_IS_REMOTE,
        Some(true) => flags | FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE,
    }
}

/// Whether the span has a status worth sending; an unset status with no
/// message is the proto default and is left out.
pub fn has_status(view: &SpanView) -> bool {
    view.record.status_code != 0 || view.record.rest().status_message.len != 0
}

/// The instrumentation scope of a span, its name, version and schema URL:
/// its own, or spanguard's (no schema URL) for spans that name none.
pub fn scope_of<'a>(
    resource: &'a ResourceInfo,
    span: &SpanView<'a>,
) -> (Str<'a>, Str<'a>, Str<'a>) {
    let r = span.record.rest();
    if !named_scope(r) {
        (
            Str::Plain(&resource.scope_name),
            Str::Plain(&resource.scope_version),
            Str::Plain(""),
        )
    } else {
        (
            Str::Span(span.text(r.scope_name)),
            Str::Span(span.text(r.scope_version)),
            Str::Span(span.text(r.scope_schema_url())),
        )
    }
}

/// The attributes given to the scope `scope_of` names (none for nearly
/// every scope: `ResourceInfo::scopes` is empty unless a bridge set some).
pub fn scope_attributes<'r>(
    resource: &'r ResourceInfo,
    (name, version, schema_url): &(Str, Str, Str),
) -> &'r [(String, crate::export::resource::AttrValue)] {
    if resource.scopes.is_empty() {
        return &[];
    }
    let parts = [name, version, schema_url];
    resource.scope_attributes(|want, i| parts[i].equals(want))
}

/// Whether a span names a scope of its own.
#[inline]
fn named_scope(r: &crate::span::record::SpanRest) -> bool {
    (r.scope_name.len | r.scope_version.len | r.scope_schema_url_len as u32) != 0
}

/// Whether two spans came from the same instrumentation scope. A span's
/// scope is stored first and short (`MAX_SCOPE_BYTES`), so it is in the
/// arena and compares byte for byte.
#[inline]
pub fn same_scope(a: &SpanView, b: &SpanView) -> bool {
    let (a, b) = (a.record, b.record);
    let (ra, rb) = (a.rest(), b.rest());
    // Nearly every span names no scope of its own (the tracer's is used):
    // two such spans are alike without looking at any text. Slicing and
    // comparing two empty texts, twice a span, was 6% of the exporter's
    // instructions on small spans (callgrind).
    if !named_scope(ra) && !named_scope(rb) {
        return true;
    }
    same_short_text(a.raw(ra.scope_name), b.raw(rb.scope_name))
        && same_short_text(a.raw(ra.scope_version), b.raw(rb.scope_version))
        && same_short_text(a.raw(ra.scope_schema_url()), b.raw(rb.scope_schema_url()))
}

/// `a == b` for short text, without a call to `memcmp`: the encoders
/// compare every span's scope with its batch's scopes (four comparisons a
/// span), mostly of equal or empty names, and those calls were a third of
/// the exporter's time in a profile of small spans.
#[inline]
fn same_short_text(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut words_a = a.chunks_exact(8);
    let mut words_b = b.chunks_exact(8);
    for (x, y) in (&mut words_a).zip(&mut words_b) {
        if u64::from_ne_bytes(x.try_into().unwrap()) != u64::from_ne_bytes(y.try_into().unwrap()) {
            return false;
        }
    }
    let (tail_a, tail_b) = (words_a.remainder(), words_b.remainder());
    (0..tail_a.len()).all(|i| tail_a[i] == tail_b[i])
}

/// Whether no span of a batch names a scope of its own, so that all are
/// the tracer's scope's (nearly every batch): then `scope_leaders` and
/// `scope_members` compare no spans. Comparing each span with its
/// scope's first twice (once to find the scopes, once to gather each
/// one's spans) was 6% of the exporter's instructions on small spans
/// (callgrind); this reads one word of each span's record instead.
pub fn in_tracer_scope(spans: &[SpanView]) -> bool {
    // A span that wrote no rest names no scope, and its rest is not read:
    // through `rest()` each span chose between its rest and the clear one
    // and read the chosen one's three lengths, 13 instructions a span on
    // the exporter where this is 6 (callgrind).
    spans
        .iter()
        .all(|s| !s.record.wrote_rest() || !named_scope(s.record.rest()))
}

/// The spans of `spans[leader..]` in the scope of `spans[leader]` (a
/// leader from `scope_leaders`), in order; `one` is `in_tracer_scope`'s
/// answer for the batch.
pub fn scope_members<'a>(
    spans: &'a [SpanView<'a>],
    leader: usize,
    one: bool,
) -> impl Iterator<Item = &'a SpanView<'a>> + 'a {
    let first = &spans[leader];
    spans[leader..]
        .iter()
        .filter(move |s| one || same_scope(s, first))
}

/// The instrumentation scopes of a batch in order of first appearance,
/// each as the index of its first span: the encoders write one ScopeSpans
/// per scope, holding every span of that scope (`same_scope`). Allocates
/// nothing; O(spans x scopes) for up to 32 scopes in a batch, and still
/// right (if slower) beyond. `one` is `in_tracer_scope`'s answer for the
/// batch, which the encoder asks once for this and `scope_members`.
pub fn scope_leaders<'a>(spans: &'a [SpanView<'a>], one: bool) -> impl Iterator<Item = usize> + 'a {
    let mut leaders = [0usize; 32];
    let mut count = 0;
    (0..spans.len()).filter(move |&i| {
        if one {
            return i == 0;
        }
        let s = &spans[i];
        let seen = if count < leaders.len() {
            leaders[..count].iter().any(|&l| same_scope(&spans[l], s))
        } else {
            spans[..i].iter().any(|earlier| same_scope(earlier, s))
        };
        if !seen && count < leaders.len() {
            leaders[count] = i;
            count += 1;
        }
        !seen
    })
}

/// Attributes spanguard adds after the span's own to say how it ended:
/// `spanguard.unended` for spans closed at shutdown, `spanguard.interrupted`
/// (and the signal, when known) for spans recovered after a crash.
pub fn mark_attributes<'a>(view: &SpanView<'a>) -> impl Iterator<Item = KeyValue<'a>> + use<'a> {
    let record = view.record;
    let unended = record.marks & MARK_UNENDED != 0;
    let interrupted = record.marks & MARK_INTERRUPTED != 0;
    [
        unended.then_some((Str::Plain("spanguard.unended"), OtlpValue::Bool(true))),
        interrupted.then_some((Str::Plain("spanguard.interrupted"), OtlpValue::Bool(true))),
        (interrupted && record.signal != 0).then_some((
            Str::Plain("spanguard.signal"),
            OtlpValue::Int(record.signal as i64),
        )),
    ]
    .into_iter()
    .flatten()
}

/// Whether `mark_attributes` has anything: nearly every span has no mark,
/// and building and filtering its array cost 25 instructions a span in the
/// protobuf encoder (callgrind), so the encoders ask first.
#[inline(always)]
pub fn has_mark_attributes(view: &SpanView) -> bool {
    view.record.marks & (MARK_UNENDED | MARK_INTERRUPTED) != 0
}

/// The span's own attributes, then the marks'.
pub fn span_attributes<'a>(view: &SpanView<'a>) -> impl Iterator<Item = KeyValue<'a>> + use<'a> {
    let view = *view;
    from_span(view.attributes()).chain(mark_attributes(&view))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::payload_pool::PayloadPool;
    use crate::span::limits::SpanLimits;
    use crate::span::record::{SpanRecord, ValueInput};

    fn blank() -> Box<SpanRecord> {
        // SAFETY: SpanRecord is plain data for which all-zero bytes are a
        // valid (empty) value.
        unsafe { Box::new(std::mem::zeroed()) }
    }

    #[test]
    fn short_text_is_equal_only_when_every_byte_is() {
        let text: Vec<u8> = (1..=40).collect();
        for n in 0..=text.len() {
            let a = &text[..n];
            let copy = text.clone();
            assert!(same_short_text(a, &copy[..n]), "{n}");
            assert!(
                !same_short_text(a, &text[..n.saturating_sub(1)]) || n == 0,
                "{n}"
            );
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x80;
                assert!(!same_short_text(a, &b), "{n} {at}");
            }
        }
    }

    #[test]
    fn flags_say_whether_the_parent_was_remote() {
        let pool = PayloadPool::with_mib(0).expect("pool");
        let mut r = blank();
        r.trace_flags = 1;
        assert_eq!(span_flags(&SpanView::new(&r, &pool)), 0x101);
        r.marks |= MARK_PARENT_REMOTE;
        assert_eq!(span_flags(&SpanView::new(&r, &pool)), 0x301);
    }

    fn keys(view: &SpanView) -> Vec<String> {
        span_attributes(view)
            .map(|(k, _)| match k {
                Str::Plain(s) => s.to_string(),
                Str::Span(t) => t.to_string_lossy(),
                Str::Arena(b) => String::from_utf8_lossy(b).into_owned(),
            })
            .collect()
    }

    #[test]
    fn marks_add_attributes_and_signal_only_when_known() {
        let pool = PayloadPool::with_mib(0).expect("pool");
        let mut r = blank();
        assert!(keys(&SpanView::new(&r, &pool)).is_empty());
        r.marks |= MARK_UNENDED | MARK_INTERRUPTED;
        assert_eq!(
            keys(&SpanView::new(&r, &pool)),
            ["spanguard.unended", "spanguard.interrupted"]
        );
        r.signal = 11;
        assert_eq!(
            keys(&SpanView::new(&r, &pool)).last().map(String::as_str),
            Some("spanguard.signal")
        );
    }

    #[test]
    fn spans_share_a_scope_exactly_when_name_version_and_schema_url_are_equal() {
        let pool = PayloadPool::with_mib(0).expect("pool");
        let limits = SpanLimits::default();
        let schema: &[u8] = b"https://opentelemetry.io/schemas/1.28.0";
        let scopes: [(&[u8], &[u8], &[u8]); 10] = [
            (b"", b"", b""),
            (b"a", b"", b""),
            (b"a", b"1", b""),
            (b"", b"1", b""),
            (b"b", b"1", b""),
            (b"openinference.instrumentation.openai", b"0.1.2", b""),
            (b"", b"", schema),
            (b"a", b"", schema),
            (b"a", b"1", schema),
            // The version's and the URL's bytes run together in the arena:
            // "1h" + "ttps..." is another scope than "1" + "https...".
            (b"a", b"1h", &schema[1..]),
        ];
        let mut records = Vec::new();
        for (name, version, url) in scopes {
            for wrote_rest in [false, true] {
                let mut r = blank();
                if wrote_rest || !name.is_empty() || !version.is_empty() || !url.is_empty() {
                    let name = r.store_text(name, usize::MAX, &pool).0;
                    let version = r.store_text(version, usize::MAX, &pool).0;
                    let url = r.store_text(url, usize::MAX, &pool).0;
                    let rest = r.rest_mut();
                    (rest.scope_name, rest.scope_version) = (name, version);
                    rest.scope_schema_url_len = url.len as u16;
                    assert_eq!(rest.scope_schema_url(), url);
                }
                // An attribute first, so the scope's text is not at offset 0.
                r.set_attribute(b"k", &ValueInput::Int(1), &limits, &pool)
                    .expect("set");
                records.push(((name, version, url), r));
            }
        }
        for (sa, a) in &records {
            for (sb, b) in &records {
                let (va, vb) = (SpanView::new(a, &pool), SpanView::new(b, &pool));
                assert_eq!(same_scope(&va, &vb), sa == sb, "{sa:?} against {sb:?}");
            }
        }
    }

    /// A record naming the scope `name` (none when empty), with one
    /// attribute first.
    fn in_scope(name: &[u8], pool: &PayloadPool) -> Box<SpanRecord> {
        let mut r = blank();
        r.set_attribute(b"k", &ValueInput::Int(1), &SpanLimits::default(), pool)
            .expect("set");
        if !name.is_empty() {
            let text = r.store_text(name, usize::MAX, pool).0;
            r.rest_mut().scope_name = text;
        }
        r
    }

    #[test]
    fn a_batch_is_grouped_by_scope_in_order_and_one_without_names_is_one_group() {
        let pool = PayloadPool::with_mib(0).expect("pool");
        let groups = |names: &[&[u8]]| -> (bool, Vec<Vec<usize>>) {
            let records: Vec<Box<SpanRecord>> = names.iter().map(|n| in_scope(n, &pool)).collect();
            let views: Vec<SpanView> = records.iter().map(|r| SpanView::new(r, &pool)).collect();
            let one = in_tracer_scope(&views);
            let base = views.as_ptr() as usize;
            let size = std::mem::size_of::<SpanView>();
            let index = |v: &SpanView| (v as *const SpanView as usize - base) / size;
            let leaders: Vec<usize> = scope_leaders(&views, one).collect();
            let members = leaders
                .iter()
                .map(|&l| scope_members(&views, l, one).map(index).collect())
                .collect();
            (one, members)
        };
        assert_eq!(groups(&[b"", b"", b""]), (true, vec![vec![0, 1, 2]]));
        // One span naming a scope makes two groups, each in batch order;
        // a span naming the tracer's own scope is still another scope.
        assert_eq!(
            groups(&[b"", b"a", b"", b"a", b"b"]),
            (false, vec![vec![0, 2], vec![1, 3], vec![4]])
        );
        assert_eq!(groups(&[b"a", b""]), (false, vec![vec![0], vec![1]]));
        assert_eq!(groups(&[]), (true, vec![]));
    }

    #[test]
    fn the_marks_check_agrees_with_the_marks() {
        let pool = PayloadPool::with_mib(0).expect("pool");
        let mut r = blank();
        for marks in 0..=u8::MAX {
            for signal in [0i16, 9] {
                r.marks = marks;
                r.signal = signal;
                let view = SpanView::new(&r, &pool);
                assert_eq!(
                    has_mark_attributes(&view),
                    mark_attributes(&view).next().is_some(),
                    "marks {marks:#x}, signal {signal}"
                );
            }
        }
    }

    #[test]
    fn unreadable_attributes_are_skipped_and_counted() {
        let pool = PayloadPool::with_mib(0).expect("pool");
        let limits = SpanLimits::default();
        let mut r = blank();
        r.set_attribute(b"a", &ValueInput::Int(1), &limits, &pool)
            .expect("set");
        r.set_attribute(b"b", &ValueInput::Int(2), &limits, &pool)
            .expect("set");
        r.attributes[0].value_kind = 99;
        let view = SpanView::new(&r, &pool);
        assert_eq!(keys(&view), ["b"]);
        r.rest_mut().dropped_attributes = 2;
        assert_eq!(SpanView::new(&r, &pool).dropped_attributes(), 3);
        // The encoders' count, from the loop that writes the attributes.
        assert_eq!(
            for_each_span_attribute(&SpanView::new(&r, &pool), |_| {}),
            3
        );
        // A count past the records (a broken list) counts the missing ones.
        r.attribute_count = 4;
        assert_eq!(SpanView::new(&r, &pool).dropped_attributes(), 5);
        assert_eq!(
            for_each_span_attribute(&SpanView::new(&r, &pool), |_| {}),
            5
        );
    }

    #[test]
    fn a_cut_ends_on_a_character_boundary() {
        let s = Str::Plain("aé€");
        assert_eq!(
            (s.cut_len(2), s.cut_len(3), s.cut_len(5), s.cut_len(6)),
            (1, 3, 3, 6)
        );
        let mut out = Vec::new();
        s.for_each_piece(4, |p| out.extend_from_slice(p));
        assert_eq!(out, "aé".as_bytes());
    }
}
