//! `Span`: a spanguard span handle with OpenTelemetry-like methods, and the
//! context variable that holds the current span.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString};
use spanguard::ffi::result::spanguard_result;
use spanguard::ffi::span as c;
use spanguard::ffi::types::*;
use spanguard::span::traceparent::TRACEPARENT_LEN;

use crate::green;
use crate::report::{self, Problem};
use crate::text::utf8;
use crate::values::{Attributes, Value, value};

/// The `contextvars.ContextVar` holding the current span, and its bound
/// `get`, `set` and `reset` (looked up once).
struct CurrentSpanVar {
    var: Py<PyAny>,
    get: Py<PyAny>,
    set: Py<PyAny>,
    reset: Py<PyAny>,
}

static CURRENT: PyOnceLock<CurrentSpanVar> = PyOnceLock::new();

fn current_var(py: Python<'_>) -> PyResult<&CurrentSpanVar> {
    CURRENT.get_or_try_init(py, || {
        let kwargs = PyDict::new(py);
        kwargs.set_item("default", py.None())?;
        let var = py
            .import("contextvars")?
            .getattr("ContextVar")?
            .call(("spanguard.current_span",), Some(&kwargs))?;
        Ok(CurrentSpanVar {
            get: var.getattr("get")?.unbind(),
            set: var.getattr("set")?.unbind(),
            reset: var.getattr("reset")?.unbind(),
            var: var.unbind(),
        })
    })
}

/// The context variable, for the module (Python code reads and sets it).
pub fn current_span_var(py: Python<'_>) -> PyResult<Py<PyAny>> {
    Ok(current_var(py)?.var.clone_ref(py))
}

/// The current span in this context, if any.
#[inline]
pub fn current_span(py: Python<'_>) -> Option<Bound<'_, Span>> {
    let cv = current_var(py).ok()?;
    let obj = cv.get.bind(py).call0().ok()?;
    obj.cast_into::<Span>().ok()
}

/// The context a span keeps from its end on. Its handle names a slot that
/// is given to another span once this one is exported, and the
/// OpenTelemetry API wants an ended span's context to stay the same for
/// its whole life and to parent spans still (an asyncio task, or a
/// streamed response, outliving the span that started it).
pub struct KeptContext {
    /// The ids and W3C trace flags the library gave while the span was
    /// open (as bytes: a child begins from them, and only a call to
    /// `traceparent()` needs them as text).
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub trace_flags: u8,
    /// Its W3C tracestate ("" for none).
    pub tracestate: String,
    /// The span is a disabled tracer's (its end said NON_RECORDING): it
    /// only passes its parent's context on, and so must its children.
    pub passes_through: bool,
}

impl KeptContext {
    /// The kept context as a W3C traceparent.
    pub fn traceparent(&self) -> [u8; TRACEPARENT_LEN] {
        let mut text = [0u8; TRACEPARENT_LEN];
        spanguard::span::traceparent::format(
            &self.trace_id,
            &self.span_id,
            self.trace_flags,
            &mut text,
        );
        text
    }
}

/// A span. Ends once: by `end()`, or by leaving its `with` block (which
/// also makes it the current span inside the block). Every method may be
/// called from any thread; recording methods never raise.
#[pyclass(module = "spanguard._native", frozen, weakref)]
pub struct Span {
    pub(crate) handle: spanguard_span,
    ended: AtomicBool,
    /// The tracer's count of values it could not pass on, shared.
    pub(crate) rejected: Arc<AtomicU64>,
    /// The tracer object, kept alive while its spans are (opaque here:
    /// a span needs nothing of it but this, and to know it).
    tracer: Py<PyAny>,
    /// The context token of the innermost `with` on this span.
    token: Mutex<Option<Py<PyAny>>>,
    /// Set by `end`; None before, and for a span with no context to keep.
    kept: OnceLock<KeptContext>,
    /// Whether the span may have a tracestate: it began with one, or its
    /// parent may have had one. Only then does `end` read it, a second
    /// call the many spans without one are spared.
    pub(crate) may_have_tracestate: bool,
    /// The sampler kept it (its begin did not answer NON_RECORDING): a
    /// sampled-out span still has a handle, for the context it passes on,
    /// and must still say it is not recording (OpenTelemetry: a DROP
    /// decision means `IsRecording` is false).
    recording: bool,
    /// `handle` was read: whoever holds the number (C code, through
    /// ctypes or an extension) may end the span, so dropping this object
    /// does not (`Drop`).
    handed_out: AtomicBool,
}

/// A span collected open (started, never ended, and nothing refers to it
/// any more: an exception path that skipped its `end`, a generator never
/// run to its end) is ended then, marked `spanguard.unended` as a shutdown
/// marks the spans still open. Nothing else could end it, and kept open
/// it held one of the tracer's slots for the life of the process: 4,096 of
/// them and no span was recorded any more. Not one whose `handle` was
/// read (`handed_out`): its holder may end it.
impl Drop for Span {
    fn drop(&mut self) {
        if !self.handed_out.load(Ordering::Relaxed) && self.handle != SPANGUARD_SPAN_NONE {
            self._end_unended();
        }
    }
}

impl Span {
    pub fn new(
        handle: spanguard_span,
        rejected: Arc<AtomicU64>,
        tracer: Py<PyAny>,
        may_have_tracestate: bool,
        recording: bool,
    ) -> Span {
        Span {
            handle,
            ended: AtomicBool::new(false),
            rejected,
            tracer,
            token: Mutex::new(None),
            kept: OnceLock::new(),
            may_have_tracestate,
            recording,
            handed_out: AtomicBool::new(false),
        }
    }

    /// The context kept at the span's end; None while it is open (its
    /// handle is good then) and for a span that had none to keep.
    pub fn kept(&self) -> Option<&KeptContext> {
        self.kept.get()
    }

    /// Whether `tracer` began this span.
    pub fn is_of(&self, tracer: &Bound<'_, PyAny>) -> bool {
        self.tracer.bind(tracer.py()).is(tracer)
    }

    /// The span's context, read from the library while the span is still
    /// open. None when it has none to propagate (`SPANGUARD_SPAN_NONE`, a
    /// disabled tracer's root span) or its handle is no good already
    /// (the tracer shut down and exported it): then nothing is kept, and
    /// the span behaves after its end as it did before.
    fn read_context(&self) -> Option<KeptContext> {
        if self.handle == SPANGUARD_SPAN_NONE {
            return None;
        }
        // The ids as bytes (spanguard_span_traceparent would also read and
        // check the span's tracestate, on every span's end).
        let (mut trace_id, mut span_id, mut flags) = ([0u8; 16], [0u8; 8], 0u8);
        // SAFETY: the buffers hold 16, 8 and 1 bytes.
        let code = unsafe {
            c::spanguard_span_ids(
                self.handle,
                trace_id.as_mut_ptr(),
                span_id.as_mut_ptr(),
                &mut flags,
            )
        };
        if code != spanguard_result::Ok {
            return None;
        }
        let tracestate = if self.may_have_tracestate {
            self.tracestate_of_handle()
        } else {
            String::new()
        };
        Some(KeptContext {
            trace_id,
            span_id,
            trace_flags: flags,
            tracestate,
            passes_through: false,
        })
    }

    fn tracestate_of_handle(&self) -> String {
        let h = self.handle;
        // SAFETY: the buffer is valid for its length; out_len may be NULL.
        self.text_out(
            |buf, len| unsafe { c::spanguard_span_tracestate(h, buf, len, std::ptr::null_mut()) },
            SPANGUARD_MAX_TRACESTATE_BYTES as usize + 1,
        )
    }

    /// One attribute; where it may wait for payload chunks (or for another
    /// caller holding the span), on an OS thread of the green library's
    /// pool (`green`).
    fn set_one(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        v: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if green::runs_here(py, self.handle, || stored_by_one(key, v), 1) {
            return set_one_here(py, self.handle, &self.rejected, key, v);
        }
        let (h, rejected) = (self.handle, self.rejected.clone());
        let (key, v) = (key.clone().unbind(), v.clone().unbind());
        green::elsewhere(py, move |py| {
            set_one_here(py, h, &rejected, key.bind(py), v.bind(py)).map(|()| None)
        })
        .map(|_| ())
    }

    /// The `exception` event of `exc` (type, message, stacktrace, then
    /// `extra` attributes over them, as OpenTelemetry's Python SDK records
    /// one) at `time_unix_ns` (0: now), and status ERROR (`Type: message`)
    /// if `set_status`.
    fn record(
        &self,
        py: Python<'_>,
        exc: &Bound<'_, PyAny>,
        extra: Option<&Bound<'_, PyAny>>,
        time_unix_ns: u64,
        set_status: bool,
    ) -> PyResult<()> {
        let ty = exc.get_type();
        let qualname = ty
            .qualname()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "Exception".into());
        // The SDK's exception.type: the module-qualified name, but for
        // builtins ("ValueError", "openai.RateLimitError").
        let type_name = match ty.module().map(|m| m.to_string()) {
            Ok(module) if !module.is_empty() && module != "builtins" => {
                format!("{module}.{qualname}")
            }
            _ => qualname,
        };
        let message = exc.str().map(|s| s.to_string()).unwrap_or_default();
        let stacktrace = py
            .import("traceback")
            .and_then(|tb| {
                tb.call_method1(
                    "format_exception",
                    (ty.clone(), exc.clone(), exc.getattr("__traceback__")?),
                )
            })
            .and_then(|lines| PyString::new(py, "").call_method1("join", (lines,)))
            .map(|s| s.to_string())
            .unwrap_or_default();
        let attrs = PyDict::new(py);
        attrs.set_item("exception.type", &type_name)?;
        attrs.set_item("exception.message", &message)?;
        attrs.set_item("exception.stacktrace", stacktrace)?;
        // The caller's attributes over the recorded ones; a mapping that
        // cannot be read leaves them alone (never raise while recording).
        if let Some(extra) = extra.filter(|e| !e.is_none())
            && let Ok(extra) = extra.cast::<pyo3::types::PyMapping>()
            && let Ok(items) = extra.items()
        {
            for item in items.iter() {
                if let Ok((k, v)) = item.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>() {
                    attrs.set_item(k, v)?;
                }
            }
        }
        self.event(
            py,
            &PyString::new(py, "exception").into_any(),
            Some(attrs.as_any()),
            time_unix_ns,
            0,
        )?;
        if set_status {
            let description = if message.is_empty() {
                type_name
            } else {
                format!("{type_name}: {message}")
            };
            self.status(py, SPANGUARD_STATUS_ERROR, description.as_bytes())?;
        }
        Ok(())
    }

    /// An event; where its attributes' text may wait for payload chunks,
    /// added on an OS thread of the green library's pool (`green`).
    fn event(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        attributes: Option<&Bound<'_, PyAny>>,
        time_unix_ns: u64,
        dropped_attributes: u32,
    ) -> PyResult<Option<bool>> {
        let h = self.handle;
        let stores = Stores {
            span: h,
            text: Some(name),
        };
        let name = name.clone().unbind();
        with_attributes_where_no_greenlet_waits(
            py,
            stores,
            attributes,
            &self.rejected,
            move |py, attrs| {
                add_event_here(
                    py,
                    h,
                    name.bind(py),
                    attrs,
                    time_unix_ns,
                    dropped_attributes,
                )
            },
        )
    }

    /// The status; an ERROR's message that may wait for payload chunks
    /// (the pool bounds it, no length limit does), or for another caller
    /// holding the span, set on an OS thread of the green library's pool
    /// (`green`).
    pub(crate) fn status(&self, py: Python<'_>, code: u32, description: &[u8]) -> PyResult<()> {
        let h = self.handle;
        if green::runs_here(py, h, || description.len(), 1) {
            return status_here(py, h, code, description);
        }
        let description = description.to_vec();
        green::elsewhere(py, move |py| {
            status_here(py, h, code, &description).map(|()| None)
        })
        .map(|_| ())
    }

    /// Ends the span; true when the tracer had shut down and refused the
    /// end (`_end_refused`).
    pub(crate) fn end_at(&self, py: Python<'_>, end_unix_ns: u64) -> PyResult<bool> {
        // Relaxed: the flag only makes a second end() a no-op; the library
        // itself refuses a double end.
        if self.ended.swap(true, Ordering::Relaxed) {
            return Ok(false);
        }
        // Read before the end: once ended, the span may be exported and its
        // slot reused at any moment. No other Python thread runs until
        // this method returns (it holds the GIL throughout), so none sees
        // the span ended with its context not kept yet; except while an
        // end waits for another holder of the span, which lets others run
        // (the GIL let go, or the greenlet at its hub): kept first there.
        let mut kept = self.read_context();
        let h = self.handle;
        let mut code = try_end_span_at(h, end_unix_ns);
        if code == spanguard_result::WouldWait {
            if let Some(kept) = kept.take() {
                // Not NON_RECORDING: a span that records nothing has no
                // holder to wait for.
                let _ = self.kept.set(kept);
            }
            // Where another caller holds the span (a setter waiting for
            // payload chunks on the green library's pool, up to
            // `full_wait_ms`), the end waits for it where its wait stops
            // no greenlet (`green`).
            code = green::result_where_no_greenlet_waits(py, move || end_span_at(h, end_unix_ns))?;
        }
        if let Some(mut kept) = kept {
            // End answers NON_RECORDING only for a span of no tracer that
            // records (a disabled one's); an unsampled span ends OK.
            kept.passes_through = code == spanguard_result::NonRecording;
            let _ = self.kept.set(kept);
        }
        // A span the shutdown already exported (marked unended) is fine
        // for `end`; the OpenTelemetry bridge counts it (`_end_refused`).
        if code == spanguard_result::ShutDown {
            return Ok(true);
        }
        report::recording(py, code)?;
        Ok(false)
    }

    fn text_out(
        &self,
        call: impl Fn(*mut std::ffi::c_char, usize) -> spanguard_result,
        size: usize,
    ) -> String {
        let mut buf = vec![0u8; size];
        let code = call(buf.as_mut_ptr().cast(), buf.len());
        if !code.is_ok() {
            return String::new();
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    }
}

#[pymethods]
impl Span {
    /// The span's handle (a `spanguard_span`); 0 for a span that records
    /// nothing. Once read, the span is its holder's to end: collected
    /// open, it is no longer ended for it.
    #[getter]
    fn handle(&self) -> u64 {
        self.handed_out.store(true, Ordering::Relaxed);
        self.handle
    }

    /// Whether the span records anything (False when the sampler left it
    /// out, the tracer is shut down or disabled, or every slot was taken;
    /// and once it ended).
    fn is_recording(&self) -> bool {
        self.recording && self.handle != SPANGUARD_SPAN_NONE && !self.ended.load(Ordering::Relaxed)
    }

    /// Sets one attribute: str, bool, int (64-bit), float; bytes,
    /// bytearray or memoryview (a bytes value); a list or tuple of str, of
    /// bool, of int or of float (an array; a None element is its type's
    /// zero). Anything else, a mixed sequence too, is left out, counted in
    /// `stats().values_rejected` and in the span's dropped attributes
    /// count, and warned once.
    fn set_attribute(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.set_one(py, key, value)
    }

    /// Sets several attributes with one call into the library (one per
    /// 128 attributes).
    /// Where their text may wait for payload chunks, they are set on an OS
    /// thread of the green library's pool (`green`).
    fn set_attributes(&self, py: Python<'_>, attributes: &Bound<'_, PyAny>) -> PyResult<()> {
        let h = self.handle;
        with_attributes_where_no_greenlet_waits(
            py,
            Stores {
                span: h,
                text: None,
            },
            Some(attributes),
            &self.rejected,
            move |py, attrs| set_all(py, h, attrs, 0).map(|()| None),
        )
        .map(|_| ())
    }

    /// Renames the span (OpenTelemetry's `update_name`): it is exported
    /// with the last name it was given. Runs in place under gevent too: a
    /// name is cut at `SPANGUARD_MAX_NAME_BYTES` and never waits for payload
    /// chunks (the library stores it from the pool as it is).
    pub(crate) fn update_name(&self, py: Python<'_>, name: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = utf8(name);
        let n = name.as_bytes();
        // SAFETY: name is valid for its length.
        let code =
            unsafe { c::spanguard_span_update_name(self.handle, n.as_ptr().cast(), n.len()) };
        report::recording(py, code)
    }

    /// Adds to the span's dropped counts what another SDK dropped before
    /// the span reached spanguard (the OpenTelemetry bridge).
    #[pyo3(signature = (attributes=0, events=0, links=0))]
    fn add_dropped_counts(
        &self,
        py: Python<'_>,
        attributes: u32,
        events: u32,
        links: u32,
    ) -> PyResult<()> {
        let code = c::spanguard_span_add_dropped_counts(self.handle, attributes, events, links);
        report::recording(py, code)
    }

    /// Drops the span's `events` oldest events and `links` oldest links,
    /// counted dropped unless `counted` is False (the bridge counted them
    /// with `add_dropped_counts` as the SDK evicted them): what the
    /// OpenTelemetry bridge does when the SDK evicted, past its limit,
    /// some it had passed on.
    #[pyo3(signature = (events=0, links=0, counted=true))]
    fn drop_oldest(&self, py: Python<'_>, events: u32, links: u32, counted: bool) -> PyResult<()> {
        let code = if counted {
            c::spanguard_span_drop_oldest(self.handle, events, links)
        } else {
            c::spanguard_span_drop_oldest_uncounted(self.handle, events, links)
        };
        report::recording(py, code)
    }

    /// Adds an event; `timestamp` in Unix nanoseconds (default now). True
    /// when the span holds it (its name cut, maybe), False when it was
    /// refused and counted dropped (the span's event limit, or no room left
    /// in the payload pool), None when it was neither (an ended span, a
    /// shut-down tracer, a span that records nothing).
    /// `dropped_attributes`: how many of the event's attributes another SDK
    /// already dropped (an OpenTelemetry bridge's), exported in the event's
    /// dropped count with spanguard's own.
    #[pyo3(signature = (name, attributes=None, timestamp=None, dropped_attributes=0))]
    fn add_event(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        attributes: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
        dropped_attributes: u32,
    ) -> PyResult<Option<bool>> {
        self.event(
            py,
            name,
            attributes,
            crate::values::unix_time_ns(timestamp, &self.rejected),
            dropped_attributes,
        )
    }

    /// Links the span to another, given as a W3C traceparent (and the
    /// linked span's tracestate, if it has one). What became of it, as
    /// `add_event` says (None too for a traceparent that is not W3C text).
    #[pyo3(signature = (traceparent, attributes=None, tracestate=None))]
    fn add_link(
        &self,
        py: Python<'_>,
        traceparent: &Bound<'_, PyAny>,
        attributes: Option<&Bound<'_, PyAny>>,
        tracestate: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<bool>> {
        let (h, rejected) = (self.handle, self.rejected.clone());
        let tracestate = tracestate.filter(|t| !t.is_none());
        let stores = Stores {
            span: h,
            text: tracestate,
        };
        let traceparent = traceparent.clone().unbind();
        let tracestate = tracestate.map(|t| t.clone().unbind());
        with_attributes_where_no_greenlet_waits(
            py,
            stores,
            attributes,
            &self.rejected,
            move |py, attrs| {
                let tp = utf8(traceparent.bind(py));
                let t = tp.as_bytes();
                let ts = tracestate.as_ref().map(|t| utf8(t.bind(py)));
                let s = ts.as_ref().map_or(&[][..], |s| s.as_bytes());
                // SAFETY: traceparent, tracestate and attributes are valid for the call.
                let code = unsafe {
                    c::spanguard_span_add_link_with_tracestate(
                        h,
                        t.as_ptr().cast(),
                        t.len(),
                        s.as_ptr().cast(),
                        s.len(),
                        attrs.as_ptr(),
                        attrs.len(),
                    )
                };
                if code == spanguard_result::InvalidTraceparent {
                    rejected.fetch_add(1, Ordering::Relaxed);
                }
                report::held(py, code)
            },
        )
    }

    /// Links the span to another given by its ids (ints, as an
    /// OpenTelemetry `SpanContext` holds them), W3C trace flags and
    /// tracestate, and whether its context was remote (`is_remote`: True,
    /// False, or None for not known), which the export carries in the
    /// link's flags. A link whose ids are zero (an invalid context) is
    /// kept when it has attributes or a tracestate, and left out (counted,
    /// as a bad traceparent, in `values_rejected`; None) without either.
    /// What became of it, as `add_event` says; `dropped_attributes` as
    /// `add_event` takes it.
    #[pyo3(signature = (trace_id, span_id, trace_flags=0, attributes=None, tracestate=None, is_remote=None, dropped_attributes=0))]
    #[allow(clippy::too_many_arguments)]
    fn add_link_ids(
        &self,
        py: Python<'_>,
        trace_id: u128,
        span_id: u64,
        trace_flags: u32,
        attributes: Option<&Bound<'_, PyAny>>,
        tracestate: Option<&Bound<'_, PyAny>>,
        is_remote: Option<bool>,
        dropped_attributes: u32,
    ) -> PyResult<Option<bool>> {
        let (h, rejected) = (self.handle, self.rejected.clone());
        let tracestate = tracestate.filter(|t| !t.is_none());
        let stores = Stores {
            span: h,
            text: tracestate,
        };
        let tracestate = tracestate.map(|t| t.clone().unbind());
        let trace_id = trace_id.to_be_bytes();
        let span_id = span_id.to_be_bytes();
        let link_flags = match is_remote {
            None => 0,
            Some(true) => SPANGUARD_LINK_REMOTE,
            Some(false) => SPANGUARD_LINK_LOCAL,
        };
        with_attributes_where_no_greenlet_waits(
            py,
            stores,
            attributes,
            &self.rejected,
            move |py, attrs| {
                let ts = tracestate.as_ref().map(|t| utf8(t.bind(py)));
                let s = ts.as_ref().map_or(&[][..], |s| s.as_bytes());
                // SAFETY: the ids hold 16 and 8 bytes; tracestate and attributes
                // are valid for the call.
                let code = unsafe {
                    c::spanguard_span_add_link_ids_with_dropped(
                        h,
                        trace_id.as_ptr(),
                        span_id.as_ptr(),
                        (trace_flags & 0xff) as u8,
                        s.as_ptr().cast(),
                        s.len(),
                        link_flags,
                        attrs.as_ptr(),
                        attrs.len(),
                        dropped_attributes,
                    )
                };
                if code == spanguard_result::InvalidTraceparent {
                    rejected.fetch_add(1, Ordering::Relaxed);
                }
                report::held(py, code)
            },
        )
    }

    /// Sets the status: `STATUS_UNSET`, `STATUS_OK` or `STATUS_ERROR`, its
    /// name, OpenTelemetry's `StatusCode`, with a description (kept for
    /// ERROR only), or OpenTelemetry's `Status` (its description in place
    /// of `description`, as OpenTelemetry's `set_status` takes it).
    /// Anything else raises TypeError or ValueError (a programming error;
    /// see `kinds`).
    #[pyo3(signature = (code, description=None))]
    fn set_status(
        &self,
        py: Python<'_>,
        code: &Bound<'_, PyAny>,
        description: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (code, carried) = crate::kinds::status_of(code)?;
        let description = match &carried {
            Some(d) => Some(d),
            None => description,
        };
        match description {
            Some(d) if !d.is_none() => self.status(py, code, utf8(d).as_bytes()),
            _ => self.status(py, code, b""),
        }
    }

    /// Records an exception as OpenTelemetry's `Span.record_exception`
    /// does (the same signature, so code written for it works here): an
    /// `exception` event with exception.type, .message and .stacktrace,
    /// `attributes` added over them, at `timestamp` (Unix nanoseconds,
    /// default now). `escaped` is taken and not recorded (the attribute is
    /// deprecated). Unlike the SDK's, it also sets status ERROR unless
    /// `set_status=False`: a span that recorded an exception failed.
    #[pyo3(signature = (exception, attributes=None, timestamp=None, escaped=false, *, set_status=true))]
    fn record_exception(
        &self,
        py: Python<'_>,
        exception: &Bound<'_, PyAny>,
        attributes: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
        escaped: bool,
        set_status: bool,
    ) -> PyResult<()> {
        let _ = escaped;
        self.record(
            py,
            exception,
            attributes,
            crate::values::unix_time_ns(timestamp, &self.rejected),
            set_status,
        )
    }

    /// The W3C traceparent to pass to another process ("" when there is
    /// none to pass). The same for the span's whole life, after its end too.
    fn traceparent(&self) -> String {
        if let Some(kept) = self.kept.get() {
            return String::from_utf8_lossy(&kept.traceparent()).into_owned();
        }
        let h = self.handle;
        // SAFETY: the buffer is valid for its length.
        self.text_out(
            |buf, len| unsafe { c::spanguard_span_traceparent(h, buf, len) },
            SPANGUARD_TRACEPARENT_SIZE as usize,
        )
    }

    /// Ends a span that nothing can end any more, marked
    /// `spanguard.unended` as a shutdown marks the spans still open: one
    /// collected open (`Drop`), and the OpenTelemetry bridge's, when the
    /// SDK span it follows was garbage-collected open (a stream never read
    /// to its end). Left open,
    /// each held a slot until shutdown, and once they filled every slot no
    /// span was recorded. Silent whatever the library answers: it runs
    /// from a garbage collection, maybe in a forked child, where the
    /// handle names nothing.
    fn _end_unended(&self) {
        if self.ended.swap(true, Ordering::Relaxed) {
            return;
        }
        let key = "spanguard.unended";
        // SAFETY: the key is valid for its length.
        let _ = unsafe {
            c::spanguard_span_set_bool(self.handle, key.as_ptr().cast(), key.len(), true)
        };
        let _ = c::spanguard_span_end(self.handle);
    }

    /// Keeps the span's context now, as its end would (called on the
    /// current span before `os.fork`): in a forked child the library has
    /// given the tracer a fresh pipeline, where this span's handle names
    /// nothing, and the child's spans under it would otherwise begin new
    /// traces (`multiprocessing`'s fork workers under a span). In this
    /// process the context is the one the handle gives.
    fn _keep_context_for_fork(&self) {
        if self.kept.get().is_none()
            && let Some(context) = self.read_context()
        {
            let _ = self.kept.set(context);
        }
    }

    /// The W3C tracestate to pass along with the traceparent ("" for none).
    fn tracestate(&self) -> String {
        if let Some(kept) = self.kept.get() {
            return kept.tracestate.clone();
        }
        self.tracestate_of_handle()
    }

    /// Ends the span now, or at `end_time` (Unix nanoseconds). Once; a
    /// second call does nothing.
    #[pyo3(signature = (end_time=None))]
    fn end(&self, py: Python<'_>, end_time: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.end_at(py, crate::values::unix_time_ns(end_time, &self.rejected))?;
        Ok(())
    }

    /// `end` for the OpenTelemetry bridge: True when the tracer had shut
    /// down before it (its shutdown exported the span marked
    /// `spanguard.unended`, without its end and what was set on it since),
    /// warned once. The bridge counts those in its `failures`: a span
    /// ended after a signal's shutdown, or after its tracer's owner shut
    /// it down, lost its end in silence.
    #[pyo3(signature = (end_time=None))]
    fn _end_refused(&self, py: Python<'_>, end_time: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let refused = self.end_at(py, crate::values::unix_time_ns(end_time, &self.rejected))?;
        if refused {
            Problem::EndedAfterShutDown.warn_once(py);
        }
        Ok(refused)
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        let py = slf.py();
        let cv = current_var(py)?;
        let token = cv.set.bind(py).call1((slf,))?;
        let previous = slf
            .get()
            .token
            .lock()
            .map(|mut t| t.replace(token.unbind()))
            .unwrap_or(None);
        drop(previous);
        Ok(slf.clone())
    }

    #[pyo3(signature = (exc_type=None, exc=None, traceback=None))]
    fn __exit__(
        slf: &Bound<'_, Self>,
        exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let _ = (exc_type, traceback);
        let py = slf.py();
        let this = slf.get();
        let token = this.token.lock().map(|mut t| t.take()).unwrap_or(None);
        if let Some(token) = token {
            // A token from another context (a generator resumed elsewhere)
            // cannot be reset; the span still ends.
            if let Ok(cv) = current_var(py)
                && cv.reset.bind(py).call1((token,)).is_err()
            {
                Problem::Internal.warn_once(py);
            }
        }
        if let Some(exc) = exc.filter(|e| !e.is_none()) {
            // Closing a generator early is no error.
            let generator_exit = exc.is_instance_of::<pyo3::exceptions::PyGeneratorExit>();
            if !generator_exit && this.is_recording() {
                this.record(py, exc, None, 0, true)?;
            }
        }
        this.end_at(py, 0)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("<spanguard Span {}>", self.traceparent())
    }
}

/// `spanguard_span_try_end` for `end_unix_ns` 0 (now), else
/// `spanguard_span_try_end_at`: the end, or WOULD_WAIT where another
/// caller holds the span. What `spanguard_span_end` costs otherwise.
fn try_end_span_at(h: spanguard_span, end_unix_ns: u64) -> spanguard_result {
    if end_unix_ns == 0 {
        c::spanguard_span_try_end(h)
    } else {
        c::spanguard_span_try_end_at(h, end_unix_ns)
    }
}

/// `try_end_span_at` that waits for another holder of the span.
fn end_span_at(h: spanguard_span, end_unix_ns: u64) -> spanguard_result {
    if end_unix_ns == 0 {
        c::spanguard_span_end(h)
    } else {
        c::spanguard_span_end_at(h, end_unix_ns)
    }
}

/// What a call stores in a span besides its attributes: the span, and an
/// event's name or a link's tracestate, whose UTF-8 bytes it stores (a
/// traceparent's are ids, stored in the link's entry). Their length is
/// read only where a green library is loaded (`green::runs_here`).
pub struct Stores<'a, 'py> {
    pub span: spanguard_span,
    pub text: Option<&'a Bound<'py, PyAny>>,
}

/// `call` with the attributes `attributes` holds (values left out counted
/// in `rejected`): in place, or, where they (with what else `stores`
/// says) may wait for payload chunks or for another caller holding the
/// span under gevent or eventlet, on an OS thread of the green library's
/// pool (`green`), read again there and counted once. `call` holds what
/// else it needs by value: it may run on another OS thread.
pub fn with_attributes_where_no_greenlet_waits<F>(
    py: Python<'_>,
    stores: Stores<'_, '_>,
    attributes: Option<&Bound<'_, PyAny>>,
    rejected: &AtomicU64,
    call: F,
) -> PyResult<Option<bool>>
where
    F: Fn(Python<'_>, &Attributes<'_>) -> PyResult<Option<bool>> + Send + Sync + 'static,
{
    let attrs = Attributes::from_mapping(attributes, rejected);
    // The attributes, and the event or link that holds them.
    let count = attrs.len().saturating_add(1);
    let bytes = || {
        attrs
            .stored_bytes()
            .saturating_add(stores.text.map_or(0, |t| utf8(t).as_bytes().len()))
    };
    if green::runs_here(py, stores.span, bytes, count) {
        return call(py, &attrs);
    }
    drop(attrs);
    let attributes = attributes.map(|a| a.clone().unbind());
    green::elsewhere(py, move |py| {
        // Counted once: the values were read here already.
        let attrs =
            Attributes::from_mapping(attributes.as_ref().map(|a| a.bind(py)), &AtomicU64::new(0));
        call(py, &attrs)
    })
}

/// The bytes `set_one` stores, at most: the key's and a str's UTF-8
/// (CPython keeps it, and the call reads it there), a number's 8; an
/// array's, read as the call reads it.
fn stored_by_one(key: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>) -> usize {
    let value_bytes = if let Ok(s) = v.cast::<PyString>() {
        crate::text::str_utf8(s).as_bytes().len()
    } else if let Ok(b) = v.cast::<pyo3::types::PyBytes>() {
        b.as_bytes().len()
    } else if v.is_instance_of::<pyo3::types::PyList>()
        || v.is_instance_of::<pyo3::types::PyTuple>()
    {
        Attributes::one(key, v, &AtomicU64::new(0)).stored_bytes()
    } else {
        8
    };
    value_bytes.saturating_add(utf8(key).as_bytes().len())
}

/// `Span::status` on the span `h`, in place.
fn status_here(py: Python<'_>, h: spanguard_span, code: u32, description: &[u8]) -> PyResult<()> {
    // SAFETY: description is valid for its length.
    let result = unsafe {
        c::spanguard_span_set_status(h, code, description.as_ptr().cast(), description.len())
    };
    report::recording(py, result)
}

/// `Span::set_one` on the span `h`, in place.
fn set_one_here(
    py: Python<'_>,
    h: spanguard_span,
    rejected: &AtomicU64,
    key: &Bound<'_, PyAny>,
    v: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let Some(value) = value(v, key, rejected) else {
        return count_left_out(py, h, 1);
    };
    let key_text = utf8(key);
    let k = key_text.as_bytes();
    let (kp, kn) = (k.as_ptr().cast(), k.len());
    // SAFETY (each call): key and value bytes are valid for their
    // lengths for the duration of the call.
    let code = match value {
        Value::Str(s) => {
            let s = s.as_bytes();
            unsafe { c::spanguard_span_set_string(h, kp, kn, s.as_ptr().cast(), s.len()) }
        }
        Value::Int(i) => unsafe { c::spanguard_span_set_int(h, kp, kn, i) },
        Value::Double(d) => unsafe { c::spanguard_span_set_double(h, kp, kn, d) },
        Value::Bool(b) => unsafe { c::spanguard_span_set_bool(h, kp, kn, b) },
        // Bytes and arrays: one attribute array of one.
        Value::Compound => {
            return set_all(py, h, &Attributes::one(key, v, rejected), 0);
        }
    };
    report::recording(py, code)
}

/// `Span::event` on the span `h`, in place.
fn add_event_here(
    py: Python<'_>,
    h: spanguard_span,
    name: &Bound<'_, PyAny>,
    attrs: &Attributes<'_>,
    time_unix_ns: u64,
    dropped_attributes: u32,
) -> PyResult<Option<bool>> {
    let name = utf8(name);
    let n = name.as_bytes();
    // SAFETY: name and the attributes (kept alive by `attrs`) are valid
    // for the call.
    let code = unsafe {
        c::spanguard_span_add_event_with_dropped(
            h,
            n.as_ptr().cast(),
            n.len(),
            time_unix_ns,
            attrs.as_ptr(),
            attrs.len(),
            dropped_attributes,
        )
    };
    report::held(py, code)
}

/// Sets `attrs` from `start` on, in as few calls as the library takes
/// (`SPANGUARD_MAX_ATTRIBUTES` a call).
pub fn set_all(
    py: Python<'_>,
    handle: spanguard_span,
    attrs: &Attributes<'_>,
    mut start: usize,
) -> PyResult<()> {
    while start < attrs.len() {
        let (p, n) = attrs.chunk(start);
        // SAFETY: the attributes and what they point into live in `attrs`.
        let code = unsafe { c::spanguard_span_set_attributes(handle, p, n) };
        report::recording(py, code)?;
        start += n;
    }
    count_left_out(py, handle, attrs.left_out())
}

/// `set_all` from `start` for a span just begun with the attributes
/// before it (`mapping` read into `attrs`): where they may wait for
/// payload chunks under gevent or eventlet, on an OS thread of the green
/// library's pool (`green`), read again there from `mapping` and counted
/// once. None left to set (a begin took them all): their left-out count
/// alone, here.
pub fn set_all_where_no_greenlet_waits(
    py: Python<'_>,
    handle: spanguard_span,
    mapping: Option<&Bound<'_, PyAny>>,
    attrs: &Attributes<'_>,
    start: usize,
) -> PyResult<()> {
    if start >= attrs.len()
        || green::runs_here(py, handle, || attrs.stored_bytes(), attrs.len() - start)
    {
        return set_all(py, handle, attrs, start);
    }
    let mapping = mapping.map(|m| m.clone().unbind());
    green::elsewhere(py, move |py| {
        // Counted once: the values were read already.
        let attrs =
            Attributes::from_mapping(mapping.as_ref().map(|a| a.bind(py)), &AtomicU64::new(0));
        set_all(py, handle, &attrs, start).map(|()| None)
    })
    .map(|_| ())
}

/// Counts on the span, in its dropped attributes, `n` attributes left out
/// for a value spanguard cannot record (a dict, a mixed array, None, an
/// int past 64 bits: what OpenTelemetry's Python SDK now keeps). Counted
/// in `values_rejected` alone, the span arrived saying it had lost
/// nothing, and the OpenTelemetry bridge, which passes each key the SDK
/// kept, counted none of them either; an empty key is counted there too,
/// by the library, as the SDK counts the attributes it refuses.
fn count_left_out(py: Python<'_>, handle: spanguard_span, n: u32) -> PyResult<()> {
    if n == 0 {
        return Ok(());
    }
    report::recording(py, c::spanguard_span_add_dropped_counts(handle, n, 0, 0))
}

/// `spanguard_span_begin*` results that still give a usable span: OK and
/// the notices. Anything else gives a span that records nothing.
pub fn began(
    py: Python<'_>,
    code: spanguard_result,
    out: spanguard_span,
) -> PyResult<spanguard_span> {
    if code == spanguard_result::ShutDown {
        Problem::ShutDown.warn_once(py);
    } else {
        report::recording(py, code)?;
    }
    Ok(if code.is_ok() {
        out
    } else {
        SPANGUARD_SPAN_NONE
    })
}
