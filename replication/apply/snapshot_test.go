//go:build linux

package apply

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/replication/walfile"
)

// TestSnapshotWhileWriting: snapshots of a database that another
// connection writes to continuously, also between the snapshot's position
// being read and its pages being copied and its rows being recorded. Each restored replica passes
// integrity_check and holds exactly the rows read in the snapshot's read
// transaction; its WAL position is a transaction boundary, which Resolve
// maps to the log's seq (here: the index of the transaction in the WAL);
// and applying the transactions after it brings the replica to the
// source's final state.
func TestSnapshotWhileWriting(t *testing.T) {
	src, db := newSource(t, 300)
	ctx := context.Background()

	var commits atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := db.Conn(ctx)
		if err != nil {
			writeErr = err
			return
		}
		defer conn.Close()
		for i := 10000; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var q string
			var args []any
			switch i % 5 {
			case 0:
				q, args = "UPDATE t SET v = v || '+' WHERE id % 7 = ?", []any{i % 7}
			case 1:
				q, args = "DELETE FROM t WHERE id = ?", []any{i - 3}
			case 2:
				q, args = "INSERT INTO t(id, v, b) VALUES(?, ?, zeroblob(?))", []any{i, fmt.Sprint("w", i), (i % 11) * 700}
			default:
				q, args = "INSERT INTO t(id, v, b) VALUES(?, ?, randomblob(64))", []any{i, fmt.Sprint("w", i)}
			}
			if _, err := conn.ExecContext(ctx, q, args...); err != nil {
				writeErr = err
				return
			}
			commits.Add(1)
			time.Sleep(200 * time.Microsecond) // keep the WAL to a few hundred transactions
		}
	}()
	waitCommits := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for commits.Load() < n {
			if time.Now().After(deadline) || writeErr != nil {
				t.Fatalf("writer: %d commits, %v", commits.Load(), writeErr)
			}
			time.Sleep(time.Millisecond)
		}
	}

	type snap struct {
		info SnapshotInfo
		img  []byte
		rows []string
	}
	var snaps []snap
	for round := 0; round < 3; round++ {
		waitCommits(commits.Load() + 40)
		var rows []string
		var buf bytes.Buffer
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		info, err := TakeSnapshot(ctx, conn, &buf, SnapshotOptions{
			// On the leader, the capture answers this; here the test reads
			// the WAL, which the read transaction keeps from restarting.
			Resolve: func(ctx context.Context, pos walfile.Position) (uint64, uint64, error) {
				w := readTestWAL(t, src+"-wal")
				for i, tx := range w.Txns {
					if tx.End == pos.Offset && tx.Post == pos.Checksum && tx.Salt == pos.Salt {
						// Let the writer commit more before the pages are
						// copied: the copy must still be of this position.
						waitCommits(commits.Load() + 5)
						return uint64(i + 1), 5, nil
					}
				}
				return 0, 0, fmt.Errorf("position %+v is no transaction boundary", pos)
			},
			InTx: func(ctx context.Context, conn *sql.Conn) error {
				waitCommits(commits.Load() + 5)
				rows = rowSet(t, conn)
				return nil
			},
		})
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, snap{info, bytes.Clone(buf.Bytes()), rows})
	}
	waitCommits(commits.Load() + 40)
	close(stop)
	wg.Wait()
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	w := readTestWAL(t, src+"-wal")
	t.Logf("%d commits, %d WAL transactions, snapshots at seq %d, %d, %d",
		commits.Load(), len(w.Txns), snaps[0].info.Seq, snaps[1].info.Seq, snaps[2].info.Seq)

	for i, s := range snaps {
		if i > 0 && s.info.Seq <= snaps[i-1].info.Seq {
			t.Fatalf("snapshot %d at seq %d, not after %d", i, s.info.Seq, snaps[i-1].info.Seq)
		}
		r := restore(t, filepath.Join(t.TempDir(), fmt.Sprint("replica", i)), s.info, s.img)
		integrityCheck(t, r.Path())
		if err := r.Check(ctx); err != nil {
			t.Fatal(err)
		}
		sameRows(t, rowSet(t, openRO(t, r.Path())), s.rows)
		// Catch up from the recorded seq: the transactions of the WAL
		// after index Seq-1.
		if r.Applied().Seq != s.info.Seq || r.Applied().Epoch != 5 {
			t.Fatalf("restored at %+v", r.Applied())
		}
		applyAll(t, r, w.after(t, s.info.Position), 5)
		if r.Applied().Seq != uint64(len(w.Txns)) {
			t.Fatalf("caught up to seq %d, the WAL has %d", r.Applied().Seq, len(w.Txns))
		}
		sameAsSource(t, r, db)
	}
}

// TestSnapshotAtGenerationStart: after a TRUNCATE checkpoint the WAL holds
// no frame; the snapshot's position is offset 32 without a checksum, and
// the next transaction (whatever header the next writer writes) applies.
func TestSnapshotAtGenerationStart(t *testing.T) {
	src, db := newSource(t, 100)
	var busy, logged, ckpt int
	if err := db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logged, &ckpt); err != nil || busy != 0 {
		t.Fatalf("checkpoint: busy %d, %v", busy, err)
	}
	info, img := snapshotBytes(t, db, SnapshotOptions{Seq: 1})
	if info.Position.Offset != walfile.HeaderSize || info.Position.Checksum != (walfile.Checksum{}) {
		t.Fatalf("position %+v, want offset 32 without checksum", info.Position)
	}
	r := restore(t, filepath.Join(t.TempDir(), "replica"), info, img)
	workload(t, db, 1000)
	w := readTestWAL(t, src+"-wal")
	applyAll(t, r, w.Txns, 0)
	sameAsSource(t, r, db)
}

// TestSnapshotRollbackJournal: a database not in WAL mode snapshots
// without a WAL position.
func TestSnapshotRollbackJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rj.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)")
	mustExec(t, db, "CREATE TABLE u(k TEXT PRIMARY KEY, n INTEGER)")
	insertRows(t, db, 1, 50)
	info, img := snapshotBytes(t, db, SnapshotOptions{Seq: 3})
	if info.Position != (walfile.Position{}) {
		t.Fatalf("position %+v in rollback-journal mode", info.Position)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img, file) {
		t.Fatal("snapshot differs from the (quiescent) database file")
	}
}

// TestRestoreSnapshotMismatch: a snapshot stream that does not match its
// info installs nothing.
func TestRestoreSnapshotMismatch(t *testing.T) {
	_, db := newSource(t, 20)
	info, img := snapshotBytes(t, db, SnapshotOptions{Seq: 4})
	if info.SHA256 != sha256.Sum256(img) {
		t.Fatal("SHA-256 is not of the bytes written")
	}
	dir := filepath.Join(t.TempDir(), "replica")
	r := restore(t, dir, info, img)
	r.Close()
	bad := bytes.Clone(img)
	bad[len(bad)-1] ^= 1
	wrongPS := info
	wrongPS.PageSize, wrongPS.PageCount = 8192, info.PageCount/2
	wrongPS.SHA256 = sha256.Sum256(img[:wrongPS.Size()])
	for name, c := range map[string]struct {
		b    []byte
		info SnapshotInfo
	}{
		"short":     {img[:len(img)-1], info},
		"corrupt":   {bad, info},
		"page size": {img[:wrongPS.Size()], wrongPS},
	} {
		if _, err := RestoreSnapshot(dir, bytes.NewReader(c.b), c.info); !errors.Is(err, ErrSnapshotMismatch) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	r, err := OpenReplica(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Applied().Seq != 4 {
		t.Fatalf("failed restores changed the replica: %+v", r.Applied())
	}
	sameAsSource(t, r, db)
}

// TestSnapshotHeaderAccess pins the driver internals the WAL position is
// read through: if modernc.org/sqlite changes them, this fails loudly.
func TestSnapshotHeaderAccess(t *testing.T) {
	_, db := newSource(t, 10)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Raw(func(dc any) error {
		_, _, err := sqliteHandle(dc)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sqliteHandle(struct{}{}); err == nil {
		t.Fatal("a foreign driver connection was accepted")
	}
	// Outside a transaction sqlite3_snapshot_get refuses.
	if err := conn.Raw(func(dc any) error {
		_, err := snapshotHeader(dc)
		return err
	}); !errors.Is(err, errNoSnapshot) {
		t.Fatalf("snapshot_get in autocommit mode: %v", err)
	}
}
