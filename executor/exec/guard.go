//go:build linux

package exec

import (
	"errors"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ozanturksever/go-cluster/internal/boottime"
	"github.com/ozanturksever/go-cluster/internal/guardproc"
)

// The guard is a tiny process between the supervisor and the command: the
// supervisor re-executes its own binary (/proc/self/exe) with guardEnv set
// and argv[0] guardArg0, and this package's init runs guardMain instead of
// the program. Every binary that imports the package can therefore act as
// a guard, test binaries included, without shipping a second executable.
//
// Why: a singleton's process must stop by its lease deadline even when the
// agent cannot run at all (SIGSTOPped, starved, its VM's vCPU descheduled).
// Pdeathsig only fires when the agent dies, not when it freezes. The guard
// holds the deadline itself, on CLOCK_BOOTTIME, and SIGKILLs the process
// group when it passes; it needs nothing from the agent to do so.
//
// Layout: the guard is the supervisor's direct child and the leader of its
// own process group (Setpgid, as before the guard); the command is the
// guard's child in that same group, so the supervisor's kill(-pgid) still
// reaches the command and all its descendants. The command gets Pdeathsig
// SIGKILL tied to the guard, the guard gets Pdeathsig SIGKILL tied to the
// supervisor's forking thread.
//
// Two pipes connect them:
//
//   - control, supervisor → guard (guard fd 3): first the spec (what to
//     run, see encodeGuardSpec), then 8-byte little-endian deadlines,
//     absolute CLOCK_BOOTTIME nanoseconds, 0 meaning none. The latest one
//     counts. EOF means the supervisor's process is gone: the guard
//     SIGKILLs the group at once.
//   - status, guard → supervisor (guard fd 4): 5-byte records, a kind byte
//     and a little-endian uint32 (guardRec*). The first record answers the
//     start; the last tells how the run ended.
//
// A process cannot SIGKILL its own group and survive it, and the guard is
// a member of the group it kills. So instead of exiting with a copy of the
// command's status, the guard writes that status (or the deadline verdict)
// to the status pipe first and then kills the group, itself included. The
// supervisor reads the record after reaping the guard and describes the run
// from it (proc.exitDesc), so exit codes and "killed by signal" reasons read
// as if there were no guard. Killing the group this way also removes what
// the command left behind, exactly as the supervisor does when it reaps.
const (
	guardEnv      = "GCL_EXEC_GUARD_V1" // the marker; only ever in the guard's own environment
	guardEnvValue = "1"
	guardArg0     = "gcl-exec-guard"
	guardCtlFD    = 3 // ExtraFiles[0]
	guardStatusFD = 4 // ExtraFiles[1]
	// guardSpecMagic opens the spec ("GCL1"): a guard started by a binary
	// of another protocol version refuses rather than misread it.
	guardSpecMagic = 0x314c4347
	// guardSpecMax bounds the spec (command, args, environment): a corrupt
	// length must not make the guard allocate gigabytes.
	guardSpecMax = 16 << 20
	// guardExitFailed is the guard's exit code when it could not start the
	// command; the record says why.
	guardExitFailed = 125
)

// Status records written by the guard.
const (
	guardRecStarted  = 'S' // the command runs; value: its pid
	guardRecExecFail = 'F' // fork/exec failed; value: errno
	guardRecTooLate  = 'L' // the deadline had passed; nothing was started
	guardRecBadSpec  = 'B' // the guard could not read its spec or set up; value: errno (0: malformed)
	guardRecExited   = 'X' // the command ended; value: its raw wait status
	guardRecDeadline = 'D' // the deadline passed; the group was SIGKILLed
)

// guardCaught are the signals the guard catches, so that a stop signal sent
// to the group (Config.KillSignal: any of these) reaches the command while
// the guard stays to reap it and to keep enforcing the deadline. They are
// caught with signal.Notify, never ignored: an ignored disposition would be
// inherited through exec by the command, a caught one is reset to the
// default. The list is every catchable signal whose default action would
// terminate or stop the guard (a stopped guard enforces nothing); SIGPROF
// is left out, the Go runtime never lets it terminate a program.
var guardCaught = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGABRT, syscall.SIGALRM,
	syscall.SIGPIPE, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGVTALRM,
	syscall.SIGIO, syscall.SIGSYS, syscall.SIGTRAP,
	syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGSEGV,
	syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU,
}

func init() {
	if guardproc.IsGuard(guardEnv, guardEnvValue, guardArg0) {
		guardMain() // does not return
	}
}

// guardSpec is what the guard runs, decoded from the control pipe.
type guardSpec struct {
	path     string
	dir      string
	argv     []string
	env      []string
	cred     *syscall.Credential
	deadline int64 // absolute CLOCK_BOOTTIME ns; 0: none
}

// guardMain is the guard process. It prints nothing (its stdout and stderr
// are the command's log) and never logs the environment. Everything it has
// to say goes into the status pipe.
func guardMain() {
	// The command's Pdeathsig is tied to the thread that forks it. This
	// goroutine forks and then waits on that thread for the whole run;
	// locked, the thread cannot be retired or handed to other code meanwhile
	// (see proc.run for the same caveat in the supervisor).
	runtime.LockOSThread()
	st := guardStatusFD
	// Neither pipe is for the command: an inherited status write end would
	// keep the supervisor from ever seeing EOF on it.
	syscall.CloseOnExec(guardCtlFD)
	syscall.CloseOnExec(st)
	signal.Notify(make(chan os.Signal, 1), guardCaught...)
	if syscall.Getpgrp() != syscall.Getpid() {
		// Only a supervisor that made us a group leader may run us: every
		// kill below goes to our own group, which must not be anyone else's.
		guardFail(st, guardRecBadSpec, 0)
	}
	spec, err := readGuardSpec(guardCtlFD)
	if err != nil {
		guardFail(st, guardRecBadSpec, errnoOf(err))
	}

	// The deadline timer is a timerfd on CLOCK_BOOTTIME armed with an
	// absolute expiry, polled together with the control pipe (guardWatch).
	// Rather than clock_nanosleep: one poll waits for both the timer and
	// the pipe, with no thread to interrupt when a new deadline arrives.
	// BOOTTIME keeps counting through a system suspend, unlike the
	// monotonic clock Go's timers (and the lease's deadline) use, so a
	// suspend cannot stretch the deadline; through a VM pause both clocks
	// do whatever the hypervisor makes the guest's clock do, so the guard
	// is never later than the agent's own clock would be. An absolute
	// expiry leaves no relative sleep to recompute; and a fired timerfd
	// stays readable until it is re-armed or read, so an expiry while the
	// guard is not polling yet is not missed.
	tfd, err := boottime.NewTimer(0)
	if err != nil {
		guardFail(st, guardRecBadSpec, errnoOf(err))
	}
	if err := boottime.Arm(tfd, spec.deadline); err != nil {
		guardFail(st, guardRecBadSpec, errnoOf(err))
	}
	if spec.deadline != 0 && boottime.Now() >= spec.deadline {
		guardFail(st, guardRecTooLate, 0)
	}
	pid, err := syscall.ForkExec(spec.path, spec.argv, &syscall.ProcAttr{
		Dir:   spec.dir,
		Env:   spec.env,
		Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{
			// Same group as ours (no Setpgid). If the guard dies, the
			// command dies with it; its descendants are reached by group
			// kills (ours, or the supervisor's when it reaps us).
			Pdeathsig:  syscall.SIGKILL,
			Credential: spec.cred,
		},
	})
	if err != nil {
		guardFail(st, guardRecExecFail, errnoOf(err))
	}
	guardReport(st, guardRecStarted, uint32(pid))
	go guardWatch(guardCtlFD, tfd, st)

	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err == nil {
			guardReport(st, guardRecExited, uint32(ws))
		}
		break
	}
	guardKillGroup()
}

// guardWatch follows the control pipe and the deadline timer until one of
// them ends the run: the deadline passes (record, then SIGKILL to the
// group) or the supervisor's process is gone (EOF: SIGKILL at once, nobody
// is left to read a record).
func guardWatch(ctl, tfd, st int) {
	fds := []unix.PollFd{{Fd: int32(ctl), Events: unix.POLLIN}, {Fd: int32(tfd), Events: unix.POLLIN}}
	var buf [512]byte
	n := 0 // bytes of an incomplete deadline message at buf[:n]
	for {
		if _, err := unix.Poll(fds, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			guardKillGroup() // cannot watch any more: fail safe
		}
		rearmed := false
		if fds[0].Revents != 0 {
			r, err := unix.Read(ctl, buf[n:])
			switch {
			case err == unix.EINTR || err == unix.EAGAIN:
			case err != nil || r == 0:
				guardKillGroup() // EOF: the supervisor's process died
			default:
				n += r
				var latest int64
				have := false
				i := 0
				for ; i+8 <= n; i += 8 {
					latest, have = int64(le64(buf[i:])), true
				}
				n = copy(buf[:], buf[i:n])
				if have {
					// A renewal the supervisor sent before the old deadline
					// counts even if we read it only now: whatever it sends
					// is a valid bound (see boottime.Deadline). Setting the timer
					// also clears an expiry of the old deadline, so the
					// timer's state from this poll is stale: poll again,
					// and a new deadline already past fires at once.
					if err := boottime.Arm(tfd, latest); err != nil {
						guardKillGroup()
					}
					rearmed = true
				}
			}
		}
		if !rearmed && fds[1].Revents != 0 {
			guardReport(st, guardRecDeadline, 0)
			guardKillGroup()
		}
	}
}

// guardKillGroup SIGKILLs the guard's process group: the command, whatever
// it left in the group, and the guard itself. It does not return.
func guardKillGroup() {
	_ = syscall.Kill(0, syscall.SIGKILL)
	// Not reached: SIGKILL to our own group includes us.
	os.Exit(guardExitFailed)
}

// guardFail reports why nothing was started and exits. The command was not
// forked (or its exec failed, and that child is gone), so there is no group
// to kill.
func guardFail(st int, kind byte, v uint32) {
	guardReport(st, kind, v)
	os.Exit(guardExitFailed)
}

// guardReport writes one status record. Five bytes are below PIPE_BUF, so
// the write is atomic and, with the supervisor's end open, fits the buffer
// unless the pipe holds 64 KiB of records, which it never does. A failure
// (EPIPE: the supervisor is gone) is ignored; the run ends regardless.
func guardReport(st int, kind byte, v uint32) {
	rec := [5]byte{kind, byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
	for {
		_, err := syscall.Write(st, rec[:])
		if err != syscall.EINTR {
			return
		}
	}
}

func errnoOf(err error) uint32 {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return uint32(errno)
	}
	return 0
}

// readGuardSpec reads the spec from the control pipe: magic and length,
// then the fields in the order encodeGuardSpec writes them.
func readGuardSpec(fd int) (*guardSpec, error) {
	var hdr [8]byte
	if err := readFullFD(fd, hdr[:]); err != nil {
		return nil, err
	}
	if le32(hdr[:]) != guardSpecMagic || le32(hdr[4:]) > guardSpecMax {
		return nil, errBadGuardSpec
	}
	b := make([]byte, le32(hdr[4:]))
	if err := readFullFD(fd, b); err != nil {
		return nil, err
	}
	d := specDecoder{b: b}
	spec := &guardSpec{path: d.str(), dir: d.str()}
	spec.argv = d.strs()
	spec.env = d.strs()
	if d.u32() == 1 {
		c := &syscall.Credential{Uid: d.u32(), Gid: d.u32()}
		c.Groups = make([]uint32, d.count(4))
		for i := range c.Groups {
			c.Groups[i] = d.u32()
		}
		spec.cred = c
	}
	spec.deadline = int64(d.u64())
	if d.bad || len(d.b) != 0 || spec.path == "" || len(spec.argv) == 0 {
		return nil, errBadGuardSpec
	}
	return spec, nil
}

var errBadGuardSpec = errors.New("exec guard: malformed spec")

// readFullFD fills b from a blocking fd (EINTR retried; EAGAIN waits in poll).
func readFullFD(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Read(fd, b)
		switch {
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1)
		case err != nil:
			return err
		case n == 0:
			return errBadGuardSpec // EOF before the whole spec: the supervisor went away
		default:
			b = b[n:]
		}
	}
	return nil
}

// encodeGuardSpec is the supervisor's side of readGuardSpec.
func encodeGuardSpec(path, dir string, argv, env []string, cred *syscall.Credential, deadline int64) []byte {
	b := make([]byte, 8, 256)
	putStr := func(s string) {
		b = appendLE32(b, uint32(len(s)))
		b = append(b, s...)
	}
	putStrs := func(ss []string) {
		b = appendLE32(b, uint32(len(ss)))
		for _, s := range ss {
			putStr(s)
		}
	}
	putStr(path)
	putStr(dir)
	putStrs(argv)
	putStrs(env)
	if cred != nil {
		b = appendLE32(b, 1)
		b = appendLE32(b, cred.Uid)
		b = appendLE32(b, cred.Gid)
		b = appendLE32(b, uint32(len(cred.Groups)))
		for _, g := range cred.Groups {
			b = appendLE32(b, g)
		}
	} else {
		b = appendLE32(b, 0)
	}
	b = appendLE64(b, uint64(deadline))
	putLE32(b, guardSpecMagic)
	putLE32(b[4:], uint32(len(b)-8))
	return b
}

// specDecoder reads the spec's fields; any overrun sets bad and yields zeros.
type specDecoder struct {
	b   []byte
	bad bool
}

func (d *specDecoder) take(n int) []byte {
	if d.bad || n < 0 || n > len(d.b) {
		d.bad = true
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *specDecoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return le32(v)
	}
	return 0
}

func (d *specDecoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return le64(v)
	}
	return 0
}

// count reads an element count and checks that that many elements of at
// least min bytes can follow, so that a corrupt count cannot allocate much.
func (d *specDecoder) count(min int) int {
	n := int(d.u32())
	if n > len(d.b)/min {
		d.bad = true
		return 0
	}
	return n
}

func (d *specDecoder) str() string { return string(d.take(int(d.u32()))) }

func (d *specDecoder) strs() []string {
	ss := make([]string, d.count(4))
	for i := range ss {
		ss[i] = d.str()
	}
	return ss
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func le64(b []byte) uint64 { return uint64(le32(b)) | uint64(le32(b[4:]))<<32 }

func putLE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func appendLE32(b []byte, v uint32) []byte {
	return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}

func appendLE64(b []byte, v uint64) []byte {
	return appendLE32(appendLE32(b, uint32(v)), uint32(v>>32))
}
