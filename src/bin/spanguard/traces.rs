//! Spans from any number of files put together as traces: each span once,
//! children under their parents in start order, and what a person looks
//! for first (errors, interrupted spans, GenAI token counts) counted.

use std::collections::{HashMap, HashSet};

use spanguard::export::otlp_decode::{DecodedSpan, Value};

use super::sources::{Kind, Loaded, Origin};

/// How a span ended, as far as a person cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Normal,
    /// Ended by spanguard at shutdown (`spanguard.unended`).
    Unended,
    /// Open when its process died (`spanguard.interrupted`).
    Interrupted,
    /// Open in a process that is still running (a live flight file).
    StillOpen,
}

/// The most levels of a trace's tree drawn. A deeper span (an agent that
/// nests each step in the one before, a hostile file) is drawn at this
/// depth with its own depth in front of its name, so that a line, and the
/// memory that places the lines, stay bounded whatever the depth: drawn in
/// full, 100,000 nested spans took 5 GB to place and made 15 GB of lines.
pub const DRAWN_LEVELS: usize = 32;

/// One span in its trace's tree.
pub struct Node {
    pub span: DecodedSpan,
    pub origin: usize,
    pub depth: usize,
    /// For each level above this span, down to `DRAWN_LEVELS`: whether a
    /// later sibling follows there (the tree's vertical lines).
    pub rails: Vec<bool>,
    /// Whether this span is the last of its siblings.
    pub last: bool,
    /// Its parent id names a span that is not here.
    pub orphan: bool,
    pub ending: Ending,
    pub error: bool,
}

/// The most services a trace's heading names; the rest are counted.
const SERVICES_NAMED: usize = 8;

pub struct Trace {
    pub trace_id: [u8; 16],
    /// Depth first, parents before children, siblings by start time.
    pub nodes: Vec<Node>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub services: Vec<String>,
    pub errors: usize,
    pub interrupted: usize,
    /// Spans the program never ended, ended by spanguard at shutdown
    /// (`spanguard.unended`).
    pub unended: usize,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

impl Trace {
    /// The trace's services as its heading names them: the first
    /// `SERVICES_NAMED` in the order their spans come, then how many more
    /// (a file of 50,000 services made a heading line of half a megabyte).
    pub fn services_named(&self) -> String {
        let mut named = self.services[..self.services.len().min(SERVICES_NAMED)].join(", ");
        if self.services.len() > SERVICES_NAMED {
            named.push_str(&format!(
                " and {} more",
                self.services.len() - SERVICES_NAMED
            ));
        }
        named
    }
}

/// What `show` keeps.
#[derive(Clone, Default)]
pub struct Filter {
    /// A prefix of the trace id, in hex.
    pub trace: Option<String>,
    pub service: Option<String>,
    /// A part of some span's name.
    pub name: Option<String>,
    pub since_ns: Option<u64>,
    pub until_ns: Option<u64>,
    /// Only traces with an error, an interrupted span or one the program
    /// never ended.
    pub errors: bool,
    /// Only traces holding the span `--span` names.
    pub span: Option<SpanPick>,
}

/// A span named by a prefix of its id in hex (`show --span ID`): one
/// LLM call's prompt whole, where `--full` printed every span's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanPick {
    /// The prefix's hex digits, lower case; `len` of them are used.
    digits: [u8; 16],
    len: usize,
}

impl SpanPick {
    /// 1 to 16 hex digits, else None.
    pub fn parse(text: &str) -> Option<SpanPick> {
        let text = text.trim();
        if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut digits = [0u8; 16];
        digits[..text.len()].copy_from_slice(text.to_ascii_lowercase().as_bytes());
        Some(SpanPick {
            digits,
            len: text.len(),
        })
    }

    pub fn picks(&self, span_id: &[u8; 8]) -> bool {
        hex(span_id)
            .as_bytes()
            .starts_with(&self.digits[..self.len])
    }
}

impl Filter {
    pub fn keeps(&self, t: &Trace) -> bool {
        if let Some(prefix) = &self.trace
            && !hex(&t.trace_id).starts_with(&prefix.to_ascii_lowercase())
        {
            return false;
        }
        if let Some(service) = &self.service
            && !t.services.iter().any(|s| s == service)
        {
            return false;
        }
        if let Some(name) = &self.name
            && !t.nodes.iter().any(|n| n.span.name.contains(name.as_str()))
        {
            return false;
        }
        if let Some(pick) = &self.span
            && !t.nodes.iter().any(|n| pick.picks(&n.span.span_id))
        {
            return false;
        }
        if self.since_ns.is_some_and(|since| t.end_ns < since)
            || self.until_ns.is_some_and(|until| t.start_ns > until)
        {
            return false;
        }
        // A span the program never ended is a failure of its own: an
        // instrumentation that left a failed call open (the OpenAI ones
        // for Node do so on a 500) has no error status on it, and the
        // trace was not found by --errors.
        !self.errors || t.errors + t.interrupted + t.unended > 0
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The service that sent a span.
pub fn service_of(span: &DecodedSpan) -> &str {
    span.resource_attribute("service.name")
        .and_then(Value::as_str)
        .unwrap_or("unknown_service")
}

fn is_true(span: &DecodedSpan, key: &str) -> bool {
    span.attribute(key) == Some(&Value::Bool(true))
}

/// How a span ended; `live`: its file is being written by a running
/// process.
pub fn ending(span: &DecodedSpan, live: bool) -> Ending {
    if is_true(span, "spanguard.interrupted") {
        if live {
            Ending::StillOpen
        } else {
            Ending::Interrupted
        }
    } else if is_true(span, "spanguard.unended") {
        Ending::Unended
    } else {
        Ending::Normal
    }
}

/// A token count of an LLM span: the first of `keys` it has (GenAI's
/// current name, the older one OpenLLMetry and others still send,
/// OpenInference's).
/// A token count from the first of `keys` the span has; None for one that
/// is no count (not a number, or below zero: summed, a hostile file's
/// `i64::MIN` turned a trace's total into nonsense).
pub fn tokens(span: &DecodedSpan, keys: &[&str]) -> Option<i64> {
    keys.iter()
        .find_map(|k| span.attribute(k))
        .and_then(|v| match v {
            Value::Int(i) => Some(*i),
            Value::Double(d) => Some(*d as i64),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        })
        .filter(|n| *n >= 0)
}

pub fn input_tokens(span: &DecodedSpan) -> Option<i64> {
    tokens(
        span,
        &[
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.prompt_tokens",
            "llm.token_count.prompt",
        ],
    )
}

pub fn output_tokens(span: &DecodedSpan) -> Option<i64> {
    tokens(
        span,
        &[
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
        ],
    )
}

/// The Vercel AI SDK's own names for a call's counts (ai.usage.*: AI SDK 5
/// and later, then 4's). On a model call it writes gen_ai.usage.* too; on
/// generateText's and streamText's own span, ai.usage.* alone, the sum of
/// their model calls.
pub fn ai_sdk_input_tokens(span: &DecodedSpan) -> Option<i64> {
    tokens(span, &["ai.usage.inputTokens", "ai.usage.promptTokens"])
}

pub fn ai_sdk_output_tokens(span: &DecodedSpan) -> Option<i64> {
    tokens(
        span,
        &["ai.usage.outputTokens", "ai.usage.completionTokens"],
    )
}

/// The sum alone, for a span that says neither count (not added to the
/// trace's "in, out": it is neither).
pub fn total_tokens(span: &DecodedSpan) -> Option<i64> {
    tokens(
        span,
        &[
            "gen_ai.usage.total_tokens",
            "llm.usage.total_tokens",
            "llm.token_count.total",
        ],
    )
}

/// Puts loaded spans together as traces, oldest first. A span that
/// arrived twice (at-least-once delivery, or in both the sink and a dump)
/// is kept once, preferring a copy that ended over an interrupted one.
/// Returns the traces and how many duplicates were dropped.
pub fn assemble(loaded: Loaded) -> (Vec<Trace>, Vec<Origin>, usize) {
    let origins = loaded.origins;
    let mut by_trace: HashMap<[u8; 16], Vec<(DecodedSpan, usize)>> = HashMap::new();
    let mut index: HashMap<([u8; 16], [u8; 8]), usize> = HashMap::new();
    let mut duplicates = 0;
    for (span, origin) in loaded.spans {
        let key = (span.trace_id, span.span_id);
        let list = by_trace.entry(span.trace_id).or_default();
        match index.get(&key) {
            Some(&at) => {
                duplicates += 1;
                let kept = &list[at];
                let worse = |s: &DecodedSpan, o: usize| {
                    ending(s, origins[o].live_pid.is_some()) != Ending::Normal
                };
                if worse(&kept.0, kept.1) && !worse(&span, origin) {
                    list[at] = (span, origin);
                }
            }
            None => {
                index.insert(key, list.len());
                list.push((span, origin));
            }
        }
    }
    let mut traces: Vec<Trace> = by_trace
        .into_iter()
        .map(|(trace_id, spans)| build(trace_id, spans, &origins))
        .collect();
    traces.sort_by_key(|t| (t.start_ns, t.trace_id));
    (traces, origins, duplicates)
}

fn build(trace_id: [u8; 16], spans: Vec<(DecodedSpan, usize)>, origins: &[Origin]) -> Trace {
    let ids: HashSet<[u8; 8]> = spans.iter().map(|(s, _)| s.span_id).collect();
    let mut children: HashMap<[u8; 8], Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, (s, _)) in spans.iter().enumerate() {
        if s.is_root() || !ids.contains(&s.parent_span_id) || s.parent_span_id == s.span_id {
            roots.push(i);
        } else {
            children.entry(s.parent_span_id).or_default().push(i);
        }
    }
    let order = |v: &mut Vec<usize>| {
        v.sort_by_key(|&i| (spans[i].0.start_unix_ns, spans[i].0.span_id));
    };
    order(&mut roots);
    for list in children.values_mut() {
        order(list);
    }
    // Depth first from the roots; spans left unvisited sit on a cycle of
    // parents (a hostile file) and become roots of their own, found by one
    // pass over the spans (`unplaced`), not one for each cycle.
    let mut visited = vec![false; spans.len()];
    let mut unplaced = 0;
    let mut placed: Vec<(usize, usize, Vec<bool>, bool)> = Vec::new();
    let mut stack: Vec<(usize, usize, Vec<bool>, bool)> = Vec::new();
    let mut pending_roots = roots;
    loop {
        if stack.is_empty() {
            let next: Vec<usize> = if pending_roots.is_empty() {
                while unplaced < spans.len() && visited[unplaced] {
                    unplaced += 1;
                }
                (unplaced..spans.len()).take(1).collect()
            } else {
                std::mem::take(&mut pending_roots)
            };
            if next.is_empty() {
                break;
            }
            let n = next.len();
            for (k, &i) in next.iter().enumerate().rev() {
                stack.push((i, 0, Vec::new(), k + 1 == n));
            }
        }
        let Some((i, depth, rails, last)) = stack.pop() else {
            continue;
        };
        if visited[i] {
            continue;
        }
        visited[i] = true;
        let kids: Vec<usize> = children
            .get(&spans[i].0.span_id)
            .map(|v| v.iter().copied().filter(|&c| !visited[c]).collect())
            .unwrap_or_default();
        let n = kids.len();
        for (k, &c) in kids.iter().enumerate().rev() {
            let mut r = rails.clone();
            if depth > 0 && r.len() < DRAWN_LEVELS {
                r.push(!last);
            }
            stack.push((c, depth + 1, r, k + 1 == n));
        }
        placed.push((i, depth, rails, last));
    }
    let mut slots: Vec<Option<(DecodedSpan, usize)>> = spans.into_iter().map(Some).collect();
    let mut t = Trace {
        trace_id,
        nodes: Vec::new(),
        start_ns: u64::MAX,
        end_ns: 0,
        services: Vec::new(),
        errors: 0,
        interrupted: 0,
        unended: 0,
        input_tokens: 0,
        output_tokens: 0,
    };
    // Looked up in a set: a file whose every span names a service of its
    // own made the list's own search quadratic.
    let mut seen_services: HashSet<String> = HashSet::new();
    for (i, depth, rails, last) in placed {
        let (span, origin) = slots[i].take().expect("each span is placed once");
        let orphan = !span.is_root() && depth == 0;
        let ending = ending(&span, origins[origin].live_pid.is_some());
        let error = span.status_code == 2;
        t.start_ns = t.start_ns.min(span.start_unix_ns);
        t.end_ns = t.end_ns.max(span.end_unix_ns.max(span.start_unix_ns));
        let service = service_of(&span);
        if !seen_services.contains(service) {
            seen_services.insert(service.to_string());
            t.services.push(service.to_string());
        }
        t.errors += usize::from(error);
        t.interrupted += usize::from(ending == Ending::Interrupted);
        t.unended += usize::from(ending == Ending::Unended);
        t.nodes.push(Node {
            span,
            origin,
            depth,
            rails,
            last,
            orphan,
            ending,
            error,
        });
    }
    // The token counts, each call's once. The Vercel AI SDK writes its
    // counts as ai.usage.* on each model call (ai.generateText.doGenerate,
    // with gen_ai.usage.* too) and on the call around them
    // (ai.generateText: the sum of its steps): a span's ai.usage.* is
    // counted only when no span under it has a count. The nodes are in
    // the tree's order (a span, then those under it), so walked
    // backwards a span comes after all those under it: `under` holds,
    // for the spans walked whose parent is not yet, (depth, whether it or
    // a span under it has a count).
    let mut under: Vec<(usize, bool)> = Vec::new();
    for n in t.nodes.iter().rev() {
        let mut below = false;
        while under.last().is_some_and(|(d, _)| *d > n.depth) {
            below |= under.pop().is_some_and(|(_, c)| c);
        }
        let s = &n.span;
        let (mut input, mut output) = (input_tokens(s), output_tokens(s));
        if input.is_none() && output.is_none() && !below {
            (input, output) = (ai_sdk_input_tokens(s), ai_sdk_output_tokens(s));
        }
        let counted = input.is_some() || output.is_some() || total_tokens(s).is_some();
        under.push((n.depth, counted || below));
        // Saturating: counts near i64::MAX in a hostile file wrapped the
        // sum below zero (and a debug build panicked).
        t.input_tokens = t.input_tokens.saturating_add(input.unwrap_or(0));
        t.output_tokens = t.output_tokens.saturating_add(output.unwrap_or(0));
    }
    if t.start_ns == u64::MAX {
        t.start_ns = 0;
    }
    t
}

/// The kinds of origin in a list, for a summary line.
pub fn describe_origins(origins: &[Origin]) -> String {
    let mut parts = Vec::new();
    for kind in [Kind::Sink, Kind::Spool, Kind::CrashDump, Kind::Flight] {
        let n = origins.iter().filter(|o| o.kind == kind).count();
        if n > 0 {
            let (one, many) = match kind {
                Kind::Sink => ("sink file", "sink files"),
                Kind::Spool => ("spool batch", "spool batches"),
                Kind::CrashDump => ("crash dump", "crash dumps"),
                Kind::Flight => ("flight file", "flight files"),
            };
            parts.push(format!("{n} {}", if n == 1 { one } else { many }));
        }
    }
    parts.join(", ")
}
