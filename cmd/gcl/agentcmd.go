package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/hcl/v2/hclsimple"
	"github.com/urfave/cli/v2"

	"github.com/ozanturksever/go-cluster/agent"
)

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:            "agent",
		HideHelpCommand: true,
		Usage:           "run the gcl agent on this node",
		UsageText: `gcl agent -dev
   gcl agent -nats nats://nats.internal:4222 -node n1 -label zone=a -data-dir /var/lib/gcl
   gcl agent -server -cluster-host 10.0.0.1 -join 10.0.0.2:6222 -join 10.0.0.3:6222 -node n1 -data-dir /var/lib/gcl`,
		Description: `The agent joins the platform as a node, runs the app instances the scheduler
assigns to it, and reports their state. One agent at a time also runs the
scheduler.

-dev starts an embedded NATS with JetStream on 127.0.0.1:4222 (data in a
temporary directory unless -data-dir) and one node: a whole cluster in one
process. -server runs an embedded clustered NATS member that routes to the
-join addresses, so a few machines need no separate NATS; buckets get three
replicas from three servers on. Routes listen on -cluster-host (loopback
unless given); across machines set it, and -cluster-user/-cluster-password
so that only your servers can join. Otherwise -nats (or GCL_NATS_URL) joins an
existing NATS.

The HTTP API (/health, /ready, /metrics, /v1/...) listens on 127.0.0.1:4646
unless -http says otherwise. SIGINT or SIGTERM hands every singleton this
node leads to a standby, stops its instances and leaves the cluster.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "dev", Usage: "development mode: embedded NATS, one node"},
			&cli.BoolFlag{Name: "server", Usage: "run an embedded clustered NATS member"},
			&cli.StringSliceFlag{Name: "join", Usage: "route `HOST:PORT` of another server (with -server; repeatable)"},
			&cli.StringFlag{Name: "nats", EnvVars: []string{"GCL_NATS_URL"}, Usage: "NATS `URL` to join"},
			&cli.StringFlag{Name: "platform", EnvVars: []string{"GCL_PLATFORM"}, Value: "default", Usage: "platform `NAME`"},
			&cli.StringFlag{Name: "node", Usage: "node `ID` (default: the host name)"},
			&cli.StringSliceFlag{Name: "label", Usage: "node label `KEY=VALUE` (repeatable)"},
			&cli.StringFlag{Name: "advertise", Usage: "`ADDRESS` other nodes use to reach this one"},
			&cli.StringFlag{Name: "data-dir", Usage: "`DIR` for instance logs, embedded NATS data and the VIPs this node holds"},
			&cli.StringFlag{Name: "systemd-user-socket", Usage: "drive systemd backends through the user manager listening on `PATH` ($XDG_RUNTIME_DIR/systemd/private) instead of the system manager"},
			&cli.StringFlag{Name: "systemd-bus", Usage: "drive systemd backends through the manager on the D-Bus bus at `ADDRESS`"},
			&cli.StringFlag{Name: "http", Value: "127.0.0.1:4646", Usage: "HTTP listen `ADDRESS`"},
			&cli.StringFlag{Name: "nats-host", Value: "127.0.0.1", Usage: "client listen `HOST` of the embedded NATS"},
			&cli.IntFlag{Name: "nats-port", Value: 4222, Usage: "client `PORT` of the embedded NATS (0: any free port)"},
			&cli.StringFlag{Name: "cluster-host", Usage: "route listen `HOST` of the embedded clustered NATS (default: -nats-host); other machines must reach it"},
			&cli.IntFlag{Name: "cluster-port", Value: 6222, Usage: "route `PORT` of the embedded clustered NATS"},
			&cli.StringFlag{Name: "cluster-user", EnvVars: []string{"GCL_CLUSTER_USER"}, Usage: "route `USER` all servers share"},
			&cli.StringFlag{Name: "cluster-password", EnvVars: []string{"GCL_CLUSTER_PASSWORD"}, Usage: "route `PASSWORD` all servers share"},
			&cli.StringFlag{Name: "creds", EnvVars: []string{"GCL_NATS_CREDS"}, Usage: "NATS credentials `FILE`"},
			&cli.StringFlag{Name: "token", EnvVars: []string{"GCL_NATS_TOKEN"}, Usage: "NATS auth `TOKEN` (also required of clients of the embedded NATS)"},
			&cli.StringFlag{Name: "user", EnvVars: []string{"GCL_NATS_USER"}, Usage: "NATS `USER`"},
			&cli.StringFlag{Name: "password", EnvVars: []string{"GCL_NATS_PASSWORD"}, Usage: "NATS `PASSWORD`"},
			&cli.StringFlag{Name: "tls-ca", Usage: "CA `FILE` to verify the NATS server"},
			&cli.StringFlag{Name: "tls-cert", Usage: "client certificate `FILE`"},
			&cli.StringFlag{Name: "tls-key", Usage: "client key `FILE`"},
			&cli.StringFlag{Name: "config", Usage: "HCL agent configuration `FILE` (flags override it)"},
			&cli.DurationFlag{Name: "lease-ttl", Usage: "leader lease `TTL`: a silently cut-off leader is replaced within about this time (default 2.5s)"},
			&cli.DurationFlag{Name: "presence-ttl", Usage: "node presence `TTL`: a crashed node's instances are rescheduled after about this time (default 5s)"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log format: text or json"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "log level: debug, info, warn, error"},
		},
		Action: runAgent,
	}
}

// agentFile is the -config file: the same settings as the flags.
type agentFile struct {
	Node      string            `hcl:"node,optional"`
	Platform  string            `hcl:"platform,optional"`
	DataDir   string            `hcl:"data_dir,optional"`
	NATS      string            `hcl:"nats,optional"`
	Server    bool              `hcl:"server,optional"`
	Join      []string          `hcl:"join,optional"`
	Labels    map[string]string `hcl:"labels,optional"`
	Advertise string            `hcl:"advertise,optional"`
	HTTP      string            `hcl:"http,optional"`
	Creds     string            `hcl:"creds,optional"`

	SystemdUserSocket string `hcl:"systemd_user_socket,optional"`
	SystemdBus        string `hcl:"systemd_bus,optional"`
}

func runAgent(c *cli.Context) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return cli.Exit(fmt.Sprintf("-log-level: %v", err), exitFailure)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler = slog.NewTextHandler(c.App.ErrWriter, hopts)
	if c.String("log-format") == "json" {
		handler = slog.NewJSONHandler(c.App.ErrWriter, hopts)
	}
	cfg := agent.Config{Logger: slog.New(handler)}
	if path := c.String("config"); path != "" {
		// Parsed with a fixed schema: a config file holds values, it never
		// runs anything.
		var f agentFile
		if err := hclsimple.DecodeFile(path, nil, &f); err != nil {
			return cli.Exit(err.Error(), exitFailure)
		}
		cfg.Node, cfg.Platform, cfg.DataDir, cfg.URL = f.Node, f.Platform, f.DataDir, f.NATS
		cfg.Server, cfg.Join, cfg.Labels, cfg.Advertise, cfg.HTTPAddr, cfg.CredsFile = f.Server, f.Join, f.Labels, f.Advertise, f.HTTP, f.Creds
		cfg.SystemdUserSocket, cfg.SystemdBus = f.SystemdUserSocket, f.SystemdBus
	}
	set := func(name string, dst *string) {
		if c.IsSet(name) || *dst == "" {
			if v := c.String(name); v != "" {
				*dst = v
			}
		}
	}
	set("node", &cfg.Node)
	set("platform", &cfg.Platform)
	set("data-dir", &cfg.DataDir)
	set("nats", &cfg.URL)
	set("advertise", &cfg.Advertise)
	set("http", &cfg.HTTPAddr)
	set("systemd-user-socket", &cfg.SystemdUserSocket)
	set("systemd-bus", &cfg.SystemdBus)
	set("creds", &cfg.CredsFile)
	set("token", &cfg.Token)
	set("user", &cfg.User)
	set("password", &cfg.Password)
	set("tls-ca", &cfg.CAFile)
	set("tls-cert", &cfg.CertFile)
	set("tls-key", &cfg.Key)
	cfg.LeaseTTL, cfg.PresenceTTL = c.Duration("lease-ttl"), c.Duration("presence-ttl")
	cfg.Dev = c.Bool("dev")
	if c.IsSet("server") {
		cfg.Server = c.Bool("server")
	}
	if c.IsSet("join") {
		cfg.Join = c.StringSlice("join")
	}
	if cfg.Dev || cfg.Server {
		cfg.URL = "" // the embedded server is the NATS; GCL_NATS_URL is for clients
		cfg.ServerHost, cfg.ServerPort, cfg.ClusterPort = c.String("nats-host"), c.Int("nats-port"), c.Int("cluster-port")
		cfg.ClusterHost, cfg.ClusterUser, cfg.ClusterPassword = c.String("cluster-host"), c.String("cluster-user"), c.String("cluster-password")
		if cfg.ServerPort == 0 {
			cfg.ServerPort = -1 // any free port
		}
	}
	if cfg.Dev && cfg.Node == "" {
		cfg.Node = "dev"
	}
	for _, l := range c.StringSlice("label") {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return cli.Exit(fmt.Sprintf("-label %q: expected KEY=VALUE", l), exitFailure)
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		cfg.Labels[k] = v
	}

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := agent.New(ctx, cfg)
	if err != nil {
		return cli.Exit(err.Error(), exitFailure)
	}
	if err := a.Run(ctx); err != nil && ctx.Err() == nil {
		return cli.Exit(err.Error(), exitFailure)
	}
	return nil
}
