package placement

import (
	"fmt"
	"strings"
)

// Step names the feasibility step that left a node out.
type Step string

const (
	StepIneligible    Step = "ineligible"
	StepDraining      Step = "draining"
	StepConstraint    Step = "constraint"
	StepAwayFrom      Step = "away_from"
	StepDistinctHosts Step = "distinct_hosts"
)

// Filtered counts the nodes one step left out for one app. Every node left
// out is counted once, by the first step it failed, so the counts of an app
// plus its feasible nodes add up to all nodes. Distinct_hosts is reported
// only when it left instances unplaced.
type Filtered struct {
	Step Step
	// Detail is the failed constraint ("node.labels.disk = ssd") or the app
	// kept away from.
	Detail string
	Nodes  int
}

// String reads like "constraint node.labels.disk = ssd not met on 3 nodes".
func (f Filtered) String() string {
	switch f.Step {
	case StepConstraint:
		return fmt.Sprintf("constraint %s not met on %s", f.Detail, nodeCount(f.Nodes))
	case StepAwayFrom:
		return fmt.Sprintf("away_from %s: %s where it is active", f.Detail, nodeCount(f.Nodes))
	case StepDistinctHosts:
		return fmt.Sprintf("distinct_hosts: %s already run an instance", nodeCount(f.Nodes))
	}
	return fmt.Sprintf("%s: %s", f.Step, nodeCount(f.Nodes))
}

func nodeCount(n int) string {
	if n == 1 {
		return "1 node"
	}
	return fmt.Sprintf("%d nodes", n)
}

// Explain summarises the app's plan for operators, e.g. "placed 2 of 3:
// ineligible: 2 nodes; draining: 1 node; constraint node.labels.disk = ssd
// not met on 3 nodes".
func (a AppPlan) Explain() string {
	var b strings.Builder
	fmt.Fprintf(&b, "placed %d of %d", a.Have, a.Want)
	for i, f := range a.Filtered {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.String())
	}
	return b.String()
}

// tally aggregates the nodes an app's feasibility checks left out: per
// check, how many nodes it was the first to fail.
type tally []int

// filtered reports the checks that left out at least one node.
func (t tally) filtered(checks []check) []Filtered {
	var out []Filtered
	for i, n := range t {
		if n > 0 {
			step, detail := checks[i].step()
			out = append(out, Filtered{Step: step, Detail: detail, Nodes: n})
		}
	}
	return out
}
