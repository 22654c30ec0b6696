//go:build linux

package vip

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ozanturksever/go-cluster/internal/boottime"
)

// The "agent" of the process tests is a helper: this test binary run again
// with helperEnv set, which TestMain turns into helperMain. It adds the VIP
// in the namespace it inherits as fd 3, holds it with HoldUntil, reports
// "ready <guard pid>" on stdout and then feeds the guard (or not) until its
// stdin closes. The test can then SIGSTOP or SIGKILL it like a real agent.
const (
	helperEnv      = "GCL_VIP_TEST_HELPER" // value: the address
	helperHoldEnv  = "GCL_VIP_TEST_HOLD"   // deadline distance (time.Duration)
	helperFeedEnv  = "GCL_VIP_TEST_FEED"   // feeding interval, "0" for none
	helperNsFD     = 3
	testVIP        = "198.18.0.100/24"
	guardTestBound = 3 * time.Second // generous: the machine may be loaded
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperEnv); addr != "" {
		os.Exit(helperMain(addr))
	}
	os.Exit(m.Run())
}

func helperMain(addr string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	hold, err := time.ParseDuration(os.Getenv(helperHoldEnv))
	if err != nil {
		return fail(err)
	}
	feed, err := time.ParseDuration(os.Getenv(helperFeedEnv))
	if err != nil {
		return fail(err)
	}
	// No ValidLifetime: only the guard can take the address away, so the
	// tests see the guard's doing and not the kernel's.
	v, err := New(Config{
		Address: netip.MustParsePrefix(addr), Interface: nodeIf,
		Namespace: netns.NsHandle(helperNsFD), ARPCount: 1, Logger: quietLogger,
	})
	if err != nil {
		return fail(err)
	}
	if err := v.HoldUntil(time.Now().Add(hold)); err != nil {
		return fail(err)
	}
	if err := v.Add(context.Background()); err != nil {
		return fail(err)
	}
	pid, _ := guardOf(v)
	fmt.Printf("ready %d\n", pid)
	if feed > 0 {
		go func() {
			for range time.Tick(feed) {
				if err := v.HoldUntil(time.Now().Add(hold)); err != nil {
					fmt.Fprintln(os.Stderr, "helper: HoldUntil:", err)
				}
			}
		}()
	}
	_, _ = io.Copy(io.Discard, os.Stdin) // until the test lets go
	return 0
}

// guardOf returns the pid of v's guard and whether it has exited (0 when
// there is none).
func guardOf(v *VIP) (pid int, exited bool) {
	v.gmu.Lock()
	defer v.gmu.Unlock()
	if v.g == nil {
		return 0, false
	}
	return v.g.cmd.Process.Pid, v.g.exited()
}

// guardExit waits for v's guard to exit and returns its exit code.
func guardExit(t *testing.T, v *VIP, within time.Duration) int {
	t.Helper()
	v.gmu.Lock()
	g := v.g
	v.gmu.Unlock()
	if g == nil {
		t.Fatal("no guard")
	}
	select {
	case <-g.done:
	case <-time.After(within):
		t.Fatalf("guard still running after %v", within)
	}
	return g.cmd.ProcessState.ExitCode()
}

// procState is the state letter of pid from /proc (R, S, T, Z, ...), or 0
// when the process is gone.
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// pid (comm) state ...: comm may contain anything, so look after the
	// last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0
	}
	return s[i+2]
}

type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	guard int
}

// startHelper starts the agent stand-in in tp's node namespace and waits
// until it holds the VIP.
func startHelper(t *testing.T, tp *topology, hold, feed time.Duration) *helper {
	t.Helper()
	nsfd, err := unix.FcntlInt(uintptr(tp.node), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ns := os.NewFile(uintptr(nsfd), "netns")
	defer ns.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), helperEnv+"="+testVIP, helperHoldEnv+"="+hold.String(), helperFeedEnv+"="+feed.String())
	cmd.ExtraFiles = []*os.File{ns}
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
	h := &helper{cmd: cmd, stdin: stdin}
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
	case <-time.After(20 * time.Second):
		t.Fatal("helper did not get ready within 20s")
	}
	if !tp.hasAddr(t, testVIP) {
		t.Fatal("helper ready but the address is not there")
	}
	return h
}

// TestGuardRemovesAtDeadline: a guard that is not fed removes the address
// at its deadline, not before.
func TestGuardRemovesAtDeadline(t *testing.T) {
	tp := newTopology(t)
	v := newVIP(t, tp, Config{Address: netip.MustParsePrefix(testVIP), Interface: nodeIf, ARPCount: 1})
	if err := v.Add(context.Background()); err != nil {
		t.Fatalf("Add: %v", err)
	}
	deadline := time.Now().Add(time.Second)
	if err := v.HoldUntil(deadline); err != nil {
		t.Fatalf("HoldUntil: %v", err)
	}
	// Present until shortly before the deadline (the conversion to the
	// guard's clock may only make it earlier, by microseconds)...
	for time.Until(deadline) > 20*time.Millisecond {
		if !tp.hasAddr(t, testVIP) {
			t.Fatalf("address removed %v before the deadline", time.Until(deadline))
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	// ...and gone soon after it.
	eventually(t, time.Until(deadline)+guardTestBound, "the guard to remove the address", func() bool { return !tp.hasAddr(t, testVIP) })
	if code := guardExit(t, v, guardTestBound); code != guardExitDeadline {
		t.Fatalf("guard exit code %d, want %d (deadline)", code, guardExitDeadline)
	}
	if !tp.hasAddr(t, "198.18.0.1/24") {
		t.Fatal("the guard took the link's own address too")
	}

	// A guard that acted is replaced by the next HoldUntil.
	if err := v.Add(context.Background()); err != nil {
		t.Fatalf("Add again: %v", err)
	}
	if err := v.HoldUntil(time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("HoldUntil after the guard acted: %v", err)
	}
	if pid, exited := guardOf(v); pid == 0 || exited {
		t.Fatalf("no running guard after HoldUntil (pid %d, exited %v)", pid, exited)
	}
	if err := v.Remove(context.Background()); err != nil {
		t.Fatalf("Remove: %v", err)
	}
}

// TestGuardKeepsWhileFed: fed deadlines keep the address long past any
// one of them; once feeding stops the last one counts.
func TestGuardKeepsWhileFed(t *testing.T) {
	tp := newTopology(t)
	v := newVIP(t, tp, Config{Address: netip.MustParsePrefix(testVIP), Interface: nodeIf, ARPCount: 1})
	const hold = 600 * time.Millisecond
	if err := v.HoldUntil(time.Now().Add(hold)); err != nil {
		t.Fatalf("HoldUntil: %v", err)
	}
	if err := v.Add(context.Background()); err != nil {
		t.Fatalf("Add: %v", err)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last time.Time
	for end := time.Now().Add(4 * hold); time.Now().Before(end); {
		<-tick.C
		last = time.Now().Add(hold)
		if err := v.HoldUntil(last); err != nil {
			t.Fatalf("HoldUntil: %v", err)
		}
		if !tp.hasAddr(t, testVIP) {
			t.Fatal("address removed while fed")
		}
	}
	eventually(t, time.Until(last)+guardTestBound, "the guard to remove the address", func() bool { return !tp.hasAddr(t, testVIP) })
	if code := guardExit(t, v, guardTestBound); code != guardExitDeadline {
		t.Fatalf("guard exit code %d, want %d (deadline)", code, guardExitDeadline)
	}
}

// TestGuardDisarm: a disarmed guard leaves the address alone, and a guard
// of an earlier term never removes the address of a later one.
func TestGuardDisarm(t *testing.T) {
	tp := newTopology(t)
	ctx := context.Background()
	v := newVIP(t, tp, Config{Address: netip.MustParsePrefix(testVIP), Interface: nodeIf, ARPCount: 1})

	// Disarm without removing: the address stays past the deadline.
	if err := v.Add(ctx); err != nil {
		t.Fatalf("Add: %v", err)
	}
	d1 := time.Now().Add(700 * time.Millisecond)
	if err := v.HoldUntil(d1); err != nil {
		t.Fatalf("HoldUntil: %v", err)
	}
	pid, _ := guardOf(v)
	if err := v.Disarm(); err != nil {
		t.Fatalf("Disarm: %v", err)
	}
	if p, _ := guardOf(v); p != 0 {
		t.Fatal("guard still attached after Disarm")
	}
	if st := procState(pid); st != 0 {
		t.Fatalf("guard %d still exists after Disarm (state %c)", pid, st)
	}
	stays(t, tp, time.Until(d1)+time.Second, "after its guard was disarmed")

	// Term 1 ends with Remove (which disarms), term 2 adds the address
	// again; the first term's deadline passes without effect.
	d2 := time.Now().Add(700 * time.Millisecond)
	if err := v.HoldUntil(d2); err != nil {
		t.Fatalf("HoldUntil: %v", err)
	}
	pid, _ = guardOf(v)
	if err := v.Remove(ctx); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if tp.hasAddr(t, testVIP) {
		t.Fatal("present after Remove")
	}
	if st := procState(pid); st != 0 {
		t.Fatalf("guard %d still exists after Remove (state %c)", pid, st)
	}
	if err := v.HoldUntil(time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("HoldUntil (term 2): %v", err)
	}
	if err := v.Add(ctx); err != nil {
		t.Fatalf("Add (term 2): %v", err)
	}
	stays(t, tp, time.Until(d2)+time.Second, "past the previous term's deadline")
	if err := v.Remove(ctx); err != nil {
		t.Fatalf("Remove: %v", err)
	}
}

// stays checks that the address stays on the link for d. Waiting out the
// time is the point: it is the absence of an event being tested.
func stays(t *testing.T, tp *topology, d time.Duration, when string) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if !tp.hasAddr(t, testVIP) {
			t.Fatalf("address removed %s", when)
		}
	}
}

// TestGuardClose: Close without Disarm lets the guard remove the address at
// once: nobody can feed it any more.
func TestGuardClose(t *testing.T) {
	tp := newTopology(t)
	v := newVIP(t, tp, Config{Address: netip.MustParsePrefix(testVIP), Interface: nodeIf, ARPCount: 1})
	if err := v.HoldUntil(time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("HoldUntil: %v", err)
	}
	if err := v.Add(context.Background()); err != nil {
		t.Fatalf("Add: %v", err)
	}
	_ = v.Close()
	eventually(t, guardTestBound, "the guard to remove the address after Close", func() bool { return !tp.hasAddr(t, testVIP) })
	if err := v.HoldUntil(time.Now().Add(time.Hour)); err == nil {
		t.Fatal("HoldUntil after Close succeeded")
	}
}

// TestGuardStartFails: a guard that cannot act is an error of HoldUntil.
func TestGuardStartFails(t *testing.T) {
	tp := newTopology(t)
	v := newVIP(t, tp, Config{Address: netip.MustParsePrefix(testVIP), Interface: nodeIf})
	if err := tp.nodeH.LinkDel(tp.nodeLink); err != nil {
		t.Fatal(err)
	}
	if err := v.HoldUntil(time.Now().Add(time.Hour)); !errors.Is(err, ErrGuard) {
		t.Fatalf("HoldUntil without the link: %v, want ErrGuard", err)
	}
}

// TestGuardFrozenAgent is the reason for the guard: the agent holding the
// VIP is frozen (SIGSTOP) and cannot remove the address; its guard does,
// at the last deadline the agent fed it, while the agent is still stopped.
func TestGuardFrozenAgent(t *testing.T) {
	tp := newTopology(t)
	const hold = 1500 * time.Millisecond
	h := startHelper(t, tp, hold, 100*time.Millisecond)
	// Fed, the address outlives several deadlines.
	stays(t, tp, 2*hold, "while the agent feeds its guard")

	if err := h.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now() // its last deadline is at most hold after this
	eventually(t, guardTestBound, "the agent to stop", func() bool { return procState(h.cmd.Process.Pid) == 'T' })
	eventually(t, hold+guardTestBound, "the guard to remove the frozen agent's address", func() bool { return !tp.hasAddr(t, testVIP) })
	took := time.Since(frozen)
	if st := procState(h.cmd.Process.Pid); st != 'T' {
		t.Fatalf("agent in state %c, want still stopped (T)", st)
	}
	// The guard exited, and nobody reaped it: its parent is stopped.
	eventually(t, guardTestBound, "the guard to exit", func() bool { return procState(h.guard) == 'Z' })
	t.Logf("address removed %v after the agent was stopped (last deadline at most %v after)", took.Round(time.Millisecond), hold)
}

// TestGuardAgentKilled: when the agent dies the guard sees EOF on its pipe
// and removes the address at once, long before the deadline.
func TestGuardAgentKilled(t *testing.T) {
	tp := newTopology(t)
	h := startHelper(t, tp, time.Hour, 0)
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, guardTestBound, "the guard to remove the dead agent's address", func() bool { return !tp.hasAddr(t, testVIP) })
	// The guard exits right after (reaped by init or a subreaper).
	eventually(t, guardTestBound, "the guard to exit", func() bool {
		st := procState(h.guard)
		return st == 0 || st == 'Z'
	})
}

// TestGuardWatch drives the guard's loop directly through a pipe.
func TestGuardWatch(t *testing.T) {
	msg := func(kind byte, v int64) []byte {
		m := make([]byte, guardMsgLen)
		m[0] = kind
		binary.LittleEndian.PutUint64(m[1:], uint64(v))
		return m
	}
	future := func() int64 { return boottime.Now() + int64(time.Hour) }
	cases := []struct {
		name  string
		write [][]byte
		close bool
		want  guardOutcome
	}{
		{"past deadline", [][]byte{msg('D', boottime.Now()-1)}, false, outcomeDeadline},
		{"near deadline", [][]byte{msg('D', boottime.Now()+int64(50*time.Millisecond))}, false, outcomeDeadline},
		{"later deadline replaces earlier", [][]byte{msg('D', boottime.Now()-1), msg('D', future())}, true, outcomeOrphaned},
		{"EOF without disarm", [][]byte{msg('D', future())}, true, outcomeOrphaned},
		{"EOF before any deadline", nil, true, outcomeOrphaned},
		{"disarm then EOF", [][]byte{msg('D', future()), msg('X', 0)}, true, outcomeDisarmed},
		{"disarm cancels a past deadline", [][]byte{append(msg('D', boottime.Now()-1), msg('X', 0)...)}, true, outcomeDisarmed},
		{"deadline after disarm re-arms", [][]byte{msg('X', 0), msg('D', future())}, true, outcomeOrphaned},
		{"torn message then EOF", [][]byte{msg('X', 0), msg('D', future())[:4]}, true, outcomeDisarmed},
		{"garbage", [][]byte{msg('?', 0)}, false, outcomeOrphaned},
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
			got := make(chan guardOutcome, 1)
			go func() { got <- guardWatch(p[0], tfd) }()
			select {
			case o := <-got:
				if o != c.want {
					t.Fatalf("outcome %d, want %d", o, c.want)
				}
			case <-time.After(guardTestBound):
				t.Fatal("guardWatch did not return")
			}
		})
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
