package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ozanturksever/go-cluster/state"
)

// Mode is how many instances of an app are active.
type Mode int

const (
	// ModeSingleton: one active instance (the leader), the rest standby.
	ModeSingleton Mode = iota
	// ModeSpread: one active instance on every node that registers the app.
	ModeSpread
	// ModeReplicas: exactly n active instances cluster-wide.
	ModeReplicas
)

func (m Mode) String() string {
	switch m {
	case ModeSingleton:
		return "singleton"
	case ModeSpread:
		return "spread"
	case ModeReplicas:
		return "replicas"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Option configures an app.
type Option func(*Application)

// Hook is a lifecycle callback. Its ctx ends when the hook's time is up.
type Hook func(ctx context.Context) error

// PartitionHook is called with ring partitions gained or lost.
type PartitionHook func(ctx context.Context, partitions []int) error

// Application is one app: its mode, options, hooks and handlers. It is named
// Application, not App, so that seed 001's constructor cluster.App(...) can
// exist as a function.
type Application struct {
	name     string
	mode     Mode
	replicas int
	awayFrom []string

	// The replicated database (sqlite.go), the VIP and the backend.
	sqlitePath      string
	sqliteSnapEvery time.Duration
	sqliteSnapKeep  int
	sqliteSync      bool            // SQLiteSynchronous: DB's commits wait for a standby
	sqlitePromote   time.Duration   // SQLitePromoteTimeout
	repl            *appReplication // while registered on a platform; see preflight
	vipCIDR, vipIf  string
	vipARPCount     int
	vipARPInterval  time.Duration
	vip             *appVIP // while registered on a platform; see preflight
	backend         *Backend
	unit            *appBackend // while registered on a platform; see preflight
	ringPartitions  int

	optErr     error
	standalone *standaloneConfig

	mu                  sync.Mutex
	onActive, onPassive []Hook
	onStart, onStop     []Hook
	onOwn, onRelease    []PartitionHook
	handlers            map[string]Handler
	services            map[string]ServiceConfig
	platform            *Platform
	election            *Election
	runner              appRunner
	calls               *callSubs
	claimed             bool // active on this node; guarded by Platform.claimMu
	kv                  *KV
	guard               *ringGuard  // partitions owned here; kept across activations
	member              *ringMember // while active in a ring
}

// NewApp makes an app. Without a mode option it is a singleton.
func NewApp(name string, opts ...Option) *Application {
	a := &Application{name: name, mode: ModeSingleton, handlers: map[string]Handler{}, services: map[string]ServiceConfig{}}
	if err := state.ValidateName("app name", name); err != nil {
		a.optErr = fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	for _, o := range opts {
		o(a)
	}
	a.election = &Election{app: a}
	return a
}

// App is seed 001's name for NewApp.
func App(name string, opts ...Option) *Application { return NewApp(name, opts...) }

// Name is the app's name.
func (a *Application) Name() string { return a.name }

// Mode is the app's mode.
func (a *Application) Mode() Mode { return a.mode }

func (a *Application) setErr(err error) {
	if a.optErr == nil {
		a.optErr = err
	}
}

// Singleton: one active instance cluster-wide (active-passive).
func Singleton() Option { return func(a *Application) { a.mode = ModeSingleton } }

// Spread: one active instance on every node that registers the app.
func Spread() Option { return func(a *Application) { a.mode = ModeSpread } }

// Replicas: exactly n active instances while at least n nodes are alive.
func Replicas(n int) Option {
	return func(a *Application) {
		if n < 1 {
			a.setErr(fmt.Errorf("%w: Replicas(%d): need at least 1", ErrInvalidOption, n))
			return
		}
		a.mode, a.replicas = ModeReplicas, n
	}
}

// AwayFromApp keeps this app's instances off any node where the named app is
// active, and moves them away when it becomes active there.
func AwayFromApp(name string) Option {
	return func(a *Application) {
		if err := state.ValidateName("AwayFromApp name", name); err != nil {
			a.setErr(fmt.Errorf("%w: %w", ErrInvalidName, err))
			return
		}
		a.awayFrom = append(a.awayFrom, name)
	}
}

// WithSQLite replicates the SQLite database at path to standbys.
func WithSQLite(path string) Option { return func(a *Application) { a.sqlitePath = path } }

// WithDB is seed 001's name for WithSQLite.
func WithDB(path string) Option { return WithSQLite(path) }

// DB is seed 001's short name for WithSQLite.
func DB(path string) Option { return WithSQLite(path) }

// VIP moves a virtual IP (CIDR) on the given interface with the leader.
func VIP(cidr, iface string) Option {
	return func(a *Application) { a.vipCIDR, a.vipIf = cidr, iface }
}

// WithVIP is seed 001's name for VIP.
func WithVIP(cidr, iface string) Option { return VIP(cidr, iface) }

// VIPAnnouncements sets how many gratuitous ARPs (unsolicited neighbour
// advertisements for IPv6) announce the VIP when it moves here, and how
// far apart (default 3, 200ms): more than one, as a single frame can be
// lost while switches relearn.
func VIPAnnouncements(count int, interval time.Duration) Option {
	return func(a *Application) {
		if count < 0 || interval < 0 {
			a.setErr(fmt.Errorf("%w: VIPAnnouncements(%d, %v)", ErrInvalidOption, count, interval))
			return
		}
		a.vipARPCount, a.vipARPInterval = count, interval
	}
}

// WithBackend starts the backend where the app is active and stops it
// elsewhere (see backend.go).
func WithBackend(b *Backend) Option {
	return func(a *Application) {
		if b == nil {
			a.setErr(fmt.Errorf("%w: WithBackend(nil)", ErrInvalidOption))
			return
		}
		a.backend = b
	}
}

// Ring partitions the app's key space into n partitions owned by its
// active instances (with Spread: every node that runs the app). Every node
// must ask for the same n; a key's partition depends only on n.
func Ring(partitions int) Option {
	return func(a *Application) {
		if partitions < 1 {
			a.setErr(fmt.Errorf("%w: Ring(%d): need at least 1 partition", ErrInvalidOption, partitions))
			return
		}
		a.ringPartitions = partitions
	}
}

// WithPartitions is seed 001's name for Ring.
func WithPartitions(n int) Option { return Ring(n) }

// OnActive runs when this instance becomes the leader (singleton).
func (a *Application) OnActive(h Hook) {
	a.mu.Lock()
	a.onActive = append(a.onActive, h)
	a.mu.Unlock()
}

// OnPassive runs when this instance becomes a standby (singleton), also once at start.
func (a *Application) OnPassive(h Hook) {
	a.mu.Lock()
	a.onPassive = append(a.onPassive, h)
	a.mu.Unlock()
}

// OnStart runs when this instance becomes active (pool, and singleton leader).
func (a *Application) OnStart(h Hook) { a.mu.Lock(); a.onStart = append(a.onStart, h); a.mu.Unlock() }

// OnStop runs when this instance stops being active.
func (a *Application) OnStop(h Hook) { a.mu.Lock(); a.onStop = append(a.onStop, h); a.mu.Unlock() }

// OnOwn runs when this node gains ring partitions.
func (a *Application) OnOwn(h PartitionHook) {
	a.mu.Lock()
	a.onOwn = append(a.onOwn, h)
	a.mu.Unlock()
}

// OnRelease runs when this node gives up ring partitions.
func (a *Application) OnRelease(h PartitionHook) {
	a.mu.Lock()
	a.onRelease = append(a.onRelease, h)
	a.mu.Unlock()
}

func (a *Application) partitionHooks(list *[]PartitionHook) []PartitionHook {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]PartitionHook(nil), (*list)...)
}

func (a *Application) ringGuard() *ringGuard {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.guard == nil {
		a.guard = newRingGuard()
	}
	return a.guard
}

// Election is the app's leadership handle.
func (a *Application) Election() *Election { return a.election }

func (a *Application) hooks(list *[]Hook) []Hook {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Hook(nil), (*list)...)
}

func (a *Application) getPlatform() (*Platform, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.platform == nil {
		return nil, fmt.Errorf("app %s: %w", a.name, ErrNotRegistered)
	}
	return a.platform, nil
}
