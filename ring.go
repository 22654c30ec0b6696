package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ozanturksever/go-cluster/placement"
)

// RingHandle answers partition questions for an app with Ring(n).
//
// A key's partition is fixed for a given partition count (see
// placement.RingPartition: jump consistent hash of the key's 64-bit FNV-1a);
// the owner of a partition is whatever the ring's coordinator assigned last.
type RingHandle struct{ app *Application }

// Ring returns the app's ring handle.
func (a *Application) Ring() *RingHandle { return &RingHandle{app: a} }

// NumPartitions is the app's partition count (0 without Ring).
func (r *RingHandle) NumPartitions() int { return r.app.ringPartitions }

// PartitionFor returns key's partition, or -1 without Ring.
func (r *RingHandle) PartitionFor(key string) int {
	return placement.RingPartition(key, r.app.ringPartitions)
}

// OwnsKey reports whether this node owns key's partition now: its OnOwn
// returned and its OnRelease has not started.
func (r *RingHandle) OwnsKey(key string) bool {
	p := r.PartitionFor(key)
	return p >= 0 && r.app.ringGuard().owns(p)
}

// OwnedPartitions lists the partitions this node owns now, ascending.
func (r *RingHandle) OwnedPartitions() []int { return r.app.ringGuard().list() }

// NodeFor returns the node that the newest assignment gives key's
// partition. During a move that node may still be waiting for the previous
// owner's OnRelease; calls with ForKey wait for it.
func (r *RingHandle) NodeFor(key string) (string, error) {
	s, err := r.state()
	if err != nil {
		return "", fmt.Errorf("app %s NodeFor(%q): %w", r.app.name, key, err)
	}
	node := s.owner(r.PartitionFor(key))
	if node == "" {
		return "", fmt.Errorf("app %s NodeFor(%q): partition %d: %w", r.app.name, key, r.PartitionFor(key), ErrNoInstance)
	}
	return node, nil
}

// Members lists the ring's members in the newest assignment, sorted.
func (r *RingHandle) Members() []string {
	s, err := r.state()
	if err != nil {
		return nil
	}
	return append([]string(nil), s.members...)
}

// Version is the newest assignment's version (0 before the first).
func (r *RingHandle) Version() uint64 {
	s, err := r.state()
	if err != nil || s == nil {
		return 0
	}
	return s.version
}

func (r *RingHandle) state() (*ringState, error) {
	if r.app.ringPartitions == 0 {
		return nil, fmt.Errorf("%w: app %s has no Ring option", ErrInvalidOption, r.app.name)
	}
	p, err := r.app.getPlatform()
	if err != nil {
		return nil, err
	}
	v, err := p.ringViewOf(context.Background(), r.app.name)
	if err != nil {
		return nil, err
	}
	s, _ := v.wait()
	if s == nil {
		return nil, fmt.Errorf("ring %s has no assignment yet: %w", r.app.name, ErrNoInstance)
	}
	return s, nil
}

// Rebalance asks the coordinator of app's ring to check its members now
// (dropping any proved gone) and write a fresh assignment. The ring keeps
// itself balanced on joins, leaves and crashes; Rebalance is the manual
// trigger, e.g. after a member was cut off.
func (p *Platform) Rebalance(ctx context.Context, app string) (RebalanceResult, error) {
	if p.initErr != nil {
		return RebalanceResult{}, p.initErr
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCallTimeout)
		defer cancel()
	}
	for {
		msg, err := p.nc.RequestWithContext(ctx, p.layout.RingRebalanceSubject(app), nil)
		if errors.Is(err, nats.ErrNoResponders) {
			// No coordinator at this moment (one is being elected).
			select {
			case <-ctx.Done():
				return RebalanceResult{}, fmt.Errorf("rebalance %s: no ring coordinator: %w", app, ErrNoInstance)
			case <-time.After(p.cfg.timing.ProbeInterval):
			}
			continue
		}
		if err != nil {
			return RebalanceResult{}, fmt.Errorf("rebalance %s: %w", app, err)
		}
		var res RebalanceResult
		if err := json.Unmarshal(msg.Data, &res); err != nil {
			return RebalanceResult{}, fmt.Errorf("rebalance %s: bad answer: %w", app, err)
		}
		return res, nil
	}
}

// checkRingPartitions refuses to run a ring app whose partition count
// differs from the ring's in the cluster: its keys would map to other
// partitions than everyone else's.
func (p *Platform) checkRingPartitions(ctx context.Context, a *Application) error {
	v, err := p.ringViewOf(ctx, a.name)
	if err != nil {
		return err
	}
	if s, _ := v.wait(); s != nil && s.partitions != a.ringPartitions {
		return fmt.Errorf("app %s: Ring(%d), but the ring in platform %s has %d partitions (every node must use the same count; to change it, stop the app everywhere and delete key %s in bucket %s): %w",
			a.name, a.ringPartitions, p.name, s.partitions, p.layout.RingKey(a.name), p.layout.AssignmentsBucket(), ErrInvalidOption)
	}
	return nil
}

// PartitionFor returns key's partition among partitions, as Ring(partitions)
// apps compute it (RingHandle.PartitionFor), for code without the app at
// hand. It never changes for a given partition count.
func PartitionFor(key string, partitions int) int { return placement.RingPartition(key, partitions) }
