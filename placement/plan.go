package placement

import (
	"cmp"
	"slices"
)

// Plan is the outcome of Place: what to do with every app.
type Plan struct {
	// Apps is sorted by name. It includes apps that run somewhere but are
	// no longer wanted; all their instances stop.
	Apps []AppPlan
}

// App returns the plan of the named app.
func (p Plan) App(name string) (AppPlan, bool) {
	i, ok := slices.BinarySearchFunc(p.Apps, name, func(a AppPlan, name string) int {
		return cmp.Compare(a.App, name)
	})
	if !ok {
		return AppPlan{}, false
	}
	return p.Apps[i], true
}

// AppPlan is the plan of one app.
type AppPlan struct {
	App string
	// Want is how many instances the app should have: Count, or for apps
	// that run on every feasible node the number of feasible nodes but at
	// least 1, so that an app no node can run shows as unmet.
	Want int
	// Have is how many instances it has once the plan is carried out.
	Have int
	// Decisions are sorted by node, then action, then source node.
	Decisions []Decision
	// Filtered says why nodes were left out, one entry per step that
	// removed any; see Explain.
	Filtered []Filtered
}

// Nodes returns the nodes the app runs on once the plan is carried out, in
// decision order; a node appears once per instance.
func (a AppPlan) Nodes() []string {
	nodes := make([]string, 0, a.Have)
	for _, d := range a.Decisions {
		if d.Action != ActionStop {
			nodes = append(nodes, d.Node)
		}
	}
	return nodes
}

// Action is what happens to one instance.
type Action string

const (
	ActionKeep  Action = "keep"
	ActionPlace Action = "place"
	// ActionMove replaces an instance that cannot stay where it is (its node
	// drains, became ineligible or no longer satisfies the app) with one on
	// another node. How the two overlap is the scheduler's business.
	ActionMove Action = "move"
	ActionStop Action = "stop"
)

// Decision is what happens to one instance of an app.
type Decision struct {
	Action Action
	// Node is where the instance runs afterwards, or for ActionStop where
	// it stops.
	Node string
	// From is the node an ActionMove leaves.
	From string
	// Active marks an instance on a node where the app is active now: a
	// singleton's leader, whose move or stop needs a handoff, or any
	// instance of the other modes.
	Active bool
}

// order sorts the decisions on one node.
func (a Action) order() int {
	switch a {
	case ActionKeep:
		return 0
	case ActionMove:
		return 1
	case ActionPlace:
		return 2
	}
	return 3
}

// placedInstance is an instance of the app being planned, on a node given
// by its index in the sorted node list.
type placedInstance struct {
	node   int32
	active bool
}

// outcome is what planning decided for one app, before it becomes
// decisions.
type outcome struct {
	keep []placedInstance
	// leave holds instances whose node the app may no longer use, active
	// ones first.
	leave []placedInstance
	// surplus holds instances on usable nodes beyond what the app wants.
	surplus []placedInstance
	// place holds the nodes chosen for new instances, best first.
	place []int32
}

// decisions diffs the outcome against the current state: instances that
// must leave move to the new nodes while there are any, so the scheduler
// sees one Move rather than an unrelated Stop and Place; the remaining new
// nodes get fresh instances and the remaining leavers stop.
func (o *outcome) decisions(nodes []*Node) []Decision {
	ds := make([]Decision, 0, len(o.keep)+len(o.place)+len(o.leave)+len(o.surplus))
	for _, k := range o.keep {
		ds = append(ds, Decision{Action: ActionKeep, Node: nodes[k.node].ID, Active: k.active})
	}
	moves := min(len(o.leave), len(o.place))
	for i, to := range o.place {
		if i < moves {
			from := o.leave[i]
			ds = append(ds, Decision{Action: ActionMove, Node: nodes[to].ID, From: nodes[from.node].ID, Active: from.active})
			continue
		}
		ds = append(ds, Decision{Action: ActionPlace, Node: nodes[to].ID})
	}
	for _, s := range o.leave[moves:] {
		ds = append(ds, Decision{Action: ActionStop, Node: nodes[s.node].ID, Active: s.active})
	}
	for _, s := range o.surplus {
		ds = append(ds, Decision{Action: ActionStop, Node: nodes[s.node].ID, Active: s.active})
	}
	slices.SortFunc(ds, func(a, b Decision) int {
		return cmp.Or(
			cmp.Compare(a.Node, b.Node),
			cmp.Compare(a.Action.order(), b.Action.order()),
			cmp.Compare(a.From, b.From),
			activeFirst(a.Active, b.Active),
		)
	})
	return ds
}

func activeFirst(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}
