package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/ozanturksever/go-cluster/control"
	"github.com/ozanturksever/go-cluster/state"
)

// defaultNATSURL is where `gcl agent -dev` listens.
const defaultNATSURL = "nats://127.0.0.1:4222"

// exitChanges: `job plan` found changes, `job run` could not place the
// job. Scripts tell it from errors (1).
const exitChanges = 2

// clusterFlags are the flags of every command that talks to a cluster.
// Seed spellings (--platform, --app) are accepted too.
func clusterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "nats", Aliases: []string{"address"}, EnvVars: []string{"GCL_NATS_URL"}, Value: defaultNATSURL, Usage: "NATS `URL` of the cluster"},
		&cli.StringFlag{Name: "platform", EnvVars: []string{"GCL_PLATFORM"}, Value: "default", Usage: "platform `NAME`"},
		&cli.StringFlag{Name: "creds", EnvVars: []string{"GCL_NATS_CREDS"}, Usage: "NATS credentials `FILE`"},
		&cli.StringFlag{Name: "nkey", EnvVars: []string{"GCL_NATS_NKEY"}, Usage: "NATS nkey seed `FILE`"},
		&cli.StringFlag{Name: "token", EnvVars: []string{"GCL_NATS_TOKEN"}, Usage: "NATS auth `TOKEN`"},
		&cli.StringFlag{Name: "user", EnvVars: []string{"GCL_NATS_USER"}, Usage: "NATS `USER`"},
		&cli.StringFlag{Name: "password", EnvVars: []string{"GCL_NATS_PASSWORD"}, Usage: "NATS `PASSWORD`"},
		&cli.StringFlag{Name: "tls-ca", EnvVars: []string{"GCL_NATS_CA"}, Usage: "CA `FILE` to verify the NATS server"},
		&cli.StringFlag{Name: "tls-cert", EnvVars: []string{"GCL_NATS_CERT"}, Usage: "client certificate `FILE`"},
		&cli.StringFlag{Name: "tls-key", EnvVars: []string{"GCL_NATS_KEY"}, Usage: "client key `FILE`"},
		&cli.BoolFlag{Name: "json", Usage: "print the result as JSON on stdout"},
	}
}

// clusterFlagsWithoutJSON are the cluster flags for commands that define
// -json themselves.
func clusterFlagsWithoutJSON() []cli.Flag {
	all := clusterFlags()
	return all[:len(all)-1]
}

// session is a CLI command's connection to a cluster.
type session struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	store *control.Store
}

func (s *session) Close() { s.nc.Close() }

// connectFromFlags connects with the cluster flags, failing fast and
// clearly when the cluster cannot be reached.
func connectFromFlags(c *cli.Context) (*session, error) {
	cfg := state.ConnectConfig{
		URL: c.String("nats"), Name: "gcl cli",
		CredsFile: c.String("creds"), NKeyFile: c.String("nkey"),
		User: c.String("user"), Password: c.String("password"), Token: c.String("token"),
		ClientCert: c.String("tls-cert"), ClientKey: c.String("tls-key"),
		ConnectTimeout: 3 * time.Second,
	}
	if ca := c.String("tls-ca"); ca != "" {
		cfg.RootCAs = []string{ca}
	}
	ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
	defer cancel()
	nc, js, err := state.Connect(ctx, cfg)
	if err != nil {
		return nil, cli.Exit(fmt.Sprintf("cannot reach the cluster: %v\n(is an agent running? start one with `gcl agent -dev`, or point -nats / GCL_NATS_URL at your NATS)", err), exitFailure)
	}
	store, err := control.Open(ctx, js, c.String("platform"), 1)
	if err != nil {
		nc.Close()
		return nil, cli.Exit(fmt.Sprintf("cluster state: %v", err), exitFailure)
	}
	return &session{nc: nc, js: js, store: store}, nil
}
