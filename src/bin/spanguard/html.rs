//! `spanguard show --html`: the traces as one self-contained page (inline
//! CSS and script, nothing fetched): a timeline per trace, a panel with a
//! span's attributes, events and links on click, a search box, errors and
//! interrupted spans marked. The rows are rendered here, so the page reads
//! without its script too; the script adds the panel, search and folding.

use std::fmt::Write as _;

use spanguard::export::diagnostics::count;
use spanguard::export::otlp_decode::{Attributes, DecodedSpan};

use super::chat::CallNames;
use super::clock_text::{duration, utc};
use super::sources::Origin;
use super::terminal::{genai_words, status_is_cut, status_words};
use super::traces::{DRAWN_LEVELS, Ending, Node, Trace, hex, service_of};

/// Text made safe for HTML content and attribute values, and for a
/// terminal that shows the page's source (`cat`, `less -r`, a diff):
/// controls, bidi controls, line separators and invisible characters
/// written as `show` writes them (`span::printable`: an escape sequence
/// from a span reached the file as it was, and a right-to-left override
/// turned the page's rows around), line breaks and tabs kept (a prompt's
/// paragraphs are shown as written).
fn esc(s: &str) -> String {
    html_text(&spanguard::span::printable::printable_with_line_breaks(s))
}

/// `esc` for a value shown whole: its blanks that are not the space (a
/// no-break, an ideographic space) kept, as they read in its text
/// (`span::printable`), where a name or a status escapes them.
fn esc_value(s: &str) -> String {
    html_text(&spanguard::span::printable::printable_text_with_line_breaks(s))
}

/// `shown` with HTML's special characters as entities.
fn html_text(shown: &str) -> String {
    let mut out = String::with_capacity(shown.len());
    for c in shown.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const KINDS: [&str; 6] = ["", "internal", "server", "client", "producer", "consumer"];

/// A hue per service, so spans of one service share a colour across traces.
fn hue(service: &str) -> u32 {
    let h = service.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ b as u32).wrapping_mul(16_777_619)
    });
    // Keep clear of the reds and ambers that mark errors and interruptions.
    150 + h % 150
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64 * 100.0).clamp(0.0, 100.0)
    }
}

fn table(out: &mut String, title: &str, attrs: &Attributes, span_id: &str) {
    if attrs.is_empty() {
        return;
    }
    if !title.is_empty() {
        let _ = write!(out, "<h4>{}</h4>", esc(title));
    }
    out.push_str("<table class=\"kv\">");
    for (k, v) in attrs {
        value_row(out, k, &v.to_string(), span_id);
    }
    out.push_str("</table>");
}

/// A row of `key` and a long `value`: its first `SHOWN_VALUE_CHARS`, and
/// a note of how many more there are and how to see them: the command
/// that prints this one span (of id `span_id`) whole, where `--full`
/// printed every span of every trace.
fn value_row(out: &mut String, key: &str, value: &str, span_id: &str) {
    let (shown, more) = head_chars(value, SHOWN_VALUE_CHARS);
    let _ = write!(out, "<tr><th>{}</th><td>{}", esc(key), esc_value(shown));
    if more > 0 {
        // The whole value stays in the file the page was made from,
        // which may be a crash dump or a spool file, not text.
        let _ = write!(
            out,
            "<span class=\"note\"> … {more} more {}: <code>spanguard show --span {span_id}</code> shows the value whole</span>",
            if more == 1 { "character" } else { "characters" }
        );
    }
    out.push_str("</td></tr>");
}

/// The most characters of one value the page shows, and searches: a page
/// with every value whole was 120 MB for two spans of 5 MB values, and took
/// a browser a minute and a half to open (the LLM-sized data audit). A
/// prompt of 256 K characters is shown whole.
const SHOWN_VALUE_CHARS: usize = 256 * 1024;
const SEARCHED_VALUE_CHARS: usize = 4096;

/// The first `n` characters of `s`, and how many more it has.
fn head_chars(s: &str, n: usize) -> (&str, usize) {
    match s.char_indices().nth(n) {
        Some((at, _)) => (&s[..at], s[at..].chars().count()),
        None => (s, 0),
    }
}

fn details(out: &mut String, n: &Node, origin: &Origin, calls: &CallNames) {
    let s = &n.span;
    let id = hex(&s.span_id);
    let end = s.end_unix_ns.max(s.start_unix_ns);
    let (status, _) = status_words(&n.span, n.ending);
    let _ = write!(
        out,
        "<div class=\"details\" hidden><h3>{}</h3>",
        esc(&s.name)
    );
    if !status.is_empty() {
        let class = if n.error { "error" } else { "interrupted" };
        let _ = write!(out, "<p class=\"status {class}\">{}</p>", esc(&status));
    }
    out.push_str("<table class=\"kv\">");
    let mut row = |k: &str, v: String| {
        let _ = write!(out, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    };
    row("duration", duration(end - s.start_unix_ns));
    row("start", utc(s.start_unix_ns));
    row("end", utc(end));
    row(
        "kind",
        KINDS
            .get(s.kind as usize)
            .copied()
            .unwrap_or("?")
            .to_string(),
    );
    row("service", service_of(s).to_string());
    row("trace id", hex(&s.trace_id));
    row("span id", hex(&s.span_id));
    if !s.is_root() {
        row("parent id", hex(&s.parent_span_id));
    }
    if !s.scope_name.is_empty() {
        row(
            "scope",
            format!("{} {}", s.scope_name, s.scope_version)
                .trim()
                .to_string(),
        );
    }
    if !s.trace_state.is_empty() {
        row("tracestate", s.trace_state.clone());
    }
    row(
        "from",
        format!("{} {}", origin.kind.describe(), origin.path.display()),
    );
    if s.status_code == 2 && status_is_cut(&s.status_message) {
        // Cut in the status line above: an exception's whole traceback.
        value_row(out, "status message", &s.status_message, &id);
    }
    out.push_str("</table>");
    // A prompt and its completion as a chat (message by message, its
    // lines as lines), as `show --span` prints them; the attributes they
    // come from are still listed below.
    // A GenAI event's messages (sent through the Logs API) too, named by
    // the event (and the attribute they are in, when not its body).
    let mut chats: Vec<(String, String)> = super::chat::texts(&s.attributes, calls)
        .into_iter()
        .map(|c| match c.split_once(" = ") {
            Some((key, messages)) => (key.to_string(), messages.to_string()),
            None => (String::new(), c),
        })
        .collect();
    for e in &s.events {
        for c in super::chat::event_chats(e, calls) {
            let key = &e.attributes[c.attribute].0;
            chats.push(match c.text.split_once(" = ") {
                Some((_, messages)) if key != super::chat::BODY_KEY => {
                    (format!("{} {key}", e.name), messages.to_string())
                }
                _ => (e.name.clone(), c.text),
            });
        }
    }
    if !chats.is_empty() {
        out.push_str("<h4>Chat</h4><table class=\"kv chat\">");
        for (key, messages) in &chats {
            value_row(out, key, messages, &id);
        }
        out.push_str("</table>");
    }
    table(out, "Attributes", &s.attributes, &id);
    if s.dropped_attributes > 0 {
        let _ = write!(
            out,
            "<p class=\"note\">{} dropped</p>",
            count(u64::from(s.dropped_attributes), "attribute", "attributes")
        );
    }
    if !s.events.is_empty() {
        out.push_str("<h4>Events</h4><ol class=\"events\">");
        for e in &s.events {
            let class = if e.name == "exception" {
                " class=\"error\""
            } else {
                ""
            };
            let _ = write!(
                out,
                "<li{class}><b>{}</b> <span class=\"muted\">+{}</span>",
                esc(&e.name),
                esc(&duration(e.time_unix_ns.saturating_sub(s.start_unix_ns)))
            );
            table(out, "", &e.attributes, &id);
            out.push_str("</li>");
        }
        out.push_str("</ol>");
    }
    if !s.links.is_empty() {
        out.push_str("<h4>Links</h4><ol class=\"links\">");
        for l in &s.links {
            let _ = write!(
                out,
                "<li><a href=\"#t-{0}\">trace {0}</a> span <code>{1}</code>",
                hex(&l.trace_id),
                hex(&l.span_id)
            );
            table(out, "", &l.attributes, &id);
            out.push_str("</li>");
        }
        out.push_str("</ol>");
    }
    table(out, "Resource", &s.resource, &id);
    out.push_str("</div>");
}

/// What the search box matches a span by.
fn search_text(s: &DecodedSpan) -> String {
    let mut t = format!("{} {} {}", s.name, hex(&s.span_id), service_of(s));
    for (k, v) in s
        .attributes
        .iter()
        .chain(s.events.iter().flat_map(|e| e.attributes.iter()))
    {
        let v = v.to_string();
        let _ = write!(t, " {k}={}", head_chars(&v, SEARCHED_VALUE_CHARS).0);
    }
    for e in &s.events {
        let _ = write!(t, " {}", e.name);
    }
    t.to_lowercase()
}

fn trace_section(out: &mut String, t: &Trace, origins: &[Origin]) {
    // A tool's result is named by its call, wherever in the trace that is.
    let calls = CallNames::of_spans(t.nodes.iter().map(|n| &n.span));
    let id = hex(&t.trace_id);
    let span_ns = (t.end_ns - t.start_ns).max(1);
    let root = t
        .nodes
        .first()
        .map_or("(no spans)", |n| n.span.name.as_str());
    let _ = write!(
        out,
        "<section class=\"trace\" id=\"t-{id}\" data-trace-id=\"{id}\">\
         <div class=\"trace-head\"><button class=\"fold\" aria-label=\"fold\">▾</button>\
         <span class=\"trace-name\">{}</span><span class=\"svc\">{}</span>\
         <span class=\"muted\">{}</span><span>{}</span><span class=\"muted\">{}</span>",
        esc(root),
        esc(&t.services_named()),
        esc(&utc(t.start_ns)),
        esc(&duration(t.end_ns - t.start_ns)),
        count(t.nodes.len() as u64, "span", "spans")
    );
    if t.errors > 0 {
        let _ = write!(
            out,
            "<span class=\"badge error\">{} error{}</span>",
            t.errors,
            if t.errors == 1 { "" } else { "s" }
        );
    }
    if t.interrupted > 0 {
        let _ = write!(
            out,
            "<span class=\"badge interrupted\">{} interrupted</span>",
            t.interrupted
        );
    }
    if t.unended > 0 {
        let _ = write!(
            out,
            "<span class=\"badge interrupted\">{} never ended</span>",
            t.unended
        );
    }
    if !t.tokens.is_empty() {
        let _ = write!(
            out,
            "<span class=\"badge tokens\" title=\"GenAI tokens in this trace\">{} tokens</span>",
            esc(&t.tokens.words())
        );
    }
    if let Some(gap) = &t.token_gap {
        let _ = write!(
            out,
            "<span class=\"badge tokens\" title=\"a span says more tokens than the calls under it that are in this trace\">{}</span>",
            esc(&gap.words())
        );
    }
    let _ = write!(
        out,
        "<code class=\"tid\">{id}</code></div><div class=\"rows\">"
    );
    out.push_str("<div class=\"ruler\"><div class=\"name\"></div><div class=\"lane\">");
    for q in 0..=4u64 {
        let _ = write!(
            out,
            "<span style=\"left:{}%\">{}</span>",
            q * 25,
            if q == 0 {
                "0".to_string()
            } else {
                esc(&duration(span_ns * q / 4))
            }
        );
    }
    out.push_str("</div><div class=\"dur\"></div></div>");
    for n in &t.nodes {
        let s = &n.span;
        let end = s.end_unix_ns.max(s.start_unix_ns);
        let mut classes = vec!["span"];
        if n.error {
            classes.push("error");
        }
        match n.ending {
            Ending::Interrupted => classes.push("interrupted"),
            Ending::StillOpen => classes.push("open"),
            Ending::Unended => classes.push("unended"),
            Ending::Normal => {}
        }
        let left = pct(s.start_unix_ns.saturating_sub(t.start_ns), span_ns);
        let width = pct(end - s.start_unix_ns, span_ns).max(0.3);
        let (status, _) = status_words(&n.span, n.ending);
        let genai = genai_words(s);
        let kind = KINDS.get(s.kind as usize).copied().unwrap_or("");
        let _ = write!(
            out,
            "<div class=\"{}\" tabindex=\"0\" data-span-id=\"{}\" data-parent-id=\"{}\" \
             data-depth=\"{}\" data-search=\"{}\" style=\"--hue:{}\">\
             <div class=\"name\" style=\"padding-left:{}px\" title=\"{}\">",
            classes.join(" "),
            hex(&s.span_id),
            if s.is_root() {
                String::new()
            } else {
                hex(&s.parent_span_id)
            },
            n.depth,
            esc(&search_text(s)),
            hue(service_of(s)),
            8 + 16 * n.depth.min(DRAWN_LEVELS),
            esc(&s.name)
        );
        if !kind.is_empty() && kind != "internal" {
            let _ = write!(out, "<span class=\"kind\">{kind}</span>");
        }
        let _ = write!(out, "{}", esc(&s.name));
        if !status.is_empty() {
            let _ = write!(out, "<span class=\"flag\">{}</span>", esc(&status));
        }
        if !genai.is_empty() {
            let _ = write!(out, "<span class=\"genai\">{}</span>", esc(&genai));
        }
        let _ = write!(
            out,
            "</div><div class=\"lane\"><div class=\"bar\" style=\"left:{left:.3}%;width:{width:.3}%\"></div>"
        );
        for e in &s.events {
            let at = pct(e.time_unix_ns.saturating_sub(t.start_ns), span_ns);
            let class = if e.name == "exception" {
                "ev error"
            } else {
                "ev"
            };
            let _ = write!(
                out,
                "<i class=\"{class}\" style=\"left:{at:.3}%\" title=\"{}\"></i>",
                esc(&e.name)
            );
        }
        let _ = write!(
            out,
            "</div><div class=\"dur\">{}</div>",
            esc(&duration(end - s.start_unix_ns))
        );
        details(out, n, &origins[n.origin], &calls);
        out.push_str("</div>");
    }
    out.push_str("</div></section>");
}

/// The whole page.
pub fn page(traces: &[Trace], origins: &[Origin], summary: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>spanguard · {}</title><style>{STYLE}</style></head><body>\
         <header><h1>spanguard</h1><span class=\"summary\">{}</span>\
         <input id=\"search\" type=\"search\" placeholder=\"Search names, attributes, ids…\" autocomplete=\"off\">\
         <label><input type=\"checkbox\" id=\"only-errors\"> errors only</label></header>\
         <main><div id=\"traces\">",
        count(traces.len() as u64, "trace", "traces"),
        esc(summary)
    );
    if traces.is_empty() {
        out.push_str("<p class=\"empty\">No traces.</p>");
    }
    for t in traces {
        trace_section(&mut out, t, origins);
    }
    let _ = writeln!(
        out,
        "</div><aside id=\"panel\"><div id=\"panel-body\"><p class=\"muted\">Click a span to see its \
         attributes, events and links.</p></div></aside></main><script>{SCRIPT}</script></body></html>"
    );
    out
}

const STYLE: &str = r#"
:root{--bg:#f7f7f9;--fg:#1d1f24;--muted:#6b7080;--line:#e3e4ea;--card:#fff;--err:#d42b2b;--warn:#d98b00;--sel:#eef3ff}
@media (prefers-color-scheme:dark){:root{--bg:#15171c;--fg:#e6e7eb;--muted:#9096a6;--line:#2a2e37;--card:#1c1f26;--err:#ff5c5c;--warn:#ffb020;--sel:#243049}}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);font:13px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif}
header{position:sticky;top:0;z-index:2;display:flex;gap:16px;align-items:center;padding:10px 18px;background:var(--card);border-bottom:1px solid var(--line)}
h1{font-size:16px;margin:0;letter-spacing:.02em}.summary{color:var(--muted);flex:1}
#search{width:300px;padding:6px 10px;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg)}
main{display:flex;align-items:flex-start;gap:16px;padding:16px 18px}#traces{flex:1;min-width:0}
.trace{background:var(--card);border:1px solid var(--line);border-radius:8px;margin-bottom:14px;overflow:hidden}
.trace-head{display:flex;flex-wrap:wrap;gap:10px;align-items:center;padding:8px 12px;border-bottom:1px solid var(--line)}
.trace-name{font-weight:600;font-size:14px}.svc{padding:1px 7px;border-radius:10px;background:var(--sel)}
.tid{margin-left:auto;color:var(--muted);font-size:11px}.muted{color:var(--muted)}
.fold{border:0;background:none;color:var(--muted);cursor:pointer;font-size:13px;padding:0 2px}
.trace.folded .rows{display:none}.trace.folded .fold{transform:rotate(-90deg)}
.badge{padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.badge.error{background:color-mix(in srgb,var(--err) 15%,transparent);color:var(--err)}
.badge.interrupted{background:color-mix(in srgb,var(--warn) 18%,transparent);color:var(--warn)}
.badge.tokens{background:color-mix(in srgb,#8a5cf6 15%,transparent);color:#8a5cf6}
.ruler,.span{display:grid;grid-template-columns:minmax(220px,38%) 1fr 80px;align-items:center}
.ruler{height:22px;color:var(--muted);font-size:11px;border-bottom:1px solid var(--line)}
.ruler .lane span{position:absolute;white-space:nowrap;transform:translateX(-50%);top:3px}.ruler .lane span:first-child{transform:none}.ruler .lane span:last-child{transform:translateX(-100%)}
.span{min-height:26px;cursor:pointer;border-bottom:1px solid color-mix(in srgb,var(--line) 50%,transparent)}
.span:hover{background:color-mix(in srgb,var(--sel) 60%,transparent)}.span.selected{background:var(--sel)}
.span.dim{opacity:.3}.span .name{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;padding-right:8px}
.kind{font-size:10px;text-transform:uppercase;color:var(--muted);border:1px solid var(--line);border-radius:3px;padding:0 3px;margin-right:5px}
.genai{margin-left:8px;color:#8a5cf6;font-size:12px}.flag{margin-left:8px;font-size:11px;font-weight:600}
.span.error .name,.span.error .flag{color:var(--err)}.span.interrupted .flag,.span.unended .flag,.span.open .flag{color:var(--warn)}
.lane{position:relative;height:100%;min-height:22px;margin:0 6px;background:repeating-linear-gradient(90deg,transparent 0 calc(25% - 1px),var(--line) calc(25% - 1px) 25%)}
.bar{position:absolute;top:6px;bottom:6px;min-width:2px;border-radius:3px;background:hsl(var(--hue) 55% 50%)}
.span.error .bar{background:var(--err)}
.span.interrupted .bar,.span.open .bar{background:repeating-linear-gradient(135deg,var(--warn) 0 6px,color-mix(in srgb,var(--warn) 55%,transparent) 6px 12px)}
.span.unended .bar{background:var(--muted)}
.ev{position:absolute;top:3px;bottom:3px;width:2px;margin-left:-1px;background:var(--fg);opacity:.7}.ev.error{background:var(--err);opacity:1}
.dur{text-align:right;padding-right:12px;font-variant-numeric:tabular-nums;color:var(--muted)}
#panel{position:sticky;top:62px;width:380px;max-height:calc(100vh - 80px);overflow:auto;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
#panel h3{margin:0 0 6px;font-size:15px;word-break:break-all}#panel h4{margin:14px 0 4px;font-size:12px;text-transform:uppercase;color:var(--muted)}
.status{font-weight:600}.status.error{color:var(--err)}.status.interrupted{color:var(--warn)}
.kv{border-collapse:collapse;width:100%;font-size:12px}.kv th{text-align:left;color:var(--muted);font-weight:500;padding:2px 8px 2px 0;vertical-align:top;white-space:nowrap}
.kv td{word-break:break-word;white-space:pre-wrap;font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
.events,.links{padding-left:18px;margin:0}.events li,.links li{margin-bottom:6px}.events li.error b{color:var(--err)}
.empty{color:var(--muted)}@media (max-width:900px){main{flex-direction:column}#panel{position:static;width:100%}}
"#;

const SCRIPT: &str = r#"
(function(){
var panel=document.getElementById('panel-body');
function show(row){
  document.querySelectorAll('.span.selected').forEach(function(r){r.classList.remove('selected')});
  row.classList.add('selected');
  var d=row.querySelector('.details');
  panel.innerHTML=d?d.innerHTML:'';
}
document.addEventListener('click',function(e){
  var fold=e.target.closest('.fold');
  if(fold){fold.closest('.trace').classList.toggle('folded');return;}
  var row=e.target.closest('.span');if(row)show(row);
});
document.addEventListener('keydown',function(e){
  var row=document.activeElement&&document.activeElement.closest&&document.activeElement.closest('.span');
  if(!row)return;
  if(e.key==='Enter'||e.key===' '){show(row);e.preventDefault();}
  var rows=Array.prototype.slice.call(document.querySelectorAll('.trace:not(.folded) .span')).filter(function(r){return r.offsetParent!==null});
  var i=rows.indexOf(row);
  if(e.key==='ArrowDown'&&i+1<rows.length){rows[i+1].focus();show(rows[i+1]);e.preventDefault();}
  if(e.key==='ArrowUp'&&i>0){rows[i-1].focus();show(rows[i-1]);e.preventDefault();}
});
var search=document.getElementById('search'),errors=document.getElementById('only-errors');
function apply(){
  var q=search.value.trim().toLowerCase(),only=errors.checked;
  document.querySelectorAll('.trace').forEach(function(t){
    var any=false,rows=t.querySelectorAll('.span');
    rows.forEach(function(r){var hit=!q||r.dataset.search.indexOf(q)>=0||t.dataset.traceId.indexOf(q)===0;r.classList.toggle('dim',!hit);any=any||hit;});
    var bad=t.querySelector('.span.error,.span.interrupted,.span.unended')!==null;
    t.hidden=!any||(only&&!bad);
  });
}
search.addEventListener('input',function(){apply();history.replaceState(null,'',search.value?'#q='+encodeURIComponent(search.value):location.pathname);});
errors.addEventListener('change',apply);
// A link may carry a search: page.html#q=refund
if(location.hash.indexOf('#q=')===0){search.value=decodeURIComponent(location.hash.slice(3));apply();}
var first=document.querySelector('.span.error,.span.interrupted')||document.querySelector('.span');
if(first)show(first);
})();
"#;
