//! W3C Trace Context `traceparent`: `00-<32 hex trace id>-<16 hex parent
//! id>-<2 hex flags>`.

use super::ids::write_hex;

pub const TRACEPARENT_LEN: usize = 55;

/// Trace flags: the caller may have recorded the trace.
pub(crate) const FLAG_SAMPLED: u8 = 0x01;
/// Trace flags (Level 2): at least the right-most 7 bytes of the trace id
/// are random.
pub(crate) const FLAG_RANDOM: u8 = 0x02;
/// The flags this version defines; the others must be sent as zero.
pub(crate) const KNOWN_FLAGS: u8 = FLAG_SAMPLED | FLAG_RANDOM;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub trace_flags: u8,
}

/// Parses a traceparent, as the specification's rules for receivers say:
/// optional whitespace around it is ignored; hex must be lowercase (an
/// uppercase header is invalid and must be ignored); version `ff` and
/// all-zero ids are invalid. Version 00 must be exactly 55 characters and
/// keeps the flags it defines (sampled, random) with the others cleared.
/// A higher version may carry more fields after a `-`, which are ignored,
/// and only its sampled bit is read.
pub fn parse(text: &[u8]) -> Option<RemoteParent> {
    let text = trim_ows(text);
    if text.len() < TRACEPARENT_LEN {
        return None;
    }
    let mut version = [0u8; 1];
    if !parse_lower_hex(&text[0..2], &mut version) || version[0] == 0xff {
        return None;
    }
    if text.len() > TRACEPARENT_LEN && (version[0] == 0 || text[TRACEPARENT_LEN] != b'-') {
        return None;
    }
    if text[2] != b'-' || text[35] != b'-' || text[52] != b'-' {
        return None;
    }
    let mut p = RemoteParent {
        trace_id: [0; 16],
        span_id: [0; 8],
        trace_flags: 0,
    };
    let mut flags = [0u8; 1];
    if !parse_lower_hex(&text[3..35], &mut p.trace_id)
        || !parse_lower_hex(&text[36..52], &mut p.span_id)
        || !parse_lower_hex(&text[53..55], &mut flags)
    {
        return None;
    }
    if p.trace_id == [0; 16] || p.span_id == [0; 8] {
        return None;
    }
    p.trace_flags = if version[0] == 0 {
        flags[0] & KNOWN_FLAGS
    } else {
        flags[0] & FLAG_SAMPLED
    };
    Some(p)
}

/// Spaces and tabs around a header value (RFC 9110's OWS).
fn trim_ows(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |p| p + 1);
    &text[start..end]
}

/// Lowercase hex only: traceparent's grammar is HEXDIGLC.
fn parse_lower_hex(text: &[u8], out: &mut [u8]) -> bool {
    if text.len() != out.len() * 2 {
        return false;
    }
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    for (i, o) in out.iter_mut().enumerate() {
        match (nibble(text[2 * i]), nibble(text[2 * i + 1])) {
            (Some(h), Some(l)) => *o = h << 4 | l,
            _ => return false,
        }
    }
    true
}

/// Formats a version-00 traceparent into `out`.
pub fn format(trace_id: &[u8; 16], span_id: &[u8; 8], flags: u8, out: &mut [u8; TRACEPARENT_LEN]) {
    out[0] = b'0';
    out[1] = b'0';
    out[2] = b'-';
    write_hex(trace_id, &mut out[3..35]);
    out[35] = b'-';
    write_hex(span_id, &mut out[36..52]);
    out[52] = b'-';
    write_hex(&[flags], &mut out[53..55]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_the_spec_example() {
        let s = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let p = parse(s).expect("valid");
        assert_eq!(p.trace_flags, 1);
        let mut out = [0u8; TRACEPARENT_LEN];
        format(&p.trace_id, &p.span_id, p.trace_flags, &mut out);
        assert_eq!(&out, s);
    }

    #[test]
    fn rejects_malformed_input() {
        for bad in [
            &b""[..],
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse(bad).is_none(), "{:?}", std::str::from_utf8(bad));
        }
        assert!(parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra").is_some());
    }

    #[test]
    fn uppercase_hex_is_invalid() {
        for bad in [
            &b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            b"0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse(bad).is_none(), "{:?}", std::str::from_utf8(bad));
        }
    }

    #[test]
    fn every_separator_and_length_is_checked() {
        let good = *b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(parse(&good).is_some());
        for at in [2, 35, 52] {
            let mut bad = good;
            bad[at] = b'_';
            assert!(parse(&bad).is_none(), "separator at {at}");
        }
        // Each field one character too short or too long.
        assert!(parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-001").is_none());
        assert!(parse(b"00-4bf92f3577b34da6a3ce929d0e0e47360-0f067aa0ba902b7-01").is_none());
        assert!(parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011").is_none());
        assert!(parse(b"000-bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_none());
    }

    #[test]
    fn flags_keep_what_the_version_defines() {
        let tp = |v: &str, f: &str| {
            parse(format!("{v}-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{f}").as_bytes())
                .map(|p| p.trace_flags)
        };
        assert_eq!(tp("00", "ff"), Some(0x03), "reserved bits are cleared");
        assert_eq!(tp("00", "02"), Some(0x02), "the random bit is kept");
        assert_eq!(tp("00", "00"), Some(0x00));
        assert_eq!(
            tp("cc", "ff"),
            Some(0x01),
            "a future version: only sampled is read"
        );
        assert_eq!(tp("cc", "02"), Some(0x00));
    }

    #[test]
    fn optional_whitespace_is_ignored() {
        for ok in [
            &b" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t ",
            b"\t 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 \t",
        ] {
            assert!(parse(ok).is_some(), "{:?}", std::str::from_utf8(ok));
        }
    }
}
