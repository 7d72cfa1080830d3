//! Reading OTLP trace requests back, for `spanguard show` and `tail`: the
//! protobuf of spooled bodies and the OTLP/JSON of sink lines, into one
//! plain model. Every field spanguard encodes is read (and the `AnyValue`
//! kinds OpenTelemetry defines); unknown fields are skipped as protobuf
//! says. The input comes from files anyone may have written, so lengths are
//! checked against what is there, nesting is bounded and a bad document is
//! an error, never a panic.

use std::io::Read;
use std::sync::Arc;

use super::json_value::JsonValue;
use super::otlp_proto::field;
use super::transport::BodyFormat;

/// An attribute value as `AnyValue` carries it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(String, Value)>),
    /// An `AnyValue` with no value set.
    Empty,
}

impl Value {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl std::fmt::Display for Value {
    /// The value as a person reads it: strings bare, arrays and maps in
    /// brackets, bytes in hex after `0x`, the empty value `null` (as JSON
    /// writes it: printed as nothing, `ok: `, it read as an empty string
    /// or a value lost).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Double(d) => write!(f, "{d}"),
            Value::Bytes(b) => {
                f.write_str("0x")?;
                b.iter().try_for_each(|x| write!(f, "{x:02x}"))
            }
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(members) => {
                f.write_str("{")?;
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
            Value::Empty => f.write_str("null"),
        }
    }
}

pub type Attributes = Vec<(String, Value)>;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecodedEvent {
    pub time_unix_ns: u64,
    pub name: String,
    pub attributes: Attributes,
    pub dropped_attributes: u32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecodedLink {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub trace_state: String,
    pub attributes: Attributes,
    pub dropped_attributes: u32,
    pub flags: u32,
}

/// One span with the resource and scope it was sent under.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecodedSpan {
    pub resource: Arc<Attributes>,
    /// The resource's attributes its sender left out.
    pub resource_dropped_attributes: u32,
    pub scope_name: String,
    pub scope_version: String,
    pub scope_schema_url: String,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// All zero for a root span.
    pub parent_span_id: [u8; 8],
    pub trace_state: String,
    pub flags: u32,
    pub name: String,
    /// OTLP SpanKind, 0 (unspecified) to 5 (consumer).
    pub kind: u32,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub attributes: Attributes,
    pub dropped_attributes: u32,
    pub events: Vec<DecodedEvent>,
    pub dropped_events: u32,
    pub links: Vec<DecodedLink>,
    pub dropped_links: u32,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: u32,
    pub status_message: String,
}

impl DecodedSpan {
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn resource_attribute(&self, key: &str) -> Option<&Value> {
        self.resource.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn is_root(&self) -> bool {
        self.parent_span_id == [0; 8]
    }
}

/// Why a body could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad<T>(why: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(why.into()))
}

/// The most a gzipped body may inflate to: far beyond any batch (the
/// spool's default cap is 64 MiB), and a bound on a gzip bomb.
const MAX_INFLATED_BYTES: u64 = 256 << 20;

/// Decodes a request body as it is sent or spooled.
pub fn decode_body(
    body: &[u8],
    format: BodyFormat,
    gzipped: bool,
) -> Result<Vec<DecodedSpan>, DecodeError> {
    let inflated;
    let body = if gzipped {
        inflated = gunzip(body, MAX_INFLATED_BYTES)?;
        &inflated[..]
    } else {
        body
    };
    match format {
        BodyFormat::Protobuf => decode_proto(body),
        BodyFormat::Json => decode_json(body),
    }
}

/// Inflates a gzip body, every member of it (RFC 1952 allows several, one
/// after another, as the spool's reader and replay read them), refusing one
/// that inflates past `limit` bytes. Read as one member, `spanguard show`
/// listed the first member's spans alone where a replay sent them all.
fn gunzip(body: &[u8], limit: u64) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError(format!("gzip: {e}")))?;
    if out.len() as u64 > limit {
        return bad(format!("gzip: inflates to more than {} MiB", limit >> 20));
    }
    Ok(out)
}

// --- protobuf ----------------------------------------------------------------

/// Field numbers the encoder does not write but the decoder reads.
mod extra_field {
    pub(super) const ANY_ARRAY: u32 = 5;
    pub(super) const ANY_KVLIST: u32 = 6;
    pub(super) const ANY_BYTES: u32 = 7;
    /// `ArrayValue.values` and `KeyValueList.values`.
    pub(super) const LIST_VALUES: u32 = 1;
    pub(super) const EVENT_DROPPED_ATTRIBUTES: u32 = 4;
    pub(super) const LINK_DROPPED_ATTRIBUTES: u32 = 5;
}

/// An `AnyValue` nested deeper than this is refused: deeper than any value
/// spanguard stores (`span::any_value::MAX_STORED_DEPTH`); a hostile body
/// could nest thousands, and the reader recurses once a level.
const MAX_VALUE_DEPTH: usize = crate::span::any_value::MAX_STORED_DEPTH;

enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Wire<'a> {
    fn uint(&self) -> u64 {
        match *self {
            Wire::Varint(v) | Wire::Fixed64(v) => v,
            Wire::Fixed32(v) => v as u64,
            Wire::Len(_) => 0,
        }
    }

    fn bytes(&self) -> &'a [u8] {
        match *self {
            Wire::Len(b) => b,
            _ => &[],
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }
}

/// The fields of one message, in order.
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Fields<'a> {
        Fields { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return bad("protobuf: a varint runs past the end");
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return bad("protobuf: a varint longer than 64 bits");
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        bad("protobuf: a varint longer than 10 bytes")
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return bad(format!(
                "protobuf: a field of {n} bytes where {left} are left"
            ));
        }
        let out = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(out)
    }

    fn next_field(&mut self) -> Option<Result<(u32, Wire<'a>), DecodeError>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        Some((|| {
            let tag = self.varint()?;
            let number = (tag >> 3) as u32;
            if number == 0 || tag >> 3 > u32::MAX as u64 {
                return bad("protobuf: a field numbered 0");
            }
            let wire = match tag & 7 {
                0 => Wire::Varint(self.varint()?),
                1 => Wire::Fixed64(u64::from_le_bytes(
                    self.take(8)?.try_into().expect("8 bytes"),
                )),
                2 => {
                    let n = self.varint()?;
                    Wire::Len(self.take(n)?)
                }
                5 => Wire::Fixed32(u32::from_le_bytes(
                    self.take(4)?.try_into().expect("4 bytes"),
                )),
                other => return bad(format!("protobuf: wire type {other} is not used by OTLP")),
            };
            Ok((number, wire))
        })())
    }
}

/// Calls `f` for every field of `buf`.
fn each_field<'a>(
    buf: &'a [u8],
    mut f: impl FnMut(u32, Wire<'a>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut fields = Fields::new(buf);
    while let Some(next) = fields.next_field() {
        let (number, wire) = next?;
        f(number, wire)?;
    }
    Ok(())
}

fn id<const N: usize>(wire: &Wire<'_>, what: &str) -> Result<[u8; N], DecodeError> {
    let b = wire.bytes();
    if b.is_empty() {
        return Ok([0; N]);
    }
    b.try_into()
        .or_else(|_| bad(format!("protobuf: a {what} of {} bytes, not {N}", b.len())))
}

/// An `ExportTraceServiceRequest`'s spans.
pub fn decode_proto(body: &[u8]) -> Result<Vec<DecodedSpan>, DecodeError> {
    let mut spans = Vec::new();
    each_field(body, |n, w| {
        if n == field::REQUEST_RESOURCE_SPANS {
            resource_spans(w.bytes(), &mut spans)?;
        }
        Ok(())
    })?;
    Ok(spans)
}

fn resource_spans(buf: &[u8], out: &mut Vec<DecodedSpan>) -> Result<(), DecodeError> {
    let mut resource = Vec::new();
    let mut dropped = 0;
    let mut scopes = Vec::new();
    each_field(buf, |n, w| {
        match n {
            field::RESOURCE_SPANS_RESOURCE => each_field(w.bytes(), |n, w| {
                match n {
                    field::RESOURCE_ATTRIBUTES => resource.push(key_value(w.bytes(), 0)?),
                    field::RESOURCE_DROPPED_ATTRIBUTES => dropped = w.uint() as u32,
                    _ => {}
                }
                Ok(())
            })?,
            field::RESOURCE_SPANS_SCOPE_SPANS => scopes.push(w.bytes()),
            _ => {}
        }
        Ok(())
    })?;
    let resource = Arc::new(resource);
    for scope in scopes {
        let first = out.len();
        scope_spans(scope, &resource, out)?;
        for s in &mut out[first..] {
            s.resource_dropped_attributes = dropped;
        }
    }
    Ok(())
}

fn scope_spans(
    buf: &[u8],
    resource: &Arc<Attributes>,
    out: &mut Vec<DecodedSpan>,
) -> Result<(), DecodeError> {
    let (mut name, mut version, mut schema_url) = (String::new(), String::new(), String::new());
    let mut spans = Vec::new();
    each_field(buf, |n, w| {
        match n {
            field::SCOPE_SPANS_SCOPE => each_field(w.bytes(), |n, w| {
                match n {
                    field::SCOPE_NAME => name = w.text(),
                    field::SCOPE_VERSION => version = w.text(),
                    _ => {}
                }
                Ok(())
            })?,
            field::SCOPE_SPANS_SPANS => spans.push(span(w.bytes())?),
            field::SCOPE_SPANS_SCHEMA_URL => schema_url = w.text(),
            _ => {}
        }
        Ok(())
    })?;
    for mut s in spans {
        s.resource = Arc::clone(resource);
        s.scope_name = name.clone();
        s.scope_version = version.clone();
        s.scope_schema_url = schema_url.clone();
        out.push(s);
    }
    Ok(())
}

fn span(buf: &[u8]) -> Result<DecodedSpan, DecodeError> {
    let mut s = DecodedSpan::default();
    each_field(buf, |n, w| {
        match n {
            field::SPAN_TRACE_ID => s.trace_id = id(&w, "trace id")?,
            field::SPAN_SPAN_ID => s.span_id = id(&w, "span id")?,
            field::SPAN_TRACE_STATE => s.trace_state = w.text(),
            field::SPAN_PARENT_SPAN_ID => s.parent_span_id = id(&w, "parent span id")?,
            field::SPAN_FLAGS => s.flags = w.uint() as u32,
            field::SPAN_NAME => s.name = w.text(),
            field::SPAN_KIND => s.kind = w.uint() as u32,
            field::SPAN_START_TIME => s.start_unix_ns = w.uint(),
            field::SPAN_END_TIME => s.end_unix_ns = w.uint(),
            field::SPAN_ATTRIBUTES => s.attributes.push(key_value(w.bytes(), 0)?),
            field::SPAN_DROPPED_ATTRIBUTES => s.dropped_attributes = w.uint() as u32,
            field::SPAN_EVENTS => s.events.push(event(w.bytes())?),
            field::SPAN_DROPPED_EVENTS => s.dropped_events = w.uint() as u32,
            field::SPAN_LINKS => s.links.push(link(w.bytes())?),
            field::SPAN_DROPPED_LINKS => s.dropped_links = w.uint() as u32,
            field::SPAN_STATUS => each_field(w.bytes(), |n, w| {
                match n {
                    field::STATUS_MESSAGE => s.status_message = w.text(),
                    field::STATUS_CODE => s.status_code = w.uint() as u32,
                    _ => {}
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(s)
}

fn event(buf: &[u8]) -> Result<DecodedEvent, DecodeError> {
    let mut e = DecodedEvent::default();
    each_field(buf, |n, w| {
        match n {
            field::EVENT_TIME => e.time_unix_ns = w.uint(),
            field::EVENT_NAME => e.name = w.text(),
            field::EVENT_ATTRIBUTES => e.attributes.push(key_value(w.bytes(), 0)?),
            extra_field::EVENT_DROPPED_ATTRIBUTES => e.dropped_attributes = w.uint() as u32,
            _ => {}
        }
        Ok(())
    })?;
    Ok(e)
}

fn link(buf: &[u8]) -> Result<DecodedLink, DecodeError> {
    let mut l = DecodedLink::default();
    each_field(buf, |n, w| {
        match n {
            field::LINK_TRACE_ID => l.trace_id = id(&w, "link trace id")?,
            field::LINK_SPAN_ID => l.span_id = id(&w, "link span id")?,
            field::LINK_TRACE_STATE => l.trace_state = w.text(),
            field::LINK_ATTRIBUTES => l.attributes.push(key_value(w.bytes(), 0)?),
            extra_field::LINK_DROPPED_ATTRIBUTES => l.dropped_attributes = w.uint() as u32,
            field::LINK_FLAGS => l.flags = w.uint() as u32,
            _ => {}
        }
        Ok(())
    })?;
    Ok(l)
}

fn key_value(buf: &[u8], depth: usize) -> Result<(String, Value), DecodeError> {
    let mut key = String::new();
    let mut value = Value::Empty;
    each_field(buf, |n, w| {
        match n {
            field::KEY_VALUE_KEY => key = w.text(),
            field::KEY_VALUE_VALUE => value = any_value(w.bytes(), depth + 1)?,
            _ => {}
        }
        Ok(())
    })?;
    Ok((key, value))
}

fn any_value(buf: &[u8], depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_VALUE_DEPTH {
        return bad("protobuf: values nested too deeply");
    }
    let mut value = Value::Empty;
    each_field(buf, |n, w| {
        value = match n {
            field::ANY_STRING => Value::Str(w.text()),
            field::ANY_BOOL => Value::Bool(w.uint() != 0),
            field::ANY_INT => Value::Int(w.uint() as i64),
            field::ANY_DOUBLE => Value::Double(f64::from_bits(w.uint())),
            extra_field::ANY_BYTES => Value::Bytes(w.bytes().to_vec()),
            extra_field::ANY_ARRAY => {
                let mut items = Vec::new();
                each_field(w.bytes(), |n, w| {
                    if n == extra_field::LIST_VALUES {
                        items.push(any_value(w.bytes(), depth + 1)?);
                    }
                    Ok(())
                })?;
                Value::Array(items)
            }
            extra_field::ANY_KVLIST => {
                let mut members = Vec::new();
                each_field(w.bytes(), |n, w| {
                    // A member's value is one level down, as an array's
                    // element is: the depth counts values (the bound that
                    // `span::any_value` sets on what it accepts).
                    if n == extra_field::LIST_VALUES {
                        members.push(key_value(w.bytes(), depth)?);
                    }
                    Ok(())
                })?;
                Value::Map(members)
            }
            _ => return Ok(()),
        };
        Ok(())
    })?;
    Ok(value)
}

// --- JSON ---------------------------------------------------------------------

/// An OTLP/JSON `ExportTraceServiceRequest`'s spans (ids in hex, as the
/// OTLP specification has them; lowerCamelCase or snake_case names; enums
/// as numbers or names).
pub fn decode_json(text: &[u8]) -> Result<Vec<DecodedSpan>, DecodeError> {
    let doc = JsonValue::parse(text).map_err(|e| DecodeError(format!("JSON: {e}")))?;
    if !matches!(doc, JsonValue::Object(_)) {
        return bad("JSON: not an object");
    }
    let mut out = Vec::new();
    for rs in doc
        .get_any(&["resourceSpans", "resource_spans"])
        .map_or(&[][..], |v| v.as_array())
    {
        let resource = rs
            .get("resource")
            .and_then(|r| r.get("attributes"))
            .map(json_attributes)
            .transpose()?
            .unwrap_or_default();
        let resource = Arc::new(resource);
        let resource_dropped_attributes = json_u32(
            rs.get("resource")
                .and_then(|r| r.get_any(&["droppedAttributesCount", "dropped_attributes_count"])),
        );
        for ss in rs
            .get_any(&["scopeSpans", "scope_spans"])
            .map_or(&[][..], |v| v.as_array())
        {
            let scope = ss.get("scope");
            let text = |v: Option<&JsonValue>, k: &str| {
                v.and_then(|v| v.get(k))
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let (scope_name, scope_version) = (text(scope, "name"), text(scope, "version"));
            let scope_schema_url = text(Some(ss), "schemaUrl");
            for s in ss.get("spans").map_or(&[][..], |v| v.as_array()) {
                let mut span = json_span(s)?;
                span.resource = Arc::clone(&resource);
                span.resource_dropped_attributes = resource_dropped_attributes;
                span.scope_name = scope_name.clone();
                span.scope_version = scope_version.clone();
                span.scope_schema_url = scope_schema_url.clone();
                out.push(span);
            }
        }
    }
    Ok(out)
}

fn hex_id<const N: usize>(v: Option<&JsonValue>, what: &str) -> Result<[u8; N], DecodeError> {
    let text = v.and_then(|v| v.as_str()).unwrap_or("");
    let mut out = [0u8; N];
    if text.is_empty() {
        return Ok(out);
    }
    if text.len() != 2 * N || !crate::span::ids::parse_hex(text.as_bytes(), &mut out) {
        return bad(format!("JSON: {what} {text:?} is not {} hex digits", 2 * N));
    }
    Ok(out)
}

fn json_u32(v: Option<&JsonValue>) -> u32 {
    v.and_then(|v| v.as_u64()).unwrap_or(0) as u32
}

fn json_text(v: Option<&JsonValue>) -> String {
    v.and_then(|v| v.as_str()).unwrap_or("").to_string()
}

/// An enum as its number or its proto name (`SPAN_KIND_SERVER`).
fn json_enum(v: Option<&JsonValue>, names: &[&str]) -> u32 {
    match v {
        Some(JsonValue::String(s)) if !s.chars().all(|c| c.is_ascii_digit()) => {
            names.iter().position(|n| n == s).unwrap_or(0) as u32
        }
        other => json_u32(other),
    }
}

fn json_span(s: &JsonValue) -> Result<DecodedSpan, DecodeError> {
    const KINDS: [&str; 6] = [
        "SPAN_KIND_UNSPECIFIED",
        "SPAN_KIND_INTERNAL",
        "SPAN_KIND_SERVER",
        "SPAN_KIND_CLIENT",
        "SPAN_KIND_PRODUCER",
        "SPAN_KIND_CONSUMER",
    ];
    const CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];
    let g = |keys: &[&str]| s.get_any(keys);
    let status = s.get("status");
    Ok(DecodedSpan {
        trace_id: hex_id(g(&["traceId", "trace_id"]), "traceId")?,
        span_id: hex_id(g(&["spanId", "span_id"]), "spanId")?,
        parent_span_id: hex_id(g(&["parentSpanId", "parent_span_id"]), "parentSpanId")?,
        trace_state: json_text(g(&["traceState", "trace_state"])),
        flags: json_u32(g(&["flags"])),
        name: json_text(g(&["name"])),
        kind: json_enum(g(&["kind"]), &KINDS),
        start_unix_ns: g(&["startTimeUnixNano", "start_time_unix_nano"])
            .and_then(|v| v.as_u64())
            .unwrap_or(0),
        end_unix_ns: g(&["endTimeUnixNano", "end_time_unix_nano"])
            .and_then(|v| v.as_u64())
            .unwrap_or(0),
        attributes: g(&["attributes"])
            .map(json_attributes)
            .transpose()?
            .unwrap_or_default(),
        dropped_attributes: json_u32(g(&["droppedAttributesCount", "dropped_attributes_count"])),
        events: g(&["events"])
            .map_or(&[][..], |v| v.as_array())
            .iter()
            .map(|e| {
                Ok(DecodedEvent {
                    time_unix_ns: e
                        .get_any(&["timeUnixNano", "time_unix_nano"])
                        .and_then(|v| v.as_u64())
                        .unwrap_or(0),
                    name: json_text(e.get("name")),
                    attributes: e
                        .get("attributes")
                        .map(json_attributes)
                        .transpose()?
                        .unwrap_or_default(),
                    dropped_attributes: json_u32(
                        e.get_any(&["droppedAttributesCount", "dropped_attributes_count"]),
                    ),
                })
            })
            .collect::<Result<_, DecodeError>>()?,
        dropped_events: json_u32(g(&["droppedEventsCount", "dropped_events_count"])),
        links: g(&["links"])
            .map_or(&[][..], |v| v.as_array())
            .iter()
            .map(|l| {
                Ok(DecodedLink {
                    trace_id: hex_id(l.get_any(&["traceId", "trace_id"]), "link traceId")?,
                    span_id: hex_id(l.get_any(&["spanId", "span_id"]), "link spanId")?,
                    trace_state: json_text(l.get_any(&["traceState", "trace_state"])),
                    attributes: l
                        .get("attributes")
                        .map(json_attributes)
                        .transpose()?
                        .unwrap_or_default(),
                    dropped_attributes: json_u32(
                        l.get_any(&["droppedAttributesCount", "dropped_attributes_count"]),
                    ),
                    flags: json_u32(l.get("flags")),
                })
            })
            .collect::<Result<_, DecodeError>>()?,
        dropped_links: json_u32(g(&["droppedLinksCount", "dropped_links_count"])),
        status_code: json_enum(status.and_then(|st| st.get("code")), &CODES),
        status_message: json_text(status.and_then(|st| st.get("message"))),
        ..DecodedSpan::default()
    })
}

fn json_attributes(list: &JsonValue) -> Result<Attributes, DecodeError> {
    list.as_array()
        .iter()
        .map(|kv| json_key_value(kv, 0))
        .collect()
}

fn json_key_value(kv: &JsonValue, depth: usize) -> Result<(String, Value), DecodeError> {
    let value = match kv.get("value") {
        Some(v) => json_any_value(v, depth + 1)?,
        None => Value::Empty,
    };
    Ok((json_text(kv.get("key")), value))
}

fn json_any_value(v: &JsonValue, depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_VALUE_DEPTH {
        return bad("JSON: values nested too deeply");
    }
    let Some((kind, inner)) = (match v {
        JsonValue::Object(members) => members.first().map(|(k, v)| (k.as_str(), v)),
        _ => None,
    }) else {
        return Ok(Value::Empty);
    };
    Ok(match kind {
        "stringValue" | "string_value" => Value::Str(json_text(Some(inner))),
        "boolValue" | "bool_value" => Value::Bool(matches!(inner, JsonValue::Bool(true))),
        "intValue" | "int_value" => Value::Int(inner.as_i64().unwrap_or(0)),
        "doubleValue" | "double_value" => Value::Double(inner.as_f64().unwrap_or(0.0)),
        "bytesValue" | "bytes_value" => Value::Bytes(base64_decode(inner.as_str().unwrap_or(""))),
        "arrayValue" | "array_value" => Value::Array(
            inner
                .get("values")
                .map_or(&[][..], |v| v.as_array())
                .iter()
                .map(|item| json_any_value(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        "kvlistValue" | "kvlist_value" => Value::Map(
            inner
                .get("values")
                .map_or(&[][..], |v| v.as_array())
                .iter()
                .map(|kv| json_key_value(kv, depth))
                .collect::<Result<_, _>>()?,
        ),
        _ => Value::Empty,
    })
}

/// Standard or URL-safe base64, padding optional (proto3 JSON bytes);
/// characters outside the alphabet are skipped.
fn base64_decode(text: &str) -> Vec<u8> {
    let sextet = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in text.bytes().filter_map(sextet) {
        acc = acc << 6 | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_depth_the_complex_value_setter_accepts_is_read() {
        use crate::span::any_value::MAX_STORED_DEPTH;
        use crate::span::any_value::tests::{int, map};
        // A map's member value is one level down, as an array element:
        // `spanguard show` reads every value `spanguard_span_set_anyvalue`
        // stores (maps nested 32 deep counted 63 levels here, and failed),
        // at the highest depth limit too.
        let mut v = int(1);
        for _ in 1..MAX_STORED_DEPTH {
            v = map(&[("k", v)]);
        }
        let mut read = any_value(&v, 1).expect("as deep as the setter takes");
        for _ in 1..MAX_STORED_DEPTH {
            read = match read {
                Value::Map(mut m) => m.remove(0).1,
                other => panic!("a map expected: {other:?}"),
            };
        }
        assert_eq!(read, Value::Int(1));
        assert!(any_value(&map(&[("k", v)]), 1).is_err());
        // A forged body's, 100,000 deep: refused, not a stack overflow.
        let forged = crate::span::any_value::tests::deep_arrays(100_000, &int(1));
        assert!(any_value(&forged, 1).is_err());
        let json = format!(
            "{}{{\"intValue\":\"1\"}}{}",
            "{\"arrayValue\":{\"values\":[".repeat(100_000),
            "]}}".repeat(100_000)
        );
        let json = serde_free_json_request(&json);
        assert!(decode_json(json.as_bytes()).is_err());
    }

    /// A request of one span whose attribute "k" has `value` (an OTLP/JSON
    /// AnyValue object).
    fn serde_free_json_request(value: &str) -> String {
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"07070707070707070707070707070707","spanId":"0909090909090909","name":"n","attributes":[{{"key":"k","value":{value}}}]}}]}}]}}]}}"#
        )
    }
    use crate::buffer::payload_pool::PayloadPool;
    use crate::export::otlp_json::OtlpJsonEncoder;
    use crate::export::otlp_proto::OtlpProtoEncoder;
    use crate::export::resource::ResourceInfo;
    use crate::span::limits::SpanLimits;
    use crate::span::record::{
        LinkContext, MARK_INTERRUPTED, STATUS_ERROR, SpanRecord, SpanView, ValueInput,
    };

    fn record(pool: &PayloadPool) -> Box<SpanRecord> {
        // SAFETY: SpanRecord is plain data for which all-zero bytes are a
        // valid (empty) value.
        let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
        let limits = SpanLimits::default();
        r.trace_id = [0xab; 16];
        r.span_id = [0x01; 8];
        r.parent_span_id = [0x02; 8];
        r.kind = 3;
        r.start_unix_ns = 1_700_000_000_000_000_000;
        r.end_unix_ns = 1_700_000_000_250_000_000;
        r.name = r.store_text(b"llm.chat", 256, pool).0;
        for (k, v) in [
            (&b"gen_ai.usage.input_tokens"[..], ValueInput::Int(812)),
            (b"model", ValueInput::Str(b"gpt-4o \"quoted\"")),
            (b"t", ValueInput::Double(0.25)),
            (b"ok", ValueInput::Bool(true)),
        ] {
            r.set_attribute(k, &v, &limits, pool).expect("fits");
        }
        r.add_event(
            b"exception",
            r.start_unix_ns + 5,
            &[(b"exception.message", ValueInput::Str(b"boom"))],
            &limits,
            pool,
        )
        .expect("event");
        r.add_link(
            LinkContext {
                trace_id: [0xcd; 16],
                span_id: [0xef; 8],
                trace_flags: 1,
                remote: None,
            },
            b"",
            &[(b"why", ValueInput::Str(b"retry of"))],
            &limits,
            pool,
        )
        .expect("link");
        // A bridge's links: remote, local, and one with an invalid context
        // (zero ids) kept for its attribute.
        for (trace_id, span_id, remote) in [
            ([0x11; 16], [0x12; 8], true),
            ([0x21; 16], [0x22; 8], false),
            ([0; 16], [0; 8], true),
        ] {
            let to = LinkContext {
                trace_id,
                span_id,
                trace_flags: remote as u8,
                remote: Some(remote),
            };
            r.add_link(to, b"", &[(b"n", ValueInput::Int(1))], &limits, pool)
                .expect("link");
        }
        r.status_code = STATUS_ERROR;
        r.rest_mut().status_message = r.store_text(b"rate limited", 1024, pool).0;
        r.marks |= MARK_INTERRUPTED;
        r.signal = 15;
        r
    }

    fn check(spans: &[DecodedSpan]) {
        let [s] = spans else {
            panic!("one span, got {}", spans.len())
        };
        assert_eq!(
            s.resource_attribute("service.name"),
            Some(&Value::Str("svc".into()))
        );
        assert_eq!(s.scope_name, "spanguard");
        assert_eq!(
            (s.trace_id, s.span_id, s.parent_span_id),
            ([0xab; 16], [1; 8], [2; 8])
        );
        assert_eq!((s.name.as_str(), s.kind), ("llm.chat", 3));
        assert_eq!(s.end_unix_ns - s.start_unix_ns, 250_000_000);
        assert_eq!(
            s.attribute("gen_ai.usage.input_tokens"),
            Some(&Value::Int(812))
        );
        assert_eq!(
            s.attribute("model"),
            Some(&Value::Str("gpt-4o \"quoted\"".into()))
        );
        assert_eq!(s.attribute("t"), Some(&Value::Double(0.25)));
        assert_eq!(s.attribute("ok"), Some(&Value::Bool(true)));
        assert_eq!(
            s.attribute("spanguard.interrupted"),
            Some(&Value::Bool(true))
        );
        assert_eq!(s.attribute("spanguard.signal"), Some(&Value::Int(15)));
        assert_eq!(s.events.len(), 1);
        assert_eq!(s.events[0].name, "exception");
        assert_eq!(s.events[0].time_unix_ns, s.start_unix_ns + 5);
        assert_eq!(
            s.events[0].attributes,
            vec![("exception.message".to_string(), Value::Str("boom".into()))]
        );
        assert_eq!(s.links[0].trace_id, [0xcd; 16]);
        assert_eq!(s.links[0].span_id, [0xef; 8]);
        assert_eq!(s.links[0].flags, 1, "not known: HAS_IS_REMOTE clear");
        let links: Vec<_> = s.links[1..]
            .iter()
            .map(|l| (l.trace_id, l.span_id, l.flags, l.attributes.len()))
            .collect();
        assert_eq!(
            links,
            [
                ([0x11; 16], [0x12; 8], 0x301, 1),
                ([0x21; 16], [0x22; 8], 0x100, 1),
                ([0; 16], [0; 8], 0x301, 1),
            ]
        );
        assert_eq!(
            (s.status_code, s.status_message.as_str()),
            (2, "rate limited")
        );
    }

    #[test]
    fn what_the_encoders_write_reads_back() {
        let resource = ResourceInfo::new("svc", &[]);
        let pool = PayloadPool::with_mib(1).expect("pool");
        let r = record(&pool);
        let view = SpanView::new(&r, &pool);
        let mut out = Vec::new();
        OtlpProtoEncoder::new().encode(&resource, &[view], &mut out);
        check(&decode_body(&out, BodyFormat::Protobuf, false).expect("proto"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &out).expect("gzip");
        let gz = gz.finish().expect("gzip");
        check(&decode_body(&gz, BodyFormat::Protobuf, true).expect("gzipped proto"));
        OtlpJsonEncoder::new().encode(&resource, &[view], &mut out);
        check(&decode_body(&out, BodyFormat::Json, false).expect("json"));
    }

    /// A gzip body of two members (two gzipped protobuf requests one after
    /// the other inflate to one request holding both): every span is read.
    #[test]
    fn every_gzip_member_is_read() {
        let resource = ResourceInfo::new("svc", &[]);
        let pool = PayloadPool::with_mib(1).expect("pool");
        let r = record(&pool);
        let view = SpanView::new(&r, &pool);
        let mut plain = Vec::new();
        OtlpProtoEncoder::new().encode(&resource, &[view], &mut plain);
        let member = {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &plain).expect("gzip");
            gz.finish().expect("gzip")
        };
        let body = [member.clone(), member].concat();
        let spans = decode_body(&body, BodyFormat::Protobuf, true).expect("two members");
        assert_eq!(spans.len(), 2);
        check(&spans[..1]);
        check(&spans[1..]);
    }

    #[test]
    fn json_enums_may_be_names_and_values_may_nest() {
        let doc = br#"{"resource_spans":[{"scope_spans":[{"spans":[{
            "traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708",
            "kind":"SPAN_KIND_SERVER","status":{"code":"STATUS_CODE_ERROR"},
            "attributes":[{"key":"a","value":{"arrayValue":{"values":[{"intValue":1},{"stringValue":"x"}]}}},
                          {"key":"m","value":{"kvlistValue":{"values":[{"key":"k","value":{"boolValue":false}}]}}},
                          {"key":"b","value":{"bytesValue":"AQID"}}]}]}]}]}"#;
        let spans = decode_json(doc).expect("valid");
        let s = &spans[0];
        assert_eq!((s.kind, s.status_code), (2, 2));
        assert_eq!(
            s.attribute("a"),
            Some(&Value::Array(vec![Value::Int(1), Value::Str("x".into())]))
        );
        assert_eq!(
            s.attribute("m").map(|v| v.to_string()).as_deref(),
            Some("{k: false}")
        );
        assert_eq!(s.attribute("b"), Some(&Value::Bytes(vec![1, 2, 3])));
    }

    #[test]
    fn hostile_bodies_are_errors_not_panics() {
        // A length that runs past the end, a varint that never ends, a
        // group wire type; then an id of the wrong size and deep nesting.
        for body in [
            &[0x0a, 0xff, 0xff, 0x03, 0x00][..],
            &[
                0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
            ],
            &[0x0b],
        ] {
            assert!(decode_proto(body).is_err(), "{body:?}");
        }
        let mut bad_id = Vec::new();
        // ResourceSpans { ScopeSpans { Span { trace_id: 3 bytes } } }
        bad_id.extend([0x0a, 0x09, 0x12, 0x07, 0x12, 0x05, 0x0a, 0x03, 1, 2, 3]);
        assert!(
            decode_proto(&bad_id)
                .unwrap_err()
                .0
                .contains("trace id of 3 bytes")
        );
        let mut deep = vec![0x18, 0x01]; // AnyValue{int_value: 1}
        for _ in 0..200 {
            // AnyValue{array_value: ArrayValue{values: [deep]}}
            let mut array = vec![0x0a];
            push_len(&mut array, deep.len());
            array.extend(&deep);
            let mut any = vec![0x2a];
            push_len(&mut any, array.len());
            any.extend(&array);
            deep = any;
        }
        let mut kv = vec![0x0a, 0x01, b'k', 0x12];
        push_len(&mut kv, deep.len());
        kv.extend(&deep);
        let mut span = vec![0x0a, 0x10];
        span.extend([1u8; 16]);
        span.push(0x4a);
        push_len(&mut span, kv.len());
        span.extend(&kv);
        let mut scope = vec![0x12];
        push_len(&mut scope, span.len());
        scope.extend(&span);
        let mut rs = vec![0x0a];
        let mut inner = vec![0x12];
        push_len(&mut inner, scope.len());
        inner.extend(&scope);
        push_len(&mut rs, inner.len());
        rs.extend(&inner);
        assert!(
            decode_proto(&rs)
                .unwrap_err()
                .0
                .contains("nested too deeply")
        );
        assert!(decode_json(b"[]").is_err());
        assert!(
            decode_json(br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#)
                .is_err()
        );
        let bomb = {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &vec![0u8; 3 << 20]).expect("gzip");
            gz.finish().expect("gzip")
        };
        assert!(
            gunzip(&bomb, 2 << 20)
                .unwrap_err()
                .0
                .contains("more than 2 MiB")
        );
        assert_eq!(gunzip(&bomb, 3 << 20).map(|b| b.len()), Ok(3 << 20));
        assert!(decode_body(&bomb[..bomb.len() / 2], BodyFormat::Protobuf, true).is_err());
    }

    fn push_len(out: &mut Vec<u8>, mut n: usize) {
        while n >= 0x80 {
            out.push(n as u8 | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
}
