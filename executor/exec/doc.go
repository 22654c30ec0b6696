//go:build linux

// Package exec supervises one OS process per app instance: the gcl agent's
// "exec" backend.
//
// A [Supervisor] starts the configured command in its own process group,
// with a minimal environment, optionally as another user, and with its
// stdout and stderr copied into size-rotated files in a log directory. When
// the process exits without having been asked to (exit code 0 included), the
// [RestartPolicy] decides whether and when it is started again. [Supervisor.Stop]
// signals the whole group, escalates to SIGKILL after a timeout, and waits
// until the process has been reaped.
//
// [Tail] and [Follow] read those log files back, across rotations, for
// `gcl app logs`.
//
// The package is Linux-only: it relies on Pdeathsig, process groups and
// waitid(2).
package exec
