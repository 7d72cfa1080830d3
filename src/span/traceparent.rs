//! W3C Trace Context `traceparent`: `00-<32 hex trace id>-<16 hex parent
//! id>-<2 hex flags>`.

use super::ids::{parse_hex, write_hex};

pub const TRACEPARENT_LEN: usize = 55;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub trace_flags: u8,
}

/// Parses a traceparent. Version 00 must be exactly 55 bytes; a later version
/// may carry more fields after a '-', which are ignored as the spec says.
/// All-zero ids and version ff are invalid.
pub fn parse(text: &[u8]) -> Option<RemoteParent> {
    let text = text.trim_ascii();
    if text.len() < TRACEPARENT_LEN {
        return None;
    }
    let mut version = [0u8; 1];
    if !parse_hex(&text[0..2], &mut version) || version[0] == 0xff {
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
    if !parse_hex(&text[3..35], &mut p.trace_id)
        || !parse_hex(&text[36..52], &mut p.span_id)
        || !parse_hex(&text[53..55], &mut flags)
    {
        return None;
    }
    if p.trace_id == [0; 16] || p.span_id == [0; 8] {
        return None;
    }
    p.trace_flags = flags[0];
    Some(p)
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
}
