//go:build linux

package exec

import (
	"errors"
	"syscall"
	"time"
)

// supervise is the supervision goroutine: it owns the running process
// from Start until the supervisor is done. All restarts, stops and final
// state changes happen here, so they cannot interleave.
func (s *Supervisor) supervise(p *proc) {
	defer close(s.done)
	defer s.closeLogs() // runs before close(done): Done means logs are complete

	r := &restarter{policy: s.cfg.Restart}
	var reason string
	// byDeadline: the last run was ended, or the last start refused, by the
	// hold deadline. That is not the process's failure (the agent did not
	// renew in time), so the restart policy is not asked and its budget not
	// spent; the next start waits for a deadline in the future instead. A
	// frozen agent that thaws must not find its instance failed for good.
	var byDeadline bool
	for {
		var ran time.Duration
		if p != nil {
			stopped := s.wait(p)
			// Let the output of this run reach the log before anyone
			// sees the state change (and perhaps tails the log).
			p.waitOutput(s.log)
			desc, code := p.exitDesc()
			ran = p.endedAt.Sub(p.started)
			s.mu.Lock()
			s.status.ExitCode = code
			s.cur = nil
			s.mu.Unlock()
			if stopped {
				s.finish(StateStopped, "stopped: "+desc)
				s.log.Info("process stopped", "pid", p.appPID, "reason", desc)
				return
			}
			reason = desc
			byDeadline = p.deadlineKilled()
			if byDeadline {
				s.log.Error("process group killed by its guard: the deadline passed without being renewed", "pid", p.appPID, "ran", ran.Round(time.Millisecond))
			} else {
				s.log.Warn("process exited unexpectedly", "pid", p.appPID, "reason", desc, "ran", ran.Round(time.Millisecond))
			}
		}

		if !byDeadline {
			wait, ok, why := r.next(time.Now(), ran)
			if !ok {
				s.finish(StateFailed, reason+"; "+why)
				s.log.Error("process failed", "reason", reason, "policy", why)
				return
			}
			s.mu.Lock()
			s.setStateLocked(StateRestarting, reason)
			s.mu.Unlock()
			s.log.Info("restarting process", "in", wait.Round(time.Millisecond), "reason", reason)
			if !s.sleep(wait) {
				s.finish(StateStopped, "stopped while waiting to restart; last: "+reason)
				s.log.Info("stopped while waiting to restart")
				return
			}
		} else {
			s.mu.Lock()
			s.setStateLocked(StateRestarting, reason)
			s.mu.Unlock()
		}
		if !s.awaitHold(reason) {
			s.finish(StateStopped, "stopped while waiting to restart; last: "+reason)
			s.log.Info("stopped while waiting for a deadline in the future")
			return
		}

		r.record(time.Now())
		s.mu.Lock()
		s.status.Restarts++
		s.mu.Unlock()
		var err error
		if p, err = s.spawn(); err != nil {
			// Treated like an exit: the policy decides whether to try again
			// (the binary may be back after a deploy finishes). A deadline
			// that passed meanwhile waits for a new one instead.
			reason = "start: " + err.Error()
			byDeadline = errors.Is(err, ErrDeadlinePassed)
			s.log.Error("process failed to restart", "err", err)
			continue
		}
		byDeadline = false
		s.mu.Lock()
		s.status.PID = p.appPID
		s.setStateLocked(StateRunning, "")
		s.mu.Unlock()
	}
}

// awaitHold returns true at once unless the hold deadline has passed; then
// it waits, in state Restarting, until HoldUntil sets a deadline in the
// future (true) or Stop is called (false). A run is never started past its
// deadline: the lease it stood for is gone.
func (s *Supervisor) awaitHold(reason string) bool {
	waiting := false
	for {
		if _, passed := s.holdPassed(); !passed {
			return true
		}
		if !waiting {
			waiting = true
			if reason != deadlineReason {
				s.mu.Lock()
				s.setStateLocked(StateRestarting, reason+"; not restarting: lease deadline passed")
				s.mu.Unlock()
			}
			s.log.Warn("not restarting the process: its deadline has passed; waiting for a new one", "reason", reason)
		}
		select {
		case <-s.stopCh:
			return false
		case <-s.holdSet:
		}
	}
}

// finish enters a final state.
func (s *Supervisor) finish(state State, reason string) {
	s.mu.Lock()
	s.setStateLocked(state, reason)
	s.mu.Unlock()
}

// wait blocks until the run ends, and reports whether it ended because of
// Stop. On Stop it sends KillSignal to the group, then SIGKILL after
// KillTimeout or when a Stop's ctx ends, and waits for the reap.
func (s *Supervisor) wait(p *proc) (stopped bool) {
	select {
	case <-p.exited:
		// An exit that races Stop counts as stopped: no restart after Stop.
		select {
		case <-s.stopCh:
			return true
		default:
			return false
		}
	case <-s.stopCh:
	}

	s.log.Info("stopping process", "pid", p.appPID, "signal", signalName(s.sig), "timeout", s.cfg.KillTimeout)
	if err := p.signalGroup(s.sig); err != nil {
		s.log.Warn("signalling process group", "err", err)
	}
	t := time.NewTimer(s.cfg.KillTimeout)
	defer t.Stop()
	select {
	case <-p.exited:
		return true
	case <-t.C:
		s.log.Warn("process did not exit in time; killing its group", "pid", p.appPID, "timeout", s.cfg.KillTimeout)
	case <-s.killNow:
		s.log.Warn("stop deadline reached; killing the process group", "pid", p.appPID)
	}
	if err := p.signalGroup(syscall.SIGKILL); err != nil {
		s.log.Error("killing process group", "err", err)
	}
	// SIGKILL cannot be caught; the reap follows promptly (unless the
	// process is stuck in the kernel, where nothing would help).
	<-p.exited
	return true
}

// sleep waits d, or returns false as soon as Stop is called.
func (s *Supervisor) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.stopCh:
		return false
	case <-t.C:
	}
	// Both may be ready; select picks at random, so look again.
	select {
	case <-s.stopCh:
		return false
	default:
		return true
	}
}
