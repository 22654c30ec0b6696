package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/scheduler"
	"github.com/ozanturksever/go-cluster/state"
)

// NodeAllocs is the scheduler's assignment for one node.
type NodeAllocs struct {
	Allocs []scheduler.Alloc `json:"allocs"`
	// Revision is the bucket revision it was read at (not stored), for the
	// scheduler's compare-and-set.
	Revision uint64 `json:"-"`
}

// Allocs returns every node's assignment, keyed by node.
func (s *Store) Allocs(ctx context.Context) (map[string]NodeAllocs, error) {
	out := map[string]NodeAllocs{}
	err := s.listEntries(ctx, s.schedule, "alloc.", func(node string, e jetstream.KeyValueEntry) error {
		var na NodeAllocs
		if err := json.Unmarshal(e.Value(), &na); err != nil {
			return err
		}
		na.Revision = e.Revision()
		out[node] = na
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read allocations: %w", err)
	}
	return out, nil
}

// NodeAllocs returns one node's assignment (empty when it has none).
func (s *Store) NodeAllocs(ctx context.Context, node string) (NodeAllocs, error) {
	var na NodeAllocs
	rev, err := getJSON(ctx, s.schedule, s.layout.AllocKey(node), &na)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return NodeAllocs{}, nil
	}
	na.Revision = rev
	return na, err
}

// WriteAllocs replaces node's assignment if it is still at revision rev
// (0: none yet); an empty list deletes it. It fails with a compare-and-set
// error (state.IsCASFailure) when another scheduler wrote in between.
func (s *Store) WriteAllocs(ctx context.Context, node string, allocs []scheduler.Alloc, rev uint64) error {
	key := s.layout.AllocKey(node)
	if len(allocs) == 0 {
		if rev == 0 {
			return nil
		}
		return s.schedule.Delete(ctx, key, jetstream.LastRevision(rev))
	}
	_, err := putCAS(ctx, s.schedule, key, NodeAllocs{Allocs: allocs}, rev)
	return err
}

// WatchAllocs reports node's assignment each time it changes, starting
// with the current one, until ctx ends.
func (s *Store) WatchAllocs(ctx context.Context, node string) (<-chan NodeAllocs, error) {
	w, err := s.schedule.Watch(ctx, s.layout.AllocKey(node))
	if err != nil {
		return nil, fmt.Errorf("watch allocations of %s: %w", node, err)
	}
	out := make(chan NodeAllocs, 1)
	go func() {
		defer close(out)
		defer w.Stop()
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			var na NodeAllocs
			if e.Operation() == jetstream.KeyValuePut {
				if err := json.Unmarshal(e.Value(), &na); err != nil {
					continue // a record we cannot read is not an assignment
				}
			}
			na.Revision = e.Revision()
			// Only the newest assignment matters: replace an unread one.
			select {
			case <-out:
			default:
			}
			select {
			case out <- na:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// NodeControl is what operators set for a node. The zero value is an
// eligible node that is not draining.
type NodeControl struct {
	Ineligible bool `json:"ineligible,omitempty"`
	Drain      bool `json:"drain,omitempty"`
	// DrainDeadline, when set, is when a drain stops waiting for graceful
	// moves and stops what is left.
	DrainDeadline time.Time `json:"drain_deadline,omitempty"`
	DrainStarted  time.Time `json:"drain_started,omitempty"`
	Updated       time.Time `json:"updated"`
}

// NodeControls returns the controls of every node that has any.
func (s *Store) NodeControls(ctx context.Context) (map[string]NodeControl, error) {
	out := map[string]NodeControl{}
	err := s.listEntries(ctx, s.schedule, "control.", func(node string, e jetstream.KeyValueEntry) error {
		var c NodeControl
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			return err
		}
		out[node] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read node controls: %w", err)
	}
	return out, nil
}

// UpdateNodeControl applies change to node's controls atomically.
func (s *Store) UpdateNodeControl(ctx context.Context, node string, change func(*NodeControl)) (NodeControl, error) {
	key := s.layout.ControlKey(node)
	for {
		var c NodeControl
		rev, err := getJSON(ctx, s.schedule, key, &c)
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return NodeControl{}, err
		}
		change(&c)
		c.Updated = time.Now().UTC()
		if _, err := putCAS(ctx, s.schedule, key, c, rev); err == nil {
			return c, nil
		} else if !state.IsCASFailure(err) {
			return NodeControl{}, fmt.Errorf("update node %s: %w", node, err)
		}
	}
}

// Report is what the agent on a node says about its instances.
type Report struct {
	Node      string                    `json:"node"`
	Instances []scheduler.InstanceState `json:"instances"`
	Updated   time.Time                 `json:"updated"`
}

// Reports returns every node's report, keyed by node. Reports of nodes
// that are gone stay until their agent returns; callers filter by presence.
func (s *Store) Reports(ctx context.Context) (map[string]Report, error) {
	out := map[string]Report{}
	err := s.listEntries(ctx, s.schedule, "report.", func(node string, e jetstream.KeyValueEntry) error {
		var r Report
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return err
		}
		out[node] = r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read reports: %w", err)
	}
	return out, nil
}

// PutReport stores the agent's report (its node is the only writer).
func (s *Store) PutReport(ctx context.Context, r Report) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = s.schedule.Put(ctx, s.layout.ReportKey(r.Node), b)
	return err
}

// Progress is the scheduler's view of one job.
type Progress struct {
	Job     string                `json:"job"`
	Version uint64                `json:"version"`
	State   scheduler.JobProgress `json:"state"`
	// Placement explains nodes that were left out, one line each.
	Placement []string  `json:"placement,omitempty"`
	Updated   time.Time `json:"updated"`
}

// PutProgress stores a job's progress (the scheduler is the only writer).
func (s *Store) PutProgress(ctx context.Context, p Progress) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = s.schedule.Put(ctx, s.layout.ProgressKey(p.Job), b)
	return err
}

// DeleteProgress removes a purged job's progress.
func (s *Store) DeleteProgress(ctx context.Context, job string) error {
	err := s.schedule.Delete(ctx, s.layout.ProgressKey(job))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}

// Progresses returns the progress of every job the scheduler wrote any for.
func (s *Store) Progresses(ctx context.Context) (map[string]Progress, error) {
	out := map[string]Progress{}
	err := s.listEntries(ctx, s.schedule, "progress.", func(job string, e jetstream.KeyValueEntry) error {
		var p Progress
		if err := json.Unmarshal(e.Value(), &p); err != nil {
			return err
		}
		out[job] = p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read progress: %w", err)
	}
	return out, nil
}
