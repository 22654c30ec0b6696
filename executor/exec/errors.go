//go:build linux

package exec

import "errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrInvalidConfig: New was given a Config that cannot work (empty
	// Command or LogDir, negative limits, unknown restart mode, bad env key).
	ErrInvalidConfig = errors.New("exec: invalid config")
	// ErrUnknownSignal: Config.KillSignal is not a signal name we know.
	ErrUnknownSignal = errors.New("exec: unknown signal")
	// ErrUnknownUser: Config.User names no user on this host.
	ErrUnknownUser = errors.New("exec: unknown user")
	// ErrStartFailed: the first start of the process failed (command not
	// found, not executable, bad working directory, log dir not writable...).
	// The underlying error is wrapped too.
	ErrStartFailed = errors.New("exec: start failed")
	// ErrAlreadyStarted: Start was called twice.
	ErrAlreadyStarted = errors.New("exec: already started")
	// ErrStopped: Start was called after Stop.
	ErrStopped = errors.New("exec: supervisor stopped")
	// ErrInvalidStream: Tail or Follow was asked for a stream other than
	// "stdout" or "stderr".
	ErrInvalidStream = errors.New("exec: invalid log stream")
)
