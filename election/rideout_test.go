package election

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/internal/natstest"
	"github.com/ozanturksever/go-cluster/state"
)

// A NATS cluster of three server processes; the candidates are connected
// to the two that do not lead the leases stream. SIGKILL of that
// server leaves the stream without a leader until the other two elect one.
// The holder must keep its term through that election (no collateral
// outage), and the standby must not take over.
func TestLeaseRidesOutStreamLeaderCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	servers := natstest.StartProcCluster(t, 3)
	// The bucket first, to learn which server leads its stream: that one
	// is the victim, and the candidates connect to the other two.
	nc, err := nats.Connect(servers[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := state.EnsureLeaseKV(ctx, js, "leases", 3); err != nil {
		t.Fatal(err)
	}
	leader := streamLeader(t, ctx, js, "KV_leases")
	var victim *natstest.ServerProc
	var others []string
	for _, s := range servers {
		if s.Name == leader {
			victim = s
		} else {
			others = append(others, s.URL)
		}
	}
	if victim == nil {
		t.Fatalf("stream leader %q is none of our servers", leader)
	}

	tm := DefaultTiming()
	tm.ProbeInterval = 0
	rec := newRecorder()
	// The holder starts alone, so that it is the one we chose.
	nodes := startCandidatesAt(t, ctx, map[string]string{"a": others[0]}, 3, tm, false, rec, "a")
	rec.waitFor(t, func() bool { return rec.leader() == "a" }, 30*time.Second, "a to lead")
	startCandidatesAt(t, ctx, map[string]string{"b": others[1]}, 3, tm, false, rec, "b")

	term := nodes["a"].c.Term()
	if term == nil {
		t.Fatal("a does not lead")
	}
	killed := time.Now()
	victim.Kill()

	// The election takes up to state.EmbeddedRaftTiming.WorstElectionOutage;
	// the holder's deadline must move past the kill by more than its
	// runway, proof that it renewed on the new stream leader.
	deadline := time.Now().Add(30 * time.Second)
	for !term.Deadline().After(killed.Add(tm.TTL)) {
		select {
		case <-term.Done():
			t.Fatalf("the holder's term ended %v after the stream leader was killed: %v",
				time.Since(killed).Round(time.Millisecond), term.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the holder never renewed after the stream leader was killed")
		}
	}
	renewedAfter := time.Since(killed)
	if rec.leader() != "a" || len(rec.intervals) != 1 {
		t.Fatalf("leadership changed: %+v", rec.intervals)
	}
	t.Logf("holder renewed on the new stream leader %v after the kill (runway %v)", renewedAfter.Round(time.Millisecond), tm.Runway())
}

// streamLeader waits until the stream has a leader and names it.
func streamLeader(t *testing.T, ctx context.Context, js jetstream.JetStream, stream string) string {
	t.Helper()
	for {
		s, err := js.Stream(ctx, stream)
		if err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Leader != "" {
			return s.CachedInfo().Cluster.Leader
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stream %s has no leader: %v", stream, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
