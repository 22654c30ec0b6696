package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	cluster "github.com/ozanturksever/go-cluster"
	"github.com/ozanturksever/go-cluster/control"
	"github.com/ozanturksever/go-cluster/replication"
)

// metrics are the agent's Prometheus metrics, on their own registry so
// that two agents in one process (tests) do not collide.
type metrics struct {
	reg         *prometheus.Registry
	instances   *prometheus.GaugeVec // by job and state
	leader      *prometheus.GaugeVec // 1 where this node leads the job
	restarts    *prometheus.GaugeVec
	epoch       *prometheus.GaugeVec     // lease epoch of the job's term on this node
	activations *prometheus.CounterVec   // times the job became active here (failovers, step-downs, starts)
	renew       *prometheus.HistogramVec // lease renewal round trips
	events      *prometheus.CounterVec
	placements  prometheus.Counter
	evaluations prometheus.Counter
	evalSeconds prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gcl_instances", Help: "Instances on this node by job and state.",
		}, []string{"job", "state"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gcl_leader", Help: "1 when this node's instance of the job is active (a singleton's leader).",
		}, []string{"job"}),
		restarts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gcl_instance_restarts", Help: "Process restarts of the job's instance on this node.",
		}, []string{"job"}),
		epoch: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gcl_epoch", Help: "Lease epoch of the job's current term on this node (singletons; 0 elsewhere).",
		}, []string{"job"}),
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gcl_activations_total", Help: "Times the job became active on this node: initial starts, failovers and handovers.",
		}, []string{"job"}),
		renew: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gcl_lease_renew_seconds", Help: "Round trip of successful lease renewals.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14),
		}, []string{"app"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gcl_events_total", Help: "Events of this node's instances by kind: VIP added or removed, backend started, stopped or failed, ring moves.",
		}, []string{"job", "kind"}),
		placements: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gcl_scheduler_placements_total", Help: "Allocations added by the scheduler while it ran here.",
		}),
		evaluations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gcl_scheduler_evaluations_total", Help: "Scheduler evaluations run here.",
		}),
		evalSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gcl_scheduler_evaluation_seconds", Help: "Time of one scheduler evaluation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	m.reg.MustRegister(m.instances, m.leader, m.restarts, m.epoch, m.activations, m.renew, m.events, m.placements, m.evaluations, m.evalSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe sets the instance gauges from this node's report.
func (m *metrics) observe(r control.Report) {
	m.instances.Reset()
	m.leader.Reset()
	m.restarts.Reset()
	for _, in := range r.Instances {
		m.instances.WithLabelValues(in.Job, in.State).Inc()
		v := 0.0
		if in.Active {
			v = 1
		}
		m.leader.WithLabelValues(in.Job).Set(v)
		m.restarts.WithLabelValues(in.Job).Set(float64(in.Restarts))
	}
}

// replicationCollector reports the replication of this node's WithSQLite
// instances at scrape time, from each app's ReplicationStatus: no
// goroutine, and nothing stale once an instance is gone.
type replicationCollector struct {
	node  string
	local func() []localReplication

	seq, lag, behind, bytes, epoch, applied, resyncs, failing *prometheus.Desc
}

// localReplication is one local instance's replication status.
type localReplication struct {
	job    string
	status cluster.ReplicationStatus
}

func newReplicationCollector(node string, local func() []localReplication) *replicationCollector {
	labels := []string{"job", "node"}
	return &replicationCollector{
		node: node, local: local,
		seq: prometheus.NewDesc("gcl_replication_seq",
			"Last transaction of the job's SQLite database applied (standby) or shipped (leader) here.", []string{"job", "node", "role"}, nil),
		lag: prometheus.NewDesc("gcl_replication_lag_seconds",
			"On a standby, time from the leader's capture of the last applied transaction to its apply here (0 on the leader).", labels, nil),
		behind: prometheus.NewDesc("gcl_replication_behind_messages",
			"On a standby, log messages not yet applied when the last one was delivered (0 on the leader).", labels, nil),
		bytes: prometheus.NewDesc("gcl_replication_log_bytes",
			"Log bytes up to the last transaction applied or shipped here; a standby's distance to the leader's is its backlog.", labels, nil),
		epoch: prometheus.NewDesc("gcl_replication_epoch",
			"Leader epoch of the last log entry seen here.", labels, nil),
		applied: prometheus.NewDesc("gcl_replication_transactions_total",
			"Transactions applied (standby) or shipped (leader) since the replication of the instance started.", labels, nil),
		resyncs: prometheus.NewDesc("gcl_replication_resyncs_total",
			"Times the replica was replaced from a snapshot since the replication of the instance started.", labels, nil),
		failing: prometheus.NewDesc("gcl_replication_error",
			"1 while the replication of the instance reports an error.", labels, nil),
	}
}

func (c *replicationCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.seq, c.lag, c.behind, c.bytes, c.epoch, c.applied, c.resyncs, c.failing} {
		ch <- d
	}
}

func (c *replicationCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.local() {
		st := r.status
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, r.job, c.node)
		}
		ch <- prometheus.MustNewConstMetric(c.seq, prometheus.GaugeValue, float64(st.Seq), r.job, c.node, st.Role)
		lag, behind := st.LagMS/1000, float64(st.Behind)
		if st.Role == replicationLeader {
			lag, behind = 0, 0 // figures of its last term as a standby
		}
		gauge(c.lag, lag)
		gauge(c.behind, behind)
		gauge(c.bytes, float64(st.Bytes))
		gauge(c.epoch, float64(st.Epoch))
		failing := 0.0
		if st.Error != "" {
			failing = 1
		}
		gauge(c.failing, failing)
		ch <- prometheus.MustNewConstMetric(c.applied, prometheus.CounterValue, float64(st.Applied), r.job, c.node)
		ch <- prometheus.MustNewConstMetric(c.resyncs, prometheus.CounterValue, float64(st.Resyncs), r.job, c.node)
	}
}

// replicationLeader is replication.RoleLeader, the role of the node that
// ships.
const replicationLeader = replication.RoleLeader

// localReplications lists the replication status of this node's
// instances that replicate a database.
func (a *Agent) localReplications() []localReplication {
	a.mu.Lock()
	list := make([]*instance, 0, len(a.instances))
	for _, in := range a.instances {
		list = append(list, in)
	}
	a.mu.Unlock()
	var out []localReplication
	for _, in := range list {
		if st, ok := in.app.ReplicationStatus(); ok {
			out = append(out, localReplication{job: in.job.Name, status: st})
		}
	}
	return out
}
