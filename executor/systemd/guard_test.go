//go:build linux

package systemd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ozanturksever/go-cluster/internal/boottime"
)

// The "agent" of the process tests is a helper: this test binary run again
// with guardHelperEnv set, which TestMain turns into guardHelperMain. Like
// the backend of an app, it arms a guard for the unit, starts the unit,
// passes its cgroup, reports "ready <guard pid>" on stdout and then feeds
// the guard (or not) until its stdin closes. The test can then SIGSTOP or
// SIGKILL it like a real agent.
const (
	guardHelperEnv     = "GCL_SYSTEMD_TEST_GUARD" // value: the unit
	guardHelperHoldEnv = "GCL_SYSTEMD_TEST_HOLD"  // deadline distance (time.Duration)
	guardHelperFeedEnv = "GCL_SYSTEMD_TEST_FEED"  // feeding interval, "0" for none
	// guardTestBound is how late past its deadline a guard may act, and
	// how long the tests wait for what follows: generous, the machine may
	// be loaded (the tests run beside busy loops and under -race).
	guardTestBound = 3 * time.Second
)

func guardHelperMain(unit string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "guard helper:", err)
		return 1
	}
	hold, err := time.ParseDuration(os.Getenv(guardHelperHoldEnv))
	if err != nil {
		return fail(err)
	}
	feed, err := time.ParseDuration(os.Getenv(guardHelperFeedEnv))
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := Dial(ctx, WithUserManager(os.Getenv(helperSocketEnv)))
	if err != nil {
		return fail(err)
	}
	g, err := m.Guard(ctx, unit)
	if err != nil {
		return fail(err)
	}
	if err := g.HoldUntil(time.Now().Add(hold)); err != nil {
		return fail(err)
	}
	if err := m.Start(ctx, unit); err != nil {
		return fail(err)
	}
	if err := g.Refresh(ctx); err != nil {
		return fail(err)
	}
	fmt.Printf("ready %d\n", guardPID(g))
	if feed > 0 {
		go func() {
			for range time.Tick(feed) {
				if err := g.HoldUntil(time.Now().Add(hold)); err != nil {
					fmt.Fprintln(os.Stderr, "guard helper: HoldUntil:", err)
				}
			}
		}()
	}
	_, _ = io.Copy(io.Discard, os.Stdin) // until the test lets go
	return 0
}

// guardPID is the pid of u's guard process (0 when there is none).
func guardPID(u *UnitGuard) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.p == nil {
		return 0
	}
	return u.p.cmd.Process.Pid
}

// guardExit waits for u's guard to exit and returns its exit code.
func guardExit(t *testing.T, u *UnitGuard, within time.Duration) int {
	t.Helper()
	u.mu.Lock()
	p := u.p
	u.mu.Unlock()
	if p == nil {
		t.Fatal("no guard")
	}
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("guard still running after %v", within)
	}
	return p.cmd.ProcessState.ExitCode()
}

// procState is the state letter of pid from /proc (R, S, T, Z, ...), or 0
// when the process is gone.
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0
	}
	return s[i+2]
}

// guardedUnit installs a service of two processes (the main one and a
// child) that ignore SIGTERM: only a hard kill ends them in time, a
// graceful stop would wait out the stop timeout.
func (e *env) guardedUnit(t *testing.T, extra string) string {
	t.Helper()
	name := unitName("guarded")
	e.um.InstallUnit(t, name, "[Service]\nExecStart=/bin/sh -c 'trap \"\" TERM; /bin/sleep 1000 & exec /bin/sleep 1001'\nTimeoutStopSec=300\n"+extra)
	return name
}

// unitPIDs lists the processes in the unit's cgroup, and fails unless there
// are the two of guardedUnit.
func (e *env) unitPIDs(t *testing.T, unit string) []int {
	t.Helper()
	cg := e.um.Show(t, unit, "ControlGroup")
	dir, err := cgroupDir(cg)
	if err != nil {
		t.Fatalf("cgroup of %s: %v", unit, err)
	}
	var pids []int
	waitFor(t, "both processes of "+unit, waitLong, func() bool {
		pids = cgroupPIDs(dir)
		return len(pids) == 2
	})
	return pids
}

func anyAlive(pids []int) bool {
	for _, pid := range pids {
		if alive(uint32(pid)) {
			return true
		}
	}
	return false
}

// isDown reads the unit's state: inactive or failed.
func (e *env) isDown(t *testing.T, unit string) bool {
	t.Helper()
	st, err := e.m.Status(ctxT(t), unit)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st.IsDown()
}

// staysDown checks that the unit stays down, nothing of it running, for d.
// Waiting out the time is the point: it is the absence of a restart being
// tested.
func (e *env) staysDown(t *testing.T, unit string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		st, err := e.m.Status(ctxT(t), unit)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if !st.IsDown() {
			t.Fatalf("unit came back: %s", st)
		}
	}
	if n := e.um.Show(t, unit, "NRestarts"); n != "0" {
		t.Fatalf("systemd restarted the unit %s times", n)
	}
	st, _ := e.m.Status(ctxT(t), unit)
	t.Logf("unit stayed down: %s", st)
}

// staysUp checks that the unit stays active with its processes for d (or
// until the time left to deadline is below 20ms: the conversion to the
// guard's clock may only make the deadline earlier, by microseconds).
func (e *env) staysUp(t *testing.T, unit string, pids []int, until func() bool, what string) {
	t.Helper()
	for until() {
		st, err := e.m.Status(ctxT(t), unit)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if !st.IsActive() || !alive(uint32(pids[0])) || !alive(uint32(pids[1])) {
			t.Fatalf("unit stopped %s: %s", what, st)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

func newGuard(t *testing.T, e *env, unit string) *UnitGuard {
	t.Helper()
	g, err := e.m.Guard(ctxT(t), unit)
	if err != nil {
		t.Fatalf("Guard: %v", err)
	}
	t.Cleanup(func() { _ = g.Disarm() })
	return g
}

// TestGuardStopsAtDeadline: a guard that is not fed kills the unit and has
// systemd stop it at its deadline, not before.
func TestGuardStopsAtDeadline(t *testing.T) {
	e := newEnv(t)
	unit := e.guardedUnit(t, "Restart=always\nRestartSec=100ms\n")
	g := newGuard(t, e, unit)
	deadline := time.Now().Add(1500 * time.Millisecond)
	if err := g.HoldUntil(deadline); err != nil {
		t.Fatalf("HoldUntil: %v", err)
	}
	if err := e.m.Start(ctxT(t), unit); err != nil {
		t.Fatal(err)
	}
	if err := g.Refresh(ctxT(t)); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	pids := e.unitPIDs(t, unit)
	e.staysUp(t, unit, pids, func() bool { return time.Until(deadline) > 20*time.Millisecond }, "before the deadline")
	waitFor(t, "the unit's processes to die", time.Until(deadline)+guardTestBound, func() bool { return !anyAlive(pids) })
	t.Logf("processes dead %v after the deadline", time.Since(deadline).Round(time.Millisecond))
	waitFor(t, "the unit to be down", guardTestBound, func() bool { return e.isDown(t, unit) })
	if code := guardExit(t, g, guardTestBound); code != guardExitDeadline {
		t.Fatalf("guard exit code %d, want %d (deadline)", code, guardExitDeadline)
	}
	e.staysDown(t, unit, time.Second)

	// A guard that acted is replaced by the next HoldUntil.
	if err := g.HoldUntil(time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("HoldUntil after the guard acted: %v", err)
	}
	if pid := guardPID(g); pid == 0 || procState(pid) == 0 {
		t.Fatalf("no running guard after HoldUntil (pid %d)", pid)
	}
}

// TestGuardKeepsWhileFed: fed deadlines keep the unit long past any one of
// them; once feeding stops the last one counts.
func TestGuardKeepsWhileFed(t *testing.T) {
	e := newEnv(t)
	unit := e.guardedUnit(t, "")
	g := newGuard(t, e, unit)
	const hold = 600 * time.Millisecond
	if err := g.HoldUntil(time.Now().Add(hold)); err != nil {
		t.Fatalf("HoldUntil: %v", err)
	}
	if err := e.m.Start(ctxT(t), unit); err != nil {
		t.Fatal(err)
	}
	if err := g.Refresh(ctxT(t)); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	pids := e.unitPIDs(t, unit)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last time.Time
	for end := time.Now().Add(4 * hold); time.Now().Before(end); {
		<-tick.C
		last = time.Now().Add(hold)
		if err := g.HoldUntil(last); err != nil {
			t.Fatalf("HoldUntil: %v", err)
		}
		if st, err := e.m.Status(ctxT(t), unit); err != nil || !st.IsActive() || !alive(uint32(pids[0])) || !alive(uint32(pids[1])) {
			t.Fatalf("unit stopped while fed: %v %v", st, err)
		}
	}
	waitFor(t, "the unit's processes to die", time.Until(last)+guardTestBound, func() bool { return !anyAlive(pids) })
	waitFor(t, "the unit to be down", guardTestBound, func() bool { return e.isDown(t, unit) })
	if code := guardExit(t, g, guardTestBound); code != guardExitDeadline {
		t.Fatalf("guard exit code %d, want %d (deadline)", code, guardExitDeadline)
	}
}

// TestGuardDisarm: a disarmed guard leaves the unit alone and is gone when
// Disarm returns; a guard given up without a disarm (Close) stops the unit
// at once.
func TestGuardDisarm(t *testing.T) {
	e := newEnv(t)
	unit := e.guardedUnit(t, "")
	g := newGuard(t, e, unit)
	deadline := time.Now().Add(700 * time.Millisecond)
	if err := g.HoldUntil(deadline); err != nil {
		t.Fatalf("HoldUntil: %v", err)
	}
	if err := e.m.Start(ctxT(t), unit); err != nil {
		t.Fatal(err)
	}
	if err := g.Refresh(ctxT(t)); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	pids := e.unitPIDs(t, unit)
	pid := guardPID(g)
	if err := g.Disarm(); err != nil {
		t.Fatalf("Disarm: %v", err)
	}
	if guardPID(g) != 0 {
		t.Fatal("guard still attached after Disarm")
	}
	if st := procState(pid); st != 0 {
		t.Fatalf("guard %d still exists after Disarm (state %c)", pid, st)
	}
	end := deadline.Add(time.Second)
	e.staysUp(t, unit, pids, func() bool { return time.Now().Before(end) }, "after its guard was disarmed")

	// Armed again (a new guard), then given up: the unit goes at once.
	if err := g.HoldUntil(time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("HoldUntil after Disarm: %v", err)
	}
	if guardPID(g) == 0 || guardPID(g) == pid {
		t.Fatalf("no new guard after HoldUntil (pid %d, old %d)", guardPID(g), pid)
	}
	if err := g.Refresh(ctxT(t)); err != nil { // the same cgroup: nothing to send
		t.Fatalf("Refresh: %v", err)
	}
	g.mu.Lock()
	p := g.p
	g.mu.Unlock()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unit's processes to die after Close", guardTestBound, func() bool { return !anyAlive(pids) })
	waitFor(t, "the unit to be down", guardTestBound, func() bool { return e.isDown(t, unit) })
	select {
	case <-p.done:
	case <-time.After(guardTestBound):
		t.Fatal("guard did not exit after it acted")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != guardExitOrphaned {
		t.Fatalf("guard exit code %d, want %d (orphaned)", code, guardExitOrphaned)
	}
	if err := g.HoldUntil(time.Now().Add(time.Hour)); !errors.Is(err, ErrGuard) {
		t.Fatalf("HoldUntil after Close: %v, want ErrGuard", err)
	}
}

// TestGuardWithoutCgroup: a guard that never got the unit's cgroup (its
// agent froze during the start job) still stops the unit at its deadline,
// through systemd, and kills it rather than waiting out the stop timeout.
func TestGuardWithoutCgroup(t *testing.T) {
	e := newEnv(t)
	unit := e.guardedUnit(t, "")
	g := newGuard(t, e, unit) // before the start: the unit has no cgroup yet
	if g.cgroup != "" {
		t.Fatalf("guard of a stopped unit has cgroup %q", g.cgroup)
	}
	deadline := time.Now().Add(time.Second)
	if err := g.HoldUntil(deadline); err != nil {
		t.Fatalf("HoldUntil: %v", err)
	}
	if err := e.m.Start(ctxT(t), unit); err != nil {
		t.Fatal(err)
	}
	pids := e.unitPIDs(t, unit)
	waitFor(t, "the unit's processes to die", time.Until(deadline)+guardTestBound, func() bool { return !anyAlive(pids) })
	waitFor(t, "the unit to be down", guardTestBound, func() bool { return e.isDown(t, unit) })
	if code := guardExit(t, g, guardTestBound); code != guardExitDeadline {
		t.Fatalf("guard exit code %d, want %d (deadline)", code, guardExitDeadline)
	}
}

// TestGuardKillsWithoutSystemd: the kill at the deadline needs neither
// D-Bus nor systemd. With the manager stopped (SIGSTOP: it answers
// nothing), the unit's processes die at the deadline all the same; once
// the manager runs again, the guard's stop job goes through and Restart=
// does not bring the unit back.
func TestGuardKillsWithoutSystemd(t *testing.T) {
	e := newEnv(t)
	unit := e.guardedUnit(t, "Restart=always\nRestartSec=100ms\n")
	g := newGuard(t, e, unit)
	deadline := time.Now().Add(time.Second)
	if err := g.HoldUntil(deadline); err != nil {
		t.Fatalf("HoldUntil: %v", err)
	}
	if err := e.m.Start(ctxT(t), unit); err != nil {
		t.Fatal(err)
	}
	if err := g.Refresh(ctxT(t)); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	pids := e.unitPIDs(t, unit)
	mgr := e.um.PID()
	if err := syscall.Kill(mgr, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(mgr, syscall.SIGCONT)
		}
	}
	defer resume()
	waitFor(t, "the manager to stop", guardTestBound, func() bool { return procState(mgr) == 'T' })
	// Dead: the manager, their parent, cannot reap them while stopped, so
	// they stay zombies, which alive does not count.
	waitFor(t, "the unit's processes to die without systemd", time.Until(deadline)+guardTestBound, func() bool { return !anyAlive(pids) })
	if st := procState(mgr); st != 'T' {
		t.Fatalf("manager in state %c, want still stopped (T)", st)
	}
	t.Logf("processes dead %v after the deadline, systemd stopped", time.Since(deadline).Round(time.Millisecond))
	resume()
	waitFor(t, "the unit to be down", guardTestBound, func() bool { return e.isDown(t, unit) })
	if code := guardExit(t, g, guardTestBound); code != guardExitDeadline {
		t.Fatalf("guard exit code %d, want %d (deadline)", code, guardExitDeadline)
	}
	e.staysDown(t, unit, time.Second)
}

type guardHelper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	guard int
}

// startGuardHelper starts the agent stand-in and waits until its unit runs
// under its guard.
func startGuardHelper(t *testing.T, e *env, unit string, hold, feed time.Duration) *guardHelper {
	t.Helper()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), guardHelperEnv+"="+unit, helperSocketEnv+"="+e.um.PrivateSocket,
		guardHelperHoldEnv+"="+hold.String(), guardHelperFeedEnv+"="+feed.String())
	cmd.Stderr = os.Stderr
	// Its own group, so that stopping it stops nothing else; Pdeathsig so
	// that a dying test binary does not leave it behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &guardHelper{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // works on a stopped process too
		_ = cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
	}()
	select {
	case line := <-lines:
		if _, err := fmt.Sscanf(line, "ready %d", &h.guard); err != nil || h.guard <= 0 {
			t.Fatalf("helper did not get ready: %q", line)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper did not get ready within 30s")
	}
	return h
}

// TestGuardFrozenAgent is the reason for the guard: the agent that started
// the unit is frozen (SIGSTOP) and cannot stop it; its guard kills the
// unit's processes and has systemd stop it at the last deadline the agent
// fed it, while the agent is still stopped, and Restart=always does not
// bring it back.
func TestGuardFrozenAgent(t *testing.T) {
	e := newEnv(t)
	unit := e.guardedUnit(t, "Restart=always\nRestartSec=100ms\n")
	const hold, feed = 1500 * time.Millisecond, 100 * time.Millisecond
	h := startGuardHelper(t, e, unit, hold, feed)
	pids := e.unitPIDs(t, unit)
	// Fed, the unit outlives several deadlines.
	end := time.Now().Add(2 * hold)
	e.staysUp(t, unit, pids, func() bool { return time.Now().Before(end) }, "while the agent feeds its guard")

	if err := h.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now() // its last deadline is at most hold after this
	waitFor(t, "the agent to stop", guardTestBound, func() bool { return procState(h.cmd.Process.Pid) == 'T' })
	waitFor(t, "the frozen agent's unit to die", hold+guardTestBound, func() bool { return !anyAlive(pids) })
	took := time.Since(frozen)
	waitFor(t, "the unit to be down", guardTestBound, func() bool { return e.isDown(t, unit) })
	if st := procState(h.cmd.Process.Pid); st != 'T' {
		t.Fatalf("agent in state %c, want still stopped (T)", st)
	}
	// Not long before its deadline: the last feed was at most one feeding
	// interval (and some scheduling) before the freeze.
	if took < hold-feed-200*time.Millisecond {
		t.Fatalf("unit killed %v after the freeze, before the last deadline (%v after the last feed)", took, hold)
	}
	e.staysDown(t, unit, 2*time.Second)
	// The guard exited, and nobody reaped it: its parent is stopped.
	waitFor(t, "the guard to exit", guardTestBound, func() bool { return procState(h.guard) == 'Z' })
	t.Logf("unit killed %v after the agent was stopped (last deadline at most %v after)", took.Round(time.Millisecond), hold)
}

// TestGuardAgentKilled: when the agent dies the guard sees EOF on its pipe
// and stops the unit at once, long before the deadline.
func TestGuardAgentKilled(t *testing.T) {
	e := newEnv(t)
	unit := e.guardedUnit(t, "Restart=always\nRestartSec=100ms\n")
	h := startGuardHelper(t, e, unit, time.Hour, 0)
	pids := e.unitPIDs(t, unit)
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dead agent's unit to die", guardTestBound, func() bool { return !anyAlive(pids) })
	waitFor(t, "the unit to be down", guardTestBound, func() bool { return e.isDown(t, unit) })
	e.staysDown(t, unit, time.Second)
	waitFor(t, "the guard to exit", guardTestBound, func() bool {
		st := procState(h.guard)
		return st == 0 || st == 'Z'
	})
}

// TestGuardStartFails: a guard that cannot reach systemd is an error of the
// call that starts it.
func TestGuardStartFails(t *testing.T) {
	u := &UnitGuard{name: "x.service", log: slog.New(slog.DiscardHandler), args: []string{"x.service", "peer:unix:path=/nonexistent/private"}}
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, err := u.start(context.Background()); !errors.Is(err, ErrGuard) {
		t.Fatalf("start without systemd: %v, want ErrGuard", err)
	}
}

// TestGuardWatch drives the guard's loop directly through a pipe.
func TestGuardWatch(t *testing.T) {
	msg := func(kind byte, v int64) []byte {
		m := make([]byte, guardMsgLen)
		m[0] = kind
		binary.LittleEndian.PutUint64(m[1:], uint64(v))
		return m
	}
	cg := func(path string) []byte { return append(msg('C', int64(len(path))), path...) }
	future := func() int64 { return boottime.Now() + int64(time.Hour) }
	cases := []struct {
		name   string
		write  [][]byte
		close  bool
		want   guardOutcome
		cgroup string
	}{
		{"past deadline", [][]byte{msg('D', boottime.Now()-1)}, false, outcomeDeadline, ""},
		{"near deadline", [][]byte{cg("/a.service"), msg('D', boottime.Now()+int64(50*time.Millisecond))}, false, outcomeDeadline, "/a.service"},
		{"later deadline replaces earlier", [][]byte{msg('D', boottime.Now()-1), msg('D', future())}, true, outcomeOrphaned, ""},
		{"EOF without disarm", [][]byte{msg('D', future()), cg("/x/a.service")}, true, outcomeOrphaned, "/x/a.service"},
		{"EOF before any deadline", nil, true, outcomeOrphaned, ""},
		{"disarm then EOF", [][]byte{msg('D', future()), msg('X', 0)}, true, outcomeDisarmed, ""},
		{"disarm cancels a past deadline", [][]byte{append(msg('D', boottime.Now()-1), msg('X', 0)...)}, true, outcomeDisarmed, ""},
		{"deadline after disarm re-arms", [][]byte{msg('X', 0), msg('D', future())}, true, outcomeOrphaned, ""},
		{"torn message then EOF", [][]byte{msg('X', 0), msg('D', future())[:4]}, true, outcomeDisarmed, ""},
		{"cgroup in pieces", [][]byte{cg("/a.service"), cg("/b/c.service")[:12], cg("/b/c.service")[12:], msg('D', future())}, true, outcomeOrphaned, "/b/c.service"},
		{"torn cgroup then EOF", [][]byte{cg("/a.service"), cg("/b/c.service")[:12]}, true, outcomeOrphaned, "/a.service"},
		{"cgroup too long", [][]byte{msg('C', guardCgroupMax+1)}, false, outcomeOrphaned, ""},
		{"garbage", [][]byte{msg('?', 0)}, false, outcomeOrphaned, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			defer unix.Close(p[0])
			tfd, err := unix.TimerfdCreate(unix.CLOCK_BOOTTIME, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(tfd)
			type result struct {
				o  guardOutcome
				cg string
			}
			got := make(chan result, 1)
			go func() {
				o, cg := guardWatch(p[0], tfd)
				got <- result{o, cg}
			}()
			for _, m := range c.write {
				if _, err := unix.Write(p[1], m); err != nil {
					t.Fatal(err)
				}
			}
			if c.close {
				unix.Close(p[1])
			} else {
				defer unix.Close(p[1])
			}
			select {
			case r := <-got:
				if r.o != c.want || r.cg != c.cgroup {
					t.Fatalf("outcome %d with cgroup %q, want %d with %q", r.o, r.cg, c.want, c.cgroup)
				}
			case <-time.After(guardTestBound):
				t.Fatal("guardWatch did not return")
			}
		})
	}
}

// TestCgroupDirIn finds a unit's cgroup in the mount table.
func TestCgroupDirIn(t *testing.T) {
	const hybrid = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	const legacy = `31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime shared:9 - cgroup cgroup rw,xattr,name=systemd
`
	const subtree = `40 30 0:37 /machine.slice/c1 /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw
41 30 0:37 / /mnt/all\040cgroups rw,relatime - cgroup2 cgroup2 rw
`
	cases := []struct {
		name, table, rel, want string
	}{
		{"hybrid prefers cgroup2", hybrid, "/system.slice/db.service", "/sys/fs/cgroup/unified/system.slice/db.service"},
		{"legacy name=systemd", legacy, "/system.slice/db.service", "/sys/fs/cgroup/systemd/system.slice/db.service"},
		{"subtree mount", subtree, "/machine.slice/c1/system.slice/db.service", "/sys/fs/cgroup/system.slice/db.service"},
		{"outside the subtree", subtree, "/system.slice/db.service", "/mnt/all cgroups/system.slice/db.service"},
		{"not a path", hybrid, "db.service", ""},
		{"no hierarchy", "31 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n", "/a.service", ""},
	}
	for _, c := range cases {
		got, err := cgroupDirIn(strings.NewReader(c.table), c.rel)
		if c.want == "" {
			if err == nil {
				t.Errorf("%s: %q, want an error", c.name, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

// TestBootDeadline: the conversion never lands later than the deadline.
func TestBootDeadline(t *testing.T) {
	for _, d := range []time.Duration{-time.Second, 0, time.Millisecond, time.Hour} {
		deadline := time.Now().Add(d)
		before := boottime.Now()
		got := boottime.Deadline(deadline)
		after := boottime.Now()
		if got > after+int64(d) {
			t.Errorf("%v: boot deadline %d is later than %d", d, got, after+int64(d))
		}
		if got < before+int64(d)-int64(time.Second) {
			t.Errorf("%v: boot deadline %d is far earlier than %d", d, got, before+int64(d))
		}
	}
	if got := boottime.Deadline(time.Now().Add(1<<62 + 1<<61)); got <= 0 {
		t.Errorf("far future overflowed to %d", got)
	}
}
