//! What a span costs the process: CPU time of every thread (recording,
//! encoding, sending) per span, from getrusage(RUSAGE_SELF) around a run
//! that ends with every span delivered to a loopback OTLP/HTTP sink
//! (`sink.rs`, another process, not counted). spanguard through its C ABI
//! against opentelemetry_sdk with its real OTLP exporter
//! (opentelemetry-otlp, HTTP protobuf), same case, same sink, same batch
//! and queue sizes, interleaved rounds; one JSON line for run.py.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use spanguard::ffi::span::*;
use spanguard::ffi::tracer::*;
use spanguard::ffi::types::*;

use crate::sink::received;

/// User plus system CPU time of the whole process, in nanoseconds.
pub fn process_cpu_ns() -> u64 {
    // SAFETY: getrusage fills the struct we own.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

/// Minor page faults of the whole process so far.
fn minor_faults() -> u64 {
    // SAFETY: getrusage fills the struct we own.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    usage.ru_minflt as u64
}

/// Bytes of the process resident in memory now (/proc/self/statm).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// Tells `perf record --control fifo:CTL -D -1` to sample only the
/// measured chunks, when SPANGUARD_BENCH_PERF_CTL names that fifo: the
/// warm-up (slab pages cleared, connections made) would otherwise be most
/// of a profile.
fn perf_control(command: &str) {
    if let Some(path) = std::env::var_os("SPANGUARD_BENCH_PERF_CTL") {
        use std::io::Write;
        let mut fifo = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .expect("perf control fifo");
        writeln!(fifo, "{command}").expect("perf control");
    }
}

/// What one side's run measured.
#[derive(Default)]
struct Measured {
    cpu_ns: f64,
    received: u64,
    warm_chunks: u64,
    faults_per_span: f64,
}

/// Warm-up chunks at most; see `measure`.
const MAX_WARM_CHUNKS: u64 = 12;

/// Runs `chunks` chunks of `chunk` spans, each followed by `flush` (which
/// returns once they are delivered), after a warm-up: CPU ns per span,
/// spans the sink received meanwhile, the warm-up's length, and page
/// faults per span in the measured chunks.
fn measure(url: &str, chunks: u64, chunk: u64, emit: &dyn Fn(u64), flush: &dyn Fn()) -> Measured {
    // Threads, connections, buffers and memory faulted in are one-time
    // costs, as a tracer start is, not a span's. Memory grows until a
    // chunk's burst needs no more: spanguard populates slab slots as they
    // are first used (each round's tracer maps a fresh slab), the SDK's
    // heap grows as spans are allocated (and stays with the process from
    // round to round). How far a burst reaches depends on how fast the
    // exporter drains it, which changes as the process warms. So the
    // warm-up runs whole chunks, the same rule for both sides, until one
    // takes fewer than one page fault per 1,000 spans and grows the
    // resident set by less than a page per 1,000 spans (at least two, at
    // most MAX_WARM_CHUNKS). Two fixed chunks left spanguard populating
    // its slab in the measured ones: 0.09 to 0.11 faults and about 130 ns
    // of CPU a span, where the SDK, on its warm heap, took none. Faults
    // alone miss memory populated by madvise (a 2 MiB huge page of the
    // slab is one fault or none, and its zeroing is the process's CPU):
    // with huge pages the warm-up stopped at two chunks and the measured
    // ones spent 9% of their CPU clearing pages.
    //
    // Nor did that rule hold where a chunk's burst goes deep: how deep
    // depends on how fast the exporter drains, so the deepest burst so far
    // kept rising in measured chunks, and each new depth populated fresh
    // slots (a profile of the measured chunks alone, 2026-12-01: 600-700
    // populates of 64 slots a round, 28% to 54% of the samples clearing
    // pages, on a host where that had become slow). The exporter drains
    // as a warm-up burst runs, so no burst reliably reaches the bottom. So
    // spanguard's tracers here populate their slots at start
    // (`prefault_slots`, every language's row): what a long-running
    // process pays once, outside any span, as the SDK's heap is warm from
    // earlier rounds.
    let mut warm_chunks = 0;
    loop {
        let (faults, resident) = (minor_faults(), resident_bytes());
        emit(chunk);
        flush();
        warm_chunks += 1;
        let grown = resident_bytes().saturating_sub(resident);
        let quiet = (minor_faults() - faults) * 1_000 < chunk && grown * 1_000 < chunk * 4096;
        if (warm_chunks >= 2 && quiet) || warm_chunks >= MAX_WARM_CHUNKS {
            break;
        }
    }
    let before = received(url);
    let faults0 = minor_faults();
    perf_control("enable");
    let cpu0 = process_cpu_ns();
    for _ in 0..chunks {
        emit(chunk);
        flush();
    }
    let cpu = process_cpu_ns() - cpu0;
    perf_control("disable");
    let spans = (chunks * chunk) as f64;
    Measured {
        cpu_ns: cpu as f64 / spans,
        received: received(url) - before,
        warm_chunks,
        faults_per_span: (minor_faults() - faults0) as f64 / spans,
    }
}

fn spanguard_run(url: &str, chunks: u64, chunk: u64) -> Measured {
    // The SDK's queue below: neither side waits for or drops at its queue.
    let endpoint = std::ffi::CString::new(url).expect("url");
    let p = crate::new_c_tracer(&endpoint);
    let t = p.0;
    let r = measure(
        url,
        chunks,
        chunk,
        &|n| {
            let p = &p;
            for i in 0..n {
                let mut s = 0u64;
                unsafe {
                    spanguard_span_begin(p.0, c"op".as_ptr(), 2, SPANGUARD_SPAN_NONE, 1, &mut s);
                    crate::set_3_attributes_c(s, i);
                    spanguard_span_end(s);
                }
            }
        },
        &|| {
            assert_eq!(spanguard_flush(p.0, 60_000) as u32, 0, "flush");
        },
    );
    unsafe { spanguard_tracer_free(t) };
    r
}

fn otel_run(url: &str, chunks: u64, chunk: u64) -> Measured {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(Duration::from_secs(30))
        .build()
        .expect("OTLP exporter");
    let provider = crate::otel_provider(exporter);
    let tracer = provider.tracer("bench");
    let r = measure(
        url,
        chunks,
        chunk,
        &|n| {
            for i in 0..n {
                let mut s = tracer.start("op");
                s.set_attribute(KeyValue::new("gen_ai.usage.input_tokens", i as i64));
                s.set_attribute(KeyValue::new("gen_ai.request.model", "gpt-4o"));
                s.set_attribute(KeyValue::new("stream", true));
                s.end();
            }
        },
        &|| {
            provider.force_flush().expect("force_flush");
        },
    );
    let _ = provider.shutdown();
    r
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

/// Prints the Rust row's JSON line. `spanguard_only` leaves the peer out
/// (its figures then read 0): for comparing two builds of spanguard, in
/// alternating runs against one `--sink`.
pub fn rows(url: &str, quick: bool, spanguard_only: bool) {
    let (rounds, chunks, chunk) = if quick {
        (3, 2, 20_000)
    } else {
        (5, 4, 50_000)
    };
    let (mut sg, mut ot) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        sg.push(spanguard_run(url, chunks, chunk));
        ot.push(if spanguard_only {
            Measured::default()
        } else {
            otel_run(url, chunks, chunk)
        });
    }
    let spans = rounds * chunks * chunk;
    let cpu = |v: &[Measured]| median(v.iter().map(|m| m.cpu_ns).collect());
    let got = |v: &[Measured]| v.iter().map(|m| m.received).sum::<u64>();
    let warm = |v: &[Measured]| median(v.iter().map(|m| m.warm_chunks as f64).collect());
    let faults = |v: &[Measured]| median(v.iter().map(|m| m.faults_per_span).collect());
    println!(
        "{{\"lang\": \"Rust\", \"case\": \"begin+3 attrs+end\", \"spanguard\": \"C ABI\", \"spanguard_cpu_ns\": {:.0}, \"spanguard_received\": {}, \
         \"peer\": \"opentelemetry_sdk + opentelemetry-otlp\", \"peer_cpu_ns\": {:.0}, \"peer_received\": {}, \"spans\": {spans}, \"rounds\": {rounds}, \
         \"spanguard_warm_chunks\": {}, \"peer_warm_chunks\": {}, \"spanguard_faults_per_span\": {:.4}, \"peer_faults_per_span\": {:.4}}}",
        cpu(&sg),
        got(&sg),
        cpu(&ot),
        got(&ot),
        warm(&sg),
        warm(&ot),
        faults(&sg),
        faults(&ot),
    );
}
