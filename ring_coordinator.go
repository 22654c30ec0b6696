package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/election"
	"github.com/ozanturksever/go-cluster/placement"
	"github.com/ozanturksever/go-cluster/state"
)

// The ring coordinator is the one member holding the ring's coordinator
// lease. It alone decides the assignment: it follows the member records,
// drops members that left or are proved gone, and writes a new version
// with compare-and-set whenever the membership differs from the newest
// version's. Safety does not rest on it being alone (the handoff rule holds
// for any sequence of versions, and CAS keeps versions linear); the lease
// keeps decisions in one place, deterministic and cheap.

// RebalanceResult is what a coordinator did for Rebalance.
type RebalanceResult struct {
	Version uint64   `json:"version"` // assignment version written
	Members []string `json:"members"`
	Moved   int      `json:"moved"` // partitions whose owner changed
}

type rebalanceRequest struct {
	reply chan RebalanceResult
}

// coordinateRing is one term of the coordinator lease.
func (p *Platform) coordinateRing(a *Application, m *ringMember, term *election.Term) {
	log := m.log.With("role", "ring coordinator", "epoch", term.Epoch)
	log.Info("ring: coordinating")
	ctx := termContext(term)
	requests := make(chan rebalanceRequest)
	sub, err := p.nc.Subscribe(p.layout.RingRebalanceSubject(a.name), func(msg *nats.Msg) {
		req := rebalanceRequest{reply: make(chan RebalanceResult, 1)}
		select {
		case requests <- req:
		case <-ctx.Done():
			return
		}
		select {
		case res, ok := <-req.reply:
			if !ok {
				return // the term ended first; the caller asks the next coordinator
			}
			b, _ := json.Marshal(res)
			_ = msg.Respond(b)
		case <-ctx.Done():
		}
	})
	if err != nil {
		log.Error("ring: cannot answer rebalance requests", "err", err)
	} else {
		defer func() { _ = sub.Unsubscribe() }()
	}

	// gone holds members proved gone (node → instance) whose records have
	// not expired yet; a record of another instance is a new member.
	gone := map[string]string{}
	proved := make(chan string)     // "node/instance" proved gone
	watching := map[string]func(){} // node/instance → stop probing
	defer func() {
		for _, stop := range watching {
			stop()
		}
	}()
	prefix := strings.TrimSuffix(p.layout.RingMembers(a.name), "*")
	var pending []rebalanceRequest
	for ctx.Err() == nil {
		records, changed := m.peers.snapshot()
		members := map[string]string{}
		for key, e := range records {
			node := strings.TrimPrefix(key, prefix)
			var rec state.RingMemberRecord
			if json.Unmarshal(e.Value(), &rec) != nil {
				continue
			}
			if rec.Partitions != a.ringPartitions {
				log.Error("ring: member asks for another partition count; left out", "member", node, "partitions", rec.Partitions, "ours", a.ringPartitions)
				continue
			}
			if gone[node] == rec.Instance {
				continue
			}
			members[node] = rec.Instance
		}
		for node := range gone {
			if members[node] != "" || records[prefix+node] == nil {
				delete(gone, node) // the record expired, or a new instance
			}
		}
		for id, stop := range watching {
			node, inst, _ := strings.Cut(id, "/")
			if members[node] != inst {
				stop()
				delete(watching, id)
			}
		}
		// Probe every member: a crashed process is proved gone long before
		// its record expires. See election.Candidate for why waiting the
		// stop budget and clock margin after that proof is safe.
		for node, inst := range members {
			id := node + "/" + inst
			if _, ok := watching[id]; ok || node == p.node {
				continue
			}
			ch, stop := p.prober.Gone(node, inst)
			watching[id] = stop
			go func() {
				select {
				case <-ch:
				case <-ctx.Done():
					return
				}
				grace := p.cfg.timing.StopBudget + p.cfg.timing.ClockMargin
				select {
				case <-time.After(grace):
				case <-ctx.Done():
					return
				}
				select {
				case proved <- id:
				case <-ctx.Done():
				}
			}()
		}

		res, err := p.writeRingAssignment(ctx, a, members, term.Epoch, len(pending) > 0)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("ring: cannot write assignment; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		case err == nil:
			for _, req := range pending {
				req.reply <- res
			}
			pending = nil
		}

		select {
		case <-ctx.Done():
		case <-changed:
		case req := <-requests:
			pending = append(pending, req)
		case id := <-proved:
			node, inst, _ := strings.Cut(id, "/")
			gone[node] = inst
			if stop := watching[id]; stop != nil {
				stop()
				delete(watching, id)
			}
			log.Info("ring: member proved gone", "member", node)
		}
	}
	for _, req := range pending {
		close(req.reply)
	}
	log.Info("ring: no longer coordinating", "reason", term.Err())
}

// writeRingAssignment writes a new version if members differ from the
// newest version's, or if force is set. It reads the record from NATS, not
// from the view, so a CAS never races a version it has not seen.
func (p *Platform) writeRingAssignment(ctx context.Context, a *Application, members map[string]string, epoch uint64, force bool) (RebalanceResult, error) {
	key := p.layout.RingKey(a.name)
	var cur placement.RingAssignment
	var rev uint64
	e, err := p.assignments.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return RebalanceResult{}, err
	default:
		s, derr := decodeRingState(e.Revision(), e.Value())
		if derr != nil {
			return RebalanceResult{}, derr
		}
		if s.partitions != a.ringPartitions {
			return RebalanceResult{}, fmt.Errorf("assignment has %d partitions, coordinator %d", s.partitions, a.ringPartitions)
		}
		rev = e.Revision()
		cur = placement.RingAssignment{Owners: s.owners, Prev: s.prev}
		if !force && maps.Equal(s.instances, members) {
			return RebalanceResult{Version: rev, Members: s.members}, nil
		}
	}
	names := make([]string, 0, len(members))
	for n := range members {
		names = append(names, n)
	}
	next := placement.AssignRing(a.ringPartitions, names, cur)
	rec := state.RingAssignmentRecord{
		Partitions: a.ringPartitions, Members: members,
		Owners: state.GroupByNode(next.Owners), Prev: state.GroupByNode(next.Prev),
		Coordinator: p.node, Epoch: epoch,
	}
	b, _ := json.Marshal(rec)
	var newRev uint64
	if rev == 0 {
		newRev, err = p.assignments.Create(ctx, key, b)
	} else {
		newRev, err = p.assignments.Update(ctx, key, b, rev)
	}
	if err != nil {
		return RebalanceResult{}, fmt.Errorf("write ring assignment: %w", err)
	}
	res := RebalanceResult{Version: newRev, Moved: placement.RingMoves(cur, next)}
	res.Members = slices.Sorted(maps.Keys(members))
	p.log.Info("ring: assignment written", "app", a.name, "version", newRev, "members", len(members), "moved", res.Moved)
	p.emit(Event{App: a.name, Kind: EventRingAssigned, Version: newRev,
		Message: fmt.Sprintf("%d members, %d partitions moved", len(members), res.Moved)})
	return res, nil
}
