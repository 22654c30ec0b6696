//go:build linux

package snapstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite"

	"github.com/ozanturksever/go-cluster/internal/natstest"
	"github.com/ozanturksever/go-cluster/replication/apply"
	"github.com/ozanturksever/go-cluster/replication/snapstore"
)

func startJS(t *testing.T) (context.Context, jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx, natstest.JetStream(t)
}

func openStore(t *testing.T, ctx context.Context, js jetstream.JetStream, bucket string) *snapstore.Store {
	t.Helper()
	s, err := snapstore.Open(ctx, js, bucket, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// source is a WAL-mode database the tests write to and snapshot.
type source struct {
	t    *testing.T
	db   *sql.DB
	dir  string
	rows int
}

func newSource(t *testing.T) *source {
	t.Helper()
	dir := t.TempDir()
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "src.db")+"?"+q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB)"); err != nil {
		t.Fatal(err)
	}
	return &source{t: t, db: db, dir: dir}
}

// insert adds n rows (some with large blobs, so that the database spans
// many pages).
func (s *source) insert(n int) {
	s.t.Helper()
	for range n {
		s.rows++
		blob := bytes.Repeat([]byte{byte(s.rows)}, 100+s.rows*37%3000)
		if _, err := s.db.Exec("INSERT INTO t (id, v, b) VALUES (?, ?, ?)", s.rows, fmt.Sprintf("row %d", s.rows), blob); err != nil {
			s.t.Fatal(err)
		}
	}
}

// snapshot writes a snapshot file of the database as it is now and
// returns its path, its info (tagged seq, epoch, cursor) and the rows it
// holds.
func (s *source) snapshot(ctx context.Context, seq, epoch, cursor uint64) (string, apply.SnapshotInfo, []string) {
	s.t.Helper()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close()
	path := filepath.Join(s.dir, fmt.Sprintf("snap-%d-%d", seq, epoch))
	f, err := os.Create(path)
	if err != nil {
		s.t.Fatal(err)
	}
	var rows []string
	info, err := apply.TakeSnapshot(ctx, conn, f, apply.SnapshotOptions{
		Seq: seq, Epoch: epoch,
		InTx: func(ctx context.Context, conn *sql.Conn) error {
			rows = rowSet(s.t, conn)
			return nil
		},
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.t.Fatal(err)
	}
	if info.Seq != seq || info.Epoch != epoch || info.PageCount < 2 || info.Position.Offset == 0 {
		s.t.Fatalf("snapshot info %+v", info)
	}
	if len(rows) != s.rows {
		s.t.Fatalf("snapshot holds %d rows, inserted %d", len(rows), s.rows)
	}
	info.Cursor = cursor
	return path, info, rows
}

func rowSet(t *testing.T, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) []string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), "SELECT id, v, hex(b) FROM t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id int64
		var v, b string
		if err := rows.Scan(&id, &v, &b); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(id, "|", v, "|", b))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// restoredRows reads the rows of a restored replica.db, read-only.
func restoredRows(t *testing.T, path string) []string {
	t.Helper()
	u := url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro&immutable=1"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var msg string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&msg); err != nil || msg != "ok" {
		t.Fatalf("integrity_check of %s: %q, %v", path, msg, err)
	}
	return rowSet(t, db)
}

func sameMeta(t *testing.T, got, want snapstore.Meta) {
	t.Helper()
	g, w := got, want
	if !g.Created.Equal(w.Created) {
		t.Fatalf("%s: created %v, want %v", w.Name, g.Created, w.Created)
	}
	g.Created, w.Created = time.Time{}, time.Time{}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("meta\n got  %+v\n want %+v", g, w)
	}
}

func names(list []snapstore.Meta) string {
	var s []string
	for _, m := range list {
		s = append(s, fmt.Sprintf("%d/%d", m.Seq, m.Epoch))
	}
	return strings.Join(s, " ")
}

func TestStore(t *testing.T) {
	ctx, js := startJS(t)
	st := openStore(t, ctx, js, "snaps")

	if list, err := st.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("List of an empty store: %v, %v", list, err)
	}
	if _, err := st.Latest(ctx, 0); !errors.Is(err, snapstore.ErrNoSnapshot) {
		t.Fatalf("Latest of an empty store: %v", err)
	}
	if _, err := st.Prune(ctx, 2, nil); !errors.Is(err, snapstore.ErrNoSnapshot) {
		t.Fatalf("Prune of an empty store: %v", err)
	}

	src := newSource(t)
	type snap struct {
		path string
		meta snapstore.Meta
		rows []string
	}
	var snaps []snap
	// Seq 10, 20 in epoch 1; 20 again in epoch 2 (the new leader's
	// snapshot of the same state); 30 in epoch 2.
	for i, tag := range []struct{ seq, epoch, cursor uint64 }{{10, 1, 12}, {20, 1, 23}, {20, 2, 24}, {30, 2, 40}} {
		src.insert(20)
		path, info, rows := src.snapshot(ctx, tag.seq, tag.epoch, tag.cursor)
		snaps = append(snaps, snap{path, snapstore.Meta{
			SnapshotInfo: info, Bytes: uint64(1000 * (i + 1)), Node: fmt.Sprintf("node-%d", i), Reset: i == 3,
		}, rows})
	}
	// Stored out of order; List sorts.
	for _, i := range []int{2, 0, 3, 1} {
		m, err := st.Put(ctx, snaps[i].path, snaps[i].meta)
		if err != nil {
			t.Fatal(err)
		}
		if m.Name == "" || m.Created.IsZero() || m.SnapshotInfo != snaps[i].meta.SnapshotInfo {
			t.Fatalf("Put returned %+v", m)
		}
		snaps[i].meta = m
	}
	seen := map[string]bool{}
	for _, s := range snaps {
		seen[s.meta.Name] = true
	}
	if len(seen) != len(snaps) {
		t.Fatalf("names not unique: %v", seen)
	}
	// An object that is not a snapshot is ignored.
	obj, err := js.ObjectStore(ctx, "snaps")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obj.PutBytes(ctx, "README", []byte("not a snapshot")); err != nil {
		t.Fatal(err)
	}

	list, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(snaps) {
		t.Fatalf("List: %d snapshots, want %d", len(list), len(snaps))
	}
	for i := range snaps {
		sameMeta(t, list[i], snaps[i].meta)
	}

	for _, c := range []struct {
		min  uint64
		want int // index in snaps; -1: none
	}{{0, 3}, {12, 3}, {40, 3}, {41, -1}} {
		m, err := st.Latest(ctx, c.min)
		if c.want < 0 {
			if !errors.Is(err, snapstore.ErrNoSnapshot) {
				t.Fatalf("Latest(%d): %+v, %v; want ErrNoSnapshot", c.min, m, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Latest(%d): %v", c.min, err)
		}
		sameMeta(t, m, snaps[c.want].meta)
	}

	for _, s := range snaps {
		m, rc, err := st.Get(ctx, s.meta.Name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		sameMeta(t, m, s.meta)
		want, err := os.ReadFile(s.path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want) || sha256.Sum256(b) != s.meta.SHA256 {
			t.Fatalf("Get %s: %d bytes, file %d; SHA-256 matches: %v", s.meta.Name, len(b), len(want), sha256.Sum256(b) == s.meta.SHA256)
		}
	}
	if _, _, err := st.Get(ctx, "snap-nope"); !errors.Is(err, snapstore.ErrNoSnapshot) {
		t.Fatalf("Get of a missing snapshot: %v", err)
	}

	// Restore each in turn into the same directory.
	dir := filepath.Join(t.TempDir(), "replica")
	for _, i := range []int{1, 3, 0} {
		s := snaps[i]
		rep, m, err := st.Restore(ctx, s.meta.Name, dir)
		if err != nil {
			t.Fatalf("Restore %s: %v", s.meta.Name, err)
		}
		sameMeta(t, m, s.meta)
		a := rep.Applied()
		if a.Seq != s.meta.Seq || a.Epoch != s.meta.Epoch || a.Cursor != s.meta.Cursor ||
			a.Position != s.meta.Position || a.PageSize != s.meta.PageSize || a.CommitSize != s.meta.PageCount {
			t.Fatalf("restored %s: applied %+v, meta %+v", s.meta.Name, a, s.meta)
		}
		got := restoredRows(t, rep.Path())
		if err := rep.Close(); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, s.rows) {
			t.Fatalf("restored %s holds %d rows, snapshot %d", s.meta.Name, len(got), len(s.rows))
		}
	}
	if _, _, err := st.Restore(ctx, "snap-nope", dir); !errors.Is(err, snapstore.ErrNoSnapshot) {
		t.Fatalf("Restore of a missing snapshot: %v", err)
	}
}

// TestRestoreMismatch: a snapshot whose bytes do not hash to its SHA-256
// installs nothing.
func TestRestoreMismatch(t *testing.T) {
	ctx, js := startJS(t)
	st := openStore(t, ctx, js, "snaps")
	src := newSource(t)
	src.insert(30)
	path, info, rows := src.snapshot(ctx, 5, 1, 7)
	good, err := st.Put(ctx, path, snapstore.Meta{SnapshotInfo: info})
	if err != nil {
		t.Fatal(err)
	}
	// Put checks what it uploads: a Meta that does not describe the file
	// is refused and stores nothing.
	wrong := info
	wrong.Seq = 9
	wrong.SHA256[0] ^= 1
	if _, err := st.Put(ctx, path, snapstore.Meta{SnapshotInfo: wrong}); !errors.Is(err, apply.ErrSnapshotMismatch) {
		t.Fatalf("Put with a wrong SHA-256: %v", err)
	}
	if list, err := st.List(ctx); err != nil || len(list) != 1 {
		t.Fatalf("after a refused Put: %d snapshots, %v", len(list), err)
	}
	// A stored object damaged afterwards (bit rot, a bad write) is found
	// at restore: store a good one, then overwrite its bytes.
	bad := info
	bad.Seq = 6
	badMeta, err := st.Put(ctx, path, snapstore.Meta{SnapshotInfo: bad})
	if err != nil {
		t.Fatal(err)
	}
	obj, err := js.ObjectStore(ctx, "snaps")
	if err != nil {
		t.Fatal(err)
	}
	oi, err := obj.GetInfo(ctx, badMeta.Name)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	body[len(body)-1] ^= 1
	if _, err := obj.PutBytes(ctx, badMeta.Name, body); err != nil {
		t.Fatal(err)
	}
	if err := obj.UpdateMeta(ctx, badMeta.Name, oi.ObjectMeta); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "replica")
	rep, _, err := st.Restore(ctx, good.Name, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Restore(ctx, badMeta.Name, dir); !errors.Is(err, apply.ErrSnapshotMismatch) {
		t.Fatalf("Restore with a wrong SHA-256: %v", err)
	}
	// Into a fresh directory too.
	if _, _, err := st.Restore(ctx, badMeta.Name, filepath.Join(t.TempDir(), "fresh")); !errors.Is(err, apply.ErrSnapshotMismatch) {
		t.Fatalf("Restore with a wrong SHA-256 into a fresh dir: %v", err)
	}
	rep, err = apply.OpenReplica(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	if a := rep.Applied(); a.Seq != 5 || a.Cursor != 7 {
		t.Fatalf("the failed restore changed the replica: %+v", a)
	}
	if got := restoredRows(t, rep.Path()); !reflect.DeepEqual(got, rows) {
		t.Fatalf("replica holds %d rows after a failed restore, want %d", len(got), len(rows))
	}
}

// TestPrune: Prune keeps the newest snapshots and returns the oldest one
// kept.
func TestPrune(t *testing.T) {
	ctx, js := startJS(t)
	st := openStore(t, ctx, js, "snaps")
	metas := putSeries(t, ctx, st, 4, func(int) bool { return false })
	oldest, err := st.Prune(ctx, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameMeta(t, oldest, metas[2])
	list, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(list), names(metas[2:]); got != want {
		t.Fatalf("after Prune(2): %s, want %s", got, want)
	}
	for _, m := range metas[:2] {
		if _, _, err := st.Get(ctx, m.Name); !errors.Is(err, snapstore.ErrNoSnapshot) {
			t.Fatalf("pruned %s: Get %v", m.Name, err)
		}
	}
	// Prune again keeps them; keep 0 keeps the newest.
	if oldest, err := st.Prune(ctx, 2, nil); err != nil || oldest.Name != metas[2].Name {
		t.Fatalf("second Prune(2): %+v, %v", oldest, err)
	}
	if oldest, err := st.Prune(ctx, 0, nil); err != nil || oldest.Name != metas[3].Name {
		t.Fatalf("Prune(0): %+v, %v", oldest, err)
	}
	if list, err := st.List(ctx); err != nil || names(list) != names(metas[3:]) {
		t.Fatalf("after Prune(0): %s, %v", names(list), err)
	}
}

// TestPruneSkipsInvalid: snapshots valid refuses do not count as kept;
// the older ones go whatever they are, a newer one stays (it may become
// valid).
func TestPruneSkipsInvalid(t *testing.T) {
	ctx, js := startJS(t)
	st := openStore(t, ctx, js, "snaps")
	metas := putSeries(t, ctx, st, 5, func(i int) bool { return i == 1 || i == 4 })
	// Resets 1 and 4 are invalid: keeping 2 keeps 3 and 2, drops 0 and 1,
	// and leaves 4 (newer than the oldest kept).
	oldest, err := st.Prune(ctx, 2, func(m snapstore.Meta) bool { return !m.Reset })
	if err != nil {
		t.Fatal(err)
	}
	sameMeta(t, oldest, metas[2])
	list, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(list), names(metas[2:]); got != want {
		t.Fatalf("after Prune: %s, want %s", got, want)
	}
	if _, err := st.Prune(ctx, 1, func(snapstore.Meta) bool { return false }); !errors.Is(err, snapstore.ErrNoSnapshot) {
		t.Fatalf("Prune with nothing valid: %v", err)
	}
}

// putSeries stores n snapshots of a growing database at seq 100, 200, ...
// (cursor seq+3), reset(i) marking the reset ones.
func putSeries(t *testing.T, ctx context.Context, st *snapstore.Store, n int, reset func(int) bool) []snapstore.Meta {
	t.Helper()
	src := newSource(t)
	var metas []snapstore.Meta
	for i := range n {
		src.insert(5)
		seq := uint64(100 * (i + 1))
		path, info, _ := src.snapshot(ctx, seq, 1, seq+3)
		m, err := st.Put(ctx, path, snapstore.Meta{SnapshotInfo: info, Reset: reset(i)})
		if err != nil {
			t.Fatal(err)
		}
		metas = append(metas, m)
	}
	return metas
}
