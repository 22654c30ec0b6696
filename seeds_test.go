package cluster_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/ozanturksever/go-cluster"
)

// TestSeedProgramsCompile builds every complete program of the seed
// documents exactly as written.
func TestSeedProgramsCompile(t *testing.T) {
	seeds, _ := filepath.Glob("../shared/seeds/*.txt")
	if len(seeds) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("seed documents not found at ../shared/seeds")
		}
		t.Skip("seed documents not found at ../shared/seeds")
	}
	block := regexp.MustCompile("(?s)```go\n(package main\n.*?)```")
	n := 0
	for _, path := range seeds {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range block.FindAllSubmatch(text, -1) {
			n++
			dir, err := os.MkdirTemp(".", "seedcheck-")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			src := m[1]
			// The ring program registers handlers the document never shows;
			// supply them with the Handler signature so the rest is checked.
			for _, name := range []string{"handleGet", "handleSet"} {
				if bytes.Contains(src, []byte(name)) && !bytes.Contains(src, []byte("func "+name)) {
					src = append(src, []byte("\nfunc "+name+"(ctx context.Context, req []byte) ([]byte, error) { return nil, nil }\n")...)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "main.go"), src, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("go", "build", "-o", os.DevNull, "./"+dir).CombinedOutput()
			if err != nil {
				t.Errorf("seed program %d of %s does not compile:\n%s", n, filepath.Base(path), out)
			}
		}
	}
	if n < 3 {
		t.Fatalf("found %d complete seed programs, expected at least 3", n)
	}
}

// Seed 001's fragments, in functions so that they compile as written.
var (
	ctx     = context.Background()
	nodeID  = "node-1"
	natsURL = "nats://127.0.0.1:4222"
)

type fakeServer struct{}

func (fakeServer) Start(context.Context) error { return nil }

type fakeCache struct{}

func (fakeCache) LoadPartitions(context.Context, []int) error    { return nil }
func (fakeCache) ReleasePartitions(context.Context, []int) error { return nil }

var (
	apiServer fakeServer
	cache     fakeCache
	key       = "user:123"
)

func seed001ActivePassive() {
	app := cluster.New("myapp", nodeID, natsURL,
		cluster.WithDB("/data/app.db"),
		cluster.WithVIP("10.0.0.100/24", "eth0"),
		cluster.WithBackend(cluster.Systemd("myapp")),
	)
	app.Run(ctx)
}

func seed001Pool() {
	pool := cluster.Pool("api", nodeID, natsURL)

	pool.OnStart(func(ctx context.Context) error {
		return apiServer.Start(ctx)
	})

	pool.Run(ctx)
}

func seed001Ring() (string, error) {
	// Seed 001 calls this constructor cluster.Ring; in Go it cannot share
	// that name with seed 000's Ring(256) option.
	ring := cluster.NewRing("cache", nodeID, natsURL,
		cluster.WithPartitions(256),
	)

	ring.OnOwn(func(ctx context.Context, partitions []int) error {
		return cache.LoadPartitions(ctx, partitions)
	})

	ring.OnRelease(func(ctx context.Context, partitions []int) error {
		return cache.ReleasePartitions(ctx, partitions)
	})

	node, err := ring.NodeFor(key)
	return node, err
}

func seed001Combining(platform *cluster.Platform) {
	db := cluster.App("database", cluster.Singleton(), cluster.DB("/data/db.sqlite"))
	cache := cluster.App("cache", cluster.Spread(), cluster.Ring(256))
	api := cluster.App("api", cluster.Spread())
	workers := cluster.App("workers", cluster.Replicas(3))

	platform.Register(db, cache, api, workers)
}

// Seed 000's fragments that are not whole programs.
func seed000Fragments(app *cluster.Application) {
	handleRequest := func(ctx context.Context) {
		queryRequest := map[string]string{"q": "select 1"}
		getRequest := []byte("k")
		// Call the database app (routes to leader)
		client := cluster.Call("database")
		resp, err := client.Call(ctx, "query", queryRequest)
		_, _ = resp, err
		{
			client := cluster.Call("cache")
			resp, err := client.Call(ctx, "get", getRequest, cluster.ToAny())
			_, _ = resp, err
		}
		{
			client := cluster.Call("cache")
			resp, err := client.Call(ctx, "get", getRequest, cluster.ForKey("user:123"))
			_, _ = resp, err
		}
	}
	_ = handleRequest
	app.KV().Put(ctx, "config/version", []byte("1.0.0"))
	value, _ := app.KV().Get(ctx, "config/version")
	_ = value
	lock := app.Lock("processing")
	if lock.TryLock(ctx) {
		defer lock.Unlock(ctx)
	}
	app.Election().StepDown(ctx)
	_ = cluster.NewApp("worker", cluster.Replicas(3))
	ring := app.Ring()
	if ring.OwnsKey("user:123") {
	} else {
		node, _ := ring.NodeFor("user:123")
		_ = node
	}
}

var _ = []any{seed001ActivePassive, seed001Pool, seed001Ring, seed001Combining, seed000Fragments}
