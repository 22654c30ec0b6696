//go:build linux

package netlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"
)

// Sample is one whoami probe: a connection attempt started at Start that
// completed at At with Answer (the line read, without its newline) or Err.
type Sample struct {
	Start, At time.Time
	Answer    string
	Err       error
}

// OK reports whether the probe got an answer.
func (s Sample) OK() bool { return s.Err == nil }

// DefaultProbeTimeout bounds each probe's dial and read.
const DefaultProbeTimeout = 50 * time.Millisecond

// Probe connects to a whoami server from the client namespace every
// interval and records the answers. Samples are kept in completion order.
type Probe struct {
	target   netip.AddrPort
	interval time.Duration
	timeout  time.Duration

	mu      sync.Mutex
	samples []Sample
	changed chan struct{} // closed and replaced on every new sample

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartProbe starts probing target from inside client's namespace every
// interval (2–5 ms is typical), each probe bounded by DefaultProbeTimeout.
// Probes run on a small pool of OS threads locked into the namespace, so
// that a probe stuck on an unreachable target does not delay the next
// ones: up to timeout/interval+1 probes are in flight. A tick that finds
// every worker busy is skipped. Probing stops with Stop or when ctx ends.
func StartProbe(ctx context.Context, client *Host, target netip.AddrPort, interval time.Duration) *Probe {
	return StartProbeTimeout(ctx, client, target, interval, DefaultProbeTimeout)
}

// StartProbeTimeout is StartProbe with an explicit per-probe timeout.
func StartProbeTimeout(ctx context.Context, client *Host, target netip.AddrPort, interval, timeout time.Duration) *Probe {
	if interval <= 0 {
		interval = 5 * time.Millisecond
	}
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Probe{
		target:   target,
		interval: interval,
		timeout:  timeout,
		changed:  make(chan struct{}),
		cancel:   cancel,
	}
	workers := int(timeout/interval) + 1
	workers = max(1, min(workers, 32))
	jobs := make(chan time.Time)
	for range workers {
		p.wg.Add(1)
		go p.worker(ctx, client.NS, jobs)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			select {
			case jobs <- time.Now():
			default: // all workers busy
			}
		}
	}()
	return p
}

// worker runs on its own OS thread in ns for its whole life; Go's dialer
// creates each socket on the calling thread, hence in ns.
func (p *Probe) worker(ctx context.Context, ns netns.NsHandle, jobs <-chan time.Time) {
	defer p.wg.Done()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err == nil {
		defer orig.Close()
		err = netns.Set(ns)
	}
	if err != nil {
		runtime.UnlockOSThread()
		p.add(Sample{Start: time.Now(), At: time.Now(), Err: fmt.Errorf("netlab: probe: enter namespace: %w", err)})
		return
	}
	defer func() {
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked and dies with the goroutine
	}()
	d := net.Dialer{Timeout: p.timeout}
	d.SetMultipathTCP(false)
	for {
		select {
		case <-ctx.Done():
			return
		case <-jobs:
		}
		start := time.Now()
		answer, err := p.probeOnce(ctx, &d)
		if ctx.Err() != nil {
			return // probes cut short by Stop are not samples
		}
		p.add(Sample{Start: start, At: time.Now(), Answer: answer, Err: err})
	}
}

func (p *Probe) probeOnce(ctx context.Context, d *net.Dialer) (string, error) {
	c, err := d.DialContext(ctx, "tcp", p.target.String())
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(p.timeout))
	line, err := bufio.NewReaderSize(c, 256).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(line, "\n"), nil
}

func (p *Probe) add(s Sample) {
	p.mu.Lock()
	p.samples = append(p.samples, s)
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// Stop stops probing and waits for in-flight probes. Samples stay
// readable.
func (p *Probe) Stop() {
	p.cancel()
	p.wg.Wait()
}

// Samples returns a copy of the samples so far, in completion order.
func (p *Probe) Samples() []Sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Sample(nil), p.samples...)
}

// SamplesSince returns the samples completed after since.
func (p *Probe) SamplesSince(since time.Time) []Sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Sample(nil), p.samples[p.indexAfter(since):]...)
}

// indexAfter is the index of the first sample completed after t; p.mu held.
func (p *Probe) indexAfter(t time.Time) int {
	lo, hi := 0, len(p.samples)
	for lo < hi {
		m := (lo + hi) / 2
		if p.samples[m].At.After(t) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// WaitSample waits until a sample completed after since satisfies pred,
// and returns it. It returns ctx's error if none does before ctx ends.
func (p *Probe) WaitSample(ctx context.Context, since time.Time, pred func(Sample) bool) (Sample, error) {
	next := -1
	for {
		p.mu.Lock()
		if next < 0 {
			next = p.indexAfter(since)
		}
		for ; next < len(p.samples); next++ {
			if s := p.samples[next]; pred(s) {
				p.mu.Unlock()
				return s, nil
			}
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return Sample{}, fmt.Errorf("netlab: probe of %s: %w", p.target, ctx.Err())
		case <-ch:
		}
	}
}

// WaitAnswer waits until a sample answers want.
func (p *Probe) WaitAnswer(ctx context.Context, want string) error {
	_, err := p.WaitSample(ctx, time.Time{}, func(s Sample) bool { return s.OK() && s.Answer == want })
	return err
}

// WaitStable waits until the last n samples (all completed after since)
// answered want, and returns the time of the last of them.
func (p *Probe) WaitStable(ctx context.Context, since time.Time, want string, n int) (time.Time, error) {
	run := 0
	s, err := p.WaitSample(ctx, since, func(s Sample) bool {
		if s.OK() && s.Answer == want {
			run++
		} else {
			run = 0
		}
		return run >= n
	})
	return s.At, err
}

// ErrNoHandover is returned by Handover when the samples do not show one.
var ErrNoHandover = errors.New("netlab: no handover in samples")

// Handover returns the time from the last answer by from to the first
// answer by to completed after since: the outage the client saw while the
// service moved. The answer by from must precede the answer by to.
func (p *Probe) Handover(from, to string, since time.Time) (time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := -1
	for i := p.indexAfter(since); i < len(p.samples); i++ {
		if s := p.samples[i]; s.OK() && s.Answer == to {
			first = i
			break
		}
	}
	if first < 0 {
		return 0, fmt.Errorf("%w: no answer from %q after %s", ErrNoHandover, to, since.Format(time.RFC3339Nano))
	}
	for i := first - 1; i >= 0; i-- {
		if s := p.samples[i]; s.OK() && s.Answer == from {
			return p.samples[first].At.Sub(s.At), nil
		}
	}
	return 0, fmt.Errorf("%w: no answer from %q before the first from %q", ErrNoHandover, from, to)
}

// FirstAnswerAfter returns the first successful sample completed after
// since whose answer is not one of exclude.
func (p *Probe) FirstAnswerAfter(since time.Time, exclude ...string) (Sample, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
outer:
	for i := p.indexAfter(since); i < len(p.samples); i++ {
		s := p.samples[i]
		if !s.OK() {
			continue
		}
		for _, x := range exclude {
			if s.Answer == x {
				continue outer
			}
		}
		return s, true
	}
	return Sample{}, false
}

// Mixed reports whether, among the answers completed after since, some
// server answered again after another one had taken over: A A B A is
// mixed (flapping), A A B B is not, nor is A B C (two clean handovers).
// Failed probes are ignored.
func (p *Probe) Mixed(since time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[string]bool{}
	cur := ""
	for i := p.indexAfter(since); i < len(p.samples); i++ {
		s := p.samples[i]
		if !s.OK() || s.Answer == cur {
			continue
		}
		if seen[s.Answer] {
			return true
		}
		seen[s.Answer] = true
		cur = s.Answer
	}
	return false
}

// Counts returns, for samples completed after since, the number of answers
// per server and the number of failed probes.
func (p *Probe) Counts(since time.Time) (answers map[string]int, failed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	answers = map[string]int{}
	for i := p.indexAfter(since); i < len(p.samples); i++ {
		if s := p.samples[i]; s.OK() {
			answers[s.Answer]++
		} else {
			failed++
		}
	}
	return answers, failed
}
