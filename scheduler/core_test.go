package scheduler

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/jobspec"
	"github.com/ozanturksever/go-cluster/placement"
)

// Tests of Reconcile, one rule at a time. The steps it is built from are
// tested alone in the other core_*_test.go files.

// healthyReplicas returns the allocations and reports of a replicas job
// running healthy on the given nodes.
func healthyReplicas(job string, version uint64, nodes ...string) ([]Alloc, []InstanceState) {
	var allocs []Alloc
	var states []InstanceState
	for _, n := range nodes {
		allocs = append(allocs, alloc(job, n, version))
		states = append(states, up(job, n, version, longAgo))
	}
	return allocs, states
}

// Rule 1 and 2: a new job is placed at its version; a placed one is kept.
func TestReconcilePlacesAndKeeps(t *testing.T) {
	in := Input{Jobs: []Job{replicasJob("api", 4, 3)}, Nodes: liveNodes(4), Now: t0}
	out := Reconcile(in)
	assertAllocs(t, out.Allocs, alloc("api", "n1", 4), alloc("api", "n2", 4), alloc("api", "n3", 4))
	if p := out.Jobs["api"]; p.Want != 3 || p.Running != 0 || p.Complete || p.Failed != "" {
		t.Errorf("progress %+v", p)
	}

	in.Allocs, in.States = healthyReplicas("api", 4, "n1", "n2", "n3")
	out = Reconcile(in)
	assertAllocs(t, out.Allocs, in.Allocs...)
	if p := out.Jobs["api"]; p.Want != 3 || p.Running != 3 || !p.Complete || p.Updating {
		t.Errorf("progress %+v", p)
	}
	ap := out.Plans["api"]
	if ap.Have != 3 || len(ap.Decisions) != 3 || ap.Decisions[0].Action != placement.ActionKeep {
		t.Errorf("plan %+v", ap)
	}
}

// Rule 2: fewer replicas stop the surplus at once.
func TestReconcileCountDown(t *testing.T) {
	allocs, states := healthyReplicas("api", 1, "n1", "n2", "n3")
	out := Reconcile(Input{Jobs: []Job{replicasJob("api", 1, 2)}, Nodes: liveNodes(4), Allocs: allocs, States: states, Now: t0})
	if got := len(out.Allocs); got != 2 {
		t.Errorf("allocs %v, want 2", out.Allocs)
	}
}

// Rule 2: stopped and unlisted jobs lose every allocation, a singleton's
// leader included.
func TestReconcileStoppedAndUnlistedJobs(t *testing.T) {
	allocs, states := healthyReplicas("api", 1, "n1", "n2")
	allocs = append(allocs, alloc("db", "n1", 1), alloc("db", "n2", 1), alloc("old", "n3", 7))
	states = append(states, leader("db", "n1", 1, longAgo), standby("db", "n2", 1, longAgo))
	stopped := singletonJob("db", 1)
	stopped.Stopped = true
	out := Reconcile(Input{Jobs: []Job{stopped, replicasJob("api", 1, 2)}, Nodes: liveNodes(3), Allocs: allocs, States: states, Now: t0})
	assertAllocs(t, out.Allocs, alloc("api", "n1", 1), alloc("api", "n2", 1))
	if p := out.Jobs["db"]; !p.Complete || p.Want != 0 {
		t.Errorf("stopped job progress %+v", p)
	}
	if ap := out.Plans["db"]; len(ap.Decisions) != 2 || ap.Decisions[0].Action != placement.ActionStop {
		t.Errorf("stopped job plan %+v", ap)
	}
	if _, ok := out.Jobs["old"]; ok {
		t.Error("progress reported for an unlisted job")
	}
}

// Rule 3: a move starts the new instance before the old one stops, and
// holds across calls until the new one is healthy.
func TestReconcileMoveStartsBeforeStop(t *testing.T) {
	job := replicasJob("api", 2, 3)
	nodes := draining(liveNodes(4), "n1")
	allocs, states := healthyReplicas("api", 2, "n1", "n2", "n3")
	in := Input{Jobs: []Job{job}, Nodes: nodes, Allocs: allocs, States: states, Now: t0}

	out := Reconcile(in)
	want := []Alloc{alloc("api", "n1", 2), alloc("api", "n2", 2), alloc("api", "n3", 2), surge("api", "n4", 2, "n1")}
	assertAllocs(t, out.Allocs, want...)
	if ap := out.Plans["api"]; !slices.ContainsFunc(ap.Decisions, func(d placement.Decision) bool {
		return d.Action == placement.ActionMove && d.From == "n1" && d.Node == "n4"
	}) {
		t.Errorf("plan %+v, want a move n1 → n4", ap.Decisions)
	}
	if p := out.Jobs["api"]; p.Complete {
		t.Errorf("complete with a surge in flight: %+v", p)
	}

	// The surge starts, then runs, but not yet for long enough: nothing
	// changes, and in particular no second surge appears.
	for _, st := range []InstanceState{
		starting("api", "n4", 2, t0),
		up("api", "n4", 2, t0.Add(5*time.Second)),
		up("api", "n4", 1, t0.Add(-time.Hour)), // an old version does not count
	} {
		in.Allocs, in.States, in.Now = out.Allocs, append(slices.Clone(states), st), t0.Add(10*time.Second)
		out = Reconcile(in)
		assertAllocs(t, out.Allocs, want...)
	}

	// Healthy: the source goes and the surge becomes an ordinary instance.
	in.States = append(slices.Clone(states), up("api", "n4", 2, t0))
	in.Now = t0.Add(minHealthy)
	out = Reconcile(in)
	assertAllocs(t, out.Allocs, alloc("api", "n2", 2), alloc("api", "n3", 2), alloc("api", "n4", 2))
}

// Rule 3: a surge that must move on before it is healthy is replaced by a
// new surge for the original source; the source never goes early.
func TestReconcileSurgeMovesOn(t *testing.T) {
	job := replicasJob("api", 1, 2)
	tests := []struct {
		name   string
		nodes  []NodeInfo
		states []InstanceState
	}{
		{"surge node drains too", draining(liveNodes(4), "n1", "n3"), []InstanceState{starting("api", "n3", 1, t0)}},
		{"surge failed", draining(liveNodes(4), "n1"), []InstanceState{failedState("api", "n3", 1, t0, "exit 1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allocs := []Alloc{alloc("api", "n1", 1), alloc("api", "n2", 1), surge("api", "n3", 1, "n1")}
			states := append([]InstanceState{up("api", "n1", 1, longAgo), up("api", "n2", 1, longAgo)}, tt.states...)
			out := Reconcile(Input{Jobs: []Job{job}, Nodes: tt.nodes, Allocs: allocs, States: states, Now: t0.Add(time.Minute)})
			assertAllocs(t, out.Allocs, alloc("api", "n1", 1), alloc("api", "n2", 1), surge("api", "n4", 1, "n1"))
		})
	}
}

// Rule 3: a surge whose source is gone (its node died) is an ordinary
// instance; a Replaces that cannot hold is dropped.
func TestReconcileSurgeSourceGone(t *testing.T) {
	allocs := []Alloc{alloc("api", "n1", 1), surge("api", "n2", 1, "n9"), surge("api", "n3", 1, "n3")}
	out := Reconcile(Input{Jobs: []Job{replicasJob("api", 1, 3)}, Nodes: liveNodes(3), Allocs: allocs, Now: t0})
	assertAllocs(t, out.Allocs, alloc("api", "n1", 1), alloc("api", "n2", 1), alloc("api", "n3", 1))
}

// Rule 3: a drain cancelled while a surge is in flight: the replicas job
// finishes the move; the singleton keeps both candidates.
func TestReconcileDrainCancelledDuringSurge(t *testing.T) {
	allocs := []Alloc{alloc("api", "n1", 1), alloc("api", "n2", 1), surge("api", "n3", 1, "n1")}
	states := []InstanceState{up("api", "n1", 1, longAgo), up("api", "n2", 1, longAgo), starting("api", "n3", 1, t0)}
	in := Input{Jobs: []Job{replicasJob("api", 1, 2)}, Nodes: liveNodes(3), Allocs: allocs, States: states, Now: t0}
	assertAllocs(t, Reconcile(in).Allocs, allocs...)

	in.Jobs = []Job{singletonJob("api", 1)}
	assertAllocs(t, Reconcile(in).Allocs, alloc("api", "n1", 1), alloc("api", "n2", 1), alloc("api", "n3", 1))
}

// Rule 4: a singleton leader on a draining node waits for a healthy
// standby; standbys on draining nodes go at once.
func TestReconcileSingletonDrain(t *testing.T) {
	job := singletonJob("db", 1)
	allocs := []Alloc{alloc("db", "n1", 1), alloc("db", "n2", 1), alloc("db", "n3", 1)}
	tests := []struct {
		name   string
		nodes  []NodeInfo
		states []InstanceState
		want   []Alloc
	}{
		{
			"leader waits for a standby still starting",
			draining(liveNodes(3), "n1"),
			[]InstanceState{leader("db", "n1", 1, longAgo), starting("db", "n2", 1, t0), standby("db", "n3", 1, t0)},
			allocs,
		},
		{
			"leader goes once a standby is healthy",
			draining(liveNodes(3), "n1"),
			[]InstanceState{leader("db", "n1", 1, longAgo), starting("db", "n2", 1, t0), standby("db", "n3", 1, longAgo)},
			allocs[1:],
		},
		{
			"a standby goes at once",
			draining(liveNodes(3), "n2"),
			[]InstanceState{leader("db", "n1", 1, longAgo), starting("db", "n2", 1, t0), starting("db", "n3", 1, t0)},
			[]Alloc{allocs[0], allocs[2]},
		},
		{
			"a leader with no other candidate at all goes",
			draining(liveNodes(1), "n1"),
			[]InstanceState{leader("db", "n1", 1, longAgo)},
			nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var current []Alloc
			for _, a := range allocs {
				if slices.ContainsFunc(tt.nodes, func(n NodeInfo) bool { return n.ID == a.Node }) {
					current = append(current, a)
				}
			}
			out := Reconcile(Input{Jobs: []Job{job}, Nodes: tt.nodes, Allocs: current, States: tt.states, Now: t0.Add(time.Second)})
			assertAllocs(t, out.Allocs, tt.want...)
		})
	}
}

// Rule 5: a rolling update bumps max_parallel allocations at a time, the
// next batch only once the previous one is healthy.
func TestReconcileRollingUpdateBatches(t *testing.T) {
	job := replicasJob("api", 2, 4)
	job.Spec.Update.MaxParallel = 2
	allocs, states := healthyReplicas("api", 1, "n1", "n2", "n3", "n4")
	in := Input{Jobs: []Job{job}, Nodes: liveNodes(4), Allocs: allocs, States: states, Now: t0}

	out := Reconcile(in)
	bumped := func(node string, at time.Time) Alloc { return Alloc{Job: "api", Node: node, Version: 2, UpdatedAt: at} }
	assertAllocs(t, out.Allocs, bumped("n1", t0), bumped("n2", t0), alloc("api", "n3", 1), alloc("api", "n4", 1))
	if p := out.Jobs["api"]; !p.Updating || p.Complete {
		t.Errorf("progress %+v", p)
	}

	// The batch restarts: nothing more is bumped.
	in.Allocs, in.Now = out.Allocs, t0.Add(20*time.Second)
	in.States = []InstanceState{up("api", "n1", 2, t0.Add(15*time.Second)), starting("api", "n2", 2, t0), states[2], states[3]}
	assertAllocs(t, Reconcile(in).Allocs, in.Allocs...)

	// The batch is healthy: it is verified and the next batch goes.
	in.States = []InstanceState{up("api", "n1", 2, t0.Add(5*time.Second)), up("api", "n2", 2, t0.Add(5*time.Second)), states[2], states[3]}
	t1 := in.Now
	out = Reconcile(in)
	assertAllocs(t, out.Allocs, alloc("api", "n1", 2), alloc("api", "n2", 2), bumped("n3", t1), bumped("n4", t1))
}

// Rule 5: max_parallel 0 means 1.
func TestReconcileRollingUpdateMaxParallelZero(t *testing.T) {
	job := replicasJob("api", 2, 3)
	job.Spec.Update.MaxParallel = 0
	allocs, states := healthyReplicas("api", 1, "n1", "n2", "n3")
	out := Reconcile(Input{Jobs: []Job{job}, Nodes: liveNodes(3), Allocs: allocs, States: states, Now: t0})
	n := 0
	for _, a := range out.Allocs {
		if a.Version == 2 {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d bumped, want 1: %v", n, out.Allocs)
	}
}

// Rule 5: an updated instance that fails, or is not healthy within the
// deadline, halts the rollout.
func TestReconcileRolloutHalts(t *testing.T) {
	job := replicasJob("api", 2, 3)
	job.Spec.Update.MaxParallel = 1
	allocs := []Alloc{{Job: "api", Node: "n1", Version: 2, UpdatedAt: t0}, alloc("api", "n2", 1), alloc("api", "n3", 1)}
	tests := []struct {
		name   string
		n1     InstanceState
		now    time.Time
		reason string
	}{
		{"failed", failedState("api", "n1", 2, t0.Add(time.Second), "exit status 3"), t0.Add(2 * time.Second), "instance on n1 failed: exit status 3"},
		{"deadline", starting("api", "n1", 2, t0), t0.Add(deadline), "instance on n1 not healthy within 1m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			states := []InstanceState{tt.n1, up("api", "n2", 1, longAgo), up("api", "n3", 1, longAgo)}
			out := Reconcile(Input{Jobs: []Job{job}, Nodes: liveNodes(4), Allocs: allocs, States: states, Now: tt.now})
			// Kept as it is: neither bumped further nor failed over.
			assertAllocs(t, out.Allocs, allocs...)
			p := out.Jobs["api"]
			if want := "rollout of version 2 halted: " + tt.reason; p.Failed != want {
				t.Errorf("Failed = %q, want %q", p.Failed, want)
			}
			if p.Updating || p.Complete {
				t.Errorf("progress %+v", p)
			}
		})
	}
}

// Rule 6: an instance failed at the job's version fails over to another
// node; the failed one goes at once, as nothing of it runs.
func TestReconcileFailover(t *testing.T) {
	job := replicasJob("api", 1, 2)
	allocs := []Alloc{alloc("api", "n1", 1), alloc("api", "n2", 1)}
	tests := []struct {
		name   string
		job    Job
		nodes  []NodeInfo
		states []InstanceState
		want   []Alloc
	}{
		{"fails over to a free node", job, liveNodes(3),
			[]InstanceState{failedState("api", "n1", 1, t0, "oom"), up("api", "n2", 1, longAgo)},
			[]Alloc{alloc("api", "n2", 1), alloc("api", "n3", 1)}},
		{"stays when no node is free", job, liveNodes(2),
			[]InstanceState{failedState("api", "n1", 1, t0, "oom"), up("api", "n2", 1, longAgo)},
			allocs},
		{"goes when no longer wanted", replicasJob("api", 1, 1), liveNodes(2),
			[]InstanceState{failedState("api", "n1", 1, t0, "oom"), up("api", "n2", 1, longAgo)},
			[]Alloc{alloc("api", "n2", 1)}},
		{"a stale failure of another version is ignored", job, liveNodes(3),
			[]InstanceState{failedState("api", "n1", 0, t0, "oom"), up("api", "n2", 1, longAgo)},
			allocs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := Reconcile(Input{Jobs: []Job{tt.job}, Nodes: tt.nodes, Allocs: allocs, States: tt.states, Now: t0})
			assertAllocs(t, out.Allocs, tt.want...)
		})
	}
}

// Rule 6: singleton, spread and ring apps have an instance on every
// feasible node already; a failed one stays put.
func TestReconcileFailedInstanceOfEveryNodeAppStays(t *testing.T) {
	for _, job := range []Job{singletonJob("x", 1), spreadJob("x", 1), {Name: "x", Version: 1, Spec: appSpec("x", jobspec.ModeRing, 0)}} {
		allocs := []Alloc{alloc("x", "n1", 1), alloc("x", "n2", 1)}
		states := []InstanceState{failedState("x", "n1", 1, t0, "oom"), up("x", "n2", 1, longAgo)}
		out := Reconcile(Input{Jobs: []Job{job}, Nodes: liveNodes(2), Allocs: allocs, States: states, Now: t0})
		assertAllocs(t, out.Allocs, allocs...)
	}
}

// A node that is gone loses its allocations; the job is placed anew.
func TestReconcileNodeLoss(t *testing.T) {
	allocs, states := healthyReplicas("api", 1, "n1", "n2", "n3")
	allocs = append(allocs, surge("web", "n4", 1, "n1"), alloc("web", "n1", 1))
	nodes := slices.DeleteFunc(liveNodes(5), func(n NodeInfo) bool { return n.ID == "n1" })
	out := Reconcile(Input{Jobs: []Job{replicasJob("api", 1, 3), replicasJob("web", 1, 1)}, Nodes: nodes, Allocs: allocs, States: states, Now: t0})
	// api's third instance goes to the least loaded node, n5 (web is on n4).
	assertAllocs(t, out.Allocs, alloc("api", "n2", 1), alloc("api", "n3", 1), alloc("api", "n5", 1), alloc("web", "n4", 1))
}

// Rule 7: the output does not depend on the order of the input.
func TestReconcileDeterministic(t *testing.T) {
	in := richInput()
	want := Reconcile(in)
	rng := rand.New(rand.NewPCG(7, 7))
	for range 50 {
		shuffled := Input{
			Jobs: slices.Clone(in.Jobs), Nodes: slices.Clone(in.Nodes),
			Allocs: slices.Clone(in.Allocs), States: slices.Clone(in.States), Now: in.Now,
		}
		rng.Shuffle(len(shuffled.Jobs), func(i, j int) { shuffled.Jobs[i], shuffled.Jobs[j] = shuffled.Jobs[j], shuffled.Jobs[i] })
		rng.Shuffle(len(shuffled.Nodes), func(i, j int) { shuffled.Nodes[i], shuffled.Nodes[j] = shuffled.Nodes[j], shuffled.Nodes[i] })
		rng.Shuffle(len(shuffled.Allocs), func(i, j int) { shuffled.Allocs[i], shuffled.Allocs[j] = shuffled.Allocs[j], shuffled.Allocs[i] })
		rng.Shuffle(len(shuffled.States), func(i, j int) { shuffled.States[i], shuffled.States[j] = shuffled.States[j], shuffled.States[i] })
		if got := Reconcile(shuffled); !reflect.DeepEqual(got, want) {
			t.Fatalf("output depends on input order:\n got %+v\nwant %+v", got, want)
		}
	}
	if len(want.Allocs) < 10 {
		t.Fatalf("rich input too poor: %v", want.Allocs)
	}
}

// richInput exercises every path at once: drains, surges, a rollout, a
// failover, a stopped job, duplicates, a dead node.
func richInput() Input {
	web := replicasJob("web", 3, 3)
	web.Spec.Update.MaxParallel = 2
	web.Spec.Spreads = []jobspec.Spread{{Attribute: "node.labels.zone", Weight: 50}}
	db := singletonJob("db", 1)
	db.Spec.AwayFrom = []string{"batch"}
	batch := replicasJob("batch", 1, 2)
	stopped := spreadJob("old", 1)
	stopped.Stopped = true
	nodes := draining(liveNodes(6), "n2")
	for i := range nodes {
		nodes[i].Labels = map[string]string{"zone": []string{"a", "b"}[i%2]}
	}
	nodes = append(nodes, nodes[0]) // listed twice
	return Input{
		Jobs:  []Job{web, db, batch, stopped, spreadJob("agent", 1), replicasJob("web", 2, 3)},
		Nodes: nodes,
		Allocs: []Alloc{
			alloc("web", "n1", 2), alloc("web", "n2", 2), alloc("web", "n3", 2),
			alloc("db", "n1", 1), alloc("db", "n2", 1), alloc("db", "n3", 1),
			alloc("batch", "n4", 1), alloc("batch", "n5", 1), surge("batch", "n6", 1, "n5"),
			alloc("old", "n1", 1), alloc("old", "n2", 1),
			alloc("agent", "n9", 1), alloc("web", "n1", 1),
		},
		States: []InstanceState{
			up("web", "n1", 2, longAgo), up("web", "n2", 2, longAgo), up("web", "n3", 2, longAgo),
			leader("db", "n2", 1, longAgo), standby("db", "n1", 1, longAgo), starting("db", "n3", 1, t0),
			failedState("batch", "n4", 1, t0, "oom"), up("batch", "n5", 1, longAgo), starting("batch", "n6", 1, t0),
			up("web", "n1", 1, longAgo),
		},
		Now: t0.Add(time.Second),
	}
}

// Rule 8: progress of a job that cannot be fully placed.
func TestReconcileProgressUnmet(t *testing.T) {
	job := replicasJob("api", 1, 3)
	job.Spec.Constraints = []jobspec.Constraint{{Attribute: "node.labels.disk", Operator: jobspec.OpEqual, Value: "ssd"}}
	nodes := liveNodes(3)
	nodes[0].Labels = map[string]string{"disk": "ssd"}
	out := Reconcile(Input{Jobs: []Job{job}, Nodes: nodes, Now: t0})
	p := out.Jobs["api"]
	if want := "placed 1 of 3: constraint node.labels.disk = ssd not met on 2 nodes; distinct_hosts: 1 node already run an instance"; p.Failed != want || p.Want != 3 {
		t.Errorf("progress %+v, want Failed %q", p, want)
	}
}

// A job placement refuses does not stop the others; its allocations stay.
func TestReconcileInvalidJobIsolated(t *testing.T) {
	bad := replicasJob("bad", 2, 1)
	bad.Spec.Constraints = []jobspec.Constraint{{Attribute: "node.labels.x", Operator: jobspec.OpRegexp, Value: "("}}
	noSpec := Job{Name: "nospec", Version: 1}
	allocs := []Alloc{alloc("bad", "n1", 1), alloc("nospec", "n2", 1)}
	states := []InstanceState{up("bad", "n1", 1, longAgo), up("nospec", "n2", 1, longAgo)}
	out := Reconcile(Input{Jobs: []Job{bad, noSpec, replicasJob("good", 1, 2)}, Nodes: liveNodes(2), Allocs: allocs, States: states, Now: t0})
	assertAllocs(t, out.Allocs, alloc("bad", "n1", 1), alloc("good", "n1", 1), alloc("good", "n2", 1), alloc("nospec", "n2", 1))
	if p := out.Jobs["bad"]; !strings.Contains(p.Failed, "regexp") {
		t.Errorf("bad job progress %+v", p)
	}
	if p := out.Jobs["nospec"]; p.Failed != "job has no spec" || p.Running != 1 {
		t.Errorf("spec-less job progress %+v", p)
	}
}

// Allocations are stored as JSON; the fields the core only sometimes sets
// stay out of the record when unset.
func TestAllocJSON(t *testing.T) {
	for _, tt := range []struct {
		a    Alloc
		want string
	}{
		{alloc("api", "n1", 3), `{"job":"api","node":"n1","version":3}`},
		{Alloc{Job: "api", Node: "n1", Version: 3, Replaces: "n2", UpdatedAt: t0},
			`{"job":"api","node":"n1","version":3,"replaces":"n2","updated_at":"2025-06-01T12:00:00Z"}`},
	} {
		b, err := json.Marshal(tt.a)
		if err != nil || string(b) != tt.want {
			t.Errorf("json.Marshal(%v) = %s, %v; want %s", tt.a, b, err, tt.want)
		}
	}
}
