//go:build unix

// Command testnode is the crash-test node as a stand-alone program, for
// experiments by hand:
//
//	go run ./internal/crashtest/testnode -nats nats://127.0.0.1:4222 -node n1 -log /tmp/n1.events
//
// It runs the singleton app "db", appends start/stop events to -log (fsynced
// line by line), steps down on SIGUSR1 and hands over and exits on SIGTERM.
// The crash tests and the bench run the same code (crashtest.RunNode) by
// re-executing their own binary.
package main

import (
	"flag"
	"os"

	"github.com/ozanturksever/go-cluster/internal/crashtest"
)

func main() {
	var cfg crashtest.NodeConfig
	flag.StringVar(&cfg.NATSURL, "nats", "nats://127.0.0.1:4222", "NATS URL")
	flag.StringVar(&cfg.NodeID, "node", "", "node ID (required)")
	flag.StringVar(&cfg.Platform, "platform", "crashtest", "platform name")
	flag.DurationVar(&cfg.LeaseTTL, "ttl", 0, "lease TTL (0: library default)")
	flag.StringVar(&cfg.LogPath, "log", "", "event log file (required)")
	flag.StringVar(&cfg.Mode, "mode", "", `"" (the singleton app), "ring" or "sqlite" (WithSQLite on DATA/app.db; SIGUSR2: SyncDB)`)
	flag.StringVar(&cfg.DataDir, "data", "", "data directory (sqlite mode): the database and the platform state")
	flag.Parse()
	os.Exit(crashtest.RunNode(cfg))
}
