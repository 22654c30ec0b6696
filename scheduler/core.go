// Package scheduler turns the jobs an operator submitted and the nodes that
// are alive into the allocations agents should run.
//
// This file and the other core*.go files are the scheduler's pure core, in
// the style of etcd's raft: the core decides, the caller does the I/O.
// Reconcile reads one snapshot of the cluster (jobs, live nodes, current
// allocations, agents' reports and the time) and returns the next desired
// allocations; it does no I/O, reads no clock, starts no goroutine and gives
// equal outputs for equal inputs whatever the order of their slices. The
// elected scheduler loop around it reads the snapshot, writes the result and
// calls it again when anything changes or time passes.
//
// Everything the core must remember from one call to the next is in the
// allocations it wrote: Replaces marks a start-before-stop surge, UpdatedAt
// a rollout's update (in place or by surge) that has not proved healthy
// yet. There is no other memory, so a new scheduler leader picks up
// exactly where the old one left.
//
// One call, per job (Nomad's reconciler, in small steps):
//
//  1. prepare (core_job.go): link surges to the allocations they replace,
//     retire sources whose replacement is healthy, clear UpdatedAt of
//     updates that proved healthy, find a failed rollout, and pick failed
//     instances that must fail over;
//  2. place (core_place.go): all jobs together through placement.Place,
//     which sees a surge and its source as one instance on the surge's node;
//  3. apply (core_apply.go): Keep, Place, Move and Stop become allocations;
//     a Move starts the new instance before the old one stops, a singleton
//     leader waits for a healthy successor;
//  4. roll out (core_rollout.go): once the previous batch is healthy,
//     update the next batch of outdated allocations: a replicas job's
//     start before they stop, as surges on free nodes that placement
//     finds (surgeNodes, core_place.go), the rest in place (their Version
//     is bumped to the job's);
//  5. report (core_progress.go).
package scheduler

import (
	"cmp"
	"slices"
	"time"

	"github.com/ozanturksever/go-cluster/jobspec"
	"github.com/ozanturksever/go-cluster/placement"
)

// Job is one job (= one app) the cluster should run, at its current version.
type Job struct {
	Name    string
	Version uint64 // increases by one on every change of Spec
	Spec    *jobspec.App
	Stopped bool // stopped jobs get no instances; all their allocations go
}

// NodeInfo is a live agent as the scheduler sees it (dead nodes are simply
// absent).
type NodeInfo struct {
	ID, Address string
	Labels      map[string]string
	Eligible    bool // operator eligibility (false = gets nothing new and loses what it runs)
	Draining    bool
}

// Alloc is one instance of a job assigned to a node. At most one Alloc per
// (Job, Node).
type Alloc struct {
	Job     string `json:"job"`
	Node    string `json:"node"`
	Version uint64 `json:"version"` // job version the node should run
	// Replaces is set on a surge allocation: the node whose allocation of
	// the same job this one replaces. The replaced allocation is kept until
	// this one is healthy (start-before-stop).
	Replaces string `json:"replaces,omitempty"`
	// UpdatedAt is set when a rolling update bumps Version in place, or
	// creates a surge to replace an outdated instance of a replicas job,
	// and cleared once the instance proved healthy at that version. While
	// set it is when the update started, the start of the update's
	// HealthyDeadline. The report's Since cannot serve: until the agent has
	// restarted the instance it still reports the old version, whose Since
	// says nothing about the update (and a surge has no report at all until
	// its agent started it). Other allocations created at the job's version
	// (placements, moves, failovers) leave it zero, which is also how a
	// rollout's own instances are told from instances that merely run the
	// new version.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// InstanceState is what an agent reported for one of its allocations.
type InstanceState struct {
	Job     string `json:"job"`
	Node    string `json:"node"`
	Version uint64 `json:"version"`
	// State is one of the State* constants.
	State  string    `json:"state"`
	Active bool      `json:"active"` // singleton leader / any running instance of the other modes
	Since  time.Time `json:"since"`  // when State was entered
	Reason string    `json:"reason,omitempty"`
	// Restarts counts process restarts on the node (for operators; the
	// scheduler does not use it).
	Restarts int `json:"restarts,omitempty"`
}

// Instance states agents report.
const (
	StateStarting = "starting"
	StateRunning  = "running"
	// StateStandby is a singleton candidate that runs and is healthy but is
	// not the leader.
	StateStandby = "standby"
	// StateFailed is an instance whose restart policy is exhausted on its
	// node.
	StateFailed  = "failed"
	StateStopped = "stopped"
)

// Input is one snapshot of the cluster.
type Input struct {
	Jobs   []Job
	Nodes  []NodeInfo      // the live nodes
	Allocs []Alloc         // the current assignment (as last written)
	States []InstanceState // reports from live agents
	Now    time.Time
}

// Output is the next desired state.
type Output struct {
	Allocs []Alloc                      // the new desired assignment, sorted by (Job, Node)
	Plans  map[string]placement.AppPlan // placement plan per job (for `gcl job plan` / status)
	Jobs   map[string]JobProgress       // per job
}

// JobProgress is how far a job is from what it wants.
type JobProgress struct {
	Want     int    `json:"want"`
	Running  int    `json:"running"`
	Updating bool   `json:"updating"`         // a rolling update is in progress
	Failed   string `json:"failed,omitempty"` // non-empty when the job cannot be placed (placement unmet: Explain text) or its rollout failed
	Complete bool   `json:"complete"`         // every wanted instance runs at the current version
}

// Reconcile decides the allocations the cluster should run next. See the
// package documentation for the steps; the rules worth knowing:
//
//   - Allocations on nodes missing from Input.Nodes are dropped: their
//     node is gone, and their jobs' instances are placed anew.
//   - Allocations of stopped jobs and of jobs no longer listed are removed.
//   - Allocations of a job that cannot be planned at all (no spec, or a
//     spec placement rejects) are kept as they are and the job reports
//     why: the scheduler cannot tell what they should become, and removing
//     running instances because of a typo would be worse.
//   - A job listed twice counts once, at its highest version; a node listed
//     twice counts once (see normalizeNodes).
func Reconcile(in Input) Output {
	nodes := normalizeNodes(in.Nodes)
	live := nodeIndex(nodes)
	jobs := normalizeJobs(in.Jobs)
	allocs := groupAllocs(in.Allocs, live)
	states := indexStates(in.States)

	out := Output{
		Plans: make(map[string]placement.AppPlan, len(jobs)),
		Jobs:  make(map[string]JobProgress, len(jobs)),
	}
	var planned []*jobWork
	for _, job := range jobs {
		current := allocs[job.Name]
		switch {
		case job.Stopped:
			out.Plans[job.Name] = stoppedPlan(job.Name, current)
			out.Jobs[job.Name] = JobProgress{Complete: true}
		case job.Spec == nil:
			out.Allocs = append(out.Allocs, current...)
			out.Jobs[job.Name] = unplannedProgress(job, current, states, "job has no spec")
		default:
			planned = append(planned, prepareJob(job, current, states, in.Now))
		}
	}

	plan, rejected, err := place(planned, nodes)
	var applied []*jobWork
	var plans []placement.AppPlan
	for _, w := range planned {
		reason := rejected[w.job.Name]
		if err != nil {
			reason = err.Error()
		}
		if reason != "" {
			// Keep what was written, minus what prepare retired: a
			// source whose surge is healthy goes whatever the spec says.
			kept := w.allocs()
			out.Allocs = append(out.Allocs, kept...)
			out.Jobs[w.job.Name] = unplannedProgress(w.job, kept, states, reason)
			continue
		}
		ap, _ := plan.App(w.job.Name)
		w.apply(ap, live)
		applied = append(applied, w)
		plans = append(plans, ap)
	}
	batches := make([][]*slot, len(applied))
	for i, w := range applied {
		batches[i] = w.nextBatch()
	}
	free := surgeNodes(applied, batches, nodes)
	for i, w := range applied {
		var f []string
		if free != nil {
			f = free[i]
		}
		w.rollOut(batches[i], f)
		out.Allocs = append(out.Allocs, w.allocs()...)
		out.Plans[w.job.Name] = plans[i]
		out.Jobs[w.job.Name] = w.progress(plans[i])
	}
	slices.SortFunc(out.Allocs, compareAllocs)
	return out
}

// compareAllocs orders allocations by job, then node.
func compareAllocs(a, b Alloc) int {
	return cmp.Or(cmp.Compare(a.Job, b.Job), cmp.Compare(a.Node, b.Node))
}

// stoppedPlan is the plan of a stopped job: every allocation stops. It is
// built here because placement never sees stopped jobs.
func stoppedPlan(job string, allocs []Alloc) placement.AppPlan {
	ap := placement.AppPlan{App: job}
	for _, a := range allocs {
		ap.Decisions = append(ap.Decisions, placement.Decision{Action: placement.ActionStop, Node: a.Node})
	}
	return ap
}
