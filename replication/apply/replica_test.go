//go:build linux

package apply

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ozanturksever/go-cluster/replication/walfile"
)

// newSource creates a WAL-mode source database with the tests' tables and
// n rows.
func newSource(t testing.TB, n int) (src string, db *sql.DB) {
	t.Helper()
	src = filepath.Join(t.TempDir(), "src.db")
	db = openSource(t, src)
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)")
	mustExec(t, db, "CREATE TABLE u(k TEXT PRIMARY KEY, n INTEGER)")
	insertRows(t, db, 1, n)
	return src, db
}

// insertRows inserts rows from..from+n-1 in one transaction, some with
// blobs large enough for overflow pages.
func insertRows(t testing.TB, db *sql.DB, from, n int) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < from+n; i++ {
		blob := bytes.Repeat([]byte{byte(i)}, (i%7)*900)
		if _, err := tx.Exec("INSERT INTO t(id, v, b) VALUES(?, ?, ?)", i, fmt.Sprintf("row %d", i), blob); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("INSERT INTO u(k, n) VALUES(?, ?) ON CONFLICT(k) DO UPDATE SET n = n + excluded.n", fmt.Sprintf("k%d", i%50), i); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// workload runs transactions of every kind on db: growth, overflow pages,
// updates, deletes (freelist), an index, and a VACUUM that shrinks the
// file.
func workload(t testing.TB, db *sql.DB, base int) {
	t.Helper()
	insertRows(t, db, base, 40)
	mustExec(t, db, "UPDATE t SET v = v || ' updated' WHERE id % 3 = 0")
	mustExec(t, db, "INSERT INTO t(id, v, b) VALUES(?, 'big', zeroblob(200000))", base+1000)
	mustExec(t, db, "CREATE INDEX IF NOT EXISTS t_v ON t(v)")
	insertRows(t, db, base+40, 40)
	mustExec(t, db, "DELETE FROM t WHERE id % 2 = 0")
	mustExec(t, db, "DELETE FROM t WHERE id = ?", base+1000)
	mustExec(t, db, "UPDATE u SET n = n * 2")
	mustExec(t, db, "VACUUM")
	insertRows(t, db, base+80, 5)
}

func snapshotBytes(t testing.TB, db *sql.DB, opts SnapshotOptions) (SnapshotInfo, []byte) {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var buf bytes.Buffer
	info, err := TakeSnapshot(ctx, conn, &buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	return info, buf.Bytes()
}

func restore(t testing.TB, dir string, info SnapshotInfo, b []byte, opts ...Option) *Replica {
	t.Helper()
	r, err := RestoreSnapshot(dir, bytes.NewReader(b), info, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func applyAll(t testing.TB, r *Replica, txns []walfile.Txn, epoch uint64) {
	t.Helper()
	for _, tx := range txns {
		seq := r.Applied().Seq + 1
		if err := r.Apply(tx, seq, epoch); err != nil {
			t.Fatalf("apply seq %d: %v", seq, err)
		}
	}
}

// sameAsSource checks the replica against the source's current state:
// quick_check and integrity_check, the row sets, and the pages byte for
// byte.
func sameAsSource(t testing.TB, r *Replica, db *sql.DB) {
	t.Helper()
	if err := r.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	integrityCheck(t, r.Path())
	sameRows(t, rowSet(t, openRO(t, r.Path())), rowSet(t, db))
	got, err := os.ReadFile(r.Path())
	if err != nil {
		t.Fatal(err)
	}
	if want := dbPages(t, db); !bytes.Equal(got, want) {
		t.Fatalf("replica file (%d bytes) is not the source's pages (%d bytes)", len(got), len(want))
	}
	if a := r.Applied(); int64(a.CommitSize)*int64(a.PageSize) != int64(len(got)) {
		t.Fatalf("applied commit size %d × %d, file %d bytes", a.CommitSize, a.PageSize, len(got))
	}
}

// TestApplyFromSnapshot: a replica restored from a snapshot, then fed the
// transactions the source committed after it, across a WAL restart (new
// generation), equals the source page for page.
func TestApplyFromSnapshot(t *testing.T) {
	src, db := newSource(t, 200)
	info, img := snapshotBytes(t, db, SnapshotOptions{Seq: 10, Epoch: 3})
	if info.Seq != 10 || info.Epoch != 3 || info.PageSize != 4096 || int64(len(img)) != info.Size() {
		t.Fatalf("snapshot info %+v, %d bytes", info, len(img))
	}
	w0 := readTestWAL(t, src+"-wal")
	if !w0.isBoundary(info.Position) || info.Position.Offset <= walfile.HeaderSize {
		t.Fatalf("snapshot position %+v is no transaction boundary of the WAL", info.Position)
	}
	if last := w0.Txns[len(w0.Txns)-1]; last.End != info.Position.Offset || last.Post != info.Position.Checksum {
		t.Fatalf("snapshot position %+v, last txn ends at %d %v", info.Position, last.End, last.Post)
	}

	r := restore(t, filepath.Join(t.TempDir(), "replica"), info, img)
	if a := r.Applied(); a.Seq != 10 || a.Epoch != 3 || a.Position != info.Position || a.CommitSize != info.PageCount {
		t.Fatalf("restored position %+v, info %+v", a, info)
	}
	integrityCheck(t, r.Path())

	workload(t, db, 1000)
	w1 := readTestWAL(t, src+"-wal")
	txns := w1.after(t, info.Position)
	if len(txns) < 8 {
		t.Fatalf("%d transactions after the snapshot", len(txns))
	}
	if !shrinks(txns) {
		t.Fatal("test is vacuous: no transaction shrinks the database")
	}
	applyAll(t, r, txns, 3)
	sameAsSource(t, r, db)
	if a := r.Applied(); a.Seq != 10+uint64(len(txns)) || a.Position.Offset != txns[len(txns)-1].End {
		t.Fatalf("applied %+v after %d txns", a, len(txns))
	}

	// WAL restart: TRUNCATE resets the WAL, the next writer starts a new
	// generation (new salt); its first transaction's Pre is the new
	// header's checksum, not the applied one, and is accepted on seq.
	var busy, logged, ckpt int
	if err := db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logged, &ckpt); err != nil || busy != 0 {
		t.Fatalf("checkpoint: busy %d, %v", busy, err)
	}
	workload(t, db, 5000)
	w2 := readTestWAL(t, src+"-wal")
	if w2.Salt == w1.Salt {
		t.Fatal("the WAL did not restart")
	}
	if w2.Txns[0].Pre == r.Applied().Position.Checksum {
		t.Fatal("test is vacuous: the new generation's Pre equals the applied checksum")
	}
	applyAll(t, r, w2.Txns, 4) // a new epoch too
	sameAsSource(t, r, db)

	// Reopening keeps the position.
	want := r.Applied()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r2, err := OpenReplica(r.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if r2.Applied() != want {
		t.Fatalf("reopened at %+v, want %+v", r2.Applied(), want)
	}
	sameAsSource(t, r2, db)
}

// replicaState is everything Apply may change.
type replicaState struct {
	db, pos []byte
	applied Applied
}

func stateOf(t testing.TB, r *Replica) replicaState {
	t.Helper()
	db, err := os.ReadFile(r.Path())
	if err != nil {
		t.Fatal(err)
	}
	pos, err := os.ReadFile(filepath.Join(r.Dir(), PositionName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return replicaState{db: db, pos: pos, applied: r.Applied()}
}

func (s replicaState) equal(o replicaState) bool {
	return bytes.Equal(s.db, o.db) && bytes.Equal(s.pos, o.pos) && s.applied == o.applied
}

// TestApplyRefusesAndLeavesUntouched: gaps, redeliveries, broken chains,
// stale epochs and malformed transactions are refused with typed errors
// and change neither file.
func TestApplyRefusesAndLeavesUntouched(t *testing.T) {
	src, db := newSource(t, 50)
	info, img := snapshotBytes(t, db, SnapshotOptions{Seq: 7, Epoch: 2})
	r := restore(t, filepath.Join(t.TempDir(), "replica"), info, img)
	insertRows(t, db, 100, 10)
	insertRows(t, db, 200, 10)
	txns := readTestWAL(t, src+"-wal").after(t, info.Position)
	if len(txns) != 2 {
		t.Fatalf("%d txns", len(txns))
	}
	good := txns[0]

	before := stateOf(t, r)
	mutate := func(f func(*walfile.Txn)) walfile.Txn {
		tx := good
		tx.Frames = append([]walfile.Frame(nil), good.Frames...)
		f(&tx)
		return tx
	}
	cases := []struct {
		name       string
		tx         walfile.Txn
		seq, epoch uint64
		is         []error
	}{
		{"gap", good, 9, 2, []error{ErrGap}},
		{"redelivery", good, 7, 2, []error{ErrGap, ErrAlreadyApplied}},
		{"old seq", good, 1, 2, []error{ErrGap, ErrAlreadyApplied}},
		{"stale epoch", good, 8, 1, []error{ErrStaleEpoch}},
		{"chain broken", mutate(func(tx *walfile.Txn) { tx.Pre = walfile.Checksum{S1: 0xdeadbeef, S2: 0x01020304} }), 8, 2, []error{ErrChainBroken}},
		{"skipped txn", txns[1], 8, 2, []error{ErrChainBroken}},
		{"page size", mutate(func(tx *walfile.Txn) { tx.PageSize = 8192 }), 8, 2, []error{ErrPageSize}},
		{"bad page size", mutate(func(tx *walfile.Txn) { tx.PageSize = 1000 }), 8, 2, []error{ErrPageSize}},
		{"no frames", mutate(func(tx *walfile.Txn) { tx.Frames = nil }), 8, 2, []error{ErrInvalidTxn}},
		{"no commit size", mutate(func(tx *walfile.Txn) { tx.CommitSize = 0 }), 8, 2, []error{ErrInvalidTxn}},
		{"page 0", mutate(func(tx *walfile.Txn) { tx.Frames[0].Pgno = 0 }), 8, 2, []error{ErrInvalidFrame, ErrInvalidTxn}},
		{"short page", mutate(func(tx *walfile.Txn) {
			// The last frame is bad: nothing of the earlier ones may be
			// written either.
			last := len(tx.Frames) - 1
			tx.Frames[last].Data = tx.Frames[last].Data[:100]
		}), 8, 2, []error{ErrInvalidFrame}},
	}
	for _, c := range cases {
		err := r.Apply(c.tx, c.seq, c.epoch)
		if err == nil {
			t.Fatalf("%s: accepted", c.name)
		}
		for _, target := range c.is {
			if !errors.Is(err, target) {
				t.Errorf("%s: %v is not %v", c.name, err, target)
			}
		}
		if !stateOf(t, r).equal(before) {
			t.Fatalf("%s: refused apply changed the replica", c.name)
		}
	}
	var fe *FrameError
	if err := r.Apply(cases[len(cases)-1].tx, 8, 2); !errors.As(err, &fe) || fe.Len != 100 || fe.PageSize != 4096 {
		t.Fatalf("short page: %v", err)
	}
	var ce *ChainError
	if err := r.Apply(cases[4].tx, 8, 2); !errors.As(err, &ce) || ce.Got != [2]uint32{0xdeadbeef, 0x01020304} {
		t.Fatalf("chain: %v", err)
	}

	// The good ones still apply afterwards.
	applyAll(t, r, txns, 2)
	sameAsSource(t, r, db)
}

// synthTxn is a transaction of synthetic pages (no SQLite semantics), for
// the chain logic.
func synthTxn(salt walfile.Salt, pre, post walfile.Checksum, start int64, commit uint32, pages ...uint32) walfile.Txn {
	const ps = 512
	tx := walfile.Txn{Salt: salt, PageSize: ps, CommitSize: commit, Pre: pre, Post: post, Start: start}
	for i, p := range pages {
		fr := walfile.Frame{Pgno: p, Data: bytes.Repeat([]byte{byte(p), byte(i)}, ps/2)}
		tx.Frames = append(tx.Frames, fr)
	}
	tx.Frames[len(tx.Frames)-1].CommitSize = commit
	tx.End = start + int64(len(pages))*(walfile.FrameHeaderSize+ps)
	return tx
}

// TestApplyChainRules pins the chain rules with explicit values, and the
// page placement: later image wins, truncation to the commit size.
func TestApplyChainRules(t *testing.T) {
	r, err := OpenReplica(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a, b := walfile.Salt{S1: 1, S2: 2}, walfile.Salt{S1: 2, S2: 99}
	ck := func(n uint32) walfile.Checksum { return walfile.Checksum{S1: n, S2: n * 3} }

	// A fresh replica knows no chain: any Pre.
	if err := r.Apply(synthTxn(a, ck(1), ck(2), 32, 3, 1, 2, 3, 2), 1, 1); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(r.Path())
	if len(got) != 3*512 || got[512] != 2 || got[513] != 3 {
		// page 2 written twice (frames 1 and 3): the later (i=3) wins.
		t.Fatalf("file %d bytes, page 2 starts %v", len(got), got[512:514])
	}
	before := stateOf(t, r)
	if err := r.Apply(synthTxn(a, ck(9), ck(3), 32+3*536, 3, 1), 2, 1); !errors.Is(err, ErrChainBroken) {
		t.Fatalf("same salt, wrong Pre: %v", err)
	}
	if !stateOf(t, r).equal(before) {
		t.Fatal("refused txn changed the replica")
	}
	if err := r.Apply(synthTxn(a, ck(2), ck(3), 32+4*536, 2, 1), 2, 1); err != nil {
		t.Fatalf("same salt, right Pre: %v", err)
	}
	if st, _ := os.Stat(r.Path()); st.Size() != 2*512 {
		t.Fatalf("not truncated to the commit size: %d bytes", st.Size())
	}
	// A new generation: different salt, Pre unrelated: accepted on seq.
	if err := r.Apply(synthTxn(b, ck(77), ck(78), 32, 4, 4), 3, 1); err != nil {
		t.Fatalf("new generation: %v", err)
	}
	if st, _ := os.Stat(r.Path()); st.Size() != 4*512 {
		t.Fatalf("not extended to the commit size: %d bytes", st.Size())
	}
	// ... and then its chain is enforced.
	if err := r.Apply(synthTxn(b, ck(2), ck(79), 32+536, 4, 4), 4, 1); !errors.Is(err, ErrChainBroken) {
		t.Fatalf("new generation, wrong Pre: %v", err)
	}
	// A position at the start of a generation (offset 32) carries no
	// checksum: the next transaction is accepted on seq.
	r.Close()
	pos := Applied{Seq: 3, Epoch: 1, Position: walfile.Position{Salt: b, Offset: walfile.HeaderSize}, PageSize: 512, CommitSize: 4}
	if err := writePosition(r.Dir(), pos, nil); err != nil {
		t.Fatal(err)
	}
	r, err = OpenReplica(r.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Apply(synthTxn(b, ck(5), ck(6), 32, 4, 1), 4, 1); err != nil {
		t.Fatalf("after a generation start: %v", err)
	}
	if err := r.Apply(synthTxn(b, ck(6), ck(7), 32+536, 4, 1), 5, 0); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("stale epoch: %v", err)
	}
}

// TestOpenReplicaWithoutPosition: content no position vouches for is
// discarded, and a second Replica on the same directory is refused.
func TestOpenReplicaWithoutPosition(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, DBName), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReplica(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if st, _ := os.Stat(r.Path()); st.Size() != 0 {
		t.Fatalf("unvouched content kept: %d bytes", st.Size())
	}
	if r.Applied() != (Applied{}) {
		t.Fatalf("applied %+v", r.Applied())
	}
	if err := r.Check(context.Background()); !errors.Is(err, ErrEmpty) {
		t.Fatalf("check of an empty replica: %v", err)
	}
	if _, err := OpenReplica(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	if _, err := RestoreSnapshot(dir, bytes.NewReader(nil), SnapshotInfo{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("restore while open: %v", err)
	}
}

// shrinks reports whether a transaction makes the database smaller.
func shrinks(txns []walfile.Txn) bool {
	for i := 1; i < len(txns); i++ {
		if txns[i].CommitSize < txns[i-1].CommitSize {
			return true
		}
	}
	return false
}
