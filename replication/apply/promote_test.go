//go:build linux

package apply

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// staleHistory makes path an application database of another history,
// left with a -wal holding committed frames (as after a crash) and a
// -shm, both belonging to that history.
func staleHistory(t *testing.T, path string) []string {
	t.Helper()
	other := filepath.Join(t.TempDir(), "other.db")
	db := openSource(t, other)
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)")
	mustExec(t, db, "CREATE TABLE u(k TEXT PRIMARY KEY, n INTEGER)")
	mustExec(t, db, "INSERT INTO t(id, v) VALUES(1, 'old history')")
	var busy, logged, ckpt int
	if err := db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logged, &ckpt); err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 60; i++ {
		mustExec(t, db, "INSERT INTO t(id, v, b) VALUES(?, 'old history', zeroblob(3000))", i)
	}
	rows := rowSet(t, db)
	// Copy the files as a crashed process would leave them: the database
	// file without the last commits, which live in the -wal.
	for suffix, b := range map[string][]byte{"": base, "-wal": nil, "-shm": nil} {
		if b == nil {
			if b, err = os.ReadFile(other + suffix); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(path+suffix, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return rows
}

// TestPromoteTo: the application's path gets the replica's content, the
// stale -wal/-shm/-journal of the old history are gone, and SQLite opens
// it and reads the replica's rows.
func TestPromoteTo(t *testing.T) {
	src, db := newSource(t, 80)
	info, img := snapshotBytes(t, db, SnapshotOptions{Seq: 1})
	r := restore(t, filepath.Join(t.TempDir(), "replica"), info, img)
	workload(t, db, 1000)
	applyAll(t, r, readTestWAL(t, src+"-wal").after(t, info.Position), 1)
	if err := r.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := rowSet(t, db)

	app := filepath.Join(t.TempDir(), "app.db")
	old := staleHistory(t, app)
	if err := os.WriteFile(app+"-journal", []byte("stale journal"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.PromoteTo(app); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Stat(app + suffix); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s%s left behind: %v", app, suffix, err)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(app))
	if len(entries) != 1 {
		t.Fatalf("promotion left files behind: %v", entries)
	}
	got, err := os.ReadFile(app)
	if err != nil {
		t.Fatal(err)
	}
	if rep, _ := os.ReadFile(r.Path()); !bytes.Equal(got, rep) {
		t.Fatal("promoted file differs from the replica")
	}

	// The application opens it read-write, in WAL mode, and goes on.
	appDB := openSource(t, app)
	var msg string
	if err := appDB.QueryRow("PRAGMA integrity_check").Scan(&msg); err != nil || msg != "ok" {
		t.Fatalf("integrity_check: %q %v", msg, err)
	}
	sameRows(t, rowSet(t, appDB), want)
	if slices.Equal(want, old) {
		t.Fatal("test is vacuous: the old history has the same rows")
	}
	mustExec(t, appDB, "INSERT INTO t(id, v) VALUES(999999, 'after promotion')")
	var n int
	if err := appDB.QueryRow("SELECT count(*) FROM t WHERE id = 999999").Scan(&n); err != nil || n != 1 {
		t.Fatalf("write after promotion: %d %v", n, err)
	}
	// The replica itself is untouched by the promotion.
	if err := r.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestStaleWALIsReplayed shows why PromoteTo removes path-wal first: the
// promoted content with the old history's -wal left next to it reads as
// (part of) the old history, since SQLite replays the WAL onto it.
func TestStaleWALIsReplayed(t *testing.T) {
	_, db := newSource(t, 80)
	_, img := snapshotBytes(t, db, SnapshotOptions{Seq: 1})

	app := filepath.Join(t.TempDir(), "app.db")
	staleHistory(t, app)
	if err := os.WriteFile(app, img, 0o644); err != nil { // new content, stale -wal kept
		t.Fatal(err)
	}
	adb, err := sql.Open("sqlite", app)
	if err != nil {
		t.Fatal(err)
	}
	defer adb.Close()
	var n int
	err = adb.QueryRow("SELECT count(*) FROM t WHERE v = 'old history'").Scan(&n)
	if err == nil && n == 0 {
		t.Fatal("the stale WAL was not replayed: the hazard PromoteTo guards against did not show")
	}
	t.Logf("promoted content + stale -wal: %d rows of the old history (err %v)", n, err)
}

// TestCheckAndPromoteTo: a replica that fails quick_check is not
// installed (the application's file and its directory are as before); a
// sound one is, with the same result as PromoteTo.
func TestCheckAndPromoteTo(t *testing.T) {
	_, db := newSource(t, 80)
	info, img := snapshotBytes(t, db, SnapshotOptions{Seq: 1})
	want := rowSet(t, db)
	app := filepath.Join(t.TempDir(), "app.db")
	staleHistory(t, app)
	before, err := os.ReadFile(app)
	if err != nil {
		t.Fatal(err)
	}

	bad := restore(t, filepath.Join(t.TempDir(), "bad"), info, img)
	// Damage a b-tree page of the replica (not page 1, whose header
	// SQLite reads first): quick_check must see it.
	f, err := os.OpenFile(bad.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, 512), int64(info.PageSize)+16); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := bad.CheckAndPromoteTo(context.Background(), app); err == nil {
		t.Fatal("a damaged replica was promoted")
	}
	after, err := os.ReadFile(app)
	if err != nil || !bytes.Equal(after, before) {
		t.Fatalf("the refused promotion changed %s (%v)", app, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(app))
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".db" && !slices.Contains([]string{"app.db-wal", "app.db-shm"}, e.Name()) {
			t.Fatalf("left behind: %s", e.Name())
		}
	}

	good := restore(t, filepath.Join(t.TempDir(), "good"), info, img)
	if err := good.CheckAndPromoteTo(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	got, err := sql.Open("sqlite", app)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if rows := rowSet(t, got); !slices.Equal(rows, want) {
		t.Fatalf("promoted database holds %d rows, want %d", len(rows), len(want))
	}
}
