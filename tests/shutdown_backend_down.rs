//! A program whose backend is down when it ends (a collector not started
//! yet: the common first run) must not hang at exit. With the connection
//! refused, a flush or shutdown used to retry with backoff until its
//! deadline (25.8 s of a 30 s shutdown, Go's default, 12 retries: `make
//! build/tests/emit_spans`, then emit_spans --count 5 --shutdown-timeout-ms
//! 30000 against a port nobody listens on); with a backend that accepts and
//! never answers, it waited one request timeout for the flush and another
//! for the spool's replay at the stop. Now the spans go to the spool at
//! once, counted as spooled, and one request timeout at most is spent.
//!
//! Counted, not timed: retries and connections made. The one bound on time
//! (10 s where it took 25.8 s) is loose so that no machine's noise trips it.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spanguard::config::{Compression, TracerConfig};
use spanguard::pipeline::FlushOutcome;
use spanguard::tracer::{Parent, Tracer};

mod support;

fn end_spans(tracer: &Tracer, n: usize) {
    for _ in 0..n {
        let (s, _) = tracer.begin(b"llm.chat", Parent::None, 3).expect("begin");
        tracer.end(s, 0).expect("end");
    }
}

/// A loopback port bound but not listening: a connection is refused at once.
fn closed_port() -> (unlistened::Bound, String) {
    let bound = unlistened::Bound::new();
    let url = format!("http://127.0.0.1:{}/v1/traces", bound.port);
    (bound, url)
}

/// A socket bound without `listen`, with std alone (std's TcpListener
/// always listens).
mod unlistened {
    pub struct Bound {
        fd: libc::c_int,
        pub port: u16,
    }

    impl Bound {
        pub fn new() -> Bound {
            // SAFETY: plain socket calls on a descriptor we own.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                assert!(fd >= 0);
                let mut addr: libc::sockaddr_in = std::mem::zeroed();
                addr.sin_family = libc::AF_INET as libc::sa_family_t;
                addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
                let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                assert_eq!(
                    libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len),
                    0
                );
                let mut got: libc::sockaddr_in = std::mem::zeroed();
                let mut got_len = len;
                assert_eq!(
                    libc::getsockname(fd, &mut got as *mut _ as *mut libc::sockaddr, &mut got_len),
                    0
                );
                Bound {
                    fd,
                    port: u16::from_be(got.sin_port),
                }
            }
        }
    }

    impl Drop for Bound {
        fn drop(&mut self) {
            // SAFETY: our descriptor, closed once.
            unsafe { libc::close(self.fd) };
        }
    }
}

fn config() -> TracerConfig {
    TracerConfig {
        compression: Compression::None,
        // Nothing goes before the flush or shutdown asks for it.
        schedule_delay: Duration::from_secs(60),
        ..TracerConfig::default()
    }
}

#[test]
fn a_shutdown_with_the_connection_refused_spools_at_once_without_retrying() {
    let (_bound, url) = closed_port();
    let (tracer, dir) = support::tracer_to("shutdown-refused", &url, config());
    end_spans(&tracer, 5);
    let started = Instant::now();
    // Go's otelbridge gives a shutdown without a deadline 30 s.
    let outcome = tracer.shutdown(Duration::from_secs(30)).expect("shutdown");
    let took = started.elapsed();
    let stats = tracer.stats();
    assert_eq!(outcome, FlushOutcome::Spooled, "{stats:?}");
    assert_eq!(stats.spooled_spans, 5, "{stats:?}");
    assert_eq!(
        stats.retries, 0,
        "retried a refused connection at shutdown: {stats:?}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}: {stats:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_flush_with_the_connection_refused_spools_at_once_without_retrying() {
    let (_bound, url) = closed_port();
    let (tracer, dir) = support::tracer_to("flush-refused", &url, config());
    end_spans(&tracer, 5);
    // OpenTelemetry SDKs' force_flush default.
    let outcome = tracer.flush(Duration::from_secs(30)).expect("flush");
    let stats = tracer.stats();
    assert_eq!(outcome, FlushOutcome::Spooled, "{stats:?}");
    assert_eq!(stats.spooled_spans, 5, "{stats:?}");
    assert_eq!(
        stats.retries, 0,
        "retried a refused connection at a flush: {stats:?}"
    );
    tracer.shutdown(Duration::from_secs(5)).ok();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_backend_that_never_answers_costs_a_shutdown_one_request() {
    // Accepts every connection and never answers; counts them.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicU64::new(0));
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    {
        let (accepted, held) = (Arc::clone(&accepted), Arc::clone(&held));
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                accepted.fetch_add(1, Ordering::SeqCst);
                held.lock().unwrap().push(conn);
            }
        });
    }
    let (tracer, dir) = support::tracer_to(
        "shutdown-black-hole",
        &url,
        TracerConfig {
            // Lowered from 10 s: the same steps in less time.
            request_timeout: Duration::from_millis(300),
            ..config()
        },
    );
    end_spans(&tracer, 5);
    let outcome = tracer.shutdown(Duration::from_secs(30)).expect("shutdown");
    let stats = tracer.stats();
    assert_eq!(outcome, FlushOutcome::Spooled, "{stats:?}");
    assert_eq!(stats.spooled_spans, 5, "{stats:?}");
    // One request: neither retried at the flush, nor sent again by the
    // spool's replay at the stop.
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "{stats:?}");
    assert_eq!(stats.retries, 0, "{stats:?}");
    std::fs::remove_dir_all(&dir).ok();
}
