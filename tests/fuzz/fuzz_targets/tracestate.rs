//! Any bytes as a (combined) tracestate header: never a panic; what is
//! kept fits the limit, holds at most 32 members, and is its own
//! canonical form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanguard::span::limits::MAX_TRACESTATE_BYTES;
use spanguard::span::tracestate::Tracestate;

fuzz_target!(|data: &[u8]| {
    if let Ok(ts) = Tracestate::parse(data) {
        let text = ts.as_bytes();
        assert!(text.len() <= MAX_TRACESTATE_BYTES);
        assert!(text.split(|&b| b == b',').count() <= 32);
        let again = Tracestate::parse(text).expect("canonical form parses");
        assert_eq!(again.as_bytes(), text);
        assert_eq!(again.cut_members, 0);
    }
});
