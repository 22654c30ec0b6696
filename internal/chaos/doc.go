//go:build linux

// Package chaos measures the production topology under faults: three
// `gcl agent -server` processes (embedded, clustered NATS) in network
// namespaces of a netlab lab, default timings, a fixed set of jobs (six
// singletons, one with a VIP, a singleton with a replicated SQLite
// database, a pool of two, a spread job and a ring), and an observer that
// looks at the kernel every 10 ms to see which node runs which job process,
// owns which ring partition and holds the VIP. It never asks an agent.
//
// Faults (Faults): SIGKILL of a node (its whole cgroup: agent, embedded
// NATS, jobs), SIGKILL of the node that leads the lease and activation
// streams while it runs no singleton, its link down for longer than the
// lease TTL (no TCP reset) then up, SIGSTOP of the agent alone, a freeze of
// the whole node (cgroup.freeze), and a NATS server restart under its agent
// (a second topology: a nats-server per node, agents with -nats).
//
// Each trial is analysed from the observer's timeline (Analyze): moments
// with two live instances of a singleton (or two owners of a ring
// partition, or two VIP holders), failover times, interruptions of
// instances on nodes that were not faulted, interruptions after the heal,
// jobs that never came back, and the observer's own gaps.
//
// The lab is an instrument: it reports what it sees and leaves the verdict
// to its callers. TestChaos runs each fault once and fails on any
// dual-active sample or a job that never recovered (part of make test);
// TestChaosTable, which `make chaos` runs, prints the table of many trials:
//
//	make chaos                                   # 20 trials of each fault
//	make chaos CHAOS_TRIALS=3 CHAOS_FAULTS=link-down,node-freeze
//	CHAOS_GCL=/tmp/old/gcl make chaos            # measure another build
//	CHAOS_DIR=/tmp/keep make chaos               # keep the agents' logs
//
// Nothing is synchronised by sleeping: the lab waits on conditions seen by
// the observer (or in the agents' logs, or in JetStream) with generous
// deadlines. The only fixed durations are the premises of faults ("the link
// is down for 15 s").
//
// Every node's agent runs in a cgroup v2 of its own, created before the
// agent starts (clone3 CLONE_INTO_CGROUP), so that its job processes are in
// it too: a node is killed with cgroup.kill and frozen with cgroup.freeze,
// as a power loss or a paused VM would do to all of it at once. A lab
// killed half-way leaves its namespaces, processes and cgroups to the next
// one, which removes them (netlab's sweep, sweepCgroups).
//
// Requirements: Linux, root, iproute2's ip, cgroup v2 (mounted anywhere,
// e.g. /sys/fs/cgroup or, on a hybrid host, /sys/fs/cgroup/unified). With
// CI=true a missing one fails the tests instead of skipping them.
package chaos
