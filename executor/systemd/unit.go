//go:build linux

package systemd

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// failureBuffer is the capacity of Unit.Failures.
const failureBuffer = 16

// histSize bounds the states a Unit remembers for arming (see Start).
const histSize = 64

// Failure is a unit going down while it was wanted active.
type Failure struct {
	Unit        string
	ActiveState string // failed or inactive
	SubState    string
	Result      string // success, exit-code, signal, core-dump, timeout...
	At          time.Time
}

// Unit is the handle for one backend unit: Start and Stop it, and learn
// from Failures when it goes down on its own in between.
type Unit struct {
	m        *Manager
	name     string
	nameErr  error // the name is not a unit name
	failures chan Failure

	opMu sync.Mutex // serialises Start and Stop

	mu       sync.Mutex
	armed    bool          // wanted active: failures count
	baseGen  uint64        // failures count only after this position
	baseSeq  dbus.Sequence //
	down     bool          // the current occurrence was reported
	hist     []statusEvent // the watcher's recent states, oldest first
	stop     context.CancelFunc
	watching chan struct{} // closed when the watcher has ended
}

// Unit returns a handle for a unit. A name without a type suffix means a
// service.
func (m *Manager) Unit(name string) *Unit {
	n, err := normalize(name)
	if err != nil {
		n = name
	}
	return &Unit{m: m, name: n, nameErr: err, failures: make(chan Failure, failureBuffer)}
}

// Name is the unit's name.
func (u *Unit) Name() string { return u.name }

// Status reads the unit's state.
func (u *Unit) Status(ctx context.Context) (UnitStatus, error) { return u.m.Status(ctx, u.name) }

// Failures reports, while the unit is wanted active (from a successful
// Start until Stop), each time it goes down without our Stop: it becomes
// failed, or inactive (stopped by someone else, its manager went away, a
// oneshot finished). One report per occurrence: after a report the unit
// must be active again before it can be reported again. A crash that
// systemd answers with its own restart (Restart=) is reported too (the unit
// passes through "failed"); the rest of that restart (auto-restart,
// inactive, activating) is part of the same occurrence. After a reconnect,
// a unit found down is reported.
//
// The channel is buffered; when the reader falls behind by more than its
// capacity, further failures are dropped (and logged), never blocking the
// watcher. It is never closed.
func (u *Unit) Failures() <-chan Failure { return u.failures }

// Start starts the unit, waits for the job, and from then on reports
// failures. Failures from before the start job finished (a previous run
// going down) are not reported.
func (u *Unit) Start(ctx context.Context) error {
	if u.nameErr != nil {
		return u.nameErr
	}
	u.opMu.Lock()
	defer u.opMu.Unlock()
	if err := u.ensureWatcher(ctx); err != nil {
		return err
	}
	if err := u.m.Start(ctx, u.name); err != nil {
		return err
	}
	// The start job is done. A snapshot on the signal connection now is
	// later than the job's JobRemoved and everything before it; arm from
	// there.
	gen := u.m.generationID()
	if g, err := u.m.conn(ctx); err == nil {
		if st, seq, err := u.m.snapshot(ctx, g, u.name); err == nil {
			u.arm(g.id, seq, &st)
			return nil
		}
		gen = g.id
	}
	// Count only from the next reconnect's snapshot: nothing on this
	// generation is known to be after the job.
	u.arm(gen, math.MaxUint64, nil)
	return nil
}

// Stop stops reporting failures, then stops the unit and waits for the job.
func (u *Unit) Stop(ctx context.Context) error {
	if u.nameErr != nil {
		return u.nameErr
	}
	u.opMu.Lock()
	defer u.opMu.Unlock()
	u.mu.Lock()
	u.armed = false
	u.mu.Unlock()
	err := u.m.Stop(ctx, u.name)
	u.stopWatcher()
	return err
}

func (u *Unit) ensureWatcher(ctx context.Context) error {
	u.mu.Lock()
	running := u.stop != nil
	u.mu.Unlock()
	if running {
		return nil
	}
	f, err := u.m.newFollower(ctx, u.name)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	ok := u.m.goTracked(func() {
		defer close(done)
		defer f.close()
		f.run(wctx, func(ev statusEvent) bool {
			u.observeEvent(ev)
			return true
		})
	})
	if !ok {
		cancel()
		f.close()
		return ErrClosed
	}
	u.mu.Lock()
	u.stop, u.watching = cancel, done
	u.mu.Unlock()
	return nil
}

func (u *Unit) stopWatcher() {
	u.mu.Lock()
	stop, done := u.stop, u.watching
	u.stop, u.watching = nil, nil
	u.hist = nil
	u.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// observeEvent is called by the watcher, in stream order.
func (u *Unit) observeEvent(ev statusEvent) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.hist = append(u.hist, ev)
	if len(u.hist) > histSize {
		u.hist = append(u.hist[:0], u.hist[len(u.hist)-histSize:]...)
	}
	if u.armed && ev.after(u.baseGen, u.baseSeq) {
		u.judge(ev.Status)
	}
}

// arm starts counting failures after position (gen, seq), whose state is
// st (nil: unknown). States the watcher saw after that position before we
// got here are judged now, in order.
func (u *Unit) arm(gen uint64, seq dbus.Sequence, st *UnitStatus) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.armed, u.baseGen, u.baseSeq, u.down = true, gen, seq, false
	if st != nil {
		u.judge(*st)
	}
	for _, ev := range u.hist {
		if ev.after(gen, seq) {
			u.judge(ev.Status)
		}
	}
}

// judge reports st if it is the start of a new down occurrence: the unit is
// failed or inactive and was not already down (or is being judged for the
// first time since Start). u.mu held.
func (u *Unit) judge(st UnitStatus) {
	switch {
	case st.IsDown():
		if u.down {
			return
		}
		u.down = true
		f := Failure{Unit: u.name, ActiveState: st.ActiveState, SubState: st.SubState, Result: st.Result, At: time.Now()}
		select {
		case u.failures <- f:
			u.m.log.Debug("systemd: unit went down", "unit", u.name, "state", st.String())
		default:
			u.m.log.Warn("systemd: failure not delivered: reader too slow", "unit", u.name, "state", st.String())
		}
	case st.IsActive():
		// Only a unit that is up again can go down again. Not
		// "activating": systemd's own restart after a crash goes failed,
		// auto-restart (activating), inactive (the restart job's stop half),
		// activating, active; that is one occurrence.
		u.down = false
	}
}
