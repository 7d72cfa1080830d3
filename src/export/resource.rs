//! What every export request says about its origin: the resource (service
//! name, SDK, user attributes) and the instrumentation scope. Built once per
//! tracer from config; encoders read it for every batch.

#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ResourceInfo {
    /// In order; keys are unique.
    pub attributes: Vec<(String, AttrValue)>,
    pub scope_name: String,
    pub scope_version: String,
}

impl ResourceInfo {
    /// The resource for `service_name` plus `extra` attributes (from
    /// OTEL_RESOURCE_ATTRIBUTES or config). `service_name` wins over a
    /// `service.name` in `extra`, as the OpenTelemetry spec says.
    pub fn new(service_name: &str, extra: &[(String, String)]) -> ResourceInfo {
        let mut attributes = vec![
            (
                "service.name".to_string(),
                AttrValue::Str(service_name.to_string()),
            ),
            (
                "telemetry.sdk.name".to_string(),
                AttrValue::Str("spanguard".to_string()),
            ),
            (
                "telemetry.sdk.language".to_string(),
                AttrValue::Str("rust".to_string()),
            ),
            (
                "telemetry.sdk.version".to_string(),
                AttrValue::Str(env!("CARGO_PKG_VERSION").to_string()),
            ),
        ];
        for (k, v) in extra {
            if !attributes.iter().any(|(existing, _)| existing == k) {
                attributes.push((k.clone(), AttrValue::Str(v.clone())));
            }
        }
        ResourceInfo {
            attributes,
            scope_name: "spanguard".to_string(),
            scope_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}
