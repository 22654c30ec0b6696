// The seed's Pool (Spread) program, unchanged.
package main

import (
	"context"
	"log"
	"net/http"

	"github.com/ozanturksever/go-cluster"
)

func main() {
	platform, _ := cluster.NewPlatform("prod", "node-1", "nats://localhost:4222")

	// Spread mode = run on all nodes
	app := cluster.NewApp("api", cluster.Spread())

	// Called when this instance starts
	app.OnStart(func(ctx context.Context) error {
		log.Println("Starting API server")
		go http.ListenAndServe(":8080", nil)
		return nil
	})

	// Called when this instance stops
	app.OnStop(func(ctx context.Context) error {
		log.Println("Stopping API server")
		return nil
	})

	// Expose the service for discovery
	app.ExposeService("http", cluster.ServiceConfig{
		Port:     8080,
		Protocol: "http",
	})

	platform.Register(app)
	platform.Run(context.Background())
}
