package scheduler

import (
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/placement"
)

func keepAt(node string) placement.Decision {
	return placement.Decision{Action: placement.ActionKeep, Node: node}
}
func placeAt(node string) placement.Decision {
	return placement.Decision{Action: placement.ActionPlace, Node: node}
}
func stopAt(node string) placement.Decision {
	return placement.Decision{Action: placement.ActionStop, Node: node}
}
func moveTo(from, to string) placement.Decision {
	return placement.Decision{Action: placement.ActionMove, From: from, Node: to}
}

// applied runs apply on a prepared job with a plan of the given decisions.
func applied(w *jobWork, want, have int, nodes []NodeInfo, ds ...placement.Decision) []Alloc {
	w.linkSurges()
	w.excludeFailed()
	w.apply(placement.AppPlan{App: w.job.Name, Want: want, Have: have, Decisions: ds}, nodeIndex(nodes))
	return w.allocs()
}

func TestApply(t *testing.T) {
	job := replicasJob("x", 3, 2)
	now := t0.Add(time.Minute)
	healthy1 := up("x", "n1", 3, longAgo)
	tests := []struct {
		name   string
		allocs []Alloc
		states []InstanceState
		nodes  []NodeInfo
		want   int // placement's Want; Have is counted from the decisions
		ds     []placement.Decision
		out    []Alloc
	}{
		{"keep and place at the job's version",
			[]Alloc{alloc("x", "n1", 2)}, nil, liveNodes(2), 2,
			[]placement.Decision{keepAt("n1"), placeAt("n2")},
			[]Alloc{alloc("x", "n1", 2), alloc("x", "n2", 3)}},
		{"stop removes",
			[]Alloc{alloc("x", "n1", 3), alloc("x", "n2", 3)}, nil, liveNodes(2), 1,
			[]placement.Decision{keepAt("n1"), stopAt("n2")},
			[]Alloc{alloc("x", "n1", 3)}},
		{"a presented allocation the plan forgot is kept",
			[]Alloc{alloc("x", "n1", 3), alloc("x", "n2", 3)}, nil, liveNodes(2), 2,
			[]placement.Decision{keepAt("n1")},
			[]Alloc{alloc("x", "n1", 3), alloc("x", "n2", 3)}},
		{"move starts a surge and keeps the source",
			[]Alloc{alloc("x", "n1", 3)}, []InstanceState{healthy1}, liveNodes(2), 1,
			[]placement.Decision{moveTo("n1", "n2")},
			[]Alloc{alloc("x", "n1", 3), surge("x", "n2", 3, "n1")}},
		{"moving a surge replaces it with one for the same source",
			[]Alloc{alloc("x", "n1", 3), surge("x", "n2", 3, "n1")}, []InstanceState{healthy1}, liveNodes(3), 1,
			[]placement.Decision{moveTo("n2", "n3")},
			[]Alloc{alloc("x", "n1", 3), surge("x", "n3", 3, "n1")}},
		{"moving a surge back to its source's node ends the surge",
			[]Alloc{alloc("x", "n1", 2), surge("x", "n2", 3, "n1")}, []InstanceState{healthy1}, liveNodes(2), 1,
			[]placement.Decision{moveTo("n2", "n1")},
			[]Alloc{alloc("x", "n1", 2)}},
		{"a failed instance moves without a surge",
			[]Alloc{alloc("x", "n1", 3)}, []InstanceState{failedState("x", "n1", 3, t0, "")}, liveNodes(2), 1,
			[]placement.Decision{moveTo("n1", "n2")},
			[]Alloc{alloc("x", "n2", 3)}},
		{"placing on a waiting source's node keeps it and ends its surge",
			[]Alloc{alloc("x", "n1", 2), surge("x", "n2", 3, "n1")}, []InstanceState{healthy1}, liveNodes(2), 2,
			[]placement.Decision{placeAt("n1"), keepAt("n2")},
			[]Alloc{alloc("x", "n1", 2), alloc("x", "n2", 3)}},
		{"moving onto another pair's waiting source takes it over",
			[]Alloc{alloc("x", "n1", 3), surge("x", "n2", 3, "n1"), alloc("x", "n3", 3)}, []InstanceState{healthy1}, liveNodes(3), 2,
			[]placement.Decision{moveTo("n3", "n1"), keepAt("n2")},
			[]Alloc{surge("x", "n1", 3, "n3"), alloc("x", "n2", 3), alloc("x", "n3", 3)}},
		{"stopping a surge stops its source too",
			[]Alloc{alloc("x", "n1", 3), surge("x", "n2", 3, "n1"), alloc("x", "n3", 3)}, []InstanceState{healthy1}, liveNodes(3), 1,
			[]placement.Decision{stopAt("n2"), keepAt("n3")},
			[]Alloc{alloc("x", "n3", 3)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			have := 0
			for _, d := range tt.ds {
				if d.Action != placement.ActionStop {
					have++
				}
			}
			w := newWork(job, now, tt.allocs, tt.states...)
			assertAllocs(t, applied(w, tt.want, have, tt.nodes, tt.ds...), tt.out...)
		})
	}
}

// A failed instance placement could not move stays as long as the job is
// short of instances, and only on a node it may use.
func TestApplyFailedStop(t *testing.T) {
	job := replicasJob("x", 1, 2)
	allocs := []Alloc{alloc("x", "n1", 1), alloc("x", "n2", 1)}
	states := []InstanceState{failedState("x", "n1", 1, t0, "oom"), up("x", "n2", 1, longAgo)}
	tests := []struct {
		name       string
		nodes      []NodeInfo
		want, have int
		out        []Alloc
	}{
		{"short: stays", liveNodes(2), 2, 1, allocs},
		{"not short: goes", liveNodes(2), 1, 1, allocs[1:]},
		{"draining node: goes", draining(liveNodes(2), "n1"), 2, 1, allocs[1:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWork(job, t0, allocs, states...)
			assertAllocs(t, applied(w, tt.want, tt.have, tt.nodes, stopAt("n1"), keepAt("n2")), tt.out...)
		})
	}
}

// A singleton's leader goes only once another candidate is healthy.
func TestApplySingletonLeaderStop(t *testing.T) {
	job := singletonJob("db", 1)
	now := t0.Add(time.Minute)
	allocs := []Alloc{alloc("db", "n1", 1), alloc("db", "n2", 1)}
	tests := []struct {
		name   string
		states []InstanceState
		ds     []placement.Decision
		out    []Alloc
	}{
		{"successor not healthy: the leader waits",
			[]InstanceState{leader("db", "n1", 1, longAgo), standby("db", "n2", 1, now.Add(-time.Second))},
			[]placement.Decision{stopAt("n1"), keepAt("n2")}, allocs},
		{"successor healthy: the leader goes",
			[]InstanceState{leader("db", "n1", 1, longAgo), standby("db", "n2", 1, longAgo)},
			[]placement.Decision{stopAt("n1"), keepAt("n2")}, allocs[1:]},
		{"a new successor only just placed: the leader waits",
			[]InstanceState{leader("db", "n1", 1, longAgo)},
			[]placement.Decision{stopAt("n1"), stopAt("n2"), placeAt("n3")}, []Alloc{allocs[0], alloc("db", "n3", 1)}},
		{"no successor at all: the leader goes",
			[]InstanceState{leader("db", "n1", 1, longAgo), standby("db", "n2", 1, longAgo)},
			[]placement.Decision{stopAt("n1"), stopAt("n2")}, nil},
		{"a standby never waits",
			[]InstanceState{standby("db", "n1", 1, longAgo), leader("db", "n2", 1, now)},
			[]placement.Decision{stopAt("n1"), keepAt("n2")}, allocs[1:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWork(job, now, allocs, tt.states...)
			assertAllocs(t, applied(w, 2, 1, liveNodes(3), tt.ds...), tt.out...)
		})
	}
}
