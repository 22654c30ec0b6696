package capture_test

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/ozanturksever/go-cluster/internal/sqlitetest"
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

func TestMain(m *testing.M) {
	code := m.Run()
	sqlitetest.Cleanup()
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
