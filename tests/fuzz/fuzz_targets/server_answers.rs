//! Whatever a server answers, every span ends up delivered or counted.
//!
//! The input is a few requests of known span counts (protobuf or JSON,
//! gzipped or not; fresh, recovered, or replayed from the spool) and a
//! sequence of raw HTTP answers (status lines with garbage, 1xx, 3 and 4
//! digit codes; Retry-After, Location, Content-Encoding, Content-Length
//! that lies; partial-success bodies in both formats, garbage, markup,
//! gzip, bodies past the 64 KB kept). Each answer goes as curl would hand
//! it over through the transport's own reading of it
//! (`http::outcome_of_answer`) into the real delivery (`Delivery`), with a
//! host whose wait records instead of sleeping, that may be busy (a replay
//! gives way between files and the next goes on where it left off) or
//! awaited (a flush). An answer may come while a batch is put at the name
//! of the spool file being sent (this user moving a batch back into the
//! spool): that batch is kept too. After each step:
//! delivered + rejected + lost + kept == the spans of the request, the
//! spool on disk holds exactly the kept spans, nothing was delivered but on
//! a 2xx, no wait past the export budget, no endless loop of sends. What
//! the answer makes a message of (a partial success's words, a refusal's
//! reason with the server's status line, body or Location in it) has
//! nothing that drives a terminal or breaks the line, and is bounded
//! whatever the server sent (a body of 64 KB is not a reason of 64 KB).
//! A final redirect refuses the URL when permanent (301, 308:
//! `Misdirected`, its spans kept) and is tried again otherwise, wherever
//! its Location leads (escapes, bytes that are no UTF-8, past what is
//! kept); an answer whose connection closed within its headers, after
//! its status line, is none whether curl called that an error or ended
//! the transfer well (curl 8 does): kept, never delivered nor refused.
#![no_main]

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use spanguard::export::delivery::{Delivery, DeliveryHost, Origin, Outcome, Request};
use spanguard::export::gzip::GzipWriter;
use spanguard::export::http::outcome_of_answer;
use spanguard::export::spool::{SpoolDir, SpooledBatch, count_spool_file, encode_header};
use spanguard::export::transport::{Accepted, BodyFormat, SendError, Transport};
use spanguard::span::printable::is_shown_as_is;
use spanguard::span::proto_reader::write_len_field;

mod input;
use input::Input;

/// The export budget (`export_timeout_ms`) the delivery gets.
const BUDGET: Duration = Duration::from_secs(30);
/// More sends than any request of at most 8 spans can need (splits, cuts,
/// retries within the budget): past it the delivery loops.
const MAX_SENDS: usize = 2_000;
/// More characters than any message an answer makes: a server's words are
/// cut to 200 characters (each shown as at most 9), and our own words and
/// hint are a few hundred more.
const MOST_MESSAGE_CHARS: usize = 4_096;

/// One answer as curl hands it to the transport, and what it should mean.
struct Answer {
    header_lines: Vec<Vec<u8>>,
    body_chunks: Vec<Vec<u8>>,
    failure: Option<u32>,
    code: u32,
    /// A final answer of 2xx came, with a status line of three digits:
    /// the only answer that may count spans delivered.
    may_deliver: bool,
    /// While it is sent, a batch is put at the name of the spool file
    /// being sent (if one is).
    plant: bool,
    /// What it must be taken for, when the answer alone says: a final
    /// redirect (permanent or not), or no answer (its headers cut).
    means: Means,
}

impl Answer {
    /// Its header lines and how its transfer ended, for a failure's message.
    fn shown(&self) -> String {
        let lines: Vec<_> = self
            .header_lines
            .iter()
            .map(|l| String::from_utf8_lossy(l))
            .collect();
        format!("{lines:?} {:?}", self.failure)
    }
}

/// What an answer must be taken for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Means {
    /// What the other checks allow.
    Any,
    /// A final 3xx with its headers whole: refused when 301 or 308.
    Redirect { permanent: bool },
    /// Cut within its final headers: no answer, tried again.
    NoAnswer,
}

/// The spans of a batch put at a spool file's name while it is sent.
const PLANTED_SPANS: u64 = 2;

/// A varint, as protobuf writes it.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Input<'_> {
    fn u64(&mut self) -> u64 {
        match self.byte() % 5 {
            0 => self.byte() as u64,
            1 => u64::MAX - self.byte() as u64,
            2 => u64::from_le_bytes(std::array::from_fn(|_| self.byte())),
            3 => 1 << (self.byte() % 64),
            _ => self.byte() as u64 % 10,
        }
    }

    fn text(&mut self) -> Vec<u8> {
        let n = (self.byte() % 32) as usize;
        self.bytes(n).to_vec()
    }

    /// A partial success or error body, maybe gzipped.
    fn body(&mut self, gzip: &mut GzipWriter) -> (Vec<u8>, bool) {
        let kind = self.byte();
        let plain = match kind % 9 {
            0 => Vec::new(),
            1 => {
                // ExportTracePartialSuccess in ExportTraceServiceResponse.
                let mut partial = Vec::new();
                partial.push(0x08);
                varint(&mut partial, self.u64());
                let message = self.text();
                write_len_field(&mut partial, 2, &message);
                let mut body = Vec::new();
                write_len_field(&mut body, 1, &partial);
                body
            }
            2 => {
                let n = self.u64();
                let quoted = self.byte() % 3;
                let n = match quoted {
                    0 => n.to_string(),
                    1 => format!("\"{n}\""),
                    _ => format!("-{n}"),
                };
                format!(
                    r#"{{"partialSuccess":{{"rejectedSpans":{n},"errorMessage":"{}"}}}}"#,
                    String::from_utf8_lossy(&self.text()).replace(['"', '\\'], "")
                )
                .into_bytes()
            }
            3 => b"<html><body>hello</body></html>".to_vec(),
            4 => {
                // Past what is kept of a body (64 KB): the transfer stops.
                let unit = self.text();
                let unit = if unit.is_empty() { b"x".to_vec() } else { unit };
                unit.repeat(70_000 / unit.len() + 1)
            }
            5 => b"{}".to_vec(),
            _ => {
                let n = self.byte() as usize;
                self.bytes(n).to_vec()
            }
        };
        match self.byte() % 4 {
            0 => {
                let mut packed = Vec::new();
                gzip.compress(&plain, &mut packed);
                (packed, true)
            }
            // Said gzip, is not.
            1 => (plain, true),
            _ => (plain, false),
        }
    }

    /// A raw answer, as curl would read it.
    fn answer(&mut self, gzip: &mut GzipWriter) -> Answer {
        const CODES: [u32; 38] = [
            200, 200, 202, 204, 206, 299, 100, 103, 199, 301, 302, 307, 400, 401, 403, 404, 405,
            407, 408, 413, 413, 415, 429, 431, 500, 502, 503, 504, 599, 600, 999, 0, 2000, 20, 308,
            303, 300, 399,
        ];
        let mut header_lines = Vec::new();
        let mut failure = None;
        // An interim answer first, with headers of its own.
        if self.byte() % 4 == 0 {
            header_lines.push(format!("HTTP/1.1 10{} Interim\r\n", self.byte() % 4).into_bytes());
            if self.byte() % 2 == 0 {
                header_lines.push(b"Retry-After: 86400\r\n".to_vec());
            }
            header_lines.push(b"\r\n".to_vec());
        }
        let pick = self.byte() as usize;
        let code = if pick < CODES.len() * 7 {
            CODES[pick % CODES.len()]
        } else {
            u16::from_le_bytes([self.byte(), self.byte()]) as u32
        };
        let status_kind = self.byte() % 8;
        let status_line = match status_kind {
            0 => format!("HTTP/1.1 {code}\r\n").into_bytes(),
            1 => format!("HTTP/2 {code} \r\n").into_bytes(),
            2 => {
                // No status line at all: garbage, or nothing.
                let mut line = self.text();
                line.retain(|&b| b != b'\n');
                line.extend_from_slice(b"\r\n");
                line
            }
            _ => format!("HTTP/1.1 {code} Reason\r\n").into_bytes(),
        };
        // What curl makes of the status line: the code's first three digits
        // (a fourth is no matter to it), or no HTTP at all.
        let digits: Vec<u8> = status_line
            .strip_prefix(b"HTTP/")
            .and_then(|rest| rest.iter().position(|&b| b == b' ').map(|s| &rest[s + 1..]))
            .map(|rest| {
                rest.iter()
                    .take_while(|b| b.is_ascii_digit())
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        let curl_code = if digits.len() >= 3 {
            std::str::from_utf8(&digits[..3])
                .unwrap()
                .parse::<u32>()
                .unwrap()
        } else {
            0
        };
        if curl_code == 0 {
            // curl: "Unsupported protocol" (HTTP/0.9 refused) or a weird
            // reply; no header reaches the callback.
            return Answer {
                header_lines,
                body_chunks: Vec::new(),
                failure: Some(if self.byte() % 2 == 0 { 1 } else { 8 }),
                code: 0,
                may_deliver: false,
                plant: false,
                means: Means::Any,
            };
        }
        let three_digits = digits.len() == 3;
        header_lines.push(status_line);
        let (body, said_gzip) = self.body(gzip);
        // A line of any bytes that is another status line: the answer is
        // that one's.
        let mut status_again = false;
        for _ in 0..self.byte() % 4 {
            let line = match self.byte() % 8 {
                0 => format!(
                    "Retry-After: {}\r\n",
                    match self.byte() % 6 {
                        0 => "0".to_string(),
                        1 => "86400".to_string(),
                        2 => "99999999999999999999999".to_string(),
                        3 => "Sun, 06 Nov 1994 08:49:37 GMT".to_string(),
                        4 => "Fri, 31 Dec 9999 23:59:59 GMT".to_string(),
                        _ => self.u64().to_string(),
                    }
                )
                .into_bytes(),
                1 => {
                    let mut line = b"Location: ".to_vec();
                    match self.byte() % 4 {
                        0 => line.extend_from_slice(b"file:///etc/passwd"),
                        1 => line.extend_from_slice(b"https://collector:4318/v1/traces"),
                        // Past the 200 characters kept.
                        2 => line.extend_from_slice(&b"https://x/\xe2\x80\xae".repeat(40)),
                        // Any bytes on the line: escapes, no UTF-8.
                        _ => line.extend(
                            self.text()
                                .into_iter()
                                .filter(|&b| b != b'\r' && b != b'\n'),
                        ),
                    }
                    line.extend_from_slice(b"\r\n");
                    line
                }
                2 => b"Content-Type: application/x-protobuf\r\n".to_vec(),
                3 => b"Content-Type: application/json\r\n".to_vec(),
                4 => format!("Content-Length: {}\r\n", self.u64()).into_bytes(),
                5 => b"Content-Encoding: identity\r\n".to_vec(),
                _ => {
                    // One line of any other bytes (curl splits at line
                    // ends; an empty one would end the headers).
                    let mut line = self.text();
                    line.retain(|&b| b != b'\r' && b != b'\n');
                    if line.is_empty() {
                        line.push(b'X');
                    }
                    status_again |= line.starts_with(b"HTTP/");
                    line.extend_from_slice(b"\r\n");
                    line
                }
            };
            header_lines.push(line);
        }
        if said_gzip {
            header_lines.push(b"Content-Encoding: gzip\r\n".to_vec());
        }
        let headers_whole = self.byte() % 8 != 0;
        if headers_whole {
            header_lines.push(b"\r\n".to_vec());
        }
        let interim = (100..200).contains(&curl_code);
        if interim && headers_whole && self.byte() % 2 == 0 {
            // A final answer never came: the connection closed after the
            // interim one (curl: "Empty reply" / "Recv failure").
            return Answer {
                header_lines,
                body_chunks: Vec::new(),
                failure: Some(52),
                code: curl_code,
                may_deliver: false,
                plant: false,
                means: Means::Any,
            };
        }
        // The body in up to three chunks.
        let mut body_chunks = Vec::new();
        if headers_whole {
            let cuts = self.byte() % 3;
            let mut rest = &body[..];
            for _ in 0..cuts {
                let at = (self.byte() as usize * 257).min(rest.len());
                let (a, b) = rest.split_at(at);
                body_chunks.push(a.to_vec());
                rest = b;
            }
            body_chunks.push(rest.to_vec());
        }
        // How the transfer ended: well, or a Content-Length that lies (18),
        // a timeout (28), a reset (56), headers cut (52: nothing usable).
        // Or well, the headers cut after the status line: curl 8 ends a
        // transfer so with no error, and reports the status it read.
        if !headers_whole {
            failure = match self.byte() % 3 {
                0 => Some(52),
                1 => Some(28),
                _ => None,
            };
        } else {
            failure = match self.byte() % 6 {
                0 => Some(18),
                1 => Some(28),
                2 => Some(56),
                _ => failure,
            };
        }
        Answer {
            header_lines,
            body_chunks,
            failure,
            code: curl_code,
            may_deliver: headers_whole
                && three_digits
                && (200..=299).contains(&curl_code)
                && !interim,
            plant: self.byte() % 4 == 0,
            // Of the status lines made here, not the garbage one (which
            // may be any line curl reads as a status).
            means: if !headers_whole {
                Means::NoAnswer
            } else if status_kind != 2
                && !status_again
                && three_digits
                && (300..=399).contains(&curl_code)
            {
                Means::Redirect {
                    permanent: matches!(curl_code, 301 | 308),
                }
            } else {
                Means::Any
            },
        }
    }
}

/// Answers from the fuzz input, in turn and again; checks that nothing is
/// accepted but a final 2xx, and that the sends end.
struct Answers {
    answers: Vec<Answer>,
    next: usize,
    sends: usize,
    spool: SpoolDir,
    /// Spans of the batches put at a spool file's name so far.
    planted: Arc<AtomicU64>,
}

impl Answers {
    /// Puts a batch of `PLANTED_SPANS` at the name of the spool file a
    /// replay holds (locked) while it sends it, if there is one, as a
    /// rename over it would (`SpoolDir::replay` must not delete it, nor
    /// lose the file it sent).
    fn plant(&self) {
        let Some(held) = self.spool.list().into_iter().find(|path| {
            std::fs::File::open(path).is_ok_and(|f| {
                // Taken here (and let go of at once): no replay holds it.
                f.try_lock().is_err()
            })
        }) else {
            return;
        };
        let mut scope = Vec::new();
        for _ in 0..PLANTED_SPANS {
            write_len_field(&mut scope, 2, &[]);
        }
        let mut resource = Vec::new();
        write_len_field(&mut resource, 2, &scope);
        let mut body = Vec::new();
        write_len_field(&mut body, 1, &resource);
        let header = encode_header(
            BodyFormat::Protobuf,
            false,
            PLANTED_SPANS as u32,
            0,
            body.len(),
        );
        // Outside the spool's names until it is renamed into them.
        let elsewhere = held.with_file_name("planted");
        std::fs::write(&elsewhere, [header.as_bytes(), &body].concat()).expect("planted");
        std::fs::rename(&elsewhere, &held).expect("renamed over");
        self.planted.fetch_add(PLANTED_SPANS, Ordering::Relaxed);
    }
}

impl Transport for Answers {
    fn send(&mut self, _: &[u8], format: BodyFormat, _: bool) -> Result<Accepted, SendError> {
        self.sends += 1;
        assert!(self.sends <= MAX_SENDS, "the delivery keeps sending");
        let answer = &self.answers[self.next % self.answers.len()];
        self.next += 1;
        if answer.plant {
            self.plant();
        }
        let lines: Vec<&[u8]> = answer.header_lines.iter().map(Vec::as_slice).collect();
        let chunks: Vec<&[u8]> = answer.body_chunks.iter().map(Vec::as_slice).collect();
        let outcome = outcome_of_answer(
            &lines,
            &chunks,
            answer.failure,
            answer.code,
            format,
            1_700_000_000,
        );
        let message = match &outcome {
            Ok(accepted) => &accepted.message,
            Err(e) => e.reason(),
        };
        assert!(is_shown_as_is(message), "{message:?}");
        assert!(
            message.chars().count() <= MOST_MESSAGE_CHARS,
            "{} characters",
            message.chars().count()
        );
        match (answer.means, &outcome) {
            (Means::Any, _)
            | (Means::Redirect { permanent: true }, Err(SendError::Misdirected { .. }))
            | (Means::Redirect { permanent: false }, Err(SendError::Transient { .. }))
            | (Means::NoAnswer, Err(SendError::Transient { .. })) => {}
            (means, outcome) => panic!("{means:?} taken for {outcome:?}: {}", answer.shown()),
        }
        if outcome.is_ok() {
            assert!(
                answer.may_deliver,
                "accepted without a final 2xx: {}",
                answer.shown()
            );
        }
        outcome
    }

    fn describe(&self) -> String {
        "fuzz:".to_string()
    }
}

/// Counts what the delivery says happened; waits by recording.
#[derive(Default)]
struct Host {
    stopping: bool,
    /// A flush or a shutdown waits for what is delivered.
    awaited: bool,
    /// Busy (something else needs the thread) after this many more looks:
    /// a replay gives way between files.
    busy_after: Cell<Option<u32>>,
    delivered: u64,
    rejected: u64,
    lost: u64,
    kept: u64,
    kept_written: u64,
    evicted: u64,
    /// What this request's retries would have waited in all.
    waited: Duration,
}

impl DeliveryHost for Host {
    fn wait(&mut self, wait: Duration) -> bool {
        assert!(wait <= BUDGET, "a wait of {wait:?}, past the budget");
        // The time waited is not real: past the budget, the request is
        // kept rather than waited for (as a half-full queue asks).
        self.waited = self.waited.saturating_add(wait);
        self.waited <= BUDGET
    }

    fn stopping(&self) -> bool {
        self.stopping
    }

    fn awaited(&self) -> bool {
        self.awaited
    }

    fn busy(&self) -> bool {
        match self.busy_after.get() {
            None => false,
            Some(0) => true,
            Some(n) => {
                self.busy_after.set(Some(n - 1));
                false
            }
        }
    }

    fn record(&mut self, outcome: Outcome<'_>) {
        match outcome {
            Outcome::Delivered { spans, .. } => self.delivered += spans,
            Outcome::Rejected { spans, .. } => self.rejected += spans,
            Outcome::Lost { spans, .. } => self.lost += spans,
            Outcome::Kept { spans, written, .. } => {
                self.kept += spans;
                if written {
                    self.kept_written += spans;
                }
            }
            Outcome::Evicted { spans, .. } => self.evicted += spans,
            _ => {}
        }
    }
}

/// A request of `spans` empty spans.
fn request_body(format: BodyFormat, spans: u64, gzipped: bool, gzip: &mut GzipWriter) -> Vec<u8> {
    let plain = match format {
        BodyFormat::Protobuf => {
            let mut scope = Vec::new();
            for _ in 0..spans {
                write_len_field(&mut scope, 2, &[]);
            }
            let mut resource = Vec::new();
            write_len_field(&mut resource, 2, &scope);
            let mut body = Vec::new();
            write_len_field(&mut body, 1, &resource);
            body
        }
        BodyFormat::Json => format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            vec!["{}"; spans as usize].join(",")
        )
        .into_bytes(),
    };
    if gzipped {
        let mut packed = Vec::new();
        gzip.compress(&plain, &mut packed);
        packed
    } else {
        plain
    }
}

/// The spans the spool's files hold, counted from their bodies.
fn spool_spans(spool: &SpoolDir) -> u64 {
    spool
        .list()
        .iter()
        .map(|path| {
            count_spool_file(path, spool.max_bytes())
                .expect("a spool file of ours reads")
                .spans as u64
        })
        .sum()
}

/// In memory where there is a tmpfs: a spool file is fsynced, which on
/// a disk made the target run at 50 inputs a second.
fn spool_dir() -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("sg-fuzz-server-answers-{}", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut gzip = GzipWriter::new();
    let answers: Vec<Answer> = (0..1 + input.byte() % 6)
        .map(|_| input.answer(&mut gzip))
        .collect();
    let dir = spool_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a spool directory");
    let spool = SpoolDir::new(&dir, 1 << 20);
    let planted = Arc::new(AtomicU64::new(0));
    let transport = Answers {
        answers,
        next: 0,
        sends: 0,
        spool: spool.clone(),
        planted: Arc::clone(&planted),
    };
    let mut delivery = Delivery::new(Box::new(transport), spool.clone(), BUDGET, 1 << 20);
    // Every span this iteration made, and where each went.
    let mut made = 0u64;
    let mut gone = 0u64;
    for _ in 0..1 + input.byte() % 4 {
        let format = if input.byte() % 2 == 0 {
            BodyFormat::Protobuf
        } else {
            BodyFormat::Json
        };
        let gzipped = input.byte() % 3 == 0;
        let spans = match input.byte() % 4 {
            0 => 1,
            n => n as u64 * 3 - 1,
        };
        let body = request_body(format, spans, gzipped, &mut gzip);
        let mut host = Host {
            stopping: input.byte() % 5 == 0,
            awaited: input.byte() % 3 == 0,
            busy_after: Cell::new(match input.byte() {
                n if n % 3 == 0 => Some(u32::from(n / 3 % 4)),
                _ => None,
            }),
            ..Host::default()
        };
        let on_disk = spool_spans(&spool);
        let planted_before = planted.load(Ordering::Relaxed);
        match input.byte() % 3 {
            0 => {
                // From the spool: written there, then replayed with what
                // was kept before it.
                spool
                    .write(&SpooledBatch {
                        format,
                        gzipped,
                        spans: spans as u32,
                        cut_counted: 0,
                        cut_at: Vec::new(),
                        body: body.clone(),
                    })
                    .expect("a spool file written");
                made += spans;
                delivery.replay_spool(&mut host);
                let settled = host.delivered + host.rejected + host.lost;
                let planted_now = planted.load(Ordering::Relaxed) - planted_before;
                assert!(
                    host.kept + settled <= on_disk + spans + planted_now,
                    "a replay counted more spans than the spool held"
                );
                assert_eq!(
                    spool_spans(&spool),
                    on_disk + spans + planted_now - settled,
                    "the spool holds what the replay did not settle"
                );
                assert_eq!(host.evicted, 0);
            }
            pick => {
                let origin = if pick == 1 {
                    Origin::Fresh
                } else {
                    Origin::Recovered
                };
                made += spans;
                delivery.deliver(
                    &Request {
                        body: &body,
                        format,
                        gzipped,
                        spans,
                        origin,
                        cut_counted: 0,
                        cut_at: &[],
                    },
                    &mut host,
                );
                assert_eq!(
                    host.delivered + host.rejected + host.lost + host.kept,
                    spans,
                    "every span of a request delivered, rejected, lost or kept"
                );
                assert_eq!(
                    host.kept, host.kept_written,
                    "a request's kept spans are written"
                );
                assert_eq!(
                    spool_spans(&spool),
                    on_disk + host.kept + planted.load(Ordering::Relaxed) - planted_before,
                    "the spool holds the kept spans"
                );
                assert_eq!(host.evicted, 0);
            }
        }
        gone += host.delivered + host.rejected + host.lost;
    }
    assert_eq!(
        made + planted.load(Ordering::Relaxed),
        gone + spool_spans(&spool),
        "spans made: settled or spooled"
    );
    // Not left behind in /dev/shm when the run ends (a failing input
    // panics before this and leaves its spool to look at).
    let _ = std::fs::remove_dir_all(&dir);
});
