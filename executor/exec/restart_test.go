//go:build linux

package exec

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	r := &restarter{policy: RestartPolicy{Attempts: 100, Interval: time.Second, Delay: 100 * time.Millisecond}}
	now := time.Now()
	// Doubles per consecutive failure, capped at Interval, +≤10% jitter.
	for i, base := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		base *= time.Millisecond
		wait, ok, _ := r.next(now, 0)
		if !ok || wait < base || wait > base+base/10 {
			t.Errorf("failure %d: wait %s, want %s..%s", i, wait, base, base+base/10)
		}
		r.record(now)
	}
	// A run longer than Interval resets the backoff (and the window).
	now = now.Add(2 * time.Second)
	wait, ok, _ := r.next(now, 2*time.Second)
	if !ok || wait > 110*time.Millisecond {
		t.Errorf("after a long run: wait %s", wait)
	}
}

func TestRestartWindow(t *testing.T) {
	t.Parallel()
	p := RestartPolicy{Attempts: 2, Interval: time.Minute, Mode: RestartModeFail}
	r := &restarter{policy: p}
	t0 := time.Now()
	for i := range 2 {
		if _, ok, _ := r.next(t0, 0); !ok {
			t.Fatalf("restart %d refused", i)
		}
		r.record(t0)
	}
	if _, ok, why := r.next(t0.Add(time.Second), 0); ok || why == "" {
		t.Fatalf("third restart within the window allowed")
	}
	// Once the window has passed, restarts are allowed again.
	if _, ok, _ := r.next(t0.Add(time.Minute), 0); !ok {
		t.Fatalf("restart after the window refused")
	}

	// Delay mode waits for the oldest restart to leave the window.
	p.Mode = RestartModeDelay
	r = &restarter{policy: p}
	r.record(t0)
	r.record(t0.Add(10 * time.Second))
	wait, ok, _ := r.next(t0.Add(20*time.Second), 0)
	if !ok || wait != 40*time.Second {
		t.Errorf("delay mode: wait %s, ok %v; want 40s", wait, ok)
	}

	// Attempts 0: never.
	r = &restarter{policy: RestartPolicy{Mode: RestartModeDelay}}
	if _, ok, _ := r.next(t0, 0); ok {
		t.Error("restart allowed with Attempts 0")
	}
}
