//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	cluster "github.com/ozanturksever/go-cluster"
)

// RingBench is the ring pattern's figures.
type RingBench struct {
	Partitions int     `json:"partitions"`
	NodeForNs  float64 `json:"node_for_ns"`
	// Join: a 4th node's Run → its last OnOwn returned (3 → 4 nodes).
	Join Stats `json:"join_to_all_owned"`
	// Leave: the 4th node's graceful stop → its partitions owned again.
	Leave          Stats `json:"leave_to_all_owned"`
	MovedOnJoin    int   `json:"moved_on_join"`    // partitions that changed owner, last trial
	OptimumOnJoin  int   `json:"optimum_on_join"`  // the least any balanced assignment moves
	OtherMovesJoin int   `json:"other_moves_join"` // moves not to the newcomer: must be 0
	ForKey         Stats `json:"forkey_call"`
}

// ringOwners counts, across in-process nodes, who owns which partition.
type ringOwners struct {
	mu      sync.Mutex
	owner   map[int]string
	changed chan struct{}
}

func (o *ringOwners) install(app *cluster.Application, node string) {
	app.OnOwn(func(_ context.Context, parts []int) error {
		o.mu.Lock()
		for _, p := range parts {
			o.owner[p] = node
		}
		close(o.changed)
		o.changed = make(chan struct{})
		o.mu.Unlock()
		return nil
	})
	app.OnRelease(func(_ context.Context, parts []int) error {
		o.mu.Lock()
		for _, p := range parts {
			if o.owner[p] == node {
				delete(o.owner, p)
			}
		}
		close(o.changed)
		o.changed = make(chan struct{})
		o.mu.Unlock()
		return nil
	})
}

// waitFor waits until cond holds on the owners.
func (o *ringOwners) waitFor(timeout time.Duration, cond func(map[int]string) bool) error {
	deadline := time.After(timeout)
	for {
		o.mu.Lock()
		ok, ch := cond(o.owner), o.changed
		o.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-deadline:
			return errors.New("timed out")
		}
	}
}

func (o *ringOwners) snapshot() map[int]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[int]string, len(o.owner))
	for k, v := range o.owner {
		out[k] = v
	}
	return out
}

func count(owners map[int]string, node string) int {
	n := 0
	for _, o := range owners {
		if o == node {
			n++
		}
	}
	return n
}

// benchRing runs three ring nodes in this process and measures a fourth
// joining and leaving, trials times.
func benchRing(url string, trials int) (RingBench, error) {
	const parts = 256
	res := RingBench{Partitions: parts, OptimumOnJoin: parts / 4}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	owners := &ringOwners{owner: map[int]string{}, changed: make(chan struct{})}
	start := func(node string) (*cluster.Platform, *cluster.Application, func(), error) {
		app := cluster.NewApp("cache", cluster.Spread(), cluster.Ring(parts))
		owners.install(app, node)
		app.Handle("get", func(context.Context, []byte) ([]byte, error) { return nil, nil })
		p, err := cluster.NewPlatform("bench_ring", node, url, cluster.WithLogger(quiet))
		if err != nil {
			return nil, nil, nil, err
		}
		if err := p.Register(app); err != nil {
			return nil, nil, nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = p.Run(ctx); close(done) }()
		return p, app, func() { cancel(); <-done; p.Close() }, nil
	}
	var stops []func()
	defer func() {
		for _, s := range stops {
			s()
		}
	}()
	var first *cluster.Platform
	var firstApp *cluster.Application
	for _, n := range []string{"r1", "r2", "r3"} {
		p, app, stop, err := start(n)
		if err != nil {
			return res, err
		}
		if first == nil {
			first, firstApp = p, app
		}
		stops = append(stops, stop)
	}
	three := func(o map[int]string) bool {
		return len(o) == parts && count(o, "r1") >= 85 && count(o, "r2") >= 85 && count(o, "r3") >= 85
	}
	if err := owners.waitFor(30*time.Second, three); err != nil {
		return res, fmt.Errorf("3 ring nodes: %w", err)
	}

	var joins, leaves []time.Duration
	for range trials {
		before := owners.snapshot()
		t0 := time.Now()
		_, _, stop, err := start("r4")
		if err != nil {
			return res, err
		}
		if err := owners.waitFor(30*time.Second, func(o map[int]string) bool { return len(o) == parts && count(o, "r4") == parts/4 }); err != nil {
			stop()
			return res, fmt.Errorf("join of r4: %w", err)
		}
		joins = append(joins, time.Since(t0))
		after := owners.snapshot()
		res.MovedOnJoin, res.OtherMovesJoin = 0, 0
		for p, n := range after {
			if before[p] != n {
				res.MovedOnJoin++
				if n != "r4" {
					res.OtherMovesJoin++
				}
			}
		}
		t1 := time.Now()
		stop()
		if err := owners.waitFor(30*time.Second, three); err != nil {
			return res, fmt.Errorf("leave of r4: %w", err)
		}
		leaves = append(leaves, time.Since(t1))
	}
	res.Join, res.Leave = stats(joins), stats(leaves)

	// NodeFor: a hash and a lookup in the current assignment.
	ring := firstApp.Ring()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%d", i)
	}
	const n = 1_000_000
	t0 := time.Now()
	for i := range n {
		if _, err := ring.NodeFor(keys[i%len(keys)]); err != nil {
			return res, err
		}
	}
	res.NodeForNs = float64(time.Since(t0).Nanoseconds()) / n

	client := first.Call("cache")
	var lat []time.Duration
	ctx := context.Background()
	for i := range 2000 {
		t := time.Now()
		if _, err := client.Call(ctx, "get", nil, cluster.ForKey(keys[i%len(keys)])); err != nil {
			return res, err
		}
		lat = append(lat, time.Since(t))
	}
	res.ForKey = stats(lat)
	return res, nil
}
