//! The OpenTelemetry bridge's hooks for the common span, one native call
//! each (`spanguard.otel.SpanguardSpanProcessor`'s `on_start` and
//! `on_end`): the SDK's own span classes read here, field by field, where
//! the bridge's Python took some 57,000 instructions a span to read them
//! and call in (bench/python/bridge_split.py).
//!
//! Each hook does the whole of the Python path's work for a span it
//! recognises, and nothing at all for any other: it answers "not mine"
//! before it changes anything, and the Python path (otel.py, unchanged)
//! does it. Recognised: a span of one of the SDK's classes, whose context
//! is the API's `SpanContext`, on a provider whose resource and tracer's
//! scope the bridge has passed on already (its first span of each goes
//! the Python way), and, at the start, with no links, no events and
//! nothing dropped; at the end, one whose every attribute, event and link
//! the bridge passed on as it was set (nothing the SDK evicted, nothing
//! to count). What it does with one is otel.py's `_begin`, `_follow` and
//! `_complete` for that case, with the same calls into the span
//! (`Tracer::start_with_ids`, `Span::status`, `Span::end_at`), so a
//! green library's hub is spared a wait here as it is there (`green`).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::report::Problem;
use crate::span::Span;
use crate::tracer::Tracer;

/// What `SdkSpanHooks::end` did: nothing (the Python path's), or the span
/// ended (or left out, unsampled), or ended after the tracer shut down
/// (the processor counts it in `failures`).
const NOT_MINE: u8 = 0;
const DONE: u8 = 1;
const END_REFUSED: u8 = 2;

/// The W3C trace flags' sampled bit.
const SAMPLED: u32 = 1;

/// What the hooks read and update of one `SpanguardSpanProcessor`: its
/// tracer and maps, and the SDK's classes and constants they compare
/// spans' fields with. Made once a processor; thread-safe as the
/// processor is (every call holds the GIL).
#[pyclass(module = "spanguard._native", frozen)]
pub struct SdkSpanHooks {
    tracer: Py<Tracer>,
    /// The processor's `_open` ((trace id, span id) -> `_Open`).
    open: Py<PyDict>,
    /// The processor's `_following` (span class -> its following subclass).
    following: Py<PyDict>,
    /// otel.py's `_Open` and `_Watch`, and the processor's `_on_collected`.
    open_class: Py<PyAny>,
    watch_class: Py<PyAny>,
    on_collected: Py<PyAny>,
    /// The API's `SpanContext`: a tuple whose fields are read by index.
    span_context: Py<PyType>,
    /// The SDK's span classes (otel.py's `_SDK_SPANS`).
    sdk_spans: Vec<Py<PyType>>,
    /// Each `SpanKind` member with its OTLP number (the API's value + 1).
    kinds: Vec<(Py<PyAny>, u32)>,
    /// `StatusCode.UNSET`, `.OK`, `.ERROR` (spanguard's 0, 1, 2).
    status_codes: [Py<PyAny>; 3],
}

/// The SDK span's fields `start` reads before it changes anything.
struct Started<'py> {
    trace_id: Bound<'py, PyAny>,
    span_id: Bound<'py, PyAny>,
    ids: ([u8; 16], [u8; 8]),
    flags: u32,
    tracestate: Option<Bound<'py, PyAny>>,
    parent: Option<([u8; 8], bool)>,
    name: Bound<'py, PyAny>,
    kind: u32,
    start_time: Bound<'py, PyAny>,
    kept: Bound<'py, PyAny>,
    kept_dict: Bound<'py, PyDict>,
    attribute_limit: Bound<'py, PyAny>,
    /// The span's following subclass (None: it is not followed).
    follow_as: Option<Bound<'py, PyAny>>,
}

/// A context's trace id and span id as bytes (an int each).
fn ids_of(trace_id: &Bound<'_, PyAny>, span_id: &Bound<'_, PyAny>) -> Option<([u8; 16], [u8; 8])> {
    let t: u128 = trace_id.extract().ok()?;
    let s: u64 = span_id.extract().ok()?;
    Some((t.to_be_bytes(), s.to_be_bytes()))
}

/// How many events or links an SDK span has had, those its limit dropped
/// counted, as otel.py's `_had` counts them (a BoundedList's deque, or a
/// sequence), or None when it has none to count.
fn had(span: &Bound<'_, PyAny>, field: &Bound<'_, pyo3::types::PyString>) -> Option<usize> {
    let py = span.py();
    let own = span.getattr(field).ok()?;
    if own.is_none() {
        return None;
    }
    let len = match own.getattr(intern!(py, "_dq")) {
        Ok(dq) => dq.len().ok()?,
        Err(_) => own.len().ok()?,
    };
    let dropped: usize = match own.getattr(intern!(py, "dropped")) {
        Ok(d) => d.extract().ok()?,
        Err(_) => 0,
    };
    Some(len + dropped)
}

/// Whether two dicts hold the same keys in the same order with the same
/// values, each the same object.
fn mirrors(a: &Bound<'_, PyDict>, b: &Bound<'_, PyDict>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, va), (kb, vb))| ka.is(&kb) && va.is(&vb))
}

impl SdkSpanHooks {
    fn is_sdk_span(&self, span: &Bound<'_, PyAny>) -> bool {
        let ty = span.get_type();
        self.sdk_spans.iter().any(|t| ty.is(t))
    }

    /// The span's context as a tuple, when it is the API's `SpanContext`.
    fn context_of<'py>(&self, span: &Bound<'py, PyAny>) -> Option<Bound<'py, PyTuple>> {
        let ctx = span.getattr(intern!(span.py(), "_context")).ok()?;
        if !ctx.get_type().is(&self.span_context) {
            return None;
        }
        ctx.cast_into::<PyTuple>().ok()
    }

    /// What `start` needs, read; None for a span it leaves to the Python
    /// path (nothing read changes anything).
    fn read_start<'py>(
        &self,
        span: &Bound<'py, PyAny>,
        ctx: &Bound<'py, PyTuple>,
        flags: u32,
        resource: &Bound<'py, PyAny>,
        scope: &Bound<'py, PyTuple>,
    ) -> Option<Started<'py>> {
        let py = span.py();
        // The provider's resource passed on already (`_pass_resource`).
        let own_resource = span.getattr(intern!(py, "_resource")).ok()?;
        if !own_resource.is_none() && !own_resource.is(resource) {
            return None;
        }
        // The tracer's scope passed on already (`_begin`'s cache).
        let own_scope = span.getattr(intern!(py, "_instrumentation_scope")).ok()?;
        if !own_scope.is(&scope.get_item(0).ok()?) {
            return None;
        }
        // The span class seen before (`_follow` makes its subclass).
        let following = self.following.bind(py);
        let follow_as = following.get_item(span.get_type()).ok()??;
        // No links, no events (`_had`), no attribute dropped yet.
        let (links, events) = (intern!(py, "_links"), intern!(py, "_events"));
        if had(span, links)? != 0 || had(span, events)? != 0 {
            return None;
        }
        let kept = span.getattr(intern!(py, "_attributes")).ok()?;
        let kept_dict = kept.getattr(intern!(py, "_dict")).ok()?;
        if !kept_dict.is_exact_instance_of::<PyDict>() {
            return None;
        }
        let dropped: usize = kept.getattr(intern!(py, "dropped")).ok()?.extract().ok()?;
        if dropped != 0 {
            return None;
        }
        let parent = span.getattr(intern!(py, "_parent")).ok()?;
        let parent = if parent.is_none() {
            None
        } else if parent.get_type().is(&self.span_context) {
            let parent = parent.cast::<PyTuple>().ok()?;
            let id: u64 = parent.get_item(1).ok()?.extract().ok()?;
            Some((id.to_be_bytes(), parent.get_item(2).ok()?.is_truthy().ok()?))
        } else {
            return None;
        };
        let kind = span.getattr(intern!(py, "_kind")).ok()?;
        let kind = self
            .kinds
            .iter()
            .find(|(k, _)| kind.is(k))
            .map_or(1, |(_, n)| *n);
        // The API's TraceState is a mapping over `_dict`: its truth, a
        // Python `__len__`, read there.
        let state = ctx.get_item(4).ok()?;
        let tracestate = if state.is_none() {
            None
        } else {
            let empty = match state.getattr(intern!(py, "_dict")) {
                Ok(d) => d.len().ok()? == 0,
                Err(_) => !state.is_truthy().ok()?,
            };
            if empty {
                None
            } else {
                let header = state.call_method0(intern!(py, "to_header")).ok()?;
                header.is_truthy().ok()?.then_some(header)
            }
        };
        let limits = span.getattr(intern!(py, "_limits")).ok()?;
        let attribute_limit = if limits.is_none() {
            py.None().into_bound(py)
        } else {
            limits.getattr(intern!(py, "max_span_attributes")).ok()?
        };
        let (trace_id, span_id) = (ctx.get_item(0).ok()?, ctx.get_item(1).ok()?);
        let ids = ids_of(&trace_id, &span_id)?;
        Some(Started {
            trace_id,
            span_id,
            ids,
            flags,
            tracestate,
            parent,
            name: span.getattr(intern!(py, "_name")).ok()?,
            kind,
            start_time: span.getattr(intern!(py, "_start_time")).ok()?,
            kept_dict: kept_dict.cast_into::<PyDict>().ok()?,
            kept,
            attribute_limit,
            follow_as: (!follow_as.is_none() && !limits.is_none()).then_some(follow_as),
        })
    }
}

#[pymethods]
impl SdkSpanHooks {
    /// The hooks of one processor: its tracer, `_open` and `_following`
    /// maps, otel.py's `_Open` and `_Watch` classes, its `_on_collected`,
    /// the API's `SpanContext`, the SDK's span classes, the `SpanKind`
    /// members each with its OTLP number, and `StatusCode`'s UNSET, OK and
    /// ERROR.
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        tracer: Py<Tracer>,
        open: Py<PyDict>,
        following: Py<PyDict>,
        open_class: Py<PyAny>,
        watch_class: Py<PyAny>,
        on_collected: Py<PyAny>,
        span_context: Py<PyType>,
        sdk_spans: Vec<Py<PyType>>,
        kinds: Vec<(Py<PyAny>, u32)>,
        status_codes: (Py<PyAny>, Py<PyAny>, Py<PyAny>),
    ) -> Self {
        SdkSpanHooks {
            tracer,
            open,
            following,
            open_class,
            watch_class,
            on_collected,
            span_context,
            sdk_spans,
            kinds,
            status_codes: [status_codes.0, status_codes.1, status_codes.2],
        }
    }

    /// `on_start` for a span it recognises (see the module): True when it
    /// began the span (or left it out, unsampled), False when it did
    /// nothing and the Python path must. `resource` is the resource the
    /// processor passed on last, `scope` its cached scope tuple. Raises
    /// what the begin raised (the processor counts it).
    fn start(
        &self,
        span: &Bound<'_, PyAny>,
        resource: &Bound<'_, PyAny>,
        scope: &Bound<'_, PyTuple>,
    ) -> PyResult<bool> {
        let py = span.py();
        if !self.is_sdk_span(span) {
            return Ok(false);
        }
        let Some(ctx) = self.context_of(span) else {
            return Ok(false);
        };
        let Some(flags) = ctx.get_item(3).ok().and_then(|f| f.extract::<u32>().ok()) else {
            return Ok(false);
        };
        if flags & SAMPLED == 0 {
            return Ok(true);
        }
        let Some(s) = self.read_start(span, &ctx, flags, resource, scope) else {
            return Ok(false);
        };
        // A copy of the SDK's map: what was passed on (`_Open.attributes`).
        let attributes = s.kept_dict.copy()?;
        let tracer = self.tracer.bind(py);
        let scope_fields = [scope.get_item(1)?, scope.get_item(2)?, scope.get_item(3)?];
        let sg = Tracer::start_with_ids(
            tracer,
            &s.name,
            s.kind,
            s.ids.0,
            s.ids.1,
            s.parent.map(|p| p.0),
            s.flags,
            s.parent.is_some_and(|p| p.1),
            s.tracestate.as_ref(),
            Some(&s.start_time),
            [
                Some(&scope_fields[0]),
                Some(&scope_fields[1]),
                Some(&scope_fields[2]),
            ],
            (!attributes.is_empty()).then_some(attributes.as_any()),
            // limited_by_caller: the SDK's span limits applied.
            true,
        )?;
        let none = py.None();
        let opened = self.open_class.bind(py).call1((
            sg,
            &s.name,
            &attributes,
            &s.kept,
            0,
            0,
            0,
            0,
            &s.attribute_limit,
            &none,
            &none,
            &none,
        ))?;
        let key = PyTuple::new(py, [&s.trace_id, &s.span_id])?;
        self.open.bind(py).set_item(&key, &opened)?;
        // A span class that takes no weak reference is ended at shutdown.
        if let Ok(watch) = self
            .watch_class
            .bind(py)
            .call1((span, self.on_collected.bind(py)))
        {
            watch.setattr(intern!(py, "key"), &key)?;
            opened.setattr(intern!(py, "watch"), watch)?;
        }
        if let Some(sub) = s.follow_as {
            // `_follow`: the span's class swapped for its following subclass.
            let open_attr = intern!(py, "_spanguard_open");
            if span.setattr(open_attr, &opened).is_ok()
                && span.setattr(intern!(py, "__class__"), sub).is_err()
            {
                let _ = span.delattr(open_attr);
            }
        }
        Ok(true)
    }

    /// `on_end` for a span it recognises (see the module): 0 when it did
    /// nothing and the Python path must, 1 when it ended the span (or left
    /// it out, unsampled), 2 when the end came after the tracer shut down
    /// (`Span._end_refused`; not when `shut_down`, the processor's own
    /// shutdown: then the end is as `end`'s). Raises what the span's calls
    /// raised (the processor counts it).
    fn end(&self, span: &Bound<'_, PyAny>, shut_down: bool) -> PyResult<u8> {
        let py = span.py();
        if !self.is_sdk_span(span) {
            return Ok(NOT_MINE);
        }
        let Some(ctx) = self.context_of(span) else {
            return Ok(NOT_MINE);
        };
        let Some(flags) = ctx.get_item(3).ok().and_then(|f| f.extract::<u32>().ok()) else {
            return Ok(NOT_MINE);
        };
        if flags & SAMPLED == 0 {
            return Ok(DONE);
        }
        let key = PyTuple::new(py, [ctx.get_item(0)?, ctx.get_item(1)?])?;
        let open = self.open.bind(py);
        let Some(opened) = open.get_item(&key)? else {
            return Ok(NOT_MINE);
        };
        let Some((sg, name, status)) = self.read_end(span, &opened) else {
            return Ok(NOT_MINE);
        };
        let end_time = span.getattr(intern!(py, "_end_time"))?;
        open.del_item(&key)?;
        opened.setattr(intern!(py, "ended"), true)?;
        // Its callback has nothing left to do.
        opened.setattr(intern!(py, "watch"), py.None())?;
        let sg = sg.get();
        if let Some(name) = name {
            sg.update_name(py, &name)?;
        }
        if let Some((code, description)) = status {
            let description = description.as_ref().map(crate::text::utf8);
            sg.status(
                py,
                code,
                description.as_ref().map_or(&b""[..], |d| d.as_bytes()),
            )?;
        }
        let end_ns = crate::values::unix_time_ns(Some(&end_time), &sg.rejected);
        let refused = sg.end_at(py, end_ns)?;
        if shut_down {
            return Ok(DONE);
        }
        if refused {
            Problem::EndedAfterShutDown.warn_once(py);
            return Ok(END_REFUSED);
        }
        Ok(DONE)
    }
}

/// A status to set: spanguard's code and the description (None for none).
type StatusToSet<'py> = Option<(u32, Option<Bound<'py, PyAny>>)>;

impl SdkSpanHooks {
    /// For a span whose every attribute, event and link was passed on as
    /// it was set and that has nothing to count: its spanguard span, its
    /// new name (None: unchanged) and the status to set; None for any
    /// other (the Python path's `_complete`).
    #[allow(clippy::type_complexity)]
    fn read_end<'py>(
        &self,
        span: &Bound<'py, PyAny>,
        opened: &Bound<'py, PyAny>,
    ) -> Option<(
        Bound<'py, Span>,
        Option<Bound<'py, PyAny>>,
        StatusToSet<'py>,
    )> {
        let py = span.py();
        // Nothing counted as the SDK dropped it, no log event added.
        if !opened.getattr(intern!(py, "logged")).ok()?.is_none() {
            return None;
        }
        let counted = opened.getattr(intern!(py, "dropped_counted")).ok()?;
        let counted: Vec<usize> = counted.extract().ok()?;
        if counted.iter().any(|&n| n != 0) {
            return None;
        }
        // The SDK's attribute map, unchanged but as passed on, nothing dropped.
        let kept = opened.getattr(intern!(py, "kept")).ok()?;
        if !span.getattr(intern!(py, "_attributes")).ok()?.is(&kept) {
            return None;
        }
        let dropped: usize = kept.getattr(intern!(py, "dropped")).ok()?.extract().ok()?;
        if dropped != 0 {
            return None;
        }
        let now = kept.getattr(intern!(py, "_dict")).ok()?;
        let before = opened.getattr(intern!(py, "attributes")).ok()?;
        if !mirrors(now.cast::<PyDict>().ok()?, before.cast::<PyDict>().ok()?) {
            return None;
        }
        // Every event and link passed on, the first one numbered 0.
        for (field, passed, from) in [
            (intern!(py, "_events"), "events", "events_from"),
            (intern!(py, "_links"), "links", "links_from"),
        ] {
            let passed: usize = opened.getattr(passed).ok()?.extract().ok()?;
            let from: usize = opened.getattr(from).ok()?.extract().ok()?;
            if from != 0 || had(span, field)? != passed {
                return None;
            }
        }
        let name = span.getattr(intern!(py, "_name")).ok()?;
        let renamed = name
            .ne(opened.getattr(intern!(py, "name")).ok()?)
            .ok()?
            .then_some(name);
        let status = span.getattr(intern!(py, "_status")).ok()?;
        let status = if status.is_none() {
            None
        } else {
            let code = status.getattr(intern!(py, "status_code")).ok()?;
            let n = self.status_codes.iter().position(|c| code.is(c))? as u32;
            if n == 0 {
                None
            } else {
                let description = status.getattr(intern!(py, "description")).ok()?;
                Some((n, (!description.is_none()).then_some(description)))
            }
        };
        let sg = opened.getattr(intern!(py, "span")).ok()?;
        Some((sg.cast_into::<Span>().ok()?, renamed, status))
    }
}
