//! A request body as `spanguard show` and `spanguard spool` read it from a
//! spool file or a sink line (files anyone with the directory could have
//! written or torn): any bytes, in either format, gzipped or not, decode
//! to spans or to a reason, never a panic and never an allocation past
//! what the bytes (or the inflate bound) allow. A body that decodes is
//! read again and gives the same spans: nothing in the decoder depends on
//! state left from an earlier body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanguard::export::otlp_decode::decode_body;

mod body;

fuzz_target!(|data: &[u8]| {
    let Some(r) = body::reading(data) else {
        return;
    };
    if let Ok(spans) = decode_body(r.body, r.format, r.gzipped) {
        let again = decode_body(r.body, r.format, r.gzipped).expect("decoded once");
        assert_eq!(format!("{spans:?}"), format!("{again:?}"));
    }
});
