package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ozanturksever/go-cluster/election"
	"github.com/ozanturksever/go-cluster/network/vip"
)

// This file moves an app's virtual IP with its leadership: the "vip" step
// of becoming active (lifecycle.go). Three things bound the address to the
// lease when this process cannot remove it itself:
//
//   - a guard process (vip.VIP.HoldUntil) holds the lease term's deadline
//     and removes the address at that deadline unless a renewal moved it,
//     without needing this process to run: a frozen agent (SIGSTOP, a
//     starved machine) loses its VIP when its lease ends, as a partitioned
//     one does. When this process dies the guard removes the address at
//     once;
//   - the address carries a finite valid lifetime that every lease renewal
//     extends, a coarser backstop (whole seconds) for when the guard is
//     gone too;
//   - every address this node added is written to a record file, so that
//     the next process on the node removes what its predecessor left
//     before it campaigns (removeRecordedVIPs).

// Event kinds of node resources.
const (
	EventVIPAdded       = "vip.added"
	EventVIPAddFailed   = "vip.add_failed"
	EventVIPRemoved     = "vip.removed"
	EventVIPReclaimed   = "vip.reclaimed" // the address vanished while active and was added again
	EventVIPStaleRemove = "vip.stale_removed"
)

// vipLifetime is the valid lifetime of a leader's VIP, the backstop for
// when neither this process nor its guard can remove the address (both
// killed with the agent's cgroup, the whole node frozen while its kernel
// runs on): the address must then expire before any successor may add it.
// The kernel counts whole seconds and expires an address up to a second
// late, so an address set at t with lifetime L is gone by t + L + 1 s. The
// renewal loop re-sets it only while that is before the term's stop-by
// time (mayExtend), and L is the largest whole number of seconds that
// leaves a renewal interval of room: at the default timing, 1 s. The price
// is that a leader whose lease goes unrenewed for more than about a second
// (a stream-leader election's tail) may see its address expire and come
// back with the next renewal (vip.reclaimed): brief, where two holders
// would not be.
//
// A TTL too short for that (under about 2.6 s) leaves no whole second of
// room: the lifetime is then the TTL plus a second, re-set with every
// renewal, and only the guard and the record file bound the address.
//
// Until an address expires, both kernels answer ARP requests for the VIP,
// and a client that asks in that window may keep the dead node's MAC until
// its neighbour entry times out (tens of seconds). So the new leader
// announces once more when any address it may have taken over from has
// surely expired (reannounceAfter).
func vipLifetime(t election.Timing) time.Duration {
	if room, ok := kernelBackstop(t); ok {
		return room
	}
	return t.TTL + time.Second
}

// kernelBackstop is the lifetime that expires a renewed address before
// the term's stop-by time, and whether there is one of at least a second.
func kernelBackstop(t election.Timing) (time.Duration, bool) {
	room := (t.TTL - t.ClockMargin - t.StopBudget - t.RenewInterval - time.Second).Truncate(time.Second)
	return room, room >= time.Second
}

// reannounceAfter is when a new leader announces its VIP again: after the
// longest a previous holder's address can live (its lifetime, from its
// last renewal, which was before our takeover), plus the kernel's address
// expiry, which runs on a timer of about a second.
func reannounceAfter(t election.Timing) time.Duration {
	return vipLifetime(t) + 1500*time.Millisecond
}

// appVIP is the VIP of one app on this node.
type appVIP struct {
	p   *Platform
	a   *Application
	vip *vip.VIP

	mu    sync.Mutex
	renew chan struct{} // non-nil while held: a renewal is due
	done  chan struct{} // closed when the renewal loop ended
}

// newAppVIP validates the app's VIP settings and opens the netlink handle.
// Only a singleton may have a VIP: an address has one holder.
func (p *Platform) newAppVIP(a *Application) (*appVIP, error) {
	if a.mode != ModeSingleton {
		return nil, fmt.Errorf("%w: app %s: a VIP needs Singleton(), not %s", ErrInvalidOption, a.name, a.mode)
	}
	prefix, err := netip.ParsePrefix(a.vipCIDR)
	if err != nil {
		return nil, fmt.Errorf("%w: app %s: VIP %q is not an address with a prefix length like 10.0.1.100/24: %v", ErrInvalidOption, a.name, a.vipCIDR, err)
	}
	v, err := vip.New(vip.Config{
		Address:       prefix,
		Interface:     a.vipIf,
		ARPCount:      a.vipARPCount,
		ARPInterval:   a.vipARPInterval,
		ValidLifetime: vipLifetime(p.cfg.timing),
		Logger:        p.log.With("app", a.name, "vip", prefix.String()),
	})
	if err != nil {
		return nil, fmt.Errorf("app %s: VIP %s: %w", a.name, a.vipCIDR, err)
	}
	return &appVIP{p: p, a: a, vip: v}, nil
}

// up adds the address, announces it, records it and starts renewing it
// with the lease.
func (v *appVIP) up(ctx context.Context, epoch uint64) error {
	deadline := v.termDeadline()
	if deadline.IsZero() {
		return fmt.Errorf("app %s: VIP %s: no lease term to bound the address by", v.a.name, v.vip.Address())
	}
	// Recorded first: a crash between adding and recording must not leave
	// an address the next process does not know about.
	if err := v.p.vipRecords.add(v.a.name, v.vip.Address(), v.vip.Interface()); err != nil {
		return err
	}
	// The guard before the address, so that there is no moment in which
	// the address is on the link and nothing but this process would take
	// it away. A guard that cannot start fails the activation: without it
	// a frozen agent would keep the VIP past its lease.
	if err := v.vip.HoldUntil(deadline); err != nil {
		v.p.emit(Event{App: v.a.name, Kind: EventVIPAddFailed, Version: epoch, Message: v.vip.Address(), Error: err.Error()})
		return fmt.Errorf("app %s: VIP %s: %w", v.a.name, v.vip.Address(), err)
	}
	if err := v.vip.Add(ctx); err != nil {
		v.p.emit(Event{App: v.a.name, Kind: EventVIPAddFailed, Version: epoch, Message: v.vip.Address(), Error: err.Error()})
		return err
	}
	v.p.emit(Event{App: v.a.name, Kind: EventVIPAdded, Version: epoch, Message: v.vip.Address() + " on " + v.vip.Interface()})
	v.mu.Lock()
	v.renew, v.done = make(chan struct{}, 1), make(chan struct{})
	go v.renewLoop(v.renew, v.done, epoch, reannounceAfter(v.p.cfg.timing), deadline)
	v.mu.Unlock()
	return nil
}

// termDeadline is when this node's current term of the app's lease must
// have stopped (Election.StopBy: the lease deadline plus the stop budget,
// still before any successor may act), the zero time without a term.
func (v *appVIP) termDeadline() time.Time { return v.a.election.StopBy() }

// inTerm reports whether the term's deadline is still ahead. Past it the
// address must not come back, whatever a late renewal signal or timer
// says: a thawed agent runs those before its term is wound down.
func (v *appVIP) inTerm() bool { return time.Now().Before(v.termDeadline()) }

// mayExtend reports whether the address may be set now with lifetime:
// where the kernel lifetime is a backstop (kernelBackstop), the kernel
// removes it by now + lifetime + 1 s, which must be before the term's
// stop-by time; otherwise while the term lasts.
func (v *appVIP) mayExtend(lifetime time.Duration) bool {
	if _, ok := kernelBackstop(v.p.cfg.timing); !ok {
		return v.inTerm()
	}
	return time.Now().Add(lifetime + time.Second).Before(v.termDeadline())
}

// holdPoll is how often the renewal loop looks at the term's deadline for
// the guard. The lease calls renewed before it moves the term's deadline,
// and a renewal whose answer was lost moves it without calling renewed at
// all, so the loop follows the deadline itself; a look that comes late
// only leaves the guard an earlier deadline. At the default timing it is
// 50 ms, a fifth of the renew interval, against a deadline about two
// seconds ahead of each renewal.
func (v *appVIP) holdPoll() time.Duration {
	return min(max(v.p.cfg.timing.RenewInterval/5, 5*time.Millisecond), 50*time.Millisecond)
}

// hold passes the term's deadline to the guard when it moved past held,
// and returns the deadline the guard now has.
func (v *appVIP) hold(held time.Time) time.Time {
	d := v.termDeadline()
	if !d.After(held) {
		return held // no newer deadline, or no term any more: the last one stays
	}
	if err := v.vip.HoldUntil(d); err != nil {
		// The guard keeps its earlier deadline (or, if it could not be
		// started again, the kernel lifetime is left); retried with the
		// next look.
		v.p.log.Warn("VIP guard did not take the new deadline", "app", v.a.name, "vip", v.vip.Address(), "err", err)
		return held
	}
	return d
}

// renewed is called by the lease after each successful renewal; it must
// not block, so it only flags a renewal as due.
func (v *appVIP) renewed() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.renew == nil {
		return
	}
	select {
	case v.renew <- struct{}{}:
	default:
	}
}

// renewLoop keeps the address for the term: it moves the guard's deadline
// with the term's, re-sets the address (its kernel lifetime) every renew
// interval while an address set now would expire before the term's
// stop-by time (vipLifetime), and announces again once. It runs beside the
// lease's renewal loop, so that nothing here (netlink, a guard to restart)
// can delay a renewal. A renewal signal re-sets the address at once.
func (v *appVIP) renewLoop(renew <-chan struct{}, done chan<- struct{}, epoch uint64, reannounce time.Duration, held time.Time) {
	defer close(done)
	again := time.NewTimer(reannounce)
	defer again.Stop()
	poll := time.NewTicker(v.holdPoll())
	defer poll.Stop()
	lifetime := vipLifetime(v.p.cfg.timing)
	var lastSet time.Time
	for {
		select {
		case <-poll.C:
			held = v.hold(held)
			if time.Since(lastSet) < v.p.cfg.timing.RenewInterval {
				continue
			}
		case <-again.C:
			if !v.mayExtend(lifetime) {
				continue
			}
			// Add re-sets the address and runs the announcement burst again
			// (see vipLifetime for why).
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if err := v.vip.Add(ctx); err != nil {
				v.p.log.Warn("VIP re-announcement failed", "app", v.a.name, "vip", v.vip.Address(), "err", err)
			}
			cancel()
			continue
		case _, ok := <-renew:
			if !ok {
				return
			}
			held = v.hold(held)
		}
		if !v.mayExtend(lifetime) {
			// Set now, the address could outlive the term: let it expire.
			continue
		}
		lastSet = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := v.vip.Renew(ctx)
		if errors.Is(err, vip.ErrNotOwned) && v.inTerm() {
			// Someone removed the address (an operator; the guard, at a
			// deadline a late renewal then moved on; the kernel, when the
			// lease went unrenewed for longer than its lifetime) while we
			// still lead: put it back and announce it again, since clients
			// may have moved on. A guard that acted has exited; hold has
			// started another for the current deadline.
			v.p.log.Warn("VIP vanished while active; adding it again", "app", v.a.name, "vip", v.vip.Address())
			err = v.vip.Add(ctx)
			v.p.emit(Event{App: v.a.name, Kind: EventVIPReclaimed, Version: epoch, Message: v.vip.Address(), Error: errString(err)})
		}
		cancel()
		if err != nil {
			v.p.log.Warn("VIP renewal failed", "app", v.a.name, "vip", v.vip.Address(), "err", err)
		}
	}
}

// down stops renewing and removes the address; Remove disarms the guard
// once the address is gone, and the guard has exited when it returns, so
// it cannot touch the address of a later term. When the removal fails the
// guard stays armed and removes the address at the last deadline. The
// record goes only once the address is gone, so a failed removal is
// retried by the next process.
func (v *appVIP) down(ctx context.Context) error {
	v.mu.Lock()
	renew, done := v.renew, v.done
	v.renew, v.done = nil, nil
	v.mu.Unlock()
	if renew != nil {
		close(renew)
		<-done
	}
	if err := v.vip.Remove(ctx); err != nil {
		return err
	}
	v.p.emit(Event{App: v.a.name, Kind: EventVIPRemoved, Message: v.vip.Address()})
	return v.p.vipRecords.remove(v.a.name)
}

func (v *appVIP) close() { _ = v.vip.Close() }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// vipRecord is an address this node added, as written to the record file.
type vipRecord struct {
	Address   string `json:"address"`
	Interface string `json:"interface"`
}

// vipRecordFile keeps the VIPs this node holds, by app, in a JSON file
// under the platform's state directory. It is rewritten whole, through a
// temporary file and a rename, so a crash leaves the old or the new
// version, never a torn one.
type vipRecordFile struct {
	mu   sync.Mutex
	path string
}

func (f *vipRecordFile) load() (map[string]vipRecord, error) {
	recs := map[string]vipRecord{}
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return recs, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read VIP records: %w", err)
	}
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("read VIP records %s: %w", f.path, err)
	}
	return recs, nil
}

func (f *vipRecordFile) store(recs map[string]vipRecord) error {
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return fmt.Errorf("write VIP records: %w", err)
	}
	b, _ := json.Marshal(recs)
	tmp := f.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write VIP records: %w", err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fmt.Errorf("write VIP records: %w", err)
	}
	return nil
}

func (f *vipRecordFile) add(app, address, iface string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	recs, err := f.load()
	if err != nil {
		return err
	}
	recs[app] = vipRecord{Address: address, Interface: iface}
	return f.store(recs)
}

func (f *vipRecordFile) remove(app string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	recs, err := f.load()
	if err != nil {
		return err
	}
	if _, ok := recs[app]; !ok {
		return nil
	}
	delete(recs, app)
	return f.store(recs)
}

// removeRecordedVIPs removes every address a previous process on this node
// recorded and did not remove (it crashed, or was killed), before this one
// campaigns: until it wins, this node must not answer on any VIP. The
// lifetime would remove them too, but only after up to vipLifetime, and
// a previous process may have run without one.
func (p *Platform) removeRecordedVIPs(ctx context.Context) error {
	f := p.vipRecords
	f.mu.Lock()
	defer f.mu.Unlock()
	recs, err := f.load()
	if err != nil || len(recs) == 0 {
		return err
	}
	var errs []error
	for app, r := range recs {
		prefix, err := netip.ParsePrefix(r.Address)
		if err != nil {
			delete(recs, app) // unreadable: nothing we could remove
			continue
		}
		v, err := vip.New(vip.Config{Address: prefix, Interface: r.Interface, Logger: p.log})
		if errors.Is(err, vip.ErrNoInterface) {
			delete(recs, app) // the link went, and its addresses with it
			continue
		}
		if err == nil {
			err = v.Remove(ctx)
			_ = v.Close()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove stale VIP %s of app %s: %w", r.Address, app, err))
			continue
		}
		p.log.Info("removed a VIP left by a previous process", "app", app, "vip", r.Address, "interface", r.Interface)
		p.emit(Event{App: app, Kind: EventVIPStaleRemove, Message: r.Address + " on " + r.Interface})
		delete(recs, app)
	}
	if err := f.store(recs); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
