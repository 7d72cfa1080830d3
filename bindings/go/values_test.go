package spanguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
	"github.com/spanguard/spanguard/bindings/go/internal/otlpreceiver"
)

// tracerTo makes a tracer that sends to the loopback receiver.
func tracerTo(t *testing.T, rx *otlpreceiver.Receiver, cfg spanguard.Config) *spanguard.Tracer {
	t.Helper()
	cfg.ServiceName, cfg.Endpoint = "go-values", rx.URL
	cfg.SpoolDir, cfg.ScheduleDelay = filepath.Join(t.TempDir(), "spool"), 50*time.Millisecond
	tr, err := spanguard.NewTracer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// arrived flushes and returns the n spans that arrived, by name, each once.
func arrived(t *testing.T, rx *otlpreceiver.Receiver, tr *spanguard.Tracer, n int) map[string]otlpreceiver.Span {
	t.Helper()
	if ok, err := tr.Flush(20 * time.Second); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
	out := map[string]otlpreceiver.Span{}
	for _, s := range rx.WaitFor(t, n) {
		if _, twice := out[s.Name]; twice {
			t.Fatalf("%s arrived twice", s.Name)
		}
		out[s.Name] = s
	}
	if len(out) != n {
		t.Fatalf("%d spans arrived, want %d", len(out), n)
	}
	return out
}

// decoded is JSON text as the receiver's record decodes (numbers as
// json.Number), to compare attributes with.
func decoded(t *testing.T, text string) map[string]any {
	t.Helper()
	var out map[string]any
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameAttributes(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Errorf("%s: attributes\n got %s\nwant %s", what, g, w)
	}
}

func valueAttributes() []spanguard.Attribute {
	return []spanguard.Attribute{
		spanguard.Strings("gen_ai.response.finish_reasons", []string{"stop", "length"}),
		spanguard.Strings("strings.utf8", []string{"a", "", "ünï"}),
		spanguard.Int64s("ints", []int64{1, -2, math.MaxInt64, math.MinInt64}),
		spanguard.Float64s("doubles", []float64{0.5, -1.25}),
		spanguard.Bools("bools", []bool{true, false, true}),
		spanguard.Strings("empty", nil),
		spanguard.Bytes("raw", []byte{0x00, 0xff, 0x10, 0x80}),
		spanguard.Bytes("raw.empty", []byte{}),
		spanguard.String("scalar", "kept"),
		spanguard.Float64("scalar.double", 0.25),
	}
}

const valuesWant = `{
	"gen_ai.response.finish_reasons": ["stop", "length"],
	"strings.utf8": ["a", "", "ünï"],
	"ints": [1, -2, 9223372036854775807, -9223372036854775808],
	"doubles": [0.5, -1.25],
	"bools": [true, false, true],
	"empty": [],
	"raw": {"bytes": "00ff1080"},
	"raw.empty": {"bytes": ""},
	"scalar": "kept",
	"scalar.double": 0.25
}`

// Arrays and bytes arrive typed wherever a value goes, over protobuf and
// JSON: SetAttributes, attributes at start, events, links, foreign spans.
func TestArraysAndBytesRoundTrip(t *testing.T) {
	for _, jsonProtocol := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", jsonProtocol), func(t *testing.T) {
			rx := otlpreceiver.Start(t)
			tr := tracerTo(t, rx, spanguard.Config{ProtocolJSON: jsonProtocol})
			ctx := context.Background()
			_, atStart, _ := tr.Start(ctx, "at.start", spanguard.WithAttributes(valueAttributes()...))
			atStart.End()
			_, one, _ := tr.Start(ctx, "one.by.one")
			for _, a := range valueAttributes() {
				if err := one.SetAttributes(a); err != nil {
					t.Fatal(err)
				}
			}
			one.End()
			_, all, _ := tr.Start(ctx, "all.at.once")
			if err := all.SetAttributes(valueAttributes()...); err != nil {
				t.Fatal(err)
			}
			if err := all.AddEvent("event", valueAttributes()...); err != nil {
				t.Fatal(err)
			}
			_, linked, _ := tr.Start(ctx, "linked")
			tp, _ := linked.Traceparent()
			if err := all.AddLink(tp, valueAttributes()...); err != nil {
				t.Fatal(err)
			}
			linked.End()
			all.End()
			foreign, err := tr.StartForeign(&spanguard.ForeignSpan{Name: "foreign", TraceFlags: 1,
				TraceID: [16]byte{1, 2, 3}, SpanID: [8]byte{4, 5, 6}, Attributes: valueAttributes()})
			if err != nil {
				t.Fatal(err)
			}
			foreign.End()
			spans := arrived(t, rx, tr, 5)
			want := decoded(t, valuesWant)
			for _, name := range []string{"at.start", "one.by.one", "all.at.once", "foreign"} {
				sameAttributes(t, name, spans[name].Attributes, want)
			}
			sameAttributes(t, "event", spans["all.at.once"].Events[0].Attributes, want)
			sameAttributes(t, "link", spans["all.at.once"].Links[0].Attributes, want)
		})
	}
}

// An LLM-sized span: a 100,000-byte prompt, a 20,000-byte completion,
// token counts after them and 100 more attributes arrive whole, every key.
func TestAnLLMSizedSpanArrivesWhole(t *testing.T) {
	rx := otlpreceiver.Start(t)
	tr := tracerTo(t, rx, spanguard.Config{})
	var prompt, completion strings.Builder
	for i := 0; i < 100_000; i++ {
		prompt.WriteByte(byte('a' + i%26))
	}
	for i := 0; i < 20_000; i++ {
		completion.WriteByte(byte('A' + i%26))
	}
	var extra []spanguard.Attribute
	want := map[string]any{
		"gen_ai.prompt": prompt.String(), "gen_ai.completion": completion.String(),
		"gen_ai.usage.input_tokens": json.Number("25000"), "gen_ai.usage.output_tokens": json.Number("5000"),
	}
	for i := 0; i < 100; i++ {
		extra = append(extra, spanguard.String(fmt.Sprintf("extra.%d", i), fmt.Sprintf("value-%d", i)))
		want[fmt.Sprintf("extra.%d", i)] = fmt.Sprintf("value-%d", i)
	}
	_, llm, _ := tr.Start(context.Background(), "llm.chat", spanguard.WithKind(spanguard.KindClient))
	for _, a := range []spanguard.Attribute{
		spanguard.String("gen_ai.prompt", prompt.String()), spanguard.String("gen_ai.completion", completion.String()),
		spanguard.Int("gen_ai.usage.input_tokens", 25000), spanguard.Int("gen_ai.usage.output_tokens", 5000),
	} {
		if err := llm.SetAttributes(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := llm.SetAttributes(extra...); err != nil {
		t.Fatal(err)
	}
	llm.End()
	_, atOnce, _ := tr.Start(context.Background(), "llm.chat.at.once", spanguard.WithKind(spanguard.KindClient),
		spanguard.WithAttributes(spanguard.String("gen_ai.prompt", prompt.String()),
			spanguard.String("gen_ai.completion", completion.String())))
	if err := atOnce.SetAttributes(append([]spanguard.Attribute{spanguard.Int("gen_ai.usage.input_tokens", 25000),
		spanguard.Int("gen_ai.usage.output_tokens", 5000)}, extra...)...); err != nil {
		t.Fatal(err)
	}
	atOnce.End()
	spans := arrived(t, rx, tr, 2)
	for _, name := range []string{"llm.chat", "llm.chat.at.once"} {
		sameAttributes(t, name, spans[name].Attributes, want)
		if spans[name].Dropped != 0 {
			t.Errorf("%s: %d attributes dropped", name, spans[name].Dropped)
		}
	}
	if st, _ := tr.Stats(); st.ValuesTruncated != 0 {
		t.Errorf("%d values truncated", st.ValuesTruncated)
	}
}

// One call takes 128 attributes; more are set in as many calls as needed,
// later and at a foreign span's start.
func TestMoreAttributesThanOneCallTakesAreAllSet(t *testing.T) {
	rx := otlpreceiver.Start(t)
	tr := tracerTo(t, rx, spanguard.Config{AttributeCountLimit: 1000})
	var many []spanguard.Attribute
	want := map[string]any{}
	for i := 0; i < 300; i++ {
		many = append(many, spanguard.Int(fmt.Sprintf("k%d", i), i))
		want[fmt.Sprintf("k%d", i)] = json.Number(fmt.Sprint(i))
	}
	many = append(many, spanguard.Int64s("and.an.array", []int64{7}))
	want["and.an.array"] = []any{json.Number("7")}
	_, later, _ := tr.Start(context.Background(), "many.later")
	if err := later.SetAttributes(many...); err != nil {
		t.Fatal(err)
	}
	later.End()
	// At start: 128 scalars go packed in the begin call, more (or an
	// array) through begin and SetAttributes.
	_, atStart, _ := tr.Start(context.Background(), "many.start", spanguard.WithAttributes(many...))
	atStart.End()
	_, packed, _ := tr.Start(context.Background(), "packed.start", spanguard.WithAttributes(many[:128]...))
	packed.End()
	foreign, err := tr.StartForeign(&spanguard.ForeignSpan{Name: "many.foreign", TraceFlags: 1,
		TraceID: [16]byte{9}, SpanID: [8]byte{9}, Attributes: many})
	if err != nil {
		t.Fatal(err)
	}
	foreign.End()
	spans := arrived(t, rx, tr, 4)
	wantPacked := map[string]any{}
	for i := 0; i < 128; i++ {
		wantPacked[fmt.Sprintf("k%d", i)] = json.Number(fmt.Sprint(i))
	}
	sameAttributes(t, "packed.start", spans["packed.start"].Attributes, wantPacked)
	for _, name := range []string{"many.later", "many.start", "many.foreign"} {
		sameAttributes(t, name, spans[name].Attributes, want)
	}
}

func TestTheLimitsAreSettingsAndUpdateNameRenames(t *testing.T) {
	rx := otlpreceiver.Start(t)
	tr := tracerTo(t, rx, spanguard.Config{ValueLengthLimit: 4, AttributeCountLimit: 2, EventCountLimit: 1,
		LinkCountLimit: 1, EventAttributeCountLimit: 1, LinkAttributeCountLimit: 1, PayloadPoolMiB: 1})
	_, s, _ := tr.Start(context.Background(), "first.name")
	s.SetAttributes(spanguard.String("a", "abcdefgh"), spanguard.Strings("b", []string{"abcdefgh", "xy"}),
		spanguard.Int("c", 3))
	s.AddEvent("e1", spanguard.Int("x", 1), spanguard.Int("y", 2))
	s.AddEvent("e2")
	s.AddLink("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", spanguard.Int("x", 1), spanguard.Int("y", 2))
	if err := s.UpdateName("second.name"); err != nil {
		t.Fatal(err)
	}
	s.End()
	got := arrived(t, rx, tr, 1)["second.name"]
	sameAttributes(t, "limited", got.Attributes, decoded(t, `{"a": "abcd", "b": ["abcd", "xy"]}`))
	if got.Dropped != 1 || got.DroppedEvents != 1 || len(got.Events) != 1 || got.Events[0].Dropped != 1 ||
		len(got.Links) != 1 || got.Links[0].Dropped != 1 {
		t.Errorf("dropped counts: span %d, events %d (event %+v), links %+v", got.Dropped, got.DroppedEvents, got.Events, got.Links)
	}
}

// An array or bytes attribute refers to the caller's slice until it is
// set: what arrives is the slice as it was then.
func TestAnArrayIsReadWhenSet(t *testing.T) {
	rx := otlpreceiver.Start(t)
	tr := tracerTo(t, rx, spanguard.Config{})
	_, s, _ := tr.Start(context.Background(), "read.when.set")
	values, raw := []string{"before"}, []byte("before")
	s.SetAttributes(spanguard.Strings("values", values), spanguard.Bytes("raw", raw))
	values[0] = "after"
	copy(raw, "AFTER!")
	s.End()
	got := arrived(t, rx, tr, 1)["read.when.set"]
	sameAttributes(t, "read.when.set", got.Attributes,
		decoded(t, `{"values": ["before"], "raw": {"bytes": "`+fmt.Sprintf("%x", "before")+`"}}`))
}

// DropOldest drops a span's oldest events and links and counts them
// dropped, as an OpenTelemetry SDK evicts its oldest past its limits (the
// bridge's call, otelbridge); asked for more than the span holds, it drops
// all it holds. The zero Span's call does nothing; after Shutdown it is
// ErrShutDown, as every span call.
func TestDropOldestDropsTheOldestAndCountsThem(t *testing.T) {
	rx := otlpreceiver.Start(t)
	tr := tracerTo(t, rx, spanguard.Config{})
	ctx := context.Background()
	traceparent := func(i int) string { return fmt.Sprintf("00-0af7651916cd43dd8448eb211c80319c-%016x-01", i) }
	_, some, _ := tr.Start(ctx, "oldest.dropped")
	for i := range 5 {
		some.AddEvent(fmt.Sprintf("e%d", i))
	}
	for i := range 3 {
		some.AddLink(traceparent(i + 1))
	}
	if err := some.DropOldest(2, 1); err != nil {
		t.Fatal(err)
	}
	some.AddEvent("e5")
	some.End()
	_, all, _ := tr.Start(ctx, "all.dropped")
	all.AddEvent("only")
	all.AddLink(traceparent(9))
	if err := all.DropOldest(10, 10); err != nil {
		t.Fatal(err)
	}
	all.End()
	spans := arrived(t, rx, tr, 2)
	held := func(s otlpreceiver.Span) string {
		var names []string
		for _, e := range s.Events {
			names = append(names, e.Name)
		}
		for _, l := range s.Links {
			names = append(names, l.SpanID)
		}
		return fmt.Sprint(names, s.DroppedEvents, s.DroppedLinks)
	}
	if got, want := held(spans["oldest.dropped"]), "[e2 e3 e4 e5 0000000000000002 0000000000000003] 2 1"; got != want {
		t.Errorf("oldest.dropped: events, links, dropped counts %s, want %s", got, want)
	}
	if got, want := held(spans["all.dropped"]), "[] 1 1"; got != want {
		t.Errorf("all.dropped: events, links, dropped counts %s, want %s", got, want)
	}
	if err := (spanguard.Span{}).DropOldest(1, 1); err != nil {
		t.Errorf("the zero Span: %v", err)
	}
	_, open, _ := tr.Start(ctx, "open.at.shutdown")
	open.AddEvent("e")
	if ok, err := tr.Shutdown(10 * time.Second); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := open.DropOldest(1, 0); !errors.Is(err, spanguard.ErrShutDown) {
		t.Errorf("after Shutdown: %v, want ErrShutDown", err)
	}
}

// An event or a link with more attributes than one call takes (128)
// arrives with as many as its limit keeps, the rest counted dropped on it,
// as an OpenTelemetry SDK keeps them: it was refused whole
// (ErrLimitReached) and counted nowhere.
func TestAnEventOrLinkWithManyAttributesKeepsWhatItsLimitAllows(t *testing.T) {
	const n = 200
	many := make([]spanguard.Attribute, n)
	for i := range many {
		many[i] = spanguard.Int(fmt.Sprint("tool.arg.", i), i)
	}
	for _, limit := range []uint32{0, 1000} { // the default (128), and one over n
		rx := otlpreceiver.Start(t)
		tr := tracerTo(t, rx, spanguard.Config{EventAttributeCountLimit: limit, LinkAttributeCountLimit: limit})
		_, span, _ := tr.Start(context.Background(), "many.attributes")
		if err := span.AddEvent("tool.call", many...); err != nil {
			t.Fatalf("limit %d: add_event: %v", limit, err)
		}
		if err := span.AddLink("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", many...); err != nil {
			t.Fatalf("limit %d: add_link: %v", limit, err)
		}
		span.End()
		got := arrived(t, rx, tr, 1)["many.attributes"]
		kept := n
		if limit < n {
			kept = 128
		}
		if len(got.Events) != 1 || len(got.Links) != 1 {
			t.Fatalf("limit %d: %d events and %d links arrived, want 1 of each (dropped: %d, %d)",
				limit, len(got.Events), len(got.Links), got.DroppedEvents, got.DroppedLinks)
		}
		e, l := got.Events[0], got.Links[0]
		if len(e.Attributes) != kept || e.Dropped != n-kept || len(l.Attributes) != kept || l.Dropped != n-kept {
			t.Fatalf("limit %d: the event has %d attributes (%d dropped), the link %d (%d dropped); want %d (%d)",
				limit, len(e.Attributes), e.Dropped, len(l.Attributes), l.Dropped, kept, n-kept)
		}
		if e.Attributes["tool.arg.0"] != json.Number("0") || l.Attributes[fmt.Sprint("tool.arg.", kept-1)] != json.Number(fmt.Sprint(kept-1)) {
			t.Fatalf("limit %d: not the first %d: %v", limit, kept, e.Attributes)
		}
	}
}

// A prompt of 1.5 MB arrives whole at a backend that takes it: alone over
// MaxRequestBytes, its span goes in a request of its own. The local sink
// writes a span alone over SinkMaxLineBytes whole too, on a line of its own
// (it was cut to 1 MiB before sinkwhole57), up to half the spool's cap: with
// a 2 MiB spool (SpoolMaxMiB) it is cut to fit 1 MiB there, and counted.
func TestMaxRequestAndSinkLineBytesLetAnLLMSizedValueThroughWhole(t *testing.T) {
	prompt := strings.Repeat("Summarise this report. ", 1500000/23)
	for _, setting := range []string{"default", "raised", "small spool"} {
		cfg := spanguard.Config{}
		if setting == "raised" {
			cfg.MaxRequestBytes, cfg.SinkMaxLineBytes = 4<<20, 4<<20
		}
		rx := otlpreceiver.Start(t)
		tr := tracerTo(t, rx, cfg)
		sinkCfg := cfg
		sinkCfg.SinkDir, sinkCfg.SpoolDir = filepath.Join(t.TempDir(), "sink"), filepath.Join(t.TempDir(), "spool")
		if setting == "small spool" {
			sinkCfg.SpoolMaxMiB = 2
		}
		toSink, err := spanguard.NewTracer(sinkCfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, to := range []*spanguard.Tracer{tr, toSink} {
			_, span, _ := to.Start(context.Background(), "llm.call", spanguard.WithAttributes(spanguard.String("gen_ai.prompt", prompt)))
			span.End()
			if ok, err := to.Flush(20 * time.Second); !ok || err != nil {
				t.Fatalf("flush: %v %v", ok, err)
			}
		}
		sent := arrived(t, rx, tr, 1)["llm.call"].Attributes["gen_ai.prompt"].(string)
		stats, _ := tr.Stats()
		sinkStats, _ := toSink.Stats()
		toSink.Close()
		path, _ := filepath.Glob(filepath.Join(sinkCfg.SinkDir, "*.jsonl"))
		line, _ := os.ReadFile(path[0])
		written := strings.Count(string(line), "Summarise this report. ")
		whole := strings.Count(prompt, "Summarise this report. ")
		cut := setting == "small spool"
		if sent != prompt || stats.ValuesTruncated != 0 || (written == whole) == cut ||
			sinkStats.ValuesTruncated != map[bool]uint64{false: 0, true: 1}[cut] {
			t.Fatalf("%s: %d of %d bytes arrived, the sink wrote %d of %d sentences; %d and %d cut",
				setting, len(sent), len(prompt), written, whole, stats.ValuesTruncated, sinkStats.ValuesTruncated)
		}
	}
}

// The counters of what the library cut, replaced or dropped from a span
// reach a Go program: an empty key, invalid UTF-8, an event past its
// span's event limit.
func TestStatsCountWhatWasReplacedAndDropped(t *testing.T) {
	rx := otlpreceiver.Start(t)
	tr := tracerTo(t, rx, spanguard.Config{EventCountLimit: 1})
	_, span, _ := tr.Start(context.Background(), "counted")
	span.SetAttributes(spanguard.String("", "no key"), spanguard.String("reply", "caf\xe9"))
	span.AddEvent("first")
	span.AddEvent("second")
	span.End()
	arrived(t, rx, tr, 1)
	stats, err := tr.Stats()
	if err != nil || stats.AttributesDropped != 1 || stats.UTF8Replaced != 1 || stats.EventsDropped != 1 {
		t.Fatalf("%v: %d attributes dropped, %d UTF-8 replaced, %d events dropped; want 1 of each",
			err, stats.AttributesDropped, stats.UTF8Replaced, stats.EventsDropped)
	}
}

// complexAttributes are a tool call's arguments and a chat's messages as a
// Go agent holds them (what encoding/json unmarshals: map[string]any,
// []any, float64), and the other kinds spanguard.Any takes.
func complexAttributes(t *testing.T) []spanguard.Attribute {
	t.Helper()
	values := map[string]any{
		"gen_ai.tool.arguments": map[string]any{"city": "Paris", "days": 3, "metric": true, "score": 0.5,
			"note": nil, "tags": []string{"a", "b"}},
		"llm.input_messages": []any{map[string]any{"role": "user", "content": "hi"},
			map[string]any{"role": "assistant", "tool_calls": []any{}}},
		"mixed":      []any{int64(1), "two", false, 2.5, nil},
		"nested":     []any{[]int{1, 2}, [][]bool{{true}}},
		"with.bytes": map[string]any{"raw": []byte{0, 0xff}},
		"empty":      nil,
		"typed.map":  map[string]int{"b": 2, "a": 1},
	}
	out := make([]spanguard.Attribute, 0, len(values))
	for k, v := range values {
		a, err := spanguard.Any(k, v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

const complexWant = `{
	"gen_ai.tool.arguments": {"city": "Paris", "days": 3, "metric": true, "score": 0.5, "note": null, "tags": ["a", "b"]},
	"llm.input_messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": []}],
	"mixed": [1, "two", false, 2.5, null],
	"nested": [[1, 2], [[true]]],
	"with.bytes": {"raw": {"bytes": "00ff"}},
	"empty": null,
	"typed.map": {"a": 1, "b": 2}
}`

// Maps, mixed and nested slices, bytes and nil inside them arrive as
// kvlistValue and arrayValue (OpenTelemetry's AnyValue) wherever a value
// goes, over protobuf and JSON: the Go binding had no way to set them.
func TestComplexValuesArriveAsKvlistAndArrayValues(t *testing.T) {
	for _, jsonProtocol := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", jsonProtocol), func(t *testing.T) {
			rx := otlpreceiver.Start(t)
			tr := tracerTo(t, rx, spanguard.Config{ProtocolJSON: jsonProtocol})
			ctx := context.Background()
			_, atStart, _ := tr.Start(ctx, "at.start", spanguard.WithAttributes(complexAttributes(t)...))
			atStart.End()
			_, all, _ := tr.Start(ctx, "all.at.once")
			if err := all.SetAttributes(complexAttributes(t)...); err != nil {
				t.Fatal(err)
			}
			if err := all.AddEvent("event", complexAttributes(t)...); err != nil {
				t.Fatal(err)
			}
			_, linked, _ := tr.Start(ctx, "linked")
			tp, _ := linked.Traceparent()
			if err := all.AddLink(tp, complexAttributes(t)...); err != nil {
				t.Fatal(err)
			}
			linked.End()
			all.End()
			foreign, err := tr.StartForeign(&spanguard.ForeignSpan{Name: "foreign", TraceFlags: 1,
				TraceID: [16]byte{1, 2, 3}, SpanID: [8]byte{4, 5, 6}, Attributes: complexAttributes(t)})
			if err != nil {
				t.Fatal(err)
			}
			foreign.End()
			spans := arrived(t, rx, tr, 4)
			want := decoded(t, complexWant)
			for _, name := range []string{"at.start", "all.at.once", "foreign"} {
				sameAttributes(t, name, spans[name].Attributes, want)
			}
			sameAttributes(t, "event", spans["all.at.once"].Events[0].Attributes, want)
			sameAttributes(t, "link", spans["all.at.once"].Links[0].Attributes, want)
		})
	}
}

// A value that holds too many values, a pointer that points at itself or a
// type OpenTelemetry has no kind for is refused with ErrValueRejected,
// quickly, and no attribute is made.
func TestAnyRefusesHugeAndForeignValues(t *testing.T) {
	var wide any = 1
	for i := 0; i < 25; i++ {
		wide = []any{wide, wide}
	}
	var ptr any
	ptr = &ptr
	for name, v := range map[string]any{"wide": wide, "ptr": ptr,
		"func": func() {}, "chan": make(chan int), "struct": struct{ A int }{1}, "int.keys": map[int]any{1: 2},
		"uint.past.int64": uint64(math.MaxUint64), "in.map": map[string]any{"f": func() {}}} {
		if _, err := spanguard.Any(name, v); !errors.Is(err, spanguard.ErrValueRejected) {
			t.Errorf("%s: %v, want ErrValueRejected", name, err)
		}
	}
	var okDeep any = "leaf"
	for i := 0; i < 31; i++ {
		okDeep = map[string]any{"d": okDeep}
	}
	if _, err := spanguard.Any("deep.enough", okDeep); err != nil {
		t.Fatal(err)
	}
}

// nested is levels slices and maps in turn (the outer a slice) around inner.
func nested(levels int, inner any) any {
	v := inner
	for i := levels - 1; i >= 0; i-- {
		if i%2 == 0 {
			v = []any{v}
		} else {
			v = map[string]any{"k": v}
		}
	}
	return v
}

// plainOf is an OTLP/JSON AnyValue (as encoding/json decodes it) as Go
// values: []any, map[string]any, strings (int64s as their text), nil for
// the empty value.
func plainOf(t *testing.T, v map[string]any) any {
	t.Helper()
	if a, ok := v["arrayValue"].(map[string]any); ok {
		values, _ := a["values"].([]any)
		out := make([]any, len(values))
		for i, e := range values {
			out[i] = plainOf(t, e.(map[string]any))
		}
		return out
	}
	if m, ok := v["kvlistValue"].(map[string]any); ok {
		values, _ := m["values"].([]any)
		out := map[string]any{}
		for _, e := range values {
			kv := e.(map[string]any)
			out[kv["key"].(string)] = plainOf(t, kv["value"].(map[string]any))
		}
		return out
	}
	for _, kind := range []string{"stringValue", "intValue"} {
		if x, ok := v[kind]; ok {
			return x
		}
	}
	if len(v) != 0 {
		t.Fatalf("a value this test does not expect: %v", v)
	}
	return nil
}

// A slice or map nested deeper than the depth limit (OpenTelemetry's
// attribute_value_depth_limit, 64 by default: the attribute's value is
// level 1), or one that holds itself, arrives cut there: the empty value
// in its place, the rest kept, counted in ValuesTruncated (the library's
// rule, and the Python binding's). Any refused such a value whole past 32.
// Read from the OTLP/JSON the local sink writes: the receiver's protobuf
// decoder (upb) stops at 100 nested messages, under 64 levels.
func TestAnyNestedPastTheDepthLimitArrivesCutThereCounted(t *testing.T) {
	dir := t.TempDir()
	tr, err := spanguard.NewTracer(spanguard.Config{SinkDir: dir, SpoolDir: filepath.Join(t.TempDir(), "spool")})
	if err != nil {
		t.Fatal(err)
	}
	self := map[string]any{"name": "loop"}
	self["self"] = self
	ring := []any{1, nil}
	ring[1] = ring
	// Through a pointer, which is no level of its own.
	viaPointer := []any{1, nil}
	viaPointer[1] = &viaPointer
	values := map[string]any{"deep.70": nested(70, "leaf"), "at.limit": nested(64, "leaf"),
		"far.past": nested(1000, "leaf"), "self": self, "ring": ring, "via.pointer": viaPointer}
	var attrs []spanguard.Attribute
	for k, v := range values {
		a, err := spanguard.Any(k, v)
		if err != nil {
			t.Fatal(err)
		}
		attrs = append(attrs, a)
	}
	_, span, _ := tr.Start(context.Background(), "deep", spanguard.WithAttributes(attrs...))
	span.End()
	if ok, err := tr.Flush(20 * time.Second); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
	// Counted once the span is exported.
	st, err := tr.Stats()
	if err != nil || st.ValuesTruncated != 5 {
		t.Errorf("%v: %d values truncated, want 5 (all but at.limit)", err, st.ValuesTruncated)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	var wantSelf, wantRing any
	for i := 0; i < 64; i++ {
		wantSelf = map[string]any{"name": "loop", "self": wantSelf}
		wantRing = []any{"1", wantRing}
	}
	want := map[string]any{"deep.70": nested(64, nil), "at.limit": nested(64, "leaf"), "far.past": nested(64, nil),
		"self": wantSelf, "ring": wantRing, "via.pointer": wantRing}
	spans := readSpans(t, dir)
	if len(spans) != 1 {
		t.Fatalf("%d spans in the sink, want 1", len(spans))
	}
	got := map[string]any{}
	for _, kv := range spans[0].Attributes {
		got[kv.Key] = plainOf(t, kv.Value)
	}
	sameAttributes(t, "deep", got, want)
}

// Config.ValueDepthLimit is the library's value_depth_limit: at 3, a value
// five levels deep (four nested slices and maps, a string inside) arrives
// with the empty value in place of its level-4 map, counted once in
// ValuesTruncated; one whose containers stop at level 3 arrives whole.
// Without the field (the default, 64) both arrived whole.
func TestValueDepthLimitCutsAtTheLevelPastIt(t *testing.T) {
	dir := t.TempDir()
	tr, err := spanguard.NewTracer(spanguard.Config{SinkDir: dir, SpoolDir: filepath.Join(t.TempDir(), "spool"),
		ValueDepthLimit: 3})
	if err != nil {
		t.Fatal(err)
	}
	five, err := spanguard.Any("five.deep", nested(4, "leaf"))
	if err != nil {
		t.Fatal(err)
	}
	atLimit, err := spanguard.Any("at.limit", nested(3, "leaf"))
	if err != nil {
		t.Fatal(err)
	}
	_, span, _ := tr.Start(context.Background(), "deep", spanguard.WithAttributes(five, atLimit))
	span.End()
	if ok, err := tr.Flush(20 * time.Second); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
	st, err := tr.Stats()
	if err != nil || st.ValuesTruncated != 1 {
		t.Errorf("%v: %d values truncated, want 1 (five.deep)", err, st.ValuesTruncated)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	spans := readSpans(t, dir)
	if len(spans) != 1 {
		t.Fatalf("%d spans in the sink, want 1", len(spans))
	}
	got := map[string]any{}
	for _, kv := range spans[0].Attributes {
		got[kv.Key] = plainOf(t, kv.Value)
	}
	sameAttributes(t, "deep", got, map[string]any{"five.deep": nested(3, nil), "at.limit": nested(3, "leaf")})
}

// A ValueDepthLimit past 128 (the library's bound) is refused by
// NewTracer, not taken as some other depth.
func TestValueDepthLimitPast128IsRefused(t *testing.T) {
	_, err := spanguard.NewTracer(spanguard.Config{SinkDir: t.TempDir(), SpoolDir: t.TempDir(), ValueDepthLimit: 129})
	if err == nil {
		t.Fatal("a ValueDepthLimit of 129 was taken")
	}
}
