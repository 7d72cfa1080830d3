//! A server that takes the empty probe (an ExportTraceServiceRequest with
//! no spans: `Delivery::probe`, the stop's probe) and resets the connection
//! of every request that holds a span, before a byte of answer: to the
//! quick retries of a flush or shutdown it looks like no server at all, to
//! the replay's probe like a backend that is up. Every span still ends up
//! delivered or counted: a shutdown spools them after its quick retries
//! and returns (not looping between resets and probes), and a tracer that
//! lives on sets the file back on each probe's word and splits it at the
//! fifth set-back, its spans counted lost (the server never takes one),
//! none left in the spool, none counted twice. Over loopback HTTP (curl),
//! protobuf and JSON.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use spanguard::config::{Compression, Protocol, TracerConfig};
use spanguard::pipeline::FlushOutcome;

mod support;

/// What the server saw: requests with spans (each reset) and probes
/// (each taken).
#[derive(Default)]
struct Seen {
    resets: AtomicU64,
    probes: AtomicU64,
}

/// The server: 200 to an empty request (protobuf: no body; JSON: `{}`),
/// a reset (SO_LINGER 0, then close) to any other. Its URL.
fn probe_taker(seen: Arc<Seen>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || serve(conn, &seen));
        }
    });
    url
}

fn serve(conn: TcpStream, seen: &Seen) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut writer = conn;
    while let Some(request) = support::read_request(&mut reader) {
        if request.body.is_empty() || request.body == b"{}" {
            seen.probes.fetch_add(1, Ordering::Relaxed);
            let ok = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n\
                      Content-Length: 0\r\n\r\n";
            if writer.write_all(ok.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        seen.resets.fetch_add(1, Ordering::Relaxed);
        support::set_linger_zero(&writer);
        return; // dropped: closed with a reset
    }
}

fn protocols() -> [(Protocol, &'static str); 2] {
    [
        (Protocol::HttpProtobuf, "protobuf"),
        (Protocol::HttpJson, "json"),
    ]
}

/// A shutdown: the flush's request is reset at each of its quick retries
/// (no server, as far as it can tell), then spooled; the stop's probe is
/// taken, and the stop's replay of the file is reset once more. It
/// returns, its spans spooled and counted so, nothing lost.
#[test]
fn a_shutdown_to_a_server_that_takes_only_the_probe_spools_and_returns() {
    for (protocol, name) in protocols() {
        let seen = Arc::new(Seen::default());
        let url = probe_taker(Arc::clone(&seen));
        let (tracer, dir) = support::tracer_to(
            &format!("hostile-probe-shutdown-{name}"),
            &url,
            TracerConfig {
                protocol,
                compression: Compression::None,
                schedule_delay: Duration::from_secs(60),
                ..TracerConfig::default()
            },
        );
        support::end_spans(&tracer, &["llm.chat"; 5]);
        let started = Instant::now();
        let outcome = tracer.shutdown(Duration::from_secs(30)).expect("shutdown");
        let took = started.elapsed();
        let stats = tracer.stats();
        eprintln!(
            "{name}: shutdown {took:?}, {} resets, {} probes; {stats:?}",
            seen.resets.load(Ordering::Relaxed),
            seen.probes.load(Ordering::Relaxed)
        );
        assert_eq!(outcome, FlushOutcome::Spooled, "{name}: {stats:?}");
        assert_eq!(stats.spooled_spans, 5, "{name}: {stats:?}");
        assert_eq!(
            stats.spans_exported + stats.dropped_export_failed + stats.dropped_rejected,
            0,
            "{name}: {stats:?}"
        );
        // The flush's request and its 4 quick retries, and at most the
        // stop's one replay of the file: no loop of probes and resets.
        let resets = seen.resets.load(Ordering::Relaxed);
        assert!((5..=6).contains(&resets), "{name}: {resets} resets");
        assert!(seen.probes.load(Ordering::Relaxed) <= 1, "{name}");
        assert_eq!(support::spool_files(&dir.join("spool")).len(), 1, "{name}");
        // The loop of probes and resets is counted above; this is a hang
        // guard only (0.75 s of quick retries and a few requests on
        // loopback, of the shutdown's 30 s), not a measure.
        assert!(took < Duration::from_secs(25), "{name}: hung, {took:?}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// A tracer that lives on: each replay's request of the file is reset,
/// the probe after it taken, so the file is the problem: set back and
/// counted, split at the fifth, every part reset too: its 3 spans counted
/// lost (dropped_replay_failed), once each, none delivered, the spool
/// empty, the probes counted nowhere.
#[test]
fn a_file_the_server_resets_while_it_takes_the_probe_is_split_and_counted_lost() {
    for (protocol, name) in protocols() {
        let seen = Arc::new(Seen::default());
        let url = probe_taker(Arc::clone(&seen));
        let (tracer, dir) = support::tracer_to(
            &format!("hostile-probe-live-{name}"),
            &url,
            TracerConfig {
                protocol,
                compression: Compression::None,
                export_timeout: Duration::from_millis(600),
                schedule_delay: Duration::from_millis(20),
                ..TracerConfig::default()
            },
        );
        support::end_spans(&tracer, &["llm.chat"; 3]);
        support::flush_done(&tracer, Duration::from_secs(60));
        assert_eq!(tracer.stats().spooled_spans, 3, "{:?}", tracer.stats());
        // Five replays, a probe interval (1 s) apart; a minute for a slow
        // machine.
        let started = Instant::now();
        while tracer.stats().dropped_replay_failed < 3
            && started.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        // A while more: nothing else is counted for them.
        std::thread::sleep(Duration::from_millis(1500));
        let stats = tracer.stats();
        eprintln!(
            "{name}: {:?}, {} resets, {} probes; {stats:?}",
            started.elapsed(),
            seen.resets.load(Ordering::Relaxed),
            seen.probes.load(Ordering::Relaxed)
        );
        assert_eq!(stats.dropped_replay_failed, 3, "{name}: {stats:?}");
        assert_eq!(stats.replayed_spans, 0, "{name}: {stats:?}");
        assert_eq!(stats.spooled_spans, 3, "{name}: {stats:?}");
        support::assert_first_trips_counted(&stats, name);
        assert!(seen.probes.load(Ordering::Relaxed) >= 5, "{name}");
        let left = support::spool_files(&dir.join("spool"));
        assert!(left.is_empty(), "{name}: {left:?} {stats:?}");
        tracer.shutdown(Duration::from_secs(5)).ok();
        std::fs::remove_dir_all(&dir).ok();
    }
}
