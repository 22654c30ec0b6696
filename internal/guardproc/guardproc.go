//go:build linux

// Package guardproc is the process plumbing the deadline guards share
// (network/vip, executor/systemd; executor/exec for the marker): a guard is
// the program's own binary re-executed with a marker, recognised by a
// package init, which then runs the guard instead of the program.
package guardproc

import (
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// IsGuard reports whether this process was started as the guard marked by
// env=value and argv[0] arg0. The marker is removed from the environment
// either way: it must reach nobody else (the program, should it be run
// with it by mistake, nor anything it starts). argv[0] is checked too, so
// that a marker leaking into some other environment cannot turn a program
// into a guard by accident.
func IsGuard(env, value, arg0 string) bool {
	v, ok := syscall.Getenv(env)
	if !ok {
		return false
	}
	_ = os.Unsetenv(env)
	return v == value && len(os.Args) > 0 && os.Args[0] == arg0
}

// WriteAll writes b to fd, retrying short and interrupted writes; the
// guard writes with raw syscalls, outside Go's poller.
func WriteAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// WaitOrKill waits up to d for the guard started as cmd to exit (done is
// closed once it was reaped), then kills it and waits; it reports whether
// the guard exited by itself. d <= 0 kills at once.
func WaitOrKill(cmd *exec.Cmd, done <-chan struct{}, d time.Duration) bool {
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-done:
			return true
		case <-t.C:
		}
	}
	_ = cmd.Process.Kill()
	<-done
	return false
}
