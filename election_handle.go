package cluster

import (
	"context"
	"fmt"
	"time"
)

// Election is an app's view of leadership on this node.
type Election struct{ app *Application }

func (e *Election) leaseRunner() *leaseRunner {
	e.app.mu.Lock()
	defer e.app.mu.Unlock()
	r, _ := e.app.runner.(*leaseRunner)
	return r
}

// IsLeader reports whether this node's instance holds the app's lease and is active.
func (e *Election) IsLeader() bool {
	r := e.leaseRunner()
	if r == nil {
		return false
	}
	return r.serving.Load()
}

// Leader is the node ID of the current leader as last seen ("" when none).
func (e *Election) Leader() string {
	r := e.leaseRunner()
	if r == nil || len(r.cands) == 0 {
		return ""
	}
	if c, _ := r.current(); c != nil {
		rec, _ := c.Leader()
		return rec.Holder
	}
	rec, _ := r.cands[0].Leader()
	return rec.Holder
}

// Epoch is the fencing epoch of this node's current term (0 when not leading).
func (e *Election) Epoch() uint64 {
	r := e.leaseRunner()
	if r == nil {
		return 0
	}
	if _, t := r.current(); t != nil {
		return t.Epoch
	}
	return 0
}

// StopBy is when this node's current term must have stopped completely
// unless its lease is renewed again (the zero time when not leading): the
// lease deadline, at which the leader starts stopping, plus the stop
// budget it has to finish. A successor may act only after it (by the clock
// margin). It moves forward with every renewal and stays put once
// renewals stop. It is on the local monotonic clock, as the lease's own
// deadline. A guard that kills what is still running at StopBy keeps the
// one-leader rule even for a leader that cannot run (frozen, starved).
func (e *Election) StopBy() time.Time {
	r := e.leaseRunner()
	if r == nil {
		return time.Time{}
	}
	if _, t := r.current(); t != nil {
		return t.Deadline().Add(r.p.cfg.timing.StopBudget)
	}
	return time.Time{}
}

// StepDown hands leadership over: this instance stops acting, releases the
// lease, and a standby takes over at once. It returns once the lease is
// released. ErrNotLeader when this node does not lead.
func (e *Election) StepDown(ctx context.Context) error {
	r := e.leaseRunner()
	if r == nil {
		return fmt.Errorf("app %s: %w", e.app.name, ErrNotLeader)
	}
	c, _ := r.current()
	if c == nil {
		return fmt.Errorf("app %s: %w", e.app.name, ErrNotLeader)
	}
	return c.StepDown(ctx)
}
