//! A process recovering a dead process's flight file and crash dump is
//! itself SIGKILLed midway (a process recovering at start-up killed in
//! turn, a container restarted in a loop); the next recovery sent the
//! whole files again, so the backend got the spans sent before the kill
//! twice. The recoverer runs in a copy of this test binary that kills
//! itself at its third request (a real SIGKILL: nothing of it runs after),
//! then this process recovers what is left: every span arrives, and the
//! spans sent before the kill are not sent again (but for the one batch
//! that `recover_dir` documents may go twice, when a kill comes between
//! its delivery and its mark). What is checked is what was received, not
//! which file or request came when.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use spanguard::buffer::dump::{DumpHeader, magic_of};
use spanguard::buffer::files::ensure_private_dir;
use spanguard::buffer::slab::{STATE_ENDED, STATE_FREE, STATE_OPEN, pack_header};
use spanguard::export::delivery::{Delivery, DeliveryHost, Outcome};
use spanguard::export::otlp_decode::decode_proto;
use spanguard::export::recovery::recover_dir;
use spanguard::export::request_encoder::RequestEncoder;
use spanguard::export::spool::SpoolDir;
use spanguard::export::transport::{Accepted, BodyFormat, SendError, Transport};
use spanguard::span::record::SpanRecord;

const CHILD_DIR: &str = "SPANGUARD_TEST_RECOVERER_DIR";
const SPANS: u8 = 40;
const BATCH: usize = 7;

/// Writes each request's span ids to `log` as a line, one write each;
/// with `die_at`, kills this process at that request instead.
struct Logged {
    log: PathBuf,
    sent: usize,
    die_at: Option<usize>,
}

impl Transport for Logged {
    fn send(&mut self, body: &[u8], _: BodyFormat, _: bool) -> Result<Accepted, SendError> {
        self.sent += 1;
        if self.die_at == Some(self.sent) {
            // SAFETY: raise has no preconditions.
            unsafe { libc::raise(libc::SIGKILL) };
        }
        let mut line = String::new();
        for s in decode_proto(body).expect("protobuf") {
            line.push_str(&format!("{}:{} ", s.trace_id[0], s.span_id[0]));
        }
        line.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        f.write_all(line.as_bytes()).expect("log");
        Ok(Accepted::default())
    }
    fn describe(&self) -> String {
        "logged:".to_string()
    }
}

struct Quiet;
impl DeliveryHost for Quiet {
    fn wait(&mut self, _: Duration) -> bool {
        false
    }
    fn record(&mut self, _: Outcome<'_>) {}
}

fn recover(dir: &Path, die_at: Option<usize>) {
    let transport = Logged {
        log: dir.join("received.log"),
        sent: 0,
        die_at,
    };
    let mut delivery = Delivery::new(
        Box::new(transport),
        SpoolDir::new(dir, 1 << 20),
        Duration::from_secs(30),
        1 << 20,
    );
    let mut encoder = RequestEncoder::new(BodyFormat::Protobuf, false, 1 << 20, BATCH);
    recover_dir(dir, &[], BATCH, &mut delivery, &mut encoder, &mut Quiet);
}

fn record_bytes(file: u8, n: u8, state: u32) -> Vec<u8> {
    // SAFETY: all-zero bytes are an empty record.
    let mut r: Box<SpanRecord> = unsafe { Box::new(std::mem::zeroed()) };
    r.header = pack_header(3, state).into();
    r.trace_id = [file; 16];
    r.span_id = [n; 8];
    r.start_unix_ns = 10;
    r.end_unix_ns = 20;
    // SAFETY: the record's own bytes.
    unsafe {
        std::slice::from_raw_parts(
            (&*r as *const SpanRecord).cast::<u8>(),
            std::mem::size_of::<SpanRecord>(),
        )
    }
    .to_vec()
}

/// A crash dump (trace 1) and a flight file (trace 2, free slots between
/// its spans) of `SPANS` spans each, the last one open.
fn plant(dir: &Path) {
    let state = |n: u8| if n == SPANS { STATE_OPEN } else { STATE_ENDED };
    let mut dump = DumpHeader::new(magic_of(false), SPANS as u32, "svc", &[])
        .as_bytes()
        .to_vec();
    let mut flight = DumpHeader::new(magic_of(true), 2 * SPANS as u32, "svc", &[])
        .as_bytes()
        .to_vec();
    flight.resize(flight.len().next_multiple_of(64), 0);
    for n in 1..=SPANS {
        dump.extend(record_bytes(1, n, state(n)));
        flight.extend(record_bytes(2, n, state(n)));
        flight.extend(record_bytes(0, 0, STATE_FREE));
    }
    std::fs::write(dir.join("a.sgdump"), dump).expect("plant");
    std::fs::write(dir.join("b.sgflight"), flight).expect("plant");
}

/// The spans of each request in `log`, in the order they were sent.
fn spans_in(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .expect("log")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_recoverer_sigkilled_midway_leaves_the_next_only_what_it_did_not_send() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        // The recoverer: dies at its third request.
        recover(Path::new(&dir), Some(3));
        panic!("the recoverer lived");
    }
    let dir = std::env::temp_dir().join(format!("sg-recoverer-killed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    ensure_private_dir(&dir).expect("dir");
    plant(&dir);
    let status = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            "a_recoverer_sigkilled_midway_leaves_the_next_only_what_it_did_not_send",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_DIR, &dir)
        .output()
        .expect("run the recoverer");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.status.signal(),
        Some(libc::SIGKILL),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    // What the recoverer sent before it was killed: more than the one batch
    // a recoverer killed between a delivery and its mark may leave to be
    // sent again, so that a next recovery that sent the files whole again
    // cannot pass for that.
    let before: Vec<String> = spans_in(&dir.join("received.log"));
    assert!(
        before.len() > BATCH,
        "the recoverer sent {} spans before its kill",
        before.len()
    );
    // The next recovery, in this process.
    recover(&dir, None);
    let all = spans_in(&dir.join("received.log"));
    let after = &all[before.len()..];
    // Nothing lost: every span of both files arrived.
    let mut arrived: Vec<&String> = all.iter().collect();
    arrived.sort();
    arrived.dedup();
    assert_eq!(arrived.len(), 2 * SPANS as usize, "{all:?}");
    // The next recovery sent only what the killed one had not, but for one
    // batch at most (`recover_dir`: at least once), and no span of its own
    // twice.
    let again = after.iter().filter(|s| before.contains(s)).count();
    assert!(again <= BATCH, "{again} spans sent again: {after:?}");
    let mut sent: Vec<&String> = after.iter().collect();
    sent.sort();
    sent.dedup();
    assert_eq!(
        sent.len(),
        after.len(),
        "a span sent twice by one recovery: {after:?}"
    );
    assert!(!dir.join("a.sgdump").exists() && !dir.join("b.sgflight").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
