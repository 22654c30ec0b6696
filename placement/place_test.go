package placement

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// mkNode returns an eligible node with labels given as "key=value".
func mkNode(id string, labels ...string) Node {
	n := Node{ID: id, Eligible: true, Labels: map[string]string{}}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		n.Labels[k] = v
	}
	return n
}

func running(n Node, instances ...Instance) Node {
	n.Instances = append(n.Instances, instances...)
	return n
}

func mustPlace(t *testing.T, in Input) Plan {
	t.Helper()
	plan, err := Place(in)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func appPlan(t *testing.T, plan Plan, name string) AppPlan {
	t.Helper()
	ap, ok := plan.App(name)
	if !ok {
		t.Fatalf("no plan for %s in %+v", name, plan)
	}
	return ap
}

func assertDecisions(t *testing.T, ap AppPlan, want ...Decision) {
	t.Helper()
	if !reflect.DeepEqual(ap.Decisions, want) {
		t.Errorf("%s decisions\n got %+v\nwant %+v", ap.App, ap.Decisions, want)
	}
}

func keepOn(node string) Decision         { return Decision{Action: ActionKeep, Node: node} }
func placeOn(node string) Decision        { return Decision{Action: ActionPlace, Node: node} }
func stopOn(node string) Decision         { return Decision{Action: ActionStop, Node: node} }
func moveFromTo(from, to string) Decision { return Decision{Action: ActionMove, From: from, Node: to} }
func activeOf(d Decision) Decision        { d.Active = true; return d }
func activeInst(app string) Instance      { return Instance{App: app, Active: true} }
func standbyInst(app string) Instance     { return Instance{App: app} }
func drained(n Node) Node                 { n.Draining = true; return n }
func notEligible(n Node) Node             { n.Eligible = false; return n }
func sortedNodes(ap AppPlan) []string     { s := ap.Nodes(); slices.Sort(s); return s }

func TestSpreadRunsOnEveryFeasibleNode(t *testing.T) {
	in := Input{
		Apps: []App{{Name: "api", Mode: ModeSpread, Constraints: []Constraint{{Attribute: "node.labels.disk", Operator: OpEqual, Value: "ssd"}}}},
		Nodes: []Node{
			running(mkNode("n1", "disk=ssd"), activeInst("api")),
			mkNode("n2", "disk=ssd"),
			mkNode("n3", "disk=hdd"),
			notEligible(mkNode("n4", "disk=ssd")),
			running(drained(mkNode("n5", "disk=ssd")), activeInst("api")),
		},
	}
	ap := appPlan(t, mustPlace(t, in), "api")
	assertDecisions(t, ap, activeOf(keepOn("n1")), activeOf(moveFromTo("n5", "n2")))
	if want := "placed 2 of 2: ineligible: 1 node; draining: 1 node; constraint node.labels.disk = ssd not met on 1 node"; ap.Explain() != want {
		t.Errorf("Explain() = %q, want %q", ap.Explain(), want)
	}
}

func TestSingleton(t *testing.T) {
	nodes := []Node{
		mkNode("n1"),
		running(mkNode("n2"), standbyInst("db")),
		running(mkNode("n3"), activeInst("db")),
		mkNode("n4"),
	}
	t.Run("count 0: every feasible node is a candidate", func(t *testing.T) {
		ap := appPlan(t, mustPlace(t, Input{Apps: []App{{Name: "db", Mode: ModeSingleton}}, Nodes: nodes}), "db")
		assertDecisions(t, ap, placeOn("n1"), keepOn("n2"), activeOf(keepOn("n3")), placeOn("n4"))
	})
	t.Run("count 2 keeps the active instance and one standby", func(t *testing.T) {
		ap := appPlan(t, mustPlace(t, Input{Apps: []App{{Name: "db", Mode: ModeSingleton, Count: 2}}, Nodes: nodes}), "db")
		assertDecisions(t, ap, keepOn("n2"), activeOf(keepOn("n3")))
	})
	t.Run("count 1 keeps the active instance rather than the first node", func(t *testing.T) {
		ap := appPlan(t, mustPlace(t, Input{Apps: []App{{Name: "db", Mode: ModeSingleton, Count: 1}}, Nodes: nodes}), "db")
		assertDecisions(t, ap, stopOn("n2"), activeOf(keepOn("n3")))
	})
	t.Run("the active instance of a draining node moves", func(t *testing.T) {
		after := slices.Clone(nodes)
		after[2] = drained(after[2])
		ap := appPlan(t, mustPlace(t, Input{Apps: []App{{Name: "db", Mode: ModeSingleton, Count: 2}}, Nodes: after}), "db")
		assertDecisions(t, ap, activeOf(moveFromTo("n3", "n1")), keepOn("n2"))
	})
	t.Run("more candidates than nodes", func(t *testing.T) {
		ap := appPlan(t, mustPlace(t, Input{Apps: []App{{Name: "db", Mode: ModeSingleton, Count: 5}}, Nodes: nodes}), "db")
		if ap.Have != 4 || ap.Want != 5 {
			t.Errorf("have %d of %d, want 4 of 5", ap.Have, ap.Want)
		}
		if want := "placed 4 of 5: distinct_hosts: 4 nodes already run an instance"; ap.Explain() != want {
			t.Errorf("Explain() = %q, want %q", ap.Explain(), want)
		}
	})
}

func TestReplicas(t *testing.T) {
	nodes := []Node{mkNode("n1"), mkNode("n2")}
	t.Run("distinct nodes first", func(t *testing.T) {
		ap := appPlan(t, mustPlace(t, Input{Apps: []App{{Name: "w", Mode: ModeReplicas, Count: 2}}, Nodes: nodes}), "w")
		assertDecisions(t, ap, placeOn("n1"), placeOn("n2"))
	})
	t.Run("doubling up when nodes run out", func(t *testing.T) {
		ap := appPlan(t, mustPlace(t, Input{Apps: []App{{Name: "w", Mode: ModeReplicas, Count: 5}}, Nodes: nodes}), "w")
		if got, want := sortedNodes(ap), []string{"n1", "n1", "n1", "n2", "n2"}; !reflect.DeepEqual(got, want) {
			t.Errorf("nodes %v, want %v", got, want)
		}
	})
	t.Run("distinct_hosts forbids doubling up", func(t *testing.T) {
		app := App{Name: "w", Mode: ModeReplicas, Count: 3, Constraints: []Constraint{{Operator: OpDistinctHosts}}}
		ap := appPlan(t, mustPlace(t, Input{Apps: []App{app}, Nodes: nodes}), "w")
		if want := "placed 2 of 3: distinct_hosts: 2 nodes already run an instance"; ap.Explain() != want {
			t.Errorf("Explain() = %q, want %q", ap.Explain(), want)
		}
	})
	t.Run("scale to zero", func(t *testing.T) {
		in := Input{Apps: []App{{Name: "w", Mode: ModeReplicas}}, Nodes: []Node{running(mkNode("n1"), activeInst("w"))}}
		assertDecisions(t, appPlan(t, mustPlace(t, in), "w"), activeOf(stopOn("n1")))
	})
}

func TestScaleDownKeepsTheBestSpread(t *testing.T) {
	in := Input{
		Apps: []App{{Name: "w", Mode: ModeReplicas, Count: 2, Spreads: []Spread{{Attribute: "node.labels.zone", Weight: 50}}}},
		Nodes: []Node{
			running(mkNode("a1", "zone=a"), activeInst("w")),
			running(mkNode("a2", "zone=a"), activeInst("w")),
			running(mkNode("a3", "zone=a"), activeInst("w")),
			running(mkNode("b1", "zone=b"), activeInst("w"), activeInst("w")),
		},
	}
	ap := appPlan(t, mustPlace(t, in), "w")
	if got, want := sortedNodes(ap), []string{"a1", "b1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("kept %v, want %v: one per zone, one per node", got, want)
	}
	if ap.Have != 2 || len(ap.Decisions) != 5 {
		t.Errorf("decisions %+v", ap.Decisions)
	}
}

func TestSpreadStanzaEvensOutZones(t *testing.T) {
	in := Input{
		Apps:  []App{{Name: "w", Mode: ModeReplicas, Count: 2, Spreads: []Spread{{Attribute: "node.labels.zone", Weight: 100}}}},
		Nodes: []Node{mkNode("a1", "zone=a"), mkNode("a2", "zone=a"), mkNode("a3", "zone=a"), mkNode("b1", "zone=b")},
	}
	assertDecisions(t, appPlan(t, mustPlace(t, in), "w"), placeOn("a1"), placeOn("b1"))
}

func TestAffinity(t *testing.T) {
	nodes := []Node{mkNode("n1", "zone=a", "gpu=x"), mkNode("n2", "zone=a"), mkNode("n3", "zone=b")}
	for _, tc := range []struct {
		name       string
		affinities []Affinity
		want       string
	}{
		{"attracts", []Affinity{{Attribute: "node.labels.zone", Operator: OpEqual, Value: "b", Weight: 50}}, "n3"},
		{"repels", []Affinity{{Attribute: "node.labels.gpu", Operator: OpIsSet, Weight: -50}}, "n2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Apps: []App{{Name: "w", Mode: ModeReplicas, Count: 1, Affinities: tc.affinities}}, Nodes: nodes}
			assertDecisions(t, appPlan(t, mustPlace(t, in), "w"), placeOn(tc.want))
		})
	}
}

func TestLeastLoadedNodeWins(t *testing.T) {
	in := Input{
		Apps:  []App{{Name: "w", Mode: ModeReplicas, Count: 1}, {Name: "x", Mode: ModeReplicas, Count: 2}},
		Nodes: []Node{running(mkNode("n1"), activeInst("x")), running(mkNode("n2"), activeInst("x")), mkNode("n3")},
	}
	assertDecisions(t, appPlan(t, mustPlace(t, in), "w"), placeOn("n3"))
}

func TestAwayFromBlocksOnlyTheActiveInstance(t *testing.T) {
	in := Input{
		Apps: []App{
			{Name: "database", Mode: ModeSingleton, Count: 2},
			{Name: "worker", Mode: ModeSpread, AwayFrom: []string{"database"}},
		},
		Nodes: []Node{
			running(mkNode("n1"), activeInst("database"), activeInst("worker")),
			running(mkNode("n2"), standbyInst("database")),
			mkNode("n3"),
		},
	}
	plan := mustPlace(t, in)
	worker := appPlan(t, plan, "worker")
	if got, want := sortedNodes(worker), []string{"n2", "n3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("worker on %v, want %v", got, want)
	}
	if want := (Filtered{Step: StepAwayFrom, Detail: "database", Nodes: 1}); !slices.Contains(worker.Filtered, want) {
		t.Errorf("filtered %+v, want %+v", worker.Filtered, want)
	}
	if !slices.ContainsFunc(worker.Decisions, func(d Decision) bool { return d.Action == ActionMove && d.From == "n1" }) {
		t.Errorf("worker on the database leader's node not moved: %+v", worker.Decisions)
	}
}

// Apps are planned after the apps they keep away from, so the check sees
// where those end up, not where they run now.
func TestAwayFromSeesThePlannedOutcome(t *testing.T) {
	in := Input{
		Apps: []App{
			{Name: "api", Mode: ModeReplicas, Count: 2},
			{Name: "batch", Mode: ModeReplicas, Count: 2, AwayFrom: []string{"api"}},
		},
		Nodes: []Node{mkNode("n1"), mkNode("n2"), mkNode("n3"), mkNode("n4")},
	}
	plan := mustPlace(t, in)
	api, batch := appPlan(t, plan, "api"), appPlan(t, plan, "batch")
	for _, n := range batch.Nodes() {
		if slices.Contains(api.Nodes(), n) {
			t.Errorf("batch on %s beside api (%v)", n, api.Nodes())
		}
	}
	if batch.Have != 2 {
		t.Errorf("batch %s", batch.Explain())
	}
}

func TestNearPrefersTheActiveInstance(t *testing.T) {
	in := Input{
		Apps: []App{
			{Name: "db", Mode: ModeSingleton},
			{Name: "backup", Mode: ModeReplicas, Count: 1, Near: []string{"db"}},
			{Name: "metrics", Mode: ModeReplicas, Count: 1, Near: []string{"db"}, AwayFrom: []string{"db"}},
		},
		Nodes: []Node{
			mkNode("n1"),
			running(mkNode("n2"), standbyInst("db")),
			running(mkNode("n3"), activeInst("db")),
		},
	}
	plan := mustPlace(t, in)
	assertDecisions(t, appPlan(t, plan, "backup"), placeOn("n3"))
	// n1 got a db standby in the same plan, so it scores like n2: the
	// lower ID wins.
	assertDecisions(t, appPlan(t, plan, "metrics"), placeOn("n1"))
}

func TestUnwantedAppsStop(t *testing.T) {
	in := Input{Nodes: []Node{running(mkNode("n1"), activeInst("old"), activeInst("old")), running(mkNode("n2"), standbyInst("old"))}}
	plan := mustPlace(t, in)
	ap := appPlan(t, plan, "old")
	assertDecisions(t, ap, activeOf(stopOn("n1")), activeOf(stopOn("n1")), stopOn("n2"))
	if ap.Want != 0 || ap.Have != 0 {
		t.Errorf("want %d have %d", ap.Want, ap.Have)
	}
}

func TestInfeasibleAppsAreReported(t *testing.T) {
	in := Input{
		Apps: []App{
			{Name: "gpu", Mode: ModeReplicas, Count: 3, Constraints: []Constraint{{Attribute: "node.labels.gpu", Operator: OpIsSet}}},
			{Name: "agent", Mode: ModeSpread, Constraints: []Constraint{{Attribute: "node.labels.gpu", Operator: OpIsSet}}},
		},
		Nodes: []Node{mkNode("n1"), notEligible(mkNode("n2")), drained(mkNode("n3", "gpu=x"))},
	}
	plan := mustPlace(t, in)
	suffix := ": ineligible: 1 node; draining: 1 node; constraint node.labels.gpu is_set not met on 1 node"
	if got := appPlan(t, plan, "gpu").Explain(); got != "placed 0 of 3"+suffix {
		t.Errorf("gpu: %q", got)
	}
	if got := appPlan(t, plan, "agent").Explain(); got != "placed 0 of 1"+suffix {
		t.Errorf("agent: %q", got)
	}
}

func TestConstraintNoLongerMetMoves(t *testing.T) {
	in := Input{
		Apps:  []App{{Name: "w", Mode: ModeReplicas, Count: 1, Constraints: []Constraint{{Attribute: "node.labels.disk", Operator: OpEqual, Value: "ssd"}}}},
		Nodes: []Node{running(mkNode("n1", "disk=hdd"), activeInst("w")), mkNode("n2", "disk=ssd")},
	}
	assertDecisions(t, appPlan(t, mustPlace(t, in), "w"), activeOf(moveFromTo("n1", "n2")))
}

func TestRingMembers(t *testing.T) {
	nodes := []Node{mkNode("n1"), running(mkNode("n2"), activeInst("cache")), mkNode("n3"), mkNode("n4")}
	ap := appPlan(t, mustPlace(t, Input{Apps: []App{{Name: "cache", Mode: ModeRing, Count: 3}}, Nodes: nodes}), "cache")
	assertDecisions(t, ap, placeOn("n1"), activeOf(keepOn("n2")), placeOn("n3"))
	ap = appPlan(t, mustPlace(t, Input{Apps: []App{{Name: "cache", Mode: ModeRing}}, Nodes: nodes}), "cache")
	if ap.Have != 4 {
		t.Errorf("ring without count: %s", ap.Explain())
	}
}

func TestSecondInstanceOnOneNodeStops(t *testing.T) {
	in := Input{Apps: []App{{Name: "api", Mode: ModeSpread}}, Nodes: []Node{running(mkNode("n1"), activeInst("api"), activeInst("api"))}}
	assertDecisions(t, appPlan(t, mustPlace(t, in), "api"), activeOf(keepOn("n1")), stopOn("n1"))
}
