//! An independent reference reader of OTLP `AnyValue` messages
//! (opentelemetry/proto/common/v1/common.proto), written from the
//! protobuf encoding's and the header's documentation, not from
//! `span::any_value`: the model the targets `any_value` and `c_abi_calls`
//! check spanguard's checker, its cut and its encoders against (`mod
//! any_ref;`).
//!
//! What it accepts is what include/spanguard.h documents for
//! `SPANGUARD_RESULT_INVALID_ANY_VALUE`: refused are a field number 0 or
//! past protobuf's largest, one `AnyValue`, `ArrayValue`, `KeyValueList`
//! or `KeyValue` does not define, a wire type no field of theirs has
//! (groups, fixed32) or the wrong one for the field, a length or varint
//! past the end, a varint past 64 bits, a string or key that is not
//! UTF-8, two values in one `AnyValue`, two keys or two values in one
//! `KeyValue`. Depth: the value
//! itself is level 1, each array element or map value one more; an array
//! or map past `MAX_READ` (`SPANGUARD_MAX_DEPTH_LIMIT`) is not read at
//! all (`Node::Past`): it is replaced by the empty value whatever the
//! limit, so the recursion is bounded however deep the input nests.
#![allow(dead_code)]

/// The deepest level whose arrays and maps are read.
pub const MAX_READ: usize = 128;

/// A value as the reference read it. Doubles as their bits: compared
/// exactly.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(u64),
    Bytes(Vec<u8>),
    Array(Vec<Node>),
    Map(Vec<(String, Node)>),
    /// No value set.
    Empty,
    /// An array or map past `MAX_READ`, not read.
    Past,
}

enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
}

/// The fields of one message, read one at a time.
struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader { b, i: 0 }
    }

    /// A base-128 varint of at most ten bytes and 64 bits: the tenth byte
    /// may hold bit 63 alone (as Go's protowire, the Collector's parser,
    /// reads it: more is an overflow, and the request is refused).
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for k in 0..10u32 {
            let byte = *self.b.get(self.i)?;
            self.i += 1;
            if k == 9 && byte > 1 {
                return None;
            }
            v |= u64::from(byte & 0x7f) << (7 * k);
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    }

    /// The next field, None at the end; Some(None) for a malformed one.
    fn field(&mut self) -> Option<Option<(u64, Wire<'a>)>> {
        if self.i == self.b.len() {
            return None;
        }
        Some(self.read_field())
    }

    fn read_field(&mut self) -> Option<(u64, Wire<'a>)> {
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number >= 1 << 29 {
            return None;
        }
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                let b = self.b.get(self.i..self.i.checked_add(8)?)?;
                self.i += 8;
                Wire::Fixed64(u64::from_le_bytes(b.try_into().ok()?))
            }
            2 => {
                let n = usize::try_from(self.varint()?).ok()?;
                let end = self.i.checked_add(n)?;
                let b = self.b.get(self.i..end)?;
                self.i = end;
                Wire::Len(b)
            }
            _ => return None,
        };
        Some((number, wire))
    }
}

/// `buf` read as the `AnyValue` at `level`; None if refused.
pub fn read(buf: &[u8]) -> Option<Node> {
    any(buf, 1)
}

fn any(buf: &[u8], level: usize) -> Option<Node> {
    let mut r = Reader::new(buf);
    let mut node = Node::Empty;
    let mut n = 0;
    while let Some(f) = r.field() {
        let (number, wire) = f?;
        n += 1;
        if n > 1 {
            return None;
        }
        node = match (number, wire) {
            (1, Wire::Len(s)) => Node::Str(std::str::from_utf8(s).ok()?.to_owned()),
            (2, Wire::Varint(v)) => Node::Bool(v != 0),
            (3, Wire::Varint(v)) => Node::Int(v as i64),
            (4, Wire::Fixed64(v)) => Node::Double(v),
            (7, Wire::Len(b)) => Node::Bytes(b.to_vec()),
            (5 | 6, Wire::Len(_)) if level > MAX_READ => Node::Past,
            (5, Wire::Len(list)) => {
                let mut items = Vec::new();
                let mut lr = Reader::new(list);
                while let Some(f) = lr.field() {
                    match f? {
                        (1, Wire::Len(v)) => items.push(any(v, level + 1)?),
                        _ => return None,
                    }
                }
                Node::Array(items)
            }
            (6, Wire::Len(list)) => {
                let mut members = Vec::new();
                let mut lr = Reader::new(list);
                while let Some(f) = lr.field() {
                    match f? {
                        (1, Wire::Len(kv)) => members.push(key_value(kv, level + 1)?),
                        _ => return None,
                    }
                }
                Node::Map(members)
            }
            _ => return None,
        };
    }
    Some(node)
}

/// A map member whose value is at `level`.
fn key_value(buf: &[u8], level: usize) -> Option<(String, Node)> {
    let mut r = Reader::new(buf);
    let (mut key, mut value) = (None, None);
    while let Some(f) = r.field() {
        match f? {
            (1, Wire::Len(k)) if key.is_none() => {
                key = Some(std::str::from_utf8(k).ok()?.to_owned())
            }
            (2, Wire::Len(v)) if value.is_none() => value = Some(any(v, level)?),
            _ => return None,
        }
    }
    Some((key.unwrap_or_default(), value.unwrap_or(Node::Empty)))
}

/// `node` (at `level`) as OpenTelemetry's attribute limits leave it:
/// each string cut to `len` characters, each bytes value to `len` bytes,
/// map keys whole, each array or map deeper than `depth` (and each one
/// not read) the empty value.
pub fn limited(node: &Node, len: usize, depth: usize, level: usize) -> Node {
    match node {
        Node::Str(s) => Node::Str(s.chars().take(len).collect()),
        Node::Bytes(b) => Node::Bytes(b[..b.len().min(len)].to_vec()),
        Node::Past => Node::Empty,
        Node::Array(_) | Node::Map(_) if level > depth => Node::Empty,
        Node::Array(items) => Node::Array(
            items
                .iter()
                .map(|i| limited(i, len, depth, level + 1))
                .collect(),
        ),
        Node::Map(members) => Node::Map(
            members
                .iter()
                .map(|(k, v)| (k.clone(), limited(v, len, depth, level + 1)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The message of `node` (no `Node::Past` in it), encoded canonically.
pub fn encode(node: &Node) -> Vec<u8> {
    let mut out = Vec::new();
    match node {
        Node::Str(s) => put_len(&mut out, 1, s.as_bytes()),
        Node::Bool(b) => put_varint_field(&mut out, 2, *b as u64),
        Node::Int(i) => put_varint_field(&mut out, 3, *i as u64),
        Node::Double(d) => {
            put_varint(&mut out, 4 << 3 | 1);
            out.extend_from_slice(&d.to_le_bytes());
        }
        Node::Bytes(b) => put_len(&mut out, 7, b),
        Node::Array(items) => {
            let mut list = Vec::new();
            for i in items {
                put_len(&mut list, 1, &encode(i));
            }
            put_len(&mut out, 5, &list);
        }
        Node::Map(members) => {
            let mut list = Vec::new();
            for (k, v) in members {
                let mut kv = Vec::new();
                put_len(&mut kv, 1, k.as_bytes());
                put_len(&mut kv, 2, &encode(v));
                put_len(&mut list, 1, &kv);
            }
            put_len(&mut out, 6, &list);
        }
        Node::Empty | Node::Past => {}
    }
    out
}

/// `inner` in `levels` arrays of one element each, built in linear time
/// (the lengths computed inside out, then written outside in).
pub fn nest(levels: usize, inner: &[u8]) -> Vec<u8> {
    let mut heads: Vec<Vec<u8>> = Vec::with_capacity(levels);
    let mut len = inner.len();
    for _ in 0..levels {
        // ArrayValue{values: [x]} is 0x0a len(x) x; AnyValue{array_value}
        // is 0x2a len(that) that.
        let mut element = vec![0x0a];
        put_varint(&mut element, len as u64);
        let list_len = element.len() + len;
        let mut head = vec![0x2a];
        put_varint(&mut head, list_len as u64);
        head.extend_from_slice(&element);
        len += head.len();
        heads.push(head);
    }
    let mut out = Vec::with_capacity(len);
    for h in heads.iter().rev() {
        out.extend_from_slice(h);
    }
    out.extend_from_slice(inner);
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint_field(out: &mut Vec<u8>, number: u64, v: u64) {
    put_varint(out, number << 3);
    put_varint(out, v);
}

fn put_len(out: &mut Vec<u8>, number: u64, payload: &[u8]) {
    put_varint(out, number << 3 | 2);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// Whether a limit of `len` cuts a string or bytes value read, and the
/// level of the deepest array or map (one past `MAX_READ` for one not
/// read); 0 for none.
pub fn longest_and_deepest(node: &Node, level: usize) -> (usize, usize) {
    match node {
        Node::Str(s) => (s.chars().count(), 0),
        Node::Bytes(b) => (b.len(), 0),
        Node::Past => (0, level),
        Node::Array(items) => items.iter().fold((0, level), |(l, d), i| {
            let (il, id) = longest_and_deepest(i, level + 1);
            (l.max(il), d.max(id))
        }),
        Node::Map(members) => members.iter().fold((0, level), |(l, d), (_, v)| {
            let (il, id) = longest_and_deepest(v, level + 1);
            (l.max(il), d.max(id))
        }),
        _ => (0, 0),
    }
}
