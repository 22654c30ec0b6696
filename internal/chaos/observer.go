//go:build linux

package chaos

import (
	"context"
	"net/netip"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ozanturksever/go-cluster/internal/netlab"
)

// ScanInterval is how often the observer looks. A scan of ~150 processes
// takes about 1 ms (3 ms under the race detector), so samples are ~10 ms
// apart on an idle machine. The kernel can hold a read of /proc or a
// netlink dump up for tens of milliseconds now and then, and a VM's CPU
// can be taken away: the gaps actually seen are part of every trial's
// result (Result.MaxGap, Result.Late).
const ScanInterval = 10 * time.Millisecond

// jobComm is the command name of every job process (see JobSet).
const jobComm = "sleep"

// Observer samples, from /proc and netlink, which node runs which job.
// It tells a job's process by its command name and GCL_APP, and its node by
// its network namespace; it never asks an agent.
type Observer struct {
	jobs       JobSet
	nodes      []nsID         // network namespace of each node
	hosts      []*netlab.Host // for the VIP
	vip        netip.Addr
	cgroupRoot string
	// nodeCgroups are the nodes' cgroup directories.
	nodeCgroups []string

	// Touched by the scanning goroutine only.
	cache  map[string]*procEntry
	gen    uint64
	buf    []byte
	dirBuf []byte
	pids   []string

	mu       sync.Mutex
	samples  []Sample
	last     Sample
	maxScan  time.Duration
	priority string

	cancel context.CancelFunc
	done   chan struct{}
}

// procEntry is what the observer learnt of a process when it first saw it
// (or saw it exec).
type procEntry struct {
	start     uint64
	comm      string
	job       int    // index in the JobSet, -1: not a job process
	node      int    // index of its node, -1: in no node's namespace
	partsFile string // GCL_PARTITIONS_FILE of a ring process
	gen       uint64
}

// NewObserver starts sampling every ScanInterval until Stop. hosts are the
// nodes, nodeCgroups their cgroup directories (under cgroupRoot, the cgroup
// v2 mount).
func NewObserver(jobs JobSet, hosts []*netlab.Host, cgroupRoot string, nodeCgroups []string) (*Observer, error) {
	o := &Observer{
		jobs: jobs, hosts: hosts, vip: jobs.VIP.Addr(), cgroupRoot: cgroupRoot, nodeCgroups: nodeCgroups,
		cache: map[string]*procEntry{}, buf: make([]byte, 4096), dirBuf: make([]byte, 32<<10), done: make(chan struct{}),
	}
	for _, h := range hosts {
		id, err := netnsOfFd(int(h.NS))
		if err != nil {
			return nil, err
		}
		o.nodes = append(o.nodes, id)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	go o.run(ctx)
	return o, nil
}

// run samples until ctx ends, on a thread of its own with a real-time
// priority where the kernel allows it: the agents compete for the two
// cores exactly when the lab is busiest (a failover), and a sample that
// comes late is a moment not seen. The thread sleeps in the kernel until
// the next tick (clock_nanosleep), so its wake-up does not wait for the Go
// runtime's timers either.
func (o *Observer) run(ctx context.Context) {
	defer close(o.done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prio := raisePriority()
	o.mu.Lock()
	o.priority = prio
	o.mu.Unlock()
	var now unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
	next := unix.TimespecToNsec(now)
	for ctx.Err() == nil {
		start := time.Now()
		s := o.scan()
		took := time.Since(start)
		o.mu.Lock()
		o.maxScan = max(o.maxScan, took)
		o.samples = append(o.samples, s)
		o.last = s
		o.mu.Unlock()
		next += ScanInterval.Nanoseconds()
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
		if behind := unix.TimespecToNsec(now) - next; behind > 0 {
			next += behind // late: start the next interval now, do not catch up
			continue
		}
		ts := unix.NsecToTimespec(next)
		for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &ts, nil) == unix.EINTR {
		}
	}
}

// raisePriority gives the calling thread SCHED_FIFO priority 1, or failing
// that nice -10, and says which it got. A scan is about a millisecond every
// ScanInterval, so a real-time thread cannot starve the agents.
func raisePriority() string {
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}
	if err := unix.SchedSetAttr(0, attr, 0); err == nil {
		return "SCHED_FIFO 1"
	}
	if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), -10); err == nil {
		return "nice -10"
	}
	return "normal"
}

// Priority says how the sampling thread is scheduled.
func (o *Observer) Priority() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.priority
}

// MaxScan returns and resets the longest scan since the last call.
func (o *Observer) MaxScan() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := o.maxScan
	o.maxScan = 0
	return m
}

// Stop ends sampling.
func (o *Observer) Stop() {
	o.cancel()
	<-o.done
}

// Last returns the latest sample (zero before the first).
func (o *Observer) Last() Sample {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last
}

// Since returns the samples taken at or after t.
func (o *Observer) Since(t time.Time) []Sample {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Sample
	for i := len(o.samples) - 1; i >= 0 && !o.samples[i].At.Before(t); i-- {
		out = append(out, o.samples[i])
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// Forget drops the samples taken before t (keeping the last of them, a
// baseline for what follows), so that a long run does not keep them all.
func (o *Observer) Forget(t time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	i := 0
	for i < len(o.samples)-1 && o.samples[i+1].At.Before(t) {
		i++
	}
	o.samples = append([]Sample(nil), o.samples[i:]...)
}

// scan takes one sample.
func (o *Observer) scan() Sample {
	n := len(o.jobs.Jobs)
	s := Sample{Live: make([]mask, n), Present: make([]mask, n), Owners: make([]mask, o.jobs.Partitions)}
	o.gen++
	ring := o.jobs.ringIndex()
	frozen := map[string]bool{} // by cgroup path, for this scan

	s.At = time.Now()
	o.pids = listPids(o.dirBuf, o.pids)
	for _, pid := range o.pids {
		st, ok := readStat(pid, o.buf)
		if !ok {
			continue // gone
		}
		e := o.cache[pid]
		if e == nil || e.start != st.start || e.comm != st.comm {
			// New, or a pid reused, or the process exec'd.
			if e = o.identify(pid, st); e == nil {
				continue
			}
			o.cache[pid] = e
		}
		e.gen = o.gen
		if e.job < 0 {
			continue
		}
		if e.node < 0 {
			s.Stray++
			continue
		}
		s.Present[e.job] |= bit(e.node)
		if !st.runs() || o.frozen(pid, frozen) {
			continue
		}
		s.Live[e.job] |= bit(e.node)
		if e.job == ring && e.partsFile != "" {
			if b, ok := readFileInto(e.partsFile, o.buf); ok {
				for _, p := range partitionsIn(b) {
					if p >= 0 && p < len(s.Owners) {
						s.Owners[p] |= bit(e.node)
					}
				}
			}
		}
	}
	for pid, e := range o.cache {
		if e.gen != o.gen {
			delete(o.cache, pid)
		}
	}
	for i, h := range o.hosts {
		if ok, err := h.Holds(o.vip); err == nil && ok {
			s.VIP |= bit(i)
		}
		// A node's frozen state, for the record (processes are judged by
		// their own cgroup above).
		if i < len(o.nodeCgroups) {
			if fr, err := eventsFlagBuf(o.nodeCgroups[i], "frozen", o.buf); err == nil && fr {
				s.Frozen |= bit(i)
			}
		}
	}
	return s
}

// identify looks at a process the observer has not seen as it is now; nil
// means it cannot tell yet.
func (o *Observer) identify(pid string, st procStat) *procEntry {
	e := &procEntry{start: st.start, comm: st.comm, job: -1, node: -1}
	if st.comm != jobComm {
		return e
	}
	env, ok := environ(pid)
	if !ok || len(env) == 0 {
		// Caught in execve: the command name is already the new one but
		// the environment is not set up yet (the kernel fills in env_start
		// and env_end after setting comm). Look again next scan.
		return nil
	}
	if e.job = o.jobs.index(env["GCL_APP"]); e.job < 0 {
		return e
	}
	e.partsFile = env["GCL_PARTITIONS_FILE"]
	if ns, ok := netnsOfPid(pid); ok {
		for i, id := range o.nodes {
			if id == ns {
				e.node = i
			}
		}
	}
	return e
}

// frozen reports whether the process's cgroup is frozen: frozen tasks show
// as sleeping in /proc/PID/stat, so only the cgroup tells. The cgroup is
// read every time (a process can be moved), cgroup.events once a scan.
func (o *Observer) frozen(pid string, seen map[string]bool) bool {
	cg, ok := cgroupOf(pid, o.buf)
	if !ok {
		return false
	}
	fr, ok := seen[cg]
	if !ok {
		fr, _ = eventsFlagBuf(filepath.Join(o.cgroupRoot, cg), "frozen", o.buf)
		seen[cg] = fr
	}
	return fr
}
