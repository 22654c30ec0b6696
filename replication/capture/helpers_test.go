package capture_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/ozanturksever/go-cluster/replication/capture"
	"github.com/ozanturksever/go-cluster/replication/walfile"
)

// replica is the tiny test applier: a plain database file that captured
// transactions are written into page by page.
type replica struct {
	path string
	f    *os.File
	ps   int64
}

func openReplica(t testing.TB, path string, ps uint32) *replica {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &replica{path: path, f: f, ps: int64(ps)}
}

// apply writes the page images of txn in WAL order (a later image of a
// page wins) and truncates the file to the size after the commit.
func (r *replica) apply(t testing.TB, txn walfile.Txn) {
	t.Helper()
	if int64(txn.PageSize) != r.ps {
		t.Fatalf("txn page size %d, replica %d", txn.PageSize, r.ps)
	}
	for _, f := range txn.Frames {
		if _, err := r.f.WriteAt(f.Data, int64(f.Pgno-1)*r.ps); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.f.Truncate(int64(txn.CommitSize) * r.ps); err != nil {
		t.Fatal(err)
	}
}

func (r *replica) close() { r.f.Close() }

// copyFile copies src to a new file in dir and returns its path.
func copyFile(t testing.TB, src, dir string) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, "check-*.db")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	return out.Name()
}

// dbState opens the database at path (a copy of a replica, or the source
// when nothing else in this process uses it) and returns the result of
// PRAGMA integrity_check, a digest of the schema and of every table's
// rows, and the IDs in the writer's log table.
func dbState(t testing.TB, path string) (integrity, digest string, ids []int64) {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil {
		t.Fatalf("integrity_check %s: %v", path, err)
	}
	h := sha256.New()
	var tables []string
	rows, err := db.QueryContext(ctx, "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var typ, name, tbl, q string
		if err := rows.Scan(&typ, &name, &tbl, &q); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s|%s|%s|%s\n", typ, name, tbl, q)
		if typ == "table" && name != "sqlite_sequence" {
			tables = append(tables, name)
		}
	}
	rows.Close()
	sort.Strings(tables)
	for _, tbl := range tables {
		rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT * FROM %q ORDER BY rowid", tbl))
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(h, "%s:", tbl)
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					fmt.Fprintf(h, "blob%d:", len(b))
					h.Write(b)
				} else {
					fmt.Fprintf(h, "%T:%v|", v, v)
				}
			}
			h.Write([]byte{'\n'})
		}
		rows.Close()
	}
	if rows, err := db.QueryContext(ctx, "SELECT id FROM log ORDER BY id"); err == nil {
		for rows.Next() {
			var id int64
			rows.Scan(&id)
			ids = append(ids, id)
		}
		rows.Close()
	}
	return integrity, hex.EncodeToString(h.Sum(nil)), ids
}

var (
	writerOnce sync.Once
	writerBin  string
	writerErr  error
)

// writerPath builds internal/sqlitewriter once per test binary.
func writerPath(t testing.TB) string {
	t.Helper()
	writerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sqlitewriter-")
		if err != nil {
			writerErr = err
			return
		}
		writerBin = filepath.Join(dir, "sqlitewriter")
		out, err := exec.Command("go", "build", "-o", writerBin, "github.com/ozanturksever/go-cluster/internal/sqlitewriter").CombinedOutput()
		if err != nil {
			writerErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if writerErr != nil {
		t.Fatal(writerErr)
	}
	return writerBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if writerBin != "" {
		os.RemoveAll(filepath.Dir(writerBin))
	}
	os.Exit(code)
}

// snapshot takes a snapshot and skips the queued transactions it already
// holds, as a caller that ships every transaction would ship them first.
func snapshot(ctx context.Context, c *capture.Capturer, dst string) (walfile.Position, error) {
	pos, pending, err := c.Snapshot(ctx, dst)
	for range pending {
		if _, err := c.Next(ctx); err != nil {
			return pos, err
		}
	}
	return pos, err
}
