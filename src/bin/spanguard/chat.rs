//! Chat messages that instrumentations record as indexed flat attributes,
//! put back together for a person to read (`show --span`/`--full`):
//! OpenLLMetry's `gen_ai.prompt.0.role` / `gen_ai.prompt.0.content` /
//! `gen_ai.completion.0.tool_calls.0.name`, OpenInference's
//! `llm.input_messages.0.message.role` / `…message.content` /
//! `…message.tool_calls.0.tool_call.function.name`. Shown as they are, one
//! prompt was a dozen attribute lines, its messages' parts apart and in
//! the file's order (`10` before `2`).

use std::collections::{BTreeMap, HashMap};

use spanguard::export::json_value::JsonValue;
use spanguard::export::otlp_decode::{DecodedEvent, DecodedSpan, Value};

/// The attribute families that hold one message per index: the prefix
/// before the index and what comes between the index and a field.
const FAMILIES: &[(&str, &str)] = &[
    ("gen_ai.prompt.", ""),
    ("gen_ai.completion.", ""),
    ("llm.input_messages.", "message."),
    ("llm.output_messages.", "message."),
];

/// Parses a chat's JSON text. Every parse here goes through this, so that
/// a test counts them: a trace's tool calls were looked up by parsing each
/// content twice.
fn parse_json(text: &[u8]) -> Result<JsonValue, spanguard::export::json_value::JsonError> {
    #[cfg(test)]
    tests::PARSES.with(|n| n.set(n.get() + 1));
    JsonValue::parse(text)
}

/// `key` as (its family, the message's index, the field), when it is one
/// of a message's attributes.
pub fn split(key: &str) -> Option<(usize, u64, &str)> {
    FAMILIES
        .iter()
        .enumerate()
        .find_map(|(f, (prefix, inner))| {
            let rest = key.strip_prefix(prefix)?;
            let (index, field) = rest.split_once('.')?;
            if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let field = field.strip_prefix(inner)?;
            (!field.is_empty()).then_some((f, index.parse().ok()?, field))
        })
}

/// A tool call a message asked for.
#[derive(Default, Debug)]
pub struct ToolCall {
    pub name: String,
    pub arguments: String,
    pub id: String,
}

/// One message of a family, from its attributes.
#[derive(Default, Debug)]
pub struct Message {
    pub role: String,
    /// `finish_reason` and any field not read as content or a tool call
    /// (`tool_call_id`, `name`, an image's url), as (field, value).
    pub notes: Vec<(String, String)>,
    /// The text, in the order of its parts.
    pub content: Vec<String>,
    pub tool_calls: Vec<ToolCall>,
}

/// A content that is a list of parts (OpenLLMetry writes Anthropic's and
/// Bedrock's so, as JSON: `[{"type":"text","text":"…"}]`): its text parts'
/// text, another part (an image, a tool's result) as its JSON, a part a
/// line. None when it is not such a list (then it is shown as it is).
fn parts_text(value: &str, trace: &CallNames) -> Option<String> {
    if !value.trim_start().starts_with('[') {
        return None;
    }
    let JsonValue::Array(items) = parse_json(value.as_bytes()).ok()? else {
        return None;
    };
    let mut names = Vec::new();
    items.iter().for_each(|i| call_names(i, &mut names));
    let mut pieces = Vec::new();
    for item in &items {
        let Some(JsonValue::String(kind)) = item.get("type") else {
            return None;
        };
        match (kind.as_str(), item.get("text"), item.get("thinking")) {
            ("text", Some(JsonValue::String(text)), _) => pieces.push(text.clone()),
            // Anthropic's extended thinking, as OpenLLMetry writes its
            // content blocks.
            ("thinking", _, Some(JsonValue::String(text))) => pieces.push(reasoning(text)),
            ("redacted_thinking", _, _) => pieces.push(REDACTED.to_string()),
            _ => pieces.push(tool_part(item, &names, trace).unwrap_or_else(|| json_text(item))),
        }
    }
    (!pieces.is_empty()).then(|| pieces.join("\n"))
}

/// A family's messages in the order of their index.
#[derive(Debug)]
pub struct Chat {
    /// How the family's keys read: `gen_ai.prompt.N.*`.
    pub label: String,
    pub messages: Vec<Message>,
}

fn text_of(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// The messages of the family `family` among `attributes`; a tool's
/// message (`tool_call_id`) is said with the name of the call it answers
/// when `trace` knows it (`call NAME`).
pub fn gather(family: usize, attributes: &[(String, Value)], trace: &CallNames) -> Chat {
    #[derive(Default)]
    struct Parts {
        role: String,
        notes: Vec<(String, String)>,
        content: BTreeMap<u64, String>,
        calls: BTreeMap<u64, ToolCall>,
    }
    let mut by_index: BTreeMap<u64, Parts> = BTreeMap::new();
    for (k, v) in attributes {
        let Some((f, index, field)) = split(k) else {
            continue;
        };
        if f != family {
            continue;
        }
        let m = by_index.entry(index).or_default();
        let value = text_of(v);
        if field == "role" {
            m.role = value;
        } else if field == "content" {
            // Before any part an OpenInference message may also have.
            // A content that is a picture's data: URL, said by its type
            // and size (text is never one).
            let value = parts_text(&value, trace)
                .or_else(|| data_words(&value, None))
                .unwrap_or(value);
            m.content.insert(0, value);
        } else if let Some(part) = field
            .strip_prefix("contents.")
            .and_then(|r| r.strip_suffix(".message_content.text"))
            .and_then(|p| p.parse::<u64>().ok())
        {
            m.content.insert(part.saturating_add(1), value);
        } else if field.starts_with("contents.")
            && field.ends_with(".message_content.type")
            && value == "text"
        {
            // Said by its text.
        } else if let Some((call, part)) = call_field(field) {
            let c = m.calls.entry(call).or_default();
            match part {
                CallPart::Name => c.name = value,
                CallPart::Arguments => c.arguments = value,
                CallPart::Id => c.id = value,
            }
        } else {
            // An image's data: URL (OpenInference's
            // `…message_content.image.image.url`) said by its type and size.
            let value = data_words(&value, None).unwrap_or(value);
            let call = (field == "tool_call_id")
                .then(|| trace.name(&value))
                .flatten()
                .map(str::to_string);
            m.notes.push((field.to_string(), value));
            if let Some(name) = call {
                m.notes.push(("call".to_string(), name));
            }
        }
    }
    let (prefix, inner) = FAMILIES[family];
    Chat {
        label: format!("{prefix}N.{inner}*"),
        messages: by_index
            .into_values()
            .map(|p| Message {
                role: p.role,
                notes: p.notes,
                content: p.content.into_values().collect(),
                tool_calls: p.calls.into_values().collect(),
            })
            .collect(),
    }
}

/// Which part of a tool call an indexed message's field holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CallPart {
    Name,
    Arguments,
    Id,
}

/// The call (its index) and the part of it that a message's `field`
/// holds: OpenLLMetry's `tool_calls.N.name`, OpenInference's
/// `tool_calls.N.tool_call.function.name`, their arguments and ids.
fn call_field(field: &str) -> Option<(u64, CallPart)> {
    let (call, what) = field.strip_prefix("tool_calls.")?.split_once('.')?;
    let part = match what {
        "name" | "tool_call.function.name" => CallPart::Name,
        "arguments" | "tool_call.function.arguments" => CallPart::Arguments,
        "id" | "tool_call.id" => CallPart::Id,
        _ => return None,
    };
    Some((call.parse().ok()?, part))
}

impl Message {
    /// `[role, finish_reason stop]`: who speaks, and the notes.
    pub fn head(&self) -> String {
        let mut head = if self.role.is_empty() {
            "?".to_string()
        } else {
            self.role.clone()
        };
        for (field, value) in &self.notes {
            head.push_str(&format!(", {field} {value}"));
        }
        format!("[{head}]")
    }

    /// A tool call as a line, drawn as a call: `tool call
    /// NAME(ARGUMENTS) (id ID)`, the arguments as `arguments_text` says.
    pub fn call_text(c: &ToolCall) -> String {
        let mut t = format!(
            "tool call {}({})",
            if c.name.is_empty() { "?" } else { &c.name },
            arguments_text(&c.arguments)
        );
        if !c.id.is_empty() {
            t.push_str(&format!(" (id {})", c.id));
        }
        t
    }

    /// A tool's result as a line: `tool result NAME: RESULT (id ID)`, the
    /// name of the call it answers when known (`tool result: RESULT`
    /// else).
    pub fn result_text(name: &str, result: &str, id: &str) -> String {
        let mut t = if name.is_empty() {
            format!("tool result: {result}")
        } else {
            format!("tool result {name}: {result}")
        };
        if !id.is_empty() {
            t.push_str(&format!(" (id {id})"));
        }
        t
    }
}

/// A tool call's arguments as a call's: an object (the JSON the model
/// wrote, or a structured value's JSON) as `city="Lisbon", days=2`, each
/// value as spaced JSON (data said by its type and size); another JSON
/// value as its JSON; a string that is not JSON (cut by a length limit)
/// as it is. Shown as it was, a call was its arguments' JSON after the
/// name, or (the GenAI conventions' parts) the whole part's JSON.
fn arguments_text(arguments: &str) -> String {
    match parse_json(arguments.trim().as_bytes()) {
        Ok(JsonValue::Object(members)) => members
            .iter()
            .map(|(k, v)| format!("{k}={}", json_in(v, None, true)))
            .collect::<Vec<_>>()
            .join(", "),
        Ok(other) => json_in(&other, None, true),
        Err(_) => arguments.to_string(),
    }
}

/// The ids and names of the tool calls anywhere in `v` (the GenAI
/// conventions' `tool_call` parts, Anthropic's `tool_use` blocks, the AI
/// SDK's `{toolCallId, toolName}`, OpenAI's `{id, function: {name}}` in a
/// message's `tool_calls`), so a tool's response, which says only the
/// call's id, is said with the name of the call it answers.
fn call_names(v: &JsonValue, names: &mut Vec<(String, String)>) {
    match v {
        JsonValue::Array(items) => items.iter().for_each(|i| call_names(i, names)),
        JsonValue::Object(members) => {
            let field = |k: &str| v.get(k).and_then(JsonValue::as_str);
            let function = v
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(JsonValue::as_str);
            let call = match (field("type"), field("id"), field("name")) {
                (Some("tool_call" | "tool_use"), Some(id), Some(name)) => Some((id, name)),
                _ => match (
                    field("toolCallId"),
                    field("toolName"),
                    field("id"),
                    function,
                ) {
                    (Some(id), Some(name), _, _) | (_, _, Some(id), Some(name)) => Some((id, name)),
                    _ => None,
                },
            };
            if let Some((id, name)) = call {
                names.push((id.to_string(), name.to_string()));
            }
            members.iter().for_each(|(_, m)| call_names(m, names));
        }
        _ => {}
    }
}

/// The most calls `CallNames` keeps for a trace: a hostile trace of
/// millions of tool calls is named up to there, in bounded memory.
const MOST_CALL_NAMES: usize = 100_000;

/// The tool calls of a whole trace, by id, in every form `show` reads
/// (the GenAI conventions' parts, OpenLLMetry's and OpenInference's
/// indexed attributes, message events, the AI SDK's, Anthropic's blocks).
/// A tool's result says only the id of the call it answers, and the call
/// is often in another message list: an LLM span's output asked for it,
/// the next LLM span's input holds the result, or the result is an
/// indexed message with a `tool_call_id` alone. Drawn without the call,
/// the result read `tool result: …`, no tool named.
#[derive(Default, Debug)]
pub struct CallNames {
    by_id: HashMap<String, String>,
}

impl CallNames {
    /// The calls of `spans` (a trace's), the first named for an id kept.
    pub fn of_spans<'a>(spans: impl IntoIterator<Item = &'a DecodedSpan>) -> CallNames {
        let mut names = CallNames::default();
        for s in spans {
            names.add_attributes(&s.attributes);
            for e in &s.events {
                names.add_attributes(&e.attributes);
            }
        }
        names
    }

    /// The name of the call of `id`, when the trace has it.
    pub fn name(&self, id: &str) -> Option<&str> {
        self.by_id.get(id).map(String::as_str)
    }

    fn add(&mut self, id: String, name: String) {
        if id.is_empty() || name.is_empty() || self.by_id.len() >= MOST_CALL_NAMES {
            return;
        }
        self.by_id.entry(id).or_insert(name);
    }

    /// Each JSON value among `attributes` is parsed once here: the
    /// indexed families' calls are read from their fields, not by
    /// gathering their messages (which parsed every content a second
    /// time, to draw text thrown away).
    fn add_attributes(&mut self, attributes: &[(String, Value)]) {
        // (family, message, call) → (id, name)
        let mut indexed: BTreeMap<(usize, u64, u64), (String, String)> = BTreeMap::new();
        let mut found = Vec::new();
        for (k, v) in attributes {
            let json = match split(k) {
                Some((family, message, field)) => {
                    if let Some((call, part)) = call_field(field) {
                        let c = indexed.entry((family, message, call)).or_default();
                        match part {
                            CallPart::Name => c.1 = text_of(v),
                            CallPart::Id => c.0 = text_of(v),
                            CallPart::Arguments => {}
                        }
                    }
                    // A content that is a list of parts (Anthropic's
                    // blocks, as OpenLLMetry writes them).
                    field == "content"
                }
                None => {
                    CHAT_KEYS.contains(&k.as_str())
                        || AI_SDK_KEYS.contains(&k.as_str())
                        || k == BODY_KEY
                }
            };
            if !json {
                continue;
            }
            match v {
                Value::Str(text) if text.trim_start().starts_with(['[', '{']) => {
                    if let Ok(parsed) = parse_json(text.as_bytes()) {
                        call_names(&parsed, &mut found);
                    }
                }
                Value::Array(_) | Value::Map(_) => call_names(&json_of(v, None), &mut found),
                _ => {}
            }
        }
        found.extend(indexed.into_values());
        for (id, name) in found {
            self.add(id, name);
        }
    }
}

/// A tool call or a tool's response among a message's parts, as a line
/// (`Message::call_text`, `Message::result_text`): the GenAI conventions'
/// `{type: tool_call, id, name, arguments}` and `{type:
/// tool_call_response, id, response}` (opentelemetry-util-genai's
/// ToolCallRequest / ToolCallResponse; OpenLLMetry's Anthropic
/// instrumentation writes Anthropic's blocks as those), Anthropic's own
/// `{type: tool_use, id, name, input}` and `{type: tool_result,
/// tool_use_id, content}`. A response is named by the call of its id in
/// `names`. None for another part.
fn tool_part(part: &JsonValue, names: &[(String, String)], trace: &CallNames) -> Option<String> {
    let field = |k: &str| part.get(k).map(said).unwrap_or_default();
    let (id, response) = match part.get("type").and_then(JsonValue::as_str)? {
        "tool_call" | "tool_use" => {
            return Some(Message::call_text(&ToolCall {
                name: field("name"),
                arguments: part
                    .get_any(&["arguments", "input"])
                    .map(said)
                    .unwrap_or_default(),
                id: field("id"),
            }));
        }
        "tool_call_response" => (field("id"), part.get("response")),
        "tool_result" => (field("tool_use_id"), part.get("content")),
        _ => return None,
    };
    let name = names
        .iter()
        .find(|(i, _)| !id.is_empty() && *i == id)
        .map(|(_, n)| n.as_str())
        .or_else(|| trace.name(&id))
        .unwrap_or("");
    Some(Message::result_text(
        name,
        &response.map_or_else(String::new, response_text),
        &id,
    ))
}

/// A tool's response: a string as it is, a list of text parts (an
/// Anthropic tool_result's content) as their text, another value as
/// spaced JSON.
fn response_text(v: &JsonValue) -> String {
    if let JsonValue::Array(parts) = v {
        let texts: Option<Vec<&str>> = parts
            .iter()
            .map(|p| {
                p.get_any(&["text", "content"])
                    .and_then(JsonValue::as_str)
                    .filter(|_| p.get("type").and_then(JsonValue::as_str) == Some("text"))
            })
            .collect();
        if let Some(texts) = texts.filter(|t| !t.is_empty()) {
            return texts.join("\n");
        }
    }
    v.as_str().map_or_else(
        || json_in(v, None, true),
        |s| data_words(s, None).unwrap_or_else(|| s.to_string()),
    )
}

impl Message {
    /// The message as text: its head, then its text (its own lines kept)
    /// and each tool call on a line of its own.
    pub fn text(&self) -> String {
        let mut text = self.head();
        let calls = self.tool_calls.iter().map(Message::call_text);
        for (i, piece) in self.content.iter().cloned().chain(calls).enumerate() {
            text.push(if i == 0 { ' ' } else { '\n' });
            text.push_str(&piece);
        }
        text
    }
}

impl Chat {
    /// The family as text to print whole: the label and how many
    /// messages, then each message (`Message::text`).
    pub fn text(&self) -> String {
        let mut text = format!(
            "{} = {} (by index):",
            self.label,
            plural(self.messages.len(), "message")
        );
        for m in &self.messages {
            text.push('\n');
            text.push_str(&m.text());
        }
        text
    }
}

/// Every chat among `attributes`, as text (`key = N messages …:` then a
/// line a message), in the order of each one's first attribute: the
/// indexed families and the GenAI conventions' JSON messages.
pub fn texts(attributes: &[(String, Value)], trace: &CallNames) -> Vec<String> {
    let mut done = Vec::new();
    let mut texts = Vec::new();
    for (k, v) in attributes {
        match split(k) {
            Some((family, _, _)) if !done.contains(&family) => {
                done.push(family);
                texts.push(gather(family, attributes, trace).text());
            }
            Some(_) => {}
            None => texts.extend(value_chat(k, v, trace)),
        }
    }
    texts
}

/// The GenAI attributes that hold chat messages as JSON (OpenTelemetry's
/// GenAI semantic conventions: an array of `{role, parts: [{type,
/// content}], finish_reason}`, or of parts alone for the instructions).
const CHAT_KEYS: &[&str] = &[
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
];

/// A chat-messages attribute shown whole as a person reads a chat: its key
/// and how many messages, then each message's role and each text part's
/// content with its own lines; a part of another type (a tool call, a
/// tool's answer) as its JSON. Shown as it is, a 20 KB prompt was one line
/// of JSON with its paragraphs as `\n`. None when `json` is not such an
/// array (then the value is shown as it is).
pub fn chat_text(key: &str, json: &str, trace: &CallNames) -> Option<String> {
    if AI_SDK_KEYS.contains(&key) {
        return ai_sdk_text(key, json, trace);
    }
    if !CHAT_KEYS.contains(&key) || !json.trim_start().starts_with('[') {
        return None;
    }
    let value = parse_json(json.as_bytes()).ok()?;
    genai_text(key, &value, "its JSON by role and part", trace)
}

/// A chat attribute's value, a JSON string (`chat_text`) or the same
/// messages as a structured value (an array of maps: what
/// opentelemetry-util-genai puts on its
/// `gen_ai.client.inference.operation.details` event), as a person reads
/// a chat. None when it is neither.
pub fn value_chat(key: &str, value: &Value, trace: &CallNames) -> Option<String> {
    match value {
        Value::Str(json) => chat_text(key, json, trace),
        Value::Array(_) if CHAT_KEYS.contains(&key) => {
            genai_text(key, &json_of(value, None), "by role and part", trace)
        }
        _ => None,
    }
}

/// The GenAI conventions' messages (`CHAT_KEYS`) as `chat_text` draws
/// them. None when `value` is not an array of objects.
fn genai_text(key: &str, value: &JsonValue, said: &str, trace: &CallNames) -> Option<String> {
    let JsonValue::Array(items) = value else {
        return None;
    };
    let mut names = Vec::new();
    call_names(value, &mut names);
    let part_text = |part: &JsonValue| match (part.get("type"), part.get("content")) {
        (Some(JsonValue::String(t)), Some(JsonValue::String(c))) if t == "text" => c.clone(),
        (Some(JsonValue::String(t)), Some(JsonValue::String(c))) if t == "reasoning" => {
            reasoning(c)
        }
        _ => tool_part(part, &names, trace).unwrap_or_else(|| json_text(part)),
    };
    let mut text = format!("{key} = {} ({said}):", plural(items.len(), "message"));
    for item in items {
        if !matches!(item, JsonValue::Object(_)) {
            return None;
        }
        let Some(parts) = item.get("parts") else {
            // The instructions: a part, not a message.
            text.push('\n');
            text.push_str(&part_text(item));
            continue;
        };
        let role = item.get("role").and_then(JsonValue::as_str).unwrap_or("?");
        let finish = item
            .get("finish_reason")
            .and_then(JsonValue::as_str)
            .map_or(String::new(), |f| format!(", finish_reason {f}"));
        text.push_str(&format!("\n[{role}{finish}]"));
        for (i, part) in parts.as_array().iter().enumerate() {
            // A tool call or response on a line of its own, as
            // `Message::text` puts them.
            let tool = matches!(
                part.get("type").and_then(JsonValue::as_str),
                Some("tool_call" | "tool_call_response" | "tool_use" | "tool_result")
            );
            text.push(if tool && i > 0 { '\n' } else { ' ' });
            text.push_str(&part_text(part));
        }
    }
    Some(text)
}

/// The Vercel AI SDK's (npm `ai`, its experimental_telemetry) attributes
/// that hold a chat as JSON: a call's `ai.prompt` (`{system, prompt,
/// messages}`), a model call's `ai.prompt.messages` (an array of `{role,
/// content}`, the content a string or parts: text, tool-call,
/// tool-result, image, file), and the tool calls a response asked for.
const AI_SDK_KEYS: &[&str] = &["ai.prompt", "ai.prompt.messages", "ai.response.toolCalls"];

/// An AI SDK attribute (`AI_SDK_KEYS`) as a chat: each message's role, its
/// text parts' lines as lines, a tool call as `tool call NAME ARGUMENTS
/// (id ID)`, a tool's result as `tool result NAME RESULT (id ID)`, another
/// part (an image, a file) as its JSON, a part a line. Shown as it was, a
/// model call's prompt (every message of the conversation so far) was one
/// line of JSON. None when `json` is not what the SDK writes there (cut
/// by a length limit, say): then it is shown as it is.
fn ai_sdk_text(key: &str, json: &str, trace: &CallNames) -> Option<String> {
    let value = parse_json(json.as_bytes()).ok()?;
    if key == "ai.response.toolCalls" {
        let calls = match &value {
            JsonValue::Array(calls) => calls,
            _ => return None,
        };
        let mut text = format!("{key} = {} (its JSON):", plural(calls.len(), "tool call"));
        for call in calls {
            text.push('\n');
            text.push_str(&ai_sdk_part(call, trace)?);
        }
        return Some(text);
    }
    let mut messages = Vec::new();
    if key == "ai.prompt" {
        // generateText's/streamText's own: `system` and `prompt` (a
        // string, the user's, or messages) or `messages`.
        if !matches!(value, JsonValue::Object(_)) {
            return None;
        }
        if let Some(system) = value.get("system").and_then(JsonValue::as_str) {
            messages.push(Message {
                role: "system".to_string(),
                content: vec![system.to_string()],
                ..Message::default()
            });
        }
        for field in ["prompt", "messages"] {
            match value.get(field) {
                Some(JsonValue::String(prompt)) => messages.push(Message {
                    role: "user".to_string(),
                    content: vec![prompt.clone()],
                    ..Message::default()
                }),
                Some(JsonValue::Array(items)) => {
                    for item in items {
                        messages.push(ai_sdk_message(item, trace)?);
                    }
                }
                _ => {}
            }
        }
        if messages.is_empty() {
            return None;
        }
    } else {
        let JsonValue::Array(items) = &value else {
            return None;
        };
        for item in items {
            messages.push(ai_sdk_message(item, trace)?);
        }
    }
    let mut text = format!(
        "{key} = {} (its JSON by role and part):",
        plural(messages.len(), "message")
    );
    for m in &messages {
        text.push('\n');
        text.push_str(&m.text());
    }
    Some(text)
}

/// An AI SDK message, `{role, content}`: its parts in their order (tool
/// calls among them, where the model put them). None when it is not one.
fn ai_sdk_message(item: &JsonValue, trace: &CallNames) -> Option<Message> {
    let role = item.get("role")?.as_str()?.to_string();
    let content = match item.get("content")? {
        JsonValue::String(text) => vec![text.clone()],
        JsonValue::Array(parts) => parts
            .iter()
            .map(|p| ai_sdk_part(p, trace))
            .collect::<Option<_>>()?,
        _ => return None,
    };
    Some(Message {
        role,
        content,
        ..Message::default()
    })
}

/// An AI SDK content part as a piece of a message: a text part's text, a
/// tool call (`input`, or `args` before AI SDK 5) and a tool's result
/// (`output`'s value, or `result`) as a line, another part as its JSON.
/// None when it is no object with a `type` (or, for a tool call in
/// `ai.response.toolCalls`, a `toolName`).
fn ai_sdk_part(part: &JsonValue, trace: &CallNames) -> Option<String> {
    // A value that is a string (a tool call's arguments as the model
    // wrote them) as it is, else its JSON.
    let said = |v: &JsonValue| {
        v.as_str().map_or_else(
            || json_text(v),
            |s| data_words(s, None).unwrap_or_else(|| s.to_string()),
        )
    };
    let field = |name: &str| part.get(name).and_then(JsonValue::as_str).unwrap_or("");
    let kind = part.get("type").and_then(JsonValue::as_str);
    match kind {
        Some("text") if part.get("text").and_then(JsonValue::as_str).is_some() => {
            Some(field("text").to_string())
        }
        // A reasoning model's thinking, as the SDK keeps it in the
        // conversation (`ai.prompt.messages`): read as its text.
        Some("reasoning") if part.get("text").and_then(JsonValue::as_str).is_some() => {
            Some(reasoning(field("text")))
        }
        Some("redacted-reasoning") => Some(REDACTED.to_string()),
        Some("tool-call") | None if part.get("toolName").is_some() => {
            Some(Message::call_text(&ToolCall {
                name: field("toolName").to_string(),
                arguments: part
                    .get_any(&["input", "args"])
                    .map(said)
                    .unwrap_or_default(),
                id: field("toolCallId").to_string(),
            }))
        }
        Some("tool-result") => {
            let result = match part.get("output") {
                // `{type: "json" | "text" | "error-text" | …, value}`.
                Some(output) => output.get("value").unwrap_or(output),
                None => part.get("result").unwrap_or(&JsonValue::Null),
            };
            let id = field("toolCallId");
            let name = Some(field("toolName"))
                .filter(|n| !n.is_empty())
                .or_else(|| trace.name(id))
                .unwrap_or("");
            Some(Message::result_text(name, &response_text(result), id))
        }
        Some(_) => Some(json_text(part)),
        None => None,
    }
}

/// A reasoning part's text as a piece of a message, said to be one (else
/// it read as the answer).
fn reasoning(text: &str) -> String {
    format!("(reasoning) {text}")
}

/// A reasoning part whose text the provider keeps to itself.
const REDACTED: &str = "(reasoning, redacted)";

/// The longest data (base64 text, a data: URL, bytes as a JSON object)
/// a part shows as it is; longer, it is said by its media type and size.
/// An image of 5 MB in a user's message printed 5 MB of base64 under
/// `--full` and on the HTML page, the conversation lost around it.
const DATA_SHOWN: usize = 256;

/// `n` bytes as a person reads a size: `200 B`, `3.0 KB`, `4.2 MB`.
fn size_words(n: usize) -> String {
    match n {
        n if n < 1024 => format!("{n} B"),
        n if n < 1024 * 1024 => format!("{:.1} KB", n as f64 / 1024.0),
        n => format!("{:.1} MB", n as f64 / (1024.0 * 1024.0)),
    }
}

/// `[image/png, 4.2 MB base64]` for a string that is data longer than
/// `DATA_SHOWN`: a data: URL (its own media type), or base64 text in a
/// part that says it holds data (`media`: its media type, or its type,
/// image, file, blob). None for any other string: a message's text is
/// never elided, whatever its letters (a RAG context or a prompt may be
/// base64 as the user sent it, and `--full` promises every value whole:
/// test_llm_sized.py's 1 MB base64 message read `[data, 976.6 KB
/// base64]`).
fn data_words(s: &str, media: Option<&str>) -> Option<String> {
    if s.len() <= DATA_SHOWN {
        return None;
    }
    // `data:MIME;base64,…`: a head of a media type and its parameters,
    // no spaces (a sentence that starts "data: …," is text).
    if let Some((head, body)) = s
        .strip_prefix("data:")
        .and_then(|r| r.split_once(','))
        .filter(|(head, _)| head.len() <= 200 && !head.contains(char::is_whitespace))
    {
        let mime = head.split(';').next().filter(|m| !m.is_empty());
        let coding = if head.ends_with(";base64") {
            "base64"
        } else {
            "URL-encoded"
        };
        return Some(format!(
            "[{}, {} {coding}]",
            mime.unwrap_or("data"),
            size_words(body.len())
        ));
    }
    let media = media?;
    let base64 = s.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_' | b'\n' | b'\r')
    });
    base64.then(|| format!("[{}, {} base64]", media, size_words(s.len())))
}

/// A part's type when it names data (a picture, a file, a blob), for its
/// data's words when it says no media type.
fn data_part_type(v: &JsonValue) -> Option<&str> {
    v.get("type").and_then(JsonValue::as_str).filter(|t| {
        matches!(
            *t,
            "image" | "file" | "blob" | "input_image" | "input_file" | "image_url"
        )
    })
}

/// The media type a part says its data is (the AI SDK's `mediaType`,
/// Anthropic's `media_type`, the GenAI conventions' `mime_type`).
fn media_of(v: &JsonValue) -> Option<&str> {
    v.get_any(&["mediaType", "media_type", "mime_type", "mimeType"])
        .and_then(JsonValue::as_str)
}

/// `v` as compact JSON, its data elided (`data_words`; bytes the AI SDK
/// wrote as an object of indexes, `{"0":137,"1":80,…}`, as
/// `[image/png, N bytes]`).
fn json_text(v: &JsonValue) -> String {
    json_in(v, None, false)
}

/// `v` as JSON, compact, or `spaced` (`{"to": "LIS", "n": 2}`: a tool
/// call's arguments and result, read as a call).
fn json_in(v: &JsonValue, media: Option<&str>, spaced: bool) -> String {
    let (comma, colon) = if spaced { (", ", ": ") } else { (",", ":") };
    let string = |s: &str| {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    };
    match v {
        JsonValue::Null => "null".to_string(),
        JsonValue::Bool(b) => b.to_string(),
        JsonValue::Number(n) => n.clone(),
        JsonValue::String(s) => string(&data_words(s, media).unwrap_or_else(|| s.clone())),
        JsonValue::Array(items) => {
            let items: Vec<String> = items.iter().map(|i| json_in(i, media, spaced)).collect();
            format!("[{}]", items.join(comma))
        }
        JsonValue::Object(members)
            if members.len() > DATA_SHOWN
                && members.iter().enumerate().all(|(i, (k, v))| {
                    *k == i.to_string() && matches!(v, JsonValue::Number(_))
                }) =>
        {
            string(&format!(
                "[{}, {}]",
                media.unwrap_or("data"),
                size_words(members.len())
            ))
        }
        JsonValue::Object(members) => {
            let media = media_of(v).or(media).or_else(|| data_part_type(v));
            let members: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{}{colon}{}", string(k), json_in(v, media, spaced)))
                .collect();
            format!("{{{}}}", members.join(comma))
        }
    }
}

/// The older GenAI conventions' events, one message each, its content in
/// the event's body (spanguard's Python bridge keeps a Logs API record's
/// body as the event attribute `log.record.body`, as OpenTelemetry Java's
/// bridge names it): OpenLLMetry with `use_attributes=False`, openai-v2
/// before opentelemetry-util-genai. The role the event's name says.
const MESSAGE_EVENTS: &[(&str, &str)] = &[
    ("gen_ai.system.message", "system"),
    ("gen_ai.user.message", "user"),
    ("gen_ai.assistant.message", "assistant"),
    ("gen_ai.tool.message", "tool"),
    ("gen_ai.choice", "assistant"),
];

/// The attribute a Logs API record's body is kept in on its span event.
pub const BODY_KEY: &str = "log.record.body";

/// A chat an event holds: its attribute's index among the event's, and
/// the text (`key = N messages …:` then a line a message for a chat
/// attribute; the message alone, `[role] text`, for a body).
pub struct EventChat {
    pub attribute: usize,
    pub text: String,
}

/// The chats of an event (a GenAI event sent through the Logs API, put on
/// its span): the body of a message event (`MESSAGE_EVENTS`) as its
/// message, and its chat attributes (`gen_ai.input.messages` …, structured
/// or JSON, on `gen_ai.client.inference.operation.details`) as
/// `value_chat` draws them. Shown as they were, under `--full` a prompt
/// was one line of `{content: …}` or of nested arrays and maps.
pub fn event_chats(e: &DecodedEvent, trace: &CallNames) -> Vec<EventChat> {
    let role = MESSAGE_EVENTS
        .iter()
        .find(|(name, _)| *name == e.name)
        .map(|(_, role)| *role);
    e.attributes
        .iter()
        .enumerate()
        .filter_map(|(attribute, (k, v))| {
            let text = match role {
                Some(role) if k == BODY_KEY => body_message(role, &json_of(v, None), trace)?.text(),
                _ => value_chat(k, v, trace)?,
            };
            Some(EventChat { attribute, text })
        })
        .collect()
}

/// A message event's body as its message: `{content, tool_calls, role}`,
/// for `gen_ai.choice` `{index, finish_reason, message: {role, content,
/// tool_calls}, tool_calls}` (OpenLLMetry puts the tool calls beside the
/// message). The role is the body's when it says one (the conventions
/// leave it out when the name says it), and a content may be a string
/// (its parts' JSON, as `gather` reads it) or parts. None when the body
/// is none of that (then it is shown as it is).
fn body_message(role: &str, body: &JsonValue, trace: &CallNames) -> Option<Message> {
    if !matches!(body, JsonValue::Object(_)) {
        return None;
    }
    let message = body
        .get("message")
        .filter(|m| matches!(m, JsonValue::Object(_)));
    let field = |name: &str| {
        message
            .and_then(|m| m.get(name))
            .filter(|v| !matches!(v, JsonValue::Null))
            .or_else(|| body.get(name).filter(|v| !matches!(v, JsonValue::Null)))
    };
    let mut m = Message {
        role: field("role")
            .and_then(JsonValue::as_str)
            .unwrap_or(role)
            .to_string(),
        ..Message::default()
    };
    for note in ["finish_reason", "id", "tool_call_id", "name"] {
        if let Some(v) = field(note) {
            m.notes.push((note.to_string(), said(v)));
        }
    }
    // A tool's message names the call it answers by id alone (`id` in
    // the conventions' gen_ai.tool.message, `tool_call_id` in OpenAI's).
    let answers = ["tool_call_id", "id"]
        .into_iter()
        .filter(|_| m.role == "tool" && field("name").is_none())
        .find_map(|note| trace.name(&field(note).map(said)?));
    if let Some(name) = answers {
        m.notes.push(("call".to_string(), name.to_string()));
    }
    match field("content") {
        None => {}
        Some(JsonValue::String(text)) => m.content.push(
            parts_text(text, trace)
                .or_else(|| data_words(text, None))
                .unwrap_or_else(|| text.clone()),
        ),
        Some(JsonValue::Array(parts)) => {
            m.content.extend(parts.iter().map(|p| body_part(p, trace)))
        }
        Some(other) => m.content.push(json_text(other)),
    }
    for calls in [
        message.and_then(|m| m.get("tool_calls")),
        body.get("tool_calls"),
    ] {
        for call in calls.map(JsonValue::as_array).unwrap_or_default() {
            let function = call.get("function").unwrap_or(call);
            m.tool_calls.push(ToolCall {
                name: function.get("name").map(said).unwrap_or_default(),
                arguments: function.get("arguments").map(said).unwrap_or_default(),
                id: call.get("id").map(said).unwrap_or_default(),
            });
        }
    }
    (!m.content.is_empty() || !m.tool_calls.is_empty() || body.get("content").is_some())
        .then_some(m)
}

/// A part of a body's content, as `parts_text` reads a list of parts
/// (`{type: text, text}`, Anthropic's thinking), the GenAI conventions'
/// `{type: text, content}` too; another part as its JSON.
fn body_part(part: &JsonValue, trace: &CallNames) -> String {
    let text = |name: &str| part.get(name).and_then(JsonValue::as_str);
    match part.get("type").and_then(JsonValue::as_str) {
        Some("text") if text("text").or(text("content")).is_some() => {
            text("text").or(text("content")).unwrap_or("").to_string()
        }
        Some("thinking") if text("thinking").is_some() => reasoning(text("thinking").unwrap_or("")),
        Some("reasoning") if text("content").is_some() => reasoning(text("content").unwrap_or("")),
        Some("redacted_thinking") => REDACTED.to_string(),
        _ => tool_part(part, &[], trace).unwrap_or_else(|| json_text(part)),
    }
}

/// A value as a piece of a line: a string as it is (data said by its type
/// and size), another value as its JSON.
fn said(v: &JsonValue) -> String {
    v.as_str().map_or_else(
        || json_text(v),
        |s| data_words(s, None).unwrap_or_else(|| s.to_string()),
    )
}

/// An attribute's value as the JSON document it stands for, so that a
/// structured chat is read as its JSON would be: bytes (a picture's, in a
/// GenAI `blob` part) longer than `DATA_SHOWN` said by the media type of
/// the map they are in (`media`) and their size, shorter ones in hex.
fn json_of(v: &Value, media: Option<&str>) -> JsonValue {
    match v {
        Value::Str(s) => JsonValue::String(s.clone()),
        Value::Bool(b) => JsonValue::Bool(*b),
        Value::Int(i) => JsonValue::Number(i.to_string()),
        Value::Double(d) => JsonValue::Number(d.to_string()),
        Value::Bytes(b) if b.len() > DATA_SHOWN => JsonValue::String(format!(
            "[{}, {}]",
            media.unwrap_or("data"),
            size_words(b.len())
        )),
        Value::Bytes(_) => JsonValue::String(v.to_string()),
        Value::Array(items) => JsonValue::Array(items.iter().map(|i| json_of(i, media)).collect()),
        Value::Map(members) => {
            let media = members
                .iter()
                .find(|(k, _)| {
                    ["mediaType", "media_type", "mime_type", "mimeType"].contains(&k.as_str())
                })
                .and_then(|(_, v)| v.as_str())
                .or(media);
            JsonValue::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), json_of(v, media)))
                    .collect(),
            )
        }
        Value::Empty => JsonValue::Null,
    }
}

/// `n word` or `n words`.
fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// The JSON texts `parse_json` parsed on this thread.
        pub static PARSES: Cell<usize> = const { Cell::new(0) };
    }

    /// The lookup of a trace's tool calls (`show --full`, `--span`,
    /// `--html`) parses each chat JSON text once: an indexed message's
    /// content was parsed for its calls, then again by gathering the
    /// family's messages for their indexed calls (their drawn text thrown
    /// away). The calls of both forms are still found.
    #[test]
    fn a_traces_tool_calls_are_found_parsing_each_json_text_once() {
        let blocks = r#"[{"type":"text","text":"looking"},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Oslo"}}]"#;
        let span = DecodedSpan {
            attributes: vec![
                (
                    "gen_ai.completion.0.role".to_string(),
                    Value::Str("assistant".to_string()),
                ),
                (
                    "gen_ai.completion.0.content".to_string(),
                    Value::Str(blocks.to_string()),
                ),
                (
                    "gen_ai.completion.1.tool_calls.0.id".to_string(),
                    Value::Str("call_2".to_string()),
                ),
                (
                    "gen_ai.completion.1.tool_calls.0.name".to_string(),
                    Value::Str("search".to_string()),
                ),
                (
                    "gen_ai.completion.1.tool_calls.0.arguments".to_string(),
                    Value::Str(r#"{"q":"x"}"#.to_string()),
                ),
                (
                    "llm.output_messages.0.message.tool_calls.0.tool_call.id".to_string(),
                    Value::Str("call_3".to_string()),
                ),
                (
                    "llm.output_messages.0.message.tool_calls.0.tool_call.function.name"
                        .to_string(),
                    Value::Str("lookup".to_string()),
                ),
            ],
            ..Default::default()
        };
        PARSES.with(|n| n.set(0));
        let calls = CallNames::of_spans([&span]);
        assert_eq!(PARSES.with(Cell::get), 1);
        assert_eq!(calls.name("toolu_1"), Some("get_weather"));
        assert_eq!(calls.name("call_2"), Some("search"));
        assert_eq!(calls.name("call_3"), Some("lookup"));
    }
}
