//! Result codes. A code keeps its number and its one meaning forever; a
//! retired code stays here as a reserved comment.

use std::ffi::c_char;

use super::boundary::ffi_boundary;
use crate::tracer::{Notice, SpanError};

/// What a call did. `SPANGUARD_RESULT_OK` and the notices
/// (`SPANGUARD_RESULT_TRUNCATED`, `SPANGUARD_RESULT_UTF8_REPLACED`,
/// `SPANGUARD_RESULT_PARENT_STALE`, `SPANGUARD_RESULT_NON_RECORDING`,
/// `SPANGUARD_RESULT_SPOOLED`) mean the call succeeded;
/// `spanguard_result_is_ok` tells them apart from errors.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum spanguard_result {
    /// Done.
    Ok = 0,
    /// A required pointer argument was NULL. Nothing was done.
    NullArgument = 1,
    /// An argument was out of range (a span kind, a status code, a value
    /// type, a config struct_size, a signal number). Nothing was done.
    InvalidArgument = 2,
    /// The span handle names no live span: it was exported already, or it
    /// never was a handle. Nothing was done.
    StaleSpan = 3,
    /// The span was ended already. Nothing was done.
    AlreadyEnded = 4,
    /// The tracer is shut down; spans still open at shutdown were exported
    /// then, marked `spanguard.unended`.
    ShutDown = 5,
    /// Every span slot was taken and the full policy gave up; the span was not
    /// recorded and is counted in `dropped_buffer_full`.
    BufferFull = 6,
    /// A table is full and the item was not recorded: the span's
    /// attribute, event or link table (counted), or the tracer's table of
    /// scopes with attributes (`spanguard_tracer_set_scope_attributes`).
    LimitReached = 7,
    /// A flush or shutdown ran out of time before everything was exported;
    /// the export goes on in the background.
    Timeout = 8,
    /// The output buffer is too small; nothing was written.
    BufferTooSmall = 9,
    /// The traceparent text is not a valid W3C traceparent; or
    /// (`spanguard_span_add_link_ids`) the linked span context is invalid
    /// (all-zero ids) and the link has nothing else to record.
    InvalidTraceparent = 10,
    /// The configuration (a config field or an OTEL_* or SPANGUARD_* variable)
    /// is invalid.
    InvalidConfig = 11,
    /// The operating system refused a resource the tracer needs (memory map,
    /// thread, directory).
    Io = 12,
    /// 255 tracers are alive already.
    TooManyTracers = 13,
    /// spanguard hit an internal bug; the call was abandoned safely.
    Panic = 14,
    /// Done, but a string was cut at its documented limit (counted in
    /// `values_truncated`).
    Truncated = 15,
    /// Done, but invalid UTF-8 in a string was replaced with U+FFFD (counted
    /// in `utf8_replaced`).
    Utf8Replaced = 16,
    /// Done, but the parent span had been exported already (its handle is
    /// stale), so the span began a new trace. An ended span may still
    /// parent spans, as OpenTelemetry asks: to parent children begun after
    /// its export, keep its context while it is open (its
    /// `spanguard_span_traceparent`, and `spanguard_span_tracestate`, read
    /// before `spanguard_span_end`) and begin them with
    /// `spanguard_span_begin_ex` and explicit ids: its trace id, a new span
    /// id, its span id as `parent_span_id`, its trace flags and tracestate,
    /// without `SPANGUARD_SPAN_OPTION_PARENT_IS_REMOTE`; or keep the context
    /// `spanguard_span_begin_packed_keeping_ids` wrote at its begin and give
    /// it with the handle to that call. The Python, Node and Go bindings do
    /// so themselves: their ended spans stay usable as parents.
    ParentStale = 17,
    /// Done: the tracer is disabled (OTEL_SDK_DISABLED), the sampler left
    /// the span out, or the span is `SPANGUARD_SPAN_NONE`, so nothing is
    /// recorded. Such a span still propagates its context.
    NonRecording = 18,
    /// Done, but not delivered: `spanguard_flush` or `spanguard_shutdown`
    /// finished with some of the spans ended before it only written to the
    /// spool directory (the backend was down or kept failing). They are safe
    /// on disk and are sent when the backend answers again (by this
    /// process, the next one to start, or `spanguard replay`).
    Spooled = 19,
    /// Every span slot was taken and the tracer's full policy is to wait for
    /// one, which `spanguard_span_try_begin_packed` does not do: no span was
    /// begun and nothing was counted. Begin it with a call that may wait.
    /// From `spanguard_span_try_set_attributes_packed`: the values may need
    /// payload chunks, which a setter may wait for; nothing was set or
    /// counted. Set them with `spanguard_span_set_attributes_packed`.
    /// From `spanguard_span_try_set_attributes_packed`,
    /// `spanguard_span_try_end` and `spanguard_span_try_end_at`: another
    /// caller is writing the span (a setter waiting for payload chunks
    /// holds it), which they do not wait for; nothing was done. Make the
    /// call that may wait. From `spanguard_span_try_make_room`: either
    /// (the pool used up, or the span held); make the calls that may wait.
    WouldWait = 20,
    /// An attribute's key was empty, which OpenTelemetry forbids ("the
    /// attribute key MUST be a non-null and non-empty string"): that
    /// attribute was not recorded and is counted in `attributes_dropped`
    /// (and the span's dropped attributes); the others of the call were
    /// set.
    EmptyKey = 21,
    /// A complex value (`spanguard_span_set_anyvalue`,
    /// `SPANGUARD_VALUE_ANY`) is not a well-formed OTLP `AnyValue`
    /// message: a field number 0 or one the message does not define, a
    /// wrong wire type, a length past the end, a varint past 64 bits, a
    /// string or map key that is not UTF-8, or two values in one
    /// `AnyValue`. (Nesting is not refused: an array or map deeper than the
    /// depth limit is replaced by the empty value, TRUNCATED.) The
    /// attribute was not set (nor the others of a call that takes
    /// several).
    InvalidAnyValue = 22,
}

impl spanguard_result {
    /// The result a number from C names, if any: a number outside the
    /// enum must never be read as one (undefined behaviour in Rust).
    pub fn from_code(code: u32) -> Option<spanguard_result> {
        const KNOWN: [spanguard_result; 23] = [
            spanguard_result::Ok,
            spanguard_result::NullArgument,
            spanguard_result::InvalidArgument,
            spanguard_result::StaleSpan,
            spanguard_result::AlreadyEnded,
            spanguard_result::ShutDown,
            spanguard_result::BufferFull,
            spanguard_result::LimitReached,
            spanguard_result::Timeout,
            spanguard_result::BufferTooSmall,
            spanguard_result::InvalidTraceparent,
            spanguard_result::InvalidConfig,
            spanguard_result::Io,
            spanguard_result::TooManyTracers,
            spanguard_result::Panic,
            spanguard_result::Truncated,
            spanguard_result::Utf8Replaced,
            spanguard_result::ParentStale,
            spanguard_result::NonRecording,
            spanguard_result::Spooled,
            spanguard_result::WouldWait,
            spanguard_result::EmptyKey,
            spanguard_result::InvalidAnyValue,
        ];
        KNOWN.iter().copied().find(|k| *k as u32 == code)
    }

    pub fn is_ok(self) -> bool {
        matches!(
            self,
            spanguard_result::Ok
                | spanguard_result::Truncated
                | spanguard_result::Utf8Replaced
                | spanguard_result::ParentStale
                | spanguard_result::NonRecording
                | spanguard_result::Spooled
        )
    }

    pub fn message(self) -> &'static str {
        match self {
            spanguard_result::Ok => "ok\0",
            spanguard_result::NullArgument => "a required pointer argument was NULL\0",
            spanguard_result::InvalidArgument => "an argument was out of range\0",
            spanguard_result::StaleSpan => "the span handle names no live span\0",
            spanguard_result::AlreadyEnded => "the span was ended already\0",
            spanguard_result::ShutDown => "the tracer is shut down\0",
            spanguard_result::BufferFull => {
                "every span slot was taken; the span was dropped and counted\0"
            }
            spanguard_result::LimitReached => {
                "a table is full (a span's attributes, events or links: dropped and counted; or the tracer's scopes with attributes)\0"
            }
            spanguard_result::Timeout => "timed out before everything was exported\0",
            spanguard_result::BufferTooSmall => "the output buffer is too small\0",
            spanguard_result::InvalidTraceparent => "not a valid W3C traceparent\0",
            spanguard_result::InvalidConfig => "invalid configuration\0",
            spanguard_result::Io => "the operating system refused a resource\0",
            spanguard_result::TooManyTracers => "too many tracers alive\0",
            spanguard_result::Panic => "internal error (a panic was caught)\0",
            spanguard_result::Truncated => "done; a string was truncated at its limit\0",
            spanguard_result::Utf8Replaced => "done; invalid UTF-8 was replaced\0",
            spanguard_result::ParentStale => {
                "done; the parent was gone, so the span began a new trace\0"
            }
            spanguard_result::NonRecording => "done; the span is not recorded\0",
            spanguard_result::Spooled => {
                "done; some spans were written to the spool, not delivered (yet)\0"
            }
            spanguard_result::WouldWait => {
                "the call would have waited (for a span slot, payload chunks, or another caller writing the span) and waiting was refused; nothing was begun, set, ended or counted\0"
            }
            spanguard_result::EmptyKey => {
                "an attribute's key was empty; the attribute was dropped and counted\0"
            }
            spanguard_result::InvalidAnyValue => {
                "a complex attribute value is not a well-formed OTLP AnyValue message; it was not set\0"
            }
        }
    }

    #[inline(always)]
    pub(crate) fn from_notice(n: Notice) -> spanguard_result {
        // Nearly every call has nothing to say: one test of all four
        // (`|`, not `||`, so that it is one test and not four branches).
        if !(n.non_recording | n.parent_stale | n.truncated | n.replaced_utf8) {
            return spanguard_result::Ok;
        }
        if n.non_recording {
            spanguard_result::NonRecording
        } else if n.parent_stale {
            spanguard_result::ParentStale
        } else if n.truncated {
            spanguard_result::Truncated
        } else if n.replaced_utf8 {
            spanguard_result::Utf8Replaced
        } else {
            spanguard_result::Ok
        }
    }
}

impl From<SpanError> for spanguard_result {
    fn from(e: SpanError) -> spanguard_result {
        match e {
            SpanError::Stale => spanguard_result::StaleSpan,
            SpanError::Ended => spanguard_result::AlreadyEnded,
            SpanError::ShutDown => spanguard_result::ShutDown,
            SpanError::BufferFull => spanguard_result::BufferFull,
            SpanError::WouldWait => spanguard_result::WouldWait,
            SpanError::LimitReached => spanguard_result::LimitReached,
            SpanError::InvalidArgument => spanguard_result::InvalidArgument,
            SpanError::EmptyKey => spanguard_result::EmptyKey,
            SpanError::NonRecording => spanguard_result::NonRecording,
        }
    }
}

/// Whether `code` means the call succeeded (OK or a notice); false for an
/// unknown number. Takes a `uint32_t`, like `spanguard_strerror`, so that
/// any number a binding passes is defined behaviour. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_result_is_ok(code: u32) -> bool {
    ffi_boundary!(false, {
        spanguard_result::from_code(code).is_some_and(|r| r.is_ok())
    })
}

/// A static, NUL-terminated English description of `code` (a `uint32_t`, so
/// an unknown number is answered too). Never NULL; never freed. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_strerror(code: u32) -> *const c_char {
    ffi_boundary!(c"internal error".as_ptr(), {
        match spanguard_result::from_code(code) {
            Some(k) => k.message().as_ptr().cast(),
            None => c"unknown result code".as_ptr(),
        }
    })
}
