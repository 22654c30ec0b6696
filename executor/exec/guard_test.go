//go:build linux

package exec

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/internal/boottime"
)

// Environment of TestHoldHelperAgent, the re-executed test binary that
// plays a small agent holding a lease.
const (
	holdHelperEnv     = "GCL_EXEC_TEST_HOLD_HELPER"
	holdHelperTermEnv = "GCL_EXEC_TEST_HOLD_TERM" // the lease term it renews, e.g. "1s"
)

// TestHoldHelperAgent is not a test: the guard tests run the test binary
// again with holdHelperEnv set and -test.run selecting this function. It
// supervises `sleep 1000` bounded by a lease term it renews every 50 ms,
// like the agent does. Once the process has outlived its first deadline
// thanks to the renewals (at once for a term over 10s), it prints
// "pid=<the process's pid>" and keeps renewing until it is stopped or
// killed.
func TestHoldHelperAgent(t *testing.T) {
	if os.Getenv(holdHelperEnv) != "1" {
		t.Skip("helper process for the guard tests")
	}
	term, err := time.ParseDuration(os.Getenv(holdHelperTermEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad term:", err)
		os.Exit(2)
	}
	s, err := New(Config{
		Name: "held", Command: "sleep", Args: []string{"1000"},
		LogDir: os.Getenv(helperLogDirEnv), Logger: discard,
		Deadline: time.Now().Add(term),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := s.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	first := time.Now().Add(term)
	if term > 10*time.Second {
		first = time.Time{}
	}
	pid := s.Status().PID
	printed := false
	for {
		s.HoldUntil(time.Now().Add(term))
		if !printed && time.Now().After(first.Add(200*time.Millisecond)) {
			if st := s.Status(); st.State != StateRunning || st.PID != pid {
				fmt.Fprintf(os.Stderr, "process did not survive its renewed deadline: %+v\n", st)
				os.Exit(2)
			}
			fmt.Printf("pid=%d\n", pid)
			printed = true
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startHoldHelper starts TestHoldHelperAgent with the given lease term and
// returns it and the supervised process's pid. The helper is killed at the
// end of the test.
func startHoldHelper(t *testing.T, term time.Duration) (*osexec.Cmd, int) {
	t.Helper()
	helper := osexec.Command(os.Args[0], "-test.run=^TestHoldHelperAgent$")
	helper.Env = append(os.Environ(), holdHelperEnv+"=1", holdHelperTermEnv+"="+term.String(), helperLogDirEnv+"="+t.TempDir())
	helper.Stderr = os.Stderr
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// SIGKILL ends a stopped process too.
		_ = helper.Process.Kill()
		_ = helper.Wait()
	})
	pidc := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "pid="); ok {
				if pid, err := strconv.Atoi(v); err == nil {
					pidc <- pid
					return
				}
			}
		}
		close(pidc)
	}()
	select {
	case pid, ok := <-pidc:
		if !ok {
			t.Fatal("helper agent ended without printing the pid")
		}
		return helper, pid
	case <-time.After(30 * time.Second):
		t.Fatal("helper agent printed no pid within 30s")
	}
	return nil, 0
}

// procState is the state letter in /proc/pid/stat ('T': stopped), or 0.
func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// TestGuardFrozenAgent is the case the guard exists for: the agent is
// frozen (SIGSTOP), so it can neither stop its process nor renew; the
// process must be gone by its deadline all the same, while the agent is
// still frozen.
func TestGuardFrozenAgent(t *testing.T) {
	t.Parallel()
	const term = time.Second
	helper, pid := startHoldHelper(t, term)
	if !alive(pid) {
		t.Fatalf("process %d not alive after the helper renewed its deadline", pid)
	}
	if err := helper.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	defer helper.Process.Signal(syscall.SIGCONT)
	waitFor(t, "helper stopped", 5*time.Second, func() bool { return procState(helper.Process.Pid) == 'T' })

	// The last renewal, at most 50 ms (plus scheduling) before the freeze,
	// set the deadline about term after itself.
	waitFor(t, "the frozen agent's process to be killed", term+5*time.Second, func() bool { return !alive(pid) })
	gone := time.Since(frozen)
	if st := procState(helper.Process.Pid); st != 'T' {
		t.Fatalf("helper state %q when its process died; want still stopped", st)
	}
	if gone < term/2 {
		t.Errorf("process killed %s after the freeze, long before its deadline (about %s)", gone, term)
	}
	t.Logf("process killed %s after the agent froze (term %s)", gone.Round(time.Millisecond), term)
}

// TestGuardAgentKilled: the supervising process SIGKILLed takes its process
// down at once (Pdeathsig on the guard, EOF on the control pipe), long
// before the deadline.
func TestGuardAgentKilled(t *testing.T) {
	t.Parallel()
	helper, pid := startHoldHelper(t, time.Minute)
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	waitFor(t, "the killed agent's process to die", 5*time.Second, func() bool { return !alive(pid) })
}

// readPID reads a pid the process wrote to a file.
func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %s: %q", path, b)
	}
	return pid
}

// groupScript starts a grandchild in the group and reports its pid.
const groupScript = `sleep 1000 & echo $! > "$PIDFILE"; echo ready; wait`

func TestGuardDeadlineKills(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	cfg := shell(groupScript)
	cfg.Env = map[string]string{"PIDFILE": pidFile}
	// Long enough for the guard to start on a loaded machine with -race.
	deadline := time.Now().Add(3 * time.Second)
	cfg.Deadline = deadline
	s := newSup(t, cfg)
	start(t, s)
	waitLine(t, s.cfg.LogDir, "stdout", "ready", 10*time.Second)
	app, grandchild := s.Status().PID, readPID(t, pidFile)

	waitFor(t, "the process to be killed at its deadline", time.Until(deadline)+5*time.Second, func() bool { return !alive(app) })
	// Seen dead only after it died; a kill well before the deadline shows.
	// The guard's deadline is earlier than ours only by the conversion's
	// scheduling jitter.
	if early := time.Until(deadline); early > 250*time.Millisecond {
		t.Fatalf("process killed %s before its deadline", early)
	}
	waitFor(t, "the grandchild to be killed too", 2*time.Second, func() bool { return !alive(grandchild) })
	waitFor(t, "the deadline reason", 5*time.Second, func() bool { return s.Status().Reason == deadlineReason })
	st := s.Status()
	if st.State != StateRestarting || st.ExitCode != -1 || st.PID != 0 || st.Restarts != 0 {
		t.Fatalf("after the deadline kill: %+v; want restarting (waiting for a new deadline), no pid, no restart", st)
	}

	// A new deadline in the future: the run was not the process's fault,
	// so it restarts, although the policy allows no restarts.
	s.HoldUntil(time.Now().Add(time.Hour))
	waitFor(t, "a restart after the renewal", 10*time.Second, func() bool {
		st := s.Status()
		return st.State == StateRunning && st.PID != 0 && st.PID != app
	})
	if st := s.Status(); st.Restarts != 1 {
		t.Errorf("restarts %d, want 1", st.Restarts)
	}
}

func TestGuardRenewedKeepsRunning(t *testing.T) {
	t.Parallel()
	const term = 1500 * time.Millisecond
	cfg := shell(`echo ready; exec sleep 1000`)
	cfg.Deadline = time.Now().Add(term)
	s := newSup(t, cfg)
	start(t, s)
	pid := s.Status().PID

	// Renew as the agent does, for more than two terms.
	renewFor := time.Now().Add(2*term + 500*time.Millisecond)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(renewFor) {
		s.HoldUntil(time.Now().Add(term))
		<-tick.C
		if !alive(pid) {
			t.Fatalf("renewed process %d died; status %+v", pid, s.Status())
		}
	}
	if st := s.Status(); st.State != StateRunning || st.PID != pid || st.Restarts != 0 {
		t.Fatalf("after renewals: %+v", st)
	}
	// The renewals stop: the last deadline holds.
	last := time.Now().Add(term)
	s.HoldUntil(last)
	waitFor(t, "the process to be killed once renewals stopped", term+5*time.Second, func() bool { return !alive(pid) })
	if early := time.Until(last); early > 250*time.Millisecond {
		t.Fatalf("process killed %s before its last deadline", early)
	}
	// Lifting the bound (zero time) restarts it with no deadline at all.
	s.HoldUntil(time.Time{})
	waitFor(t, "a restart without a deadline", 10*time.Second, func() bool {
		st := s.Status()
		return st.State == StateRunning && st.PID != pid
	})
}

func TestGuardPastDeadline(t *testing.T) {
	t.Parallel()
	t.Run("first start", func(t *testing.T) {
		t.Parallel()
		for _, viaHold := range []bool{false, true} {
			marker := filepath.Join(t.TempDir(), "ran")
			cfg := Config{Command: "touch", Args: []string{marker}}
			past := time.Now().Add(-time.Second)
			if !viaHold {
				cfg.Deadline = past
			}
			s := newSup(t, cfg)
			if viaHold {
				s.HoldUntil(past)
			}
			err := s.Start(context.Background())
			if !errors.Is(err, ErrStartFailed) || !errors.Is(err, ErrDeadlinePassed) {
				t.Fatalf("Start past the deadline: %v; want ErrStartFailed and ErrDeadlinePassed", err)
			}
			if st := s.Status(); st.State != StateFailed || !strings.Contains(st.Reason, "deadline passed") {
				t.Errorf("status %+v", st)
			}
			waitDone(t, s, 5*time.Second)
			if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the process ran: %v", err)
			}
		}
	})
	t.Run("restart", func(t *testing.T) {
		t.Parallel()
		runs := filepath.Join(t.TempDir(), "runs")
		cfg := shell(`echo run >> "$RUNS"; exit 1`)
		cfg.Env = map[string]string{"RUNS": runs}
		cfg.Restart = RestartPolicy{Attempts: 5, Interval: time.Minute, Delay: time.Second}
		cfg.Deadline = time.Now().Add(time.Hour)
		s := newSup(t, cfg)
		start(t, s)
		countRuns := func() int {
			b, _ := os.ReadFile(runs)
			return strings.Count(string(b), "run\n")
		}
		waitFor(t, "the first exit", 10*time.Second, func() bool { return s.Status().State == StateRestarting })
		// Within the restart delay, the lease goes.
		s.HoldUntil(time.Now().Add(-time.Millisecond))
		waitFor(t, "the restart to be held back", 10*time.Second, func() bool {
			return strings.Contains(s.Status().Reason, "not restarting: lease deadline passed")
		})
		st := s.Status()
		if n := countRuns(); n != 1 || st.Restarts != 0 || st.State != StateRestarting || st.PID != 0 {
			t.Fatalf("%d runs, status %+v; want 1 run, restarting without a restart", n, st)
		}
		// Back in the future: the restart goes ahead.
		s.HoldUntil(time.Now().Add(time.Hour))
		waitFor(t, "the restart", 10*time.Second, func() bool { return countRuns() >= 2 })
	})
}

// TestGuardPipeEOF closes the control pipe as the death of the supervising
// process would: the guard SIGKILLs the whole group at once, descendants
// included.
func TestGuardPipeEOF(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	cfg := shell(groupScript)
	cfg.Env = map[string]string{"PIDFILE": pidFile}
	s := newSup(t, cfg)
	start(t, s)
	waitLine(t, s.cfg.LogDir, "stdout", "ready", 10*time.Second)
	app, grandchild := s.Status().PID, readPID(t, pidFile)

	s.mu.Lock()
	p := s.cur
	s.mu.Unlock()
	p.ctlMu.Lock()
	p.ctl.Close()
	p.ctl = nil
	p.ctlMu.Unlock()
	waitFor(t, "process and grandchild killed by the guard", 5*time.Second, func() bool { return !alive(app) && !alive(grandchild) })
	waitDone(t, s, 5*time.Second)
	if st := s.Status(); st.State != StateFailed || !strings.Contains(st.Reason, "killed by signal SIGKILL") {
		t.Errorf("status %+v", st)
	}
}

// TestGuardTransparent: through the guard, the command is what it was
// without one: its exit code or signal is the run's, Status.PID is the
// command's, stop signals reach it while the guard stays, and it sees
// nothing of the guard's environment.
func TestGuardTransparent(t *testing.T) {
	t.Parallel()
	t.Run("exit status", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			script, reason string
			code           int
		}{
			{`exit 7`, "exited with code 7", 7},
			{`exit 0`, "exited with code 0", 0},
			{`kill -USR1 $$`, "killed by signal SIGUSR1", -1},
			{`kill -SEGV $$`, "killed by signal SIGSEGV", -1},
			{`kill -TERM $$`, "killed by signal SIGTERM", -1},
		} {
			s := newSup(t, shell(tc.script))
			start(t, s)
			waitDone(t, s, 10*time.Second)
			st := s.Status()
			if st.State != StateFailed || st.ExitCode != tc.code || !strings.HasPrefix(st.Reason, tc.reason+";") {
				t.Errorf("%s: status %+v; want reason %q, code %d", tc.script, st, tc.reason, tc.code)
			}
		}
	})
	t.Run("layout", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, shell(`echo "$$"; exec sleep 1000`))
		start(t, s)
		pid := s.Status().PID
		waitLine(t, s.cfg.LogDir, "stdout", strconv.Itoa(pid), 10*time.Second)
		ppid, pgid := statFields(t, pid)
		if pgid != ppid {
			t.Errorf("process %d: group %d, parent %d; want the guard's group", pid, pgid, ppid)
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ppid))
		if !strings.HasPrefix(string(cmdline), guardArg0+"\x00test\x00") {
			t.Errorf("parent %d is %q, want the guard", ppid, cmdline)
		}
		if gppid, gpgid := statFields(t, ppid); gppid != os.Getpid() || gpgid != ppid {
			t.Errorf("guard %d: parent %d, group %d; want our child, leading its group", ppid, gppid, gpgid)
		}
	})
	t.Run("env", func(t *testing.T) {
		t.Parallel()
		s := newSup(t, Config{Command: "env"})
		start(t, s)
		waitDone(t, s, 10*time.Second)
		lines, err := Tail(s.cfg.LogDir, "stdout", 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			if strings.HasPrefix(l, guardEnv+"=") || strings.HasPrefix(l, "GOMAXPROCS=") {
				t.Errorf("the guard's environment leaked into the command's: %q", l)
			}
		}
	})
	t.Run("stop signals", func(t *testing.T) {
		t.Parallel()
		for _, sig := range []string{"SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGTSTP"} {
			t.Run(sig, func(t *testing.T) {
				t.Parallel()
				name := strings.TrimPrefix(sig, "SIG")
				// The shell waits in `wait`, which a trapped signal
				// interrupts (a foreground child would be waited for
				// first, and a stopped one for ever).
				cfg := shell(`trap 'echo got; exit 0' ` + name + `; echo ready; sleep 1000 & wait`)
				cfg.KillSignal = sig
				cfg.KillTimeout = time.Minute // a SIGKILL would show as the wrong reason
				s := newSup(t, cfg)
				start(t, s)
				waitLine(t, s.cfg.LogDir, "stdout", "ready", 10*time.Second)
				stop(t, s)
				if st := s.Status(); st.State != StateStopped || st.Reason != "stopped: exited with code 0" {
					t.Errorf("status %+v; want the trap's clean exit", st)
				}
			})
		}
	})
}

// statFields returns the parent and process group of pid.
func statFields(t *testing.T, pid int) (ppid, pgid int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, _ = strconv.Atoi(f[1])
	pgid, _ = strconv.Atoi(f[2])
	return ppid, pgid
}

func TestBootDeadline(t *testing.T) {
	if got := boottime.Deadline(time.Time{}); got != 0 {
		t.Errorf("zero time: %d, want 0 (no deadline)", got)
	}
	if got := boottime.Deadline(time.Now().Add(-time.Hour)); got < 1 || got > boottime.Now() {
		t.Errorf("past deadline: %d, want a past boot time that is not 0", got)
	}
	before := boottime.Now()
	got := boottime.Deadline(time.Now().Add(time.Second))
	after := boottime.Now()
	// Never later than the true deadline, which lies within a second of
	// now, wherever now falls between the two reads.
	if got > after+int64(time.Second) || got < before+int64(900*time.Millisecond) {
		t.Errorf("1s ahead: %d, boot now %d..%d", got, before, after)
	}
	if got := boottime.Deadline(time.Unix(1<<62, 0)); got != math.MaxInt64 {
		t.Errorf("far future: %d, want saturated", got)
	}
}

func TestGuardSpecRoundTrip(t *testing.T) {
	cred := &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{1, 2}}
	b := encodeGuardSpec("/bin/sh", "/tmp", []string{"sh", "-c", "x"}, []string{"A=1", "B="}, cred, 42)
	read := func(b []byte) (*guardSpec, error) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		go func() { w.Write(b); w.Close() }()
		return readGuardSpec(int(r.Fd()))
	}
	spec, err := read(b)
	if err != nil {
		t.Fatal(err)
	}
	if spec.path != "/bin/sh" || spec.dir != "/tmp" || strings.Join(spec.argv, " ") != "sh -c x" ||
		strings.Join(spec.env, ",") != "A=1,B=" || spec.deadline != 42 ||
		spec.cred == nil || spec.cred.Uid != 65534 || spec.cred.Gid != 65534 || len(spec.cred.Groups) != 2 {
		t.Errorf("decoded %+v (cred %+v)", spec, spec.cred)
	}
	if spec, err := read(encodeGuardSpec("x", "/", []string{"x"}, nil, nil, 0)); err != nil || spec.cred != nil || len(spec.env) != 0 {
		t.Errorf("minimal spec: %+v, %v", spec, err)
	}
	bad := append([]byte(nil), b...)
	bad[0] ^= 0xff
	if _, err := read(bad); err == nil {
		t.Error("bad magic accepted")
	}
	if _, err := read(b[:len(b)-3]); err == nil {
		t.Error("truncated spec accepted")
	}
	trailing := encodeGuardSpec("x", "/", []string{"x"}, nil, nil, 0)
	trailing = append(trailing, 0)
	putLE32(trailing[4:], le32(trailing[4:])+1)
	if _, err := read(trailing); err == nil {
		t.Error("spec with trailing bytes accepted")
	}
}
