//go:build unix

// Command bench measures go-cluster on one machine: failover times with
// real node processes (graceful step-down and SIGKILL of the leader), the
// cost of a Call compared with a raw NATS request, and KV and lock
// latencies. It starts an embedded NATS server; node processes are this
// binary re-executed (see internal/crashtest).
//
//	go run ./cmd/bench            # full run, a readable table
//	go run ./cmd/bench -quick     # fewer trials, shorter runs
//	go run ./cmd/bench -json      # one JSON object on stdout
//
// Progress goes to stderr. The exit status is 1 when two leaders' terms
// overlapped in any trial, or a measurement failed.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	cluster "github.com/ozanturksever/go-cluster"
	"github.com/ozanturksever/go-cluster/election"
	"github.com/ozanturksever/go-cluster/internal/crashtest"
	"github.com/ozanturksever/go-cluster/state"
)

type options struct {
	trialsStepDown int
	trialsKill     int
	trialsRing     int
	quick          bool
	jsonOut        bool
	calls          int           // sequential round trips per kind
	ops            int           // KV and lock operations per kind
	window         time.Duration // per throughput measurement
}

// Stats summarises latencies, in milliseconds for JSON.
type Stats struct {
	N     int     `json:"n"`
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

// Failover is one failover experiment.
type Failover struct {
	Trials   int      `json:"trials"`
	Latency  Stats    `json:"latency"`       // request (or kill) -> successor's OnActive
	Gap      *Stats   `json:"gap,omitempty"` // predecessor's OnPassive -> successor's OnActive (step-down only)
	Overlaps int      `json:"overlaps"`      // terms that overlapped: must be 0
	Errors   []string `json:"errors,omitempty"`
}

// Throughput is calls per second at a concurrency.
type Throughput struct {
	Concurrency int     `json:"concurrency"`
	CallPerSec  float64 `json:"call_per_sec"`
	RawPerSec   float64 `json:"raw_per_sec"`
}

// Result is everything the bench measured.
type Result struct {
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
	Quick     bool   `json:"quick"`
	Timing    struct {
		TTLms           float64 `json:"ttl_ms"`
		RenewMs         float64 `json:"renew_ms"`
		ClockMarginMs   float64 `json:"clock_margin_ms"`
		StopBudgetMs    float64 `json:"stop_budget_ms"`
		ProbeIntervalMs float64 `json:"probe_interval_ms"`
	} `json:"lease_timing"`

	StepDown Failover `json:"stepdown"`
	Kill     Failover `json:"kill"`

	Call struct {
		Call       Stats        `json:"call"`
		Raw        Stats        `json:"raw"`
		Ratio      float64      `json:"ratio_p50"`
		Throughput []Throughput `json:"throughput"`
	} `json:"call"`

	Ring RingBench `json:"ring"`

	KVPut  Stats    `json:"kv_put"`
	KVGet  Stats    `json:"kv_get"`
	Lock   Stats    `json:"lock_trylock_unlock"`
	Errors []string `json:"errors,omitempty"`
}

func main() {
	crashtest.MaybeRunNode()

	var o options
	flag.IntVar(&o.trialsStepDown, "trials-stepdown", 50, "graceful step-down trials")
	flag.IntVar(&o.trialsKill, "trials-kill", 20, "SIGKILL trials")
	flag.IntVar(&o.trialsRing, "trials-ring", 10, "ring join/leave trials")
	flag.BoolVar(&o.quick, "quick", false, "fewer trials and shorter runs")
	flag.BoolVar(&o.jsonOut, "json", false, "print one JSON object instead of a table")
	flag.Parse()
	o.calls, o.ops, o.window = 3000, 1000, 2*time.Second
	if o.quick {
		o.calls, o.ops, o.window = 500, 200, 500*time.Millisecond
		if !flagSet("trials-stepdown") {
			o.trialsStepDown = 10
		}
		if !flagSet("trials-kill") {
			o.trialsKill = 5
		}
		if !flagSet("trials-ring") {
			o.trialsRing = 3
		}
	}
	res, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		printTable(os.Stdout, res)
	}
	if res.StepDown.Overlaps > 0 || res.Kill.Overlaps > 0 || res.Ring.OtherMovesJoin > 0 || len(res.Errors) > 0 ||
		len(res.StepDown.Errors) > 0 || len(res.Kill.Errors) > 0 {
		os.Exit(1)
	}
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func run(o options) (*Result, error) {
	res := &Result{GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), Quick: o.quick}
	tm := election.DefaultTiming()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	res.Timing.TTLms, res.Timing.RenewMs, res.Timing.ClockMarginMs = ms(tm.TTL), ms(tm.RenewInterval), ms(tm.ClockMargin)
	res.Timing.StopBudgetMs, res.Timing.ProbeIntervalMs = ms(tm.StopBudget), ms(tm.ProbeInterval)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	srv, err := state.StartServer(ctx, state.ServerConfig{})
	cancel()
	if err != nil {
		return nil, err
	}
	defer srv.Shutdown()
	dir, err := os.MkdirTemp("", "gcl-bench-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	progress("graceful step-down: %d trials", o.trialsStepDown)
	res.StepDown = benchFailover(srv.ClientURL(), filepath.Join(dir, "stepdown"), "bench_stepdown", o.trialsStepDown, false)
	progress("SIGKILL of the leader: %d trials", o.trialsKill)
	res.Kill = benchFailover(srv.ClientURL(), filepath.Join(dir, "kill"), "bench_kill", o.trialsKill, true)
	progress("ring: 3 → 4 nodes, 256 partitions: %d trials", o.trialsRing)
	if res.Ring, err = benchRing(srv.ClientURL(), o.trialsRing); err != nil {
		res.Errors = append(res.Errors, "ring: "+err.Error())
	}
	progress("calls, KV and locks (in-process)")
	if err := benchInProcess(srv.ClientURL(), o, res); err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	return res, nil
}

// benchFailover runs three node processes with default lease timing and
// measures how long the leadership takes to move, by step-down (SIGUSR1) or
// by SIGKILL (the killed node is restarted after each trial).
func benchFailover(url, dir, platform string, trials int, kill bool) (f Failover) {
	f.Trials = trials
	fail := func(err error) Failover {
		f.Errors = append(f.Errors, err.Error())
		return f
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	c, err := crashtest.NewCluster(dir, platform, 0)
	if err != nil {
		return fail(err)
	}
	defer c.KillAll()
	ids := []string{"n1", "n2", "n3"}
	for _, id := range ids {
		if _, err := c.Start(id, url); err != nil {
			return fail(err)
		}
	}
	if _, _, err := c.WaitFor(30*time.Second, func(evs []crashtest.Event, _ []crashtest.Interval) (bool, error) {
		for _, id := range ids {
			if crashtest.Count(evs, crashtest.KindReady, id) == 0 {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		return fail(fmt.Errorf("nodes not ready: %w", err))
	}

	var lat, gap []time.Duration
	for i := 0; i < trials; i++ {
		leader, err := c.SettledLeader(30 * time.Second)
		if err != nil {
			return fail(fmt.Errorf("trial %d: %w", i+1, err))
		}
		evs, err := c.Events()
		if err != nil {
			return fail(err)
		}
		readies := crashtest.Count(evs, crashtest.KindReady, leader.Node)

		var t0 time.Time
		if kill {
			t0, err = c.Node(leader.Node).Kill()
		} else {
			t0 = time.Now()
			err = c.Node(leader.Node).Signal(syscall.SIGUSR1)
		}
		if err != nil {
			return fail(fmt.Errorf("trial %d: %w", i+1, err))
		}
		var prev, succ crashtest.Interval
		_, _, err = c.WaitFor(15*time.Second, func(_ []crashtest.Event, ivs []crashtest.Interval) (bool, error) {
			var ok1, ok2 bool
			prev, ok1 = crashtest.Find(ivs, leader.Node, leader.Epoch)
			succ, ok2 = crashtest.FirstStartAfter(ivs, t0)
			return ok1 && !prev.Open && ok2, nil
		})
		if err != nil {
			return fail(fmt.Errorf("trial %d: no successor after %s lost the lease: %w", i+1, leader.Node, err))
		}
		lat = append(lat, succ.Start.Sub(t0))
		if !kill {
			gap = append(gap, succ.Start.Sub(prev.End))
		}
		if kill {
			if _, err := c.Start(leader.Node, url); err != nil {
				return fail(err)
			}
			if _, _, err := c.WaitFor(30*time.Second, func(evs []crashtest.Event, _ []crashtest.Interval) (bool, error) {
				return crashtest.Count(evs, crashtest.KindReady, leader.Node) > readies, nil
			}); err != nil {
				return fail(fmt.Errorf("trial %d: restarted %s not ready: %w", i+1, leader.Node, err))
			}
		}
		if (i+1)%10 == 0 {
			progress("  %d/%d", i+1, trials)
		}
	}
	if err := c.StopAll(15 * time.Second); err != nil {
		f.Errors = append(f.Errors, err.Error())
	}
	_, ivs, err := c.State()
	if err != nil {
		f.Errors = append(f.Errors, err.Error())
	}
	f.Overlaps = crashtest.Overlaps(ivs)
	if err := crashtest.CheckIntervals(ivs); err != nil {
		f.Errors = append(f.Errors, err.Error())
	}
	f.Latency = stats(lat)
	if !kill {
		g := stats(gap)
		f.Gap = &g
	}
	return f
}

// benchInProcess measures calls, KV and locks on one in-process node.
func benchInProcess(url string, o options, res *Result) error {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := cluster.NewPlatform("bench_calls", "b1", url, cluster.WithLogger(quiet))
	if err != nil {
		return err
	}
	defer p.Close()
	app := cluster.NewApp("db", cluster.Singleton())
	app.Handle("echo", func(_ context.Context, req []byte) ([]byte, error) { return req, nil })
	if err := p.Register(app); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx) }()
	defer func() {
		cancel()
		<-runDone
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !app.Election().IsLeader() {
		if time.Now().After(deadline) {
			return errors.New("in-process node did not become leader in 30s")
		}
		time.Sleep(2 * time.Millisecond)
	}

	nc := p.Conn()
	const rawSubject = "bench.raw.echo"
	sub, err := nc.Subscribe(rawSubject, func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return err
	}
	payload := bytes.Repeat([]byte("x"), 64)
	client := p.Call("db")
	call := func() error {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		_, err := client.Call(cctx, "echo", payload)
		return err
	}
	raw := func() error {
		_, err := nc.Request(rawSubject, payload, 5*time.Second)
		return err
	}
	for i := 0; i < 200; i++ { // warm up
		if err := call(); err != nil {
			return fmt.Errorf("call: %w", err)
		}
		if err := raw(); err != nil {
			return fmt.Errorf("raw request: %w", err)
		}
	}
	// Interleaved, so that both see the same machine.
	var callLat, rawLat []time.Duration
	for i := 0; i < o.calls; i++ {
		t := time.Now()
		if err := call(); err != nil {
			return fmt.Errorf("call: %w", err)
		}
		callLat = append(callLat, time.Since(t))
		t = time.Now()
		if err := raw(); err != nil {
			return fmt.Errorf("raw request: %w", err)
		}
		rawLat = append(rawLat, time.Since(t))
	}
	res.Call.Call, res.Call.Raw = stats(callLat), stats(rawLat)
	if res.Call.Raw.P50ms > 0 {
		res.Call.Ratio = math.Round(100*res.Call.Call.P50ms/res.Call.Raw.P50ms) / 100
	}
	for _, conc := range []int{1, 8, 64} {
		cps, err := throughput(conc, o.window, call)
		if err != nil {
			return fmt.Errorf("call throughput: %w", err)
		}
		rps, err := throughput(conc, o.window, raw)
		if err != nil {
			return fmt.Errorf("raw throughput: %w", err)
		}
		res.Call.Throughput = append(res.Call.Throughput, Throughput{Concurrency: conc, CallPerSec: cps, RawPerSec: rps})
	}

	kv := app.KV()
	value := bytes.Repeat([]byte("v"), 128)
	if _, err := kv.Put(ctx, "bench.warm", value); err != nil {
		return fmt.Errorf("KV put: %w", err)
	}
	var put, get []time.Duration
	for i := 0; i < o.ops; i++ {
		key := fmt.Sprintf("bench.k%d", i%64)
		t := time.Now()
		if _, err := kv.Put(ctx, key, value); err != nil {
			return fmt.Errorf("KV put: %w", err)
		}
		put = append(put, time.Since(t))
		t = time.Now()
		if _, err := kv.Get(ctx, key); err != nil {
			return fmt.Errorf("KV get: %w", err)
		}
		get = append(get, time.Since(t))
	}
	res.KVPut, res.KVGet = stats(put), stats(get)

	l := app.Lock("bench")
	var lock []time.Duration
	for i := 0; i < o.ops/2+1; i++ {
		t := time.Now()
		if !l.TryLock(ctx) {
			return errors.New("TryLock failed on a free lock")
		}
		if err := l.Unlock(ctx); err != nil {
			return fmt.Errorf("Unlock: %w", err)
		}
		if i > 0 { // the first one creates the bucket
			lock = append(lock, time.Since(t))
		}
	}
	res.Lock = stats(lock)
	return nil
}

// throughput runs fn from conc goroutines for window and returns calls/s.
func throughput(conc int, window time.Duration, fn func() error) (float64, error) {
	var n atomic.Int64
	var firstErr atomic.Pointer[error]
	stop := time.Now().Add(window)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if err := fn(); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return 0, *e
	}
	return math.Round(float64(n.Load()) / time.Since(start).Seconds()), nil
}

// stats uses nearest-rank percentiles.
func stats(d []time.Duration) Stats {
	if len(d) == 0 {
		return Stats{}
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return s[max(i, 0)]
	}
	ms := func(x time.Duration) float64 { return math.Round(float64(x)/1e3) / 1e3 }
	return Stats{N: len(s), P50ms: ms(rank(0.50)), P99ms: ms(rank(0.99)), MaxMs: ms(s[len(s)-1])}
}

func fmtMs(ms float64) string {
	switch {
	case ms == 0:
		return "-"
	case ms < 1:
		return fmt.Sprintf("%.0fµs", ms*1000)
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.1fms", ms)
	}
	return fmt.Sprintf("%.2fs", ms/1000)
}

func printTable(out io.Writer, r *Result) {
	fmt.Fprintf(out, "go-cluster bench: %s %s/%s, %d CPUs%s\n", r.GoVersion, r.OS, r.Arch, r.CPUs, map[bool]string{true: " (quick)"}[r.Quick])
	fmt.Fprintf(out, "lease timing (defaults): TTL %s, renew %s, clock margin %s, stop budget %s, probe %s\n\n",
		fmtMs(r.Timing.TTLms), fmtMs(r.Timing.RenewMs), fmtMs(r.Timing.ClockMarginMs), fmtMs(r.Timing.StopBudgetMs), fmtMs(r.Timing.ProbeIntervalMs))

	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "failover (3 node processes)\ttrials\tp50\tp99\tmax\toverlaps")
	row := func(name string, f Failover, s Stats) {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%d\n", name, s.N, fmtMs(s.P50ms), fmtMs(s.P99ms), fmtMs(s.MaxMs), f.Overlaps)
	}
	row("step-down request -> successor OnActive", r.StepDown, r.StepDown.Latency)
	if r.StepDown.Gap != nil {
		row("  predecessor OnPassive -> successor OnActive", r.StepDown, *r.StepDown.Gap)
	}
	row("SIGKILL of leader -> successor OnActive", r.Kill, r.Kill.Latency)
	w.Flush()
	for _, e := range append(append([]string(nil), r.StepDown.Errors...), r.Kill.Errors...) {
		fmt.Fprintf(out, "  ERROR: %s\n", e)
	}

	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "round trip, 64 B (one process, same connection)\tn\tp50\tp99\tmax")
	fmt.Fprintf(w, "cluster Call (leader route)\t%d\t%s\t%s\t%s\n", r.Call.Call.N, fmtMs(r.Call.Call.P50ms), fmtMs(r.Call.Call.P99ms), fmtMs(r.Call.Call.MaxMs))
	fmt.Fprintf(w, "raw NATS request\t%d\t%s\t%s\t%s\n", r.Call.Raw.N, fmtMs(r.Call.Raw.P50ms), fmtMs(r.Call.Raw.P99ms), fmtMs(r.Call.Raw.MaxMs))
	fmt.Fprintf(w, "Call / raw (p50)\t\t%.2fx\t\t\n", r.Call.Ratio)
	w.Flush()

	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprint(w, "throughput (per second)\t")
	for _, t := range r.Call.Throughput {
		fmt.Fprintf(w, "c=%d\t", t.Concurrency)
	}
	fmt.Fprint(w, "\ncluster Call\t")
	for _, t := range r.Call.Throughput {
		fmt.Fprintf(w, "%.0f\t", t.CallPerSec)
	}
	fmt.Fprint(w, "\nraw NATS request\t")
	for _, t := range r.Call.Throughput {
		fmt.Fprintf(w, "%.0f\t", t.RawPerSec)
	}
	fmt.Fprintln(w)
	w.Flush()

	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	rb := r.Ring
	fmt.Fprintf(w, "ring (%d partitions, in-process nodes)\tn\tp50\tp99\tmax\n", rb.Partitions)
	fmt.Fprintf(w, "join 3 → 4: Run → all OnOwn done\t%d\t%s\t%s\t%s\n", rb.Join.N, fmtMs(rb.Join.P50ms), fmtMs(rb.Join.P99ms), fmtMs(rb.Join.MaxMs))
	fmt.Fprintf(w, "leave 4 → 3: stop → all owned again\t%d\t%s\t%s\t%s\n", rb.Leave.N, fmtMs(rb.Leave.P50ms), fmtMs(rb.Leave.P99ms), fmtMs(rb.Leave.MaxMs))
	fmt.Fprintf(w, "Call ForKey\t%d\t%s\t%s\t%s\n", rb.ForKey.N, fmtMs(rb.ForKey.P50ms), fmtMs(rb.ForKey.P99ms), fmtMs(rb.ForKey.MaxMs))
	w.Flush()
	fmt.Fprintf(out, "NodeFor: %.0f ns/op; partitions moved on join: %d (optimum %d, %d not to the newcomer)\n",
		rb.NodeForNs, rb.MovedOnJoin, rb.OptimumOnJoin, rb.OtherMovesJoin)

	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "KV and locks (one process)\tn\tp50\tp99\tmax")
	for _, x := range []struct {
		name string
		s    Stats
	}{{"KV Put (128 B)", r.KVPut}, {"KV Get", r.KVGet}, {"Lock TryLock + Unlock", r.Lock}} {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", x.name, x.s.N, fmtMs(x.s.P50ms), fmtMs(x.s.P99ms), fmtMs(x.s.MaxMs))
	}
	w.Flush()
	for _, e := range r.Errors {
		fmt.Fprintf(out, "ERROR: %s\n", e)
	}
}
