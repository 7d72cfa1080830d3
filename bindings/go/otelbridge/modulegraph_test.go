package otelbridge_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// What the bridge's go.mod imposes on a user's module. Minimal version
// selection gives a module the highest version any module in its graph
// requires, and the go line the highest of theirs: the bridge asked for
// go 1.26.0 and OpenTelemetry Go v1.47.0 (which need not: its code needs
// otel v1.45.0, the first with attribute.MAP, and that one needs Go
// 1.25), and for otelhttp v0.72.0, which only one of its tests used. A
// user on Go 1.25 and otel v1.45.0, with otelhttp pinned at v0.60.0, had
// all three raised by adding the bridge. The module here is that user's.
const (
	userGo       = "1.25.0"  // README: the Go the bridge needs
	userOtel     = "v1.46.0" // README: the oldest OpenTelemetry Go it asks for
	userOtelhttp = "v0.60.0" // older than any otelhttp the bridge's tests use
)

func TestAUserModuleKeepsItsGoOtelAndOtelhttpVersions(t *testing.T) {
	bridge, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// otelhttp at the user's pin: a local stand-in (replace of that one
	// version), so the test needs no download of an old otelhttp; version
	// selection reads its go.mod the same way.
	fake := filepath.Join(dir, "otelhttp")
	write(t, filepath.Join(fake, "go.mod"), "module go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp\n\ngo 1.22\n")
	write(t, filepath.Join(dir, "user", "go.mod"), `module example.com/user

go `+userGo+`

require (
	github.com/spanguard/spanguard/bindings/go v0.0.0
	github.com/spanguard/spanguard/bindings/go/otelbridge v0.0.0
	go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp `+userOtelhttp+`
	go.opentelemetry.io/otel `+userOtel+`
	go.opentelemetry.io/otel/sdk `+userOtel+`
	go.opentelemetry.io/otel/trace `+userOtel+`
)

replace (
	github.com/spanguard/spanguard/bindings/go => `+filepath.Dir(bridge)+`
	github.com/spanguard/spanguard/bindings/go/otelbridge => `+bridge+`
	go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp `+userOtelhttp+` => `+fake+`
)
`)
	cmd := exec.Command("go", "list", "-m", "all")
	cmd.Dir = filepath.Join(dir, "user")
	// -mod=mod: resolve as "go get" and "go mod tidy" would, updating the
	// user's go.mod (go line included) where the graph asks for more.
	// GOTOOLCHAIN=local: a newer go line must show, not start a download.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOSUMDB=off", "GOTOOLCHAIN=local", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -m all: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			got[f[0]] = f[1]
		}
	}
	for mod, want := range map[string]string{
		"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp": userOtelhttp,
		"go.opentelemetry.io/otel":                                      userOtel,
		"go.opentelemetry.io/otel/sdk":                                  userOtel,
		"go.opentelemetry.io/otel/trace":                                userOtel,
	} {
		if got[mod] != want {
			t.Errorf("adding the bridge moved the user's %s from %s to %s", mod, want, got[mod])
		}
	}
	mod, err := os.ReadFile(filepath.Join(dir, "user", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^go (\S+)`).FindSubmatch(mod); m == nil || string(m[1]) != userGo {
		t.Errorf("adding the bridge changed the user's go line from go %s:\n%s", userGo, mod)
	}
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
