// A sample AI agent traced with the Go binding. Run from bindings/go after
// `make build`: SPANGUARD_SINK_DIR=/tmp/go-demo go run ./examples/agent
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
)

func toolCall(ctx context.Context, tr *spanguard.Tracer, fail bool) {
	ctx, span, err := tr.Start(ctx, "tool.call", spanguard.WithAttributes(
		spanguard.String("tool.name", "search"), spanguard.String("tool.arguments", `{"q":"LIS"}`)))
	if err != nil {
		return
	}
	defer span.End()
	if fail {
		span.RecordError(errors.New("upstream timeout after 30s"))
		return
	}
	_, http, _ := tr.Start(ctx, "http.get", spanguard.WithKind(spanguard.KindClient),
		spanguard.WithAttributes(spanguard.Int("http.response.status_code", 200)))
	http.End()
}

func main() {
	tr, err := spanguard.NewTracerFromEnv(spanguard.Config{ServiceName: "go-demo-agent"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer tr.Close()
	tr.FlushOnSignals(context.Background(), 3*time.Second)
	ctx, session, _ := tr.Start(context.Background(), "agent.session", spanguard.WithKind(spanguard.KindServer))
	for step := 0; step < 3; step++ {
		sctx, s, _ := tr.Start(ctx, "agent.step", spanguard.WithAttributes(spanguard.Int("agent.step", step)))
		_, llm, _ := tr.Start(sctx, "llm.chat", spanguard.WithKind(spanguard.KindClient), spanguard.WithAttributes(
			spanguard.String("gen_ai.request.model", "gpt-4o-mini"),
			spanguard.Int("gen_ai.usage.input_tokens", 400+step), spanguard.Int("gen_ai.usage.output_tokens", 60+step)))
		llm.End()
		toolCall(sctx, tr, step == 1)
		s.End()
	}
	session.End()
	tr.Shutdown(5 * time.Second)
	st, _ := tr.Stats()
	fmt.Printf("go-demo-agent: exported %d spans\n", st.SpansExported)
}
