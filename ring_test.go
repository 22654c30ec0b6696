package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/placement"
)

// ownership records who owns which partition from the start of OnOwn to
// the end of OnRelease (wider than the real ownership, so an overlap seen
// here would be an overlap for sure) and fails on two owners at once.
type ownership struct {
	mu         sync.Mutex
	owner      map[int]string
	violations []string
}

func newOwnership() *ownership { return &ownership{owner: map[int]string{}} }

func (o *ownership) hooks(a *Application, node string) {
	a.OnOwn(func(ctx context.Context, parts []int) error {
		o.mu.Lock()
		defer o.mu.Unlock()
		for _, p := range parts {
			if cur, ok := o.owner[p]; ok && cur != node {
				o.violations = append(o.violations, fmt.Sprintf("partition %d: %s took it while %s owned it", p, node, cur))
			}
			o.owner[p] = node
		}
		return nil
	})
	a.OnRelease(func(ctx context.Context, parts []int) error {
		o.mu.Lock()
		defer o.mu.Unlock()
		for _, p := range parts {
			if o.owner[p] == node {
				delete(o.owner, p)
			}
		}
		return nil
	})
}

// counts returns how many partitions each node owns and how many have an owner.
func (o *ownership) counts() (map[string]int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := map[string]int{}
	for _, n := range o.owner {
		c[n]++
	}
	return c, len(o.owner)
}

func (o *ownership) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.violations) > 0 {
		t.Fatalf("two owners at once: %v", o.violations)
	}
}

func (o *ownership) partitionsOf(node string) []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []int
	for p, n := range o.owner {
		if n == node {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// ringNode runs one platform with a ring app until stop is called.
type ringNode struct {
	p    *Platform
	app  *Application
	stop func()
}

func startRingNode(t *testing.T, url, node string, parts int, own *ownership, setup func(*Application)) *ringNode {
	t.Helper()
	app := NewApp("cache", Spread(), Ring(parts))
	if setup != nil {
		setup(app)
	}
	if own != nil {
		own.hooks(app, node)
	}
	app.Handle("whoami", func(ctx context.Context, req []byte) ([]byte, error) {
		if !app.Ring().OwnsKey(string(req)) {
			return nil, fmt.Errorf("served by %s, which does not own %q", node, req)
		}
		return []byte(node), nil
	})
	p, err := NewPlatform("ringtest", node, url, WithPresenceTTL(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Register(app); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run of %s: %v", node, err)
			}
			p.Close()
		})
	}
	t.Cleanup(stop)
	return &ringNode{p: p, app: app, stop: stop}
}

func balanced(counts map[string]int, nodes []string, parts int) bool {
	if len(counts) != len(nodes) {
		return false
	}
	lo, hi := parts/len(nodes), (parts+len(nodes)-1)/len(nodes)
	total := 0
	for _, n := range nodes {
		c := counts[n]
		if c < lo || c > hi {
			return false
		}
		total += c
	}
	return total == parts
}

func TestRingJoinLeaveAndRouting(t *testing.T) {
	url := startNATS(t)
	own := newOwnership()
	const parts = 12
	n1 := startRingNode(t, url, "n1", parts, own, nil)
	eventually(t, 10*time.Second, "n1 owns every partition", func() bool {
		c, total := own.counts()
		return total == parts && c["n1"] == parts
	})
	n2 := startRingNode(t, url, "n2", parts, own, nil)
	n3 := startRingNode(t, url, "n3", parts, own, nil)
	nodes := []string{"n1", "n2", "n3"}
	eventually(t, 10*time.Second, "3 nodes × 4 partitions", func() bool {
		c, _ := own.counts()
		return balanced(c, nodes, parts)
	})
	own.check(t)

	// The handle agrees with what the hooks saw, on every node.
	for _, n := range []*ringNode{n1, n2, n3} {
		eventually(t, 5*time.Second, "handle reflects ownership", func() bool {
			return slices.Equal(n.app.Ring().OwnedPartitions(), own.partitionsOf(n.p.NodeID())) &&
				slices.Equal(n.app.Ring().Members(), nodes)
		})
		if got := n.app.Ring().NumPartitions(); got != parts {
			t.Fatalf("NumPartitions = %d", got)
		}
	}

	// ForKey reaches the owner of every key; NodeFor names it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 50 {
		key := fmt.Sprintf("user:%d", i)
		got, err := n1.p.Call("cache").Call(ctx, "whoami", key, ForKey(key))
		if err != nil {
			t.Fatalf("ForKey(%s): %v", key, err)
		}
		want, err := n2.app.Ring().NodeFor(key)
		if err != nil || string(got) != want {
			t.Fatalf("ForKey(%s) served by %s, NodeFor says %s (%v)", key, got, want, err)
		}
		part := n3.app.Ring().PartitionFor(key)
		if part != placement.RingPartition(key, parts) {
			t.Fatalf("PartitionFor(%s) = %d", key, part)
		}
	}

	// A join moves only partitions that go to the newcomer.
	before := map[int]string{}
	for _, n := range nodes {
		for _, p := range own.partitionsOf(n) {
			before[p] = n
		}
	}
	startRingNode(t, url, "n4", parts, own, nil)
	nodes4 := []string{"n1", "n2", "n3", "n4"}
	eventually(t, 10*time.Second, "4 nodes × 3 partitions", func() bool {
		c, _ := own.counts()
		return balanced(c, nodes4, parts)
	})
	for _, n := range nodes {
		for _, p := range own.partitionsOf(n) {
			if before[p] != n {
				t.Fatalf("join of n4 moved partition %d from %s to %s", p, before[p], n)
			}
		}
	}

	// A graceful leave hands n3's partitions over, and only those.
	before = map[int]string{}
	for _, n := range nodes4 {
		for _, p := range own.partitionsOf(n) {
			before[p] = n
		}
	}
	n3.stop()
	rest := []string{"n1", "n2", "n4"}
	eventually(t, 10*time.Second, "3 nodes × 4 partitions after n3 left", func() bool {
		c, _ := own.counts()
		return balanced(c, rest, parts)
	})
	for _, n := range rest {
		for _, p := range own.partitionsOf(n) {
			if before[p] != n && before[p] != "n3" {
				t.Fatalf("leave of n3 moved partition %d from %s to %s", p, before[p], n)
			}
		}
	}
	own.check(t)

	res, err := n1.p.Rebalance(ctx, "cache")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Members, rest) || res.Moved != 0 || res.Version < n1.app.Ring().Version() {
		t.Fatalf("Rebalance = %+v (ring version %d)", res, n1.app.Ring().Version())
	}
}

func TestRingHookErrorsAreRetriedAndVisible(t *testing.T) {
	url := startNATS(t)
	own := newOwnership()
	const parts = 8
	n1 := startRingNode(t, url, "n1", parts, own, nil)
	events, err := n1.p.WatchEvents(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var failures atomic.Int32
	startRingNode(t, url, "n2", parts, own, func(a *Application) {
		a.OnOwn(func(ctx context.Context, parts []int) error {
			if failures.Add(1) <= 2 {
				return errors.New("disk not ready")
			}
			return nil
		})
	})
	var sawFailure bool
	timeout := time.After(10 * time.Second)
	for !sawFailure {
		select {
		case e := <-events:
			if e.Kind == EventRingOwnFailed && e.Node == "n2" && e.App == "cache" {
				sawFailure = true
				if e.Error == "" || e.Partitions == "" {
					t.Fatalf("failure event without detail: %+v", e)
				}
			}
		case <-timeout:
			t.Fatal("no ring.own_failed event")
		}
	}
	eventually(t, 15*time.Second, "n2 owns its half after retries", func() bool {
		c, _ := own.counts()
		return balanced(c, []string{"n1", "n2"}, parts)
	})
	if failures.Load() < 3 {
		t.Fatalf("OnOwn ran %d times, want failures then success", failures.Load())
	}
	own.check(t)
}

func TestRingRefusesMismatchedPartitionCount(t *testing.T) {
	url := startNATS(t)
	n1 := startRingNode(t, url, "n1", 8, nil, nil)
	eventually(t, 10*time.Second, "assignment", func() bool { return n1.app.Ring().Version() > 0 })
	app := NewApp("cache", Spread(), Ring(16))
	p, err := NewPlatform("ringtest", "n2", url)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_ = p.Register(app)
	err = p.Run(t.Context())
	if !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("Run with 16 partitions on an 8-partition ring = %v, want ErrInvalidOption", err)
	}
	if got := n1.app.Ring().Members(); !slices.Equal(got, []string{"n1"}) {
		t.Fatalf("members %v", got)
	}
}
