package spanguard_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	spanguard "github.com/spanguard/spanguard/bindings/go"
)

// The suite keeps out of the user's own spanguard state (make test-go
// gives its test processes XDG_STATE_HOME under build/). A tracer a test
// makes without naming a spool or sink took the user's
// ~/.local/state/spanguard: its start sent the user's waiting crash dumps
// into the test's sink, and the dump of an agent killed by anything else
// on the machine arrived in a test as spans it never made (seen in the
// Python suite, which has the same rule).
func TestATracerThatNamesNoDirectoryKeepsOutOfTheUsersState(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip("no home directory:", err)
	}
	users := filepath.Join(home, ".local", "state") + string(filepath.Separator)
	tr, err := spanguard.NewTracer(spanguard.Config{ServiceName: "isolation", NoSignalWatchdog: true})
	if err != nil {
		t.Fatal(err)
	}
	sink, err := tr.SinkPath()
	tr.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(sink) || strings.HasPrefix(sink, users) {
		t.Fatalf("a test's default sink is the user's: %q", sink)
	}
}
