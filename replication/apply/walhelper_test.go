//go:build linux

package apply

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/ozanturksever/go-cluster/replication/walfile"
)

// testWAL is a WAL file split into committed transactions by the tests'
// own reader (the package walfile parser is written elsewhere): header,
// then frames of 24-byte header + page, valid while their salt is the
// header's and the checksum chain holds; a frame with a non-zero
// db-size field ends a transaction.
type testWAL struct {
	Salt     walfile.Salt
	PageSize uint32
	HeaderCk walfile.Checksum
	Txns     []walfile.Txn
}

func readTestWAL(t testing.TB, path string) testWAL {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := splitWAL(b)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func splitWAL(b []byte) (testWAL, error) {
	var w testWAL
	if len(b) < walfile.HeaderSize {
		return w, nil // empty WAL
	}
	be := binary.BigEndian
	magic := be.Uint32(b[0:4])
	if magic&^1 != 0x377f0682 {
		return w, fmt.Errorf("bad WAL magic %#x", magic)
	}
	bigEnd := magic&1 == 1
	w.PageSize = be.Uint32(b[8:12])
	if w.PageSize == 1 {
		w.PageSize = 65536
	}
	w.Salt = walfile.Salt{S1: be.Uint32(b[16:20]), S2: be.Uint32(b[20:24])}
	ck := walChecksum(bigEnd, b[:24], walfile.Checksum{})
	if ck != (walfile.Checksum{S1: be.Uint32(b[24:28]), S2: be.Uint32(b[28:32])}) {
		return w, fmt.Errorf("bad WAL header checksum")
	}
	w.HeaderCk = ck
	frameSize := int64(walfile.FrameHeaderSize) + int64(w.PageSize)
	var cur walfile.Txn
	start, pre := int64(walfile.HeaderSize), ck
	for off := int64(walfile.HeaderSize); off+frameSize <= int64(len(b)); off += frameSize {
		fh := b[off : off+walfile.FrameHeaderSize]
		if (walfile.Salt{S1: be.Uint32(fh[8:12]), S2: be.Uint32(fh[12:16])}) != w.Salt {
			break
		}
		page := b[off+walfile.FrameHeaderSize : off+frameSize]
		next := walChecksum(bigEnd, page, walChecksum(bigEnd, fh[:8], ck))
		if next != (walfile.Checksum{S1: be.Uint32(fh[16:20]), S2: be.Uint32(fh[20:24])}) {
			break
		}
		ck = next
		fr := walfile.Frame{Pgno: be.Uint32(fh[0:4]), CommitSize: be.Uint32(fh[4:8]), Data: slices.Clone(page)}
		cur.Frames = append(cur.Frames, fr)
		if fr.CommitSize != 0 {
			cur.Salt, cur.PageSize, cur.CommitSize = w.Salt, w.PageSize, fr.CommitSize
			cur.Pre, cur.Post = pre, ck
			cur.Start, cur.End = start, off+frameSize
			w.Txns = append(w.Txns, cur)
			cur = walfile.Txn{}
			start, pre = off+frameSize, ck
		}
	}
	return w, nil
}

// after returns the transactions that follow position p: those starting
// at p's offset or later in p's generation, or all of them in another
// generation (p of an older WAL or unknown).
func (w testWAL) after(t testing.TB, p walfile.Position) []walfile.Txn {
	t.Helper()
	if p.Offset == 0 || p.Salt != w.Salt {
		return w.Txns
	}
	for i, tx := range w.Txns {
		if tx.Start == p.Offset {
			if p.Offset > walfile.HeaderSize && tx.Pre != p.Checksum {
				t.Fatalf("txn at %d: Pre %v, position checksum %v", p.Offset, tx.Pre, p.Checksum)
			}
			return w.Txns[i:]
		}
	}
	if n := len(w.Txns); (n == 0 && p.Offset == walfile.HeaderSize) || (n > 0 && w.Txns[n-1].End == p.Offset) {
		return nil
	}
	t.Fatalf("position %+v is no transaction boundary of the WAL", p)
	return nil
}

// isBoundary reports whether p ends a committed transaction of w (or is
// its header, before the first).
func (w testWAL) isBoundary(p walfile.Position) bool {
	if p.Salt != w.Salt {
		return false
	}
	if p.Offset == walfile.HeaderSize {
		return true
	}
	for _, tx := range w.Txns {
		if tx.End == p.Offset {
			return tx.Post == p.Checksum
		}
	}
	return false
}

// openSource opens (creating) a WAL-mode database that never checkpoints
// by itself, on every connection of the pool.
func openSource(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := openSourceDB(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openSourceDB(path string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "wal_autocheckpoint(0)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	return sql.Open("sqlite", "file:"+path+"?"+q.Encode())
}

func mustExec(t testing.TB, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

type queryer interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// rowSet returns every row of the tables the tests use, as strings, in
// key order.
func rowSet(t testing.TB, db queryer) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		"SELECT 't', id, v, hex(b) FROM t ORDER BY id",
		"SELECT 'u', k, n, '' FROM u ORDER BY k",
	} {
		rows, err := db.QueryContext(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for rows.Next() {
			var a, b, c, d any
			if err := rows.Scan(&a, &b, &c, &d); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(a, "|", b, "|", c, "|", d))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out
}

// openRO opens a database file read-only and immutable.
func openRO(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", readOnlyDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func integrityCheck(t testing.TB, path string) {
	t.Helper()
	db := openRO(t, path)
	var msg string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&msg); err != nil {
		t.Fatal(err)
	}
	if msg != "ok" {
		t.Fatalf("integrity_check of %s: %s", path, msg)
	}
}

func sameRows(t testing.TB, got, want []string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("row sets differ: got %d rows, want %d\nfirst got:  %.200v\nfirst want: %.200v", len(got), len(want), got, want)
	}
}

// dbPages returns the source's current pages (its state as of a fresh
// read transaction) through sqlite_dbpage.
func dbPages(t testing.TB, db *sql.DB) []byte {
	t.Helper()
	rows, err := db.Query("SELECT data FROM sqlite_dbpage")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []byte
	for rows.Next() {
		var d []byte
		if err := rows.Scan(&d); err != nil {
			t.Fatal(err)
		}
		out = append(out, d...)
	}
	return out
}

// walChecksum continues the WAL checksum s over b (a multiple of 8
// bytes), reading its words big-endian if bigEndian, else little-endian,
// as the WAL header's magic number says.
func walChecksum(bigEndian bool, b []byte, s walfile.Checksum) walfile.Checksum {
	var order binary.ByteOrder = binary.LittleEndian
	if bigEndian {
		order = binary.BigEndian
	}
	for i := 0; i+8 <= len(b); i += 8 {
		s.S1 += order.Uint32(b[i:]) + s.S2
		s.S2 += order.Uint32(b[i+4:]) + s.S1
	}
	return s
}
