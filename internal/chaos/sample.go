//go:build linux

package chaos

import (
	"math/bits"
	"strings"
	"time"
)

// maxNodes bounds a lab's nodes so that a set of nodes fits a mask.
const maxNodes = 8

// mask is a set of node indexes.
type mask uint8

func bit(node int) mask              { return 1 << node }
func (m mask) has(node int) bool     { return m&bit(node) != 0 }
func (m mask) count() int            { return bits.OnesCount8(uint8(m)) }
func (m mask) without(node int) mask { return m &^ bit(node) }

// nodes lists the members, lowest first.
func (m mask) nodes() []int {
	var out []int
	for i := 0; i < maxNodes; i++ {
		if m.has(i) {
			out = append(out, i)
		}
	}
	return out
}

// format names the members with labels ("n0+n2"), "-" for none.
func (m mask) format(labels []string) string {
	var parts []string
	for _, i := range m.nodes() {
		if i < len(labels) {
			parts = append(parts, labels[i])
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "+")
}

// Sample is one look at the kernel: which node runs which job's process,
// owns which ring partition, holds the VIP.
type Sample struct {
	At time.Time
	// Live has, per job of the JobSet, the nodes where a process of the
	// job exists and can act: not stopped (SIGSTOP), not a zombie, not in
	// a frozen cgroup.
	Live []mask
	// Present has, per job, the nodes where a process of the job exists at
	// all, live or not.
	Present []mask
	// Owners has, per ring partition, the nodes whose live ring process
	// lists it in its GCL_PARTITIONS_FILE.
	Owners []mask
	// VIP is the nodes with the VIP configured (the kernel answers for it
	// whether or not the node's processes run).
	VIP mask
	// Frozen is the nodes whose cgroup is frozen.
	Frozen mask
	// Stray counts job processes in no node's network namespace.
	Stray int
}
