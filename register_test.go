package cluster

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// An agent adds and removes apps while its platform runs: a singleton
// registered late on two nodes elects one leader, and unregistering the
// leader hands over to the other node gracefully.
func TestRegisterAndUnregisterWhileRunning(t *testing.T) {
	url := startNATS(t)
	set := newActiveSet()
	p1 := runPlatform(t, url, "late", "n1", nil)
	p2 := runPlatform(t, url, "late", "n2", nil)
	for _, p := range []*Platform{p1, p2} {
		a := NewApp("db", Singleton())
		set.hooks(a, p.NodeID())
		if err := p.Register(a); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "a leader", func() bool { active, _ := set.snapshot(); return len(active) == 1 })
	active, _ := set.snapshot()
	leader, other := p1, p2
	if active[0] == "n2" {
		leader, other = p2, p1
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leader.Unregister(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	if active, _ := set.snapshot(); slices.Contains(active, leader.NodeID()) {
		t.Fatal("unregistered leader still active")
	}
	eventually(t, 5*time.Second, "the other node to lead", func() bool {
		active, _ := set.snapshot()
		return len(active) == 1 && active[0] == other.NodeID()
	})
	// A graceful handover is fast: far under the lease TTL a crash would take.
	if d := time.Since(start); d > time.Second {
		t.Errorf("handover after Unregister took %v", d)
	}
	if _, max := set.snapshot(); max != 1 {
		t.Fatalf("%d leaders at once", max)
	}
	if err := leader.Unregister(ctx, "db"); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("second Unregister: %v, want ErrNotRegistered", err)
	}
	// The name is free again on that node.
	again := NewApp("db", Singleton())
	set.hooks(again, leader.NodeID())
	if err := leader.Register(again); err != nil {
		t.Fatal(err)
	}
	if err := other.Unregister(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the re-registered app to lead", func() bool {
		active, _ := set.snapshot()
		return len(active) == 1 && active[0] == leader.NodeID()
	})
}

// An app that cannot run is refused by Register on a running platform and
// leaves nothing registered behind.
func TestLateRegisterRefusesBadApp(t *testing.T) {
	url := startNATS(t)
	p := runPlatform(t, url, "late", "n1", nil)
	eventually(t, 5*time.Second, "platform running", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.runCtx != nil
	})
	// Replicated SQLite needs one writer: refused in a pool.
	bad := NewApp("db", Replicas(2), WithSQLite(filepath.Join(t.TempDir(), "x.db")))
	if err := p.Register(bad); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("a pool with WithSQLite: Register said %v", err)
	}
	if p.app("db") != nil {
		t.Fatal("refused app left registered")
	}
}
