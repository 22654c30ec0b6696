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
// where a probe can prove a holder gone (one NATS server), failover within
// TTL otherwise (a dead node, a silent partition), and a holder that keeps
// its lease through a stream-leader election of the embedded servers
// (RideOut).
//
// The TTL is the smallest that rides out the embedded servers' worst
// election outage (state.EmbeddedRaftTiming: 1.6 s) with room to spare:
// TTL 2.5 s leaves a runway of 1.94 s after a holder's last renewal could
// have been made. A holder renewing every TTL/10 loses little of it.
func DefaultTiming() Timing {
	return Timing{
		TTL:           2500 * time.Millisecond,
		RenewInterval: 250 * time.Millisecond,
		ClockMargin:   100 * time.Millisecond,
		StopBudget:    150 * time.Millisecond,
		ProbeInterval: 40 * time.Millisecond,
	}
}

// WithDefaults fills zero fields: RenewInterval TTL/10, ClockMargin TTL/25,
// StopBudget TTL*3/50 (100 and 150 ms at the default TTL).
func (t Timing) WithDefaults() Timing {
	d := DefaultTiming()
	if t.TTL == 0 {
		return d
	}
	if t.RenewInterval == 0 {
		t.RenewInterval = t.TTL / 10
	}
	if t.ClockMargin == 0 {
		t.ClockMargin = t.TTL / 25
	}
	if t.StopBudget == 0 {
		t.StopBudget = t.TTL * 3 / 50
	}
	return t
}

// RetryInterval is how soon a holder retries a renewal that failed.
func (t Timing) RetryInterval() time.Duration {
	return max(t.RenewInterval/4, 10*time.Millisecond)
}

// AttemptTimeout is how long a holder waits on an unanswered renewal
// before it sends another beside it. A request sent while the stream has
// no leader is dropped, not refused, so the holder must keep asking to
// reach the next leader in time (see Candidate.keep). A candidate's
// takeover attempts are bounded by it too.
func (t Timing) AttemptTimeout() time.Duration {
	return max(t.RenewInterval, 200*time.Millisecond)
}

// Runway is how long a healthy holder is sure to keep acting when the
// leases stream accepts no write: from the moment the stream stops, its
// last successful renewal was sent at most RenewInterval (plus one attempt)
// before, and its deadline is TTL - ClockMargin - StopBudget after that
// send. A stream outage shorter than Runway (a stream-leader election)
// costs no healthy leader its term: the first renewal after the election
// lands before the deadline.
func (t Timing) Runway() time.Duration {
	return t.TTL - t.ClockMargin - t.StopBudget - t.RenewInterval - t.RetryInterval()
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
		return now.Add(t.RetryInterval())
	}
	return lastRenewSent.Add(t.RenewInterval)
}
