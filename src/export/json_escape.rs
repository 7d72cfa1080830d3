//! Text as a JSON string's contents: `"` and `\` escaped, control
//! characters as `\u00XX`, the rest as it is. One escaping for the
//! OTLP/JSON encoder and for an array value a crash dump's header keeps as
//! JSON text (`resource::AttrValue::text`).

use super::append::append;

/// Appends `bytes` escaped (not the quotes). Looks at single ASCII bytes,
/// so `bytes` may end inside a character (the encoder writes text in
/// pieces).
#[inline]
pub fn put_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut plain_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        append(out, &bytes[plain_from..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]),
        }
        plain_from = i + 1;
    }
    append(out, &bytes[plain_from..]);
}

/// `s` as a JSON string, quotes included.
pub fn quoted(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(b'"');
    put_escaped(&mut out, s.as_bytes());
    out.push(b'"');
    // Valid UTF-8 in, and only ASCII written in its place.
    String::from_utf8(out).unwrap_or_default()
}
