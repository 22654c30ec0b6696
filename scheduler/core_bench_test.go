package scheduler

import (
	"fmt"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/jobspec"
)

// benchInput is a cluster of 100 nodes in 10 pools of 10 and 1,000 jobs at
// rest: 800 replicas of 3, 150 singletons, 40 spread and 10 ring apps,
// the last three kinds each confined to one pool (a singleton's every
// feasible node is a candidate). Every instance runs healthy and every
// singleton has a leader; then two nodes start draining and a tenth of the
// jobs get a new version, so the call has moves and a rollout to do.
func benchInput(b *testing.B) Input {
	nodes := make([]NodeInfo, 100)
	for i := range nodes {
		nodes[i] = NodeInfo{
			ID: fmt.Sprintf("node-%03d", i), Address: fmt.Sprintf("10.0.0.%d", i), Eligible: true,
			Labels: map[string]string{"pool": fmt.Sprintf("p%d", i%10), "zone": fmt.Sprintf("z%d", i%3)},
		}
	}
	var jobs []Job
	add := func(name string, mode jobspec.Mode, count int, pool bool) {
		spec := appSpec(name, mode, count)
		if pool {
			spec.Constraints = []jobspec.Constraint{{Attribute: "node.labels.pool", Operator: jobspec.OpEqual, Value: fmt.Sprintf("p%d", len(jobs)%10)}}
		} else {
			spec.Spreads = []jobspec.Spread{{Attribute: "node.labels.zone", Weight: 50}}
		}
		jobs = append(jobs, Job{Name: name, Version: 1, Spec: spec})
	}
	for i := range 800 {
		add(fmt.Sprintf("svc-%03d", i), jobspec.ModeReplicas, 3, false)
	}
	for i := range 150 {
		add(fmt.Sprintf("db-%03d", i), jobspec.ModeSingleton, 0, true)
	}
	for i := range 40 {
		add(fmt.Sprintf("agent-%02d", i), jobspec.ModeSpread, 0, true)
	}
	for i := range 10 {
		add(fmt.Sprintf("cache-%d", i), jobspec.ModeRing, 0, true)
	}
	in := Input{Jobs: jobs, Nodes: nodes, Now: t0}
	in.Allocs = Reconcile(in).Allocs
	led := make(map[string]bool)
	for _, a := range in.Allocs {
		st := up(a.Job, a.Node, a.Version, longAgo)
		if a.Job[:3] == "db-" {
			st.State, st.Active = StateStandby, !led[a.Job]
			if st.Active {
				st.State = StateRunning
			}
			led[a.Job] = true
		}
		in.States = append(in.States, st)
	}
	out := Reconcile(in)
	for _, j := range jobs {
		if p := out.Jobs[j.Name]; !p.Complete {
			b.Fatalf("%s not at rest: %+v", j.Name, p)
		}
	}
	in.Nodes[3].Draining, in.Nodes[42].Draining = true, true
	for i := 0; i < len(in.Jobs); i += 10 {
		in.Jobs[i].Version++
	}
	in.Now = t0.Add(time.Minute)
	return in
}

func BenchmarkReconcile(b *testing.B) {
	in := benchInput(b)
	b.ReportAllocs()
	for b.Loop() {
		Reconcile(in)
	}
	b.ReportMetric(float64(len(in.Allocs)), "assignments/op")
}
