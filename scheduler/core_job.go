package scheduler

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ozanturksever/go-cluster/placement"
)

// slot is one allocation of a job while Reconcile works on it.
type slot struct {
	alloc Alloc
	state *InstanceState // nil when the agent reported nothing
	// source is, for a surge, the allocation it replaces; target is, for
	// such a source, its surge. A linked pair is one instance as far as
	// placement is concerned, located at the surge's node: the source is
	// on its way out and waits there only until the surge is healthy.
	source, target *slot
	fate           fate
}

// fate is what becomes of a slot's allocation.
type fate uint8

const (
	fateKeep fate = iota
	fateRemove
	// fateLeaving: placement stopped it, but it stays until a successor is
	// healthy (a singleton's leader; see jobWork.stop).
	fateLeaving
)

func (s *slot) active() bool { return s.state != nil && s.state.Active }

// jobWork is one job while Reconcile works on it.
type jobWork struct {
	job       Job
	now       time.Time
	app       placement.App // translated, before failover exclusions
	singleton bool
	policy    updatePolicy
	// slots holds the job's allocations on live nodes, by node; slots
	// created during apply are appended and allocs sorts the result.
	slots  []*slot
	byNode map[string]*slot
	// rolloutFailure says why the rollout to the job's version halted;
	// empty while it may go on.
	rolloutFailure string
	// excluded are the nodes whose failed instance must fail over: the job
	// is infeasible there for this call.
	excluded []string
}

// prepareJob builds the job's working state from its allocations and the
// agents' reports, and takes the decisions that come before placement.
func prepareJob(job Job, allocs []Alloc, states map[allocKey]InstanceState, now time.Time) *jobWork {
	w := newJobWork(job, allocs, states, now)
	w.verifyUpdates()
	w.linkSurges()
	w.finishSurges()
	w.checkRollout()
	w.excludeFailed()
	return w
}

// newJobWork builds the job's working state, deciding nothing yet. The job
// must have a spec; allocs must be the job's, sorted by node, one per node.
func newJobWork(job Job, allocs []Alloc, states map[allocKey]InstanceState, now time.Time) *jobWork {
	app := Translate(job.Spec)
	app.Name = job.Name
	w := &jobWork{
		job:       job,
		now:       now,
		app:       app,
		singleton: app.Mode == placement.ModeSingleton,
		policy:    policyOf(job.Spec),
		slots:     make([]*slot, len(allocs)),
		byNode:    make(map[string]*slot, len(allocs)),
	}
	for i, a := range allocs {
		s := &slot{alloc: a}
		if st, ok := states[allocKey{a.Job, a.Node}]; ok {
			s.state = &st
		}
		w.slots[i] = s
		w.byNode[a.Node] = s
	}
	return w
}

func (w *jobWork) healthy(s *slot) bool {
	return healthy(s.alloc, s.state, w.singleton, w.policy.minHealthy, w.now)
}

// verifyUpdates clears UpdatedAt of in-place updates that proved healthy.
// From then on the instance is an ordinary one: should it fail later, it
// fails over like any other instead of counting as a failed rollout.
func (w *jobWork) verifyUpdates() {
	for _, s := range w.slots {
		if !s.alloc.UpdatedAt.IsZero() && w.healthy(s) {
			s.alloc.UpdatedAt = time.Time{}
		}
	}
}

// linkSurges pairs every surge with the allocation it replaces. Replaces is
// dropped where it cannot hold: the source is gone (its node died or it was
// removed), is the surge itself, is itself a surge, or is already claimed
// by a surge on an earlier node. Reconcile never writes the last three; a
// surge whose link is dropped becomes an ordinary instance, which is safe:
// dropping a link never removes anything by itself.
func (w *jobWork) linkSurges() {
	for _, r := range w.slots {
		if r.alloc.Replaces == "" {
			continue
		}
		src := w.byNode[r.alloc.Replaces]
		if src == nil || src == r || src.alloc.Replaces != "" || src.target != nil {
			r.alloc.Replaces = ""
			continue
		}
		link(r, src)
	}
}

// link makes r the surge replacing src.
func link(r, src *slot) {
	r.source, src.target = src, r
	r.alloc.Replaces = src.alloc.Node
}

// unlink makes the surge r an ordinary instance; its source, if still
// kept, becomes one too.
func unlink(r *slot) {
	if r.source != nil {
		r.source.target = nil
	}
	r.source = nil
	r.alloc.Replaces = ""
}

// finishSurges completes the start-before-stop of every surge that is
// healthy: its source goes and it becomes an ordinary instance. This is the
// only place a source is removed while its surge stays.
func (w *jobWork) finishSurges() {
	for _, r := range w.slots {
		if r.source != nil && w.healthy(r) {
			r.source.fate = fateRemove
			unlink(r)
		}
	}
}

// checkRollout finds out whether the rollout to the job's version failed:
// an instance it updated (UpdatedAt still set, so not yet proved healthy),
// in place or by a surge, failed, or did not become healthy within the
// deadline, counted from UpdatedAt (for a surge, from its creation). A
// failed surge stays beside its source, which keeps running the old
// version: placement sees the pair as one instance, as for any surge. The
// finding is derived anew on every call from that evidence and lasts as
// long as it does: a new job version updates the failed instance again
// (and restarts the rollout); an instance that turns healthy late lets the
// rollout go on. Instances created at the new version (moves, failovers)
// are not evidence: they may fail for reasons of their node and fail over;
// until they are healthy they hold the rollout anyway.
func (w *jobWork) checkRollout() {
	var reasons []string
	for _, s := range w.slots {
		if s.fate == fateRemove || s.alloc.Version != w.job.Version || s.alloc.UpdatedAt.IsZero() {
			continue
		}
		switch {
		case failed(s.alloc, s.state):
			reason := fmt.Sprintf("instance on %s failed", s.alloc.Node)
			if s.state.Reason != "" {
				reason += ": " + s.state.Reason
			}
			reasons = append(reasons, reason)
		case w.policy.deadline > 0 && w.now.Sub(s.alloc.UpdatedAt) >= w.policy.deadline:
			reasons = append(reasons, fmt.Sprintf("instance on %s not healthy within %s", s.alloc.Node, w.policy.deadline))
		}
	}
	if len(reasons) > 0 {
		w.rolloutFailure = fmt.Sprintf("rollout of version %d halted: %s", w.job.Version, strings.Join(reasons, "; "))
	}
}

// excludeFailed picks the instances that failed at the job's version and
// must fail over to another node (restart policy exhausted on theirs). The
// job is made infeasible on their nodes for this call only, by a
// "node.id != NODE" constraint: placement then moves them like instances
// on a draining node, to the best other node, and explains it in its own
// words. Next call the node is feasible again, so a later failover may
// come back to it.
//
// Only apps with a count fail over: a singleton, spread or ring app already
// has an instance on every feasible node, so there is no other node to go
// to; the failed instance stays, visible, and a singleton's election
// promotes another candidate. Failed updates (in place or by surge) do not
// fail over either: they are the evidence of a failed rollout (see
// checkRollout), and moving the new version on would only spread it.
func (w *jobWork) excludeFailed() {
	if w.app.Mode != placement.ModeReplicas && w.app.Count == 0 {
		return
	}
	for _, s := range w.slots {
		if w.isInstance(s) && s.alloc.Version == w.job.Version && s.alloc.UpdatedAt.IsZero() && failed(s.alloc, s.state) {
			w.excluded = append(w.excluded, s.alloc.Node)
		}
	}
}

// isInstance reports whether the slot is one of the job's instances from
// here on: kept, and not a source waiting for its surge (a pair counts as
// its surge). Before placement these are the instances placement sees.
func (w *jobWork) isInstance(s *slot) bool {
	return s.fate == fateKeep && s.target == nil
}

// isExcluded reports whether the slot's node is excluded for failing.
func (w *jobWork) isExcluded(s *slot) bool {
	_, found := slices.BinarySearch(w.excluded, s.alloc.Node)
	return found
}

// placementApp is the app placement plans: the translated spec plus the
// failover exclusions.
func (w *jobWork) placementApp() placement.App {
	app := w.app
	if len(w.excluded) > 0 {
		app.Constraints = slices.Clone(app.Constraints)
		for _, node := range w.excluded {
			app.Constraints = append(app.Constraints, placement.Constraint{
				Attribute: "node.id", Operator: placement.OpNotEqual, Value: node,
			})
		}
	}
	return app
}

// allocs returns the allocations the job keeps (leaving ones included),
// sorted by node.
func (w *jobWork) allocs() []Alloc {
	out := make([]Alloc, 0, len(w.slots))
	for _, s := range w.slots {
		if s.fate != fateRemove {
			out = append(out, s.alloc)
		}
	}
	slices.SortFunc(out, func(a, b Alloc) int { return cmp.Compare(a.Node, b.Node) })
	return out
}
