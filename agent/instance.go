package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cluster "github.com/ozanturksever/go-cluster"
	"github.com/ozanturksever/go-cluster/control"
	"github.com/ozanturksever/go-cluster/executor/exec"
	"github.com/ozanturksever/go-cluster/jobspec"
	"github.com/ozanturksever/go-cluster/scheduler"
)

// Instance states, as the scheduler knows them.
const (
	StateStarting = scheduler.StateStarting // registered, not yet active or standby
	StateStandby  = scheduler.StateStandby  // a singleton candidate, healthy, not leading
	StateRunning  = scheduler.StateRunning  // active and its process runs
	StateFailed   = scheduler.StateFailed   // gave up on this node (reason says why)
	StateStopped  = scheduler.StateStopped
)

// instance is one job's instance on this node: a platform app whose
// activation starts the job's process and whose deactivation stops it.
type instance struct {
	a    *Agent
	job  control.Job
	app  *cluster.Application
	log  *slog.Logger
	logs string // directory of the process's stdout/stderr
	// registered: the app is on the platform; guarded by the agent's mu.
	registered bool

	mu       sync.Mutex
	sup      *exec.Supervisor
	state    string
	active   bool
	since    time.Time
	reason   string
	restarts int // restarts of earlier processes of this instance
	parts    []int
	// Service checks, while the process runs (see checks.go).
	stopChecks   context.CancelFunc
	checksOK     bool
	checkReason  string
	healthySince time.Time
}

func newInstance(a *Agent, job control.Job) *instance {
	in := &instance{
		a: a, job: job, log: a.log.With("job", job.Name, "version", job.Version),
		logs: filepath.Join(a.cfg.DataDir, "logs", job.Name),
	}
	in.set(StateStarting, "")
	// Built before the instance is shared, so app never changes after.
	in.app = in.appFor(job.Spec)
	return in
}

// appFor builds the platform app of a job version. Placement decides how
// many nodes run a pool job, so every pool instance is active where it is
// placed (Spread); a singleton's candidates elect their leader.
func (in *instance) appFor(spec *jobspec.App) *cluster.Application {
	var opts []cluster.Option
	switch spec.Mode {
	case jobspec.ModeSingleton:
		opts = append(opts, cluster.Singleton())
	case jobspec.ModeRing:
		opts = append(opts, cluster.Spread(), cluster.Ring(spec.Partitions))
	default:
		opts = append(opts, cluster.Spread())
	}
	for _, other := range spec.AwayFrom {
		opts = append(opts, cluster.AwayFromApp(other))
	}
	if db := spec.SQLite; db != nil {
		opts = append(opts, cluster.WithSQLite(db.Path))
		if db.SnapshotInterval > 0 {
			opts = append(opts, cluster.SQLiteSnapshots(db.SnapshotInterval, snapshotsKept(db.SnapshotInterval, db.Retention)))
		}
	}
	if spec.VIP != nil {
		opts = append(opts, cluster.VIP(spec.VIP.Address.String(), spec.VIP.Interface))
		if spec.VIP.ARPCount > 0 {
			opts = append(opts, cluster.VIPAnnouncements(spec.VIP.ARPCount, 0))
		}
	}
	if b := spec.Backend; b != nil && b.Type == jobspec.BackendSystemd {
		// A unit that fails while active is restarted as the job's restart
		// block allows (attempts, delay apart), then the instance steps
		// down so another node runs it. A unit's own Restart= comes first.
		var unitOpts []cluster.SystemdOption
		if r := spec.Restart; r.Attempts > 0 {
			unitOpts = append(unitOpts, cluster.SystemdRestart(r.Attempts, r.Delay))
		}
		opts = append(opts, cluster.WithBackend(cluster.Systemd(b.Systemd.Unit, unitOpts...)))
	}
	app := cluster.NewApp(spec.Name, opts...)
	// Services are published for discovery while the instance is active.
	for _, svc := range spec.Services {
		cfg := cluster.ServiceConfig{Port: svc.Port, Protocol: svc.Protocol}
		if len(svc.Tags) > 0 {
			cfg.Metadata = map[string]string{"tags": strings.Join(svc.Tags, ",")}
		}
		if svc.Check != nil {
			cfg.Path = svc.Check.Path
		}
		if err := app.ExposeService(svc.Name, cfg); err != nil {
			in.log.Warn("service not exposed", "service", svc.Name, "err", err)
		}
	}
	app.OnStart(in.start)
	app.OnStop(in.stop)
	if spec.Mode == jobspec.ModeSingleton {
		app.OnPassive(func(context.Context) error {
			in.mu.Lock()
			if in.state == StateStarting || in.state == StateStopped {
				in.setLocked(StateStandby, "")
			}
			in.mu.Unlock()
			return nil
		})
	}
	if spec.Mode == jobspec.ModeRing {
		app.OnOwn(func(_ context.Context, parts []int) error { return in.partitionsChanged(parts, nil) })
		app.OnRelease(func(_ context.Context, parts []int) error { return in.partitionsChanged(nil, parts) })
	}
	return app
}

// snapshotsKept maps a job's sqlite retention onto the library's count of
// snapshots kept: one snapshot every interval, as many as cover
// retention, rounded up (snapshot_interval 1h, retention 24h: 24), and at
// least one. The log is trimmed to the oldest snapshot kept, so the
// retention covers the log as well. Every snapshot is a full copy of the
// database.
func snapshotsKept(interval, retention time.Duration) int {
	if interval <= 0 || retention <= interval {
		return 1
	}
	return int((retention + interval - 1) / interval)
}

// register puts the instance on the platform.
func (in *instance) register() error {
	if err := in.a.platform.Register(in.app); err != nil {
		in.set(StateFailed, err.Error())
		return err
	}
	in.a.mu.Lock()
	in.registered = true
	in.a.mu.Unlock()
	return nil
}

// unregister hands over (a leader steps down to a standby) and stops.
func (in *instance) unregister(ctx context.Context) {
	if err := in.a.platform.Unregister(ctx, in.job.Name); err != nil && !errors.Is(err, cluster.ErrNotRegistered) {
		in.log.Warn("unregister", "err", err)
	}
	in.mu.Lock()
	sup := in.sup
	in.mu.Unlock()
	if sup != nil {
		// Normally OnStop stopped it; a hook cut short by its timeout may not have.
		_ = sup.Stop(ctx)
	}
	in.set(StateStopped, "")
}

// start is OnStart: the instance became active; run its process.
func (in *instance) start(ctx context.Context) error {
	in.mu.Lock()
	failed := in.state == StateFailed
	in.mu.Unlock()
	if failed {
		// Gave up on this node; activation must not restart the crash loop.
		return errors.New("instance failed on this node; waiting for the scheduler")
	}
	spec := in.job.Spec
	in.a.metrics.activations.WithLabelValues(spec.Name).Inc()
	in.a.metrics.epoch.WithLabelValues(spec.Name).Set(float64(in.app.Election().Epoch()))
	if spec.Backend == nil || spec.Backend.Type != jobspec.BackendExec {
		// Nothing to run (a VIP- or database-only app); active is running.
		in.mu.Lock()
		in.active = true
		in.setLocked(StateRunning, "")
		in.mu.Unlock()
		return nil
	}
	e := spec.Backend.Exec
	env := map[string]string{}
	for k, v := range e.Env {
		env[k] = v
	}
	env["GCL_NODE"] = in.a.cfg.Node
	env["GCL_APP"] = spec.Name
	env["GCL_PLATFORM"] = in.a.cfg.Platform
	env["GCL_JOB_VERSION"] = strconv.FormatUint(in.job.Version, 10)
	env["GCL_EPOCH"] = strconv.FormatUint(in.app.Election().Epoch(), 10)
	env["GCL_NATS_URL"] = in.a.clientURLForApps()
	for _, s := range spec.Services {
		env["GCL_PORT_"+envName(s.Name)] = strconv.Itoa(s.Port)
	}
	if spec.Mode == jobspec.ModeRing {
		// Ownership arrives after activation (OnOwn), so the process starts
		// with what is owned now, usually nothing, and follows the file.
		owned := in.app.Ring().OwnedPartitions()
		if err := in.writePartitions(owned); err != nil {
			return err
		}
		env["GCL_PARTITIONS_FILE"] = in.partitionsFile()
		env["GCL_PARTITIONS"] = joinInts(owned)
	}
	dir := e.Dir
	if dir == "" && e.User != "" {
		// The log directory sits inside the agent's data directory, which
		// another user may not be allowed to enter.
		dir = "/"
	}
	// A singleton's process runs only while this node's lease holds: its
	// supervisor's guard SIGKILLs it at the term's stop-by time (the lease
	// deadline plus the stop budget, still before any successor may act)
	// unless holdLease moves it on, so that it stops in time even if this
	// agent is frozen or starved and cannot stop it. The agent itself
	// stops it gracefully from the lease deadline on, first. Pool and ring
	// instances hold no lease and get no deadline.
	var deadline time.Time
	leased := spec.Mode == jobspec.ModeSingleton
	if leased {
		if deadline = in.app.Election().StopBy(); deadline.IsZero() {
			return errors.New("activated without a lease term to bound the process by")
		}
	}
	sup, err := exec.New(exec.Config{
		Name: spec.Name, Command: e.Command, Args: e.Args, Env: env, Dir: dir, User: e.User,
		KillSignal: e.KillSignal, KillTimeout: e.KillTimeout,
		Restart: exec.RestartPolicy{
			Attempts: spec.Restart.Attempts, Interval: spec.Restart.Interval,
			Delay: spec.Restart.Delay, Mode: string(spec.Restart.Mode),
		},
		LogDir: in.logs, Logger: in.log,
		Deadline: deadline,
	})
	if err != nil {
		in.set(StateFailed, err.Error())
		return err
	}
	in.mu.Lock()
	in.sup, in.active = sup, true
	in.mu.Unlock()
	if leased {
		// From before Start: the term may be renewed while it starts.
		go in.holdLease(sup, deadline)
	}
	if err := sup.Start(ctx); err != nil {
		if !errors.Is(err, exec.ErrDeadlinePassed) {
			in.set(StateFailed, sup.Status().Reason)
		}
		// A term that ran out during activation is not the process's
		// failure: activation fails, OnStop follows, and this node stays a
		// standby.
		return err
	}
	in.set(StateRunning, "")
	go in.follow(sup)
	if checked := checkedServices(spec); len(checked) > 0 {
		cctx, cancel := context.WithCancel(context.Background())
		in.mu.Lock()
		in.stopChecks, in.checksOK, in.checkReason = cancel, false, "waiting for the first check"
		in.mu.Unlock()
		go runChecks(cctx, checked, in.checked)
	}
	return nil
}

// leaseHoldPoll is how often holdLease looks at the term's deadline. The
// lease is renewed every TTL/10 (250 ms by default), so 50 ms passes each
// renewal on before the next one.
const leaseHoldPoll = 50 * time.Millisecond

// holdLease passes the current term's stop-by time to a singleton's supervisor
// each time it moves, until the supervisor is done. Polling is safe: a poll
// that lags (or a renewal it has not seen yet) only leaves the guard an
// older, earlier deadline, so the process may be stopped early, never
// late. It goes on after the term ended and while the process is being
// stopped: a graceful step-down keeps renewing until the stop is over, and
// a lost term's deadline stays where it was. A zero deadline (the term is
// gone) never lifts the bound: the last one stays.
func (in *instance) holdLease(sup *exec.Supervisor, last time.Time) {
	t := time.NewTicker(leaseHoldPoll)
	defer t.Stop()
	for {
		select {
		case <-sup.Done():
			return
		case <-t.C:
		}
		if d := in.app.Election().StopBy(); !d.IsZero() && !d.Equal(last) {
			sup.HoldUntil(d)
			last = d
		}
	}
}

// checked records the verdict of the instance's service checks.
func (in *instance) checked(ok bool, reason string) {
	in.mu.Lock()
	if ok && !in.checksOK {
		in.healthySince = time.Now().UTC()
	}
	in.checksOK, in.checkReason = ok, reason
	in.mu.Unlock()
	if !ok {
		in.log.Warn("service check failing", "reason", reason)
	}
	in.a.kickReport()
}

// follow mirrors the supervisor's state into the instance until it ends.
// The supervisor's last update and its Done can be ready together, so the
// final state is taken from Status once Done is closed: a process that
// failed for good is never left reported as running.
func (in *instance) follow(sup *exec.Supervisor) {
	for {
		select {
		case st := <-sup.Updates():
			in.mirror(sup, st)
		case <-sup.Done():
			in.mirror(sup, sup.Status())
			return
		}
	}
}

// mirror applies one supervisor state to the instance.
func (in *instance) mirror(sup *exec.Supervisor, st exec.Status) {
	in.mu.Lock()
	if in.sup != sup {
		in.mu.Unlock()
		return // stopped or replaced: its updates no longer speak for us
	}
	failed := false
	switch st.State {
	case exec.StateRunning:
		in.setLocked(StateRunning, "")
	case exec.StateRestarting:
		in.setLocked(StateStarting, st.Reason)
	case exec.StateFailed:
		failed = in.state != StateFailed
		in.setLocked(StateFailed, st.Reason)
	}
	in.mu.Unlock()
	if failed {
		go in.giveUp(st.Reason)
	}
}

// giveUp reacts to a process whose restart policy is used up on this
// node. A singleton's candidate here leaves the election (a standby takes
// over, and this node does not win the lease back into a crash loop); the
// scheduler moves a pool instance elsewhere. The instance stays failed
// until the scheduler changes what this node runs.
func (in *instance) giveUp(reason string) {
	in.log.Error("instance failed on this node", "reason", reason)
	if in.job.Spec.Mode != jobspec.ModeSingleton {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout(in))
	defer cancel()
	if err := in.a.platform.Unregister(ctx, in.job.Name); err != nil && !errors.Is(err, cluster.ErrNotRegistered) {
		in.log.Warn("leaving the election after failure", "err", err)
	}
}

// stop is OnStop: the instance is no longer active here.
func (in *instance) stop(ctx context.Context) error {
	in.mu.Lock()
	if in.stopChecks != nil {
		in.stopChecks()
		in.stopChecks = nil
	}
	sup := in.sup
	in.sup, in.active = nil, false
	if sup != nil {
		in.restarts += sup.Status().Restarts
	}
	failed := in.state == StateFailed
	in.mu.Unlock()
	var err error
	if sup != nil {
		err = sup.Stop(ctx)
	}
	if !failed {
		next := StateStopped
		if in.job.Spec.Mode == jobspec.ModeSingleton {
			next = StateStandby
		}
		in.set(next, "")
	}
	return err
}

// partitionsChanged keeps GCL_PARTITIONS_FILE current for a ring
// instance's process: one partition number per line, replaced atomically
// (rename), so a process that watches or polls it never reads half a
// list. No signal is sent: a process that did not expect one would die.
func (in *instance) partitionsChanged(own, release []int) error {
	in.mu.Lock()
	parts := slices.DeleteFunc(append(in.parts, own...), func(p int) bool { return slices.Contains(release, p) })
	slices.Sort(parts)
	in.parts = slices.Compact(parts)
	list := slices.Clone(in.parts)
	in.mu.Unlock()
	return in.writePartitions(list)
}

func (in *instance) writePartitions(parts []int) error {
	if err := os.MkdirAll(in.logs, 0o750); err != nil {
		return err
	}
	text := strings.ReplaceAll(joinInts(parts), ",", "\n")
	tmp := in.partitionsFile() + ".tmp"
	if err := os.WriteFile(tmp, []byte(text+"\n"), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, in.partitionsFile())
}

func (in *instance) partitionsFile() string { return filepath.Join(in.logs, "partitions") }

func (in *instance) set(state, reason string) {
	in.mu.Lock()
	in.setLocked(state, reason)
	in.mu.Unlock()
}

func (in *instance) setLocked(state, reason string) {
	if in.state != state || in.reason != reason {
		in.state, in.reason, in.since = state, reason, time.Now().UTC()
		in.a.kickReport()
	}
}

// report is the instance as the scheduler sees it.
func (in *instance) report() scheduler.InstanceState {
	in.mu.Lock()
	defer in.mu.Unlock()
	restarts := in.restarts
	if in.sup != nil {
		restarts += in.sup.Status().Restarts
	}
	active := in.active
	if in.job.Spec.Mode == jobspec.ModeSingleton {
		active = in.app.Election().IsLeader() && in.state == StateRunning
	}
	st := scheduler.InstanceState{
		Job: in.job.Name, Node: in.a.cfg.Node, Version: in.job.Version,
		State: in.state, Active: active, Since: in.since, Reason: in.reason, Restarts: restarts,
	}
	if st.State == StateRunning && in.stopChecks != nil {
		// Running counts once the checks pass, and from when they did.
		if !in.checksOK {
			st.State, st.Reason = StateStarting, in.checkReason
		} else if in.healthySince.After(st.Since) {
			st.Since = in.healthySince
		}
	}
	return st
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// envName turns a service name into an environment variable suffix.
func envName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, s)
}
