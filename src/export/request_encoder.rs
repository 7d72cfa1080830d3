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
    /// Made at the first request that needs it: a deflate state is about
    /// 260 KiB that the file sink and uncompressed requests never use.
    gzip_writer: Option<GzipWriter>,
    encoded: Vec<u8>,
    compressed: Vec<u8>,
    /// Bytes encoded so far, parts that did not fit included (the cost
    /// of finding the parts; tests).
    encoded_total: u64,
}

impl RequestEncoder {
    pub fn new(format: BodyFormat, gzip: bool, budget: usize, batch: usize) -> RequestEncoder {
        RequestEncoder {
            format,
            gzip,
            budget,
            proto: OtlpProtoEncoder::new(),
            json: OtlpJsonEncoder::new(),
            gzip_writer: None,
            encoded: Vec::with_capacity((batch * 512).min(budget)),
            compressed: Vec::with_capacity((batch * 128).min(budget)),
            encoded_total: 0,
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
        // Start from the spans the estimate says fit, not from them all: a
        // batch of large spans (512 with 100 KB prompts is 51 MB) encoded
        // whole to learn it is too big, once per part, cost the square of
        // its size (about 1.4 GB encoded for it under the default 1 MB).
        let framing = self.encoded.len();
        let mut n = 0;
        let mut guess = framing;
        for s in records {
            guess = guess.saturating_add(estimated_len(s, self.format));
            if n > 0 && guess > self.budget {
                break;
            }
            n += 1;
        }
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
                .get_or_insert_with(GzipWriter::new)
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
        self.encoded_total += self.encoded.len() as u64;
    }

    /// The last encoded body, as it is sent (gzipped when configured).
    pub fn body(&self) -> &[u8] {
        if self.gzip {
            &self.compressed
        } else {
            &self.encoded
        }
    }

    #[cfg(test)]
    fn encoded_total(&self) -> u64 {
        self.encoded_total
    }

    /// The gzip state, lent to whoever must gzip a split request again.
    pub fn gzip_writer(&mut self) -> &mut GzipWriter {
        self.gzip_writer.get_or_insert_with(GzipWriter::new)
    }
}

/// About how many bytes `s` takes in a request: what it stored (the arena
/// it used and its bytes in the chunks: text, and the entries past the
/// slot's tables) and a little for each field around it. Only a first
/// guess at how many spans fit: an encoding decides.
fn estimated_len(s: &SpanView, format: BodyFormat) -> usize {
    let r = s.record;
    // A span without chunks has nothing past its arena, and its
    // `overflow_used` sits on a line that nothing else the exporter does
    // for such a span reads: one transfer from the recording core a span.
    let overflow = if r.rest().chunk_count > 0 {
        r.overflow_used as usize
    } else {
        0
    };
    let stored = r.arena_used as usize + overflow;
    let entries = r.attribute_count as usize + r.event_count as usize + r.link_count as usize;
    let fields = 96 + 12 * entries;
    match format {
        BodyFormat::Protobuf => stored + fields,
        // Hex ids, quoted names and keys. Text is mostly written as it is;
        // base64 bytes and escapes make a guess short, which costs one
        // more encoding (the shrink in `encode_prefix`).
        BodyFormat::Json => stored + 4 * fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::payload_pool::PayloadPool;
    use crate::span::limits::SpanLimits;
    use crate::span::record::{SpanRecord, ValueInput};

    #[test]
    fn a_batch_of_large_spans_is_split_without_encoding_it_over_and_over() {
        // 400 spans with a 20 KB prompt (8.4 MB) under a 1 MB budget: nine
        // parts. Encoding what is left before each part, as before,
        // encoded 48.2 MB to send 8.4.
        let pool = PayloadPool::with_mib(32).expect("pool");
        let limits = SpanLimits::default();
        let prompt = "the model answered with a summary. ".repeat(600);
        let records: Vec<Box<SpanRecord>> = (0..400u64)
            .map(|i| {
                // SAFETY: all-zero bytes are an empty record.
                let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
                r.trace_id = [1; 16];
                r.span_id = (i + 1).to_be_bytes();
                r.name = r.store_text(b"llm.chat", 256, &pool).0;
                for (k, v) in [
                    (&b"gen_ai.prompt"[..], ValueInput::Str(prompt.as_bytes())),
                    (b"gen_ai.usage.input_tokens", ValueInput::Int(i as i64)),
                ] {
                    r.set_attribute(k, &v, &limits, &pool).expect("set");
                }
                r
            })
            .collect();
        let views: Vec<SpanView> = records.iter().map(|r| SpanView::new(r, &pool)).collect();
        let resource = ResourceInfo::new("split", &[]);
        for format in [BodyFormat::Protobuf, BodyFormat::Json] {
            let budget = 1_000_000;
            let mut enc = RequestEncoder::new(format, false, budget, 512);
            let (mut start, mut sent, mut parts) = (0, 0u64, 0);
            while start < views.len() {
                let n = enc.encode_prefix(&resource, &views[start..]);
                assert!(n > 0, "{format:?}: a 20 KB span fits 1 MB");
                assert!(enc.body().len() <= budget);
                sent += enc.body().len() as u64;
                start += n;
                parts += 1;
            }
            assert_eq!(start, views.len(), "{format:?}: every span, once");
            // Parts close to full, and each encoded about once.
            assert!(
                parts as u64 <= sent / (budget as u64 * 3 / 4) + 1,
                "{format:?}: {parts} parts for {sent} bytes"
            );
            assert!(
                enc.encoded_total() <= sent * 2,
                "{format:?}: {} bytes encoded to send {sent}",
                enc.encoded_total()
            );
        }
    }

    #[test]
    fn the_deflate_state_is_made_only_for_gzipped_requests() {
        let resource = ResourceInfo::new("gzip", &[]);
        let mut plain = RequestEncoder::new(BodyFormat::Protobuf, false, 1 << 20, 512);
        plain.encode_prefix(&resource, &[]);
        assert!(plain.gzip_writer.is_none(), "no deflate state without gzip");
        let mut gzipped = RequestEncoder::new(BodyFormat::Protobuf, true, 1 << 20, 512);
        assert!(
            gzipped.gzip_writer.is_none(),
            "none before the first request"
        );
        gzipped.encode_prefix(&resource, &[]);
        assert!(gzipped.gzip_writer.is_some());
        let mut inflated = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(gzipped.body()),
            &mut inflated,
        )
        .expect("a gzip member");
        assert_eq!(inflated, plain.body(), "the same request, gzipped");
    }
}
