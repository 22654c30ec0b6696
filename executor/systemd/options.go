//go:build linux

package systemd

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"
)

// DefaultJobTimeout bounds how long Start, Stop, Restart and StartTransient
// wait for systemd to finish a job (also bounded by the caller's context).
// It matches systemd's default start and stop timeouts.
const DefaultJobTimeout = 90 * time.Second

// SystemDropInDir is where BindToAgent writes drop-ins for units of the
// system manager.
const SystemDropInDir = "/run/systemd/system"

// Reconnect backoff bounds.
const (
	minBackoff  = 50 * time.Millisecond
	maxBackoff  = 2 * time.Second
	dialTimeout = 10 * time.Second // one dial attempt while reconnecting
)

// Option configures Dial.
type Option func(*config) error

type config struct {
	target     target
	logger     *slog.Logger
	jobTimeout time.Duration
	dropInDir  string
	agentUnit  *string
}

// target says how to reach systemd.
type target struct {
	kind    targetKind
	address string // D-Bus address for targetUser and targetBus
	desc    string // for messages and logs
}

type targetKind int

const (
	targetSystem targetKind = iota // system bus, else /run/systemd/private as root
	targetUser                     // a user manager's private socket
	targetBus                      // any bus address
)

func defaultConfig() config {
	return config{
		target:     target{kind: targetSystem, desc: "system manager"},
		logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		jobTimeout: DefaultJobTimeout,
		dropInDir:  SystemDropInDir,
	}
}

// WithUserManager connects to a user manager through its private socket
// ($XDG_RUNTIME_DIR/systemd/private). BindToAgent then writes drop-ins to
// the runtime unit directory next to it ($XDG_RUNTIME_DIR/systemd/user)
// unless WithDropInDir says otherwise.
func WithUserManager(privateSocketPath string) Option {
	return func(c *config) error {
		if privateSocketPath == "" {
			return fmt.Errorf("%w: WithUserManager: empty socket path", ErrInvalidOption)
		}
		c.target = target{kind: targetUser, address: "unix:path=" + privateSocketPath, desc: "user manager at " + privateSocketPath}
		c.dropInDir = filepath.Join(filepath.Dir(privateSocketPath), "user")
		return nil
	}
}

// WithBusAddress connects through a D-Bus message bus at address (for
// example "unix:path=/run/dbus/system_bus_socket"), with EXTERNAL
// authentication and Hello. BindToAgent writes to SystemDropInDir unless
// WithDropInDir says otherwise (set it when the bus is a user session's).
func WithBusAddress(address string) Option {
	return func(c *config) error {
		if address == "" {
			return fmt.Errorf("%w: WithBusAddress: empty address", ErrInvalidOption)
		}
		c.target = target{kind: targetBus, address: address, desc: "bus " + address}
		return nil
	}
}

// WithLogger sets the logger for connection events (lost, reconnected) and
// debug notes. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l != nil {
			c.logger = l
		}
		return nil
	}
}

// WithJobTimeout bounds the wait for a job to finish (default
// DefaultJobTimeout). Zero or negative: only the caller's context bounds it.
func WithJobTimeout(d time.Duration) Option {
	return func(c *config) error {
		c.jobTimeout = d
		return nil
	}
}

// WithDropInDir sets the runtime unit directory where BindToAgent writes
// <unit>.d/ drop-ins. It must be on the manager's unit path.
func WithDropInDir(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return fmt.Errorf("%w: WithDropInDir: empty directory", ErrInvalidOption)
		}
		c.dropInDir = dir
		return nil
	}
}

// WithAgentUnit tells BindToAgent the agent's own unit instead of asking
// systemd which unit this process belongs to. An empty name means "not
// running in a unit": BindToAgent does nothing.
func WithAgentUnit(name string) Option {
	return func(c *config) error {
		c.agentUnit = &name
		return nil
	}
}
