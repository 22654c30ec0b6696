//go:build linux

package exec

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Environment switches for TestMain's helper mode: the test binary re-execs
// itself as a small agent that supervises `sleep 1000` (see TestPdeathsig).
const (
	helperEnv       = "GCL_EXEC_TEST_HELPER"
	helperLogDirEnv = "GCL_EXEC_TEST_LOGDIR"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		runHelper()
		return
	}
	os.Exit(m.Run())
}

func runHelper() {
	s, err := New(Config{
		Name:    "helper",
		Command: "sleep",
		Args:    []string{"1000"},
		LogDir:  os.Getenv(helperLogDirEnv),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := s.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(s.Status().PID)
	// Keep the Go runtime busy retiring and creating threads while we wait
	// to be killed: a child forked from an unlocked thread could catch a
	// spurious Pdeathsig from that.
	for {
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(done)
			// Returning while locked terminates this thread.
		}()
		<-done
		time.Sleep(10 * time.Millisecond)
	}
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// newSup creates a supervisor with test defaults (LogDir a temp dir, logs
// discarded) and stops it at the end of the test.
func newSup(t testing.TB, cfg Config) *Supervisor {
	t.Helper()
	if cfg.LogDir == "" {
		cfg.LogDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = discard
	}
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("cleanup Stop: %v", err)
		}
		select {
		case <-s.Done():
		default:
			t.Errorf("Done not closed after Stop")
		}
	})
	return s
}

// shell returns a Config running script with /bin/sh -c.
func shell(script string) Config {
	return Config{Command: "/bin/sh", Args: []string{"-c", script}}
}

func start(t testing.TB, s *Supervisor) {
	t.Helper()
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

func stop(t testing.TB, s *Supervisor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitDone(t testing.TB, s *Supervisor, timeout time.Duration) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(timeout):
		t.Fatalf("supervisor not done after %s; status %+v", timeout, s.Status())
	}
}

// waitLine waits until the stream's log holds a line equal to line.
func waitLine(t testing.TB, dir, stream, line string, timeout time.Duration) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s line %q", stream, line), timeout, func() bool {
		lines, _ := Tail(dir, stream, 1000)
		for _, l := range lines {
			if l == line {
				return true
			}
		}
		return false
	})
}

// alive reports whether pid is a live process. A zombie counts as dead:
// orphans are reparented to whatever pid 1 is, which may never reap them.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return true
	}
	return s[i+2] != 'Z'
}

// syncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
