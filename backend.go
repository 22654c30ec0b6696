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
	start := time.Now()
	if err := b.unit.Start(ctx); err != nil {
		b.p.emit(Event{App: b.a.name, Kind: EventBackendStartFailed, Version: epoch, Message: b.unit.Name(), Error: err.Error()})
		return err
	}
	b.p.log.Info("backend started", "app", b.a.name, "unit", b.unit.Name(), "took", time.Since(start).Round(time.Microsecond))
	b.p.emit(Event{App: b.a.name, Kind: EventBackendStarted, Version: epoch, Message: b.unit.Name()})
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.mu.Lock()
	b.unwatch, b.watched = cancel, done
	b.mu.Unlock()
	go b.watch(wctx, done, epoch)
	return nil
}

// watch handles failures of the unit during one activation.
func (b *appBackend) watch(ctx context.Context, done chan<- struct{}, epoch uint64) {
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

// down stops watching and stops the unit, waiting for systemd's stop job.
func (b *appBackend) down(ctx context.Context) error {
	b.mu.Lock()
	cancel, done := b.unwatch, b.watched
	b.unwatch, b.watched = nil, nil
	b.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	start := time.Now()
	if err := b.unit.Stop(ctx); err != nil {
		return err
	}
	b.p.log.Info("backend stopped", "app", b.a.name, "unit", b.unit.Name(), "took", time.Since(start).Round(time.Microsecond))
	b.p.emit(Event{App: b.a.name, Kind: EventBackendStopped, Message: b.unit.Name()})
	return nil
}
