package spanguard_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// A build without cgo (CGO_ENABLED=0, as many container builds set, or a
// machine with no C compiler, where Go turns cgo off) must say that cgo is
// needed, not "build constraints exclude all Go files".
func TestBuildWithoutCgoSaysWhatItNeeds(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command to build with: %v", err)
	}
	cmd := exec.Command(goCmd, "build", "-o", os.DevNull, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("built without cgo:\n%s", out)
	}
	if !strings.Contains(string(out), "CGO_ENABLED_1_and_a_C_compiler") {
		t.Fatalf("the error does not say that cgo is needed:\n%s", out)
	}
}
