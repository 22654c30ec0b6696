package jobspec

import (
	"net/netip"
	"time"
)

// App is one decoded `app "NAME" { ... }` block: everything the scheduler and
// the agents need to place and run one highly available application. All
// values are resolved (variables, locals and functions evaluated) and defaults
// are filled in, so consumers never see HCL or cty types.
type App struct {
	// Name identifies the app cluster-wide. It is used in NATS subjects and
	// KV keys, so it is limited to letters, digits, '-' and '_'.
	Name string `json:"name"`
	// Mode is how many instances run and how they share work.
	Mode Mode `json:"mode"`
	// Count is the number of instances in ModeReplicas, zero otherwise.
	Count int `json:"count,omitempty"`
	// Partitions is the number of hash-ring partitions in ModeRing, zero
	// otherwise.
	Partitions int `json:"partitions,omitempty"`

	// Backend is what the agent starts on the node(s) running the app; nil
	// when the app only manages a VIP or a replicated database.
	Backend *Backend `json:"backend,omitempty"`
	// VIP is the floating address that follows the active instance.
	VIP *VIP `json:"vip,omitempty"`
	// SQLite is the database file replicated from the active instance to the
	// standbys.
	SQLite *SQLite `json:"sqlite,omitempty"`

	// Constraints are hard placement rules: a node failing one is never used.
	Constraints []Constraint `json:"constraints,omitempty"`
	// Affinities are soft placement preferences that rank feasible nodes.
	Affinities []Affinity `json:"affinities,omitempty"`
	// Spreads ask the scheduler to distribute instances evenly over the
	// values of a node attribute (zones, racks).
	Spreads []Spread `json:"spreads,omitempty"`
	// AwayFrom names apps whose instances this app avoids sharing a node
	// with.
	AwayFrom []string `json:"away_from,omitempty"`
	// Near names apps whose instances this app prefers to share a node with.
	Near []string `json:"near,omitempty"`

	// Services are the endpoints the app exposes, registered for discovery.
	Services []Service `json:"services,omitempty"`
	// Restart says what the agent does when the backend exits unexpectedly.
	Restart Restart `json:"restart"`
	// Update says how a changed job is rolled out over the instances.
	Update Update `json:"update"`
	// Meta is free-form key/value data for operators and tooling.
	Meta map[string]string `json:"meta,omitempty"`

	// Source is where the app block was declared, so later errors (at plan
	// or placement time) can point back into the job file.
	Source Location `json:"source"`
}

// Location is a position in a job file.
type Location struct {
	Filename string `json:"filename"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
}

// Mode is the instance model of an app.
type Mode string

const (
	// ModeSingleton runs exactly one active instance; the other eligible
	// nodes stand by to take over. It is the default, as in the library.
	ModeSingleton Mode = "singleton"
	// ModeSpread runs one active instance on every eligible node.
	ModeSpread Mode = "spread"
	// ModeReplicas runs Count active instances on distinct nodes.
	ModeReplicas Mode = "replicas"
	// ModeRing splits Partitions hash-ring partitions over the eligible
	// nodes; each partition has one owner at a time.
	ModeRing Mode = "ring"
)

// BackendType names the kind of process manager running an app.
type BackendType string

const (
	// BackendExec runs a plain process supervised by the agent.
	BackendExec BackendType = "exec"
	// BackendSystemd starts and stops an existing systemd unit.
	BackendSystemd BackendType = "systemd"
)

// Backend is what runs on a node while it holds an instance of the app.
// Exactly one of Exec and Systemd is set, matching Type.
type Backend struct {
	Type    BackendType     `json:"type"`
	Exec    *ExecBackend    `json:"exec,omitempty"`
	Systemd *SystemdBackend `json:"systemd,omitempty"`
}

// ExecBackend is a process started directly by the agent.
type ExecBackend struct {
	// Command is the program, an absolute path or a name looked up in PATH
	// on the node when the app starts (never at parse time).
	Command string            `json:"command"`
	Args    []string          `json:"args,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	// Dir is the working directory; empty means the agent's default.
	Dir string `json:"dir,omitempty"`
	// User is the account the process runs as; empty means the agent's.
	User string `json:"user,omitempty"`
	// KillSignal is sent first on stop, e.g. "SIGTERM".
	KillSignal string `json:"kill_signal"`
	// KillTimeout is how long the agent waits after KillSignal before
	// sending SIGKILL.
	KillTimeout time.Duration `json:"kill_timeout"`
}

// SystemdBackend is a systemd unit started and stopped by the agent.
type SystemdBackend struct {
	Unit string `json:"unit"`
}

// VIP is a floating IP address held by the active instance of a singleton.
type VIP struct {
	// Address is the address with its prefix length; the prefix selects the
	// interface on nodes where Interface is empty.
	Address netip.Prefix `json:"address"`
	// Interface is the network interface to add the address to; empty means
	// each node picks the interface whose subnet contains Address.
	Interface string `json:"interface,omitempty"`
	// ARPCount is how many gratuitous ARP (or unsolicited NA) packets
	// announce the address after it moves.
	ARPCount int `json:"arp_count"`
}

// SQLite is a database file replicated through its write-ahead log.
type SQLite struct {
	Path string `json:"path"`
	// SnapshotInterval is how often a full snapshot is taken, bounding how
	// much WAL a new standby must replay.
	SnapshotInterval time.Duration `json:"snapshot_interval"`
	// Retention is how long snapshots and WAL are kept.
	Retention time.Duration `json:"retention"`
}

// Operator compares a node attribute with a value in constraints and
// affinities.
type Operator string

const (
	OpEqual          Operator = "="
	OpNotEqual       Operator = "!="
	OpLess           Operator = "<"
	OpLessOrEqual    Operator = "<="
	OpGreater        Operator = ">"
	OpGreaterOrEqual Operator = ">="
	// OpRegexp matches the attribute against a regular expression (RE2).
	OpRegexp Operator = "regexp"
	// OpVersion matches a version attribute against constraints such as
	// ">= 1.2, < 2.0".
	OpVersion Operator = "version"
	// OpSetContains holds when the attribute, a comma-separated list,
	// contains every comma-separated item of the value.
	OpSetContains Operator = "set_contains"
	// OpIsSet holds when the node has the attribute at all.
	OpIsSet Operator = "is_set"
	// OpIsNotSet holds when the node lacks the attribute.
	OpIsNotSet Operator = "is_not_set"
	// OpDistinctHosts forbids two instances of the app on one node. It takes
	// neither attribute nor value.
	OpDistinctHosts Operator = "distinct_hosts"
)

// Constraint is a hard placement rule on a node attribute.
type Constraint struct {
	// Attribute is "node.id", "node.address", "node.labels.KEY" or
	// "meta.KEY"; empty only for OpDistinctHosts.
	Attribute string   `json:"attribute,omitempty"`
	Operator  Operator `json:"operator"`
	Value     string   `json:"value,omitempty"`
}

// Affinity is a soft placement preference: nodes matching it are ranked up
// (positive Weight) or down (negative Weight).
type Affinity struct {
	Attribute string   `json:"attribute"`
	Operator  Operator `json:"operator"`
	Value     string   `json:"value,omitempty"`
	// Weight is in -100..100 and never 0.
	Weight int `json:"weight"`
}

// Spread distributes instances evenly over the values of a node attribute.
type Spread struct {
	Attribute string `json:"attribute"`
	// Weight is in 1..100 and ranks this spread against other preferences.
	Weight int `json:"weight"`
}

// Service is a network endpoint of the app, registered for discovery while
// an instance runs.
type Service struct {
	Name string `json:"name"`
	Port int    `json:"port"`
	// Protocol is "tcp", "udp", "http", "https" or "grpc".
	Protocol string   `json:"protocol"`
	Tags     []string `json:"tags,omitempty"`
	// Check is the health check; nil means the service is healthy while its
	// backend runs.
	Check *Check `json:"check,omitempty"`
}

// CheckType is how a service's health is probed.
type CheckType string

const (
	// CheckHTTP expects a 2xx answer to a GET of Path.
	CheckHTTP CheckType = "http"
	// CheckTCP expects a TCP connection to be accepted.
	CheckTCP CheckType = "tcp"
)

// Check is a health check of a service.
type Check struct {
	Type CheckType `json:"type"`
	// Path is the HTTP path probed; empty for TCP checks.
	Path     string        `json:"path,omitempty"`
	Interval time.Duration `json:"interval"`
	Timeout  time.Duration `json:"timeout"`
}

// RestartMode is what happens once a backend used up its restart attempts.
type RestartMode string

const (
	// RestartFail gives the instance up on this node so another node can
	// take over: the usual choice for an HA app.
	RestartFail RestartMode = "fail"
	// RestartDelay waits out the interval and starts counting attempts
	// again, keeping the instance on this node.
	RestartDelay RestartMode = "delay"
)

// Restart limits how often a failing backend is restarted in place.
type Restart struct {
	// Attempts is how many restarts are allowed within Interval.
	Attempts int           `json:"attempts"`
	Interval time.Duration `json:"interval"`
	// Delay is the pause before each restart.
	Delay time.Duration `json:"delay"`
	Mode  RestartMode   `json:"mode"`
}

// Update controls the rollout of a changed job.
type Update struct {
	// MaxParallel is how many instances are replaced at once.
	MaxParallel int `json:"max_parallel"`
	// MinHealthyTime is how long a new instance must stay healthy before
	// the rollout moves on.
	MinHealthyTime time.Duration `json:"min_healthy_time"`
	// HealthyDeadline is how long a new instance has to become healthy
	// before the rollout is marked failed.
	HealthyDeadline time.Duration `json:"healthy_deadline"`
}

// Defaults filled in for attributes a job file leaves out. They are part of
// the job format: changing one changes the meaning of existing job files.
const (
	DefaultKillSignal       = "SIGTERM"
	DefaultKillTimeout      = 10 * time.Second
	DefaultARPCount         = 3
	DefaultSnapshotInterval = time.Hour
	DefaultRetention        = 24 * time.Hour
	DefaultServiceProtocol  = "tcp"
	DefaultCheckPath        = "/"
	DefaultCheckInterval    = 10 * time.Second
	DefaultCheckTimeout     = 2 * time.Second
	DefaultRestartAttempts  = 3
	DefaultRestartInterval  = 5 * time.Minute
	DefaultRestartDelay     = 15 * time.Second
	DefaultRestartMode      = RestartFail
	DefaultMaxParallel      = 1
	DefaultMinHealthyTime   = 10 * time.Second
	DefaultHealthyDeadline  = 5 * time.Minute
	DefaultAffinityWeight   = 50
	DefaultSpreadWeight     = 50
)
