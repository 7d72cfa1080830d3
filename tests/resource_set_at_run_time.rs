//! A bridged SDK provider's resource, set at run time
//! (`Tracer::set_resource`, `spanguard_tracer_set_resource`): the spans
//! exported after it carry the provider's service.name and attributes over
//! the tracer's own, typed as given, except the SDK's fallback service
//! name. Judged by what the file sink wrote.

use std::time::Duration;

use spanguard::config::{ResourceValue, TracerConfig};
use spanguard::tracer::{Parent, SpanError, Tracer};

fn sink_text(tracer: &Tracer) -> String {
    std::fs::read_to_string(tracer.sink_path().expect("file sink")).expect("sink file")
}

fn one_span(tracer: &Tracer) {
    let (s, _) = tracer.begin(b"op", Parent::None, 1).expect("begin");
    tracer.end(s, 0).expect("end");
    tracer.flush(Duration::from_secs(30)).expect("flush");
}

#[test]
fn the_providers_resource_is_exported_over_the_tracers() {
    let dir = std::env::temp_dir().join(format!("sg-set-resource-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tracer = Tracer::new(TracerConfig {
        service_name: "spanguard-own".into(),
        resource_attributes: vec![("team".into(), "core".into())],
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        ..TracerConfig::default()
    })
    .expect("tracer");
    one_span(&tracer);
    tracer
        .set_resource(vec![
            (
                "service.name".into(),
                ResourceValue::Str("checkout-agent".into()),
            ),
            (
                "deployment.environment.name".into(),
                ResourceValue::Str("prod".into()),
            ),
            (
                "telemetry.sdk.language".into(),
                ResourceValue::Str("go".into()),
            ),
            ("replicas".into(), ResourceValue::Int(3)),
        ])
        .expect("running");
    one_span(&tracer);
    tracer
        .set_resource(vec![(
            "service.name".into(),
            ResourceValue::Str("unknown_service:node".into()),
        )])
        .expect("running");
    one_span(&tracer);
    let text = sink_text(&tracer);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let has = |line: &str, key: &str, value: &str| {
        line.contains(&format!("{{\"key\":\"{key}\",\"value\":{value}}}"))
    };
    assert!(
        has(
            lines[0],
            "service.name",
            "{\"stringValue\":\"spanguard-own\"}"
        ),
        "{}",
        lines[0]
    );
    assert!(
        has(
            lines[1],
            "service.name",
            "{\"stringValue\":\"checkout-agent\"}"
        ),
        "{}",
        lines[1]
    );
    assert!(has(
        lines[1],
        "deployment.environment.name",
        "{\"stringValue\":\"prod\"}"
    ));
    assert!(has(
        lines[1],
        "telemetry.sdk.language",
        "{\"stringValue\":\"go\"}"
    ));
    assert!(has(lines[1], "replicas", "{\"intValue\":\"3\"}"));
    // The tracer's own attributes stay where the provider says nothing.
    assert!(has(lines[1], "team", "{\"stringValue\":\"core\"}"));
    // The SDK's fallback names no service: the tracer's own stays.
    assert!(
        has(
            lines[2],
            "service.name",
            "{\"stringValue\":\"spanguard-own\"}"
        ),
        "{}",
        lines[2]
    );
    // After shutdown, as every other call: ShutDown, nothing set.
    tracer.shutdown(Duration::from_secs(30)).expect("shutdown");
    assert_eq!(
        tracer.set_resource(vec![(
            "service.name".into(),
            ResourceValue::Str("late".into())
        )]),
        Err(SpanError::ShutDown)
    );
    drop(tracer);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn arrays_in_the_resource_arrive_as_arrays() {
    // OpenTelemetry SDKs detect `process.command_args` as an array (Node's
    // default resource has it): set_resource left arrays out, counted
    // nowhere. They arrive as OTLP arrays, in the sink's JSON as in
    // protobuf (which the bindings' receiver tests read), and read back.
    use spanguard::export::otlp_decode::{Value, decode_json};
    let dir = std::env::temp_dir().join(format!("sg-resource-arrays-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tracer = Tracer::new(TracerConfig {
        service_name: "spanguard-own".into(),
        sink_dir: dir.join("spans"),
        spool_dir: dir.join("spool"),
        install_signal_handlers: false,
        ..TracerConfig::default()
    })
    .expect("tracer");
    let text = |s: &str| ResourceValue::Str(s.into());
    tracer
        .set_resource(vec![
            (
                "process.command_args".into(),
                ResourceValue::Array(vec![text("node"), text("app.js"), text("--port=\"80\"")]),
            ),
            (
                "ports".into(),
                ResourceValue::Array(vec![ResourceValue::Int(80), ResourceValue::Int(443)]),
            ),
            ("none".into(), ResourceValue::Array(vec![])),
        ])
        .expect("running");
    one_span(&tracer);
    let sink = sink_text(&tracer);
    assert!(
        sink.contains(
            r#"{"key":"process.command_args","value":{"arrayValue":{"values":[{"stringValue":"node"},{"stringValue":"app.js"},{"stringValue":"--port=\"80\""}]}}}"#
        ),
        "{sink}"
    );
    let spans = decode_json(sink.lines().next().expect("a line").as_bytes()).expect("decodes");
    let resource = |key: &str| spans[0].resource_attribute(key).cloned();
    assert_eq!(
        resource("ports"),
        Some(Value::Array(vec![Value::Int(80), Value::Int(443)]))
    );
    assert_eq!(resource("none"), Some(Value::Array(vec![])));
    assert_eq!(
        resource("service.name"),
        Some(Value::Str("spanguard-own".into()))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
