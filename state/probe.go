package state

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// ServeProbe answers liveness probes for this process on subject with its
// instance ID. The subscription lives exactly as long as the process's
// connection: when the process dies, the server drops it at once and probes
// get "no responders".
func ServeProbe(nc *nats.Conn, subject, instance string) (*nats.Subscription, error) {
	reply := []byte(instance)
	return nc.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(reply) })
}

// Prober tells early that a node's process is gone, by asking its probe
// subject. Another instance answering (the node was restarted) means gone;
// so does "no responders" from a server that is not part of a cluster; a
// timeout means unknown and we keep asking. One poll loop serves every
// watcher of the same process.
//
// On a NATS cluster "no responders" proves nothing: a server learns of
// subscriptions on other servers through its routes, and while routes are
// rebuilt (after a partition heals, measured ~0.6 s) a live holder's probe
// subscription is invisible elsewhere. A standby that believed it took
// over from a live leader (two leaders for up to 141 ms). There, a holder
// that stopped answering is waited out by its lease TTL.
type Prober struct {
	nc       *nats.Conn
	layout   Layout
	interval time.Duration

	mu      sync.Mutex
	watches map[probeTarget]*probeWatch
}

type probeTarget struct{ node, instance string }

type probeWatch struct {
	refs   int
	gone   chan struct{}
	cancel context.CancelFunc
}

// NewProber polls at interval.
func NewProber(nc *nats.Conn, layout Layout, interval time.Duration) *Prober {
	return &Prober{nc: nc, layout: layout, interval: interval, watches: map[probeTarget]*probeWatch{}}
}

// Gone returns a channel closed once the node's given instance is gone.
// A prober with no interval never probes: the channel never closes, and
// callers fall back on record TTLs.
func (p *Prober) Gone(node, instance string) (<-chan struct{}, func()) {
	if p.interval <= 0 {
		return nil, func() {}
	}
	key := probeTarget{node, instance}
	p.mu.Lock()
	w := p.watches[key]
	if w == nil {
		ctx, cancel := context.WithCancel(context.Background())
		w = &probeWatch{gone: make(chan struct{}), cancel: cancel}
		p.watches[key] = w
		go p.poll(ctx, key, w.gone)
	}
	w.refs++
	p.mu.Unlock()
	var once sync.Once
	return w.gone, func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if w.refs--; w.refs == 0 {
				w.cancel()
				delete(p.watches, key)
			}
		})
	}
}

// noRespondersIsProof reports whether our server answers for every
// subscription there is: it is not part of a cluster (INFO names no
// cluster), so no route can hide one.
func (p *Prober) noRespondersIsProof() bool {
	return p.nc.ConnectedClusterName() == ""
}

func (p *Prober) poll(ctx context.Context, t probeTarget, gone chan struct{}) {
	subject := p.layout.NodeProbeSubject(t.node)
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, p.interval*4)
		msg, err := p.nc.RequestWithContext(rctx, subject, nil)
		cancel()
		switch {
		case err == nil && string(msg.Data) != t.instance:
			close(gone)
			return
		case errors.Is(err, nats.ErrNoResponders) && p.noRespondersIsProof():
			// Our own connection must be up for "no responders" to mean
			// anything; nats.go only returns it on a server's answer.
			close(gone)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
