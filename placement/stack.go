package placement

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Place plans where every app runs. It validates and compiles all apps
// first and returns an error, placing nothing, when one is invalid. Equal
// inputs give equal plans whatever the order of apps, nodes and instances.
func Place(in Input) (Plan, error) {
	apps := slices.Clone(in.Apps)
	slices.SortFunc(apps, func(a, b App) int { return cmp.Compare(a.Name, b.Name) })
	names := make([]string, len(apps))
	for i, a := range apps {
		if a.Name == "" {
			return Plan{}, errors.New("app without a name")
		}
		if i > 0 && apps[i-1].Name == a.Name {
			return Plan{}, fmt.Errorf("app %q listed twice", a.Name)
		}
		names[i] = a.Name
	}
	cl, err := newCluster(in.Nodes, names)
	if err != nil {
		return Plan{}, err
	}
	compiled := make([]compiledApp, len(apps))
	for i := range apps {
		if compiled[i], err = compileApp(&apps[i], cl); err != nil {
			return Plan{}, fmt.Errorf("app %q: %w", apps[i].Name, err)
		}
	}
	p := planner{cl: cl}
	plans := p.stopUnwanted(len(apps))
	for _, i := range planningOrder(apps, cl.rows) {
		plans = append(plans, p.plan(&compiled[i]))
	}
	slices.SortFunc(plans, func(a, b AppPlan) int { return cmp.Compare(a.App, b.App) })
	return Plan{Apps: plans}, nil
}

// planner plans app after app on the working state. It reuses its memory
// from app to app so that planning allocates per app, not per node or
// instance.
type planner struct {
	cl       *cluster
	rank     ranker
	tally    tally
	feasible []int32 // node indices, ascending
	usable   []bool  // per node: feasible for the app being planned
	avail    []int32 // per node: current instances the app may keep
	keepable []int32 // nodes with instances the app may keep, ascending
}

// stopUnwanted stops every instance of the apps in rows from first on,
// which run somewhere but are not wanted any more.
func (p *planner) stopUnwanted(first int) []AppPlan {
	var plans []AppPlan
	for row := first; row < len(p.cl.names); row++ {
		var o outcome
		counts, actives := p.cl.counts(row), p.cl.actives(row)
		for i, n := range counts {
			for range n {
				o.leave = append(o.leave, placedInstance{node: int32(i), active: actives[i]})
			}
			p.cl.add(row, i, -n)
			actives[i] = false
		}
		plans = append(plans, AppPlan{App: p.cl.names[row], Decisions: o.decisions(p.cl.nodes)})
	}
	return plans
}

// plan places one app: feasibility, then keeping what may stay, then
// ranking nodes for what is missing, then the diff.
func (p *planner) plan(a *compiledApp) AppPlan {
	cl := p.cl
	p.tally = resize(p.tally, len(a.checks))
	p.feasible = filterNodes(a.checks, cl.nodes, p.feasible[:0], p.tally)
	p.usable = resize(p.usable, len(cl.nodes))
	for _, i := range p.feasible {
		p.usable[i] = true
	}

	p.rank.bind(cl, a)
	o, leader := p.takeCurrent(a)
	want := a.count
	if a.everyNode {
		want = max(len(p.feasible), 1)
		for _, i := range p.keepable {
			p.keep(&o, i)
		}
		for _, i := range p.feasible {
			if cl.counts(a.row)[i] == 0 {
				o.place = append(o.place, i)
				p.rank.add(i)
			}
		}
	} else {
		p.keepBest(&o, a, leader)
		for len(o.keep)+len(o.place) < want {
			i := p.rank.best(p.feasible, nil, a.distinct)
			if i < 0 {
				break
			}
			o.place = append(o.place, i)
			p.rank.add(i)
		}
	}
	p.markActive(a, &o)

	ap := AppPlan{
		App:       a.name,
		Want:      want,
		Have:      len(o.keep) + len(o.place),
		Decisions: o.decisions(cl.nodes),
		Filtered:  p.tally.filtered(a.checks),
	}
	if ap.Have < ap.Want && a.distinct {
		if used := p.usedFeasible(a); used > 0 {
			ap.Filtered = append(ap.Filtered, Filtered{Step: StepDistinctHosts, Nodes: used})
		}
	}
	return ap
}

// takeCurrent takes the app's instances out of the working state's counts;
// what stays is added back as it is kept. Its active flags stay until
// markActive, as the record of what is active now. Instances on nodes the
// app may no longer use must leave, active ones first; the others become
// keepable, except second instances on one node of a distinct app, which
// are surplus. It returns the node of a singleton's keepable active
// instance, or -1.
func (p *planner) takeCurrent(a *compiledApp) (outcome, int32) {
	var o outcome
	leader := int32(-1)
	counts, actives := p.cl.counts(a.row), p.cl.actives(a.row)
	p.avail = resize(p.avail, len(counts))
	p.keepable = p.keepable[:0]
	for i, n := range counts {
		if n == 0 {
			continue
		}
		node := int32(i)
		p.cl.add(a.row, i, -n)
		if !p.usable[i] {
			for range n {
				o.leave = append(o.leave, placedInstance{node: node, active: actives[i]})
			}
			continue
		}
		kept := n
		if a.distinct {
			kept = 1
		}
		p.avail[i] = kept
		p.keepable = append(p.keepable, node)
		if a.mode == ModeSingleton && actives[i] && leader < 0 {
			leader = node
		}
		for range n - kept {
			o.surplus = append(o.surplus, placedInstance{node: node})
		}
	}
	slices.SortStableFunc(o.leave, func(x, y placedInstance) int { return activeFirst(x.active, y.active) })
	return o, leader
}

// keepBest keeps up to Count of the keepable instances: the leader first,
// so that keeping never forces a failover, then the best ranked, as if
// placing them anew among the nodes that have them. The rest is surplus.
func (p *planner) keepBest(o *outcome, a *compiledApp, leader int32) {
	p.rank.prepare(a, p.feasible)
	var keepable int32
	for _, i := range p.keepable {
		keepable += p.avail[i]
	}
	if int(keepable) <= a.count {
		for _, i := range p.keepable {
			for range p.avail[i] {
				p.keep(o, i)
			}
		}
		return
	}
	if leader >= 0 && a.count > 0 {
		p.keep(o, leader)
	}
	for len(o.keep) < a.count {
		p.keep(o, p.rank.best(p.keepable, p.avail, false))
	}
	actives := p.cl.actives(a.row)
	for _, i := range p.keepable {
		for range p.avail[i] {
			o.surplus = append(o.surplus, placedInstance{node: i, active: actives[i]})
		}
		p.avail[i] = 0
	}
}

// keep keeps one current instance on node i, which must be keepable.
func (p *planner) keep(o *outcome, i int32) {
	o.keep = append(o.keep, placedInstance{node: i, active: p.cl.actives(p.rank.row)[i]})
	p.avail[i]--
	p.rank.add(i)
}

// markActive records where the app is active once the plan is carried out:
// for a singleton only where its active instance was kept, since the
// election picks among the others; for other modes everywhere it runs.
func (p *planner) markActive(a *compiledApp, o *outcome) {
	actives := p.cl.actives(a.row)
	clear(actives)
	for _, k := range o.keep {
		actives[k.node] = actives[k.node] || a.mode != ModeSingleton || k.active
	}
	if a.mode != ModeSingleton {
		for _, i := range o.place {
			actives[i] = true
		}
	}
}

// usedFeasible counts the feasible nodes that run an instance of the app.
func (p *planner) usedFeasible(a *compiledApp) int {
	counts, used := p.cl.counts(a.row), 0
	for _, i := range p.feasible {
		if counts[i] > 0 {
			used++
		}
	}
	return used
}

// resize returns s with length n and every element zero, reusing its
// memory when it can.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}
