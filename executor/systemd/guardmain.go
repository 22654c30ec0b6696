//go:build linux

package systemd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/ozanturksever/go-cluster/internal/boottime"
	"github.com/ozanturksever/go-cluster/internal/guardproc"
)

// This file is the unit guard process itself (see guard.go for why and how
// it is started). It runs in place of the program, from this package's
// init, and exits without returning to it.

// Timing of the guard's stop.
const (
	// guardDialTimeout bounds the guard's first connection to systemd,
	// which it needs to be ready, and each later reconnection.
	guardDialTimeout = 10 * time.Second
	// guardStopBudget bounds how long the guard keeps asking systemd to
	// stop the unit. All that time it also kills whatever runs in the
	// unit's cgroup again and again, so that Restart= cannot bring the
	// unit back while systemd does not answer; after it, it gives up.
	guardStopBudget = 20 * time.Second
	// guardCallTimeout bounds one call to systemd. A call that times out
	// is sent again on the same connection: systemd may have left it
	// unprocessed until more input arrives (see pingUntilAnswered).
	guardCallTimeout = time.Second
	// guardRekill is how often the cgroup is killed again while the stop
	// is not in systemd's hands yet.
	guardRekill = 20 * time.Millisecond
)

func init() {
	if guardproc.IsGuard(guardEnv, guardEnvValue, guardArg0) {
		os.Exit(guardMain(os.Args[1:]))
	}
}

// guardOutcome is why the guard's watch ended.
type guardOutcome int

const (
	outcomeDisarmed guardOutcome = iota // disarm, then EOF: leave the unit
	outcomeDeadline                     // the deadline passed: stop it
	outcomeOrphaned                     // EOF without disarm, or the pipe broke: stop it
)

// guardMain is the guard: arguments are the unit and the endpoints of its
// manager (see guard.go). It writes guardReady to stdout once it can act
// and nothing else; stderr gets a line only when something failed.
func guardMain(args []string) int {
	// Ignored, not caught: the guard must outlive whatever takes its agent
	// down (a service manager's SIGTERM to every process of the agent's
	// unit, a hangup), and then act on the EOF. SIGPIPE: a write to a
	// stderr whose reader died with the agent must fail, not kill the
	// guard before it stopped the unit.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE)
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "%s: "+format+"\n", append([]any{guardArg0}, a...)...)
		return guardExitSetup
	}
	unit, eps, err := parseGuardArgs(args)
	if err != nil {
		return fail("%v", err)
	}
	// The deadline timer is a timerfd on CLOCK_BOOTTIME with an absolute
	// expiry, polled together with the control pipe. BOOTTIME keeps
	// counting through a system suspend, unlike the monotonic clock Go's
	// timers and poll(2) timeouts use: a suspended machine resumes with
	// the deadline past, and the unit stops at once instead of one whole
	// lease later. An absolute expiry leaves no relative sleep to
	// recompute; and one poll waits for both the timer and the pipe.
	tfd, err := boottime.NewTimer(unix.TFD_NONBLOCK)
	if err != nil {
		return fail("timerfd: %v", err)
	}
	// Connected before it reports ready: the stop goes out at the deadline
	// without a dial and an authentication first, which narrows the time
	// in which Restart= could start the unit again after the kill.
	ctx, cancel := context.WithTimeout(context.Background(), guardDialTimeout)
	conn, err := dialAny(ctx, eps)
	cancel()
	if err != nil {
		return fail("connect to systemd: %v", err)
	}
	if err := guardproc.WriteAll(1, []byte{guardReady}); err != nil {
		return fail("report ready: %v", err)
	}
	outcome, cgroup := guardWatch(guardCtlFD, tfd)
	if outcome == outcomeDisarmed {
		_ = conn.Close()
		return guardExitDisarmed
	}
	if err := guardStop(unit, cgroup, conn, eps); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %s: %v\n", guardArg0, unit, err)
		return guardExitFailed
	}
	if outcome == outcomeDeadline {
		return guardExitDeadline
	}
	return guardExitOrphaned
}

func parseGuardArgs(args []string) (string, []endpoint, error) {
	if len(args) < 2 {
		return "", nil, fmt.Errorf("usage: %s UNIT bus:ADDRESS|peer:ADDRESS...", guardArg0)
	}
	unit, err := normalize(args[0])
	if err != nil {
		return "", nil, err
	}
	var eps []endpoint
	for _, a := range args[1:] {
		kind, addr, ok := strings.Cut(a, ":")
		if !ok || addr == "" || (kind != "bus" && kind != "peer") {
			return "", nil, fmt.Errorf("bad endpoint %q", a)
		}
		eps = append(eps, endpoint{addr: addr, bus: kind == "bus"})
	}
	return unit, eps, nil
}

// guardWatch follows the control pipe and the deadline timer until one of
// them ends the guard's job. It returns the outcome and the last cgroup
// the agent passed.
func guardWatch(ctl, tfd int) (guardOutcome, string) {
	fds := []unix.PollFd{{Fd: int32(ctl), Events: unix.POLLIN}, {Fd: int32(tfd), Events: unix.POLLIN}}
	var (
		// Room for an incomplete message (below PIPE_BUF) and a full read.
		buf      [2 * 4096]byte
		n        int // bytes of an incomplete message at buf[:n]
		deadline int64
		armed    bool
		disarmed bool
		cgroup   string
	)
	for {
		if _, err := unix.Poll(fds, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			return outcomeOrphaned, cgroup // cannot watch any more: fail safe
		}
		if fds[0].Revents != 0 {
			r, err := unix.Read(ctl, buf[n:])
			switch {
			case err == unix.EINTR || err == unix.EAGAIN:
			case err != nil || r == 0:
				if disarmed {
					return outcomeDisarmed, cgroup
				}
				return outcomeOrphaned, cgroup
			default:
				n += r
				i := 0
			parse:
				for i+guardMsgLen <= n {
					v := binary.LittleEndian.Uint64(buf[i+1:])
					switch buf[i] {
					case guardMsgDeadline:
						deadline = int64(v)
						armed, disarmed = true, false
					case guardMsgDisarm:
						armed, disarmed = false, true
					case guardMsgCgroup:
						if v > guardCgroupMax {
							return outcomeOrphaned, cgroup // not our protocol: fail safe
						}
						if i+guardMsgLen+int(v) > n {
							break parse // the path is still to come
						}
						cgroup = string(buf[i+guardMsgLen : i+guardMsgLen+int(v)])
						i += int(v)
					default:
						return outcomeOrphaned, cgroup // not our protocol: fail safe
					}
					i += guardMsgLen
				}
				n = copy(buf[:], buf[i:n])
				// A deadline the agent sent counts even if it is read only
				// after the previous one passed: it is a valid bound when
				// sent (see boottime.Deadline). A deadline already past
				// makes the check below fire at once.
				var at int64
				if armed {
					at = max(deadline, 1) // 0 would disarm the timer
				}
				if err := boottime.Arm(tfd, at); err != nil {
					return outcomeOrphaned, cgroup
				}
			}
		}
		// Consume an expiry so that the timer does not stay readable; the
		// decision rests on the clock, not on the timer's state, which a
		// deadline set in this round has just reset.
		var exp [8]byte
		_, _ = unix.Read(tfd, exp[:])
		if armed && boottime.Now() >= deadline {
			return outcomeDeadline, cgroup
		}
	}
}

// guardStop ends the unit: its processes die at once and systemd does not
// start them again.
//
// Two things do it, and how they overlap matters:
//
//  1. SIGKILL to the unit's cgroup (killCgroup): every process of the
//     unit dies at once, including those that fork meanwhile, without
//     D-Bus, without systemd having to run, and without the unit's
//     ExecStop= and stop timeout, which a term out of time has no room
//     for. This is what keeps the one-instance rule, so nothing may delay
//     it.
//  2. StopUnit ("replace") to systemd, then KillUnit (SIGKILL, all
//     processes): without a stop job systemd takes the killed unit for
//     crashed and Restart= may start it again; with one queued it never
//     restarts it ("stop job pending, skipping automatic restart").
//     KillUnit also reaches what a missing or foreign cgroup path kept
//     the first step from (no cgroup yet while the start job ran).
//
// The stop request (2) goes out first, on its own goroutine, which runs
// until it waits for systemd's answer; the kill (1) follows at once,
// without waiting for that answer. So the request usually reaches systemd before it learns
// of the deaths, and the unit is not even scheduled for a restart; yet a
// systemd that is slow or does not answer at all (stopped, hung, its bus
// gone) delays the kill by nothing. A restart that begins before the stop
// job is queued is undone by killing the cgroup again, every guardRekill
// until systemd reports the unit down, and once more after that.
func guardStop(unit, cgroup string, conn *dbus.Conn, eps []endpoint) error {
	stopped := make(chan error, 1)
	go func() { stopped <- stopViaSystemd(unit, conn, eps) }()
	// Let it write the request: with GOMAXPROCS=1 it would run only after
	// the kill otherwise. It yields back as soon as it blocks (the socket
	// write parks in the netpoller when the socket is full).
	runtime.Gosched()

	var dir string
	var kerr error
	if cgroup != "" {
		dir, kerr = cgroupDir(cgroup)
	}
	if kerr == nil {
		kerr = killCgroup(dir)
	}
	if kerr != nil {
		fmt.Fprintf(os.Stderr, "%s: %s: kill cgroup %s: %v (left to systemd)\n", guardArg0, unit, cgroup, kerr)
	}
	tick := time.NewTicker(guardRekill)
	defer tick.Stop()
	for {
		select {
		case err := <-stopped:
			_ = killCgroup(dir)
			return err
		case <-tick.C:
			_ = killCgroup(dir)
		}
	}
}

// stopViaSystemd has systemd stop the unit, kills what is left of it and
// waits until systemd reports it down, retrying for guardStopBudget. conn
// is the guard's connection, made when it started; a broken one is
// replaced.
//
// Waiting for the unit to be down matters: guardStop kills the cgroup
// again until this returns, and a stop job that systemd has queued but not
// yet run can still spawn the unit's ExecStop= processes after our
// KillUnit. Once the unit is inactive or failed, nothing of it runs and
// nothing restarts it: Restart= acts only on a running unit's exit.
func stopViaSystemd(unit string, conn *dbus.Conn, eps []endpoint) error {
	c := &guardConn{conn: conn, eps: eps, end: time.Now().Add(guardStopBudget)}
	defer c.close()
	err := c.retry(func() error {
		err := c.call("StopUnit", unit, "replace")
		if dbusErrorName(err) == dbusErrNoSuchUnit {
			return nil // not loaded: nothing runs
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("stop job: %w", err)
	}
	// SIGKILL to whatever the unit still runs: the stop job would wait for
	// ExecStop= and the stop timeout otherwise. It fails when nothing is
	// left, which is fine.
	_ = c.call("KillUnit", unit, "all", int32(syscall.SIGKILL))
	var state string
	err = c.retry(func() error {
		var err error
		if state, err = c.activeState(unit); err != nil {
			return err
		}
		if state == "inactive" || state == "failed" {
			return nil
		}
		return errNotDownYet
	})
	if err != nil {
		return fmt.Errorf("waiting for the unit to go down (%s): %w", state, err)
	}
	return nil
}

var errNotDownYet = errors.New("not down yet")

// guardConn is the guard's connection to systemd while it stops the unit.
type guardConn struct {
	conn *dbus.Conn
	eps  []endpoint
	end  time.Time // the stop budget's end
}

// retry calls f until it succeeds or the budget is spent, reconnecting
// when the connection broke. A call that timed out is sent again on the
// same connection: systemd may have left it unprocessed until more input
// arrives (see pingUntilAnswered), and a resent call is such input.
func (c *guardConn) retry(f func() error) error {
	backoff := guardRekill
	for {
		err := f()
		if err == nil {
			return nil
		}
		if c.conn != nil && isConnError(err) {
			_ = c.conn.Close()
			c.conn = nil
		}
		if time.Now().Add(backoff).After(c.end) {
			return err
		}
		time.Sleep(backoff) // retry back-off
		if !errors.Is(err, errNotDownYet) {
			backoff = min(backoff*2, time.Second)
		}
	}
}

// call calls a method of systemd's manager.
func (c *guardConn) call(method string, args ...any) error {
	ctx, cancel, err := c.ready()
	if err != nil {
		return err
	}
	defer cancel()
	return c.conn.Object(systemdDest, systemdPath).CallWithContext(ctx, managerIface+"."+method, 0, args...).Err
}

// activeState reads the unit's ActiveState.
func (c *guardConn) activeState(unit string) (string, error) {
	ctx, cancel, err := c.ready()
	if err != nil {
		return "", err
	}
	defer cancel()
	var v dbus.Variant
	err = c.conn.Object(systemdDest, unitPath(unit)).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, unitIface, "ActiveState").Store(&v)
	s, _ := v.Value().(string)
	return s, err
}

// ready connects when there is no connection and returns the context for
// one call: bounded by guardCallTimeout and the budget.
func (c *guardConn) ready() (context.Context, context.CancelFunc, error) {
	if c.conn == nil || !c.conn.Connected() {
		ctx, cancel := context.WithDeadline(context.Background(), earliest(c.end, time.Now().Add(guardDialTimeout)))
		conn, err := dialAny(ctx, c.eps)
		cancel()
		if err != nil {
			return nil, nil, err
		}
		c.conn = conn
	}
	ctx, cancel := context.WithDeadline(context.Background(), earliest(c.end, time.Now().Add(guardCallTimeout)))
	return ctx, cancel, nil
}

func (c *guardConn) close() {
	if c.conn != nil {
		_ = c.conn.Close()
	}
}

// dialAny connects to the first endpoint that answers, giving each an
// equal share of the time left, so that a bus that hangs leaves time for
// systemd's private socket.
func dialAny(ctx context.Context, eps []endpoint) (*dbus.Conn, error) {
	var errs []error
	for i, ep := range eps {
		ectx, cancel := ctx, context.CancelFunc(func() {})
		if d, ok := ctx.Deadline(); ok && i < len(eps)-1 {
			ectx, cancel = context.WithTimeout(ctx, time.Until(d)/time.Duration(len(eps)-i))
		}
		c, err := dialEndpoint(ectx, ep)
		cancel()
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep.addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
