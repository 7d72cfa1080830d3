//! Turns span records into request bodies no bigger than the byte budget
//! (`max_request_bytes`, or the sink's line limit): the encoders' one entry
//! point. A batch is encoded whole when it fits, else as consecutive parts,
//! each as many spans as fit, while the records are still held.

use super::gzip::GzipWriter;
use super::otlp_json::OtlpJsonEncoder;
use super::otlp_proto::OtlpProtoEncoder;
use super::resource::ResourceInfo;
use super::transport::BodyFormat;
use crate::span::record::SpanRecord;

pub struct RequestEncoder {
    pub format: BodyFormat,
    pub gzip: bool,
    /// The most bytes one body may have before compression.
    budget: usize,
    proto: OtlpProtoEncoder,
    json: OtlpJsonEncoder,
    gzip_writer: GzipWriter,
    encoded: Vec<u8>,
    compressed: Vec<u8>,
}

impl RequestEncoder {
    pub fn new(format: BodyFormat, gzip: bool, budget: usize, batch: usize) -> RequestEncoder {
        RequestEncoder {
            format,
            gzip,
            budget,
            proto: OtlpProtoEncoder::new(),
            json: OtlpJsonEncoder::new(),
            gzip_writer: GzipWriter::new(),
            encoded: Vec::with_capacity((batch * 512).min(budget)),
            compressed: Vec::with_capacity((batch * 128).min(budget)),
        }
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Encodes the longest prefix of `records` that fits in the budget as
    /// one request and returns its length; the body is `self.body()`. 0
    /// means the first record alone is over the budget (then nothing is
    /// encoded: the caller counts it lost).
    ///
    /// Payload cutting hooks in here: a span over the budget is where the
    /// largest values of one span would be cut to fit, with the budget as
    /// the bound.
    pub fn encode_prefix(&mut self, resource: &ResourceInfo, records: &[&SpanRecord]) -> usize {
        let mut n = records.len();
        loop {
            self.encode_plain(resource, &records[..n]);
            let len = self.encoded.len();
            if len <= self.budget {
                break;
            }
            if n <= 1 {
                self.encoded.clear();
                return 0;
            }
            // Shrink in proportion to the excess: one or two encodings find
            // a part that fits, whatever the spans' sizes.
            n = (n as u128 * self.budget as u128 / len as u128).clamp(1, n as u128 - 1) as usize;
        }
        if self.gzip {
            self.gzip_writer
                .compress(&self.encoded, &mut self.compressed);
        }
        n
    }

    fn encode_plain(&mut self, resource: &ResourceInfo, records: &[&SpanRecord]) {
        match self.format {
            BodyFormat::Protobuf => self.proto.encode(resource, records, &mut self.encoded),
            BodyFormat::Json => self.json.encode(resource, records, &mut self.encoded),
        }
    }

    /// The last encoded body, as it is sent (gzipped when configured).
    pub fn body(&self) -> &[u8] {
        if self.gzip {
            &self.compressed
        } else {
            &self.encoded
        }
    }

    /// The gzip state, lent to whoever must gzip a split request again.
    pub fn gzip_writer(&mut self) -> &mut GzipWriter {
        &mut self.gzip_writer
    }
}
