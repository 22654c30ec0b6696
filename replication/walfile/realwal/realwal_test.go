package realwal_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/ozanturksever/go-cluster/replication/walfile"
	"github.com/ozanturksever/go-cluster/replication/walfile/walfiletest"
)

// TestRealWAL reads WAL files written by SQLite itself: every commit must
// come out as one Txn, the chain must verify from the header, and the last
// image of each page, with the last commit's size, must be the database
// file after a checkpoint.
func TestRealWAL(t *testing.T) {
	for _, ps := range []int{1024, 4096, 65536} {
		t.Run(fmt.Sprint(ps), func(t *testing.T) { testRealWAL(t, ps) })
	}
}

func testRealWAL(t *testing.T, ps int) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db.sqlite")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		fmt.Sprintf("PRAGMA page_size=%d", ps),
		"PRAGMA journal_mode=WAL",
		"PRAGMA wal_autocheckpoint=0",
		"PRAGMA synchronous=NORMAL",
		"PRAGMA cache_size=20", // big transactions spill frames before they commit
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	commits := 0
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		commits++
	}
	exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	for i := range 50 {
		exec("INSERT INTO t (v) VALUES (?)", bytes.Repeat([]byte{byte(i)}, 100+i*37))
	}
	exec("INSERT INTO t (v) VALUES (?)", walfiletest.Page(3<<20+5, 42)) // one txn > 1 MB
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if _, err := tx.ExecContext(ctx, "INSERT INTO t (v) VALUES (?)", walfiletest.Page(2000+i, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	commits++
	exec("UPDATE t SET v = zeroblob(10) WHERE id % 3 = 0")
	exec("DELETE FROM t WHERE id % 5 = 0")
	exec("CREATE INDEX t_v ON t (length(v))")
	exec("DELETE FROM t WHERE id = 51") // the big blob: frees pages
	// A rolled-back transaction may leave frames that must not count.
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO t (v) VALUES (?)", walfiletest.Page(1<<20, 7)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	spilled, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	// The next commit overwrites the rolled-back frames from their start;
	// the rest of them stay in the file, valid-looking but not committed.
	exec("INSERT INTO t (v) VALUES ('after rollback')")

	img, err := os.ReadFile(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	h, err := walfile.ParseHeader(img)
	if err != nil {
		t.Fatalf("SQLite's header: %v", err)
	}
	if h.PageSize != uint32(ps) || h.Magic != walfile.MagicLE {
		t.Fatalf("header %+v", h)
	}
	_, txns, end, err := walfiletest.ReadAll(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(txns) != commits {
		t.Fatalf("%d txns in the WAL, %d commits", len(txns), commits)
	}
	if _, err := walfiletest.VerifyChain(img, h, h.Start(), txns); err != nil {
		t.Fatal(err)
	}
	if end.Offset >= spilled.Size() || end.Offset >= int64(len(img)) {
		t.Fatalf("reader ends at %d; the rolled-back transaction spilled to %d", end.Offset, spilled.Size())
	}
	big := 0
	for _, txn := range txns {
		big = max(big, len(txn.Frames))
	}
	t.Logf("page size %d: %d txns, %d bytes of WAL, largest txn %d frames, end at %d", ps, len(txns), len(img), big, end.Offset)

	pages := map[uint32][]byte{}
	for _, txn := range txns {
		for _, f := range txn.Frames {
			pages[f.Pgno] = f.Data
		}
	}
	size := txns[len(txns)-1].CommitSize

	if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(file) != int(size)*ps {
		t.Fatalf("db file %d bytes, last commit says %d pages of %d", len(file), size, ps)
	}
	for pgno, data := range pages {
		if pgno > size {
			continue
		}
		off := int(pgno-1) * ps
		if !bytes.Equal(file[off:off+ps], data) {
			t.Fatalf("page %d differs from its last WAL image", pgno)
		}
	}
}
