//go:build unix

package crashtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ozanturksever/go-cluster/internal/sqlitetest"
	"github.com/ozanturksever/go-cluster/state"
)

// Every node is this test binary run again with the node environment: it
// is built with the same flags (-race included), so races in the library
// show up in the node processes too and fail the test.
func TestMain(m *testing.M) {
	MaybeRunNode()
	code := m.Run()
	sqlitetest.Cleanup()
	os.Exit(code)
}

const (
	defaultTTL = 2 * time.Second // election.DefaultTiming().TTL
	// defaultRenew is the default renew interval: a lease that is no longer
	// renewed was last renewed at most this long before the kill, so a
	// TTL-based takeover comes at least TTL - renew after it.
	defaultRenew = 400 * time.Millisecond
)

type testCluster struct {
	*Cluster
	t   *testing.T
	srv *state.Server
	url string
}

func newTestCluster(t *testing.T, ttl time.Duration) *testCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := state.StartServer(ctx, state.ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	c, err := NewCluster(t.TempDir(), name, ttl)
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCluster{Cluster: c, t: t, srv: srv, url: srv.ClientURL()}
	t.Cleanup(func() {
		c.KillAll()
		if t.Failed() || os.Getenv("CRASHTEST_DUMP") != "" {
			t.Logf("cluster state:\n%s", c.Dump(60))
		}
	})
	return tc
}

func (tc *testCluster) start(id, url string) {
	tc.t.Helper()
	if _, err := tc.Start(id, url); err != nil {
		tc.t.Fatal(err)
	}
}

// waitFor polls until cond holds; any overlap of leadership intervals seen
// on the way fails at once.
func (tc *testCluster) waitFor(what string, timeout time.Duration, cond func(evs []Event, ivs []Interval) bool) ([]Event, []Interval) {
	tc.t.Helper()
	evs, ivs, err := tc.WaitFor(timeout, func(evs []Event, ivs []Interval) (bool, error) {
		if err := CheckIntervals(ivs); err != nil {
			return false, err
		}
		for _, id := range tc.IDs() {
			if crashed, err := tc.Node(id).Crashed(); crashed {
				return false, fmt.Errorf("node %s exited on its own: %v", id, err)
			}
		}
		return cond(evs, ivs), nil
	})
	if err != nil {
		tc.t.Fatalf("waiting for %s: %v", what, err)
	}
	return evs, ivs
}

func (tc *testCluster) waitReady(id string, n int) {
	tc.t.Helper()
	tc.waitFor(fmt.Sprintf("%s to be ready (#%d)", id, n), 20*time.Second, func(evs []Event, _ []Interval) bool {
		return Count(evs, KindReady, id) >= n
	})
}

// settledLeader waits for exactly one active node whose activation has
// finished.
func (tc *testCluster) settledLeader() Interval {
	tc.t.Helper()
	var leader Interval
	tc.waitFor("a settled leader", 20*time.Second, func(evs []Event, ivs []Interval) bool {
		act := Active(ivs)
		if len(act) != 1 || !Has(evs, KindServing, act[0].Node, act[0].Epoch) {
			return false
		}
		leader = act[0]
		return true
	})
	return leader
}

// checkStillLeads: leadership does not move on its own, so the successor
// of the last round still leads (exactly one successor took over).
func (tc *testCluster) checkStillLeads(round int, expect, leader Interval) {
	tc.t.Helper()
	if expect.Node != "" && (leader.Node != expect.Node || leader.Epoch != expect.Epoch) {
		tc.t.Errorf("round %d: leader is %v, but the last successor was %v: leadership moved on its own", round, leader, expect)
	}
}

// finish stops every node gracefully and checks the whole history: no
// overlap, growing epochs, nobody left active, clean exits, no data races.
func (tc *testCluster) finish() []Interval {
	tc.t.Helper()
	if err := tc.StopAll(15 * time.Second); err != nil {
		tc.t.Errorf("graceful stop: %v", err)
	}
	_, ivs, err := tc.State()
	if err != nil {
		tc.t.Errorf("event logs: %v", err)
	}
	if err := CheckIntervals(ivs); err != nil {
		tc.t.Errorf("mutual exclusion violated:\n%v", err)
	}
	if act := Active(ivs); len(act) > 0 {
		tc.t.Errorf("still active after every node stopped: %v", act)
	}
	if r := tc.RaceReports(); len(r) > 0 {
		tc.t.Errorf("data races reported by nodes %v", r)
	}
	return ivs
}

// TestKillLeader: SIGKILL the leader of three node processes, several
// times, restarting the killed node each time. Exactly one successor takes
// over, strictly after the kill (the killed term ends at the kill), and by
// the fast path: sooner than any TTL-based takeover could happen.
func TestKillLeader(t *testing.T) {
	tc := newTestCluster(t, 0) // default timing: TTL 2s
	ids := []string{"n1", "n2", "n3"}
	for _, id := range ids {
		tc.start(id, tc.url)
	}
	for _, id := range ids {
		tc.waitReady(id, 1)
	}
	// Any TTL-based takeover comes at least TTL - renew interval after the
	// kill; the fast path (probe: no responders) must beat that.
	bound := defaultTTL - defaultRenew - 100*time.Millisecond
	const rounds = 5
	var expect Interval // the last successor: it must still lead
	for round := 1; round <= rounds; round++ {
		leader := tc.settledLeader()
		tc.checkStillLeads(round, expect, leader)
		evs, _, err := tc.State()
		if err != nil {
			t.Fatal(err)
		}
		readies := Count(evs, KindReady, leader.Node)
		killedAt, err := tc.Node(leader.Node).Kill()
		if err != nil {
			t.Fatal(err)
		}
		var succ Interval
		tc.waitFor("a successor", 10*time.Second, func(_ []Event, ivs []Interval) bool {
			var ok bool
			succ, ok = FirstStartAfter(ivs, killedAt)
			return ok
		})
		if succ.Node == leader.Node {
			t.Fatalf("round %d: killed node %s active again: %v", round, leader.Node, succ)
		}
		took := succ.Start.Sub(killedAt)
		t.Logf("round %d: killed %s (epoch %d); %s active after %v (epoch %d)", round, leader.Node, leader.Epoch, succ.Node, took.Round(time.Millisecond), succ.Epoch)
		if took > bound {
			t.Errorf("round %d: successor took %v after SIGKILL, more than %v: the liveness fast path did not work", round, took, bound)
		}
		tc.start(leader.Node, tc.url)
		tc.waitReady(leader.Node, readies+1)
		expect = succ
	}
	ivs := tc.finish()
	killed := 0
	for _, iv := range ivs {
		if iv.Killed {
			killed++
		}
	}
	if killed != rounds {
		t.Errorf("%d killed terms in the logs, want %d", killed, rounds)
	}
}

// TestStepDown: SIGUSR1 makes the leader step down, several times. Each
// time a successor starts strictly after the predecessor's OnPassive, and
// quickly: standbys take a released lease at once.
func TestStepDown(t *testing.T) {
	tc := newTestCluster(t, 0)
	ids := []string{"n1", "n2", "n3"}
	for _, id := range ids {
		tc.start(id, tc.url)
	}
	for _, id := range ids {
		tc.waitReady(id, 1)
	}
	const rounds = 8
	const bound = 2 * time.Second
	var expect Interval
	for round := 1; round <= rounds; round++ {
		leader := tc.settledLeader()
		tc.checkStillLeads(round, expect, leader)
		asked := time.Now()
		if err := tc.Node(leader.Node).Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		var prev, succ Interval
		tc.waitFor("the handover", 10*time.Second, func(evs []Event, ivs []Interval) bool {
			var ok1, ok2 bool
			prev, ok1 = Find(ivs, leader.Node, leader.Epoch)
			succ, ok2 = FirstStartAfter(ivs, asked)
			return ok1 && !prev.Open && ok2 && Has(evs, KindStepDown, leader.Node, leader.Epoch)
		})
		if succ.Node == leader.Node {
			t.Fatalf("round %d: %s took the lease straight back after stepping down: %v", round, leader.Node, succ)
		}
		if !succ.Start.After(prev.End) {
			t.Fatalf("round %d: successor %v started before predecessor %v stopped", round, succ, prev)
		}
		took := succ.Start.Sub(asked)
		t.Logf("round %d: %s stepped down (epoch %d); %s active %v after the request, %v after %s's OnPassive",
			round, leader.Node, leader.Epoch, succ.Node, took.Round(time.Millisecond), succ.Start.Sub(prev.End).Round(time.Millisecond), leader.Node)
		if took > bound {
			t.Errorf("round %d: handover took %v, more than %v", round, took, bound)
		}
		expect = succ
	}
	tc.finish()
}

// TestPartitionedLeader: the leader reaches NATS through a proxy that goes
// silent (no FIN, no RST). The leader cannot renew, so it demotes itself at
// its local deadline: its OnPassive comes before any other node's OnActive.
// A standby takes over once the TTL has run out. After the partition heals
// the old leader shuts down cleanly.
//
// The partition strikes at two moments: right after the cluster formed,
// and in the middle of the leader's presence heartbeat period, so that the
// leader's next heartbeat (which writes to NATS, and hangs) falls between
// the cut and the leader's lease deadline.
func TestPartitionedLeader(t *testing.T) {
	t.Run("fresh", func(t *testing.T) { testPartition(t, false) })
	t.Run("mid-heartbeat", func(t *testing.T) { testPartition(t, true) })
}

func testPartition(t *testing.T, midHeartbeat bool) {
	const ttl = time.Second
	tc := newTestCluster(t, ttl)
	proxy, err := NewProxy(strings.TrimPrefix(tc.url, "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })

	// n1 starts alone through the proxy, so it leads.
	tc.start("n1", proxy.URL())
	if l := tc.settledLeader(); l.Node != "n1" {
		t.Fatalf("leader is %s, want n1", l.Node)
	}
	tc.start("n2", tc.url)
	tc.start("n3", tc.url)
	tc.waitReady("n2", 1)
	tc.waitReady("n3", 1)
	leader := tc.settledLeader()
	if leader.Node != "n1" {
		t.Fatalf("leader is %s, want n1", leader.Node)
	}

	if midHeartbeat {
		// n1 refreshes its presence record every presence TTL / 5 (1s by
		// default). Cut 400ms after a refresh: the next one starts 600ms
		// into the partition, before n1's lease deadline (~700-875ms).
		nc, err := nats.Connect(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		layout := state.Layout{Platform: tc.Platform}
		sub, err := nc.SubscribeSync("$KV." + layout.NodesBucket() + "." + layout.NodeKey("n1"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(5 * time.Second); err != nil {
			t.Fatalf("no presence heartbeat from n1: %v", err)
		}
		<-time.After(400 * time.Millisecond) // choosing the moment of the fault, not waiting for a state
	}

	cut := time.Now()
	proxy.Partition()
	bound := ttl + 1500*time.Millisecond
	var succ Interval
	// waitFor fails as soon as a successor starts while n1 has not logged
	// its stop: that is an overlap.
	tc.waitFor("a successor", bound+5*time.Second, func(_ []Event, ivs []Interval) bool {
		var ok bool
		succ, ok = FirstStartAfter(ivs, cut)
		return ok
	})
	evs, ivs, err := tc.State()
	if err != nil {
		t.Fatal(err)
	}
	prev, _ := Find(ivs, leader.Node, leader.Epoch)
	if prev.Open || !prev.End.Before(succ.Start) {
		t.Fatalf("partitioned leader %v did not stop before successor %v started", prev, succ)
	}
	took := succ.Start.Sub(cut)
	t.Logf("partition at %s: %s stopped %v after the cut; %s active %v after the cut, %v after %s stopped",
		cut.Format("15:04:05.000"), prev.Node, prev.End.Sub(cut).Round(time.Millisecond), succ.Node,
		took.Round(time.Millisecond), succ.Start.Sub(prev.End).Round(time.Millisecond), prev.Node)
	if Has(evs, KindLatePassive, prev.Node, prev.Epoch) {
		t.Logf("note: %s's OnPassive was called with its context already done (no stop budget left for the hook)", prev.Node)
	}
	if took > bound {
		t.Errorf("successor took %v after the partition, more than %v", took, bound)
	}

	proxy.Heal()
	tc.finish()
}

func (tc *testCluster) mustIntervals() []Interval {
	tc.t.Helper()
	_, ivs, err := tc.State()
	if err != nil {
		tc.t.Fatal(err)
	}
	return ivs
}
