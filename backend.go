package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ozanturksever/go-cluster/executor/systemd"
)

// This file runs an app's backend, a systemd unit, where the app is active:
// the "backend" step of becoming active (lifecycle.go), after the VIP and
// before OnActive. The unit is driven over D-Bus (executor/systemd), bound
// to the agent's own unit where the agent runs under systemd so that it
// stops if the agent dies, and watched while active: a unit that fails on
// its own is restarted as its policy allows, and then the instance steps
// down so that another node runs it.
//
// Where the app holds a lease (singleton, replicas), a guard process
// (systemd.UnitGuard) holds the lease term's stop-by time and, when it
// passes without a renewal, kills the unit's processes through its cgroup
// and has systemd stop it, without needing this process to run: a frozen
// agent (SIGSTOP, a starved machine) loses its unit when its term ends, as
// a partitioned one does. When this process dies the guard stops the unit
// at once. The guard is armed before the unit starts, fed beside the
// renewals, and disarmed once the unit is stopped in order.

// Event kinds of the backend.
const (
	EventBackendStarted     = "backend.started"
	EventBackendStartFailed = "backend.start_failed"
	EventBackendStopped     = "backend.stopped"
	EventBackendFailed      = "backend.failed" // the unit went down while active
	EventBackendRestarted   = "backend.restarted"
)

// Backend is a service that runs where the app is active.
type Backend struct {
	Kind string // "systemd"
	Unit string

	restarts     int
	restartDelay time.Duration
	err          error
}

// SystemdOption configures a systemd backend.
type SystemdOption func(*Backend)

// Systemd is a systemd unit started where the app is active and stopped
// elsewhere. A name without a suffix is a service: "postgres" is
// postgres.service.
func Systemd(unit string, opts ...SystemdOption) *Backend {
	b := &Backend{Kind: "systemd", Unit: unit}
	for _, o := range opts {
		o(b)
	}
	return b
}

// SystemdRestart restarts a unit that fails while the app is active here
// up to attempts times, delay apart, before the instance gives up and
// steps down so that another node runs the app. Default: no restart,
// step down at once (systemd's own Restart= may still restart it first;
// only a unit that ends up failed or stopped counts).
func SystemdRestart(attempts int, delay time.Duration) SystemdOption {
	return func(b *Backend) {
		if attempts < 0 || delay < 0 {
			b.err = fmt.Errorf("%w: SystemdRestart(%d, %v)", ErrInvalidOption, attempts, delay)
			return
		}
		b.restarts, b.restartDelay = attempts, delay
	}
}

// WithSystemdUserManager has backends started by the systemd user manager
// listening on socketPath ($XDG_RUNTIME_DIR/systemd/private) instead of
// the system manager.
func WithSystemdUserManager(socketPath string) PlatformOption {
	return func(c *platformConfig) { c.systemdOpts = append(c.systemdOpts, systemd.WithUserManager(socketPath)) }
}

// WithSystemdBusAddress has backends started by the systemd manager
// reached through the D-Bus bus at address.
func WithSystemdBusAddress(address string) PlatformOption {
	return func(c *platformConfig) { c.systemdOpts = append(c.systemdOpts, systemd.WithBusAddress(address)) }
}

// systemdManager returns the platform's connection to systemd, dialling it
// on first use. One connection serves every app of the node.
func (p *Platform) systemdManager(ctx context.Context) (*systemd.Manager, error) {
	p.systemdMu.Lock()
	defer p.systemdMu.Unlock()
	if p.systemd != nil {
		return p.systemd, nil
	}
	opts := append([]systemd.Option{systemd.WithLogger(p.log)}, p.cfg.systemdOpts...)
	m, err := systemd.Dial(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to systemd: %w", err)
	}
	p.systemd = m
	return m, nil
}

func (p *Platform) closeSystemd() {
	p.systemdMu.Lock()
	defer p.systemdMu.Unlock()
	if p.systemd != nil {
		_ = p.systemd.Close()
		p.systemd = nil
	}
}

// appBackend is the backend unit of one app on this node.
type appBackend struct {
	p    *Platform
	a    *Application
	cfg  Backend
	unit *systemd.Unit

	mu      sync.Mutex
	unwatch context.CancelFunc // ends the failure watch of the current activation
	watched chan struct{}      // closed when that watch ended
	unfeed  context.CancelFunc // ends the guard's feeding of the current activation (nil without a guard)
	fed     chan struct{}      // closed when the feeding ended
	// guard stops the unit at the term's deadline. Made by the first up
	// and kept: each term arms it (a guard process) and down disarms it,
	// or has it stop the unit when down could not.
	guard *systemd.UnitGuard
}

// newAppBackend checks the backend and prepares its unit: the connection
// to systemd is made, the unit must exist, and it is bound to the agent's
// own unit where there is one.
func (p *Platform) newAppBackend(ctx context.Context, a *Application) (*appBackend, error) {
	b := *a.backend
	if b.err != nil {
		return nil, fmt.Errorf("app %s: %w", a.name, b.err)
	}
	if b.Kind != "systemd" {
		return nil, fmt.Errorf("%w: app %s: backend kind %q (only systemd)", ErrInvalidOption, a.name, b.Kind)
	}
	m, err := p.systemdManager(ctx)
	if err != nil {
		return nil, fmt.Errorf("app %s: backend %s: %w", a.name, b.Unit, err)
	}
	u := m.Unit(b.Unit)
	st, err := u.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("app %s: backend: %w", a.name, err)
	}
	if st.LoadState == "not-found" {
		return nil, fmt.Errorf("app %s: backend %s: %w", a.name, u.Name(), systemd.ErrUnitNotFound)
	}
	if err := m.BindToAgent(ctx, u.Name()); err != nil {
		return nil, fmt.Errorf("app %s: backend: %w", a.name, err)
	}
	return &appBackend{p: p, a: a, cfg: b, unit: u}, nil
}

// up starts the unit, waits for systemd's start job to finish and starts
// watching it for failures.
func (b *appBackend) up(ctx context.Context, epoch uint64) error {
	// A failure reported before this activation is old news.
	for drained := false; !drained; {
		select {
		case <-b.unit.Failures():
		default:
			drained = true
		}
	}
	// The guard before the unit, so that there is no moment in which the
	// unit runs and nothing but this process would stop it. A guard that
	// cannot start fails the activation: without it a frozen agent would
	// keep the unit past its lease.
	guard, held, err := b.arm(ctx)
	if err != nil {
		b.p.emit(Event{App: b.a.name, Kind: EventBackendStartFailed, Version: epoch, Message: b.unit.Name(), Error: err.Error()})
		return err
	}
	start := time.Now()
	if err := b.unit.Start(ctx); err != nil {
		b.p.emit(Event{App: b.a.name, Kind: EventBackendStartFailed, Version: epoch, Message: b.unit.Name(), Error: err.Error()})
		return err
	}
	b.p.log.Info("backend started", "app", b.a.name, "unit", b.unit.Name(), "took", time.Since(start).Round(time.Microsecond))
	b.p.emit(Event{App: b.a.name, Kind: EventBackendStarted, Version: epoch, Message: b.unit.Name()})
	b.refreshGuard(ctx, guard)
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var unfeed context.CancelFunc
	var fed chan struct{}
	if guard != nil {
		var fctx context.Context
		fctx, unfeed = context.WithCancel(context.Background())
		fed = make(chan struct{})
		go b.feedGuard(fctx, fed, guard, held)
	}
	b.mu.Lock()
	b.unwatch, b.watched, b.unfeed, b.fed = cancel, done, unfeed, fed
	b.mu.Unlock()
	go b.watch(wctx, done, epoch, guard)
	return nil
}

// arm gives the unit's guard the term's stop-by time (Election.StopBy: the
// lease deadline plus the stop budget, still before any successor may
// act), starting the guard first when there is none; it returns the guard
// and the deadline it holds. A spread app has no lease and no guard.
func (b *appBackend) arm(ctx context.Context) (*systemd.UnitGuard, time.Time, error) {
	if b.a.mode == ModeSpread {
		return nil, time.Time{}, nil
	}
	deadline := b.a.election.StopBy()
	if deadline.IsZero() {
		return nil, time.Time{}, fmt.Errorf("app %s: backend %s: no lease term to bound the unit by", b.a.name, b.unit.Name())
	}
	b.mu.Lock()
	g := b.guard
	b.mu.Unlock()
	if g == nil {
		m, err := b.p.systemdManager(ctx)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("app %s: backend %s: %w", b.a.name, b.unit.Name(), err)
		}
		if g, err = m.Guard(ctx, b.unit.Name()); err != nil {
			return nil, time.Time{}, fmt.Errorf("app %s: backend: %w", b.a.name, err)
		}
		b.mu.Lock()
		b.guard = g
		b.mu.Unlock()
	}
	if err := g.HoldUntil(deadline); err != nil {
		return nil, time.Time{}, fmt.Errorf("app %s: backend: %w", b.a.name, err)
	}
	return g, deadline, nil
}

// refreshGuard passes the running unit's cgroup to the guard, so that it
// can kill the unit's processes without systemd. Without it the guard
// still stops the unit, through systemd only: a warning, not a failure.
func (b *appBackend) refreshGuard(ctx context.Context, g *systemd.UnitGuard) {
	if g == nil {
		return
	}
	if err := g.Refresh(ctx); err != nil {
		b.p.log.Warn("backend guard has no cgroup to kill; it will stop the unit through systemd only",
			"app", b.a.name, "unit", b.unit.Name(), "err", err)
	}
}

// guardPoll is how often the guard's feeding looks at the term's deadline.
// The lease moves the deadline with each renewal (and with a renewal
// whose answer was lost, without telling anyone), so the feeding follows
// it; a look that comes late only leaves the guard an earlier deadline. At
// the default timing it is 50 ms, a fifth of the renew interval, against a
// deadline about two seconds ahead of each renewal.
func (b *appBackend) guardPoll() time.Duration {
	return min(max(b.p.cfg.timing.RenewInterval/5, 5*time.Millisecond), 50*time.Millisecond)
}

// feedGuard passes the term's deadline to the guard whenever it moved,
// until ctx ends. It runs beside the lease's renewal loop, so that nothing
// here (a guard to restart) can delay a renewal.
func (b *appBackend) feedGuard(ctx context.Context, done chan<- struct{}, g *systemd.UnitGuard, held time.Time) {
	defer close(done)
	t := time.NewTicker(b.guardPoll())
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d := b.a.election.StopBy()
		if !d.After(held) {
			continue // no newer deadline, or no term any more: the last one stays
		}
		if err := g.HoldUntil(d); err != nil {
			// The guard keeps its earlier deadline; retried with the next
			// look. Logged once per spell of failures.
			if !failing {
				b.p.log.Warn("backend guard did not take the new deadline", "app", b.a.name, "unit", b.unit.Name(), "err", err)
			}
			failing = true
			continue
		}
		failing = false
		held = d
	}
}

// watch handles failures of the unit during one activation.
func (b *appBackend) watch(ctx context.Context, done chan<- struct{}, epoch uint64, guard *systemd.UnitGuard) {
	defer close(done)
	restarts := 0
	for {
		var f systemd.Failure
		select {
		case <-ctx.Done():
			return
		case f = <-b.unit.Failures():
		}
		reason := fmt.Sprintf("%s is %s/%s (result %s)", f.Unit, f.ActiveState, f.SubState, f.Result)
		b.p.log.Error("backend failed while active", "app", b.a.name, "epoch", epoch, "unit", f.Unit,
			"state", f.ActiveState, "sub_state", f.SubState, "result", f.Result)
		b.p.emit(Event{App: b.a.name, Kind: EventBackendFailed, Version: epoch, Message: reason})
		if restarts < b.cfg.restarts {
			restarts++
			select {
			case <-ctx.Done():
				return
			case <-time.After(b.cfg.restartDelay):
			}
			err := b.unit.Start(ctx)
			b.p.emit(Event{App: b.a.name, Kind: EventBackendRestarted, Version: epoch, Message: fmt.Sprintf("attempt %d of %d", restarts, b.cfg.restarts), Error: errString(err)})
			if err == nil {
				b.refreshGuard(ctx, guard) // the cgroup it may not have had yet
				continue
			}
			if ctx.Err() != nil {
				return
			}
		}
		b.giveUp(epoch, reason)
		return
	}
}

// giveUp hands the app to another node: the instance steps down, which
// stops the unit here (down) as for any end of a term. It runs apart from
// the watch, since stepping down waits for down, which waits for the watch.
func (b *appBackend) giveUp(epoch uint64, reason string) {
	if b.a.mode == ModeSpread {
		// No lease to hand over: a spread instance runs on every node. It
		// stays down, visible in the events, until the app is restarted.
		b.p.log.Error("backend stays down: a spread app has no other node to move to", "app", b.a.name, "reason", reason)
		return
	}
	b.p.stepDownAfter(b.a, epoch, "backend failed: "+reason)
}

// down stops watching, stops the unit, waiting for systemd's stop job,
// and then disarms the guard: it is gone when down returns, so it cannot
// stop the unit of a later term. When the stop fails the guard stops the
// unit instead, at once: the term is over either way.
//
// The guard is fed until the unit is stopped: a graceful stop (a database
// writing its last checkpoint) may take longer than one lease term, and
// the term goes on while the lease is renewed, until it is released after
// this step. A term that is not renewed any more keeps the guard at its
// last deadline, the bound any stop has.
func (b *appBackend) down(ctx context.Context) error {
	b.mu.Lock()
	cancel, done, unfeed, fed := b.unwatch, b.watched, b.unfeed, b.fed
	b.unwatch, b.watched, b.unfeed, b.fed = nil, nil, nil, nil
	g := b.guard
	b.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	start := time.Now()
	err := b.unit.Stop(ctx)
	if unfeed != nil {
		unfeed()
		<-fed
	}
	if err != nil {
		if g != nil {
			// Its own bound: ctx may be spent already (that may be why the
			// stop failed).
			gctx, gcancel := context.WithTimeout(context.WithoutCancel(ctx), b.p.cfg.hookTimeout)
			gerr := g.StopNow(gctx)
			gcancel()
			if gerr != nil {
				b.p.log.Error("backend stop failed, and so did its guard", "app", b.a.name, "unit", b.unit.Name(), "err", err, "guard_err", gerr)
			} else {
				b.p.log.Warn("backend stop failed; its guard killed and stopped the unit", "app", b.a.name, "unit", b.unit.Name(), "err", err)
			}
		}
		return err
	}
	if g != nil {
		if err := g.Disarm(); err != nil {
			b.p.log.Warn("backend guard did not disarm cleanly", "app", b.a.name, "unit", b.unit.Name(), "err", err)
		}
	}
	b.p.log.Info("backend stopped", "app", b.a.name, "unit", b.unit.Name(), "took", time.Since(start).Round(time.Microsecond))
	b.p.emit(Event{App: b.a.name, Kind: EventBackendStopped, Message: b.unit.Name()})
	return nil
}
