//go:build linux

package chaos

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The external-NATS topology (Config.NATSServer): every node runs a
// nats-server of its own, clustered with the others' (JetStream on), and
// its agent joins it with -nats. Only there can a NATS server restart
// under a running agent: `gcl agent -server` embeds its server in the
// agent's process.
//
// Note what the agent does with -nats today: it creates its buckets with
// one replica (agent.Config.JetStreamReplicas defaults to 1 unless it runs
// an embedded server with two or more -join, and no flag sets it), so each
// bucket lives on one of the three servers.

// startNATS starts the node's nats-server; it does not wait for it.
func (n *Node) startNATS() error {
	var routes []string
	for _, o := range n.lab.Nodes {
		if o != n {
			routes = append(routes, "nats://"+o.routeAddr())
		}
	}
	p, err := n.spawn("nats-server", n.NATSLogPath(), n.lab.cfg.NATSServer,
		"-n", n.ID, "-a", n.Host.Addr.String(), "-p", "4222",
		"--cluster_name", "gcl", "--cluster", "nats://"+n.routeAddr(), "--routes", strings.Join(routes, ","),
		"-js", "-sd", filepath.Join(n.dir, "nats"))
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.nats = p
	n.mu.Unlock()
	return nil
}

func (n *Node) natsProc() *nodeProc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nats
}

// waitNATSReady waits until the node's nats-server accepts clients.
func (n *Node) waitNATSReady(ctx context.Context) error {
	p := n.natsProc()
	if p == nil {
		return fmt.Errorf("chaos: %s runs no nats-server", n.ID)
	}
	return waitLog(ctx, p, "Server is ready")
}

// RestartNATS stops the node's nats-server gracefully (SIGTERM, as a
// service manager's restart would), waits for it to exit and starts it
// again; it returns when the new server accepts clients.
func (n *Node) RestartNATS(ctx context.Context) error {
	p := n.natsProc()
	if p == nil || p.exited() {
		return fmt.Errorf("chaos: %s runs no nats-server", n.ID)
	}
	if err := syscall.Kill(p.pid(), syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return fmt.Errorf("chaos: nats-server of %s does not stop: %w", n.ID, ctx.Err())
	}
	if err := n.startNATS(); err != nil {
		return err
	}
	return n.waitNATSReady(ctx)
}

// startNATSCluster starts every node's nats-server and waits until
// JetStream answers (its meta leader is elected).
func (l *Lab) startNATSCluster(ctx context.Context) error {
	for _, n := range l.Nodes {
		if err := n.startNATS(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, n := range l.Nodes {
		if err := n.waitNATSReady(ctx); err != nil {
			return err
		}
	}
	if err := l.connect(); err != nil {
		return err
	}
	js, err := jetstream.New(l.nc)
	if err != nil {
		return err
	}
	err = pollUntil(ctx, 100*time.Millisecond, func() (bool, error) {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(actx)
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("chaos: JetStream of the NATS cluster does not come up: %w", err)
	}
	return nil
}
