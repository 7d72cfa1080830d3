//! Counts the spans an encoded ExportTraceServiceRequest holds, for a
//! body read back from the spool directory: its file's header says how
//! many, but the header is a claim (a file of an older build, a bug, a
//! disk error that kept the length, another local user), and the counters
//! and the command line must give the spans that were really there.
//!
//! Protobuf is walked as a stream (ResourceSpans / ScopeSpans / Span, as
//! `split::count_spans` walks it), and JSON read as one (`json`), so a
//! gzipped body is inflated through a small buffer and never held whole:
//! a gzip bomb in the spool directory costs time up to
//! `split::MAX_DECODED_BYTES` inflated, not memory.

use std::io::{self, BufRead, BufReader, Read};

use super::split::MAX_DECODED_BYTES;
use super::transport::BodyFormat;
use crate::span::proto_reader::split_key;

mod json;

/// The spans of a request body as sent or spooled; Err says why it is no
/// OTLP request (then no server would take it either).
pub fn count_body_spans(body: &[u8], format: BodyFormat, gzipped: bool) -> Result<u64, String> {
    count_stream_spans(body, format, gzipped)
}

/// `count_body_spans` of a body read from `body` (a spool file's, say,
/// never read whole into memory).
pub fn count_stream_spans(
    body: impl BufRead,
    format: BodyFormat,
    gzipped: bool,
) -> Result<u64, String> {
    match format {
        BodyFormat::Protobuf => count_proto_spans(body, gzipped),
        BodyFormat::Json => count_json_spans(body, gzipped),
    }
}

/// The spans of an OTLP/JSON request body read from `body`.
fn count_json_spans(body: impl BufRead, gzipped: bool) -> Result<u64, String> {
    let not_json = || "not an OTLP/JSON ExportTraceServiceRequest".to_string();
    if !gzipped {
        let mut text = json::Text::new(body);
        let counted = json::count(&mut text);
        return counted.ok_or_else(|| match text.failure.take() {
            Some(why) => format!("{}: {why}", not_json()),
            None => not_json(),
        });
    }
    let inflated = Inflated(flate2::bufread::MultiGzDecoder::new(body)).take(MAX_DECODED_BYTES + 1);
    let mut text = json::Text::new(inflated);
    // The gzip stream is inflated to its end, past the request's object:
    // one cut in its trailer (or followed by bytes that are no gzip) is
    // refused by every server, as the protobuf walk, which reads it all,
    // refuses it.
    let counted = json::count(&mut text).filter(|_| text.read_to_end());
    if text.read > MAX_DECODED_BYTES {
        return Err(too_large());
    }
    counted.ok_or_else(|| match text.failure.take() {
        Some(e) if e == "not UTF-8" => format!("{}: {e}", not_json()),
        Some(e) => format!("gzip: {e}"),
        None => not_json(),
    })
}

/// The spans of a protobuf request body read from `body` (a spool file's,
/// say, never read whole into memory); Err says why it is no request.
pub fn count_proto_spans(body: impl BufRead, gzipped: bool) -> Result<u64, String> {
    if !gzipped {
        let mut stream = Stream::new(body);
        let counted = count_proto(&mut stream);
        return counted.map_err(|why| stream.failure.take().unwrap_or(why));
    }
    let inflated = Inflated(flate2::bufread::MultiGzDecoder::new(body)).take(MAX_DECODED_BYTES + 1);
    let mut stream = Stream::new(BufReader::new(inflated));
    let counted = count_proto(&mut stream);
    if stream.pos > MAX_DECODED_BYTES {
        return Err(too_large());
    }
    // A gzip error is the stream's, not the protobuf's.
    counted.map_err(|why| match stream.failure.take() {
        Some(e) => format!("gzip: {e}"),
        None => why,
    })
}

/// A gzip decoder whose early end is an error of its own: the decoder
/// says a stream cut short (in a member's header, its deflate data or its
/// trailer) as `UnexpectedEof`, which the readers above take for the end
/// of the body (a protobuf or JSON request cut short), and a truncated
/// gzip spool file was said to be "not an OTLP request".
struct Inflated<R>(R);

impl<R: Read> Read for Inflated<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the stream ends early: the file was cut short",
                )
            } else {
                e
            }
        })
    }
}

fn too_large() -> String {
    format!("it inflates to more than {} MiB", MAX_DECODED_BYTES >> 20)
}

/// A reader that knows how far it has read.
struct Stream<R> {
    r: R,
    pos: u64,
    /// The reader's own error (gzip, I/O), kept to say it.
    failure: Option<String>,
}

impl<R: BufRead> Stream<R> {
    fn new(r: R) -> Stream<R> {
        Stream {
            r,
            pos: 0,
            failure: None,
        }
    }

    fn at_end(&mut self) -> Option<bool> {
        match self.r.fill_buf() {
            Ok(buf) => Some(buf.is_empty()),
            Err(e) => self.fail(e),
        }
    }

    fn byte(&mut self) -> Option<u8> {
        let mut b = [0u8];
        match self.r.read_exact(&mut b) {
            Ok(()) => {
                self.pos += 1;
                Some(b[0])
            }
            Err(e) => self.fail(e),
        }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn skip(&mut self, n: u64) -> Option<()> {
        match io::copy(&mut (&mut self.r).take(n), &mut io::sink()) {
            Ok(copied) => {
                self.pos += copied;
                (copied == n).then_some(())
            }
            Err(e) => self.fail(e),
        }
    }

    fn fail<T>(&mut self, e: io::Error) -> Option<T> {
        if e.kind() != io::ErrorKind::UnexpectedEof {
            self.failure = Some(e.to_string());
        }
        None
    }
}

fn count_proto<R: BufRead>(stream: &mut Stream<R>) -> Result<u64, String> {
    let mut spans = 0;
    walk(stream, None, 0, &mut spans)
        .map(|()| spans)
        .ok_or_else(|| "not an OTLP/protobuf ExportTraceServiceRequest".to_string())
}

/// Walks the fields of one message up to `end` (the stream's end at the
/// top), counting the spans: ExportTraceServiceRequest { resource_spans = 1
/// } (depth 0), ResourceSpans { scope_spans = 2 } (1), ScopeSpans { spans =
/// 2 } (2). Every other field is skipped unread, as a protobuf parser
/// skips a field it does not know: a group too (`skip_group`).
fn walk<R: BufRead>(s: &mut Stream<R>, end: Option<u64>, depth: u8, spans: &mut u64) -> Option<()> {
    loop {
        match end {
            Some(end) if s.pos == end => return Some(()),
            Some(_) => {}
            None if s.at_end()? => return Some(()),
            None => {}
        }
        let (number, wire_type) = split_key(s.varint()?)?;
        match wire_type {
            0 => {
                s.varint()?;
            }
            1 => s.skip(8)?,
            5 => s.skip(4)?,
            2 => {
                let len = s.varint()?;
                let field_end = s.pos.checked_add(len)?;
                match (depth, number) {
                    (2, 2) => {
                        *spans += 1;
                        s.skip(len)?
                    }
                    (0, 1) | (1, 2) => walk(s, Some(field_end), depth + 1, spans)?,
                    _ => s.skip(len)?,
                }
            }
            3 => skip_group(s, number)?,
            _ => return None,
        }
        if end.is_some_and(|end| s.pos > end) {
            return None;
        }
    }
}

/// How deep groups may nest: as deep as prost's and protobuf-java's
/// recursion limit (a hostile body nests them without end).
const MAX_GROUP_DEPTH: usize = 100;

/// Skips the rest of a group (wire type 3, proto2's) whose start, field
/// `number`, was just read: up to its end (wire type 4, the same number),
/// over the fields and groups within. OTLP has none, but a parser skips an
/// unknown one like any unknown field, and a server takes the request.
fn skip_group<R: BufRead>(s: &mut Stream<R>, number: u64) -> Option<()> {
    // The numbers of the groups open, innermost last: a loop, not
    // recursion, and bounded.
    let mut open = vec![number];
    while let Some(&innermost) = open.last() {
        let (number, wire_type) = split_key(s.varint()?)?;
        match wire_type {
            0 => {
                s.varint()?;
            }
            1 => s.skip(8)?,
            2 => {
                let len = s.varint()?;
                s.skip(len)?
            }
            3 if open.len() < MAX_GROUP_DEPTH => open.push(number),
            4 if number == innermost => {
                open.pop();
            }
            5 => s.skip(4)?,
            _ => return None,
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::gzip::GzipWriter;
    use crate::export::split::count_spans;
    use crate::span::proto_reader::write_len_field;

    /// A protobuf request of `per_scope` spans in each of its scopes.
    fn proto(per_scope: &[usize]) -> Vec<u8> {
        let mut resource = Vec::new();
        write_len_field(&mut resource, 1, b"\x0a\x00"); // a resource
        for &n in per_scope {
            let mut scope = Vec::new();
            write_len_field(&mut scope, 1, b"\x0a\x01s");
            for i in 0..n {
                write_len_field(
                    &mut scope,
                    2,
                    &[0x08, i as u8, 0x11, 0, 0, 0, 0, 0, 0, 0, 0],
                );
            }
            write_len_field(&mut resource, 2, &scope);
        }
        let mut out = Vec::new();
        write_len_field(&mut out, 1, &resource);
        out
    }

    fn gzip(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzipWriter::new().compress(body, &mut out);
        out
    }

    #[test]
    fn spans_are_counted_as_the_splitter_counts_them() {
        for scopes in [&[][..], &[1], &[3, 0, 2], &[200]] {
            let body = proto(scopes);
            let want = count_spans(&body, BodyFormat::Protobuf).expect("well formed");
            assert_eq!(want, scopes.iter().sum::<usize>() as u64);
            assert_eq!(
                count_body_spans(&body, BodyFormat::Protobuf, false),
                Ok(want)
            );
            assert_eq!(
                count_body_spans(&gzip(&body), BodyFormat::Protobuf, true),
                Ok(want)
            );
        }
        let json = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{},{}]},{"spans":[{}]}]}]}"#;
        assert_eq!(count_body_spans(json, BodyFormat::Json, false), Ok(3));
        assert_eq!(count_body_spans(&gzip(json), BodyFormat::Json, true), Ok(3));
    }

    #[test]
    fn what_is_no_request_says_so() {
        let body = proto(&[2]);
        let torn = &body[..body.len() - 3];
        for (body, format, gzipped) in [
            (torn.to_vec(), BodyFormat::Protobuf, false),
            (gzip(torn), BodyFormat::Protobuf, true),
            (body.clone(), BodyFormat::Protobuf, true),
            (b"{\"resourceSpans\":[".to_vec(), BodyFormat::Json, false),
            (body.clone(), BodyFormat::Json, true),
            (vec![0xff; 10], BodyFormat::Protobuf, false),
            // Zeros: "field 0 = 0" over and over, no field of protobuf's,
            // read as an empty request.
            (vec![0; 10], BodyFormat::Protobuf, false),
            (gzip(&[0; 10]), BodyFormat::Protobuf, true),
            // Field 0 in a span's place, and inside a group.
            (
                [&body[..], &[0x0a, 0x04, 0x12, 0x02, 0x02, 0x00][..]].concat(),
                BodyFormat::Protobuf,
                false,
            ),
            (vec![0x0b, 0x00, 0x00, 0x0c], BodyFormat::Protobuf, false),
        ] {
            let counted = count_body_spans(&body, format, gzipped);
            assert!(counted.is_err(), "{format:?} {gzipped}: {counted:?}");
        }
    }

    /// Fields of wire types 3 and 4 (a group, from proto2) where OTLP has
    /// none: unknown fields, which a protobuf parser skips (a Collector
    /// takes the request). The body was set aside as "not an OTLP
    /// request", never sent. A group that does not end, or ends with
    /// another number, is no protobuf.
    #[test]
    fn unknown_groups_are_skipped_as_protobuf_skips_them() {
        use crate::span::proto_reader::write_varint;
        // Field `n` as a group holding a varint, a fixed64, a bytes field
        // and a group nested in it.
        let group = |n: u64| {
            let mut g = Vec::new();
            write_varint(&mut g, (n << 3) | 3);
            g.extend_from_slice(&[0x08, 0x96, 0x01]);
            g.extend_from_slice(&[0x11, 1, 2, 3, 4, 5, 6, 7, 8]);
            write_len_field(&mut g, 3, b"abc");
            g.extend_from_slice(&[0x23, 0x28, 0x01, 0x24]); // group 4 { 5: 1 }
            write_varint(&mut g, (n << 3) | 4);
            g
        };
        let mut scope = group(7);
        write_len_field(&mut scope, 2, b"");
        scope.extend(group(8));
        write_len_field(&mut scope, 2, b"");
        let mut resource = group(9);
        write_len_field(&mut resource, 2, &scope);
        let mut body = group(10);
        write_len_field(&mut body, 1, &resource);
        body.extend(group(11));
        assert_eq!(count_body_spans(&body, BodyFormat::Protobuf, false), Ok(2));
        assert_eq!(
            count_body_spans(&gzip(&body), BodyFormat::Protobuf, true),
            Ok(2)
        );
        let mut unended = proto(&[1]);
        unended.extend(&group(10)[..6]);
        let mut mismatched = proto(&[1]);
        mismatched.extend_from_slice(&[0x53, 0x08, 0x01, 0x5c]); // 10 ... 11
        let mut stray_end = proto(&[1]);
        stray_end.push(0x54);
        let mut deep = proto(&[1]);
        deep.extend(std::iter::repeat_n(0x53, 100_000));
        deep.extend(std::iter::repeat_n(0x54, 100_000));
        for bad in [unended, mismatched, stray_end, deep] {
            let counted = count_body_spans(&bad, BodyFormat::Protobuf, false);
            assert!(counted.is_err(), "{bad:x?}: {counted:?}");
        }
    }

    /// OTLP/JSON read as a stream counts as the splitter counts the whole
    /// text, and refuses what it refuses, read in one piece or a byte at a
    /// time (a character cut between two reads).
    #[test]
    fn json_read_as_a_stream_counts_as_the_splitter_counts_it() {
        /// Gives one byte per read.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(1);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let texts: &[&[u8]] = &[
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{},{}]},{"spans":[{}]}]}]}"#,
            b" \n{ \"resource_spans\" : [ { \"scope_spans\" : [ { \"spans\" : [ { \"name\" : \"\xc3\xa9]}\\\"[\" } , 1 , null ] } ] } ] } ",
            br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"kvlistValue":{"values":[]}}}]},"scopeSpans":[{"scope":{},"spans":[{"events":[[[]]]}]}],"schemaUrl":"x"}]}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{}]}]}],"resourceSpans":[{"scopeSpans":[{"spans":[{},{}]}]}]}"#,
            br#"{"resourceSp\u0061ns":[{"scopeSpans":[{"spans":[{}]}]}]}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"n":"\u00e9"}]}]}],"x":{"spans":[{}]}}"#,
            br#"{"resourceSpans":[]}"#,
            b"{}",
            br#"{"unknown":[1,2,{"a":"b"}],"resourceSpans":[{"scopeSpans":[]}]}"#,
            // Refused by both.
            b"",
            b"[]",
            br#"{"resourceSpans":null}"#,
            br#"{"resourceSpans":[null]}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{},]}]}]}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{}]}]}],}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{}"#,
            br#"{"resourceSpans" [] }"#,
            br#"{"a":@}"#,
            b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"n\":\"\xff\"}]}]}]}",
            b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"n\":\"\xc3\"}]}]}]}",
        ];
        for text in texts {
            let want = count_spans(text, BodyFormat::Json);
            let whole = count_body_spans(text, BodyFormat::Json, false);
            let trickled = count_stream_spans(
                BufReader::with_capacity(1, Trickle(text)),
                BodyFormat::Json,
                false,
            );
            let zipped = count_body_spans(&gzip(text), BodyFormat::Json, true);
            let shown = String::from_utf8_lossy(text);
            for got in [whole, trickled, zipped] {
                assert_eq!(got.clone().ok(), want, "{shown}: {got:?}");
            }
        }
    }

    /// A gzipped body cut short (a spool file written to a full disk, or
    /// torn) is said as that: it was set aside as "not an OTLP/protobuf
    /// request" (the inflater's early end taken for the body's), and an
    /// OTLP/JSON one cut in its trailer was counted as a request though no
    /// server inflates it. Bytes after the last member that are no gzip
    /// are said as gzip's too; members one after another are one body.
    #[test]
    fn a_gzip_stream_cut_short_is_said_as_gzip() {
        let mut json = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"n":""#.to_vec();
        json.extend(vec![b'x'; 5000]);
        json.extend_from_slice(br#""},{}]}]}]}"#);
        // Two members: two protobuf messages one after another are one,
        // merged; text after a JSON request's object is not read (by the
        // splitter either).
        for (format, plain, spans, twice_spans) in [
            (BodyFormat::Protobuf, proto(&[2]), 2, 4),
            (BodyFormat::Json, json, 2, 2),
        ] {
            let zipped = gzip(&plain);
            assert_eq!(count_body_spans(&zipped, format, true), Ok(spans));
            let twice = [&zipped[..], &zipped[..]].concat();
            assert_eq!(count_body_spans(&twice, format, true), Ok(twice_spans));
            for cut in [5, 12, zipped.len() / 2, zipped.len() - 6, zipped.len() - 1] {
                let why = count_body_spans(&zipped[..cut], format, true)
                    .expect_err("a cut gzip stream is refused");
                assert!(
                    why.starts_with("gzip: ") && why.contains("ends early"),
                    "{format:?} cut at {cut} of {}: {why}",
                    zipped.len()
                );
            }
            let mut garbage = zipped.clone();
            garbage.extend_from_slice(b"this is no gzip member at all");
            let why = count_body_spans(&garbage, format, true).expect_err("refused");
            assert!(why.starts_with("gzip: "), "{format:?}: {why}");
        }
    }

    /// A gzip bomb in the spool directory: counted through a small buffer
    /// (never held whole), refused past the bound.
    #[test]
    fn a_gzip_bomb_is_refused_without_being_held() {
        // A field of the request (one not read, so skipped) whose zeros
        // run past the bound.
        let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut prefix = Vec::new();
        crate::span::proto_reader::write_varint(&mut prefix, (5 << 3) | 2);
        crate::span::proto_reader::write_varint(&mut prefix, MAX_DECODED_BYTES + 10);
        io::Write::write_all(&mut bomb, &prefix).expect("gzip");
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..(MAX_DECODED_BYTES >> 20) + 1 {
            io::Write::write_all(&mut bomb, &zeros).expect("gzip");
        }
        let bomb = bomb.finish().expect("gzip");
        let why = count_body_spans(&bomb, BodyFormat::Protobuf, true).expect_err("refused");
        assert!(why.contains("inflates to more than"), "{why}");
    }
}
