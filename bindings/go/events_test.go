package spanguard_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
)

// recorded is a slog.Handler keeping every record: level, message and the
// spanguard.event attributes.
type recorded struct {
	mu   sync.Mutex
	logs []logged
}

type logged struct {
	Level   slog.Level
	Message string
	Event   string
	Code    int64
}

func (r *recorded) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorded) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorded) WithGroup(string) slog.Handler            { return r }
func (r *recorded) Handle(_ context.Context, rec slog.Record) error {
	l := logged{Level: rec.Level, Message: rec.Message}
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "spanguard.event":
			l.Event = a.Value.String()
		case "spanguard.event_code":
			l.Code = a.Value.Int64()
		}
		return true
	})
	r.mu.Lock()
	r.logs = append(r.logs, l)
	r.mu.Unlock()
	return nil
}

func (r *recorded) of(event string) []logged {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []logged
	for _, l := range r.logs {
		if l.Event == event {
			out = append(out, l)
		}
	}
	return out
}

// A backend answering every request 200 with an OTLP partial success that
// rejects no span and carries a message: the warning a backend gives
// ("attributes over limit were truncated"). Said on stderr alone before,
// a program logging through slog never saw it.
func TestABackendsWarningIsLoggedToTheEventLogger(t *testing.T) {
	const warning = "attributes over limit were truncated"
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// ExportTraceServiceResponse{partial_success: {error_message: warning}},
		// protobuf by hand: field 1 (a message) holding field 2 (a string).
		inner := append([]byte{0x12, byte(len(warning))}, warning...)
		body := append([]byte{0x0a, byte(len(inner))}, inner...)
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(body)
	}))
	defer backend.Close()
	logs := &recorded{}
	dir := t.TempDir()
	tr, err := spanguard.NewTracer(spanguard.Config{
		ServiceName: "go-events", Endpoint: backend.URL + "/v1/traces",
		SpoolDir: filepath.Join(dir, "spool"), ScheduleDelay: 50 * time.Millisecond,
		NoSignalWatchdog: true, LogLevel: "none", EventLogger: slog.New(logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		_, span, _ := tr.Start(context.Background(), "op")
		span.End()
		if _, err := tr.Flush(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tr.Shutdown(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	want := []logged{
		{slog.LevelWarn, "spanguard: the backend accepted 1 span with a warning: " + warning, "BACKEND_WARNING", 8},
		// The other two requests, held back by the minute's rate limit and
		// told at the stop, as stderr tells them.
		{slog.LevelWarn, "spanguard: the backend accepted 2 more spans with a warning: attributes over limit " +
			"were truncated (as said above)", "BACKEND_WARNING", 8},
	}
	if got := logs.of("BACKEND_WARNING"); !reflect.DeepEqual(got, want) {
		t.Fatalf("logged %+v\nwant %+v\nall: %+v", got, want, logs.logs)
	}
}

// A variable ignored (a value spanguard cannot use) is read as the tracer
// is made, before a callback could be set: logged all the same.
func TestAnIgnoredVariableIsLoggedToTheEventLogger(t *testing.T) {
	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "lots")
	logs := &recorded{}
	dir := t.TempDir()
	tr, err := spanguard.NewTracerFromEnv(spanguard.Config{
		ServiceName: "go-events", SinkDir: filepath.Join(dir, "sink"), SpoolDir: filepath.Join(dir, "spool"),
		NoSignalWatchdog: true, EventLogger: slog.New(logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Shutdown(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	got := logs.of("SETTING_IGNORED")
	if len(got) != 1 || got[0].Level != slog.LevelWarn || got[0].Code != 9 {
		t.Fatalf("logged %+v", logs.logs)
	}
}

// An event of a newer library than this binding is logged with its
// number, never dropped.
func TestAnEventThisBindingDoesNotKnowIsLogged(t *testing.T) {
	logs := &recorded{}
	spanguard.LogEvent(slog.New(logs), 4242, "news from the future")
	want := []logged{{slog.LevelWarn, "spanguard: news from the future", "EVENT_4242", 4242}}
	if !reflect.DeepEqual(logs.logs, want) {
		t.Fatalf("logged %+v", logs.logs)
	}
}
