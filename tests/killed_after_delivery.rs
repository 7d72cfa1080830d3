//! A process with the flight recorder on delivers spans, the backend
//! answers 200 for every one, the exporter goes idle; it records more
//! spans and is SIGKILLed. The next process recovers what it left: the
//! spans recorded after the last delivery arrive once, and the delivered
//! ones never again. After a SIGKILL only a batch whose answer the process
//! did not live to read may be sent twice (the flight recorder's journal of
//! it); a span the process saw acknowledged is marked delivered in the
//! recorder (its slot freed in the flight file, the batch's journal file
//! deleted) before the exporter goes on: before it even tells anyone of
//! the answer, so that a kill while the application's callback hears of
//! a partial success (its code, which may take its time) does not send
//! the batch again either. The killed process is a copy of this test
//! binary; nothing of it runs after the SIGKILL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spanguard::config::TracerConfig;
use spanguard::export::otlp_decode::decode_proto;
use spanguard::pipeline::{ExportEvent, FlushOutcome};
use spanguard::tracer::{AttrInput, Parent, Tracer};

mod support;

const ROLE: &str = "SPANGUARD_TEST_KILLED_AFTER_DELIVERY_DIR";
const URL: &str = "SPANGUARD_TEST_KILLED_AFTER_DELIVERY_URL";
/// Which test the copy runs (its name).
const TEST_OF_ROLE: &str = "SPANGUARD_TEST_KILLED_AFTER_DELIVERY_TEST";
const TEST: &str = "spans_delivered_before_a_sigkill_are_not_sent_again";
const TEST_CALLBACK: &str =
    "a_sigkill_while_the_callback_hears_of_a_partial_success_sends_nothing_again";
/// Spans delivered before the kill, in `ROUNDS` flushes (a request or more
/// each), some with a prompt in the payload pool (their slots are freed
/// another way).
const DELIVERED: usize = 1200;
const ROUNDS: usize = 4;
/// Spans recorded after the last delivery, unsent at the kill: fewer than
/// make the exporter wake by itself (a sixteenth of `BATCH` at least,
/// `export::batch_sizer`), so none is in flight at the kill.
const LEFT: usize = 100;
const BATCH: u32 = 2048;
const PROMPT_EVERY: usize = 50;

fn tracer(dir: &Path, url: &str) -> Tracer {
    Tracer::new(TracerConfig {
        endpoint: Some(url.to_string()),
        spool_dir: dir.join("spool"),
        sink_dir: dir.join("sink"),
        install_signal_handlers: false,
        flight_recorder: true,
        max_export_batch_size: BATCH,
        // Nothing is exported but by a flush: what is not flushed stays
        // in the flight file.
        schedule_delay: Duration::from_secs(3600),
        ..TracerConfig::default()
    })
    .expect("tracer")
}

/// Ends root spans named `prefix-I` for each I of `numbers`; every
/// `PROMPT_EVERY`th with a 20 KB prompt.
fn end_spans(t: &Tracer, prefix: &str, numbers: std::ops::Range<usize>) {
    let prompt = "p".repeat(20_000);
    for i in numbers {
        let name = format!("{prefix}-{i}");
        let (s, _) = t.begin(name.as_bytes(), Parent::None, 1).expect("begin");
        if i % PROMPT_EVERY == 0 {
            t.set_attribute(s, b"gen_ai.prompt", AttrInput::Str(prompt.as_bytes()))
                .expect("prompt");
        }
        t.end(s, 0).expect("end");
    }
}

/// The process killed: delivers `DELIVERED` spans (each flush returns
/// once the backend answered for every span), records `LEFT` more, says
/// so and waits for its SIGKILL.
fn killed_process(dir: &Path, url: &str) {
    let t = tracer(dir, url);
    let round = DELIVERED / ROUNDS;
    for r in 0..ROUNDS {
        end_spans(&t, "delivered", r * round..(r + 1) * round);
        let flushed = t.flush(Duration::from_secs(30));
        assert!(
            matches!(flushed, Ok(FlushOutcome::Delivered)),
            "{flushed:?}"
        );
    }
    end_spans(&t, "left", 0..LEFT);
    std::fs::write(dir.join("ready"), "").expect("ready");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The process killed by its own callback: spans sent in one request,
/// which the backend takes but for one (a partial success); the callback
/// told of the rejected span SIGKILLs the process.
fn killed_in_callback(dir: &Path, url: &str) {
    let t = tracer(dir, url);
    t.set_callback(Some(Box::new(|event, _: &str| {
        if event == ExportEvent::SpansRejected {
            // SAFETY: raise has no preconditions.
            unsafe { libc::raise(libc::SIGKILL) };
        }
    })));
    end_spans(&t, "answered", 0..ANSWERED);
    let _ = t.flush(Duration::from_secs(30));
    std::fs::write(dir.join("lived-on"), "").expect("lived on");
}

/// Spans of the request answered with a partial success.
const ANSWERED: usize = 10;

/// Runs the test `test` in a copy of this binary, as the process to kill,
/// with its files in `dir` and its backend at `url`.
fn start_copy(test: &str, dir: &Path, url: &str) -> std::process::Child {
    Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, dir)
        .env(URL, url)
        .env(TEST_OF_ROLE, test)
        .spawn()
        .expect("the process to kill")
}

/// The directory and backend URL when this process is the copy to kill,
/// running `test`.
fn role(test: &str) -> Option<(PathBuf, String)> {
    let dir = std::env::var_os(ROLE)?;
    assert_eq!(std::env::var(TEST_OF_ROLE).ok().as_deref(), Some(test));
    Some((PathBuf::from(dir), std::env::var(URL).expect("url")))
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// In the copy to kill (started by `start_copy` for `test`): runs
/// `killed` with its directory and backend URL, and None. In the test
/// itself: a fresh directory named after `name`.
fn as_copy_or_in(test: &str, killed: fn(&Path, &str), name: &str) -> Option<PathBuf> {
    if let Some((dir, url)) = role(test) {
        killed(&dir, &url);
        return None;
    }
    Some(fresh_dir(name))
}

/// The next process, set up as the killed one: its start recovers the
/// flight file and replays the spool, and its flush must deliver all of
/// it, leaving the spool empty. Returns what the backend had received by
/// then (`received`), once `dir` is removed.
fn next_process_recovers<T: Clone>(dir: &Path, url: &str, received: &Mutex<T>) -> T {
    let t = tracer(dir, url);
    let flushed = t.flush(Duration::from_secs(30));
    let _ = t.shutdown(Duration::from_secs(30));
    let got = received.lock().unwrap().clone();
    let spool_left = support::spool_files(&dir.join("spool"));
    std::fs::remove_dir_all(dir).ok();
    assert!(
        matches!(flushed, Ok(FlushOutcome::Delivered)),
        "{flushed:?}"
    );
    assert!(spool_left.is_empty(), "spool not drained: {spool_left:?}");
    got
}

#[test]
fn a_sigkill_while_the_callback_hears_of_a_partial_success_sends_nothing_again() {
    let Some(dir) = as_copy_or_in(TEST_CALLBACK, killed_in_callback, "killed-in-callback") else {
        return;
    };
    // The process to kill's request (the first) is taken but for one
    // span; every later one (the recovery's) whole.
    let requests: Arc<Mutex<Vec<Vec<String>>>> = Default::default();
    let url = {
        let requests = Arc::clone(&requests);
        support::raw_backend(move |n, body| {
            let names = decode_proto(body).expect("protobuf");
            requests
                .lock()
                .unwrap()
                .push(names.into_iter().map(|s| s.name).collect());
            let answer = if n == 0 {
                let mut partial = vec![0x08, 0x01]; // rejected_spans: 1
                partial.extend(support::len_field(0x12, b"one span refused"));
                support::len_field(0x0a, &partial)
            } else {
                Vec::new()
            };
            let mut http = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
                answer.len()
            )
            .into_bytes();
            http.extend(answer);
            http
        })
    };
    let mut child = start_copy(TEST_CALLBACK, &dir, &url);
    let status = child.wait().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the callback did not kill it: {status:?}"
    );
    assert!(!dir.join("lived-on").exists());
    assert_eq!(
        requests.lock().unwrap().len(),
        1,
        "one request before the kill: {:?}",
        requests.lock().unwrap()
    );

    let got = next_process_recovers(&dir, &url, &requests);
    let again: Vec<&String> = got[1..].iter().flatten().collect();
    assert!(
        again.is_empty(),
        "the batch the backend answered was sent again after the kill: {} spans, e.g. {:?}",
        again.len(),
        &again[..again.len().min(5)]
    );
    assert_eq!(got[0].len(), ANSWERED, "{got:?}");
}

#[test]
fn spans_delivered_before_a_sigkill_are_not_sent_again() {
    let Some(dir) = as_copy_or_in(TEST, killed_process, "killed-after-delivery") else {
        return;
    };
    let received: Arc<Mutex<BTreeMap<String, u32>>> = Default::default();
    let (url, _closed) = {
        let received = Arc::clone(&received);
        support::backend(move |body| {
            let mut got = received.lock().unwrap();
            for span in decode_proto(body).expect("protobuf") {
                *got.entry(span.name).or_default() += 1;
            }
            200
        })
    };

    let mut child = start_copy(TEST, &dir, &url);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("ready").exists() {
        assert!(
            Instant::now() < deadline,
            "the process to kill never got ready"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the process to kill ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let before_kill: BTreeMap<String, u32> = (0..DELIVERED)
        .map(|i| (format!("delivered-{i}"), 1))
        .collect();
    assert_eq!(
        *received.lock().unwrap(),
        before_kill,
        "before the kill: every delivered span once, and nothing else"
    );

    let got = next_process_recovers(&dir, &url, &received);

    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} spans arrived more than once, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    let expected: BTreeMap<String, u32> = (0..DELIVERED)
        .map(|i| format!("delivered-{i}"))
        .chain((0..LEFT).map(|i| format!("left-{i}")))
        .map(|n| (n, 1))
        .collect();
    let missing: Vec<_> = expected.keys().filter(|n| !got.contains_key(*n)).collect();
    assert!(
        missing.is_empty(),
        "{} spans never arrived, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(got, expected, "spans received, by name and times");
}
