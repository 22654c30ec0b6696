package election

import (
	"errors"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/state"
)

func TestLeaseDeadlineStopsBeforeAnyTakeover(t *testing.T) {
	base := time.Unix(1000, 0)
	cases := []Timing{
		DefaultTiming(),
		Timing{TTL: 300 * time.Millisecond}.WithDefaults(),
		Timing{TTL: 10 * time.Second}.WithDefaults(),
		{TTL: time.Second, RenewInterval: 200 * time.Millisecond, ClockMargin: 0, StopBudget: 0, ProbeInterval: 0},
	}
	for _, tm := range cases {
		if err := tm.Validate(); err != nil {
			t.Fatalf("%+v: %v", tm, err)
		}
		// The observer sees the renewal at the earliest at its send time.
		for _, seenAfter := range []time.Duration{0, time.Millisecond, 50 * time.Millisecond} {
			deadline := tm.LeaseDeadline(base)
			takeover := TakeoverAt(base.Add(seenAfter), tm.TTL)
			if !deadline.Add(tm.StopBudget).Before(takeover) && tm.ClockMargin > 0 {
				t.Fatalf("%+v: holder done at %v, takeover at %v", tm, deadline.Add(tm.StopBudget), takeover)
			}
			if deadline.Add(tm.StopBudget).After(takeover) {
				t.Fatalf("%+v: holder still acting after takeover", tm)
			}
		}
	}
}

func TestValidateRejectsUnsafeTimings(t *testing.T) {
	bad := []Timing{
		{TTL: 100 * time.Millisecond, RenewInterval: 10 * time.Millisecond},
		{TTL: time.Second, RenewInterval: 600 * time.Millisecond},
		{TTL: time.Second, RenewInterval: 400 * time.Millisecond, ClockMargin: 300 * time.Millisecond, StopBudget: 300 * time.Millisecond},
		{TTL: time.Second, RenewInterval: 100 * time.Millisecond, StopBudget: -1},
	}
	for _, tm := range bad {
		if err := tm.Validate(); !errors.Is(err, ErrBadTiming) {
			t.Errorf("%+v: got %v, want ErrBadTiming", tm, err)
		}
	}
}

func TestNextRenewRetriesSoonerAfterFailure(t *testing.T) {
	tm := DefaultTiming()
	sent := time.Unix(0, 0)
	now := sent.Add(tm.RenewInterval + 5*time.Millisecond)
	if got := tm.NextRenew(sent, now, false); !got.Equal(sent.Add(tm.RenewInterval)) {
		t.Fatalf("after success: %v", got)
	}
	retry := tm.NextRenew(sent, now, true)
	if !retry.After(now) || retry.Sub(now) >= tm.RenewInterval {
		t.Fatalf("after failure: retry in %v, want sooner than %v", retry.Sub(now), tm.RenewInterval)
	}
	// Enough retries fit before the deadline to ride out a short outage.
	if n := tm.LeaseDeadline(sent).Sub(now) / retry.Sub(now); n < 5 {
		t.Fatalf("only %d retries fit before the deadline", n)
	}
}

func TestWithDefaultsIsValid(t *testing.T) {
	for _, ttl := range []time.Duration{200 * time.Millisecond, 300 * time.Millisecond, time.Second, 2 * time.Second, time.Minute} {
		tm := Timing{TTL: ttl}.WithDefaults()
		if err := tm.Validate(); err != nil {
			t.Errorf("TTL %v: %v", ttl, err)
		}
	}
}

// The default lease outlives the worst stream-leader election of the
// embedded servers: a node's death never demotes a healthy leader elsewhere
// just because that node led the leases stream.
func TestDefaultsRideOutElection(t *testing.T) {
	tm := DefaultTiming()
	outage := state.EmbeddedRaftTiming.WorstElectionOutage()
	if tm.Runway() <= outage {
		t.Fatalf("runway %v does not outlive an election outage of %v", tm.Runway(), outage)
	}
	// A renewal attempt gives up early enough to be re-sent after the
	// election, and more than once within the runway.
	if n := (tm.Runway() - outage) / tm.AttemptTimeout(); n < 1 {
		t.Fatalf("no renewal attempt fits after an election: slack %v, attempt %v", tm.Runway()-outage, tm.AttemptTimeout())
	}
}
