package scheduler

import (
	"slices"

	"github.com/ozanturksever/go-cluster/placement"
)

// placementInput is what placement sees: the planned jobs' apps and the
// live nodes with the jobs' presented instances (a surge and its source
// show as one instance on the surge's node). Stopped, spec-less and
// unlisted jobs are left out entirely; their instances are going or are
// not the scheduler's to move.
func placementInput(works []*jobWork, nodes []NodeInfo) placement.Input {
	in := placement.Input{
		Apps:  make([]placement.App, 0, len(works)),
		Nodes: make([]placement.Node, len(nodes)),
	}
	instances := make(map[string][]placement.Instance, len(nodes))
	for _, w := range works {
		in.Apps = append(in.Apps, w.placementApp())
		for _, s := range w.slots {
			if w.isInstance(s) {
				instances[s.alloc.Node] = append(instances[s.alloc.Node], placement.Instance{App: w.job.Name, Active: s.active()})
			}
		}
	}
	for i, n := range nodes {
		in.Nodes[i] = placement.Node{
			ID:        n.ID,
			Address:   n.Address,
			Labels:    n.Labels,
			Eligible:  n.Eligible && !n.Draining,
			Draining:  n.Draining,
			Instances: instances[n.ID],
		}
	}
	return in
}

// place plans all jobs at once, as placement must (away_from, near and
// load tie them together). Placement refuses the whole input when one app
// is invalid; so that one bad job file does not stop scheduling for all,
// the apps it refuses are found one by one, reported in rejected (job →
// reason) and left out, and the rest is planned again. err is set only
// when placement still fails, which normalized input should never cause.
func place(works []*jobWork, nodes []NodeInfo) (plan placement.Plan, rejected map[string]string, err error) {
	in := placementInput(works, nodes)
	plan, err = placement.Place(in)
	if err == nil {
		return plan, nil, nil
	}
	rejected = make(map[string]string)
	kept := works[:0:0]
	for i, w := range works {
		if _, err := placement.Place(placement.Input{Apps: in.Apps[i : i+1]}); err != nil {
			rejected[w.job.Name] = err.Error()
			continue
		}
		kept = append(kept, w)
	}
	if len(rejected) == 0 {
		return placement.Plan{}, nil, err
	}
	plan, err = placement.Place(placementInput(kept, nodes))
	return plan, rejected, err
}

// surgeNodes finds, for every job in works, free nodes for the members of
// its rollout batch that may surge (batches[i] is works[i]'s batch; see
// canSurge): free[i] lists at most that many nodes, feasible for the job
// and holding no allocation of it (freeNode). Feasibility is
// placement's: the works are planned once more, as they stand after apply,
// each job that wants surges with its Count raised by the surges it wants,
// and the new nodes of its ActionPlace decisions are the ones. The job's
// failover exclusions stay (placementApp), away_from and near see the
// other jobs where they run after apply, and all jobs are planned, as only
// a full input gives placement the load and the other apps' instances.
//
// Placement sees neither a source waiting for its surge nor an allocation
// retired this call, so it may choose such a node; freeNode leaves it out
// (fewer surges, not two allocations on one node), as it does a node a job
// without distinct_hosts doubles up on.
// Nothing is found when no job wants a surge (no call is made then) or
// placement fails, which it should not, as it accepted the same apps
// before: the batches are then updated in place.
func surgeNodes(works []*jobWork, batches [][]*slot, nodes []NodeInfo) [][]string {
	wanted := make([]int, len(works))
	anyWanted := false
	for i, w := range works {
		for _, s := range batches[i] {
			if w.canSurge(s) {
				wanted[i]++
			}
		}
		anyWanted = anyWanted || wanted[i] > 0
	}
	if !anyWanted {
		return nil
	}
	in := placementInput(works, nodes)
	for i, w := range works {
		if wanted[i] == 0 {
			continue
		}
		presented := 0
		for _, s := range w.slots {
			if w.isInstance(s) {
				presented++
			}
		}
		in.Apps[i].Count = presented + wanted[i]
	}
	plan, err := placement.Place(in)
	if err != nil {
		return nil
	}
	free := make([][]string, len(works))
	for i, w := range works {
		if wanted[i] == 0 {
			continue
		}
		ap, _ := plan.App(w.job.Name)
		for _, d := range ap.Decisions {
			if len(free[i]) == wanted[i] {
				break
			}
			if d.Action == placement.ActionPlace && w.freeNode(d.Node) && !slices.Contains(free[i], d.Node) {
				free[i] = append(free[i], d.Node)
			}
		}
	}
	return free
}
