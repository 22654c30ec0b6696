//go:build linux

package apply

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/ozanturksever/go-cluster/replication/walfile"
)

// BenchmarkApply: throughput of Apply with its fsyncs (data, position
// temp file, directory), for transactions of 1, 16 and 256 pages of 4 KiB
// spread over a 100 MB database.
func BenchmarkApply(b *testing.B) {
	for _, pages := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("pages=%d", pages), func(b *testing.B) {
			r, err := OpenReplica(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			const ps, dbPages = 4096, 25600
			salt := walfile.Salt{S1: 1, S2: 2}
			data := make([]byte, ps*pages)
			rand.Read(data)
			tx := walfile.Txn{Salt: salt, PageSize: ps, CommitSize: dbPages, Frames: make([]walfile.Frame, pages)}
			next := uint32(1)
			b.SetBytes(int64(ps * pages))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range tx.Frames {
					tx.Frames[j] = walfile.Frame{Pgno: next, Data: data[j*ps : (j+1)*ps]}
					next = next%dbPages + 1
				}
				tx.Frames[pages-1].CommitSize = dbPages
				tx.Pre = walfile.Checksum{S1: uint32(i)}
				tx.Post = walfile.Checksum{S1: uint32(i + 1)}
				tx.Start = walfile.HeaderSize + int64(i)*int64(pages)*(walfile.FrameHeaderSize+ps)
				tx.End = tx.Start + int64(pages)*(walfile.FrameHeaderSize+ps)
				if err := r.Apply(tx, uint64(i+1), 1); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txn/s")
		})
	}
}

// BenchmarkApplyBatch: ApplyBatch of 64 transactions of 1 and 16 pages:
// one data fsync and one position write per batch.
func BenchmarkApplyBatch(b *testing.B) {
	for _, pages := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch=64/pages=%d", pages), func(b *testing.B) {
			r, err := OpenReplica(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			const ps, dbPages, batch = 4096, 25600, 64
			data := make([]byte, ps*pages)
			rand.Read(data)
			entries := make([]Entry, batch)
			next, seq := uint32(1), uint64(0)
			b.SetBytes(int64(ps * pages * batch))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for k := range entries {
					tx := walfile.Txn{Salt: walfile.Salt{S1: 1}, PageSize: ps, CommitSize: dbPages, Frames: make([]walfile.Frame, pages)}
					for j := range tx.Frames {
						tx.Frames[j] = walfile.Frame{Pgno: next, Data: data[j*ps : (j+1)*ps]}
						next = next%dbPages + 1
					}
					seq++
					tx.Pre, tx.Post = walfile.Checksum{S1: uint32(seq - 1)}, walfile.Checksum{S1: uint32(seq)}
					tx.End = int64(seq) * 100
					entries[k] = Entry{Txn: tx, Seq: seq, Epoch: 1}
				}
				if err := r.ApplyBatch(entries); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "txn/s")
		})
	}
}

// benchDBMB is the size of the snapshot benchmarks' database in MB:
// APPLY_BENCH_DB_MB, 100 by default (1024 for the 1 GB figure).
func benchDBMB(b *testing.B) int {
	if s := os.Getenv("APPLY_BENCH_DB_MB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("APPLY_BENCH_DB_MB=%q", s)
		}
		return n
	}
	return 100
}

var benchFixture struct {
	once sync.Once
	dir  string
	path string
	db   *sql.DB
	err  error
}

// benchSource returns a WAL-mode database of about mb MB, built once per
// process and removed by TestMain.
func benchSource(b *testing.B, mb int) *sql.DB {
	f := &benchFixture
	f.once.Do(func() {
		f.dir, f.err = os.MkdirTemp("", "apply-bench-")
		if f.err != nil {
			return
		}
		f.path = filepath.Join(f.dir, "src.db")
		// Not openSource: its Cleanup would close the database after the
		// first benchmark; TestMain closes it.
		f.db, f.err = openSourceDB(f.path)
		if f.err == nil {
			f.err = buildBenchDB(f.db, mb)
		}
	})
	if f.err != nil {
		b.Fatal(f.err)
	}
	return f.db
}

func buildBenchDB(db *sql.DB, mb int) error {
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)"); err != nil {
		return err
	}
	const rowSize, rowsPerTxn = 16 << 10, 1024 // 16 MiB per transaction
	rows := mb << 20 / rowSize
	for done := 0; done < rows; {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		for i := 0; i < rowsPerTxn && done < rows; i, done = i+1, done+1 {
			if _, err := tx.Exec("INSERT INTO t(v, b) VALUES(?, randomblob(?))", strconv.Itoa(done), rowSize); err != nil {
				tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			return err
		}
	}
	// A few transactions left in the WAL, as on a live leader.
	for i := 0; i < 10; i++ {
		if _, err := db.Exec("UPDATE t SET v = v || '+' WHERE id % 97 = ?", i); err != nil {
			return err
		}
	}
	return nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if f := &benchFixture; f.db != nil {
		f.db.Close()
	}
	if benchFixture.dir != "" {
		os.RemoveAll(benchFixture.dir)
	}
	os.Exit(code)
}

// BenchmarkTakeSnapshot: TakeSnapshot of a live database (size from
// APPLY_BENCH_DB_MB) to io.Discard: sqlite_dbpage reads plus SHA-256.
func BenchmarkTakeSnapshot(b *testing.B) {
	db := benchSource(b, benchDBMB(b))
	ctx := context.Background()
	var info SnapshotInfo
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		conn, err := db.Conn(ctx)
		if err != nil {
			b.Fatal(err)
		}
		info, err = TakeSnapshot(ctx, conn, io.Discard, SnapshotOptions{Seq: 1})
		conn.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(info.Size())
	}
	b.ReportMetric(float64(info.Size())/(1<<20), "MiB")
}

// BenchmarkRestoreSnapshot: RestoreSnapshot from a snapshot file into a
// fresh replica directory (write, SHA-256 check, fsyncs).
func BenchmarkRestoreSnapshot(b *testing.B) {
	db := benchSource(b, benchDBMB(b))
	ctx := context.Background()
	snapPath := filepath.Join(b.TempDir(), "snap")
	out, err := os.Create(snapPath)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	info, err := TakeSnapshot(ctx, conn, out, SnapshotOptions{Seq: 1})
	conn.Close()
	if err != nil {
		b.Fatal(err)
	}
	out.Close()
	b.SetBytes(info.Size())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in, err := os.Open(snapPath)
		if err != nil {
			b.Fatal(err)
		}
		dir := filepath.Join(b.TempDir(), strconv.Itoa(i))
		r, err := RestoreSnapshot(dir, in, info)
		in.Close()
		if err != nil {
			b.Fatal(err)
		}
		r.Close()
		b.StopTimer()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}
