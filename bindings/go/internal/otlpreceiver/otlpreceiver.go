// Package otlpreceiver runs the repository's loopback OTLP receiver
// (tests/receiver/otlp_receiver.py, which decodes with PyPI's
// opentelemetry-proto) for the Go tests, and reads the spans it accepted:
// the binding's and the bridge's tests judge spanguard by what arrived
// there, never by its own encoder.
package otlpreceiver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Receiver is one receiver process; URL is its traces endpoint.
type Receiver struct {
	URL    string
	record string
}

// Span is a span as the receiver recorded it. Numbers stay json.Number, so
// int64 values keep every digit.
type Span struct {
	TraceID        string         `json:"trace_id"`
	SpanID         string         `json:"span_id"`
	ParentSpanID   string         `json:"parent_span_id"`
	Name           string         `json:"name"`
	Kind           int            `json:"kind"`
	Start          json.Number    `json:"start"`
	End            json.Number    `json:"end"`
	StatusCode     int            `json:"status_code"`
	StatusMsg      string         `json:"status_message"`
	Attributes     map[string]any `json:"attributes"`
	Resource       map[string]any `json:"resource"`
	Scope          string         `json:"scope"`
	ScopeVersion   string         `json:"scope_version"`
	ScopeSchemaURL string         `json:"scope_schema_url"`
	ScopeAttrs     map[string]any `json:"scope_attributes"`
	TraceState     string         `json:"trace_state"`
	Dropped        int            `json:"dropped_attributes_count"`
	DroppedEvents  int            `json:"dropped_events_count"`
	DroppedLinks   int            `json:"dropped_links_count"`
	Events         []struct {
		Name       string         `json:"name"`
		Time       json.Number    `json:"time"`
		Attributes map[string]any `json:"attributes"`
		Dropped    int            `json:"dropped_attributes_count"`
	} `json:"events"`
	Links []struct {
		TraceID    string         `json:"trace_id"`
		SpanID     string         `json:"span_id"`
		TraceState string         `json:"trace_state"`
		Flags      uint32         `json:"flags"`
		Attributes map[string]any `json:"attributes"`
		Dropped    int            `json:"dropped_attributes_count"`
	} `json:"links"`
}

// repo is the repository's root, from this file's place in it.
func repo() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..")
}

// Start runs a receiver for the test (stopped at its end), with the Python
// of SPANGUARD_TEST_PYTHON, else the repository's .venv.
func Start(t testing.TB) *Receiver {
	t.Helper()
	return start(t, "http")
}

// StartTLS runs a receiver whose trace port speaks HTTPS with the
// certificate and key of these PEM files.
func StartTLS(t testing.TB, certFile, keyFile string) *Receiver {
	t.Helper()
	return start(t, "https", "--tls-cert", certFile, "--tls-key", keyFile)
}

func start(t testing.TB, scheme string, args ...string) *Receiver {
	t.Helper()
	python := os.Getenv("SPANGUARD_TEST_PYTHON")
	if python == "" {
		python = filepath.Join(repo(), ".venv", "bin", "python")
	}
	dir := t.TempDir()
	r := &Receiver{record: filepath.Join(dir, "record.jsonl")}
	portFile := filepath.Join(dir, "port")
	args = append([]string{filepath.Join(repo(), "tests", "receiver", "otlp_receiver.py"), "--port", "0",
		"--port-file", portFile, "--record", r.record}, args...)
	cmd := exec.Command(python, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("the receiver (%s): %v", python, err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	for i := 0; ; i++ {
		if b, err := os.ReadFile(portFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			r.URL = scheme + "://127.0.0.1:" + strings.TrimSpace(string(b)) + "/v1/traces"
			return r
		}
		if i > 300 {
			t.Fatal("the receiver did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Spans are the spans of every request the receiver accepted so far. A
// last line without its newline is one the receiver is still writing (a
// line of an LLM-sized request takes several writes): it is left for the
// next call, not read as a broken record.
func (r *Receiver) Spans(t testing.TB) []Span {
	t.Helper()
	record, err := os.ReadFile(r.record)
	if err != nil {
		return nil
	}
	record = record[:bytes.LastIndexByte(record, '\n')+1]
	var out []Span
	sc := bufio.NewScanner(bytes.NewReader(record))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var line struct {
			Rejected any    `json:"rejected"`
			Refused  any    `json:"refused"`
			Spans    []Span `json:"spans"`
		}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		if err := dec.Decode(&line); err != nil {
			t.Fatalf("a record line: %v", err)
		}
		if line.Rejected == nil && line.Refused == nil {
			out = append(out, line.Spans...)
		}
	}
	return out
}

// WaitFor returns the spans once n have arrived, or what arrived in 20 s.
func (r *Receiver) WaitFor(t testing.TB, n int) []Span {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := r.Spans(t)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}
