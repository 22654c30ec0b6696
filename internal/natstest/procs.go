package natstest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ozanturksever/go-cluster/state"
)

// serverEnv carries a ServerConfig (JSON) to a re-executed test binary
// that is to run one embedded clustered server as its own process.
const serverEnv = "GCL_NATSTEST_SERVER"

// MaybeRunServer runs an embedded server and never returns when this
// process was started by StartProcCluster; otherwise it returns at once.
// Call it first thing in TestMain of packages that use StartProcCluster.
func MaybeRunServer() {
	raw := os.Getenv(serverEnv)
	if raw == "" {
		return
	}
	var cfg state.ServerConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "natstest server:", err)
		os.Exit(2)
	}
	srv, err := state.StartServer(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "natstest server:", err)
		os.Exit(2)
	}
	fmt.Printf("ready %s\n", srv.ClientURL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	srv.Shutdown()
	os.Exit(0)
}

// ServerProc is one clustered server running as a separate process, so
// that a test can SIGKILL it: a crash, not a shutdown (a server shutting
// down hands its stream leaderships over; a killed one leaves its
// followers to notice and elect).
type ServerProc struct {
	Name string
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Kill SIGKILLs the server and waits for it to be gone.
func (s *ServerProc) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// StartProcCluster starts n clustered servers (s1..sn) as child processes
// of the test binary, routed to each other, each with its store in the
// test's temporary directory, and waits until each answers JetStream
// requests (which needs a quorum). They are killed when the test ends.
func StartProcCluster(t testing.TB, n int) []*ServerProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ports := FreePorts(t, n)
	procs := make([]*ServerProc, n)
	ready := make(chan error, n)
	for i := range n {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, fmt.Sprintf("127.0.0.1:%d", p))
			}
		}
		cfg, _ := json.Marshal(state.ServerConfig{
			StoreDir: t.TempDir(), ServerName: fmt.Sprintf("s%d", i+1),
			ClusterPort: ports[i], Routes: routes,
		})
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), serverEnv+"="+string(cfg))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &ServerProc{Name: fmt.Sprintf("s%d", i+1), cmd: cmd, done: make(chan struct{})}
		procs[i] = p
		go func() {
			sc := bufio.NewScanner(out)
			if sc.Scan() {
				line := sc.Text()
				if url, ok := strings.CutPrefix(line, "ready "); ok {
					p.URL = url
					ready <- nil
				} else {
					ready <- fmt.Errorf("server %s said %q", p.Name, line)
				}
			} else {
				ready <- fmt.Errorf("server %s exited before it was ready", p.Name)
			}
			for sc.Scan() {
			}
			_ = cmd.Wait()
			close(p.done)
		}()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-p.done
		})
	}
	timeout := time.After(time.Minute)
	for range n {
		select {
		case err := <-ready:
			if err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatal("clustered servers not ready within a minute")
		}
	}
	return procs
}

// FreePorts returns n TCP ports on 127.0.0.1 that were free a moment ago.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
