package placement

// Ranking picks the node for an app's next instance among its feasible
// nodes. Candidates are first ordered by how many instances of the app they
// run already, fewest first, so that instances spread over nodes before any
// node gets a second: losing a node is the failure an HA app must survive.
// Within that, the highest score wins and ties go to the lowest node ID.
//
// The score is the sum of four terms, each in [-1, 1]:
//
//	affinity = Σ weights of the affinities the node satisfies / Σ |weights|
//	near     = mean over Near apps of 1 where the app is active,
//	           1/2 where it has only standby instances, 0 elsewhere
//	spread   = Σ_s weight_s / Σ weights · fairShare(instances on the node's
//	           value of s, mean instances per value of s); -1 without the
//	           attribute
//	load     = fairShare(instances of all apps on the node, mean per node)
//
//	fairShare(x, mean) = clamp((mean − x) / (mean + 1), −1, 1)
//
// fairShare is positive below the fair share, 0 at it and negative above it;
// the +1 keeps it finite on an empty cluster and softens it while counts
// are small. Terms an app does not use are 0. Summing rather than averaging
// changes nothing within one app, whose candidates all get the same terms.

// weightedCondition is a compiled affinity.
type weightedCondition struct {
	cond   condition
	weight float64
}

// affinityScore is the affinity term of a node; total is Σ |weights|.
func affinityScore(affinities []weightedCondition, total float64, n *Node) float64 {
	if total == 0 {
		return 0
	}
	var sum float64
	for i := range affinities {
		if affinities[i].cond.holds(n) {
			sum += affinities[i].weight
		}
	}
	return sum / total
}

// nearRow is the working state of an app another app wants to be near.
type nearRow struct {
	count  []int32
	active []bool
}

// nearScore is the near term of node i.
func nearScore(near []nearRow, i int) float64 {
	if len(near) == 0 {
		return 0
	}
	var sum float64
	for _, r := range near {
		switch {
		case r.active[i]:
			sum++
		case r.count[i] > 0:
			sum += 0.5
		}
	}
	return sum / float64(len(near))
}

// fairShare scores a count against its fair share, see above.
func fairShare(x int32, mean float64) float64 {
	return min(max((mean-float64(x))/(mean+1), -1), 1)
}

// spreadTerm tracks one spread of the app being placed.
type spreadTerm struct {
	weight  float64 // this spread's part of the app's spread weight
	valueOf []int32 // per node: index of its value, -1 without the attribute
	count   []int32 // per value: instances of the app
	total   int32
}

// newSpreadTerm indexes the values the attribute takes on the feasible
// nodes; values found only on infeasible nodes cannot be evened out and do
// not count.
func newSpreadTerm(attr attribute, weight float64, nodes []*Node, feasible []int32) spreadTerm {
	t := spreadTerm{weight: weight, valueOf: make([]int32, len(nodes))}
	for i := range t.valueOf {
		t.valueOf[i] = -1
	}
	values := make(map[string]int32)
	for _, i := range feasible {
		v, ok := attr.lookup(nodes[i])
		if !ok {
			continue
		}
		idx, seen := values[v]
		if !seen {
			idx = int32(len(values))
			values[v] = idx
		}
		t.valueOf[i] = idx
	}
	t.count = make([]int32, len(values))
	return t
}

// mean is the mean number of instances per value.
func (t *spreadTerm) mean() float64 {
	if len(t.count) == 0 {
		return 0
	}
	return float64(t.total) / float64(len(t.count))
}

// score is the term of node i, given mean from t.mean.
func (t *spreadTerm) score(i int32, mean float64) float64 {
	v := t.valueOf[i]
	if v < 0 {
		return -1
	}
	return fairShare(t.count[v], mean)
}

// add records an instance on node i.
func (t *spreadTerm) add(i int32) {
	if v := t.valueOf[i]; v >= 0 {
		t.count[v]++
		t.total++
	}
}

// ranker ranks nodes for the app being placed and records what it picks in
// the working state.
type ranker struct {
	cl  *cluster
	row int
	own []int32 // the app's row of cl.count
	// static is the part of the score fixed while the app is placed:
	// affinity and near, per node.
	static  []float64
	spreads []spreadTerm
	means   []float64 // per spread, refreshed for every pick
}

// bind points the ranker at app a with no scoring yet: enough to record
// instances of an app that needs no ranking.
func (r *ranker) bind(cl *cluster, a *compiledApp) {
	r.cl, r.row, r.own = cl, a.row, cl.counts(a.row)
	r.spreads = r.spreads[:0]
}

// prepare computes what scoring app a over its feasible nodes needs,
// reusing memory from the previous app.
func (r *ranker) prepare(a *compiledApp, feasible []int32) {
	nodes := r.cl.nodes
	if cap(r.static) < len(nodes) {
		r.static = make([]float64, len(nodes))
	}
	r.static = r.static[:len(nodes)]
	near := make([]nearRow, len(a.near))
	for k, row := range a.near {
		near[k] = nearRow{count: r.cl.counts(row), active: r.cl.actives(row)}
	}
	for _, i := range feasible {
		r.static[i] = affinityScore(a.affinities, a.affinityTotal, nodes[i]) + nearScore(near, int(i))
	}
	for _, s := range a.spreads {
		r.spreads = append(r.spreads, newSpreadTerm(s.attr, s.weight, nodes, feasible))
	}
	r.means = make([]float64, len(r.spreads))
}

// best returns the candidate for the next instance, or -1 when no
// candidate may take one. avail, when not nil, limits how many instances
// each node may take; distinct allows only nodes without an instance.
func (r *ranker) best(candidates []int32, avail []int32, distinct bool) int32 {
	meanLoad := r.cl.meanLoad()
	for k := range r.spreads {
		r.means[k] = r.spreads[k].mean()
	}
	best, bestOwn, bestScore := int32(-1), int32(0), 0.0
	for _, i := range candidates {
		if avail != nil && avail[i] == 0 {
			continue
		}
		own := r.own[i]
		if !distinctHostsAllows(distinct, own) || (best >= 0 && own > bestOwn) {
			continue
		}
		score := r.static[i] + fairShare(r.cl.load[i], meanLoad)
		for k := range r.spreads {
			score += r.spreads[k].weight * r.spreads[k].score(i, r.means[k])
		}
		if best < 0 || own < bestOwn || score > bestScore {
			best, bestOwn, bestScore = i, own, score
		}
	}
	return best
}

// add records an instance of the app on node i.
func (r *ranker) add(i int32) {
	r.cl.add(r.row, int(i), 1)
	for k := range r.spreads {
		r.spreads[k].add(i)
	}
}
