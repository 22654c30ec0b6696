package cluster

import (
	"context"
	"slices"
	"sync"
)

// ringGuard is the set of partitions this node owns and serves, with the
// calls in flight on each. A partition leaves the set before its OnRelease
// runs, and revoke waits for the calls already inside it: a "set" that was
// acknowledged is in the partition's data before OnRelease hands it over.
type ringGuard struct {
	mu       sync.Mutex
	owned    map[int]bool
	inflight map[int]int
	drained  chan struct{} // closed and replaced when a partition's last call ends
}

func newRingGuard() *ringGuard {
	return &ringGuard{owned: map[int]bool{}, inflight: map[int]int{}, drained: make(chan struct{})}
}

// enter admits a call on partition p if this node owns it; exit must follow.
func (g *ringGuard) enter(p int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.owned[p] {
		return false
	}
	g.inflight[p]++
	return true
}

func (g *ringGuard) exit(p int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inflight[p]--; g.inflight[p] <= 0 {
		delete(g.inflight, p)
		close(g.drained)
		g.drained = make(chan struct{})
	}
}

func (g *ringGuard) grant(parts []int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range parts {
		g.owned[p] = true
	}
}

// revoke stops owning parts and waits until no call is inside any of them
// (or ctx ends). It returns those of parts that were owned.
func (g *ringGuard) revoke(ctx context.Context, parts []int) []int {
	g.mu.Lock()
	var was []int
	for _, p := range parts {
		if g.owned[p] {
			was = append(was, p)
			delete(g.owned, p)
		}
	}
	g.mu.Unlock()
	for {
		g.mu.Lock()
		busy := false
		for _, p := range was {
			if g.inflight[p] > 0 {
				busy = true
				break
			}
		}
		drained := g.drained
		g.mu.Unlock()
		if !busy {
			return was
		}
		select {
		case <-drained:
		case <-ctx.Done():
			return was
		}
	}
}

// owns reports whether p is owned here: admitted calls still run in it
// after revoke began, and for them (and OwnsKey asked from them) it is.
func (g *ringGuard) owns(p int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.owned[p] || g.inflight[p] > 0
}

func (g *ringGuard) list() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]int, 0, len(g.owned))
	for p := range g.owned {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// serving reports whether p admits new calls (granted and not revoked).
func (g *ringGuard) serving(p int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.owned[p]
}
