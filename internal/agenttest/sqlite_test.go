package agenttest

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// sqliteJob writes a job file for a singleton that replicates the
// database at dbPath; its process only sleeps (the test writes the
// database from outside, as the app would).
func sqliteJob(t testing.TB, dir, name, dbPath string) string {
	t.Helper()
	src := fmt.Sprintf(`app %q {
  mode   = "singleton"
  sqlite = %q
  backend "exec" {
    command      = "/bin/sleep"
    args         = ["infinity"]
    kill_timeout = "2s"
  }
}
`, name, dbPath)
	path := filepath.Join(dir, name+".hcl")
	writeFile(t, path, src)
	return path
}

// replicationSection is the part of `gcl app status -json` the tests read.
type replicationSection struct {
	Replication *struct {
		Path  string `json:"path"`
		Nodes []struct {
			Node        string `json:"node"`
			Role        string `json:"role"`
			Seq         uint64 `json:"seq"`
			BytesBehind uint64 `json:"bytes_behind"`
		} `json:"nodes"`
	} `json:"replication"`
}

func (c *testCluster) replication(app string) replicationSection {
	c.t.Helper()
	var st replicationSection
	out := c.mustGCL(0, "app", "status", "-json", app)
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.t.Fatalf("app status -json: %v\n%s", err, out)
	}
	return st
}

type snapshotJSON struct {
	Name string `json:"name"`
	Seq  uint64 `json:"seq"`
	Size int64  `json:"size"`
	Node string `json:"node"`
}

// One agent runs a singleton with a replicated database: rows written to
// it show up in a snapshot taken on demand, which restores to a checked
// database file; the integrity check, the app status and the metrics
// report the replication.
func TestSQLiteSnapshotsAndStatus(t *testing.T) {
	c := newCluster(t, "n1")
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "db", "app.db")
	c.mustGCL(0, "job", "run", sqliteJob(t, dir, "db", dbPath))

	c.eventually(20*time.Second, "n1 to lead the replication of db", func() bool {
		r := c.replication("db").Replication
		return r != nil && len(r.Nodes) == 1 && r.Nodes[0].Node == "n1" && r.Nodes[0].Role == "leader"
	})
	// The first leader stored a snapshot of its (new) database.
	var before []snapshotJSON
	if err := json.Unmarshal([]byte(c.mustGCL(0, "snapshot", "list", "db", "-json")), &before); err != nil {
		t.Fatal(err)
	}
	if len(before) == 0 {
		t.Fatal("no bootstrap snapshot")
	}

	const rows = 50
	writeRows(t, dbPath, rows)

	var created snapshotJSON
	out := c.mustGCL(0, "snapshot", "create", "db", "-json", "-timeout", "60s")
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("snapshot create -json: %v\n%s", err, out)
	}
	last := before[len(before)-1]
	if created.Name == "" || created.Seq <= last.Seq || created.Node != "n1" || created.Size <= 0 {
		t.Fatalf("snapshot create: %+v, the newest before was %+v", created, last)
	}

	var list []snapshotJSON
	if err := json.Unmarshal([]byte(c.mustGCL(0, "snapshot", "list", "db", "-json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) == 0 || list[len(list)-1] != created {
		t.Fatalf("snapshot list: %+v, want %+v last", list, created)
	}
	text := c.mustGCL(0, "snapshot", "list", "db")
	if !strings.Contains(text, "NAME") || !strings.Contains(text, created.Name) {
		t.Fatalf("snapshot list:\n%s", text)
	}

	restored := filepath.Join(dir, "restored.db")
	c.mustGCL(0, "snapshot", "restore", "db", "-to", restored)
	if n := countRows(t, restored); n != rows {
		t.Fatalf("restored database has %d rows, want %d", n, rows)
	}
	// An existing file is kept unless forced.
	if code, _, stderr := c.gcl("snapshot", "restore", "db", "-to", restored); code != 1 || !strings.Contains(stderr, "-force") {
		t.Fatalf("restore over an existing file: exit %d\n%s", code, stderr)
	}
	writeFile(t, restored+"-wal", "stale")
	out = c.mustGCL(0, "snapshot", "restore", "db", created.Name, "-to", restored, "-force", "-json")
	var res struct {
		Path      string       `json:"path"`
		Integrity string       `json:"integrity"`
		Snapshot  snapshotJSON `json:"snapshot"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("snapshot restore -json: %v\n%s", err, out)
	}
	if res.Path != restored || res.Integrity != "ok" || res.Snapshot != created {
		t.Fatalf("snapshot restore -json: %+v", res)
	}
	if _, err := os.Stat(restored + "-wal"); !os.IsNotExist(err) {
		t.Fatalf("the stale -wal survived a forced restore: %v", err)
	}
	if n := countRows(t, restored); n != rows {
		t.Fatalf("restored database has %d rows, want %d", n, rows)
	}

	var integ struct {
		OK    bool `json:"ok"`
		Nodes []struct {
			Node string `json:"node"`
			Role string `json:"role"`
			OK   bool   `json:"ok"`
		} `json:"nodes"`
	}
	out = c.mustGCL(0, "app", "integrity", "db", "-json")
	if err := json.Unmarshal([]byte(out), &integ); err != nil {
		t.Fatalf("app integrity -json: %v\n%s", err, out)
	}
	if !integ.OK || len(integ.Nodes) != 1 || integ.Nodes[0].Node != "n1" || integ.Nodes[0].Role != "leader" || !integ.Nodes[0].OK {
		t.Fatalf("app integrity -json:\n%s", out)
	}

	// The leader shipped the table and every row (a transaction each).
	c.eventually(10*time.Second, "the status to count the rows", func() bool {
		r := c.replication("db").Replication
		return r != nil && len(r.Nodes) == 1 && r.Nodes[0].Role == "leader" && r.Nodes[0].Seq >= created.Seq
	})
	if r := c.replication("db").Replication; r.Path != dbPath {
		t.Fatalf("replication path %q, want %q", r.Path, dbPath)
	}
	text = c.mustGCL(0, "app", "status", "db")
	if !strings.Contains(text, "Replication: "+dbPath) || !strings.Contains(text, "BYTES-BEHIND") {
		t.Fatalf("app status:\n%s", text)
	}

	metrics := httpGet(t, "http://"+c.httpAddr("n1")+"/metrics")
	for _, want := range []string{`gcl_replication_seq{job="db",node="n1",role="leader"}`, `gcl_replication_lag_seconds{job="db",node="n1"}`,
		`gcl_replication_behind_messages{job="db",node="n1"}`, `gcl_replication_resyncs_total{job="db",node="n1"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Restore into the cluster: the rows written after the snapshot go.
	writeMoreRows(t, dbPath, 7)
	if n := countRows(t, dbPath); n != rows+7 {
		t.Fatalf("%d rows before the restore", n)
	}
	if code, _, _ := c.gcl("snapshot", "restore", "db", created.Name, "-cluster"); code != 1 {
		t.Fatalf("restore -cluster without confirmation (no terminal, no -yes): exit %d", code)
	}
	out = c.mustGCL(0, "snapshot", "restore", "db", created.Name, "-cluster", "-yes", "-json", "-timeout", "60s")
	var rr struct {
		Leader     string       `json:"leader"`
		RestoredAs snapshotJSON `json:"restored_as"`
	}
	if err := json.Unmarshal([]byte(out), &rr); err != nil || rr.Leader != "n1" || rr.RestoredAs.Seq <= created.Seq {
		t.Fatalf("snapshot restore -cluster -json: %v\n%s", err, out)
	}
	if n := countRows(t, dbPath); n != rows {
		t.Fatalf("after restoring %s the leader's database has %d rows, want %d", created.Name, n, rows)
	}
}

// writeMoreRows inserts n rows into the items table.
func writeMoreRows(t *testing.T, path string, n int) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range n {
		if _, err := db.Exec("INSERT INTO items (name) VALUES (?)", fmt.Sprintf("later %d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

// writeRows creates a table in the database and inserts n rows, one
// transaction each, then closes the connection.
func writeRows(t *testing.T, path string, n int) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("INSERT INTO items (name) VALUES (?)", fmt.Sprintf("item %d", i)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// countRows checks a database file's integrity and counts its items.
func countRows(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check of %s: %q, %v", path, check, err)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM items").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
