package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// kvMirror keeps an in-memory copy of the keys of a bucket that match a
// filter, fed by a watch, so hot paths (routing a call, deciding a handoff)
// read memory instead of NATS. Waiters learn of changes through a channel
// that is closed and replaced on every change.
type kvMirror struct {
	kv     jetstream.KeyValue
	filter string

	mu      sync.Mutex
	entries map[string]jetstream.KeyValueEntry
	changed chan struct{}
	ready   chan struct{} // closed once the initial values are in
}

// startMirror watches filter until ctx ends and waits (up to 10 s) for the
// initial values.
func startMirror(ctx context.Context, kv jetstream.KeyValue, filter string) (*kvMirror, error) {
	m := &kvMirror{kv: kv, filter: filter, entries: map[string]jetstream.KeyValueEntry{},
		changed: make(chan struct{}), ready: make(chan struct{})}
	go m.run(ctx)
	select {
	case <-m.ready:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("watch %s/%s: no initial values after 10s", kv.Bucket(), filter)
	}
}

func (m *kvMirror) run(ctx context.Context) {
	first := true
	for ctx.Err() == nil {
		// A restarted watch delivers every current value again, followed by
		// the nil marker; entries missing from that pass were deleted while
		// we were not watching.
		w, err := m.kv.Watch(ctx, m.filter)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		seen := map[string]bool{}
		initial := true
		for e := range w.Updates() {
			if e == nil {
				if initial {
					m.mu.Lock()
					for k := range m.entries {
						if !seen[k] {
							delete(m.entries, k)
						}
					}
					m.notifyLocked()
					m.mu.Unlock()
					initial = false
					if first {
						close(m.ready)
						first = false
					}
				}
				continue
			}
			m.mu.Lock()
			if e.Operation() == jetstream.KeyValuePut {
				m.entries[e.Key()] = e
				seen[e.Key()] = true
			} else {
				delete(m.entries, e.Key())
			}
			if !initial {
				m.notifyLocked()
			}
			m.mu.Unlock()
		}
		_ = w.Stop()
	}
}

func (m *kvMirror) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// snapshot returns the current entries and a channel closed on the next change.
func (m *kvMirror) snapshot() (map[string]jetstream.KeyValueEntry, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]jetstream.KeyValueEntry, len(m.entries))
	for k, v := range m.entries {
		out[k] = v
	}
	return out, m.changed
}

// get returns one key's entry (nil when absent) and the change channel.
func (m *kvMirror) get(key string) (jetstream.KeyValueEntry, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.entries[key], m.changed
}
