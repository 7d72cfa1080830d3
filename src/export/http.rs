//! OTLP/HTTP over one long-lived curl handle: keep-alive, so a steady stream
//! of batches reuses one connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use curl::easy::{Easy2, Handler, List, WriteError};

use super::redact::{Secrets, redact_url};
use super::transport::{Accepted, BodyFormat, SendError, Silence, Transport};
use crate::config::TlsFiles;

/// The most of a response body kept: enough for a partial success or an
/// error message; a misbehaving server must not make us hold megabytes.
const RESPONSE_BODY_MAX: usize = 64 * 1024;

/// The most of an answer without a status line kept: an HTTP/2 frame's
/// header is 9 bytes.
const HEADLESS_KEPT: usize = 16;

/// Collects what the server answers.
struct Response {
    body: Vec<u8>,
    retry_after: Option<String>,
    /// A redirect's target, for the message (redirects are not followed).
    location: Option<String>,
    /// The last status line, escaped, when its code is not exactly three
    /// digits: curl reads the first three ("2000" is 200), so the code
    /// it reports is no answer of the server's.
    bad_status_line: Option<String>,
    /// The body went past RESPONSE_BODY_MAX and the transfer was stopped
    /// there: the answer's status stands, its body is cut.
    cut: bool,
    /// What the final answer's `Content-Encoding` says its body is
    /// compressed with: a proxy may compress although no Accept-Encoding
    /// is sent (curl decodes nothing unasked).
    encoding: BodyEncoding,
    /// The codings its `Content-Encoding` lines name, all of them in one
    /// list (RFC 9110: field lines of one name combine, in order), up to
    /// `CODINGS_MAX` bytes: what `encoding` is read from.
    codings: String,
    /// The last answer's headers came whole (its blank line did), and it
    /// is a final one (not 1xx): its status is the server's verdict,
    /// whatever then becomes of its body.
    final_headers: bool,
    /// The last status line is an interim answer's (1xx).
    interim: bool,
    /// A status line came in this transfer.
    status_seen: bool,
    /// The first bytes of an answer that came with no status line (curl
    /// lets it through as an HTTP/0.9 body, `http_09_allowed`, so that
    /// they can be read, and `write` stops it there): what they look like
    /// says what answered (`no_status_line`).
    headless: Option<Vec<u8>>,
    /// Whether an answer with no status line is stopped and kept in
    /// `headless` (the transport's own handle); the seam
    /// `outcome_of_answer` hands bodies without status lines as bodies.
    stop_headless: bool,
    /// A byte of an answer came (a header line, a body): a connection
    /// closed or reset after it was answered, if badly; one closed before
    /// is as a server that never answered (a published port with nothing
    /// behind it: Docker's proxy accepts, then closes).
    answered: bool,
    /// See `HttpTransport::abort_at`.
    abort_at: Arc<AtomicU64>,
}

impl Response {
    fn new(abort_at: Arc<AtomicU64>) -> Response {
        Response {
            body: Vec::new(),
            retry_after: None,
            location: None,
            bad_status_line: None,
            cut: false,
            encoding: BodyEncoding::Identity,
            codings: String::new(),
            final_headers: false,
            interim: false,
            status_seen: false,
            headless: None,
            stop_headless: false,
            answered: false,
            abort_at,
        }
    }

    /// Forgets the last answer, before a request.
    fn clear(&mut self) {
        self.body.clear();
        self.retry_after = None;
        self.location = None;
        self.bad_status_line = None;
        self.cut = false;
        self.encoding = BodyEncoding::Identity;
        self.codings.clear();
        self.final_headers = false;
        self.interim = false;
        self.status_seen = false;
        self.headless = None;
        self.answered = false;
    }

    /// The server's status once a transfer ended (`performed`), `code`
    /// curl's reading of it; an error when no answer counts as one.
    fn status(
        &self,
        performed: Result<(), curl::Error>,
        code: impl FnOnce() -> Result<u32, curl::Error>,
    ) -> Result<u32, curl::Error> {
        match performed {
            // A status line, then the connection closed before the blank
            // line that ends the headers: curl 8 ends such a transfer well
            // and reports the status it read, where the same answer cut a
            // byte sooner is its error. No whole answer came (RFC 9112: an
            // incomplete message), so it is none, whatever its status: a
            // 400 cut so lost its spans for good as a refusal, a 200 so
            // counted them delivered from a server that died answering.
            Ok(()) if self.status_seen && !self.final_headers => {
                let mut e = curl::Error::new(curl_sys::CURLE_RECV_ERROR);
                e.set_extra(
                    "the connection closed within the answer's headers, after its status line"
                        .to_string(),
                );
                return Err(e);
            }
            Ok(()) => {}
            // Stopped by `write` past the body's limit: the status line
            // came, and is the answer.
            // (curl closes a connection whose transfer was stopped.)
            Err(e) if e.is_write_error() && self.cut => {}
            // The final answer's headers came whole, then its body fell
            // short: a Content-Length that lies, a connection closed or
            // reset mid-body, a body that stalls until the request times
            // out. The status is the answer, what came of the body is
            // read: a 200 so cut was taken for no answer, and the batch
            // the server had taken was sent again, spooled, and sent
            // again at every replay, never counted exported.
            // (curl closes a connection whose transfer failed.) A code
            // under 200 is none of the server's: a proxy's `200 Connection
            // established` ends headers too, and the server behind it may
            // never have answered.
            Err(e) if self.final_headers => {
                return match code()? {
                    code if code >= 200 => Ok(code),
                    _ => Err(e),
                };
            }
            Err(e) => return Err(e),
        }
        code()
    }

    /// The answer's body as it reads: inflated when it came gzipped or
    /// deflated (a partial success in a compressed answer was read as no
    /// answer at all, and its rejected spans were neither counted nor
    /// said), inflated to `inflate`'s cap at most; empty when it cannot be
    /// read, with what it came as and why it is not read: a coding not
    /// read, or a gzip or deflate body that does not inflate (cut short).
    fn read_body(&self) -> (std::borrow::Cow<'_, [u8]>, Option<(String, &'static str)>) {
        use std::borrow::Cow;
        if self.encoding == BodyEncoding::Unread {
            // Said as the `Content-Encoding` lines came (escaped, cut).
            let coding = crate::span::printable::printable_cut(
                self.codings.trim_start_matches(',').trim().as_bytes(),
                60,
            );
            // Its bytes are no message: read as one, they may say
            // anything (a count of rejected spans out of br's bytes).
            let why = "spanguard reads gzip and deflate and asks for none (Accept-Encoding: \
                       identity) unless OTEL_EXPORTER_OTLP_HEADERS does; a proxy in between may \
                       compress";
            return (Cow::Borrowed(&[]), Some((coding, why)));
        }
        match inflate(&self.body, self.encoding) {
            None => (Cow::Borrowed(&self.body), None),
            Some(Ok(inflated)) => (Cow::Owned(inflated), None),
            // Read raw, a gzip body cut short was "nothing rejected" in
            // silence, as br's was: its bytes are no message either.
            Some(Err(e)) => {
                let (how, why) = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    ("cut short", "it ends before its stream does")
                } else {
                    (
                        "damaged",
                        "it does not inflate as its Content-Encoding says",
                    )
                };
                let coding = format!("{}, {how}", self.encoding.name());
                (Cow::Borrowed(&[]), Some((coding, why)))
            }
        }
    }

    /// What the answer of status `code` says of a request in `format`,
    /// before secrets are masked in its words.
    fn outcome(&self, code: u32, format: BodyFormat, now_unix_s: u64) -> Result<Accepted, Hinted> {
        if let Some(line) = &self.bad_status_line {
            // Not an answer: kept, as for a server that does not speak
            // HTTP (curl's "Unsupported protocol"), never delivered.
            return Err(Hinted::bare(SendError::Transient {
                reason: format!("the server's answer is not HTTP: its status line is \"{line}\""),
                retry_after: None,
            }));
        }
        let (body, unread) = self.read_body();
        let judged = judge(
            &Answer {
                code,
                body: &body,
                retry_after: self.retry_after.as_deref(),
                location: self.location.as_deref(),
            },
            format,
            now_unix_s,
        );
        match (judged, unread) {
            // Taken (the status is the server's verdict), but a partial
            // success in it cannot be read: said, where it read as
            // "nothing rejected" in silence. A warning, as a partial
            // success rejecting none is (told, counted delivered, and
            // kept for `spanguard why`).
            (Ok(accepted), Some((coding, why))) if accepted == Accepted::default() => {
                Ok(Accepted {
                    rejected_spans: 0,
                    message: super::transport::unread_answer(&coding, why),
                })
            }
            (judged, _) => judged,
        }
    }
}

/// What `HttpTransport::send` makes of an answer, with no curl and no
/// socket in between: `header_lines` and `body_chunks` as curl hands them
/// to its callbacks (each header line, status lines included, with its
/// line end; the body as it came, after any chunked framing), `failure`
/// the curl error code the transfer ended with (None: it ended well),
/// `code` the status curl read. Its reason is unmasked (no URL, no
/// headers here). The seam the `server_answers` fuzz target drives any
/// answer through, to the delivery and its counts.
#[doc(hidden)]
pub fn outcome_of_answer(
    header_lines: &[&[u8]],
    body_chunks: &[&[u8]],
    failure: Option<u32>,
    code: u32,
    format: BodyFormat,
    now_unix_s: u64,
) -> Result<Accepted, SendError> {
    /// curl's CURLE_WRITE_ERROR: a write callback took less than it got.
    const WRITE_ERROR: u32 = 23;
    let mut response = Response::new(Arc::new(AtomicU64::new(0)));
    for line in header_lines {
        response.header(line);
    }
    let mut failure = failure.map(curl::Error::new);
    for chunk in body_chunks {
        if response.write(chunk).ok() != Some(chunk.len()) {
            failure = Some(curl::Error::new(WRITE_ERROR));
            break;
        }
    }
    let performed = failure.map_or(Ok(()), Err);
    match response.status(performed, || Ok(code)) {
        Ok(code) => response
            .outcome(code, format, now_unix_s)
            .map_err(|h| h.error),
        Err(e) => Err(SendError::Transient {
            reason: e.to_string(),
            retry_after: None,
        }),
    }
}

impl Handler for Response {
    fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        self.answered = true;
        if self.stop_headless && !self.status_seen {
            // No status line: no HTTP answer. Its first bytes are kept
            // to say what answered, and the transfer stopped at once (a
            // short count) rather than read until the server closes.
            self.headless = Some(data[..data.len().min(HEADLESS_KEPT)].to_vec());
            return Ok(0);
        }
        let room = RESPONSE_BODY_MAX.saturating_sub(self.body.len());
        self.body.extend_from_slice(&data[..data.len().min(room)]);
        if data.len() > room {
            // More than any answer of OTLP's: stop reading (a short count
            // aborts the transfer). A 200 whose body never ends was read
            // until the request timed out, gigabytes on loopback, and its
            // accepted batch sent again, and again from the spool.
            self.cut = true;
            return Ok(room);
        }
        Ok(data.len())
    }

    fn header(&mut self, data: &[u8]) -> bool {
        self.answered = true;
        if data.starts_with(b"HTTP/") {
            // A status line (one per answer: an interim 1xx, then the
            // final one, which decides). What an earlier answer's headers
            // said is not this one's: a `103 Early Hints` carrying
            // `Retry-After: 86400` before a 503 made the 503 read as
            // "wait a day", and its batch went unretried.
            self.bad_status_line = (!status_code_is_three_digits(data)).then(|| escaped_line(data));
            self.status_seen = true;
            self.retry_after = None;
            self.location = None;
            self.encoding = BodyEncoding::Identity;
            self.codings.clear();
            self.final_headers = false;
            // "HTTP/1.1 103 ...", "HTTP/2 100 ...": the code's first digit.
            self.interim = data
                .iter()
                .position(|&b| b == b' ')
                .and_then(|space| data.get(space + 1))
                == Some(&b'1');
            return true;
        }
        if self.final_headers {
            // After a final answer's headers, a line that is no status
            // line is a chunked body's trailer (curl hands those here
            // too), which RFC 9110 (6.5.1) keeps out of the headers unless
            // its field's definition lets it in, and none read here does:
            // a 503's body ending `Retry-After: 86400` was read as "wait a
            // day", a trailer `Content-Encoding` as the body's coding.
            return true;
        }
        if data == b"\r\n" || data == b"\n" {
            // The end of an answer's headers (or of a chunked body's
            // trailers, which follow a final answer's). After an interim
            // one another status line is due.
            self.final_headers = !self.interim;
            self.status_seen = !self.interim;
            return true;
        }
        if let Ok(line) = std::str::from_utf8(data)
            && let Some((name, value)) = line.split_once(':')
        {
            let name = name.trim();
            if name.eq_ignore_ascii_case("retry-after") {
                self.retry_after = Some(value.trim().chars().take(64).collect());
            } else if name.eq_ignore_ascii_case("location") {
                self.location = Some(value.trim().chars().take(200).collect());
            } else if name.eq_ignore_ascii_case("content-encoding") {
                // The last line alone was read: `gzip` then `identity`
                // read a gzipped partial success as its compressed bytes.
                // Past CODINGS_MAX (no list of real codings is), a coding
                // no body is inflated from stands in the list for the
                // rest, whatever lines come after: read as the body came.
                if self.codings.len() + value.len() >= CODINGS_MAX {
                    self.codings.clear();
                    self.codings.push_str("(past CODINGS_MAX)");
                } else {
                    self.codings.push(',');
                    self.codings.push_str(value);
                }
                self.encoding = BodyEncoding::named(&self.codings);
            }
        }
        true
    }

    /// Called by curl as the transfer moves and at least once a second
    /// while it waits: false aborts it.
    fn progress(&mut self, _: f64, _: f64, _: f64, _: f64) -> bool {
        let at = self.abort_at.load(Ordering::Relaxed);
        at == 0 || crate::span::clock::monotonic_ns() < at
    }
}

pub struct HttpTransport {
    url: String,
    /// The URL as messages show it (no password).
    shown_url: String,
    headers: Vec<(String, String)>,
    tls: TlsFiles,
    /// A hash of what the TLS files held when they were last read (as
    /// the transport was made, and again when `tls_stamps` changed:
    /// `look_at_tls_files`), for `refusal_fingerprint`; None without TLS
    /// files. Only the hash is kept: the client key's bytes are secret.
    tls_contents: Option<u64>,
    /// What `stat` said of each TLS file just before they were last read
    /// (`FileStamp`): another stamp, and they are read again.
    tls_stamps: Vec<Result<FileStamp, std::io::ErrorKind>>,
    /// `tls_contents` changed since `Transport::renewed` last said so.
    tls_renewed: bool,
    timeout: Duration,
    secrets: Secrets,
    easy: Option<Easy2<Response>>,
    /// A monotonic time (`clock::monotonic_ns`; 0 or u64::MAX: none) past
    /// which a request is abandoned: the earliest deadline someone waits
    /// on, a pending flush's or a stopping tracer's (`ExportSignal::
    /// abort_requests_at`). A request is given no more time than is left
    /// until it as it starts (curl's timeout), and one in flight when it
    /// comes nearer is abandoned at it within a second (the progress
    /// callback): a backend that never answers held a flush(1 s) up for a
    /// whole request timeout (10 s by default), and a shutdown past its
    /// own by a second. The request then fails as any other, and its
    /// batch is spooled.
    abort_at: Arc<AtomicU64>,
    /// The last request was given less than the time it would have had,
    /// for a deadline (its timing out is said so).
    capped: bool,
    /// The most the next request is given (`Transport::limit_next`).
    next_limit: Option<Duration>,
    /// How the last request went without an answer (`Transport::silence`).
    silence: Silence,
    /// The last request's refusal of the sender or the URL (401, 403,
    /// 404, ...), in parts (`last_refusal`).
    refusal: Option<Refusal>,
    /// What to change, as the last failed request's reason ends with it
    /// (`last_hint`).
    hint: Option<String>,
}

impl HttpTransport {
    pub fn new(
        url: &str,
        headers: &[(String, String)],
        tls: &TlsFiles,
        timeout: Duration,
        abort_at: Arc<AtomicU64>,
    ) -> HttpTransport {
        HttpTransport {
            url: url.to_string(),
            shown_url: redact_url(url),
            headers: headers.to_vec(),
            tls: tls.clone(),
            // Stamped before they are read: a file replaced in between
            // is read again at the next look.
            tls_stamps: tls_stamps(tls),
            tls_contents: tls_contents(tls),
            tls_renewed: false,
            timeout,
            secrets: Secrets::new(url, headers),
            easy: None,
            abort_at,
            capped: false,
            next_limit: None,
            silence: Silence::Answered,
            refusal: None,
            hint: None,
        }
    }

    /// The last request's refusal of the sender or the URL (a 4xx that
    /// `SendError::Misdirected` says), in parts, for a caller that says
    /// what to change in words of its own (`spanguard check --endpoint`
    /// names its flags, not the variables). None after any other outcome.
    pub fn last_refusal(&self) -> Option<&Refusal> {
        self.refusal.as_ref()
    }

    /// What to change that the last failed request's reason ends with,
    /// in parentheses (a 404's path, a proxy, a gRPC port), apart: None
    /// when the reason gives none. A caller with a hint of its own
    /// (`spanguard check`) asks here rather than looking for `" ("` in
    /// the text, which curl's and a server's words hold as often.
    pub fn last_hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// The status code of the last request's answer, when it had one and
    /// the handle was kept (an accepted request's: `send` drops the handle
    /// after a failure to connect). `spanguard check` names it.
    pub fn last_status(&self) -> Option<u32> {
        self.easy.as_ref()?.response_code().ok().filter(|&c| c != 0)
    }

    fn handle(&mut self) -> Result<&mut Easy2<Response>, curl::Error> {
        if self.easy.is_none() {
            let mut easy = Easy2::new(Response::new(Arc::clone(&self.abort_at)));
            // The configuration lets only http:// and https:// URLs here,
            // and redirects stay off (curl's default); curl is told so as
            // well, so that no other way in (a future configuration path,
            // a caller that skips the check) makes it read a file:// URL,
            // or speak any other of the protocols libcurl was built with.
            http_only(&easy)?;
            easy.url(&self.url)?;
            easy.post(true)?;
            easy.timeout(self.timeout)?;
            easy.connect_timeout(self.timeout.min(Duration::from_secs(5)))?;
            // Signals are the host's: curl must not install SIGALRM/SIGPIPE
            // handlers of its own in a library.
            easy.signal(false)?;
            easy.progress(true)?;
            easy.tcp_nodelay(true)?;
            // An answer without a status line reaches `write` (as an
            // HTTP/0.9 body), which keeps its first bytes and stops it: they
            // tell an HTTP/2 (gRPC) port from any other server. Not through
            // a proxy: its CONNECT answer's status line comes first, and a
            // headless answer after it would read as a body. There, and
            // with a libcurl older than 7.64 (no such option), curl refuses
            // the answer itself, unread.
            let proxied = proxy_variable(&self.url, crate::config::env_var_os).is_some();
            if !proxied && easy.http_09_allowed(true).is_ok() {
                easy.get_mut().stop_headless = true;
            }
            easy.useragent(concat!("spanguard/", env!("CARGO_PKG_VERSION")))?;
            // HTTP/1.1 alone, on https:// too, where libcurl (7.62 on)
            // offers h2 by ALPN: every OTLP/HTTP server takes HTTP/1.1 (the
            // spec requires it of them), one request at a time on one
            // connection gains nothing by HTTP/2's streams, and every way an
            // answer is read here (status lines, headers cut short, interim
            // answers, answers with no status line) is HTTP/1.1's and
            // tested so; HTTP/2's own ends (GOAWAY, RST_STREAM) were not.
            easy.http_version(curl::easy::HttpVersion::V11)?;
            if let Some(ca) = &self.tls.certificate {
                easy.cainfo(ca)?;
                uncached_ca(&easy);
            }
            if let Some(cert) = &self.tls.client_certificate {
                easy.ssl_cert(cert)?;
            }
            if let Some(key) = &self.tls.client_key {
                easy.ssl_key(key)?;
            }
            self.easy = Some(easy);
        }
        Ok(self.easy.as_mut().expect("created above"))
    }

    fn perform(
        &mut self,
        body: &[u8],
        format: BodyFormat,
        gzipped: bool,
    ) -> Result<u32, curl::Error> {
        let mut list = List::new();
        list.append(match format {
            BodyFormat::Protobuf => "Content-Type: application/x-protobuf",
            BodyFormat::Json => "Content-Type: application/json",
        })?;
        if gzipped {
            list.append("Content-Encoding: gzip")?;
        }
        // curl would otherwise wait for "100 Continue" on large bodies.
        list.append("Expect:")?;
        // With no Accept-Encoding any coding is acceptable (RFC 9110
        // 12.5.3), br and zstd too, which are not read here: a partial
        // success in them was counted as nothing rejected. Answers are
        // small; none is asked for (gzip and deflate are still read, for
        // a proxy that compresses regardless). A plain header: curl's own
        // `accept_encoding` would decode the body itself, before `inflate`.
        // A user's own (OTEL_EXPORTER_OTLP_HEADERS) is sent in its place,
        // not beside it: two such fields are one list to a server that
        // merges them ("identity, gzip") and either one to one that does
        // not. The user may know their proxy; gzip and deflate are read,
        // and a 2xx in any other coding is taken with a warning.
        if !self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept-encoding"))
        {
            list.append("Accept-Encoding: identity")?;
        }
        for (k, v) in &self.headers {
            // The configuration refuses these; a header line must never be
            // able to start another one.
            if !v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                list.append(&format!("{k}: {v}"))?;
            }
        }
        let (timeout, capped) = self.time_allowed();
        self.capped = capped;
        let easy = self.handle()?;
        easy.get_mut().clear();
        easy.timeout(timeout)?;
        easy.http_headers(list)?;
        easy.post_fields_copy(body)?;
        let performed = easy.perform();
        easy.get_ref().status(performed, || easy.response_code())
    }

    /// The time a request starting now is given: the request timeout (or
    /// the probe's limit, `limit_next`, taken once), or what is left until
    /// `abort_at` when that is less (1 ms at least: curl reads 0 as no
    /// limit, and the progress callback abandons a request past it at
    /// once); and whether `abort_at` made it less.
    fn time_allowed(&mut self) -> (Duration, bool) {
        let given = self
            .next_limit
            .take()
            .map_or(self.timeout, |limit| limit.min(self.timeout));
        let at = self.abort_at.load(Ordering::Relaxed);
        if at == 0 || at == u64::MAX {
            return (given, false);
        }
        let left = Duration::from_nanos(at.saturating_sub(crate::span::clock::monotonic_ns()));
        if left < given {
            (left.max(Duration::from_millis(1)), true)
        } else {
            (given, false)
        }
    }

    /// Why a request got no answer, in words a user can act on, with
    /// curl's own detail (a TLS verification error names the problem),
    /// and what to change when this request shows it (the reason ends
    /// with it too, in parentheses).
    fn explain(&self, e: &curl::Error) -> (String, Option<String>) {
        let headless = self
            .easy
            .as_ref()
            .and_then(|easy| easy.get_ref().headless.as_deref());
        if let Some(bytes) = headless {
            let (what, hint) = self.no_status_line(bytes);
            return (
                self.secrets.scrub(&with_hint(what, Some(hint))),
                Some(hint.to_string()),
            );
        }
        let what = if e.is_couldnt_connect() {
            "connection refused or unreachable"
        } else if e.is_couldnt_resolve_host() || e.is_couldnt_resolve_proxy() {
            "DNS lookup failed"
        } else if e.is_aborted_by_callback() || (e.is_operation_timedout() && self.capped) {
            "abandoned at the deadline of the flush or shutdown waiting for it"
        } else if e.is_operation_timedout() {
            "timed out"
        } else if e.is_peer_failed_verification() || e.is_ssl_cacert() || e.is_ssl_cacert_badfile()
        {
            "TLS certificate verification failed"
        } else if client_certificate_asked(e) {
            "TLS: the server asks for a client certificate"
        } else if e.is_ssl_connect_error() || e.is_ssl_certproblem() {
            "TLS handshake failed"
        } else if e.is_url_malformed() {
            "the endpoint URL is not usable"
        } else if e.is_unsupported_protocol() {
            // The URL's scheme was checked (http or https): at send time
            // this is the server's answer that curl cannot read (no status
            // line, an HTTP/0.9 reply, a status code that is not one).
            "the server's answer is not HTTP"
        } else {
            e.description()
        };
        let detail = match e.extra_description() {
            Some(extra) => format!("{what}: {extra}"),
            None if what != e.description() => format!("{what} ({})", e.description()),
            None => what.to_string(),
        };
        let mut hints: Vec<String> = Vec::new();
        // OpenSSL's words for a plain-HTTP answer to its hello: an https://
        // endpoint on a Collector's plain port, the commonest cause, which
        // the words themselves do not suggest.
        if e.is_ssl_connect_error()
            && e.extra_description()
                .is_some_and(|x| x.contains("wrong version number"))
        {
            hints.push(
                "the server answers plain HTTP there: use an http:// endpoint, or the server's TLS port"
                    .to_string(),
            );
        }
        // TLS 1.3 asks for a client certificate within the handshake and
        // refuses its absence after it, as the request goes: the alert
        // that says so (`client_certificate_asked`) is lost when the
        // server's close resets the connection first (the request unread),
        // and curl then says "Connection reset by peer" alone, a cause
        // that names no certificate.
        if self.tls.client_certificate.is_none() && self.cut_after_handshake(e) {
            hints.push(CLIENT_CERTIFICATE_HINT.to_string());
        }
        // A Collector's OTLP/gRPC port (4317) speaks HTTP/2 alone: to an
        // HTTP/1.1 request it answers with binary frames (read by
        // `no_status_line`; a libcurl without `http_09_allowed` says
        // "Received HTTP/0.9 when not allowed", which any server that is no
        // HTTP server gets too), nothing, or a reset. None of those words
        // names the port, the commonest mistake after the path: said on
        // port 4317, where it fits.
        let no_answer = e.is_unsupported_protocol() || e.is_got_nothing() || e.is_recv_error();
        // Over TLS a gRPC server (grpc-go 1.67 on) refuses a client that
        // does not offer h2 by ALPN with an alert of its own, wherever its
        // port is: spanguard offers HTTP/1.1 alone.
        let no_h2 = e
            .extra_description()
            .is_some_and(|x| x.contains("no application protocol"));
        if (no_answer && url_port(&self.url) == Some(4317)) || no_h2 {
            hints.push(GRPC_PORT_HINT.to_string());
        } else if e.is_unsupported_protocol()
            && e.extra_description()
                .is_some_and(|x| x.contains("HTTP/0.9"))
        {
            hints.push("no HTTP status line: not an HTTP server?".to_string());
        }
        // curl takes its proxy from the environment: the user may not know
        // one is set for this process, nor that NO_PROXY goes around it.
        let via_proxy = e.is_couldnt_resolve_proxy()
            || e.extra_description()
                .is_some_and(|x| x.contains("over proxy"));
        if via_proxy && let Some(var) = proxy_variable(&self.url, crate::config::env_var_os) {
            hints.push(format!(
                "the request went through the proxy {var} names: fix or unset it, or add the \
                 backend's host to NO_PROXY"
            ));
        }
        // Each hint in parentheses of its own, as they were said.
        let reason = hints
            .iter()
            .fold(detail, |reason, h| with_hint(reason, Some(h)));
        let hint = (!hints.is_empty()).then(|| self.secrets.scrub(&hints.join("; ")));
        (self.secrets.scrub(&reason), hint)
    }
}

/// What a likely OTLP/gRPC port is told.
const GRPC_PORT_HINT: &str = "an OTLP/gRPC port answers so, such as a Collector's 4317: spanguard \
                              sends OTLP/HTTP, which a Collector takes on port 4318";

impl HttpTransport {
    /// What to change when `e` is a TLS failure that this sender's own
    /// settings cause and a sender set up otherwise does not meet: a
    /// server certificate it does not trust (self-signed, from a CA it was
    /// not given, for another host), or a client certificate the server
    /// asks for and none was set. As a 401 is (`SendError::Misdirected`),
    /// and as OpenTelemetry's SDKs take it (no retry: the same request
    /// fails the same way): the spans are kept for the sender with the CA,
    /// the URL or the client certificate set, which has another
    /// fingerprint (`sender_fingerprint`) and so takes them; kept as a
    /// failure to try again, they were named for this sender alone and
    /// the corrected one never sent them. None for what the server mends
    /// while this sender waits (a certificate expired or not yet valid:
    /// renewed at the server, it is taken) and for any other failure.
    fn tls_refusal(&self, e: &curl::Error) -> Option<&'static str> {
        let extra = e.extra_description().unwrap_or("");
        if e.is_peer_failed_verification() {
            if extra.contains("expired") || extra.contains("not yet valid") {
                None
            } else if extra.contains("subject name") || extra.contains("host name") {
                Some(
                    "the server's certificate is for another host name: use the name it \
                     is issued for in the endpoint URL",
                )
            } else {
                Some(
                    "the server's certificate is not signed by a CA this sender trusts: give \
                     the CA certificate that signed it (a PEM file) in \
                     OTEL_EXPORTER_OTLP_CERTIFICATE or the certificate setting",
                )
            }
        } else if client_certificate_asked(e) && self.tls.client_certificate.is_none() {
            Some(
                "the server wants a client certificate (mutual TLS): set \
                 OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY \
                 (or the client certificate settings) to PEM files",
            )
        } else {
            None
        }
    }

    /// Whether the request failed as its connection closed or reset
    /// after a TLS handshake that completed (curl's app-connect time) and
    /// before a byte of answer: a server took our TLS and then would not
    /// hear the request.
    fn cut_after_handshake(&self, e: &curl::Error) -> bool {
        let Some(easy) = self.easy.as_ref() else {
            return false;
        };
        let handshake_done = easy.appconnect_time().is_ok_and(|t| !t.is_zero());
        handshake_done
            && !easy.get_ref().answered
            && (e.is_send_error() || e.is_recv_error() || e.is_got_nothing())
            && !client_certificate_asked(e)
    }
}

/// What a connection cut after the TLS handshake is told when no client
/// certificate is set.
const CLIENT_CERTIFICATE_HINT: &str = "the server closed the connection right after the TLS \
     handshake: one that requires a client certificate (mutual TLS) does so to a sender without \
     one; if it does, set OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and \
     OTEL_EXPORTER_OTLP_CLIENT_KEY (or the client certificate settings) to PEM files";

/// Whether the server ended the TLS session with the alert that says a
/// client certificate is required (TLS 1.3's certificate_required, which
/// comes after the handshake, at the first read: curl's "recv failure").
fn client_certificate_asked(e: &curl::Error) -> bool {
    e.extra_description()
        .is_some_and(|x| x.contains("alert certificate required"))
}

/// Whether `bytes` start as an HTTP/2 server's first frame: SETTINGS
/// (type 4, a length a multiple of 6) or GOAWAY (type 7), on stream 0.
/// What a gRPC server (a Collector's 4317) sends an HTTP/1.1 request.
fn looks_like_http2_frame(bytes: &[u8]) -> bool {
    let [l0, l1, l2, kind, _flags, s0, s1, s2, s3, ..] = *bytes else {
        return false;
    };
    let length = u32::from_be_bytes([0, l0, l1, l2]);
    let stream = u32::from_be_bytes([s0 & 0x7f, s1, s2, s3]);
    stream == 0 && ((kind == 4 && length.is_multiple_of(6)) || (kind == 7 && length >= 8))
}

impl HttpTransport {
    /// The answer that came without a status line, `bytes` its start: an
    /// OTLP/gRPC port named as the likely cause only where it fits (port
    /// 4317, or an HTTP/2 frame), not for any server that is no HTTP one.
    fn no_status_line(&self, bytes: &[u8]) -> (String, &'static str) {
        let url = &self.shown_url;
        let what = format!(
            "the server's answer is not HTTP: the server at {url} answered without an HTTP \
             status line"
        );
        if looks_like_http2_frame(bytes) {
            (format!("{what}, with an HTTP/2 frame"), GRPC_PORT_HINT)
        } else if url_port(&self.url) == Some(4317) {
            (what, GRPC_PORT_HINT)
        } else {
            (what, "not an HTTP server?")
        }
    }

    /// A refusal's generic hint made specific where this request shows the
    /// cause: the path of a URL that got a 404 (`/v1/trace`, `/v1/traces`
    /// twice, no path), whether any header went with a 401 or 403 (a
    /// variable that never reached the process, or a key the backend does
    /// not take). Header names are said, never their values.
    fn refusal_said_for_this_request(&self, h: Hinted) -> Hinted {
        let (SendError::Misdirected { .. }, Some(refusal)) = (&h.error, &self.refusal) else {
            return h;
        };
        let specific = match refusal.code {
            404 => path_hint(&self.url, &self.shown_url),
            401 | 403 => Some(credentials_hint(&self.headers)),
            _ => None,
        };
        match specific {
            Some(hint) => Hinted {
                error: SendError::Misdirected {
                    reason: refusal_reason(refusal.code, &refusal.answer, Some(&hint)),
                },
                hint: Some(hint),
            },
            None => h,
        }
    }
}

/// Lets a handle speak http and https alone, to its URL and to any
/// redirect's. The `curl` crate has no setter for these options, so they
/// are set through its own FFI layer; the bitmask form (CURLOPT_PROTOCOLS)
/// is the one every libcurl takes (the `_STR` form needs 7.85).
fn http_only(easy: &Easy2<Response>) -> Result<(), curl::Error> {
    let allowed = libc::c_long::from(curl_sys::CURLPROTO_HTTP | curl_sys::CURLPROTO_HTTPS);
    for option in [
        curl_sys::CURLOPT_PROTOCOLS,
        curl_sys::CURLOPT_REDIR_PROTOCOLS,
    ] {
        // SAFETY: `raw` is the live handle `easy` owns, used on this thread
        // alone; both options take a long, as passed.
        let code = unsafe { curl_sys::curl_easy_setopt(easy.raw(), option, allowed) };
        if code != curl_sys::CURLE_OK {
            return Err(curl::Error::new(code));
        }
    }
    Ok(())
}

/// The port of an http(s) URL: given, or the scheme's.
fn url_port(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host_port.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') && !host.is_empty() => port.parse().ok(),
        _ => match scheme {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        },
    }
}

/// The path of a URL (without its query), "" when it has none.
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let Some(start) = rest
        .find(['/', '?', '#'])
        .filter(|&i| rest[i..].starts_with('/'))
    else {
        return "";
    };
    let path = &rest[start..];
    &path[..path.find(['?', '#']).unwrap_or(path.len())]
}

/// What a 404's URL path says went wrong, when it says: the OTLP/HTTP
/// traces path is `/v1/traces`. `shown`: the URL as it may be said
/// (`HttpTransport::shown_url`). A doubled path names the URL used, with
/// /v1/traces added: the variable's text, all a user sees of it,
/// has it once.
fn path_hint(url: &str, shown: &str) -> Option<String> {
    let path = url_path(url).trim_end_matches('/');
    if path.ends_with("/v1/traces/v1/traces") {
        return Some(format!(
            "the URL used, {shown}, has /v1/traces twice: OTEL_EXPORTER_OTLP_ENDPOINT is a \
             base URL that /v1/traces is added to, so leave it out there, or set the whole \
             URL as OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, which is used as it is"
        ));
    }
    let hint =
        if path.ends_with("/v1/trace") || path.ends_with("/v1/span") || path.ends_with("/v1/spans")
        {
            "the OTLP/HTTP traces path is /v1/traces"
        } else if path.is_empty() {
            "the URL has no path: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is, so end \
         it with /v1/traces, or set OTEL_EXPORTER_OTLP_ENDPOINT instead, which /v1/traces \
         is added to"
        } else {
            return None;
        };
    Some(hint.to_string())
}

/// What a 401 or 403 means for the headers that went with it.
fn credentials_hint(headers: &[(String, String)]) -> String {
    if headers.is_empty() {
        "the backend wants credentials and none were sent: set the header it expects, e.g. \
         its API key, in OTEL_EXPORTER_OTLP_HEADERS (name=value, a space as %20: \
         Authorization=Bearer%20<key>) or the headers setting"
            .to_string()
    } else {
        let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        format!(
            "the backend refused the credentials sent (headers: {}): check the key and the \
             header name the backend expects, in OTEL_EXPORTER_OTLP_HEADERS or the headers setting",
            names.join(", ")
        )
    }
}

/// The proxy variable curl takes for `url`, when one is set and NO_PROXY
/// does not go around it for `url`'s host (`no_proxy_covering`): the
/// request then goes through that proxy.
pub fn proxy_variable(
    url: &str,
    get: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<&'static str> {
    match no_proxy_covering(url, &get) {
        Some(_) => None,
        None => proxy_variable_set(url, get),
    }
}

/// The proxy variable curl reads for `url`'s scheme, when one is set
/// (not empty), whatever NO_PROXY says: `http_proxy` (lower case alone, as
/// curl reads it) for http://, `https_proxy` or `HTTPS_PROXY` for
/// https://, then `all_proxy` or `ALL_PROXY`.
pub fn proxy_variable_set(
    url: &str,
    get: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<&'static str> {
    let own: &[&'static str] = if url.starts_with("https://") {
        &["https_proxy", "HTTPS_PROXY"]
    } else {
        &["http_proxy"]
    };
    own.iter()
        .chain(&["all_proxy", "ALL_PROXY"])
        .copied()
        .find(|n| get(n).is_some_and(|v| !v.is_empty()))
}

/// The NO_PROXY variable curl reads (`no_proxy`, else `NO_PROXY`; empty is
/// unset) and its value, when it covers `url`'s host: curl then connects
/// directly, whatever proxy variable is set. curl's rules (lib/proxy.c,
/// `proxy_check_noproxy`): `*` alone covers every host; otherwise a list
/// split at commas and blanks, where a name covers itself and the names
/// under it (`example.com` covers `api.example.com`, not
/// `myexample.com`; a leading or trailing dot and case ignored), and, for
/// a host written as an IP address, an address or a CIDR range covers it.
pub fn no_proxy_covering(
    url: &str,
    get: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<(&'static str, String)> {
    let (name, value) = ["no_proxy", "NO_PROXY"].into_iter().find_map(|n| {
        let v = get(n)?;
        (!v.is_empty()).then(|| (n, v.to_string_lossy().into_owned()))
    })?;
    let host = url_host(url)?;
    no_proxy_covers(&value, host).then_some((name, value))
}

/// Whether the NO_PROXY list `list` covers `host`, as curl judges it.
fn no_proxy_covers(list: &str, host: &str) -> bool {
    use std::net::{Ipv4Addr, Ipv6Addr};
    if host.is_empty() {
        return false;
    }
    if list == "*" {
        return true;
    }
    // As bits, and how many of them an address has.
    let as_bits = |text: &str| -> Option<(u128, u32)> {
        if let Ok(v4) = text.parse::<Ipv4Addr>() {
            Some((u128::from(u32::from(v4)), 32))
        } else {
            text.parse::<Ipv6Addr>()
                .ok()
                .map(|v6| (u128::from(v6), 128))
        }
    };
    let address = as_bits(host);
    let name = host.strip_suffix('.').unwrap_or(host);
    list.split([',', ' ', '\t'])
        .filter(|t| !t.is_empty())
        .any(|token| match address {
            Some((host_bits, width)) => {
                let (network, bits) = match token.split_once('/') {
                    Some((n, b)) => match b.parse::<u32>() {
                        Ok(b) => (n, b),
                        Err(_) => return false,
                    },
                    None => (token, 0),
                };
                let bits = if bits == 0 { width } else { bits };
                match as_bits(network) {
                    Some((net_bits, w)) if w == width && bits <= width => {
                        let shift = width - bits;
                        (host_bits ^ net_bits).checked_shr(shift).unwrap_or(0) == 0
                    }
                    _ => false,
                }
            }
            None => {
                let token = token.strip_suffix('.').unwrap_or(token);
                let token = token.strip_prefix('.').unwrap_or(token);
                if token.len() == name.len() {
                    token.eq_ignore_ascii_case(name)
                } else if token.len() < name.len() {
                    let at = name.len() - token.len();
                    name.as_bytes()[at - 1] == b'.'
                        && name.is_char_boundary(at)
                        && name[at..].eq_ignore_ascii_case(token)
                } else {
                    false
                }
            }
        })
}

/// The host of a URL, without brackets around an IPv6 address.
fn url_host(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(host_port.rsplit_once(':').map_or(host_port, |(h, _)| h))
}

impl Transport for HttpTransport {
    fn send(
        &mut self,
        body: &[u8],
        format: BodyFormat,
        gzipped: bool,
    ) -> Result<Accepted, SendError> {
        self.silence = Silence::Answered;
        self.refusal = None;
        self.hint = None;
        if self.easy.is_none() {
            // A new connection (the first, or after a failure: a retry):
            // the TLS files as they are now.
            self.look_at_tls_files();
        }
        let performed = self.perform(body, format, gzipped);
        // Taken by this request even when it failed before it started.
        self.next_limit = None;
        let code = match performed {
            Ok(code) => code,
            Err(e) => {
                // No server reached, or none said a word in the time
                // allowed, or the connection was closed or reset before a
                // byte of answer came (curl's 52 "empty reply", 56 "recv
                // failure", 55 "send failure": a published port with
                // nothing behind it, Docker's proxy for a container that
                // is down). A server that answered something else than
                // HTTP, or broke off its answer, did answer: that is tried
                // again as before.
                let answered = self.easy.as_ref().is_some_and(|h| h.get_ref().answered);
                self.silence = if e.is_aborted_by_callback()
                    || (e.is_operation_timedout() && self.capped)
                {
                    Silence::Deadline
                } else if e.is_operation_timedout() {
                    Silence::TimedOut
                } else if e.is_couldnt_connect()
                    || e.is_couldnt_resolve_host()
                    || e.is_couldnt_resolve_proxy()
                    || ((e.is_got_nothing() || e.is_recv_error() || e.is_send_error()) && !answered)
                {
                    Silence::NoServer
                } else {
                    Silence::Answered
                };
                // Said before the handle goes (it holds the answer's first
                // bytes when it had no status line).
                let (reason, hint) = self.explain(&e);
                self.hint = hint;
                // Drop the handle: the connection may be half-dead.
                self.easy = None;
                if let Some(fix) = self.tls_refusal(&e) {
                    // The server did answer, with its certificate or its
                    // demand for ours. Refused for the TLS files as they
                    // are now (`refusal_fingerprint` marks the spans kept
                    // so): replaced since the connection was made, they are
                    // the next one's.
                    self.look_at_tls_files();
                    self.silence = Silence::Answered;
                    self.hint = Some(fix.to_string());
                    return Err(SendError::Misdirected {
                        reason: with_hint(reason, Some(fix)),
                    });
                }
                // No answer from a server is never final: not even a bad URL
                // may cost a span (it is kept in the spool, and said so).
                return Err(SendError::Transient {
                    reason,
                    retry_after: None,
                });
            }
        };
        let response = self
            .easy
            .as_ref()
            .expect("perform succeeded on this handle")
            .get_ref();
        let now_s = crate::span::clock::now_unix_ns() / 1_000_000_000;
        let outcome = response.outcome(code, format, now_s);
        if matches!(
            outcome,
            Err(Hinted {
                error: SendError::Misdirected { .. },
                ..
            })
        ) && (400..500).contains(&code)
        {
            self.refusal = Some(Refusal {
                code,
                answer: self.secrets.scrub(&answer_text(&response.read_body().0)),
            });
        }
        if response.bad_status_line.is_some() {
            // No HTTP server, or a broken one: a new connection next time.
            self.easy = None;
        }
        outcome
            .map(|mut accepted| {
                // A server's message may echo what we sent it.
                accepted.message = self.secrets.scrub(&accepted.message);
                accepted
            })
            .map_err(|h| {
                let h = self.refusal_said_for_this_request(h);
                self.hint = h.hint.map(|hint| self.secrets.scrub(&hint));
                h.error.scrubbed(&self.secrets)
            })
    }

    fn describe(&self) -> String {
        self.shown_url.clone()
    }

    /// The URL, the headers (names and values, in any order) and the TLS
    /// files' paths: what a user changes to fix a 401, 403 or 404, and
    /// where spans go. Not the TLS files' bytes (`refusal_fingerprint`):
    /// a CA bundle renewed in place sends to the same backend, and the
    /// files kept for it are still its own.
    fn sender_fingerprint(&self) -> Option<u64> {
        let mut headers: Vec<(String, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
            .collect();
        headers.sort();
        let tls: Vec<Vec<u8>> = tls_paths(&self.tls)
            .iter()
            .map(|p| {
                p.as_ref()
                    .map_or(Vec::new(), |p| p.as_os_str().as_encoded_bytes().to_vec())
            })
            .collect();
        let parts = std::iter::once(self.url.as_bytes())
            .chain(
                headers
                    .iter()
                    .flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()]),
            )
            .chain(tls.iter().map(Vec::as_slice));
        Some(super::transport::stable_fingerprint(parts))
    }

    /// The sender fingerprint and what the TLS files held when last read
    /// (`look_at_tls_files`): a CA file replaced in place decides another
    /// answer at the same path. The same as the sender fingerprint without
    /// TLS files, so that their refused files' names are as before.
    fn refusal_fingerprint(&self) -> Option<u64> {
        let sender = self.sender_fingerprint()?;
        Some(match self.tls_contents {
            None => sender,
            Some(contents) => super::transport::stable_fingerprint([
                &sender.to_le_bytes()[..],
                &contents.to_le_bytes()[..],
            ]),
        })
    }

    fn renewed(&mut self, look: bool) -> bool {
        if look {
            self.look_at_tls_files();
        }
        std::mem::take(&mut self.tls_renewed)
    }

    fn silence(&self) -> Silence {
        self.silence
    }

    fn limit_next(&mut self, limit: Duration) {
        self.next_limit = Some(limit);
    }
}

impl HttpTransport {
    /// Looks at the TLS files (a `stat` each, following links; nothing
    /// read) and, when one is not the file it was when they were last read
    /// (written over in place, renamed over, its symlinked directory
    /// swapped), reads them again. When what they hold changed, it is this
    /// sender's for refusals from now on (`refusal_fingerprint`,
    /// `Transport::renewed`), and the next request connects anew: curl
    /// reads the client certificate and key at each connection, and the CA
    /// file too, its cache off (`uncached_ca`). A running process set up
    /// with a CA its backend does not trust kept being refused after the
    /// file was renewed, its refused spans waiting for the next process.
    fn look_at_tls_files(&mut self) -> bool {
        if self.tls_contents.is_none() {
            return false;
        }
        let stamps = tls_stamps(&self.tls);
        if stamps == self.tls_stamps {
            return false;
        }
        self.tls_stamps = stamps;
        let contents = tls_contents(&self.tls);
        if contents == self.tls_contents {
            return false;
        }
        self.tls_contents = contents;
        self.easy = None;
        self.tls_renewed = true;
        true
    }
}

/// What `stat` says of a file that tells it from one put in its place
/// (following links): its device and inode (a file renamed over it, a
/// symlinked directory swapped), its size, and its modification and change
/// times to the nanosecond (written over in place).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

/// The TLS files' paths, in the order every fingerprint takes them.
fn tls_paths(tls: &TlsFiles) -> [&Option<std::path::PathBuf>; 3] {
    [&tls.certificate, &tls.client_certificate, &tls.client_key]
}

/// Each TLS file's `FileStamp` (the error's kind for one that has none),
/// in `tls_paths`' order, those not set left out.
fn tls_stamps(tls: &TlsFiles) -> Vec<Result<FileStamp, std::io::ErrorKind>> {
    use std::os::unix::fs::MetadataExt;
    tls_paths(tls)
        .iter()
        .filter_map(|p| p.as_deref())
        .map(|path| {
            let m = std::fs::metadata(path).map_err(|e| e.kind())?;
            Ok(FileStamp {
                device: m.dev(),
                inode: m.ino(),
                size: m.size(),
                modified: (m.mtime(), m.mtime_nsec()),
                changed: (m.ctime(), m.ctime_nsec()),
            })
        })
        .collect()
}

/// curl 7.87 and later keep a CA file's certificates for a day with the
/// handle (the CA cache, CURLOPT_CA_CACHE_TIMEOUT), and a handle that
/// connects again later would not read a CA file renewed meanwhile: off, so that each connection reads it (connections
/// are kept alive: one read per connection, not per request). Older
/// libcurls have no such option (and no cache): refused, and ignored.
fn uncached_ca(easy: &Easy2<Response>) {
    /// curl.h's number for it; the curl-sys in use names none.
    const CURLOPT_CA_CACHE_TIMEOUT: curl_sys::CURLoption = curl_sys::CURLOPTTYPE_LONG + 321;
    // SAFETY: `raw` is the live handle `easy` owns, used on this thread
    // alone; the option takes a long, as passed.
    unsafe { curl_sys::curl_easy_setopt(easy.raw(), CURLOPT_CA_CACHE_TIMEOUT, 0 as libc::c_long) };
}

/// A hash of what the TLS files of `tls` hold now (None when none is
/// set), read as the transport is made and when a file is replaced
/// (`look_at_tls_files`): a CA file replaced in place since (the usual
/// fix of an untrusted certificate) is another sender's for refusals
/// (`refusal_fingerprint`). A file that cannot be read counts
/// by the error's kind (the request says it then, in curl's words naming
/// the file, as for every TLS file it cannot use): read later, it is
/// another sender's too.
fn tls_contents(tls: &TlsFiles) -> Option<u64> {
    let files = tls_paths(tls);
    if files.iter().all(|f| f.is_none()) {
        return None;
    }
    let read: Vec<Vec<u8>> = files
        .iter()
        .map(|f| match f {
            None => Vec::new(),
            Some(path) => std::fs::read(path).map_or_else(
                |e| format!("unreadable: {:?}", e.kind()).into_bytes(),
                |bytes| {
                    super::transport::stable_fingerprint([bytes.as_slice()])
                        .to_le_bytes()
                        .to_vec()
                },
            ),
        })
        .collect();
    Some(super::transport::stable_fingerprint(
        read.iter().map(Vec::as_slice),
    ))
}

/// The most bytes of `Content-Encoding` values an answer's codings are
/// read from: a few codings take a few dozen.
const CODINGS_MAX: usize = 1024;

/// The compression an answer's `Content-Encoding` names, of those a
/// body is inflated from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyEncoding {
    Identity,
    Gzip,
    /// HTTP's `deflate`: a zlib stream (RFC 9110), or a bare deflate one
    /// as some servers send it.
    Deflate,
    /// A coding not read here (br, zstd, compress, one of the others'
    /// names, or more than one coding): its body is kept as it came, and
    /// what it says is not known (`Response::read_body` names it).
    Unread,
}

impl BodyEncoding {
    /// Its name, as `Content-Encoding` says it.
    fn name(self) -> &'static str {
        match self {
            BodyEncoding::Identity => "identity",
            BodyEncoding::Gzip => "gzip",
            BodyEncoding::Deflate => "deflate",
            BodyEncoding::Unread => "a coding not read",
        }
    }

    /// The encoding a `Content-Encoding` value names, `identity` in a
    /// list of codings aside (`gzip, identity` is gzip); Identity for none
    /// but identity; Unread for any other coding, or more than one.
    fn named(value: &str) -> BodyEncoding {
        let mut codings = value
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"));
        let coding = match (codings.next(), codings.next()) {
            (None, _) => return BodyEncoding::Identity,
            (Some(coding), None) => coding,
            (Some(_), Some(_)) => return BodyEncoding::Unread,
        };
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            BodyEncoding::Gzip
        } else if coding.eq_ignore_ascii_case("deflate") {
            BodyEncoding::Deflate
        } else {
            BodyEncoding::Unread
        }
    }
}

/// A compressed answer's body, inflated up to RESPONSE_BODY_MAX as a plain
/// one is kept (a small answer may inflate to gigabytes). None when it is
/// not compressed (nor is an empty body: no answer to read); the error
/// when it does not inflate (not what its encoding says, cut short): its
/// bytes are no message (`Response::read_body`).
fn inflate(body: &[u8], encoding: BodyEncoding) -> Option<std::io::Result<Vec<u8>>> {
    use std::io::Read;
    let read = |mut decoder: Box<dyn Read + '_>| {
        let mut out = Vec::new();
        decoder
            .by_ref()
            .take(RESPONSE_BODY_MAX as u64)
            .read_to_end(&mut out)
            .map(|_| out)
    };
    if body.is_empty() {
        return None;
    }
    match encoding {
        BodyEncoding::Identity | BodyEncoding::Unread => None,
        BodyEncoding::Gzip => Some(read(Box::new(flate2::read::MultiGzDecoder::new(body)))),
        BodyEncoding::Deflate => Some(
            read(Box::new(flate2::read::ZlibDecoder::new(body))).or_else(|zlib| {
                // Either stream cut short says so, whichever it was.
                read(Box::new(flate2::read::DeflateDecoder::new(body))).map_err(|bare| {
                    match zlib.kind() == std::io::ErrorKind::UnexpectedEof {
                        true => zlib,
                        false => bare,
                    }
                })
            }),
        ),
    }
}

/// Turns an HTTP answer into an outcome, per the OTLP/HTTP spec: 2xx is
/// success (maybe partial), 429/502/503/504 are worth retrying (honouring
/// Retry-After, read at `now_unix_s`), 413 asks for smaller requests,
/// 401, 403, 404, 405, 407 and 431 refuse the sender or the URL
/// (`SendError::Misdirected`), every other 4xx and 5xx is final; a code
/// that is no final status of HTTP's (over 599) is kept, as an answer
/// that is not HTTP. A redirect (3xx, to `location`) is
/// not followed, since the headers (an API key) would go wherever it
/// points, and it is no refusal of the data either (the spec leaves codes
/// other than 4xx and 5xx to HTTP): its spans are kept until the endpoint
/// is set to where it leads; a permanent one (301, 308) refuses the URL
/// as a 404 does (`SendError::Misdirected`), a temporary one is tried
/// again as for a backend that does not answer.
pub fn classify(
    answer: &Answer,
    format: BodyFormat,
    now_unix_s: u64,
) -> Result<Accepted, SendError> {
    judge(answer, format, now_unix_s).map_err(|h| h.error)
}

/// What a server answered a request: its status, its body and the two
/// headers that change what is done with the spans (`classify`). One
/// value where the answer's parts went as four arguments in a row, two of
/// them `Option<&str>` that a call could swap unnoticed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Answer<'a> {
    pub code: u32,
    pub body: &'a [u8],
    /// Its Retry-After header, as it came.
    pub retry_after: Option<&'a str>,
    /// Its Location header (a redirect's).
    pub location: Option<&'a str>,
}

impl<'a> Answer<'a> {
    /// Status `code` with `body`, and neither header.
    pub fn of(code: u32, body: &'a [u8]) -> Answer<'a> {
        Answer {
            code,
            body,
            ..Answer::default()
        }
    }
}

/// A failure, and what to change that its reason ends with (in
/// parentheses), kept apart (`HttpTransport::last_hint`).
struct Hinted {
    error: SendError,
    hint: Option<String>,
}

impl Hinted {
    /// A failure whose reason gives no hint.
    fn bare(error: SendError) -> Hinted {
        Hinted { error, hint: None }
    }
}

/// `what`, then `hint` in parentheses when there is one: a reason made of
/// its parts.
fn with_hint(what: String, hint: Option<&str>) -> String {
    match hint {
        Some(hint) => format!("{what} ({hint})"),
        None => what,
    }
}

/// `classify`, with the hint apart.
fn judge(answer: &Answer, format: BodyFormat, now_unix_s: u64) -> Result<Accepted, Hinted> {
    let &Answer {
        code,
        body,
        retry_after,
        location,
    } = answer;
    // Each failure with its hint: the reason and the part kept apart
    // made from the same words.
    let hinted = |make: fn(String) -> SendError, what: String, hint: Option<String>| Hinted {
        error: make(with_hint(what, hint.as_deref())),
        hint,
    };
    let misdirected = |reason| SendError::Misdirected { reason };
    let transient = |reason| SendError::Transient {
        reason,
        retry_after: None,
    };
    let permanent = |reason| SendError::Permanent { reason };
    match code {
        // RFC 9110 gives HTTP's codes as 100 to 599, and a final answer
        // is never 1xx (curl waits past those, and refuses a code under
        // 100 itself): anything else (LinkedIn's 999, a proxy's 600) is no
        // answer of HTTP's, so no refusal of the data either. Kept, as for
        // a status line curl could not read: a 600 taken for a final
        // refusal lost the batch, and `spanguard replay` deleted every
        // spool file it sent there.
        _ if !(200..=599).contains(&code) => Err(Hinted::bare(transient(format!(
            "the server's answer is not HTTP: status {code}, no final status of HTTP's (200 to 599)"
        )))),
        // No OTLP answer starts with '<': a JSON one starts with '{', and a
        // protobuf one cannot (0x3c would be field 7 closing a group). It
        // is a web page (a UI's port, a site's catch-all route) or XML:
        // nothing there keeps the spans, yet they were counted delivered.
        200..=299 if starts_with_markup(body) => Err(hinted(
            misdirected,
            format!(
                "HTTP {code} with a web page, not an OTLP answer: {}",
                crate::span::printable::printable_cut(body, 100)
            ),
            Some(
                "nothing takes traces at this URL: point the endpoint at the backend's OTLP/HTTP \
                 receiver, e.g. a Collector's port 4318; OTEL_EXPORTER_OTLP_ENDPOINT is a base \
                 URL that /v1/traces is added to"
                    .to_string(),
            ),
        )),
        200..=299 => Ok(super::partial_success::parse(body, format)),
        // A redirect is never followed: curl would send the headers (an
        // API key) wherever Location points, another host or port. A
        // permanent one (301, 308: an http-to-https redirect in front of
        // a collector, an endpoint moved) says the URL is wrong for good,
        // as a 404 does: refused for where it was sent, not for what it
        // holds, its spans are kept for a sender set up with the URL it
        // leads to, which this sender never is. Taken for an outage, they
        // went to the redirect again at every retry and every replay, the
        // exporter waiting out a backoff each time, and the user was told
        // the backend was down. A temporary one (302, 303, 307:
        // maintenance, a login page) may end: kept and tried again, as
        // for a backend that does not answer.
        300..=399 => Err(hinted(
            if matches!(code, 301 | 308) {
                misdirected
            } else {
                transient
            },
            format!(
                "HTTP {code}: a redirect to {}, not followed",
                body_start(location.unwrap_or("nowhere").as_bytes())
            ),
            Some("set the endpoint to where it leads".to_string()),
        )),
        429 | 502 | 503 | 504 => {
            let retry_after =
                retry_after.and_then(|v| super::retry::parse_retry_after(v, now_unix_s));
            // A web page with a 502 or 504 is a reverse proxy's or a load
            // balancer's own ("502 Bad Gateway"): the backend behind it
            // did not answer it. "HTTP 502" alone sent the user to the
            // backend's logs, which had nothing.
            let page = page_title(body).filter(|_| matches!(code, 502 | 504));
            let what = match &page {
                Some(title) => format!("HTTP {code}: a web page titled \"{title}\""),
                None => format!("HTTP {code}"),
            };
            // The server's wait is why nothing is sent for a while (spans
            // are kept meanwhile): said, or the quiet looks like a hang.
            let what = match retry_after {
                Some(wait) => format!(
                    "{what} (the server asks to wait {} s: Retry-After)",
                    wait.as_secs()
                ),
                None => what,
            };
            let hint = page.map(|_| PROXY_PAGE_HINT.to_string());
            Err(Hinted {
                error: SendError::Transient {
                    reason: with_hint(what, hint.as_deref()),
                    retry_after,
                },
                hint,
            })
        }
        413 => Err(Hinted::bare(SendError::TooLarge {
            reason: format!("HTTP 413: {}", answer_text(body)),
        })),
        // 431: the request's headers are too large for the server (a
        // Go server's default is 1 MB; OTEL_EXPORTER_OTLP_HEADERS takes
        // any length). The sender's doing, not the data's: as a final
        // refusal, `spanguard replay` deleted every spool file it sent.
        401 | 403 | 404 | 405 | 407 | 431 => Err(hinted(
            misdirected,
            format!("HTTP {code}: {}", answer_text(body)),
            refusal_hint(code).map(str::to_string),
        )),
        // The server does not read this Content-Type: a backend that
        // takes one OTLP encoding only, or no OTLP receiver at all.
        415 => Err(hinted(
            permanent,
            format!("HTTP 415: {}", answer_text(body)),
            Some(format!(
                "the server does not take {}: if it takes OTLP/HTTP as {} only, set \
                 OTEL_EXPORTER_OTLP_PROTOCOL={} or the protocol setting; else check that the URL \
                 is its OTLP/HTTP endpoint",
                match format {
                    BodyFormat::Protobuf => "application/x-protobuf",
                    BodyFormat::Json => "application/json",
                },
                match format {
                    BodyFormat::Protobuf => "JSON",
                    BodyFormat::Json => "protobuf",
                },
                match format {
                    BodyFormat::Protobuf => "http/json",
                    BodyFormat::Json => "http/protobuf",
                },
            )),
        )),
        _ => Err(hinted(
            permanent,
            format!("HTTP {code}: {}", answer_text(body)),
            refusal_hint(code).map(str::to_string),
        )),
    }
}

/// What a proxy's own error page (a 502 or 504 with a web page) is told.
const PROXY_PAGE_HINT: &str = "a proxy or load balancer in front of the backend answered, not the \
                               backend: it is down, or not where the proxy sends requests";

/// The title of an answer that is a web page ("404 Not Found", "502 Bad
/// Gateway"), its white space runs made one space and its characters
/// escaped: a reverse proxy's error page shown as its first 200
/// characters was markup and escaped line breaks, and said less than its
/// title. None when the body is no markup or has no title.
fn page_title(body: &[u8]) -> Option<String> {
    if !starts_with_markup(body) {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let find = |from: usize, needle: &[u8]| {
        lower[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|at| from + at)
    };
    let open = find(0, b"<title")?;
    let start = open + lower[open..].iter().position(|&b| b == b'>')? + 1;
    let end = find(start, b"</title")?;
    let words: Vec<&[u8]> = body[start..end]
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty())
        .collect();
    (!words.is_empty()).then(|| crate::span::printable::printable_cut(&words.join(&b' '), 100))
}

/// Whether an answer's body is markup (HTML or XML): its first character
/// after white space is '<'.
fn starts_with_markup(body: &[u8]) -> bool {
    // A protobuf answer starts with 0x0a (field 1's key), a line feed:
    // one whose partial success is 60 bytes long (0x3c, '<') was read as
    // markup and its URL refused. A well-formed protobuf message is none.
    let text = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<')
        && crate::span::proto_reader::fields(body).is_none()
}

/// What to change for the final refusals a configuration causes: a
/// missing or wrong API key, a URL where nothing takes traces. The body
/// is the server's and seldom names the setting.
fn refusal_hint(code: u32) -> Option<&'static str> {
    match code {
        401 | 403 => Some(
            "the backend refused the credentials: set the header it expects, e.g. its API key, \
             in OTEL_EXPORTER_OTLP_HEADERS or the headers setting",
        ),
        431 => Some(
            "the server takes no request headers this large: shorten \
             OTEL_EXPORTER_OTLP_HEADERS or the headers setting",
        ),
        404 => Some(
            "nothing takes traces at this URL: OTEL_EXPORTER_OTLP_ENDPOINT is a base URL that \
             /v1/traces is added to, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is",
        ),
        _ => None,
    }
}

/// A refusal's reason, made of its parts: `HTTP 404: <the server's
/// words> (<what to change>)`. Every refusal's reason is made here, so a
/// caller that words the hint for its own setting (`spanguard check
/// --endpoint`) makes it from the same parts (`HttpTransport::
/// last_refusal`) rather than cutting another hint out of the text.
pub fn refusal_reason(code: u32, answer: &str, hint: Option<&str>) -> String {
    with_hint(format!("HTTP {code}: {answer}"), hint)
}

/// A refusal of the sender or the URL, in parts: the status and the
/// server's words (secrets masked). Its reason is `refusal_reason` of
/// them and a hint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: u32,
    pub answer: String,
}

/// Whether an HTTP status line (`HTTP/<version> <code>[ <reason>]`, as
/// curl hands it to the header callback, CRLF included) has a code of
/// exactly three digits, as RFC 9112 asks.
fn status_code_is_three_digits(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(space) = line.iter().position(|&b| b == b' ') else {
        return false;
    };
    let rest = &line[space + 1..];
    rest.len() >= 3
        && rest[..3].iter().all(u8::is_ascii_digit)
        && (rest.len() == 3 || rest[3] == b' ')
}

/// A server's line as messages show it: at most 100 characters, its line
/// end dropped, escaped as every message of spanguard's is
/// (`span::printable`), so that it cannot forge a line of ours or drive a
/// terminal.
fn escaped_line(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    crate::span::printable::printable_cut(line, 100)
}

/// The words of a server's error answer: the message of the
/// google.rpc.Status an OTLP server answers with in protobuf (shown as
/// text, its field tags and lengths put stray characters before the words,
/// "HTTP 500:   Aunknown..."), else the body's start as it is.
fn answer_text(body: &[u8]) -> String {
    use crate::span::proto_reader::{WIRE_LEN, WIRE_VARINT, fields};
    // Status: code = 1, message = 2, details = 3; anything else is no Status.
    let message = fields(body).and_then(|fields| {
        let mut message = None;
        for f in fields {
            match (f.number, f.wire_type) {
                (1, WIRE_VARINT) | (3, WIRE_LEN) => {}
                (2, WIRE_LEN) => message = Some(std::str::from_utf8(f.bytes).ok()?),
                _ => return None,
            }
        }
        message
    });
    if let Some(title) = page_title(body) {
        return format!("a web page titled \"{title}\"");
    }
    match message {
        Some(m) if !m.trim().is_empty() => body_start(m.as_bytes()),
        _ => body_start(body),
    }
}

/// The most characters of a server's words (an error body, a Location)
/// a message shows.
const SHOWN_ANSWER_CHARS: usize = 200;

/// The start of a server's words as messages show them: its first
/// `SHOWN_ANSWER_CHARS` characters escaped (`span::printable`: an escape
/// sequence there was written as a space, hiding what the server sent,
/// and a bidi control was left to turn the line around), and how many
/// bytes more it sent.
fn body_start(body: &[u8]) -> String {
    crate::span::printable::printable_cut(body, SHOWN_ANSWER_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hint a reason ends with is kept apart, made from the same
    /// words (`HttpTransport::last_hint`); parentheses that are no hint
    /// (the server's wait, its own words) give none.
    #[test]
    fn a_failures_hint_is_kept_apart_from_its_reason() {
        let p = BodyFormat::Protobuf;
        let h = judge(&Answer::of(404, b"not found"), p, 0).expect_err("404");
        let hint = h.hint.expect("a 404's hint");
        assert_eq!(h.error.reason(), format!("HTTP 404: not found ({hint})"));
        let h = judge(
            &Answer {
                retry_after: Some("3"),
                ..Answer::of(503, b"")
            },
            p,
            0,
        )
        .expect_err("503");
        assert_eq!(
            h.error.reason(),
            "HTTP 503 (the server asks to wait 3 s: Retry-After)"
        );
        assert_eq!(h.hint, None);
        let h = judge(&Answer::of(400, b"bad span (id 7)"), p, 0).expect_err("400");
        assert_eq!(
            (h.error.reason(), h.hint),
            ("HTTP 400: bad span (id 7)", None)
        );
        let h = judge(
            &Answer {
                location: Some("https://x/v1/traces"),
                ..Answer::of(302, b"")
            },
            p,
            0,
        )
        .expect_err("302");
        assert_eq!(
            h.hint.as_deref(),
            Some("set the endpoint to where it leads")
        );
    }

    /// A reverse proxy's error page (nginx's, here) was shown as its first
    /// 200 characters of markup and escaped line breaks, or with a 502 not
    /// at all ("HTTP 502"), leaving the user to guess that a proxy, not the
    /// backend, answered. Its title says it, and a 502 or 504 page says
    /// the backend behind the proxy did not answer; the 502 is still a
    /// failure for now (its spans kept) and a body that is no page is
    /// shown as before.
    #[test]
    fn a_proxys_error_page_is_said_by_its_title() {
        let p = BodyFormat::Protobuf;
        let page = |title: &str| {
            format!(
                "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}\
                 </h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n</body>\r\n</html>\r\n"
            )
        };
        let h = judge(&Answer::of(404, page("404 Not Found").as_bytes()), p, 0).expect_err("404");
        assert_eq!(
            h.error.reason(),
            format!(
                "HTTP 404: a web page titled \"404 Not Found\" ({})",
                h.hint.as_deref().expect("a 404's hint")
            )
        );
        let body = page("502 Bad Gateway");
        let h = judge(
            &Answer {
                retry_after: Some("3"),
                ..Answer::of(502, body.as_bytes())
            },
            p,
            0,
        )
        .expect_err("502");
        assert_eq!(
            h.error.reason(),
            "HTTP 502: a web page titled \"502 Bad Gateway\" (the server asks to wait 3 s: \
             Retry-After) (a proxy or load balancer in front of the backend answered, not the \
             backend: it is down, or not where the proxy sends requests)"
        );
        assert!(matches!(
            h.error,
            SendError::Transient {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(
            h.hint
                .is_some_and(|hint| hint.starts_with("a proxy or load balancer in front"))
        );
        // A title over lines, in capitals, with an escape sequence: one
        // line, escaped.
        let h = judge(
            &Answer::of(
                504,
                b"<!DOCTYPE html><HTML><TITLE>\n 504\x1b[2J   Gateway\n Time-out</TITLE>",
            ),
            p,
            0,
        )
        .expect_err("504");
        assert!(
            h.error
                .reason()
                .starts_with("HTTP 504: a web page titled \"504\\x1b[2J Gateway Time-out\" ("),
            "{}",
            h.error.reason()
        );
        // No page, a 503's (the backend's own "busy"), or a page with no
        // title: as before.
        for (code, body, reason) in [
            (502, &b"upstream connect error"[..], "HTTP 502"),
            (503, page("503 Service Unavailable").as_bytes(), "HTTP 503"),
            (
                400,
                b"<html><body>bad</body></html>",
                "HTTP 400: <html><body>bad</body></html>",
            ),
        ] {
            let h = judge(&Answer::of(code, body), p, 0).expect_err("a failure");
            assert_eq!((h.error.reason(), h.hint), (reason, None));
        }
    }

    /// A CA file replaced in place (the usual fix of an untrusted
    /// certificate) is another sender for refusals, the same one for where
    /// spans go; without TLS files the two are one, so the names of the
    /// files such a sender was refused are as before; a file that cannot
    /// be read counts as such, not as an empty one.
    #[test]
    fn the_refusal_fingerprint_covers_the_tls_files_bytes_and_the_sender_their_paths() {
        let dir = std::env::temp_dir().join(format!("sg-http-tls-bytes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ca = dir.join("ca.pem");
        let sender = |tls: &TlsFiles| {
            let t = HttpTransport::new(
                "https://otlp.example/v1/traces",
                &[],
                tls,
                Duration::from_secs(1),
                Arc::default(),
            );
            (
                t.sender_fingerprint().expect("one"),
                t.refusal_fingerprint().expect("one"),
            )
        };
        let plain = sender(&TlsFiles::default());
        assert_eq!(plain.0, plain.1);
        let tls = TlsFiles {
            certificate: Some(ca.clone()),
            ..TlsFiles::default()
        };
        std::fs::write(&ca, "CA A").expect("write");
        let a = sender(&tls);
        std::fs::write(&ca, "CA B").expect("write");
        let b = sender(&tls);
        assert_eq!(a.0, b.0, "the same path, the same destination");
        assert_ne!(a.1, b.1, "other bytes, another refusal");
        assert_ne!(a.0, a.1);
        std::fs::write(&ca, "").expect("write");
        let empty = sender(&tls);
        std::fs::remove_file(&ca).expect("rm");
        std::fs::create_dir(&ca).expect("a directory in its place");
        let unreadable = sender(&tls);
        assert_ne!(empty.1, unreadable.1);
        assert_eq!(
            unreadable.1,
            sender(&tls).1,
            "the same error, the same sender"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// An answer curl cannot read as HTTP is the server's doing, not the
    /// endpoint's: the message must not send the user to check the URL.
    #[test]
    fn an_answer_that_is_not_http_is_not_blamed_on_the_url() {
        let t = HttpTransport::new(
            "http://127.0.0.1:4318/v1/traces",
            &[],
            &TlsFiles::default(),
            Duration::from_secs(1),
            Default::default(),
        );
        let e = curl::Error::new(curl_sys::CURLE_UNSUPPORTED_PROTOCOL);
        let text = t.explain(&e).0;
        assert!(
            text.starts_with("the server's answer is not HTTP"),
            "{text}"
        );
        let e = curl::Error::new(curl_sys::CURLE_URL_MALFORMAT);
        assert!(
            t.explain(&e)
                .0
                .starts_with("the endpoint URL is not usable")
        );
    }

    /// A handle made as the exporter makes it speaks http and https alone:
    /// given a file:// URL past the configuration's check, curl refuses the
    /// scheme instead of reading the file (and the file's bytes are never
    /// taken for a server's answer).
    #[test]
    fn a_handle_refuses_any_protocol_but_http() {
        let path = std::env::temp_dir().join(format!("spanguard-http-only-{}", std::process::id()));
        std::fs::write(&path, b"not an OTLP answer").unwrap();
        for url in [
            format!("file://{}", path.display()),
            "dict://127.0.0.1:1/x".into(),
        ] {
            let mut t = HttpTransport::new(
                &url,
                &[],
                &TlsFiles::default(),
                Duration::from_secs(1),
                Default::default(),
            );
            let got = t.perform(b"spans", BodyFormat::Protobuf, false);
            let e = got.expect_err(&url);
            assert!(e.is_unsupported_protocol(), "{url}: {e}");
        }
        std::fs::remove_file(&path).unwrap();
    }

    /// https:// to a plain-HTTP port: OpenSSL says "wrong version number",
    /// which does not point at the scheme; the message does.
    #[test]
    fn https_to_a_plain_http_port_says_to_use_http() {
        let t = HttpTransport::new(
            "https://127.0.0.1:4318/v1/traces",
            &[],
            &TlsFiles::default(),
            Duration::from_secs(1),
            Default::default(),
        );
        // CURLE_SSL_CONNECT_ERROR, with the words curl gives from OpenSSL.
        let mut e = curl::Error::new(35);
        e.set_extra(
            "TLS connect error: error:0A00010B:SSL routines::wrong version number".to_string(),
        );
        let text = t.explain(&e).0;
        assert!(
            text.starts_with("TLS handshake failed: TLS connect error"),
            "{text}"
        );
        assert!(
            text.ends_with("use an http:// endpoint, or the server's TLS port)"),
            "{text}"
        );
        assert_eq!(
            t.explain(&e).1.as_deref(),
            Some(
                "the server answers plain HTTP there: use an http:// endpoint, or the server's TLS port"
            )
        );
        // Another handshake failure gets no such advice.
        let mut e = curl::Error::new(35);
        e.set_extra("TLS connect error: sslv3 alert handshake failure".to_string());
        assert!(!t.explain(&e).0.contains("http://"));
    }

    #[test]
    fn answers_are_classified_as_the_otlp_spec_says() {
        let p = BodyFormat::Protobuf;
        assert!(classify(&Answer::of(200, b""), p, 0).is_ok());
        assert_eq!(
            classify(
                &Answer {
                    retry_after: Some("3"),
                    ..Answer::of(503, b"")
                },
                p,
                0
            ),
            Err(SendError::Transient {
                reason: "HTTP 503 (the server asks to wait 3 s: Retry-After)".to_string(),
                retry_after: Some(Duration::from_secs(3))
            })
        );
        // An HTTP date: exactly the seconds from now until it.
        let nov_6_1994 = 784_111_777;
        assert_eq!(
            classify(
                &Answer {
                    retry_after: Some("Sun, 06 Nov 1994 08:49:37 GMT"),
                    ..Answer::of(429, b"")
                },
                p,
                nov_6_1994 - 7
            ),
            Err(SendError::Transient {
                reason: "HTTP 429 (the server asks to wait 7 s: Retry-After)".to_string(),
                retry_after: Some(Duration::from_secs(7))
            })
        );
        // Without Retry-After (or one that does not parse), the code alone.
        for header in [None, Some("soon")] {
            assert_eq!(
                classify(
                    &Answer {
                        retry_after: header,
                        ..Answer::of(429, b"")
                    },
                    p,
                    0
                ),
                Err(SendError::Transient {
                    reason: "HTTP 429".to_string(),
                    retry_after: None
                })
            );
        }
        assert!(matches!(
            classify(&Answer::of(413, b"too big"), p, 0),
            Err(SendError::TooLarge { .. })
        ));
        // A server's words are shown escaped (an escape sequence was a
        // space, a bidi override or a line separator went through as it
        // was) and cut with how much was left out.
        assert!(matches!(
            classify(&Answer::of(400, b"bad\r\nthing"), p, 0),
            Err(SendError::Permanent { reason }) if reason == r"HTTP 400: bad\r\nthing"
        ));
        let hostile = [
            "x\x1b]52;c;SGVsbG8=\x07\u{202e}\u{2028}".as_bytes(),
            &[b'y'; 1000],
        ]
        .concat();
        let shown = format!(
            r"HTTP 500: x\x1b]52;c;SGVsbG8=\x07\u{{202e}}\u{{2028}}{}",
            "y".repeat(181)
        );
        assert!(
            matches!(
                classify(&Answer::of(500, &hostile), p, 0),
                Err(SendError::Permanent { reason })
                    if reason == format!("{shown}... (819 more bytes)")
            ),
            "{:?}",
            classify(&Answer::of(500, &hostile), p, 0)
        );
        // The refusals a setting causes name the setting, and are told
        // apart from refusals of the data (`SendError::Misdirected`).
        for code in [401, 403] {
            assert!(matches!(
                classify(&Answer::of(code, b"no key"), p, 0),
                Err(SendError::Misdirected { reason })
                    if reason.starts_with(&format!("HTTP {code}: no key (the backend refused the credentials"))
                        && reason.contains("OTEL_EXPORTER_OTLP_HEADERS")
            ));
        }
        assert!(matches!(
            classify(&Answer::of(404, b""), p, 0),
            Err(SendError::Misdirected { reason })
                if reason.starts_with("HTTP 404:  (nothing takes traces at this URL")
                    && reason.contains("/v1/traces is added to")
        ));
        for code in [405, 407] {
            assert!(matches!(
                classify(&Answer::of(code, b""), p, 0),
                Err(SendError::Misdirected { .. })
            ));
        }
        // 431: the request's headers are too large (a Go server's default
        // is 1 MB; OTEL_EXPORTER_OTLP_HEADERS takes any length). That is
        // the sender's doing, not the data's: refused as 401 is (spool
        // files kept for a sender set up right, where a final refusal
        // had `spanguard replay` delete them all), and the setting named.
        assert!(matches!(
            classify(&Answer::of(431, b"Request Header Fields Too Large"), p, 0),
            Err(SendError::Misdirected { reason })
                if reason.starts_with("HTTP 431: Request Header Fields Too Large (")
                    && reason.contains("OTEL_EXPORTER_OTLP_HEADERS")
        ));
        // A 415 says which encoding was refused and which setting picks
        // the other.
        for (format, refused, other) in [
            (
                p,
                "application/x-protobuf",
                "OTEL_EXPORTER_OTLP_PROTOCOL=http/json",
            ),
            (
                BodyFormat::Json,
                "application/json",
                "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
            ),
        ] {
            assert!(matches!(
                classify(&Answer::of(415, b"unsupported"), format, 0),
                Err(SendError::Permanent { reason })
                    if reason.starts_with(&format!("HTTP 415: unsupported (the server does not take {refused}"))
                        && reason.contains(other)
            ));
        }
        // A 2xx whose body is a web page is no OTLP answer: its spans
        // were not taken, and the message says where to point instead.
        for body in [
            &b"<!DOCTYPE html><html><head><title>Grafana</title></head></html>"[..],
            b"\n  <html>\n<body>catch-all</body></html>",
            b"\xef\xbb\xbf<?xml version=\"1.0\"?><ok/>",
        ] {
            assert!(
                matches!(
                    classify(&Answer::of(200, body), p, 0),
                    Err(SendError::Misdirected { reason })
                        if reason.starts_with("HTTP 200 with a web page, not an OTLP answer: ")
                            && reason.contains("OTLP/HTTP receiver")
                            && !reason.chars().any(char::is_control)
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // OTLP's own answers, and an empty one, are taken.
        for body in [&b""[..], b"{}", b"{\"partialSuccess\":{}}", b" \n{}"] {
            assert!(classify(&Answer::of(200, body), BodyFormat::Json, 0).is_ok());
        }
        for code in [400, 409, 410, 415, 422, 500, 501] {
            assert!(matches!(
                classify(&Answer::of(code, b""), p, 0),
                Err(SendError::Permanent { .. })
            ));
        }
        // A google.rpc.Status body (a Collector's answer in protobuf): its
        // message, without the wire format's bytes shown as text.
        let mut status = Vec::new();
        crate::span::proto_reader::write_varint(&mut status, 1 << 3);
        crate::span::proto_reader::write_varint(&mut status, 13);
        crate::span::proto_reader::write_len_field(&mut status, 2, "A".repeat(65).as_bytes());
        assert!(matches!(
            classify(&Answer::of(500, &status), p, 0),
            Err(SendError::Permanent { reason }) if reason == format!("HTTP 500: {}", "A".repeat(65))
        ));
        // Text that is no Status is shown as it came.
        assert!(matches!(
            classify(&Answer::of(500, b"upstream connect error"), p, 0),
            Err(SendError::Permanent { reason }) if reason == "HTTP 500: upstream connect error"
        ));
        // A redirect says where it leads. A permanent one refuses the URL
        // (its spans kept for a sender set up with the new one); a
        // temporary one is tried again.
        let redirect = |code| {
            classify(
                &Answer {
                    location: Some("https://collector/v1/traces"),
                    ..Answer::of(code, b"")
                },
                p,
                0,
            )
        };
        let said = |code| {
            format!(
                "HTTP {code}: a redirect to https://collector/v1/traces, not followed \
                 (set the endpoint to where it leads)"
            )
        };
        for code in [301, 308] {
            assert_eq!(
                redirect(code),
                Err(SendError::Misdirected { reason: said(code) })
            );
        }
        for code in [300, 302, 303, 304, 305, 307, 399] {
            assert_eq!(
                redirect(code),
                Err(SendError::Transient {
                    reason: said(code),
                    retry_after: None
                })
            );
        }
    }

    /// A loopback server that answers every request with `answer`, then
    /// closes the connection. Returns its URL.
    fn answering(answer: &'static [u8]) -> String {
        answering_then(answer, false)
    }

    /// `answering`, the connection then held open until the client
    /// closes it (`hold`): an answer that stalls where it was cut.
    fn answering_then(answer: &'static [u8], hold: bool) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/v1/traces", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                // The request: headers, then a body of Content-Length.
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                let end = loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break None,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                    if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        break Some(at + 4);
                    }
                };
                let Some(end) = end else { continue };
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while got.len() < end + length {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = conn.write_all(answer);
                while hold && matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
            }
        });
        url
    }

    /// The seam the server_answers fuzz target drives
    /// (`outcome_of_answer`) reaches what `send` reaches over a socket,
    /// for answers read whole, cut in the body, with a status of four
    /// digits, a partial success in gzip, a redirect and a 503 asking to
    /// wait: the fuzz target's verdicts are the transport's.
    #[test]
    fn the_answer_seam_reads_an_answer_as_send_does() {
        let mut gz = crate::export::gzip::GzipWriter::new();
        let mut partial = Vec::new();
        gz.compress(b"\x0a\x06\x08\x02\x12\x02no", &mut partial);
        let mut gzipped = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n".to_vec();
        gzipped.extend_from_slice(format!("Content-Length: {}\r\n\r\n", partial.len()).as_bytes());
        gzipped.extend_from_slice(&partial);
        let gzipped: &'static [u8] = Box::leak(gzipped.into_boxed_slice());
        // (raw answer, its header lines, body chunks and ending as curl
        // hands them over, the code curl reads)
        type Case = (
            &'static [u8],
            Vec<&'static [u8]>,
            Vec<&'static [u8]>,
            Option<u32>,
            u32,
        );
        let cases: Vec<Case> = vec![
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                vec![b"HTTP/1.1 200 OK\r\n", b"Content-Length: 0\r\n", b"\r\n"],
                vec![],
                None,
                200,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\ncut",
                vec![b"HTTP/1.1 200 OK\r\n", b"Content-Length: 50\r\n", b"\r\n"],
                vec![b"cut"],
                Some(18),
                200,
            ),
            (
                b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
                vec![b"HTTP/1.1 2000 OK\r\n", b"Content-Length: 0\r\n", b"\r\n"],
                vec![],
                None,
                200,
            ),
            (
                b"HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n",
                vec![
                    b"HTTP/1.1 302 Found\r\n",
                    b"Location: file:///etc/passwd\r\n",
                    b"Content-Length: 0\r\n",
                    b"\r\n",
                ],
                vec![],
                None,
                302,
            ),
            (
                b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n",
                vec![
                    b"HTTP/1.1 503 Busy\r\n",
                    b"Retry-After: 7\r\n",
                    b"Content-Length: 0\r\n",
                    b"\r\n",
                ],
                vec![],
                None,
                503,
            ),
        ];
        let gz_lines: Vec<&'static [u8]> = vec![
            b"HTTP/1.1 200 OK\r\n",
            b"Content-Encoding: gzip\r\n",
            b"Content-Length: 0\r\n",
            b"\r\n",
        ];
        let gz_body: &'static [u8] = Box::leak(partial.clone().into_boxed_slice());
        let cases = cases
            .into_iter()
            .chain([(gzipped, gz_lines, vec![gz_body], None, 200)]);
        for (raw, lines, chunks, failure, code) in cases {
            let real = send_to(&answering(raw));
            let seam = outcome_of_answer(&lines, &chunks, failure, code, BodyFormat::Protobuf, 0);
            let kind = |r: &Result<Accepted, SendError>| match r {
                Ok(a) => format!("accepted, {} rejected", a.rejected_spans),
                Err(SendError::Transient { retry_after, .. }) => {
                    format!("transient {retry_after:?}")
                }
                Err(e) => format!("{e:?}").split(' ').next().unwrap_or("").to_string(),
            };
            assert_eq!(
                kind(&seam),
                kind(&real),
                "{}: {seam:?} / {real:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    fn send_to(url: &str) -> Result<Accepted, SendError> {
        let mut t = HttpTransport::new(
            url,
            &[],
            &TlsFiles::default(),
            Duration::from_secs(5),
            Default::default(),
        );
        t.send(b"spans", BodyFormat::Protobuf, false)
    }

    /// curl reads the first three digits of a status code: "2000" was 200,
    /// and its batch counted as delivered. A code that is not exactly
    /// three digits is no HTTP answer: the batch is kept (retried, then
    /// spooled), and the message shows the server's line, escaped.
    #[test]
    fn a_status_code_that_is_not_three_digits_is_not_delivered() {
        for (answer, shown) in [
            (
                &b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"[..],
                "HTTP/1.1 2000 OK",
            ),
            (
                &b"HTTP/1.1 2001\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"[..],
                "HTTP/1.1 2001",
            ),
            (
                &b"HTTP/1.1 200x \x1b[31mOK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"[..],
                "HTTP/1.1 200x \\x1b[31mOK",
            ),
            (
                &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 20000 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"[..],
                "HTTP/1.1 20000 OK",
            ),
        ] {
            let url = answering(answer);
            match send_to(&url) {
                Err(SendError::Transient { reason, .. }) => {
                    assert!(reason.contains("not HTTP"), "{reason}");
                    assert!(reason.contains(shown), "{reason}");
                    assert!(!reason.chars().any(char::is_control), "{reason}");
                }
                other => panic!("{shown}: {other:?}"),
            }
        }
        // A real 200, with and without a reason phrase: delivered.
        for answer in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"[..],
            &b"HTTP/1.1 200\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"[..],
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"[..],
        ] {
            let url = answering(answer);
            assert!(send_to(&url).is_ok(), "{}", String::from_utf8_lossy(answer));
        }
    }

    /// curl hands every answer's headers to `header`, an interim 1xx's
    /// too: a `103 Early Hints` with `Retry-After: 86400` before a 503
    /// read as the 503 asking to wait a day (its batch not retried within
    /// its budget), and a 1xx's `Location` was shown as a later
    /// redirect's. Only the final answer's headers count.
    #[test]
    fn an_interim_answers_headers_are_not_the_final_ones() {
        let url = answering(
            b"HTTP/1.1 103 Early Hints\r\nRetry-After: 86400\r\nLocation: https://early.example/\r\n\r\n\
              HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(
            send_to(&url),
            Err(SendError::Transient {
                reason: "HTTP 503".to_string(),
                retry_after: None
            })
        );
        let url = answering(
            b"HTTP/1.1 103 Early Hints\r\nLocation: https://early.example/\r\n\r\n\
              HTTP/1.1 308 Permanent Redirect\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        match send_to(&url) {
            Err(SendError::Misdirected { reason }) => {
                assert!(!reason.contains("early.example"), "{reason}");
                assert!(reason.contains("a redirect to nowhere"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // The final answer's own Retry-After still counts.
        let url = answering(
            b"HTTP/1.1 103 Early Hints\r\nRetry-After: 86400\r\n\r\n\
              HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        assert!(matches!(
            send_to(&url),
            Err(SendError::Transient { retry_after: Some(d), .. }) if d == Duration::from_secs(2)
        ));
    }

    /// RFC 9110 gives HTTP's status codes as 100 to 599; codes over it
    /// (LinkedIn's 999, a proxy's 600) are no HTTP answer: a 600 was taken for a final
    /// refusal, and `spanguard replay` deleted every spool file it sent
    /// there, counted lost. The batch is kept, as for any answer that is
    /// not HTTP.
    #[test]
    fn a_status_code_outside_https_range_is_no_refusal() {
        for (answer, code) in [
            (
                &b"HTTP/1.1 600 Odd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"[..],
                600,
            ),
            (
                &b"HTTP/1.1 999 Request denied\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"[..],
                999,
            ),
        ] {
            let url = answering(answer);
            match send_to(&url) {
                Err(SendError::Transient { reason, .. }) => {
                    assert!(reason.contains("not HTTP"), "{reason}");
                    assert!(reason.contains(&format!("status {code}")), "{reason}");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    /// A web page answered 200 (a UI's port, a site's catch-all route, as
    /// the endpoint): its spans were counted exported while nothing kept
    /// them, and nothing was said. Now the request is refused for where it
    /// went, with the page's start in the message.
    #[test]
    fn a_web_page_answering_200_is_no_delivery() {
        let url = answering(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 43\r\nConnection: close\r\n\r\n<!doctype html><title>Dashboard</title></ht",
        );
        match send_to(&url) {
            Err(SendError::Misdirected { reason }) => {
                assert!(
                    reason.contains("<!doctype html><title>Dashboard"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    /// A 2xx answer whose body a proxy gzipped (`Content-Encoding: gzip`,
    /// though we ask for no encoding) carrying a partial success: its
    /// compressed bytes were read as no OTLP answer, so the spans it
    /// rejected were neither counted nor said. It is read inflated; a
    /// body that does not inflate is taken with a warning.
    #[test]
    fn a_gzipped_partial_success_is_read() {
        use crate::span::proto_reader::{write_len_field, write_varint};
        let mut partial = Vec::new();
        write_varint(&mut partial, 1 << 3); // rejected_spans
        write_varint(&mut partial, 3);
        write_len_field(&mut partial, 2, b"3 spans too old");
        let mut response = Vec::new();
        write_len_field(&mut response, 1, &partial);
        let mut gzipped = Vec::new();
        crate::export::gzip::GzipWriter::new().compress(&response, &mut gzipped);
        let answer = |encoding: &str, body: &[u8]| -> &'static [u8] {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n\
                 Content-Encoding: {encoding}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            Box::leak([head.as_bytes(), body].concat().into_boxed_slice())
        };
        for encoding in ["gzip", "GZIP", "x-gzip"] {
            let got = send_to(&answering(answer(encoding, &gzipped)));
            assert_eq!(
                got,
                Ok(Accepted {
                    rejected_spans: 3,
                    message: "3 spans too old".to_string()
                }),
                "{encoding}"
            );
        }
        // Cut short: taken as its status says, with the warning that its
        // body is not read (read raw, it said "nothing rejected" in
        // silence).
        let cut = &gzipped[..gzipped.len() / 2];
        assert_eq!(
            send_to(&answering(answer("gzip", cut))),
            Ok(Accepted {
                rejected_spans: 0,
                message: crate::export::transport::unread_answer(
                    "gzip, cut short",
                    "it ends before its stream does"
                ),
            })
        );
        let unlabelled = send_to(&answering(answer("identity", &response)));
        assert_eq!(unlabelled.map(|a| a.rejected_spans), Ok(3));
        // A small answer that inflates to megabytes is kept as a plain
        // one is: up to RESPONSE_BODY_MAX.
        let mut bomb = Vec::new();
        crate::export::gzip::GzipWriter::new().compress(&vec![0u8; 4 << 20], &mut bomb);
        assert!(bomb.len() < RESPONSE_BODY_MAX, "{}", bomb.len());
        assert_eq!(
            inflate(&bomb, BodyEncoding::Gzip).map(|b| b.map(|b| b.len()).ok()),
            Some(Some(RESPONSE_BODY_MAX))
        );
    }

    /// A protobuf answer starts with field 1's key, 0x0a, a line feed:
    /// skipped as whitespace, a partial success 60 bytes long (its length
    /// byte '<') read as a web page, and the URL refused (Misdirected) for
    /// a Collector's answer with a message of 56 characters. A body that
    /// is a well-formed protobuf message is no markup.
    #[test]
    fn a_protobuf_partial_success_of_60_bytes_is_no_web_page() {
        // partial_success { rejected_spans: 2, error_message: 56 x 'q' }
        let mut body = vec![0x0a, 60, 0x08, 0x02, 0x12, 56];
        body.extend_from_slice(&[b'q'; 56]);
        let lines: [&[u8]; 2] = [b"HTTP/1.1 200 OK\r\n", b"\r\n"];
        let read = outcome_of_answer(&lines, &[&body], None, 200, BodyFormat::Protobuf, 0);
        assert_eq!(read.map(|a| a.rejected_spans), Ok(2));
    }

    /// A `Content-Encoding` given on more than one header line is one
    /// list (RFC 9110 5.3: field lines of a name combine, in order): the
    /// last line alone was read, so `gzip` then `identity` read a gzipped
    /// partial success as its compressed bytes, and its rejected spans
    /// were counted delivered. The lines of an earlier (interim) answer
    /// are not the final one's.
    #[test]
    fn content_encoding_on_several_lines_is_one_list() {
        // partial_success { rejected_spans: 3, error_message: "quota" }
        let mut gzipped = Vec::new();
        crate::export::gzip::GzipWriter::new().compress(
            &[
                0x0a, 0x09, 0x08, 0x03, 0x12, 0x05, b'q', b'u', b'o', b't', b'a',
            ],
            &mut gzipped,
        );
        let read = |lines: &[&[u8]]| {
            let mut all: Vec<&[u8]> = lines.to_vec();
            all.push(b"\r\n");
            outcome_of_answer(&all, &[&gzipped], None, 200, BodyFormat::Protobuf, 0)
                .map(|a| a.rejected_spans)
        };
        let ok = b"HTTP/1.1 200 OK\r\n";
        for lines in [
            &[
                &ok[..],
                b"Content-Encoding: gzip\r\n",
                b"Content-Encoding: identity\r\n",
            ][..],
            &[
                ok,
                b"Content-Encoding: identity\r\n",
                b"Content-Encoding: gzip\r\n",
            ],
            &[ok, b"Content-Encoding: gzip\r\n", b"Content-Encoding:\r\n"],
            &[
                ok,
                b"Content-Encoding: identity,\r\n",
                b"content-encoding: x-gzip\r\n",
            ],
            &[
                b"HTTP/1.1 103 Early Hints\r\n",
                b"Content-Encoding: br\r\n",
                b"\r\n",
                ok,
                b"Content-Encoding: gzip\r\n",
            ],
        ] {
            assert_eq!(
                read(lines),
                Ok(3),
                "{}",
                String::from_utf8_lossy(&lines.concat())
            );
        }
        // Two codings, on one line or two: not read as gzip alone. Nor a
        // list past what is read, whatever comes after it.
        let long = format!("Content-Encoding: {}\r\n", "identity,".repeat(200));
        for lines in [
            &[&ok[..], b"Content-Encoding: gzip, br\r\n"][..],
            &[
                ok,
                b"Content-Encoding: gzip\r\n",
                b"Content-Encoding: br\r\n",
            ],
            &[ok, long.as_bytes(), b"Content-Encoding: gzip\r\n"],
        ] {
            assert_eq!(
                read(lines),
                Ok(0),
                "{}",
                String::from_utf8_lossy(&lines.concat())
            );
        }
    }

    /// A final answer whose headers came whole is the server's verdict,
    /// even when its body then falls short (a Content-Length that lies,
    /// a connection closed or reset mid-body, a body that stalls until
    /// the request times out): a 200 so cut was taken for no answer, and
    /// the batch the server had taken was sent again, spooled, and sent
    /// again at every replay, never counted exported. What came of the
    /// body is read (a partial success in it counts). No final answer
    /// (none, or an interim 1xx alone) is still none.
    #[test]
    fn an_answer_cut_in_its_body_is_still_the_answer() {
        let send = |url: &str| {
            HttpTransport::new(
                url,
                &[],
                &TlsFiles::default(),
                Duration::from_secs(1),
                Default::default(),
            )
            .send(b"spans", BodyFormat::Protobuf, false)
        };
        // Closed where the body should be: none of its 100 bytes came.
        let closed = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n";
        assert_eq!(send(&answering(closed)), Ok(Accepted::default()));
        // The same, the connection then held open: the request times out.
        assert_eq!(send(&answering_then(closed, true)), Ok(Accepted::default()));
        // A chunked body that never ends, stalled.
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
        assert_eq!(
            send(&answering_then(chunked, true)),
            Ok(Accepted::default())
        );
        // A partial success whole, then the body cut: it is read.
        // partial_success { rejected_spans: 3, error_message: "quota" }
        let partial: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n\
            \x0a\x09\x08\x03\x12\x05quota";
        assert_eq!(
            send(&answering(partial)),
            Ok(Accepted {
                rejected_spans: 3,
                message: "quota".to_string()
            })
        );
        // Any status stands so: a 503's is kept and retried as a 503.
        let unavailable = b"HTTP/1.1 503 Busy\r\nRetry-After: 2\r\nContent-Length: 9\r\n\r\nbu";
        assert_eq!(
            send(&answering(unavailable)),
            Err(SendError::Transient {
                reason: "HTTP 503 (the server asks to wait 2 s: Retry-After)".to_string(),
                retry_after: Some(Duration::from_secs(2))
            })
        );
        // No final answer: none at all, or an interim one alone, closed
        // or stalled. Kept.
        for (cut, hold) in [
            (&b""[..], false),
            (b"HTTP/1.1 100 Continue\r\n\r\n", false),
            (b"HTTP/1.1 100 Continue\r\n\r\n", true),
            (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", true),
        ] {
            // Said as what it is: a wait that timed out, not a status 1xx
            // taken for the answer ("not HTTP: status 100").
            let got = send(&answering_then(cut, hold));
            assert!(
                matches!(&got, Err(SendError::Transient { reason, .. })
                    if !reason.contains("status 1") && (!hold || reason.starts_with("timed out"))),
                "{}: {got:?}",
                String::from_utf8_lossy(cut)
            );
        }
    }

    /// One span ended and flushed through a tracer whose endpoint gives
    /// `answer`: the flush's outcome and (spans exported, spans spooled).
    fn one_span_flushed_against(
        answer: &'static [u8],
        tag: &str,
    ) -> (crate::pipeline::FlushOutcome, (u64, u64)) {
        use crate::config::TracerConfig;
        use crate::tracer::{Parent, Tracer};
        let url = answering(answer);
        let dir = std::env::temp_dir().join(format!("sg-http-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tracer = Tracer::new(TracerConfig {
            endpoint: Some(url),
            sink_dir: dir.join("spans"),
            spool_dir: dir.join("spool"),
            install_signal_handlers: false,
            export_timeout: Duration::from_millis(300),
            ..TracerConfig::default()
        })
        .expect("tracer");
        let (span, _) = tracer.begin(b"op", Parent::None, 1).expect("begin");
        tracer.end(span, 0).expect("end");
        let outcome = tracer.flush(Duration::from_secs(30)).expect("flush");
        let stats = tracer.stats();
        drop(tracer);
        let _ = std::fs::remove_dir_all(&dir);
        (outcome, (stats.spans_exported, stats.spooled_spans))
    }

    /// Through a tracer: a 200 whose body never came whole is an export,
    /// not a spooled batch.
    #[test]
    fn a_span_answered_200_with_a_cut_body_is_exported_not_spooled() {
        let (outcome, counts) = one_span_flushed_against(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n",
            "cut",
        );
        assert_eq!(outcome, crate::pipeline::FlushOutcome::Delivered);
        assert_eq!(counts, (1, 0));
    }

    /// Through a tracer: the span behind a "2000" answer is spooled and
    /// counted so, not counted as exported.
    #[test]
    fn a_span_answered_with_a_four_digit_status_is_spooled_not_exported() {
        let (outcome, counts) = one_span_flushed_against(
            b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "2000",
        );
        assert_eq!(outcome, crate::pipeline::FlushOutcome::Spooled);
        assert_eq!(counts, (0, 1));
    }

    fn send_with(url: &str, headers: &[(String, String)]) -> Result<Accepted, SendError> {
        let mut t = HttpTransport::new(
            url,
            headers,
            &TlsFiles::default(),
            Duration::from_secs(5),
            Default::default(),
        );
        t.send(b"spans", BodyFormat::Protobuf, false)
    }

    /// A Collector's OTLP/gRPC port answers an HTTP/1.1 request with an
    /// HTTP/2 SETTINGS frame: curl said "Received HTTP/0.9 when not
    /// allowed", and nothing named the port. The message now does.
    #[test]
    fn a_grpc_port_is_named_as_the_cause() {
        let settings = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x05\x00\x00\x40\x00";
        let url = answering(settings);
        let reason = match send_with(&url, &[]) {
            Err(SendError::Transient { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(
            reason.starts_with("the server's answer is not HTTP"),
            "{reason}"
        );
        assert!(
            reason.contains("answered without an HTTP status line, with an HTTP/2 frame")
                && reason.contains("an OTLP/gRPC port answers so")
                && reason.contains("OTLP/HTTP, which a Collector takes on port 4318"),
            "{reason}"
        );
        // Port 4317 itself, whatever curl's words (here an empty reply).
        let t = HttpTransport::new(
            "http://collector:4317/v1/traces",
            &[],
            &TlsFiles::default(),
            Duration::from_secs(1),
            Default::default(),
        );
        assert!(
            t.explain(&curl::Error::new(52))
                .0
                .contains("OTLP/gRPC port")
        );
        // A refused connection on it is no answer of gRPC's: no such advice.
        assert!(!t.explain(&curl::Error::new(7)).0.contains("gRPC"));
    }

    /// Any answer without a status line was told "an OTLP/gRPC port
    /// answers so, such as a Collector's 4317" (curl's "Received HTTP/0.9
    /// when not allowed" for all of them): an SSH server, a Redis, a
    /// server of the user's own, none of them gRPC. That is said where it
    /// fits only (an HTTP/2 frame, above; port 4317); others are told
    /// what is known. The server holds the connection open: the answer is
    /// read as far as its first bytes, not until the request times out.
    #[test]
    fn an_answer_without_a_status_line_is_not_said_to_be_grpc_unless_it_looks_so() {
        for answer in [
            &b"SSH-2.0-OpenSSH_9.2\r\n"[..],
            b"-ERR unknown command 'POST'\r\n",
        ] {
            let url = answering_then(answer, true);
            let reason = match send_with(&url, &[]) {
                Err(SendError::Transient { reason, .. }) => reason,
                other => panic!("{other:?}"),
            };
            assert_eq!(
                reason,
                format!(
                    "the server's answer is not HTTP: the server at {url} answered without an \
                     HTTP status line (not an HTTP server?)"
                )
            );
        }
        assert!(looks_like_http2_frame(
            b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x05\x00\x00\x40\x00"
        ));
        assert!(looks_like_http2_frame(
            b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
        ));
        assert!(!looks_like_http2_frame(b"SSH-2.0-OpenSSH_9.2\r\n"));
        assert!(!looks_like_http2_frame(b"\x00\x00\x06\x04\x00\x00\x00"));
    }

    /// A 404 says what in the URL is wrong where its path shows it.
    #[test]
    fn a_404_names_what_is_wrong_with_the_path() {
        let answer =
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found";
        let base = answering(answer);
        let base = base.strip_suffix("/v1/traces").expect("a traces URL");
        for (path, hint) in [
            ("/v1/trace", "(the OTLP/HTTP traces path is /v1/traces)"),
            ("/v1/traces/v1/traces", "has /v1/traces twice"),
            (
                "",
                "(the URL has no path: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is",
            ),
            ("/otlp/v1/traces", "(nothing takes traces at this URL"),
        ] {
            let url = format!("{base}{path}");
            let reason = match send_with(&url, &[]) {
                Err(SendError::Misdirected { reason }) => reason,
                other => panic!("{url}: {other:?}"),
            };
            assert!(reason.starts_with("HTTP 404: not found ("), "{reason}");
            assert!(reason.contains(hint), "{url}: {reason}");
            // One hint, never the generic one beside a specific one.
            assert_eq!(reason.matches(" (").count(), 1, "{reason}");
        }
    }

    /// OTEL_EXPORTER_OTLP_ENDPOINT set to a traces URL: the URL used has
    /// /v1/traces twice, and the 404's hint names that URL (credentials in
    /// it hidden), not the variable's text, where /v1/traces is once. It
    /// said "/v1/traces is in the URL twice" of a URL the user never saw
    /// and whose text, all they had, held it once.
    #[test]
    fn a_doubled_path_is_said_with_the_url_used() {
        let answer =
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found";
        let variable = answering(answer).replace("http://", "http://user:hunter2@");
        let mut config = crate::config::TracerConfig::default();
        let env = |name: &str| (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| variable.clone());
        config.apply_env(&env).expect("valid");
        let used = config.endpoint.expect("an endpoint");
        assert_eq!(used, format!("{variable}/v1/traces"));
        let reason = match send_with(&used, &[]) {
            Err(SendError::Misdirected { reason }) => reason,
            other => panic!("{other:?}"),
        };
        let shown = format!(
            "{}/v1/traces",
            variable.replace("user:hunter2@", "***:***@")
        );
        assert!(
            reason.contains(&format!("(the URL used, {shown}, has /v1/traces twice: ")),
            "{reason}"
        );
        assert!(!reason.contains("hunter2"), "{reason}");
    }

    /// A 401 says whether any header went with the request (a variable
    /// that never reached the process) and which ones (a wrong key, or a
    /// wrong header name), never their values.
    #[test]
    fn a_401_says_which_credentials_went_with_it() {
        let answer = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let url = answering(answer);
        let reason = |headers: &[(String, String)]| match send_with(&url, headers) {
            Err(SendError::Misdirected { reason }) => reason,
            other => panic!("{other:?}"),
        };
        let none = reason(&[]);
        assert!(none.contains("none were sent"), "{none}");
        assert!(none.contains("Authorization=Bearer%20<key>"), "{none}");
        let sent = reason(&[("x-api-key".to_string(), "s3cret-value".to_string())]);
        assert!(
            sent.contains("refused the credentials sent (headers: x-api-key)"),
            "{sent}"
        );
        assert!(!sent.contains("s3cret-value"), "{sent}");
    }

    /// NO_PROXY judged as curl 8 judges it (lib/proxy.c and its unit test
    /// 1614): names and the names under them, a dot at either end and case
    /// ignored; addresses exactly or by CIDR range; "*" alone, all.
    #[test]
    fn no_proxy_covers_hosts_as_curl_does() {
        let yes = [
            ("127.0.0.1", "127.0.0.1"),
            ("localhost", "localhost"),
            ("LOCALHOST", "localhost"),
            ("a.b.example.com", "example.com"),
            ("a.example.com", ".example.com"),
            ("example.com.", "example.com"),
            ("example.com", "example.com."),
            ("collector", "x, y ,collector"),
            ("collector", "x,,collector"),
            ("10.1.2.3", "10.0.0.0/8"),
            ("192.168.0.1", "192.168.0.0/24"),
            ("::1", "::1"),
            ("fe80::1", "fe80::/10"),
            ("anything", "*"),
        ];
        for (host, list) in yes {
            assert!(no_proxy_covers(list, host), "{list} covers {host}");
        }
        let no = [
            ("myexample.com", "example.com"),
            ("example.com", "a.example.com"),
            ("127.0.0.2", "127.0.0.1"),
            ("127.0.0.1", "localhost"),
            ("11.0.0.1", "10.0.0.0/8"),
            ("10.0.0.1", "10.0.0.0/x"),
            ("::2", "::1"),
            ("host", "*,other"),
            ("host", ""),
        ];
        for (host, list) in no {
            assert!(!no_proxy_covers(list, host), "{list} does not cover {host}");
        }
        assert_eq!(url_host("http://u:p@[::1]:4317/v1/traces"), Some("::1"));
        assert_eq!(url_host("https://Collector:4318"), Some("Collector"));
        assert_eq!(url_host("http://127.0.0.1/v1/traces"), Some("127.0.0.1"));
    }

    /// A proxy from the environment is named when the request failed on
    /// it: curl says "over proxy", not which variable set it.
    #[test]
    fn a_proxy_from_the_environment_is_named() {
        let set = |names: &'static [&'static str]| {
            move |n: &str| {
                names
                    .contains(&n)
                    .then(|| std::ffi::OsString::from("http://p:1"))
            }
        };
        assert_eq!(
            proxy_variable("https://c:4318/v1/traces", set(&["HTTPS_PROXY"])),
            Some("HTTPS_PROXY")
        );
        // curl reads http_proxy in lower case alone.
        assert_eq!(
            proxy_variable("http://c:4318/v1/traces", set(&["HTTP_PROXY"])),
            None
        );
        assert_eq!(
            proxy_variable("http://c:4318/v1/traces", set(&["ALL_PROXY"])),
            Some("ALL_PROXY")
        );
        // NO_PROXY goes around it for the hosts it covers.
        let with_no_proxy = |list: &'static str| {
            move |n: &str| match n {
                "https_proxy" => Some(std::ffi::OsString::from("http://p:1")),
                "NO_PROXY" => Some(std::ffi::OsString::from(list)),
                _ => None,
            }
        };
        let url = "https://api.example.com:4318/v1/traces";
        assert_eq!(proxy_variable(url, with_no_proxy("example.com")), None);
        assert_eq!(
            proxy_variable_set(url, with_no_proxy("example.com")),
            Some("https_proxy")
        );
        assert_eq!(
            proxy_variable(url, with_no_proxy("myexample.com")),
            Some("https_proxy")
        );
        assert_eq!(
            no_proxy_covering(url, with_no_proxy("*")),
            Some(("NO_PROXY", "*".to_string()))
        );
        assert_eq!(url_port("http://u:p@[::1]:4317/v1/traces"), Some(4317));
        assert_eq!(url_port("https://collector/v1/traces"), Some(443));
        assert_eq!(url_path("http://c:4318?x=/v1"), "");
    }
}
