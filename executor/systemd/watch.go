//go:build linux

package systemd

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// event is what the pump queues for a subscriber: a PropertiesChanged of one
// of its units, or the news that generation gen is connected.
type event struct {
	gen       uint64
	seq       dbus.Sequence
	reconnect bool
	iface     string
	changed   map[string]dbus.Variant
}

// subscriber is an unbounded, ordered queue of events for a set of unit
// paths. The pump never blocks on it.
type subscriber struct {
	mu    sync.Mutex
	queue []event
	wake  chan struct{} // cap 1: "queue may be non-empty"
	paths []dbus.ObjectPath
}

func (s *subscriber) push(ev event) {
	s.mu.Lock()
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscriber) drain() []event {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

func (m *Manager) subscribe(path dbus.ObjectPath) *subscriber {
	s := &subscriber{wake: make(chan struct{}, 1)}
	m.subsMu.Lock()
	m.all[s] = struct{}{}
	m.subsMu.Unlock()
	m.addPath(s, path)
	return s
}

func (m *Manager) addPath(s *subscriber, path dbus.ObjectPath) {
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	for _, p := range s.paths {
		if p == path {
			return
		}
	}
	s.paths = append(s.paths, path)
	set := m.subs[path]
	if set == nil {
		set = make(map[*subscriber]struct{})
		m.subs[path] = set
	}
	set[s] = struct{}{}
}

func (m *Manager) unsubscribe(s *subscriber) {
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	delete(m.all, s)
	for _, p := range s.paths {
		if set := m.subs[p]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(m.subs, p)
			}
		}
	}
}

func (m *Manager) notifyReconnect(gen uint64) {
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	for s := range m.all {
		s.push(event{gen: gen, reconnect: true})
	}
}

// pump hands the signals of generation g to the subscribers of their unit.
// It ends when g's signal connection closes.
func (m *Manager) pump(g *generation) {
	defer m.wg.Done()
	for sig := range g.sigCh {
		if sig.Name != propsChangedName || len(sig.Body) < 2 {
			continue
		}
		iface, _ := sig.Body[0].(string)
		changed, _ := sig.Body[1].(map[string]dbus.Variant)
		if iface == "" || changed == nil {
			continue
		}
		m.subsMu.Lock()
		for s := range m.subs[sig.Path] {
			s.push(event{gen: g.id, seq: sig.Sequence, iface: iface, changed: changed})
		}
		m.subsMu.Unlock()
	}
}

// statusEvent is one observed state of a unit, with its position in the
// stream of the connection it was observed on.
type statusEvent struct {
	Status   UnitStatus
	Gen      uint64
	Seq      dbus.Sequence
	Snapshot bool // read with GetAll (first one, and after each reconnect)
}

// after reports whether ev is later than position (gen, seq).
func (ev statusEvent) after(gen uint64, seq dbus.Sequence) bool {
	return ev.Gen > gen || (ev.Gen == gen && ev.Seq > seq)
}

// follower turns a subscriber's signals into an ordered stream of unit
// states, resynchronising with a snapshot after every reconnect.
type follower struct {
	m    *Manager
	name string
	sub  *subscriber
	gen  uint64        // generation of the last snapshot
	seq  dbus.Sequence // its reply's sequence number
	cur  UnitStatus
	last UnitStatus // last emitted
}

// newFollower subscribes to a unit and takes the first snapshot.
func (m *Manager) newFollower(ctx context.Context, name string) (*follower, error) {
	f := &follower{m: m, name: name, sub: m.subscribe(unitPath(name))}
	if err := f.resync(ctx, false); err != nil {
		m.unsubscribe(f.sub)
		return nil, err
	}
	return f, nil
}

func (f *follower) close() { f.m.unsubscribe(f.sub) }

// resync takes a snapshot on the current generation, waiting for one while
// disconnected. With retry, other errors are retried with backoff too.
func (f *follower) resync(ctx context.Context, retry bool) error {
	backoff := minBackoff
	for {
		g, err := f.m.conn(ctx)
		if err != nil {
			return err
		}
		st, seq, err := f.m.snapshot(ctx, g, f.name)
		if err == nil {
			f.gen, f.seq, f.cur = g.id, seq, st
			if st.Name != "" && st.Name != f.name {
				// An alias: signals come under the primary name.
				f.m.addPath(f.sub, unitPath(st.Name))
			}
			return nil
		}
		switch {
		case errors.Is(err, ErrDisconnected):
			continue // conn waits for the next generation
		case errors.Is(err, ErrClosed), ctx.Err() != nil, !retry:
			return err
		}
		f.m.log.Warn("systemd: watch: reading unit state failed; retrying", "unit", f.name, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-f.m.closing:
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// run emits the current snapshot, then every change, until ctx ends, the
// Manager closes, or emit returns false.
func (f *follower) run(ctx context.Context, emit func(statusEvent) bool) {
	f.last = f.cur
	if !emit(statusEvent{Status: f.cur, Gen: f.gen, Seq: f.seq, Snapshot: true}) {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.m.closing:
			return
		case <-f.sub.wake:
		}
		for _, ev := range f.sub.drain() {
			if ev.reconnect {
				if ev.gen <= f.gen {
					continue // our snapshot is from that generation already
				}
				if err := f.resync(ctx, true); err != nil {
					return
				}
				f.last = f.cur
				if !emit(statusEvent{Status: f.cur, Gen: f.gen, Seq: f.seq, Snapshot: true}) {
					return
				}
				continue
			}
			if ev.gen != f.gen || ev.seq <= f.seq {
				continue // older than our snapshot
			}
			f.cur.applyVariants(ev.changed)
			// systemd sends the type-specific interface first and the Unit
			// interface last: emit once both are applied.
			if ev.iface != unitIface || f.cur == f.last {
				continue
			}
			f.last = f.cur
			if !emit(statusEvent{Status: f.cur, Gen: ev.gen, Seq: ev.seq}) {
				return
			}
		}
	}
}

// Watch follows a unit: the channel gets the unit's current state first,
// then every change of it (from D-Bus PropertiesChanged signals), until ctx
// ends or the Manager is closed; then it is closed. After a reconnect it
// gets the unit's state as read on the new connection. A slow reader delays
// nothing else: changes queue up for it.
func (m *Manager) Watch(ctx context.Context, unit string) (<-chan UnitStatus, error) {
	name, err := normalize(unit)
	if err != nil {
		return nil, err
	}
	f, err := m.newFollower(ctx, name)
	if err != nil {
		return nil, err
	}
	out := make(chan UnitStatus, 16)
	ok := m.goTracked(func() {
		defer close(out)
		defer f.close()
		f.run(ctx, func(ev statusEvent) bool {
			select {
			case out <- ev.Status:
				return true
			case <-ctx.Done():
				return false
			case <-m.closing:
				return false
			}
		})
	})
	if !ok {
		f.close()
		return nil, ErrClosed
	}
	return out, nil
}
