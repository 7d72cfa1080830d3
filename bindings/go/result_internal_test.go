package spanguard

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The Go copy of spanguard_result_is_ok must agree with the library for
// every code, including ones it does not know.
func TestResultIsOKMatchesTheLibrary(t *testing.T) {
	for code := uint32(0); code < 256; code++ {
		if resultIsOKInGo(code) != resultIsOKInC(code) {
			t.Errorf("code %d: Go says %v, the library %v", code, resultIsOKInGo(code), resultIsOKInC(code))
		}
	}
}

// Stats has a field for every counter of spanguard_counters in
// include/spanguard.h, named after it, and Stats() copies each counter into
// the field of its name: a Go program could not read those it lacked
// (spans lost replaying the spool, values whose UTF-8 was replaced, what
// limits dropped, exporter panics), where Python and Node can. Counting
// the fields alone let a counter copied into its neighbour's field, or
// left out of the copy, pass.
func TestStatsHasEveryCounter(t *testing.T) {
	names := headerCounters(t)
	if len(names) < 31 || names[0] != "spans_begun" {
		t.Fatalf("header read: %v", names)
	}
	st, words := numberedStats()
	if words != len(names) {
		t.Fatalf("the library lays out %d counters, include/spanguard.h names %d", words, len(names))
	}
	v := reflect.ValueOf(st)
	if v.NumField() != len(names) {
		t.Errorf("Stats has %d fields, spanguard_counters %d counters", v.NumField(), len(names))
	}
	for i, name := range names {
		field := goName(name)
		f := v.FieldByName(field)
		if !f.IsValid() {
			t.Errorf("Stats has no field %s for the counter %s", field, name)
			continue
		}
		if got := f.Uint(); got != uint64(i+1) {
			t.Errorf("Stats.%s = counter #%d, want #%d (%s)", field, got, i+1, name)
		}
	}
}

// Every event of enum spanguard_event in include/spanguard.h has its name
// here, and news a program is glad of is logged at info: an event the
// table lacked reached Config.EventLogger as "EVENT_14", at warn.
func TestEventNamesEveryEventOfTheHeader(t *testing.T) {
	enum := headerSection(t, "enum spanguard_event", "typedef enum spanguard_event")
	found := regexp.MustCompile(`SPANGUARD_EVENT_(\w+) = (\d+)`).FindAllStringSubmatch(enum, -1)
	if len(found) < 14 {
		t.Fatalf("header read: %v", found)
	}
	for _, m := range found {
		code, _ := strconv.Atoi(m[2])
		if got := Event(code).String(); got != m[1] {
			t.Errorf("Event(%d) is %q, the header's %q", code, got, m[1])
		}
	}
	if len(eventNames) != len(found) {
		t.Errorf("eventNames has %d events, the header %d", len(eventNames), len(found))
	}
	if EventSpansRecovered.level() != slog.LevelInfo || EventValuesWaited.level() != slog.LevelWarn ||
		EventFileMiscounted.level() != slog.LevelWarn {
		t.Errorf("levels: recovered %v, waited %v, miscounted %v", EventSpansRecovered.level(),
			EventValuesWaited.level(), EventFileMiscounted.level())
	}
}

// headerSection is the text of include/spanguard.h from `from` to `to`.
func headerSection(t *testing.T, from, to string) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("..", "..", "include", "spanguard.h"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(text)
	start := strings.Index(s, from)
	end := strings.Index(s, to)
	if start < 0 || end < start {
		t.Fatalf("include/spanguard.h has no %q ... %q", from, to)
	}
	return s[start:end]
}

// headerCounters are the uint64 fields of spanguard_counters in the C
// header, in order: every one but its size and reserved word.
func headerCounters(t *testing.T) []string {
	t.Helper()
	counters := headerSection(t, "typedef struct spanguard_counters {", "} spanguard_counters;")
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s*uint64_t (\w+);`).FindAllStringSubmatch(counters, -1) {
		names = append(names, m[1])
	}
	return names
}

// goName is the Go field name of a counter: spans_begun is SpansBegun,
// utf8_replaced UTF8Replaced.
func goName(counter string) string {
	var b strings.Builder
	for _, word := range strings.Split(counter, "_") {
		if word == "utf8" {
			b.WriteString("UTF8")
			continue
		}
		b.WriteString(strings.ToUpper(word[:1]) + word[1:])
	}
	return b.String()
}

// newTracer sets every field of spanguard_config in include/spanguard.h
// (env_set_by_host is Python's alone, README): Config lacked the full
// policy, the sampler, the TLS files and the log level, unseen, while
// Python and Node took them.
func TestNewTracerSetsEveryConfigField(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "..", "include", "spanguard.h"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(text)
	start := strings.Index(s, "typedef struct spanguard_config {")
	end := strings.Index(s, "} spanguard_config;")
	if start < 0 || end < start {
		t.Fatal("include/spanguard.h has no struct spanguard_config")
	}
	source, err := os.ReadFile("spanguard.go")
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, m := range regexp.MustCompile(`(?m)^\s*(?:const char \*|uint32_t |double )(\w+);`).FindAllStringSubmatch(s[start:end], -1) {
		if f := m[1]; f != "struct_size" && f != "env_set_by_host" {
			fields = append(fields, f)
		}
	}
	if len(fields) < 38 {
		t.Fatalf("header read: %v", fields)
	}
	for _, f := range fields {
		if !strings.Contains(string(source), "c."+f+" ") && !strings.Contains(string(source), "&c."+f+",") {
			t.Errorf("newTracer does not set spanguard_config.%s", f)
		}
	}
}
