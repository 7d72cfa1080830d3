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

    /// What may not reach a terminal or a log line, written out from the
    /// standards rather than through `is_escaped`, so that a character
    /// missing there is caught here: C0, DEL and C1 (Unicode's Cc), the
    /// bidirectional controls (UAX #9: ALM, LRM, RLM, LRE..RLO, LRI..PDI)
    /// and the line and paragraph separators.
    fn drives_a_terminal_or_a_reader(c: char) -> bool {
        matches!(
            c as u32,
            0x00..=0x1f
                | 0x7f..=0x9f
                | 0x061c
                | 0x200e
                | 0x200f
                | 0x202a..=0x202e
                | 0x2066..=0x2069
                | 0x2028
                | 0x2029
        )
    }

    /// The longest one character is shown as: `\u{NNNN}` (every character
    /// `is_escaped` names past C1 is in the BMP).
    const MOST_CHARS_SHOWN_PER_CHAR: usize = 8;

    /// Checks `printable` and `printable_cut` on one input: nothing left
    /// that drives a terminal, the length bounded as documented, the cut
    /// on a character with the count of exactly the bytes left out, and
    /// the same answer twice.
    fn check_one(bytes: &[u8], max_chars: usize) {
        let text = String::from_utf8_lossy(bytes);
        let shown = printable(&text);
        assert!(
            !shown.chars().any(drives_a_terminal_or_a_reader),
            "{bytes:?} shown as {shown:?}"
        );
        assert_eq!(shown, printable(&text), "{bytes:?}: not deterministic");
        if !text.chars().any(drives_a_terminal_or_a_reader) && !text.chars().any(is_escaped) {
            assert_eq!(shown, text, "{bytes:?}: plain text changed");
        }

        let cut = printable_cut(bytes, max_chars);
        assert_eq!(
            cut,
            printable_cut(bytes, max_chars),
            "{bytes:?}: not deterministic"
        );
        assert!(
            !cut.chars().any(drives_a_terminal_or_a_reader),
            "{bytes:?} cut to {max_chars} shown as {cut:?}"
        );
        let chars = text.chars().count();
        if chars <= max_chars {
            // Nothing left out: the whole, as `printable` shows it.
            assert_eq!(cut, shown, "{bytes:?} cut to {max_chars}");
            return;
        }
        // The first `max_chars` characters, then the count of the bytes
        // after them, which decode to exactly the characters not shown.
        let kept: String = text.chars().take(max_chars).collect();
        let head = printable(&kept);
        let rest = cut.strip_prefix(&*head).unwrap_or_else(|| {
            panic!("{bytes:?} cut to {max_chars}: {cut:?} does not start with {head:?}")
        });
        let left_out: usize = rest
            .strip_prefix("... (")
            .and_then(|r| r.strip_suffix(" more bytes)"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{bytes:?} cut to {max_chars}: no count in {rest:?}"));
        assert!(
            left_out > 0 && left_out <= bytes.len(),
            "{bytes:?}: {left_out}"
        );
        let (shown_bytes, left_bytes) = bytes.split_at(bytes.len() - left_out);
        assert_eq!(
            String::from_utf8_lossy(shown_bytes),
            kept,
            "{bytes:?} cut to {max_chars}"
        );
        assert_eq!(
            String::from_utf8_lossy(left_bytes),
            text.chars().skip(max_chars).collect::<String>(),
            "{bytes:?} cut to {max_chars}"
        );
        // Bounded whatever the input: the documented length.
        assert!(
            cut.chars().count()
                <= max_chars * MOST_CHARS_SHOWN_PER_CHAR
                    + format!("... ({} more bytes)", bytes.len()).len(),
            "{bytes:?} cut to {max_chars}: {} characters",
            cut.chars().count()
        );
    }

    /// Every byte alone, every code point up to U+FFFF and past it (each
    /// bidi control, separator and control among them), and 10,000
    /// strings from a fixed-seed generator (bytes that are no UTF-8 or
    /// cut characters, controls, bidi marks, wide characters), cut
    /// anywhere: nothing that drives a terminal comes out, the length is
    /// bounded, and the same input is shown the same way.
    #[test]
    fn no_input_leaves_a_control_and_every_cut_is_bounded() {
        for b in 0..=255u8 {
            for max in [0, 1, 2] {
                check_one(&[b], max);
                check_one(&[b, b'x', b], max);
            }
            let c = char::from(b);
            assert_eq!(is_escaped(c), drives_a_terminal_or_a_reader(c), "{c:?}");
        }
        for c in (0..=0x10ffffu32).filter_map(char::from_u32) {
            if drives_a_terminal_or_a_reader(c) {
                assert!(is_escaped(c), "{c:?} is not escaped");
            }
            if (c as u32) < 0x3000 || (c as u32).is_multiple_of(4099) {
                let mut buf = [0; 4];
                check_one(c.encode_utf8(&mut buf).as_bytes(), 0);
            }
        }
        // xorshift64, so that a failure repeats.
        let mut seed = 0x5eed_0047_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        const PIECES: [&str; 12] = [
            "\x1b[2J",
            "\r",
            "\n",
            "\u{85}",
            "\u{9b}",
            "\u{202e}",
            "\u{2066}",
            "\u{2028}",
            "\u{61c}",
            "é",
            "日本",
            "\u{1f600}",
        ];
        for _ in 0..10_000 {
            let mut bytes = Vec::new();
            for _ in 0..next() % 24 {
                let r = next();
                match r % 4 {
                    0 => bytes.push((r >> 8) as u8),
                    1 => {
                        bytes.extend_from_slice(PIECES[(r >> 8) as usize % PIECES.len()].as_bytes())
                    }
                    2 => {
                        // A character cut short: its first bytes only.
                        let piece = PIECES[(r >> 8) as usize % PIECES.len()].as_bytes();
                        bytes.extend_from_slice(&piece[..1 + (r >> 16) as usize % piece.len()][..]);
                    }
                    _ => bytes.extend_from_slice(b"ok "),
                }
            }
            let max = match next() % 3 {
                0 => (next() % 8) as usize,
                1 => bytes.len(),
                _ => (next() % 40) as usize,
            };
            check_one(&bytes, max);
        }
    }
}
