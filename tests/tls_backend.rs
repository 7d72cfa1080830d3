//! The HTTP transport against a real TLS server on loopback (OpenSSL, the
//! library libcurl itself uses), with certificates made at test time: a
//! certificate the default verification refuses (self-signed, another
//! host's, expired), then the CA given; a server that wants a client
//! certificate; the protocols offered by ALPN; a server that stalls in
//! the handshake, one that cuts its answer without close_notify, one that
//! answers plain HTTP on the https port, one that sends a TLS alert. Each
//! checks what the user is told and what becomes of the spans. No test
//! reaches past loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{AlpnError, SslAcceptor, SslMethod, SslStream, SslVerifyMode};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};

use spanguard::config::{Compression, TlsFiles, TracerConfig};
use spanguard::export::http::HttpTransport;
use spanguard::export::otlp_decode::decode_body;
use spanguard::export::transport::{Accepted, BodyFormat, SendError, Silence, Transport};

mod support;

/// A key and the certificate that goes with it.
struct Identity {
    key: PKey<Private>,
    cert: X509,
}

fn new_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    PKey::from_ec_key(EcKey::generate(&group).expect("key")).expect("pkey")
}

/// A certificate for `name` signed by `issuer` (self-signed when None),
/// valid from `days.0` to `days.1` days from now, naming `hosts` (IP
/// addresses or DNS names) as its subject's alternative names.
fn certificate(
    name: &str,
    issuer: Option<&Identity>,
    ca: bool,
    hosts: &[&str],
    days: (i64, i64),
    client: bool,
) -> Identity {
    let key = new_key();
    let mut subject = X509NameBuilder::new().expect("name");
    subject.append_entry_by_text("CN", name).expect("CN");
    let subject = subject.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("v3");
    let mut serial = BigNum::new().expect("bn");
    serial.rand(64, MsbOption::MAYBE_ZERO, false).expect("rand");
    b.set_serial_number(&serial.to_asn1_integer().expect("serial"))
        .expect("serial");
    b.set_subject_name(&subject).expect("subject");
    b.set_issuer_name(issuer.map_or(&subject, |i| i.cert.subject_name()))
        .expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    b.set_not_before(&Asn1Time::from_unix(now + days.0 * 86_400).expect("time"))
        .expect("not before");
    b.set_not_after(&Asn1Time::from_unix(now + days.1 * 86_400).expect("time"))
        .expect("not after");
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
            .expect("bc");
    } else {
        let mut san = SubjectAlternativeName::new();
        for h in hosts {
            if h.parse::<std::net::IpAddr>().is_ok() {
                san.ip(h);
            } else {
                san.dns(h);
            }
        }
        let san = san.build(&b.x509v3_context(issuer.map(|i| &*i.cert), None));
        b.append_extension(san.expect("san")).expect("san");
        let mut usage = ExtendedKeyUsage::new();
        if client {
            usage.client_auth();
        } else {
            usage.server_auth();
        }
        b.append_extension(usage.build().expect("eku"))
            .expect("eku");
    }
    let signer = issuer.map_or(&key, |i| &i.key);
    b.sign(signer, MessageDigest::sha256()).expect("sign");
    Identity {
        key,
        cert: b.build(),
    }
}

/// A test CA, with a server certificate for 127.0.0.1 and a client
/// certificate it signed, written as PEM files in a directory of their own.
struct Pki {
    dir: PathBuf,
    ca: Identity,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("sg-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ca = certificate("spanguard test CA", None, true, &[], (-1, 30), false);
        std::fs::write(dir.join("ca.pem"), ca.cert.to_pem().expect("pem")).expect("write");
        Pki { dir, ca }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A server certificate this CA signed for `hosts`, valid `days`.
    fn server(&self, hosts: &[&str], days: (i64, i64)) -> Identity {
        certificate("server", Some(&self.ca), false, hosts, days, false)
    }

    /// A client certificate this CA signed, written as `client.pem` and
    /// `client.key`: the TLS files a sender is given for mutual TLS.
    fn client_files(&self) -> TlsFiles {
        let client = certificate("client", Some(&self.ca), false, &[], (-1, 30), true);
        let (cert, key) = (self.dir.join("client.pem"), self.dir.join("client.key"));
        std::fs::write(&cert, client.cert.to_pem().expect("pem")).expect("write");
        std::fs::write(&key, client.key.private_key_to_pem_pkcs8().expect("pem")).expect("write");
        TlsFiles {
            certificate: Some(self.ca_file()),
            client_certificate: Some(cert),
            client_key: Some(key),
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// What a TLS server does once the handshake is over: reads requests
/// and answers them.
type Serve = dyn Fn(&mut SslStream<TcpStream>, &Mutex<Seen>) + Send + Sync;

/// What the server saw.
#[derive(Default)]
struct Seen {
    /// The protocols each client offered by ALPN, as offered.
    alpn: Vec<Vec<String>>,
    /// Handshakes that completed.
    handshakes: u64,
    /// The names of the spans in every request read whole.
    spans: Vec<String>,
}

/// How the TLS server is set up.
struct ServerSetup {
    identity: Identity,
    /// The CA a client's certificate must come from: mutual TLS.
    client_ca: Option<X509>,
    /// Refuse every ALPN offer with a fatal alert (no_application_protocol),
    /// as a gRPC server does to a client that does not offer h2.
    refuse_alpn: bool,
    /// After a failed handshake, close at once, the client's request
    /// unread (the kernel then resets the connection, and the alert sent
    /// may be lost); otherwise read what the client sends until it
    /// closes, so that it reads the alert.
    abrupt: bool,
}

impl ServerSetup {
    /// A server showing `identity`, asking nothing of the client.
    fn showing(identity: Identity) -> ServerSetup {
        ServerSetup {
            identity,
            client_ca: None,
            refuse_alpn: false,
            abrupt: false,
        }
    }
}

/// A server showing `identity` that takes every request (200).
fn taking(identity: Identity) -> (String, Arc<Mutex<Seen>>) {
    tls_server(ServerSetup::showing(identity), answering(OK))
}

/// A TLS server on loopback; returns its https URL (for 127.0.0.1) and
/// what it saw.
fn tls_server(setup: ServerSetup, serve: Arc<Serve>) -> (String, Arc<Mutex<Seen>>) {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("acceptor");
    b.set_private_key(&setup.identity.key).expect("key");
    b.set_certificate(&setup.identity.cert).expect("cert");
    if let Some(ca) = &setup.client_ca {
        let mut store = openssl::x509::store::X509StoreBuilder::new().expect("store");
        store.add_cert(ca.clone()).expect("ca");
        b.set_verify_cert_store(store.build()).expect("store");
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let offers = Arc::clone(&seen);
    let (refuse, abrupt) = (setup.refuse_alpn, setup.abrupt);
    b.set_alpn_select_callback(move |_, offered| {
        let mut names = Vec::new();
        let mut rest = offered;
        while let Some((&n, tail)) = rest.split_first() {
            let n = usize::from(n).min(tail.len());
            names.push(String::from_utf8_lossy(&tail[..n]).into_owned());
            rest = &tail[n..];
        }
        offers.lock().unwrap().alpn.push(names);
        if refuse {
            return Err(AlpnError::ALERT_FATAL);
        }
        // HTTP/1.1 when offered; a client that offers nothing else gets it.
        openssl::ssl::select_next_proto(b"\x08http/1.1", offered).ok_or(AlpnError::NOACK)
    });
    let acceptor = Arc::new(b.build());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("https://{}/v1/traces", listener.local_addr().unwrap());
    let seen_by_server = Arc::clone(&seen);
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (acceptor, serve, seen) = (
                Arc::clone(&acceptor),
                Arc::clone(&serve),
                Arc::clone(&seen_by_server),
            );
            thread::spawn(move || {
                let mut tls = match acceptor.accept(conn) {
                    Ok(tls) => tls,
                    Err(openssl::ssl::HandshakeError::Failure(mid)) if !abrupt => {
                        let mut raw = mid.get_ref();
                        let _ = raw.set_read_timeout(Some(Duration::from_secs(10)));
                        let _ = std::io::copy(&mut raw, &mut std::io::sink());
                        return;
                    }
                    Err(_) => return,
                };
                seen.lock().unwrap().handshakes += 1;
                serve(&mut tls, &seen);
            });
        }
    });
    (url, seen)
}

/// Reads one HTTP/1.1 request's body (None at the connection's end).
fn read_request(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut length = 0usize;
    let mut first = true;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() && !first {
            break;
        }
        first = false;
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

/// Reads each request, records its spans, and answers it with `answer`
/// (the whole of what is written back).
fn answering(answer: &'static [u8]) -> Arc<Serve> {
    answering_with(move || answer)
}

/// As `answering`, with what `answer` gives at each request: a server
/// that is down for a while (503), then takes requests.
fn answering_with(answer: impl Fn() -> &'static [u8] + Send + Sync + 'static) -> Arc<Serve> {
    Arc::new(move |tls, seen| {
        loop {
            let body = {
                let mut reader = BufReader::new(&mut *tls);
                let Some(body) = read_request(&mut reader) else {
                    return;
                };
                body
            };
            if let Ok(spans) = decode_body(&body, BodyFormat::Protobuf, false) {
                let mut s = seen.lock().unwrap();
                s.spans.extend(spans.into_iter().map(|s| s.name));
            }
            if tls.write_all(answer()).is_err() {
                return;
            }
        }
    })
}

const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";

const UNAVAILABLE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";

fn good_server(pki: &Pki) -> (String, Arc<Mutex<Seen>>) {
    taking(pki.server(&["127.0.0.1", "localhost"], (-1, 30)))
}

fn transport(url: &str, tls: &TlsFiles, timeout: Duration) -> HttpTransport {
    HttpTransport::new(url, &[], tls, timeout, Arc::new(AtomicU64::new(0)))
}

/// One request of OTLP/JSON (an empty one: what the transport makes of the
/// TLS is what is tested), its outcome, the transport's silence and hint.
fn send(
    url: &str,
    tls: &TlsFiles,
    timeout: Duration,
) -> (Result<Accepted, SendError>, Silence, Option<String>) {
    let mut t = transport(url, tls, timeout);
    let outcome = t.send(br#"{"resourceSpans":[]}"#, BodyFormat::Json, false);
    (outcome, t.silence(), t.last_hint().map(str::to_string))
}

fn with_ca(pki: &Pki) -> TlsFiles {
    TlsFiles {
        certificate: Some(pki.ca_file()),
        ..TlsFiles::default()
    }
}

#[test]
fn a_server_certificate_from_the_ca_given_is_accepted() {
    let pki = Pki::new("good");
    let (url, seen) = good_server(&pki);
    let (outcome, _, _) = send(&url, &with_ca(&pki), Duration::from_secs(10));
    assert_eq!(outcome, Ok(Accepted::default()));
    assert_eq!(seen.lock().unwrap().handshakes, 1);
}

#[test]
fn only_http_1_1_is_offered_by_alpn() {
    // Every OTLP/HTTP server takes HTTP/1.1; the transport reads answers
    // as HTTP/1.1 (status lines, headers cut short, answers without a
    // status line), one request at a time: HTTP/2 gains it nothing.
    let pki = Pki::new("alpn");
    let (url, seen) = good_server(&pki);
    let (outcome, _, _) = send(&url, &with_ca(&pki), Duration::from_secs(10));
    assert_eq!(outcome, Ok(Accepted::default()));
    assert_eq!(
        seen.lock().unwrap().alpn,
        vec![vec!["http/1.1".to_string()]]
    );
}

/// A refusal that waits for a sender set up otherwise (`Misdirected`):
/// what a certificate the sender's TLS settings do not trust gets, as a
/// 401 does, with its reason.
fn misdirected(outcome: &Result<Accepted, SendError>) -> &str {
    match outcome {
        Err(SendError::Misdirected { reason }) => reason,
        other => panic!("not kept for a sender set up otherwise: {other:?}"),
    }
}

#[test]
fn a_self_signed_certificate_is_refused_for_the_sender_and_said_so() {
    let pki = Pki::new("selfsigned");
    let (url, seen) = taking(certificate(
        "self",
        None,
        false,
        &["127.0.0.1"],
        (-1, 30),
        false,
    ));
    let (outcome, silence, hint) = send(&url, &TlsFiles::default(), Duration::from_secs(10));
    let reason = misdirected(&outcome);
    assert!(
        reason.contains("TLS certificate verification failed"),
        "{reason}"
    );
    assert!(
        reason.contains("self-signed") || reason.contains("self signed"),
        "{reason}"
    );
    assert_eq!(silence, Silence::Answered);
    let hint = hint.expect("a hint");
    assert!(hint.contains("OTEL_EXPORTER_OTLP_CERTIFICATE"), "{hint}");
    assert!(seen.lock().unwrap().spans.is_empty());
    drop(pki);
}

#[test]
fn a_certificate_from_an_unknown_ca_is_refused_for_the_sender() {
    let pki = Pki::new("unknownca");
    let (url, _) = good_server(&pki);
    let (outcome, _, hint) = send(&url, &TlsFiles::default(), Duration::from_secs(10));
    let reason = misdirected(&outcome);
    assert!(
        reason.contains("TLS certificate verification failed"),
        "{reason}"
    );
    assert!(hint.is_some_and(|h| h.contains("OTEL_EXPORTER_OTLP_CERTIFICATE")));
}

#[test]
fn another_hosts_certificate_is_refused_for_the_sender() {
    let pki = Pki::new("wronghost");
    let (url, _) = taking(pki.server(&["collector.example"], (-1, 30)));
    let (outcome, _, _) = send(&url, &with_ca(&pki), Duration::from_secs(10));
    let reason = misdirected(&outcome);
    assert!(
        reason.contains("TLS certificate verification failed"),
        "{reason}"
    );
    assert!(
        reason.contains("127.0.0.1"),
        "names the host asked for: {reason}"
    );
}

#[test]
fn an_expired_certificate_is_tried_again_for_the_server_may_renew_it() {
    // The sender's settings cannot fix it; the server's renewal does, and
    // then this sender delivers what it kept.
    let pki = Pki::new("expired");
    let (url, _) = taking(pki.server(&["127.0.0.1"], (-30, -1)));
    let (outcome, silence, _) = send(&url, &with_ca(&pki), Duration::from_secs(10));
    match &outcome {
        Err(SendError::Transient { reason, .. }) => {
            assert!(
                reason.contains("TLS certificate verification failed")
                    && reason.contains("expired"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(silence, Silence::Answered);
}

/// A server that requires a client certificate from `pki`'s CA.
fn mutual_tls_server(pki: &Pki, abrupt: bool) -> (String, Arc<Mutex<Seen>>) {
    tls_server(
        ServerSetup {
            client_ca: Some(pki.ca.cert.clone()),
            abrupt,
            ..ServerSetup::showing(pki.server(&["127.0.0.1"], (-1, 30)))
        },
        answering(OK),
    )
}

#[test]
fn mutual_tls_without_a_client_certificate_is_refused_for_the_sender_and_with_one_delivers() {
    let pki = Pki::new("mtls");
    let (url, seen) = mutual_tls_server(&pki, false);
    let (outcome, silence, hint) = send(&url, &with_ca(&pki), Duration::from_secs(10));
    let reason = misdirected(&outcome);
    assert!(reason.contains("client certificate"), "{reason}");
    assert_eq!(silence, Silence::Answered, "a server answered: {reason}");
    let hint = hint.expect("a hint");
    assert!(
        hint.contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
        "{hint}"
    );

    let (outcome, _, _) = send(&url, &pki.client_files(), Duration::from_secs(10));
    assert_eq!(outcome, Ok(Accepted::default()));
    assert_eq!(seen.lock().unwrap().handshakes, 1);
}

#[test]
fn mutual_tls_refused_by_a_reset_names_the_client_certificate() {
    // The server's alert lost to the reset of its close: curl says
    // "Connection reset by peer" alone. The spans are kept either way.
    let pki = Pki::new("mtls-reset");
    let (url, _) = mutual_tls_server(&pki, true);
    let (outcome, _, hint) = send(&url, &with_ca(&pki), Duration::from_secs(10));
    assert!(
        matches!(
            outcome,
            Err(SendError::Transient { .. } | SendError::Misdirected { .. })
        ),
        "{outcome:?}"
    );
    let hint = hint.expect("a hint");
    assert!(
        hint.contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
        "{hint}"
    );
    assert!(
        outcome
            .unwrap_err()
            .reason()
            .contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")
    );
}

/// Kept for another try. What cut the handshake short is the transport's
/// own record (`Silence::TimedOut`, `Silence::Deadline`), checked by the
/// callers; the bound on time is a hang guard only (the timeout and the
/// deadline are 1 s; a handshake that never ends would hold it for good,
/// or for the 60 s timeout), not a measure.
fn kept_in_time(outcome: &Result<Accepted, SendError>, started: Instant) {
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "hung: the send returned after {:?}",
        started.elapsed()
    );
    assert!(
        matches!(outcome, Err(SendError::Transient { .. })),
        "{outcome:?}"
    );
}

#[test]
fn a_server_that_stalls_in_the_handshake_costs_no_more_than_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("https://{}/v1/traces", listener.local_addr().unwrap());
    // Takes connections and never answers the client's hello.
    thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let started = Instant::now();
    let (outcome, silence, _) = send(&url, &TlsFiles::default(), Duration::from_secs(1));
    kept_in_time(&outcome, started);
    assert_eq!(silence, Silence::TimedOut);

    // A flush's deadline nearer than the timeout abandons it there.
    let mut t = HttpTransport::new(
        &url,
        &[],
        &TlsFiles::default(),
        Duration::from_secs(60),
        Arc::new(AtomicU64::new(
            spanguard::span::clock::monotonic_ns() + 1_000_000_000,
        )),
    );
    let started = Instant::now();
    let outcome = t.send(b"{}", BodyFormat::Json, false);
    kept_in_time(&outcome, started);
    assert_eq!(t.silence(), Silence::Deadline);
}

#[test]
fn a_200_cut_without_close_notify_is_the_answer_and_a_503_so_cut_is_kept() {
    // The status line and headers came whole, then the body ended at a
    // connection closed with no close_notify (a truncation): the status
    // is the server's verdict, as for a plain connection cut mid-body.
    let pki = Pki::new("truncated");
    let cut = |head: &'static [u8]| -> Arc<Serve> {
        Arc::new(move |tls, _| {
            let mut reader = BufReader::new(&mut *tls);
            if read_request(&mut reader).is_none() {
                return;
            }
            let _ = tls.write_all(head);
            let _ = tls.write_all(b"{\"partialSuccess\":");
            let _ = tls.flush();
            // Closed under the TLS session: no close_notify.
            let _ = tls.get_ref().shutdown(std::net::Shutdown::Both);
        })
    };
    let setup = || ServerSetup::showing(pki.server(&["127.0.0.1"], (-1, 30)));
    let (url, _) = tls_server(
        setup(),
        cut(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"),
    );
    let (outcome, _, _) = send(&url, &with_ca(&pki), Duration::from_secs(10));
    assert_eq!(outcome.map(|a| a.rejected_spans), Ok(0));

    let (url, _) = tls_server(
        setup(),
        cut(b"HTTP/1.1 503 Busy\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"),
    );
    let (outcome, silence, _) = send(&url, &with_ca(&pki), Duration::from_secs(10));
    assert!(
        matches!(outcome, Err(SendError::Transient { .. })),
        "{outcome:?}"
    );
    assert_eq!(silence, Silence::Answered);
}

#[test]
fn plain_http_on_the_https_port_is_named() {
    // A plain HTTP server (a Collector's 4318 without TLS) answers the
    // client's hello, which is no request, with a 400.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("https://{}/v1/traces", listener.local_addr().unwrap());
    thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut hello = [0u8; 512];
            let _ = conn.read(&mut hello);
            let _ = conn.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    });
    let (outcome, _, hint) = send(&url, &TlsFiles::default(), Duration::from_secs(10));
    assert!(
        matches!(outcome, Err(SendError::Transient { .. })),
        "{outcome:?}"
    );
    let hint = hint.expect("a hint");
    assert!(hint.contains("use an http:// endpoint"), "{hint}");
}

#[test]
fn a_tls_alert_is_said_and_tried_again() {
    // A server that ends the handshake with a fatal alert (here
    // no_application_protocol, what a gRPC server sends a client that does
    // not offer h2): no HTTP answer, kept.
    let pki = Pki::new("alert");
    let (url, seen) = tls_server(
        ServerSetup {
            refuse_alpn: true,
            ..ServerSetup::showing(pki.server(&["127.0.0.1"], (-1, 30)))
        },
        answering(OK),
    );
    let (outcome, _, hint) = send(&url, &with_ca(&pki), Duration::from_secs(10));
    match &outcome {
        Err(SendError::Transient { reason, .. }) => {
            assert!(reason.contains("TLS handshake failed"), "{reason}");
            assert!(
                reason.contains("alert"),
                "curl's words name the alert: {reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    let hint = hint.expect("a hint");
    assert!(hint.contains("4318"), "{hint}");
    assert_eq!(seen.lock().unwrap().handshakes, 0);
}

/// One run of a process (`support::run_once`) to `url` with `tls`.
fn run(
    name: &str,
    url: &str,
    tls: TlsFiles,
    prefix: &str,
    spans: usize,
) -> spanguard::stats::StatsSnapshot {
    let config = TracerConfig {
        tls,
        compression: Compression::None,
        schedule_delay: Duration::from_millis(50),
        ..TracerConfig::default()
    };
    support::run_once(name, url, config, prefix, spans)
}

fn remove(dir: &Path) {
    std::fs::remove_dir_all(dir).ok();
}

/// The directory of a test's tracer (`support::tracer_in` names it: its
/// spool), with nothing a run before left in it.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sg-{name}-{}", std::process::id()));
    remove(&dir);
    dir
}

/// The certificates of `cas` written to `path` as one bundle, and the TLS
/// settings that name it the sender's CA file.
fn ca_bundle(path: &Path, cas: &[&Pki]) -> TlsFiles {
    let pems: Vec<Vec<u8>> = cas
        .iter()
        .map(|ca| std::fs::read(ca.ca_file()).expect("read"))
        .collect();
    std::fs::write(path, pems.concat()).expect("write");
    TlsFiles {
        certificate: Some(path.to_path_buf()),
        ..TlsFiles::default()
    }
}

/// The spans kept (`kept`: their names' prefix and number) and the ones
/// ended later (`later`) arrived, each once, by a sender whose `stats`
/// count the later ones exported and the kept ones replayed, and the
/// spool in `dir` is left empty (then removed).
#[track_caller]
fn kept_and_later_arrived(
    stats: &spanguard::stats::StatsSnapshot,
    seen: &Mutex<Seen>,
    dir: &Path,
    kept: (&str, usize),
    later: (&str, usize),
) {
    assert_eq!(stats.spans_exported, later.1 as u64, "{stats:?}");
    assert_eq!(stats.replayed_spans, kept.1 as u64, "{stats:?}");
    let mut all = support::numbered(kept.0, kept.1);
    all.extend(support::numbered(later.0, later.1));
    all.sort();
    assert_eq!(support::sorted_once_each(&seen.lock().unwrap().spans), all);
    assert!(support::spool_files(&dir.join("spool")).is_empty());
    remove(dir);
}

/// A first run's `stats`: its `spans` kept, none delivered, the server
/// given none.
#[track_caller]
fn all_kept(stats: &spanguard::stats::StatsSnapshot, seen: &Mutex<Seen>, spans: u64) {
    assert_eq!(stats.spooled_spans, spans, "{stats:?}");
    assert_eq!(stats.spans_exported, 0, "{stats:?}");
    assert!(seen.lock().unwrap().spans.is_empty());
}

#[test]
fn spans_kept_for_an_untrusted_certificate_arrive_once_the_ca_is_given() {
    let name = "tls-untrusted";
    let dir = fresh_dir(name);
    let pki = Pki::new(name);
    let (url, seen) = good_server(&pki);

    // The first run trusts only the system's CAs: nothing is delivered,
    // every span is kept.
    let first = run(name, &url, TlsFiles::default(), "first", 20);
    all_kept(&first, &seen, 20);

    // The CA given: the next run delivers its own spans and the kept
    // ones, once each.
    let fixed = run(name, &url, with_ca(&pki), "fixed", 3);
    kept_and_later_arrived(&fixed, &seen, &dir, ("first", 20), ("fixed", 3));
}

/// The usual fix for an untrusted certificate is a CA file replaced in
/// place (a renewed bundle at the same path, a mounted secret rotated):
/// the sender's fingerprint covered the file's path alone, so the next
/// tracer, set up with the same path and now trusting the server, was
/// "the sender refused" and left the kept spans for `spanguard replay
/// --sender`. It covers what the file holds now.
#[test]
fn spans_refused_for_a_ca_file_replaced_in_place_arrive_with_the_new_ca() {
    let name = "tls-replaced-ca";
    let dir = fresh_dir(name);
    let right = Pki::new(name);
    let wrong = Pki::new("tls-replaced-ca-wrong");
    let (url, seen) = good_server(&right);
    let bundle = right.dir.join("bundle.pem");
    let tls = ca_bundle(&bundle, &[&wrong]);

    // Another CA than the server's: refused, every span kept.
    let first = run(name, &url, tls.clone(), "first", 20);
    all_kept(&first, &seen, 20);

    // The right CA written over the same file: the next run delivers its
    // own spans and the kept ones, once each.
    std::fs::copy(right.ca_file(), &bundle).expect("copy");
    let fixed = run(name, &url, tls, "fixed", 3);
    kept_and_later_arrived(&fixed, &seen, &dir, ("first", 20), ("fixed", 3));
}

/// What a file holds decides a refusal, not whose spans a file keeps: a
/// CA bundle renewed in place between two runs (cert-manager rotating a
/// mounted secret) leaves the spans an outage kept to the next run, which
/// sends to the same endpoint with the same settings. Had the file's
/// bytes named the files' destination too, each renewal stranded them
/// for `spanguard replay`.
#[test]
fn spans_kept_through_an_outage_arrive_after_the_ca_bundle_is_renewed_in_place() {
    let name = "tls-renewed-ca";
    let dir = fresh_dir(name);
    let pki = Pki::new(name);
    let other = Pki::new("tls-renewed-ca-other");
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let serve = {
        let up = Arc::clone(&up);
        answering_with(move || {
            if up.load(std::sync::atomic::Ordering::SeqCst) {
                OK
            } else {
                UNAVAILABLE
            }
        })
    };
    let (url, seen) = tls_server(
        ServerSetup::showing(pki.server(&["127.0.0.1", "localhost"], (-1, 30))),
        serve,
    );
    let bundle = pki.dir.join("bundle.pem");
    let tls = ca_bundle(&bundle, &[&pki, &other]);
    let config = |tls: TlsFiles| TracerConfig {
        tls,
        compression: Compression::None,
        schedule_delay: Duration::from_millis(50),
        export_timeout: Duration::from_millis(500),
        ..TracerConfig::default()
    };

    // The backend down (503): every span kept.
    let first = support::run_once(name, &url, config(tls.clone()), "first", 20);
    assert_eq!(first.spooled_spans, 20, "{first:?}");
    assert_eq!(first.spans_exported, 0, "{first:?}");

    // The bundle renewed (the other CA dropped), the backend back.
    std::fs::copy(pki.ca_file(), &bundle).expect("copy");
    // The server read the spans it answered 503: only those it takes now
    // count.
    seen.lock().unwrap().spans.clear();
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    let next = support::run_once(name, &url, config(tls), "next", 3);
    kept_and_later_arrived(&next, &seen, &dir, ("first", 20), ("next", 3));
}

/// A CA file as Kubernetes mounts a secret's (and cert-manager renews
/// it): `ca.pem` a link to `..data/ca.pem`, `..data` a link to the
/// directory of the version now, which a renewal replaces at once by
/// renaming a new link over it, the old version then removed. The file's
/// path never changes; the file it names does.
struct MountedSecret {
    dir: PathBuf,
    version: u32,
}

impl MountedSecret {
    fn new(dir: PathBuf, ca: &Pki) -> MountedSecret {
        std::fs::create_dir_all(&dir).expect("dir");
        let secret = MountedSecret { dir, version: 0 };
        secret.write_version(ca);
        std::os::unix::fs::symlink("..v0", secret.dir.join("..data")).expect("link");
        std::os::unix::fs::symlink("..data/ca.pem", secret.ca_file()).expect("link");
        secret
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn write_version(&self, ca: &Pki) {
        let version = self.dir.join(format!("..v{}", self.version));
        std::fs::create_dir(&version).expect("dir");
        std::fs::copy(ca.ca_file(), version.join("ca.pem")).expect("copy");
    }

    /// The secret renewed to hold `ca`'s certificate.
    fn renew(&mut self, ca: &Pki) {
        let old = self.dir.join(format!("..v{}", self.version));
        self.version += 1;
        self.write_version(ca);
        let link = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(format!("..v{}", self.version), &link).expect("link");
        std::fs::rename(&link, self.dir.join("..data")).expect("swap");
        std::fs::remove_dir_all(old).expect("old version");
    }
}

/// How a running sender's CA file is renewed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Renewal {
    /// The right CA written over the file (the same inode).
    InPlace,
    /// Its mounted secret's directory swapped (`MountedSecret`).
    SecretSwapped,
}

/// Waits (30 s at most: a generous bound for a loaded machine, not a
/// measure) until the server took `spans` spans.
fn wait_for_spans(seen: &Mutex<Seen>, spans: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().spans.len() < spans && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
}

/// A running tracer refused for its CA (another than the server's), then
/// its CA file renewed as `renewal` says: the spans refused and those
/// ended after arrive from this process, once each, with no restart. They
/// waited for the next process (or `spanguard replay`): the sender's
/// refusal mark covered what its TLS files held as it was made, so it
/// never sent the spans it was refused again, and curl may keep a CA
/// file's certificates for a day (its CA cache).
fn refused_spans_arrive_once_the_ca_is_renewed_while_running(name: &str, renewal: Renewal) {
    let dir = fresh_dir(name);
    let right = Pki::new(name);
    let wrong = Pki::new(&format!("{name}-wrong"));
    let (url, seen) = good_server(&right);
    let mut secret = None;
    let tls = match renewal {
        Renewal::InPlace => ca_bundle(&right.dir.join("bundle.pem"), &[&wrong]),
        Renewal::SecretSwapped => {
            let mounted = MountedSecret::new(right.dir.join("secret"), &wrong);
            let tls = TlsFiles {
                certificate: Some(mounted.ca_file()),
                ..TlsFiles::default()
            };
            secret = Some(mounted);
            tls
        }
    };
    let config = TracerConfig {
        tls: tls.clone(),
        compression: Compression::None,
        schedule_delay: Duration::from_millis(50),
        ..TracerConfig::default()
    };
    let (tracer, _) = support::tracer_to(name, &url, config);

    // Another CA than the server's: refused, every span kept.
    support::end_numbered(&tracer, "refused", 20);
    support::flush_done(&tracer, Duration::from_secs(20));
    all_kept(&tracer.stats(), &seen, 20);

    match renewal {
        Renewal::InPlace => {
            let bundle = tls.certificate.as_ref().expect("a CA file");
            std::fs::copy(right.ca_file(), bundle).expect("copy");
        }
        Renewal::SecretSwapped => {
            secret.as_mut().expect("a secret").renew(&right);
            // With no new span to send (nothing connects to find the
            // files renewed), the refused spans go all the same.
            wait_for_spans(&seen, 20);
            assert_eq!(
                seen.lock().unwrap().spans.len(),
                20,
                "the refused spans, with no new one"
            );
        }
    }
    support::end_numbered(&tracer, "renewed", 3);
    support::flush_done(&tracer, Duration::from_secs(20));
    wait_for_spans(&seen, 23);
    let stats = support::flush_and_shut_down(&tracer, name);
    kept_and_later_arrived(&stats, &seen, &dir, ("refused", 20), ("renewed", 3));
}

#[test]
fn spans_refused_arrive_once_the_ca_file_is_written_over_while_the_tracer_runs() {
    refused_spans_arrive_once_the_ca_is_renewed_while_running(
        "tls-renewed-running-in-place",
        Renewal::InPlace,
    );
}

#[test]
fn spans_refused_arrive_once_the_ca_secret_is_swapped_while_the_tracer_runs() {
    refused_spans_arrive_once_the_ca_is_renewed_while_running(
        "tls-renewed-running-secret",
        Renewal::SecretSwapped,
    );
}
