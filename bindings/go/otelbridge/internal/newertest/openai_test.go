package newertest

// A Go agent as users write one: the OpenAI Go SDK (openai-go v3) against a
// fake OpenAI server on loopback (option.WithBaseURL), spans made by the
// user's own OpenTelemetry tracer around each call (no instrumentation for
// openai-go is served to this project), recorded through the bridge. In this
// module, not the bridge's: openai-go asks for Go 1.26 and its own
// dependencies, none of which a user of the bridge should inherit.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/childtest"
	"github.com/spanguard/spanguard/bindings/go/internal/otlpreceiver"
	"github.com/spanguard/spanguard/bindings/go/otelbridge"
	"github.com/spanguard/spanguard/bindings/go/otelbridge/internal/spancheck"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// prompt is a 60 KB prompt in several scripts (2-, 3- and 4-byte UTF-8),
// cut at a character.
func prompt() string {
	const piece = "Résumé der Straße, 東京の天気は? Привет, мир! مرحبا 🚀🧪 naïve café — "
	s := strings.Repeat(piece, 60*1024/len(piece)+1)[:60*1024]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// chunks is the streamed completion, piece by piece.
var chunks = []string{"Il fait ", "beau à ", "東京 ", "aujourd'hui ", "🌤️", " — 22 °C."}

// fakeOpenAI is an OpenAI chat completions endpoint on loopback. A stream
// sends chunks, or, with holdAfter > 0, that many and then holds the
// response open until the client goes (the process stopped mid-stream).
// prompts gets the user message of each request, as the server read it.
type fakeOpenAI struct {
	*httptest.Server
	mu      sync.Mutex
	prompts []string
}

func startFakeOpenAI(t *testing.T, holdAfter int) *fakeOpenAI {
	f := &fakeOpenAI{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream   bool `json:"stream"`
			Messages []struct {
				Content string `json:"content"`
			} `json:"messages"`
		}
		if r.URL.Path != "/v1/chat/completions" || json.NewDecoder(r.Body).Decode(&req) != nil || len(req.Messages) == 0 {
			http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.prompts = append(f.prompts, req.Messages[len(req.Messages)-1].Content)
		f.mu.Unlock()
		if !req.Stream {
			w.Header().Set("content-type", "application/json")
			fmt.Fprintf(w, `{"id":"c-1","object":"chat.completion","created":1,"model":"gpt-4o",`+
				`"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],`+
				`"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`, "Résumé: beau temps.")
			return
		}
		w.Header().Set("content-type", "text/event-stream")
		flusher := w.(http.Flusher)
		for i, c := range chunks {
			if holdAfter > 0 && i == holdAfter {
				<-r.Context().Done() // the client went
				return
			}
			b, _ := json.Marshal(map[string]any{"id": "c-2", "object": "chat.completion.chunk", "created": 1,
				"model": "gpt-4o", "choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": c}}}})
			fmt.Fprintf(w, "data: %s\n\n", b)
			flusher.Flush()
		}
		fmt.Fprint(w, `data: {"id":"c-2","object":"chat.completion.chunk","created":1,"model":"gpt-4o",`+
			`"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],`+
			`"usage":{"prompt_tokens":15000,"completion_tokens":6,"total_tokens":15006}}`+"\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeOpenAI) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.prompts...)
}

// agent is the user's code: a session span around a streamed chat call and
// a short one, each call in a span of its own with the prompt at its start
// and the completion at its end. chunk, if not nil, is told of each chunk
// as it arrives.
func agent(ctx context.Context, tp trace.TracerProvider, client openai.Client, text string,
	chunk func(trace.Span, int)) error {
	tracer := tp.Tracer("weather-agent", trace.WithInstrumentationVersion("0.3.0"))
	ctx, session := tracer.Start(ctx, "agent.session", trace.WithAttributes(attribute.String("agent.user", "zoë")))
	defer session.End()

	chatCtx, chat := tracer.Start(ctx, "chat gpt-4o", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("gen_ai.system", "openai"),
			attribute.String("gen_ai.request.model", "gpt-4o"), attribute.String("gen_ai.prompt", text)))
	stream := client.Chat.Completions.NewStreaming(chatCtx, openai.ChatCompletionNewParams{
		Model:         openai.ChatModelGPT4o,
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	acc := openai.ChatCompletionAccumulator{}
	n := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		if len(stream.Current().Choices) > 0 && stream.Current().Choices[0].Delta.Content != "" {
			n++
			if chunk != nil {
				chunk(chat, n)
			}
		}
	}
	err := stream.Err()
	stream.Close()
	completion := ""
	if len(acc.Choices) > 0 {
		completion = acc.Choices[0].Message.Content
	}
	chat.SetAttributes(attribute.String("gen_ai.completion", completion),
		attribute.Int64("gen_ai.usage.input_tokens", acc.Usage.PromptTokens),
		attribute.Int64("gen_ai.usage.output_tokens", acc.Usage.CompletionTokens))
	if err != nil {
		chat.RecordError(err)
		chat.SetStatus(codes.Error, err.Error())
		chat.End()
		return err
	}
	chat.End()

	sumCtx, sum := tracer.Start(ctx, "chat gpt-4o", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("gen_ai.prompt", "Résume: "+completion)))
	defer sum.End()
	res, err := client.Chat.Completions.New(sumCtx, openai.ChatCompletionNewParams{
		Model:    openai.ChatModelGPT4o,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Résume: " + completion)},
	})
	if err != nil {
		sum.SetStatus(codes.Error, err.Error())
		return err
	}
	sum.SetAttributes(attribute.String("gen_ai.completion", res.Choices[0].Message.Content))
	return nil
}

func newClient(base string) openai.Client {
	return openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-test"), option.WithMaxRetries(0))
}

// Every span arrives once, as the SDK kept it, the 60 KB prompt byte for
// byte, the calls' spans under the session's.
func TestAnOpenAIGoAgentsSpansArriveOnceWhole(t *testing.T) {
	rx := otlpreceiver.Start(t)
	api := startFakeOpenAI(t, 0)
	bridge := otelbridge.New(newTracer(t, rx.URL))
	memory := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(memory), sdktrace.WithSpanProcessor(bridge))
	text := prompt()
	if err := agent(context.Background(), tp, newClient(api.URL), text, nil); err != nil {
		t.Fatal(err)
	}
	if got := api.received(); len(got) != 2 || got[0] != text {
		t.Fatalf("the fake OpenAI server did not get the prompt (%d requests)", len(got))
	}
	sdk := memory.GetSpans()
	if len(sdk) != 3 {
		t.Fatalf("the SDK ended %d spans, the agent makes 3", len(sdk))
	}
	spancheck.ArrivedAsTheSDKKeptThem(t, sdk, rx, bridge)
	if err := tp.Shutdown(context.Background()); err != nil { // the tracer too: all it holds is sent
		t.Fatal(err)
	}
	arrived := rx.Spans(t)
	byID := map[string]otlpreceiver.Span{}
	for _, s := range arrived {
		if _, twice := byID[s.SpanID]; twice {
			t.Errorf("span %s (%s) arrived twice", s.SpanID, s.Name)
		}
		byID[s.SpanID] = s
	}
	if len(arrived) != 3 {
		t.Fatalf("%d spans arrived, 3 were made", len(arrived))
	}
	var session otlpreceiver.Span
	for _, s := range arrived {
		if s.Name == "agent.session" {
			session = s
		}
	}
	streamed := 0
	for _, s := range arrived {
		if s.Name == "chat gpt-4o" && (s.ParentSpanID != session.SpanID || s.TraceID != session.TraceID) {
			t.Errorf("a chat span's parent is %q, not the session %q", s.ParentSpanID, session.SpanID)
		}
		if s.Name == "chat gpt-4o" && s.Attributes["gen_ai.completion"] == strings.Join(chunks, "") {
			streamed++
			if p, _ := s.Attributes["gen_ai.prompt"].(string); p != text {
				t.Errorf("the prompt arrived as %d bytes, not the %d sent", len(p), len(text))
			}
		}
	}
	if streamed != 1 || session.SpanID == "" {
		t.Errorf("%d streamed calls with the whole completion arrived, and session %q", streamed, session.SpanID)
	}
}

// The child of the tests that stop an agent mid-stream: mode says how its
// main is written. It prints "ready" with the session's and the streamed
// call's span ids once the third chunk is in, and waits for its SIGTERM.
func openAIChild(mode, api, endpoint, spool string) {
	tr, err := spanguard.NewTracer(spanguard.Config{ServiceName: "weather-agent", Endpoint: endpoint, SpoolDir: spool,
		FlightRecorder: mode == "os-exit-flight"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	switch mode {
	case "flush-on-signals": // no handler of its own, FlushOnSignals as the README shows
		tr.FlushOnSignals(ctx, 5*time.Second)
	case "notify": // its own signal.NotifyContext, a graceful shutdown
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM)
		defer stop()
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(otelbridge.New(tr)))
	// One ended span before the call: it must arrive whatever the mode.
	_, warm := tp.Tracer("weather-agent").Start(ctx, "tool.lookup")
	warm.End()
	err = agent(ctx, tp, newClient(api), prompt(), func(chat trace.Span, n int) {
		chat.AddEvent("gen_ai.chunk", trace.WithAttributes(attribute.Int("n", n)))
		if n == 3 {
			fmt.Println("ready", chat.(sdktrace.ReadOnlySpan).Parent().SpanID(), chat.SpanContext().SpanID(),
				warm.SpanContext().SpanID())
			if mode == "os-exit-flight" {
				os.Exit(1) // log.Fatal's way out: no deferred call, no Shutdown, no exit hook in Go
			}
		}
	})
	fmt.Fprintln(os.Stderr, "the agent returned:", err)
	// "notify": the stream ends with the context's cancel; its spans end
	// (deferred above, in agent) and the program shuts down as it should.
	if err := tp.Shutdown(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(0)
}

func TestMain(m *testing.M) {
	if mode := os.Getenv("SPANGUARD_OPENAI_CHILD"); mode != "" {
		openAIChild(mode, os.Getenv("SPANGUARD_OPENAI_CHILD_API"), os.Getenv("SPANGUARD_OPENAI_CHILD_ENDPOINT"),
			os.Getenv("SPANGUARD_OPENAI_CHILD_SPOOL"))
	}
	os.Exit(m.Run())
}

// An agent stopped by SIGTERM in the middle of a streamed completion, as a
// container is: the span ended before is delivered, and the session and the
// streamed call, open, arrive once each, with the 60 KB prompt byte for
// byte, under the right parent: marked spanguard.interrupted (by SIGTERM)
// with what they held at the signal where the program lets the signal end
// it (FlushOnSignals; the library's watchdog alone spools them as they
// were at their start, delivered by the next start on that spool, marked
// the same), ended by the program itself where it handles the
// signal (signal.NotifyContext: the stream fails with the context, the
// spans end with the error, tp.Shutdown sends them). And one that leaves
// mid-stream through os.Exit (log.Fatal), skipping every shutdown: Go runs
// no exit hook, so only the flight recorder keeps its spans, sent by the
// next start on its spool directory marked spanguard.interrupted.
func TestAnOpenAIGoAgentStoppedMidStream(t *testing.T) {
	text := prompt()
	for _, mode := range []string{"flush-on-signals", "watchdog", "notify", "os-exit-flight"} {
		t.Run(mode, func(t *testing.T) {
			rx := otlpreceiver.Start(t)
			api := startFakeOpenAI(t, 3)
			spool := filepath.Join(t.TempDir(), "spool")
			cmd, _, ready := childtest.Start(t, func(first string) bool { return strings.HasPrefix(first, "ready ") },
				"SPANGUARD_OPENAI_CHILD="+mode, "SPANGUARD_OPENAI_CHILD_API="+api.URL,
				"SPANGUARD_OPENAI_CHILD_ENDPOINT="+rx.URL, "SPANGUARD_OPENAI_CHILD_SPOOL="+spool)
			ids := strings.Fields(ready)[1:]
			session, chat, warm := ids[0], ids[1], ids[2]
			if mode != "os-exit-flight" {
				if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			err := cmd.Wait()
			var exit *exec.ExitError
			died := errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGTERM
			exited := errors.As(err, &exit) && exit.ExitCode() == 1
			if died != (mode == "flush-on-signals" || mode == "watchdog") || exited != (mode == "os-exit-flight") {
				t.Fatalf("the child ended with %v", err)
			}
			// Stopped by SIGTERM whoever handled it: FlushOnSignals' shutdown
			// marks the open spans interrupted by it, as the watchdog's dump
			// does (the next start sends that).
			open := "spanguard.interrupted"
			if mode == "notify" {
				open = "spanguard.unended" // ended by the program: neither mark
			}
			if mode == "watchdog" || mode == "os-exit-flight" {
				// The next start on the spool sends what the watchdog spooled.
				tr, err := spanguard.NewTracer(spanguard.Config{Endpoint: rx.URL, SpoolDir: spool})
				if err != nil {
					t.Fatal(err)
				}
				if ok, err := tr.Shutdown(10 * time.Second); !ok || err != nil {
					t.Fatal(ok, err)
				}
			}
			got := map[string]otlpreceiver.Span{}
			for _, s := range rx.WaitFor(t, 3) {
				if _, twice := got[s.SpanID]; twice {
					t.Errorf("span %s (%s) arrived twice", s.SpanID, s.Name)
				}
				got[s.SpanID] = s
			}
			if len(got) != 3 || got[warm].Name != "tool.lookup" || got[session].Name != "agent.session" ||
				got[chat].Name != "chat gpt-4o" {
				t.Fatalf("arrived %d spans: %v; want tool.lookup, agent.session, chat gpt-4o", len(got), names(got))
			}
			if got[chat].ParentSpanID != session || got[chat].TraceID != got[session].TraceID {
				t.Errorf("the call's parent is %s, not the session %s", got[chat].ParentSpanID, session)
			}
			if p, _ := got[chat].Attributes["gen_ai.prompt"].(string); p != text {
				t.Errorf("the prompt arrived as %d bytes, not the %d sent", len(p), len(text))
			}
			for _, id := range []string{session, chat} {
				marked := got[id].Attributes[open] == true
				if marked == (mode == "notify") {
					t.Errorf("%s: %s is %v, attributes %v", got[id].Name, open, got[id].Attributes[open],
						keys(got[id].Attributes))
				}
			}
			switch mode {
			case "flush-on-signals": // what was set by the signal: the chunks' events
				if n := len(got[chat].Events); n != 3 {
					t.Errorf("the call arrived with %d chunk events, 3 were added before the signal", n)
				}
				for _, id := range []string{session, chat} {
					if a := got[id].Attributes; a["spanguard.signal"] != json.Number("15") || a["spanguard.unended"] != nil {
						t.Errorf("%s: not interrupted by SIGTERM alone: %v", got[id].Name, a)
					}
				}
			case "notify": // ended by the program: the completion so far, the error
				if c := got[chat].Attributes["gen_ai.completion"]; c != strings.Join(chunks[:3], "") ||
					got[chat].StatusCode != 2 {
					t.Errorf("the call arrived with completion %q, status %d", c, got[chat].StatusCode)
				}
			}
		})
	}
}

func names(spans map[string]otlpreceiver.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
