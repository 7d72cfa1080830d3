//! Everything after a span ends: batching, OTLP encoding, transport.

pub mod append;
pub mod batch_sizer;
pub mod delivery;
pub mod diagnostics;
pub mod discard;
pub mod dump_view;
pub mod exporter;
pub mod file_sink;
pub mod gzip;
pub mod http;
pub mod json_value;
pub mod otlp_decode;
pub mod otlp_fields;
pub mod otlp_json;
pub mod otlp_proto;
pub mod pacer;
pub mod partial_success;
pub mod proto_reader;
pub mod recovery;
pub mod redact;
pub mod request_encoder;
pub mod resource;
pub mod retry;
pub mod split;
pub mod spool;
pub mod transport;
