//go:build linux

package vip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ozanturksever/go-cluster/internal/boottime"
	"github.com/ozanturksever/go-cluster/internal/guardproc"
)

// This file is the guard process itself (see guard.go for why and how it
// is started). It runs in place of the program, from this package's init,
// and exits without returning to it.

func init() {
	if guardproc.IsGuard(guardEnv, guardEnvValue, guardArg0) {
		os.Exit(guardMain(os.Args[1:]))
	}
}

// guardOutcome is why the guard's watch ended.
type guardOutcome int

const (
	outcomeDisarmed guardOutcome = iota // disarm, then EOF: leave the address
	outcomeDeadline                     // the deadline passed: remove it
	outcomeOrphaned                     // EOF without disarm, or the pipe broke: remove it
)

// guardMain is the guard: arguments are the address with its prefix
// length, the interface, and guardNsArg when fd guardNsFD is the network
// namespace to act in. It writes guardReady to stdout once it can act and
// nothing else; stderr gets a line only when something failed. It never
// logs its environment (it has none worth a secret anyway).
func guardMain(args []string) int {
	// Ignored, not caught: the guard must outlive whatever takes its agent
	// down (a service manager's SIGTERM to every process of the unit, a
	// hangup), and then act on the EOF. SIGPIPE: a write to a stderr whose
	// reader died with the agent must fail, not kill the guard before it
	// removed the address.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE)
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "%s: "+format+"\n", append([]any{guardArg0}, a...)...)
		return guardExitSetup
	}
	if len(args) != 2 && (len(args) != 3 || args[2] != guardNsArg) {
		return fail("usage: %s ADDRESS/BITS INTERFACE [%s]", guardArg0, guardNsArg)
	}
	prefix, err := netip.ParsePrefix(args[0])
	if err != nil {
		return fail("%v", err)
	}
	iface := args[1]
	var h *netlink.Handle
	if len(args) == 3 {
		// The handle's sockets stay in the namespace; the fd is not needed
		// once they are open.
		h, err = netlink.NewHandleAt(netns.NsHandle(guardNsFD))
		_ = unix.Close(guardNsFD)
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		return fail("netlink: %v", err)
	}
	if _, err := h.LinkByName(iface); err != nil {
		return fail("look up %s: %v", iface, err)
	}
	// The deadline timer is a timerfd on CLOCK_BOOTTIME with an absolute
	// expiry, polled together with the control pipe. BOOTTIME keeps
	// counting through a system suspend, unlike the monotonic clock Go's
	// timers and poll(2) timeouts use: a suspended machine resumes with
	// the deadline past, and the address goes at once instead of one
	// whole lease later. An absolute expiry leaves no relative sleep to
	// recompute; and one poll waits for both the timer and the pipe.
	tfd, err := boottime.NewTimer(unix.TFD_NONBLOCK)
	if err != nil {
		return fail("timerfd: %v", err)
	}
	if err := guardproc.WriteAll(1, []byte{guardReady}); err != nil {
		return fail("report ready: %v", err)
	}
	outcome := guardWatch(guardCtlFD, tfd)
	if outcome == outcomeDisarmed {
		return guardExitDisarmed
	}
	if err := guardRemove(h, prefix, iface); err != nil {
		// The kernel lifetime, if any, is all that is left.
		fmt.Fprintf(os.Stderr, "%s: could not remove %s from %s: %v\n", guardArg0, prefix, iface, err)
		return guardExitFailed
	}
	if outcome == outcomeDeadline {
		return guardExitDeadline
	}
	return guardExitOrphaned
}

// guardWatch follows the control pipe and the deadline timer until one of
// them ends the guard's job.
func guardWatch(ctl, tfd int) guardOutcome {
	fds := []unix.PollFd{{Fd: int32(ctl), Events: unix.POLLIN}, {Fd: int32(tfd), Events: unix.POLLIN}}
	var (
		buf      [guardMsgLen * 64]byte
		n        int   // bytes of an incomplete message at buf[:n]
		deadline int64 // valid while armed
		armed    bool
		disarmed bool
	)
	for {
		if _, err := unix.Poll(fds, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			return outcomeOrphaned // cannot watch any more: fail safe
		}
		if fds[0].Revents != 0 {
			r, err := unix.Read(ctl, buf[n:])
			switch {
			case err == unix.EINTR || err == unix.EAGAIN:
			case err != nil || r == 0:
				if disarmed {
					return outcomeDisarmed
				}
				return outcomeOrphaned
			default:
				n += r
				i := 0
				for ; i+guardMsgLen <= n; i += guardMsgLen {
					switch buf[i] {
					case guardMsgDeadline:
						deadline = int64(binary.LittleEndian.Uint64(buf[i+1:]))
						armed, disarmed = true, false
					case guardMsgDisarm:
						armed, disarmed = false, true
					default:
						return outcomeOrphaned // not our protocol: fail safe
					}
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
					return outcomeOrphaned
				}
			}
		}
		// Consume an expiry so that the timer does not stay readable; the
		// decision rests on the clock, not on the timer's state, which a
		// deadline set in this round has just reset.
		var exp [8]byte
		_, _ = unix.Read(tfd, exp[:])
		if armed && boottime.Now() >= deadline {
			return outcomeDeadline
		}
	}
}

// guardRemove deletes exactly prefix from iface, retrying briefly: a
// transient netlink failure must not leave the address behind.
func guardRemove(h *netlink.Handle, prefix netip.Prefix, iface string) error {
	addr := Config{Address: prefix}.netlinkAddr()
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 20 * time.Millisecond) // retry back-off
		}
		var l netlink.Link
		l, err = h.LinkByName(iface)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return nil // the link went, and its addresses with it
			}
			continue
		}
		err = h.AddrDel(l, addr)
		if err == nil || errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return nil
		}
	}
	return err
}
