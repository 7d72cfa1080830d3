//! Text from outside as a terminal or a log line shows it: a server's
//! words, names of files others put in a shared directory, what a span
//! holds (an LLM's completion, a user's prompt). Such text may hold an
//! escape sequence (clear the screen, set the clipboard with OSC 52, a
//! hidden OSC 8 link, the window's title), a carriage return that
//! overwrites the line, a line break that forges a `spanguard: error:`
//! line of its own, a bidirectional control that turns what follows
//! around (and hides an ERROR after it, as "Trojan Source" hides code),
//! or characters no one sees: a zero-width space splitting a word a
//! reader searches for, or Unicode's tag characters, which spell out
//! ASCII invisibly ("ASCII smuggling": an instruction hidden in an LLM's
//! text that a model reads and a reader of the span does not). Each of
//! those is written visibly instead (`\x1b`, `\n`, `\u{202e}`,
//! `\u{200b}`, `\u{e0041}`): the library's stderr lines and error
//! callback, every command of the CLI and its HTML page use this one rule.
//!
//! What is invisible is Unicode's own list, Default_Ignorable_Code_Point
//! (characters a renderer shows as nothing), and the interlinear
//! annotation marks U+FFF9..U+FFFB, whose annotation a renderer may hide.
//! A few of them real text needs, and those are left as they are where,
//! and only where, that text has them (so that each hides at most one
//! character between two visible ones, never a message):
//! - the zero-width non-joiner and joiner (U+200C, U+200D) between two
//!   visible non-ASCII characters: Persian and Indic words (`می‌خواهم`,
//!   after a virama), emoji sequences (`👩‍💻`, `❤️‍🔥`);
//! - one variation selector directly after a visible non-ASCII character
//!   (`❤️`, a Japanese name's ideographic variant `葛󠄀`, Mongolian's free
//!   variation selectors), and U+FE0E/U+FE0F after a digit, `#` or `*`
//!   (the keycap `1️⃣`);
//! - the Mongolian vowel separator between a Mongolian letter and the
//!   final a or e it separates;
//! - the tags of the three subdivision flags Unicode recommends
//!   (England, Scotland, Wales) after U+1F3F4.
//!
//! Anywhere else (between ASCII letters, at either end, two in a row)
//! each is escaped. The GitHub and VS Code warnings about hidden text
//! and clippy's `invisible_characters` flag the same characters; `less`
//! shows a format character as `<U+200B>` only with `-U`.
//!
//! Characters that show as a blank and are not the space (Unicode's
//! White_Space past ASCII: the no-break, en, em, thin, hair, narrow
//! no-break, medium mathematical and ideographic spaces, the Ogham space
//! mark; and U+2800 BRAILLE PATTERN BLANK, an empty cell) are escaped too
//! (`\u{00a0}`, `\u{3000}`) in what is one line or one name: a span name
//! with a no-break space looks like another with a space and is not the
//! same, and one at the end of a name or a column looks like nothing.
//! A value shown whole (`printable_text`: `spanguard show --full`, the
//! HTML page's values) keeps them as they are: an LLM's French answer
//! has a no-break space before each `:` and `?`, a Chinese or Japanese
//! one an ideographic space in every paragraph, and there they read as
//! what they are, blanks, where a `\u{00a0}` at every one would not.
//!
//! A backslash is left as it is (Windows paths and JSON read as written),
//! so a value holding the four characters `\x1b` looks like one holding
//! an escape: shown, never interpreted, either way.

use std::borrow::Cow;
use std::fmt::Write as _;

const ZWNJ: char = '\u{200c}';
const ZWJ: char = '\u{200d}';
const MONGOLIAN_VOWEL_SEPARATOR: char = '\u{180e}';
const WAVING_BLACK_FLAG: char = '\u{1f3f4}';
/// The tags after U+1F3F4 of the subdivision flags Unicode recommends
/// (emoji-sequences.txt, RGI_Emoji_Tag_Sequence): gbeng, gbsct, gbwls,
/// each closed by CANCEL TAG.
const FLAG_TAGS: [&str; 3] = [
    "\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f}",
    "\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}",
    "\u{e0067}\u{e0062}\u{e0077}\u{e006c}\u{e0073}\u{e007f}",
];

/// Characters a renderer shows as nothing: Unicode's
/// Default_Ignorable_Code_Point (DerivedCoreProperties.txt, Unicode 15.1
/// and 16.0 alike) and the interlinear annotation marks U+FFF9..U+FFFB.
fn is_invisible(c: char) -> bool {
    matches!(
        c as u32,
        0x00ad
            | 0x034f
            | 0x061c
            | 0x115f..=0x1160
            | 0x17b4..=0x17b5
            | 0x180b..=0x180f
            | 0x200b..=0x200f
            | 0x202a..=0x202e
            | 0x2060..=0x206f
            | 0x3164
            | 0xfe00..=0xfe0f
            | 0xfeff
            | 0xffa0
            | 0xfff0..=0xfffb
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0000..=0xe0fff
    )
}

/// Characters shown as a blank that are not the space: White_Space
/// (PropList.txt) past ASCII but the controls and line separators (which
/// are escaped anyway), and U+2800 BRAILLE PATTERN BLANK. Escaped but in
/// a value shown whole (see the module's words).
fn looks_blank(c: char) -> bool {
    matches!(
        c as u32,
        0x00a0 | 0x1680 | 0x2000..=0x200a | 0x202f | 0x205f | 0x3000 | 0x2800
    )
}

/// The variation selectors: standardized and emoji (U+FE00..U+FE0F),
/// ideographic (U+E0100..U+E01EF) and Mongolian free ones.
fn is_variation_selector(c: char) -> bool {
    matches!(c as u32, 0xfe00..=0xfe0f | 0xe0100..=0xe01ef | 0x180b..=0x180d | 0x180f)
}

/// The invisible characters real text needs, left as they are in the
/// places `walk` allows them.
fn is_needed_in_place(c: char) -> bool {
    matches!(c, ZWNJ | ZWJ | MONGOLIAN_VOWEL_SEPARATOR)
        || is_variation_selector(c)
        || matches!(c as u32, 0xe0020..=0xe007f)
}

/// Whether `c` is written as an escape wherever it stands: the C0 and C1
/// controls and DEL, the line and paragraph separators a log reader
/// (JavaScript, Python's `splitlines`) takes for a line break, and every
/// invisible character (the bidirectional controls among them) but the
/// few real text needs, which `printable` escapes by where they stand.
pub fn is_escaped(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}')
        || (is_invisible(c) && !is_needed_in_place(c))
}

/// A character shown as itself that a joiner or a variation selector may
/// stand beside: not ASCII, not a space or a blank, not invisible, not
/// escaped (the same whether a reading keeps the blanks or not).
fn is_visible_non_ascii(c: char) -> bool {
    !c.is_ascii() && !c.is_whitespace() && !looks_blank(c) && !is_invisible(c) && !is_escaped(c)
}

/// What was shown just before, for the invisible characters allowed only
/// after some characters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Before {
    /// The start, a space, an ASCII character that is no keycap's, an
    /// escape, or an invisible character (no base for another).
    Nothing,
    /// A digit, `#` or `*`: a keycap's base.
    Keycap,
    /// A visible non-ASCII character.
    Letter(char),
    /// A visible non-ASCII character with its variation selector: a
    /// joiner may follow, a second selector not.
    Selected,
}

/// What a reading leaves as it is that `printable` escapes.
#[derive(Clone, Copy)]
struct Kept<'a> {
    /// These characters (the HTML page's line breaks and tabs).
    chars: &'a [char],
    /// The blanks that are not the space (`looks_blank`): a value shown
    /// whole.
    blanks: bool,
}

/// One line, one name: every control, invisible character and blank
/// that is not the space escaped.
const ONE_LINE: Kept<'static> = Kept {
    chars: &[],
    blanks: false,
};

/// Tells `each` every character of `text` in order, with whether it is
/// written as an escape; what `kept` says is left as it is all the same.
fn walk(text: &str, kept: Kept<'_>, mut each: impl FnMut(char, bool)) {
    let mut before = Before::Nothing;
    // Tags of a recommended subdivision flag still to come.
    let mut flag_tags = 0usize;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if flag_tags > 0 {
            flag_tags -= 1;
            each(c, false);
            // No sequence Unicode recommends goes on after a flag's tags.
            before = Before::Nothing;
            continue;
        }
        let next = chars.peek().map(|&(_, n)| n);
        let escaped = if kept.chars.contains(&c) {
            false
        } else if looks_blank(c) {
            !kept.blanks
        } else {
            match c {
                ZWNJ | ZWJ => {
                    !(matches!(before, Before::Letter(_) | Before::Selected)
                        && next.is_some_and(is_visible_non_ascii))
                }
                MONGOLIAN_VOWEL_SEPARATOR => {
                    !(matches!(before, Before::Letter(p) if ('\u{1820}'..='\u{18aa}').contains(&p))
                        && matches!(next, Some('\u{1820}' | '\u{1821}')))
                }
                '\u{fe0e}' | '\u{fe0f}' => !matches!(before, Before::Letter(_) | Before::Keycap),
                c if is_variation_selector(c) => !matches!(before, Before::Letter(_)),
                c => is_invisible(c) || is_escaped(c),
            }
        };
        if c == WAVING_BLACK_FLAG {
            let after = &text[at + c.len_utf8()..];
            if let Some(tags) = FLAG_TAGS.iter().find(|t| after.starts_with(*t)) {
                flag_tags = tags.chars().count();
            }
        }
        each(c, escaped);
        before = if escaped || (is_invisible(c) && !is_variation_selector(c)) {
            Before::Nothing
        } else if is_variation_selector(c) {
            match before {
                Before::Letter(_) => Before::Selected,
                _ => Before::Nothing,
            }
        } else if matches!(c, '0'..='9' | '#' | '*') {
            Before::Keycap
        } else if is_visible_non_ascii(c) {
            Before::Letter(c)
        } else {
            Before::Nothing
        };
    }
}

/// Appends `c` as an escape: `\n`, `\r`, `\t`, another control as `\xNN`,
/// anything else as `\u{NNNN}`.
fn push_escape(out: &mut String, c: char) {
    // Writes to a String cannot fail.
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_control() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
    }
}

/// `text` as shown, `kept` left as they are: borrowed when nothing is
/// escaped.
fn shown<'a>(text: &'a str, kept: Kept<'_>) -> Cow<'a, str> {
    let mut any = false;
    walk(text, kept, |_, escaped| any |= escaped);
    if !any {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    walk(text, kept, |c, escaped| {
        if escaped {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    });
    Cow::Owned(out)
}

/// `text` with every control, line separator, invisible character and
/// blank that is not the space written as an escape, but the invisible
/// characters real text needs where it needs them (see the module's
/// words): one line that drives nothing and hides nothing. Borrowed when
/// there is none.
pub fn printable(text: &str) -> Cow<'_, str> {
    shown(text, ONE_LINE)
}

/// `printable`, but the blanks that are not the space left as they are:
/// for a value shown whole (`spanguard show --full`), read as text, not
/// told apart from another.
pub fn printable_text(text: &str) -> Cow<'_, str> {
    shown(
        text,
        Kept {
            chars: &[],
            blanks: true,
        },
    )
}

/// `printable`, but line breaks and tabs left as they are: for a page
/// (the HTML one) that shows a span's name and words.
pub fn printable_with_line_breaks(text: &str) -> Cow<'_, str> {
    shown(
        text,
        Kept {
            chars: &['\n', '\t'],
            blanks: false,
        },
    )
}

/// `printable_text`, with line breaks and tabs left as they are too: for
/// the page's values, shown whole, a prompt's paragraphs as written.
pub fn printable_text_with_line_breaks(text: &str) -> Cow<'_, str> {
    shown(
        text,
        Kept {
            chars: &['\n', '\t'],
            blanks: true,
        },
    )
}

/// Whether `text` is shown as it is (`printable` changes nothing): what
/// a check of text already shown asks.
pub fn is_shown_as_is(text: &str) -> bool {
    matches!(printable(text), Cow::Borrowed(_))
}

/// `printable`, of the first `max_chars` characters of `bytes` (each
/// sequence that is no UTF-8 one character, U+FFFD), then, when there
/// were more, how many bytes were left out (`left_out`): a server's
/// 200 MB message is one line of a known length, and the reader knows it
/// was cut and by how much.
pub fn printable_cut(bytes: &[u8], max_chars: usize) -> String {
    let (mut out, left) = printable_head(bytes, max_chars);
    if left > 0 {
        out.push_str(&left_out(left));
    }
    out
}

/// `printable`, of the first `max_chars` characters of `bytes`, and how
/// many bytes were left out after them: for a message that writes the
/// count apart (after the quotes around a value). Only what is shown is
/// decoded; a joiner just before the cut joins nothing shown, so it is
/// escaped.
pub fn printable_head(bytes: &[u8], max_chars: usize) -> (String, usize) {
    let mut kept = String::new();
    let mut chars = 0;
    let mut used = 0;
    'pieces: for piece in bytes.utf8_chunks() {
        for c in piece.valid().chars() {
            if chars == max_chars {
                break 'pieces;
            }
            kept.push(c);
            chars += 1;
            used += c.len_utf8();
        }
        if !piece.invalid().is_empty() {
            if chars == max_chars {
                break;
            }
            kept.push(char::REPLACEMENT_CHARACTER);
            chars += 1;
            used += piece.invalid().len();
        }
    }
    (printable(&kept).into_owned(), bytes.len() - used)
}

/// How a cut text says what it left out: `... (N more bytes)`.
pub fn left_out(bytes: usize) -> String {
    format!("... ({bytes} more bytes)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::printable_check::{check_one, drives_a_terminal_or_a_reader, is_hidden};

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

    /// Text a reader cannot see is shown: an instruction spelled in tag
    /// characters after a harmless word ("ASCII smuggling", which an LLM
    /// reads and a terminal shows as nothing), a zero-width space or
    /// joiner or a soft hyphen splitting a word a reader searches for, a
    /// word joiner, a byte order mark, the invisible operators, a Hangul
    /// filler, a run of variation selectors after an emoji (bytes hidden
    /// one per selector) and a selector after a letter.
    #[test]
    fn invisible_text_is_shown() {
        let smuggled: String = "ignore previous"
            .chars()
            .map(|c| char::from_u32(0xe0000 + c as u32).unwrap())
            .collect();
        assert_eq!(
            printable(&format!("ok{smuggled}")),
            "ok\\u{e0069}\\u{e0067}\\u{e006e}\\u{e006f}\\u{e0072}\\u{e0065}\\u{e0020}\
             \\u{e0070}\\u{e0072}\\u{e0065}\\u{e0076}\\u{e0069}\\u{e006f}\\u{e0075}\\u{e0073}"
        );
        for (text, shown) in [
            ("ERR\u{200b}OR", "ERR\\u{200b}OR"),
            ("pass\u{ad}word", "pass\\u{00ad}word"),
            ("ab\u{200c}cd\u{200d}e", "ab\\u{200c}cd\\u{200d}e"),
            ("\u{200d}\u{1f600}", "\\u{200d}\u{1f600}"),
            ("\u{1f600}\u{200d}", "\u{1f600}\\u{200d}"),
            (
                "\u{1f469}\u{200d}\u{200d}\u{1f4bb}",
                "\u{1f469}\\u{200d}\\u{200d}\u{1f4bb}",
            ),
            (
                "a\u{2060}b\u{feff}c\u{2062}d\u{2064}",
                "a\\u{2060}b\\u{feff}c\\u{2062}d\\u{2064}",
            ),
            (
                "\u{3164}\u{ffa0}\u{115f}\u{34f}\u{17b4}",
                "\\u{3164}\\u{ffa0}\\u{115f}\\u{034f}\\u{17b4}",
            ),
            ("\u{180e}x", "\\u{180e}x"),
            (
                "\u{fff9}seen\u{fffa}hidden\u{fffb}",
                "\\u{fff9}seen\\u{fffa}hidden\\u{fffb}",
            ),
            (
                "\u{1f600}\u{fe0f}\u{fe01}\u{e0100}\u{e01ef}",
                "\u{1f600}\u{fe0f}\\u{fe01}\\u{e0100}\\u{e01ef}",
            ),
            ("a\u{fe0f}b\u{e0100}", "a\\u{fe0f}b\\u{e0100}"),
            (
                "\u{1f3f4}\u{e0067}\u{e0062}",
                "\u{1f3f4}\\u{e0067}\\u{e0062}",
            ),
            (
                "\u{e0001}\u{e0065}\u{e006e}",
                "\\u{e0001}\\u{e0065}\\u{e006e}",
            ),
        ] {
            assert_eq!(printable(text), shown, "{text:?}");
        }
    }

    /// What real text needs stays as written where it has it: ZWNJ in a
    /// Persian word and after a Devanagari virama, ZWJ in emoji (a
    /// profession, a flame heart after its selector, a family), an emoji
    /// selector and a keycap, an ideographic variant, a Mongolian vowel
    /// separator and free variation selector, the flags of England,
    /// Scotland and Wales.
    #[test]
    fn joiners_and_selectors_real_text_has_are_kept() {
        for text in [
            "\u{645}\u{6cc}\u{200c}\u{62e}\u{648}\u{627}\u{647}\u{645}",
            "\u{915}\u{94d}\u{200c}\u{937} \u{915}\u{94d}\u{200d}\u{937}",
            "\u{1f469}\u{200d}\u{1f4bb} \u{2764}\u{fe0f}\u{200d}\u{1f525}",
            "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}\u{200d}\u{1f466}",
            "\u{1f469}\u{1f3fd}\u{200d}\u{1f52c}",
            "\u{2764}\u{fe0f} \u{263a}\u{fe0e} 1\u{fe0f}\u{20e3} #\u{fe0f}\u{20e3}",
            "\u{845b}\u{e0100}\u{57ce}",
            "\u{1828}\u{1822}\u{1837}\u{180e}\u{1820} \u{1820}\u{180b}",
            "\u{1f3f4}\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f}",
            "\u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}",
            "\u{1f3f4}\u{e0067}\u{e0062}\u{e0077}\u{e006c}\u{e0073}\u{e007f}",
        ] {
            assert!(
                matches!(printable(text), Cow::Borrowed(_)),
                "{text:?}: {}",
                printable(text)
            );
        }
        // The HTML page's reading keeps line breaks and tabs, escapes the rest.
        assert_eq!(
            printable_with_line_breaks("a\n\tb\r\u{200b}\u{1f469}\u{200d}\u{1f4bb}\n\u{200d}"),
            "a\n\tb\\r\\u{200b}\u{1f469}\u{200d}\u{1f4bb}\n\\u{200d}"
        );
        // A joiner just before a cut joins nothing shown.
        assert_eq!(
            printable_cut("\u{1f469}\u{200d}\u{1f4bb}".as_bytes(), 2),
            "\u{1f469}\\u{200d}... (4 more bytes)"
        );
    }

    /// A name or a line with a blank that is not the space (no-break, en,
    /// em, thin, hair, ideographic, a braille blank) looked like one with
    /// a space, or at its end like one without: escaped there. A value
    /// shown whole keeps them (French and CJK text has them everywhere).
    #[test]
    fn blanks_that_are_not_the_space_are_shown_in_a_name_and_kept_in_a_value() {
        for (text, shown) in [
            ("agent\u{a0}run", "agent\\u{00a0}run"),
            ("agent run\u{3000}", "agent run\\u{3000}"),
            ("\u{2800}", "\\u{2800}"),
            (
                "a\u{2000}b\u{2007}c\u{200a}d\u{202f}e\u{205f}f\u{1680}",
                "a\\u{2000}b\\u{2007}c\\u{200a}d\\u{202f}e\\u{205f}f\\u{1680}",
            ),
            // No base for a joiner: escaped after a blank, kept or not.
            ("\u{2800}\u{200d}\u{1f600}", "\\u{2800}\\u{200d}\u{1f600}"),
        ] {
            assert_eq!(printable(text), shown, "{text:?}");
            assert!(!is_shown_as_is(text), "{text:?}");
        }
        let answer = "Bonjour\u{a0}! Voici\u{202f}: 第一段\u{3000}内容\n";
        assert_eq!(
            printable_text(answer),
            "Bonjour\u{a0}! Voici\u{202f}: 第一段\u{3000}内容\\n"
        );
        assert_eq!(
            printable_text_with_line_breaks(answer),
            answer,
            "the page's values"
        );
        assert_eq!(
            printable_text("\u{2800}\u{200d}\u{1f600}"),
            "\u{2800}\\u{200d}\u{1f600}"
        );
        assert_eq!(
            printable_with_line_breaks("a\u{a0}b\n"),
            "a\\u{00a0}b\n",
            "the page's names"
        );
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

    /// Every byte alone, every code point up to U+FFFF and past it (each
    /// control, bidi control, separator and invisible character among
    /// them), and 20,000 strings from a fixed-seed generator (bytes that
    /// are no UTF-8 or cut characters, controls, bidi marks, joiners and
    /// selectors where text has them and where it does not, tags, wide
    /// characters), cut anywhere: nothing that drives a terminal comes
    /// out, nothing hidden but where real text has it, every character is
    /// there as itself or its escape, the length is bounded, and the same
    /// input is shown the same way.
    #[test]
    fn no_input_leaves_a_control_and_every_cut_is_bounded() {
        for b in 0..=255u8 {
            for max in [0, 1, 2] {
                check_one(&[b], max);
                check_one(&[b, b'x', b], max);
            }
        }
        for c in (0..=0x10ffffu32).filter_map(char::from_u32) {
            let standards = drives_a_terminal_or_a_reader(c) || is_hidden(c);
            // Escaped wherever it stands: only what the standards name.
            if is_escaped(c) {
                assert!(standards, "{c:?} is escaped");
            }
            // Alone, everything they name is escaped.
            if standards {
                assert!(
                    !is_shown_as_is(c.encode_utf8(&mut [0; 4])),
                    "{c:?} is not escaped"
                );
            }
            if (c as u32) < 0x3000 || (c as u32).is_multiple_of(4099) || standards {
                let mut buf = [0; 4];
                check_one(c.encode_utf8(&mut buf).as_bytes(), 0);
            }
        }
        // xorshift64, so that a failure repeats.
        let mut seed = 0x5eed_0048_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        const PIECES: [&str; 32] = [
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
            "\u{200b}",
            "\u{200c}",
            "\u{200d}",
            "\u{fe0f}",
            "\u{fe0e}",
            "\u{fe01}",
            "\u{e0100}",
            "\u{e0041}",
            "\u{e007f}",
            "\u{1f3f4}\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f}",
            "\u{1f3f4}",
            "\u{94d}",
            "\u{645}",
            "\u{1820}",
            "\u{1837}",
            "\u{180e}",
            "\u{180b}",
            "\u{ad}",
            "1",
            "#",
        ];
        for _ in 0..20_000 {
            let mut bytes = Vec::new();
            for _ in 0..next() % 24 {
                let r = next();
                match r % 4 {
                    0 => bytes.push((r >> 8) as u8),
                    1 | 2 if r % 16 < 12 => {
                        bytes.extend_from_slice(PIECES[(r >> 8) as usize % PIECES.len()].as_bytes())
                    }
                    1 | 2 => {
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
