//go:build linux

package systemd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/internal/systemdtest"
)

// Environment of the agent helper: the test binary re-executed inside a
// transient service of the test's user manager (see TestBindToAgentDetectsOwnUnit).
const (
	helperEnv       = "GCL_SYSTEMD_TEST_AGENT"
	helperSocketEnv = "GCL_SYSTEMD_TEST_SOCKET"
	helperUnitEnv   = "GCL_SYSTEMD_TEST_BIND"
	helperOutEnv    = "GCL_SYSTEMD_TEST_OUT"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		runAgentHelper()
		return
	}
	if unit := os.Getenv(guardHelperEnv); unit != "" {
		os.Exit(guardHelperMain(unit))
	}
	os.Exit(m.Run())
}

// runAgentHelper plays the agent: it binds a unit to its own unit, reports
// the outcome in a file, and stays alive until killed.
func runAgentHelper() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := func() error {
		m, err := Dial(ctx, WithUserManager(os.Getenv(helperSocketEnv)))
		if err != nil {
			return err
		}
		defer m.Close()
		return m.BindToAgent(ctx, os.Getenv(helperUnitEnv))
	}()
	cancel()
	res := "ok"
	if err != nil {
		res = "error: " + err.Error()
	}
	out := os.Getenv(helperOutEnv)
	_ = os.WriteFile(out+".tmp", []byte(res), 0o644)
	_ = os.Rename(out+".tmp", out)
	for {
		time.Sleep(time.Hour)
	}
}

const (
	waitLong  = 15 * time.Second
	pollEvery = 5 * time.Millisecond
)

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(pollEvery)
	}
}

// logRecorder is a slog handler that keeps messages (and prints them when
// GCL_SYSTEMD_TEST_LOG=1). Safe after the test ends, unlike t.Log.
type logRecorder struct {
	mu   *sync.Mutex
	msgs *[]string
	next slog.Handler
}

func newLogRecorder() *logRecorder {
	var h slog.Handler = slog.DiscardHandler
	if os.Getenv("GCL_SYSTEMD_TEST_LOG") == "1" {
		h = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	}
	return &logRecorder{mu: new(sync.Mutex), msgs: new([]string), next: h}
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(ctx context.Context, rec slog.Record) error {
	r.mu.Lock()
	*r.msgs = append(*r.msgs, rec.Message)
	r.mu.Unlock()
	return r.next.Handle(ctx, rec)
}
func (r *logRecorder) WithAttrs(a []slog.Attr) slog.Handler {
	return &logRecorder{mu: r.mu, msgs: r.msgs, next: r.next.WithAttrs(a)}
}
func (r *logRecorder) WithGroup(n string) slog.Handler {
	return &logRecorder{mu: r.mu, msgs: r.msgs, next: r.next.WithGroup(n)}
}

func (r *logRecorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range *r.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// env is one test's user manager and a Manager connected to it.
type env struct {
	um  *systemdtest.UserManager
	m   *Manager
	log *logRecorder
}

func newEnv(t testing.TB, opts ...Option) *env {
	t.Helper()
	um := systemdtest.Start(t)
	e := &env{um: um, log: newLogRecorder()}
	e.m = e.dial(t, opts...)
	return e
}

// dial opens another Manager on the env's user manager, closed at cleanup.
func (e *env) dial(t testing.TB, opts ...Option) *Manager {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	opts = append([]Option{WithUserManager(e.um.PrivateSocket), WithLogger(slog.New(e.log))}, opts...)
	m, err := Dial(ctx, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

var unitSeq atomic.Int64

// unitName is a unit name unique within the test binary.
func unitName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d.service", prefix, os.Getpid(), unitSeq.Add(1))
}

// sleepUnit installs a service running sleep and returns its name.
func (e *env) sleepUnit(t testing.TB, extra string) string {
	t.Helper()
	name := unitName("sleep")
	e.um.InstallUnit(t, name, "[Unit]\nDescription=test sleeper\n[Service]\nExecStart=/bin/sleep 1000\n"+extra)
	return name
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func alive(pid uint32) bool {
	if pid == 0 {
		return false
	}
	if syscall.Kill(int(pid), 0) != nil {
		return false
	}
	// A zombie is not alive for our purposes.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func cmdline(pid uint32) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ")
}

// nextStatus receives from a watch until pred holds.
func nextStatus(t testing.TB, ch <-chan UnitStatus, what string, pred func(UnitStatus) bool) UnitStatus {
	t.Helper()
	timeout := time.NewTimer(waitLong)
	defer timeout.Stop()
	var seen []string
	for {
		select {
		case st, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed while waiting for %s (saw %v)", what, seen)
			}
			seen = append(seen, st.String())
			if pred(st) {
				return st
			}
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s (saw %v)", what, seen)
		}
	}
}

func state(active, sub string) func(UnitStatus) bool {
	return func(s UnitStatus) bool { return s.ActiveState == active && (sub == "" || s.SubState == sub) }
}

func nextFailure(t testing.TB, u *Unit) Failure {
	t.Helper()
	select {
	case f := <-u.Failures():
		return f
	case <-time.After(waitLong):
		t.Fatalf("no failure reported for %s within %v", u.Name(), waitLong)
	}
	return Failure{}
}
