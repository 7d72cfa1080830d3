package otelbridge_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README told Go users the bridge needed Go 1.22 while its go.mod (and
// the OpenTelemetry Go SDK it requires) asked for a newer one: with an
// older Go and GOTOOLCHAIN=local a user's build stopped at "requires go >=".
// The Go version the README states must be the one go.mod names.
func TestReadmeStatesTheGoVersionTheBridgeNeeds(t *testing.T) {
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatalf("no go directive in go.mod:\n%s", mod)
	}
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(readme)), " ")
	want := "otelbridge` needs Go " + string(m[1]) + " or later"
	if !strings.Contains(text, want) {
		t.Fatalf("README.md does not say %q (go.mod: go %s)", want, m[1])
	}
}
