//! Turns span records into request bodies no bigger than the byte budget
//! (`max_request_bytes`, or the sink's line limit): the encoders' one entry
//! point. A batch is encoded whole when it fits, else as consecutive parts,
//! each as many spans as fit, while the records are still held. A span
//! that alone is over the budget goes in a request of its own, whole up to
//! the lone-span limit (`set_lone_limit`), cut to it beyond.

use std::sync::Arc;

use super::gzip::GzipWriter;
use super::otlp_json::OtlpJsonEncoder;
use super::otlp_proto::OtlpProtoEncoder;
use super::resource::ResourceInfo;
use super::transport::BodyFormat;
use super::value_cut::cut_to_fit;
use crate::span::record::SpanView;

pub struct RequestEncoder {
    pub format: BodyFormat,
    pub gzip: bool,
    /// The most bytes one body may have before compression.
    budget: usize,
    /// The most bytes a body of one span may have before compression
    /// (never less than `budget`): a span alone over the budget is sent
    /// whole up to it, its values cut to fit it beyond (`set_lone_limit`).
    lone_limit: usize,
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
    /// Values the span budget cut in the requests kept since the last
    /// `take_cut_values`: encodings thrown away (a part that did not fit)
    /// cut values no request carries, and are not counted.
    cut_values: u64,
    /// The attribute values of spans, events and links the cut of the last
    /// body shortened strings or bytes in, by their place in it
    /// (`CutRequest::at`), when a cut to a size made it (`cut_lone_span`):
    /// what a depth rescue that empties one of them tells apart from a
    /// value of its own (`Request::cut_at`). The span budget's cuts need
    /// none: they cut string and bytes attribute values, which hold no
    /// array or map for a depth cut to empty.
    cut_at: Vec<u64>,
    /// The bytes of the last `encode_prefix`'s framing (the resource, a
    /// request's envelope) when it returned 0 and they took half the budget
    /// or more: the resource is why (`no_room_reason`).
    framing_over: Option<usize>,
    /// The last resource given that took over half the budget, and what
    /// the requests carry instead (`fit_resource`): made once a resource.
    fitted: Option<(ResourceInfo, Arc<ResourceInfo>)>,
    /// The attributes the last resource fitted left out, until
    /// `take_resource_attributes_dropped`.
    newly_dropped: u64,
}

impl RequestEncoder {
    pub fn new(format: BodyFormat, gzip: bool, budget: usize, batch: usize) -> RequestEncoder {
        RequestEncoder {
            format,
            gzip,
            budget,
            lone_limit: budget,
            proto: OtlpProtoEncoder::new(),
            json: OtlpJsonEncoder::new(),
            gzip_writer: None,
            encoded: Vec::with_capacity((batch * 512).min(budget)),
            compressed: Vec::with_capacity((batch * 128).min(budget)),
            encoded_total: 0,
            cut_values: 0,
            cut_at: Vec::new(),
            framing_over: None,
            fitted: None,
            newly_dropped: 0,
        }
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// How large a request of one span may be (`set_lone_limit`).
    pub fn lone_limit(&self) -> usize {
        self.lone_limit
    }

    /// How large a request of one span may be (at least the budget): a
    /// batch is still split at the budget, but a span that alone is over
    /// it is encoded whole in a request of its own when that request is
    /// within `bytes`, and cut to fit `bytes` only beyond. The budget is
    /// what every backend takes in a request of many spans; a backend
    /// that takes more (the Collector's OTLP/HTTP receiver: 20 MiB) gets
    /// a long prompt whole rather than cut for a stricter one, and one
    /// that does not answers 413, which cuts it then
    /// (`Delivery::lone_span_limit` says how large, from the 413s).
    pub fn set_lone_limit(&mut self, bytes: usize) {
        self.lone_limit = bytes.max(self.budget);
    }

    /// Why the span is lost when the last `encode_prefix` returned 0: the
    /// resource, when it took half the budget or more (every span of this
    /// resource would be lost the same way, and the span is not what to
    /// make smaller; `limit` names the limit and the setting that raises
    /// it), else the span alone being over the budget.
    pub fn nothing_fits_reason(&self, limit: &str) -> String {
        match self.framing_over {
            Some(framing) => format!(
                "the resource (its service.name, and the other resource attributes that fit \
                 in half the limit: {framing} bytes encoded, with a request's envelope) leaves \
                 no room for a span in {limit}; every span of this resource is lost until its \
                 service.name is made shorter or the limit raised"
            ),
            None => format!(
                "a span alone is larger than the size limit of a request of one span ({} bytes)",
                self.lone_limit
            ),
        }
    }

    /// Encodes the longest prefix of `records` that fits in the budget as
    /// one request and returns its length; the body is `self.body()`. A
    /// span that alone is over the budget is encoded alone, whole when
    /// that fits the lone-span limit, else with its largest values cut to
    /// fit it (the encoders' span budget: the limit less the request's own
    /// framing); 0 means even that did not make it fit (then nothing is
    /// encoded: the caller counts it lost).
    pub fn encode_prefix(&mut self, resource: &ResourceInfo, records: &[SpanView]) -> usize {
        // A span sent whole over the budget grew the buffers to its size
        // (up to the lone-span limit, tens of MiB): given back once it is
        // sent rather than held for the process's life.
        for buffer in [&mut self.encoded, &mut self.compressed] {
            if buffer.capacity() > self.budget.saturating_mul(2) {
                *buffer = Vec::with_capacity(self.budget);
            }
        }
        // A resource over half the budget is sent with the attributes that
        // fit in half (every request of it the same: a backend tells
        // resources apart by their attributes).
        self.cut_at.clear();
        let fitted = self.fitted_resource(resource);
        let resource = fitted.as_deref().unwrap_or(resource);
        // The framing every request of this resource carries (encoded by
        // `fitted_resource` when it answered None), and a margin for a
        // scope of its own and the span's field header. A span whose scope
        // takes more than the margin gets a smaller budget below.
        // The span budget is the lone-span limit's: a span is cut only when
        // even a request of its own would be over that; a span over the
        // budget, uncut, makes the part end before it (it then goes alone).
        if fitted.is_some() {
            self.encode_plain(resource, &[]);
        }
        let mut span_budget = self.lone_limit.saturating_sub(self.encoded.len() + 512);
        self.framing_over = None;
        self.set_span_budget(span_budget);
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
            // Only the encoding kept may count its cuts.
            let cut = self.proto.take_cut_values() + self.json.take_cut_values();
            let len = self.encoded.len();
            if len <= self.budget || (n == 1 && len <= self.lone_limit) {
                self.cut_values += cut;
                break;
            }
            if n <= 1 {
                // One span, over by what its scope (name, version, schema
                // URL: each up to MAX_SCOPE_BYTES) took beyond the margin:
                // its values are cut by that much more. Nothing left to cut
                // from: lost, and none of its values counted as cut.
                let over = len - self.lone_limit;
                if n == 1 && span_budget == 0 && self.cut_lone_span(resource, &records[0]) {
                    break;
                }
                if n == 0 || span_budget == 0 {
                    // The resource's doing when it takes half the limit
                    // or more: a span is not what to make smaller then.
                    self.framing_over = (framing * 2 >= self.budget).then_some(framing);
                    self.encoded.clear();
                    return 0;
                }
                span_budget = span_budget.saturating_sub(over);
                self.set_span_budget(span_budget);
                continue;
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

    /// A span that the span budget could not bring under the lone-span
    /// limit with every string and bytes value emptied: what is left is in
    /// its complex values (`span::any_value`), which the encoders write as
    /// they came, or its names and keys. Encoded whole, then cut as a 413
    /// cuts a request (`value_cut`), which cuts the strings and bytes
    /// values inside complex values too, the longest first, the message
    /// written anew and still valid. True, with the cut request in
    /// `self.encoded` and its cuts counted, when that fits.
    #[cold]
    fn cut_lone_span(&mut self, resource: &ResourceInfo, span: &SpanView) -> bool {
        self.set_span_budget(usize::MAX);
        self.encode_plain(resource, std::slice::from_ref(span));
        // Nothing was cut by the budget lifted.
        self.proto.take_cut_values();
        self.json.take_cut_values();
        let fits = cut_to_fit(&self.encoded, self.format, self.lone_limit, 0)
            .filter(|c| c.body.len() <= self.lone_limit);
        match fits {
            Some(cut) => {
                self.encoded = cut.body;
                self.cut_values += cut.values;
                self.cut_at = cut.at;
                true
            }
            None => {
                self.encoded.clear();
                false
            }
        }
    }

    /// What the requests carry for `resource`: None when it takes no more
    /// than half the budget with a request's envelope (sent as it is; its
    /// framing, a request with no span, is then what `self.encoded` holds,
    /// which `encode_prefix` measures rather than encode it again), else
    /// the resource cut to fit that half (`fit_resource`).
    fn fitted_resource(&mut self, resource: &ResourceInfo) -> Option<Arc<ResourceInfo>> {
        if let Some((given, fitted)) = &self.fitted
            && given == resource
        {
            return Some(Arc::clone(fitted));
        }
        if self.framing_len(resource) * 2 <= self.budget {
            return None;
        }
        let fitted = Arc::new(self.fit_resource(resource));
        self.newly_dropped += (fitted.dropped_attributes - resource.dropped_attributes) as u64;
        // Kept until another resource needs fitting: a recovered process's
        // resource (small: a dump header's) between two batches does not
        // make this one be fitted, counted and told again.
        self.fitted = Some((resource.clone(), Arc::clone(&fitted)));
        Some(fitted)
    }

    /// `resource` with `service.name` and, in their order, as many of its
    /// other attributes as fit in half the budget with a request's
    /// envelope; one that does not fit is left out and the next ones are
    /// still tried. The number left out is in `dropped_attributes`.
    ///
    /// Attributes are left out rather than their values cut: OTLP's
    /// `Resource` has `dropped_attributes_count` for attributes that were
    /// not kept, so a backend can show that some are missing; a value cut
    /// would arrive looking whole (a cut `process.executable.path` is
    /// another path), and the specification's attribute limits, which
    /// allow cutting values, do not apply to resources. A `service.name`
    /// alone over the half is kept whole: spans get the room left, and
    /// when there is none are lost, named as the resource's doing
    /// (`nothing_fits_reason`).
    fn fit_resource(&mut self, resource: &ResourceInfo) -> ResourceInfo {
        let half = self.budget / 2;
        let (names, others): (Vec<_>, Vec<_>) = resource
            .attributes
            .iter()
            .partition(|(k, _)| k == "service.name");
        // All but the name dropped: a count at its longest, so that the
        // costs measured below hold as attributes are kept.
        let mut fitted = ResourceInfo {
            attributes: names.into_iter().cloned().collect(),
            dropped_attributes: resource.dropped_attributes + others.len() as u32,
            scope_name: resource.scope_name.clone(),
            scope_version: resource.scope_version.clone(),
            scopes: resource.scopes.clone(),
        };
        let base = self.framing_len(&fitted);
        // What each attribute adds, measured alone beside the name (with
        // the JSON comma before it); a few bytes short at most when kept
        // together (a longer length prefix), checked below.
        let mut probe = fitted.clone();
        let mut used = base;
        let mut kept = Vec::new();
        for attribute in others {
            probe.attributes.push(attribute.clone());
            let cost = self.framing_len(&probe).saturating_sub(base);
            probe.attributes.pop();
            if used + cost <= half {
                used += cost;
                kept.push(attribute.clone());
            }
        }
        fitted.dropped_attributes -= kept.len() as u32;
        fitted.attributes.extend(kept);
        while fitted.attributes.len() > 1 && self.framing_len(&fitted) > half {
            fitted.attributes.pop();
            fitted.dropped_attributes += 1;
        }
        fitted
    }

    /// The bytes of a request of `resource` with no span.
    fn framing_len(&mut self, resource: &ResourceInfo) -> usize {
        self.encode_plain(resource, &[]);
        self.encoded.len()
    }

    /// Resource attributes left out of requests since the last call
    /// (counted once a resource, not once a request: every request of it
    /// leaves the same ones out).
    pub fn take_resource_attributes_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.newly_dropped)
    }

    fn set_span_budget(&mut self, bytes: usize) {
        self.proto.set_span_budget(Some(bytes));
        self.json.set_span_budget(Some(bytes));
    }

    /// Values the span budget cut in the requests encoded since the last
    /// call (counted as truncated).
    pub fn take_cut_values(&mut self) -> u64 {
        std::mem::take(&mut self.cut_values)
    }

    /// The attribute values the cuts counted for the last body were in,
    /// by place (`cut_at`): empty when the span budget alone cut it, or
    /// nothing was cut. Carried with the request (`Request::cut_at`).
    pub fn cut_at(&self) -> &[u64] {
        &self.cut_at
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

    /// A span with `value` in `gen_ai.prompt` and, when `scope` > 0, a
    /// scope name, version and schema URL of `scope` bytes each.
    fn span_with(pool: &PayloadPool, id: u64, value: &[u8], scope: usize) -> Box<SpanRecord> {
        // SAFETY: all-zero bytes are an empty record.
        let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
        r.trace_id = [1; 16];
        r.span_id = id.to_be_bytes();
        if scope > 0 {
            let text = vec![b's'; scope];
            let (n, _) = r.store_text(&text, scope, pool);
            let (v, _) = r.store_text(&text, scope, pool);
            let (u, _) = r.store_text(&text, scope, pool);
            assert_eq!(
                u.offset,
                v.offset + v.len,
                "the schema URL follows the version"
            );
            let rest = r.rest_mut();
            rest.scope_name = n;
            rest.scope_version = v;
            rest.scope_schema_url_len = u.len as u16;
        }
        r.name = r.store_text(b"llm.chat", 256, pool).0;
        let limits = SpanLimits::default();
        r.set_attribute(b"gen_ai.prompt", &ValueInput::Str(value), &limits, pool)
            .expect("set");
        r
    }

    #[test]
    fn a_span_with_a_long_scope_is_cut_to_fit_not_lost() {
        // Scope name, version and schema URL of 256 bytes each (768 past
        // the 512-byte margin the span budget left) and a 2 MB prompt: the
        // prompt was cut to the budget, the request came out over it, and
        // the span was lost with its cut counted.
        let pool = PayloadPool::with_mib(32).expect("pool");
        let prompt = vec![b'p'; 2_000_000];
        let record = span_with(&pool, 1, &prompt, 256);
        let views = [SpanView::new(&record, &pool)];
        let resource = ResourceInfo::new("scope", &[]);
        for format in [BodyFormat::Protobuf, BodyFormat::Json] {
            let budget = 1_000_000;
            let mut enc = RequestEncoder::new(format, false, budget, 512);
            assert_eq!(enc.encode_prefix(&resource, &views), 1, "{format:?}: sent");
            assert!(enc.body().len() <= budget, "{format:?}");
            assert!(
                enc.body().len() > budget - 4096,
                "{format:?}: cut no more than needed"
            );
            assert_eq!(enc.take_cut_values(), 1, "{format:?}: the prompt, once");
        }
    }

    #[test]
    fn a_span_that_cannot_fit_is_lost_without_a_cut_counted() {
        // A budget smaller than the framing: nothing fits, and a lost
        // span's values are not "truncated".
        let pool = PayloadPool::with_mib(8).expect("pool");
        let record = span_with(&pool, 1, &vec![b'p'; 100_000], 200);
        let views = [SpanView::new(&record, &pool)];
        let resource = ResourceInfo::new("tiny", &[]);
        for format in [BodyFormat::Protobuf, BodyFormat::Json] {
            let mut enc = RequestEncoder::new(format, false, 300, 512);
            assert_eq!(enc.encode_prefix(&resource, &views), 0, "{format:?}");
            assert_eq!(enc.take_cut_values(), 0, "{format:?}");
        }
    }

    #[test]
    fn only_the_cuts_of_the_requests_sent_are_counted() {
        // Two spans, each with one 180 KB value of control characters: in
        // JSON each is 1.08 MB (6 bytes a character), so each is cut once
        // to fit 1 MB. The estimate put both in one request; that encoding,
        // thrown away, cut both too, and 4 cuts were counted.
        let pool = PayloadPool::with_mib(32).expect("pool");
        let control = vec![0x01u8; 180_000];
        let records = [
            span_with(&pool, 1, &control, 0),
            span_with(&pool, 2, &control, 0),
        ];
        let views: Vec<SpanView> = records.iter().map(|r| SpanView::new(r, &pool)).collect();
        let resource = ResourceInfo::new("control", &[]);
        let mut enc = RequestEncoder::new(BodyFormat::Json, false, 1_000_000, 512);
        let (mut start, mut cut) = (0, 0);
        while start < views.len() {
            let n = enc.encode_prefix(&resource, &views[start..]);
            assert!(n > 0);
            cut += enc.take_cut_values();
            start += n;
        }
        assert_eq!(cut, 2, "each value cut once");
    }

    /// A resource named `service` with `attributes` of `len` bytes each
    /// (`big.0`, `big.1`, ...) after the usual few.
    fn resource_of(service: &str, attributes: usize, len: usize) -> ResourceInfo {
        let extra: Vec<(String, String)> = (0..attributes)
            .map(|i| (format!("big.{i}"), "v".repeat(len)))
            .collect();
        ResourceInfo::new(service, &extra)
    }

    fn decoded(enc: &RequestEncoder) -> Vec<crate::export::otlp_decode::DecodedSpan> {
        crate::export::otlp_decode::decode_body(enc.body(), enc.format, enc.gzip).expect("decodes")
    }

    #[test]
    fn a_resource_over_half_the_budget_is_sent_with_what_fits_not_lost() {
        // 300 attributes of 1 KiB (over 300 KB) under a 64 KiB limit: every
        // span of the resource was lost, reason "the resource".
        let pool = PayloadPool::with_mib(8).expect("pool");
        let record = span_with(&pool, 1, b"hello", 0);
        let views = [SpanView::new(&record, &pool), SpanView::new(&record, &pool)];
        let resource = resource_of("agent", 300, 1024);
        let given = resource.attributes.len() as u32;
        for format in [BodyFormat::Protobuf, BodyFormat::Json] {
            for gzip in [false, true] {
                let budget = 65_536;
                let mut enc = RequestEncoder::new(format, gzip, budget, 512);
                assert_eq!(enc.encode_prefix(&resource, &views), 2, "{format:?}: sent");
                let spans = decoded(&enc);
                assert_eq!(spans.len(), 2);
                let s = &spans[0];
                assert_eq!(
                    s.resource_attribute("service.name")
                        .and_then(|v| v.as_str()),
                    Some("agent")
                );
                let kept = s.resource.len() as u32;
                assert!(kept > 30, "{format:?}: as many as fit in half: {kept}");
                assert!(s.resource_dropped_attributes > 0, "{format:?}");
                assert_eq!(kept + s.resource_dropped_attributes, given, "{format:?}");
                assert_eq!(
                    enc.take_resource_attributes_dropped(),
                    s.resource_dropped_attributes as u64,
                    "{format:?}: counted"
                );
                // Kept in order: the first ones given.
                let keys: Vec<&str> = s.resource.iter().map(|(k, _)| k.as_str()).collect();
                let want: Vec<&str> = resource.attributes[..kept as usize]
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect();
                assert_eq!(keys, want, "{format:?}");
                let plain = enc.encoded.len();
                assert!(plain <= budget, "{format:?}");
                assert!(
                    plain > budget / 2 - 1100,
                    "{format:?}: no more left out than needed ({plain} bytes)"
                );
                // The next request carries the same resource, not counted again.
                assert_eq!(enc.encode_prefix(&resource, &views[..1]), 1);
                assert_eq!(decoded(&enc)[0].resource, s.resource);
                assert_eq!(enc.take_resource_attributes_dropped(), 0, "{format:?}");
            }
        }
    }

    #[test]
    fn an_attribute_that_does_not_fit_leaves_room_for_the_next() {
        let pool = PayloadPool::with_mib(8).expect("pool");
        let record = span_with(&pool, 1, b"hello", 0);
        let views = [SpanView::new(&record, &pool)];
        let mut resource = resource_of("agent", 1, 40_000);
        resource.attributes.push((
            "deployment.environment".into(),
            super::super::resource::AttrValue::Str("prod".into()),
        ));
        for format in [BodyFormat::Protobuf, BodyFormat::Json] {
            let mut enc = RequestEncoder::new(format, false, 65_536, 512);
            assert_eq!(enc.encode_prefix(&resource, &views), 1);
            let s = &decoded(&enc)[0];
            assert_eq!(s.resource_dropped_attributes, 1, "{format:?}");
            assert!(s.resource_attribute("big.0").is_none());
            assert!(
                s.resource_attribute("deployment.environment").is_some(),
                "{format:?}"
            );
            assert_eq!(s.resource.len(), resource.attributes.len() - 1);
        }
    }

    #[test]
    fn a_resource_within_half_the_budget_is_sent_whole() {
        let pool = PayloadPool::with_mib(8).expect("pool");
        let record = span_with(&pool, 1, b"hello", 0);
        let views = [SpanView::new(&record, &pool)];
        let resource = resource_of("agent", 20, 1024);
        for format in [BodyFormat::Protobuf, BodyFormat::Json] {
            let mut enc = RequestEncoder::new(format, false, 65_536, 512);
            assert_eq!(enc.encode_prefix(&resource, &views), 1);
            let s = &decoded(&enc)[0];
            assert_eq!(s.resource.len(), resource.attributes.len(), "{format:?}");
            assert_eq!(s.resource_dropped_attributes, 0);
            assert_eq!(enc.take_resource_attributes_dropped(), 0);
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

    #[test]
    fn a_span_alone_over_the_budget_goes_whole_in_a_request_of_its_own() {
        // A 1.5 MB prompt between two small spans, a 1 MB budget and a
        // 32 MiB lone-span limit: the prompt was cut to 1 MB.
        let pool = PayloadPool::with_mib(32).expect("pool");
        let prompt = vec![b'p'; 1_500_000];
        let records = [
            span_with(&pool, 1, b"hello", 0),
            span_with(&pool, 2, &prompt, 0),
            span_with(&pool, 3, b"bye", 0),
        ];
        let views: Vec<SpanView> = records.iter().map(|r| SpanView::new(r, &pool)).collect();
        let resource = ResourceInfo::new("whole", &[]);
        for format in [BodyFormat::Protobuf, BodyFormat::Json] {
            let budget = 1_000_000;
            let mut enc = RequestEncoder::new(format, false, budget, 512);
            enc.set_lone_limit(32 << 20);
            let mut parts = Vec::new();
            let mut start = 0;
            while start < views.len() {
                let n = enc.encode_prefix(&resource, &views[start..]);
                assert!(n > 0, "{format:?}");
                let spans = decoded(&enc);
                parts.push((n, enc.body().len(), spans));
                start += n;
            }
            assert_eq!(enc.take_cut_values(), 0, "{format:?}: nothing cut");
            let lengths: Vec<usize> = parts.iter().map(|p| p.0).collect();
            assert_eq!(lengths, [1, 1, 1], "{format:?}: the long span alone");
            let (_, len, spans) = &parts[1];
            assert!(*len > budget, "{format:?}");
            assert_eq!(
                spans[0]
                    .attribute("gen_ai.prompt")
                    .and_then(|v| v.as_str())
                    .map(str::len),
                Some(prompt.len()),
                "{format:?}: whole"
            );
            assert!(parts[0].1 <= budget && parts[2].1 <= budget);
            // The buffers the long span grew are given back.
            assert!(enc.encoded.capacity() <= 2 * budget, "{format:?}");
            // Over the lone-span limit: cut to it, as over the budget before.
            enc.set_lone_limit(1_200_000);
            assert_eq!(enc.encode_prefix(&resource, &views[1..2]), 1);
            assert!(enc.body().len() <= 1_200_000 && enc.body().len() > 1_200_000 - 4096);
            assert_eq!(enc.take_cut_values(), 1, "{format:?}");
        }
    }
}
