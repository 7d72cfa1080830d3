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
use spanguard::export::transport::BodyFormat;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the reading: bit 0 JSON, bit 1 gzipped.
    let Some((&how, body)) = data.split_first() else {
        return;
    };
    let format = if how & 1 == 0 {
        BodyFormat::Protobuf
    } else {
        BodyFormat::Json
    };
    let gzipped = how & 2 != 0;
    if let Ok(spans) = decode_body(body, format, gzipped) {
        let again = decode_body(body, format, gzipped).expect("decoded once");
        assert_eq!(format!("{spans:?}"), format!("{again:?}"));
    }
});
