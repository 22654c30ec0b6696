package state

// Names used by the orchestrator (gcl agents, the scheduler and the CLI).
//
// The jobs bucket keeps a history per job, so `gcl job history` and
// `gcl job revert` read past versions from it. The schedule bucket holds
// what the scheduler decided and what agents report, one key per node so
// that each key has a single writer.

// JobsBucket holds one key per job: its submitted versions.
func (l Layout) JobsBucket() string { return "gcl_" + l.Platform + "_jobs" }

// JobHistory is how many versions of a job the jobs bucket keeps (the
// server's maximum).
const JobHistory = 64

// ScheduleBucket holds allocations, node controls, instance reports and
// job progress.
func (l Layout) ScheduleBucket() string { return "gcl_" + l.Platform + "_schedule" }

// AllocKey is the scheduler's assignment for one node (single writer: the
// scheduler, by compare-and-set).
func (l Layout) AllocKey(node string) string { return "alloc." + node }

// ControlKey is an operator's settings for one node: eligibility, drain.
func (l Layout) ControlKey(node string) string { return "control." + node }

// ReportKey is what the agent on node reports about its instances (single
// writer: that agent).
func (l Layout) ReportKey(node string) string { return "report." + node }

// ProgressKey is the scheduler's view of one job's rollout.
func (l Layout) ProgressKey(job string) string { return "progress." + job }

// SchedulerLeaseKey is the lease (in the leases bucket) that makes one agent
// the scheduler. '=' cannot occur in an app name, so no app lease collides.
const SchedulerLeaseKey = "=scheduler"

// AgentCallSubject is where the agent on node answers requests from the
// CLI that only it can serve (logs of its instances).
func (l Layout) AgentCallSubject(node, method string) string {
	return "gcl." + l.Platform + ".agent." + node + "." + method
}

// AgentsSubject is where every agent listens for a request about an app
// that only the agent running it can serve (step down: only the leader
// answers; rebalance: any one agent answers).
func (l Layout) AgentsSubject(method string) string {
	return "gcl." + l.Platform + ".agents." + method
}
