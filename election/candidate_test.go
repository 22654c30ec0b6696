package election

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/state"
)

func startServer(t *testing.T) *state.Server {
	t.Helper()
	srv, err := state.StartServer(context.Background(), state.ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

type node struct {
	name string
	nc   *nats.Conn
	c    *Candidate
}

// interval is one period during which a node acted as leader.
type interval struct {
	node       string
	epoch      uint64
	start, end time.Time
}

type recorder struct {
	mu        sync.Mutex
	intervals []interval
	active    map[string]bool
	changed   chan struct{}
}

func newRecorder() *recorder {
	return &recorder{active: map[string]bool{}, changed: make(chan struct{}, 100)}
}

func (r *recorder) serve(name string) func(*Term) {
	return func(t *Term) {
		r.mu.Lock()
		for n, a := range r.active {
			if a {
				r.mu.Unlock()
				panic(fmt.Sprintf("%s became active while %s is active", name, n))
			}
		}
		r.active[name] = true
		i := len(r.intervals)
		r.intervals = append(r.intervals, interval{node: name, epoch: t.Epoch, start: time.Now()})
		r.mu.Unlock()
		r.changed <- struct{}{}
		<-t.Done()
		r.mu.Lock()
		r.active[name] = false
		r.intervals[i].end = time.Now()
		r.mu.Unlock()
		r.changed <- struct{}{}
	}
}

func (r *recorder) leader() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for n, a := range r.active {
		if a {
			return n
		}
	}
	return ""
}

func (r *recorder) waitFor(t *testing.T, cond func() bool, within time.Duration, what string) {
	t.Helper()
	deadline := time.After(within)
	for !cond() {
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
	}
}

func startCandidates(t *testing.T, ctx context.Context, url string, tm Timing, probe bool, rec *recorder, names ...string) map[string]*node {
	t.Helper()
	urls := map[string]string{}
	for _, name := range names {
		urls[name] = url
	}
	return startCandidatesAt(t, ctx, urls, 1, tm, probe, rec, names...)
}

// startCandidatesAt connects each named candidate to its own URL, with a
// lease bucket of the given replicas.
func startCandidatesAt(t *testing.T, ctx context.Context, urls map[string]string, replicas int, tm Timing, probe bool, rec *recorder, names ...string) map[string]*node {
	t.Helper()
	nodes := map[string]*node{}
	for _, name := range names {
		nc, err := nats.Connect(urls[name])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		kv, err := state.EnsureLeaseKV(ctx, js, "leases", replicas)
		if err != nil {
			t.Fatal(err)
		}
		layout := state.Layout{Platform: "t"}
		cfg := Config{JS: js, KV: kv, Key: "app.leader", Node: name, Instance: name + "-1", Timing: tm}
		if probe {
			if _, err := state.ServeProbe(nc, layout.NodeProbeSubject(name), name+"-1"); err != nil {
				t.Fatal(err)
			}
			cfg.Liveness = state.NewProber(nc, layout, tm.ProbeInterval)
		}
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes[name] = &node{name: name, nc: nc, c: c}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); c.Run(runCtx, rec.serve(name)) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return nodes
}

func TestStepDownHandsOverAtOnce(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	rec := newRecorder()
	nodes := startCandidates(t, ctx, srv.ClientURL(), Timing{TTL: 2 * time.Second}.WithDefaults(), false, rec, "a", "b", "c")
	rec.waitFor(t, func() bool { return rec.leader() != "" }, 5*time.Second, "a leader")
	first := rec.leader()
	firstEpoch := nodes[first].c.Term().Epoch

	start := time.Now()
	if err := nodes[first].c.StepDown(ctx); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, func() bool { l := rec.leader(); return l != "" && l != first }, time.Second, "a successor well before the TTL")
	t.Logf("handover took %v", time.Since(start))
	second := rec.leader()
	if e := nodes[second].c.Term().Epoch; e <= firstEpoch {
		t.Fatalf("successor epoch %d not above %d", e, firstEpoch)
	}
	if err := nodes[first].c.StepDown(ctx); err != ErrNotLeader {
		t.Fatalf("StepDown on a standby: %v", err)
	}
}

func TestCutOffLeaderStopsBeforeSuccessorStarts(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	rec := newRecorder()
	tm := Timing{TTL: time.Second}.WithDefaults()
	nodes := startCandidates(t, ctx, srv.ClientURL(), tm, false, rec, "a", "b")
	rec.waitFor(t, func() bool { return rec.leader() != "" }, 5*time.Second, "a leader")
	first := rec.leader()
	// Closing the connection silently from the leader's side of the lease:
	// it can no longer renew and must reach its deadline; without probes the
	// standby can only learn it through the TTL.
	nodes[first].nc.Close()
	rec.waitFor(t, func() bool { l := rec.leader(); return l != "" && l != first }, 5*time.Second, "a successor")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	a, b := rec.intervals[0], rec.intervals[1]
	if a.end.IsZero() || !a.end.Before(b.start) {
		t.Fatalf("overlap: %+v then %+v", a, b)
	}
	if gap := b.start.Sub(a.end); gap > tm.TTL+500*time.Millisecond {
		t.Fatalf("successor took %v after the old leader stopped", gap)
	}
}

func TestDeadConnectionDetectedBeforeTTL(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	rec := newRecorder()
	tm := Timing{TTL: 5 * time.Second, ProbeInterval: 20 * time.Millisecond}.WithDefaults()
	nodes := startCandidates(t, ctx, srv.ClientURL(), tm, true, rec, "a", "b")
	rec.waitFor(t, func() bool { return rec.leader() != "" }, 5*time.Second, "a leader")
	first := rec.leader()
	start := time.Now()
	nodes[first].c.Disconnected() // what the platform does on a disconnect event
	nodes[first].nc.Close()
	rec.waitFor(t, func() bool { l := rec.leader(); return l != "" && l != first }, tm.TTL/2, "a successor through the probe, well before the TTL")
	t.Logf("failover took %v (TTL %v)", time.Since(start), tm.TTL)
}

func TestIneligibleLeaderHandsOver(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	rec := newRecorder()
	nodes := startCandidates(t, ctx, srv.ClientURL(), Timing{TTL: 2 * time.Second}.WithDefaults(), false, rec, "a", "b")
	rec.waitFor(t, func() bool { return rec.leader() != "" }, 5*time.Second, "a leader")
	first := rec.leader()
	nodes[first].c.SetEligible(false)
	rec.waitFor(t, func() bool { l := rec.leader(); return l != "" && l != first }, time.Second, "the other node")
	second := rec.leader()
	nodes[second].c.SetEligible(false)
	rec.waitFor(t, func() bool { return rec.leader() == "" }, time.Second, "no leader")
	nodes[first].c.SetEligible(true)
	rec.waitFor(t, func() bool { return rec.leader() == first }, 3*time.Second, "the eligible node")
}

// A lease record that expired on the server leaves no marker (see
// state.EnsureLeaseKV), so a standby whose takeover timer fires after the
// expiry finds its compare-and-set refused by an empty key. It must then
// create the lease rather than wait for a watch event that never comes.
func TestTakeoverAfterSilentExpiry(t *testing.T) {
	srv, js, kv := leaseBucket(t)
	ctx := context.Background()
	// A dead holder's last record: the server drops it after 1s, but the
	// record tells standbys to wait 3s, so the takeover comes after the expiry.
	ghost := []byte(`{"holder":"ghost","instance":"ghost-1","ttl_ms":3000}`)
	if _, err := state.PutCAS(ctx, js, "leases", "app.leader", ghost, 0, time.Second); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	startCandidates(t, ctx, srv.ClientURL(), Timing{TTL: 2 * time.Second}.WithDefaults(), false, rec, "a")
	rec.waitFor(t, func() bool { return rec.leader() == "a" }, 10*time.Second, "a to take over the expired lease")
	if _, err := kv.Get(ctx, "app.leader"); err != nil {
		t.Fatalf("lease record after takeover: %v", err)
	}
}

// flakyJS fails the first n publishes as if the server had not answered
// (a stream leader moving): the outcome is unknown to the caller.
type flakyJS struct {
	jetstream.JetStream
	fail atomic.Int32
}

func (f *flakyJS) Publish(ctx context.Context, subj string, data []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if f.fail.Add(-1) >= 0 {
		return nil, context.DeadlineExceeded
	}
	return f.JetStream.Publish(ctx, subj, data, opts...)
}

// A takeover whose compare-and-set went unanswered is retried as a
// takeover: the dead holder's record is still there, so a plain attempt
// (which only creates a free lease) would wait for ever.
func TestTakeoverRetriedAfterUnansweredAttempt(t *testing.T) {
	_, js, kv := leaseBucket(t)
	ctx := context.Background()
	// A dead holder's record that outlives the test on the server.
	ghost := []byte(`{"holder":"ghost","instance":"ghost-1","ttl_ms":1000}`)
	if _, err := state.PutCAS(ctx, js, "leases", "app.leader", ghost, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	flaky := &flakyJS{JetStream: js}
	flaky.fail.Store(1)
	c, err := New(Config{JS: flaky, KV: kv, Key: "app.leader", Node: "a", Instance: "a-1", Timing: Timing{TTL: time.Second}.WithDefaults()})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); c.Run(runCtx, rec.serve("a")) }()
	defer func() { cancel(); <-done }()
	rec.waitFor(t, func() bool { return rec.leader() == "a" }, 10*time.Second, "a to take over after an unanswered attempt")
	if flaky.fail.Load() >= 0 {
		t.Fatal("the first takeover attempt was not the failing one")
	}
}

// leaseBucket starts a server and opens a lease bucket on it.
func leaseBucket(t *testing.T) (*state.Server, jetstream.JetStream, jetstream.KeyValue) {
	t.Helper()
	srv := startServer(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	kv, err := state.EnsureLeaseKV(context.Background(), js, "leases", 1)
	if err != nil {
		t.Fatal(err)
	}
	return srv, js, kv
}
