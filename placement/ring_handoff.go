package placement

import "slices"

// Ring handoff: when may a member start owning a partition the assignment
// gives it, so that no partition ever has two owners at once?
//
// Every member publishes what it has seen and what it holds (RingPeer): the
// newest assignment version it has read (Acked) and the partitions it holds
// (Held). A member adds a partition to Held before it starts owning it and
// removes it only after it stopped owning it (its OnRelease returned). The
// rule, for a member M and a partition p that version v gives to M:
//
//	M may take p once every other member of v has acked v or later
//	and none of them holds p.
//
// Why it is safe: a member X that acked v has seen that p is M's in v, so X
// releases p if it had it, and will take p only under a later version that
// gives p to X; under that version the same rule makes X wait until M has
// acked it and released p. A member that has not acked v may still be about
// to claim p under an older version, which is why its silence blocks. Nodes
// that are not members of v do not count: the coordinator removes a member
// only after it left gracefully (holding nothing) or was proved gone.

// RingPeer is what one member published about itself.
type RingPeer struct {
	Acked uint64       // newest assignment version the member has seen
	Held  map[int]bool // partitions it owns or is taking or releasing
}

// RingSteps is what a member does next.
type RingSteps struct {
	Release []int // held but given to another member: stop owning them
	Take    []int // given to this member and free: start owning them
	Wait    []int // given to this member, still held or maybe claimed by another
}

// RingHandoff decides the next steps of member self under assignment
// version with the given owners and members. held is what self holds now;
// peers are the published records of members by node ID (a member with no
// record has acked nothing).
func RingHandoff(version uint64, owners, members []string, self string, held map[int]bool, peers map[string]RingPeer) RingSteps {
	var steps RingSteps
	for p := range held {
		if p >= len(owners) || owners[p] != self {
			steps.Release = append(steps.Release, p)
		}
	}
	slices.Sort(steps.Release)
	allAcked := true
	var others []RingPeer
	for _, m := range members {
		if m == self {
			continue
		}
		peer := peers[m]
		if peer.Acked < version {
			allAcked = false
		}
		others = append(others, peer)
	}
	for p, owner := range owners {
		if owner != self || held[p] {
			continue
		}
		free := allAcked
		for _, peer := range others {
			if !free {
				break
			}
			free = !peer.Held[p]
		}
		if free {
			steps.Take = append(steps.Take, p)
		} else {
			steps.Wait = append(steps.Wait, p)
		}
	}
	return steps
}
