//! OTLP/HTTP over one long-lived curl handle: keep-alive, so a steady stream
//! of batches reuses one connection.

use std::time::Duration;

use curl::easy::{Easy2, Handler, List, WriteError};

use super::transport::{Accepted, BodyFormat, SendError, Transport};

/// Collects what the server answers.
#[derive(Default)]
struct Response {
    body: Vec<u8>,
    retry_after: Option<String>,
}

impl Handler for Response {
    fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        // A misbehaving server must not make us hold megabytes.
        if self.body.len() < 64 * 1024 {
            self.body.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn header(&mut self, data: &[u8]) -> bool {
        if let Ok(line) = std::str::from_utf8(data)
            && let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("retry-after")
        {
            self.retry_after = Some(value.trim().to_string());
        }
        true
    }
}

pub struct HttpTransport {
    url: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
    easy: Option<Easy2<Response>>,
}

impl HttpTransport {
    pub fn new(url: &str, headers: &[(String, String)], timeout: Duration) -> HttpTransport {
        HttpTransport {
            url: url.to_string(),
            headers: headers.to_vec(),
            timeout,
            easy: None,
        }
    }

    fn handle(&mut self) -> Result<&mut Easy2<Response>, curl::Error> {
        if self.easy.is_none() {
            let mut easy = Easy2::new(Response::default());
            easy.url(&self.url)?;
            easy.post(true)?;
            easy.timeout(self.timeout)?;
            easy.connect_timeout(self.timeout.min(Duration::from_secs(5)))?;
            // Signals are the host's: curl must not install SIGALRM/SIGPIPE
            // handlers of its own in a library.
            easy.signal(false)?;
            easy.tcp_nodelay(true)?;
            easy.useragent(concat!("spanguard/", env!("CARGO_PKG_VERSION")))?;
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
        for (k, v) in &self.headers {
            list.append(&format!("{k}: {v}"))?;
        }
        let easy = self.handle()?;
        easy.get_mut().body.clear();
        easy.get_mut().retry_after = None;
        easy.http_headers(list)?;
        easy.post_fields_copy(body)?;
        easy.perform()?;
        easy.response_code()
    }
}

impl Transport for HttpTransport {
    fn send(
        &mut self,
        body: &[u8],
        format: BodyFormat,
        gzipped: bool,
    ) -> Result<Accepted, SendError> {
        let code = match self.perform(body, format, gzipped) {
            Ok(code) => code,
            Err(e) => {
                // Drop the handle: the connection may be half-dead.
                self.easy = None;
                let reason = format!("{}: {}", self.url, e.description());
                return Err(if e.is_url_malformed() || e.is_unsupported_protocol() {
                    SendError::Permanent { reason }
                } else {
                    SendError::Transient {
                        reason,
                        retry_after: None,
                    }
                });
            }
        };
        let response = self
            .easy
            .as_ref()
            .expect("perform succeeded on this handle")
            .get_ref();
        classify(
            code,
            &response.body,
            response.retry_after.as_deref(),
            format,
        )
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

/// Turns an HTTP answer into an outcome, per the OTLP/HTTP spec: 2xx is
/// success (maybe partial), 429/502/503/504 are worth retrying (honouring
/// Retry-After), every other code is final.
pub fn classify(
    code: u32,
    body: &[u8],
    retry_after: Option<&str>,
    format: BodyFormat,
) -> Result<Accepted, SendError> {
    match code {
        200..=299 => Ok(super::partial_success::parse(body, format)),
        429 | 502 | 503 | 504 => Err(SendError::Transient {
            reason: format!("HTTP {code}"),
            retry_after: retry_after.and_then(super::retry::parse_retry_after),
        }),
        _ => Err(SendError::Permanent {
            reason: format!(
                "HTTP {code}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        }),
    }
}
