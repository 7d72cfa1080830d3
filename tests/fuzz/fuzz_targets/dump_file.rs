//! A crash dump or flight file found in the spool directory: any bytes,
//! raw or behind a valid header of this build (so that the records
//! themselves are fuzzed), are read without a panic, and every record the
//! reader hands out encodes in both formats (its counts and text
//! references were made safe for the encoders). A header made for any
//! service name and resource (mode bit 3: the resource a bridge sets at
//! run time, `Tracer::set_resource`) reads back as it was made: the name
//! whole where its escaped text fits the header, and each resource
//! attribute that fits exactly as given, in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanguard::buffer::dump::{DumpHeader, DumpReader, magic_of};
use spanguard::buffer::files::{BeforeOpen, LockedFile};
use spanguard::export::otlp_json::OtlpJsonEncoder;
use spanguard::export::otlp_proto::OtlpProtoEncoder;
use spanguard::export::resource::ResourceInfo;
use spanguard::span::record::{SpanRecord, SpanView};

mod input;
use input::Input;

/// The resource text's room in a dump header (`RESOURCE_TEXT_BYTES`).
const RESOURCE_TEXT_BYTES: usize = 1024;
/// A service name this long or longer fills the header's field
/// (`SERVICE_NAME_FILLS`): its whole text goes in the resource text.
const SERVICE_NAME_FILLS: usize = 253;

impl Input<'_> {
    /// Text of any length up to a few KiB from a few bytes: a piece of the
    /// input repeated.
    fn text(&mut self) -> String {
        let unit = self.byte() as usize % 8;
        let unit = String::from_utf8_lossy(self.bytes(unit)).into_owned();
        let times = match self.byte() {
            0..=127 => 1,
            n => n as usize * 4,
        };
        unit.repeat(times)
    }
}

/// The service name and resource (keys not empty, as every API that
/// sets one asks) the input gives, with the header made of them; checks
/// that the header reads them back.
fn header_of_resource(input: &mut Input, magic: [u8; 8], count: u32) -> DumpHeader {
    let name = input.text();
    let resource: Vec<(String, String)> = (0..input.byte() % 6)
        .map(|_| (input.text(), input.text()))
        .filter(|(k, _)| !k.is_empty())
        .collect();
    let header = DumpHeader::new(magic, count, &name, &resource);
    // At most three bytes of text for each byte given (an escape).
    let room = |k: &str, v: &str| 3 * (k.len() + v.len()) + 2;
    let (got, whole) = header.service_name_whole();
    if whole {
        assert_eq!(got, name, "the service name read back");
    } else {
        assert!(name.starts_with(&got), "{got:?} is no cut of {name:?}");
    }
    let long = name.len() >= SERVICE_NAME_FILLS;
    assert!(
        whole || (long && room("service.name", &name) > RESOURCE_TEXT_BYTES),
        "a service name of {} bytes not known to be whole",
        name.len()
    );
    // The attributes read back: those given, in order, as many as fit
    // (all when they fit however escaped), a service.name among them left
    // to the name's.
    let given: Vec<&(String, String)> = resource
        .iter()
        .filter(|(k, _)| k != "service.name")
        .collect();
    let read: Vec<(String, String)> = header
        .resource_attributes()
        .into_iter()
        .filter(|(k, _)| k != "service.name")
        .collect();
    let mut rest = given.iter();
    for entry in &read {
        assert!(
            rest.any(|g| *g == entry),
            "{entry:?} read back is not one given, in order: {given:?}"
        );
    }
    let needed: usize = given.iter().map(|(k, v)| room(k, v)).sum::<usize>()
        + if long { room("service.name", &name) } else { 0 };
    if needed <= RESOURCE_TEXT_BYTES {
        assert_eq!(read.len(), given.len(), "{given:?} read back as {read:?}");
    }
    header
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut rest = rest;
    let mut bytes = Vec::new();
    if mode & 1 == 1 {
        let flight = mode & 2 == 2;
        let magic = magic_of(flight);
        let count = if mode & 4 == 4 {
            u32::from(mode) << 4
        } else {
            0
        };
        let mut header = if mode & 8 == 8 {
            let mut input = Input(rest);
            let header = header_of_resource(&mut input, magic, count);
            // The records follow what the resource took.
            rest = input.0;
            header
        } else {
            DumpHeader::new(magic, count, "fuzz", &[])
        };
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
    let (mut spans, mut cut, mut ended) = (0u64, 0u64, false);
    while let Ok(records) = reader.next_records(16) {
        cut += reader.take_chunks_cut();
        if records.is_empty() {
            ended = true;
            break;
        }
        spans += records.len() as u64;
        let refs: Vec<_> = records
            .iter()
            .map(|(r, chunks)| SpanView::from_disk(r, chunks))
            .collect();
        proto.encode(&resource, &refs, &mut out);
        json.encode(&resource, &refs, &mut out);
    }
    // The counts recovery reports: never more spans than the file says it
    // holds, read or torn, and never more cut than read.
    assert!(cut <= spans, "{cut} spans cut of {spans} read");
    let header = reader.header();
    let records_at = if header.magic == magic_of(true) {
        std::mem::size_of::<DumpHeader>().next_multiple_of(64)
    } else {
        std::mem::size_of::<DumpHeader>()
    };
    let room = (bytes.len().saturating_sub(records_at) / std::mem::size_of::<SpanRecord>()) as u64;
    let torn = reader.torn_records();
    if header.magic == magic_of(true) {
        assert_eq!(torn, 0, "a flight file's torn records");
        assert!(
            spans <= u64::from(header.record_count).min(room),
            "{spans} spans"
        );
    } else if header.record_count > 0 {
        assert!(
            spans + if ended { torn } else { 0 } <= u64::from(header.record_count),
            "{spans} spans and {torn} torn of {} records",
            header.record_count
        );
    } else {
        assert!(spans <= room, "{spans} spans in room for {room} records");
        assert!(torn <= 1, "{torn} torn records of a dump with no count");
    }
});
