//go:build linux

package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStartStopRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	unit := e.sleepUnit(t, "")

	if err := e.m.Start(ctx, unit); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st, err := e.m.Status(ctx, unit)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.ActiveState != "active" || st.SubState != "running" || st.LoadState != "loaded" || st.Name != unit {
		t.Fatalf("after Start: %+v", st)
	}
	// Type=simple: the start job is done once systemd has forked, so the
	// child may not have executed the command yet (its name is "(sleep)").
	waitFor(t, "the main process to run the command", waitLong, func() bool {
		return alive(st.MainPID) && cmdline(st.MainPID) == "/bin/sleep 1000"
	})
	// Starting an active unit is fine.
	if err := e.m.Start(ctx, unit); err != nil {
		t.Fatalf("second Start: %v", err)
	}

	if err := e.m.Restart(ctx, unit); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	st2, err := e.m.Status(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	if st2.ActiveState != "active" || st2.MainPID == st.MainPID || !alive(st2.MainPID) {
		t.Fatalf("after Restart: %+v (old pid %d)", st2, st.MainPID)
	}
	waitFor(t, "old main process gone", waitLong, func() bool { return !alive(st.MainPID) })

	if err := e.m.Stop(ctx, unit); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	st3, err := e.m.Status(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	if st3.ActiveState != "inactive" || st3.MainPID != 0 {
		t.Fatalf("after Stop: %+v", st3)
	}
	if alive(st2.MainPID) {
		t.Fatalf("process %d still alive after Stop", st2.MainPID)
	}
	// Stopping again, and stopping what does not exist, succeed.
	if err := e.m.Stop(ctx, unit); err != nil {
		t.Fatalf("Stop of an inactive unit: %v", err)
	}
	if err := e.m.Stop(ctx, "no-such-unit-at-all"); err != nil {
		t.Fatalf("Stop of an unknown unit: %v", err)
	}
}

func TestNamesWithoutSuffixAreServices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	unit := e.sleepUnit(t, "")
	short := strings.TrimSuffix(unit, ".service")
	if err := e.m.Start(ctx, short); err != nil {
		t.Fatalf("Start(%q): %v", short, err)
	}
	st, err := e.m.Status(ctx, short)
	if err != nil || st.ActiveState != "active" || st.Name != unit {
		t.Fatalf("Status(%q) = %+v, %v", short, st, err)
	}
	if err := e.m.Stop(ctx, short); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "a/b.service"} {
		if err := e.m.Start(ctx, bad); !errors.Is(err, ErrInvalidUnit) {
			t.Errorf("Start(%q) = %v, want ErrInvalidUnit", bad, err)
		}
	}
}

func TestStartFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)

	oneshot := unitName("exit3")
	e.um.InstallUnit(t, oneshot, "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'exit 3'\n")
	err := e.m.Start(ctx, oneshot)
	if !errors.Is(err, ErrJobFailed) {
		t.Fatalf("Start(oneshot exit 3) = %v, want ErrJobFailed", err)
	}
	var je *JobError
	if !errors.As(err, &je) {
		t.Fatalf("error %v is not a *JobError", err)
	}
	if je.Result != "failed" || je.Unit != oneshot || je.Op != "start" ||
		je.Status.ActiveState != "failed" || je.Status.Result != "exit-code" || je.Status.ExecMainStatus != 3 {
		t.Fatalf("JobError = %+v", je)
	}
	for _, want := range []string{oneshot, "failed", "exit-code"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	missingBinary := unitName("nobinary")
	e.um.InstallUnit(t, missingBinary, "[Service]\nType=exec\nExecStart=/nonexistent/binary\n")
	if err := e.m.Start(ctx, missingBinary); !errors.Is(err, ErrJobFailed) {
		t.Fatalf("Start(missing binary) = %v, want ErrJobFailed", err)
	}

	if err := e.m.Start(ctx, "no-such-unit.service"); !errors.Is(err, ErrUnitNotFound) {
		t.Fatalf("Start(unknown unit) = %v, want ErrUnitNotFound", err)
	}
	st, err := e.m.Status(ctx, "no-such-unit.service")
	if err != nil || st.LoadState != "not-found" || st.ActiveState != "inactive" {
		t.Fatalf("Status(unknown unit) = %+v, %v", st, err)
	}
}

func TestJobTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := e.dial(t, WithJobTimeout(200*time.Millisecond))
	ctx := ctxT(t)
	slow := unitName("slowstart")
	e.um.InstallUnit(t, slow, "[Service]\nExecStartPre=/bin/sleep 30\nExecStart=/bin/sleep 1000\n")
	err := m.Start(ctx, slow)
	if !errors.Is(err, ErrJobTimeout) {
		t.Fatalf("Start = %v, want ErrJobTimeout", err)
	}
	// The caller's own deadline is reported as such.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err = e.m.Restart(cctx, slow)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrJobTimeout) {
		t.Fatalf("Restart with a short context = %v, want context.DeadlineExceeded", err)
	}
	if err := e.m.Stop(ctx, slow); err != nil {
		t.Fatal(err)
	}
}

func TestWatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	unit := e.sleepUnit(t, "")

	wctx, cancel := context.WithCancel(ctx)
	ch, err := e.m.Watch(wctx, unit)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	first := nextStatus(t, ch, "initial state", func(UnitStatus) bool { return true })
	if first.ActiveState != "inactive" || first.Name != unit {
		t.Fatalf("initial state %+v", first)
	}
	if err := e.m.Start(ctx, unit); err != nil {
		t.Fatal(err)
	}
	st := nextStatus(t, ch, "active", state("active", "running"))
	if !alive(st.MainPID) {
		t.Fatalf("watched active state has MainPID %d, not alive", st.MainPID)
	}
	if err := e.m.Stop(ctx, unit); err != nil {
		t.Fatal(err)
	}
	st = nextStatus(t, ch, "inactive", state("inactive", "dead"))
	if st.MainPID != 0 {
		t.Fatalf("inactive with MainPID %d", st.MainPID)
	}

	// A crash is seen with its result.
	if err := e.m.Start(ctx, unit); err != nil {
		t.Fatal(err)
	}
	st = nextStatus(t, ch, "active again", state("active", "running"))
	if err := syscall.Kill(int(st.MainPID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st = nextStatus(t, ch, "failed", state("failed", "failed"))
	if st.Result != "signal" {
		t.Fatalf("failed with result %q, want signal", st.Result)
	}

	cancel()
	for range ch { // must be closed
	}
}

func TestWatchSlowReaderKeepsOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	unit := e.sleepUnit(t, "")
	ch, err := e.m.Watch(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	// Do not read while cycling: changes queue up in order.
	const cycles = 20
	for i := 0; i < cycles; i++ {
		if err := e.m.Start(ctx, unit); err != nil {
			t.Fatal(err)
		}
		if err := e.m.Stop(ctx, unit); err != nil {
			t.Fatal(err)
		}
	}
	actives, last := 0, ""
	for actives < cycles || last != "inactive" {
		st := nextStatus(t, ch, fmt.Sprintf("cycle %d", actives), func(UnitStatus) bool { return true })
		if st.ActiveState == "active" {
			if last == "active" {
				t.Fatalf("two active states in a row")
			}
			actives++
		}
		last = st.ActiveState
	}
}

func TestUnitFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	name := e.sleepUnit(t, "")
	u := e.m.Unit(name)

	killMain := func() {
		t.Helper()
		st, err := u.Status(ctx)
		if err != nil || !alive(st.MainPID) {
			t.Fatalf("Status before kill: %+v, %v", st, err)
		}
		if err := syscall.Kill(int(st.MainPID), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}

	// 1. The main process killed: one failure.
	if err := u.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	killMain()
	f := nextFailure(t, u)
	if f.Unit != name || f.ActiveState != "failed" || f.Result != "signal" || f.At.IsZero() {
		t.Fatalf("failure = %+v", f)
	}

	// 2. Our Stop is not a failure; neither are many quick start/stop
	// cycles. The next failure reported must be the one of step 3.
	if err := u.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for i := 0; i < 10; i++ {
		if err := u.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := u.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// 3. Stopped by someone else: reported as inactive.
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e.um.Systemctl(t, "stop", name)
	f = nextFailure(t, u)
	if f.ActiveState != "inactive" {
		t.Fatalf("failure after a foreign stop = %+v, want inactive", f)
	}

	// 4. Nothing else was reported: not our stops, not the quick cycles.
	if err := u.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-u.Failures():
		t.Fatalf("unexpected failure %+v", f)
	default:
	}
}

func TestUnitFailureOncePerOccurrence(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	// A unit that systemd restarts on its own: every crash passes through
	// "failed" before "auto-restart" and is one occurrence, reported once.
	name := unitName("crashy")
	e.um.InstallUnit(t, name, "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/sleep 1000\nRestart=on-failure\nRestartSec=20ms\n")
	u := e.m.Unit(name)
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	const crashes = 5
	for i := 0; i < crashes; i++ {
		st, err := u.Status(ctx)
		if err != nil || !alive(st.MainPID) {
			t.Fatalf("Status: %+v, %v", st, err)
		}
		old := st.MainPID
		if err := syscall.Kill(int(old), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if f := nextFailure(t, u); f.ActiveState != "failed" || f.Result != "signal" {
			t.Fatalf("crash %d: failure %+v", i, f)
		}
		waitFor(t, "restarted by systemd", waitLong, func() bool {
			st, err := u.Status(ctx)
			return err == nil && st.ActiveState == "active" && st.MainPID != old && alive(st.MainPID)
		})
	}
	// The next failure is the foreign stop: no duplicates of the crashes.
	e.um.Systemctl(t, "stop", name)
	if f := nextFailure(t, u); f.ActiveState != "inactive" {
		t.Fatalf("failure = %+v, want the foreign stop", f)
	}
	if err := u.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-u.Failures():
		t.Fatalf("unexpected failure %+v", f)
	default:
	}
}

func TestStartTransient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	dir := t.TempDir()
	unit := unitName("transient")

	err := e.m.StartTransient(ctx, unit, []string{"/bin/sleep", "1000"}, TransientOptions{
		Description:      "transient sleeper",
		Environment:      []string{"GCL_FOO=bar baz", "GCL_N=1"},
		WorkingDirectory: dir,
	})
	if err != nil {
		t.Fatalf("StartTransient: %v", err)
	}
	st, err := e.m.Status(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	if st.ActiveState != "active" || !alive(st.MainPID) || cmdline(st.MainPID) != "/bin/sleep 1000" {
		t.Fatalf("transient status %+v, cmdline %q", st, cmdline(st.MainPID))
	}
	environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", st.MainPID))
	for _, want := range []string{"GCL_FOO=bar baz", "GCL_N=1"} {
		if !strings.Contains("\x00"+string(environ)+"\x00", "\x00"+want+"\x00") {
			t.Errorf("environment lacks %q", want)
		}
	}
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", st.MainPID)); cwd != dir {
		t.Errorf("cwd = %q, want %q", cwd, dir)
	}
	e.um.Systemctl(t, "status", unit) // visible to systemctl too
	if d := e.um.Show(t, unit, "Description"); d != "transient sleeper" {
		t.Errorf("Description = %q", d)
	}

	// Same name while running: refused.
	if err := e.m.StartTransient(ctx, unit, []string{"/bin/sleep", "1"}, TransientOptions{}); !errors.Is(err, ErrUnitExists) {
		t.Fatalf("second StartTransient while active = %v, want ErrUnitExists", err)
	}
	if err := e.m.Stop(ctx, unit); err != nil {
		t.Fatal(err)
	}
	if alive(st.MainPID) {
		t.Fatal("transient process alive after Stop")
	}

	// A command that cannot run fails the start job (Type=exec).
	if err := e.m.StartTransient(ctx, unitName("transient-bad"), []string{"/nonexistent/cmd"}, TransientOptions{}); !errors.Is(err, ErrJobFailed) {
		t.Fatalf("StartTransient(missing command) = %v, want ErrJobFailed", err)
	}

	// A command that exits non-zero leaves the unit failed; starting the
	// name again clears the leftover.
	failing := unitName("transient-exit")
	ch, err := e.m.Watch(ctx, failing)
	if err != nil {
		t.Fatal(err)
	}
	gate := filepath.Join(dir, "exit-now")
	script := fmt.Sprintf("while [ ! -e %s ]; do sleep 0.01; done; exit 7", gate)
	if err := e.m.StartTransient(ctx, failing, []string{"/bin/sh", "-c", script}, TransientOptions{}); err != nil {
		t.Fatalf("StartTransient(exit 7): %v", err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st = nextStatus(t, ch, "failed", state("failed", ""))
	if st.Result != "exit-code" {
		t.Fatalf("failed transient: %+v", st)
	}
	if err := e.m.StartTransient(ctx, failing, []string{"/bin/sleep", "1000"}, TransientOptions{Restart: "on-failure", RestartSec: 100 * time.Millisecond}); err != nil {
		t.Fatalf("StartTransient over a failed leftover: %v", err)
	}
	if r := e.um.Show(t, failing, "Restart"); r != "on-failure" {
		t.Errorf("Restart = %q", r)
	}
	if r := e.um.Show(t, failing, "RestartUSec"); r != "100ms" {
		t.Errorf("RestartUSec = %q", r)
	}
	if err := e.m.Stop(ctx, failing); err != nil {
		t.Fatal(err)
	}
}

func TestBindToAgentNotInUnit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	unit := e.sleepUnit(t, "")
	// The test process runs in no unit of the test manager: nothing to do.
	if err := e.m.BindToAgent(ctx, unit); err != nil {
		t.Fatalf("BindToAgent: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.um.DropInDir, unit+".d")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("drop-in directory written although not in a unit: %v", err)
	}
	m := e.dial(t, WithAgentUnit(""))
	if err := m.BindToAgent(ctx, unit); err != nil {
		t.Fatalf("BindToAgent with no agent unit: %v", err)
	}
}

func TestBindToAgentWithAgentUnit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	agent := e.sleepUnit(t, "")
	backend := e.sleepUnit(t, "")
	m := e.dial(t, WithAgentUnit(agent))
	if err := m.BindToAgent(ctx, agent); !errors.Is(err, ErrInvalidUnit) {
		t.Fatalf("binding the agent to itself = %v, want ErrInvalidUnit", err)
	}
	for _, u := range []string{agent, backend} {
		if err := m.Start(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.BindToAgent(ctx, backend); err != nil {
		t.Fatalf("BindToAgent: %v", err)
	}
	dropIn := filepath.Join(e.um.DropInDir, backend+".d", DropInName)
	fi, err := os.Stat(dropIn)
	if err != nil {
		t.Fatalf("drop-in: %v", err)
	}
	for _, p := range []string{"BindsTo", "PartOf", "After"} {
		if got := e.um.Show(t, backend, p); !strings.Contains(got, agent) {
			t.Errorf("%s = %q, want %s", p, got, agent)
		}
	}
	// Idempotent: the drop-in is not rewritten.
	if err := m.BindToAgent(ctx, backend); err != nil {
		t.Fatalf("second BindToAgent: %v", err)
	}
	if fi2, err := os.Stat(dropIn); err != nil || !fi2.ModTime().Equal(fi.ModTime()) {
		t.Fatalf("drop-in rewritten: %v", err)
	}
	if st, _ := m.Status(ctx, backend); st.ActiveState != "active" {
		t.Fatalf("binding changed the backend: %+v", st)
	}

	// The agent stops: the backend stops with it.
	if err := m.Stop(ctx, agent); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "backend stopped with its agent", waitLong, func() bool {
		st, err := m.Status(ctx, backend)
		return err == nil && st.IsDown()
	})
}

func TestBindToAgentDetectsOwnUnit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	backend := e.sleepUnit(t, "")
	if err := e.m.Start(ctx, backend); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "result")
	agent := unitName("agent")
	err = e.m.StartTransient(ctx, agent, []string{exe, "-test.run=^$"}, TransientOptions{
		Environment: []string{
			helperEnv + "=1",
			helperSocketEnv + "=" + e.um.PrivateSocket,
			helperUnitEnv + "=" + backend,
			helperOutEnv + "=" + out,
		},
	})
	if err != nil {
		t.Fatalf("start agent helper: %v", err)
	}
	var res []byte
	waitFor(t, "agent helper's result", waitLong, func() bool {
		res, err = os.ReadFile(out)
		return err == nil
	})
	if string(res) != "ok" {
		t.Fatalf("agent helper: %s", res)
	}
	if got := e.um.Show(t, backend, "BindsTo"); got != agent {
		t.Fatalf("BindsTo = %q, want the helper's own unit %s", got, agent)
	}
	// The agent dies: the backend goes with it.
	st, err := e.m.Status(ctx, agent)
	if err != nil || !alive(st.MainPID) {
		t.Fatalf("agent status %+v, %v", st, err)
	}
	if err := syscall.Kill(int(st.MainPID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "backend stopped after its agent died", waitLong, func() bool {
		st, err := e.m.Status(ctx, backend)
		return err == nil && st.IsDown()
	})
}

func TestReconnectAfterReexec(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	unit := e.sleepUnit(t, "")
	backend := e.sleepUnit(t, "")
	ch, err := e.m.Watch(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	nextStatus(t, ch, "initial", state("inactive", ""))
	if err := e.m.Start(ctx, unit); err != nil {
		t.Fatal(err)
	}
	before := nextStatus(t, ch, "active", state("active", "running"))
	u := e.m.Unit(backend)
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}

	e.um.Reexec(t)

	// The watch re-reads the unit on the new connection and emits it.
	waitFor(t, "reconnect logged", waitLong, func() bool { return e.log.count("systemd: reconnected") >= 1 })
	again := nextStatus(t, ch, "state after reconnect", func(UnitStatus) bool { return true })
	if again.ActiveState != "active" || again.MainPID != before.MainPID {
		t.Fatalf("after reconnect %+v, want active with pid %d", again, before.MainPID)
	}
	// Calls work, and so do signals on the new connection.
	st, err := e.m.Status(ctx, unit)
	if err != nil || st.MainPID != before.MainPID {
		t.Fatalf("Status after reexec = %+v, %v", st, err)
	}
	if err := e.m.Stop(ctx, unit); err != nil {
		t.Fatalf("Stop after reexec: %v", err)
	}
	nextStatus(t, ch, "inactive after reconnect", state("inactive", "dead"))
	if err := e.m.Start(ctx, unit); err != nil {
		t.Fatalf("Start after reexec: %v", err)
	}
	nextStatus(t, ch, "active after reconnect", state("active", "running"))

	// The backend's watch survived too: killing it is still reported.
	bst, err := u.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(int(bst.MainPID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if f := nextFailure(t, u); f.Result != "signal" {
		t.Fatalf("failure after reconnect = %+v", f)
	}
	if err := u.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestReconnectAfterManagerRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	unit := e.sleepUnit(t, "")
	u := e.m.Unit(unit)
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ch, err := e.m.Watch(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	nextStatus(t, ch, "active", state("active", "running"))

	// The manager goes away (stopping its units) and a new one comes up on
	// the same socket path after a while: the Manager redials with backoff.
	e.um.Restart(t)

	// The backend went down without our Stop.
	if f := nextFailure(t, u); !(f.ActiveState == "inactive" || f.ActiveState == "failed") {
		t.Fatalf("failure = %+v", f)
	}
	nextStatus(t, ch, "inactive after restart", state("inactive", ""))
	st, err := e.m.Status(ctx, unit) // waits for the reconnect
	if err != nil || st.ActiveState != "inactive" {
		t.Fatalf("Status after restart = %+v, %v", st, err)
	}
	if err := u.Start(ctx); err != nil {
		t.Fatalf("Start after restart: %v", err)
	}
	nextStatus(t, ch, "active on the new manager", state("active", "running"))
	if err := u.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	nextStatus(t, ch, "inactive on the new manager", state("inactive", ""))
	select {
	case f := <-u.Failures():
		t.Fatalf("unexpected failure %+v", f)
	default:
	}
}

func TestInFlightCallsFailWithErrDisconnected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	slow := unitName("slowstart")
	e.um.InstallUnit(t, slow, "[Service]\nExecStartPre=/bin/sleep 30\nExecStart=/bin/sleep 1000\n")
	errc := make(chan error, 1)
	go func() { errc <- e.m.Start(ctx, slow) }()
	waitFor(t, "start job running", waitLong, func() bool {
		st, err := e.m.Status(ctx, slow)
		return err == nil && st.ActiveState == "activating"
	})
	e.um.Reexec(t)
	select {
	case err := <-errc:
		if !errors.Is(err, ErrDisconnected) {
			t.Fatalf("in-flight Start = %v, want ErrDisconnected", err)
		}
	case <-time.After(waitLong):
		t.Fatal("in-flight Start did not return after the connection dropped")
	}
	// Later calls work.
	if err := e.m.Stop(ctx, slow); err != nil {
		t.Fatalf("Stop after reconnect: %v", err)
	}
}

func TestCallsWaitForReconnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	unit := e.sleepUnit(t, "")

	// The manager dies and a new one comes up on the same socket. A call
	// racing the loss may fail with ErrDisconnected; the Manager redials
	// and later calls succeed.
	e.um.Kill(t)
	if err := e.m.Start(ctx, unit); err != nil && !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Start right after the manager died: %v", err)
	}
	waitFor(t, "Start succeeds again", waitLong, func() bool { return e.m.Start(ctx, unit) == nil })
	if st, err := e.m.Status(ctx, unit); err != nil || st.ActiveState != "active" {
		t.Fatalf("Status = %+v, %v", st, err)
	}

	// No manager at all: a call waits for the reconnect as long as its
	// context allows, then fails with ErrDisconnected. (The first calls may
	// still go out on the dead connection and fail as in-flight calls,
	// with ErrDisconnected too.)
	e.um.Stop(t)
	waitFor(t, "a call to wait for the reconnect until its deadline", waitLong, func() bool {
		sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := e.m.Status(sctx, unit)
		if err != nil && !errors.Is(err, ErrDisconnected) {
			t.Fatalf("Status while disconnected = %v, want ErrDisconnected", err)
		}
		return errors.Is(err, context.DeadlineExceeded)
	})
	// A call that is waiting when the manager comes back succeeds.
	done := make(chan error, 1)
	go func() {
		_, err := e.m.Status(ctx, unit)
		done <- err
	}()
	e.um.Relaunch(t)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Status across the reconnect: %v", err)
		}
	case <-time.After(waitLong):
		t.Fatal("Status did not return after the manager came back")
	}
	if n := e.log.count("systemd: reconnected"); n != 2 {
		t.Errorf("logged %d reconnects, want 2", n)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	unit := e.sleepUnit(t, "")
	m := e.dial(t)
	ch, err := m.Watch(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	u := m.Unit(unit)
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for range ch { // closed by Close
	}
	if err := m.Start(ctx, unit); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
	if _, err := m.Watch(ctx, unit); !errors.Is(err, ErrClosed) {
		t.Fatalf("Watch after Close = %v, want ErrClosed", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Close leaves units alone.
	if st, err := e.m.Status(ctx, unit); err != nil || st.ActiveState != "active" {
		t.Fatalf("unit after Close: %+v, %v", st, err)
	}
}

func TestDialErrors(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	_, err := Dial(ctx, WithUserManager(filepath.Join(t.TempDir(), "nothing", "private")))
	if err == nil || !strings.Contains(err.Error(), "user manager at") {
		t.Fatalf("Dial(no socket) = %v", err)
	}
	if _, err := Dial(ctx, WithUserManager("")); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("Dial(empty socket) = %v, want ErrInvalidOption", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	const n = 6
	units := make([]string, n)
	for i := range units {
		units[i] = unitName("conc")
		if err := os.WriteFile(filepath.Join(e.um.UnitDir, units[i]), []byte("[Service]\nExecStart=/bin/sleep 1000\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.um.DaemonReload(t)
	errc := make(chan error, n)
	for _, unit := range units {
		go func() {
			errc <- func() error {
				ch, err := e.m.Watch(ctx, unit)
				if err != nil {
					return err
				}
				for i := 0; i < 5; i++ {
					if err := e.m.Start(ctx, unit); err != nil {
						return err
					}
					if _, err := e.m.Status(ctx, unit); err != nil {
						return err
					}
					if err := e.m.Stop(ctx, unit); err != nil {
						return err
					}
				}
				for st := range ch {
					if st.ActiveState == "inactive" && st.SubState == "dead" {
						return nil
					}
				}
				return errors.New("watch closed")
			}()
		}()
	}
	for range units {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

func BenchmarkStartStop(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	unit := e.sleepUnit(b, "")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := e.m.Start(ctx, unit); err != nil {
			b.Fatal(err)
		}
		if err := e.m.Stop(ctx, unit); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStatus(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	unit := e.sleepUnit(b, "")
	if err := e.m.Start(ctx, unit); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.m.Status(ctx, unit); err != nil {
			b.Fatal(err)
		}
	}
}
