package scheduler

import (
	"github.com/ozanturksever/go-cluster/placement"
)

// apply turns the job's placement plan into allocations:
//
//   - Keep keeps the presented allocation.
//   - Place creates an allocation at the job's version.
//   - Move starts before it stops: a surge on the new node replaces the
//     allocation, which stays until the surge is healthy (finishSurges, on
//     a later call). See move for the pairs and failed instances.
//   - Stop removes, except where stop says to wait.
//
// Presented allocations the plan does not mention are kept; placement
// mentions all of them, so this only guards against losing instances to a
// misread plan.
func (w *jobWork) apply(plan placement.AppPlan, live map[string]NodeInfo) {
	presented := make(map[string]*slot, len(w.slots))
	for _, s := range w.slots {
		if w.isInstance(s) {
			presented[s.alloc.Node] = s
		}
	}
	var stops, failedStops []*slot
	for _, d := range plan.Decisions {
		switch d.Action {
		case placement.ActionKeep:
			// The presented allocation stays as it is.
		case placement.ActionPlace:
			w.slotAt(d.Node)
		case placement.ActionMove:
			if s := presented[d.From]; s != nil {
				w.move(s, d.Node)
			} else {
				w.slotAt(d.Node)
			}
		case placement.ActionStop:
			s := presented[d.Node]
			switch {
			case s == nil:
			case w.isExcluded(s):
				failedStops = append(failedStops, s)
			default:
				stops = append(stops, s)
			}
		}
	}
	// A failed instance placement could not move (no other node has room)
	// stays where it is, failed and visible, rather than leaving a gap that
	// the next call would fill with a restart on the very same node. Only
	// as many stay as the job is short of; the others were stopped for
	// good reasons of their own (the count went down). One on a node that
	// must be emptied goes anyway: the drain wins.
	short := plan.Want - plan.Have
	for _, s := range failedStops {
		if n, ok := live[s.alloc.Node]; short > 0 && ok && n.Eligible && !n.Draining {
			short--
			continue
		}
		stops = append(stops, s)
	}
	w.stop(stops)
}

// slotAt returns the slot that is to run an instance on node: a new
// allocation at the job's version, or the allocation already there.
// Placement only picks a node with an allocation when it did not see it: a
// source whose surge is in flight (its node became usable again, say a
// drain was cancelled) or one retired this call. That allocation stays,
// running whatever version it runs (the rollout updates it if needed), and
// its surge becomes an ordinary instance.
func (w *jobWork) slotAt(node string) *slot {
	if s := w.byNode[node]; s != nil {
		if s.target != nil {
			unlink(s.target)
		}
		s.fate = fateKeep
		return s
	}
	s := &slot{alloc: Alloc{Job: w.job.Name, Node: node, Version: w.job.Version}}
	w.slots = append(w.slots, s)
	w.byNode[node] = s
	return s
}

// move carries out a Move of the presented slot s to node to. The new
// instance replaces the oldest allocation still running for s:
//
//   - s itself, which stays until the new one is healthy;
//   - for a surge that must move on before it became healthy, its source,
//     which is still running and still waiting; the surge goes now, since
//     it never carried any load;
//   - nothing for a failed instance: nothing runs to bridge the gap, so it
//     goes now and the new one starts afresh.
func (w *jobWork) move(s *slot, to string) {
	root := s
	switch {
	case s.source != nil:
		root = s.source
		unlink(s)
		s.fate = fateRemove
	case failed(s.alloc, s.state):
		root = nil
		s.fate = fateRemove
	}
	t := w.slotAt(to)
	if root != nil && root != t {
		link(t, root)
	}
}

// stop removes the presented slots placement stopped. A surge's stop stops
// its whole pair: the instance is not wanted any more (the count went
// down, or its node must be emptied too and no other has room), so the
// source is not waiting for anything.
//
// A singleton leader is the exception: it goes only once another candidate
// is healthy, so that its removal (the agent steps down gracefully) hands
// over to a candidate ready to take over. While other candidates exist but
// none is healthy yet, it is kept, leaving; with no other candidate at all
// there is nothing to wait for and it goes (the operator emptying the node
// wins over the app's availability, and the plan reports the job unmet).
func (w *jobWork) stop(stops []*slot) {
	var candidates []*slot
	for _, s := range stops {
		s.fate = fateRemove
		if src := s.source; src != nil {
			unlink(s)
			src.fate = fateRemove
			s = src
		}
		candidates = append(candidates, s)
	}
	if !w.singleton {
		return
	}
	for _, c := range candidates {
		if !c.active() {
			continue
		}
		successors, ready := 0, false
		for _, s := range w.slots {
			if s.fate == fateKeep && s.target == nil {
				successors++
				ready = ready || w.healthy(s)
			}
		}
		if successors > 0 && !ready {
			c.fate = fateLeaving
		}
	}
}
