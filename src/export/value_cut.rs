//! Cuts the values of an encoded ExportTraceServiceRequest so that it takes
//! fewer bytes, for a server that answered 413 to a request that cannot be
//! split (one span) when the span's record is gone: a fresh request (its
//! slots were given back once encoded), a spool file or a recovered dump's
//! request alike. It cuts what the encoders' span budget cuts
//! (`otlp_fields::budget_cap`): string and bytes attribute values of the
//! span, its events and links (array elements too, and the strings and
//! bytes values inside complex values, whose messages are written anew)
//! and the status message, each to at most the same cap, the largest first
//! and no more than needed; also for a lone span whose complex values
//! keep it over the lone-span limit (`RequestEncoder::cut_lone_span`).
//! Ids, times, names, keys and everything else are copied as they are.
//! The same walk cuts a request's complex values to a depth (`cut_deep`),
//! for a span a server refused for good, as a decoder's nesting limit
//! refuses a value nested too deep (`Delivery::rescue_deep`).

use super::json_value::JsonValue;
use super::transport::BodyFormat;
use crate::span::proto_reader::{WIRE_LEN, fields, write_len_field};

/// A request cut to fit: its body (not gzipped), how many values the cut
/// shortened, and how many of those no earlier cut had shortened (the
/// ones to count as truncated).
#[derive(Debug)]
pub struct CutRequest {
    pub body: Vec<u8>,
    pub shortened: u64,
    pub values: u64,
    /// The attribute values of spans, events and links it shortened
    /// strings or bytes in, by their place in the request (`Walk::at`).
    pub at: Vec<u64>,
}

/// `plain` (an uncompressed request) with its values cut to the largest
/// cap that makes it at most `target` bytes; with every value emptied when
/// even that is over. None when the body cannot be read or has no value
/// to cut.
///
/// `counted`: values of `plain` an earlier cut shortened (the encoders'
/// span budget, or an earlier cut of this request) and counted. A cut
/// leaves them the longest of their span, each at least the cap then
/// applied less 3 bytes (a character boundary), so at least the longest
/// value less 3. Kept under that, the cap cuts each of them again: the
/// values cut now are those `counted` and `values` new ones, and a value
/// cut twice is counted once. (A cap under 4 bytes left some empty,
/// which no cut shortens again: then `values` may count one short.)
pub fn cut_to_fit(
    plain: &[u8],
    format: BodyFormat,
    target: usize,
    counted: u64,
) -> Option<CutRequest> {
    let tree = match format {
        BodyFormat::Protobuf => None,
        BodyFormat::Json => Some(JsonValue::parse(plain).ok()?),
    };
    let write = |cap: usize| -> Option<(Vec<u8>, Walk)> {
        let mut walk = Walk::capped(cap);
        let mut out = Vec::with_capacity(plain.len());
        match &tree {
            None => proto(plain, Msg::Request, 0, 0, &mut walk, &mut out)?,
            Some(tree) => json(tree, Msg::Request, 0, &mut walk, &mut out),
        }
        Some((out, walk))
    };
    let (_, whole) = write(usize::MAX)?;
    if whole.largest == 0 {
        return None;
    }
    // As `budget_cap`: `hi` does not fit (the whole request did not), `lo`
    // is the best cap known to fit (or 0). With values cut before, `hi`
    // is also the first cap that might leave one of them as it is.
    let hi = if counted > 0 {
        whole.largest.saturating_sub(3)
    } else {
        whole.largest
    };
    let (mut lo, mut hi) = (0usize, hi);
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if write(mid)?.0.len() <= target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let (body, walk) = write(lo)?;
    Some(CutRequest {
        body,
        shortened: walk.cut,
        values: walk.cut.saturating_sub(counted),
        at: walk.touched,
    })
}

/// The length of the longest value `cut_to_fit` could cut in `plain` (0
/// when none); None when it cannot be read.
pub fn longest_value(plain: &[u8], format: BodyFormat) -> Option<usize> {
    let mut walk = Walk::capped(usize::MAX);
    rewrite(plain, format, &mut walk)?;
    Some(walk.largest)
}

/// `plain` (an uncompressed request) written again as `walk` says (its
/// cap on values, its depth); None when it cannot be read.
fn rewrite(plain: &[u8], format: BodyFormat, walk: &mut Walk) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(plain.len());
    match format {
        BodyFormat::Protobuf => proto(plain, Msg::Request, 0, 0, walk, &mut out)?,
        BodyFormat::Json => json(
            &JsonValue::parse(plain).ok()?,
            Msg::Request,
            0,
            walk,
            &mut out,
        ),
    }
    Some(out)
}

/// A request whose complex values were cut to a depth.
#[derive(Debug)]
pub struct DeepCut {
    /// The request, not gzipped.
    pub body: Vec<u8>,
    pub emptied: Emptied,
}

/// The attribute values a depth cut emptied arrays or maps in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Emptied {
    /// Of spans, events, links: each counted once as truncated, as the
    /// tracer counts a value its `value_depth_limit` cuts.
    pub values: u64,
    /// Those values, by their place in the request (`Walk::at`): a value
    /// a cut to a size shortened too is one value cut, counted once
    /// (`CutRequest::at`).
    pub at: Vec<u64>,
    /// Of the resource and instrumentation scopes, each such message once
    /// (a request holds it once; every request of its spans holds it
    /// again): a fingerprint of the message as given, and its values cut.
    /// Counted once a message, not once a request (`ResourceCut` alike).
    pub shared: Vec<SharedCut>,
}

/// A resource or scope message a depth cut emptied values in.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedCut {
    /// A fingerprint of the message as given (before the cut), and of
    /// which it is: two messages apart only past the depth are two, cut
    /// to the same bytes (each counted once, as `DepthCounted` keys a
    /// value as given).
    pub key: u64,
    /// Its attribute values holding an array or map emptied.
    pub values: u64,
    pub of: SharedMsg,
}

/// Which message a `SharedCut` is: what the exporter that encoded it
/// knows it by, to cut it before sending from then on
/// (`ResourceInfo::cut_to_depth`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SharedMsg {
    Resource,
    /// An instrumentation scope, by its name, version and schema URL
    /// (what its `InstrumentationScope` message holds besides its
    /// attributes, and its `ScopeSpans`' schema URL): a scope is the
    /// three, as spans are grouped and `ScopeAttributes` kept, and two
    /// scopes of one name and version, one schema URL apart, may hold
    /// different attributes.
    Scope {
        name: String,
        version: String,
        schema_url: String,
    },
}

/// `plain` (an uncompressed request) with every array or map in its
/// attribute values (spans', events', links', and the resource's and
/// scopes', which every request of their spans carries) deeper than
/// `depth` levels replaced by the empty value, what a tracer whose
/// `value_depth_limit` is `depth` stores (`AnyValueRef::limited`: the
/// attribute's own value is level 1, each array element or map value one
/// more); everything else copied as it is. None when the body cannot be
/// read or holds nothing that deep.
pub fn cut_deep(plain: &[u8], format: BodyFormat, depth: usize) -> Option<DeepCut> {
    let mut walk = Walk::capped(usize::MAX);
    walk.depth = depth;
    walk.shared = Some(Shared::default());
    let out = rewrite(plain, format, &mut walk)?;
    let shared = walk.shared.map(|s| s.cut).unwrap_or_default();
    (walk.deep_values > 0 || !shared.is_empty()).then_some(DeepCut {
        body: out,
        emptied: Emptied {
            values: walk.deep_values,
            at: walk.touched,
            shared,
        },
    })
}

/// The cap on each value, the values it cut, and the longest value seen;
/// the depth past which arrays and maps are emptied, how many were, and
/// how many attribute values of spans held one; the resource's and
/// scopes' attribute values, walked only when `shared` is Some (a cut to
/// a size leaves them as they are: `service.name` is no prompt).
struct Walk {
    cap: usize,
    cut: u64,
    largest: usize,
    depth: usize,
    emptied: u64,
    deep_values: u64,
    shared: Option<Shared>,
    /// How many attribute values of spans, events and links the walk
    /// entered: the place of each in the request, the same in the request
    /// cut or not (no cut adds or drops an attribute).
    at: u64,
    /// The places of those it shortened a string or bytes value in, or
    /// emptied an array or map in.
    touched: Vec<u64>,
}

/// A walk through the resource and scope messages: whether it is in one,
/// its attribute values holding an array or map emptied there, and the
/// messages cut so far (as `Emptied::shared`).
#[derive(Default)]
struct Shared {
    inside: bool,
    values: u64,
    cut: Vec<SharedCut>,
}

impl Walk {
    /// A walk that cuts values to `cap` bytes and no array or map.
    fn capped(cap: usize) -> Walk {
        Walk {
            cap,
            cut: 0,
            largest: 0,
            depth: usize::MAX,
            emptied: 0,
            deep_values: 0,
            shared: None,
            at: 0,
            touched: Vec::new(),
        }
    }

    /// `child`, or `Other` (copied as it is) for a resource or scope this
    /// walk does not enter.
    fn walks(&self, child: Msg) -> Msg {
        match child {
            Msg::Resource | Msg::Scope if self.shared.is_none() => Msg::Other,
            child => child,
        }
    }

    /// Walks a resource or scope message (`of`, `uncut` as given) with
    /// `write`, which writes it to `out`; a message with values emptied
    /// is noted by its fingerprint.
    fn enter_shared<T>(
        &mut self,
        out: &mut Vec<u8>,
        uncut: impl std::hash::Hash,
        of: impl FnOnce() -> SharedMsg,
        write: impl FnOnce(&mut Walk, &mut Vec<u8>) -> T,
    ) -> T {
        let before = self.shared.as_mut().map_or(0, |s| {
            s.inside = true;
            std::mem::take(&mut s.values)
        });
        let done = write(self, out);
        if let Some(s) = self.shared.as_mut() {
            s.inside = false;
            let values = std::mem::replace(&mut s.values, before);
            if values > 0 {
                // The message as given and which it is: two scopes one
                // schema URL apart (in `ScopeSpans`, not in the message)
                // are two; so are two messages alike but past the depth
                // (the same once cut).
                use std::hash::{Hash, Hasher};
                let of = of();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                uncut.hash(&mut h);
                of.hash(&mut h);
                let key = h.finish();
                if !s.cut.iter().any(|c| c.key == key) {
                    s.cut.push(SharedCut { key, values, of });
                }
            }
        }
        done
    }

    /// Whether the `child` of an `AnyValue` at `level` is left out: an
    /// array or map past the depth (which leaves the empty value).
    fn empties(&mut self, child: Msg, level: usize) -> bool {
        let past = matches!(child, Msg::ArrayValue | Msg::KeyValueList) && level > self.depth;
        self.emptied += u64::from(past);
        past
    }

    /// Walks a child message with `write` at its level (one more for an
    /// `AnyValue`: a level is an attribute value, an array element or a
    /// map value), counting an attribute value with arrays or maps
    /// emptied inside.
    fn enter<T>(
        &mut self,
        child: Msg,
        level: usize,
        write: impl FnOnce(&mut Walk, usize) -> T,
    ) -> T {
        if !matches!(child, Msg::AnyValue) {
            return write(self, level);
        }
        let (before, cut_before) = (self.emptied, self.cut);
        let done = write(self, level + 1);
        if level != 0 {
            return done;
        }
        match self.shared.as_mut() {
            Some(s) if s.inside => s.values += u64::from(self.emptied > before),
            _ => {
                if self.emptied > before || self.cut > cut_before {
                    self.touched.push(self.at);
                }
                self.deep_values += u64::from(self.emptied > before);
                self.at += 1;
            }
        }
        done
    }

    /// How many of `len` bytes are kept; counts a cut.
    fn keep(&mut self, len: usize) -> usize {
        self.largest = self.largest.max(len);
        if len > self.cap {
            self.cut += 1;
            self.cap
        } else {
            len
        }
    }

    /// `text` cut to the cap on a character boundary.
    fn text<'a>(&mut self, text: &'a [u8]) -> &'a [u8] {
        let mut end = self.keep(text.len());
        while end < text.len() && end > 0 && text[end] & 0xc0 == 0x80 {
            end -= 1;
        }
        &text[..end]
    }
}

/// The OTLP messages on the way from the request to the values that may
/// be cut; `Other` is copied as it is.
#[derive(Clone, Copy)]
enum Msg {
    Request,
    ResourceSpans,
    /// Resource and InstrumentationScope: walked by a cut to a depth only.
    Resource,
    Scope,
    ScopeSpans,
    Span,
    Event,
    Link,
    Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
    /// A string value (AnyValue.string_value, Status.message).
    Text,
    /// AnyValue.bytes_value.
    Bytes,
    Other,
}

impl Msg {
    /// The message a protobuf field of this one holds.
    fn proto_child(self, number: u64) -> Msg {
        match (self, number) {
            (Msg::Request, 1) => Msg::ResourceSpans,
            (Msg::ResourceSpans, 1) => Msg::Resource,
            (Msg::ResourceSpans, 2) => Msg::ScopeSpans,
            (Msg::ScopeSpans, 1) => Msg::Scope,
            (Msg::ScopeSpans, 2) => Msg::Span,
            (Msg::Span, 9)
            | (Msg::Event, 3)
            | (Msg::Link, 4)
            | (Msg::KeyValueList, 1)
            | (Msg::Resource, 1)
            | (Msg::Scope, 3) => Msg::KeyValue,
            (Msg::Span, 11) => Msg::Event,
            (Msg::Span, 13) => Msg::Link,
            (Msg::Span, 15) => Msg::Status,
            (Msg::Status, 2) | (Msg::AnyValue, 1) => Msg::Text,
            (Msg::KeyValue, 2) | (Msg::ArrayValue, 1) => Msg::AnyValue,
            (Msg::AnyValue, 5) => Msg::ArrayValue,
            (Msg::AnyValue, 6) => Msg::KeyValueList,
            (Msg::AnyValue, 7) => Msg::Bytes,
            _ => Msg::Other,
        }
    }

    /// The message an OTLP/JSON member of this one holds (lowerCamelCase
    /// as spanguard writes it, or the proto's names).
    fn json_child(self, key: &str) -> Msg {
        match (self, key) {
            (Msg::Request, "resourceSpans" | "resource_spans") => Msg::ResourceSpans,
            (Msg::ResourceSpans, "resource") => Msg::Resource,
            (Msg::ResourceSpans, "scopeSpans" | "scope_spans") => Msg::ScopeSpans,
            (Msg::ScopeSpans, "scope") => Msg::Scope,
            (Msg::ScopeSpans, "spans") => Msg::Span,
            (Msg::Span | Msg::Event | Msg::Link | Msg::Resource | Msg::Scope, "attributes")
            | (Msg::KeyValueList, "values") => Msg::KeyValue,
            (Msg::Span, "events") => Msg::Event,
            (Msg::Span, "links") => Msg::Link,
            (Msg::Span, "status") => Msg::Status,
            (Msg::Status, "message") | (Msg::AnyValue, "stringValue" | "string_value") => Msg::Text,
            (Msg::KeyValue, "value") | (Msg::ArrayValue, "values") => Msg::AnyValue,
            (Msg::AnyValue, "arrayValue" | "array_value") => Msg::ArrayValue,
            (Msg::AnyValue, "kvlistValue" | "kvlist_value") => Msg::KeyValueList,
            (Msg::AnyValue, "bytesValue" | "bytes_value") => Msg::Bytes,
            _ => Msg::Other,
        }
    }
}

/// How deep `proto` reads a request's messages: past the deepest complex
/// value spanguard stores (three messages a level: `AnyValue`,
/// `ArrayValue` or `KeyValueList`, `KeyValue`) in an event, eight down. A
/// body nested deeper, which only a forged spool or dump file holds, is
/// unreadable (None), never read by a recursion without end.
const MAX_MESSAGE_DEPTH: usize = 8 + 3 * crate::span::any_value::MAX_STORED_DEPTH;

/// Writes the protobuf message `buf` of kind `msg` to `out`, cut;
/// `depth`: how many messages `buf` lies in; `level`: how many attribute
/// values (0 outside one).
fn proto(
    buf: &[u8],
    msg: Msg,
    depth: usize,
    level: usize,
    walk: &mut Walk,
    out: &mut Vec<u8>,
) -> Option<()> {
    if depth > MAX_MESSAGE_DEPTH {
        return None;
    }
    for f in fields(buf)? {
        let child = walk.walks(msg.proto_child(f.number));
        if f.wire_type != WIRE_LEN || matches!(child, Msg::Other) {
            out.extend_from_slice(f.raw);
            continue;
        }
        if walk.empties(child, level) {
            continue;
        }
        match child {
            Msg::Text => {
                // Cut on a character boundary only when it is text: a
                // value that is not UTF-8 is cut as bytes.
                let kept = if std::str::from_utf8(f.bytes).is_ok() {
                    walk.text(f.bytes)
                } else {
                    &f.bytes[..walk.keep(f.bytes.len())]
                };
                write_len_field(out, f.number, kept);
            }
            Msg::Bytes => {
                let n = walk.keep(f.bytes.len());
                write_len_field(out, f.number, &f.bytes[..n]);
            }
            Msg::Resource | Msg::Scope => {
                let mut inner = Vec::with_capacity(f.bytes.len());
                let of = || proto_shared_msg(child, f.bytes, buf);
                walk.enter_shared(&mut inner, f.bytes, of, |walk, inner| {
                    proto(f.bytes, child, depth + 1, level, walk, inner)
                })?;
                write_len_field(out, f.number, &inner);
            }
            _ => {
                let mut inner = Vec::with_capacity(f.bytes.len());
                walk.enter(child, level, |walk, level| {
                    proto(f.bytes, child, depth + 1, level, walk, &mut inner)
                })?;
                write_len_field(out, f.number, &inner);
            }
        }
    }
    Some(())
}

/// Which message the resource or scope message `buf` (`msg`) is: a
/// scope by its name (field 1) and version (field 2), and the schema URL
/// (field 3) of `parent`, its `ScopeSpans`.
fn proto_shared_msg(msg: Msg, buf: &[u8], parent: &[u8]) -> SharedMsg {
    if !matches!(msg, Msg::Scope) {
        return SharedMsg::Resource;
    }
    let text = |buf: &[u8], number: u64| {
        fields(buf)
            .into_iter()
            .flatten()
            .rfind(|f| f.number == number && f.wire_type == WIRE_LEN)
            .map_or_else(String::new, |f| {
                String::from_utf8_lossy(f.bytes).into_owned()
            })
    };
    SharedMsg::Scope {
        name: text(buf, 1),
        version: text(buf, 2),
        schema_url: text(parent, 3),
    }
}

/// `proto_shared_msg` for OTLP/JSON's resource or scope object `v`, in
/// `parent`'s members (its `ScopeSpans`).
fn json_shared_msg(msg: Msg, v: &JsonValue, parent: &[(String, JsonValue)]) -> SharedMsg {
    if !matches!(msg, Msg::Scope) {
        return SharedMsg::Resource;
    }
    let text = |members: &[(String, JsonValue)], keys: &[&str]| {
        members
            .iter()
            .find(|(k, _)| keys.contains(&k.as_str()))
            .and_then(|(_, v)| match v {
                JsonValue::String(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default()
    };
    let own = match v {
        JsonValue::Object(members) => &members[..],
        _ => &[],
    };
    SharedMsg::Scope {
        name: text(own, &["name"]),
        version: text(own, &["version"]),
        schema_url: text(parent, &["schemaUrl", "schema_url"]),
    }
}

/// Writes the JSON value `v`, a `msg` at `level` (as `proto`), to `out`,
/// cut.
fn json(v: &JsonValue, msg: Msg, level: usize, walk: &mut Walk, out: &mut Vec<u8>) {
    match (v, msg) {
        (JsonValue::String(s), Msg::Text) => {
            let kept = walk.text(s.as_bytes());
            // Whole characters of valid UTF-8 (a JSON string's), so valid.
            json_string(std::str::from_utf8(kept).unwrap_or(""), out);
        }
        (JsonValue::String(s), Msg::Bytes) => {
            // Base64: whole groups of 4 characters are whole groups of 3
            // bytes, so the cut text is valid base64 of the first bytes.
            let t = s.trim_end_matches('=');
            let len = t.len() / 4 * 3 + (t.len() % 4).saturating_sub(1);
            let keep = walk.keep(len);
            if keep < len {
                json_string(&s[..keep / 3 * 4], out);
            } else {
                json_string(s, out);
            }
        }
        (JsonValue::Null, _) => out.extend_from_slice(b"null"),
        (JsonValue::Bool(b), _) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        (JsonValue::Number(n), _) => out.extend_from_slice(n.as_bytes()),
        (JsonValue::String(s), _) => json_string(s, out),
        (JsonValue::Array(items), _) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json(item, msg, level, walk, out);
            }
            out.push(b']');
        }
        (JsonValue::Object(members), _) => {
            out.push(b'{');
            let mut first = true;
            for (key, value) in members {
                let child = walk.walks(msg.json_child(key));
                if walk.empties(child, level) {
                    continue;
                }
                if !std::mem::replace(&mut first, false) {
                    out.push(b',');
                }
                json_string(key, out);
                out.push(b':');
                if matches!(child, Msg::Resource | Msg::Scope) {
                    let of = || json_shared_msg(child, value, members);
                    walk.enter_shared(out, value, of, |walk, out| {
                        json(value, child, level, walk, out)
                    });
                } else {
                    walk.enter(child, level, |walk, level| {
                        json(value, child, level, walk, out)
                    });
                }
            }
            out.push(b'}');
        }
    }
}

fn json_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..0x20 | 0x7f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::otlp_decode::{Value, decode_json};

    /// A protobuf request holding a complex value 100,000 levels deep (a
    /// forged spool file's: spanguard stores none past 128) is unreadable,
    /// not a stack overflow of the exporter thread that reads it after a
    /// 413; one as deep as spanguard stores is read and cut.
    #[test]
    fn a_forged_body_nested_without_end_is_unreadable_not_a_stack_overflow() {
        use crate::span::any_value::MAX_STORED_DEPTH;
        use crate::span::any_value::tests::{array, deep_arrays, string};
        let request = |value: Vec<u8>| proto_request(&[value]);
        let mut stored = string(&"x".repeat(100));
        for _ in 1..MAX_STORED_DEPTH {
            stored = array(&[stored]);
        }
        let stored = request(stored);
        assert_eq!(longest_value(&stored, BodyFormat::Protobuf), Some(100));
        let cut = cut_to_fit(&stored, BodyFormat::Protobuf, stored.len() - 50, 0);
        assert!(cut.is_some_and(|c| c.body.len() <= stored.len() - 50));
        let forged = request(deep_arrays(100_000, &string("x")));
        assert_eq!(longest_value(&forged, BodyFormat::Protobuf), None);
        assert!(cut_to_fit(&forged, BodyFormat::Protobuf, 10, 0).is_none());
    }

    /// A protobuf request of one span with these attribute values (keys
    /// k0, k1, ...).
    fn proto_request(values: &[Vec<u8>]) -> Vec<u8> {
        let mut span = Vec::new();
        write_len_field(&mut span, 5, b"llm.chat");
        for (i, value) in values.iter().enumerate() {
            let mut kv = Vec::new();
            write_len_field(&mut kv, 1, format!("k{i}").as_bytes());
            write_len_field(&mut kv, 2, value);
            write_len_field(&mut span, 9, &kv);
        }
        let mut scope_spans = Vec::new();
        write_len_field(&mut scope_spans, 2, &span);
        let mut resource_spans = Vec::new();
        write_len_field(&mut resource_spans, 2, &scope_spans);
        let mut body = Vec::new();
        write_len_field(&mut body, 1, &resource_spans);
        body
    }

    /// A value cut at a depth is what the tracer's depth limit stores
    /// (`AnyValueRef::limited`): arrays and maps past it emptied, the rest
    /// kept, one count an attribute value; in protobuf and in OTLP/JSON.
    /// A body with nothing that deep is not cut.
    #[test]
    fn values_cut_at_a_depth_are_what_the_depth_limit_stores() {
        use crate::export::otlp_decode::decode_proto;
        use crate::span::any_value::AnyValueRef;
        use crate::span::any_value::tests::{array, int, map, string};
        // Arrays and maps in turn, `levels` of them, around 7, with a
        // string beside each level.
        let nested = |levels: usize| {
            let mut v = int(7);
            for i in 0..levels {
                v = if i % 2 == 0 {
                    array(&[v, string("a")])
                } else {
                    map(&[("k", v), ("s", string("m"))])
                };
            }
            v
        };
        let values = [nested(20), nested(16), string("x"), nested(40)];
        let body = proto_request(&values);
        let cut = cut_deep(&body, BodyFormat::Protobuf, 16).expect("cut");
        assert_eq!(
            cut.emptied.values, 2,
            "the values 20 and 40 deep, once each"
        );
        let limited: Vec<Vec<u8>> = values
            .iter()
            .map(|v| AnyValueRef::check(v).unwrap().limited(usize::MAX, 16))
            .collect();
        assert_eq!(cut.body, proto_request(&limited));
        assert!(cut_deep(&proto_request(&values[1..3]), BodyFormat::Protobuf, 16).is_none());
        // The same request in OTLP/JSON, as the JSON encoder writes it.
        let expected = decode_proto(&cut.body).unwrap();
        let json_values: Vec<String> = values
            .iter()
            .map(|v| crate::export::otlp_json::encoded_any_value_text(v))
            .collect();
        let json_values: Vec<&str> = json_values.iter().map(String::as_str).collect();
        let body = json_request(&json_values);
        let cut = cut_deep(&body, BodyFormat::Json, 16).expect("cut");
        assert_eq!(cut.emptied.values, 2);
        let spans = decode_json(&cut.body).expect("valid OTLP/JSON");
        assert_eq!(spans[0].attributes, expected[0].attributes);
        assert!(cut_deep(&json_request(&json_values[1..3]), BodyFormat::Json, 16).is_none());
    }

    /// Each cut says which attribute values it cut in, by their place in
    /// the request, the same in the request cut to a depth or a size:
    /// what tells one value cut both ways (counted once) from two.
    #[test]
    fn cuts_say_which_attribute_values_they_cut_in_by_place() {
        use crate::span::any_value::tests::{map, string};
        let deep = |levels: usize| {
            let mut v = string("x");
            for _ in 0..levels {
                v = map(&[("k", v)]);
            }
            v
        };
        let prompt = || string(&"p".repeat(3000));
        // 0: a prompt and a deep map in one value; 1: a prompt; 2: a deep
        // map; 3: short.
        let values = [
            map(&[("prompt", prompt()), ("deep", deep(40))]),
            prompt(),
            deep(40),
            string("short"),
        ];
        let body = proto_request(&values);
        let deep_cut = cut_deep(&body, BodyFormat::Protobuf, 16).expect("deep");
        assert_eq!(
            (deep_cut.emptied.values, &deep_cut.emptied.at[..]),
            (2, &[0, 2][..])
        );
        let size_cut = cut_to_fit(&deep_cut.body, BodyFormat::Protobuf, 2000, 0).expect("cut");
        assert_eq!((size_cut.values, &size_cut.at[..]), (2, &[0, 1][..]));
        // Cut to a size first, then to the depth: the same places.
        let size_cut = cut_to_fit(&body, BodyFormat::Protobuf, 2500, 0).expect("cut");
        assert_eq!(size_cut.at, [0, 1]);
        let deep_cut = cut_deep(&size_cut.body, BodyFormat::Protobuf, 16).expect("deep");
        assert_eq!(deep_cut.emptied.at, [0, 2]);
    }

    /// An OTLP/JSON request of one span with these attribute values.
    fn json_request(values: &[&str]) -> Vec<u8> {
        let attributes: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!(r#"{{"key":"k{i}","value":{v}}}"#))
            .collect();
        format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[]}},"scopeSpans":[{{"scope":{{"name":"s"}},"spans":[{{"traceId":"07070707070707070707070707070707","spanId":"0909090909090909","name":"llm.chat","startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":[{}],"status":{{"message":"{}","code":2}}}}]}}]}}]}}"#,
            attributes.join(","),
            "m".repeat(50)
        )
        .into_bytes()
    }

    #[test]
    fn json_text_is_cut_on_characters_and_escapes_and_base64_on_whole_groups() {
        // 3000 "é" (2 bytes each), 3000 escaped control characters (6 bytes
        // each in JSON, 1 decoded), 3000 bytes as base64, and a short value.
        let accents = format!(r#"{{"stringValue":"{}"}}"#, "é".repeat(3000));
        let controls = format!(r#"{{"stringValue":"{}"}}"#, "\\u0001".repeat(3000));
        let bytes = format!(r#"{{"bytesValue":"{}"}}"#, "QUJD".repeat(1000));
        let short = r#"{"stringValue":"short"}"#.to_string();
        let body = json_request(&[&accents, &controls, &bytes, &short]);
        let cut = cut_to_fit(&body, BodyFormat::Json, body.len() / 4, 0).expect("cut");
        assert!(cut.body.len() <= body.len() / 4);
        assert_eq!(
            cut.values, 3,
            "the three long values, not the short one nor the status"
        );
        let spans = decode_json(&cut.body).expect("valid OTLP/JSON");
        let span = &spans[0];
        assert_eq!(span.name, "llm.chat");
        assert_eq!(span.status_message, "m".repeat(50));
        let text = |k: &str| {
            span.attribute(k)
                .and_then(Value::as_str)
                .expect(k)
                .to_string()
        };
        let a = text("k0");
        assert!(
            !a.is_empty() && a.chars().all(|c| c == 'é'),
            "whole characters"
        );
        let c = text("k1");
        assert!(!c.is_empty() && c.bytes().all(|b| b == 1));
        assert_eq!(text("k3"), "short");
        match span.attribute("k2") {
            Some(Value::Bytes(b)) => {
                assert!(!b.is_empty() && b.len() < 3000 && b.len() % 3 == 0);
                assert!(b.chunks(3).all(|g| g == b"ABC"));
            }
            other => panic!("bytes expected, got {other:?}"),
        }
    }

    #[test]
    fn a_request_with_no_value_to_cut_is_left_alone() {
        let body = json_request(&[r#"{"intValue":"5"}"#]);
        // The status message is a value too: emptied at most.
        let cut = cut_to_fit(&body, BodyFormat::Json, 10, 0).expect("the status message");
        assert_eq!(cut.values, 1);
        let plain = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"name":"{}"}}]}}]}}]}}"#,
            "n".repeat(5000)
        );
        assert!(
            cut_to_fit(plain.as_bytes(), BodyFormat::Json, 10, 0).is_none(),
            "names are not cut"
        );
    }

    #[test]
    fn values_cut_before_are_cut_again_and_not_counted_again() {
        // An earlier cut to 999 bytes left "é"s at 998 (a character
        // boundary) and counted it; a value of 1000 bytes beside it was
        // shorter than that cut's cap, so kept. A cap of 999 would now cut
        // only the new one, and subtracting the earlier count would count
        // none: kept under 997, both are cut, the new one counted.
        let cut_before = format!(r#"{{"stringValue":"{}"}}"#, "é".repeat(499));
        let whole = format!(r#"{{"stringValue":"{}"}}"#, "x".repeat(1000));
        let body = json_request(&[&cut_before, &whole]);
        let cut = cut_to_fit(&body, BodyFormat::Json, body.len() - 1, 1).expect("cut");
        assert_eq!((cut.shortened, cut.values), (2, 1));
        let cut = cut_to_fit(&body, BodyFormat::Json, body.len() - 1, 0).expect("cut");
        assert_eq!(
            (cut.shortened, cut.values),
            (1, 1),
            "no earlier cut: the least"
        );
    }

    /// Two resources (and two scopes) whose values differ only past the
    /// depth are cut to the same bytes but are two messages: a delivery
    /// that knew them by their bytes as cut counted the second's value
    /// never. Known as given, in both encodings; one message sent again
    /// is the same one.
    #[test]
    fn messages_apart_only_past_the_depth_are_told_apart_once_cut() {
        use crate::span::any_value::tests::{map, string};
        let proto_body = |tail: &str| {
            let mut v = string(tail);
            for _ in 0..40 {
                v = map(&[("k", v)]);
            }
            let mut kv = Vec::new();
            write_len_field(&mut kv, 1, b"deep");
            write_len_field(&mut kv, 2, &v);
            let (mut resource, mut scope, mut scope_spans) = (Vec::new(), Vec::new(), Vec::new());
            write_len_field(&mut resource, 1, &kv);
            write_len_field(&mut scope, 1, b"openai");
            write_len_field(&mut scope, 3, &kv);
            write_len_field(&mut scope_spans, 1, &scope);
            let mut resource_spans = Vec::new();
            write_len_field(&mut resource_spans, 1, &resource);
            write_len_field(&mut resource_spans, 2, &scope_spans);
            let mut request = Vec::new();
            write_len_field(&mut request, 1, &resource_spans);
            request
        };
        let json_body = |tail: &str| {
            let mut v = format!(r#"{{"stringValue":"{tail}"}}"#);
            for _ in 0..40 {
                v = format!(r#"{{"kvlistValue":{{"values":[{{"key":"k","value":{v}}}]}}}}"#);
            }
            let attributes = format!(r#"[{{"key":"deep","value":{v}}}]"#);
            format!(
                r#"{{"resourceSpans":[{{"resource":{{"attributes":{attributes}}},"scopeSpans":[{{"scope":{{"name":"openai","attributes":{attributes}}},"spans":[]}}]}}]}}"#
            )
            .into_bytes()
        };
        for (format, body) in [
            (
                BodyFormat::Protobuf,
                &proto_body as &dyn Fn(&str) -> Vec<u8>,
            ),
            (BodyFormat::Json, &json_body),
        ] {
            let cut = |tail: &str| cut_deep(&body(tail), format, 16).expect("cut");
            let (a, b, a_again) = (cut("a"), cut("b"), cut("a"));
            assert_eq!(a.body, b.body, "{format:?}: the same bytes once cut");
            let keys =
                |c: &DeepCut| -> Vec<u64> { c.emptied.shared.iter().map(|s| s.key).collect() };
            assert_eq!(keys(&a).len(), 2, "{format:?}: the resource and the scope");
            for (ka, kb) in keys(&a).iter().zip(keys(&b)) {
                assert_ne!(*ka, kb, "{format:?}: two messages");
            }
            assert_eq!(keys(&a), keys(&a_again), "{format:?}: one message");
        }
    }
}
