package agenttest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The figures for the agent. Run with `make bench` (or
// go test -run '^$' -bench . -benchtime 10x ./internal/agenttest).

// BenchmarkAgentDevStartup: `gcl agent -dev` from exec to "agent ready"
// (embedded NATS with JetStream, platform joined, scheduler elected), and
// the agent's resident memory once idle.
func BenchmarkAgentDevStartup(b *testing.B) {
	var ready []time.Duration
	var rss []float64
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(gclBin, "agent", "-dev", "-nats-port", "0", "-http", "127.0.0.1:0", "-data-dir", b.TempDir())
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for !strings.Contains(out.String(), "agent ready") {
			if time.Since(start) > 10*time.Second {
				b.Fatalf("not ready after 10s:\n%s", out)
			}
			time.Sleep(time.Millisecond)
		}
		ready = append(ready, time.Since(start))
		// Idle: let start-up garbage be collected before reading RSS.
		time.Sleep(2 * time.Second)
		rss = append(rss, residentMiB(b, cmd.Process.Pid))
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	b.ReportMetric(float64(median(ready).Microseconds())/1000, "ms-to-ready(p50)")
	b.ReportMetric(medianF(rss), "MiB-idle-RSS(p50)")
}

// BenchmarkJobRun100: `gcl job run` of 50 pool jobs of 2 instances (100
// exec processes) over 3 agents, until every instance runs.
func BenchmarkJobRun100(b *testing.B) {
	for i := 0; i < b.N; i++ {
		c := newClusterTimed(b, nil, "n1", "n2", "n3")
		var src strings.Builder
		for j := 0; j < 50; j++ {
			fmt.Fprintf(&src, `app "sleep%02d" {
  mode  = "replicas"
  count = 2
  backend "exec" {
    command = "/bin/sleep"
    args    = ["3600"]
    kill_timeout = "1s"
  }
  update { min_healthy_time = "0s" }
}
`, j)
		}
		path := filepath.Join(b.TempDir(), "sleep.hcl")
		writeFile(b, path, src.String())
		start := time.Now()
		c.mustGCL(0, "job", "run", path)
		b.ReportMetric(time.Since(start).Seconds(), "s-to-all-running")
		var jobs []jobStatus
		if err := json.Unmarshal([]byte(c.mustGCL(0, "job", "status", "-json")), &jobs); err != nil {
			b.Fatal(err)
		}
		running := 0
		for _, j := range jobs {
			for _, in := range j.Instances {
				if in.State == "running" {
					running++
				}
			}
		}
		if running != 100 {
			b.Fatalf("%d instances running after job run, want 100", running)
		}
		c.stopAll()
	}
}

// BenchmarkSingletonFailover: an exec singleton's service as its client
// sees it when the leader's agent is SIGKILLed, with the default timings
// (lease TTL 2s, presence TTL 5s): from the kill until another node's
// instance answers.
func BenchmarkSingletonFailover(b *testing.B) {
	c := newClusterTimed(b, nil, "n1", "n2", "n3")
	base := freePortBase(b)
	c.mustGCL(0, "job", "run", webJob(b, b.TempDir(), "web", "singleton", 0, base, ""))
	var gaps []time.Duration
	for i := 0; i < b.N; i++ {
		leader := c.soleServer(base, 3, 30*time.Second)
		// Standbys must be registered again (after the previous trial's
		// restart) for the failover to measure the election, not a start.
		c.eventually(30*time.Second, "three candidates", func() bool {
			st := c.status("web")
			n := 0
			for _, in := range st.Instances {
				if in.State == "running" || in.State == "standby" {
					n++
				}
			}
			return n == 3
		})
		killed := time.Now()
		c.kill(leader)
		for {
			if a := answering(base, 3); len(a) == 1 && !strings.HasPrefix(a[0], leader+" ") {
				break
			}
			if time.Since(killed) > 30*time.Second {
				b.Fatal("no failover within 30s")
			}
			time.Sleep(2 * time.Millisecond)
		}
		gaps = append(gaps, time.Since(killed))
		c.start(leader)
	}
	slices.Sort(gaps)
	b.ReportMetric(float64(median(gaps).Milliseconds()), "ms-failover(p50)")
	b.ReportMetric(float64(gaps[len(gaps)-1].Milliseconds()), "ms-failover(max)")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianF(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	return s[len(s)/2]
}

// residentMiB reads VmRSS of pid.
func residentMiB(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
