//! How `spanguard show` and `tail` cut text to a column (src/bin/spanguard/
//! terminal.rs, compiled in here as it is in the command, with the CLI
//! modules it reads): `fit` and `fit_padded`, on text as `clean` makes it
//! of a span's name (escapes among wide, zero-width and plain characters)
//! and on text as it came, at any width. Each is total; a cut keeps the
//! longest run of whole characters and escapes that leaves room for its
//! ellipsis, never splits an escape (found here by its own reading of
//! the escapes `span::printable` writes, not the cut's), and never takes
//! more columns than it was given; padded, it takes exactly them. A
//! span's status message on its line (`status_words`) stays within its
//! columns however many of its characters become escapes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanguard::export::otlp_decode::DecodedSpan;

#[allow(dead_code)]
#[path = "../../../src/bin/spanguard/chat.rs"]
mod chat;
#[allow(dead_code)]
#[path = "../../../src/bin/spanguard/clock_text.rs"]
mod clock_text;
#[allow(dead_code)]
#[path = "../../../src/bin/spanguard/locks.rs"]
mod locks;
#[allow(dead_code)]
#[path = "../../../src/bin/spanguard/settings.rs"]
mod settings;
#[allow(dead_code)]
#[path = "../../../src/bin/spanguard/sources.rs"]
mod sources;
#[allow(dead_code)]
#[path = "../../../src/bin/spanguard/terminal.rs"]
mod terminal;
#[allow(dead_code)]
#[path = "../../../src/bin/spanguard/traces.rs"]
mod traces;

use terminal::{STATUS_CHARS, cells, clean, fit, fit_padded, status_words};

/// The length of the escape `span::printable` writes that starts at `s`
/// (`\n`, `\r`, `\t`, `\xHH`, `\u{H...}` of 1 to 6 hex digits), if one
/// does: written from printable's forms, apart from the cut's reading.
fn escape_at(s: &[u8]) -> Option<usize> {
    let hex = |b: &u8| b.is_ascii_hexdigit();
    match s {
        [b'\\', b'n' | b'r' | b't', ..] => Some(2),
        [b'\\', b'x', a, b, ..] if hex(a) && hex(b) => Some(4),
        [b'\\', b'u', b'{', rest @ ..] => {
            let digits = rest.iter().take_while(|b| hex(b)).count();
            ((1..=6).contains(&digits) && rest.get(digits) == Some(&b'}')).then_some(digits + 4)
        }
        _ => None,
    }
}

/// Checks the cut of `s` to `n` columns, and its padded form.
fn check_fit(s: &str, n: usize) {
    let cut = fit(s, n);
    let padded = fit_padded(s, n);
    assert!(
        padded.starts_with(&cut),
        "{s:?} {n}: {padded:?} is not {cut:?} padded"
    );
    assert!(padded[cut.len()..].bytes().all(|b| b == b' '));
    if cells(s) <= n {
        assert_eq!(cut, s, "{s:?} fits in {n} and was cut");
        assert_eq!(cells(&padded), n, "{s:?} padded to {n}: {padded:?}");
        return;
    }
    assert!(cells(&cut) <= n, "{s:?} cut to {n}: {cut:?} is wider");
    assert_eq!(cells(&padded), n, "{s:?} padded to {n}: {padded:?}");
    if n == 0 {
        // Not even the ellipsis fits.
        assert_eq!(cut, "", "{s:?} cut to no column");
        return;
    }
    let kept = cut.strip_suffix('…').expect("a cut ends in an ellipsis");
    assert!(
        s.starts_with(kept),
        "{s:?} cut to {n}: {cut:?} is not its start"
    );
    let at = kept.len();
    // No escape of `s` holds the cut within it.
    for (i, _) in s.char_indices().take_while(|&(i, _)| i < at) {
        if let Some(len) = escape_at(&s.as_bytes()[i..]) {
            assert!(
                i + len <= at,
                "{s:?} cut to {n} within the escape at {i}: {cut:?}"
            );
        }
    }
    // The longest such start: the next character or escape would leave
    // no room for the ellipsis.
    let rest = &s[at..];
    let next =
        escape_at(rest.as_bytes()).unwrap_or_else(|| rest.chars().next().map_or(0, char::len_utf8));
    assert!(next > 0, "{s:?} cut to {n} at its end: {cut:?}");
    assert!(
        cells(kept) + cells(&rest[..next]) > n.saturating_sub(1),
        "{s:?} cut to {n}: {cut:?} stops short of {:?}",
        &rest[..next]
    );
}

fuzz_target!(|data: &[u8]| {
    // The first byte says the width (0 to 255 columns), the rest is text.
    let Some((&n, text)) = data.split_first() else {
        return;
    };
    let n = usize::from(n);
    let text = String::from_utf8_lossy(text);
    // As a name is drawn: cleaned first, cut after.
    check_fit(&clean(&text), n);
    // As text came (a caller that cuts first): still total and within
    // its columns, though its escapes are the text's own.
    check_fit(&text, n);
    // A status message on a span's line, whatever it holds.
    let span = DecodedSpan {
        status_code: 2,
        status_message: text.into_owned(),
        ..DecodedSpan::default()
    };
    let (words, _) = status_words(&span, traces::Ending::Normal);
    assert!(
        cells(&words) <= "ERROR ".len() + STATUS_CHARS,
        "{} columns for a status message: {words:?}",
        cells(&words)
    );
});
