package scheduler

import (
	"cmp"
	"maps"
	"slices"
	"testing"
	"time"
)

// simCluster is a small cluster simulator: it runs Reconcile, carries out
// its output the way agents would and lets simulated time pass, so that
// tests can watch properties hold over a whole drain or rollout.
//
// Agents react at once to a written assignment: a new allocation starts
// its instance, a bumped Version restarts it, a removed one stops it (a
// singleton leader stepping down). An instance runs `startup` after it
// started, or fails if its version is broken. Singleton elections are
// instant: when a job has no leader, its first standby in node order that
// has run for at least a tick becomes leader.
type simCluster struct {
	t       *testing.T
	now     time.Time
	tick    time.Duration
	startup time.Duration
	jobs    []Job
	nodes   []NodeInfo
	allocs  []Alloc
	agents  map[allocKey]*simInstance
	// broken maps a job to a version whose instances fail once started;
	// hang to one whose instances never finish starting.
	broken, hang map[string]uint64
	out          Output
	// checks run after every change: once agents reacted to an output and
	// once time passed.
	checks []func(c *simCluster, when string)
}

type simInstance struct {
	version uint64
	state   string
	since   time.Time
	active  bool
}

func newSim(t *testing.T, nodes []NodeInfo, jobs ...Job) *simCluster {
	return &simCluster{
		t: t, now: t0, tick: 5 * time.Second, startup: 3 * time.Second,
		jobs: jobs, nodes: nodes,
		agents: make(map[allocKey]*simInstance),
		broken: make(map[string]uint64), hang: make(map[string]uint64),
	}
}

func (c *simCluster) singleton(job string) bool {
	for _, j := range c.jobs {
		if j.Name == job {
			return j.Spec.Mode == "singleton"
		}
	}
	return false
}

// states is what the agents report.
func (c *simCluster) states() []InstanceState {
	var out []InstanceState
	for _, k := range slices.SortedFunc(maps.Keys(c.agents), func(a, b allocKey) int {
		return cmp.Or(cmp.Compare(a.job, b.job), cmp.Compare(a.node, b.node))
	}) {
		i := c.agents[k]
		out = append(out, InstanceState{Job: k.job, Node: k.node, Version: i.version, State: i.state, Active: i.active, Since: i.since})
	}
	return out
}

func (c *simCluster) input() Input {
	return Input{Jobs: c.jobs, Nodes: c.nodes, Allocs: c.allocs, States: c.states(), Now: c.now}
}

// step reconciles, lets the agents carry out the output, then lets one
// tick pass.
func (c *simCluster) step() Output {
	c.t.Helper()
	c.out = Reconcile(c.input())
	c.allocs = c.out.Allocs
	c.carryOut()
	c.check("after reconcile")
	c.now = c.now.Add(c.tick)
	c.advance()
	c.check("after a tick")
	return c.out
}

func (c *simCluster) check(when string) {
	c.t.Helper()
	for _, f := range c.checks {
		f(c, when)
	}
}

// carryOut makes the agents match the allocations.
func (c *simCluster) carryOut() {
	wanted := make(map[allocKey]bool)
	for _, a := range c.allocs {
		k := allocKey{a.Job, a.Node}
		wanted[k] = true
		if i := c.agents[k]; i == nil || i.version != a.Version {
			c.agents[k] = &simInstance{version: a.Version, state: StateStarting, since: c.now}
		}
	}
	for k := range c.agents {
		if !wanted[k] {
			delete(c.agents, k)
		}
	}
	live := make(map[string]bool)
	for _, n := range c.nodes {
		live[n.ID] = true
	}
	for k := range c.agents {
		if !live[k.node] {
			delete(c.agents, k)
		}
	}
}

// advance moves instances on in time and runs elections.
func (c *simCluster) advance() {
	keys := slices.SortedFunc(maps.Keys(c.agents), func(a, b allocKey) int {
		return cmp.Or(cmp.Compare(a.job, b.job), cmp.Compare(a.node, b.node))
	})
	for _, k := range keys {
		i := c.agents[k]
		if i.state != StateStarting || c.now.Sub(i.since) < c.startup {
			continue
		}
		switch {
		case c.hang[k.job] == i.version && i.version != 0:
		case c.broken[k.job] == i.version && i.version != 0:
			i.state, i.since = StateFailed, c.now
		case c.singleton(k.job):
			i.state, i.since = StateStandby, c.now
		default:
			i.state, i.since, i.active = StateRunning, c.now, true
		}
	}
	led := make(map[string]bool)
	for _, k := range keys {
		if i := c.agents[k]; i.active && c.singleton(k.job) {
			led[k.job] = true
		}
	}
	for _, k := range keys {
		if i := c.agents[k]; c.singleton(k.job) && !led[k.job] && i.state == StateStandby {
			i.state, i.since, i.active = StateRunning, c.now, true
			led[k.job] = true
		}
	}
}

// converge steps until every job is complete, at most n steps.
func (c *simCluster) converge(n int) {
	c.t.Helper()
	for range n {
		out := c.step()
		done := true
		for _, j := range c.jobs {
			if !out.Jobs[j.Name].Complete {
				done = false
			}
		}
		if done {
			return
		}
	}
	c.t.Fatalf("not converged after %d steps: %v %+v", n, c.allocs, c.out.Jobs)
}

// settle lets time pass until every running instance has proved healthy.
func (c *simCluster) settle() { c.now = c.now.Add(minHealthy) }

// count counts the job's instances that satisfy f.
func (c *simCluster) count(job string, f func(node string, i *simInstance) bool) int {
	n := 0
	for k, i := range c.agents {
		if k.job == job && f(k.node, i) {
			n++
		}
	}
	return n
}

func isRunning(_ string, i *simInstance) bool { return i.state == StateRunning }

// isHealthy is the scheduler's notion: up for MinHealthyTime.
func (c *simCluster) isHealthy(_ string, i *simInstance) bool {
	return (i.state == StateRunning || i.state == StateStandby) && c.now.Sub(i.since) >= minHealthy
}

func (c *simCluster) setNodes(nodes []NodeInfo) { c.nodes = nodes }

func (c *simCluster) drainComplete(node string) bool {
	for _, a := range c.allocs {
		if a.Node == node {
			return false
		}
	}
	return true
}

// TestSimDrainReplicas drains a node running one of three replicas on four
// nodes: the replacement starts before the drained instance stops, so at
// least three instances run all the time, and the drain completes.
func TestSimDrainReplicas(t *testing.T) {
	c := newSim(t, liveNodes(4), replicasJob("api", 1, 3))
	c.converge(20)
	victim := nodesOf(c.allocs, "api")[0]
	c.checks = append(c.checks, func(c *simCluster, when string) {
		if n := c.count("api", isRunning); n < 3 {
			t.Fatalf("%s at %s: %d instances running, want at least 3: %v", when, c.now.Sub(t0), n, c.allocs)
		}
		for _, a := range c.allocs {
			if a.Node != victim && a.Replaces != "" && a.Replaces != victim {
				t.Fatalf("surge %v replaces a node that is not draining", a)
			}
		}
	})
	c.setNodes(draining(liveNodes(4), victim))
	steps := 0
	for !c.drainComplete(victim) {
		if steps++; steps > 20 {
			t.Fatalf("drain of %s not complete: %v", victim, c.allocs)
		}
		out := c.step()
		if n := len(allocsOf(out.Allocs, "api")); n > 4 {
			t.Fatalf("%d allocations, want at most 3 and one surge: %v", n, out.Allocs)
		}
	}
	c.converge(10)
	if got := len(c.allocs); got != 3 {
		t.Errorf("%d allocations after the drain, want 3: %v", got, c.allocs)
	}
	if steps < 2 {
		t.Errorf("drain took %d steps: the source must wait for its surge to be healthy", steps)
	}
}

// TestSimDrainTwoNodesReplicas drains two of the three nodes running
// replicas, with only one node free: one instance moves there, start
// before stop, the other has nowhere to go and stops.
func TestSimDrainTwoNodesReplicas(t *testing.T) {
	c := newSim(t, liveNodes(4), replicasJob("api", 1, 3))
	c.converge(20)
	running := nodesOf(c.allocs, "api")
	c.checks = append(c.checks, func(c *simCluster, when string) {
		// Running instances drop only by the one that has nowhere to go.
		if n := c.count("api", isRunning); n < 2 {
			t.Fatalf("%s: %d running: %v", when, n, c.allocs)
		}
	})
	c.setNodes(draining(liveNodes(4), running[0], running[1]))
	for range 20 {
		c.step()
	}
	if !c.drainComplete(running[0]) || !c.drainComplete(running[1]) {
		t.Fatalf("drain incomplete: %v", c.allocs)
	}
	if p := c.out.Jobs["api"]; p.Want != 3 || p.Running != 2 || p.Failed == "" {
		t.Errorf("progress %+v, want 2 of 3 running and the unmet placement explained", p)
	}
}

// TestSimDrainSingletonLeader drains the leader's node: the leader's
// allocation goes only while another candidate is a healthy standby, so
// the election always has one to promote.
func TestSimDrainSingletonLeader(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		name := "healthy standbys"
		if fresh {
			name = "standbys still starting"
		}
		t.Run(name, func(t *testing.T) {
			c := newSim(t, liveNodes(4), singletonJob("db", 1))
			c.converge(20)
			c.settle()
			ld := ""
			for k, i := range c.agents {
				if i.active {
					ld = k.node
				}
			}
			if fresh {
				// Restart every standby just before the drain.
				for k, i := range c.agents {
					if !i.active {
						c.agents[k] = &simInstance{version: i.version, state: StateStarting, since: c.now}
					}
				}
			}
			leaderRemovedAt := time.Time{}
			c.checks = append(c.checks, func(c *simCluster, when string) {
				hasLeader, ready := false, 0
				for k, i := range c.agents {
					if k.job != "db" {
						continue
					}
					hasLeader = hasLeader || i.active
					if i.state == StateStandby && c.isHealthy(k.node, i) {
						ready++
					}
				}
				if !hasLeader && ready == 0 {
					t.Fatalf("%s at %s: no leader and no healthy standby: %v", when, c.now.Sub(t0), c.allocs)
				}
				if leaderRemovedAt.IsZero() && c.drainComplete(ld) {
					leaderRemovedAt = c.now
				}
			})
			c.setNodes(draining(liveNodes(4), ld))
			drainedAt := c.now
			for range 10 {
				c.step()
			}
			if !c.drainComplete(ld) {
				t.Fatalf("drain of leader node %s incomplete: %v", ld, c.allocs)
			}
			took := leaderRemovedAt.Sub(drainedAt)
			if fresh && took < c.startup+minHealthy {
				t.Errorf("leader removed %s into the drain, before any standby could be healthy", took)
			}
			if !fresh && took != 0 {
				t.Errorf("leader removed %s into the drain, want at once: healthy standbys were ready", took)
			}
			c.converge(10)
			if p := c.out.Jobs["db"]; p.Want != 3 || !p.Complete {
				t.Errorf("progress %+v, want 3 candidates complete", p)
			}
		})
	}
}

// TestSimDrainSpread drains a node of a spread app: its instance stops
// (there is no other node to move to) and the other instances are never
// touched.
func TestSimDrainSpread(t *testing.T) {
	c := newSim(t, liveNodes(4), spreadJob("agent", 1))
	c.converge(20)
	c.checks = append(c.checks, func(c *simCluster, when string) {
		n := c.count("agent", func(node string, i *simInstance) bool { return node != "n2" && i.state == StateRunning })
		if n < 3 {
			t.Fatalf("%s: %d instances running off the drained node, want 3", when, n)
		}
	})
	c.setNodes(draining(liveNodes(4), "n2"))
	c.step()
	if !c.drainComplete("n2") {
		t.Fatalf("drain incomplete after one step: %v", c.allocs)
	}
	c.converge(10)
	if p := c.out.Jobs["agent"]; p.Want != 3 || p.Running != 3 {
		t.Errorf("progress %+v", p)
	}
}

// TestSimDrainSpreadToNewNode: a node joins while another drains, so the
// spread app's instance moves, start before stop.
func TestSimDrainSpreadToNewNode(t *testing.T) {
	c := newSim(t, liveNodes(3), spreadJob("agent", 1))
	c.converge(20)
	c.checks = append(c.checks, func(c *simCluster, when string) {
		if n := c.count("agent", isRunning); n < 3 {
			t.Fatalf("%s: %d running", when, n)
		}
	})
	c.setNodes(draining(liveNodes(4), "n1"))
	for range 10 {
		c.step()
	}
	if !c.drainComplete("n1") || len(c.allocs) != 3 {
		t.Fatalf("allocs %v", c.allocs)
	}
}

// rollout runs a rolling update of a replicas job of 4 instances to version
// 2 and checks that at most maxParallel are unhealthy at any time.
func rollout(t *testing.T, maxParallel int) *simCluster {
	job := replicasJob("api", 1, 4)
	c := newSim(t, liveNodes(5), job)
	c.converge(20)
	c.settle()
	job.Version = 2
	job.Spec.Update.MaxParallel = maxParallel
	c.jobs = []Job{job}
	worst := 0
	c.checks = append(c.checks, func(c *simCluster, when string) {
		n := c.count("api", func(node string, i *simInstance) bool { return !c.isHealthy(node, i) })
		if n > maxParallel {
			t.Fatalf("%s at %s: %d instances not healthy, max_parallel %d: %v", when, c.now.Sub(t0), n, maxParallel, c.allocs)
		}
		worst = max(worst, n)
	})
	c.converge(40)
	for _, a := range c.allocs {
		if a.Version != 2 || !a.UpdatedAt.IsZero() {
			t.Errorf("after the rollout %v, want version 2 verified", a)
		}
	}
	if len(c.allocs) != 4 || c.count("api", func(_ string, i *simInstance) bool { return i.version == 2 && i.state == StateRunning }) != 4 {
		t.Errorf("allocs %v", c.allocs)
	}
	if worst != maxParallel {
		t.Errorf("at most %d instances updated at once, want batches of %d", worst, maxParallel)
	}
	return c
}

func TestSimRollingUpdate(t *testing.T) {
	t.Run("max_parallel 1", func(t *testing.T) { rollout(t, 1) })
	t.Run("max_parallel 2", func(t *testing.T) { rollout(t, 2) })
}

// TestSimRollingUpdateSingleton updates standbys first and the leader
// last, so that the leader's restart hands over to an updated standby.
func TestSimRollingUpdateSingleton(t *testing.T) {
	job := singletonJob("db", 1)
	job.Spec.Update.MaxParallel = 2
	c := newSim(t, liveNodes(4), job)
	c.converge(20)
	ld := ""
	for k, i := range c.agents {
		if i.active {
			ld = k.node
		}
	}
	job.Version = 2
	c.jobs = []Job{job}
	var order []string
	seen := map[string]bool{}
	c.checks = append(c.checks, func(c *simCluster, when string) {
		for _, a := range c.allocs {
			if a.Version == 2 && !seen[a.Node] {
				seen[a.Node] = true
				order = append(order, a.Node)
			}
		}
		hasLeader, ready := false, false
		for k, i := range c.agents {
			hasLeader = hasLeader || i.active
			ready = ready || (i.state == StateStandby && c.isHealthy(k.node, i))
		}
		if !hasLeader && !ready {
			t.Fatalf("%s: no leader and no healthy standby", when)
		}
	})
	c.converge(40)
	if len(order) != 4 || order[3] != ld {
		t.Errorf("update order %v, want the leader %s last", order, ld)
	}
}

// TestSimFailedUpdateHalts: the new version fails on the first instance
// updated, so the rollout stops there and says why; a fixed version then
// rolls out, the failed instance first. With a free node the update is a
// surge, so all four old instances keep running beside the failed one.
func TestSimFailedUpdateHalts(t *testing.T) {
	job := replicasJob("api", 1, 4)
	c := newSim(t, liveNodes(5), job)
	c.converge(20)
	c.broken["api"] = 2
	job.Version = 2
	c.jobs = []Job{job}
	for range 20 {
		c.step()
	}
	v2 := 0
	for _, a := range c.allocs {
		if a.Version == 2 {
			v2++
		}
	}
	if v2 != 1 {
		t.Errorf("%d allocations at the broken version, want the rollout halted after 1: %v", v2, c.allocs)
	}
	p := c.out.Jobs["api"]
	if p.Failed == "" || p.Updating || p.Complete {
		t.Errorf("progress %+v, want a failed, halted rollout", p)
	}
	if n := c.count("api", func(_ string, i *simInstance) bool { return i.version == 1 && i.state == StateRunning }); n != 4 {
		t.Errorf("%d instances running the old version, want all 4: the failed surge's source stays", n)
	}

	job.Version = 3
	c.jobs = []Job{job}
	c.converge(40)
	for _, a := range c.allocs {
		if a.Version != 3 {
			t.Errorf("%v not updated to the fixed version", a)
		}
	}
	if len(c.allocs) != 4 {
		t.Errorf("allocs %v, want 4", c.allocs)
	}
}

// TestSimUpdateDeadline: an updated instance that never becomes healthy
// halts the rollout once the healthy deadline has passed.
func TestSimUpdateDeadline(t *testing.T) {
	job := replicasJob("api", 1, 3)
	c := newSim(t, liveNodes(3), job)
	c.converge(20)
	c.hang["api"] = 2
	job.Version = 2
	c.jobs = []Job{job}
	bumpedAt := c.now
	var failedAt time.Time
	for range 30 {
		out := c.step()
		if failedAt.IsZero() && out.Jobs["api"].Failed != "" {
			failedAt = c.now
		}
	}
	if failedAt.IsZero() || failedAt.Sub(bumpedAt) < deadline {
		t.Errorf("rollout failed at %s after the bump, want after the %s deadline", failedAt.Sub(bumpedAt), deadline)
	}
	v2 := len(slices.DeleteFunc(slices.Clone(c.allocs), func(a Alloc) bool { return a.Version != 2 }))
	if v2 != 1 {
		t.Errorf("%d allocations at version 2, want 1: %v", v2, c.allocs)
	}
}

// TestSimCrashLoopFailsOver: an instance whose restarts are exhausted on
// its node moves to another node.
func TestSimCrashLoopFailsOver(t *testing.T) {
	c := newSim(t, liveNodes(4), replicasJob("api", 1, 3))
	c.converge(20)
	victim := nodesOf(c.allocs, "api")[0]
	c.agents[allocKey{"api", victim}].state = StateFailed
	c.step()
	if slices.Contains(nodesOf(c.allocs, "api"), victim) {
		t.Errorf("failed instance on %s did not fail over: %v", victim, c.allocs)
	}
	if len(c.allocs) != 3 {
		t.Errorf("allocs %v", c.allocs)
	}
	c.converge(10)
}

// TestSimNodeLoss: a node dies; its instance is placed anew.
func TestSimNodeLoss(t *testing.T) {
	c := newSim(t, liveNodes(4), replicasJob("api", 1, 3), singletonJob("db", 1))
	c.converge(20)
	victim := nodesOf(c.allocs, "api")[0]
	var nodes []NodeInfo
	for _, n := range liveNodes(4) {
		if n.ID != victim {
			nodes = append(nodes, n)
		}
	}
	c.setNodes(nodes)
	c.converge(20)
	if got := nodesOf(c.allocs, "api"); len(got) != 3 || slices.Contains(got, victim) {
		t.Errorf("api on %v after losing %s", got, victim)
	}
	if got := nodesOf(c.allocs, "db"); len(got) != 3 {
		t.Errorf("db candidates %v", got)
	}
}
