//! A file in the spool directory is named by whoever put it there: a name
//! with a line break and an escape sequence, set aside, is told to the
//! error callback with those characters written as `\xNN`, so that an
//! application printing the message prints one line of plain text.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spanguard::config::{Protocol, TracerConfig};
use spanguard::export::file_sink::FileSink;
use spanguard::export::transport::{Accepted, BodyFormat, SendError, Transport};
use spanguard::pipeline::ExportEvent;
use spanguard::tracer::{Parent, Tracer};

/// The file sink, but down for the first request: its batch is spooled, so
/// the exporter reads the spool directory again once the sink answers.
struct DownOnce {
    sink: FileSink,
    calls: usize,
}

impl Transport for DownOnce {
    fn send(&mut self, body: &[u8], f: BodyFormat, gz: bool) -> Result<Accepted, SendError> {
        self.calls += 1;
        if self.calls == 1 {
            return Err(SendError::Transient {
                reason: "down".to_string(),
                retry_after: None,
            });
        }
        self.sink.send(body, f, gz)
    }

    fn describe(&self) -> String {
        self.sink.describe()
    }
}

/// The messages of the FileSetAside events told.
fn told_set_aside(events: &Told) -> Vec<String> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter(|(e, _)| *e == ExportEvent::FileSetAside)
        .map(|(_, m)| m.clone())
        .collect()
}

/// A test's directory, emptied, and the spool directory in it.
fn fresh_dirs(test: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("sg-hostile-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).expect("mkdir");
    (dir, spool)
}

/// Everything told to a tracer's error callback.
type Told = Arc<Mutex<Vec<(ExportEvent, String)>>>;

/// A tracer sending through `transport`, spooling in `spool` (its sink,
/// if any, in `dir`/spans), and what it tells its error callback.
fn tracer_telling(dir: &Path, spool: &Path, transport: Box<dyn Transport>) -> (Tracer, Told) {
    let config = TracerConfig {
        protocol: Protocol::HttpJson,
        sink_dir: dir.join("spans"),
        spool_dir: spool.to_path_buf(),
        install_signal_handlers: false,
        export_timeout: Duration::from_millis(50),
        ..TracerConfig::default()
    };
    let tracer = Tracer::with_transport(config, transport).expect("tracer");
    let events: Told = Arc::default();
    let seen = Arc::clone(&events);
    tracer.set_callback(Some(Box::new(move |event, message: &str| {
        seen.lock().unwrap().push((event, message.to_string()));
    })));
    (tracer, events)
}

#[test]
fn a_hostile_file_name_reaches_the_callback_as_plain_text() {
    let (dir, spool) = fresh_dirs("names");
    let transport = DownOnce {
        sink: FileSink::new(&dir.join("spans"), "names"),
        calls: 0,
    };
    let (tracer, events) = tracer_telling(&dir, &spool, Box::new(transport));
    // Planted once the tracer runs (the callback set): found when the
    // spool is read again.
    let name = "00000000000000000001-0000000001-a\n\x1b[2Jspanguard: error: forged\u{9b}.sgspool";
    std::fs::write(spool.join(name), b"not a spool file").expect("plant");
    // The first span's request fails and is spooled; the second's, past
    // the probe's second, is delivered, and the spool is replayed.
    for _ in 0..2 {
        let (s, _) = tracer.begin(b"op", Parent::None, 1).expect("begin");
        tracer.end(s, 0).expect("end");
        let _ = tracer.flush(Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(1500));
    }
    tracer.shutdown(Duration::from_secs(10)).expect("shutdown");
    let told = told_set_aside(&events);
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(!told[0].chars().any(char::is_control), "{:?}", told[0]);
    assert!(
        told[0].contains("-a\\n\\x1b[2Jspanguard: error: forged\\x9b.sgspool"),
        "{:?}",
        told[0]
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Takes every request.
struct TakesAll;

impl Transport for TakesAll {
    fn send(&mut self, _: &[u8], _: BodyFormat, _: bool) -> Result<Accepted, SendError> {
        Ok(Accepted {
            rejected_spans: 0,
            message: String::new(),
        })
    }

    fn describe(&self) -> String {
        "takes all".to_string()
    }
}

/// A spool directory of 1,000 files that are no spool batches (planted by
/// another program of this user, torn by a full disk): every one is set
/// aside and counted, and the error callback hears of them a few times,
/// not 1,000 (and stderr as many lines: one a file was 100,000 lines for
/// 100,000 files).
#[test]
fn a_thousand_files_set_aside_are_told_in_a_few_callbacks() {
    let (dir, spool) = fresh_dirs("many");
    let planted = 1000u64;
    for i in 0..planted {
        let name = format!("{i:020}-0000000001-a.sgspool");
        std::fs::write(spool.join(name), b"not a spool file").expect("plant");
    }
    let (tracer, events) = tracer_telling(&dir, &spool, Box::new(TakesAll));
    // The spool is replayed at the start and whenever a batch was spooled;
    // the shutdown's last pass finds what the first left.
    let (s, _) = tracer.begin(b"op", Parent::None, 1).expect("begin");
    tracer.end(s, 0).expect("end");
    let _ = tracer.flush(Duration::from_secs(10));
    tracer.shutdown(Duration::from_secs(10)).expect("shutdown");
    assert_eq!(tracer.stats().files_set_aside, planted);
    let told = told_set_aside(&events);
    // 5 by name, the rest in a summary, and what passes that gave way
    // set aside since in one more at the stop.
    assert!(
        told.len() <= 7,
        "{} callbacks for {planted} files set aside",
        told.len()
    );
    // Each one told: by name, or in the count of a summary.
    let said: u64 = told
        .iter()
        .map(|m| match m.split_once(" more files set aside") {
            Some((n, _)) => n.parse::<u64>().expect("a count"),
            None => 1,
        })
        .sum();
    assert_eq!(said, planted, "{told:?}");
    std::fs::remove_dir_all(&dir).ok();
}
