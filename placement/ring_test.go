package placement

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

func TestRingSeedExample(t *testing.T) {
	// Seed 000, "Partition Assignment": 3 nodes and 12 partitions, then
	// node 3 leaves.
	nodes := []string{"node-1", "node-2", "node-3"}
	a := AssignRing(12, nodes, RingAssignment{})
	want := map[string][]int{
		"node-1": {0, 1, 2, 3},
		"node-2": {4, 5, 6, 7},
		"node-3": {8, 9, 10, 11},
	}
	for n, parts := range want {
		if got := RingPartitionsOf(a.Owners, n); !slices.Equal(got, parts) {
			t.Errorf("%s owns %v, want %v", n, got, parts)
		}
	}
	b := AssignRing(12, nodes[:2], a)
	want = map[string][]int{
		"node-1": {0, 1, 2, 3, 8, 9},
		"node-2": {4, 5, 6, 7, 10, 11},
	}
	for n, parts := range want {
		if got := RingPartitionsOf(b.Owners, n); !slices.Equal(got, parts) {
			t.Errorf("after node-3 left: %s owns %v, want %v", n, got, parts)
		}
	}
	// node-3 comes back: it gets exactly its partitions back.
	c := AssignRing(12, nodes, b)
	if !slices.Equal(c.Owners, a.Owners) {
		t.Errorf("after node-3 came back: owners %v, want %v", c.Owners, a.Owners)
	}
}

func TestRingTargets(t *testing.T) {
	for _, tc := range []struct {
		p       int
		members []string
		want    map[string]int
	}{
		{12, []string{"c", "a", "b"}, map[string]int{"a": 4, "b": 4, "c": 4}},
		{13, []string{"c", "a", "b"}, map[string]int{"a": 5, "b": 4, "c": 4}},
		{2, []string{"c", "a", "b"}, map[string]int{"a": 1, "b": 1, "c": 0}},
		{5, []string{"a", "a"}, map[string]int{"a": 5}},
		{5, nil, map[string]int{}},
	} {
		if got := RingTargets(tc.p, tc.members); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("RingTargets(%d, %v) = %v, want %v", tc.p, tc.members, got, tc.want)
		}
	}
}

func TestRingNoMembers(t *testing.T) {
	a := AssignRing(4, []string{"a"}, RingAssignment{})
	b := AssignRing(4, nil, a)
	for p := range 4 {
		if b.Owners[p] != "" || b.Prev[p] != "a" {
			t.Fatalf("partition %d: owner %q prev %q, want none and prev a", p, b.Owners[p], b.Prev[p])
		}
	}
	if c := AssignRing(4, []string{"b", "a"}, b); !slices.Equal(RingPartitionsOf(c.Owners, "a"), []int{0, 1}) {
		t.Fatalf("a came back to %v, want [0 1] (its half of the prev list first)", RingPartitionsOf(c.Owners, "a"))
	}
}

func TestRingPartitionIsFixed(t *testing.T) {
	// Golden values: these must never change, or data written under one
	// version is looked up in the wrong partition by another.
	golden := map[string]int{"user:123": 0, "a": 0, "hello": 0, "": 0}
	for key := range golden {
		golden[key] = RingPartition(key, 256)
	}
	want := map[string]int{"": 90, "a": 163, "hello": 25, "user:123": 119}
	if !reflect.DeepEqual(golden, want) {
		t.Fatalf("RingPartition(key, 256) = %v, want %v", golden, want)
	}
	if RingPartition("x", 0) != -1 || RingPartition("x", 1) != 0 {
		t.Fatal("edge partition counts")
	}
}

func TestRingPartitionSpreadsAndGrowsMinimally(t *testing.T) {
	const keys, parts = 100000, 64
	counts := make([]int, parts)
	movedOnGrow := 0
	for i := range keys {
		k := fmt.Sprintf("key-%d", i)
		p := RingPartition(k, parts)
		counts[p]++
		if q := RingPartition(k, parts+1); q != p {
			if q != parts {
				t.Fatalf("key %s moved from %d to %d when growing to %d partitions; only moves to the new one are allowed", k, p, q, parts+1)
			}
			movedOnGrow++
		}
	}
	mean := keys / parts
	for p, c := range counts {
		if c < mean*8/10 || c > mean*12/10 {
			t.Errorf("partition %d has %d keys, mean %d", p, c, mean)
		}
	}
	if want := keys / (parts + 1); movedOnGrow < want*8/10 || movedOnGrow > want*12/10 {
		t.Errorf("growing moved %d keys, expected about %d", movedOnGrow, want)
	}
}

// checkBalanced fails unless every member owns ⌊P/N⌋ or ⌈P/N⌉ partitions
// and every partition has an owner that is a member.
func checkBalanced(t *testing.T, p int, members []string, a RingAssignment) {
	t.Helper()
	set := map[string]int{}
	for _, m := range members {
		set[m] = 0
	}
	for part, owner := range a.Owners {
		if len(members) == 0 {
			if owner != "" {
				t.Fatalf("partition %d owned by %q with no members", part, owner)
			}
			continue
		}
		if _, ok := set[owner]; !ok {
			t.Fatalf("partition %d owned by %q, not a member of %v", part, owner, members)
		}
		set[owner]++
	}
	if len(members) == 0 {
		return
	}
	lo, hi := p/len(set), (p+len(set)-1)/len(set)
	for m, c := range set {
		if c < lo || c > hi {
			t.Fatalf("member %s owns %d partitions, want %d..%d (%d members, %d partitions)", m, c, lo, hi, len(set), p)
		}
	}
}

// optimalMoves is the least number of partitions any balanced assignment
// must move from current: orphans, plus what members above the most
// favourable targets must give up (the largest holders keep the extra).
func optimalMoves(p int, members []string, current RingAssignment) int {
	if len(members) == 0 {
		return 0
	}
	count := map[string]int{}
	for _, m := range members {
		count[m] = 0
	}
	orphans := 0
	for _, owner := range current.Owners {
		if _, ok := count[owner]; ok {
			count[owner]++
		} else {
			orphans++
		}
	}
	var counts []int
	for _, c := range count {
		counts = append(counts, c)
	}
	slices.Sort(counts)
	slices.Reverse(counts)
	base, extra := p/len(counts), p%len(counts)
	moves := orphans
	for i, c := range counts {
		target := base
		if i < extra {
			target++
		}
		if c > target {
			moves += c - target
		}
	}
	return moves
}

func TestRingPropertiesOverRandomMembership(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 7))
		p := 1 + rng.IntN(300)
		pool := make([]string, 2+rng.IntN(12))
		for i := range pool {
			pool[i] = fmt.Sprintf("n%02d", i)
		}
		var members []string
		var a RingAssignment
		for step := range 40 {
			prev, prevMembers := a, slices.Clone(members)
			// One join or one leave, sometimes several changes at once.
			changes := 1
			if rng.IntN(5) == 0 {
				changes = 1 + rng.IntN(3)
			}
			var joined, left []string
			for range changes {
				out := []string{}
				for _, n := range pool {
					if !slices.Contains(members, n) {
						out = append(out, n)
					}
				}
				if len(out) > 0 && (len(members) == 0 || rng.IntN(2) == 0) {
					n := out[rng.IntN(len(out))]
					members = append(members, n)
					joined = append(joined, n)
				} else if len(members) > 0 {
					i := rng.IntN(len(members))
					left = append(left, members[i])
					members = slices.Delete(members, i, i+1)
				}
			}
			a = AssignRing(p, members, prev)
			ctx := fmt.Sprintf("seed %d step %d, %d partitions, %v → %v", seed, step, p, prevMembers, members)
			checkBalanced(t, p, members, a)

			// Determinism: any member order, same result.
			shuffled := slices.Clone(members)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			if b := AssignRing(p, shuffled, prev); !reflect.DeepEqual(a, b) {
				t.Fatalf("%s: result depends on member order", ctx)
			}
			if step == 0 || len(members) == 0 {
				continue
			}
			moved := RingMoves(prev, a)
			if changes == 1 && len(joined) == 1 {
				for part := range a.Owners {
					if a.Owners[part] != prev.Owners[part] && a.Owners[part] != joined[0] {
						t.Fatalf("%s: join of %s moved partition %d from %s to %s", ctx, joined[0], part, prev.Owners[part], a.Owners[part])
					}
				}
			}
			if changes == 1 && len(left) == 1 {
				for part := range a.Owners {
					if a.Owners[part] != prev.Owners[part] && prev.Owners[part] != left[0] {
						t.Fatalf("%s: leave of %s moved partition %d of %s", ctx, left[0], part, prev.Owners[part])
					}
				}
			}
			// A leave moves exactly the leaver's partitions. A join moves
			// at most one more than the optimum: the newcomer may be one
			// of the members that own ⌈P/N⌉, which keeps RingTargets
			// independent of history (and so a return exact).
			opt := optimalMoves(p, members, prev)
			if len(left) == 1 && changes == 1 && moved != opt {
				t.Fatalf("%s: leave moved %d partitions, optimum %d", ctx, moved, opt)
			}
			if len(joined) == 1 && changes == 1 && (moved < opt || moved > opt+1) {
				t.Fatalf("%s: join moved %d partitions, optimum %d", ctx, moved, opt)
			}

			// Stable identity: a member that leaves and comes back with
			// nothing else changed gets exactly its partitions back.
			x := members[rng.IntN(len(members))]
			without := slices.DeleteFunc(slices.Clone(members), func(m string) bool { return m == x })
			back := AssignRing(p, members, AssignRing(p, without, a))
			if !slices.Equal(back.Owners, a.Owners) {
				t.Fatalf("%s: %s left and came back to %v, had %v", ctx, x, RingPartitionsOf(back.Owners, x), RingPartitionsOf(a.Owners, x))
			}
		}
	}
}

func TestRingHandoffRule(t *testing.T) {
	owners := []string{"a", "a", "b", "b"}
	members := []string{"a", "b"}
	set := func(ps ...int) map[int]bool {
		m := map[int]bool{}
		for _, p := range ps {
			m[p] = true
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		held  map[int]bool
		peers map[string]RingPeer
		want  RingSteps
	}{
		{"peer has not acked: wait", set(), map[string]RingPeer{"b": {Acked: 4, Held: set()}},
			RingSteps{Wait: []int{0, 1}}},
		{"peer missing: wait", set(), map[string]RingPeer{},
			RingSteps{Wait: []int{0, 1}}},
		{"peer acked, still holds 1", set(), map[string]RingPeer{"b": {Acked: 5, Held: set(1, 2, 3)}},
			RingSteps{Take: []int{0}, Wait: []int{1}}},
		{"peer acked a later version, holds none of ours", set(), map[string]RingPeer{"b": {Acked: 6, Held: set(2, 3)}},
			RingSteps{Take: []int{0, 1}}},
		{"release what is no longer ours, keep what is", set(0, 2, 3), map[string]RingPeer{"b": {Acked: 5}},
			RingSteps{Release: []int{2, 3}, Take: []int{1}}},
		{"non-members do not count", set(), map[string]RingPeer{"b": {Acked: 5}, "gone": {Acked: 1, Held: set(0, 1)}},
			RingSteps{Take: []int{0, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := RingHandoff(5, owners, members, "a", tc.held, tc.peers)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestRingHandoffNeverOverlaps runs the handoff rule among simulated
// members over random assignment changes, with members acting one at a
// time in random order and each step published at once, and checks that no
// partition is ever held by two members.
func TestRingHandoffNeverOverlaps(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 11))
		const parts = 16
		nodes := []string{"a", "b", "c", "d"}
		type member struct {
			acked uint64
			seen  uint64 // version it acts on; may lag the newest
			held  map[int]bool
		}
		state := map[string]*member{}
		for _, n := range nodes {
			state[n] = &member{held: map[int]bool{}}
		}
		type version struct {
			owners, members []string
		}
		versions := []version{{}} // version 0: nothing
		var a RingAssignment
		for step := range 400 {
			if rng.IntN(6) == 0 {
				var ms []string
				for _, n := range nodes {
					if rng.IntN(4) != 0 {
						ms = append(ms, n)
					}
				}
				a = AssignRing(parts, ms, a)
				versions = append(versions, version{owners: a.Owners, members: ms})
				// The coordinator drops a member only once it left or
				// died: it holds nothing and never acts on an old version.
				for _, n := range nodes {
					if !slices.Contains(ms, n) {
						latest := uint64(len(versions) - 1)
						state[n] = &member{held: map[int]bool{}, seen: latest, acked: latest}
					}
				}
			}
			n := nodes[rng.IntN(len(nodes))]
			m := state[n]
			latest := uint64(len(versions) - 1)
			if m.seen < latest && rng.IntN(3) != 0 {
				m.seen++ // read the next version (members may lag)
			}
			if m.acked < m.seen {
				m.acked = m.seen // publish the ack
				continue
			}
			v := versions[m.seen]
			peers := map[string]RingPeer{}
			for name, s := range state {
				peers[name] = RingPeer{Acked: s.acked, Held: s.held}
			}
			if !slices.Contains(v.members, n) {
				continue
			}
			steps := RingHandoff(m.seen, v.owners, v.members, n, m.held, peers)
			if len(steps.Release) > 0 {
				p := steps.Release[rng.IntN(len(steps.Release))]
				delete(m.held, p)
			} else if len(steps.Take) > 0 {
				p := steps.Take[rng.IntN(len(steps.Take))]
				m.held[p] = true
			}
			for p := range parts {
				var holders []string
				for name, s := range state {
					if s.held[p] {
						holders = append(holders, name)
					}
				}
				if len(holders) > 1 {
					t.Fatalf("seed %d step %d: partition %d held by %v", seed, step, p, holders)
				}
			}
		}
	}
}
