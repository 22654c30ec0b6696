package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/state"
)

// Event is one entry of the platform's activity feed: elections, ring
// moves, hook failures. Events are kept in a stream for a day.
type Event struct {
	Time       time.Time `json:"time"`
	Node       string    `json:"node"`
	App        string    `json:"app"`
	Kind       string    `json:"kind"` // e.g. "ring.own", "ring.own_failed"
	Message    string    `json:"message,omitempty"`
	Error      string    `json:"error,omitempty"`
	Partitions string    `json:"partitions,omitempty"` // ranges, "0-3,8"
	Version    uint64    `json:"version,omitempty"`    // assignment version or lease epoch
}

// Event kinds.
const (
	EventRingAssigned      = "ring.assigned"
	EventRingOwn           = "ring.own"
	EventRingOwnFailed     = "ring.own_failed"
	EventRingRelease       = "ring.release"
	EventRingReleaseFailed = "ring.release_failed"
	EventRingDemoted       = "ring.demoted"
)

// eventsMaxAge bounds the activity feed.
const eventsMaxAge = 24 * time.Hour

func (p *Platform) ensureEventsStream(ctx context.Context) error {
	err := state.EnsureStream(ctx, p.js, jetstream.StreamConfig{
		Name:     p.layout.EventsStream(),
		Subjects: []string{p.layout.EventSubjects()},
		MaxAge:   eventsMaxAge,
		MaxMsgs:  100_000,
		Storage:  jetstream.FileStorage,
		Replicas: p.cfg.replicas,
		Discard:  jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("events stream: %w", err)
	}
	return nil
}

// emit publishes an event without waiting: the feed is for people and
// tools, and must never slow or block what it reports on.
func (p *Platform) emit(e Event) {
	e.Time, e.Node = time.Now().UTC(), p.node
	if observe := p.cfg.eventObserver; observe != nil {
		observe(e)
	}
	b, _ := json.Marshal(e)
	_ = p.nc.Publish(p.layout.EventSubject(e.App, e.Kind), b)
}

// WatchEvents delivers events published from now on, until ctx ends.
func (p *Platform) WatchEvents(ctx context.Context) (<-chan Event, error) {
	if p.initErr != nil {
		return nil, p.initErr
	}
	c, err := p.js.OrderedConsumer(ctx, p.layout.EventsStream(), jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("watch events: %w", err)
	}
	out := make(chan Event, 64)
	msgs, err := c.Messages()
	if err != nil {
		return nil, fmt.Errorf("watch events: %w", err)
	}
	go func() { <-ctx.Done(); msgs.Stop() }()
	go func() {
		defer close(out)
		for {
			m, err := msgs.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				return
			}
			if err != nil {
				continue
			}
			var e Event
			if json.Unmarshal(m.Data(), &e) == nil {
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}
