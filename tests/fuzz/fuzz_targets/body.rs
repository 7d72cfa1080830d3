//! A request body as a spool file or a sink line holds it, read from the
//! fuzz input: shared by the targets that decode one (`mod body;`).

use spanguard::export::transport::BodyFormat;

/// How the body is to be read, and the body.
pub struct Reading<'a> {
    pub body: &'a [u8],
    pub format: BodyFormat,
    pub gzipped: bool,
}

/// The first byte picks the reading (bit 0 JSON, bit 1 gzipped); the
/// rest is the body. None for an empty input.
pub fn reading(data: &[u8]) -> Option<Reading<'_>> {
    let (&how, body) = data.split_first()?;
    let format = if how & 1 == 0 {
        BodyFormat::Protobuf
    } else {
        BodyFormat::Json
    };
    Some(Reading {
        body,
        format,
        gzipped: how & 2 != 0,
    })
}
