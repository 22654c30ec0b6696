package scheduler

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ozanturksever/go-cluster/jobspec"
	"github.com/ozanturksever/go-cluster/placement"
)

func TestTranslateModes(t *testing.T) {
	distinct := []placement.Constraint{{Operator: placement.OpDistinctHosts}}
	tests := []struct {
		name  string
		mode  jobspec.Mode
		count int
		want  placement.App
	}{
		{"singleton has every feasible node as candidate", jobspec.ModeSingleton, 0, placement.App{Name: "a", Mode: placement.ModeSingleton}},
		{"empty mode is the singleton default", "", 0, placement.App{Name: "a", Mode: placement.ModeSingleton}},
		{"spread", jobspec.ModeSpread, 0, placement.App{Name: "a", Mode: placement.ModeSpread}},
		{"replicas keep their count, on distinct hosts", jobspec.ModeReplicas, 3, placement.App{Name: "a", Mode: placement.ModeReplicas, Count: 3, Constraints: distinct}},
		{"ring spans every feasible node", jobspec.ModeRing, 0, placement.App{Name: "a", Mode: placement.ModeRing}},
		{"a stray count outside replicas is dropped", jobspec.ModeSpread, 4, placement.App{Name: "a", Mode: placement.ModeSpread}},
		{"unknown mode passes through for placement to reject", "swarm", 2, placement.App{Name: "a", Mode: "swarm", Count: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Translate(&jobspec.App{Name: "a", Mode: tt.mode, Count: tt.count})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Translate = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTranslateOperators(t *testing.T) {
	tests := []struct {
		in   jobspec.Operator
		want placement.Operator
	}{
		{jobspec.OpEqual, placement.OpEqual},
		{jobspec.OpNotEqual, placement.OpNotEqual},
		{jobspec.OpLess, placement.OpLess},
		{jobspec.OpLessOrEqual, placement.OpLessEqual},
		{jobspec.OpGreater, placement.OpGreater},
		{jobspec.OpGreaterOrEqual, placement.OpGreaterEqual},
		{jobspec.OpRegexp, placement.OpRegexp},
		{jobspec.OpVersion, placement.OpVersion},
		{jobspec.OpSetContains, placement.OpSetContains},
		{jobspec.OpIsSet, placement.OpIsSet},
		{jobspec.OpIsNotSet, placement.OpIsNotSet},
		{jobspec.OpDistinctHosts, placement.OpDistinctHosts},
		{"like", "like"}, // unknown: placement rejects it with its own message
	}
	for _, tt := range tests {
		t.Run(string(tt.in), func(t *testing.T) {
			if got := translateOperator(tt.in); got != tt.want {
				t.Errorf("translateOperator(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// Every constraint and affinity a job file can hold must be accepted by
// placement once translated: a mapping placement refuses would fail the
// job at run time instead of at validate time.
func TestTranslatedRulesArePlaceable(t *testing.T) {
	values := map[jobspec.Operator]string{
		jobspec.OpEqual: "ssd", jobspec.OpNotEqual: "hdd", jobspec.OpLess: "3", jobspec.OpLessOrEqual: "3",
		jobspec.OpGreater: "1", jobspec.OpGreaterOrEqual: "1", jobspec.OpRegexp: "^s", jobspec.OpVersion: ">= 1.2, < 2",
		jobspec.OpSetContains: "a,b", jobspec.OpIsSet: "", jobspec.OpIsNotSet: "",
	}
	node := placement.Node{ID: "n1", Eligible: true, Labels: map[string]string{"x": "ssd"}}
	for op, value := range values {
		for _, attr := range []string{"node.id", "node.address", "node.labels.x", "meta.x"} {
			spec := &jobspec.App{
				Name: "a", Mode: jobspec.ModeReplicas, Count: 1,
				Constraints: []jobspec.Constraint{{Attribute: attr, Operator: op, Value: value}, {Operator: jobspec.OpDistinctHosts}},
				Affinities:  []jobspec.Affinity{{Attribute: attr, Operator: op, Value: value, Weight: -20}},
				Spreads:     []jobspec.Spread{{Attribute: attr, Weight: 50}},
			}
			if _, err := placement.Place(placement.Input{Apps: []placement.App{Translate(spec)}, Nodes: []placement.Node{node}}); err != nil {
				t.Errorf("%s %s %q: placement refused the translation: %v", attr, op, value, err)
			}
		}
	}
}

func TestTranslateRules(t *testing.T) {
	spec := &jobspec.App{
		Name: "web", Mode: jobspec.ModeReplicas, Count: 2,
		Constraints: []jobspec.Constraint{
			{Attribute: "node.labels.disk", Operator: jobspec.OpEqual, Value: "ssd"},
			{Attribute: "meta.rack", Operator: jobspec.OpRegexp, Value: "^r1"},
			{Operator: jobspec.OpDistinctHosts},
		},
		Affinities: []jobspec.Affinity{{Attribute: "meta.gpu", Operator: jobspec.OpIsSet, Weight: -30}},
		Spreads:    []jobspec.Spread{{Attribute: "node.labels.zone", Weight: 70}, {Attribute: "meta.rack", Weight: 30}},
		AwayFrom:   []string{"db"},
		Near:       []string{"cache"},
	}
	want := placement.App{
		Name: "web", Mode: placement.ModeReplicas, Count: 2,
		Constraints: []placement.Constraint{
			{Attribute: "node.labels.disk", Operator: placement.OpEqual, Value: "ssd"},
			{Attribute: "node.labels.rack", Operator: placement.OpRegexp, Value: "^r1"},
			{Operator: placement.OpDistinctHosts}, // the spec's own; none added
		},
		Affinities: []placement.Affinity{{Attribute: "node.labels.gpu", Operator: placement.OpIsSet, Weight: -30}},
		Spreads:    []placement.Spread{{Attribute: "node.labels.zone", Weight: 70}, {Attribute: "node.labels.rack", Weight: 30}},
		AwayFrom:   []string{"db"},
		Near:       []string{"cache"},
	}
	got := Translate(spec)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Translate =\n %+v\nwant\n %+v", got, want)
	}
	// The app must not share memory with the spec: Reconcile appends
	// failover constraints to it.
	got.AwayFrom[0] = "changed"
	if spec.AwayFrom[0] != "db" {
		t.Error("Translate shares AwayFrom with the spec")
	}
}

func TestTranslateAttribute(t *testing.T) {
	for in, want := range map[string]string{
		"node.id":          "node.id",
		"node.address":     "node.address",
		"node.labels.zone": "node.labels.zone",
		"meta.zone":        "node.labels.zone",
		"meta.a.b/c":       "node.labels.a.b/c",
		"":                 "",
	} {
		if got := translateAttribute(in); got != want {
			t.Errorf("translateAttribute(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTranslateNil(t *testing.T) {
	if got := Translate(nil); !reflect.DeepEqual(got, placement.App{}) {
		t.Errorf("Translate(nil) = %+v", got)
	}
}

func TestTranslateUnknownModeIsRejectedByPlacement(t *testing.T) {
	_, err := placement.Place(placement.Input{Apps: []placement.App{Translate(&jobspec.App{Name: "a", Mode: "swarm"})}})
	if err == nil || !strings.Contains(err.Error(), "swarm") {
		t.Errorf("Place error = %v, want unknown mode swarm", err)
	}
}
