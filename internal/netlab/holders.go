//go:build linux

package netlab

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// HolderSample is one look at which hosts hold an address: Holders are
// indexes into the hosts given to SampleHolders. Err is set when some host
// could not be read (its entry is then missing from Holders).
type HolderSample struct {
	At      time.Time
	Holders []int
	Err     error
}

// HolderSampler polls which hosts hold an address, for the "never two
// holders" check.
type HolderSampler struct {
	hosts []*Host
	addr  netip.Addr

	mu      sync.Mutex
	samples []HolderSample

	cancel context.CancelFunc
	done   chan struct{}
}

// SampleHolders starts polling, every interval, which of hosts have addr
// configured (through each host's netlink handle). It stops with Stop or
// when ctx ends.
func SampleHolders(ctx context.Context, hosts []*Host, addr netip.Addr, interval time.Duration) *HolderSampler {
	if interval <= 0 {
		interval = 5 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(ctx)
	hs := &HolderSampler{hosts: hosts, addr: addr, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(hs.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			hs.sample()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return hs
}

func (hs *HolderSampler) sample() {
	var s HolderSample
	for i, h := range hs.hosts {
		ok, err := h.Holds(hs.addr)
		if err != nil {
			s.Err = err
			continue
		}
		if ok {
			s.Holders = append(s.Holders, i)
		}
	}
	s.At = time.Now()
	hs.mu.Lock()
	hs.samples = append(hs.samples, s)
	hs.mu.Unlock()
}

// Stop stops sampling and waits for the sampler to finish.
func (hs *HolderSampler) Stop() {
	hs.cancel()
	<-hs.done
}

// Samples returns a copy of the samples so far.
func (hs *HolderSampler) Samples() []HolderSample {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return append([]HolderSample(nil), hs.samples...)
}

// MaxHolders returns the largest number of simultaneous holders seen in
// samples taken after since, and how many such samples there were.
func (hs *HolderSampler) MaxHolders(since time.Time) (holders, samples int) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for _, s := range hs.samples {
		if !s.At.After(since) {
			continue
		}
		samples++
		holders = max(holders, len(s.Holders))
	}
	return holders, samples
}

// Errors returns the number of samples after since in which some host
// could not be read.
func (hs *HolderSampler) Errors(since time.Time) int {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	n := 0
	for _, s := range hs.samples {
		if s.At.After(since) && s.Err != nil {
			n++
		}
	}
	return n
}
