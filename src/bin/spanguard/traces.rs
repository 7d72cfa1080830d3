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
    pub tokens: TokenSum,
    /// The outermost span whose own count is more than its calls' kept
    /// here, and how many more there are: said beside `tokens`.
    pub token_gap: Option<TokenGap>,
}

/// A span that says more tokens than the calls under it that are here
/// (`tokens` counts the calls, not its own figure).
#[derive(Clone, Debug)]
pub struct TokenGap {
    pub name: String,
    /// Its own sum.
    pub says: i64,
    /// The sum of the counted spans under it.
    pub here: i64,
    /// Other spans of the trace that say more than theirs.
    pub others: usize,
}

impl TokenGap {
    /// `CodeAgent.run says 1100; its calls here sum to 440: some lost?`
    /// (the name as it is: the caller cleans or escapes it).
    pub fn words(&self) -> String {
        let mut words = format!(
            "{} says {}; its calls here sum to {}: some lost?",
            self.name, self.says, self.here
        );
        if self.others > 0 {
            words.push_str(&format!(" (and {} more such spans)", self.others));
        }
        words
    }
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
/// and later, then 4's; an embedding's `ai.usage.tokens`, its input). On
/// a model call it writes gen_ai.usage.* too; on generateText's,
/// streamText's and embed's own span, ai.usage.* alone, the sum of their
/// model calls.
const AI_SDK_INPUT: &[&str] = &[
    "ai.usage.inputTokens",
    "ai.usage.promptTokens",
    "ai.usage.tokens",
];
const AI_SDK_OUTPUT: &[&str] = &["ai.usage.outputTokens", "ai.usage.completionTokens"];

/// The sum of a call's input and output, where the span says it: the
/// count of a span that says neither (OpenLLMetry's LangChain and
/// streamed calls may record only llm.usage.total_tokens).
const TOTAL: &[&str] = &[
    "gen_ai.usage.total_tokens",
    "llm.usage.total_tokens",
    "llm.token_count.total",
];

/// The output tokens a model spent reasoning, among its output tokens
/// (OpenAI's completion_tokens_details.reasoning_tokens as the
/// instrumentations write it: the GenAI conventions' name, OpenLLMetry's,
/// OpenInference's; then the AI SDK's).
const REASONING: &[&str] = &[
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
    "ai.usage.reasoningTokens",
    "ai.usage.outputTokenDetails.reasoningTokens",
];

/// One span's token counts, as it is shown and as its trace sums it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub input: Option<i64>,
    pub output: Option<i64>,
    /// Its sum as the span says it (GenAI's, OpenLLMetry's,
    /// OpenInference's, the AI SDK's `ai.usage.totalTokens`).
    pub total: Option<i64>,
    /// Part of `output`, never added to it.
    pub reasoning: Option<i64>,
}

impl Counts {
    /// The span's own counts: GenAI's or OpenInference's, else the AI
    /// SDK's ai.usage.* (a trace counts them only where no span under it
    /// has a count: `build`).
    pub fn of(span: &DecodedSpan) -> Counts {
        let (mut input, mut output) = (input_tokens(span), output_tokens(span));
        let mut total = tokens(span, TOTAL);
        if input.is_none() && output.is_none() && total.is_none() {
            (input, output) = (tokens(span, AI_SDK_INPUT), tokens(span, AI_SDK_OUTPUT));
        }
        if input.is_none() && output.is_none() && total.is_none() {
            return Counts::default();
        }
        // The AI SDK's sum is the same call's where the span has its own
        // counts (a model call writes both names).
        total = total.or_else(|| tokens(span, &["ai.usage.totalTokens"]));
        Counts {
            input,
            output,
            total,
            reasoning: tokens(span, REASONING),
        }
    }

    pub fn any(&self) -> bool {
        self.input.is_some() || self.output.is_some() || self.total.is_some()
    }

    /// The span's sum: as it says it, else its input and output added.
    pub fn sum(&self) -> i64 {
        self.total.unwrap_or_else(|| {
            self.input
                .unwrap_or(0)
                .saturating_add(self.output.unwrap_or(0))
        })
    }
}

/// A trace's token counts, each call's once.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenSum {
    pub input: i64,
    pub output: i64,
    /// Every counted span's sum: input and output, and the spans that say
    /// only a sum.
    pub total: i64,
    /// Part of `output`.
    pub reasoning: i64,
    /// The counted spans that said an input or an output count (not only
    /// a sum), and how many of them said no input, no output: theirs is
    /// unknown, not 0 (an interrupted call, or an instrumentation that
    /// records the prompt's count only), so a side some of them miss is
    /// said as a part (`40+? out`), one they all miss as `? out`, as a
    /// span's own line says `812→?`.
    pub calls: usize,
    pub input_unknown: usize,
    pub output_unknown: usize,
}

impl TokenSum {
    pub fn is_empty(&self) -> bool {
        self.input == 0 && self.output == 0 && self.total == 0
    }

    /// `270 in, 32 out`, then what else there is: `(48 reasoning)` after
    /// the output it is part of, `, 974 total` where the sum is not input
    /// plus output (spans that said only a sum); `500 total` alone where
    /// no span said more. A side no call said is `?`; one some calls did
    /// not say is `40+?`, and how many did not is said after.
    pub fn words(&self) -> String {
        if self.calls == 0 {
            return format!("{} total", self.total);
        }
        let side = |n: i64, unknown: usize| match unknown {
            0 => n.to_string(),
            u if u >= self.calls => "?".to_string(),
            _ => format!("{n}+?"),
        };
        let mut words = format!(
            "{} in, {} out",
            side(self.input, self.input_unknown),
            side(self.output, self.output_unknown)
        );
        if self.reasoning != 0 {
            words.push_str(&format!(" ({} reasoning)", self.reasoning));
        }
        if self.total != self.input.saturating_add(self.output) {
            words.push_str(&format!(", {} total", self.total));
        }
        let mut missing = Vec::new();
        for (unknown, what) in [
            (self.input_unknown, "input"),
            (self.output_unknown, "output"),
        ] {
            if unknown > 0 && unknown < self.calls {
                missing.push(format!("{unknown} of {} calls said no {what}", self.calls));
            }
        }
        if !missing.is_empty() {
            words.push_str(&format!(" ({})", missing.join(", ")));
        }
        words
    }
}

/// An embedding call: it makes no output tokens, so the output count it
/// does not say is none, not unknown (GenAI's operation name,
/// OpenLLMetry's request type, OpenInference's span kind, the AI SDK's
/// embed and embedMany).
fn makes_no_output(span: &DecodedSpan) -> bool {
    let text = |key: &str| span.attribute(key).and_then(|v| v.as_str());
    text("gen_ai.operation.name") == Some("embeddings")
        || text("llm.request.type") == Some("embedding")
        || text("openinference.span.kind").is_some_and(|v| v.eq_ignore_ascii_case("embedding"))
        || text("ai.operationId").is_some_and(|v| v.starts_with("ai.embed"))
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
        tokens: TokenSum::default(),
        token_gap: None,
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
    // The token counts, each call's once: a span's counts count only when
    // no span under it has a count. Instrumentations nest and each writes
    // the counts of the calls under it again: the Vercel AI SDK's
    // ai.generateText / ai.embedMany (ai.usage.*, the sum of its model
    // calls); OpenLLMetry's CrewAI agent span (gen_ai.usage.*, its agent's
    // running total) over its `MODEL.llm` spans, themselves over the
    // OpenAI instrumentation's; a LangChain or LlamaIndex LLM span
    // (OpenLLMetry's gen_ai.usage.*, OpenInference's llm.token_count.*)
    // over the OpenAI instrumentation's span of the same call, when both
    // instrumentations are on. Counting only spans of an LLM kind would
    // count those last two twice (both say chat / LLM); counting the
    // innermost counts counts each call once. A span alone, or one whose
    // spans under it carry no count (an agent span whose calls were
    // sampled out or lost), counts its own: the best known. A span with
    // some of its calls lost under it counts those kept, not its own,
    // and the trace says so (`token_gap`): its own figure is not taken
    // instead, since it need not be of these calls alone (OpenLLMetry's
    // CrewAI agent span says the agent's running total, its earlier
    // tasks' calls too, which are counted under their own agent span).
    // The nodes are in the tree's order (a span, then those under it), so
    // walked backwards a span comes after all those under it: `under`
    // holds, for the spans walked whose parent is not yet, (depth, whether
    // it or a span under it has a count, the sum counted there).
    let mut under: Vec<(usize, bool, i64)> = Vec::new();
    let mut gaps = Vec::new();
    for n in t.nodes.iter().rev() {
        let (mut below, mut here) = (false, 0i64);
        while under.last().is_some_and(|(d, _, _)| *d > n.depth) {
            if let Some((_, c, s)) = under.pop() {
                below |= c;
                here = here.saturating_add(s);
            }
        }
        let counts = Counts::of(&n.span);
        if below {
            under.push((n.depth, true, here));
            if counts.any() && counts.sum() > here {
                gaps.push((n.span.name.clone(), counts.sum(), here));
            }
            continue;
        }
        under.push((
            n.depth,
            counts.any(),
            if counts.any() { counts.sum() } else { 0 },
        ));
        // Saturating: counts near i64::MAX in a hostile file wrapped the
        // sum below zero (and a debug build panicked).
        let sum = &mut t.tokens;
        sum.input = sum.input.saturating_add(counts.input.unwrap_or(0));
        sum.output = sum.output.saturating_add(counts.output.unwrap_or(0));
        sum.reasoning = sum.reasoning.saturating_add(counts.reasoning.unwrap_or(0));
        if counts.any() {
            sum.total = sum.total.saturating_add(counts.sum());
        }
        if counts.input.is_some() || counts.output.is_some() {
            sum.calls += 1;
            sum.input_unknown += usize::from(counts.input.is_none());
            sum.output_unknown += usize::from(counts.output.is_none() && !makes_no_output(&n.span));
        }
    }
    // Walked backwards: the last is the first in the tree's order.
    t.token_gap = gaps.pop().map(|(name, says, here)| TokenGap {
        name,
        says,
        here,
        others: gaps.len(),
    });
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
