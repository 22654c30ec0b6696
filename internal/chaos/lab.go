//go:build linux

package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ozanturksever/go-cluster/internal/netlab"
)

// Nodes is the lab's size: the smallest cluster with a quorum that
// survives one node.
const Nodes = 3

// DefaultVIP is the VIP job's address, in the lab's subnet.
var DefaultVIP = netip.MustParsePrefix("198.18.0.100/24")

// Config describes a lab.
type Config struct {
	// Gcl is the gcl binary.
	Gcl string
	// NATSServer, when set, is a nats-server binary: every node runs one
	// (clustered, JetStream) and its agent joins it with -nats instead of
	// embedding a server with -server. The topology of the NATS-restart
	// fault.
	NATSServer string
	// Dir is a scratch directory for the nodes' data, logs and job files;
	// the caller removes it.
	Dir string
	// Jobs is the job set; zero means StandardJobs(DefaultVIP).
	Jobs JobSet
	// Logf logs progress (t.Logf); nil is silent.
	Logf func(format string, args ...any)
}

// Lab is a running cluster under observation.
type Lab struct {
	cfg    Config
	Net    *netlab.Lab
	Nodes  []*Node
	Jobs   JobSet
	Obs    *Observer
	cgRoot string
	nc     *nats.Conn

	closeOnce sync.Once
	closeErr  error
}

// Start builds the lab: namespaces, cgroups, agents (and NATS servers), the
// observer; it submits the jobs and waits until they all run.
func Start(ctx context.Context, cfg Config) (_ *Lab, err error) {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if len(cfg.Jobs.Jobs) == 0 {
		cfg.Jobs = StandardJobs(DefaultVIP)
	}
	root, err := cgroup2Root()
	if err != nil {
		return nil, err
	}
	net, err := netlab.New(ctx, netlab.Config{Nodes: Nodes})
	if err != nil {
		return nil, err
	}
	l := &Lab{cfg: cfg, Net: net, Jobs: cfg.Jobs, cgRoot: root}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()
	// Leftovers of a killed run: we hold the netlab lock, so no live lab
	// owns them (netlab.New already killed their processes).
	if err := sweepCgroups(ctx, root); err != nil {
		return nil, fmt.Errorf("chaos: sweep cgroups: %w", err)
	}
	if err := os.MkdirAll(l.sqliteMount(), 0o755); err != nil {
		return nil, err
	}
	for i, h := range net.Nodes {
		n := &Node{Index: i, ID: h.Label, Host: h, lab: l, dir: filepath.Join(cfg.Dir, "nodes", h.Label)}
		for _, d := range []string{n.dataDir(), n.sqliteDir()} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, err
			}
		}
		if n.cg, err = newCgroup(root, cgroupPrefix+net.ID+"-"+h.Label); err != nil {
			return nil, err
		}
		l.Nodes = append(l.Nodes, n)
	}
	var cgs []string
	for _, n := range l.Nodes {
		cgs = append(cgs, n.cg.path)
	}
	if l.Obs, err = NewObserver(l.Jobs, net.Nodes, root, cgs); err != nil {
		return nil, err
	}
	started := time.Now()
	if l.external() {
		// An agent given -nats gives up at once on a NATS without
		// JetStream, which a cluster has only once a quorum of its
		// servers met: all servers first.
		if err := l.startNATSCluster(ctx); err != nil {
			return nil, err
		}
	}
	for _, n := range l.Nodes {
		if err := n.startAgent(); err != nil {
			return nil, err
		}
	}
	if err := l.waitReady(ctx, l.Nodes...); err != nil {
		return nil, err
	}
	cfg.Logf("chaos: %d agents ready after %v (lab %s, cgroups under %s)", Nodes, time.Since(started).Round(time.Millisecond), net.ID, root)
	if err := l.connect(); err != nil {
		return nil, err
	}
	jobDir := filepath.Join(cfg.Dir, "jobs")
	if err := l.Jobs.Write(jobDir, filepath.Join(l.sqliteMount(), "db.sqlite")); err != nil {
		return nil, err
	}
	if _, err := l.GCL(ctx, "job", "run", "-detach", jobDir); err != nil {
		return nil, err
	}
	submitted := time.Now()
	if err := l.WaitHealthy(ctx, 2*time.Minute, 2*time.Second); err != nil {
		status, _ := l.GCL(ctx, "job", "status")
		return nil, fmt.Errorf("chaos: jobs do not come up: %w\n%s\n%s", err, status, l.Logs(40))
	}
	cfg.Logf("chaos: %d jobs running after %v", len(l.Jobs.Jobs), time.Since(submitted).Round(time.Millisecond))
	if streams, err := l.LeaseStreams(ctx); err == nil {
		cfg.Logf("chaos: lease streams: %s", describeStreams(streams))
	}
	return l, nil
}

func (l *Lab) external() bool { return l.cfg.NATSServer != "" }

// connect opens the lab's own NATS connection (for JetStream's view of the
// streams), once.
func (l *Lab) connect() error {
	if l.nc != nil {
		return nil
	}
	nc, err := nats.Connect(l.natsURLs(), nats.Name("chaos lab"), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.Timeout(2*time.Second))
	if err != nil {
		return fmt.Errorf("chaos: connect to the lab's NATS: %w", err)
	}
	l.nc = nc
	return nil
}

// sqliteMount is the SQLite job's directory as every agent sees it.
func (l *Lab) sqliteMount() string { return filepath.Join(l.cfg.Dir, "sqlite") }

func (l *Lab) natsURLs() string {
	var urls []string
	for _, n := range l.Nodes {
		urls = append(urls, n.natsURL())
	}
	return strings.Join(urls, ",")
}

// Labels are the nodes' IDs, by index.
func (l *Lab) Labels() []string {
	var out []string
	for _, n := range l.Nodes {
		out = append(out, n.ID)
	}
	return out
}

// startNode starts the node's processes without waiting for the agent.
func (l *Lab) startNode(ctx context.Context, n *Node) error {
	if l.external() {
		if err := n.startNATS(); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := n.waitNATSReady(ctx); err != nil {
			return err
		}
	}
	return n.startAgent()
}

// waitReady waits until the nodes' agents (and NATS servers) are ready. An
// agent with an embedded clustered server is ready once its server has met
// a quorum of peers, so the nodes must be started together.
func (l *Lab) waitReady(ctx context.Context, nodes ...*Node) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var errs []error
	for _, n := range nodes {
		if err := n.waitAgentReady(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.ID, err))
		}
	}
	return errors.Join(errs...)
}

// Restart starts a node whose processes are dead and waits until it is
// ready.
func (l *Lab) Restart(ctx context.Context, n *Node) error {
	if err := l.startNode(ctx, n); err != nil {
		return err
	}
	return l.waitReady(ctx, n)
}

// Up is the set of nodes whose agent process exists and is not frozen
// (it may be stopped).
func (l *Lab) Up() mask {
	var m mask
	last := l.Obs.Last()
	for i, n := range l.Nodes {
		if n.AgentRunning() && !last.Frozen.has(i) {
			m |= bit(i)
		}
	}
	return m
}

// GCL runs the gcl command against the lab's NATS (from the root
// namespace, through the bridge) and returns its output.
func (l *Lab) GCL(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.cfg.Gcl, args...)
	cmd.Env = append(cleanEnv(), "GCL_NATS_URL="+l.natsURLs())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("chaos: gcl %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// WaitFor waits until cond holds for the observer's latest sample.
func (l *Lab) WaitFor(ctx context.Context, within time.Duration, what string, cond func(Sample) bool) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	err := pollUntil(ctx, 20*time.Millisecond, func() (bool, error) {
		s := l.Obs.Last()
		return !s.At.IsZero() && cond(s), nil
	})
	if err != nil {
		return fmt.Errorf("chaos: %s: not within %v: %w", what, within, err)
	}
	return nil
}

// WaitHealthy waits until every node is up and the jobs are in their
// desired state (JobSet.Unhealthy), without change for stableFor.
func (l *Lab) WaitHealthy(ctx context.Context, within, stableFor time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var (
		since           time.Time
		prev            Sample
		reason, changed string
	)
	labels := l.Labels()
	all := mask(1<<len(l.Nodes) - 1)
	err := pollUntil(ctx, 20*time.Millisecond, func() (bool, error) {
		s := l.Obs.Last()
		if s.At.IsZero() {
			reason = "no sample yet"
			return false, nil
		}
		if up := l.Up(); up != all {
			reason = "nodes up: " + up.format(labels)
		} else {
			reason = l.Jobs.Unhealthy(s, all, labels)
		}
		if reason == "" && !samePlacement(prev, s) {
			changed = fmt.Sprintf("healthy, but not unchanged for %v (last change at %s)", stableFor, s.At.Format("15:04:05.000"))
		}
		if reason != "" || !samePlacement(prev, s) {
			since = time.Time{}
		}
		prev = s
		if reason != "" {
			return false, nil
		}
		if since.IsZero() {
			since = s.At
		}
		return s.At.Sub(since) >= stableFor, nil
	})
	if err != nil {
		if reason == "" {
			reason = changed
		}
		return fmt.Errorf("%w (last: %s)", err, reason)
	}
	return nil
}

// samePlacement reports whether two samples show the same nodes running
// the same jobs and owning the same partitions.
func samePlacement(a, b Sample) bool {
	eq := func(x, y []mask) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	return eq(a.Live, b.Live) && eq(a.Present, b.Present) && eq(a.Owners, b.Owners) && a.VIP == b.VIP
}

// Logs returns the tail of every node's logs.
func (l *Lab) Logs(lines int) string {
	var parts []string
	for _, n := range l.Nodes {
		parts = append(parts, n.LogTail(lines))
	}
	return strings.Join(parts, "\n")
}

// Close stops the observer, kills every node (thawing frozen ones),
// removes the cgroups and the network namespaces. It is idempotent.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var errs []error
		if l.Obs != nil {
			l.Obs.Stop()
		}
		if l.nc != nil {
			l.nc.Close()
		}
		for _, n := range l.Nodes {
			if n.cg == nil {
				continue
			}
			_ = n.cg.SetFrozen(false)
			errs = append(errs, n.cg.Kill(), n.waitDead(ctx), n.cg.Remove(ctx))
		}
		errs = append(errs, l.Net.Close())
		if left := l.Net.Leftovers(); len(left) > 0 {
			errs = append(errs, fmt.Errorf("chaos: left behind by netlab: %v", left))
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}
