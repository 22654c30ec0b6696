package placement

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// cluster is the working state placement updates app by app: for the apps
// planned so far, what they run once the plan is carried out; for the
// others, what they run now. Apps planned later read it for away_from,
// near and load, which is why the planning order matters (see
// planningOrder).
type cluster struct {
	nodes []*Node // sorted by ID: the deterministic tie-break
	rows  map[string]int
	names []string // by row
	// count and active hold one row of len(nodes) per app.
	count  []int32
	active []bool
	// load is the number of instances of all apps per node; total is its sum.
	load  []int32
	total int
}

// newCluster indexes the nodes and what runs on them. Apps get rows in the
// order of names, then apps that run somewhere but are not wanted any more.
func newCluster(nodes []Node, names []string) (*cluster, error) {
	cl := &cluster{nodes: make([]*Node, len(nodes)), rows: make(map[string]int, len(names))}
	for i := range nodes {
		cl.nodes[i] = &nodes[i]
	}
	slices.SortFunc(cl.nodes, func(a, b *Node) int { return cmp.Compare(a.ID, b.ID) })
	for i, n := range cl.nodes {
		if n.ID == "" {
			return nil, errors.New("node without an ID")
		}
		if i > 0 && cl.nodes[i-1].ID == n.ID {
			return nil, fmt.Errorf("node %q listed twice", n.ID)
		}
	}
	for _, name := range names {
		cl.addRow(name)
	}
	var unwanted []string
	for _, n := range cl.nodes {
		for _, inst := range n.Instances {
			if inst.App == "" {
				return nil, fmt.Errorf("node %q: instance without an app name", n.ID)
			}
			if _, ok := cl.rows[inst.App]; !ok && !slices.Contains(unwanted, inst.App) {
				unwanted = append(unwanted, inst.App)
			}
		}
	}
	slices.Sort(unwanted)
	for _, name := range unwanted {
		cl.addRow(name)
	}
	cl.count = make([]int32, len(cl.rows)*len(cl.nodes))
	cl.active = make([]bool, len(cl.rows)*len(cl.nodes))
	cl.load = make([]int32, len(cl.nodes))
	for i, n := range cl.nodes {
		for _, inst := range n.Instances {
			row := cl.rows[inst.App]
			cl.counts(row)[i]++
			if inst.Active {
				cl.actives(row)[i] = true
			}
			cl.load[i]++
			cl.total++
		}
	}
	return cl, nil
}

func (cl *cluster) addRow(name string) {
	cl.rows[name] = len(cl.names)
	cl.names = append(cl.names, name)
}

// counts returns the instances of the app in row per node.
func (cl *cluster) counts(row int) []int32 {
	n := len(cl.nodes)
	return cl.count[row*n : (row+1)*n : (row+1)*n]
}

// actives returns per node whether the app in row is active there.
func (cl *cluster) actives(row int) []bool {
	n := len(cl.nodes)
	return cl.active[row*n : (row+1)*n : (row+1)*n]
}

// add records n more instances of the app in row on node i.
func (cl *cluster) add(row, i int, n int32) {
	cl.counts(row)[i] += n
	cl.load[i] += n
	cl.total += int(n)
}

// meanLoad is the mean number of instances per node.
func (cl *cluster) meanLoad() float64 {
	if len(cl.nodes) == 0 {
		return 0
	}
	return float64(cl.total) / float64(len(cl.nodes))
}
