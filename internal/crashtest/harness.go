//go:build unix

// Package crashtest runs go-cluster nodes as separate processes and checks,
// from the event logs they write, that at most one of them acts as the
// leader at any time while they are killed, stepped down and partitioned.
//
// A node is the calling binary itself, re-executed with the environment of
// NodeConfig.Env: tests call MaybeRunNode from TestMain, the bench from
// main, and testnode is a stand-alone node program for manual experiments.
package crashtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Cluster starts and controls node processes that share a platform.
type Cluster struct {
	Exe      string        // binary that runs MaybeRunNode first; default os.Executable()
	Dir      string        // event logs and stderr files
	Platform string        // platform name
	LeaseTTL time.Duration // 0: library default
	Mode     string        // "" or ModeRing: what the nodes run

	mu    sync.Mutex
	nodes map[string]*Proc
	order []string
}

// Proc is one node process (the latest incarnation of a node ID).
type Proc struct {
	ID      string
	LogPath string
	ErrPath string
	URL     string

	cmd      *exec.Cmd
	done     chan struct{}
	err      error // Wait's result, once done is closed
	stopping atomic.Bool
}

// NewCluster prepares a cluster whose files live in dir.
func NewCluster(dir, platform string, ttl time.Duration) (*Cluster, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return &Cluster{Exe: exe, Dir: dir, Platform: platform, LeaseTTL: ttl, nodes: map[string]*Proc{}}, nil
}

// Start starts node id connecting to natsURL. A node ID that ran before
// (and was killed or stopped) starts again and appends to the same log.
func (c *Cluster) Start(id, natsURL string) (*Proc, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.nodes[id]; old != nil && !old.Exited() {
		return nil, fmt.Errorf("node %s is still running", id)
	}
	p := &Proc{
		ID:      id,
		LogPath: filepath.Join(c.Dir, id+".events"),
		ErrPath: filepath.Join(c.Dir, id+".stderr"),
		URL:     natsURL,
		done:    make(chan struct{}),
	}
	stderr, err := os.OpenFile(p.ErrPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "=== crashtest: starting %s at %s\n", id, time.Now().Format(time.RFC3339Nano))
	cfg := NodeConfig{NATSURL: natsURL, NodeID: id, Platform: c.Platform, LeaseTTL: c.LeaseTTL, LogPath: p.LogPath, Mode: c.Mode}
	if c.Mode == ModeSQLite {
		cfg.DataDir = c.DataDir(id)
	}
	cmd := exec.Command(c.Exe)
	// A race-enabled node would sleep a second at exit (the race runtime's
	// atexit_sleep_ms); the harness waits for exits, so skip that.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(append(os.Environ(), cfg.Env()...), "GORACE="+gorace)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	// Own process group: a terminal's ^C goes to the driver, which stops
	// the nodes itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		stderr.Close()
		return nil, err
	}
	p.cmd = cmd
	go func() {
		p.err = cmd.Wait()
		stderr.Close()
		close(p.done)
	}()
	if _, ok := c.nodes[id]; !ok {
		c.order = append(c.order, id)
	}
	c.nodes[id] = p
	return p, nil
}

// DataDir is node id's data directory in ModeSQLite (kept across restarts).
func (c *Cluster) DataDir(id string) string { return filepath.Join(c.Dir, id) }

// DBPath is node id's database in ModeSQLite: the live one while it leads.
func (c *Cluster) DBPath(id string) string { return SQLitePath(c.DataDir(id)) }

// Node returns the latest process of node id.
func (c *Cluster) Node(id string) *Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// IDs lists the node IDs in the order they were first started.
func (c *Cluster) IDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.order...)
}

// LogPaths lists every node's event log.
func (c *Cluster) LogPaths() []string {
	var out []string
	for _, id := range c.IDs() {
		out = append(out, filepath.Join(c.Dir, id+".events"))
	}
	return out
}

// Events reads every node's event log.
func (c *Cluster) Events() ([]Event, error) { return ReadEvents(c.LogPaths()...) }

// State reads the events and derives the intervals.
func (c *Cluster) State() ([]Event, []Interval, error) {
	evs, err := c.Events()
	if err != nil {
		return nil, nil, err
	}
	ivs, err := Intervals(evs)
	return evs, ivs, err
}

// ErrTimeout is returned by WaitFor when the condition did not hold in time.
var ErrTimeout = errors.New("condition not met in time")

// WaitFor polls the event logs until cond holds, cond fails, a node exits
// unexpectedly (unexpected reports which), or timeout passes.
func (c *Cluster) WaitFor(timeout time.Duration, cond func(evs []Event, ivs []Interval) (bool, error)) ([]Event, []Interval, error) {
	deadline := time.Now().Add(timeout)
	for {
		evs, ivs, err := c.State()
		if err != nil {
			return evs, ivs, err
		}
		ok, err := cond(evs, ivs)
		if err != nil || ok {
			return evs, ivs, err
		}
		if time.Now().After(deadline) {
			return evs, ivs, fmt.Errorf("%w after %v", ErrTimeout, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// SettledLeader waits until exactly one node is active and its activation
// has finished (its "serving" event), and returns its interval. Two active
// nodes fail at once.
func (c *Cluster) SettledLeader(timeout time.Duration) (Interval, error) {
	var leader Interval
	_, _, err := c.WaitFor(timeout, func(evs []Event, ivs []Interval) (bool, error) {
		act := Active(ivs)
		if len(act) > 1 {
			return false, fmt.Errorf("%d nodes active at once: %v", len(act), act)
		}
		if len(act) == 1 && Has(evs, KindServing, act[0].Node, act[0].Epoch) {
			leader = act[0]
			return true, nil
		}
		return false, nil
	})
	return leader, err
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Crashed reports whether the process exited without being stopped or
// killed by the harness, and how.
func (p *Proc) Crashed() (bool, error) {
	if !p.Exited() || p.stopping.Load() {
		return false, nil
	}
	return true, p.err
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// ExitErr is the process's exit status once it exited (nil: exit code 0).
func (p *Proc) ExitErr() error {
	<-p.done
	return p.err
}

// Pid is the process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill notes the time, SIGKILLs the process, waits for it to be gone and
// appends a "killed" event stamped with the noted time to its log: the
// node's term, if it had one, ended no later than that.
func (p *Proc) Kill() (time.Time, error) {
	p.stopping.Store(true)
	at := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return at, err
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		return at, fmt.Errorf("node %s did not die within 10s of SIGKILL", p.ID)
	}
	return at, AppendEvent(p.LogPath, KindKilled, p.ID, 0, at)
}

// Stop sends SIGTERM and waits for a clean exit. A process that does not
// exit in time is killed and reported.
func (p *Proc) Stop(timeout time.Duration) error {
	p.stopping.Store(true)
	if p.Exited() {
		return p.exitError()
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.done:
		return p.exitError()
	case <-time.After(timeout):
		_, _ = p.Kill()
		return fmt.Errorf("node %s did not exit within %v of SIGTERM; killed", p.ID, timeout)
	}
}

func (p *Proc) exitError() error {
	if err := p.ExitErr(); err != nil {
		return fmt.Errorf("node %s: %w", p.ID, err)
	}
	return nil
}

// KillAll kills every running node (for cleanup).
func (c *Cluster) KillAll() {
	c.mu.Lock()
	procs := make([]*Proc, 0, len(c.nodes))
	for _, p := range c.nodes {
		procs = append(procs, p)
	}
	c.mu.Unlock()
	for _, p := range procs {
		if !p.Exited() {
			_, _ = p.Kill()
		}
	}
}

// StopAll stops every running node gracefully, one after the other.
func (c *Cluster) StopAll(timeout time.Duration) error {
	var errs []error
	for _, id := range c.IDs() {
		if p := c.Node(id); p != nil && !p.Exited() {
			errs = append(errs, p.Stop(timeout))
		}
	}
	return errors.Join(errs...)
}

// RaceReports returns the nodes whose stderr holds a data race report.
func (c *Cluster) RaceReports() []string {
	var out []string
	for _, id := range c.IDs() {
		b, err := os.ReadFile(filepath.Join(c.Dir, id+".stderr"))
		if err == nil && strings.Contains(string(b), "WARNING: DATA RACE") {
			out = append(out, id)
		}
	}
	return out
}

// Dump returns the event logs (merged in time order) and the last lines of
// every node's stderr, for a failure report.
func (c *Cluster) Dump(stderrLines int) string {
	var b strings.Builder
	evs, err := c.Events()
	if err != nil {
		fmt.Fprintf(&b, "reading events: %v\n", err)
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].At.Before(evs[j].At) })
	b.WriteString("--- events (time order)\n")
	for _, e := range evs {
		fmt.Fprintf(&b, "%s %-14s %s epoch=%d\n", e.At.Format("15:04:05.000000"), e.Kind, e.Node, e.Epoch)
	}
	for _, id := range c.IDs() {
		data, err := os.ReadFile(filepath.Join(c.Dir, id+".stderr"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > stderrLines {
			lines = lines[len(lines)-stderrLines:]
		}
		fmt.Fprintf(&b, "--- %s stderr (last %d lines)\n%s\n", id, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}
