package agent

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ozanturksever/go-cluster/control"
	"github.com/ozanturksever/go-cluster/scheduler"
)

// apply makes this node run what the scheduler assigned to it: instances
// of jobs no longer assigned stop (handing over first), new ones start,
// and an instance whose job version changed is replaced in place.
func (a *Agent) apply(ctx context.Context, na control.NodeAllocs) {
	want := map[string]uint64{}
	for _, al := range na.Allocs {
		if al.Node == a.cfg.Node {
			want[al.Job] = al.Version
		}
	}
	a.mu.Lock()
	var stop []*instance
	for name, in := range a.instances {
		// An instance that never got onto the platform is dropped too, and
		// made again below: that is the retry.
		if v, ok := want[name]; !ok || v != in.job.Version || !in.registered {
			stop = append(stop, in)
			delete(a.instances, name)
		}
	}
	a.mu.Unlock()
	a.stopInstances(stop)

	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		a.mu.Lock()
		_, running := a.instances[name]
		a.mu.Unlock()
		if running {
			continue
		}
		job, err := a.store.JobVersion(ctx, name, want[name])
		if err != nil {
			a.log.Error("assigned job unreadable; will retry", "job", name, "version", want[name], "err", err)
			continue
		}
		in := newInstance(a, job)
		a.mu.Lock()
		a.instances[name] = in
		a.mu.Unlock()
		if err := in.register(); err != nil {
			in.log.Error("cannot run job on this node", "err", err)
		} else {
			in.log.Info("instance started")
		}
	}
	a.kickReport()
}

// needsRetry reports whether the assignment na has jobs this node does not
// run as assigned: unreadable job versions or refused registrations.
func (a *Agent) needsRetry(na control.NodeAllocs) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, al := range na.Allocs {
		in, ok := a.instances[al.Job]
		if al.Node == a.cfg.Node && (!ok || !in.registered || in.job.Version != al.Version) {
			return true
		}
	}
	return false
}

// stopInstances hands over and stops instances, in parallel: each may wait
// for a standby to take over or a process to exit.
func (a *Agent) stopInstances(list []*instance) {
	var wg sync.WaitGroup
	for _, in := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), stopTimeout(in))
			defer cancel()
			in.unregister(ctx)
			in.log.Info("instance stopped")
		}()
	}
	wg.Wait()
	if len(list) > 0 {
		a.kickReport()
	}
}

// stopTimeout bounds the stop of one instance: its kill timeout plus time
// for the handover.
func stopTimeout(in *instance) time.Duration {
	d := 30 * time.Second
	if b := in.job.Spec.Backend; b != nil && b.Exec != nil {
		d += b.Exec.KillTimeout
	}
	return d
}

// stopAll stops every instance (agent shutdown).
func (a *Agent) stopAll() {
	a.mu.Lock()
	list := make([]*instance, 0, len(a.instances))
	for name, in := range a.instances {
		list = append(list, in)
		delete(a.instances, name)
	}
	a.mu.Unlock()
	a.stopInstances(list)
}

func (a *Agent) kickReport() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// reportLoop writes this node's report when an instance changes (at most
// every 50ms) and every few seconds regardless, so the scheduler sees
// health ages and restarts move.
func (a *Agent) reportLoop(ctx context.Context) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		case <-tick.C:
		}
		a.writeReport(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (a *Agent) writeReport(ctx context.Context) {
	a.mu.Lock()
	list := make([]*instance, 0, len(a.instances))
	for _, in := range a.instances {
		list = append(list, in)
	}
	a.mu.Unlock()
	r := control.Report{Node: a.cfg.Node, Updated: time.Now().UTC()}
	for _, in := range list {
		r.Instances = append(r.Instances, in.report())
	}
	slices.SortFunc(r.Instances, func(x, y scheduler.InstanceState) int { return strings.Compare(x.Job, y.Job) })
	a.metrics.observe(r)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.store.PutReport(wctx, r); err != nil {
		a.log.Warn("could not write report", "err", err)
	}
}
