package scheduler

import (
	"cmp"
	"maps"
	"slices"
	"strings"
)

// This file puts the input in canonical form: sorted, one entry per key,
// nothing that refers to a node that is gone. Everything after it may then
// assume uniqueness and iterate in order, which is what makes Reconcile
// independent of the order of its input slices.

// normalizeNodes returns the nodes sorted by ID, without nodes lacking an
// ID and with one node per ID. Duplicates should not happen (a node has one
// presence record); if they do, the first in a total order over all fields
// wins, so the choice does not depend on the input order.
func normalizeNodes(in []NodeInfo) []NodeInfo {
	nodes := make([]NodeInfo, 0, len(in))
	for _, n := range in {
		if n.ID != "" {
			nodes = append(nodes, n)
		}
	}
	slices.SortFunc(nodes, compareNodes)
	return slices.CompactFunc(nodes, func(a, b NodeInfo) bool { return a.ID == b.ID })
}

// compareNodes is a total order on nodes, by ID first.
func compareNodes(a, b NodeInfo) int {
	if c := cmp.Or(
		cmp.Compare(a.ID, b.ID),
		cmp.Compare(a.Address, b.Address),
		compareBool(a.Eligible, b.Eligible),
		compareBool(a.Draining, b.Draining),
	); c != 0 {
		return c
	}
	return cmp.Compare(labelsKey(a.Labels), labelsKey(b.Labels))
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// labelsKey spells labels in a canonical form, for ordering duplicates.
func labelsKey(labels map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(labels[k])
		b.WriteByte(0)
	}
	return b.String()
}

// nodeIndex maps the IDs of normalized nodes to the nodes.
func nodeIndex(nodes []NodeInfo) map[string]NodeInfo {
	idx := make(map[string]NodeInfo, len(nodes))
	for _, n := range nodes {
		idx[n.ID] = n
	}
	return idx
}

// normalizeJobs returns the jobs sorted by name, without nameless jobs and
// with one job per name: the highest version, and at equal versions a
// stopped one, since stopping is the safe reading of a contradiction. Two
// entries differing only in their spec cannot be told apart; which one
// wins is unspecified (the job store never holds two specs for one
// version).
func normalizeJobs(in []Job) []Job {
	jobs := make([]Job, 0, len(in))
	for _, j := range in {
		if j.Name != "" {
			jobs = append(jobs, j)
		}
	}
	slices.SortFunc(jobs, func(a, b Job) int {
		return cmp.Or(
			cmp.Compare(a.Name, b.Name),
			-cmp.Compare(a.Version, b.Version),
			-compareBool(a.Stopped, b.Stopped),
		)
	})
	return slices.CompactFunc(jobs, func(a, b Job) bool { return a.Name == b.Name })
}

// groupAllocs returns the allocations on live nodes per job, each job's
// sorted by node with one allocation per node. Allocations on nodes that
// are gone are dropped here, which is all it takes to re-place them:
// placement no longer sees those instances and fills the gap. Should a
// (job, node) pair appear twice, the highest version wins.
func groupAllocs(in []Alloc, live map[string]NodeInfo) map[string][]Alloc {
	allocs := make([]Alloc, 0, len(in))
	for _, a := range in {
		if _, ok := live[a.Node]; ok && a.Job != "" {
			allocs = append(allocs, a)
		}
	}
	slices.SortFunc(allocs, func(a, b Alloc) int {
		return cmp.Or(
			compareAllocs(a, b),
			-cmp.Compare(a.Version, b.Version),
			cmp.Compare(a.Replaces, b.Replaces),
			a.UpdatedAt.Compare(b.UpdatedAt),
		)
	})
	allocs = slices.CompactFunc(allocs, func(a, b Alloc) bool { return a.Job == b.Job && a.Node == b.Node })
	byJob := make(map[string][]Alloc)
	for i := 0; i < len(allocs); {
		j := i + 1
		for j < len(allocs) && allocs[j].Job == allocs[i].Job {
			j++
		}
		byJob[allocs[i].Job] = allocs[i:j:j]
		i = j
	}
	return byJob
}

// allocKey names the allocation an instance state reports on.
type allocKey struct{ job, node string }

// indexStates indexes the reports by allocation. An agent reports one state
// per allocation; should there be several, the one for the highest version,
// then the most recent, wins.
func indexStates(in []InstanceState) map[allocKey]InstanceState {
	idx := make(map[allocKey]InstanceState, len(in))
	for _, s := range in {
		k := allocKey{s.Job, s.Node}
		if old, ok := idx[k]; !ok || compareStates(s, old) > 0 {
			idx[k] = s
		}
	}
	return idx
}

// compareStates orders reports on one allocation, the one to believe last.
// It is total so that the winner does not depend on the input order.
func compareStates(a, b InstanceState) int {
	return cmp.Or(
		cmp.Compare(a.Version, b.Version),
		a.Since.Compare(b.Since),
		cmp.Compare(a.State, b.State),
		compareBool(a.Active, b.Active),
		cmp.Compare(a.Reason, b.Reason),
	)
}
