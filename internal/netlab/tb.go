//go:build linux

package netlab

import (
	"context"
	"os"
	"os/exec"
	"time"
)

// TB is the part of testing.TB the helpers use; *testing.T and *testing.B
// satisfy it. It keeps package testing out of programs that import netlab.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Logf(format string, args ...any)
}

// inCI reports whether CI=true: prerequisites missing there are failures,
// not skips.
func inCI() bool { return os.Getenv("CI") == "true" }

// RequireLab skips the test unless it runs as root with iproute2's `ip`
// available, or fails it when CI=true, where the lab must run.
func RequireLab(t TB) {
	t.Helper()
	var why string
	switch {
	case os.Geteuid() != 0:
		why = "netlab needs root (network namespaces, veths, a bridge)"
	case !HaveIP():
		why = "netlab needs iproute2's ip command (apt-get install iproute2)"
	default:
		return
	}
	if inCI() {
		t.Fatalf("%s (CI=true: not skipping)", why)
	}
	t.Skipf("%s", why)
}

// HaveKeepalived reports whether the keepalived binary is installed.
func HaveKeepalived() bool {
	_, err := exec.LookPath(keepalivedBinary())
	return err == nil
}

// RequireKeepalived skips the test unless keepalived is installed; in CI
// (CI=true, where .ci/run installs it) a missing keepalived fails it.
func RequireKeepalived(t TB) {
	t.Helper()
	RequireLab(t)
	if HaveKeepalived() {
		return
	}
	const why = "keepalived is not installed (apt-get install -y keepalived); the VRRP comparison needs it"
	if inCI() {
		t.Fatalf("%s (CI=true: not skipping)", why)
	}
	t.Skipf("%s", why)
}

// NewT builds a lab for a test: it checks the prerequisites (RequireLab),
// sweeps leftovers, fails the test if New fails, and closes the lab in
// t.Cleanup, failing the test if that leaves anything behind.
func NewT(t TB, cfg Config) *Lab {
	t.Helper()
	RequireLab(t)
	if err := Sweep(); err != nil {
		t.Logf("netlab: sweep: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Logf("netlab: close: %v", err)
		}
		if left := l.Leftovers(); len(left) > 0 {
			t.Fatalf("netlab: left behind after Close: %v", left)
		}
	})
	return l
}
