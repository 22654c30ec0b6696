//go:build linux

package exec

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	osexec "os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/ozanturksever/go-cluster/internal/boottime"
)

// outputDrainTimeout bounds how long we wait, after the process group is
// gone, for the output pipes to reach EOF. Only a descendant that left the
// group (setsid, setpgid) can still hold them open; we then close our read
// ends rather than wait for it forever.
const outputDrainTimeout = 2 * time.Second

// proc is one run of the command: the guard process (see guard.go) and,
// under it, the command itself.
type proc struct {
	// pid is the guard's: our direct child, and the id of the process
	// group that holds the guard, the command and its descendants.
	pid int
	// appPID is the command's, as the guard reported it.
	appPID  int
	started time.Time

	// mu guards reaped. It is held across the final group kill and the
	// reap, and by every signal sent to the group, so that no signal can be
	// sent to the group id after the leader was reaped: from then on the
	// id may be reused by an unrelated process.
	mu     sync.Mutex
	reaped bool

	exited   chan struct{} // closed once the leader is reaped and the group killed
	state    *os.ProcessState
	waitErr  error
	endedAt  time.Time
	pipes    []*os.File // read ends, owned by the copiers
	copiers  sync.WaitGroup
	copyDone chan struct{} // closed when both copiers returned

	// ctl is the control pipe's write end: deadlines for the guard. It is
	// closed only after the guard was reaped: its EOF tells the guard that
	// the supervisor is gone. ctlMu serialises writes with that close.
	ctlMu sync.Mutex
	ctl   *os.File
	// The status pipe's records, read by readStatus: the first answers the
	// start (startRec), the first of guardRecExited and guardRecDeadline
	// says how the run ended (end; read after statusDone).
	status     *os.File // the status pipe's read end, owned by readStatus
	startRec   chan guardRecord
	statusDone chan struct{}
	end        guardRecord
}

// guardRecord is one record of the status pipe; kind 0 means none.
type guardRecord struct {
	kind byte
	v    uint32
}

// spawnSpec is everything needed to start one run.
type spawnSpec struct {
	name   string // for the guard's argv, so that ps shows whose guard it is
	path   string
	args   []string
	env    []string
	dir    string
	cred   *syscall.Credential
	hold   time.Time // the deadline for the guard; zero: none
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
}

// guardStartTimeout bounds how long spawn waits for the guard to answer
// whether the command started. The guard is this very binary starting up
// (every package's init runs first), then one fork/exec: far less, even on
// a loaded host. A guard that does not answer is killed.
const guardStartTimeout = 30 * time.Second

// ctlWriteTimeout bounds a deadline write to the control pipe. The guard
// reads it at once; the pipe could only be full if the guard had stopped
// reading thousands of messages ago.
const ctlWriteTimeout = time.Second

// spawn starts the guard, which starts the command, and the output
// copiers. It returns once the command runs (or failed to start).
func spawn(sp spawnSpec) (*proc, error) {
	var files []*os.File // every pipe end made so far, to close if a later pipe fails
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		if r, w, err = os.Pipe(); err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	outR, outW, err := pipe()
	if err != nil {
		return nil, fmt.Errorf("stdout pipe: %w", err)
	}
	errR, errW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("stderr pipe: %w", err)
	}
	ctlR, ctlW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("guard control pipe: %w", err)
	}
	stR, stW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("guard status pipe: %w", err)
	}
	cmd := &osexec.Cmd{
		// The running binary, even if its file was replaced or deleted
		// since (an upgrade in progress): /proc/self/exe is the inode.
		Path: "/proc/self/exe",
		Args: []string{guardArg0, sp.name},
		// The guard's own environment: the marker, and one P, so that a
		// process that only waits does not get a Go runtime sized for the
		// whole machine. The command's environment travels in the spec:
		// nothing the job sets (LD_PRELOAD, GODEBUG...) reaches the guard,
		// which runs as the agent's user, not the job's.
		Env:        []string{guardEnv + "=" + guardEnvValue, "GOMAXPROCS=1"},
		Dir:        "/",
		Stdout:     outW, // *os.File: handed to the child as is, no copy goroutine in os/exec
		Stderr:     errW,
		ExtraFiles: []*os.File{ctlR, stW}, // fds 3 and 4: guardCtlFD, guardStatusFD
		SysProcAttr: &syscall.SysProcAttr{
			// Own process group: Stop signals kill(-pgid) and so reaches
			// the guard, the command and every descendant that did not
			// deliberately leave the group.
			Setpgid: true,
			// The guard is SIGKILLed when its parent dies (and then the
			// command, by its own Pdeathsig on the guard), so that an
			// agent crash does not leave orphaned apps running
			// unsupervised (a restarted agent would start a second
			// copy). The guard would also see EOF on the control pipe and
			// kill the whole group, descendants included, if it gets to
			// run before this SIGKILL lands.
			Pdeathsig: syscall.SIGKILL,
		},
	}
	p := &proc{
		exited: make(chan struct{}), copyDone: make(chan struct{}), pipes: []*os.File{outR, errR},
		ctl: ctlW, status: stR, startRec: make(chan guardRecord, 1), statusDone: make(chan struct{}),
	}
	startErr := make(chan error, 1)
	go p.run(cmd, startErr)
	err = <-startErr
	// The guard has its own copies of its ends (or never will): close
	// ours, or the pipes would never reach EOF.
	for _, f := range []*os.File{outW, errW, ctlR, stW} {
		f.Close()
	}
	if err != nil {
		for _, f := range []*os.File{outR, errR, ctlW, stR} {
			f.Close()
		}
		return nil, fmt.Errorf("starting the exec guard: %w", err)
	}
	go p.readStatus()

	if err := p.handshake(sp); err != nil {
		// The guard exits by itself after a refusal; make sure of it, and
		// wait until it is reaped, so that no run outlives a failed start.
		_ = p.signalGroup(syscall.SIGKILL)
		<-p.exited
		outR.Close()
		errR.Close()
		return nil, err
	}
	p.copiers.Add(2)
	go p.copy(outR, sp.stdout, "stdout", sp.log)
	go p.copy(errR, sp.stderr, "stderr", sp.log)
	go func() {
		p.copiers.Wait()
		close(p.copyDone)
	}()
	return p, nil
}

// handshake sends the guard its spec and waits for its answer: the
// command's pid, or why it did not start.
func (p *proc) handshake(sp spawnSpec) error {
	p.ctlMu.Lock()
	spec := encodeGuardSpec(sp.path, sp.dir, sp.args, sp.env, sp.cred, boottime.Deadline(sp.hold))
	_ = p.ctl.SetWriteDeadline(time.Now().Add(guardStartTimeout))
	_, werr := p.ctl.Write(spec)
	p.ctlMu.Unlock()
	// A write error means the guard is gone or stuck; its answer (or the
	// lack of one) below says more.

	t := time.NewTimer(guardStartTimeout)
	defer t.Stop()
	var rec guardRecord
	var answered bool
	select {
	case rec, answered = <-p.startRec:
	case <-t.C:
		return fmt.Errorf("exec guard did not answer within %s", guardStartTimeout)
	}
	if !answered {
		// The guard ended first.
		<-p.exited
		desc, _ := p.exitDesc()
		if werr != nil {
			return fmt.Errorf("exec guard ended before starting the command (%s): %w", desc, werr)
		}
		return fmt.Errorf("exec guard ended before starting the command (%s)", desc)
	}
	switch rec.kind {
	case guardRecStarted:
		p.appPID = int(rec.v)
		return nil
	case guardRecExecFail:
		// What os/exec reported before the guard existed.
		return &os.PathError{Op: "fork/exec", Path: sp.path, Err: syscall.Errno(rec.v)}
	case guardRecTooLate:
		return fmt.Errorf("%w (seen by the exec guard)", ErrDeadlinePassed)
	case guardRecBadSpec:
		if rec.v != 0 {
			return fmt.Errorf("exec guard could not set up: %w", syscall.Errno(rec.v))
		}
		return errors.New("exec guard could not set up: malformed spec")
	}
	return fmt.Errorf("exec guard answered %q: not this binary's protocol", rec.kind)
}

// readStatus reads the guard's records until EOF, which comes when the
// guard is gone (nobody else holds the write end: the guard keeps it from
// the command with close-on-exec).
func (p *proc) readStatus() {
	r := p.status
	defer close(p.statusDone)
	defer r.Close()
	first := true
	defer func() {
		if first {
			close(p.startRec) // EOF before any answer
		}
	}()
	var b [5]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return
		}
		rec := guardRecord{kind: b[0], v: le32(b[1:])}
		if first {
			first = false
			p.startRec <- rec // buffered: never blocks
			continue
		}
		if p.end.kind == 0 && (rec.kind == guardRecExited || rec.kind == guardRecDeadline) {
			p.end = rec
		}
	}
}

// hold passes a new deadline to the guard. After the run ended it does
// nothing.
func (p *proc) hold(deadline time.Time) error {
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	if p.ctl == nil {
		return nil
	}
	var b [8]byte
	v := uint64(boottime.Deadline(deadline))
	putLE32(b[:], uint32(v))
	putLE32(b[4:], uint32(v>>32))
	_ = p.ctl.SetWriteDeadline(time.Now().Add(ctlWriteTimeout))
	if _, err := p.ctl.Write(b[:]); err != nil && !errors.Is(err, syscall.EPIPE) {
		// EPIPE: the guard is gone and its run is ending; nothing to hold.
		return fmt.Errorf("passing the deadline to the exec guard: %w", err)
	}
	return nil
}

// run forks the guard and waits for it, on one locked OS thread.
//
// Pdeathsig is tied to the *thread* that forked the child, not to the
// process: Linux delivers it when that thread exits. The Go runtime
// terminates a thread whenever a goroutine exits while locked to it (any
// code in the agent may do that, e.g. around a setns or a C library call),
// and after the fork an unlocked goroutine's thread goes back to the pool
// where such a goroutine may pick it up; the healthy child would then be
// SIGKILLed at a random later time. Locking this goroutine to its thread
// before the fork, and keeping it (and therefore the thread) in wait until
// the child is reaped, guarantees the forking thread outlives the child.
// Only after the reap is the thread unlocked and handed back.
func (p *proc) run(cmd *osexec.Cmd, startErr chan<- error) {
	runtime.LockOSThread()
	if err := cmd.Start(); err != nil {
		runtime.UnlockOSThread() // no child: the thread may go
		startErr <- err
		close(p.exited)
		return
	}
	p.pid = cmd.Process.Pid
	p.started = time.Now()
	startErr <- nil

	// Wait for the exit without reaping, so that the leader stays a zombie
	// and its pid (which is the group id) cannot be reused while we kill
	// whatever is left of its group.
	var err error
	if werr := waitExitNoReap(p.pid); werr == nil {
		p.mu.Lock()
		// The instance is the whole group: a background process the app
		// left behind would otherwise survive into the next restart (and
		// hold our output pipes open). The guard normally did this
		// already; it may have been killed before it could.
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		err = cmd.Wait() // reaps the zombie at once; also closes the /dev/null stdin os/exec opened
		p.reaped = true
		p.mu.Unlock()
	} else {
		// Should not happen; fall back to a plain wait, not under p.mu
		// since it may block for the whole run. Leftovers of the group are
		// then not cleaned up.
		err = cmd.Wait()
		p.mu.Lock()
		p.reaped = true
		p.mu.Unlock()
	}
	runtime.UnlockOSThread() // child reaped: the thread may go

	// The guard is gone, so the status pipe is at EOF once its records
	// are read; only a broken guard could have leaked its write end.
	t := time.NewTimer(outputDrainTimeout)
	select {
	case <-p.statusDone:
	case <-t.C:
		p.status.Close() // unblocks the reader's Read: the pipe is in the runtime poller
		<-p.statusDone
	}
	t.Stop()
	p.ctlMu.Lock()
	p.ctl.Close() // only now: EOF would make a live guard kill the group
	p.ctl = nil
	p.ctlMu.Unlock()

	p.state = cmd.ProcessState
	var exitErr *osexec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		p.waitErr = err
	}
	p.endedAt = time.Now()
	close(p.exited)
}

// signalGroup sends sig to the process group, unless the leader was
// already reaped (then the group id is no longer ours to signal).
func (p *proc) signalGroup(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return nil
	}
	if err := syscall.Kill(-p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill -%s %d: %w", signalName(sig), p.pid, err)
	}
	return nil
}

// waitOutput waits until the copiers saw EOF on both pipes, or, after
// outputDrainTimeout, closes the pipes to end them. Call after exited.
func (p *proc) waitOutput(log *slog.Logger) {
	t := time.NewTimer(outputDrainTimeout)
	defer t.Stop()
	select {
	case <-p.copyDone:
		return
	case <-t.C:
	}
	log.Warn("output pipes still open after the process group ended; a descendant left the group; closing them")
	for _, f := range p.pipes {
		f.Close() // unblocks the copier's Read: pipes are in the runtime poller
	}
	<-p.copyDone
}

// copy moves one output stream into its log file. It keeps draining the
// pipe even when writing fails (disk full): a child blocked on a full pipe
// would hang, which is worse than losing its output.
func (p *proc) copy(r *os.File, w io.Writer, stream string, log *slog.Logger) {
	defer p.copiers.Done()
	defer r.Close()
	buf := make([]byte, 32<<10)
	var failing bool
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				if !failing {
					log.Error("writing process output; dropping it until writes succeed again", "stream", stream, "err", werr)
				}
				failing = true
			} else {
				failing = false
			}
		}
		if err != nil {
			return // EOF, or the pipe was closed by waitOutput
		}
	}
}

// deadlineReason is the exit reason of a run its guard ended at the
// deadline: the agent did not renew it in time, and most likely could not
// run at all (frozen, starved), since it stops the process itself first.
const deadlineReason = "killed: lease deadline passed without the agent"

// deadlineKilled reports whether the guard ended the run at its deadline.
// Call after exited.
func (p *proc) deadlineKilled() bool { return p.end.kind == guardRecDeadline }

// exitDesc describes how the run ended, and its exit code (-1: signal).
// Call after exited. The command's own status comes from the guard's
// record; the guard's status, when it left none, means it was killed from
// outside (a group SIGKILL by Stop, or its own EOF kill).
func (p *proc) exitDesc() (string, int) {
	switch p.end.kind {
	case guardRecDeadline:
		return deadlineReason, -1
	case guardRecExited:
		return describeWait(syscall.WaitStatus(p.end.v), "")
	}
	if p.waitErr != nil || p.state == nil {
		return fmt.Sprintf("wait: %v", p.waitErr), -1
	}
	ws, ok := p.state.Sys().(syscall.WaitStatus)
	if !ok {
		return p.state.String(), p.state.ExitCode()
	}
	return describeWait(ws, "exec guard ")
}

// describeWait describes a wait status; who prefixes a normal exit, which
// for the guard itself is an internal failure, not the command's code.
func describeWait(ws syscall.WaitStatus, who string) (string, int) {
	switch {
	case ws.Exited():
		return fmt.Sprintf("%sexited with code %d", who, ws.ExitStatus()), ws.ExitStatus()
	case ws.Signaled():
		return "killed by signal " + signalName(ws.Signal()), -1
	default:
		return fmt.Sprintf("wait status %#x", uint32(ws)), -1
	}
}

// waitExitNoReap blocks until the process pid has exited, leaving it
// waitable (a zombie). syscall has no waitid wrapper.
func waitExitNoReap(pid int) error {
	const pPID = 1      // P_PID
	var info [16]uint64 // siginfo_t: 128 bytes, 8-aligned
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		switch errno {
		case 0:
			return nil
		case syscall.EINTR:
			continue
		default:
			return fmt.Errorf("waitid %d: %w", pid, errno)
		}
	}
}
