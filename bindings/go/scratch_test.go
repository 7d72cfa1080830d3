//go:build spanguard_static

package spanguard_test

import (
	"debug/elf"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/spanguard/spanguard/bindings/go/internal/otlpreceiver"
)

// goStaticPrefix is make go-static's prefix (libspanguard.a with libcurl,
// OpenSSL and zlib inside it), which make test-go names in
// SPANGUARD_GO_STATIC_PREFIX; the test is skipped without it: building it
// compiles OpenSSL, which a clean clone's make test does not wait for.
func goStaticPrefix(t *testing.T) string {
	t.Helper()
	prefix := os.Getenv("SPANGUARD_GO_STATIC_PREFIX")
	if prefix == "" {
		t.Skip("SPANGUARD_GO_STATIC_PREFIX is not set (make test-go sets it to make go-static's prefix)")
	}
	if _, err := os.Stat(filepath.Join(prefix, "lib", "libspanguard.a")); err != nil {
		t.Skipf("no self-contained libspanguard.a in %s: `make go-static` builds it (it compiles OpenSSL, minutes)", prefix)
	}
	if out, err := exec.Command("cc", "-print-file-name=libc.a").Output(); err != nil ||
		!filepath.IsAbs(strings.TrimSpace(string(out))) {
		t.Skip("no static glibc (libc.a, Debian's libc6-dev) for -extldflags=-static")
	}
	return prefix
}

// buildAgent builds examples/agent with -tags spanguard_static against
// prefix, linked with ldflags, and returns the binary's DT_NEEDED libraries
// and its program interpreter ("" for a static executable).
func buildAgent(t *testing.T, prefix, out, ldflags string) (needed []string, interp string) {
	t.Helper()
	build := exec.Command("go", "build", "-tags", "spanguard_static", "-ldflags", ldflags, "-o", out, "./examples/agent")
	// CGO_LDFLAGS names the prefix: Go's build cache keys a cgo package on
	// it and not on pkg-config's answer (static_test.go says more).
	build.Env = append(os.Environ(), "PKG_CONFIG_PATH="+filepath.Join(prefix, "lib", "pkgconfig"),
		"CGO_LDFLAGS=-L"+filepath.Join(prefix, "lib"))
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags spanguard_static -ldflags %q: %v\n%s", ldflags, err, b)
	}
	bin, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	needed, _ = bin.DynString(elf.DT_NEEDED)
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			p.ReadAt(b, 0)
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	return needed, interp
}

// scratchRoot makes a root directory holding the agent binary and files
// (path inside the root: contents), and a writable /spool.
func scratchRoot(t *testing.T, agent string, files map[string][]byte) string {
	t.Helper()
	root := t.TempDir()
	data, err := os.ReadFile(agent)
	if err != nil {
		t.Fatal(err)
	}
	files["agent"] = data
	for path, data := range files {
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "spool"), 0o777); err != nil {
		t.Fatal(err)
	}
	return root
}

// runChrooted runs /agent in root as its whole file system (chroot; in a
// user namespace when not root), with only env.
func runChrooted(t *testing.T, root string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("/agent")
	cmd.Dir, cmd.Env = "/", env
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	if os.Geteuid() != 0 {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	out, err := cmd.CombinedOutput()
	if err != nil && (os.IsPermission(err) || strings.Contains(err.Error(), "operation not permitted")) {
		t.Skipf("cannot chroot here (%v): no root and no user namespace", err)
	}
	return string(out), err
}

// The sample agent's 12 spans arrived at rx, each once by name.
func assertAgentSpans(t *testing.T, how string, rx *otlpreceiver.Receiver) {
	t.Helper()
	counts := map[string]int{}
	for _, s := range rx.WaitFor(t, 12) {
		counts[s.Name]++
	}
	want := map[string]int{"agent.session": 1, "agent.step": 3, "llm.chat": 3, "tool.call": 3, "http.get": 2}
	for name, n := range want {
		if counts[name] != n {
			t.Errorf("%s: %d %q spans at the receiver, want %d (all: %v)", how, counts[name], name, n, counts)
		}
	}
	if len(counts) != len(want) {
		t.Errorf("%s: spans at the receiver: %v, want %v", how, counts, want)
	}
}

// A Go agent built with -tags spanguard_static against make go-static's
// archive and linked with -extldflags=-static is a FROM scratch image's
// whole content: no interpreter, no shared library. Chrooted into a
// directory holding it alone, it sends its spans over loopback OTLP/HTTP
// (to "localhost", which libcurl answers itself); given /etc/hosts and a
// CA file (SSL_CERT_FILE) as an image would carry them, over HTTPS to a
// name that static glibc looks up in /etc/hosts. Linked without -static it
// runs in a root holding glibc's libraries alone: no libssl, libcrypto or
// libz (make install's archive stops there: libssl.so.3 not found).
func TestAVendoredStaticAgentRunsFromScratch(t *testing.T) {
	prefix := goStaticPrefix(t)
	dir := t.TempDir()

	agent := filepath.Join(dir, "agent")
	needed, interp := buildAgent(t, prefix, agent, "-linkmode=external -extldflags=-static")
	if len(needed) != 0 || interp != "" {
		t.Fatalf("linked with -static, the agent still needs %v (interpreter %q)", needed, interp)
	}
	if out, err := exec.Command("ldd", agent).CombinedOutput(); err == nil || !strings.Contains(string(out), "not a dynamic executable") {
		t.Errorf("ldd %s: %v\n%s", agent, err, out)
	}

	plain := otlpreceiver.Start(t)
	endpoint := strings.Replace(plain.URL, "127.0.0.1", "localhost", 1)
	root := scratchRoot(t, agent, map[string][]byte{})
	out, err := runChrooted(t, root, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="+endpoint, "SPANGUARD_SPOOL_DIR=/spool")
	if err != nil || !strings.Contains(out, "exported 12 spans") {
		t.Fatalf("the agent alone in its root, to %s: %v\n%s", endpoint, err, out)
	}
	assertAgentSpans(t, "http://localhost", plain)

	_, certFile, keyFile := tlsFiles(t, "collector")
	ca, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	secure := otlpreceiver.StartTLS(t, certFile, keyFile)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(strings.TrimSuffix(secure.URL, "/v1/traces"), "https://"))
	endpoint = "https://collector:" + port + "/v1/traces"
	root = scratchRoot(t, agent, map[string][]byte{
		"etc/hosts":               []byte("127.0.0.1 collector\n"),
		"etc/ca-certificates.pem": ca,
	})
	out, err = runChrooted(t, root, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="+endpoint, "SPANGUARD_SPOOL_DIR=/spool",
		"SSL_CERT_FILE=/etc/ca-certificates.pem")
	if err != nil || !strings.Contains(out, "exported 12 spans") {
		t.Fatalf("the agent in a root with /etc/hosts and a CA file, to %s: %v\n%s", endpoint, err, out)
	}
	assertAgentSpans(t, "https://collector", secure)

	// Linked without -static: glibc's libraries, as ldd finds them on this
	// host, are the only ones copied into the root.
	dynamic := filepath.Join(dir, "agent-glibc")
	needed, interp = buildAgent(t, prefix, dynamic, "")
	t.Logf("linked without -static, the agent needs: %s (interpreter %s)", strings.Join(needed, " "), interp)
	lddOut, err := exec.Command("ldd", dynamic).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", dynamic, err)
	}
	glibc := map[string][]byte{}
	for _, line := range strings.Split(string(lddOut), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[1] != "=>" || !(strings.HasPrefix(f[0], "libc.so") || strings.HasPrefix(f[0], "libm.so") ||
			strings.HasPrefix(f[0], "libgcc_s.so")) {
			continue
		}
		if glibc[strings.TrimPrefix(f[2], "/")], err = os.ReadFile(f[2]); err != nil {
			t.Fatal(err)
		}
	}
	if glibc[strings.TrimPrefix(interp, "/")], err = os.ReadFile(interp); err != nil {
		t.Fatal(err)
	}
	root = scratchRoot(t, dynamic, glibc)
	again := otlpreceiver.Start(t)
	out, err = runChrooted(t, root, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="+again.URL, "SPANGUARD_SPOOL_DIR=/spool")
	if err != nil || !strings.Contains(out, "exported 12 spans") {
		t.Fatalf("the agent in a root with glibc alone (it needs %v): %v\n%s", needed, err, out)
	}
	assertAgentSpans(t, "glibc alone", again)
}
