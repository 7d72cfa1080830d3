package spanguard_test

import (
	"errors"
	"path/filepath"
	"testing"

	spanguard "github.com/spanguard/spanguard/bindings/go"
)

// Endpoint says where the spans go, as the Python and Node bindings'
// endpoint() does: the URL configured, the one the OTEL_* variables gave
// (OTEL_EXPORTER_OTLP_ENDPOINT's with /v1/traces appended), and "" for
// a tracer that sends to no backend. otelbridge compares it with the
// SDK's own exporter's (a span sent twice); a program tells its user.
func TestEndpointIsWhereTheSpansAreSent(t *testing.T) {
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	for _, c := range []struct {
		name string
		env  map[string]string
		cfg  spanguard.Config
		want string
	}{
		{name: "configured", cfg: spanguard.Config{Endpoint: "http://127.0.0.1:4318/v1/traces"},
			want: "http://127.0.0.1:4318/v1/traces"},
		{name: "OTEL_EXPORTER_OTLP_ENDPOINT", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
			want: "http://collector:4318/v1/traces"},
		{name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://other:9999/in"},
			want: "http://other:9999/in"},
		{name: "local sink", cfg: spanguard.Config{SinkDir: filepath.Join(dir, "sink")}, want: ""},
		{name: "discard", cfg: spanguard.Config{Endpoint: "discard:"}, want: ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, v := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
				t.Setenv(v, c.env[v])
			}
			c.cfg.ServiceName, c.cfg.SpoolDir = "endpoint", spool
			tr, err := spanguard.NewTracerFromEnv(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if got, err := tr.Endpoint(); got != c.want || err != nil {
				t.Fatalf("Endpoint() = %q, %v; want %q", got, err, c.want)
			}
			if c.want != "" {
				if path, err := tr.SinkPath(); path != "" || err != nil {
					t.Fatalf("SinkPath() = %q, %v beside an endpoint; want \"\"", path, err)
				}
			}
			tr.Close()
			if got, err := tr.Endpoint(); got != "" || !errors.Is(err, spanguard.ErrShutDown) {
				t.Fatalf("Endpoint() after Close = %q, %v; want ErrShutDown", got, err)
			}
		})
	}
}
