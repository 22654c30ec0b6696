package agenttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Three agents run a singleton and a pool; SIGKILL of the singleton
// leader's agent fails it over, and the pool instance it ran is
// rescheduled, both within the presence TTL plus slack.
func TestRunFailoverAndReschedule(t *testing.T) {
	c := newCluster(t, "n1", "n2", "n3")
	base := freePortBase(t)
	web := webJob(t, t.TempDir(), "web", "singleton", 0, base, "")
	out := c.mustGCL(0, "job", "run", web)
	if !strings.Contains(out, "all instances running") {
		t.Fatalf("job run output:\n%s", out)
	}
	leader := c.soleServer(base, 3, 10*time.Second)
	st := c.status("web")
	if len(st.Instances) != 3 {
		t.Fatalf("web: %d instances, want a candidate on each of 3 nodes: %+v", len(st.Instances), st)
	}

	poolBase := base + 10
	pool := webJob(t, t.TempDir(), "pool", "replicas", 2, poolBase, "")
	c.mustGCL(0, "job", "run", pool)
	c.eventually(10*time.Second, "two pool servers", func() bool { return len(answering(poolBase, 3)) == 2 })

	killed := time.Now()
	c.kill(leader)
	var next string
	c.eventually(15*time.Second, "web to fail over", func() bool {
		a := answering(base, 3)
		if len(a) != 1 {
			return false
		}
		next = strings.Fields(a[0])[0]
		return next != leader
	})
	t.Logf("web failed over from %s to %s in %v", leader, next, time.Since(killed).Round(time.Millisecond))
	c.eventually(20*time.Second, "two pool servers again", func() bool { return len(answering(poolBase, 3)) == 2 })
	for _, a := range answering(poolBase, 3) {
		if strings.HasPrefix(a, leader+" ") {
			t.Fatalf("pool answered from the killed node %s", leader)
		}
	}
}

// A drain moves a pool start-before-stop: at no sampled moment do fewer
// than count instances answer, and the drain reports complete only when
// the node runs nothing.
func TestDrainKeepsCount(t *testing.T) {
	c := newCluster(t, "n1", "n2", "n3")
	base := freePortBase(t)
	pool := webJob(t, t.TempDir(), "pool", "replicas", 2, base, "")
	c.mustGCL(0, "job", "run", pool)
	var victim string
	c.eventually(10*time.Second, "two pool servers", func() bool {
		a := answering(base, 3)
		if len(a) != 2 {
			return false
		}
		victim = strings.Fields(a[0])[0]
		return true
	})

	smp := startSampling(base, 3)
	out := c.mustGCL(0, "node", "drain", victim, "-enable", "-deadline", "60s")
	smp.stop()
	if !strings.Contains(out, "drain complete") {
		t.Fatalf("drain output:\n%s", out)
	}
	if smp.min < 2 {
		t.Fatalf("during the drain only %d pool instances answered at one point (%d samples)", smp.min, smp.samples)
	}
	for _, a := range answering(base, 3) {
		if strings.HasPrefix(a, victim+" ") {
			t.Fatalf("drained node %s still serves", victim)
		}
	}
	t.Logf("drain of %s: %d samples, never fewer than %d instances", victim, smp.samples, smp.min)
}

// A rolling update with max_parallel 1 replaces one instance at a time:
// at least count-1 answer throughout, and all end at the new version.
func TestRollingUpdate(t *testing.T) {
	c := newCluster(t, "n1", "n2", "n3")
	base := freePortBase(t)
	dir := t.TempDir()
	c.mustGCL(0, "job", "run", webJob(t, dir, "pool", "replicas", 3, base, "v1"))
	c.eventually(10*time.Second, "three servers", func() bool { return len(answering(base, 3)) == 3 })

	smp := startSampling(base, 3)
	c.mustGCL(0, "job", "run", webJob(t, dir, "pool", "replicas", 3, base, "v2"))
	smp.stop()
	if smp.min < 2 {
		t.Fatalf("rolling update with max_parallel 1: only %d of 3 answered at one point", smp.min)
	}
	c.eventually(10*time.Second, "all at v2", func() bool {
		a := answering(base, 3)
		if len(a) != 3 {
			return false
		}
		for _, x := range a {
			if !strings.HasSuffix(x, " v2") {
				return false
			}
		}
		return true
	})
}

// The job commands' exit codes, check-index, apply -prune, revert, bad
// files and an unreachable cluster.
func TestJobCommands(t *testing.T) {
	c := newCluster(t, "n1")
	base := freePortBase(t)
	dir := t.TempDir()
	web := webJob(t, dir, "web", "singleton", 0, base, "a")

	c.mustGCL(2, "job", "plan", web)
	c.mustGCL(0, "job", "run", web)
	c.mustGCL(0, "job", "plan", web)
	if got := c.status("web").Version; got != 1 {
		t.Fatalf("version after first run: %d", got)
	}
	c.mustGCL(1, "job", "run", "-check-index", "7", webJob(t, dir, "web", "singleton", 0, base, "b"))
	if got := c.status("web").Version; got != 1 {
		t.Fatalf("a refused -check-index run changed the job: version %d", got)
	}
	c.mustGCL(0, "job", "run", "-check-index", "1", web)
	if got := c.status("web").Version; got != 2 {
		t.Fatalf("version after second run: %d", got)
	}
	hist := c.mustGCL(0, "job", "history", "web")
	if !strings.Contains(hist, "Version 2") || !strings.Contains(hist, `backend.exec.env.EXTRA: "a" => "b"`) {
		t.Fatalf("history:\n%s", hist)
	}
	c.eventually(10*time.Second, "version b serving", func() bool { return probe(base, 1) == "n1 2 b" })
	c.mustGCL(0, "job", "revert", "web", "1")
	c.eventually(10*time.Second, "reverted version serving", func() bool { return probe(base, 1) == "n1 3 a" })

	// A bad file: diagnostics with file and line, exit 1, nothing submitted.
	bad := dir + "/bad.hcl"
	writeFile(t, bad, "app \"other\" {\n  mode = \"sideways\"\n}\n")
	code, _, errOut := c.gcl("job", "run", bad)
	if code != 1 || !strings.Contains(errOut, "bad.hcl:2") {
		t.Fatalf("bad job: exit %d\n%s", code, errOut)
	}
	if code, _, _ := c.gcl("job", "status", "other"); code != 1 {
		t.Fatal("a job from an invalid file was submitted")
	}

	// apply -prune: the directory without web stops it.
	empty := t.TempDir()
	writeFile(t, empty+"/keep.hcl", "# no jobs here\n")
	c.mustGCL(2, "job", "apply", "-prune", empty)
	c.eventually(10*time.Second, "web stopped", func() bool { return probe(base, 1) == "" })
	c.mustGCL(0, "job", "apply", "-prune", empty)

	// An unreachable cluster: a clear error and exit 1.
	code, _, errOut = c.gcl("job", "status", "-nats", "nats://127.0.0.1:1")
	if code != 1 || !strings.Contains(errOut, "cannot reach the cluster") {
		t.Fatalf("unreachable cluster: exit %d\n%s", code, errOut)
	}
}

// app status / stepdown / logs and the agent's HTTP API.
func TestAppCommandsAndHTTP(t *testing.T) {
	c := newCluster(t, "n1", "n2")
	base := freePortBase(t)
	c.mustGCL(0, "job", "run", webJob(t, t.TempDir(), "web", "singleton", 0, base, "x"))

	var st struct {
		Leader   string   `json:"leader"`
		Epoch    uint64   `json:"epoch"`
		Standbys []string `json:"standbys"`
	}
	c.eventually(10*time.Second, "a leader and a standby", func() bool {
		out := c.mustGCL(0, "app", "status", "-json", "web")
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("app status -json: %v\n%s", err, out)
		}
		return st.Leader != "" && len(st.Standbys) == 1
	})
	if got := strings.Fields(probe(base, nodeNumber(st.Leader)))[0]; got != st.Leader {
		t.Fatalf("app status says %s leads, %s serves", st.Leader, got)
	}
	first := st.Leader
	// The seed's spelling of stepdown.
	out := c.mustGCL(0, "stepdown", "--platform", "default", "--app", "web")
	if !strings.Contains(out, first+" stepped down") {
		t.Fatalf("stepdown output: %s", out)
	}
	c.eventually(10*time.Second, "the standby to lead", func() bool {
		a := answering(base, 2)
		return len(a) == 1 && !strings.HasPrefix(a[0], first+" ")
	})

	// The old leader's process output stays readable on its node.
	code, logs, errOut := c.gcl("app", "logs", "web", "-node", first)
	if code != 0 || !strings.Contains(logs, fmt.Sprintf("listening on %d", base+nodeNumber(first))) {
		t.Fatalf("app logs: exit %d\n%s\n%s", code, logs, errOut)
	}

	addr := c.httpAddr("n1")
	for path, wants := range map[string][]string{
		"/health": {`"status": "ok"`},
		"/ready":  {`"ready": true`},
		// The scheduler runs on n1 (the first agent), and n1 has led web.
		"/metrics": {`gcl_instances{job="web"`, `gcl_lease_renew_seconds_count{app="gcl-scheduler"}`,
			`gcl_scheduler_evaluations_total`},
		"/v1/jobs":     {`"name": "web"`},
		"/v1/nodes":    {`"id": "n2"`},
		"/v1/apps/web": {`"mode": "singleton"`},
	} {
		body := httpGet(t, "http://"+addr+path)
		for _, want := range wants {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s: want %q in:\n%s", path, want, body)
			}
		}
	}
	resp, err := http.Get("http://" + addr + "/v1/apps/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /v1/apps/nope: %d, want 404", resp.StatusCode)
	}
}

func nodeNumber(node string) int {
	n := 0
	fmt.Sscanf(strings.TrimLeft(node, "n"), "%d", &n)
	return n
}

// Draining the node that leads a singleton hands leadership to a standby
// gracefully: never two servers at once, a short gap, drain complete.
func TestDrainSingletonLeader(t *testing.T) {
	c := newCluster(t, "n1", "n2")
	base := freePortBase(t)
	c.mustGCL(0, "job", "run", webJob(t, t.TempDir(), "web", "singleton", 0, base, ""))
	leader := c.soleServer(base, 2, 10*time.Second)
	c.eventually(10*time.Second, "a standby", func() bool {
		for _, in := range c.status("web").Instances {
			if in.State == "standby" {
				return true
			}
		}
		return false
	})
	smp := startSampling(base, 2)
	out := c.mustGCL(0, "node", "drain", leader, "-enable", "-deadline", "60s")
	c.eventually(10*time.Second, "the other node to serve", func() bool {
		a := answering(base, 2)
		return len(a) == 1 && !strings.HasPrefix(a[0], leader+" ")
	})
	smp.stop()
	if !strings.Contains(out, "drain complete") {
		t.Fatalf("drain output:\n%s", out)
	}
	if smp.max > 1 {
		t.Fatal("two singleton servers answered at once during the drain")
	}
	// A graceful handover is an election after a release, plus a process
	// start: far below a lease TTL.
	if smp.longestGap > 2*time.Second {
		t.Fatalf("the service was down for %v during the handover", smp.longestGap)
	}
	t.Logf("drain of leader %s: longest gap %v", leader, smp.longestGap)
}

// A process that keeps crashing is reported failed with its exit status
// (and `job run` says so with exit 2) on every node, the singleton never
// crash-looping back into leadership; purging the job and running a good
// one under the same name starts clean at version 1.
func TestCrashingJobFailsAndPurgeStartsClean(t *testing.T) {
	c := newCluster(t, "n1", "n2")
	dir := t.TempDir()
	writeFile(t, dir+"/crash.hcl", `app "crash" {
  mode = "singleton"
  backend "exec" {
    command = "/bin/sh"
    args    = ["-c", "exit 3"]
  }
  restart {
    attempts = 1
    interval = "1m"
    delay    = "10ms"
    mode     = "fail"
  }
}
`)
	code, out, errOut := c.gcl("job", "run", "-timeout", "60s", dir+"/crash.hcl")
	if code != 2 || !strings.Contains(errOut, "exited with code 3") {
		t.Fatalf("job run of a crashing job: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	c.eventually(20*time.Second, "both candidates failed", func() bool {
		st := c.status("crash")
		failed := 0
		for _, in := range st.Instances {
			if in.State == "failed" {
				failed++
			}
			if in.Active {
				return false
			}
		}
		return failed == 2
	})

	c.mustGCL(0, "job", "stop", "-purge", "crash")
	base := freePortBase(t)
	good := webJob(t, dir, "crash", "singleton", 0, base, "good")
	out = c.mustGCL(0, "job", "run", good)
	if !strings.Contains(out, "version 1") {
		t.Fatalf("a purged job submitted again should start at version 1:\n%s", out)
	}
	c.eventually(10*time.Second, "the new job serving", func() bool { return len(answering(base, 2)) == 1 })
}

// An ineligible node loses its instances and gets them back when made
// eligible again.
func TestNodeEligibility(t *testing.T) {
	c := newCluster(t, "n1", "n2")
	base := freePortBase(t)
	c.mustGCL(0, "job", "run", webJob(t, t.TempDir(), "api", "spread", 0, base, ""))
	c.eventually(10*time.Second, "api on both nodes", func() bool { return len(answering(base, 2)) == 2 })
	c.mustGCL(0, "node", "eligibility", "n2", "-disable")
	c.eventually(10*time.Second, "api only on n1", func() bool {
		a := answering(base, 2)
		return len(a) == 1 && strings.HasPrefix(a[0], "n1 ")
	})
	out := c.mustGCL(0, "node", "status", "-json")
	if !strings.Contains(out, `"eligible": false`) {
		t.Fatalf("node status does not show n2 ineligible:\n%s", out)
	}
	c.mustGCL(0, "node", "eligibility", "n2", "-enable")
	c.eventually(10*time.Second, "api on both nodes again", func() bool { return len(answering(base, 2)) == 2 })
}

// A ring job's instances share its partitions through their
// GCL_PARTITIONS_FILE: together they hold every partition, none twice.
func TestRingJob(t *testing.T) {
	c := newCluster(t, "n1", "n2")
	dir := t.TempDir()
	writeFile(t, dir+"/cache.hcl", `app "cache" {
  mode       = "ring"
  partitions = 16
  backend "exec" {
    command = "/bin/sleep"
    args    = ["3600"]
    kill_timeout = "1s"
  }
  update { min_healthy_time = "0s" }
}
`)
	c.mustGCL(0, "job", "run", dir+"/cache.hcl")
	read := func(node string) []string {
		b, err := os.ReadFile(filepath.Join(c.dir, node, "logs", "cache", "partitions"))
		if err != nil {
			return nil
		}
		return strings.Fields(string(b))
	}
	c.eventually(20*time.Second, "16 partitions split over both nodes", func() bool {
		seen := map[string]int{}
		p1, p2 := read("n1"), read("n2")
		for _, p := range append(p1, p2...) {
			seen[p]++
		}
		if len(p1) == 0 || len(p2) == 0 || len(seen) != 16 {
			return false
		}
		for _, n := range seen {
			if n != 1 {
				return false
			}
		}
		return true
	})
	var st struct {
		Ring struct {
			Partitions int               `json:"partitions"`
			Owners     map[string]string `json:"owners"`
		} `json:"ring"`
	}
	if err := json.Unmarshal([]byte(c.mustGCL(0, "app", "status", "-json", "cache")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Ring.Partitions != 16 || len(st.Ring.Owners) != 2 {
		t.Fatalf("app status ring: %+v", st.Ring)
	}
	c.mustGCL(0, "app", "rebalance", "cache")
}

// With a free node, a pool update starts each new instance before it
// stops an old one: never fewer than count answer.
func TestSurgeUpdate(t *testing.T) {
	c := newCluster(t, "n1", "n2", "n3")
	base := freePortBase(t)
	dir := t.TempDir()
	c.mustGCL(0, "job", "run", webJob(t, dir, "pool", "replicas", 2, base, "v1"))
	c.eventually(10*time.Second, "two servers", func() bool { return len(answering(base, 3)) == 2 })
	smp := startSampling(base, 3)
	c.mustGCL(0, "job", "run", webJob(t, dir, "pool", "replicas", 2, base, "v2"))
	smp.stop()
	if smp.min < 2 {
		t.Fatalf("surge update of a pool of 2: only %d answered at one point (%d samples)", smp.min, smp.samples)
	}
	c.eventually(10*time.Second, "two servers at v2", func() bool {
		a := answering(base, 3)
		return len(a) == 2 && strings.HasSuffix(a[0], " v2") && strings.HasSuffix(a[1], " v2")
	})
}

// withService adds a checked service to a job file written by webJob.
func withService(t *testing.T, path string, port int, check string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	src := strings.TrimSuffix(strings.TrimSpace(string(b)), "}")
	src += fmt.Sprintf(`  service "http" {
    port = %d
    check {
      %s
      interval = "1s"
      timeout  = "500ms"
    }
  }
}
`, port, check)
	writeFile(t, path, src)
}

// An instance counts as running only once its service check passes: a
// check that never passes keeps it starting, with the failure as reason,
// and `job run` does not report success.
func TestServiceChecks(t *testing.T) {
	c := newCluster(t, "n1")
	base := freePortBase(t)
	good := webJob(t, t.TempDir(), "good", "singleton", 0, base, "")
	withService(t, good, base+1, `type = "http"
      path = "/health"`)
	c.mustGCL(0, "job", "run", good)

	badBase := base + 10
	bad := webJob(t, t.TempDir(), "bad", "singleton", 0, badBase, "")
	withService(t, bad, badBase+5, `type = "tcp"`) // nothing listens there
	code, _, errOut := c.gcl("job", "run", "-timeout", "3s", bad)
	if code != 1 || !strings.Contains(errOut, "gave up waiting") {
		t.Fatalf("job run with a failing check: exit %d\n%s", code, errOut)
	}
	c.eventually(5*time.Second, "the failing check as the reason", func() bool {
		out := c.mustGCL(0, "job", "status", "-json", "bad")
		return strings.Contains(out, `"state": "starting"`) && strings.Contains(out, "check of service http failing")
	})
	if probe(badBase, 1) == "" {
		t.Fatal("the process itself should run; only its check fails")
	}
}
