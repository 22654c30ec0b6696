package agenttest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/internal/natstest"
)

// Three `gcl agent -server` processes form their own NATS cluster (no
// separate NATS): a job runs, and SIGKILL of one agent, which also kills
// one of the three NATS servers, still fails its singleton over.
func TestEmbeddedClusterAgents(t *testing.T) {
	ports := natstest.FreePorts(t, 6) // client and route port per agent
	c := &testCluster{t: t, dir: t.TempDir(), agents: map[string]*agentProc{},
		timing: []string{"-lease-ttl", "1s", "-presence-ttl", "3s"}}
	t.Cleanup(c.stopAll)
	procs := make(chan error, 3)
	for i := range 3 {
		node := fmt.Sprintf("n%d", i+1)
		args := []string{"agent", "-server", "-node", node, "-http", "127.0.0.1:0",
			"-data-dir", filepath.Join(c.dir, node),
			"-nats-port", fmt.Sprint(ports[2*i]), "-cluster-port", fmt.Sprint(ports[2*i+1])}
		for j := range 3 {
			if j != i {
				args = append(args, "-join", fmt.Sprintf("127.0.0.1:%d", ports[2*j+1]))
			}
		}
		args = append(args, c.timing...)
		cmd := exec.Command(gclBin, args...)
		p := &agentProc{node: node, cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
		cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { procs <- cmd.Wait(); close(p.done) }()
		c.mu.Lock()
		c.agents[node] = p
		c.mu.Unlock()
	}
	started := time.Now()
	// Each server waits for a quorum of its peers before it is ready.
	for _, n := range []string{"n1", "n2", "n3"} {
		p := c.agents[n]
		c.eventually(60*time.Second, n+" ready", func() bool { return strings.Contains(p.stderr.String(), "agent ready") })
	}
	t.Logf("three agents ready after %v", time.Since(started).Round(time.Millisecond))
	c.url = fmt.Sprintf("nats://127.0.0.1:%d,nats://127.0.0.1:%d,nats://127.0.0.1:%d", ports[0], ports[2], ports[4])
	base := freePortBase(t)
	c.mustGCL(0, "job", "run", webJob(t, t.TempDir(), "web", "singleton", 0, base, ""))
	leader := c.soleServer(base, 3, 10*time.Second)
	killed := time.Now()
	c.kill(leader)
	c.eventually(30*time.Second, "failover with one NATS server gone", func() bool {
		a := answering(base, 3)
		return len(a) == 1 && !strings.HasPrefix(a[0], leader+" ")
	})
	t.Logf("failover after SIGKILL of %s (agent and NATS server): %v", leader, time.Since(killed).Round(time.Millisecond))
}
