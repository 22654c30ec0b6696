package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/election"
	"github.com/ozanturksever/go-cluster/executor/systemd"
	"github.com/ozanturksever/go-cluster/state"
)

// Platform is one node's membership in a named cluster: its NATS connection,
// presence, and the apps registered on it.
type Platform struct {
	name, node, instance string
	cfg                  platformConfig
	initErr              error
	log                  *slog.Logger

	nc       *nats.Conn
	js       jetstream.JetStream
	layout   state.Layout
	leases   jetstream.KeyValue
	nodes    jetstream.KeyValue
	services jetstream.KeyValue
	// replStatus holds the TTL'd replication status of every SQLite
	// app's instance (sqlite.go); made by the first WithSQLite app, so
	// that a platform without one does not pay for it at start-up.
	replMu     sync.Mutex
	replStatus jetstream.KeyValue
	stateDir   string
	prober     *state.Prober
	probeSub   *nats.Subscription
	address    string

	assignments jetstream.KeyValue
	// rootCtx lives until Close; watches that serve the whole platform
	// (ring views) run under it.
	rootCtx    context.Context
	rootCancel context.CancelFunc
	ringMu     sync.Mutex
	ringViews  map[string]*ringView // see ringViewOf

	mu      sync.Mutex
	apps    []*Application
	byName  map[string]*Application
	running bool
	closed  bool
	// While Run runs: its context, and how to end and wait for each app's
	// runner so that apps can come and go (Register, Unregister).
	runCtx  context.Context
	runWG   *sync.WaitGroup
	runStop map[string]appStop
	ready   chan struct{} // closed once Run has joined and started its apps

	// answering counts calls being answered; see stopAnswering.
	answering sync.WaitGroup

	// vipRecords lists the VIPs this node holds (see vip.go).
	vipRecords *vipRecordFile
	// systemd is the connection backends use, dialled on first use.
	systemdMu sync.Mutex
	systemd   *systemd.Manager

	// claimMu orders the AwayFromApp claims of local apps (claimNode).
	claimMu sync.Mutex

	// owned are the TTL'd records this process keeps alive (presence,
	// active markers, services); see refreshOwned and disown.
	ownedMu sync.Mutex
	owned   map[ownedKey][]byte
}

type ownedKey struct{ bucket, key string }

// defaultPlatform serves the package-level cluster.Call.
var defaultPlatform atomic.Pointer[Platform]

// NewPlatform connects node nodeID of platform name to NATS at natsURL.
//
// On error the returned Platform is not nil: Register accepts apps and Run
// returns the same error, so a program that ignores the error (as the
// examples do) still fails with a clear message instead of a nil pointer.
func NewPlatform(name, nodeID, natsURL string, opts ...PlatformOption) (*Platform, error) {
	cfg := platformConfig{
		labels:      map[string]string{},
		timing:      election.DefaultTiming(),
		presenceTTL: 5 * time.Second,
		hookTimeout: 30 * time.Second,
		replicas:    1,
		logger:      slog.Default(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	p := &Platform{
		name: name, node: nodeID, cfg: cfg, ready: make(chan struct{}),
		layout: state.Layout{Platform: name},
		byName: map[string]*Application{},
		owned:  map[ownedKey][]byte{},

		ringViews: map[string]*ringView{},
		log:       cfg.logger.With("platform", name, "node", nodeID),
	}
	stateDir := cfg.stateDir
	if stateDir == "" {
		stateDir = filepath.Join(os.TempDir(), "go-cluster", name, nodeID)
	}
	p.stateDir = stateDir
	p.vipRecords = &vipRecordFile{path: filepath.Join(stateDir, "vips.json")}
	p.rootCtx, p.rootCancel = context.WithCancel(context.Background())
	p.initErr = p.connect(natsURL)
	if p.initErr != nil {
		return p, p.initErr
	}
	defaultPlatform.Store(p)
	return p, nil
}

func (p *Platform) connect(natsURL string) error {
	if err := state.ValidateName("platform name", p.name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	if err := state.ValidateName("node ID", p.node); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	if p.cfg.err != nil {
		return p.cfg.err
	}
	if err := p.cfg.timing.Validate(); err != nil {
		return err
	}
	if p.cfg.replicas < 1 {
		return fmt.Errorf("%w: WithReplicas(%d)", ErrInvalidOption, p.cfg.replicas)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	p.instance = hex.EncodeToString(rnd[:])
	addr, err := advertiseAddress(p.cfg.advertiseAddr)
	if err != nil {
		return err
	}
	p.address = addr

	// Generous: the servers of a cluster that starts together take a few
	// seconds to settle who stores which bucket (see state.EnsureKV).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	extra := append([]nats.Option{
		nats.DisconnectErrHandler(func(*nats.Conn, error) { p.disconnected() }),
	}, p.cfg.natsOptions...)
	p.nc, p.js, err = state.Connect(ctx, state.ConnectConfig{
		URL:       natsURL,
		Name:      "gcl " + p.name + "/" + p.node,
		CredsFile: p.cfg.credsFile, NKeyFile: p.cfg.nkeyFile,
		User: p.cfg.user, Password: p.cfg.password, Token: p.cfg.token,
		RootCAs: p.cfg.rootCAs, ClientCert: p.cfg.clientCert, ClientKey: p.cfg.clientKey,
		TLSRequired: p.cfg.tlsRequired,
		Extra:       extra,
	})
	if err != nil {
		return err
	}
	if p.leases, err = state.EnsureLeaseKV(ctx, p.js, p.layout.LeasesBucket(), p.cfg.replicas); err != nil {
		p.nc.Close()
		return err
	}
	for _, b := range []struct {
		dst  *jetstream.KeyValue
		name string
	}{{&p.nodes, p.layout.NodesBucket()}, {&p.services, p.layout.ServicesBucket()}} {
		if *b.dst, err = state.EnsureKV(ctx, p.js, state.TTLBucketConfig(b.name, p.cfg.replicas)); err != nil {
			p.nc.Close()
			return err
		}
	}
	if p.assignments, err = state.EnsureKV(ctx, p.js, jetstream.KeyValueConfig{
		Bucket: p.layout.AssignmentsBucket(), History: 1, Replicas: p.cfg.replicas, Storage: jetstream.FileStorage,
	}); err != nil {
		p.nc.Close()
		return err
	}
	if err := p.ensureEventsStream(ctx); err != nil {
		p.nc.Close()
		return err
	}
	p.prober = state.NewProber(p.nc, p.layout, p.cfg.timing.ProbeInterval)
	return nil
}

// Name, NodeID and Address describe this node.
func (p *Platform) Name() string    { return p.name }
func (p *Platform) NodeID() string  { return p.node }
func (p *Platform) Address() string { return p.address }

// Conn is the platform's NATS connection, for callers that need raw NATS.
func (p *Platform) Conn() *nats.Conn { return p.nc }

func (p *Platform) app(name string) *Application {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byName[name]
}

func (p *Platform) appsSnapshot() []*Application {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Application(nil), p.apps...)
}

// appStop ends one app's runner and tells when it has finished.
type appStop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Register adds apps to the platform. Apps registered while the platform
// runs start at once; an app that cannot start is not registered.
func (p *Platform) Register(apps ...*Application) error {
	var errs []error
	for _, a := range apps {
		if err := p.register(a); err != nil {
			errs = append(errs, err)
			continue
		}
		p.mu.Lock()
		runCtx := p.runCtx
		p.mu.Unlock()
		if runCtx == nil {
			continue
		}
		if err := p.startLate(runCtx, a); err != nil {
			p.forget(a)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// startLate starts an app registered while Run runs. Unlike the apps Run
// started, its runner failing later does not end Run: the node keeps
// serving its other apps and the error is logged and kept on the app.
func (p *Platform) startLate(ctx context.Context, a *Application) error {
	if err := p.preflight(ctx, a); err != nil {
		return err
	}
	return p.launch(a, p.lateFailure(a))
}

// lateFailure handles the failure of a late app's runner.
func (p *Platform) lateFailure(a *Application) func(error) {
	return func(err error) {
		a.setErr(err)
		p.log.Error("app stopped", "app", a.name, "err", err)
	}
}

// launch makes a's runner and starts it, unless it already runs or a is
// no longer registered. Run and Register may both get here for an app
// registered while Run joined; deciding under p.mu starts it once.
func (p *Platform) launch(a *Application, failed func(error)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runCtx == nil {
		return fmt.Errorf("app %s: %w", a.name, ErrClosed)
	}
	if _, started := p.runStop[a.name]; started || p.byName[a.name] != a {
		return nil
	}
	r, err := p.newRunner(a)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(p.runCtx)
	stop := appStop{cancel: cancel, done: make(chan struct{})}
	p.runStop[a.name] = stop
	p.runWG.Add(1)
	go func() {
		defer p.runWG.Done()
		defer close(stop.done)
		if err := r.run(ctx); err != nil && ctx.Err() == nil {
			failed(fmt.Errorf("app %s: %w", a.name, err))
		}
	}()
	return nil
}

// Ready is closed once Run has joined the cluster and started the apps
// registered so far: from then on Register starts an app at once and
// reports whether it could.
func (p *Platform) Ready() <-chan struct{} { return p.ready }

// endRun stops apps from starting: Run is about to wait for its runners.
func (p *Platform) endRun() {
	p.mu.Lock()
	p.runCtx = nil
	p.mu.Unlock()
}

// Unregister stops app name on this node and removes it: a leader hands
// its lease to a standby, an active instance runs its deactivation hooks,
// as when Run ends. It returns once the app has stopped, or with ctx's
// error (the app keeps stopping in the background).
func (p *Platform) Unregister(ctx context.Context, name string) error {
	p.mu.Lock()
	a := p.byName[name]
	stop, running := p.runStop[name]
	p.mu.Unlock()
	if a == nil {
		return fmt.Errorf("app %q on node %s: %w", name, p.node, ErrNotRegistered)
	}
	if running {
		stop.cancel()
		select {
		case <-stop.done:
		case <-ctx.Done():
			// It keeps stopping; its name is free once it has.
			go func() {
				<-stop.done
				p.unsubscribeNodeCalls(a)
				p.forget(a)
			}()
			return fmt.Errorf("app %s: stopping: %w", name, ctx.Err())
		}
	}
	p.unsubscribeNodeCalls(a)
	p.forget(a)
	return nil
}

func (p *Platform) unsubscribeNodeCalls(a *Application) {
	cs := p.callSubsOf(a)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.node != nil {
		_ = cs.node.Unsubscribe()
		cs.node = nil
	}
}

// forget removes a from the platform's registry.
func (p *Platform) forget(a *Application) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byName[a.name] != a {
		return // already forgotten; the name may belong to a new app
	}
	delete(p.byName, a.name)
	delete(p.runStop, a.name)
	p.apps = slices.DeleteFunc(p.apps, func(x *Application) bool { return x == a })
	a.mu.Lock()
	a.platform = nil
	a.runner = nil
	a.releaseResourcesLocked()
	a.mu.Unlock()
}

// prepareResources checks the app's VIP, backend and replicated database
// and makes their handles (netlink, the unit over D-Bus, the replica), so
// that an app whose resources cannot work is refused before it campaigns.
func (p *Platform) prepareResources(ctx context.Context, a *Application) error {
	var unit *appBackend
	var vip *appVIP
	var repl *appReplication
	var err error
	if a.sqlitePath != "" {
		if repl, err = p.newAppReplication(ctx, a); err != nil {
			return err
		}
	}
	if a.backend != nil {
		unit, err = p.newAppBackend(ctx, a)
	}
	if err == nil && a.vipCIDR != "" {
		vip, err = p.newAppVIP(a)
	}
	if err != nil {
		if repl != nil {
			repl.close() // its replica directory stays locked otherwise
		}
		return err
	}
	a.mu.Lock()
	a.releaseResourcesLocked()
	a.unit, a.vip, a.repl = unit, vip, repl
	a.mu.Unlock()
	return nil
}

// releaseResourcesLocked drops the handles prepareResources made.
func (a *Application) releaseResourcesLocked() {
	if a.vip != nil {
		a.vip.close()
	}
	if a.repl != nil {
		a.repl.close()
	}
	a.vip, a.unit, a.repl = nil, nil, nil
}

// preflight refuses an app that cannot run, before anything is started.
func (p *Platform) preflight(ctx context.Context, a *Application) error {
	err := a.optErr
	if err == nil && a.ringPartitions > 0 {
		err = p.checkRingPartitions(ctx, a)
	}
	if err == nil {
		err = p.prepareResources(ctx, a)
	}
	return err
}

func (p *Platform) register(a *Application) error {
	if a == nil {
		return fmt.Errorf("%w: nil app", ErrInvalidOption)
	}
	if a.optErr != nil {
		return a.optErr
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if _, dup := p.byName[a.name]; dup {
		return fmt.Errorf("app %q: %w on node %s", a.name, ErrDuplicateApp, p.node)
	}
	a.mu.Lock()
	if a.platform != nil && a.platform != p {
		a.mu.Unlock()
		return fmt.Errorf("app %q: %w with another platform", a.name, ErrDuplicateApp)
	}
	a.platform = p
	a.mu.Unlock()
	p.byName[a.name] = a
	p.apps = append(p.apps, a)
	return nil
}

// Run joins the cluster, runs every registered app until ctx ends, then
// hands over: leaders release their leases to standbys, instances stop.
func (p *Platform) Run(ctx context.Context) error {
	if p.initErr != nil {
		return p.initErr
	}
	p.mu.Lock()
	if p.running || p.closed {
		p.mu.Unlock()
		return errors.New("platform: Run called twice")
	}
	p.running = true
	apps := append([]*Application(nil), p.apps...)
	p.mu.Unlock()
	for _, a := range apps {
		if err := p.preflight(ctx, a); err != nil {
			p.log.Error("cannot run", "app", a.name, "err", err)
			return err
		}
	}
	if err := p.removeRecordedVIPs(ctx); err != nil {
		// Campaign anyway: the stale address's lifetime removes it, and
		// keeping every app down for it would be worse.
		p.log.Error("could not remove VIPs left by a previous process", "err", err)
	}

	if err := p.join(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		p.log.Error("cannot join the cluster", "err", err)
		return err
	}
	defer p.leave()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A connection closed for good (Close, or nats.go giving up) ends Run: a
	// platform without NATS can hold nothing.
	connClosed := make(chan struct{})
	p.nc.SetClosedHandler(func(*nats.Conn) { close(connClosed); cancel() })
	errc := make(chan error, len(apps)+1)
	var wg sync.WaitGroup
	// Apps registered from here on start on their own (Register). Those
	// registered while we joined start here, but like late ones: one that
	// cannot run is refused alone and does not end Run.
	p.mu.Lock()
	p.runCtx, p.runWG, p.runStop = ctx, &wg, map[string]appStop{}
	all := append([]*Application(nil), p.apps...)
	p.mu.Unlock()
	for _, a := range all {
		if !slices.Contains(apps, a) {
			err := p.preflight(ctx, a)
			if err == nil {
				err = p.launch(a, p.lateFailure(a))
			}
			if err != nil {
				a.setErr(err)
				p.log.Error("cannot run", "app", a.name, "err", err)
				p.forget(a)
			}
			continue
		}
		if err := p.launch(a, func(err error) { errc <- err }); err != nil {
			p.endRun()
			cancel()
			wg.Wait()
			return err
		}
	}
	wg.Add(1)
	go func() { defer wg.Done(); errc <- p.heartbeat(ctx) }()
	close(p.ready)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		cancel()
	}
	p.endRun()
	wg.Wait()
	if errors.Is(runErr, context.Canceled) {
		runErr = nil
	}
	select {
	case <-connClosed:
		p.mu.Lock()
		closedByUs := p.closed
		p.mu.Unlock()
		if !closedByUs && runErr == nil {
			runErr = fmt.Errorf("platform %s node %s: NATS connection closed", p.name, p.node)
		}
	default:
	}
	if runErr != nil {
		p.log.Error("platform stopped", "err", runErr)
	}
	return runErr
}

// Close disconnects from NATS. Run must have returned first for a graceful
// handover; Close on a running platform is a crash as others see it.
func (p *Platform) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	defaultPlatform.CompareAndSwap(p, nil)
	p.rootCancel()
	p.closeSystemd()
	if p.nc != nil && p.nc.IsConnected() {
		p.stopAnswering(2 * time.Second)
	}
	if p.nc != nil {
		p.nc.Close()
	}
	return nil
}

func (p *Platform) disconnected() {
	p.mu.Lock()
	apps := append([]*Application(nil), p.apps...)
	p.mu.Unlock()
	for _, a := range apps {
		a.mu.Lock()
		r, m := a.runner, a.member
		a.mu.Unlock()
		if r != nil {
			r.disconnected()
		}
		if m != nil {
			m.disconnected()
		}
	}
}

// own writes a TTL'd record this process keeps alive until disown.
//
// The first write is bounded by ownWriteTimeout and its failure is not
// the caller's: own runs on the activation path, and a stream without a
// leader (an election after a node died, up to
// state.EmbeddedRaftTiming.WorstElectionOutage) must not keep a new leader
// from serving, nor make it step down. The record is kept regardless and
// the heartbeat writes it once the stream answers (within presenceTTL/5).
func (p *Platform) own(ctx context.Context, bucket, key string, value []byte) error {
	p.ownedMu.Lock()
	p.owned[ownedKey{bucket, key}] = value
	p.ownedMu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, ownWriteTimeout)
	defer cancel()
	if err := state.PutTTL(wctx, p.js, bucket, key, value, p.recordTTL()); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.log.Warn("record not written yet; the heartbeat will write it", "bucket", bucket, "key", key, "err", err)
	}
	return nil
}

// ownWriteTimeout bounds the first write of an owned record (see own).
const ownWriteTimeout = 500 * time.Millisecond

// disown stops keeping a record alive and deletes it. It never waits on the
// network: it runs while an instance stops, possibly at its lease deadline
// with NATS unreachable, and must not eat the stop budget of the hooks after
// it. The delete runs in the background; if it cannot land, the record's
// TTL removes it.
func (p *Platform) disown(ctx context.Context, kv jetstream.KeyValue, key string) error {
	p.ownedMu.Lock()
	delete(p.owned, ownedKey{kv.Bucket(), key})
	p.ownedMu.Unlock()
	go func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.recordTTL())
		defer cancel()
		_ = kv.Delete(dctx, key)
	}()
	return nil
}

// refreshOwned re-puts every owned record. It publishes without holding
// ownedMu (a refresh may hang for its whole timeout during a partition), and
// deletes again any record that was disowned while its refresh was in
// flight, so a refresh never leaves a removed record behind.
func (p *Platform) refreshOwned(ctx context.Context) error {
	p.ownedMu.Lock()
	snapshot := make(map[ownedKey][]byte, len(p.owned))
	for k, v := range p.owned {
		snapshot[k] = v
	}
	p.ownedMu.Unlock()
	var errs []error
	for k, v := range snapshot {
		if err := state.PutTTL(ctx, p.js, k.bucket, k.key, v, p.recordTTL()); err != nil {
			errs = append(errs, fmt.Errorf("refresh %s/%s: %w", k.bucket, k.key, err))
			continue
		}
		p.ownedMu.Lock()
		_, still := p.owned[k]
		p.ownedMu.Unlock()
		if !still {
			if kv := p.bucketFor(k.bucket); kv != nil {
				_ = kv.Delete(ctx, k.key)
			}
		}
	}
	return errors.Join(errs...)
}
