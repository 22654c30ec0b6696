package placement

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// benchCluster builds 1,000 labelled nodes and apps that want about 10,000
// instances between them, with constraints, affinities, spreads, away_from
// and near.
func benchCluster() Input {
	rng := rand.New(rand.NewPCG(1, 2))
	nodes := make([]Node, 1000)
	for i := range nodes {
		disk := "hdd"
		if rng.IntN(10) < 6 {
			disk = "ssd"
		}
		labels := map[string]string{
			"zone":    fmt.Sprintf("zone-%d", rng.IntN(5)),
			"disk":    disk,
			"version": fmt.Sprintf("1.%d.%d", rng.IntN(6), rng.IntN(10)),
			"rack":    fmt.Sprintf("r%02d", rng.IntN(50)),
		}
		if rng.IntN(10) == 0 {
			labels["gpu"] = "a100"
		}
		nodes[i] = Node{
			ID:       fmt.Sprintf("node-%04d", i),
			Address:  fmt.Sprintf("10.0.%d.%d", i/250, i%250),
			Labels:   labels,
			Eligible: rng.IntN(50) != 0,
			Draining: rng.IntN(100) == 0,
		}
	}
	apps := []App{
		{Name: "agent", Mode: ModeSpread},
		{Name: "cache", Mode: ModeRing, Constraints: []Constraint{{Attribute: "node.labels.version", Operator: OpVersion, Value: ">= 1.2, < 2"}}},
	}
	for k := range 10 {
		apps = append(apps, App{
			Name: fmt.Sprintf("db-%d", k), Mode: ModeSingleton, Count: 3,
			Constraints: []Constraint{{Attribute: "node.labels.disk", Operator: OpEqual, Value: "ssd"}},
			Spreads:     []Spread{{Attribute: "node.labels.zone", Weight: 100}},
		})
	}
	for k := range 20 {
		apps = append(apps, App{
			Name: fmt.Sprintf("svc-%02d", k), Mode: ModeReplicas, Count: 420,
			Constraints: []Constraint{
				{Attribute: "node.labels.rack", Operator: OpRegexp, Value: `^r[0-3][0-9]$`},
				{Operator: OpDistinctHosts},
			},
			Affinities: []Affinity{
				{Attribute: "node.labels.zone", Operator: OpEqual, Value: fmt.Sprintf("zone-%d", k%5), Weight: 50},
				{Attribute: "node.labels.gpu", Operator: OpIsSet, Weight: -30},
			},
			Spreads:  []Spread{{Attribute: "node.labels.zone", Weight: 50}, {Attribute: "node.labels.rack", Weight: 20}},
			AwayFrom: []string{fmt.Sprintf("db-%d", k%10)},
			Near:     []string{"cache"},
		})
	}
	return Input{Apps: apps, Nodes: nodes}
}

func instanceTotal(plan Plan) int {
	total := 0
	for _, ap := range plan.Apps {
		total += ap.Have
	}
	return total
}

func BenchmarkPlace10kInstances1kNodes(b *testing.B) {
	in := benchCluster()
	plan, err := Place(in)
	if err != nil {
		b.Fatal(err)
	}
	if n := instanceTotal(plan); n < 10_000 {
		b.Fatalf("placed %d instances, want at least 10,000", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Place(in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(instanceTotal(plan)), "instances/op")
}

// BenchmarkReplan1kNodesDraining re-plans the placed cluster once its
// databases have leaders and ten nodes started draining: mostly keeps, a
// few moves.
func BenchmarkReplan1kNodesDraining(b *testing.B) {
	in := benchCluster()
	plan, err := Place(in)
	if err != nil {
		b.Fatal(err)
	}
	in = applied(in, plan)
	// The elections have run: each database has a leader.
	led := make(map[string]bool)
	for i := range in.Nodes {
		for k, inst := range in.Nodes[i].Instances {
			if strings.HasPrefix(inst.App, "db-") && !led[inst.App] {
				in.Nodes[i].Instances[k].Active, led[inst.App] = true, true
			}
		}
	}
	for i := range 10 {
		in.Nodes[i*97].Draining = true
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Place(in); err != nil {
			b.Fatal(err)
		}
	}
}
