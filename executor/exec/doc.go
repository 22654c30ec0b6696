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
// Each run is started under a small guard process: the supervisor
// re-executes its own binary, and this package's init turns that copy into
// the guard (so any binary importing the package can do it). The guard
// starts the command as its child in the same process group and reaps it,
// and holds the deadline set by [Supervisor.HoldUntil] on CLOCK_BOOTTIME:
// when it passes, or when the supervising process dies, the guard SIGKILLs
// the group. A lease holder's process thus stops by its lease deadline even
// when the agent is frozen or starved and cannot stop it (see guard.go).
//
// [Tail] and [Follow] read those log files back, across rotations, for
// `gcl app logs`.
//
// The package is Linux-only: it relies on Pdeathsig, process groups,
// waitid(2), timerfd on CLOCK_BOOTTIME and /proc/self/exe.
package exec
