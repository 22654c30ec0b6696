package placement

// check is one feasibility step: whether an app may run on a node. An app's
// checks run in order and the first that fails is the reason the node is
// left out, so cheap and general checks come first.
type check interface {
	// allows is given the node and its index in the sorted node list.
	allows(i int, n *Node) bool
	// step names the check for explanations.
	step() (Step, string)
}

// eligibleCheck leaves out nodes an operator marked ineligible.
type eligibleCheck struct{}

func (eligibleCheck) allows(_ int, n *Node) bool { return n.Eligible }
func (eligibleCheck) step() (Step, string)       { return StepIneligible, "" }

// drainingCheck leaves out draining nodes.
type drainingCheck struct{}

func (drainingCheck) allows(_ int, n *Node) bool { return !n.Draining }
func (drainingCheck) step() (Step, string)       { return StepDraining, "" }

// constraintCheck leaves out nodes that fail one of the app's constraints.
type constraintCheck struct{ cond condition }

func (c *constraintCheck) allows(_ int, n *Node) bool { return c.cond.holds(n) }
func (c *constraintCheck) step() (Step, string)       { return StepConstraint, c.cond.String() }

// awayFromCheck leaves out nodes where another app is active. It reads that
// app's row of the working state, which holds the other app's planned
// outcome when it was planned first and its current state otherwise.
type awayFromCheck struct {
	app    string
	active []bool
}

func (c awayFromCheck) allows(i int, _ *Node) bool { return !c.active[i] }
func (c awayFromCheck) step() (Step, string)       { return StepAwayFrom, c.app }

// filterNodes runs the checks over all nodes. It appends the indices of the
// nodes that pass every check to feasible, counts each other node in t
// under the first check it fails, and returns feasible.
func filterNodes(checks []check, nodes []*Node, feasible []int32, t tally) []int32 {
	for i, n := range nodes {
		failed := -1
		for j, c := range checks {
			if !c.allows(i, n) {
				failed = j
				break
			}
		}
		if failed < 0 {
			feasible = append(feasible, int32(i))
		} else {
			t[failed]++
		}
	}
	return feasible
}

// distinctHostsAllows is the one step that changes while an app is placed:
// an app that never doubles up may not take a node that already runs one
// of its instances.
func distinctHostsAllows(distinct bool, own int32) bool {
	return !distinct || own == 0
}
