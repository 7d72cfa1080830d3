//! A server's Retry-After header: any text, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanguard::export::retry::parse_retry_after;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // Any "now", from the epoch to the end of time.
        let _ = parse_retry_after(text, 0);
        let _ = parse_retry_after(text, u64::MAX);
    }
});
