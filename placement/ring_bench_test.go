package placement

import (
	"fmt"
	"testing"
)

func BenchmarkRingPartition(b *testing.B) {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%d", i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = RingPartition(keys[i%len(keys)], 256)
	}
}

// BenchmarkAssignRing4096x100 assigns 4096 partitions to 100 members from
// nothing, and after one member joins a balanced ring of 99.
func BenchmarkAssignRing4096x100(b *testing.B) {
	members := make([]string, 100)
	for i := range members {
		members[i] = fmt.Sprintf("node-%03d", i)
	}
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = AssignRing(4096, members, RingAssignment{})
		}
	})
	b.Run("join", func(b *testing.B) {
		before := AssignRing(4096, members[1:], RingAssignment{})
		b.ReportAllocs()
		var after RingAssignment
		for b.Loop() {
			after = AssignRing(4096, members, before)
		}
		b.ReportMetric(float64(RingMoves(before, after)), "moved")
		b.ReportMetric(float64(optimalMoves(4096, members, before)), "optimum")
	})
}
