//! Fixed capacities of one span record. They are compile-time constants because
//! every span lives in a preallocated slot: a value that does not fit is
//! truncated (strings) or dropped (attributes, events, links) and counted,
//! never allocated for.

/// Bytes of text (name, keys, string values, status message, tracestate,
/// event names) that one span can hold in total.
pub const ARENA_BYTES: usize = 2048;
/// Longest span or event name kept, in bytes; longer names are truncated on a
/// UTF-8 character boundary.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest attribute key kept, in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// Longest string attribute value or status message kept, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;
/// Attributes per span, counting those on its events and links.
pub const MAX_ATTRIBUTES: usize = 48;
/// Events per span.
pub const MAX_EVENTS: usize = 8;
/// Links per span.
pub const MAX_LINKS: usize = 4;
/// Longest W3C tracestate kept, in bytes: the 512 characters the
/// specification asks vendors to propagate at least. A longer one is cut by
/// whole members (see `span::tracestate`).
pub const MAX_TRACESTATE_BYTES: usize = 512;
/// Slots one tracer may have: span handles carry the slot number in 24 bits.
pub const MAX_SLOTS: u32 = 1 << 24;
