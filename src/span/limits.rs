//! What one span can hold. The slot's own capacities are compile-time
//! constants (every span lives in a preallocated slot); what does not fit
//! the slot goes to the span's chunks of the payload pool, bounded by
//! OpenTelemetry's limits (`SpanLimits`, from the OTEL_*_LIMIT variables)
//! and by the pool. A value that does not fit is cut (text, on a character
//! boundary) or an item dropped (attributes, events, links), and counted;
//! never allocated for, and never stored without its key.

/// Bytes of text the slot itself holds (its arena): names, keys and short
/// values of a small span never leave the slot.
pub const ARENA_BYTES: usize = 2048;
/// Longest span or event name kept, in bytes; longer names are cut on a
/// UTF-8 character boundary.
pub const MAX_NAME_BYTES: usize = 1024;
/// Longest attribute key kept, in bytes (a key is stored whole with its
/// attribute, or the attribute is dropped; a longer key is cut first).
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest W3C tracestate kept, in bytes: the length the W3C spec asks
/// vendors to propagate at least (cut by whole members, see `tracestate`).
pub const MAX_TRACESTATE_BYTES: usize = 512;
/// Longest instrumentation scope name or version kept, in bytes. Short
/// enough that a span's scope, stored first, always sits in the arena,
/// where the encoders compare scopes byte for byte.
pub const MAX_SCOPE_BYTES: usize = 256;
/// Instrumentation scopes that may have attributes at once
/// (`Tracer::set_scope_attributes`): a process has a tracer for each
/// library it instruments, tens at most; a program that makes scopes
/// without end (a name per request) must not grow every request with them.
pub const MAX_SCOPES_WITH_ATTRIBUTES: usize = 256;
/// Span attributes that live in the slot; more go to the span's chunks.
pub const INLINE_ATTRIBUTES: usize = 48;
/// Slots one tracer may have: span handles carry the slot number in 24 bits.
pub const MAX_SLOTS: u32 = 1 << 24;

/// Bytes of one payload-pool chunk: a page, so a chunk never touched costs
/// no memory (the pool is reserved, not populated) and no disk in the
/// flight recorder's sparse file, and a span's last chunk wastes at most a
/// page. A 100 KB prompt takes 25 of them, each a lock-free pop.
pub const CHUNK_BYTES: usize = 4096;
/// Chunks a span addresses straight from its slot (64 KiB); further ones
/// are listed in index chunks.
pub const DIRECT_CHUNKS: usize = 16;

/// OpenTelemetry's span limits (the SDK configuration spec's names). The
/// defaults are the spec's, except the value length: unlimited, because an
/// agent's prompts are what it records, and the pool bounds them anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanLimits {
    /// Longest value kept: a string's characters (as OpenTelemetry counts
    /// them: any character as 1, an invalid UTF-8 sequence as the one
    /// U+FFFD that replaces it), a bytes value's bytes; per element for
    /// arrays. `u32::MAX`: no limit but the pool.
    pub attribute_value_length: u32,
    /// Attributes of a span.
    pub attribute_count: u32,
    /// Events of a span.
    pub event_count: u32,
    /// Links of a span.
    pub link_count: u32,
    /// Attributes of one event.
    pub event_attribute_count: u32,
    /// Attributes of one link.
    pub link_attribute_count: u32,
    /// How deep a complex value (`span::any_value`) nests: its own level
    /// 1, each array element or map value one more; an array or map deeper
    /// is replaced by the empty value (counted as a truncated value), as
    /// OpenTelemetry's `attribute_value_depth_limit` says. 1 to
    /// `any_value::MAX_DEPTH_LIMIT`, which bounds every walk's stack use.
    pub attribute_value_depth: u32,
}

/// The OTel spec's default count limit.
pub const DEFAULT_COUNT_LIMIT: u32 = 128;
/// No limit on value length but the pool's size.
pub const NO_LENGTH_LIMIT: u32 = u32::MAX;
/// The most attributes, events or links per span a limit may allow: counts
/// in a record are 16 bits.
pub const MAX_COUNT_LIMIT: u32 = 32_767;

impl Default for SpanLimits {
    fn default() -> Self {
        SpanLimits {
            attribute_value_length: NO_LENGTH_LIMIT,
            attribute_count: DEFAULT_COUNT_LIMIT,
            event_count: DEFAULT_COUNT_LIMIT,
            link_count: DEFAULT_COUNT_LIMIT,
            event_attribute_count: DEFAULT_COUNT_LIMIT,
            link_attribute_count: DEFAULT_COUNT_LIMIT,
            attribute_value_depth: crate::span::any_value::DEFAULT_DEPTH_LIMIT,
        }
    }
}

impl SpanLimits {
    /// What a span another SDK already limited is held to (a bridge's
    /// span, `MARK_LIMITED_BY_CALLER`): the record's own bounds only. The
    /// SDK's limits are the ones its user set; applying the tracer's on
    /// top cut a span the SDK kept whole (128 of the 1000 attributes an
    /// OpenTelemetry provider allowed). (A function, not an associated
    /// constant, which cbindgen would put in the C header.)
    pub const fn widest() -> SpanLimits {
        SpanLimits {
            attribute_value_length: NO_LENGTH_LIMIT,
            attribute_count: MAX_COUNT_LIMIT,
            event_count: MAX_COUNT_LIMIT,
            link_count: MAX_COUNT_LIMIT,
            event_attribute_count: MAX_COUNT_LIMIT,
            link_attribute_count: MAX_COUNT_LIMIT,
            attribute_value_depth: crate::span::any_value::MAX_DEPTH_LIMIT,
        }
    }

    /// The value length limit: characters of a string value
    /// (`SpanRecord::store_value_text`), bytes of a bytes value.
    #[inline]
    pub fn value_len(&self) -> usize {
        self.attribute_value_length as usize
    }

    /// The complex value depth limit, within 1..=`MAX_DEPTH_LIMIT`
    /// whatever was set.
    #[inline]
    pub fn value_depth(&self) -> usize {
        let most = crate::span::any_value::MAX_DEPTH_LIMIT;
        self.attribute_value_depth.clamp(1, most) as usize
    }
}
