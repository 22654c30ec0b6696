//go:build linux

package replication_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/internal/natstest"
	"github.com/ozanturksever/go-cluster/internal/sqlitetest"
	"github.com/ozanturksever/go-cluster/replication"
	"github.com/ozanturksever/go-cluster/replication/apply"
	"github.com/ozanturksever/go-cluster/replication/snapstore"
	"github.com/ozanturksever/go-cluster/replication/wallog"
)

func TestMain(m *testing.M) {
	code := m.Run()
	sqlitetest.Cleanup()
	os.Exit(code)
}

// cluster is one app's replication on several in-process nodes sharing an
// embedded NATS server; each node has its own database path and replica.
type cluster struct {
	t     testing.TB
	srv   *natstest.Server
	js    jetstream.JetStream
	nc    *nats.Conn
	dir   string
	nodes map[string]*node
	cfg   func(*replication.Config)
}

type node struct {
	name   string
	path   string
	r      *replication.Replicator
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	failed []error
	events []string
}

func newCluster(t testing.TB, cfg func(*replication.Config)) *cluster {
	t.Helper()
	srv := natstest.Start(t)
	nc, js := srv.Connect(t)
	return &cluster{t: t, srv: srv, js: js, nc: nc, dir: t.TempDir(), nodes: map[string]*node{}, cfg: cfg}
}

func (c *cluster) open(ctx context.Context) (*wallog.Log, *snapstore.Store) {
	c.t.Helper()
	log, err := wallog.Open(ctx, c.js, wallog.Config{Stream: "wal_db", Subject: "wal.db", MaxPart: 256 << 10})
	if err != nil {
		c.t.Fatal(err)
	}
	snaps, err := snapstore.Open(ctx, c.js, "snap_db", 1)
	if err != nil {
		c.t.Fatal(err)
	}
	return log, snaps
}

// start runs node name as a standby.
func (c *cluster) start(name string) *node { return c.startReading(name, nil) }

// startReading runs node name as a standby that reads the log from
// another stream than the leader writes (a relay), if log is not nil.
func (c *cluster) startReading(name string, log *wallog.Log) *node {
	c.t.Helper()
	ctx := context.Background()
	nc, _ := c.srv.Connect(c.t)
	own, snaps := c.open(ctx)
	if log == nil {
		log = own
	}
	n := &node{name: name, path: filepath.Join(c.dir, name, "app.db"), done: make(chan struct{})}
	cfg := replication.Config{
		App: "db", Node: name, Path: n.path, Dir: filepath.Join(c.dir, name, "replica"),
		Log: log, Snapshots: snaps, NC: nc, Subject: "repl.db",
		Event: func(kind, msg string, epoch uint64, err error) {
			n.mu.Lock()
			n.events = append(n.events, kind)
			n.mu.Unlock()
		},
		Failed: func(epoch uint64, err error) {
			n.mu.Lock()
			n.failed = append(n.failed, err)
			n.mu.Unlock()
		},
	}
	if c.cfg != nil {
		c.cfg(&cfg)
	}
	var err error
	if n.r, err = replication.New(cfg); err != nil {
		c.t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	n.cancel = cancel
	go func() { defer close(n.done); n.r.Run(rctx) }()
	c.t.Cleanup(n.stop)
	c.nodes[name] = n
	return n
}

func (n *node) stop() {
	if n.cancel != nil {
		n.cancel()
		<-n.done
		n.cancel = nil
		n.r.Close()
	}
}

func (n *node) failures() []error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]error(nil), n.failed...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitApplied ships everything committed on the leader and waits until
// every standby given has applied it.
func waitApplied(t testing.TB, leader *node, standbys ...*node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want, err := leader.r.Flush(ctx)
	if err != nil {
		t.Fatalf("flush %s: %v", leader.name, err)
	}
	waitFor(t, 60*time.Second, "standbys to apply the leader's transactions", func() bool {
		for _, s := range standbys {
			st := s.r.Status()
			if st.Seq != want.Seq || st.Cursor < want.StreamSeq {
				return false
			}
		}
		return true
	})
}

// replicaIDs checks a standby's replica (a copy of it, so that applying
// may go on) and returns its writer IDs.
func replicaIDs(t testing.TB, n *node) []int64 {
	t.Helper()
	src := filepath.Join(filepath.Dir(n.path), "replica", apply.DBName)
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	integ, _, ids := sqlitetest.DBState(t, cp)
	if integ != "ok" {
		t.Fatalf("%s's replica: integrity_check %s", n.name, integ)
	}
	return ids
}

func dbIDs(t testing.TB, path string) []int64 {
	t.Helper()
	integ, _, ids := sqlitetest.DBState(t, path)
	if integ != "ok" {
		t.Fatalf("%s: integrity_check %s", path, integ)
	}
	return ids
}

// writerArgs is the workload: small transactions, big blobs (over NATS's
// max payload), VACUUM, the app's checkpoints of every mode, schema
// changes, rollbacks.
func writerArgs(path string, start, n int, rate string) []string {
	return []string{"-db", path, "-start", fmt.Sprint(start), "-n", fmt.Sprint(n), "-rate", rate,
		"-blob-every", "37", "-blob-size", fmt.Sprint(1200 << 10), "-vacuum-every", "97",
		"-checkpoint-every", "23", "-schema-every", "61", "-rollback-every", "53", "-cache-size", "50"}
}

func promote(t testing.TB, n *node, epoch uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := n.r.Promote(ctx, epoch); err != nil {
		t.Fatalf("promote %s (epoch %d): %v", n.name, epoch, err)
	}
}

// TestGracefulHandoffs moves the leadership round three nodes several
// times while a writer process writes to each leader in turn: after every
// handoff the new leader's database passes integrity_check and holds
// exactly the IDs every earlier writer reported committed, and the
// standbys' replicas hold them too.
func TestGracefulHandoffs(t *testing.T) {
	c := newCluster(t, nil)
	a, b, d := c.start("a"), c.start("b"), c.start("c")
	order := []*node{a, b, d, a, d}
	var committed []int64
	for round, leader := range order {
		promote(t, leader, uint64(round+1))
		ids := dbIDs(t, leader.path)
		if !slices.Equal(ids, committed) {
			t.Fatalf("round %d: %s promoted with %d IDs, %d were committed (first missing/extra: %v)", round, leader.name, len(ids), len(committed), firstDiff(ids, committed))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		w := sqlitetest.StartWriter(t, ctx, writerArgs(leader.path, len(committed)+1, 150, "0")...)
		run := w.Wait(t, false)
		cancel()
		committed = append(committed, run.Commits...)
		var standbys []*node
		for _, n := range []*node{a, b, d} {
			if n != leader {
				standbys = append(standbys, n)
			}
		}
		waitApplied(t, leader, standbys...)
		for _, s := range standbys {
			if ids := replicaIDs(t, s); !slices.Equal(ids, committed) {
				t.Fatalf("round %d: %s's replica holds %d IDs, want %d (%v)", round, s.name, len(ids), len(committed), firstDiff(ids, committed))
			}
		}
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := leader.r.Demote(dctx, true); err != nil {
			t.Fatalf("round %d: handoff: %v", round, err)
		}
		dcancel()
	}
	for _, n := range []*node{a, b, d} {
		if f := n.failures(); len(f) > 0 {
			t.Errorf("%s: leader failures: %v", n.name, f)
		}
	}
}

// TestCrashLosesOnlyWhatWasNotShipped: the leader stops shipping at once
// (as its process would at a SIGKILL) while its writer goes on; the
// successor holds every transaction the log acknowledged before the crash,
// no ID missing in between, and nothing beyond what the log held; the old
// leader, back as a standby, discards its unshipped writes, and when it
// leads again its database is the log's.
func TestCrashLosesOnlyWhatWasNotShipped(t *testing.T) {
	c := newCluster(t, nil)
	a, b := c.start("a"), c.start("b")
	promote(t, a, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Acknowledged: a first writer's transactions, all shipped (Flush).
	acked := sqlitetest.StartWriter(t, ctx, writerArgs(a.path, 1, 200, "0")...).Wait(t, false).Commits
	waitApplied(t, a, b)
	if ids := replicaIDs(t, b); !slices.Equal(ids, acked) {
		t.Fatalf("standby holds %v of the %d acknowledged", firstDiff(ids, acked), len(acked))
	}
	// A second writer goes on through the crash.
	w := sqlitetest.StartWriter(t, ctx, writerArgs(a.path, len(acked)+1, 0, "400")...)
	w.WaitCommits(ctx, 100)
	// The crash: shipping stops at once, the writer goes on a little and
	// is killed.
	if err := a.r.Demote(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	w.WaitCommits(ctx, 150)
	w.Signal(syscall.SIGKILL)
	all := append(slices.Clone(acked), w.Wait(t, true).Commits...)
	promote(t, b, 2)
	ids := dbIDs(t, b.path)
	if len(ids) < len(acked) || !slices.Equal(ids, all[:len(ids)]) {
		t.Fatalf("successor holds %d IDs (%v); %d acknowledged, %d committed: not a prefix covering the acknowledged", len(ids), firstDiff(ids, all), len(acked), len(all))
	}
	aIDs := dbIDs(t, a.path)
	if len(aIDs) <= len(ids) {
		t.Fatalf("the crashed leader's own file holds %d IDs, the successor %d: the test did not leave unshipped writes", len(aIDs), len(ids))
	}
	// The successor writes on; the old leader follows, then leads again.
	w2 := sqlitetest.StartWriter(t, ctx, writerArgs(b.path, int(all[len(all)-1])+1, 100, "0")...)
	more := w2.Wait(t, false).Commits
	want := append(slices.Clone(ids), more...)
	waitApplied(t, b, a)
	if err := b.r.Demote(ctx, true); err != nil {
		t.Fatal(err)
	}
	promote(t, a, 3)
	if got := dbIDs(t, a.path); !slices.Equal(got, want) {
		t.Fatalf("old leader, leading again, holds %v; want the log's %d IDs", firstDiff(got, want), len(want))
	}
}

// TestFencedOldLeader: a leader that was paused (as by SIGSTOP) while a
// new one took over cannot get a single frame into the log: its next
// append is refused, it reports the failure, and every entry after the new
// leader's epoch entry is the new leader's.
func TestFencedOldLeader(t *testing.T) {
	c := newCluster(t, nil)
	a, b := c.start("a"), c.start("b")
	promote(t, a, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := sqlitetest.StartWriter(t, ctx, writerArgs(a.path, 1, 0, "300")...)
	w.WaitCommits(ctx, 100)
	// b takes over while a still believes it leads, and a's writer goes on.
	promote(t, b, 2)
	w.WaitCommits(ctx, 150)
	waitFor(t, 30*time.Second, "the old leader to be fenced", func() bool {
		for _, err := range a.failures() {
			if errors.Is(err, wallog.ErrFenced) {
				return true
			}
		}
		return false
	})
	w.Signal(syscall.SIGKILL)
	w.Wait(t, true)
	log, _ := c.open(ctx)
	tail, err := log.Tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := log.Read(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	sawEpoch2 := false
	for {
		e, err := rd.Next(ctx)
		if err != nil {
			st, _ := c.js.Stream(ctx, "wal_db")
			for seq := tail.LastStreamSeq - 12; seq <= tail.LastStreamSeq; seq++ {
				if m, gerr := st.GetMsg(ctx, seq); gerr == nil {
					t.Logf("%d: %s epoch=%s seq=%s part=%s expect=%s", seq, m.Header.Get("Gcl-Kind"), m.Header.Get("Gcl-Epoch"), m.Header.Get("Gcl-Seq"), m.Header.Get("Gcl-Part"), m.Header.Get("Nats-Expected-Last-Sequence"))
				}
			}
			t.Fatal(err)
		}
		if e.Kind == wallog.KindEpoch && e.Epoch == 2 {
			sawEpoch2 = true
		} else if sawEpoch2 && e.Epoch != 2 {
			t.Fatalf("entry %d of epoch %d (%s, %s) after epoch 2's entry", e.StreamSeq, e.Epoch, e.Kind, e.Node)
		}
		if e.StreamSeq >= tail.LastStreamSeq {
			break
		}
	}
	if !sawEpoch2 {
		t.Fatal("no epoch entry of the new leader")
	}
	if err := a.r.Demote(ctx, false); err != nil {
		t.Fatal(err)
	}
}

func firstDiff(got, want []int64) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("at %d: got %d, want %d", i, got[i], want[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(got), len(want))
}

// TestBadEntriesAreNeverApplied: a standby reads the log through a relay
// that flips a byte in one transaction and replaces a part of a multi-part
// transaction by the next part. Each is detected, nothing of it applied,
// and the standby repairs itself from a snapshot the leader takes on its
// request, ending with the same database as a standby that read the clean
// log.
func TestBadEntriesAreNeverApplied(t *testing.T) {
	c := newCluster(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	relay, err := wallog.Open(ctx, c.js, wallog.Config{Stream: "relay_db", Subject: "relay.db"})
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.start("a"), c.start("b")
	promote(t, a, 1)
	bad := c.startReading("bad", relay)

	// The relay copies the leader's stream message for message (so stream
	// sequences stay equal), damaging the 40th single-part transaction and
	// the second part of the second multi-part one.
	src, err := c.js.OrderedConsumer(ctx, "wal_db", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	damaged := map[string]uint64{}
	relayDone := make(chan error, 1)
	go func() {
		msgs, err := src.Messages()
		if err != nil {
			relayDone <- err
			return
		}
		defer msgs.Stop()
		singles, multis := 0, 0
		var held *nats.Msg // the part to put where the next one goes
		for {
			m, err := msgs.Next(jetstream.NextContext(ctx))
			if err != nil {
				relayDone <- err
				return
			}
			meta, _ := m.Metadata()
			h := nats.Header{}
			for k, v := range m.Headers() {
				if !strings.HasPrefix(k, "Nats-") { // the leader's expected-last-sequence
					h[k] = v
				}
			}
			out := &nats.Msg{Subject: "relay.db", Header: h, Data: append([]byte(nil), m.Data()...)}
			part := m.Headers().Get("Gcl-Part")
			kind := m.Headers().Get("Gcl-Kind")
			switch {
			case kind == "txn" && part == "1/1":
				singles++
				if singles == 40 {
					out.Data[len(out.Data)/2] ^= 0x40
					mu.Lock()
					damaged["corrupt"] = meta.Sequence.Stream
					mu.Unlock()
				}
			case kind == "txn" && len(part) > 2 && part[:2] == "1/":
				multis++
			case kind == "txn" && multis == 2 && len(part) > 2 && part[:2] == "2/":
				held = out
				continue // sent after the next part, in its place
			}
			if held != nil {
				// Part 3 goes where part 2 was, then part 3 again.
				if _, err := c.js.PublishMsg(ctx, out); err != nil {
					relayDone <- err
					return
				}
				mu.Lock()
				damaged["truncated"] = meta.Sequence.Stream - 1
				mu.Unlock()
				held = nil
			}
			ack, err := c.js.PublishMsg(ctx, out)
			if err != nil {
				relayDone <- err
				return
			}
			if ack.Sequence != meta.Sequence.Stream {
				relayDone <- fmt.Errorf("relay at %d, source at %d", ack.Sequence, meta.Sequence.Stream)
				return
			}
		}
	}()

	// Two phases, so that each damage needs its own repair: small
	// transactions first (one is corrupted), then big ones (one loses a
	// part).
	committed := sqlitetest.StartWriter(t, ctx, "-db", a.path, "-n", "100").Wait(t, false).Commits
	waitApplied(t, a, b, bad)
	committed = append(committed, sqlitetest.StartWriter(t, ctx, "-db", a.path, "-start", "101", "-n", "200",
		"-blob-every", "50", "-blob-size", fmt.Sprint(600<<10)).Wait(t, false).Commits...)
	waitApplied(t, a, b, bad)
	select {
	case err := <-relayDone:
		t.Fatalf("relay: %v", err)
	default:
	}
	mu.Lock()
	if len(damaged) != 2 {
		t.Fatalf("the relay damaged %v; want a corrupt and a truncated entry", damaged)
	}
	mu.Unlock()
	for _, n := range []*node{b, bad} {
		if ids := replicaIDs(t, n); !slices.Equal(ids, committed) {
			t.Fatalf("%s holds %v", n.name, firstDiff(ids, committed))
		}
	}
	bad.mu.Lock()
	events := slices.Clone(bad.events)
	bad.mu.Unlock()
	st := bad.r.Status()
	if n := countOf(events, replication.EventBadEntry); st.Resyncs != 2 || n != 2 {
		t.Fatalf("%d resyncs, %d bad-entry events (%v); want one of each per damaged entry", st.Resyncs, n, events)
	}
	t.Logf("damaged %v; %d resyncs", damaged, st.Resyncs)
	if st := b.r.Status(); st.Resyncs != 0 {
		t.Fatalf("the standby on the clean log resynced %d times", st.Resyncs)
	}
}

func countOf(xs []string, x string) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// TestRestoreIntoTheCluster: a snapshot taken earlier becomes the app's
// database everywhere: the leader appends its entry and steps down, the
// next leader's database and the standby's replica hold exactly the
// snapshot's transactions, and writing goes on from there.
func TestRestoreIntoTheCluster(t *testing.T) {
	c := newCluster(t, nil)
	a, b, d := c.start("a"), c.start("b"), c.start("c")
	promote(t, a, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first := sqlitetest.StartWriter(t, ctx, "-db", a.path, "-n", "100").Wait(t, false).Commits
	waitApplied(t, a, b, d)
	snap, err := replication.RequestSnapshot(ctx, c.nc, "repl.db")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Seq != a.r.Status().Seq {
		t.Fatalf("snapshot at seq %d, leader at %d", snap.Seq, a.r.Status().Seq)
	}
	sqlitetest.StartWriter(t, ctx, "-db", a.path, "-start", "101", "-n", "100").Wait(t, false)
	waitApplied(t, a, b, d)

	m, err := replication.RequestRestore(ctx, c.nc, "repl.db", snap.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Reset || m.Name == snap.Name {
		t.Fatalf("restored as %+v", m)
	}
	waitFor(t, 10*time.Second, "the leader to step down", func() bool {
		for _, err := range a.failures() {
			if err != nil && strings.Contains(err.Error(), "restored") {
				return true
			}
		}
		return false
	})
	if err := a.r.Demote(ctx, true); err == nil {
		t.Log("handoff after restore reported no error")
	}
	promote(t, b, 2)
	if ids := dbIDs(t, b.path); !slices.Equal(ids, first) {
		t.Fatalf("after the restore the leader holds %v, want the snapshot's %d IDs", firstDiff(ids, first), len(first))
	}
	more := sqlitetest.StartWriter(t, ctx, "-db", b.path, "-start", "1001", "-n", "50").Wait(t, false).Commits
	want := append(slices.Clone(first), more...)
	waitApplied(t, b, a, d)
	for _, n := range []*node{a, d} {
		if ids := replicaIDs(t, n); !slices.Equal(ids, want) {
			t.Fatalf("%s holds %v", n.name, firstDiff(ids, want))
		}
	}
}

// TestLagEvents: a standby that starts behind reports that it lags, and
// that it caught up once it applies fresh transactions quickly.
func TestLagEvents(t *testing.T) {
	c := newCluster(t, func(cfg *replication.Config) { cfg.LagAlert = 400 * time.Millisecond })
	a := c.start("a")
	promote(t, a, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// 0.6 s of writes before the standby exists: its first entries are
	// older than the alert when it applies them.
	sqlitetest.StartWriter(t, ctx, "-db", a.path, "-n", "60", "-rate", "100").Wait(t, false)
	b := c.start("b")
	waitApplied(t, a, b)
	sqlitetest.StartWriter(t, ctx, "-db", a.path, "-start", "61", "-n", "50", "-rate", "200").Wait(t, false)
	waitApplied(t, a, b)
	waitFor(t, 5*time.Second, "lagging and caught-up events", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		i := slices.Index(b.events, replication.EventLagging)
		return i >= 0 && slices.Contains(b.events[i:], replication.EventCaughtUp)
	})
}

// TestStaleEpochCannotLead: a node promoting with an epoch older than one
// already in the log (it stalled between winning its lease and fencing)
// is refused, and after the next election everything continues: the
// standbys do not wedge on the stale epoch entry.
func TestStaleEpochCannotLead(t *testing.T) {
	c := newCluster(t, nil)
	a, b, d := c.start("a"), c.start("b"), c.start("c")
	promote(t, a, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first := sqlitetest.StartWriter(t, ctx, "-db", a.path, "-n", "50").Wait(t, false).Commits
	waitApplied(t, a, b, d)
	if err := d.r.Promote(ctx, 2); !errors.Is(err, replication.ErrStaleEpoch) {
		t.Fatalf("promotion with a stale epoch: %v, want ErrStaleEpoch", err)
	}
	if err := a.r.Demote(ctx, false); err != nil {
		t.Fatal(err)
	}
	promote(t, b, 4)
	if ids := dbIDs(t, b.path); !slices.Equal(ids, first) {
		t.Fatalf("new leader holds %v", firstDiff(ids, first))
	}
	more := sqlitetest.StartWriter(t, ctx, "-db", b.path, "-start", "51", "-n", "50").Wait(t, false).Commits
	want := append(slices.Clone(first), more...)
	waitApplied(t, b, a, d)
	for _, n := range []*node{a, d} {
		if ids := replicaIDs(t, n); !slices.Equal(ids, want) {
			t.Fatalf("%s holds %v", n.name, firstDiff(ids, want))
		}
	}
}
