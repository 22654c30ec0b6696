// Package sqlitetest runs internal/sqlitewriter as a separate process and
// reads databases back for tests of SQLite replication: what a writer
// reported committed, and a database's integrity, content digest and
// committed IDs.
package sqlitetest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

var (
	buildOnce sync.Once
	bin       string
	buildErr  error
)

// WriterPath builds internal/sqlitewriter once per test binary.
func WriterPath(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sqlitewriter-")
		if err != nil {
			buildErr = err
			return
		}
		bin = filepath.Join(dir, "sqlitewriter")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/ozanturksever/go-cluster/internal/sqlitewriter").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build sqlitewriter: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}

// Cleanup removes the built writer; call it from TestMain after m.Run.
func Cleanup() {
	if bin != "" {
		os.RemoveAll(filepath.Dir(bin))
	}
}

// Run is the output of a writer process.
type Run struct {
	Commits     []int64
	CommitTimes []time.Time         // when each commit line was read
	Checkpoints map[string][]string // mode → outcomes
	Vacuums     int
	Rollbacks   int
	Ready       bool
	Lines       []string // anything else, and VACUUMs that failed
}

// Writer is a running sqlitewriter process.
type Writer struct {
	Cmd    *exec.Cmd
	stderr strings.Builder
	done   chan struct{}

	mu      sync.Mutex
	run     Run
	changed chan struct{}
}

// StartWriter starts sqlitewriter with args (see its doc: -db, -n,
// -start, -rate, -blob-every, ...).
func StartWriter(t testing.TB, ctx context.Context, args ...string) *Writer {
	t.Helper()
	w := &Writer{done: make(chan struct{}), changed: make(chan struct{})}
	w.run.Checkpoints = map[string][]string{}
	w.Cmd = exec.CommandContext(ctx, WriterPath(t), args...)
	out, err := w.Cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w.Cmd.Stderr = &w.stderr
	if err := w.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.line(sc.Text())
		}
	}()
	return w
}

func (w *Writer) line(line string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := strings.Fields(line)
	switch {
	case len(f) == 2 && f[0] == "commit":
		id, _ := strconv.ParseInt(f[1], 10, 64)
		w.run.Commits = append(w.run.Commits, id)
		w.run.CommitTimes = append(w.run.CommitTimes, time.Now())
	case len(f) > 2 && f[0] == "checkpoint":
		w.run.Checkpoints[f[1]] = append(w.run.Checkpoints[f[1]], strings.Join(f[2:], " "))
	case len(f) > 0 && f[0] == "vacuum":
		w.run.Vacuums++
		if !strings.HasSuffix(line, "err=<nil>") {
			w.run.Lines = append(w.run.Lines, line)
		}
	case len(f) > 0 && f[0] == "rollback":
		w.run.Rollbacks++
	case line == "ready":
		w.run.Ready = true
	default:
		w.run.Lines = append(w.run.Lines, line)
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// Committed returns the IDs reported committed so far, and a channel
// closed at the next line of output.
func (w *Writer) Committed() ([]int64, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.run.Commits...), w.changed
}

// WaitCommits waits until at least n commits were reported (or the
// writer ended, or ctx ended) and returns them.
func (w *Writer) WaitCommits(ctx context.Context, n int) []int64 {
	for {
		ids, changed := w.Committed()
		if len(ids) >= n {
			return ids
		}
		select {
		case <-changed:
		case <-w.done:
			ids, _ := w.Committed()
			return ids
		case <-ctx.Done():
			return ids
		}
	}
}

// Signal sends sig to the writer.
func (w *Writer) Signal(sig syscall.Signal) error { return w.Cmd.Process.Signal(sig) }

// Wait waits for the writer to exit and fails the test if it failed
// (unless allowKill and it was killed by a signal).
func (w *Writer) Wait(t testing.TB, allowKill bool) *Run {
	t.Helper()
	<-w.done
	err := w.Cmd.Wait()
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		killed := ok && ee.Sys().(syscall.WaitStatus).Signaled()
		if !(allowKill && killed) {
			t.Fatalf("writer: %v\n%s", err, w.stderr.String())
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.run
	r.Commits = append([]int64(nil), r.Commits...)
	return &r
}

// DBState opens the database at path and returns its integrity_check
// result, a digest of its schema and every row, and the IDs in its log
// table (the writer's committed transactions), sorted.
func DBState(t testing.TB, path string) (integrity, digest string, ids []int64) {
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
