//! A server's answer body (an OTLP partial success), in both formats: any
//! bytes, never a panic. And a count of rejected spans written in any of
//! the forms OTLP/JSON allows (a number, a decimal string, a fraction, an
//! exponent, a sign) is read as the count it is, as its protobuf varint
//! is: the input's bytes, as decimal digits, are the count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanguard::export::partial_success::parse;
use spanguard::export::transport::BodyFormat;

/// The JSON answer with `count` as its rejectedSpans, read.
fn rejected_in_json(count: &str) -> u64 {
    let body = format!(r#"{{"partialSuccess":{{"rejectedSpans":{count},"errorMessage":"x"}}}}"#);
    parse(body.as_bytes(), BodyFormat::Json).rejected_spans
}

fuzz_target!(|data: &[u8]| {
    let _ = parse(data, BodyFormat::Protobuf);
    let _ = parse(data, BodyFormat::Json);

    if data.is_empty() || data.len() > 48 {
        return;
    }
    let digits: String = data.iter().map(|b| char::from(b'0' + b % 10)).collect();
    // The count, saturated as a protobuf varint's reading is.
    let n: u64 = digits
        .trim_start_matches('0')
        .parse::<u128>()
        .map_or(u64::MAX, |n| n.min(u64::MAX as u128) as u64);
    let n = if digits.trim_start_matches('0').is_empty() {
        0
    } else {
        n
    };
    // ExportTracePartialSuccess { rejected_spans: n } in field 1.
    let mut partial = vec![0x08];
    let mut v = n;
    while v >= 0x80 {
        partial.push(v as u8 | 0x80);
        v >>= 7;
    }
    partial.push(v as u8);
    let mut body = vec![0x0a, partial.len() as u8];
    body.extend_from_slice(&partial);
    assert_eq!(parse(&body, BodyFormat::Protobuf).rejected_spans, n);
    for same in [
        digits.clone(),
        format!("\"{digits}\""),
        format!("{digits}e0"),
        format!("{digits}E+0"),
        format!("{digits}.000"),
        format!("{digits}0e-1"),
        format!("0.{digits}e{}", digits.len()),
    ] {
        assert_eq!(rejected_in_json(&same), n, "{same}");
    }
    // A fraction rounds up: a rejected span is never counted delivered.
    let up = if n == 0 { 1 } else { n.saturating_add(1) };
    assert_eq!(rejected_in_json(&format!("{digits}.5")), up);
    assert_eq!(rejected_in_json(&format!("{digits}5e-1")), up);
    assert_eq!(
        rejected_in_json(&format!("{digits}e1")),
        n.saturating_mul(10)
    );
    // Negative: every span, as its ten-byte varint reads; "-0" is 0.
    let negative = if n == 0 { 0 } else { u64::MAX };
    assert_eq!(rejected_in_json(&format!("-{digits}")), negative);
});
