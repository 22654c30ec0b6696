//go:build linux

package exec

import "time"

// State is the supervisor's lifecycle state.
type State string

// States. Failed and Stopped are final.
const (
	// StateNew: created by New, Start not called yet.
	StateNew        State = "new"
	StateStarting   State = "starting"
	StateRunning    State = "running"
	StateRestarting State = "restarting"
	StateFailed     State = "failed"
	StateStopped    State = "stopped"
)

// Final reports whether no further state change will happen.
func (s State) Final() bool { return s == StateFailed || s == StateStopped }

// Status is a snapshot of the supervisor.
type Status struct {
	State State
	// PID of the running process; 0 when none runs.
	PID int
	// Restarts counts restart attempts since Start.
	Restarts int
	// ExitCode of the last exit; -1 if it was killed by a signal.
	ExitCode int
	// Reason says, for people, why the state was entered: the last exit
	// ("exited with code 3", "killed by signal SIGSEGV"), a start error, or
	// why the supervisor gave up.
	Reason string
	// Since is when State was entered.
	Since time.Time
}

// updatesBuffer is the capacity of the Updates channel.
const updatesBuffer = 16

// setStateLocked enters a new state and publishes it. Caller holds s.mu,
// which also makes it the only sender on s.updates.
func (s *Supervisor) setStateLocked(state State, reason string) {
	s.status.State = state
	s.status.Reason = reason
	s.status.Since = time.Now()
	if state != StateRunning {
		s.status.PID = 0
	}
	st := s.status
	// Never block the supervisor on a slow reader: when the buffer is full,
	// drop the oldest undelivered update and retry, so the reader always
	// ends with the latest state. Only we send (under s.mu), so the loop
	// ends after at most one drop; the reader may also empty the buffer
	// between our attempts, which only helps.
	for {
		select {
		case s.updates <- st:
			return
		default:
		}
		select {
		case <-s.updates:
		default:
		}
	}
}
