package cluster

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ozanturksever/go-cluster/election"
	"github.com/ozanturksever/go-cluster/executor/systemd"
)

// PlatformOption configures NewPlatform.
type PlatformOption func(*platformConfig)

type platformConfig struct {
	credsFile, nkeyFile   string
	user, password, token string
	rootCAs               []string
	clientCert, clientKey string
	tlsRequired           bool
	natsOptions           []nats.Option
	advertiseAddr         string
	labels                map[string]string
	agentHTTP             string
	renewObserver         func(app string, d time.Duration)
	eventObserver         func(Event)
	timing                election.Timing
	presenceTTL           time.Duration
	hookTimeout           time.Duration
	replicas              int
	stateDir              string
	systemdOpts           []systemd.Option
	logger                *slog.Logger
	err                   error
}

// WithCredsFile authenticates to NATS with a .creds file (JWT + nkey).
func WithCredsFile(path string) PlatformOption { return func(c *platformConfig) { c.credsFile = path } }

// WithNKeyFile authenticates with an nkey seed file.
func WithNKeyFile(path string) PlatformOption { return func(c *platformConfig) { c.nkeyFile = path } }

// WithUserPassword authenticates with a user name and password.
func WithUserPassword(user, password string) PlatformOption {
	return func(c *platformConfig) { c.user, c.password = user, password }
}

// WithToken authenticates with a token.
func WithToken(token string) PlatformOption { return func(c *platformConfig) { c.token = token } }

// WithTLS verifies the server with the given CA files and, when cert and key
// are not empty, presents a client certificate.
func WithTLS(caFile, certFile, keyFile string) PlatformOption {
	return func(c *platformConfig) {
		if caFile != "" {
			c.rootCAs = append(c.rootCAs, caFile)
		}
		c.clientCert, c.clientKey, c.tlsRequired = certFile, keyFile, true
	}
}

// WithNATSOptions passes extra nats.go options through.
func WithNATSOptions(opts ...nats.Option) PlatformOption {
	return func(c *platformConfig) { c.natsOptions = append(c.natsOptions, opts...) }
}

// WithAdvertiseAddr is the address other nodes use to reach services on this
// node. By default the first non-loopback IPv4 address of the host.
func WithAdvertiseAddr(addr string) PlatformOption {
	return func(c *platformConfig) { c.advertiseAddr = addr }
}

// WithLabels attaches labels to this node's presence record.
func WithLabels(labels map[string]string) PlatformOption {
	return func(c *platformConfig) {
		for k, v := range labels {
			c.labels[k] = v
		}
	}
}

// WithLeaseTTL sets the lease TTL; the other lease timings scale with it.
// A silently cut-off leader is replaced within about this time.
func WithLeaseTTL(ttl time.Duration) PlatformOption {
	return func(c *platformConfig) {
		// The probe fast path does not depend on the TTL: keep it.
		c.timing = election.Timing{TTL: ttl, ProbeInterval: election.DefaultTiming().ProbeInterval}.WithDefaults()
	}
}

// WithLeaseTiming sets every lease timing explicitly.
func WithLeaseTiming(t election.Timing) PlatformOption {
	return func(c *platformConfig) { c.timing = t.WithDefaults() }
}

// WithPresenceTTL sets how soon a crashed node disappears from other nodes'
// view (default 5s, at least 3s because the server counts TTLs in seconds).
func WithPresenceTTL(ttl time.Duration) PlatformOption {
	return func(c *platformConfig) {
		if ttl < 3*time.Second {
			c.err = fmt.Errorf("%w: presence TTL %v is below 3s", ErrInvalidOption, ttl)
			return
		}
		c.presenceTTL = ttl
	}
}

// WithHookTimeout bounds OnActive and OnStart hooks (default 30s). Hooks that
// stop an instance are bounded by the lease's stop budget when the lease is
// at risk.
func WithHookTimeout(d time.Duration) PlatformOption {
	return func(c *platformConfig) { c.hookTimeout = d }
}

// WithReplicas sets the JetStream replica count of the platform's buckets
// (1 on one server, 3 on a cluster).
func WithReplicas(n int) PlatformOption { return func(c *platformConfig) { c.replicas = n } }

// AsAgent marks this node as run by a gcl agent whose HTTP API listens on
// httpAddr; the scheduler places jobs only on such nodes.
func AsAgent(httpAddr string) PlatformOption {
	return func(c *platformConfig) { c.agentHTTP = httpAddr }
}

// WithLeaseRenewObserver has observe called with the duration of every
// successful lease renewal of this node's apps (for metrics). It must not
// block.
func WithLeaseRenewObserver(observe func(app string, d time.Duration)) PlatformOption {
	return func(c *platformConfig) { c.renewObserver = observe }
}

// WithStateDir sets the directory where this node keeps what must outlive
// its process: the VIPs it holds, so that the next process removes those a
// crashed one left. Default: go-cluster/PLATFORM/NODE under the system's
// temporary directory. The gcl agent uses its data directory.
func WithStateDir(dir string) PlatformOption { return func(c *platformConfig) { c.stateDir = dir } }

// WithEventObserver has observe called with every event this node
// publishes (see WatchEvents), as it publishes it: for metrics. It must
// not block.
func WithEventObserver(observe func(Event)) PlatformOption {
	return func(c *platformConfig) { c.eventObserver = observe }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) PlatformOption { return func(c *platformConfig) { c.logger = l } }
