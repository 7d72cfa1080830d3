//! A tracer: the Rust-level API the C entry points call. Recording calls
//! (`begin`, attributes, events, `end`) run on the caller's thread and, once
//! the thread has made its first span, take no lock, make no system call and
//! allocate nothing; everything slow happens on the exporter thread.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::buffer::bias::Owner;
use crate::buffer::dump::{DumpHeader, MAGIC_CRASH_DUMP, MAGIC_FLIGHT, flight_pool_offset};
use crate::buffer::files;
use crate::buffer::payload_pool::{PayloadPool, PoolBacking, chunks_for_mib};
use crate::buffer::slab::{
    EndedUnqueued, FirstTry, Hold, SlabBacking, SlotError, SpanSlab, header_generation,
    header_state,
};
use crate::buffer::wait_hooks::{after as wait_hooks_after, before as wait_hooks_before};
use crate::config::{FullPolicy, TracerConfig};
use crate::export::batch_sizer::BatchSizer;
use crate::export::discard::DiscardTransport;
use crate::export::exporter::Exporter;
use crate::export::file_sink::FileSink;
use crate::export::http::HttpTransport;
use crate::export::resource::ResourceInfo;
use crate::export::transport::Transport;
use crate::pipeline::{
    ExportSignal, FlightFile, FlushOutcome, LIFECYCLE_FROZEN, LIFECYCLE_RUNNING,
    LIFECYCLE_SHUT_DOWN, LIFECYCLE_SHUTTING_DOWN, OpenSpansEnd, Pipeline,
};
use crate::span::clock::now_unix_ns;
use crate::span::ids::IdSource;
use crate::span::limits::*;
use crate::span::record::*;
use crate::span::traceparent::{FLAG_RANDOM, FLAG_SAMPLED, KNOWN_FLAGS, RemoteParent};
use crate::span::tracestate::Tracestate;
use crate::stats::{Stats, StatsSnapshot};

/// The transport `config` names (and the sink's file, for the local
/// sink). `abort_requests_at` is the transport's (see
/// `ExportSignal::abort_requests_at`).
fn transport_of(
    config: &TracerConfig,
    abort_requests_at: &Arc<std::sync::atomic::AtomicU64>,
) -> (Box<dyn Transport>, Option<std::path::PathBuf>) {
    match &config.endpoint {
        Some(url) if url == DISCARD_ENDPOINT => (Box::new(DiscardTransport), None),
        Some(url) => (
            Box::new(HttpTransport::new(
                url,
                &config.headers,
                &config.tls,
                config.request_timeout,
                Arc::clone(abort_requests_at),
            )),
            None,
        ),
        None => {
            let sink = FileSink::new(&config.sink_dir, &config.service_name);
            let path = sink.path().to_path_buf();
            (Box::new(sink), Some(path))
        }
    }
}

/// The fingerprint of the sender a tracer made with `config` sends
/// through (`Transport::sender_fingerprint`): the files its process
/// leaves name it, and it recovers only those (`spool::destination_of`).
/// For `spanguard spool` and `why`, to say which files wait for another.
pub fn sender_fingerprint_of(config: &TracerConfig) -> Option<u64> {
    transport_of(config, &Default::default())
        .0
        .sender_fingerprint()
}

/// The slab and the payload pool, in a flight-recorder file when
/// configured (falling back to memory, with the reason on stderr, if the
/// file cannot be made): the header, the slots, then the pool from the
/// next page, sparse until chunks are written.
/// The flight file's name says whose spans it holds (`destination`:
/// `spool::destination_tag`), so that only a sender set up alike
/// recovers it.
fn make_slab(
    config: &TracerConfig,
    destination: Option<u64>,
) -> std::io::Result<(SpanSlab, PayloadPool, Option<FlightFile>)> {
    let slots = config.slot_count();
    let chunks = chunks_for_mib(config.payload_pool_mib);
    if config.flight_recorder {
        let made = (|| {
            // Sized on this thread (the program's): past the file size
            // limit, the kernel killed the program (SIGXFSZ) right here.
            files::within_file_size_limit(crate::buffer::dump::largest_file(slots, chunks))?;
            files::ensure_private_dir(&config.spool_dir)?;
            let path = config.spool_dir.join(format!(
                "{:020}-{:010}-{:x}{}{}.sgflight",
                now_unix_ns(),
                std::process::id(),
                crate::span::ids::new_span_id_u64(),
                crate::export::spool::record_lock_tag(),
                crate::export::spool::destination_tag_in(&config.spool_dir, destination)
            ));
            // Locked while the process lives: recovery knows it from a dead
            // owner's. Locked before its name shows it: a recovery beside
            // us (another program on this spool directory starting up)
            // that found it made and not yet locked deleted it as a dead
            // owner's empty file, and the tracer went on without its
            // flight recorder.
            let file = files::create_locked(&path, true)?;
            // Mapped through an open file of its own, not the locked one: a
            // mapping keeps its open file (and so that file's lock) alive,
            // and a forked child keeps the mapping, so the lock would
            // outlive this process in every child that does not exec.
            let mapped = files::open_found(&path, true).map_err(|r| match r {
                files::Refusal::Failed(e) => e,
                other => std::io::Error::other(format!("{}: {other:?}", path.display())),
            })?;
            let prefix = std::mem::size_of::<DumpHeader>();
            let made = (|| {
                let slab = SpanSlab::new(slots, SlabBacking::File(mapped.try_clone()?), prefix)?;
                // The header's and the slots' disk blocks, now: a slot page
                // the disk had no room for would be a SIGBUS at the span
                // that first writes it. No room: no flight recorder (the
                // pool reserves its own as it goes; see payload_pool).
                files::reserve(&mapped, 0, slab.mapping_len() as u64).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                })?;
                let pool_offset = flight_pool_offset(slab.mapping_len());
                let pool = PayloadPool::new(chunks, PoolBacking::File(mapped, pool_offset))?;
                Ok::<_, std::io::Error>((slab, pool, pool_offset))
            })();
            let (slab, pool, pool_offset) = made.inspect_err(|_| {
                // Nothing of ours in it yet: not left for recovery to find.
                let _ = std::fs::remove_file(&path);
            })?;
            let (path, here) = hold_record_lock(path, &file)?;
            let mut header = DumpHeader::new(
                MAGIC_FLIGHT,
                slots,
                &config.service_name,
                &config.resource(),
            );
            header.pool_offset = pool_offset;
            header.pool_chunks = chunks;
            // SAFETY: the mapping starts with `prefix` bytes reserved for it.
            unsafe { slab.mapping_start().cast::<DumpHeader>().write(header) };
            Ok::<_, std::io::Error>((slab, pool, FlightFile { path, file, here }))
        })();
        match made {
            Ok((slab, pool, flight)) => return Ok((slab, pool, Some(flight))),
            // Not eprintln!: this may run in a forked child (its tracer is
            // made at its first use), where Rust's stderr lock may be held
            // for good by a thread of the parent (`diagnostics::write_to_stderr`).
            Err(e) => crate::export::diagnostics::write_to_stderr(
                format!("spanguard: flight recorder off: {e}\n").as_bytes(),
            ),
        }
    }
    Ok((
        SpanSlab::new(slots, SlabBacking::Anonymous, 0)?,
        PayloadPool::new(chunks, PoolBacking::Anonymous)?,
        None,
    ))
}

/// Takes the record lock of the flight file at `path` (`file`), which no
/// child inherits, and its open file's lock, which every holder of its
/// flock shares (`spool::record_lock_tag`): a recovery tells by these two
/// alone, whatever the PID namespace it runs in, a child holding a dead
/// owner's flock from a live owner. Makes the file known as open here
/// (`files::OpenHere`): no other part of this process opens it, whose
/// close would let go of the record lock. Taken once the making closed
/// what it opened of the file (the slab's and the pool's descriptors),
/// before the header says it is a flight file (a recovery through that
/// lock wants a whole header). Where they cannot be taken (a file system
/// without record locks, a kernel without open file description locks),
/// the mark leaves the name and the flock alone says this process lives,
/// as before; Err when that name cannot be given (the file is removed).
/// The file's path now.
fn hold_record_lock(
    path: std::path::PathBuf,
    file: &files::LockedFile,
) -> std::io::Result<(std::path::PathBuf, Option<files::OpenHere>)> {
    let held = matches!(
        files::try_open_file_lock(file.file(), files::OPEN_FILE_BYTE),
        Ok(true)
    ) && matches!(files::try_record_lock(file.file()), Ok(true));
    let here = file
        .file()
        .metadata()
        .ok()
        .and_then(|m| files::OpenHere::take(&m));
    if held && here.is_some() {
        return Ok((path, here));
    }
    let unmarked = crate::export::spool::without_record_lock_mark(&path);
    match files::rename_new(&path, &unmarked) {
        Ok(()) => Ok((unmarked, here)),
        // Held, only not known here: the exporter takes the lock again
        // at each look, should a close elsewhere let go of it.
        Err(_) if held => Ok((path, here)),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

/// Makes the spool directory (and the sink's, when spans go there) 0700 if
/// missing, and refuses to start when one belongs to another user or is
/// shared (`buffer::files::ensure_private_dir`): that user could read every
/// span, or plant links and FIFOs that the tracer would follow. A
/// configuration error that names the setting and the directory. A
/// directory that merely cannot be made (read-only disk) is not a reason
/// to refuse: tracing works without a spool, and the sink reports its
/// failures per batch.
fn refuse_foreign_directories(config: &TracerConfig, uses_sink: bool) -> Result<(), TracerError> {
    match foreign_directory(config, uses_sink, files::ensure_private_dir) {
        Some(e) => Err(TracerError::Config(e)),
        None => Ok(()),
    }
}

/// The refusal `Tracer::new` would make of `config`'s directories (the
/// spool's, the sink's when spans go there, the state directory above
/// them), judged without making or changing anything: `spanguard check`
/// said "spans go to the local sink DIR" and exited 0 for a directory
/// another user had made first, while every tracer there refused to start.
pub fn directory_refused(config: &TracerConfig) -> Option<crate::config::ConfigError> {
    let uses_sink = config.endpoint.is_none();
    foreign_directory(config, uses_sink, files::judge_private_dir)
}

/// The first directory of `config`'s that `judge` finds another user's
/// (`files::is_foreign_directory`), as the configuration error that names
/// its setting.
fn foreign_directory(
    config: &TracerConfig,
    uses_sink: bool,
    judge: fn(&std::path::Path) -> std::io::Result<()>,
) -> Option<crate::config::ConfigError> {
    let state = crate::config::default_state_dir();
    let mut dirs = vec![("spool_dir (SPANGUARD_SPOOL_DIR)", &config.spool_dir)];
    if uses_sink {
        dirs.push(("sink_dir (SPANGUARD_SINK_DIR)", &config.sink_dir));
    }
    let mut checked: Vec<&std::path::PathBuf> = Vec::with_capacity(4);
    for (setting, dir) in dirs {
        // The default state directory is ours too: another user who made
        // it first (it may be in a shared /tmp) would control what is in
        // it, whoever owns the directories we then make inside.
        let own_root = dir.starts_with(&state).then_some((
            "the state directory (XDG_STATE_HOME, HOME or TMPDIR)",
            &state,
        ));
        for (name, d) in own_root.into_iter().chain([(setting, dir)]) {
            // Each directory once: by default the state directory is the
            // root of both, and a sink in the spool directory is common
            // (6-7 system calls a check).
            if checked.contains(&d) {
                continue;
            }
            checked.push(d);
            if let Err(e) = judge(d)
                && files::is_foreign_directory(&e)
            {
                return Some(crate::config::ConfigError::new(
                    name,
                    Some(&d.display().to_string()),
                    &e.to_string(),
                ));
            }
        }
    }
    None
}

/// The endpoint that sends every batch nowhere (benchmarks' null sink).
pub const DISCARD_ENDPOINT: &str = "discard:";

/// A span inside one tracer: its slot and the slot's generation when the
/// span began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanRef {
    pub slot: u32,
    pub generation: u32,
}

#[derive(Clone, Copy, Debug)]
pub enum Parent {
    None,
    Local(SpanRef),
    Remote(RemoteParent),
    /// Ids another tracer chose (a bridge from an OpenTelemetry SDK): the
    /// span has exactly these, and its sampled flag is the decision.
    Explicit(ExplicitIds),
    /// A local parent known by its handle (when it has one in this tracer)
    /// and by the context it had when it began. A binding whose span values
    /// are copied (Go's) keeps that context in each copy: a child begun
    /// after the parent was exported (its handle stale) still joins the
    /// parent's trace, as OpenTelemetry asks of an ended span. While the
    /// handle is live it is `Local` (the parent's tracestate inherited).
    /// No handle: a `SpanRef` whose slot is past the slab's.
    Kept(SpanRef, RemoteParent),
}

/// The ids of a span made by another tracer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExplicitIds {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// All zero for a root span.
    pub parent_span_id: [u8; 8],
    pub trace_flags: u8,
    /// The parent's context came from another process.
    pub parent_is_remote: bool,
    /// The other SDK applied its span limits already: the tracer's do not
    /// apply to this span (see `MARK_LIMITED_BY_CALLER`).
    pub limited_by_caller: bool,
}

/// Attributes handed to `Tracer::begin_ex` and `Tracer::set_attributes`:
/// a slice of Rust values, or (from the C ABI) the caller's C array, read
/// in place once it has been checked. Copying a C array into a slice of
/// Rust values first cost a span with three attributes about 50
/// instructions, and a stack frame big enough for the largest count.
pub trait AttributeSource {
    fn is_empty(&self) -> bool;
    /// Gives `sink` each attribute's key and value, in order.
    fn for_each<'s>(&'s self, sink: &mut impl AttributeSink<'s>);
}

/// What takes the attributes of an `AttributeSource`. A trait rather than
/// a closure so that its method can be `inline(always)`: the source's
/// match on the C value type and the setter's match on the value's kind
/// then fold into one, which a closure too big for the inliner kept
/// apart.
pub trait AttributeSink<'s> {
    fn attribute(&mut self, key: &'s [u8], value: AttrInput<'s>);
}

impl AttributeSource for AttributeSlice<'_> {
    #[inline(always)]
    fn is_empty(&self) -> bool {
        <[_]>::is_empty(self)
    }

    #[inline(always)]
    fn for_each<'s>(&'s self, sink: &mut impl AttributeSink<'s>) {
        for &(key, value) in self {
            sink.attribute(key, value);
        }
    }
}

/// Attributes as Rust values: the `AttributeSource` of Rust callers.
pub type AttributeSlice<'a> = [(&'a [u8], AttrInput<'a>)];

/// Everything a span may begin with; `Tracer::begin_ex` takes it. The
/// attributes are an `AttributeSlice` unless `with_attributes` gave
/// another source. (No default for `A`: cbindgen, which reads every
/// struct of the crate, panics on a default it cannot parse.)
#[derive(Clone, Copy, Debug)]
pub struct BeginOptions<'a, A: AttributeSource + ?Sized> {
    pub name: &'a [u8],
    /// OTLP SpanKind, 0..=5.
    pub kind: u8,
    pub parent: Parent,
    /// The W3C tracestate of a remote or explicit parent (a combined header
    /// value); a local parent's is inherited instead. Invalid: discarded.
    pub tracestate: &'a [u8],
    /// 0: now.
    pub start_unix_ns: u64,
    /// The instrumentation scope (an OpenTelemetry tracer's name and
    /// version); empty for spanguard's own.
    pub scope_name: &'a [u8],
    pub scope_version: &'a [u8],
    /// The scope's schema URL (`ScopeSpans.schema_url`); empty for none.
    pub scope_schema_url: &'a [u8],
    pub attributes: &'a A,
    /// false: when every slot is taken and the full policy is to wait,
    /// fail with `SpanError::WouldWait` (nothing counted) instead, for a
    /// caller that must not block (see `spanguard_span_try_begin_packed`).
    pub may_wait: bool,
    /// The caller has waited for a slot already, elsewhere, as long as the
    /// tracer's `full_wait` (a green thread trying with `may_wait` false
    /// and yielding to its hub between tries, `SPANGUARD_SPAN_OPTION_WAITED`):
    /// where every slot is still taken, the span is dropped and counted as
    /// after a wait that ran out, at once, and values that find the payload
    /// pool used up are cut, not waited for. Without it, a last begin that
    /// may wait stalled the hub's every greenlet for a second `full_wait`.
    pub waited_elsewhere: bool,
}

impl<'a, A: AttributeSource + ?Sized> BeginOptions<'a, A> {
    /// The same options with `attributes` instead.
    #[inline(always)]
    pub fn with_attributes<B: AttributeSource + ?Sized>(
        &self,
        attributes: &'a B,
    ) -> BeginOptions<'a, B> {
        BeginOptions {
            name: self.name,
            kind: self.kind,
            parent: self.parent,
            tracestate: self.tracestate,
            start_unix_ns: self.start_unix_ns,
            scope_name: self.scope_name,
            scope_version: self.scope_version,
            scope_schema_url: self.scope_schema_url,
            attributes,
            may_wait: self.may_wait,
            waited_elsewhere: self.waited_elsewhere,
        }
    }
}

impl<'a> BeginOptions<'a, AttributeSlice<'a>> {
    /// A span named `name` of `kind` under `parent`, with nothing else.
    pub fn new(name: &'a [u8], kind: u8, parent: Parent) -> BeginOptions<'a, AttributeSlice<'a>> {
        BeginOptions {
            name,
            kind,
            parent,
            tracestate: &[],
            start_unix_ns: 0,
            scope_name: &[],
            scope_version: &[],
            scope_schema_url: &[],
            attributes: &[],
            may_wait: true,
            waited_elsewhere: false,
        }
    }
}

/// A volatile read of an id (`N` bytes, `N` a multiple of 8, at an
/// 8-byte-aligned offset of the slot) as `N / 8` word loads: a volatile
/// read of a byte array is compiled as one load and one store per byte,
/// 24 of each for a trace and a span id, on every child's begin (its
/// parent's context) and every `spanguard_span_ids`. A child's begin + end
/// went from 710 to 599 instructions (`bench/c/span_instructions child`).
///
/// # Safety
/// `id` must be readable, 8-byte aligned (the offsets are asserted below).
unsafe fn read_volatile_words<const N: usize>(id: &[u8; N]) -> [u8; N] {
    let mut out = [0u8; N];
    let words = id.as_ptr().cast::<u64>();
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        // SAFETY: i * 8 + 8 <= N, and the caller vouches for the alignment.
        let w = unsafe { std::ptr::read_volatile(words.add(i)) };
        chunk.copy_from_slice(&w.to_ne_bytes());
    }
    out
}

const _: () = {
    assert!(std::mem::offset_of!(SpanRecord, trace_id) % 8 == 0);
    assert!(std::mem::offset_of!(SpanRecord, span_id) % 8 == 0);
};

/// What a child needs of its local parent, read without locking it.
#[derive(Clone, Copy)]
struct ParentView {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    trace_flags: u8,
    marks: u8,
}

pub use crate::span::record::RawStr;
/// An attribute value to record: strings, bytes, scalars and arrays.
pub use crate::span::record::ValueInput as AttrInput;

/// What a tracer was given at run time (`Tracer::given_at_run_time`).
#[derive(Clone)]
pub struct RunTimeGiven {
    pub resource: Option<Vec<(String, crate::config::ResourceValue)>>,
    pub scopes: Vec<crate::pipeline::ScopeGiven>,
    /// The error callback (`set_callback`), with the application's
    /// pointer: a fork copies the memory both point into.
    pub callback: Option<crate::pipeline::SharedCallback>,
}

/// A call did what was asked but changed the input to fit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notice {
    pub truncated: bool,
    pub replaced_utf8: bool,
    /// `begin` with a local parent that had already been exported: the span
    /// began a new trace.
    pub parent_stale: bool,
    /// `begin`: the sampler left the span out; it propagates its context
    /// and records nothing.
    pub non_recording: bool,
}

impl Notice {
    fn from_text(o: TextOutcome) -> Notice {
        Notice {
            truncated: o.truncated,
            replaced_utf8: o.replaced_utf8,
            ..Notice::default()
        }
    }

    fn merge(self, o: TextOutcome) -> Notice {
        Notice {
            truncated: self.truncated || o.truncated,
            replaced_utf8: self.replaced_utf8 || o.replaced_utf8,
            ..self
        }
    }
}

/// `signal` as a span records it, if it is a signal's number (1 to
/// SIGRTMAX): what `Tracer::shutdown_for_signal` accepts.
pub fn signal_number(signal: i32) -> Option<i16> {
    i16::try_from(signal)
        .ok()
        .filter(|&s| s >= 1 && i32::from(s) <= libc::SIGRTMAX())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanError {
    /// The handle names no live span of this tracer.
    Stale,
    /// The span was ended already.
    Ended,
    /// The tracer is shut down (or shutting down).
    ShutDown,
    /// Every slot is taken and the full policy gave up; counted.
    BufferFull,
    /// Every slot is taken and the full policy is to wait, which the caller
    /// refused (`BeginOptions::may_wait`); nothing was counted. Or values
    /// that may wait for payload chunks (`Tracer::try_set_attributes`):
    /// nothing was set. Or another caller holds the span, which
    /// `try_set_attributes` and `try_end` do not wait for: nothing done.
    WouldWait,
    /// The span's attribute, event or link table is full; counted.
    LimitReached,
    /// The kind or status code is out of range.
    InvalidArgument,
    /// An attribute's key was empty (OpenTelemetry forbids it): not set,
    /// counted as dropped.
    EmptyKey,
    /// The span is not recording (the sampler left it out): nothing was
    /// done, which is not a failure.
    NonRecording,
}

impl From<SlotError> for SpanError {
    fn from(e: SlotError) -> SpanError {
        match e {
            SlotError::Stale => SpanError::Stale,
            SlotError::Ended => SpanError::Ended,
        }
    }
}

#[derive(Debug)]
pub enum TracerError {
    Config(crate::config::ConfigError),
    Io(std::io::Error),
}

pub struct Tracer {
    pipeline: Arc<Pipeline>,
    /// Where the file sink writes, when it is the destination.
    sink_path: Option<std::path::PathBuf>,
}

impl Tracer {
    pub fn new(config: TracerConfig) -> Result<Tracer, TracerError> {
        config.validate().map_err(TracerError::Config)?;
        let abort_requests_at = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (transport, sink_path) = transport_of(&config, &abort_requests_at);
        Tracer::start(config, transport, sink_path, abort_requests_at)
    }

    /// A tracer that sends every request through `transport` instead of
    /// the one its config names (an embedder's own transport; tests).
    pub fn with_transport(
        config: TracerConfig,
        transport: Box<dyn Transport>,
    ) -> Result<Tracer, TracerError> {
        config.validate().map_err(TracerError::Config)?;
        Tracer::start(config, transport, None, Default::default())
    }

    /// `abort_requests_at` is the transport's (see `ExportSignal::abort_requests_at`).
    fn start(
        mut config: TracerConfig,
        transport: Box<dyn Transport>,
        sink_path: Option<std::path::PathBuf>,
        abort_requests_at: Arc<std::sync::atomic::AtomicU64>,
    ) -> Result<Tracer, TracerError> {
        refuse_foreign_directories(&config, sink_path.is_some())?;
        // Each tracer is a new instance, also a forked child's replacement.
        config.detected_resource = crate::export::resource::detect();
        // The first sample of the clock's calibration (see span::clock).
        crate::span::clock::recalibrate();
        // Whose spans the files a dead process leaves hold: only a sender
        // set up like this one recovers them (`SpoolDir::takes`).
        let destination = transport.sender_fingerprint();
        // Not for the file sink (`export::stand_in`, "The file sink").
        let stand_in_for = sink_path.is_none().then(|| crate::pipeline::StandInFor {
            target: transport.describe(),
            sender: destination,
            refusal: transport.refusal_fingerprint(),
        });
        let (slab, pool, flight) = make_slab(&config, destination).map_err(TracerError::Io)?;
        if config.prefault_slots {
            slab.populate_all();
        }
        // Also without the crash handlers (the termination watchdog alone,
        // Go's default): the watchdog writes what its flush left (open
        // spans, spans ended since) to this file, sent at the next start.
        let crash_file = if config.install_signal_handlers && flight.is_none() {
            let header = DumpHeader::new(
                MAGIC_CRASH_DUMP,
                0,
                &config.service_name,
                &config.resource(),
            );
            // Without a writable spool there is no crash dump, but tracing
            // still works: not a reason to fail.
            crate::watchdog::crash::create_crash_file(
                &config.spool_dir,
                crate::span::ids::new_span_id_u64(),
                destination,
                header,
            )
            .ok()
        } else {
            None
        };
        let file_sink = sink_path.is_some();
        let first_batch_target = BatchSizer::first_threshold(config.batch_ceiling());
        let end_check_mask = crate::pipeline::end_check_mask(config.max_export_batch_size);
        let pipeline = Arc::new(Pipeline {
            config,
            slab,
            pool,
            stats: Stats::default(),
            lifecycle: std::sync::atomic::AtomicU32::new(LIFECYCLE_RUNNING),
            signal: ExportSignal::new(first_batch_target).sharing_abort_with(abort_requests_at),
            callback: Default::default(),
            crash_file,
            flight,
            in_flight: Default::default(),
            exporter_thread: Mutex::new(None),
            stand_in_for,
            exporter_tid: Default::default(),
            frozen_by: Default::default(),
            frozen_from: Default::default(),
            end_check_mask,
            full_wait_in_vain_at: Default::default(),
            full_waiters: Default::default(),
            rests_taken: Default::default(),
            rests_run_out_over_a_waiter: Default::default(),
            rests_planned_ns: Default::default(),
            resource_given: Mutex::new(None),
            scope_table: Mutex::new(Vec::new()),
            resource_changed: Default::default(),
        });
        let exporter = Exporter::new(Arc::clone(&pipeline), transport, file_sink);
        let handle = crate::watchdog::stuck_exporter::spawn_exporter(&pipeline, exporter)
            .map_err(TracerError::Io)?;
        if let Ok(mut slot) = pipeline.exporter_thread.lock() {
            *slot = Some(handle);
        }
        Ok(Tracer {
            pipeline,
            sink_path,
        })
    }

    /// Starts a stand-in for an exporter stuck in a request
    /// (`watchdog::stuck_exporter`); true then.
    fn stand_in_if_stuck(&self) -> bool {
        crate::watchdog::stuck_exporter::stand_in_if_stuck(&self.pipeline)
    }

    pub fn config(&self) -> &TracerConfig {
        &self.pipeline.config
    }

    /// A forked child's tracer, made at its first use from its parent's
    /// config and what the parent's was given at run time (None: another
    /// thread of the parent was setting it at the fork, said as a warning).
    /// None when it cannot be made, said once on stderr, or the child's
    /// spans would vanish with nothing but "not recorded" codes to show for
    /// it. Lines go out by write(2) (`diagnostics::write_to_stderr`): the
    /// child may hold Rust's stderr lock as its parent's thread left it.
    pub fn new_in_forked_child(
        config: TracerConfig,
        given: Option<RunTimeGiven>,
    ) -> Option<Tracer> {
        let log_level = config.log_level;
        let say = |line: String| crate::export::diagnostics::write_to_stderr(line.as_bytes());
        match Tracer::new(config) {
            Ok(tracer) => {
                match given {
                    Some(given) => tracer.give(given),
                    None if log_level >= crate::config::LogLevel::Warn => say(format!(
                        "spanguard: warning: this forked process (pid {}) sends its spans \
                         without the resource and scope attributes set at run time, and tells \
                         the error callback of none of its failures: another thread was setting \
                         them at the fork\n",
                        std::process::id()
                    )),
                    None => {}
                }
                Some(tracer)
            }
            Err(e) => {
                if log_level != crate::config::LogLevel::None {
                    let e = match e {
                        TracerError::Config(c) => c.to_string(),
                        TracerError::Io(io) => io.to_string(),
                    };
                    say(format!(
                        "spanguard: error: this forked process (pid {}) could not start its \
                         tracer, so its spans are not recorded: {e}\n",
                        std::process::id()
                    ));
                }
                None
            }
        }
    }

    /// What `set_resource`, `set_scope_attributes` and `set_callback` gave
    /// this tracer (the resource attributes, None if never set; the scopes
    /// given attributes; the error callback), for the tracer that replaces
    /// it in a forked child: without them, a prefork server's workers sent
    /// their spans under the configured service name and without their
    /// scopes' attributes, and their failures were said to no callback
    /// where their parent's were. Runs in the child, where a lock some
    /// thread of the parent held at the fork stays held: None then (a fork
    /// during another thread's `set_resource`), and the caller says so.
    pub fn given_at_run_time(&self) -> Option<RunTimeGiven> {
        fn read<T: Clone>(m: &Mutex<T>) -> Option<T> {
            match m.try_lock() {
                Ok(g) => Some(g.clone()),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner().clone()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }
        let p = &self.pipeline;
        Some(RunTimeGiven {
            resource: read(&p.resource_given)?,
            scopes: read(&p.scope_table)?,
            callback: read(&p.callback.current)?,
        })
    }

    /// Gives this tracer what another one was given at run time
    /// (`given_at_run_time`).
    pub fn give(&self, given: RunTimeGiven) {
        if let Some(resource) = given.resource {
            let _ = self.set_resource(resource);
        }
        for scope in given.scopes {
            let _ = self.set_scope_attributes(scope);
        }
        self.pipeline.callback.set_shared(given.callback);
    }

    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    pub fn sink_path(&self) -> Option<&std::path::Path> {
        self.sink_path.as_deref()
    }

    #[inline]
    fn running(&self) -> bool {
        self.pipeline.lifecycle() == LIFECYCLE_RUNNING
    }

    /// For a span begun, changed or ended while a termination signal's
    /// flush has frozen the tracer ahead of the host's own handler (the
    /// dump, `announce_delivery`) or while that handler runs on another
    /// thread: waits for the thaw that follows its return (as long as
    /// the freeze can last, `thaw_wait`), and answers the lifecycle then (as
    /// it is, when there is nothing to wait for), for the caller to judge
    /// as it judged the first: a begin goes on if running, a change or an
    /// end unless shut down. That handler may have woken this thread to
    /// act on the signal first (Go's wakes the signal.Notify goroutine),
    /// whose last spans were refused as shut down; and what an
    /// OpenTelemetry bridge passes on to its open spans as the tracer
    /// stops (Go's FlushOnSignals) was refused too, the spans exported
    /// with what they had at their start only. The program's shutdown
    /// often begins right after the thaw, before this thread wakes: a
    /// change that waited was then refused as shut down (only "running"
    /// counted), while the end right after it, made while the tracer shut
    /// down, was accepted, and the span arrived ended without it.
    #[cold]
    #[inline(never)]
    fn lifecycle_after_host_handler(&self) -> u32 {
        use crate::watchdog::signals::{
            host_handler_left_here, host_handler_pending_here, host_handler_running_elsewhere,
            thaw_wait,
        };
        if self.pipeline.lifecycle() == LIFECYCLE_FROZEN
            && (host_handler_running_elsewhere()
                || host_handler_pending_here()
                || host_handler_left_here())
        {
            let deadline = crate::span::clock::instant_after(Instant::now(), thaw_wait());
            self.pipeline.await_thaw(deadline);
        }
        self.pipeline.lifecycle()
    }

    /// Counts a wait for a slot that a caller waited elsewhere (a green
    /// thread trying with `may_wait` false and letting its hub run between
    /// tries) in `slot_waits` and `slot_wait_ns`, as a native wait counts
    /// itself: those waits are the application's time too, and stats and
    /// `spanguard why` said none.
    ///
    /// The time is the caller's figure, any u64: added saturating, so
    /// that a bogus one (a negative interval cast to unsigned) stops the
    /// total at u64::MAX rather than wrapping it back to a small, believable
    /// figure. Not the hot path: once a green thread's wait ends.
    pub fn count_slot_wait_elsewhere(&self, waited: Duration) {
        let p = &self.pipeline;
        Stats::add(&p.stats.slot_waits, 1);
        let waited = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        // Release, as `Stats::add`.
        let _ = p
            .stats
            .slot_wait_ns
            .fetch_update(Ordering::Release, Ordering::Relaxed, |total| {
                Some(total.saturating_add(waited))
            });
    }

    /// Shut down, or being shut down (`shutdown`): a forked child's copy
    /// stays so rather than coming back to life as a new tracer.
    pub fn is_shut_down(&self) -> bool {
        matches!(
            self.pipeline.lifecycle(),
            LIFECYCLE_SHUTTING_DOWN | LIFECYCLE_SHUT_DOWN
        )
    }

    /// Starts a span. Hot path.
    #[inline]
    pub fn begin(
        &self,
        name: &[u8],
        parent: Parent,
        kind: u8,
    ) -> Result<(SpanRef, Notice), SpanError> {
        self.begin_ex(&BeginOptions::new(name, kind, parent))
    }

    /// Starts a span that has `attributes` from its start (OpenTelemetry's
    /// attributes at creation): one call and no lock of the span for them,
    /// where `begin` then `set_attributes` take two calls and a lock.
    /// Attributes that do not fit the table (more than `MAX_ATTRIBUTES`
    /// distinct keys) are dropped, counted, and reported as truncated.
    #[inline]
    pub fn begin_with_attributes(
        &self,
        name: &[u8],
        parent: Parent,
        kind: u8,
        attributes: &[(&[u8], AttrInput)],
    ) -> Result<(SpanRef, Notice), SpanError> {
        self.begin_ex(&BeginOptions {
            attributes,
            ..BeginOptions::new(name, kind, parent)
        })
    }

    /// Starts a span as `opts` says. The sampler decides whether it records
    /// (except for explicit ids, whose sampled flag is the decision); an
    /// unsampled span still takes a slot for its ids and tracestate, so it
    /// propagates its context, but stores nothing else and is never
    /// exported. Inlined into the callers above, where the options that are
    /// empty fold away.
    #[inline(always)]
    pub fn begin_ex<A: AttributeSource + ?Sized>(
        &self,
        opts: &BeginOptions<A>,
    ) -> Result<(SpanRef, Notice), SpanError> {
        self.begin_keeping_ids(opts)
            .map(|(s, notice, _)| (s, notice))
    }

    /// `begin_ex` that also gives the span's context (its ids and flags),
    /// for a binding that keeps it in each copy of its span value; what
    /// the others do not use folds away.
    #[inline(always)]
    pub fn begin_keeping_ids<A: AttributeSource + ?Sized>(
        &self,
        opts: &BeginOptions<A>,
    ) -> Result<(SpanRef, Notice, RemoteParent), SpanError> {
        if !self.running() && self.lifecycle_after_host_handler() != LIFECYCLE_RUNNING {
            return Err(SpanError::ShutDown);
        }
        if opts.kind > 5 {
            return Err(SpanError::InvalidArgument);
        }
        let p = &self.pipeline;
        // Resolve a local parent before taking a slot, so a failure here
        // leaves nothing half-made.
        let mut notice = Notice::default();
        let (context, marks, inherit) = match opts.parent {
            Parent::None => (Context::Root, 0, None),
            Parent::Remote(r) => (
                Context::Child {
                    trace_id: r.trace_id,
                    parent_id: r.span_id,
                    parent_flags: r.trace_flags,
                },
                MARK_PARENT_REMOTE,
                None,
            ),
            // A parent kept by its handle is the same child while it lives.
            Parent::Local(s) | Parent::Kept(s, _) => match (self.read_parent(s), opts.parent) {
                (Some(view), _) => (
                    Context::Child {
                        trace_id: view.trace_id,
                        parent_id: view.span_id,
                        parent_flags: view.trace_flags,
                    },
                    0,
                    (view.marks & MARK_HAS_TRACESTATE != 0).then_some(s),
                ),
                // Gone (or another tracer's): the context it kept, still a
                // local parent, without its tracestate, which only a live
                // span holds.
                (None, Parent::Kept(_, kept)) => (
                    Context::Child {
                        trace_id: kept.trace_id,
                        parent_id: kept.span_id,
                        parent_flags: kept.trace_flags & KNOWN_FLAGS,
                    },
                    0,
                    None,
                ),
                (None, _) => {
                    notice.parent_stale = true;
                    (Context::Root, 0, None)
                }
            },
            Parent::Explicit(ids) => (
                Context::Given {
                    trace_id: ids.trace_id,
                    span_id: ids.span_id,
                    parent_id: ids.parent_span_id,
                    flags: ids.trace_flags & KNOWN_FLAGS,
                },
                (if ids.parent_is_remote && ids.parent_span_id != [0; 8] {
                    MARK_PARENT_REMOTE
                } else {
                    0
                }) | if ids.limited_by_caller {
                    MARK_LIMITED_BY_CALLER
                } else {
                    0
                },
                None,
            ),
        };
        // Read before the slot is taken, as in `end`: the compare-exchange
        // and the clock read overlap.
        let start_unix_ns = if opts.start_unix_ns != 0 {
            opts.start_unix_ns
        } else {
            now_unix_ns()
        };
        let (slot, generation, ids) = self.take_slot(opts.may_wait, opts.waited_elsewhere)?;
        // The new ids after the slot: from the generator of the cache the
        // slot came from, in hand now (a thread-local's was a call to
        // `__tls_get_addr` a span). Then the sampler, which decides by the
        // trace id.
        let sampler = &p.config.sampler;
        let (trace_id, span_id, parent_id, flags) = match context {
            // The ids are random, which the random flag says (W3C Level 2).
            Context::Root => {
                let (trace_id, span_id) = ids.root_ids();
                let sampled = sampler.sampled(&trace_id, None);
                (trace_id, span_id, [0u8; 8], FLAG_RANDOM | sampled as u8)
            }
            // A child keeps its parent's flags but for the sampled bit,
            // which is its own decision.
            Context::Child {
                trace_id,
                parent_id,
                parent_flags,
            } => {
                let sampled = sampler.sampled(&trace_id, Some(parent_flags));
                (
                    trace_id,
                    ids.span_id(),
                    parent_id,
                    parent_flags & !FLAG_SAMPLED | sampled as u8,
                )
            }
            Context::Given {
                trace_id,
                span_id,
                parent_id,
                flags,
            } => (trace_id, span_id, parent_id, flags),
        };
        let context = RemoteParent {
            trace_id,
            span_id,
            trace_flags: flags,
        };
        let recording = flags & FLAG_SAMPLED != 0;
        // SAFETY: take_slot moved the slot to WRITING for us.
        let r = unsafe { p.slab.slot_mut(slot) };
        r.reset();
        r.trace_id = trace_id;
        r.span_id = span_id;
        r.parent_span_id = parent_id;
        r.trace_flags = flags;
        r.kind = opts.kind;
        r.marks = marks;
        r.start_unix_ns = start_unix_ns;
        // The tracestate first: an unsampled span keeps it too, for its
        // children and outgoing requests.
        if let Some(parent) = inherit {
            self.copy_parent_tracestate(parent, r);
        } else if !opts.tracestate.is_empty() {
            store_tracestate(r, opts.tracestate, &mut notice, &p.pool);
        }
        if !recording {
            r.marks |= MARK_NON_RECORDING;
            self.publish_begun(slot, generation)?;
            notice.non_recording = true;
            return Ok((SpanRef { slot, generation }, notice, context));
        }
        // The scope before the name: short (MAX_SCOPE_BYTES) and stored
        // while the arena is nearly empty, it is always there, where the
        // encoders compare scopes byte for byte.
        if !opts.scope_name.is_empty()
            || !opts.scope_version.is_empty()
            || !opts.scope_schema_url.is_empty()
        {
            let (n, o1) = r.store_text(opts.scope_name, MAX_SCOPE_BYTES, &p.pool);
            let (v, o2) = r.store_text(opts.scope_version, MAX_SCOPE_BYTES, &p.pool);
            // Right after the version: its place is found from it.
            let (u, o3) = r.store_text(opts.scope_schema_url, MAX_SCOPE_BYTES, &p.pool);
            let rest = r.rest_mut();
            rest.scope_name = n;
            rest.scope_version = v;
            if u.offset == v.offset + v.len {
                rest.scope_schema_url_len = u.len as u16;
            }
            notice = notice.merge(o1).merge(o2).merge(o3);
        }
        let (name_ref, outcome) = r.store_text(opts.name, MAX_NAME_BYTES, &p.pool);
        r.name = name_ref;
        let mut notice = notice.merge(outcome);
        if !opts.attributes.is_empty() {
            if opts.waited_elsewhere {
                // The pool as it is: never waits, counts running out.
                let (n, lost) = set_attributes(p, r, opts.attributes, &p.pool);
                notice = merge(notice, n);
                notice.truncated |= lost.is_some();
            } else if opts.may_wait {
                notice = merge(notice, set_attributes_cut(p, r, opts.attributes));
            } else {
                let store = TryPool {
                    p,
                    would_wait: Cell::new(false),
                };
                let (n, lost) = set_attributes(p, r, opts.attributes, &store);
                if store.would_wait.get() {
                    return Err(self.begun_in_vain(slot, SpanError::WouldWait));
                }
                notice = merge(notice, n);
                notice.truncated |= lost.is_some();
            }
        }
        self.publish_begun(slot, generation)?;
        Ok((SpanRef { slot, generation }, notice, context))
    }

    /// A slot `begin_ex` took and will not publish (its attributes would
    /// have waited for payload chunks where the begin may not wait): free
    /// again, with its chunks, never counted as a span begun.
    #[cold]
    #[inline(never)]
    fn begun_in_vain(&self, slot: u32, e: SpanError) -> SpanError {
        self.pipeline.slab.take_back(slot, &self.pipeline.pool);
        e
    }

    /// Publishes a span `begin_ex` wrote (OPEN). A shutdown that began since
    /// begin's lifecycle check may have scanned this slot before it was
    /// published: see `taken_back`, which makes the begin fail instead.
    #[inline(always)]
    fn publish_begun(&self, slot: u32, generation: u32) -> Result<(), SpanError> {
        self.pipeline.slab.publish_open(slot, generation);
        if !self.running() && self.taken_back(slot, generation) {
            return Err(SpanError::ShutDown);
        }
        Ok(())
    }

    /// For a span published while a shutdown (or a fatal signal's freeze)
    /// began: whether it took the span back, which then was never begun.
    /// Shutdown moves the lifecycle, waits a grace period, then ends every
    /// span it finds open or being written (`Pipeline::end_open_spans`);
    /// a begin past its lifecycle check may still publish after that scan
    /// passed its slot, and nothing would ever export the span. So a begin
    /// that sees the lifecycle moved after publishing takes its slot back
    /// unless the scan ended the span first (then the span is exported,
    /// marked unended, and the begin succeeds). Frozen (a fatal signal) is
    /// left alone: the dump reads what is published, and the process is
    /// ending or thaws back to running.
    #[cold]
    #[inline(never)]
    fn taken_back(&self, slot: u32, generation: u32) -> bool {
        let p = &self.pipeline;
        if p.lifecycle() == LIFECYCLE_FROZEN {
            return false;
        }
        if p.slab.lock_open(slot, generation).is_err() {
            return false; // ended by the shutdown's scan: exported
        }
        p.slab.take_back(slot, &p.pool);
        true
    }

    /// A free slot, now WRITING: the lock-free pop inline, the full
    /// policy out of line.
    #[inline(always)]
    fn take_slot(
        &self,
        may_wait: bool,
        waited_elsewhere: bool,
    ) -> Result<(u32, u32, IdSource<'_>), SpanError> {
        match self
            .pipeline
            .slab
            .take_free_with_ids(|| self.prepare_thread())
        {
            Some(s) => Ok(s),
            None => self.take_slot_when_full(may_wait, waited_elsewhere),
        }
    }

    /// What a thread needs before it records into this tracer, run by the
    /// slot cache on the thread's first span and on each span that misses
    /// its cache's fast path (`slot_cache::take`), not on every begin (23
    /// instructions a span, a thread-local's check): with crash handlers
    /// installed, an alternate stack, so that every thread that records
    /// spans can still run the crash handler after a stack overflow (which
    /// dumps the slots, or with the flight recorder marks the signal and
    /// waits for the batch in flight).
    #[inline(always)]
    fn prepare_thread(&self) {
        let c = &self.pipeline.config;
        if c.install_signal_handlers && c.install_crash_handlers {
            crate::watchdog::crash::ensure_alt_stack();
        }
    }

    #[cold]
    #[inline(never)]
    fn take_slot_when_full(
        &self,
        may_wait: bool,
        waited_elsewhere: bool,
    ) -> Result<(u32, u32, IdSource<'_>), SpanError> {
        let p = &self.pipeline;
        if let Some(s) = p.slab.take_free_with_ids(|| self.prepare_thread()) {
            return Ok(s);
        }
        // A shutdown began since this begin's lifecycle check: a slot
        // taken now would be taken back (`taken_back`), so the answer is
        // ShutDown whatever the room, as for a begin a moment later.
        if self.is_shut_down() {
            return Err(SpanError::ShutDown);
        }
        // Full, perhaps because the exporter is stuck in a request: then
        // a stand-in frees the slots.
        self.stand_in_if_stuck();
        // Full: the exporter frees slots as it encodes, so wake it (a
        // begin about to wait counts itself a waiter first, below).
        if p.config.full_policy != FullPolicy::Wait || !may_wait || waited_elsewhere {
            p.signal.wake();
        }
        if p.config.full_policy == FullPolicy::Wait {
            if waited_elsewhere {
                // The caller's own wait ran out: as this one's would have
                // (the next begins do not wait until the exporter has
                // taken spans again), dropped and counted below.
                p.full_wait_in_vain_at
                    .store(p.slab.exporter_taken() + 1, Ordering::Relaxed);
                Stats::add(&p.stats.dropped_buffer_full, 1);
                return Err(SpanError::BufferFull);
            }
            if !may_wait {
                if p.full_wait_in_vain_at.load(Ordering::Relaxed) == p.slab.exporter_taken() + 1 {
                    // A begin that may wait would drop at once here (a
                    // wait was in vain and the exporter has taken nothing
                    // since, below): so does this one. A green thread's
                    // begin, told WouldWait, let its hub run for another
                    // whole `full_wait` each time, the native one none.
                    Stats::add(&p.stats.dropped_buffer_full, 1);
                    return Err(SpanError::BufferFull);
                }
                // The caller begins again where it may wait: not a drop.
                return Err(SpanError::WouldWait);
            }
            // Slots come back only from the exporter, as it takes ended
            // spans. So a wait is in vain when every slot holds an open
            // span (more spans open at once than slots: only ends can
            // help, and on an event loop, Node's or asyncio's, the thread
            // that would end them is this one, blocked), or when the
            // exporter takes nothing (stuck sending to a backend that does
            // not answer). A begin waited 200 ms and dropped its span
            // either way, each time, stalling the application for minutes
            // (found by the Node and Python audits). Now a wait ends as
            // soon as nothing is left for the exporter to take, and after
            // a wait in vain the next begins do not wait until the
            // exporter has taken spans again.
            //
            // A shutdown that begins during the wait answers it: ShutDown,
            // at once. The slots do come back (the shutdown's exporter
            // takes every span), and a begin that took one then had it
            // taken back as shut down; but one whose wait ran out first
            // said BufferFull and counted a span dropped for want of room,
            // for a span the shutdown refused. `make stress`'s
            // begin_during_shutdown met it: its six threads filled the
            // 20480 slots with ended spans before the exporter took its
            // first (slower to start on a loaded machine), a begin waited,
            // the shutdown began, and the exporter's first slots came back
            // past the waiter's 200 ms.
            let taken = p.slab.exporter_taken();
            if p.full_wait_in_vain_at.load(Ordering::Relaxed) != taken + 1 {
                // Counted a waiter before the wake: the exporter looks at
                // `full_waiters` under the signal's mutex, which the wake
                // takes, so a resting exporter (its CPU cap) sees this
                // begin waiting and ends its rest (`Exporter::throttle`),
                // and a sleeping one takes the spans ended, however few
                // (`begin_waits_for_ended` in export/exporter.rs).
                p.full_waiters.fetch_add(1, Ordering::Relaxed);
                // Read before the wake: an end after it is then seen as news.
                let queued = p.slab.spans_queued_ever();
                p.signal.wake();
                // The begin holds no span: the hooks' `after` at once.
                let hooks = wait_hooks_before();
                let started = Instant::now();
                let got = self.wait_for_slot(started + p.config.full_wait, queued);
                // Said to the user (`slot_waits`, `slot_wait_ns`): a
                // thread recording faster than the exporter spends this
                // time here, not recording. A begin that found only open
                // spans did not wait.
                if got.as_ref().is_some_and(|g| g.is_ok()) || !p.slab.every_slot_open() {
                    Stats::add(&p.stats.slot_waits, 1);
                    let waited = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    Stats::add(&p.stats.slot_wait_ns, waited);
                }
                if hooks != 0 {
                    wait_hooks_after(hooks);
                }
                p.full_waiters.fetch_sub(1, Ordering::Relaxed);
                if let Some(got) = got {
                    return got;
                }
                p.full_wait_in_vain_at
                    .store(p.slab.exporter_taken() + 1, Ordering::Relaxed);
            } else {
                p.signal.wake();
            }
            if self.is_shut_down() {
                return Err(SpanError::ShutDown);
            }
        }
        Stats::add(&p.stats.dropped_buffer_full, 1);
        Err(SpanError::BufferFull)
    }

    /// `take_slot_when_full`'s wait: a slot, or ShutDown once a shutdown
    /// has begun, or None by `deadline` or once every slot holds an open
    /// span (only ends can free one). `queued`: the spans ever queued for
    /// the exporter when the begin last woke it.
    ///
    /// Each look (at least one a `SLOT_WAIT_LONGEST_SLEEP`) wakes the
    /// exporter again when spans were queued since and are still there: an
    /// end queues its span without waking the exporter below its batch
    /// target, so a begin that woke it with nothing ended yet (the free
    /// slots in other threads' caches, or an end halfway) waited out its
    /// `full_wait` and dropped its span beside one ended after its wake
    /// (the exporter's next look, at its schedule delay or its search
    /// for leftovers, came after). One wake a look at most, on the
    /// waiter's side: the recording path does nothing new.
    fn wait_for_slot(
        &self,
        deadline: Instant,
        queued: u64,
    ) -> Option<Result<(u32, u32, IdSource<'_>), SpanError>> {
        let p = &self.pipeline;
        let queued_at_wake = std::cell::Cell::new(queued);
        let look = || {
            let queued = p.slab.spans_queued_ever();
            if queued != queued_at_wake.get() && p.slab.ended_len() > 0 {
                queued_at_wake.set(queued);
                p.signal.wake();
            }
            self.is_shut_down() || p.slab.every_slot_open()
        };
        while Instant::now() < deadline && !p.slab.every_slot_open() {
            // Until the exporter gives slots back (it wakes us), the
            // deadline, a shutdown, or only open spans left.
            p.slab.wait_for_free_slot(look, deadline);
            if let Some(s) = p.slab.take_free_with_ids(|| self.prepare_thread()) {
                return Some(Ok(s));
            }
            if self.is_shut_down() {
                return Some(Err(SpanError::ShutDown));
            }
        }
        None
    }

    /// Tests only: how many begins wait for a free slot now (a full slab
    /// under `FullPolicy::Wait`), each past its lifecycle check.
    #[doc(hidden)]
    pub fn begins_waiting_for_slot_for_test(&self) -> u32 {
        self.pipeline.full_waiters.load(Ordering::Relaxed)
    }

    /// Tests only: rests the exporter took for its CPU cap, how many of
    /// them ran their planned length with a begin waiting for a slot, and
    /// their planned lengths in all, ns (see `Pipeline::rests_taken`).
    #[doc(hidden)]
    pub fn exporter_rests_for_test(&self) -> (u64, u64, u64) {
        let p = &self.pipeline;
        (
            p.rests_taken.load(Ordering::Relaxed),
            p.rests_run_out_over_a_waiter.load(Ordering::Relaxed),
            p.rests_planned_ns.load(Ordering::Relaxed),
        )
    }

    /// The ids, flags and marks of a live span, read without locking it:
    /// they never change while a slot keeps its generation, and the header
    /// is checked again after the read (a seqlock read). All on the
    /// record's first line.
    #[inline]
    fn read_parent(&self, s: SpanRef) -> Option<ParentView> {
        if s.slot >= self.pipeline.slab.capacity() {
            return None;
        }
        let r = self.pipeline.slab.slot(s.slot);
        let live = |h: u64| header_generation(h) == s.generation && header_state(h) != 0;
        if !live(r.header.load(Ordering::Acquire)) {
            return None;
        }
        // SAFETY: the fields are plain bytes inside a live mapping; a racing
        // reuse of the slot is detected by the second header check below.
        let view = unsafe {
            ParentView {
                trace_id: read_volatile_words(&r.trace_id),
                span_id: read_volatile_words(&r.span_id),
                trace_flags: std::ptr::read_volatile(&r.trace_flags),
                marks: std::ptr::read_volatile(&r.marks),
            }
        };
        std::sync::atomic::fence(Ordering::Acquire);
        live(r.header.load(Ordering::Relaxed)).then_some(view)
    }

    /// The tracestate of a live span, copied out under the same seqlock
    /// check as `read_parent`. None when the span is gone; empty when it
    /// has none.
    fn read_tracestate(&self, s: SpanRef) -> Option<([u8; MAX_TRACESTATE_BYTES], usize)> {
        if s.slot >= self.pipeline.slab.capacity() {
            return None;
        }
        let r = self.pipeline.slab.slot(s.slot);
        let live = |h: u64| header_generation(h) == s.generation && header_state(h) != 0;
        if !live(r.header.load(Ordering::Acquire)) {
            return None;
        }
        let mut out = [0u8; MAX_TRACESTATE_BYTES];
        // SAFETY: as in read_parent; `raw` bounds the reference by the arena.
        let len = unsafe {
            if std::ptr::read_volatile(&r.marks) & MARK_HAS_TRACESTATE == 0 {
                0
            } else {
                let t = r.stored_tracestate();
                let bytes = r.raw(t);
                let n = bytes.len().min(MAX_TRACESTATE_BYTES);
                for (o, b) in out.iter_mut().zip(&bytes[..n]) {
                    *o = std::ptr::read_volatile(b);
                }
                n
            }
        };
        std::sync::atomic::fence(Ordering::Acquire);
        live(r.header.load(Ordering::Relaxed)).then_some((out, len))
    }

    /// Gives a child its local parent's tracestate (OpenTelemetry: a child's
    /// span context keeps its parent's trace state). Cold: only spans under
    /// a parent that has one get here.
    #[inline(never)]
    fn copy_parent_tracestate(&self, parent: SpanRef, child: &mut SpanRecord) {
        if let Some((bytes, len)) = self.read_tracestate(parent)
            && len > 0
        {
            let (t, _) = child.store_text(&bytes[..len], MAX_TRACESTATE_BYTES, &self.pipeline.pool);
            child.rest_mut().tracestate = t;
            child.marks |= MARK_HAS_TRACESTATE;
        }
    }

    /// Takes an open span for writing (under its bias, or WRITING), for a
    /// call past its check that the tracer runs.
    #[inline(always)]
    fn lock_span(&self, s: SpanRef) -> Result<Hold<'_>, SpanError> {
        self.pipeline
            .slab
            .hold_open(s.slot, s.generation)
            .map_err(|e| self.lock_refused(e))
    }

    /// `lock_span` for a caller that must not wait for another holder of
    /// the span (`SpanSlab::try_hold_open`): WouldWait where `lock_span`
    /// would wait, nothing taken or changed.
    #[inline(always)]
    fn try_lock_span(&self, s: SpanRef) -> Result<Hold<'_>, SpanError> {
        match self.pipeline.slab.try_hold_open(s.slot, s.generation) {
            Ok(Some(hold)) => Ok(hold),
            Ok(None) => Err(SpanError::WouldWait),
            Err(e) => Err(self.lock_refused(e)),
        }
    }

    /// Why a span could not be taken for writing. A call that passed its
    /// lifecycle check as a shutdown began finds the span ended by the
    /// shutdown's scan (or already exported and its slot freed): that is
    /// SHUT_DOWN, as for a call made a moment later, not "ended" or
    /// "stale", which would blame the caller for the race. (A fatal
    /// signal's freeze ends no span: its refusals are the caller's.)
    #[cold]
    #[inline(never)]
    fn lock_refused(&self, e: SlotError) -> SpanError {
        match self.pipeline.lifecycle() {
            LIFECYCLE_SHUTTING_DOWN | LIFECYCLE_SHUT_DOWN => SpanError::ShutDown,
            _ => e.into(),
        }
    }

    /// Runs `f` on a span this caller may write, then publishes it again.
    #[inline]
    fn with_open<T>(
        &self,
        s: SpanRef,
        f: impl FnOnce(&Pipeline, &mut SpanRecord) -> T,
    ) -> Result<T, SpanError> {
        self.with_open_by(s, Self::lock_span, f)
    }

    /// `with_open`, the span taken by `lock` (`lock_span`, or
    /// `try_lock_span` for a caller that must not wait for it).
    #[inline(always)]
    fn with_open_by<'t, T>(
        &'t self,
        s: SpanRef,
        lock: impl FnOnce(&'t Self, SpanRef) -> Result<Hold<'t>, SpanError>,
        f: impl FnOnce(&Pipeline, &mut SpanRecord) -> T,
    ) -> Result<T, SpanError> {
        if self.pipeline.lifecycle() >= LIFECYCLE_SHUT_DOWN
            && self.lifecycle_after_host_handler() >= LIFECYCLE_SHUT_DOWN
        {
            return Err(SpanError::ShutDown);
        }
        // Addressed before the lock, whose handshake fence would make the
        // slab's base be loaded again after it (`slot_address`). Not in
        // `stamp_end`: there the address outlived the clock read in a
        // spilled register, and the end cost 2 instructions more.
        let record = self.pipeline.slab.slot_address(s.slot);
        let hold = lock(self, s)?;
        // SAFETY: lock_span gave us the slot (its bias, or WRITING), so
        // the index is in bounds and the record ours to write.
        let r = unsafe { &mut *record };
        if r.marks & MARK_NON_RECORDING != 0 {
            self.pipeline.slab.release_open(s.slot, s.generation, hold);
            return Err(SpanError::NonRecording);
        }
        let out = f(&self.pipeline, r);
        self.pipeline.slab.release_open(s.slot, s.generation, hold);
        Ok(out)
    }

    /// Sets one attribute. Generic over the value so that each scalar
    /// setter gets its own copy of the locked section, with the value's
    /// kind known when it is compiled: one shared copy matched the kind at
    /// run time and cost an int attribute 24 more instructions than before
    /// arrays and bytes joined the value kinds.
    ///
    /// The common case (the span held under its bias or by one
    /// compare-exchange, a new short ASCII key, a scalar or a short ASCII
    /// string: `SpanRecord::try_set_short_attribute`) makes no call; every
    /// other goes out of line whole, ending the setter (a tail call). With
    /// a call that returned into it, the setter kept the record, the
    /// pipeline, the owner and the value on the stack and saved six
    /// registers on every call. A long string (an LLM prompt) goes out of
    /// line at once.
    #[inline(always)]
    pub fn set_attribute<'a, V: Into<AttrInput<'a>> + Copy>(
        &self,
        s: SpanRef,
        key: &[u8],
        value: V,
    ) -> Result<Notice, SpanError> {
        match self.set_attribute_first_try(s, key, value) {
            None => Ok(Notice::default()),
            // SAFETY: from this tracer, for this span, used once.
            Some(rest) => unsafe { self.set_attribute_rest(s, key, value, rest) },
        }
    }

    /// `set_attribute`'s common case, with no call: None when it set the
    /// attribute (nothing to say), else what is left to do, for
    /// `set_attribute_rest`. In one word, so that the C ABI's setters
    /// hand it with their own arguments to a function of theirs in
    /// registers, by a tail call (`ffi::span::set_rest`); the hold is let
    /// go of through the record's address, not the slab's (which the
    /// record's writes made the setter load again, keeping the pipeline
    /// and the slot's offset live through them).
    #[inline(always)]
    pub fn set_attribute_first_try<'a, V: Into<AttrInput<'a>> + Copy>(
        &self,
        s: SpanRef,
        key: &[u8],
        value: V,
    ) -> Option<SetRest> {
        if let AttrInput::Str(text) = value.into()
            && text.len() > 32
        {
            return Some(SetRest::FROM_START);
        }
        if self.pipeline.lifecycle() >= LIFECYCLE_SHUT_DOWN {
            return Some(SetRest::FROM_START);
        }
        // Addressed before the hold, as in `with_open`.
        let record = self.pipeline.slab.slot_address(s.slot);
        let hold = match self.pipeline.slab.hold_open_first_try(s.slot, s.generation) {
            FirstTry::Held(hold) => hold,
            FirstTry::Unbias => return Some(SetRest::UNBIAS),
            FirstTry::Missed => return Some(SetRest::FROM_START),
        };
        // SAFETY: held (its bias, or WRITING), so the index is in bounds
        // and the record ours to write.
        let r = unsafe { &mut *record };
        if r.marks & MARK_NON_RECORDING == 0
            && r.try_set_short_attribute(key, &value.into(), limits_of(&self.pipeline, r))
        {
            SpanSlab::release_open_at(r, s.generation, hold);
            return None;
        }
        Some(SetRest::held(hold))
    }

    /// What `set_attribute_first_try` left, done out of line: from the
    /// start (`with_open`), after its compare-exchange found the slot
    /// biased, or with the span held.
    ///
    /// # Safety
    /// `rest` came from `set_attribute_first_try` on this tracer for `s`,
    /// and is used once (it may hold the span).
    #[inline(always)]
    pub unsafe fn set_attribute_rest<'a, V: Into<AttrInput<'a>>>(
        &self,
        s: SpanRef,
        key: &[u8],
        value: V,
        rest: SetRest,
    ) -> Result<Notice, SpanError> {
        match rest.0 {
            SetRest::FROM_START_WORD => self.set_attribute_out_of_line(s, key, value),
            SetRest::UNBIAS_WORD => self.set_attribute_unbiasing(s, key, value),
            SetRest::LOCKED_WORD => self.set_attribute_held(s, key, value, Hold::Locked),
            // SAFETY: the word is the owner's address `SetRest::held` took
            // from a hold of this tracer's slab, which outlives the call.
            owner => self.set_attribute_held(
                s,
                key,
                value,
                Hold::Biased(unsafe { &*(owner as *const Owner) }),
            ),
        }
    }

    /// `set_attribute` from the start: `with_open`, then every case.
    #[inline(never)]
    fn set_attribute_out_of_line<'a, V: Into<AttrInput<'a>>>(
        &self,
        s: SpanRef,
        key: &[u8],
        value: V,
    ) -> Result<Notice, SpanError> {
        let store = WaitingPool::new(&self.pipeline);
        self.with_open(s, |p, r| set_attribute(p, r, key, value.into(), &store))?
    }

    /// `set_attribute` after `hold_open_first_try` took the slot but
    /// found it biased: the bias taken out of line, as `hold_open` does.
    #[cold]
    #[inline(never)]
    fn set_attribute_unbiasing<'a, V: Into<AttrInput<'a>>>(
        &self,
        s: SpanRef,
        key: &[u8],
        value: V,
    ) -> Result<Notice, SpanError> {
        match self.pipeline.slab.unbias_then_lock(s.slot, s.generation) {
            Ok(hold) => self.set_attribute_held(s, key, value, hold),
            Err(e) => Err(self.lock_refused(e)),
        }
    }

    /// `set_attribute` on a span held already, for every case the inline
    /// path leaves: what `with_open` does once it holds the span.
    #[cold]
    #[inline(never)]
    fn set_attribute_held<'a, V: Into<AttrInput<'a>>>(
        &self,
        s: SpanRef,
        key: &[u8],
        value: V,
        hold: Hold<'_>,
    ) -> Result<Notice, SpanError> {
        // SAFETY: held (its bias, or WRITING), as in `with_open`.
        let r = unsafe { &mut *self.pipeline.slab.slot_address(s.slot) };
        if r.marks & MARK_NON_RECORDING != 0 {
            self.pipeline.slab.release_open(s.slot, s.generation, hold);
            return Err(SpanError::NonRecording);
        }
        let store = WaitingPool::new(&self.pipeline);
        let out = set_attribute(&self.pipeline, r, key, value.into(), &store);
        self.pipeline.slab.release_open(s.slot, s.generation, hold);
        // `store` goes after the release: a wait's `after` hook runs with
        // the span let go of.
        drop(store);
        out
    }

    /// Sets several attributes under one lock of the span: the same result
    /// as one `set_attribute` per attribute, with one compare-exchange on
    /// the slot instead of one each. Every attribute that fits is set;
    /// LimitReached if some did not (counted, as for one), else EmptyKey if
    /// one had an empty key (not set, counted).
    #[inline]
    pub fn set_attributes(
        &self,
        s: SpanRef,
        attributes: &[(&[u8], AttrInput)],
    ) -> Result<Notice, SpanError> {
        self.set_attributes_from(s, attributes)
    }

    /// `set_attributes` from any source (the C ABI's: the caller's array,
    /// read in place).
    pub fn set_attributes_from<A: AttributeSource + ?Sized>(
        &self,
        s: SpanRef,
        attributes: &A,
    ) -> Result<Notice, SpanError> {
        let store = WaitingPool::new(&self.pipeline);
        self.with_open(s, |p, r| match set_attributes(p, r, attributes, &store) {
            (_, Some(lost)) => Err(lost),
            (notice, None) => Ok(notice),
        })?
    }

    /// `set_attributes` for a caller that must not block (Go's setter on
    /// its thread's own C stack, `spanguard_span_try_set_attributes_packed`):
    /// attributes whose text may need chunks of the payload pool, where
    /// `set_attributes` may wait for them under `FullPolicy::Wait`, set
    /// nothing and fail with `SpanError::WouldWait`, checked before anything
    /// is written, for the caller to set them again where it may wait.
    /// Nor does it wait for another caller holding the span (a setter
    /// waiting for chunks holds it up to `full_wait`): WouldWait, nothing
    /// set, as well (`try_lock_span`).
    /// `text_bytes` bounds their keys' and string values' bytes together.
    /// The rest never take a chunk (`SpanRecord::surely_fits_the_arena`);
    /// the pool is passed as it is, which never waits (and counts running
    /// out), should the check ever be wrong. Checked first because a wait
    /// refused halfway, with some values written, could only cut the value
    /// it was writing.
    pub fn try_set_attributes(
        &self,
        s: SpanRef,
        attributes: &[(&[u8], AttrInput)],
        text_bytes: usize,
    ) -> Result<Notice, SpanError> {
        self.with_open_by(s, Self::try_lock_span, |p, r| {
            if !r.surely_fits_the_arena(text_bytes, attributes.len()) {
                return Err(SpanError::WouldWait);
            }
            match set_attributes(p, r, attributes, &p.pool) {
                (_, Some(lost)) => Err(lost),
                (notice, None) => Ok(notice),
            }
        })?
    }

    /// For a caller that must not wait (a green thread on its hub's OS
    /// thread, which every green thread shares): makes sure the next
    /// calls on the span that store at most `bytes` bytes (keys, names,
    /// text, array elements) in at most `count` attributes, events or
    /// links take no chunk (`SpanRecord::make_room`), taking the chunks
    /// they may need now, where the pool has them. WouldWait where the
    /// pool is used up and those calls would wait for chunks
    /// (`wait_for_chunk`), or where another caller holds the span (a
    /// setter waiting for chunks holds it up to `full_wait`): the caller
    /// makes its calls where it may wait. Stores and counts nothing else.
    /// No allocation, lock or system call: the span's compare-exchange,
    /// and a pop of the pool's free stack a chunk only where the slot
    /// lacks the room (`room_bound`'s margin may take a chunk a little
    /// early, never one more than the span could use).
    /// InvalidArgument, nothing taken, for calls that may store more than
    /// `MAX_ROOM_MADE`: room is made for short values, and a bound past
    /// it would hand one span chunks the others need (the whole pool, for
    /// a bound of SIZE_MAX); long values are set where they may wait.
    pub fn try_make_room(&self, s: SpanRef, bytes: usize, count: usize) -> Result<(), SpanError> {
        let need = room_bound(bytes, count);
        if need > MAX_ROOM_MADE {
            return Err(SpanError::InvalidArgument);
        }
        self.with_open_by(s, Self::try_lock_span, |p, r| {
            let store = TryPool {
                p,
                would_wait: Cell::new(false),
            };
            if !r.make_room(need, &store) && store.would_wait.get() {
                return Err(SpanError::WouldWait);
            }
            Ok(())
        })?
    }

    /// Adds an event; `time_unix_ns` 0 means now. Its attributes past the
    /// event attribute limit are dropped, counted on the event, and
    /// reported as truncated.
    pub fn add_event(
        &self,
        s: SpanRef,
        name: &[u8],
        time_unix_ns: u64,
        attributes: &[(&[u8], AttrInput)],
    ) -> Result<Notice, SpanError> {
        self.add_event_with_dropped(s, name, time_unix_ns, attributes, 0)
    }

    /// `add_event` for an event another SDK already dropped
    /// `dropped_before` attributes of (a bridge): exported in the event's
    /// dropped count with spanguard's own, as that SDK's exporter would.
    /// Only spanguard's own drops make the notice say truncated.
    pub fn add_event_with_dropped(
        &self,
        s: SpanRef,
        name: &[u8],
        time_unix_ns: u64,
        attributes: &[(&[u8], AttrInput)],
        dropped_before: u32,
    ) -> Result<Notice, SpanError> {
        let time = if time_unix_ns == 0 {
            now_unix_ns()
        } else {
            time_unix_ns
        };
        let store = WaitingPool::new(&self.pipeline);
        self.with_open(s, |p, r| {
            let limits = limits_of(p, r);
            match r.add_event_with_dropped(name, time, attributes, dropped_before, limits, &store) {
                Ok((outcome, dropped)) => {
                    let mut n = Notice::from_text(outcome);
                    n.truncated |= dropped;
                    Ok(n)
                }
                Err(_) => Err(SpanError::LimitReached),
            }
        })?
    }

    pub fn add_link(
        &self,
        s: SpanRef,
        to: LinkContext,
        tracestate: &[u8],
        attributes: &[(&[u8], AttrInput)],
    ) -> Result<Notice, SpanError> {
        self.add_link_with_dropped(s, to, tracestate, attributes, 0)
    }

    /// `add_link` for a link another SDK already dropped `dropped_before`
    /// attributes of, like `add_event_with_dropped`.
    pub fn add_link_with_dropped(
        &self,
        s: SpanRef,
        to: LinkContext,
        tracestate: &[u8],
        attributes: &[(&[u8], AttrInput)],
        dropped_before: u32,
    ) -> Result<Notice, SpanError> {
        let store = WaitingPool::new(&self.pipeline);
        self.with_open(s, |p, r| {
            let limits = limits_of(p, r);
            match r.add_link_with_dropped(
                to,
                tracestate,
                attributes,
                dropped_before,
                limits,
                &store,
            ) {
                Ok((outcome, dropped)) => {
                    let mut n = Notice::from_text(outcome);
                    n.truncated |= dropped;
                    Ok(n)
                }
                Err(_) => Err(SpanError::LimitReached),
            }
        })?
    }

    pub fn set_status(&self, s: SpanRef, code: u8, message: &[u8]) -> Result<Notice, SpanError> {
        if code > STATUS_ERROR {
            return Err(SpanError::InvalidArgument);
        }
        let store = WaitingPool::new(&self.pipeline);
        self.with_open(s, |_, r| {
            // OK is final: a later ERROR or UNSET does not override it; and
            // "an attempt to set value Unset SHOULD be ignored" (the spec),
            // so a `finally` that resets the status keeps an ERROR.
            if r.status_code == STATUS_OK || code == STATUS_UNSET {
                return Notice::default();
            }
            r.status_code = code;
            if code == STATUS_ERROR {
                // Not cut at value_length_limit: OpenTelemetry's limits
                // "apply only to attribute collections"; the pool bounds it.
                Notice::from_text(r.set_status_message(message, &store))
            } else {
                // OK after ERROR: OK has no message. Only a span that has
                // one writes the line to clear it.
                if r.rest().status_message.len != 0 {
                    r.rest_mut().status_message = TextRef::default();
                }
                Notice::default()
            }
        })
    }

    /// Renames the span (OpenTelemetry's `updateName`): the name is cut at
    /// `MAX_NAME_BYTES` like a name given at begin (`SpanRecord::replace_name`).
    pub fn update_name(&self, s: SpanRef, name: &[u8]) -> Result<Notice, SpanError> {
        self.with_open(s, |p, r| Notice::from_text(r.replace_name(name, &p.pool)))
    }

    /// Adds to the span's own dropped counts (OTLP `dropped_*_count`) what
    /// another SDK dropped before handing the span over (a bridge), so the
    /// export says what is missing. Saturates at the fields' width.
    pub fn add_dropped(
        &self,
        s: SpanRef,
        attributes: u32,
        events: u32,
        links: u32,
    ) -> Result<(), SpanError> {
        let add =
            |field: &mut u16, n: u32| *field = field.saturating_add(n.min(u16::MAX as u32) as u16);
        self.with_open(s, |_, r| {
            let rest = r.rest_mut();
            add(&mut rest.dropped_attributes, attributes);
            add(&mut rest.dropped_events, events);
            add(&mut rest.dropped_links, links);
        })
    }

    /// Drops the span's `events` oldest events and `links` oldest links,
    /// counted dropped (`SpanRecord::drop_oldest`): a bridge whose SDK
    /// evicted, past its limit, events or links it had passed on.
    pub fn drop_oldest(&self, s: SpanRef, events: u32, links: u32) -> Result<(), SpanError> {
        self.with_open(s, |p, r| r.drop_oldest(events, links, &p.pool))
    }

    /// `drop_oldest` without counting them (`SpanRecord::drop_oldest_uncounted`):
    /// a bridge that counted them as its SDK evicted them.
    pub fn drop_oldest_uncounted(
        &self,
        s: SpanRef,
        events: u32,
        links: u32,
    ) -> Result<(), SpanError> {
        self.with_open(s, |p, r| r.drop_oldest_uncounted(events, links, &p.pool))
    }

    /// Moves the span's start (e.g. to when work really began).
    pub fn set_start_time(&self, s: SpanRef, start_unix_ns: u64) -> Result<(), SpanError> {
        self.with_open(s, |_, r| r.start_unix_ns = start_unix_ns)
    }

    /// The span's ids (for traceparent injection).
    pub fn span_context(&self, s: SpanRef) -> Result<RemoteParent, SpanError> {
        match self.read_parent(s) {
            Some(v) => Ok(RemoteParent {
                trace_id: v.trace_id,
                span_id: v.span_id,
                trace_flags: v.trace_flags,
            }),
            None => Err(SpanError::Stale),
        }
    }

    /// The span's W3C tracestate (for injection): `len` bytes of the
    /// array, 0 when it has none.
    pub fn span_tracestate(
        &self,
        s: SpanRef,
    ) -> Result<([u8; MAX_TRACESTATE_BYTES], usize), SpanError> {
        self.read_tracestate(s).ok_or(SpanError::Stale)
    }

    /// Ends a span (`end_unix_ns` 0 means now) and hands it to the exporter.
    /// Hot path: one wake-up call per full batch at most. Inlined into its
    /// callers: as a call of its own, `spanguard_span_end` paid a second
    /// prologue, epilogue and result conversion (12 instructions a span).
    #[inline(always)]
    pub fn end(&self, s: SpanRef, end_unix_ns: u64) -> Result<(), SpanError> {
        let hold = self.stamp_end(s, end_unix_ns)?;
        let p = &self.pipeline;
        p.slab.publish_ended_held(s.slot, s.generation, hold);
        // Reading the queue's length touches the line the exporter writes as
        // it pops, so an end looks only when its slot's number plus the
        // slot's generation is a multiple of a power of two up to 16
        // (`pipeline::end_check_mask`): one end in that many of each slot's
        // uses, spread over the slots by their numbers, with no per-thread
        // state to look up. A batch is then at most that many uses of each
        // slot late (the schedule delay and a full slab wake the exporter
        // regardless).
        if s.slot.wrapping_add(s.generation) & p.end_check_mask == 0
            && p.slab.ended_len() >= p.signal.batch_target.0.load(Ordering::Relaxed) as usize
        {
            p.signal.nudge_for_batch();
        }
        Ok(())
    }

    /// `end` for a caller that must not wait for another caller holding the
    /// span (Go's end on its thread's own C stack: a setter waiting for
    /// payload chunks holds the span up to `full_wait`): WouldWait, the span
    /// left open and nothing counted, for the caller to end it with `end`
    /// where it may wait.
    #[inline(always)]
    pub fn try_end(&self, s: SpanRef) -> Result<(), SpanError> {
        self.try_end_at(s, 0)
    }

    /// `try_end` at `end_unix_ns` (0: now), as `end` takes it: for a
    /// caller that ends at a time it was given (an OpenTelemetry bridge's
    /// end under gevent, whose hub must not wait for the holder).
    #[inline(always)]
    pub fn try_end_at(&self, s: SpanRef, end_unix_ns: u64) -> Result<(), SpanError> {
        let hold = self.stamp_end_by(s, end_unix_ns, Self::try_lock_span)?;
        self.hand_ended(s, hold);
        Ok(())
    }

    /// `end` after `stamp_end`: the span to the exporter.
    #[inline(always)]
    fn hand_ended(&self, s: SpanRef, hold: Hold<'_>) {
        let p = &self.pipeline;
        p.slab.publish_ended_held(s.slot, s.generation, hold);
        if s.slot.wrapping_add(s.generation) & p.end_check_mask == 0
            && p.slab.ended_len() >= p.signal.batch_target.0.load(Ordering::Relaxed) as usize
        {
            p.signal.nudge_for_batch();
        }
    }

    /// `end` up to the handoff: checks the tracer is running, takes the
    /// slot (WRITING) and stamps the end time. Shared by `end` and
    /// `end_in_place_for_bench`, so the floor runs the same code.
    #[inline(always)]
    fn stamp_end(&self, s: SpanRef, end_unix_ns: u64) -> Result<Hold<'_>, SpanError> {
        self.stamp_end_by(s, end_unix_ns, Self::lock_span)
    }

    /// `stamp_end`, the span taken by `lock` (as in `with_open_by`).
    #[inline(always)]
    fn stamp_end_by<'t>(
        &'t self,
        s: SpanRef,
        end_unix_ns: u64,
        lock: impl FnOnce(&'t Self, SpanRef) -> Result<Hold<'t>, SpanError>,
    ) -> Result<Hold<'t>, SpanError> {
        let p = &self.pipeline;
        if p.lifecycle() >= LIFECYCLE_SHUT_DOWN
            && self.lifecycle_after_host_handler() >= LIFECYCLE_SHUT_DOWN
        {
            // Shutdown already exported this span as unended (or it is stale).
            return Err(SpanError::ShutDown);
        }
        // The clock is read before the lock is taken: the call's time is
        // when it was made, and the clock read (a microcoded instruction)
        // and the compare-exchange overlap instead of running one after
        // the other.
        let end = if end_unix_ns == 0 {
            now_unix_ns()
        } else {
            end_unix_ns
        };
        let hold = lock(self, s)?;
        // SAFETY: lock gave us the slot (its bias, or WRITING).
        let r = unsafe { p.slab.slot_mut(s.slot) };
        // Never before the start: an explicit time may be, and so may the
        // clock when it was re-anchored in between (see span::clock).
        r.end_unix_ns = end.max(r.start_unix_ns);
        Ok(hold)
    }

    /// Benchmarks only: `end`, except that the slot is freed at once
    /// (generation + 1, back on top of the free stack) instead of handed to
    /// the exporter. A loop of begin, set, `end_in_place_for_bench` reuses
    /// one slot and exports nothing: what the recording calls cost with
    /// every line in this core's cache, the floor `end` is measured
    /// against. A separate entry point, so `end` carries no test-only
    /// branch. The span is begun but never counted as ended or exported.
    #[doc(hidden)]
    pub fn end_in_place_for_bench(&self, s: SpanRef) -> Result<(), SpanError> {
        let hold = self.stamp_end(s, 0)?;
        let p = &self.pipeline;
        // An empty list: a span of the floor loop holds no payload chunks,
        // and one that did would hand them back here.
        let mut chunks = Vec::new();
        p.slab.release_all(&[s.slot], &p.pool, &mut chunks);
        hold.leave_bias();
        Ok(())
    }

    /// Tests only: `end` stopped between its halves, as a thread preempted
    /// there is: the span says ENDED and is in no queue until
    /// `queue_ended_for_test` (`SpanSlab::mark_ended_held`). A separate
    /// entry point, like `end_in_place_for_bench`.
    #[doc(hidden)]
    pub fn end_unqueued_for_test(&self, s: SpanRef) -> Result<EndedUnqueued, SpanError> {
        let hold = self.stamp_end(s, 0)?;
        Ok(self
            .pipeline
            .slab
            .mark_ended_held(s.slot, s.generation, hold))
    }

    /// Tests only: the second half of `end_unqueued_for_test`'s end.
    #[doc(hidden)]
    pub fn queue_ended_for_test(&self, ended: EndedUnqueued) {
        self.pipeline.slab.queue_ended(ended);
    }

    /// Waits until every span ended before this call is exported (or failed
    /// for good, or spooled), or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<FlushOutcome, SpanError> {
        self.stand_in_if_stuck();
        self.pipeline
            .flush_running(timeout)
            .ok_or(SpanError::ShutDown)
    }

    /// See `Pipeline::shutdown`. A second call returns Err(ShutDown).
    pub fn shutdown(&self, timeout: Duration) -> Result<FlushOutcome, SpanError> {
        self.shut_down_ending_open(timeout, OpenSpansEnd::Unended)
    }

    /// `shutdown` for a process that termination signal `signal` is
    /// stopping, caught by the host's own handler rather than the
    /// watchdog (Node's `process.on('SIGTERM')`, Go's `signal.Notify`):
    /// the spans still open are marked interrupted by it, as the
    /// watchdog's dump marks them (`OpenSpansEnd::Interrupted`).
    /// Err(InvalidArgument), nothing done, for a number no signal has
    /// (1 to SIGRTMAX are).
    pub fn shutdown_for_signal(
        &self,
        timeout: Duration,
        signal: i32,
    ) -> Result<FlushOutcome, SpanError> {
        let signal = signal_number(signal).ok_or(SpanError::InvalidArgument)?;
        self.shut_down_ending_open(timeout, OpenSpansEnd::Interrupted(signal))
    }

    fn shut_down_ending_open(
        &self,
        timeout: Duration,
        open: OpenSpansEnd,
    ) -> Result<FlushOutcome, SpanError> {
        self.stand_in_if_stuck();
        self.pipeline
            .shutdown(timeout, crate::watchdog::crash::leave_stuck_exporter, open)
            .ok_or(SpanError::ShutDown)
    }

    /// Sets resource attributes over the configured ones for every batch
    /// encoded from now on: what a bridge passes for the OpenTelemetry SDK
    /// provider whose spans it records, so that they arrive under that
    /// provider's `service.name` and attributes rather than this tracer's
    /// own. The given attributes win, except a `service.name` that is the
    /// SDK's fallback (`unknown_service...`) over one this tracer has. A
    /// crash dump or flight file names it from now on too, as text: spans
    /// recovered from one arrive under it. Err(ShutDown), nothing set,
    /// once the tracer is shut down (no batch would carry it). A complex
    /// value (`ResourceValue::Any`) as `complex_values_limited` takes it:
    /// Err(InvalidArgument), nothing set, for one not well formed.
    pub fn set_resource(
        &self,
        attributes: Vec<(String, crate::config::ResourceValue)>,
    ) -> Result<(), SpanError> {
        if !self.running() {
            return Err(SpanError::ShutDown);
        }
        let p = &self.pipeline;
        let attributes = complex_values_limited(attributes, p)?;
        if let Ok(mut slot) = p.resource_given.lock() {
            // Under the lock: one writer of the dump headers at a time.
            if p.crash_file.is_some() || p.flight.is_some() {
                let resource = ResourceInfo::configured(&p.config).overridden(&attributes);
                let given: Vec<&str> = attributes.iter().map(|(k, _)| k.as_str()).collect();
                let (service, entries) =
                    resource.dump_entries(&given, crate::export::otlp_json::encoded_any_value_text);
                p.set_dump_resource(&service, &entries);
            }
            *slot = Some(attributes);
            p.resource_changed.store(true, Ordering::Release);
        }
        p.signal.wake();
        Ok(())
    }

    /// Sets the attributes of an instrumentation scope (an OpenTelemetry
    /// tracer's, given to `get_tracer`), sent on its `InstrumentationScope`
    /// in every batch encoded from now on; a scope is its name, version and
    /// schema URL, as spans name it (empty: spanguard's own). A call
    /// replaces what an earlier one gave that scope; no attributes: it has
    /// none again. Err(LimitReached), nothing changed, for a new scope when
    /// `MAX_SCOPES_WITH_ATTRIBUTES` have attributes. Spans recovered from a
    /// crash dump or flight file are sent without them (the next process
    /// has not been told them when it recovers). Complex values as
    /// `set_resource` takes them.
    pub fn set_scope_attributes(
        &self,
        mut scope: crate::pipeline::ScopeGiven,
    ) -> Result<(), SpanError> {
        use crate::span::limits::MAX_SCOPES_WITH_ATTRIBUTES;
        if !self.running() {
            return Err(SpanError::ShutDown);
        }
        let p = &self.pipeline;
        scope.attributes = complex_values_limited(scope.attributes, p)?;
        if scope.name.is_empty() && scope.version.is_empty() && scope.schema_url.is_empty() {
            // spanguard's own scope, which spans naming none are sent under
            // by its name and version: kept under the empty name, the
            // encoders' lookup by the scope a batch sends found nothing, and
            // these attributes never went out.
            use crate::export::resource::{OWN_SCOPE_NAME, OWN_SCOPE_VERSION};
            scope.name = OWN_SCOPE_NAME.to_string();
            scope.version = OWN_SCOPE_VERSION.to_string();
        }
        {
            let mut table = p.scope_table.lock().unwrap_or_else(|e| e.into_inner());
            let same = |s: &crate::pipeline::ScopeGiven| {
                s.name == scope.name
                    && s.version == scope.version
                    && s.schema_url == scope.schema_url
            };
            match table.iter().position(same) {
                Some(i) if scope.attributes.is_empty() => {
                    table.remove(i);
                }
                Some(i) => table[i] = scope,
                None if scope.attributes.is_empty() => return Ok(()),
                None if table.len() >= MAX_SCOPES_WITH_ATTRIBUTES => {
                    return Err(SpanError::LimitReached);
                }
                None => table.push(scope),
            }
            p.resource_changed.store(true, Ordering::Release);
        }
        p.signal.wake();
        Ok(())
    }

    pub fn stats(&self) -> StatsSnapshot {
        StatsSnapshot {
            host_handler_waits_ran_out: crate::watchdog::signals::host_handler_waits_ran_out(),
            ..self.pipeline.stats.snapshot(&self.pipeline.slab)
        }
    }

    /// Tests and benchmarks: spans taken from the thread that began them
    /// (`buffer::bias`), and whether new spans are still biased.
    #[doc(hidden)]
    pub fn bias_counts(&self) -> (u64, bool) {
        self.pipeline.slab.bias_counts()
    }

    /// Replaces the error callback; see `pipeline::CallbackSlot` for when
    /// the old one stops running.
    pub fn set_callback(&self, cb: Option<crate::pipeline::EventCallback>) {
        self.pipeline.callback.set(cb);
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.shutdown(self.pipeline.config.export_timeout);
        }
    }
}

/// A span's context as known before its slot is taken: what it still
/// needs is drawn after, from the generator of the slot's cache.
enum Context {
    /// A new trace: a trace id and a span id to draw.
    Root,
    /// In its parent's trace: a span id to draw, and its sampling, which
    /// keeps the parent's other flags.
    Child {
        trace_id: [u8; 16],
        parent_id: [u8; 8],
        parent_flags: u8,
    },
    /// Every id and flag given by the caller.
    Given {
        trace_id: [u8; 16],
        span_id: [u8; 8],
        parent_id: [u8; 8],
        flags: u8,
    },
}

/// Checks and stores a tracestate that came from outside: an invalid one
/// is discarded (the specification's rule), a long one is cut by whole
/// members and reported as truncated.
fn store_tracestate(r: &mut SpanRecord, text: &[u8], notice: &mut Notice, pool: &PayloadPool) {
    if let Ok(ts) = Tracestate::parse(text)
        && !ts.is_empty()
    {
        let (t, _) = r.store_text(ts.as_bytes(), MAX_TRACESTATE_BYTES, pool);
        r.rest_mut().tracestate = t;
        r.marks |= MARK_HAS_TRACESTATE;
        if ts.cut_members > 0 {
            count_one(&mut r.rest_mut().truncated_values);
            notice.truncated = true;
        }
    }
}

fn merge(a: Notice, b: Notice) -> Notice {
    Notice {
        truncated: a.truncated || b.truncated,
        replaced_utf8: a.replaced_utf8 || b.replaced_utf8,
        parent_stale: a.parent_stale || b.parent_stale,
        non_recording: a.non_recording || b.non_recording,
    }
}

/// The payload pool as the setters of an open span take chunks from it:
/// under `FullPolicy::Wait`, a value that finds the pool used up waits for
/// chunks to come back (`wait_for_chunk`) rather than being cut at once.
/// LLM-sized data arrives whole: a burst of spans with 100 KB prompts
/// used up the default 256 MiB pool and cut 1,872 values of 10,000 while
/// the exporter, given time, gave every chunk back.
///
/// One a call, made before the call holds its span and dropped after it
/// let go of it: a wait runs the wait hooks' `before` (`WaitHooks`: a
/// binding lets go of its runtime's lock, Python's GIL), and the drop runs
/// their `after`, once the span is no longer held. Run at the wait's end,
/// `after` would take the GIL back while the span is still held, and
/// another Python thread that holds the GIL while it waits on that span
/// (setting or ending the same span) would wait for ever.
struct WaitingPool<'p> {
    p: &'p Pipeline,
    /// `WaitHooks::before`'s token while its `after` is owed; 0: none.
    hooks_owed: Cell<usize>,
}

impl<'p> WaitingPool<'p> {
    #[inline(always)]
    fn new(p: &'p Pipeline) -> WaitingPool<'p> {
        WaitingPool {
            p,
            hooks_owed: Cell::new(0),
        }
    }

    /// Before a wait's first sleep: the hooks' `before`, once a call.
    #[cold]
    fn about_to_sleep(&self) {
        if self.hooks_owed.get() == 0 {
            self.hooks_owed.set(wait_hooks_before());
        }
    }
}

impl Drop for WaitingPool<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        let token = self.hooks_owed.get();
        if token != 0 {
            wait_hooks_after(token);
        }
    }
}

/// The most that calls storing `bytes` bytes in `count` attributes,
/// events or links can take of a span's room: each byte three times (a
/// byte of bad UTF-8 is replaced by U+FFFD's three), twice again (a value
/// set anew takes room to grow into, up to the next power of two), and
/// per item its node or entry (an `AttributeNode` of 24 bytes and its
/// record of 16; an event's or link's entry of 48 at most) with room for
/// alignment.
/// The most room `Tracer::try_make_room` makes: the chunks a slot lists
/// itself (`DIRECT_CHUNKS`, 64 KiB), far above what a short call needs
/// (Python's binding sends calls of 512 bytes or more to a thread where
/// they may wait: 512 bytes in 129 items is under 12 KiB of room).
const MAX_ROOM_MADE: usize = crate::span::limits::DIRECT_CHUNKS * crate::span::limits::CHUNK_BYTES;

fn room_bound(bytes: usize, count: usize) -> usize {
    bytes
        .saturating_mul(6)
        .saturating_add(count.saturating_mul(64))
        .saturating_add(64)
}

/// The pool for a begin that may not wait (`BeginOptions::may_wait`
/// false): a value that finds it used up where `WaitingPool` would wait
/// sets `would_wait` (the begin then fails with WouldWait), else is cut.
struct TryPool<'p> {
    p: &'p Pipeline,
    would_wait: Cell<bool>,
}

impl ChunkStore for TryPool<'_> {
    #[inline(always)]
    fn take_chunk(&self) -> Option<u32> {
        let returns = self.p.pool.returns();
        match self.p.pool.take_unnoted() {
            Some(c) => Some(c),
            None => self.none_without_waiting(returns),
        }
    }

    #[inline(always)]
    fn chunk_ptr(&self, index: u32) -> Option<std::ptr::NonNull<u8>> {
        self.p.pool.chunk_ptr(index)
    }
}

impl TryPool<'_> {
    #[cold]
    #[inline(never)]
    fn none_without_waiting(&self, returns: u64) -> Option<u32> {
        let p = self.p;
        if p.config.full_policy == FullPolicy::Wait
            && p.pool.may_wait()
            && p.lifecycle() == LIFECYCLE_RUNNING
            && (chunks_may_come_back(p) || p.pool.returns() != returns)
        {
            // Chunks may come back, or came back since the look (WouldWait:
            // the begin again where it may wait finds them).
            self.would_wait.set(true);
        } else {
            p.pool.note_ran_out();
        }
        None
    }
}

impl ChunkStore for WaitingPool<'_> {
    #[inline(always)]
    fn take_chunk(&self) -> Option<u32> {
        match self.p.pool.take_unnoted() {
            Some(c) => Some(c),
            None => wait_for_chunk(self),
        }
    }

    #[inline(always)]
    fn chunk_ptr(&self, index: u32) -> Option<std::ptr::NonNull<u8>> {
        self.p.pool.chunk_ptr(index)
    }
}

/// The wait hooks (`WaitHooks`) live with the slots and chunks a call
/// waits for; set here, run by this module's waits and the span lock's.
pub use crate::buffer::wait_hooks::WaitHooks;

/// Sets the wait hooks (see `WaitHooks`); false when they were set already.
pub fn set_wait_hooks(hooks: WaitHooks) -> bool {
    crate::buffer::wait_hooks::set(hooks)
}

/// A chunk for a value that found the pool used up, under the rules of a
/// begin that finds the slots full (`Tracer::take_slot_when_full`):
///
/// - Only under `FullPolicy::Wait`, and only while the tracer runs (not
///   shutting down, not frozen by a signal's flush or a crash: the freeze
///   gives calls past their check 2 ms to publish, and this one sees it
///   within a poll, 50 µs).
/// - Chunks come back only from the exporter, once it has encoded spans
///   that ended. So the wait ends, the value cut, as soon as no span is
///   ended and not yet given back (queued, or in the exporter's batch):
///   the chunks are all held by open spans, and only their ends can help,
///   and on an event loop (Node's, asyncio's) the thread that would end
///   them is this one. That includes this wait's own span and the other
///   setters waiting with chunks of their values: they cut, they never
///   wait for each other.
/// - At most `full_wait`; after a wait in vain, values do not wait until
///   chunks have come back since (a stuck exporter stalls no setter
///   twice).
///
/// The setter holds its span meanwhile (WRITING or biased): another
/// thread's call on the same span, its end, waits as on any write of the
/// span, for at most this wait. The exporter takes only ended spans; a
/// shutdown's scan that ends open spans locks them, and this wait ends
/// at the shutdown's start; a fork copies no waiting thread.
#[cold]
#[inline(never)]
fn wait_for_chunk(store: &WaitingPool) -> Option<u32> {
    let got = wait_for_chunk_or_cut(store);
    if got.is_none() {
        store.p.pool.note_ran_out();
    }
    got
}

fn wait_for_chunk_or_cut(store: &WaitingPool) -> Option<u32> {
    let p = store.p;
    let pool = &p.pool;
    if p.config.full_policy != FullPolicy::Wait || !pool.may_wait() {
        return None;
    }
    // Woken, the exporter takes a batch now rather than at its schedule.
    p.signal.wake();
    let deadline = Instant::now() + p.config.full_wait;
    let mut slept = false;
    let got = loop {
        let returns = pool.returns();
        if let Some(c) = pool.take_unnoted() {
            break Some(c);
        }
        let running = p.lifecycle() == LIFECYCLE_RUNNING;
        // Chunks given back since the look above are on the stack: a look
        // that then finds no slot that could give more is not in vain
        // (the exporter gives a slot's chunks back before it says FREE).
        let in_vain = running
            && (Instant::now() >= deadline
                || (!chunks_may_come_back(p) && pool.returns() == returns));
        if !running || in_vain {
            if in_vain {
                pool.note_wait_in_vain(returns);
            }
            if slept {
                Stats::add(&p.stats.payload_waits_cut, 1);
            }
            break None;
        }
        if !slept {
            slept = true;
            pool.note_waited();
            Stats::add(&p.stats.payload_waits, 1);
            store.about_to_sleep();
        }
        std::thread::sleep(Duration::from_micros(50));
    };
    if slept {
        // This call held its span all along: a call sleeping for it
        // (`let_go::SPANS`) looks again soon, as this call finishes its
        // value and lets go (no system call when none sleeps).
        crate::buffer::let_go::SPANS.wake();
    }
    got
}

/// Whether a span is ended and not yet given back (queued for the
/// exporter, or in its batch): only those give chunks back. The queues
/// first; with them empty, a look at the headers of the slots in use for
/// one ENDED (between its end and its queueing) or EXPORTING (the batch
/// being encoded, whose chunks come back once it is; a released slot
/// says FREE). A pass over the slots, on this cold path only, while
/// nothing is queued.
fn chunks_may_come_back(p: &Pipeline) -> bool {
    use crate::buffer::slab::{STATE_ENDED, STATE_EXPORTING};
    if p.slab.ended_len() > 0 {
        return true;
    }
    // Acquire: a slot seen FREE had its chunks' return counted before
    // (`SpanSlab::give_back_then_mark_free`), for the caller's look at
    // `PayloadPool::returns` after this.
    (0..p.slab.used_slots()).any(|i| {
        let state = header_state(p.slab.slot(i).header.load(Ordering::Acquire));
        state == STATE_ENDED || state == STATE_EXPORTING
    })
}

/// What a span another SDK already limited is held to.
const LIMITED_BY_CALLER: SpanLimits = SpanLimits::widest();

/// The limits `r` is held to: the tracer's, or for a span another SDK
/// already limited, the record's own bounds only. A branch on a field of
/// the line the setter reads anyway.
#[inline(always)]
/// A resource's or scope's attributes with each complex value
/// (`ResourceValue::Any`, in an array too) checked as a span attribute's
/// (`AnyValueRef::check`) and each array or map in it deeper than the
/// value depth limit replaced by the empty value, as for span attributes
/// (strings inside are not cut: a resource's text never is), each value
/// cut counted in `values_truncated` once all are taken.
/// Err(InvalidArgument) for a message that is not well formed: refused,
/// never skipped in silence, nothing counted.
fn complex_values_limited(
    mut attributes: Vec<(String, crate::config::ResourceValue)>,
    p: &Pipeline,
) -> Result<Vec<(String, crate::config::ResourceValue)>, SpanError> {
    use crate::config::ResourceValue;
    use crate::span::any_value::AnyValueRef;
    fn limit(v: &mut ResourceValue, depth: usize, cut: &mut u64) -> Result<(), SpanError> {
        match v {
            ResourceValue::Any(message) => {
                let checked =
                    AnyValueRef::check(message).map_err(|_| SpanError::InvalidArgument)?;
                if checked.deeper_than(depth) {
                    *message = checked.limited(usize::MAX, depth);
                    *cut += 1;
                }
            }
            ResourceValue::Array(elements) => {
                for e in elements {
                    limit(e, depth, cut)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
    let mut cut = 0u64;
    for (_, v) in &mut attributes {
        limit(v, p.config.limits.value_depth(), &mut cut)?;
    }
    if cut > 0 {
        Stats::add(&p.stats.values_truncated, cut);
        Stats::add(&p.stats.shared_values_cut_at_depth, cut);
    }
    Ok(attributes)
}

/// What `Tracer::set_attribute_first_try` left to do, in one word (an
/// owner's address is aligned and never 0, 1 or 2): from the start, the
/// bias to take, or the rest with the span held by its lock or by the
/// owner at that address.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct SetRest(usize);

// An owner's address is never one of the other words.
const _: () = assert!(std::mem::align_of::<Owner>() > SetRest::LOCKED_WORD);

impl SetRest {
    const FROM_START_WORD: usize = 0;
    const UNBIAS_WORD: usize = 1;
    const LOCKED_WORD: usize = 2;
    const FROM_START: SetRest = SetRest(Self::FROM_START_WORD);
    const UNBIAS: SetRest = SetRest(Self::UNBIAS_WORD);

    #[inline(always)]
    fn held(hold: Hold<'_>) -> SetRest {
        match hold {
            Hold::Locked => SetRest(Self::LOCKED_WORD),
            Hold::Biased(owner) => SetRest(owner as *const Owner as usize),
        }
    }
}

fn limits_of<'p>(p: &'p Pipeline, r: &SpanRecord) -> &'p SpanLimits {
    if r.marks & MARK_LIMITED_BY_CALLER != 0 {
        &LIMITED_BY_CALLER
    } else {
        &p.config.limits
    }
}

#[inline(always)]
fn set_attribute(
    p: &Pipeline,
    r: &mut SpanRecord,
    key: &[u8],
    value: AttrInput,
    store: &WaitingPool,
) -> Result<Notice, SpanError> {
    if key.len() > MAX_KEY_BYTES {
        return set_attribute_long_key(p, r, key, value, store);
    }
    set_attribute_any(p, r, key, value, store)
}

/// `set_attribute` for a key past `MAX_KEY_BYTES`: the record cuts it; the
/// cut is counted and said (TRUNCATED). Out of line, so that the common
/// path stays as it was.
#[cold]
#[inline(never)]
fn set_attribute_long_key(
    p: &Pipeline,
    r: &mut SpanRecord,
    key: &[u8],
    value: AttrInput,
    store: &WaitingPool,
) -> Result<Notice, SpanError> {
    let mut n = set_attribute_any(p, r, key, value, store)?;
    r.note_cut_key();
    n.truncated = true;
    Ok(n)
}

#[inline(always)]
fn set_attribute_any(
    p: &Pipeline,
    r: &mut SpanRecord,
    key: &[u8],
    value: AttrInput,
    store: &WaitingPool,
) -> Result<Notice, SpanError> {
    r.set_attribute(key, &value, limits_of(p, r), store)
        .map(Notice::from_text)
        .map_err(|why| match why {
            NotStored::EmptyKey => SpanError::EmptyKey,
            NotStored::Limit | NotStored::NoRoom => SpanError::LimitReached,
        })
}

/// Sets each of `attributes` on the span (see `set_attribute`): the merged
/// notice, and the error for any that was not set (counted): LimitReached
/// when one did not fit, else EmptyKey when one had an empty key.
fn set_attributes<A: AttributeSource + ?Sized, S: ChunkStore>(
    p: &Pipeline,
    r: &mut SpanRecord,
    attributes: &A,
    pool: &S,
) -> (Notice, Option<SpanError>) {
    let mut setter = Setter {
        limits: limits_of(p, r),
        pool,
        r,
        text: TextOutcome::default(),
        full: false,
        empty_key: false,
    };
    attributes.for_each(&mut setter);
    let lost = if setter.full {
        Some(SpanError::LimitReached)
    } else if setter.empty_key {
        Some(SpanError::EmptyKey)
    } else {
        None
    };
    (Notice::from_text(setter.text), lost)
}

/// `set_attributes`' sink. What happened to the text is gathered as it is
/// stored and turned into a notice once: a notice merged per attribute
/// cost a span with three of them about 30 instructions.
struct Setter<'p, 'r, S> {
    limits: &'p SpanLimits,
    pool: &'p S,
    r: &'r mut SpanRecord,
    text: TextOutcome,
    full: bool,
    empty_key: bool,
}

impl<'s, S: ChunkStore> AttributeSink<'s> for Setter<'_, '_, S> {
    #[inline(always)]
    fn attribute(&mut self, key: &'s [u8], value: AttrInput<'s>) {
        let (r, limits, pool) = (&mut *self.r, self.limits, self.pool);
        // One arm per common kind: each inlines a copy of the setter made
        // for that kind, where one shared copy matched the kind again
        // inside (a span with three attributes: 1,166 -> 1,154 instructions).
        let stored = match value {
            AttrInput::Str(v) => r.set_attribute(key, &AttrInput::Str(v), limits, pool),
            AttrInput::Int(v) => r.set_attribute(key, &AttrInput::Int(v), limits, pool),
            AttrInput::Bool(v) => r.set_attribute(key, &AttrInput::Bool(v), limits, pool),
            other => r.set_attribute(key, &other, limits, pool),
        };
        match stored {
            Ok(o) => self.text.merge(o),
            Err(NotStored::EmptyKey) => self.empty_key = true,
            Err(NotStored::Limit | NotStored::NoRoom) => self.full = true,
        }
        if key.len() > MAX_KEY_BYTES && stored.is_ok() {
            // Cut by the record: counted and said, as in `set_attribute`.
            self.r.note_cut_key();
            self.text.truncated = true;
        }
    }
}

/// `set_attributes` for a call that goes on when an attribute does not fit
/// (begin): the lost attribute, counted in the record, is reported as cut.
/// A value that finds the payload pool used up waits for chunks as the
/// same value set after the begin would (`WaitingPool`): a prompt given
/// at begin was cut where the same prompt set a moment later arrived
/// whole. A begin that may not wait (`BeginOptions::may_wait` false)
/// sets them through `TryPool` instead (`begin_keeping_ids`): where a
/// value would have waited, the begin takes its slot back and fails with
/// WouldWait, and the span is begun again where it may wait.
fn set_attributes_cut<A: AttributeSource + ?Sized>(
    p: &Pipeline,
    r: &mut SpanRecord,
    attributes: &A,
) -> Notice {
    let (mut notice, lost) = set_attributes(p, r, attributes, &WaitingPool::new(p));
    notice.truncated |= lost.is_some();
    notice
}
