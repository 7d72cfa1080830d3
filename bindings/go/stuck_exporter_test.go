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

// threadWritingToStderr is the /proc/self/task entry of a thread of this
// process inside write(2) on file descriptor 2, or "" when none is.
func threadWritingToStderr() string {
	want := fmt.Sprintf("%d 0x2 ", syscall.SYS_WRITE)
	tasks, _ := filepath.Glob("/proc/self/task/*/syscall")
	for _, task := range tasks {
		if line, err := os.ReadFile(task); err == nil && strings.HasPrefix(string(line), want) {
			return filepath.Dir(task)
		}
	}
	return ""
}

// threadEnded says whether the thread at /proc/self/task entry task,
// named name when it was seen, has ended: its entry is gone, or names
// another thread (its number taken again).
func threadEnded(task, name string) bool {
	comm, err := os.ReadFile(filepath.Join(task, "comm"))
	return err != nil || strings.TrimSpace(string(comm)) != name
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
	exporter := ""
	for deadline := time.Now().Add(20 * time.Second); exporter == "" && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		exporter = threadWritingToStderr()
	}
	blocked := exporter != ""
	// Its name as the kernel keeps it (15 bytes: "spanguard-expor").
	var exporterName string
	if comm, err := os.ReadFile(filepath.Join(exporter, "comm")); blocked && err == nil {
		exporterName = strings.TrimSpace(string(comm))
	}

	type answer struct {
		status spanguard.FlushResult
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		status, err := tr.ShutdownStatus(500 * time.Millisecond)
		answered <- answer{status, err}
	}()
	// A bound on a hang, not a speed.
	var got answer
	select {
	case got = <-answered:
	case <-time.After(30 * time.Second):
		release()
		t.Fatal("Shutdown did not return with the exporter stuck on stderr")
	}
	// What the spool holds while the exporter is still stuck: the
	// shutdown's crash dump of the batch it held (a spool file already).
	// The exporter's own spooling, once let go, is a file besides these.
	dumped, _ := filepath.Glob(filepath.Join(spool, "*.sgspool"))
	release()
	if !blocked {
		t.Fatal("the exporter never blocked on the full stderr pipe")
	}
	if got.err != nil || got.status != spanguard.TimedOut {
		t.Fatalf("Shutdown answered %v, %v; want TimedOut", got.status, got.err)
	}
	// It returned because its wait for the exporter ran out (the timeout
	// and the grace), once, leaving the exporter stuck: counted, not
	// timed. A join without a bound never returns (the hang guard above).
	if st, err := tr.Stats(); err != nil || st.ExporterWaitsRanOut != 1 {
		t.Fatalf("waits for the stuck exporter that ran out: %d (%v), want 1", st.ExporterWaitsRanOut, err)
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
	// Let go, the exporter left running goes on: it spools the span it
	// held and ends. Its end is waited for, and its own spool file looked
	// for. The test looked for any spool file: the shutdown's crash dump
	// of that batch is one, there before the exporter was let go, so the
	// test returned at once, and t.TempDir's cleanup raced the exporter
	// writing its file ("directory not empty" under CI's load). A thread
	// left running writes after Shutdown returned by the header's design
	// ("sends or spools them if it gets unstuck").
	if exporterName != "spanguard-expor" {
		t.Fatalf("the thread blocked on stderr was %q, not the exporter", exporterName)
	}
	for deadline := time.Now().Add(30 * time.Second); !threadEnded(exporter, exporterName); {
		if time.Now().After(deadline) {
			t.Fatalf("the exporter, let go, was still running 30 s after Close (%s)", exporter)
		}
		time.Sleep(10 * time.Millisecond)
	}
	spooled, _ := filepath.Glob(filepath.Join(spool, "*.sgspool"))
	if len(spooled) <= len(dumped) {
		t.Fatalf("the exporter, let go, ended without spooling the span it held: %v, %v dumped before", spooled, dumped)
	}
}
