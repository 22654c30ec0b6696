//go:build linux

package systemd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ozanturksever/go-cluster/internal/boottime"
	"github.com/ozanturksever/go-cluster/internal/guardproc"
)

// A unit guard is a small process that stops a unit at its holder's lease
// deadline on its own, so that a backend unit cannot outlive the lease
// term while the agent is frozen (SIGSTOP, starved of CPU) and cannot stop
// it itself. Binding the unit to the agent's unit (BindToAgent) only helps
// when the agent dies, not when it hangs; the guard covers both.
//
// The agent re-executes its own binary (/proc/self/exe) with guardEnv set
// and argv[0] guardArg0; this package's init then runs guardMain instead
// of the program (guardmain.go). Every binary that imports the package can
// act as a guard, test binaries included, and no second executable ships.
// Arguments: the unit, then the endpoints to reach its manager at, each
// "bus:ADDRESS" or "peer:ADDRESS" (systemd's private socket).
//
// Protocol, over one pipe from the agent to the guard (guard fd 3):
// messages of a kind byte and a little-endian uint64:
//
//   - 'D' and an absolute CLOCK_BOOTTIME deadline in nanoseconds: stop the
//     unit then unless a later message arrives first. The latest counts.
//   - 'C' and a length n, followed by n bytes: the unit's ControlGroup,
//     the cgroup the guard kills (see guardStop). Sent when known, since
//     a unit that is not running has none yet.
//   - 'X' (disarm): an orderly stop follows; do not stop the unit.
//
// EOF after a disarm: exit without touching the unit (the agent stopped
// it, and a later term on this node may start it again, which an old
// guard must never stop). EOF without one: the agent's process died or
// gave the guard up (Close) with the unit possibly running; stop it at
// once.
//
// The guard has no Pdeathsig on purpose: the agent's death is exactly when
// it has work to do, and it learns of it from EOF. It leads its own process
// group, so a signal to the agent's group (a terminal's ^C) does not reach
// it, and it ignores the usual termination signals (a service manager's
// SIGTERM to every process of the agent's unit), so that it does not die
// before it acted; it exits by itself right after the agent.
const (
	guardEnv      = "GCL_UNIT_GUARD" // the marker; only ever in the guard's own environment
	guardEnvValue = "1"
	guardArg0     = "gcl-unit-guard"
	guardCtlFD    = 3 // ExtraFiles[0]: the control pipe's read end

	guardMsgLen      = 9 // kind byte and uint64
	guardMsgDeadline = 'D'
	guardMsgCgroup   = 'C'
	guardMsgDisarm   = 'X'
	// guardCgroupMax bounds a ControlGroup message to PIPE_BUF, so that it
	// is written atomically: whole or not at all, never torn.
	guardCgroupMax = 4096 - guardMsgLen

	// guardReady is the byte the guard writes to its stdout once it can
	// act: it has a working connection to systemd. Guard waits for it, so
	// a guard that cannot work is an error of the call that started it.
	guardReady = 'R'

	// guardStartTimeout bounds the wait for a new guard to be ready: a fork
	// and exec of the binary, its runtime start and a connection to
	// systemd, which on a loaded machine (or under the race detector) can
	// take a while.
	guardStartTimeout = 15 * time.Second
	// guardStopTimeout bounds the wait for a disarmed guard to exit before
	// it is SIGKILLed: it must be gone before Disarm returns.
	guardStopTimeout = 2 * time.Second
)

// Guard exit codes: how the run ended, for the log of the agent that reaps
// it.
const (
	guardExitDisarmed = 0  // disarmed and closed: the unit was left alone
	guardExitSetup    = 1  // could not start (bad arguments, no connection to systemd)
	guardExitDeadline = 10 // the deadline passed: the unit was killed and stopped
	guardExitOrphaned = 11 // EOF without disarm: the unit was killed and stopped
	guardExitFailed   = 12 // it acted, but systemd did not take the stop job
)

// UnitGuard stops a unit at a deadline without the help of this process:
// see HoldUntil. Its methods are safe for concurrent use.
type UnitGuard struct {
	m    *Manager
	name string
	log  *slog.Logger
	args []string // the guard's arguments after argv[0]

	mu     sync.Mutex
	p      *guardProc // nil before the first start and after Disarm, StopNow or Close
	acting *guardProc // a guard StopNow stopped waiting for, still at work
	cgroup string     // the last ControlGroup the guard was given
	closed bool
}

// Guard prepares a guard for unit and starts its process: from now on, if
// this process dies, the unit is stopped at once. Give it the lease term's
// deadline with HoldUntil before the unit starts, and the unit's cgroup
// with Refresh once it runs; Disarm it after stopping the unit yourself.
//
// The guard reaches systemd the way this Manager does (the same socket or
// bus; for the system manager as root also systemd's private socket, in
// case the bus is what fails). It returns an error wrapping ErrGuard when
// the guard cannot start or cannot reach systemd.
func (m *Manager) Guard(ctx context.Context, unit string) (*UnitGuard, error) {
	name, err := normalize(unit)
	if err != nil {
		return nil, err
	}
	g, err := m.conn(ctx)
	if err != nil {
		return nil, withOp("guard "+name, err)
	}
	eps := []endpoint{g.ep}
	if m.cfg.target.kind == targetSystem && g.ep.addr != systemPrivateAddr && os.Geteuid() == 0 {
		eps = append(eps, endpoint{addr: systemPrivateAddr})
	}
	args := []string{name}
	for _, ep := range eps {
		kind := "peer:"
		if ep.bus {
			kind = "bus:"
		}
		args = append(args, kind+ep.addr)
	}
	cg, err := m.controlGroup(ctx, g, name)
	if err != nil {
		return nil, err
	}
	u := &UnitGuard{m: m, name: name, log: m.log.With("unit", name), args: args}
	if cg != "" {
		if err := u.checkCgroup(cg); err != nil {
			u.log.Warn("systemd: unit guard will stop the unit through systemd only", "err", err)
		} else {
			u.cgroup = cg
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.p, err = u.start(ctx); err != nil {
		return nil, err
	}
	return u, nil
}

// Unit is the name of the guarded unit.
func (u *UnitGuard) Unit() string { return u.name }

// HoldUntil lets the unit run until deadline and no longer: unless a later
// call (or Disarm) comes first, the guard process kills the unit's
// processes and has systemd stop it at the deadline, without any help from
// this process, which may be frozen by then. Call it with the lease term's
// deadline before the unit is started, and with every deadline a renewal
// brings.
//
// It only writes the deadline to the guard, without blocking: when the
// guard does not read (its pipe is full) the deadline is dropped and an
// error returned, which leaves the guard an earlier deadline, never a
// later one. A guard that has already acted (its deadline passed), or was
// disarmed, is replaced by a new one, which takes up to the time a new
// process needs to start and reach systemd.
func (u *UnitGuard) HoldUntil(deadline time.Time) error {
	if deadline.IsZero() {
		return fmt.Errorf("%w: %s: HoldUntil needs a deadline", ErrGuard, u.name)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return fmt.Errorf("%w: %s: use after Close", ErrGuard, u.name)
	}
	for attempt := 0; ; attempt++ {
		if u.p != nil && u.p.exited() {
			u.p.closeCtl()
			u.p = nil
		}
		if u.p == nil {
			p, err := u.start(context.Background())
			if err != nil {
				return err
			}
			u.p = p
		}
		err := u.p.send(guardMsgDeadline, uint64(boottime.Deadline(deadline)), nil)
		if errors.Is(err, unix.EPIPE) && attempt == 0 {
			// The guard has exited since we looked, having stopped the unit
			// at its deadline: reap it and start another.
			u.p.closeCtl()
			u.p.waitOrKill(guardStopTimeout)
			u.p = nil
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: %s: pass deadline: %w", ErrGuard, u.name, err)
		}
		return nil
	}
}

// Refresh reads the unit's cgroup (its ControlGroup property) and gives it
// to the guard, which then kills the unit's processes through the cgroup
// file system at its deadline, needing neither D-Bus nor systemd to
// answer. Call it once the unit has started (a unit that does not run has
// no cgroup). The cgroup stays the same through restarts of the unit.
//
// Until it has a cgroup the guard stops the unit through systemd only
// (StopUnit, then KillUnit with SIGKILL). An error means the guard has no
// (new) cgroup: it could not be read, or is not found in this process's
// mount namespace (systemd and this process see different cgroup trees).
func (u *UnitGuard) Refresh(ctx context.Context) error {
	g, err := u.m.conn(ctx)
	if err != nil {
		return withOp("guard "+u.name+": read cgroup", err)
	}
	cg, err := u.m.controlGroup(ctx, g, u.name)
	if err != nil || cg == "" {
		return err
	}
	if err := u.checkCgroup(cg); err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cgroup == cg {
		return nil
	}
	u.cgroup = cg
	if u.p == nil {
		return nil // the next guard started gets it
	}
	if err := u.p.send(guardMsgCgroup, uint64(len(cg)), []byte(cg)); err != nil {
		return fmt.Errorf("%w: %s: pass cgroup: %w", ErrGuard, u.name, err)
	}
	return nil
}

// checkCgroup makes sure the guard will find the cgroup cg.
func (u *UnitGuard) checkCgroup(cg string) error {
	if len(cg) > guardCgroupMax {
		return fmt.Errorf("%w: %s: cgroup path of %d bytes is too long", ErrGuard, u.name, len(cg))
	}
	dir, err := cgroupDir(cg)
	if err == nil {
		_, err = os.Stat(dir)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: cgroup %s: %w", ErrGuard, u.name, cg, err)
	}
	return nil
}

// Disarm stops the guard without letting it act: an orderly stop, after
// this process stopped the unit itself. The guard is gone when Disarm
// returns, so it can never stop a unit started after it; a guard that does
// not exit in time is SIGKILLed. A later HoldUntil starts a new guard.
func (u *UnitGuard) Disarm() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.endActing()
	p := u.p
	u.p = nil
	if p == nil {
		return nil
	}
	return p.stop(u.name)
}

// endActing kills a guard that StopNow left at work. u.mu held.
func (u *UnitGuard) endActing() {
	if u.acting != nil {
		u.acting.waitOrKill(0)
		u.acting = nil
	}
}

// StopNow has the guard stop the unit at once, as at its deadline, and
// waits until it has: the unit's processes are killed and systemd reports
// the unit down. For when this process tried to stop the unit itself and
// failed: the term is over either way. It returns early with ctx's error
// (the guard goes on by itself), and with an error when the guard could
// not have systemd stop the unit (its processes were killed regardless).
// Without a guard it does nothing. A later HoldUntil starts a new guard.
func (u *UnitGuard) StopNow(ctx context.Context) error {
	u.mu.Lock()
	p := u.p
	u.p = nil
	u.mu.Unlock()
	if p == nil {
		return nil
	}
	p.closeCtl() // EOF without a disarm: the guard acts at once
	select {
	case <-p.done:
	case <-ctx.Done():
		// Still at work (systemd slow to take the stop job): remembered,
		// so that it is ended before a new guard starts or on Disarm,
		// which both mean a new term of the unit that it must not stop.
		u.mu.Lock()
		if u.acting != nil {
			u.acting.waitOrKill(0)
		}
		u.acting = p
		u.mu.Unlock()
		return fmt.Errorf("%w: %s: waiting for the guard to stop the unit: %w", ErrGuard, u.name, ctx.Err())
	}
	switch code := p.cmd.ProcessState.ExitCode(); code {
	case guardExitOrphaned, guardExitDeadline:
		return nil
	default:
		return fmt.Errorf("%w: %s: guard ended with %v", ErrGuard, u.name, p.cmd.ProcessState)
	}
}

// Close gives the guard up without disarming it: nobody will feed it
// again, so it stops the unit at once, as if this process had died. It
// does not wait for the guard. Further calls fail.
func (u *UnitGuard) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = true
	if u.p != nil {
		u.p.closeCtl()
		u.p = nil
	}
	return nil
}

// guardProc is one running guard process.
type guardProc struct {
	cmd       *exec.Cmd
	w         int // the control pipe's write end, non-blocking
	closeOnce sync.Once
	done      chan struct{} // closed once the guard has exited and been reaped
	waitErr   error         // cmd.Wait's result, valid after done
}

// start starts a guard process, waits until it is ready (bounded by
// guardStartTimeout and ctx) and gives it the cgroup when there is one.
// u.mu held.
func (u *UnitGuard) start(ctx context.Context) (_ *guardProc, err error) {
	u.endActing()
	// O_CLOEXEC: no other child of this process (the units' own processes
	// are systemd's, but an exec backend is ours) may inherit the write
	// end, or the guard would not see EOF when this process dies.
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("%w: %s: control pipe: %w", ErrGuard, u.name, err)
	}
	ctlR := os.NewFile(uintptr(fds[0]), "unit-guard-control")
	defer ctlR.Close()
	p := &guardProc{w: fds[1], done: make(chan struct{})}
	defer func() {
		if err != nil {
			p.closeCtl()
		}
	}()
	// Non-blocking, so that a guard that does not read (frozen with us, or
	// starved) can never block a renewal; see send.
	if err := unix.SetNonblock(p.w, true); err != nil {
		return nil, fmt.Errorf("%w: %s: control pipe: %w", ErrGuard, u.name, err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: ready pipe: %w", ErrGuard, u.name, err)
	}
	defer readyR.Close()
	p.cmd = &exec.Cmd{
		Path: "/proc/self/exe",
		Args: append([]string{guardArg0}, u.args...),
		// Nothing of ours: the guard needs no configuration from the
		// environment and must not carry the agent's secrets around.
		// GOMAXPROCS=1: it does one thing at a time. GORACE: a binary
		// built with the race detector otherwise sleeps a second before it
		// exits, and Disarm waits for the exit (ignored by other builds).
		Env:         []string{guardEnv + "=" + guardEnvValue, "GOMAXPROCS=1", "GORACE=atexit_sleep_ms=0"},
		Stdout:      readyW,
		Stderr:      os.Stderr, // errors only, when it could not act
		ExtraFiles:  []*os.File{ctlR},
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	err = p.cmd.Start()
	readyW.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: start: %w", ErrGuard, u.name, err)
	}
	log := u.log
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
		logGuardExit(log, p.cmd.ProcessState)
	}()
	ready := time.Now().Add(guardStartTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(ready) {
		ready = d
	}
	_ = readyR.SetReadDeadline(ready)
	var b [1]byte
	n, rerr := readyR.Read(b[:])
	if n != 1 || b[0] != guardReady {
		p.closeCtl()
		p.waitOrKill(0)
		if rerr == nil {
			rerr = fmt.Errorf("unexpected byte %q", b[0])
		}
		return nil, fmt.Errorf("%w: %s: not ready: %w (guard: %v)", ErrGuard, u.name, rerr, p.waitErr)
	}
	if u.cgroup != "" {
		// The pipe is empty: a message below PIPE_BUF fits.
		if err := p.send(guardMsgCgroup, uint64(len(u.cgroup)), []byte(u.cgroup)); err != nil {
			p.closeCtl()
			p.waitOrKill(0)
			return nil, fmt.Errorf("%w: %s: pass cgroup: %w", ErrGuard, u.name, err)
		}
	}
	return p, nil
}

// logGuardExit tells what an exited guard did. The guard itself stays
// quiet unless it failed: it has no logger of ours.
func logGuardExit(log *slog.Logger, st *os.ProcessState) {
	if st == nil {
		return
	}
	switch st.ExitCode() {
	case guardExitDisarmed:
	case guardExitDeadline:
		log.Warn("systemd: unit guard killed and stopped the unit: the lease deadline passed without a renewal", "pid", st.Pid())
	case guardExitOrphaned:
		log.Warn("systemd: unit guard killed and stopped the unit: released without disarming", "pid", st.Pid())
	case guardExitFailed:
		log.Error("systemd: unit guard killed the unit's processes, but systemd did not take the stop job", "pid", st.Pid())
	default:
		log.Error("systemd: unit guard ended abnormally", "pid", st.Pid(), "status", st.String())
	}
}

func (p *guardProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// send writes one message without blocking. Messages are at most PIPE_BUF
// bytes, so the write is atomic: it lands whole or fails with EAGAIN (the
// pipe is full), never torn.
func (p *guardProc) send(kind byte, v uint64, payload []byte) error {
	m := make([]byte, guardMsgLen, guardMsgLen+len(payload))
	m[0] = kind
	binary.LittleEndian.PutUint64(m[1:], v)
	m = append(m, payload...)
	for {
		n, err := unix.Write(p.w, m)
		if err == unix.EINTR {
			continue
		}
		if err == nil && n != len(m) {
			return fmt.Errorf("short write of %d of %d bytes", n, len(m)) // not for a pipe and ≤ PIPE_BUF
		}
		return err
	}
}

func (p *guardProc) closeCtl() {
	p.closeOnce.Do(func() { _ = unix.Close(p.w) })
}

// stop disarms the guard and waits until it is gone.
func (p *guardProc) stop(unit string) error {
	err := p.send(guardMsgDisarm, 0, nil)
	p.closeCtl()
	switch {
	case err == nil, errors.Is(err, unix.EPIPE):
		// Delivered, or the guard is gone already (it acted at its
		// deadline): wait for it either way.
		if p.waitOrKill(guardStopTimeout) {
			return nil
		}
		return fmt.Errorf("%w: %s: guard did not exit after disarm; killed", ErrGuard, unit)
	default:
		// Not delivered (the pipe is full: the guard does not read). It
		// would take the EOF for our death and stop the unit, maybe one
		// started after it: it must not outlive this call.
		p.waitOrKill(0)
		return fmt.Errorf("%w: %s: could not disarm guard (%w); killed", ErrGuard, unit, err)
	}
}

// waitOrKill waits up to d for the guard to exit, then SIGKILLs it and
// waits for that. It reports whether the guard exited by itself.
func (p *guardProc) waitOrKill(d time.Duration) bool {
	return guardproc.WaitOrKill(p.cmd, p.done, d)
}
