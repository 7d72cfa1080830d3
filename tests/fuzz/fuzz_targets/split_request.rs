//! An encoded request read back from the spool directory (input from
//! outside) split in two for a server that answered 413: any bytes, in
//! either format, never a panic; and a split keeps every span, once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanguard::export::gzip::GzipWriter;
use spanguard::export::split::{count_spans, split_in_two};
use spanguard::export::transport::BodyFormat;

fuzz_target!(|data: &[u8]| {
    let mut gzip = GzipWriter::new();
    for format in [BodyFormat::Protobuf, BodyFormat::Json] {
        if let Some((a, b)) = split_in_two(data, format, false, &mut gzip) {
            let total = count_spans(data, format).expect("it was read to be split");
            assert_eq!(a.spans + b.spans, total);
            assert_eq!(count_spans(&a.body, format), Some(a.spans));
            assert_eq!(count_spans(&b.body, format), Some(b.spans));
        }
        // The same bytes as a gzipped body must not panic either.
        let _ = split_in_two(data, format, true, &mut gzip);
    }
});
