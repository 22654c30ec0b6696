//go:build linux

package exec

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrNotRunning: Signal found no running process.
var ErrNotRunning = errors.New("exec: no process running")

// Signal sends the named signal (e.g. "SIGHUP") to the running process's
// group, to tell it something changed (the agent's ring instances reload
// their partitions on SIGHUP). It returns ErrNotRunning when no process runs.
func (s *Supervisor) Signal(name string) error {
	sig, err := parseSignal(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The PID is cleared when the supervisor learns of an exit, which is
	// just after the reap; in that window the group is gone and the kill
	// fails with ESRCH (PID reuse within it is not a practical concern).
	if s.status.State != StateRunning || s.status.PID == 0 {
		return fmt.Errorf("exec %q: %w", s.cfg.Name, ErrNotRunning)
	}
	if err := syscall.Kill(-s.status.PID, sig); err != nil {
		return fmt.Errorf("exec %q: signal %s: %w", s.cfg.Name, name, err)
	}
	return nil
}
