//! A flush with no time to wait (`flush(0)`, an OpenTelemetry SDK's
//! force_flush(timeout_millis=0)) when every span ended before it has
//! been dealt with is done, not timed out: OpenTelemetry's SDKs answer
//! true when there is nothing to flush. It timed out whatever was pending,
//! since the exporter had had no time to answer. A span still queued or
//! in flight keeps it a time-out.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spanguard::config::TracerConfig;
use spanguard::export::transport::{Accepted, BodyFormat, SendError, Transport};
use spanguard::pipeline::FlushOutcome;
use spanguard::tracer::{Parent, Tracer};

/// Answers each request with what the test sends it, when it sends it.
struct Gated(Arc<Mutex<Receiver<Answer>>>);

/// What a request is answered.
type Answer = Result<Accepted, SendError>;

impl Transport for Gated {
    fn send(&mut self, _: &[u8], _: BodyFormat, _: bool) -> Answer {
        self.0
            .lock()
            .unwrap()
            .recv()
            .unwrap_or(Ok(Accepted::default()))
    }

    fn describe(&self) -> String {
        "gated".to_string()
    }
}

/// A tracer whose requests are answered by what the test sends on the
/// channel, when it sends it (a closed channel: accepted); its directory.
fn gated_tracer(name: &str) -> (Tracer, Sender<Answer>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("sg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = TracerConfig {
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        schedule_delay: Duration::from_millis(20),
        export_timeout: Duration::from_millis(200),
        ..TracerConfig::default()
    };
    let (answer, answers) = channel();
    let tracer = Tracer::with_transport(config, Box::new(Gated(Arc::new(Mutex::new(answers)))))
        .expect("tracer");
    (tracer, answer, dir)
}

/// The backend down (503).
fn down() -> Answer {
    Err(SendError::Transient {
        reason: "HTTP 503".into(),
        retry_after: None,
    })
}

/// The span just ended, refused while the backend is down until the
/// exporter spools it on its own (no flush asked).
fn spooled_while_down(tracer: &Tracer, answer: &Sender<Answer>) {
    for _ in 0..8 {
        answer.send(down()).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while tracer.stats().spooled_spans == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(tracer.stats().spooled_spans, 1);
}

#[test]
fn a_flush_without_time_is_done_when_nothing_is_pending() {
    let (tracer, answer, dir) = gated_tracer("flush-zero");
    let no_time = Duration::ZERO;
    assert_eq!(
        tracer.flush(no_time),
        Ok(FlushOutcome::Delivered),
        "nothing ended"
    );

    // A span held in a request the backend has not answered.
    let (s, _) = tracer.begin(b"op", Parent::None, 1).expect("begin");
    tracer.end(s, 0).expect("end");
    assert_eq!(
        tracer.flush(no_time),
        Ok(FlushOutcome::TimedOut),
        "one in flight"
    );
    answer.send(Ok(Accepted::default())).unwrap();
    assert_eq!(
        tracer.flush(Duration::from_secs(10)),
        Ok(FlushOutcome::Delivered)
    );
    assert_eq!(
        tracer.flush(no_time),
        Ok(FlushOutcome::Delivered),
        "all sent"
    );
    // Answered, so that no flush is left pending when the span below is
    // spooled.
    assert_eq!(
        tracer.flush(Duration::from_secs(10)),
        Ok(FlushOutcome::Delivered)
    );

    // A span the backend did not take, spooled by the exporter on its own
    // (no flush asked): a flush then says so, with time or without.
    let (s, _) = tracer.begin(b"op", Parent::None, 1).expect("begin");
    tracer.end(s, 0).expect("end");
    spooled_while_down(&tracer, &answer);
    assert_eq!(tracer.flush(no_time), Ok(FlushOutcome::Spooled), "spooled");
    drop(answer);
    tracer.shutdown(Duration::from_secs(10)).expect("shutdown");
    std::fs::remove_dir_all(&dir).ok();
}

/// A tracer shut down with no time (`shutdown(0)`, a provider's shutdown
/// given no time) answered TimedOut whatever was left, though the exporter,
/// stopped and joined, had dealt with every span on its way out.
#[test]
fn a_shutdown_without_time_is_done_once_the_exporter_dealt_with_every_span() {
    for (case, spans) in [("nothing ended", 0), ("one span waiting", 1)] {
        let dir =
            std::env::temp_dir().join(format!("sg-shutdown-zero-{spans}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = TracerConfig {
            sink_dir: dir.join("spans"),
            spool_dir: dir.join("spool"),
            install_signal_handlers: false,
            // The exporter does not wake on its own before the shutdown.
            schedule_delay: Duration::from_secs(60),
            ..TracerConfig::default()
        };
        let tracer = Tracer::new(config).expect("tracer");
        for _ in 0..spans {
            let (s, _) = tracer.begin(b"op", Parent::None, 1).expect("begin");
            tracer.end(s, 0).expect("end");
        }
        let outcome = tracer.shutdown(Duration::ZERO).expect("shutdown");
        assert!(outcome.is_done(), "{case}: {outcome:?}");
        let stats = tracer.stats();
        assert_eq!(
            stats.spans_exported + stats.spooled_spans,
            spans,
            "{case}: every span delivered to the sink or spooled"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// A flush after one that answered Spooled answered Delivered, though the
/// spans it had spooled were still only in the spool: the exporter took
/// the "spooled" mark back at each answer (also at the answer to a flush
/// that had given up). It now stays until a replay empties the spool.
#[test]
fn spans_only_in_the_spool_keep_every_flush_spooled_until_replayed() {
    let (tracer, answer, dir) = gated_tracer("flush-spooled");
    let (s, _) = tracer.begin(b"op", Parent::None, 1).expect("begin");
    tracer.end(s, 0).expect("end");
    spooled_while_down(&tracer, &answer);
    let wait = Duration::from_secs(2);
    assert_eq!(tracer.flush(wait), Ok(FlushOutcome::Spooled), "first");
    // The backend still down for whatever replay the exporter tries.
    for _ in 0..8 {
        answer.send(down()).unwrap();
    }
    assert_eq!(tracer.flush(wait), Ok(FlushOutcome::Spooled), "second");
    assert_eq!(
        tracer.flush(Duration::ZERO),
        Ok(FlushOutcome::Spooled),
        "no time"
    );
    assert_eq!(tracer.stats().replayed_spans, 0, "still only in the spool");
    drop(answer); // from here every request is accepted
    tracer.shutdown(Duration::from_secs(10)).expect("shutdown");
    std::fs::remove_dir_all(&dir).ok();
}
