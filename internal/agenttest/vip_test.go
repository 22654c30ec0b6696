//go:build linux

package agenttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/internal/netlab"
	"github.com/ozanturksever/go-cluster/state"
)

// A singleton's virtual IP, end to end: three `gcl agent` processes, each
// inside its own network namespace of a netlab lab, join an embedded NATS
// on the lab's gateway; the job is submitted with `gcl job run`; a client
// in a fourth namespace connects to the VIP, where every node runs a whoami
// server (answering its node ID) that keeps running whatever the agents do,
// so the answer says which node the client's packets reach.

const (
	vipApp     = "vip"
	vipCIDR    = "198.18.0.100/24"
	whoamiPort = 7000
)

var (
	vipPrefix = netip.MustParsePrefix(vipCIDR)
	vipAddr   = vipPrefix.Addr()
	vipTarget = netip.AddrPortFrom(vipAddr, whoamiPort)
)

// vipTiming are the agents' timing flags: the operators' defaults, written
// out because the VIP's lifetime (lease TTL + 1s) is derived from them.
var vipTiming = []string{"-lease-ttl", "2s", "-presence-ttl", "5s"}

const vipLeaseTTL = 2 * time.Second

// vipJobSource is the job: a VIP and nothing else, the interface inferred
// from the subnet (eth0 in every node namespace).
const vipJobSource = `app "vip" {
  mode = "singleton"
  vip  = "198.18.0.100/24"
}
`

// nsAgent is an agent process running inside a node's namespace (through
// `ip netns exec`, which execs gcl: the pid is the agent's, in a process
// group of its own).
type nsAgent struct {
	host *netlab.Host
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

// vipCluster is a netlab lab with NATS on its gateway, a whoami server and
// an agent per node.
type vipCluster struct {
	t      testing.TB
	lab    *netlab.Lab
	srv    *state.Server
	cl     *testCluster // for gcl, mustGCL, eventually (it starts no agents)
	dir    string
	timing []string

	mu     sync.Mutex
	agents map[string]*nsAgent // by node ID (the host's label)

	stopWhoami []func()
	closeOnce  sync.Once
}

// newVIPCluster builds the lab, starts NATS on the gateway address, a
// whoami server on every node and an agent in every node namespace. The
// agents, servers and lab are torn down in t.Cleanup (or earlier by close).
func newVIPCluster(t testing.TB, timing []string) *vipCluster {
	t.Helper()
	lab := netlab.NewT(t, netlab.Config{Nodes: 3})
	srv, err := state.StartServer(context.Background(), state.ServerConfig{
		Host:     lab.Gateway.String(), // reachable from every namespace
		StoreDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	v := &vipCluster{
		t: t, lab: lab, srv: srv, dir: t.TempDir(), timing: timing,
		agents: map[string]*nsAgent{},
	}
	v.cl = &testCluster{t: t, url: srv.ClientURL(), dir: v.dir, agents: map[string]*agentProc{}}
	t.Cleanup(v.close) // before the lab's own clean-up (LIFO)
	for _, h := range lab.Nodes {
		stop, err := netlab.ServeWhoami(context.Background(), h, whoamiPort, h.Label)
		if err != nil {
			t.Fatal(err)
		}
		v.stopWhoami = append(v.stopWhoami, stop)
	}
	var wg sync.WaitGroup
	for _, h := range lab.Nodes {
		wg.Add(1)
		go func() { defer wg.Done(); v.launch(h) }()
	}
	wg.Wait()
	for _, h := range lab.Nodes {
		v.waitReady(h.Label)
	}
	return v
}

// close stops the agents (SIGTERM, then waiting), the whoami servers and
// NATS, and removes the lab. It is idempotent.
func (v *vipCluster) close() {
	v.closeOnce.Do(func() {
		v.mu.Lock()
		var nodes []string
		for n := range v.agents {
			nodes = append(nodes, n)
		}
		v.mu.Unlock()
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() { defer wg.Done(); v.stop(n) }()
		}
		wg.Wait()
		for _, stop := range v.stopWhoami {
			stop()
		}
		v.srv.Shutdown()
		if err := v.lab.Close(); err != nil {
			v.t.Errorf("netlab: close: %v", err)
		}
		if left := v.lab.Leftovers(); len(left) > 0 {
			v.t.Errorf("netlab: left behind after Close: %v", left)
		}
	})
}

func (v *vipCluster) dataDir(node string) string { return filepath.Join(v.dir, node) }

func (v *vipCluster) host(node string) *netlab.Host {
	v.t.Helper()
	for _, h := range v.lab.Nodes {
		if h.Label == node {
			return h
		}
	}
	v.t.Fatalf("no node %q in the lab", node)
	return nil
}

// launch starts h's agent inside h's namespace; it does not wait.
func (v *vipCluster) launch(h *netlab.Host) {
	args := append([]string{"agent", "-nats", v.srv.ClientURL(), "-node", h.Label,
		"-data-dir", v.dataDir(h.Label), "-http", "127.0.0.1:0"}, v.timing...)
	// Not bound to a context: stop and kill signal the process group, and
	// the lab's Close kills whatever still runs in its namespaces.
	cmd := h.Command(context.Background(), gclBin, args...)
	p := &nsAgent{host: h, cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		v.t.Errorf("start agent %s: %v", h.Label, err)
		return
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	v.mu.Lock()
	v.agents[h.Label] = p
	v.mu.Unlock()
}

func (v *vipCluster) agent(node string) *nsAgent {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.agents[node]
}

// start runs node's agent again (same data directory) and waits until it
// is ready.
func (v *vipCluster) start(node string) {
	v.t.Helper()
	v.launch(v.host(node))
	v.waitReady(node)
}

func (v *vipCluster) waitReady(node string) {
	v.t.Helper()
	p := v.agent(node)
	if p == nil {
		v.t.Fatalf("agent %s did not start", node)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.out.String(), "agent ready") {
		select {
		case <-p.done:
			v.t.Fatalf("agent %s exited before it was ready:\n%s", node, lastLines(p.out.String(), 40))
		default:
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("agent %s not ready after 60s:\n%s", node, lastLines(p.out.String(), 40))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill SIGKILLs node's agent (its whole process group) and waits until it
// is gone.
func (v *vipCluster) kill(node string) {
	v.t.Helper()
	v.mu.Lock()
	p := v.agents[node]
	delete(v.agents, node)
	v.mu.Unlock()
	if p == nil {
		v.t.Fatalf("no agent %s to kill", node)
	}
	if err := netlab.Signal(p.cmd, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		v.t.Errorf("kill agent %s: %v", node, err)
	}
	<-p.done
	v.checkOutput(node, p)
}

// stop ends node's agent with SIGTERM (a graceful shutdown) and waits.
func (v *vipCluster) stop(node string) {
	v.mu.Lock()
	p := v.agents[node]
	delete(v.agents, node)
	v.mu.Unlock()
	if p == nil {
		return
	}
	_ = netlab.Signal(p.cmd, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = netlab.Signal(p.cmd, syscall.SIGKILL)
		<-p.done
		v.t.Errorf("agent %s did not stop within 30s of SIGTERM", node)
	}
	v.checkOutput(node, p)
}

func (v *vipCluster) checkOutput(node string, p *nsAgent) {
	out := p.out.String()
	if strings.Contains(out, "WARNING: DATA RACE") {
		v.t.Errorf("agent %s had a data race:\n%s", node, out)
	}
	if v.t.Failed() {
		v.t.Logf("--- agent %s output (last 60 lines)\n%s", node, lastLines(out, 60))
	}
}

// runJob submits the VIP job and waits until every instance runs.
func (v *vipCluster) runJob() {
	v.t.Helper()
	path := filepath.Join(v.t.TempDir(), "vip.hcl")
	writeFile(v.t, path, vipJobSource)
	out := v.cl.mustGCL(0, "job", "run", path)
	if !strings.Contains(out, "all instances running") {
		v.t.Fatalf("job run output:\n%s", out)
	}
}

// vipAppStatus is the part of `gcl app status -json` the tests read.
type vipAppStatus struct {
	Leader    string   `json:"leader"`
	Epoch     uint64   `json:"epoch"`
	Standbys  []string `json:"standbys"`
	Instances []struct {
		Node   string `json:"node"`
		State  string `json:"state"`
		Active bool   `json:"active"`
	} `json:"instances"`
}

func (v *vipCluster) appStatus() vipAppStatus {
	v.t.Helper()
	out := v.cl.mustGCL(0, "app", "status", "-json", vipApp)
	var st vipAppStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		v.t.Fatalf("app status -json: %v\n%s", err, out)
	}
	return st
}

// holders lists the nodes whose namespace has the VIP configured.
func (v *vipCluster) holders() []string {
	v.t.Helper()
	var out []string
	for _, h := range v.lab.Nodes {
		ok, err := h.Holds(vipAddr)
		if err != nil {
			v.t.Fatal(err)
		}
		if ok {
			out = append(out, h.Label)
		}
	}
	return out
}

func (v *vipCluster) holds(node string) bool {
	v.t.Helper()
	ok, err := v.host(node).Holds(vipAddr)
	if err != nil {
		v.t.Fatal(err)
	}
	return ok
}

// settled reports the leader when the cluster is at rest: the lease has a
// holder, every node has a candidate (one running leader, the others
// standing by), and the leader's namespace is the only one with the VIP.
// why says what is missing otherwise.
func (v *vipCluster) settled() (leader, why string) {
	st := v.appStatus()
	if st.Leader == "" {
		return "", "no leader"
	}
	var running, standby []string
	for _, in := range st.Instances {
		switch in.State {
		case "running":
			running = append(running, in.Node)
		case "standby":
			standby = append(standby, in.Node)
		}
	}
	if len(running) != 1 || running[0] != st.Leader || len(standby) != len(v.lab.Nodes)-1 {
		return "", fmt.Sprintf("leader %s, running %v, standby %v", st.Leader, running, standby)
	}
	if hs := v.holders(); len(hs) != 1 || hs[0] != st.Leader {
		return "", fmt.Sprintf("leader %s but VIP holders %v", st.Leader, hs)
	}
	return st.Leader, ""
}

// waitSettled waits for a settled cluster whose leader the client reaches
// (n answers in a row from it), and returns the leader.
func (v *vipCluster) waitSettled(probe *netlab.Probe, within time.Duration, n int) string {
	v.t.Helper()
	deadline := time.Now().Add(within)
	var leader, why string
	for {
		if leader, why = v.settled(); why == "" {
			break
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("cluster not settled after %v: %s", within, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(5*time.Second))
	defer cancel()
	if _, err := probe.WaitStable(ctx, time.Now(), leader, n); err != nil {
		answers, failed := probe.Counts(time.Now().Add(-time.Second))
		v.t.Fatalf("the client does not reach leader %s through %s: %v (last second: answers %v, %d failed)",
			leader, vipTarget, err, answers, failed)
	}
	return leader
}

// firstHeldBy returns the time of the first holder sample after since in
// which node's namespace held the VIP.
func firstHeldBy(hs *netlab.HolderSampler, nodes []*netlab.Host, node string, since time.Time) (time.Time, bool) {
	idx := slices.IndexFunc(nodes, func(h *netlab.Host) bool { return h.Label == node })
	for _, s := range hs.Samples() {
		if s.At.After(since) && slices.Contains(s.Holders, idx) {
			return s.At, true
		}
	}
	return time.Time{}, false
}

// vipRecords reads node's record of the VIPs it holds.
func (v *vipCluster) vipRecords(node string) map[string]struct{ Address, Interface string } {
	v.t.Helper()
	path := filepath.Join(v.dataDir(node), "state", "vips.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		v.t.Fatal(err)
	}
	var recs map[string]struct{ Address, Interface string }
	if err := json.Unmarshal(b, &recs); err != nil {
		v.t.Fatalf("%s: %v\n%s", path, err, b)
	}
	return recs
}

// withTimeout is a context for one wait of the test.
func withTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// The VIP follows the singleton's leadership: the client reaches the
// leader through it, a step-down moves it (never two holders, the client's
// neighbour entry moved by the gratuitous ARP), a SIGKILLed leader's VIP
// expires on its own while a standby takes over, and a restarted agent
// removes the VIP it had recorded before it campaigns.
func TestVIPFollowsLeader(t *testing.T) {
	v := newVIPCluster(t, vipTiming)
	v.runJob()

	probe := netlab.StartProbe(context.Background(), v.lab.Client, vipTarget, 5*time.Millisecond)
	t.Cleanup(probe.Stop)
	hs := netlab.SampleHolders(context.Background(), v.lab.Nodes, vipAddr, 5*time.Millisecond)
	t.Cleanup(hs.Stop)
	client := v.lab.Client

	// 1. The client reaches the leader; the leader is the only holder
	// (settled checks that app status and the namespaces agree).
	l1 := v.waitSettled(probe, 60*time.Second, 20)
	if mac, _, err := client.Neighbor(vipAddr); err != nil || mac.String() != v.host(l1).MAC().String() {
		t.Fatalf("client's neighbour entry for %s: %v %v, want leader %s's %s", vipAddr, mac, err, l1, v.host(l1).MAC())
	}
	t.Logf("1. leader %s holds %s; the client reaches it", l1, vipCIDR)

	// 2. Graceful step-down.
	_, stateBefore, _ := client.Neighbor(vipAddr)
	since := time.Now()
	out := v.cl.mustGCL(0, "app", "stepdown", vipApp)
	if !strings.Contains(out, l1+" stepped down") {
		t.Fatalf("stepdown output: %q, want %s to step down", out, l1)
	}
	ctx, cancel := withTimeout(30 * time.Second)
	first, err := probe.WaitSample(ctx, since, func(s netlab.Sample) bool { return s.OK() && s.Answer != l1 })
	cancel()
	if err != nil {
		t.Fatalf("after the step-down of %s the client reaches no other node: %v", l1, err)
	}
	l2 := first.Answer
	gap, err := probe.Handover(l1, l2, since)
	if err != nil {
		t.Fatal(err)
	}
	added, ok := firstHeldBy(hs, v.lab.Nodes, l2, since)
	if !ok {
		t.Fatalf("the client reached %s, but its namespace was never seen holding %s", l2, vipAddr)
	}
	if got := v.waitSettled(probe, 30*time.Second, 20); got != l2 {
		t.Fatalf("after the step-down the leader is %s, but the client first reached %s", got, l2)
	}
	// The client had a live entry pointing at the old holder, kept
	// reachable by the probes' traffic: only the gratuitous ARP can move
	// it this fast (without it, the kernel would keep using the old MAC
	// until the entry went stale and failed its unicast probes: seconds to
	// tens of seconds).
	if d := first.At.Sub(added); d > 2*time.Second {
		t.Errorf("the client reached the new holder %s only %v after it added the VIP: the gratuitous ARP did not move the client's neighbour entry", l2, d)
	}
	if gap > 5*time.Second {
		t.Errorf("graceful handover gap %v (from the last answer by %s to the first by %s), want well under the kernel's neighbour timeouts", gap, l1, l2)
	}
	mac, stateAfter, err := client.Neighbor(vipAddr)
	if err != nil || mac.String() != v.host(l2).MAC().String() {
		t.Errorf("client's neighbour entry for %s: %v %v, want the new holder %s's %s", vipAddr, mac, err, l2, v.host(l2).MAC())
	}
	if n, samples := hs.MaxHolders(since); samples == 0 || n > 1 {
		t.Errorf("during the step-down %d nodes held %s at once (%d holder samples)", n, vipAddr, samples)
	}
	if f := flaps(probe, l1, first.At); len(f) > 0 {
		t.Errorf("after the client reached %s, the old holder %s answered again:\n%s", l2, l1, describeSamples(f))
	}
	t.Logf("2. stepdown %s -> %s: gap %v, client's first answer from %s %v after it added the VIP; neighbour state %s -> %s",
		l1, l2, gap.Round(time.Millisecond), l2, first.At.Sub(added).Round(time.Millisecond),
		nudName(stateBefore), nudName(stateAfter))

	// 3. SIGKILL of the leader's agent. Its whoami keeps answering, on the
	// VIP too while its namespace still has it.
	if recs := v.vipRecords(l2); recs[vipApp].Address != vipCIDR {
		t.Fatalf("leader %s's record of its VIPs: %+v, want %s for app %s", l2, recs, vipCIDR, vipApp)
	}
	killed := time.Now()
	v.kill(l2)
	ctx, cancel = withTimeout(30 * time.Second)
	first, err = probe.WaitSample(ctx, killed, func(s netlab.Sample) bool { return s.OK() && s.Answer != l2 })
	cancel()
	if err != nil {
		t.Fatalf("after the SIGKILL of %s's agent the client reaches no other node: %v", l2, err)
	}
	l3 := first.Answer
	switched := first.At
	takeover := first.At.Sub(killed)
	gap, err = probe.Handover(l2, l3, killed)
	if err != nil {
		t.Fatal(err)
	}
	// Nobody removes the address from the dead agent's namespace: its
	// valid lifetime (lease TTL + 1s from the last renewal) does. The
	// kernel checks IPv4 lifetimes with up to about a second of slack.
	var expired time.Duration
	v.cl.eventually(8*time.Second, "the killed agent's VIP to expire on "+l2, func() bool {
		if v.holds(l2) {
			return false
		}
		expired = time.Since(killed)
		return true
	})
	if got := v.waitSettledWithout(probe, l2, 30*time.Second); got != l3 {
		t.Fatalf("after the kill the leader is %s, but the client first reached %s", got, l3)
	}
	if f := flaps(probe, l2, first.At); len(f) > 0 {
		t.Errorf("after the client reached %s, the killed agent's node %s answered again:\n%s", l3, l2, describeSamples(f))
	}
	if mac, _, err := client.Neighbor(vipAddr); err != nil || mac.String() != v.host(l3).MAC().String() {
		t.Errorf("client's neighbour entry for %s: %v %v, want the new holder %s's %s", vipAddr, mac, err, l3, v.host(l3).MAC())
	}
	overlap, _ := hs.MaxHolders(killed)
	t.Logf("3. SIGKILL of %s's agent: %s took over; client gap %v, takeover %v; the dead agent's VIP expired %v after the kill (max %d holders at once meanwhile)",
		l2, l3, gap.Round(time.Millisecond), takeover.Round(time.Millisecond), expired.Round(time.Millisecond), overlap)

	// 4. A leftover the killed agent recorded: put the address back without
	// a lifetime (as if the kernel had not expired it, or an older process
	// had added it without one); the restarted agent must remove it before
	// it campaigns, while l3 keeps leading.
	if recs := v.vipRecords(l2); recs[vipApp].Address != vipCIDR || recs[vipApp].Interface != "eth0" {
		t.Fatalf("killed agent %s's record: %+v, want {%s eth0} for app %s", l2, recs, vipCIDR, vipApp)
	}
	if err := v.host(l2).AddAddr(vipPrefix); err != nil {
		t.Fatal(err)
	}
	if !v.holds(l2) {
		t.Fatalf("could not put %s back on %s", vipAddr, l2)
	}
	restarted := time.Now()
	v.start(l2) // returns once the agent is ready: joined, after the clean-up
	if v.holds(l2) {
		t.Errorf("the restarted agent %s is ready but its namespace still holds the recorded VIP %s", l2, vipAddr)
	}
	v.cl.eventually(10*time.Second, "the restarted agent to remove its recorded VIP", func() bool { return !v.holds(l2) })
	if !strings.Contains(v.agent(l2).out.String(), "removed a VIP left by a previous process") {
		t.Errorf("the restarted agent %s did not log the removal of its recorded VIP", l2)
	}
	if recs := v.vipRecords(l2); len(recs) != 0 {
		t.Errorf("record of %s after the clean-up: %+v, want none", l2, recs)
	}
	gone := time.Now()
	if got := v.waitSettled(probe, 30*time.Second, 20); got != l3 {
		t.Errorf("after %s's agent restarted the leader is %s, want %s to keep leading", l2, got, l3)
	}
	if n, samples := hs.MaxHolders(gone); samples == 0 || n > 1 {
		t.Errorf("after the clean-up %d nodes held %s at once (%d samples)", n, vipAddr, samples)
	}
	if f := flaps(probe, l2, switched); len(f) > 0 {
		t.Errorf("the restarted standby %s answered on the VIP:\n%s", l2, describeSamples(f))
	}
	t.Logf("4. the restarted agent %s removed its recorded VIP before it was ready (%v after the restart); %s kept leading",
		l2, gone.Sub(restarted).Round(time.Millisecond), l3)
}

// waitSettledWithout waits for a leader among the nodes other than dead,
// whose agent is not running: the VIP on the dead node must be gone and
// the client must reach the leader.
func (v *vipCluster) waitSettledWithout(probe *netlab.Probe, dead string, within time.Duration) string {
	v.t.Helper()
	deadline := time.Now().Add(within)
	var leader, why string
	for {
		leader, why = "", ""
		st := v.appStatus()
		hs := v.holders()
		switch {
		case st.Leader == "" || st.Leader == dead:
			why = "leader " + st.Leader
		case len(hs) != 1 || hs[0] != st.Leader:
			why = fmt.Sprintf("leader %s but VIP holders %v", st.Leader, hs)
		default:
			leader = st.Leader
		}
		if why == "" {
			break
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("no settled leader without %s after %v: %s", dead, within, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(5*time.Second))
	defer cancel()
	if _, err := probe.WaitStable(ctx, time.Now(), leader, 20); err != nil {
		v.t.Fatalf("the client does not reach leader %s: %v", leader, err)
	}
	return leader
}

// flaps returns the answers by old to probes that started after since, when
// the client had already reached another node: its neighbour entry for the
// VIP went back to old. (Probes started before can complete after the first
// answer from the new holder under load; netlab's Probe.Mixed, which looks
// at completion order only, counts those too.)
func flaps(probe *netlab.Probe, old string, since time.Time) []netlab.Sample {
	var out []netlab.Sample
	for _, s := range probe.SamplesSince(since) {
		if s.OK() && s.Answer == old && s.Start.After(since) {
			out = append(out, s)
		}
	}
	return out
}

func describeSamples(ss []netlab.Sample) string {
	var b strings.Builder
	for i, s := range ss {
		if i == 10 {
			fmt.Fprintf(&b, "  ... %d more\n", len(ss)-i)
			break
		}
		fmt.Fprintf(&b, "  probe %s..%s answered %q\n", s.Start.Format("15:04:05.000000"), s.At.Format("15:04:05.000000"), s.Answer)
	}
	return b.String()
}

// nudName names a neighbour (NUD) state.
func nudName(s int) string {
	names := []struct {
		bit  int
		name string
	}{
		{0x01, "INCOMPLETE"}, {0x02, "REACHABLE"}, {0x04, "STALE"}, {0x08, "DELAY"},
		{0x10, "PROBE"}, {0x20, "FAILED"}, {0x40, "NOARP"}, {0x80, "PERMANENT"},
	}
	var out []string
	for _, n := range names {
		if s&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	if len(out) == 0 {
		return fmt.Sprintf("NONE(%#x)", s)
	}
	return strings.Join(out, "|")
}
