package scheduler

import (
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
