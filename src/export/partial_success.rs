//! Reads an ExportTraceServiceResponse's `partial_success`: how many spans
//! the backend rejected although it answered 2xx.

use super::transport::{Accepted, BodyFormat};
use crate::span::proto_reader::{WIRE_LEN, WIRE_VARINT, fields};

/// The answer is read in the request's encoding and, when that finds no
/// partial success, in the other: some backends answer every request in
/// JSON, and a JSON partial success read as protobuf was no message at
/// all, so the spans it rejected were counted delivered, with nothing said.
/// A reading that finds only the default (an answer of nothing) also
/// tries the other. Neither reading takes the other's bytes: a JSON text
/// starts with a byte no protobuf field key has ('{' would open a group),
/// and a protobuf answer holds no `"partialSuccess"`.
pub fn parse(body: &[u8], format: BodyFormat) -> Accepted {
    let read = |format| match format {
        BodyFormat::Protobuf => parse_proto(body),
        BodyFormat::Json => parse_json(body),
    };
    let other = match format {
        BodyFormat::Protobuf => BodyFormat::Json,
        BodyFormat::Json => BodyFormat::Protobuf,
    };
    let mut out = read(format)
        .filter(|a| *a != Accepted::default())
        .or_else(|| read(other))
        .unwrap_or_default();
    out.message = printable(&out.message);
    out
}

/// The most of a server's message kept, in characters.
const MESSAGE_MAX_CHARS: usize = 200;

/// A server's message as it may be shown: it goes to stderr and to the
/// error callback, so it gets the escaping every message of spanguard's
/// gets (`span::printable`: a control character, a line break that
/// would forge a `spanguard: error:` line of its own or an escape sequence
/// that rewrites the terminal, is written visibly), and a long one is cut,
/// with how much was left out, as a malformed status line is.
fn printable(message: &str) -> String {
    crate::span::printable::printable_cut(message.as_bytes(), MESSAGE_MAX_CHARS)
}

/// The partial success in field 1, its instances merged as protobuf
/// merges a message field given more than once (each of its fields the
/// last value given): the last alone, an empty one after the count, was
/// read as nothing rejected.
fn parse_proto(body: &[u8]) -> Option<Accepted> {
    let mut out = Accepted::default();
    let partials = fields(body)?
        .into_iter()
        .filter(|f| f.number == 1 && f.wire_type == WIRE_LEN);
    for p in partials {
        for f in fields(p.bytes)? {
            match (f.number, f.wire_type) {
                (1, WIRE_VARINT) => out.rejected_spans = f.varint,
                (2, WIRE_LEN) => out.message = String::from_utf8_lossy(f.bytes).into_owned(),
                _ => {}
            }
        }
    }
    Some(out)
}

/// `partialSuccess.rejectedSpans` (a number or a decimal string, as
/// OTLP/JSON allows) and `errorMessage`, each under its lowerCamelCase name
/// or its proto field name (`partial_success`, `rejected_spans`,
/// `error_message`), as every protobuf JSON reader takes them: a server
/// that writes field names as declared (protobuf's
/// `preserving_proto_field_name`) had its rejected spans counted delivered.
/// Read as JSON, member by member (`Members`): the text was searched for
/// the names, so a string that is one (a message "rejectedSpans") or an
/// object of the server's own holding one was taken for the count. A name
/// met twice (protobuf's JSON readers refuse such an answer; a plain JSON
/// reader keeps the last), in one `partialSuccess` or in two, gives the
/// larger count, so that no span the server may have rejected is counted
/// delivered, and the last message. A body that stops being JSON (cut past
/// the bytes kept) gives what came before.
fn parse_json(body: &[u8]) -> Option<Accepted> {
    let text = std::str::from_utf8(body).ok()?;
    let mut top = Members::of(text)?;
    let mut out = Accepted::default();
    let mut found = false;
    while let Some((key, value)) = top.next() {
        if !matches!(&*key, "partialSuccess" | "partial_success") {
            continue;
        }
        let Some(mut partial) = Members::of(value) else {
            continue;
        };
        found = true;
        while let Some((key, value)) = partial.next() {
            match &*key {
                "rejectedSpans" | "rejected_spans" => {
                    out.rejected_spans = out.rejected_spans.max(json_rejected(value));
                }
                "errorMessage" | "error_message" => {
                    if let Some(rest) = value.strip_prefix('"') {
                        out.message = json_string(rest);
                    }
                }
                _ => {}
            }
        }
    }
    found.then_some(out)
}

/// The rejected count `value` (the member's value, as the text goes on
/// from it) says: a number, or a decimal string.
fn json_rejected(value: &str) -> u64 {
    let rest = value.trim_start_matches('"');
    // The field is an int64: a negative count is one the server should
    // not send. In protobuf it comes as a ten-byte varint, read as past
    // any batch, so every span rejected; JSON reads it the same, never
    // as nothing rejected, which counted the spans delivered.
    let (negative, rest) = match rest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    // Past u64: still every span (a protobuf count saturates so).
    match (json_count(rest), negative) {
        (None, _) => 0,
        (Some(n), false) => n,
        // "-0" is 0, in protobuf too.
        (Some(0), true) => 0,
        (Some(_), true) => u64::MAX,
    }
}

/// The members of the JSON object a text starts with, one at a time:
/// each key decoded (escapes and all), and the text from its value on.
/// Values not read are skipped whole, strings and nesting minded, with
/// no recursion (any depth); a text that stops being an object's ends
/// the members.
struct Members<'a> {
    rest: &'a str,
}

impl<'a> Members<'a> {
    /// The members of the object `text` starts with (after any
    /// whitespace); None when it starts with no object.
    fn of(text: &'a str) -> Option<Members<'a>> {
        let rest = text.trim_start_matches(JSON_SPACE).strip_prefix('{')?;
        Some(Members { rest })
    }

    fn next(&mut self) -> Option<(String, &'a str)> {
        let text = self.rest.trim_start_matches(JSON_SPACE);
        let text = text.strip_prefix(',').unwrap_or(text);
        let text = text.trim_start_matches(JSON_SPACE).strip_prefix('"')?;
        let key_len = string_len(text)?;
        let key = json_string(&text[..=key_len]);
        let value = text[key_len + 1..]
            .trim_start_matches(JSON_SPACE)
            .strip_prefix(':')?
            .trim_start_matches(JSON_SPACE);
        // The next member starts where this value ends; a value that does
        // not end (a body cut) is the last.
        self.rest = value_len(value).map_or("", |len| &value[len..]);
        Some((key, value))
    }
}

/// JSON's whitespace.
const JSON_SPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// The length of the string `text` starts (after its opening quote) up
/// to its closing quote, escapes minded; None when it is not closed.
fn string_len(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut at = 0;
    loop {
        match b.get(at)? {
            b'"' => return Some(at),
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
}

/// The length of the JSON value `text` starts with: a string, an object
/// or array (nesting counted, strings within minded), or a scalar up to
/// the next `,`, `}` or `]`. None when it does not end in `text`.
fn value_len(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut at = 0;
    loop {
        match *b.get(at)? {
            b'"' => at += 1 + string_len(&text[at + 1..])?,
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return Some(at),
            b'}' | b']' => depth -= 1,
            b',' if depth == 0 => return Some(at),
            _ => {}
        }
        at += 1;
        if depth == 0 && matches!(b[at - 1], b'"' | b'}' | b']') {
            return Some(at);
        }
    }
}

/// The JSON string whose text `text` starts with (after its opening
/// quote), up to its closing quote, decoded: each escape as the character
/// it stands for (`\n` a line break, `\"`, `\u00e9`, a surrogate pair
/// `\ud83d\ude00` one character), which `printable` then shows. A
/// backslash was dropped and the character after it kept, so the server's
/// `a\nb` read `anb` and `caf\u00e9` read `cafu00e9`. A surrogate with no
/// partner is U+FFFD, as a lossy UTF-16 reading makes it; an escape JSON
/// has not (`\q`, `\u12`) is kept as written, backslash and all: the
/// server's words, never fewer.
fn json_string(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(['"', '\\']) {
        out.push_str(&rest[..at]);
        if rest.as_bytes()[at] == b'"' {
            return out;
        }
        let after = &rest[at + 1..];
        let (decoded, len) = match after.as_bytes().first() {
            Some(b'"') => (Some('"'), 1),
            Some(b'\\') => (Some('\\'), 1),
            Some(b'/') => (Some('/'), 1),
            Some(b'b') => (Some('\u{8}'), 1),
            Some(b'f') => (Some('\u{c}'), 1),
            Some(b'n') => (Some('\n'), 1),
            Some(b'r') => (Some('\r'), 1),
            Some(b't') => (Some('\t'), 1),
            Some(b'u') => match utf16_unit(&after[1..]) {
                Some(unit) => {
                    let (c, more) = utf16_char(unit, &after[5..]);
                    (Some(c), 5 + more)
                }
                None => (None, 0),
            },
            _ => (None, 0),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[len..];
            }
            // No escape: the backslash as written, and what follows it
            // read on as text.
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    // No closing quote: what there is.
    out.push_str(rest);
    out
}

/// The four hex digits `text` starts with, as a UTF-16 code unit.
fn utf16_unit(text: &str) -> Option<u16> {
    let hex = text.get(..4)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}

/// The character a `\u` escape's `unit` starts, with how much of `after`
/// (the text after the escape) its low surrogate took: 6 for a pair
/// (`\udc00`), 0 otherwise; a surrogate with no partner, U+FFFD.
fn utf16_char(unit: u16, after: &str) -> (char, usize) {
    if (0xd800..0xdc00).contains(&unit) {
        let low = after.strip_prefix("\\u").and_then(utf16_unit);
        if let Some(low @ 0xdc00..0xe000) = low {
            let c = 0x10000 + ((u32::from(unit) - 0xd800) << 10) + (u32::from(low) - 0xdc00);
            return (char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER), 6);
        }
    }
    (
        char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER),
        0,
    )
}

/// The JSON number `text` starts with (no sign), read whole: digits, a
/// fraction, an exponent (`1e3`, `2E+2`, `1.5e3`), as the count it is,
/// never its digits up to the `e` (which read `1e3` as 1, and counted 999
/// rejected spans delivered). Saturating at u64::MAX; a fraction rounds
/// up (a rejected span is never counted delivered). Exact, in integers:
/// no float rounds `18446744073709551615` or `1.0000000000000000001`.
/// None for no digits.
fn json_count(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let run = |from: usize| from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let int_end = run(0);
    let (frac_start, frac_end) = match b.get(int_end) {
        Some(b'.') => (int_end + 1, run(int_end + 1)),
        _ => (int_end, int_end),
    };
    if int_end == 0 && frac_end == frac_start {
        return None;
    }
    // The exponent, saturated far past any that matters (u64 has 20 digits).
    let mut exponent: i64 = 0;
    if let Some(b'e' | b'E') = b.get(frac_end) {
        let mut at = frac_end + 1;
        let minus = match b.get(at) {
            Some(b'-') => {
                at += 1;
                true
            }
            Some(b'+') => {
                at += 1;
                false
            }
            _ => false,
        };
        for &d in &b[at..run(at)] {
            exponent = (exponent * 10 + i64::from(d - b'0')).min(1 << 40);
        }
        if minus {
            exponent = -exponent;
        }
    }
    // The value is `digits` x 10^(exponent - fraction digits).
    let digits: Vec<u8> = b[..int_end]
        .iter()
        .chain(&b[frac_start..frac_end])
        .map(|d| d - b'0')
        .skip_while(|&d| d == 0)
        .collect();
    if digits.is_empty() {
        return Some(0);
    }
    let scale = exponent - (frac_end - frac_start) as i64;
    // Digits of the whole part, and whether anything nonzero is cut off.
    let whole_len = digits.len() as i64 + scale;
    if whole_len > 20 {
        return Some(u64::MAX);
    }
    if whole_len <= 0 {
        return Some(1);
    }
    let whole_len = whole_len as usize;
    let mut n: u64 = 0;
    for i in 0..whole_len {
        let d = digits.get(i).copied().unwrap_or(0);
        n = match n.checked_mul(10).and_then(|n| n.checked_add(u64::from(d))) {
            Some(n) => n,
            None => return Some(u64::MAX),
        };
    }
    let cut = digits
        .get(whole_len..)
        .is_some_and(|rest| rest.iter().any(|&d| d != 0));
    Some(if cut { n.saturating_add(1) } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_partial_success_is_read() {
        // partial_success { rejected_spans: 3, error_message: "quota" }
        let body = [
            0x0a, 0x09, 0x08, 0x03, 0x12, 0x05, b'q', b'u', b'o', b't', b'a',
        ];
        let a = parse(&body, BodyFormat::Protobuf);
        assert_eq!(a.rejected_spans, 3);
        assert_eq!(a.message, "quota");
        assert_eq!(parse(&[], BodyFormat::Protobuf), Accepted::default());
        assert_eq!(
            parse(&[0x0a, 0x50], BodyFormat::Protobuf),
            Accepted::default()
        );
    }

    #[test]
    fn json_partial_success_is_read() {
        let a = parse(
            br#"{"partialSuccess":{"rejectedSpans":"2","errorMessage":"bad \"span\""}}"#,
            BodyFormat::Json,
        );
        assert_eq!(a.rejected_spans, 2);
        assert_eq!(a.message, "bad \"span\"");
        assert_eq!(parse(b"{}", BodyFormat::Json).rejected_spans, 0);
    }

    /// Protobuf merges the instances of a message field that a body
    /// repeats, each of its fields the last value given: a body whose
    /// partial success came in two (the count, then an empty one) was read
    /// from the last alone, and its rejected spans were counted delivered.
    #[test]
    fn protobuf_partial_success_in_instances_is_merged() {
        // partial_success { rejected_spans: 2, error_message: "bad" },
        // then partial_success {}.
        let body = [
            0x0a, 0x07, 0x08, 0x02, 0x12, 0x03, b'b', b'a', b'd', 0x0a, 0x00,
        ];
        let a = parse(&body, BodyFormat::Protobuf);
        assert_eq!((a.rejected_spans, a.message.as_str()), (2, "bad"));
        // The count in the first, the message in the second; then a later
        // count stands over an earlier one.
        let body = [
            0x0a, 0x02, 0x08, 0x04, 0x0a, 0x03, 0x12, 0x01, b'q', 0x0a, 0x02, 0x08, 0x05,
        ];
        let a = parse(&body, BodyFormat::Protobuf);
        assert_eq!((a.rejected_spans, a.message.as_str()), (5, "q"));
    }

    /// The JSON answer is read as JSON, its members by their keys: the
    /// text was searched for the key names, so a string that is one (a
    /// message "rejectedSpans"), or an object of the server's own that
    /// holds one, was taken for the count: a message naming the field read
    /// as no answer (its rejected spans counted delivered), and a count
    /// outside the partial success counted spans rejected that were not.
    #[test]
    fn json_partial_success_is_read_by_its_members_only() {
        let read = |body: &str| {
            let a = parse(body.as_bytes(), BodyFormat::Json);
            (a.rejected_spans, a.message)
        };
        let named = |n: u64, m: &str| (n, m.to_string());
        assert_eq!(
            read(r#"{"partialSuccess":{"errorMessage":"rejectedSpans","rejectedSpans":3}}"#),
            named(3, "rejectedSpans")
        );
        assert_eq!(
            read(
                r#"{"note":"partial_success","partialSuccess":{"note":"rejected_spans","rejected_spans":9}}"#
            ),
            named(9, "")
        );
        assert_eq!(
            read(r#"{"partialSuccess":{"errorMessage":"x"},"details":{"rejectedSpans":7}}"#),
            named(0, "x")
        );
        assert_eq!(
            read(r#"{"partialSuccess":{"details":{"rejectedSpans":7,"s":"}"},"rejectedSpans":1}}"#),
            named(1, "")
        );
        assert_eq!(
            read(
                r#"{"a":[{"partialSuccess":{"rejectedSpans":8}}],"partialSuccess":{"rejectedSpans":2}}"#
            ),
            named(2, "")
        );
        // A key written with escapes is the key it stands for.
        assert_eq!(
            read(r#"{"partialSuccess":{"rejected\u0053pans":2}}"#),
            named(2, "")
        );
        // A body cut inside its message (past the bytes kept): what came.
        assert_eq!(
            read(r#"{"partialSuccess":{"rejectedSpans":5,"errorMessage":"quota ex"#),
            named(5, "quota ex")
        );
    }

    /// Protobuf's JSON readers take a field under its proto name as under
    /// its lowerCamelCase one: a server writing the names as declared had
    /// its rejections counted delivered. The first of the two in the text
    /// is read, whichever it is.
    #[test]
    fn json_partial_success_under_the_proto_field_names_is_read() {
        let a = parse(
            br#"{"partial_success":{"rejected_spans":"2","error_message":"bad"}}"#,
            BodyFormat::Json,
        );
        assert_eq!((a.rejected_spans, a.message.as_str()), (2, "bad"));
        let a = parse(
            br#"{"partial_success":{"rejected_spans":3},"partialSuccess":{"rejectedSpans":1}}"#,
            BodyFormat::Json,
        );
        assert_eq!(a.rejected_spans, 3);
    }

    /// A server that answers in the other encoding than the request's:
    /// its partial success is read all the same.
    #[test]
    fn an_answer_in_the_other_encoding_is_read() {
        let json = br#"{"partialSuccess":{"rejectedSpans":"5","errorMessage":"too old"}}"#;
        let a = parse(json, BodyFormat::Protobuf);
        assert_eq!((a.rejected_spans, a.message.as_str()), (5, "too old"));
        // partial_success { rejected_spans: 3, error_message: "quota" }
        let proto = [
            0x0a, 0x09, 0x08, 0x03, 0x12, 0x05, b'q', b'u', b'o', b't', b'a',
        ];
        let a = parse(&proto, BodyFormat::Json);
        assert_eq!((a.rejected_spans, a.message.as_str()), (3, "quota"));
        // Nothing to read in either: nothing rejected, as before.
        for body in [&b""[..], b"{}", b" {\n}", b"ok", b"\x0a\x50"] {
            for format in [BodyFormat::Protobuf, BodyFormat::Json] {
                assert_eq!(parse(body, format), Accepted::default(), "{body:?}");
            }
        }
    }

    /// A count past what a u64 holds is still "more than were sent", as
    /// the same count in protobuf saturates: read as 0, the spans the
    /// server said it rejected were counted delivered, and nothing said.
    #[test]
    fn a_json_count_past_u64_rejects_every_span() {
        for count in ["99999999999999999999999", "\"18446744073709551616\""] {
            let body =
                format!(r#"{{"partialSuccess":{{"rejectedSpans":{count},"errorMessage":"all"}}}}"#);
            let a = parse(body.as_bytes(), BodyFormat::Json);
            assert_eq!(a.rejected_spans, u64::MAX, "{count}");
            assert_eq!(a.message, "all");
        }
        // u64::MAX itself, and a count of no digits, as before.
        let max = br#"{"partialSuccess":{"rejectedSpans":18446744073709551615}}"#;
        assert_eq!(parse(max, BodyFormat::Json).rejected_spans, u64::MAX);
        let none = br#"{"partialSuccess":{"rejectedSpans":null}}"#;
        assert_eq!(parse(none, BodyFormat::Json).rejected_spans, 0);
    }

    /// A count written with an exponent or a fraction is the number it
    /// is: `1e3` was read as its digits up to the `e` (1), which counted
    /// 999 of the spans the server rejected as delivered. A fraction
    /// rounds up, past u64 saturates, and a negative one (not zero) is
    /// every span, as for integers.
    #[test]
    fn a_json_count_with_an_exponent_or_a_fraction_is_the_number_it_is() {
        for (count, want) in [
            ("1e3", 1000),
            ("2E2", 200),
            ("1.5e3", 1500),
            ("\"1e3\"", 1000),
            ("2e+2", 200),
            ("1.5", 2),
            ("2.0", 2),
            ("0.001", 1),
            ("25e-1", 3),
            ("3000e-3", 3),
            ("1e-999999999999", 1),
            ("0e5", 0),
            ("0.0", 0),
            ("1.8446744073709551615e19", u64::MAX),
            ("1.8446744073709551614e19", u64::MAX - 1),
            ("1.84467440737095516141e19", u64::MAX),
            ("2e19", u64::MAX),
            ("1e20", u64::MAX),
            ("1e999999999999999999999", u64::MAX),
            ("-1e3", u64::MAX),
            ("-0.5", u64::MAX),
            ("-0e5", 0),
            ("-0.0", 0),
            ("7", 7),
            ("7,", 7),
        ] {
            let body = format!(r#"{{"partialSuccess":{{"rejectedSpans":{count}}}}}"#);
            assert_eq!(
                parse(body.as_bytes(), BodyFormat::Json).rejected_spans,
                want,
                "{count}"
            );
        }
    }

    /// A negative count (the field is an int64) reads in JSON as it does
    /// in protobuf, where it is a ten-byte varint: every span rejected,
    /// never none (which counted the rejected spans delivered).
    #[test]
    fn a_negative_count_rejects_every_span_in_either_encoding() {
        // partial_success { rejected_spans: -5 }: int64 -5 as a varint.
        let mut inner = vec![0x08];
        inner.extend_from_slice(&[0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        let mut proto = vec![0x0a, inner.len() as u8];
        proto.extend_from_slice(&inner);
        // What delivery counts of a batch of 1000 (it takes the least of
        // the count and the batch's spans).
        let of_1000 = |a: Accepted| a.rejected_spans.min(1000);
        assert_eq!(of_1000(parse(&proto, BodyFormat::Protobuf)), 1000);
        for count in ["-5", "\"-5\"", "-1", "\"-99999999999999999999999\""] {
            let body = format!(r#"{{"partialSuccess":{{"rejectedSpans":{count}}}}}"#);
            assert_eq!(
                of_1000(parse(body.as_bytes(), BodyFormat::Json)),
                1000,
                "{count}"
            );
        }
        // Minus zero is zero, as in protobuf; a lone minus is no count.
        for count in ["-0", "\"-00\"", "\"-\""] {
            let body = format!(r#"{{"partialSuccess":{{"rejectedSpans":{count}}}}}"#);
            assert_eq!(
                parse(body.as_bytes(), BodyFormat::Json).rejected_spans,
                0,
                "{count}"
            );
        }
    }

    /// A backend that answers JSON to a protobuf request (and the other way
    /// round): the spans it rejected are counted and said, not taken as
    /// delivered because the answer was read in the request's encoding.
    #[test]
    fn an_answer_is_read_in_the_encoding_it_came_in() {
        let json = br#" {"partialSuccess":{"rejectedSpans":"2","errorMessage":"span too old"}}"#;
        let a = parse(json, BodyFormat::Protobuf);
        assert_eq!((a.rejected_spans, a.message.as_str()), (2, "span too old"));
        let proto = [
            0x0a, 0x09, 0x08, 0x03, 0x12, 0x05, b'q', b'u', b'o', b't', b'a',
        ];
        let a = parse(&proto, BodyFormat::Json);
        assert_eq!((a.rejected_spans, a.message.as_str()), (3, "quota"));
    }

    /// A JSON message's escapes read as the characters they stand for,
    /// then shown as every message is: the backslash was dropped and the
    /// letter after it kept (`a\nb` read `anb`, `caf\u00e9` read
    /// `cafu00e9`), so the server's words reached the user changed. An
    /// escape JSON has not is kept as written; a lone surrogate is U+FFFD.
    #[test]
    fn a_json_messages_escapes_are_read_exactly() {
        for (written, shown) in [
            (r"a\nb", r"a\nb"),
            (r#"say \"no\""#, r#"say "no""#),
            (r"caf\u00e9 \u00E9", "caf\u{e9} \u{e9}"),
            (r"\ud83d\ude00!", "\u{1f600}!"),
            (r"\uD83D\uDE00", "\u{1f600}"),
            (r"C:\\Users\/x", r"C:\Users/x"),
            (r"tab\there\r\b\f", r"tab\there\r\x08\x0c"),
            (r"\u001b[2J\u0000", r"\x1b[2J\x00"),
            (r"\u202e\u200b", r"\u{202e}\u{200b}"),
            // "ok" then "hi" in tag characters, as surrogate pairs.
            (r"ok\udb40\udc68\udb40\udc69", r"ok\u{e0068}\u{e0069}"),
            // Surrogates with no partner.
            (r"a\ud83db", "a\u{fffd}b"),
            (r"a\ude00b", "a\u{fffd}b"),
            (r"\ud83d\u0041", "\u{fffd}A"),
            (r"\ud83d\ud83d\ude00", "\u{fffd}\u{1f600}"),
            (r"\ud83d", "\u{fffd}"),
            // No escape JSON has: as written.
            (r"\q\u12x\uZZZZ\u", r"\q\u12x\uZZZZ\u"),
            (r"\\\\", r"\\"),
        ] {
            let body =
                format!(r#"{{"partialSuccess":{{"rejectedSpans":1,"errorMessage":"{written}"}}}}"#);
            assert_eq!(
                parse(body.as_bytes(), BodyFormat::Json).message,
                shown,
                "{written}"
            );
        }
        // A backslash that ends the body is kept.
        let body = br#"{"partialSuccess":{"rejectedSpans":1,"errorMessage":"end\"#;
        assert_eq!(parse(body, BodyFormat::Json).message, r"end\");
        // The string ends at its closing quote, not an escaped one.
        let body = br#"{"partialSuccess":{"errorMessage":"a\"b","rejectedSpans":2}}"#;
        let a = parse(body, BodyFormat::Json);
        assert_eq!((a.rejected_spans, a.message.as_str()), (2, r#"a"b"#));
    }

    #[test]
    fn a_servers_message_cannot_forge_a_line_or_drive_the_terminal() {
        let hostile = "quota\x1b[2J\nspanguard: error: forged\r\x07\u{9b}\u{202e}";
        let mut inner = vec![0x08, 0x02, 0x12, hostile.len() as u8];
        inner.extend_from_slice(hostile.as_bytes());
        let mut body = vec![0x0a, inner.len() as u8];
        body.extend_from_slice(&inner);
        let shown = r"quota\x1b[2J\nspanguard: error: forged\r\x07\x9b\u{202e}";
        assert_eq!(parse(&body, BodyFormat::Protobuf).message, shown);
        let json =
            format!(r#"{{"partialSuccess":{{"rejectedSpans":1,"errorMessage":"{hostile}"}}}}"#);
        assert_eq!(parse(json.as_bytes(), BodyFormat::Json).message, shown);
        // A long message is cut, and says by how much.
        let long = format!(
            r#"{{"partialSuccess":{{"rejectedSpans":1,"errorMessage":"{}"}}}}"#,
            "x".repeat(60_000)
        );
        let message = parse(long.as_bytes(), BodyFormat::Json).message;
        assert_eq!(
            message,
            format!(
                "{}... ({} more bytes)",
                "x".repeat(MESSAGE_MAX_CHARS),
                60_000 - MESSAGE_MAX_CHARS
            )
        );
        // One just as long as the most kept is whole.
        let whole = format!(
            r#"{{"partialSuccess":{{"rejectedSpans":1,"errorMessage":"{}"}}}}"#,
            "\u{e9}".repeat(MESSAGE_MAX_CHARS)
        );
        let message = parse(whole.as_bytes(), BodyFormat::Json).message;
        assert_eq!(message, "\u{e9}".repeat(MESSAGE_MAX_CHARS));
    }
}
