//! Span entry points. These are the hot path: callable from any thread at
//! once; a span may be ended on another thread than the one that began it.
//! Calls on one span from two threads at once are safe (they take turns).
//!
//! A handle is `tracer id << 56 | slot << 32 | generation`.

use std::ffi::c_char;

use super::args::{bytes, bytes_non_null, text_arg};
use super::boundary::{ffi_boundary, require_non_null};
use super::result::spanguard_result;
use super::tracer::spanguard_tracer;
use super::types::*;
use super::values::{any_value, elements, other_value, string_array};
use crate::span::any_value::AnyValueCopy;
use crate::span::passthrough::{self, PassThroughContext};
use crate::span::record::{LinkContext, StrInput};
use crate::span::traceparent::{self, KNOWN_FLAGS, TRACEPARENT_LEN};
use crate::span::tracestate::Tracestate;
use crate::tracer::{
    AttrInput, AttributeSink, AttributeSource, BeginOptions, ExplicitIds, Parent, SetRest, SpanRef,
    Tracer,
};

#[inline]
fn pack(id: u8, s: SpanRef) -> spanguard_span {
    (id as u64) << 56 | (s.slot as u64) << 32 | s.generation as u64
}

#[inline]
pub(super) fn unpack(h: spanguard_span) -> (u8, SpanRef) {
    (
        (h >> 56) as u8,
        SpanRef {
            slot: ((h >> 32) & 0xff_ffff) as u32,
            generation: h as u32,
        },
    )
}

/// Runs `f` on the span's tracer, or answers for a span that has none:
/// `SPANGUARD_SPAN_NONE` and the spans of a disabled tracer (tracer id 0)
/// record nothing.
#[inline]
pub(super) fn with_span(
    span: spanguard_span,
    f: impl FnOnce(&Tracer, SpanRef) -> spanguard_result,
) -> spanguard_result {
    let (id, s) = unpack(span);
    if id == 0 {
        return spanguard_result::NonRecording;
    }
    match super::tracer::live_tracer(id) {
        Some(t) => f(t, s),
        None => spanguard_result::StaleSpan,
    }
}

#[inline(always)]
pub(super) fn notice_or_error(
    r: Result<crate::tracer::Notice, crate::tracer::SpanError>,
) -> spanguard_result {
    // Nearly every call did what it was asked with nothing to say: one
    // compare of the whole result, the rest out of line.
    if r == Ok(crate::tracer::Notice::default()) {
        return spanguard_result::Ok;
    }
    notice_or_error_rare(r)
}

#[cold]
#[inline(never)]
fn notice_or_error_rare(
    r: Result<crate::tracer::Notice, crate::tracer::SpanError>,
) -> spanguard_result {
    match r {
        Ok(n) => spanguard_result::from_notice(n),
        Err(e) => e.into(),
    }
}

// The C call's arguments, one by one, and whether the begin may wait.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn begin_with<A: AttributeSource + ?Sized>(
    tracer: *const spanguard_tracer,
    name: *const c_char,
    name_len: usize,
    parent: Parent,
    kind: u32,
    attributes: &A,
    may_wait: bool,
    out: *mut spanguard_span,
) -> spanguard_result {
    if kind > SPANGUARD_KIND_CONSUMER {
        return spanguard_result::InvalidArgument;
    }
    // SAFETY: name is valid for name_len bytes (checked non-null by callers
    // when name_len > 0).
    let name = unsafe { bytes(name, name_len) };
    let opts = BeginOptions {
        may_wait,
        ..BeginOptions::new(name, kind as u8, parent)
    };
    begin_opts(tracer, &opts.with_attributes(attributes), out)
}

/// Begins a span as `opts` says on `tracer`, or, for a disabled tracer,
/// hands out a handle that passes the parent's context on (see
/// `span::passthrough`).
#[inline(always)]
fn begin_opts<A: AttributeSource + ?Sized>(
    tracer: *const spanguard_tracer,
    opts: &BeginOptions<A>,
    out: *mut spanguard_span,
) -> spanguard_result {
    begin_opts_keeping_ids(tracer, opts, out, std::ptr::null_mut())
}

/// `begin_opts` that also writes the new span's context to `out_context`
/// when it is not NULL (left alone when nothing was begun). NULL folds the
/// write away for the other begins.
#[inline(always)]
pub(super) fn begin_opts_keeping_ids<A: AttributeSource + ?Sized>(
    tracer: *const spanguard_tracer,
    opts: &BeginOptions<A>,
    out: *mut spanguard_span,
    out_context: *mut spanguard_span_context,
) -> spanguard_result {
    // SAFETY: callers checked tracer for NULL; it came from tracer_new.
    let t = unsafe { &*tracer };
    let inner = match t.made() {
        Ok(inner) => inner,
        Err(super::tracer::Absent::ShutDown) => return spanguard_result::ShutDown,
        Err(super::tracer::Absent::Disabled) => {
            let span = pass_through(opts.parent, opts.tracestate);
            // SAFETY: out is non-null (checked by callers); out_context is
            // NULL or writable.
            unsafe {
                out.write(span);
                if !out_context.is_null()
                    && let Ok((trace_id, span_id, trace_flags)) = context_of(span)
                {
                    out_context.write(spanguard_span_context {
                        trace_id,
                        span_id,
                        trace_flags,
                    });
                }
            }
            return spanguard_result::NonRecording;
        }
    };
    match inner.begin_keeping_ids(opts) {
        Ok((s, notice, c)) => {
            // SAFETY: out is non-null; out_context is NULL or writable.
            unsafe {
                out.write(pack(t.id, s));
                if !out_context.is_null() {
                    out_context.write(spanguard_span_context {
                        trace_id: c.trace_id,
                        span_id: c.span_id,
                        trace_flags: c.trace_flags,
                    });
                }
            }
            spanguard_result::from_notice(notice)
        }
        Err(e) => e.into(),
    }
}

/// A disabled tracer's span: OpenTelemetry's non-recording span that
/// carries its parent's context, so what came in goes out unchanged. A
/// root span has no context to pass on (`SPANGUARD_SPAN_NONE`); a child of
/// a pass-through span is that same span. Takes the two options it reads,
/// not the options: a reference to them made every begin write them all
/// to the stack first (about 20 stores).
#[cold]
#[inline(never)]
fn pass_through(parent: Parent, tracestate: &[u8]) -> spanguard_span {
    let (trace_id, span_id, trace_flags) = match parent {
        Parent::Remote(r) => (r.trace_id, r.span_id, r.trace_flags),
        Parent::Explicit(ids) => (ids.trace_id, ids.span_id, ids.trace_flags),
        Parent::Kept(_, k) => (k.trace_id, k.span_id, k.trace_flags),
        Parent::Local(s) => return pack(0, s),
        Parent::None => return SPANGUARD_SPAN_NONE,
    };
    let context = PassThroughContext {
        trace_id,
        span_id,
        trace_flags,
        tracestate: Tracestate::parse(tracestate).unwrap_or_default(),
    };
    let (index, generation) = passthrough::store(&context);
    pack(
        0,
        SpanRef {
            slot: index + 1,
            generation,
        },
    )
}

/// The context a span propagates: its own, or (for a disabled tracer's
/// span) the one it passes on. None for `SPANGUARD_SPAN_NONE` and spans
/// that carry none; Err for a stale or ended-and-exported span.
fn propagated_context(
    span: spanguard_span,
) -> Result<Option<PassThroughContext>, spanguard_result> {
    let (id, s) = unpack(span);
    if id == 0 {
        if s.slot == 0 {
            return Ok(None);
        }
        return Ok(passthrough::load(s.slot - 1, s.generation));
    }
    let t = super::tracer::live_tracer(id).ok_or(spanguard_result::StaleSpan)?;
    let ids = t.span_context(s).map_err(spanguard_result::from)?;
    let (bytes, len) = t.span_tracestate(s).map_err(spanguard_result::from)?;
    Ok(Some(PassThroughContext {
        trace_id: ids.trace_id,
        span_id: ids.span_id,
        trace_flags: ids.trace_flags,
        tracestate: Tracestate::parse(&bytes[..len]).unwrap_or_default(),
    }))
}

/// Starts a span named by `name_len` bytes at `name` (UTF-8; invalid bytes
/// are replaced), as a child of `parent` or, with `SPANGUARD_SPAN_NONE`, as
/// the root of a new trace. `kind` is `SPANGUARD_KIND_*`. Writes the handle
/// to `*out`. No allocation, lock or system call once the thread is warm.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_begin(
    tracer: *const spanguard_tracer,
    name: *const c_char,
    name_len: usize,
    parent: spanguard_span,
    kind: u32,
    out: *mut spanguard_span,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        begin_local(
            tracer,
            name,
            name_len,
            parent,
            kind,
            NO_ATTRIBUTES,
            true,
            out,
        )
    })
}

/// `spanguard_span_begin` with `n_attrs` attributes set from the start
/// (OpenTelemetry's attributes at span creation): one call and no lock of
/// the span for them, where begin then `spanguard_span_set_attributes`
/// take two calls and a lock. The attributes are checked first: with a
/// NULL pointer, an unknown value type, or more than
/// `SPANGUARD_MAX_ATTRIBUTES` of them, no span is begun and `*out` is not
/// written. Text notices (truncated, replaced) cover the name and the
/// attributes alike.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_begin_with_attributes(
    tracer: *const spanguard_tracer,
    name: *const c_char,
    name_len: usize,
    parent: spanguard_span,
    kind: u32,
    attrs: *const spanguard_attribute,
    n_attrs: usize,
    out: *mut spanguard_span,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        match checked_attributes(attrs, n_attrs) {
            Ok(attrs) => begin_local(tracer, name, name_len, parent, kind, &attrs, true, out),
            Err(rc) => rc,
        }
    })
}

/// The checks and body of `spanguard_span_begin`,
/// `spanguard_span_begin_with_attributes` and the packed begins: a parent
/// given by handle must be a span of the same tracer (else stale), or
/// `SPANGUARD_SPAN_NONE`. `may_wait` as in `BeginOptions`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn begin_local<A: AttributeSource + ?Sized>(
    tracer: *const spanguard_tracer,
    name: *const c_char,
    name_len: usize,
    parent: spanguard_span,
    kind: u32,
    attributes: &A,
    may_wait: bool,
    out: *mut spanguard_span,
) -> spanguard_result {
    require_non_null!(tracer, out);
    if name.is_null() && name_len > 0 {
        return spanguard_result::NullArgument;
    }
    if parent == SPANGUARD_SPAN_NONE {
        // A root apart from a child: each copy of the body has its parent's
        // kind folded in, and the root's keeps nothing of a parent.
        return begin_with(
            tracer,
            name,
            name_len,
            Parent::None,
            kind,
            attributes,
            may_wait,
            out,
        );
    }
    let (id, s) = unpack(parent);
    // SAFETY: tracer is non-null; it came from tracer_new.
    if id != unsafe { (*tracer).id } {
        return spanguard_result::StaleSpan;
    }
    begin_with(
        tracer,
        name,
        name_len,
        Parent::Local(s),
        kind,
        attributes,
        may_wait,
        out,
    )
}

/// Starts a span whose parent lives in another process, given as a W3C
/// `traceparent` (`tp_len` bytes at `traceparent`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_begin_remote(
    tracer: *const spanguard_tracer,
    name: *const c_char,
    name_len: usize,
    traceparent: *const c_char,
    tp_len: usize,
    kind: u32,
    out: *mut spanguard_span,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(tracer, out, traceparent);
        if name.is_null() && name_len > 0 {
            return spanguard_result::NullArgument;
        }
        // SAFETY: traceparent is valid for tp_len bytes.
        let Some(remote) = traceparent::parse(unsafe { bytes(traceparent, tp_len) }) else {
            return spanguard_result::InvalidTraceparent;
        };
        begin_with(
            tracer,
            name,
            name_len,
            Parent::Remote(remote),
            kind,
            NO_ATTRIBUTES,
            true,
            out,
        )
    })
}

/// Writes the span's W3C traceparent, NUL-terminated, into `buf` (at least
/// `SPANGUARD_TRACEPARENT_SIZE` bytes), to pass to another process. An
/// unsampled span gives its traceparent too (flags `00`): its children
/// elsewhere then know the decision. A span of a disabled tracer gives the
/// context it passes on. When there is nothing to propagate
/// (`SPANGUARD_SPAN_NONE`, a disabled tracer's root span) `buf` gets the
/// empty string and the result is `SPANGUARD_RESULT_NON_RECORDING`: send no
/// header then.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_traceparent(
    span: spanguard_span,
    buf: *mut c_char,
    len: usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(buf);
        if len < TRACEPARENT_LEN + 1 {
            return spanguard_result::BufferTooSmall;
        }
        match propagated_context(span) {
            Ok(Some(ctx)) => {
                let mut text = [0u8; TRACEPARENT_LEN];
                traceparent::format(&ctx.trace_id, &ctx.span_id, ctx.trace_flags, &mut text);
                // SAFETY: buf holds at least TRACEPARENT_LEN + 1 bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), TRACEPARENT_LEN);
                    *buf.add(TRACEPARENT_LEN) = 0;
                }
                spanguard_result::Ok
            }
            Ok(None) => {
                // SAFETY: buf holds at least one byte.
                unsafe { *buf = 0 };
                spanguard_result::NonRecording
            }
            Err(e) => e,
        }
    })
}

/// Writes the span's ids and W3C trace flags as bytes: 16 at `trace_id`,
/// 8 at `span_id`, one at `trace_flags` (what `spanguard_span_traceparent`
/// writes as text, without formatting or reading a tracestate). For a
/// binding that keeps a span's context as the span ends, so that the span
/// still parents spans once its slot has gone to another (an ended span
/// stays usable as a parent, OpenTelemetry's API says). Returns
/// `SPANGUARD_RESULT_NON_RECORDING` and writes nothing for
/// `SPANGUARD_SPAN_NONE` or a disabled tracer's root span, which have no
/// context. No allocation, lock or system call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_ids(
    span: spanguard_span,
    trace_id: *mut u8,
    span_id: *mut u8,
    trace_flags: *mut u8,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(trace_id);
        require_non_null!(span_id);
        require_non_null!(trace_flags);
        match context_of(span) {
            Ok(ids) => {
                // SAFETY: the caller's buffers hold 16, 8 and 1 bytes.
                unsafe { write_ids(&ids, trace_id, span_id, trace_flags) };
                spanguard_result::Ok
            }
            Err(code) => code,
        }
    })
}

/// The ids and flags of a span's context: a live span's, or the context a
/// disabled tracer's span passes on. `NonRecording` for none
/// (`SPANGUARD_SPAN_NONE`, a disabled tracer's root span), `StaleSpan` and
/// the like for a handle that names no live span.
fn context_of(span: spanguard_span) -> Result<([u8; 16], [u8; 8], u8), spanguard_result> {
    let (id, s) = unpack(span);
    if id == 0 {
        if s.slot == 0 {
            return Err(spanguard_result::NonRecording);
        }
        return passthrough::load(s.slot - 1, s.generation)
            .map(|c| (c.trace_id, c.span_id, c.trace_flags))
            .ok_or(spanguard_result::NonRecording);
    }
    let Some(t) = super::tracer::live_tracer(id) else {
        return Err(spanguard_result::StaleSpan);
    };
    t.span_context(s)
        .map(|c| (c.trace_id, c.span_id, c.trace_flags))
        .map_err(Into::into)
}

/// Copies `ids` out as `spanguard_span_ids` documents.
///
/// # Safety
/// The pointers must be valid for 16, 8 and 1 bytes.
unsafe fn write_ids(
    ids: &([u8; 16], [u8; 8], u8),
    trace_id: *mut u8,
    span_id: *mut u8,
    trace_flags: *mut u8,
) {
    // SAFETY: the caller's contract.
    unsafe {
        std::ptr::copy_nonoverlapping(ids.0.as_ptr(), trace_id, 16);
        std::ptr::copy_nonoverlapping(ids.1.as_ptr(), span_id, 8);
        *trace_flags = ids.2;
    }
}

/// Ends the span as `spanguard_span_end_at` does (`end_unix_ns` 0: now),
/// having first written its ids as `spanguard_span_ids` does and set
/// `*kept` when it has a context (`*kept` false, nothing written, when it
/// has none: `SPANGUARD_SPAN_NONE`, a handle no longer live). A disabled
/// tracer's span has the context it passes on, and ends with
/// `SPANGUARD_RESULT_NON_RECORDING`. For a binding that keeps every ended
/// span's context, so that the span still parents spans once its slot has
/// gone to another (OpenTelemetry's API: "it MUST still be possible to use
/// an ended span as parent"): one call where `spanguard_span_ids` and
/// `spanguard_span_end` would be two. No allocation, lock or system call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_end_keeping_ids(
    span: spanguard_span,
    end_unix_ns: u64,
    trace_id: *mut u8,
    span_id: *mut u8,
    trace_flags: *mut u8,
    kept: *mut bool,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(trace_id, span_id, trace_flags, kept);
        // Read before the end: once ended, the span may be exported and its
        // slot reused at any moment.
        let ids = context_of(span);
        // SAFETY: the caller's buffers hold 16, 8 and 1 bytes, and a bool.
        unsafe {
            if let Ok(ids) = &ids {
                write_ids(ids, trace_id, span_id, trace_flags);
            }
            *kept = ids.is_ok();
        }
        // 0 is now for Tracer::end, as here.
        with_span(span, |t, s| match t.end(s, end_unix_ns) {
            Ok(()) => spanguard_result::Ok,
            Err(e) => e.into(),
        })
    })
}

/// Writes the span's W3C tracestate, NUL-terminated, into `buf` (`len`
/// bytes; `SPANGUARD_MAX_TRACESTATE_BYTES + 1` always suffice) and its
/// length without the NUL to `*out_len` (when not NULL). The tracestate is
/// what the span began with (a remote parent's, checked and normalised:
/// members joined by `,`), or its local parent's. An empty string when it
/// has none: send no `tracestate` header then. `SPANGUARD_RESULT_BUFFER_TOO_SMALL`
/// (with the length needed in `*out_len`) when it does not fit.
/// `SPANGUARD_RESULT_NON_RECORDING` for `SPANGUARD_SPAN_NONE` (empty).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_tracestate(
    span: spanguard_span,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(buf);
        if len == 0 {
            return spanguard_result::BufferTooSmall;
        }
        let (ctx, found) = match propagated_context(span) {
            Ok(Some(ctx)) => (ctx, true),
            Ok(None) => (PassThroughContext::none(), false),
            Err(e) => return e,
        };
        let text = ctx.tracestate.as_bytes();
        if !out_len.is_null() {
            // SAFETY: out_len is non-null and the caller's.
            unsafe { out_len.write(text.len()) };
        }
        if text.len() + 1 > len {
            return spanguard_result::BufferTooSmall;
        }
        // SAFETY: buf holds len > text.len() bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
            *buf.add(text.len()) = 0;
        }
        if found {
            spanguard_result::Ok
        } else {
            spanguard_result::NonRecording
        }
    })
}

/// The size of `spanguard_span_options` as its first version had it (up to
/// `attribute_count`): what `spanguard_span_options_init` fills.
const SPAN_OPTIONS_FIRST_SIZE: usize =
    std::mem::offset_of!(spanguard_span_options, scope_schema_url);

/// Fills `opts` for `spanguard_span_begin_ex` as its first version was:
/// `struct_size` set to that size, every field up to `attribute_count`
/// zero (no parent, kind unspecified, start now), nothing past it written:
/// a program built against an older header passes a struct of that size.
/// To set a field added later (`scope_schema_url`), fill the struct with
/// `spanguard_span_options_init_sized(opts, sizeof *opts)` instead.
/// Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_options_init(
    opts: *mut spanguard_span_options,
) -> spanguard_result {
    // SAFETY: the caller's struct holds at least the first version's size.
    unsafe { spanguard_span_options_init_sized(opts, SPAN_OPTIONS_FIRST_SIZE) }
}

/// Fills the first `opts_size` bytes of `opts` (pass `sizeof *opts`) for
/// `spanguard_span_begin_ex`: `struct_size` set to `opts_size` (or this
/// library's size, when the caller's is larger), every other field zero.
/// `SPANGUARD_RESULT_INVALID_ARGUMENT` for a size below the first
/// version's. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_options_init_sized(
    opts: *mut spanguard_span_options,
    opts_size: usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(opts);
        if opts_size < SPAN_OPTIONS_FIRST_SIZE {
            return spanguard_result::InvalidArgument;
        }
        let n = opts_size.min(std::mem::size_of::<spanguard_span_options>());
        // SAFETY: all-zero is a valid value of this plain C struct (NULL
        // pointers, zero numbers); opts is non-null and the caller's, and
        // holds n bytes.
        unsafe {
            std::ptr::write_bytes(opts.cast::<u8>(), 0, n);
            (*opts).struct_size = n as u32;
        }
        spanguard_result::Ok
    })
}

/// Begins a span as `opts` says (see `spanguard_span_options`): a local,
/// remote or explicit parent, a tracestate, a start time, an
/// instrumentation scope and attributes, in one call. This is what bridges
/// from OpenTelemetry SDKs use: with explicit ids the span keeps the ids
/// the SDK gave it, so what the SDK propagates names spans spanguard
/// exports, and a process killed before the SDK span ends still exports it
/// (marked interrupted). Checks everything before taking a slot: on an
/// error no span is begun and `*out` is not written. Thread-safe; no
/// allocation, lock or system call once the thread is warm.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_begin_ex(
    tracer: *const spanguard_tracer,
    opts: *const spanguard_span_options,
    out: *mut spanguard_span,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(tracer, opts, out);
        // SAFETY: opts is non-null; struct_size is its first field.
        let o = match unsafe { read_span_options(opts) } {
            Ok(o) => o,
            Err(e) => return e,
        };
        if o.kind > SPANGUARD_KIND_CONSUMER {
            return spanguard_result::InvalidArgument;
        }
        // SAFETY (all `text` calls): the caller's pointers are valid for
        // their lengths, or NULL with length 0.
        let text = |p: *const c_char, n: usize| unsafe { text_arg(p, n) };
        let fields = (|| {
            Ok::<_, spanguard_result>((
                text(o.name, o.name_len)?,
                text(o.traceparent, o.traceparent_len)?,
                text(o.tracestate, o.tracestate_len)?,
                text(o.scope_name, o.scope_name_len)?,
                text(o.scope_version, o.scope_version_len)?,
                text(o.scope_schema_url, o.scope_schema_url_len)?,
            ))
        })();
        let (name, tp, tracestate, scope_name, scope_version, scope_schema_url) = match fields {
            Ok(f) => f,
            Err(e) => return e,
        };
        let explicit = !o.trace_id.is_null();
        let remote = !o.traceparent.is_null();
        let local = o.parent != SPANGUARD_SPAN_NONE;
        if explicit as u8 + remote as u8 + local as u8 > 1 {
            return spanguard_result::InvalidArgument;
        }
        let parent = if explicit {
            if o.span_id.is_null() {
                return spanguard_result::NullArgument;
            }
            // SAFETY: the caller gives 16, 8 and 8 bytes at these pointers.
            let ids = unsafe {
                ExplicitIds {
                    trace_id: std::ptr::read_unaligned(o.trace_id.cast::<[u8; 16]>()),
                    span_id: std::ptr::read_unaligned(o.span_id.cast::<[u8; 8]>()),
                    parent_span_id: if o.parent_span_id.is_null() {
                        [0; 8]
                    } else {
                        std::ptr::read_unaligned(o.parent_span_id.cast::<[u8; 8]>())
                    },
                    trace_flags: (o.trace_flags & 0xff) as u8,
                    parent_is_remote: o.flags & SPANGUARD_SPAN_OPTION_PARENT_IS_REMOTE != 0,
                    limited_by_caller: o.flags & SPANGUARD_SPAN_OPTION_LIMITED_BY_CALLER != 0,
                }
            };
            if ids.trace_id == [0; 16] || ids.span_id == [0; 8] {
                return spanguard_result::InvalidArgument;
            }
            Parent::Explicit(ids)
        } else if remote {
            match traceparent::parse(tp) {
                Some(r) => Parent::Remote(r),
                None => return spanguard_result::InvalidTraceparent,
            }
        } else if local {
            let (id, s) = unpack(o.parent);
            // SAFETY: tracer is non-null; it came from tracer_new.
            if id != unsafe { (*tracer).id } {
                return spanguard_result::StaleSpan;
            }
            Parent::Local(s)
        } else {
            Parent::None
        };
        let attrs = match checked_attributes(o.attributes, o.attribute_count) {
            Ok(attrs) => attrs,
            Err(rc) => return rc,
        };
        let opts = BeginOptions {
            name,
            kind: o.kind as u8,
            parent,
            tracestate,
            start_unix_ns: o.start_time_unix_ns,
            scope_name,
            scope_version,
            scope_schema_url,
            attributes: &attrs,
            may_wait: o.flags & SPANGUARD_SPAN_OPTION_NO_WAIT == 0,
            waited_elsewhere: o.flags & SPANGUARD_SPAN_OPTION_WAITED != 0,
        };
        begin_opts(tracer, &opts, out)
    })
}

/// Copies the caller's options, reading only the `struct_size` bytes it
/// has (a caller built against an older header keeps working).
unsafe fn read_span_options(
    opts: *const spanguard_span_options,
) -> Result<spanguard_span_options, spanguard_result> {
    // SAFETY: all-zero is a valid value of the struct; struct_size is the
    // first field of the caller's, which is non-null.
    let mut full: spanguard_span_options = unsafe { std::mem::zeroed() };
    let size = unsafe { (*opts).struct_size } as usize;
    if size < std::mem::offset_of!(spanguard_span_options, traceparent) {
        return Err(spanguard_result::InvalidArgument);
    }
    let n = size.min(std::mem::size_of::<spanguard_span_options>());
    // SAFETY: the caller's struct is at least `size` bytes; we copy at most
    // our own size.
    unsafe {
        std::ptr::copy_nonoverlapping(
            opts.cast::<u8>(),
            (&mut full as *mut spanguard_span_options).cast::<u8>(),
            n,
        )
    };
    Ok(full)
}

/// The body of the scalar attribute setters.
///
/// # Safety
/// `key` must be valid for `key_len` bytes.
#[inline(always)]
unsafe fn set_scalar(
    span: spanguard_span,
    key: *const c_char,
    key_len: usize,
    value: impl Into<AttrInput<'static>> + Copy,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(key);
        // SAFETY: key is not NULL and valid for key_len bytes.
        let key = unsafe { bytes_non_null(key, key_len) };
        with_span(span, |t, s| {
            match t.set_attribute_first_try(s, key, value) {
                None => spanguard_result::Ok,
                // SAFETY: key is valid for key_len bytes.
                Some(rest) => unsafe { set_scalar_rest(span, key.as_ptr(), key_len, value, rest) },
            }
        })
    })
}

/// What a scalar setter's common case left (`Tracer::set_attribute_rest`),
/// out of line with the setter's own arguments and the word that says
/// what is left: extern "C", so that it does not unwind (it has its own
/// boundary) and the setter reaches it by a tail call, with nothing of its
/// own kept across a call (no register saved on its common path).
///
/// # Safety
/// As for the setter; `rest` came from `set_attribute_first_try` on the
/// span's tracer for this span, and is used once.
#[cold]
#[inline(never)]
#[allow(improper_ctypes_definitions)]
unsafe extern "C" fn set_scalar_rest<V: Into<AttrInput<'static>> + Copy>(
    span: spanguard_span,
    key: *const u8,
    key_len: usize,
    value: V,
    rest: SetRest,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        // SAFETY: the setter checked key not NULL; valid for key_len bytes.
        let key = unsafe { std::slice::from_raw_parts(key, key_len) };
        with_span(span, |t, s| {
            // SAFETY: as this function's contract says.
            notice_or_error(unsafe { t.set_attribute_rest(s, key, value, rest) })
        })
    })
}

/// Sets an int64 attribute. A key set again gets the new value. An empty
/// key sets nothing (`SPANGUARD_RESULT_EMPTY_KEY`, counted in
/// `attributes_dropped`), as for every setter: OpenTelemetry's keys are
/// non-empty.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_set_int(
    span: spanguard_span,
    key: *const c_char,
    key_len: usize,
    value: i64,
) -> spanguard_result {
    // SAFETY: key is valid for key_len bytes (the caller's contract).
    unsafe { set_scalar(span, key, key_len, value) }
}

/// Sets a double attribute.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_set_double(
    span: spanguard_span,
    key: *const c_char,
    key_len: usize,
    value: f64,
) -> spanguard_result {
    // SAFETY: key is valid for key_len bytes (the caller's contract).
    unsafe { set_scalar(span, key, key_len, value) }
}

/// Sets a bool attribute.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_set_bool(
    span: spanguard_span,
    key: *const c_char,
    key_len: usize,
    value: bool,
) -> spanguard_result {
    // SAFETY: key is valid for key_len bytes (the caller's contract).
    unsafe { set_scalar(span, key, key_len, value) }
}

/// Sets a string attribute: `value_len` bytes at `value`, UTF-8 (invalid
/// bytes replaced). Any length: a value that does not fit the span's slot
/// goes to the payload pool; it is cut (on a character boundary, notice
/// `SPANGUARD_RESULT_TRUNCATED`, counted) only at `value_length_limit`
/// (in characters) or when the pool is used up. The key is always kept whole with its value,
/// or the attribute is not set at all (`SPANGUARD_RESULT_LIMIT_REACHED`).
/// A key set again, as a streamed completion is each time it grows, takes
/// the room of its longest value, not of every value it had; when the pool
/// cuts the new value shorter than the old one, the old one is kept
/// (`SPANGUARD_RESULT_TRUNCATED`, counted).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_set_string(
    span: spanguard_span,
    key: *const c_char,
    key_len: usize,
    value: *const c_char,
    value_len: usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(key);
        if value.is_null() && value_len > 0 {
            return spanguard_result::NullArgument;
        }
        // SAFETY: both are valid for their lengths; key is not NULL.
        let (key, value) = unsafe { (bytes_non_null(key, key_len), bytes(value, value_len)) };
        with_span(span, |t, s| {
            match t.set_attribute_first_try(s, key, StrInput(value)) {
                None => spanguard_result::Ok,
                // SAFETY: both are valid for their lengths.
                Some(rest) => unsafe {
                    set_string_rest(
                        span,
                        key.as_ptr(),
                        key_len,
                        value.as_ptr(),
                        value.len(),
                        rest,
                    )
                },
            }
        })
    })
}

/// `set_scalar_rest` for `spanguard_span_set_string` (six words: in
/// registers, so still a tail call).
///
/// # Safety
/// As for `set_scalar_rest`; `value` valid for `value_len` bytes (not
/// NULL: the setter made it a slice).
#[cold]
#[inline(never)]
unsafe extern "C" fn set_string_rest(
    span: spanguard_span,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    rest: SetRest,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        // SAFETY: as the function's contract says.
        let (key, value) = unsafe {
            (
                std::slice::from_raw_parts(key, key_len),
                std::slice::from_raw_parts(value, value_len),
            )
        };
        with_span(span, |t, s| {
            // SAFETY: as this function's contract says.
            notice_or_error(unsafe { t.set_attribute_rest(s, key, StrInput(value), rest) })
        })
    })
}

/// The body of the array and bytes setters: `n` elements of `T` at `data`.
///
/// # Safety
/// `key` must be valid for `key_len` bytes and `data` for `n` elements.
unsafe fn set_slice<T>(
    span: spanguard_span,
    key: *const c_char,
    key_len: usize,
    data: *const T,
    n: usize,
    value: impl FnOnce(&[T]) -> Result<AttrInput<'_>, spanguard_result>,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(key);
        if data.is_null() && n > 0 {
            return spanguard_result::NullArgument;
        }
        // SAFETY: key is valid for key_len bytes, data for n elements.
        let (key, items) = unsafe {
            (
                bytes(key, key_len),
                if n == 0 {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(data, n)
                },
            )
        };
        let value = match value(items) {
            Ok(v) => v,
            Err(e) => return e,
        };
        with_span(span, |t, s| notice_or_error(t.set_attribute(s, key, value)))
    })
}

/// Sets a bytes attribute (OTLP `bytes_value`): `len` bytes at `data`,
/// copied as they are. Cut and counted like a string value.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_set_bytes(
    span: spanguard_span,
    key: *const c_char,
    key_len: usize,
    data: *const u8,
    len: usize,
) -> spanguard_result {
    // SAFETY: the caller's contract, as documented.
    unsafe { set_slice(span, key, key_len, data, len, |b| Ok(AttrInput::Bytes(b))) }
}

/// Sets a complex attribute value (OpenTelemetry's `AnyValue`: a map
/// such as an LLM tool call's arguments, a list of messages, an array of
/// values of any kinds, bytes, the empty value, nested): `len` bytes at
/// `value`, an OTLP `AnyValue` message encoded as protobuf
/// (opentelemetry/proto/common/v1/common.proto; `len` 0 is the empty
/// value). The message is checked before anything is set: a malformed one
/// (see `SPANGUARD_RESULT_INVALID_ANY_VALUE`) sets nothing. It is kept
/// whole and exported as it is (OTLP/JSON: as `kvlistValue`,
/// `arrayValue` and so on). The attribute value length limit cuts each
/// string (characters) and bytes value inside, as OpenTelemetry asks
/// (TRUNCATED, counted); a value the span's payload pool cannot hold whole
/// is stored as the empty value (TRUNCATED, counted), never cut into a
/// broken message.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_set_anyvalue(
    span: spanguard_span,
    key: *const c_char,
    key_len: usize,
    value: *const u8,
    len: usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(key);
        if value.is_null() && len > 0 {
            return spanguard_result::NullArgument;
        }
        // SAFETY: key is valid for key_len bytes, value for len.
        let (key, message) = unsafe { (bytes(key, key_len), elements(value, len)) };
        // Copied, then the copy checked and stored: the caller's bytes are
        // read once.
        let copy = match any_value(message) {
            Ok(copy) => copy,
            Err(e) => return e,
        };
        with_span(span, |t, s| {
            notice_or_error(t.set_attribute(s, key, AttrInput::AnyValue(copy.value())))
        })
    })
}

/// Sets an array-of-strings attribute: `n` `spanguard_string`s at
/// `values` (each UTF-8, invalid bytes replaced; each cut like a string
/// value). A NULL element pointer with a non-zero length is
/// `SPANGUARD_RESULT_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_set_string_array(
    span: spanguard_span,
    key: *const c_char,
    key_len: usize,
    values: *const spanguard_string,
    n: usize,
) -> spanguard_result {
    // SAFETY: the caller's contract, as documented.
    unsafe {
        set_slice(span, key, key_len, values, n, |v| {
            string_array(v).ok_or(spanguard_result::NullArgument)
        })
    }
}

/// Sets an array-of-int64 attribute: `n` values at `values`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_set_int_array(
    span: spanguard_span,
    key: *const c_char,
    key_len: usize,
    values: *const i64,
    n: usize,
) -> spanguard_result {
    // SAFETY: the caller's contract, as documented.
    unsafe {
        set_slice(span, key, key_len, values, n, |v| {
            Ok(AttrInput::IntArray(v))
        })
    }
}

/// Sets an array-of-double attribute: `n` values at `values`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_set_double_array(
    span: spanguard_span,
    key: *const c_char,
    key_len: usize,
    values: *const f64,
    n: usize,
) -> spanguard_result {
    // SAFETY: the caller's contract, as documented.
    unsafe {
        set_slice(span, key, key_len, values, n, |v| {
            Ok(AttrInput::DoubleArray(v))
        })
    }
}

/// Sets an array-of-bool attribute: `n` C `bool`s at `values` (read as
/// bytes: 0 is false, anything else true).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_set_bool_array(
    span: spanguard_span,
    key: *const c_char,
    key_len: usize,
    values: *const bool,
    n: usize,
) -> spanguard_result {
    // SAFETY: the caller's contract; a C bool is one byte, read as a byte
    // so that any value is defined.
    unsafe {
        set_slice(span, key, key_len, values.cast::<u8>(), n, |v| {
            Ok(AttrInput::BoolArray(v))
        })
    }
}

/// Sets `n_attrs` attributes at once: the same as one set call per
/// attribute, but the span is locked once instead of once per attribute
/// (and a binding crosses into the library once). Every attribute that fits
/// is set; `SPANGUARD_RESULT_LIMIT_REACHED` if some did not (counted), or
/// when `n_attrs` is over `SPANGUARD_MAX_ATTRIBUTES` (then none is set);
/// else `SPANGUARD_RESULT_EMPTY_KEY` if one had an empty key (that one is
/// not set, and counted).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_set_attributes(
    span: spanguard_span,
    attrs: *const spanguard_attribute,
    n_attrs: usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        match checked_attributes(attrs, n_attrs) {
            Ok(attrs) => with_span(span, |t, s| {
                notice_or_error(t.set_attributes_from(s, &attrs))
            }),
            Err(rc) => rc,
        }
    })
}

/// No attributes, as a source `begin_ex` takes.
pub(super) const NO_ATTRIBUTES: &[(&[u8], AttrInput)] = &[];

/// A C attribute array that `checked_attributes` accepted, read in place
/// by the tracer (see `AttributeSource`), with a checked copy of each
/// complex value's message: the record stores the copy, never the
/// caller's bytes again. One word, None without complex values: a `Vec`
/// here (its three words, its drop, an iterator in `for_each`) cost the
/// attribute-array calls ~35 instructions a span.
struct CAttributes<'a>(&'a [spanguard_attribute], Option<Box<AnyValueCopies>>);

/// The complex values of an attribute array, copied and checked: each
/// with its attribute's index, in order.
type AnyValueCopies = Vec<(usize, AnyValueCopy)>;

/// Checks a C attribute array before anything is begun or set: with a
/// NULL pointer anywhere, an unknown value type, or more than
/// `SPANGUARD_MAX_ATTRIBUTES` of them, the call does nothing.
#[inline(always)]
fn checked_attributes<'a>(
    attrs: *const spanguard_attribute,
    n: usize,
) -> Result<CAttributes<'a>, spanguard_result> {
    checked_attributes_up_to(attrs, n, SPANGUARD_MAX_ATTRIBUTES as usize)
}

/// `checked_attributes` with at most `max` of them.
#[inline(always)]
fn checked_attributes_up_to<'a>(
    attrs: *const spanguard_attribute,
    n: usize,
    max: usize,
) -> Result<CAttributes<'a>, spanguard_result> {
    if n > 0 && attrs.is_null() {
        return Err(spanguard_result::NullArgument);
    }
    if n > max {
        return Err(spanguard_result::LimitReached);
    }
    // SAFETY: attrs holds n elements (n > 0 means it is not NULL).
    let attrs = unsafe { elements(attrs, n) };
    let mut any_values = None;
    for a in attrs {
        if a.key.is_null() {
            return Err(spanguard_result::NullArgument);
        }
        match a.type_ {
            SPANGUARD_VALUE_STRING if a.string_value.is_null() && a.string_len > 0 => {
                return Err(spanguard_result::NullArgument);
            }
            SPANGUARD_VALUE_STRING
            | SPANGUARD_VALUE_INT
            | SPANGUARD_VALUE_DOUBLE
            | SPANGUARD_VALUE_BOOL => {}
            SPANGUARD_VALUE_ANY => any_value_of(attrs, a, &mut any_values)?,
            other => {
                other_value(other, a.string_value, a.string_len)?;
            }
        }
    }
    Ok(CAttributes(attrs, any_values))
}

impl AttributeSource for CAttributes<'_> {
    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[inline(always)]
    fn for_each<'s>(&'s self, sink: &mut impl AttributeSink<'s>) {
        for a in self.0 {
            // SAFETY: checked: the key is not NULL and is valid for key_len
            // bytes; string_value points at string_len elements of the type
            // `type_` names.
            let key = unsafe { std::slice::from_raw_parts(a.key.cast::<u8>(), a.key_len) };
            let value = match a.type_ {
                SPANGUARD_VALUE_STRING => {
                    AttrInput::Str(unsafe { bytes(a.string_value, a.string_len) })
                }
                SPANGUARD_VALUE_INT => AttrInput::Int(a.int_value),
                SPANGUARD_VALUE_DOUBLE => AttrInput::Double(a.double_value),
                SPANGUARD_VALUE_BOOL => AttrInput::Bool(a.bool_value),
                // The copy checked in `checked_attributes`.
                SPANGUARD_VALUE_ANY => match copy_of(self, a) {
                    Some(v) => AttrInput::AnyValue(v.value()),
                    None => continue,
                },
                other => match other_value(other, a.string_value, a.string_len) {
                    Ok(v) => v,
                    // Checked before: only a caller that changes its array
                    // during the call (a data race on its side) gets here,
                    // and that attribute is left out.
                    Err(_) => continue,
                },
            };
            sink.attribute(key, value);
        }
    }
}

/// The index of `a`, an element of `attrs`.
fn index_in(attrs: &[spanguard_attribute], a: &spanguard_attribute) -> usize {
    let size = std::mem::size_of::<spanguard_attribute>();
    (a as *const spanguard_attribute as usize - attrs.as_ptr() as usize) / size
}

/// A complex value of an attribute array, `a`: its message copied and
/// checked, kept in `copies` with its index.
#[cold]
#[inline(never)]
fn any_value_of(
    attrs: &[spanguard_attribute],
    a: &spanguard_attribute,
    copies: &mut Option<Box<AnyValueCopies>>,
) -> Result<(), spanguard_result> {
    if a.string_value.is_null() && a.string_len > 0 {
        return Err(spanguard_result::NullArgument);
    }
    // SAFETY: string_value points at string_len bytes, as documented.
    let copy = any_value(unsafe { bytes(a.string_value, a.string_len) })?;
    copies
        .get_or_insert_with(Default::default)
        .push((index_in(attrs, a), copy));
    Ok(())
}

/// The checked copy of `a`'s complex value (`a` an element of `attrs`).
#[cold]
#[inline(never)]
fn copy_of<'s>(attrs: &'s CAttributes, a: &spanguard_attribute) -> Option<&'s AnyValueCopy> {
    let i = index_in(attrs.0, a);
    let copies = attrs.1.as_deref()?;
    let at = copies.binary_search_by_key(&i, |(j, _)| *j).ok()?;
    Some(&copies[at].1)
}

/// Borrows a C attribute array as a slice of Rust inputs, on the stack
/// (no allocation), for the calls whose record takes a slice (events and
/// links): checked and converted as `checked_attributes` and `CAttributes`
/// do for span attributes. Up to `SMALL` in a small frame, the common
/// case; up to `SPANGUARD_MAX_ATTRIBUTES` in a larger one, out of line;
/// more on the heap. An event or a link is given all its attributes in
/// one call, so none is refused for their number: the event's or link's
/// attribute count limit keeps what it allows and counts the rest dropped,
/// as an OpenTelemetry SDK does (an event of 200 attributes was refused
/// whole, and counted nowhere).
#[inline(always)]
fn with_attributes(
    attrs: *const spanguard_attribute,
    n: usize,
    f: impl FnOnce(&[(&[u8], AttrInput)]) -> spanguard_result,
) -> spanguard_result {
    const SMALL: usize = 16;
    let attrs = match checked_attributes_up_to(attrs, n, usize::MAX) {
        Ok(attrs) => attrs,
        Err(rc) => return rc,
    };
    if n <= SMALL {
        with_attributes_in::<SMALL>(&attrs, f)
    } else if n <= SPANGUARD_MAX_ATTRIBUTES as usize {
        with_many_attributes(&attrs, f)
    } else {
        with_more_attributes(&attrs, f)
    }
}

/// `with_attributes` past what its stack array holds.
#[cold]
#[inline(never)]
fn with_more_attributes(
    attrs: &CAttributes,
    f: impl FnOnce(&[(&[u8], AttrInput)]) -> spanguard_result,
) -> spanguard_result {
    struct Collected<'a>(Vec<(&'a [u8], AttrInput<'a>)>);
    impl<'a> AttributeSink<'a> for Collected<'a> {
        fn attribute(&mut self, key: &'a [u8], value: AttrInput<'a>) {
            self.0.push((key, value));
        }
    }
    let mut all = Collected(Vec::with_capacity(attrs.0.len()));
    attrs.for_each(&mut all);
    f(&all.0)
}

#[cold]
#[inline(never)]
fn with_many_attributes(
    attrs: &CAttributes,
    f: impl FnOnce(&[(&[u8], AttrInput)]) -> spanguard_result,
) -> spanguard_result {
    with_attributes_in::<{ SPANGUARD_MAX_ATTRIBUTES as usize }>(attrs, f)
}

/// `with_attributes` with room for `MAX` (>= the count) on the stack.
#[inline(always)]
fn with_attributes_in<const MAX: usize>(
    attrs: &CAttributes,
    f: impl FnOnce(&[(&[u8], AttrInput)]) -> spanguard_result,
) -> spanguard_result {
    // Uninitialised: filling every entry first cost more than setting
    // three attributes.
    let mut slots: [std::mem::MaybeUninit<(&[u8], AttrInput)>; MAX] =
        [const { std::mem::MaybeUninit::uninit() }; MAX];
    let mut filled = Filled {
        slots: &mut slots,
        n: 0,
    };
    attrs.for_each(&mut filled);
    let n = filled.n;
    // SAFETY: `Filled` initialised the first n entries, and MaybeUninit<T>
    // has T's layout.
    let items =
        unsafe { std::slice::from_raw_parts(slots.as_ptr().cast::<(&[u8], AttrInput)>(), n) };
    f(items)
}

/// The sink `with_attributes_in` fills its stack array with.
struct Filled<'s, 'a> {
    slots: &'s mut [std::mem::MaybeUninit<(&'a [u8], AttrInput<'a>)>],
    n: usize,
}

impl<'a> AttributeSink<'a> for Filled<'_, 'a> {
    #[inline(always)]
    fn attribute(&mut self, key: &'a [u8], value: AttrInput<'a>) {
        // checked_attributes bounded the count by the array's room.
        if let Some(slot) = self.slots.get_mut(self.n) {
            slot.write((key, value));
            self.n += 1;
        }
    }
}

/// Adds an event at `time_unix_ns` (0: now) with `n_attrs` attributes
/// (any number: the event attribute count limit keeps what it allows and
/// counts the rest dropped on the event, `SPANGUARD_RESULT_TRUNCATED`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_add_event(
    span: spanguard_span,
    name: *const c_char,
    name_len: usize,
    time_unix_ns: u64,
    attrs: *const spanguard_attribute,
    n_attrs: usize,
) -> spanguard_result {
    // SAFETY: the caller's contract, as documented; nothing dropped before.
    unsafe {
        spanguard_span_add_event_with_dropped(span, name, name_len, time_unix_ns, attrs, n_attrs, 0)
    }
}

/// `spanguard_span_add_event` for an event that already lost
/// `dropped_attributes` attributes before it reached spanguard (a bridge:
/// an OpenTelemetry event over its SDK's attribute-per-event limit). The
/// export's `dropped_attributes_count` on the event is that plus what
/// spanguard's own limit drops, saturating at 65535, as the SDK's own
/// exporter would send it. `SPANGUARD_RESULT_TRUNCATED` only for
/// spanguard's own drops. Errors as `spanguard_span_add_event`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_add_event_with_dropped(
    span: spanguard_span,
    name: *const c_char,
    name_len: usize,
    time_unix_ns: u64,
    attrs: *const spanguard_attribute,
    n_attrs: usize,
    dropped_attributes: u32,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        // SAFETY: name is valid for name_len bytes.
        let name = match unsafe { text_arg(name, name_len) } {
            Ok(name) => name,
            Err(e) => return e,
        };
        with_attributes(attrs, n_attrs, |items| {
            with_span(span, |t, s| {
                notice_or_error(t.add_event_with_dropped(
                    s,
                    name,
                    time_unix_ns,
                    items,
                    dropped_attributes,
                ))
            })
        })
    })
}

/// Links the span to another span given as a W3C traceparent, with
/// `n_attrs` attributes (any number, as `spanguard_span_add_event` takes
/// them, under the link attribute count limit).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_add_link(
    span: spanguard_span,
    traceparent: *const c_char,
    tp_len: usize,
    attrs: *const spanguard_attribute,
    n_attrs: usize,
) -> spanguard_result {
    // SAFETY: the caller's contract, as documented; no tracestate.
    unsafe {
        spanguard_span_add_link_with_tracestate(
            span,
            traceparent,
            tp_len,
            std::ptr::null(),
            0,
            attrs,
            n_attrs,
        )
    }
}

/// `spanguard_span_add_link` with the linked span's W3C tracestate
/// (`ts_len` bytes at `tracestate`; NULL with 0 for none), exported on
/// the link. Checked as a span's: an invalid tracestate is
/// discarded, a long one cut by whole members (`SPANGUARD_RESULT_TRUNCATED`).
/// Whether the linked span was remote is not known, and the export says
/// so; a bridge that knows calls `spanguard_span_add_link_ids`.
/// Thread-safe; no allocation, lock or system call once the thread is warm
/// (up to `SPANGUARD_MAX_ATTRIBUTES` attributes).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_add_link_with_tracestate(
    span: spanguard_span,
    traceparent: *const c_char,
    tp_len: usize,
    tracestate: *const c_char,
    ts_len: usize,
    attrs: *const spanguard_attribute,
    n_attrs: usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(traceparent);
        // SAFETY: tracestate is valid for ts_len bytes.
        let state = match unsafe { text_arg(tracestate, ts_len) } {
            Ok(text) => Tracestate::parse(text).unwrap_or_default(),
            Err(e) => return e,
        };
        // SAFETY: traceparent is valid for tp_len bytes.
        let Some(to) = traceparent::parse(unsafe { bytes(traceparent, tp_len) }) else {
            return spanguard_result::InvalidTraceparent;
        };
        let to = LinkContext {
            trace_id: to.trace_id,
            span_id: to.span_id,
            trace_flags: to.trace_flags,
            remote: None,
        };
        add_link_to(span, to, &state, attrs, n_attrs, 0)
    })
}

/// Links the span to another span given by its ids: 16 bytes at
/// `trace_id`, 8 at `span_id`, its W3C `trace_flags` (the bits W3C
/// defines are kept, the others sent as zero), its tracestate as
/// `spanguard_span_add_link_with_tracestate` takes it, and `n_attrs`
/// attributes. `link_flags` says whether the linked span context came
/// from another process: `SPANGUARD_LINK_REMOTE`, `SPANGUARD_LINK_LOCAL`,
/// or 0 for not known; the export carries it in the link's flags
/// (OTLP's HAS_IS_REMOTE and IS_REMOTE bits), as OpenTelemetry's own
/// exporters do. What an OpenTelemetry bridge passes for a link: the
/// span context's ids as bytes (nothing to format or parse) and its
/// `isRemote`.
///
/// A link whose span context is invalid (an all-zero trace id or span id)
/// is recorded as given, zero ids and all, when it has attributes
/// (`n_attrs > 0`) or a tracestate that is kept, as OpenTelemetry's SDK
/// specification asks; without either it is refused with
/// `SPANGUARD_RESULT_INVALID_TRACEPARENT` and nothing is recorded.
///
/// Errors: `SPANGUARD_RESULT_NULL_ARGUMENT` for a NULL `trace_id` or
/// `span_id`, or a NULL `tracestate` with `ts_len > 0`;
/// `SPANGUARD_RESULT_INVALID_ARGUMENT` for `link_flags` with both bits or
/// an unknown one; then as `spanguard_span_add_link`. Thread-safe; no
/// allocation, lock or system call once the thread is warm (up to
/// `SPANGUARD_MAX_ATTRIBUTES` attributes).
#[allow(clippy::too_many_arguments)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_add_link_ids(
    span: spanguard_span,
    trace_id: *const u8,
    span_id: *const u8,
    trace_flags: u8,
    tracestate: *const c_char,
    ts_len: usize,
    link_flags: u32,
    attrs: *const spanguard_attribute,
    n_attrs: usize,
) -> spanguard_result {
    // SAFETY: the caller's contract, as documented; nothing dropped before.
    unsafe {
        spanguard_span_add_link_ids_with_dropped(
            span,
            trace_id,
            span_id,
            trace_flags,
            tracestate,
            ts_len,
            link_flags,
            attrs,
            n_attrs,
            0,
        )
    }
}

/// `spanguard_span_add_link_ids` for a link that already lost
/// `dropped_attributes` attributes before it reached spanguard (a bridge:
/// an OpenTelemetry link over its SDK's attribute-per-link limit),
/// exported in the link's `dropped_attributes_count` with spanguard's own
/// drops, as `spanguard_span_add_event_with_dropped` does for an event.
/// A link with an invalid span context and no attributes or tracestate
/// is refused even with a dropped count (the SDK's exporter would not see
/// it either: its attributes are what records it). Errors as
/// `spanguard_span_add_link_ids`.
#[allow(clippy::too_many_arguments)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_add_link_ids_with_dropped(
    span: spanguard_span,
    trace_id: *const u8,
    span_id: *const u8,
    trace_flags: u8,
    tracestate: *const c_char,
    ts_len: usize,
    link_flags: u32,
    attrs: *const spanguard_attribute,
    n_attrs: usize,
    dropped_attributes: u32,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(trace_id, span_id);
        let remote = match link_flags {
            0 => None,
            SPANGUARD_LINK_REMOTE => Some(true),
            SPANGUARD_LINK_LOCAL => Some(false),
            _ => return spanguard_result::InvalidArgument,
        };
        // SAFETY: tracestate is valid for ts_len bytes.
        let state = match unsafe { text_arg(tracestate, ts_len) } {
            Ok(text) => Tracestate::parse(text).unwrap_or_default(),
            Err(e) => return e,
        };
        // SAFETY: the caller gives 16 and 8 bytes at these pointers (any
        // alignment).
        let to = unsafe {
            LinkContext {
                trace_id: std::ptr::read_unaligned(trace_id.cast::<[u8; 16]>()),
                span_id: std::ptr::read_unaligned(span_id.cast::<[u8; 8]>()),
                trace_flags: trace_flags & KNOWN_FLAGS,
                remote,
            }
        };
        let valid = to.trace_id != [0; 16] && to.span_id != [0; 8];
        if !valid && n_attrs == 0 && state.as_bytes().is_empty() {
            return spanguard_result::InvalidTraceparent;
        }
        add_link_to(span, to, &state, attrs, n_attrs, dropped_attributes)
    })
}

/// The part of the link calls after their own arguments are read: the
/// attributes, then the span.
#[inline(always)]
fn add_link_to(
    span: spanguard_span,
    to: LinkContext,
    state: &Tracestate,
    attrs: *const spanguard_attribute,
    n_attrs: usize,
    dropped_before: u32,
) -> spanguard_result {
    let cut = state.cut_members > 0;
    with_attributes(attrs, n_attrs, |items| {
        with_span(span, |t, s| {
            let added = t.add_link_with_dropped(s, to, state.as_bytes(), items, dropped_before);
            notice_or_error(added.map(|mut n| {
                n.truncated |= cut;
                n
            }))
        })
    })
}

/// Adds to the span's dropped counts (OTLP `dropped_attributes_count`,
/// `dropped_events_count`, `dropped_links_count`) what another SDK
/// dropped before the span reached spanguard (a bridge: an OpenTelemetry
/// span over its own limits), on top of what spanguard drops itself. The
/// counts saturate at 65535. Thread-safe; no allocation, lock or system
/// call once the thread is warm.
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_span_add_dropped_counts(
    span: spanguard_span,
    attributes: u32,
    events: u32,
    links: u32,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        with_span(span, |t, s| {
            match t.add_dropped(s, attributes, events, links) {
                Ok(()) => spanguard_result::Ok,
                Err(e) => e.into(),
            }
        })
    })
}

/// Drops the span's `events` oldest events and `links` oldest links
/// (all it holds when it holds fewer) and counts them in its dropped
/// counts, as an OpenTelemetry SDK evicts its oldest past its span limits:
/// for a bridge that passed events or links on while the span was open
/// and whose SDK evicted some of them since, so that the span ends with
/// the SDK's last ones. Their room in the payload pool is freed with the
/// span. Thread-safe; no allocation, lock or system call once the thread
/// is warm.
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_span_drop_oldest(
    span: spanguard_span,
    events: u32,
    links: u32,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        with_span(span, |t, s| match t.drop_oldest(s, events, links) {
            Ok(()) => spanguard_result::Ok,
            Err(e) => e.into(),
        })
    })
}

/// `spanguard_span_drop_oldest` without counting the events and links it
/// drops: for a bridge that passes its SDK's drops on as they happen
/// (`spanguard_span_add_dropped_counts`), so that a span killed open
/// carries them, and then, at the span's end, takes off the oldest ones
/// its SDK evicted, counted already. Thread-safe; no allocation, lock or
/// system call once the thread is warm.
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_span_drop_oldest_uncounted(
    span: spanguard_span,
    events: u32,
    links: u32,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        with_span(span, |t, s| {
            match t.drop_oldest_uncounted(s, events, links) {
                Ok(()) => spanguard_result::Ok,
                Err(e) => e.into(),
            }
        })
    })
}

/// Sets the status: `SPANGUARD_STATUS_OK`, or `_ERROR` with a message
/// (kept for ERROR only, whole: `value_length_limit` applies to attribute
/// values only). As the OpenTelemetry spec says, OK is final and
/// `SPANGUARD_STATUS_UNSET` is ignored (a status once set is not unset).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_set_status(
    span: spanguard_span,
    code: u32,
    message: *const c_char,
    message_len: usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        // SAFETY: message is valid for message_len bytes.
        let message = match unsafe { text_arg(message, message_len) } {
            Ok(message) => message,
            Err(e) => return e,
        };
        if code > SPANGUARD_STATUS_ERROR {
            return spanguard_result::InvalidArgument;
        }
        with_span(span, |t, s| {
            notice_or_error(t.set_status(s, code as u8, message))
        })
    })
}

/// Renames the span to `name_len` bytes at `name` (UTF-8; invalid bytes
/// replaced; cut at `SPANGUARD_MAX_NAME_BYTES` like a name at begin), as
/// OpenTelemetry's `Span.updateName` does: the span is exported with the
/// last name it was given. Thread-safe; no allocation, lock or system call
/// once the thread is warm.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_update_name(
    span: spanguard_span,
    name: *const c_char,
    name_len: usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        // SAFETY: name is valid for name_len bytes.
        match unsafe { text_arg(name, name_len) } {
            Ok(name) => with_span(span, |t, s| notice_or_error(t.update_name(s, name))),
            Err(e) => e,
        }
    })
}

/// Sets the span's start time (Unix epoch nanoseconds), for work that began
/// before the span was made.
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_span_set_start_time(
    span: spanguard_span,
    start_unix_ns: u64,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        with_span(span, |t, s| match t.set_start_time(s, start_unix_ns) {
            Ok(()) => spanguard_result::Ok,
            Err(e) => e.into(),
        })
    })
}

/// Ends the span now and hands it to the exporter. Ending twice returns
/// `SPANGUARD_RESULT_ALREADY_ENDED` (or `SPANGUARD_RESULT_STALE_SPAN` once it
/// was exported). No allocation, lock or system call.
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_span_end(span: spanguard_span) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        with_span(span, |t, s| match t.end(s, 0) {
            Ok(()) => spanguard_result::Ok,
            Err(e) => e.into(),
        })
    })
}

/// `spanguard_span_end` for a caller that must not block (Go's binding runs
/// it on its thread's own C stack, unseen by Go's scheduler): where another
/// caller is writing the span (a setter waiting for payload chunks holds it
/// up to `SPANGUARD_FULL_WAIT_MS`), it returns `SPANGUARD_RESULT_WOULD_WAIT`
/// at once, the span still open and nothing counted, and the caller ends it
/// with `spanguard_span_end`, which waits for the other caller. Otherwise
/// the same call.
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_span_try_end(span: spanguard_span) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        with_span(span, |t, s| match t.try_end(s) {
            Ok(()) => spanguard_result::Ok,
            Err(e) => e.into(),
        })
    })
}

/// For a caller that must not block while it sets short values (Python's
/// binding under gevent or eventlet, where the hub's OS thread runs every
/// greenlet of the worker: a short value waiting there for payload chunks
/// stopped them all): makes sure that the next calls on the span that
/// store at most `bytes` bytes of keys, names and values (a number array
/// element counts 8, a string array element its bytes and 8 more) in at
/// most `count` attributes, events and links will not wait for payload
/// chunks. `SPANGUARD_RESULT_OK` when the span's slot has the room, or once
/// it took the chunks they may need from the payload pool (the span's from
/// then on, used by what it stores next and given back with it at export).
/// `SPANGUARD_RESULT_WOULD_WAIT` at once where the pool is used up and
/// those calls would wait for chunks to come back
/// (`SPANGUARD_FULL_POLICY=wait`, the default), or where another caller is
/// writing the span (a setter waiting for chunks holds it up to
/// `SPANGUARD_FULL_WAIT_MS`): the caller then makes its calls where it may
/// wait. `SPANGUARD_RESULT_INVALID_ARGUMENT`, nothing taken, for a bound
/// that may need more than 64 KiB of room (six times `bytes`, and 64
/// bytes an item): the call is for short values, and long ones are set
/// where they may wait. Otherwise what a setter answers
/// (`SPANGUARD_RESULT_STALE_SPAN`, `SPANGUARD_RESULT_NON_RECORDING`...).
/// Stores and counts nothing else.
/// No allocation, lock or system call. The room is the span's, not the
/// caller's: another thread's call on the span between this one and the
/// caller's may use it up (Python's binding holds the GIL between them).
/// Thread-safe, as every call on a span is.
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_span_try_make_room(
    span: spanguard_span,
    bytes: usize,
    count: usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        with_span(span, |t, s| match t.try_make_room(s, bytes, count) {
            Ok(()) => spanguard_result::Ok,
            Err(e) => e.into(),
        })
    })
}

/// `spanguard_span_end_at` for a caller that must not block, as
/// `spanguard_span_try_end` is to `spanguard_span_end`: where another
/// caller is writing the span, `SPANGUARD_RESULT_WOULD_WAIT` at once, the
/// span still open and nothing counted; the caller then ends it with
/// `spanguard_span_end_at`. (Python's binding under gevent or eventlet,
/// whose hub's thread runs every greenlet: an end waiting there for a
/// setter that waits for payload chunks stopped them all.)
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_span_try_end_at(
    span: spanguard_span,
    end_unix_ns: u64,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        with_span(span, |t, s| match t.try_end_at(s, end_unix_ns.max(1)) {
            Ok(()) => spanguard_result::Ok,
            Err(e) => e.into(),
        })
    })
}

/// Ends the span at `end_unix_ns` (not before its start).
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_span_end_at(
    span: spanguard_span,
    end_unix_ns: u64,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        with_span(span, |t, s| match t.end(s, end_unix_ns.max(1)) {
            Ok(()) => spanguard_result::Ok,
            Err(e) => e.into(),
        })
    })
}

/// Benchmarks only, and no C symbol (a Rust function, not `extern "C"`, so
/// neither the library's exports nor include/spanguard.h carry it):
/// `spanguard_span_end` from the C handle, except that the slot is freed
/// in place (`Tracer::end_in_place_for_bench`) instead of handed to the
/// exporter. With `spanguard_span_begin` and the `spanguard_span_set_*`
/// calls it is the floor of the C ABI's begin+3 attrs+end row measured
/// through that row's own calls (the Rust API's floor inlines its
/// setters, so it is the floor of another API). Never inlined, as
/// `spanguard_span_end` is a call from the caller's code.
#[doc(hidden)]
#[inline(never)]
pub fn span_end_in_place_for_bench(span: spanguard_span) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        with_span(span, |t, s| match t.end_in_place_for_bench(s) {
            Ok(()) => spanguard_result::Ok,
            Err(e) => e.into(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::tracer::{spanguard_flush, spanguard_tracer_free, spanguard_tracer_new};
    use crate::span::any_value::tests::{map, string, with_after_copy};

    /// The text of every file the tracer wrote to `dir`.
    fn sink_text(dir: &std::path::Path) -> String {
        let mut text = String::new();
        for e in std::fs::read_dir(dir).expect("sink dir").flatten() {
            text.push_str(&String::from_utf8_lossy(
                &std::fs::read(e.path()).unwrap_or_default(),
            ));
        }
        text
    }

    /// A complex value is stored as it was when checked, though the
    /// caller's buffer changes right after the check (here: a hook run
    /// between the copy and the check, standing in for another thread).
    /// The bytes were checked in the caller's buffer and copied from it
    /// afterwards: the malformed bytes written meanwhile were stored, and
    /// broke the export of the span. With `spanguard_span_set_anyvalue`
    /// and with `SPANGUARD_VALUE_ANY` in an attribute array. What this
    /// proves: the bytes stored are the ones read before the hook, and the
    /// caller's buffer is not read again after it; not that no real race
    /// can happen anywhere else.
    #[test]
    fn a_complex_value_is_stored_as_checked_though_its_buffer_changes_after() {
        let dir = std::env::temp_dir().join(format!("spanguard-anycopy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let sink = std::ffi::CString::new(dir.to_str().expect("utf-8")).expect("no NUL");
        let mut c = crate::ffi::tracer::config_for_test();
        c.sink_dir = sink.as_ptr();
        c.install_signal_handlers = SPANGUARD_SIGNAL_HANDLERS_NONE;
        let mut t = std::ptr::null_mut();
        // SAFETY: a config filled by init; t is an out pointer.
        assert_eq!(
            unsafe { spanguard_tracer_new(&c, &mut t) },
            spanguard_result::Ok
        );
        let good = map(&[("city", string("Paris"))]);
        // The caller's buffer, written by the hook through its own pointer.
        let buffer: *mut u8 = Box::into_raw(good.clone().into_boxed_slice()).cast();
        let len = good.len();
        let scribble = move || {
            // SAFETY: the buffer is len bytes, alive until freed below.
            unsafe { std::ptr::write_bytes(buffer, 0xff, len) }
        };
        let restore = |b: *mut u8| {
            // SAFETY: as above.
            unsafe { std::ptr::copy_nonoverlapping(good.as_ptr(), b, len) }
        };
        let mut s = SPANGUARD_SPAN_NONE;
        // SAFETY: t is a live tracer; the name is valid; s an out pointer.
        let rc =
            unsafe { spanguard_span_begin(t, c"copy".as_ptr(), 4, SPANGUARD_SPAN_NONE, 0, &mut s) };
        assert_eq!(rc, spanguard_result::Ok);
        let rc = with_after_copy(Box::new(scribble), || {
            // SAFETY: the key and the buffer are valid for their lengths.
            unsafe { spanguard_span_set_anyvalue(s, c"one".as_ptr(), 3, buffer, len) }
        });
        assert_eq!(rc, spanguard_result::Ok);
        restore(buffer);
        let mut a: spanguard_attribute = unsafe { std::mem::zeroed() };
        a.key = c"in.array".as_ptr();
        a.key_len = 8;
        a.type_ = SPANGUARD_VALUE_ANY;
        a.string_value = buffer.cast();
        a.string_len = len;
        let rc = with_after_copy(Box::new(scribble), || {
            // SAFETY: one attribute, valid as set above.
            unsafe { spanguard_span_set_attributes(s, &a, 1) }
        });
        assert_eq!(rc, spanguard_result::Ok);
        assert_eq!(spanguard_span_end(s), spanguard_result::Ok);
        assert_eq!(spanguard_flush(t, 10_000), spanguard_result::Ok);
        // SAFETY: made by tracer_new, freed once.
        unsafe { spanguard_tracer_free(t) };
        // SAFETY: made by Box::into_raw above, of len bytes.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(buffer, len)) });
        let text = sink_text(&dir);
        let value = "\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"city\",\"value\":{\"stringValue\":\"Paris\"}}]}}";
        for key in ["one", "in.array"] {
            let want = format!("{{\"key\":\"{key}\",{value}}}");
            assert_eq!(text.matches(&want).count(), 1, "{key}: {text}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The C ABI floor's end (`span_end_in_place_for_bench`) frees the
    /// span's slot from its C handle: the old handle is stale at once (not
    /// ended and waiting), twice as many spans as the tracer has slots are
    /// begun and ended so, and nothing is counted
    /// as ended or reaches the exporter: a floor loop of begin, three
    /// setters and this end reuses its slots and exports nothing. Checked
    /// to fail with `t.end` in its place (ALREADY_ENDED, not STALE_SPAN).
    #[test]
    fn the_c_floors_end_frees_the_slot_in_place_and_exports_nothing() {
        let mut c = crate::ffi::tracer::config_for_test();
        c.endpoint = c"discard:".as_ptr();
        c.install_signal_handlers = SPANGUARD_SIGNAL_HANDLERS_NONE;
        c.max_open_spans = 64;
        let mut t = std::ptr::null_mut();
        // SAFETY: a config filled by init; t is an out pointer.
        assert_eq!(
            unsafe { spanguard_tracer_new(&c, &mut t) },
            spanguard_result::Ok
        );
        let begin = || {
            let mut s = SPANGUARD_SPAN_NONE;
            // SAFETY: t is a live tracer; the name is valid; s an out pointer.
            let rc = unsafe {
                spanguard_span_begin(t, c"floor".as_ptr(), 5, SPANGUARD_SPAN_NONE, 1, &mut s)
            };
            assert_eq!(rc, spanguard_result::Ok);
            s
        };
        let first = begin();
        // SAFETY: the keys and value are valid for their lengths.
        unsafe {
            assert_eq!(
                spanguard_span_set_int(first, c"n".as_ptr(), 1, 7),
                spanguard_result::Ok
            );
            assert_eq!(
                spanguard_span_set_string(first, c"m".as_ptr(), 1, c"gpt-4o".as_ptr(), 6),
                spanguard_result::Ok
            );
            assert_eq!(
                spanguard_span_set_bool(first, c"b".as_ptr(), 1, true),
                spanguard_result::Ok
            );
        }
        assert_eq!(span_end_in_place_for_bench(first), spanguard_result::Ok);
        assert_eq!(
            span_end_in_place_for_bench(first),
            spanguard_result::StaleSpan
        );
        // More spans than the tracer has slots (queue and open spans).
        for _ in 0..2 * (c.max_queue_size + c.max_open_spans) {
            assert_eq!(span_end_in_place_for_bench(begin()), spanguard_result::Ok);
        }
        assert_eq!(
            span_end_in_place_for_bench(SPANGUARD_SPAN_NONE),
            spanguard_result::NonRecording
        );
        assert_eq!(spanguard_flush(t, 10_000), spanguard_result::Ok);
        // SAFETY: spanguard_counters is plain data; all-zero is valid.
        let mut st: spanguard_counters = unsafe { std::mem::zeroed() };
        st.struct_size = std::mem::size_of::<spanguard_counters>() as u32;
        // SAFETY: t is live; st is a struct of the size it says.
        assert_eq!(
            unsafe { crate::ffi::tracer::spanguard_stats(t, &mut st) },
            spanguard_result::Ok
        );
        assert_eq!((st.spans_ended, st.spans_exported), (0, 0));
        // SAFETY: made by tracer_new, freed once.
        unsafe { spanguard_tracer_free(t) };
    }

    /// A setter whose common case left the rest with the span held (a key
    /// set again, a key too long for the common case) lets go of it in
    /// the rest: another thread's setter and end on the span, which take
    /// its bias from this thread, get through. The hold is handed to the
    /// rest in one word (`SetRest`); checked to fail (the other thread
    /// never done) with a biased hold handed as a locked one, whose rest
    /// left the owner's word naming the slot.
    #[test]
    fn a_setters_rest_lets_go_of_the_span_for_another_thread() {
        let mut c = crate::ffi::tracer::config_for_test();
        c.endpoint = c"discard:".as_ptr();
        c.install_signal_handlers = SPANGUARD_SIGNAL_HANDLERS_NONE;
        let mut t = std::ptr::null_mut();
        // SAFETY: a config filled by init; t is an out pointer.
        assert_eq!(
            unsafe { spanguard_tracer_new(&c, &mut t) },
            spanguard_result::Ok
        );
        let long_key = [b'k'; 40];
        for round in 0..3 {
            let mut s = SPANGUARD_SPAN_NONE;
            // SAFETY: t is a live tracer; the name is valid; s an out
            // pointer; the keys and values are valid for their lengths.
            unsafe {
                assert_eq!(
                    spanguard_span_begin(t, c"op".as_ptr(), 2, SPANGUARD_SPAN_NONE, 1, &mut s),
                    spanguard_result::Ok
                );
                let rc = match round {
                    0 => {
                        spanguard_span_set_int(s, c"n".as_ptr(), 1, 1);
                        spanguard_span_set_int(s, c"n".as_ptr(), 1, 2)
                    }
                    1 => {
                        spanguard_span_set_string(s, c"m".as_ptr(), 1, c"a".as_ptr(), 1);
                        spanguard_span_set_string(s, c"m".as_ptr(), 1, c"b".as_ptr(), 1)
                    }
                    _ => spanguard_span_set_bool(s, long_key.as_ptr().cast(), 40, true),
                };
                assert_eq!(rc, spanguard_result::Ok, "round {round}");
            }
            let (done, wait) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                // SAFETY: the key is valid for its length.
                let set = unsafe { spanguard_span_set_int(s, c"x".as_ptr(), 1, 3) };
                let _ = done.send((set, spanguard_span_end(s)));
            });
            let got = wait.recv_timeout(std::time::Duration::from_secs(10));
            assert_eq!(
                got,
                Ok((spanguard_result::Ok, spanguard_result::Ok)),
                "round {round}: the other thread's setter and end"
            );
        }
        // SAFETY: made by tracer_new, freed once.
        unsafe { spanguard_tracer_free(t) };
    }
}
