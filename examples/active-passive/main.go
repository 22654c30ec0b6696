// The seed's Active-Passive program, unchanged. Until SQLite replication, the
// VIP and the systemd backend land, Run refuses it with a clear error.
package main

import (
	"context"
	"log"

	"github.com/ozanturksever/go-cluster"
)

func main() {
	platform, _ := cluster.NewPlatform("prod", "node-1", "nats://localhost:4222")

	// Singleton mode = Active-Passive pattern
	app := cluster.NewApp("database",
		cluster.Singleton(),
		cluster.WithSQLite("/data/app.db"),
		cluster.VIP("10.0.1.100/24", "eth0"),
		cluster.WithBackend(cluster.Systemd("postgres")),
	)

	// Called when this node becomes the leader
	app.OnActive(func(ctx context.Context) error {
		log.Println("Starting as PRIMARY")
		// The backend service is automatically started
		// VIP is automatically acquired
		// WAL replication from standbys is started
		return nil
	})

	// Called when this node becomes a standby
	app.OnPassive(func(ctx context.Context) error {
		log.Println("Running as STANDBY")
		// The backend service is automatically stopped
		// VIP is released
		// WAL restoration continues to keep replica in sync
		return nil
	})

	platform.Register(app)
	platform.Run(context.Background())
}
