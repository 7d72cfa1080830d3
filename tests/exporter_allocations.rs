//! Once warm, the exporter thread allocates nothing per batch either:
//! taking, encoding, sending (to the discarding endpoint) and giving the
//! slots back. Counted with a global allocator that counts only on the
//! exporter's thread (found by its name in /proc), not with a timing.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::tracer::{AttrInput, Parent, Tracer};

/// The thread id counted (0: none yet).
static WATCHED: AtomicI32 = AtomicI32::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// The size asked for by the first allocation counted (a realloc's new
/// size), for a failure to name what grew: the test failed once in a
/// loaded `make test` with one allocation, and not in 30 runs since.
static FIRST_SIZE: AtomicU64 = AtomicU64::new(0);

/// Counts an allocation of `size` bytes made on the watched thread.
fn count(size: usize) {
    let watched = WATCHED.load(Ordering::Relaxed);
    // SAFETY: gettid takes nothing and cannot fail.
    if watched != 0
        && unsafe { libc::gettid() } == watched
        && ALLOCATIONS.fetch_add(1, Ordering::Relaxed) == 0
    {
        FIRST_SIZE.store(size as u64, Ordering::Relaxed);
    }
}

#[path = "support/noting_allocator.rs"]
mod noting_allocator;

#[global_allocator]
static GLOBAL: noting_allocator::NotingAllocator =
    noting_allocator::NotingAllocator { note: count };

/// The id of this process's thread named `name` (as the kernel keeps it:
/// its first 15 bytes).
fn thread_named(name: &str) -> i32 {
    std::fs::read_dir("/proc/self/task")
        .expect("tasks")
        .filter_map(|t| {
            let t = t.ok()?;
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            (comm.trim_end() == &name[..name.len().min(15)])
                .then(|| t.file_name().to_str()?.parse().ok())?
        })
        .next()
        .unwrap_or_else(|| panic!("no thread named {name}"))
}

fn batches(tracer: &Tracer, n: usize) {
    for b in 0..n {
        for i in 0..64 {
            let (s, _) = tracer.begin(b"op", Parent::None, 1).expect("begin");
            tracer
                .set_attribute(s, b"gen_ai.usage.input_tokens", AttrInput::Int(i))
                .expect("set");
            tracer
                .set_attribute(s, b"gen_ai.request.model", AttrInput::Str(b"gpt-4o"))
                .expect("set");
            tracer.end(s, 0).expect("end");
        }
        // Every other batch waits for its export, so that the exporter
        // also answers flushes while counted.
        if b % 2 == 0 {
            tracer.flush(Duration::from_secs(30)).expect("flush");
        }
    }
    tracer.flush(Duration::from_secs(30)).expect("flush");
}

#[test]
fn the_exporter_allocates_nothing_per_batch_once_warm() {
    let config = TracerConfig {
        endpoint: Some("discard:".to_string()),
        install_signal_handlers: false,
        max_export_batch_size: 64,
        schedule_delay: Duration::from_millis(1),
        ..TracerConfig::default()
    };
    let tracer = Tracer::new(config).expect("tracer");
    // Warm: the request buffers and the views' vector have grown.
    batches(&tracer, 20);
    // And the start-up look at the spool has been taken (it reads the
    // directory, so it allocates): the exporter puts it off while a flush
    // waits or a batch is queued, which every warm-up batch can be on a
    // loaded machine (7 allocations in the counted batches once, in a
    // clean clone's `make test`). A quiet moment, in which the exporter
    // wakes every millisecond with nothing to do, lets it take it.
    std::thread::sleep(Duration::from_millis(100));
    WATCHED.store(thread_named("spanguard-export"), Ordering::SeqCst);
    batches(&tracer, 200);
    // And idle: the exporter wakes every millisecond with nothing to do,
    // and once a second looks whether the process's own threads have all
    // ended (`export::last_thread`). That look allocated; a loaded machine
    // let it fall among the counted batches (5 allocations, the first of
    // 32 bytes). Idle for over a second, it is sure to be among them.
    std::thread::sleep(Duration::from_millis(2500));
    WATCHED.store(0, Ordering::SeqCst);
    let stats = tracer.stats();
    assert_eq!(stats.spans_exported, 220 * 64, "{stats:?}");
    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst),
        0,
        "allocations on the exporter thread over 200 batches and an idle stretch (the first of {} bytes)",
        FIRST_SIZE.load(Ordering::SeqCst)
    );
}
