//! What every export request says about its origin: the resource (service
//! name, this tracer's instance id, the process and host, the SDK, user
//! attributes) and the instrumentation scope. Built once per tracer from
//! config; encoders read it for every batch.

use super::value_cut::SharedMsg;
use crate::span::any_value::AnyValueRef;

#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Elements of one scalar type (`config::ResourceValue::Array`).
    Array(Vec<AttrValue>),
    /// A complex value: a well-formed encoded OTLP `AnyValue` message
    /// (`config::ResourceValue::Any`), written as it is.
    Any(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ResourceInfo {
    /// In order; keys are unique.
    pub attributes: Vec<(String, AttrValue)>,
    /// Attributes left out of `attributes` (OTLP's
    /// `Resource.dropped_attributes_count`): those of a resource too large
    /// for the request size limit (`RequestEncoder`).
    pub dropped_attributes: u32,
    pub scope_name: String,
    pub scope_version: String,
    /// Instrumentation scopes given attributes (`Tracer::set_scope_attributes`),
    /// at most `limits::MAX_SCOPES_WITH_ATTRIBUTES`; few, so looked up in turn.
    pub scopes: Vec<ScopeAttributes>,
}

/// One instrumentation scope's attributes (an OpenTelemetry tracer's
/// `attributes`, given to its `get_tracer`), sent in the
/// `InstrumentationScope` of every batch's spans of that scope: a scope is
/// its name, version and schema URL, as spans are grouped.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeAttributes {
    pub name: String,
    pub version: String,
    pub schema_url: String,
    pub attributes: Vec<(String, AttrValue)>,
}

/// Writes a well-formed encoded `AnyValue` as text (`AttrValue::text`).
pub type AnyText = fn(&[u8]) -> String;

/// The key whose value tells two runs of one service apart.
pub const INSTANCE_ID_KEY: &str = "service.instance.id";

/// The instrumentation scope spans that name none are sent under:
/// spanguard's own, its name and version.
pub const OWN_SCOPE_NAME: &str = "spanguard";
pub const OWN_SCOPE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Resource attributes the semantic conventions type as integers; given as
/// text (OTEL_RESOURCE_ATTRIBUTES, a dump header), they are sent as ints.
const INT_KEYS: [&str; 2] = ["process.pid", "process.parent_pid"];

impl ResourceInfo {
    /// The resource `config` names: its service name over its resource
    /// attributes (see `new`).
    pub fn configured(config: &crate::config::TracerConfig) -> ResourceInfo {
        ResourceInfo::new(&config.service_name, &config.resource())
    }

    /// This resource with `given` set over it (a bridged SDK provider's,
    /// `Tracer::set_resource`): each given key replaces this one's value
    /// or is added, except a `service.name` that is the SDK's fallback
    /// (`unknown_service`, `unknown_service:<process>`), which names no
    /// service and leaves this one's.
    pub fn overridden(&self, given: &[(String, crate::config::ResourceValue)]) -> ResourceInfo {
        use crate::config::ResourceValue;
        let mut out = self.clone();
        for (k, v) in given {
            if k == "service.name"
                && matches!(v, ResourceValue::Str(s) if s.starts_with("unknown_service"))
            {
                continue;
            }
            let value = attr_value(v);
            match out
                .attributes
                .iter_mut()
                .find(|(existing, _)| existing == k)
            {
                Some(slot) => slot.1 = value,
                None => out.attributes.push((k.clone(), value)),
            }
        }
        out
    }

    /// This resource as a dump header holds it (`DumpHeader::set_resource`):
    /// its service name, and its other attributes as text, those named in
    /// `first` before the others (a header keeps the entries that fit, in
    /// order). What `new` makes of them again is this resource, but for
    /// values typed other than text (sent as text, but for `INT_KEYS`) and
    /// entries the header had no room for. `any_text` writes a complex
    /// value's text (`AttrValue::text`).
    pub fn dump_entries(
        &self,
        first: &[&str],
        any_text: AnyText,
    ) -> (String, Vec<(String, String)>) {
        let text = |v: &AttrValue| v.text(any_text);
        let mut service = String::new();
        let (mut named, mut rest) = (Vec::new(), Vec::new());
        for (k, v) in &self.attributes {
            if k == "service.name" {
                service = text(v);
            } else if first.contains(&k.as_str()) {
                named.push((k.clone(), text(v)));
            } else {
                rest.push((k.clone(), text(v)));
            }
        }
        named.extend(rest);
        (service, named)
    }

    /// The resource for `service_name` plus `extra` attributes (detected
    /// ones and OTEL_RESOURCE_ATTRIBUTES or config, see
    /// `TracerConfig::resource`). `service_name` wins over a `service.name`
    /// in `extra`, as the OpenTelemetry spec says. `service.instance.id`
    /// comes right after it: a Collector's file receiver tells files apart
    /// by their first kilobyte, which a sink line starts with.
    pub fn new(service_name: &str, extra: &[(String, String)]) -> ResourceInfo {
        let mut attributes = vec![(
            "service.name".to_string(),
            AttrValue::Str(service_name.to_string()),
        )];
        if let Some((k, v)) = extra.iter().find(|(k, _)| k == INSTANCE_ID_KEY) {
            attributes.push((k.clone(), AttrValue::Str(v.clone())));
        }
        for (k, v) in [
            ("telemetry.sdk.name", "spanguard"),
            ("telemetry.sdk.language", "rust"),
            ("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
        ] {
            attributes.push((k.to_string(), AttrValue::Str(v.to_string())));
        }
        for (k, v) in extra {
            let value = match v.parse::<i64>() {
                Ok(n) if INT_KEYS.contains(&k.as_str()) => AttrValue::Int(n),
                _ => AttrValue::Str(v.clone()),
            };
            match attributes.iter_mut().find(|(existing, _)| existing == k) {
                // The SDK's own `telemetry.sdk.*` give way to a value the
                // user (OTEL_RESOURCE_ATTRIBUTES), or a bridged SDK's
                // provider through a dump header, set: OpenTelemetry's
                // SDKs merge the user's resource over their defaults.
                Some(slot) if slot.0.starts_with("telemetry.sdk.") => slot.1 = value,
                Some(_) => {}
                None => attributes.push((k.clone(), value)),
            }
        }
        ResourceInfo {
            attributes,
            dropped_attributes: 0,
            scope_name: OWN_SCOPE_NAME.to_string(),
            scope_version: OWN_SCOPE_VERSION.to_string(),
            scopes: Vec::new(),
        }
    }

    /// This resource with the complex values of the messages `which`
    /// names (itself, scopes by name and version) cut to `depth` levels,
    /// arrays and maps past it replaced by the empty value, as
    /// `value_cut::cut_deep` cuts them in an encoded request: what the
    /// requests carry from then on, once a server refused them for a
    /// value nested too deep and took them so (`Delivery::rescue_deep`,
    /// which counted the values).
    pub fn cut_to_depth(&self, which: &[SharedMsg], depth: usize) -> ResourceInfo {
        let cut = |attributes: &[(String, AttrValue)]| -> Vec<(String, AttrValue)> {
            attributes
                .iter()
                .map(|(key, value)| {
                    let value = match value {
                        AttrValue::Any(message) => match AnyValueRef::check(message) {
                            Ok(v) if v.limited_by(usize::MAX, depth) => {
                                AttrValue::Any(v.limited(usize::MAX, depth))
                            }
                            _ => value.clone(),
                        },
                        _ => value.clone(),
                    };
                    (key.clone(), value)
                })
                .collect()
        };
        let mut out = self.clone();
        if which.contains(&SharedMsg::Resource) {
            out.attributes = cut(&self.attributes);
        }
        for scope in &mut out.scopes {
            let named = SharedMsg::Scope {
                name: scope.name.clone(),
                version: scope.version.clone(),
                schema_url: scope.schema_url.clone(),
            };
            if which.contains(&named) {
                scope.attributes = cut(&scope.attributes);
            }
        }
        out
    }

    /// A fingerprint of each attribute value `cut` (this resource as
    /// `cut_to_depth` cut it) holds cut: of the value as given, its key,
    /// and the message it is in (the resource, or a scope by name,
    /// version and schema URL). Two values alike for 16 levels and apart
    /// below are two; one value set again is the same one
    /// (`DepthCounted`).
    pub fn depth_cut_values(&self, cut: &ResourceInfo) -> Vec<u64> {
        use std::hash::{DefaultHasher, Hash, Hasher};
        fn cut_in(
            message: &[&str],
            uncut: &[(String, AttrValue)],
            cut: &[(String, AttrValue)],
            out: &mut Vec<u64>,
        ) {
            for ((key, value), (_, as_cut)) in uncut.iter().zip(cut) {
                if let (AttrValue::Any(given), true) = (value, value != as_cut) {
                    let mut h = DefaultHasher::new();
                    (message, key, given).hash(&mut h);
                    out.push(h.finish());
                }
            }
        }
        let mut out = Vec::new();
        cut_in(&[], &self.attributes, &cut.attributes, &mut out);
        for (uncut, cut) in self.scopes.iter().zip(&cut.scopes) {
            let message = [&*uncut.name, &*uncut.version, &*uncut.schema_url];
            cut_in(&message, &uncut.attributes, &cut.attributes, &mut out);
        }
        out
    }

    /// The attributes of the scope named `name`, `version`, `schema_url`
    /// (each compared by `equals`), or none.
    pub fn scope_attributes(&self, equals: impl Fn(&str, usize) -> bool) -> &[(String, AttrValue)] {
        self.scopes
            .iter()
            .find(|s| equals(&s.name, 0) && equals(&s.version, 1) && equals(&s.schema_url, 2))
            .map_or(&[], |s| &s.attributes)
    }
}

/// The resource and scope values cut to a depth and counted as truncated,
/// by fingerprint, the last `DEPTH_COUNTED_HOLDS`: the exporter's values
/// as given (`ResourceInfo::depth_cut_values`), the delivery's messages
/// as given (`SharedCut::key`, a refused request's resource and scopes).
/// A value set again (a resource A, then B, then A again), or sent again
/// in every request of its spans, is counted once, as `values_truncated`
/// counts values cut, not times they were sent.
#[derive(Debug, Default)]
pub struct DepthCounted {
    seen: std::collections::VecDeque<u64>,
}

/// How many fingerprints `DepthCounted` remembers; past it, the oldest is
/// forgotten (and counted again when met again), never the whole list.
/// Remembered oldest first out, a set met again and again that is larger
/// than this is counted again whole every time (each forgotten just
/// before it comes back): so at least every message one request holds,
/// the resource and `MAX_SCOPES_WITH_ATTRIBUTES` scopes (257; it was 64
/// messages, then all forgotten: a spool of many scopes counted again),
/// times a few deep values each, or a resource set anew a few times. A
/// few KiB, looked through only when a value is cut to the depth.
const DEPTH_COUNTED_HOLDS: usize = 4 * (crate::span::limits::MAX_SCOPES_WITH_ATTRIBUTES + 1);

impl DepthCounted {
    /// Remembers `value` as counted; true when it was not yet.
    pub fn count(&mut self, value: u64) -> bool {
        if self.seen.contains(&value) {
            return false;
        }
        if self.seen.len() >= DEPTH_COUNTED_HOLDS {
            self.seen.pop_front();
        }
        self.seen.push_back(value);
        true
    }
}

/// A value a caller gave (a bridged provider's resource, a scope's
/// attributes) as the encoders take it.
pub fn attr_value(v: &crate::config::ResourceValue) -> AttrValue {
    use crate::config::ResourceValue;
    match v {
        ResourceValue::Str(s) => AttrValue::Str(s.clone()),
        ResourceValue::Int(i) => AttrValue::Int(*i),
        ResourceValue::Double(d) => AttrValue::Double(*d),
        ResourceValue::Bool(b) => AttrValue::Bool(*b),
        ResourceValue::Array(elements) => {
            AttrValue::Array(elements.iter().map(attr_value).collect())
        }
        ResourceValue::Any(message) => AttrValue::Any(message.clone()),
    }
}

impl AttrValue {
    /// The value as text, as a crash dump's or flight file's header keeps
    /// it: an array as JSON's list of its elements (`["node","app.js"]`),
    /// a complex value as `any_text` writes it (the tracer gives
    /// `otlp_json::encoded_any_value_text`: OTLP/JSON's `AnyValue` object,
    /// `{"kvlistValue":{"values":[...]}}`; passed in, as the JSON encoder
    /// reads this module's types).
    pub fn text(&self, any_text: AnyText) -> String {
        match self {
            AttrValue::Str(s) => s.clone(),
            AttrValue::Int(i) => i.to_string(),
            AttrValue::Double(d) => d.to_string(),
            AttrValue::Bool(b) => b.to_string(),
            AttrValue::Array(elements) => {
                let each: Vec<String> = elements
                    .iter()
                    .map(|e| match e {
                        AttrValue::Str(s) => super::json_escape::quoted(s),
                        e => e.text(any_text),
                    })
                    .collect();
                format!("[{}]", each.join(","))
            }
            AttrValue::Any(message) => any_text(message),
        }
    }
}

/// What a tracer finds out about itself when it starts, most telling
/// first (a crash dump keeps as many as fit in its header, in this order):
/// a new random `service.instance.id`, the process, the host. Each can be
/// overridden by OTEL_RESOURCE_ATTRIBUTES or the config's
/// `resource_attributes`. `process.runtime.*` comes from the bindings
/// (Python says `cpython`, ...), which add it to `resource_attributes`.
/// The command line is left out: arguments often carry secrets.
pub fn detect() -> Vec<(String, String)> {
    let mut out = vec![
        (INSTANCE_ID_KEY.to_string(), new_uuid_v4()),
        ("process.pid".to_string(), std::process::id().to_string()),
    ];
    if let Some(host) = host_name() {
        out.push(("host.name".to_string(), host));
    }
    out.push(("host.arch".to_string(), host_arch().to_string()));
    out.push(("os.type".to_string(), std::env::consts::OS.to_string()));
    if let Ok(exe) = std::env::current_exe() {
        if let Some(name) = exe.file_name() {
            out.push((
                "process.executable.name".to_string(),
                name.to_string_lossy().into_owned(),
            ));
        }
        out.push((
            "process.executable.path".to_string(),
            exe.to_string_lossy().into_owned(),
        ));
    }
    out
}

/// A random (version 4) UUID in its usual text form, as the semantic
/// conventions recommend for `service.instance.id`.
pub fn new_uuid_v4() -> String {
    let mut b = [0u8; 16];
    // SAFETY: the buffer is valid for 16 bytes.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        // No getrandom: the id generator (seeded from time, pid and stack).
        b[..8].copy_from_slice(&crate::span::ids::new_span_id());
        b[8..].copy_from_slice(&crate::span::ids::new_span_id());
    }
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..len]).into_owned();
    (!name.is_empty()).then_some(name)
}

/// `host.arch` as the semantic conventions spell it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "arm" => "arm32",
        "powerpc" => "ppc32",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A complex value is kept in a crash dump's or flight file's header
    /// as its OTLP/JSON `AnyValue` object: text, as the header holds every
    /// value, naming what was set rather than nothing.
    #[test]
    fn a_complex_value_is_its_otlp_json_as_a_dump_header_keeps_it() {
        use crate::span::any_value::tests::{array, int, map, string};
        let v = AttrValue::Any(map(&[("app", string("a\"b")), ("n", array(&[int(1)]))]));
        assert_eq!(
            v.text(crate::export::otlp_json::encoded_any_value_text),
            r#"{"kvlistValue":{"values":[{"key":"app","value":{"stringValue":"a\"b"}},{"key":"n","value":{"arrayValue":{"values":[{"intValue":"1"}]}}}]}}"#
        );
        let given = [(
            "labels".to_string(),
            crate::config::ResourceValue::Any(map(&[("app", string("x"))])),
        )];
        let (_, entries) = ResourceInfo::new("svc", &[])
            .overridden(&given)
            .dump_entries(
                &["labels"],
                crate::export::otlp_json::encoded_any_value_text,
            );
        assert!(
            entries.contains(&(
                "labels".into(),
                r#"{"kvlistValue":{"values":[{"key":"app","value":{"stringValue":"x"}}]}}"#.into()
            )),
            "{entries:?}"
        );
    }

    #[test]
    fn an_array_is_a_json_list_as_a_dump_header_keeps_it() {
        let args = AttrValue::Array(vec![
            AttrValue::Str("node".into()),
            AttrValue::Str("say \"hi\"\\\n".into()),
        ]);
        assert_eq!(
            args.text(|_| unreachable!()),
            r#"["node","say \"hi\"\\\u000a"]"#
        );
        let ports = AttrValue::Array(vec![AttrValue::Int(80), AttrValue::Int(443)]);
        assert_eq!(ports.text(|_| unreachable!()), "[80,443]");
        assert_eq!(AttrValue::Array(vec![]).text(|_| unreachable!()), "[]");
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn uuids_are_version_4_and_differ() {
        let a = new_uuid_v4();
        let b = new_uuid_v4();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        assert_eq!(a.matches('-').count(), 4);
    }

    #[test]
    fn detection_names_the_process_and_host() {
        let d = detect();
        let get = |k: &str| d.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(d[0].0, INSTANCE_ID_KEY);
        assert_eq!(get("process.pid"), Some(std::process::id().to_string()));
        assert_eq!(get("os.type").as_deref(), Some("linux"));
        assert!(get("host.name").is_some_and(|h| !h.is_empty()));
        assert!(get("host.arch").is_some());
        let exe = std::env::current_exe().expect("exe");
        assert_eq!(
            get("process.executable.path"),
            Some(exe.to_string_lossy().into_owned())
        );
        assert_ne!(detect()[0].1, d[0].1, "a new instance id per tracer");
    }

    #[test]
    fn the_instance_id_follows_the_service_name_and_the_pid_is_an_int() {
        let r = ResourceInfo::new(
            "svc",
            &kv(&[
                ("deployment.environment", "prod"),
                ("process.pid", "4242"),
                (INSTANCE_ID_KEY, "abc"),
                ("process.pid_like", "7"),
            ]),
        );
        assert_eq!(r.attributes[0].0, "service.name");
        assert_eq!(
            r.attributes[1],
            (INSTANCE_ID_KEY.into(), AttrValue::Str("abc".into()))
        );
        let get = |k: &str| {
            r.attributes
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("process.pid"), Some(AttrValue::Int(4242)));
        assert_eq!(get("process.pid_like"), Some(AttrValue::Str("7".into())));
        assert_eq!(
            r.attributes
                .iter()
                .filter(|(k, _)| k == INSTANCE_ID_KEY)
                .count(),
            1
        );
    }
}
