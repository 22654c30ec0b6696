package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ConnectConfig says how to reach NATS. Credentials are passed through to
// nats.go untouched and never logged.
type ConnectConfig struct {
	URL       string
	Name      string // connection name shown by the server (e.g. "gcl prod/node-1")
	CredsFile string
	NKeyFile  string
	User      string
	Password  string
	Token     string
	// TLS: a CA to verify the server, and an optional client certificate.
	RootCAs        []string
	ClientCert     string
	ClientKey      string
	TLSRequired    bool
	ConnectTimeout time.Duration
	// Extra nats.go options, appended last.
	Extra []nats.Option
}

// Options turns the configuration into nats.go options.
func (c ConnectConfig) Options() ([]nats.Option, error) {
	o := []nats.Option{
		nats.Name(c.Name),
		// Reconnect for ever: a platform outlives NATS restarts. Safety does not
		// depend on the connection: leases carry their own local deadline.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
	}
	if c.ConnectTimeout > 0 {
		o = append(o, nats.Timeout(c.ConnectTimeout))
	}
	if c.CredsFile != "" {
		o = append(o, nats.UserCredentials(c.CredsFile))
	}
	if c.NKeyFile != "" {
		opt, err := nats.NkeyOptionFromSeed(c.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey file %q: %w", c.NKeyFile, err)
		}
		o = append(o, opt)
	}
	if c.User != "" || c.Password != "" {
		o = append(o, nats.UserInfo(c.User, c.Password))
	}
	if c.Token != "" {
		o = append(o, nats.Token(c.Token))
	}
	if len(c.RootCAs) > 0 {
		o = append(o, nats.RootCAs(c.RootCAs...))
	}
	if c.ClientCert != "" || c.ClientKey != "" {
		if c.ClientCert == "" || c.ClientKey == "" {
			return nil, errors.New("nats TLS: client certificate and key must be given together")
		}
		o = append(o, nats.ClientCert(c.ClientCert, c.ClientKey))
	}
	if c.TLSRequired {
		o = append(o, nats.Secure())
	}
	return append(o, c.Extra...), nil
}

// Connect dials NATS and checks that JetStream answers, so that a platform
// fails at start-up, not at its first lease renewal.
func Connect(ctx context.Context, c ConnectConfig) (*nats.Conn, jetstream.JetStream, error) {
	if c.URL == "" {
		return nil, nil, errors.New("nats: empty URL")
	}
	opts, err := c.Options()
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS at %s: %w", RedactURL(c.URL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(actx); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("NATS at %s has no usable JetStream: %w", RedactURL(c.URL), err)
	}
	return nc, js, nil
}
