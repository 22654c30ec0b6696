package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/state"
)

func startNATS(t testing.TB) string {
	t.Helper()
	srv, err := state.StartServer(context.Background(), state.ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

// runPlatform creates a platform, registers apps and runs it until the test ends.
func runPlatform(t testing.TB, url, platform, node string, apps []*Application, opts ...PlatformOption) *Platform {
	t.Helper()
	p, err := NewPlatform(platform, node, url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Register(apps...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run of %s: %v", node, err)
		}
		p.Close()
	})
	return p
}

// eventually polls cond until it holds or within passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// activeSet tracks which nodes are active, and fails on overlap for singletons.
type activeSet struct {
	mu     sync.Mutex
	active map[string]bool
	starts map[string]int
	max    int
}

func newActiveSet() *activeSet {
	return &activeSet{active: map[string]bool{}, starts: map[string]int{}}
}

func (s *activeSet) hooks(a *Application, node string) {
	on := func(ctx context.Context) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.active[node] = true
		s.starts[node]++
		if n := s.count(); n > s.max {
			s.max = n
		}
		return nil
	}
	off := func(ctx context.Context) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.active[node] = false
		return nil
	}
	a.OnStart(on)
	a.OnStop(off)
}

func (s *activeSet) count() int {
	n := 0
	for _, a := range s.active {
		if a {
			n++
		}
	}
	return n
}

func (s *activeSet) snapshot() (active []string, max int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n, a := range s.active {
		if a {
			active = append(active, n)
		}
	}
	return active, s.max
}
