package scheduler

import (
	"cmp"
	"slices"
)

// rollOut updates the next batch of the job's outdated instances in place:
// their Version becomes the job's, and the agent restarts them with the new
// spec. A batch starts only when every instance already at the job's
// version is healthy, so at most max_parallel instances are down for the
// update at any time; instances created at the new version this call
// (moves, failovers) hold the batch too, as they are not healthy yet. A
// halted rollout (checkRollout) updates nothing more.
//
// Outdated instances that are not healthy go first (restarting them costs
// no capacity), then by node. A singleton's leader goes last and alone,
// once every standby runs the new version and is healthy, so that its
// restart hands over to an updated standby.
func (w *jobWork) rollOut() {
	if w.rolloutFailure != "" {
		return
	}
	var outdated []*slot
	for _, s := range w.slots {
		if !w.isInstance(s) {
			continue
		}
		if s.alloc.Version != w.job.Version {
			outdated = append(outdated, s)
		} else if !w.healthy(s) {
			return
		}
	}
	if len(outdated) == 0 {
		return
	}
	leader := func(s *slot) bool { return w.singleton && s.active() }
	slices.SortFunc(outdated, func(a, b *slot) int {
		return cmp.Or(
			compareBool(leader(a), leader(b)),
			compareBool(w.healthy(a), w.healthy(b)),
			cmp.Compare(a.alloc.Node, b.alloc.Node),
		)
	})
	if n := len(outdated); n > 1 && leader(outdated[n-1]) {
		outdated = outdated[:n-1]
	}
	for _, s := range outdated[:min(w.policy.maxParallel, len(outdated))] {
		s.alloc.Version = w.job.Version
		s.alloc.UpdatedAt = w.now
	}
}
