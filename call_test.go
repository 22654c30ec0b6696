package cluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCallRouting(t *testing.T) {
	url := startNATS(t)
	var plats []*Platform
	var dbs []*Application
	for _, n := range []string{"n1", "n2", "n3"} {
		db := NewApp("db", Singleton())
		db.Handle("who", func(ctx context.Context, _ []byte) ([]byte, error) { return []byte(n), nil })
		db.Handle("fail", func(ctx context.Context, _ []byte) ([]byte, error) { return nil, errors.New("boom") })
		db.Handle("slow", func(ctx context.Context, _ []byte) ([]byte, error) {
			<-ctx.Done() // the caller's deadline reaches the handler
			return nil, ctx.Err()
		})
		cache := NewApp("cache", Spread())
		cache.Handle("who", func(ctx context.Context, _ []byte) ([]byte, error) { return []byte(n), nil })
		dbs = append(dbs, db)
		plats = append(plats, runPlatform(t, url, "t", n, []*Application{db, cache}))
	}
	ctx := context.Background()
	eventually(t, 5*time.Second, "a db leader", func() bool {
		for _, d := range dbs {
			if d.Election().IsLeader() {
				return true
			}
		}
		return false
	})
	var leader string
	for i, d := range dbs {
		if d.Election().IsLeader() {
			leader = []string{"n1", "n2", "n3"}[i]
		}
	}
	// Default route: the leader, from every node.
	for _, p := range plats {
		got, err := p.Call("db").Call(ctx, "who", nil)
		if err != nil || string(got) != leader {
			t.Fatalf("call from %s: %q, %v; want %s", p.NodeID(), got, err, leader)
		}
	}
	// ToAny spreads over the active instances, not always the caller's own.
	eventually(t, 5*time.Second, "3 cache instances", func() bool {
		seen := map[string]bool{}
		for range 60 {
			got, err := plats[0].Call("cache").Call(ctx, "who", nil, ToAny())
			if err != nil {
				return false
			}
			seen[string(got)] = true
		}
		return len(seen) == 3
	})
	// ToNode reaches a standby too.
	got, err := plats[0].Call("db").Call(ctx, "who", nil, ToNode("n3"))
	if err != nil || string(got) != "n3" {
		t.Fatalf("ToNode: %q %v", got, err)
	}
	// Handler errors come back as RemoteError.
	_, err = plats[0].Call("db").Call(ctx, "fail", nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Message != "boom" || re.Node != leader {
		t.Fatalf("remote error: %v", err)
	}
	// Unknown method.
	if _, err = plats[0].Call("db").Call(ctx, "nope", nil); !errors.As(err, &re) {
		t.Fatalf("unknown method: %v", err)
	}
	// No instance: fails at once, not after a timeout.
	start := time.Now()
	_, err = plats[0].Call("ghost").Call(ctx, "x", nil)
	if !errors.Is(err, ErrNoInstance) || time.Since(start) > time.Second {
		t.Fatalf("no instance: %v after %v", err, time.Since(start))
	}
	// Deadlines come from ctx.
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err = plats[0].Call("db").Call(dctx, "slow", nil); err == nil {
		t.Fatal("slow call succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("deadline ignored: %v", d)
	}
	// Package-level Call uses the latest platform.
	if got, err := Call("db").Call(ctx, "who", nil); err != nil || string(got) != leader {
		t.Fatalf("cluster.Call: %q %v", got, err)
	}
}

func TestCallJSONAndConcurrentHandlers(t *testing.T) {
	url := startNATS(t)
	type req struct{ A, B int }
	type resp struct{ Sum int }
	a := NewApp("calc", Spread())
	release := make(chan struct{})
	a.Handle("sum", HandleJSON(func(ctx context.Context, r req) (resp, error) {
		if r.A < 0 {
			<-release // hold this one; others must still be answered
		}
		return resp{r.A + r.B}, nil
	}))
	p := runPlatform(t, url, "t", "n1", []*Application{a})
	ctx := context.Background()
	eventually(t, 5*time.Second, "calc active", func() bool {
		_, err := p.Call("calc").Call(ctx, "sum", req{1, 1})
		return err == nil
	})
	blocked := make(chan error, 1)
	go func() { _, err := CallJSON[resp](ctx, p.Call("calc"), "sum", req{-1, 0}); blocked <- err }()
	for i := range 20 {
		r, err := CallJSON[resp](ctx, p.Call("calc"), "sum", req{i, 1})
		if err != nil || r.Sum != i+1 {
			t.Fatalf("sum %d: %+v %v", i, r, err)
		}
	}
	close(release)
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
}
