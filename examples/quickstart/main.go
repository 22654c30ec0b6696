// Quickstart runs a small cluster in one process on an embedded NATS server:
// three nodes, a singleton "database" with a leader and two standbys, and a
// pool of two "worker" replicas kept away from the database leader. It shows
// a call to the leader, a graceful step-down and a failover, then exits.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	cluster "github.com/ozanturksever/go-cluster"
	"github.com/ozanturksever/go-cluster/state"
)

type node struct {
	id       string
	platform *cluster.Platform
	db       *cluster.Application
	cancel   context.CancelFunc
	done     chan error
}

var (
	mu      sync.Mutex
	workers = map[string]bool{}
)

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ctx := context.Background()
	srv, err := state.StartServer(ctx, state.ServerConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown()
	fmt.Println("embedded NATS with JetStream at", srv.ClientURL())

	nodes := map[string]*node{}
	for _, id := range []string{"node-1", "node-2", "node-3"} {
		n, err := start(srv.ClientURL(), id)
		if err != nil {
			log.Fatal(err)
		}
		nodes[id] = n
	}

	leader := waitLeader(nodes, "")
	waitWorkersAwayFrom(leader)
	fmt.Println("database leader:", leader, "| workers on:", activeWorkers())
	out, err := nodes["node-3"].platform.Call("database").Call(ctx, "whoami", nil)
	fmt.Printf("call database.whoami from node-3 -> %s (err=%v)\n", out, err)

	t0 := time.Now()
	if err := nodes[leader].db.Election().StepDown(ctx); err != nil {
		log.Fatal(err)
	}
	next := waitLeader(nodes, leader)
	fmt.Printf("graceful step-down: %s -> %s in %v\n", leader, next, time.Since(t0).Round(time.Microsecond))
	waitWorkersAwayFrom(next)
	fmt.Println("workers moved away from the new leader:", activeWorkers())

	t0 = time.Now()
	nodes[next].platform.Close() // like a crash: the connection drops, nothing is handed over
	third := waitLeader(nodes, next)
	fmt.Printf("leader %s lost its connection: %s took over in %v\n", next, third, time.Since(t0).Round(time.Microsecond))

	for _, n := range nodes {
		n.cancel()
		<-n.done
		n.platform.Close()
	}
	fmt.Println("done")
}

func start(url, id string) (*node, error) {
	p, err := cluster.NewPlatform("demo", id, url)
	if err != nil {
		return nil, err
	}
	db := cluster.NewApp("database", cluster.Singleton())
	db.Handle("whoami", func(ctx context.Context, _ []byte) ([]byte, error) { return []byte("leader " + id), nil })
	worker := cluster.NewApp("worker", cluster.Replicas(2), cluster.AwayFromApp("database"))
	worker.OnStart(func(context.Context) error { mu.Lock(); workers[id] = true; mu.Unlock(); return nil })
	worker.OnStop(func(context.Context) error { mu.Lock(); delete(workers, id); mu.Unlock(); return nil })
	if err := p.Register(db, worker); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{id: id, platform: p, db: db, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- p.Run(ctx) }()
	return n, nil
}

func waitLeader(nodes map[string]*node, not string) string {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for id, n := range nodes {
			if id != not && n.db.Election().IsLeader() {
				return id
			}
		}
		time.Sleep(time.Millisecond)
	}
	log.Fatal("no leader within 10s")
	return ""
}

func activeWorkers() []string {
	mu.Lock()
	defer mu.Unlock()
	var out []string
	for id := range workers {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func waitWorkersAwayFrom(leader string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		w := activeWorkers()
		if len(w) == 2 && !slices.Contains(w, leader) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	log.Fatal("workers did not settle within 10s")
}
