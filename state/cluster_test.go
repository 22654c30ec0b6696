package state

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCluster starts three embedded servers with routes to each other,
// as `gcl agent -server -join` does; they shut down when the test ends.
func startCluster(t *testing.T, ctx context.Context) []*Server {
	t.Helper()
	ports := []int{freePort(t), freePort(t), freePort(t)}
	servers := make([]*Server, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range servers {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, fmt.Sprintf("127.0.0.1:%d", p))
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i], errs[i] = StartServer(ctx, ServerConfig{
				StoreDir: t.TempDir(), ServerName: fmt.Sprintf("s%d", i+1),
				ClusterPort: ports[i], Routes: routes, ClusterUser: "route", ClusterPassword: "s3cret",
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("server %d: %v", i+1, err)
		}
		t.Cleanup(servers[i].Shutdown)
	}
	return servers
}

// Three embedded servers with routes to each other form one JetStream
// cluster that keeps three replicas, as `gcl agent -server -join` does.
func TestEmbeddedCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	servers := startCluster(t, ctx)
	nc, js, err := Connect(ctx, ConnectConfig{URL: servers[0].ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	kv, err := EnsureKV(ctx, js, jetstream.KeyValueConfig{Bucket: "r3", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "KV_r3")
	if err != nil {
		t.Fatal(err)
	}
	if info := st.CachedInfo(); info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream cluster info: %+v", info.Cluster)
	}
	// Another member serves the same data.
	nc2, js2, err := Connect(ctx, ConnectConfig{URL: servers[2].ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	kv2, err := js2.KeyValue(ctx, "r3")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv2.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
		t.Fatalf("read through another server: %v", err)
	}
}

// On a cluster, "no responders" can come from a route that is being
// rebuilt while the process behind the subject is alive: it must not count
// as proof that the process is gone. On a single server it does.
func TestProberNoRespondersIsProofOnlyOnOneServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	layout := Layout{Platform: "t"}

	single, err := StartServer(ctx, ServerConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(single.Shutdown)
	nc, _, err := Connect(ctx, ConnectConfig{URL: single.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	gone, stop := NewProber(nc, layout, 10*time.Millisecond).Gone("n1", "i1")
	defer stop()
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("single server: a process that never answered is not reported gone")
	}

	servers := startCluster(t, ctx)
	cnc, _, err := Connect(ctx, ConnectConfig{URL: servers[0].ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer cnc.Close()
	prober := NewProber(cnc, layout, 10*time.Millisecond)
	gone, stop = prober.Gone("n1", "i1")
	defer stop()
	// Another instance answering is proof even on a cluster.
	other, _, err := Connect(ctx, ConnectConfig{URL: servers[1].ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	restarted, stopRestarted := prober.Gone("n2", "old")
	defer stopRestarted()
	if _, err := ServeProbe(other, layout.NodeProbeSubject("n2"), "new"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-restarted:
	case <-time.After(10 * time.Second):
		t.Fatal("cluster: a node answering with another instance is not reported gone")
	}
	select {
	case <-gone:
		t.Fatal("cluster: no responders was taken as proof that a process is gone")
	default:
	}
}
