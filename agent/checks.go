package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/ozanturksever/go-cluster/jobspec"
)

// Service checks decide when an instance counts as running: a process that
// is up but whose checks fail is reported as starting, with the failure as
// the reason, so the scheduler (min_healthy_time, rolling updates, drains)
// and `job run` wait for a service that answers, not merely a process that
// exists.

// checkStartupInterval is how often checks run until they first pass: an
// app usually starts listening within moments, and its check interval
// (often seconds) would delay everything waiting on it.
const checkStartupInterval = 200 * time.Millisecond

// checkedServices are the services of spec that have a check.
func checkedServices(spec *jobspec.App) []jobspec.Service {
	var out []jobspec.Service
	for _, s := range spec.Services {
		if s.Check != nil {
			out = append(out, s)
		}
	}
	return out
}

// runChecks probes every checked service until ctx ends and calls update
// with the verdict whenever it changes (ok, or the first failure).
func runChecks(ctx context.Context, services []jobspec.Service, update func(ok bool, reason string)) {
	interval := time.Duration(0)
	for _, s := range services {
		if iv := s.Check.Interval; iv > 0 && (interval == 0 || iv < interval) {
			interval = iv
		}
	}
	if interval == 0 {
		interval = 10 * time.Second
	}
	lastOK, lastReason, first := false, "", true
	for {
		ok, reason := true, ""
		for _, s := range services {
			if err := probeService(ctx, s); err != nil {
				ok, reason = false, fmt.Sprintf("check of service %s failing: %v", s.Name, err)
				break
			}
		}
		if ctx.Err() != nil {
			return
		}
		if first || ok != lastOK || reason != lastReason {
			update(ok, reason)
			lastOK, lastReason, first = ok, reason, false
		}
		wait := interval
		if !ok {
			wait = min(interval, checkStartupInterval)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// probeService runs one check against the service on this node.
func probeService(ctx context.Context, s jobspec.Service) error {
	timeout := s.Check.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	switch s.Check.Type {
	case jobspec.CheckHTTP:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+s.Check.Path, nil)
		if err != nil {
			return err
		}
		// One connection per check: a half-broken keep-alive connection
		// must not decide the verdict.
		req.Close = true
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	default: // tcp
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
}
