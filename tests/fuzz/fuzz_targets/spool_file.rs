//! A spool file found in the spool directory: any bytes are either a batch
//! whose body is exactly what its header says, or refused, never a panic
//! and never an allocation the file's size and the cap do not allow; its
//! spans are counted in its body, or it is no request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanguard::export::spool::{
    MAX_CUT_PLACES, count_in_body, encode_header_with_places, read_batch,
};

const CAP: u64 = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("spanguard-fuzz-spool-{}", std::process::id()));
    std::fs::write(&path, data).expect("temp file");
    let file = std::fs::File::open(&path).expect("open");
    if let Ok(mut batch) = read_batch(&file, CAP) {
        // Any header: `SGSPOOL1`'s, `SGSPOOL2`'s with the count of values
        // cut, or `SGSPOOL3`'s with that count and the places of the
        // values (a u32 count, bounded, then a u32 each), read as written.
        let header = data.len() - batch.body.len();
        let places = batch.cut_at.len();
        assert!(places <= MAX_CUT_PLACES, "{places} places");
        if places == 0 {
            assert!(
                header == 22 || header == 30 || header == 34,
                "a header of {header} bytes"
            );
        } else {
            assert_eq!(header, 34 + 4 * places, "{places} places");
            assert_eq!(&data[..8], b"SGSPOOL3");
            for (i, &at) in batch.cut_at.iter().enumerate() {
                let raw = &data[34 + 4 * i..38 + 4 * i];
                assert_eq!(at, u32::from_le_bytes(raw.try_into().unwrap()) as u64);
            }
            // What a writer makes of them is that header again.
            let again = encode_header_with_places(
                batch.format,
                batch.gzipped,
                batch.spans,
                (batch.cut_counted, &batch.cut_at),
                batch.body.len(),
            );
            if batch.cut_counted > 0 && data[9] <= 1 {
                assert_eq!(&again[..], &data[..header]);
            }
        }
        assert!(data.ends_with(&batch.body));
        assert!(batch.body.len() as u64 <= CAP);
        // Its spans are counted in its body, or it is no request: never a
        // panic, and never a count the body does not hold.
        let claimed = batch.spans;
        match count_in_body(&mut batch) {
            Ok(None) => assert_eq!(batch.spans, claimed),
            Ok(Some(n)) => assert_eq!(n, claimed),
            Err(_) => {}
        }
    }
});
