//go:build linux

package crashtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ozanturksever/go-cluster/internal/sqlitetest"
	"github.com/ozanturksever/go-cluster/replication"
	"github.com/ozanturksever/go-cluster/replication/apply"
	"github.com/ozanturksever/go-cluster/replication/wallog"
	"github.com/ozanturksever/go-cluster/state"
)

// TestSQLiteFailover: three node processes run the WithSQLite singleton
// "db"; a writer process (internal/sqlitewriter) writes to the current
// leader's database file, and the leadership moves in rounds of three
// kinds, each at least twice:
//
//   - graceful: a writer commits N transactions and exits; the leader steps
//     down (SIGUSR1); the successor's database passes integrity_check and
//     holds exactly every ID ever reported committed (and kept).
//   - kill: a writer commits N and exits, the leader syncs (SIGUSR2, SyncDB):
//     those are acknowledged; a second writer goes on, and the leader and
//     the writer are SIGKILLed. The successor's database passes
//     integrity_check and holds a prefix of the committed IDs (in order, no
//     holes) covering every acknowledged one; the rest (never shipped) is
//     discarded by design. The killed node comes back as a standby.
//   - pause: the leader is SIGSTOPped while a writer writes to its file (an
//     acknowledged point is synced first); another node takes over once the
//     lease expires; the old leader is SIGCONTed, stops acting and follows;
//     the log shows that nothing of an older epoch got in after the new
//     leader's epoch entry.
//
// Each round continues from what the log holds (the successor's IDs). At
// the end one node leads, the others follow the log to its end, their
// replicas hold the expected IDs, and the history of terms never overlaps.
func TestSQLiteFailover(t *testing.T) {
	const ttl = time.Second
	tc := newTestCluster(t, ttl)
	tc.Mode = ModeSQLite
	sqlitetest.WriterPath(t) // build it before anything is timed
	s := newSQLiteRounds(t, tc, 4*time.Minute)
	ids := []string{"n1", "n2", "n3"}
	for _, id := range ids {
		tc.start(id, tc.url)
	}
	for _, id := range ids {
		tc.waitReady(id, 1)
	}
	begin := time.Now()
	for round, kind := range []string{"graceful", "kill", "pause", "graceful", "kill", "pause"} {
		start := time.Now()
		switch kind {
		case "graceful":
			s.graceful(round + 1)
		case "kill":
			s.kill(round + 1)
		case "pause":
			s.pause(round + 1)
		}
		t.Logf("round %d (%s) took %v", round+1, kind, time.Since(start).Round(time.Millisecond))
	}
	s.final()
	t.Logf("all rounds: %v; %d IDs in the log; kept %d of %d reported committed (the rest was never shipped by a crashed or paused leader)",
		time.Since(begin).Round(time.Millisecond), len(s.expected), len(s.expected), s.reported)
	tc.finish()
}

// sqliteRounds is the test's knowledge of the log: expected is exactly
// what the log (so the leader's database) holds, next the writer's next ID.
type sqliteRounds struct {
	t        *testing.T
	tc       *testCluster
	ctx      context.Context
	js       jetstream.JetStream
	layout   state.Layout
	expected []int64
	next     int64
	reported int // IDs reported committed by every writer
	writers  int
}

// writer starts a writer on path from s.next: n transactions (0: until
// killed) at rate per second (0: as fast as it can). The workload is
// replication_test's: small transactions, blobs bigger than a NATS
// message, VACUUM, the app's checkpoints of every mode, schema changes,
// rolled-back transactions that spill into the WAL.
func (s *sqliteRounds) writer(path string, n int, rate string) *sqlitetest.Writer {
	s.writers++
	return sqlitetest.StartWriter(s.t, s.ctx, "-db", path, "-start", fmt.Sprint(s.next), "-n", fmt.Sprint(n), "-rate", rate,
		"-seed", fmt.Sprint(s.writers), "-blob-every", "37", "-blob-size", fmt.Sprint(1200<<10), "-vacuum-every", "97",
		"-checkpoint-every", "23", "-schema-every", "61", "-rollback-every", "53", "-cache-size", "50")
}

// committed checks that a writer's IDs run on from s.next without a gap
// and returns every ID committed so far: the expected ones, then these.
func (s *sqliteRounds) committed(round int, commits []int64) []int64 {
	s.t.Helper()
	for i, id := range commits {
		if id != s.next+int64(i) {
			s.t.Fatalf("round %d: writer reported ID %d at position %d, want %d", round, id, i, s.next+int64(i))
		}
	}
	s.reported += len(commits)
	return append(slices.Clone(s.expected), commits...)
}

// keep makes ids (what the log holds, as the new leader's database shows)
// the expectation; the next writer continues after them.
func (s *sqliteRounds) keep(ids []int64) {
	s.expected = ids
	s.next = 1
	if len(ids) > 0 {
		s.next = ids[len(ids)-1] + 1
	}
}

// dbIDs checks a database's integrity and returns its writer IDs.
func (s *sqliteRounds) dbIDs(what, path string) []int64 {
	s.t.Helper()
	integ, _, ids := sqlitetest.DBState(s.t, path)
	if integ != "ok" {
		s.t.Fatalf("%s (%s): integrity_check: %s", what, path, integ)
	}
	return ids
}

// successor waits for the first term that started after t and returns it.
func (s *sqliteRounds) successor(what string, after time.Time, timeout time.Duration) Interval {
	s.t.Helper()
	var succ Interval
	s.tc.waitFor(what, timeout, func(_ []Event, ivs []Interval) bool {
		var ok bool
		succ, ok = FirstStartAfter(ivs, after)
		return ok
	})
	return succ
}

// sync has the leader sync its database (SIGUSR2) and waits for the
// "synced" line: what was committed before the signal is acknowledged. It
// returns the log's transaction number after it.
func (s *sqliteRounds) sync(round int, node string) uint64 {
	s.t.Helper()
	evs, _, err := s.tc.State()
	if err != nil {
		s.t.Fatal(err)
	}
	synced, failed := Count(evs, KindSynced, node), Count(evs, KindSyncErr, node)
	if err := s.tc.Node(node).Signal(syscall.SIGUSR2); err != nil {
		s.t.Fatal(err)
	}
	var seq uint64
	s.tc.waitFor(node+" to sync its database", 20*time.Second, func(evs []Event, _ []Interval) bool {
		if Count(evs, KindSyncErr, node) > failed {
			s.t.Fatalf("round %d: %s: SyncDB failed (see its stderr)", round, node)
		}
		var got []Event
		for _, e := range evs {
			if e.Kind == KindSynced && e.Node == node {
				got = append(got, e)
			}
		}
		if len(got) > synced {
			seq = got[len(got)-1].Epoch
			return true
		}
		return false
	})
	return seq
}

// checkPrefix: ids (the successor's database) is a prefix of all (every ID
// reported committed, in order) at least as long as acked (which is a
// prefix of all). A writer killed right after a COMMIT returned may not
// have printed it: its next ID, extra, counts as committed too.
func (s *sqliteRounds) checkPrefix(round int, who string, ids, acked, all []int64) {
	s.t.Helper()
	if len(ids) == len(all)+1 && ids[len(ids)-1] == s.next+int64(len(all)-len(s.expected)) {
		s.t.Logf("round %d: %s holds ID %d, committed by the writer just before it was killed (not printed)", round, who, ids[len(ids)-1])
		ids = ids[:len(ids)-1]
	}
	if len(ids) > len(all) || !slices.Equal(ids, all[:len(ids)]) {
		s.t.Fatalf("round %d: %s holds %d IDs, not a prefix of the %d committed (%s); missing: %v; extra: %v",
			round, who, len(ids), len(all), firstDiff(ids, all), summarize(missing(all[:min(len(all), len(ids))], ids)), summarize(missing(ids, all)))
	}
	if len(ids) < len(acked) {
		s.t.Fatalf("round %d: %s holds %d IDs (up to %v), but %d were acknowledged (SyncDB); lost acknowledged IDs: %v",
			round, who, len(ids), lastOf(ids), len(acked), summarize(acked[len(ids):]))
	}
}

// graceful: a writer commits N and exits; the leader steps down; the
// successor holds exactly every ID.
func (s *sqliteRounds) graceful(round int) {
	t, tc := s.t, s.tc
	leader := tc.settledLeader()
	run := s.writer(tc.DBPath(leader.Node), 120, "0").Wait(t, false)
	all := s.committed(round, run.Commits)
	asked := time.Now()
	if err := tc.Node(leader.Node).Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	var prev, succ Interval
	tc.waitFor("the handover", 20*time.Second, func(evs []Event, ivs []Interval) bool {
		if Has(evs, KindStepErr, leader.Node, leader.Epoch) {
			t.Fatalf("round %d: %s failed to step down (see its stderr)", round, leader.Node)
		}
		var ok1, ok2 bool
		prev, ok1 = Find(ivs, leader.Node, leader.Epoch)
		succ, ok2 = FirstStartAfter(ivs, asked)
		return ok1 && !prev.Open && ok2 && Has(evs, KindStepDown, leader.Node, leader.Epoch)
	})
	if succ.Node == leader.Node {
		t.Fatalf("round %d: %s took the lease straight back after stepping down: %v", round, leader.Node, succ)
	}
	ids := s.dbIDs(fmt.Sprintf("round %d: %s's database after the handover", round, succ.Node), tc.DBPath(succ.Node))
	if !slices.Equal(ids, all) {
		t.Fatalf("round %d: graceful handover %s → %s lost or invented transactions: successor holds %d IDs, %d committed (%s); missing: %v; extra: %v",
			round, leader.Node, succ.Node, len(ids), len(all), firstDiff(ids, all), summarize(missing(all, ids)), summarize(missing(ids, all)))
	}
	t.Logf("round %d: graceful: %s (epoch %d) → %s (epoch %d) %v after the request; %d new transactions, %d IDs in total, all there",
		round, leader.Node, leader.Epoch, succ.Node, succ.Epoch, succ.Start.Sub(asked).Round(time.Millisecond), len(run.Commits), len(all))
	s.keep(ids)
}

// kill: acknowledged transactions survive a SIGKILL of the leader; what
// the successor holds is a prefix of what was committed.
func (s *sqliteRounds) kill(round int) {
	t, tc := s.t, s.tc
	leader := tc.settledLeader()
	path := tc.DBPath(leader.Node)
	run := s.writer(path, 120, "0").Wait(t, false)
	acked := s.committed(round, run.Commits)
	s.keep(acked)
	syncSeq := s.sync(round, leader.Node)
	w := s.runningWriter(round, path, "250", 60)
	evs, _, err := tc.State()
	if err != nil {
		t.Fatal(err)
	}
	readies := Count(evs, KindReady, leader.Node)
	killedAt, err := tc.Node(leader.Node).Kill()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	more := w.Wait(t, true).Commits
	all := s.committed(round, more)
	succ := s.successor("a successor of the killed leader", killedAt, 15*time.Second)
	if succ.Node == leader.Node {
		t.Fatalf("round %d: killed node %s active again: %v", round, leader.Node, succ)
	}
	ids := s.dbIDs(fmt.Sprintf("round %d: %s's database after the kill", round, succ.Node), tc.DBPath(succ.Node))
	s.checkPrefix(round, succ.Node+"'s database", ids, acked, all)
	t.Logf("round %d: kill: %s (epoch %d) killed; %s (epoch %d) active %v later; %d acknowledged (log seq %d), %d committed, %d kept (%d unshipped discarded)",
		round, leader.Node, leader.Epoch, succ.Node, succ.Epoch, succ.Start.Sub(killedAt).Round(time.Millisecond),
		len(acked), syncSeq, len(all), len(ids), len(all)-len(ids))
	s.keep(ids)
	// The killed node comes back as a standby.
	tc.start(leader.Node, tc.url)
	tc.waitReady(leader.Node, readies+1)
	s.waitRole(round, leader.Node, replication.RoleStandby, 0, time.Time{})
}

// pause: the leader is SIGSTOPped while its writer goes on; a successor
// takes over at the lease's expiry; the old leader, resumed, cannot get a
// single entry into the log after the successor's epoch entry, stops
// acting and follows.
func (s *sqliteRounds) pause(round int) {
	t, tc := s.t, s.tc
	leader := tc.settledLeader()
	path := tc.DBPath(leader.Node)
	run := s.writer(path, 60, "0").Wait(t, false)
	acked := s.committed(round, run.Commits)
	s.keep(acked)
	syncSeq := s.sync(round, leader.Node)
	w := s.runningWriter(round, path, "200", 40)
	pausedAt, err := tc.Node(leader.Node).Pause()
	if err != nil {
		t.Fatal(err)
	}
	succ := s.successor("a successor of the paused leader", pausedAt, leaseTTL(tc)+10*time.Second)
	if succ.Node == leader.Node {
		t.Fatalf("round %d: paused node %s active again: %v", round, leader.Node, succ)
	}
	resumedAt, err := tc.Node(leader.Node).Resume()
	if err != nil {
		t.Fatal(err)
	}
	// The old leader notices its term is over, and its replication
	// stops leading and follows (the replication step comes after the
	// hooks on the way down: OnPassive, if it ran, is logged by then).
	var old Interval
	tc.waitFor(leader.Node+" to end its paused term after SIGCONT", 10*time.Second, func(_ []Event, ivs []Interval) bool {
		var ok bool
		old, ok = Find(ivs, leader.Node, leader.Epoch)
		return ok && !old.Noticed.IsZero()
	})
	s.waitRole(round, leader.Node, replication.RoleStandby, 0, resumedAt)
	// The app is told, late but told (see TestPausedLeaderOnPassive).
	tc.waitFor(leader.Node+"'s OnPassive for its paused term", 10*time.Second, func(_ []Event, ivs []Interval) bool {
		old, _ = Find(ivs, leader.Node, leader.Epoch)
		return old.Passive
	})
	// The writer goes on a little on the old leader's file (as an app
	// that was not told would), then stops.
	c, _ := w.Committed()
	w.WaitCommits(s.ctx, len(c)+20)
	if err := w.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	soft := &softTB{TB: t}
	more := w.Wait(soft, true).Commits
	if soft.msg != "" {
		t.Logf("round %d: the writer of the paused leader ended on its own: %s", round, soft.msg)
	}
	all := s.committed(round, more)
	entries := s.checkLog(round, succ)
	ids := s.dbIDs(fmt.Sprintf("round %d: %s's database after the pause", round, succ.Node), tc.DBPath(succ.Node))
	s.checkPrefix(round, succ.Node+"'s database", ids, acked, all)
	if tc.Node(leader.Node).Exited() {
		t.Fatalf("round %d: the paused leader %s exited: %v", round, leader.Node, tc.Node(leader.Node).ExitErr())
	}
	t.Logf("round %d: pause: %s (epoch %d) stopped; %s (epoch %d) active %v later; %s resumed and stopped acting %v after SIGCONT; "+
		"%d acknowledged (log seq %d), %d committed, %d kept (%d unshipped discarded); log of %d entries checked",
		round, leader.Node, leader.Epoch, succ.Node, succ.Epoch, succ.Start.Sub(pausedAt).Round(time.Millisecond), leader.Node,
		old.Noticed.Sub(resumedAt).Round(time.Millisecond), len(acked), syncSeq, len(all), len(ids), len(all)-len(ids), entries)
	s.keep(ids)
}

// checkLog reads the whole log: epochs never go down from one entry to the
// next (so nothing of an older epoch follows the successor's epoch entry),
// the last epoch entry is the successor's, and transactions are numbered
// without a gap. It returns the number of entries read.
func (s *sqliteRounds) checkLog(round int, succ Interval) int {
	t := s.t
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	log, err := wallog.Open(ctx, s.js, wallog.Config{Stream: s.layout.WALStream(AppName), Subject: s.layout.WALSubject(AppName)})
	if err != nil {
		t.Fatal(err)
	}
	tail, err := log.Tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := log.Read(ctx, tail.FirstStreamSeq)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var (
		n, bad         int
		maxEpoch       uint64
		lastEpochEntry wallog.Entry
		sawSucc        bool
		lastSeq        uint64
		haveSeq        bool
		errs           []error
	)
	for pos := uint64(0); pos < tail.LastStreamSeq; {
		e, err := rd.Next(ctx)
		var be *wallog.BadEntryError
		if errors.As(err, &be) {
			bad++
			t.Logf("round %d: log: bad entry at stream seq %d (a leader cut off mid-entry?): %v", round, be.StreamSeq, be.Err)
			pos = be.StreamSeq
			continue
		}
		if err != nil {
			t.Fatalf("round %d: reading the log at %d of %d: %v", round, pos, tail.LastStreamSeq, err)
		}
		pos = e.StreamSeq
		n++
		if e.Epoch < maxEpoch {
			what := "an earlier"
			if sawSucc {
				what = "the successor's"
			}
			errs = append(errs, fmt.Errorf("stream seq %d: %s entry of epoch %d from %s after %s epoch %d entry (%s at %d)",
				e.StreamSeq, e.Kind, e.Epoch, e.Node, what, maxEpoch, lastEpochEntry.Node, lastEpochEntry.StreamSeq))
		}
		maxEpoch = max(maxEpoch, e.Epoch)
		switch e.Kind {
		case wallog.KindEpoch:
			// A leader fences before it reads the log to its end: its
			// epoch entry does not say where the transactions stand.
			lastEpochEntry = e
			if e.Epoch == succ.Epoch && e.Node == succ.Node {
				sawSucc = true
			}
		case wallog.KindTxn:
			if haveSeq && e.Seq != lastSeq+1 {
				errs = append(errs, fmt.Errorf("stream seq %d: transaction %d (epoch %d, %s) follows transaction %d", e.StreamSeq, e.Seq, e.Epoch, e.Node, lastSeq))
			}
			lastSeq, haveSeq = e.Seq, true
		case wallog.KindSnapshot:
			lastSeq, haveSeq = e.Seq, true
		}
	}
	if !sawSucc {
		errs = append(errs, fmt.Errorf("no epoch entry of the successor %s (epoch %d) in the log", succ.Node, succ.Epoch))
	} else if lastEpochEntry.Epoch != succ.Epoch || lastEpochEntry.Node != succ.Node {
		errs = append(errs, fmt.Errorf("the last epoch entry is %s's of epoch %d, not the successor's (%s, %d)", lastEpochEntry.Node, lastEpochEntry.Epoch, succ.Node, succ.Epoch))
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("round %d: the log (stream seq %d..%d, %d entries, %d bad):\n%v", round, tail.FirstStreamSeq, tail.LastStreamSeq, n, bad, err)
	}
	return n
}

// statuses reads every node's replication status record.
func (s *sqliteRounds) statuses() map[string]replication.Status {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	kv, err := s.js.KeyValue(ctx, s.layout.ReplicationBucket())
	if err != nil {
		s.t.Fatal(err)
	}
	list, err := replication.ListStatuses(ctx, s.js, kv, AppName)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]replication.Status{}
	for _, st := range list {
		out[st.Node] = st
	}
	return out
}

// waitRole waits until node's status record shows role (and, if seq > 0,
// that it stands at transaction seq), written after after.
func (s *sqliteRounds) waitRole(round int, node, role string, seq uint64, after time.Time) replication.Status {
	s.t.Helper()
	var st replication.Status
	s.tc.waitFor(fmt.Sprintf("round %d: %s's replication role to be %s (seq %d)", round, node, role, seq), 20*time.Second, func([]Event, []Interval) bool {
		var ok bool
		st, ok = s.statuses()[node]
		return ok && st.Role == role && (seq == 0 || st.Seq == seq) && st.Updated.After(after)
	})
	if st.Error != "" && role == replication.RoleStandby {
		s.t.Logf("round %d: %s's status carries an error (kept from an earlier role?): %s", round, node, st.Error)
	}
	return st
}

// final: one last writer on the leader, synced; the standbys follow the
// log to its end; every node's role agrees with the event logs; the
// leader's database and every standby's replica hold exactly the IDs.
func (s *sqliteRounds) final() {
	t, tc := s.t, s.tc
	leader := tc.settledLeader()
	run := s.writer(tc.DBPath(leader.Node), 60, "0").Wait(t, false)
	all := s.committed(0, run.Commits)
	s.keep(all)
	seq := s.sync(0, leader.Node)
	_, ivs, err := tc.State()
	if err != nil {
		t.Fatal(err)
	}
	if act := Active(ivs); len(act) != 1 || act[0].Node != leader.Node {
		t.Fatalf("final: active terms %v, want only %v", act, leader)
	}
	for _, id := range tc.IDs() {
		if tc.Node(id).Exited() {
			t.Fatalf("final: node %s is not running", id)
		}
		role := replication.RoleStandby
		if id == leader.Node {
			role = replication.RoleLeader
		}
		st := s.waitRole(0, id, role, seq, time.Time{})
		if id == leader.Node {
			if st.Epoch != leader.Epoch {
				t.Errorf("final: leader %s's replication epoch is %d, its term's %d", id, st.Epoch, leader.Epoch)
			}
			continue
		}
		if got := s.replicaIDs(id); !slices.Equal(got, all) {
			t.Errorf("final: %s's replica holds %d IDs, want %d (%s); missing: %v; extra: %v",
				id, len(got), len(all), firstDiff(got, all), summarize(missing(all, got)), summarize(missing(got, all)))
		}
	}
	if ids := s.dbIDs("final: the leader's database", tc.DBPath(leader.Node)); !slices.Equal(ids, all) {
		t.Fatalf("final: leader %s's database holds %d IDs, want %d (%s); missing: %v; extra: %v",
			leader.Node, len(ids), len(all), firstDiff(ids, all), summarize(missing(all, ids)), summarize(missing(ids, all)))
	}
	t.Logf("final: %s leads (epoch %d); every node at log transaction %d; %d IDs everywhere", leader.Node, leader.Epoch, seq, len(all))
}

// replicaIDs checks a copy of a standby's replica (it is idle: it has
// applied the log to its end) and returns its IDs.
func (s *sqliteRounds) replicaIDs(node string) []int64 {
	s.t.Helper()
	src := filepath.Join(s.tc.DataDir(node), "state", "replicas", AppName, apply.DBName)
	b, err := os.ReadFile(src)
	if err != nil {
		s.t.Fatal(err)
	}
	cp := filepath.Join(s.t.TempDir(), node+"-replica.db")
	if err := os.WriteFile(cp, b, 0o644); err != nil {
		s.t.Fatal(err)
	}
	return s.dbIDs(node+"'s replica", cp)
}

func leaseTTL(tc *testCluster) time.Duration {
	if tc.LeaseTTL > 0 {
		return tc.LeaseTTL
	}
	return defaultTTL
}

// softTB turns Fatalf into a note (for sqlitetest.Writer.Wait on a writer
// that may have ended on its own while its database was held).
type softTB struct {
	testing.TB
	msg string
}

func (s *softTB) Fatalf(format string, args ...any) { s.msg = fmt.Sprintf(format, args...) }

func firstDiff(got, want []int64) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at %d: got %d, want %d", i, got[i], want[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(got), len(want))
}

// missing lists the IDs of want that got lacks.
func missing(want, got []int64) []int64 {
	have := make(map[int64]bool, len(got))
	for _, id := range got {
		have[id] = true
	}
	var out []int64
	for _, id := range want {
		if !have[id] {
			out = append(out, id)
		}
	}
	return out
}

// summarize prints IDs as ranges.
func summarize(ids []int64) string {
	if len(ids) == 0 {
		return "none"
	}
	var out string
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if out != "" {
			out += ","
		}
		if j == i {
			out += fmt.Sprint(ids[i])
		} else {
			out += fmt.Sprintf("%d-%d", ids[i], ids[j])
		}
		i = j + 1
	}
	return fmt.Sprintf("%d IDs [%s]", len(ids), out)
}

func lastOf(ids []int64) any {
	if len(ids) == 0 {
		return "none"
	}
	return ids[len(ids)-1]
}

// newSQLiteRounds connects to tc's NATS for the rounds' checks of the log;
// the connection and ctx (bounded by timeout) last as long as the test.
func newSQLiteRounds(t *testing.T, tc *testCluster, timeout time.Duration) *sqliteRounds {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	nc, err := nats.Connect(tc.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &sqliteRounds{t: t, tc: tc, ctx: ctx, js: js, next: 1, layout: state.Layout{Platform: tc.Platform}}
}

// runningWriter starts a writer at rate on path that keeps going, and
// returns once it has committed n transactions.
func (s *sqliteRounds) runningWriter(round int, path, rate string, n int) *sqlitetest.Writer {
	w := s.writer(path, 0, rate)
	if got := w.WaitCommits(s.ctx, n); len(got) < n {
		w.Signal(syscall.SIGKILL)
		w.Wait(s.t, true)
		s.t.Fatalf("round %d: the writer committed only %d of %d transactions", round, len(got), n)
	}
	return w
}
