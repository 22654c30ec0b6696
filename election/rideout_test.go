package election

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/internal/natstest"
)

// A NATS cluster of three server processes; the leases stream is led by
// the third, to which neither candidate is connected. SIGKILL of that
// server leaves the stream without a leader until the other two elect one.
// The holder must keep its term through that election (no collateral
// outage), and the standby must not take over.
func TestLeaseRidesOutStreamLeaderCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	servers := natstest.StartProcCluster(t, 3)
	holderURL, standbyURL, victim := servers[0].URL, servers[1].URL, servers[2]

	tm := DefaultTiming()
	tm.ProbeInterval = 0
	rec := newRecorder()
	// The holder starts alone, so that it is the one on s1.
	nodes := startCandidatesAt(t, ctx, map[string]string{"a": holderURL}, 3, tm, false, rec, "a")
	rec.waitFor(t, func() bool { return rec.leader() == "a" }, 30*time.Second, "a to lead")
	startCandidatesAt(t, ctx, map[string]string{"b": standbyURL}, 3, tm, false, rec, "b")

	nc := nodes["a"].nc
	js, _ := jetstream.New(nc)
	moveStreamLeader(t, ctx, nc, js, "KV_leases", victim.Name)

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

// moveStreamLeader asks the stream's leader to step down until the wanted
// server leads it (nats-server 2.11+ takes a preferred placement).
func moveStreamLeader(t *testing.T, ctx context.Context, nc *nats.Conn, js jetstream.JetStream, stream, want string) {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": want}})
	for {
		s, err := js.Stream(ctx, stream)
		if err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Leader == want {
			return
		}
		if err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Leader != "" {
			_, _ = nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, req)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stream %s not led by %s: %v", stream, want, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
