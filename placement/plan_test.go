package placement

import (
	"reflect"
	"testing"
)

func TestOutcomeDecisions(t *testing.T) {
	nodes := []*Node{{ID: "n0"}, {ID: "n1"}, {ID: "n2"}, {ID: "n3"}, {ID: "n4"}, {ID: "n5"}}
	for _, tc := range []struct {
		name string
		o    outcome
		want []Decision
	}{
		{
			name: "leavers move to new nodes, the active one first",
			o: outcome{
				keep:  []placedInstance{{node: 0}},
				leave: []placedInstance{{node: 3, active: true}, {node: 1}},
				place: []int32{5, 4},
			},
			want: []Decision{
				{Action: ActionKeep, Node: "n0"},
				{Action: ActionMove, Node: "n4", From: "n1"},
				{Action: ActionMove, Node: "n5", From: "n3", Active: true},
			},
		},
		{
			name: "more new nodes than leavers: places",
			o:    outcome{leave: []placedInstance{{node: 0}}, place: []int32{1, 2}},
			want: []Decision{
				{Action: ActionMove, Node: "n1", From: "n0"},
				{Action: ActionPlace, Node: "n2"},
			},
		},
		{
			name: "more leavers than new nodes: stops",
			o:    outcome{leave: []placedInstance{{node: 0, active: true}, {node: 1}}, place: []int32{2}},
			want: []Decision{
				{Action: ActionStop, Node: "n1"},
				{Action: ActionMove, Node: "n2", From: "n0", Active: true},
			},
		},
		{
			name: "surplus stops; decisions sort by node then action",
			o: outcome{
				keep:    []placedInstance{{node: 2}, {node: 1, active: true}},
				surplus: []placedInstance{{node: 2}},
			},
			want: []Decision{
				{Action: ActionKeep, Node: "n1", Active: true},
				{Action: ActionKeep, Node: "n2"},
				{Action: ActionStop, Node: "n2"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.o.decisions(nodes); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decisions\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestAppPlanNodes(t *testing.T) {
	ap := AppPlan{Have: 4, Decisions: []Decision{
		{Action: ActionKeep, Node: "a"},
		{Action: ActionMove, Node: "b", From: "x"},
		{Action: ActionPlace, Node: "c"},
		{Action: ActionPlace, Node: "c"},
		{Action: ActionStop, Node: "d"},
	}}
	if got, want := ap.Nodes(), []string{"a", "b", "c", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Nodes() = %v, want %v", got, want)
	}
}

func TestPlanApp(t *testing.T) {
	p := Plan{Apps: []AppPlan{{App: "api"}, {App: "db", Want: 3}, {App: "worker"}}}
	if got, ok := p.App("db"); !ok || got.Want != 3 {
		t.Errorf("App(db) = %+v, %v", got, ok)
	}
	if _, ok := p.App("cache"); ok {
		t.Error("App(cache) found")
	}
}
