//! A crash dump or flight file found in the spool directory: any bytes,
//! raw or behind a valid header of this build (so that the records
//! themselves are fuzzed), are read without a panic, and every record the
//! reader hands out encodes in both formats (its counts and text
//! references were made safe for the encoders).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanguard::buffer::dump::{DumpHeader, DumpReader, magic_of};
use spanguard::buffer::files::{BeforeOpen, LockedFile};
use spanguard::export::otlp_json::OtlpJsonEncoder;
use spanguard::export::otlp_proto::OtlpProtoEncoder;
use spanguard::export::resource::ResourceInfo;
use spanguard::span::record::SpanView;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = Vec::new();
    if mode & 1 == 1 {
        let flight = mode & 2 == 2;
        let magic = magic_of(flight);
        let count = if mode & 4 == 4 {
            u32::from(mode) << 4
        } else {
            0
        };
        let mut header = DumpHeader::new(magic, count, "fuzz", &[]);
        let records_at = std::mem::size_of::<DumpHeader>().next_multiple_of(64);
        if flight {
            // The second half of the input is the payload pool.
            header.pool_chunks = 8;
            header.pool_offset = (records_at + rest.len() / 2) as u64;
        }
        bytes.extend_from_slice(header.as_bytes());
        if flight {
            bytes.resize(records_at, 0);
        }
    }
    bytes.extend_from_slice(rest);
    let path = std::env::temp_dir().join(format!("spanguard-fuzz-dump-{}", std::process::id()));
    std::fs::write(&path, &bytes).expect("temp file");
    let opened = BeforeOpen::now();
    let (file, _) = LockedFile::lock(std::fs::File::open(&path).expect("open"), opened);
    let Ok(mut reader) = DumpReader::open(file, 1) else {
        return;
    };
    let resource = ResourceInfo::new(
        &reader.header().service_name(),
        &reader.header().resource_attributes(),
    );
    let (mut proto, mut json, mut out) =
        (OtlpProtoEncoder::new(), OtlpJsonEncoder::new(), Vec::new());
    while let Ok(records) = reader.next_records(16) {
        if records.is_empty() {
            break;
        }
        let refs: Vec<_> = records
            .iter()
            .map(|(r, chunks)| SpanView::from_disk(r, chunks))
            .collect();
        proto.encode(&resource, &refs, &mut out);
        json.encode(&resource, &refs, &mut out);
    }
});
