//! Text from outside as a terminal or a log line shows it: a server's
//! words, names of files others put in a shared directory, what a span
//! holds (an LLM's completion, a user's prompt). Such text may hold an
//! escape sequence (clear the screen, set the clipboard with OSC 52, a
//! hidden OSC 8 link, the window's title), a carriage return that
//! overwrites the line, a line break that forges a `spanguard: error:`
//! line of its own, or a bidirectional control that turns what follows
//! around (and hides an ERROR after it, as "Trojan Source" hides code).
//! Each of those is written visibly instead (`\x1b`, `\n`, `\u{202e}`):
//! the library's stderr lines and error callback, every command of the
//! CLI and its HTML page use this one rule.
//!
//! A backslash is left as it is (Windows paths and JSON read as written),
//! so a value holding the four characters `\x1b` looks like one holding
//! an escape: shown, never interpreted, either way.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` is written as an escape rather than as itself: the C0 and
/// C1 controls and DEL, the bidirectional controls (embeddings,
/// overrides, isolates, marks), and the line and paragraph separators a
/// log reader (JavaScript, Python's `splitlines`) takes for a line break.
pub fn is_escaped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Appends `c` as it is shown: `\n`, `\r`, `\t`, another control as
/// `\xNN`, the others `is_escaped` names as `\u{NNNN}`, anything else as
/// itself.
pub fn push_shown(out: &mut String, c: char) {
    // Writes to a String cannot fail.
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_control() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if is_escaped(c) => {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// `text` with every character `is_escaped` names written as an escape
/// (`push_shown`): one line that drives nothing. Borrowed when there is
/// none.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        push_shown(&mut out, c);
    }
    Cow::Owned(out)
}

/// `printable`, of the first `max_chars` characters of `bytes` (each
/// sequence that is no UTF-8 one character, U+FFFD), then, when there
/// were more, how many bytes were left out: a server's 200 MB message is
/// one line of a known length, and the reader knows it was cut and by
/// how much. Only what is shown is decoded.
pub fn printable_cut(bytes: &[u8], max_chars: usize) -> String {
    let mut out = String::new();
    let mut chars = 0;
    let mut used = 0;
    'pieces: for piece in bytes.utf8_chunks() {
        for c in piece.valid().chars() {
            if chars == max_chars {
                break 'pieces;
            }
            push_shown(&mut out, c);
            chars += 1;
            used += c.len_utf8();
        }
        if !piece.invalid().is_empty() {
            if chars == max_chars {
                break;
            }
            out.push(char::REPLACEMENT_CHARACTER);
            chars += 1;
            used += piece.invalid().len();
        }
    }
    if used < bytes.len() {
        let _ = write!(out, "... ({} more bytes)", bytes.len() - used);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Escape sequences (erase the screen, OSC 52 clipboard, OSC 8 link,
    /// the title), a CR, a line break forging a line of ours, C1 controls,
    /// NUL, DEL, bidi overrides and isolates, the line separator: each is
    /// shown, none is left in the text.
    #[test]
    fn every_control_is_shown_and_none_left() {
        let hostile = "a\x1b[2J\x1b]52;c;SGVsbG8=\x07\x1b]8;;http://e\x1b\\l\x1b]0;t\x07\rOVER\n\
                       spanguard: error: forged\u{202e}RTL\u{2066}\u{9b}31m\u{85}\0\x7f\u{2028}\u{2029}\u{200f}z\t";
        let shown = printable(hostile);
        assert_eq!(
            shown,
            "a\\x1b[2J\\x1b]52;c;SGVsbG8=\\x07\\x1b]8;;http://e\\x1b\\l\\x1b]0;t\\x07\\rOVER\\n\
             spanguard: error: forged\\u{202e}RTL\\u{2066}\\x9b31m\\x85\\x00\\x7f\\u{2028}\\u{2029}\\u{200f}z\\t"
        );
        assert!(!shown.chars().any(is_escaped));
    }

    #[test]
    fn plain_text_is_borrowed_as_it_is() {
        let text = "HTTP 404: not found é 日本 \\x1b C:\\Users";
        assert!(matches!(printable(text), Cow::Borrowed(t) if t == text));
    }

    /// A megabyte is one bounded line that says how much was left out,
    /// cut on a character (never inside one) and escaped after the cut.
    #[test]
    fn a_long_text_is_cut_with_a_count_of_what_was_left_out() {
        let long = format!("é\n{}", "x".repeat(1 << 20));
        assert_eq!(
            printable_cut(long.as_bytes(), 4),
            format!("é\\nxx... ({} more bytes)", long.len() - 5)
        );
        assert_eq!(printable_cut(b"short\r", 6), "short\\r");
        assert_eq!(printable_cut(b"", 0), "");
        // Bytes that are no UTF-8 are one character each, and counted.
        assert_eq!(
            printable_cut(b"\xff\xfe\x1b[2J\xc0\x80ok", 3),
            "\u{fffd}\u{fffd}\\x1b... (7 more bytes)"
        );
    }
}
