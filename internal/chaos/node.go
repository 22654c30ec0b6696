//go:build linux

package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ozanturksever/go-cluster/internal/netlab"
)

// Node is one machine of the lab: a network namespace, a cgroup, and the
// processes running in them: the agent and, in the external-NATS topology,
// its nats-server.
//
// Every node sees the SQLite job's database at the same path (a standby
// applies the leader's changes to the file the job names, as on separate
// machines), so each agent runs in a mount namespace where that directory
// is bind-mounted from the node's own: `ip netns exec` gives every command
// a private mount namespace already, the bind mount is made in it before
// the agent is exec'd.
type Node struct {
	Index int
	ID    string // the agent's -node, also its NATS server name
	Host  *netlab.Host

	lab *Lab
	dir string
	cg  *cgroup

	mu    sync.Mutex
	agent *nodeProc
	nats  *nodeProc // external-NATS topology only
}

// nodeProc is a process started in a node.
type nodeProc struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
	logFrom int64 // size of the log when it started: its own lines follow
}

func (p *nodeProc) pid() int { return p.cmd.Process.Pid }

func (p *nodeProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// LogPath is where the agent's stderr and stdout go (appended across
// restarts, each start marked).
func (n *Node) LogPath() string { return filepath.Join(n.dir, "agent.log") }

// NATSLogPath is the nats-server's log in the external-NATS topology.
func (n *Node) NATSLogPath() string { return filepath.Join(n.dir, "nats-server.log") }

func (n *Node) dataDir() string   { return filepath.Join(n.dir, "data") }
func (n *Node) sqliteDir() string { return filepath.Join(n.dir, "sqlite") }

// natsURL is where clients reach the node's NATS server.
func (n *Node) natsURL() string { return fmt.Sprintf("nats://%s:4222", n.Host.Addr) }

func (n *Node) routeAddr() string { return fmt.Sprintf("%s:6222", n.Host.Addr) }

// spawn starts argv in the node's namespace and cgroup, its output
// appended to logPath.
func (n *Node) spawn(name, logPath string, argv ...string) (*nodeProc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy
	off, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "=== chaos: %s starting at %s\n", name, time.Now().Format(time.RFC3339Nano))
	// Not bound to a context: the lab kills the node's cgroup.
	cmd := n.Host.Command(context.Background(), argv[0], argv[1:]...)
	// The cgroup from the first instruction on (clone3 CLONE_INTO_CGROUP):
	// everything the process starts is in it too.
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = n.cg.fd()
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("chaos: start %s on %s: %w", name, n.ID, err)
	}
	p := &nodeProc{name: name, cmd: cmd, done: make(chan struct{}), logPath: logPath, logFrom: off}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// cleanEnv is the test's environment without GCL_ variables, which would
// change what an agent does (GCL_NATS_URL next to -server is an error).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GCL_") {
			env = append(env, kv)
		}
	}
	return env
}

// startAgent starts the node's agent; it does not wait for it.
func (n *Node) startAgent() error {
	args := []string{"/bin/sh", "-c", `mount --bind "$1" "$2" && shift 2 && exec "$@"`, "sh",
		n.sqliteDir(), n.lab.sqliteMount(), n.lab.cfg.Gcl, "agent",
		"-node", n.ID, "-data-dir", n.dataDir(), "-http", n.Host.Addr.String() + ":4646"}
	if n.lab.external() {
		args = append(args, "-nats", n.natsURL())
	} else {
		args = append(args, "-server", "-nats-host", n.Host.Addr.String())
		for _, o := range n.lab.Nodes {
			if o != n {
				args = append(args, "-join", o.routeAddr())
			}
		}
	}
	p, err := n.spawn("agent", n.LogPath(), args...)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.agent = p
	n.mu.Unlock()
	return nil
}

// waitAgentReady waits for the agent's "agent ready" line.
func (n *Node) waitAgentReady(ctx context.Context) error {
	p := n.agentProc()
	if p == nil {
		return fmt.Errorf("chaos: %s has no agent", n.ID)
	}
	return waitLog(ctx, p, `msg="agent ready"`)
}

// waitLog waits for want in the process's own part of its log.
func waitLog(ctx context.Context, p *nodeProc, want string) error {
	err := pollUntil(ctx, 50*time.Millisecond, func() (bool, error) {
		if bytes.Contains(readFrom(p.logPath, p.logFrom), []byte(want)) {
			return true, nil
		}
		if p.exited() {
			return false, fmt.Errorf("chaos: %s exited before logging %q", p.name, want)
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, lastLines(string(readFrom(p.logPath, p.logFrom)), 30))
	}
	return nil
}

func readFrom(path string, off int64) []byte {
	b, err := os.ReadFile(path)
	if err != nil || off > int64(len(b)) {
		return nil
	}
	return b[off:]
}

func (n *Node) agentProc() *nodeProc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.agent
}

// AgentPid is the agent's process ID (0 when none was started).
func (n *Node) AgentPid() int {
	if p := n.agentProc(); p != nil {
		return p.pid()
	}
	return 0
}

// AgentRunning reports whether the agent process exists (it may be
// stopped or frozen).
func (n *Node) AgentRunning() bool {
	p := n.agentProc()
	return p != nil && !p.exited()
}

// SignalAgent sends sig to the agent process alone, not to its children.
func (n *Node) SignalAgent(sig syscall.Signal) error {
	p := n.agentProc()
	if p == nil || p.exited() {
		return fmt.Errorf("chaos: %s has no running agent", n.ID)
	}
	return syscall.Kill(p.pid(), sig)
}

// Kill SIGKILLs everything in the node (cgroup.kill: agent, its NATS
// server, job processes, all in one instant) and waits until it is gone.
//
// The node then gets a new cgroup of the same name: on Linux 6.18 at
// least, a cgroup that was killed through cgroup.kill kills every process
// later cloned into it with CLONE_INTO_CGROUP (writing to cgroup.procs is
// not affected), so the restarted agent would die at once.
func (n *Node) Kill(ctx context.Context) error {
	if err := n.cg.Kill(); err != nil {
		return err
	}
	if err := n.waitDead(ctx); err != nil {
		return err
	}
	path := n.cg.path
	if err := n.cg.Remove(ctx); err != nil {
		return err
	}
	cg, err := newCgroup(filepath.Dir(path), filepath.Base(path))
	if err != nil {
		return err
	}
	n.cg = cg
	return nil
}

// waitDead waits until the cgroup is empty and the started processes are
// reaped.
func (n *Node) waitDead(ctx context.Context) error {
	if err := n.cg.waitEmpty(ctx); err != nil {
		return fmt.Errorf("chaos: %s does not die: %w", n.ID, err)
	}
	n.mu.Lock()
	procs := []*nodeProc{n.agent, n.nats}
	n.mu.Unlock()
	for _, p := range procs {
		if p == nil {
			continue
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			return fmt.Errorf("chaos: %s of %s not reaped: %w", p.name, n.ID, ctx.Err())
		}
	}
	return nil
}

// Freeze freezes (or thaws) the whole node: agent, NATS, jobs. Freezing
// returns once every task is frozen.
func (n *Node) Freeze(ctx context.Context, on bool) error {
	if err := n.cg.SetFrozen(on); err != nil {
		return err
	}
	return pollUntil(ctx, time.Millisecond, func() (bool, error) {
		fr, err := n.cg.Frozen()
		return fr == on, err
	})
}

// LogTail returns the last lines of the agent's log (and of the
// nats-server's, in the external topology).
func (n *Node) LogTail(lines int) string {
	out := fmt.Sprintf("--- %s agent log (%s), last %d lines\n%s", n.ID, n.LogPath(), lines, lastLines(readString(n.LogPath()), lines))
	if n.lab.external() {
		out += fmt.Sprintf("\n--- %s nats-server log (%s), last %d lines\n%s", n.ID, n.NATSLogPath(), lines, lastLines(readString(n.NATSLogPath()), lines))
	}
	return out
}

func readString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// errNoAgent is returned when a fault needs an agent that is not running.
var errNoAgent = errors.New("chaos: agent not running")
