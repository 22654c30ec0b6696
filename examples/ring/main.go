// The seed's Ring program, unchanged but for formatting; handleGet and
// handleSet, which the seed uses without defining, are in handlers.go.
package main

import (
	"context"
	"log"
	"sync"

	"github.com/ozanturksever/go-cluster"
)

// In-memory cache per partition
var cache = struct {
	sync.RWMutex
	data map[int]map[string][]byte // partition -> key -> value
}{data: make(map[int]map[string][]byte)}

func main() {
	platform, _ := cluster.NewPlatform("prod", "node-1", "nats://localhost:4222")

	// Ring pattern with 256 partitions
	app := cluster.NewApp("cache",
		cluster.Spread(),
		cluster.Ring(256),
	)

	// Called when this node gains ownership of partitions
	app.OnOwn(func(ctx context.Context, partitions []int) error {
		log.Printf("Acquired partitions: %v", partitions)

		cache.Lock()
		defer cache.Unlock()

		for _, p := range partitions {
			if cache.data[p] == nil {
				cache.data[p] = make(map[string][]byte)
			}
			// In production: load partition data from persistent storage
		}
		return nil
	})

	// Called when this node releases ownership of partitions
	app.OnRelease(func(ctx context.Context, partitions []int) error {
		log.Printf("Releasing partitions: %v", partitions)

		cache.Lock()
		defer cache.Unlock()

		for _, p := range partitions {
			// In production: persist partition data before releasing
			delete(cache.data, p)
		}
		return nil
	})

	// Register handlers for cache operations
	app.Handle("get", handleGet)
	app.Handle("set", handleSet)

	platform.Register(app)
	platform.Run(context.Background())
}
