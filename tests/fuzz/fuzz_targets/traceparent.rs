//! Any bytes as a traceparent header: never a panic; what parses has
//! non-zero ids and only the flags the spec defines, and formats back to a
//! header that parses to the same context.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanguard::span::traceparent::{TRACEPARENT_LEN, format, parse};

fuzz_target!(|data: &[u8]| {
    if let Some(p) = parse(data) {
        assert_ne!(p.trace_id, [0; 16]);
        assert_ne!(p.span_id, [0; 8]);
        assert_eq!(p.trace_flags & !0x03, 0, "reserved flags cleared");
        let mut out = [0u8; TRACEPARENT_LEN];
        format(&p.trace_id, &p.span_id, p.trace_flags, &mut out);
        assert_eq!(parse(&out), Some(p));
    }
});
