//go:build linux

// Package boottime is the clock of the deadline guards (executor/exec,
// network/vip, executor/systemd): a lease's stop-by time converted to
// CLOCK_BOOTTIME, which keeps counting while the machine is suspended or
// its processes are frozen, so that a guard's deadline is never stretched
// by the very pause it guards against; and a timerfd on that clock.
package boottime

import (
	"math"
	"time"

	"golang.org/x/sys/unix"
)

// Now reads CLOCK_BOOTTIME in nanoseconds.
func Now() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		// Cannot happen on any kernel we run on (BOOTTIME is from 2.6.39).
		panic("boottime: clock_gettime(CLOCK_BOOTTIME): " + err.Error())
	}
	return ts.Nano()
}

// Deadline converts a deadline to absolute CLOCK_BOOTTIME nanoseconds; the
// zero time is 0 (no deadline), any other time at least 1.
//
// It reads CLOCK_BOOTTIME first and the time left until the deadline
// second. Whatever delay falls between the two reads (preemption, a page
// fault, a suspend) shrinks the time left without advancing the boot
// reading, so the result can only come out earlier than the true
// deadline, never later. The deadline's own clock is Go's monotonic one,
// which stops during a suspend while BOOTTIME counts on: after a suspend
// the guard's deadline is again the earlier of the two. Earlier is the
// safe side: a guard acts a little sooner, never after the lease.
func Deadline(deadline time.Time) int64 {
	if deadline.IsZero() {
		return 0
	}
	boot := Now()
	left := time.Until(deadline)
	if left > 0 && boot > math.MaxInt64-int64(left) {
		return math.MaxInt64 // so far ahead it cannot come (time.Until saturates)
	}
	return max(boot+int64(left), 1) // 0 would mean none: a past deadline stays one
}

// NewTimer makes a timerfd on CLOCK_BOOTTIME with extra flags
// (unix.TFD_NONBLOCK, say); it is close-on-exec.
func NewTimer(flags int) (int, error) {
	return unix.TimerfdCreate(unix.CLOCK_BOOTTIME, unix.TFD_CLOEXEC|flags)
}

// Arm sets the timer to fire at the absolute BOOTTIME deadline ns, or
// disarms it for 0.
func Arm(tfd int, ns int64) error {
	var its unix.ItimerSpec
	if ns != 0 {
		its.Value = unix.NsecToTimespec(ns)
	}
	return unix.TimerfdSettime(tfd, unix.TFD_TIMER_ABSTIME, &its, nil)
}
