//go:build linux

package cluster

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/executor/systemd"
	"github.com/ozanturksever/go-cluster/internal/systemdtest"
)

const sleeperUnit = "[Service]\nExecStart=/bin/sleep 100000\n"

// backendNode is one node of a backend test: its own systemd user manager
// (a node's systemd), and what the hooks saw of the unit.
type backendNode struct {
	name string
	sd   *systemdtest.UserManager
	app  *Application

	mu              sync.Mutex
	activeAtActive  []string // the unit's ActiveState when OnActive ran
	activeAtPassive []string // ... when OnPassive ran (after a term)
}

func (n *backendNode) unitState(t *testing.T) string {
	return n.sd.Show(t, "db.service", "ActiveState")
}

func startBackendNodes(t *testing.T, url string, names ...string) []*backendNode {
	var nodes []*backendNode
	for _, name := range names {
		n := &backendNode{name: name, sd: systemdtest.Start(t)}
		n.sd.InstallUnit(t, "db.service", sleeperUnit)
		n.app = NewApp("db", Singleton(), WithBackend(Systemd("db")))
		leading := false
		n.app.OnActive(func(context.Context) error {
			st := n.unitState(t)
			n.mu.Lock()
			n.activeAtActive = append(n.activeAtActive, st)
			leading = true
			n.mu.Unlock()
			return nil
		})
		n.app.OnPassive(func(context.Context) error {
			st := n.unitState(t)
			n.mu.Lock()
			if leading {
				n.activeAtPassive = append(n.activeAtPassive, st)
			}
			leading = false
			n.mu.Unlock()
			return nil
		})
		runPlatform(t, url, "t", name, []*Application{n.app}, WithSystemdUserManager(n.sd.PrivateSocket), WithStateDir(t.TempDir()))
		nodes = append(nodes, n)
	}
	return nodes
}

func leaderOf(nodes []*backendNode) *backendNode {
	for _, n := range nodes {
		if n.app.Election().IsLeader() {
			return n
		}
	}
	return nil
}

// The unit runs exactly where the app leads: started before OnActive,
// stopped after OnPassive; it moves on step-down, and a unit failing on the
// leader makes it step down so that another node runs it.
func TestSystemdBackendFollowsLeader(t *testing.T) {
	url := startNATS(t)
	nodes := startBackendNodes(t, url, "n1", "n2")
	eventually(t, 10*time.Second, "a leader", func() bool { return leaderOf(nodes) != nil })
	first := leaderOf(nodes)
	assertUnitOnlyOn := func(want *backendNode) {
		t.Helper()
		for _, n := range nodes {
			got := n.unitState(t)
			if n == want && got != "active" {
				t.Fatalf("unit on leader %s is %s", n.name, got)
			}
			if n != want && got == "active" {
				t.Fatalf("unit on standby %s is active", n.name)
			}
		}
	}
	assertUnitOnlyOn(first)

	if err := first.app.Election().StepDown(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a new leader", func() bool { l := leaderOf(nodes); return l != nil && l != first })
	second := leaderOf(nodes)
	assertUnitOnlyOn(second)

	// The unit dies on the leader: the leader steps down, the unit runs on
	// the other node.
	pid, err := strconv.Atoi(second.sd.Show(t, "db.service", "MainPID"))
	if err != nil || pid == 0 {
		t.Fatalf("MainPID of the leader's unit: %d %v", pid, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the leadership back on the first node", func() bool { return leaderOf(nodes) == first })
	eventually(t, 10*time.Second, "the unit active on the new leader only", func() bool {
		return first.unitState(t) == "active" && second.unitState(t) != "active"
	})

	for _, n := range nodes {
		n.mu.Lock()
		for _, st := range n.activeAtActive {
			if st != "active" {
				t.Errorf("%s: OnActive ran with the unit %s, want it started first", n.name, st)
			}
		}
		n.mu.Unlock()
	}
	first.mu.Lock()
	if len(first.activeAtPassive) == 0 || first.activeAtPassive[0] != "active" {
		t.Errorf("n1 stepping down: OnPassive saw the unit %v, want it still active (stopped after OnPassive)", first.activeAtPassive)
	}
	first.mu.Unlock()
}

// A backend that cannot start makes the node step down instead of staying
// leader with nothing running; a unit that does not exist is refused at Run.
func TestSystemdBackendStartFailure(t *testing.T) {
	url := startNATS(t)
	sd := systemdtest.Start(t)
	sd.InstallUnit(t, "broken.service", "[Service]\nType=exec\nExecStart=/nonexistent/binary\n")

	p, err := NewPlatform("t", "n1", url, WithSystemdUserManager(sd.PrivateSocket), WithStateDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Register(NewApp("missing", WithBackend(Systemd("nosuch")))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Run(ctx); !errors.Is(err, systemd.ErrUnitNotFound) {
		t.Fatalf("Run with a missing unit: %v, want ErrUnitNotFound", err)
	}

	broken := NewApp("broken", WithBackend(Systemd("broken")))
	var actives int
	var mu sync.Mutex
	broken.OnActive(func(context.Context) error { mu.Lock(); actives++; mu.Unlock(); return nil })
	p2 := runPlatform(t, url, "t", "n2", []*Application{broken}, WithSystemdUserManager(sd.PrivateSocket), WithStateDir(t.TempDir()))
	events, err := p2.WatchEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Each failed start gives the lease up; the node tries again only after
	// a hold-off (time for a standby to take over), not in a tight loop.
	var failures []time.Time
	window := time.After(5 * time.Second)
collect:
	for {
		select {
		case e := <-events:
			if e.App != "broken" || e.Kind != EventBackendStartFailed {
				continue
			}
			if e.Error == "" {
				t.Errorf("start failure event without a reason: %+v", e)
			}
			failures = append(failures, time.Now())
			if len(failures) == 1 {
				eventually(t, 2*time.Second, "the lease given up", func() bool { return broken.Election().Leader() == "" })
			}
		case <-window:
			break collect
		}
	}
	if len(failures) == 0 || len(failures) > 4 {
		t.Fatalf("%d failed starts in 5s, want a few (one per hold-off)", len(failures))
	}
	mu.Lock()
	defer mu.Unlock()
	if actives != 0 {
		t.Errorf("OnActive ran %d times although the backend never started", actives)
	}
}

// BenchmarkSystemdHandoff measures a graceful step-down moving a unit
// between two nodes (each its own systemd user manager): from the old
// unit's stop job done (backend.stopped) to the new unit's start job done
// (backend.started), by the events' clocks (one process, one clock), and
// from StepDown to the new unit active as the caller sees it.
func BenchmarkSystemdHandoff(b *testing.B) {
	url := startNATS(b)
	var apps []*Application
	var platforms []*Platform
	for _, name := range []string{"n1", "n2"} {
		sd := systemdtest.Start(b)
		sd.InstallUnit(b, "db.service", sleeperUnit)
		a := NewApp("db", Singleton(), WithBackend(Systemd("db")))
		platforms = append(platforms, runPlatform(b, url, "t", name, []*Application{a}, WithSystemdUserManager(sd.PrivateSocket), WithStateDir(b.TempDir())))
		apps = append(apps, a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := platforms[0].WatchEvents(ctx)
	if err != nil {
		b.Fatal(err)
	}
	leader := func() int {
		for i, a := range apps {
			if a.Election().IsLeader() {
				return i
			}
		}
		return -1
	}
	eventually(b, 10*time.Second, "a leader", func() bool { return leader() >= 0 })
	var handoffs, seen []time.Duration
	b.ResetTimer()
	for range b.N {
		old := leader()
		start := time.Now()
		if err := apps[old].Election().StepDown(context.Background()); err != nil {
			b.Fatal(err)
		}
		var stopped, started time.Time
		for started.IsZero() || stopped.IsZero() {
			select {
			case e := <-events:
				switch {
				case e.Time.Before(start):
					// The first leader's start, or a late event of the
					// previous round.
				case e.Kind == EventBackendStopped && e.Node == platforms[old].node:
					stopped = e.Time
				case e.Kind == EventBackendStarted && e.Node == platforms[1-old].node:
					started = e.Time
				}
			case <-time.After(10 * time.Second):
				b.Fatal("no handoff within 10s")
			}
		}
		seen = append(seen, time.Since(start))
		handoffs = append(handoffs, started.Sub(stopped))
		eventually(b, 10*time.Second, "the new leader", func() bool { l := leader(); return l >= 0 && l != old })
	}
	b.StopTimer()
	slices.Sort(handoffs)
	slices.Sort(seen)
	pct := func(d []time.Duration, p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(handoffs, 0.5), "handoff-p50-ms")
	b.ReportMetric(pct(handoffs, 0.99), "handoff-p99-ms")
	b.ReportMetric(pct(seen, 0.5), "stepdown-to-started-p50-ms")
	b.ReportMetric(pct(seen, 0.99), "stepdown-to-started-p99-ms")
}
