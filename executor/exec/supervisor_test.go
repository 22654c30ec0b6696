//go:build linux

package exec

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"os"
	osexec "os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStartStopGraceful(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "term")
	cfg := shell(`trap 'echo got-term > "$MARK"; exit 0' TERM; echo ready; sleep 1000 & wait`)
	cfg.Env = map[string]string{"MARK": marker}
	s := newSup(t, cfg)
	start(t, s)

	st := s.Status()
	if st.State != StateRunning || st.PID <= 0 {
		t.Fatalf("after Start: %+v, want running with a PID", st)
	}
	if !alive(st.PID) {
		t.Fatalf("pid %d not alive", st.PID)
	}
	// The trap must be installed before we signal.
	waitLine(t, s.cfg.LogDir, "stdout", "ready", 5*time.Second)

	stop(t, s)
	st = s.Status()
	if st.State != StateStopped {
		t.Fatalf("after Stop: %+v, want stopped", st)
	}
	if st.ExitCode != 0 || !strings.Contains(st.Reason, "exited with code 0") {
		t.Errorf("after Stop: %+v, want a clean exit from the trap", st)
	}
	b, err := os.ReadFile(marker)
	if err != nil || strings.TrimSpace(string(b)) != "got-term" {
		t.Errorf("TERM trap marker: %q, %v", b, err)
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done not closed after Stop")
	}
	waitFor(t, "old pid gone", 2*time.Second, func() bool { return !alive(st.PID) })

	// The updates saw the whole life.
	var states []State
	for len(s.Updates()) > 0 {
		states = append(states, (<-s.Updates()).State)
	}
	want := []State{StateStarting, StateRunning, StateStopped}
	if strings.Join(statesStr(states), ",") != strings.Join(statesStr(want), ",") {
		t.Errorf("updates %v, want %v", states, want)
	}
}

func statesStr(s []State) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = string(v)
	}
	return out
}

func TestStopKillsAfterTimeout(t *testing.T) {
	t.Parallel()
	cfg := shell(`trap '' TERM; echo ready; exec sleep 1000`)
	cfg.KillTimeout = 300 * time.Millisecond
	s := newSup(t, cfg)
	start(t, s)
	waitLine(t, s.cfg.LogDir, "stdout", "ready", 5*time.Second)

	t0 := time.Now()
	stop(t, s)
	elapsed := time.Since(t0)
	if elapsed < cfg.KillTimeout || elapsed > cfg.KillTimeout+2*time.Second {
		t.Errorf("Stop took %s, want between %s and %s", elapsed, cfg.KillTimeout, cfg.KillTimeout+2*time.Second)
	}
	st := s.Status()
	if st.State != StateStopped || st.ExitCode != -1 || !strings.Contains(st.Reason, "killed by signal SIGKILL") {
		t.Errorf("after Stop: %+v, want stopped, killed by SIGKILL", st)
	}
}

func TestStopContextEscalates(t *testing.T) {
	t.Parallel()
	cfg := shell(`trap '' TERM; echo ready; exec sleep 1000`)
	cfg.KillTimeout = time.Minute
	s := newSup(t, cfg)
	start(t, s)
	waitLine(t, s.cfg.LogDir, "stdout", "ready", 5*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if elapsed := time.Since(t0); elapsed > 3*time.Second {
		t.Errorf("Stop took %s although its ctx ended after 200ms", elapsed)
	}
	if st := s.Status(); st.State != StateStopped || !strings.Contains(st.Reason, "SIGKILL") {
		t.Errorf("after Stop: %+v", st)
	}
}

func TestStopKillsGroup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, child string }{
		{"grandchild", `sleep 1000`},
		// Ignores the group's SIGTERM; killed when the leader exits.
		{"grandchild ignoring TERM", `(trap '' TERM; exec sleep 1000)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pidFile := filepath.Join(t.TempDir(), "pid")
			cfg := shell(tc.child + ` & echo $! > "$PIDFILE"; echo ready; wait`)
			cfg.Env = map[string]string{"PIDFILE": pidFile}
			s := newSup(t, cfg)
			start(t, s)
			waitLine(t, s.cfg.LogDir, "stdout", "ready", 5*time.Second)
			b, err := os.ReadFile(pidFile)
			if err != nil {
				t.Fatal(err)
			}
			gpid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			if !alive(gpid) {
				t.Fatalf("grandchild %d not alive before Stop", gpid)
			}
			stop(t, s)
			waitFor(t, "grandchild dead", 2*time.Second, func() bool {
				return errors.Is(syscall.Kill(gpid, 0), syscall.ESRCH) || !alive(gpid)
			})
		})
	}
}

func TestRestartFailMode(t *testing.T) {
	t.Parallel()
	cfg := shell(`exit 1`)
	cfg.Restart = RestartPolicy{Attempts: 2, Interval: 10 * time.Second, Delay: 50 * time.Millisecond, Mode: RestartModeFail}
	s := newSup(t, cfg)
	start(t, s)
	waitDone(t, s, 10*time.Second)

	st := s.Status()
	if st.State != StateFailed || st.Restarts != 2 || st.ExitCode != 1 {
		t.Fatalf("status %+v, want failed after exactly 2 restarts, exit code 1", st)
	}
	if !strings.Contains(st.Reason, "exited with code 1") {
		t.Errorf("reason %q does not mention the exit code", st.Reason)
	}
	var running, restarting int
	var last Status
	for len(s.Updates()) > 0 {
		last = <-s.Updates()
		switch last.State {
		case StateRunning:
			running++
		case StateRestarting:
			restarting++
		}
	}
	if running != 3 || restarting != 2 || last.State != StateFailed {
		t.Errorf("updates: %d running, %d restarting, last %q; want 3, 2, failed", running, restarting, last.State)
	}
	// Stop after Failed: nil, and the state stays Failed.
	stop(t, s)
	if st := s.Status(); st.State != StateFailed {
		t.Errorf("state after Stop of a failed supervisor: %q", st.State)
	}
}

func TestRestartExitZero(t *testing.T) {
	t.Parallel()
	// Exit code 0 is unexpected too: the app is meant to run.
	cfg := shell(`exit 0`)
	cfg.Restart = RestartPolicy{Attempts: 1, Interval: 10 * time.Second, Mode: RestartModeFail}
	s := newSup(t, cfg)
	start(t, s)
	waitDone(t, s, 10*time.Second)
	if st := s.Status(); st.State != StateFailed || st.Restarts != 1 || !strings.Contains(st.Reason, "exited with code 0") {
		t.Fatalf("status %+v", st)
	}
}

func TestRestartDelayMode(t *testing.T) {
	t.Parallel()
	cfg := shell(`exit 3`)
	cfg.Restart = RestartPolicy{Attempts: 2, Interval: 500 * time.Millisecond, Delay: 10 * time.Millisecond, Mode: RestartModeDelay}
	s := newSup(t, cfg)
	t0 := time.Now()
	start(t, s)
	waitFor(t, "5 restarts", 15*time.Second, func() bool { return s.Status().Restarts >= 5 })
	// Two restarts per 500ms window: the 5th comes at least two windows
	// after the first.
	if elapsed := time.Since(t0); elapsed < 900*time.Millisecond {
		t.Errorf("5 restarts after %s; the window should have held them back", elapsed)
	}
	if st := s.Status(); st.State == StateFailed {
		t.Fatalf("delay mode failed: %+v", st)
	}
	stop(t, s)
	if st := s.Status(); st.State != StateStopped {
		t.Fatalf("after Stop: %+v", st)
	}
}

func TestStopAbortsRestartWait(t *testing.T) {
	t.Parallel()
	cfg := shell(`exit 2`)
	cfg.Restart = RestartPolicy{Attempts: 5, Interval: time.Minute, Delay: 30 * time.Second}
	s := newSup(t, cfg)
	start(t, s)
	waitFor(t, "restarting", 5*time.Second, func() bool { return s.Status().State == StateRestarting })
	t0 := time.Now()
	stop(t, s)
	if elapsed := time.Since(t0); elapsed > 2*time.Second {
		t.Errorf("Stop during the restart delay took %s", elapsed)
	}
	st := s.Status()
	if st.State != StateStopped || st.Restarts != 0 || !strings.Contains(st.Reason, "exited with code 2") {
		t.Errorf("after Stop: %+v", st)
	}
}

func TestCommandNotFound(t *testing.T) {
	t.Parallel()
	s := newSup(t, Config{Command: "gcl-no-such-command-xyz"})
	err := s.Start(context.Background())
	if err == nil {
		t.Fatal("Start succeeded")
	}
	if !errors.Is(err, ErrStartFailed) || !errors.Is(err, osexec.ErrNotFound) {
		t.Errorf("error %v: want ErrStartFailed and exec.ErrNotFound", err)
	}
	st := s.Status()
	if st.State != StateFailed || !strings.Contains(st.Reason, "not found") || !strings.HasPrefix(st.Reason, "start: ") {
		t.Errorf("status %+v", st)
	}
	waitDone(t, s, time.Second)
	if err := s.Start(context.Background()); !errors.Is(err, ErrAlreadyStarted) {
		t.Errorf("second Start: %v", err)
	}
}

func TestStartStopMisuse(t *testing.T) {
	t.Parallel()
	t.Run("stop before start", func(t *testing.T) {
		s := newSup(t, Config{Command: "sleep", Args: []string{"1000"}})
		stop(t, s)
		waitDone(t, s, time.Second)
		if st := s.Status(); st.State != StateStopped {
			t.Errorf("state %q", st.State)
		}
		if err := s.Start(context.Background()); !errors.Is(err, ErrStopped) {
			t.Errorf("Start after Stop: %v", err)
		}
	})
	t.Run("start twice", func(t *testing.T) {
		s := newSup(t, Config{Command: "sleep", Args: []string{"1000"}})
		start(t, s)
		if err := s.Start(context.Background()); !errors.Is(err, ErrAlreadyStarted) {
			t.Errorf("second Start: %v", err)
		}
	})
	t.Run("cancelled start ctx", func(t *testing.T) {
		s := newSup(t, Config{Command: "sleep", Args: []string{"1000"}})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Start(ctx); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrStartFailed) {
			t.Errorf("Start: %v", err)
		}
	})
	t.Run("concurrent stops", func(t *testing.T) {
		s := newSup(t, shell(`echo ready; exec sleep 1000`))
		start(t, s)
		errs := make(chan error, 4)
		for range 4 {
			go func() { errs <- s.Stop(context.Background()) }()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Errorf("Stop: %v", err)
			}
		}
		if st := s.Status(); st.State != StateStopped {
			t.Errorf("state %q", st.State)
		}
	})
}

func TestNewValidation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		cfg  Config
		want error
	}{
		{"no command", Config{LogDir: dir}, ErrInvalidConfig},
		{"no log dir", Config{Command: "sleep"}, ErrInvalidConfig},
		{"bad signal", Config{Command: "sleep", LogDir: dir, KillSignal: "SIGNOPE"}, ErrUnknownSignal},
		{"bad user", Config{Command: "sleep", LogDir: dir, User: "gcl-no-such-user"}, ErrUnknownUser},
		{"bad mode", Config{Command: "sleep", LogDir: dir, Restart: RestartPolicy{Mode: "sometimes"}}, ErrInvalidConfig},
		{"attempts without interval", Config{Command: "sleep", LogDir: dir, Restart: RestartPolicy{Attempts: 1}}, ErrInvalidConfig},
		{"bad env key", Config{Command: "sleep", LogDir: dir, Env: map[string]string{"A=B": "x"}}, ErrInvalidConfig},
	} {
		if _, err := New(tc.cfg); !errors.Is(err, tc.want) {
			t.Errorf("%s: New error %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, name := range []string{"", "SIGINT", "TERM", "sighup", "SIGQUIT", "SIGUSR1"} {
		if _, err := New(Config{Command: "sleep", LogDir: dir, KillSignal: name}); err != nil {
			t.Errorf("KillSignal %q: %v", name, err)
		}
	}
}

func TestEnv(t *testing.T) {
	// Not parallel: t.Setenv.
	t.Setenv("GCL_SECRET_TEST", "x")
	var logs syncBuffer
	s := newSup(t, Config{
		Command: "env",
		Env:     map[string]string{"GCL_VISIBLE": "s3cr3t-value"},
		Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
	})
	start(t, s)
	waitDone(t, s, 10*time.Second)
	lines, err := Tail(s.cfg.LogDir, "stdout", 1000)
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Join(lines, "\n")
	if !strings.Contains(env, "GCL_VISIBLE=s3cr3t-value") {
		t.Errorf("child env lacks cfg.Env:\n%s", env)
	}
	if strings.Contains(env, "GCL_SECRET_TEST") {
		t.Errorf("child env inherited the agent's GCL_SECRET_TEST:\n%s", env)
	}
	if !strings.Contains(env, "PATH=") {
		t.Errorf("child env lacks PATH:\n%s", env)
	}
	out := logs.String()
	if !strings.Contains(out, "process started") || !strings.Contains(out, "GCL_VISIBLE") {
		t.Errorf("no start line naming the env keys in:\n%s", out)
	}
	if strings.Contains(out, "s3cr3t-value") {
		t.Errorf("an env value was logged:\n%s", out)
	}
}

func TestPdeathsig(t *testing.T) {
	t.Parallel()
	helper := osexec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"=1", helperLogDirEnv+"="+t.TempDir())
	helper.Stderr = os.Stderr
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer helper.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading child pid from helper: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		t.Fatalf("helper printed %q", line)
	}
	if !alive(pid) {
		t.Fatalf("supervised pid %d not alive", pid)
	}
	// Give the helper's thread churn a moment: the child must survive it.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			t.Fatalf("child %d died while its supervisor was alive: Pdeathsig fired on a thread exit", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	waitFor(t, "child of the killed agent to die", 5*time.Second, func() bool { return !alive(pid) })
}

func TestRunAsUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	t.Parallel()
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	t.Run("id", func(t *testing.T) {
		s := newSup(t, Config{Command: "id", Args: []string{"-u"}, User: "nobody", Dir: "/"})
		start(t, s)
		waitDone(t, s, 10*time.Second)
		lines, err := Tail(s.cfg.LogDir, "stdout", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) != 1 || lines[0] != nobody.Uid {
			t.Errorf("id -u printed %q, want %q", lines, nobody.Uid)
		}
	})
	t.Run("log dir as working dir", func(t *testing.T) {
		// The test's temp dirs are 0700; open up the chain down to LogDir.
		base := t.TempDir()
		if err := os.Chmod(filepath.Dir(base), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(base, 0o755); err != nil {
			t.Fatal(err)
		}
		logDir := filepath.Join(base, "logs")
		s := newSup(t, Config{Command: "pwd", User: nobody.Uid, LogDir: logDir})
		start(t, s)
		waitDone(t, s, 10*time.Second)
		lines, err := Tail(logDir, "stdout", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) != 1 || lines[0] != logDir {
			t.Errorf("pwd printed %q (status %+v), want %q", lines, s.Status(), logDir)
		}
		fi, err := os.Stat(logDir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != logDirMode {
			t.Errorf("log dir mode %v", fi.Mode())
		}
	})
}

func TestUpdatesKeepLatest(t *testing.T) {
	t.Parallel()
	cfg := shell(`exit 1`)
	cfg.Restart = RestartPolicy{Attempts: 1000, Interval: time.Minute, Mode: RestartModeFail}
	s := newSup(t, cfg)
	start(t, s)
	// Nobody reads Updates meanwhile: far more changes than its buffer.
	waitFor(t, "30 restarts", 20*time.Second, func() bool { return s.Status().Restarts >= 30 })
	stop(t, s)
	var last Status
	n := 0
	for len(s.Updates()) > 0 {
		last = <-s.Updates()
		n++
	}
	if n == 0 || n > updatesBuffer {
		t.Fatalf("%d buffered updates", n)
	}
	if last != s.Status() || last.State != StateStopped {
		t.Errorf("last update %+v, status %+v", last, s.Status())
	}
}

// TestNoGoroutineLeak runs supervisors through their lifecycles and checks
// that every goroutine they started is gone. Not parallel: it counts the
// process's goroutines.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		cfg := shell(`sleep 1000 & exit 1`)
		cfg.Restart = RestartPolicy{Attempts: 2, Interval: time.Minute}
		s := newSup(t, cfg)
		start(t, s)
		waitDone(t, s, 10*time.Second)

		s2 := newSup(t, shell(`echo ready; exec sleep 1000`))
		start(t, s2)
		waitLine(t, s2.cfg.LogDir, "stdout", "ready", 5*time.Second)
		stop(t, s2)

		s3 := newSup(t, Config{Command: "gcl-no-such-command-xyz"})
		_ = s3.Start(context.Background())
	}()
	waitFor(t, "goroutines to end", 5*time.Second, func() bool { return runtime.NumGoroutine() <= before })
}
