package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/election"
)

// leaseRunner runs a singleton (one lease) or Replicas(n) (n slot leases, at
// most one held per node). Holding a lease is what makes an instance active.
type leaseRunner struct {
	p       *Platform
	a       *Application
	cands   []*election.Candidate
	act     *activity   // busy from the first activation step to the last deactivation step
	serving atomic.Bool // fully active

	mu        sync.Mutex
	held      int // index of the lease this node serves, -1 for none
	blockedBy map[string]bool
}

func newLeaseRunner(p *Platform, a *Application, keys []string) (*leaseRunner, error) {
	r := &leaseRunner{p: p, a: a, act: newActivity(), held: -1, blockedBy: map[string]bool{}}
	for _, key := range keys {
		c, err := election.New(election.Config{
			JS: p.js, KV: p.leases, Key: key,
			Node: p.node, Instance: p.instance,
			Timing: p.cfg.timing, Liveness: p.prober,
			Logger:  p.log.With("app", a.name),
			OnRenew: p.onRenew(a),
		})
		if err != nil {
			return nil, err
		}
		r.cands = append(r.cands, c)
	}
	return r, nil
}

func (r *leaseRunner) activity() *activity { return r.act }

func (r *leaseRunner) run(ctx context.Context) error {
	if r.a.mode == ModeSingleton {
		hctx, cancel := r.p.hookContext(ctx)
		err := runHooks(hctx, r.a, "OnPassive", r.a.hooks(&r.a.onPassive))
		cancel()
		if err != nil {
			r.p.log.Warn("initial OnPassive hook failed", "app", r.a.name, "err", err)
		}
	}
	go r.p.watchAway(ctx, r.a, r)
	r.a.mu.Lock()
	repl := r.a.repl
	r.a.mu.Unlock()
	if repl != nil {
		// The replica follows the log while this node is a standby;
		// promotion and handoff take it over (replication step).
		repl.start(ctx)
	}
	var wg sync.WaitGroup
	for i, c := range r.cands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Run(ctx, func(t *election.Term) { r.serve(i, t) })
		}()
	}
	wg.Wait()
	if repl != nil {
		// Every term has ended (handed over or stopped): let go of the
		// replica, so a platform started again on this state directory
		// can open it.
		repl.close()
	}
	return nil
}

// serve is one term of lease i.
func (r *leaseRunner) serve(i int, term *election.Term) {
	r.mu.Lock()
	if r.held >= 0 {
		// This node already serves another slot; give this one back.
		r.mu.Unlock()
		return
	}
	r.held = i
	r.mu.Unlock()
	r.setOthersEligible(i, false)
	defer func() {
		r.mu.Lock()
		r.held = -1
		blocked := len(r.blockedBy) > 0
		r.mu.Unlock()
		r.setOthersEligible(i, !blocked)
	}()

	// act covers the whole term, from the first activation step to the
	// last deactivation step, so that apps kept away from this one can wait
	// for it to be fully stopped.
	r.act.set(true)
	defer r.act.set(false)
	// Activation is bounded by the hook timeout, plus, for a replicated
	// database, the promotion's own budget: catching up, checking and
	// copying grow with the database, hooks do not.
	budget := r.p.cfg.hookTimeout
	if r.a.sqlitePath != "" {
		budget += r.a.sqlitePromoteBudget()
	}
	actx, cancel := context.WithTimeout(context.Background(), budget)
	stop := context.AfterFunc(termContext(term), cancel)
	err := r.p.activate(actx, r.a, term.Epoch)
	stop()
	cancel()
	if err != nil {
		// activate undid what it did, OnPassive included if OnActive ran.
		r.p.log.Error("could not become active; stepping down", "app", r.a.name, "epoch", term.Epoch, "err", err)
		return
	}
	r.serving.Store(true)
	r.p.log.Info("active", "app", r.a.name, "epoch", term.Epoch)
	<-term.Done()
	r.serving.Store(false)
	graceful := election.Graceful(term.Err())
	sctx, scancel := r.p.stopContext(graceful, term.Deadline())
	defer scancel()
	sctx = withGracefulStop(sctx, graceful)
	_ = r.p.deactivate(sctx, r.a)
	r.p.log.Info("passive", "app", r.a.name, "epoch", term.Epoch, "reason", term.Err())
}

func (r *leaseRunner) setOthersEligible(except int, ok bool) {
	for j, c := range r.cands {
		if j != except {
			c.SetEligible(ok)
		}
	}
}

func (r *leaseRunner) disconnected() {
	for _, c := range r.cands {
		c.Disconnected()
	}
}

func (r *leaseRunner) setBlocked(app string, blocked bool) {
	r.mu.Lock()
	if blocked {
		r.blockedBy[app] = true
	} else {
		delete(r.blockedBy, app)
	}
	eligible := len(r.blockedBy) == 0
	held := r.held
	r.mu.Unlock()
	for j, c := range r.cands {
		if held < 0 || j == held || !eligible {
			c.SetEligible(eligible)
		}
	}
}

// term returns the candidate serving this node's current term, if any.
func (r *leaseRunner) current() (*election.Candidate, *election.Term) {
	r.mu.Lock()
	held := r.held
	r.mu.Unlock()
	if held < 0 {
		return nil, nil
	}
	c := r.cands[held]
	return c, c.Term()
}

// termContext is a context cancelled when the term ends.
func termContext(t *election.Term) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-t.Done(); cancel() }()
	return ctx
}

// spreadRunner runs one active instance on this node whenever no app it
// keeps away from is active here.
type spreadRunner struct {
	p       *Platform
	a       *Application
	act     *activity
	changed chan struct{}

	mu        sync.Mutex
	blockedBy map[string]bool
}

func newSpreadRunner(p *Platform, a *Application) *spreadRunner {
	return &spreadRunner{p: p, a: a, act: newActivity(), changed: make(chan struct{}, 1), blockedBy: map[string]bool{}}
}

func (r *spreadRunner) activity() *activity { return r.act }
func (r *spreadRunner) disconnected()       {}

func (r *spreadRunner) setBlocked(app string, blocked bool) {
	r.mu.Lock()
	if blocked {
		r.blockedBy[app] = true
	} else {
		delete(r.blockedBy, app)
	}
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *spreadRunner) run(ctx context.Context) error {
	go r.p.watchAway(ctx, r.a, r)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		r.mu.Lock()
		want := len(r.blockedBy) == 0
		r.mu.Unlock()
		on, _ := r.act.get()
		switch {
		case want && !on:
			r.act.set(true) // before the first step: see leaseRunner.serve
			hctx, cancel := r.p.hookContext(ctx)
			err := r.p.activate(hctx, r.a, 0)
			cancel()
			if err != nil {
				r.act.set(false)
				r.p.log.Error("could not start instance; retrying", "app", r.a.name, "err", err)
				retry.Reset(time.Second)
			}
		case !want && on:
			r.stop()
		}
		select {
		case <-ctx.Done():
			if on, _ := r.act.get(); on {
				r.stop()
			}
			return nil
		case <-r.changed:
		case <-retry.C:
		}
	}
}

func (r *spreadRunner) stop() {
	defer r.act.set(false)
	sctx, cancel := r.p.stopContext(true, time.Time{})
	defer cancel()
	_ = r.p.deactivate(sctx, r.a)
}

// claimNode marks a as active on this node before anything else starts and
// stops local apps that keep away from a, so "never on the same node" holds
// from a's first step. It refuses when an app that a keeps away from holds
// this node. claimMu makes the check and the claim one step, so two local
// apps that exclude each other cannot both claim. Other processes on this
// node learn of the claim from the active marker, through watchAway.
func (p *Platform) claimNode(ctx context.Context, a *Application) error {
	p.claimMu.Lock()
	for _, away := range a.awayFrom {
		if b := p.app(away); b != nil && b.claimed {
			p.claimMu.Unlock()
			return fmt.Errorf("app %s keeps away from %s, which is active on this node", a.name, away)
		}
		// Another process's app on this node shows in its marker. A read
		// that cannot be answered now (a stream electing its leader) must
		// not hold up activation: AwayFromApp is placement, not a safety
		// rule, and that app's own claim sees ours.
		gctx, cancel := context.WithTimeout(ctx, ownWriteTimeout)
		_, err := p.nodes.Get(gctx, p.layout.ActiveKey(away, p.node))
		cancel()
		if err == nil {
			p.claimMu.Unlock()
			return fmt.Errorf("app %s keeps away from %s, which is active on this node", a.name, away)
		}
	}
	a.claimed = true
	var evict []appRunner
	for _, b := range p.appsSnapshot() {
		if slices.Contains(b.awayFrom, a.name) {
			b.mu.Lock()
			if b.runner != nil {
				evict = append(evict, b.runner)
			}
			b.mu.Unlock()
		}
	}
	p.claimMu.Unlock()

	err := p.own(ctx, p.nodes.Bucket(), p.layout.ActiveKey(a.name, p.node), []byte(p.instance))
	for _, r := range evict {
		if err != nil {
			break
		}
		r.setBlocked(a.name, true)
		err = r.activity().waitOff(ctx)
	}
	if err != nil {
		_ = p.unclaimNode(context.WithoutCancel(ctx), a)
		return fmt.Errorf("claim node for %s: %w", a.name, err)
	}
	return nil
}

func (p *Platform) unclaimNode(ctx context.Context, a *Application) error {
	p.claimMu.Lock()
	a.claimed = false
	p.claimMu.Unlock()
	return p.disown(ctx, p.nodes, p.layout.ActiveKey(a.name, p.node))
}

// watchAway follows the active markers of the apps a keeps away from, on
// this node, and blocks or unblocks a's runner.
func (p *Platform) watchAway(ctx context.Context, a *Application, r appRunner) {
	for _, away := range a.awayFrom {
		go func() {
			for ctx.Err() == nil {
				w, err := p.nodes.Watch(ctx, p.layout.ActiveKey(away, p.node))
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
					continue
				}
				for e := range w.Updates() {
					if e != nil {
						r.setBlocked(away, e.Operation() == jetstream.KeyValuePut)
					}
				}
				w.Stop()
			}
		}()
	}
}

// onRenew is what each successful lease renewal of app does: tell the
// platform's observer (metrics) and extend the VIP's lifetime. It runs in
// the lease's renewal loop, so nothing in it may block.
func (p *Platform) onRenew(a *Application) func(time.Duration) {
	observe := p.cfg.renewObserver
	a.mu.Lock()
	v := a.vip // set by preflight, before the runner is made
	a.mu.Unlock()
	return func(d time.Duration) {
		if observe != nil {
			observe(a.name, d)
		}
		if v != nil {
			v.renewed()
		}
	}
}
