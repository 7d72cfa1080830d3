// Package childtest runs the test binary again as a child program, for
// the tests that need a process of their own to stop (SIGTERM, a crash,
// an exit), and waits until the child says it is ready. The binding's and
// the bridge's tests did this start-and-wait in five places (and two more
// built the same command), each with its own copy of the command, the
// pipe, the scan and the kill on failure, and the copies drifted (one
// never killed its child, one never reaped it). One copy here keeps them
// failing the same way (the child killed and reaped, its first line said)
// and is reachable from both modules (otelbridge's go.mod replaces the
// binding with ../, so this internal package is under its path).
package childtest

import (
	"bufio"
	"os"
	"os/exec"
	"testing"
)

// Command is the test binary run again with no tests to run: the child's
// TestMain picks its part from env, added to the environment.
func Command(env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// Start runs Command(env...) with its stderr on ours and reads its first
// line. If ready accepts that line it returns the running command, the
// scanner of its stdout positioned after that line, and the line;
// otherwise (or if the child could not start) it kills and reaps the
// child and fails the test with its env and what it said.
func Start(t testing.TB, ready func(first string) bool, env ...string) (*exec.Cmd, *bufio.Scanner, string) {
	t.Helper()
	cmd := Command(env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	if !lines.Scan() || !ready(lines.Text()) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the child %q did not start: %q", env, lines.Text())
	}
	return cmd, lines, lines.Text()
}

// Ready accepts the first line "ready", the line of a child with nothing
// else to say before it is stopped.
func Ready(first string) bool { return first == "ready" }
