//! A program the host starts while a tracer runs (posix_spawn, or fork and
//! exec: no fork handler runs past exec) gets none of the tracer's
//! descriptors: no spool, sink or flight file (each holds a lock that
//! would keep the file from recovery after the host dies, for as long as
//! that program lives), no connection to the backend.

use std::path::Path;
use std::time::Duration;

use spanguard::config::TracerConfig;

mod support;

/// The descriptors of process `pid` that lead into `dir` or to a socket,
/// as "number -> target".
fn tracers_descriptors_of(pid: u32, dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("fd dir") {
        let entry = entry.expect("entry");
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if target.starts_with(dir) || target.to_string_lossy().starts_with("socket:") {
            let n = entry.file_name().to_string_lossy().into_owned();
            out.push(format!("{n} -> {}", target.display()));
        }
    }
    out
}

#[test]
fn a_program_started_while_the_tracer_exports_and_spools_holds_none_of_its_files() {
    let (url, _closed) = support::backend(|_| 503);
    let (tracer, dir) = support::tracer_to(
        "spawned-hold-nothing",
        &url,
        TracerConfig {
            schedule_delay: Duration::from_millis(10),
            export_timeout: Duration::from_millis(300),
            flight_recorder: true,
            ..TracerConfig::default()
        },
    );
    support::end_spans(&tracer, &["a", "b", "c"]);
    // Answered 503 until the budget is spent: spooled, the connection kept.
    let _ = tracer.flush(Duration::from_secs(2));
    support::end_spans(&tracer, &["d"]);
    let parent = tracers_descriptors_of(std::process::id(), &dir);
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("start a program");
    // `spawn` returns once the program runs (exec done, or failed).
    let held = tracers_descriptors_of(child.id(), &dir);
    let _ = child.kill();
    let _ = child.wait();
    let spooled = support::spool_files(&dir.join("spool")).len();
    let _ = tracer.shutdown(Duration::from_secs(2));
    std::fs::remove_dir_all(&dir).ok();
    // The tracer holds files and a connection the program could inherit.
    assert!(spooled > 0, "nothing spooled");
    assert!(
        parent.iter().any(|d| d.contains(".sgflight"))
            && parent.iter().any(|d| d.contains("socket:")),
        "the tracer holds {parent:?}"
    );
    assert!(held.is_empty(), "the program holds {held:?}");
}
