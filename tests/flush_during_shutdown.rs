//! Flushes called on other threads while a tracer shuts down: each returns
//! as the shutdown finishes, delivered or ShutDown, never waiting out its
//! timeout. Before the fix, a flush that asked after the exporter's last
//! answer (the shutdown stops it, then marks the tracer shut down) waited
//! its whole timeout, here 20 seconds, and said TimedOut.

mod support;

use std::sync::Arc;
use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::pipeline::FlushOutcome;
use spanguard::tracer::{Parent, SpanError};

#[test]
fn a_flush_racing_shutdown_returns_with_it() {
    for round in 0..20 {
        let (t, dir) = support::discarding_tracer_with(
            &format!("flush-shutdown-{round}"),
            TracerConfig {
                schedule_delay: Duration::from_millis(5),
                ..TracerConfig::default()
            },
        );
        let t = Arc::new(t);
        let flushers: Vec<_> = (0..3)
            .map(|_| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    loop {
                        if let Ok((s, _)) = t.begin(b"before-flush", Parent::None, 1) {
                            let _ = t.end(s, 0);
                        }
                        match t.flush(Duration::from_secs(20)) {
                            Ok(FlushOutcome::Delivered) => {}
                            Err(SpanError::ShutDown) => return,
                            other => panic!("a flush racing shutdown: {other:?}"),
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1 + round % 5));
        t.shutdown(Duration::from_secs(10)).expect("shutdown");
        for f in flushers {
            f.join().expect("flusher");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
