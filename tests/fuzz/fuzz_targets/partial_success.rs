//! A server's answer body (an OTLP partial success), in both formats: any
//! bytes, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanguard::export::partial_success::parse;
use spanguard::export::transport::BodyFormat;

fuzz_target!(|data: &[u8]| {
    let _ = parse(data, BodyFormat::Protobuf);
    let _ = parse(data, BodyFormat::Json);
});
