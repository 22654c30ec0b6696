package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	cluster "github.com/ozanturksever/go-cluster"
)

func TestSnapshotsKept(t *testing.T) {
	for _, tt := range []struct {
		interval, retention time.Duration
		want                int
	}{
		{time.Hour, 24 * time.Hour, 24},
		{time.Hour, 90 * time.Minute, 2}, // rounded up
		{time.Hour, time.Hour, 1},
		{time.Hour, 0, 1},
		{10 * time.Minute, 35 * time.Minute, 4},
		{0, time.Hour, 1},
	} {
		if got := snapshotsKept(tt.interval, tt.retention); got != tt.want {
			t.Errorf("snapshotsKept(%s, %s) = %d, want %d", tt.interval, tt.retention, got, tt.want)
		}
	}
}

// The leader comes first; a standby's backlog is its distance in log
// bytes to the leader's, none once it has the leader's last transaction.
func TestReplicationNodes(t *testing.T) {
	got := replicationNodes([]cluster.ReplicationStatus{
		{Node: "n3", Role: "standby", Seq: 90, Bytes: 700},
		{Node: "n2", Role: "resyncing", Seq: 0, Bytes: 0},
		{Node: "n1", Role: "leader", Seq: 100, Bytes: 1000},
		{Node: "n4", Role: "standby", Seq: 100, Bytes: 0}, // reopened: no byte count yet
	})
	want := []struct {
		node   string
		behind uint64
	}{{"n1", 0}, {"n2", 1000}, {"n3", 300}, {"n4", 0}}
	if len(got) != len(want) {
		t.Fatalf("%d nodes: %+v", len(got), got)
	}
	for i, w := range want {
		if got[i].Node != w.node || got[i].BytesBehind != w.behind {
			t.Errorf("row %d: %s %d, want %s %d", i, got[i].Node, got[i].BytesBehind, w.node, w.behind)
		}
	}
	// Without a leader nothing is known to be behind.
	for _, n := range replicationNodes([]cluster.ReplicationStatus{{Node: "n1", Role: "standby", Bytes: 5}}) {
		if n.BytesBehind != 0 {
			t.Errorf("no leader: %+v", n)
		}
	}
}

// The collector reports each local replicating instance at scrape time;
// a leader's lag and backlog are 0 whatever its last term as a standby
// left in its status.
func TestReplicationCollector(t *testing.T) {
	var local []localReplication
	reg := prometheus.NewRegistry()
	reg.MustRegister(newReplicationCollector("n1", func() []localReplication { return local }))
	if got := gather(t, reg); len(got) != 0 {
		t.Fatalf("no instances: %v", got)
	}
	local = []localReplication{
		{job: "db", status: cluster.ReplicationStatus{Role: "leader", Seq: 42, LagMS: 1500, Behind: 3, Resyncs: 1, Applied: 41}},
		{job: "cache", status: cluster.ReplicationStatus{Role: "standby", Seq: 40, LagMS: 250, Behind: 7, Error: "boom"}},
	}
	got := gather(t, reg)
	for sample, want := range map[string]float64{
		`gcl_replication_seq{job="db",node="n1",role="leader"}`:     42,
		`gcl_replication_seq{job="cache",node="n1",role="standby"}`: 40,
		`gcl_replication_lag_seconds{job="db",node="n1"}`:           0,
		`gcl_replication_lag_seconds{job="cache",node="n1"}`:        0.25,
		`gcl_replication_behind_messages{job="db",node="n1"}`:       0,
		`gcl_replication_behind_messages{job="cache",node="n1"}`:    7,
		`gcl_replication_resyncs_total{job="db",node="n1"}`:         1,
		`gcl_replication_transactions_total{job="db",node="n1"}`:    41,
		`gcl_replication_error{job="cache",node="n1"}`:              1,
		`gcl_replication_error{job="db",node="n1"}`:                 0,
	} {
		if v, ok := got[sample]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", sample, v, ok, want)
		}
	}
	local = nil
	if got := gather(t, reg); len(got) != 0 {
		t.Fatalf("instances gone, metrics stay: %v", got)
	}
}

// gather scrapes reg into "name{labels}" → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			v := m.GetGauge().GetValue()
			if m.Counter != nil {
				v = m.GetCounter().GetValue()
			}
			out[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}
