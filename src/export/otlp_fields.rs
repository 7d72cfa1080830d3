//! The OTLP view of a `SpanRecord` that the protobuf and JSON encoders share:
//! typed attribute values, the span flags word, the status rule and the
//! attributes spanguard adds for marks. Keeping these in one place means the
//! two wire formats cannot disagree about what a span says.

use super::resource::{AttrValue, ResourceInfo};
use crate::span::record::{
    AttributeRecord, MARK_INTERRUPTED, MARK_PARENT_REMOTE, MARK_UNENDED, OWNER_SPAN, SpanRecord,
    ValueKind,
};

/// `Span.flags` bit: the is-remote bit below is meaningful.
pub(crate) const FLAG_HAS_IS_REMOTE: u32 = 0x100;
/// `Span.flags` bit: the parent span context came from another process.
pub(crate) const FLAG_IS_REMOTE: u32 = 0x200;

/// One attribute value as OTLP's `AnyValue` carries it, borrowed from a
/// record or a resource so encoding copies nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OtlpValue<'a> {
    Str(&'a str),
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl<'a> OtlpValue<'a> {
    pub fn from_resource(v: &'a AttrValue) -> OtlpValue<'a> {
        match v {
            AttrValue::Str(s) => OtlpValue::Str(s),
            AttrValue::Int(i) => OtlpValue::Int(*i),
            AttrValue::Double(d) => OtlpValue::Double(*d),
            AttrValue::Bool(b) => OtlpValue::Bool(*b),
        }
    }
}

/// The key and value of `a`, or None when its kind byte is unknown (a torn or
/// forged record read back from disk).
pub fn attribute<'a>(
    record: &'a SpanRecord,
    a: &AttributeRecord,
) -> Option<(&'a str, OtlpValue<'a>)> {
    let value = match ValueKind::from_u8(a.value_kind)? {
        ValueKind::String => OtlpValue::Str(record.text(a.text_value())),
        ValueKind::Int => OtlpValue::Int(a.value as i64),
        ValueKind::Double => OtlpValue::Double(f64::from_bits(a.value)),
        ValueKind::Bool => OtlpValue::Bool(a.value != 0),
    };
    Some((record.text(a.key), value))
}

/// The readable attributes of `owner`, in the order they were added.
pub fn attributes_of(
    record: &SpanRecord,
    owner: u8,
) -> impl Iterator<Item = (&str, OtlpValue<'_>)> {
    record
        .attributes_of(owner)
        .filter_map(move |a| attribute(record, a))
}

/// The `dropped_attributes_count` of `owner`. The record counts drops for
/// the whole span (its table is shared), so they all go on the span itself;
/// attributes `attributes_of` skipped as unreadable are added so they are
/// reported rather than silently lost.
pub fn dropped_attributes(record: &SpanRecord, owner: u8) -> u32 {
    let recorded = if owner == OWNER_SPAN {
        record.dropped_attributes as u32
    } else {
        0
    };
    let unreadable = record
        .attributes_of(owner)
        .filter(|a| ValueKind::from_u8(a.value_kind).is_none())
        .count() as u32;
    recorded + unreadable
}

/// `Span.flags`: W3C trace flags in the low byte; we always know whether the
/// parent was remote, so HAS_IS_REMOTE is always set.
pub fn span_flags(record: &SpanRecord) -> u32 {
    let mut flags = record.trace_flags as u32 | FLAG_HAS_IS_REMOTE;
    if record.marks & MARK_PARENT_REMOTE != 0 {
        flags |= FLAG_IS_REMOTE;
    }
    flags
}

/// Whether the span has a status worth sending; an unset status with no
/// message is the proto default and is left out.
pub fn has_status(record: &SpanRecord) -> bool {
    record.status_code != 0 || record.status_message.len != 0
}

/// The instrumentation scope of a span: its own, or spanguard's for spans
/// that name none.
pub fn scope_of<'a>(resource: &'a ResourceInfo, span: &'a SpanRecord) -> (&'a str, &'a str) {
    if span.scope_name.len == 0 && span.scope_version.len == 0 {
        (&resource.scope_name, &resource.scope_version)
    } else {
        (span.text(span.scope_name), span.text(span.scope_version))
    }
}

/// Whether two spans came from the same instrumentation scope.
#[inline]
pub fn same_scope(a: &SpanRecord, b: &SpanRecord) -> bool {
    a.raw(a.scope_name) == b.raw(b.scope_name) && a.raw(a.scope_version) == b.raw(b.scope_version)
}

/// The instrumentation scopes of a batch in order of first appearance,
/// each as the index of its first span: the encoders write one ScopeSpans
/// per scope, holding every span of that scope (`same_scope`). Allocates
/// nothing; O(spans x scopes) for up to 32 scopes in a batch, and still
/// right (if slower) beyond.
pub fn scope_leaders<'a>(spans: &'a [&'a SpanRecord]) -> impl Iterator<Item = usize> + 'a {
    let mut leaders = [0usize; 32];
    let mut count = 0;
    (0..spans.len()).filter(move |&i| {
        let s = spans[i];
        let seen = if count < leaders.len() {
            leaders[..count].iter().any(|&l| same_scope(spans[l], s))
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
/// The items are `'static` but typed `'a` so they chain with a record's own.
pub fn mark_attributes<'a>(
    record: &SpanRecord,
) -> impl Iterator<Item = (&'a str, OtlpValue<'a>)> + use<'a> {
    let unended = record.marks & MARK_UNENDED != 0;
    let interrupted = record.marks & MARK_INTERRUPTED != 0;
    [
        unended.then_some(("spanguard.unended", OtlpValue::Bool(true))),
        interrupted.then_some(("spanguard.interrupted", OtlpValue::Bool(true))),
        (interrupted && record.signal != 0)
            .then_some(("spanguard.signal", OtlpValue::Int(record.signal as i64))),
    ]
    .into_iter()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::record::OWNER_EVENT_BASE;

    fn blank() -> Box<SpanRecord> {
        // SAFETY: SpanRecord is plain data for which all-zero bytes are a
        // valid (empty) value.
        unsafe { Box::new(std::mem::zeroed()) }
    }

    #[test]
    fn flags_say_whether_the_parent_was_remote() {
        let mut r = blank();
        r.trace_flags = 1;
        assert_eq!(span_flags(&r), 0x101);
        r.marks = MARK_PARENT_REMOTE;
        assert_eq!(span_flags(&r), 0x301);
    }

    #[test]
    fn marks_add_attributes_and_signal_only_when_known() {
        let mut r = blank();
        assert_eq!(mark_attributes(&r).count(), 0);
        r.marks = MARK_UNENDED | MARK_INTERRUPTED;
        let keys: Vec<_> = mark_attributes(&r).map(|(k, _)| k).collect();
        assert_eq!(keys, ["spanguard.unended", "spanguard.interrupted"]);
        r.signal = 11;
        let last = mark_attributes(&r).last();
        assert_eq!(last, Some(("spanguard.signal", OtlpValue::Int(11))));
    }

    #[test]
    fn unreadable_attributes_are_skipped_and_counted() {
        let mut r = blank();
        r.push_attribute(OWNER_SPAN, b"a", ValueKind::Int, 1, b"");
        r.push_attribute(OWNER_SPAN, b"b", ValueKind::Int, 2, b"");
        r.attributes[0].value_kind = 99;
        let kept: Vec<_> = attributes_of(&r, OWNER_SPAN).collect();
        assert_eq!(kept, [("b", OtlpValue::Int(2))]);
        r.dropped_attributes = 2;
        assert_eq!(dropped_attributes(&r, OWNER_SPAN), 3);
        assert_eq!(dropped_attributes(&r, OWNER_EVENT_BASE), 0);
    }
}
