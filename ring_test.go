package cluster

import (
	"context"
	"encoding/json"
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

// handoffCache is the seed's in-memory cache with the handoff the seed
// suggests: OnRelease persists a partition's data (here to the app's KV),
// OnOwn loads it.
type handoffCache struct {
	mu   sync.Mutex
	data map[int]map[string]string
}

func (c *handoffCache) install(a *Application, node string) {
	c.data = map[int]map[string]string{}
	a.OnOwn(func(ctx context.Context, parts []int) error {
		for _, p := range parts {
			m := map[string]string{}
			b, err := a.KV().Get(ctx, fmt.Sprintf("p%d", p))
			if err != nil && !errors.Is(err, ErrKeyNotFound) {
				return err
			}
			if err == nil {
				if err := json.Unmarshal(b, &m); err != nil {
					return err
				}
			}
			c.mu.Lock()
			c.data[p] = m
			c.mu.Unlock()
		}
		return nil
	})
	a.OnRelease(func(ctx context.Context, parts []int) error {
		for _, p := range parts {
			c.mu.Lock()
			b, _ := json.Marshal(c.data[p])
			c.mu.Unlock()
			if _, err := a.KV().Put(ctx, fmt.Sprintf("p%d", p), b); err != nil {
				return err
			}
			c.mu.Lock()
			delete(c.data, p)
			c.mu.Unlock()
		}
		return nil
	})
	type kv struct{ Key, Value string }
	a.Handle("set", HandleJSON(func(ctx context.Context, req kv) (string, error) {
		p := a.Ring().PartitionFor(req.Key)
		if !a.Ring().OwnsKey(req.Key) {
			return "", fmt.Errorf("set %s on %s, which does not own partition %d", req.Key, node, p)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.data[p][req.Key] = req.Value
		return node, nil
	}))
	a.Handle("get", HandleJSON(func(ctx context.Context, key string) (kv, error) {
		p := a.Ring().PartitionFor(key)
		if !a.Ring().OwnsKey(key) {
			return kv{}, fmt.Errorf("get %s on %s, which does not own partition %d", key, node, p)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return kv{Key: key, Value: c.data[p][key]}, nil
	}))
}

// TestRingForKeyUnderChurn keeps writing and reading keys through ForKey
// while nodes join and leave gracefully. Every call is served by the owner
// of its key (the handlers check), and no acknowledged set is lost.
func TestRingForKeyUnderChurn(t *testing.T) {
	url := startNATS(t)
	const parts = 16
	own := newOwnership()
	start := func(node string) *ringNode {
		return startRingNode(t, url, node, parts, own, func(a *Application) { new(handoffCache).install(a, node) })
	}
	nodes := map[string]*ringNode{"n1": start("n1"), "n2": start("n2")}
	eventually(t, 10*time.Second, "2 owners", func() bool {
		c, _ := own.counts()
		return balanced(c, []string{"n1", "n2"}, parts)
	})

	client, err := NewPlatform("ringtest", "client", url)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	const writers, keysPerWriter = 4, 25
	var wg sync.WaitGroup
	var calls atomic.Int64
	errs := make(chan error, writers)
	acked := make([]map[string]string, writers)
	for w := range writers {
		acked[w] = map[string]string{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client.Call("cache")
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("w%d-k%d", w, i%keysPerWriter)
				val := fmt.Sprint(i)
				cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := c.Call(cctx, "set", map[string]string{"Key": key, "Value": val}, ForKey(key))
				if err == nil {
					acked[w][key] = val
					var got struct{ Key, Value string }
					got, err = CallJSON[struct{ Key, Value string }](cctx, c, "get", key, ForKey(key))
					if err == nil && got.Value != val {
						err = fmt.Errorf("get %s = %q right after set %q was acknowledged", key, got.Value, val)
					}
				}
				ccancel()
				if err != nil {
					errs <- err
					return
				}
				calls.Add(2)
			}
		}()
	}
	churn := []struct {
		join  bool
		node  string
		after []string
	}{
		{true, "n3", []string{"n1", "n2", "n3"}},
		{false, "n1", []string{"n2", "n3"}},
		{true, "n4", []string{"n2", "n3", "n4"}},
		{false, "n2", []string{"n3", "n4"}},
		{true, "n1", []string{"n1", "n3", "n4"}},
	}
	for _, step := range churn {
		before := calls.Load()
		eventually(t, 10*time.Second, "calls flowing", func() bool { return calls.Load() > before+200 || len(errs) > 0 })
		if step.join {
			nodes[step.node] = start(step.node)
		} else {
			nodes[step.node].stop()
		}
		eventually(t, 15*time.Second, fmt.Sprintf("balanced over %v", step.after), func() bool {
			c, _ := own.counts()
			return balanced(c, step.after, parts) || len(errs) > 0
		})
		select {
		case err := <-errs:
			t.Fatalf("while %v: %v", step, err)
		default:
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every acknowledged value is still there, on the current owners.
	c := client.Call("cache")
	for w := range writers {
		for key, val := range acked[w] {
			got, err := CallJSON[struct{ Key, Value string }](t.Context(), c, "get", key, ForKey(key))
			if err != nil || got.Value != val {
				t.Fatalf("get %s = %q, %v; last acknowledged set was %q", key, got.Value, err, val)
			}
		}
	}
	own.check(t)
	t.Logf("%d calls through 5 membership changes", calls.Load())
}
