package spanguard_test

// The settings of spanguard_config that Config lacked (Python and Node
// take them): FullPolicy, FullWait, Sampler, Certificate,
// ClientCertificate, ClientKey, LogLevel. Each is shown taking effect by
// the library's counters or by what arrives, never by a timing.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/childtest"
)

// recordSpans starts and ends n root spans on a tracer made from cfg (a
// fresh sink), shuts it down, and returns its stats and the spans in its
// sink.
func recordSpans(t *testing.T, cfg spanguard.Config, n int) (spanguard.Stats, []exported) {
	t.Helper()
	dir := t.TempDir()
	cfg.SinkDir, cfg.SpoolDir = filepath.Join(dir, "sink"), filepath.Join(dir, "spool")
	tr, err := spanguard.NewTracer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for i := 0; i < n; i++ {
		_, s, err := tr.Start(context.Background(), fmt.Sprintf("s%d", i))
		if err != nil {
			t.Fatal(err)
		}
		s.End()
	}
	if ok, err := tr.Shutdown(20 * time.Second); !ok || err != nil {
		t.Fatalf("shutdown: %v %v", ok, err)
	}
	st, err := tr.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st, readSpans(t, cfg.SinkDir)
}

func TestSamplerNeverSampleExportsNothingAndCountsIt(t *testing.T) {
	st, spans := recordSpans(t, spanguard.Config{Sampler: spanguard.NeverSample()}, 5)
	if st.SpansUnsampled != 5 || st.SpansExported != 0 || len(spans) != 0 {
		t.Fatalf("unsampled %d, exported %d, %d in the sink; want 5, 0, 0", st.SpansUnsampled, st.SpansExported, len(spans))
	}
}

// The ratio reaches the library: 0 keeps no trace, 1 every one, root or
// parent-based; and the zero Sampler is the default, which keeps them all.
func TestSamplerTraceIDRatioBased(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sampler spanguard.Sampler
		kept    int
	}{
		{"ratio 0", spanguard.TraceIDRatioBased(0), 0},
		{"ratio 1", spanguard.TraceIDRatioBased(1), 5},
		{"parent-based ratio 0", spanguard.ParentBased(spanguard.TraceIDRatioBased(0)), 0},
		{"parent-based never", spanguard.ParentBased(spanguard.NeverSample()), 0},
		{"always", spanguard.AlwaysSample(), 5},
		{"zero value", spanguard.Sampler{}, 5},
	} {
		st, spans := recordSpans(t, spanguard.Config{Sampler: tc.sampler}, 5)
		if len(spans) != tc.kept || st.SpansUnsampled != uint64(5-tc.kept) {
			t.Errorf("%s: %d exported, %d unsampled; want %d exported", tc.name, len(spans), st.SpansUnsampled, tc.kept)
		}
	}
}

// A parent-based sampler follows a sampled remote parent where its root
// sampler would keep nothing.
func TestParentBasedFollowsASampledParent(t *testing.T) {
	dir := t.TempDir()
	tr, err := spanguard.NewTracer(spanguard.Config{Sampler: spanguard.ParentBased(spanguard.NeverSample()),
		SinkDir: filepath.Join(dir, "sink"), SpoolDir: filepath.Join(dir, "spool")})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	_, root, _ := tr.Start(context.Background(), "root")
	root.End()
	_, child, err := tr.Start(context.Background(), "child",
		spanguard.WithRemoteParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	if err != nil {
		t.Fatal(err)
	}
	child.End()
	if ok, err := tr.Shutdown(20 * time.Second); !ok || err != nil {
		t.Fatalf("shutdown: %v %v", ok, err)
	}
	spans := readSpans(t, filepath.Join(dir, "sink"))
	if len(spans) != 1 || spans[0].Name != "child" {
		t.Fatalf("exported %+v; want the child of the sampled parent alone", spans)
	}
}

// A setting the library refuses is an error naming it, not a tracer with
// the setting left out.
func TestWrongSettingsAreErrorsNamingThem(t *testing.T) {
	pem := filepath.Join(t.TempDir(), "half.pem")
	if err := os.WriteFile(pem, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		cfg  spanguard.Config
		says string
	}{
		{spanguard.Config{Sampler: spanguard.TraceIDRatioBased(1.5)}, "sampler_ratio"},
		{spanguard.Config{Sampler: spanguard.ParentBased(spanguard.TraceIDRatioBased(-0.1))}, "sampler_ratio"},
		{spanguard.Config{FullPolicy: 7}, "full_policy"},
		{spanguard.Config{Certificate: "/nonexistent/ca.pem"}, "certificate"},
		{spanguard.Config{ClientCertificate: pem}, "client_certificate"},
		{spanguard.Config{ClientKey: pem}, "client_certificate"},
		{spanguard.Config{LogLevel: "loud"}, ""},
	} {
		tc.cfg.Endpoint = "discard:"
		tr, err := spanguard.NewTracer(tc.cfg)
		if err == nil {
			tr.Close()
			t.Errorf("case %d (%s) made a tracer", i, tc.says)
			continue
		}
		var e *spanguard.Error
		// A policy that is none is INVALID_ARGUMENT, as every enum field's.
		if !errors.As(err, &e) || (e.Code != spanguard.ErrInvalidConfig.Code && tc.says != "full_policy") {
			t.Errorf("case %d: %v, want INVALID_CONFIG", i, err)
		}
		if !strings.Contains(err.Error(), tc.says) {
			t.Errorf("case %d: %q does not name %s", i, err, tc.says)
		}
	}
}

// heldBackend answers nothing until release is called (at the test's end
// if not before); arrived receives once, when the first request came.
func heldBackend(t *testing.T) (url string, arrived <-chan struct{}, release func()) {
	t.Helper()
	gate, came := make(chan struct{}), make(chan struct{}, 1)
	var requests atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			came <- struct{}{}
		}
		<-gate
	}))
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(backend.Close)
	t.Cleanup(release)
	return backend.URL + "/v1/traces", came, release
}

// fillSlots starts and ends spans until one finds every slot taken: it
// stops at the first that waited (Stats.SlotWaits) or was dropped.
func fillSlots(t *testing.T, tr *spanguard.Tracer) spanguard.Stats {
	t.Helper()
	for i := 0; i < 100_000; i++ {
		_, s, err := tr.Start(context.Background(), "fill")
		if err == nil {
			s.End()
		} else if !errors.Is(err, spanguard.ErrBufferFull) {
			t.Fatal(err)
		}
		st, err := tr.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.SlotWaits > 0 || st.DroppedBufferFull > 0 {
			return st
		}
	}
	t.Fatal("the slots never filled")
	return spanguard.Stats{}
}

// heldTracer is a tracer of 16 slots and a queue of 16 on heldBackend's
// url, with cfg's other settings and no signal watchdog, whose first batch
// (one span) the backend holds when it returns: the spans ended after it
// keep their slots until release.
func heldTracer(t *testing.T, url string, arrived <-chan struct{}, cfg spanguard.Config) *spanguard.Tracer {
	t.Helper()
	cfg.Endpoint, cfg.SpoolDir = url, filepath.Join(t.TempDir(), "spool")
	cfg.MaxOpenSpans, cfg.MaxQueueSize, cfg.ScheduleDelay, cfg.NoSignalWatchdog = 16, 16, 10*time.Millisecond, true
	tr, err := spanguard.NewTracer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, first, _ := tr.Start(context.Background(), "first")
	first.End()
	<-arrived
	return tr
}

// The exporter is stuck in its first request, so the slots of the spans
// ended after it stay taken: under FullPolicyDrop the begin that finds
// them all taken is dropped at once, never waiting; under the default
// policy it waits first.
func TestFullPolicyDropNeverWaits(t *testing.T) {
	// One OS thread: the slots each thread keeps at hand are this one's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, policy := range []spanguard.FullPolicy{spanguard.FullPolicyDrop, spanguard.FullPolicyWait} {
		url, arrived, release := heldBackend(t)
		tr := heldTracer(t, url, arrived, spanguard.Config{FullPolicy: policy,
			// The waiting begin of FullPolicyWait gives up soon: nothing comes back.
			FullWait: time.Millisecond})
		st := fillSlots(t, tr)
		switch {
		case policy == spanguard.FullPolicyDrop && (st.SlotWaits != 0 || st.DroppedBufferFull != 1):
			t.Errorf("drop: %d slot waits, %d dropped; want 0, 1", st.SlotWaits, st.DroppedBufferFull)
		case policy == spanguard.FullPolicyWait && st.SlotWaits != 1:
			t.Errorf("wait: %d slot waits; want 1", st.SlotWaits)
		}
		release()
		tr.Close()
	}
}

// A begin waits as long as FullWait says: the backend holds the first
// request until a second after the slots filled, and a begin given a
// minute gets the slot the exporter frees once it answers. The default
// 200 ms ran out first and dropped the span (the counts decide).
func TestFullWaitIsHowLongABeginWaits(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	url, arrived, release := heldBackend(t)
	tr := heldTracer(t, url, arrived, spanguard.Config{FullWait: time.Minute, RequestTimeout: time.Minute})
	defer tr.Close()
	time.AfterFunc(time.Second, release)
	st := fillSlots(t, tr)
	if st.SlotWaits != 1 || st.DroppedBufferFull != 0 {
		t.Fatalf("%d slot waits, %d dropped; want 1 wait that got its slot", st.SlotWaits, st.DroppedBufferFull)
	}
}

// tlsFiles writes a self-signed certificate for 127.0.0.1 and the host name
// name (its own CA) and its key as PEM files; returns the certificate for a
// server or client.
func tlsFiles(t *testing.T, name string) (cert tls.Certificate, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{name},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	// X509KeyPair leaves Leaf nil under the go.mod's older Go version.
	if cert.Leaf, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	return cert, certFile, keyFile
}

// Certificate, ClientCertificate and ClientKey reach the transport: a
// loopback backend with a private CA that requires a client certificate
// gets the spans with all three, and none without the client's (spooled).
func TestMutualTLS(t *testing.T) {
	serverCert, serverCA, _ := tlsFiles(t, "server")
	clientCert, clientPEM, clientKey := tlsFiles(t, "client")
	clients := x509.NewCertPool()
	clients.AddCert(clientCert.Leaf)
	var spansIn atomic.Int64
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			spansIn.Add(1)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	backend.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: clients}
	backend.StartTLS()
	defer backend.Close()
	for _, tc := range []struct {
		name      string
		cfg       spanguard.Config
		delivered bool
	}{
		{"CA and client certificate", spanguard.Config{Certificate: serverCA, ClientCertificate: clientPEM, ClientKey: clientKey}, true},
		{"CA alone", spanguard.Config{Certificate: serverCA}, false},
	} {
		requests := spansIn.Load()
		tc.cfg.Endpoint = backend.URL + "/v1/traces"
		tc.cfg.SpoolDir = filepath.Join(t.TempDir(), "spool")
		tc.cfg.ExportTimeout, tc.cfg.LogLevel = 2*time.Second, "none"
		tr, err := spanguard.NewTracer(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			_, s, _ := tr.Start(context.Background(), "tls")
			s.End()
		}
		tr.Shutdown(20 * time.Second)
		st, _ := tr.Stats()
		tr.Close()
		got := st.SpansExported == 3 && spansIn.Load() > requests
		if got != tc.delivered || (!tc.delivered && st.SpooledSpans != 3) {
			t.Errorf("%s: %d exported, %d spooled, %d requests; delivered %v, want %v",
				tc.name, st.SpansExported, st.SpooledSpans, spansIn.Load()-requests, got, tc.delivered)
		}
	}
}

// logLevelChild makes a tracer from the environment, one of whose
// variables is wrong (a warning), with LogLevel from
// SPANGUARD_LOG_LEVEL_CHILD, and exits.
func logLevelChild(level string) {
	os.Setenv("OTEL_BSP_SCHEDULE_DELAY", "soon")
	tr, err := spanguard.NewTracerFromEnv(spanguard.Config{Endpoint: "discard:", LogLevel: level})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	tr.Close()
}

// LogLevel reaches the library: "none" silences the warning that the
// default level writes to stderr.
func TestLogLevelSaysWhatReachesStderr(t *testing.T) {
	for _, tc := range []struct {
		level string
		warns bool
	}{{"warn", true}, {"none", false}, {"error", false}} {
		cmd := childtest.Command("SPANGUARD_LOG_LEVEL_CHILD=" + tc.level)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if out, err := cmd.Output(); err != nil {
			t.Fatalf("%s: %v %s %s", tc.level, err, out, stderr.String())
		}
		warned := strings.Contains(stderr.String(), "OTEL_BSP_SCHEDULE_DELAY")
		if warned != tc.warns {
			t.Errorf("LogLevel %q: warned %v, want %v: %q", tc.level, warned, tc.warns, stderr.String())
		}
	}
}

// The warning that spans were dropped, every slot taken, names the Go
// settings that raise them (Config.MaxQueueSize, Config.MaxOpenSpans): it
// named max_queue_size, which a Go program has not, beside the
// environment's SPANGUARD_MAX_OPEN_SPANS.
func TestTheBufferFullWarningNamesTheGoSettings(t *testing.T) {
	runtime.LockOSThread() // the slots each thread keeps at hand are this one's
	defer runtime.UnlockOSThread()
	url, arrived, release := heldBackend(t)
	log := &recorded{}
	tr := heldTracer(t, url, arrived, spanguard.Config{FullPolicy: spanguard.FullPolicyDrop, EventLogger: slog.New(log)})
	defer tr.Close()
	fillSlots(t, tr)
	release() // the exporter, answered, tells what was dropped meanwhile
	var told []logged
	for deadline := time.Now().Add(20 * time.Second); len(told) == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		told = log.of("BUFFER_FULL")
	}
	if len(told) == 0 {
		t.Fatal("the dropped span was never told")
	}
	if m := told[0].Message; !strings.Contains(m, "Config.MaxOpenSpans") || !strings.Contains(m, "Config.MaxQueueSize") ||
		strings.Contains(m, "max_queue_size") {
		t.Fatalf("told %q: a Go program raises Config.MaxQueueSize or Config.MaxOpenSpans", m)
	}
}
