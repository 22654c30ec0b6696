package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ozanturksever/go-cluster/control"
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
