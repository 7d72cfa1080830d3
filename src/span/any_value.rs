//! Complex attribute values (OpenTelemetry's `AnyValue`: a map, an array
//! of values of any kinds, bytes, an empty value, nested to any depth),
//! given as an OTLP `AnyValue` message already encoded as protobuf
//! (opentelemetry/proto/common/v1/common.proto). spanguard keeps the
//! message as it is and the protobuf encoder sends it unchanged, so each
//! one is checked here before it is stored: a malformed message would
//! break the whole request it travels in, and the JSON encoder and
//! `spanguard show` read it back. A message from C is copied first and the
//! copy checked (`AnyValueCopy`): what was checked is what is stored, even
//! if the caller's buffer changes meanwhile. The reader is bounded: every
//! length is checked against what is there, and no walk recurses past
//! `MAX_DEPTH_LIMIT + 1` levels.
//!
//! Depth, as OpenTelemetry's SDK configuration (`attribute_value_depth_limit`)
//! counts it: the attribute's own value is level 1, each array element or
//! map value one more. An array or map deeper than the limit is replaced
//! by the empty value when stored (`AnyValueRef::limited`), counted as a
//! truncated value; the rest of the value is kept.

use crate::span::proto_reader::{read_varint, split_key};

/// The depth limit when none is set: the OpenTelemetry SDK
/// configuration's default for `attribute_value_depth_limit`.
pub const DEFAULT_DEPTH_LIMIT: u32 = 64;
/// The highest depth limit a tracer may be given. Arrays and maps past it
/// are never read, not even to check them: they are replaced by the empty
/// value whatever the limit. It bounds how deep every walk over a value
/// recurses (the checker, the cut, the JSON encoder, `spanguard show`, the
/// readers of spool, dump and flight files), and so their stack use: a
/// few hundred bytes a level, tens of KiB in all, on the caller's thread.
pub const MAX_DEPTH_LIMIT: u32 = 128;
/// The deepest level a stored value has: an array or map at
/// `MAX_DEPTH_LIMIT` holds scalars or empty values one level down. Readers
/// of stored values (the JSON encoder, `spanguard show`, the OTLP decoder)
/// read no deeper than this, whatever a file holds.
pub const MAX_STORED_DEPTH: usize = MAX_DEPTH_LIMIT as usize + 1;

/// `AnyValue`'s fields.
pub(crate) const ANY_STRING: u64 = 1;
pub(crate) const ANY_BOOL: u64 = 2;
pub(crate) const ANY_INT: u64 = 3;
pub(crate) const ANY_DOUBLE: u64 = 4;
pub(crate) const ANY_ARRAY: u64 = 5;
pub(crate) const ANY_KVLIST: u64 = 6;
pub(crate) const ANY_BYTES: u64 = 7;
/// `ArrayValue.values` and `KeyValueList.values`.
pub(crate) const LIST_VALUES: u64 = 1;
pub(crate) const KEY_VALUE_KEY: u64 = 1;
pub(crate) const KEY_VALUE_VALUE: u64 = 2;

/// The message is not an `AnyValue` spanguard accepts: a field number 0 or
/// one `AnyValue`, `ArrayValue`, `KeyValueList` or `KeyValue` does not
/// define, a field of the wrong wire type, a length past the end, a
/// varint past 64 bits (which protobuf's parsers refuse: it would break
/// the request), a string or key that is not UTF-8, or two values in one
/// `AnyValue` (or two keys or values in one `KeyValue`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// One field's payload.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
}

/// The fields of a message, in order, without allocating; a malformed one
/// ends the walk with `Err`.
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

pub(crate) fn fields(buf: &[u8]) -> Fields<'_> {
    Fields { buf, pos: 0 }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Wire<'a>), Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let field = self.read();
        if field.is_err() {
            // Nothing after a malformed field can be read.
            self.pos = self.buf.len();
        }
        Some(field)
    }
}

impl<'a> Fields<'a> {
    fn read(&mut self) -> Result<(u64, Wire<'a>), Malformed> {
        let (buf, pos) = (self.buf, &mut self.pos);
        let key = read_varint(buf, pos).ok_or(Malformed)?;
        let (number, wire_type) = split_key(key).ok_or(Malformed)?;
        let wire = match wire_type {
            0 => Wire::Varint(read_varint(buf, pos).ok_or(Malformed)?),
            1 => {
                let bytes = buf.get(*pos..*pos + 8).ok_or(Malformed)?;
                *pos += 8;
                Wire::Fixed64(u64::from_le_bytes(bytes.try_into().map_err(|_| Malformed)?))
            }
            2 => {
                let len = usize::try_from(read_varint(buf, pos).ok_or(Malformed)?)
                    .map_err(|_| Malformed)?;
                let end = pos.checked_add(len).filter(|&e| e <= buf.len());
                let end = end.ok_or(Malformed)?;
                let bytes = &buf[*pos..end];
                *pos = end;
                Wire::Len(bytes)
            }
            // Groups and fixed32: no field of these messages has them.
            _ => return Err(Malformed),
        };
        Ok((number, wire))
    }
}

/// An encoded `AnyValue` that `check` accepted.
#[derive(Clone, Copy, Debug)]
pub struct AnyValueRef<'a> {
    bytes: &'a [u8],
    /// The longest string inside, in characters, or bytes value, in bytes:
    /// what the attribute value length limit is compared with.
    longest_leaf: usize,
    /// The level of the deepest array or map inside (0: none); past
    /// `MAX_DEPTH_LIMIT`, one past it, and that array or map not read.
    deepest: usize,
}

/// What a check found: the longest leaf, the deepest array or map.
#[derive(Clone, Copy, Default)]
struct Found {
    longest_leaf: usize,
    deepest: usize,
}

impl<'a> AnyValueRef<'a> {
    /// Checks `bytes` (see `Malformed`) down to `MAX_DEPTH_LIMIT`; an
    /// array or map deeper than that is not read (`limited` replaces it
    /// by the empty value, whatever the limit). Empty bytes are the empty
    /// value (a Python None, a JavaScript null). For bytes no one else can
    /// change meanwhile (a caller's buffer from C: `AnyValueCopy`).
    pub fn check(bytes: &'a [u8]) -> Result<AnyValueRef<'a>, Malformed> {
        let mut found = Found::default();
        check_any(bytes, 1, Past::Skip, &mut found)?;
        Ok(AnyValueRef {
            bytes,
            longest_leaf: found.longest_leaf,
            deepest: found.deepest,
        })
    }

    /// Whether an array or map inside is deeper than `depth_limit`.
    #[inline]
    pub fn deeper_than(&self, depth_limit: usize) -> bool {
        self.deepest > depth_limit
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Whether a value length limit of `limit` (characters of a string,
    /// bytes of a bytes value) cuts something inside.
    #[inline]
    pub fn cut_by(&self, limit: usize) -> bool {
        self.longest_leaf > limit
    }

    /// Whether `limited(limit, depth_limit)` changes the message.
    #[inline]
    pub fn limited_by(&self, limit: usize, depth_limit: usize) -> bool {
        self.cut_by(limit) || self.deeper_than(depth_limit)
    }

    /// The message as OpenTelemetry's attribute limits ask: each string
    /// inside cut to `limit` characters and each bytes value to `limit`
    /// bytes (an array's elements and a map's values each), each array or
    /// map deeper than `depth_limit` (at most `MAX_DEPTH_LIMIT`) replaced
    /// by the empty value; the message's lengths written anew. Allocates:
    /// only for a value the limits change.
    pub fn limited(&self, limit: usize, depth_limit: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len());
        let limits = Limits {
            len: limit,
            depth: depth_limit.min(MAX_DEPTH_LIMIT as usize),
        };
        cut_any(self.bytes, limits, 1, &mut out);
        out
    }

    /// `limited` with no depth limit but `MAX_DEPTH_LIMIT`.
    pub fn cut(&self, limit: usize) -> Vec<u8> {
        self.limited(limit, MAX_DEPTH_LIMIT as usize)
    }
}

/// A caller's message copied, then checked: the bytes checked are the
/// bytes stored. (Checking the caller's buffer and copying it afterwards
/// let a caller that changed it meanwhile, from another thread, have
/// unchecked bytes stored, which broke the whole OTLP request they went in
/// and the JSON encoder.) Allocates: complex values are off the hot path.
#[derive(Debug)]
pub struct AnyValueCopy {
    bytes: Vec<u8>,
    found_longest_leaf: usize,
    found_deepest: usize,
}

impl AnyValueCopy {
    /// Copies `src` (read once) and checks the copy (`AnyValueRef::check`).
    pub fn of(src: &[u8]) -> Result<AnyValueCopy, Malformed> {
        let bytes = src.to_vec();
        #[cfg(test)]
        tests::after_copy(src);
        let checked = AnyValueRef::check(&bytes)?;
        let (found_longest_leaf, found_deepest) = (checked.longest_leaf, checked.deepest);
        Ok(AnyValueCopy {
            bytes,
            found_longest_leaf,
            found_deepest,
        })
    }

    /// The checked copy.
    pub fn value(&self) -> AnyValueRef<'_> {
        AnyValueRef {
            bytes: &self.bytes,
            longest_leaf: self.found_longest_leaf,
            deepest: self.found_deepest,
        }
    }
}

/// Whether the stored bytes of a value read back from disk are still a
/// well-formed `AnyValue` (a torn or forged record's may not be), with no
/// array or map deeper than `MAX_DEPTH_LIMIT` (which no stored value has).
pub fn is_well_formed(bytes: &[u8]) -> bool {
    check_any(bytes, 1, Past::Refuse, &mut Found::default()).is_ok()
}

/// What a check does with an array or map deeper than `MAX_DEPTH_LIMIT`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Past {
    /// Leaves it unread (a value being set: it is replaced when stored).
    Skip,
    /// Refuses the value (a stored one, read back from disk).
    Refuse,
}

fn check_any(buf: &[u8], depth: usize, past: Past, found: &mut Found) -> Result<(), Malformed> {
    let mut seen = false;
    for f in fields(buf) {
        let (number, wire) = f?;
        if std::mem::replace(&mut seen, true) {
            return Err(Malformed);
        }
        match (number, wire) {
            (ANY_STRING, Wire::Len(s)) => {
                let s = simdutf8::basic::from_utf8(s).map_err(|_| Malformed)?;
                found.longest_leaf = found.longest_leaf.max(char_count(s));
            }
            (ANY_BYTES, Wire::Len(b)) => found.longest_leaf = found.longest_leaf.max(b.len()),
            (ANY_BOOL | ANY_INT, Wire::Varint(_)) | (ANY_DOUBLE, Wire::Fixed64(_)) => {}
            (ANY_ARRAY | ANY_KVLIST, Wire::Len(_)) if depth > MAX_DEPTH_LIMIT as usize => {
                if past == Past::Refuse {
                    return Err(Malformed);
                }
                found.deepest = depth;
            }
            (ANY_ARRAY, Wire::Len(list)) => {
                found.deepest = found.deepest.max(depth);
                for f in fields(list) {
                    match f? {
                        (LIST_VALUES, Wire::Len(v)) => check_any(v, depth + 1, past, found)?,
                        _ => return Err(Malformed),
                    }
                }
            }
            (ANY_KVLIST, Wire::Len(list)) => {
                found.deepest = found.deepest.max(depth);
                for f in fields(list) {
                    match f? {
                        (LIST_VALUES, Wire::Len(kv)) => {
                            check_key_value(kv, depth + 1, past, found)?
                        }
                        _ => return Err(Malformed),
                    }
                }
            }
            _ => return Err(Malformed),
        }
    }
    Ok(())
}

/// A map's member; `depth` is its value's.
fn check_key_value(
    buf: &[u8],
    depth: usize,
    past: Past,
    found: &mut Found,
) -> Result<(), Malformed> {
    let (mut key, mut value) = (false, false);
    for f in fields(buf) {
        match f? {
            (KEY_VALUE_KEY, Wire::Len(k)) if !std::mem::replace(&mut key, true) => {
                simdutf8::basic::from_utf8(k).map_err(|_| Malformed)?;
            }
            (KEY_VALUE_VALUE, Wire::Len(v)) if !std::mem::replace(&mut value, true) => {
                check_any(v, depth, past, found)?
            }
            _ => return Err(Malformed),
        }
    }
    Ok(())
}

fn char_count(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// The first `limit` characters of `s` (valid UTF-8).
fn first_chars(s: &[u8], limit: usize) -> &[u8] {
    if s.len() <= limit {
        return s;
    }
    match std::str::from_utf8(s)
        .ok()
        .and_then(|t| t.char_indices().nth(limit))
    {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

fn put_len_field(out: &mut Vec<u8>, number: u64, payload: &[u8]) {
    crate::span::proto_reader::write_len_field(out, number, payload);
}

fn put_varint_field(out: &mut Vec<u8>, number: u64, wire_type: u64, v: u64) {
    crate::span::proto_reader::write_varint(out, (number << 3) | wire_type);
    crate::span::proto_reader::write_varint(out, v);
}

/// `AnyValueRef::limited`'s limits: value length, depth.
#[derive(Clone, Copy)]
struct Limits {
    len: usize,
    depth: usize,
}

/// `AnyValueRef::limited`'s walk (of a checked message) at level `depth`:
/// an array or map past the depth limit is left out, which leaves the
/// empty value.
fn cut_any(buf: &[u8], limits: Limits, depth: usize, out: &mut Vec<u8>) {
    let limit = limits.len;
    for (number, wire) in fields(buf).flatten() {
        match (number, wire) {
            (ANY_STRING, Wire::Len(s)) => put_len_field(out, number, first_chars(s, limit)),
            (ANY_BYTES, Wire::Len(b)) => put_len_field(out, number, &b[..b.len().min(limit)]),
            (ANY_ARRAY | ANY_KVLIST, Wire::Len(_)) if depth > limits.depth => {}
            (ANY_ARRAY | ANY_KVLIST, Wire::Len(list)) => {
                let mut items = Vec::with_capacity(list.len());
                for (_, item) in fields(list).flatten() {
                    let Wire::Len(item) = item else { continue };
                    let mut cut = Vec::with_capacity(item.len());
                    if number == ANY_ARRAY {
                        cut_any(item, limits, depth + 1, &mut cut);
                    } else {
                        cut_key_value(item, limits, depth + 1, &mut cut);
                    }
                    put_len_field(&mut items, LIST_VALUES, &cut);
                }
                put_len_field(out, number, &items);
            }
            (_, Wire::Varint(v)) => put_varint_field(out, number, 0, v),
            (_, Wire::Fixed64(v)) => {
                crate::span::proto_reader::write_varint(out, (number << 3) | 1);
                out.extend_from_slice(&v.to_le_bytes());
            }
            (_, Wire::Len(b)) => put_len_field(out, number, b),
        }
    }
}

/// A map's member; `depth` is its value's.
fn cut_key_value(buf: &[u8], limits: Limits, depth: usize, out: &mut Vec<u8>) {
    for (number, wire) in fields(buf).flatten() {
        match (number, wire) {
            (KEY_VALUE_VALUE, Wire::Len(v)) => {
                let mut cut = Vec::with_capacity(v.len());
                cut_any(v, limits, depth, &mut cut);
                put_len_field(out, number, &cut);
            }
            (_, Wire::Len(b)) => put_len_field(out, number, b),
            _ => {}
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        /// Run by `AnyValueCopy::of` between the copy and the check, on
        /// this thread: a test's stand-in for another thread writing to
        /// the caller's buffer then.
        static AFTER_COPY: RefCell<Option<Box<dyn FnMut()>>> = const { RefCell::new(None) };
    }

    pub(crate) fn after_copy(_src: &[u8]) {
        AFTER_COPY.with(|h| {
            if let Some(f) = h.borrow_mut().as_mut() {
                f()
            }
        });
    }

    /// Runs `f` with `hook` run after each copy (see `AFTER_COPY`).
    pub(crate) fn with_after_copy<R>(hook: Box<dyn FnMut()>, f: impl FnOnce() -> R) -> R {
        AFTER_COPY.with(|h| *h.borrow_mut() = Some(hook));
        let r = f();
        AFTER_COPY.with(|h| *h.borrow_mut() = None);
        r
    }

    /// Encoders for the tests' messages.
    pub(crate) fn string(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        put_len_field(&mut out, ANY_STRING, s.as_bytes());
        out
    }

    pub(crate) fn int(i: i64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint_field(&mut out, ANY_INT, 0, i as u64);
        out
    }

    pub(crate) fn double(d: f64) -> Vec<u8> {
        let mut out = Vec::new();
        crate::span::proto_reader::write_varint(&mut out, (ANY_DOUBLE << 3) | 1);
        out.extend_from_slice(&d.to_bits().to_le_bytes());
        out
    }

    /// `inner` in `levels` arrays of one element, built in linear time
    /// (each length prefix computed inside out, then written in order):
    /// `array` over and over copies the whole value a level.
    pub(crate) fn deep_arrays(levels: usize, inner: &[u8]) -> Vec<u8> {
        let mut prefixes = Vec::with_capacity(levels);
        let mut len = inner.len();
        for _ in 0..levels {
            let mut p = Vec::new();
            put_varint_field(&mut p, ANY_ARRAY, 2, 0);
            p.pop();
            let mut element = Vec::new();
            put_varint_field(&mut element, LIST_VALUES, 2, len as u64);
            let list_len = element.len() + len;
            crate::span::proto_reader::write_varint(&mut p, list_len as u64);
            p.extend_from_slice(&element);
            len += p.len();
            prefixes.push(p);
        }
        let mut out = Vec::with_capacity(len);
        for p in prefixes.iter().rev() {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(inner);
        out
    }

    pub(crate) fn array(items: &[Vec<u8>]) -> Vec<u8> {
        let mut list = Vec::new();
        for i in items {
            put_len_field(&mut list, LIST_VALUES, i);
        }
        let mut out = Vec::new();
        put_len_field(&mut out, ANY_ARRAY, &list);
        out
    }

    pub(crate) fn map(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut list = Vec::new();
        for (k, v) in members {
            let mut kv = Vec::new();
            put_len_field(&mut kv, KEY_VALUE_KEY, k.as_bytes());
            put_len_field(&mut kv, KEY_VALUE_VALUE, v);
            put_len_field(&mut list, LIST_VALUES, &kv);
        }
        let mut out = Vec::new();
        put_len_field(&mut out, ANY_KVLIST, &list);
        out
    }

    fn nested(levels: usize) -> Vec<u8> {
        let v = deep_arrays(levels - 1, &int(1));
        if levels < 10 {
            let mut slow = int(1);
            for _ in 1..levels {
                slow = array(&[slow]);
            }
            assert_eq!(v, slow);
        }
        v
    }

    #[test]
    fn well_formed_values_are_accepted_whole() {
        let tool_args = map(&[
            ("city", string("Paris")),
            ("days", array(&[int(1), double(2.5), string("x")])),
            ("ok", Vec::new()),
        ]);
        let v = AnyValueRef::check(&tool_args).expect("a map");
        assert_eq!(v.bytes(), &tool_args[..]);
        assert!(!v.cut_by(5) && v.cut_by(4));
        assert!(AnyValueRef::check(&[]).is_ok(), "the empty value");
        assert!(AnyValueRef::check(&nested(3)).is_ok());
        // Any depth: what is past the depth limit is replaced when stored.
        for levels in [64, 65, MAX_STORED_DEPTH, MAX_STORED_DEPTH + 1, 10_000] {
            let deep = nested(levels);
            let v = AnyValueRef::check(&deep).expect("deep");
            // The deepest array, or one past the highest limit, unread.
            let deepest = (levels - 1).min(MAX_STORED_DEPTH);
            assert!(!v.deeper_than(deepest) && v.deeper_than(deepest - 1));
        }
    }

    /// A stored value read back from disk (a flight recorder file, a
    /// dump) is well formed only as deep as stored values go: one forged
    /// 10,000 deep is refused, its walk bounded (no stack overflow), and
    /// so never sent nor written as JSON.
    #[test]
    fn a_stored_value_deeper_than_any_stored_one_is_not_well_formed() {
        assert!(is_well_formed(&nested(MAX_STORED_DEPTH)));
        assert!(!is_well_formed(&nested(MAX_STORED_DEPTH + 1)));
        assert!(!is_well_formed(&nested(10_000)));
        assert!(!is_well_formed(&deep_arrays(1_000_000, &[])));
    }

    #[test]
    fn malformed_values_are_refused() {
        let good = map(&[("k", string("v"))]);
        let truncated = &good[..good.len() - 1];
        assert_eq!(AnyValueRef::check(truncated).err(), Some(Malformed));
        // Field 0, a wire type no field has, a field AnyValue lacks.
        assert!(AnyValueRef::check(&[0x00, 0x01]).is_err());
        assert!(AnyValueRef::check(&[0x0b]).is_err());
        assert!(AnyValueRef::check(&[(8 << 3), 1]).is_err());
        // A string sent as a varint; two values in one AnyValue.
        assert!(AnyValueRef::check(&[(ANY_STRING << 3) as u8, 1]).is_err());
        assert!(AnyValueRef::check(&[int(1), int(2)].concat()).is_err());
        // Malformed under the depth limit: refused however deep.
        let mut bad_deep = Vec::new();
        put_len_field(&mut bad_deep, ANY_STRING, b"\xff");
        for _ in 0..100 {
            bad_deep = array(&[bad_deep]);
        }
        assert!(AnyValueRef::check(&bad_deep).is_err());
        // Not UTF-8: a string inside, a key.
        let mut bad = Vec::new();
        put_len_field(&mut bad, ANY_STRING, b"\xff\xfe");
        assert!(AnyValueRef::check(&array(&[bad])).is_err());
        let mut kv = Vec::new();
        put_len_field(&mut kv, KEY_VALUE_KEY, b"\xc3");
        let mut list = Vec::new();
        put_len_field(&mut list, LIST_VALUES, &kv);
        let mut bad_key = Vec::new();
        put_len_field(&mut bad_key, ANY_KVLIST, &list);
        assert!(AnyValueRef::check(&bad_key).is_err());
        // A length past the end, a varint that never ends.
        assert!(AnyValueRef::check(&[0x2a, 0x7f, 0x0a]).is_err());
        assert!(AnyValueRef::check(&[0x18, 0xff, 0xff]).is_err());
    }

    /// A varint of ten bytes whose last holds more than bit 63 is a value
    /// past 64 bits: the Collector's protobuf parser (Go's) refuses it, and
    /// with it the whole request the message is sent in unchanged, as
    /// spanguard's own decoder does (`spanguard show`). It was accepted,
    /// the bits past 64 dropped (found by the `any_value` fuzz target).
    #[test]
    fn a_varint_past_64_bits_is_refused() {
        let mut min = vec![(ANY_INT << 3) as u8];
        min.extend_from_slice(&[0x80; 9]);
        min.push(0x01);
        assert_eq!(min, int(i64::MIN), "bit 63 alone in the tenth byte");
        assert!(AnyValueRef::check(&min).is_ok());
        for last in [0x02, 0x7f] {
            let mut over = min.clone();
            *over.last_mut().unwrap() = last;
            assert_eq!(AnyValueRef::check(&over).err(), Some(Malformed));
            assert!(AnyValueRef::check(&array(&[over])).is_err());
        }
    }

    #[test]
    fn the_limit_cuts_each_string_and_bytes_value_inside() {
        let long = map(&[
            ("prompt", string(&"é".repeat(10))),
            ("n", int(7)),
            ("list", array(&[string("abcdef"), string("ab")])),
        ]);
        let v = AnyValueRef::check(&long).expect("a map");
        let cut = v.cut(3);
        let want = map(&[
            ("prompt", string("ééé")),
            ("n", int(7)),
            ("list", array(&[string("abc"), string("ab")])),
        ]);
        assert_eq!(cut, want);
        assert!(
            !AnyValueRef::check(&cut)
                .expect("still well formed")
                .cut_by(3)
        );
    }

    fn bytes(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_len_field(&mut out, ANY_BYTES, b);
        out
    }

    /// The specification's attribute value length limit (common/README.md,
    /// "Attribute Limits"), rule by rule: a string to `limit` characters, a
    /// byte array to `limit` bytes, an array's elements and a map's values
    /// each separately and recursively, and "otherwise a value MUST NOT be
    /// truncated": a map's keys, numbers, the empty value, and how many
    /// elements or members there are.
    #[test]
    fn the_limit_cuts_as_the_specification_says() {
        let long_key = "k".repeat(10);
        let whole = map(&[
            (long_key.as_str(), string("abcdefgh")),
            ("b", bytes(&[0, 1, 2, 3, 4])),
            ("ints", array(&[int(1), int(2), int(3), int(4), int(5)])),
            (
                "nested",
                array(&[map(&[("x", string("ééééé"))]), bytes(b"123456"), Vec::new()]),
            ),
            ("d", double(1.5)),
        ]);
        let cut = AnyValueRef::check(&whole).expect("a map").cut(3);
        let want = map(&[
            (long_key.as_str(), string("abc")),
            ("b", bytes(&[0, 1, 2])),
            ("ints", array(&[int(1), int(2), int(3), int(4), int(5)])),
            (
                "nested",
                array(&[map(&[("x", string("ééé"))]), bytes(b"123"), Vec::new()]),
            ),
            ("d", double(1.5)),
        ]);
        assert_eq!(cut, want);
        let six = bytes(b"abcdef");
        let top = AnyValueRef::check(&six).expect("bytes");
        assert!(top.cut_by(2) && !top.cut_by(6));
        assert_eq!(top.cut(2), bytes(b"ab"));
        // A limit of 0 leaves each string empty, the string still there.
        let xyz = string("xyz");
        let s = AnyValueRef::check(&xyz).expect("a string");
        assert_eq!(s.cut(0), string(""));
        // The longest key counts for nothing.
        let keyed = map(&[(long_key.as_str(), int(1))]);
        assert!(!AnyValueRef::check(&keyed).expect("a map").cut_by(1));
    }
}
