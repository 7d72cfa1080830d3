//! A gzipped OTLP/JSON spool file that inflates to hundreds of MiB (a
//! gzip bomb, or a file some other program left) is counted through a
//! small buffer and set aside, never inflated whole: a 500 KiB file cost
//! the replay at every tracer start (and `spanguard spool`) 512 MiB to
//! 1 GiB of memory, which in a container with less killed the process
//! at each start, the file never set aside. Measured by the largest
//! single allocation on the test's thread, not by a timing.

use std::io::Write;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use spanguard::export::spool::{ReplayVerdict, SpoolDir, encode_header, spool_file_name};
use spanguard::export::transport::BodyFormat;

/// The thread whose allocations are watched (0: none).
static WATCHED: AtomicI32 = AtomicI32::new(0);
static LARGEST: AtomicU64 = AtomicU64::new(0);

/// Notes an allocation of `size` bytes made on the watched thread.
fn note(size: usize) {
    let watched = WATCHED.load(Ordering::Relaxed);
    // SAFETY: gettid takes nothing and cannot fail.
    if watched != 0 && unsafe { libc::gettid() } == watched {
        LARGEST.fetch_max(size as u64, Ordering::Relaxed);
    }
}

#[path = "support/noting_allocator.rs"]
mod noting_allocator;

#[global_allocator]
static GLOBAL: noting_allocator::NotingAllocator = noting_allocator::NotingAllocator { note };

/// A gzipped OTLP/JSON request of one span whose white space inflates it
/// to `mib` MiB.
fn json_bomb(mib: usize) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{}"#)
        .expect("gzip");
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..mib {
        gz.write_all(&spaces).expect("gzip");
    }
    gz.write_all(b"]}]}]}").expect("gzip");
    gz.finish().expect("gzip")
}

#[test]
fn a_gzipped_json_bomb_in_the_spool_is_set_aside_without_being_inflated_whole() {
    let dir = std::env::temp_dir().join(format!("sg-json-bomb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    // Over the 512 MiB any body may inflate to.
    let bomb = json_bomb(520);
    let header = encode_header(BodyFormat::Json, true, 1, 0, bomb.len());
    std::fs::write(
        dir.join(spool_file_name("000001")),
        [header.as_bytes(), &bomb].concat(),
    )
    .expect("plant");
    let spool = SpoolDir::new(&dir, 64 << 20);

    WATCHED.store(unsafe { libc::gettid() }, Ordering::Relaxed);
    let mut sent = 0;
    let replayed = spool.replay(|_| {
        sent += 1;
        ReplayVerdict::Delivered
    });
    WATCHED.store(0, Ordering::Relaxed);

    assert_eq!((replayed, sent), ((0, 0), 0));
    let aside = spool.take_set_aside();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        aside[0].reason.contains("inflates to more than"),
        "{}",
        aside[0].reason
    );
    // The file's own body (500 KiB) is read whole to be sent; what it
    // inflates to is not held.
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest < 8 << 20, "an allocation of {} MiB", largest >> 20);
    std::fs::remove_dir_all(&dir).ok();
}
