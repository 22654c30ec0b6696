package placement

import (
	"reflect"
	"testing"
)

func TestFilteredString(t *testing.T) {
	for _, tc := range []struct {
		f    Filtered
		want string
	}{
		{Filtered{Step: StepIneligible, Nodes: 2}, "ineligible: 2 nodes"},
		{Filtered{Step: StepDraining, Nodes: 1}, "draining: 1 node"},
		{Filtered{Step: StepConstraint, Detail: "node.labels.disk = ssd", Nodes: 3}, "constraint node.labels.disk = ssd not met on 3 nodes"},
		{Filtered{Step: StepAwayFrom, Detail: "database", Nodes: 1}, "away_from database: 1 node where it is active"},
		{Filtered{Step: StepDistinctHosts, Nodes: 4}, "distinct_hosts: 4 nodes already run an instance"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestExplain(t *testing.T) {
	ap := AppPlan{Want: 3, Have: 2, Filtered: []Filtered{
		{Step: StepIneligible, Nodes: 2},
		{Step: StepConstraint, Detail: "node.labels.disk = ssd", Nodes: 3},
	}}
	want := "placed 2 of 3: ineligible: 2 nodes; constraint node.labels.disk = ssd not met on 3 nodes"
	if got := ap.Explain(); got != want {
		t.Errorf("Explain() = %q, want %q", got, want)
	}
	if got := (AppPlan{Want: 1, Have: 1}).Explain(); got != "placed 1 of 1" {
		t.Errorf("Explain() = %q", got)
	}
}

func TestTallyFiltered(t *testing.T) {
	checks := []check{eligibleCheck{}, drainingCheck{}, awayFromCheck{app: "db"}}
	got := tally{2, 0, 1}.filtered(checks)
	want := []Filtered{{Step: StepIneligible, Nodes: 2}, {Step: StepAwayFrom, Detail: "db", Nodes: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("filtered %+v, want %+v", got, want)
	}
}
