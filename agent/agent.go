package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	cluster "github.com/ozanturksever/go-cluster"
	"github.com/ozanturksever/go-cluster/control"
	"github.com/ozanturksever/go-cluster/state"
)

// SchedulerApp is the singleton every agent registers: its leader runs the
// scheduler. The "gcl-" prefix is reserved, so no job can take the name.
const SchedulerApp = control.ReservedPrefix + "scheduler"

// Agent is one running gcl agent.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	server   *state.Server // embedded NATS, nil when joining an external one
	platform *cluster.Platform
	store    *control.Store
	nc       *nats.Conn
	js       jetstream.JetStream
	http     *http.Server
	httpAddr string
	metrics  *metrics
	started  time.Time
	// scheduler is the singleton whose leader runs the scheduler.
	scheduler *cluster.Application

	ready atomic.Bool

	followMu sync.Mutex
	follows  map[string]*atomic.Int64 // log follows by inbox: when each ends (unix ns)

	mu        sync.Mutex
	instances map[string]*instance // by job name
	kick      chan struct{}        // an instance changed: report it
}

// New starts the agent's NATS (in dev and server mode), connects its
// platform and opens the orchestrator state. Run starts working.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	started := time.Now()
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	a := &Agent{
		cfg: cfg, log: cfg.Logger.With("node", cfg.Node), started: started,
		instances: map[string]*instance{}, kick: make(chan struct{}, 1), follows: map[string]*atomic.Int64{},
		metrics: newMetrics(),
	}
	a.metrics.reg.MustRegister(newReplicationCollector(cfg.Node, a.localReplications))
	url := cfg.URL
	if cfg.Dev || cfg.Server {
		sc := state.ServerConfig{
			Host: cfg.ServerHost, Port: cfg.ServerPort, StoreDir: filepath.Join(cfg.DataDir, "nats"),
			User: cfg.User, Password: cfg.Password, Token: cfg.Token, ServerName: cfg.Node,
		}
		if cfg.Server {
			sc.ClusterHost, sc.ClusterPort, sc.Routes = cfg.ClusterHost, cfg.ClusterPort, cfg.Join
			sc.ClusterUser, sc.ClusterPassword = cfg.ClusterUser, cfg.ClusterPassword
			if sc.ClusterUser == "" && !isLoopback(cfg.ClusterHost, cfg.ServerHost) {
				a.log.Warn("the NATS route port accepts any peer: set -cluster-user and -cluster-password (GCL_CLUSTER_USER, GCL_CLUSTER_PASSWORD)")
			}
		}
		srv, err := state.StartServer(ctx, sc)
		if err != nil {
			return nil, err
		}
		a.server = srv
		url = srv.ClientURL()
	}
	// The HTTP listener is opened before the platform so that its address
	// (a free port when asked for :0) is in the node's presence record.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		a.shutdownServer()
		return nil, fmt.Errorf("agent HTTP listener: %w", err)
	}
	a.httpAddr = ln.Addr().String()
	opts := []cluster.PlatformOption{
		cluster.WithLogger(cfg.Logger), cluster.WithLabels(cfg.Labels), cluster.AsAgent(a.httpAddr),
		cluster.WithReplicas(cfg.JetStreamReplicas),
		cluster.WithLeaseRenewObserver(func(app string, d time.Duration) {
			a.metrics.renew.WithLabelValues(app).Observe(d.Seconds())
		}),
		cluster.WithEventObserver(func(e cluster.Event) {
			a.metrics.events.WithLabelValues(e.App, e.Kind).Inc()
		}),
	}
	if cfg.Advertise != "" {
		opts = append(opts, cluster.WithAdvertiseAddr(cfg.Advertise))
	}
	if cfg.CredsFile != "" {
		opts = append(opts, cluster.WithCredsFile(cfg.CredsFile))
	}
	if cfg.NKeyFile != "" {
		opts = append(opts, cluster.WithNKeyFile(cfg.NKeyFile))
	}
	if cfg.User != "" {
		opts = append(opts, cluster.WithUserPassword(cfg.User, cfg.Password))
	}
	if cfg.Token != "" {
		opts = append(opts, cluster.WithToken(cfg.Token))
	}
	if cfg.CAFile != "" || cfg.CertFile != "" {
		opts = append(opts, cluster.WithTLS(cfg.CAFile, cfg.CertFile, cfg.Key))
	}
	// What must outlive the agent (the VIPs it holds) stays with its data.
	opts = append(opts, cluster.WithStateDir(filepath.Join(cfg.DataDir, "state")))
	if cfg.SystemdUserSocket != "" {
		opts = append(opts, cluster.WithSystemdUserManager(cfg.SystemdUserSocket))
	}
	if cfg.SystemdBus != "" {
		opts = append(opts, cluster.WithSystemdBusAddress(cfg.SystemdBus))
	}
	if cfg.LeaseTTL > 0 {
		opts = append(opts, cluster.WithLeaseTTL(cfg.LeaseTTL))
	}
	if cfg.PresenceTTL > 0 {
		opts = append(opts, cluster.WithPresenceTTL(cfg.PresenceTTL))
	}
	p, err := cluster.NewPlatform(cfg.Platform, cfg.Node, url, opts...)
	if err != nil {
		ln.Close()
		a.shutdownServer()
		return nil, err
	}
	a.platform, a.nc = p, p.Conn()
	if a.js, err = jetstream.New(a.nc); err == nil {
		a.store, err = control.Open(ctx, a.js, cfg.Platform, cfg.JetStreamReplicas)
	}
	if err != nil {
		p.Close()
		ln.Close()
		a.shutdownServer()
		return nil, fmt.Errorf("agent: orchestrator state: %w", err)
	}
	a.http = &http.Server{Handler: a.routes(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := a.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("HTTP server stopped", "err", err)
		}
	}()
	return a, nil
}

// NATSURL is the client URL of the NATS the agent uses.
func (a *Agent) NATSURL() string {
	if a.server != nil {
		return a.server.ClientURL()
	}
	return a.cfg.URL
}

// clientURLForApps is the NATS URL given to instances (GCL_NATS_URL), so
// apps built on the library join the same NATS as their agent. Credentials
// in the agent's URL are left out: an app, possibly running as another
// user, gets its own through the job's env.
func (a *Agent) clientURLForApps() string { return state.StripCredentials(a.NATSURL()) }

// HTTPAddr is where the agent's HTTP API listens.
func (a *Agent) HTTPAddr() string { return a.httpAddr }

// Run works until ctx ends, then shuts down gracefully: it hands over
// every singleton it leads, stops its instances and leaves the platform.
func (a *Agent) Run(ctx context.Context) error {
	defer a.shutdownServer()
	defer a.platform.Close()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = a.http.Shutdown(sctx)
		cancel()
	}()

	sched := cluster.NewApp(SchedulerApp, cluster.Singleton())
	a.scheduler = sched
	var schedStop context.CancelFunc
	var schedDone chan struct{}
	sched.OnActive(func(context.Context) error {
		sctx, cancel := context.WithCancel(ctx)
		schedStop, schedDone = cancel, make(chan struct{})
		go func() { defer close(schedDone); a.schedule(sctx) }()
		return nil
	})
	sched.OnPassive(func(hctx context.Context) error {
		if schedStop == nil {
			return nil
		}
		schedStop()
		select {
		case <-schedDone:
		case <-hctx.Done():
		}
		schedStop = nil
		return nil
	})
	if err := a.platform.Register(sched); err != nil {
		return err
	}
	if err := a.serveRequests(); err != nil {
		return err
	}

	// The platform outlives ctx: on shutdown the instances hand over
	// first, then the platform leaves.
	pctx, stopPlatform := context.WithCancel(context.Background())
	defer stopPlatform()
	platformDone := make(chan error, 1)
	go func() { platformDone <- a.platform.Run(pctx) }()
	// Work of this run only: ends with it, whichever way it ends.
	wctx, stopWork := context.WithCancel(ctx)
	defer stopWork()

	var runErr error
	var allocs <-chan control.NodeAllocs
	select {
	case <-ctx.Done():
	case err := <-platformDone:
		platformDone = nil
		runErr = fmt.Errorf("platform stopped: %w", err)
	case <-a.platform.Ready():
		// Instances are registered only now, so that a job the node cannot
		// run is refused by Register, visibly, rather than by Run.
		var err error
		if allocs, err = a.store.WatchAllocs(wctx, a.cfg.Node); err != nil {
			runErr = err
			break
		}
		go a.reportLoop(wctx)
		a.ready.Store(true)
		a.log.Info("agent ready", "platform", a.cfg.Platform, "nats", state.RedactURL(a.NATSURL()), "http", a.httpAddr,
			"data_dir", a.cfg.DataDir, "startup", time.Since(a.started).Round(time.Millisecond))
	}

	// Instances that could not be registered (a job version not readable
	// yet, a transient NATS error) are retried with the latest assignment.
	retry := time.NewTicker(5 * time.Second)
	defer retry.Stop()
	var last control.NodeAllocs
loop:
	for allocs != nil {
		select {
		case <-ctx.Done():
			break loop
		case err := <-platformDone:
			runErr = fmt.Errorf("platform stopped: %w", err)
			platformDone = nil
			break loop
		case na, ok := <-allocs:
			if !ok {
				if ctx.Err() == nil {
					runErr = errors.New("allocation watch ended")
				}
				break loop
			}
			last = na
			a.apply(ctx, na)
		case <-retry.C:
			if a.needsRetry(last) {
				a.apply(ctx, last)
			}
		}
	}
	a.ready.Store(false)
	a.log.Info("agent stopping: handing over and stopping instances")
	a.stopAll()
	stopWork()
	a.writeReport(context.Background())
	stopPlatform()
	if platformDone != nil {
		if err := <-platformDone; err != nil && runErr == nil {
			runErr = err
		}
	}
	a.log.Info("agent stopped")
	return runErr
}

// isLoopback reports whether the first non-empty host is a loopback address.
func isLoopback(hosts ...string) bool {
	for _, h := range hosts {
		if h == "" {
			continue
		}
		ip := net.ParseIP(h)
		return h == "localhost" || (ip != nil && ip.IsLoopback())
	}
	return true
}

func (a *Agent) shutdownServer() {
	if a.server != nil {
		a.server.Shutdown()
	}
}
