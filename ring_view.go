package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/ozanturksever/go-cluster/state"
)

// ringState is one version of a ring's assignment, decoded.
type ringState struct {
	version    uint64 // KV revision of the assignment; 0 before the first
	partitions int
	owners     []string // per partition; "" none
	prev       []string
	members    []string // sorted node IDs
	instances  map[string]string
}

func (s *ringState) owner(partition int) string {
	if s == nil || partition < 0 || partition >= len(s.owners) {
		return ""
	}
	return s.owners[partition]
}

// ringView follows one ring app's assignment on this platform, for routing
// (ForKey, NodeFor) and for the members' handoff. It decodes each version
// once; readers load the current one without locking.
type ringView struct {
	app     string
	mirror  *kvMirror
	key     string
	current atomic.Pointer[ringState]
	log     *slog.Logger
}

// ringViewOf returns the view of app's ring, starting it on first use. It
// lives as long as the platform's connection.
func (p *Platform) ringViewOf(ctx context.Context, app string) (*ringView, error) {
	if p.initErr != nil {
		return nil, p.initErr
	}
	p.ringMu.Lock()
	defer p.ringMu.Unlock()
	if v := p.ringViews[app]; v != nil {
		return v, nil
	}
	key := p.layout.RingKey(app)
	m, err := startMirror(p.rootCtx, p.assignments, key)
	if err != nil {
		return nil, fmt.Errorf("ring %s: follow assignment: %w", app, err)
	}
	v := &ringView{app: app, mirror: m, key: key, log: p.log.With("app", app)}
	v.refresh()
	go func() {
		for {
			_, changed := m.get(key)
			select {
			case <-p.rootCtx.Done():
				return
			case <-changed:
				v.refresh()
			}
		}
	}()
	p.ringViews[app] = v
	return v, nil
}

// refresh decodes the mirror's newest record, if it is newer than ours.
func (v *ringView) refresh() {
	e, _ := v.mirror.get(v.key)
	if e == nil {
		return // the assignment record is never deleted while a ring runs
	}
	if cur := v.current.Load(); cur != nil && cur.version >= e.Revision() {
		return
	}
	s, err := decodeRingState(e.Revision(), e.Value())
	if err != nil {
		// Only a coordinator of another version writes such a record;
		// routing keeps the last good version.
		v.log.Error("ring: cannot read assignment; keeping the previous one", "err", err)
		return
	}
	v.current.Store(s)
}

func decodeRingState(version uint64, raw []byte) (*ringState, error) {
	var rec state.RingAssignmentRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("decode ring assignment v%d: %w", version, err)
	}
	owners, err := rec.OwnersList()
	if err != nil {
		return nil, fmt.Errorf("ring assignment v%d: %w", version, err)
	}
	prev, err := rec.PrevList()
	if err != nil {
		return nil, fmt.Errorf("ring assignment v%d: %w", version, err)
	}
	s := &ringState{version: version, partitions: rec.Partitions, owners: owners, prev: prev,
		instances: rec.Members}
	for m := range rec.Members {
		s.members = append(s.members, m)
	}
	slices.Sort(s.members)
	return s, nil
}

// wait returns the current state and a channel closed when a newer one may
// have arrived.
func (v *ringView) wait() (*ringState, <-chan struct{}) {
	_, changed := v.mirror.get(v.key)
	v.refresh()
	return v.current.Load(), changed
}
