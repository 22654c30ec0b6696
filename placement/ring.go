package placement

import (
	"hash/fnv"
	"slices"
)

// Ring partition assignment: which member of a ring app owns which of its
// P partitions. The partition of a key never depends on the members
// (RingPartition); only the owner of a partition does (AssignRing).

// RingPartition maps key to one of partitions partitions. The mapping is
// fixed forever for a given partition count, so data written under one
// membership is found under any other:
//
//	partition = JumpHash(FNV-1a-64(key), partitions)
//
// FNV-1a (64 bit) turns the key into a number; Lamping and Veach's jump
// consistent hash turns the number into a partition, evenly, and so that
// growing the partition count from n to n+1 moves only 1/(n+1) of the keys.
// It returns -1 when partitions < 1.
func RingPartition(key string, partitions int) int {
	if partitions < 1 {
		return -1
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return jumpHash(h.Sum64(), partitions)
}

// jumpHash is the jump consistent hash ("A Fast, Minimal Memory, Consistent
// Hash Algorithm", Lamping and Veach, 2014): a key jumps forward through the
// buckets with a pseudo-random sequence seeded by the key; the last bucket
// below n it lands on is its bucket.
func jumpHash(key uint64, n int) int {
	var b, j int64 = -1, 0
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// RingAssignment is the owner of every partition of a ring.
type RingAssignment struct {
	// Owners[p] is the member that owns partition p; "" when p has none.
	Owners []string
	// Prev[p] is the member that owned p when that member left, while it is
	// away; "" otherwise. A member that comes back gets these partitions
	// back first, so a restarted node finds its data.
	Prev []string
}

// RingTargets is how many partitions each member should own: ⌊P/N⌋, and one
// more for the first P mod N members in ID order. The rule does not depend
// on who owns what now, so a member that leaves and comes back returns to
// the exact counts of before; and it never asks a member that stays to take
// partitions from another that stays when one member joins or leaves (a
// member among the first P mod N after the change was among them before).
func RingTargets(partitions int, members []string) map[string]int {
	sorted := sortedMembers(members)
	targets := make(map[string]int, len(sorted))
	if len(sorted) == 0 {
		return targets
	}
	base, extra := partitions/len(sorted), partitions%len(sorted)
	for i, m := range sorted {
		targets[m] = base
		if i < extra {
			targets[m]++
		}
	}
	return targets
}

// AssignRing computes the owners of partitions partitions among members,
// starting from current. The result is
//
//   - balanced: every member owns ⌊P/N⌋ or ⌈P/N⌉ partitions (RingTargets);
//   - minimal: partitions of members that stay move only to fill members
//     below their target, so a join moves only partitions that go to the
//     newcomer and a leave moves only the leaver's partitions;
//   - deterministic: equal inputs, in any member order, give equal results;
//   - stable: a member that leaves and comes back with nothing else changed
//     gets exactly its partitions back (through Prev).
//
// From nothing, partitions are dealt in order: with 3 members and 12
// partitions the first member owns 0-3, the second 4-7, the third 8-11.
// current is not modified; a current with another partition count is
// ignored.
func AssignRing(partitions int, members []string, current RingAssignment) RingAssignment {
	next := RingAssignment{Owners: make([]string, partitions), Prev: make([]string, partitions)}
	if len(current.Owners) == partitions {
		copy(next.Owners, current.Owners)
	}
	if len(current.Prev) == partitions {
		copy(next.Prev, current.Prev)
	}
	sorted := sortedMembers(members)
	targets := RingTargets(partitions, sorted)

	// Partitions of members that left are orphans; they remember who had them.
	count := make(map[string]int, len(sorted))
	var pool []int
	for p, owner := range next.Owners {
		if owner == "" {
			pool = append(pool, p)
			continue
		}
		if _, member := targets[owner]; !member {
			next.Prev[p] = owner
			next.Owners[p] = ""
			pool = append(pool, p)
			continue
		}
		count[owner]++
	}

	// Members above their target give up partitions: first those whose
	// previous owner is back and wants them, then their highest numbered.
	for _, m := range sorted {
		excess := count[m] - targets[m]
		if excess <= 0 {
			continue
		}
		var wanted, others []int
		for p, owner := range next.Owners {
			if owner != m {
				continue
			}
			if prev := next.Prev[p]; prev != "" && count[prev] < targets[prev] {
				wanted = append(wanted, p)
			} else {
				others = append(others, p)
			}
		}
		slices.Reverse(others)
		for _, p := range append(wanted, others...)[:excess] {
			next.Owners[p] = ""
			pool = append(pool, p)
		}
		count[m] = targets[m]
	}
	slices.Sort(pool)

	// Members below their target take partitions that were theirs before
	// they left, then the rest in partition order, member by member.
	rest := pool[:0]
	for _, p := range pool {
		if prev := next.Prev[p]; prev != "" && count[prev] < targets[prev] {
			next.Owners[p] = prev
			count[prev]++
			continue
		}
		rest = append(rest, p)
	}
	i := 0
	for _, m := range sorted {
		for ; count[m] < targets[m] && i < len(rest); i++ {
			next.Owners[rest[i]] = m
			count[m]++
		}
	}
	// Prev only speaks for members that are away: one that came back got
	// back what it could, and an old claim must not win over the partitions
	// it owns when it leaves again.
	for p, prev := range next.Prev {
		if _, member := targets[prev]; member {
			next.Prev[p] = ""
		}
	}
	return next
}

// RingMoves counts the partitions whose owner differs between a and b,
// counting a partition gaining its first owner too.
func RingMoves(a, b RingAssignment) int {
	moves := 0
	for p := range b.Owners {
		if p >= len(a.Owners) || a.Owners[p] != b.Owners[p] {
			moves++
		}
	}
	return moves
}

// RingPartitionsOf lists the partitions owned by member, ascending.
func RingPartitionsOf(owners []string, member string) []int {
	var out []int
	for p, owner := range owners {
		if owner == member {
			out = append(out, p)
		}
	}
	return out
}

func sortedMembers(members []string) []string {
	sorted := slices.Clone(members)
	slices.Sort(sorted)
	return slices.Compact(sorted)
}
