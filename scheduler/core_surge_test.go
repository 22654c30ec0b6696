package scheduler

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/jobspec"
)

// Tests of start-before-stop rolling updates of replicas jobs: an update
// batch surges to free nodes and falls back to in place only when there
// is none.

// surgesOf returns the job's allocations that replace another.
func surgesOf(allocs []Alloc, job string) []Alloc {
	return slices.DeleteFunc(allocsOf(allocs, job), func(a Alloc) bool { return a.Replaces == "" })
}

// healthyRunning is an instance serving: running, and for MinHealthyTime.
func (c *simCluster) healthyRunning(_ string, i *simInstance) bool {
	return i.state == StateRunning && c.now.Sub(i.since) >= minHealthy
}

// TestSimSurgeRollingUpdate updates replicas on more nodes than count:
// every batch surges to free nodes, so at least count healthy instances run
// at every step, at most max_parallel surges are in flight, and the rollout
// ends with count instances at the new version. With one spare node, each
// batch waits for the node the previous one freed.
func TestSimSurgeRollingUpdate(t *testing.T) {
	for _, tt := range []struct{ count, nodes, maxParallel int }{
		{3, 5, 1}, {3, 5, 2}, {2, 3, 1},
	} {
		t.Run(fmt.Sprintf("%d on %d max_parallel %d", tt.count, tt.nodes, tt.maxParallel), func(t *testing.T) {
			count, maxParallel := tt.count, tt.maxParallel
			job := replicasJob("api", 1, count)
			job.Spec.Update.MaxParallel = maxParallel
			c := newSim(t, liveNodes(tt.nodes), job)
			c.converge(20)
			c.settle()
			job.Version = 2
			c.jobs = []Job{job}
			worst, seen := 0, map[string]bool{}
			c.checks = append(c.checks, func(c *simCluster, when string) {
				if n := c.count("api", c.healthyRunning); n < count {
					t.Fatalf("%s at %s: %d healthy instances, want at least %d: %v", when, c.now.Sub(t0), n, count, c.allocs)
				}
				surges := surgesOf(c.allocs, "api")
				if len(surges) > maxParallel {
					t.Fatalf("%s at %s: %d surges in flight, max_parallel %d: %v", when, c.now.Sub(t0), len(surges), maxParallel, c.allocs)
				}
				for _, a := range surges {
					seen[a.Node+"<"+a.Replaces] = true
				}
				worst = max(worst, len(surges))
				for _, a := range c.allocs {
					if a.Replaces == "" && a.Version == 2 && !a.UpdatedAt.IsZero() {
						t.Fatalf("%s: %v updated in place although a node was free", when, a)
					}
				}
			})
			c.converge(40)
			if len(c.allocs) != count {
				t.Errorf("allocs %v, want exactly %d", c.allocs, count)
			}
			for _, a := range c.allocs {
				if a.Version != 2 || !a.UpdatedAt.IsZero() || a.Replaces != "" {
					t.Errorf("after the rollout %v, want version 2 verified", a)
				}
			}
			if n := c.count("api", func(_ string, i *simInstance) bool { return i.version == 2 && i.state == StateRunning }); n != count {
				t.Errorf("%d instances running version 2, want %d", n, count)
			}
			if len(seen) != count || worst != maxParallel {
				t.Errorf("surges %v, at most %d at once; want %d, batches of %d", seen, worst, count, maxParallel)
			}
		})
	}
}

// TestSimRollingUpdateNoFreeNode: replicas of 3 on exactly 3 nodes have no
// node to surge to, so the update falls back to in place, max_parallel at
// a time, and completes.
func TestSimRollingUpdateNoFreeNode(t *testing.T) {
	for _, maxParallel := range []int{1, 2} {
		t.Run(map[int]string{1: "max_parallel 1", 2: "max_parallel 2"}[maxParallel], func(t *testing.T) {
			job := replicasJob("api", 1, 3)
			job.Spec.Update.MaxParallel = maxParallel
			c := newSim(t, liveNodes(3), job)
			c.converge(20)
			c.settle()
			nodes := nodesOf(c.allocs, "api")
			job.Version = 2
			c.jobs = []Job{job}
			worst := 0
			c.checks = append(c.checks, func(c *simCluster, when string) {
				n := c.count("api", func(node string, i *simInstance) bool { return !c.isHealthy(node, i) })
				if n > maxParallel {
					t.Fatalf("%s at %s: %d instances not healthy, max_parallel %d: %v", when, c.now.Sub(t0), n, maxParallel, c.allocs)
				}
				worst = max(worst, n)
				if s := surgesOf(c.allocs, "api"); len(s) > 0 {
					t.Fatalf("%s: surges %v without a free node", when, s)
				}
			})
			c.converge(40)
			if got := nodesOf(c.allocs, "api"); !slices.Equal(got, nodes) {
				t.Errorf("nodes %v, want %v: updated in place", got, nodes)
			}
			for _, a := range c.allocs {
				if a.Version != 2 || !a.UpdatedAt.IsZero() {
					t.Errorf("after the rollout %v, want version 2 verified", a)
				}
			}
			if worst != maxParallel {
				t.Errorf("at most %d instances updated at once, want batches of %d", worst, maxParallel)
			}
		})
	}
}

// TestSimFailedSurgeHalts: the surge of the first batch fails at the new
// version; the rollout halts and the instance it was to replace keeps
// running the old version, so all 3 still serve.
func TestSimFailedSurgeHalts(t *testing.T) {
	job := replicasJob("api", 1, 3)
	c := newSim(t, liveNodes(5), job)
	c.converge(20)
	c.broken["api"] = 2
	job.Version = 2
	c.jobs = []Job{job}
	for range 20 {
		c.step()
	}
	surges := surgesOf(c.allocs, "api")
	if len(surges) != 1 || surges[0].Version != 2 || len(c.allocs) != 4 {
		t.Fatalf("allocs %v, want the 3 old ones and one surge at version 2", c.allocs)
	}
	src := surges[0].Replaces
	if i := c.agents[allocKey{"api", src}]; i == nil || i.version != 1 || i.state != StateRunning {
		t.Errorf("the failed surge's source %s must keep running version 1: %+v", src, i)
	}
	if n := c.count("api", func(_ string, i *simInstance) bool { return i.version == 1 && i.state == StateRunning }); n != 3 {
		t.Errorf("%d instances running version 1, want 3", n)
	}
	p := c.out.Jobs["api"]
	if want := "instance on " + surges[0].Node + " failed"; !strings.Contains(p.Failed, want) || p.Updating || p.Complete {
		t.Errorf("progress %+v, want a halted rollout (%q)", p, want)
	}
}

// An update surge is not a rollout failure before its HealthyDeadline,
// counted from its UpdatedAt (its creation); a failed one or one past the
// deadline halts the rollout, and everything stays: the surge does not
// fail over, its source keeps running.
func TestReconcileSurgeRolloutHalts(t *testing.T) {
	job := replicasJob("api", 2, 3)
	allocs := []Alloc{
		alloc("api", "n1", 1), alloc("api", "n2", 1), alloc("api", "n3", 1),
		{Job: "api", Node: "n4", Version: 2, Replaces: "n1", UpdatedAt: t0},
	}
	old := []InstanceState{up("api", "n1", 1, longAgo), up("api", "n2", 1, longAgo), up("api", "n3", 1, longAgo)}
	tests := []struct {
		name   string
		n4     InstanceState
		now    time.Time
		reason string
	}{
		{"starting, within the deadline", starting("api", "n4", 2, t0), t0.Add(deadline - time.Second), ""},
		{"running, not yet healthy", up("api", "n4", 2, t0.Add(deadline-time.Second)), t0.Add(deadline - time.Second), ""},
		{"deadline", starting("api", "n4", 2, t0), t0.Add(deadline), "rollout of version 2 halted: instance on n4 not healthy within 1m0s"},
		{"failed", failedState("api", "n4", 2, t0.Add(time.Second), "exit status 3"), t0.Add(2 * time.Second), "rollout of version 2 halted: instance on n4 failed: exit status 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			states := append(slices.Clone(old), tt.n4)
			out := Reconcile(Input{Jobs: []Job{job}, Nodes: liveNodes(5), Allocs: allocs, States: states, Now: tt.now})
			assertAllocs(t, out.Allocs, allocs...)
			p := out.Jobs["api"]
			if p.Failed != tt.reason || p.Updating != (tt.reason == "") || p.Complete {
				t.Errorf("progress %+v, want Failed %q", p, tt.reason)
			}
		})
	}
}

// A surge that proved healthy retires its source; the next batch waits
// for that node to be free rather than reuse the retiring allocation (the
// agent would restart its instance in place) or update in place, and
// surges there on the next call.
func TestReconcileSurgeNextBatchWaitsForRetiredNode(t *testing.T) {
	job := replicasJob("api", 2, 2)
	now := t0.Add(time.Minute)
	allocs := []Alloc{alloc("api", "n1", 1), alloc("api", "n2", 1), {Job: "api", Node: "n3", Version: 2, Replaces: "n1", UpdatedAt: t0}}
	states := []InstanceState{up("api", "n1", 1, longAgo), up("api", "n2", 1, longAgo), up("api", "n3", 2, t0.Add(5*time.Second))}
	out := Reconcile(Input{Jobs: []Job{job}, Nodes: liveNodes(3), Allocs: allocs, States: states, Now: now})
	assertAllocs(t, out.Allocs, alloc("api", "n2", 1), alloc("api", "n3", 2))
	if p := out.Jobs["api"]; !p.Updating || p.Complete || p.Failed != "" {
		t.Errorf("progress %+v", p)
	}

	// The agent on n1 stopped its instance; n1 is free now.
	later := now.Add(time.Second)
	out = Reconcile(Input{Jobs: []Job{job}, Nodes: liveNodes(3), Allocs: out.Allocs, States: states[1:], Now: later})
	assertAllocs(t, out.Allocs,
		Alloc{Job: "api", Node: "n1", Version: 2, Replaces: "n2", UpdatedAt: later},
		alloc("api", "n2", 1), alloc("api", "n3", 2))
}

// Surge nodes are placement's choice: a node where an app the job keeps
// away from is active is not free, nor is a draining one.
func TestReconcileSurgeFeasibleNodesOnly(t *testing.T) {
	job := replicasJob("api", 2, 2)
	job.Spec.Update.MaxParallel = 2
	job.Spec.AwayFrom = []string{"db"}
	allocs, states := healthyReplicas("api", 1, "n1", "n2")
	allocs = append(allocs, alloc("db", "n3", 1))
	states = append(states, leader("db", "n3", 1, longAgo))
	db := replicasJob("db", 1, 1)
	out := Reconcile(Input{Jobs: []Job{job, db}, Nodes: draining(liveNodes(5), "n4"), Allocs: allocs, States: states, Now: t0})
	// One free node (n5): n1 surges there, n2 is updated in place.
	assertAllocs(t, out.Allocs,
		alloc("api", "n1", 1), Alloc{Job: "api", Node: "n2", Version: 2, UpdatedAt: t0},
		Alloc{Job: "api", Node: "n5", Version: 2, Replaces: "n1", UpdatedAt: t0},
		alloc("db", "n3", 1))
}

// Spread and singleton jobs are updated in place even with nodes their
// constraints leave out: surges are for replicas jobs only.
func TestReconcileNoSurgeForEveryNodeApps(t *testing.T) {
	for _, job := range []Job{spreadJob("x", 2), singletonJob("x", 2), {Name: "x", Version: 2, Spec: appSpec("x", jobspec.ModeRing, 0)}} {
		job.Spec.Constraints = []jobspec.Constraint{{Attribute: "node.labels.pool", Operator: jobspec.OpEqual, Value: "a"}}
		nodes := liveNodes(4)
		for i := range nodes[:2] {
			nodes[i].Labels = map[string]string{"pool": "a"}
		}
		allocs := []Alloc{alloc("x", "n1", 1), alloc("x", "n2", 1)}
		states := []InstanceState{up("x", "n1", 1, longAgo), standby("x", "n2", 1, longAgo)}
		if job.Spec.Mode != jobspec.ModeSingleton {
			states[1] = up("x", "n2", 1, longAgo)
		}
		out := Reconcile(Input{Jobs: []Job{job}, Nodes: nodes, Allocs: allocs, States: states, Now: t0})
		if s := surgesOf(out.Allocs, "x"); len(s) > 0 || len(out.Allocs) != 2 {
			t.Errorf("%s: allocs %v, want an update in place", job.Spec.Mode, out.Allocs)
		}
	}
}

func TestRollOutSurges(t *testing.T) {
	now := t0.Add(time.Hour)
	old := func(node string) InstanceState { return up("x", node, 1, longAgo) }
	upd := func(node string) Alloc { return Alloc{Job: "x", Node: node, Version: 2, UpdatedAt: now} }
	srg := func(node, replaces string) Alloc {
		return Alloc{Job: "x", Node: node, Version: 2, Replaces: replaces, UpdatedAt: now}
	}
	tests := []struct {
		name   string
		job    Job
		allocs []Alloc
		states []InstanceState
		free   []string
		want   []Alloc
	}{
		{"a surge per member", replicasJob("x", 2, 3),
			[]Alloc{alloc("x", "n1", 1), alloc("x", "n2", 1), alloc("x", "n3", 1)},
			[]InstanceState{old("n1"), old("n2"), old("n3")},
			[]string{"n4", "n5"},
			[]Alloc{alloc("x", "n1", 1), alloc("x", "n2", 1), alloc("x", "n3", 1), srg("n4", "n1"), srg("n5", "n2")}},
		{"in place where no node is left", replicasJob("x", 2, 3),
			[]Alloc{alloc("x", "n1", 1), alloc("x", "n2", 1), alloc("x", "n3", 1)},
			[]InstanceState{old("n1"), old("n2"), old("n3")},
			[]string{"n4"},
			[]Alloc{alloc("x", "n1", 1), upd("n2"), alloc("x", "n3", 1), srg("n4", "n1")}},
		{"an outdated surge is bumped in place", replicasJob("x", 2, 2),
			[]Alloc{alloc("x", "n1", 1), surge("x", "n2", 1, "n1"), alloc("x", "n3", 1)},
			[]InstanceState{old("n1"), old("n2"), old("n3")},
			[]string{"n4"},
			[]Alloc{alloc("x", "n1", 1), {Job: "x", Node: "n2", Version: 2, Replaces: "n1", UpdatedAt: now}, alloc("x", "n3", 1), srg("n4", "n3")}},
		{"singleton: in place", singletonJob("x", 2),
			[]Alloc{alloc("x", "n1", 1), alloc("x", "n2", 1), alloc("x", "n3", 1)},
			[]InstanceState{standby("x", "n1", 1, longAgo), leader("x", "n2", 1, longAgo), standby("x", "n3", 1, longAgo)},
			[]string{"n4", "n5"},
			[]Alloc{upd("n1"), alloc("x", "n2", 1), upd("n3")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWork(tt.job, now, tt.allocs, tt.states...)
			w.policy.maxParallel = 2
			w.linkSurges()
			w.rollOut(w.nextBatch(), tt.free)
			assertAllocs(t, w.allocs(), tt.want...)
		})
	}
}

// Rule 7 for a surge rollout: the output does not depend on the order of
// the input.
func TestReconcileSurgeDeterministic(t *testing.T) {
	api := replicasJob("api", 2, 3)
	api.Spec.Update.MaxParallel = 2
	api.Spec.Spreads = []jobspec.Spread{{Attribute: "node.labels.zone", Weight: 50}}
	web := replicasJob("web", 5, 2)
	web.Spec.AwayFrom = []string{"db"}
	nodes := liveNodes(7)
	for i := range nodes {
		nodes[i].Labels = map[string]string{"zone": []string{"a", "b", "c"}[i%3]}
	}
	now := t0.Add(time.Minute)
	in := Input{
		Jobs:  []Job{api, web, singletonJob("db", 1)},
		Nodes: nodes,
		Allocs: []Alloc{
			alloc("api", "n1", 1), alloc("api", "n2", 1), alloc("api", "n3", 1),
			// web: a surge just proved healthy; the next batch waits for n1.
			alloc("web", "n1", 4), alloc("web", "n4", 4), {Job: "web", Node: "n5", Version: 5, Replaces: "n1", UpdatedAt: t0},
			alloc("db", "n6", 1), alloc("db", "n7", 1),
		},
		States: []InstanceState{
			up("api", "n1", 1, longAgo), up("api", "n2", 1, longAgo), up("api", "n3", 1, longAgo),
			up("web", "n1", 4, longAgo), up("web", "n4", 4, longAgo), up("web", "n5", 5, t0),
			leader("db", "n6", 1, longAgo), standby("db", "n7", 1, longAgo),
		},
		Now: now,
	}
	want := Reconcile(in)
	surges := 0
	for _, a := range want.Allocs {
		if a.Replaces != "" && a.UpdatedAt.Equal(now) {
			surges++
		}
	}
	if surges != 2 {
		t.Fatalf("want 2 surges for api and none yet for web, got %v", want.Allocs)
	}
	rng := rand.New(rand.NewPCG(11, 13))
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
}
