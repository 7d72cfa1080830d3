//! The defaults the READMEs and the bindings' API docs state are the ones
//! the library applies. The payload pool's went from 64 to 256 MiB in
//! config.rs while README.md, the Node README and index.d.ts, and the Go
//! doc comment still said 64: a user sizing the pool from them was off by
//! four.

use std::path::Path;

use spanguard::config::{DEFAULT_PAYLOAD_POOL_MIB, TracerConfig};
use spanguard::span::limits::{
    MAX_KEY_BYTES, MAX_NAME_BYTES, MAX_SCOPE_BYTES, MAX_TRACESTATE_BYTES,
};

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The number in the first `(N)`, `(default N)` or `default N` that
/// follows `anchor` in `text` (within a few lines of it).
fn stated_after(text: &str, anchor: &str, file: &str) -> u32 {
    let at = text
        .find(anchor)
        .unwrap_or_else(|| panic!("{file}: {anchor:?} is no longer there; update this test"));
    let after: String = text[at + anchor.len()..].chars().take(200).collect();
    let digits: String = after
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{file}: no number after {anchor:?}: {after:?}"))
}

#[test]
fn the_payload_pool_default_is_stated_as_the_library_applies_it() {
    let places = [
        ("README.md", "`SPANGUARD_DEFAULT_PAYLOAD_POOL_MIB`"),
        (
            "README.md",
            "| SPANGUARD_PAYLOAD_POOL_MIB | payload_pool_mib |",
        ),
        ("bindings/node/README.md", "`payloadPoolMib`"),
        ("bindings/node/index.d.ts", "The payload pool in MiB"),
        (
            "bindings/go/spanguard.go",
            "PayloadPoolMiB sizes the payload pool",
        ),
        (
            "include/spanguard.h",
            "#define SPANGUARD_DEFAULT_PAYLOAD_POOL_MIB",
        ),
    ];
    let mut wrong = Vec::new();
    for (file, anchor) in places {
        let n = stated_after(&read(file), anchor, file);
        if n != DEFAULT_PAYLOAD_POOL_MIB {
            wrong.push(format!("{file}: after {anchor:?} says {n}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "the payload pool's default is {DEFAULT_PAYLOAD_POOL_MIB} MiB, but:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_cuts_and_sizes_a_long_value_meets_are_stated_as_the_library_applies_them() {
    // What cuts an LLM-sized span, or where it is counted lost, as README
    // states it. The scope's 256-byte cut was in no README sentence: an
    // instrumentation named past it arrived cut, counted, undocumented.
    let d = TracerConfig::default();
    let places: [(&str, usize); 9] = [
        ("Names and keys are cut at", MAX_NAME_BYTES),
        ("Names and keys are cut at", MAX_KEY_BYTES),
        (", tracestates at", MAX_TRACESTATE_BYTES),
        (
            "instrumentation scope names and versions at",
            MAX_SCOPE_BYTES,
        ),
        (
            "| SPANGUARD_MAX_REQUEST_BYTES | max_request_bytes |",
            d.max_request_bytes,
        ),
        (
            "| SPANGUARD_SINK_MAX_LINE_BYTES | sink_max_line_bytes |",
            d.sink_max_line_bytes,
        ),
        (
            "A line is at most `SPANGUARD_SINK_MAX_LINE_BYTES`",
            d.sink_max_line_bytes >> 20,
        ),
        (
            "| SPANGUARD_SPOOL_MAX_BYTES | spool_max_mib |",
            (d.spool_max_bytes >> 20) as usize,
        ),
        ("**bytes** in the variable (", d.spool_max_bytes as usize),
    ];
    let readme = read("README.md");
    let mut wrong = Vec::new();
    for (anchor, applied) in places {
        let n = stated_after(&readme, anchor, "README.md") as usize;
        if n != applied {
            wrong.push(format!(
                "after {anchor:?} says {n}, the library applies {applied}"
            ));
        }
    }
    assert!(wrong.is_empty(), "README.md:\n{}", wrong.join("\n"));
}
