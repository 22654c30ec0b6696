//go:build unix

package crashtest

import (
	"testing"
	"time"
)

// waitRing polls the logs until cond holds on the partition owners; two
// owners of one partition at any moment seen on the way fail at once.
func (tc *testCluster) waitRing(what string, timeout time.Duration, cond func(owners map[int]string) bool) []PartitionInterval {
	tc.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs, err := tc.Events()
		if err != nil {
			tc.t.Fatal(err)
		}
		ivs, err := PartitionIntervals(evs)
		if err == nil {
			err = CheckPartitionOverlaps(ivs)
		}
		if err != nil {
			tc.t.Fatalf("waiting for %s: %v", what, err)
		}
		for _, id := range tc.IDs() {
			if crashed, err := tc.Node(id).Crashed(); crashed {
				tc.t.Fatalf("waiting for %s: node %s exited on its own: %v", what, id, err)
			}
		}
		if cond(Owners(ivs)) {
			return ivs
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("timed out after %v waiting for %s; owners %v", timeout, what, Owners(ivs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// balancedOver: every partition has an owner among nodes, each owning
// ⌊P/N⌋ or ⌈P/N⌉.
func balancedOver(nodes ...string) func(map[int]string) bool {
	return func(owners map[int]string) bool {
		if len(owners) != RingPartitions {
			return false
		}
		count := map[string]int{}
		for _, n := range owners {
			count[n]++
		}
		lo, hi := RingPartitions/len(nodes), (RingPartitions+len(nodes)-1)/len(nodes)
		for _, n := range nodes {
			if count[n] < lo || count[n] > hi {
				return false
			}
		}
		return len(count) == len(nodes)
	}
}

// TestRingMembership runs ring nodes as processes: three start, a fourth
// joins, leaves gracefully (SIGTERM), and an owner is SIGKILLed. No
// partition ever has two owners, and after the kill every partition has an
// owner again within the presence TTL.
func TestRingMembership(t *testing.T) {
	tc := newTestCluster(t, 0)
	tc.Mode = ModeRing
	for _, id := range []string{"n1", "n2", "n3"} {
		tc.start(id, tc.url)
	}
	tc.waitRing("3 balanced owners", 30*time.Second, balancedOver("n1", "n2", "n3"))

	joinedAt := time.Now()
	tc.start("n4", tc.url)
	ivs := tc.waitRing("n4 joined", 20*time.Second, balancedOver("n1", "n2", "n3", "n4"))
	// A join moves partitions only to the newcomer: every ownership that
	// ended did so because its partition went to n4.
	owners := Owners(ivs)
	for _, iv := range ivs {
		if !iv.Open && iv.End.After(joinedAt) && owners[iv.Partition] != "n4" {
			t.Fatalf("join of n4 ended %v, and the partition went to %s", iv, owners[iv.Partition])
		}
	}

	if err := tc.Node("n4").Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	tc.waitRing("n4 left", 20*time.Second, balancedOver("n1", "n2", "n3"))

	killedAt, err := tc.Node("n1").Kill()
	if err != nil {
		t.Fatal(err)
	}
	ivs = tc.waitRing("n1's partitions taken over", 20*time.Second, balancedOver("n2", "n3"))
	var last time.Time
	for _, iv := range ivs {
		if iv.Open && iv.Start.After(killedAt) && iv.Start.After(last) {
			last = iv.Start
		}
	}
	took := last.Sub(killedAt)
	t.Logf("every partition owned again %v after SIGKILL of n1", took.Round(time.Millisecond))
	const presenceTTL = 5 * time.Second // the library default
	if took > presenceTTL {
		t.Errorf("partitions of the killed node were owned again after %v, more than the presence TTL %v", took, presenceTTL)
	}
	if err := tc.StopAll(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	evs, _ := tc.Events()
	ivs, err = PartitionIntervals(evs)
	if err == nil {
		err = CheckPartitionOverlaps(ivs)
	}
	if err != nil {
		t.Fatal(err)
	}
	if races := tc.RaceReports(); len(races) > 0 {
		t.Fatalf("data races in %v", races)
	}
	t.Logf("%d ownership intervals, no overlap", len(ivs))
}
