package placement

import (
	"errors"
	"reflect"
	"regexp/syntax"
	"strings"
	"testing"
)

func TestPlaceRejectsInvalidInput(t *testing.T) {
	node := Node{ID: "n1", Eligible: true}
	for _, tc := range []struct {
		name  string
		in    Input
		error string
	}{
		{"app without name", Input{Apps: []App{{Mode: ModeSpread}}}, "app without a name"},
		{"duplicate app", Input{Apps: []App{{Name: "a", Mode: ModeSpread}, {Name: "a", Mode: ModeSpread}}}, `app "a" listed twice`},
		{"node without ID", Input{Nodes: []Node{{}}}, "node without an ID"},
		{"duplicate node", Input{Nodes: []Node{node, node}}, `node "n1" listed twice`},
		{"instance without app", Input{Nodes: []Node{{ID: "n1", Instances: []Instance{{}}}}}, "instance without an app name"},
		{"unknown mode", oneApp(App{Name: "a", Mode: "cluster"}), `unknown mode "cluster"`},
		{"negative count", oneApp(App{Name: "a", Mode: ModeReplicas, Count: -1}), "negative"},
		{"spread with count", oneApp(App{Name: "a", Mode: ModeSpread, Count: 2}), "count must be 0"},
		{"bad attribute", oneApp(App{Name: "a", Mode: ModeSpread, Constraints: []Constraint{{Attribute: "meta.x", Operator: OpEqual}}}), `constraint 0: unknown attribute "meta.x"`},
		{"bad operator", oneApp(App{Name: "a", Mode: ModeSpread, Constraints: []Constraint{{Attribute: "node.id", Operator: "=="}}}), `unknown operator "=="`},
		{"bad version", oneApp(App{Name: "a", Mode: ModeSpread, Constraints: []Constraint{{Attribute: "node.labels.v", Operator: OpVersion, Value: "newest"}}}), "version constraint"},
		{"distinct_hosts with attribute", oneApp(App{Name: "a", Mode: ModeReplicas, Constraints: []Constraint{{Attribute: "node.id", Operator: OpDistinctHosts}}}), "takes no attribute"},
		{"distinct_hosts bad value", oneApp(App{Name: "a", Mode: ModeReplicas, Constraints: []Constraint{{Operator: OpDistinctHosts, Value: "yes"}}}), `distinct_hosts value "yes"`},
		{"affinity weight 0", oneApp(App{Name: "a", Mode: ModeSpread, Affinities: []Affinity{{Attribute: "node.id", Operator: OpEqual}}}), "affinity 0: weight 0"},
		{"affinity weight too big", oneApp(App{Name: "a", Mode: ModeSpread, Affinities: []Affinity{{Attribute: "node.id", Operator: OpEqual, Weight: 101}}}), "weight 101"},
		{"affinity distinct_hosts", oneApp(App{Name: "a", Mode: ModeSpread, Affinities: []Affinity{{Operator: OpDistinctHosts, Weight: 10}}}), "constraint only"},
		{"spread weight 0", oneApp(App{Name: "a", Mode: ModeReplicas, Spreads: []Spread{{Attribute: "node.labels.zone"}}}), "spread 0: weight 0"},
		{"spread bad attribute", oneApp(App{Name: "a", Mode: ModeReplicas, Spreads: []Spread{{Attribute: "zone", Weight: 10}}}), "spread 0: unknown attribute"},
		{"away_from itself", oneApp(App{Name: "a", Mode: ModeReplicas, AwayFrom: []string{"a"}}), "away_from: app \"a\" refers to itself"},
		{"near empty", oneApp(App{Name: "a", Mode: ModeReplicas, Near: []string{""}}), "near: empty app name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := Place(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Fatalf("error %v, want one containing %q", err, tc.error)
			}
			if !reflect.DeepEqual(plan, Plan{}) {
				t.Errorf("plan %+v returned with the error", plan)
			}
		})
	}
}

func oneApp(a App) Input { return Input{Apps: []App{a}, Nodes: []Node{{ID: "n1", Eligible: true}}} }

func TestPlaceWrapsRegexpError(t *testing.T) {
	_, err := Place(oneApp(App{Name: "a", Mode: ModeSpread, Constraints: []Constraint{{Attribute: "node.id", Operator: OpRegexp, Value: "a(b"}}}))
	var syntaxErr *syntax.Error
	if !errors.As(err, &syntaxErr) {
		t.Fatalf("error %v does not wrap the regexp error", err)
	}
	if !strings.HasPrefix(err.Error(), `app "a": constraint 0: regexp "a(b"`) {
		t.Errorf("error %q does not name the app and constraint", err)
	}
}

func TestCompileApp(t *testing.T) {
	cl, err := newCluster(nil, []string{"a", "db"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		app                 App
		everyNode, distinct bool
	}{
		{App{Mode: ModeSpread}, true, true},
		{App{Mode: ModeSingleton}, true, true},
		{App{Mode: ModeSingleton, Count: 2}, false, true},
		{App{Mode: ModeRing}, true, true},
		{App{Mode: ModeRing, Count: 3}, false, true},
		{App{Mode: ModeReplicas, Count: 3}, false, false},
		{App{Mode: ModeReplicas, Count: 3, Constraints: []Constraint{{Operator: OpDistinctHosts}}}, false, true},
		{App{Mode: ModeReplicas, Count: 3, Constraints: []Constraint{{Operator: OpDistinctHosts, Value: "false"}}}, false, false},
	} {
		tc.app.Name = "a"
		c, err := compileApp(&tc.app, cl)
		if err != nil {
			t.Fatal(err)
		}
		if c.everyNode != tc.everyNode || c.distinct != tc.distinct {
			t.Errorf("%s count %d: everyNode %v distinct %v, want %v %v", tc.app.Mode, tc.app.Count, c.everyNode, c.distinct, tc.everyNode, tc.distinct)
		}
	}

	a := App{
		Name: "a", Mode: ModeReplicas, Count: 1,
		Constraints: []Constraint{{Attribute: "node.labels.disk", Operator: OpEqual, Value: "ssd"}, {Operator: OpDistinctHosts}},
		Affinities:  []Affinity{{Attribute: "node.id", Operator: OpEqual, Value: "n1", Weight: -30}, {Attribute: "node.id", Operator: OpEqual, Value: "n2", Weight: 10}},
		Spreads:     []Spread{{Attribute: "node.labels.zone", Weight: 30}, {Attribute: "node.labels.rack", Weight: 10}},
		AwayFrom:    []string{"db", "unknown"},
		Near:        []string{"db", "unknown"},
	}
	c, err := compileApp(&a, cl)
	if err != nil {
		t.Fatal(err)
	}
	var steps []Step
	for _, ch := range c.checks {
		s, _ := ch.step()
		steps = append(steps, s)
	}
	if want := []Step{StepIneligible, StepDraining, StepConstraint, StepAwayFrom}; !reflect.DeepEqual(steps, want) {
		t.Errorf("checks %v, want %v: distinct_hosts is not a static check, unknown apps get none", steps, want)
	}
	if c.affinityTotal != 40 {
		t.Errorf("affinity total %v, want 40", c.affinityTotal)
	}
	if c.spreads[0].weight != 0.75 || c.spreads[1].weight != 0.25 {
		t.Errorf("spread weights %v, %v; want 0.75, 0.25", c.spreads[0].weight, c.spreads[1].weight)
	}
	if want := []int{cl.rows["db"]}; !reflect.DeepEqual(c.near, want) {
		t.Errorf("near rows %v, want %v", c.near, want)
	}
}
