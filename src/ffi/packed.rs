//! Attributes packed into one flat buffer: for bindings that cannot pass an
//! array of `spanguard_attribute` (cgo forbids Go memory that holds Go
//! pointers, such as a key's bytes, from crossing into C), so that setting
//! several attributes stays one crossing instead of one per attribute.

use super::args::text_arg;
use super::boundary::{ffi_boundary, require_non_null};
use super::result::spanguard_result;
use super::span::{NO_ATTRIBUTES, begin_local, begin_opts_keeping_ids, notice_or_error, with_span};
use super::tracer::spanguard_tracer;
use super::types::*;
use crate::span::traceparent::RemoteParent;
use crate::tracer::{AttrInput, AttributeSource, BeginOptions, Parent, SpanRef};
use std::ffi::c_char;

/// Reads a little-endian integer of `N` bytes at `*at`, advancing it.
#[inline]
fn take<const N: usize>(buf: &[u8], at: &mut usize) -> Option<[u8; N]> {
    let bytes = buf.get(*at..at.checked_add(N)?)?;
    *at += N;
    bytes.try_into().ok()
}

#[inline]
fn take_text<'a>(buf: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let len = u32::from_le_bytes(take::<4>(buf, at)?) as usize;
    let text = buf.get(*at..at.checked_add(len)?)?;
    *at += len;
    Some(text)
}

/// The attributes of a packed buffer, on the stack, or the result that
/// rejects the buffer.
fn with_packed(
    buf: &[u8],
    f: impl FnOnce(&[(&[u8], AttrInput)]) -> spanguard_result,
) -> spanguard_result {
    const MAX: usize = SPANGUARD_MAX_ATTRIBUTES as usize;
    let mut items: [std::mem::MaybeUninit<(&[u8], AttrInput)>; MAX] =
        [const { std::mem::MaybeUninit::uninit() }; MAX];
    let mut n = 0;
    let mut at = 0;
    while at < buf.len() {
        if n == MAX {
            return spanguard_result::LimitReached;
        }
        let Some(parsed) = (|| {
            let [kind] = take::<1>(buf, &mut at)?;
            let key = take_text(buf, &mut at)?;
            let value = match kind as u32 {
                SPANGUARD_VALUE_STRING => AttrInput::Str(take_text(buf, &mut at)?),
                SPANGUARD_VALUE_INT => AttrInput::Int(i64::from_le_bytes(take(buf, &mut at)?)),
                SPANGUARD_VALUE_DOUBLE => {
                    AttrInput::Double(f64::from_le_bytes(take(buf, &mut at)?))
                }
                SPANGUARD_VALUE_BOOL => AttrInput::Bool(take::<1>(buf, &mut at)?[0] != 0),
                _ => return None,
            };
            Some((key, value))
        })() else {
            return spanguard_result::InvalidArgument;
        };
        items[n].write(parsed);
        n += 1;
    }
    // SAFETY: the loop initialised the first n entries, and MaybeUninit<T>
    // has T's layout.
    let items =
        unsafe { std::slice::from_raw_parts(items.as_ptr().cast::<(&[u8], AttrInput)>(), n) };
    f(items)
}

/// `spanguard_span_set_attributes` with the attributes packed into `len`
/// bytes at `buf`, one after another, each as: its type
/// (`SPANGUARD_VALUE_*`, one byte), the key's length (uint32
/// little-endian) and bytes, then the value: an int64 or a double as 8
/// bytes little-endian, a bool as one byte (0 or 1), a string as its
/// length (uint32 little-endian) and bytes. A buffer that does not parse
/// to its end (an unknown type, a length past the end) is
/// `SPANGUARD_RESULT_INVALID_ARGUMENT` and sets nothing; more than
/// `SPANGUARD_MAX_ATTRIBUTES` attributes is `SPANGUARD_RESULT_LIMIT_REACHED`
/// and sets nothing. Thread-safe; no allocation, lock or system call once
/// the thread is warm.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_set_attributes_packed(
    span: spanguard_span,
    buf: *const u8,
    len: usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        // SAFETY: buf is valid for len bytes, or NULL with len 0, as the
        // contract says (a NULL with a length is refused).
        match unsafe { text_arg(buf.cast(), len) } {
            Ok(buf) => with_packed(buf, |items| {
                with_span(span, |t, s| notice_or_error(t.set_attributes(s, items)))
            }),
            Err(rc) => rc,
        }
    })
}

/// `spanguard_span_set_attributes_packed` for a caller that must not block
/// (Go's binding runs it on its thread's own C stack, unseen by Go's
/// scheduler): where the attributes' text may need chunks of the payload
/// pool, which under `SPANGUARD_FULL_POLICY=wait` (the default) the
/// setter may wait for (an LLM-sized prompt on a used-up pool), it returns
/// `SPANGUARD_RESULT_WOULD_WAIT` at once, having set and counted nothing,
/// and the caller sets them again with `spanguard_span_set_attributes_packed`
/// where it may wait. Decided before anything is written, from the buffer's
/// length and the room left in the span's slot: keys and string values of
/// about a third of that room or less (a few hundred bytes in all for a
/// span that holds little yet) are set here; longer ones always answer
/// WOULD_WAIT, whatever the pool holds. It also answers WOULD_WAIT, having
/// set nothing, where another caller is writing the span (a setter waiting
/// for payload chunks holds it up to `SPANGUARD_FULL_WAIT_MS`), where
/// `spanguard_span_set_attributes_packed` would wait for it. Otherwise the
/// same call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_try_set_attributes_packed(
    span: spanguard_span,
    buf: *const u8,
    len: usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        // SAFETY: as in spanguard_span_set_attributes_packed.
        match unsafe { text_arg(buf.cast(), len) } {
            Ok(buf) => with_packed(buf, |items| {
                with_span(span, |t, s| {
                    notice_or_error(t.try_set_attributes(s, items, buf.len()))
                })
            }),
            Err(rc) => rc,
        }
    })
}

/// `spanguard_span_begin_with_attributes` with the attributes packed into
/// `len` bytes at `buf`, laid out as `spanguard_span_set_attributes_packed`
/// says: one crossing for a span begun with attributes, for bindings that
/// cannot pass an attribute array (Go's `Start` with `WithAttributes`,
/// where begin then set took two cgo calls). The buffer is parsed first: a
/// buffer that does not parse, or more than `SPANGUARD_MAX_ATTRIBUTES`
/// attributes, begins no span and leaves `*out` unwritten.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_begin_packed(
    tracer: *const spanguard_tracer,
    name: *const c_char,
    name_len: usize,
    parent: spanguard_span,
    kind: u32,
    buf: *const u8,
    len: usize,
    out: *mut spanguard_span,
) -> spanguard_result {
    // SAFETY: the caller's promises, passed on.
    unsafe { begin_packed(tracer, name, name_len, parent, kind, buf, len, true, out) }
}

/// `spanguard_span_begin_packed` for a caller that must not block: where
/// every slot is taken and the tracer's full policy is to wait for one
/// (`SPANGUARD_FULL_POLICY=wait`, the default), it returns
/// `SPANGUARD_RESULT_WOULD_WAIT` at once, begins nothing and counts
/// nothing, and the caller begins the span again with
/// `spanguard_span_begin_packed` where it may wait; where that begin would
/// not wait either (a wait was in vain and the exporter has taken no span
/// since), the span is dropped and counted at once, as there
/// (`SPANGUARD_RESULT_BUFFER_FULL`). Otherwise the same call.
/// A runtime that runs this without telling its scheduler (Go's binding
/// does) needs that promise: no call here waits.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_try_begin_packed(
    tracer: *const spanguard_tracer,
    name: *const c_char,
    name_len: usize,
    parent: spanguard_span,
    kind: u32,
    buf: *const u8,
    len: usize,
    out: *mut spanguard_span,
) -> spanguard_result {
    // SAFETY: the caller's promises, passed on.
    unsafe { begin_packed(tracer, name, name_len, parent, kind, buf, len, false, out) }
}

/// `spanguard_span_begin_packed` (`may_wait` true) or
/// `spanguard_span_try_begin_packed` (false) for a binding whose span
/// values are copied, so that an ended span stays a parent (OpenTelemetry's
/// API: "it MUST still be possible to use an ended span as parent"). The
/// parent is given twice: by its handle, and by the context it kept from
/// its own begin (`parent_context`, or NULL / all zero for none). While
/// the handle is live the span is its child as with `parent` alone (its
/// tracestate inherited); once the parent has been exported (its handle
/// stale), or when the handle is another tracer's, the span is a child
/// of the kept context: the same trace, a local parent, no tracestate.
/// The new span's context is written to `*out_context` (when not NULL)
/// for its own children: all zero when the call began nothing or the
/// span has no context (a disabled tracer's root). Go's `Start` keeps it
/// in each `Span` value, with no allocation: an ended span's copies then
/// parent spans, where the handle alone would begin a new trace
/// (`SPANGUARD_RESULT_PARENT_STALE`). No allocation, lock or system call
/// once the thread is warm.
#[allow(clippy::too_many_arguments)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_span_begin_packed_keeping_ids(
    tracer: *const spanguard_tracer,
    name: *const c_char,
    name_len: usize,
    parent: spanguard_span,
    parent_context: *const spanguard_span_context,
    kind: u32,
    buf: *const u8,
    len: usize,
    may_wait: bool,
    out: *mut spanguard_span,
    out_context: *mut spanguard_span_context,
) -> spanguard_result {
    // Without attributes (Go's plain Start) behind a boundary of its own,
    // as in `begin_packed`: one guard around both begins cost the plain one
    // about 130 instructions (callgrind).
    if len == 0 {
        return ffi_boundary!(spanguard_result::Panic, {
            // SAFETY: the caller's promises, passed on.
            unsafe {
                begin_kept(
                    tracer,
                    name,
                    name_len,
                    parent,
                    parent_context,
                    kind,
                    NO_ATTRIBUTES,
                    may_wait,
                    out,
                    out_context,
                )
            }
        });
    }
    ffi_boundary!(spanguard_result::Panic, {
        clear_context(out_context);
        // SAFETY: buf is valid for len bytes, as the contract says.
        match unsafe { text_arg(buf.cast(), len) } {
            Ok(buf) => with_packed(buf, |items| {
                // SAFETY: the caller's promises, passed on.
                unsafe {
                    begin_kept(
                        tracer,
                        name,
                        name_len,
                        parent,
                        parent_context,
                        kind,
                        items,
                        may_wait,
                        out,
                        out_context,
                    )
                }
            }),
            Err(rc) => rc,
        }
    })
}

/// Zeroes `*c` (no context) when `c` is not NULL.
#[inline(always)]
fn clear_context(c: *mut spanguard_span_context) {
    if !c.is_null() {
        // SAFETY: a non-null c points at a writable context (the contract).
        unsafe { c.write(spanguard_span_context::default()) };
    }
}

/// The checks and body of `spanguard_span_begin_packed_keeping_ids`.
///
/// # Safety
/// Its arguments as that function's contract says.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn begin_kept<A: AttributeSource + ?Sized>(
    tracer: *const spanguard_tracer,
    name: *const c_char,
    name_len: usize,
    parent: spanguard_span,
    parent_context: *const spanguard_span_context,
    kind: u32,
    attributes: &A,
    may_wait: bool,
    out: *mut spanguard_span,
    out_context: *mut spanguard_span_context,
) -> spanguard_result {
    clear_context(out_context);
    require_non_null!(tracer, out);
    // SAFETY: name is valid for name_len bytes when it is not NULL.
    let name = match unsafe { text_arg(name, name_len) } {
        Ok(name) => name,
        Err(rc) => return rc,
    };
    if kind > SPANGUARD_KIND_CONSUMER {
        return spanguard_result::InvalidArgument;
    }
    // SAFETY: a non-null parent_context points at a readable context.
    let kept = unsafe { parent_context.as_ref() }
        .filter(|c| c.trace_id != [0; 16])
        .map(|c| RemoteParent {
            trace_id: c.trace_id,
            span_id: c.span_id,
            trace_flags: c.trace_flags,
        });
    // SAFETY: tracer is non-null; it came from tracer_new.
    let parent = match unsafe { kept_parent(tracer, parent, kept) } {
        Ok(p) => p,
        Err(rc) => return rc,
    };
    let opts = BeginOptions {
        may_wait,
        ..BeginOptions::new(name, kind as u8, parent)
    };
    begin_opts_keeping_ids(tracer, &opts.with_attributes(attributes), out, out_context)
}

/// No span of this tracer: a slot past every slab (u32::MAX).
const NO_SPAN: SpanRef = SpanRef {
    slot: u32::MAX,
    generation: 0,
};

/// The parent of `spanguard_span_begin_packed_keeping_ids`: the handle
/// when it is this tracer's, with the kept context beside it.
///
/// # Safety
/// `tracer` is non-null and came from `spanguard_tracer_new`.
#[inline(always)]
unsafe fn kept_parent(
    tracer: *const spanguard_tracer,
    parent: spanguard_span,
    kept: Option<RemoteParent>,
) -> Result<Parent, spanguard_result> {
    let ours = if parent == SPANGUARD_SPAN_NONE {
        None
    } else {
        let (id, s) = super::span::unpack(parent);
        // SAFETY: the caller's contract.
        (id == unsafe { (*tracer).id }).then_some(s)
    };
    Ok(match (ours, kept) {
        (s, Some(k)) => Parent::Kept(s.unwrap_or(NO_SPAN), k),
        (Some(s), None) => Parent::Local(s),
        (None, None) if parent == SPANGUARD_SPAN_NONE => Parent::None,
        // Another tracer's span and nothing kept: as spanguard_span_begin.
        (None, None) => return Err(spanguard_result::StaleSpan),
    })
}

/// Both packed begins; `may_wait` as in `BeginOptions`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn begin_packed(
    tracer: *const spanguard_tracer,
    name: *const c_char,
    name_len: usize,
    parent: spanguard_span,
    kind: u32,
    buf: *const u8,
    len: usize,
    may_wait: bool,
    out: *mut spanguard_span,
) -> spanguard_result {
    if len == 0 {
        // No attributes (Go's plain Start): spanguard_span_begin's path,
        // behind a boundary of its own. Through the parser's, the begin
        // cost 80 instructions more than spanguard_span_begin's (callgrind,
        // Go's bench): that closure, 5 KiB of frame and two begins, was
        // too large for the unwinding guard to be inlined around it.
        // Written out as in spanguard_span_begin: one helper for both
        // cost that begin 37 instructions (`make bench-compare
        // COMPARE_ARGS=--instructions`, plain: 602 -> 639).
        return ffi_boundary!(spanguard_result::Panic, {
            begin_local(
                tracer,
                name,
                name_len,
                parent,
                kind,
                NO_ATTRIBUTES,
                may_wait,
                out,
            )
        });
    }
    ffi_boundary!(spanguard_result::Panic, {
        // SAFETY: buf is valid for len bytes, as the contract says (a NULL
        // with a length is refused).
        match unsafe { text_arg(buf.cast(), len) } {
            Ok(buf) => with_packed(buf, |items| {
                begin_local(tracer, name, name_len, parent, kind, items, may_wait, out)
            }),
            Err(rc) => rc,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(buf: &mut Vec<u8>, kind: u32, key: &str, value: &[u8]) {
        buf.push(kind as u8);
        buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
        buf.extend_from_slice(key.as_bytes());
        buf.extend_from_slice(value);
    }

    fn text(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u32).to_le_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn parsed(buf: &[u8]) -> Result<Vec<(Vec<u8>, String)>, spanguard_result> {
        let mut out = Err(spanguard_result::Ok);
        let rc = with_packed(buf, |items| {
            out = Ok(items
                .iter()
                .map(|(k, v)| (k.to_vec(), format!("{v:?}")))
                .collect());
            spanguard_result::Ok
        });
        if rc != spanguard_result::Ok {
            return Err(rc);
        }
        out
    }

    #[test]
    fn every_type_round_trips() {
        let mut buf = Vec::new();
        attr(&mut buf, SPANGUARD_VALUE_INT, "n", &(-812i64).to_le_bytes());
        attr(&mut buf, SPANGUARD_VALUE_STRING, "model", &text("gpt-4o"));
        attr(&mut buf, SPANGUARD_VALUE_BOOL, "stream", &[1]);
        attr(
            &mut buf,
            SPANGUARD_VALUE_DOUBLE,
            "t",
            &0.25f64.to_le_bytes(),
        );
        attr(&mut buf, SPANGUARD_VALUE_STRING, "", &text(""));
        let got = parsed(&buf).expect("parses");
        let keys: Vec<_> = got.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, [&b"n"[..], b"model", b"stream", b"t", b""]);
        assert!(got[0].1.contains("-812"));
        assert!(got[1].1.contains("103, 112, 116")); // "gpt"
        assert!(got[2].1.contains("true"));
        assert!(got[3].1.contains("0.25"));
        assert_eq!(parsed(&[]).expect("empty parses"), vec![]);
    }

    #[test]
    fn a_cut_or_unknown_buffer_sets_nothing() {
        let mut buf = Vec::new();
        attr(&mut buf, SPANGUARD_VALUE_INT, "n", &7i64.to_le_bytes());
        for cut in 1..buf.len() {
            assert_eq!(parsed(&buf[..cut]), Err(spanguard_result::InvalidArgument));
        }
        let mut long = Vec::new();
        attr(
            &mut long,
            SPANGUARD_VALUE_STRING,
            "k",
            &u32::MAX.to_le_bytes(),
        );
        assert_eq!(parsed(&long), Err(spanguard_result::InvalidArgument));
        let mut unknown = Vec::new();
        attr(&mut unknown, 9, "k", &[0; 8]);
        assert_eq!(parsed(&unknown), Err(spanguard_result::InvalidArgument));
    }

    #[test]
    fn more_than_the_limit_sets_nothing() {
        let mut buf = Vec::new();
        for _ in 0..=SPANGUARD_MAX_ATTRIBUTES {
            attr(&mut buf, SPANGUARD_VALUE_BOOL, "b", &[0]);
        }
        assert_eq!(parsed(&buf), Err(spanguard_result::LimitReached));
    }
}
