package state

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// RingAssignmentRecord is a ring app's assignment, written only by its
// coordinator with compare-and-set. Its KV revision is the assignment's
// version: members ack versions, and the handoff rule compares them.
// Partition sets are stored as ranges ("0-63,128") so a 4096-partition ring
// stays a few hundred bytes.
type RingAssignmentRecord struct {
	Partitions  int               `json:"partitions"`
	Members     map[string]string `json:"members"`        // node → instance
	Owners      map[string]string `json:"owners"`         // node → partition ranges
	Prev        map[string]string `json:"prev,omitempty"` // departed node → its partitions
	Coordinator string            `json:"coordinator"`
	Epoch       uint64            `json:"epoch"` // the coordinator's lease epoch
}

// RingMemberRecord is what a ring member publishes about itself.
type RingMemberRecord struct {
	Instance   string `json:"instance"`
	Partitions int    `json:"partitions"`
	Acked      uint64 `json:"acked"` // newest assignment version seen
	Held       string `json:"held"`  // partition ranges owned, being taken or released
}

// EncodeRanges writes a set of partitions as sorted ranges: "0-3,8,10-11".
func EncodeRanges(parts []int) string {
	s := slices.Clone(parts)
	slices.Sort(s)
	s = slices.Compact(s)
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(s[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(s[j]))
		}
		i = j + 1
	}
	return b.String()
}

// DecodeRanges reads what EncodeRanges wrote; every partition must be below
// limit.
func DecodeRanges(s string, limit int) ([]int, error) {
	var out []int
	if s == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("partition ranges %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("partition ranges %q: %w", s, err)
			}
		}
		if a < 0 || b < a || b >= limit {
			return nil, fmt.Errorf("partition ranges %q: %q out of 0..%d", s, part, limit-1)
		}
		for p := a; p <= b; p++ {
			out = append(out, p)
		}
	}
	return out, nil
}

// OwnersList expands the record's owners to one entry per partition.
func (r RingAssignmentRecord) OwnersList() ([]string, error) {
	return expandOwners(r.Owners, r.Partitions)
}

// PrevList expands the record's departed owners to one entry per partition.
func (r RingAssignmentRecord) PrevList() ([]string, error) { return expandOwners(r.Prev, r.Partitions) }

func expandOwners(byNode map[string]string, partitions int) ([]string, error) {
	out := make([]string, partitions)
	for node, ranges := range byNode {
		parts, err := DecodeRanges(ranges, partitions)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", node, err)
		}
		for _, p := range parts {
			if out[p] != "" {
				return nil, fmt.Errorf("partition %d listed for both %s and %s", p, out[p], node)
			}
			out[p] = node
		}
	}
	return out, nil
}

// GroupByNode is the inverse of OwnersList: node → ranges, skipping "".
func GroupByNode(perPartition []string) map[string]string {
	parts := map[string][]int{}
	for p, node := range perPartition {
		if node != "" {
			parts[node] = append(parts[node], p)
		}
	}
	out := make(map[string]string, len(parts))
	for node, ps := range parts {
		out[node] = EncodeRanges(ps)
	}
	return out
}
