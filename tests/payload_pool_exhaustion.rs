//! A payload pool far too small for what many threads put in it: values
//! are cut and counted, never corrupted, never mixed with another span's,
//! never cut to nothing while the slot has room, and every attribute keeps
//! its key. Judged by what the file sink wrote.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use spanguard::config::TracerConfig;
use spanguard::tracer::{AttrInput, Parent, Tracer};

const THREADS: u64 = 4;
const ROUNDS: u64 = 5;
/// Spans each thread holds open at once: 4 threads x 20 x ~6 chunks is
/// about twice the pool (1.5 to 1.9 MB of prompts a round, for 1 MiB).
/// All four hold theirs together (`all_open`): one thread's 20 are under
/// half the pool, and on a loaded machine the threads ran one after
/// another, each value waited for chunks the exporter gave back (the
/// `Wait` policy), none was cut, and "the pool ran out" failed.
const HELD: u64 = 20;

/// What span `n` sets as its prompt: its number repeated, 2 to 42 KB.
fn prompt(n: u64) -> String {
    let len = 2_000 + (n * 7_919) % 40_000;
    let unit = format!("{n}-");
    unit.repeat(len as usize / unit.len() + 1)[..len as usize].to_string()
}

/// The text after `needle` in `span` up to the next quote, if any.
fn string_after<'a>(span: &'a str, needle: &str) -> Option<&'a str> {
    let at = span.find(needle)? + needle.len();
    let end = span[at..].find('"')?;
    Some(&span[at..at + end])
}

#[test]
fn a_used_up_pool_cuts_and_counts_and_never_corrupts() {
    let dir = std::env::temp_dir().join(format!("sg-pool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = TracerConfig {
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        schedule_delay: Duration::from_millis(20),
        payload_pool_mib: 1,
        ..TracerConfig::default()
    };
    let tracer = Arc::new(Tracer::new(config).expect("tracer"));
    let all_open = Arc::new(Barrier::new(THREADS as usize));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let tracer = Arc::clone(&tracer);
            let all_open = Arc::clone(&all_open);
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    let mut open = Vec::new();
                    for k in 0..HELD {
                        let n = (t * ROUNDS + round) * HELD + k;
                        let (s, _) = tracer.begin(b"llm.chat", Parent::None, 3).expect("begin");
                        tracer
                            .set_attribute(s, b"n", AttrInput::Int(n as i64))
                            .expect("n");
                        let p = prompt(n);
                        // Cut when the pool is used up, but always set.
                        tracer
                            .set_attribute(s, b"gen_ai.prompt", AttrInput::Str(p.as_bytes()))
                            .expect("prompt");
                        tracer
                            .set_attribute(s, b"gen_ai.usage.input_tokens", AttrInput::Int(812))
                            .expect("tokens");
                        open.push(s);
                    }
                    // Open spans' chunks never come back: with every
                    // thread's spans open at once, the pool runs out
                    // whatever the scheduler did.
                    all_open.wait();
                    for s in open {
                        tracer.end(s, 0).expect("end");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert!(
        tracer
            .flush(Duration::from_secs(60))
            .expect("flush")
            .is_done()
    );
    let stats = tracer.stats();
    let sink = tracer.sink_path().expect("file sink").to_path_buf();
    let total = THREADS * ROUNDS * HELD;
    assert_eq!(stats.spans_exported, total);
    assert!(stats.values_truncated > 0, "the pool ran out");

    let text = std::fs::read_to_string(&sink).expect("sink file");
    assert!(
        !text.contains("{\"value\":"),
        "an attribute without its key"
    );
    let mut seen = vec![false; total as usize];
    let mut cut = 0u64;
    for span in text.split("{\"traceId\":").skip(1) {
        let n: u64 = string_after(span, "{\"key\":\"n\",\"value\":{\"intValue\":\"")
            .expect("n")
            .parse()
            .expect("a number");
        assert!(!seen[n as usize], "span {n} twice");
        seen[n as usize] = true;
        let got = string_after(
            span,
            "{\"key\":\"gen_ai.prompt\",\"value\":{\"stringValue\":\"",
        )
        .expect("every span has its prompt key");
        let want = prompt(n);
        assert!(
            want.starts_with(got),
            "span {n}: not a prefix of its own prompt"
        );
        if got.len() < want.len() {
            cut += 1;
            // What the slot's arena could hold, not "" (which reads as an
            // empty prompt): about half the arena's room.
            assert!(
                got.len() >= 512,
                "span {n}: its cut prompt kept {} bytes",
                got.len()
            );
        }
        assert!(
            span.contains(
                "{\"key\":\"gen_ai.usage.input_tokens\",\"value\":{\"intValue\":\"812\"}}"
            ),
            "span {n}: token count lost"
        );
    }
    assert!(seen.iter().all(|&s| s), "every span arrived");
    assert_eq!(cut, stats.values_truncated, "every cut value counted, once");
    drop(tracer);
    std::fs::remove_dir_all(&dir).ok();
}
