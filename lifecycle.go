package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// appRunner drives one registered app on this node.
type appRunner interface {
	run(ctx context.Context) error
	// disconnected is called when the NATS connection drops.
	disconnected()
	// setBlocked is called when app, which this one keeps away from,
	// becomes active (true) or inactive (false) on this node.
	setBlocked(app string, blocked bool)
	// activity tells whether this node's instance is active.
	activity() *activity
}

// activity is a boolean that can be waited on.
type activity struct {
	mu      sync.Mutex
	on      bool
	changed chan struct{}
}

func newActivity() *activity { return &activity{changed: make(chan struct{})} }

func (s *activity) set(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.on != on {
		s.on = on
		close(s.changed)
		s.changed = make(chan struct{})
	}
}

func (s *activity) get() (bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.on, s.changed
}

// waitOff waits until the activity is off or ctx ends.
func (s *activity) waitOff(ctx context.Context) error {
	for {
		on, changed := s.get()
		if !on {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// step is one stage of becoming active. Steps run in order on the way up
// and in reverse on the way down:
//
//  1. away: mark the app active here, stop local apps kept away from it
//  2. replication: fence the log, catch up, check and promote the replica,
//     start shipping (sqlite.go)                           / ship the last
//     transactions and wait for a standby to apply them (graceful), stop
//  3. vip: add the virtual IP, announce it (vip.go)          / remove it
//  4. backend: start the systemd unit (backend.go)           / stop it
//  5. hooks: OnActive, OnStart                               / OnStop, OnPassive
//  6. ring: join the ring, own partitions as assigned         / release all, leave
//  7. calls: answer leader and any-instance calls
//  8. services: publish service records
//
// So a leader's app finds its address and its service in place when
// OnActive runs, and still has them while OnPassive runs. A step that fails
// undoes it and the steps before it; the term then ends (the lease is
// released), so a node never stays leader with nothing running. The active
// marker (for AwayFromApp) is written by the first step, so that it covers
// everything the instance does.
type step struct {
	name string
	up   func(ctx context.Context, epoch uint64) error
	down func(ctx context.Context) error
}

func (p *Platform) steps(a *Application) []step {
	a.mu.Lock()
	vip, unit, repl := a.vip, a.unit, a.repl
	a.mu.Unlock()
	return []step{
		{name: "away",
			up:   func(ctx context.Context, _ uint64) error { return p.claimNode(ctx, a) },
			down: func(ctx context.Context) error { return p.unclaimNode(ctx, a) }},
		{name: "replication",
			up: func(ctx context.Context, epoch uint64) error {
				if repl == nil {
					return nil
				}
				return repl.up(ctx, epoch)
			},
			down: func(ctx context.Context) error {
				if repl == nil {
					return nil
				}
				return repl.down(ctx)
			}},
		{name: "vip",
			up: func(ctx context.Context, epoch uint64) error {
				if vip == nil {
					return nil
				}
				return vip.up(ctx, epoch)
			},
			down: func(ctx context.Context) error {
				if vip == nil {
					return nil
				}
				return vip.down(ctx)
			}},
		{name: "backend",
			up: func(ctx context.Context, epoch uint64) error {
				if unit == nil {
					return nil
				}
				return unit.up(ctx, epoch)
			},
			down: func(ctx context.Context) error {
				if unit == nil {
					return nil
				}
				return unit.down(ctx)
			}},
		{name: "hooks",
			up: func(ctx context.Context, _ uint64) error {
				// The activation's budget may include a promotion's;
				// hooks keep the hook timeout.
				ctx, cancel := p.hookContext(ctx)
				defer cancel()
				if err := runHooks(ctx, a, "OnActive", a.hooks(&a.onActive)); err != nil {
					return err
				}
				return runHooks(ctx, a, "OnStart", a.hooks(&a.onStart))
			},
			down: func(ctx context.Context) error {
				// OnPassive before the backend stops and the VIP goes: the
				// app hears it is no longer the leader while its resources
				// are still in place (drain connections, say).
				err := runHooks(ctx, a, "OnStop", a.hooks(&a.onStop))
				if a.mode == ModeSingleton {
					err = errors.Join(err, runHooks(ctx, a, "OnPassive", a.hooks(&a.onPassive)))
				}
				return err
			}},
		{name: "ring",
			up: func(ctx context.Context, _ uint64) error {
				if a.ringPartitions == 0 {
					return nil
				}
				return p.joinRing(ctx, a)
			},
			down: func(ctx context.Context) error { return p.leaveRing(ctx, a) }},
		{name: "calls",
			up:   func(context.Context, uint64) error { return p.serveActiveCalls(a) },
			down: func(context.Context) error { return p.stopActiveCalls(a) }},
		{name: "services",
			up:   func(ctx context.Context, _ uint64) error { return p.publishServices(ctx, a) },
			down: func(ctx context.Context) error { return p.unpublishServices(ctx, a) }},
	}
}

// activate runs the steps up. On failure it undoes the failed step and
// those before it, in reverse, and returns the error.
func (p *Platform) activate(ctx context.Context, a *Application, epoch uint64) error {
	steps := p.steps(a)
	for i, s := range steps {
		if s.up == nil {
			continue
		}
		if err := s.up(ctx, epoch); err != nil {
			// The failed step is undone too: every down tolerates a
			// half-done up, and a hook that ran (OnStart did, OnActive
			// failed after it) gets its OnStop.
			p.deactivateFrom(context.WithoutCancel(ctx), a, steps[:i+1])
			return fmt.Errorf("become active (%s): %w", s.name, err)
		}
	}
	return nil
}

// deactivate runs every step down, in reverse, and reports all failures.
func (p *Platform) deactivate(ctx context.Context, a *Application) error {
	return p.deactivateFrom(ctx, a, p.steps(a))
}

func (p *Platform) deactivateFrom(ctx context.Context, a *Application, steps []step) error {
	var errs []error
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i].down == nil {
			continue
		}
		sctx := ctx
		if ctx.Err() != nil {
			// Late: the process stalled past its deadline (SIGSTOP, a VM
			// pause) or an earlier step used up the budget. Stopping late
			// is still stopping: the unit must go and the app must hear
			// OnStop/OnPassive, or it goes on acting as the leader.
			var cancel context.CancelFunc
			sctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), p.cfg.hookTimeout)
			defer cancel()
		}
		if err := steps[i].down(sctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", steps[i].name, err))
		}
	}
	if len(errs) > 0 {
		p.log.Warn("errors while stopping", "app", a.name, "err", errors.Join(errs...))
	}
	return errors.Join(errs...)
}

// runHooks runs hooks in order and stops at the first error.
func runHooks(ctx context.Context, a *Application, name string, hooks []Hook) error {
	for _, h := range hooks {
		if err := callHook(ctx, h); err != nil {
			return fmt.Errorf("app %s %s hook: %w", a.name, name, err)
		}
	}
	return nil
}

// callHook runs h and returns when it returns or ctx ends, whichever comes
// first: a hook that ignores its ctx must not hold the lease machinery.
func callHook(ctx context.Context, h Hook) (err error) {
	if ctx.Err() != nil {
		// Not started at all: a hook started now could finish after the
		// undoing that follows this error.
		return fmt.Errorf("hook not run: %w", ctx.Err())
	}
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("hook panicked: %v", r)
			}
		}()
		done <- h(ctx)
	}()
	select {
	case err = <-done:
		return err
	case <-ctx.Done():
		// A hook that returned just as ctx ended has done its work: its
		// result counts, or the caller would skip undoing it.
		select {
		case err = <-done:
			return err
		default:
		}
		return fmt.Errorf("hook did not return in time: %w", ctx.Err())
	}
}

// hookContext bounds a hook by the platform's hook timeout.
func (p *Platform) hookContext(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, p.cfg.hookTimeout)
}

// stopContext bounds stopping: by the hook timeout after a graceful end,
// by the lease's stop budget when the lease is at risk.
func (p *Platform) stopContext(gracefulEnd bool, deadline time.Time) (context.Context, context.CancelFunc) {
	if gracefulEnd {
		return context.WithTimeout(context.Background(), p.cfg.hookTimeout)
	}
	return context.WithDeadline(context.Background(), deadline.Add(p.cfg.timing.StopBudget))
}

func (p *Platform) newRunner(a *Application) (appRunner, error) {
	var r appRunner
	var err error
	switch a.mode {
	case ModeSingleton:
		r, err = newLeaseRunner(p, a, []string{p.layout.LeaseKey(a.name)})
	case ModeReplicas:
		keys := make([]string, a.replicas)
		for i := range keys {
			keys[i] = p.layout.SlotKey(a.name, i)
		}
		r, err = newLeaseRunner(p, a, keys)
	case ModeSpread:
		r = newSpreadRunner(p, a)
	default:
		err = fmt.Errorf("unknown mode %v", a.mode)
	}
	if err != nil {
		return nil, err
	}
	if err := p.serveNodeCalls(a); err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.runner = r
	a.mu.Unlock()
	return r, nil
}

// stepDownAfter hands the app to another node after a failure of one of
// its resources: the instance steps down, which stops everything here as
// for any end of a term. It runs apart from the caller, since stepping
// down waits for the steps' down, which may wait for the caller.
func (p *Platform) stepDownAfter(a *Application, epoch uint64, reason string) {
	if cur := a.election.Epoch(); cur != epoch {
		// A report about an earlier term: the current one is not at fault.
		p.log.Info("not stepping down: the failure was of an earlier term", "app", a.name, "epoch", epoch, "current", cur, "reason", reason)
		return
	}
	p.log.Warn("stepping down", "app", a.name, "epoch", epoch, "reason", reason)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.hookTimeout)
		defer cancel()
		if err := a.election.StepDown(ctx); err != nil && !errors.Is(err, ErrNotLeader) {
			p.log.Error("step down", "app", a.name, "err", err)
		}
	}()
}
