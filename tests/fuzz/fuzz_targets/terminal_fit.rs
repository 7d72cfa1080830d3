//! How `spanguard show` and `tail` cut text to a column (src/bin/spanguard/
//! terminal.rs, compiled in here as it is in the command, with the CLI
//! modules it reads): `fit` and `fit_padded`, on text as `clean` makes it
//! of a span's name (escapes among wide, zero-width and plain characters)
//! and on text as it came, at any width. Each is total; a cut keeps the
//! longest run of whole sequences and escapes that leaves room for its
//! ellipsis, never splits an escape (found here by its own reading of
//! the escapes `span::printable` writes, not the cut's) nor a sequence
//! (no mark, joiner, selector or skin tone cut off its character, no
//! emoji after a joiner, no flag's second letter, no ligature unicode-
//! width measures: judged by unicode-width's measure of the whole, not
//! the cut's reading of sequences), and never takes more columns than it
//! was given; padded, it takes exactly them. Its bytes stay within
//! `SEQUENCE_BYTES` a column ("Zalgo" text: thousands of marks on one
//! letter), its characters all the text's, in order. A span's status
//! message on its line (`status_words`) stays within its columns however
//! many of its characters become escapes.
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

use terminal::{SEQUENCE_BYTES, STATUS_CHARS, cells, clean, fit, fit_padded, status_words};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

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

/// Whether `kept` is made of characters of `s`, in order (a cut view
/// drops marks past a sequence's first characters, adds none).
fn is_drawn_from(kept: &str, s: &str) -> bool {
    let mut source = s.chars();
    kept.chars().all(|k| source.any(|c| c == k))
}

/// Whether `next` after `last` (after `letters` flag letters in a row)
/// is drawn as part of the sequence `last` ends: a character of no width
/// of its own (a mark, a joiner, a selector, a tag), a skin tone, an
/// emoji after a joiner, a flag's second letter, `\n` after `\r`.
fn joins(last: char, next: char, letters: usize) -> bool {
    let letter = |c: char| matches!(c as u32, 0x1f1e6..=0x1f1ff);
    next.width() == Some(0)
        || matches!(next as u32, 0x1f3fb..=0x1f3ff)
        || (last == '\u{200d}' && next.width().is_some())
        || (letters % 2 == 1 && letter(next))
        || (last == '\r' && next == '\n')
}

/// Whether cutting `s` at byte `at` splits a sequence a terminal draws
/// as one (`joins`), or a ligature: unicode-width measures the halves
/// apart as other than the whole.
fn splits_a_sequence(s: &str, at: usize) -> bool {
    let (before, after) = s.split_at(at);
    let (Some(last), Some(next)) = (before.chars().next_back(), after.chars().next()) else {
        return false;
    };
    let letters = before
        .chars()
        .rev()
        .take_while(|&c| matches!(c as u32, 0x1f1e6..=0x1f1ff))
        .count();
    joins(last, next, letters) || before.width() + after.width() != s.width()
}

/// Whether `s` may hold a sequence of more characters than a cut view
/// shows of one, which it thins: a run (`joins`) of a third of them, as
/// ligatures (lam-alef) may chain a few runs into one sequence.
fn has_long_sequence(s: &str) -> bool {
    let mut run = 0;
    let mut letters = 0;
    let mut last = None;
    for c in s.chars() {
        run = match last {
            Some(l) if joins(l, c, letters) => run + 1,
            _ => 1,
        };
        if run >= terminal::SEQUENCE_CHARS / 3 {
            return true;
        }
        letters = if matches!(c as u32, 0x1f1e6..=0x1f1ff) {
            letters + 1
        } else {
            0
        };
        last = Some(c);
    }
    false
}

/// Checks the cut of `s` to `n` columns, and its padded form.
fn check_fit(s: &str, n: usize, bounded: bool) {
    let cut = fit(s, n);
    let padded = fit_padded(s, n);
    assert!(
        padded.starts_with(&cut),
        "{s:?} {n}: {padded:?} is not {cut:?} padded"
    );
    assert!(padded[cut.len()..].bytes().all(|b| b == b' '));
    assert!(cells(&cut) <= n, "{s:?} cut to {n}: {cut:?} is wider");
    assert_eq!(cells(&padded), n, "{s:?} padded to {n}: {padded:?}");
    if bounded {
        // Text as a name is drawn, cleaned: no character of it goes
        // without a column of its own but on one that has one.
        assert!(
            cut.len() <= (n + 1) * SEQUENCE_BYTES,
            "{s:?} cut to {n}: {} bytes",
            cut.len()
        );
    }
    if cells(s) <= n && cut == s {
        return;
    }
    if n == 0 {
        // Not even the ellipsis fits.
        assert!(
            cut.is_empty() || cells(s) == 0,
            "{s:?} cut to no column: {cut:?}"
        );
        return;
    }
    let kept = cut.strip_suffix('…').unwrap_or(&cut);
    assert!(
        is_drawn_from(kept, s),
        "{s:?} cut to {n}: {cut:?} is not drawn from it"
    );
    if has_long_sequence(s) {
        // Its sequences past their first characters were left out: the
        // bytes bound is what holds there.
        return;
    }
    assert!(
        cut.ends_with('…') && s.starts_with(kept),
        "{s:?} cut to {n}: {cut:?} is no start of it and an ellipsis"
    );
    let at = kept.len();
    assert!(
        !splits_a_sequence(s, at),
        "{s:?} cut to {n} within a sequence: {cut:?}"
    );
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
    // no room for the ellipsis (said of a plain character the next one
    // does not join).
    let rest = &s[at..];
    assert!(!rest.is_empty(), "{s:?} cut to {n} at its end: {cut:?}");
    let mut next = rest.chars();
    if let (Some(c), after) = (next.next(), next.next())
        && c.is_ascii_graphic()
        && c != '\\'
        && after.is_none_or(|a| a.is_ascii())
    {
        assert!(
            cells(kept) + 1 > n - 1,
            "{s:?} cut to {n}: {cut:?} stops short of {c:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte says the width (0 to 255 columns), the rest is text.
    let Some((&n, text)) = data.split_first() else {
        return;
    };
    let n = usize::from(n);
    let text = String::from_utf8_lossy(text);
    // As a name is drawn: cleaned first, cut after.
    check_fit(&clean(&text), n, true);
    // As text came (a caller that cuts first): still total and within
    // its columns, though its escapes are the text's own.
    check_fit(&text, n, false);
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
