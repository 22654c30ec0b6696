package placement

import (
	"reflect"
	"testing"
)

func TestEligibleCheck(t *testing.T) {
	c := eligibleCheck{}
	if !c.allows(0, &Node{Eligible: true}) || c.allows(0, &Node{}) {
		t.Error("eligibleCheck does not follow Node.Eligible")
	}
	if s, _ := c.step(); s != StepIneligible {
		t.Errorf("step %q", s)
	}
}

func TestDrainingCheck(t *testing.T) {
	c := drainingCheck{}
	if !c.allows(0, &Node{}) || c.allows(0, &Node{Draining: true}) {
		t.Error("drainingCheck does not follow Node.Draining")
	}
	if s, _ := c.step(); s != StepDraining {
		t.Errorf("step %q", s)
	}
}

func TestConstraintCheck(t *testing.T) {
	cond, err := compileCondition("node.labels.disk", OpEqual, "ssd")
	if err != nil {
		t.Fatal(err)
	}
	c := &constraintCheck{cond: cond}
	for _, tc := range []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"disk": "ssd"}, true},
		{map[string]string{"disk": "hdd"}, false},
		{nil, false},
	} {
		if got := c.allows(0, &Node{Labels: tc.labels}); got != tc.want {
			t.Errorf("labels %v: allows = %v, want %v", tc.labels, got, tc.want)
		}
	}
	if s, d := c.step(); s != StepConstraint || d != "node.labels.disk = ssd" {
		t.Errorf("step = %q, %q", s, d)
	}
}

func TestAwayFromCheck(t *testing.T) {
	c := awayFromCheck{app: "database", active: []bool{true, false}}
	if c.allows(0, &Node{}) {
		t.Error("allowed a node where the app is active")
	}
	if !c.allows(1, &Node{}) {
		t.Error("refused a node where the app is not active")
	}
	if s, d := c.step(); s != StepAwayFrom || d != "database" {
		t.Errorf("step = %q, %q", s, d)
	}
}

func TestDistinctHostsAllows(t *testing.T) {
	for _, tc := range []struct {
		distinct bool
		own      int32
		want     bool
	}{
		{false, 0, true},
		{false, 3, true},
		{true, 0, true},
		{true, 1, false},
	} {
		if got := distinctHostsAllows(tc.distinct, tc.own); got != tc.want {
			t.Errorf("distinct %v own %d: %v, want %v", tc.distinct, tc.own, got, tc.want)
		}
	}
}

// A node failing several checks is counted once, by the first.
func TestFilterNodesCountsFirstFailure(t *testing.T) {
	cond, err := compileCondition("node.labels.disk", OpEqual, "ssd")
	if err != nil {
		t.Fatal(err)
	}
	checks := []check{eligibleCheck{}, drainingCheck{}, &constraintCheck{cond: cond}}
	ssd := map[string]string{"disk": "ssd"}
	nodes := []*Node{
		{ID: "a", Eligible: true, Labels: ssd},
		{ID: "b", Eligible: false, Draining: true},
		{ID: "c", Eligible: true, Draining: true},
		{ID: "d", Eligible: true},
		{ID: "e", Eligible: true, Labels: ssd},
	}
	counts := make(tally, len(checks))
	feasible := filterNodes(checks, nodes, nil, counts)
	if want := []int32{0, 4}; !reflect.DeepEqual(feasible, want) {
		t.Errorf("feasible %v, want %v", feasible, want)
	}
	if want := (tally{1, 1, 1}); !reflect.DeepEqual(counts, want) {
		t.Errorf("counts %v, want %v", counts, want)
	}
}
