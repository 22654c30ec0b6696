package election

import (
	"errors"
	"testing"
	"time"
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
