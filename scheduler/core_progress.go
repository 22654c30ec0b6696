package scheduler

import (
	"strings"

	"github.com/ozanturksever/go-cluster/placement"
)

// progress reports the job after apply and rollOut, from the allocations
// it keeps (sources and leaving leaders included: they still run) and the
// agents' reports.
//
//   - Running counts allocations up at the job's version, healthy or not
//     yet; a source still running beside its surge counts too.
//   - Updating: some instance still runs an older version, or an update
//     has not proved healthy yet, and the rollout is not halted (a halted
//     rollout is not in progress; Failed says why it stopped).
//   - Failed: the rollout halted, and/or placement is unmet (Explain).
//   - Complete: every allocation is up at the job's version and has proved
//     healthy (up for min_healthy_time, so a process that crashes right
//     after it starts does not count as a success), there are as many as
//     wanted, and nothing is in flight: no surge, and no update still to
//     prove healthy (the update's equivalent of a surge).
func (w *jobWork) progress(plan placement.AppPlan) JobProgress {
	p := JobProgress{Want: plan.Want}
	allocs, proved, inFlight, updating := 0, 0, false, false
	for _, s := range w.slots {
		if s.fate == fateRemove {
			continue
		}
		allocs++
		inFlight = inFlight || s.alloc.Replaces != "" || !s.alloc.UpdatedAt.IsZero()
		if upAt(s.alloc, s.state, w.job.Version) {
			p.Running++
			if healthy(s.alloc, s.state, w.singleton, w.policy.minHealthy, w.now) {
				proved++
			}
		}
		if w.isInstance(s) && (s.alloc.Version != w.job.Version || !s.alloc.UpdatedAt.IsZero()) {
			updating = true
		}
	}
	var failures []string
	if w.rolloutFailure != "" {
		failures = append(failures, w.rolloutFailure)
	}
	if plan.Have < plan.Want {
		failures = append(failures, plan.Explain())
	}
	p.Failed = strings.Join(failures, "; ")
	p.Updating = updating && w.rolloutFailure == ""
	p.Complete = p.Running == allocs && proved == allocs && allocs == p.Want && !inFlight
	return p
}

// unplannedProgress reports a job that could not be planned: its
// allocations are kept as they are and reason says why.
func unplannedProgress(job Job, allocs []Alloc, states map[allocKey]InstanceState, reason string) JobProgress {
	p := JobProgress{Failed: reason}
	for _, a := range allocs {
		if st, ok := states[allocKey{a.Job, a.Node}]; ok && upAt(a, &st, job.Version) {
			p.Running++
		}
	}
	return p
}
