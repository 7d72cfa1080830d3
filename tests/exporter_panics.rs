//! A panic in the exporter's work (an internal bug, here injected in the
//! transport) must not stop export: it is reported (callback event and
//! counter), the batch it hit is counted lost, a flush still returns, and
//! every later span arrives. Judged by what the local sink file holds.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spanguard::config::{Protocol, TracerConfig};
use spanguard::export::file_sink::FileSink;
use spanguard::export::spool::{SpoolDir, SpooledBatch};
use spanguard::export::transport::{Accepted, BodyFormat, SendError, Transport};
use spanguard::pipeline::{ExportEvent, FlushOutcome};
use spanguard::tracer::{Parent, Tracer};

mod support;

/// The file sink, but a request for which `panics_on(call number, body)`
/// holds panics (an internal bug, injected).
struct PanicsWhen {
    sink: FileSink,
    calls: usize,
    panics_on: fn(usize, &[u8]) -> bool,
}

impl PanicsWhen {
    fn new(sink_dir: &Path, panics_on: fn(usize, &[u8]) -> bool) -> PanicsWhen {
        PanicsWhen {
            sink: FileSink::new(sink_dir, "panics"),
            calls: 0,
            panics_on,
        }
    }
}

impl Transport for PanicsWhen {
    fn send(&mut self, body: &[u8], f: BodyFormat, gz: bool) -> Result<Accepted, SendError> {
        self.calls += 1;
        if (self.panics_on)(self.calls, body) {
            panic!("injected exporter bug");
        }
        self.sink.send(body, f, gz)
    }

    fn describe(&self) -> String {
        self.sink.describe()
    }
}

/// The tracer's callback events, as the test sees them.
type Events = Arc<Mutex<Vec<(ExportEvent, String)>>>;

fn record_events(tracer: &Tracer) -> Events {
    let events = Events::default();
    let seen = Arc::clone(&events);
    tracer.set_callback(Some(Box::new(move |event, message: &str| {
        seen.lock().unwrap().push((event, message.to_string()));
    })));
    events
}

fn occurrences(dir: &Path, needle: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .map(|text| text.matches(needle).count())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_panicking_batch_is_counted_and_export_goes_on() {
    let dir = std::env::temp_dir().join(format!("sg-exporter-panic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sink_dir = dir.join("spans");
    let config = TracerConfig {
        protocol: Protocol::HttpJson,
        sink_dir: sink_dir.clone(),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        schedule_delay: Duration::from_secs(60),
        ..TracerConfig::default()
    };
    // The second request panics.
    let transport = PanicsWhen::new(&sink_dir, |call, _| call == 2);
    let tracer = Tracer::with_transport(config, Box::new(transport)).expect("tracer");
    let events = record_events(&tracer);

    let mut flushes = Vec::new();
    for phase in ["before", "during", "after"] {
        for i in 0..5 {
            let name = format!("{phase}-{i}");
            let (s, _) = tracer
                .begin(name.as_bytes(), Parent::None, 1)
                .expect("begin");
            tracer.end(s, 0).expect("end");
        }
        flushes.push(tracer.flush(Duration::from_secs(30)).expect("flush"));
    }
    assert_eq!(
        flushes,
        [FlushOutcome::Delivered; 3],
        "a flush returned in time after the panic"
    );
    for phase in ["before", "after"] {
        for i in 0..5 {
            let name = format!("\"name\":\"{phase}-{i}\"");
            assert_eq!(occurrences(&sink_dir, &name), 1, "{name} arrived once");
        }
    }
    assert_eq!(occurrences(&sink_dir, "\"name\":\"during-"), 0);

    let stats = tracer.stats();
    assert_eq!(stats.exporter_panics, 1);
    assert_eq!(stats.dropped_export_failed, 5, "the batch it hit is lost");
    support::assert_first_trips_counted(&stats, "an exporter panic");
    let events = events.lock().unwrap();
    let panics: Vec<_> = events
        .iter()
        .filter(|(e, _)| *e == ExportEvent::ExporterPanicked)
        .collect();
    assert_eq!(panics.len(), 1, "{events:?}");
    assert!(panics[0].1.contains("injected exporter bug"));
    drop(events);
    assert!(
        tracer
            .shutdown(Duration::from_secs(10))
            .expect("shutdown")
            .is_done()
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A spooled file whose sending panics is set aside after the first
/// panic: replay does not hit it again and again, and export goes on.
#[test]
fn a_spool_file_whose_sending_panics_is_set_aside_once() {
    let dir = std::env::temp_dir().join(format!("sg-exporter-poison-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sink_dir = dir.join("spans");
    let spool_dir = dir.join("spool");
    std::fs::create_dir_all(&spool_dir).expect("spool dir");
    let config = TracerConfig {
        protocol: Protocol::HttpJson,
        sink_dir: sink_dir.clone(),
        spool_dir: spool_dir.clone(),
        install_signal_handlers: false,
        // Wakes often, so a file that panicked every time would be
        // replayed (and panic) many times in the wait below.
        schedule_delay: Duration::from_millis(20),
        ..TracerConfig::default()
    };
    let spool = SpoolDir::new(&spool_dir, config.spool_max_bytes);
    spool
        .write(&SpooledBatch {
            format: BodyFormat::Json,
            gzipped: false,
            spans: 3,
            cut_counted: 0,
            cut_at: Vec::new(),
            body: br#"{"resourceSpans":[],"note":"poison"}"#.to_vec(),
        })
        .expect("spool file");
    // A request that holds the spooled file's marker panics.
    let transport = PanicsWhen::new(&sink_dir, |_, body| body.windows(6).any(|w| w == b"poison"));
    let tracer = Tracer::with_transport(config, Box::new(transport)).expect("tracer");
    let events = record_events(&tracer);
    // The first replay (and panic) first, however late a loaded machine
    // runs it; then 600 ms of wakes in which a file not set aside would
    // be replayed and panic again.
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while tracer.stats().exporter_panics == 0 {
        assert!(
            std::time::Instant::now() < until,
            "the spooled file was never replayed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(600));
    for i in 0..5 {
        let name = format!("fresh-{i}");
        let (s, _) = tracer
            .begin(name.as_bytes(), Parent::None, 1)
            .expect("begin");
        tracer.end(s, 0).expect("end");
    }
    assert_eq!(
        tracer.flush(Duration::from_secs(30)).expect("flush"),
        FlushOutcome::Delivered
    );
    for i in 0..5 {
        let name = format!("\"name\":\"fresh-{i}\"");
        assert_eq!(occurrences(&sink_dir, &name), 1, "{name} arrived once");
    }
    let stats = tracer.stats();
    assert_eq!(stats.exporter_panics, 1, "the file was replayed once");
    assert_eq!(stats.files_set_aside, 1);
    assert!(
        spool.list().is_empty(),
        "left to replay: {:?}",
        spool.list()
    );
    // Kept for inspection, beside the spool's files (the callback may have
    // been set after the exporter's first look, so it is not judged).
    let kept: Vec<_> = std::fs::read_dir(&spool_dir)
        .expect("spool dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".unreadable"))
        .collect();
    assert_eq!(kept.len(), 1);
    let events = events.lock().unwrap();
    assert!(
        events
            .iter()
            .filter(|(e, _)| *e == ExportEvent::FileSetAside)
            .count()
            <= 1,
        "{events:?}"
    );
    drop(events);
    assert!(
        tracer
            .shutdown(Duration::from_secs(10))
            .expect("shutdown")
            .is_done()
    );
    std::fs::remove_dir_all(&dir).ok();
}
