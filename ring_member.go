package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/election"
	"github.com/ozanturksever/go-cluster/placement"
	"github.com/ozanturksever/go-cluster/state"
)

// ringMember is this node's part in a ring while its instance of the app is
// active: it publishes a member record, follows the assignment, releases
// and takes partitions by the handoff rule (placement.RingHandoff) and runs
// OnRelease / OnOwn; it also campaigns to be the ring's coordinator.
//
// Invariant: a partition is in the published Held set from before its
// OnOwn starts until after its OnRelease returned. Others read Held to know
// a partition is free, so a publish that lands out of order could let two
// nodes own one partition; publishes are serialised by pubMu and each
// carries the member's whole state at that moment.
type ringMember struct {
	p     *Platform
	a     *Application
	log   *slog.Logger
	view  *ringView
	peers *kvMirror // member records of this ring (also the coordinator's input)
	guard *ringGuard
	key   string

	wake   chan struct{} // disconnect, rebalance replies: look again now
	cancel context.CancelFunc
	done   chan struct{}
	coord  *election.Candidate

	mu    sync.Mutex // guards the fields below; never held across I/O
	acked uint64
	held  map[int]bool
	// invoked are partitions whose OnOwn was called and whose OnRelease
	// has not been: a failed or interrupted OnOwn may have loaded part of
	// a partition, and the app's OnRelease is where that is undone.
	invoked map[int]bool
	lastOK  time.Time // send time of the newest publish the server acknowledged
	lost    bool      // demoted for lack of contact; cleared by the next publish

	pubMu sync.Mutex // serialises publishes of the member record
}

// ringRetryMin and ringRetryMax bound the backoff between attempts of a
// failed OnOwn or OnRelease.
const (
	ringRetryMin = 500 * time.Millisecond
	ringRetryMax = 30 * time.Second
)

// joinRing starts this node's ring membership for a (the "ring" activation
// step). It returns once the member record is published; partitions arrive
// later, as the coordinator assigns them.
func (p *Platform) joinRing(ctx context.Context, a *Application) error {
	view, err := p.ringViewOf(ctx, a.name)
	if err != nil {
		return err
	}
	if err := p.checkRingPartitions(ctx, a); err != nil {
		return err
	}
	mctx, cancel := context.WithCancel(p.rootCtx)
	peers, err := startMirror(mctx, p.nodes, p.layout.RingMembers(a.name))
	if err != nil {
		cancel()
		return fmt.Errorf("ring %s: follow members: %w", a.name, err)
	}
	coord, err := election.New(election.Config{
		JS: p.js, KV: p.leases, Key: p.layout.RingCoordinatorKey(a.name),
		Node: p.node, Instance: p.instance, Timing: p.cfg.timing, Liveness: p.prober,
		Logger: p.log.With("app", a.name, "role", "ring coordinator"),
	})
	if err != nil {
		cancel()
		return err
	}
	m := &ringMember{
		p: p, a: a, log: p.log.With("app", a.name), view: view, peers: peers,
		guard: a.ringGuard(), key: p.layout.RingMemberKey(a.name, p.node),
		wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{}),
		coord: coord, held: map[int]bool{}, invoked: map[int]bool{},
	}
	if err := m.publish(ctx); err != nil {
		cancel()
		return fmt.Errorf("ring %s: publish member record: %w", a.name, err)
	}
	a.mu.Lock()
	a.member = m
	a.mu.Unlock()
	go m.refresh(mctx)
	go m.watchdog(mctx)
	go func() {
		_ = coord.Run(mctx, func(t *election.Term) { p.coordinateRing(a, m, t) })
	}()
	go func() {
		defer close(m.done)
		m.run(mctx)
	}()
	return nil
}

// leaveRing ends membership gracefully: every owned partition is released
// (OnRelease) and the member record deleted, so the coordinator gives the
// partitions to the others. If OnRelease fails here the partitions are still
// given up: the node is going away either way.
func (p *Platform) leaveRing(ctx context.Context, a *Application) error {
	a.mu.Lock()
	m := a.member
	a.member = nil
	a.mu.Unlock()
	if m == nil {
		return nil
	}
	m.coord.StepDown(ctx)
	m.cancel()
	<-m.done
	err := m.release(ctx, m.heldList(), true)
	_ = m.publish(ctx)
	if derr := p.nodes.Delete(ctx, m.key); derr != nil {
		err = errors.Join(err, fmt.Errorf("delete ring member record: %w", derr))
	}
	return err
}

// run is the member's loop: look at the newest assignment and the peers'
// records, act, wait for a change.
func (m *ringMember) run(ctx context.Context) {
	var notBefore time.Time // after a failed hook, when to try again
	backoff := ringRetryMin
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for ctx.Err() == nil {
		s, viewChanged := m.view.wait()
		peers, peersChanged := m.peers.snapshot()

		if s != nil && s.partitions == m.a.ringPartitions && m.ack(s.version) {
			if err := m.publish(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("ring: cannot publish ack", "version", s.version, "err", err)
			}
		}
		if s != nil && s.partitions == m.a.ringPartitions && !time.Now().Before(notBefore) {
			if err := m.step(ctx, s, peers); err != nil {
				notBefore = time.Now().Add(backoff)
				retry.Reset(backoff)
				backoff = min(backoff*2, ringRetryMax)
			} else {
				backoff = ringRetryMin
			}
		}
		select {
		case <-ctx.Done():
		case <-viewChanged:
		case <-peersChanged:
		case <-m.wake:
		case <-retry.C:
		}
	}
}

// step carries out one round of the handoff rule: releases first (they
// unblock others), then takes.
func (m *ringMember) step(ctx context.Context, s *ringState, records map[string]jetstream.KeyValueEntry) error {
	peers := make(map[string]placement.RingPeer, len(records))
	prefix := strings.TrimSuffix(m.p.layout.RingMembers(m.a.name), "*")
	for key, e := range records {
		node := strings.TrimPrefix(key, prefix)
		var rec state.RingMemberRecord
		if json.Unmarshal(e.Value(), &rec) != nil || rec.Instance != s.instances[node] {
			continue // not the instance the assignment knows: acked nothing
		}
		held, err := state.DecodeRanges(rec.Held, s.partitions)
		if err != nil {
			continue
		}
		peer := placement.RingPeer{Acked: rec.Acked, Held: make(map[int]bool, len(held))}
		for _, p := range held {
			peer.Held[p] = true
		}
		peers[node] = peer
	}
	m.mu.Lock()
	held := maps.Clone(m.held)
	m.mu.Unlock()
	steps := placement.RingHandoff(s.version, s.owners, s.members, m.p.node, held, peers)
	var errs []error
	if len(steps.Release) > 0 {
		if err := m.release(ctx, steps.Release, false); err != nil {
			errs = append(errs, err)
		}
	}
	// Partitions claimed earlier whose OnOwn failed are ours to try again.
	take := steps.Take
	for p := range held {
		if s.owner(p) == m.p.node && !m.guard.serving(p) {
			take = append(take, p)
		}
	}
	slices.Sort(take)
	if len(take) > 0 {
		if err := m.take(ctx, s.version, take); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// release stops owning parts, waits for their calls, runs OnRelease for
// those whose OnOwn was called, and publishes that they are free. On a hook
// error the partitions stay held (not served) and release is tried again
// later, unless force is set (the member is leaving).
func (m *ringMember) release(ctx context.Context, parts []int, force bool) error {
	if len(parts) == 0 {
		return nil
	}
	hctx, cancel := m.p.hookContext(ctx)
	defer cancel()
	m.guard.revoke(hctx, parts)
	owned := m.takeInvoked(parts)
	var err error
	if len(owned) > 0 {
		err = runPartitionHooks(hctx, m.a, "OnRelease", m.a.partitionHooks(&m.a.onRelease), owned)
	}
	if err != nil {
		m.log.Error("ring: OnRelease failed", "partitions", state.EncodeRanges(owned), "err", err)
		m.p.emit(Event{App: m.a.name, Kind: EventRingReleaseFailed, Partitions: state.EncodeRanges(owned), Error: err.Error()})
		if !force {
			m.mu.Lock()
			for _, p := range owned {
				m.invoked[p] = true // OnRelease is tried again
			}
			m.mu.Unlock()
			return err
		}
	} else if len(owned) > 0 {
		m.log.Info("ring: released", "partitions", state.EncodeRanges(owned))
		m.p.emit(Event{App: m.a.name, Kind: EventRingRelease, Partitions: state.EncodeRanges(owned)})
	}
	m.mu.Lock()
	for _, p := range parts {
		delete(m.held, p)
	}
	m.mu.Unlock()
	if perr := m.publish(ctx); perr != nil {
		// Not published: others keep seeing the partitions held and wait;
		// the next publish (a refresh) frees them.
		m.log.Warn("ring: cannot publish release", "err", perr)
	}
	return err
}

// take claims parts in the member record, then runs OnOwn and starts
// serving them. A claim that cannot be published is dropped: without it
// the partitions are not ours to take.
func (m *ringMember) take(ctx context.Context, version uint64, parts []int) error {
	m.mu.Lock()
	for _, p := range parts {
		m.held[p] = true
	}
	m.mu.Unlock()
	if err := m.publish(ctx); err != nil {
		m.mu.Lock()
		for _, p := range parts {
			delete(m.held, p)
		}
		m.mu.Unlock()
		return fmt.Errorf("ring %s: publish claim: %w", m.a.name, err)
	}
	m.mu.Lock()
	for _, p := range parts {
		m.invoked[p] = true
	}
	m.mu.Unlock()
	// OnOwn runs to its end (or the hook timeout) even if the member is
	// stopped meanwhile: abandoned on cancellation it would go on running
	// while leaveRing runs OnRelease for the same partitions, and the app
	// would hear "own" after "release". The member's loop, and so its
	// leaving, waits for this.
	hctx, cancel := m.p.hookContext(context.WithoutCancel(ctx))
	defer cancel()
	if err := runPartitionHooks(hctx, m.a, "OnOwn", m.a.partitionHooks(&m.a.onOwn), parts); err != nil {
		// The claim stays: the assignment still gives these to us and OnOwn
		// is tried again. If they move away meanwhile, release runs their
		// OnRelease (OnOwn was called) and drops them.
		m.log.Error("ring: OnOwn failed", "partitions", state.EncodeRanges(parts), "version", version, "err", err)
		m.p.emit(Event{App: m.a.name, Kind: EventRingOwnFailed, Partitions: state.EncodeRanges(parts), Version: version, Error: err.Error()})
		return err
	}
	// The deadline may have passed while OnOwn ran (we lost contact):
	// then the partitions are not ours to serve.
	m.mu.Lock()
	stillHeld := !m.lost
	for _, p := range parts {
		stillHeld = stillHeld && m.held[p]
	}
	m.mu.Unlock()
	if !stillHeld {
		return nil
	}
	m.guard.grant(parts)
	m.log.Info("ring: owned", "partitions", state.EncodeRanges(parts), "version", version)
	m.p.emit(Event{App: m.a.name, Kind: EventRingOwn, Partitions: state.EncodeRanges(parts), Version: version})
	return nil
}

// ack records that version was seen; it reports whether that is news.
func (m *ringMember) ack(version uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if version <= m.acked {
		return false
	}
	m.acked = version
	return true
}

// takeInvoked returns those of parts whose OnOwn was called, and forgets
// them: OnRelease runs once for each OnOwn.
func (m *ringMember) takeInvoked(parts []int) []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int
	for _, p := range parts {
		if m.invoked[p] {
			out = append(out, p)
			delete(m.invoked, p)
		}
	}
	return out
}

func (m *ringMember) heldList() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.held))
}

// publish writes the member record with the member's state now.
func (m *ringMember) publish(ctx context.Context) error {
	m.pubMu.Lock()
	defer m.pubMu.Unlock()
	m.mu.Lock()
	rec := state.RingMemberRecord{
		Instance: m.p.instance, Partitions: m.a.ringPartitions,
		Acked: m.acked, Held: state.EncodeRanges(slices.Collect(maps.Keys(m.held))),
	}
	m.mu.Unlock()
	b, _ := json.Marshal(rec)
	sent := time.Now()
	pctx, cancel := context.WithTimeout(ctx, m.p.cfg.presenceTTL/5)
	defer cancel()
	if err := state.PutTTL(pctx, m.p.js, m.p.nodes.Bucket(), m.key, b, m.p.recordTTL()); err != nil {
		return err
	}
	m.mu.Lock()
	m.lastOK, m.lost = sent, false
	m.mu.Unlock()
	return nil
}

// refresh keeps the member record alive, like presence.
func (m *ringMember) refresh(ctx context.Context) {
	t := time.NewTicker(m.p.cfg.presenceTTL / 5)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.publish(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("ring: member record refresh failed", "err", err)
		}
		m.poke()
	}
}

// The member record's server TTL counts from when the server stored the
// last publish, which is after we sent it; so a deadline counted from the
// send time, less the clock margin and the time stopping takes, always
// falls before others can see the record expire and take our partitions.
func (m *ringMember) recordDeadline() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.p.cfg.timing
	return m.lastOK.Add(m.p.recordTTL() - t.ClockMargin - t.StopBudget)
}

// watchdog demotes the member when its record's deadline passes without a
// successful publish. It is a goroutine of its own because the loop may be
// inside a hook and a publish may hang for its whole timeout.
func (m *ringMember) watchdog(ctx context.Context) {
	t := time.NewTimer(time.Until(m.recordDeadline()))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		lost := m.lost
		m.mu.Unlock()
		d := time.Until(m.recordDeadline())
		if !lost && d <= 0 {
			m.demote("no contact with NATS before the member record's deadline")
			m.poke()
		}
		if d <= 0 {
			d = m.p.cfg.timing.ProbeInterval // wait for contact to return
		}
		t.Reset(d)
	}
}

// demote stops owning everything at once because others may soon consider
// our partitions free. OnRelease runs within the stop budget; Held is
// cleared locally and published when contact returns.
func (m *ringMember) demote(reason string) {
	m.mu.Lock()
	if m.lost {
		m.mu.Unlock()
		return
	}
	m.lost = true
	parts := slices.Sorted(maps.Keys(m.held))
	m.held = map[int]bool{}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), m.p.cfg.timing.StopBudget)
	defer cancel()
	m.guard.revoke(ctx, parts)
	owned := m.takeInvoked(parts)
	m.log.Error("ring: released every partition", "reason", reason, "partitions", state.EncodeRanges(owned))
	if len(owned) > 0 {
		if err := runPartitionHooks(ctx, m.a, "OnRelease", m.a.partitionHooks(&m.a.onRelease), owned); err != nil {
			m.log.Warn("ring: OnRelease after losing contact failed", "err", err)
		}
	}
	m.p.emit(Event{App: m.a.name, Kind: EventRingDemoted, Partitions: state.EncodeRanges(owned), Message: reason})
}

// disconnected is called when the NATS connection drops: the server will
// drop our probe subscription, so others may soon prove us gone.
func (m *ringMember) disconnected() {
	m.demote("connection to NATS lost")
	m.poke()
}

func (m *ringMember) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// runPartitionHooks runs partition hooks in order and stops at the first error.
func runPartitionHooks(ctx context.Context, a *Application, name string, hooks []PartitionHook, parts []int) error {
	for _, h := range hooks {
		err := callHook(ctx, func(ctx context.Context) error { return h(ctx, slices.Clone(parts)) })
		if err != nil {
			return fmt.Errorf("app %s %s hook: %w", a.name, name, err)
		}
	}
	return nil
}
