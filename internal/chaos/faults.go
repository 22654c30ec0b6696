//go:build linux

package chaos

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// The premises of the faults: how long a fault lasts. These are part of
// what is measured, not synchronisation.
const (
	// DownFor is how long a SIGKILLed node stays down before it restarts:
	// longer than nats-server's stream-leader election (4–9 s), so a
	// trial sees the cluster without the node. The node also stays down
	// until every singleton runs elsewhere, for at most FailoverWait.
	DownFor      = 10 * time.Second
	FailoverWait = 30 * time.Second
	// LinkDownFor is longer than the lease TTL (2 s) and the presence TTL
	// (5 s): the cut-off node's leases and presence expire.
	LinkDownFor = 15 * time.Second
	StopFor     = 10 * time.Second
	FreezeFor   = 10 * time.Second
)

// Fault is one kind of fault.
type Fault struct {
	Name string
	// External: the fault needs the external-NATS topology.
	External bool
	// Inject picks the node, prepares the cluster where the fault needs
	// it, injects the fault, waits for its duration and heals it, filling
	// the trial's Node, Fault and Heal. It does not wait for recovery.
	Inject func(ctx context.Context, l *Lab, tr *Trial) error
}

// Faults are the six faults, in order.
var Faults = []Fault{
	{Name: "node-kill", Inject: injectNodeKill},
	{Name: "stream-leader-kill", Inject: injectStreamLeaderKill},
	{Name: "link-down", Inject: injectLinkDown},
	{Name: "agent-stop", Inject: injectAgentStop},
	{Name: "node-freeze", Inject: injectNodeFreeze},
	{Name: "nats-restart", External: true, Inject: injectNATSRestart},
}

// FaultNamed returns the fault with that name.
func FaultNamed(name string) (Fault, bool) {
	for _, f := range Faults {
		if f.Name == name {
			return f, true
		}
	}
	return Fault{}, false
}

// busiestNode is the node running the most singletons; ties go to the
// first from a rotating start, so that trials visit every node.
func (l *Lab) busiestNode(trial int) *Node {
	s := l.Obs.Last()
	var best *Node
	most := -1
	for k := range l.Nodes {
		n := l.Nodes[(trial+k)%len(l.Nodes)]
		c := 0
		for i, j := range l.Jobs.Jobs {
			if j.Kind == Singleton && s.Live[i].has(n.Index) {
				c++
			}
		}
		if c > most {
			best, most = n, c
		}
	}
	return best
}

func (l *Lab) nodeByID(id string) *Node {
	for _, n := range l.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// target records the faulted node and what it ran and led.
func (l *Lab) target(ctx context.Context, tr *Trial, n *Node) {
	tr.Node, tr.NodeID = n.Index, n.ID
	s := l.Obs.Last()
	var led []string
	for i, j := range l.Jobs.Jobs {
		if j.Kind == Singleton && s.Live[i].has(n.Index) {
			led = append(led, j.Name)
		}
	}
	if s.VIP.has(n.Index) {
		led = append(led, "vip")
	}
	if len(led) == 0 {
		led = []string{"none"}
	}
	tr.note("%s runs singletons: %s", n.ID, strings.Join(led, " "))
	if streams, err := l.LeaseStreams(ctx); err != nil {
		tr.note("lease streams: %v", err)
	} else if names := streamsLedBy(streams, n.ID); len(names) > 0 {
		tr.note("%s leads %s", n.ID, strings.Join(names, " "))
	}
}

// sleepCtx waits d (a fault's premise) unless ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// allSingletonsLive holds when every singleton runs somewhere.
func (l *Lab) allSingletonsLive(s Sample) bool {
	for i, j := range l.Jobs.Jobs {
		if j.Kind == Singleton && s.Live[i] == 0 {
			return false
		}
	}
	return true
}

func injectNodeKill(ctx context.Context, l *Lab, tr *Trial) error {
	n := l.busiestNode(tr.N)
	l.target(ctx, tr, n)
	return l.killAndRestart(ctx, tr, n)
}

// killAndRestart SIGKILLs the node (agent, embedded NATS, jobs: its whole
// cgroup), keeps it down for DownFor and until its singletons run
// elsewhere, then restarts it.
func (l *Lab) killAndRestart(ctx context.Context, tr *Trial, n *Node) error {
	tr.Fault = time.Now()
	if err := n.Kill(ctx); err != nil {
		return err
	}
	if err := sleepCtx(ctx, time.Until(tr.Fault.Add(DownFor))); err != nil {
		return err
	}
	if err := l.WaitFor(ctx, time.Until(tr.Fault.Add(FailoverWait)), "every singleton live", l.allSingletonsLive); err != nil {
		tr.note("restarting %s with singletons not running: %v", n.ID, err)
	}
	tr.Heal = time.Now()
	return l.Restart(ctx, n)
}

// injectStreamLeaderKill kills a node that leads the lease and activation
// streams while it runs no singleton: the leader of the leases stream has
// its singletons stepped down (gcl app stepdown) and the other streams'
// leaders moved to it (a JetStream leader step-down with a preferred
// server), then it is killed like node-kill. The moves are made before the
// fault and the cluster left to settle; the trial's window starts before
// them, so their own overlaps count too.
func injectStreamLeaderKill(ctx context.Context, l *Lab, tr *Trial) error {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		n, err := l.prepareStreamLeader(ctx)
		if err == nil {
			l.target(ctx, tr, n)
			return l.killAndRestart(ctx, tr, n)
		}
		lastErr = err
		tr.note("preparing (attempt %d): %v", attempt+1, err)
	}
	return fmt.Errorf("chaos: no node leads the lease streams and no singleton: %w", lastErr)
}

func (l *Lab) prepareStreamLeader(ctx context.Context) (*Node, error) {
	streams, err := l.LeaseStreams(ctx)
	if err != nil {
		return nil, err
	}
	n := l.nodeByID(streams[0].Leader)
	if n == nil {
		return nil, fmt.Errorf("stream %s has no leader (%q)", streams[0].Name, streams[0].Leader)
	}
	if err := l.clearSingletons(ctx, n); err != nil {
		return nil, err
	}
	for _, s := range streams {
		if s.Leader == n.ID {
			continue
		}
		if err := l.StepStreamLeader(ctx, s.Name, n.ID); err != nil {
			return nil, err
		}
	}
	if err := l.WaitHealthy(ctx, time.Minute, SettleFor); err != nil {
		return nil, err
	}
	err = pollUntil(ctx, 100*time.Millisecond, func() (bool, error) {
		streams, err := l.LeaseStreams(ctx)
		if err != nil {
			return false, err
		}
		return len(streamsLedBy(streams, n.ID)) == len(streams), nil
	})
	if err != nil {
		return nil, fmt.Errorf("the streams' leaders do not move to %s: %w", n.ID, err)
	}
	s := l.Obs.Last()
	for i, j := range l.Jobs.Jobs {
		if j.Kind == Singleton && s.Live[i].has(n.Index) {
			return nil, fmt.Errorf("%s runs %s again", n.ID, j.Name)
		}
	}
	return n, nil
}

// clearSingletons steps down every singleton active on n until none is.
func (l *Lab) clearSingletons(ctx context.Context, n *Node) error {
	on := func(s Sample) []string {
		var out []string
		for i, j := range l.Jobs.Jobs {
			if j.Kind == Singleton && s.Live[i].has(n.Index) {
				out = append(out, j.Name)
			}
		}
		return out
	}
	for attempt := 0; attempt < 5; attempt++ {
		names := on(l.Obs.Last())
		if len(names) == 0 {
			return nil
		}
		for _, name := range names {
			if _, err := l.GCL(ctx, "app", "stepdown", name); err != nil {
				l.cfg.Logf("chaos: %v", err)
			}
		}
		_ = l.WaitFor(ctx, 30*time.Second, "singletons off "+n.ID, func(s Sample) bool {
			return len(on(s)) == 0 && l.allSingletonsLive(s)
		})
	}
	if names := on(l.Obs.Last()); len(names) > 0 {
		return fmt.Errorf("%s still runs %v after step-downs", n.ID, names)
	}
	return nil
}

func injectLinkDown(ctx context.Context, l *Lab, tr *Trial) error {
	n := l.busiestNode(tr.N)
	l.target(ctx, tr, n)
	tr.Fault = time.Now()
	if err := n.Host.SetLink(false); err != nil {
		return err
	}
	slept := sleepCtx(ctx, LinkDownFor)
	tr.Heal = time.Now()
	if err := n.Host.SetLink(true); err != nil {
		return err
	}
	return slept
}

func injectAgentStop(ctx context.Context, l *Lab, tr *Trial) error {
	n := l.busiestNode(tr.N)
	l.target(ctx, tr, n)
	tr.Fault = time.Now()
	if err := n.SignalAgent(syscall.SIGSTOP); err != nil {
		return err
	}
	slept := sleepCtx(ctx, StopFor)
	tr.Heal = time.Now()
	if err := n.SignalAgent(syscall.SIGCONT); err != nil {
		return err
	}
	return slept
}

func injectNodeFreeze(ctx context.Context, l *Lab, tr *Trial) error {
	n := l.busiestNode(tr.N)
	l.target(ctx, tr, n)
	tr.Fault = time.Now()
	tr.Thaw = true
	if err := n.Freeze(ctx, true); err != nil {
		return err
	}
	tr.note("frozen %v after the write to cgroup.freeze", time.Since(tr.Fault).Round(time.Microsecond))
	slept := sleepCtx(ctx, time.Until(tr.Fault.Add(FreezeFor)))
	tr.Heal = time.Now()
	if err := n.Freeze(ctx, false); err != nil {
		return err
	}
	return slept
}

func injectNATSRestart(ctx context.Context, l *Lab, tr *Trial) error {
	if !l.external() {
		return fmt.Errorf("chaos: nats-restart needs the external-NATS topology")
	}
	n := l.busiestNode(tr.N)
	l.target(ctx, tr, n)
	tr.Fault = time.Now()
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := n.RestartNATS(rctx)
	tr.Heal = time.Now() // the new server accepts clients
	tr.note("nats-server of %s back after %v", n.ID, tr.Heal.Sub(tr.Fault).Round(time.Millisecond))
	return err
}
