package scheduler

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ozanturksever/go-cluster/jobspec"
	"github.com/ozanturksever/go-cluster/placement"
)

// Rule 1: what placement sees.
func TestPlacementInput(t *testing.T) {
	nodes := liveNodes(4)
	nodes[1].Draining = true
	nodes[2].Eligible = false
	nodes[0].Labels = map[string]string{"zone": "a"}

	api := newWork(replicasJob("api", 1, 2), t0,
		[]Alloc{alloc("api", "n1", 1), surge("api", "n3", 1, "n2"), alloc("api", "n2", 1)},
		up("api", "n1", 1, longAgo), up("api", "n2", 1, longAgo), starting("api", "n3", 1, t0))
	api.linkSurges()
	db := newWork(singletonJob("db", 1), t0,
		[]Alloc{alloc("db", "n1", 1), alloc("db", "n4", 1)},
		leader("db", "n1", 1, longAgo)) // n4 reported nothing: not active
	in := placementInput([]*jobWork{api, db}, nodes)

	wantApps := []placement.App{
		{Name: "api", Mode: placement.ModeReplicas, Count: 2, Constraints: []placement.Constraint{{Operator: placement.OpDistinctHosts}}},
		{Name: "db", Mode: placement.ModeSingleton},
	}
	if !reflect.DeepEqual(in.Apps, wantApps) {
		t.Errorf("apps %+v, want %+v", in.Apps, wantApps)
	}
	wantNodes := []placement.Node{
		{ID: "n1", Address: "10.0.0.1", Labels: map[string]string{"zone": "a"}, Eligible: true,
			Instances: []placement.Instance{{App: "api", Active: true}, {App: "db", Active: true}}},
		// Draining: not eligible for placement, draining passed through.
		// The source waiting for its surge is not shown.
		{ID: "n2", Address: "10.0.0.2", Eligible: false, Draining: true},
		// The surge stands for the pair.
		{ID: "n3", Address: "10.0.0.3", Instances: []placement.Instance{{App: "api"}}},
		{ID: "n4", Address: "10.0.0.4", Eligible: true, Instances: []placement.Instance{{App: "db"}}},
	}
	if !reflect.DeepEqual(in.Nodes, wantNodes) {
		t.Errorf("nodes\n %+v\nwant\n %+v", in.Nodes, wantNodes)
	}
}

// One app placement refuses is left out; the others are planned.
func TestPlaceIsolatesRejectedApps(t *testing.T) {
	bad := replicasJob("bad", 1, 1)
	bad.Spec.Affinities = []jobspec.Affinity{{Attribute: "node.labels.x", Operator: jobspec.OpEqual, Value: "y", Weight: 0}}
	self := replicasJob("self", 1, 1)
	self.Spec.AwayFrom = []string{"self"}
	works := []*jobWork{
		newWork(bad, t0, []Alloc{alloc("bad", "n1", 1)}),
		newWork(replicasJob("good", 1, 1), t0, nil),
		newWork(self, t0, nil),
	}
	plan, rejected, err := place(works, liveNodes(2))
	if err != nil {
		t.Fatal(err)
	}
	if len(rejected) != 2 || !strings.Contains(rejected["bad"], "weight 0") || !strings.Contains(rejected["self"], "itself") {
		t.Errorf("rejected %v", rejected)
	}
	if ap, ok := plan.App("good"); !ok || ap.Have != 1 {
		t.Errorf("good not planned: %+v", plan)
	}
	if _, ok := plan.App("bad"); ok {
		t.Errorf("the rejected app's instances were planned: %+v", plan)
	}
}
