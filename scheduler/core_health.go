package scheduler

import (
	"time"

	"github.com/ozanturksever/go-cluster/jobspec"
)

// updatePolicy is a job's update block with its zero values made usable.
type updatePolicy struct {
	maxParallel int
	minHealthy  time.Duration
	// deadline is how long an updated instance has to become healthy; 0
	// means no deadline. jobspec fills in its default, so 0 only comes from
	// specs built by hand, and failing every such rollout at once would be
	// the wrong reading of "nothing said".
	deadline time.Duration
}

func policyOf(spec *jobspec.App) updatePolicy {
	p := updatePolicy{
		maxParallel: spec.Update.MaxParallel,
		minHealthy:  max(spec.Update.MinHealthyTime, 0),
		deadline:    max(spec.Update.HealthyDeadline, 0),
	}
	if p.maxParallel < 1 {
		// A rollout that updates nothing at a time never ends.
		p.maxParallel = 1
	}
	return p
}

// healthy reports whether the instance of alloc a proved itself: its agent
// reports the alloc's version, running (or, for a singleton, standing by)
// for at least minHealthy. A candidate standing by is as good as a running
// instance for a singleton: it can take over at once.
func healthy(a Alloc, st *InstanceState, singleton bool, minHealthy time.Duration, now time.Time) bool {
	if st == nil || st.Version != a.Version {
		return false
	}
	switch st.State {
	case StateRunning:
	case StateStandby:
		if !singleton {
			return false
		}
	default:
		return false
	}
	return now.Sub(st.Since) >= minHealthy
}

// failed reports whether the agent gave the instance of alloc a up: its
// restart policy is exhausted on that node. A failure reported for another
// version is stale (the alloc has been bumped since) and does not count.
func failed(a Alloc, st *InstanceState) bool {
	return st != nil && st.Version == a.Version && st.State == StateFailed
}

// upAt reports whether the instance of alloc a is up at version v, whether
// or not it has proved healthy yet: what JobProgress.Running counts.
func upAt(a Alloc, st *InstanceState, v uint64) bool {
	return st != nil && a.Version == v && st.Version == v &&
		(st.State == StateRunning || st.State == StateStandby)
}
