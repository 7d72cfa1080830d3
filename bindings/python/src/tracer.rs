//! `Tracer`: a spanguard tracer (configuration, beginning spans, flush,
//! shutdown, counters). The Python class `spanguard.Tracer` subclasses it
//! for what is plain Python (decorators, exit and fork hooks).

use std::ffi::{CString, c_char};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use spanguard::ffi::result::spanguard_result;
use spanguard::ffi::span as c;
use spanguard::ffi::tracer as ct;
use spanguard::ffi::tracer::spanguard_tracer;
use spanguard::ffi::types::*;

use crate::report::{self, Problem};
use crate::span::{KeptContext, Span, began, current_span, set_all_where_no_greenlet_waits};
use crate::text::utf8;
use crate::values::Attributes;

/// A spanguard tracer. Every method may be called from any thread at once,
/// `close()` included: it shuts the library's tracer down
/// (`spanguard_tracer_close`) and keeps its memory, which is freed when
/// this object is (`Drop`). A flush detached from the GIL on one thread,
/// or a span call on another, may still be running when `close()` runs;
/// freeing there unmapped the slab under it.
#[pyclass(module = "spanguard._native", subclass, frozen)]
pub struct Tracer {
    /// Valid for the object's life (freed in `Drop`); never changes (an
    /// atomic only so that the class is Sync without an unsafe impl).
    raw: AtomicPtr<spanguard_tracer>,
    /// Set by the first `close()`.
    closed: AtomicBool,
    /// Attribute values, traceparents and links the binding could not pass
    /// on (wrong type, out of range, invalid).
    pub(crate) values_rejected: Arc<AtomicU64>,
}

/// A tracer pointer that may cross into a thread without the GIL.
#[derive(Clone, Copy)]
struct RawTracer(*mut spanguard_tracer);
// SAFETY: every spanguard call taking a tracer is thread-safe (the C
// ABI's contract), tracer_close included; tracer_free, which is not, is
// Drop's alone.
unsafe impl Send for RawTracer {}

impl Drop for Tracer {
    /// Frees a closed tracer: nothing can be running on it now (a call
    /// holds a reference to this object, and every span holds one too). A
    /// tracer never closed is left running, as before: the exit hooks shut
    /// it down, and freeing would shut it down here, in a destructor.
    fn drop(&mut self) {
        if self.closed.load(Ordering::Acquire) {
            // SAFETY: from tracer_new; freed once, here.
            unsafe { ct::spanguard_tracer_free(self.raw.load(Ordering::Relaxed)) }
        }
    }
}

/// A config string: `str`, `os.PathLike`, or a dict for the `k=v,...`
/// settings.
fn config_string(py: Python<'_>, key: &str, v: &Bound<'_, PyAny>) -> PyResult<CString> {
    let text: Vec<u8> = if let Ok(d) = v.cast::<PyDict>() {
        let mut parts = Vec::with_capacity(d.len());
        for (k, val) in d.iter() {
            parts.push(format!("{}={}", k.str()?, val.str()?));
        }
        parts.join(",").into_bytes()
    } else {
        let path = py
            .import("os")?
            .call_method1("fspath", (v,))
            .or_else(|_| v.str().map(|s| s.into_any()))?;
        if let Ok(b) = path.cast::<PyBytes>() {
            b.as_bytes().to_vec()
        } else {
            path.cast::<PyString>()?.to_str()?.as_bytes().to_vec()
        }
    };
    CString::new(text)
        .map_err(|_| PyValueError::new_err(format!("spanguard setting {key}: contains a NUL byte")))
}

/// `process.runtime.*` as OpenTelemetry's Python SDK reports them, in
/// OTEL_RESOURCE_ATTRIBUTES syntax (`,` and `%` percent-encoded).
fn runtime_attributes(py: Python<'_>) -> PyResult<String> {
    let sys = py.import("sys")?;
    let implementation = sys.getattr("implementation")?;
    let v = implementation.getattr("version")?;
    let version = format!(
        "{}.{}.{}",
        v.getattr("major")?.str()?,
        v.getattr("minor")?.str()?,
        v.getattr("micro")?.str()?
    );
    let description = sys
        .getattr("version")?
        .str()?
        .to_string()
        .replace('\n', " ");
    let encode = |s: &str| s.replace('%', "%25").replace(',', "%2C");
    Ok(format!(
        "process.runtime.name={},process.runtime.version={},process.runtime.description={}",
        encode(&implementation.getattr("name")?.str()?.to_string()),
        encode(&version),
        encode(&description)
    ))
}

/// A setting given as a name or as its number.
fn named(key: &str, v: &Bound<'_, PyAny>, names: &[(&str, u32)]) -> PyResult<u32> {
    if let Ok(s) = v.cast::<PyString>() {
        let s = s.to_str()?;
        return names
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                let known: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                PyValueError::new_err(format!(
                    "spanguard setting {key}={s:?}: expected one of {known:?}"
                ))
            });
    }
    v.extract::<u32>()
}

/// The config struct from keyword settings; `keep` holds its strings.
fn config(
    py: Python<'_>,
    settings: Option<&Bound<'_, PyDict>>,
    keep: &mut Vec<CString>,
) -> PyResult<spanguard_config> {
    // SAFETY: all-zero is a valid config; config_init then fills it.
    let mut cfg: spanguard_config = unsafe { std::mem::zeroed() };
    // SAFETY: cfg is a valid struct of the size given.
    let code =
        unsafe { ct::spanguard_config_init(&mut cfg, std::mem::size_of::<spanguard_config>()) };
    if !code.is_ok() {
        return Err(report::error(py, code as u32, "config_init"));
    }
    // The runtime first, so that the caller's own attributes override it.
    let mut resource = runtime_attributes(py)?;
    let given = match settings {
        Some(settings) => settings
            .get_item("resource_attributes")?
            .filter(|v| !v.is_none()),
        None => None,
    };
    if let Some(v) = given {
        let given = config_string(py, "resource_attributes", &v)?;
        if !given.as_bytes().is_empty() {
            resource.push(',');
            resource.push_str(&given.to_string_lossy());
        }
    }
    let resource = CString::new(resource).map_err(|_| {
        PyValueError::new_err("spanguard setting resource_attributes: contains a NUL byte")
    })?;
    cfg.resource_attributes = resource.as_ptr();
    keep.push(resource);
    let Some(settings) = settings else {
        return Ok(cfg);
    };
    for (k, v) in settings.iter() {
        let key: String = k.extract()?;
        if v.is_none() {
            continue; // None: the default
        }
        let mut string = |field: &mut *const c_char| -> PyResult<()> {
            let s = config_string(py, &key, &v)?;
            *field = s.as_ptr();
            keep.push(s);
            Ok(())
        };
        match key.as_str() {
            "service_name" => string(&mut cfg.service_name)?,
            "resource_attributes" => {} // with the runtime's, above
            "endpoint" => string(&mut cfg.endpoint)?,
            "headers" => string(&mut cfg.headers)?,
            "sink_dir" => string(&mut cfg.sink_dir)?,
            "spool_dir" => string(&mut cfg.spool_dir)?,
            "certificate" => string(&mut cfg.certificate)?,
            "client_certificate" => string(&mut cfg.client_certificate)?,
            "client_key" => string(&mut cfg.client_key)?,
            "log_level" => string(&mut cfg.log_level)?,
            "env_set_by_host" => string(&mut cfg.env_set_by_host)?,
            "protocol" => {
                cfg.protocol = named(
                    &key,
                    &v,
                    &[
                        ("http/protobuf", SPANGUARD_PROTOCOL_HTTP_PROTOBUF),
                        ("http/json", SPANGUARD_PROTOCOL_HTTP_JSON),
                    ],
                )?
            }
            "compression" => {
                cfg.compression = named(
                    &key,
                    &v,
                    &[
                        ("none", SPANGUARD_COMPRESSION_NONE),
                        ("gzip", SPANGUARD_COMPRESSION_GZIP),
                    ],
                )?
            }
            "full_policy" => {
                cfg.full_policy = named(
                    &key,
                    &v,
                    &[
                        ("wait", SPANGUARD_FULL_POLICY_WAIT),
                        ("drop", SPANGUARD_FULL_POLICY_DROP),
                    ],
                )?
            }
            "sampler" => {
                cfg.sampler = named(
                    &key,
                    &v,
                    &[
                        (
                            "parentbased_always_on",
                            SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_ON,
                        ),
                        ("always_on", SPANGUARD_SAMPLER_ALWAYS_ON),
                        ("always_off", SPANGUARD_SAMPLER_ALWAYS_OFF),
                        ("traceidratio", SPANGUARD_SAMPLER_TRACEIDRATIO),
                        (
                            "parentbased_always_off",
                            SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_OFF,
                        ),
                        (
                            "parentbased_traceidratio",
                            SPANGUARD_SAMPLER_PARENTBASED_TRACEIDRATIO,
                        ),
                    ],
                )?
            }
            "sampler_ratio" => cfg.sampler_ratio = v.extract()?,
            "install_signal_handlers" => cfg.install_signal_handlers = v.is_truthy()? as u32,
            "flight_recorder" => cfg.flight_recorder = v.is_truthy()? as u32,
            "prefault_slots" => cfg.prefault_slots = v.is_truthy()? as u32,
            "request_timeout_ms" => cfg.request_timeout_ms = v.extract()?,
            "schedule_delay_ms" => cfg.schedule_delay_ms = v.extract()?,
            "max_queue_size" => cfg.max_queue_size = v.extract()?,
            "max_export_batch_size" => cfg.max_export_batch_size = v.extract()?,
            "export_timeout_ms" => cfg.export_timeout_ms = v.extract()?,
            "max_open_spans" => cfg.max_open_spans = v.extract()?,
            "full_wait_ms" => cfg.full_wait_ms = v.extract()?,
            "spool_max_mib" => cfg.spool_max_mib = v.extract()?,
            "signal_flush_timeout_ms" => cfg.signal_flush_timeout_ms = v.extract()?,
            "exporter_max_cpu_percent" => cfg.exporter_max_cpu_percent = v.extract()?,
            "payload_pool_mib" => cfg.payload_pool_mib = v.extract()?,
            "value_length_limit" => cfg.value_length_limit = v.extract()?,
            "attribute_count_limit" => cfg.attribute_count_limit = v.extract()?,
            "event_count_limit" => cfg.event_count_limit = v.extract()?,
            "link_count_limit" => cfg.link_count_limit = v.extract()?,
            "event_attribute_count_limit" => cfg.event_attribute_count_limit = v.extract()?,
            "link_attribute_count_limit" => cfg.link_attribute_count_limit = v.extract()?,
            "value_depth_limit" => cfg.value_depth_limit = v.extract()?,
            "max_request_bytes" => cfg.max_request_bytes = v.extract()?,
            "sink_max_line_bytes" => cfg.sink_max_line_bytes = v.extract()?,
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "unknown spanguard setting {key:?}"
                )));
            }
        }
    }
    Ok(cfg)
}

fn timeout_ms(timeout_s: f64) -> u32 {
    (timeout_s * 1000.0).clamp(0.0, u32::MAX as f64) as u32
}

/// Which of a span's ids is all zero (trace id first), if one is.
fn zero_id(trace_id: &[u8; 16], span_id: &[u8; 8]) -> Option<&'static str> {
    if *trace_id == [0; 16] {
        Some("trace id")
    } else if *span_id == [0; 8] {
        Some("span id")
    } else {
        None
    }
}

/// Explicit ids for a bridged span: `N` bytes, or an int.
fn id_bytes<const N: usize>(v: &Bound<'_, PyAny>) -> PyResult<[u8; N]> {
    // Which id, for a message that says what was wrong with it.
    let what = if N == 16 {
        "a trace id"
    } else {
        "a span id (or parent span id)"
    };
    if let Ok(b) = v.cast::<PyBytes>() {
        return b.as_bytes().try_into().map_err(|_| {
            PyValueError::new_err(format!(
                "spanguard: {what} must be {N} bytes (a malformed id)"
            ))
        });
    }
    let i: u128 = v.extract()?;
    let all = i.to_be_bytes();
    if all[..16 - N].iter().any(|&b| b != 0) {
        return Err(PyValueError::new_err(format!(
            "spanguard: {what} must fit in {N} bytes (a malformed id)"
        )));
    }
    let mut out = [0u8; N];
    out.copy_from_slice(&all[16 - N..]);
    Ok(out)
}

/// A C call that writes a tracer's text into a buffer (the length first).
type TextCall = unsafe extern "C" fn(
    *const spanguard_tracer,
    *mut c_char,
    usize,
    *mut usize,
) -> spanguard_result;

impl Tracer {
    /// The text `call` writes (sink_path, endpoint): its length asked
    /// first, then read.
    fn text(&self, py: Python<'_>, call: TextCall, what: &str) -> PyResult<String> {
        let raw = self.raw(py)?;
        let mut len = 0usize;
        // SAFETY: raw is live; a NULL buffer of length 0 asks for the length.
        let code = unsafe { call(raw, std::ptr::null_mut(), 0, &mut len) };
        if code != spanguard_result::BufferTooSmall && !code.is_ok() {
            return Err(report::error(py, code as u32, what));
        }
        let mut buf = vec![0u8; len + 1];
        // SAFETY: buf is valid for its length.
        let code = unsafe { call(raw, buf.as_mut_ptr().cast(), buf.len(), &mut len) };
        if !code.is_ok() {
            return Err(report::error(py, code as u32, what));
        }
        buf.truncate(len);
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn raw(&self, py: Python<'_>) -> PyResult<*mut spanguard_tracer> {
        // A closed tracer is refused here; a call already past this check
        // still has live memory, and the library answers SHUT_DOWN.
        if self.closed.load(Ordering::Acquire) {
            return Err(report::error(
                py,
                spanguard_result::ShutDown as u32,
                "the tracer is closed",
            ));
        }
        Ok(self.raw.load(Ordering::Relaxed))
    }

    /// `span::began` for a begin on this tracer, and SHUT_DOWN raised as
    /// `raw` raises it when the tracer was closed during the begin: a begin
    /// that waits for a slot lets go of the GIL (`tracer::WaitHooks`), so
    /// `close()` on another thread can run between `raw`'s check and the
    /// library's answer. A begin on a closed tracer raises whenever it
    /// meets the close (a non-recording span here looked begun to the
    /// caller, and was never recorded).
    fn began(
        &self,
        py: Python<'_>,
        code: spanguard_result,
        out: spanguard_span,
    ) -> PyResult<spanguard_span> {
        if code == spanguard_result::ShutDown && self.closed.load(Ordering::Acquire) {
            return Err(report::error(
                py,
                spanguard_result::ShutDown as u32,
                "the tracer is closed",
            ));
        }
        began(py, code, out)
    }

    /// `spanguard_flush`'s answer, off the GIL; SHUT_DOWN once closed.
    fn flush_code(&self, py: Python<'_>, timeout_s: f64) -> spanguard_result {
        let Ok(raw) = self.raw(py) else {
            return spanguard_result::ShutDown;
        };
        let raw = RawTracer(raw);
        let ms = timeout_ms(timeout_s);
        py.detach(move || {
            let raw = raw;
            ct::spanguard_flush(raw.0, ms)
        })
    }

    fn span_of(
        slf: &Bound<'_, Self>,
        handle: spanguard_span,
        may_have_tracestate: bool,
        code: spanguard_result,
    ) -> PyResult<Py<Span>> {
        let rejected = Arc::clone(&slf.get().values_rejected);
        Py::new(
            slf.py(),
            Span::new(
                handle,
                rejected,
                slf.clone().into_any().unbind(),
                may_have_tracestate,
                code != spanguard_result::NonRecording,
            ),
        )
    }

    /// Begins with `opts` (the general path) and sets the attributes one
    /// begin could not take. A bad traceparent begins a new trace instead,
    /// counted and warned once.
    fn begin_ex(
        slf: &Bound<'_, Self>,
        raw: *mut spanguard_tracer,
        opts: &mut spanguard_span_options,
        attrs: &Attributes<'_>,
        mapping: Option<&Bound<'_, PyAny>>,
        may_have_tracestate: bool,
    ) -> PyResult<Py<Span>> {
        let py = slf.py();
        let first = attrs.len().min(SPANGUARD_MAX_ATTRIBUTES as usize);
        opts.attributes = attrs.as_ptr();
        opts.attribute_count = first;
        let mut out: spanguard_span = SPANGUARD_SPAN_NONE;
        let (mut code, mut taken) = begin_with_options(py, raw, opts, &mut out)?;
        if code == spanguard_result::InvalidTraceparent {
            slf.get().values_rejected.fetch_add(1, Ordering::Relaxed);
            Problem::BadTraceparent.warn_once(py);
            opts.traceparent = std::ptr::null();
            opts.traceparent_len = 0;
            opts.tracestate = std::ptr::null();
            opts.tracestate_len = 0;
            (code, taken) = begin_with_options(py, raw, opts, &mut out)?;
        }
        if code == spanguard_result::StaleSpan && opts.parent != SPANGUARD_SPAN_NONE {
            // The parent is another tracer's span: a new trace, as for a
            // parent exported already (PARENT_STALE).
            opts.parent = SPANGUARD_SPAN_NONE;
            (code, taken) = begin_with_options(py, raw, opts, &mut out)?;
        }
        let handle = slf.get().began(py, code, out)?;
        let span = Tracer::span_of(slf, handle, may_have_tracestate, code)?;
        if handle != SPANGUARD_SPAN_NONE {
            set_all_where_no_greenlet_waits(py, handle, mapping, attrs, taken)?;
        }
        Ok(span)
    }

    /// Begins a child of an ended span from the context the span kept:
    /// the parent's trace, its span id as the parent, its sampled flag
    /// (the decision a parent-based sampler takes from a parent) and its
    /// tracestate, and a local parent still (not remote), as the child of
    /// an open span would have. The span id is made here, by the
    /// library's own generator: explicit ids are how the C ABI takes a
    /// parent known by its ids.
    fn begin_under_kept(
        slf: &Bound<'_, Self>,
        raw: *mut spanguard_tracer,
        name: &[u8],
        kind: u32,
        parent: &KeptContext,
        mapping: Option<&Bound<'_, PyAny>>,
        start_unix_ns: u64,
    ) -> PyResult<Py<Span>> {
        let attrs = Attributes::from_mapping(mapping, &slf.get().values_rejected);
        let mut opts = Tracer::options();
        opts.kind = kind;
        opts.name = name.as_ptr().cast();
        opts.name_len = name.len();
        opts.start_time_unix_ns = start_unix_ns;
        let ts = parent.tracestate.as_bytes();
        opts.tracestate = ts.as_ptr().cast();
        opts.tracestate_len = ts.len();
        let span_id = spanguard::span::ids::new_span_id();
        // Outlives the begin that reads it.
        let traceparent;
        if parent.passes_through {
            // A disabled tracer's span passes its parent's context on
            // unchanged, and a remote parent is what such a tracer passes
            // through; it records nothing, so nothing is marked remote.
            traceparent = parent.traceparent();
            opts.traceparent = traceparent.as_ptr().cast();
            opts.traceparent_len = traceparent.len();
        } else {
            opts.trace_id = parent.trace_id.as_ptr();
            opts.span_id = span_id.as_ptr();
            opts.parent_span_id = parent.span_id.as_ptr();
            opts.trace_flags = parent.trace_flags as u32;
        }
        Tracer::begin_ex(slf, raw, &mut opts, &attrs, mapping, !ts.is_empty())
    }

    /// `start_span_with_ids` with its ids read (a parent id of zeros
    /// is no parent), for it and for the bridge's own start
    /// (`bridge::SdkSpanHooks`). `scope`: its name, version and schema URL.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_with_ids(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        kind: u32,
        trace_id: [u8; 16],
        span_id: [u8; 8],
        parent_span_id: Option<[u8; 8]>,
        trace_flags: u32,
        parent_is_remote: bool,
        tracestate: Option<&Bound<'_, PyAny>>,
        start_time: Option<&Bound<'_, PyAny>>,
        scope: [Option<&Bound<'_, PyAny>>; 3],
        attributes: Option<&Bound<'_, PyAny>>,
        limited_by_caller: bool,
    ) -> PyResult<Py<Span>> {
        let py = slf.py();
        let this = slf.get();
        let raw = this.raw(py)?;
        let parent_span_id = parent_span_id.filter(|id| *id != [0; 8]);
        let [scope_name, scope_version, scope_schema_url] = scope;
        let attrs = Attributes::from_mapping(attributes, &this.values_rejected);
        let name = utf8(name);
        let text = |t: Option<&Bound<'_, PyAny>>| {
            t.filter(|t| !t.is_none())
                .map(|t| utf8(t).as_bytes().to_vec())
        };
        let (ts, sn, sv) = (text(tracestate), text(scope_name), text(scope_version));
        let su = text(scope_schema_url);
        let mut opts = Tracer::options();
        opts.kind = kind;
        opts.name = name.as_bytes().as_ptr().cast();
        opts.name_len = name.as_bytes().len();
        opts.trace_id = trace_id.as_ptr();
        opts.span_id = span_id.as_ptr();
        opts.parent_span_id = parent_span_id
            .as_ref()
            .map_or(std::ptr::null(), |p| p.as_ptr());
        opts.trace_flags = trace_flags;
        if parent_is_remote {
            opts.flags |= SPANGUARD_SPAN_OPTION_PARENT_IS_REMOTE;
        }
        if limited_by_caller {
            opts.flags |= SPANGUARD_SPAN_OPTION_LIMITED_BY_CALLER;
        }
        for (field, len, value) in [
            (&mut opts.tracestate, &mut opts.tracestate_len, &ts),
            (&mut opts.scope_name, &mut opts.scope_name_len, &sn),
            (&mut opts.scope_version, &mut opts.scope_version_len, &sv),
            (
                &mut opts.scope_schema_url,
                &mut opts.scope_schema_url_len,
                &su,
            ),
        ] {
            if let Some(v) = value {
                *field = v.as_ptr().cast();
                *len = v.len();
            }
        }
        opts.start_time_unix_ns = crate::values::unix_time_ns(start_time, &this.values_rejected);
        let may_have_tracestate = ts.as_ref().is_some_and(|t| !t.is_empty());
        let began = Tracer::begin_ex(slf, raw, &mut opts, &attrs, attributes, may_have_tracestate);
        match began {
            // The library refuses an invalid span context as an argument
            // out of range; saying "a span kind is KIND_*" to a bridge
            // whose span had zero ids sent its user looking at the kind.
            Err(e) if e.is_instance_of::<PyValueError>(py) => match zero_id(&trace_id, &span_id) {
                Some(which) => Err(PyValueError::new_err(format!(
                    "spanguard: the span {:?} was refused: its {which} is all zero (an invalid span context, \
                         which OpenTelemetry never exports)",
                    String::from_utf8_lossy(name.as_bytes())
                ))),
                None => Err(e),
            },
            r => r,
        }
    }

    fn options() -> spanguard_span_options {
        // SAFETY: all-zero is a valid options struct; options_init sets
        // struct_size.
        let mut opts: spanguard_span_options = unsafe { std::mem::zeroed() };
        // SAFETY: opts is a valid struct.
        unsafe {
            c::spanguard_span_options_init_sized(
                &mut opts,
                std::mem::size_of::<spanguard_span_options>(),
            )
        };
        opts
    }
}

#[pymethods]
impl Tracer {
    /// A tracer from keyword settings (the `spanguard_config` fields);
    /// with `from_env` (the default) the OTEL_* and SPANGUARD_* variables
    /// apply on top.
    #[new]
    #[pyo3(signature = (from_env=true, **settings))]
    fn new(py: Python<'_>, from_env: bool, settings: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let mut keep = Vec::new();
        let cfg = config(py, settings, &mut keep)?;
        let mut raw: *mut spanguard_tracer = std::ptr::null_mut();
        let mut message = [0u8; ct::SPANGUARD_ERROR_MESSAGE_SIZE as usize];
        let mut message_len = 0usize;
        // SAFETY: cfg and its strings (in keep) are valid for the call; raw
        // is a valid out pointer; message is valid for its length.
        let code = unsafe {
            ct::spanguard_tracer_new_with_error(
                &cfg,
                from_env,
                &mut raw,
                message.as_mut_ptr().cast(),
                message.len(),
                &mut message_len,
            )
        };
        if !code.is_ok() {
            // The library's sentence names the variable or field and its value.
            let end = message
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(message.len());
            let why = String::from_utf8_lossy(&message[..end]);
            return Err(report::error(
                py,
                code as u32,
                &format!("tracer_new: {why}"),
            ));
        }
        // Its news to `logging` (`events`: queued, logged by Python code),
        // set without the GIL: the exporter calls it the moment it is set
        // when a setting was ignored (held news). A set that waited for
        // that call while holding the GIL hung the process when the
        // callback took the GIL (it no longer does, and the library no
        // longer waits for a first callback; this stays safe if either did).
        let raw_for_set = RawTracer(raw);
        py.detach(move || {
            let raw_for_set = raw_for_set;
            ct::spanguard_set_error_callback(
                raw_for_set.0,
                Some(crate::events::log_event),
                std::ptr::null_mut(),
            )
        });
        Ok(Tracer {
            raw: AtomicPtr::new(raw),
            closed: AtomicBool::new(false),
            values_rejected: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Begins a span. Its parent is `parent` (a Span), else the remote
    /// parent in `traceparent` (with `tracestate`), else the current span
    /// of this context, else none (a new trace). `start_time` in Unix
    /// nanoseconds (default now). `kind`: see `kinds` (default INTERNAL).
    /// Never raises for what it records; a span that cannot be recorded
    /// (tracer shut down, no slot free) records nothing.
    #[pyo3(signature = (name, kind=None, parent=None, attributes=None, traceparent=None, tracestate=None, start_time=None))]
    #[allow(clippy::too_many_arguments)]
    fn start_span(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        kind: Option<&Bound<'_, PyAny>>,
        parent: Option<&Bound<'_, PyAny>>,
        attributes: Option<&Bound<'_, PyAny>>,
        traceparent: Option<&Bound<'_, PyAny>>,
        tracestate: Option<&Bound<'_, PyAny>>,
        start_time: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<Span>> {
        let py = slf.py();
        let kind = crate::kinds::kind_of(kind)?;
        let this = slf.get();
        let raw = this.raw(py)?;
        let parent_span = match parent {
            Some(p) if !p.is_none() => match p.cast::<Span>() {
                Ok(s) => Some(s.clone()),
                Err(_) => return Err(PyTypeError::new_err("parent must be a spanguard Span")),
            },
            _ if traceparent.is_some_and(|t| !t.is_none()) => None,
            _ => current_span(py),
        };
        let parent_span = parent_span.as_ref().map(|p| p.get());
        let name = utf8(name);
        let n = name.as_bytes();
        let ended_parent = parent_span
            .filter(|p| p.is_of(slf.as_any()))
            .and_then(Span::kept);
        if let Some(kept) = ended_parent {
            // An ended parent: its handle may name another span by now, so
            // its children begin from the context it kept. (Another
            // tracer's span parents nothing here, ended or not.)
            let start = crate::values::unix_time_ns(start_time, &this.values_rejected);
            return Tracer::begin_under_kept(slf, raw, n, kind, kept, attributes, start);
        }
        let parent_handle = parent_span.map_or(SPANGUARD_SPAN_NONE, |p| p.handle);
        // A child inherits its local parent's tracestate.
        let inherits_tracestate = parent_span.is_some_and(|p| p.may_have_tracestate);
        let simple = attributes.is_none_or(|a| a.is_none())
            && traceparent.is_none_or(|t| t.is_none())
            && start_time.is_none_or(|t| t.is_none());
        if simple {
            let mut out = SPANGUARD_SPAN_NONE;
            let mut code = begin_plain(py, raw, n, parent_handle, kind, &mut out)?;
            if code == spanguard_result::StaleSpan && parent_handle != SPANGUARD_SPAN_NONE {
                // The parent is another tracer's span: a new trace, as for
                // a parent exported already (PARENT_STALE).
                code = begin_plain(py, raw, n, SPANGUARD_SPAN_NONE, kind, &mut out)?;
            }
            let handle = this.began(py, code, out)?;
            return Tracer::span_of(slf, handle, inherits_tracestate, code);
        }
        let attrs = Attributes::from_mapping(attributes, &this.values_rejected);
        let mut opts = Tracer::options();
        opts.kind = kind;
        opts.name = n.as_ptr().cast();
        opts.name_len = n.len();
        opts.parent = parent_handle;
        opts.start_time_unix_ns = crate::values::unix_time_ns(start_time, &this.values_rejected);
        let tp = traceparent.filter(|t| !t.is_none()).map(utf8);
        let ts = tracestate.filter(|t| !t.is_none()).map(utf8);
        let mut may_have_tracestate = inherits_tracestate;
        if parent_handle == SPANGUARD_SPAN_NONE
            && let Some(tp) = &tp
        {
            opts.traceparent = tp.as_bytes().as_ptr().cast();
            opts.traceparent_len = tp.as_bytes().len();
            if let Some(ts) = &ts {
                opts.tracestate = ts.as_bytes().as_ptr().cast();
                opts.tracestate_len = ts.as_bytes().len();
                may_have_tracestate = !ts.as_bytes().is_empty();
            }
        }
        Tracer::begin_ex(slf, raw, &mut opts, &attrs, attributes, may_have_tracestate)
    }

    /// Begins a span with the ids another SDK gave it (the OpenTelemetry
    /// bridge): trace id (16 bytes or int), span id and parent span id (8
    /// bytes or int; parent None for a root), W3C trace flags, tracestate,
    /// start time, kind, instrumentation scope (name, version, schema URL)
    /// and attributes. `limited_by_caller`: the SDK applied its span
    /// limits already, so the tracer's count and value length limits do
    /// not apply to this span (what the SDK kept is kept whole).
    #[pyo3(signature = (name, kind, trace_id, span_id, parent_span_id, trace_flags, parent_is_remote=false, tracestate=None, start_time=None, scope_name=None, scope_version=None, attributes=None, scope_schema_url=None, limited_by_caller=false))]
    #[allow(clippy::too_many_arguments)]
    fn start_span_with_ids(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        kind: u32,
        trace_id: &Bound<'_, PyAny>,
        span_id: &Bound<'_, PyAny>,
        parent_span_id: Option<&Bound<'_, PyAny>>,
        trace_flags: u32,
        parent_is_remote: bool,
        tracestate: Option<&Bound<'_, PyAny>>,
        start_time: Option<&Bound<'_, PyAny>>,
        scope_name: Option<&Bound<'_, PyAny>>,
        scope_version: Option<&Bound<'_, PyAny>>,
        attributes: Option<&Bound<'_, PyAny>>,
        scope_schema_url: Option<&Bound<'_, PyAny>>,
        limited_by_caller: bool,
    ) -> PyResult<Py<Span>> {
        let trace_id = id_bytes::<16>(trace_id)?;
        let span_id = id_bytes::<8>(span_id)?;
        let parent_span_id = match parent_span_id.filter(|p| !p.is_none()) {
            Some(p) => Some(id_bytes::<8>(p)?),
            None => None,
        };
        Tracer::start_with_ids(
            slf,
            name,
            kind,
            trace_id,
            span_id,
            parent_span_id,
            trace_flags,
            parent_is_remote,
            tracestate,
            start_time,
            [scope_name, scope_version, scope_schema_url],
            attributes,
            limited_by_caller,
        )
    }

    /// Sets resource attributes over the tracer's own for every batch
    /// exported from now on: what the OpenTelemetry bridge passes for the
    /// SDK provider's Resource, so that spans arrive under its
    /// service.name and attributes. Scalars and lists or tuples of one
    /// scalar type (any number; a bytes value is left out); a
    /// service.name that is the SDK's fallback ("unknown_service...")
    /// leaves the tracer's. A later call replaces an earlier one's.
    /// Raises SpanguardError (SHUT_DOWN) after shutdown, as every call
    /// that configures the tracer does (the bridge ignores it).
    fn set_resource(&self, py: Python<'_>, attributes: &Bound<'_, PyAny>) -> PyResult<()> {
        let raw = self.raw(py)?;
        let attrs = Attributes::from_mapping(Some(attributes), &self.values_rejected);
        let n = attrs.len();
        // SAFETY: raw is a live tracer; the attributes (kept alive by
        // `attrs`) are valid for the call.
        let code = unsafe { ct::spanguard_tracer_set_resource(raw, attrs.as_ptr(), n) };
        if code != spanguard_result::Ok {
            return Err(report::error(py, code as u32, "set_resource"));
        }
        Ok(())
    }

    /// Sets the attributes of an instrumentation scope (an OpenTelemetry
    /// tracer's, given to `get_tracer`), sent with that scope's spans in
    /// every batch exported from now on; the scope is its name, version and
    /// schema URL as spans give them (`start_span_with_ids`). Scalars and
    /// arrays (any number); a later call replaces an earlier one's, and no
    /// attributes take them away. At most 256 scopes have attributes: a
    /// new one past that raises SpanguardError (LIMIT_REACHED).
    #[pyo3(signature = (name, version=None, schema_url=None, attributes=None))]
    fn set_scope_attributes(
        &self,
        py: Python<'_>,
        name: &str,
        version: Option<&str>,
        schema_url: Option<&str>,
        attributes: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let raw = self.raw(py)?;
        let attrs = Attributes::from_mapping(attributes, &self.values_rejected);
        let n = attrs.len();
        let (version, schema_url) = (version.unwrap_or(""), schema_url.unwrap_or(""));
        // SAFETY: raw is a live tracer; the texts and the attributes (kept
        // alive by `attrs`) are valid for the call.
        let code = unsafe {
            ct::spanguard_tracer_set_scope_attributes(
                raw,
                name.as_ptr().cast(),
                name.len(),
                version.as_ptr().cast(),
                version.len(),
                schema_url.as_ptr().cast(),
                schema_url.len(),
                attrs.as_ptr(),
                n,
            )
        };
        if code != spanguard_result::Ok {
            return Err(report::error(py, code as u32, "set_scope_attributes"));
        }
        Ok(())
    }

    /// Waits until every span ended before the call is delivered or
    /// spooled, at most `timeout_s`. True when it was; False on timeout,
    /// and after shutdown or close.
    #[pyo3(signature = (timeout_s=5.0))]
    fn flush(&self, py: Python<'_>, timeout_s: f64) -> PyResult<bool> {
        // After shutdown, False rather than SpanguardError: the SDK's
        // force_flush answers so after its shutdown (the specification
        // asks calls after Shutdown to be ignored gracefully), and a late
        // flush (an exit path, a library's own cleanup) must not raise.
        if self.closed.load(Ordering::Acquire) {
            return Ok(false);
        }
        let code = self.flush_code(py, timeout_s);
        if code == spanguard_result::ShutDown {
            return Ok(false);
        }
        Ok(flush_status(py, code, "flush")? != TIMED_OUT)
    }

    /// Like `flush`: "delivered", "spooled" (done, but some spans only
    /// reached the spool while the backend was down) or "timed_out".
    /// After shutdown it raises SpanguardError (SHUT_DOWN): there is no
    /// status to give.
    #[pyo3(signature = (timeout_s=5.0))]
    fn flush_status(&self, py: Python<'_>, timeout_s: f64) -> PyResult<&'static str> {
        self.raw(py)?;
        flush_status(py, self.flush_code(py, timeout_s), "flush")
    }

    /// Flushes, exports the spans still open (marked `spanguard.unended`),
    /// stops. True when done in time; safe to call twice.
    #[pyo3(signature = (timeout_s=5.0))]
    fn shutdown(&self, py: Python<'_>, timeout_s: f64) -> PyResult<bool> {
        Ok(self.shutdown_status(py, timeout_s)? != TIMED_OUT)
    }

    /// Like `shutdown`, saying what `flush_status` says.
    #[pyo3(signature = (timeout_s=5.0))]
    fn shutdown_status(&self, py: Python<'_>, timeout_s: f64) -> PyResult<&'static str> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(DELIVERED);
        }
        let raw = RawTracer(self.raw.load(Ordering::Relaxed));
        let ms = timeout_ms(timeout_s);
        let code = py.detach(move || {
            let raw = raw;
            ct::spanguard_shutdown(raw.0, ms)
        });
        match code {
            spanguard_result::ShutDown => Ok(DELIVERED),
            c => flush_status(py, c, "shutdown"),
        }
    }

    /// Shuts the tracer down (if needed), as `shutdown` with the tracer's
    /// export timeout. Safe to call twice, and while other threads still
    /// use the tracer or its spans: the tracer raises SpanguardError when
    /// used after it, a span's recording calls do nothing, and its memory
    /// is freed with this object.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let raw = RawTracer(self.raw.load(Ordering::Relaxed));
        py.detach(move || {
            let raw = raw;
            // SAFETY: raw came from tracer_new and lives until Drop.
            ct::spanguard_tracer_close(raw.0)
        });
        Ok(())
    }

    /// The file the local sink appends to (where spans go when no endpoint
    /// is set), so a program can say where its spans went; "" with an
    /// endpoint.
    fn sink_path(&self, py: Python<'_>) -> PyResult<String> {
        self.text(py, ct::spanguard_tracer_sink_path, "sink_path")
    }

    /// The OTLP/HTTP URL the tracer sends its spans to (given, or from
    /// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT);
    /// "" when it writes to the local sink or discards. The OpenTelemetry
    /// bridge compares it with the SDK's own exporter's, to say when every
    /// span goes to one backend twice.
    fn endpoint(&self, py: Python<'_>) -> PyResult<String> {
        self.text(py, ct::spanguard_tracer_endpoint, "endpoint")
    }

    /// Whether close() has been called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The tracer's counters (`spanguard_counters`) and the binding's
    /// `values_rejected`, as a dict.
    fn _counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let raw = self.raw(py)?;
        let mut c = spanguard_counters {
            struct_size: std::mem::size_of::<spanguard_counters>() as u32,
            ..Default::default()
        };
        // SAFETY: raw is live; c is a valid struct of its struct_size.
        let code = unsafe { ct::spanguard_stats(raw, &mut c) };
        if !code.is_ok() {
            return Err(report::error(py, code as u32, "stats"));
        }
        let d = PyDict::new(py);
        // Each key is its field's own name: one cannot be copied under another's.
        macro_rules! counters {
            ($($field:ident),* $(,)?) => {
                $(d.set_item(stringify!($field), c.$field)?;)*
            };
        }
        counters!(
            spans_begun,
            spans_ended,
            spans_exported,
            queue_depth,
            spans_open,
            dropped_buffer_full,
            dropped_export_failed,
            dropped_rejected,
            dropped_spool_overflow,
            spans_unended_at_shutdown,
            batches_sent,
            batches_failed,
            bytes_sent,
            retries,
            attributes_dropped,
            events_dropped,
            links_dropped,
            values_truncated,
            utf8_replaced,
            spooled_batches,
            spooled_spans,
            replayed_batches,
            replayed_spans,
            spool_bytes,
            recovered_spans,
            exporter_throttled_ns,
            spans_unsampled,
            dropped_replay_failed,
            dropped_replay_rejected,
            exporter_panics,
            files_set_aside,
            payload_waits,
            payload_waits_cut,
            slot_waits,
            slot_wait_ns,
            spans_interrupted_at_shutdown,
            exporter_waits_ran_out,
            host_handler_waits_ran_out,
        );
        d.set_item(
            "values_rejected",
            self.values_rejected.load(Ordering::Relaxed),
        )?;
        Ok(d)
    }
}

/// `spanguard_span_begin` for a span with a name alone, by the call that
/// never waits; where every slot is taken, `begin_when_full` decides how
/// to wait. The same instructions as the call that may wait while a slot
/// is free (`spanguard_span_try_begin_packed` with no attributes is its
/// path, `may_wait` false).
fn begin_plain(
    py: Python<'_>,
    raw: *mut spanguard_tracer,
    name: &[u8],
    parent: spanguard_span,
    kind: u32,
    out: &mut spanguard_span,
) -> PyResult<spanguard_result> {
    // SAFETY: raw is a live tracer; name is valid for its length; no
    // attributes (NULL, 0).
    let code = unsafe {
        spanguard::ffi::packed::spanguard_span_try_begin_packed(
            raw,
            name.as_ptr().cast(),
            name.len(),
            parent,
            kind,
            std::ptr::null(),
            0,
            out,
        )
    };
    if code != spanguard_result::WouldWait {
        return Ok(code);
    }
    let mut opts = Tracer::options();
    opts.name = name.as_ptr().cast();
    opts.name_len = name.len();
    opts.parent = parent;
    opts.kind = kind;
    Ok(begin_when_full(py, raw, &mut opts, out)?.0)
}

/// `spanguard_span_begin_ex` as `opts` says, by the call that never
/// waits (`SPANGUARD_SPAN_OPTION_NO_WAIT`); where it would have,
/// `begin_when_full` decides how to wait. The answer, and how many of
/// `opts`' attributes the span was begun with (the caller sets the rest).
fn begin_with_options(
    py: Python<'_>,
    raw: *mut spanguard_tracer,
    opts: &mut spanguard_span_options,
    out: &mut spanguard_span,
) -> PyResult<(spanguard_result, usize)> {
    let flags = opts.flags;
    opts.flags = flags | SPANGUARD_SPAN_OPTION_NO_WAIT;
    // SAFETY: opts and everything it points to are valid for the call.
    let code = unsafe { c::spanguard_span_begin_ex(raw, opts, out) };
    opts.flags = flags;
    if code != spanguard_result::WouldWait {
        return Ok((code, opts.attribute_count));
    }
    begin_when_full(py, raw, opts, out)
}

/// A begin that found every slot taken (or its values' payload chunks)
/// under the full policy `wait`. On a thread of its own: the native wait,
/// the GIL let go of (the wait hooks). In a greenlet of a gevent or
/// eventlet hub, whose OS thread runs every greenlet of the worker, that
/// wait stopped them all (every request of a server at its limit stalled
/// up to `full_wait_ms` a begin): here the greenlet lets the hub run
/// between tries that never wait, until the deadline the native wait would
/// have had, then begins as that wait's end would (`WAITED`: dropped and
/// counted when the slots are still taken). What a try points to stays
/// valid meanwhile: `str` objects and copies the caller holds. An
/// exception raised in the greenlet while it yields (a kill, a
/// gevent.Timeout) is raised here, nothing begun. The answer, and how
/// many of `opts`' attributes the span was begun with.
#[cold]
#[inline(never)]
fn begin_when_full(
    py: Python<'_>,
    raw: *mut spanguard_tracer,
    opts: &mut spanguard_span_options,
    out: &mut spanguard_span,
) -> PyResult<(spanguard_result, usize)> {
    let attribute_count = opts.attribute_count;
    let yield_to_hub = py
        .import("spanguard._green")
        .and_then(|green| green.call_method0("yield_to_hub"))
        .ok()
        .filter(|y| !y.is_none());
    let flags = opts.flags;
    let Some(yield_to_hub) = yield_to_hub else {
        // SAFETY: as in `begin_with_options`.
        let code = unsafe { c::spanguard_span_begin_ex(raw, opts, out) };
        return Ok((code, attribute_count));
    };
    // The greenlet's begins take no attributes: the caller sets them once
    // begun, where a wait for their payload chunks stops no greenlet
    // (`set_all_where_no_greenlet_waits`). WOULD_WAIT does not say whether
    // a begin with attributes would have waited for a slot or for chunks;
    // one without says a slot. A begin with attributes that waited for a
    // slot was counted nowhere (stats and `spanguard why` said no begin
    // waited), and counted as a slot wait, one that waited for chunks, a
    // slot free, sent `spanguard why` asking for more slots where the
    // payload pool was short.
    opts.attribute_count = 0;
    opts.flags = flags | SPANGUARD_SPAN_OPTION_NO_WAIT;
    let restore = |opts: &mut spanguard_span_options| {
        opts.flags = flags;
        opts.attribute_count = attribute_count;
    };
    if attribute_count > 0 {
        // SAFETY: as in `begin_with_options`.
        let code = unsafe { c::spanguard_span_begin_ex(raw, opts, out) };
        if code != spanguard_result::WouldWait {
            // A slot was free: the attributes' chunks were waited for.
            restore(opts);
            return Ok((code, 0));
        }
    }
    // SAFETY: raw is a live tracer.
    let wait_ms = unsafe { ct::spanguard_tracer_full_wait_ms(raw) };
    let started = std::time::Instant::now();
    let deadline = started + std::time::Duration::from_millis(wait_ms.into());
    // Counted as a native wait counts itself (`slot_waits`), however it
    // ends: stats and `spanguard why` said no begin waited.
    let count_wait = || {
        let waited_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // SAFETY: raw is a live tracer.
        unsafe { ct::spanguard_tracer_count_slot_wait(raw, waited_ns) }
    };
    let code = loop {
        if let Err(e) = yield_to_hub.call0() {
            restore(opts);
            count_wait();
            return Err(e);
        }
        // SAFETY: as in `begin_with_options`.
        let code = unsafe { c::spanguard_span_begin_ex(raw, opts, out) };
        if code != spanguard_result::WouldWait {
            break code;
        }
        if std::time::Instant::now() >= deadline {
            opts.flags = flags | SPANGUARD_SPAN_OPTION_WAITED;
            // SAFETY: as in `begin_with_options`.
            break unsafe { c::spanguard_span_begin_ex(raw, opts, out) };
        }
    };
    restore(opts);
    count_wait();
    Ok((code, 0))
}

const DELIVERED: &str = "delivered";
const SPOOLED: &str = "spooled";
const TIMED_OUT: &str = "timed_out";

/// What a flush or shutdown result says, as `spanguard.FlushStatus` values.
fn flush_status(py: Python<'_>, code: spanguard_result, what: &str) -> PyResult<&'static str> {
    match code {
        spanguard_result::Timeout => Ok(TIMED_OUT),
        spanguard_result::Spooled => Ok(SPOOLED),
        c if c.is_ok() => Ok(DELIVERED),
        c => Err(report::error(py, c as u32, what)),
    }
}
