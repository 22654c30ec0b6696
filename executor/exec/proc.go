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
)

// outputDrainTimeout bounds how long we wait, after the process group is
// gone, for the output pipes to reach EOF. Only a descendant that left the
// group (setsid, setpgid) can still hold them open; we then close our read
// ends rather than wait for it forever.
const outputDrainTimeout = 2 * time.Second

// proc is one run of the command.
type proc struct {
	pid     int
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
}

// spawnSpec is everything needed to start one run.
type spawnSpec struct {
	path   string
	args   []string
	env    []string
	dir    string
	cred   *syscall.Credential
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
}

// spawn starts the process and its output copiers. It returns once the
// process runs (or failed to start).
func spawn(sp spawnSpec) (*proc, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("stderr pipe: %w", err)
	}
	cmd := &osexec.Cmd{
		Path:   sp.path,
		Args:   sp.args,
		Env:    sp.env,
		Dir:    sp.dir,
		Stdout: outW, // *os.File: handed to the child as is, no copy goroutine in os/exec
		Stderr: errW,
		SysProcAttr: &syscall.SysProcAttr{
			// Own process group: Stop signals kill(-pgid) and so reaches
			// every descendant that did not deliberately leave the group.
			Setpgid: true,
			// The child is SIGKILLed when its parent dies, so that an agent
			// crash does not leave orphaned apps running unsupervised (a
			// restarted agent would start a second copy). Only the direct
			// child gets this; its descendants are reached by group kills.
			Pdeathsig:  syscall.SIGKILL,
			Credential: sp.cred,
		},
	}
	p := &proc{exited: make(chan struct{}), copyDone: make(chan struct{}), pipes: []*os.File{outR, errR}}
	startErr := make(chan error, 1)
	go p.run(cmd, startErr)
	err = <-startErr
	// The child has its own copies of the write ends (or never will): close
	// ours, or the pipes would never reach EOF.
	outW.Close()
	errW.Close()
	if err != nil {
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

// run forks the child and waits for it, on one locked OS thread.
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
		// hold our output pipes open).
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

// exitDesc describes how the run ended, and its exit code (-1: signal).
func (p *proc) exitDesc() (string, int) {
	if p.waitErr != nil || p.state == nil {
		return fmt.Sprintf("wait: %v", p.waitErr), -1
	}
	ws, ok := p.state.Sys().(syscall.WaitStatus)
	if !ok {
		return p.state.String(), p.state.ExitCode()
	}
	switch {
	case ws.Exited():
		return fmt.Sprintf("exited with code %d", ws.ExitStatus()), ws.ExitStatus()
	case ws.Signaled():
		return "killed by signal " + signalName(ws.Signal()), -1
	default:
		return p.state.String(), -1
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
