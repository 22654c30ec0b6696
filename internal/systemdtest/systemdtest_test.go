//go:build linux

package systemdtest

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

func TestStartRunsUnitsInOwnCgroup(t *testing.T) {
	m := Start(t)
	if _, err := os.Stat(m.PrivateSocket); err != nil {
		t.Fatalf("private socket: %v", err)
	}
	m.InstallUnit(t, "harness-sleep.service", "[Service]\nExecStart=/bin/sleep 1000\n")
	m.Systemctl(t, "start", "harness-sleep.service")
	if got := m.Show(t, "harness-sleep.service", "ActiveState"); got != "active" {
		t.Fatalf("ActiveState = %q, want active", got)
	}
	pid, _ := strconv.Atoi(m.Show(t, "harness-sleep.service", "MainPID"))
	if !alive(pid) {
		t.Fatalf("MainPID %d not alive", pid)
	}
	cg := m.Show(t, "harness-sleep.service", "ControlGroup")
	if !strings.Contains(cg, "gcl-systemdtest-") {
		t.Errorf("ControlGroup %q is not under the manager's own subtree", cg)
	}
}

func TestConcurrentManagers(t *testing.T) {
	for i := 0; i < 3; i++ {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			m := Start(t)
			m.InstallUnit(t, "same-name.service", "[Service]\nExecStart=/bin/sleep 1000\n")
			m.Systemctl(t, "start", "same-name.service")
			if got := m.Show(t, "same-name.service", "SubState"); got != "running" {
				t.Fatalf("SubState = %q", got)
			}
		})
	}
}

func TestRestartAndKill(t *testing.T) {
	m := Start(t)
	m.InstallUnit(t, "r.service", "[Service]\nExecStart=/bin/sleep 1000\n")
	m.Systemctl(t, "start", "r.service")
	pid, _ := strconv.Atoi(m.Show(t, "r.service", "MainPID"))
	old := m.PID()

	m.Reexec(t)
	if m.PID() != old {
		t.Fatalf("reexec changed the manager PID %d -> %d", old, m.PID())
	}
	if got, _ := strconv.Atoi(m.Show(t, "r.service", "MainPID")); got != pid {
		t.Fatalf("after reexec MainPID = %d, want %d", got, pid)
	}

	m.Restart(t)
	if m.PID() == old || m.PID() == 0 {
		t.Fatalf("restart: manager PID %d (old %d)", m.PID(), old)
	}
	waitFor(t, "unit process gone after restart", 5*time.Second, func() bool { return !alive(pid) })
	if got := m.Show(t, "r.service", "ActiveState"); got != "inactive" {
		t.Fatalf("after restart ActiveState = %q, want inactive", got)
	}

	m.Systemctl(t, "start", "r.service")
	pid, _ = strconv.Atoi(m.Show(t, "r.service", "MainPID"))
	m.Kill(t)
	waitFor(t, "unit process gone after kill", 5*time.Second, func() bool { return !alive(pid) })
	if got := m.Show(t, "r.service", "ActiveState"); got != "inactive" {
		t.Fatalf("after kill ActiveState = %q, want inactive", got)
	}
}
