//! What spanguard says on stderr that a program needs reaches the error
//! callback too, with the line's message: a program that routes the
//! library's news into its own logs (Python logging, a Node logger, Go
//! slog), or runs where stderr is thrown away, saw none of it. Whatever
//! OTEL_LOG_LEVEL says, as the other events are told.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use spanguard::config::{ConfigError, LogLevel, TracerConfig};
use spanguard::export::transport::{Accepted, BodyFormat, SendError, Transport};
use spanguard::pipeline::ExportEvent;
use spanguard::tracer::{Parent, Tracer};

/// Everything told to a tracer's error callback.
type Told = Arc<Mutex<Vec<(ExportEvent, String)>>>;

fn listen(tracer: &Tracer) -> Told {
    let told: Told = Arc::default();
    let seen = Arc::clone(&told);
    tracer.set_callback(Some(Box::new(move |event, message: &str| {
        seen.lock().unwrap().push((event, message.to_string()));
    })));
    told
}

fn of(told: &Told, event: ExportEvent) -> Vec<String> {
    told.lock()
        .unwrap()
        .iter()
        .filter(|(e, _)| *e == event)
        .map(|(_, m)| m.clone())
        .collect()
}

fn config(test: &str) -> TracerConfig {
    let dir = std::env::temp_dir().join(format!("sg-news-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    TracerConfig {
        spool_dir: dir.join("spool"),
        sink_dir: dir.join("spans"),
        install_signal_handlers: false,
        // Nothing on stderr: the callback is told all the same.
        log_level: LogLevel::None,
        ..TracerConfig::default()
    }
}

/// Accepts every request with an OTLP partial success that rejects none
/// and carries the backend's words.
struct WarnsEveryTime;

const WARNING: &str = "attributes over limit were truncated";

impl Transport for WarnsEveryTime {
    fn send(&mut self, _: &[u8], _: BodyFormat, _: bool) -> Result<Accepted, SendError> {
        Ok(Accepted {
            rejected_spans: 0,
            message: WARNING.to_string(),
        })
    }

    fn describe(&self) -> String {
        "warns every time".to_string()
    }
}

fn one_span(tracer: &Tracer) {
    let (s, _) = tracer.begin(b"op", Parent::None, 1).expect("begin");
    tracer.end(s, 0).expect("end");
    tracer.flush(Duration::from_secs(10)).expect("flush");
}

/// Three requests accepted with the same warning: the callback is told it
/// in full once, with the backend's words, then (held back by the minute's
/// rate limit, as stderr is) the other two requests' spans at the stop.
/// It was said on stderr alone.
#[test]
fn a_backend_warning_is_told_to_the_callback_once_then_counted() {
    let tracer =
        Tracer::with_transport(config("warning"), Box::new(WarnsEveryTime)).expect("tracer");
    let told = listen(&tracer);
    for _ in 0..3 {
        one_span(&tracer);
    }
    tracer.shutdown(Duration::from_secs(10)).expect("shutdown");
    let warnings = of(&told, ExportEvent::BackendWarning);
    assert_eq!(
        warnings,
        [
            format!("the backend accepted 1 span with a warning: {WARNING}"),
            "the backend accepted 2 more spans with a warning: attributes over limit were \
             truncated (as said above)"
                .to_string(),
        ],
        "{:?}",
        told.lock().unwrap()
    );
    // Nothing lost, so no loss event either.
    assert!(of(&told, ExportEvent::SpansRejected).is_empty());
    assert!(of(&told, ExportEvent::BatchFailed).is_empty());
}

/// A variable ignored is said as the exporter starts, before the program
/// can set a callback (the tracer must exist first): it is kept, and told
/// to the callback once it is set.
#[test]
fn an_ignored_setting_is_told_to_a_callback_set_after_the_tracer_started() {
    let mut config = config("ignored");
    config.ignored_env.push(ConfigError::new(
        "OTEL_BSP_MAX_QUEUE_SIZE",
        Some("lots"),
        "not a number",
    ));
    let said = config.ignored_env[0].as_ignored();
    let tracer = Tracer::with_transport(config, Box::new(WarnsEveryTime)).expect("tracer");
    // Give the exporter its start (where it says the ignored settings).
    std::thread::sleep(Duration::from_millis(200));
    let told = listen(&tracer);
    one_span(&tracer);
    assert_eq!(
        of(&told, ExportEvent::SettingIgnored),
        std::slice::from_ref(&said)
    );
    tracer.shutdown(Duration::from_secs(10)).expect("shutdown");
    // Once, not again at the stop.
    assert_eq!(of(&told, ExportEvent::SettingIgnored), [said]);
}
