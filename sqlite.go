package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/replication"
	"github.com/ozanturksever/go-cluster/replication/snapstore"
	"github.com/ozanturksever/go-cluster/replication/wallog"
	"github.com/ozanturksever/go-cluster/state"
)

// ReplicationStatus is one instance's replication state of a WithSQLite
// app, as ReplicationStatuses lists it.
type ReplicationStatus = replication.Status

// Replication event kinds (Event.Kind).
const (
	EventReplicationPromoted     = replication.EventPromoted
	EventReplicationPromoteFail  = replication.EventPromoteFail
	EventReplicationHandoff      = replication.EventHandoff
	EventReplicationFenced       = replication.EventFenced
	EventReplicationResync       = replication.EventResync
	EventReplicationBadEntry     = replication.EventBadEntry
	EventReplicationSnapshot     = replication.EventSnapshot
	EventReplicationLostWAL      = replication.EventLostWAL
	EventReplicationShipFailed   = replication.EventShipFailed
	EventReplicationBootstrapped = replication.EventBootstrapped
	EventReplicationRestored     = replication.EventRestored
	EventReplicationLagging      = replication.EventLagging
	EventReplicationCaughtUp     = replication.EventCaughtUp
)

// SQLiteSnapshots sets how often the leader of a WithSQLite app copies
// the database to the snapshot store (every interval, and after 256 MiB
// of log) and how many copies are kept; the log is trimmed to the oldest
// copy kept. Defaults: 1 h, 2.
func SQLiteSnapshots(interval time.Duration, keep int) Option {
	return func(a *Application) {
		if interval < 0 || keep < 0 {
			a.setErr(fmt.Errorf("%w: app %s: SQLiteSnapshots(%s, %d)", ErrInvalidOption, a.name, interval, keep))
			return
		}
		a.sqliteSnapEvery, a.sqliteSnapKeep = interval, keep
	}
}

// SQLitePromoteTimeout bounds how long a node may take to become the
// leader of a WithSQLite app's database: fence the log, apply what it has
// not applied, quick_check and install its replica, all of which grow
// with the database. Hooks keep the platform's hook timeout. Default
// 10 min.
func SQLitePromoteTimeout(d time.Duration) Option {
	return func(a *Application) {
		if d <= 0 {
			a.setErr(fmt.Errorf("%w: app %s: SQLitePromoteTimeout(%s)", ErrInvalidOption, a.name, d))
			return
		}
		a.sqlitePromote = d
	}
}

func (a *Application) sqlitePromoteBudget() time.Duration {
	if a.sqlitePromote > 0 {
		return a.sqlitePromote
	}
	return 10 * time.Minute
}

// appReplication is a WithSQLite app's replication on this node.
type appReplication struct {
	p      *Platform
	a      *Application
	repl   *replication.Replicator
	status jetstream.KeyValue // the platform's replication status bucket

	mu      sync.Mutex
	latest  *replication.Status
	wake    chan struct{}
	stopped chan struct{}
	stop    context.CancelFunc
}

// newAppReplication opens the app's log, snapshot store and replica.
func (p *Platform) newAppReplication(ctx context.Context, a *Application) (*appReplication, error) {
	if a.mode != ModeSingleton {
		return nil, fmt.Errorf("%w: app %s: WithSQLite needs Singleton(), not %s: one writer at a time", ErrInvalidOption, a.name, a.mode)
	}
	path, err := filepath.Abs(a.sqlitePath)
	if err != nil {
		return nil, fmt.Errorf("app %s: database path: %w", a.name, err)
	}
	status, err := p.replicationBucket(ctx)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", a.name, err)
	}
	log, err := wallog.Open(ctx, p.js, wallog.Config{
		Stream: p.layout.WALStream(a.name), Subject: p.layout.WALSubject(a.name), Replicas: p.cfg.replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", a.name, err)
	}
	snaps, err := snapstore.Open(ctx, p.js, p.layout.SnapshotBucket(a.name), p.cfg.replicas)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", a.name, err)
	}
	ar := &appReplication{p: p, a: a, status: status, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	ar.repl, err = replication.New(replication.Config{
		App: a.name, Node: p.node,
		Path: path, Dir: filepath.Join(p.stateDir, "replicas", a.name),
		Log: log, Snapshots: snaps,
		NC: p.nc, Subject: p.layout.ReplicationSubject(a.name),
		SnapshotInterval: a.sqliteSnapEvery, Retain: a.sqliteSnapKeep,
		Logger: p.log,
		Event: func(kind, msg string, epoch uint64, err error) {
			p.emit(Event{App: a.name, Kind: kind, Message: msg, Version: epoch, Error: errString(err)})
		},
		Report: ar.report,
		Failed: func(epoch uint64, err error) { p.stepDownAfter(a, epoch, "replication: "+err.Error()) },
	})
	if err != nil {
		return nil, err
	}
	return ar, nil
}

// start follows the log while the app's runner runs (until ctx ends or
// close), and keeps this instance's status record current.
func (ar *appReplication) start(ctx context.Context) {
	ctx, stop := context.WithCancel(ctx)
	ar.mu.Lock()
	ar.stop = stop
	ar.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ar.publish(ctx) }()
	go func() { defer wg.Done(); ar.repl.Run(ctx) }()
	go func() { wg.Wait(); close(ar.stopped) }()
}

// report takes a status from the Replicator (under its lock: never
// blocks) for publish to write.
func (ar *appReplication) report(s replication.Status) {
	ar.mu.Lock()
	ar.latest = &s
	ar.mu.Unlock()
	select {
	case ar.wake <- struct{}{}:
	default:
	}
}

// publish writes the latest status to the replication bucket, one write
// at a time, so an older status never overwrites a newer one; the record
// lives as long as this process keeps it (own).
func (ar *appReplication) publish(ctx context.Context) {
	p := ar.p
	key := p.layout.ReplicationKey(ar.a.name, p.node)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = p.disown(ctx, ar.status, key)
			return
		case <-ar.wake:
		case <-tick.C:
			ar.repl.Report() // refresh the figures (lag, role) every second
			continue
		}
		ar.mu.Lock()
		s := ar.latest
		ar.mu.Unlock()
		if s == nil {
			continue
		}
		b, _ := json.Marshal(s)
		wctx, cancel := context.WithTimeout(ctx, p.recordTTL())
		if err := p.own(wctx, ar.status.Bucket(), key, b); err != nil && ctx.Err() == nil {
			p.log.Debug("replication status not written", "app", ar.a.name, "err", err)
		}
		cancel()
	}
}

// close stops following and closes the replica.
func (ar *appReplication) close() {
	ar.mu.Lock()
	stop := ar.stop
	ar.mu.Unlock()
	if stop != nil {
		stop()
		<-ar.stopped
	}
	_ = ar.repl.Close()
}

func (ar *appReplication) up(ctx context.Context, epoch uint64) error {
	ctx, cancel := context.WithTimeout(ctx, ar.a.sqlitePromoteBudget())
	defer cancel()
	return ar.repl.Promote(ctx, epoch)
}

func (ar *appReplication) down(ctx context.Context) error {
	return ar.repl.Demote(ctx, gracefulStop(ctx))
}

// gracefulKey marks a deactivation that hands over (a step-down, a drain,
// a shutdown) rather than one forced by a lost lease.
type gracefulKey struct{}

func withGracefulStop(ctx context.Context, graceful bool) context.Context {
	return context.WithValue(ctx, gracefulKey{}, graceful)
}

func gracefulStop(ctx context.Context) bool {
	g, _ := ctx.Value(gracefulKey{}).(bool)
	return g
}

// ReplicationStatuses lists the replication status of every instance of
// the WithSQLite app, as each last wrote it.
func (p *Platform) ReplicationStatuses(ctx context.Context, app string) ([]ReplicationStatus, error) {
	if p.initErr != nil {
		return nil, p.initErr
	}
	kv, err := p.js.KeyValue(ctx, p.layout.ReplicationBucket())
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil // no WithSQLite app has run on this platform
	}
	if err != nil {
		return nil, err
	}
	return replication.ListStatuses(ctx, p.js, kv, app)
}

// replicationBucket makes (once) and returns the replication status
// bucket.
func (p *Platform) replicationBucket(ctx context.Context) (jetstream.KeyValue, error) {
	p.replMu.Lock()
	defer p.replMu.Unlock()
	if p.replStatus == nil {
		kv, err := state.EnsureKV(ctx, p.js, state.TTLBucketConfig(p.layout.ReplicationBucket(), p.cfg.replicas))
		if err != nil {
			return nil, fmt.Errorf("replication status bucket: %w", err)
		}
		p.replStatus = kv
	}
	return p.replStatus, nil
}

// SyncDB ships every transaction committed to the app's WithSQLite
// database so far to the replication log and returns once JetStream has
// acknowledged them: no failover after it can lose them. It is for the
// writes an app cannot afford to lose to a crash (ordinarily the log is a
// few milliseconds behind); only the leader can (ErrNotLeader).
func (a *Application) SyncDB(ctx context.Context) error {
	a.mu.Lock()
	repl := a.repl
	a.mu.Unlock()
	if repl == nil {
		return fmt.Errorf("app %s: %w: no replicated database (WithSQLite) on a running platform", a.name, ErrInvalidOption)
	}
	if _, err := repl.repl.Flush(ctx); err != nil {
		if errors.Is(err, replication.ErrNotLeader) {
			return fmt.Errorf("app %s: %w", a.name, ErrNotLeader)
		}
		return fmt.Errorf("app %s: %w", a.name, err)
	}
	return nil
}

// ReplicationStatus is this node's replication state of the app's
// WithSQLite database; false when it has none (or is not running).
func (a *Application) ReplicationStatus() (ReplicationStatus, bool) {
	a.mu.Lock()
	repl := a.repl
	a.mu.Unlock()
	if repl == nil {
		return ReplicationStatus{}, false
	}
	return repl.repl.Status(), true
}
