package spanguard_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	spanguard "github.com/spanguard/spanguard/bindings/go"
)

// aThreadWritesToStderr says whether a thread of this process is inside
// write(2) on file descriptor 2.
func aThreadWritesToStderr() bool {
	want := fmt.Sprintf("%d 0x2 ", syscall.SYS_WRITE)
	tasks, _ := filepath.Glob("/proc/self/task/*/syscall")
	for _, task := range tasks {
		if line, err := os.ReadFile(task); err == nil && strings.HasPrefix(string(line), want) {
			return true
		}
	}
	return false
}

// Shutdown returns by about its timeout even when the exporter thread is
// stuck where no timeout reaches: here in the write of a warning to a
// stderr pipe nobody reads (a supervisor that reads its workers' stderr
// slowly, or no more once it is shutting down itself). Shutdown joined
// that thread without a bound, so a program's SIGTERM path (and Close)
// hung until SIGKILL. Now it answers TimedOut within the timeout plus the
// library's 1.5 s grace, and Close returns too; the exporter, let go,
// goes on and spools the span it held.
func TestShutdownReturnsWithTheExporterStuckOnStderr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().String() // nothing listens there once closed
	ln.Close()

	// stderr: a pipe nobody reads, filled to the brim.
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	readEnd, writeEnd := fds[0], fds[1]
	filler := make([]byte, 65536)
	syscall.SetNonblock(writeEnd, true)
	for {
		if _, err := syscall.Write(writeEnd, filler); err != nil {
			if _, err := syscall.Write(writeEnd, filler[:1]); err != nil {
				break
			}
		}
	}
	syscall.SetNonblock(writeEnd, false)
	saved, err := syscall.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Dup3(writeEnd, 2, 0); err != nil {
		t.Fatal(err)
	}
	syscall.Close(writeEnd)
	released := false
	release := func() {
		if released {
			return
		}
		released = true
		syscall.Dup3(saved, 2, 0)
		syscall.Close(saved)
		// Read what the exporter is writing, so it goes on (EOF once its
		// write, the last one to this pipe, is done).
		go func() {
			buf := make([]byte, 65536)
			for {
				if n, err := syscall.Read(readEnd, buf); n <= 0 || err != nil {
					syscall.Close(readEnd)
					return
				}
			}
		}()
	}
	defer release()

	spool := filepath.Join(t.TempDir(), "spool")
	tr, err := spanguard.NewTracer(spanguard.Config{
		ServiceName:    "go-stuck-exporter",
		Endpoint:       "http://" + closedPort + "/v1/traces",
		SpoolDir:       spool,
		ScheduleDelay:  10 * time.Millisecond,
		RequestTimeout: 200 * time.Millisecond,
		ExportTimeout:  100 * time.Millisecond,
	})
	if err != nil {
		release()
		t.Fatal(err)
	}
	_, span, err := tr.Start(context.Background(), "stuck")
	if err != nil {
		release()
		t.Fatal(err)
	}
	span.End()
	// The exporter fails to send it and says so: blocked on the pipe.
	for deadline := time.Now().Add(20 * time.Second); !aThreadWritesToStderr() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	blocked := aThreadWritesToStderr()

	type answer struct {
		status spanguard.FlushResult
		err    error
		took   time.Duration
	}
	answered := make(chan answer, 1)
	go func() {
		start := time.Now()
		status, err := tr.ShutdownStatus(500 * time.Millisecond)
		answered <- answer{status, err, time.Since(start)}
	}()
	// A bound on a hang, not a speed.
	var got answer
	select {
	case got = <-answered:
	case <-time.After(30 * time.Second):
		release()
		t.Fatal("Shutdown did not return with the exporter stuck on stderr")
	}
	release()
	if !blocked {
		t.Fatal("the exporter never blocked on the full stderr pipe")
	}
	if got.err != nil || got.status != spanguard.TimedOut {
		t.Fatalf("Shutdown answered %v, %v; want TimedOut", got.status, got.err)
	}
	if got.took > 10*time.Second {
		t.Fatalf("Shutdown took %v with a 500 ms timeout", got.took)
	}
	closed := make(chan struct{})
	go func() {
		tr.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return after the timed-out Shutdown")
	}
	// Let go, the exporter left running goes on: the span is spooled.
	var spooled []string
	for deadline := time.Now().Add(20 * time.Second); len(spooled) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		spooled, _ = filepath.Glob(filepath.Join(spool, "*.sgspool"))
	}
	if len(spooled) == 0 {
		t.Fatal("the exporter, let go, did not spool the span it held")
	}
}
