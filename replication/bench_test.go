//go:build linux

package replication_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/internal/sqlitetest"
	"github.com/ozanturksever/go-cluster/replication"
	"github.com/ozanturksever/go-cluster/replication/wallog"
)

// BenchmarkReplicationLag: a writer process commits small transactions
// (one row into each of two tables) to the leader's database, at 1,000 a
// second and flat out, for 5 s; one standby applies them. The lag of a
// transaction is from the moment the writer's "commit" line (printed after
// COMMIT returned) is read to the moment the standby's replica holds it
// durably (ApplyBatch returned: fsynced, position written). Reported:
// p50/p99/max lag in ms, transactions/s, WAL MB/s shipped.
func BenchmarkReplicationLag(b *testing.B) {
	for _, rate := range []string{"1000", "max"} {
		b.Run("rate="+rate, func(b *testing.B) {
			for range b.N {
				benchLag(b, rate, 5*time.Second)
			}
		})
	}
}

func benchLag(b *testing.B, rate string, d time.Duration) {
	var mu sync.Mutex
	type applied struct {
		seq     uint64
		at      time.Time
		shipped time.Time // when the leader began to append it
	}
	var log []applied
	var bytes uint64
	c := newCluster(b, func(cfg *replication.Config) {
		if cfg.Node != "standby" {
			return
		}
		cfg.Applied = func(e wallog.Entry, _ time.Duration) {
			now := time.Now()
			mu.Lock()
			log = append(log, applied{e.Seq, now, e.Time})
			bytes = e.Bytes
			mu.Unlock()
		}
	})
	leader, standby := c.start("leader"), c.start("standby")
	promote(b, leader, 1)
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	sqlitetest.StartWriter(b, ctx, "-db", leader.path, "-init").Wait(b, false)
	waitApplied(b, leader, standby)
	base, err := leader.r.Flush(ctx)
	if err != nil {
		b.Fatal(err)
	}
	mu.Lock()
	bytes0 := bytes
	mu.Unlock()
	r := "0"
	if rate != "max" {
		r = rate
	}
	start := time.Now()
	run := sqlitetest.StartWriter(b, ctx, "-db", leader.path, "-small", "-rate", r, "-duration", d.String()).Wait(b, false)
	waitApplied(b, leader, standby)
	elapsed := run.CommitTimes[len(run.CommitTimes)-1].Sub(start)
	mu.Lock()
	defer mu.Unlock()
	lags := make([]float64, 0, len(run.Commits))
	// commit → the leader begins to append it (for a batch's last entry
	// only): the capture's share of the lag. Measured from when this
	// process read the writer's "commit" line, it can be a little
	// negative: the leader may see the commit before the line is read.
	var toShip []float64
	j := 0
	for i, at := range run.CommitTimes {
		seq := base.Seq + uint64(i) + 1
		for j < len(log) && log[j].seq < seq {
			j++
		}
		if j == len(log) {
			b.Fatalf("transaction %d (seq %d) never applied", i, seq)
		}
		lags = append(lags, float64(log[j].at.Sub(at).Microseconds())/1000)
		if log[j].seq == seq {
			toShip = append(toShip, float64(log[j].shipped.Sub(at).Microseconds())/1000)
		}
	}
	slices.Sort(toShip)
	if len(toShip) > 0 {
		b.ReportMetric(toShip[len(toShip)/2], "p50_to_leader_ms")
	}
	slices.Sort(lags)
	pct := func(p float64) float64 { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(lags[len(lags)-1], "max_ms")
	b.ReportMetric(float64(len(lags))/elapsed.Seconds(), "txn/s")
	b.ReportMetric(float64(bytes-bytes0)/elapsed.Seconds()/1e6, "WAL_MB/s")
}

// BenchmarkPromote: time for a standby to become the leader after the old
// leader stopped without a handoff (a crash): fence the log, apply what it
// had not applied yet, quick_check, install the replica at the app's path,
// open the capture. The database holds 20,000 writer transactions (about
// 20 MB); the standby is caught up but for the last second of writes.
func BenchmarkPromote(b *testing.B) {
	c := newCluster(b, nil)
	a, s := c.start("a"), c.start("s")
	promote(b, a, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sqlitetest.StartWriter(b, ctx, "-db", a.path, "-n", "20000").Wait(b, false)
	waitApplied(b, a, s)
	leader, standby := a, s
	epoch := uint64(1)
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		w := sqlitetest.StartWriter(b, ctx, "-db", leader.path, "-start", fmt.Sprint(1_000_000*epoch), "-n", "1000", "-rate", "1000")
		w.Wait(b, false)
		if _, err := leader.r.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		if err := leader.r.Demote(ctx, false); err != nil {
			b.Fatal(err)
		}
		epoch++
		b.StartTimer()
		start := time.Now()
		promote(b, standby, epoch)
		total += time.Since(start)
		leader, standby = standby, leader
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/promote")
	fi, err := os.Stat(leader.path)
	if err == nil {
		b.ReportMetric(float64(fi.Size())/1e6, "db_MB")
	}
}

// BenchmarkSnapshot1GB: the first leader of a 1 GiB database copies it
// for its standbys (capture snapshot with the backup API, SHA-256,
// upload to the object store, the log's snapshot entry), a new standby
// bootstraps from it (download, SHA-256 check, install), and, the leader
// gone, the standby promotes its replica (quick_check, copy to the app's
// path). Reported in seconds and MB/s.
func BenchmarkSnapshot1GB(b *testing.B) {
	const size = 1 << 30
	for range b.N {
		c := newCluster(b, nil)
		leader := c.start("leader")
		fill(b, leader.path, size)
		start := time.Now()
		promote(b, leader, 1)
		snap := time.Since(start)
		start = time.Now()
		standby := c.start("standby")
		waitFor(b, 10*time.Minute, "the standby to bootstrap", func() bool {
			return standby.r.Status().Seq == leader.r.Status().Seq && standby.r.Status().Cursor > 0
		})
		boot := time.Since(start)
		// The leader crashes: the standby, caught up, promotes its 1 GiB
		// replica (quick_check, copy to the app's path).
		if err := leader.r.Demote(context.Background(), false); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		promote(b, standby, 2)
		b.ReportMetric(time.Since(start).Seconds(), "promote_s")
		b.ReportMetric(snap.Seconds(), "snapshot_s")
		b.ReportMetric(float64(size)/1e6/snap.Seconds(), "snapshot_MB/s")
		b.ReportMetric(boot.Seconds(), "bootstrap_s")
		b.ReportMetric(float64(size)/1e6/boot.Seconds(), "bootstrap_MB/s")
		standby.stop()
		leader.stop()
	}
}

// fill makes a database of about size bytes of random blobs.
func fill(b *testing.B, path string, size int) {
	b.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE blobs (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		b.Fatal(err)
	}
	const blob = 1 << 20
	for i := 0; i < size/blob; i += 64 {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < 64 && i+j < size/blob; j++ {
			if _, err := tx.Exec("INSERT INTO blobs (v) VALUES (randomblob(?))", blob); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		b.Fatal(err)
	}
}
