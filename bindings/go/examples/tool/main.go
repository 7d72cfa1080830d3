// A "tool" process for the cross-process propagation test: it continues the
// trace whose W3C traceparent arrives in the TRACEPARENT environment
// variable, does its work in two spans, and exits.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
)

func main() {
	tr, err := spanguard.NewTracerFromEnv(spanguard.Config{ServiceName: "go-tool"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer tr.Close()
	ctx, span, err := tr.Start(context.Background(), "tool.search", spanguard.WithKind(spanguard.KindServer),
		spanguard.WithRemoteParent(os.Getenv("TRACEPARENT")))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_, inner, _ := tr.Start(ctx, "tool.query", spanguard.WithAttributes(spanguard.String("q", os.Args[len(os.Args)-1])))
	inner.End()
	span.End()
	if _, err := tr.Shutdown(5 * time.Second); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tp, _ := span.Traceparent()
	fmt.Println(tp)
}
