// Package agenttest runs gcl agents as separate processes against one NATS
// server and drives them with the gcl command, as an operator would.
package agenttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/state"
)

var gclBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gcl-agenttest-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gclBin = filepath.Join(dir, "gcl")
	args := []string{"build", "-o", gclBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/ozanturksever/go-cluster/cmd/gcl")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build gcl:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// lockedBuffer collects a process's output safely.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type agentProc struct {
	node   string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
}

// testCluster is a NATS server and the agents joined to it.
type testCluster struct {
	t      testing.TB
	url    string
	dir    string
	agents map[string]*agentProc
	mu     sync.Mutex
	// timing flags every agent gets: short TTLs so tests are quick.
	timing []string
}

func newCluster(t testing.TB, nodes ...string) *testCluster {
	t.Helper()
	return newClusterTimed(t, []string{"-lease-ttl", "1s", "-presence-ttl", "3s"}, nodes...)
}

// newClusterTimed starts agents with the given timing flags (nil: the
// defaults operators get).
func newClusterTimed(t testing.TB, timing []string, nodes ...string) *testCluster {
	t.Helper()
	srv, err := state.StartServer(context.Background(), state.ServerConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, url: srv.ClientURL(), dir: t.TempDir(), agents: map[string]*agentProc{}, timing: timing}
	t.Cleanup(func() {
		c.stopAll()
		srv.Shutdown()
	})
	for _, n := range nodes {
		c.start(n)
	}
	return c
}

// start runs an agent process for node.
func (c *testCluster) start(node string, extra ...string) {
	c.t.Helper()
	args := append([]string{"agent", "-nats", c.url, "-node", node, "-http", "127.0.0.1:0",
		"-data-dir", filepath.Join(c.dir, node)}, c.timing...)
	args = append(args, extra...)
	cmd := exec.Command(gclBin, args...)
	p := &agentProc{node: node, cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	c.mu.Lock()
	c.agents[node] = p
	c.mu.Unlock()
	c.eventually(10*time.Second, "agent "+node+" ready", func() bool {
		return strings.Contains(p.stderr.String(), "agent ready")
	})
}

// httpAddr is where node's agent serves HTTP, from its start-up log line.
func (c *testCluster) httpAddr(node string) string {
	c.t.Helper()
	c.mu.Lock()
	p := c.agents[node]
	c.mu.Unlock()
	m := regexp.MustCompile(`msg="agent ready".* http=(\S+)`).FindStringSubmatch(p.stderr.String())
	if m == nil {
		c.t.Fatalf("no HTTP address in %s's log", node)
	}
	return m[1]
}

// kill SIGKILLs node's agent and waits until it is gone.
func (c *testCluster) kill(node string) {
	c.mu.Lock()
	p := c.agents[node]
	delete(c.agents, node)
	c.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	c.checkRaces(p)
}

// stop ends node's agent with SIGTERM (a graceful shutdown).
func (c *testCluster) stop(node string) {
	c.mu.Lock()
	p := c.agents[node]
	delete(c.agents, node)
	c.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		c.t.Errorf("agent %s did not stop within 30s of SIGTERM", node)
	}
	c.checkRaces(p)
}

func (c *testCluster) stopAll() {
	c.mu.Lock()
	var nodes []string
	for n := range c.agents {
		nodes = append(nodes, n)
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); c.stop(n) }()
	}
	wg.Wait()
}

func (c *testCluster) checkRaces(p *agentProc) {
	out := p.stderr.String()
	if strings.Contains(out, "WARNING: DATA RACE") {
		c.t.Errorf("agent %s had a data race:\n%s", p.node, out)
	}
	if c.t.Failed() {
		c.t.Logf("--- agent %s output (last 40 lines)\n%s", p.node, lastLines(out, 40))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// gcl runs the gcl command against the cluster.
func (c *testCluster) gcl(args ...string) (code int, stdout, stderr string) {
	c.t.Helper()
	cmd := exec.Command(gclBin, args...)
	cmd.Env = append(os.Environ(), "GCL_NATS_URL="+c.url)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// mustGCL runs gcl and fails the test unless it exits with want.
func (c *testCluster) mustGCL(want int, args ...string) string {
	c.t.Helper()
	code, out, errOut := c.gcl(args...)
	if code != want {
		c.t.Fatalf("gcl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out
}

func (c *testCluster) eventually(within time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// jobStatus is the part of `gcl job status -json` the tests read.
type jobStatus struct {
	Name      string `json:"name"`
	Version   uint64 `json:"version"`
	Instances []struct {
		Node    string `json:"node"`
		Version uint64 `json:"version"`
		State   string `json:"state"`
		Active  bool   `json:"active"`
	} `json:"instances"`
	Allocations []struct {
		Node string `json:"node"`
	} `json:"allocations"`
}

func (c *testCluster) status(job string) jobStatus {
	c.t.Helper()
	out := c.mustGCL(0, "job", "status", "-json", job)
	var st jobStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.t.Fatalf("job status -json: %v\n%s", err, out)
	}
	return st
}

// webJob writes a job file running a tiny HTTP server on every instance:
// it listens on base+N, where N is the number at the end of the node ID,
// and answers with the node and job version.
func webJob(t testing.TB, dir, name, mode string, count, base int, extraEnv string) string {
	t.Helper()
	countLine := ""
	if mode == "replicas" {
		countLine = fmt.Sprintf("count = %d", count)
	}
	src := fmt.Sprintf(`app %q {
  mode = %q
  %s
  backend "exec" {
    command = "/usr/bin/perl"
    args    = ["-MIO::Socket::INET", "-e", <<-PERL
      my ($n) = $ENV{GCL_NODE} =~ /(\d+)$/;
      my $port = $ENV{PORT_BASE} + $n;
      my $server = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $port, Listen => 64, ReuseAddr => 1)
        or die "listen on $port: $!";
      $SIG{TERM} = sub { exit 0 };
      $| = 1;
      print "listening on $port\n";
      while (my $client = $server->accept) {
        # Read the request first: closing with it unread would reset the
        # connection before the client reads the answer.
        while (my $line = <$client>) { last if $line =~ /^\r?\n$/ }
        my $body = "$ENV{GCL_NODE} $ENV{GCL_JOB_VERSION} $ENV{EXTRA}\n";
        print $client "HTTP/1.0 200 OK\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
        close $client;
      }
    PERL
    ]
    env = { PORT_BASE = "%d", EXTRA = %q }
    kill_timeout = "2s"
  }
  update {
    max_parallel     = 1
    min_healthy_time = "1s"
    healthy_deadline = "30s"
  }
}
`, name, mode, countLine, base, extraEnv)
	path := filepath.Join(dir, name+".hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// freePortBase finds a base port with base+1..base+9 free.
func freePortBase(t testing.TB) int {
	t.Helper()
	for base := 21000 + os.Getpid()%5000*4; ; base += 10 {
		ok := true
		for i := 1; i < 10 && ok; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
}

// The test servers answer HTTP/1.0 and close: no connection reuse.
var httpClient = &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}

// probe asks the server of node N (port base+N) who it is; "" when nothing answers.
func probe(base, n int) string {
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/", base+n))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

// answering lists the answers of nodes 1..n, asked at the same time so
// that one sample is one moment.
func answering(base, n int) []string {
	answers := make([]string, n)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Add(1)
		go func() { defer wg.Done(); answers[i] = probe(base, i+1) }()
	}
	wg.Wait()
	var out []string
	for _, a := range answers {
		if a != "" {
			out = append(out, a)
		}
	}
	return out
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// soleServer waits until exactly one of the servers of nodes 1..n answers
// (a singleton's leader) and returns its node.
func (c *testCluster) soleServer(base, n int, within time.Duration) string {
	c.t.Helper()
	var node string
	c.eventually(within, "exactly one server", func() bool {
		a := answering(base, n)
		if len(a) != 1 {
			return false
		}
		node = strings.Fields(a[0])[0]
		return true
	})
	return node
}

// sampling probes the servers of nodes 1..n back to back until stopped,
// keeping the fewest and most that answered in one sample and the longest
// time none did.
type sampling struct {
	quit, done        chan struct{}
	min, max, samples int
	longestGap        time.Duration
}

func startSampling(base, n int) *sampling {
	s := &sampling{quit: make(chan struct{}), done: make(chan struct{}), min: n}
	go func() {
		defer close(s.done)
		var gapStart time.Time
		for {
			select {
			case <-s.quit:
				return
			default:
			}
			k := len(answering(base, n))
			now := time.Now()
			s.samples++
			s.min, s.max = min(s.min, k), max(s.max, k)
			switch {
			case k == 0 && gapStart.IsZero():
				gapStart = now
			case k > 0 && !gapStart.IsZero():
				s.longestGap = max(s.longestGap, now.Sub(gapStart))
				gapStart = time.Time{}
			}
		}
	}()
	return s
}

// stop ends the sampling; the fields are final afterwards.
func (s *sampling) stop() {
	close(s.quit)
	<-s.done
}

// appLeader is the app's leader as `gcl app status -json` reports it.
func (c *testCluster) appLeader(app string) string {
	c.t.Helper()
	var st struct {
		Leader string `json:"leader"`
	}
	out := c.mustGCL(0, "app", "status", "-json", app)
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.t.Fatalf("app status -json: %v\n%s", err, out)
	}
	return st.Leader
}

// httpGet returns the body of a GET, failing the test on a transport
// error or a status other than 200.
func httpGet(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	return string(body)
}
