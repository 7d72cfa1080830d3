//! A large queue from a valid setting starts a tracer: its slots and
//! ended-queue cells are reserved without swap (MAP_NORESERVE) and take
//! memory only as they are used. Mapped with the kernel's overcommit
//! check, 16,000,000 slots (tens of GB of address space) failed
//! `Tracer::new` with ENOMEM on a 24 GiB machine: no tracer at all, for a
//! value the README says is never fatal.

use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::tracer::{Parent, Tracer};

#[test]
fn a_queue_of_sixteen_million_spans_starts_and_exports() {
    let dir = std::env::temp_dir().join(format!("sg-large-queue-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tracer = Tracer::new(TracerConfig {
        max_queue_size: 16_000_000,
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        ..TracerConfig::default()
    })
    .expect("a tracer with a queue of 16,000,000");
    for _ in 0..1000 {
        let (s, _) = tracer.begin(b"op", Parent::None, 1).expect("begin");
        tracer.end(s, 0).expect("end");
    }
    tracer.flush(Duration::from_secs(30)).expect("flush");
    assert_eq!(tracer.stats().spans_exported, 1000);
    drop(tracer);
    let _ = std::fs::remove_dir_all(&dir);
}
