//! The terminal view of traces: one waterfall each, names indented by
//! parent, a time bar per span on the trace's scale, duration, status,
//! events, and GenAI token counts summed per trace. Colour only on a
//! terminal, and never with NO_COLOR.

use std::fmt::Write as _;

use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};

use spanguard::export::diagnostics::signal_name;
use spanguard::export::otlp_decode::{DecodedEvent, DecodedSpan, Value};

use super::chat::{BODY_KEY, CallNames, event_chats, gather, split, value_chat};
use super::clock_text::{duration, utc};
use super::sources::Origin;
use super::traces::{Counts, DRAWN_LEVELS, Ending, Node, SpanPick, Trace, hex};

/// How output looks.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
    /// Columns to fill.
    pub width: usize,
    /// Every attribute under each span.
    pub attributes: bool,
    /// Every value whole (`show --full`): attribute and event lines are
    /// not cut to the width, and a status message cut on its span's line
    /// is printed whole under it.
    pub whole: bool,
    /// The span (`show --span ID`) drawn with every attribute, event and
    /// status message whole, the others as the rest of the style says.
    pub span: Option<SpanPick>,
    /// How many hex digits of each span's id its line shows after its
    /// bar (what `--span` takes), 0 for none. The id showed only in a
    /// hint under a cut value, so README's `show --span ID` could not be
    /// followed.
    pub ids: usize,
}

impl Style {
    /// Colour when stdout is a terminal and NO_COLOR is unset (or as
    /// `--color` says); the width of the terminal, else COLUMNS, else 100.
    pub fn detect(color: Option<&str>, attributes: bool, whole: bool) -> Result<Style, String> {
        // SAFETY: isatty only inspects the descriptor.
        let tty = unsafe { libc::isatty(1) } == 1;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match color {
            None | Some("auto") => tty && !no_color,
            Some("always") => true,
            Some("never") => false,
            Some(other) => return Err(format!("--color {other}: not auto, always or never")),
        };
        let columns = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok());
        let width = if tty {
            terminal_width().or(columns)
        } else {
            columns
        };
        Ok(Style {
            color,
            width: width.unwrap_or(100).clamp(60, 400),
            attributes: attributes || whole,
            whole,
            span: None,
            ids: 0,
        })
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color && !text.is_empty() {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

fn terminal_width() -> Option<usize> {
    // SAFETY: TIOCGWINSZ fills a winsize we own.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then_some(ws.ws_col as usize)
}

const BOLD: &str = "1";
const DIM: &str = "2";
const RED: &str = "31";
const RED_BOLD: &str = "1;31";
const YELLOW: &str = "33";
const CYAN: &str = "36";
const MAGENTA: &str = "35";

/// Text from a span made safe for a terminal: control characters (an
/// escape sequence in a hostile value could clear the screen or rewrite
/// what is shown), bidi controls and line separators are written as
/// escapes, `\n`, `\x1b`, `\u{202e}`: the rule the library's messages
/// follow (`span::printable`).
pub fn clean(s: &str) -> String {
    spanguard::span::printable::printable(s).into_owned()
}

/// The columns `s` takes on a terminal: 2 a wide character (CJK, most
/// emoji), 0 a combining mark or a joiner, 1 the rest, and an emoji
/// sequence as one (`❤️`, a keycap `1️⃣`, a family `👨‍👩‍👧`, `👍🏽`, a flag:
/// 2), as unicode-width measures a string. Counted in characters, a
/// column of Chinese names was twice as wide as the one beside it said;
/// summed a character at a time, a family took 6 columns of the 2 a
/// terminal draws, and the bars after such names went out of line.
pub fn cells(s: &str) -> usize {
    s.width()
}

const ZWJ: char = '\u{200d}';

/// The most characters of one sequence (a character and the marks on
/// it, an emoji sequence) a cut view shows. A sequence takes a column or
/// two however long it is: "Zalgo" text, thousands of combining marks on
/// one letter, sent megabytes to the terminal for a one-line view of a
/// value. 16 keeps every emoji sequence Unicode lists (a kiss with two
/// skin tones is 10, a subdivision flag 7) and the few marks real
/// writing stacks (Vietnamese 2, Tibetan stacks under 10).
pub const SEQUENCE_CHARS: usize = 16;

/// The most bytes a sequence a cut view shows holds: an escape `clean`
/// wrote (at most 10, `\u{10ffff}`) or a character, and
/// `SEQUENCE_CHARS - 1` characters of at most 4 bytes after it.
pub const SEQUENCE_BYTES: usize = 10 + (SEQUENCE_CHARS - 1) * 4;

/// Whether `c` is an emoji modifier (a skin tone), drawn on the emoji
/// before it.
fn is_emoji_modifier(c: char) -> bool {
    matches!(c as u32, 0x1f3fb..=0x1f3ff)
}

/// Whether `c` is a regional indicator, two of which are a flag.
fn is_regional_indicator(c: char) -> bool {
    matches!(c as u32, 0x1f1e6..=0x1f1ff)
}

/// Whether two characters with columns of their own are drawn as one
/// ligature (Arabic lam-alef, Lisu tone letters): unicode-width gives
/// the pair fewer columns than the two apart.
fn is_ligature(a: char, b: char) -> bool {
    let mut pair = [0u8; 8];
    let first = a.encode_utf8(&mut pair).len();
    let len = first + b.encode_utf8(&mut pair[first..]).len();
    let pair = std::str::from_utf8(&pair[..len]).expect("two whole characters");
    cells(pair) != cells(&pair[..first]) + cells(&pair[first..])
}

/// The length in bytes of the sequence a terminal draws as one at the
/// start of `s` (0 for none): a character (or an escape) with the marks,
/// selectors and joiners after it, the emoji a joiner joins, a skin
/// tone, a flag's second letter, an alef after its lam. A cut keeps or
/// drops it whole: cut inside, `❤️` became a 1-column `❤` and a family a
/// man and a dangling joiner. Linear in its length.
fn sequence_len(s: &str) -> usize {
    // An escape `clean` wrote is one character as a cut goes: the marks
    // after it draw on its last.
    let head = escape_len(s).or_else(|| s.chars().next().map(char::len_utf8));
    let Some(mut len) = head else {
        return 0;
    };
    let first = s[..len].chars().next_back().expect("a head of a character");
    let chars = s[len..].chars();
    // The last character drawn with a column of its own, which a
    // ligature joins; the last of all, which a joiner is.
    let mut drawn = first;
    let mut last = first;
    let mut flag_letters = usize::from(is_regional_indicator(first));
    for c in chars {
        let own = c.width();
        let joins = own == Some(0)
            || (last == ZWJ && own.is_some())
            || is_emoji_modifier(c)
            || (flag_letters == 1 && is_regional_indicator(c))
            || (last == '\r' && c == '\n')
            || (own.is_some() && is_ligature(drawn, c));
        if !joins {
            break;
        }
        if own != Some(0) {
            drawn = c;
        }
        flag_letters += usize::from(is_regional_indicator(c));
        last = c;
        len += c.len_utf8();
    }
    len
}

/// The sequence `unit` as a cut view shows it: its character (or
/// escape) and the `SEQUENCE_CHARS - 1` characters after it.
fn thin(unit: &str) -> &str {
    let head = escape_len(unit).unwrap_or_else(|| unit.chars().next().map_or(0, char::len_utf8));
    match unit[head..].char_indices().nth(SEQUENCE_CHARS - 1) {
        Some((at, _)) => &unit[..head + at],
        None => unit,
    }
}

/// The length in bytes of the escape `clean` wrote at the start of `s`
/// (`\u{200b}`, `\x1b`, `\n`), None when `s` starts with none: a cut
/// keeps or drops it whole. (A value holding the same characters, which
/// `clean` leaves as they are, reads as an escape and is cut as one.)
fn escape_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.first() != Some(&b'\\') {
        return None;
    }
    match b.get(1)? {
        b'n' | b'r' | b't' => Some(2),
        b'x' if b.len() >= 4 && b[2].is_ascii_hexdigit() && b[3].is_ascii_hexdigit() => Some(4),
        b'u' if b.get(2) == Some(&b'{') => {
            let digits = s[3..].find('}')?;
            let hex = &s[3..3 + digits];
            (!hex.is_empty() && hex.len() <= 6 && hex.bytes().all(|h| h.is_ascii_hexdigit()))
                .then_some(3 + digits + 1)
        }
        _ => None,
    }
}

/// `s` as a line of at most `n` columns (`fit`), or whole when `whole`;
/// `cut` counts it when it was cut or thinned.
fn fit_or_whole(s: String, n: usize, whole: bool, cut: &mut usize) -> String {
    if whole {
        return s;
    }
    let shown = fit(&s, n);
    if shown != s {
        *cut += 1;
    }
    shown
}

/// A value printed whole (`--full`, `--span`): its own newlines start new
/// lines, each under the span's rail after a `┊` gutter, so that a
/// traceback or a prompt's paragraphs read as they were written (they
/// were one line of `\n`s, a 20 KB prompt's hundreds of them). Each line
/// is cleaned as any text from a span is, but its blanks that are not
/// the space (a no-break or an ideographic space) kept: read as text,
/// they are blanks (`span::printable`); only the newline is kept besides.
fn write_whole(out: &mut String, style: &Style, under: &str, text: &str, color: Option<&str>) {
    for (i, line) in text.split('\n').enumerate() {
        let gutter = if i == 0 { "" } else { "  ┊ " };
        let line = spanguard::span::printable::printable_text(line).into_owned();
        let _ = writeln!(
            out,
            "{}{}",
            style.paint(DIM, &format!("{under}{gutter}")),
            match color {
                Some(c) => style.paint(c, &line),
                None => line,
            }
        );
    }
}

/// An event's attributes in the order a line shows them: an exception's
/// message first. Its type came first, and at 80 columns the line was cut
/// in the message (`exception.message=payment service ret…`), the words
/// that say what went wrong.
fn event_attributes(e: &DecodedEvent) -> impl Iterator<Item = &(String, Value)> {
    let first = |(k, _): &&(String, Value)| e.name == "exception" && k == "exception.message";
    let firsts = e.attributes.iter().filter(first);
    firsts.chain(e.attributes.iter().filter(move |a| !first(a)))
}

/// `s` cut to `n` columns, with an ellipsis when cut: between two
/// sequences (`sequence_len`) or escapes, never in one; each sequence
/// shown with at most `SEQUENCE_CHARS` characters, so that a line's
/// bytes stay within `SEQUENCE_BYTES` a column. Cut by characters, a
/// name holding a zero-width space showed `\u{20…`, which says nothing,
/// and a wide character counted one column of the two it takes. Linear
/// in the length of `s` (values of 100 KB are cut).
pub fn fit(s: &str, n: usize) -> String {
    if cells(s) <= n {
        let (shown, rest) = take(s, n);
        if rest.is_empty() {
            return shown;
        }
        // A string unicode-width measures narrower than its sequences
        // one by one: cut as one that does not fit.
    }
    if n == 0 {
        // No room for the ellipsis either.
        return String::new();
    }
    let (mut shown, _) = take(s, n - 1);
    shown.push('…');
    shown
}

/// The sequences and escapes at the start of `s` that fit in `room`
/// columns, each thinned (`thin`), and what is left of `s`.
fn take(s: &str, room: usize) -> (String, &str) {
    let mut out = String::new();
    let mut used = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let len = sequence_len(rest);
        let shown = thin(&rest[..len]);
        debug_assert!(shown.len() <= SEQUENCE_BYTES, "{shown:?}");
        let width = cells(shown);
        if used + width > room {
            break;
        }
        out.push_str(shown);
        used += width;
        rest = &rest[len..];
    }
    (out, rest)
}

/// `s` cut to `n` columns (`fit`), then spaces to fill them: a column of
/// text from spans. `format!("{:<n$}")` pads by characters, one space
/// short for each wide character.
pub fn fit_padded(s: &str, n: usize) -> String {
    let mut out = fit(s, n);
    let pad = n.saturating_sub(cells(&out));
    out.extend(std::iter::repeat_n(' ', pad));
    out
}

/// The tree's levels above a span, at most `levels` of them: their
/// vertical lines, then, for a span deeper than that, its depth ("…40 "),
/// or as many spaces (`depth_shown`).
fn rails(n: &Node, levels: usize, depth_shown: bool) -> String {
    let drawn = n.rails.len().min(levels);
    let mut p = String::new();
    for &more in &n.rails[..drawn] {
        p.push_str(if more { "│  " } else { "   " });
    }
    if n.depth > drawn + 1 {
        let depth = format!("…{} ", n.depth);
        if depth_shown {
            p.push_str(&depth);
        } else {
            p.push_str(&" ".repeat(cells(&depth)));
        }
    }
    p
}

/// The tree drawn in front of a span's name.
fn tree_prefix(n: &Node, levels: usize) -> String {
    if n.depth == 0 {
        return String::new();
    }
    let mut p = rails(n, levels, true);
    p.push_str(if n.last { "└─ " } else { "├─ " });
    p
}

/// What goes under a span's tree line (its events and attributes).
fn continuation(n: &Node, levels: usize, has_children: bool) -> String {
    let mut p = String::new();
    if n.depth > 0 {
        p = rails(n, levels, false);
        p.push_str(if n.last { "   " } else { "│  " });
    }
    p.push_str(if has_children { "│ " } else { "  " });
    p
}

/// The status words after a span's bar, and their colour.
/// The most characters of a status message a span's line shows.
pub const STATUS_CHARS: usize = 160;

/// Whether a span's status message is cut on its line (`status_words`):
/// by the columns it takes shown, escaped, or thinned of the marks past
/// `SEQUENCE_CHARS` on a character. Then it is printed whole under
/// the line (`--full`, `--span`, the HTML page's row) or counted as cut.
pub fn status_is_cut(message: &str) -> bool {
    let shown = clean(message);
    fit(&shown, STATUS_CHARS) != shown
}

pub fn status_words(span: &DecodedSpan, ending: Ending) -> (String, Option<&'static str>) {
    let mut words = Vec::new();
    let mut color = None;
    if span.status_code == 2 {
        let message = &span.status_message;
        words.push(if message.is_empty() {
            "ERROR".to_string()
        } else {
            // Cut: a status message can be megabytes (an exception's
            // whole text), printed on the span's one line. Cut as shown,
            // escaped: its control characters take no column before.
            format!("ERROR {}", fit(&clean(message), STATUS_CHARS))
        });
        color = Some(RED_BOLD);
    }
    match ending {
        Ending::Interrupted => {
            let signal = span.attribute("spanguard.signal").and_then(|v| v.as_i64());
            words.push(match signal {
                Some(s) => format!(
                    "INTERRUPTED by {} ({s})",
                    signal_name(i32::try_from(s).unwrap_or(0))
                ),
                None => "INTERRUPTED (process killed)".to_string(),
            });
            color = color.or(Some(YELLOW));
        }
        Ending::StillOpen => {
            words.push("OPEN (process running)".to_string());
            color = color.or(Some(YELLOW));
        }
        Ending::Unended => {
            words.push("UNENDED (ended at shutdown)".to_string());
            color = color.or(Some(YELLOW));
        }
        Ending::Normal => {}
    }
    (words.join("  "), color)
}

/// GenAI details of an LLM span: its model and token counts.
pub fn genai_words(span: &DecodedSpan) -> String {
    let mut parts = Vec::new();
    let model = span
        .attribute("gen_ai.response.model")
        .or_else(|| span.attribute("gen_ai.request.model"))
        .or_else(|| span.attribute("llm.model_name"))
        .or_else(|| span.attribute("ai.model.id"))
        .and_then(|v| v.as_str());
    if let Some(m) = model {
        parts.push(clean(m));
    }
    // The AI SDK's names where the GenAI ones are not (generateText's own
    // span: the sum of its model calls).
    let counts = Counts::of(span);
    match (counts.input, counts.output) {
        // OpenLLMetry's LangChain and streamed calls may record only the
        // sum (llm.usage.total_tokens): the span showed no count at all.
        (None, None) => {
            if let Some(total) = counts.total {
                parts.push(format!("{total} tokens"));
            }
        }
        (i, o) => parts.push(format!(
            "{}→{} tokens",
            i.map_or("?".to_string(), |v| v.to_string()),
            o.map_or("?".to_string(), |v| v.to_string())
        )),
    }
    // Part of the output; a reasoning model's hidden work, which a
    // person reading "→60" would not guess was 48 of them.
    if let Some(r) = counts.reasoning.filter(|_| counts.any()) {
        parts.push(format!("({r} reasoning)"));
    }
    parts.join(" ")
}

/// The bar of a span on its trace's time scale, `width` cells.
fn bar(start: u64, end: u64, t0: u64, t1: u64, width: usize) -> (usize, usize) {
    let total = (t1 - t0).max(1) as f64;
    let from = ((start.saturating_sub(t0)) as f64 / total * width as f64).floor() as usize;
    let to = ((end.saturating_sub(t0)) as f64 / total * width as f64).ceil() as usize;
    let from = from.min(width - 1);
    (from, to.clamp(from + 1, width))
}

pub fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// The fewest cells of bar a span's line keeps when it shows its id.
pub const MIN_BAR_WITH_IDS: usize = 20;

/// A run of at least this many events of one name on a span is drawn as
/// one line (`• name ×N +first … +last`) unless `style.whole`.
pub const FOLD_EVENTS: usize = 4;

/// What `render_trace` left out, so that the caller can say so and how
/// to see it (`--full`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Rendered {
    /// Values cut to fit the width (none with `style.whole`).
    pub cut: usize,
    /// Events drawn as part of a run's one line (none with `style.whole`).
    pub folded: usize,
}

/// One trace as a waterfall.
pub fn render_trace(t: &Trace, origins: &[Origin], style: &Style, out: &mut String) -> Rendered {
    let mut cut = 0;
    let mut folded = 0;
    let w = style.width;
    // Chats are drawn only whole (`--full`, `--span`): only then are the
    // trace's tool calls looked for, to name the results that answer them.
    let calls = if style.whole || style.span.is_some() {
        CallNames::of_spans(t.nodes.iter().map(|n| &n.span))
    } else {
        CallNames::default()
    };
    let head = format!(
        "trace {}  {}  {}",
        hex(&t.trace_id),
        clean(&t.services_named()),
        utc(t.start_ns)
    );
    let _ = writeln!(out, "{}", style.paint(BOLD, &head));
    let mut facts = vec![
        plural(t.nodes.len(), "span"),
        duration(t.end_ns - t.start_ns),
    ];
    if t.errors > 0 {
        facts.push(style.paint(RED_BOLD, &plural(t.errors, "error")));
    }
    if t.interrupted > 0 {
        facts.push(style.paint(YELLOW, &format!("{} interrupted", t.interrupted)));
    }
    if t.unended > 0 {
        facts.push(style.paint(
            YELLOW,
            &format!("{} never ended (ended at shutdown)", t.unended),
        ));
    }
    if !t.tokens.is_empty() {
        let mut words = format!("tokens {}", t.tokens.words());
        if let Some(gap) = &t.token_gap {
            words.push_str(&format!(" ({})", clean(&gap.words())));
        }
        facts.push(style.paint(MAGENTA, &words));
    }
    let _ = writeln!(out, "  {}", facts.join(" · "));
    let mut seen = Vec::new();
    for n in &t.nodes {
        if !seen.contains(&n.origin) {
            seen.push(n.origin);
        }
    }
    for o in seen {
        let origin = &origins[o];
        let live = origin
            .live_pid
            .map_or(String::new(), |p| format!(" (written now by pid {p})"));
        let line = format!(
            "  from {} {}{live}",
            origin.kind.describe(),
            clean(&origin.path.display().to_string())
        );
        let _ = writeln!(out, "{}", style.paint(DIM, &line));
    }

    // Columns: name | offset | duration | bar | status. The tree takes at
    // most half the name column (3 cells a level), so that names stay
    // readable however deep; deeper spans show their depth instead.
    let levels = (w * 2 / 5 / 2 / 3).clamp(2, DRAWN_LEVELS);
    let name_cells = t
        .nodes
        .iter()
        .map(|n| cells(&tree_prefix(n, levels)) + cells(&clean(&n.span.name)))
        .max()
        .unwrap_or(0)
        .clamp(12, w * 2 / 5);
    const NUM: usize = 9;
    let fixed = 2 + name_cells + 2 * (NUM + 1) + 2;
    // Each span's id right of its bar, in a column of its own within the
    // width (the status and GenAI words after it may run past), when the
    // bar keeps room to read; a narrow terminal keeps the bar. Right, not
    // in front as `git log --oneline` puts a hash: there it would push
    // the tree, and the event and attribute lines under it, to the right
    // and cut their values sooner.
    let id_cells = style.ids.min(16) + 2;
    let ids = style.ids > 0 && w.saturating_sub(fixed + id_cells) >= MIN_BAR_WITH_IDS;
    let fixed = if ids { fixed + id_cells } else { fixed };
    let bar_cells = w.saturating_sub(fixed).clamp(10, 60);
    for (i, n) in t.nodes.iter().enumerate() {
        let prefix = tree_prefix(n, levels);
        let name = fit(
            &clean(&n.span.name),
            name_cells.saturating_sub(cells(&prefix)).max(1),
        );
        let pad = name_cells.saturating_sub(cells(&prefix) + cells(&name));
        let (status, status_color) = status_words(&n.span, n.ending);
        let name_text = match status_color {
            Some(c) => style.paint(c, &name),
            None => name,
        };
        let end = n.span.end_unix_ns.max(n.span.start_unix_ns);
        let offset = match n.span.start_unix_ns.saturating_sub(t.start_ns) {
            0 => "0".to_string(),
            ns => format!("+{}", duration(ns)),
        };
        let (from, to) = bar(
            n.span.start_unix_ns,
            end,
            t.start_ns,
            t.end_ns.max(end),
            bar_cells,
        );
        let bar_color = status_color.unwrap_or(CYAN);
        let drawn = format!(
            "{}{}{}",
            " ".repeat(from),
            style.paint(bar_color, &"█".repeat(to - from)),
            " ".repeat(bar_cells - to)
        );
        let mut tail = Vec::new();
        if ids {
            tail.push(style.paint(DIM, &hex(&n.span.span_id)[..style.ids.min(16)]));
        }
        if !status.is_empty() {
            tail.push(match status_color {
                Some(c) => style.paint(c, &status),
                None => status,
            });
        }
        let genai = genai_words(&n.span);
        if !genai.is_empty() {
            tail.push(style.paint(MAGENTA, &genai));
        }
        if n.orphan {
            tail.push(style.paint(
                DIM,
                &format!("(parent {} not here)", hex(&n.span.parent_span_id)),
            ));
        }
        let line = format!(
            "  {}{name_text}{} {} {:>NUM$} │{drawn}│ {}",
            style.paint(DIM, &prefix),
            " ".repeat(pad),
            style.paint(DIM, &format!("{offset:>NUM$}")),
            duration(end - n.span.start_unix_ns),
            tail.join("  ")
        );
        let _ = writeln!(out, "{}", line.trim_end());
        let has_children = t.nodes.get(i + 1).is_some_and(|next| next.depth > n.depth);
        let under = format!("  {}", continuation(n, levels, has_children));
        let picked = style.span.is_some_and(|p| p.picks(&n.span.span_id));
        let whole = style.whole || picked;
        let cut_before = cut;
        if n.span.status_code == 2 && status_is_cut(&n.span.status_message) {
            // Cut on the span's line by `status_words`.
            if whole {
                let text = format!("status message = {}", n.span.status_message);
                write_whole(out, style, &under, &text, None);
            } else {
                cut += 1;
            }
        }
        let events = &n.span.events;
        let mut i = 0;
        while i < events.len() {
            let e = &events[i];
            let run = events[i..].iter().take_while(|x| x.name == e.name).count();
            let when =
                |x: &DecodedEvent| duration(x.time_unix_ns.saturating_sub(n.span.start_unix_ns));
            // A streamed completion recorded as one event a chunk
            // (OpenLLMetry's gen_ai.content.completion.chunk) printed
            // hundreds of alike lines that pushed the trace's other spans
            // (the slow call, the error) off the screen: a run of one name
            // is one line, which says how many and when (--full: each).
            let fold = run >= FOLD_EVENTS && !whole;
            // A GenAI event's messages (sent through the Logs API, put on
            // the span) read as a chat: shown whole, under its line; cut,
            // first on it (the words a person looks for, as an
            // exception's message): a body's message (`[user] What is…`:
            // it was `log.record.body={content: What is…`, a map's text,
            // cut in its first words), then a chat attribute's messages
            // (`gen_ai.input.messages=[system] …`, after eight attributes
            // of the call and cut at 400 columns).
            let chats = if fold {
                Vec::new()
            } else {
                event_chats(e, &calls)
            };
            let line = if fold {
                let last = &events[i + run - 1];
                format!("• {} ×{run} +{} … +{}", e.name, when(e), when(last))
            } else {
                let mut said = Vec::new();
                let mut attrs = Vec::new();
                for a in event_attributes(e) {
                    let chat = chats
                        .iter()
                        .find(|c| std::ptr::eq(&e.attributes[c.attribute], a));
                    match chat {
                        None => attrs.push(format!("{}={}", a.0, a.1)),
                        Some(_) if whole => {}
                        Some(c) if a.0 == BODY_KEY => said.push(c.text.clone()),
                        // `key = N messages (…):` then a line a message.
                        Some(c) => said.push(format!(
                            "{}={}",
                            a.0,
                            c.text.split_once('\n').map_or(c.text.as_str(), |(_, m)| m)
                        )),
                    }
                }
                said.push(attrs.join(" "));
                format!("• {} +{}  {}", e.name, when(e), said.join("  "))
            };
            if fold {
                folded += run;
                i += run;
            } else {
                i += 1;
            }
            let color = if e.name == "exception" { RED } else { DIM };
            if whole {
                write_whole(out, style, &under, line.trim_end(), Some(color));
                // Under the event's line, a step in: its own.
                let inner = format!("{under}  ");
                for c in &chats {
                    write_whole(out, style, &inner, &c.text, None);
                }
                continue;
            }
            let text = fit_or_whole(
                clean(&line),
                w.saturating_sub(cells(&under)),
                whole,
                &mut cut,
            );
            let _ = writeln!(
                out,
                "{}{}",
                style.paint(DIM, &under),
                style.paint(color, text.trim_end())
            );
        }
        if style.attributes || picked {
            // Indexed message attributes (OpenLLMetry, OpenInference) are
            // one chat a family, printed where its first one is.
            let mut chats_done = Vec::new();
            for (k, v) in &n.span.attributes {
                if whole {
                    let text = match split(k) {
                        Some((family, _, _)) if chats_done.contains(&family) => continue,
                        Some((family, _, _)) => {
                            chats_done.push(family);
                            gather(family, &n.span.attributes, &calls).text()
                        }
                        None => value_chat(k, v, &calls).unwrap_or_else(|| format!("{k} = {v}")),
                    };
                    write_whole(out, style, &under, &text, None);
                    continue;
                }
                let text = fit_or_whole(
                    clean(&format!("{k} = {v}")),
                    w.saturating_sub(cells(&under)),
                    whole,
                    &mut cut,
                );
                let _ = writeln!(out, "{}{}", style.paint(DIM, &under), text);
            }
        }
        // An ellipsis said a value was cut, and `--full` printed every
        // span of the trace whole: thirty 20 KB prompts to find one. The
        // span's id, under it, picks that one span.
        if cut > cut_before {
            let hint = format!(
                "(cut: spanguard show --span {} shows this span whole)",
                hex(&n.span.span_id)
            );
            let _ = writeln!(
                out,
                "{}{}",
                style.paint(DIM, &under),
                style.paint(DIM, &hint)
            );
        }
    }
    Rendered { cut, folded }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name of zero-width spaces, cut at every width: each cut ends
    /// between two escapes (`\u{20…` said nothing), within its columns.
    #[test]
    fn a_cut_never_splits_an_escape() {
        let name = clean("ab\u{200b}\u{200b}c\x1bd\u{e0041}\ne");
        assert_eq!(name, "ab\\u{200b}\\u{200b}c\\x1bd\\u{e0041}\\ne");
        let units = [
            "a",
            "b",
            "\\u{200b}",
            "\\u{200b}",
            "c",
            "\\x1b",
            "d",
            "\\u{e0041}",
            "\\n",
            "e",
        ];
        for n in 1..cells(&name) {
            let cut = fit(&name, n);
            assert!(cells(&cut) <= n, "{cut} wider than {n}");
            let kept = cut.strip_suffix('…').expect("an ellipsis");
            let whole = units
                .iter()
                .scan(String::new(), |s, u| {
                    s.push_str(u);
                    Some(s.clone())
                })
                .any(|prefix| prefix == kept);
            assert!(kept.is_empty() || whole, "cut {n}: {cut}");
        }
        assert_eq!(fit(&name, 14), "ab\\u{200b}…");
    }

    /// Wide characters take two columns: a column of Chinese names or
    /// emoji is cut and padded to the columns it takes, as the bars after
    /// it are drawn.
    #[test]
    fn wide_characters_are_cut_and_padded_by_their_columns() {
        assert_eq!(cells("检索文档"), 8);
        assert_eq!(cells("🔍search"), 8);
        assert_eq!(fit("检索文档并生成", 8), "检索文…");
        assert_eq!(cells(&fit("检索文档并生成", 8)), 7);
        assert_eq!(fit("检索文档并生成", 7), "检索文…");
        assert_eq!(fit_padded("检索", 6), "检索  ");
        assert_eq!(fit_padded("🔍🔍🔍🔍", 6), "🔍🔍… ");
        // A combining accent takes no column of its own.
        assert_eq!(cells("cafe\u{301}"), 4);
    }

    /// No column at all holds nothing, not even the ellipsis: "…" took
    /// the one column it was not given (the fuzz target terminal_fit
    /// found it).
    #[test]
    fn a_cut_to_no_column_is_empty() {
        assert_eq!(fit("abc", 0), "");
        assert_eq!(fit_padded("abc", 0), "");
        assert_eq!(fit("", 0), "");
        assert_eq!(fit("abc", 1), "…");
    }

    /// A status message of control characters is cut as it is shown,
    /// escaped: cut first, its 2,000 line breaks took no column each
    /// and were all kept, then shown as `\n`, 4,000 columns on the
    /// span's line (the fuzz target terminal_fit found it).
    #[test]
    fn a_status_message_of_escapes_keeps_to_its_columns() {
        let span = DecodedSpan {
            status_code: 2,
            status_message: "\n".repeat(2_000),
            ..DecodedSpan::default()
        };
        let (words, _) = status_words(&span, Ending::Normal);
        assert!(cells(&words) <= "ERROR ".len() + STATUS_CHARS, "{words}");
        assert!(words.starts_with("ERROR \\n\\n"), "{words}");
        assert!(words.ends_with('…'), "{words}");
        // And said to be cut, so that `--full` prints it whole under the
        // line (its 2,000 breaks took no column, and it was not): as cut
        // as a message of wide characters, never as one that fits.
        for (message, cut) in [
            ("\n".repeat(100), true),
            ("检".repeat(100), true),
            ("a".repeat(STATUS_CHARS), false),
            ("\u{200b}".repeat(20), false),
        ] {
            assert_eq!(status_is_cut(&message), cut, "{message:?}");
            let span = DecodedSpan {
                status_message: message.clone(),
                ..span.clone()
            };
            let (words, _) = status_words(&span, Ending::Normal);
            assert_eq!(words.ends_with('…'), cut, "{words}");
        }
    }

    const FAMILY: &str = "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}";
    const HEART: &str = "\u{2764}\u{fe0f}";
    const KEYCAP: &str = "1\u{fe0f}\u{20e3}";
    const THUMB: &str = "\u{1f44d}\u{1f3fd}";
    const FLAG: &str = "\u{1f1fa}\u{1f1f8}";

    /// Emoji sequences take the columns a terminal draws them in (2),
    /// not the sum of their characters' (a family 6, `❤️` 1), and a cut
    /// keeps or drops each whole: cut inside, a family was a man and a
    /// dangling joiner, `❤️` a 1-column `❤`.
    #[test]
    fn emoji_sequences_are_measured_and_cut_whole() {
        for seq in [FAMILY, HEART, KEYCAP, THUMB, FLAG] {
            assert_eq!(cells(seq), 2, "{seq:?}");
        }
        assert_eq!(cells(&format!("{HEART}ok")), 4);
        assert_eq!(fit(&format!("{FAMILY}{FAMILY}x"), 4), format!("{FAMILY}…"));
        assert_eq!(
            fit(&format!("{HEART}{HEART}{HEART}"), 4),
            format!("{HEART}…")
        );
        assert_eq!(fit(&format!("a{THUMB}b"), 3), "a…");
        let text = [FAMILY, "a", HEART, KEYCAP, "检", THUMB, FLAG, "e\u{301}"].concat();
        let ends: Vec<usize> = [FAMILY, "a", HEART, KEYCAP, "检", THUMB, FLAG, "e\u{301}"]
            .iter()
            .scan(0, |at, seq| {
                *at += seq.len();
                Some(*at)
            })
            .collect();
        for n in 0..=cells(&text) {
            let cut = fit(&text, n);
            assert!(cells(&cut) <= n, "{cut:?} wider than {n}");
            let kept = cut.strip_suffix('…').unwrap_or(&cut);
            assert!(text.starts_with(kept), "{n}: {cut:?}");
            assert!(
                kept.is_empty() || ends.contains(&kept.len()),
                "{n}: {cut:?}"
            );
        }
    }

    /// A column of names holding emoji sequences lines up: each name is
    /// cut and padded to the same columns, and the bars after them start
    /// in one column (with the sum of characters, a family's line was 4
    /// columns short of the others, `❤️`'s one too many).
    #[test]
    fn names_with_emoji_sequences_line_up() {
        // The columns a terminal draws, as unicode-width measures them.
        let drawn = |s: &str| unicode_width::UnicodeWidthStr::width(s);
        let names = [
            format!("{FAMILY} family"),
            format!("{HEART} like"),
            format!("key {KEYCAP}"),
            format!("{THUMB}{FLAG} ok"),
            "检索文档".to_string(),
            "plain".to_string(),
            FAMILY.repeat(40),
        ];
        for name in &names {
            for n in [1, 6, 7, 12, 30] {
                assert_eq!(drawn(&fit_padded(name, n)), n, "{name:?} in {n}");
            }
        }
        let root = [1u8; 8];
        let spans = names.iter().enumerate().map(|(i, name)| {
            let span = DecodedSpan {
                trace_id: [7; 16],
                span_id: [i as u8 + 1; 8],
                parent_span_id: if i == 0 { [0; 8] } else { root },
                name: name.clone(),
                start_unix_ns: 1_000 + i as u64,
                end_unix_ns: 2_000,
                ..DecodedSpan::default()
            };
            (span, 0)
        });
        let loaded = super::super::sources::Loaded {
            origins: vec![Origin {
                kind: super::super::sources::Kind::Sink,
                path: "sink.jsonl".into(),
                live_pid: None,
            }],
            spans: spans.collect(),
            problems: Vec::new(),
        };
        let (traces, origins, _) = super::super::traces::assemble(loaded);
        let style = Style {
            color: false,
            width: 100,
            attributes: false,
            whole: false,
            span: None,
            ids: 0,
        };
        let mut out = String::new();
        render_trace(&traces[0], &origins, &style, &mut out);
        let bar_opens: Vec<usize> = out
            .lines()
            .filter(|line| line.contains('█'))
            .map(|line| {
                let at = line.find(" │").expect("a bar");
                drawn(&line[..at])
            })
            .collect();
        assert_eq!(bar_opens.len(), names.len(), "{out}");
        assert!(
            bar_opens.iter().all(|&at| at == bar_opens[0]),
            "{bar_opens:?}\n{out}"
        );
    }

    /// "Zalgo" text, thousands of combining marks on one letter, takes a
    /// column a letter but sent all its bytes to a one-line view: a cut
    /// view keeps `SEQUENCE_CHARS` characters a sequence (bytes bounded
    /// by the columns), says it cut, and `--full` keeps it as written.
    #[test]
    fn combining_marks_are_bounded_in_cut_views() {
        let zalgo: String = "zalgo"
            .chars()
            .flat_map(|c| std::iter::once(c).chain(std::iter::repeat_n('\u{301}', 20_000)))
            .collect();
        assert_eq!(cells(&zalgo), 5);
        let shown = fit(&zalgo, 80);
        assert_eq!(cells(&shown), 5);
        assert_eq!(shown.chars().count(), 5 * SEQUENCE_CHARS);
        assert!(shown.len() <= 5 * SEQUENCE_BYTES, "{} bytes", shown.len());
        let cut = fit(&zalgo, 3);
        assert_eq!(
            cut.chars().filter(|c| c.is_ascii()).collect::<String>(),
            "za"
        );
        assert!(cut.ends_with('…') && cut.len() <= 3 * SEQUENCE_BYTES);
        assert!(fit_padded(&zalgo, 10).len() <= 10 * SEQUENCE_BYTES);
        // Vietnamese keeps its two marks, and is not cut.
        let viet = "Vie\u{302}\u{323}t";
        assert_eq!(fit(viet, 10), viet);
        let mut cut = 0;
        assert_eq!(fit_or_whole(viet.to_string(), 10, false, &mut cut), viet);
        assert_eq!(cut, 0);
        // Thinned, it is said to be cut (the hint names `--span`); whole,
        // it is written as it came.
        assert_ne!(fit_or_whole(zalgo.clone(), 80, false, &mut cut), zalgo);
        assert_eq!(cut, 1);
        assert_eq!(fit_or_whole(zalgo.clone(), 80, true, &mut cut), zalgo);
        assert!(status_is_cut(&zalgo));
        // A value of marks alone, on no letter, is bounded as well.
        let marks = "\u{301}".repeat(100_000);
        assert!(fit(&marks, 0).len() <= SEQUENCE_BYTES);
    }

    /// Marks after an escape draw on its last character: they go with
    /// it, and are thinned as a letter's are, counted after it (counted
    /// with the escape's own characters, `\x07` kept 3 marks fewer than
    /// a letter: the fuzz target terminal_fit found it).
    #[test]
    fn marks_after_an_escape_go_with_it() {
        let marks = "\u{301}".repeat(SEQUENCE_CHARS - 1);
        let text = format!("{}{marks}bc", clean("\x07"));
        assert_eq!(fit(&text, 80), text);
        assert_eq!(fit(&text, 5), format!("\\x07{marks}…"));
        let more = format!("{}{marks}\u{301}bc", clean("\x07"));
        assert_eq!(fit(&more, 80), text);
    }
}
