package otelbridge

import (
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Keeping the SDK's own OTLP exporter (otlptracehttp or otlptracegrpc, in
// a batcher or a syncer) beside the bridge sends every span to the backend
// twice, as both read OTEL_EXPORTER_OTLP_ENDPOINT: the Python and Node
// bridges say so once, and so does this one, through OpenTelemetry's error
// handler (otel.Handle), at the first span of each provider.
//
// The Go SDK shows no one a provider's processors, a processor's exporter
// or an exporter's endpoint (their MarshalLog gives type names alone), so
// they are read from the SDK's unexported fields, as the Python and Node
// bridges read their SDKs' private ones: found by name and type, each
// step checked, and silent (no warning, no error) where a field is gone
// or has another type, in an SDK version laid out otherwise.
// sent_twice_internal_test.go pins the SDK's layout: it fails, rather than
// going silent, when a version the bridge is tested with moves a field.

// Where the SDK's types live, by their package paths.
const (
	otlptracePackage     = "go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	otlptraceHTTPPackage = otlptracePackage + "/otlptracehttp"
	otlptraceGRPCPackage = otlptracePackage + "/otlptracegrpc"
)

// warnIfSentTwice reports, once a processor (or exporter), when the
// provider of s (or, for an exporter that is handed a copy of the span,
// the provider holding that exporter) has the SDK's own OTLP exporter
// sending to the backend spanguard sends to. An exporter sending
// elsewhere (spanguard to one Collector, the SDK to another) is left
// unsaid, as is a tracer writing to its local sink.
func (p *SpanProcessor) warnIfSentTwice(s sdktrace.ReadOnlySpan) {
	if p.tracer == nil || p.warnedSentTwice.Load() {
		return
	}
	endpoint, err := p.tracer.Endpoint()
	ours, ok := backendOf(endpoint)
	if err != nil || !ok {
		return
	}
	tp := providerOf(s)
	if tp == nil && p.exporter != nil {
		tp = providerHolding(p.exporter)
	}
	for _, theirs := range otlpEndpoints(tp) {
		b, ok := backendOf(theirs.endpoint)
		if !ok || !sameBackend(ours, b) || !p.warnedSentTwice.CompareAndSwap(false, true) {
			continue
		}
		otel.Handle(fmt.Errorf("otelbridge: the TracerProvider also has the OpenTelemetry SDK's own exporter "+
			"(%s), which sends to %s, the backend spanguard sends to (%s): every span arrives there twice; "+
			"remove the SDK's exporter (spanguard delivers every span), or point one of them at another backend",
			theirs.kind, b, ours))
		return
	}
}

// backend is an endpoint as compared and shown: scheme, host and port (its
// path and any credentials left out).
type backend struct {
	scheme, host string
	port         int
}

func (b backend) String() string {
	return b.scheme + "://" + net.JoinHostPort(b.host, strconv.Itoa(b.port))
}

// backendOf parses a URL, or a host:port (an exporter's endpoint without
// a scheme: http). false for none ("": a local sink) or a bad one.
func backendOf(endpoint string) (backend, bool) {
	if endpoint == "" {
		return backend{}, false
	}
	if !strings.Contains(endpoint, "://") {
		endpoint = "http://" + endpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Hostname() == "" {
		return backend{}, false
	}
	b := backend{scheme: u.Scheme, host: strings.ToLower(u.Hostname()), port: 80}
	if b.scheme == "https" {
		b.port = 443
	}
	if u.Port() != "" {
		if b.port, err = strconv.Atoi(u.Port()); err != nil {
			return backend{}, false
		}
	}
	return b, true
}

// loopback is what loopback is called: one backend under any of these names.
var loopback = map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}

// sameBackend is the rule of the Python and Node bridges: one host
// (loopback by any name) on one port, or a Collector's two OTLP ports (the
// SDK's grpc exporter on 4317 beside spanguard's OTLP/HTTP on 4318).
func sameBackend(a, b backend) bool {
	if a.host != b.host && !(loopback[a.host] && loopback[b.host]) {
		return false
	}
	return a.port == b.port || min(a.port, b.port) == 4317 && max(a.port, b.port) == 4318
}

// sdkExporter is one of the SDK's OTLP exporters on a provider: its type
// as the warning names it, and where it sends.
type sdkExporter struct{ kind, endpoint string }

// otlpEndpoints are the SDK's OTLP exporters among tp's processors' (nil
// tp: none). Any panic of reflection on a layout it does not know is
// caught: none.
func otlpEndpoints(tp *sdktrace.TracerProvider) (found []sdkExporter) {
	defer func() {
		if recover() != nil {
			found = nil
		}
	}()
	for _, e := range exportersOf(tp) {
		if x, ok := otlpExporter(e); ok {
			found = append(found, x)
		}
	}
	return found
}

// providerType is the SDK's provider, which a span's tracer points to.
var providerType = reflect.TypeFor[*sdktrace.TracerProvider]()

// providerOf is the provider of s, one of the SDK's own spans (its
// tracer's provider); nil for another span (a snapshot a batcher hands
// an exporter, a wrapper) or a layout it does not know.
func providerOf(s sdktrace.ReadOnlySpan) (tp *sdktrace.TracerProvider) {
	defer func() {
		if recover() != nil {
			tp = nil
		}
	}()
	v := reflect.ValueOf(s)
	if v.Kind() != reflect.Pointer || v.Type().Elem().PkgPath() != sdkPackage ||
		v.Type().Elem().Name() != "recordingSpan" {
		return nil
	}
	provider := field(field(v, "tracer"), "provider")
	if !provider.IsValid() || provider.Type() != providerType || provider.IsNil() {
		return nil
	}
	return provider.Interface().(*sdktrace.TracerProvider)
}

// providerHolding is the provider, of those the bridge knows (the global
// one, those given to FlushBeforeShutdown), one of whose processors
// exports to e; nil when none does.
func providerHolding(e sdktrace.SpanExporter) (tp *sdktrace.TracerProvider) {
	defer func() {
		if recover() != nil {
			tp = nil
		}
	}()
	candidates := []*sdktrace.TracerProvider{}
	if global, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); ok {
		candidates = append(candidates, global)
	}
	providersToFlush.Lock()
	for _, w := range providersToFlush.list {
		if p := w.Value(); p != nil {
			candidates = append(candidates, p)
		}
	}
	providersToFlush.Unlock()
	for _, c := range candidates {
		for _, x := range exportersOf(c) {
			if x == e {
				return c
			}
		}
	}
	return nil
}

// exportersOf are the exporters of tp's batchers and syncers, read as the
// provider reads its processors (atomically: one may be registered
// meanwhile), each syncer's under the lock its Shutdown clears it under.
func exportersOf(tp *sdktrace.TracerProvider) []sdktrace.SpanExporter {
	if tp == nil {
		return nil
	}
	// An atomic.Pointer[spanProcessorStates]: its pointer, loaded as its
	// Load does (a method called through reflection would keep every
	// exported method of every type in the user's binary), and the type
	// it points to, from its [0]*T field.
	list := field(reflect.ValueOf(tp), "spanProcessors")
	if !list.IsValid() || list.Type().PkgPath() != "sync/atomic" || list.Type().NumField() == 0 {
		return nil
	}
	pointed := list.Type().Field(0).Type
	v := field(list, "v")
	if pointed.Kind() != reflect.Array || pointed.Elem().Kind() != reflect.Pointer ||
		!v.IsValid() || v.Type() != unsafePointerType {
		return nil
	}
	loaded := atomic.LoadPointer((*unsafe.Pointer)(unsafe.Pointer(v.UnsafeAddr())))
	if loaded == nil || pointed.Elem().Elem().Kind() != reflect.Slice {
		return nil
	}
	states := reflect.NewAt(pointed.Elem().Elem(), loaded)
	var out []sdktrace.SpanExporter
	for i := range states.Elem().Len() {
		sp := field(states.Elem().Index(i), "sp")
		if !sp.IsValid() || sp.Kind() != reflect.Interface || sp.IsNil() {
			continue
		}
		if e := exporterOf(sp.Elem()); e != nil {
			out = append(out, e)
		}
	}
	return out
}

var (
	exporterType      = reflect.TypeFor[sdktrace.SpanExporter]()
	mutexType         = reflect.TypeFor[sync.Mutex]()
	unsafePointerType = reflect.TypeFor[unsafe.Pointer]()
)

// exporterOf is the exporter of the SDK's batcher (BatchSpanProcessor) or
// syncer (SimpleSpanProcessor) sp; nil for another processor.
func exporterOf(sp reflect.Value) sdktrace.SpanExporter {
	if sp.Kind() != reflect.Pointer || sp.IsNil() || sp.Type().Elem().PkgPath() != sdkPackage {
		return nil
	}
	var e reflect.Value
	switch sp.Type().Elem().Name() {
	case "batchSpanProcessor": // set at its making, never written again
		e = field(sp, "e")
	case "simpleSpanProcessor": // cleared by its Shutdown, under exporterMu
		mu := field(sp, "exporterMu")
		if !mu.IsValid() || mu.Type() != mutexType {
			return nil
		}
		// Held while it exports: by this very call when the syncer's
		// exporter is a SpanExporter of the bridge, whose first export
		// brings us here (Lock would wait for good). Skipped then.
		lock := mu.Addr().Interface().(*sync.Mutex)
		if !lock.TryLock() {
			return nil
		}
		defer lock.Unlock()
		e = field(sp, "exporter")
	}
	if !e.IsValid() || e.Type() != exporterType || e.IsNil() {
		return nil
	}
	return e.Interface().(sdktrace.SpanExporter)
}

// otlpExporter says whether e is the SDK's OTLP exporter
// (otlptrace.Exporter) with its http or grpc client, and where it sends:
// the http client's endpoint (host:port, https unless insecure), the grpc
// client's target.
func otlpExporter(e sdktrace.SpanExporter) (sdkExporter, bool) {
	v := reflect.ValueOf(e)
	if v.Kind() != reflect.Pointer || v.Type().Elem().PkgPath() != otlptracePackage || v.Type().Elem().Name() != "Exporter" {
		return sdkExporter{}, false
	}
	client := field(v, "client")
	if !client.IsValid() || client.Kind() != reflect.Interface || client.IsNil() {
		return sdkExporter{}, false
	}
	client = client.Elem()
	if client.Kind() != reflect.Pointer || client.IsNil() {
		return sdkExporter{}, false
	}
	switch client.Type().Elem().PkgPath() {
	case otlptraceHTTPPackage:
		cfg := field(client, "cfg")
		endpoint, insecure := field(cfg, "Endpoint"), field(cfg, "Insecure")
		if !endpoint.IsValid() || endpoint.Kind() != reflect.String || !insecure.IsValid() || insecure.Kind() != reflect.Bool {
			return sdkExporter{}, false
		}
		scheme := "https://"
		if insecure.Bool() {
			scheme = "http://"
		}
		return sdkExporter{"otlptracehttp", scheme + endpoint.String()}, true
	case otlptraceGRPCPackage:
		endpoint := field(client, "endpoint")
		if !endpoint.IsValid() || endpoint.Kind() != reflect.String {
			return sdkExporter{}, false
		}
		// A gRPC target may name its resolver ("dns:///host:port").
		target := endpoint.String()
		if i := strings.Index(target, ":///"); i >= 0 {
			target = target[i+len(":///"):]
		}
		return sdkExporter{"otlptracegrpc", target}, true
	}
	return sdkExporter{}, false
}

// field is the field called name of the struct v is or points to, readable
// and addressable whether exported or not; the zero Value when v is no
// such struct (or not addressable) or has no such field.
func field(v reflect.Value, name string) reflect.Value {
	if v.IsValid() && v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return reflect.Value{}
		}
		v = v.Elem()
	}
	if !v.IsValid() || v.Kind() != reflect.Struct || !v.CanAddr() {
		return reflect.Value{}
	}
	f := v.FieldByName(name)
	if !f.IsValid() {
		return f
	}
	// Read through its address: a value got from an unexported field
	// cannot be handed out (Interface) as it is.
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
}
