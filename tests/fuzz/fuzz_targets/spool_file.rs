//! A spool file found in the spool directory: any bytes are either a batch
//! whose body is exactly what its header says, or refused, never a panic
//! and never an allocation the file's size and the cap do not allow; its
//! spans are counted in its body, or it is no request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanguard::export::spool::{count_in_body, read_batch};

const CAP: u64 = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("spanguard-fuzz-spool-{}", std::process::id()));
    std::fs::write(&path, data).expect("temp file");
    let file = std::fs::File::open(&path).expect("open");
    if let Ok(mut batch) = read_batch(&file, CAP) {
        // Either header: `SGSPOOL1`'s, or `SGSPOOL2`'s with the count of
        // values cut.
        let header = data.len() - batch.body.len();
        assert!(header == 22 || header == 30, "a header of {header} bytes");
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
