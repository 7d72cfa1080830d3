//! With the flight recorder, a request's journal (its bytes in the spool,
//! for a SIGKILL during the send) may not be written: a full disk, a
//! request over the spool's cap. The slots were given back all the same,
//! before the send: a SIGKILL while the backend had not answered left the
//! batch in no file at all, lost and counted nowhere. Now its spans stay
//! in the flight file until the answer.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::export::transport::{Accepted, BodyFormat, SendError, Transport};
use spanguard::pipeline::FlushOutcome;
use spanguard::tracer::{Parent, Tracer};

mod support;

/// A backend that answers each request only when told to.
struct AnswersWhenTold {
    sending: Sender<()>,
    answer: Mutex<Receiver<()>>,
}

impl Transport for AnswersWhenTold {
    fn send(&mut self, _: &[u8], _: BodyFormat, _: bool) -> Result<Accepted, SendError> {
        let _ = self.sending.send(());
        let _ = self.answer.lock().expect("lock").recv();
        Ok(Accepted::default())
    }
    fn describe(&self) -> String {
        "answers-when-told:".to_string()
    }
}

/// The spans a recovery would find in the spool's flight file now.
fn spans_in_flight_file(spool: &Path) -> usize {
    let flight: Vec<PathBuf> = std::fs::read_dir(spool)
        .expect("spool")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".sgflight"))
        .collect();
    assert_eq!(flight.len(), 1, "one flight file: {flight:?}");
    spanguard::export::dump_view::read_dump(&flight[0], 0, u64::MAX)
        .expect("a flight file")
        .spans
        .len()
}

#[test]
fn a_batch_without_a_journal_stays_in_the_flight_file_until_the_answer() {
    let dir = std::env::temp_dir().join(format!("sg-journal-not-written-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spool = dir.join("spool");
    let (sending, sent) = channel();
    let (answer, answered) = channel();
    let tracer = Tracer::with_transport(
        TracerConfig {
            spool_dir: spool.clone(),
            sink_dir: dir.join("sink"),
            install_signal_handlers: false,
            flight_recorder: true,
            // Smaller than any request: no journal can be written.
            spool_max_bytes: 64,
            schedule_delay: Duration::from_secs(3600),
            ..TracerConfig::default()
        },
        Box::new(AnswersWhenTold {
            sending,
            answer: Mutex::new(answered),
        }),
    )
    .expect("tracer");
    const SPANS: usize = 5;
    for _ in 0..SPANS {
        let (s, _) = tracer.begin(b"held", Parent::None, 1).expect("begin");
        tracer.end(s, 0).expect("end");
    }
    std::thread::scope(|scope| {
        let flushed = scope.spawn(|| tracer.flush(Duration::from_secs(30)));
        sent.recv_timeout(Duration::from_secs(30))
            .expect("the request is sent");
        let while_sent = spans_in_flight_file(&spool);
        answer.send(()).expect("answered");
        assert_eq!(
            while_sent, SPANS,
            "a SIGKILL during the send leaves the unjournaled batch in the flight file"
        );
        let flushed = flushed.join().expect("flush");
        assert!(
            matches!(flushed, Ok(FlushOutcome::Delivered)),
            "{flushed:?}"
        );
    });
    assert_eq!(
        spans_in_flight_file(&spool),
        0,
        "delivered: nothing to send again"
    );
    let stats = tracer.stats();
    support::assert_first_trips_counted(&stats, "journal not written");
    assert_eq!(stats.spans_exported, SPANS as u64);
    tracer.shutdown(Duration::from_secs(10)).expect("shut down");
    drop(tracer);
    let _ = std::fs::remove_dir_all(&dir);
}
