// Package control is the orchestrator's state in NATS: submitted jobs with
// their history, the scheduler's allocations, operators' node controls,
// agents' instance reports and job progress. The CLI, the scheduler and
// the agents all read and write it through a Store, so they agree on the
// schema; nothing here decides anything.
package control

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/state"
)

// Store reads and writes one platform's orchestrator state.
type Store struct {
	js       jetstream.JetStream
	layout   state.Layout
	jobs     jetstream.KeyValue
	schedule jetstream.KeyValue
}

// Open opens (creating when missing) the orchestrator's buckets of
// platform. replicas is the JetStream replica count of new buckets.
func Open(ctx context.Context, js jetstream.JetStream, platform string, replicas int) (*Store, error) {
	if replicas < 1 {
		replicas = 1
	}
	l := state.Layout{Platform: platform}
	jobs, err := state.EnsureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: l.JobsBucket(), History: state.JobHistory, Replicas: replicas, Storage: jetstream.FileStorage,
		Description: "gcl jobs: one key per job, its versions as history",
	})
	if err != nil {
		return nil, err
	}
	schedule, err := state.EnsureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: l.ScheduleBucket(), History: 1, Replicas: replicas, Storage: jetstream.FileStorage,
		Description: "gcl allocations, node controls, instance reports, job progress",
	})
	if err != nil {
		return nil, err
	}
	return &Store{js: js, layout: l, jobs: jobs, schedule: schedule}, nil
}

// Layout is the platform's naming.
func (s *Store) Layout() state.Layout { return s.layout }

// getJSON reads key into v and returns its revision.
func getJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) (uint64, error) {
	e, err := kv.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("%s/%s: %w", kv.Bucket(), key, err)
	}
	return e.Revision(), nil
}

// putCAS writes v to key if its revision is still rev (0: must not exist).
func putCAS(ctx context.Context, kv jetstream.KeyValue, key string, v any, rev uint64) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	if rev == 0 {
		return kv.Create(ctx, key, b)
	}
	return kv.Update(ctx, key, b, rev)
}

// Watch sends a value on the returned channel whenever any orchestrator
// state changes (coalesced: one pending signal at most), until ctx ends.
// The first signal comes once both buckets' current contents were seen.
func (s *Store) Watch(ctx context.Context) (<-chan struct{}, error) {
	out := make(chan struct{}, 1)
	signal := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	for _, kv := range []jetstream.KeyValue{s.jobs, s.schedule} {
		w, err := kv.WatchAll(ctx, jetstream.MetaOnly())
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", kv.Bucket(), err)
		}
		go func() {
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case _, ok := <-w.Updates():
					if !ok {
						return
					}
					signal()
				}
			}
		}()
	}
	return out, nil
}

// listEntries calls fn for every live key of kv under prefix, with the
// key's rest after the prefix.
func (s *Store) listEntries(ctx context.Context, kv jetstream.KeyValue, prefix string, fn func(rest string, e jetstream.KeyValueEntry) error) error {
	entries, err := state.ListEntries(ctx, s.js, kv, prefix+">")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := fn(e.Key()[len(prefix):], e); err != nil {
			return fmt.Errorf("%s: %w", e.Key(), err)
		}
	}
	return nil
}
