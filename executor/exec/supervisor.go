//go:build linux

package exec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"
)

// Supervisor runs and watches one process. Its methods are safe for
// concurrent use.
type Supervisor struct {
	cfg  Config
	sig  syscall.Signal
	cred *credential
	log  *slog.Logger

	updates chan Status
	done    chan struct{} // closed when the supervisor is finished
	stopCh  chan struct{} // closed by the first Stop: no more restarts
	killNow chan struct{} // closed when a Stop's ctx ended: SIGKILL right away
	killed  sync.Once

	// Log files, opened by Start and closed by the supervision goroutine
	// when it ends (or by Start when the first start fails).
	stdout, stderr *logFile

	// holdMu serialises HoldUntil with itself and with starting a run, so
	// that the guard of a new run gets the latest deadline and no older
	// deadline can overtake a newer one on its way to a guard.
	holdMu  sync.Mutex
	holdSet chan struct{} // signalled (never closed) by HoldUntil

	mu       sync.Mutex
	status   Status
	started  bool      // Start was called, or Stop before Start (which forbids it)
	stopping bool      // stopCh is closed
	hold     time.Time // see HoldUntil; zero: none
	cur      *proc     // the current run, while it runs
}

// ErrDeadlinePassed: the deadline set by HoldUntil (or Config.Deadline)
// has passed, so the process was not started.
var ErrDeadlinePassed = errors.New("exec: lease deadline passed")

// New validates cfg and returns a Supervisor that has not started yet. It
// checks the user exists, but not the command: that is looked up by Start.
func New(cfg Config) (*Supervisor, error) {
	sig, cred, err := cfg.normalize()
	if err != nil {
		if cfg.Name != "" {
			return nil, fmt.Errorf("exec %q: %w", cfg.Name, err)
		}
		return nil, err
	}
	s := &Supervisor{
		cfg:     cfg,
		sig:     sig,
		cred:    cred,
		log:     cfg.Logger.With("exec", cfg.Name),
		updates: make(chan Status, updatesBuffer),
		done:    make(chan struct{}),
		stopCh:  make(chan struct{}),
		killNow: make(chan struct{}),
		holdSet: make(chan struct{}, 1),
		hold:    cfg.Deadline,
	}
	s.status = Status{State: StateNew, Since: time.Now()}
	return s, nil
}

// Status returns the current state.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Updates returns a channel receiving every state change. It is never
// closed (use Done). A reader that falls behind loses older undelivered
// updates, never the latest: the supervisor does not wait for readers.
func (s *Supervisor) Updates() <-chan Status { return s.updates }

// Done is closed when the supervisor has finished: Stopped, or Failed for
// good. The process has then been reaped and its output written.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

// Start starts the process and supervises it in the background. It returns
// an error (wrapping ErrStartFailed and the cause) if this first start
// fails; the state is then Failed and Done is closed. Later start failures,
// on restart, go through the restart policy instead. ctx bounds only the
// start itself, not the life of the process.
func (s *Supervisor) Start(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.stopping:
		s.mu.Unlock()
		return fmt.Errorf("exec %q: %w", s.cfg.Name, ErrStopped)
	case s.started:
		s.mu.Unlock()
		return fmt.Errorf("exec %q: %w", s.cfg.Name, ErrAlreadyStarted)
	}
	s.started = true
	s.setStateLocked(StateStarting, "")
	s.mu.Unlock()

	fail := func(err error) error {
		s.mu.Lock()
		s.setStateLocked(StateFailed, "start: "+err.Error())
		s.mu.Unlock()
		s.log.Error("process failed to start", "err", err)
		close(s.done)
		return fmt.Errorf("exec %q: %w: %w", s.cfg.Name, ErrStartFailed, err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if err := s.openLogs(); err != nil {
		return fail(err)
	}
	p, err := s.spawn()
	if err != nil {
		s.closeLogs()
		return fail(err)
	}
	s.mu.Lock()
	s.status.PID = p.appPID
	s.setStateLocked(StateRunning, "")
	s.mu.Unlock()
	go s.supervise(p)
	return nil
}

// HoldUntil bounds the process by deadline: its guard SIGKILLs the whole
// process group when deadline passes, unless HoldUntil moved it later
// first. The guard is a separate process that needs nothing from this one
// to do so: the process stops by its deadline even when the agent is
// frozen or starved and cannot stop it. The zero time removes the bound
// (the default, for instances that hold no lease).
//
// The deadline applies to the current run and to every later one: a
// restart gets the latest deadline, and no run is started once it has
// passed (the supervisor waits, in state Restarting, for a deadline in the
// future or for Stop; a first Start fails with ErrDeadlinePassed). A run
// the guard killed at its deadline is not the process's failure, so it
// does not count against the restart policy. HoldUntil may be called
// before Start, at any time, and from any goroutine.
func (s *Supervisor) HoldUntil(deadline time.Time) {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	s.mu.Lock()
	s.hold = deadline
	p := s.cur
	s.mu.Unlock()
	select {
	case s.holdSet <- struct{}{}:
	default:
	}
	if p != nil {
		if err := p.hold(deadline); err != nil {
			s.log.Error("exec guard did not take the new deadline; it keeps the previous one", "err", err)
		}
	}
}

// holdPassed reports the hold deadline if it has passed.
func (s *Supervisor) holdPassed() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hold, !s.hold.IsZero() && !time.Now().Before(s.hold)
}

// Stop ends the process: KillSignal to its process group, then, after
// KillTimeout or as soon as ctx ends, SIGKILL to the group. It returns when
// the process has been reaped and the supervisor is done, so even a
// cancelled ctx does not make it return early: SIGKILL cannot be ignored,
// and returning while the process might still run would let a caller start
// a second copy. No restart happens after Stop is called. Stop is
// idempotent and may be called concurrently; it returns nil also when the
// supervisor had already failed (the state then stays Failed).
func (s *Supervisor) Stop(ctx context.Context) error {
	s.mu.Lock()
	if !s.stopping {
		s.stopping = true
		close(s.stopCh)
	}
	if !s.started {
		// Never started: finish right here, and make Start refuse.
		s.started = true
		s.setStateLocked(StateStopped, "stopped before start")
		close(s.done)
	}
	s.mu.Unlock()

	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
	}
	s.killed.Do(func() { close(s.killNow) })
	<-s.done
	return nil
}

// openLogs creates the log directory and opens both log files.
func (s *Supervisor) openLogs() error {
	dir := s.cfg.LogDir
	if err := os.MkdirAll(dir, logDirMode); err != nil {
		return fmt.Errorf("log dir: %w", err)
	}
	if s.cfg.Dir == "" && s.cred != nil && s.cred.sys != nil {
		// The log dir is also the working dir. Give the app's group access
		// so that it can chdir there (0750: enter and read, not write: the
		// app must not tamper with its own logs). Owner stays the agent.
		if err := os.Chown(dir, -1, int(s.cred.gid)); err != nil {
			return fmt.Errorf("log dir: %w", err)
		}
	}
	out, err := openLogFile(logPath(dir, "stdout"), s.cfg.MaxLogBytes, s.cfg.MaxLogFiles)
	if err != nil {
		return err
	}
	errOut, err := openLogFile(logPath(dir, "stderr"), s.cfg.MaxLogBytes, s.cfg.MaxLogFiles)
	if err != nil {
		out.Close()
		return err
	}
	s.stdout, s.stderr = out, errOut
	return nil
}

func (s *Supervisor) closeLogs() {
	for _, l := range []*logFile{s.stdout, s.stderr} {
		if err := l.Close(); err != nil {
			s.log.Warn("closing log file", "path", l.path, "err", err)
		}
	}
}

// spawn starts one run of the command, looked up in the child's PATH,
// under a guard holding the latest deadline. It refuses once the deadline
// has passed: the lease is gone, and another node may run the app already.
func (s *Supervisor) spawn() (*proc, error) {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	hold, passed := s.holdPassed()
	if passed {
		return nil, fmt.Errorf("%w %s ago", ErrDeadlinePassed, time.Since(hold).Round(time.Millisecond))
	}
	env, pathEnv := childEnv(s.cfg.Env, s.cred)
	path, err := lookPath(s.cfg.Command, pathEnv)
	if err != nil {
		return nil, err
	}
	dir := s.cfg.Dir
	if dir == "" {
		dir = s.cfg.LogDir
	}
	var sysCred *syscall.Credential
	if s.cred != nil {
		sysCred = s.cred.sys
	}
	p, err := spawn(spawnSpec{
		name:   s.cfg.Name,
		hold:   hold,
		path:   path,
		args:   append([]string{s.cfg.Command}, s.cfg.Args...),
		env:    env,
		dir:    dir,
		cred:   sysCred,
		stdout: s.stdout,
		stderr: s.stderr,
		log:    s.log,
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cur = p
	s.mu.Unlock()
	attrs := []any{"pid", p.appPID, "guard_pid", p.pid, "command", path, "args", s.cfg.Args, "dir", dir, "env_keys", envKeys(s.cfg.Env)}
	if s.cred != nil {
		attrs = append(attrs, "user", s.cred.name)
	}
	if !hold.IsZero() {
		attrs = append(attrs, "deadline_in", time.Until(hold).Round(time.Millisecond))
	}
	s.log.Info("process started", attrs...)
	return p, nil
}
