// Package spanguard is the Go binding of libspanguard: crash-proof span
// export for Go agents, through cgo over spanguard.h.
//
// The module finds the installed C library through pkg-config: install it
// (`make install PREFIX=$HOME/.local` in a spanguard checkout), then build
// with PKG_CONFIG_PATH naming its pkgconfig directory:
//
//	export PKG_CONFIG_PATH=$HOME/.local/lib/pkgconfig
//	go build ./...
//
// spanguard.pc carries an rpath, so the program runs without
// LD_LIBRARY_PATH where it was built. Built with -tags spanguard_static
// (link_static.go) the library is linked into the program instead: one
// binary to copy into a container image or onto another host. The module is not on the Go proxy: point a replace
// directive at a checkout's bindings/go
// (`go mod edit -replace github.com/spanguard/spanguard/bindings/go=../spanguard/bindings/go`).
//
// SIGTERM, SIGINT, SIGHUP and SIGQUIT flush every tracer by default (the
// library's termination watchdog), then act as they would have: a program
// that does not handle them dies of them, one that does
// (signal.NotifyContext) gets them on its channel and goes on, its tracers
// recording (it needs no FlushOnSignals: see there). The library's crash
// handlers stay off by default: Go's runtime owns SIGSEGV (a nil
// dereference is a panic a program may recover from). Config's
// NoSignalWatchdog turns the watchdog off, InstallSignalHandlers adds the
// crash handlers (and Go's "crash" traceback level: see there). The
// module's README.md has examples and the install steps.
package spanguard

/*
// Which library to link, and its header's directory: link_shared.go
// (libspanguard.so, the default), link_static.go (-tags spanguard_static).
// begin_remote keeps no pointer past the call and never calls back into
// Go: saying so lets a pointer to a stack variable stay on the stack and
// makes the call cheaper. (The hottest calls skip cgo: hotcall.c.)
#cgo noescape spanguard_span_begin_remote
#cgo nocallback spanguard_span_begin_remote
#include <stdlib.h>
#include "spanguard.h"
// events.c: the error callback, handing events to spanguardGoEvent.
spanguard_result spanguard_go_set_event_logger(spanguard_tracer *tracer, uintptr_t handle);
*/
import "C"

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime"
	"runtime/cgo"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Span kinds and status codes, as in OTLP. WithKind and SetStatus take
// these, their names ("server", "error") or OpenTelemetry's trace.SpanKind
// and codes.Code (see kinds.go).
const (
	KindUnspecified = C.SPANGUARD_KIND_UNSPECIFIED
	KindInternal    = C.SPANGUARD_KIND_INTERNAL
	KindServer      = C.SPANGUARD_KIND_SERVER
	KindClient      = C.SPANGUARD_KIND_CLIENT
	KindProducer    = C.SPANGUARD_KIND_PRODUCER
	KindConsumer    = C.SPANGUARD_KIND_CONSUMER

	StatusUnset = C.SPANGUARD_STATUS_UNSET
	StatusOK    = C.SPANGUARD_STATUS_OK
	StatusError = C.SPANGUARD_STATUS_ERROR
)

// Error is a failed spanguard call.
type Error struct {
	Code uint32
	Op   string
	// Message is the library's own sentence, when it gave one: for tracer
	// creation, the variable or field and the value that were wrong.
	Message string
}

func (e *Error) Error() string {
	text := fmt.Sprintf("spanguard: %s: %s (code %d)", e.Op, C.GoString(C.spanguard_strerror(C.uint32_t(e.Code))), e.Code)
	if e.Message != "" {
		text += ": " + e.Message
	}
	return text
}

// Is lets errors.Is match two Errors with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Well-known errors, for errors.Is.
var (
	ErrStaleSpan          = &Error{Code: C.SPANGUARD_RESULT_STALE_SPAN}
	ErrAlreadyEnded       = &Error{Code: C.SPANGUARD_RESULT_ALREADY_ENDED}
	ErrShutDown           = &Error{Code: C.SPANGUARD_RESULT_SHUT_DOWN}
	ErrBufferFull         = &Error{Code: C.SPANGUARD_RESULT_BUFFER_FULL}
	ErrInvalidTraceparent = &Error{Code: C.SPANGUARD_RESULT_INVALID_TRACEPARENT}
	ErrInvalidConfig      = &Error{Code: C.SPANGUARD_RESULT_INVALID_CONFIG}
	// ErrEmptyKey: an attribute's key was empty (OpenTelemetry forbids
	// it); that attribute was left out and counted, the others were set.
	ErrEmptyKey = &Error{Code: C.SPANGUARD_RESULT_EMPTY_KEY}
	// ErrLimitReached: a table was full and the item was not recorded (a
	// span's attributes, events or links; the tracer's scopes with
	// attributes).
	ErrLimitReached = &Error{Code: C.SPANGUARD_RESULT_LIMIT_REACHED}
)

func check(rc C.spanguard_result, op string) error {
	if resultIsOK(rc) {
		return nil
	}
	return &Error{Code: uint32(rc), Op: op}
}

// resultIsOK is spanguard_result_is_ok without a cgo call per check (a
// test compares the two for every code).
func resultIsOK(rc C.spanguard_result) bool {
	switch rc {
	case C.SPANGUARD_RESULT_OK, C.SPANGUARD_RESULT_TRUNCATED, C.SPANGUARD_RESULT_UTF8_REPLACED,
		C.SPANGUARD_RESULT_PARENT_STALE, C.SPANGUARD_RESULT_NON_RECORDING, C.SPANGUARD_RESULT_SPOOLED:
		return true
	}
	return false
}

// resultIsOKInC asks the library, for the test of resultIsOK.
func resultIsOKInC(code uint32) bool { return bool(C.spanguard_result_is_ok(C.uint32_t(code))) }

func resultIsOKInGo(code uint32) bool { return resultIsOK(C.spanguard_result(code)) }

// cstr passes a Go string's bytes to C without copying: they hold no Go
// pointers and C does not keep them past the call.
func cstr(s string) (*C.char, C.size_t) {
	if len(s) == 0 {
		return nil, 0
	}
	return (*C.char)(unsafe.Pointer(unsafe.StringData(s))), C.size_t(len(s))
}

// Config mirrors spanguard_config; zero values mean the library defaults.
type Config struct {
	ServiceName        string
	Endpoint           string // full traces URL; empty: the local sink directory
	Headers            string // "name=value,name2=value2"
	ResourceAttributes string // "key=value,..."
	SinkDir            string
	SpoolDir           string
	ProtocolJSON       bool
	Gzip               bool
	ScheduleDelay      time.Duration
	RequestTimeout     time.Duration // one HTTP request
	ExportTimeout      time.Duration // one batch, retries included
	SignalFlushTimeout time.Duration // the watchdog's flush on a fatal signal
	MaxQueueSize       uint32        // ended spans that may wait for export
	MaxExportBatchSize uint32        // the most spans per request
	MaxOpenSpans       uint32
	SpoolMaxMiB        uint32
	// ExporterMaxCPUPercent caps the exporter thread's CPU, in percent of
	// one core (1..100), while the queue is less than half full.
	ExporterMaxCPUPercent uint32
	// By default the library's termination watchdog flushes every tracer
	// at SIGTERM, SIGINT, SIGHUP and SIGQUIT, then hands the signal to
	// Go's runtime on the thread it arrived on: a program that does not
	// handle it dies of it as before (its spans delivered: they were lost,
	// up to the 5 s schedule delay of them); one that does
	// (signal.Notify) gets it and goes on, its tracers recording. Crash
	// signals stay Go's (see InstallSignalHandlers).
	//
	// NoSignalWatchdog turns the watchdog off: the program flushes from
	// its own signal handling (FlushOnSignals, or Shutdown on its way
	// out), or loses what was not yet sent.
	NoSignalWatchdog bool
	// InstallSignalHandlers also installs the library's crash handlers
	// (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT), and sets Go's traceback
	// level to "crash" (runtime/debug.SetTraceback) for the whole process.
	// A nil dereference goes to Go's handler first: one the program
	// recovers from is no crash, and the tracers record on. A panic left
	// unrecovered and a fault in C code called through cgo then end the
	// process by SIGABRT after Go printed them (every goroutine's stack,
	// and a core file where the core size limit allows one), and the
	// crash handler dumps the spans at that SIGABRT: the next start of a
	// tracer set up alike sends them. At Go's default level Go ends such a
	// process with exit status 2 by a system call no handler sees, and the
	// spans not yet exported were lost. Wins over NoSignalWatchdog.
	InstallSignalHandlers bool
	// FlightRecorder keeps the spans in a file mapped in memory, which
	// outlives the process: what os.Exit (log.Fatal), which runs no
	// deferred Close and no exit hook, or a SIGKILL leaves is sent by the
	// next process on the same spool directory.
	FlightRecorder bool
	// PrefaultSlots populates every span slot at start: no span takes a
	// page fault, and the slots' whole size is resident from the start.
	PrefaultSlots bool
	// PayloadPoolMiB sizes the payload pool: what spans hold past their
	// slots (long prompts and completions, many attributes, events,
	// links); default 256.
	PayloadPoolMiB uint32
	// MaxRequestBytes is the largest request body of several spans, in
	// bytes before compression (SPANGUARD_MAX_REQUEST_BYTES); default
	// 1000000. A span bigger than that goes whole in a request of its own,
	// up to 64 MiB or half the spool's cap; beyond that, or once the
	// backend answered 413 to such a span, its longest values are cut,
	// counted in Stats.ValuesTruncated.
	MaxRequestBytes uint32
	// SinkMaxLineBytes is the longest line the local sink writes
	// (SPANGUARD_SINK_MAX_LINE_BYTES); default 1 MiB, the OpenTelemetry
	// Collector's otlpjsonfile receiver's limit; at most 64 MiB, the
	// longest line `spanguard show` and `tail` read. Longer spans' values
	// are cut the same way.
	SinkMaxLineBytes uint32
	// OpenTelemetry's limits (0: the default, or the OTEL_* variable with
	// NewTracerFromEnv). ValueLengthLimit is the longest value (each array
	// element too): a string's characters (runes, as OpenTelemetry counts
	// them), a bytes value's bytes; default none. The count limits default
	// to 128.
	ValueLengthLimit uint32
	// ValueDepthLimit is how deep an array or map value (SetAny) may
	// nest, 1..128 (SPANGUARD_ATTRIBUTE_VALUE_DEPTH_LIMIT; default 64): the
	// attribute's value is level 1, each element or map value one more;
	// one deeper is replaced by the empty value, counted in
	// Stats.ValuesTruncated. Past 128, NewTracer fails (INVALID_CONFIG).
	ValueDepthLimit          uint32
	AttributeCountLimit      uint32
	EventCountLimit          uint32
	LinkCountLimit           uint32
	EventAttributeCountLimit uint32
	LinkAttributeCountLimit  uint32
	// FullPolicy is what Start does when every span slot is taken
	// (SPANGUARD_FULL_POLICY): FullPolicyWait (the zero value) wakes the
	// exporter and waits up to FullWait for a slot (Stats.SlotWaits);
	// FullPolicyDrop returns at once, the span recording nothing, with
	// ErrBufferFull (Stats.DroppedBufferFull).
	FullPolicy FullPolicy
	// FullWait is the longest a Start (or a value, for the payload pool)
	// waits under FullPolicyWait; default 200 ms (SPANGUARD_FULL_WAIT_MS).
	FullWait time.Duration
	// Sampler decides which spans are recorded and exported, as
	// OpenTelemetry's Go SDK names its samplers: AlwaysSample(),
	// NeverSample(), TraceIDRatioBased(f), ParentBased(root). The zero
	// value is ParentBased(AlwaysSample()), the default; with
	// NewTracerFromEnv, OTEL_TRACES_SAMPLER wins over it. A span left out still
	// has ids and propagates its context; it is counted in
	// Stats.SpansUnsampled and never exported.
	Sampler Sampler
	// Certificate is the PEM file of the CA certificates that verify the
	// backend (OTEL_EXPORTER_OTLP_CERTIFICATE); empty: the system's trust
	// store. ClientCertificate and ClientKey are the PEM files of a client
	// certificate and its key, for mutual TLS (both or neither). A file
	// that is not there is an error of NewTracer (ErrInvalidConfig).
	Certificate       string
	ClientCertificate string
	ClientKey         string
	// LogLevel is what spanguard writes to stderr (OTEL_LOG_LEVEL):
	// "none", "error", "warn" (the default), "info" or "debug"; another
	// word is an error of NewTracer (ErrInvalidConfig).
	LogLevel string
	// EventLogger, when set, is told the tracer's news (the library's
	// error callback, README "The error callback"): a batch lost or
	// spooled, a backend's warning, a setting ignored, spans not recorded,
	// values cut. Each is a record with the library's message and the
	// attributes spanguard.event (its Event name) and
	// spanguard.event_code, at LevelError for spans lost, LevelInfo for a
	// spooled batch delivered, LevelWarn for the rest (and for an event of
	// a newer library). Logged on the library's exporter thread, whatever
	// LogLevel says: a handler that blocks holds the export up.
	EventLogger *slog.Logger
}

// FullPolicy is Config.FullPolicy.
type FullPolicy uint32

const (
	// FullPolicyWait: wait up to Config.FullWait for a slot (the default).
	FullPolicyWait FullPolicy = C.SPANGUARD_FULL_POLICY_WAIT
	// FullPolicyDrop: never wait; the span is dropped and counted.
	FullPolicyDrop FullPolicy = C.SPANGUARD_FULL_POLICY_DROP
)

// Sampler is Config.Sampler; make one with AlwaysSample, NeverSample,
// TraceIDRatioBased or ParentBased. Its zero value is
// ParentBased(AlwaysSample()).
type Sampler struct {
	kind  uint32 // SPANGUARD_SAMPLER_*
	ratio float64
}

// AlwaysSample records and exports every span.
func AlwaysSample() Sampler { return Sampler{kind: C.SPANGUARD_SAMPLER_ALWAYS_ON} }

// NeverSample records no span.
func NeverSample() Sampler { return Sampler{kind: C.SPANGUARD_SAMPLER_ALWAYS_OFF} }

// TraceIDRatioBased keeps the share fraction (0 to 1) of traces, decided
// by the trace id. A fraction outside 0..1 makes NewTracer fail
// (ErrInvalidConfig), where OpenTelemetry's Go SDK clamps it.
func TraceIDRatioBased(fraction float64) Sampler {
	return Sampler{kind: C.SPANGUARD_SAMPLER_TRACEIDRATIO, ratio: fraction}
}

// ParentBased follows the parent's sampled flag (a local parent's or a
// remote one's, from a traceparent) and asks root only for root spans.
func ParentBased(root Sampler) Sampler {
	switch root.kind {
	case C.SPANGUARD_SAMPLER_ALWAYS_ON:
		root.kind = C.SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_ON
	case C.SPANGUARD_SAMPLER_ALWAYS_OFF:
		root.kind = C.SPANGUARD_SAMPLER_PARENTBASED_ALWAYS_OFF
	case C.SPANGUARD_SAMPLER_TRACEIDRATIO:
		root.kind = C.SPANGUARD_SAMPLER_PARENTBASED_TRACEIDRATIO
	}
	return root // already parent-based
}

// millis converts d to whole milliseconds for a uint32 field or argument:
// none below 0 (for a config field, 0 keeps the library default; for a
// flush, 0 does not wait), the most a uint32 holds (49 days) above it.
// Converted as it was, a negative timeout (time.Until a deadline passed)
// wrapped to 49 days, and one past 49 days to what was left over.
func millis(d time.Duration) C.uint32_t {
	if d <= 0 {
		return 0
	}
	return C.uint32_t(min(d/time.Millisecond, math.MaxUint32))
}

// Tracer records spans and exports them from its own thread. Safe for
// concurrent use. Close it when done (Close is safe to call twice).
//
// Close shuts the C tracer down; only the finalizer frees it, once the
// Tracer and every Span of it are garbage. So no call takes a lock: a
// call on a Span keeps its Tracer reachable until the call returns
// (runtime.KeepAlive), and a call made after or during Close gets
// SHUT_DOWN from the library instead of freed memory. (With a lock, a
// span's End on one goroutine could race Close on another, and each
// Start paid for two locked adds.)
type Tracer struct {
	ptr    *C.spanguard_tracer // valid for as long as the Tracer is reachable
	closed atomic.Bool
	// Config.EventLogger, as the error callback's user_data (0: none);
	// deleted once the tracer is freed.
	events cgo.Handle
	// What runs before the tracer stops (OnStop).
	stopMu    sync.Mutex
	stopHooks []func()
	// What the first shutdown through this Tracer found, plus one (0:
	// none yet): a later call says it again. The library answers those
	// SHUT_DOWN, which said Delivered for spans left in the spool.
	shutdownFound atomic.Int32
}

// OnStop registers f to run once, before the tracer first stops
// (Shutdown, ShutdownStatus, Close, and so FlushOnSignals). A bridge uses
// it to pass on what the spans its SDK still has open hold by then
// (otelbridge): they are exported marked unended, with what was set on
// them after their start.
func (t *Tracer) OnStop(f func()) {
	if t == nil || f == nil {
		return
	}
	t.stopMu.Lock()
	t.stopHooks = append(t.stopHooks, f)
	t.stopMu.Unlock()
}

// runStopHooks runs the OnStop functions, each once, outside the lock (a
// hook may call the tracer).
func (t *Tracer) runStopHooks() {
	t.stopMu.Lock()
	hooks := t.stopHooks
	t.stopHooks = nil
	t.stopMu.Unlock()
	for _, f := range hooks {
		f()
	}
}

// closedNotFreed counts tracers closed but not yet collected: each holds
// one of the library's 255 tracer numbers until its finalizer runs.
var closedNotFreed atomic.Int64

// free is the finalizer: the Tracer and its Spans are garbage, so no call
// on it can be running.
func (t *Tracer) free() {
	C.spanguard_tracer_free(t.ptr)
	if t.events != 0 {
		t.events.Delete()
	}
	if t.closed.Load() {
		closedNotFreed.Add(-1)
	}
}

func newTracer(cfg Config, fromEnv bool) (*Tracer, error) {
	var c C.spanguard_config
	C.spanguard_config_init(&c, C.sizeof_spanguard_config)
	var keep []*C.char
	set := func(dst **C.char, v string) {
		if v != "" {
			p := C.CString(v)
			keep = append(keep, p)
			*dst = p
		}
	}
	defer func() {
		for _, p := range keep {
			C.free(unsafe.Pointer(p))
		}
	}()
	set(&c.service_name, cfg.ServiceName)
	set(&c.endpoint, cfg.Endpoint)
	set(&c.headers, cfg.Headers)
	// The runtime first, so that the caller's own attributes override it.
	set(&c.resource_attributes, strings.TrimSuffix(runtimeAttributes()+","+cfg.ResourceAttributes, ","))
	set(&c.sink_dir, cfg.SinkDir)
	set(&c.spool_dir, cfg.SpoolDir)
	set(&c.certificate, cfg.Certificate)
	set(&c.client_certificate, cfg.ClientCertificate)
	set(&c.client_key, cfg.ClientKey)
	set(&c.log_level, cfg.LogLevel)
	c.full_policy = C.uint32_t(cfg.FullPolicy)
	c.sampler = C.uint32_t(cfg.Sampler.kind)
	if cfg.Sampler.kind == C.SPANGUARD_SAMPLER_TRACEIDRATIO || cfg.Sampler.kind == C.SPANGUARD_SAMPLER_PARENTBASED_TRACEIDRATIO {
		c.sampler_ratio = C.double(cfg.Sampler.ratio)
	}
	if cfg.ProtocolJSON {
		c.protocol = C.SPANGUARD_PROTOCOL_HTTP_JSON
	}
	if cfg.Gzip {
		c.compression = C.SPANGUARD_COMPRESSION_GZIP
	}
	// Zero fields keep what spanguard_config_init set.
	for _, f := range []struct {
		dst *C.uint32_t
		v   C.uint32_t
	}{
		{&c.schedule_delay_ms, millis(cfg.ScheduleDelay)},
		{&c.request_timeout_ms, millis(cfg.RequestTimeout)},
		{&c.export_timeout_ms, millis(cfg.ExportTimeout)},
		{&c.signal_flush_timeout_ms, millis(cfg.SignalFlushTimeout)},
		{&c.full_wait_ms, millis(cfg.FullWait)},
		{&c.max_queue_size, C.uint32_t(cfg.MaxQueueSize)},
		{&c.max_export_batch_size, C.uint32_t(cfg.MaxExportBatchSize)},
		{&c.max_open_spans, C.uint32_t(cfg.MaxOpenSpans)},
		{&c.spool_max_mib, C.uint32_t(cfg.SpoolMaxMiB)},
		{&c.exporter_max_cpu_percent, C.uint32_t(cfg.ExporterMaxCPUPercent)},
		{&c.payload_pool_mib, C.uint32_t(cfg.PayloadPoolMiB)},
		{&c.max_request_bytes, C.uint32_t(cfg.MaxRequestBytes)},
		{&c.sink_max_line_bytes, C.uint32_t(cfg.SinkMaxLineBytes)},
		{&c.value_length_limit, C.uint32_t(cfg.ValueLengthLimit)},
		{&c.value_depth_limit, C.uint32_t(cfg.ValueDepthLimit)},
		{&c.attribute_count_limit, C.uint32_t(cfg.AttributeCountLimit)},
		{&c.event_count_limit, C.uint32_t(cfg.EventCountLimit)},
		{&c.link_count_limit, C.uint32_t(cfg.LinkCountLimit)},
		{&c.event_attribute_count_limit, C.uint32_t(cfg.EventAttributeCountLimit)},
		{&c.link_attribute_count_limit, C.uint32_t(cfg.LinkAttributeCountLimit)},
	} {
		if f.v != 0 {
			*f.dst = f.v
		}
	}
	switch {
	case cfg.InstallSignalHandlers:
		c.install_signal_handlers = C.SPANGUARD_SIGNAL_HANDLERS_ALL
	case cfg.NoSignalWatchdog:
		c.install_signal_handlers = C.SPANGUARD_SIGNAL_HANDLERS_NONE
	default:
		c.install_signal_handlers = C.SPANGUARD_SIGNAL_HANDLERS_TERMINATION
	}
	if cfg.FlightRecorder {
		c.flight_recorder = 1
	}
	if cfg.PrefaultSlots {
		c.prefault_slots = 1
	}
	var ptr *C.spanguard_tracer
	message := (*C.char)(C.malloc(C.SPANGUARD_ERROR_MESSAGE_SIZE))
	defer C.free(unsafe.Pointer(message))
	create := func() C.spanguard_result {
		return C.spanguard_tracer_new_with_error(&c, C.bool(fromEnv), &ptr, message, C.SPANGUARD_ERROR_MESSAGE_SIZE, nil)
	}
	rc := create()
	// Closed tracers whose Tracer is garbage but not yet collected still
	// hold their numbers: collect them, give the finalizers a moment to
	// run, and try again (about a second at most).
	for wait := time.Millisecond; rc == C.SPANGUARD_RESULT_TOO_MANY_TRACERS &&
		closedNotFreed.Load() > 0 && wait < time.Second; wait *= 2 {
		runtime.GC()
		time.Sleep(wait)
		rc = create()
	}
	if rc != C.SPANGUARD_RESULT_OK {
		return nil, &Error{Code: uint32(rc), Op: "tracer_new", Message: C.GoString(message)}
	}
	if crashHandlersAsked(cfg, fromEnv) {
		// Go's runtime ends a program at an unrecovered panic, or at a
		// fault it cannot turn into one (in C code), with exit_group(2),
		// which no handler or exit hook sees: the crash handler had
		// nothing to dump at (TestCrashHandlersInGo). At "crash" it
		// ends it by SIGABRT, which the crash handler dumps first.
		debug.SetTraceback("crash")
	}
	t := &Tracer{ptr: ptr}
	if cfg.EventLogger != nil {
		t.events = cgo.NewHandle(cfg.EventLogger)
		// No callback can run on a tracer just made: this does not wait.
		C.spanguard_go_set_event_logger(ptr, C.uintptr_t(t.events))
	}
	// Frees the C tracer (shutting it down first if Close was not called:
	// a backstop only).
	runtime.SetFinalizer(t, (*Tracer).free)
	return t, nil
}

// crashHandlersAsked says whether the tracer made from cfg installs the
// library's crash handlers: cfg.InstallSignalHandlers, or, from the
// environment, SPANGUARD_SIGNAL_HANDLERS=true (or 1), read as the library
// reads it (src/config.rs), which overrides cfg's choice.
func crashHandlersAsked(cfg Config, fromEnv bool) bool {
	if fromEnv {
		if v, ok := os.LookupEnv("SPANGUARD_SIGNAL_HANDLERS"); ok {
			v = strings.ToLower(strings.TrimSpace(v))
			switch v {
			case "true", "1":
				return true
			case "termination", "2", "false", "0":
				return false
			}
		}
	}
	return cfg.InstallSignalHandlers
}

// runtimeAttributes is process.runtime.* as OpenTelemetry's Go SDK reports
// it, in OTEL_RESOURCE_ATTRIBUTES syntax.
func runtimeAttributes() string {
	name := runtime.Compiler
	if name == "gc" {
		name = "go"
	}
	escape := strings.NewReplacer("%", "%25", ",", "%2C").Replace
	return "process.runtime.name=" + escape(name) +
		",process.runtime.version=" + escape(strings.TrimPrefix(runtime.Version(), "go")) +
		",process.runtime.description=" + escape(fmt.Sprintf("go version %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH))
}

// NewTracer makes a tracer from cfg alone.
func NewTracer(cfg Config) (*Tracer, error) { return newTracer(cfg, false) }

// NewTracerFromEnv makes a tracer from cfg with the OTEL_* and SPANGUARD_*
// variables applied on top (a resource attribute or ServiceName set in cfg
// wins). A wrong field of cfg is an error; a wrong variable is ignored, as
// the OpenTelemetry SDKs ignore one, and named in a warning on stderr.
func NewTracerFromEnv(cfg Config) (*Tracer, error) { return newTracer(cfg, true) }

// live is the C tracer, or an error after Close. The caller keeps t
// reachable (runtime.KeepAlive) until its C call returns.
func (t *Tracer) live() (*C.spanguard_tracer, error) {
	if t == nil || t.closed.Load() {
		return nil, errClosed
	}
	return t.ptr, nil
}

var errClosed = &Error{Code: C.SPANGUARD_RESULT_SHUT_DOWN, Op: "tracer closed"}

// Flush waits until every span ended before the call is exported; false
// when the timeout passed first (waiting for the watchdog's flush at a
// signal too: the tracer records again after it), and after Shutdown or
// Close (with ErrShutDown: no flush ran).
func (t *Tracer) Flush(timeout time.Duration) (bool, error) {
	status, err := t.FlushStatus(timeout)
	return status != TimedOut && err == nil, err
}

// FlushResult says how a flush or shutdown ended.
type FlushResult int

const (
	// Delivered: every span ended before the call was delivered (or refused
	// for good, which the counters and the error callback report).
	Delivered FlushResult = iota
	// Spooled: done, but some of those spans only reached the spool
	// directory while the backend was down: safe on disk, sent later.
	Spooled
	// TimedOut: time ran out first; the export goes on in the background.
	TimedOut
)

// String is the result's name ("Spooled"), as fmt prints it.
func (r FlushResult) String() string {
	switch r {
	case Delivered:
		return "Delivered"
	case Spooled:
		return "Spooled"
	case TimedOut:
		return "TimedOut"
	}
	return fmt.Sprintf("FlushResult(%d)", int(r))
}

func flushResult(rc C.spanguard_result, op string) (FlushResult, error) {
	switch rc {
	case C.SPANGUARD_RESULT_TIMEOUT:
		return TimedOut, nil
	case C.SPANGUARD_RESULT_SPOOLED:
		return Spooled, nil
	}
	return Delivered, check(rc, op)
}

// FlushStatus is Flush, saying whether the spans were delivered or only
// spooled.
func (t *Tracer) FlushStatus(timeout time.Duration) (FlushResult, error) {
	p, err := t.live()
	if err != nil {
		return TimedOut, err
	}
	defer runtime.KeepAlive(t)
	return flushResult(C.spanguard_flush(p, millis(timeout)), "flush")
}

// Shutdown flushes, exports spans still open (marked unended) and stops the
// exporter. A second call (otelbridge's Shutdown made the first) does
// nothing and returns what the first found.
func (t *Tracer) Shutdown(timeout time.Duration) (bool, error) {
	status, err := t.ShutdownStatus(timeout)
	return status != TimedOut, err
}

// ShutdownStatus is Shutdown, saying whether the spans were delivered or
// only spooled. A second call returns what the first found (Delivered
// when the tracer was stopped otherwise: Close, FlushOnSignals' signal).
func (t *Tracer) ShutdownStatus(timeout time.Duration) (FlushResult, error) {
	return t.shutdownFor(timeout, 0)
}

// shutdownFor is ShutdownStatus for a process that signal signo stops
// (FlushOnSignals), 0 for none: the spans still open are marked
// interrupted by it, as the library's watchdog marks them, rather than
// unended (which reads as spans the program forgot to end).
func (t *Tracer) shutdownFor(timeout time.Duration, signo syscall.Signal) (FlushResult, error) {
	p, err := t.live()
	if err != nil {
		return t.foundByFirstShutdown(), nil
	}
	t.runStopHooks()
	defer runtime.KeepAlive(t)
	var rc C.spanguard_result
	if signo != 0 {
		rc = C.spanguard_shutdown_for_signal(p, C.int32_t(signo), millis(timeout))
	} else {
		rc = C.spanguard_shutdown(p, millis(timeout))
	}
	if rc == C.SPANGUARD_RESULT_SHUT_DOWN {
		return t.foundByFirstShutdown(), nil
	}
	found, err := flushResult(rc, "shutdown")
	if err == nil {
		t.shutdownFound.CompareAndSwap(0, int32(found)+1)
	}
	return found, err
}

// foundByFirstShutdown is what the first shutdown through t found;
// Delivered when none went through t.
func (t *Tracer) foundByFirstShutdown() FlushResult {
	if found := t.shutdownFound.Load(); found != 0 {
		return FlushResult(found - 1)
	}
	return Delivered
}

// Close shuts the tracer down (if needed; with its export timeout) and
// stops its exporter: every span ended is exported, and one still open is
// exported marked unended. Calls on the tracer and its spans afterwards,
// or still running on other goroutines, return ErrShutDown. Its memory
// is freed once the Tracer and its Spans are garbage. Safe to call twice.
func (t *Tracer) Close() error {
	if t == nil {
		return nil
	}
	t.runStopHooks()
	if !t.closed.CompareAndSwap(false, true) {
		return nil
	}
	closedNotFreed.Add(1)
	C.spanguard_tracer_close(t.ptr)
	runtime.KeepAlive(t)
	return nil
}

// SinkPath is the file the local sink appends to, where the spans go when
// no endpoint is configured; "" with an endpoint.
func (t *Tracer) SinkPath() (string, error) {
	return t.text("sink_path", func(p *C.spanguard_tracer, buf *C.char, n C.size_t, out *C.size_t) C.spanguard_result {
		return C.spanguard_tracer_sink_path(p, buf, n, out)
	})
}

// Endpoint is the OTLP/HTTP URL the tracer sends its spans to: Config's
// Endpoint, or with NewTracerFromEnv the one OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// gave, or OTEL_EXPORTER_OTLP_ENDPOINT's with /v1/traces appended. It is
// "" when the tracer sends to no backend: it writes to the local sink
// (SinkPath), discards (discard:) or is disabled. As configured,
// credentials in it included: print it to a user, not to a shared log.
// After Close, an error matching ErrShutDown. Safe for concurrent use.
func (t *Tracer) Endpoint() (string, error) {
	return t.text("endpoint", func(p *C.spanguard_tracer, buf *C.char, n C.size_t, out *C.size_t) C.spanguard_result {
		return C.spanguard_tracer_endpoint(p, buf, n, out)
	})
}

// text reads a string the library writes with read (a call of the
// (tracer, buf, len, &len) form): its length first, then the string.
func (t *Tracer) text(op string,
	read func(*C.spanguard_tracer, *C.char, C.size_t, *C.size_t) C.spanguard_result) (string, error) {
	p, err := t.live()
	if err != nil {
		return "", err
	}
	defer runtime.KeepAlive(t)
	var n C.size_t
	// The first call asks the length (a string always needs at least the NUL).
	if rc := read(p, nil, 0, &n); rc != C.SPANGUARD_RESULT_BUFFER_TOO_SMALL {
		return "", check(rc, op)
	}
	// Go memory holding no Go pointers may be passed to C for the call.
	buf := make([]byte, n+1)
	if err := check(read(p, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n), op); err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// Stats are the tracer's counters (spanguard_counters), every one: what
// was dropped, cut, replaced or lost on the way is counted in one of them.
type Stats struct {
	SpansBegun, SpansEnded, SpansExported, QueueDepth, SpansOpen uint64
	DroppedBufferFull, DroppedExportFailed, DroppedRejected      uint64
	DroppedSpoolOverflow, SpansUnendedAtShutdown                 uint64
	BatchesSent, BatchesFailed, BytesSent, Retries               uint64
	// What spans' limits left out (OpenTelemetry's dropped counts, summed).
	AttributesDropped, EventsDropped, LinksDropped uint64
	// Values cut (a limit), and texts whose invalid UTF-8 was replaced.
	ValuesTruncated, UTF8Replaced uint64
	// The spool: requests and spans written to it on their first trip,
	// delivered from it later, and the bytes it holds now.
	SpooledBatches, SpooledSpans, ReplayedBatches, ReplayedSpans, SpoolBytes uint64
	// Spans recovered from dead processes' crash dumps and flight files.
	RecoveredSpans uint64
	// Nanoseconds the exporter rested to stay within its CPU cap.
	ExporterThrottledNs uint64
	// Spans the sampler left out (never exported, by design).
	SpansUnsampled uint64
	// Spans from the spool the backend refused for good, or rejected in a
	// partial success, when replayed.
	DroppedReplayFailed, DroppedReplayRejected uint64
	// Panics the exporter thread caught (an internal bug).
	ExporterPanics uint64
	// Files in the spool directory that could not be used, set aside.
	FilesSetAside uint64
	// Values that found the payload pool used up and waited for chunks
	// (the wait full policy), and of those, the values cut all the same.
	// Many: raise SPANGUARD_PAYLOAD_POOL_MIB.
	PayloadWaits, PayloadWaitsCut uint64
	// Begins that found every span slot taken and waited for the exporter
	// to give one back (the wait full policy), and the nanoseconds they
	// waited in all: the program records faster than the exporter exports.
	SlotWaits, SlotWaitNs uint64
	// Spans still open when a shutdown for a termination signal ended them
	// (FlushOnSignals), exported marked spanguard.interrupted: counted in
	// SpansExported too, not in SpansUnendedAtShutdown.
	SpansInterruptedAtShutdown uint64
	// Shutdowns that waited their timeout and a grace for an exporter stuck
	// where nothing of spanguard's cuts it short (the error callback
	// blocked) and left it running, its spans in the crash dump.
	ExporterWaitsRanOut uint64
	// Times the signal watchdog waited its whole second for the program's
	// own signal handler (delivered after spanguard's flush) with the
	// tracers frozen: it neither returned nor was found done (an exit or a
	// longjmp from it). Process-wide: every tracer reports the same count.
	HostHandlerWaitsRanOut uint64
}

// Stats reads the counters. After Close it returns ErrShutDown and a zero
// Stats: read the final counts after Shutdown, before Close (a deferred
// Close runs after them).
func (t *Tracer) Stats() (Stats, error) {
	p, err := t.live()
	if err != nil {
		return Stats{}, err
	}
	defer runtime.KeepAlive(t)
	var c C.spanguard_counters
	c.struct_size = C.uint32_t(unsafe.Sizeof(c))
	if err := check(C.spanguard_stats(p, &c), "stats"); err != nil {
		return Stats{}, err
	}
	return statsOf(&c), nil
}

// statsOf copies the counters into Stats, each into its field.
func statsOf(c *C.spanguard_counters) Stats {
	return Stats{
		SpansBegun: uint64(c.spans_begun), SpansEnded: uint64(c.spans_ended),
		SpansExported: uint64(c.spans_exported), QueueDepth: uint64(c.queue_depth),
		SpansOpen: uint64(c.spans_open), DroppedBufferFull: uint64(c.dropped_buffer_full),
		DroppedExportFailed: uint64(c.dropped_export_failed), DroppedRejected: uint64(c.dropped_rejected),
		DroppedSpoolOverflow:   uint64(c.dropped_spool_overflow),
		SpansUnendedAtShutdown: uint64(c.spans_unended_at_shutdown),
		BatchesSent:            uint64(c.batches_sent), BatchesFailed: uint64(c.batches_failed),
		BytesSent: uint64(c.bytes_sent), Retries: uint64(c.retries),
		AttributesDropped: uint64(c.attributes_dropped), EventsDropped: uint64(c.events_dropped),
		LinksDropped: uint64(c.links_dropped), ValuesTruncated: uint64(c.values_truncated),
		UTF8Replaced: uint64(c.utf8_replaced), SpooledBatches: uint64(c.spooled_batches),
		SpooledSpans: uint64(c.spooled_spans), ReplayedBatches: uint64(c.replayed_batches),
		ReplayedSpans: uint64(c.replayed_spans), SpoolBytes: uint64(c.spool_bytes),
		RecoveredSpans: uint64(c.recovered_spans), ExporterThrottledNs: uint64(c.exporter_throttled_ns),
		SpansUnsampled: uint64(c.spans_unsampled), DroppedReplayFailed: uint64(c.dropped_replay_failed),
		DroppedReplayRejected: uint64(c.dropped_replay_rejected), ExporterPanics: uint64(c.exporter_panics),
		FilesSetAside: uint64(c.files_set_aside),
		PayloadWaits:  uint64(c.payload_waits), PayloadWaitsCut: uint64(c.payload_waits_cut),
		SlotWaits: uint64(c.slot_waits), SlotWaitNs: uint64(c.slot_wait_ns),
		SpansInterruptedAtShutdown: uint64(c.spans_interrupted_at_shutdown),
		ExporterWaitsRanOut:        uint64(c.exporter_waits_ran_out),
		HostHandlerWaitsRanOut:     uint64(c.host_handler_waits_ran_out),
	}
}

// numberedStats is statsOf counters whose words, after the 8-byte header
// (every counter is a uint64), hold 1, 2, 3... in the order the library
// lays them out, and how many words that is: for the test that each
// counter lands in the field of its name.
func numberedStats() (Stats, int) {
	var c C.spanguard_counters
	n := int((unsafe.Sizeof(c) - unsafe.Offsetof(c.spans_begun)) / 8)
	words := unsafe.Slice((*uint64)(unsafe.Pointer(&c.spans_begun)), n)
	for i := range words {
		words[i] = uint64(i + 1)
	}
	return statsOf(&c), n
}

// SetResource sets resource attributes over the tracer's own for every
// batch exported from now on: what the OpenTelemetry bridge passes for the
// SDK provider's Resource, so that spans arrive under the provider's
// service.name and attributes. Scalars and slices (a byte slice is
// skipped); any number. A service.name that is the SDK's fallback ("unknown_service...")
// leaves the tracer's. A later call replaces what an earlier one gave.
// After Shutdown or Close: ErrShutDown, nothing set.
func (t *Tracer) SetResource(attrs ...Attribute) error {
	return t.withAttributes(attrs, func(p *C.spanguard_tracer, arr *C.spanguard_attribute, n C.size_t) error {
		return check(C.spanguard_tracer_set_resource(p, arr, n), "set_resource")
	})
}

// withAttributes calls call with the live tracer and attrs (any number:
// cut to 128, a large resource lost the rest silently) as a C array, for
// the tracer-wide attribute calls (resource, scope).
func (t *Tracer) withAttributes(attrs []Attribute,
	call func(p *C.spanguard_tracer, arr *C.spanguard_attribute, n C.size_t) error) error {
	p, err := t.live()
	if err != nil {
		return err
	}
	defer runtime.KeepAlive(t)
	arr, block := cAttributes(attrs)
	defer C.free(block)
	return call(p, arr, C.size_t(len(attrs)))
}

// SetScopeAttributes sets the attributes of an instrumentation scope (an
// OpenTelemetry tracer's, given with trace.WithInstrumentationAttributes),
// sent with that scope's spans in every batch exported from now on; the
// scope is the name, version and schema URL its spans give (ForeignSpan's
// Scope fields). Scalars and slices (a byte slice is skipped); any
// number. A
// later call replaces an earlier one's, and none take them away. At most
// 256 scopes have attributes: a new one past that returns ErrLimitReached
// and sets nothing.
func (t *Tracer) SetScopeAttributes(name, version, schemaURL string, attrs ...Attribute) error {
	return t.withAttributes(attrs, func(p *C.spanguard_tracer, arr *C.spanguard_attribute, count C.size_t) error {
		// The three texts in one C block: cgo lets no Go pointer sit in
		// memory passed to C.
		text := C.malloc(C.size_t(len(name) + len(version) + len(schemaURL) + 1))
		defer C.free(text)
		bytes := unsafe.Slice((*byte)(text), len(name)+len(version)+len(schemaURL)+1)
		at := 0
		place := func(s string) (*C.char, C.size_t) {
			ptr := (*C.char)(unsafe.Pointer(&bytes[at]))
			at += copy(bytes[at:], s)
			return ptr, C.size_t(len(s))
		}
		n, nl := place(name)
		v, vl := place(version)
		u, ul := place(schemaURL)
		return check(C.spanguard_tracer_set_scope_attributes(p, n, nl, v, vl, u, ul, arr, count),
			"set_scope_attributes")
	})
}

// What FlushOnSignals runs before it shuts its tracer down: functions
// that hand spanguard spans something else still holds for it (the
// OpenTelemetry SDK's batcher in front of otelbridge's exporter, which
// adds one). Shutting down first left those spans nowhere.
var beforeSignal struct {
	sync.Mutex
	next    int
	funcs   map[int]func(context.Context)
	running chan struct{} // closed when the run under way is over; nil with none
}

// BeforeSignalShutdown adds f to what FlushOnSignals runs when its signal
// arrives, before the tracer shuts down: f is given a context that ends
// at half of FlushOnSignals's timeout (it is not waited for past it). Every
// tracer's FlushOnSignals waits for the same run, so f runs once a
// signal however many tracers watch for it. The returned function takes
// f off again. For bridges (otelbridge's exporter flushes the SDK there).
func BeforeSignalShutdown(f func(ctx context.Context)) (remove func()) {
	beforeSignal.Lock()
	defer beforeSignal.Unlock()
	if beforeSignal.funcs == nil {
		beforeSignal.funcs = map[int]func(context.Context){}
	}
	id := beforeSignal.next
	beforeSignal.next++
	beforeSignal.funcs[id] = f
	return func() {
		beforeSignal.Lock()
		defer beforeSignal.Unlock()
		delete(beforeSignal.funcs, id)
	}
}

// runBeforeSignal runs the BeforeSignalShutdown functions, or waits for
// the run under way, for timeout at most: one that never returns (an SDK
// waiting on another exporter that never answers) must not keep the
// process from its signal.
func runBeforeSignal(timeout time.Duration) {
	beforeSignal.Lock()
	done := beforeSignal.running
	if done == nil {
		done = make(chan struct{})
		beforeSignal.running = done
		funcs := make([]func(context.Context), 0, len(beforeSignal.funcs))
		for _, f := range beforeSignal.funcs {
			funcs = append(funcs, f)
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			var wg sync.WaitGroup
			for _, f := range funcs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// A panic on this goroutine ended the process there and
					// then, before its tracers shut down, with the panic's
					// status rather than the signal's.
					defer func() { _ = recover() }()
					f(ctx)
				}()
			}
			all := make(chan struct{})
			go func() { wg.Wait(); close(all) }()
			select {
			case <-all:
			case <-ctx.Done():
			}
			beforeSignal.Lock()
			beforeSignal.running = nil
			beforeSignal.Unlock()
			close(done)
		}()
	}
	beforeSignal.Unlock()
	<-done
}

// FlushOnSignals flushes and shuts the tracer down when one of sigs (by
// default SIGTERM and SIGINT) arrives (spans still open are exported,
// marked spanguard.interrupted by that signal, as the watchdog marks
// them), then stops listening and sends the signal to this
// process again: a program that does not handle it dies the way it would
// have; one that does (signal.NotifyContext for a graceful shutdown) gets
// it on its own channel and goes on, but this tracer's shutdown races its
// drain: a span that ends in the drain arrives once, whole, or marked
// unended with what it held when the shutdown reached it, what the drain
// set after that refused (ErrShutDown; otelbridge counts it in
// Failures), and one begun in the drain once it ran is refused
// (ErrShutDown). Such a
// program needs no FlushOnSignals and should not call it: the watchdog
// flushes at the signal and leaves the tracer recording, and its own
// shutdown path calls Shutdown or Close (TestDrainAfterSigterm). Cancel
// ctx to stop watching. A signal the program ignores when it calls
// FlushOnSignals (started with SIGINT ignored, as `agent &` in a shell
// script is, or signal.Ignore) is not watched: it goes on doing nothing.
//
// The library's watchdog (on unless Config.NoSignalWatchdog) flushes the
// tracer's ended spans at these signals already; FlushOnSignals adds what
// only Go can reach: what BeforeSignalShutdown added (otelbridge's
// exporter: the SDK batcher's queue) and the OnStop hooks (an otelbridge
// provider's spans still open). The two together export each span once:
// the watchdog's flush runs first, then Go's runtime gives the signal to
// FlushOnSignals, whose shutdown exports what is left.
//
// Before the shutdown it runs what BeforeSignalShutdown added, for up to
// half of timeout: with otelbridge's exporter in the process, the global
// OpenTelemetry provider's ForceFlush, which hands the spans its
// batcher's queue holds to the exporter. The shutdown gets what is left:
// the whole stays within timeout.
func (t *Tracer) FlushOnSignals(ctx context.Context, timeout time.Duration, sigs ...os.Signal) {
	if len(sigs) == 0 {
		sigs = []os.Signal{syscall.SIGTERM, syscall.SIGINT}
	}
	// A signal ignored now (at the program's start, as `agent &` in a
	// shell script starts it with SIGINT, or by signal.Ignore) is left
	// so, as the library leaves the signals its host ignores: Notify took
	// it back from SIG_IGN, and at that signal, which would have done
	// nothing, the tracer was shut down and the program went on with
	// every later span refused.
	sigs = slices.DeleteFunc(slices.Clone(sigs), signal.Ignored)
	if len(sigs) == 0 {
		return
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	go func() {
		select {
		case <-ctx.Done():
			signal.Stop(ch)
		case s := <-ch:
			// The flush gets half of timeout at most and the shutdown
			// what is left: the whole stays within timeout (a
			// container's stop grace counts from the signal), and an SDK
			// flush held up by another, slow exporter leaves spanguard's
			// own shutdown half of it at least.
			started := time.Now()
			runBeforeSignal(timeout / 2)
			sys, _ := s.(syscall.Signal)
			_, _ = t.shutdownFor(max(0, timeout-time.Since(started)), sys)
			// Only this channel: signal.Reset undid the program's own
			// Notify too, so the signal sent again killed a program in the
			// middle of its graceful shutdown. With no channel left for
			// the signal, Go's runtime ends the process as it would have.
			signal.Stop(ch)
			if sys, ok := s.(syscall.Signal); ok {
				_ = syscall.Kill(os.Getpid(), sys)
			}
		}
	}()
}
