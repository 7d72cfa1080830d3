//! Reads protobuf wire format field by field, for what spanguard gets back
//! or takes apart: a server's response (partial success), encoded requests
//! that must be split, and a complex attribute value (an OTLP AnyValue) a
//! caller hands over already encoded. Every length is checked against the
//! buffer; malformed input ends the walk with None, never a panic. It
//! imports nothing of the crate: it lives beside the records, which check
//! such values as they are set, so that neither the recording side nor the
//! exporter reaches up into the other.

/// One field of a message.
#[derive(Clone, Copy, Debug)]
pub struct Field<'a> {
    pub number: u64,
    pub wire_type: u8,
    /// The value of a varint field.
    pub varint: u64,
    /// The payload of a length-delimited field.
    pub bytes: &'a [u8],
    /// The whole field as it was on the wire (tag included), to copy it.
    pub raw: &'a [u8],
}

pub(crate) const WIRE_VARINT: u8 = 0;
pub(crate) const WIRE_LEN: u8 = 2;

pub fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        // The tenth byte holds bit 63 alone: more is a value past 64 bits,
        // which protobuf's parsers refuse (Go's, the Collector's, with the
        // whole request) where reading on dropped the bits.
        if shift == 63 && b > 1 {
            return None;
        }
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// A field's key split into its number and wire type; None for a number
/// no field can have: 0, or past protobuf's largest (2^29 - 1, a key past
/// 32 bits). Protobuf's parsers refuse both, so a body of zero bytes (a
/// run of "field 0 = 0") is no message, where it was read as an empty
/// request: a spool file of zeros was sent, and a 400 deleted it.
pub fn split_key(key: u64) -> Option<(u64, u8)> {
    let number = key >> 3;
    (1..=MAX_FIELD_NUMBER)
        .contains(&number)
        .then_some((number, (key & 7) as u8))
}

/// Protobuf's largest field number.
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

pub fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a length-delimited field.
pub fn write_len_field(out: &mut Vec<u8>, number: u64, payload: &[u8]) {
    write_varint(out, (number << 3) | WIRE_LEN as u64);
    write_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// Every field of `buf`, in order; None when `buf` is not well formed.
pub fn fields(buf: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let start = pos;
        let (number, wire_type) = split_key(read_varint(buf, &mut pos)?)?;
        let mut field = Field {
            number,
            wire_type,
            varint: 0,
            bytes: &[],
            raw: &[],
        };
        match wire_type {
            WIRE_VARINT => field.varint = read_varint(buf, &mut pos)?,
            1 => pos = pos.checked_add(8).filter(|&p| p <= buf.len())?,
            WIRE_LEN => {
                let len = usize::try_from(read_varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len).filter(|&e| e <= buf.len())?;
                field.bytes = &buf[pos..end];
                pos = end;
            }
            5 => pos = pos.checked_add(4).filter(|&p| p <= buf.len())?,
            _ => return None,
        }
        field.raw = &buf[start..pos];
        out.push(field);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_bad_input_is_refused() {
        let mut msg = Vec::new();
        write_varint(&mut msg, 1 << 3);
        write_varint(&mut msg, 300);
        write_len_field(&mut msg, 2, b"hello");
        let f = fields(&msg).expect("well formed");
        assert_eq!((f[0].number, f[0].varint), (1, 300));
        assert_eq!((f[1].number, f[1].bytes), (2, &b"hello"[..]));
        assert_eq!([f[0].raw, f[1].raw].concat(), msg);
        assert!(fields(&[0x12, 0x50]).is_none());
        assert!(fields(&[0x0f]).is_none());
        // Field number 0, and one past protobuf's largest: no field.
        assert!(fields(&[0x00, 0x00]).is_none());
        assert!(fields(&[0x02, 0x00]).is_none());
        assert!(fields(&[0x80, 0x80, 0x80, 0x80, 0x20, 0x00]).is_none());
        let mut largest = Vec::new();
        write_varint(&mut largest, MAX_FIELD_NUMBER << 3);
        write_varint(&mut largest, 1);
        assert_eq!(
            fields(&largest).expect("well formed")[0].number,
            MAX_FIELD_NUMBER
        );
        assert!(
            fields(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
            ])
            .is_none()
        );
    }
}
