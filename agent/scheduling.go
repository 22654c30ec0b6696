package agent

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	cluster "github.com/ozanturksever/go-cluster"

	"github.com/ozanturksever/go-cluster/control"
	"github.com/ozanturksever/go-cluster/placement"
	"github.com/ozanturksever/go-cluster/scheduler"
)

// schedule runs the scheduler while this agent holds the scheduler lease:
// it re-evaluates whenever jobs, controls, reports or node presence change,
// and at least every second (health ages and drain deadlines move on
// their own). Every write is a compare-and-set on the node's key, so a
// deposed scheduler that has not noticed yet cannot overwrite a node its
// successor already wrote; the successor's next evaluation corrects any
// other node it wrote meanwhile.
func (a *Agent) schedule(ctx context.Context) {
	log := a.log.With("role", "scheduler")
	log.Info("scheduler started")
	defer log.Info("scheduler stopped")
	changes, err := a.store.Watch(ctx)
	if err != nil {
		log.Error("scheduler cannot watch state", "err", err)
		return
	}
	nodes, err := a.platform.WatchNodes(ctx)
	if err != nil {
		log.Error("scheduler cannot watch nodes", "err", err)
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last map[string]control.Progress
	for {
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case ev, ok := <-nodes:
			if !ok {
				return
			}
			if ev.Left {
				log.Info("node left", "node_id", ev.Node.ID)
			} else {
				log.Debug("node present", "node_id", ev.Node.ID)
			}
		case <-tick.C:
		}
		// Coalesce a burst of changes (an agent's report and allocation
		// watch fire together) into one evaluation.
		drain(changes, 10*time.Millisecond)
		start := time.Now()
		progress, err := a.evaluate(ctx, last)
		a.metrics.evaluations.Inc()
		a.metrics.evalSeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("evaluation failed; retrying", "err", err)
			}
			continue
		}
		last = progress
	}
}

func drain(c <-chan struct{}, wait time.Duration) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-c:
		case <-t.C:
			return
		}
	}
}

// evaluate reads the cluster, runs the scheduler core and writes what
// changed.
func (a *Agent) evaluate(ctx context.Context, last map[string]control.Progress) (map[string]control.Progress, error) {
	cs, err := readCluster(ctx, a.store, a.js)
	if err != nil {
		return last, err
	}
	in, current := cs.input, cs.allocs
	out := scheduler.Reconcile(in)
	if len(cs.overdue) > 0 {
		// A drain past its deadline stops what is left on the node, moved
		// or not: the operator chose a deadline over waiting.
		out.Allocs = slices.DeleteFunc(out.Allocs, func(al scheduler.Alloc) bool { return cs.overdue[al.Node] })
	}

	byNode := map[string][]scheduler.Alloc{}
	for _, al := range out.Allocs {
		byNode[al.Node] = append(byNode[al.Node], al)
	}
	for node := range current {
		if _, ok := byNode[node]; !ok {
			byNode[node] = nil
		}
	}
	for node, allocs := range byNode {
		cur := current[node]
		if sameAllocs(cur.Allocs, allocs) {
			continue
		}
		if err := a.store.WriteAllocs(ctx, node, allocs, cur.Revision); err != nil {
			// A compare-and-set failure means someone else wrote since we
			// read: the next evaluation starts over from fresh state.
			return last, err
		}
		a.metrics.placements.Add(float64(max(0, len(allocs)-len(cur.Allocs))))
	}

	progress := map[string]control.Progress{}
	for name := range last {
		if !slices.ContainsFunc(in.Jobs, func(j scheduler.Job) bool { return j.Name == name }) {
			// Purged: its progress would mislead a job submitted again.
			if err := a.store.DeleteProgress(ctx, name); err != nil {
				return last, err
			}
		}
	}
	for _, j := range in.Jobs {
		p := control.Progress{Job: j.Name, Version: j.Version, State: out.Jobs[j.Name]}
		if plan, ok := out.Plans[j.Name]; ok {
			p.Placement = ExplainLines(plan)
		}
		progress[j.Name] = p
		if old, ok := last[j.Name]; ok && sameProgress(old, p) {
			continue
		}
		if p.State.Failed != "" {
			a.log.Warn("job not running as wanted", "role", "scheduler", "job", j.Name, "version", j.Version, "reason", p.State.Failed, "nodes", len(in.Nodes))
		}
		p.Updated = time.Now().UTC()
		if err := a.store.PutProgress(ctx, p); err != nil {
			return last, err
		}
	}
	return progress, nil
}

// clusterState is what one evaluation reads: the scheduler core's input,
// the allocations as written (with their revisions, for compare-and-set)
// and the nodes whose drain deadline has passed.
type clusterState struct {
	input   scheduler.Input
	allocs  map[string]control.NodeAllocs
	overdue map[string]bool
}

// readCluster gathers jobs, live agents with their controls, the current
// allocations and the agents' reports.
func readCluster(ctx context.Context, store *control.Store, js jetstream.JetStream) (clusterState, error) {
	cs := clusterState{input: scheduler.Input{Now: time.Now()}, overdue: map[string]bool{}}
	in := &cs.input
	jobs, err := store.Jobs(ctx)
	if err != nil {
		return cs, err
	}
	for _, j := range jobs {
		in.Jobs = append(in.Jobs, scheduler.Job{Name: j.Name, Version: j.Version, Spec: j.Spec, Stopped: j.Stopped})
	}
	nodes, err := cluster.NodesOf(ctx, js, store.Layout().Platform)
	if err != nil {
		return cs, err
	}
	controls, err := store.NodeControls(ctx)
	if err != nil {
		return cs, err
	}
	live := map[string]bool{}
	for _, n := range agentNodes(nodes) {
		c := controls[n.ID]
		live[n.ID] = true
		in.Nodes = append(in.Nodes, scheduler.NodeInfo{
			ID: n.ID, Address: n.Address, Labels: n.Labels,
			Eligible: !c.Ineligible, Draining: c.Drain,
		})
		if c.Drain && !c.DrainDeadline.IsZero() && in.Now.After(c.DrainDeadline) {
			cs.overdue[n.ID] = true
		}
	}
	if cs.allocs, err = store.Allocs(ctx); err != nil {
		return cs, err
	}
	for _, na := range cs.allocs {
		in.Allocs = append(in.Allocs, na.Allocs...)
	}
	reports, err := store.Reports(ctx)
	if err != nil {
		return cs, err
	}
	for node, r := range reports {
		if live[node] {
			in.States = append(in.States, r.Instances...)
		}
	}
	return cs, nil
}

// DryRun places proposed job versions (and stops the jobs named in stop)
// on the cluster as it is now, without writing anything, and returns the
// placement plan of every job: what `gcl job plan` shows.
func DryRun(ctx context.Context, store *control.Store, js jetstream.JetStream, proposed []control.Job, stop []string) (map[string]placement.AppPlan, error) {
	cs, err := readCluster(ctx, store, js)
	if err != nil {
		return nil, err
	}
	in := cs.input
	for _, p := range proposed {
		j := scheduler.Job{Name: p.Name, Version: p.Version, Spec: p.Spec}
		if i := slices.IndexFunc(in.Jobs, func(x scheduler.Job) bool { return x.Name == p.Name }); i >= 0 {
			in.Jobs[i] = j
		} else {
			in.Jobs = append(in.Jobs, j)
		}
	}
	for _, name := range stop {
		if i := slices.IndexFunc(in.Jobs, func(x scheduler.Job) bool { return x.Name == name }); i >= 0 {
			in.Jobs[i].Stopped = true
		}
	}
	return scheduler.Reconcile(in).Plans, nil
}

// agentNodes keeps the nodes run by gcl agents: programs using the library
// on their own are platform members but take no jobs.
func agentNodes(nodes []cluster.NodeInfo) []cluster.NodeInfo {
	return slices.DeleteFunc(slices.Clone(nodes), func(n cluster.NodeInfo) bool { return n.Agent == "" })
}

func sameAllocs(a, b []scheduler.Alloc) bool {
	return slices.EqualFunc(a, b, func(x, y scheduler.Alloc) bool {
		return x.Job == y.Job && x.Node == y.Node && x.Version == y.Version &&
			x.Replaces == y.Replaces && x.UpdatedAt.Equal(y.UpdatedAt)
	})
}

func sameProgress(a, b control.Progress) bool {
	a.Updated, b.Updated = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// ExplainLines is a plan's explanation, one line per entry.
func ExplainLines(plan placement.AppPlan) []string {
	text := strings.TrimSpace(plan.Explain())
	if text == "" {
		return nil
	}
	return strings.Split(text, "\n")
}
