//! Turns span records into request bodies no bigger than the byte budget
//! (`max_request_bytes`, or the sink's line limit): the encoders' one entry
//! point. A batch is encoded whole when it fits, else as consecutive parts,
//! each as many spans as fit, while the records are still held.

use super::gzip::GzipWriter;
use super::otlp_json::OtlpJsonEncoder;
use super::otlp_proto::OtlpProtoEncoder;
use super::resource::ResourceInfo;
use super::transport::BodyFormat;
use crate::span::record::SpanView;

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
    /// one request and returns its length; the body is `self.body()`. A
    /// span that alone is over the budget has its largest values cut to
    /// fit (the encoders' span budget: the request budget less the
    /// request's own framing); 0 means even that did not make it fit (then
    /// nothing is encoded: the caller counts it lost).
    pub fn encode_prefix(&mut self, resource: &ResourceInfo, records: &[SpanView]) -> usize {
        // The framing every request of this resource carries, and a margin
        // for a scope of its own and the span's field header.
        self.encode_plain(resource, &[]);
        let span_budget = self.budget.saturating_sub(self.encoded.len() + 512);
        self.proto.set_span_budget(Some(span_budget));
        self.json.set_span_budget(Some(span_budget));
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

    /// Values the span budget cut since the last call (counted as
    /// truncated).
    pub fn take_cut_values(&mut self) -> u64 {
        self.proto.take_cut_values() + self.json.take_cut_values()
    }

    fn encode_plain(&mut self, resource: &ResourceInfo, records: &[SpanView]) {
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
