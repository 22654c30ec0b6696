//go:build linux

package chaos

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Kind is how a job runs: how many live instances it should have.
type Kind int

const (
	Singleton Kind = iota // exactly one live instance
	Pool                  // Count instances on distinct nodes
	Spread                // one instance on every node
	Ring                  // one instance on every node; each partition owned once
)

// Job is one app of the lab's job set.
type Job struct {
	Name   string
	Kind   Kind
	Count  int  // Pool: instances
	VIP    bool // holds the JobSet's VIP while active
	SQLite bool // replicates a SQLite database
}

// JobSet is the lab's jobs. Every job's process is /bin/sleep (one process,
// no children that could outlive it and be mistaken for a live instance);
// the observer tells jobs apart by GCL_APP, which the agent sets.
type JobSet struct {
	Jobs       []Job
	Partitions int          // of the ring job
	VIP        netip.Prefix // of the VIP job, on eth0 of its node
}

// StandardJobs is the set the issue asks for: six singletons (the first
// with a VIP), a singleton with a replicated SQLite database, a pool of two,
// a spread job and a ring of eight partitions.
func StandardJobs(vip netip.Prefix) JobSet {
	s := JobSet{Partitions: 8, VIP: vip}
	for i := 1; i <= 6; i++ {
		s.Jobs = append(s.Jobs, Job{Name: fmt.Sprintf("single-%d", i), Kind: Singleton, VIP: i == 1})
	}
	s.Jobs = append(s.Jobs,
		Job{Name: "db", Kind: Singleton, SQLite: true},
		Job{Name: "pool", Kind: Pool, Count: 2},
		Job{Name: "spread", Kind: Spread},
		Job{Name: "ring", Kind: Ring},
	)
	return s
}

// Names lists the job names in order.
func (s JobSet) Names() []string {
	out := make([]string, len(s.Jobs))
	for i, j := range s.Jobs {
		out[i] = j.Name
	}
	return out
}

func (s JobSet) index(name string) int {
	for i, j := range s.Jobs {
		if j.Name == name {
			return i
		}
	}
	return -1
}

// ringIndex and vipIndex are the ring's and the VIP job's indexes, -1 if
// there is none.
func (s JobSet) ringIndex() int {
	for i, j := range s.Jobs {
		if j.Kind == Ring {
			return i
		}
	}
	return -1
}

func (s JobSet) vipIndex() int {
	for i, j := range s.Jobs {
		if j.VIP {
			return i
		}
	}
	return -1
}

// want is how many nodes should run job i live when nodes are up.
func (s JobSet) want(i, nodes int) int {
	switch j := s.Jobs[i]; j.Kind {
	case Singleton:
		return 1
	case Pool:
		return min(j.Count, nodes)
	default:
		return nodes
	}
}

// Unhealthy says what differs from the desired state in x with the nodes
// of up running; "" when nothing does. Healthy means: every job at its
// count (no more, no less), every ring partition owned exactly once, the
// VIP held exactly by the VIP job's node, no process of a job that cannot
// act (stopped or frozen) and none outside the nodes.
func (s JobSet) Unhealthy(x Sample, up mask, labels []string) string {
	if x.Stray > 0 {
		return fmt.Sprintf("%d job processes outside every node", x.Stray)
	}
	for i, j := range s.Jobs {
		live := x.Live[i]
		if x.Present[i] != live {
			return fmt.Sprintf("%s: present on %s, live on %s", j.Name, x.Present[i].format(labels), live.format(labels))
		}
		if live&^up != 0 {
			return fmt.Sprintf("%s: live on %s, outside the nodes that are up", j.Name, live.format(labels))
		}
		if want := s.want(i, up.count()); live.count() != want {
			return fmt.Sprintf("%s: live on %s, want %d nodes", j.Name, live.format(labels), want)
		}
	}
	for p, o := range x.Owners {
		if o.count() != 1 {
			return fmt.Sprintf("ring partition %d owned by %s", p, o.format(labels))
		}
	}
	if v := s.vipIndex(); v >= 0 && (x.VIP.count() != 1 || x.VIP != x.Live[v]) {
		return fmt.Sprintf("VIP held by %s, %s live on %s", x.VIP.format(labels), s.Jobs[v].Name, x.Live[v].format(labels))
	}
	return ""
}

// Write writes one job file per job into dir. sqlitePath is the database
// of the SQLite job: the same path on every node, which each agent sees on
// its own disk (see Node).
func (s JobSet) Write(dir, sqlitePath string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, j := range s.Jobs {
		if err := os.WriteFile(filepath.Join(dir, j.Name+".hcl"), []byte(s.source(j, sqlitePath)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (s JobSet) source(j Job, sqlitePath string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "app %q {\n", j.Name)
	switch j.Kind {
	case Singleton:
		b.WriteString("  mode = \"singleton\"\n")
	case Pool:
		fmt.Fprintf(&b, "  mode  = \"replicas\"\n  count = %d\n", j.Count)
		// One instance a node, so that the observer's view (which nodes
		// run the job) counts instances.
		b.WriteString("  constraint {\n    operator = \"distinct_hosts\"\n  }\n")
	case Spread:
		b.WriteString("  mode = \"spread\"\n")
	case Ring:
		fmt.Fprintf(&b, "  mode       = \"ring\"\n  partitions = %d\n", s.Partitions)
	}
	if j.VIP {
		fmt.Fprintf(&b, "  vip = %q\n", s.VIP.String())
	}
	if j.SQLite {
		fmt.Fprintf(&b, "  sqlite = %q\n", sqlitePath)
	}
	b.WriteString(`  backend "exec" {
    command      = "/bin/sleep"
    args         = ["infinity"]
    kill_timeout = "2s"
  }
}
`)
	return b.String()
}
