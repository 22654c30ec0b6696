package cluster

import (
	"context"
	"fmt"
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
