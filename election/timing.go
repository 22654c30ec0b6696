// Package election implements leases with fencing epochs on a NATS JetStream
// KV bucket: one holder per key, a local deadline at which a holder stops
// acting even when it cannot reach NATS, and standbys that take over the
// moment the lease is provably free.
package election

import (
	"errors"
	"fmt"
	"time"
)

// Timing holds the lease arithmetic. All of it is pure so that it can be
// tested without a clock or a network.
type Timing struct {
	// TTL is how long a lease stays valid after its holder last renewed it.
	TTL time.Duration
	// RenewInterval is how often a holder renews. Failed renewals are
	// retried sooner, until the deadline.
	RenewInterval time.Duration
	// ClockMargin absorbs differences in clock rate between holder and
	// observers (and scheduling delay on the holder).
	ClockMargin time.Duration
	// StopBudget is how long the holder needs to stop acting (run its
	// passive hooks, stop its backend, drop its VIP). The holder starts
	// stopping this long before anyone else may take over.
	StopBudget time.Duration
	// ProbeInterval is how often standbys ask whether the holder's process
	// is still connected. Zero disables the fast path.
	ProbeInterval time.Duration
}

// DefaultTiming gives SIGKILL failover in about ProbeInterval + StopBudget
// and silent-partition failover within TTL.
func DefaultTiming() Timing {
	return Timing{
		TTL:           2 * time.Second,
		RenewInterval: 400 * time.Millisecond,
		ClockMargin:   100 * time.Millisecond,
		StopBudget:    150 * time.Millisecond,
		ProbeInterval: 40 * time.Millisecond,
	}
}

// WithDefaults fills zero fields: RenewInterval TTL/5, ClockMargin TTL/20,
// StopBudget TTL/13 (about 150 ms at the default TTL).
func (t Timing) WithDefaults() Timing {
	d := DefaultTiming()
	if t.TTL == 0 {
		return d
	}
	if t.RenewInterval == 0 {
		t.RenewInterval = t.TTL / 5
	}
	if t.ClockMargin == 0 {
		t.ClockMargin = t.TTL / 20
	}
	if t.StopBudget == 0 {
		t.StopBudget = t.TTL * 3 / 40
	}
	return t
}

// ErrBadTiming is returned for a timing that cannot keep a lease safe.
var ErrBadTiming = errors.New("election: invalid lease timing")

// Validate checks that a holder has room to renew and to stop before its
// lease can pass to someone else.
func (t Timing) Validate() error {
	switch {
	case t.TTL < 200*time.Millisecond:
		return fmt.Errorf("%w: TTL %v is below 200ms", ErrBadTiming, t.TTL)
	case t.RenewInterval <= 0 || t.RenewInterval > t.TTL/2:
		return fmt.Errorf("%w: renew interval %v must be in (0, TTL/2 = %v]", ErrBadTiming, t.RenewInterval, t.TTL/2)
	case t.ClockMargin < 0 || t.StopBudget < 0 || t.ProbeInterval < 0:
		return fmt.Errorf("%w: negative margin, stop budget or probe interval", ErrBadTiming)
	case t.RenewInterval+t.ClockMargin+t.StopBudget >= t.TTL:
		return fmt.Errorf("%w: renew interval %v + clock margin %v + stop budget %v leave no time within TTL %v",
			ErrBadTiming, t.RenewInterval, t.ClockMargin, t.StopBudget, t.TTL)
	}
	return nil
}

// LeaseDeadline is when a holder must have stopped acting, counted from the
// moment it *sent* its last successful renewal. The server stamped that
// renewal no earlier than the send, and observers count their TTL from when
// they saw it, later still; so stopping by this deadline, StopBudget and
// ClockMargin ahead of TTL, keeps holder and successor from overlapping.
func (t Timing) LeaseDeadline(lastRenewSent time.Time) time.Time {
	return lastRenewSent.Add(t.TTL - t.ClockMargin - t.StopBudget)
}

// TakeoverAt is when an observer that saw a lease revision at observedAt may
// take it by compare-and-set on that revision if it has not changed: by
// then the holder has passed its own deadline.
func TakeoverAt(observedAt time.Time, ttl time.Duration) time.Time { return observedAt.Add(ttl) }

// NextRenew is when the holder renews next: at the regular interval after a
// success, sooner after a failure so that a brief outage does not cost the
// lease.
func (t Timing) NextRenew(lastRenewSent, now time.Time, lastFailed bool) time.Time {
	if lastFailed {
		retry := t.RenewInterval / 4
		if retry < 10*time.Millisecond {
			retry = 10 * time.Millisecond
		}
		return now.Add(retry)
	}
	return lastRenewSent.Add(t.RenewInterval)
}
