package placement

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// oracleConstraint pairs a constraint with a plain Go statement of what it
// means, written independently of the package's matching code.
type oracleConstraint struct {
	c     Constraint
	holds func(n Node) bool
}

var constraintPool = []oracleConstraint{
	{Constraint{"node.labels.disk", OpEqual, "ssd"}, func(n Node) bool { return n.Labels["disk"] == "ssd" }},
	{Constraint{"node.labels.zone", OpNotEqual, "c"}, func(n Node) bool { return n.Labels["zone"] != "c" }},
	{Constraint{"node.labels.zone", OpIsSet, ""}, func(n Node) bool { _, ok := n.Labels["zone"]; return ok }},
	{Constraint{"node.labels.gpu", OpIsNotSet, ""}, func(n Node) bool { _, ok := n.Labels["gpu"]; return !ok }},
	{Constraint{"node.labels.rack", OpRegexp, "^r[0-2]$"}, func(n Node) bool {
		r := n.Labels["rack"]
		return r == "r0" || r == "r1" || r == "r2"
	}},
	{Constraint{"node.labels.version", OpVersion, ">= 1.2, < 1.4"}, func(n Node) bool {
		var minor, patch int
		_, err := fmt.Sscanf(n.Labels["version"], "1.%d.%d", &minor, &patch)
		return err == nil && (minor == 2 || minor == 3)
	}},
	{Constraint{"node.labels.cores", OpGreaterEqual, "8"}, func(n Node) bool {
		c, err := strconv.Atoi(n.Labels["cores"])
		return err == nil && c >= 8
	}},
	{Constraint{"node.labels.features", OpSetContains, "avx,aes"}, func(n Node) bool {
		f := strings.Split(n.Labels["features"], ",")
		return slices.Contains(f, "avx") && slices.Contains(f, "aes")
	}},
	{Constraint{"node.id", OpLess, "n15"}, func(n Node) bool { return n.ID < "n15" }},
}

var affinityPool = []Affinity{
	{Attribute: "node.labels.zone", Operator: OpEqual, Value: "a"},
	{Attribute: "node.labels.disk", Operator: OpEqual, Value: "hdd"},
	{Attribute: "node.labels.gpu", Operator: OpIsSet},
	{Attribute: "node.labels.cores", Operator: OpGreater, Value: "4"},
}

// randomCluster is one random scenario and the oracles of its apps'
// constraints. Apps keep away from and want to be near only apps before
// them, so there are no cycles.
type randomCluster struct {
	in      Input
	oracles map[string][]oracleConstraint
}

func newRandomCluster(seed uint64) randomCluster {
	rng := rand.New(rand.NewPCG(seed, 7))
	pick := func(values ...string) string { return values[rng.IntN(len(values))] }
	nodes := make([]Node, rng.IntN(25))
	for i := range nodes {
		labels := map[string]string{
			"disk":    pick("ssd", "hdd"),
			"rack":    fmt.Sprintf("r%d", rng.IntN(5)),
			"version": fmt.Sprintf("1.%d.%d", rng.IntN(5), rng.IntN(3)),
			"cores":   pick("2", "4", "8", "16", "32"),
		}
		if rng.IntN(10) > 0 {
			labels["zone"] = pick("a", "b", "c")
		}
		if rng.IntN(4) == 0 {
			labels["gpu"] = "x"
		}
		var features []string
		for _, f := range []string{"avx", "sse", "aes"} {
			if rng.IntN(2) == 0 {
				features = append(features, f)
			}
		}
		labels["features"] = strings.Join(features, ",")
		nodes[i] = Node{
			ID: fmt.Sprintf("n%02d", i), Address: fmt.Sprintf("10.0.0.%d", i), Labels: labels,
			Eligible: rng.IntN(8) > 0, Draining: rng.IntN(10) == 0,
		}
	}
	rc := randomCluster{oracles: make(map[string][]oracleConstraint)}
	modes := []Mode{ModeSingleton, ModeSpread, ModeReplicas, ModeRing}
	apps := make([]App, 1+rng.IntN(6))
	for i := range apps {
		a := App{Name: fmt.Sprintf("app%d", i), Mode: modes[rng.IntN(len(modes))]}
		switch a.Mode {
		case ModeReplicas:
			a.Count = rng.IntN(9)
			if rng.IntN(3) == 0 {
				a.Constraints = append(a.Constraints, Constraint{Operator: OpDistinctHosts})
			}
		case ModeSingleton, ModeRing:
			a.Count = rng.IntN(5)
		}
		for range rng.IntN(3) {
			oc := constraintPool[rng.IntN(len(constraintPool))]
			a.Constraints = append(a.Constraints, oc.c)
			rc.oracles[a.Name] = append(rc.oracles[a.Name], oc)
		}
		for range rng.IntN(3) {
			af := affinityPool[rng.IntN(len(affinityPool))]
			af.Weight = rng.IntN(201) - 100
			if af.Weight == 0 {
				af.Weight = 1
			}
			a.Affinities = append(a.Affinities, af)
		}
		if rng.IntN(2) == 0 {
			a.Spreads = []Spread{{Attribute: "node.labels." + pick("zone", "rack", "gpu"), Weight: 1 + rng.IntN(100)}}
		}
		for j := range i {
			if rng.IntN(4) == 0 {
				a.AwayFrom = append(a.AwayFrom, apps[j].Name)
			}
			if rng.IntN(4) == 0 {
				a.Near = append(a.Near, apps[j].Name)
			}
		}
		apps[i] = a
		// What runs now, including what should not: too many, on
		// infeasible nodes, twice on a node.
		leaderPlaced := false
		for n := range nodes {
			if rng.IntN(3) > 0 {
				continue
			}
			copies := 1
			if a.Mode == ModeReplicas && rng.IntN(4) == 0 || rng.IntN(30) == 0 {
				copies = 2
			}
			active := a.Mode != ModeSingleton || (!leaderPlaced && rng.IntN(2) == 0)
			leaderPlaced = leaderPlaced || active
			for range copies {
				nodes[n].Instances = append(nodes[n].Instances, Instance{App: a.Name, Active: active})
			}
		}
	}
	for n := range nodes {
		if rng.IntN(10) == 0 {
			nodes[n].Instances = append(nodes[n].Instances, Instance{App: "retired", Active: true})
		}
	}
	rc.in = Input{Apps: apps, Nodes: nodes}
	return rc
}

const propertySeeds = 1500

func forEachRandomCluster(t *testing.T, check func(t *testing.T, rc randomCluster, plan Plan)) {
	for seed := range uint64(propertySeeds) {
		rc := newRandomCluster(seed)
		plan, err := Place(rc.in)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		t.Run(fmt.Sprint(seed), func(t *testing.T) { check(t, rc, plan) })
		if t.Failed() {
			return
		}
	}
}

// oracleFeasible reports whether a node may run an app, leaving away_from
// aside.
func (rc randomCluster) oracleFeasible(app string, n Node) bool {
	if !n.Eligible || n.Draining {
		return false
	}
	for _, oc := range rc.oracles[app] {
		if !oc.holds(n) {
			return false
		}
	}
	return true
}

func nodeByID(nodes []Node, id string) Node {
	i := slices.IndexFunc(nodes, func(n Node) bool { return n.ID == id })
	return nodes[i]
}

func isDistinct(a App) bool {
	return a.Mode != ModeReplicas || slices.Contains(a.Constraints, Constraint{Operator: OpDistinctHosts})
}

// activeAfter returns, per app, the nodes where it is known to be active
// once the plan is carried out.
func activeAfter(in Input, plan Plan) map[string]map[string]bool {
	active := make(map[string]map[string]bool)
	for _, a := range in.Apps {
		active[a.Name] = make(map[string]bool)
		ap, _ := plan.App(a.Name)
		for _, d := range ap.Decisions {
			if d.Action != ActionStop && (a.Mode != ModeSingleton || d.Action == ActionKeep && d.Active) {
				active[a.Name][d.Node] = true
			}
		}
	}
	return active
}

func TestPropertyHardConstraints(t *testing.T) {
	forEachRandomCluster(t, func(t *testing.T, rc randomCluster, plan Plan) {
		for _, a := range rc.in.Apps {
			for _, id := range appPlan(t, plan, a.Name).Nodes() {
				if !rc.oracleFeasible(a.Name, nodeByID(rc.in.Nodes, id)) {
					t.Errorf("%s on %s, which is ineligible, draining or fails %+v", a.Name, id, a.Constraints)
				}
			}
		}
	})
}

func TestPropertyDistinctHosts(t *testing.T) {
	forEachRandomCluster(t, func(t *testing.T, rc randomCluster, plan Plan) {
		for _, a := range rc.in.Apps {
			nodes := sortedNodes(appPlan(t, plan, a.Name))
			if isDistinct(a) && len(slices.Compact(slices.Clone(nodes))) != len(nodes) {
				t.Errorf("%s (%s) doubles up: %v", a.Name, a.Mode, nodes)
			}
		}
	})
}

func TestPropertyAwayFromActiveOnly(t *testing.T) {
	forEachRandomCluster(t, func(t *testing.T, rc randomCluster, plan Plan) {
		active := activeAfter(rc.in, plan)
		for _, a := range rc.in.Apps {
			for _, id := range appPlan(t, plan, a.Name).Nodes() {
				for _, other := range a.AwayFrom {
					if active[other][id] {
						t.Errorf("%s on %s where %s is active", a.Name, id, other)
					}
				}
			}
			// Only active instances block: counting the nodes where the
			// others are active, the app got all it could.
			if len(a.AwayFrom) == 0 {
				continue
			}
			feasible := 0
			for _, n := range rc.in.Nodes {
				blocked := slices.ContainsFunc(a.AwayFrom, func(o string) bool { return active[o][n.ID] || wasActive(n, o) })
				if rc.oracleFeasible(a.Name, n) && !blocked {
					feasible++
				}
			}
			if have := appPlan(t, plan, a.Name).Have; have < expectedHave(a, feasible) {
				t.Errorf("%s has %d, want at least %d", a.Name, have, expectedHave(a, feasible))
			}
		}
	})
}

func wasActive(n Node, app string) bool {
	return slices.Contains(n.Instances, Instance{App: app, Active: true})
}

// expectedHave is how many instances an app gets on this many feasible
// nodes.
func expectedHave(a App, feasible int) int {
	switch {
	case a.Mode == ModeSpread || a.Count == 0 && a.Mode != ModeReplicas:
		return feasible
	case isDistinct(a):
		return min(a.Count, feasible)
	case feasible > 0:
		return a.Count
	}
	return 0
}

func TestPropertyCountsAndReasons(t *testing.T) {
	forEachRandomCluster(t, func(t *testing.T, rc randomCluster, plan Plan) {
		for _, a := range rc.in.Apps {
			ap := appPlan(t, plan, a.Name)
			if ap.Have > ap.Want || ap.Have != len(ap.Nodes()) {
				t.Errorf("%s: have %d, want %d, nodes %v", a.Name, ap.Have, ap.Want, ap.Nodes())
			}
			if len(a.AwayFrom) > 0 {
				continue // covered by TestPropertyAwayFromActiveOnly
			}
			// Every node left out is counted under the first step it fails.
			want := make(map[Filtered]int)
			feasible := 0
			for _, n := range rc.in.Nodes {
				switch {
				case !n.Eligible:
					want[Filtered{Step: StepIneligible}]++
				case n.Draining:
					want[Filtered{Step: StepDraining}]++
				default:
					failed := slices.IndexFunc(rc.oracles[a.Name], func(oc oracleConstraint) bool { return !oc.holds(n) })
					if failed < 0 {
						feasible++
						continue
					}
					c := rc.oracles[a.Name][failed].c
					detail := c.Attribute + " " + string(c.Operator)
					if c.Value != "" {
						detail += " " + c.Value
					}
					want[Filtered{Step: StepConstraint, Detail: detail}]++
				}
			}
			got := make(map[Filtered]int)
			for _, f := range ap.Filtered {
				if f.Step != StepDistinctHosts {
					got[Filtered{Step: f.Step, Detail: f.Detail}] += f.Nodes
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s filtered %v, want %v", a.Name, got, want)
			}
			if ap.Have != expectedHave(a, feasible) {
				t.Errorf("%s: %s; want %d on %d feasible nodes", a.Name, ap.Explain(), expectedHave(a, feasible), feasible)
			}
			distinctReported := slices.ContainsFunc(ap.Filtered, func(f Filtered) bool {
				return f.Step == StepDistinctHosts && f.Nodes == feasible
			})
			if wantReported := ap.Have < ap.Want && isDistinct(a) && feasible > 0; distinctReported != wantReported {
				t.Errorf("%s: %s; distinct_hosts reported %v, want %v", a.Name, ap.Explain(), distinctReported, wantReported)
			}
		}
	})
}

func TestPropertyUnwantedAppsStop(t *testing.T) {
	forEachRandomCluster(t, func(t *testing.T, rc randomCluster, plan Plan) {
		running := 0
		for _, n := range rc.in.Nodes {
			running += strings.Count(fmt.Sprint(n.Instances), "retired")
		}
		ap, ok := plan.App("retired")
		if ok != (running > 0) {
			t.Fatalf("plan for retired: %v, with %d instances", ok, running)
		}
		for _, d := range ap.Decisions {
			if d.Action != ActionStop {
				t.Errorf("retired app: %+v", d)
			}
		}
		if len(ap.Decisions) != running {
			t.Errorf("%d stops for %d instances", len(ap.Decisions), running)
		}
	})
}

func TestPropertyDeterministic(t *testing.T) {
	forEachRandomCluster(t, func(t *testing.T, rc randomCluster, plan Plan) {
		again, err := Place(rc.in)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(plan, again) {
			t.Fatalf("same input, different plans:\n%+v\n%+v", plan, again)
		}
		shuffled, err := Place(shuffledInput(rc.in, rand.New(rand.NewPCG(uint64(len(rc.in.Nodes)), 3))))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(plan, shuffled) {
			t.Fatalf("shuffled input, different plans:\n%+v\n%+v", plan, shuffled)
		}
	})
}

// shuffledInput returns a copy of in with apps, nodes and instances reordered.
func shuffledInput(in Input, rng *rand.Rand) Input {
	out := Input{Apps: slices.Clone(in.Apps), Nodes: slices.Clone(in.Nodes)}
	rng.Shuffle(len(out.Apps), func(i, j int) { out.Apps[i], out.Apps[j] = out.Apps[j], out.Apps[i] })
	rng.Shuffle(len(out.Nodes), func(i, j int) { out.Nodes[i], out.Nodes[j] = out.Nodes[j], out.Nodes[i] })
	for i := range out.Nodes {
		inst := slices.Clone(out.Nodes[i].Instances)
		rng.Shuffle(len(inst), func(a, b int) { inst[a], inst[b] = inst[b], inst[a] })
		out.Nodes[i].Instances = inst
	}
	return out
}

// applied returns the input with the plan carried out, as the next plan
// would see it: everything the plan keeps or places runs, active except
// singleton instances that were not active before.
func applied(in Input, plan Plan) Input {
	modes := make(map[string]Mode, len(in.Apps))
	for _, a := range in.Apps {
		modes[a.Name] = a.Mode
	}
	byID := make(map[string]int, len(in.Nodes))
	nodes := make([]Node, len(in.Nodes))
	for i, n := range in.Nodes {
		n.Instances = nil
		nodes[i] = n
		byID[n.ID] = i
	}
	for _, ap := range plan.Apps {
		for _, d := range ap.Decisions {
			if d.Action == ActionStop {
				continue
			}
			active := modes[ap.App] != ModeSingleton || (d.Action == ActionKeep && d.Active)
			n := &nodes[byID[d.Node]]
			n.Instances = append(n.Instances, Instance{App: ap.App, Active: active})
		}
	}
	return Input{Apps: in.Apps, Nodes: nodes}
}

// Carrying out a plan and planning again changes nothing.
func TestPropertyKeepStable(t *testing.T) {
	forEachRandomCluster(t, func(t *testing.T, rc randomCluster, plan Plan) {
		next, err := Place(applied(rc.in, plan))
		if err != nil {
			t.Fatal(err)
		}
		for _, ap := range next.Apps {
			for _, d := range ap.Decisions {
				if d.Action != ActionKeep {
					t.Errorf("%s: %+v after carrying out the plan", ap.App, d)
				}
			}
			before := appPlan(t, plan, ap.App)
			if !reflect.DeepEqual(sortedNodes(ap), sortedNodes(before)) || ap.Explain() != before.Explain() {
				t.Errorf("%s: %v (%s), was %v (%s)", ap.App, ap.Nodes(), ap.Explain(), before.Nodes(), before.Explain())
			}
		}
	})
}
