package spanguard_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// copyPrefix copies what a Go build reads from the install prefix that
// PKG_CONFIG_PATH names (its lib directory's libraries and .pc files, the
// header) to a new prefix under dir, and returns that prefix.
func copyPrefix(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("pkg-config", "--variable=prefix", "spanguard").Output()
	if err != nil {
		t.Fatalf("pkg-config finds no spanguard (PKG_CONFIG_PATH=%q): %v", os.Getenv("PKG_CONFIG_PATH"), err)
	}
	from := strings.TrimSpace(string(out))
	to := filepath.Join(dir, "prefix")
	for _, sub := range []string{"lib/pkgconfig", "include"} {
		if err := os.MkdirAll(filepath.Join(to, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(from, "lib", "libspanguard.*"))
	pcs, _ := filepath.Glob(filepath.Join(from, "lib", "pkgconfig", "*.pc"))
	for _, f := range append(append(files, pcs...), filepath.Join(from, "include", "spanguard.h")) {
		rel, _ := filepath.Rel(from, f)
		data, err := os.ReadFile(f) // the symlinks' targets: the same file under each name
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, rel), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// A Go agent built with -tags spanguard_static is one binary to ship: copied
// alone to a directory of its own, with the install prefix it was built
// against deleted and LD_LIBRARY_PATH empty, it starts and every span it
// records arrives in its sink. Built without the tag, the same binary stops
// at "error while loading shared libraries: libspanguard.so.0".
func TestStaticBuildRunsWithoutTheLibrary(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command to build with: %v", err)
	}
	prefix := copyPrefix(t, t.TempDir())
	ship := t.TempDir()
	agent := filepath.Join(ship, "agent")
	build := exec.Command(goCmd, "build", "-tags", "spanguard_static", "-o", agent, "./examples/agent")
	// CGO_LDFLAGS names the prefix because Go's build cache keys a cgo
	// package on it and not on pkg-config's answer: without it the package
	// built against an earlier run's (deleted) prefix would be reused.
	build.Env = append(os.Environ(), "PKG_CONFIG_PATH="+filepath.Join(prefix, "lib", "pkgconfig"),
		"CGO_LDFLAGS=-L"+filepath.Join(prefix, "lib"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags spanguard_static: %v\n%s", err, out)
	}
	if err := os.RemoveAll(prefix); err != nil {
		t.Fatal(err)
	}

	bin, err := elf.Open(agent)
	if err != nil {
		t.Fatal(err)
	}
	needed, _ := bin.DynString(elf.DT_NEEDED)
	bin.Close()
	t.Logf("the static agent needs at run time: %s", strings.Join(needed, " "))

	run := exec.Command(agent)
	run.Dir = ship
	run.Env = []string{"LD_LIBRARY_PATH=", "HOME=" + ship,
		"SPANGUARD_SINK_DIR=" + filepath.Join(ship, "sink"), "SPANGUARD_SPOOL_DIR=" + filepath.Join(ship, "spool")}
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("the agent copied alone did not run (needs %v): %v\n%s", needed, err, out)
	}
	if !strings.Contains(string(out), "exported 12 spans") {
		t.Fatalf("the agent says:\n%s", out)
	}
	counts := map[string]int{}
	for _, s := range readSpans(t, filepath.Join(ship, "sink")) {
		counts[s.Name]++
	}
	want := map[string]int{"agent.session": 1, "agent.step": 3, "llm.chat": 3, "tool.call": 3, "http.get": 2}
	for name, n := range want {
		if counts[name] != n {
			t.Errorf("%d %q spans in the sink, want %d (all: %v)", counts[name], name, n, counts)
		}
	}
	if len(counts) != len(want) {
		t.Errorf("spans in the sink: %v, want %v", counts, want)
	}
}
