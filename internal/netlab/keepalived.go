//go:build linux

package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// keepalived, the VRRP reference the go-cluster VIP failover is compared
// with. Each node runs its own keepalived (as `ip netns exec NODE
// keepalived -n ...`) with a per-node configuration, pid files and log in a
// private directory, so nothing under /run or /etc is shared or touched.
//
// VRRP runs over multicast (224.0.0.18, the default) on the lab bridge,
// which floods it to every port; KeepalivedConfig.Unicast switches to
// unicast_peer lists.

// keepalivedTempPattern names StartKeepalived's temporary directories.
const keepalivedTempPattern = "netlab-keepalived-"

// DefaultAdvertInt is keepalived's default advert_int.
const DefaultAdvertInt = time.Second

// DefaultKeepalivedVIPOctet is the last octet of the default VIP.
const DefaultKeepalivedVIPOctet = 100

// KeepalivedConfig configures one VRRP instance run by every node.
type KeepalivedConfig struct {
	// VIP is the virtual address with its prefix length; zero means
	// <lab subnet>.100/32.
	VIP netip.Prefix
	// RouterID is the virtual_router_id, 1..255; 0 means 51.
	RouterID int
	// AdvertInt is the advertisement interval; 0 means 1s, keepalived's
	// default. Whole seconds use VRRPv2; anything else switches to VRRPv3
	// (centisecond resolution).
	AdvertInt time.Duration
	// Priorities holds each node's priority (1..254); missing entries
	// default to 150-10*i, so node 0 wins the first election.
	Priorities []int
	// Preempt lets a higher-priority node take the VIP back when it
	// returns. The default (false) sets nopreempt, with every node starting
	// in state BACKUP, so that a restarted node joins as a backup and every
	// trial starts from a known state.
	Preempt bool
	// Unicast sends adverts to the other nodes' addresses instead of the
	// VRRP multicast group.
	Unicast bool
	// Dir holds configurations, pid files and logs; empty means a new
	// temporary directory, removed by Close.
	Dir string
	// Binary is the keepalived executable; empty means "keepalived" on
	// PATH (or /usr/sbin/keepalived).
	Binary string
	// Output, when set, receives every keepalived log line prefixed with
	// the node's label.
	Output io.Writer
}

func keepalivedBinary() string {
	if p, err := exec.LookPath("keepalived"); err == nil {
		return p
	}
	return "/usr/sbin/keepalived"
}

func (c KeepalivedConfig) withDefaults(lab *Lab) (KeepalivedConfig, error) {
	if !c.VIP.IsValid() {
		c.VIP = netip.PrefixFrom(hostAddr(lab.Subnet, DefaultKeepalivedVIPOctet), 32)
	}
	if !c.VIP.Addr().Is4() {
		return c, fmt.Errorf("netlab: keepalived VIP must be IPv4 here, got %s", c.VIP)
	}
	if c.RouterID == 0 {
		c.RouterID = 51
	}
	if c.RouterID < 1 || c.RouterID > 255 {
		return c, fmt.Errorf("netlab: RouterID must be 1..255, got %d", c.RouterID)
	}
	if c.AdvertInt == 0 {
		c.AdvertInt = DefaultAdvertInt
	}
	if c.AdvertInt < 10*time.Millisecond || c.AdvertInt > 255*time.Second {
		return c, fmt.Errorf("netlab: AdvertInt must be 10ms..255s, got %s", c.AdvertInt)
	}
	prios := make([]int, len(lab.Nodes))
	for i := range prios {
		prios[i] = 150 - 10*i
		if i < len(c.Priorities) && c.Priorities[i] != 0 {
			prios[i] = c.Priorities[i]
		}
		if prios[i] < 1 || prios[i] > 254 {
			return c, fmt.Errorf("netlab: priority of node %d must be 1..254, got %d", i, prios[i])
		}
	}
	c.Priorities = prios
	if c.Binary == "" {
		c.Binary = keepalivedBinary()
	}
	return c, nil
}

// Keepalived runs one keepalived per lab node. Its methods are safe for
// concurrent use.
type Keepalived struct {
	lab    *Lab
	cfg    KeepalivedConfig
	ctx    context.Context
	dir    string
	tmpDir bool
	nodes  []*kaNode
}

type kaNode struct {
	k     *Keepalived
	host  *Host
	conf  string
	log   *kaLog
	mu    sync.Mutex
	proc  *kaProc // nil when not running
	argv  []string
	label string
}

type kaProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when Wait returned
}

// StartKeepalived writes a configuration per node and starts keepalived on
// every node. The processes live until Close, Stop/Kill, or until ctx ends.
func StartKeepalived(ctx context.Context, lab *Lab, cfg KeepalivedConfig) (_ *Keepalived, err error) {
	cfg, err = cfg.withDefaults(lab)
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath(cfg.Binary); err != nil {
		return nil, fmt.Errorf("netlab: keepalived not installed: %w", err)
	}
	k := &Keepalived{lab: lab, cfg: cfg, ctx: ctx, dir: cfg.Dir}
	if k.dir == "" {
		if k.dir, err = os.MkdirTemp("", keepalivedTempPattern); err != nil {
			return nil, fmt.Errorf("netlab: %w", err)
		}
		k.tmpDir = true
	}
	defer func() {
		if err != nil {
			_ = k.Close()
		}
	}()
	for i, h := range lab.Nodes {
		n := &kaNode{k: k, host: h, label: h.Label, log: newKALog(h.Label, cfg.Output)}
		n.conf = filepath.Join(k.dir, h.Label+".conf")
		if err := os.WriteFile(n.conf, []byte(k.config(i)), 0o644); err != nil {
			return nil, fmt.Errorf("netlab: write keepalived config: %w", err)
		}
		pid := func(kind string) string { return filepath.Join(k.dir, h.Label+"."+kind+".pid") }
		n.argv = []string{
			"--dont-fork", "--log-console", "--log-detail", "--no-syslog",
			"--vrrp", // VRRP only: no checker (IPVS) or BFD child
			"--use-file", n.conf,
			"--pid", pid("main"), "--vrrp_pid", pid("vrrp"),
			"--checkers_pid", pid("checkers"), "--bfd_pid", pid("bfd"),
		}
		k.nodes = append(k.nodes, n)
	}
	for i := range k.nodes {
		if err := k.Start(i); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// Config returns the effective configuration (defaults filled in).
func (k *Keepalived) Config() KeepalivedConfig { return k.cfg }

// VIP returns the virtual address.
func (k *Keepalived) VIP() netip.Addr { return k.cfg.VIP.Addr() }

// ConfigText returns the keepalived.conf of node i.
func (k *Keepalived) ConfigText(i int) string { return k.config(i) }

func (k *Keepalived) config(i int) string {
	c := k.cfg
	var b strings.Builder
	h := k.lab.Nodes[i]
	fmt.Fprintf(&b, "# written by go-cluster internal/netlab for %s\n", h.Name)
	fmt.Fprintf(&b, "global_defs {\n  router_id %s\n", h.Name)
	advert := strconv.FormatInt(int64(c.AdvertInt/time.Second), 10)
	if c.AdvertInt%time.Second != 0 {
		b.WriteString("  vrrp_version 3\n")
		cs := (c.AdvertInt + 5*time.Millisecond) / (10 * time.Millisecond)
		advert = strconv.FormatFloat(float64(cs)/100, 'f', -1, 64)
	}
	b.WriteString("}\n\n")
	b.WriteString("vrrp_instance VI_1 {\n")
	b.WriteString("  state BACKUP\n")
	fmt.Fprintf(&b, "  interface %s\n", h.Iface)
	fmt.Fprintf(&b, "  virtual_router_id %d\n", c.RouterID)
	fmt.Fprintf(&b, "  priority %d\n", c.Priorities[i])
	fmt.Fprintf(&b, "  advert_int %s\n", advert)
	if !c.Preempt {
		b.WriteString("  nopreempt\n")
	}
	if c.Unicast {
		fmt.Fprintf(&b, "  unicast_src_ip %s\n  unicast_peer {\n", h.Addr)
		for j, o := range k.lab.Nodes {
			if j != i {
				fmt.Fprintf(&b, "    %s\n", o.Addr)
			}
		}
		b.WriteString("  }\n")
	}
	fmt.Fprintf(&b, "  virtual_ipaddress {\n    %s dev %s\n  }\n}\n", c.VIP, h.Iface)
	return b.String()
}

func (k *Keepalived) node(i int) (*kaNode, error) {
	if i < 0 || i >= len(k.nodes) {
		return nil, fmt.Errorf("netlab: no keepalived node %d", i)
	}
	return k.nodes[i], nil
}

// Start starts keepalived on node i; it is an error if it is running.
func (k *Keepalived) Start(i int) error {
	n, err := k.node(i)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		return fmt.Errorf("netlab: keepalived on %s already running", n.label)
	}
	if err := k.ctx.Err(); err != nil {
		return err
	}
	cmd := n.host.Command(k.ctx, k.cfg.Binary, n.argv...)
	cmd.Stdout = n.log
	cmd.Stderr = n.log
	n.log.start()
	if err := cmd.Start(); err != nil {
		n.log.stopped()
		return fmt.Errorf("netlab: start keepalived on %s: %w", n.label, err)
	}
	p := &kaProc{cmd: cmd, done: make(chan struct{})}
	n.proc = p
	go func() {
		_ = cmd.Wait()
		n.mu.Lock()
		if n.proc == p {
			n.proc = nil
			n.log.stopped()
		}
		n.mu.Unlock()
		close(p.done)
	}()
	return nil
}

// Running reports whether keepalived runs on node i.
func (k *Keepalived) Running(i int) bool {
	n, err := k.node(i)
	if err != nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil
}

const kaStopTimeout = 10 * time.Second

// signal sends sig (to the main process, or to its whole process group
// when group is set) and waits for keepalived on node i to exit, escalating
// to SIGKILL after kaStopTimeout. It is not an error if it is not running.
func (k *Keepalived) signal(i int, sig syscall.Signal, group bool) error {
	n, err := k.node(i)
	if err != nil {
		return err
	}
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p == nil {
		return nil
	}
	if group {
		err = Signal(p.cmd, sig)
	} else {
		err = p.cmd.Process.Signal(sig)
	}
	if err != nil && !errors.Is(err, os.ErrProcessDone) && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("netlab: signal keepalived on %s: %w", n.label, err)
	}
	t := time.NewTimer(kaStopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	}
	_ = Signal(p.cmd, syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("netlab: keepalived on %s ignored %v for %s; killed", n.label, sig, kaStopTimeout)
}

// Stop stops keepalived on node i gracefully (SIGTERM to the main
// process: a master sends an advert with priority 0 and removes the VIP)
// and waits for it to exit.
func (k *Keepalived) Stop(i int) error { return k.signal(i, syscall.SIGTERM, false) }

// Kill sends SIGKILL to every keepalived process of node i (the process
// group) and waits for the main one to exit. A master leaves the VIP
// configured: nothing removes it.
func (k *Keepalived) Kill(i int) error { return k.signal(i, syscall.SIGKILL, true) }

// Restart stops keepalived on node i gracefully if it runs, and starts it.
func (k *Keepalived) Restart(i int) error {
	if err := k.Stop(i); err != nil {
		return err
	}
	return k.Start(i)
}

// State returns node i's VRRP state from its log: "MASTER", "BACKUP",
// "FAULT", "" (started, no state yet) or "STOPPED".
func (k *Keepalived) State(i int) string {
	n, err := k.node(i)
	if err != nil {
		return ""
	}
	s, _ := n.log.current()
	return s
}

// WaitState waits until node i's current keepalived run reports state.
func (k *Keepalived) WaitState(ctx context.Context, i int, state string) error {
	n, err := k.node(i)
	if err != nil {
		return err
	}
	for {
		s, ch := n.log.current()
		if s == state {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("netlab: keepalived on %s is %q, waiting for %q: %w", n.label, s, state, ctx.Err())
		case <-ch:
		}
	}
}

// Log returns node i's retained keepalived log lines.
func (k *Keepalived) Log(i int) string {
	n, err := k.node(i)
	if err != nil {
		return ""
	}
	return n.log.text()
}

// Holders returns the nodes that have the VIP configured.
func (k *Keepalived) Holders() ([]int, error) {
	var out []int
	for i, h := range k.lab.Nodes {
		ok, err := h.Holds(k.VIP())
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, i)
		}
	}
	return out, nil
}

// Master returns the node holding the VIP; it is an error unless exactly
// one node holds it.
func (k *Keepalived) Master() (int, error) {
	hs, err := k.Holders()
	if err != nil {
		return -1, err
	}
	if len(hs) != 1 {
		return -1, fmt.Errorf("netlab: %d nodes hold %s: %v", len(hs), k.VIP(), hs)
	}
	return hs[0], nil
}

// WaitMaster waits for a settled VRRP group: exactly one node holds the
// VIP and reports MASTER, and every other running node has reported BACKUP
// for at least two advert intervals. The last condition matters: a backup
// that has just started runs its master-down timer from its start, not
// from the master's last advert, until it hears one; killing the master
// before then makes the trial measure keepalived's start-up instead.
func (k *Keepalived) WaitMaster(ctx context.Context) (int, error) {
	const poll = 10 * time.Millisecond
	var last string
	for {
		m, why := k.settled()
		if why == "" {
			return m, nil
		}
		last = why
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return -1, fmt.Errorf("netlab: keepalived not settled (%s): %w", last, ctx.Err())
		case <-t.C:
		}
	}
}

func (k *Keepalived) settled() (int, string) {
	m, err := k.Master()
	if err != nil {
		return -1, err.Error()
	}
	for i := range k.nodes {
		want := "BACKUP"
		if i == m {
			want = "MASTER"
		} else if !k.Running(i) {
			continue
		}
		s, since := k.nodes[i].log.stateSince()
		if s != want {
			return -1, fmt.Sprintf("%s is %q", k.nodes[i].label, s)
		}
		if want == "BACKUP" && time.Since(since) < 2*k.cfg.AdvertInt {
			return -1, fmt.Sprintf("%s is BACKUP for %s only", k.nodes[i].label, time.Since(since).Round(time.Millisecond))
		}
	}
	return m, ""
}

// Close kills every keepalived (SIGKILL to each process group) and removes
// the temporary directory. The VIP may stay configured on the last master.
func (k *Keepalived) Close() error {
	var errs []error
	for i := range k.nodes {
		errs = append(errs, k.Kill(i))
	}
	if k.tmpDir {
		errs = append(errs, os.RemoveAll(k.dir))
	}
	return errors.Join(errs...)
}

// kaLog collects a keepalived's output and tracks its VRRP state.
type kaLog struct {
	label string
	out   io.Writer

	mu      sync.Mutex
	partial []byte
	lines   []string
	state   string
	since   time.Time // when state was entered
	changed chan struct{}
}

const kaLogLines = 5000

func newKALog(label string, out io.Writer) *kaLog {
	return &kaLog{label: label, out: out, state: "STOPPED", changed: make(chan struct{})}
}

func (l *kaLog) setLocked(state string) {
	l.state = state
	l.since = time.Now()
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *kaLog) start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addLocked("--- netlab: starting keepalived ---")
	l.setLocked("")
}

func (l *kaLog) stopped() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.addLocked(string(l.partial))
		l.partial = nil
	}
	l.addLocked("--- netlab: keepalived exited ---")
	l.setLocked("STOPPED")
}

func (l *kaLog) current() (string, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state, l.changed
}

func (l *kaLog) stateSince() (string, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state, l.since
}

func (l *kaLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func (l *kaLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		l.addLocked(line)
		// "(VI_1) Entering MASTER STATE", "... BACKUP STATE (init)"
		if j := strings.Index(line, "Entering "); j >= 0 {
			rest := line[j+len("Entering "):]
			if k := strings.Index(rest, " STATE"); k > 0 {
				l.setLocked(rest[:k])
			}
		}
	}
	return len(p), nil
}

func (l *kaLog) addLocked(line string) {
	if len(l.lines) >= kaLogLines {
		l.lines = append(l.lines[:0], l.lines[len(l.lines)/2:]...)
	}
	l.lines = append(l.lines, line)
	if l.out != nil {
		fmt.Fprintf(l.out, "%s: %s\n", l.label, line)
	}
}
