package cluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/internal/sqlitetest"
)

// TestSQLiteFollowsTheLeader runs a WithSQLite singleton on three
// platforms. A writer process writes to the leader's database; each
// step-down hands the database over: the successor's OnActive finds it at
// its path holding every committed transaction, status records show one
// leader and caught-up standbys, and SyncDB works only on the leader.
func TestSQLiteFollowsTheLeader(t *testing.T) {
	url := startNATS(t)
	dir := t.TempDir()
	type seen struct {
		node string
		ids  []int64
	}
	var mu sync.Mutex
	var activations []seen
	var kinds []string
	apps := map[string]*Application{}
	paths := map[string]string{}
	for _, n := range []string{"n1", "n2", "n3"} {
		path := filepath.Join(dir, n, "data", "app.db")
		a := NewApp("db", Singleton(), WithSQLite(path))
		a.OnActive(func(ctx context.Context) error {
			// The database is in place before the app starts.
			_, _, ids := sqlitetest.DBState(t, path)
			mu.Lock()
			activations = append(activations, seen{n, ids})
			mu.Unlock()
			return nil
		})
		apps[n], paths[n] = a, path
		runPlatform(t, url, "sq", n, []*Application{a}, WithStateDir(filepath.Join(dir, n, "state")),
			WithEventObserver(func(e Event) {
				mu.Lock()
				kinds = append(kinds, e.Kind)
				mu.Unlock()
			}))
	}
	leader := func() string {
		for n, a := range apps {
			if a.Election().IsLeader() {
				if st, ok := a.ReplicationStatus(); ok && st.Role == "leader" {
					return n
				}
			}
		}
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var committed []int64
	for round := range 3 {
		eventually(t, 10*time.Second, "a replication leader", func() bool { return leader() != "" })
		l := leader()
		run := sqlitetest.StartWriter(t, ctx, "-db", paths[l], "-start", fmt.Sprint(len(committed)+1), "-n", "120",
			"-blob-every", "40", "-vacuum-every", "50", "-checkpoint-every", "30").Wait(t, false)
		committed = append(committed, run.Commits...)
		if err := apps[l].SyncDB(ctx); err != nil {
			t.Fatalf("round %d: SyncDB on the leader: %v", round, err)
		}
		for n, a := range apps {
			if n != l {
				if err := a.SyncDB(ctx); err == nil {
					t.Fatalf("SyncDB on standby %s succeeded", n)
				}
			}
		}
		eventually(t, 20*time.Second, "standby status records caught up", func() bool {
			st, err := apps[l].platform.ReplicationStatuses(ctx, "db")
			if err != nil || len(st) != 3 {
				return false
			}
			leaders := 0
			for _, s := range st {
				if s.Role == "leader" {
					leaders++
				}
			}
			want, _ := apps[l].ReplicationStatus()
			for _, s := range st {
				if s.Role == "standby" && s.Seq != want.Seq {
					return false
				}
			}
			return leaders == 1
		})
		if err := apps[l].Election().StepDown(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "a new leader", func() bool { n := leader(); return n != "" && n != l })
		mu.Lock()
		last := activations[len(activations)-1]
		mu.Unlock()
		if !slices.Equal(last.ids, committed) {
			t.Fatalf("round %d: %s's OnActive found %d IDs, %d committed", round, last.node, len(last.ids), len(committed))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, k := range []string{EventReplicationPromoted, EventReplicationHandoff, EventReplicationBootstrapped} {
		if !slices.Contains(kinds, k) {
			t.Errorf("no %s event (%v)", k, kinds)
		}
	}
}

// TestSQLiteSynchronousDB: with SQLiteSynchronous, a commit through DB()
// returns once the standby's replica holds it; without a standby it
// reports ErrNoStandby (the row is committed and in the log); on the
// standby, DB() refuses to write.
func TestSQLiteSynchronousDB(t *testing.T) {
	url := startNATS(t)
	dir := t.TempDir()
	newApp := func(n string) *Application {
		return NewApp("db", Singleton(), WithSQLite(filepath.Join(dir, n, "app.db")), SQLiteSynchronous())
	}
	a1 := newApp("n1")
	runPlatform(t, url, "sy", "n1", []*Application{a1}, WithStateDir(filepath.Join(dir, "n1", "state")))
	eventually(t, 10*time.Second, "n1 to lead", func() bool {
		st, ok := a1.ReplicationStatus()
		return ok && st.Role == "leader"
	})
	db, err := a1.DB()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); !errors.Is(err, ErrNoStandby) {
		t.Fatalf("commit without a standby: %v, want ErrNoStandby", err)
	}
	a2 := newApp("n2")
	runPlatform(t, url, "sy", "n2", []*Application{a2}, WithStateDir(filepath.Join(dir, "n2", "state")))
	eventually(t, 10*time.Second, "n2 to follow", func() bool {
		st, ok := a2.ReplicationStatus()
		return ok && st.Role == "standby"
	})
	replica := filepath.Join(dir, "n2", "state", "replicas", "db", "replica.db")
	for i := 1; i <= 20; i++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO t (id, v) VALUES (?, 'x')", i); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		// The commit returned: the standby's replica holds the row.
		if got := maxID(t, replica); got != i {
			t.Fatalf("after commit %d the standby's replica holds up to %d", i, got)
		}
	}
	// An autocommit INSERT ... RETURNING commits when its rows are done:
	// synchronous too.
	var id int
	if err := db.QueryRowContext(ctx, "INSERT INTO t (id, v) VALUES (21, 'r') RETURNING id").Scan(&id); err != nil || id != 21 {
		t.Fatalf("INSERT ... RETURNING: %d, %v", id, err)
	}
	if got := maxID(t, replica); got != 21 {
		t.Fatalf("after INSERT ... RETURNING the standby's replica holds up to %d", got)
	}
	// On the standby every write is refused at its commit, however begun.
	db2, err := a2.DB()
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if _, err := db2.ExecContext(ctx, "CREATE TABLE local (x)"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("autocommit write on the standby: %v, want ErrNotLeader", err)
	}
	conn, err := db2.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "CREATE TABLE local (x)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("BEGIN ... COMMIT on the standby: %v, want ErrNotLeader", err)
	}
}

// maxID reads max(id) of table t from a copy of a replica file.
func maxID(t *testing.T, replica string) int {
	t.Helper()
	b, err := os.ReadFile(replica)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", cp)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n sql.NullInt64
	if err := db.QueryRow("SELECT max(id) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return int(n.Int64)
}

// BenchmarkSQLiteSynchronousCommit: one small transaction through DB()
// with SQLiteSynchronous, leader and standby on this machine: the commit
// returns once the standby's replica holds it durably.
func BenchmarkSQLiteSynchronousCommit(b *testing.B) {
	url := startNATS(b)
	dir := b.TempDir()
	apps := map[string]*Application{}
	for _, n := range []string{"n1", "n2"} {
		apps[n] = NewApp("db", Singleton(), WithSQLite(filepath.Join(dir, n, "app.db")), SQLiteSynchronous())
		runPlatform(b, url, "sb", n, []*Application{apps[n]}, WithStateDir(filepath.Join(dir, n, "state")))
	}
	var leader, standby *Application
	eventually(b, 10*time.Second, "a leader and a following standby", func() bool {
		leader, standby = nil, nil
		for _, a := range apps {
			st, _ := a.ReplicationStatus()
			switch st.Role {
			case "leader":
				leader = a
			case "standby":
				standby = a
			}
		}
		return leader != nil && standby != nil
	})
	db, err := leader.DB()
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := db.ExecContext(ctx, "INSERT INTO t (id, v) VALUES (?, randomblob(100))", i+1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/commit")
}

// BenchmarkSQLiteHandoff: a step-down of a WithSQLite leader, from the
// StepDown call to the successor's OnActive, with the database (about
// 2 MB) handed over: the last transactions shipped and applied, the log
// fenced, the replica checked and installed, the capture opened.
func BenchmarkSQLiteHandoff(b *testing.B) {
	url := startNATS(b)
	dir := b.TempDir()
	active := make(chan string, 16)
	apps := map[string]*Application{}
	for _, n := range []string{"n1", "n2"} {
		a := NewApp("db", Singleton(), WithSQLite(filepath.Join(dir, n, "app.db")))
		a.OnActive(func(context.Context) error { active <- n; return nil })
		apps[n] = a
		runPlatform(b, url, "hb", n, []*Application{a}, WithStateDir(filepath.Join(dir, n, "state")))
	}
	leader := <-active
	ctx := context.Background()
	sqlitetest.StartWriter(b, ctx, "-db", filepath.Join(dir, leader, "app.db"), "-n", "2000", "-small").Wait(b, false)
	var times []time.Duration
	b.ResetTimer()
	for range b.N {
		// The standby follows again after its last term.
		eventually(b, 10*time.Second, "a following standby", func() bool {
			for n, a := range apps {
				if st, _ := a.ReplicationStatus(); n != leader && st.Role != "standby" {
					return false
				}
			}
			return true
		})
		start := time.Now()
		if err := apps[leader].Election().StepDown(ctx); err != nil {
			b.Fatal(err)
		}
		leader = <-active
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99_ms")
}

// TestSQLiteDBAcrossTerms: a DB() handle kept while leadership goes away
// and comes back writes to the database of the current term, not to the
// file the re-promotion replaced.
func TestSQLiteDBAcrossTerms(t *testing.T) {
	url := startNATS(t)
	dir := t.TempDir()
	apps := map[string]*Application{}
	for _, n := range []string{"n1", "n2"} {
		apps[n] = NewApp("db", Singleton(), WithSQLite(filepath.Join(dir, n, "app.db")))
		runPlatform(t, url, "at", n, []*Application{apps[n]}, WithStateDir(filepath.Join(dir, n, "state")))
	}
	role := func(n string) string { st, _ := apps[n].ReplicationStatus(); return st.Role }
	eventually(t, 10*time.Second, "a leader", func() bool { return role("n1") == "leader" || role("n2") == "leader" })
	first, other := "n1", "n2"
	if role("n2") == "leader" {
		first, other = "n2", "n1"
	}
	db, err := apps[first].DB()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO t (id) VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	// Away and back: the re-promotion installs a new file at the path.
	for _, n := range []string{first, other} {
		eventually(t, 10*time.Second, n+" leads, the other follows", func() bool {
			o := first
			if n == first {
				o = other
			}
			return role(n) == "leader" && role(o) == "standby"
		})
		if err := apps[n].Election().StepDown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, first+" to lead again", func() bool { return role(first) == "leader" && role(other) == "standby" })
	if _, err := db.ExecContext(ctx, "INSERT INTO t (id) VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	if err := apps[first].SyncDB(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the standby to hold row 2", func() bool {
		return maxID(t, filepath.Join(dir, other, "state", "replicas", "db", "replica.db")) == 2
	})
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("the old handle sees %d rows (%v), want 2", n, err)
	}
}
