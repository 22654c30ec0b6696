package scheduler

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/jobspec"
	"github.com/ozanturksever/go-cluster/placement"
)

// newWork builds a job's working state without deciding anything.
func newWork(job Job, now time.Time, allocs []Alloc, states ...InstanceState) *jobWork {
	return newJobWork(job, allocs, indexStates(states), now)
}

// sourceNodes lists the nodes of slots waiting for their surge.
func sourceNodes(w *jobWork) []string {
	var out []string
	for _, s := range w.slots {
		if s.target != nil {
			out = append(out, s.alloc.Node)
		}
	}
	return out
}

func TestVerifyUpdates(t *testing.T) {
	job := replicasJob("x", 2, 2)
	allocs := []Alloc{{Job: "x", Node: "n1", Version: 2, UpdatedAt: t0}, {Job: "x", Node: "n2", Version: 2, UpdatedAt: t0}}
	w := newWork(job, t0.Add(time.Minute), allocs, up("x", "n1", 2, t0), up("x", "n2", 2, t0.Add(55*time.Second)))
	w.verifyUpdates()
	assertAllocs(t, w.allocs(), alloc("x", "n1", 2), allocs[1])
}

func TestLinkSurges(t *testing.T) {
	job := replicasJob("x", 1, 3)
	tests := []struct {
		name    string
		allocs  []Alloc
		want    []Alloc
		sources []string
	}{
		{"a surge and its source",
			[]Alloc{alloc("x", "n1", 1), surge("x", "n2", 1, "n1")},
			[]Alloc{alloc("x", "n1", 1), surge("x", "n2", 1, "n1")}, []string{"n1"}},
		{"source gone",
			[]Alloc{surge("x", "n2", 1, "n1")},
			[]Alloc{alloc("x", "n2", 1)}, nil},
		{"replaces itself",
			[]Alloc{surge("x", "n2", 1, "n2")},
			[]Alloc{alloc("x", "n2", 1)}, nil},
		{"source is a surge itself",
			[]Alloc{alloc("x", "n1", 1), surge("x", "n2", 1, "n1"), surge("x", "n3", 1, "n2")},
			[]Alloc{alloc("x", "n1", 1), surge("x", "n2", 1, "n1"), alloc("x", "n3", 1)}, []string{"n1"}},
		{"two surges for one source: the first node's wins",
			[]Alloc{alloc("x", "n1", 1), surge("x", "n2", 1, "n1"), surge("x", "n3", 1, "n1")},
			[]Alloc{alloc("x", "n1", 1), surge("x", "n2", 1, "n1"), alloc("x", "n3", 1)}, []string{"n1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWork(job, t0, tt.allocs)
			w.linkSurges()
			assertAllocs(t, w.allocs(), tt.want...)
			if got := sourceNodes(w); !slices.Equal(got, tt.sources) {
				t.Errorf("sources %v, want %v", got, tt.sources)
			}
		})
	}
}

func TestFinishSurges(t *testing.T) {
	job := replicasJob("x", 1, 2)
	allocs := []Alloc{alloc("x", "n1", 1), surge("x", "n2", 1, "n1"), alloc("x", "n3", 1), surge("x", "n4", 1, "n3")}
	now := t0.Add(time.Minute)
	w := newWork(job, now, allocs,
		up("x", "n1", 1, longAgo), up("x", "n2", 1, now.Add(-minHealthy)), // healthy: n1 goes
		up("x", "n3", 1, longAgo), up("x", "n4", 1, now.Add(-time.Second))) // not yet
	w.linkSurges()
	w.finishSurges()
	assertAllocs(t, w.allocs(), alloc("x", "n2", 1), allocs[2], allocs[3])
}

func TestCheckRollout(t *testing.T) {
	job := replicasJob("x", 2, 2)
	bumped := Alloc{Job: "x", Node: "n1", Version: 2, UpdatedAt: t0}
	tests := []struct {
		name     string
		a        Alloc
		st       InstanceState
		now      time.Time
		deadline time.Duration
		want     string
	}{
		{"updated instance failed", bumped, failedState("x", "n1", 2, t0, "exit 2"), t0.Add(time.Second), deadline,
			"rollout of version 2 halted: instance on n1 failed: exit 2"},
		{"updated instance overdue", bumped, starting("x", "n1", 2, t0), t0.Add(deadline), deadline,
			"rollout of version 2 halted: instance on n1 not healthy within 1m0s"},
		{"updated instance within its deadline", bumped, starting("x", "n1", 2, t0), t0.Add(deadline - 1), deadline, ""},
		{"no deadline", bumped, starting("x", "n1", 2, t0), t0.Add(time.Hour), 0, ""},
		{"failed but created at the version, not updated", alloc("x", "n1", 2), failedState("x", "n1", 2, t0, ""), t0, deadline, ""},
		{"failed report of the old version", bumped, failedState("x", "n1", 1, t0, ""), t0, deadline, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWork(job, tt.now, []Alloc{tt.a}, tt.st)
			w.policy.deadline = tt.deadline
			w.checkRollout()
			if w.rolloutFailure != tt.want {
				t.Errorf("rolloutFailure = %q, want %q", w.rolloutFailure, tt.want)
			}
		})
	}
}

func TestExcludeFailed(t *testing.T) {
	allocs := []Alloc{
		alloc("x", "n1", 2), // failed: excluded
		alloc("x", "n2", 1), // failed at an old version
		{Job: "x", Node: "n3", Version: 2, UpdatedAt: t0}, // failed update: rollout evidence
		alloc("x", "n4", 2),       // a source, failed
		surge("x", "n5", 2, "n4"), // its surge, failed: excluded
		alloc("x", "n6", 2),       // fine
	}
	states := []InstanceState{
		failedState("x", "n1", 2, t0, ""), failedState("x", "n2", 1, t0, ""), failedState("x", "n3", 2, t0, ""),
		failedState("x", "n4", 2, t0, ""), failedState("x", "n5", 2, t0, ""), up("x", "n6", 2, t0),
	}
	w := newWork(replicasJob("x", 2, 4), t0, allocs, states...)
	w.linkSurges()
	w.excludeFailed()
	if want := []string{"n1", "n5"}; !slices.Equal(w.excluded, want) {
		t.Errorf("excluded %v, want %v", w.excluded, want)
	}
	for _, job := range []Job{singletonJob("x", 2), spreadJob("x", 2)} {
		w := newWork(job, t0, allocs, states...)
		w.excludeFailed()
		if len(w.excluded) > 0 {
			t.Errorf("%s: excluded %v, want none: there is no other node to go to", job.Spec.Mode, w.excluded)
		}
	}
}

func TestPlacementApp(t *testing.T) {
	job := replicasJob("x", 1, 2)
	job.Spec.Constraints = []jobspec.Constraint{{Attribute: "node.labels.a", Operator: jobspec.OpIsSet}}
	w := newWork(job, t0, nil)
	w.excluded = []string{"n1", "n3"}
	app := w.placementApp()
	want := []placement.Constraint{
		{Attribute: "node.labels.a", Operator: placement.OpIsSet},
		{Operator: placement.OpDistinctHosts},
		{Attribute: "node.id", Operator: placement.OpNotEqual, Value: "n1"},
		{Attribute: "node.id", Operator: placement.OpNotEqual, Value: "n3"},
	}
	if !reflect.DeepEqual(app.Constraints, want) {
		t.Errorf("constraints %+v, want %+v", app.Constraints, want)
	}
	if len(w.app.Constraints) != 2 {
		t.Error("placementApp changed the job's translated app")
	}
	if app.Name != "x" {
		t.Errorf("name %q", app.Name)
	}
	// Explain names the exclusion like any constraint.
	plan, err := placement.Place(placement.Input{Apps: []placement.App{app}, Nodes: []placement.Node{
		{ID: "n1", Eligible: true, Labels: map[string]string{"a": ""}},
	}})
	if ap, _ := plan.App("x"); err != nil || !strings.Contains(ap.Explain(), "node.id != n1") {
		t.Errorf("explain %q, %v", ap.Explain(), err)
	}
}
