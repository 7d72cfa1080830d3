//! A key longer than 1 KiB (`MAX_KEY_BYTES`) is cut, and the cut is said
//! (`Notice::truncated`, the C ABI's TRUNCATED) and counted in
//! `values_truncated`: two keys alike in their first KiB are one key, and
//! the second took the first's value with OK and nothing counted (found by
//! the LLM-sized data audit). Judged by what the file sink wrote.

use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::span::limits::MAX_KEY_BYTES;
use spanguard::tracer::{AttrInput, Parent, Tracer};

#[test]
fn a_long_key_is_cut_said_and_counted() {
    let dir = std::env::temp_dir().join(format!("sg-long-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tracer = Tracer::new(TracerConfig {
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        ..TracerConfig::default()
    })
    .expect("tracer");
    let long = |tail: &str| format!("{}{tail}", "k".repeat(MAX_KEY_BYTES));
    let (s, _) = tracer.begin(b"op", Parent::None, 1).expect("begin");
    for (tail, v) in [("first", 1), ("second", 2)] {
        let n = tracer
            .set_attribute(s, long(tail).as_bytes(), AttrInput::Int(v))
            .expect("set");
        assert!(n.truncated, "{tail}");
    }
    // Several at once take the same rule.
    let key = long("third");
    let n = tracer
        .set_attributes(s, &[(key.as_bytes(), AttrInput::Int(3))])
        .expect("set");
    assert!(n.truncated);
    let whole = tracer
        .set_attribute(
            s,
            &long("").as_bytes()[..MAX_KEY_BYTES - 1],
            AttrInput::Int(4),
        )
        .expect("set");
    assert!(!whole.truncated);
    tracer.end(s, 0).expect("end");
    tracer.flush(Duration::from_secs(30)).expect("flush");
    assert_eq!(tracer.stats().values_truncated, 3);
    let text = std::fs::read_to_string(tracer.sink_path().expect("sink")).expect("sink file");
    assert!(text.contains(&format!("\"key\":\"{}\"", &long("")[..MAX_KEY_BYTES])));
    let _ = std::fs::remove_dir_all(&dir);
}
