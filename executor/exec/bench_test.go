//go:build linux

package exec

import (
	"context"
	"testing"
)

func BenchmarkStartStop(b *testing.B) {
	dir := b.TempDir()
	ctx := context.Background()
	for b.Loop() {
		s, err := New(Config{Name: "bench", Command: "/bin/sleep", Args: []string{"1000"}, LogDir: dir, Logger: discard})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Start(ctx); err != nil {
			b.Fatal(err)
		}
		if err := s.Stop(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
