package state

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ServerConfig configures an embedded nats-server with JetStream.
type ServerConfig struct {
	// Host to listen on; empty means 127.0.0.1 (never all interfaces by default).
	Host string
	// Port to listen on; 0 picks a free port.
	Port int
	// StoreDir holds JetStream data. Empty means a fresh temporary directory that
	// Shutdown removes.
	StoreDir string
	// Optional client authentication. Token and User/Password are exclusive.
	User, Password, Token string
	// ServerName names the server in cluster views; defaults to "gcl". It
	// must be stable across restarts and unique in a cluster: JetStream
	// knows its peers by it.
	ServerName string
	// ClusterPort, when not 0, makes the server a member of a NATS cluster
	// (JetStream clustered) that listens for routes on ClusterHost (default
	// Host) and connects to Routes ("host:port" of other members).
	ClusterName string
	ClusterHost string
	ClusterPort int
	Routes      []string
	// ClusterUser and ClusterPassword, when set, are required of (and
	// presented to) the other members: a route port reachable from other
	// machines must not let anyone in.
	ClusterUser, ClusterPassword string
}

// Server is an embedded nats-server with JetStream enabled.
type Server struct {
	ns      *server.Server
	cfg     ServerConfig
	tempDir string
}

// StartServer starts an embedded nats-server and returns once JetStream
// answers API requests: a listening socket alone is not enough, because
// JetStream finishes its own start-up (store recovery, meta layer) after the
// listener is up and early requests would fail with "JetStream not enabled".
func StartServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	if cfg.Token != "" && (cfg.User != "" || cfg.Password != "") {
		return nil, fmt.Errorf("embedded nats: token and user/password are exclusive")
	}
	s := &Server{cfg: cfg}
	if cfg.StoreDir == "" {
		dir, err := os.MkdirTemp("", "gcl-nats-*")
		if err != nil {
			return nil, fmt.Errorf("embedded nats: create store dir: %w", err)
		}
		s.tempDir, s.cfg.StoreDir = dir, dir
	}
	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := cfg.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	name := cfg.ServerName
	if name == "" {
		name = "gcl"
	}
	opts := &server.Options{
		ServerName:         name,
		Host:               host,
		Port:               port,
		JetStream:          true,
		StoreDir:           s.cfg.StoreDir,
		NoSigs:             true,
		NoLog:              true,
		Username:           cfg.User,
		Password:           cfg.Password,
		Authorization:      cfg.Token,
		JetStreamMaxMemory: 256 << 20,
	}
	if cfg.ClusterPort != 0 {
		tuneRaft()
		opts.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: cfg.ClusterHost, Port: cfg.ClusterPort,
			Username: cfg.ClusterUser, Password: cfg.ClusterPassword}
		if opts.Cluster.Name == "" {
			opts.Cluster.Name = "gcl"
		}
		if opts.Cluster.Host == "" {
			opts.Cluster.Host = host
		}
		if opts.Cluster.Port < 0 {
			opts.Cluster.Port = server.RANDOM_PORT
		}
		for _, r := range cfg.Routes {
			u, err := url.Parse("nats-route://" + r)
			if err != nil {
				s.cleanup()
				return nil, fmt.Errorf("embedded nats: route %q: %w", r, err)
			}
			if cfg.ClusterUser != "" {
				u.User = url.UserPassword(cfg.ClusterUser, cfg.ClusterPassword)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		s.cleanup()
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	s.ns = ns
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready for connections on %s:%d after 10s", host, cfg.Port)
	}
	if err := s.waitJetStream(ctx); err != nil {
		s.Shutdown()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitJetStream(ctx context.Context) error {
	nc, err := nats.Connect(s.ClientURL(), s.clientOptions()...)
	if err != nil {
		return fmt.Errorf("embedded nats: self-connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("embedded nats: %w", err)
	}
	if s.cfg.ClusterPort == 0 {
		// A single server answers at once; a cluster member waits for a
		// quorum of its peers, which may take as long as the caller allows.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, time.Second)
		_, err := js.AccountInfo(attempt)
		cancelAttempt()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("embedded nats: JetStream did not answer: %w", errors.Join(err, ctx.Err()))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *Server) clientOptions() []nats.Option {
	var o []nats.Option
	if s.cfg.Token != "" {
		o = append(o, nats.Token(s.cfg.Token))
	}
	if s.cfg.User != "" {
		o = append(o, nats.UserInfo(s.cfg.User, s.cfg.Password))
	}
	return o
}

// ClientURL is the nats:// URL clients use to reach this server (without credentials).
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// StoreDir is where JetStream keeps its data.
func (s *Server) StoreDir() string { return s.cfg.StoreDir }

// Shutdown stops the server, waits for it to finish, and removes a temporary store.
func (s *Server) Shutdown() {
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
	s.cleanup()
}

func (s *Server) cleanup() {
	if s.tempDir != "" {
		os.RemoveAll(s.tempDir)
	}
}
