// Package agent is the per-node gcl agent: it joins the platform, runs the
// instances the scheduler assigned to its node through their executors,
// reports their state, serves HTTP (health, metrics, a read-only API) and,
// on the one agent that holds the scheduler lease, runs the scheduler.
package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Config configures an agent.
type Config struct {
	Platform string // platform name; "default"
	Node     string // node ID; the host name by default
	Labels   map[string]string
	// Advertise is the address other nodes and clients use for services on
	// this node; empty picks the host's first non-loopback address.
	Advertise string
	DataDir   string // instance logs, embedded NATS data; a temp dir in dev mode

	// NATS to join. Exactly one of: URL (an existing NATS), Dev (an
	// embedded single server), Server (an embedded cluster member).
	URL                   string
	CredsFile, NKeyFile   string
	User, Password, Token string
	CAFile, CertFile, Key string
	Dev                   bool
	Server                bool
	ServerHost            string // client listen host of the embedded server; 127.0.0.1
	ServerPort            int    // client port of the embedded server; 4222 (0 in dev: free port)
	ClusterHost           string // route listen host of an embedded cluster member; ServerHost
	ClusterPort           int    // route port of an embedded cluster member; 6222
	ClusterUser           string // route credentials every member uses
	ClusterPassword       string
	Join                  []string // routes of other members, host:port
	JetStreamReplicas     int      // replicas of new buckets; 3 with 3+ servers, else 1

	// Systemd backends: the system manager unless one of these is set.
	SystemdUserSocket string // a user manager's private socket
	SystemdBus        string // a D-Bus bus address

	HTTPAddr string // 127.0.0.1:4646
	Logger   *slog.Logger

	// Timings, for tests; zero means the platform defaults.
	LeaseTTL    time.Duration
	PresenceTTL time.Duration
}

func (c *Config) withDefaults() error {
	if c.Platform == "" {
		c.Platform = "default"
	}
	if c.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node name: %w", err)
		}
		c.Node = h
	}
	modes := 0
	for _, on := range []bool{c.URL != "", c.Dev, c.Server} {
		if on {
			modes++
		}
	}
	switch {
	case modes == 0:
		return errors.New("agent: give -dev, -server or -nats URL (or GCL_NATS_URL)")
	case modes > 1:
		return errors.New("agent: -dev, -server and -nats are exclusive")
	}
	if c.DataDir == "" {
		if !c.Dev {
			return errors.New("agent: -data-dir is required outside dev mode")
		}
		dir, err := os.MkdirTemp("", "gcl-agent-*")
		if err != nil {
			return err
		}
		c.DataDir = dir
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return err
	}
	c.DataDir = abs
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:4646"
	}
	if c.ServerHost == "" {
		c.ServerHost = "127.0.0.1"
	}
	if c.Server {
		if c.ServerPort == 0 {
			c.ServerPort = 4222
		}
		if c.ClusterPort == 0 {
			c.ClusterPort = 6222
		}
	}
	if c.JetStreamReplicas == 0 {
		c.JetStreamReplicas = 1
		if c.Server && len(c.Join)+1 >= 3 {
			c.JetStreamReplicas = 3
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}
