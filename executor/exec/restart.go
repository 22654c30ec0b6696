//go:build linux

package exec

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// restarter applies a RestartPolicy. It is used by the supervision
// goroutine only.
type restarter struct {
	policy RestartPolicy
	// window holds the times of the restarts made within the last
	// Interval. A sliding window (rather than one reset every Interval)
	// means no Interval-long span ever sees more than Attempts restarts.
	window []time.Time
	// consecutive counts failures since the last run that lasted longer
	// than Interval; it drives the exponential backoff.
	consecutive int
}

// next decides, after an unexpected exit at now of a run that lasted ran,
// whether to restart and after how long. When it refuses, why says so.
func (r *restarter) next(now time.Time, ran time.Duration) (wait time.Duration, ok bool, why string) {
	p := r.policy
	if p.Attempts <= 0 {
		return 0, false, "restarts disabled"
	}
	if ran > p.Interval {
		// A run that outlived the window was healthy for a while; the
		// next failure is a fresh incident, not part of a crash loop.
		r.consecutive = 0
	}
	r.prune(now)
	if len(r.window) >= p.Attempts {
		if p.Mode != RestartModeDelay {
			return 0, false, fmt.Sprintf("giving up after %d restarts within %s", len(r.window), p.Interval)
		}
		// Wait until the oldest restart leaves the window.
		wait = r.window[0].Add(p.Interval).Sub(now)
	}
	wait = max(wait, r.backoff())
	r.consecutive++
	return wait, true, ""
}

// record notes a restart made at t.
func (r *restarter) record(t time.Time) {
	r.prune(t)
	r.window = append(r.window, t)
}

func (r *restarter) prune(now time.Time) {
	i := 0
	for i < len(r.window) && now.Sub(r.window[i]) >= r.policy.Interval {
		i++
	}
	r.window = r.window[i:]
}

// backoff is Delay doubled per consecutive failure, capped at
// min(Interval, 30s) but never below Delay, plus up to 10% jitter.
func (r *restarter) backoff() time.Duration {
	d := r.policy.Delay
	if d <= 0 {
		return 0
	}
	limit := min(r.policy.Interval, maxBackoff)
	limit = max(limit, d)
	for i := 0; i < r.consecutive && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d + rand.N(d/10+1)
}
