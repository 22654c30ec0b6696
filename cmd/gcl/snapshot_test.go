package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	cluster "github.com/ozanturksever/go-cluster"
	"github.com/ozanturksever/go-cluster/agent"
	"github.com/ozanturksever/go-cluster/replication"
)

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 110592: "108.0 KiB",
		5 << 20: "5.0 MiB", 3 << 29: "1.5 GiB", 2 << 40: "2.0 TiB",
	} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		850 * time.Millisecond:         "850ms ago",
		12 * time.Second:               "12s ago",
		3*time.Minute + 59*time.Second: "3m ago",
		5 * time.Hour:                  "5h ago",
		72 * time.Hour:                 "3d ago",
		-time.Second:                   "0ms ago", // a clock ahead of ours
	} {
		if got := ago(now, now.Add(-d)); got != want {
			t.Errorf("ago(%s) = %q, want %q", d, got, want)
		}
	}
	if got := ago(now, time.Time{}); got != "-" {
		t.Errorf("ago(zero) = %q", got)
	}
}

func TestRoundDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		371 * time.Microsecond:     "371µs",
		1234567 * time.Nanosecond:  "1.23ms",
		1234567 * time.Microsecond: "1.235s",
		75 * time.Second:           "1m15s",
	} {
		if got := roundDuration(d); got != want {
			t.Errorf("roundDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestReplicationRows(t *testing.T) {
	now := time.Now()
	nodes := []agent.ReplicationNode{
		{ReplicationStatus: cluster.ReplicationStatus{Node: "n1", Role: replication.RoleLeader, Seq: 120, LagMS: 9, Behind: 4, Updated: now.Add(-2 * time.Second)}},
		{ReplicationStatus: cluster.ReplicationStatus{Node: "n2", Role: replication.RoleStandby, Seq: 100, LagMS: 12.34, Behind: 20, Updated: now.Add(-300 * time.Millisecond), Error: "slow"}, BytesBehind: 5 << 20},
	}
	want := [][]string{
		{"n1", "leader", "120", "-", "-", "-", "2s ago", ""},
		{"n2", "standby", "100", "12.3", "20", "5.0 MiB", "300ms ago", "slow"},
	}
	if got := replicationRows(nodes, now); !reflect.DeepEqual(got, want) {
		t.Fatalf("rows:\n%q\nwant\n%q", got, want)
	}
	var b bytes.Buffer
	writeReplication(&b, &agent.ReplicationView{Path: "/data/app.db", Nodes: nodes}, now)
	mustContain(t, "replication section", b.String(), "Replication: /data/app.db", "BYTES-BEHIND", "n2    standby", "5.0 MiB")
	b.Reset()
	writeReplication(&b, &agent.ReplicationView{Path: "/data/app.db", Nodes: []agent.ReplicationNode{}}, now)
	mustContain(t, "empty replication section", b.String(), "no node reports yet")
}

func TestCheckRestoreTarget(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	if stale, err := checkRestoreTarget(db, false); err != nil || len(stale) != 0 {
		t.Fatalf("new path: %v, %v", stale, err)
	}
	if _, err := checkRestoreTarget(dir, true); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Fatalf("directory: %v", err)
	}
	// A stale log next to a missing database would be applied to it.
	writeJob(t, dir, "app.db-wal", "x")
	if _, err := checkRestoreTarget(db, false); err == nil || !strings.Contains(err.Error(), "app.db-wal") {
		t.Fatalf("stale -wal: %v", err)
	}
	writeJob(t, dir, "app.db", "x")
	writeJob(t, dir, "app.db-shm", "x")
	if _, err := checkRestoreTarget(db, false); err == nil || !strings.Contains(err.Error(), "-force") {
		t.Fatalf("existing database: %v", err)
	}
	stale, err := checkRestoreTarget(db, true)
	if want := []string{db + "-wal", db + "-shm"}; err != nil || !reflect.DeepEqual(stale, want) {
		t.Fatalf("forced: %v, %v; want %v", stale, err, want)
	}
}

func TestIntegrityCheckOfAFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	msgs, err := integrityCheck(t.Context(), empty)
	if err != nil || !integrityOK(msgs) {
		t.Fatalf("empty database: %q, %v", msgs, err)
	}
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("junk"), 1024), 0o644); err != nil {
		t.Fatal(err)
	}
	if msgs, err := integrityCheck(t.Context(), junk); err == nil && integrityOK(msgs) {
		t.Fatal("junk passed the integrity check")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("the check wrote next to the files: %v", entries)
	}
}

func TestWriteIntegrity(t *testing.T) {
	var b bytes.Buffer
	writeIntegrity(&b, integrityResult{
		Nodes: []replication.IntegrityReport{
			{Node: "n1", Role: "leader", Seq: 7, OK: true, TookMS: 1.5},
			{Node: "n2", Role: "standby", Seq: 6, OK: false, Messages: []string{"Page 4 is never used"}, TookMS: 2},
		},
		Missing: []string{"n3"},
	})
	mustContain(t, "integrity", b.String(), "NODE  ROLE     SEQ  RESULT     TOOK", "n1    leader   7    ok         1.5ms",
		"n2    standby  6    FAILED", "n3    -        -    no answer", "n2: Page 4 is never used")
	b.Reset()
	writeIntegrity(&b, integrityResult{})
	if b.Len() != 0 {
		t.Errorf("no answers printed %q", b.String())
	}
}

func TestSnapshotTable(t *testing.T) {
	var b bytes.Buffer
	created := time.Date(2025, 3, 4, 5, 6, 7, 0, time.Local)
	if err := writeSnapshotTable(&b, []snapshotView{{Name: "snap-a", Seq: 57, Epoch: 2, Size: 8192, Created: created, Node: "n1"}}); err != nil {
		t.Fatal(err)
	}
	want := "NAME    SEQ  EPOCH  SIZE     CREATED              NODE\nsnap-a  57   2      8.0 KiB  2025-03-04 05:06:07  n1\n"
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant\n%s", b.String(), want)
	}
}

// Usage errors and -cluster are decided before the cluster is contacted.
func TestSnapshotRestoreUsage(t *testing.T) {
	code, _, stderr := gcl(t, "snapshot", "restore", "db", "-to", filepath.Join(t.TempDir(), "x.db"), "-cluster")
	if code != 1 {
		t.Errorf("-cluster with -to: exit %d, want 1", code)
	}
	mustContain(t, "-cluster with -to", stderr, "exclude")
	for _, args := range [][]string{
		{"snapshot", "restore"},
		{"snapshot", "restore", "db"}, // no -to
		{"snapshot", "restore", "db", "a", "b", "-to", "x.db"},
		{"snapshot", "create"},
		{"snapshot", "list"},
		{"app", "integrity"},
	} {
		if code, _, _ := gcl(t, args...); code != 1 {
			t.Errorf("gcl %s: exit %d, want 1", strings.Join(args, " "), code)
		}
	}
	existing := writeJob(t, t.TempDir(), "app.db", "x")
	code, _, stderr = gcl(t, "snapshot", "restore", "db", "-to", existing)
	if code != 1 || !strings.Contains(stderr, "-force") {
		t.Errorf("existing file: exit %d\n%s", code, stderr)
	}
	_, stdout, _ := gcl(t, "snapshot", "restore", "--help")
	mustContain(t, "restore help", stdout, "gcl snapshot restore database -to /tmp/database.db", "integrity_check")
}
