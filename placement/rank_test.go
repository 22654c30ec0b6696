package placement

import (
	"math"
	"testing"
)

func TestAffinityScore(t *testing.T) {
	zoneA := mustCondition(t, "node.labels.zone", OpEqual, "a")
	gpu := mustCondition(t, "node.labels.gpu", OpIsSet, "")
	affinities := []weightedCondition{{cond: zoneA, weight: 60}, {cond: gpu, weight: -40}}
	for _, tc := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"zone": "a"}, 0.6},
		{map[string]string{"zone": "a", "gpu": "x"}, 0.2},
		{map[string]string{"gpu": "x"}, -0.4},
		{nil, 0},
	} {
		if got := affinityScore(affinities, 100, &Node{Labels: tc.labels}); !approxEqual(got, tc.want) {
			t.Errorf("labels %v: %v, want %v", tc.labels, got, tc.want)
		}
	}
	if got := affinityScore(nil, 0, &Node{}); got != 0 {
		t.Errorf("no affinities: %v", got)
	}
}

func TestNearScore(t *testing.T) {
	db := nearRow{count: []int32{1, 1, 0}, active: []bool{true, false, false}}
	cache := nearRow{count: []int32{0, 2, 0}, active: []bool{false, true, false}}
	for _, tc := range []struct {
		node int
		want float64
	}{
		{0, 0.5},  // db active, no cache
		{1, 0.75}, // db standby, cache active
		{2, 0},
	} {
		if got := nearScore([]nearRow{db, cache}, tc.node); !approxEqual(got, tc.want) {
			t.Errorf("node %d: %v, want %v", tc.node, got, tc.want)
		}
	}
	if got := nearScore(nil, 0); got != 0 {
		t.Errorf("no near apps: %v", got)
	}
}

func TestShare(t *testing.T) {
	for _, tc := range []struct {
		x    int32
		mean float64
		want float64
	}{
		{0, 0, 0},
		{1, 0, -1},
		{2, 2, 0},
		{0, 3, 0.75},
		{4, 3, -0.25},
		{100, 1, -1},
	} {
		if got := fairShare(tc.x, tc.mean); !approxEqual(got, tc.want) {
			t.Errorf("fairShare(%d, %v) = %v, want %v", tc.x, tc.mean, got, tc.want)
		}
	}
}

func TestSpreadTerm(t *testing.T) {
	nodes := []*Node{
		{ID: "a1", Labels: map[string]string{"zone": "a"}},
		{ID: "a2", Labels: map[string]string{"zone": "a"}},
		{ID: "b1", Labels: map[string]string{"zone": "b"}},
		{ID: "x", Labels: nil},
		{ID: "c1", Labels: map[string]string{"zone": "c"}}, // infeasible
	}
	s := newSpreadTerm(mustAttribute(t, "node.labels.zone"), 1, nodes, []int32{0, 1, 2, 3})
	if len(s.count) != 2 {
		t.Fatalf("values %d, want 2: zone c is on no feasible node", len(s.count))
	}
	if got := s.score(3, s.mean()); got != -1 {
		t.Errorf("node without the attribute: %v, want -1", got)
	}
	s.add(0)
	s.add(1)
	s.add(3)
	mean := s.mean() // 2 instances over 2 values
	if s.total != 2 || mean != 1 {
		t.Fatalf("total %d mean %v, want 2 and 1", s.total, mean)
	}
	if a, b := s.score(0, mean), s.score(2, mean); !approxEqual(a, -0.5) || !approxEqual(b, 0.5) {
		t.Errorf("zone a (2 of 2) scores %v, zone b (0) %v; want -0.5 and 0.5", a, b)
	}
}

// newRanker ranks for an app in row 0 of a cluster with the given nodes.
func newRanker(t *testing.T, nodes []Node, a compiledApp) (*ranker, *cluster) {
	t.Helper()
	cl, err := newCluster(nodes, []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	all := make([]int32, len(cl.nodes))
	for i := range all {
		all[i] = int32(i)
	}
	r := &ranker{}
	r.bind(cl, &a)
	r.prepare(&a, all)
	return r, cl
}

func TestRankerBest(t *testing.T) {
	zone := func(id, z string) Node { return Node{ID: id, Eligible: true, Labels: map[string]string{"zone": z}} }
	all := []int32{0, 1, 2, 3}

	t.Run("ties go to the lowest node ID", func(t *testing.T) {
		r, _ := newRanker(t, []Node{zone("n3", "a"), zone("n1", "a"), zone("n2", "a")}, compiledApp{})
		if got := r.best(all[:3], nil, false); got != 0 {
			t.Errorf("best %d, want 0 (n1)", got)
		}
	})
	t.Run("least loaded wins", func(t *testing.T) {
		nodes := []Node{zone("n1", "a"), zone("n2", "a")}
		nodes[0].Instances = []Instance{{App: "other"}}
		r, _ := newRanker(t, nodes, compiledApp{})
		if got := r.best(all[:2], nil, false); got != 1 {
			t.Errorf("best %d, want 1 (n2, empty)", got)
		}
	})
	t.Run("affinity beats load", func(t *testing.T) {
		nodes := []Node{zone("n1", "a"), zone("n2", "b")}
		nodes[1].Instances = []Instance{{App: "other"}}
		a := compiledApp{affinities: []weightedCondition{{cond: mustCondition(t, "node.labels.zone", OpEqual, "b"), weight: 50}}, affinityTotal: 50}
		r, _ := newRanker(t, nodes, a)
		if got := r.best(all[:2], nil, false); got != 1 {
			t.Errorf("best %d, want 1 (n2, zone b)", got)
		}
	})
	t.Run("fewest own instances first, whatever the score", func(t *testing.T) {
		nodes := []Node{zone("n1", "b"), zone("n2", "a")}
		a := compiledApp{affinities: []weightedCondition{{cond: mustCondition(t, "node.labels.zone", OpEqual, "b"), weight: 100}}, affinityTotal: 100}
		r, _ := newRanker(t, nodes, a)
		r.add(0)
		if got := r.best(all[:2], nil, false); got != 1 {
			t.Errorf("best %d, want 1 (n2, no instance yet)", got)
		}
		r.add(1)
		if got := r.best(all[:2], nil, false); got != 0 {
			t.Errorf("best %d, want 0 (n1, affinity) once both have one", got)
		}
		if got := r.best(all[:2], nil, true); got != -1 {
			t.Errorf("distinct: best %d, want -1", got)
		}
	})
	t.Run("spread evens out zones", func(t *testing.T) {
		nodes := []Node{zone("n1", "a"), zone("n2", "a"), zone("n3", "a"), zone("n4", "b")}
		a := compiledApp{spreads: []compiledSpread{{attr: mustAttribute(t, "node.labels.zone"), weight: 1}}}
		r, _ := newRanker(t, nodes, a)
		r.add(0)
		if got := r.best(all, nil, false); got != 3 {
			t.Errorf("best %d, want 3 (n4, the empty zone)", got)
		}
	})
	t.Run("avail limits candidates", func(t *testing.T) {
		r, _ := newRanker(t, []Node{zone("n1", "a"), zone("n2", "a")}, compiledApp{})
		if got := r.best(all[:2], []int32{0, 1}, false); got != 1 {
			t.Errorf("best %d, want 1", got)
		}
		if got := r.best(all[:2], []int32{0, 0}, false); got != -1 {
			t.Errorf("best %d, want -1", got)
		}
	})
}

func TestRankerAddUpdatesState(t *testing.T) {
	nodes := []Node{{ID: "n1", Labels: map[string]string{"zone": "a"}}, {ID: "n2"}}
	a := compiledApp{spreads: []compiledSpread{{attr: mustAttribute(t, "node.labels.zone"), weight: 1}}}
	r, cl := newRanker(t, nodes, a)
	r.add(0)
	r.add(1)
	if cl.counts(0)[0] != 1 || cl.load[0] != 1 || cl.total != 2 {
		t.Errorf("count %d load %d total %d, want 1 1 2", cl.counts(0)[0], cl.load[0], cl.total)
	}
	if r.spreads[0].total != 1 {
		t.Errorf("spread total %d, want 1: n2 has no zone", r.spreads[0].total)
	}
}

func mustCondition(t *testing.T, attr string, op Operator, value string) condition {
	t.Helper()
	c, err := compileCondition(attr, op, value)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func approxEqual(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
