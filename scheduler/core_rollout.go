package scheduler

import (
	"cmp"
	"slices"

	"github.com/ozanturksever/go-cluster/placement"
)

// This file is step 4 of Reconcile, the rolling update. It runs in two
// halves around one extra placement call (surgeNodes, core_place.go):
// nextBatch picks the outdated instances to update this call, surgeNodes
// finds free nodes for those that may surge, and rollOut carries the
// batch out.

// nextBatch returns the outdated instances to update this call, at most
// max_parallel of them. A batch starts only when every instance already at
// the job's version is healthy, so at most max_parallel instances are in
// the middle of an update at any time; instances created at the new
// version this call (moves, failovers) and surges of the previous batch
// hold the batch too, as they are not healthy yet (a surge that proved
// healthy has been finished by prepare, its source retired). A halted
// rollout (checkRollout) has no batch.
//
// Outdated instances that are not healthy go first (restarting them costs
// no capacity), then by node. A singleton's leader goes last and alone,
// once every standby runs the new version and is healthy, so that its
// restart hands over to an updated standby.
func (w *jobWork) nextBatch() []*slot {
	if w.rolloutFailure != "" {
		return nil
	}
	var outdated []*slot
	for _, s := range w.slots {
		if !w.isInstance(s) {
			continue
		}
		if s.alloc.Version != w.job.Version {
			outdated = append(outdated, s)
		} else if !w.healthy(s) {
			return nil
		}
	}
	if len(outdated) == 0 {
		return nil
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
	return outdated[:min(w.policy.maxParallel, len(outdated))]
}

// canSurge reports whether the batch member s is updated by a surge when a
// free node is found for it: s belongs to a replicas job and is not itself
// a surge. An outdated surge (a move still in flight when the version
// changed) is bumped in place instead: it carries no load yet, its source
// still runs, and a surge cannot be replaced by another (see linkSurges).
//
// Spread, singleton and ring jobs keep the update in place: they run on
// every feasible node already, so there is no free node to surge to. A
// ring with a count stays in place too, as a surge would make another
// node a ring member and hand it partitions, a membership change rather
// than an update; and a singleton's update order (standbys first, the
// leader last) relies on restarting its candidates where they are.
func (w *jobWork) canSurge(s *slot) bool {
	return w.app.Mode == placement.ModeReplicas && s.source == nil
}

// rollOut updates the batch (nextBatch). Each member that may surge
// (canSurge) takes the next of the free nodes surgeNodes found for the job
// and is updated start-before-stop: a new allocation at the job's version
// on that node replaces it, and it keeps running the old version until its
// replacement is healthy (finishSurges, on a later call), so a replicas job
// keeps count instances running through the update. Every member of a
// spread, singleton or ring job, and a replicas member for which no node
// can become free (count already covers every feasible node), is updated
// in place: its Version becomes the job's and the agent restarts it with
// the new spec.
//
// A replicas member without a free node waits for the next call instead
// while the job retires an allocation in this one (a source whose surge
// just proved healthy, typically): its node is free once the agent has
// stopped that instance, and updating in place meanwhile would take a
// serving instance down. A surge never reuses the retiring allocation's
// slot: one (job, node) holds one allocation, so the agent would see a
// version change and restart the old instance as the surge, a stop before
// a start dressed up as a surge.
//
// Both kinds get UpdatedAt = now, the start of their HealthyDeadline and
// what makes them the rollout's own instances: a surge that fails or is
// not healthy in time halts the rollout like an in-place update does
// (checkRollout), while its source stays, still running the old version.
func (w *jobWork) rollOut(batch []*slot, free []string) {
	for _, s := range batch {
		if w.canSurge(s) {
			if len(free) > 0 {
				w.surgeTo(s, free[0])
				free = free[1:]
				continue
			}
			if w.retiring() {
				continue
			}
		}
		s.alloc.Version = w.job.Version
		s.alloc.UpdatedAt = w.now
	}
}

// surgeTo starts the surge that updates src on node, which holds no
// allocation of the job (see freeNode).
func (w *jobWork) surgeTo(src *slot, node string) {
	t := &slot{alloc: Alloc{Job: w.job.Name, Node: node, Version: w.job.Version, UpdatedAt: w.now}}
	w.slots = append(w.slots, t)
	w.byNode[node] = t
	link(t, src)
}

// freeNode reports whether node holds no allocation of the job, so that a
// surge may go there. A node whose allocation is removed this call is not
// free yet (see rollOut).
func (w *jobWork) freeNode(node string) bool {
	return w.byNode[node] == nil
}

// retiring reports whether the job removes an allocation this call.
func (w *jobWork) retiring() bool {
	for _, s := range w.slots {
		if s.fate == fateRemove {
			return true
		}
	}
	return false
}
