//go:build linux

package vip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ozanturksever/go-cluster/internal/boottime"
	"github.com/ozanturksever/go-cluster/internal/guardproc"
)

// The guard is a small process that removes the VIP at the holder's lease
// deadline on its own, so that the address cannot outlive the lease while
// the agent is frozen (SIGSTOP, starved of CPU) and cannot remove it
// itself. The kernel's valid lifetime is no substitute: it counts whole
// seconds, fires up to a second late, and cannot be made short enough to
// match the lease without dropping the VIP of a healthy leader whose
// renewals merely stall for a stream-leader election.
//
// The VIP re-executes its own binary (/proc/self/exe) with guardEnv set and
// argv[0] guardArg0; this package's init then runs guardMain instead of the
// program (guardmain.go). Every binary that imports the package can act as
// a guard, test binaries included, and no second executable ships.
//
// Protocol, over one pipe from the VIP to the guard (guard fd 3):
// guardMsgLen-byte messages, a kind byte and a little-endian int64:
//
//   - 'D' and an absolute CLOCK_BOOTTIME deadline in nanoseconds: remove
//     the address then unless a later message arrives first. The latest
//     message counts.
//   - 'X' (disarm): an orderly stop follows; do not remove the address.
//
// EOF after a disarm: exit without touching the address (Remove already
// took it away, and a later term on this node may add it again, which an
// old guard must never delete). EOF without one: the holder's process died
// or gave up the guard (Close) with the address possibly still in place;
// remove it at once.
//
// The guard has no Pdeathsig on purpose: the agent's death is exactly when
// it has work to do, and it learns of it from EOF. It is the leader of its
// own process group, so a signal to the agent's group (a terminal's ^C)
// does not reach it, and it ignores the usual termination signals (a
// service manager's SIGTERM to every process of the unit), so that it does
// not die before it acted; it exits by itself right after the agent.
const (
	guardEnv      = "GCL_VIP_GUARD" // the marker; only ever in the guard's own environment
	guardEnvValue = "1"
	guardArg0     = "gcl-vip-guard"
	guardCtlFD    = 3 // ExtraFiles[0]: the control pipe's read end
	guardNsFD     = 4 // ExtraFiles[1]: the network namespace, when configured
	guardNsArg    = "netns"

	guardMsgLen      = 9
	guardMsgDeadline = 'D'
	guardMsgDisarm   = 'X'

	// guardReady is the byte the guard writes to its stdout once it can
	// act: its netlink handle is open in the right namespace and the link
	// exists. HoldUntil waits for it, so a guard that cannot work is an
	// error of the call that started it, not a silent gap.
	guardReady = 'R'

	// guardStartTimeout bounds the wait for a new guard to be ready: a fork
	// and exec of the binary and its runtime start, which on a loaded
	// machine (or under the race detector) can take a while.
	guardStartTimeout = 10 * time.Second
	// guardStopTimeout bounds the wait for a disarmed guard to exit before
	// it is SIGKILLed: it must be gone before Disarm returns.
	guardStopTimeout = 2 * time.Second
)

// Guard exit codes: how the run ended, for the log of the VIP that reaps it.
const (
	guardExitDisarmed = 0  // disarmed and closed: the address was left alone
	guardExitSetup    = 1  // could not start (bad arguments, namespace, netlink, link)
	guardExitDeadline = 10 // the deadline passed: the address was removed
	guardExitOrphaned = 11 // EOF without a disarm: the address was removed
	guardExitFailed   = 12 // it had to remove the address and could not
)

// guard is the VIP's handle on one running guard process.
type guard struct {
	cmd       *exec.Cmd
	w         int // the control pipe's write end, non-blocking
	closeOnce sync.Once
	done      chan struct{} // closed once the guard has exited and been reaped
	waitErr   error         // cmd.Wait's result, valid after done
}

// HoldUntil lets the address stay until deadline and no longer: unless a
// later call (or Disarm, or Remove) comes first, a guard process removes
// the address at the deadline without any help from this process, which
// may be frozen by then; and if this process dies, the guard removes the
// address at once. Call it with the lease term's deadline when the VIP is
// taken (before Add, so that no moment passes with an unguarded address)
// and with every deadline a renewal brings. It keeps the kernel lifetime
// (Config.ValidLifetime) as a backstop: set both.
//
// The first call starts the guard and waits until it is ready (it returns
// an error, wrapping ErrGuard, when it cannot start); later calls only
// write the deadline to it, without blocking: when the guard does not read
// (its pipe is full) the deadline is dropped and an error returned, which
// leaves the guard an earlier deadline, never a later one. A guard that
// has already acted (its deadline passed) is replaced by a new one.
func (v *VIP) HoldUntil(deadline time.Time) error {
	if deadline.IsZero() {
		return fmt.Errorf("%w: HoldUntil needs a deadline", ErrInvalidConfig)
	}
	v.gmu.Lock()
	defer v.gmu.Unlock()
	if v.gclosed {
		return fmt.Errorf("vip: %s: use after Close", v.cfg.Address)
	}
	for attempt := 0; ; attempt++ {
		if v.g != nil && v.g.exited() {
			v.g.closeCtl()
			v.g = nil
		}
		if v.g == nil {
			g, err := startGuard(v.cfg, v.iface)
			if err != nil {
				return err
			}
			v.g = g
		}
		err := v.g.send(guardMsgDeadline, boottime.Deadline(deadline))
		if errors.Is(err, unix.EPIPE) && attempt == 0 {
			// The guard has exited since we looked, having removed the
			// address at its deadline: reap it and start another.
			v.g.closeCtl()
			v.g.waitOrKill(guardStopTimeout)
			v.g = nil
			continue
		}
		if err != nil {
			return fmt.Errorf("vip: %s: pass deadline to guard: %w", v.cfg.Address, err)
		}
		return nil
	}
}

// Disarm stops the guard without letting it remove the address: an orderly
// stop by a holder that removed the address itself (Remove disarms after a
// successful removal) or hands it over. The guard is gone when Disarm
// returns, so it can never remove an address added after it; a guard that
// does not exit in time is SIGKILLed. Without a guard it does nothing.
func (v *VIP) Disarm() error {
	v.gmu.Lock()
	defer v.gmu.Unlock()
	g := v.g
	v.g = nil
	if g == nil {
		return nil
	}
	return g.stop(v.cfg)
}

// closeGuard gives the guard up without disarming it (Close): nobody will
// feed it again, so it removes the address at once, as if this process had
// died. It does not wait for the guard.
func (v *VIP) closeGuard() {
	v.gmu.Lock()
	defer v.gmu.Unlock()
	v.gclosed = true
	if v.g != nil {
		v.g.closeCtl()
		v.g = nil
	}
}

// startGuard starts a guard for cfg.Address on iface and waits until it is
// ready.
//
// The namespace (cfg.Namespace) is passed as an inherited file descriptor
// rather than by forking from a thread switched into it: the fd says
// explicitly where the guard acts, whatever thread os/exec forks on, and
// the guard opens its netlink handle there with netlink.NewHandleAt, which
// does the thread switching itself. Without a configured namespace the
// guard works in the one it inherits, which is the process's own: the
// forking goroutine is not locked to a thread, so it is not on one of the
// threads doInNamespace switches.
func startGuard(cfg Config, iface string) (_ *guard, err error) {
	// O_CLOEXEC: no other child of this process (a backend the agent runs)
	// may inherit the write end, or the guard would not see EOF when this
	// process dies.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("%w: %s: control pipe: %w", ErrGuard, cfg.Address, err)
	}
	ctlR := os.NewFile(uintptr(p[0]), "vip-guard-control")
	defer ctlR.Close()
	g := &guard{w: p[1], done: make(chan struct{})}
	defer func() {
		if err != nil {
			g.closeCtl()
		}
	}()
	// Non-blocking, so that a guard that does not read (frozen with us, or
	// starved) can never block a renewal; see send.
	if err := unix.SetNonblock(g.w, true); err != nil {
		return nil, fmt.Errorf("%w: %s: control pipe: %w", ErrGuard, cfg.Address, err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: ready pipe: %w", ErrGuard, cfg.Address, err)
	}
	defer readyR.Close()
	files := []*os.File{ctlR}
	args := []string{guardArg0, cfg.Address.String(), iface}
	if cfg.inNamespace() {
		// A duplicate, because ExtraFiles wants an *os.File, which would
		// close the borrowed handle when collected.
		fd, err := unix.FcntlInt(uintptr(cfg.Namespace), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			readyW.Close()
			return nil, fmt.Errorf("%w: %s: duplicate namespace handle: %w", ErrGuard, cfg.Address, err)
		}
		ns := os.NewFile(uintptr(fd), "vip-guard-netns")
		defer ns.Close()
		files = append(files, ns)
		args = append(args, guardNsArg)
	}
	g.cmd = &exec.Cmd{
		Path: "/proc/self/exe",
		Args: args,
		// Nothing of ours: the guard needs no configuration from the
		// environment and must not carry the agent's secrets around.
		// GOMAXPROCS=1: it does one thing at a time.
		Env:         []string{guardEnv + "=" + guardEnvValue, "GOMAXPROCS=1"},
		Stdout:      readyW,
		Stderr:      os.Stderr, // errors only, when it could not remove the address
		ExtraFiles:  files,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	err = g.cmd.Start()
	readyW.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: start: %w", ErrGuard, cfg.Address, err)
	}
	go func() {
		g.waitErr = g.cmd.Wait()
		close(g.done)
		logGuardExit(cfg, g.cmd.ProcessState)
	}()
	_ = readyR.SetReadDeadline(time.Now().Add(guardStartTimeout))
	var b [1]byte
	n, rerr := readyR.Read(b[:])
	if n != 1 || b[0] != guardReady {
		g.closeCtl()
		g.waitOrKill(0)
		if rerr == nil {
			rerr = fmt.Errorf("unexpected byte %q", b[0])
		}
		return nil, fmt.Errorf("%w: %s on %s: not ready: %w (guard: %v)", ErrGuard, cfg.Address, iface, rerr, g.waitErr)
	}
	return g, nil
}

// logGuardExit tells what an exited guard did. The guard itself stays
// quiet unless it failed: it has no logger of ours.
func logGuardExit(cfg Config, st *os.ProcessState) {
	if st == nil {
		return
	}
	switch st.ExitCode() {
	case guardExitDisarmed:
	case guardExitDeadline:
		cfg.Logger.Warn("vip guard removed the address: the lease deadline passed without a renewal", "pid", st.Pid())
	case guardExitOrphaned:
		cfg.Logger.Warn("vip guard removed the address: released without disarming", "pid", st.Pid())
	default:
		cfg.Logger.Error("vip guard ended abnormally", "pid", st.Pid(), "status", st.String())
	}
}

func (g *guard) exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// send writes one message without blocking. A message is far below
// PIPE_BUF, so the write is atomic: it lands whole or fails with EAGAIN
// (the pipe is full), never torn.
func (g *guard) send(kind byte, v int64) error {
	var m [guardMsgLen]byte
	m[0] = kind
	binary.LittleEndian.PutUint64(m[1:], uint64(v))
	for {
		_, err := unix.Write(g.w, m[:])
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

func (g *guard) closeCtl() {
	g.closeOnce.Do(func() { _ = unix.Close(g.w) })
}

// stop disarms the guard and waits until it is gone.
func (g *guard) stop(cfg Config) error {
	err := g.send(guardMsgDisarm, 0)
	g.closeCtl()
	switch {
	case err == nil, errors.Is(err, unix.EPIPE):
		// Delivered, or the guard is gone already (it acted at its
		// deadline): wait for it either way.
		if g.waitOrKill(guardStopTimeout) {
			return nil
		}
		return fmt.Errorf("vip: %s: guard did not exit after disarm; killed", cfg.Address)
	default:
		// Not delivered (the pipe is full: the guard does not read). It
		// would take the EOF for our death and remove the address, maybe
		// a newer one than it guards: it must not outlive this call.
		g.waitOrKill(0)
		return fmt.Errorf("vip: %s: could not disarm guard (%w); killed", cfg.Address, err)
	}
}

// waitOrKill waits up to d for the guard to exit, then SIGKILLs it and
// waits for that. It reports whether the guard exited by itself.
func (g *guard) waitOrKill(d time.Duration) bool {
	return guardproc.WaitOrKill(g.cmd, g.done, d)
}
