//! Tracer lifecycle entry points: config, new, flush, shutdown, free, stats,
//! callback, version.

use std::ffi::{CStr, c_char, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::time::Duration;

use super::boundary::{ffi_boundary, require_non_null};
use super::result::spanguard_result;
use super::types::*;
use crate::config::{Compression, FullPolicy, Protocol, TracerConfig};
use crate::pipeline::{ExportEvent, FlushOutcome};
use crate::span::sampler::{RootSampler, Sampler};
use crate::tracer::{SpanError, Tracer, TracerError};

/// A tracer: records spans and exports them from its own thread. Opaque;
/// made by `spanguard_tracer_new*`, freed by `spanguard_tracer_free`. Every
/// call taking a tracer may be made from any thread at once, except
/// `spanguard_tracer_free`.
pub struct spanguard_tracer {
    /// 1..=255: the tracer's number in span handles; 0 for a disabled
    /// tracer (and a forked child's that stays shut down or got no number).
    pub(crate) id: u8,
    /// The tracer in `tracer` once made, for the hot path (one load and a
    /// test, as an `Option<Tracer>` was); null until then, and for none.
    live: AtomicPtr<Tracer>,
    /// The tracer, set once: when made, or in a forked child at its first
    /// use (`made_after_fork`). Set to None: disabled (OTEL_SDK_DISABLED,
    /// every call succeeds and records nothing), or a child's that could
    /// not be made, or one shut down before it was made (`shut_down_unmade`).
    pub(crate) tracer: OnceLock<Option<Tracer>>,
    /// In a forked child: what its tracer is made from at its first use.
    /// Written only by the fork handler, when the child has one thread.
    forked: Option<Box<ForkedTracer>>,
    /// Shut down with no tracer made (before the fork in the parent, or in
    /// the child before its first use): calls answer SHUT_DOWN.
    shut_down_unmade: AtomicBool,
}

/// What a forked child's tracer is made from: its parent's config and what
/// the parent's was given at run time (None: another thread of the parent
/// was setting it at the fork).
struct ForkedTracer {
    config: TracerConfig,
    given: Option<crate::tracer::RunTimeGiven>,
}

/// Why a wrapper has no tracer to call.
pub(crate) enum Absent {
    /// Disabled, or a forked child's could not be made: nothing recorded.
    Disabled,
    /// Shut down before a tracer was made.
    ShutDown,
}

impl spanguard_tracer {
    fn new(id: u8, tracer: Option<Tracer>) -> spanguard_tracer {
        spanguard_tracer {
            id,
            live: AtomicPtr::new(std::ptr::null_mut()),
            tracer: OnceLock::from(tracer),
            forked: None,
            shut_down_unmade: AtomicBool::new(false),
        }
    }

    /// The tracer to call, made first in a forked child that has not used
    /// it yet. Hot path: a load and a test when it is there.
    #[inline(always)]
    pub(crate) fn made(&self) -> Result<&Tracer, Absent> {
        let tracer = self.live.load(Ordering::Acquire);
        if tracer.is_null() {
            return self.made_after_fork();
        }
        // SAFETY: `live` points into `self.tracer`, set for good, which
        // lives as long as the wrapper (`publish`).
        Ok(unsafe { &*tracer })
    }

    /// Publishes the tracer just made (in `self.tracer`) for `made` and for
    /// span handles (`live_tracer`). Two first uses at once publish the
    /// same one.
    fn publish(&self, tracer: &Tracer) {
        let ptr = (tracer as *const Tracer).cast_mut();
        self.live.store(ptr, Ordering::Release);
        LIVE[self.id as usize].store(ptr, Ordering::Release);
    }

    /// `made` when the tracer is not there: disabled, shut down, or a
    /// forked child's first use, which makes it. Two first uses at once
    /// make one tracer (the other waits for it).
    #[cold]
    #[inline(never)]
    fn made_after_fork(&self) -> Result<&Tracer, Absent> {
        let made = match &self.forked {
            Some(forked) => self.tracer.get_or_init(|| self.make(forked)),
            None => self.tracer.get_or_init(|| None),
        };
        match made {
            Some(tracer) => {
                self.publish(tracer);
                Ok(tracer)
            }
            None if self.shut_down_unmade.load(Ordering::Acquire) => Err(Absent::ShutDown),
            None => Err(Absent::Disabled),
        }
    }

    /// Not made yet in this forked child (nothing recorded in it so far).
    fn unmade_in_child(&self) -> bool {
        self.forked.is_some() && self.tracer.get().is_none()
    }

    /// Makes a forked child's tracer, at its first use: a new tracer with
    /// its parent's config and what the parent's was given at run time (new
    /// slots, thread, files, under the number the fork handler reserved),
    /// and the child's signal watchdog if the fork put it off. None when it
    /// cannot be made (said once on stderr, or the child's spans would
    /// vanish with nothing but "not recorded" codes to show for it), or
    /// the wrapper was shut down first.
    fn make(&self, forked: &ForkedTracer) -> Option<Tracer> {
        if self.shut_down_unmade.load(Ordering::Acquire) {
            return None;
        }
        crate::watchdog::signals::restart_after_fork();
        let tracer = Tracer::new_in_forked_child(forked.config.clone(), forked.given.clone())?;
        crate::registry::publish(self.id, tracer.pipeline());
        crate::watchdog::stuck_exporter::look_at_new_tracer();
        Some(tracer)
    }
}

/// The C wrappers by id (made or not), for the fork handler, which must
/// let go of the tracer inside each one.
static WRAPPERS: [AtomicPtr<spanguard_tracer>; 256] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; 256];

/// The made tracers by id, for span handles (which carry the id).
static LIVE: [AtomicPtr<Tracer>; 256] = [const { AtomicPtr::new(std::ptr::null_mut()) }; 256];

/// The live tracer with number `id`, for span handles (which carry it).
#[inline]
pub(crate) fn live_tracer(id: u8) -> Option<&'static Tracer> {
    let ptr = LIVE[id as usize].load(Ordering::Acquire);
    if ptr.is_null() {
        return None;
    }
    // SAFETY: a tracer stays in its wrapper until spanguard_tracer_free,
    // which unpublishes it first, and the C API requires that freeing a
    // tracer does not race with other calls on it or its spans.
    Some(unsafe { &*ptr })
}

/// Runs in a forked child, which has one thread: this one. The inherited
/// tracers' exporter and watchdog threads did not come along, their spans
/// are the parent's to export, and their connection and files are shared
/// with the parent. Each is forgotten (leaked, never run, so nothing of
/// the parent's is exported twice), and its wrapper gets a new number (so
/// handles from before the fork are stale rather than aliasing new spans)
/// and what a new tracer is made from at the child's first use of it
/// (`made_after_fork`): most children exec or exit without one (a shell
/// command an agent runs), and making it here cost each of them a thread,
/// files in the spool directory and a 256 MiB mapping. A tracer shut
/// down before the fork stays shut down. The wrappers are collected
/// first: one is published under its new number, which a walk over the
/// table would otherwise reach again.
unsafe extern "C" fn after_fork_in_child() {
    let _ = std::panic::catch_unwind(|| {
        crate::watchdog::fork::reset_process_state_in_child();
        // Released below: an exit hook or watchdog of the parent that was
        // taking its pipelines at the fork is not here to finish.
        crate::registry::forget_takers_in_child();
        // A tracer another thread of the parent was starting at the fork
        // (in the registry, not yet in a wrapper) is the parent's, and so
        // is its number: kept, the child's exit flush and watchdog waited
        // for its exporter, which the child does not have.
        for (id, wrapper) in WRAPPERS.iter().enumerate().skip(1) {
            if wrapper.load(Ordering::Acquire).is_null() {
                crate::registry::release(id as u8);
            }
        }
        for slot in &LIVE {
            slot.store(std::ptr::null_mut(), Ordering::Release);
        }
        let inherited: Vec<*mut spanguard_tracer> = WRAPPERS
            .iter()
            .skip(1)
            .map(|slot| slot.swap(std::ptr::null_mut(), Ordering::AcqRel))
            .filter(|ptr| !ptr.is_null())
            .collect();
        for ptr in inherited {
            // SAFETY: only this thread exists in the child, and the wrapper
            // lives until spanguard_tracer_free, which cannot run meanwhile.
            let wrapper = unsafe { &mut *ptr };
            // A first use another thread of the parent was in the middle
            // of stays unfinished here (never waited for: get() looks).
            *wrapper.live.get_mut() = std::ptr::null_mut();
            let old = std::mem::replace(&mut wrapper.tracer, OnceLock::new());
            let shut_down = match old.get() {
                Some(Some(parent)) if parent.is_shut_down() => true,
                Some(Some(parent)) => {
                    wrapper.forked = Some(Box::new(ForkedTracer {
                        config: parent.config().clone(),
                        given: parent.given_at_run_time(),
                    }));
                    false
                }
                // Unmade, being made, or not made (tried again here).
                _ => *wrapper.shut_down_unmade.get_mut() || wrapper.forked.is_none(),
            };
            std::mem::forget(old);
            let old_id = wrapper.id;
            let new_id = if shut_down {
                None
            } else {
                crate::registry::reserve()
            };
            crate::registry::release(old_id);
            match new_id {
                Some(id) => {
                    wrapper.id = id;
                    WRAPPERS[id as usize].store(ptr, Ordering::Release);
                }
                None => {
                    // Answers as it did in the parent (shut down), or, with
                    // no number left, records nothing.
                    *wrapper.shut_down_unmade.get_mut() = shut_down;
                    wrapper.id = 0;
                    wrapper.forked = None;
                    wrapper.tracer = OnceLock::from(None);
                }
            }
        }
    });
}

/// Registers the fork handlers as the library loads: a constructor in
/// `.init_array`, run by the dynamic loader before `main` or at `dlopen`
/// (Python's import, Node's `koffi.load`), as C libraries register
/// theirs. Registered at the first tracer, a child forked while another
/// thread of a parent that had made none was in Rust's `set_var` (std's
/// environment lock held at the fork, which no handler resets) read its
/// settings through that lock at its first tracer and waited forever
/// (tests/fork_first_thread_during_set_var.rs). What it does at load is
/// an mmap and `pthread_atfork`: no thread, no lock another thread may
/// hold, nothing of the loader's (safe under `dlopen`'s lock). The
/// handlers cost a fork of a process with no tracer a few atomic stores;
/// Go's runtime forks with raw clone, which runs none. Not in the crate's
/// own unit tests, which fork alone and register them themselves
/// (`register_fork_handlers`).
#[cfg(all(target_os = "linux", not(test)))]
#[used]
#[unsafe(link_section = ".init_array")]
static REGISTER_FORK_HANDLERS_AT_LOAD: unsafe extern "C" fn() = register_fork_handlers_at_load;

#[cfg(all(target_os = "linux", not(test)))]
unsafe extern "C" fn register_fork_handlers_at_load() {
    // A panic must not unwind into the loader.
    let _ = std::panic::catch_unwind(|| {
        crate::watchdog::ensure_fork_hook(after_fork_in_child);
    });
}

/// The fork handlers a tracer registers, for a test that forks with no
/// tracer made.
#[cfg(test)]
pub(crate) fn register_fork_handlers() {
    crate::watchdog::ensure_fork_hook(after_fork_in_child);
}

/// Fills `cfg` with every default and sets `struct_size`; pass
/// `sizeof *cfg` as `cfg_size`. Only that many bytes are written, so a
/// program built against an older, smaller struct is never overrun by a
/// newer library. `SPANGUARD_RESULT_INVALID_ARGUMENT` when `cfg_size` is
/// smaller than any version of the struct. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_config_init(
    cfg: *mut spanguard_config,
    cfg_size: usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(cfg);
        if cfg_size < std::mem::offset_of!(spanguard_config, service_name) {
            return spanguard_result::InvalidArgument;
        }
        let n = cfg_size.min(std::mem::size_of::<spanguard_config>());
        let d = TracerConfig::default();
        let c = spanguard_config {
            struct_size: n as u32,
            protocol: SPANGUARD_PROTOCOL_HTTP_PROTOBUF,
            compression: SPANGUARD_COMPRESSION_NONE,
            full_policy: SPANGUARD_FULL_POLICY_WAIT,
            service_name: std::ptr::null(),
            resource_attributes: std::ptr::null(),
            endpoint: std::ptr::null(),
            headers: std::ptr::null(),
            sink_dir: std::ptr::null(),
            spool_dir: std::ptr::null(),
            request_timeout_ms: d.request_timeout.as_millis() as u32,
            schedule_delay_ms: d.schedule_delay.as_millis() as u32,
            max_queue_size: d.max_queue_size,
            max_export_batch_size: d.max_export_batch_size,
            export_timeout_ms: d.export_timeout.as_millis() as u32,
            max_open_spans: d.max_open_spans,
            full_wait_ms: d.full_wait.as_millis() as u32,
            install_signal_handlers: match (d.install_signal_handlers, d.install_crash_handlers) {
                (false, _) => SPANGUARD_SIGNAL_HANDLERS_NONE,
                (true, true) => SPANGUARD_SIGNAL_HANDLERS_ALL,
                (true, false) => SPANGUARD_SIGNAL_HANDLERS_TERMINATION,
            },
            flight_recorder: d.flight_recorder as u32,
            spool_max_mib: (d.spool_max_bytes >> 20) as u32,
            signal_flush_timeout_ms: d.signal_flush_timeout.as_millis() as u32,
            exporter_max_cpu_percent: d.exporter_max_cpu_percent,
            sampler: SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_ON,
            sampler_ratio: 1.0,
            payload_pool_mib: d.payload_pool_mib,
            value_length_limit: d.limits.attribute_value_length,
            attribute_count_limit: d.limits.attribute_count,
            event_count_limit: d.limits.event_count,
            link_count_limit: d.limits.link_count,
            event_attribute_count_limit: d.limits.event_attribute_count,
            link_attribute_count_limit: d.limits.link_attribute_count,
            certificate: std::ptr::null(),
            client_certificate: std::ptr::null(),
            client_key: std::ptr::null(),
            max_request_bytes: d.max_request_bytes as u32,
            sink_max_line_bytes: d.sink_max_line_bytes as u32,
            log_level: std::ptr::null(),
            prefault_slots: d.prefault_slots as u32,
            value_depth_limit: d.limits.attribute_value_depth,
            env_set_by_host: std::ptr::null(),
        };
        // SAFETY: cfg is non-null and at least cfg_size >= n bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&c as *const spanguard_config).cast::<u8>(),
                cfg.cast::<u8>(),
                n,
            )
        };
        spanguard_result::Ok
    })
}

/// Where the struct's strings are (`read_config`).
const CONFIG_POINTERS: [usize; 11] = [
    std::mem::offset_of!(spanguard_config, service_name),
    std::mem::offset_of!(spanguard_config, resource_attributes),
    std::mem::offset_of!(spanguard_config, endpoint),
    std::mem::offset_of!(spanguard_config, headers),
    std::mem::offset_of!(spanguard_config, sink_dir),
    std::mem::offset_of!(spanguard_config, spool_dir),
    std::mem::offset_of!(spanguard_config, certificate),
    std::mem::offset_of!(spanguard_config, client_certificate),
    std::mem::offset_of!(spanguard_config, client_key),
    std::mem::offset_of!(spanguard_config, log_level),
    std::mem::offset_of!(spanguard_config, env_set_by_host),
];

/// Copies the caller's struct, reading only the `struct_size` bytes it has
/// (`InvalidArgument` for a size ending inside one of its strings' pointers).
unsafe fn read_config(cfg: *const spanguard_config) -> Result<spanguard_config, spanguard_result> {
    let mut full: spanguard_config = unsafe { std::mem::zeroed() };
    // SAFETY: full is a valid struct to fill.
    unsafe { spanguard_config_init(&mut full, std::mem::size_of::<spanguard_config>()) };
    // SAFETY: cfg is non-null (checked by callers); struct_size is its first field.
    let size = unsafe { (*cfg).struct_size } as usize;
    let min = std::mem::offset_of!(spanguard_config, service_name);
    if size < min {
        return Err(spanguard_result::InvalidArgument);
    }
    let n = size.min(std::mem::size_of::<spanguard_config>());
    // A size no version of the struct has, ending inside a pointer: the
    // rest of it taken from the default (NULL) made an address of its
    // first half, and reading the string there crashed the caller.
    if CONFIG_POINTERS
        .iter()
        .any(|&at| at < n && n < at + std::mem::size_of::<*const c_char>())
    {
        return Err(spanguard_result::InvalidArgument);
    }
    // SAFETY: the caller's struct is at least `size` bytes; we copy at most
    // our own size.
    unsafe {
        std::ptr::copy_nonoverlapping(
            cfg.cast::<u8>(),
            (&mut full as *mut spanguard_config).cast::<u8>(),
            n,
        )
    };
    Ok(full)
}

unsafe fn c_string(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller documents NUL-terminated strings.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

fn ms_or(value: u32, default: Duration) -> Duration {
    if value == 0 {
        default
    } else {
        Duration::from_millis(value as u64)
    }
}

/// Why a tracer could not be made: the code the call returns and the
/// sentence `spanguard_tracer_new_with_error` writes.
pub(crate) struct CreateError {
    code: spanguard_result,
    message: String,
}

impl CreateError {
    fn config(e: crate::config::ConfigError) -> CreateError {
        CreateError {
            code: spanguard_result::InvalidConfig,
            message: e.to_string(),
        }
    }

    /// A bad config field: `field=value: reason`, with `code`.
    fn field(code: spanguard_result, field: &str, value: &str, reason: &str) -> CreateError {
        CreateError {
            code,
            message: format!("spanguard_config.{field}={value}: {reason}"),
        }
    }
}

impl From<spanguard_result> for CreateError {
    /// A code alone gets its `spanguard_strerror` text.
    fn from(code: spanguard_result) -> CreateError {
        let text = code.message();
        CreateError {
            code,
            message: text.trim_end_matches('\0').to_string(),
        }
    }
}

/// A key=value list field of the struct: the headers (`secret`), or the
/// resource attributes, read as OTEL_RESOURCE_ATTRIBUTES is.
fn key_values(field: &str, text: &str, secret: bool) -> Result<Vec<(String, String)>, CreateError> {
    let parsed = match secret {
        true => crate::config::parse_key_values_checked(text),
        false => crate::config::parse_resource_attributes(text),
    };
    parsed.map_err(|reason| {
        let (value, reason) = if secret {
            (
                "(not shown: it may hold a secret)".to_string(),
                "not name=value,... (an entry has no '=' or an empty name)".to_string(),
            )
        } else {
            (format!("{text:?}"), reason)
        };
        CreateError::field(spanguard_result::InvalidConfig, field, &value, &reason)
    })
}

/// A config as `spanguard_config_init` fills it, for the tests to adjust.
#[cfg(test)]
pub(crate) fn config_for_test() -> spanguard_config {
    let mut c = std::mem::MaybeUninit::<spanguard_config>::uninit();
    // SAFETY: init writes the whole struct of this size.
    unsafe {
        spanguard_config_init(c.as_mut_ptr(), std::mem::size_of::<spanguard_config>());
        c.assume_init()
    }
}

/// The Rust config a C struct describes.
unsafe fn to_tracer_config(c: &spanguard_config) -> Result<TracerConfig, CreateError> {
    let mut t = TracerConfig::default();
    // SAFETY (all c_string calls): strings in the struct are NULL or
    // NUL-terminated, as documented.
    unsafe {
        // An empty name is no name: the default (unknown_service:<process>,
        // or OTEL_SERVICE_NAME over it), as OpenTelemetry takes an empty
        // OTEL_SERVICE_NAME. Kept, it named the sink file "-<pid>.jsonl",
        // which shell tools read as an option, and every span's service
        // was "" (`Tracer(service_name=os.environ.get("SERVICE", ""))`).
        if let Some(s) = c_string(c.service_name).filter(|s| !s.trim().is_empty()) {
            t.service_name = s;
        }
        if let Some(s) = c_string(c.resource_attributes) {
            t.resource_attributes = key_values("resource_attributes", &s, false)?;
        }
        t.endpoint = c_string(c.endpoint).filter(|s| !s.is_empty());
        if let Some(s) = c_string(c.headers) {
            t.headers = key_values("headers", &s, true)?;
        }
        if let Some(s) = c_string(c.sink_dir).filter(|s| !s.is_empty()) {
            t.sink_dir = s.into();
        }
        if let Some(s) = c_string(c.spool_dir).filter(|s| !s.is_empty()) {
            t.spool_dir = s.into();
        }
        for (field, slot) in [
            (c.certificate, &mut t.tls.certificate),
            (c.client_certificate, &mut t.tls.client_certificate),
            (c.client_key, &mut t.tls.client_key),
        ] {
            if let Some(s) = c_string(field).filter(|s| !s.is_empty()) {
                *slot = Some(s.into());
            }
        }
        if let Some(s) = c_string(c.env_set_by_host) {
            t.env_set_by_host = s
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect();
        }
        if let Some(s) = c_string(c.log_level).filter(|s| !s.is_empty()) {
            t.log_level =
                crate::config::LogLevel::parse(&s).ok_or(spanguard_result::InvalidConfig)?;
        }
    }
    if c.max_request_bytes != 0 {
        t.max_request_bytes = c.max_request_bytes as usize;
    }
    if c.sink_max_line_bytes != 0 {
        t.sink_max_line_bytes = c.sink_max_line_bytes as usize;
    }
    let enum_field = |field: &str, value: u32, names: &str| {
        CreateError::field(
            spanguard_result::InvalidArgument,
            field,
            &value.to_string(),
            &format!("not {names}"),
        )
    };
    t.protocol = match c.protocol {
        SPANGUARD_PROTOCOL_HTTP_PROTOBUF => Protocol::HttpProtobuf,
        SPANGUARD_PROTOCOL_HTTP_JSON => Protocol::HttpJson,
        other => {
            return Err(enum_field(
                "protocol",
                other,
                "SPANGUARD_PROTOCOL_HTTP_PROTOBUF (0) or SPANGUARD_PROTOCOL_HTTP_JSON (1)",
            ));
        }
    };
    t.compression = match c.compression {
        SPANGUARD_COMPRESSION_NONE => Compression::None,
        SPANGUARD_COMPRESSION_GZIP => Compression::Gzip,
        other => {
            return Err(enum_field(
                "compression",
                other,
                "SPANGUARD_COMPRESSION_NONE (0) or SPANGUARD_COMPRESSION_GZIP (1)",
            ));
        }
    };
    t.full_policy = match c.full_policy {
        SPANGUARD_FULL_POLICY_WAIT => FullPolicy::Wait,
        SPANGUARD_FULL_POLICY_DROP => FullPolicy::Drop,
        other => {
            return Err(enum_field(
                "full_policy",
                other,
                "SPANGUARD_FULL_POLICY_WAIT (0) or SPANGUARD_FULL_POLICY_DROP (1)",
            ));
        }
    };
    t.request_timeout = ms_or(c.request_timeout_ms, t.request_timeout);
    t.schedule_delay = ms_or(c.schedule_delay_ms, t.schedule_delay);
    if c.max_queue_size != 0 {
        t.max_queue_size = c.max_queue_size;
    }
    if c.max_export_batch_size != 0 {
        t.max_export_batch_size = c.max_export_batch_size;
    }
    t.export_timeout = ms_or(c.export_timeout_ms, t.export_timeout);
    if c.max_open_spans != 0 {
        t.max_open_spans = c.max_open_spans;
    }
    t.full_wait = ms_or(c.full_wait_ms, t.full_wait);
    (t.install_signal_handlers, t.install_crash_handlers) = match c.install_signal_handlers {
        SPANGUARD_SIGNAL_HANDLERS_NONE => (false, false),
        SPANGUARD_SIGNAL_HANDLERS_ALL => (true, true),
        SPANGUARD_SIGNAL_HANDLERS_TERMINATION => (true, false),
        other => {
            return Err(enum_field(
                "install_signal_handlers",
                other,
                "SPANGUARD_SIGNAL_HANDLERS_NONE (0), SPANGUARD_SIGNAL_HANDLERS_ALL (1) or \
                 SPANGUARD_SIGNAL_HANDLERS_TERMINATION (2)",
            ));
        }
    };
    t.flight_recorder = c.flight_recorder != 0;
    t.prefault_slots = c.prefault_slots != 0;
    if c.spool_max_mib != 0 {
        t.spool_max_bytes = (c.spool_max_mib as u64) << 20;
    }
    t.signal_flush_timeout = ms_or(c.signal_flush_timeout_ms, t.signal_flush_timeout);
    if c.exporter_max_cpu_percent != 0 {
        t.exporter_max_cpu_percent = c.exporter_max_cpu_percent;
    }
    let or = |v: u32, default: u32| if v == 0 { default } else { v };
    t.payload_pool_mib = or(c.payload_pool_mib, t.payload_pool_mib);
    let l = &mut t.limits;
    l.attribute_value_length = or(c.value_length_limit, l.attribute_value_length);
    l.attribute_count = or(c.attribute_count_limit, l.attribute_count);
    l.event_count = or(c.event_count_limit, l.event_count);
    l.link_count = or(c.link_count_limit, l.link_count);
    l.event_attribute_count = or(c.event_attribute_count_limit, l.event_attribute_count);
    l.link_attribute_count = or(c.link_attribute_count_limit, l.link_attribute_count);
    l.attribute_value_depth = or(c.value_depth_limit, l.attribute_value_depth);
    t.sampler = sampler_of(c.sampler, c.sampler_ratio)?;
    t.validate().map_err(CreateError::config)?;
    Ok(t)
}

/// The sampler a config struct names.
fn sampler_of(kind: u32, ratio: f64) -> Result<Sampler, CreateError> {
    let ratio = || {
        if (0.0..=1.0).contains(&ratio) {
            Ok(RootSampler::TraceIdRatio(ratio))
        } else {
            Err(CreateError::field(
                spanguard_result::InvalidConfig,
                "sampler_ratio",
                &ratio.to_string(),
                "not a probability between 0 and 1",
            ))
        }
    };
    let (root, parent_based) = match kind {
        SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_ON => (RootSampler::AlwaysOn, true),
        SPANGUARD_SAMPLER_ALWAYS_ON => (RootSampler::AlwaysOn, false),
        SPANGUARD_SAMPLER_ALWAYS_OFF => (RootSampler::AlwaysOff, false),
        SPANGUARD_SAMPLER_TRACEIDRATIO => (ratio()?, false),
        SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_OFF => (RootSampler::AlwaysOff, true),
        SPANGUARD_SAMPLER_PARENTBASED_TRACEIDRATIO => (ratio()?, true),
        other => {
            return Err(CreateError::field(
                spanguard_result::InvalidConfig,
                "sampler",
                &other.to_string(),
                "not one of the SPANGUARD_SAMPLER_* values (0 to 5)",
            ));
        }
    };
    Ok(Sampler { root, parent_based })
}

/// Starts a tracer and registers it; writes it to `*out` on success.
fn start(config: TracerConfig, out: *mut *mut spanguard_tracer) -> Result<(), CreateError> {
    if config.disabled {
        if let Some(line) = crate::export::diagnostics::disabled_line(config.log_level) {
            crate::export::diagnostics::write_to_stderr(line.as_bytes());
        }
        let t = Box::into_raw(Box::new(spanguard_tracer::new(0, None)));
        // SAFETY: out is non-null (checked by callers).
        unsafe { out.write(t) };
        return Ok(());
    }
    // Before anything of the tracer exists: a fork before the hook is
    // registered runs no child handler, and its child kept what was made
    // so far (the pipeline in the registry, whose exit flush then waited
    // for an exporter the child does not have). The hook also keeps a fork
    // out of the handlers' install, and takes the parent's watchdog out of
    // a child's way (a child forked after the install without it sent its
    // SIGTERM to the parent's watchdog).
    crate::watchdog::ensure_fork_hook(after_fork_in_child);
    // Reserve an id before starting threads, so a 256th tracer costs nothing.
    let Some(id) = crate::registry::reserve() else {
        return Err(CreateError {
            code: spanguard_result::TooManyTracers,
            message: "255 tracers are alive already: free one first".to_string(),
        });
    };
    let install_signals = config.install_signal_handlers;
    let install_crash = install_signals && config.install_crash_handlers;
    match Tracer::new(config) {
        Ok(tracer) => {
            crate::registry::publish(id, tracer.pipeline());
            let t = Box::new(spanguard_tracer::new(id, Some(tracer)));
            // A forked child's first tracer of its own: its watchdog too,
            // if the fork put it off.
            crate::watchdog::signals::restart_after_fork();
            if install_signals {
                crate::watchdog::ensure_installed(install_crash);
            }
            crate::watchdog::ensure_exit_hook();
            // Its exporter watched, should it get stuck in a request.
            crate::watchdog::stuck_exporter::look_at_new_tracer();
            if let Some(Some(tracer)) = t.tracer.get() {
                t.publish(tracer);
            }
            let raw = Box::into_raw(t);
            WRAPPERS[id as usize].store(raw, Ordering::Release);
            // SAFETY: out is non-null (checked by callers).
            unsafe { out.write(raw) };
            Ok(())
        }
        Err(e) => {
            crate::registry::release(id);
            Err(match e {
                TracerError::Config(e) => CreateError::config(e),
                TracerError::Io(e) => CreateError {
                    code: spanguard_result::Io,
                    message: format!("the operating system refused what the tracer needs: {e}"),
                },
            })
        }
    }
}

/// The one body of the three `spanguard_tracer_new*` calls: the struct
/// (or the defaults when `cfg` is NULL), then the environment if asked.
/// Returns what the environment had that was ignored, a line each.
fn create(
    cfg: *const spanguard_config,
    from_env: bool,
    out: *mut *mut spanguard_tracer,
) -> Result<String, CreateError> {
    let mut config = if cfg.is_null() {
        TracerConfig::default()
    } else {
        // SAFETY: cfg is non-null.
        let c = unsafe { read_config(cfg) }.map_err(|code| {
            CreateError::field(
                code,
                "struct_size",
                // SAFETY: cfg is non-null; struct_size is its first field.
                &unsafe { (*cfg).struct_size }.to_string(),
                "smaller than any version of the struct: call spanguard_config_init(&cfg, sizeof cfg) first",
            )
        })?;
        // SAFETY: c's strings come from the caller's struct.
        unsafe { to_tracer_config(&c) }?
    };
    if from_env {
        config.apply_process_env().map_err(CreateError::config)?;
    }
    let ignored = config
        .ignored_env
        .iter()
        .map(crate::config::ConfigError::as_ignored)
        .collect::<Vec<_>>()
        .join("\n");
    start(config, out)?;
    Ok(ignored)
}

/// Makes a tracer from `cfg` alone (no environment variables are read).
/// Thread-safe. `spanguard_tracer_new_with_error` says what was wrong.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn spanguard_tracer_new(
    cfg: *const spanguard_config,
    out: *mut *mut spanguard_tracer,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(cfg, out);
        match create(cfg, false, out) {
            Ok(_) => spanguard_result::Ok,
            Err(e) => e.code,
        }
    })
}

/// Makes a tracer from `cfg` (or the defaults when `cfg` is NULL) with the
/// standard OTEL_* variables and SPANGUARD_* variables applied on top.
/// A variable whose value is wrong (unknown, out of range, not a number)
/// is ignored, as if unset, as the OpenTelemetry SDKs do, and named in a
/// warning on stderr when the tracer starts (OTEL_LOG_LEVEL warn or more):
/// only an error in `cfg` fails. Thread-safe.
/// `spanguard_tracer_new_with_error` says what was wrong or ignored.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn spanguard_tracer_new_from_env(
    cfg: *const spanguard_config,
    out: *mut *mut spanguard_tracer,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(out);
        match create(cfg, true, out) {
            Ok(_) => spanguard_result::Ok,
            Err(e) => e.code,
        }
    })
}

/// A buffer size that holds any failure's message
/// `spanguard_tracer_new_with_error` writes (a bad value is shown to at
/// most 200 characters); on success, several ignored variables may need
/// more (`*message_len` says how much).
pub const SPANGUARD_ERROR_MESSAGE_SIZE: u32 = 512;

/// Makes a tracer like `spanguard_tracer_new` (`from_env` false) or
/// `spanguard_tracer_new_from_env` (`from_env` true; `cfg` may then be
/// NULL) and, when it fails, says why in a sentence that names the
/// config field and its bad value, e.g.
/// `endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)=localhost:4318: not a URL
/// starting with http:// or https:// (or discard:)` (header values are never
/// shown: they may hold secrets).
///
/// The sentence is written to `message` (NUL-terminated UTF-8, cut on a
/// character boundary to fit `message_cap` bytes; `SPANGUARD_ERROR_MESSAGE_SIZE`
/// suffices for a failure) and its full length, without the NUL, to
/// `*message_len` when that is not NULL. On success the message names the
/// environment variables that were ignored, a line each, e.g.
/// `OTEL_EXPORTER_OTLP_PROTOCOL=grpc: not http/protobuf or http/json (...);
/// ignored`, and is empty when none was. `message` may be NULL when
/// `message_cap` is 0.
///
/// The message belongs to this call: no thread-local "last error" is kept,
/// so it is right even where calls hop threads (goroutines, worker pools).
/// Thread-safe.
#[unsafe(no_mangle)]
#[must_use]
pub unsafe extern "C" fn spanguard_tracer_new_with_error(
    cfg: *const spanguard_config,
    from_env: bool,
    out: *mut *mut spanguard_tracer,
    message: *mut c_char,
    message_cap: usize,
    message_len: *mut usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(out);
        if message.is_null() && message_cap != 0 {
            return spanguard_result::NullArgument;
        }
        let (code, text) = if cfg.is_null() && !from_env {
            let e = CreateError::from(spanguard_result::NullArgument);
            (
                e.code,
                "cfg is NULL (only allowed with from_env)".to_string(),
            )
        } else {
            match create(cfg, from_env, out) {
                Ok(ignored) => (spanguard_result::Ok, ignored),
                Err(e) => (e.code, e.message),
            }
        };
        // SAFETY: message holds message_cap bytes (or is NULL with cap 0);
        // message_len is NULL or valid, as documented.
        unsafe { write_message(&text, message, message_cap, message_len) };
        code
    })
}

/// Copies `text` NUL-terminated into `buf` (cut on a character boundary to
/// fit `cap`), and its full length into `*len`.
unsafe fn write_message(text: &str, buf: *mut c_char, cap: usize, len: *mut usize) {
    if !len.is_null() {
        // SAFETY: len is valid when non-NULL (the caller's contract).
        unsafe { len.write(text.len()) };
    }
    if buf.is_null() || cap == 0 {
        return;
    }
    let mut n = text.len().min(cap - 1);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: buf holds cap > n bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
        buf.add(n).write(0);
    }
}

/// The wrapper behind a pointer its caller checked for NULL.
fn wrapper<'a>(t: *const spanguard_tracer) -> &'a spanguard_tracer {
    // SAFETY: non-null checked by callers; the pointer came from tracer_new
    // and stays valid until spanguard_tracer_free, which may not race.
    unsafe { &*t }
}

/// Runs `f` on the tracer (made first in a forked child's first use);
/// OK for a disabled one, SHUT_DOWN for one shut down before it was made.
fn with_tracer(
    t: *const spanguard_tracer,
    f: impl FnOnce(&Tracer) -> spanguard_result,
) -> spanguard_result {
    match wrapper(t).made() {
        Ok(tracer) => f(tracer),
        Err(Absent::Disabled) => spanguard_result::Ok,
        Err(Absent::ShutDown) => spanguard_result::ShutDown,
    }
}

/// `spanguard_shutdown`, `spanguard_shutdown_for_signal` and
/// `spanguard_tracer_close`, `shut` being the shutdown. A forked child's
/// tracer not made yet has recorded nothing: it is not made only to be
/// shut down (a worker that shuts down before `_exit` without a span
/// leaves no files), and answers SHUT_DOWN from then on.
fn shut_down_wrapper(
    t: *const spanguard_tracer,
    shut: impl FnOnce(&Tracer) -> Result<FlushOutcome, SpanError>,
) -> spanguard_result {
    let w = wrapper(t);
    if w.unmade_in_child() {
        let first = !w.shut_down_unmade.swap(true, Ordering::AcqRel);
        // A first use racing this one made the tracer first (it is shut
        // down as any), or finds none from now on.
        return match w.tracer.get_or_init(|| None) {
            Some(tracer) => shut_down_result(shut(tracer)),
            None if first => spanguard_result::Ok,
            None => spanguard_result::ShutDown,
        };
    }
    let result = with_tracer(t, |tracer| shut_down_result(shut(tracer)));
    crate::watchdog::signals::stand_down_if_no_tracer_left();
    result
}

fn timeout(ms: u32) -> Duration {
    Duration::from_millis(ms as u64)
}

/// The result of `spanguard_shutdown` and its kin.
fn shut_down_result(shutdown: Result<FlushOutcome, SpanError>) -> spanguard_result {
    match shutdown {
        Ok(outcome) => flush_result(outcome),
        Err(SpanError::ShutDown) => spanguard_result::ShutDown,
        Err(e) => e.into(),
    }
}

fn flush_result(outcome: FlushOutcome) -> spanguard_result {
    match outcome {
        FlushOutcome::Delivered => spanguard_result::Ok,
        FlushOutcome::Spooled => spanguard_result::Spooled,
        FlushOutcome::TimedOut => spanguard_result::Timeout,
    }
}

/// Waits until every span ended before this call has been dealt with, at
/// most `timeout_ms`: `SPANGUARD_RESULT_OK` when all of them were delivered
/// (or refused for good, which is counted and reported);
/// `SPANGUARD_RESULT_SPOOLED` (a success notice) when some were only written
/// to the spool because the backend was down or kept failing;
/// `SPANGUARD_RESULT_TIMEOUT` when time ran out first (the export goes on),
/// waiting for a termination signal's flush too: the watchdog holds the
/// tracer while it writes the dump (`SPANGUARD_RESULT_SHUT_DOWN` only once
/// the tracer is shut down). With every such span dealt with already, a
/// `timeout_ms` of 0 answers as a longer one would, not
/// `SPANGUARD_RESULT_TIMEOUT`.
/// A backend that is down does not hold a flush up: its spans are spooled.
/// Thread-safe; blocks.
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_flush(
    tracer: *const spanguard_tracer,
    timeout_ms: u32,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(tracer);
        let w = wrapper(tracer);
        // A forked child's tracer not made yet has no span to wait for.
        if w.unmade_in_child() && !w.shut_down_unmade.load(Ordering::Acquire) {
            return spanguard_result::Ok;
        }
        with_tracer(tracer, |t| match t.flush(timeout(timeout_ms)) {
            Ok(outcome) => flush_result(outcome),
            Err(e) => e.into(),
        })
    })
}

/// Flushes, then ends and exports every span still open (attribute
/// `spanguard.unended=true`), then stops the exporter, within `timeout_ms`.
/// Returns what `spanguard_flush` would (`SPANGUARD_RESULT_SPOOLED` when
/// some spans only reached the spool); `SPANGUARD_RESULT_TIMEOUT` only
/// when some span was still not dealt with once the exporter stopped (a
/// `timeout_ms` of 0 whose spans the stopping exporter sent or spooled is
/// not a timeout). Later calls on the tracer return
/// `SPANGUARD_RESULT_SHUT_DOWN`. A second shutdown returns
/// `SPANGUARD_RESULT_SHUT_DOWN`. Thread-safe; blocks, for `timeout_ms`
/// plus 1.5 s at most: an exporter thread still not stopped by then is
/// stuck where no timeout reaches (the error callback blocked, a write to
/// a stderr pipe nobody reads, a resolver or file system that hangs). It
/// is left running, the shutdown returns `SPANGUARD_RESULT_TIMEOUT`
/// (unless every span was dealt with) and says so on stderr, and the spans
/// it had not dealt with are written to the crash dump (signal handlers
/// on) or stay in the flight recorder's file, for the next start to send
/// (without either, that thread sends or spools them if it gets unstuck);
/// the batch it was sending may arrive twice. The error callback is not
/// called after the shutdown returns. `spanguard_tracer_free`
/// then returns at once and keeps the memory that thread uses until it
/// ends.
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_shutdown(
    tracer: *const spanguard_tracer,
    timeout_ms: u32,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(tracer);
        shut_down_wrapper(tracer, |t| t.shutdown(timeout(timeout_ms)))
    })
}

/// `spanguard_shutdown` for a process that termination signal `signo`
/// (SIGTERM, SIGINT...) is stopping, for a binding or program whose own
/// handler caught it (Node's `process.on('SIGTERM')`, Go's
/// `signal.Notify`): every span still open is exported marked
/// `spanguard.interrupted=true` and `spanguard.signal=<signo>`, the very
/// marks the library's own signal handler gives the spans it finds open,
/// so the same stop reads the same whichever handler saw it. Such spans
/// count in `spans_ended` and `spans_interrupted_at_shutdown`, not in
/// `spans_unended_at_shutdown`: the program did not forget them. Returns
/// what `spanguard_shutdown` does, `SPANGUARD_RESULT_SHUT_DOWN` once shut
/// down (by either call),
/// `SPANGUARD_RESULT_NULL_ARGUMENT` for a NULL tracer and
/// `SPANGUARD_RESULT_INVALID_ARGUMENT` for a `signo` outside 1 to
/// SIGRTMAX, nothing done. Thread-safe; blocks as `spanguard_shutdown`.
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_shutdown_for_signal(
    tracer: *const spanguard_tracer,
    signo: i32,
    timeout_ms: u32,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(tracer);
        if crate::tracer::signal_number(signo).is_none() {
            return spanguard_result::InvalidArgument;
        }
        shut_down_wrapper(tracer, |t| {
            t.shutdown_for_signal(timeout(timeout_ms), signo)
        })
    })
}

/// Whether a termination signal (SIGTERM, SIGINT...) this process raises
/// again can end it: `program_handles_it` says whether the program has a
/// handler of its own for it, or leaves it at the default action. False
/// only for a PID namespace's init (a container's PID 1) at the default,
/// whose own signal the kernel drops (pid_namespaces(7)): raised again
/// once a binding's signal hook has shut its tracers down, it does
/// nothing, and the process lives on with them shut down. For a binding
/// whose own handler catches the signal (Node's process hooks) to decide,
/// before it does, whether to shut down and raise it again or only flush
/// and go on; the library's watchdog decides by the same rule. Thread-safe
/// and async-signal-safe.
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_raised_signal_can_end_process(program_handles_it: bool) -> bool {
    ffi_boundary!(true, {
        crate::watchdog::namespace_init::raised_signal_can_end_process(|| program_handles_it)
    })
}

/// Puts the library's termination handler back for `signo` (SIGTERM,
/// SIGINT, SIGHUP or SIGQUIT) where the host has set the default
/// disposition over it, which becomes the disposition the handler raises
/// the signal again with: the signal still ends the process, once the
/// tracers have delivered what has ended and dumped what is open. For a
/// binding whose runtime sets the default when its program stops
/// listening for a signal (Node does as the last listener goes): the
/// handler a worker thread's tracer installed was gone, and the next
/// SIGTERM ended the process with its spans nowhere. True when it did;
/// false (nothing changed) when the process has no such handler (no
/// tracer was made with `SPANGUARD_SIGNAL_HANDLERS_ALL` or `_TERMINATION`,
/// or a forked child has made none yet), the disposition is not the
/// default (the library's handler is there already, or a handler of the
/// host's, which stays), or `signo` is none of the four (0, negative,
/// SIGKILL, SIGUSR1, a crash signal, past SIGRTMAX: all false, nothing
/// touched). Once every tracer has shut down the handler is still the
/// process's, and this still puts it back (true): the signal then ends
/// the process as the default would, with nothing to flush. Thread-safe;
/// not for a signal handler.
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_reclaim_signal_from_default(signo: i32) -> bool {
    ffi_boundary!(false, {
        crate::watchdog::signals::reclaim_from_default(signo)
    })
}

/// Shuts the tracer down as `spanguard_tracer_free` does (flush, open spans
/// exported marked unended, exporter stopped, within the tracer's export
/// timeout) but keeps its memory: calls on it and on its spans, made
/// later or still running on other threads, return
/// `SPANGUARD_RESULT_SHUT_DOWN` instead of touching freed memory. For
/// bindings whose tracer object is freed by a garbage collector, which
/// cannot know that no call on a span is running when the program closes
/// the tracer: they close at once and free when the object is garbage.
/// Returns what `spanguard_shutdown` does. Thread-safe; blocks.
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_tracer_close(tracer: *const spanguard_tracer) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(tracer);
        shut_down_wrapper(tracer, |t| t.shutdown(t.config().export_timeout))
    })
}

/// Shuts the tracer down if needed (with its export timeout) and frees it.
/// NULL is accepted. Call once, after every other call on this tracer and
/// its spans has returned. An exporter thread the shutdown left running
/// (see `spanguard_shutdown`) keeps what it uses until it ends.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_tracer_free(tracer: *mut spanguard_tracer) {
    ffi_boundary!((), {
        if tracer.is_null() {
            return;
        }
        // SAFETY: made by Box::into_raw in start(); freed once per contract.
        let boxed = unsafe { Box::from_raw(tracer) };
        if boxed.id != 0 {
            LIVE[boxed.id as usize].store(std::ptr::null_mut(), Ordering::Release);
            WRAPPERS[boxed.id as usize].store(std::ptr::null_mut(), Ordering::Release);
            crate::registry::release(boxed.id);
        }
        drop(boxed);
        crate::watchdog::signals::stand_down_if_no_tracer_left();
    })
}

/// Sets resource attributes over the tracer's own for every batch encoded
/// after the call: what a bridge passes for the OpenTelemetry SDK provider
/// whose spans it records (its `Resource`), so that they arrive under that
/// provider's `service.name` and attributes, as its own exporter would
/// send them. The given attributes win over the configured ones, except a
/// `service.name` that is the SDK's fallback (`unknown_service...`). A
/// call replaces what an earlier call gave. Scalars, arrays (as the
/// SDKs detect `process.command_args`) and complex values
/// (`SPANGUARD_VALUE_ANY`: maps, mixed or nested lists), sent as given;
/// bytes as OTLP's `bytesValue`. Text is UTF-8, invalid bytes replaced. A
/// complex value is checked and limited as a span attribute's (arrays and
/// maps deeper than the tracer's `value_depth_limit` become the empty
/// value, counted in `values_truncated`; strings inside are not cut): one that is not a well-formed
/// `AnyValue` returns `SPANGUARD_RESULT_INVALID_ANY_VALUE`, NULL with a
/// length `SPANGUARD_RESULT_NULL_ARGUMENT`, a value type that is none of
/// `SPANGUARD_VALUE_*` `SPANGUARD_RESULT_INVALID_ARGUMENT` (as a span's
/// call returns), and nothing is set. The
/// tracer's crash dump and flight file name it from then on (as text, an
/// array as a JSON list, a complex value as its OTLP/JSON `AnyValue`
/// object), so that spans recovered from them after a crash or SIGKILL
/// arrive under it too. Any number of attributes.
/// `SPANGUARD_RESULT_SHUT_DOWN` after `spanguard_shutdown` or
/// `spanguard_tracer_close`, as every call on the tracer (none set: no
/// batch would carry it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_tracer_set_resource(
    tracer: *const spanguard_tracer,
    attrs: *const spanguard_attribute,
    n_attrs: usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(tracer);
        // SAFETY: attrs is valid for n_attrs elements (the caller's contract).
        let given = match unsafe { given_attributes(attrs, n_attrs) } {
            Ok(given) => given,
            Err(e) => return e,
        };
        // SAFETY: tracer is non-null and came from tracer_new.
        match unsafe { &*tracer }.made() {
            Ok(t) => match t.set_resource(given) {
                Ok(()) => spanguard_result::Ok,
                Err(e) => e.into(),
            },
            Err(_) => spanguard_result::ShutDown,
        }
    })
}

/// The attributes of `attrs[..n_attrs]` (text as UTF-8, invalid bytes
/// replaced), for resource and scope attributes: scalars, arrays and
/// complex values (copied; the tracer checks and limits them), bytes (as
/// a complex value holding them); an empty key, or NULL text with a
/// length, is skipped.
/// `NullArgument` for NULL `attrs` with a count, or a complex value's,
/// bytes' or array's NULL with a length; `InvalidAnyValue` for a complex
/// value that is not a well-formed `AnyValue`; `InvalidArgument` for a
/// value type that is none of `SPANGUARD_VALUE_*`, as a span's call.
///
/// # Safety
/// `attrs` is NULL or valid for `n_attrs` elements, each key and text
/// value for its length.
unsafe fn given_attributes(
    attrs: *const spanguard_attribute,
    n_attrs: usize,
) -> Result<Vec<(String, crate::config::ResourceValue)>, spanguard_result> {
    use crate::config::ResourceValue;
    if attrs.is_null() && n_attrs > 0 {
        return Err(spanguard_result::NullArgument);
    }
    // Any number: a provider's resource (a Kubernetes, cloud and process
    // detector's together) may hold more than one span call takes, and
    // past 128 the bindings cut it, silently. Set once, on the heap.
    // NULL text of a length is skipped (`text_arg` refuses it).
    let text = |p: *const c_char, len: usize| -> Option<String> {
        // SAFETY: valid for len bytes when not NULL (the caller's contract).
        let bytes = unsafe { super::args::text_arg(p, len) }.ok()?;
        Some(String::from_utf8_lossy(bytes).into_owned())
    };
    let mut given = Vec::with_capacity(n_attrs);
    for i in 0..n_attrs {
        // SAFETY: attrs is valid for n_attrs elements.
        let a = unsafe { &*attrs.add(i) };
        let Some(key) = text(a.key, a.key_len).filter(|k| !k.is_empty()) else {
            continue;
        };
        let value = match a.type_ {
            SPANGUARD_VALUE_STRING => match text(a.string_value, a.string_len) {
                Some(v) => ResourceValue::Str(v),
                None => continue,
            },
            SPANGUARD_VALUE_INT => ResourceValue::Int(a.int_value),
            SPANGUARD_VALUE_DOUBLE => ResourceValue::Double(a.double_value),
            SPANGUARD_VALUE_BOOL => ResourceValue::Bool(a.bool_value),
            // A complex value (a bridged resource's map or mixed list):
            // skipped before, counted nowhere. Copied, and the copy
            // checked as a span's (`any_value`): one not well formed
            // refuses the call, NULL with a length too.
            SPANGUARD_VALUE_ANY => {
                if a.string_value.is_null() && a.string_len > 0 {
                    return Err(spanguard_result::NullArgument);
                }
                // SAFETY: string_value points at string_len bytes, as documented.
                let message = unsafe { super::args::bytes(a.string_value, a.string_len) };
                let copy = super::values::any_value(message)?;
                ResourceValue::Any(copy.value().bytes().to_vec())
            }
            // Bytes: skipped before, counted nowhere. Sent as what they
            // are in OTLP, an AnyValue's bytes_value, kept as a complex
            // value (which resource and scope attributes carry).
            SPANGUARD_VALUE_BYTES => {
                if a.string_value.is_null() && a.string_len > 0 {
                    return Err(spanguard_result::NullArgument);
                }
                // SAFETY: string_value points at string_len bytes, as documented.
                let data = unsafe { super::args::bytes(a.string_value, a.string_len) };
                ResourceValue::Any(bytes_any_value(data))
            }
            // Arrays (OpenTelemetry SDKs detect `process.command_args` as
            // one). A type that is none of these (a C caller's bad value,
            // a newer header's type) was skipped here, not set and counted
            // nowhere, where a span's call refuses it: refused as there,
            // `InvalidArgument` (NULL with a count: `NullArgument`).
            other => super::values::array_value(other, a.string_value, a.string_len)?,
        };
        given.push((key, value));
    }
    Ok(given)
}

/// An OTLP `AnyValue` holding `data` as its `bytes_value` (field 7).
fn bytes_any_value(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 11);
    crate::span::proto_reader::write_len_field(&mut out, 7, data);
    out
}

/// Sets the attributes of an instrumentation scope (an OpenTelemetry
/// tracer's `attributes`, given to its `get_tracer`), sent on the
/// `InstrumentationScope` of that scope's spans in every batch encoded
/// after the call. A scope is the name, version and schema URL its spans
/// give (`spanguard_span_options`); all empty: spanguard's own. A call
/// replaces what an earlier one gave that scope; none (`n_attrs` 0): it
/// has none again. Scalars, arrays and complex values
/// (`SPANGUARD_VALUE_ANY`) as `spanguard_tracer_set_resource` takes them
/// (bytes as `bytesValue`; a complex value not well formed:
/// `SPANGUARD_RESULT_INVALID_ANY_VALUE`, a value type that is none of
/// `SPANGUARD_VALUE_*`: `SPANGUARD_RESULT_INVALID_ARGUMENT`, nothing set); text is UTF-8,
/// invalid bytes replaced. Spans recovered from a crash dump or flight
/// file are sent without them.
/// Any number of attributes. `SPANGUARD_RESULT_LIMIT_REACHED` for a new
/// scope when `SPANGUARD_MAX_SCOPES_WITH_ATTRIBUTES` have attributes
/// (nothing set).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_tracer_set_scope_attributes(
    tracer: *const spanguard_tracer,
    scope_name: *const c_char,
    scope_name_len: usize,
    scope_version: *const c_char,
    scope_version_len: usize,
    scope_schema_url: *const c_char,
    scope_schema_url_len: usize,
    attrs: *const spanguard_attribute,
    n_attrs: usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(tracer);
        // SAFETY: attrs is valid for n_attrs elements (the caller's contract).
        let attributes = match unsafe { given_attributes(attrs, n_attrs) } {
            Ok(given) => given,
            Err(e) => return e,
        };
        // NULL with a length is refused; NULL with 0 is empty.
        let text = |p: *const c_char, len: usize| -> Result<String, spanguard_result> {
            if p.is_null() && len == 0 {
                return Ok(String::new());
            }
            // SAFETY: valid for len bytes when not NULL (the caller's contract).
            let bytes = unsafe { super::args::text_arg(p, len) }
                .map_err(|_| spanguard_result::NullArgument)?;
            Ok(String::from_utf8_lossy(bytes).into_owned())
        };
        let scope = match (
            text(scope_name, scope_name_len),
            text(scope_version, scope_version_len),
            text(scope_schema_url, scope_schema_url_len),
        ) {
            (Ok(name), Ok(version), Ok(schema_url)) => crate::pipeline::ScopeGiven {
                name,
                version,
                schema_url,
                attributes,
            },
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
        };
        // SAFETY: tracer is non-null and came from tracer_new.
        match unsafe { &*tracer }.made() {
            Ok(t) => match t.set_scope_attributes(scope) {
                Ok(()) => spanguard_result::Ok,
                Err(e) => e.into(),
            },
            Err(_) => spanguard_result::ShutDown,
        }
    })
}

/// Copies the tracer's counters into `*out` (set `out->struct_size` first;
/// only that many bytes are written). Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_stats(
    tracer: *const spanguard_tracer,
    out: *mut spanguard_counters,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(tracer, out);
        // SAFETY: out is non-null; struct_size is its first field.
        let size = unsafe { (*out).struct_size } as usize;
        if size < std::mem::size_of::<u64>() {
            return spanguard_result::InvalidArgument;
        }
        let mut s = spanguard_counters {
            struct_size: size.min(std::mem::size_of::<spanguard_counters>()) as u32,
            ..Default::default()
        };
        // SAFETY: tracer is non-null and came from tracer_new. A forked
        // child's tracer not made yet counts nothing: all zero, not made.
        let w = unsafe { &*tracer };
        if let Some(Some(t)) = w.tracer.get() {
            let x = t.stats();
            s.spans_begun = x.spans_begun;
            s.spans_ended = x.spans_ended;
            s.spans_exported = x.spans_exported;
            s.queue_depth = x.queue_depth;
            s.spans_open = x.spans_open;
            s.dropped_buffer_full = x.dropped_buffer_full;
            s.dropped_export_failed = x.dropped_export_failed;
            s.dropped_rejected = x.dropped_rejected;
            s.dropped_spool_overflow = x.dropped_spool_overflow;
            s.spans_unended_at_shutdown = x.spans_unended_at_shutdown;
            s.batches_sent = x.batches_sent;
            s.batches_failed = x.batches_failed;
            s.bytes_sent = x.bytes_sent;
            s.retries = x.retries;
            s.attributes_dropped = x.attributes_dropped;
            s.events_dropped = x.events_dropped;
            s.links_dropped = x.links_dropped;
            s.values_truncated = x.values_truncated;
            s.utf8_replaced = x.utf8_replaced;
            s.spooled_batches = x.spooled_batches;
            s.spooled_spans = x.spooled_spans;
            s.replayed_batches = x.replayed_batches;
            s.replayed_spans = x.replayed_spans;
            s.spool_bytes = x.spool_bytes;
            s.recovered_spans = x.recovered_spans;
            s.exporter_throttled_ns = x.exporter_throttled_ns;
            s.spans_unsampled = x.spans_unsampled;
            s.dropped_replay_failed = x.dropped_replay_failed;
            s.dropped_replay_rejected = x.dropped_replay_rejected;
            s.exporter_panics = x.exporter_panics;
            s.files_set_aside = x.files_set_aside;
            s.payload_waits = x.payload_waits;
            s.payload_waits_cut = x.payload_waits_cut;
            s.slot_waits = x.slot_waits;
            s.slot_wait_ns = x.slot_wait_ns;
            s.spans_interrupted_at_shutdown = x.spans_interrupted_at_shutdown;
            s.exporter_waits_ran_out = x.exporter_waits_ran_out;
            s.host_handler_waits_ran_out = x.host_handler_waits_ran_out;
        }
        let n = s.struct_size as usize;
        // SAFETY: the caller's struct is at least struct_size bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&s as *const spanguard_counters).cast::<u8>(),
                out.cast::<u8>(),
                n,
            )
        };
        spanguard_result::Ok
    })
}

/// Writes the path of the file the local sink appends to (the tracer's
/// destination when no endpoint is configured), NUL-terminated, into `buf`
/// (`len` bytes), and its length without the NUL to `*path_len`: so a
/// program can tell its user where the spans went. With an endpoint (or a
/// disabled tracer) there is no such file: the path is empty. When `len` is
/// too small, nothing is written to `buf`, `*path_len` is the length needed
/// (add one for the NUL) and the result is `SPANGUARD_RESULT_BUFFER_TOO_SMALL`;
/// `buf` may be NULL when `len` is 0, to ask for the length. The path is
/// relative when `sink_dir` was. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_tracer_sink_path(
    tracer: *const spanguard_tracer,
    buf: *mut c_char,
    len: usize,
    path_len: *mut usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(tracer, path_len);
        if buf.is_null() && len > 0 {
            return spanguard_result::NullArgument;
        }
        // SAFETY: tracer is non-null and came from tracer_new.
        let path = unsafe { &*tracer }
            .made()
            .ok()
            .and_then(|t| t.sink_path())
            .map(|p| std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()))
            .unwrap_or(&[]);
        // SAFETY: buf holds len bytes (or is NULL with len 0); path_len is non-null.
        unsafe { write_text(path, buf, len, path_len) }
    })
}

/// Writes the OTLP/HTTP URL the tracer sends its spans to (its config's
/// endpoint, or the one OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
/// OTEL_EXPORTER_OTLP_ENDPOINT gave it, with `/v1/traces` appended to the
/// latter), NUL-terminated, into `buf` (`len` bytes), and its length without
/// the NUL to `*url_len`: so a binding can tell when an OpenTelemetry SDK's
/// own exporter beside spanguard sends every span to the same backend a
/// second time. Empty when the tracer writes to the local sink
/// (`spanguard_tracer_sink_path`), discards (`discard:`) or is disabled.
/// When `len` is too small, nothing is written to `buf`, `*url_len` is the
/// length needed (add one for the NUL) and the result is
/// `SPANGUARD_RESULT_BUFFER_TOO_SMALL`; `buf` may be NULL when `len` is 0,
/// to ask for the length. The URL is as configured, credentials in it
/// included. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_tracer_endpoint(
    tracer: *const spanguard_tracer,
    buf: *mut c_char,
    len: usize,
    url_len: *mut usize,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(tracer, url_len);
        if buf.is_null() && len > 0 {
            return spanguard_result::NullArgument;
        }
        // SAFETY: tracer is non-null and came from tracer_new.
        let url = unsafe { &*tracer }
            .made()
            .ok()
            .and_then(|t| t.config().endpoint.as_deref())
            .filter(|url| *url != crate::tracer::DISCARD_ENDPOINT)
            .map(str::as_bytes)
            .unwrap_or(&[]);
        // SAFETY: buf holds len bytes (or is NULL with len 0); url_len is non-null.
        unsafe { write_text(url, buf, len, url_len) }
    })
}

/// The longest a begin waits for a span slot (`full_wait_ms`, as the
/// tracer was made with it, SPANGUARD_FULL_WAIT_MS over it), in
/// milliseconds; 0 where a begin never waits: the full policy is to drop,
/// the tracer records nothing (OTEL_SDK_DISABLED), or `tracer` is NULL. A
/// binding whose begins must not block the thread they run on (Python's
/// under gevent or eventlet, where that thread runs every greenlet) begins
/// with `SPANGUARD_SPAN_OPTION_NO_WAIT`, lets its other green threads run
/// between tries for this long, then begins with
/// `SPANGUARD_SPAN_OPTION_WAITED`, as the native wait would have ended,
/// and counts its wait with `spanguard_tracer_count_slot_wait`.
/// Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_tracer_full_wait_ms(tracer: *const spanguard_tracer) -> u32 {
    ffi_boundary!(0, {
        if tracer.is_null() {
            return 0;
        }
        // SAFETY: tracer is non-null and came from tracer_new.
        match unsafe { &*tracer }.made() {
            Ok(t) if t.config().full_policy == FullPolicy::Wait => {
                u32::try_from(t.config().full_wait.as_millis()).unwrap_or(u32::MAX)
            }
            _ => 0,
        }
    })
}

/// Counts a wait for a span slot that the caller waited elsewhere, for
/// `waited_ns` nanoseconds, in `slot_waits` (one more) and `slot_wait_ns`
/// (`waited_ns` more, stopping at UINT64_MAX rather than wrapping), as a
/// begin that waits in native code counts its own. For a binding whose
/// begins wait at its green threads' hub (`spanguard_tracer_full_wait_ms`):
/// once a wait ends, with a slot or not (its last begin with
/// `SPANGUARD_SPAN_OPTION_WAITED`). Nothing else is counted or changed.
/// Any `waited_ns` is taken, 0 included (a wait that ended at once).
/// Nothing done (no result: there is nothing for the caller to act on):
/// `tracer` NULL; a tracer that records nothing (OTEL_SDK_DISABLED); in a
/// forked child, the parent's tracer before the child's first call on it
/// (that tracer has begun nothing there to wait for, and is not made for
/// this call). A tracer shut down or closed still counts it, as a native
/// begin's wait that the shutdown ended is counted: `spanguard_stats`
/// still reads it. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spanguard_tracer_count_slot_wait(
    tracer: *const spanguard_tracer,
    waited_ns: u64,
) {
    ffi_boundary!((), {
        if tracer.is_null() {
            return;
        }
        // SAFETY: tracer is non-null and came from tracer_new. The tracer
        // as made, not `made()`: that makes a forked child's at its first
        // use, threads and files for a wait that cannot have happened.
        if let Some(Some(t)) = unsafe { &*tracer }.tracer.get() {
            t.count_slot_wait_elsewhere(Duration::from_nanos(waited_ns));
        }
    })
}

/// Writes `text` and a NUL into `buf` when its `len` bytes hold both, and
/// the text's length to `*text_len` always (the size to ask for).
///
/// # Safety
/// `buf` is valid for `len` bytes (or NULL with `len` 0); `text_len` is
/// valid for a write.
unsafe fn write_text(
    text: &[u8],
    buf: *mut c_char,
    len: usize,
    text_len: *mut usize,
) -> spanguard_result {
    // SAFETY: text_len is valid for a write (the caller's promise).
    unsafe { text_len.write(text.len()) };
    if len < text.len() + 1 {
        return spanguard_result::BufferTooSmall;
    }
    // SAFETY: buf holds len > text.len() bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        *buf.add(text.len()) = 0;
    }
    spanguard_result::Ok
}

/// The application's pointer, handed back to its callback untouched.
struct UserData(*mut c_void);
// SAFETY: spanguard never dereferences it; the application promises its
// callback may be called from the exporter thread.
unsafe impl Send for UserData {}
// SAFETY: as above.
unsafe impl Sync for UserData {}

impl UserData {
    // A method, so closures capture the whole (Send) wrapper, not its field.
    fn pointer(&self) -> *mut c_void {
        self.0
    }
}

/// Sets (or, with NULL, removes) the callback told of export failures,
/// spooling, spool overflow and replay, and the other news of
/// `spanguard_event`. See `spanguard_error_callback` for
/// where it runs. Thread-safe, and may be called from inside the callback
/// (a one-shot callback that removes itself): it then returns at once. From
/// any other thread it returns after a call of the previous callback in
/// progress has finished, so the previous `user_data` may be freed then;
/// where there was none it returns at once, even while the new callback
/// already runs (news held for a callback, e.g. an ignored setting, is told
/// the moment one is set), so a first set may hold a lock the callback takes.
/// A forked child's tracer calls the callback (with the `user_data`) its
/// parent's had at the fork, in the child's copy of the memory.
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_set_error_callback(
    tracer: *const spanguard_tracer,
    callback: spanguard_error_callback,
    user_data: *mut c_void,
) -> spanguard_result {
    ffi_boundary!(spanguard_result::Panic, {
        require_non_null!(tracer);
        let Ok(t) = wrapper(tracer).made() else {
            // Disabled, or shut down (which would never call it): OK, as
            // for a tracer shut down in this process.
            return spanguard_result::Ok;
        };
        {
            let cb = callback.map(|f| {
                let data = UserData(user_data);
                Box::new(move |event: ExportEvent, message: &str| {
                    let c_event = match event {
                        ExportEvent::BatchFailed => spanguard_event::BatchFailed,
                        ExportEvent::BatchSpooled => spanguard_event::BatchSpooled,
                        ExportEvent::SpoolOverflow => spanguard_event::SpoolOverflow,
                        ExportEvent::BatchReplayed => spanguard_event::BatchReplayed,
                        ExportEvent::SpansRejected => spanguard_event::SpansRejected,
                        ExportEvent::ExporterPanicked => spanguard_event::ExporterPanicked,
                        ExportEvent::FileSetAside => spanguard_event::FileSetAside,
                        ExportEvent::BackendWarning => spanguard_event::BackendWarning,
                        ExportEvent::SettingIgnored => spanguard_event::SettingIgnored,
                        ExportEvent::BufferFull => spanguard_event::BufferFull,
                        ExportEvent::ValuesCut => spanguard_event::ValuesCut,
                        ExportEvent::ValuesWaited => spanguard_event::ValuesWaited,
                        ExportEvent::FileMiscounted => spanguard_event::FileMiscounted,
                        ExportEvent::SpansRecovered => spanguard_event::SpansRecovered,
                    };
                    let mut text = message.replace('\0', " ").into_bytes();
                    let len = text.len();
                    text.push(0);
                    // SAFETY: the application registered f for exactly this call.
                    unsafe { f(c_event, text.as_ptr().cast(), len, data.pointer()) };
                }) as crate::pipeline::EventCallback
            });
            t.set_callback(cb);
            spanguard_result::Ok
        }
    })
}

/// The library's version, e.g. "0.1.0": static, NUL-terminated. It agrees
/// with the SPANGUARD_VERSION_* macros of the header it was built with.
#[unsafe(no_mangle)]
pub extern "C" fn spanguard_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

pub const SPANGUARD_VERSION_MAJOR: u32 = 0;
pub const SPANGUARD_VERSION_MINOR: u32 = 1;
pub const SPANGUARD_VERSION_PATCH: u32 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    /// A child forked while another thread of its parent was in Rust's
    /// `std::env::set_var` (which holds std's environment lock, a RwLock
    /// no fork handler resets, across glibc's setenv): the child's first
    /// tracer reads its settings from the environment (what
    /// `spanguard_tracer_new` does first) and the state directory's
    /// variables. Through `std::env::var` it waited for that lock, held
    /// for good by a thread the child does not have. The setter loops, so
    /// most forks land inside it; the children are forked one at a time
    /// and the first that does not finish ends the test.
    #[test]
    fn a_child_forked_during_a_set_var_reads_its_settings() {
        if !crate::forking_tests::run_alone(
            module_path!(),
            "a_child_forked_during_a_set_var_reads_its_settings",
        ) {
            return;
        }
        register_fork_handlers();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let setter = {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut turn = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    turn += 1;
                    // SAFETY: this process runs this test alone; the other
                    // thread reads the environment only in forked children.
                    unsafe { std::env::set_var("SPANGUARD_TEST_SET_VAR_TURN", turn.to_string()) };
                }
            })
        };
        let forks = 200;
        let mut finished = 0;
        for _ in 0..forks {
            let pid = crate::forking_tests::fork();
            if pid == 0 {
                let mut config = TracerConfig::default();
                let read = config.apply_process_env().is_ok();
                let _ = crate::config::default_state_dir();
                // SAFETY: ends the child without running the parent's exit hooks.
                unsafe { libc::_exit(if read { 0 } else { 1 }) };
            }
            assert!(pid > 0);
            if !crate::forking_tests::exited_ok_within(pid, 20) {
                break;
            }
            finished += 1;
        }
        stop.store(true, Ordering::Relaxed);
        setter.join().unwrap();
        assert_eq!(
            finished, forks,
            "a child forked during set_var hung reading its settings (forks that finished before it)"
        );
    }

    /// A `struct_size` ending inside a string's pointer (no version of the
    /// struct has one): the pointer's first half was read with the rest
    /// of it NULL's, an address nobody gave, and the tracer read a string
    /// there: a crash across the C ABI (SIGSEGV). Now INVALID_ARGUMENT,
    /// for the first string and for the last one added (env_set_by_host).
    #[test]
    fn a_struct_size_ending_inside_a_pointer_is_refused() {
        for (field, at) in [
            (
                "service_name",
                std::mem::offset_of!(spanguard_config, service_name),
            ),
            (
                "env_set_by_host",
                std::mem::offset_of!(spanguard_config, env_set_by_host),
            ),
        ] {
            let mut c = config_for_test();
            c.service_name = c"svc".as_ptr();
            c.env_set_by_host = c"OTEL_EXPORTER_OTLP_PROTOCOL".as_ptr();
            c.endpoint = c"discard:".as_ptr();
            c.install_signal_handlers = SPANGUARD_SIGNAL_HANDLERS_NONE;
            c.struct_size = (at + 4) as u32;
            let mut t = std::ptr::null_mut();
            // SAFETY: a config filled by init, whole; t is an out pointer.
            let got = unsafe { spanguard_tracer_new(&c, &mut t) };
            assert_eq!((field, got), (field, spanguard_result::InvalidArgument));
            assert!(t.is_null());
        }
    }

    /// A resource's and a scope's complex values (`SPANGUARD_VALUE_ANY`:
    /// what a bridge gives for a map or a mixed list) arrive on the
    /// exported batch as OTLP `AnyValue`s, cut to the tracer's value depth
    /// limit as a span attribute's; one that is not well formed is refused
    /// with `SPANGUARD_RESULT_INVALID_ANY_VALUE`, nothing set. Before, both
    /// calls skipped complex values in silence: neither key was exported
    /// and the malformed one returned OK. Judged by the JSON sink.
    /// A value type that is none of `SPANGUARD_VALUE_*` (a C caller's bad
    /// value) in a resource's or scope's attributes: refused with
    /// INVALID_ARGUMENT, as a span's call refuses it, and nothing set.
    /// Before, it was skipped (OK, the attribute not sent, counted
    /// nowhere). Judged by the JSON sink: the resource and scope set
    /// before stay whole.
    /// What `spanguard_tracer_endpoint` answers: the URL the config named,
    /// asked for its length first; nothing for `discard:` (no backend).
    /// The bindings compare it with an OpenTelemetry SDK exporter's to say
    /// when every span is sent twice to one backend.
    #[test]
    fn the_endpoint_is_the_configured_url_and_none_for_discard() {
        let endpoint_of = |url: &std::ffi::CStr| {
            let mut c = config_for_test();
            c.endpoint = url.as_ptr();
            c.install_signal_handlers = SPANGUARD_SIGNAL_HANDLERS_NONE;
            let mut t = std::ptr::null_mut();
            // SAFETY: a config filled by init; t is an out pointer.
            assert_eq!(
                unsafe { spanguard_tracer_new(&c, &mut t) },
                spanguard_result::Ok
            );
            let mut n = usize::MAX;
            // SAFETY: t is live; NULL with len 0 asks for the length.
            let asked = unsafe { spanguard_tracer_endpoint(t, std::ptr::null_mut(), 0, &mut n) };
            let mut buf = vec![0 as c_char; n + 1];
            let mut m = 0;
            // SAFETY: buf holds n + 1 bytes.
            let got = unsafe { spanguard_tracer_endpoint(t, buf.as_mut_ptr(), buf.len(), &mut m) };
            // SAFETY: t came from tracer_new, freed once.
            unsafe { spanguard_tracer_free(t) };
            assert_eq!(
                (asked, got, m),
                (spanguard_result::BufferTooSmall, spanguard_result::Ok, n)
            );
            // SAFETY: the call wrote a NUL-terminated string into buf.
            unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
                .to_str()
                .expect("utf-8")
                .to_string()
        };
        assert_eq!(
            endpoint_of(c"http://127.0.0.1:9/v1/traces"),
            "http://127.0.0.1:9/v1/traces"
        );
        assert_eq!(endpoint_of(c"discard:"), "");
    }

    #[test]
    fn resource_and_scope_values_of_no_known_type_are_refused() {
        let dir = std::env::temp_dir().join(format!("spanguard-badtype-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let sink = std::ffi::CString::new(dir.to_str().expect("utf-8")).expect("no NUL");
        let mut c = config_for_test();
        c.sink_dir = sink.as_ptr();
        c.install_signal_handlers = SPANGUARD_SIGNAL_HANDLERS_NONE;
        let mut t = std::ptr::null_mut();
        // SAFETY: a config filled by init; t is an out pointer.
        assert_eq!(
            unsafe { spanguard_tracer_new(&c, &mut t) },
            spanguard_result::Ok
        );
        let int_attr = |key: &'static std::ffi::CStr, type_: u32| {
            // SAFETY: all-zero is a valid spanguard_attribute.
            let mut a: spanguard_attribute = unsafe { std::mem::zeroed() };
            a.key = key.as_ptr();
            a.key_len = key.to_bytes().len();
            a.type_ = type_;
            a.int_value = 7;
            a
        };
        let scope = |t, attrs: &[spanguard_attribute]| {
            // SAFETY: t is live; the attributes are valid for their lengths.
            unsafe {
                spanguard_tracer_set_scope_attributes(
                    t,
                    c"lib".as_ptr(),
                    3,
                    std::ptr::null(),
                    0,
                    std::ptr::null(),
                    0,
                    attrs.as_ptr(),
                    attrs.len(),
                )
            }
        };
        let good = [int_attr(c"kept", SPANGUARD_VALUE_INT)];
        // SAFETY: t is live; the attributes are valid for their lengths.
        let rc = unsafe { spanguard_tracer_set_resource(t, good.as_ptr(), 1) };
        assert_eq!(rc, spanguard_result::Ok);
        assert_eq!(scope(t, &good), spanguard_result::Ok);
        let bad = [
            int_attr(c"replacing", SPANGUARD_VALUE_INT),
            int_attr(c"unknown", 99),
        ];
        // SAFETY: as above.
        let rc = unsafe { spanguard_tracer_set_resource(t, bad.as_ptr(), 2) };
        assert_eq!(rc, spanguard_result::InvalidArgument);
        assert_eq!(scope(t, &bad), spanguard_result::InvalidArgument);
        let mut o = std::mem::MaybeUninit::<spanguard_span_options>::uninit();
        // SAFETY: init writes the whole struct of this size.
        let mut o = unsafe {
            let size = std::mem::size_of::<spanguard_span_options>();
            crate::ffi::span::spanguard_span_options_init_sized(o.as_mut_ptr(), size);
            o.assume_init()
        };
        (o.name, o.name_len) = (c"op".as_ptr(), 2);
        (o.scope_name, o.scope_name_len) = (c"lib".as_ptr(), 3);
        let mut s = SPANGUARD_SPAN_NONE;
        // SAFETY: t is live; the options are valid; s an out pointer.
        let rc = unsafe { crate::ffi::span::spanguard_span_begin_ex(t, &o, &mut s) };
        assert_eq!(rc, spanguard_result::Ok);
        assert_eq!(
            crate::ffi::span::spanguard_span_end(s),
            spanguard_result::Ok
        );
        assert_eq!(spanguard_flush(t, 10_000), spanguard_result::Ok);
        // SAFETY: made by tracer_new, freed once.
        unsafe { spanguard_tracer_free(t) };
        let text: String = std::fs::read_dir(&dir)
            .expect("sink dir")
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .collect();
        assert_eq!(text.matches("\"kept\"").count(), 2, "{text}");
        assert!(!text.contains("replacing"), "{text}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn resource_and_scope_complex_values_are_exported_or_refused() {
        use crate::span::any_value::tests::{array, int, map, string};
        let dir = std::env::temp_dir().join(format!("spanguard-anyres-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let sink = std::ffi::CString::new(dir.to_str().expect("utf-8")).expect("no NUL");
        let mut c = config_for_test();
        c.sink_dir = sink.as_ptr();
        c.install_signal_handlers = SPANGUARD_SIGNAL_HANDLERS_NONE;
        c.value_depth_limit = 2;
        let mut t = std::ptr::null_mut();
        // SAFETY: a config filled by init; t is an out pointer.
        assert_eq!(
            unsafe { spanguard_tracer_new(&c, &mut t) },
            spanguard_result::Ok
        );
        let attr = |key: &'static std::ffi::CStr, value: &[u8]| {
            // SAFETY: all-zero is a valid spanguard_attribute.
            let mut a: spanguard_attribute = unsafe { std::mem::zeroed() };
            a.key = key.as_ptr();
            a.key_len = key.to_bytes().len();
            a.type_ = SPANGUARD_VALUE_ANY;
            a.string_value = value.as_ptr().cast();
            a.string_len = value.len();
            a
        };
        let labels = map(&[("app", string("checkout"))]);
        // Three levels: the innermost array is past the limit of 2.
        let deep = array(&[array(&[array(&[int(7)])])]);
        let mixed = array(&[string("a"), int(1)]);
        let broken = [0x0a, 0x05, b'x'];
        // Bytes: skipped in silence before; OTLP's bytesValue now.
        let blob = [0u8, 1, 2];
        let mut bytes = attr(c"blob", &blob);
        bytes.type_ = SPANGUARD_VALUE_BYTES;
        let resource = [attr(c"k8s.labels", &labels), attr(c"deep", &deep), bytes];
        // SAFETY: t is live; the attributes are valid for their lengths.
        let rc = unsafe { spanguard_tracer_set_resource(t, resource.as_ptr(), 3) };
        assert_eq!(rc, spanguard_result::Ok);
        let scope = [attr(c"mixed", &mixed)];
        // SAFETY: as above.
        let rc = unsafe {
            spanguard_tracer_set_scope_attributes(
                t,
                c"lib".as_ptr(),
                3,
                std::ptr::null(),
                0,
                std::ptr::null(),
                0,
                scope.as_ptr(),
                1,
            )
        };
        assert_eq!(rc, spanguard_result::Ok);
        // Not well formed: refused, and the resource set above stays.
        let bad = [attr(c"other", &labels), attr(c"bad", &broken)];
        // SAFETY: as above.
        let rc = unsafe { spanguard_tracer_set_resource(t, bad.as_ptr(), 2) };
        assert_eq!(rc, spanguard_result::InvalidAnyValue);
        let rc = unsafe {
            spanguard_tracer_set_scope_attributes(
                t,
                c"lib".as_ptr(),
                3,
                std::ptr::null(),
                0,
                std::ptr::null(),
                0,
                bad.as_ptr(),
                2,
            )
        };
        assert_eq!(rc, spanguard_result::InvalidAnyValue);
        let mut o = std::mem::MaybeUninit::<spanguard_span_options>::uninit();
        // SAFETY: init writes the whole struct of this size.
        let mut o = unsafe {
            let size = std::mem::size_of::<spanguard_span_options>();
            crate::ffi::span::spanguard_span_options_init_sized(o.as_mut_ptr(), size);
            o.assume_init()
        };
        (o.name, o.name_len) = (c"op".as_ptr(), 2);
        (o.scope_name, o.scope_name_len) = (c"lib".as_ptr(), 3);
        let mut s = SPANGUARD_SPAN_NONE;
        // SAFETY: t is live; the options are valid; s an out pointer.
        let rc = unsafe { crate::ffi::span::spanguard_span_begin_ex(t, &o, &mut s) };
        assert_eq!(rc, spanguard_result::Ok);
        assert_eq!(
            crate::ffi::span::spanguard_span_end(s),
            spanguard_result::Ok
        );
        assert_eq!(spanguard_flush(t, 10_000), spanguard_result::Ok);
        // The deep value's cut is counted, as a span attribute's.
        let mut stats = spanguard_counters {
            struct_size: std::mem::size_of::<spanguard_counters>() as u32,
            ..Default::default()
        };
        // SAFETY: t is live; stats is the whole struct.
        assert_eq!(
            unsafe { spanguard_stats(t, &mut stats) },
            spanguard_result::Ok
        );
        assert_eq!(stats.values_truncated, 1);
        // SAFETY: made by tracer_new, freed once.
        unsafe { spanguard_tracer_free(t) };
        let mut text = String::new();
        for e in std::fs::read_dir(&dir).expect("sink dir").flatten() {
            text.push_str(&String::from_utf8_lossy(
                &std::fs::read(e.path()).unwrap_or_default(),
            ));
        }
        let want = [
            "{\"key\":\"k8s.labels\",\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"app\",\"value\":{\"stringValue\":\"checkout\"}}]}}}",
            // The array past the depth limit is the empty value.
            "{\"key\":\"deep\",\"value\":{\"arrayValue\":{\"values\":[{\"arrayValue\":{\"values\":[{}]}}]}}}",
            "{\"key\":\"mixed\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"a\"},{\"intValue\":\"1\"}]}}}",
            "{\"key\":\"blob\",\"value\":{\"bytesValue\":\"AAEC\"}}",
        ];
        for w in want {
            assert_eq!(text.matches(w).count(), 1, "{w}: {text}");
        }
        assert!(!text.contains("\"other\""), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_empty_service_name_is_taken_as_none() {
        for name in [c"", c"  "] {
            let mut c = config_for_test();
            c.service_name = name.as_ptr();
            // SAFETY: the struct's strings are NULL or NUL-terminated.
            let Ok(t) = (unsafe { to_tracer_config(&c) }) else {
                panic!("{name:?}: refused");
            };
            assert_eq!(
                t.service_name,
                TracerConfig::default().service_name,
                "{name:?}"
            );
        }
    }

    /// The struct's resource text reads as OTEL_RESOURCE_ATTRIBUTES does: a
    /// '%' that starts no escape is refused, with the field named; its
    /// headers keep one (an API key may hold it).
    #[test]
    fn resource_attributes_with_a_broken_escape_are_refused() {
        let mut c = config_for_test();
        c.resource_attributes = c"team=a,discount=50%".as_ptr();
        c.headers = c"x-key=ab%zz".as_ptr();
        // SAFETY: the struct's strings are NULL or NUL-terminated.
        let Err(e) = (unsafe { to_tracer_config(&c) }) else {
            panic!("taken");
        };
        assert_eq!(e.code, spanguard_result::InvalidConfig);
        assert!(e.message.contains("resource_attributes"), "{}", e.message);
        c.resource_attributes = c"team=a,discount=50%25".as_ptr();
        // SAFETY: as above.
        let Ok(t) = (unsafe { to_tracer_config(&c) }) else {
            panic!("refused");
        };
        assert_eq!(t.resource_attributes[1].1, "50%");
        assert_eq!(t.headers, vec![("x-key".to_string(), "ab%zz".to_string())]);
    }

    #[test]
    fn header_version_macros_agree_with_the_crate() {
        assert_eq!(
            SPANGUARD_VERSION_MAJOR.to_string(),
            env!("CARGO_PKG_VERSION_MAJOR")
        );
        assert_eq!(
            SPANGUARD_VERSION_MINOR.to_string(),
            env!("CARGO_PKG_VERSION_MINOR")
        );
        assert_eq!(
            SPANGUARD_VERSION_PATCH.to_string(),
            env!("CARGO_PKG_VERSION_PATCH")
        );
    }
}
