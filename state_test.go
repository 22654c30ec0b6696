package cluster

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/network/vip"
)

func TestKV(t *testing.T) {
	url := startNATS(t)
	a := NewApp("app", Spread())
	b := NewApp("app", Spread())
	runPlatform(t, url, "t", "n1", []*Application{a})
	runPlatform(t, url, "t", "n2", []*Application{b})
	ctx := context.Background()
	if _, err := a.KV().Put(ctx, "config/version", []byte("1.0.0")); err != nil {
		t.Fatal(err)
	}
	v, err := b.KV().Get(ctx, "config/version") // shared by all instances
	if err != nil || string(v) != "1.0.0" {
		t.Fatalf("get: %q %v", v, err)
	}
	if _, err := b.KV().Get(ctx, "missing"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	rev, err := a.KV().Create(ctx, "once", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.KV().Create(ctx, "once", []byte("2")); !errors.Is(err, ErrRevisionMismatch) {
		t.Fatalf("second create: %v", err)
	}
	if _, err := b.KV().Update(ctx, "once", []byte("3"), rev+100); !errors.Is(err, ErrRevisionMismatch) {
		t.Fatalf("stale update: %v", err)
	}
	if _, err := b.KV().Update(ctx, "once", []byte("3"), rev); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := b.KV().Watch(wctx, "w.>")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.KV().Put(ctx, "w.x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := a.KV().Delete(ctx, "w.x"); err != nil {
		t.Fatal(err)
	}
	next := func() KVEntry {
		select {
		case e := <-events:
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no watch event within 10s")
			return KVEntry{}
		}
	}
	// The put may be skipped by a watcher that lags (one revision per key
	// is kept); if it is seen, it comes first. The delete is always seen.
	e := next()
	if !e.Deleted {
		if e.Key != "w.x" || string(e.Value) != "1" {
			t.Fatalf("watch: %+v", e)
		}
		e = next()
	}
	if e.Key != "w.x" || !e.Deleted {
		t.Fatalf("watch: %+v, want the delete of w.x", e)
	}
	keys, err := a.KV().Keys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys: %v %v", keys, err)
	}
	if _, err := a.KV().Put(ctx, "bad key", nil); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("bad key: %v", err)
	}
}

func TestLockFacade(t *testing.T) {
	url := startNATS(t)
	a := NewApp("app", Spread())
	b := NewApp("app", Spread())
	runPlatform(t, url, "t", "n1", []*Application{a})
	runPlatform(t, url, "t", "n2", []*Application{b})
	ctx := context.Background()
	la, lb := a.Lock("processing"), b.Lock("processing")
	if !la.TryLock(ctx) {
		t.Fatal("first TryLock failed")
	}
	if lb.TryLock(ctx) {
		t.Fatal("second holder")
	}
	tok := la.Token()
	got := make(chan error, 1)
	go func() { got <- lb.Lock(ctx) }()
	if err := la.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if lb.Token() <= tok {
		t.Fatalf("fencing token did not grow: %d then %d", tok, lb.Token())
	}
	if err := la.Unlock(ctx); !errors.Is(err, ErrLockNotHeld) {
		t.Fatalf("unlock of a lock we do not hold: %v", err)
	}
	if err := lb.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Lock("bad name").Acquire(ctx); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("bad lock name: %v", err)
	}
}

func TestServiceDiscoveryFollowsActiveInstances(t *testing.T) {
	url := startNATS(t)
	plats := map[string]*Platform{}
	apps := map[string]*Application{}
	for i, n := range []string{"n1", "n2"} {
		a := NewApp("db", Singleton())
		if err := a.ExposeService("sql", ServiceConfig{Port: 5432, Protocol: "tcp"}); err != nil {
			t.Fatal(err)
		}
		apps[n] = a
		plats[n] = runPlatform(t, url, "t", n, []*Application{a}, WithAdvertiseAddr([]string{"198.18.0.1", "198.18.0.2"}[i]), WithPresenceTTL(3*time.Second))
	}
	ctx := context.Background()
	leaderOf := func() string {
		for n, a := range apps {
			if a.Election().IsLeader() {
				return n
			}
		}
		return ""
	}
	eventually(t, 5*time.Second, "a leader", func() bool { return leaderOf() != "" })
	first := leaderOf()
	other := map[string]string{"n1": "n2", "n2": "n1"}[first]
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	updates, err := plats[other].WatchServices(wctx, "db", "sql")
	if err != nil {
		t.Fatal(err)
	}
	waitSet := func(what string, want ...string) {
		t.Helper()
		deadline := time.After(6 * time.Second)
		for {
			select {
			case set := <-updates:
				var nodes []string
				for _, s := range set {
					nodes = append(nodes, s.Node)
				}
				if strings.Join(nodes, ",") == strings.Join(want, ",") {
					return
				}
			case <-deadline:
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitSet("the leader's record", first)
	list, err := plats[other].Services(ctx, "db", "sql")
	if err != nil || len(list) != 1 || list[0].Port != 5432 || list[0].Address == "127.0.0.1" || list[0].Address == "" {
		t.Fatalf("services: %+v %v", list, err)
	}
	// Losing leadership removes the record; the successor's appears.
	if err := apps[first].Election().StepDown(ctx); err != nil {
		t.Fatal(err)
	}
	waitSet("the successor's record only", other)
	// A dead node's record expires (Close without a handover is a crash).
	plats[other].Close()
	obs, err := plats[first].WatchServices(wctx, "db", "sql")
	if err != nil {
		t.Fatal(err)
	}
	updates = obs
	// first takes over again after the TTL/probe and publishes; other's record expires.
	waitSet("the old leader back and the dead node's record gone", first)
}

func TestPresence(t *testing.T) {
	url := startNATS(t)
	p1 := runPlatform(t, url, "t", "n1", nil, WithLabels(map[string]string{"zone": "a"}), WithPresenceTTL(3*time.Second))
	ctx := context.Background()
	eventually(t, 5*time.Second, "n1 present", func() bool { ns, _ := p1.Nodes(ctx); return len(ns) == 1 })
	ns, _ := p1.Nodes(ctx)
	if ns[0].Labels["zone"] != "a" || ns[0].Address == "" {
		t.Fatalf("record: %+v", ns[0])
	}

	// A second process with the same node ID is refused, every time.
	for range 3 {
		dup, err := NewPlatform("t", "n1", url)
		if err != nil {
			t.Fatal(err)
		}
		if err := dup.Run(ctx); !errors.Is(err, ErrNodeIDInUse) {
			t.Fatalf("duplicate node ID: %v", err)
		}
		dup.Close()
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := p1.WatchNodes(wctx)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := NewPlatform("t", "n2", url, WithPresenceTTL(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p2.Run(rctx) }()
	waitEvent := func(node string, left bool, within time.Duration) time.Duration {
		start := time.Now()
		deadline := time.After(within)
		for {
			select {
			case e := <-events:
				if e.Node.ID == node && e.Left == left {
					return time.Since(start)
				}
			case <-deadline:
				t.Fatalf("no %s event (left=%v) within %v", node, left, within)
			}
		}
	}
	waitEvent("n2", false, 5*time.Second)
	// Crash: the process's connection dies, nobody deletes the record; the
	// expiry marker tells watchers within the presence TTL.
	p2.Close()
	took := waitEvent("n2", true, 3*time.Second+500*time.Millisecond)
	t.Logf("crashed node left after %v (presence TTL 3s)", took)
	stop()
	<-done

	// A restarted node takes over its predecessor's record once the probe
	// shows the predecessor gone.
	p3 := runPlatform(t, url, "t", "n3", nil)
	eventually(t, 5*time.Second, "n3 present", func() bool { ns, _ := p3.Nodes(ctx); return len(ns) == 2 })
	before, _ := p3.Nodes(ctx)
	p3.Close()
	p3b := runPlatform(t, url, "t", "n3", nil)
	eventually(t, 5*time.Second, "the restarted n3 present", func() bool {
		ns, _ := p3b.Nodes(ctx)
		for i, n := range ns {
			if n.ID == "n3" && n.Instance != before[i].Instance {
				return true
			}
		}
		return false
	})
}

func TestBadInput(t *testing.T) {
	url := startNATS(t)
	cases := []struct {
		name, node string
		want       error
	}{
		{"bad.name", "n1", ErrInvalidName},
		{"p", "", ErrInvalidName},
		{"p", "node 1", ErrInvalidName},
		{"p*", "n1", ErrInvalidName},
	}
	for _, c := range cases {
		p, err := NewPlatform(c.name, c.node, url)
		if !errors.Is(err, c.want) {
			t.Errorf("NewPlatform(%q, %q): %v", c.name, c.node, err)
		}
		if p == nil || !errors.Is(p.Run(context.Background()), c.want) {
			t.Errorf("Run after a failed NewPlatform must return its error")
		}
	}
	// NATS unreachable: a clear error at once.
	start := time.Now()
	_, err := NewPlatform("p", "n1", "nats://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || time.Since(start) > 5*time.Second {
		t.Fatalf("unreachable NATS: %v", err)
	}

	p, err := NewPlatform("p", "n1", url)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Register(NewApp("a.b")); !errors.Is(err, ErrInvalidName) {
		t.Errorf("bad app name: %v", err)
	}
	if err := p.Register(NewApp("w", Replicas(0))); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("Replicas(0): %v", err)
	}
	if err := p.Register(NewApp("x"), NewApp("x")); !errors.Is(err, ErrDuplicateApp) {
		t.Errorf("duplicate app: %v", err)
	}
	if err := NewApp("y").ExposeService("http", ServiceConfig{Port: 0}); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("port 0: %v", err)
	}
}

// WithSQLite needs one writer: an app of another mode is refused by Run.
func TestSQLiteNeedsSingleton(t *testing.T) {
	url := startNATS(t)
	p, err := NewPlatform("p", "n1", url, WithStateDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Register(NewApp("db", Replicas(2), WithSQLite(filepath.Join(t.TempDir(), "x.db"))))
	if err := p.Run(context.Background()); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("Run: %v", err)
	}
}

// A VIP that cannot work is refused by Run before anything starts, with
// the reason.
func TestBadVIPRefusedAtRun(t *testing.T) {
	url := startNATS(t)
	if err := NewApp("db", VIP("198.18.0.100/24", "lo"), VIPAnnouncements(-1, 0)).optErr; !errors.Is(err, ErrInvalidOption) {
		t.Errorf("VIPAnnouncements(-1, 0): %v", err)
	}
	for _, tt := range []struct {
		name string
		app  *Application
		want error
	}{
		{"not a prefix", NewApp("db", Singleton(), VIP("10.0.1.100", "lo")), ErrInvalidOption},
		{"pool", NewApp("db", Replicas(2), VIP("198.18.0.100/24", "lo")), ErrInvalidOption},
		{"no such interface", NewApp("db", Singleton(), VIP("198.18.0.100/24", "nosuchif0")), vip.ErrNoInterface},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlatform("p", "n1", url, WithStateDir(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if err := p.Register(tt.app); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := p.Run(ctx); !errors.Is(err, tt.want) {
				t.Errorf("Run: %v, want %v", err, tt.want)
			}
		})
	}
}
