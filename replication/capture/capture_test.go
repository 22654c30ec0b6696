package capture_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/ozanturksever/go-cluster/internal/sqlitetest"
	"github.com/ozanturksever/go-cluster/replication/capture"
	"github.com/ozanturksever/go-cluster/replication/walfile"
	"github.com/ozanturksever/go-cluster/replication/walfile/walfiletest"
)

// app is an in-process writer: its own sql.DB, one connection, BEGIN
// IMMEDIATE, as an app next to a replicator should be.
type app struct {
	t  testing.TB
	db *sql.DB
	id int
}

func openApp(t testing.TB, path string, pragmas ...string) *app {
	t.Helper()
	dsn := path + "?_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	for _, p := range pragmas {
		dsn += "&_pragma=" + p
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	a := &app{t: t, db: db}
	a.exec("CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY, v BLOB)")
	t.Cleanup(func() { db.Close() })
	return a
}

func (a *app) exec(q string, args ...any) {
	a.t.Helper()
	if _, err := a.db.Exec(q, args...); err != nil {
		a.t.Fatalf("%s: %v", q, err)
	}
}

// commit commits one transaction with the next id and a blob of n bytes.
func (a *app) commit(n int) int {
	a.t.Helper()
	a.id++
	a.exec("INSERT INTO log (id, v) VALUES (?, ?)", a.id, walfiletest.Page(n, uint64(a.id)))
	return a.id
}

func (a *app) checkpoint(mode string) (busy, log, done int, d time.Duration, err error) {
	start := time.Now()
	err = a.db.QueryRow("PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &log, &done)
	return busy, log, done, time.Since(start), err
}

// next calls c.Next with a timeout.
func next(t testing.TB, c *capture.Capturer, d time.Duration) (walfile.Txn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return c.Next(ctx)
}

// drain applies every transaction Next returns until it has nothing for
// quiet.
func drain(t testing.TB, c *capture.Capturer, r *replica, quiet time.Duration) int {
	t.Helper()
	n := 0
	for {
		txn, err := next(t, c, quiet)
		if errors.Is(err, context.DeadlineExceeded) {
			return n
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		r.apply(t, txn)
		n++
	}
}

// checkReplica compares a copy of the replica with the source database.
func checkReplica(t testing.TB, dir, replicaPath, srcPath string) {
	t.Helper()
	integ, got, _ := sqlitetest.DBState(t, copyFile(t, replicaPath, dir))
	if integ != "ok" {
		t.Fatalf("replica integrity_check: %s", integ)
	}
	// Through SQLite, in this process: a copy of the file alone would
	// miss what is in the WAL. (SQLite keeps its descriptors of the file
	// open while other connections of the process hold locks.)
	_, want, _ := sqlitetest.DBState(t, srcPath)
	if got != want {
		t.Fatalf("replica content differs from the source")
	}
}

func TestCaptureBasic(t *testing.T) {
	for _, notify := range []bool{true, false} {
		t.Run(fmt.Sprintf("inotify=%v", notify), func(t *testing.T) {
			dir := t.TempDir()
			src, rep := filepath.Join(dir, "src.db"), filepath.Join(dir, "replica.db")
			a := openApp(t, src, "wal_autocheckpoint(0)")
			a.commit(100)
			opts := []capture.Option{capture.WithCheckpointThreshold(0)}
			if !notify {
				opts = append(opts, capture.WithoutInotify())
			}
			ctx := context.Background()
			c, err := capture.Open(ctx, src, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.PageSize() != 4096 {
				t.Fatalf("page size %d", c.PageSize())
			}
			pos, err := snapshot(ctx, c, rep)
			if err != nil {
				t.Fatal(err)
			}
			if pos != c.Position() || pos.Offset <= walfile.HeaderSize {
				t.Fatalf("snapshot position %+v, Position %+v", pos, c.Position())
			}
			r := openReplica(t, rep, c.PageSize())
			defer r.close()
			// Nothing new yet: Next waits.
			if _, err := next(t, c, 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Next with nothing committed: %v", err)
			}
			for i := range 50 {
				a.commit(10 + i*100)
				txn, err := next(t, c, 5*time.Second)
				if err != nil {
					t.Fatalf("txn %d: %v", i, err)
				}
				if txn.Start != pos.Offset || txn.Pre != pos.Checksum {
					t.Fatalf("txn %d does not continue %+v", i, pos)
				}
				pos = c.Position()
				r.apply(t, txn)
			}
			a.commit(3 << 20) // > 1 MB in one transaction
			txn, err := next(t, c, 5*time.Second)
			if err != nil || len(txn.Frames) < 700 {
				t.Fatalf("big txn: %v, %d frames", err, len(txn.Frames))
			}
			r.apply(t, txn)
			checkReplica(t, dir, rep, src)
		})
	}
}

// TestCaptureCheckpointRestart: the Capturer's checkpoint lets the app's
// next write restart the WAL, and capture follows into the new generation.
func TestCaptureCheckpointRestart(t *testing.T) {
	dir := t.TempDir()
	src, rep := filepath.Join(dir, "src.db"), filepath.Join(dir, "replica.db")
	a := openApp(t, src, "wal_autocheckpoint(0)")
	ctx := context.Background()
	c, err := capture.Open(ctx, src, capture.WithCheckpointThreshold(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := snapshot(ctx, c, rep); err != nil {
		t.Fatal(err)
	}
	r := openReplica(t, rep, c.PageSize())
	defer r.close()
	salts := map[walfile.Salt]bool{}
	for round := range 5 {
		for range 20 {
			a.commit(500)
		}
		for range 20 {
			txn, err := next(t, c, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			salts[txn.Salt] = true
			r.apply(t, txn)
		}
		res, err := c.Checkpoint(ctx)
		if err != nil {
			t.Fatalf("round %d: Checkpoint: %v", round, err)
		}
		if res.Busy || res.Log != res.Checkpointed {
			t.Fatalf("round %d: checkpoint %+v", round, res)
		}
	}
	checkReplica(t, dir, rep, src)
	st := c.Stats()
	if len(salts) != 5 || st.Generations != 4 {
		t.Fatalf("%d salts, %d generations followed; want 5, 4", len(salts), st.Generations)
	}
	t.Logf("stats %+v", st)
}

// TestCaptureAppCheckpoints: the app runs its own checkpoints of every
// mode while the Capturer pins the WAL; capture goes on without losing
// continuity. The outcome of each mode is logged (see the package doc).
func TestCaptureAppCheckpoints(t *testing.T) {
	dir := t.TempDir()
	src, rep := filepath.Join(dir, "src.db"), filepath.Join(dir, "replica.db")
	a := openApp(t, src, "wal_autocheckpoint(0)")
	a.exec("PRAGMA busy_timeout=200")
	ctx := context.Background()
	c, err := capture.Open(ctx, src, capture.WithCheckpointThreshold(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := snapshot(ctx, c, rep); err != nil {
		t.Fatal(err)
	}
	r := openReplica(t, rep, c.PageSize())
	defer r.close()
	for _, afterOurs := range []bool{false, true} {
		for _, mode := range []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"} {
			for range 5 {
				a.commit(2000)
			}
			drain(t, c, r, 100*time.Millisecond)
			if afterOurs {
				// Right after the Capturer's checkpoint: the pin is on
				// read lock 0 and the WAL wholly backfilled.
				if _, err := c.Checkpoint(ctx); err != nil {
					t.Fatal(err)
				}
			}
			busy, log, done, d, err := a.checkpoint(mode)
			t.Logf("app %-8s (after the Capturer's checkpoint: %-5v): busy=%d log=%d checkpointed=%d in %v err=%v",
				mode, afterOurs, busy, log, done, d.Round(time.Millisecond), err)
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				a.commit(100)
			}
			if n := drain(t, c, r, 100*time.Millisecond); n != 3 {
				t.Fatalf("%s: %d txns after the app's checkpoint, want 3", mode, n)
			}
		}
	}
	// VACUUM and schema changes are transactions like any other.
	a.exec("CREATE TABLE other (x)")
	a.exec("INSERT INTO other SELECT id FROM log")
	a.exec("DELETE FROM log WHERE id % 2 = 0")
	a.exec("VACUUM")
	a.exec("DROP TABLE other")
	if n := drain(t, c, r, 100*time.Millisecond); n != 5 {
		t.Fatalf("%d txns for 5 statements", n)
	}
	checkReplica(t, dir, rep, src)
	t.Logf("stats %+v", c.Stats())
}

// TestCaptureResume: a new Capturer resumes from the Position of an
// earlier one while the WAL has not restarted; after a restart it reports
// ErrLostContinuity, and a Snapshot recovers.
func TestCaptureResume(t *testing.T) {
	dir := t.TempDir()
	src, rep := filepath.Join(dir, "src.db"), filepath.Join(dir, "replica.db")
	a := openApp(t, src, "wal_autocheckpoint(0)")
	a.commit(100)
	ctx := context.Background()
	c, err := capture.Open(ctx, src, capture.WithCheckpointThreshold(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot(ctx, c, rep); err != nil {
		t.Fatal(err)
	}
	r := openReplica(t, rep, c.PageSize())
	defer r.close()
	for range 5 {
		a.commit(300)
	}
	drain(t, c, r, 100*time.Millisecond)
	pos := c.Position()
	c.Close()

	// Continued WAL: the transactions committed in between come first.
	for range 7 {
		a.commit(300)
	}
	c, err = capture.Open(ctx, src, capture.WithResume(pos), capture.WithCheckpointThreshold(0))
	if err != nil {
		t.Fatal(err)
	}
	if n := drain(t, c, r, 100*time.Millisecond); n != 7 {
		t.Fatalf("resumed: %d txns, want 7", n)
	}
	checkReplica(t, dir, rep, src)
	pos = c.Position()
	c.Close()

	// Restarted WAL: nobody pinned it, the app's TRUNCATE checkpoint
	// emptied it.
	a.commit(300)
	if busy, _, _, _, err := a.checkpoint("TRUNCATE"); err != nil || busy != 0 {
		t.Fatalf("TRUNCATE: busy %d, %v", busy, err)
	}
	a.commit(300)
	c, err = capture.Open(ctx, src, capture.WithResume(pos), capture.WithCheckpointThreshold(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := next(t, c, time.Second); !errors.Is(err, capture.ErrLostContinuity) {
		t.Fatalf("after a restart: %v, want ErrLostContinuity", err)
	}
	if _, err := c.Checkpoint(ctx); !errors.Is(err, capture.ErrLostContinuity) {
		t.Fatalf("Checkpoint after lost continuity: %v", err)
	}
	r.close()
	if _, err := snapshot(ctx, c, rep); err != nil {
		t.Fatal(err)
	}
	r = openReplica(t, rep, c.PageSize())
	a.commit(300)
	if n := drain(t, c, r, 100*time.Millisecond); n != 1 {
		t.Fatalf("after the new snapshot: %d txns", n)
	}
	checkReplica(t, dir, rep, src)
}

// TestCaptureWriterProcess captures while another process writes with big
// blobs, VACUUM, checkpoints of every mode, schema changes and rolled-back
// transactions, applies every transaction to a replica made by Snapshot,
// and at the end compares the replica with the source and with the IDs the
// writer reported committed.
func TestCaptureWriterProcess(t *testing.T) {
	n := 1500
	if testing.Short() {
		n = 400
	}
	// Flat out: the writer commits back to back, the hardest case for
	// the barrier. Paced: 500 transactions a second.
	t.Run("flat-out", func(t *testing.T) { testWriterProcess(t, n, "0") })
	t.Run("paced", func(t *testing.T) { testWriterProcess(t, n/2, "500") })
}

func testWriterProcess(t *testing.T, n int, rate string) {
	dir := t.TempDir()
	src, rep := filepath.Join(dir, "src.db"), filepath.Join(dir, "replica.db")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	sqlitetest.StartWriter(t, ctx, "-db", src, "-init").Wait(t, false)

	c, err := capture.Open(ctx, src, capture.WithCheckpointThreshold(512<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := snapshot(ctx, c, rep); err != nil {
		t.Fatal(err)
	}
	r := openReplica(t, rep, c.PageSize())
	defer func() { r.close() }()

	w := sqlitetest.StartWriter(t, ctx, "-db", src, "-n", strconv.Itoa(n), "-seed", "7", "-rate", rate,
		"-blob-every", "97", "-blob-size", strconv.Itoa(1536<<10),
		"-vacuum-every", "251", "-checkpoint-every", "23", "-schema-every", "31",
		"-rollback-every", "41", "-cache-size", "40")

	var (
		mu        sync.Mutex
		applied   int
		lost      int
		frames    int
		maxFrames int
		checks    int
	)
	stop := make(chan struct{})
	consumerDone := make(chan error, 1)
	go func() {
		consumerDone <- func() error {
			quietSince := time.Time{}
			for {
				nctx, ncancel := context.WithTimeout(ctx, 200*time.Millisecond)
				txn, err := c.Next(nctx)
				ncancel()
				if errors.Is(err, context.DeadlineExceeded) {
					select {
					case <-stop:
						if quietSince.IsZero() {
							quietSince = time.Now()
						}
						if time.Since(quietSince) > 500*time.Millisecond {
							return nil
						}
					default:
					}
					continue
				}
				quietSince = time.Time{}
				if errors.Is(err, capture.ErrLostContinuity) {
					t.Logf("lost continuity: %v", err)
					mu.Lock()
					lost++
					mu.Unlock()
					r.close()
					if _, err := snapshot(ctx, c, rep); err != nil {
						return err
					}
					r = openReplica(t, rep, c.PageSize())
					continue
				}
				if err != nil {
					return err
				}
				r.apply(t, txn)
				mu.Lock()
				applied++
				frames += len(txn.Frames)
				maxFrames = max(maxFrames, len(txn.Frames))
				doCheck := applied%300 == 0
				mu.Unlock()
				if doCheck {
					// The replica is a consistent database after every
					// transaction.
					integ, _, _ := sqlitetest.DBState(t, copyFile(t, rep, dir))
					if integ != "ok" {
						return fmt.Errorf("replica after %d txns: integrity_check %s", applied, integ)
					}
					checks++
				}
			}
		}()
	}()

	run := w.Wait(t, false)
	// Everything the writer committed is in the WAL now: read it all.
	if _, err := c.Checkpoint(ctx); err != nil {
		t.Fatalf("final Checkpoint: %v", err)
	}
	close(stop)
	if err := <-consumerDone; err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	for mode, outs := range run.Checkpoints {
		busy := 0
		for _, o := range outs {
			if strings.Contains(o, "busy=1") {
				busy++
			}
			if !strings.Contains(o, "err=<nil>") {
				t.Errorf("writer checkpoint %s: %s", mode, o)
			}
		}
		t.Logf("writer %-8s checkpoints: %d, busy %d; e.g. %s", mode, len(outs), busy, outs[len(outs)-1])
	}
	// Beyond "done N" (the writer's "ready" is in run.Ready, not Lines).
	if len(run.Lines) > 1 {
		t.Logf("writer said: %q", run.Lines)
	}
	t.Logf("writer: %d commits, %d vacuums, %d rollbacks; capture: %d txns applied (%d frames, largest %d), %d lost continuity, %d integrity checks on the way",
		len(run.Commits), run.Vacuums, run.Rollbacks, applied, frames, maxFrames, lost, checks)
	t.Logf("capturer stats: %+v", st)
	if st.Barriers > 0 {
		t.Logf("barriers: %d, mean %v, max %v", st.Barriers, st.BarrierTotal/time.Duration(st.Barriers), st.BarrierMax)
	}
	if lost != 0 {
		t.Errorf("continuity lost %d times", lost)
	}
	if len(run.Commits) != n {
		t.Fatalf("writer committed %d of %d", len(run.Commits), n)
	}

	integ, got, ids := sqlitetest.DBState(t, copyFile(t, rep, dir))
	if integ != "ok" {
		t.Fatalf("replica integrity_check: %s", integ)
	}
	if !slices.Equal(ids, run.Commits) {
		have := map[int64]bool{}
		for _, id := range ids {
			have[id] = true
		}
		var missing []int64
		for _, id := range run.Commits {
			if !have[id] {
				missing = append(missing, id)
			}
		}
		t.Fatalf("replica has %d log rows, the writer committed %d; missing %v", len(ids), len(run.Commits), missing)
	}
	_, want, _ := sqlitetest.DBState(t, src)
	if got != want {
		t.Fatal("replica content differs from the source")
	}
}

// TestCaptureTxnInProgress: a transaction that spills many megabytes into
// the WAL before it commits (small page cache) is returned whole, once,
// after its commit, and nothing of a rolled-back one is.
func TestCaptureTxnInProgress(t *testing.T) {
	dir := t.TempDir()
	src, rep := filepath.Join(dir, "src.db"), filepath.Join(dir, "replica.db")
	a := openApp(t, src, "wal_autocheckpoint(0)", "cache_size(20)")
	ctx := context.Background()
	c, err := capture.Open(ctx, src, capture.WithCheckpointThreshold(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := snapshot(ctx, c, rep); err != nil {
		t.Fatal(err)
	}
	r := openReplica(t, rep, c.PageSize())
	defer r.close()

	got := make(chan walfile.Txn, 10)
	errc := make(chan error, 1)
	go func() {
		for {
			txn, err := c.Next(ctx)
			if err != nil {
				errc <- err
				return
			}
			got <- txn
		}
	}()
	for _, commit := range []bool{false, true} {
		tx, err := a.db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for i := range 16 {
			if _, err := tx.Exec("INSERT INTO log (id, v) VALUES (?, ?)", 100000+i, walfiletest.Page(1<<20, uint64(i))); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
			select {
			case txn := <-got:
				t.Fatalf("a transaction of %d frames returned before the commit", len(txn.Frames))
			default:
			}
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	a.commit(10)
	for _, want := range []int{4000, 1} {
		select {
		case txn := <-got:
			if len(txn.Frames) < want {
				t.Fatalf("txn of %d frames, want at least %d", len(txn.Frames), want)
			}
			r.apply(t, txn)
		case err := <-errc:
			t.Fatal(err)
		case <-time.After(10 * time.Second):
			t.Fatal("no transaction")
		}
	}
	select {
	case txn := <-got:
		t.Fatalf("an extra transaction of %d frames", len(txn.Frames))
	case <-time.After(100 * time.Millisecond):
	}
	checkReplica(t, dir, rep, src)
}

// TestCheck: quick_check of the live database runs while Next goes on,
// and sees what is committed, WAL included.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	a := openApp(t, src, "wal_autocheckpoint(0)")
	a.commit(100)
	ctx := context.Background()
	c, err := capture.Open(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a.commit(5000) // in the WAL only
	msgs, err := c.Check(ctx)
	if err != nil || msgs != nil {
		t.Fatalf("Check: %v, %v", msgs, err)
	}
	if _, err := next(t, c, 5*time.Second); err != nil {
		t.Fatalf("Next after Check: %v", err)
	}
	c.Close()
	if _, err := c.Check(ctx); !errors.Is(err, capture.ErrClosed) {
		t.Fatalf("Check after Close: %v", err)
	}
}
