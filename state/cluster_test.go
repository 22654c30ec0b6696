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

// Three embedded servers with routes to each other form one JetStream
// cluster that keeps three replicas, as `gcl agent -server -join` does.
func TestEmbeddedCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
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
		defer servers[i].Shutdown()
	}
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
