//! The promise of `span::printable`, written out from the standards
//! rather than through its code, so that a character missing there is
//! caught here: one input checked, by the unit test over every code point
//! and generated strings, and by the `printable` fuzz target over any
//! bytes (which compiles this file in as it is).

use super::printable::{is_shown_as_is, printable, printable_cut, printable_text};

/// What may not reach a terminal or a log line: C0, DEL and C1
/// (Unicode's Cc), the bidirectional controls (UAX #9: ALM, LRM, RLM,
/// LRE..RLO, LRI..PDI) and the line and paragraph separators.
pub fn drives_a_terminal_or_a_reader(c: char) -> bool {
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

/// What shows as a blank and is not the space: White_Space as PropList.txt
/// (Unicode 16.0) lists it past ASCII, but the controls and separators
/// above, and U+2800 BRAILLE PATTERN BLANK (So, drawn as an empty cell).
pub fn looks_blank(c: char) -> bool {
    matches!(
        c as u32,
        0x00a0 // NO-BREAK SPACE
            | 0x1680 // OGHAM SPACE MARK
            | 0x2000
            ..=0x200a // EN QUAD..HAIR SPACE
            | 0x202f // NARROW NO-BREAK SPACE
            | 0x205f // MEDIUM MATHEMATICAL SPACE
            | 0x3000 // IDEOGRAPHIC SPACE
            | 0x2800 // BRAILLE PATTERN BLANK
    )
}

/// What a reader cannot see: Default_Ignorable_Code_Point as
/// DerivedCoreProperties.txt (Unicode 16.0) lists it, line by line, and
/// the interlinear annotation marks (U+FFF9..U+FFFB).
pub fn is_hidden(c: char) -> bool {
    matches!(
        c as u32,
        0x00ad // SOFT HYPHEN
            | 0x034f // COMBINING GRAPHEME JOINER
            | 0x061c // ARABIC LETTER MARK
            | 0x115f..=0x1160 // HANGUL CHOSEONG FILLER..HANGUL JUNGSEONG FILLER
            | 0x17b4..=0x17b5 // KHMER VOWEL INHERENT AQ..AA
            | 0x180b..=0x180d // MONGOLIAN FREE VARIATION SELECTOR ONE..THREE
            | 0x180e // MONGOLIAN VOWEL SEPARATOR
            | 0x180f // MONGOLIAN FREE VARIATION SELECTOR FOUR
            | 0x200b..=0x200f // ZERO WIDTH SPACE..RIGHT-TO-LEFT MARK
            | 0x202a..=0x202e // LEFT-TO-RIGHT EMBEDDING..RIGHT-TO-LEFT OVERRIDE
            | 0x2060..=0x2064 // WORD JOINER..INVISIBLE PLUS
            | 0x2065 // reserved
            | 0x2066..=0x206f // LEFT-TO-RIGHT ISOLATE..NOMINAL DIGIT SHAPES
            | 0x3164 // HANGUL FILLER
            | 0xfe00..=0xfe0f // VARIATION SELECTOR-1..16
            | 0xfeff // ZERO WIDTH NO-BREAK SPACE
            | 0xffa0 // HALFWIDTH HANGUL FILLER
            | 0xfff0..=0xfff8 // reserved
            | 0xfff9..=0xfffb // INTERLINEAR ANNOTATION ANCHOR..TERMINATOR
            | 0x1bca0..=0x1bca3 // SHORTHAND FORMAT LETTER OVERLAP..UP STEP
            | 0x1d173..=0x1d17a // MUSICAL SYMBOL BEGIN BEAM..END PHRASE
            | 0xe0000 // reserved
            | 0xe0001 // LANGUAGE TAG
            | 0xe0002..=0xe001f // reserved
            | 0xe0020..=0xe007f // TAG SPACE..CANCEL TAG
            | 0xe0080..=0xe00ff // reserved
            | 0xe0100..=0xe01ef // VARIATION SELECTOR-17..256
            | 0xe01f0..=0xe0fff // reserved
    )
}

/// The subdivision flags Unicode recommends (emoji-sequences.txt):
/// U+1F3F4, the tags of gbeng, gbsct or gbwls, CANCEL TAG.
fn recommended_flags() -> [Vec<char>; 3] {
    ["gbeng", "gbsct", "gbwls"].map(|region| {
        let mut flag = vec!['\u{1f3f4}'];
        flag.extend(
            region
                .chars()
                .map(|c| char::from_u32(0xe0000 + c as u32).expect("a tag is a character")),
        );
        flag.push('\u{e007f}');
        flag
    })
}

/// Whether the hidden character at `shown[i]` stands where real text has
/// it: a joiner between visible non-ASCII characters (or after one's
/// variation selector), a variation selector right after a visible
/// non-ASCII character (an emoji one after a keycap's digit, `#` or `*`
/// too), the Mongolian vowel separator between a Mongolian letter and a
/// final a or e, a tag inside a recommended flag.
fn stands_where_text_has_it(shown: &[char], i: usize) -> bool {
    let at = |j: Option<usize>| j.and_then(|j| shown.get(j).copied());
    let prev = at(i.checked_sub(1));
    let next = at(Some(i + 1));
    let visible = |c: Option<char>| {
        c.is_some_and(|c| {
            !c.is_ascii()
                && !c.is_whitespace()
                && !is_hidden(c)
                && !drives_a_terminal_or_a_reader(c)
        })
    };
    let selector = |c: Option<char>| {
        c.is_some_and(
            |c| matches!(c as u32, 0xfe00..=0xfe0f | 0xe0100..=0xe01ef | 0x180b..=0x180d | 0x180f),
        )
    };
    let c = shown[i];
    match c as u32 {
        0x200c | 0x200d => {
            (visible(prev) || (selector(prev) && visible(at(i.checked_sub(2))))) && visible(next)
        }
        0xfe0e | 0xfe0f => visible(prev) || matches!(prev, Some('0'..='9' | '#' | '*')),
        _ if selector(Some(c)) => visible(prev),
        0x180e => {
            prev.is_some_and(|p| ('\u{1820}'..='\u{18aa}').contains(&p))
                && matches!(next, Some('\u{1820}' | '\u{1821}'))
        }
        0xe0020..=0xe007f => recommended_flags().iter().any(|flag| {
            (1..flag.len()).any(|k| {
                i.checked_sub(k)
                    .is_some_and(|start| shown[start..].starts_with(flag))
            })
        }),
        _ => false,
    }
}

/// `shown` with its escapes read back (`\n`, `\r`, `\t`, `\xNN`,
/// `\u{N..}`): for text with no backslash of its own, the text itself.
fn unescaped(shown: &str) -> String {
    let mut out = String::new();
    let mut rest = shown;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (c, len) = match after.as_bytes().first() {
            Some(b'n') => ('\n', 1),
            Some(b'r') => ('\r', 1),
            Some(b't') => ('\t', 1),
            Some(b'x') => (
                char::from(u8::from_str_radix(&after[1..3], 16).expect("\\xNN")),
                3,
            ),
            Some(b'u') => {
                let end = after.find('}').expect("\\u{...}");
                let n = u32::from_str_radix(&after[2..end], 16).expect("hex");
                (char::from_u32(n).expect("a character"), end + 1)
            }
            _ => panic!("{shown:?}: a backslash that is no escape"),
        };
        out.push(c);
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// The longest one character is shown as: `\u{NNNNN}` (a tag).
const MOST_CHARS_SHOWN_PER_CHAR: usize = 9;

/// Checks `printable` and `printable_cut` on one input: nothing left
/// that drives a terminal, nothing hidden but where real text has it,
/// every character there (as itself or its escape), shown text shown
/// again unchanged, the length bounded as documented, the cut on a
/// character with the count of exactly the bytes left out, and the same
/// answer twice.
pub fn check_one(bytes: &[u8], max_chars: usize) {
    let text = String::from_utf8_lossy(bytes);
    let shown = printable(&text);
    check_shown(&shown, &format!("{bytes:?}"));
    assert_eq!(shown, printable(&text), "{bytes:?}: not deterministic");
    if !text
        .chars()
        .any(|c| drives_a_terminal_or_a_reader(c) || is_hidden(c) || looks_blank(c))
    {
        assert_eq!(shown, text, "{bytes:?}: plain text changed");
    }
    // A value shown whole: the same, but its blanks as they are.
    let mut blanks_escaped = String::new();
    for c in printable_text(&text).chars() {
        match c {
            c if looks_blank(c) => blanks_escaped.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => blanks_escaped.push(c),
        }
    }
    assert_eq!(blanks_escaped, shown, "{bytes:?}: shown whole");
    if !text.contains('\\') {
        assert_eq!(unescaped(&shown), text, "{bytes:?}: words lost");
    }

    let cut = printable_cut(bytes, max_chars);
    assert_eq!(
        cut,
        printable_cut(bytes, max_chars),
        "{bytes:?}: not deterministic"
    );
    check_shown(&cut, &format!("{bytes:?} cut to {max_chars}"));
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

/// Text as shown (whole or cut): nothing that drives a terminal, nothing
/// hidden but where real text has it, and shown again unchanged.
pub fn check_shown(shown: &str, what: &str) {
    let chars: Vec<char> = shown.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        assert!(
            !drives_a_terminal_or_a_reader(c),
            "{what} shown as {shown:?}: {c:?}"
        );
        assert!(
            !is_hidden(c) || stands_where_text_has_it(&chars, i),
            "{what} shown as {shown:?}: {c:?} at {i}"
        );
        assert!(!looks_blank(c), "{what} shown as {shown:?}: {c:?} at {i}");
    }
    assert!(
        is_shown_as_is(shown),
        "{what} shown as {shown:?}, then as {:?}",
        printable(shown)
    );
}
